//! The handler's HTTP app: routes, the invocation pipeline, and `Handler::build`, which binds
//! the listener itself so tests run the identical app on port 0.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::Instrument;

use super::client_tokens::ClientTokens;
use super::email_notifier::{SentUnrecorded, UnreleasedClaims};
use super::operators::Operators;
use super::settings::HandlerSettings;
use super::{
    EMAIL_NOTIFIER, FUNCTIONS, FunctionSpec, InvocationError, NEGOTIATE, ORDER_PROCESSOR,
    ORDER_STATUS, ORDER_STATUS_FEED, RECENT_ORDERS, Trigger, WEB,
};
use super::{
    email_notifier, negotiate, order_processor, order_status, order_status_feed, recent_orders, web,
};
use crate::domain::OrderLimits;
use crate::email::{ConfirmationRenderer, EmailTransport};
use crate::eventgrid::InboundEvent;
use crate::http_server::{self, HttpLimits};
use crate::invocation::http::HttpRequestData;
use crate::invocation::{InvocationRequest, InvocationResponse};
use crate::local_guard::LocalGuard;
use crate::store::RecordStore;
use crate::trace::{self, Carried, Kind, Span, TraceParent, Tracer};

/// The side effects and policies the functions use.
pub struct Services {
    pub store: Arc<dyn RecordStore>,
    pub email: Arc<dyn EmailTransport>,
    pub renderer: ConfirmationRenderer,
    pub limits: OrderLimits,
    pub email_claim_timeout: Duration,
    /// Emails sent whose record the store did not take yet (see [`SentUnrecorded`]).
    pub sent_unrecorded: SentUnrecorded,
    /// Claims a failed send could not release (see [`UnreleasedClaims`]).
    pub unreleased_claims: UnreleasedClaims,
    pub max_body_bytes: usize,
    /// Client tokens for the live feed; `None` when no Web PubSub is configured (negotiate
    /// answers 503).
    pub client_tokens: Option<ClientTokens>,
    /// Who may open the operators' board.
    pub operators: Operators,
    /// Spans for each invocation and what it does (off unless an OTLP endpoint is set).
    pub tracer: Tracer,
    /// What the handler refuses from hostile pages (see [`crate::local_guard`]).
    pub guard: LocalGuard,
    /// Timeouts and the connection cap of its listener (see [`crate::http_server`]).
    pub http: HttpLimits,
}

impl Services {
    /// Opens the store and the email transport the settings name (see [`StoreSettings::open`]).
    ///
    /// [`StoreSettings::open`]: crate::store::settings::StoreSettings::open
    pub async fn from_settings(settings: &HandlerSettings, tracer: Tracer) -> anyhow::Result<Self> {
        let store = settings.store.open().await?;
        tracing::info!(store = %store.describe(), "store ready");
        let client_tokens = settings
            .web_pubsub
            .clone()
            .map(ClientTokens::new)
            .transpose()?;
        match &client_tokens {
            Some(tokens) => tracing::info!(
                web_pubsub = %tokens.connection().endpoint(),
                signing = if tokens.connection().key().is_some() { "access key" } else { "managed identity, token API" },
                operators = %settings.operators.describe(),
                "live feed ready"
            ),
            None => {
                tracing::info!("live feed off: no WebPubSubConnectionString; negotiate answers 503")
            }
        }
        Ok(Self {
            store,
            email: settings.email.open()?,
            renderer: ConfirmationRenderer::new(settings.email.from.clone()),
            limits: settings.limits.clone(),
            email_claim_timeout: settings.email_claim_timeout,
            sent_unrecorded: SentUnrecorded::default(),
            unreleased_claims: UnreleasedClaims::default(),
            max_body_bytes: settings.max_body_bytes,
            client_tokens,
            operators: settings.operators.clone(),
            tracer,
            guard: settings.guard.clone(),
            http: settings.http,
        })
    }
}

/// The router the host talks to. Tests may drive it directly.
pub fn app(services: Arc<Services>) -> Router {
    let limit = services.max_body_bytes;
    Router::new()
        // The host's readiness probe is `GET /`; any answer counts, a clear one helps people.
        .route("/", get(ready))
        .route("/{function}", post(invoke))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            services.guard.clone(),
            crate::local_guard::layer,
        ))
        .with_state(services)
}

async fn ready() -> &'static str {
    "ordergrid custom handler: ready\n"
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({"error": {
            "code": "NotFound",
            "message": "the custom handler serves GET / and POST /<FunctionName>"
        }})),
    )
        .into_response()
}

async fn invoke(
    State(services): State<Arc<Services>>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let invocation_id = headers
        .get("x-azure-functions-invocationid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // The host's invocation context (functions-custom-handler.md §2.2).
    let host_parent = TraceParent::of_headers(&headers);
    let span = tracing::info_span!(
        "invocation",
        function = %function,
        invocation_id = %invocation_id,
        event_id = tracing::field::Empty,
        order_id = tracing::field::Empty,
        // The invocation's trace: on Azure the host logs these lines to Application Insights
        // (Host.Function.Console), where a query for the trace id finds them.
        trace_id = tracing::field::Empty,
    );
    async move {
        let invocation = Invocation {
            id: &invocation_id,
            host_parent,
        };
        match dispatch(&services, &function, body, &invocation).await {
            Ok(response) => axum::Json(response).into_response(),
            Err(error) => {
                error.log();
                error.into_response()
            }
        }
    }
    .instrument(span)
    .await
}

/// What the host said about an invocation besides its envelope.
struct Invocation<'a> {
    id: &'a str,
    host_parent: Option<TraceParent>,
}

impl Invocation<'_> {
    /// The invocation's span, under `parent`, failed when the invocation fails.
    fn span(&self, services: &Services, spec: &FunctionSpec, parent: Option<TraceParent>) -> Span {
        let mut span = services.tracer.start(spec.name, Kind::Server, parent);
        span.set("faas.name", spec.name);
        span.set("faas.invocation_id", self.id.to_owned());
        span
    }
}

fn ended(
    mut span: Span,
    result: Result<InvocationResponse, InvocationError>,
) -> Result<InvocationResponse, InvocationError> {
    if let Err(error) = &result {
        span.fail(error.to_string());
    }
    result
}

async fn dispatch(
    services: &Services,
    function: &str,
    body: Result<Bytes, BytesRejection>,
    invocation: &Invocation<'_>,
) -> Result<InvocationResponse, InvocationError> {
    let spec = FUNCTIONS
        .iter()
        .find(|f| f.name == function)
        .ok_or_else(|| InvocationError::UnknownFunction(function.to_owned()))?;
    let body = body.map_err(|rejection| match rejection.status() {
        _ if http_server::timed_out(&rejection) => {
            InvocationError::BodyTimedOut(rejection.to_string())
        }
        StatusCode::PAYLOAD_TOO_LARGE => InvocationError::TooLarge {
            limit: services.max_body_bytes,
        },
        _ => InvocationError::BadEnvelope(rejection.body_text()),
    })?;
    let request =
        InvocationRequest::parse(&body).map_err(|e| InvocationError::of_request(spec.name, e))?;
    match spec.trigger {
        Trigger::EventGrid { binding, events } => {
            on_event(services, spec, &request, binding, events, invocation).await
        }
        Trigger::Http {
            binding, response, ..
        } => {
            let span = invocation.span(services, spec, invocation.host_parent);
            let result = on_request(services, spec, &request, binding, response).await;
            ended(span, result)
        }
    }
}

async fn on_event(
    services: &Services,
    spec: &FunctionSpec,
    request: &InvocationRequest<'_>,
    binding: &str,
    events: &[&str],
    invocation: &Invocation<'_>,
) -> Result<InvocationResponse, InvocationError> {
    let trigger = request
        .binding(binding)
        .map_err(|e| InvocationError::of_request(spec.name, e))?;
    let event =
        InboundEvent::parse(trigger.get()).map_err(|e| InvocationError::BadEvent(e.to_string()))?;
    tracing::Span::current().record("event_id", event.id.as_str());
    let carried = Carried::in_data(event.data_text());
    let parent = trace::invocation_parent(invocation.host_parent, carried.parent());
    if let Some(parent) = parent {
        tracing::Span::current().record("trace_id", parent.trace_id_hex());
    }
    let mut span = invocation.span(services, spec, parent);
    span.set("event.id", event.id.clone());
    span.set("event.type", event.event_type.clone());
    let result = on_event_traced(services, spec, &event, events, &mut span).await;
    ended(span, result)
}

async fn on_event_traced(
    services: &Services,
    spec: &FunctionSpec,
    event: &InboundEvent,
    events: &[&str],
    span: &mut Span,
) -> Result<InvocationResponse, InvocationError> {
    if !events
        .iter()
        .any(|handled| event.event_type.eq_ignore_ascii_case(handled))
    {
        let summary = format!(
            "ignored event type {:?}: {} handles {} only (the subscription's filter should exclude it)",
            event.event_type,
            spec.name,
            events.join(", ")
        );
        tracing::warn!(outcome = "ignored", "{summary}");
        return Ok(InvocationResponse::log(summary));
    }
    match spec.name {
        name if name == ORDER_PROCESSOR.name => {
            order_processor::handle(services, event, span).await
        }
        name if name == EMAIL_NOTIFIER.name => email_notifier::handle(services, event, span).await,
        name if name == ORDER_STATUS_FEED.name => order_status_feed::handle(event),
        other => Err(InvocationError::UnknownFunction(other.to_owned())),
    }
}

/// An HTTP function: its answer (whatever its status) goes to the caller in `Outputs.<response>`
/// of a 2xx invocation; only a request that is not the host's `Data.req` fails the invocation.
async fn on_request(
    services: &Services,
    spec: &FunctionSpec,
    request: &InvocationRequest<'_>,
    binding: &str,
    response: &str,
) -> Result<InvocationResponse, InvocationError> {
    let trigger = request
        .binding(binding)
        .map_err(|e| InvocationError::of_request(spec.name, e))?;
    let req: HttpRequestData = serde_json::from_str(trigger.get()).map_err(|e| {
        InvocationError::BadEnvelope(format!(
            "{}: Data.{binding} is not an HTTP request ({{\"Url\", \"Method\", \"Query\", \"Headers\", \"Params\", \"Body\"}}): {e}",
            spec.name
        ))
    })?;
    let answer = match spec.name {
        name if name == NEGOTIATE.name => {
            let connection = NEGOTIATE
                .bindings
                .first()
                .and_then(|b| request.data.get(b.name).copied());
            negotiate::handle(services, &req, connection).await
        }
        name if name == WEB.name => web::handle(services, &req),
        name if name == ORDER_STATUS.name => order_status::handle(services, &req).await,
        name if name == RECENT_ORDERS.name => recent_orders::handle(services, &req).await,
        other => return Err(InvocationError::UnknownFunction(other.to_owned())),
    };
    let res = answer.unwrap_or_else(|e| e.into_response());
    let mut invocation = InvocationResponse::log(format!(
        "{} {} answered {}",
        req.method, req.url, res.status_code
    ));
    invocation.outputs.insert(
        response.to_owned(),
        serde_json::value::to_raw_value(&res).map_err(|e| InvocationError::Internal(e.into()))?,
    );
    Ok(invocation)
}

/// The custom handler server, bound and ready to run.
pub struct Handler {
    listener: tokio::net::TcpListener,
    router: Router,
    limits: HttpLimits,
}

impl Handler {
    /// Opens the store and transport from settings and binds `127.0.0.1:<port>`.
    pub async fn build(settings: &HandlerSettings, tracer: Tracer) -> anyhow::Result<Self> {
        let services = Services::from_settings(settings, tracer).await?;
        Self::with_services(settings.port, services).await
    }

    /// Binds `127.0.0.1:<port>` (0 picks a free port) for the given services.
    pub async fn with_services(port: u16, services: Services) -> anyhow::Result<Self> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("failed to listen on {addr}"))?;
        Ok(Self {
            listener,
            limits: services.http,
            router: app(Arc::new(services)),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` resolves, then lets in-flight invocations finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        http_server::serve(self.listener, self.router, self.limits, shutdown)
            .await
            .context("the handler server failed")
    }
}
