//! One test suite for every store implementation: the invariants of `ordergrid::store`.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use ordergrid::blob::BlobTiming;
use ordergrid::store::{
    BlobStore, Collection, Created, Deleted, FolderStore, FolderStoreOptions, MemoryStore,
    RecordKey, RecordStore, Replaced,
};
use ordergrid_testing::azurite::Azurite;

use crate::helpers::blob_connection;

fn key(name: &str) -> RecordKey {
    RecordKey::new(Collection::Orders, name).unwrap()
}

async fn create_is_conditional(store: Arc<dyn RecordStore>) {
    let Created::Created(etag) = store
        .create(&key("a"), Bytes::from_static(b"first"))
        .await
        .unwrap()
    else {
        panic!("a fresh key is created")
    };
    match store
        .create(&key("a"), Bytes::from_static(b"second"))
        .await
        .unwrap()
    {
        Created::Exists(record) => {
            assert_eq!(record.body, "first");
            assert_eq!(record.etag, etag);
        }
        other => panic!("expected Exists, got {other:?}"),
    }
    assert_eq!(store.get(&key("a")).await.unwrap().unwrap().body, "first");
    assert_eq!(store.get(&key("missing")).await.unwrap(), None);
}

async fn racing_creates_have_one_winner(store: Arc<dyn RecordStore>) {
    let results = join_all((0..50).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create(&key("race"), Bytes::from(format!("writer {i}")))
                .await
                .unwrap()
        })
    }))
    .await;
    let results: Vec<Created> = results.into_iter().map(Result::unwrap).collect();
    let winners: Vec<_> = results
        .iter()
        .filter(|r| matches!(r, Created::Created(_)))
        .collect();
    assert_eq!(winners.len(), 1);
    let stored = store.get(&key("race")).await.unwrap().unwrap();
    for result in &results {
        if let Created::Exists(record) = result {
            assert_eq!(record, &stored, "every loser sees the winner's record");
        }
    }
}

async fn replace_and_delete_need_the_current_etag(store: Arc<dyn RecordStore>) {
    let Created::Created(v1) = store
        .create(&key("r"), Bytes::from_static(b"v1"))
        .await
        .unwrap()
    else {
        panic!()
    };
    let Replaced::Replaced(v2) = store
        .replace(&key("r"), Bytes::from_static(b"v2"), &v1)
        .await
        .unwrap()
    else {
        panic!("the current etag replaces")
    };
    assert_ne!(v1, v2);
    match store
        .replace(&key("r"), Bytes::from_static(b"stale"), &v1)
        .await
        .unwrap()
    {
        Replaced::Conflict(Some(current)) => {
            assert_eq!((current.body.as_ref(), &current.etag), (&b"v2"[..], &v2))
        }
        other => panic!("a stale etag conflicts, got {other:?}"),
    }
    assert!(matches!(
        store.delete(&key("r"), &v1).await.unwrap(),
        Deleted::Conflict(Some(_))
    ));
    assert_eq!(
        store.delete(&key("r"), &v2).await.unwrap(),
        Deleted::Deleted
    );
    assert_eq!(store.get(&key("r")).await.unwrap(), None);
    assert_eq!(
        store.delete(&key("r"), &v2).await.unwrap(),
        Deleted::Conflict(None)
    );
    assert!(matches!(
        store.replace(&key("r"), Bytes::new(), &v2).await.unwrap(),
        Replaced::Conflict(None)
    ));
    // A deleted key can be created again.
    assert!(matches!(
        store
            .create(&key("r"), Bytes::from_static(b"v3"))
            .await
            .unwrap(),
        Created::Created(_)
    ));
}

async fn racing_replaces_have_one_winner(store: Arc<dyn RecordStore>) {
    let Created::Created(etag) = store
        .create(&key("rr"), Bytes::from_static(b"v0"))
        .await
        .unwrap()
    else {
        panic!()
    };
    let results = join_all((0..20).map(|i| {
        let (store, etag) = (store.clone(), etag.clone());
        tokio::spawn(async move {
            store
                .replace(&key("rr"), Bytes::from(format!("v{i}")), &etag)
                .await
                .unwrap()
        })
    }))
    .await;
    let winners = results
        .into_iter()
        .filter(|r| matches!(r, Ok(Replaced::Replaced(_))))
        .count();
    assert_eq!(winners, 1);
}

async fn list_filters_by_collection_and_prefix(store: Arc<dyn RecordStore>) {
    for name in ["b", "a", "rejected/x", "rejected/y"] {
        store
            .create(&key(name), Bytes::from_static(b"{}"))
            .await
            .unwrap();
    }
    let ledger = RecordKey::new(Collection::EmailLedger, "a").unwrap();
    store
        .create(&ledger, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(
        store.list(Collection::Orders, "").await.unwrap(),
        ["a", "b", "rejected/x", "rejected/y"]
    );
    assert_eq!(
        store.list(Collection::Orders, "rejected/").await.unwrap(),
        ["rejected/x", "rejected/y"]
    );
    assert_eq!(
        store.list(Collection::EmailLedger, "").await.unwrap(),
        ["a"]
    );
}

macro_rules! store_suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn create_is_conditional() {
                let (store, _guard) = $make;
                super::create_is_conditional(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_creates_have_one_winner() {
                let (store, _guard) = $make;
                super::racing_creates_have_one_winner(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn replace_and_delete_need_the_current_etag() {
                let (store, _guard) = $make;
                super::replace_and_delete_need_the_current_etag(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_replaces_have_one_winner() {
                let (store, _guard) = $make;
                super::racing_replaces_have_one_winner(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn list_filters_by_collection_and_prefix() {
                let (store, _guard) = $make;
                super::list_filters_by_collection_and_prefix(store).await;
            }
        }
    };
}

fn memory() -> (Arc<dyn RecordStore>, ()) {
    (Arc::new(MemoryStore::new()), ())
}

fn folder() -> (Arc<dyn RecordStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderStore::open(dir.path(), FolderStoreOptions::default()).unwrap();
    (Arc::new(store), dir)
}

/// The blob store on its own Azurite.
async fn blob() -> (Arc<dyn RecordStore>, Azurite) {
    let azurite = Azurite::start().await;
    let store = BlobStore::open(&blob_connection(&azurite), BlobTiming::default())
        .await
        .unwrap();
    (Arc::new(store), azurite)
}

store_suite!(memory_store, memory());
store_suite!(folder_store, folder());
store_suite!(blob_store, blob().await);

/// Everything acknowledged is there after a reopen, including replaces and deletes.
#[tokio::test]
async fn the_folder_store_recovers_its_state_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (etag_kept, etag_deleted);
    {
        let store = FolderStore::open(dir.path(), FolderStoreOptions::default()).unwrap();
        let Created::Created(e) = store
            .create(&key("kept"), Bytes::from_static(b"v1"))
            .await
            .unwrap()
        else {
            panic!()
        };
        let Replaced::Replaced(e) = store
            .replace(&key("kept"), Bytes::from_static(b"v2"), &e)
            .await
            .unwrap()
        else {
            panic!()
        };
        etag_kept = e;
        let Created::Created(e) = store
            .create(&key("gone"), Bytes::from_static(b"x"))
            .await
            .unwrap()
        else {
            panic!()
        };
        etag_deleted = e;
        store.delete(&key("gone"), &etag_deleted).await.unwrap();
    }
    let store = FolderStore::open(dir.path(), FolderStoreOptions::default()).unwrap();
    let kept = store.get(&key("kept")).await.unwrap().unwrap();
    assert_eq!((kept.body.as_ref(), &kept.etag), (&b"v2"[..], &etag_kept));
    assert_eq!(store.get(&key("gone")).await.unwrap(), None);
    // New versions never reuse an old etag.
    let Replaced::Replaced(next) = store
        .replace(&key("kept"), Bytes::from_static(b"v3"), &etag_kept)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(next != etag_kept && next != etag_deleted);
}

/// Concurrent writers share flushes: far fewer flushes than writes under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FolderStore::open(dir.path(), FolderStoreOptions::default()).unwrap());
    join_all((0..500).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create(&key(&format!("k{i}")), Bytes::from_static(b"{}"))
                .await
                .unwrap()
        })
    }))
    .await;
    let (flushes, frames) = store.flush_stats();
    assert_eq!(frames, 500);
    assert!(
        flushes < frames,
        "{flushes} flushes for {frames} writes: no flush was shared"
    );
}
