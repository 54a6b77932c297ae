//! The spans the dashboard draws as an order's waterfall: the emulator's own (a span per
//! delivery attempt of an event that carries trace context) and whatever OTLP exporters send to
//! `POST /v1/traces` (in `ordergrid dev`: the host stand-in's and the handler's).
//!
//! Invariants: in memory only, at most [`MAX_SPANS`] spans; when full, whole traces go, oldest
//! first (by when their first span arrived), so a trace shown is never missing its early spans
//! for want of room; a span sent twice (an exporter's retry) is kept once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::Activity;

use crate::trace::SpanSink;
use crate::trace::otlp::SpanRecord;

pub const MAX_SPANS: usize = 20_000;

pub struct TraceStore {
    inner: Mutex<Inner>,
    /// Told which traces got spans, for the dashboard's stream.
    activity: Arc<Activity>,
}

impl std::fmt::Debug for TraceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceStore").finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Inner {
    traces: HashMap<String, Vec<SpanRecord>>,
    /// Trace ids, oldest first.
    order: VecDeque<String>,
    spans: usize,
}

impl TraceStore {
    pub fn new(activity: Arc<Activity>) -> Self {
        Self {
            inner: Mutex::default(),
            activity,
        }
    }

    /// The spans of `trace_id`, by start time.
    pub fn trace(&self, trace_id: &str) -> Vec<SpanRecord> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut spans = inner.traces.get(trace_id).cloned().unwrap_or_default();
        spans.sort_by_key(|s| s.start_unix_nano);
        spans
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).spans
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SpanSink for TraceStore {
    fn accept(&self, spans: Vec<SpanRecord>) {
        let mut traced: Vec<String> = Vec::new();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for span in spans {
            if !traced.contains(&span.trace_id) {
                traced.push(span.trace_id.clone());
            }
            let Inner {
                traces,
                order,
                spans: count,
            } = &mut *inner;
            let trace = traces.entry(span.trace_id.clone()).or_insert_with(|| {
                order.push_back(span.trace_id.clone());
                Vec::new()
            });
            if trace.iter().any(|s| s.span_id == span.span_id) {
                continue;
            }
            trace.push(span);
            *count += 1;
            while inner.spans > MAX_SPANS {
                let Some(oldest) = inner.order.pop_front() else {
                    break;
                };
                if let Some(gone) = inner.traces.remove(&oldest) {
                    inner.spans -= gone.len();
                }
            }
        }
        drop(inner);
        if !traced.is_empty() {
            self.activity.traced(traced);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: usize, span: usize) -> SpanRecord {
        SpanRecord {
            trace_id: format!("{trace:032x}"),
            span_id: format!("{span:016x}"),
            parent_span_id: None,
            name: "s".into(),
            kind: "internal".into(),
            service: "t".into(),
            start_unix_nano: (2 * MAX_SPANS - span) as u64,
            end_unix_nano: (2 * MAX_SPANS - span) as u64 + 1,
            error: None,
            attributes: Vec::new(),
        }
    }

    #[test]
    fn whole_traces_go_oldest_first_and_duplicates_are_kept_once() {
        let store = TraceStore::new(Arc::new(Activity::new(Vec::new(), Vec::new(), 1000)));
        store.accept(vec![span(1, 1), span(1, 2), span(1, 2)]);
        assert_eq!(store.trace(&format!("{:032x}", 1)).len(), 2);
        // By start time.
        assert_eq!(
            store.trace(&format!("{:032x}", 1))[0].span_id,
            format!("{:016x}", 2)
        );
        store.accept((0..MAX_SPANS - 1).map(|i| span(2, i + 10)).collect());
        assert_eq!(store.len(), MAX_SPANS + 1 - 2, "trace 1 went as a whole");
        assert!(store.trace(&format!("{:032x}", 1)).is_empty());
        assert_eq!(store.trace(&format!("{:032x}", 2)).len(), MAX_SPANS - 1);
    }
}
