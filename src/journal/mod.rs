//! A segmented, append-only log with group commit: the durability primitive under the folder
//! store and the emulator's spool.
//!
//! Layout: `<dir>/LOCK` (held by the one process that owns the log) and segments
//! `<dir>/seg-00000001.log`, `seg-00000002.log`, … Each append writes one frame:
//!
//! ```text
//! "OGJ1" | payload_len u32 | crc32 u32 | payload
//! ```
//! (integers little-endian; the CRC covers `payload_len` and the payload).
//!
//! Invariants:
//! - **durable before reported**: an append's completion runs only after its frames are written
//!   and `fdatasync`ed. Appends that arrive while a flush is in progress are written and flushed
//!   together by the next one (group commit), so concurrent writers share a flush;
//! - **in order**: frames land in the order their appends were submitted, so a frame that is
//!   durable implies every earlier frame is too;
//! - **a half-written frame never reads as valid**: at open, the newest segment is checked and a
//!   torn tail is cut off (it was never reported durable); reads check magic, length and CRC;
//!   damage in an older segment (which was complete and flushed before the next one began) is
//!   reported, never skipped silently;
//! - **completions always run**, on the writer thread, whether or not the submitter still waits,
//!   so callers can keep their own indexes consistent even if they are cancelled;
//! - after an I/O error the failed batch is cut off the file again; if even that fails the log
//!   refuses further appends (each gets an error) until it is reopened.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, mpsc};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

const MAGIC: &[u8; 4] = b"OGJ1";
const HEADER_LEN: usize = 12;
/// A frame claiming a larger payload than this is damage, not data.
const MAX_PAYLOAD: u32 = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// Start a new segment file once the current one is this large.
    pub segment_bytes: u64,
    /// Flush a group once it holds this many bytes, even if more appends are waiting.
    pub max_batch_bytes: usize,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            max_batch_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Where a frame starts. Positions order frames in append order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Position {
    pub segment: u32,
    pub offset: u64,
}

impl Position {
    /// Where the frame after one at this position, with a payload of `len` bytes, starts if it
    /// is in the same segment.
    pub fn after_frame(self, len: usize) -> Position {
        Position {
            segment: self.segment,
            offset: self.offset + (HEADER_LEN + len) as u64,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct JournalError(String);

impl JournalError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Runs on the writer thread once the frames are durable (with their positions) or failed.
pub type Completion = Box<dyn FnOnce(Result<&[Position], &JournalError>) + Send>;

/// Runs on the writer thread once the frames are durable, before readers can see them.
pub type BeforeVisible = Box<dyn FnOnce(&[Position]) + Send>;

struct Request {
    payloads: Vec<Bytes>,
    before_visible: Option<BeforeVisible>,
    /// Start a new segment after writing this request's frames.
    roll: bool,
    done: Completion,
}

struct Shared {
    segments: RwLock<BTreeMap<u32, Arc<File>>>,
    /// The position after the last durable frame; readers never look beyond it.
    durable_end: watch::Sender<Position>,
    flushes: AtomicU64,
    frames: AtomicU64,
}

/// A journal open for appending and reading. Cheap to share behind an `Arc`.
pub struct Journal {
    dir: PathBuf,
    shared: Arc<Shared>,
    writer: mpsc::Sender<Request>,
    _lock: File,
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, repairing a torn tail of the newest
    /// segment. Older segments are checked when read.
    pub fn open(dir: &Path, options: JournalOptions) -> Result<Self, JournalError> {
        fs::create_dir_all(dir)
            .map_err(|e| JournalError::new(format!("failed to create {}: {e}", dir.display())))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                JournalError::new(format!("failed to open {}: {e}", lock_path.display()))
            })?;
        lock.try_lock().map_err(|_| {
            JournalError::new(format!(
                "{} is in use by another ordergrid process; stop it or use another folder",
                dir.display()
            ))
        })?;

        let numbers = segment_numbers(dir)?;
        let mut segments = BTreeMap::new();
        for &n in &numbers {
            let path = segment_path(dir, n);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| {
                    JournalError::new(format!("failed to open {}: {e}", path.display()))
                })?;
            segments.insert(n, Arc::new(file));
        }
        let active = match numbers.last() {
            Some(&n) => n,
            None => {
                segments.insert(1, Arc::new(create_segment(dir, 1)?));
                1
            }
        };
        let active_len = repair_tail(dir, active, &segments[&active])?;
        let end = Position {
            segment: active,
            offset: active_len,
        };
        let (durable_end, _) = watch::channel(end);
        let shared = Arc::new(Shared {
            segments: RwLock::new(segments),
            durable_end,
            flushes: AtomicU64::new(0),
            frames: AtomicU64::new(0),
        });
        let writer = Writer {
            dir: dir.to_owned(),
            options,
            active,
            active_len,
            poisoned: None,
        };
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run_until_closed(rx, writer_shared))
            .map_err(|e| JournalError::new(format!("failed to start the journal writer: {e}")))?;
        Ok(Self {
            dir: dir.to_owned(),
            shared,
            writer: tx,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Submits frames; `done` runs on the writer thread once they are durable or failed.
    pub fn append_with(&self, payloads: Vec<Bytes>, done: Completion) {
        self.submit(Request {
            payloads,
            before_visible: None,
            roll: false,
            done,
        });
    }

    fn submit(&self, request: Request) {
        if let Err(mpsc::SendError(request)) = self.writer.send(request) {
            (request.done)(Err(&JournalError::new("the journal writer has stopped")));
        }
    }

    /// Appends frames and waits until they are durable; returns their positions.
    pub async fn append(&self, payloads: Vec<Bytes>) -> Result<Vec<Position>, JournalError> {
        self.append_staged(payloads, None).await
    }

    /// [`Journal::append`], running `before_visible` with the positions once the frames are
    /// durable and before any reader can see them.
    pub async fn append_staged(
        &self,
        payloads: Vec<Bytes>,
        before_visible: Option<BeforeVisible>,
    ) -> Result<Vec<Position>, JournalError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Request {
            payloads,
            before_visible,
            roll: false,
            done: Box::new(move |result| {
                let _ = tx.send(result.map(<[Position]>::to_vec).map_err(Clone::clone));
            }),
        });
        rx.await
            .map_err(|_| JournalError::new("the journal writer stopped before answering"))?
    }

    /// The position just past the last durable frame.
    pub fn durable_end(&self) -> Position {
        *self.shared.durable_end.borrow()
    }

    /// A receiver that changes whenever more frames become durable.
    pub fn watch_end(&self) -> watch::Receiver<Position> {
        self.shared.durable_end.subscribe()
    }

    /// `(flushes, frames written)` since open: how well group commit is sharing flushes.
    pub fn flush_stats(&self) -> (u64, u64) {
        (
            self.shared.flushes.load(Ordering::Relaxed),
            self.shared.frames.load(Ordering::Relaxed),
        )
    }

    fn segment(&self, n: u32) -> Option<Arc<File>> {
        self.shared
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&n)
            .cloned()
    }

    /// Reads the frame at `at` (which must be the start of a durable frame).
    pub fn read(&self, at: Position) -> Result<Bytes, JournalError> {
        let file = self
            .segment(at.segment)
            .ok_or_else(|| JournalError::new(format!("segment {} is gone", at.segment)))?;
        let mut header = [0u8; HEADER_LEN];
        file.read_exact_at(&mut header, at.offset)
            .map_err(|e| self.damage(at, &e.to_string()))?;
        let (len, crc) =
            parse_header(&header).ok_or_else(|| self.damage(at, "bad frame header"))?;
        let mut payload = vec![0u8; len as usize];
        file.read_exact_at(&mut payload, at.offset + HEADER_LEN as u64)
            .map_err(|e| self.damage(at, &e.to_string()))?;
        if checksum(len, &payload) != crc {
            return Err(self.damage(at, "checksum mismatch"));
        }
        Ok(Bytes::from(payload))
    }

    /// Reads whole durable frames from `from` on, stopping after about `max_bytes` (at least one
    /// frame when there is one). Moves on to the next segment at the end of one. Returns the
    /// frames with their positions, and the position after the last one.
    pub fn read_from(
        &self,
        from: Position,
        max_bytes: usize,
    ) -> Result<(Vec<(Position, Bytes)>, Position), JournalError> {
        let end = self.durable_end();
        let mut at = from;
        let mut frames = Vec::new();
        let mut read = 0usize;
        while at < end && (frames.is_empty() || read < max_bytes) {
            let limit = if at.segment == end.segment {
                end.offset
            } else {
                u64::MAX
            };
            let Some(file) = self.segment(at.segment) else {
                // Removed (compacted) or not yet known: move to the next segment we have.
                match self.next_segment_after(at.segment) {
                    Some(next) => {
                        at = Position {
                            segment: next,
                            offset: 0,
                        };
                        continue;
                    }
                    None => break,
                }
            };
            let file_len = file.metadata().map(|m| m.len()).unwrap_or(0).min(limit);
            if at.offset >= file_len {
                match self.next_segment_after(at.segment) {
                    Some(next) if next <= end.segment => {
                        at = Position {
                            segment: next,
                            offset: 0,
                        };
                        continue;
                    }
                    _ => break,
                }
            }
            let want = ((file_len - at.offset) as usize).min(max_bytes.max(HEADER_LEN) + 64 * 1024);
            let mut chunk = vec![0u8; want];
            file.read_exact_at(&mut chunk, at.offset)
                .map_err(|e| self.damage(at, &e.to_string()))?;
            let mut pos = 0usize;
            while pos + HEADER_LEN <= chunk.len() {
                let (len, crc) = parse_header(&chunk[pos..pos + HEADER_LEN]).ok_or_else(|| {
                    self.damage(
                        Position {
                            segment: at.segment,
                            offset: at.offset + pos as u64,
                        },
                        "bad frame header",
                    )
                })?;
                let frame_end = pos + HEADER_LEN + len as usize;
                if frame_end > chunk.len() {
                    break;
                }
                let payload = &chunk[pos + HEADER_LEN..frame_end];
                if checksum(len, payload) != crc {
                    return Err(self.damage(
                        Position {
                            segment: at.segment,
                            offset: at.offset + pos as u64,
                        },
                        "checksum mismatch",
                    ));
                }
                frames.push((
                    Position {
                        segment: at.segment,
                        offset: at.offset + pos as u64,
                    },
                    Bytes::copy_from_slice(payload),
                ));
                read += payload.len();
                pos = frame_end;
                if read >= max_bytes {
                    break;
                }
            }
            if pos == 0 {
                // A single frame larger than the chunk: read it on its own.
                let payload = self.read(at)?;
                let len = payload.len();
                frames.push((at, payload));
                read += len;
                pos = HEADER_LEN + len;
            }
            at.offset += pos as u64;
        }
        Ok((frames, at))
    }

    fn next_segment_after(&self, n: u32) -> Option<u32> {
        self.shared
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .range(n + 1..)
            .next()
            .map(|(k, _)| *k)
    }

    /// Every durable frame from the start, in order (for rebuilding an index at open).
    pub fn scan_all(&self) -> Result<Vec<(Position, Bytes)>, JournalError> {
        let first = self
            .shared
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .next()
            .copied()
            .unwrap_or(1);
        let mut at = Position {
            segment: first,
            offset: 0,
        };
        let mut all = Vec::new();
        loop {
            let (frames, next) = self.read_from(at, 8 * 1024 * 1024)?;
            if frames.is_empty() {
                return Ok(all);
            }
            all.extend(frames);
            at = next;
        }
    }

    /// Deletes whole segments that lie entirely before `keep_from` (never the active one).
    pub fn remove_before(&self, keep_from: Position) -> Result<usize, JournalError> {
        let active = self.durable_end().segment;
        let doomed: Vec<u32> = self
            .shared
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .filter(|&n| n < keep_from.segment && n < active)
            .collect();
        for &n in &doomed {
            self.shared
                .segments
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&n);
            let path = segment_path(&self.dir, n);
            fs::remove_file(&path).map_err(|e| {
                JournalError::new(format!("failed to remove {}: {e}", path.display()))
            })?;
        }
        Ok(doomed.len())
    }

    /// Starts a new segment now (before writing a checkpoint, so older segments can go);
    /// returns the start of the new segment.
    pub async fn roll(&self) -> Result<Position, JournalError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Request {
            payloads: vec![],
            before_visible: None,
            roll: true,
            done: Box::new(move |r| {
                let _ = tx.send(r.map(|_| ()).map_err(Clone::clone));
            }),
        });
        rx.await
            .map_err(|_| JournalError::new("the journal writer stopped before answering"))??;
        Ok(self.durable_end())
    }

    fn damage(&self, at: Position, what: &str) -> JournalError {
        JournalError::new(format!(
            "{} is damaged at offset {} ({what})",
            segment_path(&self.dir, at.segment).display(),
            at.offset
        ))
    }
}

fn parse_header(header: &[u8]) -> Option<(u32, u32)> {
    if header.len() < HEADER_LEN || &header[0..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let crc = u32::from_le_bytes(header[8..12].try_into().ok()?);
    (len <= MAX_PAYLOAD).then_some((len, crc))
}

fn checksum(len: u32, payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len.to_le_bytes());
    crc.update(payload);
    crc.finalize()
}

fn encode_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    let len = payload.len() as u32;
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&checksum(len, payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// The numbers of the segment files in `dir`, ascending.
fn segment_numbers(dir: &Path) -> Result<Vec<u32>, JournalError> {
    let mut numbers: Vec<u32> = fs::read_dir(dir)
        .map_err(|e| JournalError::new(format!("failed to list {}: {e}", dir.display())))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("seg-")?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("seg-{n:08}.log"))
}

fn create_segment(dir: &Path, n: u32) -> Result<File, JournalError> {
    let path = segment_path(dir, n);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| JournalError::new(format!("failed to create {}: {e}", path.display())))?;
    // The new name must be durable before anything acknowledged lives in it.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JournalError::new(format!("failed to flush folder {}: {e}", dir.display())))?;
    Ok(file)
}

/// Every whole frame in `dir`, read without taking the lock or repairing anything: for looking at
/// a journal another process is writing. An incomplete frame at the very end (a write in
/// progress) ends the scan; damage anywhere else is an error.
pub fn read_all_frames(dir: &Path) -> Result<Vec<(Position, Bytes)>, JournalError> {
    if !dir.exists() {
        return Ok(vec![]);
    }
    let numbers = segment_numbers(dir)?;
    let mut frames = Vec::new();
    for (i, &n) in numbers.iter().enumerate() {
        let path = segment_path(dir, n);
        let data = fs::read(&path)
            .map_err(|e| JournalError::new(format!("failed to read {}: {e}", path.display())))?;
        let mut at = 0usize;
        while at < data.len() {
            let frame = data
                .get(at..at + HEADER_LEN)
                .and_then(parse_header)
                .and_then(|(len, crc)| {
                    let payload = data.get(at + HEADER_LEN..at + HEADER_LEN + len as usize)?;
                    (checksum(len, payload) == crc).then_some(payload)
                });
            match frame {
                Some(payload) => {
                    frames.push((
                        Position {
                            segment: n,
                            offset: at as u64,
                        },
                        Bytes::copy_from_slice(payload),
                    ));
                    at += HEADER_LEN + payload.len();
                }
                None if i + 1 == numbers.len() => break,
                None => {
                    return Err(JournalError::new(format!(
                        "{} is damaged at offset {at}",
                        path.display()
                    )));
                }
            }
        }
    }
    Ok(frames)
}

/// Finds the end of the last whole frame of the newest segment and cuts off anything after it.
fn repair_tail(dir: &Path, n: u32, file: &File) -> Result<u64, JournalError> {
    let path = segment_path(dir, n);
    let data = fs::read(&path)
        .map_err(|e| JournalError::new(format!("failed to read {}: {e}", path.display())))?;
    let mut at = 0usize;
    while let Some((len, crc)) = data.get(at..at + HEADER_LEN).and_then(parse_header) {
        let end = at + HEADER_LEN + len as usize;
        match data.get(at + HEADER_LEN..end) {
            Some(payload) if checksum(len, payload) == crc => at = end,
            _ => break,
        }
    }
    if at < data.len() {
        tracing::warn!(
            segment = %path.display(),
            offset = at,
            discarded_bytes = data.len() - at,
            "cut off an incomplete write at the end of a journal (it was never acknowledged)"
        );
        file.set_len(at as u64)
            .and_then(|()| file.sync_all())
            .map_err(|e| JournalError::new(format!("failed to repair {}: {e}", path.display())))?;
    }
    Ok(at as u64)
}

#[cfg(test)]
mod tests;
mod writer;

use writer::Writer;
