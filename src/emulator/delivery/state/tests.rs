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

/// The counters survive kills exactly (issue 14's "counters consistent"). Whatever order the
/// attempts finish in, whichever of the records appended so far a kill leaves durable (the state
/// journal is durable in order, so a kill loses a suffix of it), and however often: once every
/// event is settled, each was matched once and ended once, and a restart from the whole journal
/// restores those same counters.
mod kills {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// What the dispatcher would have in flight.
    enum Flight {
        Attempt(Vec<Item>),
        DeadLetter(Vec<Position>),
    }

    #[derive(Debug, Clone)]
    enum Op {
        Dispatch,
        /// Finish the attempt or dead-letter write at this index (modulo those in flight).
        Finish {
            index: usize,
            ok: bool,
        },
        Watermark,
        /// Time passes.
        Wait {
            ms: i64,
        },
        /// SIGKILL: of the records not yet known durable, only the first `keep` (modulo) are.
        Kill {
            keep: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Dispatch),
            4 => (any::<usize>(), any::<bool>()).prop_map(|(index, ok)| Op::Finish { index, ok }),
            2 => Just(Op::Watermark),
            1 => (0..120_000i64).prop_map(|ms| Op::Wait { ms }),
            1 => any::<usize>().prop_map(|keep| Op::Kill { keep }),
        ]
    }

    struct Run {
        n: u64,
        source: Events,
        sub: Subscription,
        settings: Arc<DeliverySettings>,
        state: DeliveryState,
        journal: Vec<StateRecord>,
        /// Records before this are durable (the dispatcher awaited them).
        durable: usize,
        flights: Vec<Flight>,
        now: i64,
        kills: usize,
    }

    impl Run {
        fn new(n: u64, sub: Subscription, concurrency: usize) -> Self {
            let settings = Arc::new(DeliverySettings {
                concurrency,
                dead_letter_delay: Duration::ZERO,
                ..DeliverySettings::default()
            });
            let mut run = Self {
                n,
                source: events(n),
                sub,
                settings,
                state: state(subscription(serde_json::json!({})), 1),
                journal: Vec::new(),
                durable: 0,
                flights: Vec::new(),
                now: 0,
                kills: 0,
            };
            run.start(RecoveredSubscription::default(), position(0));
            run
        }

        /// Starts the subscription's state as the dispatcher does: from what was recovered,
        /// with a watermark recorded durably before the first delivery.
        fn start(&mut self, recovered: RecoveredSubscription, end: Position) {
            self.state = DeliveryState::new(
                TOPIC,
                Schema::EventGrid,
                self.sub.clone(),
                self.settings.clone(),
                recovered,
                end,
            );
            self.flights.clear();
            let record = self.state.watermark_record();
            self.journal.push(record);
            self.durable = self.journal.len();
        }

        fn take(&mut self, effects: Effects) {
            self.journal.extend(effects.records);
            for start in effects.starts {
                self.flights.push(match start {
                    Start::Attempt { items, .. } => Flight::Attempt(items),
                    Start::DeadLetter { positions, .. } => Flight::DeadLetter(positions),
                });
            }
        }

        fn finish(&mut self, index: usize, ok: bool) {
            let flight = self.flights.remove(index);
            let effects = match flight {
                Flight::Attempt(items) => {
                    let result = Ok(if ok { 200 } else { 500 });
                    let elapsed = Duration::from_millis(1);
                    self.state
                        .attempt_finished(items, result, elapsed, self.now, 0.5)
                        .0
                }
                Flight::DeadLetter(positions) => {
                    let result = if ok {
                        Ok("dead-letters/blob".to_owned())
                    } else {
                        Err(SinkError::Transient("Azurite is down".to_owned()))
                    };
                    self.state.dead_letter_finished(positions, result, self.now)
                }
            };
            self.take(effects);
        }

        fn recover(&self) -> RecoveredSubscription {
            let mut subs = HashMap::new();
            RecoveredSubscription::replay(&mut subs, self.journal.iter().cloned());
            subs.remove(self.state.key()).unwrap_or_default()
        }

        fn apply(&mut self, op: Op) {
            match op {
                Op::Dispatch => {
                    let effects = self.state.dispatch(self.now, &self.source);
                    self.take(effects);
                }
                Op::Finish { index, ok } if !self.flights.is_empty() => {
                    self.finish(index % self.flights.len(), ok);
                }
                Op::Finish { .. } => {}
                Op::Watermark => {
                    if let Some(record) = self.state.watermark_if_changed() {
                        self.journal.push(record);
                    }
                }
                Op::Wait { ms } => self.now += ms,
                Op::Kill { keep } => {
                    let unknown = self.journal.len() - self.durable;
                    self.journal.truncate(self.durable + keep % (unknown + 1));
                    self.kills += 1;
                    let recovered = self.recover();
                    self.start(recovered, position(self.n));
                }
            }
        }

        /// Delivers everything from here on, at each retry's due time.
        fn drain(&mut self) {
            for _ in 0..10_000 {
                let effects = self.state.dispatch(self.now, &self.source);
                self.take(effects);
                if self.flights.is_empty() {
                    match self.state.next_due_ms() {
                        Some(due) => self.now = self.now.max(due),
                        None if self.state.caught_up(position(self.n)) => return,
                        None => {}
                    }
                }
                while !self.flights.is_empty() {
                    self.finish(0, true);
                }
            }
            panic!("not drained: {:?}", self.state.pending());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn every_event_is_counted_once_whatever_a_kill_leaves(
            n in 1u64..12,
            concurrency in 1usize..4,
            per_batch in 1u32..3,
            dead_letter in proptest::option::of(1u32..4),
            ops in proptest::collection::vec(op(), 0..80),
        ) {
            let mut extra = serde_json::json!({
                "destination": {"endpointType": "WebHook", "properties": {
                    "endpointUrl": "https://example.com/hook", "maxEventsPerBatch": per_batch}},
            });
            if let Some(attempts) = dead_letter {
                extra["deadLetter"] = dead_lettered()["deadLetter"].clone();
                extra["retryPolicy"] = serde_json::json!({"maxDeliveryAttempts": attempts});
            }
            let mut run = Run::new(n, subscription(extra), concurrency);
            for op in ops {
                run.apply(op);
            }
            run.drain();

            let c = run.state.counters();
            prop_assert_eq!(c.matched, n, "{:?} after {} kills", c, run.kills);
            prop_assert_eq!(c.delivered + c.dead_lettered + c.dropped, n, "{:?}", c);
            // A kill now: the journal alone restores the same counters.
            let record = run.state.watermark_record();
            run.journal.push(record);
            prop_assert_eq!(run.recover().counters, c);
        }
    }
}
