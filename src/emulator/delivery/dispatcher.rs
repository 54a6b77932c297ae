//! The dispatcher: the side of a subscription's delivery that touches the world. It owns the
//! subscription's [`DeliveryState`] (no locks on the hot path), feeds it the spool and the
//! clock, carries out its [`Effects`] (state records, requests, dead-letter writes, log lines)
//! and shares counters and recent attempts with the admin API through the
//! [`SubscriptionRuntime`].
//!
//! The loop is [`Dispatcher::run_until_stopped`]; one step of work is [`Dispatcher::try_dispatch`]
//! and one finished request is applied as it arrives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::log_budget::{Admit, LogBudget};
use super::retry::Failure;
use super::state::{Attempted, DeliveryState, Effects, Item, Note, Start};
use super::{Query, SubscriptionRuntime, webhook};
use crate::emulator::activity::Activity;
use crate::emulator::admin::PendingView;
use crate::emulator::clock::{now_ms, rfc3339_ms};
use crate::emulator::dead_letter::{DeadLetterSink, SinkError};
use crate::emulator::settings::DeliverySettings;
use crate::emulator::spool::{RecoveredSubscription, Spool, SpoolError};
use crate::emulator::subscriptions::Subscription;
use crate::eventgrid::Schema;
use crate::eventgrid::protocol;
use crate::journal::Position;
use crate::trace::{self, Kind, Span, TraceParent, Tracer};

/// A finished request, reported back to the loop.
enum Done {
    Attempt {
        items: Vec<Item>,
        result: Result<u16, super::retry::Failure>,
        elapsed: Duration,
    },
    DeadLettered {
        positions: Vec<Position>,
        result: Result<String, SinkError>,
    },
}

pub struct Dispatcher {
    rt: Arc<SubscriptionRuntime>,
    state: DeliveryState,
    spool: Arc<Spool>,
    sender: webhook::Sender,
    dead_letters: Arc<dyn DeadLetterSink>,
    settings: Arc<DeliverySettings>,
    failure_log: LogBudget,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    queries: mpsc::Receiver<Query>,
    /// A span per attempt whose request carries a `traceparent` (see [`Dispatcher::start`]).
    tracer: Tracer,
}

impl Dispatcher {
    /// A dispatcher for `subscription`, resuming from `recovered` state, or starting at the end
    /// of the spool (a new subscription gets events published from now).
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
        activity: Arc<Activity>,
        tracer: Tracer,
    ) -> (Self, Arc<SubscriptionRuntime>) {
        let recovered = recovered.unwrap_or_default();
        let counters = recovered.counters;
        let state = DeliveryState::new(
            topic,
            input_schema,
            subscription.clone(),
            settings.clone(),
            recovered,
            spool.events_end(),
        );
        let (query_tx, query_rx) = mpsc::channel(16);
        let rt = Arc::new(SubscriptionRuntime::new(
            topic,
            input_schema,
            subscription,
            state.key().to_owned(),
            counters,
            state.low_position(),
            query_tx,
            activity,
        ));
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let dispatcher = Self {
            rt: rt.clone(),
            state,
            spool,
            sender,
            dead_letters,
            settings,
            failure_log: LogBudget::default(),
            done_tx,
            done_rx,
            queries: query_rx,
            tracer,
        };
        (dispatcher, rt)
    }

    /// Records where this subscription starts, durably, so events published after this are
    /// never missed even if the emulator crashes before its first periodic watermark.
    pub async fn persist_start(&mut self) -> Result<(), SpoolError> {
        match self.state.watermark_if_changed() {
            Some(record) => self.spool.record_durably(vec![record]).await,
            None => Ok(()),
        }
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
            if deliver && !self.try_dispatch() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let caught_up = self.state.caught_up(self.spool.events_end());
            let can_take = deliver && self.state.can_take();
            let next_due = self
                .state
                .next_due_ms()
                .map(|ms| Duration::from_millis((ms - now_ms()).max(0) as u64));
            tokio::select! {
                Some(done) = self.done_rx.recv() => self.apply(done),
                changed = validation.changed() => if changed.is_err() { break },
                changed = events.changed(), if deliver && caught_up => if changed.is_err() { break },
                () = tokio::time::sleep(next_due.unwrap_or(Duration::from_secs(3600))), if next_due.is_some() && can_take => {}
                _ = tick.tick() => {
                    if let Some(record) = self.state.watermark_if_changed() {
                        self.spool.record(vec![record]);
                    }
                }
                Some(query) = self.queries.recv() => self.answer(query).await,
                () = shutdown.cancelled() => break,
            }
        }
        let record = self.state.watermark_record();
        if let Err(e) = self.spool.record_durably(vec![record]).await {
            tracing::warn!(subscription = %self.rt.key, error = %e, "failed to record the final watermark");
        }
    }

    /// One step of the state with the spool and the clock; false when the spool could not be
    /// read (the loop waits a little before the next try).
    pub fn try_dispatch(&mut self) -> bool {
        let effects = self.state.dispatch(now_ms(), &*self.spool);
        let read = !effects
            .notes
            .iter()
            .any(|n| matches!(n, Note::ReadFailed { .. }));
        self.carry_out(effects);
        read
    }

    fn apply(&mut self, done: Done) {
        let now = now_ms();
        match done {
            Done::Attempt {
                items,
                result,
                elapsed,
            } => {
                let (effects, attempted) =
                    self.state
                        .attempt_finished(items, result, elapsed, now, fastrand::f64());
                // Recent attempts before counters: whoever sees a count sees its attempt.
                self.record_attempt(attempted, now);
                self.carry_out(effects);
            }
            Done::DeadLettered { positions, result } => {
                let written = result
                    .as_ref()
                    .ok()
                    .map(|blob| (positions.len(), blob.clone()));
                let effects = self.state.dead_letter_finished(positions, result, now);
                self.carry_out(effects);
                // After the counters: whoever is told of a dead letter sees it counted.
                if let Some((events, blob)) = written {
                    self.rt.report_dead_letter(events, &blob);
                }
            }
        }
    }

    /// Appends the records, starts the requests, logs the notes, shares the view.
    fn carry_out(&mut self, effects: Effects) {
        let Effects {
            records,
            starts,
            notes,
        } = effects;
        if !records.is_empty() {
            self.spool.record(records);
        }
        for start in starts {
            self.start(start);
        }
        for note in notes {
            self.log(note);
        }
        self.rt
            .publish(self.state.counters(), self.state.low_position());
    }

    fn start(&self, start: Start) {
        let done = self.done_tx.clone();
        match start {
            Start::Attempt { items, request } => {
                let sender = self.sender.clone();
                let span = self.attempt_span(&request);
                tokio::spawn(async move {
                    let _turn = sender.permit().await;
                    let started = Instant::now();
                    let result = sender.send(request).await;
                    if let Some(mut span) = span {
                        match &result {
                            Ok(status) | Err(Failure::Status(status)) => {
                                span.set("http.response.status_code", i64::from(*status));
                                if !(200..300).contains(status) {
                                    span.fail(format!("answered {status}"));
                                }
                            }
                            Err(Failure::Timeout) => span.fail("no answer in time"),
                            Err(Failure::Connection) => span.fail("no connection"),
                        }
                    }
                    let _ = done.send(Done::Attempt {
                        items,
                        result,
                        elapsed: started.elapsed(),
                    });
                });
            }
            Start::DeadLetter {
                container,
                positions,
                events,
            } => {
                let sink = self.dead_letters.clone();
                let upper = self.rt.subscription.name.upper();
                tokio::spawn(async move {
                    let at = OffsetDateTime::now_utc();
                    let result = sink.write(&container, &upper, &events, at).await;
                    let _ = done.send(Done::DeadLettered { positions, result });
                });
            }
        }
    }

    /// The span of an attempt whose request carries a `traceparent`: Event Grid knows an event's
    /// trace only through a delivery property mapping it (see [`crate::trace::context`]), and
    /// the header goes out as mapped, unchanged, as Azure sends it; the span is the emulator's
    /// own account of the attempt (Event Grid reports no spans to Application Insights).
    fn attempt_span(&self, request: &webhook::Outgoing) -> Option<Span> {
        if !self.tracer.is_on() {
            return None;
        }
        let parent = TraceParent::parse(request.header(trace::TRACEPARENT)?)?;
        let mut span = self.tracer.start(
            format!("deliver to {}", self.rt.key),
            Kind::Client,
            Some(parent),
        );
        span.set("eventgrid.subscription", self.rt.key.clone());
        if let Some(count) = request.header(protocol::DELIVERY_COUNT) {
            span.set("eventgrid.delivery_count", count.to_owned());
        }
        Some(span)
    }

    fn log(&self, note: Note) {
        let key = &self.rt.key;
        match note {
            Note::Dropped { event_id, reason } => tracing::warn!(
                subscription = %key,
                event_id = %event_id,
                reason,
                "event dropped: delivery ended and the subscription has no dead-letter destination"
            ),
            Note::Unreadable { at, error } => tracing::error!(
                subscription = %key,
                position = %at,
                error = %error,
                "a stored event cannot be parsed; it is dead-lettered"
            ),
            Note::DestinationGone { events } => tracing::warn!(
                subscription = %key,
                events,
                "dropped events awaiting a dead-letter write: the subscription no longer has a dead-letter destination"
            ),
            Note::DeadLettered { blob } => {
                tracing::warn!(subscription = %key, blob = %blob, "dead-lettered");
            }
            Note::DeadLetterFailed { error, again_ms } if error.is_transient() => tracing::error!(
                subscription = %key,
                error = %error,
                again = %rfc3339_ms(again_ms),
                "failed to write a dead letter; will try again"
            ),
            Note::DeadLetterFailed { error, again_ms } => tracing::error!(
                subscription = %key,
                error = %error,
                again = %rfc3339_ms(again_ms),
                "a dead letter cannot be written as configured; the events are kept and tried again until the configuration is fixed"
            ),
            Note::ReadFailed { error } => tracing::error!(
                subscription = %key,
                error = %error,
                "failed to read the spool; retrying shortly"
            ),
        }
    }

    /// Keeps the attempt among the recent ones and logs a failure, within the log budget.
    fn record_attempt(&mut self, attempted: Attempted, now: i64) {
        let Attempted {
            record,
            positions,
            failed,
        } = attempted;
        self.rt.report(&positions, &record, now);
        if failed && let Admit::Log { suppressed } = self.failure_log.admit(now) {
            if suppressed > 0 {
                tracing::info!(
                    subscription = %self.rt.key,
                    suppressed,
                    "more delivery attempts failed than are logged one by one; the dashboard and /admin keep every recent attempt"
                );
            }
            tracing::info!(
                subscription = %self.rt.key,
                events = ?record.event_ids,
                attempt = record.attempt,
                status = ?record.status,
                outcome = %record.outcome,
                next = %record.next,
                "delivery attempt failed"
            );
        }
        self.rt.remember(record);
    }

    async fn answer(&mut self, query: Query) {
        match query {
            Query::Pending(reply) => {
                let views = self
                    .state
                    .pending()
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
                let records = self.state.checkpoint_records();
                let _ = reply.send(self.spool.record_durably(records).await);
            }
        }
    }
}
