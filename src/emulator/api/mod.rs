//! The emulator's HTTP surface: Event Grid's publish API, the simple key-less `/publish`, and the
//! emulator's own health, admin endpoints and dashboard.

pub mod admin;
pub mod dashboard;
pub mod error;
pub mod identity;
pub mod otlp;
pub mod publish;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use self::error::ApiError;
use self::publish::{MAX_REQUEST_BYTES, Route};
use super::activity::Activity;
use super::activity::traces::TraceStore;
use super::dead_letter::DeadLetterSink;
use super::delivery::{SubscriptionRuntime, webhook};
use super::entra::{EntraMode, LocalIdentity};
use super::settings::{DeliverySettings, SIMPLE_PUBLISH};
use super::spool::Spool;
use super::tls::DevCertificate;
use crate::eventgrid::Schema;
use crate::eventgrid::sas::TopicKey;
use crate::local_guard::LocalGuard;

/// A topic as the publish API sees it.
pub struct TopicState {
    pub name: String,
    pub schema: Schema,
    pub resource_id: String,
    /// key1 and key2, as Azure gives every topic two.
    pub keys: Vec<TopicKey>,
}

pub struct ApiState {
    pub topics: Vec<TopicState>,
    pub spool: Arc<Spool>,
    pub runtimes: Vec<Arc<SubscriptionRuntime>>,
    pub dead_letters: Arc<dyn DeadLetterSink>,
    pub sender: webhook::Sender,
    pub delivery: Arc<DeliverySettings>,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    pub started: Instant,
    pub simple_publish: bool,
    pub entra: EntraMode,
    pub identity: LocalIdentity,
    /// `https://localhost:<port>` when the API is served over HTTPS too.
    pub https_url: Option<String>,
    pub certificate: Option<DevCertificate>,
    /// What happened, for the dashboard.
    pub activity: Arc<Activity>,
    /// The token the dashboard's actions must carry (see [`dashboard`]).
    pub dashboard_token: String,
    /// The function app's side of the dashboard, when the local stack attached it.
    pub app: std::sync::OnceLock<Arc<dyn dashboard::AppView>>,
    /// Spans for the dashboard's waterfall, when traces are kept (`ORDERGRID_EMULATOR_TRACES`).
    pub traces: Option<Arc<TraceStore>>,
    /// What every request goes through first (see [`crate::local_guard`]).
    pub guard: LocalGuard,
    /// KiB of request bodies the publish API may hold at once (`ORDERGRID_EMULATOR_PUBLISH_BUFFER`).
    pub publish_buffer: Arc<tokio::sync::Semaphore>,
}

/// How a request reached the API; the HTTPS server adds `Https` to every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Https,
}

impl ApiState {
    fn topic_named(&self, name: &str) -> Option<&TopicState> {
        self.topics
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// The topic of a request to `/api/events`: named by the first label of `Host`
    /// (`orders.localhost:7443`), or the only topic there is. Old clients drop the URL path, so
    /// the host has to be able to say it.
    fn topic_for_host(&self, headers: &HeaderMap) -> Option<&TopicState> {
        let host = headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let label = host.split(['.', ':']).next().unwrap_or("");
        self.topic_named(label).or(match self.topics.as_slice() {
            [only] => Some(only),
            _ => None,
        })
    }
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/events", post(publish_events))
        .route("/{topic}/api/events", post(publish_events))
        .route("/publish", post(publish_simple))
        .route("/health", get(admin::health))
        .route("/identity/token", get(identity::token))
        .route("/emulator/topics", get(admin::topics))
        .route("/emulator/subscriptions", get(admin::subscriptions))
        .route(
            "/emulator/subscriptions/{name}/validate",
            post(admin::revalidate),
        )
        .route("/emulator/deliveries", get(admin::deliveries))
        .route("/emulator/retries", get(admin::retries))
        .route("/emulator/dead-letters", get(admin::dead_letters))
        .route("/emulator/dead-letters/redeliver", post(admin::redeliver))
        .route(
            "/emulator/dead-letters/{container}/{*name}",
            get(admin::dead_letter),
        )
        .route(
            "/eventsubscriptions/{name}/validate",
            get(admin::manual_validation),
        )
        .route("/v1/traces", post(otlp::traces))
        .merge(dashboard::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            crate::local_guard::layer,
        ))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError::not_found(format!(
        "No HTTP resource was found that matches the request URI '{uri}'."
    ))
    .into_response()
}

/// Event Grid's publish API: `POST /<topic>/api/events`, or `POST /api/events` with the topic
/// named by the host (`<topic>.localhost`) or the only one there is, as Azure's endpoints name it.
async fn publish_events(
    State(api): State<Arc<ApiState>>,
    named: Option<Path<String>>,
    uri: Uri,
    transport: Option<Extension<Transport>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let topics = || {
        api.topics
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let topic = match &named {
        Some(Path(name)) => api.topic_named(name).ok_or_else(|| format!(
            "No HTTP resource was found that matches the request URI: there is no topic '{name}' (topics: {}).",
            topics()
        )),
        None => api.topic_for_host(&headers).ok_or_else(|| format!(
            "No topic matches this host; there are several topics ({}), so publish to /<topic>/api/events.",
            topics()
        )),
    };
    let topic = match topic {
        Ok(topic) => topic,
        Err(message) => return ApiError::not_found(message).into_response(),
    };
    let request = publish::Request {
        path: uri.path(),
        https: transport.is_some(),
        query: &query,
        headers: &headers,
        body,
    };
    let result = publish::publish(&api, topic, Route::Azure, request).await;
    respond(record_refusal(&api, topic, result))
}

/// Tells the dashboard's activity why a publish was refused.
fn record_refusal(
    api: &ApiState,
    topic: &TopicState,
    result: Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    if let Err(e) = &result {
        api.activity.publish_failed(
            &topic.name,
            e.status.as_u16(),
            &e.message,
            super::clock::now_ms(),
        );
    }
    result
}

/// The simple publish endpoint: `{"eventType", "data"}` with no key, so the seed's `curl` and
/// publishers work unchanged. Not an Azure API: loopback only, like everything here, and it can
/// be turned off (`ORDERGRID_EMULATOR_SIMPLE_PUBLISH=false`) to insist on Azure's.
async fn publish_simple(
    State(api): State<Arc<ApiState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    if !api.simple_publish {
        return ApiError::not_found(format!(
            "The simple /publish endpoint is turned off ({}=false).",
            SIMPLE_PUBLISH.name
        ))
        .into_response();
    }
    let topic = match query.get("topic") {
        Some(name) => api.topic_named(name),
        None => api.topic_for_host(&headers),
    };
    let Some(topic) = topic else {
        return ApiError::not_found(
            "There are several topics: name one with /publish?topic=<name>.",
        )
        .into_response();
    };
    // It needs no key, so it must not be a "simple" request a web page can send without a CORS
    // preflight (text/plain, a form): JSON only, as the seed's curl sends it. The counter
    // counts it, like any refused publish.
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            let t = t.trim().to_ascii_lowercase();
            t == "application/json" || t.ends_with("+json")
        });
    if !json {
        let refused = Err(ApiError::unsupported_media_type(
            "The simple /publish endpoint takes Content-Type: application/json only (a web page cannot send that without asking first).",
        ));
        return respond(record_refusal(&api, topic, refused));
    }
    let request = publish::Request {
        path: "/publish",
        https: false,
        query: &query,
        headers: &headers,
        body,
    };
    let result = publish::publish(&api, topic, Route::Simple, request).await;
    respond(record_refusal(&api, topic, result))
}

fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}
