// One Event Grid custom topic from infra/subscriptions.json, with:
//   - the topic's system-assigned identity, allowed to write dead letters to ONE container
//     (Storage Blob Data Contributor scoped to that container, not the account);
//   - optionally, EventGrid Data Sender on this topic for one principal (the Function App, on the
//     topic its eventGrid output binding publishes to);
//   - the topic's event subscriptions, translated from the file (only when deploySubscriptions).
//
// The file uses ARM property names, with two local conventions that this module translates:
//   destination.properties.functionName  -> an AzureFunction destination's resourceId
//                                            '<functionAppId>/functions/<functionName>'
//   deadLetter.blobContainerName          -> deadLetterWithResourceIdentity (topic identity,
//                                            StorageBlob destination in storageAccountName)
// Every other destination type (WebHook, ...) is already in ARM shape and is passed through.
// A property absent from the file is sent as null, which ARM treats as "not set" (the service
// default applies). infra/tests/test_subscriptions.py checks this translation against the file.

@description('One entry of subscriptions.json "topics": {name, inputSchema, subscriptions: [...]}.')
param topic object

@description('Resource name of the topic (globally unique per region).')
param topicResourceName string

@description('Azure region of the topic.')
param location string

@description('Accept access keys and SAS tokens on the topic; false means Entra ID only.')
param localAuthEnabled bool

@description('Resource id of the Function App whose functions AzureFunction destinations name.')
param functionAppId string

@description('Principal granted EventGrid Data Sender on this topic; empty grants nobody.')
param dataSenderPrincipalId string = ''

@description('Storage account that receives dead letters.')
param storageAccountName string

@description('Blob container (in storageAccountName) the topic identity may write dead letters to.')
param deadLetterContainerName string

@description('Create the event subscriptions (their functions must exist already).')
param deploySubscriptions bool

var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  eventGridDataSender: 'd5a91429-5739-47e2-a06b-3470a27159e7'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

resource eventGridTopic 'Microsoft.EventGrid/topics@2025-02-15' = {
  // checkov:skip=CKV_AZURE_192: disableLocalAuth is !localAuthEnabled, from the topicLocalAuthEnabled parameter (default false, so local auth is disabled); checkov cannot evaluate a parameter
  // checkov:skip=CKV_AZURE_193: publishers (ordergrid publish, the Function App's output binding) reach the topic over its public endpoint with Entra ID; there is no VNet for a private endpoint
  name: topicResourceName
  location: location
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: topic.?inputSchema ?? 'EventGridSchema'
    disableLocalAuth: !localAuthEnabled
    minimumTlsVersionAllowed: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

// The topic identity may write dead letters to this one container and nowhere else.
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, eventGridTopic.id, roles.storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: eventGridTopic.identity.principalId
    principalType: 'ServicePrincipal'
    description: 'ordergrid Event Grid topic: write dead letters'
  }
}

resource dataSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(dataSenderPrincipalId)) {
  name: guid(eventGridTopic.id, functionAppId, roles.eventGridDataSender)
  scope: eventGridTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataSender)
    principalId: dataSenderPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ordergrid Function App: publish through the eventGrid output binding'
  }
}

resource eventSubscriptions 'Microsoft.EventGrid/topics/eventSubscriptions@2025-02-15' = [for sub in topic.subscriptions: if (deploySubscriptions) {
  parent: eventGridTopic
  name: sub.name
  properties: {
    destination: (sub.destination.endpointType == 'AzureFunction') ? {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/${sub.destination.properties.functionName}'
        maxEventsPerBatch: sub.destination.properties.?maxEventsPerBatch
        preferredBatchSizeInKilobytes: sub.destination.properties.?preferredBatchSizeInKilobytes
        deliveryAttributeMappings: sub.destination.properties.?deliveryAttributeMappings
      }
    } : sub.destination
    // [?'filter'] rather than .?filter: pycep (and so checkov) lexes `filter` as the lambda function.
    filter: sub[?'filter']
    eventDeliverySchema: sub.?eventDeliverySchema
    retryPolicy: sub.?retryPolicy
    deadLetterWithResourceIdentity: empty(sub.?deadLetter.?blobContainerName ?? '') ? null : {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: sub.deadLetter.blobContainerName
        }
      }
    }
  }
  dependsOn: [
    deadLetterWriter
  ]
}]

@description('Event Grid endpoint of the topic (https://<name>.<region>-1.eventgrid.azure.net/api/events).')
output endpoint string = eventGridTopic.properties.endpoint

@description('Resource name of the topic.')
output name string = eventGridTopic.name

@description('Resource id of the topic.')
output id string = eventGridTopic.id
