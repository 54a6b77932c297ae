//! An event the emulator accepted, in the form every stage after the publish API uses: the
//! envelope fields delivery needs ([`EventHeader`]), the JSON text that is stored and delivered,
//! and that text parsed once ([`Json`], numbers kept as text) for filters and delivery properties.
//!
//! Invariants:
//! - the publish API builds every [`Event`]; whatever it builds can be delivered, matched and
//!   dead-lettered without failing: the body is a JSON object no deeper than
//!   [`MAX_EVENT_DEPTH`], and the header holds its envelope fields;
//! - the body keeps the text each value was sent as (numbers, string escapes), so what a
//!   subscriber receives is what the publisher sent, plus the fields Event Grid stamps;
//! - the spool stores the header beside the body, so retries, dead letters and the admin views
//!   need no parsing; only matching a filter needs the tree, which an event read back from disk
//!   (after a restart) gets by parsing its body once.

use std::ops::Range;

use bytes::Bytes;

use crate::eventgrid::Schema;
use crate::json::{Json, JsonError, MAX_EVENT_DEPTH, Parser, eq_ignore_case, write_string};

/// The envelope fields of an accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    pub id: Box<str>,
    /// `eventType` (Event Grid schema) or `type` (CloudEvents).
    pub event_type: Box<str>,
    pub subject: Option<Box<str>>,
    /// `dataVersion` (Event Grid schema) or the `dataversion` extension (CloudEvents).
    pub data_version: Option<Box<str>>,
}

/// An accepted event. See the module docs.
#[derive(Debug)]
pub struct Event {
    pub header: EventHeader,
    /// The event as stored and delivered: a JSON object in its topic's input schema.
    pub body: Bytes,
    /// `body`, parsed: an object.
    tree: Json,
    /// Where the text of the tree's i-th member's value lies in `body`.
    spans: Vec<Range<usize>>,
}

impl Event {
    /// Reads an event back from its stored body (for events not parsed in this process).
    pub fn from_body(schema: Schema, body: Bytes) -> Result<Self, JsonError> {
        let mut parser = Parser::new(&body, MAX_EVENT_DEPTH);
        let spanned = parser.object_with_spans()?;
        parser.end()?;
        let header = EventHeader::of(schema, &spanned.object);
        Ok(Self {
            header,
            tree: spanned.object,
            spans: spanned.spans,
            body,
        })
    }

    /// The parsed event: a JSON object.
    pub fn tree(&self) -> &Json {
        &self.tree
    }

    fn object(&self) -> &[(Box<str>, Json)] {
        match &self.tree {
            Json::Object(members) => members,
            _ => &[],
        }
    }

    /// Each top-level member: its name, parsed value, and the value's text as stored.
    pub fn members(&self) -> impl Iterator<Item = (&str, &Json, &[u8])> {
        self.object()
            .iter()
            .zip(&self.spans)
            .map(|((name, value), span)| (&**name, value, &self.body[span.clone()]))
    }

    /// The text of the top-level member `name`, as stored: spelt exactly (the last, if
    /// repeated), else the first spelt so ignoring case, as [`Json::get`] finds it.
    pub fn raw(&self, name: &str) -> Option<&[u8]> {
        let members = self.object();
        let index = members
            .iter()
            .rposition(|(key, _)| &**key == name)
            .or_else(|| {
                members
                    .iter()
                    .position(|(key, _)| eq_ignore_case(key, name))
            })?;
        Some(&self.body[self.spans[index].clone()])
    }
}

impl EventHeader {
    /// The header of `tree`, an event in `schema`.
    pub fn of(schema: Schema, tree: &Json) -> Self {
        let text = |name: &str| tree.get(name).and_then(Json::as_str).map(Box::from);
        let (type_field, version_field) = match schema {
            Schema::EventGrid => ("eventType", "dataVersion"),
            Schema::CloudEvents => ("type", "dataversion"),
        };
        Self {
            id: text("id").unwrap_or_default(),
            event_type: text(type_field).unwrap_or_default(),
            subject: text("subject"),
            data_version: text(version_field),
        }
    }
}

/// Builds an event's body member by member, keeping each value's text.
#[derive(Default)]
pub struct EventBuilder {
    body: Vec<u8>,
    members: Vec<(Box<str>, Json)>,
    spans: Vec<Range<usize>>,
}

impl EventBuilder {
    /// Adds a member whose value is `raw`, the text `value` was parsed from.
    pub fn raw(&mut self, name: &str, value: Json, raw: &[u8]) -> &mut Self {
        self.body
            .push(if self.members.is_empty() { b'{' } else { b',' });
        write_string(name, &mut self.body);
        self.body.push(b':');
        let start = self.body.len();
        self.body.extend_from_slice(raw);
        self.spans.push(start..self.body.len());
        self.members.push((name.into(), value));
        self
    }

    /// Adds a member, writing `value` as JSON text.
    pub fn value(&mut self, name: &str, value: Json) -> &mut Self {
        let raw = value.to_vec();
        self.raw(name, value, &raw)
    }

    /// A string member.
    pub fn string(&mut self, name: &str, text: &str) -> &mut Self {
        self.value(name, Json::String(text.into()))
    }

    pub fn len(&self) -> usize {
        self.body.len() + 1
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn finish(mut self, schema: Schema) -> Event {
        if self.members.is_empty() {
            self.body.push(b'{');
        }
        self.body.push(b'}');
        let tree = Json::Object(self.members);
        Event {
            header: EventHeader::of(schema, &tree),
            body: Bytes::from(self.body),
            tree,
            spans: self.spans,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_events_read_back_the_same() {
        let mut builder = EventBuilder::default();
        builder
            .string("id", "1")
            .string("eventType", "NewOrder")
            .raw(
                "data",
                Json::parse(b"{\"v\":1.50}", 8).unwrap(),
                b"{\"v\":1.50}",
            )
            .string("dataVersion", "2.0");
        let built = builder.finish(Schema::EventGrid);
        assert_eq!(
            &built.body[..],
            br#"{"id":"1","eventType":"NewOrder","data":{"v":1.50},"dataVersion":"2.0"}"#
        );
        assert_eq!(built.raw("DATA"), Some(&b"{\"v\":1.50}"[..]));
        let read = Event::from_body(Schema::EventGrid, built.body.clone()).unwrap();
        assert_eq!(read.header, built.header);
        assert_eq!(read.tree(), built.tree());
        assert_eq!(read.header.data_version.as_deref(), Some("2.0"));
        assert_eq!(read.header.subject, None);
    }

    #[test]
    fn cloud_event_headers_come_from_their_attributes() {
        let body = Bytes::from_static(
            br#"{"specversion":"1.0","id":"e","type":"T","source":"/s","subject":"x","dataversion":"3"}"#,
        );
        let event = Event::from_body(Schema::CloudEvents, body).unwrap();
        assert_eq!(&*event.header.event_type, "T");
        assert_eq!(event.header.subject.as_deref(), Some("x"));
        assert_eq!(event.header.data_version.as_deref(), Some("3"));
    }
}
