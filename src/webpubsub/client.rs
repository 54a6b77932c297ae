//! A client of the Web PubSub REST data plane (api-version 2024-12-01), for what the output
//! binding's actions do and for client tokens when there is no key to sign them with.
//!
//! It signs in as the service expects: with a key, a bearer JWT whose `aud` is the request URL,
//! as the JavaScript and .NET SDKs sign it; with an identity, a Microsoft Entra ID token for
//! `https://webpubsub.azure.com`. Each action is one request, as the extension makes it.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::actions::{Action, Message};
use super::connection::WebPubSubConnection;
use super::token::{self, Claims};

pub const API_VERSION: &str = "2024-12-01";
/// The scope of Microsoft Entra ID tokens for the data plane.
pub const ENTRA_SCOPE: &str = "https://webpubsub.azure.com/.default";

/// What may stay unescaped in a path segment or query value.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why a request failed, and whether trying again may help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    /// The service answered with an error.
    #[error("Web PubSub answered {status}: {message}")]
    Status { status: u16, message: String },
    /// No answer: refused, reset, timed out.
    #[error("Web PubSub did not answer: {0}")]
    Transport(String),
    /// No token to sign in with.
    #[error("could not sign in to Web PubSub: {0}")]
    SignIn(String),
}

impl ServiceError {
    pub fn is_transient(&self) -> bool {
        match self {
            ServiceError::Status { status, .. } => *status >= 500 || *status == 429,
            ServiceError::Transport(_) | ServiceError::SignIn(_) => true,
        }
    }
}

/// A client token's scope: who it is for, what it may do, which groups it joins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRequest {
    pub user_id: Option<String>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub minutes_to_expire: u32,
}

#[derive(Clone)]
pub struct WebPubSubClient {
    connection: WebPubSubConnection,
    credential: Option<Arc<dyn TokenCredential>>,
    http: reqwest::Client,
}

impl WebPubSubClient {
    /// A client for `connection`; an identity-based one needs `credential`.
    pub fn new(
        connection: WebPubSubConnection,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> Result<Self, ServiceError> {
        if connection.key().is_none() && credential.is_none() {
            return Err(ServiceError::SignIn(
                "an identity-based connection needs a credential".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ServiceError::Transport(e.to_string()))?;
        Ok(Self {
            connection,
            credential,
            http,
        })
    }

    pub fn connection(&self) -> &WebPubSubConnection {
        &self.connection
    }

    /// Carries out one output-binding action.
    pub async fn apply(&self, hub: &str, action: &Action) -> Result<(), ServiceError> {
        let hub_path = format!("/api/hubs/{}", segment(hub));
        let excluded = |ids: &[String]| -> Vec<(&'static str, String)> {
            ids.iter().map(|id| ("excluded", id.clone())).collect()
        };
        let reason = |r: &Option<String>| -> Vec<(&'static str, String)> {
            r.iter().map(|r| ("reason", r.clone())).collect()
        };
        let (method, path, query, message) = match action {
            Action::SendToAll {
                message,
                excluded: ex,
            } => (
                Method::Post,
                format!("{hub_path}/:send"),
                excluded(ex),
                Some(message),
            ),
            Action::SendToGroup {
                group,
                message,
                excluded: ex,
            } => (
                Method::Post,
                format!("{hub_path}/groups/{}/:send", segment(group)),
                excluded(ex),
                Some(message),
            ),
            Action::SendToUser { user_id, message } => (
                Method::Post,
                format!("{hub_path}/users/{}/:send", segment(user_id)),
                vec![],
                Some(message),
            ),
            Action::SendToConnection {
                connection_id,
                message,
            } => (
                Method::Post,
                format!("{hub_path}/connections/{}/:send", segment(connection_id)),
                vec![],
                Some(message),
            ),
            Action::AddUserToGroup { user_id, group } => (
                Method::Put,
                format!(
                    "{hub_path}/users/{}/groups/{}",
                    segment(user_id),
                    segment(group)
                ),
                vec![],
                None,
            ),
            Action::RemoveUserFromGroup { user_id, group } => (
                Method::Delete,
                format!(
                    "{hub_path}/users/{}/groups/{}",
                    segment(user_id),
                    segment(group)
                ),
                vec![],
                None,
            ),
            Action::RemoveUserFromAllGroups { user_id } => (
                Method::Delete,
                format!("{hub_path}/users/{}/groups", segment(user_id)),
                vec![],
                None,
            ),
            Action::AddConnectionToGroup {
                connection_id,
                group,
            } => (
                Method::Put,
                format!(
                    "{hub_path}/groups/{}/connections/{}",
                    segment(group),
                    segment(connection_id)
                ),
                vec![],
                None,
            ),
            Action::RemoveConnectionFromGroup {
                connection_id,
                group,
            } => (
                Method::Delete,
                format!(
                    "{hub_path}/groups/{}/connections/{}",
                    segment(group),
                    segment(connection_id)
                ),
                vec![],
                None,
            ),
            Action::CloseAllConnections {
                excluded: ex,
                reason: r,
            } => (
                Method::Post,
                format!("{hub_path}/:closeConnections"),
                [excluded(ex), reason(r)].concat(),
                None,
            ),
            Action::CloseClientConnection {
                connection_id,
                reason: r,
            } => (
                Method::Delete,
                format!("{hub_path}/connections/{}", segment(connection_id)),
                reason(r),
                None,
            ),
            Action::CloseGroupConnections {
                group,
                excluded: ex,
                reason: r,
            } => (
                Method::Post,
                format!("{hub_path}/groups/{}/:closeConnections", segment(group)),
                [excluded(ex), reason(r)].concat(),
                None,
            ),
        };
        self.send(method, &path, &query, message).await.map(drop)
    }

    /// A client token from the service's token API (`:generateToken`): how clients get tokens
    /// when local auth is off and there is no key to sign them with.
    pub async fn generate_token(
        &self,
        hub: &str,
        request: &TokenRequest,
    ) -> Result<String, ServiceError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(user) = &request.user_id {
            query.push(("userId", user.clone()));
        }
        query.extend(request.roles.iter().map(|r| ("role", r.clone())));
        query.extend(request.groups.iter().map(|g| ("group", g.clone())));
        query.push(("minutesToExpire", request.minutes_to_expire.to_string()));
        let path = format!("/api/hubs/{}/:generateToken", segment(hub));
        let body = self.send(Method::Post, &path, &query, None).await?;
        #[derive(Deserialize)]
        struct Generated {
            token: String,
        }
        serde_json::from_slice::<Generated>(&body)
            .map(|g| g.token)
            .map_err(|e| ServiceError::Status {
                status: 200,
                message: format!("the token API answered unreadable JSON: {e}"),
            })
    }

    /// A client token signed with the connection's key, if it has one.
    pub fn sign_client_token(&self, hub: &str, request: &TokenRequest) -> Option<String> {
        let key = self.connection.key()?;
        let now = token::now_seconds();
        let lifetime = i64::from(request.minutes_to_expire.max(1)) * 60;
        let mut claims = Claims::new(&self.connection.client_audience(hub), now, lifetime);
        claims.sub = request.user_id.clone();
        claims.role = token::OneOrMany::of(request.roles.clone());
        claims.groups = token::OneOrMany::of(request.groups.clone());
        Some(token::sign(&claims, key))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        message: Option<&Message>,
    ) -> Result<Vec<u8>, ServiceError> {
        let mut url = self.connection.endpoint().clone();
        url.set_path(path);
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
            pairs.append_pair("api-version", API_VERSION);
        }
        let bearer = match (self.connection.key(), &self.credential) {
            (Some(key), _) => {
                let claims = Claims::new(url.as_str(), token::now_seconds(), 5 * 60);
                token::sign(&claims, key)
            }
            (None, Some(credential)) => credential
                .get_token(&[ENTRA_SCOPE], None)
                .await
                .map_err(|e| ServiceError::SignIn(e.to_string()))?
                .token
                .secret()
                .to_owned(),
            (None, None) => unreachable!("checked in new"),
        };
        let mut request = match method {
            Method::Post => self.http.post(url.as_str()),
            Method::Put => self.http.put(url.as_str()),
            Method::Delete => self.http.delete(url.as_str()),
        }
        .bearer_auth(bearer);
        request = match message {
            Some(m) => request
                .header("content-type", m.data_type.content_type())
                .body(m.data.clone()),
            None => request.header("content-length", "0"),
        };
        let response = request
            .send()
            .await
            .map_err(|e| ServiceError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| ServiceError::Transport(e.to_string()))?;
        if (200..300).contains(&status) {
            Ok(body.to_vec())
        } else {
            Err(ServiceError::Status {
                status,
                message: String::from_utf8_lossy(&body).chars().take(500).collect(),
            })
        }
    }
}

#[derive(Clone, Copy)]
enum Method {
    Post,
    Put,
    Delete,
}

fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}
