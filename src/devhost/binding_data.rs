//! A trigger's binding data: the named values binding expressions (`{query.userid}`,
//! `{headers.x-ms-client-principal-id}`, `{orderId}`) are resolved against, and what the host
//! sends the handler as `Metadata` (`ScriptInvocationContextExtensions.ToHttpScriptInvocationContext`).
//!
//! For an HTTP trigger the HTTP extension builds it (`HttpTriggerAttributeBindingProvider.
//! GetRequestBindingDataAsync`, Azure/azure-webjobs-sdk-extensions): the top-level members of a
//! JSON-object body (when `Content-Length` > 0), then each query parameter but `code` (values
//! joined with `,`), then the route values, then `Query` and `Headers` (name → joined values);
//! keys are case-insensitive, a later one overwriting an earlier one's value.
//!
//! In `Metadata` each value is encoded as the host encodes it (`GetHttpScriptInvocationContextValue`):
//! an object stays an object, anything else becomes its JSON text in a string (a string `"x"`
//! arrives as `"\"x\""`); null values and keys ending in `trigger` are left out; `sys` is added.

use serde_json::{Map, Value};

/// Named values, keys compared ignoring case, insertion order kept.
#[derive(Debug, Clone, Default)]
pub struct BindingData(Vec<(String, Value)>);

/// A binding expression that names nothing: the invocation fails ("No value for named
/// parameter", the WebJobs SDK's `BindingDataPathHelper`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("No value for named parameter '{0}'.")]
pub struct UnresolvedExpression(pub String);

impl BindingData {
    /// Sets `key`, keeping the spelling of an existing key that differs only in case.
    pub fn insert(&mut self, key: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
            Some((_, existing)) => *existing = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k.eq_ignore_ascii_case(key))
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// `template` with every `{path.to.value}` replaced (members looked up ignoring case);
    /// text outside braces is kept.
    pub fn resolve(&self, template: &str) -> Result<String, UnresolvedExpression> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start + 1..].find('}') else {
                break;
            };
            let expression = &rest[start + 1..start + 1 + len];
            out.push_str(&rest[..start]);
            let mut path = expression.split('.');
            let mut value = path.next().and_then(|first| self.get(first.trim()));
            for member in path {
                value = value.and_then(|v| match v {
                    Value::Object(m) => m
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(member.trim()))
                        .map(|(_, v)| v),
                    _ => None,
                });
            }
            match value {
                Some(Value::String(text)) => out.push_str(text),
                Some(Value::Null) | None => {
                    return Err(UnresolvedExpression(expression.to_owned()));
                }
                Some(other) => out.push_str(&other.to_string()),
            }
            rest = &rest[start + len + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `Metadata` for the handler: the values encoded as the host encodes them, then `sys`.
    pub fn to_metadata(&self, sys: Value) -> Value {
        let mut metadata = Map::new();
        for (key, value) in &self.0 {
            if key.to_ascii_lowercase().ends_with("trigger") {
                continue;
            }
            let encoded = match value {
                Value::Null => continue,
                Value::Object(_) => value.clone(),
                other => Value::String(other.to_string()),
            };
            metadata.insert(key.clone(), encoded);
        }
        metadata.insert("sys".into(), sys);
        Value::Object(metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> BindingData {
        let mut d = BindingData::default();
        d.insert("orderId", json!("body-value"));
        d.insert("ORDERID", json!("42"));
        d.insert("Query", json!({"userid": "u1"}));
        d.insert("Headers", json!({"X-MS-CLIENT-PRINCIPAL-ID": "p1"}));
        d
    }

    #[test]
    fn expressions_resolve_ignoring_case_and_fail_when_they_name_nothing() {
        let d = data();
        assert_eq!(d.resolve("{query.userid}").unwrap(), "u1");
        assert_eq!(
            d.resolve("user-{headers.x-ms-client-principal-id}")
                .unwrap(),
            "user-p1"
        );
        assert_eq!(
            d.resolve("{orderid}").unwrap(),
            "42",
            "a later key overwrites"
        );
        assert_eq!(d.resolve("plain").unwrap(), "plain");
        assert_eq!(
            d.resolve("{query.missing}").unwrap_err(),
            UnresolvedExpression("query.missing".into())
        );
    }

    #[test]
    fn metadata_encodes_values_as_the_host_does() {
        let mut d = data();
        d.insert("count", json!(3));
        d.insert("gone", Value::Null);
        d.insert("reqTrigger", json!("x"));
        let m = d.to_metadata(json!({"MethodName": "F"}));
        assert_eq!(m["orderId"], "\"42\"");
        assert_eq!(m["count"], "3");
        assert_eq!(m["Query"]["userid"], "u1");
        assert!(m.get("gone").is_none() && m.get("reqTrigger").is_none());
        assert_eq!(m["sys"]["MethodName"], "F");
    }
}
