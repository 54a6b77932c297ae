//! An event the emulator accepted, in the form every stage after the publish API uses: the
//! envelope fields delivery needs ([`EventHeader`]), the JSON text that is stored and delivered,
//! and, when a stage needs more than the envelope (an advanced filter, a dynamic delivery
//! property, a conversion to CloudEvents), that text parsed ([`Json`], numbers kept as text).
//!
//! Invariants:
//! - the publish API builds every [`Event`] from text it checked completely (syntax, UTF-8,
//!   nesting no deeper than [`MAX_EVENT_DEPTH`]); so the body is a JSON object that parses, and
//!   whatever is accepted can be matched, delivered and dead-lettered;
//! - the body keeps the text each value was sent as (numbers, string escapes), so what a
//!   subscriber receives is what the publisher sent, plus the fields Event Grid stamps;
//! - the body is parsed at most once per process, on first need, and the result is shared by
//!   every subscription (an `Event` is shared behind an `Arc`); most subscriptions need only the
//!   header, which the publish API reads and the spool stores beside the body.

use std::ops::Range;
use std::sync::OnceLock;

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

/// A top-level member of an event: its name, parsed value, and the value's text as stored.
pub type Member<'a> = (&'a str, &'a Json, &'a [u8]);

/// An accepted event. See the module docs.
#[derive(Debug)]
pub struct Event {
    pub header: EventHeader,
    /// The event as stored and delivered: a JSON object in its topic's input schema.
    pub body: Bytes,
    parsed: OnceLock<Result<Parsed, JsonError>>,
}

#[derive(Debug)]
struct Parsed {
    /// `body`, parsed: an object.
    tree: Json,
    /// Where the text of the tree's i-th member's value lies in `body`.
    spans: Vec<Range<usize>>,
}

impl Event {
    /// An event whose header is known (the publish API read it).
    pub fn new(header: EventHeader, body: Bytes) -> Self {
        Self {
            header,
            body,
            parsed: OnceLock::new(),
        }
    }

    /// Reads an event back from a stored body alone (a spool written before headers were
    /// stored), parsing it to find the header.
    pub fn from_body(schema: Schema, body: Bytes) -> Result<Self, JsonError> {
        let parsed = parse(&body)?;
        let event = Self::new(EventHeader::of(schema, &parsed.tree), body);
        let _ = event.parsed.set(Ok(parsed));
        Ok(event)
    }

    fn parsed(&self) -> Result<&Parsed, JsonError> {
        self.parsed
            .get_or_init(|| parse(&self.body))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The parsed event (an object), parsing the body on first use.
    pub fn tree(&self) -> Result<&Json, JsonError> {
        self.parsed().map(|p| &p.tree)
    }

    /// The value at `path` (names matched as [`Json::get`] matches them): from the tree if a
    /// stage parsed the body already, else read from the body without building the rest, which
    /// stays unparsed for the stages that do not need it.
    pub fn value_at(&self, path: &[&str]) -> Option<Json> {
        match self.parsed.get() {
            Some(parsed) => {
                let tree = &parsed.as_ref().ok()?.tree;
                path.iter()
                    .try_fold(tree, |value, name| value.get(name))
                    .cloned()
            }
            None => Json::value_at(&self.body, path, MAX_EVENT_DEPTH),
        }
    }

    /// Each top-level member: its name, parsed value, and the value's text as stored.
    pub fn members(&self) -> Result<Vec<Member<'_>>, JsonError> {
        let parsed = self.parsed()?;
        let Json::Object(members) = &parsed.tree else {
            return Ok(Vec::new());
        };
        Ok(members
            .iter()
            .zip(&parsed.spans)
            .map(|((name, value), span)| (&**name, value, &self.body[span.clone()]))
            .collect())
    }
}

fn parse(body: &[u8]) -> Result<Parsed, JsonError> {
    let mut parser = Parser::new(body, MAX_EVENT_DEPTH);
    let spanned = parser.object_with_spans()?;
    parser.end()?;
    Ok(Parsed {
        tree: spanned.object,
        spans: spanned.spans,
    })
}

impl EventHeader {
    /// The header of `tree`, an event in `schema`.
    pub fn of(schema: Schema, tree: &Json) -> Self {
        let (type_field, version_field) = Self::fields(schema);
        let text = |name: &str| tree.get(name).and_then(Json::as_str).map(Box::from);
        Self {
            id: text("id").unwrap_or_default(),
            event_type: text(type_field).unwrap_or_default(),
            subject: text("subject"),
            data_version: text(version_field),
        }
    }

    /// The names of the event type and data version fields in `schema`.
    pub fn fields(schema: Schema) -> (&'static str, &'static str) {
        match schema {
            Schema::EventGrid => ("eventType", "dataVersion"),
            Schema::CloudEvents => ("type", "dataversion"),
        }
    }
}

/// Builds an event's body member by member, keeping each value's text, and its header from the
/// members that are envelope fields.
pub struct EventBuilder {
    schema: Schema,
    body: Vec<u8>,
    header: EventHeader,
}

impl EventBuilder {
    pub fn new(schema: Schema) -> Self {
        Self {
            schema,
            body: Vec::new(),
            header: EventHeader {
                id: "".into(),
                event_type: "".into(),
                subject: None,
                data_version: None,
            },
        }
    }

    /// Adds a member whose value's text is `raw`; `text` is its content when it is a string
    /// (what the header needs of envelope fields).
    pub fn raw(&mut self, name: &str, text: Option<&str>, raw: &[u8]) -> &mut Self {
        let (type_field, version_field) = EventHeader::fields(self.schema);
        // Names compare exactly: the publish API has made the Event Grid schema's canonical.
        let slot = match name {
            "id" => Some(&mut self.header.id),
            n if n == type_field => Some(&mut self.header.event_type),
            _ => None,
        };
        if let (Some(slot), Some(text)) = (slot, text) {
            *slot = text.into();
        }
        if name == "subject" {
            self.header.subject = text.map(Box::from);
        }
        if name == version_field {
            self.header.data_version = text.map(Box::from);
        }
        self.body
            .push(if self.body.is_empty() { b'{' } else { b',' });
        write_string(name, &mut self.body);
        self.body.push(b':');
        self.body.extend_from_slice(raw);
        self
    }

    /// A string member.
    pub fn string(&mut self, name: &str, text: &str) -> &mut Self {
        let mut raw = Vec::with_capacity(text.len() + 2);
        write_string(text, &mut raw);
        self.raw(name, Some(text), &raw)
    }

    pub fn finish(mut self) -> Event {
        if self.body.is_empty() {
            self.body.push(b'{');
        }
        self.body.push(b'}');
        Event::new(self.header, Bytes::from(self.body))
    }
}

/// The text of the member `name` among `members` (as [`Event::members`] lists them): spelt
/// exactly (the last, if repeated), else the first spelt so ignoring case, as [`Json::get`]
/// finds it.
pub fn member<'a>(members: &[Member<'a>], name: &str) -> Option<(&'a Json, &'a [u8])> {
    members
        .iter()
        .rev()
        .find(|(key, _, _)| *key == name)
        .or_else(|| members.iter().find(|(key, _, _)| eq_ignore_case(key, name)))
        .map(|(_, value, raw)| (*value, *raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_at_a_path_is_the_same_before_and_after_the_body_is_parsed() {
        let body = br#"{"id":"1","data":{"orderId":"o-7","Data":0},"DATA":{"orderId":1.50}}"#;
        let event = Event::new(
            EventHeader::of(Schema::EventGrid, &Json::Null),
            Bytes::from_static(body),
        );
        let path = ["data", "orderId"];
        let unparsed = event.value_at(&path);
        assert!(
            event.parsed.get().is_none(),
            "reading one value parses nothing"
        );
        event.tree().unwrap();
        assert_eq!(event.value_at(&path), unparsed);
        assert_eq!(unparsed, Some(Json::String("o-7".into())));
        assert_eq!(event.value_at(&["missing"]), None);
    }

    #[test]
    fn built_events_read_back_the_same() {
        let mut builder = EventBuilder::new(Schema::EventGrid);
        builder
            .string("id", "1")
            .string("eventType", "NewOrder")
            .raw("data", None, b"{\"v\":1.50}")
            .string("dataVersion", "2.0");
        let built = builder.finish();
        assert_eq!(
            &built.body[..],
            br#"{"id":"1","eventType":"NewOrder","data":{"v":1.50},"dataVersion":"2.0"}"#
        );
        let members = built.members().unwrap();
        assert_eq!(member(&members, "DATA").unwrap().1, b"{\"v\":1.50}");
        let read = Event::from_body(Schema::EventGrid, built.body.clone()).unwrap();
        assert_eq!(read.header, built.header);
        assert_eq!(read.tree().unwrap(), built.tree().unwrap());
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

    #[test]
    fn the_body_is_parsed_once_on_first_need() {
        let mut builder = EventBuilder::new(Schema::EventGrid);
        builder.string("id", "1").raw("data", None, b"[1,2]");
        let event = builder.finish();
        assert!(event.parsed.get().is_none(), "not parsed until needed");
        let first = event.tree().unwrap() as *const Json;
        let second = event.tree().unwrap() as *const Json;
        assert_eq!(first, second);
    }
}
