//! A client of the admin API, typed by its views and by its one error, [`AdminClientError`],
//! which keeps the answer's status so a caller can tell "no such thing" (404) from the rest.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    DeadLetterBlob, DeadLetterView, DeliveryRecord, ErrorBody, Health, PendingView,
    RedeliverRequest, Redelivered, SubscriptionView, TopicView,
};

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    /// Nothing answered at the URL (the emulator is not running there).
    #[error("is the emulator running? {url} did not answer")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The emulator answered with an error: its status and message.
    #[error("{url} answered {status}: {message}")]
    Refused {
        url: String,
        status: reqwest::StatusCode,
        message: String,
    },
    /// The answer was not the view expected.
    #[error("{url} answered unreadable JSON: {why}")]
    Unreadable { url: String, why: String },
}

impl AdminClientError {
    /// The emulator's answer was 404: the subscription, blob or route named does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Refused { status, .. } if *status == reqwest::StatusCode::NOT_FOUND)
    }

    /// The emulator's own message, when it answered one.
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Refused { message, .. } => Some(message),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, AdminClientError>;

#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// `base` is the emulator's base URL, with or without a trailing `/`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn health(&self) -> Result<Health> {
        self.get("/health").await
    }

    pub async fn topics(&self) -> Result<Vec<TopicView>> {
        self.get("/emulator/topics").await
    }

    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionView>> {
        self.get("/emulator/subscriptions").await
    }

    /// Recent attempts, newest first, of every subscription or of the one named.
    pub async fn deliveries(
        &self,
        subscription: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>> {
        let only = subscription
            .map(|s| format!("&subscription={s}"))
            .unwrap_or_default();
        self.get(&format!("/emulator/deliveries?limit={limit}{only}"))
            .await
    }

    pub async fn retries(&self) -> Result<Vec<PendingView>> {
        self.get("/emulator/retries").await
    }

    pub async fn dead_letters(&self) -> Result<Vec<DeadLetterView>> {
        self.get("/emulator/dead-letters").await
    }

    /// One dead-letter blob's content: a JSON array of events.
    pub async fn dead_letter(&self, blob: &DeadLetterBlob) -> Result<serde_json::Value> {
        self.dead_letter_at(&blob.container, &blob.name).await
    }

    /// The content of the dead letter `name` in `container`.
    pub async fn dead_letter_at(&self, container: &str, name: &str) -> Result<serde_json::Value> {
        self.get(&format!("/emulator/dead-letters/{container}/{name}"))
            .await
    }

    pub async fn redeliver(&self, request: &RedeliverRequest) -> Result<Redelivered> {
        self.send("/emulator/dead-letters/redeliver", Some(request))
            .await
    }

    /// Runs the validation handshake of the subscriptions with this name again.
    pub async fn revalidate(&self, subscription: &str) -> Result<()> {
        self.send::<serde_json::Value>(
            &format!("/emulator/subscriptions/{subscription}/validate"),
            None::<&()>,
        )
        .await
        .map(drop)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.read(path, self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).map_err(|e| AdminClientError::Unreadable {
                url: format!("{}{path}", self.base),
                why: e.to_string(),
            })?;
            request = request
                .header("content-type", "application/json")
                .body(bytes);
        }
        self.read(path, request).await
    }

    async fn read<T: DeserializeOwned>(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let unreachable = |source| AdminClientError::Unreachable {
            url: url.clone(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| e.error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(AdminClientError::Refused {
                url,
                status,
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| AdminClientError::Unreadable {
            url,
            why: e.to_string(),
        })
    }
}
