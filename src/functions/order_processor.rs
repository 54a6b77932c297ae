//! OrderProcessor: validates a NewOrder, records it exactly once, emits OrderAccepted or
//! OrderRejected through the `outputEvents` binding.
//!
//! Idempotency:
//! - an order is recorded under `orders/<orderId>` with a conditional create; of any number of
//!   deliveries (retries, races, re-publishes) exactly one creates it;
//! - a rejection is recorded under `orders/rejected/<uuid of the event id>`;
//! - the emitted `OrderAccepted` / `OrderRejected` is built from the record: its id derives from
//!   the order id (or the rejected event's id) and its time is the record's, so every emission
//!   of it is the same event, byte for byte, and a consumer keying on the event id sees one;
//! - a redelivery of the *same* event emits that same event again: Event Grid redelivers when it
//!   did not get (or the host did not complete) the earlier answer, and only re-emitting
//!   guarantees the output is not lost (at-least-once, like Event Grid itself);
//! - the same order published again as a *new* event is acknowledged and emits nothing; an order
//!   id reused with *different* content is rejected (`OrderRejected`), never overwritten;
//! - the trace context recorded with a record is the invocation's that created it, and the event
//!   emitted from the record carries it in `data.traceparent`: a re-emission continues the same
//!   trace from the same span.

use anyhow::Context;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::emit::{derived_id, derived_key, emit, recorded_event, subject};
use super::{InvocationError, ORDER_ACCEPTED, ORDER_PROCESSOR, ORDER_REJECTED, Services};
use crate::domain::{NewOrder, OrderId, Rejection, RejectionReason};
use crate::eventgrid::{EventGridEvent, InboundEvent};
use crate::invocation::InvocationResponse;
use crate::store::{Collection, Created, RecordKey};
use crate::trace::{Kind, Span};

/// What `orders/<orderId>` holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRecord {
    /// The order in its wire shape ([`NewOrder`]'s serialization).
    pub order: serde_json::Value,
    pub event_id: String,
    pub recorded_at: String,
    pub accepted_event_id: String,
    /// The context of the invocation that recorded it (W3C `traceparent`), when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// What `orders/rejected/<id>` holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectionRecord {
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    pub reasons: Vec<RejectionReason>,
    pub rejected_at: String,
    pub rejected_event_id: String,
    /// The context of the invocation that recorded it (W3C `traceparent`), when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

pub async fn handle(
    services: &Services,
    event: &InboundEvent,
    span: &mut Span,
) -> Result<InvocationResponse, InvocationError> {
    match NewOrder::parse(event.data_text(), &services.limits) {
        Ok(order) => {
            tracing::Span::current().record("order_id", order.order_id().as_str());
            span.set("order.id", order.order_id().to_string());
            record(services, event, &order, span).await
        }
        Err(rejection) => {
            if let Some(id) = &rejection.order_id {
                tracing::Span::current().record("order_id", id.as_str());
                span.set("order.id", id.clone());
            }
            reject(services, event, rejection, span).await
        }
    }
}

/// Creates `key` with `body` unless it exists, in a span of its own.
async fn create(
    services: &Services,
    key: &RecordKey,
    body: Vec<u8>,
    span: &Span,
) -> anyhow::Result<Created> {
    let mut write = services
        .tracer
        .start("record", Kind::Client, span.traceparent());
    write.set("record.key", key.to_string());
    let created = services.store.create(key, Bytes::from(body)).await;
    match &created {
        Ok(Created::Created(_)) => write.set("record.created", true),
        Ok(Created::Exists(_)) => write.set("record.created", false),
        Err(e) => write.fail(e.to_string()),
    }
    Ok(created?)
}

async fn record(
    services: &Services,
    event: &InboundEvent,
    order: &NewOrder,
    span: &Span,
) -> Result<InvocationResponse, InvocationError> {
    let order_id = order.order_id();
    let key = RecordKey::new(Collection::Orders, order_id.as_str())
        .map_err(|e| InvocationError::Internal(e.into()))?;
    let accepted_id = derived_id(ORDER_ACCEPTED, order_id.as_str());
    let order_json =
        serde_json::to_value(order).map_err(|e| InvocationError::Internal(e.into()))?;
    let record = OrderRecord {
        order: order_json.clone(),
        event_id: event.id.clone(),
        recorded_at: crate::eventgrid::now_rfc3339(),
        accepted_event_id: accepted_id.clone(),
        traceparent: span.traceparent().map(|tp| tp.to_string()),
    };
    let body = serde_json::to_vec(&record).map_err(|e| InvocationError::Internal(e.into()))?;
    let created = create(services, &key, body, span)
        .await
        .with_context(|| format!("failed to record order {order_id}"))
        .map_err(InvocationError::Transient)?;
    match created {
        Created::Created(_) => {
            let summary = format!(
                "order {order_id} recorded ({}, customer {}); OrderAccepted emitted",
                order.order_value(),
                order.customer_id()
            );
            tracing::info!(outcome = "accepted", "{summary}");
            emit(&ORDER_PROCESSOR, accepted_event(order, &record)?, summary)
        }
        Created::Exists(existing) => {
            let existing: OrderRecord = serde_json::from_slice(&existing.body)
                .with_context(|| format!("the stored record of order {order_id} is not readable"))
                .map_err(InvocationError::Internal)?;
            if existing.order != order_json {
                let rejection = Rejection {
                    order_id: Some(order_id.to_string()),
                    reasons: vec![RejectionReason {
                        field: "orderId".into(),
                        message: format!(
                            "order {order_id} was already recorded with different content (from event {}); an order id cannot be reused",
                            existing.event_id
                        ),
                    }],
                };
                return reject(services, event, rejection, span).await;
            }
            if existing.event_id == event.id {
                let summary = format!(
                    "order {order_id} was already recorded by an earlier delivery of this event; OrderAccepted emitted again (same id), in case that answer was lost"
                );
                tracing::info!(outcome = "redelivered", "{summary}");
                emit(&ORDER_PROCESSOR, accepted_event(order, &existing)?, summary)
            } else {
                let summary = format!(
                    "order {order_id} was already recorded from event {} with the same content; nothing emitted",
                    existing.event_id
                );
                tracing::info!(outcome = "duplicate", "{summary}");
                Ok(InvocationResponse::log(summary))
            }
        }
    }
}

/// `OrderAccepted` for a recorded order: the same event however often it is emitted. Its data
/// is the order as recorded, in the wire shape [`NewOrder::parse_recorded`] reads (amounts as
/// strings, so they stay exact through the Functions host), plus the event it came from.
fn accepted_event(
    order: &NewOrder,
    record: &OrderRecord,
) -> Result<EventGridEvent, InvocationError> {
    let mut data = serde_json::to_value(order).map_err(|e| InvocationError::Internal(e.into()))?;
    data["sourceEventId"] = record.event_id.clone().into();
    if let Some(tp) = &record.traceparent {
        data[crate::trace::TRACEPARENT] = tp.clone().into();
    }
    recorded_event(
        &record.accepted_event_id,
        ORDER_ACCEPTED,
        subject(Some(order.order_id())),
        &record.recorded_at,
        &data,
    )
}

/// `OrderRejected` for a recorded rejection: the same event however often it is emitted.
fn rejected_event(record: &RejectionRecord) -> Result<EventGridEvent, InvocationError> {
    let order_id = record
        .order_id
        .as_deref()
        .and_then(|id| OrderId::parse(id).ok());
    let mut data = serde_json::json!({
        "orderId": record.order_id,
        "sourceEventId": record.event_id,
        "reasons": record.reasons,
    });
    if let Some(tp) = &record.traceparent {
        data[crate::trace::TRACEPARENT] = tp.clone().into();
    }
    recorded_event(
        &record.rejected_event_id,
        ORDER_REJECTED,
        subject(order_id.as_ref()),
        &record.rejected_at,
        &data,
    )
}

async fn reject(
    services: &Services,
    event: &InboundEvent,
    rejection: Rejection,
    span: &Span,
) -> Result<InvocationResponse, InvocationError> {
    let event_key = derived_key(&event.id);
    let key = RecordKey::new(Collection::Orders, &format!("rejected/{event_key}"))
        .map_err(|e| InvocationError::Internal(e.into()))?;
    let rejected_id = derived_id(ORDER_REJECTED, &event.id);
    let record = RejectionRecord {
        event_id: event.id.clone(),
        order_id: rejection.order_id.clone(),
        reasons: rejection.reasons.clone(),
        rejected_at: crate::eventgrid::now_rfc3339(),
        rejected_event_id: rejected_id.clone(),
        traceparent: span.traceparent().map(|tp| tp.to_string()),
    };
    let body = serde_json::to_vec(&record).map_err(|e| InvocationError::Internal(e.into()))?;
    let created = create(services, &key, body, span)
        .await
        .with_context(|| format!("failed to record the rejection of event {}", event.id))
        .map_err(InvocationError::Transient)?;
    let shown_id = rejection.order_id.as_deref().unwrap_or("(none)");
    match created {
        Created::Created(_) => {
            let summary = format!(
                "order {shown_id} rejected: {}; OrderRejected emitted",
                rejection.summary()
            );
            tracing::info!(outcome = "rejected", "{summary}");
            emit(&ORDER_PROCESSOR, rejected_event(&record)?, summary)
        }
        Created::Exists(existing) => {
            // Rejections are keyed by event: this is a redelivery of the same event.
            let existing: RejectionRecord = serde_json::from_slice(&existing.body)
                .with_context(|| {
                    format!("the stored rejection of event {} is not readable", event.id)
                })
                .map_err(InvocationError::Internal)?;
            let summary = format!(
                "order {shown_id} was already rejected for this event; OrderRejected emitted again (same id), in case that answer was lost"
            );
            tracing::info!(outcome = "redelivered", "{summary}");
            emit(&ORDER_PROCESSOR, rejected_event(&existing)?, summary)
        }
    }
}
