//! The live order-status feed's vocabulary, shared by `OrderStatusFeed` (which sends updates),
//! `orderStatus` (which answers the same update from the store) and `negotiate` (which scopes a
//! browser to groups): the hub, the groups, and the update itself.
//!
//! The update a browser receives, as JSON (the pages in `web/static/` read exactly this):
//! `{"orderId", "status", "reasons" (rejected only), "time", "eventId"}`, where `status` is one
//! of `received`, `accepted`, `rejected`, `confirmationSent`, `confirmationFailed`.
//!
//! Invariants:
//! - an update is about a valid [`OrderId`], so its group name is always a valid group;
//! - `reasons` is present exactly when the status is `rejected`;
//! - `eventId` is the id of the Event Grid event the update reports, and `orderStatus` reports a
//!   stored status with the id of the event that announced it, so a page that drops updates whose
//!   `eventId` it has seen shows each change once, whichever way it learnt of it.

use serde::Serialize;

use super::{
    NEW_ORDER, ORDER_ACCEPTED, ORDER_CONFIRMATION_FAILED, ORDER_CONFIRMATION_SENT, ORDER_REJECTED,
};
use crate::domain::{OrderId, RejectionReason};

/// The Web PubSub hub of the feed (every function.json names it too).
pub const HUB: &str = "orders";

/// The group that receives every order's updates: the operators' board.
pub const OPERATORS_GROUP: &str = "operators";

/// The group that receives one order's updates: `order-<orderId>`.
pub fn order_group(order_id: &OrderId) -> String {
    format!("order-{order_id}")
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OrderStatus {
    Received,
    Accepted,
    Rejected,
    ConfirmationSent,
    ConfirmationFailed,
}

impl OrderStatus {
    /// The status an event of `event_type` announces (matched ignoring case, as Event Grid's
    /// filters match).
    pub fn of_event_type(event_type: &str) -> Option<Self> {
        [
            (NEW_ORDER, Self::Received),
            (ORDER_ACCEPTED, Self::Accepted),
            (ORDER_REJECTED, Self::Rejected),
            (ORDER_CONFIRMATION_SENT, Self::ConfirmationSent),
            (ORDER_CONFIRMATION_FAILED, Self::ConfirmationFailed),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(event_type))
        .map(|(_, status)| status)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::ConfirmationSent => "confirmationSent",
            Self::ConfirmationFailed => "confirmationFailed",
        }
    }
}

/// One status change of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusUpdate {
    order_id: OrderId,
    status: OrderStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasons: Option<Vec<RejectionReason>>,
    time: String,
    event_id: String,
}

impl StatusUpdate {
    /// Any status but `rejected` (which needs its reasons: [`StatusUpdate::rejected`]).
    pub fn new(order_id: OrderId, status: OrderStatus, time: String, event_id: String) -> Self {
        debug_assert!(
            status != OrderStatus::Rejected,
            "use StatusUpdate::rejected"
        );
        Self {
            order_id,
            status,
            reasons: (status == OrderStatus::Rejected).then(Vec::new),
            time,
            event_id,
        }
    }

    pub fn rejected(
        order_id: OrderId,
        reasons: Vec<RejectionReason>,
        time: String,
        event_id: String,
    ) -> Self {
        Self {
            order_id,
            status: OrderStatus::Rejected,
            reasons: Some(reasons),
            time,
            event_id,
        }
    }

    pub fn order_id(&self) -> &OrderId {
        &self.order_id
    }

    pub fn status(&self) -> OrderStatus {
        self.status
    }

    /// When the status was reached (RFC 3339), as the event or the record says it.
    pub fn time(&self) -> &str {
        &self.time
    }

    /// The update as JSON text (what a `json` message's `data` carries).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an update serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_serialize_as_the_pages_read_them() {
        let id = OrderId::parse("12345").unwrap();
        let accepted = StatusUpdate::new(
            id.clone(),
            OrderStatus::Accepted,
            "2026-11-22T10:00:01Z".into(),
            "e1".into(),
        );
        assert_eq!(
            accepted.to_json(),
            r#"{"orderId":"12345","status":"accepted","time":"2026-11-22T10:00:01Z","eventId":"e1"}"#
        );
        let rejected = StatusUpdate::rejected(
            id.clone(),
            vec![RejectionReason {
                field: "orderValue".into(),
                message: "must be greater than zero".into(),
            }],
            "t".into(),
            "e2".into(),
        );
        let json: serde_json::Value = serde_json::from_str(&rejected.to_json()).unwrap();
        assert_eq!(json["status"], "rejected");
        assert_eq!(json["reasons"][0]["field"], "orderValue");
        assert_eq!(order_group(&id), "order-12345");
    }

    #[test]
    fn every_status_event_type_has_a_status_and_names_match_serialization() {
        for (event_type, status) in [
            ("NewOrder", "received"),
            ("orderaccepted", "accepted"),
            ("OrderRejected", "rejected"),
            ("OrderConfirmationSent", "confirmationSent"),
            ("OrderConfirmationFailed", "confirmationFailed"),
        ] {
            let s = OrderStatus::of_event_type(event_type).unwrap();
            assert_eq!(s.name(), status);
            assert_eq!(serde_json::to_value(s).unwrap(), status);
        }
        assert_eq!(OrderStatus::of_event_type("OrderShipped"), None);
    }
}
