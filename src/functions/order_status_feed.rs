//! OrderStatusFeed: every status event (`NewOrder`, `OrderAccepted`, `OrderRejected`,
//! `OrderConfirmationSent`, `OrderConfirmationFailed`) becomes one [`StatusUpdate`], sent through
//! the `webPubSub` output binding `actions` to the order's group and to the operators' group.
//!
//! Invariants:
//! - the answer is exactly two `sendToGroup` actions (`order-<id>`, then `operators`), `dataType`
//!   `json`, `data` the update as a JSON *string* (the extension refuses an object: "Message
//!   should be string, please stringify object.");
//! - the update carries the event's id and time, so a redelivered event produces the identical
//!   update and a page drops it by `eventId`;
//! - an event without a usable order id (none, not a string, not a valid [`OrderId`]) sends
//!   nothing and is acknowledged: no page could be subscribed to it, and retrying cannot help;
//! - a rejection whose `reasons` are not OrderProcessor's `[{field, message}]` is a broken
//!   contract and fails the invocation (retried, then dead-lettered), as does a malformed event;
//! - nothing is stored: the function is a pure mapping, and a failed send fails the invocation
//!   in the host (the binding's REST call), so Event Grid redelivers.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::to_raw_value;

use super::feed::{OPERATORS_GROUP, OrderStatus, StatusUpdate, order_group};
use super::{InvocationError, ORDER_STATUS_FEED};
use crate::domain::{OrderId, RejectionReason};
use crate::eventgrid::InboundEvent;
use crate::invocation::InvocationResponse;

/// A `sendToGroup` action as the `webPubSub` output binding reads it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SendToGroup {
    action_name: &'static str,
    group: String,
    data_type: &'static str,
    data: String,
}

impl SendToGroup {
    fn json(group: String, data: String) -> Self {
        Self {
            action_name: "sendToGroup",
            group,
            data_type: "json",
            data,
        }
    }
}

/// The fields of a status event's `data` the feed reads; everything else is ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusData {
    #[serde(default)]
    order_id: Value,
    #[serde(default)]
    reasons: Option<Value>,
}

pub fn handle(event: &InboundEvent) -> Result<InvocationResponse, InvocationError> {
    let Some(status) = OrderStatus::of_event_type(&event.event_type) else {
        // The dispatcher only lets the trigger's event types through.
        return Err(InvocationError::Internal(anyhow::anyhow!(
            "{} cannot report a {:?} event",
            ORDER_STATUS_FEED.name,
            event.event_type
        )));
    };
    let data: Option<StatusData> = serde_json::from_str(event.data_text()).ok();
    let raw_id = data.as_ref().map_or(&Value::Null, |d| &d.order_id);
    let order_id = match raw_id.as_str().map(OrderId::parse) {
        Some(Ok(id)) => id,
        other => {
            let why = match other {
                Some(Err(e)) => format!("its order id {raw_id} {e}"),
                _ if data.is_none() => "its data is not a JSON object".to_owned(),
                _ => format!("its orderId is {raw_id}, not a string"),
            };
            let summary = format!(
                "{} event {} has no usable order id ({why}); no update sent",
                event.event_type, event.id
            );
            tracing::warn!(outcome = "no-order-id", "{summary}");
            return Ok(InvocationResponse::log(summary));
        }
    };
    tracing::Span::current().record("order_id", order_id.as_str());
    let time = event
        .time
        .clone()
        .unwrap_or_else(crate::eventgrid::now_rfc3339);
    let update = match status {
        OrderStatus::Rejected => {
            let reasons = data
                .and_then(|d| d.reasons)
                .ok_or_else(|| "it has no reasons".to_owned())
                .and_then(|r| {
                    serde_json::from_value::<Vec<RejectionReason>>(r)
                        .map_err(|e| format!("its reasons are not [{{field, message}}]: {e}"))
                })
                .map_err(|why| {
                    InvocationError::BadEvent(format!(
                        "the OrderRejected event {} is not as OrderProcessor emits it: {why}",
                        event.id
                    ))
                })?;
            StatusUpdate::rejected(order_id.clone(), reasons, time, event.id.clone())
        }
        status => StatusUpdate::new(order_id.clone(), status, time, event.id.clone()),
    };
    let json = update.to_json();
    let actions = [
        SendToGroup::json(order_group(&order_id), json.clone()),
        SendToGroup::json(OPERATORS_GROUP.to_owned(), json),
    ];
    let binding = ORDER_STATUS_FEED
        .output("webPubSub")
        .expect("OrderStatusFeed declares its webPubSub output");
    let summary = format!(
        "order {order_id} {}: update sent to {} and {OPERATORS_GROUP}",
        status.name(),
        order_group(&order_id)
    );
    tracing::info!(outcome = "sent", "{summary}");
    let mut response = InvocationResponse::log(summary);
    response.outputs.insert(
        binding.to_owned(),
        to_raw_value(&actions).map_err(|e| InvocationError::Internal(e.into()))?,
    );
    Ok(response)
}
