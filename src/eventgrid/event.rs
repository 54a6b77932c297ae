//! Event Grid schema and CloudEvents 1.0 events, and the normalised view of either.
//!
//! Invariants:
//! - an [`InboundEvent`] always has a non-empty `id` and `event_type`;
//! - `data` is kept as the JSON text that was sent ([`RawValue`]), so numbers inside it are never
//!   rounded through `f64` before the domain parses them.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A JSON object whose values are kept as the exact text that was sent, so numbers in `data` are
/// never rounded through `f64` on their way through the emulator.
pub type RawObject = std::collections::BTreeMap<String, Box<RawValue>>;

/// Which schema an event arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Schema {
    EventGrid,
    CloudEvents,
}

/// An event in the Event Grid schema, as published to and delivered by a custom topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventGridEvent {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    pub subject: String,
    pub event_type: String,
    pub event_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_version: Option<String>,
}

impl EventGridEvent {
    /// A new event with `eventTime` now, in RFC 3339 UTC.
    pub fn new(
        id: String,
        event_type: &str,
        subject: String,
        data: Box<RawValue>,
        data_version: &str,
    ) -> Self {
        Self {
            id,
            topic: None,
            subject,
            event_type: event_type.to_owned(),
            event_time: now_rfc3339(),
            data: Some(data),
            data_version: Some(data_version.to_owned()),
            metadata_version: None,
        }
    }
}

/// A CloudEvents 1.0 event in structured JSON mode. Extension attributes are not modelled here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataschema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
}

/// Why a JSON value is not an event of either schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is not JSON: {0}")]
    NotJson(String),
    #[error("the event is JSON {0}, not an object")]
    NotAnObject(&'static str),
    #[error(
        "the event is neither Event Grid schema (no eventType) nor CloudEvents (no specversion)"
    )]
    UnknownSchema,
    #[error("the {schema:?} event is invalid: {detail}")]
    Invalid { schema: Schema, detail: String },
    #[error("the event is nested in JSON strings more than {0} times")]
    TooDeeplyEncoded(usize),
}

/// One event, whichever schema delivered it.
#[derive(Debug, Clone)]
pub struct InboundEvent {
    pub schema: Schema,
    pub id: String,
    pub event_type: String,
    pub subject: Option<String>,
    /// `eventTime` or `time`, as sent.
    pub time: Option<String>,
    /// The JSON text of `data`; a JSON string holding JSON is unwrapped (publishers do that).
    pub data: Option<Box<RawValue>>,
}

/// At most this many layers of "JSON inside a JSON string" are peeled off an event.
const MAX_STRING_ENCODINGS: usize = 3;

impl InboundEvent {
    /// Parses one event given as JSON text. The Functions host may hand the event over as an
    /// object or as a JSON string containing the object (possibly more than once); both work.
    pub fn parse(json: &str) -> Result<Self, EventError> {
        let mut owned: String;
        let mut text = json;
        for _ in 0..=MAX_STRING_ENCODINGS {
            match first_byte(text) {
                Some(b'"') => {
                    owned = serde_json::from_str::<String>(text)
                        .map_err(|e| EventError::NotJson(e.to_string()))?;
                    text = &owned;
                }
                Some(b'{') => return Self::parse_object(text),
                first => {
                    serde_json::from_str::<serde::de::IgnoredAny>(text)
                        .map_err(|e| EventError::NotJson(e.to_string()))?;
                    return Err(EventError::NotAnObject(match first {
                        Some(b'[') => "array",
                        Some(b't' | b'f') => "boolean",
                        Some(b'n') => "null",
                        _ => "number",
                    }));
                }
            }
        }
        Err(EventError::TooDeeplyEncoded(MAX_STRING_ENCODINGS))
    }

    fn parse_object(text: &str) -> Result<Self, EventError> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            specversion: Option<serde::de::IgnoredAny>,
            #[serde(default, rename = "eventType")]
            event_type: Option<serde::de::IgnoredAny>,
        }
        let probe: Probe =
            serde_json::from_str(text).map_err(|e| EventError::NotJson(e.to_string()))?;
        let event = if probe.specversion.is_some() {
            let ce: CloudEvent = serde_json::from_str(text).map_err(|e| EventError::Invalid {
                schema: Schema::CloudEvents,
                detail: e.to_string(),
            })?;
            if ce.specversion != "1.0" {
                return Err(EventError::Invalid {
                    schema: Schema::CloudEvents,
                    detail: format!(
                        "specversion is {:?}, only \"1.0\" is supported",
                        ce.specversion
                    ),
                });
            }
            Self {
                schema: Schema::CloudEvents,
                id: ce.id,
                event_type: ce.event_type,
                subject: ce.subject,
                time: ce.time,
                data: ce.data,
            }
        } else if probe.event_type.is_some() {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Lenient {
                id: String,
                event_type: String,
                #[serde(default)]
                subject: Option<String>,
                #[serde(default)]
                event_time: Option<String>,
                #[serde(default)]
                data: Option<Box<RawValue>>,
            }
            let eg: Lenient = serde_json::from_str(text).map_err(|e| EventError::Invalid {
                schema: Schema::EventGrid,
                detail: e.to_string(),
            })?;
            Self {
                schema: Schema::EventGrid,
                id: eg.id,
                event_type: eg.event_type,
                subject: eg.subject,
                time: eg.event_time,
                data: eg.data,
            }
        } else {
            return Err(EventError::UnknownSchema);
        };
        if event.id.trim().is_empty() {
            return Err(EventError::Invalid {
                schema: event.schema,
                detail: "id is empty".into(),
            });
        }
        if event.event_type.trim().is_empty() {
            return Err(EventError::Invalid {
                schema: event.schema,
                detail: "the event type is empty".into(),
            });
        }
        Ok(event.unwrap_string_data())
    }

    /// Publishers sometimes send `"data": "{\"orderId\": …}"`; treat that as the object it holds.
    fn unwrap_string_data(mut self) -> Self {
        if let Some(data) = &self.data
            && first_byte(data.get()) == Some(b'"')
            && let Ok(inner) = serde_json::from_str::<String>(data.get())
            && matches!(first_byte(&inner), Some(b'{' | b'['))
            && let Ok(raw) = RawValue::from_string(inner)
        {
            self.data = Some(raw);
        }
        self
    }

    /// The `data` JSON text, or `null` when the event has none.
    pub fn data_text(&self) -> &str {
        self.data.as_deref().map_or("null", RawValue::get)
    }
}

fn first_byte(text: &str) -> Option<u8> {
    text.trim_start().as_bytes().first().copied()
}

/// Now, as RFC 3339 in UTC (what Event Grid stamps).
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EG: &str = r#"{"id":"1807","eventType":"NewOrder","subject":"orders/1","eventTime":"2017-08-10T21:03:07+00:00","data":{"orderValue":150.0},"dataVersion":"1.0"}"#;
    const CE: &str = r#"{"specversion":"1.0","id":"e1","source":"/shop","type":"NewOrder","time":"2020-04-22T23:39:33Z","data":{"orderValue":150.0}}"#;

    #[test]
    fn parses_both_schemas_into_one_view() {
        let eg = InboundEvent::parse(EG).unwrap();
        assert_eq!(
            (eg.schema, eg.id.as_str(), eg.event_type.as_str()),
            (Schema::EventGrid, "1807", "NewOrder")
        );
        assert_eq!(eg.data_text(), r#"{"orderValue":150.0}"#);
        let ce = InboundEvent::parse(CE).unwrap();
        assert_eq!(
            (ce.schema, ce.id.as_str(), ce.event_type.as_str()),
            (Schema::CloudEvents, "e1", "NewOrder")
        );
        assert_eq!(ce.data_text(), r#"{"orderValue":150.0}"#);
    }

    #[test]
    fn unwraps_string_encoded_events_and_data() {
        let once = serde_json::to_string(EG).unwrap();
        let twice = serde_json::to_string(&once).unwrap();
        assert_eq!(InboundEvent::parse(&once).unwrap().id, "1807");
        assert_eq!(InboundEvent::parse(&twice).unwrap().id, "1807");
        let string_data =
            r#"{"id":"1","eventType":"T","subject":"s","eventTime":"t","data":"{\"a\":1.10}"}"#;
        assert_eq!(
            InboundEvent::parse(string_data).unwrap().data_text(),
            r#"{"a":1.10}"#
        );
    }

    #[test]
    fn rejects_what_is_not_an_event() {
        assert_eq!(
            InboundEvent::parse("[1]").unwrap_err(),
            EventError::NotAnObject("array")
        );
        assert_eq!(
            InboundEvent::parse("{}").unwrap_err(),
            EventError::UnknownSchema
        );
        assert!(matches!(
            InboundEvent::parse("nope"),
            Err(EventError::NotJson(_))
        ));
        assert!(matches!(
            InboundEvent::parse(r#"{"eventType":"T","id":7}"#),
            Err(EventError::Invalid {
                schema: Schema::EventGrid,
                ..
            })
        ));
        assert!(matches!(
            InboundEvent::parse(r#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#),
            Err(EventError::Invalid {
                schema: Schema::CloudEvents,
                ..
            })
        ));
        let deep = (0..5).fold(EG.to_owned(), |s, _| serde_json::to_string(&s).unwrap());
        assert_eq!(
            InboundEvent::parse(&deep).unwrap_err(),
            EventError::TooDeeplyEncoded(3)
        );
    }
}
