//! Delivery: one dispatcher per subscription moves events from the spool to the destination,
//! with Event Grid's batching, retry schedule, time to live and dead-lettering.
//!
//! - [`state`]: the subscription's delivery state and its transitions, pure (no disk, network
//!   or clock), with the invariants that make delivery at-least-once and lose nothing;
//! - [`dispatcher`]: the loop that feeds the state the spool and the clock and carries out what
//!   it asks: requests ([`webhook`]), dead-letter writes, state records, log lines;
//! - [`retry`]: Azure's retry schedule and failure classes; [`handshake`] and [`manual`]: the
//!   validation handshake a webhook must pass before it receives anything;
//! - [`SubscriptionRuntime`]: what the rest of the emulator (the admin API) sees of a
//!   subscription: validation state, counters, recent attempts, pending events on request.
//!
//! A subscription whose endpoint has not validated receives nothing; its events wait in the
//! spool (subject to their time to live) until it validates.

mod dispatcher;
pub mod handshake;
mod log_budget;
pub mod manual;
pub mod retry;
pub mod state;
pub mod webhook;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

pub use self::dispatcher::Dispatcher;
use super::activity::Activity;
use super::admin::{DeliveryRecord, PendingView};
use super::spool::{Counters, SpoolError};
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

/// Questions the admin API and the maintenance task ask a dispatcher.
pub enum Query {
    Pending(oneshot::Sender<Vec<PendingView>>),
    /// Restate the whole state in the (freshly rolled) state journal, durably.
    Checkpoint(oneshot::Sender<Result<(), SpoolError>>),
}

/// Recent attempts kept for the admin API.
const RECENT: usize = 100;

/// What the rest of the emulator can see of a subscription; shared with its dispatcher.
pub struct SubscriptionRuntime {
    pub topic: String,
    pub input_schema: Schema,
    pub subscription: Subscription,
    /// `topic/subscription`, the key of its state records.
    pub key: String,
    pub validation: watch::Sender<Validation>,
    manual: Mutex<Option<manual::ManualValidation>>,
    counters: Mutex<Counters>,
    recent: Mutex<VecDeque<DeliveryRecord>>,
    /// The oldest spool position this subscription still needs.
    low_position: Mutex<Option<Position>>,
    queries: mpsc::Sender<Query>,
    /// Where attempts are reported for the dashboard, and this subscription's index there.
    activity: Arc<Activity>,
    activity_index: u16,
}

impl SubscriptionRuntime {
    #[allow(clippy::too_many_arguments)]
    fn new(
        topic: &str,
        input_schema: Schema,
        subscription: Subscription,
        key: String,
        counters: Counters,
        low_position: Position,
        queries: mpsc::Sender<Query>,
        activity: Arc<Activity>,
    ) -> Self {
        let activity_index = activity.subscription_index(&key).unwrap_or(u16::MAX);
        let validation = match subscription.destination {
            Destination::AzureFunction { .. } => Validation::NotRequired,
            Destination::WebHook { .. } => Validation::Validating,
        };
        Self {
            topic: topic.to_owned(),
            input_schema,
            subscription,
            key,
            validation: watch::Sender::new(validation),
            manual: Mutex::new(None),
            counters: Mutex::new(counters),
            recent: Mutex::new(VecDeque::new()),
            low_position: Mutex::new(Some(low_position)),
            queries,
            activity,
            activity_index,
        }
    }

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

    /// Has the dispatcher restate its state durably (for compaction of the state journal).
    pub async fn checkpoint(&self) -> Result<(), SpoolError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || SpoolError::new(format!("the dispatcher of {} has stopped", self.key));
        self.queries
            .send(Query::Checkpoint(tx))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// The dispatcher shares its counters and the oldest position it needs.
    fn publish(&self, counters: Counters, low_position: Position) {
        *self.counters.lock().unwrap_or_else(|p| p.into_inner()) = counters;
        *self.low_position.lock().unwrap_or_else(|p| p.into_inner()) = Some(low_position);
    }

    /// Reports an attempt to the dashboard's activity.
    fn report(&self, positions: &[Position], record: &DeliveryRecord, at_ms: i64) {
        if self.activity_index != u16::MAX {
            self.activity
                .attempted(self.activity_index, positions, record, at_ms);
        }
    }

    /// Reports a written dead letter to the dashboard's activity.
    fn report_dead_letter(&self, events: usize, blob: &str) {
        if self.activity_index != u16::MAX {
            self.activity
                .dead_lettered(self.activity_index, events, blob);
        }
    }

    /// Keeps an attempt among the recent ones.
    fn remember(&self, record: DeliveryRecord) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= RECENT {
            recent.pop_front();
        }
        recent.push_back(record);
    }
}
