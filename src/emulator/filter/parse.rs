//! Reading a subscription's `filter` object (ARM's JSON) into a [`Filter`], enforcing Azure's
//! limits and naming every problem by its property path.

use serde_json::{Map, Value};

use super::*;
use crate::emulator::arm_json::{check_properties, describe, join, quote};
use crate::json::Number;

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

pub(super) fn parse_filter(value: &Value, path: &str, problems: &mut Vec<String>) -> Filter {
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
