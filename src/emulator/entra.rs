//! Microsoft Entra ID, locally: bearer tokens accepted on the publish API the way Azurite's
//! `--oauth basic` accepts them, and a managed-identity token endpoint that hands them out.
//!
//! Tokens are checked for their form (a JWT: three base64url parts, JSON header and claims),
//! audience (`https://eventgrid.azure.net`, Event Grid's) and lifetime (`exp`, `nbf`, with the
//! five minutes of clock skew Microsoft's validators allow), but **not their signature**: Entra
//! ID's signing keys cannot be fetched offline, and a local emulator has nothing to protect that
//! a signature would. Azure checks the signature and the `EventGrid Data Sender` role as well.
//!
//! The token endpoint speaks App Service's managed-identity protocol (`IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER`, api-version 2019-08-01), which `ManagedIdentityCredential` and
//! `DefaultAzureCredential` use in every Azure SDK (.NET, Python, JavaScript, Rust), so SDK
//! clients and the Functions host's identity-based output binding get tokens without a network.
//!
//! Invariants: the endpoint answers only a caller that presents the secret `IDENTITY_HEADER`
//! (kept owner-readable in the data folder, compared in constant time); tokens are never logged.

use std::path::Path;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

/// Whether bearer tokens are accepted on the publish API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntraMode {
    /// Checked for form, audience and lifetime, not signature.
    Local,
    /// Refused (`ORDERGRID_EMULATOR_ENTRA=off`).
    Off,
}

/// The audience of Event Grid's tokens (scope `https://eventgrid.azure.net/.default`).
pub const EVENT_GRID_AUDIENCE: &str = "https://eventgrid.azure.net";
/// Microsoft.IdentityModel's default clock skew.
const CLOCK_SKEW_SECONDS: i64 = 5 * 60;
/// How long minted tokens live (Entra's managed-identity tokens live about a day; an hour keeps
/// refreshes exercised).
const TOKEN_LIFETIME_SECONDS: i64 = 3600;
/// App Service's managed-identity protocol version.
pub const IDENTITY_API_VERSION: &str = "2019-08-01";

/// Why a bearer token was refused. Never quotes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the bearer token is not a JWT ({0})")]
    Malformed(&'static str),
    #[error(
        "the bearer token's audience is {0}, not {EVENT_GRID_AUDIENCE}; request it for the scope {EVENT_GRID_AUDIENCE}/.default"
    )]
    WrongAudience(String),
    #[error("the bearer token expired at {0} (unix seconds)")]
    Expired(i64),
    #[error("the bearer token is not valid before {0} (unix seconds)")]
    NotYetValid(i64),
}

#[derive(Deserialize)]
struct Claims {
    aud: Option<serde_json::Value>,
    exp: Option<i64>,
    nbf: Option<i64>,
}

/// Checks a bearer token's form, audience and lifetime (not its signature; see the module docs).
pub fn check_token(token: &str, now: OffsetDateTime) -> Result<(), TokenError> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [header, claims, _signature] = parts.as_slice() else {
        return Err(TokenError::Malformed("it does not have three parts"));
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .filter(serde_json::Value::is_object)
    };
    decode(header).ok_or(TokenError::Malformed("its header is not base64url JSON"))?;
    let claims: Claims = decode(claims)
        .and_then(|value| serde_json::from_value(value).ok())
        .ok_or(TokenError::Malformed("its claims are not base64url JSON"))?;
    let audiences: Vec<String> = match claims.aud {
        Some(serde_json::Value::String(aud)) => vec![aud],
        Some(serde_json::Value::Array(auds)) => auds
            .into_iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => return Err(TokenError::Malformed("it has no aud claim")),
    };
    if !audiences
        .iter()
        .any(|aud| aud.trim_end_matches('/') == EVENT_GRID_AUDIENCE)
    {
        return Err(TokenError::WrongAudience(audiences.join(", ")));
    }
    let now = now.unix_timestamp();
    let exp = claims
        .exp
        .ok_or(TokenError::Malformed("it has no exp claim"))?;
    if exp + CLOCK_SKEW_SECONDS <= now {
        return Err(TokenError::Expired(exp));
    }
    if let Some(nbf) = claims.nbf
        && nbf - CLOCK_SKEW_SECONDS > now
    {
        return Err(TokenError::NotYetValid(nbf));
    }
    Ok(())
}

/// The local managed identity: the secret callers present, and the tokens it mints.
#[derive(Clone)]
pub struct LocalIdentity {
    secret: String,
    file: std::path::PathBuf,
}

impl std::fmt::Debug for LocalIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalIdentity")
    }
}

/// What the token endpoint answers: App Service's response (`expires_on` in unix seconds, as a
/// string: the Rust and Python SDKs insist on that form).
#[derive(Debug)]
pub struct MintedToken {
    pub access_token: String,
    pub expires_on: i64,
}

/// The principal tokens are minted for (a fixed, recognisable id).
const PRINCIPAL: &str = "00000000-0000-0000-0000-0000000001de";

impl LocalIdentity {
    /// Reads `<data_dir>/identity-header`, making a new secret the first time.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("identity-header");
        let secret = match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
            Ok(_) | Err(_) => {
                let secret = URL_SAFE_NO_PAD.encode(
                    uuid::Uuid::new_v4()
                        .as_bytes()
                        .iter()
                        .chain(uuid::Uuid::new_v4().as_bytes())
                        .copied()
                        .collect::<Vec<u8>>(),
                );
                write_private(&path, &secret)?;
                secret
            }
        };
        Ok(Self { secret, file: path })
    }

    /// Where the secret is kept.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The value callers send in `X-IDENTITY-HEADER` (set as `IDENTITY_HEADER`).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Whether `presented` is the secret (constant time).
    pub fn admits(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.secret.as_bytes()))
    }

    /// A token for `resource` (an audience such as `https://eventgrid.azure.net`), signed with the
    /// secret (HS256), valid for an hour.
    pub fn mint(&self, resource: &str, now: OffsetDateTime) -> MintedToken {
        let issued = now.unix_timestamp();
        let expires_on = issued + TOKEN_LIFETIME_SECONDS;
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let claims = json!({
            "aud": resource.trim_end_matches("/.default"),
            "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
            "iat": issued,
            "nbf": issued,
            "exp": expires_on,
            "oid": PRINCIPAL,
            "sub": PRINCIPAL,
            "appid": PRINCIPAL,
            "tid": "00000000-0000-0000-0000-000000000000",
            "idtyp": "app",
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(signed.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        MintedToken {
            access_token: format!("{signed}.{signature}"),
            expires_on,
        }
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: serde_json::Value) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    const NOW: i64 = 1_800_000_000;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(NOW).unwrap()
    }

    #[test]
    fn tokens_are_checked_for_form_audience_and_lifetime() {
        let good = json!({"aud": "https://eventgrid.azure.net", "exp": NOW + 60, "nbf": NOW - 60});
        assert_eq!(check_token(&token(good), now()), Ok(()));
        let slash = json!({"aud": ["https://eventgrid.azure.net/"], "exp": NOW + 60});
        assert_eq!(check_token(&token(slash), now()), Ok(()));
        let storage = json!({"aud": "https://storage.azure.com", "exp": NOW + 60});
        assert_eq!(
            check_token(&token(storage), now()),
            Err(TokenError::WrongAudience(
                "https://storage.azure.com".into()
            ))
        );
        let expired = json!({"aud": EVENT_GRID_AUDIENCE, "exp": NOW - 301});
        assert_eq!(
            check_token(&token(expired), now()),
            Err(TokenError::Expired(NOW - 301))
        );
        let skewed = json!({"aud": EVENT_GRID_AUDIENCE, "exp": NOW - 299});
        assert_eq!(
            check_token(&token(skewed), now()),
            Ok(()),
            "five minutes of skew"
        );
        let early = json!({"aud": EVENT_GRID_AUDIENCE, "exp": NOW + 900, "nbf": NOW + 600});
        assert_eq!(
            check_token(&token(early), now()),
            Err(TokenError::NotYetValid(NOW + 600))
        );
        for bad in ["", "a.b", "a.b.c", "eyJ9.eyJ9.x"] {
            assert!(
                matches!(check_token(bad, now()), Err(TokenError::Malformed(_))),
                "{bad}"
            );
        }
        let no_exp = json!({"aud": EVENT_GRID_AUDIENCE});
        assert!(matches!(
            check_token(&token(no_exp), now()),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn minted_tokens_pass_the_check_and_the_secret_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let identity = LocalIdentity::load_or_create(dir.path()).unwrap();
        let minted = identity.mint("https://eventgrid.azure.net/.default", now());
        assert_eq!(check_token(&minted.access_token, now()), Ok(()));
        assert_eq!(minted.expires_on, NOW + 3600);
        let again = LocalIdentity::load_or_create(dir.path()).unwrap();
        assert!(again.admits(identity.secret()));
        assert!(!again.admits("guess"));
    }
}
