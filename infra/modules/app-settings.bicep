// The Function App's app settings, written only when they differ from the set the app carries.
//
// A Microsoft.Web/sites/config 'appsettings' PUT replaces the whole set, and App Service restarts
// the app on that write even when no value changed (reported for ARM redeployments in
// projectkudu/kudu#3219; nothing in Microsoft's documentation says otherwise). So the set is
// written only when its fingerprint differs from the fingerprint the app already carries:
//
//   - fingerprint = uniqueString(app name, string(settings)): a 13-character hash of the app name
//     and of every name and value below, in their declared order;
//   - the written set is `settings` plus ORDERGRID_APP_SETTINGS_FINGERPRINT = fingerprint, so the
//     fingerprint on the app is exactly the one of the set that was last written, in one write;
//   - scripts/deploy.sh reads that setting from the app before deploying and passes it as
//     appliedFingerprint (empty when the app or the setting does not exist yet: then the set is
//     written).
//
// Why a module: the settings hold deployment-time values (the App Insights connection string, the
// topic endpoint, the vault URI), and a resource condition must be known when its deployment starts
// (Bicep BCP177). A module is a nested deployment that starts after the resources its parameters
// name, so inside it `settings` is a plain parameter and the condition can compare it.
//
// What this does not see: a setting changed by hand keeps the old fingerprint, so it is put back
// only with the next change of the declared set (or after deleting ORDERGRID_APP_SETTINGS_FINGERPRINT).

@description('Name of the existing Function App whose app settings this writes.')
param functionAppName string

@description('The complete app settings (names and string values) without the fingerprint setting.')
param settings object

@description('ORDERGRID_APP_SETTINGS_FINGERPRINT as the app carries it now; empty (or different) writes the settings.')
param appliedFingerprint string = ''

var fingerprint = uniqueString(functionAppName, string(settings))

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

// Replaces the whole set, so nothing set by hand survives a write. No FUNCTIONS_WORKER_RUNTIME: on
// Flex the runtime comes from functionAppConfig.runtime.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = if (fingerprint != appliedFingerprint) {
  // checkov:skip=CKV_AZURE_13: checkov reads every Microsoft.Web/sites/config as the 'web' site config; this is 'appsettings' (key/value pairs), where the check does not apply
  // checkov:skip=CKV_AZURE_63: not the 'web' site config (see CKV_AZURE_13); logs go to Application Insights
  // checkov:skip=CKV_AZURE_65: not the 'web' site config (see CKV_AZURE_13)
  // checkov:skip=CKV_AZURE_66: not the 'web' site config (see CKV_AZURE_13)
  // checkov:skip=CKV_AZURE_80: not the 'web' site config (see CKV_AZURE_13); there is no .NET: the handler is a Rust binary
  // checkov:skip=CKV_AZURE_88: not the 'web' site config (see CKV_AZURE_13); Flex Consumption has no Azure Files content share
  // checkov:skip=CKV_AZURE_222: not the 'web' site config (see CKV_AZURE_13); public access is discussed on the Function App
  parent: functionApp
  name: 'appsettings'
  properties: union(settings, {
    ORDERGRID_APP_SETTINGS_FINGERPRINT: fingerprint
  })
}

@description('Fingerprint of the declared settings; pass it as appliedFingerprint to skip an identical write.')
output fingerprint string = fingerprint

@description('Whether this deployment wrote the app settings (and so restarted the app).')
output written bool = fingerprint != appliedFingerprint
