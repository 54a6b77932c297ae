//! One delivery attempt over HTTP: the request Event Grid would send, and what came back.
//!
//! Requests carry Azure's headers: `aeg-event-type: Notification`, `aeg-subscription-name`
//! (upper case, as Azure writes subscription names in dead-letter paths and samples show),
//! `aeg-delivery-count` (attempts made before this one, so 0 on the first, as observed from
//! Azure), `aeg-data-version` and `aeg-metadata-version`, plus the subscription's custom
//! delivery properties. Bodies follow the delivery schema:
//! - Event Grid schema: a JSON array, even for one event;
//! - CloudEvents: one event as `application/cloudevents+json`, a batch as
//!   `application/cloudevents-batch+json` array, with `Origin: eventgrid.azure.net`.
//!
//! Event Grid input is converted to CloudEvents when a subscription asks for it
//! (`id`, `source` = topic, `subject`, `type` = eventType, `time` = eventTime, `data`, and
//! `dataversion` as an extension attribute, as Azure's CloudEvents dead-letter sample shows).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;
use serde_json::value::RawValue;

use super::retry::Failure;
use crate::emulator::subscriptions::{DeliveryAttribute, Destination, Subscription};
use crate::eventgrid::{RawObject, Schema};

pub const CONTENT_TYPE_EVENTGRID: &str = "application/json; charset=utf-8";
pub const CONTENT_TYPE_CLOUDEVENT: &str = "application/cloudevents+json; charset=utf-8";
pub const CONTENT_TYPE_CLOUDEVENT_BATCH: &str = "application/cloudevents-batch+json; charset=utf-8";
pub const ORIGIN: &str = "eventgrid.azure.net";

/// An HTTP request ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Where a subscription's deliveries go.
pub fn destination_url(subscription: &Subscription, functions_base_url: &str) -> String {
    match &subscription.destination {
        Destination::WebHook { endpoint_url } => endpoint_url.clone(),
        Destination::AzureFunction { function_name } => format!(
            "{}/runtime/webhooks/eventgrid?functionName={function_name}",
            functions_base_url.trim_end_matches('/')
        ),
    }
}

/// Builds the notification for `bodies` (events as stored: JSON in the topic's input schema).
/// Event bodies are passed through byte for byte unless the schema has to be converted.
pub fn notification(
    subscription: &Subscription,
    input_schema: Schema,
    bodies: &[&[u8]],
    previous_attempts: u32,
    functions_base_url: &str,
) -> Outgoing {
    let mut headers = vec![
        ("aeg-event-type".to_owned(), "Notification".to_owned()),
        (
            "aeg-subscription-name".to_owned(),
            subscription.name.upper(),
        ),
        (
            "aeg-delivery-count".to_owned(),
            previous_attempts.to_string(),
        ),
    ];
    let first: Value = bodies
        .first()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null);
    let body = match subscription.delivery_schema {
        Schema::EventGrid => {
            headers.push(("content-type".into(), CONTENT_TYPE_EVENTGRID.into()));
            headers.push((
                "aeg-data-version".into(),
                first
                    .get("dataVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            ));
            headers.push(("aeg-metadata-version".into(), "1".into()));
            json_array(bodies.iter().copied())
        }
        Schema::CloudEvents => {
            headers.push(("aeg-metadata-version".into(), "1.0".into()));
            headers.push(("origin".into(), ORIGIN.into()));
            let converted: Vec<Vec<u8>> = match input_schema {
                Schema::CloudEvents => bodies.iter().map(|b| b.to_vec()).collect(),
                Schema::EventGrid => bodies
                    .iter()
                    .map(|b| {
                        let event: RawObject = serde_json::from_slice(b).unwrap_or_default();
                        serde_json::to_vec(&to_cloud_event(&event)).unwrap_or_default()
                    })
                    .collect(),
            };
            if converted.len() == 1 {
                headers.push(("content-type".into(), CONTENT_TYPE_CLOUDEVENT.into()));
                Bytes::from(converted.into_iter().next().unwrap_or_default())
            } else {
                headers.push(("content-type".into(), CONTENT_TYPE_CLOUDEVENT_BATCH.into()));
                json_array(converted.iter().map(Vec::as_slice))
            }
        }
    };
    for attribute in &subscription.delivery_attributes {
        match attribute {
            DeliveryAttribute::Static { name, value, .. } => {
                headers.push((name.clone(), value.clone()))
            }
            DeliveryAttribute::Dynamic { name, source_field } => {
                if let Some(value) = lookup(&first, source_field) {
                    headers.push((name.clone(), value));
                }
            }
        }
    }
    Outgoing {
        url: destination_url(subscription, functions_base_url),
        headers,
        body,
    }
}

/// `[a,b,c]` from JSON texts, without re-serializing them.
fn json_array<'a>(items: impl Iterator<Item = &'a [u8]>) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u8(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        buf.put_slice(item);
    }
    buf.put_u8(b']');
    buf.freeze()
}

/// A dynamic delivery property's value: a string, number or boolean at a dotted path.
fn lookup(event: &Value, path: &str) -> Option<String> {
    let mut value = event;
    for segment in path.split('.') {
        value = value
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(segment))
            .map(|(_, v)| v)?;
    }
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn raw_str(s: &str) -> Box<RawValue> {
    serde_json::value::to_raw_value(s).unwrap_or_default()
}

/// Maps an Event Grid schema event onto CloudEvents 1.0 (values kept as sent).
pub fn to_cloud_event(event: &RawObject) -> RawObject {
    let mut ce = RawObject::new();
    ce.insert("specversion".into(), raw_str("1.0"));
    for (from, to) in [
        ("id", "id"),
        ("topic", "source"),
        ("subject", "subject"),
        ("eventType", "type"),
        ("eventTime", "time"),
    ] {
        if let Some(value) = event.get(from) {
            ce.insert(to.into(), value.clone());
        }
    }
    if let Some(version) = event.get("dataVersion")
        && !matches!(version.get(), "\"\"" | "null")
    {
        ce.insert("dataversion".into(), version.clone());
    }
    if let Some(data) = event.get("data") {
        ce.insert("datacontenttype".into(), raw_str("application/json"));
        ce.insert("data".into(), data.clone());
    }
    ce
}

/// Sends deliveries with a shared connection pool and Event Grid's response timeout.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
}

impl Sender {
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(256)
            .user_agent(concat!(
                "ordergrid-eventgrid-emulator/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| format!("failed to build the HTTP client: {e}"))?;
        Ok(Self { client })
    }

    /// Sends a notification; `Ok(status)` for any answer, `Err` when there was none.
    pub async fn send(&self, out: &Outgoing) -> Result<u16, Failure> {
        let mut request = self.client.post(&out.url).body(out.body.clone());
        for (name, value) in &out.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        request
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(classify)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

pub fn classify(error: reqwest::Error) -> Failure {
    if error.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Connection
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_grid_events_become_cloud_events() {
        let eg: RawObject = serde_json::from_value(json!({"id": "1", "topic": "/t/orders", "subject": "orders/1", "eventType": "NewOrder",
                        "eventTime": "2026-01-01T00:00:00Z", "data": {"a": 1}, "dataVersion": "1.0", "metadataVersion": "1"})).unwrap();
        assert_eq!(
            serde_json::to_value(to_cloud_event(&eg)).unwrap(),
            json!({"specversion": "1.0", "id": "1", "source": "/t/orders", "subject": "orders/1", "type": "NewOrder",
                   "time": "2026-01-01T00:00:00Z", "dataversion": "1.0", "datacontenttype": "application/json", "data": {"a": 1}})
        );
    }

    #[test]
    fn arrays_are_joined_without_touching_the_events() {
        let joined = json_array([&b"{\"v\":0.10}"[..], &b"{}"[..]].into_iter());
        assert_eq!(joined, "[{\"v\":0.10},{}]");
    }

    #[test]
    fn dynamic_properties_read_scalars_at_a_path() {
        let event = json!({"data": {"order": {"id": 7, "ok": true, "list": [1]}}});
        assert_eq!(lookup(&event, "data.order.id").as_deref(), Some("7"));
        assert_eq!(lookup(&event, "Data.Order.OK").as_deref(), Some("true"));
        assert_eq!(lookup(&event, "data.order.list"), None);
        assert_eq!(lookup(&event, "data.missing"), None);
    }
}
