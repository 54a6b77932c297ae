//! The function app's side of the local dashboard, as `ordergrid dev` wires it: the handler's
//! answers to failed invocations (from the Functions host stand-in), the order's records (from the
//! handler's store, read as `ordergrid orders` reads it, never taking the folder store's lock),
//! and its confirmation email (from the outbox, when email goes there).
//!
//! Only records and files people already read with `ordergrid orders` and a mail client are
//! shown: no settings, so no connection string, key or SMTP password.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::devhost::answers::FailedInvocations;
use crate::emulator::admin::dashboard::{HandlerAnswer, OrderSide};
use crate::emulator::api::dashboard::AppView;
use crate::emulator::clock::rfc3339_ms;
use crate::store::settings::StoreSettings;
use crate::store::{BlobStore, Collection, FolderStore, RecordKey, RecordStore};

/// Rejections looked at for one order, at most (they are keyed by event, not by order).
const MAX_REJECTIONS: usize = 1000;
/// The largest email shown.
const MAX_EMAIL_BYTES: u64 = 1024 * 1024;

pub struct LocalAppView {
    failures: Arc<FailedInvocations>,
    store: StoreSettings,
    blob: tokio::sync::OnceCell<Arc<dyn RecordStore>>,
    /// The outbox folder, when email goes to the outbox.
    outbox: Option<PathBuf>,
}

impl LocalAppView {
    pub fn new(
        failures: Arc<FailedInvocations>,
        store: StoreSettings,
        outbox: Option<PathBuf>,
    ) -> Self {
        Self {
            failures,
            store,
            blob: tokio::sync::OnceCell::new(),
            outbox,
        }
    }

    async fn records(&self) -> anyhow::Result<Arc<dyn RecordStore>> {
        match &self.store {
            StoreSettings::Folder { path } => {
                let path = path.clone();
                let snapshot =
                    tokio::task::spawn_blocking(move || FolderStore::snapshot(&path)).await??;
                Ok(Arc::new(snapshot))
            }
            StoreSettings::Blob { connection, timing } => self
                .blob
                .get_or_try_init(|| async {
                    let store: Arc<dyn RecordStore> =
                        Arc::new(BlobStore::open(connection, *timing).await?);
                    anyhow::Ok(store)
                })
                .await
                .cloned(),
        }
    }

    async fn read(
        store: &dyn RecordStore,
        collection: Collection,
        name: &str,
    ) -> anyhow::Result<Option<Value>> {
        let Ok(key) = RecordKey::new(collection, name) else {
            return Ok(None);
        };
        Ok(match store.get(&key).await? {
            Some(record) => Some(serde_json::from_slice(&record.body)?),
            None => None,
        })
    }

    async fn order_side(&self, order_id: &str) -> anyhow::Result<OrderSide> {
        let store = self.records().await?;
        let record = Self::read(&*store, Collection::Orders, order_id).await?;
        let email_ledger = Self::read(&*store, Collection::EmailLedger, order_id).await?;
        let mut rejections = Vec::new();
        let names = store.list(Collection::Orders, "rejected/").await?;
        for name in names.iter().rev().take(MAX_REJECTIONS) {
            if let Some(rejection) = Self::read(&*store, Collection::Orders, name).await?
                && rejection.get("orderId").and_then(Value::as_str) == Some(order_id)
            {
                rejections.push(rejection);
            }
        }
        Ok(OrderSide {
            record,
            email_ledger,
            rejections,
            unavailable: None,
        })
    }
}

#[async_trait]
impl AppView for LocalAppView {
    fn handler_answers(
        &self,
        subscription: &str,
        event_id: &str,
        delivery_count: u32,
    ) -> Vec<HandlerAnswer> {
        self.failures
            .of_delivery(subscription, event_id, delivery_count)
            .into_iter()
            .map(|f| HandlerAnswer {
                at: rfc3339_ms(f.at_ms),
                function: f.function,
                invocation_id: f.invocation_id,
                status: f.status,
                code: f.code,
                message: f.message,
                logs: f.logs,
            })
            .collect()
    }

    async fn order(&self, order_id: &str) -> OrderSide {
        self.order_side(order_id)
            .await
            .unwrap_or_else(|e| OrderSide {
                unavailable: Some(format!("the order store could not be read: {e:#}")),
                ..OrderSide::default()
            })
    }

    async fn email(&self, order_id: &str) -> Option<(String, String)> {
        // Order ids are checked by the handler before an email is written; this one comes from
        // a URL, so it names a file in the outbox or nothing.
        if order_id.contains(['/', '\\']) || order_id.starts_with('.') {
            return None;
        }
        let file = format!("{order_id}.eml");
        let path = self.outbox.as_ref()?.join(&file);
        let meta = tokio::fs::metadata(&path).await.ok()?;
        if meta.len() > MAX_EMAIL_BYTES {
            return Some((
                file,
                format!(
                    "(the email is {} bytes; open {} instead)",
                    meta.len(),
                    path.display()
                ),
            ));
        }
        let bytes = tokio::fs::read(&path).await.ok()?;
        Some((file, String::from_utf8_lossy(&bytes).into_owned()))
    }
}
