// ordergrid on Azure: the custom handler on a Flex Consumption Function App, fed by an Event Grid
// custom topic whose subscriptions come from infra/subscriptions.json (the file the local emulator
// reads too), and an Azure Web PubSub hub that carries the live order feed to browsers. Deploy with
// scripts/deploy.sh; see infra/README.md.
//
// Everything authenticates with Entra ID: no storage keys (shared key access is off), no Event Grid
// keys (unless topicLocalAuthEnabled), no App Insights instrumentation key, no Web PubSub access key
// (local auth is off), and the only secret (the SMTP password) lives in Key Vault and reaches the
// app through a Key Vault reference.
//
// Deployed twice by scripts/deploy.sh: first with deploySubscriptions=false (an AzureFunction event
// subscription can only be created once the function exists), then, after the code is deployed
// and its functions are indexed, with deploySubscriptions=true. Both deployments are idempotent:
// every name (role assignments included) is derived deterministically from the resource group and
// the name prefix; the app settings are written only when they differ from the app's
// (modules/app-settings.bicep); the package hash tag on the Function App is carried through
// (deployedPackageSha256), so a redeployment does not drop it.
//
// Offline checks (scripts/check-infra): pycep parses every .bicep file, checkov scans infra/ (each
// skipped check carries its reason), and infra/tests evaluates the event subscriptions against the
// file, the app's roles against the least-privilege set, and the names for determinism.

targetScope = 'resourceGroup'

// ------------------------------------------------------------------------------------------------
// Parameters (documented with values in main.bicepparam)
// ------------------------------------------------------------------------------------------------

@description('Prefix of every resource name: 2-9 lowercase letters or digits. A suffix derived from the resource group and this prefix keeps the global names (storage, Key Vault, Function App, topic) unique.')
@minLength(2)
@maxLength(9)
param namePrefix string = 'ordergrid'

@description('Azure region of every resource. It must offer Flex Consumption: az functionapp list-flexconsumption-locations.')
param location string = resourceGroup().location

@description('Sender of the order emails (ORDERGRID_EMAIL_FROM): an address, or a display name and an address in angle brackets.')
param emailFrom string

@description('SMTP server host name (ORDERGRID_SMTP_HOST). The handler uses STARTTLS.')
param smtpHost string

@description('SMTP submission port (ORDERGRID_SMTP_PORT); 587 is the STARTTLS submission port.')
param smtpPort int = 587

@description('SMTP user name (ORDERGRID_SMTP_USERNAME).')
param smtpUsername string

@description('SMTP password. Written only to the Key Vault secret smtp-password; the app reads it through a Key Vault reference. Empty keeps the secret already in the vault unchanged (no new version).')
@secure()
param smtpPassword string = ''

@description('Memory of each Flex Consumption instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances Flex Consumption may scale the app out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Accept access keys and SAS tokens on the Event Grid topic (aeg-sas-key). Off by default: publishers use Entra ID with the EventGrid Data Sender role.')
param topicLocalAuthEnabled bool = false

@description('Create the event subscriptions of infra/subscriptions.json. Needs the functions to exist (deployed and indexed) first: scripts/deploy.sh deploys with false, then the code, then with true.')
param deploySubscriptions bool = false

@description('ORDERGRID_APP_SETTINGS_FINGERPRINT as the Function App carries it now (scripts/deploy.sh reads it). Equal to the fingerprint of the declared settings: they are not written again (no restart). Empty: they are written.')
param appliedAppSettingsFingerprint string = ''

@description('SHA-256 of the content of the code package deployed to the Function App, kept in its tag ordergrid-package-sha256 (scripts/deploy.sh passes the current value, then the new one once the upload succeeded). Empty: no tag.')
@maxLength(64)
param deployedPackageSha256 string = ''

@description('SKU of the Azure Web PubSub service behind the live order feed. Free_F1 (default) costs nothing but has no SLA and small quotas (Microsoft lists 20 concurrent connections and 20,000 messages a day per unit); Standard_S1 is the cheapest tier with an SLA (1,000 connections per unit, billed per unit and day); Premium_P1 adds autoscale and availability zones.')
@allowed([
  'Free_F1'
  'Standard_S1'
  'Premium_P1'
])
param webPubSubSku string = 'Free_F1'

@description('ORDERGRID_OPERATORS: comma-separated principal names allowed to open the live board of the operators (GET /api/negotiate?board=true). Each is matched against the X-MS-CLIENT-PRINCIPAL-NAME request header, which App Service Authentication sets (and strips from client requests) only when it is enabled on the Function App; this template does not enable it. Empty (the default) lets nobody in; * lets anyone who can reach the app in.')
param operators string = ''

// ------------------------------------------------------------------------------------------------
// Names and shared constants
// ------------------------------------------------------------------------------------------------

var suffix = uniqueString(resourceGroup().id, namePrefix)
var compactPrefix = toLower(replace(namePrefix, '-', ''))

var logAnalyticsName = '${namePrefix}-log-${suffix}'
var appInsightsName = '${namePrefix}-appi-${suffix}'
var storageAccountName = take('${compactPrefix}st${suffix}', 24)
var keyVaultName = take('${compactPrefix}kv${suffix}', 24)
var planName = '${namePrefix}-plan-${suffix}'
var functionAppName = '${namePrefix}-func-${suffix}'
var webPubSubName = '${namePrefix}-wps-${suffix}'

// Blob containers. `orders` and `email-ledger` are the handler's (ORDERGRID_STORE=blob);
// `dead-letters` is the one subscriptions.json dead-letters to; `app-package` holds the zip that
// Flex Consumption runs.
var deploymentContainerName = 'app-package'
var ordersContainerName = 'orders'
var emailLedgerContainerName = 'email-ledger'
var deadLetterContainerName = 'dead-letters'

var smtpPasswordSecretName = 'smtp-password'

// The live order feed: the Web PubSub hub the OrderStatusFeed and negotiate functions name in their
// function.json ("hub": "orders"), and the app setting prefix of their binding connection
// ("connection": "WebPubSubConnectionString").
var webPubSubHubName = 'orders'

// The topic the OrderProcessor's eventGrid output binding publishes to (connection "OrdersTopic").
var ordersTopicName = 'orders'

// The single definition of topics and subscriptions, shared with the local emulator.
var subscriptionsFile = loadJsonContent('subscriptions.json')
var topicNames = [for topic in subscriptionsFile.topics: topic.name]
var ordersTopicIndex = indexOf(topicNames, ordersTopicName)

// Built-in role definition ids.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  // Web PubSub Service Owner: dataActions Microsoft.SignalRService/WebPubSub/* (see appWebPubSubServiceOwner).
  webPubSubServiceOwner: '12cf5a90-567b-43ae-8102-96cf46c7d9b4'
}

// ------------------------------------------------------------------------------------------------
// Monitoring: Log Analytics + workspace-based Application Insights, Entra-only ingestion
// ------------------------------------------------------------------------------------------------

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    IngestionMode: 'LogAnalytics'
    // Telemetry is accepted only with an Entra token (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
    DisableLocalAuth: true
  }
}

// ------------------------------------------------------------------------------------------------
// Storage: host storage (AzureWebJobsStorage), the deployment package, the handler's containers and
// dead letters. Entra ID only.
// ------------------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: network default Allow: the Flex app has no VNet integration and Event Grid writes dead letters over the public endpoint; every request needs an Entra token (shared key access is off)
  // checkov:skip=CKV_AZURE_59: public network access stays enabled for the same reason as CKV_AZURE_35 (no VNet, no private endpoints); authorisation is Entra-only
  // checkov:skip=CKV_AZURE_206: LRS is the cost-conscious default; pick ZRS or GRS where the region offers it for Flex Consumption
  // checkov:skip=CKV_AZURE_43: the name is computed (take(prefix + 'st' + uniqueString, 24), lowercase letters and digits), which checkov cannot evaluate
  name: storageAccountName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource ordersContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: ordersContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource emailLedgerContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: emailLedgerContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

// ------------------------------------------------------------------------------------------------
// Key Vault (RBAC mode) holding the SMTP password
// ------------------------------------------------------------------------------------------------

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: the Function App resolves its Key Vault reference over the public endpoint (no VNet); reading needs Entra ID and Key Vault Secrets User
  // checkov:skip=CKV_AZURE_189: public network access stays enabled for the same reason as CKV_AZURE_109 (no VNet, no private endpoints)
  name: keyVaultName
  location: location
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Written only when a password is given, so a redeployment without one leaves the secret (and its
// versions) alone. The app setting references the versionless secret URI, so the app picks up a
// new version without a redeployment.
resource smtpPasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(smtpPassword)) {
  // checkov:skip=CKV_AZURE_41: no expiry date: the SMTP provider decides when the password changes; an expiry would silently break email, and one computed at deployment time would change on every deployment
  // checkov:skip=CKV_AZURE_114: contentType is set below ('text/plain'); checkov does not look inside a conditional resource
  parent: keyVault
  name: smtpPasswordSecretName
  properties: {
    value: smtpPassword
    contentType: 'text/plain'
  }
}

// ------------------------------------------------------------------------------------------------
// Azure Web PubSub: the live order feed. OrderStatusFeed's webPubSub output binding sends each status
// update to the groups order-<id> and operators; negotiate hands browsers a client URL whose token
// comes from the service's :generateToken API. Both authenticate with the app's identity
// (WebPubSubConnectionString__serviceUri below, Web PubSub Service Owner on this resource): no keys.
//
// API 2024-03-01 is the newest stable version of Microsoft.SignalRService/webPubSub (the stable/
// folders of specification/webpubsub/resource-manager/Microsoft.SignalRService in
// Azure/azure-rest-api-specs hold 2021-10-01, 2023-02-01 and 2024-03-01; everything newer, up to
// 2025-12-01-preview, is a preview). Properties as in Azure/bicep-types-az
// generated/webpubsub/microsoft.signalrservice/2024-03-01/types.md and
// https://learn.microsoft.com/azure/templates/microsoft.signalrservice/webpubsub.
// ------------------------------------------------------------------------------------------------

resource webPubSub 'Microsoft.SignalRService/webPubSub@2024-03-01' = {
  // checkov:skip=CKV_AZURE_175: the SKU is the webPubSubSku parameter; its default Free_F1 (no SLA) keeps an idle deployment free. Deploy with webPubSubSku=Standard_S1 or Premium_P1 for an SLA
  // checkov:skip=CKV_AZURE_176: the service calls nothing: no event handlers or listeners (the functions only send) and no custom certificate from Key Vault, so an identity of its own would have nothing to authenticate to
  name: webPubSubName
  location: location
  kind: 'WebPubSub'
  sku: {
    name: webPubSubSku
    capacity: 1
  }
  properties: {
    // Access keys and connection strings stop working ("When set as true, connection with
    // AccessKey=xxx won't work"): the data plane accepts only Entra tokens, and client tokens come
    // from :generateToken, called with the app's identity.
    disableLocalAuth: true
    disableAadAuth: false
    // Browsers connect from anywhere (wss://<hostName>/client/hubs/orders with a token only
    // negotiate hands out) and the Function App, which has no VNet, calls the REST API over the
    // same public endpoint. Every connection needs a token signed by the service.
    publicNetworkAccess: 'Enabled'
    tls: {
      // Request no client certificate during the TLS handshake: browsers present none (and the
      // Free tier ignores the setting).
      clientCertEnabled: false
    }
  }
}

// The one hub of the feed. No event handlers or listeners: nothing flows from browsers back to the
// app (clients join the groups their token names at connect and send nothing). Clients without a
// token are refused.
resource webPubSubHub 'Microsoft.SignalRService/webPubSub/hubs@2024-03-01' = {
  parent: webPubSub
  name: webPubSubHubName
  properties: {
    anonymousConnectPolicy: 'deny'
    eventHandlers: []
    eventListeners: []
  }
}

// ------------------------------------------------------------------------------------------------
// Flex Consumption plan and the Function App (custom handler runtime)
// ------------------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy for Flex Consumption exists only in some regions; enable properties.zoneRedundant where the chosen region supports it
  name: planName
  location: location
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Event Grid delivers to the Functions host's webhook over the public endpoint (no VNet; the webhook requires the eventgrid_extension system key), and browsers load the live feed's pages and tokens (web, negotiate, orderStatus) from it
  // checkov:skip=CKV_AZURE_17: client certificates do not apply: neither Event Grid delivery nor the browsers of the live feed present one
  // checkov:skip=CKV_AZURE_212: numberOfWorkers is a dedicated-plan setting; Flex Consumption scales instances on demand (maximumInstanceCount)
  // checkov:skip=CKV_AZURE_213: no HTTP health-check path: Flex Consumption starts instances on demand, and no function is a health probe (Event Grid triggers, and the live feed's web, negotiate and orderStatus)
  // checkov:skip=CKV_AZURE_78: siteConfig.ftpsState is not set: Flex Consumption deploys through One Deploy, and FTP basic-auth publishing is off (ftpBasicAuth below)
  name: functionAppName
  location: location
  kind: 'functionapp,linux'
  // Declared so a redeployment keeps it: a PUT resets what the template leaves out, tags included.
  tags: empty(deployedPackageSha256) ? {} : {
    'ordergrid-package-sha256': deployedPackageSha256
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
  dependsOn: [
    deploymentContainer
  ]
}

// No basic-auth (publishing profile) credentials for SCM or FTP: az deploys to Flex Consumption
// with an Entra token (One Deploy), so nothing needs them.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

// The whole app settings set, written only when it differs from the app's (see the module). No
// FUNCTIONS_WORKER_RUNTIME: on Flex the runtime comes from functionAppConfig.runtime.
module appSettings 'modules/app-settings.bicep' = {
  name: 'ordergrid-app-settings'
  params: {
    functionAppName: functionApp.name
    appliedFingerprint: appliedAppSettingsFingerprint
    settings: {
      // Host storage, identity-based (system-assigned identity; Storage Blob Data Owner and Storage
      // Table Data Contributor below).
      AzureWebJobsStorage__accountName: storage.name
      AzureWebJobsStorage__credential: 'managedidentity'
      // Application Insights with Entra authentication (Monitoring Metrics Publisher below).
      APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
      // The OrderProcessor's eventGrid output binding ("connection": "OrdersTopic"), identity-based.
      OrdersTopic__topicEndpointUri: eventGrid[ordersTopicIndex].outputs.endpoint
      OrdersTopic__credential: 'managedidentity'
      // The handler's own settings.
      ORDERGRID_STORE: 'blob'
      ORDERGRID_STORAGE__blobServiceUri: 'https://${storage.name}.blob.${environment().suffixes.storage}'
      ORDERGRID_EMAIL_TRANSPORT: 'smtp'
      ORDERGRID_EMAIL_FROM: emailFrom
      ORDERGRID_SMTP_HOST: smtpHost
      ORDERGRID_SMTP_PORT: string(smtpPort)
      ORDERGRID_SMTP_TLS: 'starttls'
      ORDERGRID_SMTP_USERNAME: smtpUsername
      // A Key Vault reference, resolved by the platform with the app identity: never the password.
      ORDERGRID_SMTP_PASSWORD: '@Microsoft.KeyVault(SecretUri=${keyVault.properties.vaultUri}secrets/${smtpPasswordSecretName}/)'
      ORDERGRID_LOG_FORMAT: 'json'
      // The live feed's bindings ("connection": "WebPubSubConnectionString") and the handler's
      // :generateToken calls, identity-based: a section with serviceUri is an identity connection
      // (WebPubSubServiceAccessUtil, WebPubSub extension 1.10.0+, bundle 4.33.0+: see host.json),
      // its credential the system identity, as for OrdersTopic. (pycep: at most 4 comment lines here.)
      WebPubSubConnectionString__serviceUri: 'https://${webPubSub.properties.hostName}'
      WebPubSubConnectionString__credential: 'managedidentity'
      // Who may open the operators' board (matched against X-MS-CLIENT-PRINCIPAL-NAME); empty: nobody.
      ORDERGRID_OPERATORS: operators
    }
  }
  // The roles first: the app (re)starts on this write and should find its identity's roles.
  dependsOn: [
    appStorageBlobDataOwner
    appStorageTableDataContributor
    appMonitoringMetricsPublisher
    appKeyVaultSecretsUser
    appWebPubSubServiceOwner
    webPubSubHub
    ordersContainer
    emailLedgerContainer
  ]
}

// ------------------------------------------------------------------------------------------------
// Role assignments of the app identity (names: guid(scope, app, role), stable across deployments)
// ------------------------------------------------------------------------------------------------

// Storage Blob Data Owner on the account: the role Microsoft documents for identity-based
// AzureWebJobsStorage (the host creates and leases its own azure-webjobs-* containers), and Flex
// reads the package from app-package with the same identity. It also covers the handler's orders
// and email-ledger containers, so no narrower container roles are added: they would grant nothing
// more. No queue role: the app has no queue or blob triggers.
resource appStorageBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
    description: 'ordergrid Function App: identity-based AzureWebJobsStorage, deployment package, orders and email-ledger containers'
  }
}

// Storage Table Data Contributor on the account: the host stores its diagnostic events in Table
// storage through AzureWebJobsStorage; without table rights it logs AZFD0003 ("Encountered a
// StorageException while trying to fetch the diagnostic events"), see
// https://learn.microsoft.com/azure/azure-functions/errors-diagnostics/diagnostic-events/azfd0003
// and "Connecting to host storage with an identity" in the Functions developer guide. The host
// names its own tables, so a narrower scope than the account is not possible.
resource appStorageTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
    description: 'ordergrid Function App: the Functions host diagnostic events in Table storage (AzureWebJobsStorage)'
  }
}

// Monitoring Metrics Publisher on the App Insights component only: Entra-authenticated telemetry.
resource appMonitoringMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionApp.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
    description: 'ordergrid Function App: Application Insights ingestion with Entra ID'
  }
}

// Key Vault Secrets User (read secret values) on this vault, which holds only the SMTP password.
resource appKeyVaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, functionApp.id, roles.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
    description: 'ordergrid Function App: resolve the smtp-password Key Vault reference'
  }
}

// Web PubSub Service Owner on the Web PubSub resource only, which holds nothing but the orders hub.
// The app sends to groups (OrderStatusFeed's output binding: .../groups/{group}/:send, data action
// Microsoft.SignalRService/WebPubSub/group/send/action) and makes client tokens (negotiate:
// :generateToken). A client token made with :generateToken connects only if the identity also holds
// Microsoft.SignalRService/WebPubSub/clientConnection/write; Microsoft: "The built-in Web PubSub
// Service Owner role includes both permissions ... No narrower built-in role includes both"
// (https://learn.microsoft.com/azure/azure-web-pubsub/howto-use-azure-identity). Its definition is
// dataActions Microsoft.SignalRService/WebPubSub/* and no control-plane actions
// (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/web-and-mobile#web-pubsub-service-owner).
// The only built-in alternative, Web PubSub Service Reader (*/read), can neither send nor make
// tokens. A custom role with just those data actions would be narrower, but creating one needs
// Microsoft.Authorization/roleDefinitions/write, which the documented deployer (Contributor + Role
// Based Access Control Administrator) lacks; see infra/README.md.
resource appWebPubSubServiceOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(webPubSub.id, functionApp.id, roles.webPubSubServiceOwner)
  scope: webPubSub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.webPubSubServiceOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
    description: 'ordergrid Function App: send the live order feed to groups and make client tokens (:generateToken)'
  }
}

// ------------------------------------------------------------------------------------------------
// Event Grid: one custom topic per entry of subscriptions.json, with its subscriptions, the topic
// identity's dead-letter role and the app's EventGrid Data Sender role (on the orders topic only)
// ------------------------------------------------------------------------------------------------

module eventGrid 'modules/event-grid-topic.bicep' = [for topic in subscriptionsFile.topics: {
  name: 'ordergrid-topic-${topic.name}'
  params: {
    topic: topic
    topicResourceName: '${namePrefix}-${topic.name}-${suffix}'
    location: location
    localAuthEnabled: topicLocalAuthEnabled
    functionAppId: functionApp.id
    dataSenderPrincipalId: (topic.name == ordersTopicName) ? functionApp.identity.principalId : ''
    storageAccountName: storage.name
    deadLetterContainerName: deadLetterContainer.name
    deploySubscriptions: deploySubscriptions
  }
}]

// ------------------------------------------------------------------------------------------------
// Outputs (read by scripts/deploy.sh)
// ------------------------------------------------------------------------------------------------

@description('Event Grid endpoint of the orders topic: ordergrid publish --endpoint <this>.')
output topicEndpoint string = eventGrid[ordersTopicIndex].outputs.endpoint

@description('Resource name of the orders topic.')
output topicName string = eventGrid[ordersTopicIndex].outputs.name

@description('Resource id of the orders topic (scope for an EventGrid Data Sender role assignment).')
output topicId string = eventGrid[ordersTopicIndex].outputs.id

@description('Function App name (az functionapp ... -n <this>).')
output functionAppName string = functionApp.name

@description('Default host name of the Function App (<app>.azurewebsites.net): the pages of the live feed are https://<this>/api/web/tracker and /api/web/board.')
output functionAppHostName string = functionApp.properties.defaultHostName

@description('Object id of the Function App system identity (scripts/deploy.sh waits for its role assignments).')
output functionAppPrincipalId string = functionApp.identity.principalId

@description('Fingerprint of the declared app settings; pass it as appliedAppSettingsFingerprint so the next deployment skips an identical write.')
output appSettingsFingerprint string = appSettings.outputs.fingerprint

@description('Whether this deployment wrote the app settings (and so restarted the app).')
output appSettingsWritten bool = appSettings.outputs.written

@description('Storage account of the host, the package, the handler containers and dead letters.')
output storageAccountName string = storage.name

@description('Key Vault holding the smtp-password secret.')
output keyVaultName string = keyVault.name

@description('Host name of the Web PubSub service of the live order feed (<name>.webpubsub.azure.com); browsers connect to wss://<this>/client/hubs/orders.')
output webPubSubHostName string = webPubSub.properties.hostName

@description('Whether this deployment created the event subscriptions.')
output subscriptionsDeployed bool = deploySubscriptions
