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
use serde::Serialize;
use serde_json::value::{RawValue, to_raw_value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use blob::BlobSink;
pub use folder::FolderSink;

use super::spool::LastAttempt;
use crate::blob::BlobConnection;
use crate::eventgrid::{RawObject, Schema};

/// Where the emulator writes dead letters.
#[derive(Debug, Clone, Default)]
pub enum DeadLetterStorage {
    /// The folder `EmulatorSettings::dead_letter_dir` names.
    #[default]
    Folder,
    /// Blob containers (those the subscriptions file names) of a Storage account.
    Blob(BlobConnection),
}

/// A stored dead-letter blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterBlob {
    pub container: String,
    /// The name inside the container: `SUB/yyyy/M/d/H/guid.json`.
    pub name: String,
    /// The subscription, upper case, as the first path segment says.
    pub subscription: String,
}

#[async_trait]
pub trait DeadLetterSink: Send + Sync + 'static {
    /// Writes one blob holding `events`; returns its name inside the container.
    async fn write(
        &self,
        container: &str,
        subscription_upper: &str,
        events: &[RawObject],
        at: OffsetDateTime,
    ) -> Result<String, String>;

    /// Every blob, oldest name first.
    async fn list(&self) -> Result<Vec<DeadLetterBlob>, String>;

    async fn read(&self, container: &str, name: &str) -> Result<Vec<RawObject>, String>;

    async fn delete(&self, container: &str, name: &str) -> Result<(), String>;

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

fn raw(value: impl Serialize) -> Box<RawValue> {
    to_raw_value(&value)
        .unwrap_or_else(|_| RawValue::from_string("null".into()).unwrap_or_default())
}

/// The event with Azure's dead-letter properties added.
pub fn annotate(event: &RawObject, schema: Schema, ending: &Ending<'_>) -> RawObject {
    let mut object = event.clone();
    let time = |ms: i64| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
    };
    let names: [&str; 6] = match schema {
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
    };
    object.insert(names[0].into(), raw(ending.reason));
    object.insert(names[1].into(), raw(ending.attempts));
    object.insert(
        names[2].into(),
        raw(ending.last.map_or("NotAttempted", |l| l.outcome.as_str())),
    );
    if let Some(status) = ending.last.and_then(|l| l.status) {
        object.insert(names[3].into(), raw(status));
    }
    object.insert(names[4].into(), raw(time(ending.published_ms)));
    if let Some(last) = ending.last {
        object.insert(names[5].into(), raw(time(last.at_ms)));
    }
    object
}

/// The original event, without the dead-letter properties (for redelivery).
pub fn strip(event: &RawObject) -> RawObject {
    let mut object = event.clone();
    object.retain(|k, _| {
        !matches!(
            k.to_ascii_lowercase().as_str(),
            "deadletterreason"
                | "deliveryattempts"
                | "lastdeliveryoutcome"
                | "lasthttpstatuscode"
                | "publishtime"
                | "lastdeliveryattempttime"
        )
    });
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
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

    fn object(value: serde_json::Value) -> RawObject {
        serde_json::from_value(value).unwrap()
    }

    fn value(object: &RawObject) -> serde_json::Value {
        serde_json::to_value(object).unwrap()
    }

    #[test]
    fn annotations_follow_the_schema_and_strip_restores_the_event() {
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
        let eg = object(json!({"id": "1", "eventType": "T"}));
        let annotated = value(&annotate(&eg, Schema::EventGrid, &ending));
        assert_eq!(annotated["deadLetterReason"], "MaxDeliveryAttemptsExceeded");
        assert_eq!(annotated["deliveryAttempts"], 3);
        assert_eq!(annotated["lastDeliveryOutcome"], "GenericError");
        assert_eq!(annotated["lastHttpStatusCode"], 500);
        assert_eq!(annotated["publishTime"], "1970-01-01T00:00:00Z");
        assert_eq!(annotated["lastDeliveryAttemptTime"], "1970-01-01T00:00:01Z");
        assert_eq!(value(&strip(&object(annotated))), value(&eg));
        let ce = value(&annotate(
            &object(json!({"id": "1"})),
            Schema::CloudEvents,
            &ending,
        ));
        assert_eq!(ce["deadletterreason"], "MaxDeliveryAttemptsExceeded");
        assert!(ce.get("deadLetterReason").is_none());
    }
}
