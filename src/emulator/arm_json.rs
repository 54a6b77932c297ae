//! Reading Azure resource JSON (the subscriptions file's topics, subscriptions and filters) the
//! strict way ARM does: unknown properties are reported with a "did you mean" hint, and every
//! message names the property's path and quotes the value, shortened.

use serde_json::{Map, Value};

use crate::json::eq_ignore_case;

/// `parent.child`, or `child` at the root.
pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// A value as JSON text for an error message, shortened when long.
pub fn describe(value: &Value) -> String {
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
pub fn quote(text: &str) -> String {
    describe(&Value::String(text.to_owned()))
}

/// Reports every property of `object` not in `known`, so a typo is never silently ignored.
pub fn check_properties(
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
