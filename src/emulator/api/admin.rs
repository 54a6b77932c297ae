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

use super::ApiState;
use crate::emulator::admin::{
    DeadLetterView, DeliveryRecord, DestinationView, ErrorBody, ErrorDetail, Health, PendingView,
    RedeliverRequest, Redelivered, RedeliveredBlob, SubscriptionView, TopicView,
};
use crate::emulator::clock::now_ms;
use crate::emulator::dead_letter::{self, SinkError};
use crate::emulator::delivery::{SubscriptionRuntime, handshake, manual, webhook};
use crate::emulator::event::Event;
use crate::emulator::subscriptions::Destination;
use crate::eventgrid::Schema;

/// The admin API's one error: a status and a message, answered as [`ErrorBody`].
#[derive(Debug)]
pub struct AdminError {
    status: StatusCode,
    message: String,
}

impl AdminError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// The dead-letter storage or the spool could not be reached; worth trying again.
    fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl From<SinkError> for AdminError {
    fn from(e: SinkError) -> Self {
        let status = match &e {
            SinkError::Transient(_) => StatusCode::SERVICE_UNAVAILABLE,
            SinkError::NotFound(_) => StatusCode::NOT_FOUND,
            SinkError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.to_string())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.status.canonical_reason().unwrap_or("").to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

pub async fn health(State(api): State<Arc<ApiState>>) -> Json<Health> {
    Json(Health {
        status: "healthy".into(),
        topics: api.topics.len(),
        subscriptions: api.runtimes.len(),
        uptime_seconds: api.started.elapsed().as_secs(),
        spool_end: api.spool.events_end(),
    })
}

pub async fn topics(State(api): State<Arc<ApiState>>) -> Json<Vec<TopicView>> {
    Json(
        api.topics
            .iter()
            .map(|t| TopicView {
                name: t.name.clone(),
                input_schema: match t.schema {
                    Schema::EventGrid => "EventGridSchema",
                    Schema::CloudEvents => "CloudEventSchemaV1_0",
                }
                .into(),
                endpoint: format!("{}/{}/api/events", api.base_url, t.name),
                resource_id: t.resource_id.clone(),
            })
            .collect(),
    )
}

pub async fn subscriptions(State(api): State<Arc<ApiState>>) -> Json<Vec<SubscriptionView>> {
    let mut all = Vec::new();
    for rt in &api.runtimes {
        let subscription = &rt.subscription;
        let destination = match &subscription.destination {
            Destination::AzureFunction { function_name } => DestinationView::AzureFunction {
                function_name: function_name.clone(),
                url: webhook::destination_url(subscription, &api.delivery.functions_base_url),
            },
            Destination::WebHook { endpoint_url } => DestinationView::WebHook {
                endpoint_url: endpoint_url.clone(),
            },
        };
        let pending = rt.pending().await.len();
        all.push(SubscriptionView {
            topic: rt.topic.clone(),
            name: subscription.name.as_str().to_owned(),
            destination,
            validation: rt.validation.borrow().clone(),
            counters: rt.counters(),
            pending,
            dead_letter_container: subscription
                .dead_letter
                .as_ref()
                .map(|d| d.container.clone()),
            max_delivery_attempts: subscription.retry.max_delivery_attempts,
            event_time_to_live_in_minutes: subscription.retry.event_time_to_live.as_secs() / 60,
        });
    }
    Json(all)
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
        // Each runtime keeps its records oldest first; reversed, the stable sort keeps attempts
        // made in the same millisecond newest first too.
        .flat_map(|rt| rt.recent().into_iter().rev())
        .collect();
    records.sort_by(|a, b| b.at.cmp(&a.at));
    records.truncate(q.limit.unwrap_or(100));
    Json(records)
}

pub async fn retries(State(api): State<Arc<ApiState>>) -> Json<Vec<PendingView>> {
    let mut all = Vec::new();
    for rt in &api.runtimes {
        all.extend(rt.pending().await);
    }
    Json(all)
}

/// Every dead letter with what its first event says (each blob is read; locally there are few).
pub async fn dead_letters(
    State(api): State<Arc<ApiState>>,
) -> Result<Json<Vec<DeadLetterView>>, AdminError> {
    let mut views = Vec::new();
    for blob in api.dead_letters.list().await? {
        let bytes = api
            .dead_letters
            .read(&blob.container, &blob.name)
            .await
            .ok();
        views.push(DeadLetterView::read(blob, bytes.as_deref()));
    }
    Ok(Json(views))
}

pub async fn dead_letter(
    State(api): State<Arc<ApiState>>,
    Path((container, name)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let blob = api.dead_letters.read(&container, &name).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], blob).into_response())
}

/// Publishes the events of dead-letter blobs again, to their subscription only, then deletes
/// the blobs. Events are durable in the spool before a blob is deleted. A subscription that
/// exists but has no dead letters is answered 200 with nothing redelivered; a subscription or a
/// blob that does not exist is a 404 saying which.
pub async fn redeliver(
    State(api): State<Arc<ApiState>>,
    Json(request): Json<RedeliverRequest>,
) -> Result<Json<Redelivered>, AdminError> {
    redeliver_blobs(&api, &request).await.map(Json)
}

/// What [`redeliver`] does, for the admin API and the dashboard's action alike.
pub(super) async fn redeliver_blobs(
    api: &ApiState,
    request: &RedeliverRequest,
) -> Result<Redelivered, AdminError> {
    if let Some(name) = &request.subscription
        && !api
            .runtimes
            .iter()
            .any(|rt| rt.subscription.name.as_str().eq_ignore_ascii_case(name))
    {
        return Err(AdminError::not_found(format!(
            "no subscription named {name}"
        )));
    }
    let blobs = api.dead_letters.list().await?;
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
    if chosen.is_empty()
        && let (Some(container), Some(name)) = (&request.container, &request.name)
    {
        return Err(AdminError::not_found(format!(
            "no dead letter {container}/{name}"
        )));
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
            return Err(AdminError::new(
                StatusCode::CONFLICT,
                format!(
                    "no subscription named {} to redeliver {} to",
                    blob.subscription, blob.name
                ),
            ));
        };
        let bytes = api.dead_letters.read(&blob.container, &blob.name).await?;
        let events: Vec<Arc<Event>> = dead_letter::events_of(&bytes, rt.input_schema)
            .map_err(|e| {
                AdminError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("{}/{}: {e}", blob.container, blob.name),
                )
            })?
            .into_iter()
            .map(Arc::new)
            .collect();
        api.spool
            .publish(
                &rt.topic,
                Some(rt.subscription.name.as_str()),
                now_ms(),
                &events,
            )
            .await
            .map_err(|e| AdminError::unavailable(e.to_string()))?;
        if let Err(e) = api.dead_letters.delete(&blob.container, &blob.name).await {
            tracing::warn!(error = %e, "redelivered a dead letter but could not delete its blob");
        }
        redelivered.push(RedeliveredBlob {
            container: blob.container,
            name: blob.name,
            subscription: rt.subscription.name.as_str().to_owned(),
            events: events.len(),
        });
    }
    Ok(Redelivered { redelivered })
}

/// Runs the validation handshake again, for every subscription with this name (names are unique
/// per topic only).
pub async fn revalidate(
    State(api): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Response, AdminError> {
    revalidate_named(&api, &name)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"status": "validating"})),
    )
        .into_response())
}

/// Starts the handshake of every subscription named `name`; their keys.
pub(super) fn revalidate_named(api: &ApiState, name: &str) -> Result<Vec<String>, AdminError> {
    let named: Vec<_> = api
        .runtimes
        .iter()
        .filter(|rt| rt.subscription.name.as_str().eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    if named.is_empty() {
        return Err(AdminError::not_found(format!(
            "no subscription named {name}"
        )));
    }
    let keys = named.iter().map(|rt| rt.key.clone()).collect();
    for rt in named {
        let (sender, settings, base) = (
            api.sender.clone(),
            api.delivery.clone(),
            api.base_url.clone(),
        );
        tokio::spawn(async move { handshake::validate(&rt, &sender, &settings, &base).await });
    }
    Ok(keys)
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
        match manual::complete_manual(rt, id, token) {
            Ok(()) => {
                return Html("<p>Webhook successfully validated as a subscription endpoint.</p>")
                    .into_response();
            }
            Err(e) => refused = Some(e),
        }
    }
    match refused {
        Some(e) => AdminError::new(StatusCode::BAD_REQUEST, e.to_string()),
        None => AdminError::not_found(format!("no subscription named {name}")),
    }
    .into_response()
}
