//! W3C trace context (<https://www.w3.org/TR/trace-context/>) as it travels between the parts of
//! the pipeline, and where it travels in an event.
//!
//! Carriers, in Azure's forms:
//! - HTTP: the `traceparent` header. The Functions host sends one to the custom handler with each
//!   invocation (a capture: `traceparent: 00-bb2bd5ee…-d3f54c84c7034d76-00`, see
//!   `functions-custom-handler.md` §2.2); Azure SDK publishers send one with each publish.
//! - CloudEvents: the distributed-tracing extension attributes `traceparent` and `tracestate`,
//!   which the Azure SDKs' `cloudEventDistributedTracingEnricherPolicy` copies from the publish
//!   request's headers into each CloudEvent that has none (azure-sdk-for-js
//!   `sdk/eventgrid/eventgrid/src/cloudEventDistrubtedTracingEnricherPolicy.ts`).
//! - Event Grid schema: the schema has no extension attributes, and Event Grid does not pass the
//!   publish request's headers on to subscribers (Microsoft in azure-sdk-for-net#13575: "Event
//!   Grid does not deliver these custom headers to destinations"). So an ordergrid event carries
//!   its context in `data.traceparent`, and each subscription maps it to
//!   the delivery's `traceparent` header with a dynamic delivery property (`sourceField:
//!   data.traceparent`, `infra/subscriptions.json`), the way Microsoft's docs map a CloudEvent's
//!   `traceparent` for Service Bus and Event Hubs destinations (Event Grid
//!   `delivery-properties.md`). The Functions host then parents its invocation on that header.
//!
//! Invariants: a [`TraceParent`] is always valid (version `00`, lowercase hex, neither id all
//! zeros), so whatever ordergrid forwards is a header any tracer accepts; an invalid incoming
//! value is ignored, never refused, as the specification asks (§3.2.2.3: "the vendor MUST ignore
//! the traceparent").

use std::fmt;

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use serde::Deserialize;

/// The HTTP header and the CloudEvents attribute.
pub const TRACEPARENT: &str = "traceparent";

/// A valid `traceparent`: trace id, parent (span) id and whether the caller sampled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceParent {
    /// Reads a `traceparent` value. Version `00` must be exactly 55 characters; a later version
    /// may append fields after a `-`, which are ignored (§3.2.4); version `ff` and all-zero ids
    /// are invalid.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if !value.is_ascii() {
            return None;
        }
        let bytes = value.as_bytes();
        if bytes.len() < 55 || (bytes.len() > 55 && bytes[55] != b'-') {
            return None;
        }
        let version = hex::<1>(&value[0..2])?[0];
        if version == 0xff
            || (version == 0 && bytes.len() != 55)
            || bytes[2] != b'-'
            || bytes[35] != b'-'
            || bytes[52] != b'-'
        {
            return None;
        }
        let trace_id = hex::<16>(&value[3..35])?;
        let span_id = hex::<8>(&value[36..52])?;
        let flags = hex::<1>(&value[53..55])?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// A new trace's root context, sampled: what a publisher with no caller starts.
    pub fn root() -> Self {
        Self {
            trace_id: fastrand::u128(1..).to_be_bytes(),
            span_id: fastrand::u64(1..).to_be_bytes(),
            sampled: true,
        }
    }

    /// The `traceparent` header of a request, when it has a valid one.
    pub fn of_headers(headers: &axum::http::HeaderMap) -> Option<Self> {
        headers
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(Self::parse)
    }

    /// The trace id as 32 lowercase hex digits (Application Insights' `operation_Id`).
    pub fn trace_id_hex(&self) -> String {
        to_hex(&self.trace_id)
    }

    pub fn span_context(&self) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            if self.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::default(),
        )
    }

    pub fn of(context: &SpanContext) -> Option<Self> {
        context.is_valid().then(|| Self {
            trace_id: context.trace_id().to_bytes(),
            span_id: context.span_id().to_bytes(),
            sampled: context.is_sampled(),
        })
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            to_hex(&self.trace_id),
            to_hex(&self.span_id),
            u8::from(self.sampled)
        )
    }
}

/// The trace context an event carries: `traceparent` at the top of its `data` (Event Grid
/// schema) or as a CloudEvents attribute. `tracestate`, vendor data no part of ordergrid reads,
/// is not carried on.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Carried {
    #[serde(default)]
    pub traceparent: Option<String>,
}

impl Carried {
    /// The context in an event's `data` JSON text; none when the data is not an object or carries
    /// none.
    pub fn in_data(data: &str) -> Self {
        serde_json::from_str(data).unwrap_or_default()
    }

    pub fn parent(&self) -> Option<TraceParent> {
        self.traceparent.as_deref().and_then(TraceParent::parse)
    }
}

/// The context the invocation of a function continues: the host's `traceparent` header when it
/// belongs to the event's trace (on Azure the host parents its invocation on the delivery's
/// `traceparent`, which the subscription maps from the event), otherwise the event's own (a host
/// or subscription that does not carry it), otherwise the host's (an event from a publisher that
/// traces nothing: the trace starts at the host).
pub fn invocation_parent(
    host: Option<TraceParent>,
    event: Option<TraceParent>,
) -> Option<TraceParent> {
    match (host, event) {
        (Some(host), Some(event)) if host.trace_id == event.trace_id => Some(host),
        (_, Some(event)) => Some(event),
        (host, None) => host,
    }
}

fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specifications_example_reads_and_writes_back() {
        let parsed = TraceParent::parse(SAMPLE).unwrap();
        assert!(parsed.sampled);
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.to_string(), SAMPLE);
        // The Functions host's capture: not sampled.
        let host = "00-bb2bd5eef54cb15a1506d0326d2489e7-d3f54c84c7034d76-00";
        assert!(!TraceParent::parse(host).unwrap().sampled);
    }

    #[test]
    fn invalid_values_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        // A later version may add fields.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future";
        assert!(TraceParent::parse(later).is_some());
    }

    #[test]
    fn events_carry_their_context_in_data() {
        let carried = Carried::in_data(&format!(r#"{{"orderId":"A-1","traceparent":"{SAMPLE}"}}"#));
        assert_eq!(carried.parent(), TraceParent::parse(SAMPLE));
        assert_eq!(Carried::in_data("[1,2]"), Carried::default());
        assert_eq!(Carried::in_data(r#"{"traceparent":7}"#), Carried::default());
    }

    #[test]
    fn an_invocation_continues_the_events_trace() {
        let event = TraceParent::parse(SAMPLE).unwrap();
        let same_trace = TraceParent {
            span_id: [9; 8],
            ..event
        };
        let other = TraceParent::root();
        assert_eq!(
            invocation_parent(Some(same_trace), Some(event)),
            Some(same_trace)
        );
        assert_eq!(invocation_parent(Some(other), Some(event)), Some(event));
        assert_eq!(invocation_parent(Some(other), None), Some(other));
        assert_eq!(invocation_parent(None, None), None);
    }

    proptest! {
        #[test]
        fn every_valid_context_round_trips(
            trace in any::<[u8; 16]>(), span in any::<[u8; 8]>(), sampled in any::<bool>()
        ) {
            prop_assume!(trace != [0; 16] && span != [0; 8]);
            let tp = TraceParent { trace_id: trace, span_id: span, sampled };
            prop_assert_eq!(TraceParent::parse(&tp.to_string()), Some(tp));
            prop_assert_eq!(TraceParent::of(&tp.span_context()), Some(tp));
        }

        #[test]
        fn any_text_is_read_without_panicking(text in ".{0,80}") {
            if let Some(tp) = TraceParent::parse(&text) {
                prop_assert_eq!(TraceParent::parse(&tp.to_string()), Some(tp));
            }
        }
    }
}
