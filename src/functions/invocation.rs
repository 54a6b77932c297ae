//! The invocation wire format between the Functions host and a custom handler, modelled once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{FunctionSpec, InvocationError};

/// `{"Data": {<binding name>: value}, "Metadata": {...}}`. Values stay raw JSON text: the host
/// may send the event as an object or as a JSON-encoded string, and the event's numbers must not
/// pass through `f64`.
#[derive(Debug, Deserialize)]
pub struct InvocationRequest<'a> {
    #[serde(rename = "Data", alias = "data", borrow)]
    pub data: BTreeMap<String, &'a RawValue>,
    #[serde(rename = "Metadata", alias = "metadata", default, borrow)]
    pub metadata: Option<&'a RawValue>,
}

impl<'a> InvocationRequest<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, InvocationError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(InvocationError::BadEnvelope("the body is empty".into()));
        }
        // Check the syntax first, so "not JSON" and "JSON of the wrong shape" get distinct errors.
        let value: &RawValue =
            serde_json::from_slice(body).map_err(|e| InvocationError::NotJson(e.to_string()))?;
        serde_json::from_str(value.get()).map_err(|e| {
            InvocationError::BadEnvelope(format!(
                "expected {{\"Data\": {{...}}, \"Metadata\": {{...}}}}: {e}"
            ))
        })
    }

    /// The trigger's value, named by the function's binding; a mismatch is a named error.
    pub fn trigger(&self, spec: &FunctionSpec) -> Result<&'a RawValue, InvocationError> {
        self.data.get(spec.trigger_binding).copied().ok_or_else(|| {
            InvocationError::MissingBinding {
                function: spec.name,
                binding: spec.trigger_binding,
                present: self.data.keys().cloned().collect(),
            }
        })
    }
}

/// `{"Outputs": {...}, "Logs": [...], "ReturnValue": null}`. Output values are JSON objects or
/// arrays, never bare strings: the host base64-decodes strings that look like base64.
#[derive(Debug, Default, Serialize)]
pub struct InvocationResponse {
    #[serde(rename = "Outputs")]
    pub outputs: BTreeMap<&'static str, Box<RawValue>>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::ORDER_PROCESSOR;

    #[test]
    fn finds_the_trigger_by_binding_name() {
        let body =
            br#"{"Data":{"event":{"id":"1"}},"Metadata":{"sys":{"MethodName":"OrderProcessor"}}}"#;
        let req = InvocationRequest::parse(body).unwrap();
        assert_eq!(
            req.trigger(&ORDER_PROCESSOR).unwrap().get(),
            r#"{"id":"1"}"#
        );
    }

    #[test]
    fn names_the_missing_binding_and_what_was_there() {
        let req = InvocationRequest::parse(br#"{"Data":{"eventGridEvent":{}}}"#).unwrap();
        let err = req.trigger(&ORDER_PROCESSOR).unwrap_err().to_string();
        assert!(
            err.contains("\"event\"") && err.contains("eventGridEvent"),
            "{err}"
        );
    }

    #[test]
    fn tells_non_json_from_wrong_shape() {
        assert!(matches!(
            InvocationRequest::parse(b"hello"),
            Err(InvocationError::NotJson(_))
        ));
        assert!(matches!(
            InvocationRequest::parse(b"[1,2]"),
            Err(InvocationError::BadEnvelope(_))
        ));
        assert!(matches!(
            InvocationRequest::parse(b"{\"Data\":5}"),
            Err(InvocationError::BadEnvelope(_))
        ));
        assert!(matches!(
            InvocationRequest::parse(b"  "),
            Err(InvocationError::BadEnvelope(_))
        ));
    }
}
