//! The dashboard's JSON (`/dashboard/api/…`), modelled once: the server answers with these
//! types and the tests read them back. Times are RFC 3339 with milliseconds, plus `…Ms` (Unix
//! milliseconds) where the page lines them up on a timeline.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use super::super::activity::metrics::{SubscriptionPoint, TopicPoint};
use super::{Counters, PendingView, Validation};

/// An event in a list: its envelope, order id and delivery status per subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSummary {
    /// Where it is in the spool (`segment:offset`): what `GET /dashboard/api/events/{position}`
    /// takes.
    pub position: String,
    pub topic: Option<String>,
    pub id: Option<String>,
    pub event_type: Option<String>,
    pub subject: Option<String>,
    pub order_id: Option<String>,
    pub published_at: Option<String>,
    pub published_ms: Option<i64>,
    /// The one subscription a redelivered dead letter was published for.
    pub target: Option<String>,
    /// `unmatched`, `pending`, `delivered`, `retrying`, `deadLettered`, `dropped` (the worst of
    /// its subscriptions').
    pub status: String,
    pub deliveries: Vec<SubscriptionDelivery>,
}

/// Where one subscription stands with one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDelivery {
    /// `topic/subscription`.
    pub subscription: String,
    /// `pending`, `delivered`, `retrying`, `deadLettered`, `dropped`.
    pub state: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_outcome: Option<String>,
    pub next: Option<String>,
}

/// `GET /dashboard/api/events?q=&before=&limit=`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub events: Vec<EventSummary>,
    /// How many events match, in all.
    pub total: usize,
    /// `before` for the next (older) page, when there is one.
    pub next: Option<String>,
    /// Events the index holds at most (older ones are dropped from it).
    pub indexed_at_most: usize,
}

/// The handler's answer to a failed invocation, as the Functions host stand-in saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandlerAnswer {
    pub at: String,
    pub function: String,
    pub invocation_id: String,
    /// The handler's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The handler's error code (`TransientFailure`), when it gave one.
    pub code: Option<String>,
    /// The cause: the handler's error message, or why the host failed the invocation.
    pub message: String,
    /// Log lines of the invocation (bounded).
    pub logs: Vec<String>,
}

/// One attempt of one event to one subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub subscription: String,
    pub at: String,
    pub at_ms: i64,
    /// 1 for the first.
    pub attempt: u32,
    pub status: Option<u16>,
    pub outcome: String,
    pub duration_ms: f64,
    pub next: String,
    /// For a failed attempt to a function: the handler's answer(s) to that delivery.
    pub handler: Vec<HandlerAnswer>,
}

/// `GET /dashboard/api/events/{position}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetail {
    pub event: EventSummary,
    /// The event as stored in the spool, byte for byte (it is UTF-8 JSON), when still there.
    pub payload: Option<String>,
    /// Why there is no payload.
    pub payload_note: Option<String>,
    pub attempts: Vec<AttemptView>,
    /// Older attempts not kept.
    pub attempts_dropped: u32,
}

/// A dead-lettered event of a journey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    pub container: String,
    pub name: String,
    /// Upper case, as the blob path names it.
    pub subscription: String,
    pub event_id: Option<String>,
    pub reason: Option<String>,
    pub delivery_attempts: Option<u64>,
    pub last_delivery_outcome: Option<String>,
    pub last_http_status_code: Option<u64>,
    pub last_delivery_attempt_time: Option<String>,
}

/// The confirmation email of an order (from the outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailView {
    pub file: String,
    pub subject: Option<String>,
    pub to: Option<String>,
    pub from: Option<String>,
    pub date: Option<String>,
    /// Where the page opens the message (`text/plain`).
    pub url: String,
}

/// What the function app recorded about an order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderSide {
    /// `orders/<id>` as stored.
    pub record: Option<Value>,
    /// `email-ledger/<id>` as stored.
    pub email_ledger: Option<Value>,
    /// `orders/rejected/*` records naming the order.
    pub rejections: Vec<Value>,
    /// Why the records could not be read, if they could not.
    pub unavailable: Option<String>,
}

/// A moment of a journey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    pub at: String,
    pub at_ms: i64,
    /// `published`, `attempt`, `recorded`, `rejected`, `email`, `deadLettered`.
    pub kind: String,
    pub text: String,
    /// An attempt or event that went wrong.
    pub failed: bool,
}

/// `GET /dashboard/api/orders/{orderId}`: everything about one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journey {
    pub order_id: String,
    /// Every event whose `data.orderId` is the order's (NewOrder and the status events it led
    /// to), oldest first, with their attempts.
    pub events: Vec<EventDetail>,
    #[serde(flatten)]
    pub order: OrderSide,
    pub email: Option<EmailView>,
    /// Retries pending, and dead-letter writes waiting, for the order's events.
    pub retries: Vec<PendingView>,
    pub dead_letters: Vec<DeadLetterView>,
    pub timeline: Vec<TimelineEntry>,
    /// The order's trace, for the waterfall.
    pub trace: TraceView,
}

/// The spans of the traces an order's events and records carry (`traceparent`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceView {
    /// The trace ids found (one when the order was published once, with trace context).
    pub trace_ids: Vec<String>,
    /// Their spans, by start time.
    pub spans: Vec<crate::trace::otlp::SpanRecord>,
    /// Why there are no spans, when there are none.
    pub note: Option<String>,
}

/// Publish refusals of a topic by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishFailedCounts {
    pub auth: u64,
    pub schema: u64,
    pub size: u64,
    pub other: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicMetrics {
    pub name: String,
    /// Events indexed since the emulator started (those the spool held then included).
    pub published: u64,
    pub publish_failed: PublishFailedCounts,
    /// Events no subscription wanted.
    pub unmatched: u64,
    pub series: Vec<TopicPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionMetrics {
    /// `topic/subscription`.
    pub key: String,
    pub topic: String,
    pub name: String,
    pub validation: Validation,
    /// Kept across restarts.
    pub counters: Counters,
    /// Failed attempts since the emulator started.
    pub delivery_failed: u64,
    pub dead_letter_container: Option<String>,
    pub series: Vec<SubscriptionPoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishFailureView {
    pub at: String,
    pub topic: String,
    /// `auth`, `schema`, `size`, `other`.
    pub reason: String,
    pub status: u16,
    pub message: String,
}

/// `GET /dashboard/api/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsView {
    pub bucket_ms: i64,
    pub topics: Vec<TopicMetrics>,
    pub subscriptions: Vec<SubscriptionMetrics>,
    /// The latest refused publishes, newest first.
    pub publish_failures: Vec<PublishFailureView>,
}

/// `POST /dashboard/api/actions/validate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateRequest {
    pub subscription: String,
}

/// `POST /dashboard/api/actions/test-order`: a `NewOrder` published to the `orders` topic (or
/// the only topic), with defaults for what is left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestOrderRequest {
    pub order_id: Option<String>,
    pub customer_email: Option<String>,
    /// A decimal, as text (`"25.00"`).
    pub order_value: Option<String>,
}

/// What an action did, for people, and in detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDone {
    pub done: String,
    pub details: Value,
}
