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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::event::{Event, EventHeader};
use crate::eventgrid::Schema;
use crate::journal::{Journal, JournalError, JournalOptions, Position};
use crate::json::Json;

/// An accepted event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub at: Position,
    /// The topic's name (the frame's bytes, not copied).
    topic: Bytes,
    /// Set when the event was re-published for one subscription only (dead-letter redelivery).
    target: Option<Bytes>,
    /// Milliseconds since the Unix epoch.
    pub published_ms: i64,
    /// The event: the one the publish API built while it is among the recently published (its
    /// body parsed at most once, for every subscription), else one made from the frame.
    pub event: Arc<Event>,
}

impl StoredEvent {
    /// An event as the spool would hand it out (for the delivery state's tests).
    pub fn new(
        at: Position,
        topic: &str,
        target: Option<&str>,
        published_ms: i64,
        event: Arc<Event>,
    ) -> Self {
        Self {
            at,
            topic: Bytes::copy_from_slice(topic.as_bytes()),
            target: target.map(|t| Bytes::copy_from_slice(t.as_bytes())),
            published_ms,
            event,
        }
    }

    pub fn topic(&self) -> &str {
        std::str::from_utf8(&self.topic).unwrap_or_default()
    }

    pub fn target(&self) -> Option<&str> {
        self.target
            .as_ref()
            .map(|t| std::str::from_utf8(t).unwrap_or_default())
    }
}

/// Version 1 frames held the body only; version 2 frames hold the header before it.
const EVENT_FORMAT_V1: u8 = 1;
const EVENT_FORMAT: u8 = 2;

fn put_text(buf: &mut BytesMut, text: Option<&str>) {
    match text {
        None => buf.put_u32_le(u32::MAX),
        Some(text) => {
            buf.put_u32_le(text.len() as u32);
            buf.put_slice(text.as_bytes());
        }
    }
}

fn encode_event(topic: &str, target: Option<&str>, published_ms: i64, event: &Event) -> Bytes {
    let target = target.unwrap_or("");
    let header = &event.header;
    let mut buf = BytesMut::with_capacity(
        1 + 8
            + 2
            + topic.len()
            + target.len()
            + 16
            + header.id.len()
            + header.event_type.len()
            + event.body.len(),
    );
    buf.put_u8(EVENT_FORMAT);
    buf.put_i64_le(published_ms);
    buf.put_u8(topic.len() as u8);
    buf.put_slice(topic.as_bytes());
    buf.put_u8(target.len() as u8);
    buf.put_slice(target.as_bytes());
    put_text(&mut buf, Some(&header.id));
    put_text(&mut buf, Some(&header.event_type));
    put_text(&mut buf, header.subject.as_deref());
    put_text(&mut buf, header.data_version.as_deref());
    buf.put_slice(&event.body);
    buf.freeze()
}

/// Reads frames of both versions; `None` for a damaged frame. `recent` is the event as the
/// publish API built it, when the spool still has it: then the header is not read again.
fn decode_event(at: Position, payload: Bytes, recent: Option<Arc<Event>>) -> Option<StoredEvent> {
    let format = *payload.first()?;
    if format != EVENT_FORMAT && format != EVENT_FORMAT_V1 {
        return None;
    }
    let published_ms = i64::from_le_bytes(payload.get(1..9)?.try_into().ok()?);
    let topic_len = *payload.get(9)? as usize;
    let topic = payload.slice(10..10 + topic_len);
    std::str::from_utf8(&topic).ok()?;
    let target_at = 10 + topic_len;
    let target_len = *payload.get(target_at)? as usize;
    let target = payload.slice(target_at + 1..target_at + 1 + target_len);
    std::str::from_utf8(&target).ok()?;
    let mut at_byte = target_at + 1 + target_len;
    let event = match recent {
        Some(event) => event,
        None if format == EVENT_FORMAT => {
            let mut text = || -> Option<Option<Box<str>>> {
                let len = u32::from_le_bytes(payload.get(at_byte..at_byte + 4)?.try_into().ok()?);
                at_byte += 4;
                if len == u32::MAX {
                    return Some(None);
                }
                let text =
                    std::str::from_utf8(payload.get(at_byte..at_byte + len as usize)?).ok()?;
                at_byte += len as usize;
                Some(Some(text.into()))
            };
            let header = EventHeader {
                id: text()??,
                event_type: text()??,
                subject: text()?,
                data_version: text()?,
            };
            Arc::new(Event::new(header, payload.slice(at_byte..)))
        }
        None => {
            let body = payload.slice(at_byte..);
            Arc::new(Event::new(legacy_header(&body), body))
        }
    };
    Some(StoredEvent {
        at,
        topic,
        target: (!target.is_empty()).then_some(target),
        published_ms,
        event,
    })
}

/// The header of a version 1 frame's body, which names no schema: CloudEvents have a
/// `specversion`. A body that does not parse gets an empty header; the dispatcher then finds it
/// unreadable and dead-letters it.
fn legacy_header(body: &Bytes) -> EventHeader {
    let event = Event::new(
        EventHeader::of(Schema::EventGrid, &Json::Null),
        body.clone(),
    );
    match event.tree() {
        Ok(tree) if tree.get("specversion").is_some() => EventHeader::of(Schema::CloudEvents, tree),
        Ok(tree) => EventHeader::of(Schema::EventGrid, tree),
        Err(_) => event.header.clone(),
    }
}

/// The events published most recently, as the publish API built them, so dispatchers that keep
/// up (the usual case) share one event, parsed at most once. Bounded by the size of their bodies
/// (a parsed event takes a few times its body).
#[derive(Default)]
struct Recent {
    events: BTreeMap<Position, Arc<Event>>,
    bytes: usize,
}

/// How many events [`Recent`] keeps, and at most how much text: some 50 ms at the emulator's top
/// rate, far more than a dispatcher that keeps up lags behind. One that lags further reads the
/// header from the frame instead, no slower than before there was a window.
const RECENT_EVENTS: usize = 1024;
const RECENT_BYTES: usize = 4 * 1024 * 1024;

impl Recent {
    fn insert(&mut self, at: Position, event: Arc<Event>) {
        self.bytes += event.body.len();
        self.events.insert(at, event);
        while self.bytes > RECENT_BYTES || self.events.len() > RECENT_EVENTS {
            let Some((_, oldest)) = self.events.pop_first() else {
                break;
            };
            self.bytes -= oldest.body.len();
        }
    }
}

/// Per-subscription counters. They survive restarts exactly: a watermark record carries the
/// counts of everything before it, and each pending or settled record the counts that came with
/// it ([`StateRecord`]).
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

impl Counters {
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    pub fn add(&mut self, other: &Self) {
        self.apply(other, u64::saturating_add);
    }

    pub fn subtract(&mut self, other: &Self) {
        self.apply(other, u64::saturating_sub);
    }

    fn apply(&mut self, other: &Self, op: fn(u64, u64) -> u64) {
        let Self {
            matched,
            delivered,
            retried,
            dead_lettered,
            dropped,
            replayed_after_restart,
        } = other;
        self.matched = op(self.matched, *matched);
        self.delivered = op(self.delivered, *delivered);
        self.retried = op(self.retried, *retried);
        self.dead_lettered = op(self.dead_lettered, *dead_lettered);
        self.dropped = op(self.dropped, *dropped);
        self.replayed_after_restart = op(self.replayed_after_restart, *replayed_after_restart);
    }
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

/// One line of the state journal. Replayed in order at open, the records restore each
/// subscription: the last watermark sets its position and counters, and every pending or settled
/// record after it adds the counts made in the step that wrote it (`counts`). So a kill between
/// two watermarks loses no count of an event that will not be dispatched again, and counts none
/// twice: the counts of an event at or after the watermark that left no record are in neither,
/// and are made again when it is dispatched again, while one at or after it that was settled is
/// not dispatched again ([`RecoveredSubscription::settled_ahead`]). Records written before
/// `counts` existed read as counting nothing.
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
        #[serde(default, skip_serializing_if = "Counters::is_zero")]
        counts: Counters,
    },
    Settled {
        sub: String,
        pos: Position,
        #[serde(default, skip_serializing_if = "Counters::is_zero")]
        counts: Counters,
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
    /// Events at or after the watermark that were settled (after a retry): a restart does not
    /// dispatch them again.
    pub settled_ahead: BTreeSet<Position>,
    pub counters: Counters,
}

impl RecoveredSubscription {
    /// Replays the state journal's records, in order, into each subscription's state.
    pub fn replay(
        subs: &mut HashMap<String, RecoveredSubscription>,
        records: impl IntoIterator<Item = StateRecord>,
    ) {
        for record in records {
            match record {
                StateRecord::Watermark { sub, pos, counters } => {
                    let entry = subs.entry(sub).or_default();
                    entry.watermark = Some(pos);
                    entry.counters = counters;
                    entry.settled_ahead = entry.settled_ahead.split_off(&pos);
                }
                StateRecord::Pending {
                    sub,
                    pos,
                    pending,
                    counts,
                } => {
                    let entry = subs.entry(sub).or_default();
                    entry.pending.insert(pos, pending);
                    entry.counters.add(&counts);
                }
                StateRecord::Settled { sub, pos, counts } => {
                    let entry = subs.entry(sub).or_default();
                    entry.pending.remove(&pos);
                    entry.counters.add(&counts);
                    if entry.watermark.is_none_or(|w| pos >= w) {
                        entry.settled_ahead.insert(pos);
                    }
                }
                StateRecord::Checkpoint { sub } => {
                    let entry = subs.entry(sub).or_default();
                    entry.pending.clear();
                    entry.settled_ahead.clear();
                }
            }
        }
    }
}

pub struct Spool {
    events: Journal,
    state: Journal,
    recent: Arc<Mutex<Recent>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpoolError(String);

impl SpoolError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

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
            RecoveredSubscription::replay(&mut subs, [record]);
        }
        let spool = Self {
            events,
            state,
            recent: Default::default(),
        };
        Ok((spool, subs))
    }

    /// Stores events for `topic`; resolves once they are durable. They are among the recently
    /// published before any reader can see them.
    pub async fn publish(
        &self,
        topic: &str,
        target: Option<&str>,
        published_ms: i64,
        events: &[Arc<Event>],
    ) -> Result<Vec<Position>, SpoolError> {
        let payloads = events
            .iter()
            .map(|event| encode_event(topic, target, published_ms, event))
            .collect();
        let (recent, events) = (self.recent.clone(), events.to_vec());
        let remember = Box::new(move |positions: &[Position]| {
            let mut recent = recent.lock().unwrap_or_else(|p| p.into_inner());
            for (at, event) in positions.iter().zip(events) {
                recent.insert(*at, event);
            }
        });
        Ok(self.events.append_staged(payloads, Some(remember)).await?)
    }

    fn recent(&self, at: Position) -> Option<Arc<Event>> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .get(&at)
            .cloned()
    }

    /// Events from `from` on, about `max_bytes` of them, and the position after the last.
    pub fn read_events(
        &self,
        from: Position,
        max_bytes: usize,
    ) -> Result<(Vec<StoredEvent>, Position), SpoolError> {
        let (frames, next) = self.events.read_from(from, max_bytes)?;
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let events = frames
            .into_iter()
            .map(|(at, payload)| {
                decode_event(at, payload, recent.events.get(&at).cloned())
                    .ok_or_else(|| SpoolError(format!("the event at {at} is unreadable")))
            })
            .collect::<Result<_, SpoolError>>()?;
        Ok((events, next))
    }

    pub fn read_event(&self, at: Position) -> Result<StoredEvent, SpoolError> {
        let payload = self.events.read(at)?;
        decode_event(at, payload, self.recent(at))
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
    use crate::emulator::event::EventBuilder;

    fn pos(segment: u32, offset: u64) -> Position {
        Position { segment, offset }
    }

    #[test]
    fn events_round_trip_through_their_encoding() {
        let body = r#"{"id":"1","eventType":"T","subject":"s","dataVersion":"2"}"#;
        let event = Event::from_body(Schema::EventGrid, Bytes::from(body)).unwrap();
        let payload = encode_event("orders", Some("email-notifier"), 42, &event);
        let stored = decode_event(pos(1, 0), payload.clone(), None).unwrap();
        assert_eq!(stored.topic(), "orders");
        assert_eq!(stored.target(), Some("email-notifier"));
        assert_eq!(stored.published_ms, 42);
        assert_eq!(stored.event.body, body);
        assert_eq!(stored.event.header, event.header);
        let untargeted = decode_event(pos(1, 0), encode_event("t", None, 1, &event), None).unwrap();
        assert_eq!(untargeted.target(), None);
        // The recently published event is used as it is.
        let shared = Arc::new(event);
        let recent = decode_event(pos(1, 0), payload, Some(shared.clone())).unwrap();
        assert!(Arc::ptr_eq(&recent.event, &shared));
    }

    #[test]
    fn version_1_frames_are_still_read() {
        let body = br#"{"specversion":"1.0","id":"e","type":"T","source":"/s"}"#;
        let mut payload = vec![EVENT_FORMAT_V1];
        payload.extend_from_slice(&7i64.to_le_bytes());
        payload.extend_from_slice(b"\x01t\x00");
        payload.extend_from_slice(body);
        let stored = decode_event(pos(1, 0), Bytes::from(payload), None).unwrap();
        assert_eq!((stored.topic(), stored.published_ms), ("t", 7));
        let header = &stored.event.header;
        assert_eq!((&*header.id, &*header.event_type), ("e", "T"));
        assert_eq!(stored.event.body, &body[..]);
    }

    #[tokio::test]
    async fn state_is_replayed_in_order_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let sub = "orders/a".to_owned();
        let delivered = |delivered| Counters {
            delivered,
            ..Default::default()
        };
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
                .publish(
                    "orders",
                    None,
                    1,
                    &[Arc::new(EventBuilder::new(Schema::EventGrid).finish())],
                )
                .await
                .unwrap();
            spool
                .record_durably(vec![
                    StateRecord::Pending {
                        sub: sub.clone(),
                        pos: pos(1, 0),
                        pending: pending(1),
                        counts: Counters::default(),
                    },
                    StateRecord::Pending {
                        sub: sub.clone(),
                        pos: pos(1, 10),
                        pending: pending(1),
                        counts: Counters::default(),
                    },
                    StateRecord::Pending {
                        sub: sub.clone(),
                        pos: pos(1, 0),
                        pending: pending(2),
                        counts: Counters::default(),
                    },
                    StateRecord::Settled {
                        sub: sub.clone(),
                        pos: pos(1, 10),
                        // Before the watermark, which restates every count.
                        counts: delivered(1),
                    },
                    StateRecord::Watermark {
                        sub: sub.clone(),
                        pos: pos(1, 20),
                        counters: delivered(3),
                    },
                    // After it: the counts of the step that wrote it are added.
                    StateRecord::Pending {
                        sub: sub.clone(),
                        pos: pos(1, 25),
                        pending: pending(1),
                        counts: Counters {
                            matched: 1,
                            retried: 1,
                            ..Default::default()
                        },
                    },
                    StateRecord::Settled {
                        sub: sub.clone(),
                        pos: pos(1, 25),
                        counts: delivered(1),
                    },
                ])
                .await
                .unwrap();
        }
        let (spool, recovered) = Spool::open(dir.path(), JournalOptions::default()).unwrap();
        let state = &recovered[&sub];
        assert_eq!(state.watermark, Some(pos(1, 20)));
        assert_eq!(
            state.counters,
            Counters {
                matched: 1,
                delivered: 4,
                retried: 1,
                ..Default::default()
            }
        );
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
                        counts: Counters::default(),
                    },
                    StateRecord::Pending {
                        sub: sub.clone(),
                        pos: pos(1, 9),
                        pending: pending.clone(),
                        counts: Counters::default(),
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
                        counts: Counters::default(),
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
