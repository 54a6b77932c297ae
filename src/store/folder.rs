//! The local-filesystem store: records as frames in a [`Journal`], indexed in memory.
//!
//! Each write appends one journal frame:
//!
//! ```text
//! op u8 (1 put, 2 delete) | version u64 | key_len u16 | key ("orders/12345") | body
//! ```
//! The index (key → latest version and where it is) is rebuilt from the journal at open.
//!
//! Invariants (on top of the journal's: durable before acknowledged, torn tails cut off):
//! - **one winner per key**: a key with a write in flight is *pending*; other writers of that key
//!   wait for the outcome and then re-evaluate their precondition, so racing `create`s yield
//!   exactly one `Created`;
//! - **cancellation-safe**: the index is updated by the journal's completion on the writer
//!   thread, not by the caller, so a caller that stops waiting (client gone) cannot leave a key
//!   pending forever or the index out of step with the disk;
//! - reads never block on writes: they see the last committed version.
//!
//! Superseded frames are not compacted away; a record is small and the local store is not the
//! production store (Blob Storage is).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{oneshot, watch};

use super::{
    Collection, Created, Deleted, ETag, Record, RecordKey, RecordStore, Replaced, StoreError,
};
use crate::journal::{Journal, JournalOptions, Position};

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const HEADER_LEN: usize = 1 + 8 + 2;

/// Options of the folder store (those of its journal).
pub type FolderStoreOptions = JournalOptions;

/// Where a committed record is.
#[derive(Debug, Clone, Copy)]
struct Loc {
    version: u64,
    at: Position,
}

impl Loc {
    fn etag(&self) -> ETag {
        ETag::new(self.version.to_string())
    }
}

#[derive(Default)]
struct Slot {
    committed: Option<Loc>,
    /// Set while a write of this key is in flight; the sender is dropped when it completes.
    pending: Option<watch::Receiver<()>>,
}

/// The index, split into shards by key hash: a shard's lock is held only for a lookup, and when
/// a shard's map grows (rehashing all its entries) only that shard's keys wait, for a sixteenth
/// of the time one map would take.
struct Index {
    shards: Vec<Mutex<HashMap<RecordKey, Slot>>>,
}

const SHARDS: usize = 16;

impl Index {
    fn new(entries: impl IntoIterator<Item = (RecordKey, Slot)>) -> Self {
        let index = Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        };
        for (key, slot) in entries {
            index.shard(&key).insert(key, slot);
        }
        index
    }

    /// The locked shard that holds `key`.
    fn shard(&self, key: &RecordKey) -> MutexGuard<'_, HashMap<RecordKey, Slot>> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key) as usize;
        self.shards[hash % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Committed keys matching `keep`, one shard locked at a time.
    fn committed_keys(&self, keep: impl Fn(&RecordKey) -> bool) -> Vec<RecordKey> {
        self.shards
            .iter()
            .flat_map(|shard| {
                let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
                shard
                    .iter()
                    .filter(|(k, slot)| slot.committed.is_some() && keep(k))
                    .map(|(k, _)| k.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// What a writer found when it looked at a key.
enum Claim {
    /// Another write of the key is in flight: wait for it, then look again.
    Wait(watch::Receiver<()>),
    /// The key is now pending for us.
    Mine(watch::Sender<()>),
    /// The precondition failed against this committed state.
    Refused(Option<Loc>),
}

enum Op {
    Put(Bytes),
    Delete,
}

pub struct FolderStore {
    journal: Journal,
    index: Arc<Index>,
    next_version: AtomicU64,
}

impl FolderStore {
    /// Opens (creating if needed) the store in `dir`, rebuilding the index from the journal.
    pub fn open(dir: &Path, options: FolderStoreOptions) -> Result<Self, StoreError> {
        let journal = Journal::open(dir, options).map_err(|e| StoreError::new(e.to_string()))?;
        let mut index = HashMap::new();
        let mut max_version = 0;
        for (at, payload) in journal
            .scan_all()
            .map_err(|e| StoreError::new(e.to_string()))?
        {
            let (op, version, key, _) = decode(&payload).ok_or_else(|| {
                StoreError::new(format!(
                    "{} holds an unreadable record at {at}",
                    dir.display()
                ))
            })?;
            max_version = max_version.max(version);
            match op {
                OP_PUT => {
                    index.insert(
                        key,
                        Slot {
                            committed: Some(Loc { version, at }),
                            pending: None,
                        },
                    );
                }
                _ => {
                    index.remove(&key);
                }
            }
        }
        Ok(Self {
            journal,
            index: Arc::new(Index::new(index)),
            next_version: AtomicU64::new(max_version + 1),
        })
    }

    /// The records in `dir` as they are now, without taking the folder's lock: for inspecting a
    /// store a running handler owns. Only reads; every write answers an error.
    pub fn snapshot(dir: &Path) -> Result<FolderSnapshot, StoreError> {
        let mut records = std::collections::BTreeMap::new();
        for (at, payload) in
            crate::journal::read_all_frames(dir).map_err(|e| StoreError::new(e.to_string()))?
        {
            let (op, version, key, body) = decode(&payload).ok_or_else(|| {
                StoreError::new(format!(
                    "{} holds an unreadable record at {at}",
                    dir.display()
                ))
            })?;
            if op == OP_PUT {
                let body = payload.slice_ref(body);
                records.insert(
                    key,
                    Record {
                        etag: ETag::new(version.to_string()),
                        body,
                    },
                );
            } else {
                records.remove(&key);
            }
        }
        Ok(FolderSnapshot {
            dir: dir.to_owned(),
            records,
        })
    }

    /// Group-commit statistics: `(flushes, frames written)` since open.
    pub fn flush_stats(&self) -> (u64, u64) {
        self.journal.flush_stats()
    }

    fn read(&self, key: &RecordKey, loc: Loc) -> Result<Record, StoreError> {
        let payload = self
            .journal
            .read(loc.at)
            .map_err(|e| StoreError::new(format!("failed to read {key}: {e}")))?;
        let (_, _, _, body) = decode(&payload)
            .ok_or_else(|| StoreError::new(format!("the record of {key} is unreadable")))?;
        Ok(Record {
            etag: loc.etag(),
            body: payload.slice_ref(body),
        })
    }

    /// Claims `key` for a write whose precondition is `allowed(current committed state)`.
    fn claim(&self, key: &RecordKey, allowed: impl Fn(Option<&Loc>) -> bool) -> Claim {
        let mut index = self.index.shard(key);
        let slot = index.entry(key.clone()).or_default();
        if let Some(pending) = &slot.pending {
            return Claim::Wait(pending.clone());
        }
        if !allowed(slot.committed.as_ref()) {
            let committed = slot.committed;
            if committed.is_none() {
                index.remove(key);
            }
            return Claim::Refused(committed);
        }
        let (tx, rx) = watch::channel(());
        slot.pending = Some(rx);
        Claim::Mine(tx)
    }

    /// Appends the write for a claimed key; resolves once durable. The index is updated by the
    /// completion on the writer thread.
    async fn submit(
        &self,
        key: &RecordKey,
        op: Op,
        done: watch::Sender<()>,
    ) -> Result<Option<Loc>, StoreError> {
        let version = self.next_version.fetch_add(1, Ordering::Relaxed);
        let (opcode, body) = match &op {
            Op::Put(body) => (OP_PUT, body.clone()),
            Op::Delete => (OP_DELETE, Bytes::new()),
        };
        let payload = encode(opcode, version, key, &body);
        let (reply, answer) = oneshot::channel();
        let index = self.index.clone();
        let owned_key = key.clone();
        self.journal.append_with(
            vec![payload],
            Box::new(move |result| {
                let outcome = match result {
                    Ok(positions) => {
                        let loc = (opcode == OP_PUT).then(|| Loc {
                            version,
                            at: positions[0],
                        });
                        release(&index, &owned_key, Some(loc));
                        Ok(loc)
                    }
                    Err(e) => {
                        release(&index, &owned_key, None);
                        Err(StoreError::new(format!("failed to write {owned_key}: {e}")))
                    }
                };
                // Wakes the writers waiting on this key, now that the index is updated.
                drop(done);
                let _ = reply.send(outcome);
            }),
        );
        answer
            .await
            .map_err(|_| StoreError::new("the store writer stopped before answering"))?
    }

    /// Writes `op` once `allowed(committed state)` holds, waiting out other writers of the key.
    /// `Ok(Err(current))` means the precondition failed against `current`.
    async fn write_if(
        &self,
        key: &RecordKey,
        allowed: impl Fn(Option<&Loc>) -> bool,
        op: impl Fn() -> Op,
    ) -> Result<Result<Option<Loc>, Option<Record>>, StoreError> {
        loop {
            match self.claim(key, &allowed) {
                Claim::Wait(mut pending) => {
                    // Err means the writer finished (sender dropped): look again.
                    let _ = pending.changed().await;
                }
                Claim::Refused(loc) => {
                    let current = loc.map(|loc| self.read(key, loc)).transpose()?;
                    return Ok(Err(current));
                }
                Claim::Mine(done) => return Ok(Ok(self.submit(key, op(), done).await?)),
            }
        }
    }
}

/// Ends a key's pending state; `Some(new)` means the write committed with that location.
fn release(index: &Index, key: &RecordKey, committed: Option<Option<Loc>>) {
    let mut index = index.shard(key);
    if let Some(slot) = index.get_mut(key) {
        slot.pending = None;
        if let Some(new) = committed {
            slot.committed = new;
        }
        if slot.committed.is_none() {
            index.remove(key);
        }
    }
}

fn encode(op: u8, version: u64, key: &RecordKey, body: &[u8]) -> Bytes {
    let key = key.to_string();
    let mut buf = BytesMut::with_capacity(HEADER_LEN + key.len() + body.len());
    buf.put_u8(op);
    buf.put_u64_le(version);
    buf.put_u16_le(key.len() as u16);
    buf.put_slice(key.as_bytes());
    buf.put_slice(body);
    buf.freeze()
}

fn decode(payload: &[u8]) -> Option<(u8, u64, RecordKey, &[u8])> {
    let op = *payload.first()?;
    let version = u64::from_le_bytes(payload.get(1..9)?.try_into().ok()?);
    let key_len = u16::from_le_bytes(payload.get(9..11)?.try_into().ok()?) as usize;
    let key = std::str::from_utf8(payload.get(HEADER_LEN..HEADER_LEN + key_len)?).ok()?;
    let (collection, name) = key.split_once('/')?;
    let key = RecordKey::new(Collection::from_name(collection)?, name).ok()?;
    matches!(op, OP_PUT | OP_DELETE).then_some((op, version, key, &payload[HEADER_LEN + key_len..]))
}

/// A read-only copy of a folder store's records (see [`FolderStore::snapshot`]).
pub struct FolderSnapshot {
    dir: std::path::PathBuf,
    records: std::collections::BTreeMap<RecordKey, Record>,
}

impl FolderSnapshot {
    fn read_only(&self) -> StoreError {
        StoreError::new(format!(
            "the snapshot of {} is read-only",
            self.dir.display()
        ))
    }
}

#[async_trait]
impl RecordStore for FolderSnapshot {
    async fn create(&self, _: &RecordKey, _: Bytes) -> Result<Created, StoreError> {
        Err(self.read_only())
    }

    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError> {
        Ok(self.records.get(key).cloned())
    }

    async fn replace(&self, _: &RecordKey, _: Bytes, _: &ETag) -> Result<Replaced, StoreError> {
        Err(self.read_only())
    }

    async fn delete(&self, _: &RecordKey, _: &ETag) -> Result<Deleted, StoreError> {
        Err(self.read_only())
    }

    async fn list(&self, collection: Collection, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .records
            .keys()
            .filter(|k| k.collection() == collection && k.name().starts_with(prefix))
            .map(|k| k.name().to_owned())
            .collect())
    }

    fn describe(&self) -> String {
        format!("snapshot of {}", self.dir.display())
    }
}

/// A put always yields a location; the fallback only keeps the type total.
fn etag_of(loc: Option<Loc>) -> ETag {
    loc.map_or_else(|| ETag::new("0"), |l| l.etag())
}

#[async_trait]
impl RecordStore for FolderStore {
    async fn create(&self, key: &RecordKey, body: Bytes) -> Result<Created, StoreError> {
        let written = self
            .write_if(key, |current| current.is_none(), || Op::Put(body.clone()))
            .await?;
        Ok(match written {
            Ok(loc) => Created::Created(etag_of(loc)),
            Err(Some(existing)) => Created::Exists(existing),
            Err(None) => {
                return Err(StoreError::new(format!(
                    "create of {key} was refused with no record present"
                )));
            }
        })
    }

    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError> {
        let loc = self
            .index
            .shard(key)
            .get(key)
            .and_then(|slot| slot.committed);
        loc.map(|loc| self.read(key, loc)).transpose()
    }

    async fn replace(
        &self,
        key: &RecordKey,
        body: Bytes,
        if_match: &ETag,
    ) -> Result<Replaced, StoreError> {
        let matches = |current: Option<&Loc>| current.is_some_and(|l| &l.etag() == if_match);
        Ok(
            match self
                .write_if(key, matches, || Op::Put(body.clone()))
                .await?
            {
                Ok(loc) => Replaced::Replaced(etag_of(loc)),
                Err(current) => Replaced::Conflict(current),
            },
        )
    }

    async fn delete(&self, key: &RecordKey, if_match: &ETag) -> Result<Deleted, StoreError> {
        let matches = |current: Option<&Loc>| current.is_some_and(|l| &l.etag() == if_match);
        Ok(match self.write_if(key, matches, || Op::Delete).await? {
            Ok(_) => Deleted::Deleted,
            Err(current) => Deleted::Conflict(current),
        })
    }

    async fn list(&self, collection: Collection, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .index
            .committed_keys(|k| k.collection() == collection && k.name().starts_with(prefix))
            .into_iter()
            .map(|k| k.name().to_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn describe(&self) -> String {
        format!("folder {}", self.journal.dir().display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> RecordKey {
        RecordKey::new(Collection::Orders, name).unwrap()
    }

    #[test]
    fn records_round_trip_through_their_encoding() {
        let payload = encode(OP_PUT, 7, &key("1"), b"{\"a\":1}");
        let (op, version, k, body) = decode(&payload).unwrap();
        assert_eq!(
            (op, version, k, body),
            (OP_PUT, 7, key("1"), &b"{\"a\":1}"[..])
        );
        assert!(decode(&payload[..5]).is_none());
    }

    #[tokio::test]
    async fn an_interrupted_write_is_discarded_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = FolderStore::open(dir.path(), FolderStoreOptions::default()).unwrap();
            store
                .create(&key("1"), Bytes::from_static(b"one"))
                .await
                .unwrap();
            store
                .create(&key("2"), Bytes::from_static(b"two"))
                .await
                .unwrap();
        }
        let seg = dir.path().join("seg-00000001.log");
        let len = std::fs::metadata(&seg).unwrap().len();
        // Simulate a crash in the middle of writing the second record.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 2)
            .unwrap();
        let store = FolderStore::open(dir.path(), FolderStoreOptions::default()).unwrap();
        assert_eq!(store.get(&key("1")).await.unwrap().unwrap().body, "one");
        assert_eq!(store.get(&key("2")).await.unwrap(), None);
        store
            .create(&key("3"), Bytes::from_static(b"three"))
            .await
            .unwrap();
        drop(store);
        let store = FolderStore::open(dir.path(), FolderStoreOptions::default()).unwrap();
        assert_eq!(store.get(&key("3")).await.unwrap().unwrap().body, "three");
    }

    #[tokio::test]
    async fn a_snapshot_reads_a_store_another_owner_holds_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::open(dir.path(), FolderStoreOptions::default()).unwrap();
        let Created::Created(etag) = store
            .create(&key("1"), Bytes::from_static(b"v1"))
            .await
            .unwrap()
        else {
            panic!()
        };
        store
            .replace(&key("1"), Bytes::from_static(b"v2"), &etag)
            .await
            .unwrap();
        store
            .create(&key("2"), Bytes::from_static(b"x"))
            .await
            .unwrap();
        let snapshot = FolderStore::snapshot(dir.path()).unwrap();
        assert_eq!(snapshot.get(&key("1")).await.unwrap().unwrap().body, "v2");
        assert_eq!(
            snapshot.list(Collection::Orders, "").await.unwrap(),
            ["1", "2"]
        );
        assert!(snapshot.create(&key("3"), Bytes::new()).await.is_err());
    }

    #[tokio::test]
    async fn a_second_process_cannot_open_the_same_folder() {
        let dir = tempfile::tempdir().unwrap();
        let _first = FolderStore::open(dir.path(), FolderStoreOptions::default()).unwrap();
        let err = FolderStore::open(dir.path(), FolderStoreOptions::default())
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("in use by another ordergrid process"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn records_in_older_segments_stay_readable_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let tiny = FolderStoreOptions {
            segment_bytes: 64,
            ..Default::default()
        };
        {
            let store = FolderStore::open(dir.path(), tiny.clone()).unwrap();
            for i in 0..10 {
                store
                    .create(&key(&i.to_string()), Bytes::from(format!("body {i}")))
                    .await
                    .unwrap();
            }
        }
        assert!(dir.path().join("seg-00000003.log").exists());
        let store = FolderStore::open(dir.path(), tiny).unwrap();
        for i in 0..10 {
            assert_eq!(
                store.get(&key(&i.to_string())).await.unwrap().unwrap().body,
                format!("body {i}")
            );
        }
    }
}
