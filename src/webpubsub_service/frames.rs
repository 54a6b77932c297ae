//! The JSON subprotocols' frames (`json.webpubsub.azure.v1` and
//! `json.reliable.webpubsub.azure.v1`), as the service documents them
//! (reference-json-webpubsub-subprotocol, reference-json-reliable-webpubsub-subprotocol):
//! what a client sends, and what the service sends back.
//!
//! Invariants:
//! - a message to many connections is rendered once ([`Prepared`]); a reliable connection's copy
//!   only gains its `sequenceId` in front (`{"sequenceId":N,` + the shared rest);
//! - `data` reaches a JSON client as the publisher's JSON text, byte for byte (`json`), a JSON
//!   string (`text`) or base64 (`binary`), and a simple client as the raw bytes.

use axum::extract::ws::{Message, Utf8Bytes};
use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::webpubsub::actions::DataType;

/// The subprotocols the service speaks, in the order a client's offer is read.
pub const JSON: &str = "json.webpubsub.azure.v1";
pub const RELIABLE_JSON: &str = "json.reliable.webpubsub.azure.v1";

/// How a connection talks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// No subprotocol: raw frames; what it sends would go to an upstream event handler.
    Simple,
    Json,
    Reliable,
}

impl Protocol {
    /// The first subprotocol a client offers that the service speaks, as Azure picks it ("the
    /// first supported protocol offered by the client"); protobuf subprotocols are not spoken
    /// here, so a client offering only those gets none and its WebSocket fails to open.
    pub fn choose<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<(Self, &'static str)> {
        offered.into_iter().find_map(|p| match p.trim() {
            JSON => Some((Protocol::Json, JSON)),
            RELIABLE_JSON => Some((Protocol::Reliable, RELIABLE_JSON)),
            _ => None,
        })
    }
}

/// What a JSON client sends.
#[derive(Debug)]
pub enum Request<'a> {
    JoinGroup {
        group: String,
        ack_id: Option<u64>,
    },
    LeaveGroup {
        group: String,
        ack_id: Option<u64>,
    },
    SendToGroup {
        group: String,
        ack_id: Option<u64>,
        no_echo: bool,
        data_type: Option<String>,
        data: Option<&'a RawValue>,
    },
    Event {
        event: String,
        ack_id: Option<u64>,
        data_type: Option<String>,
        data: Option<&'a RawValue>,
    },
    SequenceAck {
        sequence_id: u64,
    },
    Ping,
}

/// Every field any request has: serde cannot hand a `RawValue` through an internally tagged
/// enum, so the frame is read flat and then checked per type.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Flat<'a> {
    #[serde(rename = "type")]
    kind: String,
    group: Option<String>,
    event: Option<String>,
    ack_id: Option<u64>,
    #[serde(default)]
    no_echo: bool,
    data_type: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    sequence_id: Option<u64>,
}

/// Why a client's frame could not be read; the connection is closed with it.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of a JSON subprotocol must be a JSON object with a known type: {0}")]
    Unreadable(String),
    #[error("dataType {0:?} is not json, text or binary")]
    DataType(String),
    #[error("data does not match dataType {0}")]
    Data(&'static str),
}

impl<'a> Request<'a> {
    pub fn parse(text: &'a str) -> Result<Self, FrameError> {
        let flat: Flat<'a> =
            serde_json::from_str(text).map_err(|e| FrameError::Unreadable(e.to_string()))?;
        let missing = |field: &str| FrameError::Unreadable(format!("{} needs {field}", flat.kind));
        // Types are matched ignoring case, as Microsoft's emulator reads them.
        Ok(match flat.kind.to_ascii_lowercase().as_str() {
            "joingroup" => Request::JoinGroup {
                group: flat.group.clone().ok_or_else(|| missing("group"))?,
                ack_id: flat.ack_id,
            },
            "leavegroup" => Request::LeaveGroup {
                group: flat.group.clone().ok_or_else(|| missing("group"))?,
                ack_id: flat.ack_id,
            },
            "sendtogroup" => Request::SendToGroup {
                group: flat.group.clone().ok_or_else(|| missing("group"))?,
                ack_id: flat.ack_id,
                no_echo: flat.no_echo,
                data_type: flat.data_type,
                data: flat.data,
            },
            "event" => Request::Event {
                event: flat.event.clone().ok_or_else(|| missing("event"))?,
                ack_id: flat.ack_id,
                data_type: flat.data_type,
                data: flat.data,
            },
            "sequenceack" => Request::SequenceAck {
                sequence_id: flat.sequence_id.ok_or_else(|| missing("sequenceId"))?,
            },
            "ping" => Request::Ping,
            other => return Err(FrameError::Unreadable(format!("unknown type {other:?}"))),
        })
    }
}

/// A client's `dataType` (default `json`, as the documentation says) and `data` as the bytes
/// and type a REST publisher would have sent.
pub fn client_message(
    data_type: Option<&str>,
    data: Option<&RawValue>,
) -> Result<(Bytes, DataType), FrameError> {
    let data_type = match data_type.unwrap_or("json") {
        "json" => DataType::Json,
        "text" => DataType::Text,
        "binary" => DataType::Binary,
        other => return Err(FrameError::DataType(other.to_owned())),
    };
    let raw = data.map_or("null", RawValue::get);
    let bytes = match data_type {
        DataType::Json => Bytes::copy_from_slice(raw.as_bytes()),
        DataType::Text => serde_json::from_str::<String>(raw)
            .map(Bytes::from)
            .map_err(|_| FrameError::Data("text (a JSON string)"))?,
        DataType::Binary => serde_json::from_str::<String>(raw)
            .ok()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(Bytes::from)
            .ok_or(FrameError::Data("binary (a base64 string)"))?,
    };
    Ok((bytes, data_type))
}

/// Who a message comes from, as the `message` frame says it. A REST send to a group arrives as
/// a group message with `fromUserId` null, as Microsoft's emulator writes it
/// (`ConnectionManager.SendToGroup` with no sender, `WebPubSubJsonV1Protocol.WriteGroupData`), so
/// the official client raises `group-message` for it; sends to the hub, a user or a connection
/// arrive `from: "server"`.
#[derive(Debug, Clone)]
pub enum Origin<'a> {
    Server,
    Group {
        group: &'a str,
        from_user: Option<&'a str>,
    },
}

/// One message rendered once for every connection it goes to.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The `message` frame without its opening `{`: `"type":"message",…}`.
    tail: Bytes,
    /// The whole frame of a `json.webpubsub.azure.v1` client, built once: a broadcast to
    /// 10,000 such clients then costs a reference count each, not an allocation and a copy.
    json: Utf8Bytes,
    /// What a simple client receives.
    simple: Message,
}

impl Prepared {
    /// `data` must already be valid for `data_type` (JSON text for `json`, UTF-8 for `text`).
    pub fn new(from: Origin<'_>, data: &Bytes, data_type: DataType) -> Self {
        let mut tail = String::with_capacity(data.len() + 97);
        tail.push('{');
        tail.push_str(r#""type":"message","from":"#);
        match from {
            Origin::Server => tail.push_str(r#""server""#),
            Origin::Group { group, from_user } => {
                tail.push_str(r#""group","group":"#);
                tail.push_str(&quote(group));
                tail.push_str(r#","fromUserId":"#);
                match from_user {
                    Some(user) => tail.push_str(&quote(user)),
                    None => tail.push_str("null"),
                }
            }
        }
        tail.push_str(r#","dataType":""#);
        tail.push_str(data_type.name());
        tail.push_str(r#"","data":"#);
        match data_type {
            DataType::Json => tail.push_str(std::str::from_utf8(data).unwrap_or("null")),
            DataType::Text => tail.push_str(&quote(&String::from_utf8_lossy(data))),
            DataType::Binary => {
                tail.push('"');
                tail.push_str(&base64::engine::general_purpose::STANDARD.encode(data));
                tail.push('"');
            }
        }
        tail.push('}');
        let simple = match data_type {
            DataType::Binary => Message::Binary(data.clone()),
            _ => match Utf8Bytes::try_from(data.clone()) {
                Ok(text) => Message::Text(text),
                Err(_) => Message::Binary(data.clone()),
            },
        };
        let json = Utf8Bytes::from(tail);
        Self {
            tail: Bytes::from(json.clone()).slice(1..),
            json,
            simple,
        }
    }

    /// The frame for a `json.webpubsub.azure.v1` client.
    pub fn json(&self) -> Utf8Bytes {
        self.json.clone()
    }

    /// The frame for a reliable client: the same, numbered.
    pub fn sequenced(&self, sequence_id: u64) -> Utf8Bytes {
        let mut frame = Vec::with_capacity(self.tail.len() + 32);
        frame.extend_from_slice(br#"{"sequenceId":"#);
        frame.extend_from_slice(sequence_id.to_string().as_bytes());
        frame.push(b',');
        frame.extend_from_slice(&self.tail);
        text(frame)
    }

    pub fn simple(&self) -> Message {
        self.simple.clone()
    }
}

fn text(frame: Vec<u8>) -> Utf8Bytes {
    Utf8Bytes::try_from(Bytes::from(frame)).expect("frames are built from UTF-8 text")
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// `{"type":"system","event":"connected",…}`; a reliable connection also gets its
/// reconnection token.
pub fn connected(
    user_id: Option<&str>,
    connection_id: &str,
    reconnection_token: Option<&str>,
) -> Utf8Bytes {
    let mut frame = serde_json::json!({
        "type": "system",
        "event": "connected",
        "userId": user_id,
        "connectionId": connection_id,
    });
    if let Some(token) = reconnection_token {
        frame["reconnectionToken"] = token.into();
    }
    frame.to_string().into()
}

/// `{"type":"system","event":"disconnected","message":…}`, sent before the service closes a
/// connection.
pub fn disconnected(message: &str) -> Utf8Bytes {
    serde_json::json!({"type": "system", "event": "disconnected", "message": message})
        .to_string()
        .into()
}

/// The error names an `ack` carries (documented: Forbidden, InternalServerError, Duplicate;
/// Microsoft's emulator also answers BadRequest for a request it cannot carry out as sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    BadRequest,
    Forbidden,
    Duplicate,
}

impl AckError {
    fn name(self) -> &'static str {
        match self {
            AckError::BadRequest => "BadRequest",
            AckError::Forbidden => "Forbidden",
            AckError::Duplicate => "Duplicate",
        }
    }
}

/// `{"type":"ack","ackId":N,"success":…}`.
pub fn ack(ack_id: u64, result: Result<(), (AckError, &str)>) -> Utf8Bytes {
    match result {
        Ok(()) => format!(r#"{{"type":"ack","ackId":{ack_id},"success":true}}"#).into(),
        Err((error, message)) => serde_json::json!({
            "type": "ack",
            "ackId": ack_id,
            "success": false,
            "error": {"name": error.name(), "message": message},
        })
        .to_string()
        .into(),
    }
}

pub fn pong() -> Utf8Bytes {
    Utf8Bytes::from_static(r#"{"type":"pong"}"#)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(frame: &Utf8Bytes) -> Value {
        serde_json::from_str(frame.as_str()).unwrap()
    }

    #[test]
    fn a_json_message_keeps_the_publishers_text_and_a_reliable_copy_is_numbered() {
        let data = Bytes::from_static(br#"{"total": 1e400, "n": 12345678901234567890}"#);
        let p = Prepared::new(
            Origin::Group {
                group: "order-\"1\"",
                from_user: Some("u"),
            },
            &data,
            DataType::Json,
        );
        let json = p.json();
        assert!(
            json.as_str()
                .ends_with(r#""data":{"total": 1e400, "n": 12345678901234567890}}"#),
            "{json}"
        );
        let sequenced = p.sequenced(7);
        assert_eq!(
            sequenced.as_str(),
            format!("{{\"sequenceId\":7,{}", &json.as_str()[1..])
        );
        assert_eq!(
            p.simple(),
            Message::Text(Utf8Bytes::from_static(
                r#"{"total": 1e400, "n": 12345678901234567890}"#
            ))
        );
        let p = Prepared::new(
            Origin::Group {
                group: "order-\"1\"",
                from_user: Some("u"),
            },
            &Bytes::from_static(b"{}"),
            DataType::Json,
        );
        let reliable = parse(&p.sequenced(7));
        assert_eq!(reliable["sequenceId"], 7);
        assert_eq!(reliable["group"], "order-\"1\"");
        assert_eq!(reliable["fromUserId"], "u");
        assert_eq!(reliable["from"], "group");
    }

    #[test]
    fn text_and_binary_are_a_string_and_base64() {
        let p = Prepared::new(
            Origin::Server,
            &Bytes::from_static(b"hi \"there\""),
            DataType::Text,
        );
        assert_eq!(parse(&p.json())["data"], "hi \"there\"");
        assert_eq!(parse(&p.json())["from"], "server");
        let p = Prepared::new(
            Origin::Server,
            &Bytes::from_static(&[0, 159, 255]),
            DataType::Binary,
        );
        assert_eq!(parse(&p.json())["data"], "AJ//");
        assert_eq!(
            p.simple(),
            Message::Binary(Bytes::from_static(&[0, 159, 255]))
        );
    }

    #[test]
    fn client_frames_parse_as_documented() {
        let r = Request::parse(
            r#"{"type":"sendToGroup","group":"g","ackId":2,"noEcho":true,"data":{"a":1}}"#,
        )
        .unwrap();
        let Request::SendToGroup {
            group,
            ack_id,
            no_echo,
            data_type,
            data,
        } = r
        else {
            panic!()
        };
        assert_eq!((group.as_str(), ack_id, no_echo), ("g", Some(2), true));
        let (bytes, dt) = client_message(data_type.as_deref(), data).unwrap();
        assert_eq!((&bytes[..], dt), (&br#"{"a":1}"#[..], DataType::Json));
        assert!(matches!(
            Request::parse(r#"{"type":"ping"}"#),
            Ok(Request::Ping)
        ));
        assert!(matches!(
            Request::parse(r#"{"type":"sequenceAck","sequenceId":5}"#),
            Ok(Request::SequenceAck { sequence_id: 5 })
        ));
        assert!(Request::parse(r#"{"type":"teleport"}"#).is_err());
        assert!(Request::parse("not json").is_err());
        assert!(
            client_message(
                Some("text"),
                RawValue::from_string("1".into()).ok().as_deref()
            )
            .is_err()
        );
        assert!(client_message(Some("yaml"), None).is_err());
    }

    #[test]
    fn the_first_offered_protocol_the_service_speaks_wins() {
        assert_eq!(
            Protocol::choose(["protobuf.webpubsub.azure.v1", RELIABLE_JSON, JSON]),
            Some((Protocol::Reliable, RELIABLE_JSON))
        );
        assert_eq!(Protocol::choose(["mqtt"]), None);
    }

    #[test]
    fn acks_say_success_or_a_documented_error_name() {
        assert_eq!(parse(&ack(3, Ok(())))["success"], true);
        let failed = parse(&ack(4, Err((AckError::Forbidden, "no"))));
        assert_eq!(failed["error"]["name"], "Forbidden");
        assert_eq!(failed["ackId"], 4);
    }

    // Property tests (issue 14).
    use crate::json::strategies::{arbitrary_json, json_like, object_of};
    use proptest::prelude::*;

    proptest! {
        /// Whatever a client sends on a JSON subprotocol: a request or a reason, never a panic.
        #[test]
        fn any_frame_is_a_request_or_a_reason(
            text in prop_oneof![
                json_like(),
                arbitrary_json(),
                object_of(
                    &["type", "group", "ackId", "dataType", "data", "noEcho", "event", "sequenceId"],
                    &[r#""joinGroup""#, r#""sendToGroup""#, r#""sequenceAck""#, r#""ping""#, r#""json""#, r#""text""#, r#""binary""#, "1", r#""g""#, "true"],
                ),
            ],
        ) {
            let _ = Request::parse(&text);
        }
    }
}
