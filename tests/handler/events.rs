//! Builders for the payloads the Functions host sends, in the documented shapes.

use serde_json::{Value, json};

/// Seed 004's NewOrder payload.
pub fn new_order(order_id: &str) -> Value {
    json!({
        "orderId": order_id,
        "customerId": "67890",
        "orderValue": 150.0,
        "customerEmail": "customer@example.com"
    })
}

/// The `data` of the `OrderAccepted` OrderProcessor emits for [`new_order`]`(order_id)`
/// published as event `evt-new` (a test of OrderProcessor checks that it is exactly this).
pub fn accepted_order(order_id: &str) -> Value {
    json!({
        "orderId": order_id,
        "customerId": "67890",
        "orderValue": "150.00",
        "currency": "USD",
        "customerEmail": "customer@example.com",
        "sourceEventId": "evt-new"
    })
}

/// An Event Grid schema `NewOrder` event.
pub fn eg_event(id: &str, data: Value) -> Value {
    eg_event_of(id, "NewOrder", data)
}

/// An Event Grid schema `OrderAccepted` event, EmailNotifier's trigger.
pub fn order_accepted(id: &str, data: Value) -> Value {
    eg_event_of(id, "OrderAccepted", data)
}

/// An Event Grid schema event of any type.
pub fn eg_event_of(id: &str, event_type: &str, data: Value) -> Value {
    json!({
        "id": id,
        "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.EventGrid/topics/orders",
        "subject": "orders",
        "eventType": event_type,
        "eventTime": "2026-11-22T10:00:00.0000000Z",
        "data": data,
        "dataVersion": "1.0",
        "metadataVersion": "1"
    })
}

/// A CloudEvents 1.0 event of any type.
pub fn ce_event_of(id: &str, event_type: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "/shop/web",
        "type": event_type,
        "subject": "orders",
        "time": "2026-11-22T10:00:00Z",
        "datacontenttype": "application/json",
        "data": data
    })
}

/// The host's invocation envelope for an Event Grid trigger bound as `event`.
pub fn envelope(function: &str, event: Value) -> Value {
    let data = event.get("data").cloned().unwrap_or(Value::Null);
    json!({
        "Data": { "event": event },
        "Metadata": {
            "data": data,
            "sys": {
                "MethodName": function,
                "UtcNow": "2026-11-22T10:00:00.123Z",
                "RandGuid": "35e6e68c-5583-436c-a277-5aec2b416ba8"
            }
        }
    })
}

/// The same envelope with the event JSON-encoded into a string, as the host may send it.
pub fn string_envelope(function: &str, event: Value) -> Value {
    let mut env = envelope(function, Value::Null);
    env["Data"]["event"] = Value::String(event.to_string());
    env
}

/// The host's invocation envelope for an `httpTrigger` bound as `req` (GET `url`), as the custom
/// handler docs show it: `Query` {name: value}, `Headers` {name: [values]}, `Params` {name: value}.
pub fn http_envelope(
    function: &str,
    url: &str,
    query: Value,
    headers: Value,
    params: Value,
) -> Value {
    json!({
        "Data": {
            "req": {
                "Url": url,
                "Method": "GET",
                "Query": query,
                "Headers": headers,
                "Params": params,
                "Body": null
            }
        },
        "Metadata": {
            "sys": {
                "MethodName": function,
                "UtcNow": "2026-11-22T10:00:00.123Z",
                "RandGuid": "35e6e68c-5583-436c-a277-5aec2b416ba8"
            }
        }
    })
}
