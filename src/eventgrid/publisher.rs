//! A client for Event Grid's publish API, on the Azure SDK's `azure_core` 1.x pipeline: retries
//! with backoff (honouring `retry-after`), a user agent, client request ids.
//!
//! Credentials, as Event Grid accepts them:
//! - an access key (`aeg-sas-key`);
//! - a SAS token this client signs with the key, fresh for every try (`aeg-sas-token`);
//! - Microsoft Entra ID (a bearer token for `https://eventgrid.azure.net/.default`), which the
//!   SDK only sends over https.
//!
//! Keys and tokens are never logged; the pipeline's own logging redacts these headers too.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::headers::HeaderName;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    ClientOptions, Context, ExponentialRetryOptions, Method, Pipeline, PipelineSendOptions,
    Request, RetryOptions, Transport, Url,
};
use azure_core::time::Duration;
use time::OffsetDateTime;

use super::sas::{self, TopicKey};
use super::{RawObject, Schema, protocol};

pub const ENTRA_SCOPE: &str = "https://eventgrid.azure.net/.default";

/// How the client proves it may publish.
pub enum PublishAuth {
    Key(TopicKey),
    /// Sign a SAS token with this key, valid for `ttl` from each try.
    Sas {
        key: TopicKey,
        ttl: std::time::Duration,
    },
    Entra(Arc<dyn TokenCredential>),
}

/// What the service said when it refused, or why nothing was said.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{endpoint} refused the events with {status} {code}: {message}")]
    Service {
        endpoint: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("could not publish to {endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    #[error("{0}")]
    Setup(String),
}

/// A successful publish.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub status: u16,
    /// The service's `x-ms-request-id`, to quote in a support request.
    pub request_id: Option<String>,
}

/// Signs each request with the topic's key: as it is (`aeg-sas-key`), or as a SAS token made
/// for the request (`aeg-sas-token`).
#[derive(Debug)]
enum KeyAuth {
    Key(TopicKey),
    Sas {
        key: TopicKey,
        resource: String,
        ttl: std::time::Duration,
    },
}

#[async_trait]
impl Policy for KeyAuth {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let (name, value) = match self {
            KeyAuth::Key(key) => (protocol::SAS_KEY, key.expose_secret().to_owned()),
            KeyAuth::Sas { key, resource, ttl } => (
                protocol::SAS_TOKEN,
                sas::generate(resource, OffsetDateTime::now_utc() + *ttl, key),
            ),
        };
        request.insert_header(HeaderName::from_static(name), value);
        next[0].send(ctx, request, &next[1..]).await
    }
}

pub struct PublisherClient {
    endpoint: Url,
    pipeline: Pipeline,
}

/// `https://host` or `https://host/` becomes `https://host/api/events`; a full topic endpoint is
/// kept as it is. Topic endpoints as Azure shows them end in `/api/events`.
pub fn normalize_endpoint(endpoint: &str) -> Result<Url, PublishError> {
    let mut url = Url::parse(endpoint)
        .map_err(|e| PublishError::Setup(format!("{endpoint:?} is not a URL: {e}; a topic endpoint looks like https://<topic>.<region>-1.eventgrid.azure.net/api/events")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PublishError::Setup(format!(
            "{endpoint:?} is not an http(s) URL"
        )));
    }
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/api/events");
    }
    url.set_query(None);
    Ok(url)
}

impl PublisherClient {
    pub fn new(endpoint: &str, auth: PublishAuth) -> Result<Self, PublishError> {
        Self::with_ca(endpoint, auth, None)
    }

    /// [`PublisherClient::new`], trusting also the CA in `ca_pem` (a local emulator's
    /// development CA) for an https endpoint.
    pub fn with_ca(
        endpoint: &str,
        auth: PublishAuth,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, PublishError> {
        let endpoint = normalize_endpoint(endpoint)?;
        let resource = endpoint.to_string();
        let auth: Arc<dyn Policy> = match auth {
            PublishAuth::Key(key) => Arc::new(KeyAuth::Key(key)),
            PublishAuth::Sas { key, ttl } => Arc::new(KeyAuth::Sas { key, resource, ttl }),
            PublishAuth::Entra(credential) => {
                if endpoint.scheme() != "https" {
                    return Err(PublishError::Setup(format!(
                        "Microsoft Entra ID tokens are only sent over https; {endpoint} is not (the local stack \
                         takes them at its HTTPS port, https://localhost:7443/<topic>/api/events by default)"
                    )));
                }
                Arc::new(BearerTokenAuthorizationPolicy::new(
                    credential,
                    [ENTRA_SCOPE],
                ))
            }
        };
        let transport = match ca_pem {
            None => None,
            Some(pem) => {
                let ca = reqwest::Certificate::from_pem(pem).map_err(|e| {
                    PublishError::Setup(format!("the CA certificate is not PEM: {e}"))
                })?;
                let client = reqwest::Client::builder()
                    .add_root_certificate(ca)
                    .build()
                    .map_err(|e| PublishError::Setup(format!("failed to set up https: {e}")))?;
                Some(Transport::new(Arc::new(client)))
            }
        };
        let options = ClientOptions {
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: Duration::milliseconds(200),
                max_retries: 4,
                max_delay: Duration::seconds(5),
                max_total_elapsed: Duration::seconds(30),
            }),
            transport,
            ..Default::default()
        };
        let pipeline = Pipeline::new(
            option_env!("CARGO_PKG_NAME"),
            option_env!("CARGO_PKG_VERSION"),
            options,
            Vec::new(),
            vec![auth],
            None,
        );
        Ok(Self { endpoint, pipeline })
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Publishes events (JSON objects in `schema`) in one request.
    pub async fn publish(
        &self,
        schema: Schema,
        events: &[RawObject],
    ) -> Result<Receipt, PublishError> {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("api-version", protocol::API_VERSION);
        let mut request = Request::new(url, Method::Post);
        let content_type = match schema {
            Schema::EventGrid => "application/json; charset=utf-8",
            Schema::CloudEvents => "application/cloudevents-batch+json; charset=utf-8",
        };
        request.insert_header(
            HeaderName::from_static("content-type"),
            content_type.to_owned(),
        );
        let body = serde_json::to_vec(events).map_err(|e| PublishError::Setup(e.to_string()))?;
        request.set_body(body);
        let response = self
            .pipeline
            .send(
                &Context::new(),
                &mut request,
                Some(PipelineSendOptions {
                    skip_checks: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| PublishError::Transport {
                endpoint: self.endpoint.to_string(),
                message: e.to_string(),
            })?;
        let status = u16::from(response.status());
        let request_id = response
            .headers()
            .get_optional_str(&HeaderName::from_static("x-ms-request-id"))
            .map(str::to_owned);
        if (200..300).contains(&status) {
            return Ok(Receipt { status, request_id });
        }
        let body: serde_json::Value =
            serde_json::from_slice(response.body().as_ref()).unwrap_or_default();
        Err(PublishError::Service {
            endpoint: self.endpoint.to_string(),
            status,
            code: body["error"]["code"].as_str().unwrap_or("").to_owned(),
            message: body["error"]["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(response.body().as_ref()).into_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_completed_to_the_publish_path() {
        assert_eq!(
            normalize_endpoint("https://t.westus2-1.eventgrid.azure.net")
                .unwrap()
                .as_str(),
            "https://t.westus2-1.eventgrid.azure.net/api/events"
        );
        assert_eq!(
            normalize_endpoint("http://127.0.0.1:7080/orders/api/events?api-version=2018-01-01")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:7080/orders/api/events"
        );
        assert!(normalize_endpoint("ftp://x").is_err());
        assert!(normalize_endpoint("not a url").is_err());
    }

    #[test]
    fn entra_needs_https() {
        #[derive(Debug)]
        struct NoCredential;
        #[async_trait]
        impl TokenCredential for NoCredential {
            async fn get_token(
                &self,
                _: &[&str],
                _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
            ) -> azure_core::Result<azure_core::credentials::AccessToken> {
                Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Credential,
                    "none",
                ))
            }
        }
        let err = PublisherClient::new(
            "http://127.0.0.1:1/api/events",
            PublishAuth::Entra(Arc::new(NoCredential)),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("only sent over https"));
    }
}
