//! What an OTLP/HTTP traces request (`POST /v1/traces`, `application/x-protobuf`, an
//! `ExportTraceServiceRequest`) says, as the spans ordergrid's dashboard draws: read with the
//! OpenTelemetry project's own message types (`opentelemetry-proto`), so the receiver reads what
//! any OTLP exporter sends, not only ordergrid's.
//!
//! Invariant: decoding never panics; a span without a valid trace or span id is skipped (the
//! OTLP specification makes both required), everything else is kept as sent.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::context::to_hex;

/// The content type of an OTLP/HTTP protobuf request.
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";

/// One span, as a waterfall needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanRecord {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// `None` for a trace's root (or a parent in another process that is not recorded).
    pub parent_span_id: Option<String>,
    pub name: String,
    /// `server`, `client`, `producer`, `consumer` or `internal`.
    pub kind: String,
    /// The resource's `service.name`.
    pub service: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// Set when the span's status is an error: the description, or `error`.
    pub error: Option<String>,
    /// String, number and boolean attributes, as text.
    pub attributes: Vec<(String, String)>,
}

/// The spans of an OTLP/HTTP protobuf body.
pub fn decode(body: &[u8]) -> Result<Vec<SpanRecord>, prost::DecodeError> {
    Ok(records(
        ExportTraceServiceRequest::decode(body)?.resource_spans,
    ))
}

/// The spans of OTLP's message (what [`decode`] reads, and what an in-process exporter builds
/// with the project's own conversion).
pub fn records(resource_spans: Vec<ResourceSpans>) -> Vec<SpanRecord> {
    let mut spans = Vec::new();
    for resource_spans in resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .and_then(text)
            .unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            if span.trace_id.len() != 16 || span.span_id.len() != 8 {
                continue;
            }
            let error =
                span.status
                    .as_ref()
                    .filter(|s| s.code == 2)
                    .map(|s| match s.message.as_str() {
                        "" => "error".to_owned(),
                        m => m.to_owned(),
                    });
            spans.push(SpanRecord {
                trace_id: to_hex(&span.trace_id),
                span_id: to_hex(&span.span_id),
                parent_span_id: (span.parent_span_id.len() == 8 && span.parent_span_id != [0; 8])
                    .then(|| to_hex(&span.parent_span_id)),
                name: span.name,
                kind: match span.kind {
                    2 => "server",
                    3 => "client",
                    4 => "producer",
                    5 => "consumer",
                    _ => "internal",
                }
                .to_owned(),
                service: service.clone(),
                start_unix_nano: span.start_time_unix_nano,
                end_unix_nano: span.end_time_unix_nano.max(span.start_time_unix_nano),
                error,
                attributes: span
                    .attributes
                    .iter()
                    .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?)?)))
                    .collect(),
            });
        }
    }
    spans
}

fn text(value: &AnyValue) -> Option<String> {
    match value.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use proptest::prelude::*;

    fn string(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn spans_are_read_with_their_service_parent_and_status() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![string("service.name", "ordergrid-handler")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        Span {
                            trace_id: vec![1; 16],
                            span_id: vec![2; 8],
                            parent_span_id: vec![3; 8],
                            name: "OrderProcessor".into(),
                            kind: 2,
                            start_time_unix_nano: 10,
                            end_time_unix_nano: 20,
                            attributes: vec![string("order.id", "A-1")],
                            status: Some(Status {
                                message: "smtp down".into(),
                                code: 2,
                            }),
                            ..Default::default()
                        },
                        Span {
                            trace_id: vec![1; 4],
                            span_id: vec![2; 8],
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let spans = decode(&request.encode_to_vec()).unwrap();
        assert_eq!(spans.len(), 1, "the span with a short trace id is skipped");
        let span = &spans[0];
        assert_eq!(span.trace_id, "01".repeat(16));
        assert_eq!(span.parent_span_id.as_deref(), Some(&*"03".repeat(8)));
        assert_eq!(
            (&*span.kind, &*span.service),
            ("server", "ordergrid-handler")
        );
        assert_eq!(span.error.as_deref(), Some("smtp down"));
        assert_eq!(span.attributes, vec![("order.id".into(), "A-1".into())]);
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&body);
        }
    }
}
