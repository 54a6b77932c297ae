//! The emulator's durable queue: what was published, and how far each subscription got.
//!
//! Two journals under the emulator's data folder:
//! - `events/`: one frame per accepted event (topic, publish time, optional target subscription,
//!   the event JSON as delivered into the topic). Appended by the publish API, read by the
//!   dispatchers, never rewritten; whole segments are deleted once no subscription needs them.
//! - `state/`: small JSON records of delivery progress, per subscription (`topic/subscription`):
//!   - `watermark`: every event before this position is delivered, dead-lettered, or has a
//!     `pending` record written before this one;
//!   - `pending`: an event awaiting a retry or a dead-letter write, with attempts and due time;
//!   - `settled`: a pending event is finished (delivered, dead-lettered or dropped);
//!   - `checkpoint`: the start of a complete restatement of a subscription's state, after which
//!     older state segments can be deleted.
//!
//! Invariants:
//! - **acknowledged means durable**: [`Spool::publish`] resolves only after the event frames are
//!   flushed, and the publish API answers 200 only after that;
//! - **never lost**: on restart a subscription resumes from its last durable watermark and its
//!   pending records, so every acknowledged event is delivered at least once or dead-lettered;
//!   events between the watermark and the crash may be delivered again (at-least-once);
//! - state records of one journal are durable in order, so a durable watermark implies that the
//!   `pending` records written before it are durable too.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::journal::{Journal, JournalError, JournalOptions, Position};

/// An accepted event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub at: Position,
    pub topic: String,
    /// Set when the event was re-published for one subscription only (dead-letter redelivery).
    pub target: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub published_ms: i64,
    /// The event JSON, in the topic's input schema, with the envelope fields Event Grid stamps.
    pub body: Bytes,
}

const EVENT_FORMAT: u8 = 1;

fn encode_event(topic: &str, target: Option<&str>, published_ms: i64, body: &[u8]) -> Bytes {
    let target = target.unwrap_or("");
    let mut buf = BytesMut::with_capacity(1 + 8 + 2 + topic.len() + target.len() + body.len());
    buf.put_u8(EVENT_FORMAT);
    buf.put_i64_le(published_ms);
    buf.put_u8(topic.len() as u8);
    buf.put_slice(topic.as_bytes());
    buf.put_u8(target.len() as u8);
    buf.put_slice(target.as_bytes());
    buf.put_slice(body);
    buf.freeze()
}

fn decode_event(at: Position, payload: Bytes) -> Option<StoredEvent> {
    if *payload.first()? != EVENT_FORMAT {
        return None;
    }
    let published_ms = i64::from_le_bytes(payload.get(1..9)?.try_into().ok()?);
    let topic_len = *payload.get(9)? as usize;
    let topic = std::str::from_utf8(payload.get(10..10 + topic_len)?)
        .ok()?
        .to_owned();
    let target_at = 10 + topic_len;
    let target_len = *payload.get(target_at)? as usize;
    let target =
        std::str::from_utf8(payload.get(target_at + 1..target_at + 1 + target_len)?).ok()?;
    let body = payload.slice(target_at + 1 + target_len..);
    Some(StoredEvent {
        at,
        topic,
        target: (!target.is_empty()).then(|| target.to_owned()),
        published_ms,
        body,
    })
}

/// Per-subscription counters, persisted with each watermark so they survive restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Counters {
    /// Events that matched the subscription's filter.
    pub matched: u64,
    /// Events delivered (a 200–204 answer).
    pub delivered: u64,
    /// Failed attempts that were scheduled for a retry.
    pub retried: u64,
    pub dead_lettered: u64,
    /// Events whose delivery ended without a dead-letter destination to keep them.
    pub dropped: u64,
    /// Events dispatched again after a restart because no watermark covered them yet; an upper
    /// bound on the duplicates a restart caused.
    pub replayed_after_restart: u64,
}

/// What a pending event waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum PendingAction {
    /// Another delivery attempt.
    Deliver,
    /// Writing it to the dead-letter container, for this reason.
    DeadLetter { reason: String },
}

/// The last attempt's outcome, as dead-letter records report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastAttempt {
    pub at_ms: i64,
    pub status: Option<u16>,
    /// Event Grid's `lastDeliveryOutcome` vocabulary (`NotFound`, `TimedOut`, `Busy`, …).
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    /// Delivery attempts made so far.
    pub attempts: u32,
    pub due_ms: i64,
    pub action: PendingAction,
    pub last: Option<LastAttempt>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum StateRecord {
    Watermark {
        sub: String,
        pos: Position,
        counters: Counters,
    },
    Pending {
        sub: String,
        pos: Position,
        #[serde(flatten)]
        pending: Pending,
    },
    Settled {
        sub: String,
        pos: Position,
    },
    Checkpoint {
        sub: String,
    },
}

/// A subscription's state as recovered at open.
#[derive(Debug, Clone, Default)]
pub struct RecoveredSubscription {
    pub watermark: Option<Position>,
    pub pending: BTreeMap<Position, Pending>,
    pub counters: Counters,
}

pub struct Spool {
    events: Journal,
    state: Journal,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpoolError(String);

impl From<JournalError> for SpoolError {
    fn from(e: JournalError) -> Self {
        Self(e.to_string())
    }
}

impl Spool {
    /// Opens the spool in `dir` and replays the delivery state.
    pub fn open(
        dir: &Path,
        options: JournalOptions,
    ) -> Result<(Self, HashMap<String, RecoveredSubscription>), SpoolError> {
        let events = Journal::open(&dir.join("events"), options.clone())?;
        let state = Journal::open(&dir.join("state"), options)?;
        let mut subs: HashMap<String, RecoveredSubscription> = HashMap::new();
        for (at, payload) in state.scan_all()? {
            let record: StateRecord = serde_json::from_slice(&payload).map_err(|e| {
                SpoolError(format!(
                    "{} holds an unreadable state record at {at}: {e}",
                    state.dir().display()
                ))
            })?;
            match record {
                StateRecord::Watermark { sub, pos, counters } => {
                    let entry = subs.entry(sub).or_default();
                    entry.watermark = Some(pos);
                    entry.counters = counters;
                }
                StateRecord::Pending { sub, pos, pending } => {
                    subs.entry(sub).or_default().pending.insert(pos, pending);
                }
                StateRecord::Settled { sub, pos } => {
                    subs.entry(sub).or_default().pending.remove(&pos);
                }
                StateRecord::Checkpoint { sub } => {
                    subs.entry(sub).or_default().pending.clear();
                }
            }
        }
        Ok((Self { events, state }, subs))
    }

    /// Stores events for `topic`; resolves once they are durable.
    pub async fn publish(
        &self,
        topic: &str,
        target: Option<&str>,
        published_ms: i64,
        bodies: &[Bytes],
    ) -> Result<Vec<Position>, SpoolError> {
        let payloads = bodies
            .iter()
            .map(|body| encode_event(topic, target, published_ms, body))
            .collect();
        Ok(self.events.append(payloads).await?)
    }

    /// Events from `from` on, about `max_bytes` of them, and the position after the last.
    pub fn read_events(
        &self,
        from: Position,
        max_bytes: usize,
    ) -> Result<(Vec<StoredEvent>, Position), SpoolError> {
        let (frames, next) = self.events.read_from(from, max_bytes)?;
        let events = frames
            .into_iter()
            .map(|(at, payload)| {
                decode_event(at, payload)
                    .ok_or_else(|| SpoolError(format!("the event at {at} is unreadable")))
            })
            .collect::<Result<_, _>>()?;
        Ok((events, next))
    }

    pub fn read_event(&self, at: Position) -> Result<StoredEvent, SpoolError> {
        let payload = self.events.read(at)?;
        decode_event(at, payload)
            .ok_or_else(|| SpoolError(format!("the event at {at} is unreadable")))
    }

    /// The position after the last durable event.
    pub fn events_end(&self) -> Position {
        self.events.durable_end()
    }

    /// Changes whenever newly published events become durable.
    pub fn watch_events(&self) -> watch::Receiver<Position> {
        self.events.watch_end()
    }

    /// Appends state records without waiting for them to be flushed; they are durable in order.
    pub fn record(&self, records: Vec<StateRecord>) {
        let payloads = records.iter().map(encode_record).collect();
        self.state.append_with(
            payloads,
            Box::new(|result| {
                if let Err(e) = result {
                    tracing::error!(error = %e, "failed to record delivery state; deliveries may repeat after a restart");
                }
            }),
        );
    }

    /// Appends state records and waits until they are durable.
    pub async fn record_durably(&self, records: Vec<StateRecord>) -> Result<(), SpoolError> {
        self.state
            .append(records.iter().map(encode_record).collect())
            .await?;
        Ok(())
    }

    /// Starts a new state segment; once every subscription has written a checkpoint after this
    /// position, [`Spool::forget_state_before`] can delete what came before.
    pub async fn roll_state(&self) -> Result<Position, SpoolError> {
        Ok(self.state.roll().await?)
    }

    pub fn forget_state_before(&self, at: Position) -> Result<usize, SpoolError> {
        Ok(self.state.remove_before(at)?)
    }

    /// Deletes event segments wholly before `at`, which no subscription needs any more.
    pub fn forget_events_before(&self, at: Position) -> Result<usize, SpoolError> {
        Ok(self.events.remove_before(at)?)
    }

    /// Bytes of state journal written since the last roll, roughly (to decide on compaction).
    pub fn state_end(&self) -> Position {
        self.state.durable_end()
    }

    pub fn flush_stats(&self) -> (u64, u64) {
        self.events.flush_stats()
    }
}

fn encode_record(record: &StateRecord) -> Bytes {
    Bytes::from(serde_json::to_vec(record).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(segment: u32, offset: u64) -> Position {
        Position { segment, offset }
    }

    #[test]
    fn events_round_trip_through_their_encoding() {
        let payload = encode_event("orders", Some("email-notifier"), 42, b"{\"id\":\"1\"}");
        let event = decode_event(pos(1, 0), payload).unwrap();
        assert_eq!(event.topic, "orders");
        assert_eq!(event.target.as_deref(), Some("email-notifier"));
        assert_eq!(event.published_ms, 42);
        assert_eq!(event.body, "{\"id\":\"1\"}");
        let untargeted = decode_event(pos(1, 0), encode_event("t", None, 1, b"{}")).unwrap();
        assert_eq!(untargeted.target, None);
    }

    #[tokio::test]
    async fn state_is_replayed_in_order_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let sub = "orders/a".to_owned();
        let pending = |attempts| Pending {
            attempts,
            due_ms: 1000,
            action: PendingAction::Deliver,
            last: None,
        };
        {
            let (spool, recovered) = Spool::open(dir.path(), JournalOptions::default()).unwrap();
            assert!(recovered.is_empty());
            spool
                .publish("orders", None, 1, &[Bytes::from_static(b"{}")])
                .await
                .unwrap();
            spool
                .record_durably(vec![
                    StateRecord::Pending {
                        sub: sub.clone(),
                        pos: pos(1, 0),
                        pending: pending(1),
                    },
                    StateRecord::Pending {
                        sub: sub.clone(),
                        pos: pos(1, 10),
                        pending: pending(1),
                    },
                    StateRecord::Pending {
                        sub: sub.clone(),
                        pos: pos(1, 0),
                        pending: pending(2),
                    },
                    StateRecord::Settled {
                        sub: sub.clone(),
                        pos: pos(1, 10),
                    },
                    StateRecord::Watermark {
                        sub: sub.clone(),
                        pos: pos(1, 20),
                        counters: Counters {
                            delivered: 3,
                            ..Default::default()
                        },
                    },
                ])
                .await
                .unwrap();
        }
        let (spool, recovered) = Spool::open(dir.path(), JournalOptions::default()).unwrap();
        let state = &recovered[&sub];
        assert_eq!(state.watermark, Some(pos(1, 20)));
        assert_eq!(state.counters.delivered, 3);
        assert_eq!(state.pending.len(), 1);
        assert_eq!(state.pending[&pos(1, 0)].attempts, 2);
        let (events, _) = spool.read_events(pos(1, 0), 1024).unwrap();
        assert_eq!(events.len(), 1);
    }

    #[tokio::test]
    async fn a_checkpoint_restates_a_subscription_so_older_state_can_go() {
        let dir = tempfile::tempdir().unwrap();
        let sub = "orders/a".to_owned();
        let pending = Pending {
            attempts: 1,
            due_ms: 5,
            action: PendingAction::Deliver,
            last: None,
        };
        {
            let (spool, _) = Spool::open(dir.path(), JournalOptions::default()).unwrap();
            spool
                .record_durably(vec![
                    StateRecord::Pending {
                        sub: sub.clone(),
                        pos: pos(1, 0),
                        pending: pending.clone(),
                    },
                    StateRecord::Pending {
                        sub: sub.clone(),
                        pos: pos(1, 9),
                        pending: pending.clone(),
                    },
                ])
                .await
                .unwrap();
            let from = spool.roll_state().await.unwrap();
            // The subscription restates itself: only one event is still pending.
            spool
                .record_durably(vec![
                    StateRecord::Checkpoint { sub: sub.clone() },
                    StateRecord::Pending {
                        sub: sub.clone(),
                        pos: pos(1, 9),
                        pending: pending.clone(),
                    },
                    StateRecord::Watermark {
                        sub: sub.clone(),
                        pos: pos(1, 30),
                        counters: Counters::default(),
                    },
                ])
                .await
                .unwrap();
            assert_eq!(spool.forget_state_before(from).unwrap(), 1);
        }
        let (_, recovered) = Spool::open(dir.path(), JournalOptions::default()).unwrap();
        assert_eq!(
            recovered[&sub].pending.keys().copied().collect::<Vec<_>>(),
            [pos(1, 9)]
        );
    }
}
