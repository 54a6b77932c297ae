//! `…/runtime/webhooks/eventgrid?functionName=NAME`: the Event Grid extension's endpoint, with
//! the host's semantics (Azure Functions' Event Grid extension, `HttpRequestProcessor`):
//! - the extension name is matched case-insensitively, the function name case-sensitively
//!   (404 `cannot find function: 'x'`);
//! - `aeg-event-type` is required (400 without it or for an unknown value);
//! - `SubscriptionValidation` is answered by the host with `{"validationResponse": code}`, and the
//!   CloudEvents `OPTIONS` handshake with `WebHook-Allowed-Origin`; the handler never sees either;
//! - `Notification`: a JSON array or a single object; one invocation per event, all in parallel;
//!   202 when all succeed, 500 when any fails (Event Grid then resends the whole delivery);
//! - `Unsubscribe`: 202.
//!
//! After a successful invocation the host carries out the function's `eventGrid` output
//! bindings, publishing what the handler returned; if that fails the invocation fails.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::HostState;
use super::manifest::{FunctionManifest, OutputTarget};
use crate::eventgrid::publisher::{PublishAuth, PublisherClient};
use crate::eventgrid::sas::TopicKey;
use crate::eventgrid::{RawObject, Schema};

#[derive(Deserialize)]
pub struct WebhookQuery {
    #[serde(rename = "functionName")]
    function_name: Option<String>,
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

pub async fn eventgrid(
    State(host): State<Arc<HostState>>,
    Path(extension): Path<String>,
    Query(query): Query<WebhookQuery>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !extension.eq_ignore_ascii_case("eventgrid") {
        return text(
            StatusCode::NOT_FOUND,
            format!("no extension named '{extension}' is loaded"),
        );
    }
    let Some(name) = query.function_name else {
        return text(
            StatusCode::BAD_REQUEST,
            "the functionName query parameter is required",
        );
    };
    let Some(function) = host.manifest.function(&name) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("cannot find function: '{name}'"),
        );
    };
    if method == Method::OPTIONS {
        // CloudEvents abuse protection: allow the origin that asked.
        let origin = headers
            .get("webhook-request-origin")
            .cloned()
            .unwrap_or(HeaderValue::from_static("eventgrid.azure.net"));
        let mut response = StatusCode::OK.into_response();
        response
            .headers_mut()
            .insert("webhook-allowed-origin", origin);
        response
            .headers_mut()
            .insert("allow", HeaderValue::from_static("POST"));
        return response;
    }
    if method != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only POST and OPTIONS");
    }
    let event_type = headers
        .get("aeg-event-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match event_type {
        t if t.eq_ignore_ascii_case("SubscriptionValidation") => validation_response(&body),
        t if t.eq_ignore_ascii_case("Notification") => notification(&host, function, &body).await,
        t if t.eq_ignore_ascii_case("Unsubscribe") => StatusCode::ACCEPTED.into_response(),
        "" => text(
            StatusCode::BAD_REQUEST,
            "the aeg-event-type header is required",
        ),
        other => text(
            StatusCode::BAD_REQUEST,
            format!("unknown aeg-event-type '{other}'"),
        ),
    }
}

fn events_of(body: &[u8]) -> Result<Vec<Box<RawValue>>, String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match first {
        Some(b'[') => serde_json::from_slice(body)
            .map_err(|e| format!("the body is not a JSON array of events: {e}")),
        Some(b'{') => serde_json::from_slice::<Box<RawValue>>(body)
            .map(|e| vec![e])
            .map_err(|e| format!("the body is not a JSON event: {e}")),
        _ => Err("the body is neither a JSON array nor an object".into()),
    }
}

fn validation_response(body: &[u8]) -> Response {
    let code = events_of(body).ok().and_then(|events| {
        let first: Value = serde_json::from_str(events.first()?.get()).ok()?;
        first["data"]["validationCode"].as_str().map(str::to_owned)
    });
    match code {
        Some(code) => Json(json!({"validationResponse": code})).into_response(),
        None => text(
            StatusCode::BAD_REQUEST,
            "the validation event carries no data.validationCode",
        ),
    }
}

async fn notification(host: &HostState, function: &FunctionManifest, body: &[u8]) -> Response {
    let events = match events_of(body) {
        Ok(events) => events,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let outcomes = join_all(events.iter().map(|event| invoke(host, function, event))).await;
    let failures: Vec<String> = outcomes.into_iter().filter_map(Result::err).collect();
    if failures.is_empty() {
        StatusCode::ACCEPTED.into_response()
    } else {
        // Event Grid resends the whole delivery, as it does when the real host answers 500.
        text(StatusCode::INTERNAL_SERVER_ERROR, failures.join("; "))
    }
}

/// One invocation: envelope, handler, outputs. `Err` fails the delivery.
async fn invoke(
    host: &HostState,
    function: &FunctionManifest,
    event: &RawValue,
) -> Result<(), String> {
    let invocation_id = uuid::Uuid::new_v4().to_string();
    let event_value: Value = serde_json::from_str(event.get()).unwrap_or(Value::Null);
    let event_id = event_value["id"].as_str().unwrap_or("").to_owned();
    let envelope = json!({
        "Data": { function.trigger.as_str(): event },
        "Metadata": {
            "data": event_value.get("data").cloned().unwrap_or(Value::Null),
            "sys": {
                "MethodName": function.name,
                "UtcNow": OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
                "RandGuid": uuid::Uuid::new_v4().to_string(),
            }
        }
    });
    let envelope = serde_json::to_vec(&envelope).map_err(|e| e.to_string())?;
    let (status, answer) = host.worker.invoke(&function.name, &invocation_id, envelope).await.map_err(|e| {
        tracing::error!(function = %function.name, invocation_id, event_id, error = %e, "invocation failed");
        format!("{}: {e}", function.name)
    })?;
    if !(200..300).contains(&status) {
        // The host discards Outputs and Logs of a failed invocation; the handler logged the cause.
        let message = serde_json::from_slice::<Value>(&answer)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        tracing::warn!(function = %function.name, invocation_id, event_id, status, message = %message, "invocation failed; Event Grid will retry");
        return Err(format!(
            "{}: the custom handler answered {status}",
            function.name
        ));
    }
    let answer: Value = serde_json::from_slice(&answer).map_err(|e| {
        format!(
            "{}: the custom handler's answer is not JSON ({e}); the host requires application/json",
            function.name
        )
    })?;
    let field = |name: &str| {
        answer
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v)
    };
    for line in field("Logs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        tracing::info!(function = %function.name, invocation_id, event_id, "{}", line.as_str().unwrap_or(&line.to_string()));
    }
    if let Some(outputs) = field("Outputs").and_then(Value::as_object) {
        for binding in &function.outputs {
            let Some(value) = outputs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&binding.name))
                .map(|(_, v)| v)
            else {
                continue;
            };
            publish_output(host, &function.name, &binding.target, value).await?;
        }
    }
    Ok(())
}

/// The events an `eventGrid` output holds: an object, an array of them, or JSON text of either.
fn output_events(value: &Value) -> Result<Vec<RawObject>, String> {
    let value = match value {
        Value::String(text) => serde_json::from_str(text)
            .map_err(|e| format!("the output is a string that is not JSON: {e}"))?,
        other => other.clone(),
    };
    let items = match value {
        Value::Array(items) => items,
        Value::Null => vec![],
        single => vec![single],
    };
    items
        .into_iter()
        .map(|item| {
            serde_json::from_value(item)
                .map_err(|e| format!("an output event is not a JSON object: {e}"))
        })
        .collect()
}

async fn publish_output(
    host: &HostState,
    function: &str,
    target: &OutputTarget,
    value: &Value,
) -> Result<(), String> {
    let events = output_events(value).map_err(|e| format!("{function}: {e}"))?;
    if events.is_empty() {
        return Ok(());
    }
    let (endpoint_setting, key_setting) = match target {
        OutputTarget::Connection { prefix } => (
            format!("{prefix}__topicEndpointUri"),
            format!("{prefix}__topicKey"),
        ),
        OutputTarget::Settings {
            endpoint_setting,
            key_setting,
        } => (endpoint_setting.clone(), key_setting.clone()),
    };
    let endpoint = host.settings.get(&endpoint_setting).ok_or_else(|| {
        format!("{function}: the output binding's setting {endpoint_setting} is not set")
    })?;
    let key = host
        .settings
        .get(&key_setting)
        .ok_or_else(|| format!("{function}: the output binding needs the topic key in {key_setting} (the local stand-in publishes with a key)"))?;
    let key = TopicKey::parse(key).map_err(|e| format!("{function}: {key_setting}: {e}"))?;
    // The extension picks the schema from the first event, as the real one does.
    let schema = if events[0].contains_key("eventType") {
        Schema::EventGrid
    } else {
        Schema::CloudEvents
    };
    let client = cached_publisher(host, &endpoint_setting, endpoint, key)
        .map_err(|e| format!("{function}: {e}"))?;
    client
        .publish(schema, &events)
        .await
        .map_err(|e| format!("{function}: publishing its output failed: {e}"))?;
    tracing::info!(function, events = events.len(), endpoint = %endpoint, "output binding published");
    Ok(())
}

/// The publisher for one output target, built on first use and kept: building one loads the
/// platform's root certificates, far too slow to repeat per invocation. Keyed by the endpoint
/// setting: the host's settings are fixed for its lifetime, as the real host's are.
fn cached_publisher(
    host: &HostState,
    endpoint_setting: &str,
    endpoint: &str,
    key: TopicKey,
) -> Result<Arc<PublisherClient>, String> {
    let mut publishers = host
        .publishers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(client) = publishers.get(endpoint_setting) {
        return Ok(client.clone());
    }
    let client =
        Arc::new(PublisherClient::new(endpoint, PublishAuth::Key(key)).map_err(|e| e.to_string())?);
    publishers.insert(endpoint_setting.to_owned(), client.clone());
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_may_be_objects_arrays_or_json_text() {
        assert_eq!(output_events(&json!({"id": "1"})).unwrap().len(), 1);
        assert_eq!(
            output_events(&json!([{"id": "1"}, {"id": "2"}]))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(output_events(&json!("[{\"id\":\"1\"}]")).unwrap().len(), 1);
        assert!(output_events(&json!(null)).unwrap().is_empty());
        assert!(output_events(&json!([1])).is_err());
    }

    #[test]
    fn validation_codes_are_echoed() {
        let body = br#"[{"id":"1","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{"validationCode":"abc"}}]"#;
        assert_eq!(validation_response(body).status(), StatusCode::OK);
        assert_eq!(
            validation_response(b"[{}]").status(),
            StatusCode::BAD_REQUEST
        );
    }
}
