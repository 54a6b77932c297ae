//! Entry points for the coverage-guided fuzz targets under `fuzz/` (`bench/fuzz.sh`): each
//! hands arbitrary bytes to one parser that faces the outside, as its server would, and
//! returns nothing; a target fails only by panicking (or by a sanitizer's report). The property
//! tests next to each parser state the same contract on stable Rust. Not part of the API.

use axum::http::{HeaderMap, HeaderValue};

use crate::emulator::api::TopicState;
use crate::eventgrid::{Schema, protocol, sas};

/// The publish API's parse of a request body: `bytes[0]` picks the schema and content type.
pub fn publish_body(bytes: &[u8]) {
    let Some((&selector, body)) = bytes.split_first() else {
        return;
    };
    let schema = if selector & 1 == 0 {
        Schema::EventGrid
    } else {
        Schema::CloudEvents
    };
    let content_type = [
        "application/json",
        "application/cloudevents+json; charset=utf-8",
        "application/cloudevents-batch+json; charset=utf-8",
    ][usize::from(selector >> 1) % 3];
    let topic = TopicState {
        name: "orders".into(),
        schema,
        resource_id: protocol::topic_resource_id("orders"),
        keys: Vec::new(),
    };
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    let _ = crate::emulator::api::publish::parse_events(&topic, &headers, body);
    let _ = crate::emulator::api::publish::parse_simple(&topic, body);
}

/// A SAS token (and an access key) as `aeg-sas-token` (and `aeg-sas-key`) present them.
pub fn sas_token(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let key = sas::TopicKey::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").ok();
    let _ = sas::verify(
        &text,
        key.as_slice(),
        time::OffsetDateTime::UNIX_EPOCH,
        None,
    );
    let _ = sas::TopicKey::parse(&text);
    let _ = sas::token_from_authorization(&text);
}

/// The subscriptions file.
pub fn subscriptions_file(bytes: &[u8]) {
    let _ = crate::emulator::subscriptions::SubscriptionsFile::parse(
        &String::from_utf8_lossy(bytes),
        "fuzz",
    );
}

/// A subscription's filter, split from an event at the first NUL, then the event through it.
pub fn filter(bytes: &[u8]) {
    let at = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let (filter, event) = (&bytes[..at], bytes.get(at + 1..).unwrap_or_default());
    let Ok(filter) = serde_json::from_slice::<serde_json::Value>(filter) else {
        return;
    };
    let Ok(filter) = crate::emulator::filter::Filter::from_json(&filter) else {
        return;
    };
    if let Ok(event) = crate::json::Json::parse(event, crate::json::MAX_EVENT_DEPTH) {
        let _ = filter.matches(&event, Schema::EventGrid);
        let _ = filter.matches(&event, Schema::CloudEvents);
    }
}

/// The custom handler's invocation envelope.
pub fn invocation(bytes: &[u8]) {
    if let Ok(request) = crate::invocation::InvocationRequest::parse(bytes) {
        let _ = request.binding("event");
        let _ = request.to_vec();
    }
}

/// A frame a Web PubSub client sends on a JSON subprotocol, and an access token it presents.
pub fn webpubsub(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let _ = crate::webpubsub_service::frames::Request::parse(&text);
    let key = crate::webpubsub::token::AccessKey::new("key");
    let _ = crate::webpubsub::token::verify(&text, &key, 0, |_| true, "aud");
}
