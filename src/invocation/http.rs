//! An `httpTrigger` function's request and `http` output, as the Functions host hands them to a
//! custom handler that does not forward HTTP requests (functions-custom-handlers, "Request
//! payload"): `Data.<trigger name>` is `{"Url", "Method", "Query": {name: value}, "Headers":
//! {name: [values]}, "Params": {name: value}, "Body"}`, and `Outputs.<output name>` is
//! `{"statusCode", "headers": {name: value}, "body": "<string>"}`.
//!
//! Invariants:
//! - header and query names are looked up case-insensitively (ASP.NET Core's collections are),
//!   route parameters by their exact name in the route template;
//! - a response body is always a string (never a bare base64-looking string *output*: the
//!   response is an object, which the host does not try to base64-decode).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `Data.req`: the HTTP request that triggered the function.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HttpRequestData {
    #[serde(rename = "Url", alias = "url", default)]
    pub url: String,
    #[serde(rename = "Method", alias = "method", default)]
    pub method: String,
    /// Query parameters; a repeated one may arrive as a list (the first value is used).
    #[serde(rename = "Query", alias = "query", default)]
    pub query: BTreeMap<String, Value>,
    #[serde(rename = "Headers", alias = "headers", default)]
    pub headers: BTreeMap<String, Value>,
    /// Route parameters (`{orderId}`, `{*path}`).
    #[serde(rename = "Params", alias = "params", default)]
    pub params: BTreeMap<String, Value>,
    #[serde(rename = "Body", alias = "body", default)]
    pub body: Option<Value>,
}

impl HttpRequestData {
    /// The query parameter `name` (case-insensitive).
    pub fn query(&self, name: &str) -> Option<&str> {
        first_text(find(&self.query, name)?)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        first_text(find(&self.headers, name)?)
    }

    /// The route parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        first_text(self.params.get(name)?)
    }
}

fn find<'a>(map: &'a BTreeMap<String, Value>, name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

fn first_text(value: &Value) -> Option<&str> {
    match value {
        Value::String(text) => Some(text),
        Value::Array(values) => values.first().and_then(Value::as_str),
        _ => None,
    }
}

/// `Outputs.res`: the HTTP response the host sends back to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponseData {
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
}

impl HttpResponseData {
    pub fn new(status_code: u16, content_type: &str, body: impl Into<String>) -> Self {
        Self {
            status_code,
            headers: BTreeMap::from([("Content-Type".to_owned(), content_type.to_owned())]),
            body: body.into(),
        }
    }

    /// A JSON body.
    pub fn json(status_code: u16, body: &impl Serialize) -> Self {
        Self::new(
            status_code,
            "application/json; charset=utf-8",
            serde_json::to_string(body).unwrap_or_else(|_| "null".to_owned()),
        )
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.insert(name.to_owned(), value.into());
        self
    }

    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_request_shape_reads_with_case_insensitive_names() {
        let req: HttpRequestData = serde_json::from_value(serde_json::json!({
            "Url": "http://localhost:7071/api/negotiate?orderId=12345",
            "Method": "GET",
            "Query": {"orderId": "12345", "tag": ["a", "b"]},
            "Headers": {"X-MS-CLIENT-PRINCIPAL-NAME": ["ops@shop.example"]},
            "Params": {"path": "tracker"},
            "Body": null
        }))
        .unwrap();
        assert_eq!(req.query("orderid"), Some("12345"));
        assert_eq!(req.query("tag"), Some("a"));
        assert_eq!(
            req.header("x-ms-client-principal-name"),
            Some("ops@shop.example")
        );
        assert_eq!(req.param("path"), Some("tracker"));
        assert_eq!(req.param("Path"), None);
        assert_eq!(req.query("missing"), None);
    }

    #[test]
    fn a_response_serializes_as_the_http_output_binding_reads_it() {
        let res = HttpResponseData::json(404, &serde_json::json!({"error": "x"}))
            .with_header("Cache-Control", "no-store");
        let value = serde_json::to_value(&res).unwrap();
        assert_eq!(value["statusCode"], 404);
        assert_eq!(value["headers"]["Cache-Control"], "no-store");
        assert_eq!(value["body"], "{\"error\":\"x\"}");
        assert_eq!(res.header("cache-control"), Some("no-store"));
    }
}
