//! The local-filesystem store: an append-only journal in a folder, with group commit.
//!
//! Layout: `<dir>/LOCK` (held by the one process that owns the folder) and segments
//! `<dir>/seg-00000001.log`, `seg-00000002.log`, … Each write appends one frame:
//!
//! ```text
//! "OGR1" | op u8 (1 put, 2 delete) | version u64 | key_len u16 | body_len u32 | crc32 u32 | key | body
//! ```
//! (integers little-endian; the CRC covers op..body_len, the key and the body).
//!
//! Invariants:
//! - **durable before acknowledged**: a write's future resolves `Ok` only after the frame is
//!   written and `fdatasync`ed. Writes that arrive while a flush is in progress are written and
//!   flushed together by the next one (group commit), so concurrent invocations share a flush;
//! - **a half-written record never reads as valid**: at open, frames are checked (magic, lengths,
//!   CRC); a torn tail of the newest segment is cut off, and damage anywhere else stops the open
//!   with an error naming the file and offset;
//! - **one winner per key**: a key with a write in flight is *pending*; other writers of that key
//!   wait for the outcome and then re-evaluate, so racing `create`s yield exactly one `Created`;
//! - **cancellation-safe**: the index is updated by the writer thread, not by the caller, so a
//!   caller that stops waiting (client gone) cannot leave a key pending forever;
//! - after an I/O error the batch is cut off the file again; if even that fails the store refuses
//!   further writes (every one gets an error, so deliveries are retried) until it is reopened.
//!
//! Segments roll at [`FolderStoreOptions::segment_bytes`]. Superseded frames are not compacted
//! away; a record is small and the local store is not the production store (Blob Storage is).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, mpsc};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use super::{
    Collection, Created, Deleted, ETag, Record, RecordKey, RecordStore, Replaced, StoreError,
};

const MAGIC: &[u8; 4] = b"OGR1";
const HEADER_LEN: usize = 4 + 1 + 8 + 2 + 4 + 4;
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
/// A frame claiming a larger body than this is damage, not data.
const MAX_BODY: u32 = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct FolderStoreOptions {
    /// Start a new segment file once the current one is this large.
    pub segment_bytes: u64,
    /// Flush a group once it holds this many bytes, even if more writes are waiting.
    pub max_batch_bytes: usize,
}

impl Default for FolderStoreOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            max_batch_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Where a committed record's body is.
#[derive(Debug, Clone, Copy)]
struct Loc {
    version: u64,
    segment: u32,
    offset: u64,
    len: u32,
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

enum Op {
    Put(Bytes),
    Delete,
}

struct WriteRequest {
    key: RecordKey,
    op: Op,
    done: watch::Sender<()>,
    reply: oneshot::Sender<Result<Option<Loc>, StoreError>>,
}

struct Shared {
    index: Mutex<HashMap<RecordKey, Slot>>,
    segments: RwLock<BTreeMap<u32, Arc<File>>>,
    batches: AtomicU64,
    frames: AtomicU64,
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, HashMap<RecordKey, Slot>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self, key: &RecordKey, loc: Loc) -> Result<Record, StoreError> {
        let file = self
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&loc.segment)
            .cloned()
            .ok_or_else(|| {
                StoreError::new(format!("segment {} of {key} is missing", loc.segment))
            })?;
        let mut body = vec![0; loc.len as usize];
        file.read_exact_at(&mut body, loc.offset)
            .map_err(|e| StoreError::with_source(format!("failed to read {key}"), e))?;
        Ok(Record {
            etag: loc.etag(),
            body: Bytes::from(body),
        })
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

pub struct FolderStore {
    dir: PathBuf,
    shared: Arc<Shared>,
    writer: mpsc::Sender<WriteRequest>,
    _lock: File,
}

impl FolderStore {
    /// Opens (creating if needed) the store in `dir`, recovering the index from its segments.
    pub fn open(dir: &Path, options: FolderStoreOptions) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| {
            StoreError::with_source(
                format!("failed to create store folder {}", dir.display()),
                e,
            )
        })?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                StoreError::with_source(format!("failed to open {}", lock_path.display()), e)
            })?;
        lock.try_lock().map_err(|_| {
            StoreError::new(format!(
                "the store folder {} is in use by another ordergrid process; stop it or choose \
                 another folder with ORDERGRID_STORE_PATH",
                dir.display()
            ))
        })?;

        let recovered = recover(dir)?;
        let shared = Arc::new(Shared {
            index: Mutex::new(
                recovered
                    .index
                    .into_iter()
                    .map(|(k, loc)| {
                        (
                            k,
                            Slot {
                                committed: Some(loc),
                                pending: None,
                            },
                        )
                    })
                    .collect(),
            ),
            segments: RwLock::new(recovered.segments),
            batches: AtomicU64::new(0),
            frames: AtomicU64::new(0),
        });
        let journal = Journal {
            dir: dir.to_owned(),
            options,
            active: recovered.active,
            active_len: recovered.active_len,
            next_version: recovered.max_version + 1,
            poisoned: None,
        };
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || journal.run_until_closed(rx, writer_shared))
            .map_err(|e| StoreError::with_source("failed to start the store writer thread", e))?;
        Ok(Self {
            dir: dir.to_owned(),
            shared,
            writer: tx,
            _lock: lock,
        })
    }

    /// Group-commit statistics: `(flushes, frames written)` since open.
    pub fn flush_stats(&self) -> (u64, u64) {
        (
            self.shared.batches.load(Ordering::Relaxed),
            self.shared.frames.load(Ordering::Relaxed),
        )
    }

    /// Claims `key` for a write whose precondition is `allowed(current committed state)`.
    fn claim(&self, key: &RecordKey, allowed: impl Fn(Option<&Loc>) -> bool) -> Claim {
        let mut index = self.shared.index();
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

    /// Writes `op` for a key this caller has claimed; resolves once durable.
    async fn submit(
        &self,
        key: &RecordKey,
        op: Op,
        done: watch::Sender<()>,
    ) -> Result<Option<Loc>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            key: key.clone(),
            op,
            done,
            reply,
        };
        if let Err(mpsc::SendError(request)) = self.writer.send(request) {
            // The writer is gone (it only stops when the store is dropped): release the key.
            release(&self.shared, &request.key, None, false);
            return Err(StoreError::new("the store writer has stopped"));
        }
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
                    let current = loc.map(|loc| self.shared.read(key, loc)).transpose()?;
                    return Ok(Err(current));
                }
                Claim::Mine(done) => return Ok(Ok(self.submit(key, op(), done).await?)),
            }
        }
    }
}

/// A put always yields a location; the fallback only keeps the type total.
fn etag_of(loc: Option<Loc>) -> ETag {
    loc.map_or_else(|| ETag::new("0"), |l| l.etag())
}

/// Ends a key's pending state: on success the new location becomes committed.
fn release(shared: &Shared, key: &RecordKey, new: Option<Loc>, committed: bool) {
    let mut index = shared.index();
    if let Some(slot) = index.get_mut(key) {
        slot.pending = None;
        if committed {
            slot.committed = new;
        }
        if slot.committed.is_none() {
            index.remove(key);
        }
    }
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
        let loc = self.shared.index().get(key).and_then(|slot| slot.committed);
        loc.map(|loc| self.shared.read(key, loc)).transpose()
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
            .shared
            .index()
            .iter()
            .filter(|(k, slot)| {
                slot.committed.is_some()
                    && k.collection() == collection
                    && k.name().starts_with(prefix)
            })
            .map(|(k, _)| k.name().to_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn describe(&self) -> String {
        format!("folder {}", self.dir.display())
    }
}

/// The writer side: owns the active segment and is the only code that appends to it.
struct Journal {
    dir: PathBuf,
    options: FolderStoreOptions,
    active: u32,
    active_len: u64,
    next_version: u64,
    /// Set when a failed batch could not be cut off the file again.
    poisoned: Option<String>,
}

impl Journal {
    fn run_until_closed(mut self, requests: mpsc::Receiver<WriteRequest>, shared: Arc<Shared>) {
        while let Ok(first) = requests.recv() {
            let mut batch = vec![first];
            let mut bytes = frame_len(&batch[0]);
            while bytes < self.options.max_batch_bytes {
                match requests.try_recv() {
                    Ok(next) => {
                        bytes += frame_len(&next);
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            let result = self.write_batch(&batch, &shared);
            shared.batches.fetch_add(1, Ordering::Relaxed);
            shared
                .frames
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            match result {
                Ok(locs) => {
                    for (request, loc) in batch.into_iter().zip(locs) {
                        let new = matches!(request.op, Op::Put(_)).then_some(loc);
                        release(&shared, &request.key, new, true);
                        // Wakes the writers waiting on this key, now that the index is updated.
                        drop(request.done);
                        let _ = request.reply.send(Ok(new));
                    }
                }
                Err(message) => {
                    tracing::error!(error = %message, "store write failed; the deliveries will be retried");
                    for request in batch {
                        release(&shared, &request.key, None, false);
                        drop(request.done);
                        let _ = request.reply.send(Err(StoreError::new(message.clone())));
                    }
                }
            }
        }
    }

    /// Appends and flushes the batch; returns where each frame's body landed.
    fn write_batch(&mut self, batch: &[WriteRequest], shared: &Shared) -> Result<Vec<Loc>, String> {
        if let Some(why) = &self.poisoned {
            return Err(format!(
                "the store refuses writes after an unrecoverable I/O error: {why}"
            ));
        }
        if self.active_len >= self.options.segment_bytes {
            self.roll(shared)?;
        }
        let file = shared
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.active)
            .cloned()
            .ok_or("the active segment is not open")?;
        let mut buf = Vec::with_capacity(batch.iter().map(frame_len).sum());
        let mut locs = Vec::with_capacity(batch.len());
        for request in batch {
            let version = self.next_version;
            self.next_version += 1;
            let key = request.key.to_string();
            let (op, body): (u8, &[u8]) = match &request.op {
                Op::Put(body) => (OP_PUT, body),
                Op::Delete => (OP_DELETE, &[]),
            };
            let body_offset = self.active_len + (buf.len() + HEADER_LEN + key.len()) as u64;
            encode_frame(&mut buf, op, version, key.as_bytes(), body);
            locs.push(Loc {
                version,
                segment: self.active,
                offset: body_offset,
                len: body.len() as u32,
            });
        }
        let start = self.active_len;
        let written = file
            .write_all_at(&buf, start)
            .and_then(|()| file.sync_data());
        match written {
            Ok(()) => {
                self.active_len += buf.len() as u64;
                Ok(locs)
            }
            Err(e) => {
                let message = format!(
                    "failed to write to {}: {e}",
                    segment_path(&self.dir, self.active).display()
                );
                if let Err(cut) = file.set_len(start).and_then(|()| file.sync_data()) {
                    self.poisoned = Some(format!(
                        "{message}; then failed to cut the batch off: {cut}"
                    ));
                }
                Err(message)
            }
        }
    }

    fn roll(&mut self, shared: &Shared) -> Result<(), String> {
        let next = self.active + 1;
        let file = create_segment(&self.dir, next)?;
        shared
            .segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(next, Arc::new(file));
        self.active = next;
        self.active_len = 0;
        Ok(())
    }
}

fn frame_len(request: &WriteRequest) -> usize {
    HEADER_LEN
        + request.key.to_string().len()
        + match &request.op {
            Op::Put(body) => body.len(),
            Op::Delete => 0,
        }
}

fn encode_frame(buf: &mut Vec<u8>, op: u8, version: u64, key: &[u8], body: &[u8]) {
    let mut crc = crc32fast::Hasher::new();
    let start = buf.len();
    buf.extend_from_slice(MAGIC);
    buf.push(op);
    buf.extend_from_slice(&version.to_le_bytes());
    buf.extend_from_slice(&(key.len() as u16).to_le_bytes());
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    crc.update(&buf[start + 4..]);
    crc.update(key);
    crc.update(body);
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(body);
}

struct Frame<'a> {
    op: u8,
    version: u64,
    key: &'a [u8],
    body_offset: usize,
    body_len: u32,
    end: usize,
}

/// Decodes the frame at `at`, or `None` if the bytes there are not a whole, intact frame.
fn decode_frame(data: &[u8], at: usize) -> Option<Frame<'_>> {
    let header = data.get(at..at + HEADER_LEN)?;
    if &header[0..4] != MAGIC {
        return None;
    }
    let op = header[4];
    let version = u64::from_le_bytes(header[5..13].try_into().ok()?);
    let key_len = u16::from_le_bytes(header[13..15].try_into().ok()?) as usize;
    let body_len = u32::from_le_bytes(header[15..19].try_into().ok()?);
    let stored_crc = u32::from_le_bytes(header[19..23].try_into().ok()?);
    if !matches!(op, OP_PUT | OP_DELETE) || body_len > MAX_BODY {
        return None;
    }
    let key_start = at + HEADER_LEN;
    let body_offset = key_start + key_len;
    let end = body_offset + body_len as usize;
    let key = data.get(key_start..body_offset)?;
    let body = data.get(body_offset..end)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[4..19]);
    crc.update(key);
    crc.update(body);
    (crc.finalize() == stored_crc).then_some(Frame {
        op,
        version,
        key,
        body_offset,
        body_len,
        end,
    })
}

fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("seg-{n:08}.log"))
}

fn create_segment(dir: &Path, n: u32) -> Result<File, String> {
    let path = segment_path(dir, n);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| format!("failed to create {}: {e}", path.display()))?;
    // The new name must be durable before anything acknowledged lives in it.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("failed to flush folder {}: {e}", dir.display()))?;
    Ok(file)
}

struct Recovered {
    index: HashMap<RecordKey, Loc>,
    segments: BTreeMap<u32, Arc<File>>,
    active: u32,
    active_len: u64,
    max_version: u64,
}

fn recover(dir: &Path) -> Result<Recovered, StoreError> {
    let mut numbers: Vec<u32> = fs::read_dir(dir)
        .map_err(|e| StoreError::with_source(format!("failed to list {}", dir.display()), e))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("seg-")?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .collect();
    numbers.sort_unstable();

    let mut index = HashMap::new();
    let mut segments = BTreeMap::new();
    let mut max_version = 0;
    let mut active_len = 0;
    for (i, &n) in numbers.iter().enumerate() {
        let path = segment_path(dir, n);
        let is_last = i + 1 == numbers.len();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| {
                StoreError::with_source(format!("failed to open {}", path.display()), e)
            })?;
        let data = fs::read(&path).map_err(|e| {
            StoreError::with_source(format!("failed to read {}", path.display()), e)
        })?;
        let mut at = 0;
        while at < data.len() {
            let Some(frame) = decode_frame(&data, at) else {
                break;
            };
            let key = std::str::from_utf8(frame.key)
                .ok()
                .and_then(|k| k.split_once('/'))
                .and_then(|(c, name)| RecordKey::new(Collection::from_name(c)?, name).ok())
                .ok_or_else(|| {
                    StoreError::new(format!(
                        "{} holds an unknown key at offset {at}",
                        path.display()
                    ))
                })?;
            max_version = max_version.max(frame.version);
            match frame.op {
                OP_PUT => {
                    index.insert(
                        key,
                        Loc {
                            version: frame.version,
                            segment: n,
                            offset: frame.body_offset as u64,
                            len: frame.body_len,
                        },
                    );
                }
                _ => {
                    index.remove(&key);
                }
            }
            at = frame.end;
        }
        if at < data.len() {
            if !is_last {
                return Err(StoreError::new(format!(
                    "{} is damaged at offset {at} of {} (not the newest segment, so this is not \
                     an interrupted write); move the folder aside to start afresh",
                    path.display(),
                    data.len()
                )));
            }
            tracing::warn!(
                segment = %path.display(),
                offset = at,
                discarded_bytes = data.len() - at,
                "cut off an incomplete write at the end of the store journal (an interrupted, unacknowledged write)"
            );
            file.set_len(at as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| {
                    StoreError::with_source(format!("failed to repair {}", path.display()), e)
                })?;
        }
        if is_last {
            active_len = at as u64;
        }
        segments.insert(n, Arc::new(file));
    }
    let active = match numbers.last() {
        Some(&n) => n,
        None => {
            let file = create_segment(dir, 1).map_err(StoreError::new)?;
            segments.insert(1, Arc::new(file));
            1
        }
    };
    Ok(Recovered {
        index,
        segments,
        active,
        active_len,
        max_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> RecordKey {
        RecordKey::new(Collection::Orders, name).unwrap()
    }

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let mut buf = vec![];
        encode_frame(&mut buf, OP_PUT, 7, b"orders/1", b"{\"a\":1}");
        let frame = decode_frame(&buf, 0).unwrap();
        assert_eq!(
            (frame.op, frame.version, frame.key, frame.end),
            (OP_PUT, 7, &b"orders/1"[..], buf.len())
        );
        for cut in 0..buf.len() {
            assert!(
                decode_frame(&buf[..cut], 0).is_none(),
                "a frame cut at {cut} must not decode"
            );
        }
        let mut flipped = buf.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(decode_frame(&flipped, 0).is_none());
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off_and_earlier_records_survive() {
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
        let seg = segment_path(dir.path(), 1);
        let len = fs::metadata(&seg).unwrap().len();
        // Simulate a crash in the middle of writing the second frame.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 2)
            .unwrap();
        let store = FolderStore::open(dir.path(), FolderStoreOptions::default()).unwrap();
        assert_eq!(store.get(&key("1")).await.unwrap().unwrap().body, "one");
        assert_eq!(store.get(&key("2")).await.unwrap(), None);
        // and the journal is writable again after the cut
        store
            .create(&key("3"), Bytes::from_static(b"three"))
            .await
            .unwrap();
        drop(store);
        let store = FolderStore::open(dir.path(), FolderStoreOptions::default()).unwrap();
        assert_eq!(store.get(&key("3")).await.unwrap().unwrap().body, "three");
    }

    #[tokio::test]
    async fn damage_in_an_older_segment_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let tiny = FolderStoreOptions {
            segment_bytes: 1,
            ..Default::default()
        };
        {
            let store = FolderStore::open(dir.path(), tiny.clone()).unwrap();
            store
                .create(&key("1"), Bytes::from_static(b"one"))
                .await
                .unwrap();
            store
                .create(&key("2"), Bytes::from_static(b"two"))
                .await
                .unwrap();
        }
        let seg = segment_path(dir.path(), 1);
        let mut data = fs::read(&seg).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        fs::write(&seg, data).unwrap();
        let err = FolderStore::open(dir.path(), tiny).err().unwrap();
        assert!(err.to_string().contains("is damaged at offset 0"), "{err}");
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
    async fn segments_roll_and_records_in_old_segments_stay_readable() {
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
        assert!(segment_path(dir.path(), 3).exists());
        let store = FolderStore::open(dir.path(), tiny).unwrap();
        for i in 0..10 {
            assert_eq!(
                store.get(&key(&i.to_string())).await.unwrap().unwrap().body,
                format!("body {i}")
            );
        }
    }
}
