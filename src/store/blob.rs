//! The Azure Blob Storage store: each record is a block blob `<collection>/<name>` (containers
//! `orders` and `email-ledger`), written with Blob Storage's conditional requests, so the
//! guarantees hold across every process that shares the account, not only within one.
//!
//! - `create` is `PUT` with `If-None-Match: *`; a 409 `BlobAlreadyExists` (or 412) means the key
//!   is taken: the stored blob is read and returned as [`Created::Exists`];
//! - `replace` and `delete` carry `If-Match: <etag>`; a 412 returns the current record as the
//!   conflict; `get` maps 404 to `None`; `list` pages through `List Blobs` with a prefix.
//!
//! Invariants (on top of the trait's):
//! - **durable when acknowledged**: Blob Storage answers 201 only once the blob is committed;
//! - **one winner across processes**: the service evaluates the precondition atomically with the
//!   write, so of any number of racing creates (in any number of processes) one gets 201;
//! - **a retried write knows itself**: the SDK retries a try that timed out or lost its
//!   connection, and the first try may have landed. Every write carries a random `writeid`
//!   (blob metadata); a retry that hits 409/412 and finds its own `writeid` in the blob reports
//!   success, not `Exists`/`Conflict`, so a lost answer cannot turn the winner into a loser (which
//!   would, for example, swallow an order's `OrderAccepted`). A retried *delete* that finds the
//!   blob already gone reports `Conflict(None)`: callers treat that as "gone" either way;
//! - every failure (throttling, timeouts, the account unreachable, refused authorization) is a
//!   [`StoreError`], which the functions answer with 503 so Event Grid retries.
//!
//! Containers are created at open if missing (the Bicep creates them in Azure).

use std::collections::HashMap;

use async_trait::async_trait;
use azure_core::http::{Etag, RequestContent};
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobContainerClientListBlobsOptions, BlockBlobClientUploadOptions,
};
use azure_storage_blob::{BlobClient, BlobContainerClient};
use bytes::Bytes;
use futures_util::TryStreamExt as _;

use super::{
    Collection, Created, Deleted, ETag, Record, RecordKey, RecordStore, Replaced, StoreError,
};
use crate::blob::{self, BlobAccount, BlobConnection, BlobTiming, Failure};

/// The metadata entry that names the write that produced a blob.
const WRITE_ID: &str = "writeid";
/// How often a create re-evaluates when the blob it found vanished before it could be read.
const CREATE_ROUNDS: usize = 4;

pub struct BlobStore {
    account: BlobAccount,
    orders: BlobContainerClient,
    email_ledger: BlobContainerClient,
}

/// A blob as read: the record and the id of the write that produced it.
struct Stored {
    record: Record,
    write_id: Option<String>,
}

impl BlobStore {
    /// Connects and creates the containers that are missing. Fails if the account cannot be
    /// reached or refuses the sign-in, so a misconfiguration shows at start-up.
    pub async fn open(connection: &BlobConnection, timing: BlobTiming) -> Result<Self, StoreError> {
        let account = BlobAccount::new(connection, timing).map_err(StoreError::new)?;
        for collection in Collection::ALL {
            account
                .ensure_container(collection.name())
                .await
                .map_err(|e| {
                    StoreError::new(format!(
                        "failed to create the container {} in {}: {}",
                        collection.name(),
                        account.describe(),
                        blob::describe(&e)
                    ))
                })?;
        }
        Ok(Self {
            orders: account.container(Collection::Orders.name()),
            email_ledger: account.container(Collection::EmailLedger.name()),
            account,
        })
    }

    fn container(&self, collection: Collection) -> &BlobContainerClient {
        match collection {
            Collection::Orders => &self.orders,
            Collection::EmailLedger => &self.email_ledger,
        }
    }

    fn blob(&self, key: &RecordKey) -> BlobClient {
        self.container(key.collection()).blob_client(key.name())
    }

    fn error(&self, what: &str, key: &RecordKey, e: &azure_core::Error) -> StoreError {
        StoreError::new(format!(
            "failed to {what} {key} in {}: {}",
            self.account.describe(),
            blob::describe(e)
        ))
    }

    /// `PUT` of `body` under the given precondition, tagged with `write_id`.
    async fn put(
        &self,
        key: &RecordKey,
        body: &Bytes,
        write_id: &str,
        precondition: Precondition<'_>,
    ) -> Result<Result<ETag, Failure>, StoreError> {
        let mut options = BlockBlobClientUploadOptions {
            metadata: Some(HashMap::from([(WRITE_ID.to_owned(), write_id.to_owned())])),
            ..Default::default()
        };
        match precondition {
            Precondition::Absent => options.if_none_match = Some(Etag::from("*")),
            Precondition::Matches(etag) => options.if_match = Some(Etag::from(etag.as_str())),
        }
        match self
            .blob(key)
            .upload(RequestContent::from(body.to_vec()), Some(options))
            .await
        {
            Ok(result) => Ok(Ok(ETag::new(
                result.etag.map(String::from).unwrap_or_default(),
            ))),
            Err(e) => match Failure::of(&e) {
                failure @ (Failure::AlreadyExists
                | Failure::PreconditionFailed
                | Failure::BlobNotFound) => Ok(Err(failure)),
                _ => Err(self.error("write", key, &e)),
            },
        }
    }

    async fn read(&self, key: &RecordKey) -> Result<Option<Stored>, StoreError> {
        let downloaded = match self.blob(key).download(None).await {
            Ok(downloaded) => downloaded,
            Err(e) if Failure::of(&e) == Failure::BlobNotFound => return Ok(None),
            Err(e) => return Err(self.error("read", key, &e)),
        };
        let etag = downloaded
            .properties
            .etag
            .map(String::from)
            .ok_or_else(|| StoreError::new(format!("the service sent {key} without an ETag")))?;
        let write_id = downloaded.properties.metadata.get(WRITE_ID).cloned();
        let body = downloaded
            .body
            .collect()
            .await
            .map_err(|e| self.error("read", key, &e))?;
        Ok(Some(Stored {
            record: Record {
                etag: ETag::new(etag),
                body,
            },
            write_id,
        }))
    }
}

enum Precondition<'a> {
    /// `If-None-Match: *`.
    Absent,
    /// `If-Match: <etag>`.
    Matches(&'a ETag),
}

fn new_write_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[async_trait]
impl RecordStore for BlobStore {
    async fn create(&self, key: &RecordKey, body: Bytes) -> Result<Created, StoreError> {
        let write_id = new_write_id();
        for _ in 0..CREATE_ROUNDS {
            match self
                .put(key, &body, &write_id, Precondition::Absent)
                .await?
            {
                Ok(etag) => return Ok(Created::Created(etag)),
                Err(_) => match self.read(key).await? {
                    Some(stored) if stored.write_id.as_deref() == Some(write_id.as_str()) => {
                        // An earlier try of this very create landed; its answer was lost.
                        return Ok(Created::Created(stored.record.etag));
                    }
                    Some(stored) => return Ok(Created::Exists(stored.record)),
                    // Deleted between our PUT and the read: try again.
                    None => continue,
                },
            }
        }
        Err(StoreError::new(format!(
            "{key} kept being created and deleted under this create; retry later"
        )))
    }

    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError> {
        Ok(self.read(key).await?.map(|stored| stored.record))
    }

    async fn replace(
        &self,
        key: &RecordKey,
        body: Bytes,
        if_match: &ETag,
    ) -> Result<Replaced, StoreError> {
        let write_id = new_write_id();
        match self
            .put(key, &body, &write_id, Precondition::Matches(if_match))
            .await?
        {
            Ok(etag) => Ok(Replaced::Replaced(etag)),
            Err(_) => match self.read(key).await? {
                Some(stored) if stored.write_id.as_deref() == Some(write_id.as_str()) => {
                    Ok(Replaced::Replaced(stored.record.etag))
                }
                current => Ok(Replaced::Conflict(current.map(|s| s.record))),
            },
        }
    }

    async fn delete(&self, key: &RecordKey, if_match: &ETag) -> Result<Deleted, StoreError> {
        let options = BlobClientDeleteOptions {
            if_match: Some(Etag::from(if_match.as_str())),
            ..Default::default()
        };
        match self.blob(key).delete(Some(options)).await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e) => match Failure::of(&e) {
                Failure::PreconditionFailed | Failure::BlobNotFound => Ok(Deleted::Conflict(
                    self.read(key).await?.map(|stored| stored.record),
                )),
                _ => Err(self.error("delete", key, &e)),
            },
        }
    }

    async fn list(&self, collection: Collection, prefix: &str) -> Result<Vec<String>, StoreError> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
            ..Default::default()
        };
        let failed = |e: azure_core::Error| {
            StoreError::new(format!(
                "failed to list {} in {}: {}",
                collection.name(),
                self.account.describe(),
                blob::describe(&e)
            ))
        };
        let mut pager = self
            .container(collection)
            .list_blobs(Some(options))
            .map_err(failed)?;
        let mut names = Vec::new();
        while let Some(item) = pager.try_next().await.map_err(failed)? {
            if let Some(name) = item.name {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn describe(&self) -> String {
        format!("blob {}", self.account.describe())
    }
}
