//! `…/runtime/webhooks/eventgrid?functionName=NAME`: the Event Grid extension's endpoint, with
//! the real host's answers (the extension's `EventGridExtensionConfigProvider` and
//! `HttpRequestProcessor`; sources in `../shared/reference/functions-host-behaviour.md`):
//! - the function is found first, before the method or any header: the query key in any case,
//!   the name case-sensitively; missing or unknown → 404 `cannot find function: '<name>'`;
//! - `OPTIONS` (the CloudEvents abuse-protection handshake) → 200 with `Webhook-Allowed-Origin`,
//!   echoing the requested origin only for Azure's own clouds, otherwise `eventgrid.azure.net`;
//! - every other method is dispatched on `aeg-event-type`, compared ignoring case:
//!   `SubscriptionValidation` → 200 `{"validationResponse": code}` (as `text/plain`),
//!   `Notification` → the invocations, `Unsubscribe` → 202, anything else → 400;
//! - a notification body that is not JSON (or nests deeper than 64), a JSON scalar, or a
//!   validation event without a code fails with 500, as the host's unhandled exceptions do, so
//!   Event Grid retries it (a 400 would end its delivery);
//! - a notification is one invocation per event, all at once (`cardinality: many`: one invocation
//!   with them all); 202 when all succeed, 500 naming the failed function when any fails (Event
//!   Grid then resends the whole delivery);
//! - every number in an event reaches the handler as the host's JSON library writes it
//!   (see `newtonsoft`).
//!
//! After a successful invocation the host carries out the function's `eventGrid` output
//! bindings, publishing what the handler returned; if that fails the invocation fails.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::HostState;
use super::answers::{self, DeliveryHeaders, FailedInvocation};
use super::binding_data::BindingData;
use super::manifest::FunctionManifest;
use super::newtonsoft;
use super::worker::{Invocation, InvokeError};
use crate::eventgrid::protocol;
use crate::invocation::{HostAnswer, InvocationRequest};
use crate::json::Json;
use crate::trace::{Kind, TraceParent};

/// The origins whose abuse-protection handshake is answered with their own name (Azure's public
/// and sovereign clouds, as the extension lists them).
const AZURE_ORIGINS: [&str; 5] = [
    "eventgrid.azure.net",
    "eventgrid.azure.us",
    "eventgrid.azure.eaglex.ic.gov",
    "eventgrid.azure.microsoft.scloud",
    "eventgrid.azure.cn",
];

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

/// The `functionName` query value, the key matched in any case; repeated values are joined with
/// commas (.NET's `NameValueCollection`), which names no function.
fn function_name(query: Option<&str>) -> String {
    let values: Vec<String> = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(key, _)| key.eq_ignore_ascii_case("functionName"))
        .map(|(_, value)| {
            percent_encoding::percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    values.join(",")
}

pub async fn eventgrid(
    State(host): State<Arc<HostState>>,
    Path(extension): Path<String>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) if crate::http_server::timed_out(&e) => {
            return text(StatusCode::REQUEST_TIMEOUT, e.to_string());
        }
        Err(e) => return e.into_response(),
    };
    if !extension.eq_ignore_ascii_case("eventgrid") {
        return text(
            StatusCode::NOT_FOUND,
            format!("no extension named '{extension}' is loaded"),
        );
    }
    let name = function_name(query.as_deref());
    let Some(function) = host.function(&name) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("cannot find function: '{name}'"),
        );
    };
    if method == Method::OPTIONS {
        let asked = headers
            .get("webhook-request-origin")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let allowed = AZURE_ORIGINS
            .into_iter()
            .find(|origin| *origin == asked)
            .unwrap_or(AZURE_ORIGINS[0]);
        let mut response = StatusCode::OK.into_response();
        response
            .headers_mut()
            .insert("webhook-allowed-origin", HeaderValue::from_static(allowed));
        return response;
    }
    if ![Method::GET, Method::POST, Method::PUT, Method::DELETE].contains(&method) {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let event_type = headers
        .get(protocol::EVENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match event_type {
        t if t.eq_ignore_ascii_case(protocol::SUBSCRIPTION_VALIDATION) => {
            validation_response(&body)
        }
        t if t.eq_ignore_ascii_case(protocol::NOTIFICATION) => {
            let delivery = DeliveryHeaders {
                subscription: headers
                    .get(protocol::SUBSCRIPTION_NAME)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                delivery_count: headers
                    .get(protocol::DELIVERY_COUNT)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok()),
                traceparent: TraceParent::of_headers(&headers),
            };
            notification(&host, function, &body, &delivery).await
        }
        t if t.eq_ignore_ascii_case("Unsubscribe") => StatusCode::ACCEPTED.into_response(),
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// The validation code: `[0].data.validationCode` of an array, or `data.validationCode` of a
/// single event whose `data` may be an object or JSON text.
fn validation_code(body: &[u8]) -> Option<String> {
    let events = newtonsoft::parse(body).ok()?;
    let data = match &events {
        Json::Array(items) => items.first()?.get("data")?.clone(),
        Json::Object(_) => match events.get("data")? {
            Json::String(text) => Json::parse(text.as_bytes(), newtonsoft::MAX_DEPTH).ok()?,
            other => other.clone(),
        },
        _ => return None,
    };
    // A JValue's ToString: strings as they are, other scalars as their text.
    match data.get("validationCode")? {
        Json::String(code) => Some(code.to_string()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(if *b { "True" } else { "False" }.to_owned()),
        Json::Null => Some(String::new()),
        _ => None,
    }
}

fn validation_response(body: &[u8]) -> Response {
    match validation_code(body) {
        // The extension serializes the answer itself and sends it as StringContent: text/plain.
        Some(code) => text(
            StatusCode::OK,
            serde_json::json!({ "validationResponse": code }).to_string(),
        ),
        None => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the validation event carries no data.validationCode",
        ),
    }
}

async fn notification(
    host: &HostState,
    function: &FunctionManifest,
    body: &[u8],
    delivery: &DeliveryHeaders,
) -> Response {
    let mut events = match newtonsoft::parse(body) {
        Ok(Json::Array(events)) => events,
        // A single object is taken as a delivery of one.
        Ok(event @ Json::Object(_)) => vec![event],
        Ok(other) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the delivery is {}, not events", other.kind()),
            );
        }
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the delivery is not JSON the host can read: {e}"),
            );
        }
    };
    for event in &mut events {
        if let Err(e) = newtonsoft::through_host(event) {
            return text(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
    }
    let invocations: Vec<_> = if function.many {
        vec![invoke(host, function, Trigger::Batch(&events), delivery)]
    } else {
        events
            .iter()
            .map(|event| invoke(host, function, Trigger::One(event), delivery))
            .collect()
    };
    let failures: Vec<String> = join_all(invocations)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    match failures.first() {
        None => StatusCode::ACCEPTED.into_response(),
        // Event Grid resends the whole delivery, as it does when the real host answers 500.
        Some(first) => text(StatusCode::INTERNAL_SERVER_ERROR, first.clone()),
    }
}

/// What an invocation is triggered with.
enum Trigger<'a> {
    One(&'a Json),
    /// `cardinality: many`: every event of the delivery.
    Batch(&'a [Json]),
}

/// `Data` and `Metadata` as the host builds them (`ScriptInvocationContextExtensions`): the event
/// as an object; `Metadata.data` the event's `data` when it is an object, otherwise its JSON text
/// as a string (omitted when absent); `Metadata.sys`. A batch's events, and their `data`s, are
/// both JSON text in strings (the host cannot make an object of an array).
fn envelope(
    function: &FunctionManifest,
    trigger: &Trigger<'_>,
    inputs: &[(String, Box<RawValue>)],
) -> Result<Vec<u8>, String> {
    let (event, data): (Json, Option<Json>) = match trigger {
        Trigger::One(event) => {
            if !matches!(event, Json::Object(_)) {
                return Err(format!(
                    "Exception while executing function: Functions.{}: unable to bind {} to the trigger",
                    function.name,
                    event.kind()
                ));
            }
            let data = event.get("data").map(|data| match data {
                Json::Object(_) => data.clone(),
                other => Json::String(other.to_string().into()),
            });
            ((*event).clone(), data)
        }
        Trigger::Batch(events) => {
            let all = Json::Array(events.to_vec());
            let datas = Json::Array(
                events
                    .iter()
                    .map(|e| e.get("data").cloned().unwrap_or(Json::Null))
                    .collect(),
            );
            (
                Json::String(all.to_string().into()),
                Some(Json::String(datas.to_string().into())),
            )
        }
    };
    let now = OffsetDateTime::now_utc();
    let sys = vec![
        (
            "MethodName".into(),
            Json::String(function.name.as_str().into()),
        ),
        ("UtcNow".into(), Json::String(dotnet_utc(now).into())),
        (
            "RandGuid".into(),
            Json::String(uuid::Uuid::new_v4().to_string().into()),
        ),
    ];
    let mut metadata = Vec::new();
    if let Some(data) = data {
        metadata.push(("data".into(), data));
    }
    metadata.push(("sys".into(), Json::Object(sys)));
    let event = raw(&event)?;
    let metadata = raw(&Json::Object(metadata))?;
    let request = InvocationRequest {
        data: inputs
            .iter()
            .map(|(name, value)| (name.clone(), &**value))
            .chain([(function.trigger.clone(), &*event)])
            .collect(),
        metadata: Some(&metadata),
    };
    Ok(request.to_vec())
}

fn raw(value: &Json) -> Result<Box<RawValue>, String> {
    RawValue::from_string(value.to_string()).map_err(|e| e.to_string())
}

/// A UTC time as .NET's `DateTime` serializes (`2024-10-24T21:32:17.4478136Z`: up to seven
/// fractional digits, trailing zeros dropped).
pub(super) fn dotnet_utc(t: OffsetDateTime) -> String {
    let text = t.format(&Rfc3339).unwrap_or_default();
    let Some((seconds, fraction)) = text.trim_end_matches('Z').split_once('.') else {
        return text;
    };
    let fraction: String = fraction.chars().take(7).collect();
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{seconds}Z")
    } else {
        format!("{seconds}.{fraction}Z")
    }
}

/// One invocation: envelope, handler, outputs. `Err` fails the delivery, with the message the
/// host answers; the cause is kept in the host's [`answers`] for the dashboard.
///
/// The invocation is a span under the delivery's `traceparent` (the real host parents its
/// request on the incoming header, as ASP.NET Core does; it reads nothing from the event), and
/// the handler gets the span's context in its own `traceparent` header.
async fn invoke(
    host: &HostState,
    function: &FunctionManifest,
    trigger: Trigger<'_>,
    delivery: &DeliveryHeaders,
) -> Result<(), String> {
    let event_ids: Vec<String> = match &trigger {
        Trigger::One(event) => vec![
            event
                .get("id")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_owned(),
        ],
        Trigger::Batch(events) => events
            .iter()
            .map(|e| e.get("id").and_then(Json::as_str).unwrap_or("").to_owned())
            .collect(),
    };
    let invocation_id = uuid::Uuid::new_v4().to_string();
    let failed = |status: Option<u16>, code: Option<String>, message: String, logs: Vec<String>| {
        host.failures.record(FailedInvocation {
            at_ms: (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
            function: function.name.clone(),
            invocation_id: invocation_id.clone(),
            event_ids: event_ids.clone(),
            delivery: delivery.clone(),
            status,
            code,
            message,
            logs,
        });
    };
    let mut span = host
        .tracer
        .start(function.name.clone(), Kind::Server, delivery.traceparent);
    span.set("faas.invocation_id", invocation_id.clone());
    span.set("faas.trigger", "pubsub");
    span.set("event.id", event_ids.join(","));
    let traceparent = span.traceparent().unwrap_or_else(TraceParent::root);
    let result = invoke_once(host, function, trigger, &invocation_id, traceparent).await;
    if let Err(Failure::Answered { status, .. }) = &result {
        span.fail(format!("the handler answered {status}"));
    } else if let Err(Failure::Host { cause, .. }) = &result {
        span.fail(cause.clone());
    }
    span.end();
    match &result {
        Ok(()) => {}
        Err(Failure::Answered { status, body }) => {
            let (code, message, logs) = answers::read_answer(body);
            failed(Some(*status), code, message, logs);
        }
        Err(Failure::Host { cause, .. }) => failed(None, None, cause.clone(), Vec::new()),
    }
    result.map_err(|f| match f {
        Failure::Answered { .. } => host_message(function),
        Failure::Host { answer, .. } => answer,
    })
}

/// What the host answers Event Grid for a failed invocation.
fn host_message(function: &FunctionManifest) -> String {
    format!(
        "Exception while executing function: Functions.{}",
        function.name
    )
}

/// Why an invocation failed: the handler answered a failure, or the host could not run it.
enum Failure {
    Answered {
        status: u16,
        body: Vec<u8>,
    },
    /// `answer` is what the host answers Event Grid, `cause` what really happened.
    Host {
        answer: String,
        cause: String,
    },
}

async fn invoke_once(
    host: &HostState,
    function: &FunctionManifest,
    trigger: Trigger<'_>,
    invocation_id: &str,
    traceparent: TraceParent,
) -> Result<(), Failure> {
    let host_failure = |cause: String| Failure::Host {
        answer: host_message(function),
        cause,
    };
    let event_id = match &trigger {
        Trigger::One(event) => event
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned(),
        Trigger::Batch(events) => format!("{} events", events.len()),
    };
    // Binding expressions of an Event Grid function see the event's `data` (the trigger's
    // binding data contract).
    let mut binding_data = BindingData::default();
    if let Trigger::One(event) = &trigger
        && let Some(data) = event.get("data")
        && let Ok(data) = serde_json::from_str(&data.to_string())
    {
        binding_data.insert("data", data);
    }
    let inputs = super::webpubsub::input_values(host, function, &binding_data)
        .await
        .map_err(|e| {
            tracing::error!(function = %function.name, event_id, error = %e, "an input binding failed, so the invocation fails");
            host_failure(format!("an input binding failed: {e}"))
        })?;
    let envelope = envelope(function, &trigger, &inputs).map_err(|e| Failure::Host {
        answer: e.clone(),
        cause: e,
    })?;
    let answered = host
        .worker
        .invoke(
            &function.name,
            Invocation {
                id: invocation_id,
                traceparent,
            },
            envelope,
        )
        .await
        .map_err(|e| {
            tracing::error!(function = %function.name, invocation_id, event_id, error = %e, "invocation failed");
            match e {
                InvokeError::TimedOut { .. } => Failure::Host {
                    answer: e.to_string(),
                    cause: e.to_string(),
                },
                InvokeError::Unavailable(_) => host_failure(format!("the handler could not be invoked: {e}")),
            }
        })?;
    if !(200..300).contains(&answered.status) {
        // The host discards Outputs and Logs of a failed invocation; the handler logged the cause.
        let message = serde_json::from_slice::<serde_json::Value>(&answered.body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        tracing::warn!(function = %function.name, invocation_id, event_id, status = answered.status, message = %message, "invocation failed; Event Grid will retry");
        return Err(Failure::Answered {
            status: answered.status,
            body: answered.body.to_vec(),
        });
    }
    let answer = HostAnswer::read(answered.content_type.as_deref(), &answered.body).map_err(|e| {
        tracing::error!(function = %function.name, invocation_id, event_id, error = %e, "invocation failed: the handler's answer is not one the host accepts");
        host_failure(format!("the handler's answer is not one the host accepts: {e}"))
    })?;
    for line in &answer.logs {
        tracing::info!(function = %function.name, invocation_id, event_id, "{line}");
    }
    super::outputs::apply(host, function, &answer.outputs, invocation_id)
        .await
        .map_err(|e| {
            tracing::error!(function = %function.name, invocation_id, event_id, error = %e, transient = e.is_transient(), "an output binding failed, so the invocation fails");
            let mut cause = format!("an output binding failed: {e}");
            if !answer.logs.is_empty() {
                cause.push_str(&format!(" (the handler logged: {})", answer.logs.join(" | ")));
            }
            host_failure(cause)
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_codes_are_read_from_either_shape() {
        let array = br#"[{"id":"1","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{"validationCode":"abc"}}]"#;
        assert_eq!(validation_code(array).as_deref(), Some("abc"));
        let string_data = br#"{"id":"1","data":"{\"validationCode\":\"xyz\"}"}"#;
        assert_eq!(validation_code(string_data).as_deref(), Some("xyz"));
        assert_eq!(validation_code(b"[{}]"), None);
        assert_eq!(validation_code(b"[]"), None);
        assert_eq!(validation_code(b"nope"), None);
    }

    #[test]
    fn function_names_come_from_the_query_in_any_case() {
        assert_eq!(
            function_name(Some("functionName=OrderProcessor")),
            "OrderProcessor"
        );
        assert_eq!(function_name(Some("code=x&FUNCTIONNAME=A%20B")), "A B");
        assert_eq!(function_name(Some("functionName=a&functionname=b")), "a,b");
        assert_eq!(function_name(None), "");
    }

    #[test]
    fn metadata_is_built_as_the_host_builds_it() {
        let function = FunctionManifest {
            name: "F".into(),
            trigger: "event".into(),
            many: false,
            kind: crate::devhost::manifest::TriggerKind::EventGrid { many: false },
            inputs: vec![],
            outputs: vec![],
            route: None,
            unsupported: vec![],
        };
        let envelope_of = |event: &str| {
            let event = Json::parse(event.as_bytes(), 64).unwrap();
            let bytes = envelope(&function, &Trigger::One(&event), &[]).unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        };
        let object = envelope_of(r#"{"id":"1","data":{"a":1}}"#);
        assert_eq!(object["Data"]["event"]["id"], "1");
        assert_eq!(object["Metadata"]["data"], serde_json::json!({"a": 1}));
        assert_eq!(object["Metadata"]["sys"]["MethodName"], "F");
        let scalar = envelope_of(r#"{"id":"1","data":150.0}"#);
        assert_eq!(scalar["Metadata"]["data"], "150.0");
        let text = envelope_of(r#"{"id":"1","data":"x"}"#);
        assert_eq!(text["Metadata"]["data"], "\"x\"");
        let absent = envelope_of(r#"{"id":"1"}"#);
        assert!(absent["Metadata"].get("data").is_none());
        let many = FunctionManifest {
            many: true,
            ..function.clone()
        };
        let events = [
            Json::parse(br#"{"id":"1","data":{"a":1}}"#, 64).unwrap(),
            Json::parse(br#"{"id":"2"}"#, 64).unwrap(),
        ];
        let batch: serde_json::Value =
            serde_json::from_slice(&envelope(&many, &Trigger::Batch(&events), &[]).unwrap())
                .unwrap();
        assert_eq!(
            batch["Data"]["event"],
            r#"[{"id":"1","data":{"a":1}},{"id":"2"}]"#
        );
        assert_eq!(batch["Metadata"]["data"], r#"[{"a":1},null]"#);
    }

    #[test]
    fn utc_now_has_dotnets_seven_digits_at_most() {
        let t = time::macros::datetime!(2024-10-24 21:32:17.447813612 UTC);
        assert_eq!(dotnet_utc(t), "2024-10-24T21:32:17.4478136Z");
        let whole = time::macros::datetime!(2024-10-24 21:32:17 UTC);
        assert_eq!(dotnet_utc(whole), "2024-10-24T21:32:17Z");
    }
}
