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

use serde_json::{Map, Value};

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

/// Everything wrong with one `filter` object, one line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub problems: Vec<String>,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for FilterError {}

const FILTER_PROPERTIES: &[&str] = &[
    "includedEventTypes",
    "subjectBeginsWith",
    "subjectEndsWith",
    "isSubjectCaseSensitive",
    "enableAdvancedFilteringOnArrays",
    "advancedFilters",
];
const ADVANCED_FILTER_PROPERTIES: &[&str] = &["operatorType", "key", "value", "values"];

fn parse_filter(value: &Value, path: &str, problems: &mut Vec<String>) -> Filter {
    let mut filter = Filter::default();
    let Some(object) = value.as_object() else {
        problems.push(format!("{path} is {}; expected an object", describe(value)));
        return filter;
    };
    check_properties(object, FILTER_PROPERTIES, path, problems);

    if let Some(types) = object.get("includedEventTypes") {
        let types_path = join(path, "includedEventTypes");
        filter.included_event_types = strings(types, &types_path, problems);
        if filter
            .included_event_types
            .iter()
            .any(|t| eq_ignore_case(t, "All"))
        {
            filter.included_event_types.clear();
        }
    }
    filter.subject_begins_with = optional_string(object, "subjectBeginsWith", path, problems);
    filter.subject_ends_with = optional_string(object, "subjectEndsWith", path, problems);
    filter.subject_case_sensitive =
        optional_bool(object, "isSubjectCaseSensitive", path, problems).unwrap_or(false);
    if !filter.subject_case_sensitive {
        // Compared against the lower-cased subject, so lower-case them once here.
        let affixes = [
            &mut filter.subject_begins_with,
            &mut filter.subject_ends_with,
        ];
        for text in affixes.into_iter().flatten() {
            *text = text.to_lowercase();
        }
    }
    filter.filter_arrays =
        optional_bool(object, "enableAdvancedFilteringOnArrays", path, problems).unwrap_or(false);

    if let Some(advanced) = object.get("advancedFilters") {
        let advanced_path = join(path, "advancedFilters");
        match advanced.as_array() {
            None => problems.push(format!(
                "{advanced_path} is {}; expected a list",
                describe(advanced)
            )),
            Some(entries) => {
                if entries.len() > MAX_ADVANCED_FILTERS {
                    problems.push(format!(
                        "{advanced_path} has {} filters; Azure allows at most {MAX_ADVANCED_FILTERS}",
                        entries.len()
                    ));
                }
                let mut total_values = 0;
                for (i, entry) in entries.iter().enumerate() {
                    let entry_path = format!("{advanced_path}[{i}]");
                    if let Some((parsed, count)) = parse_advanced(entry, &entry_path, problems) {
                        total_values += count;
                        filter.advanced.push(parsed);
                    }
                }
                if total_values > MAX_ADVANCED_FILTER_VALUES {
                    problems.push(format!(
                        "{advanced_path} has {total_values} values in total; Azure allows at most \
                         {MAX_ADVANCED_FILTER_VALUES} across all advanced filters of a subscription"
                    ));
                }
            }
        }
    }
    filter
}

/// One advanced filter and how many values it counts toward the limit.
fn parse_advanced(
    value: &Value,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<(AdvancedFilter, usize)> {
    let Some(object) = value.as_object() else {
        problems.push(format!("{path} is {}; expected an object", describe(value)));
        return None;
    };
    check_properties(object, ADVANCED_FILTER_PROPERTIES, path, problems);
    let key = parse_key(object, path, problems);

    let operator_path = join(path, "operatorType");
    let operator = match object.get("operatorType") {
        None => {
            problems.push(format!("{operator_path} is missing"));
            None
        }
        Some(Value::String(text)) => {
            let parsed = OperatorType::parse(text);
            if parsed.is_none() {
                let hint = OperatorType::ALL
                    .into_iter()
                    .find(|op| eq_ignore_case(op.as_str(), text))
                    .map(|op| format!(" (did you mean \"{op}\"?)"))
                    .unwrap_or_default();
                let valid: Vec<&str> = OperatorType::ALL.iter().map(|op| op.as_str()).collect();
                problems.push(format!(
                    "{operator_path} is {}{hint}; valid operators are {}",
                    quote(text),
                    valid.join(", ")
                ));
            }
            parsed
        }
        Some(other) => {
            problems.push(format!(
                "{operator_path} is {}; expected a string",
                describe(other)
            ));
            None
        }
    }?;

    let (check, count) = parse_operand(operator, object, path, problems)?;
    Some((
        AdvancedFilter {
            operator,
            key: key?,
            check,
        },
        count,
    ))
}

fn parse_key(object: &Map<String, Value>, path: &str, problems: &mut Vec<String>) -> Option<Key> {
    let key_path = join(path, "key");
    match object.get("key") {
        None => {
            problems.push(format!("{key_path} is missing"));
            None
        }
        Some(Value::String(text)) => {
            if text.trim().is_empty() {
                problems.push(format!(
                    "{key_path} is {}; a key must not be empty",
                    quote(text)
                ));
                return None;
            }
            let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
            if segments.iter().any(String::is_empty) {
                problems.push(format!(
                    "{key_path} is {}; a key is property names joined by \".\" \
                     (like \"data.key1\"), none of them empty",
                    quote(text)
                ));
                return None;
            }
            Some(Key {
                text: text.clone(),
                segments,
            })
        }
        Some(other) => {
            problems.push(format!(
                "{key_path} is {}; expected a string",
                describe(other)
            ));
            None
        }
    }
}

/// The `value` / `values` of an operator, checked against the shape it needs.
fn parse_operand(
    operator: OperatorType,
    object: &Map<String, Value>,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<(Check, usize)> {
    let shape = operator.shape();
    let single = matches!(shape, Shape::OneNumber | Shape::OneBool);
    let (wanted, unwanted): (&[&str], &[&str]) = match shape {
        Shape::Nothing => (&[], &["value", "values"]),
        _ if single => (&["value"], &["values"]),
        _ => (&["values"], &["value"]),
    };
    let before = problems.len();
    for name in unwanted {
        if object.contains_key(*name) {
            let expected = match shape {
                Shape::Nothing => "no value".to_owned(),
                _ if single => "a single \"value\"".to_owned(),
                _ => "a list in \"values\"".to_owned(),
            };
            problems.push(format!(
                "{} is set, but {operator} takes {expected}",
                join(path, name)
            ));
        }
    }
    if shape == Shape::Nothing {
        return (problems.len() == before).then_some((Check::Presence, 0));
    }
    let operand_path = join(path, wanted[0]);
    let Some(operand) = object.get(wanted[0]) else {
        problems.push(format!("{operand_path} is missing; {operator} needs it"));
        return None;
    };

    let check = match shape {
        Shape::OneNumber => {
            let n = expect_number(operand, &operand_path, problems)?;
            match operator {
                OperatorType::NumberLessThan => Check::LessThan(n),
                OperatorType::NumberGreaterThan => Check::GreaterThan(n),
                OperatorType::NumberLessThanOrEquals => Check::LessThanOrEquals(n),
                _ => Check::GreaterThanOrEquals(n),
            }
        }
        Shape::OneBool => match operand {
            Value::Bool(b) => Check::BoolEquals(*b),
            other => {
                problems.push(format!(
                    "{operand_path} is {}; expected true or false",
                    describe(other)
                ));
                return None;
            }
        },
        Shape::Numbers => {
            let items = expect_list(operand, &operand_path, problems)?;
            let numbers: Vec<Option<Number>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| expect_number(item, &format!("{operand_path}[{i}]"), problems))
                .collect();
            Check::NumberEquals(numbers.into_iter().collect::<Option<_>>()?)
        }
        Shape::Ranges => {
            let items = expect_list(operand, &operand_path, problems)?;
            let ranges: Vec<Option<(Number, Number)>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| expect_range(item, &format!("{operand_path}[{i}]"), problems))
                .collect();
            Check::InRange(ranges.into_iter().collect::<Option<_>>()?)
        }
        Shape::Strings => {
            let items = expect_list(operand, &operand_path, problems)?;
            let texts: Vec<Option<String>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    expect_filter_string(item, &format!("{operand_path}[{i}]"), problems)
                })
                .collect();
            let texts: Vec<String> = texts.into_iter().collect::<Option<_>>()?;
            let test = match operator {
                OperatorType::StringIn | OperatorType::StringNotIn => TextTest::Equals,
                OperatorType::StringBeginsWith | OperatorType::StringNotBeginsWith => {
                    TextTest::BeginsWith
                }
                OperatorType::StringEndsWith | OperatorType::StringNotEndsWith => {
                    TextTest::EndsWith
                }
                _ => TextTest::Contains,
            };
            Check::Text(test, texts.iter().map(|t| t.to_lowercase()).collect())
        }
        Shape::Nothing => return None,
    };
    let count = match &check {
        Check::NumberEquals(values) => values.len(),
        Check::InRange(ranges) => ranges.len(),
        Check::Text(_, values) => values.len(),
        _ => 1,
    };
    (problems.len() == before).then_some((check, count))
}

fn expect_list<'v>(
    value: &'v Value,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<&'v [Value]> {
    match value {
        Value::Array(items) if items.is_empty() => {
            problems.push(format!("{path} is []; give at least one value"));
            None
        }
        Value::Array(items) => Some(items),
        other => {
            problems.push(format!("{path} is {}; expected a list", describe(other)));
            None
        }
    }
}

/// A filter value from the subscriptions file. serde_json reads it through `f64` (as ARM's own
/// JSON reader would a double), so values beyond 17 significant digits are rounded here.
fn file_number(value: &Value) -> Option<Number> {
    value
        .as_number()
        .and_then(|n| Number::parse(&n.to_string()))
}

fn expect_number(value: &Value, path: &str, problems: &mut Vec<String>) -> Option<Number> {
    let n = file_number(value);
    if n.is_none() {
        problems.push(format!("{path} is {}; expected a number", describe(value)));
    }
    n
}

fn expect_range(value: &Value, path: &str, problems: &mut Vec<String>) -> Option<(Number, Number)> {
    let bounds = match value.as_array().map(Vec::as_slice) {
        Some([low, high]) => file_number(low).zip(file_number(high)),
        _ => None,
    };
    match bounds {
        None => {
            problems.push(format!(
                "{path} is {}; expected a range [low, high] of two numbers",
                describe(value)
            ));
            None
        }
        Some((low, high)) if low.exact_cmp(&high).is_gt() => {
            problems.push(format!(
                "{path} is {}; the low end must not exceed the high end",
                describe(value)
            ));
            None
        }
        Some(range) => Some(range),
    }
}

fn expect_filter_string(value: &Value, path: &str, problems: &mut Vec<String>) -> Option<String> {
    match value {
        Value::String(text) if text.chars().count() > MAX_STRING_VALUE_CHARS => {
            problems.push(format!(
                "{path} is {} ({} characters); Azure allows at most {MAX_STRING_VALUE_CHARS}",
                describe(value),
                text.chars().count()
            ));
            None
        }
        Value::String(text) => Some(text.clone()),
        other => {
            problems.push(format!("{path} is {}; expected a string", describe(other)));
            None
        }
    }
}

/// A list of strings (`includedEventTypes`); bad entries are reported and skipped.
fn strings(value: &Value, path: &str, problems: &mut Vec<String>) -> Vec<String> {
    let Some(items) = value.as_array() else {
        problems.push(format!(
            "{path} is {}; expected a list of strings",
            describe(value)
        ));
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| match item {
            Value::String(text) => Some(text.clone()),
            other => {
                problems.push(format!(
                    "{path}[{i}] is {}; expected a string",
                    describe(other)
                ));
                None
            }
        })
        .collect()
}

fn optional_string(
    object: &Map<String, Value>,
    name: &str,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    match object.get(name)? {
        Value::String(text) => Some(text.clone()),
        // ARM treats an explicit null as "not set".
        Value::Null => None,
        other => {
            problems.push(format!(
                "{} is {}; expected a string",
                join(path, name),
                describe(other)
            ));
            None
        }
    }
}

fn optional_bool(
    object: &Map<String, Value>,
    name: &str,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<bool> {
    match object.get(name)? {
        Value::Bool(b) => Some(*b),
        Value::Null => None,
        other => {
            problems.push(format!(
                "{} is {}; expected true or false",
                join(path, name),
                describe(other)
            ));
            None
        }
    }
}

// ---- helpers shared with `subscriptions`, which reads the rest of the file the same way ----

/// `parent.child`, or `child` at the root.
pub(super) fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// A value as JSON text for an error message, shortened when long.
pub(super) fn describe(value: &Value) -> String {
    const LIMIT: usize = 80;
    let text = value.to_string();
    if text.chars().count() <= LIMIT {
        text
    } else {
        let head: String = text.chars().take(LIMIT).collect();
        format!("{head}…")
    }
}

/// A string as a JSON string literal for an error message: escaped, and shortened when long.
pub(super) fn quote(text: &str) -> String {
    describe(&Value::String(text.to_owned()))
}

/// Reports every property of `object` not in `known`, so a typo is never silently ignored.
pub(super) fn check_properties(
    object: &Map<String, Value>,
    known: &[&str],
    path: &str,
    problems: &mut Vec<String>,
) {
    for name in object.keys() {
        if known.contains(&name.as_str()) {
            continue;
        }
        let hint = known
            .iter()
            .find(|candidate| {
                eq_ignore_case(candidate, name) || edit_distance(candidate, name) <= 2
            })
            .map(|candidate| format!(" (did you mean \"{candidate}\"?)"))
            .unwrap_or_default();
        // At a topic's or subscription's own level the context already says where.
        let place = if path.is_empty() {
            String::new()
        } else {
            format!(" in {path}")
        };
        problems.push(format!(
            "unknown property {}{place}{hint}; known properties are {}",
            quote(name),
            known.join(", ")
        ));
    }
}

/// Levenshtein distance, for "did you mean" hints on short property names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(filter: Value) -> Vec<String> {
        match Filter::from_json(&filter) {
            Ok(parsed) => panic!("expected problems, got {parsed:?}"),
            Err(e) => e.problems,
        }
    }

    fn one_problem(filter: Value) -> String {
        let mut all = problems(filter);
        assert_eq!(all.len(), 1, "expected exactly one problem, got {all:#?}");
        all.remove(0)
    }

    fn advanced(entries: Value) -> Value {
        json!({ "advancedFilters": entries })
    }

    #[test]
    fn the_default_filter_matches_every_event() {
        let filter = Filter::default();
        assert!(filter.is_match_all());
        assert!(filter.matches(&Json::from(&json!({"eventType": "x"})), Schema::EventGrid));
        assert!(filter.matches(&Json::from(&json!({})), Schema::CloudEvents));
    }

    #[test]
    fn an_empty_filter_object_parses_to_the_default() {
        assert_eq!(Filter::from_json(&json!({})).unwrap(), Filter::default());
    }

    #[test]
    fn all_in_included_event_types_means_every_type() {
        let filter =
            Filter::from_json(&json!({"includedEventTypes": ["NewOrder", "all"]})).unwrap();
        assert!(filter.included_event_types().is_empty());
    }

    #[test]
    fn more_than_25_advanced_filters_are_rejected() {
        let entries: Vec<Value> = (0..26)
            .map(|_| json!({"operatorType": "IsNotNull", "key": "data.a"}))
            .collect();
        assert_eq!(
            one_problem(advanced(Value::Array(entries))),
            "filter.advancedFilters has 26 filters; Azure allows at most 25"
        );
    }

    #[test]
    fn more_than_25_values_across_all_filters_are_rejected() {
        let numbers: Vec<i32> = (0..13).collect();
        let problem = one_problem(advanced(json!([
            {"operatorType": "NumberIn", "key": "data.a", "values": numbers},
            {"operatorType": "NumberNotIn", "key": "data.b", "values": numbers},
        ])));
        assert_eq!(
            problem,
            "filter.advancedFilters has 26 values in total; Azure allows at most 25 across all \
             advanced filters of a subscription"
        );
    }

    #[test]
    fn exactly_25_values_are_allowed() {
        let numbers: Vec<i32> = (0..24).collect();
        Filter::from_json(&advanced(json!([
            {"operatorType": "NumberIn", "key": "data.a", "values": numbers},
            {"operatorType": "BoolEquals", "key": "data.b", "value": true},
            {"operatorType": "IsNotNull", "key": "data.c"},
        ])))
        .unwrap();
    }

    #[test]
    fn a_string_value_longer_than_512_characters_is_rejected() {
        let long = "é".repeat(513);
        let problem = one_problem(advanced(json!([
            {"operatorType": "StringIn", "key": "data.a", "values": ["ok", long]}
        ])));
        assert!(
            problem.starts_with("filter.advancedFilters[0].values[1] is \"ééé"),
            "{problem}"
        );
        assert!(
            problem.ends_with("(513 characters); Azure allows at most 512"),
            "{problem}"
        );
        let exactly = "é".repeat(512);
        Filter::from_json(&advanced(json!([
            {"operatorType": "StringIn", "key": "data.a", "values": [exactly]}
        ])))
        .unwrap();
    }

    #[test]
    fn a_range_whose_low_end_exceeds_its_high_end_is_rejected() {
        assert_eq!(
            one_problem(advanced(json!([
                {"operatorType": "NumberInRange", "key": "data.a", "values": [[1, 2], [5, 3]]}
            ]))),
            "filter.advancedFilters[0].values[1] is [5,3]; the low end must not exceed the high end"
        );
    }

    #[test]
    fn a_range_that_is_not_two_numbers_is_rejected() {
        assert_eq!(
            one_problem(advanced(json!([
                {"operatorType": "NumberNotInRange", "key": "data.a", "values": [[1, 2, 3]]}
            ]))),
            "filter.advancedFilters[0].values[0] is [1,2,3]; expected a range [low, high] of two numbers"
        );
    }

    #[test]
    fn every_bad_range_is_reported() {
        let all = problems(advanced(json!([
            {"operatorType": "NumberInRange", "key": "data.a", "values": [1, "x"]}
        ])));
        assert_eq!(
            all,
            [
                "filter.advancedFilters[0].values[0] is 1; expected a range [low, high] of two numbers",
                "filter.advancedFilters[0].values[1] is \"x\"; expected a range [low, high] of two numbers",
            ]
        );
    }

    #[test]
    fn a_single_value_operator_given_values_is_rejected() {
        let all = problems(advanced(json!([
            {"operatorType": "NumberLessThan", "key": "data.a", "values": [5]}
        ])));
        assert_eq!(
            all,
            [
                "filter.advancedFilters[0].values is set, but NumberLessThan takes a single \"value\"",
                "filter.advancedFilters[0].value is missing; NumberLessThan needs it",
            ]
        );
    }

    #[test]
    fn a_list_operator_given_value_is_rejected() {
        let all = problems(advanced(json!([
            {"operatorType": "StringIn", "key": "data.a", "value": "x"}
        ])));
        assert_eq!(
            all,
            [
                "filter.advancedFilters[0].value is set, but StringIn takes a list in \"values\"",
                "filter.advancedFilters[0].values is missing; StringIn needs it",
            ]
        );
    }

    #[test]
    fn null_checks_take_no_value() {
        assert_eq!(
            one_problem(advanced(json!([
                {"operatorType": "IsNullOrUndefined", "key": "data.a", "value": true}
            ]))),
            "filter.advancedFilters[0].value is set, but IsNullOrUndefined takes no value"
        );
    }

    #[test]
    fn operand_types_are_checked() {
        let all = problems(advanced(json!([
            {"operatorType": "NumberGreaterThan", "key": "data.a", "value": "5"},
            {"operatorType": "BoolEquals", "key": "data.a", "value": "true"},
            {"operatorType": "NumberIn", "key": "data.a", "values": [1, "2"]},
            {"operatorType": "StringContains", "key": "data.a", "values": ["a", 5]},
            {"operatorType": "StringEndsWith", "key": "data.a", "values": "png"},
            {"operatorType": "StringBeginsWith", "key": "data.a", "values": []},
        ])));
        assert_eq!(
            all,
            [
                "filter.advancedFilters[0].value is \"5\"; expected a number",
                "filter.advancedFilters[1].value is \"true\"; expected true or false",
                "filter.advancedFilters[2].values[1] is \"2\"; expected a number",
                "filter.advancedFilters[3].values[1] is 5; expected a string",
                "filter.advancedFilters[4].values is \"png\"; expected a list",
                "filter.advancedFilters[5].values is []; give at least one value",
            ]
        );
    }

    #[test]
    fn an_unknown_operator_lists_the_valid_ones() {
        let problem = one_problem(advanced(json!([
            {"operatorType": "NumberEquals", "key": "data.a", "value": 1}
        ])));
        assert!(
            problem.starts_with(
                "filter.advancedFilters[0].operatorType is \"NumberEquals\"; valid operators are \
                 NumberIn, NumberNotIn, NumberLessThan,"
            ),
            "{problem}"
        );
        assert!(
            problem.ends_with("IsNullOrUndefined, IsNotNull"),
            "{problem}"
        );
    }

    #[test]
    fn an_operator_in_the_wrong_case_gets_a_hint() {
        let problem = one_problem(advanced(json!([
            {"operatorType": "stringin", "key": "data.a", "values": ["x"]}
        ])));
        assert!(
            problem.starts_with(
                "filter.advancedFilters[0].operatorType is \"stringin\" (did you mean \"StringIn\"?)"
            ),
            "{problem}"
        );
    }

    #[test]
    fn keys_must_be_non_empty_dotted_names() {
        let all = problems(advanced(json!([
            {"operatorType": "IsNotNull", "key": ""},
            {"operatorType": "IsNotNull", "key": "data..a"},
            {"operatorType": "IsNotNull", "key": "data.a."},
            {"operatorType": "IsNotNull"},
            {"operatorType": "IsNotNull", "key": 7},
        ])));
        assert_eq!(
            all,
            [
                "filter.advancedFilters[0].key is \"\"; a key must not be empty",
                "filter.advancedFilters[1].key is \"data..a\"; a key is property names joined by \".\" (like \"data.key1\"), none of them empty",
                "filter.advancedFilters[2].key is \"data.a.\"; a key is property names joined by \".\" (like \"data.key1\"), none of them empty",
                "filter.advancedFilters[3].key is missing",
                "filter.advancedFilters[4].key is 7; expected a string",
            ]
        );
    }

    #[test]
    fn unknown_filter_properties_are_named_with_a_hint() {
        let all = problems(json!({
            "includedEventType": ["NewOrder"],
            "advancedFilters": [{"operatorType": "IsNotNull", "key": "data.a", "Value": 1}],
        }));
        assert_eq!(all.len(), 2, "{all:#?}");
        assert!(
            all[0].starts_with(
                "unknown property \"includedEventType\" in filter (did you mean \"includedEventTypes\"?)"
            ),
            "{}",
            all[0]
        );
        assert!(
            all[1].starts_with(
                "unknown property \"Value\" in filter.advancedFilters[0] (did you mean \"value\"?)"
            ),
            "{}",
            all[1]
        );
    }

    #[test]
    fn simple_filter_properties_are_type_checked() {
        let all = problems(json!({
            "includedEventTypes": "NewOrder",
            "subjectBeginsWith": 5,
            "isSubjectCaseSensitive": "yes",
            "enableAdvancedFilteringOnArrays": 1,
            "advancedFilters": {},
        }));
        assert_eq!(
            all,
            [
                "filter.includedEventTypes is \"NewOrder\"; expected a list of strings",
                "filter.subjectBeginsWith is 5; expected a string",
                "filter.isSubjectCaseSensitive is \"yes\"; expected true or false",
                "filter.enableAdvancedFilteringOnArrays is 1; expected true or false",
                "filter.advancedFilters is {}; expected a list",
            ]
        );
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let text = describe(&json!("x".repeat(200)));
        assert_eq!(text.chars().count(), 81);
        assert!(text.ends_with('…'));
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("value", "values"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
