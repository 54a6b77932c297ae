//! Which store the handler (and `ordergrid orders`) uses, from the environment.
//!
//! The blob store's connection follows the Functions convention for connections: a connection
//! string in `ORDERGRID_STORAGE`, or identity-based `ORDERGRID_STORAGE__blobServiceUri` (+
//! `__credential`, `__clientId`), which [`BlobConnection::from_env`] reads.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::{BlobStore, FolderStore, FolderStoreOptions, RecordStore};
use crate::blob::{BlobConnection, BlobTiming};
use crate::settings::{Reader, Setting, SettingsError, parse_duration};

pub const STORE: Setting = Setting::new(
    "ORDERGRID_STORE",
    "folder",
    "where orders and the email ledger live: `folder`, or `blob` (Blob Storage, Azurite or Azure)",
);
pub const STORE_PATH: Setting = Setting::new(
    "ORDERGRID_STORE_PATH",
    ".ordergrid/store",
    "folder of the folder store",
);
/// The connection's name; its identity-based parts are named after it.
pub const STORAGE: Setting = Setting::secret(
    "ORDERGRID_STORAGE",
    "",
    "blob store: a connection string, `UseDevelopmentStorage=true` (Azurite) or `DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…[;BlobEndpoint=…]`",
);
pub const STORAGE_SERVICE_URI: Setting = Setting::new(
    "ORDERGRID_STORAGE__blobServiceUri",
    "",
    "blob store, identity-based instead (Azure): `https://<account>.blob.core.windows.net`",
);
pub const STORAGE_CREDENTIAL: Setting = Setting::new(
    "ORDERGRID_STORAGE__credential",
    "",
    "`managedidentity` to insist on the managed identity",
);
pub const STORAGE_CLIENT_ID: Setting = Setting::new(
    "ORDERGRID_STORAGE__clientId",
    "",
    "the client id of a user-assigned managed identity",
);
pub const STORE_TIMEOUT: Setting = Setting::new(
    "ORDERGRID_STORE_TIMEOUT",
    "10s",
    "blob store: how long one request may take before it is retried",
);

/// The store's settings, in the order the README lists them.
pub const SETTINGS: &[Setting] = &[
    STORE,
    STORE_PATH,
    STORAGE,
    STORAGE_SERVICE_URI,
    STORAGE_CREDENTIAL,
    STORAGE_CLIENT_ID,
    STORE_TIMEOUT,
];

/// Where records live.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    Folder {
        path: PathBuf,
    },
    /// Blob containers `orders` and `email-ledger` of a Storage account.
    Blob {
        connection: BlobConnection,
        timing: BlobTiming,
    },
}

impl StoreSettings {
    /// Only the store's settings (for `ordergrid orders`, which reads what the handler wrote).
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut r = Reader::new(env);
        let store = Self::read(&mut r);
        r.finish(store)
    }

    /// Reads the store's settings, recording problems in `r`.
    pub fn read(r: &mut Reader<'_>) -> Self {
        let try_timeout = r
            .parse(
                &STORE_TIMEOUT,
                "not a duration above zero (examples: 500ms, 10s)",
                |s| parse_duration(s).filter(|d| !d.is_zero()),
            )
            .unwrap_or_default();
        let unusable = Self::Folder {
            path: PathBuf::new(),
        };
        match r.string(&STORE).as_str() {
            "folder" => Self::Folder {
                path: r.string(&STORE_PATH).into(),
            },
            "blob" => match BlobConnection::from_env(r.env(), STORAGE.name) {
                Ok(Some(connection)) => Self::Blob {
                    connection,
                    timing: BlobTiming {
                        try_timeout,
                        ..BlobTiming::default()
                    },
                },
                Ok(None) => {
                    r.error(format!(
                        "{}=blob needs {} (a connection string; UseDevelopmentStorage=true for \
                         Azurite) or {} (identity-based, as in Azure)",
                        STORE.name, STORAGE.name, STORAGE_SERVICE_URI.name
                    ));
                    unusable
                }
                Err(errors) => {
                    r.errors(errors);
                    unusable
                }
            },
            other => {
                r.problem(&STORE, other, "must be folder or blob");
                unusable
            }
        }
    }

    /// Opens the store. A blob store is reached (its containers created if missing) before
    /// this returns, so a wrong connection fails start-up rather than the first invocation.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn RecordStore>> {
        Ok(match self {
            Self::Folder { path } => Arc::new(
                FolderStore::open(path, FolderStoreOptions::default())
                    .with_context(|| format!("failed to open the store in {}", path.display()))?,
            ),
            Self::Blob { connection, timing } => Arc::new(
                BlobStore::open(connection, *timing)
                    .await
                    .context("failed to open the blob store")?,
            ),
        })
    }

    /// For start-up output: the folder, or the account.
    pub fn describe(&self) -> String {
        match self {
            Self::Folder { path } => format!("folder {}", path.display()),
            Self::Blob { connection, .. } => format!("blob {}", connection.describe()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::env_of as env;
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_blob_store_reads_the_functions_style_connection_settings() {
        let blob = ("ORDERGRID_STORE", "blob");
        let err = StoreSettings::from_env(&env(&[blob]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ORDERGRID_STORE=blob needs ORDERGRID_STORAGE"),
            "{err}"
        );
        let s = StoreSettings::from_env(&env(&[
            blob,
            ("ORDERGRID_STORAGE", "UseDevelopmentStorage=true"),
            ("ORDERGRID_STORE_TIMEOUT", "2s"),
        ]))
        .unwrap();
        let StoreSettings::Blob { connection, timing } = s else {
            panic!("a blob store")
        };
        assert_eq!(
            connection.service_url().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(timing.try_timeout, Duration::from_secs(2));
        // What the Bicep sets in Azure, where the platform provides IDENTITY_ENDPOINT.
        let s = StoreSettings::from_env(&env(&[
            blob,
            (
                "ORDERGRID_STORAGE__blobServiceUri",
                "https://acct.blob.core.windows.net",
            ),
            ("IDENTITY_ENDPOINT", "http://localhost:8081/msi/token"),
        ]))
        .unwrap();
        let StoreSettings::Blob { connection, .. } = s else {
            panic!("a blob store")
        };
        assert!(matches!(
            connection.auth(),
            crate::blob::BlobAuth::ManagedIdentity { client_id: None }
        ));
        let err = StoreSettings::from_env(&env(&[
            blob,
            ("ORDERGRID_STORAGE", "AccountName=a;AccountKey=hunter2!"),
            ("ORDERGRID_STORE_TIMEOUT", "0s"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ORDERGRID_STORAGE: AccountKey is not base64"),
            "{err}"
        );
        assert!(err.contains("ORDERGRID_STORE_TIMEOUT=\"0s\""), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = StoreSettings::from_env(&env(&[("ORDERGRID_STORE", "cosmos")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be folder or blob"), "{err}");
    }

    #[test]
    fn the_default_store_timeout_is_the_blob_clients() {
        let Ok(StoreSettings::Folder { path }) = StoreSettings::from_env(&env(&[])) else {
            panic!("the folder store by default")
        };
        assert_eq!(path, PathBuf::from(".ordergrid/store"));
        assert_eq!(
            parse_duration(STORE_TIMEOUT.default),
            Some(BlobTiming::default().try_timeout)
        );
    }
}
