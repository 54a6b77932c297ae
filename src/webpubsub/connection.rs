//! Where a Web PubSub service is and how to sign in to it, read from app settings the way the
//! Functions extension reads them (`WebPubSubServiceAccessUtil.cs`):
//! - a connection string `Endpoint=https://<name>.webpubsub.azure.com;AccessKey=<key>;Version=1.0;`
//!   in the setting itself; keys are case-insensitive, a trailing `/` on `Endpoint` is dropped,
//!   and `Port=` overrides the endpoint's port (the local services use it);
//! - or, identity-based, `<setting>__serviceUri=https://<name>.webpubsub.azure.com` (extension
//!   1.10.0 and later): Microsoft Entra ID with the app's managed identity, no key.

use std::collections::HashMap;
use std::fmt;

use azure_core::http::Url;

use super::token::AccessKey;

/// The setting the extension reads unless a binding names another.
pub const DEFAULT_CONNECTION_SETTING: &str = "WebPubSubConnectionString";

/// A Web PubSub service: its endpoint, and a key unless it is reached with an identity.
#[derive(Clone, PartialEq, Eq)]
pub struct WebPubSubConnection {
    endpoint: Url,
    key: Option<AccessKey>,
}

impl fmt::Debug for WebPubSubConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebPubSubConnection")
            .field("endpoint", &self.endpoint.as_str())
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl WebPubSubConnection {
    /// A service at `endpoint` (http or https) signed in to with `key`.
    pub fn with_key(endpoint: Url, key: AccessKey) -> Self {
        Self {
            endpoint,
            key: Some(key),
        }
    }

    /// Parses `Endpoint=…;AccessKey=…;Version=1.0;[Port=…;]`. Errors never quote the key.
    pub fn parse_connection_string(text: &str) -> Result<Self, String> {
        let mut endpoint = None;
        let mut key = None;
        let mut port = None;
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(format!(
                    "{:?} is not a name=value pair of a Web PubSub connection string",
                    part.split('=').next().unwrap_or("")
                ));
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(value.trim().trim_end_matches('/').to_owned()),
                "accesskey" => key = Some(AccessKey::new(value.trim())),
                "port" => {
                    port = Some(
                        value
                            .trim()
                            .parse::<u16>()
                            .map_err(|_| format!("Port={:?} is not a port number", value.trim()))?,
                    )
                }
                // Version and the endpoints for clients or servers behind a proxy are not used here.
                _ => {}
            }
        }
        let endpoint = endpoint.ok_or("the connection string has no Endpoint=")?;
        let mut url = parse_endpoint(&endpoint)?;
        if let Some(port) = port {
            url.set_port(Some(port))
                .map_err(|()| format!("Port= cannot apply to {endpoint}"))?;
        }
        let key = key.ok_or("the connection string has no AccessKey= (for Microsoft Entra ID, set <setting>__serviceUri instead)")?;
        Ok(Self::with_key(url, key))
    }

    /// The connection named `setting` in `settings`: its connection string, or its identity-based
    /// `__serviceUri`. `Ok(None)` when neither is set.
    pub fn from_settings(
        settings: &HashMap<String, String>,
        setting: &str,
    ) -> Result<Option<Self>, String> {
        let get = |name: &str| {
            settings
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let service_uri = format!("{setting}__serviceUri");
        match (get(setting), get(&service_uri)) {
            (Some(_), Some(_)) => Err(format!(
                "{setting} (a connection string) and {service_uri} (identity-based) are both set: keep one"
            )),
            (Some(text), None) => Self::parse_connection_string(text)
                .map(Some)
                .map_err(|e| format!("{setting}: {e}")),
            (None, Some(uri)) => parse_endpoint(uri)
                .map(|endpoint| {
                    Some(Self {
                        endpoint,
                        key: None,
                    })
                })
                .map_err(|e| format!("{service_uri}: {e}")),
            (None, None) => Ok(None),
        }
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// The access key; `None` for an identity-based connection.
    pub fn key(&self) -> Option<&AccessKey> {
        self.key.as_ref()
    }

    /// The connection string (for a key-based connection).
    pub fn connection_string(&self) -> Option<String> {
        let key = self.key.as_ref()?;
        let mut endpoint = self.endpoint.clone();
        let port = endpoint.port();
        let _ = endpoint.set_port(None);
        let endpoint = endpoint.as_str().trim_end_matches('/').to_owned();
        Some(match port {
            Some(port) => format!(
                "Endpoint={endpoint};Port={port};AccessKey={};Version=1.0;",
                key.expose_secret()
            ),
            None => format!(
                "Endpoint={endpoint};AccessKey={};Version=1.0;",
                key.expose_secret()
            ),
        })
    }

    /// `<endpoint>/client/hubs/<hub>` with the endpoint's scheme: the `aud` of client tokens.
    pub fn client_audience(&self, hub: &str) -> String {
        format!(
            "{}/client/hubs/{hub}",
            self.endpoint.as_str().trim_end_matches('/')
        )
    }

    /// `ws://…/client/hubs/<hub>` (`wss` for an https endpoint): where clients connect.
    pub fn client_base_url(&self, hub: &str) -> String {
        let audience = self.client_audience(hub);
        match audience.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", audience.trim_start_matches("http://")),
        }
    }

    /// The client URL with its access token, as the negotiate function hands it to a browser.
    pub fn client_url(&self, hub: &str, token: &str) -> String {
        format!("{}?access_token={token}", self.client_base_url(hub))
    }
}

fn parse_endpoint(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{text:?} is not an http(s) endpoint"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_read_as_the_extension_reads_them() {
        let c = WebPubSubConnection::parse_connection_string(
            "endpoint=http://localhost/;Port=8080;ACCESSKEY=abc;Version=1.0;",
        )
        .unwrap();
        assert_eq!(c.endpoint().as_str(), "http://localhost:8080/");
        assert_eq!(c.key().unwrap().expose_secret(), "abc");
        assert_eq!(
            c.client_audience("orders"),
            "http://localhost:8080/client/hubs/orders"
        );
        assert_eq!(
            c.client_url("orders", "t"),
            "ws://localhost:8080/client/hubs/orders?access_token=t"
        );
        assert_eq!(
            c.connection_string().unwrap(),
            "Endpoint=http://localhost;Port=8080;AccessKey=abc;Version=1.0;"
        );
        let azure = WebPubSubConnection::parse_connection_string(
            "Endpoint=https://shop.webpubsub.azure.com;AccessKey=k;Version=1.0;",
        )
        .unwrap();
        assert_eq!(
            azure.client_base_url("orders"),
            "wss://shop.webpubsub.azure.com/client/hubs/orders"
        );
        let err = WebPubSubConnection::parse_connection_string("Endpoint=https://x;Version=1.0")
            .unwrap_err();
        assert!(err.contains("AccessKey"), "{err}");
    }

    #[test]
    fn an_identity_based_connection_has_no_key_and_both_forms_together_are_refused() {
        let settings: HashMap<String, String> = [(
            "WebPubSubConnectionString__serviceUri".to_owned(),
            "https://shop.webpubsub.azure.com".to_owned(),
        )]
        .into();
        let c = WebPubSubConnection::from_settings(&settings, DEFAULT_CONNECTION_SETTING)
            .unwrap()
            .unwrap();
        assert!(c.key().is_none());
        let mut both = settings.clone();
        both.insert(
            DEFAULT_CONNECTION_SETTING.into(),
            "Endpoint=http://x;AccessKey=hunter2;Version=1.0;".into(),
        );
        let err =
            WebPubSubConnection::from_settings(&both, DEFAULT_CONNECTION_SETTING).unwrap_err();
        assert!(
            err.contains("keep one") && !err.contains("hunter2"),
            "{err}"
        );
        assert_eq!(
            WebPubSubConnection::from_settings(&HashMap::new(), DEFAULT_CONNECTION_SETTING),
            Ok(None)
        );
    }
}
