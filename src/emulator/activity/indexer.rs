//! The indexer: tails the spool from the oldest event it still holds, and tells the
//! [`Activity`] what each event is (envelope, `data.orderId`, the subscriptions that want it).
//! It runs beside the dispatchers, never in their way: the publish API does not wait for it and
//! a dispatcher does not read what it writes.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Activity, Indexed};
use crate::emulator::delivery::SubscriptionRuntime;
use crate::emulator::delivery::state::{Wanted, wanted};
use crate::emulator::spool::{Spool, StoredEvent};
use crate::journal::Position;
use crate::json::Json;

const READ_BYTES: usize = 256 * 1024;

/// `data.orderId` of an event (a string, or a number's text). Read without parsing the whole
/// body when no stage has: building and dropping the tree of every event was about a tenth of
/// the emulator's CPU with one subscription (BENCHMARKS.md, issue 15).
pub fn order_id(stored: &StoredEvent) -> Option<Box<str>> {
    match stored.event.value_at(&["data", "orderId"])? {
        Json::String(s) => Some(s),
        Json::Number(n) => Some(n.as_str().into()),
        _ => None,
    }
}

/// Whether `rt`'s subscription wants the event, as its dispatcher decides; an event whose body
/// cannot be parsed is wanted (it is dead-lettered).
fn wants(rt: &SubscriptionRuntime, stored: &StoredEvent) -> bool {
    wanted(&rt.topic, rt.input_schema, &rt.subscription, stored) != Wanted::No
}

pub fn describe(stored: &StoredEvent, runtimes: &[Arc<SubscriptionRuntime>]) -> Indexed {
    let header = &stored.event.header;
    Indexed {
        topic: stored.topic().into(),
        id: header.id.clone(),
        event_type: header.event_type.clone(),
        subject: header.subject.clone(),
        order_id: order_id(stored),
        published_ms: stored.published_ms,
        target: stored.target().map(Box::from),
        matched: runtimes
            .iter()
            .enumerate()
            .filter(|(_, rt)| wants(rt, stored))
            .map(|(i, _)| i as u16)
            .collect(),
    }
}

/// Indexes every event the spool holds, then each one as it becomes durable, until `stop`.
pub async fn run_indexer_until_stopped(
    spool: Arc<Spool>,
    runtimes: Vec<Arc<SubscriptionRuntime>>,
    activity: Arc<Activity>,
    stop: CancellationToken,
) {
    let mut cursor = Position::default();
    let mut durable = spool.watch_events();
    loop {
        match spool.read_events(cursor, READ_BYTES) {
            Ok((events, next)) => {
                cursor = next;
                let more = !events.is_empty();
                for stored in events {
                    activity.indexed(stored.at, describe(&stored, &runtimes));
                }
                if more {
                    continue;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the dashboard's index could not read the spool; trying again shortly");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = stop.cancelled() => return,
                }
            }
        }
        tokio::select! {
            changed = durable.changed() => if changed.is_err() { return },
            () = stop.cancelled() => return,
        }
    }
}
