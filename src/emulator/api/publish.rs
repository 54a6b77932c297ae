//! `POST …/api/events?api-version=2018-01-01`: Event Grid's publish API for custom topics, and
//! the simple key-less `POST /publish` (`{"eventType", "data"}`, what the seed's curl sends).
//!
//! Order of checks, as Azure answers them: topic (404), api-version (400), credentials (401),
//! size (413), content type and JSON shape (400), then each event's fields (400).
//!
//! Invariant: the answer is 200 only after every event of the request is durable in the spool;
//! a request is accepted or refused whole.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::ApiError;
use super::{ApiState, TopicState};
use crate::emulator::clock::now_ms;
use crate::emulator::entra::{self, EntraMode};
use crate::emulator::event::{Event, EventBuilder};
use crate::eventgrid::protocol::{self, API_VERSION};
use crate::eventgrid::{Schema, now_rfc3339, sas};
use crate::json::{Json, JsonError, JsonErrorKind, MAX_EVENT_DEPTH, Parser};

/// Azure: "the array can be up to 1 MB and each event up to 1 MB".
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
pub const MAX_EVENTS: usize = 5000;

/// Which publish route was used.
pub enum Route {
    /// `POST /api/events` or `POST /<topic>/api/events`.
    Azure,
    /// The simple key-less `POST /publish` with `{"eventType", "data"}`.
    Simple,
}

/// A publish request as the handlers received it.
pub struct Request<'a> {
    /// The URL path, which SAS tokens must name.
    pub path: &'a str,
    /// It came over HTTPS (bearer tokens only travel over HTTPS).
    pub https: bool,
    pub query: &'a HashMap<String, String>,
    pub headers: &'a HeaderMap,
    /// Read only once the request is authorized and its declared length is within the limit.
    pub body: axum::body::Body,
}

pub async fn publish(
    api: &ApiState,
    topic: &TopicState,
    route: Route,
    request: Request<'_>,
) -> Result<Response, ApiError> {
    let Request {
        path,
        https,
        query,
        headers,
        body,
    } = request;
    if let Route::Azure = route {
        check_api_version(query)?;
        authorize(api, topic, path, https, query, headers)?;
    }
    // Held until the events are stored: see [`read_body`].
    let (body, _buffer) = read_body(api, headers, body).await?;
    let events = match route {
        Route::Azure => parse_events(topic, headers, &body)?,
        Route::Simple => parse_simple(topic, &body)?,
    };
    for (i, event) in events.iter().enumerate() {
        if event.body.len() > MAX_EVENT_BYTES {
            return Err(ApiError::too_large(format!(
                "The event at index {i} is {} bytes, larger than the {MAX_EVENT_BYTES} bytes (1 MB) Event Grid accepts per event.",
                event.body.len()
            )));
        }
    }
    let events: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
    api.spool
        .publish(&topic.name, None, now_ms(), &events)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "failed to store published events; the publisher should retry");
            ApiError::unavailable("The events could not be stored; nothing was accepted. Retry the request.")
        })?;
    tracing::debug!(topic = %topic.name, events = events.len(), "published");
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut response = match route {
        Route::Azure => StatusCode::OK.into_response(),
        Route::Simple => {
            let ids: Vec<&str> = events.iter().map(|e| &*e.header.id).collect();
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

/// `aeg-sas-key` (header or query), `aeg-sas-token`, `Authorization: SharedAccessSignature`
/// (for the endpoint the request was sent to: `path` and the `Host` header), or
/// `Authorization: Bearer` (Microsoft Entra ID, over HTTPS, checked as `entra` says).
fn authorize(
    api: &ApiState,
    topic: &TopicState,
    path: &str,
    https: bool,
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
    if let Some(key) =
        header(protocol::SAS_KEY).or(query.get(protocol::SAS_KEY).map(String::as_str))
    {
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
    let token = header(protocol::SAS_TOKEN)
        .or_else(|| header("authorization").and_then(sas::token_from_authorization));
    if let Some(token) = token {
        let target = sas::Target { host: &host, path };
        return sas::verify(token, &topic.keys, OffsetDateTime::now_utc(), Some(&target))
            .map(|_| ())
            .map_err(|e| refused(&e.to_string()));
    }
    if let Some(bearer) = header("authorization").and_then(|v| {
        let v = v.trim_start();
        v.get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
            .map(|_| &v[7..])
    }) {
        return match (api.entra, https) {
            (EntraMode::Off, _) => Err(ApiError::unauthorized(
                "Microsoft Entra ID tokens are turned off here (ORDERGRID_EMULATOR_ENTRA=off); publish with the \
                 topic's access key (aeg-sas-key) or a SAS token instead.",
            )),
            (EntraMode::Local, false) => Err(ApiError::unauthorized(format!(
                "Microsoft Entra ID tokens are accepted over HTTPS only, as every Azure SDK sends them: publish to {}{path}",
                api.https_url
                    .as_deref()
                    .unwrap_or("the emulator's HTTPS endpoint (ORDERGRID_EMULATOR_HTTPS_PORT)")
            ))),
            (EntraMode::Local, true) => entra::check_token(bearer, OffsetDateTime::now_utc())
                .map_err(|e| refused(&e.to_string())),
        };
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

/// One member of a published event: its name, its value when it is an envelope field (parsed;
/// other values, `data` above all, are only checked), and its text as sent (or as written, for
/// values the emulator fills in).
struct Field<'a> {
    name: Cow<'a, str>,
    value: Option<Json>,
    raw: Cow<'a, [u8]>,
}

/// The members whose values the publish API reads (in any case): the envelope fields of both
/// schemas. Everything else is checked and kept as text.
const ENVELOPE: [&str; 11] = [
    "id",
    "subject",
    "eventType",
    "eventTime",
    "dataVersion",
    "metadataVersion",
    "topic",
    "specversion",
    "source",
    "type",
    "time",
];

impl Field<'_> {
    fn string(name: &str, text: &str) -> Self {
        let value = Json::String(text.into());
        Field {
            name: Cow::Owned(name.to_owned()),
            raw: Cow::Owned(value.to_vec()),
            value: Some(value),
        }
    }

    fn text(&self) -> Option<&str> {
        self.value.as_ref().and_then(Json::as_str)
    }
}

/// An event object's members, checked completely (syntax, UTF-8, nesting) in one pass.
fn fields<'a>(parser: &mut Parser<'a>, body: &'a [u8]) -> Result<Vec<Field<'a>>, JsonError> {
    let mut fields = Vec::new();
    parser.members(|parser, name, start| {
        let value = if ENVELOPE.iter().any(|e| e.eq_ignore_ascii_case(&name)) {
            Some(parser.value()?)
        } else {
            parser.skip()?;
            None
        };
        fields.push(Field {
            name,
            value,
            raw: Cow::Borrowed(&body[start..parser.position()]),
        });
        Ok(())
    })?;
    Ok(fields)
}

/// The events of a request, each as the object it was sent as (`Err` for an element that is not
/// an object), checked once with the nesting limit every later stage relies on.
fn parse_objects(body: &[u8], batch: bool) -> Result<Vec<Result<Vec<Field<'_>>, ()>>, ApiError> {
    // The array a batch arrives in is one more level; each event may nest MAX_EVENT_DEPTH.
    let mut parser = Parser::new(body, MAX_EVENT_DEPTH + usize::from(batch));
    let mut objects = Vec::new();
    let parsed = if batch {
        parser.array(|parser| {
            objects.push(if parser.peek() == Some(b'{') {
                Ok(fields(parser, body)?)
            } else {
                parser.skip()?;
                Err(())
            });
            Ok(())
        })
    } else {
        fields(&mut parser, body).map(|object| objects.push(Ok(object)))
    };
    parsed
        .and_then(|()| parser.end())
        .map_err(|e| invalid_json(&e))?;
    Ok(objects)
}

/// The request's body, within [`MAX_REQUEST_BYTES`], with its share of the publish buffer.
/// A declared length over the limit is refused before anything is read (waiting for it would
/// hold the connection until the body timeout, for an answer known at once); then, so memory
/// stays bounded under bursts, the body is read (and, while the permit is held, parsed and
/// stored) only once its declared size, or undeclared the most a request may be, fits in the
/// buffer; a body that stalls is answered 408.
async fn read_body<'a>(
    api: &'a ApiState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<(Bytes, tokio::sync::SemaphorePermit<'a>), ApiError> {
    let too_large = |length: Option<u64>| {
        let length = length.map_or_else(|| "larger".to_owned(), |l| format!("{l} bytes, larger"));
        ApiError::too_large(format!(
            "The request body is {length} than the {MAX_REQUEST_BYTES} bytes (1 MB) Event Grid accepts per request."
        ))
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = declared.filter(|l| *l > MAX_REQUEST_BYTES as u64) {
        return Err(too_large(Some(length)));
    }
    // Rounded up, so the largest request (1 MiB) needs at most the smallest buffer allowed.
    let kib = declared
        .map_or(MAX_REQUEST_BYTES, |l| l as usize)
        .div_ceil(1024);
    let permit = api
        .publish_buffer
        .acquire_many(u32::try_from(kib).unwrap_or(u32::MAX))
        .await
        .map_err(|_| ApiError::unavailable("The emulator is stopping."))?;
    let bytes = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|e| {
            if crate::http_server::timed_out(&e) {
                ApiError::request_timeout(format!("The request body could not be read: {e}."))
            } else if crate::http_server::too_long(&e) {
                too_large(None)
            } else {
                ApiError::bad_request(format!("The request body could not be read: {e}"))
            }
        })?;
    Ok((bytes, permit))
}

/// The events of a request, validated and stamped, in the topic's input schema.
pub(crate) fn parse_events(
    topic: &TopicState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<Event>, ApiError> {
    let content_type = content_type(headers);
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let objects = match (topic.schema, content_type.as_str(), first) {
        (Schema::CloudEvents, "application/cloudevents+json", Some(b'{')) => {
            parse_objects(body, false)?
        }
        (
            Schema::CloudEvents,
            "application/cloudevents-batch+json" | "application/json",
            Some(b'['),
        ) => parse_objects(body, true)?,
        (Schema::CloudEvents, _, _) => {
            return Err(ApiError::bad_request(format!(
                "This resource is configured to receive event in 'CloudEvent' schema: send one event as \
                 application/cloudevents+json or an array as application/cloudevents-batch+json (got content type '{content_type}')."
            )));
        }
        (Schema::EventGrid, _, Some(b'{')) => {
            parse_objects(body, false)?;
            return Err(ApiError::bad_request(
                "Unexpected token when reading JSON. Expected: StartArray, actual: StartObject. The Event Grid schema takes a JSON array of events.",
            ));
        }
        (Schema::EventGrid, _, Some(b'[')) => parse_objects(body, true)?,
        (Schema::EventGrid, _, _) => {
            Json::parse(body, MAX_EVENT_DEPTH).map_err(|e| invalid_json(&e))?;
            return Err(nonconforming(topic));
        }
    };
    check_count(topic, objects.len())?;
    objects
        .into_iter()
        .enumerate()
        .map(|(i, object)| {
            let fields = object.map_err(|()| nonconforming(topic))?;
            match topic.schema {
                Schema::EventGrid => stamp_event_grid(topic, fields, i),
                Schema::CloudEvents => check_cloud_event(fields, i),
            }
        })
        .collect()
}

fn check_count(topic: &TopicState, count: usize) -> Result<(), ApiError> {
    if count == 0 {
        return Err(nonconforming(topic));
    }
    if count > MAX_EVENTS {
        return Err(ApiError::bad_request(format!(
            "The request holds {count} events; Event Grid accepts at most {MAX_EVENTS} per request."
        )));
    }
    Ok(())
}

fn invalid_json(e: &JsonError) -> ApiError {
    match e.kind {
        JsonErrorKind::TooDeep { .. } => ApiError::bad_request(format!(
            "The request body nests too deeply: {e}. An event may nest at most {MAX_EVENT_DEPTH} levels (objects \
             and arrays, the event itself included), as the .NET JSON readers Event Grid and the Functions host \
             use refuse deeper documents."
        )),
        _ => ApiError::bad_request(format!("The request body is not valid JSON: {e}.")),
    }
}

/// Removes the field named `canonical` in any case (Azure's deserializer ignores case) and
/// returns the last one sent, as .NET's deserializer keeps the last of repeated properties.
fn take<'a>(fields: &mut Vec<Field<'a>>, canonical: &'static str) -> Option<Field<'a>> {
    let mut found = None;
    fields.retain_mut(|field| {
        if field.name.eq_ignore_ascii_case(canonical) {
            found = Some(Field {
                name: Cow::Borrowed(canonical),
                value: field.value.take(),
                raw: std::mem::take(&mut field.raw),
            });
            false
        } else {
            true
        }
    });
    found
}

fn at_index(message: String, i: usize) -> ApiError {
    ApiError::bad_request(format!("{message} (event at index {i})"))
}

/// Validates an Event Grid schema event in Azure's order (subject, id, eventType, eventTime,
/// then metadataVersion and topic) and stamps `topic`, `metadataVersion` and `dataVersion`.
fn stamp_event_grid(
    topic: &TopicState,
    mut fields: Vec<Field<'_>>,
    i: usize,
) -> Result<Event, ApiError> {
    let mut required = Vec::new();
    for name in ["subject", "id", "eventType", "eventTime"] {
        let field =
            take(&mut fields, name).filter(|f| f.text().is_some_and(|s| !s.trim().is_empty()));
        let Some(field) = field else {
            return Err(at_index(
                format!(
                    "This resource is configured for 'EventGridEvent' schema and requires '{name}' property to be set."
                ),
                i,
            ));
        };
        required.push(field);
    }
    let [subject, id, event_type, event_time] = <[Field<'_>; 4]>::try_from(required)
        .unwrap_or_else(|_| unreachable!("four required fields were taken"));
    let time = event_time.text().unwrap_or_default();
    if OffsetDateTime::parse(time, &Rfc3339).is_err() {
        return Err(at_index(
            format!("The event time property 'eventTime' was not a valid date/time: '{time}'."),
            i,
        ));
    }
    if let Some(version) = take(&mut fields, "metadataVersion")
        && version.value != Some(Json::Null)
        && version.text() != Some("1")
    {
        return Err(at_index(
            format!(
                "Property 'metadataVersion' was found to be set to '{}', but was expected to either be null or be set to 1.",
                version.text().map_or_else(
                    || String::from_utf8_lossy(&version.raw).into_owned(),
                    str::to_owned
                )
            ),
            i,
        ));
    }
    if let Some(given) = take(&mut fields, "topic")
        && let Some(given) = given.text().filter(|t| !t.is_empty())
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
    let data_version = take(&mut fields, "dataVersion")
        .filter(|v| v.value != Some(Json::Null))
        .unwrap_or_else(|| Field::string("dataVersion", ""));
    let data = take(&mut fields, "data");
    let mut event = EventBuilder::new(Schema::EventGrid);
    for field in [
        Some(id),
        Some(Field::string("topic", &topic.resource_id)),
        Some(subject),
        Some(event_type),
        Some(event_time),
        data,
        Some(data_version),
        Some(Field::string("metadataVersion", "1")),
    ]
    .into_iter()
    .flatten()
    // Anything else the publisher sent is kept as it was.
    .chain(fields)
    {
        event.raw(&field.name, field.text(), &field.raw);
    }
    Ok(event.finish())
}

/// Validates a CloudEvents 1.0 event: `specversion` "1.0", and `id`, `source`, `type` set.
/// Attribute names are case-sensitive in CloudEvents; the event is kept as sent.
fn check_cloud_event(fields: Vec<Field<'_>>, i: usize) -> Result<Event, ApiError> {
    let attribute = |name: &str| {
        fields
            .iter()
            .rev()
            .find(|f| &*f.name == name)
            .and_then(Field::text)
    };
    let version = attribute("specversion");
    if version != Some("1.0") {
        return Err(at_index(
            format!(
                "This resource is configured for 'CloudEvent' schema and requires 'specversion' to be '1.0' (got {version:?})."
            ),
            i,
        ));
    }
    for name in ["id", "source", "type"] {
        if attribute(name).is_none_or(|s| s.trim().is_empty()) {
            return Err(at_index(
                format!(
                    "This resource is configured for 'CloudEvent' schema and requires '{name}' property to be set."
                ),
                i,
            ));
        }
    }
    if let Some(time) = attribute("time")
        && OffsetDateTime::parse(time, &Rfc3339).is_err()
    {
        return Err(at_index(
            format!("The 'time' attribute is not a valid RFC 3339 timestamp: '{time}'."),
            i,
        ));
    }
    let mut event = EventBuilder::new(Schema::CloudEvents);
    for field in fields {
        event.raw(&field.name, field.text(), &field.raw);
    }
    Ok(event.finish())
}

/// The simple publish's `{"eventType": "NewOrder", "data": {...}}` (one object or an array), with the
/// envelope fields Event Grid requires filled in: `id` (a new GUID), `subject` (the topic name),
/// `eventTime` (now) and `dataVersion` ("1.0").
pub(crate) fn parse_simple(topic: &TopicState, body: &[u8]) -> Result<Vec<Event>, ApiError> {
    let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let objects = parse_objects(body, batch)?;
    if objects.is_empty() || objects.len() > MAX_EVENTS {
        return Err(ApiError::bad_request(format!(
            "Send between 1 and {MAX_EVENTS} events."
        )));
    }
    let now = now_rfc3339();
    objects
        .into_iter()
        .enumerate()
        .map(|(i, object)| {
            let mut fields =
                object.map_err(|()| at_index("Each event must be a JSON object.".into(), i))?;
            let has = |fields: &[Field<'_>], name: &str| {
                fields.iter().any(|f| f.name.eq_ignore_ascii_case(name))
            };
            match topic.schema {
                Schema::EventGrid => {
                    let defaults = [
                        ("id", uuid::Uuid::new_v4().to_string()),
                        ("subject", topic.name.clone()),
                        ("eventTime", now.clone()),
                        ("dataVersion", "1.0".to_owned()),
                    ];
                    for (name, value) in defaults {
                        if !has(&fields, name) {
                            fields.push(Field::string(name, &value));
                        }
                    }
                    stamp_event_grid(topic, fields, i)
                }
                Schema::CloudEvents => {
                    let defaults = [
                        ("specversion", "1.0".to_owned()),
                        ("id", uuid::Uuid::new_v4().to_string()),
                        ("source", format!("/publish/{}", topic.name)),
                        ("time", now.clone()),
                    ];
                    for (name, value) in defaults {
                        if !fields.iter().any(|f| &*f.name == name) {
                            fields.push(Field::string(name, &value));
                        }
                    }
                    if !fields.iter().any(|f| &*f.name == "type")
                        && let Some(event_type) = take(&mut fields, "eventType")
                    {
                        fields.push(Field {
                            name: "type".into(),
                            ..event_type
                        });
                    }
                    check_cloud_event(fields, i)
                }
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
            resource_id: protocol::topic_resource_id("orders"),
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
        let stamped = String::from_utf8(events[0].body.to_vec()).unwrap();
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
    fn the_simple_payload_gets_the_missing_envelope_fields() {
        let events = parse_simple(
            &topic(Schema::EventGrid),
            br#"{"eventType":"NewOrder","data":{"orderId":"12345","orderValue":150.0}}"#,
        )
        .unwrap();
        let e = &events[0].header;
        assert_eq!(&*e.event_type, "NewOrder");
        assert_eq!(e.subject.as_deref(), Some("orders"));
        assert_eq!(e.data_version.as_deref(), Some("1.0"));
        assert!(uuid::Uuid::parse_str(&e.id).is_ok());
        let members = events[0].members().unwrap();
        assert_eq!(
            crate::emulator::event::member(&members, "data").unwrap().1,
            br#"{"orderId":"12345","orderValue":150.0}"#
        );
    }

    // Property tests (issue 14): whatever the body, an answer in Azure's shape, never a panic.
    use crate::json::strategies::{arbitrary_json, json_like, object_of};
    use proptest::prelude::*;

    const EVENT_GRID_NAMES: &[&str] = &[
        "id",
        "subject",
        "eventType",
        "eventTime",
        "dataVersion",
        "metadataVersion",
        "topic",
        "data",
        "Id",
        "EVENTTYPE",
    ];
    const CLOUD_EVENT_NAMES: &[&str] = &[
        "id",
        "source",
        "type",
        "specversion",
        "time",
        "subject",
        "datacontenttype",
        "data",
        "data_base64",
        "dataschema",
        "traceparent",
        "SpecVersion",
    ];
    const GOOD: &[&str] = &[
        r#""1""#,
        r#""1.0""#,
        r#""2020-01-01T00:00:00Z""#,
        r#""orders/1""#,
        r#""/ordergrid""#,
        r#"{"orderId":"A-1"}"#,
    ];

    fn bodies(names: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop_oneof![
            json_like(),
            arbitrary_json(),
            object_of(names, GOOD),
            prop::collection::vec(object_of(names, GOOD), 0..4)
                .prop_map(|events| format!("[{}]", events.join(","))),
        ]
    }

    fn answered(
        result: Result<Vec<Event>, ApiError>,
        required: &[&str],
    ) -> Result<(), TestCaseError> {
        match result {
            Ok(events) => {
                for event in events {
                    let value = crate::json::Json::parse(&event.body, MAX_EVENT_DEPTH + 1)
                        .map_err(|e| {
                            TestCaseError::fail(format!("stored event is not JSON: {e}"))
                        })?;
                    for field in required {
                        prop_assert!(
                            value
                                .get(field)
                                .and_then(crate::json::Json::as_str)
                                .is_some(),
                            "{field} in {}",
                            String::from_utf8_lossy(&event.body)
                        );
                    }
                }
            }
            Err(e) => {
                prop_assert!(matches!(e.status.as_u16(), 400 | 413), "{}", e.status);
                prop_assert!(!e.message.is_empty());
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_event_grid_body_is_accepted_whole_or_refused_in_azures_shape(
            body in bodies(EVENT_GRID_NAMES),
        ) {
            let result = parse_events(&topic(Schema::EventGrid), &headers("application/json"), body.as_bytes());
            answered(result, &["id", "subject", "eventType", "eventTime"])?;
            answered(parse_simple(&topic(Schema::EventGrid), body.as_bytes()), &["id", "eventType"])?;
        }

        #[test]
        fn any_cloud_events_body_is_accepted_whole_or_refused_in_azures_shape(
            body in bodies(CLOUD_EVENT_NAMES),
            content_type in prop::sample::select(vec![
                "application/cloudevents+json; charset=utf-8",
                "application/cloudevents-batch+json; charset=utf-8",
                "application/json",
            ]),
        ) {
            let result = parse_events(&topic(Schema::CloudEvents), &headers(content_type), body.as_bytes());
            answered(result, &["id", "source", "type", "specversion"])?;
        }
    }
}
