// Parameters of infra/main.bicep for scripts/deploy.sh (az deployment group create -p this file).
// Copy it for another environment and pass the copy with scripts/deploy.sh --params FILE.
//
// Every parameter of main.bicep that deploy.sh overrides on the command line (location,
// deploySubscriptions, appliedAppSettingsFingerprint, deployedPackageSha256) is assigned here: some
// Bicep versions apply `name=value` overrides given with a .bicepparam file only to parameters the
// file assigns (Azure/bicep#12647).
//
// No secret is written here: the SMTP password is read from the environment of the az process.
using 'main.bicep'

// Prefix of every resource name, 2-9 lowercase letters or digits. A suffix derived from the
// resource group and this prefix makes the global names unique, and keeps them stable between
// deployments (which is what makes a redeployment change nothing).
param namePrefix = 'ordergrid'

// Region of every resource; it must offer Flex Consumption
// (az functionapp list-flexconsumption-locations -o table). deploy.sh overrides it with --location.
param location = 'swedencentral'

// Sender of the order emails: an address, or "Display Name <address>".
param emailFrom = 'ordergrid <orders@example.com>'

// SMTP submission server (STARTTLS on smtpPort) and its user name.
param smtpHost = 'smtp.example.com'
param smtpPort = 587
param smtpUsername = 'orders@example.com'

// SMTP password: from the environment variable ORDERGRID_SMTP_PASSWORD, written to the Key Vault
// secret smtp-password and read by the app through a Key Vault reference. Unset or empty keeps the
// secret that is already in the vault (a redeployment creates no new version).
param smtpPassword = readEnvironmentVariable('ORDERGRID_SMTP_PASSWORD', '')

// Flex Consumption instance size in MB (512, 2048 or 4096) and scale-out limit (40-1000).
param instanceMemoryMB = 2048
param maximumInstanceCount = 100

// Accept Event Grid access keys / SAS tokens on the topic. false: Entra ID only (publish with
// `ordergrid publish --auth entra`, the caller needs EventGrid Data Sender on the topic).
param topicLocalAuthEnabled = false

// The live order feed. SKU of the Azure Web PubSub service: Free_F1 costs nothing but has no SLA
// and small quotas (20 concurrent connections, 20,000 messages a day); Standard_S1 is the cheapest
// tier with an SLA, billed per unit and day whether used or not.
param webPubSubSku = 'Free_F1'

// Principal names allowed to open the operators' live board (/api/web/board), comma-separated,
// e.g. 'alice@contoso.com,bob@contoso.com'. Each is matched against the X-MS-CLIENT-PRINCIPAL-NAME
// request header, which App Service Authentication sets (and removes from client requests) only
// when it is enabled on the Function App, which this template does not do: enable it (with an
// Entra app registration) before naming anyone here. Empty: nobody; '*': anyone who reaches the app.
param operators = ''

// Create the event subscriptions. Keep false here: deploy.sh deploys with false, deploys the code,
// waits for the functions to be indexed, then deploys again with -p deploySubscriptions=true.
param deploySubscriptions = false

// What the Function App carries now, read by deploy.sh before each deployment: the fingerprint of
// the app settings last written (equal: the settings are not written again, so the app does not
// restart) and the SHA-256 of the deployed package's content (kept in a tag). Keep both empty here.
param appliedAppSettingsFingerprint = ''
param deployedPackageSha256 = ''
