//! The delivery state's steps on their own: events from a list, the time and jitter as numbers,
//! at Azure's timing (time scale 1).

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::emulator::event::EventBuilder;
use crate::emulator::subscriptions::SubscriptionsFile;

const TOPIC: &str = "orders";
const MINUTE_MS: i64 = 60_000;

/// Stored events, in order, as the spool would hand them out.
struct Events(Vec<StoredEvent>);

impl EventSource for Events {
    fn read_events(
        &self,
        from: Position,
        _max_bytes: usize,
    ) -> Result<(Vec<StoredEvent>, Position), SpoolError> {
        let events: Vec<StoredEvent> = self.0.iter().filter(|e| e.at >= from).cloned().collect();
        let next = events.last().map_or(from, |e| position(e.at.offset + 1));
        Ok((events, next))
    }

    fn read_event(&self, at: Position) -> Result<StoredEvent, SpoolError> {
        let found = self.0.iter().find(|e| e.at == at).cloned();
        found.ok_or_else(|| SpoolError::new(format!("no event at {at}")))
    }
}

fn position(offset: u64) -> Position {
    Position { segment: 0, offset }
}

/// `n` NewOrder events published at time 0.
fn events(n: u64) -> Events {
    Events(
        (0..n)
            .map(|i| {
                let mut event = EventBuilder::new(Schema::EventGrid);
                event
                    .string("id", &format!("e{i}"))
                    .string("eventType", "NewOrder")
                    .string("subject", "orders/1");
                StoredEvent::new(position(i), TOPIC, None, 0, Arc::new(event.finish()))
            })
            .collect(),
    )
}

/// A webhook subscription with `extra` properties (retry policy, dead letter, batching).
fn subscription(extra: serde_json::Value) -> Subscription {
    let mut sub = serde_json::json!({
        "name": "hook",
        "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "https://example.com/hook"}}
    });
    for (k, v) in extra.as_object().unwrap() {
        sub[k] = v.clone();
    }
    let file = serde_json::json!({"topics": [{"name": TOPIC, "inputSchema": "EventGridSchema", "subscriptions": [sub]}]});
    let mut file = SubscriptionsFile::parse(&file.to_string(), "test").unwrap();
    file.topics.remove(0).subscriptions.remove(0)
}

fn dead_lettered() -> serde_json::Value {
    serde_json::json!({"deadLetter": {"blobContainerName": "dead-letters"}})
}

fn state(sub: Subscription, concurrency: usize) -> DeliveryState {
    let settings = DeliverySettings {
        concurrency,
        dead_letter_delay: Duration::ZERO,
        ..DeliverySettings::default()
    };
    DeliveryState::new(
        TOPIC,
        Schema::EventGrid,
        sub,
        Arc::new(settings),
        RecoveredSubscription::default(),
        position(0),
    )
}

/// The items of the attempts a step started.
fn attempts(effects: &Effects) -> Vec<Vec<Item>> {
    effects
        .starts
        .iter()
        .filter_map(|s| match s {
            Start::Attempt { items, .. } => Some(items.clone()),
            Start::DeadLetter { .. } => None,
        })
        .collect()
}

fn pending_records(effects: &Effects) -> Vec<(Position, Pending)> {
    effects
        .records
        .iter()
        .filter_map(|r| match r {
            StateRecord::Pending { pos, pending, .. } => Some((*pos, pending.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_failed_attempt_leaves_outstanding_in_the_step_that_records_it_pending() {
    let source = events(2);
    let mut state = state(subscription(serde_json::json!({})), 64);
    let started = attempts(&state.dispatch(0, &source));
    // Azure's default batch is one event: two requests.
    assert_eq!(started.len(), 2);
    assert_eq!(state.watermark(), position(0), "both are outstanding");
    let (effects, attempted) = state.attempt_finished(
        started[0].clone(),
        Ok(500),
        Duration::from_millis(3),
        1_000,
        0.0,
    );
    let recorded = pending_records(&effects);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].0, position(0));
    assert_eq!(
        recorded[0].1.due_ms,
        1_000 + 10_000,
        "Azure's first retry: 10 s"
    );
    assert_eq!(recorded[0].1.action, PendingAction::Deliver);
    assert_eq!(
        state.watermark(),
        position(1),
        "past the failed event, which its pending record now covers"
    );
    assert!(attempted.failed);
    assert_eq!(attempted.record.outcome, "GenericError");
    assert!(attempted.record.next.starts_with("retry at "));
    assert_eq!(state.counters().retried, 1);
    assert_eq!(state.next_due_ms(), Some(11_000));
}

#[test]
fn a_retry_due_after_the_time_to_live_is_dead_lettered_and_settled_once_written() {
    let source = events(1);
    let mut extra = dead_lettered();
    extra["retryPolicy"] = serde_json::json!({"eventTimeToLiveInMinutes": 1});
    let mut state = state(subscription(extra), 64);
    let started = attempts(&state.dispatch(0, &source));
    state.attempt_finished(started[0].clone(), Ok(503), Duration::ZERO, 0, 0.0);
    // Azure's 503 waits at least 30 s; the time to live is checked when the retry is due.
    let effects = state.dispatch(2 * MINUTE_MS, &source);
    assert!(
        attempts(&effects).is_empty(),
        "not delivered after its time to live"
    );
    let recorded = pending_records(&effects);
    assert_eq!(
        recorded[0].1.action,
        PendingAction::DeadLetter {
            reason: retry::REASON_TTL.into()
        }
    );
    // No dead-letter delay in these settings: the write is due at once, in the same step.
    let Some(Start::DeadLetter {
        container,
        positions,
        events,
    }) = effects.starts.first()
    else {
        panic!("a dead-letter write: {effects:?}")
    };
    assert_eq!(
        (container.as_str(), positions.as_slice()),
        ("dead-letters", &[position(0)][..])
    );
    let annotated: serde_json::Value = serde_json::from_slice(&events[0]).unwrap();
    assert_eq!(annotated["deadLetterReason"], retry::REASON_TTL);
    assert_eq!(annotated["deliveryAttempts"], 1);
    let effects = state.dead_letter_finished(positions.clone(), Ok("blob".into()), 2 * MINUTE_MS);
    assert!(matches!(
        effects.records[..],
        [StateRecord::Settled { pos, .. }] if pos == position(0)
    ));
    assert!(state.pending().is_empty());
    assert_eq!(state.counters().dead_lettered, 1);
}

#[test]
fn without_a_dead_letter_destination_an_ended_delivery_is_dropped_and_counted() {
    let source = events(1);
    let mut state = state(subscription(serde_json::json!({})), 64);
    let started = attempts(&state.dispatch(0, &source));
    // 400 is never retried.
    let (effects, attempted) =
        state.attempt_finished(started[0].clone(), Ok(400), Duration::ZERO, 0, 0.0);
    assert_eq!(attempted.record.next, "dropped");
    assert_eq!(
        effects.notes,
        [Note::Dropped {
            event_id: "e0".into(),
            reason: retry::REASON_NON_RETRYABLE
        }]
    );
    assert!(state.pending().is_empty());
    assert_eq!(state.counters().dropped, 1);
    assert_eq!(state.watermark(), position(1), "settled");
}

#[test]
fn a_failed_dead_letter_write_keeps_the_events_and_tries_again_in_a_minute() {
    let source = events(1);
    let mut state = state(subscription(dead_lettered()), 64);
    let started = attempts(&state.dispatch(0, &source));
    state.attempt_finished(started[0].clone(), Ok(400), Duration::ZERO, 0, 0.0);
    let effects = state.dispatch(0, &source);
    let Some(Start::DeadLetter { positions, .. }) = effects.starts.first() else {
        panic!("a dead-letter write: {effects:?}")
    };
    let failure = SinkError::Transient("Azurite is down".into());
    let effects = state.dead_letter_finished(positions.clone(), Err(failure), 5);
    let recorded = pending_records(&effects);
    assert_eq!(recorded.len(), 1, "still pending, durably");
    assert_eq!(recorded[0].1.due_ms, 5 + MINUTE_MS);
    assert_eq!(state.pending().len(), 1);
    assert_eq!(state.counters().dead_lettered, 0);
    assert!(matches!(
        effects.notes[..],
        [Note::DeadLetterFailed { again_ms, .. }] if again_ms == 5 + MINUTE_MS
    ));
}

#[test]
fn requests_in_flight_never_exceed_the_concurrency() {
    let source = events(3);
    let mut state = state(subscription(serde_json::json!({})), 1);
    let started = attempts(&state.dispatch(0, &source));
    assert_eq!(started.len(), 1);
    assert!(
        attempts(&state.dispatch(0, &source)).is_empty(),
        "one in flight"
    );
    state.attempt_finished(started[0].clone(), Ok(200), Duration::ZERO, 0, 0.0);
    let next = attempts(&state.dispatch(0, &source));
    assert_eq!(next.len(), 1);
    assert_eq!(&*next[0][0].id, "e1");
    assert_eq!(state.counters().delivered, 1);
}

#[test]
fn a_spool_that_cannot_be_read_is_noted_and_nothing_is_lost() {
    // The pending event's body is gone from the source: the retry stays due.
    let source = events(1);
    let mut state = state(subscription(serde_json::json!({})), 64);
    let started = attempts(&state.dispatch(0, &source));
    state.attempt_finished(started[0].clone(), Ok(500), Duration::ZERO, 0, 0.0);
    let empty = Events(vec![]);
    let effects = state.dispatch(10_000, &empty);
    assert!(matches!(effects.notes[..], [Note::ReadFailed { .. }]));
    assert_eq!(state.next_due_ms(), Some(10_000), "still due");
    let effects = state.dispatch(10_000, &source);
    assert_eq!(attempts(&effects).len(), 1, "retried once readable");
}
