//! orderStatus: `GET /api/orders/{orderId}/status`, an order's current status from the store, as
//! the [`StatusUpdate`] that announced it, so a page shows it on load and after a reconnect and
//! then drops the live update with the same `eventId`.
//!
//! Where each status is read (`received` is never stored: until OrderProcessor has run, the
//! answer is 404 and the page waits for the live update):
//! - `confirmationSent` / `confirmationFailed`: a settled `email-ledger/<orderId>` entry; the
//!   event id is the one EmailNotifier derives from the order id, the time the entry's;
//! - `accepted`: `orders/<orderId>`, with the recorded `OrderAccepted` id and time;
//! - `rejected`: the newest `orders/rejected/*` record naming the order id, only when no order was
//!   recorded under it (a rejected *reuse* of an accepted order's id does not undo the order).
//!   Rejections are keyed by event, so this reads every rejection: fine for a shop's volume,
//!   and the first thing to index if rejections grow large.
//!
//! A store failure answers 503 (trying again may help); a bad order id 400; none 404.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::emit::derived_id;
use super::feed::{OrderStatus, StatusUpdate};
use super::http::{HttpError, no_store};
use super::{
    LedgerEntry, ORDER_CONFIRMATION_FAILED, ORDER_CONFIRMATION_SENT, OrderRecord, RejectionRecord,
    Services,
};
use crate::domain::OrderId;
use crate::invocation::http::{HttpRequestData, HttpResponseData};
use crate::store::{Collection, RecordKey, RecordStore, StoreError};

pub async fn handle(
    services: &Services,
    req: &HttpRequestData,
) -> Result<HttpResponseData, HttpError> {
    let raw = req.param("orderId").unwrap_or_default();
    let order_id = OrderId::parse(raw)
        .map_err(|e| HttpError::bad_request("InvalidOrderId", format!("orderId {raw:?} {e}")))?;
    let update = current(services.store.as_ref(), &order_id)
        .await
        .map_err(|e| HttpError::unavailable("the order store is unavailable; try again", e))?;
    match update {
        Some(update) => Ok(no_store(HttpResponseData::json(200, &update))),
        None => Err(HttpError::NotFound {
            code: "OrderNotFound",
            message: format!(
                "no order {order_id} has been processed (yet): its status appears once OrderProcessor has accepted or rejected it"
            ),
        }),
    }
}

/// The order's current status, if any is stored.
pub async fn current(
    store: &dyn RecordStore,
    order_id: &OrderId,
) -> anyhow::Result<Option<StatusUpdate>> {
    if let Some(update) = confirmation(store, order_id).await? {
        return Ok(Some(update));
    }
    if let Some(record) = read::<OrderRecord>(store, Collection::Orders, order_id.as_str()).await? {
        return Ok(Some(StatusUpdate::new(
            order_id.clone(),
            OrderStatus::Accepted,
            record.recorded_at,
            record.accepted_event_id,
        )));
    }
    rejection(store, order_id).await
}

/// The `limit` most recently changed orders' current statuses, newest first: every recorded
/// order, and every rejected order id never recorded (its newest rejection). The store lists
/// names, not times, so this reads every order and rejection: fine at a shop's volume, and the
/// first thing to index (a time-ordered list of changes) if orders grow large.
pub async fn recent(store: &dyn RecordStore, limit: usize) -> anyhow::Result<Vec<StatusUpdate>> {
    let mut latest: std::collections::HashMap<String, (OffsetDateTime, StatusUpdate)> =
        std::collections::HashMap::new();
    let at =
        |time: &str| OffsetDateTime::parse(time, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    for name in store.list(Collection::Orders, "").await? {
        if name.starts_with("rejected/") {
            continue;
        }
        let Ok(order_id) = OrderId::parse(&name) else {
            continue; // not an order's record
        };
        if let Some(update) = current(store, &order_id).await? {
            latest.insert(name, (at(update.time()), update));
        }
    }
    for name in store.list(Collection::Orders, "rejected/").await? {
        let Some(record) = read::<RejectionRecord>(store, Collection::Orders, &name).await? else {
            continue; // removed since it was listed
        };
        let Some(order_id) = record
            .order_id
            .as_deref()
            .and_then(|id| OrderId::parse(id).ok())
        else {
            continue; // a rejection with no usable order id is no order's status
        };
        let time = at(&record.rejected_at);
        let newer = match latest.get(order_id.as_str()) {
            None => true,
            Some((t, update)) => update.status() == OrderStatus::Rejected && time > *t,
        };
        if newer {
            let key = order_id.as_str().to_owned();
            let update = StatusUpdate::rejected(
                order_id,
                record.reasons,
                record.rejected_at,
                record.rejected_event_id,
            );
            latest.insert(key, (time, update));
        }
    }
    let mut updates: Vec<(OffsetDateTime, StatusUpdate)> = latest.into_values().collect();
    updates.sort_by_key(|(time, _)| std::cmp::Reverse(*time));
    Ok(updates.into_iter().take(limit).map(|(_, u)| u).collect())
}

async fn confirmation(
    store: &dyn RecordStore,
    order_id: &OrderId,
) -> anyhow::Result<Option<StatusUpdate>> {
    let entry = read::<LedgerEntry>(store, Collection::EmailLedger, order_id.as_str()).await?;
    let (status, event_type, time) = match entry {
        Some(LedgerEntry::Sent { sent_at, .. }) => (
            OrderStatus::ConfirmationSent,
            ORDER_CONFIRMATION_SENT,
            sent_at,
        ),
        Some(LedgerEntry::Failed { failed_at, .. }) => (
            OrderStatus::ConfirmationFailed,
            ORDER_CONFIRMATION_FAILED,
            failed_at,
        ),
        Some(LedgerEntry::Sending { .. }) | None => return Ok(None),
    };
    Ok(Some(StatusUpdate::new(
        order_id.clone(),
        status,
        time.format(&Rfc3339).unwrap_or_default(),
        derived_id(event_type, order_id.as_str()),
    )))
}

async fn rejection(
    store: &dyn RecordStore,
    order_id: &OrderId,
) -> anyhow::Result<Option<StatusUpdate>> {
    let mut newest: Option<(OffsetDateTime, RejectionRecord)> = None;
    for name in store.list(Collection::Orders, "rejected/").await? {
        let Some(record) = read::<RejectionRecord>(store, Collection::Orders, &name).await? else {
            continue; // removed since it was listed
        };
        if record.order_id.as_deref() != Some(order_id.as_str()) {
            continue;
        }
        let at = OffsetDateTime::parse(&record.rejected_at, &Rfc3339)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        if newest.as_ref().is_none_or(|(t, _)| at > *t) {
            newest = Some((at, record));
        }
    }
    Ok(newest.map(|(_, record)| {
        StatusUpdate::rejected(
            order_id.clone(),
            record.reasons,
            record.rejected_at,
            record.rejected_event_id,
        )
    }))
}

async fn read<T: serde::de::DeserializeOwned>(
    store: &dyn RecordStore,
    collection: Collection,
    name: &str,
) -> anyhow::Result<Option<T>> {
    let key = RecordKey::new(collection, name)?;
    let Some(record) = store.get(&key).await.map_err(anyhow_of)? else {
        return Ok(None);
    };
    let value = serde_json::from_slice(&record.body)
        .map_err(|e| anyhow::anyhow!("the record {key} is not readable: {e}"))?;
    Ok(Some(value))
}

fn anyhow_of(e: StoreError) -> anyhow::Error {
    anyhow::Error::new(e)
}
