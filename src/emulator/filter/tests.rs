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
    let filter = Filter::from_json(&json!({"includedEventTypes": ["NewOrder", "all"]})).unwrap();
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

// Property tests (issue 14): any filter object is a filter or a list of problems, and a filter
// evaluates any event, of any shape, to a verdict.
mod properties {
    use super::*;
    use crate::json::strategies::{arbitrary_json, object_of};
    use proptest::prelude::*;

    const OPERATORS: &[&str] = &[
        r#""NumberIn""#,
        r#""NumberNotIn""#,
        r#""NumberLessThan""#,
        r#""NumberGreaterThan""#,
        r#""NumberLessThanOrEquals""#,
        r#""NumberGreaterThanOrEquals""#,
        r#""NumberInRange""#,
        r#""NumberNotInRange""#,
        r#""BoolEquals""#,
        r#""StringIn""#,
        r#""StringNotIn""#,
        r#""StringContains""#,
        r#""StringNotContains""#,
        r#""StringBeginsWith""#,
        r#""StringNotBeginsWith""#,
        r#""StringEndsWith""#,
        r#""StringNotEndsWith""#,
        r#""IsNullOrUndefined""#,
        r#""IsNotNull""#,
        r#""data.a""#,
        r#""data.a.b""#,
        r#""subject""#,
        r#""eventType""#,
        r#""id""#,
        "[1, 2.5, -3]",
        r#"["a", "B"]"#,
        "[[0, 10]]",
        "true",
        "5",
    ];

    fn advanced_filter() -> impl Strategy<Value = String> {
        object_of(&["operatorType", "key", "value", "values"], OPERATORS)
    }

    fn filter() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(advanced_filter(), 0..4),
            prop::option::of(arbitrary_json()),
            any::<bool>(),
        )
            .prop_map(|(advanced, types, arrays)| {
                let advanced: Vec<Value> = advanced
                    .iter()
                    .filter_map(|a| serde_json::from_str(a).ok())
                    .collect();
                let mut filter = json!({
                    "advancedFilters": advanced,
                    "enableAdvancedFilteringOnArrays": arrays,
                });
                if let Some(types) = types.and_then(|t| serde_json::from_str(&t).ok()) {
                    filter["includedEventTypes"] = types;
                }
                filter
            })
    }

    fn event() -> impl Strategy<Value = String> {
        prop_oneof![
            arbitrary_json(),
            object_of(
                &["id", "subject", "eventType", "type", "data", "source"],
                &[
                    r#"{"a": {"b": 3}}"#,
                    r#"{"a": [1, "x", null, true]}"#,
                    r#""x""#,
                    "7",
                    "null"
                ],
            ),
        ]
    }

    proptest! {
        #[test]
        fn any_filter_is_read_and_any_event_gets_a_verdict(
            filter in filter(),
            noise in arbitrary_json(),
            events in prop::collection::vec(event(), 1..4),
        ) {
            if let Ok(noise) = serde_json::from_str::<Value>(&noise) {
                let _ = Filter::from_json(&noise);
            }
            if let Ok(filter) = Filter::from_json(&filter) {
                for event in &events {
                    if let Ok(event) = Json::parse(event.as_bytes(), 64) {
                        let _ = filter.matches(&event, Schema::EventGrid);
                        let _ = filter.matches(&event, Schema::CloudEvents);
                    }
                }
            }
        }
    }
}
