//! The HTTP trigger's side of the custom-handler wire format, as the host writes and reads it
//! (Azure/azure-functions-host at 4.1037):
//!
//! - the request, `Data.<trigger name>`: `HttpRequestExtensions.GetRequestAsJObject`:
//!   `Url` (`scheme://Host/path?query` as received), `Method`, `Query` (name → the values joined
//!   with `,`, `StringValues.ToString`), `Headers` (name → every value, `JObject.FromObject` of the
//!   header dictionary), `Params` (route values; absent optional ones `null`), and `Body` only when
//!   `Content-Length` is above 0 (a chunked body without one is not read): text, or base64 when the
//!   media type is `application/octet-stream` or `multipart/*` (the body as `byte[]`).
//!   `Identities` (the request's claims identities) is not sent: what the host puts there under
//!   Core Tools is not known here.
//! - the answer, `Outputs.<http output name>`: `HttpScriptInvocationResultExtensions.
//!   GetHttpOutputBindingResponse` reads it with `JsonConvert.DeserializeObject<
//!   HttpOutputBindingResponse>(value.ToString())` (`StatusCode`, `Status`, `Body`, `Headers`,
//!   names in any case). Anything that does not read (a bare string, a number, an array, `null`,
//!   `headers` that is not an object, a `statusCode` that is an object) fails the invocation. The
//!   response is then made by `HttpBinding.CreateResult` and `RawScriptResult`: the status is
//!   `statusCode` when it is an integer's text, else 200 (`status` is never consulted, because the
//!   host's object always has a `StatusCode` key, even a null one); the body a string as it is, a
//!   JSON object or array as Newtonsoft's indented text, a number as its text, `true`/`false` as
//!   .NET writes them (`True`/`False`), `null` as nothing; headers' values as their text
//!   (`Content-Type` sets the content type; a null value fails). Without a `Content-Type` the body
//!   is written by ASP.NET's `StringOutputFormatter`: `text/plain; charset=utf-8` (inferred from
//!   the formatter; not run). A missing output gives 200 with the body `{}` (the host's empty
//!   object, serialized).
//! - `$return` (an `http` output named `$return`, answered in `ReturnValue`): read by
//!   `HttpBinding.CreateResult` directly, so there `status` counts too and a number is accepted
//!   (inferred from the source; not run).

use axum::http::{HeaderName, HeaderValue, StatusCode};
use base64::Engine as _;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use super::route::RouteValues;

/// A JSON object whose members keep their order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ordered<V>(pub Vec<(String, V)>);

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `Data.req`.
#[derive(Debug, Serialize)]
pub struct RequestData {
    #[serde(rename = "Url")]
    pub url: String,
    #[serde(rename = "Method")]
    pub method: String,
    #[serde(rename = "Query")]
    pub query: Ordered<String>,
    #[serde(rename = "Headers")]
    pub headers: Ordered<Vec<String>>,
    #[serde(rename = "Params")]
    pub params: Ordered<Option<String>>,
    #[serde(rename = "Body", skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// The query string as ASP.NET's `QueryHelpers` reads it: `+` is a space, names and values are
/// percent-decoded, a name without `=` has the value `""`, a repeated name collects its values
/// (joined with `,` as `StringValues.ToString` joins them).
pub fn query(raw: Option<&str>) -> Ordered<String> {
    let mut members: Vec<(String, Vec<String>)> = Vec::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        let (name, value) = (decode(name), decode(value));
        match members
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            Some((_, values)) => values.push(value),
            None => members.push((name, vec![value])),
        }
    }
    Ordered(members.into_iter().map(|(n, v)| (n, v.join(","))).collect())
}

/// A header name as Kestrel presents known headers (`Content-Type`, `User-Agent`): each
/// dash-separated word capitalised. HTTP/1.1 headers reach the stand-in lower-cased (hyper), so
/// unknown headers are written the same way; handlers should compare names ignoring case.
pub fn header_name(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// `Params`: the route values.
pub fn params(values: &RouteValues) -> Ordered<Option<String>> {
    Ordered(values.clone())
}

/// `Body`: present only for `Content-Length` > 0; base64 for octet-stream and multipart bodies.
pub fn body(
    content_length: Option<u64>,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Option<String> {
    if content_length.unwrap_or(0) == 0 {
        return None;
    }
    let media = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/octet-stream" || media.starts_with("multipart/") {
        Some(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// The HTTP response an invocation's answer makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

/// Why an answer makes no response; the host fails the invocation (500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Failed while trying to Deserialize to httpOutputBindingResponse. Output is not in expected format: {0}"
)]
pub struct OutputFormatError(pub String);

/// How the status is read: from the named output (`statusCode` text only) or from `$return`
/// (`statusCode` or `status`, text or number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Named,
    Return,
}

/// The response for a named `http` output's value (`None`: the handler did not set it).
pub fn response(value: Option<&Value>, source: Source) -> Result<Response, OutputFormatError> {
    let Some(value) = value else {
        return finish(
            StatusCode::OK,
            &[],
            Some(&Value::Object(Default::default())),
            true,
        );
    };
    // `value.ToString()` of a string is its text, which must itself be JSON.
    let parsed;
    let value = match value {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text)
                .map_err(|e| OutputFormatError(format!("{text:.60?} is not JSON: {e}")))?;
            &parsed
        }
        other => other,
    };
    let Value::Object(members) = value else {
        return match source {
            // CreateResult writes what is not a response object as the body.
            Source::Return => finish(StatusCode::OK, &[], Some(value), false),
            Source::Named => Err(OutputFormatError(format!(
                "expected an object with statusCode, headers and body, got {value:.60}"
            ))),
        };
    };
    let get = |key: &str| {
        members
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    };
    let status_value = match source {
        Source::Named => get("statusCode"),
        Source::Return => get("statusCode").or_else(|| get("status")),
    };
    let status = match status_value {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => text.trim().parse::<i64>().ok(),
        Some(Value::Number(n)) if source == Source::Return => n.as_i64(),
        Some(Value::Number(n)) => n.as_i64(), // Newtonsoft reads a number into the string "201"
        Some(Value::Bool(_)) if source == Source::Named => None,
        Some(other) if source == Source::Named => {
            return Err(OutputFormatError(format!("statusCode is {other}")));
        }
        Some(_) => None,
    };
    let status = match status {
        None => StatusCode::OK,
        Some(code) => u16::try_from(code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| OutputFormatError(format!("{code} is not an HTTP status code")))?,
    };
    let headers: Vec<(String, Value)> = match get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(h)) => h.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(other) => {
            return Err(OutputFormatError(format!(
                "headers is {other:.60}, not an object"
            )));
        }
    };
    match (get("body"), source) {
        (Some(body), _) => finish(status, &headers, Some(body), false),
        // A $return object without `body` is not a response object: it is the body.
        (None, Source::Return) => finish(StatusCode::OK, &[], Some(value), true),
        (None, Source::Named) => finish(status, &headers, None, false),
    }
}

fn finish(
    status: StatusCode,
    headers: &[(String, Value)],
    body: Option<&Value>,
    compact: bool,
) -> Result<Response, OutputFormatError> {
    let mut out = Vec::new();
    let mut content_type = None;
    for (name, value) in headers {
        let text = match value {
            Value::Null => {
                return Err(OutputFormatError(format!("the header {name:?} is null")));
            }
            other => dotnet_text(other, false),
        };
        let header_value = HeaderValue::from_str(&text).map_err(|_| {
            OutputFormatError(format!(
                "the header {name:?} has the value {text:.60?}, which HTTP cannot carry"
            ))
        })?;
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(header_value);
            continue;
        }
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| OutputFormatError(format!("{name:?} is not a header name")))?;
        // A second header of the same name (in another case) is dropped, as the host's
        // `AccumulateDuplicateHeader` leaves the first.
        if !out
            .iter()
            .any(|(n, _): &(HeaderName, HeaderValue)| *n == header_name)
        {
            out.push((header_name, header_value));
        }
    }
    out.push((
        axum::http::header::CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("text/plain; charset=utf-8")),
    ));
    let body = match body {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => dotnet_text(value, compact).into_bytes(),
    };
    Ok(Response {
        status,
        headers: out,
        body,
    })
}

/// A JSON value as the host turns it into text with `ToString()`: strings as they are, containers
/// as Newtonsoft's indented JSON (or compact for the host's own empty object), booleans as .NET
/// writes them.
fn dotnet_text(value: &Value, compact: bool) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => String::new(),
        Value::Number(n) => n.to_string(),
        container if compact => container.to_string(),
        container => serde_json::to_string_pretty(container).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn named(value: Value) -> Result<Response, OutputFormatError> {
        response(Some(&value), Source::Named)
    }

    #[test]
    fn the_query_is_read_as_aspnet_reads_it() {
        let q = query(Some("a=1&b=x+y&a=2&flag&c=%C3%A9"));
        assert_eq!(
            q.0,
            [
                ("a".to_owned(), "1,2".to_owned()),
                ("b".to_owned(), "x y".to_owned()),
                ("flag".to_owned(), String::new()),
                ("c".to_owned(), "é".to_owned()),
            ]
        );
    }

    #[test]
    fn header_names_are_capitalised_as_kestrel_names_known_headers() {
        assert_eq!(header_name("content-type"), "Content-Type");
        assert_eq!(
            header_name("x-ms-client-principal-name"),
            "X-Ms-Client-Principal-Name"
        );
    }

    #[test]
    fn a_body_is_sent_only_with_a_content_length() {
        assert_eq!(body(None, Some("text/plain"), b"chunked"), None);
        assert_eq!(body(Some(0), None, b""), None);
        assert_eq!(
            body(Some(2), Some("application/json"), b"{}").as_deref(),
            Some("{}")
        );
        assert_eq!(
            body(Some(2), Some("application/octet-stream"), b"hi").as_deref(),
            Some("aGk=")
        );
    }

    #[test]
    fn named_outputs_make_responses_as_the_host_makes_them() {
        let r = named(json!({"statusCode": 201, "headers": {"X-A": 1, "Content-Type": "application/json"}, "body": "{\"ok\":true}"})).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body, br#"{"ok":true}"#);
        assert!(r.headers.contains(&(
            HeaderName::from_static("x-a"),
            HeaderValue::from_static("1")
        )));
        assert!(r.headers.contains(&(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json")
        )));
        let object_body = named(json!({"StatusCode": "202", "body": {"a": [1]}})).unwrap();
        assert_eq!(object_body.status, 202);
        assert_eq!(
            String::from_utf8(object_body.body).unwrap(),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
        let status_only = named(json!({"status": 404, "body": "x"})).unwrap();
        assert_eq!(
            status_only.status, 200,
            "the host never reads `status` of a named output"
        );
        assert_eq!(named(json!({"body": true})).unwrap().body, b"True");
        let missing = response(None, Source::Named).unwrap();
        assert_eq!(
            (missing.status, missing.body),
            (StatusCode::OK, b"{}".to_vec())
        );
        let text = named(json!("{\"statusCode\":\"204\"}")).unwrap();
        assert_eq!(text.status, 204);
    }

    #[test]
    fn outputs_the_host_cannot_read_fail_the_invocation() {
        for bad in [
            json!("not json"),
            json!(5),
            json!([1]),
            json!(null),
            json!({"headers": "x", "body": ""}),
            json!({"statusCode": {}, "body": ""}),
            json!({"headers": {"X-A": null}, "body": ""}),
            json!({"statusCode": 42, "body": ""}),
        ] {
            assert!(named(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn return_values_honour_status_and_numbers() {
        let r = response(Some(&json!({"status": 202, "body": "ok"})), Source::Return).unwrap();
        assert_eq!((r.status, r.body), (StatusCode::ACCEPTED, b"ok".to_vec()));
        let plain = response(Some(&json!({"a": 1})), Source::Return).unwrap();
        assert_eq!(plain.body, br#"{"a":1}"#);
    }
}
