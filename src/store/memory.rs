//! The in-memory twin of the store, for unit tests of code that uses a [`RecordStore`].
//! Same semantics as the durable stores, minus durability.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    Collection, Created, Deleted, ETag, Record, RecordKey, RecordStore, Replaced, StoreError,
};

#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<RecordKey, Record>>,
    version: AtomicU64,
    unavailable: AtomicBool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// While set, every operation fails as an unreachable store would.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.unavailable.load(Ordering::SeqCst) {
            Err(StoreError::new("the memory store is set to be unavailable"))
        } else {
            Ok(())
        }
    }

    fn next_etag(&self) -> ETag {
        ETag::new((self.version.fetch_add(1, Ordering::Relaxed) + 1).to_string())
    }

    fn records(&self) -> std::sync::MutexGuard<'_, BTreeMap<RecordKey, Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `body` under `key` with a new etag, which it returns.
    fn put(&self, records: &mut BTreeMap<RecordKey, Record>, key: &RecordKey, body: Bytes) -> ETag {
        let etag = self.next_etag();
        let record = Record {
            etag: etag.clone(),
            body,
        };
        records.insert(key.clone(), record);
        etag
    }
}

#[async_trait]
impl RecordStore for MemoryStore {
    async fn create(&self, key: &RecordKey, body: Bytes) -> Result<Created, StoreError> {
        self.check()?;
        let mut records = self.records();
        if let Some(existing) = records.get(key) {
            return Ok(Created::Exists(existing.clone()));
        }
        Ok(Created::Created(self.put(&mut records, key, body)))
    }

    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError> {
        self.check()?;
        Ok(self.records().get(key).cloned())
    }

    async fn replace(
        &self,
        key: &RecordKey,
        body: Bytes,
        if_match: &ETag,
    ) -> Result<Replaced, StoreError> {
        self.check()?;
        let mut records = self.records();
        match records.get(key) {
            Some(current) if &current.etag == if_match => {
                Ok(Replaced::Replaced(self.put(&mut records, key, body)))
            }
            current => Ok(Replaced::Conflict(current.cloned())),
        }
    }

    async fn delete(&self, key: &RecordKey, if_match: &ETag) -> Result<Deleted, StoreError> {
        self.check()?;
        let mut records = self.records();
        match records.get(key) {
            Some(current) if &current.etag == if_match => {
                records.remove(key);
                Ok(Deleted::Deleted)
            }
            current => Ok(Deleted::Conflict(current.cloned())),
        }
    }

    async fn list(&self, collection: Collection, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.check()?;
        Ok(self
            .records()
            .keys()
            .filter(|k| k.collection() == collection && k.name().starts_with(prefix))
            .map(|k| k.name().to_owned())
            .collect())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
