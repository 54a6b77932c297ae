//! Dead letters as Azure writes them: JSON arrays of events in blobs named
//! `<container>/<SUBSCRIPTION-NAME-UPPERCASE>/<yyyy>/<M>/<d>/<H>/<guid>.json` (UTC, no zero
//! padding), each event carrying `deadLetterReason`, `deliveryAttempts`, `lastDeliveryOutcome`,
//! `lastHttpStatusCode` (when there was an answer), `publishTime` and `lastDeliveryAttemptTime`
//! (lower-case names for CloudEvents, as in Azure's sample).
//!
//! Sinks: a local folder with that layout ([`FolderSink`], the default), or blob containers of a
//! Storage account, Azurite or Azure ([`BlobSink`]); see [`DeadLetterStorage`]. A sink reports a
//! blob durable before the dispatcher forgets the event.

mod blob;
mod folder;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use blob::BlobSink;
pub use folder::FolderSink;

use super::event::{Event, EventBuilder};
use super::spool::LastAttempt;
use crate::blob::BlobConnection;
use crate::eventgrid::Schema;
use crate::json::{Json, MAX_EVENT_DEPTH, Parser, write_string};

/// Where the emulator writes dead letters.
#[derive(Debug, Clone)]
pub enum DeadLetterStorage {
    /// A folder laid out like the container.
    Folder(std::path::PathBuf),
    /// Blob containers (those the subscriptions file names) of a Storage account.
    Blob(BlobConnection),
}

/// A stored dead-letter blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterBlob {
    pub container: String,
    /// The name inside the container: `SUB/yyyy/M/d/H/guid.json`.
    pub name: String,
    /// The subscription, upper case, as the first path segment says.
    pub subscription: String,
    /// When the blob was written (the dead-letter time; its name has the hour only), RFC 3339:
    /// the file's modification time, or the blob's `Last-Modified`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<String>,
}

/// A storage timestamp as the admin API writes times (RFC 3339, UTC).
fn rfc3339(at: OffsetDateTime) -> Option<String> {
    at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok()
}

/// Why a dead-letter storage request failed, and so whether to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The storage failed or did not answer (a full disk, throttling, Azurite down); the same
    /// request may succeed later.
    #[error("{0}")]
    Transient(String),
    /// There is no such blob; asking again will not help.
    #[error("{0}")]
    NotFound(String),
    /// A name the sink refuses: not a blob path, or a container the subscriptions file does not
    /// name. Only a change of configuration or request helps.
    #[error("{0}")]
    Invalid(String),
}

impl SinkError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SinkError::Transient(_))
    }

    /// A local file's error: a missing file is [`SinkError::NotFound`], anything else transient.
    fn io(what: String, error: &std::io::Error) -> Self {
        let message = format!("{what}: {error}");
        if error.kind() == std::io::ErrorKind::NotFound {
            SinkError::NotFound(message)
        } else {
            SinkError::Transient(message)
        }
    }
}

#[async_trait]
pub trait DeadLetterSink: Send + Sync + 'static {
    /// Writes one blob holding `events` (annotated JSON objects, see [`annotate`]) as a JSON
    /// array; returns its name inside the container.
    async fn write(
        &self,
        container: &str,
        subscription_upper: &str,
        events: &[Bytes],
        at: OffsetDateTime,
    ) -> Result<String, SinkError>;

    /// Every blob, oldest name first.
    async fn list(&self) -> Result<Vec<DeadLetterBlob>, SinkError>;

    /// A blob's content: a JSON array of annotated events ([`events_of`] reads it).
    async fn read(&self, container: &str, name: &str) -> Result<Bytes, SinkError>;

    async fn delete(&self, container: &str, name: &str) -> Result<(), SinkError>;

    fn describe(&self) -> String;
}

/// `SUB/yyyy/M/d/H/guid.json`.
pub fn blob_name(subscription_upper: &str, at: OffsetDateTime, id: uuid::Uuid) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{subscription_upper}/{}/{}/{}/{}/{id}.json",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour()
    )
}

/// What ended an event's delivery, for the record.
#[derive(Debug, Clone)]
pub struct Ending<'a> {
    pub reason: &'a str,
    pub attempts: u32,
    pub last: Option<&'a LastAttempt>,
    pub published_ms: i64,
}

/// The names of the dead-letter properties, as Azure spells them in each schema.
fn property_names(schema: Schema) -> [&'static str; 6] {
    match schema {
        Schema::EventGrid => [
            "deadLetterReason",
            "deliveryAttempts",
            "lastDeliveryOutcome",
            "lastHttpStatusCode",
            "publishTime",
            "lastDeliveryAttemptTime",
        ],
        Schema::CloudEvents => [
            "deadletterreason",
            "deliveryattempts",
            "lastdeliveryoutcome",
            "lasthttpstatuscode",
            "publishtime",
            "lastdeliveryattempttime",
        ],
    }
}

/// The stored event (a JSON object) with Azure's dead-letter properties added after its own,
/// without parsing it again.
pub fn annotate(event: &[u8], schema: Schema, ending: &Ending<'_>) -> Bytes {
    let time = |ms: i64| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    };
    let names = property_names(schema);
    let mut added: Vec<(&str, Vec<u8>)> = Vec::new();
    let text = |name: &'static str, value: &str| {
        let mut out = Vec::new();
        write_string(value, &mut out);
        (name, out)
    };
    added.push(text(names[0], ending.reason));
    added.push((names[1], ending.attempts.to_string().into_bytes()));
    added.push(text(
        names[2],
        ending.last.map_or("NotAttempted", |l| l.outcome.as_str()),
    ));
    if let Some(status) = ending.last.and_then(|l| l.status) {
        added.push((names[3], status.to_string().into_bytes()));
    }
    added.push(text(names[4], &time(ending.published_ms)));
    if let Some(last) = ending.last {
        added.push(text(names[5], &time(last.at_ms)));
    }
    // The stored body is an object the publish API wrote: `{…}` with nothing after the brace.
    let body = event.strip_suffix(b"}").unwrap_or(event);
    let mut out = body.to_vec();
    for (name, value) in added {
        if out.len() > 1 {
            out.push(b',');
        }
        write_string(name, &mut out);
        out.push(b':');
        out.extend_from_slice(&value);
    }
    out.push(b'}');
    Bytes::from(out)
}

/// A blob's bytes: the events as a JSON array, one per line, as Azure's blobs read.
pub fn blob_bytes(events: &[Bytes]) -> Vec<u8> {
    let mut out = b"[".to_vec();
    for (i, event) in events.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"\n  " } else { b",\n  " });
        out.extend_from_slice(event);
    }
    out.extend_from_slice(b"\n]");
    out
}

/// The original events of a dead-letter blob, without the dead-letter properties, ready to be
/// published again.
pub fn events_of(blob: &[u8], schema: Schema) -> Result<Vec<Event>, String> {
    let names = property_names(schema);
    let mut parser = Parser::new(blob, MAX_EVENT_DEPTH + 1);
    let mut events = Vec::new();
    parser
        .array(|parser| {
            let spanned = parser.object_with_spans()?;
            let Json::Object(members) = spanned.object else {
                return Ok(());
            };
            let mut event = EventBuilder::new(schema);
            for ((name, value), span) in members.into_iter().zip(spanned.spans) {
                if !names.contains(&&*name) {
                    event.raw(&name, value.as_str(), &blob[span]);
                }
            }
            events.push(event.finish());
            Ok(())
        })
        .and_then(|()| parser.end())
        .map_err(|e| format!("not a JSON array of events: {e}"))?;
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn blob_names_use_unpadded_utc_parts() {
        let id = uuid::Uuid::nil();
        assert_eq!(
            blob_name("MY-SUB", datetime!(2019-08-08 05:03:00 UTC), id),
            format!("MY-SUB/2019/8/8/5/{id}.json")
        );
        assert_eq!(
            blob_name("S", datetime!(2026-12-31 23:59:59 +02:00), id),
            format!("S/2026/12/31/21/{id}.json")
        );
    }

    #[test]
    fn annotations_follow_the_schema_and_stripping_restores_the_event() {
        let last = LastAttempt {
            at_ms: 1_000,
            status: Some(500),
            outcome: "GenericError".into(),
        };
        let ending = Ending {
            reason: "MaxDeliveryAttemptsExceeded",
            attempts: 3,
            last: Some(&last),
            published_ms: 0,
        };
        let eg = br#"{"id":"1","eventType":"T","data":{"v":1.50}}"#;
        let annotated = annotate(eg, Schema::EventGrid, &ending);
        let value: serde_json::Value = serde_json::from_slice(&annotated).unwrap();
        assert_eq!(value["deadLetterReason"], "MaxDeliveryAttemptsExceeded");
        assert_eq!(value["deliveryAttempts"], 3);
        assert_eq!(value["lastDeliveryOutcome"], "GenericError");
        assert_eq!(value["lastHttpStatusCode"], 500);
        assert_eq!(value["publishTime"], "1970-01-01T00:00:00Z");
        assert_eq!(value["lastDeliveryAttemptTime"], "1970-01-01T00:00:01Z");
        let blob = blob_bytes(&[annotated.clone(), annotated]);
        let restored = events_of(&blob, Schema::EventGrid).unwrap();
        assert_eq!(restored.len(), 2);
        assert_eq!(
            &restored[0].body[..],
            &eg[..],
            "the event comes back as it was sent"
        );
        let ce = annotate(br#"{"id":"1"}"#, Schema::CloudEvents, &ending);
        let ce: serde_json::Value = serde_json::from_slice(&ce).unwrap();
        assert_eq!(ce["deadletterreason"], "MaxDeliveryAttemptsExceeded");
        assert!(ce.get("deadLetterReason").is_none());
        let empty = annotate(b"{}", Schema::EventGrid, &ending);
        assert!(empty.starts_with(br#"{"deadLetterReason""#), "{empty:?}");
    }
}
