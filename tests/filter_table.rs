//! Table-driven tests of event filtering against Azure's documented semantics
//! (learn.microsoft.com/azure/event-grid/event-filtering), through the public API only:
//! `Filter::from_json` on the ARM `filter` object, then `Filter::matches` on an event.
//!
//! Each row is one line: the situation it covers, the value the event holds, the expected result
//! and what the row shows. Every table is checked as a whole, so one run lists every failing row.

use std::collections::HashSet;

use ordergrid::emulator::filter::{Filter, OperatorType};
use ordergrid::eventgrid::Schema;
use ordergrid::json::Json;
use serde_json::{Value, json};

const MATCH: bool = true;
const NO_MATCH: bool = false;

/// What a row of the operator tables exercises; every operator must have every situation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Situation {
    Hit,
    Miss,
    MissingKey,
    NullValue,
    WrongType,
    ArrayWithoutFlag,
    ArrayWithFlag,
}
use Situation::*;

const SITUATIONS: [Situation; 7] = [
    Hit,
    Miss,
    MissingKey,
    NullValue,
    WrongType,
    ArrayWithoutFlag,
    ArrayWithFlag,
];

/// The value at `data.v`, or no `v` at all.
#[derive(Debug, Clone)]
enum At {
    Is(Value),
    Missing,
}

fn v(value: Value) -> At {
    At::Is(value)
}

const MISSING: At = At::Missing;

struct Row {
    operator: &'static str,
    situation: Situation,
    at: At,
    expected: bool,
    shows: &'static str,
    filter: Value,
}

/// One operator with its filter operand, on the key `data.v`.
struct Op {
    name: &'static str,
    operand: Value,
}

fn op(name: &'static str, operand: Value) -> Op {
    Op { name, operand }
}

impl Op {
    fn row(&self, situation: Situation, at: At, expected: bool, shows: &'static str) -> Row {
        let mut advanced = json!({"operatorType": self.name, "key": "data.v"});
        match self.name {
            "IsNullOrUndefined" | "IsNotNull" => {}
            "NumberLessThan"
            | "NumberGreaterThan"
            | "NumberLessThanOrEquals"
            | "NumberGreaterThanOrEquals"
            | "BoolEquals" => advanced["value"] = self.operand.clone(),
            _ => advanced["values"] = self.operand.clone(),
        }
        Row {
            operator: self.name,
            situation,
            at,
            expected,
            shows,
            filter: json!({"advancedFilters": [advanced]}),
        }
    }
}

/// An Event Grid schema event whose `data` holds `v` (or not) beside another field.
fn event_with(at: &At) -> Value {
    let mut data = json!({"other": "x"});
    if let At::Is(value) = at {
        data["v"] = value.clone();
    }
    json!({
        "id": "e1",
        "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventGrid/topics/orders",
        "subject": "/orders/1",
        "eventType": "NewOrder",
        "eventTime": "2024-05-01T12:00:00Z",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "data": data,
    })
}

fn with_array_flag(filter: &Value, on: bool) -> Value {
    let mut filter = filter.clone();
    filter["enableAdvancedFilteringOnArrays"] = json!(on);
    filter
}

fn parse(filter: &Value) -> Filter {
    Filter::from_json(filter).unwrap_or_else(|e| panic!("filter {filter} is invalid:\n{e}"))
}

/// Runs operator rows. Scalar rows must give the same result with the array flag on and off;
/// array rows run with the flag their situation names.
fn run_operator_rows(rows: &[Row]) {
    let mut failures = Vec::new();
    for row in rows {
        let flags: &[bool] = match row.situation {
            ArrayWithoutFlag => &[false],
            ArrayWithFlag => &[true],
            _ => &[false, true],
        };
        for &flag in flags {
            let filter = parse(&with_array_flag(&row.filter, flag));
            let got = filter.matches(&Json::from(&event_with(&row.at)), Schema::EventGrid);
            if got != row.expected {
                failures.push(format!(
                    "{} ({:?}, arrays flag {flag}): {} — value {:?}: expected {}, got {}",
                    row.operator,
                    row.situation,
                    row.shows,
                    row.at,
                    verdict(row.expected),
                    verdict(got)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

fn verdict(matched: bool) -> &'static str {
    if matched { "match" } else { "no match" }
}

#[rustfmt::skip] // one row per line, aligned as a table
fn number_rows() -> Vec<Row> {
    let number_in = op("NumberIn", json!([5, 1]));
    let number_not_in = op("NumberNotIn", json!([5, 1]));
    let less = op("NumberLessThan", json!(10));
    let greater = op("NumberGreaterThan", json!(10));
    let less_eq = op("NumberLessThanOrEquals", json!(10));
    let greater_eq = op("NumberGreaterThanOrEquals", json!(10));
    let in_range = op("NumberInRange", json!([[1, 2], [10, 20]]));
    let not_in_range = op("NumberNotInRange", json!([[1, 2], [10, 20]]));
    vec![
        number_in.row(Hit,              v(json!(1)),           MATCH,    "a number equal to any listed value matches (values are OR'ed)"),
        number_in.row(Hit,              v(json!(5.0)),         MATCH,    "5.0 equals 5: numbers compare by value"),
        number_in.row(Miss,             v(json!(2)),           NO_MATCH, "an unlisted number does not match"),
        number_in.row(MissingKey,       MISSING,               NO_MATCH, "documented: not matched when the key is missing"),
        number_in.row(NullValue,        v(json!(null)),        NO_MATCH, "null counts as missing"),
        number_in.row(WrongType,        v(json!("5")),         NO_MATCH, "a string holding digits is not a number"),
        number_in.row(WrongType,        v(json!({"n": 5})),    NO_MATCH, "an object is not a number"),
        number_in.row(ArrayWithoutFlag, v(json!([1])),         NO_MATCH, "without the flag an array never matches"),
        number_in.row(ArrayWithFlag,    v(json!([7, 1])),      MATCH,    "any element equal to any value matches"),
        number_in.row(ArrayWithFlag,    v(json!([7, 8])),      NO_MATCH, "no element listed, no match"),
        number_in.row(ArrayWithFlag,    v(json!(["1", 7])),    NO_MATCH, "elements of another type are ignored"),
        number_in.row(ArrayWithFlag,    v(json!([[1], 7])),    NO_MATCH, "nested arrays are ignored"),
        number_in.row(ArrayWithFlag,    v(json!([])),          NO_MATCH, "an empty array has nothing to match"),

        number_not_in.row(Hit,              v(json!(2)),          MATCH,    "a number equal to no listed value matches"),
        number_not_in.row(Miss,             v(json!(5)),          NO_MATCH, "a listed number fails (the values act as AND)"),
        number_not_in.row(Miss,             v(json!(1)),          NO_MATCH, "any listed number fails"),
        number_not_in.row(MissingKey,       MISSING,              MATCH,    "documented: matched when the key is missing"),
        number_not_in.row(NullValue,        v(json!(null)),       MATCH,    "null counts as missing"),
        number_not_in.row(WrongType,        v(json!("5")),        MATCH,    "a string is ignored, so nothing fails"),
        number_not_in.row(ArrayWithoutFlag, v(json!([2])),        NO_MATCH, "without the flag an array never matches, even for NotIn"),
        number_not_in.row(ArrayWithFlag,    v(json!([2, 3])),     MATCH,    "no element listed, so nothing fails"),
        number_not_in.row(ArrayWithFlag,    v(json!([2, 5])),     NO_MATCH, "any listed element fails the filter"),
        number_not_in.row(ArrayWithFlag,    v(json!(["5", 2])),   MATCH,    "elements of another type are ignored"),
        number_not_in.row(ArrayWithFlag,    v(json!([])),         MATCH,    "an empty array has nothing to fail"),

        less.row(Hit,              v(json!(9.5)),        MATCH,    "9.5 < 10"),
        less.row(Miss,             v(json!(10)),         NO_MATCH, "10 is not < 10"),
        less.row(MissingKey,       MISSING,              NO_MATCH, "documented: not matched when the key is missing"),
        less.row(NullValue,        v(json!(null)),       NO_MATCH, "null counts as missing"),
        less.row(WrongType,        v(json!("1")),        NO_MATCH, "a string is not a number"),
        less.row(WrongType,        v(json!(true)),       NO_MATCH, "a bool is not a number"),
        less.row(ArrayWithoutFlag, v(json!([1])),        NO_MATCH, "without the flag an array never matches"),
        less.row(ArrayWithFlag,    v(json!([20, 3])),    MATCH,    "any element below the limit matches"),
        less.row(ArrayWithFlag,    v(json!([20, 10])),   NO_MATCH, "no element below the limit"),

        greater.row(Hit,              v(json!(10.5)),       MATCH,    "10.5 > 10"),
        greater.row(Miss,             v(json!(-1e3)),       NO_MATCH, "negative numbers compare too"),
        greater.row(Miss,             v(json!(10)),         NO_MATCH, "10 is not > 10"),
        greater.row(MissingKey,       MISSING,              NO_MATCH, "documented: not matched when the key is missing"),
        greater.row(NullValue,        v(json!(null)),       NO_MATCH, "null counts as missing"),
        greater.row(WrongType,        v(json!("20")),       NO_MATCH, "a string is not a number"),
        greater.row(ArrayWithoutFlag, v(json!([20])),       NO_MATCH, "without the flag an array never matches"),
        greater.row(ArrayWithFlag,    v(json!([1, 20])),    MATCH,    "any element above the limit matches"),
        greater.row(ArrayWithFlag,    v(json!([1, 10])),    NO_MATCH, "no element above the limit"),

        less_eq.row(Hit,              v(json!(10)),         MATCH,    "10 <= 10"),
        less_eq.row(Miss,             v(json!(10.01)),      NO_MATCH, "10.01 is not <= 10"),
        less_eq.row(MissingKey,       MISSING,              NO_MATCH, "documented: not matched when the key is missing"),
        less_eq.row(NullValue,        v(json!(null)),       NO_MATCH, "null counts as missing"),
        less_eq.row(WrongType,        v(json!("1")),        NO_MATCH, "a string is not a number"),
        less_eq.row(ArrayWithoutFlag, v(json!([1])),        NO_MATCH, "without the flag an array never matches"),
        less_eq.row(ArrayWithFlag,    v(json!([20, 10])),   MATCH,    "an element equal to the limit matches"),
        less_eq.row(ArrayWithFlag,    v(json!([20, 11])),   NO_MATCH, "no element at or below the limit"),

        greater_eq.row(Hit,              v(json!(10)),        MATCH,    "10 >= 10"),
        greater_eq.row(Miss,             v(json!(9.99)),      NO_MATCH, "9.99 is not >= 10"),
        greater_eq.row(MissingKey,       MISSING,             NO_MATCH, "documented: not matched when the key is missing"),
        greater_eq.row(NullValue,        v(json!(null)),      NO_MATCH, "null counts as missing"),
        greater_eq.row(WrongType,        v(json!("10")),      NO_MATCH, "a string is not a number"),
        greater_eq.row(ArrayWithoutFlag, v(json!([10])),      NO_MATCH, "without the flag an array never matches"),
        greater_eq.row(ArrayWithFlag,    v(json!([1, 10])),   MATCH,    "an element equal to the limit matches"),
        greater_eq.row(ArrayWithFlag,    v(json!([1, 9])),    NO_MATCH, "no element at or above the limit"),

        in_range.row(Hit,              v(json!(10)),          MATCH,    "ranges include their low end"),
        in_range.row(Hit,              v(json!(20)),          MATCH,    "ranges include their high end"),
        in_range.row(Hit,              v(json!(1.5)),         MATCH,    "any of the ranges will do (OR)"),
        in_range.row(Miss,             v(json!(5)),           NO_MATCH, "between the ranges"),
        in_range.row(Miss,             v(json!(20.5)),        NO_MATCH, "above every range"),
        in_range.row(MissingKey,       MISSING,               NO_MATCH, "decided: not matched when missing, like NumberIn"),
        in_range.row(NullValue,        v(json!(null)),        NO_MATCH, "null counts as missing"),
        in_range.row(WrongType,        v(json!("15")),        NO_MATCH, "a string is not a number"),
        in_range.row(ArrayWithoutFlag, v(json!([15])),        NO_MATCH, "without the flag an array never matches"),
        in_range.row(ArrayWithFlag,    v(json!([5, 15])),     MATCH,    "any element in any range matches"),
        in_range.row(ArrayWithFlag,    v(json!([5, 25])),     NO_MATCH, "no element in a range"),

        not_in_range.row(Hit,              v(json!(5)),          MATCH,    "outside every range"),
        not_in_range.row(Miss,             v(json!(10)),         NO_MATCH, "inside a range (inclusive) fails"),
        not_in_range.row(Miss,             v(json!(2)),          NO_MATCH, "inside any range fails"),
        not_in_range.row(MissingKey,       MISSING,              MATCH,    "decided: matched when missing, like NumberNotIn"),
        not_in_range.row(NullValue,        v(json!(null)),       MATCH,    "null counts as missing"),
        not_in_range.row(WrongType,        v(json!("15")),       MATCH,    "a string is ignored, so nothing fails"),
        not_in_range.row(ArrayWithoutFlag, v(json!([5])),        NO_MATCH, "without the flag an array never matches"),
        not_in_range.row(ArrayWithFlag,    v(json!([5, 25])),    MATCH,    "no element in a range"),
        not_in_range.row(ArrayWithFlag,    v(json!([5, 15])),    NO_MATCH, "any element in a range fails"),
    ]
}

#[rustfmt::skip] // one row per line, aligned as a table
fn bool_rows() -> Vec<Row> {
    let is_true = op("BoolEquals", json!(true));
    let is_false = op("BoolEquals", json!(false));
    vec![
        is_true.row(Hit,              v(json!(true)),           MATCH,    "true equals true"),
        is_false.row(Hit,             v(json!(false)),          MATCH,    "false equals false"),
        is_true.row(Miss,             v(json!(false)),          NO_MATCH, "false is not true"),
        is_true.row(MissingKey,       MISSING,                  NO_MATCH, "documented: not matched when the key is missing"),
        is_false.row(MissingKey,      MISSING,                  NO_MATCH, "a missing key is not false either"),
        is_true.row(NullValue,        v(json!(null)),           NO_MATCH, "null counts as missing"),
        is_true.row(WrongType,        v(json!("true")),         NO_MATCH, "the string \"true\" is not a bool"),
        is_true.row(WrongType,        v(json!(1)),              NO_MATCH, "1 is not a bool"),
        is_true.row(ArrayWithoutFlag, v(json!([true])),         NO_MATCH, "without the flag an array never matches"),
        is_true.row(ArrayWithFlag,    v(json!([false, true])),  MATCH,    "any true element matches"),
        is_true.row(ArrayWithFlag,    v(json!([false])),        NO_MATCH, "no true element"),
        is_true.row(ArrayWithFlag,    v(json!(["true", 1])),    NO_MATCH, "elements of another type are ignored"),
    ]
}

#[rustfmt::skip] // one row per line, aligned as a table
fn string_rows() -> Vec<Row> {
    let string_in = op("StringIn", json!(["contoso", "fabrikam"]));
    let string_not_in = op("StringNotIn", json!(["aws", "bridge"]));
    let begins = op("StringBeginsWith", json!(["event", "message"]));
    let not_begins = op("StringNotBeginsWith", json!(["event", "message"]));
    let ends = op("StringEndsWith", json!(["jpg", "png"]));
    let not_ends = op("StringNotEndsWith", json!(["jpg", "png"]));
    let contains = op("StringContains", json!(["microsoft", "azure"]));
    let not_contains = op("StringNotContains", json!(["contoso", "fabrikam"]));
    let upper_in = op("StringIn", json!(["CONTOSO"]));
    let number_text = op("StringIn", json!(["5"]));
    vec![
        string_in.row(Hit,              v(json!("fabrikam")),               MATCH,    "an exact listed value matches (values are OR'ed)"),
        string_in.row(Hit,              v(json!("Fabrikam")),               MATCH,    "comparison ignores case"),
        upper_in.row(Hit,               v(json!("contoso")),                MATCH,    "case is ignored on the filter side too"),
        string_in.row(Miss,             v(json!("contoso ltd")),            NO_MATCH, "StringIn needs the whole value, not a prefix"),
        string_in.row(MissingKey,       MISSING,                            NO_MATCH, "documented: not matched when the key is missing"),
        string_in.row(NullValue,        v(json!(null)),                     NO_MATCH, "null counts as missing"),
        number_text.row(WrongType,      v(json!(5)),                        NO_MATCH, "a number in data is not a string"),
        string_in.row(WrongType,        v(json!({"name": "contoso"})),      NO_MATCH, "an object is not a string"),
        string_in.row(ArrayWithoutFlag, v(json!(["contoso"])),              NO_MATCH, "without the flag an array never matches"),
        string_in.row(ArrayWithFlag,    v(json!(["x", "CONTOSO"])),         MATCH,    "any element equal to any value matches"),
        string_in.row(ArrayWithFlag,    v(json!(["x", "y"])),               NO_MATCH, "no element listed"),
        string_in.row(ArrayWithFlag,    v(json!([{"n": "contoso"}])),       NO_MATCH, "arrays of objects are not supported"),

        string_not_in.row(Hit,              v(json!("azure")),              MATCH,    "an unlisted value matches"),
        string_not_in.row(Miss,             v(json!("AWS")),                NO_MATCH, "a listed value fails, ignoring case"),
        string_not_in.row(MissingKey,       MISSING,                        MATCH,    "documented: matched when the key is missing"),
        string_not_in.row(NullValue,        v(json!(null)),                 MATCH,    "null counts as missing"),
        string_not_in.row(WrongType,        v(json!(5)),                    MATCH,    "a number is ignored, so nothing fails"),
        string_not_in.row(ArrayWithoutFlag, v(json!(["azure"])),            NO_MATCH, "without the flag an array never matches, even for NotIn"),
        string_not_in.row(ArrayWithFlag,    v(json!(["azure", "gcp"])),     MATCH,    "no element listed"),
        string_not_in.row(ArrayWithFlag,    v(json!(["azure", "Bridge"])),  NO_MATCH, "any listed element fails the filter"),
        string_not_in.row(ArrayWithFlag,    v(json!([{"n": "aws"}])),       MATCH,    "object elements are ignored"),
        string_not_in.row(ArrayWithFlag,    v(json!([])),                   MATCH,    "an empty array has nothing to fail"),

        begins.row(Hit,              v(json!("Event Hubs")),                MATCH,    "a prefix matches, ignoring case"),
        begins.row(Miss,             v(json!("hubs event")),                NO_MATCH, "containing is not beginning with"),
        begins.row(MissingKey,       MISSING,                               NO_MATCH, "documented: not matched when the key is missing"),
        begins.row(NullValue,        v(json!(null)),                        NO_MATCH, "null counts as missing"),
        begins.row(WrongType,        v(json!(true)),                        NO_MATCH, "a bool in data is not a string"),
        begins.row(ArrayWithoutFlag, v(json!(["event"])),                   NO_MATCH, "without the flag an array never matches"),
        begins.row(ArrayWithFlag,    v(json!(["x", "MESSAGE queue"])),      MATCH,    "any element with any prefix matches"),
        begins.row(ArrayWithFlag,    v(json!(["x"])),                       NO_MATCH, "no element with a prefix"),

        not_begins.row(Hit,              v(json!("hubs")),                  MATCH,    "no listed prefix"),
        not_begins.row(Miss,             v(json!("EVENT hubs")),            NO_MATCH, "a listed prefix fails, ignoring case"),
        not_begins.row(MissingKey,       MISSING,                           NO_MATCH, "documented: NOT matched when missing, unlike StringNotIn"),
        not_begins.row(NullValue,        v(json!(null)),                    NO_MATCH, "null counts as missing"),
        not_begins.row(WrongType,        v(json!(5)),                       MATCH,    "a number is ignored, so nothing fails"),
        not_begins.row(ArrayWithoutFlag, v(json!(["hubs"])),                NO_MATCH, "without the flag an array never matches"),
        not_begins.row(ArrayWithFlag,    v(json!(["hubs", "queues"])),      MATCH,    "no element with a listed prefix"),
        not_begins.row(ArrayWithFlag,    v(json!(["hubs", "messages"])),    NO_MATCH, "any element with a listed prefix fails"),

        ends.row(Hit,              v(json!("photo.PNG")),                   MATCH,    "a suffix matches, ignoring case"),
        ends.row(Miss,             v(json!("photo.gif")),                   NO_MATCH, "no listed suffix"),
        ends.row(MissingKey,       MISSING,                                 NO_MATCH, "documented: not matched when the key is missing"),
        ends.row(NullValue,        v(json!(null)),                          NO_MATCH, "null counts as missing"),
        ends.row(WrongType,        v(json!(1.5)),                           NO_MATCH, "a number in data is not a string"),
        ends.row(ArrayWithoutFlag, v(json!(["a.jpg"])),                     NO_MATCH, "without the flag an array never matches"),
        ends.row(ArrayWithFlag,    v(json!(["a.gif", "b.jpg"])),            MATCH,    "any element with any suffix matches"),
        ends.row(ArrayWithFlag,    v(json!(["a.gif"])),                     NO_MATCH, "no element with a suffix"),

        not_ends.row(Hit,              v(json!("a.gif")),                   MATCH,    "no listed suffix"),
        not_ends.row(Miss,             v(json!("a.JPG")),                   NO_MATCH, "a listed suffix fails, ignoring case"),
        not_ends.row(MissingKey,       MISSING,                             NO_MATCH, "documented: NOT matched when missing, unlike StringNotIn"),
        not_ends.row(NullValue,        v(json!(null)),                      NO_MATCH, "null counts as missing"),
        not_ends.row(WrongType,        v(json!(5)),                         MATCH,    "a number is ignored, so nothing fails"),
        not_ends.row(ArrayWithoutFlag, v(json!(["a.gif"])),                 NO_MATCH, "without the flag an array never matches"),
        not_ends.row(ArrayWithFlag,    v(json!(["a.gif", "b.txt"])),        MATCH,    "no element with a listed suffix"),
        not_ends.row(ArrayWithFlag,    v(json!(["a.gif", "b.png"])),        NO_MATCH, "any element with a listed suffix fails"),

        contains.row(Hit,              v(json!("Azure Data Factory")),      MATCH,    "a substring matches, ignoring case"),
        contains.row(Miss,             v(json!("aws")),                     NO_MATCH, "no listed substring"),
        contains.row(MissingKey,       MISSING,                             NO_MATCH, "documented: not matched when the key is missing"),
        contains.row(NullValue,        v(json!(null)),                      NO_MATCH, "null counts as missing"),
        contains.row(WrongType,        v(json!(true)),                      NO_MATCH, "a bool in data is not a string"),
        contains.row(ArrayWithoutFlag, v(json!(["azure"])),                 NO_MATCH, "without the flag an array never matches"),
        contains.row(ArrayWithFlag,    v(json!(["x", "my-AZURE-thing"])),   MATCH,    "any element containing any value matches"),
        contains.row(ArrayWithFlag,    v(json!(["x"])),                     NO_MATCH, "no element contains a value"),

        not_contains.row(Hit,              v(json!("northwind")),           MATCH,    "no listed substring"),
        not_contains.row(Miss,             v(json!("Big FABRIKAM Inc")),    NO_MATCH, "a listed substring fails, ignoring case"),
        not_contains.row(MissingKey,       MISSING,                         NO_MATCH, "documented: NOT matched when missing, unlike StringNotIn"),
        not_contains.row(NullValue,        v(json!(null)),                  NO_MATCH, "null counts as missing"),
        not_contains.row(WrongType,        v(json!(5)),                     MATCH,    "a number is ignored, so nothing fails"),
        not_contains.row(ArrayWithoutFlag, v(json!(["northwind"])),         NO_MATCH, "without the flag an array never matches"),
        not_contains.row(ArrayWithFlag,    v(json!(["northwind", "adv"])),  MATCH,    "no element contains a value"),
        not_contains.row(ArrayWithFlag,    v(json!(["northwind", "contoso-x"])), NO_MATCH, "any element containing a value fails"),
    ]
}

#[rustfmt::skip] // one row per line, aligned as a table
fn null_check_rows() -> Vec<Row> {
    let is_null = op("IsNullOrUndefined", Value::Null);
    let not_null = op("IsNotNull", Value::Null);
    vec![
        is_null.row(Hit,              v(json!(null)),       MATCH,    "documented: null is null"),
        is_null.row(Miss,             v(json!(5)),          NO_MATCH, "documented: any other value is not"),
        is_null.row(MissingKey,       MISSING,              MATCH,    "documented: a missing key is undefined"),
        is_null.row(NullValue,        v(json!(null)),       MATCH,    "null, again"),
        is_null.row(WrongType,        v(json!("")),         NO_MATCH, "an empty string is present"),
        is_null.row(WrongType,        v(json!(false)),      NO_MATCH, "false is present"),
        is_null.row(WrongType,        v(json!({})),         NO_MATCH, "an empty object is present"),
        is_null.row(ArrayWithoutFlag, v(json!([])),         NO_MATCH, "decided: an array is present, flag or not"),
        is_null.row(ArrayWithFlag,    v(json!([null])),     NO_MATCH, "an array of nulls is still an array"),

        not_null.row(Hit,              v(json!(5)),          MATCH,    "a present value is not null"),
        not_null.row(Miss,             v(json!(null)),       NO_MATCH, "null is null"),
        not_null.row(MissingKey,       MISSING,              NO_MATCH, "a missing key is undefined"),
        not_null.row(NullValue,        v(json!(null)),       NO_MATCH, "null, again"),
        not_null.row(WrongType,        v(json!("")),         MATCH,    "an empty string is present"),
        not_null.row(WrongType,        v(json!({"a": 1})),   MATCH,    "an object is present"),
        not_null.row(ArrayWithoutFlag, v(json!([])),         MATCH,    "decided: an array is present, flag or not"),
        not_null.row(ArrayWithFlag,    v(json!([null])),     MATCH,    "an array of nulls is still an array"),
    ]
}

#[test]
fn number_operators_follow_the_documented_semantics() {
    run_operator_rows(&number_rows());
}

#[test]
fn bool_equals_needs_a_json_bool() {
    run_operator_rows(&bool_rows());
}

#[test]
fn string_operators_ignore_case_and_follow_the_documented_semantics() {
    run_operator_rows(&string_rows());
}

#[test]
fn null_checks_look_only_at_presence() {
    run_operator_rows(&null_check_rows());
}

#[test]
fn every_operator_has_a_row_for_every_situation() {
    let rows: Vec<Row> = [number_rows(), bool_rows(), string_rows(), null_check_rows()]
        .into_iter()
        .flatten()
        .collect();
    let covered: HashSet<(&str, Situation)> = rows
        .iter()
        .map(|row| (row.operator, row.situation))
        .collect();
    let mut gaps = Vec::new();
    for operator in OperatorType::ALL {
        for situation in SITUATIONS {
            if !covered.contains(&(operator.as_str(), situation)) {
                gaps.push(format!("{operator} has no {situation:?} row"));
            }
        }
    }
    assert!(gaps.is_empty(), "{}", gaps.join("\n"));
}

// ---- whole filters: keys, combinations, event types, subjects ----

struct Case {
    shows: &'static str,
    filter: Value,
    event: Value,
    schema: Schema,
    expected: bool,
}

fn eg(shows: &'static str, filter: Value, event: &Value, expected: bool) -> Case {
    Case {
        shows,
        filter,
        event: event.clone(),
        schema: Schema::EventGrid,
        expected,
    }
}

fn ce(shows: &'static str, filter: Value, event: &Value, expected: bool) -> Case {
    Case {
        shows,
        filter,
        event: event.clone(),
        schema: Schema::CloudEvents,
        expected,
    }
}

/// A filter of one advanced filter: `adv("StringIn", "data.a", json!(["x"]))`.
fn adv(operator: &str, key: &str, operand: Value) -> Value {
    let mut filter = json!({"operatorType": operator, "key": key});
    match operand {
        Value::Null => {}
        Value::Array(_) => filter["values"] = operand,
        single => filter["value"] = single,
    }
    json!({"advancedFilters": [filter]})
}

fn run_cases(cases: &[Case]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let got = parse(&case.filter).matches(&Json::from(&case.event), case.schema);
            (got != case.expected).then(|| {
                format!(
                    "{}: filter {} on {:?} event: expected {}, got {}",
                    case.shows,
                    case.filter,
                    case.schema,
                    verdict(case.expected),
                    verdict(got)
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn event_grid_event() -> Value {
    json!({
        "id": "e1",
        "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventGrid/topics/orders",
        "subject": "/orders/1",
        "eventType": "NewOrder",
        "eventTime": "2024-05-01T12:00:00Z",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "data": {
            "orderId": "o-1",
            "customer": {"tier": "Gold", "address": {"country": "NL"}},
            "Key": "upper",
            "key": "lower",
            "total": 150.25,
            "a": {"b": {"c": {"d": {"e": 1}}}},
        },
    })
}

/// The docs' CloudEvents example, with a few more attributes.
fn cloud_event() -> Value {
    json!({
        "specversion": "1.0",
        "type": "com.example.someevent",
        "source": "/mycontext",
        "id": "C234-1234-1234",
        "time": "2018-04-05T17:31:00Z",
        "subject": null,
        "comexampleextension1": "value",
        "comexampleothervalue": 5,
        "comexampleflag": true,
        "datacontenttype": "application/json",
        "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": true},
    })
}

#[test]
#[rustfmt::skip] // one row per line, aligned as a table
fn event_grid_keys_name_the_envelope_fields_and_data_paths() {
    let e = event_grid_event();
    run_cases(&[
        eg("id",                                  adv("StringIn", "id", json!(["e1"])), &e, MATCH),
        eg("ID, as the docs spell it",            adv("StringIn", "ID", json!(["E1"])), &e, MATCH),
        eg("Topic",                               adv("StringEndsWith", "Topic", json!(["/topics/orders"])), &e, MATCH),
        eg("Subject",                             adv("StringBeginsWith", "Subject", json!(["/orders/"])), &e, MATCH),
        eg("EventType",                           adv("StringIn", "EventType", json!(["neworder"])), &e, MATCH),
        eg("DataVersion",                         adv("StringIn", "DataVersion", json!(["1.0"])), &e, MATCH),
        eg("eventTime is not a documented key",   adv("IsNullOrUndefined", "eventTime", Value::Null), &e, MATCH),
        eg("metadataVersion is not either",       adv("IsNotNull", "metadataVersion", Value::Null), &e, NO_MATCH),
        eg("data.orderId",                        adv("StringIn", "data.orderId", json!(["O-1"])), &e, MATCH),
        eg("Data.Key1 style capitalisation",      adv("StringIn", "Data.Customer.Tier", json!(["gold"])), &e, MATCH),
        eg("three levels of nesting",             adv("StringIn", "data.customer.address.country", json!(["nl"])), &e, MATCH),
        eg("no depth limit",                      adv("NumberIn", "data.a.b.c.d.e", json!([1])), &e, MATCH),
        eg("a number in data",                    adv("NumberGreaterThan", "data.total", json!(150)), &e, MATCH),
        eg("the exact spelling wins over case",   adv("StringIn", "data.key", json!(["lower"])), &e, MATCH),
        eg("the exact spelling wins, other case", adv("StringIn", "data.Key", json!(["upper"])), &e, MATCH),
        eg("a path through a string is missing",  adv("IsNullOrUndefined", "data.orderId.x", Value::Null), &e, MATCH),
        eg("a missing data field",                adv("StringIn", "data.nope", json!(["x"])), &e, NO_MATCH),
        eg("data itself is a key",                adv("IsNotNull", "data", Value::Null), &e, MATCH),
        eg("an unknown top-level key is missing", adv("StringNotIn", "orderId", json!(["o-1"])), &e, MATCH),
    ]);
}

#[test]
#[rustfmt::skip] // one row per line, aligned as a table
fn cloud_events_keys_name_attributes_extensions_and_data_paths() {
    let e = cloud_event();
    run_cases(&[
        ce("id",                                        adv("StringIn", "id", json!(["c234-1234-1234"])), &e, MATCH),
        ce("source",                                    adv("StringIn", "source", json!(["/mycontext"])), &e, MATCH),
        ce("type",                                      adv("StringBeginsWith", "type", json!(["com.example."])), &e, MATCH),
        ce("attribute names ignore case",               adv("StringIn", "Type", json!(["com.example.someevent"])), &e, MATCH),
        ce("specversion",                               adv("StringIn", "specversion", json!(["1.0"])), &e, MATCH),
        ce("time",                                      adv("StringBeginsWith", "time", json!(["2018-04-05"])), &e, MATCH),
        ce("a null subject is null",                    adv("IsNullOrUndefined", "subject", Value::Null), &e, MATCH),
        ce("a string extension",                        adv("StringIn", "comexampleextension1", json!(["VALUE"])), &e, MATCH),
        ce("the docs' example: a number extension as a string", adv("StringBeginsWith", "comexampleothervalue", json!(["5", "1"])), &e, MATCH),
        ce("a number extension as a number",            adv("NumberIn", "comexampleothervalue", json!([5])), &e, MATCH),
        ce("a bool extension as a string",              adv("StringIn", "comexampleflag", json!(["true"])), &e, MATCH),
        ce("a bool extension as a bool",                adv("BoolEquals", "comexampleflag", json!(true)), &e, MATCH),
        ce("a missing extension",                       adv("IsNullOrUndefined", "comexamplemissing", Value::Null), &e, MATCH),
        ce("data.appinfoA",                             adv("StringIn", "data.appinfoA", json!(["ABC"])), &e, MATCH),
        ce("data.appinfoB",                             adv("NumberGreaterThanOrEquals", "data.appinfoB", json!(123)), &e, MATCH),
        ce("data.appinfoC",                             adv("BoolEquals", "data.appinfoC", json!(true)), &e, MATCH),
        ce("numbers inside data stay numbers",          adv("StringIn", "data.appinfoB", json!(["123"])), &e, NO_MATCH),
        ce("eventType is an Event Grid name",           adv("IsNullOrUndefined", "eventType", Value::Null), &e, MATCH),
    ]);
}

#[test]
#[rustfmt::skip] // one row per line, aligned as a table
fn values_of_one_filter_are_ored_and_separate_filters_are_anded() {
    let e = event_grid_event();
    let both = |first: Value, second: Value| json!({"advancedFilters": [first, second]});
    let contains = |key: &str, values: Value| json!({"operatorType": "StringContains", "key": key, "values": values});
    run_cases(&[
        eg("one value of several is enough",          adv("StringContains", "subject", json!(["/invoices/", "/orders/"])), &e, MATCH),
        eg("none of several values",                  adv("StringContains", "subject", json!(["/invoices/", "/refunds/"])), &e, NO_MATCH),
        eg("two filters that both hold",              both(contains("subject", json!(["/orders/"])), contains("data.orderId", json!(["o-"]))), &e, MATCH),
        eg("two filters, the second fails",           both(contains("subject", json!(["/orders/"])), contains("data.orderId", json!(["x"]))), &e, NO_MATCH),
        eg("two filters, the first fails",            both(contains("subject", json!(["/x/"])), contains("data.orderId", json!(["o-"]))), &e, NO_MATCH),
        eg("the same key in two filters, both hold",  both(contains("Subject", json!(["/orders"])), contains("Subject", json!(["/1"]))), &e, MATCH),
        eg("the same key in two filters, one fails",  both(contains("Subject", json!(["/orders"])), contains("Subject", json!(["/2"]))), &e, NO_MATCH),
        eg("a NotIn with several values is an AND",   adv("StringNotIn", "data.orderId", json!(["o-2", "o-1"])), &e, NO_MATCH),
    ]);
}

#[test]
#[rustfmt::skip] // one row per line, aligned as a table
fn included_event_types_ignore_case_and_all_means_every_type() {
    let e = event_grid_event();
    let c = cloud_event();
    let types = |list: Value| json!({"includedEventTypes": list});
    run_cases(&[
        eg("no filter at all",                    json!({}), &e, MATCH),
        eg("an empty list lets everything in",    types(json!([])), &e, MATCH),
        eg("All lets everything in",              types(json!(["All"])), &e, MATCH),
        eg("all, in any case",                    types(json!(["OrderAccepted", "all"])), &e, MATCH),
        eg("the listed type",                     types(json!(["NewOrder"])), &e, MATCH),
        eg("decided: the type ignores case",      types(json!(["neworder"])), &e, MATCH),
        eg("one of several types",                types(json!(["OrderAccepted", "NewOrder"])), &e, MATCH),
        eg("an unlisted type",                    types(json!(["OrderAccepted"])), &e, NO_MATCH),
        eg("a prefix of the type is not the type", types(json!(["New"])), &e, NO_MATCH),
        ce("CloudEvents use type",                types(json!(["com.example.someevent"])), &c, MATCH),
        ce("CloudEvents, an unlisted type",       types(json!(["NewOrder"])), &c, NO_MATCH),
    ]);
}

#[test]
#[rustfmt::skip] // one row per line, aligned as a table
fn subject_filters_ignore_case_unless_told_otherwise() {
    let e = event_grid_event();
    let c = cloud_event();
    let subject = |begins: Option<&str>, ends: Option<&str>, sensitive: bool| {
        let mut filter = json!({"isSubjectCaseSensitive": sensitive});
        if let Some(begins) = begins {
            filter["subjectBeginsWith"] = json!(begins);
        }
        if let Some(ends) = ends {
            filter["subjectEndsWith"] = json!(ends);
        }
        filter
    };
    run_cases(&[
        eg("a prefix",                                subject(Some("/orders/"), None, false), &e, MATCH),
        eg("a prefix in another case",                subject(Some("/ORDERS/"), None, false), &e, MATCH),
        eg("a prefix in another case, sensitive",     subject(Some("/ORDERS/"), None, true), &e, NO_MATCH),
        eg("a prefix in the same case, sensitive",    subject(Some("/orders/"), None, true), &e, MATCH),
        eg("not a prefix",                            subject(Some("/invoices/"), None, false), &e, NO_MATCH),
        eg("a suffix",                                subject(None, Some("/1"), false), &e, MATCH),
        eg("a suffix in another case",                subject(None, Some("RS/1"), false), &e, MATCH),
        eg("a suffix in another case, sensitive",     subject(None, Some("RS/1"), true), &e, NO_MATCH),
        eg("not a suffix",                            subject(None, Some("/2"), false), &e, NO_MATCH),
        eg("prefix and suffix both hold",             subject(Some("/orders"), Some("1"), false), &e, MATCH),
        eg("prefix holds, suffix does not",           subject(Some("/orders"), Some("2"), false), &e, NO_MATCH),
        eg("no wildcards: * is literal",              subject(Some("/orders/*"), None, false), &e, NO_MATCH),
        eg("empty prefix and suffix match anything",  subject(Some(""), Some(""), true), &e, MATCH),
        ce("a CloudEvent without subject, a prefix",  subject(Some("/x"), None, false), &c, NO_MATCH),
        ce("a CloudEvent without subject, empty prefix", subject(Some(""), None, false), &c, MATCH),
    ]);
}

#[test]
#[rustfmt::skip] // one row per line, aligned as a table
fn event_types_subjects_and_advanced_filters_are_anded() {
    let e = event_grid_event();
    let filter = |event_type: &str, prefix: &str, country: &str| {
        json!({
            "includedEventTypes": [event_type],
            "subjectBeginsWith": prefix,
            "advancedFilters": [{"operatorType": "StringIn", "key": "data.customer.address.country", "values": [country]}],
        })
    };
    run_cases(&[
        eg("all three hold",              filter("NewOrder", "/orders", "NL"), &e, MATCH),
        eg("the event type fails",        filter("OrderAccepted", "/orders", "NL"), &e, NO_MATCH),
        eg("the subject fails",           filter("NewOrder", "/invoices", "NL"), &e, NO_MATCH),
        eg("the advanced filter fails",   filter("NewOrder", "/orders", "BE"), &e, NO_MATCH),
    ]);
}

#[test]
#[rustfmt::skip] // one row per line, aligned as a table
fn the_repository_subscription_filter_shape_lets_only_new_orders_through() {
    let filter = json!({
        "includedEventTypes": ["NewOrder"],
        "isSubjectCaseSensitive": false,
        "enableAdvancedFilteringOnArrays": true,
        "advancedFilters": []
    });
    let mut other = event_grid_event();
    other["eventType"] = json!("OrderAccepted");
    run_cases(&[
        eg("a NewOrder event",       filter.clone(), &event_grid_event(), MATCH),
        eg("an OrderAccepted event", filter, &other, NO_MATCH),
    ]);
}
