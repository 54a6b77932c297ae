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

/// One order's record and email ledger entry, as JSON.
pub async fn show(store: &dyn RecordStore, order_id: &str) -> anyhow::Result<String> {
    let key = RecordKey::new(Collection::Orders, order_id)
        .with_context(|| format!("{order_id:?} is not an order id"))?;
    let record = store
        .get(&key)
        .await?
        .with_context(|| format!("no order {order_id} in {}", store.describe()))?;
    let order: Value = serde_json::from_slice(&record.body)?;
    let ledger_key = RecordKey::new(Collection::EmailLedger, order_id)?;
    let ledger: Value = match store.get(&ledger_key).await? {
        Some(entry) => serde_json::from_slice(&entry.body)?,
        None => Value::Null,
    };
    Ok(serde_json::to_string_pretty(
        &serde_json::json!({"order": order, "confirmationEmail": ledger}),
    )? + "\n")
}
