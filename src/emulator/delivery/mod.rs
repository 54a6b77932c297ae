//! Delivery: one dispatcher per subscription moves events from the spool to the destination,
//! with Event Grid's batching, retry schedule, time to live and dead-lettering.
//!
//! A dispatcher owns its subscription's delivery state (no locks on the hot path):
//! - `cursor`: the next event of the spool it has not looked at;
//! - `outstanding`: events whose *first* attempt is in flight;
//! - `pending`: events waiting for a retry or for their dead-letter write, with due times.
//!
//! Invariants:
//! - an event leaves `outstanding` only after its `pending` record (if it needs one) has been
//!   appended to the state journal, so the *watermark* (the lowest event not yet settled or
//!   recorded as pending) can be written at any time, and on restart every event at or after
//!   the watermark is dispatched again (at-least-once), while every event before it is either
//!   done or restored from its `pending` record;
//! - an event is dispatched to at most `concurrency` requests at a time and is never in two
//!   attempts at once;
//! - the time to live is checked when an attempt is due, never in between (as Azure does);
//! - a subscription whose endpoint has not validated receives nothing; its events wait in the
//!   spool (subject to their time to live) until it validates.
//!
//! The loop is [`Dispatcher::run_until_stopped`]; one step of work is [`Dispatcher::try_dispatch`]
//! and one finished attempt is [`Dispatcher::apply`].

pub mod handshake;
pub mod retry;
pub mod webhook;

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use self::retry::{Decision, EndpointKind, Failure};
use super::admin::{DeliveryRecord, PendingView};
use super::dead_letter::{self, DeadLetterSink, Ending};
use super::settings::DeliverySettings;
use super::spool::{
    Counters, LastAttempt, Pending, PendingAction, RecoveredSubscription, Spool, StateRecord,
    StoredEvent,
};
use super::subscriptions::{Destination, Subscription};
use crate::eventgrid::Schema;
use crate::journal::Position;

/// Where a subscription's endpoint stands with the validation handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Validation {
    /// Azure Function destinations are validated by the platform.
    NotRequired,
    Validating,
    #[serde(rename_all = "camelCase")]
    AwaitingManualAction {
        validation_url: String,
    },
    Succeeded,
    Failed {
        reason: String,
    },
}

impl Validation {
    /// The state's name, as the admin API spells it (`succeeded`, `awaitingManualAction`).
    pub fn state(&self) -> &'static str {
        match self {
            Validation::NotRequired => "notRequired",
            Validation::Validating => "validating",
            Validation::AwaitingManualAction { .. } => "awaitingManualAction",
            Validation::Succeeded => "succeeded",
            Validation::Failed { .. } => "failed",
        }
    }

    pub fn allows_delivery(&self) -> bool {
        matches!(self, Validation::NotRequired | Validation::Succeeded)
    }
}

pub enum Query {
    Pending(oneshot::Sender<Vec<PendingView>>),
    /// Restate the whole state in the (freshly rolled) state journal, durably.
    Checkpoint(oneshot::Sender<Result<(), String>>),
}

const RECENT: usize = 100;

/// What the rest of the emulator can see of a subscription; shared with its dispatcher.
pub struct SubscriptionRuntime {
    pub topic: String,
    pub input_schema: Schema,
    pub subscription: Subscription,
    /// `topic/subscription`, the key of its state records.
    pub key: String,
    pub validation: watch::Sender<Validation>,
    manual: Mutex<Option<handshake::ManualValidation>>,
    counters: Mutex<Counters>,
    recent: Mutex<VecDeque<DeliveryRecord>>,
    /// The oldest spool position this subscription still needs.
    low_position: Mutex<Option<Position>>,
    queries: mpsc::Sender<Query>,
}

impl SubscriptionRuntime {
    pub fn counters(&self) -> Counters {
        *self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn recent(&self) -> Vec<DeliveryRecord> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn low_position(&self) -> Option<Position> {
        *self.low_position.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the dispatcher for its waiting events.
    pub async fn pending(&self) -> Vec<PendingView> {
        let (tx, rx) = oneshot::channel();
        if self.queries.send(Query::Pending(tx)).await.is_err() {
            return vec![];
        }
        rx.await.unwrap_or_default()
    }

    pub async fn checkpoint(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.queries
            .send(Query::Checkpoint(tx))
            .await
            .map_err(|_| format!("the dispatcher of {} has stopped", self.key))?;
        rx.await
            .map_err(|_| format!("the dispatcher of {} stopped before answering", self.key))?
    }

    fn endpoint_kind(&self) -> EndpointKind {
        match self.subscription.destination {
            Destination::WebHook { .. } => EndpointKind::WebHook,
            Destination::AzureFunction { .. } => EndpointKind::AzureResource,
        }
    }
}

/// An event in an attempt.
#[derive(Debug, Clone)]
struct Item {
    at: Position,
    id: Box<str>,
    /// Attempts made before this one.
    previous: u32,
    /// This is the event's first attempt (it is in `outstanding`, not `pending`).
    first: bool,
}

/// What a subscription makes of a buffered event.
#[derive(Debug, PartialEq)]
enum Wanted {
    No,
    Yes,
    /// Taken, to be dead-lettered: its body cannot be parsed, for this reason.
    Unreadable(String),
}

enum Done {
    Attempt {
        items: Vec<Item>,
        result: Result<u16, Failure>,
        elapsed: Duration,
    },
    DeadLettered {
        positions: Vec<Position>,
        result: Result<String, String>,
    },
}

/// Failed attempts logged one by one per subscription per second; past that they are counted
/// and the count is logged with the next one that gets through. An endpoint that is down while a
/// large backlog retries would otherwise write a line per event per attempt.
const FAILURES_LOGGED_PER_SECOND: u32 = 20;

#[derive(Default)]
struct LogBudget {
    window_start_ms: i64,
    logged: u32,
    suppressed: u64,
}

#[derive(Debug, PartialEq)]
enum Admit {
    Log { suppressed: u64 },
    Suppress,
}

impl LogBudget {
    fn admit(&mut self, now_ms: i64) -> Admit {
        if now_ms - self.window_start_ms >= 1000 {
            self.window_start_ms = now_ms;
            self.logged = 0;
        }
        if self.logged >= FAILURES_LOGGED_PER_SECOND {
            self.suppressed += 1;
            return Admit::Suppress;
        }
        self.logged += 1;
        Admit::Log {
            suppressed: std::mem::take(&mut self.suppressed),
        }
    }
}

pub struct Dispatcher {
    rt: Arc<SubscriptionRuntime>,
    spool: Arc<Spool>,
    sender: webhook::Sender,
    dead_letters: Arc<dyn DeadLetterSink>,
    settings: Arc<DeliverySettings>,
    cursor: Position,
    buffer: VecDeque<StoredEvent>,
    outstanding: BTreeSet<Position>,
    pending: BTreeMap<Position, Pending>,
    due: BTreeSet<(i64, Position)>,
    busy: HashSet<Position>,
    in_flight: usize,
    counters: Counters,
    written_watermark: Option<(Position, Counters)>,
    /// Events before this were in the spool when the emulator started; dispatching them from
    /// the cursor means they may have been delivered before a restart.
    replay_until: Position,
    failure_log: LogBudget,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    queries: mpsc::Receiver<Query>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

impl Dispatcher {
    /// A dispatcher for `subscription`, resuming from `recovered` state, or starting at
    /// `fresh_start` (the end of the spool: a new subscription gets events published from now).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topic: &str,
        input_schema: Schema,
        subscription: Subscription,
        spool: Arc<Spool>,
        sender: webhook::Sender,
        dead_letters: Arc<dyn DeadLetterSink>,
        settings: Arc<DeliverySettings>,
        recovered: Option<RecoveredSubscription>,
    ) -> (Self, Arc<SubscriptionRuntime>) {
        let key = format!("{topic}/{}", subscription.name);
        let validation = match subscription.destination {
            Destination::AzureFunction { .. } => Validation::NotRequired,
            Destination::WebHook { .. } => Validation::Validating,
        };
        let (query_tx, query_rx) = mpsc::channel(16);
        let recovered = recovered.unwrap_or_default();
        let end = spool.events_end();
        let cursor = recovered.watermark.unwrap_or(end);
        let rt = Arc::new(SubscriptionRuntime {
            topic: topic.to_owned(),
            input_schema,
            subscription,
            key,
            validation: watch::Sender::new(validation),
            manual: Mutex::new(None),
            counters: Mutex::new(recovered.counters),
            recent: Mutex::new(VecDeque::new()),
            low_position: Mutex::new(Some(cursor)),
            queries: query_tx,
        });
        let due = recovered
            .pending
            .iter()
            .map(|(at, p)| (p.due_ms, *at))
            .collect();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let dispatcher = Self {
            rt: rt.clone(),
            spool,
            sender,
            dead_letters,
            settings,
            cursor,
            buffer: VecDeque::new(),
            outstanding: BTreeSet::new(),
            pending: recovered.pending,
            due,
            busy: HashSet::new(),
            in_flight: 0,
            counters: recovered.counters,
            written_watermark: recovered.watermark.map(|w| (w, recovered.counters)),
            failure_log: LogBudget::default(),
            replay_until: if recovered.watermark.is_some() {
                end
            } else {
                cursor
            },
            done_tx,
            done_rx,
            queries: query_rx,
        };
        (dispatcher, rt)
    }

    /// Records where this subscription starts, durably, so events published after this are
    /// never missed even if the emulator crashes before its first periodic watermark.
    pub async fn persist_start(&mut self) -> Result<(), String> {
        if self.written_watermark.is_none() {
            let record = self.watermark_record();
            self.spool
                .record_durably(vec![record])
                .await
                .map_err(|e| e.to_string())?;
            self.written_watermark = Some((self.cursor, self.counters));
        }
        Ok(())
    }

    pub async fn run_until_stopped(mut self, shutdown: CancellationToken) {
        let mut validation = self.rt.validation.subscribe();
        let mut events = self.spool.watch_events();
        let mut tick = tokio::time::interval(self.settings.watermark_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Nothing new starts while the endpoint is not validated (at start-up, or after a
            // re-validation failed); attempts in flight still finish and are recorded.
            let deliver = validation.borrow_and_update().allows_delivery();
            if deliver && let Err(e) = self.try_dispatch() {
                tracing::error!(subscription = %self.rt.key, error = %e, "failed to read the spool; retrying shortly");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let caught_up = self.buffer.is_empty() && self.cursor >= self.spool.events_end();
            let can_take = deliver && self.in_flight < self.settings.concurrency;
            let next_due = self
                .due
                .first()
                .map(|(ms, _)| Duration::from_millis((ms - now_ms()).max(0) as u64));
            tokio::select! {
                Some(done) = self.done_rx.recv() => self.apply(done),
                changed = validation.changed() => if changed.is_err() { break },
                changed = events.changed(), if deliver && caught_up => if changed.is_err() { break },
                () = tokio::time::sleep(next_due.unwrap_or(Duration::from_secs(3600))), if next_due.is_some() && can_take => {}
                _ = tick.tick() => self.write_watermark(),
                Some(query) = self.queries.recv() => self.answer(query).await,
                () = shutdown.cancelled() => break,
            }
        }
        let record = self.watermark_record();
        if let Err(e) = self.spool.record_durably(vec![record]).await {
            tracing::warn!(subscription = %self.rt.key, error = %e, "failed to record the final watermark");
        }
    }

    /// Starts as many attempts as concurrency allows: due retries and dead-letter writes
    /// first, then new events.
    pub fn try_dispatch(&mut self) -> Result<(), String> {
        let now = now_ms();
        self.dispatch_due(now)?;
        while self.in_flight < self.settings.concurrency
            && self.pending.len() < self.settings.max_pending
        {
            if self.buffer.is_empty() {
                let (events, next) = self
                    .spool
                    .read_events(self.cursor, 256 * 1024)
                    .map_err(|e| e.to_string())?;
                self.cursor = next;
                if events.is_empty() {
                    break;
                }
                self.buffer.extend(events);
            }
            let batch = self.next_batch(now);
            if !batch.is_empty() {
                self.start_attempt(batch, now);
            }
        }
        self.publish_view();
        Ok(())
    }

    /// Whether a buffered event is for this subscription: its topic's, not waiting already, and
    /// targeted at it (a redelivery) or passing its filter. An event whose body cannot be parsed
    /// (only a spool written by an older version can hold one) is taken, to be dead-lettered.
    fn wants(&self, stored: &StoredEvent) -> Wanted {
        let rt = &self.rt;
        if stored.topic() != rt.topic || self.pending.contains_key(&stored.at) {
            return Wanted::No;
        }
        if let Some(target) = stored.target() {
            return if target.eq_ignore_ascii_case(rt.subscription.name.as_str()) {
                Wanted::Yes
            } else {
                Wanted::No
            };
        }
        // The event type and subject filters need the envelope only; advanced filters look
        // into the event, which is parsed (once, for every subscription) when one does.
        let filter = &rt.subscription.filter;
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
            .map(|t| filter.matches_advanced(t, rt.input_schema));
        match tree {
            Ok(true) => Wanted::Yes,
            Ok(false) => Wanted::No,
            Err(e) => Wanted::Unreadable(e.to_string()),
        }
    }

    /// Takes matching events off the buffer into one batch (Azure does not wait to fill one).
    fn next_batch(&mut self, now: i64) -> Vec<(Item, StoredEvent)> {
        let rt = self.rt.clone();
        let sub = &rt.subscription;
        let ttl_ms = self.ttl_ms();
        let mut batch: Vec<(Item, StoredEvent)> = Vec::new();
        let mut bytes = 0usize;
        while let Some(front) = self.buffer.front() {
            let wanted = self.wants(front);
            if wanted == Wanted::No {
                self.buffer.pop_front();
                continue;
            }
            let size = front.event.body.len();
            if !batch.is_empty()
                && (batch.len() >= sub.batching.max_events as usize
                    || bytes + size > sub.batching.preferred_bytes)
            {
                break;
            }
            let Some(event) = self.buffer.pop_front() else {
                break;
            };
            self.counters.matched += 1;
            if event.at < self.replay_until {
                self.counters.replayed_after_restart += 1;
            }
            let item = Item {
                at: event.at,
                id: event.event.header.id.clone(),
                previous: 0,
                first: true,
            };
            if let Wanted::Unreadable(why) = wanted {
                tracing::error!(subscription = %rt.key, position = %event.at, error = %why, "a stored event cannot be parsed; it is dead-lettered");
                self.finish(&item, retry::REASON_UNREADABLE, 0, None, now);
                continue;
            }
            if event.published_ms + ttl_ms <= now {
                // Old backlog (the emulator was down, or the endpoint had not validated).
                self.finish(&item, retry::REASON_TTL, 0, None, now);
                continue;
            }
            bytes += size;
            batch.push((item, event));
        }
        batch
    }

    fn dispatch_due(&mut self, now: i64) -> Result<(), String> {
        let rt = self.rt.clone();
        let sub = &rt.subscription;
        let ttl_ms = self.ttl_ms();
        let mut retries: Vec<(Item, StoredEvent)> = Vec::new();
        let mut dead: Vec<(Position, bytes::Bytes)> = Vec::new();
        while self.in_flight < self.settings.concurrency {
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
            let event = self.spool.read_event(at).map_err(|e| e.to_string())?;
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
                        dead_letter::annotate(&event.event.body, self.rt.input_schema, &ending),
                    ));
                    if dead.len() >= 100 {
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
                        self.finish(
                            &item,
                            retry::REASON_TTL,
                            pending.attempts,
                            pending.last.clone(),
                            now,
                        );
                        continue;
                    }
                    retries.push((item, event));
                    if retries.len() >= sub.batching.max_events as usize {
                        self.start_attempt(std::mem::take(&mut retries), now);
                    }
                }
            }
        }
        if !retries.is_empty() {
            self.start_attempt(retries, now);
        }
        if !dead.is_empty() {
            self.start_dead_letter(dead);
        }
        Ok(())
    }

    fn start_attempt(&mut self, batch: Vec<(Item, StoredEvent)>, now: i64) {
        let events: Vec<&StoredEvent> = batch.iter().map(|(_, e)| e).collect();
        let previous = batch.iter().map(|(i, _)| i.previous).max().unwrap_or(0);
        let out = match webhook::notification(
            &self.rt.subscription,
            self.rt.input_schema,
            &events,
            previous,
            &self.settings.functions_base_url,
        ) {
            Ok(out) => out,
            Err(e) => {
                tracing::error!(subscription = %self.rt.key, error = %e, "stored events cannot be parsed; they are dead-lettered");
                for (item, _) in &batch {
                    let last = self.pending.get(&item.at).and_then(|p| p.last.clone());
                    self.finish(item, retry::REASON_UNREADABLE, item.previous, last, now);
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
        let (sender, done) = (self.sender.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let result = sender.send(&out).await;
            let _ = done.send(Done::Attempt {
                items,
                result,
                elapsed: started.elapsed(),
            });
        });
    }

    fn start_dead_letter(&mut self, events: Vec<(Position, bytes::Bytes)>) {
        let Some(config) = self.rt.subscription.dead_letter.clone() else {
            // The subscriptions file lost this dead-letter destination since these events were
            // scheduled for it (they were recovered after a restart). Azure drops dead letters
            // whose destination is gone; keeping them pending would hold them for ever.
            let mut settled = Vec::new();
            for (at, _) in events {
                self.pending.remove(&at);
                self.counters.dropped += 1;
                settled.push(StateRecord::Settled {
                    sub: self.rt.key.clone(),
                    pos: at,
                });
            }
            tracing::warn!(subscription = %self.rt.key, events = settled.len(), "dropped events awaiting a dead-letter write: the subscription no longer has a dead-letter destination");
            self.spool.record(settled);
            return;
        };
        let positions: Vec<Position> = events.iter().map(|(at, _)| *at).collect();
        for at in &positions {
            self.busy.insert(*at);
        }
        self.in_flight += 1;
        let values: Vec<bytes::Bytes> = events.into_iter().map(|(_, v)| v).collect();
        let (sink, done) = (self.dead_letters.clone(), self.done_tx.clone());
        let upper = self.rt.subscription.name.upper();
        tokio::spawn(async move {
            let result = sink
                .write(
                    &config.container,
                    &upper,
                    &values,
                    OffsetDateTime::now_utc(),
                )
                .await;
            let _ = done.send(Done::DeadLettered { positions, result });
        });
    }

    /// Applies a finished attempt or dead-letter write.
    fn apply(&mut self, done: Done) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let now = now_ms();
        match done {
            Done::Attempt {
                items,
                result,
                elapsed,
            } => self.apply_attempt(items, result, elapsed, now),
            Done::DeadLettered { positions, result } => match result {
                Ok(name) => {
                    let mut settled = Vec::new();
                    for at in positions {
                        self.busy.remove(&at);
                        self.pending.remove(&at);
                        self.counters.dead_lettered += 1;
                        settled.push(StateRecord::Settled {
                            sub: self.rt.key.clone(),
                            pos: at,
                        });
                    }
                    self.spool.record(settled);
                    tracing::warn!(subscription = %self.rt.key, blob = %name, "dead-lettered");
                }
                Err(e) => {
                    // The sink is unavailable: keep the events and try again in a (scaled) minute.
                    tracing::error!(subscription = %self.rt.key, error = %e, "failed to write a dead letter; will try again");
                    let again =
                        now + self.settings.scaled(Duration::from_secs(60)).as_millis() as i64;
                    let mut records = Vec::new();
                    for at in positions {
                        self.busy.remove(&at);
                        if let Some(pending) = self.pending.get_mut(&at) {
                            pending.due_ms = again;
                            self.due.insert((again, at));
                            records.push(StateRecord::Pending {
                                sub: self.rt.key.clone(),
                                pos: at,
                                pending: pending.clone(),
                            });
                        }
                    }
                    self.spool.record(records);
                }
            },
        }
        self.publish_view();
    }

    fn apply_attempt(
        &mut self,
        items: Vec<Item>,
        result: Result<u16, Failure>,
        elapsed: Duration,
        now: i64,
    ) {
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
        let mut records = Vec::new();
        for item in &items {
            let attempts = item.previous + 1;
            match failure {
                None => {
                    self.counters.delivered += 1;
                    if !item.first {
                        self.pending.remove(&item.at);
                        records.push(StateRecord::Settled {
                            sub: self.rt.key.clone(),
                            pos: item.at,
                        });
                    }
                }
                Some(failure) => {
                    let decision = retry::after_failure(
                        failure,
                        self.rt.endpoint_kind(),
                        attempts,
                        self.rt.subscription.retry.max_delivery_attempts,
                        fastrand::f64(),
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
                            self.due.insert((due_ms, item.at));
                            self.pending.insert(item.at, pending.clone());
                            records.push(StateRecord::Pending {
                                sub: self.rt.key.clone(),
                                pos: item.at,
                                pending,
                            });
                            self.counters.retried += 1;
                            next = format!("retry at {}", rfc3339_ms(due_ms));
                        }
                        Decision::GiveUp(reason) => {
                            // The pending record must be appended before the event leaves
                            // `outstanding` (below), so `finish` appends it right away.
                            self.spool.record(std::mem::take(&mut records));
                            next = self.finish(item, reason, attempts, Some(last.clone()), now);
                        }
                    }
                }
            }
        }
        self.spool.record(records);
        for item in &items {
            self.outstanding.remove(&item.at);
            self.busy.remove(&item.at);
        }
        if failure.is_some()
            && let Admit::Log { suppressed } = self.failure_log.admit(now)
        {
            if suppressed > 0 {
                tracing::info!(
                    subscription = %self.rt.key,
                    suppressed,
                    "more delivery attempts failed than are logged one by one; the dashboard and /admin keep every recent attempt"
                );
            }
            tracing::info!(
                subscription = %self.rt.key,
                events = ?items.iter().map(|i| &*i.id).collect::<Vec<_>>(),
                attempt,
                status = ?status,
                outcome = %last.outcome,
                next = %next,
                "delivery attempt failed"
            );
        }
        let record = DeliveryRecord {
            at: rfc3339_ms(now),
            subscription: self.rt.key.clone(),
            event_ids: items.iter().map(|i| i.id.to_string()).collect(),
            attempt,
            status,
            outcome: last.outcome.clone(),
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            next,
        };
        let mut recent = self.rt.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= RECENT {
            recent.pop_front();
        }
        recent.push_back(record);
    }

    /// Ends an event's delivery: dead-letter it (after the delay) if the subscription has a
    /// dead-letter destination, else drop it. Returns what happens next, for the record.
    fn finish(
        &mut self,
        item: &Item,
        reason: &str,
        attempts: u32,
        last: Option<LastAttempt>,
        now: i64,
    ) -> String {
        if self.rt.subscription.dead_letter.is_some() {
            let due_ms = now
                + self
                    .settings
                    .scaled(self.settings.dead_letter_delay)
                    .as_millis() as i64;
            let pending = Pending {
                attempts,
                due_ms,
                action: PendingAction::DeadLetter {
                    reason: reason.to_owned(),
                },
                last,
            };
            self.due.insert((due_ms, item.at));
            self.pending.insert(item.at, pending.clone());
            self.spool.record(vec![StateRecord::Pending {
                sub: self.rt.key.clone(),
                pos: item.at,
                pending,
            }]);
            "dead-letter".to_owned()
        } else {
            if self.pending.remove(&item.at).is_some() {
                self.spool.record(vec![StateRecord::Settled {
                    sub: self.rt.key.clone(),
                    pos: item.at,
                }]);
            }
            self.counters.dropped += 1;
            tracing::warn!(
                subscription = %self.rt.key,
                event_id = %item.id,
                reason,
                "event dropped: delivery ended and the subscription has no dead-letter destination"
            );
            "dropped".to_owned()
        }
    }

    /// The subscription's event time to live, scaled, in milliseconds.
    fn ttl_ms(&self) -> i64 {
        self.settings
            .scaled(self.rt.subscription.retry.event_time_to_live)
            .as_millis() as i64
    }

    /// The lowest event not yet settled or recorded as pending.
    fn watermark(&self) -> Position {
        let mut mark = self.buffer.front().map_or(self.cursor, |b| b.at);
        if let Some(&first) = self.outstanding.first() {
            mark = mark.min(first);
        }
        mark
    }

    fn watermark_record(&self) -> StateRecord {
        StateRecord::Watermark {
            sub: self.rt.key.clone(),
            pos: self.watermark(),
            counters: self.counters,
        }
    }

    fn write_watermark(&mut self) {
        let now = (self.watermark(), self.counters);
        if self.written_watermark != Some(now) {
            self.spool.record(vec![self.watermark_record()]);
            self.written_watermark = Some(now);
        }
    }

    /// Shares counters and the oldest needed position with the admin API and the collector.
    fn publish_view(&self) {
        *self.rt.counters.lock().unwrap_or_else(|p| p.into_inner()) = self.counters;
        let low = self
            .pending
            .keys()
            .next()
            .copied()
            .map_or(self.watermark(), |p| p.min(self.watermark()));
        *self
            .rt
            .low_position
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(low);
    }

    async fn answer(&mut self, query: Query) {
        match query {
            Query::Pending(reply) => {
                let views = self
                    .pending
                    .iter()
                    .take(1000)
                    .map(|(at, p)| PendingView {
                        subscription: self.rt.key.clone(),
                        event_id: self
                            .spool
                            .read_event(*at)
                            .ok()
                            .map(|e| e.event.header.id.to_string()),
                        position: *at,
                        attempts: p.attempts,
                        due: rfc3339_ms(p.due_ms),
                        action: p.action.clone(),
                        last_status: p.last.as_ref().and_then(|l| l.status),
                        last_outcome: p.last.as_ref().map(|l| l.outcome.clone()),
                    })
                    .collect();
                let _ = reply.send(views);
            }
            Query::Checkpoint(reply) => {
                let mut records = vec![StateRecord::Checkpoint {
                    sub: self.rt.key.clone(),
                }];
                records.extend(self.pending.iter().map(|(at, p)| StateRecord::Pending {
                    sub: self.rt.key.clone(),
                    pos: *at,
                    pending: p.clone(),
                }));
                records.push(self.watermark_record());
                let result = self
                    .spool
                    .record_durably(records)
                    .await
                    .map_err(|e| e.to_string());
                let _ = reply.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_states_are_named_as_serialized() {
        for v in [
            Validation::NotRequired,
            Validation::Validating,
            Validation::AwaitingManualAction {
                validation_url: "u".into(),
            },
            Validation::Succeeded,
            Validation::Failed { reason: "r".into() },
        ] {
            assert_eq!(serde_json::to_value(&v).unwrap()["state"], v.state());
        }
    }

    #[test]
    fn failure_log_budget_counts_what_it_suppresses_and_reports_it_next_second() {
        let mut budget = LogBudget::default();
        let start = 10_000;
        for _ in 0..FAILURES_LOGGED_PER_SECOND {
            assert_eq!(budget.admit(start), Admit::Log { suppressed: 0 });
        }
        for _ in 0..5 {
            assert_eq!(budget.admit(start + 999), Admit::Suppress);
        }
        assert_eq!(budget.admit(start + 1000), Admit::Log { suppressed: 5 });
        assert_eq!(budget.admit(start + 1001), Admit::Log { suppressed: 0 });
    }
}
