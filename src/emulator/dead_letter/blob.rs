//! Dead letters in Blob Storage, as Event Grid writes them: a block blob
//! `<SUB>/<yyyy>/<M>/<d>/<H>/<guid>.json` in the subscription's dead-letter container, holding a
//! JSON array of the annotated events (`application/json`), the same bytes [`super::FolderSink`]
//! writes to a file.
//!
//! Invariants: `write` returns only once the service committed the blob (201); each write has a
//! fresh GUID name, so no dead letter is ever overwritten, and a try the SDK repeats (after a
//! timeout or a lost answer) rewrites its own blob with the same bytes; only the containers
//! the subscriptions file names are created, listed, read or deleted (the account may hold the
//! handler's `orders` and `email-ledger` too). Containers are created at start-up if missing,
//! and again if one is deleted while the emulator runs.

use std::collections::BTreeSet;

use async_trait::async_trait;
use azure_core::http::RequestContent;
use azure_storage_blob::models::{
    BlobContainerClientListBlobsOptions, BlockBlobClientUploadOptions,
};
use futures_util::TryStreamExt as _;
use time::OffsetDateTime;

use super::{DeadLetterBlob, DeadLetterSink, SinkError, blob_name};
use crate::blob::{self, BlobAccount, BlobConnection, BlobTiming, Failure};

pub struct BlobSink {
    account: BlobAccount,
    containers: BTreeSet<String>,
}

impl BlobSink {
    /// Connects and creates the dead-letter `containers` that are missing.
    pub async fn connect(
        connection: &BlobConnection,
        containers: impl IntoIterator<Item = String>,
    ) -> Result<Self, SinkError> {
        let account =
            BlobAccount::new(connection, BlobTiming::default()).map_err(SinkError::Invalid)?;
        let containers: BTreeSet<String> = containers.into_iter().collect();
        for container in &containers {
            account.ensure_container(container).await.map_err(|e| {
                SinkError::Transient(format!(
                    "failed to create the dead-letter container {container} in {}: {}",
                    account.describe(),
                    blob::describe(&e)
                ))
            })?;
        }
        Ok(Self {
            account,
            containers,
        })
    }

    fn known(&self, container: &str) -> Result<(), SinkError> {
        if self.containers.contains(container) {
            Ok(())
        } else {
            Err(SinkError::Invalid(format!(
                "{container} is not a dead-letter container of the subscriptions file"
            )))
        }
    }

    /// A missing blob is [`SinkError::NotFound`]; anything else may pass.
    fn failed(&self, what: &str, container: &str, name: &str, e: &azure_core::Error) -> SinkError {
        let message = format!(
            "failed to {what} {container}/{name} in {}: {}",
            self.account.describe(),
            blob::describe(e)
        );
        match Failure::of(e) {
            Failure::BlobNotFound => SinkError::NotFound(message),
            _ => SinkError::Transient(message),
        }
    }
}

#[async_trait]
impl DeadLetterSink for BlobSink {
    async fn write(
        &self,
        container: &str,
        subscription_upper: &str,
        events: &[bytes::Bytes],
        at: OffsetDateTime,
    ) -> Result<String, SinkError> {
        self.known(container)?;
        let name = blob_name(subscription_upper, at, uuid::Uuid::new_v4());
        let bytes = super::blob_bytes(events);
        let client = self.account.container(container).blob_client(&name);
        let upload = || {
            let options = BlockBlobClientUploadOptions {
                blob_content_type: Some("application/json".into()),
                ..Default::default()
            };
            client.upload(RequestContent::from(bytes.clone()), Some(options))
        };
        match upload().await {
            Ok(_) => Ok(name),
            Err(e) if Failure::of(&e) == Failure::ContainerNotFound => {
                self.account
                    .ensure_container(container)
                    .await
                    .map_err(|e| self.failed("create the container of", container, &name, &e))?;
                upload()
                    .await
                    .map(|_| name.clone())
                    .map_err(|e| self.failed("write", container, &name, &e))
            }
            Err(e) => Err(self.failed("write", container, &name, &e)),
        }
    }

    async fn list(&self) -> Result<Vec<DeadLetterBlob>, SinkError> {
        let mut blobs = Vec::new();
        for container in &self.containers {
            let failed = |e: azure_core::Error| {
                SinkError::Transient(format!(
                    "failed to list {container} in {}: {}",
                    self.account.describe(),
                    blob::describe(&e)
                ))
            };
            let mut pager = self
                .account
                .container(container)
                .list_blobs(Some(BlobContainerClientListBlobsOptions::default()))
                .map_err(failed)?;
            while let Some(item) = pager.try_next().await.map_err(failed)? {
                let Some(name) = item.name else { continue };
                let Some((subscription, _)) = name.split_once('/') else {
                    continue;
                };
                if !name.ends_with(".json") {
                    continue;
                }
                let written_at = item
                    .properties
                    .and_then(|p| p.last_modified)
                    .and_then(super::rfc3339);
                blobs.push(DeadLetterBlob {
                    container: container.clone(),
                    subscription: subscription.to_owned(),
                    name,
                    written_at,
                });
            }
        }
        blobs.sort_by(|a, b| (&a.container, &a.name).cmp(&(&b.container, &b.name)));
        Ok(blobs)
    }

    async fn read(&self, container: &str, name: &str) -> Result<bytes::Bytes, SinkError> {
        self.known(container)?;
        let downloaded = self
            .account
            .container(container)
            .blob_client(name)
            .download(None)
            .await
            .map_err(|e| self.failed("read", container, name, &e))?;
        downloaded
            .body
            .collect()
            .await
            .map_err(|e| self.failed("read", container, name, &e))
    }

    async fn delete(&self, container: &str, name: &str) -> Result<(), SinkError> {
        self.known(container)?;
        self.account
            .container(container)
            .blob_client(name)
            .delete(None)
            .await
            .map(|_| ())
            .map_err(|e| self.failed("delete", container, name, &e))
    }

    fn describe(&self) -> String {
        format!("blob containers of {}", self.account.describe())
    }
}
