//! Event Grid's protocol names, spelled once: the publish API version, the `aeg-*` headers of
//! publishing and delivery, and the ARM id stamped into events' `topic`.
//!
//! Header names are lower case, as HTTP/2 requires and as `http::HeaderName` stores them; Event
//! Grid and its SDKs compare them case-insensitively.

/// The data-plane API version of publishing to a custom topic (`?api-version=`).
pub const API_VERSION: &str = "2018-01-01";

/// A topic access key, as a header or a query parameter.
pub const SAS_KEY: &str = "aeg-sas-key";
/// A shared access signature made from a key (`r=…&e=…&s=…`).
pub const SAS_TOKEN: &str = "aeg-sas-token";
/// `Notification`, `SubscriptionValidation` or `SubscriptionDeletion`, on every delivery.
pub const EVENT_TYPE: &str = "aeg-event-type";
/// The subscription's name, upper case.
pub const SUBSCRIPTION_NAME: &str = "aeg-subscription-name";
/// Attempts before this one (0 on the first).
pub const DELIVERY_COUNT: &str = "aeg-delivery-count";
/// The first event's `dataVersion` (Event Grid schema only).
pub const DATA_VERSION: &str = "aeg-data-version";
/// `1` for the Event Grid schema, `1.0` for CloudEvents.
pub const METADATA_VERSION: &str = "aeg-metadata-version";
/// Delivery attributes may not use Event Grid's own header prefix.
pub const RESERVED_HEADER_PREFIX: &str = "aeg-";

/// The `aeg-event-type` of an event delivery.
pub const NOTIFICATION: &str = "Notification";
/// The `aeg-event-type` of the validation handshake.
pub const SUBSCRIPTION_VALIDATION: &str = "SubscriptionValidation";

/// The ARM id Event Grid stamps into `topic`; locally, a fixed and recognisable subscription
/// and resource group.
pub fn topic_resource_id(topic: &str) -> String {
    format!(
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ordergrid-local/providers/Microsoft.EventGrid/topics/{topic}"
    )
}
