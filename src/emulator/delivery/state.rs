//! A subscription's delivery state and its transitions, with no disk, network, clock or
//! randomness of its own: events come from an [`EventSource`], the time and the retry jitter
//! are arguments, and each step returns the [`Effects`] the dispatcher carries out (records to
//! append to the state journal, requests to send, dead letters to write, things to log).
//!
//! State:
//! - `cursor`: the next event of the spool not looked at, with `buffer` read ahead of it;
//! - `outstanding`: events whose *first* attempt is in flight;
//! - `pending`: events waiting for a retry or for their dead-letter write, with due times
//!   (`due`), of which those in flight are `busy`.
//!
//! Invariants:
//! - an event leaves `outstanding` only in the step that also returns its `pending` record (if
//!   it needs one), and the dispatcher appends a step's records before any later watermark, so
//!   the *watermark* (the lowest event not yet settled or recorded as pending) can be written at
//!   any time: on restart every event at or after it is dispatched again (at-least-once), while
//!   every event before it is either done or restored from its `pending` record;
//! - at most `concurrency` requests are in flight, and an event is never in two at once;
//! - the time to live is checked when an attempt is due, never in between (as Azure does);
//! - an event that ends delivery is dead-lettered when the subscription has a destination for
//!   it, else dropped and counted (as Azure does); nothing leaves the state unaccounted;
//! - the counters survive a kill exactly: each count is made for one event, and is carried by the
//!   state record its step writes for that event, or, when it writes none (a first attempt
//!   delivered, an event dropped on its first look), by the first watermark past the event. The
//!   watermark's counters leave out the counts of events at or after it (`uncarried`), which a
//!   restart dispatches and counts again; an event at or after it that was settled (after a
//!   retry, while an earlier one was still in flight) is not dispatched again (`settled_ahead`).

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use self::effects::{Attempted, Effects, Item, Note, Start};
use super::retry::{self, Decision, EndpointKind, Failure};
use super::webhook;
use crate::emulator::admin::DeliveryRecord;
use crate::emulator::clock::rfc3339_ms;
use crate::emulator::dead_letter::{self, Ending, SinkError};
use crate::emulator::settings::DeliverySettings;
use crate::emulator::spool::{
    Counters, LastAttempt, Pending, PendingAction, RecoveredSubscription, Spool, SpoolError,
    StateRecord, StoredEvent,
};
use crate::emulator::subscriptions::{Destination, Subscription};
use crate::eventgrid::Schema;
use crate::journal::Position;

/// How much of the spool is read ahead at a time.
const READ_AHEAD_BYTES: usize = 256 * 1024;
/// Dead letters written in one step, at most.
const DEAD_LETTERS_PER_STEP: usize = 100;

/// Where the events come from: the spool, or a list in tests.
pub trait EventSource {
    /// Events from `from` on, about `max_bytes` of them, and the position after the last.
    fn read_events(
        &self,
        from: Position,
        max_bytes: usize,
    ) -> Result<(Vec<StoredEvent>, Position), SpoolError>;

    fn read_event(&self, at: Position) -> Result<StoredEvent, SpoolError>;
}

impl EventSource for Spool {
    fn read_events(
        &self,
        from: Position,
        max_bytes: usize,
    ) -> Result<(Vec<StoredEvent>, Position), SpoolError> {
        Spool::read_events(self, from, max_bytes)
    }

    fn read_event(&self, at: Position) -> Result<StoredEvent, SpoolError> {
        Spool::read_event(self, at)
    }
}

pub struct DeliveryState {
    key: String,
    endpoint: webhook::Endpoint,
    topic: String,
    input_schema: Schema,
    subscription: Subscription,
    settings: Arc<DeliverySettings>,
    cursor: Position,
    buffer: VecDeque<StoredEvent>,
    outstanding: BTreeSet<Position>,
    pending: BTreeMap<Position, Pending>,
    due: BTreeSet<(i64, Position)>,
    busy: HashSet<Position>,
    in_flight: usize,
    counters: Counters,
    /// Counts of events no state record carries yet, and their sum: the watermark's counters
    /// leave out those of events at or after it.
    uncarried: BTreeMap<Position, Counters>,
    uncarried_sum: Counters,
    /// Events at or after the watermark that were settled: a checkpoint restates them, and
    /// those recovered are not dispatched again.
    settled_ahead: BTreeSet<Position>,
    written_watermark: Option<(Position, Counters)>,
    /// Events before this were in the spool when the emulator started; dispatching them from
    /// the cursor means they may have been delivered before a restart.
    replay_until: Position,
}

impl DeliveryState {
    /// The state of `subscription` of `topic`, resuming from `recovered`, or starting at `end`
    /// (the end of the spool: a new subscription gets events published from now).
    pub fn new(
        topic: &str,
        input_schema: Schema,
        subscription: Subscription,
        settings: Arc<DeliverySettings>,
        recovered: RecoveredSubscription,
        end: Position,
    ) -> Self {
        let cursor = recovered.watermark.unwrap_or(end);
        Self {
            key: format!("{topic}/{}", subscription.name),
            endpoint: webhook::Endpoint::of(&subscription, &settings.functions_base_url),
            topic: topic.to_owned(),
            input_schema,
            subscription,
            settings,
            cursor,
            buffer: VecDeque::new(),
            outstanding: BTreeSet::new(),
            due: recovered
                .pending
                .iter()
                .map(|(at, p)| (p.due_ms, *at))
                .collect(),
            pending: recovered.pending,
            busy: HashSet::new(),
            in_flight: 0,
            counters: recovered.counters,
            uncarried: BTreeMap::new(),
            uncarried_sum: Counters::default(),
            settled_ahead: recovered.settled_ahead,
            written_watermark: recovered.watermark.map(|w| (w, recovered.counters)),
            replay_until: if recovered.watermark.is_some() {
                end
            } else {
                cursor
            },
        }
    }

    /// `topic/subscription`, the key of its state records.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn pending(&self) -> &BTreeMap<Position, Pending> {
        &self.pending
    }

    /// Another request may start.
    pub fn can_take(&self) -> bool {
        self.in_flight < self.settings.concurrency
    }

    /// Everything up to `end` has been looked at.
    pub fn caught_up(&self, end: Position) -> bool {
        self.buffer.is_empty() && self.cursor >= end
    }

    /// When the next retry or dead-letter write is due.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.due.first().map(|(ms, _)| *ms)
    }

    /// Starts as many attempts as concurrency allows: due retries and dead-letter writes
    /// first, then new events, in batches.
    pub fn dispatch(&mut self, now: i64, source: &impl EventSource) -> Effects {
        let mut effects = Effects::default();
        if let Err(e) = self.dispatch_due(now, source, &mut effects) {
            effects.notes.push(Note::ReadFailed {
                error: e.to_string(),
            });
            return effects;
        }
        while self.can_take() && self.pending.len() < self.settings.max_pending {
            if self.buffer.is_empty() {
                match source.read_events(self.cursor, READ_AHEAD_BYTES) {
                    Ok((events, next)) => {
                        self.cursor = next;
                        if events.is_empty() {
                            break;
                        }
                        self.buffer.extend(events);
                    }
                    Err(e) => {
                        effects.notes.push(Note::ReadFailed {
                            error: e.to_string(),
                        });
                        break;
                    }
                }
            }
            let batch = self.next_batch(now, &mut effects);
            if !batch.is_empty() {
                self.start_attempt(batch, now, &mut effects);
            }
        }
        effects
    }

    /// Whether a buffered event is for this subscription ([`wanted`]) and not waiting already.
    fn wants(&self, stored: &StoredEvent) -> Wanted {
        if self.pending.contains_key(&stored.at) || self.settled_ahead.contains(&stored.at) {
            return Wanted::No;
        }
        wanted(&self.topic, self.input_schema, &self.subscription, stored)
    }

    /// Takes matching events off the buffer into one batch (Azure does not wait to fill one).
    fn next_batch(&mut self, now: i64, effects: &mut Effects) -> Vec<(Item, StoredEvent)> {
        let ttl_ms = self.ttl_ms();
        let (max_events, preferred_bytes) = (
            self.subscription.batching.max_events as usize,
            self.subscription.batching.preferred_bytes,
        );
        let mut batch: Vec<(Item, StoredEvent)> = Vec::new();
        let mut bytes = 0usize;
        while let Some(front) = self.buffer.front() {
            let wanted = self.wants(front);
            if wanted == Wanted::No {
                self.buffer.pop_front();
                continue;
            }
            let size = front.event.body.len();
            if !batch.is_empty() && (batch.len() >= max_events || bytes + size > preferred_bytes) {
                break;
            }
            let Some(event) = self.buffer.pop_front() else {
                break;
            };
            self.count(event.at, |c| c.matched += 1);
            if event.at < self.replay_until {
                self.counters.replayed_after_restart += 1;
            }
            let item = Item {
                at: event.at,
                id: event.event.header.id.clone(),
                previous: 0,
                first: true,
            };
            if let Wanted::Unreadable(error) = wanted {
                effects.notes.push(Note::Unreadable {
                    at: event.at,
                    error,
                });
                self.finish(&item, retry::REASON_UNREADABLE, 0, None, now, effects);
                continue;
            }
            if event.published_ms + ttl_ms <= now {
                // Old backlog (the emulator was down, or the endpoint had not validated).
                self.finish(&item, retry::REASON_TTL, 0, None, now, effects);
                continue;
            }
            bytes += size;
            batch.push((item, event));
        }
        batch
    }

    fn dispatch_due(
        &mut self,
        now: i64,
        source: &impl EventSource,
        effects: &mut Effects,
    ) -> Result<(), SpoolError> {
        let ttl_ms = self.ttl_ms();
        let max_events = self.subscription.batching.max_events as usize;
        let mut retries: Vec<(Item, StoredEvent)> = Vec::new();
        let mut dead: Vec<(Position, Bytes)> = Vec::new();
        let mut result = Ok(());
        while self.can_take() {
            let Some(&(due, at)) = self.due.first() else {
                break;
            };
            if due > now {
                break;
            }
            self.due.pop_first();
            let Some(pending) = self.pending.get(&at).cloned() else {
                continue;
            };
            if pending.due_ms != due || self.busy.contains(&at) {
                continue;
            }
            let event = match source.read_event(at) {
                Ok(event) => event,
                Err(e) => {
                    // Due again at once: the next step tries it again.
                    self.due.insert((due, at));
                    result = Err(e);
                    break;
                }
            };
            match &pending.action {
                PendingAction::DeadLetter { reason } => {
                    let ending = Ending {
                        reason,
                        attempts: pending.attempts,
                        last: pending.last.as_ref(),
                        published_ms: event.published_ms,
                    };
                    dead.push((
                        at,
                        dead_letter::annotate(&event.event.body, self.input_schema, &ending),
                    ));
                    if dead.len() >= DEAD_LETTERS_PER_STEP {
                        break;
                    }
                }
                PendingAction::Deliver => {
                    let item = Item {
                        at,
                        id: event.event.header.id.clone(),
                        previous: pending.attempts,
                        first: false,
                    };
                    if event.published_ms + ttl_ms <= now {
                        let last = pending.last.clone();
                        self.finish(
                            &item,
                            retry::REASON_TTL,
                            pending.attempts,
                            last,
                            now,
                            effects,
                        );
                        continue;
                    }
                    retries.push((item, event));
                    if retries.len() >= max_events {
                        self.start_attempt(std::mem::take(&mut retries), now, effects);
                    }
                }
            }
        }
        if !retries.is_empty() {
            self.start_attempt(retries, now, effects);
        }
        if !dead.is_empty() {
            self.start_dead_letter(dead, effects);
        }
        result
    }

    fn start_attempt(&mut self, batch: Vec<(Item, StoredEvent)>, now: i64, effects: &mut Effects) {
        let events: Vec<&StoredEvent> = batch.iter().map(|(_, e)| e).collect();
        let previous = batch.iter().map(|(i, _)| i.previous).max().unwrap_or(0);
        let request = match webhook::notification(
            &self.subscription,
            self.input_schema,
            &events,
            previous,
            &self.endpoint,
        ) {
            Ok(request) => request,
            Err(e) => {
                for (item, _) in &batch {
                    effects.notes.push(Note::Unreadable {
                        at: item.at,
                        error: e.to_string(),
                    });
                    let last = self.pending.get(&item.at).and_then(|p| p.last.clone());
                    let reason = retry::REASON_UNREADABLE;
                    self.finish(item, reason, item.previous, last, now, effects);
                    self.outstanding.remove(&item.at);
                }
                return;
            }
        };
        let items: Vec<Item> = batch.into_iter().map(|(item, _)| item).collect();
        for item in &items {
            if item.first {
                self.outstanding.insert(item.at);
            } else {
                self.busy.insert(item.at);
            }
        }
        self.in_flight += 1;
        effects.starts.push(Start::Attempt { items, request });
    }

    fn start_dead_letter(&mut self, events: Vec<(Position, Bytes)>, effects: &mut Effects) {
        let Some(config) = &self.subscription.dead_letter else {
            // The subscriptions file lost this dead-letter destination since these events were
            // scheduled for it (they were recovered after a restart). Azure drops dead letters
            // whose destination is gone; keeping them pending would hold them for ever.
            for (at, _) in &events {
                self.pending.remove(at);
                self.count(*at, |c| c.dropped += 1);
                let record = self.settled(*at);
                effects.records.push(record);
            }
            effects.notes.push(Note::DestinationGone {
                events: events.len(),
            });
            return;
        };
        let container = config.container.clone();
        let positions: Vec<Position> = events.iter().map(|(at, _)| *at).collect();
        self.busy.extend(positions.iter().copied());
        self.in_flight += 1;
        effects.starts.push(Start::DeadLetter {
            container,
            positions,
            events: events.into_iter().map(|(_, body)| body).collect(),
        });
    }

    /// Applies a finished attempt; `jitter` (0..1) draws the retry wait's random extra.
    pub fn attempt_finished(
        &mut self,
        items: Vec<Item>,
        result: Result<u16, Failure>,
        elapsed: Duration,
        now: i64,
        jitter: f64,
    ) -> (Effects, Attempted) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let mut effects = Effects::default();
        let failure = match result {
            Ok(status) if retry::is_success(status) => None,
            Ok(status) => Some(Failure::Status(status)),
            Err(failure) => Some(failure),
        };
        let status = result.ok();
        let last = LastAttempt {
            at_ms: now,
            status,
            outcome: retry::outcome_name(failure).to_owned(),
        };
        let attempt = items.iter().map(|i| i.previous).max().unwrap_or(0) + 1;
        let mut next = String::from("delivered");
        for item in &items {
            let attempts = item.previous + 1;
            let Some(failure) = failure else {
                self.count(item.at, |c| c.delivered += 1);
                if !item.first {
                    self.pending.remove(&item.at);
                    let record = self.settled(item.at);
                    effects.records.push(record);
                }
                continue;
            };
            let decision = retry::after_failure(
                failure,
                self.endpoint_kind(),
                attempts,
                self.subscription.retry.max_delivery_attempts,
                jitter,
            );
            match decision {
                Decision::RetryAfter(wait) => {
                    let due_ms = now + self.settings.scaled(wait).as_millis() as i64;
                    let pending = Pending {
                        attempts,
                        due_ms,
                        action: PendingAction::Deliver,
                        last: Some(last.clone()),
                    };
                    self.count(item.at, |c| c.retried += 1);
                    self.schedule(item.at, pending, &mut effects);
                    next = format!("retry at {}", rfc3339_ms(due_ms));
                }
                Decision::GiveUp(reason) => {
                    let last = Some(last.clone());
                    next = self.finish(item, reason, attempts, last, now, &mut effects);
                }
            }
        }
        for item in &items {
            self.outstanding.remove(&item.at);
            self.busy.remove(&item.at);
        }
        let record = DeliveryRecord {
            at: rfc3339_ms(now),
            subscription: self.key.clone(),
            event_ids: items.iter().map(|i| i.id.to_string()).collect(),
            attempt,
            status,
            outcome: last.outcome,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            next,
        };
        let failed = failure.is_some();
        let positions = items.iter().map(|i| i.at).collect();
        (
            effects,
            Attempted {
                record,
                positions,
                failed,
            },
        )
    }

    /// Applies a finished dead-letter write. A failed one keeps its events and is tried again
    /// in a (scaled) minute, whatever the failure: what was acknowledged is never dropped here.
    pub fn dead_letter_finished(
        &mut self,
        positions: Vec<Position>,
        result: Result<String, SinkError>,
        now: i64,
    ) -> Effects {
        self.in_flight = self.in_flight.saturating_sub(1);
        let mut effects = Effects::default();
        match result {
            Ok(blob) => {
                for at in positions {
                    self.busy.remove(&at);
                    self.pending.remove(&at);
                    self.count(at, |c| c.dead_lettered += 1);
                    let record = self.settled(at);
                    effects.records.push(record);
                }
                effects.notes.push(Note::DeadLettered { blob });
            }
            Err(error) => {
                let again_ms =
                    now + self.settings.scaled(Duration::from_secs(60)).as_millis() as i64;
                for at in positions {
                    self.busy.remove(&at);
                    if let Some(pending) = self.pending.get(&at) {
                        let pending = Pending {
                            due_ms: again_ms,
                            ..pending.clone()
                        };
                        self.schedule(at, pending, &mut effects);
                    }
                }
                effects
                    .notes
                    .push(Note::DeadLetterFailed { error, again_ms });
            }
        }
        effects
    }

    /// Ends an event's delivery: dead-letter it (after the delay) if the subscription has a
    /// dead-letter destination, else drop it. Returns what happens next, for the record.
    fn finish(
        &mut self,
        item: &Item,
        reason: &'static str,
        attempts: u32,
        last: Option<LastAttempt>,
        now: i64,
        effects: &mut Effects,
    ) -> String {
        if self.subscription.dead_letter.is_some() {
            let delay = self.settings.scaled(self.settings.dead_letter_delay);
            let pending = Pending {
                attempts,
                due_ms: now + delay.as_millis() as i64,
                action: PendingAction::DeadLetter {
                    reason: reason.to_owned(),
                },
                last,
            };
            self.schedule(item.at, pending, effects);
            "dead-letter".to_owned()
        } else {
            self.count(item.at, |c| c.dropped += 1);
            if self.pending.remove(&item.at).is_some() {
                let record = self.settled(item.at);
                effects.records.push(record);
            }
            effects.notes.push(Note::Dropped {
                event_id: item.id.clone(),
                reason,
            });
            "dropped".to_owned()
        }
    }

    /// Makes a count for the event at `at`, uncarried until a record for it takes it.
    fn count(&mut self, at: Position, bump: fn(&mut Counters)) {
        let mut count = Counters::default();
        bump(&mut count);
        self.counters.add(&count);
        self.uncarried.entry(at).or_default().add(&count);
        self.uncarried_sum.add(&count);
    }

    /// The counts of the event at `at` that no record carries yet, for the record being written.
    fn carry(&mut self, at: Position) -> Counters {
        let counts = self.uncarried.remove(&at).unwrap_or_default();
        self.uncarried_sum.subtract(&counts);
        counts
    }

    fn schedule(&mut self, at: Position, pending: Pending, effects: &mut Effects) {
        self.due.insert((pending.due_ms, at));
        self.pending.insert(at, pending.clone());
        effects.records.push(StateRecord::Pending {
            sub: self.key.clone(),
            pos: at,
            pending,
            counts: self.carry(at),
        });
    }

    fn settled(&mut self, at: Position) -> StateRecord {
        if at >= self.watermark() {
            self.settled_ahead.insert(at);
        }
        StateRecord::Settled {
            sub: self.key.clone(),
            pos: at,
            counts: self.carry(at),
        }
    }

    fn endpoint_kind(&self) -> EndpointKind {
        match self.subscription.destination {
            Destination::WebHook { .. } => EndpointKind::WebHook,
            Destination::AzureFunction { .. } => EndpointKind::AzureResource,
        }
    }

    /// The subscription's event time to live, scaled, in milliseconds.
    fn ttl_ms(&self) -> i64 {
        self.settings
            .scaled(self.subscription.retry.event_time_to_live)
            .as_millis() as i64
    }

    /// The lowest event not yet settled or recorded as pending.
    pub fn watermark(&self) -> Position {
        let mark = self.buffer.front().map_or(self.cursor, |b| b.at);
        self.outstanding
            .first()
            .map_or(mark, |&first| mark.min(first))
    }

    /// The watermark and the counters a record of it carries: every count but those of the
    /// events at or after it that no record carries (a restart dispatches those again).
    fn durable_watermark(&mut self) -> (Position, Counters) {
        let watermark = self.watermark();
        self.settled_ahead = self.settled_ahead.split_off(&watermark);
        let after = self.uncarried.split_off(&watermark);
        for counts in std::mem::replace(&mut self.uncarried, after).values() {
            self.uncarried_sum.subtract(counts);
        }
        let mut counters = self.counters;
        counters.subtract(&self.uncarried_sum);
        (watermark, counters)
    }

    /// The watermark record; it counts as written from here.
    pub fn watermark_record(&mut self) -> StateRecord {
        let (pos, counters) = self.durable_watermark();
        self.written_watermark = Some((pos, counters));
        StateRecord::Watermark {
            sub: self.key.clone(),
            pos,
            counters,
        }
    }

    /// The watermark record, when it says something the last one written did not (or none
    /// was written yet).
    pub fn watermark_if_changed(&mut self) -> Option<StateRecord> {
        let now = self.durable_watermark();
        (self.written_watermark != Some(now)).then(|| self.watermark_record())
    }

    /// The oldest spool position this subscription still needs.
    pub fn low_position(&self) -> Position {
        let watermark = self.watermark();
        self.pending
            .keys()
            .next()
            .map_or(watermark, |&p| p.min(watermark))
    }

    /// The whole state, restated for a compacted state journal.
    pub fn checkpoint_records(&mut self) -> Vec<StateRecord> {
        let watermark = self.watermark_record();
        let mut records = vec![StateRecord::Checkpoint {
            sub: self.key.clone(),
        }];
        // The watermark that ends the checkpoint restates every count.
        records.extend(self.pending.iter().map(|(at, p)| StateRecord::Pending {
            sub: self.key.clone(),
            pos: *at,
            pending: p.clone(),
            counts: Counters::default(),
        }));
        records.extend(self.settled_ahead.iter().map(|at| StateRecord::Settled {
            sub: self.key.clone(),
            pos: *at,
            counts: Counters::default(),
        }));
        records.push(watermark);
        records
    }
}

/// Whether a subscription of `topic` (whose events are in `input_schema`) is for a stored
/// event: its topic's, and targeted at it (a redelivery) or passing its filter. An event whose
/// body cannot be parsed (only a spool written by an older version can hold one) is taken, to
/// be dead-lettered. The dispatcher and the dashboard's index both decide with this.
pub fn wanted(
    topic: &str,
    input_schema: Schema,
    subscription: &Subscription,
    stored: &StoredEvent,
) -> Wanted {
    if stored.topic() != topic {
        return Wanted::No;
    }
    if let Some(target) = stored.target() {
        return if target.eq_ignore_ascii_case(subscription.name.as_str()) {
            Wanted::Yes
        } else {
            Wanted::No
        };
    }
    // The event type and subject filters need the envelope only; advanced filters look into
    // the event, which is parsed (once, for every subscription) when one does.
    let filter = &subscription.filter;
    let header = &stored.event.header;
    if !filter.matches_envelope(&header.event_type, header.subject.as_deref()) {
        return Wanted::No;
    }
    if filter.advanced_filters().is_empty() {
        return Wanted::Yes;
    }
    let tree = stored
        .event
        .tree()
        .map(|t| filter.matches_advanced(t, input_schema));
    match tree {
        Ok(true) => Wanted::Yes,
        Ok(false) => Wanted::No,
        Err(e) => Wanted::Unreadable(e.to_string()),
    }
}

/// What a subscription makes of a buffered event.
#[derive(Debug, PartialEq)]
pub enum Wanted {
    No,
    Yes,
    /// Taken, to be dead-lettered: its body cannot be parsed, for this reason.
    Unreadable(String),
}

mod effects;
#[cfg(test)]
mod tests;
