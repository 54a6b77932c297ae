//! The admin API's JSON (`/health` and `/emulator/…`), modelled once: the server
//! (`api::admin`) answers with these types, and [`AdminClient`] reads them for the CLI
//! (`ordergrid emulator status …`), the tests and the benchmarks. The dashboard reads the same
//! JSON in the browser.

mod client;
pub mod dashboard;

use serde::{Deserialize, Serialize};

pub use super::dead_letter::DeadLetterBlob;
pub use super::delivery::Validation;
pub use super::spool::{Counters, PendingAction};
use crate::journal::Position;
pub use client::{AdminClient, AdminClientError};

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `healthy` while the emulator serves.
    pub status: String,
    pub topics: usize,
    pub subscriptions: usize,
    pub uptime_seconds: u64,
    /// Where the next published event will be stored.
    pub spool_end: Position,
}

/// One entry of `GET /emulator/topics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicView {
    pub name: String,
    /// `EventGridSchema` or `CloudEventSchemaV1_0`, as ARM names them.
    pub input_schema: String,
    /// The publish endpoint over HTTP.
    pub endpoint: String,
    pub resource_id: String,
}

/// One entry of `GET /emulator/subscriptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub topic: String,
    pub name: String,
    pub destination: DestinationView,
    pub validation: Validation,
    pub counters: Counters,
    /// Events waiting for a retry or a dead-letter write.
    pub pending: usize,
    pub dead_letter_container: Option<String>,
    pub max_delivery_attempts: u32,
    pub event_time_to_live_in_minutes: u64,
}

/// Where a subscription delivers, as ARM's `endpointType` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "endpointType")]
pub enum DestinationView {
    #[serde(rename_all = "camelCase")]
    AzureFunction {
        function_name: String,
        /// Where the emulator posts, on the Functions host.
        url: String,
    },
    #[serde(rename_all = "camelCase")]
    WebHook { endpoint_url: String },
}

impl DestinationView {
    /// `function OrderProcessor` or the webhook's URL, for people.
    pub fn describe(&self) -> String {
        match self {
            Self::AzureFunction { function_name, .. } => format!("function {function_name}"),
            Self::WebHook { endpoint_url } => endpoint_url.clone(),
        }
    }
}

/// One attempt, in `GET /emulator/deliveries` (newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    pub at: String,
    pub subscription: String,
    pub event_ids: Vec<String>,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub status: Option<u16>,
    pub outcome: String,
    pub duration_ms: f64,
    /// `delivered`, `retry at <time>`, `dead-letter`, `dropped`.
    pub next: String,
}

/// A waiting event, in `GET /emulator/retries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingView {
    pub subscription: String,
    pub event_id: Option<String>,
    pub position: Position,
    pub attempts: u32,
    pub due: String,
    pub action: PendingAction,
    pub last_status: Option<u16>,
    pub last_outcome: Option<String>,
}

/// One entry of `GET /emulator/dead-letters`: the blob (its `container`, `name`, `subscription`
/// and `writtenAt`, the dead-letter time) and what its first event says: why it was
/// dead-lettered, its id and the order it is about. A blob that cannot be read or parsed is
/// listed with these absent rather than failing the listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    #[serde(flatten)]
    pub blob: DeadLetterBlob,
    /// The events in the blob (Event Grid dead-letters one per blob; a redelivery batch may hold
    /// more), when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<usize>,
    /// `deadLetterReason` (`deadletterreason` in CloudEvents): `TimeToLiveExceeded`,
    /// `MaxDeliveryAttemptsExceeded`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// `data.orderId`, when the event's data has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

impl DeadLetterView {
    /// The view of `blob` whose content is `bytes` (a JSON array of annotated events).
    pub fn read(blob: DeadLetterBlob, bytes: Option<&[u8]>) -> Self {
        let events = bytes.and_then(|b| serde_json::from_slice::<Vec<serde_json::Value>>(b).ok());
        let first = events.as_ref().and_then(|e| e.first());
        let text = |names: &[&str]| {
            names.iter().find_map(|name| {
                let mut value = first?;
                for part in name.split('.') {
                    value = value.get(part)?;
                }
                value.as_str().map(str::to_owned)
            })
        };
        Self {
            events: events.as_ref().map(Vec::len),
            reason: text(&["deadLetterReason", "deadletterreason"]),
            event_id: text(&["id"]),
            order_id: text(&["data.orderId"]),
            blob,
        }
    }

    /// `<container>/<name>`, how the CLI names a dead letter.
    pub fn path(&self) -> String {
        format!("{}/{}", self.blob.container, self.blob.name)
    }
}

/// `POST /emulator/dead-letters/redeliver`: one blob (`container` and `name`), every blob of
/// `subscription`, or every blob when all are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedeliverRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
}

/// The answer to a redelivery: the blobs whose events were published again, none when the
/// subscription named exists but has no dead letters (an unknown subscription or blob is a 404).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redelivered {
    pub redelivered: Vec<RedeliveredBlob>,
}

/// A dead-letter blob whose events were published again (and which was then deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeliveredBlob {
    pub container: String,
    pub name: String,
    pub subscription: String,
    pub events: usize,
}

/// `{"error": {"code", "message"}}`, every admin error's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The HTTP status's reason phrase (`Not Found`).
    pub code: String,
    pub message: String,
}
