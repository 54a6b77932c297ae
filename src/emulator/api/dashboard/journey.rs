//! An order's journey: every event whose `data.orderId` is the order's, with their attempts
//! (and the handler's answers to the failed ones), the retries and dead-letter writes pending,
//! the dead letters holding them, and, from the function app, the order's records and email;
//! all lined up on one timeline.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::super::ApiState;
use super::super::admin::AdminError;
use super::{detail, secured};
use crate::emulator::admin::dashboard::{
    DeadLetterView, EmailView, EventDetail, Journey, OrderSide, TimelineEntry, TraceView,
};
use crate::emulator::clock::rfc3339_ms;
use crate::trace::TraceParent;

/// Events of one order looked at, at most; dead-letter blobs read for one journey, at most.
const MAX_EVENTS: usize = 200;
const MAX_BLOBS: usize = 500;

fn valid_order_id(order_id: &str) -> Result<(), AdminError> {
    if order_id.is_empty() || order_id.len() > 128 || order_id.chars().any(char::is_control) {
        return Err(AdminError::bad_request(format!(
            "{order_id:?} is not an order id"
        )));
    }
    Ok(())
}

fn ms_of(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn field<'a>(event: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| event.get(*n))
}

/// The dead letters holding the order's events (or events with these ids).
async fn dead_letters(api: &ApiState, order_id: &str, ids: &[String]) -> Vec<DeadLetterView> {
    let Ok(blobs) = api.dead_letters.list().await else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for blob in blobs.into_iter().rev().take(MAX_BLOBS) {
        let Ok(bytes) = api.dead_letters.read(&blob.container, &blob.name).await else {
            continue;
        };
        let Ok(Value::Array(events)) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        for event in events {
            let id = event.get("id").and_then(Value::as_str).map(str::to_owned);
            let order = event
                .get("data")
                .and_then(|d| d.get("orderId"))
                .map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_owned));
            let ours = order.as_deref() == Some(order_id)
                || id.as_ref().is_some_and(|id| ids.contains(id));
            if !ours {
                continue;
            }
            let text = |names: &[&str]| {
                field(&event, names)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            found.push(DeadLetterView {
                container: blob.container.clone(),
                name: blob.name.clone(),
                subscription: blob.subscription.clone(),
                event_id: id,
                reason: text(&["deadLetterReason", "deadletterreason"]),
                delivery_attempts: field(&event, &["deliveryAttempts", "deliveryattempts"])
                    .and_then(Value::as_u64),
                last_delivery_outcome: text(&["lastDeliveryOutcome", "lastdeliveryoutcome"]),
                last_http_status_code: field(&event, &["lastHttpStatusCode", "lasthttpstatuscode"])
                    .and_then(Value::as_u64),
                last_delivery_attempt_time: text(&[
                    "lastDeliveryAttemptTime",
                    "lastdeliveryattempttime",
                ]),
            });
        }
    }
    found
}

/// The headers of an `.eml` a person reads first.
fn email_view(order_id: &str, file: String, text: &str) -> EmailView {
    let header = |name: &str| {
        text.lines().take_while(|l| !l.is_empty()).find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    EmailView {
        file,
        subject: header("Subject"),
        to: header("To"),
        from: header("From"),
        date: header("Date"),
        url: format!(
            "/dashboard/api/orders/{}/email",
            percent_encoding::utf8_percent_encode(order_id, percent_encoding::NON_ALPHANUMERIC)
        ),
    }
}

fn timeline(
    events: &[EventDetail],
    order: &OrderSide,
    dead: &[DeadLetterView],
) -> Vec<TimelineEntry> {
    let mut entries = Vec::new();
    let mut push = |at_ms: i64, kind: &str, text: String, failed: bool| {
        entries.push(TimelineEntry {
            at: rfc3339_ms(at_ms),
            at_ms,
            kind: kind.to_owned(),
            text,
            failed,
        })
    };
    for e in events {
        let summary = &e.event;
        if let Some(ms) = summary.published_ms {
            let what = summary.event_type.as_deref().unwrap_or("event");
            let to = summary
                .target
                .as_deref()
                .map(|t| format!(" (redelivered to {t})"))
                .unwrap_or_default();
            push(
                ms,
                "published",
                format!(
                    "{what} {} published{to}",
                    summary.id.as_deref().unwrap_or("")
                ),
                false,
            );
        }
        for a in &e.attempts {
            let ok = a.status.is_some_and(|s| (200..300).contains(&s));
            let status = a
                .status
                .map_or_else(|| "no answer".to_owned(), |s| s.to_string());
            let cause = a
                .handler
                .first()
                .map(|h| format!(": {}", h.message))
                .unwrap_or_default();
            push(
                a.at_ms,
                "attempt",
                format!(
                    "{} attempt {} of {}: {status} {} in {} ms → {}{cause}",
                    a.subscription,
                    a.attempt,
                    summary.event_type.as_deref().unwrap_or("event"),
                    a.outcome,
                    a.duration_ms,
                    a.next
                ),
                !ok,
            );
        }
    }
    if let Some(at) = order
        .record
        .as_ref()
        .and_then(|r| r.get("recordedAt"))
        .and_then(Value::as_str)
        .and_then(ms_of)
    {
        push(at, "recorded", "order recorded".into(), false);
    }
    for r in &order.rejections {
        if let Some(at) = r.get("rejectedAt").and_then(Value::as_str).and_then(ms_of) {
            push(at, "rejected", "order rejected".into(), true);
        }
    }
    if let Some(ledger) = &order.email_ledger {
        for (field, text, failed) in [
            ("sentAt", "confirmation email sent", false),
            ("failedAt", "confirmation email failed", true),
        ] {
            if let Some(at) = ledger.get(field).and_then(Value::as_str).and_then(ms_of) {
                push(at, "email", text.into(), failed);
            }
        }
    }
    for d in dead {
        if let Some(at) = d.last_delivery_attempt_time.as_deref().and_then(ms_of) {
            push(
                at,
                "deadLettered",
                format!(
                    "{} dead-lettered ({}) into {}/{}",
                    d.subscription,
                    d.reason.as_deref().unwrap_or("?"),
                    d.container,
                    d.name
                ),
                true,
            );
        }
    }
    entries.sort_by_key(|e| e.at_ms);
    entries
}

pub async fn journey(
    State(api): State<Arc<ApiState>>,
    Path(order_id): Path<String>,
) -> Result<Json<Journey>, AdminError> {
    valid_order_id(&order_id)?;
    let (mut page, _) = api.activity.search(None, MAX_EVENTS, |_, entry| {
        entry.indexed.as_ref().and_then(|i| i.order_id.as_deref()) == Some(order_id.as_str())
    });
    page.reverse();
    let events: Vec<EventDetail> = page
        .iter()
        .map(|(at, entry)| detail(&api, *at, entry))
        .collect();
    let ids: Vec<String> = events.iter().filter_map(|e| e.event.id.clone()).collect();
    let mut retries = Vec::new();
    for rt in &api.runtimes {
        retries.extend(
            rt.pending()
                .await
                .into_iter()
                .filter(|p| p.event_id.as_ref().is_some_and(|id| ids.contains(id))),
        );
    }
    let dead = dead_letters(&api, &order_id, &ids).await;
    let (order, email) = match api.app.get() {
        Some(app) => {
            let order = app.order(&order_id).await;
            let email = app
                .email(&order_id)
                .await
                .map(|(file, text)| email_view(&order_id, file, &text));
            (order, email)
        }
        None => (
            OrderSide {
                unavailable: Some(
                    "the emulator runs without the function app (not under `ordergrid dev`)".into(),
                ),
                ..OrderSide::default()
            },
            None,
        ),
    };
    if events.is_empty() && order.record.is_none() && order.rejections.is_empty() && dead.is_empty()
    {
        return Err(AdminError::not_found(format!(
            "nothing is known about order {order_id:?}: no event names it in data.orderId"
        )));
    }
    let timeline = timeline(&events, &order, &dead);
    let trace = trace(&api, &events, &order);
    Ok(Json(Journey {
        order_id,
        events,
        order,
        email,
        retries,
        dead_letters: dead,
        timeline,
        trace,
    }))
}

/// The traces the order's events (`data.traceparent`, or a CloudEvent's `traceparent`) and
/// records (`traceparent`) name, with the spans kept of them.
fn trace(api: &ApiState, events: &[EventDetail], order: &OrderSide) -> TraceView {
    let mut parents: Vec<TraceParent> = Vec::new();
    let mut note = |tp: Option<TraceParent>| {
        if let Some(tp) = tp
            && !parents.iter().any(|p| p.trace_id == tp.trace_id)
        {
            parents.push(tp);
        }
    };
    for payload in events.iter().filter_map(|e| e.payload.as_deref()) {
        let Ok(event) = serde_json::from_str::<Value>(payload) else {
            continue;
        };
        // `data.traceparent` (Event Grid schema), else a CloudEvent's own attribute.
        let carried = |at: &Value| {
            at.get(crate::trace::TRACEPARENT)
                .and_then(Value::as_str)
                .and_then(TraceParent::parse)
        };
        note(
            event
                .get("data")
                .and_then(carried)
                .or_else(|| carried(&event)),
        );
    }
    for record in order
        .record
        .iter()
        .chain(&order.rejections)
        .chain(&order.email_ledger)
    {
        note(
            record
                .get(crate::trace::TRACEPARENT)
                .and_then(Value::as_str)
                .and_then(TraceParent::parse),
        );
    }
    let trace_ids: Vec<String> = parents.iter().map(TraceParent::trace_id_hex).collect();
    let Some(store) = &api.traces else {
        return TraceView {
            trace_ids,
            spans: Vec::new(),
            note: Some(
                "traces are not kept: set ORDERGRID_EMULATOR_TRACES=true (ordergrid dev does)"
                    .into(),
            ),
        };
    };
    let mut spans: Vec<_> = trace_ids.iter().flat_map(|id| store.trace(id)).collect();
    spans.sort_by_key(|s| s.start_unix_nano);
    let note = match (trace_ids.is_empty(), spans.is_empty()) {
        (true, _) => Some(
            "no trace context: the order's events carry no data.traceparent (publish with ordergrid publish, or add one)".into(),
        ),
        (false, true) => Some("no spans received for this trace (yet)".into()),
        (false, false) => None,
    };
    TraceView {
        trace_ids,
        spans,
        note,
    }
}

/// The order's email as the outbox holds it (`text/plain`, so the browser shows it as it is).
pub async fn email(
    State(api): State<Arc<ApiState>>,
    Path(order_id): Path<String>,
) -> Result<Response, AdminError> {
    valid_order_id(&order_id)?;
    let found = match api.app.get() {
        Some(app) => app.email(&order_id).await,
        None => None,
    };
    let (_, text) = found.ok_or_else(|| {
        AdminError::not_found(format!("no email for order {order_id:?} in the outbox"))
    })?;
    let mut response = secured("text/plain; charset=utf-8", text);
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        header::HeaderValue::from_static("inline"),
    );
    Ok(response.into_response())
}
