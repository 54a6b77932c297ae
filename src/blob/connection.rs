//! Which Blob Storage account to use and how to sign in, from settings that follow the Azure
//! Functions conventions for a connection named `<prefix>`:
//!
//! - `<prefix>` holds a connection string: `UseDevelopmentStorage=true` (Azurite's well-known
//!   `devstoreaccount1` on `http://127.0.0.1:10000`), or an account-key string
//!   `DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…[;BlobEndpoint=…|;EndpointSuffix=…]`;
//! - or identity-based: `<prefix>__blobServiceUri` (https), optionally
//!   `<prefix>__credential=managedidentity` and `<prefix>__clientId` (a user-assigned identity).
//!
//! Parsing is pure (no I/O), so every mistake is reported at start-up, naming the setting and
//! never quoting a connection string or a key.

use std::collections::HashMap;
use std::fmt;

use azure_core::http::Url;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Azurite's documented account and key (public, the same on every machine).
pub const DEVSTORE_ACCOUNT: &str = "devstoreaccount1";
const DEVSTORE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEVSTORE_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// A storage account key: the decoded bytes that key the SharedKey HMAC. `Debug` never shows it.
#[derive(Clone)]
pub struct AccountKey(Vec<u8>);

impl AccountKey {
    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey(<redacted>)")
    }
}

/// How requests are authorized.
#[derive(Debug, Clone)]
pub enum BlobAuth {
    /// SharedKey signatures with an account key (Azurite, or accounts that allow shared keys).
    SharedKey { account: String, key: AccountKey },
    /// Microsoft Entra ID tokens of the managed identity: the system-assigned one, or the
    /// user-assigned one with this client id.
    ManagedIdentity { client_id: Option<String> },
    /// Microsoft Entra ID tokens of the developer signed in with `az login` or `azd auth login`.
    DeveloperTools,
}

/// A Blob Storage account and how to sign in to it.
#[derive(Debug, Clone)]
pub struct BlobConnection {
    service_url: Url,
    auth: BlobAuth,
}

impl BlobConnection {
    /// The service endpoint, e.g. `https://acct.blob.core.windows.net` or
    /// `http://127.0.0.1:10000/devstoreaccount1`; never ends in `/`.
    pub fn service_url(&self) -> &Url {
        &self.service_url
    }

    pub fn auth(&self) -> &BlobAuth {
        &self.auth
    }

    /// For logs: the endpoint and the kind of sign-in, never a secret.
    pub fn describe(&self) -> String {
        let how = match &self.auth {
            BlobAuth::SharedKey { account, .. } => format!("account key of {account}"),
            BlobAuth::ManagedIdentity { client_id: None } => {
                "system-assigned managed identity".into()
            }
            BlobAuth::ManagedIdentity {
                client_id: Some(id),
            } => format!("managed identity {id}"),
            BlobAuth::DeveloperTools => "developer credentials (az/azd)".into(),
        };
        format!(
            "{} ({how})",
            self.service_url.as_str().trim_end_matches('/')
        )
    }

    /// Reads the connection named `prefix` (see the module docs). `Ok(None)` when none of its
    /// settings is set. Empty values count as unset, as in `local.settings.json`.
    pub fn from_env(
        env: &HashMap<String, String>,
        prefix: &str,
    ) -> Result<Option<Self>, Vec<String>> {
        let get = |name: &str| {
            env.get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let service_uri_name = format!("{prefix}__blobServiceUri");
        let credential_name = format!("{prefix}__credential");
        let client_id_name = format!("{prefix}__clientId");
        let connection_string = get(prefix);
        let service_uri = get(&service_uri_name);
        let credential = get(&credential_name);
        let client_id = get(&client_id_name);
        match (connection_string, service_uri) {
            (None, None) => {
                if credential.is_some() || client_id.is_some() {
                    Err(vec![format!(
                        "{credential_name} and {client_id_name} need {service_uri_name} (the \
                         account's blob endpoint, https://<account>.blob.core.windows.net)"
                    )])
                } else {
                    Ok(None)
                }
            }
            (Some(_), Some(_)) => Err(vec![format!(
                "{prefix} (a connection string) and {service_uri_name} (identity-based) are both \
                 set: keep one"
            )]),
            (Some(raw), None) => Self::parse_connection_string(&raw)
                .map(Some)
                .map_err(|e| vec![format!("{prefix}: {e}")]),
            (None, Some(uri)) => {
                let mut errors = vec![];
                let service_url = match parse_service_url(&uri) {
                    Ok(url) if url.scheme() == "https" => Some(url),
                    Ok(_) => {
                        errors.push(format!(
                            "{service_uri_name}={uri:?}: must be https (Microsoft Entra ID tokens \
                             are only sent over TLS); for Azurite set {prefix}=UseDevelopmentStorage=true"
                        ));
                        None
                    }
                    Err(e) => {
                        errors.push(format!("{service_uri_name}={uri:?}: {e}"));
                        None
                    }
                };
                let managed = match credential.as_deref() {
                    None => None,
                    Some(c) if c.eq_ignore_ascii_case("managedidentity") => Some(true),
                    Some(other) => {
                        errors.push(format!(
                            "{credential_name}={other:?}: must be managedidentity (or unset)"
                        ));
                        None
                    }
                };
                // The managed identity when asked for (or a user-assigned one is named), or when
                // the platform provides one (App Service/Functions set IDENTITY_ENDPOINT, Cloud
                // Shell and older hosts MSI_ENDPOINT); otherwise the developer's `az`/`azd`
                // login, for running against a real account from a workstation.
                let platform_identity =
                    env.contains_key("IDENTITY_ENDPOINT") || env.contains_key("MSI_ENDPOINT");
                let auth = if managed == Some(true) || client_id.is_some() || platform_identity {
                    BlobAuth::ManagedIdentity { client_id }
                } else {
                    BlobAuth::DeveloperTools
                };
                match service_url {
                    Some(service_url) if errors.is_empty() => Ok(Some(Self { service_url, auth })),
                    _ => Err(errors),
                }
            }
        }
    }

    /// Parses a storage connection string. Errors never quote the string (it holds a key).
    pub fn parse_connection_string(raw: &str) -> Result<Self, String> {
        let mut parts: HashMap<String, String> = HashMap::new();
        for part in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(
                    "not a connection string (Name=value pairs separated by ';'); the value is \
                     not shown because it may hold a key"
                        .into(),
                );
            };
            parts.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        let part = |name: &str| parts.get(name).map(String::as_str);
        if let Some(dev) = part("usedevelopmentstorage") {
            if !dev.eq_ignore_ascii_case("true") {
                return Err("UseDevelopmentStorage must be true (or absent)".into());
            }
            let endpoint = match part("developmentstorageproxyuri") {
                Some(proxy) => {
                    let proxy = parse_service_url(proxy)
                        .map_err(|e| format!("DevelopmentStorageProxyUri is not usable: {e}"))?;
                    format!(
                        "{}://{}:10000/{DEVSTORE_ACCOUNT}",
                        proxy.scheme(),
                        proxy.host_str().unwrap_or("127.0.0.1")
                    )
                }
                None => DEVSTORE_BLOB_ENDPOINT.to_owned(),
            };
            return Ok(Self {
                service_url: parse_service_url(&endpoint)?,
                auth: BlobAuth::SharedKey {
                    account: DEVSTORE_ACCOUNT.into(),
                    key: AccountKey(STANDARD.decode(DEVSTORE_KEY).map_err(|e| e.to_string())?),
                },
            });
        }
        if part("sharedaccesssignature").is_some() {
            return Err(
                "SAS connection strings are not supported: use AccountName and AccountKey, or \
                 identity-based settings (__blobServiceUri)"
                    .into(),
            );
        }
        let account = part("accountname")
            .filter(|a| !a.is_empty())
            .ok_or("AccountName is missing (or use UseDevelopmentStorage=true for Azurite)")?;
        let key = part("accountkey")
            .filter(|k| !k.is_empty())
            .ok_or("AccountKey is missing")?;
        let key = STANDARD
            .decode(key)
            .ok()
            .filter(|k| !k.is_empty())
            .ok_or("AccountKey is not base64 (as the portal shows it under Access keys)")?;
        let endpoint = match part("blobendpoint") {
            Some(endpoint) => endpoint.to_owned(),
            None => {
                let protocol = part("defaultendpointsprotocol").unwrap_or("https");
                if !matches!(protocol, "http" | "https") {
                    return Err(format!(
                        "DefaultEndpointsProtocol={protocol:?}: must be http or https"
                    ));
                }
                let suffix = part("endpointsuffix").unwrap_or("core.windows.net");
                format!("{protocol}://{account}.blob.{suffix}")
            }
        };
        let service_url = parse_service_url(&endpoint).map_err(|e| format!("BlobEndpoint {e}"))?;
        Ok(Self {
            service_url,
            auth: BlobAuth::SharedKey {
                account: account.to_owned(),
                key: AccountKey(key),
            },
        })
    }
}

/// An http(s) URL without query or fragment, its trailing `/` removed: the SDK appends
/// `/<container>` to it, and Azurite refuses the `//` a trailing slash would make.
fn parse_service_url(raw: &str) -> Result<Url, String> {
    let url =
        Url::parse(raw.trim_end_matches('/')).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{raw:?} is not an http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{:?} must be the bare endpoint, without a query (SAS) or fragment",
            url.origin().ascii_serialization()
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::env_of as env;

    const KEY: &str = "c2VjcmV0LWtleS1ieXRlcw==";

    #[test]
    fn development_storage_is_azurites_well_known_account() {
        let c = BlobConnection::parse_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(
            c.service_url().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert!(
            matches!(c.auth(), BlobAuth::SharedKey { account, .. } if account == DEVSTORE_ACCOUNT)
        );
    }

    #[test]
    fn account_key_strings_use_the_blob_endpoint_or_build_one() {
        let c = BlobConnection::parse_connection_string(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:4321/devstoreaccount1/;"
        ))
        .unwrap();
        assert_eq!(
            c.service_url().as_str(),
            "http://127.0.0.1:4321/devstoreaccount1",
            "no trailing slash"
        );
        let c = BlobConnection::parse_connection_string(&format!(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.chinacloudapi.cn"
        ))
        .unwrap();
        assert_eq!(
            c.service_url().as_str(),
            "https://acct.blob.core.chinacloudapi.cn/"
        );
        assert!(c.describe().contains("account key of acct"));
    }

    #[test]
    fn bad_connection_strings_are_explained_without_quoting_the_key() {
        for (raw, needle) in [
            ("AccountName=a", "AccountKey is missing"),
            (
                "AccountName=a;AccountKey=not base64!!",
                "AccountKey is not base64",
            ),
            ("hunter2", "not a connection string"),
            (
                "BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=x&sig=hunter2",
                "SAS connection strings are not supported",
            ),
            ("UseDevelopmentStorage=false", "must be true"),
        ] {
            let err = BlobConnection::parse_connection_string(raw).unwrap_err();
            assert!(err.contains(needle), "{raw}: {err}");
            assert!(
                !err.contains("hunter2") && !err.contains("not base64!!"),
                "{err}"
            );
        }
        let c = BlobConnection::parse_connection_string(&format!("AccountName=a;AccountKey={KEY}"))
            .unwrap();
        assert!(!format!("{c:?}").contains(KEY));
    }

    #[test]
    fn identity_settings_choose_the_managed_identity_when_asked_or_provided() {
        let p = "ORDERGRID_STORAGE";
        let uri = (
            "ORDERGRID_STORAGE__blobServiceUri",
            "https://acct.blob.core.windows.net/",
        );
        let c = BlobConnection::from_env(&env(&[uri]), p).unwrap().unwrap();
        assert_eq!(
            c.service_url().as_str(),
            "https://acct.blob.core.windows.net/"
        );
        assert!(matches!(c.auth(), BlobAuth::DeveloperTools));
        let c = BlobConnection::from_env(&env(&[uri, ("IDENTITY_ENDPOINT", "http://x")]), p)
            .unwrap()
            .unwrap();
        assert!(matches!(
            c.auth(),
            BlobAuth::ManagedIdentity { client_id: None }
        ));
        let c = BlobConnection::from_env(
            &env(&[uri, ("ORDERGRID_STORAGE__credential", "managedidentity")]),
            p,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(
            c.auth(),
            BlobAuth::ManagedIdentity { client_id: None }
        ));
        let c = BlobConnection::from_env(&env(&[uri, ("ORDERGRID_STORAGE__clientId", "abc")]), p)
            .unwrap()
            .unwrap();
        assert!(
            matches!(c.auth(), BlobAuth::ManagedIdentity { client_id: Some(id) } if id == "abc")
        );
        assert!(BlobConnection::from_env(&env(&[]), p).unwrap().is_none());
    }

    #[test]
    fn identity_settings_are_validated_by_name() {
        let p = "ORDERGRID_STORAGE";
        let err = |pairs: &[(&str, &str)]| {
            BlobConnection::from_env(&env(pairs), p)
                .unwrap_err()
                .join("\n")
        };
        assert!(
            err(&[(
                "ORDERGRID_STORAGE__blobServiceUri",
                "http://acct.blob.core.windows.net"
            )])
            .contains("must be https")
        );
        assert!(
            err(&[
                (
                    "ORDERGRID_STORAGE__blobServiceUri",
                    "https://a.blob.core.windows.net"
                ),
                ("ORDERGRID_STORAGE__credential", "password")
            ])
            .contains("ORDERGRID_STORAGE__credential=\"password\"")
        );
        assert!(
            err(&[
                (
                    "ORDERGRID_STORAGE__blobServiceUri",
                    "https://a.blob.core.windows.net"
                ),
                ("ORDERGRID_STORAGE", "UseDevelopmentStorage=true")
            ])
            .contains("both")
        );
        assert!(
            err(&[("ORDERGRID_STORAGE__clientId", "abc")])
                .contains("need ORDERGRID_STORAGE__blobServiceUri")
        );
        let e = err(&[("ORDERGRID_STORAGE", "AccountName=a;AccountKey=hunter2!")]);
        assert!(
            e.starts_with("ORDERGRID_STORAGE: ") && !e.contains("hunter2"),
            "{e}"
        );
    }
}
