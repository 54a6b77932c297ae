//! The Azure Functions custom handler: the HTTP server the Functions host invokes.
//!
//! The host calls `POST /<FunctionName>` with `{"Data": {<binding>: event}, "Metadata": {...}}`
//! and expects `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}` as JSON. A non-2xx answer
//! fails the invocation, which Event Grid then retries (and eventually dead-letters).
//!
//! Invariants:
//! - the handler answers 2xx only after its effects are durable (order recorded, email sent and
//!   recorded); a transient failure answers non-2xx so the delivery is retried;
//! - invalid *orders* are answered 2xx (retrying cannot fix them) and reported as `OrderRejected`;
//!   a broken *contract* (malformed envelope, missing binding, not an event) answers non-2xx, so
//!   the event is retried and finally dead-lettered rather than lost while the deployment is fixed;
//! - every effect is idempotent, keyed by business identity: one order record, one
//!   `OrderAccepted`, one email per `orderId`, one `OrderRejected` per rejected event;
//! - the function names and binding names below are the contract with `*/function.json`; a test
//!   checks that the two agree.

mod app;
mod email_notifier;
mod error;
mod invocation;
mod order_processor;
pub mod records;

pub use app::{Handler, Services, app};
pub use error::InvocationError;
pub use invocation::{InvocationRequest, InvocationResponse};

/// A function this handler serves, as `function.json` must declare it.
#[derive(Debug, Clone, Copy)]
pub struct FunctionSpec {
    /// The folder name; the host POSTs to `/<name>`. Case-sensitive.
    pub name: &'static str,
    /// The `eventGridTrigger` binding's `name`: the key of the event in `Data`.
    pub trigger_binding: &'static str,
    /// Names of `eventGrid` output bindings the function writes to `Outputs`.
    pub output_bindings: &'static [&'static str],
}

pub const ORDER_PROCESSOR: FunctionSpec = FunctionSpec {
    name: "OrderProcessor",
    trigger_binding: "event",
    output_bindings: &["outputEvents"],
};

pub const EMAIL_NOTIFIER: FunctionSpec = FunctionSpec {
    name: "EmailNotifier",
    trigger_binding: "event",
    output_bindings: &[],
};

/// Every function this binary serves.
pub const FUNCTIONS: [FunctionSpec; 2] = [ORDER_PROCESSOR, EMAIL_NOTIFIER];

/// The event type both functions are triggered by.
pub const NEW_ORDER: &str = "NewOrder";
