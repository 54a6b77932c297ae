//! Inputs for the property tests of every parser that faces the outside (tests only): JSON-like
//! noise built from JSON's own tokens, and valid JSON documents of every shape.

use proptest::prelude::*;

/// Text built from JSON's own tokens, so random input often comes close to being valid.
pub fn json_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just(" ".to_owned()),
        Just("\"k\"".to_owned()),
        Just("\"\\u".to_owned()),
        Just("\\".to_owned()),
        Just("\"".to_owned()),
        Just("true".to_owned()),
        Just("nul".to_owned()),
        Just("null".to_owned()),
        "-?[0-9]{0,3}(\\.[0-9]{0,2})?([eE][+-]?[0-9]{0,3})?",
        "[a-f0-9]{1,4}",
        "\\PC{0,3}",
    ];
    prop::collection::vec(token, 0..24).prop_map(|tokens| tokens.concat())
}

/// Valid JSON documents of every kind, nested, with numbers and strings as their text allows.
pub fn arbitrary_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?",
        "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just(r#""\ud800\u0041""#.to_owned()),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(" , "))),
            prop::collection::vec(("\\PC{0,6}", inner), 0..6).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                    .collect();
                format!("{{ {} }}", members.join(","))
            }),
        ]
    })
}

/// JSON objects whose members are mostly `names` (in any order, some missing, some repeated)
/// with values of every kind or, as often, one of `good` (JSON texts a parser accepts there).
pub fn object_of(
    names: &'static [&'static str],
    good: &'static [&'static str],
) -> impl Strategy<Value = String> {
    let name = prop_oneof![
        3 => prop::sample::select(names).prop_map(str::to_owned),
        1 => "[a-zA-Z]{1,8}",
    ];
    let value = prop_oneof![
        1 => arbitrary_json(),
        1 => prop::sample::select(good).prop_map(str::to_owned),
    ];
    prop::collection::vec((name, value), 0..10).prop_map(|members| {
        let members: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
            .collect();
        format!("{{{}}}", members.join(","))
    })
}
