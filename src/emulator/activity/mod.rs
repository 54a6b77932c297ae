//! What happened, for the dashboard: which events the spool holds (searchable by order id,
//! event id, subject and type), each one's delivery attempts per subscription, why publishes
//! were refused, and delivery counts and latency over time. Changes are announced on a
//! broadcast channel, which the dashboard's server-sent events forward.
//!
//! Who writes what:
//! - the [`indexer`] tails the spool, as a subscription would but off the publish and delivery
//!   paths: for each event it notes the envelope, the `data.orderId` (the body is parsed at most
//!   once per process and shared with the dispatchers, see [`super::event`]) and the
//!   subscriptions whose filter wants it; at start-up it reads what the spool still holds, so a
//!   restart keeps the events searchable;
//! - each dispatcher reports every finished attempt ([`Activity::attempted`]): a mutex, a few
//!   small copies, no parse;
//! - the publish API reports every refused publish with its reason ([`Activity::publish_failed`]).
//!
//! Invariants and bounds (all in memory, none persisted: attempts from before a restart are not
//! shown, the spool's events and the dead letters are):
//! - at most [`MAX_EVENTS`] events are indexed (oldest dropped first, ~300 bytes each plus their
//!   attempts), each with at most [`MAX_ATTEMPTS_PER_EVENT`] attempts (the oldest dropped, the
//!   count kept), and at most [`MAX_ATTEMPTS`] attempts in all (the oldest events dropped), so
//!   the index does not grow with the number of subscriptions;
//! - at most [`MAX_PUBLISH_FAILURES`] refused publishes are kept, their messages cut at
//!   [`MAX_MESSAGE_CHARS`];
//! - counts over time are [`metrics::BUCKETS`] buckets per topic and per subscription;
//! - an attempt may be reported before the indexer has read its event (they race): it is kept
//!   on a placeholder entry that the indexer completes, so no attempt is lost to the race;
//! - nothing recorded here holds a key, token or password: envelopes, order ids, statuses and
//!   the publish API's own refusal messages (which never quote a credential).

pub mod indexer;
pub mod metrics;
pub mod traces;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

use self::metrics::Metrics;
use crate::emulator::admin::DeliveryRecord;
use crate::journal::Position;

pub const MAX_EVENTS: usize = 50_000;
pub const MAX_ATTEMPTS_PER_EVENT: usize = 32;
/// About 100 bytes each: as many as [`MAX_EVENTS`] events with two subscriptions each. With 32
/// subscriptions each event's attempts were 2.5 KB and the index most of why the emulator's
/// memory grew with the subscriptions (BENCHMARKS.md, issue 15).
pub const MAX_ATTEMPTS: usize = 100_000;
pub const MAX_PUBLISH_FAILURES: usize = 500;
pub const MAX_MESSAGE_CHARS: usize = 500;
/// Changes a slow dashboard may fall behind by before it is told to reload.
const CHANGES: usize = 1024;

/// An event as the indexer read it from the spool.
#[derive(Debug, Clone)]
pub struct Indexed {
    pub topic: Box<str>,
    pub id: Box<str>,
    pub event_type: Box<str>,
    pub subject: Option<Box<str>>,
    /// `data.orderId` (a string, or a number's text), when there is one.
    pub order_id: Option<Box<str>>,
    pub published_ms: i64,
    /// The one subscription a redelivered dead letter is for.
    pub target: Option<Box<str>>,
    /// Indexes (into [`Activity::subscriptions`]) of the subscriptions that want it.
    pub matched: Vec<u16>,
}

/// One finished attempt of one event.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub subscription: u16,
    pub at_ms: i64,
    /// 1 for the first.
    pub attempt: u32,
    pub status: Option<u16>,
    pub outcome: Box<str>,
    pub duration_ms: f64,
    /// `delivered`, `retry at <time>`, `dead-letter`, `dropped`.
    pub next: Box<str>,
}

#[derive(Debug, Clone, Default)]
pub struct EventEntry {
    /// `None` for a placeholder: an attempt arrived before the indexer read the event.
    pub indexed: Option<Indexed>,
    pub attempts: VecDeque<Attempt>,
    /// Attempts dropped to keep the bound.
    pub attempts_dropped: u32,
}

/// Why a publish was refused, as the portal's "Publish Failed" splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PublishFailure {
    /// 401: no or wrong credentials.
    Auth,
    /// 400: not JSON, not the topic's schema, a bad field.
    Schema,
    /// 413: the request or an event is too large.
    Size,
    /// Anything else (the spool could not store it: 503).
    Other,
}

impl PublishFailure {
    pub fn of_status(status: u16) -> Self {
        match status {
            401 | 403 => Self::Auth,
            400 | 415 => Self::Schema,
            413 => Self::Size,
            _ => Self::Other,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RefusedPublish {
    pub at_ms: i64,
    pub topic: String,
    pub reason: PublishFailure,
    pub status: u16,
    pub message: String,
}

/// A change, as the dashboard's event stream announces it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Change {
    /// An event was indexed.
    #[serde(rename_all = "camelCase")]
    Event {
        position: String,
        order_id: Option<String>,
    },
    /// An attempt finished.
    #[serde(rename_all = "camelCase")]
    Attempt {
        subscription: String,
        positions: Vec<String>,
        order_ids: Vec<String>,
        status: Option<u16>,
        outcome: String,
        next: String,
    },
    #[serde(rename_all = "camelCase")]
    DeadLettered { subscription: String, blob: String },
    #[serde(rename_all = "camelCase")]
    PublishFailed {
        topic: String,
        reason: PublishFailure,
    },
    /// Spans of these traces arrived.
    #[serde(rename_all = "camelCase")]
    Spans { trace_ids: Vec<String> },
}

pub struct Activity {
    /// `topic/subscription` of every subscription, in the order of the subscriptions file.
    subscriptions: Vec<String>,
    inner: Mutex<Inner>,
    metrics: Mutex<Metrics>,
    changes: broadcast::Sender<Change>,
}

#[derive(Default)]
struct Inner {
    events: BTreeMap<Position, EventEntry>,
    refused: VecDeque<RefusedPublish>,
    /// Per topic: events indexed, events no subscription wanted, refusals by reason.
    published: HashMap<String, u64>,
    unmatched: HashMap<String, u64>,
    publish_failed: HashMap<(String, PublishFailure), u64>,
    /// Per subscription index: failed attempts since start.
    failed_attempts: HashMap<u16, u64>,
    /// Attempts held across all events.
    attempts: usize,
    /// Bumped on every change: the stream sends counters when it moved.
    generation: u64,
}

impl Inner {
    /// Drops the oldest events while the index is over either bound.
    fn keep_bounds(&mut self) {
        while self.events.len() > MAX_EVENTS || self.attempts > MAX_ATTEMPTS {
            let Some((_, oldest)) = self.events.pop_first() else {
                break;
            };
            self.attempts -= oldest.attempts.len();
        }
    }
}

/// Adds one to `name`'s count, copying the name only the first time.
fn count(counts: &mut HashMap<String, u64>, name: &str) {
    match counts.get_mut(name) {
        Some(n) => *n += 1,
        None => {
            counts.insert(name.to_owned(), 1);
        }
    }
}

impl Activity {
    /// `subscriptions`: `topic/subscription` keys; `bucket_ms`: the width of a time bucket.
    pub fn new(topics: Vec<String>, subscriptions: Vec<String>, bucket_ms: i64) -> Self {
        Self {
            metrics: Mutex::new(Metrics::new(topics, subscriptions.len(), bucket_ms)),
            subscriptions,
            inner: Mutex::default(),
            changes: broadcast::channel(CHANGES).0,
        }
    }

    pub fn subscriptions(&self) -> &[String] {
        &self.subscriptions
    }

    pub fn subscription_index(&self, key: &str) -> Option<u16> {
        self.subscriptions
            .iter()
            .position(|k| k == key)
            .map(|i| i as u16)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The indexer read an event.
    pub fn indexed(&self, at: Position, event: Indexed) {
        // Made only for a dashboard that is watching.
        let change = (self.changes.receiver_count() > 0).then(|| Change::Event {
            position: at.to_string(),
            order_id: event.order_id.as_deref().map(str::to_owned),
        });
        self.metrics()
            .published(&event.topic, event.published_ms, event.matched.is_empty());
        {
            let mut inner = self.lock();
            count(&mut inner.published, &event.topic);
            if event.matched.is_empty() && event.target.is_none() {
                count(&mut inner.unmatched, &event.topic);
            }
            inner.events.entry(at).or_default().indexed = Some(event);
            inner.keep_bounds();
            inner.generation += 1;
        }
        if let Some(change) = change {
            let _ = self.changes.send(change);
        }
    }

    /// A dispatcher finished an attempt of the events at `positions`.
    pub fn attempted(
        &self,
        subscription: u16,
        positions: &[Position],
        record: &DeliveryRecord,
        at_ms: i64,
    ) {
        let failed = !record.next.starts_with("delivered");
        self.metrics().attempted(
            subscription,
            at_ms,
            record.duration_ms,
            failed,
            positions.len(),
        );
        let attempt = Attempt {
            subscription,
            at_ms,
            attempt: record.attempt,
            status: record.status,
            outcome: record.outcome.as_str().into(),
            duration_ms: record.duration_ms,
            next: record.next.as_str().into(),
        };
        // The change is made only for a dashboard that is watching.
        let watching = self.changes.receiver_count() > 0;
        let mut order_ids = Vec::new();
        {
            let mut inner = self.lock();
            if failed {
                *inner.failed_attempts.entry(subscription).or_default() += 1;
            }
            let oldest = inner.events.keys().next().copied();
            let inner = &mut *inner;
            for at in positions {
                // An event older than the index's window is not brought back by its attempt.
                if inner.events.len() >= MAX_EVENTS && oldest.is_some_and(|o| *at < o) {
                    continue;
                }
                let entry = inner.events.entry(*at).or_default();
                if entry.attempts.len() >= MAX_ATTEMPTS_PER_EVENT {
                    entry.attempts.pop_front();
                    entry.attempts_dropped += 1;
                } else {
                    inner.attempts += 1;
                }
                entry.attempts.push_back(attempt.clone());
                if watching
                    && let Some(id) = entry.indexed.as_ref().and_then(|i| i.order_id.as_deref())
                    && !order_ids.iter().any(|o: &String| o == id)
                {
                    order_ids.push(id.to_owned());
                }
            }
            inner.keep_bounds();
            inner.generation += 1;
        }
        if !watching {
            return;
        }
        let _ = self.changes.send(Change::Attempt {
            subscription: self.subscriptions[subscription as usize].clone(),
            positions: positions.iter().map(ToString::to_string).collect(),
            order_ids,
            status: record.status,
            outcome: record.outcome.clone(),
            next: record.next.clone(),
        });
    }

    /// Spans of `trace_ids` arrived (see [`traces`]).
    pub fn traced(&self, trace_ids: Vec<String>) {
        let _ = self.changes.send(Change::Spans { trace_ids });
    }

    /// A dead letter was written.
    pub fn dead_lettered(&self, subscription: u16, events: usize, blob: &str) {
        self.metrics()
            .dead_lettered(subscription, crate::emulator::clock::now_ms(), events);
        self.lock().generation += 1;
        let _ = self.changes.send(Change::DeadLettered {
            subscription: self.subscriptions[subscription as usize].clone(),
            blob: blob.to_owned(),
        });
    }

    /// The publish API refused a request to `topic`.
    pub fn publish_failed(&self, topic: &str, status: u16, message: &str, at_ms: i64) {
        let reason = PublishFailure::of_status(status);
        self.metrics().publish_failed(topic, at_ms);
        {
            let mut inner = self.lock();
            *inner
                .publish_failed
                .entry((topic.to_owned(), reason))
                .or_default() += 1;
            if inner.refused.len() >= MAX_PUBLISH_FAILURES {
                inner.refused.pop_front();
            }
            inner.refused.push_back(RefusedPublish {
                at_ms,
                topic: topic.to_owned(),
                reason,
                status,
                message: message.chars().take(MAX_MESSAGE_CHARS).collect(),
            });
            inner.generation += 1;
        }
        let _ = self.changes.send(Change::PublishFailed {
            topic: topic.to_owned(),
            reason,
        });
    }

    /// The entries (newest first) that `keep` keeps, `limit` of them from before `before`, and
    /// how many it keeps in all.
    pub fn search(
        &self,
        before: Option<Position>,
        limit: usize,
        keep: impl Fn(&Position, &EventEntry) -> bool,
    ) -> (Vec<(Position, EventEntry)>, usize) {
        let inner = self.lock();
        let mut page = Vec::new();
        let mut total = 0;
        for (at, entry) in inner.events.iter().rev() {
            if !keep(at, entry) {
                continue;
            }
            total += 1;
            if page.len() < limit && before.is_none_or(|b| *at < b) {
                page.push((*at, entry.clone()));
            }
        }
        (page, total)
    }

    pub fn entry(&self, at: Position) -> Option<EventEntry> {
        self.lock().events.get(&at).cloned()
    }

    /// Refused publishes, newest first.
    pub fn refused(&self, limit: usize) -> Vec<RefusedPublish> {
        self.lock()
            .refused
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }

    /// Per topic: (published, unmatched, refusals by reason).
    pub fn topic_counts(&self, topic: &str) -> (u64, u64, HashMap<PublishFailure, u64>) {
        let inner = self.lock();
        let by_reason = inner
            .publish_failed
            .iter()
            .filter(|((t, _), _)| t == topic)
            .map(|((_, r), n)| (*r, *n))
            .collect();
        (
            inner.published.get(topic).copied().unwrap_or(0),
            inner.unmatched.get(topic).copied().unwrap_or(0),
            by_reason,
        )
    }

    pub fn failed_attempts(&self, subscription: u16) -> u64 {
        self.lock()
            .failed_attempts
            .get(&subscription)
            .copied()
            .unwrap_or(0)
    }

    pub fn series(&self, now_ms: i64) -> metrics::Series {
        self.metrics().series(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_bounded_in_all_whatever_the_number_of_subscriptions() {
        let subscriptions: Vec<String> = (0..32).map(|i| format!("orders/s{i}")).collect();
        let activity = Activity::new(vec!["orders".into()], subscriptions, 1000);
        let record = DeliveryRecord {
            at: String::new(),
            subscription: String::new(),
            event_ids: Vec::new(),
            attempt: 1,
            status: Some(200),
            outcome: "Delivered".into(),
            duration_ms: 1.0,
            next: "delivered".into(),
        };
        let events = MAX_ATTEMPTS / 32 + 100;
        for offset in 0..events as u64 {
            let at = Position { segment: 1, offset };
            for subscription in 0..32 {
                activity.attempted(subscription, &[at], &record, 0);
            }
        }
        let (held, total) = activity.search(None, usize::MAX, |_, _| true);
        let attempts: usize = held.iter().map(|(_, e)| e.attempts.len()).sum();
        assert_eq!(attempts, activity.lock().attempts);
        assert!(attempts <= MAX_ATTEMPTS, "{attempts} attempts held");
        assert!(
            total < events && total >= MAX_ATTEMPTS / 32 - 1,
            "{total} events held"
        );
        // The newest are kept, the oldest dropped.
        assert!(
            activity
                .entry(Position {
                    segment: 1,
                    offset: events as u64 - 1
                })
                .is_some()
        );
        assert!(
            activity
                .entry(Position {
                    segment: 1,
                    offset: 0
                })
                .is_none()
        );
    }
}
