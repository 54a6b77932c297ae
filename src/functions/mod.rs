//! The Azure Functions custom handler: the HTTP server the Functions host invokes.
//!
//! The host calls `POST /<FunctionName>` with `{"Data": {<binding>: event}, "Metadata": {...}}`
//! and expects `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}` as JSON. A non-2xx answer
//! fails the invocation, which Event Grid then retries (and eventually dead-letters).
//!
//! Invariants:
//! - the handler answers 2xx only after its effects are durable (order recorded, email sent and
//!   recorded); a transient failure answers non-2xx so the delivery is retried;
//! - the flow is a choreography over the `orders` topic: `NewOrder` → OrderProcessor →
//!   `OrderAccepted` | `OrderRejected`; `OrderAccepted` → EmailNotifier → `OrderConfirmationSent` |
//!   `OrderConfirmationFailed`. Each function reacts to one event type and emits through its own
//!   `eventGrid` output binding, so the email confirms exactly the order that was recorded;
//! - invalid *orders* are answered 2xx (retrying cannot fix them) and reported as `OrderRejected`;
//!   a broken *contract* (malformed envelope, missing binding, not an event) answers non-2xx, so
//!   the event is retried and finally dead-lettered rather than lost while the deployment is fixed;
//! - every effect is idempotent, keyed by business identity: one order record, one
//!   `OrderAccepted`, one email per `orderId`, one `OrderRejected` per rejected event;
//! - the function names and binding names below are the contract with `*/function.json`; a test
//!   checks that the two agree.

mod app;
mod email_notifier;
mod emit;
mod error;
mod order_processor;
pub mod settings;

pub use app::{Handler, Services, app};
pub use email_notifier::LedgerEntry;
pub use error::InvocationError;
pub use order_processor::{OrderRecord, RejectionRecord};
pub use settings::HandlerSettings;

/// A function this handler serves, as `function.json` must declare it.
#[derive(Debug, Clone, Copy)]
pub struct FunctionSpec {
    /// The folder name; the host POSTs to `/<name>`. Case-sensitive.
    pub name: &'static str,
    /// The `eventGridTrigger` binding's `name`: the key of the event in `Data`.
    pub trigger_binding: &'static str,
    /// The event type it handles (its subscription's filter lets only this through).
    pub trigger_event: &'static str,
    /// Names of `eventGrid` output bindings the function writes to `Outputs`.
    pub output_bindings: &'static [&'static str],
}

pub const ORDER_PROCESSOR: FunctionSpec = FunctionSpec {
    name: "OrderProcessor",
    trigger_binding: "event",
    trigger_event: NEW_ORDER,
    output_bindings: &["outputEvents"],
};

pub const EMAIL_NOTIFIER: FunctionSpec = FunctionSpec {
    name: "EmailNotifier",
    trigger_binding: "event",
    trigger_event: ORDER_ACCEPTED,
    output_bindings: &["outputEvents"],
};

/// Every function this binary serves.
pub const FUNCTIONS: [FunctionSpec; 2] = [ORDER_PROCESSOR, EMAIL_NOTIFIER];

/// The event types of the choreography.
pub const NEW_ORDER: &str = "NewOrder";
pub const ORDER_ACCEPTED: &str = "OrderAccepted";
pub const ORDER_REJECTED: &str = "OrderRejected";
pub const ORDER_CONFIRMATION_SENT: &str = "OrderConfirmationSent";
pub const ORDER_CONFIRMATION_FAILED: &str = "OrderConfirmationFailed";
