//! What the emulator shows about itself: health, topics, subscriptions with their validation
//! state and counters, recent deliveries, pending retries and dead letters, plus dead-letter
//! redelivery, re-validation and the manual `validationUrl`. JSON under `/emulator/…`; the CLI
//! (`ordergrid emulator status …`) and the dashboard at `/` read the same endpoints.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use crate::emulator::dead_letter;
use crate::emulator::delivery::{DeliveryRecord, SubscriptionRuntime, handshake, now_ms};
use crate::emulator::event::Event;
use crate::emulator::subscriptions::Destination;

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": {"code": status.canonical_reason().unwrap_or(""), "message": message.into()}}))).into_response()
}

pub async fn health(State(api): State<Arc<ApiState>>) -> Json<Value> {
    Json(json!({
        "status": "healthy",
        "topics": api.topics.len(),
        "subscriptions": api.runtimes.len(),
        "uptimeSeconds": api.started.elapsed().as_secs(),
        "spoolEnd": api.spool.events_end(),
    }))
}

pub async fn topics(State(api): State<Arc<ApiState>>) -> Json<Value> {
    Json(Value::Array(
        api.topics
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "inputSchema": match t.schema { crate::eventgrid::Schema::EventGrid => "EventGridSchema", crate::eventgrid::Schema::CloudEvents => "CloudEventSchemaV1_0" },
                    "endpoint": format!("{}/{}/api/events", api.base_url, t.name),
                    "resourceId": t.resource_id,
                })
            })
            .collect(),
    ))
}

pub async fn subscriptions(State(api): State<Arc<ApiState>>) -> Json<Value> {
    let mut all = Vec::new();
    for rt in &api.runtimes {
        let destination = match &rt.subscription.destination {
            Destination::AzureFunction { function_name } => json!({
                "endpointType": "AzureFunction",
                "functionName": function_name,
                "url": crate::emulator::delivery::webhook::destination_url(&rt.subscription, &api.delivery.functions_base_url),
            }),
            Destination::WebHook { endpoint_url } => {
                json!({"endpointType": "WebHook", "endpointUrl": endpoint_url})
            }
        };
        all.push(json!({
            "topic": rt.topic,
            "name": rt.subscription.name.as_str(),
            "destination": destination,
            "validation": *rt.validation.borrow(),
            "counters": rt.counters(),
            "pending": rt.pending().await.len(),
            "deadLetterContainer": rt.subscription.dead_letter.as_ref().map(|d| d.container.clone()),
            "maxDeliveryAttempts": rt.subscription.retry.max_delivery_attempts,
            "eventTimeToLiveInMinutes": rt.subscription.retry.event_time_to_live.as_secs() / 60,
        }));
    }
    Json(Value::Array(all))
}

#[derive(Deserialize)]
pub struct DeliveriesQuery {
    subscription: Option<String>,
    limit: Option<usize>,
}

pub async fn deliveries(
    State(api): State<Arc<ApiState>>,
    Query(q): Query<DeliveriesQuery>,
) -> Json<Vec<DeliveryRecord>> {
    let mut records: Vec<DeliveryRecord> = api
        .runtimes
        .iter()
        .filter(|rt| {
            q.subscription
                .as_deref()
                .is_none_or(|s| rt.subscription.name.as_str().eq_ignore_ascii_case(s))
        })
        .flat_map(|rt| rt.recent())
        .collect();
    records.sort_by(|a, b| b.at.cmp(&a.at));
    records.truncate(q.limit.unwrap_or(100));
    Json(records)
}

pub async fn retries(State(api): State<Arc<ApiState>>) -> Json<Value> {
    let mut all = Vec::new();
    for rt in &api.runtimes {
        all.extend(rt.pending().await);
    }
    Json(serde_json::to_value(all).unwrap_or_default())
}

pub async fn dead_letters(State(api): State<Arc<ApiState>>) -> Response {
    match api.dead_letters.list().await {
        Ok(blobs) => Json(blobs).into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

pub async fn dead_letter(
    State(api): State<Arc<ApiState>>,
    Path((container, name)): Path<(String, String)>,
) -> Response {
    match api.dead_letters.read(&container, &name).await {
        Ok(blob) => ([(header::CONTENT_TYPE, "application/json")], blob).into_response(),
        Err(e) => problem(StatusCode::NOT_FOUND, e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redeliver {
    /// One blob (with `name`), or every blob of `subscription`, or everything when both are absent.
    container: Option<String>,
    name: Option<String>,
    subscription: Option<String>,
}

/// Publishes the events of dead-letter blobs again, to their subscription only, then deletes
/// the blobs. Events are durable in the spool before a blob is deleted.
pub async fn redeliver(
    State(api): State<Arc<ApiState>>,
    Json(request): Json<Redeliver>,
) -> Response {
    let blobs = match api.dead_letters.list().await {
        Ok(blobs) => blobs,
        Err(e) => return problem(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let chosen: Vec<_> = blobs
        .into_iter()
        .filter(|b| {
            request
                .container
                .as_deref()
                .is_none_or(|c| c == b.container)
        })
        .filter(|b| request.name.as_deref().is_none_or(|n| n == b.name))
        .filter(|b| {
            request
                .subscription
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(&b.subscription))
        })
        .collect();
    if chosen.is_empty() {
        return problem(StatusCode::NOT_FOUND, "no dead-letter blob matches");
    }
    let mut redelivered = Vec::new();
    for blob in chosen {
        // Names are unique per topic only, and the blob path (Azure's) names no topic: prefer
        // the subscription that dead-letters into this blob's container.
        let named =
            |rt: &&Arc<SubscriptionRuntime>| rt.subscription.name.upper() == blob.subscription;
        let Some(rt) = api
            .runtimes
            .iter()
            .filter(named)
            .find(|rt| {
                rt.subscription
                    .dead_letter
                    .as_ref()
                    .is_some_and(|d| d.container == blob.container)
            })
            .or_else(|| api.runtimes.iter().find(named))
        else {
            return problem(
                StatusCode::CONFLICT,
                format!(
                    "no subscription named {} to redeliver {} to",
                    blob.subscription, blob.name
                ),
            );
        };
        let events = match api.dead_letters.read(&blob.container, &blob.name).await {
            Ok(bytes) => dead_letter::events_of(&bytes, rt.input_schema),
            Err(e) => return problem(StatusCode::SERVICE_UNAVAILABLE, e),
        };
        let events: Vec<Arc<Event>> = match events {
            Ok(events) => events.into_iter().map(Arc::new).collect(),
            Err(e) => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("{}/{}: {e}", blob.container, blob.name),
                );
            }
        };
        if let Err(e) = api
            .spool
            .publish(
                &rt.topic,
                Some(rt.subscription.name.as_str()),
                now_ms(),
                &events,
            )
            .await
        {
            return problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
        if let Err(e) = api.dead_letters.delete(&blob.container, &blob.name).await {
            tracing::warn!(error = %e, "redelivered a dead letter but could not delete its blob");
        }
        redelivered.push(json!({"container": blob.container, "name": blob.name, "subscription": rt.subscription.name.as_str(), "events": events.len()}));
    }
    Json(json!({"redelivered": redelivered})).into_response()
}

/// Runs the validation handshake again, for every subscription with this name (names are unique
/// per topic only).
pub async fn revalidate(State(api): State<Arc<ApiState>>, Path(name): Path<String>) -> Response {
    let named: Vec<_> = api
        .runtimes
        .iter()
        .filter(|rt| rt.subscription.name.as_str().eq_ignore_ascii_case(&name))
        .cloned()
        .collect();
    if named.is_empty() {
        return problem(
            StatusCode::NOT_FOUND,
            format!("no subscription named {name}"),
        );
    }
    for rt in named {
        let (sender, settings, base) = (
            api.sender.clone(),
            api.delivery.clone(),
            api.base_url.clone(),
        );
        tokio::spawn(async move { handshake::validate(&rt, &sender, &settings, &base).await });
    }
    (StatusCode::ACCEPTED, Json(json!({"status": "validating"}))).into_response()
}

/// The `validationUrl` of a manual validation (Event Grid serves it on port 553; here, on the
/// emulator's port). The URL names the subscription, not its topic, so every subscription of
/// that name is tried; only the one whose code and token match is validated.
pub async fn manual_validation(
    State(api): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let id = query.get("id").map(String::as_str).unwrap_or("");
    let token = query.get("token").map(String::as_str).unwrap_or("");
    let mut refused = None;
    for rt in api
        .runtimes
        .iter()
        .filter(|rt| rt.subscription.name.as_str().eq_ignore_ascii_case(&name))
    {
        match handshake::complete_manual(rt, id, token) {
            Ok(()) => {
                return Html("<p>Webhook successfully validated as a subscription endpoint.</p>")
                    .into_response();
            }
            Err(e) => refused = Some(e),
        }
    }
    match refused {
        Some(e) => problem(StatusCode::BAD_REQUEST, e),
        None => problem(
            StatusCode::NOT_FOUND,
            format!("no subscription named {name}"),
        ),
    }
}

/// A one-page dashboard over the JSON endpoints.
pub async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
