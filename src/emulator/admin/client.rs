//! A client of the admin API, typed by its views.

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    DeadLetterBlob, DeliveryRecord, ErrorBody, Health, PendingView, RedeliverRequest, Redelivered,
    SubscriptionView, TopicView,
};

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

    pub async fn health(&self) -> anyhow::Result<Health> {
        self.get("/health").await
    }

    pub async fn topics(&self) -> anyhow::Result<Vec<TopicView>> {
        self.get("/emulator/topics").await
    }

    pub async fn subscriptions(&self) -> anyhow::Result<Vec<SubscriptionView>> {
        self.get("/emulator/subscriptions").await
    }

    /// Recent attempts, newest first, of every subscription or of the one named.
    pub async fn deliveries(
        &self,
        subscription: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<DeliveryRecord>> {
        let only = subscription
            .map(|s| format!("&subscription={s}"))
            .unwrap_or_default();
        self.get(&format!("/emulator/deliveries?limit={limit}{only}"))
            .await
    }

    pub async fn retries(&self) -> anyhow::Result<Vec<PendingView>> {
        self.get("/emulator/retries").await
    }

    pub async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetterBlob>> {
        self.get("/emulator/dead-letters").await
    }

    /// One dead-letter blob's content: a JSON array of events.
    pub async fn dead_letter(&self, blob: &DeadLetterBlob) -> anyhow::Result<serde_json::Value> {
        self.get(&format!(
            "/emulator/dead-letters/{}/{}",
            blob.container, blob.name
        ))
        .await
    }

    pub async fn redeliver(&self, request: &RedeliverRequest) -> anyhow::Result<Redelivered> {
        self.send("/emulator/dead-letters/redeliver", Some(request))
            .await
    }

    /// Runs the validation handshake of the subscriptions with this name again.
    pub async fn revalidate(&self, subscription: &str) -> anyhow::Result<()> {
        self.send::<serde_json::Value>(
            &format!("/emulator/subscriptions/{subscription}/validate"),
            None::<&()>,
        )
        .await
        .map(drop)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.read(path, self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(body)?);
        }
        self.read(path, request).await
    }

    async fn read<T: DeserializeOwned>(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let response = request
            .send()
            .await
            .with_context(|| format!("is the emulator running? {url} did not answer"))?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| e.error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            anyhow::bail!("{url} answered {status}: {message}");
        }
        serde_json::from_slice(&body).with_context(|| format!("{url} answered unreadable JSON"))
    }
}
