//! Scoped Web PubSub client tokens for browsers: a token names the groups its connection joins
//! and no roles, so it can receive those groups' messages and do nothing else (no joinGroup, no
//! sendToGroup: both need roles, which these tokens never carry).
//!
//! Two ways to get one, as the service offers them:
//! - with a key (`WebPubSubConnectionString` is a connection string): signed here, HS256 over the
//!   access key, `aud` = `<endpoint>/client/hubs/<hub>`;
//! - with an identity (`WebPubSubConnectionString__serviceUri`, local auth off on Azure): from the
//!   service's `:generateToken`, signed in with the Function App's managed identity (the same
//!   `ManagedIdentityCredential` the blob store uses for an identity-based connection).
//!
//! Lifetime: [`CLIENT_TOKEN_MINUTES`]. The service checks a token only when a WebSocket
//! connects; the connection then lives on, a dropped one is recovered with its reconnection
//! token (no access token), and a fresh start renegotiates (the client's `getClientAccessUrl`).
//! So the token need only outlive the moment between negotiate and connect, plus clock skew, and
//! a URL that leaks (a proxy's log, a screenshot) is useless minutes later.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;

use crate::webpubsub::{ServiceError, TokenRequest, WebPubSubClient, WebPubSubConnection};

/// How long a browser's client token is valid. Five minutes covers a slow page and a few
/// minutes of clock skew between the app and the service; it is short because the token is
/// only needed to connect (see the module docs). `:generateToken` counts in whole minutes.
pub const CLIENT_TOKEN_MINUTES: u32 = 5;

/// Makes client tokens for the feed's service.
#[derive(Clone)]
pub struct ClientTokens {
    client: WebPubSubClient,
}

impl std::fmt::Debug for ClientTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ClientTokens")
            .field(self.client.connection())
            .finish()
    }
}

impl ClientTokens {
    /// For `connection`: signs with its key, or, identity-based, asks the service with the
    /// managed identity. Makes no request.
    pub fn new(connection: WebPubSubConnection) -> anyhow::Result<Self> {
        let credential: Option<Arc<dyn TokenCredential>> = match connection.key() {
            Some(_) => None,
            None => Some(
                azure_identity::ManagedIdentityCredential::new(None).map_err(|e| {
                    anyhow::anyhow!(
                        "failed to set up the managed identity for Web PubSub's token API: {e}"
                    )
                })?,
            ),
        };
        Self::with_credential(connection, credential)
    }

    /// For `connection`, signing in to the token API with `credential` when it has no key.
    pub fn with_credential(
        connection: WebPubSubConnection,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> anyhow::Result<Self> {
        let client = WebPubSubClient::new(connection, credential)
            .map_err(|e| anyhow::anyhow!("cannot use Web PubSub: {e}"))?;
        Ok(Self { client })
    }

    pub fn connection(&self) -> &WebPubSubConnection {
        self.client.connection()
    }

    /// A token for `hub` whose only claims beyond `aud`, `exp`, `iat` and `nbf` are `groups`:
    /// no user, no roles.
    pub async fn issue(&self, hub: &str, groups: Vec<String>) -> Result<String, ServiceError> {
        let request = TokenRequest {
            user_id: None,
            roles: Vec::new(),
            groups,
            minutes_to_expire: CLIENT_TOKEN_MINUTES,
        };
        match self.client.sign_client_token(hub, &request) {
            Some(token) => Ok(token),
            None => self.client.generate_token(hub, &request).await,
        }
    }
}
