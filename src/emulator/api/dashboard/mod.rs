//! The local dashboard, served by the emulator at `/`: find any event (by order id, event id,
//! subject or type) and its payload as stored, follow one order's journey through every
//! subscription and into the function app (the handler's answers, the order record, the email),
//! watch counters and latency per topic and subscription, and act on dead letters,
//! validations and test orders.
//!
//! - Reading is plain `GET`s of JSON (`/dashboard/api/…`, typed in
//!   [`crate::emulator::admin::dashboard`]) with paging and search done here, so the page never
//!   holds more than a page of events; updates arrive by server-sent events
//!   (`/dashboard/api/stream`): each change once, and the counters at most once a second when
//!   they moved. Nothing polls.
//! - Actions (`POST /dashboard/api/actions/…`) change things, so each must carry
//!   `Content-Type: application/json` (a form cannot send it) and the stack's token in
//!   `X-Ordergrid-Token` (which only the server-rendered page knows; another origin can neither
//!   read the page nor send a custom header without a CORS preflight, which is never granted),
//!   and, when the browser says where it comes from (`Origin`), this very origin. The token is
//!   made at start-up and lives in memory only.
//! - The page, its script and its style are embedded (`include_str!`), load nothing from
//!   elsewhere and are served under a Content-Security-Policy that allows only this origin; the
//!   script writes everything with `textContent`.
//! - What belongs to the function app (the handler's answers to failed invocations, the order
//!   record, the email) comes from an [`AppView`] the local stack attaches; the emulator alone
//!   shows events, attempts and dead letters without it. Nothing shown is a secret: no keys,
//!   SAS tokens or passwords are among what is read.

mod journey;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::admin::AdminError;
use super::publish::{self, Route};
use super::{ApiState, TopicState};
use crate::emulator::activity::{EventEntry, MAX_EVENTS, PublishFailure};
use crate::emulator::admin::RedeliverRequest;
use crate::emulator::admin::dashboard::{
    ActionDone, AttemptView, EventDetail, EventPage, EventSummary, HandlerAnswer, MetricsView,
    OrderSide, PublishFailedCounts, PublishFailureView, SubscriptionDelivery, SubscriptionMetrics,
    TestOrderRequest, TopicMetrics, ValidateRequest,
};
use crate::emulator::clock::{now_ms, rfc3339_ms};
use crate::eventgrid::Schema;
use crate::journal::Position;

/// The header actions carry the stack's token in.
pub const TOKEN_HEADER: &str = "x-ordergrid-token";
/// Events per page, by default and at most.
const PAGE: usize = 50;
const MAX_PAGE: usize = 200;
/// The payload shown of a large event.
const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

const PAGE_HTML: &str = include_str!("page.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the dashboard sees of the function app; the local stack provides it.
#[async_trait]
pub trait AppView: Send + Sync + 'static {
    /// The handler's answers to the failed invocations of one delivery: `subscription` as
    /// Event Grid names it in `aeg-subscription-name` (upper case), the event's id, and
    /// `aeg-delivery-count` (attempts before this one).
    fn handler_answers(
        &self,
        subscription: &str,
        event_id: &str,
        delivery_count: u32,
    ) -> Vec<HandlerAnswer>;

    /// The order's records.
    async fn order(&self, order_id: &str) -> OrderSide;

    /// The order's confirmation email as a file (`.eml`), when email goes to the outbox.
    async fn email(&self, order_id: &str) -> Option<(String, String)>;
}

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/", get(page))
        .route("/dashboard/app.js", get(script))
        .route("/dashboard/app.css", get(style))
        .route("/dashboard/api/events", get(events))
        .route("/dashboard/api/events/{position}", get(event))
        .route("/dashboard/api/orders/{order_id}", get(journey::journey))
        .route(
            "/dashboard/api/orders/{order_id}/email",
            get(journey::email),
        )
        .route("/dashboard/api/metrics", get(metrics))
        .route("/dashboard/api/stream", get(stream))
        .route("/dashboard/api/actions/redeliver", post(redeliver))
        .route("/dashboard/api/actions/validate", post(validate))
        .route("/dashboard/api/actions/test-order", post(test_order))
}

/// A fresh token for the dashboard's actions: 256 random bits, hex.
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn secured(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}

async fn page(State(api): State<Arc<ApiState>>) -> Response {
    // The token is hex: nothing to escape.
    let html = PAGE_HTML.replace("{{TOKEN}}", &api.dashboard_token);
    secured("text/html; charset=utf-8", html)
}

async fn script() -> Response {
    secured("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> Response {
    secured("text/css; charset=utf-8", APP_CSS)
}

fn parse_position(text: &str) -> Result<Position, AdminError> {
    let bad = || {
        AdminError::bad_request(format!(
            "{text:?} is not an event position (segment:offset)"
        ))
    };
    let (segment, offset) = text.split_once(':').ok_or_else(bad)?;
    Ok(Position {
        segment: segment.parse().map_err(|_| bad())?,
        offset: offset.parse().map_err(|_| bad())?,
    })
}

/// The event list's status of each subscription an event went to, and of the event.
pub(super) fn summary(api: &ApiState, at: Position, entry: &EventEntry) -> EventSummary {
    let subscriptions = api.activity.subscriptions();
    let mut deliveries: Vec<SubscriptionDelivery> = Vec::new();
    let mut wanted: Vec<u16> = entry
        .indexed
        .as_ref()
        .map(|i| i.matched.clone())
        .unwrap_or_default();
    for a in &entry.attempts {
        if !wanted.contains(&a.subscription) {
            wanted.push(a.subscription);
        }
    }
    for sub in wanted {
        let attempts: Vec<_> = entry
            .attempts
            .iter()
            .filter(|a| a.subscription == sub)
            .collect();
        let last = attempts.last();
        let name = subscriptions.get(sub as usize).cloned().unwrap_or_default();
        // Attempts are kept in memory only: an event the subscription was done with before this
        // start (below its low position) is finished, not pending.
        let finished_earlier = || {
            api.runtimes
                .iter()
                .find(|rt| format!("{}/{}", rt.topic, rt.subscription.name) == name)
                .and_then(|rt| rt.low_position())
                .is_some_and(|low| at < low)
        };
        let state = match last.map(|a| &*a.next) {
            None if finished_earlier() => "finishedEarlier",
            None => "pending",
            Some("delivered") => "delivered",
            Some("dead-letter") => "deadLettered",
            Some("dropped") => "dropped",
            Some(_) => "retrying",
        };
        deliveries.push(SubscriptionDelivery {
            subscription: name,
            state: state.to_owned(),
            attempts: last.map_or(0, |a| a.attempt),
            last_status: last.and_then(|a| a.status),
            last_outcome: last.map(|a| a.outcome.to_string()),
            next: last.map(|a| a.next.to_string()),
        });
    }
    let rank = |s: &str| match s {
        "deadLettered" => 5,
        "dropped" => 4,
        "retrying" => 3,
        "pending" => 2,
        _ => 1,
    };
    let status = deliveries
        .iter()
        .map(|d| d.state.as_str())
        .max_by_key(|s| rank(s))
        .unwrap_or("unmatched")
        .to_owned();
    let indexed = entry.indexed.as_ref();
    EventSummary {
        position: at.to_string(),
        topic: indexed.map(|i| i.topic.to_string()),
        id: indexed.map(|i| i.id.to_string()),
        event_type: indexed.map(|i| i.event_type.to_string()),
        subject: indexed.and_then(|i| i.subject.as_deref().map(str::to_owned)),
        order_id: indexed.and_then(|i| i.order_id.as_deref().map(str::to_owned)),
        published_at: indexed.map(|i| rfc3339_ms(i.published_ms)),
        published_ms: indexed.map(|i| i.published_ms),
        target: indexed.and_then(|i| i.target.as_deref().map(str::to_owned)),
        status,
        deliveries,
    }
}

/// An event with its payload from the spool and its attempts, joined with the handler's answers.
pub(super) fn detail(api: &ApiState, at: Position, entry: &EventEntry) -> EventDetail {
    let event = summary(api, at, entry);
    let (payload, payload_note) = match api.spool.read_event(at) {
        Ok(stored) if stored.event.body.len() > MAX_PAYLOAD_BYTES => (
            None,
            Some(format!(
                "the event is {} bytes; the dashboard shows events up to {MAX_PAYLOAD_BYTES} bytes",
                stored.event.body.len()
            )),
        ),
        Ok(stored) => match String::from_utf8(stored.event.body.to_vec()) {
            Ok(text) => (Some(text), None),
            Err(_) => (None, Some("the stored event is not UTF-8".into())),
        },
        Err(_) => (
            None,
            Some("no longer in the spool (delivered and its segment deleted)".into()),
        ),
    };
    let subscriptions = api.activity.subscriptions();
    let app = api.app.get();
    let attempts = entry
        .attempts
        .iter()
        .map(|a| {
            let key = subscriptions
                .get(a.subscription as usize)
                .cloned()
                .unwrap_or_default();
            let failed = !a.status.is_some_and(|s| (200..300).contains(&s));
            let handler = match (app, &event.id) {
                (Some(app), Some(id)) if failed => {
                    let name = key.rsplit('/').next().unwrap_or("").to_ascii_uppercase();
                    app.handler_answers(&name, id, a.attempt.saturating_sub(1))
                }
                _ => Vec::new(),
            };
            AttemptView {
                subscription: key,
                at: rfc3339_ms(a.at_ms),
                at_ms: a.at_ms,
                attempt: a.attempt,
                status: a.status,
                outcome: a.outcome.to_string(),
                duration_ms: (a.duration_ms * 100.0).round() / 100.0,
                next: a.next.to_string(),
                handler,
            }
        })
        .collect();
    EventDetail {
        event,
        payload,
        payload_note,
        attempts,
        attempts_dropped: entry.attempts_dropped,
    }
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    before: Option<String>,
    limit: Option<usize>,
}

/// Whether an event matches a search: the order id or event id exactly, or the text within its
/// subject or type, ignoring case; everything when the search is empty.
fn matches(entry: &EventEntry, q: &str) -> bool {
    if q.is_empty() {
        return true;
    }
    let Some(i) = &entry.indexed else {
        return false;
    };
    let contains = |text: &str| text.to_ascii_lowercase().contains(q);
    i.order_id
        .as_deref()
        .is_some_and(|o| o.eq_ignore_ascii_case(q))
        || i.id.eq_ignore_ascii_case(q)
        || contains(&i.event_type)
        || i.subject.as_deref().is_some_and(contains)
}

async fn events(
    State(api): State<Arc<ApiState>>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<EventPage>, AdminError> {
    let q = query.q.unwrap_or_default().trim().to_ascii_lowercase();
    let before = query.before.as_deref().map(parse_position).transpose()?;
    let limit = query.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let (page, total) = api
        .activity
        .search(before, limit + 1, |_, entry| matches(entry, &q));
    let next = (page.len() > limit).then(|| page[limit - 1].0.to_string());
    let events = page
        .iter()
        .take(limit)
        .map(|(at, entry)| summary(&api, *at, entry))
        .collect();
    Ok(Json(EventPage {
        events,
        total,
        next,
        indexed_at_most: MAX_EVENTS,
    }))
}

async fn event(
    State(api): State<Arc<ApiState>>,
    Path(position): Path<String>,
) -> Result<Json<EventDetail>, AdminError> {
    let at = parse_position(&position)?;
    let entry = api
        .activity
        .entry(at)
        .ok_or_else(|| AdminError::not_found(format!("no event at {position} in the index")))?;
    Ok(Json(detail(&api, at, &entry)))
}

pub(super) fn metrics_view(api: &ApiState) -> MetricsView {
    let now = now_ms();
    let series = api.activity.series(now);
    let topics = series
        .topics
        .into_iter()
        .map(|(name, points)| {
            let (published, unmatched, by_reason) = api.activity.topic_counts(&name);
            let count = |r| by_reason.get(&r).copied().unwrap_or(0);
            TopicMetrics {
                published,
                unmatched,
                publish_failed: PublishFailedCounts {
                    auth: count(PublishFailure::Auth),
                    schema: count(PublishFailure::Schema),
                    size: count(PublishFailure::Size),
                    other: count(PublishFailure::Other),
                },
                name,
                series: points,
            }
        })
        .collect();
    let subscriptions = api
        .runtimes
        .iter()
        .zip(series.subscriptions)
        .enumerate()
        .map(|(i, (rt, points))| SubscriptionMetrics {
            key: rt.key.clone(),
            topic: rt.topic.clone(),
            name: rt.subscription.name.as_str().to_owned(),
            validation: rt.validation.borrow().clone(),
            counters: rt.counters(),
            delivery_failed: api.activity.failed_attempts(i as u16),
            dead_letter_container: rt
                .subscription
                .dead_letter
                .as_ref()
                .map(|d| d.container.clone()),
            series: points,
        })
        .collect();
    let publish_failures = api
        .activity
        .refused(20)
        .into_iter()
        .map(|r| PublishFailureView {
            at: rfc3339_ms(r.at_ms),
            topic: r.topic,
            reason: serde_json::to_value(r.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            status: r.status,
            message: r.message,
        })
        .collect();
    MetricsView {
        bucket_ms: series.bucket_ms,
        topics,
        subscriptions,
        publish_failures,
    }
}

async fn metrics(State(api): State<Arc<ApiState>>) -> Json<MetricsView> {
    Json(metrics_view(&api))
}

/// Server-sent events: `change` for each change as it happens, `metrics` (the whole
/// [`MetricsView`], small) at most once a second when something moved, `resync` when this
/// client fell behind and should reload what it shows.
async fn stream(
    State(api): State<Arc<ApiState>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    use tokio::sync::broadcast::error::RecvError;
    let changes = api.activity.subscribe();
    let tick = tokio::time::interval(Duration::from_secs(1));
    let state = (api, changes, tick, u64::MAX, true);
    let stream = futures_util::stream::unfold(
        state,
        |(api, mut changes, mut tick, sent, first)| async move {
            if first {
                let hello = SseEvent::default().event("hello").data("{}");
                return Some((Ok(hello), (api, changes, tick, sent, false)));
            }
            loop {
                tokio::select! {
                    change = changes.recv() => {
                        let event = match change {
                            Ok(change) => SseEvent::default()
                                .event("change")
                                .data(serde_json::to_string(&change).unwrap_or_default()),
                            Err(RecvError::Lagged(_)) => SseEvent::default().event("resync").data("{}"),
                            Err(RecvError::Closed) => return None,
                        };
                        return Some((Ok(event), (api, changes, tick, sent, false)));
                    }
                    _ = tick.tick() => {
                        let generation = api.activity.generation();
                        if generation != sent {
                            let event = SseEvent::default()
                                .event("metrics")
                                .data(serde_json::to_string(&metrics_view(&api)).unwrap_or_default());
                            return Some((Ok(event), (api, changes, tick, generation, false)));
                        }
                    }
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Refuses an action that is not JSON from this page: see the module docs.
fn guard(api: &ApiState, headers: &HeaderMap) -> Result<(), AdminError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim();
    if !content_type.eq_ignore_ascii_case("application/json") {
        return Err(AdminError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "dashboard actions take Content-Type: application/json",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin = origin.to_str().unwrap_or("");
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return Err(AdminError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "dashboard actions are taken from the dashboard's own origin only, not {origin:?}"
                ),
            ));
        }
    }
    let token = headers
        .get(TOKEN_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !bool::from(token.ct_eq(api.dashboard_token.as_bytes())) {
        return Err(AdminError::new(
            StatusCode::FORBIDDEN,
            format!(
                "dashboard actions need the dashboard's token in {TOKEN_HEADER} (reload the dashboard page)"
            ),
        ));
    }
    Ok(())
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|e| {
        AdminError::bad_request(format!("the request body is not the action's JSON: {e}"))
    })
}

async fn redeliver(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ActionDone>, AdminError> {
    guard(&api, &headers)?;
    let request: RedeliverRequest = json_body(&body)?;
    if request.subscription.is_none() && request.name.is_none() {
        return Err(AdminError::bad_request(
            "name a subscription (all its dead letters) or a blob (container and name)",
        ));
    }
    let done = super::admin::redeliver_blobs(&api, &request).await?;
    if done.redelivered.is_empty() {
        return Ok(Json(ActionDone {
            done: format!(
                "nothing to redeliver: {} has no dead letters",
                request
                    .subscription
                    .as_deref()
                    .unwrap_or("that subscription")
            ),
            details: serde_json::to_value(&done).unwrap_or_default(),
        }));
    }
    let events: usize = done.redelivered.iter().map(|b| b.events).sum();
    Ok(Json(ActionDone {
        done: format!(
            "published {events} event(s) of {} dead letter(s) again, to {}; the blobs were deleted",
            done.redelivered.len(),
            done.redelivered
                .iter()
                .map(|b| b.subscription.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        details: serde_json::to_value(&done).unwrap_or_default(),
    }))
}

async fn validate(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ActionDone>, AdminError> {
    guard(&api, &headers)?;
    let request: ValidateRequest = json_body(&body)?;
    let started = super::admin::revalidate_named(&api, &request.subscription)?;
    Ok(Json(ActionDone {
        done: format!(
            "started the validation handshake of {}; its state shows under Subscriptions",
            started.join(", ")
        ),
        details: serde_json::json!({ "subscriptions": started }),
    }))
}

async fn test_order(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ActionDone>, AdminError> {
    guard(&api, &headers)?;
    let request: TestOrderRequest = json_body(&body)?;
    let topic: &TopicState = api
        .topic_named("orders")
        .or(match api.topics.as_slice() {
            [only] => Some(only),
            _ => None,
        })
        .ok_or_else(|| {
            AdminError::not_found("there is no `orders` topic to publish a test order to")
        })?;
    let order_id = request
        .order_id
        .filter(|o| !o.trim().is_empty())
        .unwrap_or_else(|| format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let value = request.order_value.unwrap_or_else(|| "25.00".into());
    let value: serde_json::Number = value
        .parse::<serde_json::Number>()
        .map_err(|_| AdminError::bad_request(format!("orderValue {value:?} is not a number")))?;
    let data = serde_json::json!({
        "orderId": order_id,
        "customerId": "dashboard",
        "orderValue": value,
        "currency": "USD",
        "customerEmail": request.customer_email.unwrap_or_else(|| "test@example.com".into()),
    });
    let type_field = match topic.schema {
        Schema::EventGrid => "eventType",
        Schema::CloudEvents => "type",
    };
    let event = serde_json::json!({
        type_field: "NewOrder",
        "subject": format!("orders/{order_id}"),
        "data": data,
    });
    let query = HashMap::new();
    let headers = HeaderMap::new();
    let published = publish::publish(
        &api,
        topic,
        Route::Simple,
        publish::Request {
            path: "/publish",
            https: false,
            query: &query,
            headers: &headers,
            body: axum::body::Body::from(event.to_string()),
        },
    )
    .await
    .map_err(|e| AdminError::new(e.status, e.message))?;
    let body = axum::body::to_bytes(published.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let ids: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    Ok(Json(ActionDone {
        done: format!(
            "published a NewOrder for order {order_id} to topic {}",
            topic.name
        ),
        details: serde_json::json!({ "orderId": order_id, "topic": topic.name, "ids": ids["ids"] }),
    }))
}
