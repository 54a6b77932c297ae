//! `ordergrid orders list|show`: what the functions recorded, as text: orders with their
//! confirmation email's state, and rejected events with their reasons.

use anyhow::Context;
use serde_json::Value;

use super::table::{self, table};
use crate::functions::{LedgerEntry, OrderRecord, RejectionRecord};
use crate::store::{Collection, RecordKey, RecordStore};

async fn ledger_state(store: &dyn RecordStore, order_id: &str) -> anyhow::Result<String> {
    let Ok(key) = RecordKey::new(Collection::EmailLedger, order_id) else {
        return Ok("-".into());
    };
    Ok(match store.get(&key).await? {
        None => "not sent".into(),
        Some(record) => match serde_json::from_slice::<LedgerEntry>(&record.body) {
            Ok(LedgerEntry::Sent { .. }) => "sent".into(),
            Ok(LedgerEntry::Sending { .. }) => "sending".into(),
            Ok(LedgerEntry::Failed { reason, .. }) => format!("failed: {reason}"),
            Err(_) => "unreadable".into(),
        },
    })
}

/// Every order and rejection, one line each.
pub async fn list(store: &dyn RecordStore) -> anyhow::Result<String> {
    let names = store.list(Collection::Orders, "").await?;
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    for name in names {
        let key = RecordKey::new(Collection::Orders, &name)?;
        let Some(record) = store.get(&key).await? else {
            continue;
        };
        if name.starts_with("rejected/") {
            let rejection: RejectionRecord = serde_json::from_slice(&record.body)
                .with_context(|| format!("{name} is unreadable"))?;
            let reasons: Vec<String> = rejection
                .reasons
                .iter()
                .map(|r| format!("{}: {}", r.field, r.message))
                .collect();
            rejected.push(vec![
                rejection.event_id,
                rejection.order_id.unwrap_or_else(|| "-".into()),
                reasons.join("; "),
            ]);
            continue;
        }
        let order: OrderRecord = serde_json::from_slice(&record.body)
            .with_context(|| format!("order {name} is unreadable"))?;
        rows.push(vec![
            name.clone(),
            format!(
                "{} {}",
                table::cell(&order.order["orderValue"]),
                table::cell(&order.order["currency"])
            ),
            table::cell(&order.order["customerId"]),
            table::cell(&order.order["customerEmail"]),
            ledger_state(store, &name).await?,
            order.recorded_at,
        ]);
    }
    let mut out = table(
        &[
            "ORDER",
            "VALUE",
            "CUSTOMER",
            "EMAIL TO",
            "CONFIRMATION",
            "RECORDED AT",
        ],
        rows,
    );
    if !rejected.is_empty() {
        out.push('\n');
        out += &table(&["REJECTED EVENT", "ORDER", "REASONS"], rejected);
    }
    Ok(out)
}

/// The rejections recorded for `order_id` (an order can be rejected more than once: each event
/// is judged on its own), oldest first.
async fn rejections(
    store: &dyn RecordStore,
    order_id: &str,
) -> anyhow::Result<Vec<RejectionRecord>> {
    let mut found = Vec::new();
    for name in store.list(Collection::Orders, "rejected/").await? {
        let key = RecordKey::new(Collection::Orders, &name)?;
        let Some(record) = store.get(&key).await? else {
            continue; // removed since it was listed
        };
        let rejection: RejectionRecord = serde_json::from_slice(&record.body)
            .with_context(|| format!("{name} is unreadable"))?;
        if rejection.order_id.as_deref() == Some(order_id) {
            found.push(rejection);
        }
    }
    found.sort_by(|a, b| a.rejected_at.cmp(&b.rejected_at));
    Ok(found)
}

/// A rejection for people: when, which event, and every reason.
fn explain(rejection: &RejectionRecord) -> String {
    let mut out = format!(
        "rejected at {} (event {}, OrderRejected {}):\n",
        rejection.rejected_at, rejection.event_id, rejection.rejected_event_id
    );
    for reason in &rejection.reasons {
        out += &format!("  - {}: {}\n", reason.field, reason.message);
    }
    out
}

/// One order's record and email ledger entry, as JSON (with `rejections` when events reusing its
/// id were rejected); for an order that was only rejected, the rejection and its reasons, as text.
pub async fn show(store: &dyn RecordStore, order_id: &str) -> anyhow::Result<String> {
    let key = RecordKey::new(Collection::Orders, order_id)
        .with_context(|| format!("{order_id:?} is not an order id"))?;
    let rejected = rejections(store, order_id).await?;
    let Some(record) = store.get(&key).await? else {
        if rejected.is_empty() {
            anyhow::bail!(
                "no order {order_id} in {}: it was neither recorded nor rejected",
                store.describe()
            );
        }
        let mut out = format!("order {order_id} was not recorded: it was rejected\n");
        for rejection in &rejected {
            out += &explain(rejection);
        }
        return Ok(out);
    };
    let order: Value = serde_json::from_slice(&record.body)?;
    let ledger_key = RecordKey::new(Collection::EmailLedger, order_id)?;
    let ledger: Value = match store.get(&ledger_key).await? {
        Some(entry) => serde_json::from_slice(&entry.body)?,
        None => Value::Null,
    };
    let mut shown = serde_json::json!({"order": order, "confirmationEmail": ledger});
    if !rejected.is_empty() {
        shown["rejections"] = serde_json::to_value(&rejected)?;
    }
    Ok(serde_json::to_string_pretty(&shown)? + "\n")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::store::MemoryStore;

    async fn put(store: &MemoryStore, name: &str, body: Value) {
        let key = RecordKey::new(Collection::Orders, name).unwrap();
        store
            .create(&key, Bytes::from(body.to_string()))
            .await
            .unwrap();
    }

    fn rejection(event: &str, order: &str, at: &str) -> Value {
        json!({"eventId": event, "orderId": order, "rejectedAt": at, "rejectedEventId": format!("r-{event}"),
               "reasons": [{"field": "orderValue", "message": "must be positive"},
                           {"field": "customerEmail", "message": "is not an email address"}]})
    }

    #[tokio::test]
    async fn showing_a_rejected_order_explains_the_rejection_and_every_reason() {
        let store = MemoryStore::new();
        put(
            &store,
            "rejected/e1",
            rejection("e1", "12347", "2026-01-01T00:00:00Z"),
        )
        .await;
        put(
            &store,
            "rejected/e2",
            rejection("e2", "99999", "2026-01-01T00:00:00Z"),
        )
        .await;
        let out = show(&store, "12347").await.unwrap();
        assert!(
            out.contains("order 12347 was not recorded: it was rejected"),
            "{out}"
        );
        assert!(out.contains("event e1"), "{out}");
        assert!(!out.contains("e2"), "another order's rejection: {out}");
        assert!(out.contains("orderValue: must be positive"), "{out}");
        assert!(
            out.contains("customerEmail: is not an email address"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn an_order_neither_recorded_nor_rejected_is_said_to_be_neither() {
        let err = show(&MemoryStore::new(), "1").await.unwrap_err();
        assert!(
            err.to_string().contains("neither recorded nor rejected"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_recorded_order_lists_the_rejected_events_that_reused_its_id() {
        let store = MemoryStore::new();
        put(
            &store,
            "12345",
            json!({"order": {"orderId": "12345"}, "eventId": "e0",
                                    "recordedAt": "2026-01-01T00:00:00Z", "acceptedEventId": "a0"}),
        )
        .await;
        put(
            &store,
            "rejected/e3",
            rejection("e3", "12345", "2026-01-02T00:00:00Z"),
        )
        .await;
        let out: Value = serde_json::from_str(&show(&store, "12345").await.unwrap()).unwrap();
        assert_eq!(out["order"]["order"]["orderId"], "12345", "{out}");
        assert_eq!(out["rejections"][0]["eventId"], "e3", "{out}");
        assert_eq!(out["rejections"][0]["reasons"].as_array().unwrap().len(), 2);
    }
}
