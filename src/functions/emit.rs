//! The events the functions emit, built so that every emission of one is the same event: its id
//! derives from what it is about (an order id, a rejected event's id) and its time is the time
//! of the record it reports. Event Grid redelivers a trigger when it did not get (or the host did
//! not complete) the earlier answer, and only re-emitting the same event guarantees that the
//! output is not lost while a consumer keying on the event id still sees it once.

use serde_json::value::{RawValue, to_raw_value};
use uuid::Uuid;

use super::{FunctionSpec, InvocationError};
use crate::domain::OrderId;
use crate::eventgrid::EventGridEvent;
use crate::invocation::InvocationResponse;

/// Namespace for the v5 UUIDs of emitted events.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_7267_7269_6400_0000_0000_0001);

/// The id of the `kind` event about `about`, the same every time.
pub fn derived_id(kind: &str, about: &str) -> String {
    Uuid::new_v5(&EVENT_ID_NAMESPACE, format!("{kind}/{about}").as_bytes()).to_string()
}

/// A key for `about` that is safe as a record name.
pub fn derived_key(about: &str) -> Uuid {
    Uuid::new_v5(&EVENT_ID_NAMESPACE, about.as_bytes())
}

/// `orders/<id>`, or `orders/invalid` for an event without a usable order id.
pub fn subject(order_id: Option<&OrderId>) -> String {
    match order_id {
        Some(id) => format!("orders/{id}"),
        None => "orders/invalid".to_owned(),
    }
}

/// An event of `event_type` about a record, with `data` serialized.
pub fn recorded_event(
    id: &str,
    event_type: &str,
    subject: String,
    time: &str,
    data: &impl serde::Serialize,
) -> Result<EventGridEvent, InvocationError> {
    let data: Box<RawValue> =
        to_raw_value(data).map_err(|e| InvocationError::Internal(e.into()))?;
    Ok(EventGridEvent {
        id: id.to_owned(),
        topic: None,
        subject,
        event_type: event_type.to_owned(),
        event_time: time.to_owned(),
        data: Some(data),
        data_version: Some("1.0".to_owned()),
        metadata_version: None,
    })
}

/// The answer carrying one event in the function's `eventGrid` output binding, as a JSON array
/// of objects (never a bare string, which the host would base64-decode).
pub fn emit(
    spec: &FunctionSpec,
    event: EventGridEvent,
    summary: String,
) -> Result<InvocationResponse, InvocationError> {
    let events: Box<RawValue> =
        to_raw_value(&[event]).map_err(|e| InvocationError::Internal(e.into()))?;
    let mut response = InvocationResponse::log(summary);
    let binding = spec.output("eventGrid").ok_or_else(|| {
        InvocationError::Internal(anyhow::anyhow!("{} has no eventGrid output", spec.name))
    })?;
    response.outputs.insert(binding.to_owned(), events);
    Ok(response)
}
