//! What the delivery state's steps give back: work for the dispatcher to start, records to
//! append, and notes worth a log line.

use bytes::Bytes;

use super::webhook::Outgoing;
use crate::emulator::admin::DeliveryRecord;
use crate::emulator::dead_letter::SinkError;
use crate::emulator::spool::StateRecord;
use crate::journal::Position;

/// An event in an attempt.
#[derive(Debug, Clone)]
pub struct Item {
    pub at: Position,
    pub id: Box<str>,
    /// Attempts made before this one.
    pub previous: u32,
    /// This is the event's first attempt (it is in `outstanding`, not `pending`).
    pub first: bool,
}

/// Work a step asks the dispatcher to start; each reports back to the state when done.
#[derive(Debug)]
pub enum Start {
    /// Send `request`; then [`DeliveryState::attempt_finished`].
    Attempt { items: Vec<Item>, request: Outgoing },
    /// Write `events` (annotated) as one blob; then [`DeliveryState::dead_letter_finished`].
    DeadLetter {
        container: String,
        positions: Vec<Position>,
        events: Vec<Bytes>,
    },
}

/// Something worth a log line.
#[derive(Debug, PartialEq)]
pub enum Note {
    /// Delivery ended and there is no dead-letter destination: dropped, as Azure does.
    Dropped {
        event_id: Box<str>,
        reason: &'static str,
    },
    /// A stored event cannot be parsed; it is dead-lettered.
    Unreadable {
        at: Position,
        error: String,
    },
    /// Events waiting for their dead-letter write lost the destination (the subscriptions file
    /// changed across a restart); Azure drops dead letters whose destination is gone.
    DestinationGone {
        events: usize,
    },
    DeadLettered {
        blob: String,
    },
    /// A dead-letter write failed; the events are kept and tried again at `again_ms`.
    DeadLetterFailed {
        error: SinkError,
        again_ms: i64,
    },
    /// Events could not be read from the spool; the dispatcher tries again shortly.
    ReadFailed {
        error: String,
    },
}

/// What a step asks of the dispatcher: `records` to append to the state journal (in this order,
/// before any later watermark), work to start, and notes to log.
#[derive(Debug, Default)]
pub struct Effects {
    pub records: Vec<StateRecord>,
    pub starts: Vec<Start>,
    pub notes: Vec<Note>,
}

/// The outcome of an attempt, for the admin API's recent deliveries and the log.
#[derive(Debug)]
pub struct Attempted {
    pub record: DeliveryRecord,
    /// Where the attempt's events are in the spool.
    pub positions: Vec<Position>,
    /// The attempt failed (the record says what happens next).
    pub failed: bool,
}
