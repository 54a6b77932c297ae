//! The Azure Functions custom handler: the HTTP server the Functions host invokes.
//!
//! Event Grid functions: `OrderProcessor`, `EmailNotifier` (the choreography) and
//! `OrderStatusFeed` (every status event, as a live update through Web PubSub). HTTP functions
//! (`httpTrigger` + `http` output, invoked with the same envelope, `Data.req` → `Outputs.res`):
//! `negotiate` (a browser's scoped Web PubSub client URL), `web` (the tracker and board pages)
//! `orderStatus` (an order's current status) and `recentOrders` (the board's recent orders).
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
//! - an HTTP function answers its caller through `Outputs.res`, always in a 2xx invocation (a
//!   4xx or 5xx is the *caller's* answer); only a broken contract fails the invocation;
//! - the function names and binding names below are the contract with `*/function.json`; a test
//!   checks that the two agree.

mod app;
mod client_tokens;
mod email_notifier;
mod emit;
mod error;
pub mod feed;
mod http;
mod negotiate;
pub mod operators;
mod order_processor;
mod order_status;
mod order_status_feed;
mod recent_orders;
pub mod settings;
mod web;

pub use app::{Handler, Services, app};
pub use client_tokens::{CLIENT_TOKEN_MINUTES, ClientTokens};
pub use email_notifier::LedgerEntry;
pub use error::InvocationError;
pub use operators::Operators;
pub use order_processor::{OrderRecord, RejectionRecord};
pub use settings::HandlerSettings;

/// What starts a function: its `function.json`'s trigger binding.
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    /// `eventGridTrigger` named `binding` (the key of the event in `Data`), for the event types
    /// in `events` (its subscription's filter lets only these through).
    EventGrid {
        binding: &'static str,
        events: &'static [&'static str],
    },
    /// `httpTrigger` named `binding` (the key of the request in `Data`), anonymous, GET only, at
    /// `route` under the host's route prefix (`/api`), answered through the `http` output
    /// named `response`.
    Http {
        binding: &'static str,
        route: &'static str,
        response: &'static str,
    },
}

/// A binding besides the trigger (and an HTTP trigger's `http` output), as `function.json`
/// declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// Its `type`: `eventGrid`, `webPubSub`, `webPubSubConnection`.
    pub kind: &'static str,
    pub name: &'static str,
    /// `true` for `"direction": "out"`.
    pub output: bool,
}

/// A function this handler serves, as `function.json` must declare it.
#[derive(Debug, Clone, Copy)]
pub struct FunctionSpec {
    /// The folder name; the host POSTs to `/<name>`. Case-sensitive.
    pub name: &'static str,
    pub trigger: Trigger,
    pub bindings: &'static [Binding],
}

impl FunctionSpec {
    /// The name of its output binding of type `kind`.
    pub fn output(&self, kind: &str) -> Option<&'static str> {
        self.bindings
            .iter()
            .find(|b| b.output && b.kind == kind)
            .map(|b| b.name)
    }
}

pub const ORDER_PROCESSOR: FunctionSpec = FunctionSpec {
    name: "OrderProcessor",
    trigger: Trigger::EventGrid {
        binding: "event",
        events: &[NEW_ORDER],
    },
    bindings: &[Binding {
        kind: "eventGrid",
        name: "outputEvents",
        output: true,
    }],
};

pub const EMAIL_NOTIFIER: FunctionSpec = FunctionSpec {
    name: "EmailNotifier",
    trigger: Trigger::EventGrid {
        binding: "event",
        events: &[ORDER_ACCEPTED],
    },
    bindings: &[Binding {
        kind: "eventGrid",
        name: "outputEvents",
        output: true,
    }],
};

/// Every status event becomes a `webPubSub` update of the order's group and the operators'.
pub const ORDER_STATUS_FEED: FunctionSpec = FunctionSpec {
    name: "OrderStatusFeed",
    trigger: Trigger::EventGrid {
        binding: "event",
        events: &[
            NEW_ORDER,
            ORDER_ACCEPTED,
            ORDER_REJECTED,
            ORDER_CONFIRMATION_SENT,
            ORDER_CONFIRMATION_FAILED,
        ],
    },
    bindings: &[Binding {
        kind: "webPubSub",
        name: "actions",
        output: true,
    }],
};

/// Hands a browser its Web PubSub client URL, scoped to one order or to the operators' board.
pub const NEGOTIATE: FunctionSpec = FunctionSpec {
    name: "negotiate",
    trigger: Trigger::Http {
        binding: "req",
        route: "negotiate",
        response: "res",
    },
    bindings: &[Binding {
        kind: "webPubSubConnection",
        name: "connection",
        output: false,
    }],
};

/// The order tracker, the operators' board and their scripts.
pub const WEB: FunctionSpec = FunctionSpec {
    name: "web",
    trigger: Trigger::Http {
        binding: "req",
        route: "web/{*path}",
        response: "res",
    },
    bindings: &[],
};

/// An order's current status, from the store.
pub const ORDER_STATUS: FunctionSpec = FunctionSpec {
    name: "orderStatus",
    trigger: Trigger::Http {
        binding: "req",
        route: "orders/{orderId}/status",
        response: "res",
    },
    bindings: &[],
};

/// The most recently changed orders' statuses, for the operators' board.
pub const RECENT_ORDERS: FunctionSpec = FunctionSpec {
    name: "recentOrders",
    trigger: Trigger::Http {
        binding: "req",
        route: "orders/recent",
        response: "res",
    },
    bindings: &[],
};

/// Every function this binary serves.
pub const FUNCTIONS: [FunctionSpec; 7] = [
    ORDER_PROCESSOR,
    EMAIL_NOTIFIER,
    ORDER_STATUS_FEED,
    NEGOTIATE,
    WEB,
    ORDER_STATUS,
    RECENT_ORDERS,
];

/// The event types of the choreography.
pub const NEW_ORDER: &str = "NewOrder";
pub const ORDER_ACCEPTED: &str = "OrderAccepted";
pub const ORDER_REJECTED: &str = "OrderRejected";
pub const ORDER_CONFIRMATION_SENT: &str = "OrderConfirmationSent";
pub const ORDER_CONFIRMATION_FAILED: &str = "OrderConfirmationFailed";
