//! HTTP-triggered functions: the host's HTTP front, as the Functions host serves `httpTrigger`
//! functions to a custom handler (sources in each submodule and in
//! `../shared/reference/functions-custom-handler.md`):
//!
//! - a request is routed by the functions' route templates under the route prefix (`route`),
//!   most specific first; `methods` is a route constraint
//!   (`WebScriptHostHttpRoutesManager`: `HttpMethodRouteConstraint`), so a method a function does
//!   not take makes its route not match: the answer is 404, as the host's, not 405;
//! - keys are not checked, whatever `authLevel` says: Core Tools disables authorization locally;
//! - the body may be at most `FUNCTIONS_REQUEST_BODY_SIZE_LIMIT` bytes (default 104857600, the
//!   host's Kestrel `MaxRequestBodySize`, `ScriptConstants.DefaultMaxRequestBodySize`); a larger
//!   one is answered 413 before the handler is called;
//! - the handler gets `POST /<function>` with `Data.<trigger>` = the request (`wire`), the input
//!   bindings' values, and `Metadata` = the trigger's binding data (`binding_data`);
//! - its answer is read as the host reads it (`HostAnswer`); the output bindings but `http` are
//!   carried out (`outputs`); then the `http` output (or `$return`) becomes the response (`wire`).
//!   A handler that fails (no answer, a timeout, non-2xx, an answer the host cannot read), an
//!   output binding that fails, or an `http` output that does not read fails the invocation: 500
//!   with an empty body, the reason in the log.
//!
//! Invariant: no response is sent before every output binding of the invocation was carried out.

pub mod route;
pub mod wire;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use serde_json::value::RawValue;

use self::route::{RouteTemplate, RouteValues};
use self::wire::{RequestData, Source};
use super::HostState;
use super::binding_data::BindingData;
use super::manifest::{FunctionManifest, TriggerKind};
use super::worker::{Invocation, InvokeError};
use crate::invocation::{AnswerError, HostAnswer, InvocationRequest};
use crate::trace::{Kind, TraceParent};

/// The host's request body limit unless `FUNCTIONS_REQUEST_BODY_SIZE_LIMIT` sets another.
pub const DEFAULT_BODY_LIMIT: u64 = 104_857_600;

/// The setting that changes the body limit (`EnvironmentSettingNames.FunctionsRequestBodySizeLimit`).
pub const BODY_LIMIT_SETTING: &str = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT";

/// The loaded HTTP-triggered functions' routes, most specific first.
#[derive(Debug, Default)]
pub struct Routes {
    routes: Vec<(RouteTemplate, String)>,
    pub body_limit: u64,
}

impl Routes {
    /// The routes of `functions` (those that loaded), ordered as `WebJobsRouteBuilder` orders
    /// them.
    pub fn new<'a>(
        functions: impl Iterator<Item = &'a FunctionManifest>,
        settings: &std::collections::HashMap<String, String>,
    ) -> Self {
        let mut routes: Vec<(RouteTemplate, String)> = functions
            .filter_map(|f| match &f.route {
                Some(Ok(template)) => Some((template.clone(), f.name.clone())),
                _ => None,
            })
            .collect();
        routes.sort_by(|a, b| route::precedence(&a.0, &b.0));
        for (template, function) in &routes {
            tracing::info!(function = %function, route = %template.text(), "mapped HTTP route");
        }
        let body_limit = settings
            .get(BODY_LIMIT_SETTING)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_BODY_LIMIT);
        Self { routes, body_limit }
    }

    /// The function for `method` and `path`, with the route values.
    fn find<'h>(
        &self,
        host: &'h HostState,
        method: &str,
        path: &str,
    ) -> Option<(&'h FunctionManifest, RouteValues)> {
        self.routes.iter().find_map(|(template, name)| {
            let function = host.function(name)?;
            let TriggerKind::Http(trigger) = &function.kind else {
                return None;
            };
            if let Some(methods) = &trigger.methods
                && !methods.iter().any(|m| m.eq_ignore_ascii_case(method))
            {
                return None;
            }
            template.matches(path).map(|values| (function, values))
        })
    }
}

/// Why an HTTP-triggered invocation failed; every one is answered 500, as the host answers a
/// failed function.
#[derive(Debug, thiserror::Error)]
enum InvocationError {
    #[error("an input binding failed: {0}")]
    Input(String),
    #[error("{0}")]
    Handler(InvokeError),
    #[error("the custom handler answered {0}")]
    Status(u16),
    #[error("{0}")]
    Answer(#[from] AnswerError),
    #[error("{0}")]
    Output(#[from] super::outputs::OutputError),
    #[error("{0}")]
    Response(#[from] wire::OutputFormatError),
}

/// Serves every request no other route of the stand-in took.
pub async fn serve(State(host): State<Arc<HostState>>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let Some((function, route_values)) = host.http.find(&host, &method, &path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (parts, body) = request.into_parts();
    let content_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limit = host.http.body_limit;
    if content_length.is_some_and(|n| n > limit) {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let bytes = match axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX)).await
    {
        Ok(bytes) => bytes,
        Err(e) if crate::http_server::timed_out(&e) => {
            return StatusCode::REQUEST_TIMEOUT.into_response();
        }
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let invocation_id = uuid::Uuid::new_v4().to_string();
    let parent = TraceParent::of_headers(&parts.headers);
    let mut span = host
        .tracer
        .start(function.name.clone(), Kind::Server, parent);
    span.set("faas.invocation_id", invocation_id.clone());
    span.set("faas.trigger", "http");
    let invoked = invoke(
        &host,
        function,
        &parts,
        content_length,
        &bytes,
        &route_values,
        Invocation {
            id: &invocation_id,
            traceparent: span.traceparent().unwrap_or_else(TraceParent::root),
        },
    )
    .await;
    if let Err(e) = &invoked {
        span.fail(e.to_string());
    }
    span.end();
    match invoked {
        Ok(response) => {
            let mut out = Response::new(Body::from(response.body));
            *out.status_mut() = response.status;
            for (name, value) in response.headers {
                out.headers_mut().append(name, value);
            }
            out
        }
        Err(e) => {
            tracing::error!(function = %function.name, invocation_id, error = %e, "Executed 'Functions.{}' (Failed)", function.name);
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn invoke(
    host: &HostState,
    function: &FunctionManifest,
    parts: &axum::http::request::Parts,
    content_length: Option<u64>,
    bytes: &[u8],
    route_values: &RouteValues,
    invocation: Invocation<'_>,
) -> Result<wire::Response, InvocationError> {
    let invocation_id = invocation.id;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let request = request_data(parts, content_length, content_type, bytes, route_values);
    let binding_data = binding_data(&request, content_length, bytes, route_values);
    let inputs = super::webpubsub::input_values(host, function, &binding_data)
        .await
        .map_err(InvocationError::Input)?;
    let sys = serde_json::json!({
        "MethodName": function.name,
        "UtcNow": super::webhook::dotnet_utc(time::OffsetDateTime::now_utc()),
        "RandGuid": uuid::Uuid::new_v4().to_string(),
    });
    let request_raw = serde_json::value::to_raw_value(&request)
        .map_err(|e| InvocationError::Input(e.to_string()))?;
    let metadata = serde_json::value::to_raw_value(&binding_data.to_metadata(sys))
        .map_err(|e| InvocationError::Input(e.to_string()))?;
    let mut data: std::collections::BTreeMap<String, &RawValue> =
        inputs.iter().map(|(k, v)| (k.clone(), &**v)).collect();
    data.insert(function.trigger.clone(), &request_raw);
    let envelope = InvocationRequest {
        data,
        metadata: Some(&metadata),
    }
    .to_vec();
    let answered = host
        .worker
        .invoke(&function.name, invocation, envelope)
        .await
        .map_err(InvocationError::Handler)?;
    if !(200..300).contains(&answered.status) {
        // The host discards Outputs and Logs of a failed invocation.
        return Err(InvocationError::Status(answered.status));
    }
    let answer = HostAnswer::read(answered.content_type.as_deref(), &answered.body)?;
    for line in &answer.logs {
        tracing::info!(function = %function.name, invocation_id, "{line}");
    }
    super::outputs::apply(host, function, &answer.outputs, invocation_id).await?;
    let response = match function.http_output() {
        Some("$return") => {
            let value = answer
                .return_value
                .as_deref()
                .map(|v| serde_json::from_str::<Value>(v.get()))
                .transpose()
                .map_err(|e| wire::OutputFormatError(e.to_string()))?;
            wire::response(value.as_ref(), Source::Return)?
        }
        Some(name) => {
            let value = answer
                .outputs
                .get(name)
                .map(|v| serde_json::from_str::<Value>(v.get()))
                .transpose()
                .map_err(|e| wire::OutputFormatError(e.to_string()))?;
            wire::response(value.as_ref(), Source::Named)?
        }
        // No http output: the host answers 204? Not known; the stand-in answers 200 empty.
        None => wire::Response {
            status: StatusCode::OK,
            headers: vec![],
            body: vec![],
        },
    };
    tracing::info!(function = %function.name, invocation_id, status = response.status.as_u16(), "Executed 'Functions.{}' (Succeeded)", function.name);
    Ok(response)
}

fn request_data(
    parts: &axum::http::request::Parts,
    content_length: Option<u64>,
    content_type: Option<&str>,
    bytes: &[u8],
    route_values: &RouteValues,
) -> RequestData {
    let host_header = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let query = parts.uri.query();
    let url = match query {
        Some(q) => format!("http://{host_header}{}?{q}", parts.uri.path()),
        None => format!("http://{host_header}{}", parts.uri.path()),
    };
    let mut headers: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let name = wire::header_name(name.as_str());
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => headers.push((name, vec![value])),
        }
    }
    RequestData {
        url,
        method: parts.method.as_str().to_owned(),
        query: wire::query(query),
        headers: wire::Ordered(headers),
        params: wire::params(route_values),
        body: wire::body(content_length, content_type, bytes),
    }
}

/// The HTTP trigger's binding data (see `binding_data`).
fn binding_data(
    request: &RequestData,
    content_length: Option<u64>,
    bytes: &[u8],
    route_values: &RouteValues,
) -> BindingData {
    let mut data = BindingData::default();
    if content_length.unwrap_or(0) > 0
        && let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(bytes)
    {
        for (key, value) in members {
            data.insert(&key, value);
        }
    }
    for (name, value) in &request.query.0 {
        if !name.eq_ignore_ascii_case("code") {
            data.insert(name, Value::String(value.clone()));
        }
    }
    for (name, value) in route_values {
        data.insert(name, value.clone().map_or(Value::Null, Value::String));
    }
    if !data.contains("Query") {
        let query = request
            .query
            .0
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        data.insert("Query", Value::Object(query));
    }
    if !data.contains("Headers") {
        let headers = request
            .headers
            .0
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.join(","))))
            .collect();
        data.insert("Headers", Value::Object(headers));
    }
    data
}
