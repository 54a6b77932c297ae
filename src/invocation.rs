//! The custom-handler wire format between the Azure Functions host and a handler, modelled once:
//! the handler (`functions`) reads [`InvocationRequest`]s and writes [`InvocationResponse`]s; the
//! host stand-in (`devhost`) writes the requests and reads the answers with
//! [`HostAnswer::read`], applying the real host's rules (`DefaultHttpWorkerService`,
//! `HttpScriptInvocationResult` in Azure/azure-functions-host; see
//! `../shared/reference/functions-host-behaviour.md`).
//!
//! Invariants:
//! - request values stay raw JSON text ([`RawValue`]), so nothing here rounds an event's numbers
//!   (what the host itself does to them is the stand-in's business);
//! - an answer the real host would fail (a non-JSON content type, `Outputs` that is not an object,
//!   a log line that is an object or array) fails here too, with the host's message; an empty or
//!   `null` answer, which the real host never completes, is failed at once and says so.
//!
//! [`http`] models the `httpTrigger` request (`Data.<name>`) and the `http` output (`Outputs.<name>`).
//!
//! This module imports nothing else of ordergrid's.

pub mod http;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// `{"Data": {<binding name>: value}, "Metadata": {...}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct InvocationRequest<'a> {
    #[serde(rename = "Data", alias = "data", borrow)]
    pub data: BTreeMap<String, &'a RawValue>,
    #[serde(
        rename = "Metadata",
        alias = "metadata",
        default,
        borrow,
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<&'a RawValue>,
}

/// Why a request body is not an invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request body is not JSON: {0}")]
    NotJson(String),
    #[error("the request body is not an invocation envelope: {0}")]
    NotAnEnvelope(String),
    #[error("the invocation has no {binding:?} binding in Data (found {present:?})")]
    MissingBinding {
        binding: String,
        present: Vec<String>,
    },
}

impl<'a> InvocationRequest<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, RequestError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(RequestError::NotAnEnvelope("the body is empty".into()));
        }
        // Check the syntax first, so "not JSON" and "JSON of the wrong shape" get distinct errors.
        let value: &RawValue =
            serde_json::from_slice(body).map_err(|e| RequestError::NotJson(e.to_string()))?;
        serde_json::from_str(value.get()).map_err(|e| {
            RequestError::NotAnEnvelope(format!(
                "expected {{\"Data\": {{...}}, \"Metadata\": {{...}}}}: {e}"
            ))
        })
    }

    /// The value of the binding named `name` (function.json's `name`, matched exactly).
    pub fn binding(&self, name: &str) -> Result<&'a RawValue, RequestError> {
        self.data
            .get(name)
            .copied()
            .ok_or_else(|| RequestError::MissingBinding {
                binding: name.to_owned(),
                present: self.data.keys().cloned().collect(),
            })
    }

    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `{"Outputs": {...}, "Logs": [...], "ReturnValue": null}`, as a handler writes it. Output
/// values should be JSON objects or arrays, never bare strings: the host base64-decodes strings
/// that look like base64.
#[derive(Debug, Default, Serialize)]
pub struct InvocationResponse {
    #[serde(rename = "Outputs")]
    pub outputs: BTreeMap<String, Box<RawValue>>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Option<Box<RawValue>>,
}

impl InvocationResponse {
    pub fn log(message: impl Into<String>) -> Self {
        Self {
            logs: vec![message.into()],
            ..Default::default()
        }
    }
}

/// A 2xx answer as the Functions host reads it.
#[derive(Debug, Default)]
pub struct HostAnswer {
    /// Output values by binding name, exactly as the handler spelt the names (the host looks
    /// them up case-sensitively, so `OutputEvents` never reaches a binding named `outputEvents`).
    pub outputs: BTreeMap<String, Box<RawValue>>,
    /// Log lines, as the host logs them (numbers and booleans as their text, `null` as `[null]`).
    pub logs: Vec<String>,
    /// `ReturnValue`, for a binding named `$return`; `None` when absent or `null`.
    pub return_value: Option<Box<RawValue>>,
}

/// Why the host fails an invocation whose answer was 2xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error(
        "No MediaTypeFormatter is available to read an object of type 'HttpScriptInvocationResult' \
         from content with media type '{0}'; the custom handler must answer with a JSON content type"
    )]
    UnsupportedMediaType(String),
    #[error(
        "the custom handler answered with an empty or null body; the Functions host never \
         completes such an invocation (it waits until functionTimeout), so answer \
         {{\"Outputs\": {{}}, \"Logs\": [], \"ReturnValue\": null}} instead"
    )]
    Empty,
    #[error("the custom handler's answer is not an invocation result: {0}")]
    Invalid(String),
}

/// The raw shape, with `Outputs` and `Logs` left to be checked by hand (for the host's messages).
#[derive(Deserialize)]
struct RawAnswer<'a> {
    #[serde(rename = "Outputs", default, borrow)]
    outputs: Option<&'a RawValue>,
    #[serde(rename = "Logs", default, borrow)]
    logs: Option<&'a RawValue>,
    #[serde(rename = "ReturnValue", default, borrow)]
    return_value: Option<&'a RawValue>,
}

impl HostAnswer {
    /// Reads a 2xx answer with its `Content-Type`, failing where the host fails.
    pub fn read(content_type: Option<&str>, body: &[u8]) -> Result<Self, AnswerError> {
        // The host reads the answer with ASP.NET's JSON formatter, whose media types are
        // application/json and text/json (and wildcards); a missing type counts as
        // application/octet-stream. Its XML formatter is not modelled here.
        let media_type = content_type
            .unwrap_or("application/octet-stream")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !matches!(
            media_type.as_str(),
            "application/json" | "text/json" | "*/*" | "application/*" | "text/*"
        ) {
            return Err(AnswerError::UnsupportedMediaType(media_type));
        }
        let text = std::str::from_utf8(body)
            .map_err(|e| AnswerError::Invalid(format!("the body is not UTF-8: {e}")))?;
        if text.trim().is_empty() || text.trim() == "null" {
            return Err(AnswerError::Empty);
        }
        if !text.trim_start().starts_with('{') {
            return Err(AnswerError::Invalid(format!(
                "expected an object with Outputs, Logs and ReturnValue, got {}",
                shorten(text.trim())
            )));
        }
        let raw: RawAnswer<'_> =
            serde_json::from_str(text).map_err(|e| AnswerError::Invalid(e.to_string()))?;
        let outputs = match raw.outputs.map(|o| o.get().trim()) {
            None | Some("null") => BTreeMap::new(),
            Some(text) if text.starts_with('{') => serde_json::from_str(text)
                .map_err(|e| AnswerError::Invalid(format!("Outputs: {e}")))?,
            Some(other) => {
                return Err(AnswerError::Invalid(format!(
                    "Outputs must be an object of output binding values, got {}",
                    shorten(other)
                )));
            }
        };
        let logs = match raw.logs.map(|l| l.get().trim()) {
            None | Some("null") => Vec::new(),
            Some(text) => {
                let entries: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| {
                    AnswerError::Invalid(format!("Logs must be a list, got {}", shorten(text)))
                })?;
                entries
                    .into_iter()
                    .map(log_line)
                    .collect::<Result<_, _>>()?
            }
        };
        let return_value = raw
            .return_value
            .filter(|v| v.get().trim() != "null")
            .map(ToOwned::to_owned);
        Ok(Self {
            outputs,
            logs,
            return_value,
        })
    }
}

/// A `Logs` entry read as the host reads a `List<string>`: strings as they are, numbers and
/// booleans as their text, `null` as `[null]`; an object or array fails the invocation.
fn log_line(entry: &RawValue) -> Result<String, AnswerError> {
    let text = entry.get().trim();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str(text).map_err(|e| AnswerError::Invalid(e.to_string())),
        Some(b'{' | b'[') => Err(AnswerError::Invalid(format!(
            "a Logs entry is {}, but log lines must be strings",
            shorten(text)
        ))),
        _ if text == "null" => Ok("[null]".to_owned()),
        _ => Ok(text.to_owned()),
    }
}

fn shorten(text: &str) -> String {
    const LIMIT: usize = 60;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(LIMIT).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_binding_by_its_exact_name() {
        let body =
            br#"{"Data":{"event":{"id":"1"}},"Metadata":{"sys":{"MethodName":"OrderProcessor"}}}"#;
        let req = InvocationRequest::parse(body).unwrap();
        assert_eq!(req.binding("event").unwrap().get(), r#"{"id":"1"}"#);
        assert_eq!(
            req.binding("Event").unwrap_err(),
            RequestError::MissingBinding {
                binding: "Event".into(),
                present: vec!["event".into()]
            }
        );
        let written = String::from_utf8(req.to_vec()).unwrap();
        assert_eq!(std::str::from_utf8(body).unwrap(), written);
    }

    #[test]
    fn tells_non_json_from_wrong_shape() {
        assert!(matches!(
            InvocationRequest::parse(b"hello"),
            Err(RequestError::NotJson(_))
        ));
        for shape in [&b"[1,2]"[..], b"{\"Data\":5}", b"  "] {
            assert!(matches!(
                InvocationRequest::parse(shape),
                Err(RequestError::NotAnEnvelope(_))
            ));
        }
    }

    fn read(content_type: &str, body: &str) -> Result<HostAnswer, AnswerError> {
        HostAnswer::read(Some(content_type), body.as_bytes())
    }

    #[test]
    fn the_host_reads_json_answers_only() {
        let ok = r#"{"Outputs":{"outputEvents":[{"id":"1"}]},"Logs":["done",1.50,true,null],"ReturnValue":null}"#;
        let answer = read("application/json; charset=utf-8", ok).unwrap();
        assert_eq!(answer.logs, ["done", "1.50", "true", "[null]"]);
        assert_eq!(answer.outputs["outputEvents"].get(), r#"[{"id":"1"}]"#);
        assert!(read("text/json", "{}").is_ok());
        assert_eq!(
            read("text/plain", ok).unwrap_err(),
            AnswerError::UnsupportedMediaType("text/plain".into())
        );
        assert!(matches!(
            HostAnswer::read(None, ok.as_bytes()),
            Err(AnswerError::UnsupportedMediaType(t)) if t == "application/octet-stream"
        ));
        assert!(matches!(
            read("application/problem+json", ok),
            Err(AnswerError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn answers_the_host_would_fail_or_never_finish_are_failed() {
        for empty in ["", "  ", "null"] {
            assert_eq!(
                read("application/json", empty).unwrap_err(),
                AnswerError::Empty
            );
        }
        for bad in [
            r#"{"Outputs":[1]}"#,
            r#"{"Outputs":"x"}"#,
            r#"{"Logs":[{"a":1}]}"#,
            r#"{"Logs":"one line"}"#,
            "[]",
            "\"text\"",
        ] {
            assert!(
                matches!(read("application/json", bad), Err(AnswerError::Invalid(_))),
                "{bad}"
            );
        }
        let fine = read("application/json", r#"{"Outputs":null}"#).unwrap();
        assert!(fine.outputs.is_empty() && fine.logs.is_empty());
    }

    #[test]
    fn output_names_are_kept_as_spelt() {
        let answer = read("application/json", r#"{"Outputs":{"OutputEvents":[]}}"#).unwrap();
        assert!(answer.outputs.contains_key("OutputEvents"));
        assert!(!answer.outputs.contains_key("outputEvents"));
    }

    // Property tests (issue 14).
    use crate::json::strategies::{arbitrary_json, json_like, object_of};
    use proptest::prelude::*;

    proptest! {
        /// Whatever the host (or anyone) sends: an envelope or a reason, never a panic.
        #[test]
        fn any_body_is_an_envelope_or_a_reason(
            body in prop_oneof![
                json_like(),
                arbitrary_json(),
                object_of(&["Data", "Metadata", "data", "metadata"], &[r#"{"event":{"id":"1"}}"#, "{}", "null"]),
            ],
            bytes in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            if let Ok(request) = InvocationRequest::parse(body.as_bytes()) {
                let _ = request.binding("event");
            }
            let _ = InvocationRequest::parse(&bytes);
        }

        /// What the host stand-in writes is what the handler reads: every binding's text.
        #[test]
        fn an_envelope_round_trips(
            bindings in prop::collection::btree_map("[a-zA-Z]{1,8}", arbitrary_json(), 0..5),
            metadata in prop::option::of(arbitrary_json()),
        ) {
            let values: Vec<(String, Box<RawValue>)> = bindings
                .into_iter()
                .filter_map(|(k, v)| Some((k, serde_json::from_str::<Box<RawValue>>(&v).ok()?)))
                .collect();
            let metadata = metadata.and_then(|m| serde_json::from_str::<Box<RawValue>>(&m).ok());
            let written = InvocationRequest {
                data: values.iter().map(|(k, v)| (k.clone(), &**v)).collect(),
                metadata: metadata.as_deref(),
            }
            .to_vec();
            let read = InvocationRequest::parse(&written).unwrap();
            prop_assert_eq!(read.data.len(), values.len());
            for (name, value) in &values {
                prop_assert_eq!(read.binding(name).unwrap().get(), value.get());
            }
            // `"Metadata": null` reads as no Metadata, as serde reads an Option.
            let expected = metadata.as_deref().map(RawValue::get).filter(|m| *m != "null");
            prop_assert_eq!(read.metadata.map(RawValue::get), expected);
        }
    }
}
