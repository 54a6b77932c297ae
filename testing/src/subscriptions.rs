//! The emulator's subscriptions file (`infra/subscriptions.json`'s format), built in a line:
//! `file(vec![topic("orders", vec![webhook("hook", &url)])])`.

use serde_json::{Value, json};

/// `{"topics": [...]}`.
pub fn file(topics: Vec<Value>) -> Value {
    json!({ "topics": topics })
}

/// An Event Grid schema topic.
pub fn topic(name: &str, subscriptions: Vec<Value>) -> Value {
    json!({"name": name, "inputSchema": "EventGridSchema", "subscriptions": subscriptions})
}

/// A CloudEvents 1.0 topic.
pub fn cloud_topic(name: &str, subscriptions: Vec<Value>) -> Value {
    json!({"name": name, "inputSchema": "CloudEventSchemaV1_0", "subscriptions": subscriptions})
}

/// A webhook subscription with Azure's defaults.
pub fn webhook(name: &str, url: &str) -> Value {
    json!({
        "name": name,
        "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": url}}
    })
}

/// An Azure Function subscription.
pub fn function(name: &str, function_name: &str) -> Value {
    json!({
        "name": name,
        "destination": {"endpointType": "AzureFunction", "properties": {"functionName": function_name}}
    })
}

/// `subscription` with `retryPolicy.maxDeliveryAttempts` and a dead-letter container.
pub fn dead_lettered(mut subscription: Value, container: &str, max_attempts: u32) -> Value {
    subscription["retryPolicy"] = json!({"maxDeliveryAttempts": max_attempts});
    subscription["deadLetter"] = json!({"blobContainerName": container});
    subscription
}

/// `subscription` delivering only events of these types (`filter.includedEventTypes`).
pub fn only(mut subscription: Value, event_types: &[&str]) -> Value {
    subscription["filter"] = json!({ "includedEventTypes": event_types });
    subscription
}
