//! The Web PubSub extension's bindings, as the host stand-in carries them out
//! (Microsoft.Azure.WebJobs.Extensions.WebPubSub in Azure/azure-sdk-for-net, `WebPubSubConfigProvider`,
//! `WebPubSubService`; `../shared/reference/realtime-fanout.md` §1.2-1.4):
//!
//! - the service comes from the binding's `connection` setting (default
//!   `WebPubSubConnectionString`): a connection string, or `<connection>__serviceUri` for an
//!   identity-based connection, read from the app settings the stand-in was given, as the
//!   `eventGrid` output's `connection` is; the hub from the binding's `hub` or the `WebPubSubHub`
//!   setting. Both were checked when the function loaded.
//! - `webPubSubConnection` input: `{"baseUrl", "url", "accessToken"}` (`WebPubSubConnection`,
//!   `JObject.FromObject`): the client URL for the hub and a token for it, as the server SDK's
//!   `GetClientAccessUri(userId)` makes it: no roles, no groups, `sub` = the binding's `userId`
//!   (binding expressions resolved) when set, one hour's lifetime. With a key the token is signed
//!   here; with an identity it comes from the service's `:generateToken` API, as the SDK gets it
//!   with a `TokenCredential`. Locally the stand-in signs in to that API the way Core Tools' default
//!   credential does on a developer machine (Azure CLI / Azure Developer CLI sign-in); no managed
//!   identity is available to it.
//! - `webPubSub` output: see `super::outputs`.
//!
//! Invariant: one client per connection setting, built on first use and kept (the settings are
//! fixed for the host's lifetime, as the real host's are).

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use serde_json::{Value, json};

use super::HostState;
use super::binding_data::BindingData;
use super::manifest::{WebPubSubBinding, resolve_settings, web_pubsub_service};
use crate::webpubsub::token::DEFAULT_LIFETIME_SECONDS;
use crate::webpubsub::{DEFAULT_CONNECTION_SETTING, TokenRequest, WebPubSubClient};

/// The client for `service`'s connection, and its hub. `Err` says why there is none.
pub fn client(
    host: &HostState,
    service: &WebPubSubBinding,
    extension: &str,
) -> Result<(WebPubSubClient, String), String> {
    let (connection, hub) = web_pubsub_service(service, extension, &host.settings)?;
    let setting = service
        .connection
        .as_deref()
        .unwrap_or(DEFAULT_CONNECTION_SETTING);
    let mut clients = host
        .web_pubsub
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(client) = clients.get(setting) {
        return Ok((client.clone(), hub));
    }
    let credential: Option<Arc<dyn TokenCredential>> = match connection.key() {
        Some(_) => None,
        None => Some(
            azure_identity::DeveloperToolsCredential::new(None).map_err(|e| {
                format!("{setting}__serviceUri is identity-based, and no developer sign-in (az login / azd auth login) is available: {e}")
            })?,
        ),
    };
    let client = WebPubSubClient::new(connection, credential).map_err(|e| e.to_string())?;
    clients.insert(setting.to_owned(), client.clone());
    Ok((client, hub))
}

/// The `webPubSubConnection` input's value: `{"baseUrl", "url", "accessToken"}`.
pub async fn connection_value(
    host: &HostState,
    service: &WebPubSubBinding,
    user_id: Option<&str>,
    binding_data: &BindingData,
) -> Result<Value, String> {
    let user_id = match user_id {
        Some(template) => {
            let template = resolve_settings(template, &host.settings)?;
            Some(binding_data.resolve(&template).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let (client, hub) = client(host, service, "WebPubSubConnection")?;
    let request = TokenRequest {
        user_id,
        minutes_to_expire: (DEFAULT_LIFETIME_SECONDS / 60) as u32,
        ..TokenRequest::default()
    };
    let token = match client.sign_client_token(&hub, &request) {
        Some(token) => token,
        None => client
            .generate_token(&hub, &request)
            .await
            .map_err(|e| format!("the service's token API failed: {e}"))?,
    };
    let connection = client.connection();
    Ok(json!({
        "baseUrl": connection.client_base_url(&hub),
        "url": connection.client_url(&hub, &token),
        "accessToken": token,
    }))
}

/// The values of `function`'s input bindings, by binding name, for `Data`.
pub async fn input_values(
    host: &HostState,
    function: &super::manifest::FunctionManifest,
    binding_data: &BindingData,
) -> Result<Vec<(String, Box<serde_json::value::RawValue>)>, String> {
    let mut values = Vec::new();
    for binding in &function.inputs {
        let value = match &binding.kind {
            super::manifest::InputKind::WebPubSubConnection { service, user_id } => {
                connection_value(host, service, user_id.as_deref(), binding_data).await?
            }
        };
        let raw = serde_json::value::to_raw_value(&value).map_err(|e| e.to_string())?;
        values.push((binding.name.clone(), raw));
    }
    Ok(values)
}
