//! The handler's answers to failed invocations, kept so the dashboard can show why a delivery
//! failed: the real host answers Event Grid a bare 500 (which the emulator records as
//! `GenericError`), while the cause is in what the handler answered, or in why the host failed the
//! invocation. Each failure is keyed by what Event Grid sent: `aeg-subscription-name`,
//! `aeg-delivery-count` and the event's id, which the emulator's attempt record also has.
//!
//! Bounds: the last [`MAX_FAILURES`] failures, each message cut at [`MAX_MESSAGE_CHARS`] and at
//! most [`MAX_LOGS`] log lines of [`MAX_MESSAGE_CHARS`]; recorded only when an invocation fails,
//! so a successful delivery costs nothing here. The handler's messages never carry secrets (its
//! error type says what failed, e.g. which SMTP server could not be reached, not with what
//! password).

use std::collections::VecDeque;
use std::sync::Mutex;

pub const MAX_FAILURES: usize = 1000;
pub const MAX_MESSAGE_CHARS: usize = 2000;
pub const MAX_LOGS: usize = 20;

/// What Event Grid's request said about the delivery.
#[derive(Debug, Clone, Default)]
pub struct DeliveryHeaders {
    /// `aeg-subscription-name` (upper case, as Event Grid sends it).
    pub subscription: Option<String>,
    /// `aeg-delivery-count`: attempts before this one.
    pub delivery_count: Option<u32>,
    /// `traceparent`, when the subscription maps one (the invocation's parent).
    pub traceparent: Option<crate::trace::TraceParent>,
}

#[derive(Debug, Clone)]
pub struct FailedInvocation {
    pub at_ms: i64,
    pub function: String,
    pub invocation_id: String,
    pub event_ids: Vec<String>,
    pub delivery: DeliveryHeaders,
    /// The handler's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The handler's error code, when its answer had one.
    pub code: Option<String>,
    pub message: String,
    pub logs: Vec<String>,
}

fn cut(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[derive(Default)]
pub struct FailedInvocations {
    failures: Mutex<VecDeque<FailedInvocation>>,
}

impl FailedInvocations {
    pub fn record(&self, mut failure: FailedInvocation) {
        failure.message = cut(&failure.message);
        failure.logs.truncate(MAX_LOGS);
        for line in &mut failure.logs {
            *line = cut(line);
        }
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_FAILURES {
            failures.pop_front();
        }
        failures.push_back(failure);
    }

    /// The failures of one delivery of one event, oldest first.
    pub fn of_delivery(
        &self,
        subscription: &str,
        event_id: &str,
        delivery_count: u32,
    ) -> Vec<FailedInvocation> {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|f| {
                f.delivery
                    .subscription
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(subscription))
                    && f.delivery.delivery_count == Some(delivery_count)
                    && f.event_ids.iter().any(|id| id == event_id)
            })
            .cloned()
            .collect()
    }
}

/// The cause in a handler's failed answer: `{"error": {"code", "message"}}` as the handler
/// answers, else the body's text; and its `Logs`, if it sent any.
pub fn read_answer(body: &[u8]) -> (Option<String>, String, Vec<String>) {
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = value.as_ref().and_then(|v| v.get("error"));
    let code = error
        .and_then(|e| e.get("code"))
        .and_then(|c| c.as_str())
        .map(str::to_owned);
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&body[..body.len().min(MAX_MESSAGE_CHARS * 4)]).into_owned()
        });
    let logs = value
        .as_ref()
        .and_then(|v| v.get("Logs"))
        .and_then(|l| l.as_array())
        .map(|lines| {
            lines
                .iter()
                .take(MAX_LOGS)
                .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (code, message, logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(n: usize) -> FailedInvocation {
        FailedInvocation {
            at_ms: n as i64,
            function: "F".into(),
            invocation_id: n.to_string(),
            event_ids: vec![format!("e{n}")],
            delivery: DeliveryHeaders {
                subscription: Some("SUB".into()),
                delivery_count: Some(0),
                traceparent: None,
            },
            status: Some(503),
            code: None,
            message: "x".repeat(MAX_MESSAGE_CHARS + 10),
            logs: vec!["l".into(); MAX_LOGS + 5],
        }
    }

    #[test]
    fn failures_are_bounded_and_found_by_delivery() {
        let kept = FailedInvocations::default();
        for n in 0..MAX_FAILURES + 3 {
            kept.record(failure(n));
        }
        assert!(
            kept.of_delivery("sub", "e0", 0).is_empty(),
            "the oldest went"
        );
        let found = kept.of_delivery("sub", "e5", 0);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(found[0].logs.len(), MAX_LOGS);
        assert!(kept.of_delivery("sub", "e5", 1).is_empty());
    }

    #[test]
    fn the_handlers_error_message_is_the_cause() {
        let (code, message, _) =
            read_answer(br#"{"error":{"code":"TransientFailure","message":"smtp down"}}"#);
        assert_eq!(code.as_deref(), Some("TransientFailure"));
        assert_eq!(message, "smtp down");
        assert_eq!(read_answer(b"plain").1, "plain");
    }
}
