//! Durable records with conditional writes: the one interface behind orders, rejections and the
//! email ledger.
//!
//! The interface is shaped like a blob store's conditional requests, so each backend maps onto
//! it directly:
//! - [`RecordStore::create`] is `PUT` with `If-None-Match: *` (create only if absent, else return
//!   what is there);
//! - [`RecordStore::replace`] and [`RecordStore::delete`] carry `If-Match: <etag>`.
//!
//! Invariants every implementation keeps (the shared test suite in `tests/` checks them):
//! - a write returns `Ok` only once it is durable (flushed), so a caller may answer 2xx after it;
//! - of racing `create`s of one key exactly one gets [`Created::Created`]; the others get
//!   [`Created::Exists`] with the winner's record, never a partial one;
//! - a record that was half written (crash, torn write) never reads as valid;
//! - every error is [`StoreError`], which callers treat as transient (retry later).

mod blob;
mod folder;
mod memory;
pub mod settings;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

pub use blob::BlobStore;
pub use folder::{FolderSnapshot, FolderStore, FolderStoreOptions};
pub use memory::MemoryStore;

/// A group of records; a folder-store namespace or a blob container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Collection {
    /// Recorded orders, keyed by order id, and rejected events under `rejected/`.
    Orders,
    /// One entry per confirmation email, keyed by order id.
    EmailLedger,
}

impl Collection {
    pub const ALL: [Collection; 2] = [Collection::Orders, Collection::EmailLedger];

    /// The name used for folders and blob containers.
    pub fn name(self) -> &'static str {
        match self {
            Collection::Orders => "orders",
            Collection::EmailLedger => "email-ledger",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Where a record lives: a collection and a `/`-separated name of storage-safe segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey {
    collection: Collection,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid record name {0:?}: segments of [A-Za-z0-9._:-] separated by '/', at most 256 characters"
)]
pub struct InvalidKey(String);

impl RecordKey {
    pub fn new(collection: Collection, name: &str) -> Result<Self, InvalidKey> {
        let ok = !name.is_empty()
            && name.len() <= 256
            && name.split('/').all(|seg| {
                !seg.is_empty()
                    && seg.as_bytes()[0].is_ascii_alphanumeric()
                    && seg.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
                    })
            });
        if ok {
            Ok(Self {
                collection,
                name: name.to_owned(),
            })
        } else {
            Err(InvalidKey(name.to_owned()))
        }
    }

    pub fn collection(&self) -> Collection {
        self.collection
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.collection.name(), self.name)
    }
}

/// An opaque version tag; changes on every write of a record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(String);

impl ETag {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A record's content with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub etag: ETag,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Created(ETag),
    /// The key already existed; this is what is stored.
    Exists(Record),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    Replaced(ETag),
    /// The etag did not match; this is the current record, if any.
    Conflict(Option<Record>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// The etag did not match; this is the current record, if any.
    Conflict(Option<Record>),
}

/// A store failure. Callers answer non-2xx so the delivery is retried.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

#[async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// Stores `body` under `key` unless the key exists (`If-None-Match: *`).
    async fn create(&self, key: &RecordKey, body: Bytes) -> Result<Created, StoreError>;

    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError>;

    /// Overwrites the record if its etag is still `if_match`.
    async fn replace(
        &self,
        key: &RecordKey,
        body: Bytes,
        if_match: &ETag,
    ) -> Result<Replaced, StoreError>;

    /// Removes the record if its etag is still `if_match`.
    async fn delete(&self, key: &RecordKey, if_match: &ETag) -> Result<Deleted, StoreError>;

    /// Names of the records in a collection whose name starts with `prefix`, sorted.
    async fn list(&self, collection: Collection, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// A short description for logs and start-up output (`folder .ordergrid/store`).
    fn describe(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_accept_safe_segments_only() {
        assert!(RecordKey::new(Collection::Orders, "12345").is_ok());
        assert!(RecordKey::new(Collection::Orders, "rejected/abc-1").is_ok());
        for bad in [
            "",
            "/x",
            "x/",
            "a//b",
            "../x",
            "a b",
            ".hidden",
            &"x".repeat(257),
        ] {
            assert!(RecordKey::new(Collection::Orders, bad).is_err(), "{bad}");
        }
    }
}
