use proptest::prelude::*;
use serde_json::value::RawValue;

use super::strategies::{arbitrary_json, json_like};
use super::*;

fn parse(text: &str) -> Result<Json, JsonError> {
    Json::parse(text.as_bytes(), 64)
}

fn number(text: &str) -> Number {
    Number::parse(text).unwrap_or_else(|| panic!("{text} is a JSON number"))
}

#[test]
fn numbers_keep_their_text_whatever_their_size() {
    for text in [
        "1e309",
        "-1e-400",
        "0.12345678901234567890",
        "12345678901234567890123",
        "150.00",
    ] {
        assert_eq!(
            parse(text).unwrap(),
            Json::Number(Number(text.into())),
            "{text}"
        );
    }
}

#[test]
fn numbers_compare_exactly() {
    use Ordering::*;
    let cases = [
        ("1", "1.0", Equal),
        ("150.00", "1.5e2", Equal),
        ("0", "-0.0", Equal),
        ("-0", "0e10", Equal),
        ("1e309", "1e308", Greater),
        ("-1e309", "-1e308", Less),
        ("0.1", "0.10000000000000001", Less),
        ("10.000000000000000001", "10", Greater),
        ("1e-400", "0", Greater),
        ("-1e-400", "0", Less),
        ("100", "99.999999999999999999999", Greater),
        ("0.001", "1e-3", Equal),
        ("12345678901234567890", "12345678901234567891", Less),
        ("1e99999999999999999999", "1e308", Greater),
        ("120", "12e1", Equal),
        ("0.0120", "1.2e-2", Equal),
    ];
    for (a, b, expected) in cases {
        assert_eq!(number(a).exact_cmp(&number(b)), expected, "{a} vs {b}");
        assert_eq!(
            number(b).exact_cmp(&number(a)),
            expected.reverse(),
            "{b} vs {a}"
        );
    }
}

#[test]
fn nesting_beyond_the_limit_is_refused_with_where() {
    let at_limit = format!("{}{}", "[".repeat(64), "]".repeat(64));
    assert!(parse(&at_limit).is_ok());
    let over = format!("{}{}", "[".repeat(65), "]".repeat(65));
    let err = parse(&over).unwrap_err();
    assert_eq!(err.kind, JsonErrorKind::TooDeep { limit: 64 });
    assert_eq!(err.offset, 64);
    let objects = format!("{}1{}", "{\"a\":".repeat(65), "}".repeat(65));
    assert!(matches!(
        parse(&objects).unwrap_err().kind,
        JsonErrorKind::TooDeep { .. }
    ));
}

#[test]
fn strings_are_decoded_and_lone_surrogates_become_replacement_characters() {
    assert_eq!(
        parse(r#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#).unwrap(),
        Json::String("a\"\\/\u{8}\u{c}\n\r\té😀".into())
    );
    assert_eq!(
        parse(r#""\ud800x\udc00\ud800\u0041""#).unwrap(),
        Json::String("\u{FFFD}x\u{FFFD}\u{FFFD}A".into())
    );
}

#[test]
fn lookups_take_the_exact_name_last_then_any_case() {
    let object = parse(r#"{"Id":"first","id":"a","id":"b","DATA":1}"#).unwrap();
    assert_eq!(object.get("id").and_then(Json::as_str), Some("b"));
    assert_eq!(object.get("Id").and_then(Json::as_str), Some("first"));
    assert_eq!(object.get("data"), Some(&Json::Number(number("1"))));
    assert_eq!(object.get("missing"), None);
}

#[test]
fn object_spans_point_at_each_members_text() {
    let text = br#" { "a" : [1, 2] , "b":"x\n" ,"c":{"d":1.50}} "#;
    let mut parser = Parser::new(text, 64);
    let spanned = parser.object_with_spans().unwrap();
    parser.end().unwrap();
    let raw: Vec<&str> = spanned
        .spans
        .iter()
        .map(|span| std::str::from_utf8(&text[span.clone()]).unwrap())
        .collect();
    assert_eq!(raw, ["[1, 2]", r#""x\n""#, r#"{"d":1.50}"#]);
}

#[test]
fn errors_name_the_problem_and_the_byte() {
    for (text, message) in [
        ("", "unexpected end of input at byte 0"),
        ("[1,]", "expected a value at byte 3"),
        ("{\"a\" 1}", "expected ':' at byte 5"),
        ("01", "trailing characters at byte 1"),
        ("\"a\u{1}\"", "control character in string at byte 2"),
        ("1.", "invalid number at byte 0"),
        ("nul", "expected a value at byte 0"),
        ("\"\\x\"", "invalid escape at byte 3"),
    ] {
        assert_eq!(parse(text).unwrap_err().to_string(), message, "{text:?}");
    }
    assert_eq!(
        Json::parse(b"\"\xff\"", 64).unwrap_err().kind,
        JsonErrorKind::InvalidUtf8
    );
}

#[test]
fn writing_keeps_numbers_and_escapes_what_json_needs() {
    let value = parse(r#"{"n":1.50e3,"s":"q\"\u0001\t/é","a":[true,null]}"#).unwrap();
    let written = String::from_utf8(value.to_vec()).unwrap();
    assert_eq!(
        written,
        r#"{"n":1.50e3,"s":"q\"\u0001\t/é","a":[true,null]}"#
    );
    assert_eq!(parse(&written).unwrap(), value);
}

proptest! {
    /// Same verdict as serde_json (which has no nesting limit for raw values and keeps number
    /// text), on near-JSON noise and on valid documents alike.
    #[test]
    fn accepts_exactly_what_serde_json_accepts(text in prop_oneof![json_like(), arbitrary_json()]) {
        let ours = Json::parse(text.as_bytes(), 1000);
        let theirs = serde_json::from_str::<Box<RawValue>>(&text);
        prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "ours {:?}, serde_json {:?}", ours, theirs.err());
    }

    /// Skipping checks exactly what parsing checks, without building anything.
    #[test]
    fn skipping_accepts_what_parsing_accepts(text in prop_oneof![json_like(), arbitrary_json()]) {
        let mut parser = Parser::new(text.as_bytes(), 1000);
        let skipped = parser.skip().and_then(|()| parser.end());
        prop_assert_eq!(skipped, Json::parse(text.as_bytes(), 1000).map(|_| ()));
    }

    /// A value found without building the document is the one the tree holds at that path,
    /// with repeated and differently cased names (names drawn from a few so paths hit).
    #[test]
    fn values_at_a_path_are_those_of_the_tree(
        text in prop_oneof![json_like(), arbitrary_json(), nested_objects()],
        path in prop::collection::vec(prop::sample::select(&["a", "A", "b", ""][..]), 0..4),
    ) {
        let walked = Json::parse(text.as_bytes(), 64)
            .ok()
            .and_then(|tree| path.iter().try_fold(&tree, |value, name| value.get(name)).cloned());
        prop_assert_eq!(Json::value_at(text.as_bytes(), &path, 64), walked);
    }

    /// Values serde_json can represent read the same through both, and write back to text that
    /// parses to the same tree.
    #[test]
    fn agrees_with_serde_json_on_values_and_round_trips(text in arbitrary_json()) {
        let ours = Json::parse(text.as_bytes(), 64).unwrap();
        prop_assert_eq!(Json::parse(&ours.to_vec(), 64).unwrap(), ours.clone());
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
            // serde_json has no duplicate keys, and rewrites numbers through f64; compare shapes
            // with numbers by value, objects as serde_json sees them (last duplicate wins).
            prop_assert!(same(&ours, &value), "{} vs {}", ours, value);
        }
    }

    #[test]
    fn exact_comparison_agrees_with_f64_where_f64_is_exact(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000, ea in 0u32..4, eb in 0u32..4) {
        // a / 10^ea written as decimal text: exactly representable comparisons via integers.
        let text = |n: i64, e: u32| {
            let digits = n.unsigned_abs().to_string();
            let padded = format!("{digits:0>width$}", width = e as usize + 1);
            let (int, frac) = padded.split_at(padded.len() - e as usize);
            let sign = if n < 0 { "-" } else { "" };
            if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") }
        };
        let scaled = |n: i64, e: u32| i128::from(n) * 10i128.pow(6 - e);
        prop_assert_eq!(
            number(&text(a, ea)).exact_cmp(&number(&text(b, eb))),
            scaled(a, ea).cmp(&scaled(b, eb))
        );
    }
}

fn same(ours: &Json, theirs: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (ours, theirs) {
        (Json::Null, Value::Null) => true,
        (Json::Bool(a), Value::Bool(b)) => a == b,
        // serde_json's default float parser may be off by an ulp; the text is what matters here.
        (Json::Number(a), Value::Number(b)) => {
            let (a, b) = (a.to_f64(), b.as_f64().unwrap_or(f64::NAN));
            a == b || ((a - b) / a).abs() < 1e-15
        }
        (Json::String(a), Value::String(b)) => **a == **b,
        (Json::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Json::Object(_), Value::Object(b)) => b
            .iter()
            .all(|(key, value)| ours.get(key).is_some_and(|mine| same(mine, value))),
        _ => false,
    }
}

/// Objects nesting objects whose names are mostly a few, some repeated or differently cased.
fn nested_objects() -> impl Strategy<Value = String> {
    let name = prop::sample::select(&["a", "A", "b", "", "\\u0061"][..]);
    let leaf = prop_oneof![
        Just("1".to_owned()),
        Just("\"x\"".to_owned()),
        Just("[2,{\"a\":3}]".to_owned())
    ];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        prop::collection::vec((name.clone(), inner), 0..4).prop_map(|members| {
            let members: Vec<String> = members
                .into_iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", members.join(","))
        })
    })
}
