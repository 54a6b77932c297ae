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

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
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
    /// The event: the one the publish API built while it is in the spool's window (its body
    /// parsed at most once, for every subscription), else one made from the frame.
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
/// spool's window holds it: then the header is not read again.
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

/// The events published or read most recently, decoded, shared by every reader of the spool:
/// the dispatchers and the indexer read the same events at about the same time, and each gets
/// the one copy (as the publish API built it, parsed at most once) without touching the
/// journal. A reader further behind than the window reads the journal, and what it reads joins
/// the window for the readers behind it. Bounded by count and by the size of the bodies, the
/// first in first out; and emptied when the emulator is idle ([`Spool::age_window`]).
#[derive(Default)]
struct Window {
    /// Each event, and where the frame after it starts.
    events: HashMap<Position, (StoredEvent, Position)>,
    /// Positions in the order they came in, with the age they came in at.
    order: VecDeque<(Position, u64)>,
    bytes: usize,
    age: u64,
}

/// How many events the [`Window`] keeps, and at most how much text: about half a second at the
/// emulator's top rate (45,000 events/s with one subscription), and 16 MiB of bodies whatever
/// their size, so what it holds after a burst stays small beside the memory bounds of issue 14.
const WINDOW_EVENTS: usize = 32 * 1024;
const WINDOW_BYTES: usize = 16 * 1024 * 1024;

impl Window {
    fn insert(&mut self, stored: StoredEvent, next: Position) {
        let at = stored.at;
        if self.events.contains_key(&at) {
            return;
        }
        self.bytes += stored.event.body.len();
        self.events.insert(at, (stored, next));
        self.order.push_back((at, self.age));
        while self.bytes > WINDOW_BYTES || self.order.len() > WINDOW_EVENTS {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((oldest, _)) = self.order.pop_front()
            && let Some((event, _)) = self.events.remove(&oldest)
        {
            self.bytes -= event.event.body.len();
        }
    }

    /// Drops what came in before the last call, and starts a new age.
    fn age(&mut self) {
        while self.order.front().is_some_and(|(_, age)| *age < self.age) {
            self.evict_oldest();
        }
        self.age += 1;
    }

    fn get(&self, at: Position) -> Option<&(StoredEvent, Position)> {
        self.events.get(&at)
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
    window: Arc<Mutex<Window>>,
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
            window: Default::default(),
        };
        Ok((spool, subs))
    }

    /// Stores events for `topic`; resolves once they are durable. They are in the window before
    /// any reader can see them.
    pub async fn publish(
        &self,
        topic: &str,
        target: Option<&str>,
        published_ms: i64,
        events: &[Arc<Event>],
    ) -> Result<Vec<Position>, SpoolError> {
        let payloads: Vec<Bytes> = events
            .iter()
            .map(|event| encode_event(topic, target, published_ms, event))
            .collect();
        let lens: Vec<usize> = payloads.iter().map(Bytes::len).collect();
        let (window, events) = (self.window.clone(), events.to_vec());
        let topic = Bytes::copy_from_slice(topic.as_bytes());
        let target = target.map(|t| Bytes::copy_from_slice(t.as_bytes()));
        let remember = Box::new(move |positions: &[Position]| {
            let mut window = window.lock().unwrap_or_else(|p| p.into_inner());
            for ((at, event), len) in positions.iter().zip(events).zip(lens) {
                let stored = StoredEvent {
                    at: *at,
                    topic: topic.clone(),
                    target: target.clone(),
                    published_ms,
                    event,
                };
                window.insert(stored, at.after_frame(len));
            }
        });
        Ok(self.events.append_staged(payloads, Some(remember)).await?)
    }

    /// Events from `from` on, about `max_bytes` of them, and the position after the last.
    pub fn read_events(
        &self,
        from: Position,
        max_bytes: usize,
    ) -> Result<(Vec<StoredEvent>, Position), SpoolError> {
        let end = self.events.durable_end();
        {
            let window = self.window.lock().unwrap_or_else(|p| p.into_inner());
            let (mut events, mut at, mut read) = (Vec::new(), from, 0);
            while at < end && read < max_bytes {
                let Some((stored, next)) = window.get(at) else {
                    break;
                };
                events.push(stored.clone());
                read += stored.event.body.len();
                at = *next;
            }
            if !events.is_empty() {
                return Ok((events, at));
            }
        }
        let (frames, next) = self.events.read_from(from, max_bytes)?;
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let events = frames
            .into_iter()
            .map(|(at, payload)| {
                let len = payload.len();
                let shared = window.get(at).map(|(stored, _)| stored.event.clone());
                let stored = decode_event(at, payload, shared)
                    .ok_or_else(|| SpoolError(format!("the event at {at} is unreadable")))?;
                window.insert(stored.clone(), at.after_frame(len));
                Ok(stored)
            })
            .collect::<Result<_, SpoolError>>()?;
        Ok((events, next))
    }

    pub fn read_event(&self, at: Position) -> Result<StoredEvent, SpoolError> {
        let window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((stored, _)) = window.get(at) {
            return Ok(stored.clone());
        }
        drop(window);
        decode_event(at, self.events.read(at)?, None)
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

    /// Drops from the window the events that came into it before the last call, so an idle
    /// emulator holds none after two calls.
    pub fn age_window(&self) {
        self.window.lock().unwrap_or_else(|p| p.into_inner()).age();
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

    /// Every event the spool holds, as (position, id, topic, target, published), a few at a time.
    fn read_all(spool: &Spool) -> Vec<(Position, String, String, Option<String>, i64)> {
        let (mut all, mut at) = (Vec::new(), Position::default());
        loop {
            let (events, next) = spool.read_events(at, 100).unwrap();
            if events.is_empty() {
                return all;
            }
            all.extend(events.iter().map(|e| {
                let (topic, target) = (e.topic().to_owned(), e.target().map(str::to_owned));
                (
                    e.at,
                    e.event.header.id.to_string(),
                    topic,
                    target,
                    e.published_ms,
                )
            }));
            at = next;
        }
    }

    #[tokio::test]
    async fn readers_get_from_the_window_what_the_journal_holds_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let options = JournalOptions {
            segment_bytes: 300,
            ..Default::default()
        };
        let event = |id: &str| {
            let mut builder = EventBuilder::new(Schema::EventGrid);
            builder.string("id", id).string("eventType", "T");
            Arc::new(builder.finish())
        };
        let from_window = {
            let (spool, _) = Spool::open(dir.path(), options.clone()).unwrap();
            let first = event("e-0");
            let positions = spool
                .publish("orders", None, 1, &[first.clone(), event("e-1")])
                .await
                .unwrap();
            for i in 2..8 {
                let id = format!("e-{i}");
                spool
                    .publish("orders", None, i, &[event(&id)])
                    .await
                    .unwrap();
            }
            spool
                .publish("orders", Some("sub"), 9, &[event("e-8")])
                .await
                .unwrap();
            // The publish API's own event, shared rather than read back.
            let (read, _) = spool.read_events(positions[0], 1).unwrap();
            assert!(Arc::ptr_eq(&read[0].event, &first));
            read_all(&spool)
        };
        assert_eq!(from_window.len(), 9);
        assert!(
            from_window
                .iter()
                .any(|e| e.0.segment > from_window[0].0.segment)
        );
        let (reopened, _) = Spool::open(dir.path(), options).unwrap();
        let from_journal = read_all(&reopened);
        assert_eq!(from_journal, from_window);
        // What a reader read from the journal joined the window for the next reader.
        let (again, _) = reopened.read_events(from_journal[0].0, 1).unwrap();
        let (twice, _) = reopened.read_events(from_journal[0].0, 1).unwrap();
        assert!(Arc::ptr_eq(&again[0].event, &twice[0].event));
    }

    #[test]
    fn the_window_keeps_the_newest_within_its_bounds() {
        let body = Bytes::from(vec![b' '; 1024 * 1024]);
        let mut window = Window::default();
        let count = WINDOW_BYTES / body.len() + 2;
        for i in 0..count {
            let at = pos(1, i as u64);
            let header = EventHeader::of(Schema::EventGrid, &Json::Null);
            let event = Arc::new(Event::new(header, body.clone()));
            window.insert(
                StoredEvent::new(at, "t", None, 0, event),
                pos(1, i as u64 + 1),
            );
        }
        assert!(window.bytes <= WINDOW_BYTES);
        assert_eq!(window.events.len(), WINDOW_BYTES / body.len());
        assert!(window.get(pos(1, 0)).is_none() && window.get(pos(1, 1)).is_none());
        assert!(window.get(pos(1, count as u64 - 1)).is_some());
        // Aged twice without new events, it is empty; an event that came in between stays.
        window.age();
        let late = pos(2, 0);
        let event = window
            .get(pos(1, count as u64 - 1))
            .unwrap()
            .0
            .event
            .clone();
        window.insert(StoredEvent::new(late, "t", None, 0, event), pos(2, 1));
        window.age();
        assert_eq!(window.events.len(), 1);
        assert_eq!(window.bytes, body.len());
        assert!(window.get(late).is_some());
        window.age();
        assert!(window.events.is_empty() && window.order.is_empty() && window.bytes == 0);
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
