//! `POST …/api/events?api-version=2018-01-01`: Event Grid's publish API for custom topics, and
//! the seed's `POST /publish`.
//!
//! Order of checks, as Azure answers them: topic (404), api-version (400), credentials (401),
//! size (413), content type and JSON shape (400), then each event's fields (400).
//!
//! Invariant: the answer is 200 only after every event of the request is durable in the spool;
//! a request is accepted or refused whole.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::ApiError;
use super::{ApiState, TopicState};
use crate::emulator::delivery::now_ms;
use crate::eventgrid::{RawObject, Schema, sas};

pub const API_VERSION: &str = "2018-01-01";
/// Azure: "the array can be up to 1 MB and each event up to 1 MB".
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
pub const MAX_EVENTS: usize = 5000;

/// Which publish route was used.
pub enum Route {
    /// `POST /api/events` or `POST /<topic>/api/events`.
    Azure,
    /// The seed's `POST /publish` with `{"eventType", "data"}`.
    Seed,
}

pub async fn publish(
    api: &ApiState,
    topic: &TopicState,
    route: Route,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if let Route::Azure = route {
        check_api_version(query)?;
        authorize(topic, query, headers)?;
    }
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(format!(
            "The request body is larger than the {MAX_REQUEST_BYTES} bytes (1 MB) Event Grid accepts per request."
        )),
        _ => ApiError::bad_request(format!("The request body could not be read: {}", rejection.body_text())),
    })?;
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::too_large(format!(
            "The request body is {} bytes, larger than the {MAX_REQUEST_BYTES} bytes (1 MB) Event Grid accepts per request.",
            body.len()
        )));
    }
    let events = match route {
        Route::Azure => parse_events(topic, headers, &body)?,
        Route::Seed => parse_seed(topic, &body)?,
    };
    let bodies: Vec<bytes::Bytes> = events
        .iter()
        .map(|e| bytes::Bytes::from(serialize(e)))
        .collect();
    for (i, body) in bodies.iter().enumerate() {
        if body.len() > MAX_EVENT_BYTES {
            return Err(ApiError::too_large(format!(
                "The event at index {i} is {} bytes, larger than the {MAX_EVENT_BYTES} bytes (1 MB) Event Grid accepts per event.",
                body.len()
            )));
        }
    }
    api.spool
        .publish(&topic.name, None, now_ms(), &bodies)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "failed to store published events; the publisher should retry");
            ApiError::unavailable("The events could not be stored; nothing was accepted. Retry the request.")
        })?;
    tracing::debug!(topic = %topic.name, events = bodies.len(), "published");
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut response = match route {
        Route::Azure => StatusCode::OK.into_response(),
        Route::Seed => {
            let ids: Vec<String> = events
                .iter()
                .filter_map(|e| string_field(e, "id"))
                .collect();
            axum::Json(
                serde_json::json!({"status": "Event published", "topic": topic.name, "ids": ids}),
            )
            .into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        "api-supported-versions",
        HeaderValue::from_static(API_VERSION),
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-ms-request-id", value);
    }
    Ok(response)
}

fn check_api_version(query: &HashMap<String, String>) -> Result<(), ApiError> {
    match query.get("api-version").map(String::as_str) {
        Some(API_VERSION) => Ok(()),
        None => Err(ApiError::bad_request(
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some(other) => Err(ApiError::bad_request(format!(
            "The api-version '{other}' is not supported; the supported version is '{API_VERSION}'."
        ))),
    }
}

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    matches!(
        name.trim_matches(['[', ']']),
        "localhost" | "127.0.0.1" | "::1"
    ) || name.ends_with(".localhost")
}

/// `aeg-sas-key` (header or query), `aeg-sas-token`, or `Authorization: SharedAccessSignature`.
fn authorize(
    topic: &TopicState,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let refused = |why: &str| {
        ApiError::unauthorized(format!(
            "The request authorization key is not authorized for {}. This is due to the reason: {why}.",
            host.to_ascii_uppercase()
        ))
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(key) = header("aeg-sas-key").or(query.get("aeg-sas-key").map(String::as_str)) {
        // Every key is compared, each in constant time, so timing says nothing about which failed.
        let matched = topic.keys.iter().fold(false, |any, k| k.matches(key) | any);
        return if matched {
            Ok(())
        } else {
            Err(refused(
                "the key does not match either of the topic's access keys",
            ))
        };
    }
    let token = header("aeg-sas-token")
        .or_else(|| header("authorization").and_then(sas::token_from_authorization));
    if let Some(token) = token {
        let now = OffsetDateTime::now_utc();
        let checked = match sas::verify(token, &topic.keys, now, Some(&host)) {
            Err(sas::SasError::WrongResource { .. }) if is_loopback(&host) => {
                sas::verify(token, &topic.keys, now, None)
            }
            other => other,
        };
        return checked.map(|_| ()).map_err(|e| refused(&e.to_string()));
    }
    if header("authorization")
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("bearer"))
    {
        return Err(ApiError::unauthorized(
            "Microsoft Entra ID tokens cannot be verified by the local emulator; publish with the topic's access key \
             (aeg-sas-key) or a SAS token instead.",
        ));
    }
    Err(ApiError::unauthorized(format!(
        "The request to {} carries no credentials: send the topic's access key in the aeg-sas-key header (or query \
         parameter), or a SAS token in aeg-sas-token or Authorization: SharedAccessSignature.",
        host.to_ascii_uppercase()
    )))
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn schema_name(schema: Schema) -> &'static str {
    match schema {
        Schema::EventGrid => "EventGridEvent",
        Schema::CloudEvents => "CloudEvent",
    }
}

fn nonconforming(topic: &TopicState) -> ApiError {
    ApiError::bad_request(format!(
        "This resource is configured to receive event in '{}' schema. The JSON received does not conform to the expected schema.",
        schema_name(topic.schema)
    ))
}

/// The events of a request, validated and stamped, in the topic's input schema.
fn parse_events(
    topic: &TopicState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<RawObject>, ApiError> {
    let content_type = content_type(headers);
    let trimmed = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| body[i]);
    let events: Vec<RawObject> = match (topic.schema, content_type.as_str(), trimmed) {
        (Schema::CloudEvents, "application/cloudevents+json", Some(b'{')) => {
            vec![serde_json::from_slice(body).map_err(|e| invalid_json(&e))?]
        }
        (
            Schema::CloudEvents,
            "application/cloudevents-batch+json" | "application/json",
            Some(b'['),
        ) => serde_json::from_slice(body).map_err(|_| nonconforming(topic))?,
        (Schema::CloudEvents, _, _) => {
            return Err(ApiError::bad_request(format!(
                "This resource is configured to receive event in 'CloudEvent' schema: send one event as \
                 application/cloudevents+json or an array as application/cloudevents-batch+json (got content type '{content_type}')."
            )));
        }
        (Schema::EventGrid, _, Some(b'{')) => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| invalid_json(&e))?;
            return Err(ApiError::bad_request(
                "Unexpected token when reading JSON. Expected: StartArray, actual: StartObject. The Event Grid schema takes a JSON array of events.",
            ));
        }
        (Schema::EventGrid, _, Some(b'[')) => {
            let values: Vec<Box<RawValue>> =
                serde_json::from_slice(body).map_err(|e| invalid_json(&e))?;
            values
                .iter()
                .map(|v| serde_json::from_str::<RawObject>(v.get()))
                .collect::<Result<_, _>>()
                .map_err(|_| nonconforming(topic))?
        }
        (Schema::EventGrid, _, _) => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| invalid_json(&e))?;
            return Err(nonconforming(topic));
        }
    };
    if events.is_empty() {
        return Err(nonconforming(topic));
    }
    if events.len() > MAX_EVENTS {
        return Err(ApiError::bad_request(format!(
            "The request holds {} events; Event Grid accepts at most {MAX_EVENTS} per request.",
            events.len()
        )));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| match topic.schema {
            Schema::EventGrid => stamp_event_grid(topic, event, i),
            Schema::CloudEvents => check_cloud_event(event, i),
        })
        .collect()
}

fn invalid_json(e: &serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("The request body is not valid JSON: {e}."))
}

/// Finds a field case-insensitively (Azure's deserializer is), returning its canonical name.
fn take(event: &mut RawObject, canonical: &str) -> Option<Box<RawValue>> {
    let key = event
        .keys()
        .find(|k| k.eq_ignore_ascii_case(canonical))?
        .clone();
    event.remove(&key)
}

fn as_string(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<Option<String>>(raw.get())
        .ok()
        .flatten()
}

fn string_field(event: &RawObject, name: &str) -> Option<String> {
    event.get(name).and_then(|v| as_string(v))
}

fn raw_string(value: &str) -> Box<RawValue> {
    serde_json::value::to_raw_value(value)
        .unwrap_or_else(|_| RawValue::from_string("\"\"".into()).unwrap_or_default())
}

fn serialize(event: &RawObject) -> Vec<u8> {
    serde_json::to_vec(event).unwrap_or_default()
}

fn at_index(message: String, i: usize) -> ApiError {
    ApiError::bad_request(format!("{message} (event at index {i})"))
}

/// Validates an Event Grid schema event in Azure's order (subject, id, eventType, eventTime,
/// then metadataVersion and topic) and stamps `topic`, `metadataVersion` and `dataVersion`.
fn stamp_event_grid(
    topic: &TopicState,
    mut event: RawObject,
    i: usize,
) -> Result<RawObject, ApiError> {
    let mut stamped = BTreeMap::new();
    for field in ["subject", "id", "eventType", "eventTime"] {
        let value =
            take(&mut event, field).filter(|v| as_string(v).is_some_and(|s| !s.trim().is_empty()));
        let Some(value) = value else {
            return Err(at_index(
                format!(
                    "This resource is configured for 'EventGridEvent' schema and requires '{field}' property to be set."
                ),
                i,
            ));
        };
        stamped.insert(field.to_owned(), value);
    }
    let event_time = as_string(&stamped["eventTime"]).unwrap_or_default();
    if OffsetDateTime::parse(&event_time, &Rfc3339).is_err() {
        return Err(at_index(
            format!(
                "The event time property 'eventTime' was not a valid date/time: '{event_time}'."
            ),
            i,
        ));
    }
    if let Some(version) = take(&mut event, "metadataVersion")
        && version.get() != "null"
        && as_string(&version).as_deref() != Some("1")
    {
        return Err(at_index(
            format!(
                "Property 'metadataVersion' was found to be set to '{}', but was expected to either be null or be set to 1.",
                as_string(&version).unwrap_or_else(|| version.get().to_owned())
            ),
            i,
        ));
    }
    if let Some(given) = take(&mut event, "topic")
        .and_then(|t| as_string(&t))
        .filter(|t| !t.is_empty())
        && !given.eq_ignore_ascii_case(&topic.resource_id)
    {
        return Err(at_index(
            format!(
                "Property 'topic' was found to be set to '{given}', but was expected to either be null/empty or match the topic resource id '{}'.",
                topic.resource_id
            ),
            i,
        ));
    }
    let data_version = take(&mut event, "dataVersion")
        .filter(|v| v.get() != "null")
        .unwrap_or_else(|| raw_string(""));
    if let Some(data) = take(&mut event, "data") {
        stamped.insert("data".into(), data);
    }
    stamped.insert("dataVersion".into(), data_version);
    stamped.insert("metadataVersion".into(), raw_string("1"));
    stamped.insert("topic".into(), raw_string(&topic.resource_id));
    // Anything else the publisher sent is kept as it was.
    stamped.extend(event);
    Ok(stamped)
}

/// Validates a CloudEvents 1.0 event: `specversion` "1.0", and `id`, `source`, `type` set.
fn check_cloud_event(event: RawObject, i: usize) -> Result<RawObject, ApiError> {
    let version = event.get("specversion").and_then(|v| as_string(v));
    if version.as_deref() != Some("1.0") {
        return Err(at_index(
            format!(
                "This resource is configured for 'CloudEvent' schema and requires 'specversion' to be '1.0' (got {version:?})."
            ),
            i,
        ));
    }
    for field in ["id", "source", "type"] {
        if event
            .get(field)
            .and_then(|v| as_string(v))
            .is_none_or(|s| s.trim().is_empty())
        {
            return Err(at_index(
                format!(
                    "This resource is configured for 'CloudEvent' schema and requires '{field}' property to be set."
                ),
                i,
            ));
        }
    }
    if let Some(time) = event.get("time").and_then(|v| as_string(v))
        && OffsetDateTime::parse(&time, &Rfc3339).is_err()
    {
        return Err(at_index(
            format!("The 'time' attribute is not a valid RFC 3339 timestamp: '{time}'."),
            i,
        ));
    }
    Ok(event)
}

/// The seed's `{"eventType": "NewOrder", "data": {...}}` (one object or an array), with the
/// envelope fields Event Grid requires filled in: `id` (a new GUID), `subject` (the topic name),
/// `eventTime` (now) and `dataVersion` ("1.0").
fn parse_seed(topic: &TopicState, body: &[u8]) -> Result<Vec<RawObject>, ApiError> {
    let first = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| body[i]);
    let events: Vec<RawObject> = match first {
        Some(b'[') => serde_json::from_slice(body).map_err(|e| invalid_json(&e))?,
        _ => vec![serde_json::from_slice(body).map_err(|e| invalid_json(&e))?],
    };
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(ApiError::bad_request(format!(
            "Send between 1 and {MAX_EVENTS} events."
        )));
    }
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    events
        .into_iter()
        .enumerate()
        .map(|(i, mut event)| match topic.schema {
            Schema::EventGrid => {
                let defaults = [
                    ("id", uuid::Uuid::new_v4().to_string()),
                    ("subject", topic.name.clone()),
                    ("eventTime", now.clone()),
                    ("dataVersion", "1.0".to_owned()),
                ];
                for (field, value) in defaults {
                    if !event.keys().any(|k| k.eq_ignore_ascii_case(field)) {
                        event.insert(field.to_owned(), raw_string(&value));
                    }
                }
                stamp_event_grid(topic, event, i)
            }
            Schema::CloudEvents => {
                let defaults = [
                    ("specversion", "1.0".to_owned()),
                    ("id", uuid::Uuid::new_v4().to_string()),
                    ("source", format!("/publish/{}", topic.name)),
                    ("time", now.clone()),
                ];
                for (field, value) in defaults {
                    event
                        .entry(field.to_owned())
                        .or_insert_with(|| raw_string(&value));
                }
                if let Some(event_type) = take(&mut event, "eventType") {
                    event.entry("type".into()).or_insert(event_type);
                }
                check_cloud_event(event, i)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(schema: Schema) -> TopicState {
        TopicState {
            name: "orders".into(),
            schema,
            resource_id: crate::emulator::topic_resource_id("orders"),
            keys: vec![sas::TopicKey::generate()],
        }
    }

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        h
    }

    fn eg_error(body: &str) -> String {
        parse_events(
            &topic(Schema::EventGrid),
            &headers("application/json"),
            body.as_bytes(),
        )
        .unwrap_err()
        .message
    }

    #[test]
    fn event_grid_events_are_validated_in_azures_order() {
        assert!(eg_error(r#"[{}]"#).contains("requires 'subject' property"));
        assert!(eg_error(r#"[{"subject":"s"}]"#).contains("requires 'id' property"));
        assert!(
            eg_error(r#"[{"subject":"s","id":"1"}]"#).contains("requires 'eventType' property")
        );
        assert!(
            eg_error(r#"[{"subject":"s","id":"1","eventType":"T"}]"#)
                .contains("requires 'eventTime' property")
        );
        assert!(
            eg_error(r#"[{"subject":"s","id":"1","eventType":"T","eventTime":"yesterday"}]"#)
                .contains("not a valid date/time")
        );
        assert!(eg_error(r#"[{"subject":"s","id":"1","eventType":"T","eventTime":"2020-01-01T00:00:00Z","metadataVersion":"2"}]"#)
            .contains("metadataVersion"));
        assert!(eg_error(r#"[{"subject":"s","id":"1","eventType":"T","eventTime":"2020-01-01T00:00:00Z","topic":"/other"}]"#)
            .contains("match the topic resource id"));
        assert!(
            eg_error(r#"{"subject":"s"}"#).contains("Expected: StartArray, actual: StartObject")
        );
        assert!(eg_error("[]").contains("does not conform to the expected schema"));
        assert!(eg_error("not json").contains("not valid JSON"));
        assert!(
            eg_error(
                r#"[{"subject":"s","id":"  ","eventType":"T","eventTime":"2020-01-01T00:00:00Z"}]"#
            )
            .contains("'id'")
        );
    }

    #[test]
    fn event_grid_events_are_stamped_and_keep_their_data_exactly() {
        let events = parse_events(
            &topic(Schema::EventGrid),
            &headers("application/json; charset=utf-8"),
            br#"[{"ID":"1","Subject":"s","EventType":"T","EventTime":"2017-08-10T21:03:07.1234567+00:00","data":{"v":0.12345678901234567890}}]"#,
        )
        .unwrap();
        let stamped = String::from_utf8(serialize(&events[0])).unwrap();
        assert!(
            stamped.contains(r#""data":{"v":0.12345678901234567890}"#),
            "{stamped}"
        );
        assert!(stamped.contains(r#""dataVersion":"""#), "{stamped}");
        assert!(stamped.contains(r#""metadataVersion":"1""#));
        assert!(stamped.contains(r#""topic":"/subscriptions/"#));
        assert!(
            stamped.contains(r#""eventType":"T""#),
            "names are made canonical: {stamped}"
        );
    }

    #[test]
    fn cloud_events_need_their_content_types_and_attributes() {
        let t = topic(Schema::CloudEvents);
        let one = br#"{"specversion":"1.0","id":"1","source":"/s","type":"T"}"#;
        assert_eq!(
            parse_events(
                &t,
                &headers("application/cloudevents+json; charset=utf-8"),
                one
            )
            .unwrap()
            .len(),
            1
        );
        let batch = br#"[{"specversion":"1.0","id":"1","source":"/s","type":"T"},{"specversion":"1.0","id":"2","source":"/s","type":"T"}]"#;
        assert_eq!(
            parse_events(&t, &headers("application/cloudevents-batch+json"), batch)
                .unwrap()
                .len(),
            2
        );
        assert!(
            parse_events(&t, &headers("text/plain"), one)
                .unwrap_err()
                .message
                .contains("content type")
        );
        let no_source = br#"{"specversion":"1.0","id":"1","type":"T"}"#;
        assert!(
            parse_events(&t, &headers("application/cloudevents+json"), no_source)
                .unwrap_err()
                .message
                .contains("'source'")
        );
        let old = br#"{"specversion":"0.1","id":"1","source":"/s","type":"T"}"#;
        assert!(
            parse_events(&t, &headers("application/cloudevents+json"), old)
                .unwrap_err()
                .message
                .contains("specversion")
        );
    }

    #[test]
    fn too_many_events_are_refused() {
        let event =
            r#"{"subject":"s","id":"1","eventType":"T","eventTime":"2020-01-01T00:00:00Z"}"#;
        let body = format!("[{}]", vec![event; MAX_EVENTS + 1].join(","));
        assert!(eg_error(&body).contains("at most 5000"));
    }

    #[test]
    fn the_seed_payload_gets_the_missing_envelope_fields() {
        let events = parse_seed(
            &topic(Schema::EventGrid),
            br#"{"eventType":"NewOrder","data":{"orderId":"12345","orderValue":150.0}}"#,
        )
        .unwrap();
        let e = &events[0];
        assert_eq!(string_field(e, "eventType").as_deref(), Some("NewOrder"));
        assert_eq!(string_field(e, "subject").as_deref(), Some("orders"));
        assert_eq!(string_field(e, "dataVersion").as_deref(), Some("1.0"));
        assert!(uuid::Uuid::parse_str(&string_field(e, "id").unwrap()).is_ok());
        assert_eq!(e["data"].get(), r#"{"orderId":"12345","orderValue":150.0}"#);
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost:7443",
            "127.0.0.1:8080",
            "[::1]:1",
            "orders.localhost",
            "localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        assert!(!is_loopback("orders.westus2-1.eventgrid.azure.net"));
    }
}
