//! Web PubSub access tokens: JWTs signed with HS256 over the access key's UTF-8 bytes (not its
//! base64 decoding), as the service, its SDKs and Microsoft's emulator do
//! (`WebPubSubServiceClient_helpers.cs`, `hubClient.ts`, `WebPubSubTokenService.cs`).
//!
//! A client token carries `aud` = `<endpoint>/client/hubs/<hub>`, `exp`, and optionally `sub`
//! (the user id), `role` and `webpubsub.group` (each a string or a list), `iat` and `nbf`. A REST
//! token carries `aud` = the request URL and `exp`.
//!
//! Invariants: the signature is checked in constant time (`Mac::verify_slice`) before any claim
//! is believed; `exp` is required; the key never appears in an error.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Clock skew allowed on `exp` and `nbf`, as Microsoft's emulator allows.
pub const CLOCK_SKEW_SECONDS: i64 = 5 * 60;

/// How long a token lives unless asked otherwise (the SDKs' default).
pub const DEFAULT_LIFETIME_SECONDS: i64 = 60 * 60;

/// A hub's access key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey(String);

impl AccessKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// A random key of 43 base64 characters, like the service's.
    pub fn generate() -> Self {
        let bytes: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
        Self(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(self.0.as_bytes()).expect("HMAC takes keys of any length")
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessKey(<redacted>)")
    }
}

/// A claim the service reads as one value or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn of(values: Vec<String>) -> Self {
        match values.len() {
            0 => Self::None,
            _ => Self::Many(values),
        }
    }

    pub fn values(&self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::One(v) => vec![v.clone()],
            Self::Many(v) => v.clone(),
        }
    }

    fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }
}

/// The claims ordergrid writes and reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Claims {
    pub aud: OneOrMany,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "OneOrMany::is_none")]
    pub role: OneOrMany,
    /// Groups the connection joins when it connects.
    #[serde(
        rename = "webpubsub.group",
        default,
        skip_serializing_if = "OneOrMany::is_none"
    )]
    pub groups: OneOrMany,
}

impl Claims {
    /// Claims for `audience`, valid from `now` for `lifetime_seconds`.
    pub fn new(audience: &str, now: i64, lifetime_seconds: i64) -> Self {
        Self {
            aud: OneOrMany::One(audience.to_owned()),
            exp: now + lifetime_seconds,
            iat: Some(now),
            nbf: Some(now),
            ..Self::default()
        }
    }
}

/// Why a token was refused. Says which check failed, never the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWT (three base64url parts)")]
    Malformed,
    #[error("the token's algorithm is {0:?}; Web PubSub access keys sign HS256")]
    Algorithm(String),
    #[error("the token's signature does not match the access key")]
    Signature,
    #[error("the token's claims are not readable: {0}")]
    Claims(String),
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("the token is not valid before {nbf} (now {now})")]
    NotYetValid { nbf: i64, now: i64 },
    #[error("the token's audience {found:?} is not {expected:?}")]
    Audience {
        found: Vec<String>,
        expected: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// Signs `claims` with `key`.
pub fn sign(claims: &Claims, key: &AccessKey) -> String {
    let header = Header {
        alg: "HS256".into(),
        typ: Some("JWT".into()),
    };
    let mut token =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("a header serializes"));
    token.push('.');
    token += &URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let mut mac = key.mac();
    mac.update(token.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    token.push('.');
    token += &signature;
    token
}

/// Checks `token`'s signature with `key`, then its time window at `now` (seconds since the
/// epoch) with [`CLOCK_SKEW_SECONDS`], then that one of its audiences is accepted by `audience`.
pub fn verify(
    token: &str,
    key: &AccessKey,
    now: i64,
    audience: impl Fn(&str) -> bool,
    expected: &str,
) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(TokenError::Malformed)?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm(header.alg));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let signed = token.rfind('.').map_or(token, |dot| &token[..dot]);
    let mut mac = key.mac();
    mac.update(signed.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::Signature)?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(claims)
        .map_err(|_| TokenError::Malformed)
        .and_then(|c| serde_json::from_slice(&c).map_err(|e| TokenError::Claims(e.to_string())))?;
    if claims.exp + CLOCK_SKEW_SECONDS < now {
        return Err(TokenError::Expired {
            exp: claims.exp,
            now,
        });
    }
    if let Some(nbf) = claims.nbf
        && nbf - CLOCK_SKEW_SECONDS > now
    {
        return Err(TokenError::NotYetValid { nbf, now });
    }
    let audiences = claims.aud.values();
    if !audiences.iter().any(|a| audience(a)) {
        return Err(TokenError::Audience {
            found: audiences,
            expected: expected.to_owned(),
        });
    }
    Ok(claims)
}

/// Seconds since the Unix epoch, now.
pub fn now_seconds() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUD: &str = "http://127.0.0.1:7090/client/hubs/orders";

    fn exact(aud: &str) -> bool {
        aud.eq_ignore_ascii_case(AUD)
    }

    #[test]
    fn a_signed_token_verifies_and_keeps_its_claims() {
        let key = AccessKey::new("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH");
        let mut claims = Claims::new(AUD, 1_000, 3_600);
        claims.sub = Some("user-1".into());
        claims.role = OneOrMany::of(vec!["webpubsub.joinLeaveGroup.order-1".into()]);
        claims.groups = OneOrMany::One("order-1".into());
        let token = sign(&claims, &key);
        assert_eq!(verify(&token, &key, 1_000, exact, AUD), Ok(claims));
    }

    #[test]
    fn every_check_refuses_with_its_own_reason() {
        let key = AccessKey::new("key");
        let token = sign(&Claims::new(AUD, 1_000, 60), &key);
        let other = AccessKey::new("other");
        assert_eq!(
            verify(&token, &other, 1_000, exact, AUD),
            Err(TokenError::Signature)
        );
        assert!(matches!(
            verify(
                &token,
                &key,
                1_000 + 60 + CLOCK_SKEW_SECONDS + 1,
                exact,
                AUD
            ),
            Err(TokenError::Expired { .. })
        ));
        assert!(verify(&token, &key, 1_000 + 60 + CLOCK_SKEW_SECONDS, exact, AUD).is_ok());
        assert!(matches!(
            verify(&token, &key, 1_000 - CLOCK_SKEW_SECONDS - 1, exact, AUD),
            Err(TokenError::NotYetValid { .. })
        ));
        assert!(matches!(
            verify(&token, &key, 1_000, |_| false, AUD),
            Err(TokenError::Audience { .. })
        ));
        assert_eq!(
            verify("a.b", &key, 1_000, exact, AUD),
            Err(TokenError::Malformed)
        );
        // A token whose claims were edited after signing.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"aud":"x","exp":99999999999}"#);
        parts[1] = &forged;
        assert_eq!(
            verify(&parts.join("."), &key, 1_000, exact, AUD),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn none_is_not_an_algorithm() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let claims = URL_SAFE_NO_PAD.encode(br#"{"aud":"x","exp":99999999999}"#);
        assert_eq!(
            verify(
                &format!("{header}.{claims}."),
                &AccessKey::new("k"),
                0,
                |_| true,
                "x"
            ),
            Err(TokenError::Algorithm("none".into()))
        );
    }

    #[test]
    fn roles_and_groups_read_as_one_value_or_many() {
        let claims: Claims = serde_json::from_str(
            r#"{"aud":["a","b"],"exp":1,"role":"r","webpubsub.group":["g1","g2"]}"#,
        )
        .unwrap();
        assert_eq!(claims.aud.values(), ["a", "b"]);
        assert_eq!(claims.role.values(), ["r"]);
        assert_eq!(claims.groups.values(), ["g1", "g2"]);
        assert_eq!(
            format!("{:?}", AccessKey::new("secret")),
            "AccessKey(<redacted>)"
        );
    }

    // Property tests (issue 14).
    use proptest::prelude::*;

    proptest! {
        /// Whatever is presented as a token: a reason or the claims, never a panic.
        #[test]
        fn any_text_as_a_token_is_answered(
            text in prop_oneof![
                "\\PC{0,120}",
                "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,43}",
            ],
        ) {
            let _ = verify(&text, &AccessKey::new("key"), 1_000, exact, AUD);
        }

        /// A signed token verifies with its claims; another key, or a changed character, does not.
        #[test]
        fn a_signed_token_round_trips_and_a_changed_one_does_not(
            sub in prop::option::of("\\PC{0,20}"),
            groups in prop::collection::vec("[a-z0-9-]{1,12}", 0..3),
            at in any::<prop::sample::Index>(),
        ) {
            let key = AccessKey::new("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH");
            let mut claims = Claims::new(AUD, 1_000, 3_600);
            claims.sub = sub;
            claims.groups = OneOrMany::of(groups);
            let token = sign(&claims, &key);
            prop_assert_eq!(verify(&token, &key, 1_000, exact, AUD), Ok(claims));
            prop_assert!(verify(&token, &AccessKey::new("other"), 1_000, exact, AUD).is_err());
            let i = at.index(token.len());
            let replacement = if token.as_bytes()[i] == b'A' { "B" } else { "A" };
            let mut changed = token.clone();
            changed.replace_range(i..i + 1, replacement);
            prop_assert!(verify(&changed, &key, 1_000, exact, AUD).is_err(), "{}", changed);
        }
    }
}
