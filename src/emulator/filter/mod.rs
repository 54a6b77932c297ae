//! Event filtering: does one event pass one subscription's `filter`?
//!
//! Responsibility: parse the ARM `filter` object of an event subscription (`includedEventTypes`,
//! `subjectBeginsWith`, `subjectEndsWith`, `isSubjectCaseSensitive`,
//! `enableAdvancedFilteringOnArrays`, `advancedFilters`) into a [`Filter`], enforcing Azure's
//! limits, and decide with [`Filter::matches`] whether an event passes it. Matching is pure: no
//! I/O, no clock, no allocation beyond lower-casing strings.
//!
//! Invariants:
//! - a [`Filter`] that exists is within Azure's limits: at most [`MAX_ADVANCED_FILTERS`] advanced
//!   filters, at most [`MAX_ADVANCED_FILTER_VALUES`] values across all of them, string values of
//!   at most [`MAX_STRING_VALUE_CHARS`] characters, ranges with `low <= high`, every operator with
//!   the value shape it needs; so matching never meets a malformed filter;
//! - [`Filter::default`] matches every event.
//!
//! Semantics follow "Understand event filtering for Event Grid subscriptions"
//! (learn.microsoft.com/azure/event-grid/event-filtering):
//! - event types, subject prefix/suffix and every advanced filter are AND'ed; the values of one
//!   advanced filter are OR'ed (for negative operators: none of them may hit);
//! - all string comparisons ignore case;
//! - a missing key is *not matched* for every operator except `NumberNotIn`, `StringNotIn`,
//!   `NumberNotInRange` and `IsNullOrUndefined`;
//! - with `enableAdvancedFilteringOnArrays`, an array is tested element by element with the
//!   documented pseudo-code: a positive operator matches when any element hits any value, a
//!   negative operator fails when any element hits any value; elements of another type than the
//!   operator's (including objects and nested arrays) are ignored. Without the flag an array value
//!   never matches ("the matching operation fails").
//!
//! Where the docs are silent, this module decides, and says so where it decides:
//! - `includedEventTypes` is compared ignoring case; `All` (any case) means every type;
//! - `NumberInRange` is not matched and `NumberNotInRange` is matched on a missing key: they are
//!   the range forms of `NumberIn` / `NumberNotIn`, whose missing-key results are documented;
//! - a JSON `null` counts as missing for every operator, as `IsNullOrUndefined` groups the two;
//! - a value of the wrong type (a string for a `Number*` operator, a number for a `String*`
//!   operator, anything but a bool for `BoolEquals`) is ignored, as an array element of the wrong
//!   type is: positive operators do not match it, negative operators (which assert absence) do.
//!   The one exception is documented: CloudEvents context attributes (top-level keys other than
//!   `data`) are compared as their canonical string form by `String*` operators, so the docs'
//!   example `StringBeginsWith ["5"]` on the extension `"comexampleothervalue": 5` matches;
//! - `IsNullOrUndefined` / `IsNotNull` look only at presence: an array or object is not null,
//!   with or without the array flag;
//! - key names match exactly first, then ignoring case (the docs write `Data.Key1`, `ID`,
//!   `Subject`); a `.` always separates segments, as Azure has no escaping;
//! - numbers compare exactly, as the decimal values their text says, whatever their size or
//!   number of digits (the event's numbers stay text from the publish API on). Azure's docs do
//!   not say how it compares numbers beyond what a double holds.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use crate::eventgrid::Schema;
use crate::json::{Json, Number, eq_ignore_case};

/// "25 advanced filters … per Event Grid subscription".
pub const MAX_ADVANCED_FILTERS: usize = 25;
/// "… and 25 filter values across all the filters per Event Grid subscription". A range of
/// `NumberInRange` counts as one value, a single `value` as one, the null checks as none.
pub const MAX_ADVANCED_FILTER_VALUES: usize = 25;
/// "512 characters per string value".
pub const MAX_STRING_VALUE_CHARS: usize = 512;

/// A subscription's event filter. The default matches every event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Empty means every event type (also when the file said `All`).
    included_event_types: Vec<String>,
    subject_begins_with: Option<String>,
    subject_ends_with: Option<String>,
    subject_case_sensitive: bool,
    filter_arrays: bool,
    advanced: Vec<AdvancedFilter>,
}

/// One entry of `advancedFilters`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvancedFilter {
    operator: OperatorType,
    key: Key,
    check: Check,
}

/// The 19 advanced filter operators, spelt as in ARM's `operatorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorType {
    NumberIn,
    NumberNotIn,
    NumberLessThan,
    NumberGreaterThan,
    NumberLessThanOrEquals,
    NumberGreaterThanOrEquals,
    NumberInRange,
    NumberNotInRange,
    BoolEquals,
    StringIn,
    StringNotIn,
    StringBeginsWith,
    StringNotBeginsWith,
    StringEndsWith,
    StringNotEndsWith,
    StringContains,
    StringNotContains,
    IsNullOrUndefined,
    IsNotNull,
}

/// What an operator expects in the filter: `value`, `values`, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    OneNumber,
    OneBool,
    Numbers,
    Ranges,
    Strings,
    Nothing,
}

impl OperatorType {
    pub const ALL: [OperatorType; 19] = [
        Self::NumberIn,
        Self::NumberNotIn,
        Self::NumberLessThan,
        Self::NumberGreaterThan,
        Self::NumberLessThanOrEquals,
        Self::NumberGreaterThanOrEquals,
        Self::NumberInRange,
        Self::NumberNotInRange,
        Self::BoolEquals,
        Self::StringIn,
        Self::StringNotIn,
        Self::StringBeginsWith,
        Self::StringNotBeginsWith,
        Self::StringEndsWith,
        Self::StringNotEndsWith,
        Self::StringContains,
        Self::StringNotContains,
        Self::IsNullOrUndefined,
        Self::IsNotNull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NumberIn => "NumberIn",
            Self::NumberNotIn => "NumberNotIn",
            Self::NumberLessThan => "NumberLessThan",
            Self::NumberGreaterThan => "NumberGreaterThan",
            Self::NumberLessThanOrEquals => "NumberLessThanOrEquals",
            Self::NumberGreaterThanOrEquals => "NumberGreaterThanOrEquals",
            Self::NumberInRange => "NumberInRange",
            Self::NumberNotInRange => "NumberNotInRange",
            Self::BoolEquals => "BoolEquals",
            Self::StringIn => "StringIn",
            Self::StringNotIn => "StringNotIn",
            Self::StringBeginsWith => "StringBeginsWith",
            Self::StringNotBeginsWith => "StringNotBeginsWith",
            Self::StringEndsWith => "StringEndsWith",
            Self::StringNotEndsWith => "StringNotEndsWith",
            Self::StringContains => "StringContains",
            Self::StringNotContains => "StringNotContains",
            Self::IsNullOrUndefined => "IsNullOrUndefined",
            Self::IsNotNull => "IsNotNull",
        }
    }

    /// The operator spelt exactly as ARM spells it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == text)
    }

    /// The documented result when the key is missing (or null, see the module docs).
    pub fn matches_missing_key(self) -> bool {
        matches!(
            self,
            Self::NumberNotIn
                | Self::StringNotIn
                | Self::NumberNotInRange
                | Self::IsNullOrUndefined
        )
    }

    /// Negative operators fail when any (element of the) value hits any filter value.
    fn is_negative(self) -> bool {
        matches!(
            self,
            Self::NumberNotIn
                | Self::NumberNotInRange
                | Self::StringNotIn
                | Self::StringNotBeginsWith
                | Self::StringNotEndsWith
                | Self::StringNotContains
        )
    }

    fn shape(self) -> Shape {
        match self {
            Self::NumberLessThan
            | Self::NumberGreaterThan
            | Self::NumberLessThanOrEquals
            | Self::NumberGreaterThanOrEquals => Shape::OneNumber,
            Self::BoolEquals => Shape::OneBool,
            Self::NumberIn | Self::NumberNotIn => Shape::Numbers,
            Self::NumberInRange | Self::NumberNotInRange => Shape::Ranges,
            Self::StringIn
            | Self::StringNotIn
            | Self::StringBeginsWith
            | Self::StringNotBeginsWith
            | Self::StringEndsWith
            | Self::StringNotEndsWith
            | Self::StringContains
            | Self::StringNotContains => Shape::Strings,
            Self::IsNullOrUndefined | Self::IsNotNull => Shape::Nothing,
        }
    }
}

impl fmt::Display for OperatorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A filter key split at `.`; every segment is non-empty.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    text: String,
    segments: Vec<String>,
}

/// What the operator tests one (element of a) value against.
#[derive(Debug, Clone, PartialEq)]
enum Check {
    Presence,
    NumberEquals(Vec<Number>),
    LessThan(Number),
    GreaterThan(Number),
    LessThanOrEquals(Number),
    GreaterThanOrEquals(Number),
    InRange(Vec<(Number, Number)>),
    BoolEquals(bool),
    /// The filter values are stored lower-cased, so matching lower-cases only the event side.
    Text(TextTest, Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextTest {
    Equals,
    BeginsWith,
    EndsWith,
    Contains,
}

impl Filter {
    /// Parses the `filter` object of an event subscription. Every problem is reported, each as
    /// one line naming its property path (`filter.advancedFilters[0].values[1]`) and quoting the
    /// offending value.
    pub fn from_json(value: &Value) -> Result<Self, FilterError> {
        let mut problems = Vec::new();
        let filter = parse_filter(value, "filter", &mut problems);
        if problems.is_empty() {
            Ok(filter)
        } else {
            Err(FilterError { problems })
        }
    }

    /// Whether `event` (one event object as published to the topic, in the topic's input
    /// `schema`) passes this filter.
    pub fn matches(&self, event: &Json, schema: Schema) -> bool {
        let event_type = match schema {
            Schema::EventGrid => "eventType",
            Schema::CloudEvents => "type",
        };
        self.matches_event_type(event.get(event_type).and_then(Json::as_str))
            && self.matches_subject(event.get("subject").and_then(Json::as_str))
            && self.matches_advanced(event, schema)
    }

    /// Whether an event with this type and subject passes the event type and subject filters
    /// (its envelope is all they look at).
    pub fn matches_envelope(&self, event_type: &str, subject: Option<&str>) -> bool {
        self.matches_event_type(Some(event_type)) && self.matches_subject(subject)
    }

    /// Whether the event passes the advanced filters (which look into it).
    pub fn matches_advanced(&self, event: &Json, schema: Schema) -> bool {
        self.advanced
            .iter()
            .all(|filter| filter.matches(event, schema, self.filter_arrays))
    }

    /// True when the filter lets every event through.
    pub fn is_match_all(&self) -> bool {
        self.included_event_types.is_empty()
            && self
                .subject_begins_with
                .as_deref()
                .is_none_or(str::is_empty)
            && self.subject_ends_with.as_deref().is_none_or(str::is_empty)
            && self.advanced.is_empty()
    }

    /// The event types let through; empty means all.
    pub fn included_event_types(&self) -> &[String] {
        &self.included_event_types
    }

    pub fn advanced_filters(&self) -> &[AdvancedFilter] {
        &self.advanced
    }

    fn matches_event_type(&self, event_type: Option<&str>) -> bool {
        if self.included_event_types.is_empty() {
            return true;
        }
        let Some(event_type) = event_type else {
            return false;
        };
        self.included_event_types
            .iter()
            .any(|wanted| eq_ignore_case(wanted, event_type))
    }

    fn matches_subject(&self, subject: Option<&str>) -> bool {
        if self.subject_begins_with.is_none() && self.subject_ends_with.is_none() {
            return true;
        }
        // A CloudEvent may omit `subject`; only an empty prefix/suffix matches it then.
        let subject = subject.unwrap_or("");
        // The prefix and suffix were lower-cased at parse time unless case-sensitive.
        let subject = if self.subject_case_sensitive {
            Cow::Borrowed(subject)
        } else {
            Cow::Owned(subject.to_lowercase())
        };
        self.subject_begins_with
            .as_deref()
            .is_none_or(|prefix| subject.starts_with(prefix))
            && self
                .subject_ends_with
                .as_deref()
                .is_none_or(|suffix| subject.ends_with(suffix))
    }
}

impl AdvancedFilter {
    pub fn operator(&self) -> OperatorType {
        self.operator
    }

    pub fn key(&self) -> &str {
        &self.key.text
    }

    fn matches(&self, event: &Json, schema: Schema, filter_arrays: bool) -> bool {
        let found = resolve(event, schema, &self.key).filter(|value| **value != Json::Null);
        let Some(value) = found else {
            return self.operator.matches_missing_key();
        };
        if self.check == Check::Presence {
            return self.operator == OperatorType::IsNotNull;
        }
        let stringify = schema == Schema::CloudEvents && self.key.is_context_attribute();
        let hit = match value {
            Json::Array(_) if !filter_arrays => return false,
            Json::Array(items) => items.iter().any(|item| self.check.hits(item, stringify)),
            single => self.check.hits(single, stringify),
        };
        hit != self.operator.is_negative()
    }
}

impl Key {
    /// A top-level CloudEvents attribute (`source`, `type`, extensions), not `data` or below.
    fn is_context_attribute(&self) -> bool {
        self.segments.len() == 1 && !eq_ignore_case(&self.segments[0], "data")
    }
}

impl Check {
    /// Whether one scalar hits any filter value; values of another type never hit.
    fn hits(&self, item: &Json, stringify: bool) -> bool {
        let compare = |limit: &Number| number(item).map(|n| n.exact_cmp(limit));
        match self {
            Check::Presence => false,
            Check::NumberEquals(values) => number(item)
                .is_some_and(|n| values.iter().any(|v| n.exact_cmp(v) == Ordering::Equal)),
            Check::LessThan(limit) => compare(limit) == Some(Ordering::Less),
            Check::GreaterThan(limit) => compare(limit) == Some(Ordering::Greater),
            Check::LessThanOrEquals(limit) => compare(limit).is_some_and(Ordering::is_le),
            Check::GreaterThanOrEquals(limit) => compare(limit).is_some_and(Ordering::is_ge),
            Check::InRange(ranges) => number(item).is_some_and(|n| {
                ranges
                    .iter()
                    .any(|(low, high)| n.exact_cmp(low).is_ge() && n.exact_cmp(high).is_le())
            }),
            Check::BoolEquals(wanted) => *item == Json::Bool(*wanted),
            Check::Text(test, values) => {
                let Some(text) = lowercase_text(item, stringify) else {
                    return false;
                };
                values.iter().any(|value| match test {
                    TextTest::Equals => text == *value,
                    TextTest::BeginsWith => text.starts_with(value.as_str()),
                    TextTest::EndsWith => text.ends_with(value.as_str()),
                    TextTest::Contains => text.contains(value.as_str()),
                })
            }
        }
    }
}

/// A JSON number. A string holding digits is not a number: the operator's type decides, and
/// values of other types are ignored.
fn number(item: &Json) -> Option<&Number> {
    match item {
        Json::Number(n) => Some(n),
        _ => None,
    }
}

/// A string value lower-cased for comparison, or `None` for other types.
fn lowercase_text(item: &Json, stringify: bool) -> Option<String> {
    match item {
        Json::String(text) => Some(text.to_lowercase()),
        // CloudEvents attributes have a canonical string form (CE 1.0, "Type System"); a number
        // is compared as the text it was sent as.
        Json::Number(n) if stringify => Some(n.as_str().to_owned()),
        Json::Bool(b) if stringify => Some(b.to_string()),
        _ => None,
    }
}

/// The Event Grid schema envelope fields a key may name (plus `data`), per the docs.
const EVENT_GRID_KEYS: [&str; 6] = ["id", "topic", "subject", "eventType", "dataVersion", "data"];

/// Finds the value a key names in an event, or `None` when any segment is missing. Names match
/// exactly first, then ignoring case ([`Json::get`]).
fn resolve<'e>(event: &'e Json, schema: Schema, key: &Key) -> Option<&'e Json> {
    let (first, rest) = key.segments.split_first()?;
    let top = match schema {
        // Only the documented envelope fields: `eventTime` and `metadataVersion` are not keys.
        Schema::EventGrid => {
            let field = EVENT_GRID_KEYS
                .iter()
                .find(|field| eq_ignore_case(field, first))?;
            event.get(field)?
        }
        // Any context attribute, extensions included.
        Schema::CloudEvents => event.get(first)?,
    };
    rest.iter()
        .try_fold(top, |value, segment| value.get(segment))
}

mod parse;
#[cfg(test)]
mod tests;

pub use parse::FilterError;
use parse::parse_filter;
