//! The disk queue (`queue.disk`): events are written to segment files before the input is
//! told they are queued, read back into the memory stage a window at a time, and the
//! position of the settled prefix is recorded so a restart resumes there.
//!
//! ```text
//!  Publisher ──append (write, fdatasync)──▶ <id>.seg ... <id>.seg ──reader thread──▶ memory stage
//!     ▲ input's "settled" = durable                                  (≤ window events)   │
//!     └──────────────────────────────                                                     ▼
//!                         position ◀──acker thread (record, then delete segments)◀── settled prefix
//! ```
//!
//! The on-disk format, the crash table and the durability choices are in
//! `docs/disk-queue.md`; [`format`] holds the bytes. Invariants:
//! * The memory stage holds at most `window` events read from disk that are not recorded as
//!   settled (`read seq < recorded + window`), plus the rest of a packed window whose first
//!   event is within that, which bounds both memory and what a crash re-sends.
//! * A packed window (docs/disk-queue.md §11) reaches the memory stage whole, under one lock,
//!   so a source that takes windows gets it as one batch.
//! * A segment is deleted only after the record proving it settled is written (and synced).
//! * A failed write or `fdatasync` is never retried on the same file: the segment is cut
//!   back and the batch written again into a new one.
//! * The reader takes the last `RECENT_BYTES` of written events from memory when it can
//!   (outputs keeping up), and reads anything older back from the segments.
//! * Segments are written and read with `O_DIRECT` in whole blocks (format version 2 on), from
//!   one reused aligned buffer on each side: no page cache to fill, write back, read from and
//!   drop again at deletion. Where the file system refuses it, the same bytes go through the
//!   page cache.

pub mod format;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use self::format::{
    FrameReader, HeaderError, Slot, Step, BLOCK, HEADER_LEN, POSITION_LEN, SLOT_LEN,
};
use super::metrics::Metrics;
use super::packed::{self, PackSettings, Packed, PackedWindow};
use super::queue::Shared;
use crate::event::{Event, InputId};
use skidder_protocol::Compressor;

/// The input id of events read back from disk: no input of this run owns them, so their
/// acknowledgement is counted for the pipeline only (the input was told at write time).
pub(crate) const DISK_INPUT: InputId = InputId::MAX;

/// Events the reader hands to the memory stage under one lock.
const READ_CHUNK: usize = 256;
/// Bytes read from a segment at a time: `O_DIRECT` reads of 256 KiB cost 1.6× those of
/// 1 MiB per byte on the benchmark VM (docs/disk-queue.md §8).
const READ_BUF: usize = 1 << 20;
/// The writer's aligned buffer: a batch is written in pieces of this size.
const WRITE_BUF: usize = 1 << 20;
/// `sync: batch`: the position record is synced once it is this many events past the last
/// synced one (docs/disk-queue.md §4; the power-loss re-send bound is `window` + this).
pub(crate) const POSITION_SYNC_EVENTS: u64 = 16_384;
/// `sync: batch`: ... or once this long has passed since its last sync.
const POSITION_SYNC_AFTER: Duration = Duration::from_secs(1);
/// Payload bytes of the events just written that the reader may take from memory instead
/// of reading them back (the common case: outputs keep up). Past it the oldest are
/// forgotten and read from the segment; memory stays bounded whatever the backlog.
const RECENT_BYTES: usize = 4 << 20;
/// The longest a background thread sleeps without looking at its conditions again; a
/// safety net, every change also notifies.
const NAP: Duration = Duration::from_millis(200);

/// When written data is made durable (`queue.disk.sync`); see docs/disk-queue.md §8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// `fdatasync` every write batch before the publish returns (the default).
    Batch,
    /// `fdatasync` at most once per interval (`queue.disk.sync_interval`).
    Interval(Duration),
    /// Left to the OS; synced only at a clean stop.
    None,
}

/// Validated `queue.disk.*` settings.
#[derive(Debug, Clone)]
pub struct DiskSettings {
    /// `queue.disk.path`: the queue directory.
    pub path: PathBuf,
    /// `queue.disk.max_size` in bytes; 0 = unbounded.
    pub max_size: u64,
    /// `queue.disk.segment_size` in bytes.
    pub segment_size: u64,
    /// `queue.disk.read_ahead`: events read ahead of the outputs.
    pub read_ahead: usize,
    /// `queue.disk.write_ahead`: events an input buffers before one write (and one sync).
    pub write_ahead: usize,
    /// `queue.disk.retry_interval`: first wait after a failed write.
    pub retry_interval: Duration,
    /// `queue.disk.max_retry_interval`: longest wait between write attempts.
    pub max_retry_interval: Duration,
    /// `queue.disk.sync`.
    pub sync: SyncMode,
    /// Pack write batches as the output's windows (docs/disk-queue.md §11); set from the
    /// output, not by the user.
    pub pack: Option<PackSettings>,
}

/// Why the disk queue cannot open.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// A file or the directory cannot be created, read or written.
    #[error("disk queue {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process holds the lock.
    #[error("disk queue directory {} is in use by another skidder process (lock file {}); give each process its own queue.disk.path", dir.display(), lock.display())]
    Locked {
        /// The queue directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// A file of a format version this build does not read.
    #[error("disk queue file {}: {source}; refusing to open it rather than misread it", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// Which version.
        source: HeaderError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
    move |source| DiskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone)]
struct SegInfo {
    id: u64,
    first: u64,
    path: PathBuf,
    size: u64,
}

/// An event handed from the disk queue to the memory stage: its seq, its bytes, or the
/// packed window it is part of (then its bytes are empty).
pub(crate) type Loaded = (u64, Bytes, Option<Packed>);

/// Events just written, by seq, for the reader (see `RECENT_BYTES`): one entry per plain
/// event, one per packed window (its events are made when the reader hands it over).
#[derive(Debug, Default)]
struct Recent {
    events: VecDeque<(u64, Kept)>,
    bytes: usize,
}

/// What [`Recent`] keeps of a write: a plain event's bytes, or a packed window with the
/// bytes its events had before packing.
#[derive(Debug)]
enum Kept {
    Event(Bytes),
    Window(Arc<PackedWindow>, usize),
}

impl Kept {
    /// Bytes `RECENT_BYTES` counts for it: a window counts as its events did, so the same
    /// number of recent events is kept either way (and a tenth of the memory for windows).
    fn bytes(&self) -> usize {
        match self {
            Kept::Event(b) => b.len(),
            Kept::Window(_, plain) => *plain,
        }
    }

    /// Events it holds.
    fn count(&self) -> u64 {
        match self {
            Kept::Event(_) => 1,
            Kept::Window(w, _) => u64::from(w.count()),
        }
    }
}

/// A compressor a writing input borrows to pack its batch (docs/disk-queue.md §11).
struct Packer {
    compressor: Box<dyn Compressor + Send>,
    /// The window's `J` frames before compression, reused.
    scratch: Vec<u8>,
    /// The compressed window, reused: compressors reserve the uncompressed size, so each
    /// window is copied out at its own size instead of keeping that reservation alive.
    out: Vec<u8>,
}

impl std::fmt::Debug for Packer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packer").finish_non_exhaustive()
    }
}

/// The packers made so far, and those not in use.
#[derive(Debug, Default)]
struct Packers {
    idle: Vec<Packer>,
    made: usize,
}

/// Packers kept at most: a compressor and its buffers take a few MiB, and writers past one
/// per core would only wait for a core anyway.
fn max_packers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// Events `range` of a write batch's fitting events, as plain frames or as one packed
/// window (`wire`).
struct Piece {
    range: std::ops::Range<usize>,
    wire: Option<Bytes>,
}

#[derive(Debug, Default)]
struct Segs {
    list: VecDeque<SegInfo>,
    total: u64,
}

/// One block, aligned as `O_DIRECT` needs (buffer address, file offset and length all
/// multiples of the logical block size, 512 or 4096 on the disks we know).
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Block([u8; BLOCK]);

/// A block-aligned buffer, reused for every write (or read) of one side.
struct Aligned(Vec<Block>);

impl Aligned {
    fn new(bytes: usize) -> Self {
        Self(vec![Block([0; BLOCK]); bytes.div_ceil(BLOCK)])
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: as in `bytes_mut`, shared.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), self.0.len() * BLOCK) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.0.len() * BLOCK;
        // SAFETY: `Block` is `repr(C)` over `[u8; BLOCK]` (no padding, every byte is
        // initialised and any value is valid); the slice covers exactly the Vec's elements
        // and borrows it mutably for its lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), len) }
    }
}

impl std::fmt::Debug for Aligned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Aligned({} bytes)", self.0.len() * BLOCK)
    }
}

/// Read buffers kept for reuse: reused memory is neither faulted in nor zeroed by the
/// kernel again (a fresh 1 MiB per read was 1.5% of a disk-queue run, with the copy out of it
/// another 4%).
#[derive(Debug, Default)]
struct ReadPool(Mutex<Vec<Aligned>>);

/// Buffers the pool keeps; more may be in use (events of the memory stage still point
/// into them), and those are freed when they come back.
const POOL_KEEP: usize = 4;
/// A read yielding fewer new bytes than this is copied out of its buffer, which goes back to
/// the pool at once: a few events at the live tail must not pin a whole buffer each.
const ZERO_COPY_MIN: usize = READ_BUF / 4;

impl ReadPool {
    fn get(&self) -> Aligned {
        lock(&self.0)
            .pop()
            .unwrap_or_else(|| Aligned::new(READ_BUF))
    }

    fn put(&self, buf: Aligned) {
        let mut free = lock(&self.0);
        if free.len() < POOL_KEEP {
            free.push(buf);
        }
    }
}

/// A read buffer owned by the `Bytes` handed to the frame reader: back to the pool when the
/// last event sliced from it is dropped.
struct Pooled {
    buf: Option<Aligned>,
    len: usize,
    pool: Arc<ReadPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_ref().map_or(&[], |b| &b.bytes()[..self.len])
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            self.pool.put(b);
        }
    }
}

fn is_einval(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

/// Tests stand in for a file system without `O_DIRECT` here: `EINVAL` at `stage` ("open"
/// or "write") on the calling thread.
fn refused_direct(stage: &str) -> std::io::Result<()> {
    #[cfg(test)]
    if tests::REFUSE_DIRECT.with(|r| r.get()) == Some(stage) {
        tests::REFUSED.with(|r| r.set(r.get() + 1));
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    let _ = stage;
    Ok(())
}

/// Opens a segment to read, with `O_DIRECT` when `direct` and the file system takes it.
fn open_read(path: &Path, direct: bool) -> std::io::Result<(File, bool)> {
    if direct {
        match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(f) => return Ok((f, true)),
            Err(e) if is_einval(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((File::open(path)?, false))
}

/// A segment being read in block-aligned pieces (docs/disk-queue.md §3).
#[derive(Debug)]
struct SegReader {
    file: File,
    path: PathBuf,
    direct: bool,
    /// Segment offset up to which bytes were fed to the frame reader.
    fed: u64,
}

impl SegReader {
    /// Opens `path` for a [`FrameReader`] fed from just after the header.
    fn open(path: &Path, direct: bool) -> std::io::Result<Self> {
        let (file, direct) = open_read(path, direct)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            direct,
            fed: HEADER_LEN as u64,
        })
    }

    /// Feeds `fr` the bytes after those fed so far, one aligned read into a buffer of
    /// `pool`, handed over without a copy when it holds enough new bytes. Returns the bytes
    /// fed; 0 at the end of the file. The block holding `fed` is read again (alignment), and
    /// a short read is where the file ends.
    fn read_into(&mut self, fr: &mut FrameReader, pool: &Arc<ReadPool>) -> std::io::Result<usize> {
        let mut buf = pool.get();
        let (n, skip) = match self.read_at(&mut buf) {
            Ok(v) => v,
            Err(e) => {
                pool.put(buf);
                return Err(e);
            }
        };
        if n <= skip {
            pool.put(buf);
            return Ok(0);
        }
        if n - skip < ZERO_COPY_MIN {
            fr.feed(&buf.bytes()[skip..n]);
            pool.put(buf);
        } else {
            let owner = Pooled {
                buf: Some(buf),
                len: n,
                pool: Arc::clone(pool),
            };
            fr.feed_bytes(Bytes::from_owner(owner).slice(skip..));
        }
        self.fed += (n - skip) as u64;
        Ok(n - skip)
    }

    /// One aligned read from the block holding `fed`: bytes read, and how many of them
    /// were fed before.
    fn read_at(&mut self, buf: &mut Aligned) -> std::io::Result<(usize, usize)> {
        let start = self.fed / BLOCK as u64 * BLOCK as u64;
        let skip = (self.fed - start) as usize;
        let b = buf.bytes_mut();
        let n = loop {
            match self.file.read_at(b, start) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if self.direct && is_einval(&e) => {
                    // Opened with O_DIRECT but the reads are refused: the page cache then.
                    self.file = File::open(&self.path)?;
                    self.direct = false;
                }
                Err(e) => return Err(e),
            }
        };
        Ok((n, skip))
    }
}

#[derive(Debug)]
struct Writer {
    file: Option<File>,
    /// Bytes in the current segment.
    size: u64,
    next_seq: u64,
    next_id: u64,
    last_sync: Instant,
    /// Written since the last `fdatasync` (sync modes other than batch).
    dirty: bool,
    /// Every write goes through it: block-aligned for `O_DIRECT`.
    buf: Aligned,
}

#[derive(Debug)]
struct Position {
    file: File,
    generation: u64,
    last_sync: Instant,
    dirty: bool,
    /// The last `acked` written.
    written: u64,
    /// The last `acked` known synced (what segment deletion may rely on).
    synced: u64,
}

/// The disk queue's shared state (see the module docs).
#[derive(Debug)]
pub(crate) struct Disk {
    settings: DiskSettings,
    dir: PathBuf,
    dir_file: File,
    _lock: File,
    writer: Mutex<Writer>,
    /// Compressors of writers that pack, kept for the next batch.
    packers: Mutex<Packers>,
    /// A packer was put back.
    packer_free: Condvar,
    recent: Mutex<Recent>,
    segs: Mutex<Segs>,
    /// Writers waiting for space (with `segs`).
    space: Condvar,
    /// Frames with a smaller seq are readable (durable to the chosen point).
    visible: AtomicU64,
    /// Every event with a smaller seq is settled (the memory stage's prefix).
    settled: AtomicU64,
    /// `settled` as last written to `position`.
    recorded: AtomicU64,
    /// Events the reader may hold beyond `recorded`.
    window: AtomicU64,
    /// Inputs are stopping: a writer waiting for space gives up.
    stop: AtomicBool,
    /// Segments are written and read with `O_DIRECT` (until the file system refuses it).
    direct: AtomicBool,
    /// A writer waits for space: the position record is synced at once, since only a
    /// synced record lets a segment go.
    full: AtomicBool,
    closing: AtomicBool,
    wake_gen: Mutex<u64>,
    wake: Condvar,
    position: Mutex<Position>,
    metrics: Arc<Metrics>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The first seq the reader must deliver.
    start: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a few assignments; a panic elsewhere cannot leave
    // them half done in a way that loses events.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn seg_name(id: u64) -> String {
    format!("{id:020}.seg")
}

/// One write batch: the events that fit in a frame, from seq `first`, in pieces that are
/// plain frames or packed windows.
struct Frames<'a> {
    fits: Vec<&'a Event>,
    pieces: Vec<Piece>,
    first: u64,
    /// Bytes on disk, padding included.
    len: u64,
}

impl<'a> Frames<'a> {
    fn new(fits: Vec<&'a Event>, pieces: Vec<Piece>, first: u64) -> Self {
        let bytes: u64 = pieces
            .iter()
            .map(|p| match &p.wire {
                Some(w) => format::packed_frame_len(w.len()) as u64,
                None => fits[p.range.clone()]
                    .iter()
                    .map(|e| format::frame_len(e.bytes.len()) as u64)
                    .sum(),
            })
            .sum();
        Self {
            fits,
            pieces,
            first,
            len: format::padded(bytes),
        }
    }

    fn iter(&self) -> impl Iterator<Item = format::Item<'_>> + '_ {
        let first = self.first;
        self.pieces.iter().flat_map(move |p| {
            let seq = first + p.range.start as u64;
            let packed = p.wire.as_ref().map(|w| format::Item::Packed {
                seq,
                count: p.range.len() as u32,
                wire: w,
            });
            let plain = if p.wire.is_none() {
                p.range.clone()
            } else {
                0..0
            };
            packed
                .into_iter()
                .chain(plain.map(move |i| format::Item::Event {
                    seq: first + i as u64,
                    payload: &self.fits[i].bytes,
                }))
        })
    }

    /// Encodes the batch through `buf` and writes it at `at` (a block boundary).
    fn write_at(&self, file: &File, buf: &mut Aligned, at: u64) -> std::io::Result<()> {
        let mut off = at;
        format::encode_batch(self.iter(), buf.bytes_mut(), |piece| {
            file.write_all_at(piece, off)?;
            off += piece.len() as u64;
            Ok::<(), std::io::Error>(())
        })?;
        debug_assert_eq!(off - at, self.len);
        Ok(())
    }
}

/// The outcome of a write.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Appended {
    /// Events written.
    pub written: usize,
    /// Events larger than a frame can hold, refused.
    pub oversize: usize,
}

impl Disk {
    /// Opens (or creates) the queue in `settings.path`: lock, recover, record.
    pub(crate) fn open(settings: DiskSettings, metrics: Arc<Metrics>) -> Result<Self, DiskError> {
        let dir = settings.path.clone();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock_path = dir.join("skidder.lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(lock_file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::WouldBlock {
                return Err(DiskError::Locked {
                    dir,
                    lock: lock_path,
                });
            }
            return Err(io_err(&lock_path)(e));
        }
        let dir_file = File::open(&dir).map_err(io_err(&dir))?;

        let (mut segs, mut max_id) = scan_segments(&dir)?;
        let mut next_seq = None;
        if let Some(last) = segs.list.back().cloned() {
            let (end_seq, end_offset) = scan_last(&last)?;
            if end_offset < last.size {
                tracing::debug!(file = %last.path.display(), offset = end_offset, "disk queue: torn tail after a crash cut back");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&last.path)
                    .map_err(io_err(&last.path))?;
                f.set_len(end_offset).map_err(io_err(&last.path))?;
                f.sync_all().map_err(io_err(&last.path))?;
                segs.total -= last.size - end_offset;
                if let Some(l) = segs.list.back_mut() {
                    l.size = end_offset;
                }
            }
            next_seq = Some(end_seq);
        }
        let pos_path = dir.join("position");
        let existing = match std::fs::read(&pos_path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&pos_path)(e)),
        };
        let slot = match existing.as_deref().map(format::decode_position) {
            Some(Ok(s)) => s,
            Some(Err(source)) => {
                return Err(DiskError::Version {
                    path: pos_path,
                    source,
                })
            }
            None => None,
        };
        let oldest = segs.list.front().map(|s| s.first);
        let end = next_seq.unwrap_or_else(|| slot.map_or(0, |s| s.acked));
        let acked = match (slot, oldest) {
            (Some(s), _) => s.acked,
            (None, Some(first)) => {
                tracing::error!(
                    file = %pos_path.display(),
                    offset = 0,
                    events_lost = 0,
                    resent = end.saturating_sub(first),
                    "disk queue position record missing or damaged; reading again from the oldest segment, so up to `resent` events may be delivered twice"
                );
                first
            }
            (None, None) => end,
        };
        let acked = if acked > end {
            tracing::warn!(recorded = acked, end, "disk queue position is past the last event on disk (data lost to a power cut with sync other than batch?); starting at the end");
            end
        } else {
            acked
        };
        let generation = slot.map_or(0, |s| s.generation);
        let pos_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&pos_path)
            .map_err(io_err(&pos_path))?;
        if slot.is_none() {
            let mut both = [0u8; POSITION_LEN];
            for g in 0..2u64 {
                let s = format::encode_slot(Slot {
                    generation: g,
                    acked,
                });
                both[g as usize * SLOT_LEN..(g as usize + 1) * SLOT_LEN].copy_from_slice(&s);
            }
            pos_file
                .write_all_at(&both, 0)
                .and_then(|()| pos_file.sync_all())
                .and_then(|()| dir_file.sync_all())
                .map_err(io_err(&pos_path))?;
        }
        max_id = max_id.max(segs.list.back().map_or(0, |s| s.id));
        let disk = Self {
            window: AtomicU64::new(settings.read_ahead as u64),
            settings,
            dir,
            dir_file,
            _lock: lock_file,
            writer: Mutex::new(Writer {
                file: None,
                size: 0,
                next_seq: end,
                next_id: max_id + 1,
                last_sync: Instant::now(),
                dirty: false,
                buf: Aligned::new(WRITE_BUF),
            }),
            packers: Mutex::new(Packers::default()),
            packer_free: Condvar::new(),
            recent: Mutex::new(Recent::default()),
            segs: Mutex::new(segs),
            space: Condvar::new(),
            visible: AtomicU64::new(end),
            settled: AtomicU64::new(acked),
            recorded: AtomicU64::new(acked),
            stop: AtomicBool::new(false),
            direct: AtomicBool::new(true),
            full: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            wake_gen: Mutex::new(0),
            wake: Condvar::new(),
            position: Mutex::new(Position {
                file: pos_file,
                generation: generation.max(1),
                last_sync: Instant::now(),
                dirty: false,
                written: acked,
                synced: acked,
            }),
            metrics,
            threads: Mutex::new(Vec::new()),
            start: acked,
        };
        disk.delete_settled(acked);
        disk.update_bytes();
        tracing::info!(path = %disk.dir.display(), queued = end - acked, "disk queue opened");
        Ok(disk)
    }

    /// The first seq to deliver (the recorded position at open).
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Starts the reader and acker threads.
    pub(crate) fn start_threads(self: &Arc<Self>, shared: Weak<Shared>) {
        let mut threads = lock(&self.threads);
        let (d, s) = (Arc::clone(self), shared.clone());
        if let Ok(h) = std::thread::Builder::new()
            .name("skidder-dq-read".into())
            .spawn(move || d.reader_loop(&s))
        {
            threads.push(h);
        }
        let d = Arc::clone(self);
        if let Ok(h) = std::thread::Builder::new()
            .name("skidder-dq-ack".into())
            .spawn(move || d.acker_loop())
        {
            threads.push(h);
        }
    }

    /// `queue.disk.write_ahead`.
    pub(crate) fn write_ahead(&self) -> usize {
        self.settings.write_ahead
    }

    /// Frames with a smaller seq are readable.
    pub(crate) fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Raises the read window to `read_ahead + bulk` for an output taking `bulk`-event batches.
    pub(crate) fn fit_batch(&self, bulk: usize) {
        let w = self.settings.read_ahead as u64 + bulk as u64;
        self.window.fetch_max(w, Ordering::AcqRel);
        self.notify();
    }

    /// The memory stage's settled prefix moved to `seq`.
    pub(crate) fn settled_to(&self, seq: u64) {
        if self.settled.fetch_max(seq, Ordering::AcqRel) < seq {
            self.notify();
        }
    }

    /// Inputs are stopping: a write waiting for space gives up.
    pub(crate) fn stop_inputs(&self) {
        self.stop.store(true, Ordering::Release);
        self.space.notify_all();
        self.notify();
    }

    fn notify(&self) {
        *lock(&self.wake_gen) += 1;
        self.wake.notify_all();
    }

    /// Sleeps until notified after `seen`, or for at most `NAP`.
    fn nap(&self, seen: u64) {
        let g = lock(&self.wake_gen);
        if *g == seen && !self.closing.load(Ordering::Acquire) {
            drop(self.wake.wait_timeout(g, NAP));
        }
    }

    fn wake_seen(&self) -> u64 {
        *lock(&self.wake_gen)
    }

    fn update_bytes(&self) {
        let total = lock(&self.segs).total;
        self.metrics.disk_bytes.store(total, Ordering::Relaxed);
    }

    fn sync_data(&self, f: &File) -> std::io::Result<()> {
        self.metrics.disk_fsyncs.fetch_add(1, Ordering::Relaxed);
        f.sync_data()
    }

    fn sync_dir(&self) {
        if self.settings.sync != SyncMode::None {
            self.metrics.disk_fsyncs.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.dir_file.sync_all() {
                tracing::warn!(path = %self.dir.display(), error = %e, "disk queue: fsync of the directory failed");
            }
        }
    }

    /// Writes `events` as frames and makes them durable to the configured point; waits
    /// while the queue is full or the disk refuses the write.
    ///
    /// # Errors
    /// `Err(())` when inputs are stopping before the events could be written, or the queue
    /// was closed (nothing is written then).
    ///
    /// `count` runs with the writer held, once the events are durable (or refused as
    /// oversize): `close` takes the writer after it, so the totals a stop prints count every
    /// event the queue keeps. Counted after `append` returned instead, a batch written as the
    /// stop came showed up in the queue's `unacked` but not in `published`.
    pub(crate) fn append(
        &self,
        events: &[Event],
        count: impl FnOnce(&Appended),
    ) -> Result<Appended, ()> {
        let fits: Vec<&Event> = events
            .iter()
            .filter(|e| e.bytes.len() <= format::MAX_PAYLOAD)
            .collect();
        // Compressed before the writer is taken: a window's bytes do not depend on its seqs.
        let pieces = self.pieces(&fits);
        let mut w = lock(&self.writer);
        if self.closing.load(Ordering::Acquire) {
            // `close` has counted what the queue keeps: a write now would not be counted.
            return Err(());
        }
        let oversize = events
            .iter()
            .filter(|e| e.bytes.len() > format::MAX_PAYLOAD)
            .count();
        let out = Appended {
            written: events.len() - oversize,
            oversize,
        };
        if out.oversize > 0 {
            tracing::error!(
                events = out.oversize,
                max_bytes = format::MAX_PAYLOAD,
                "disk queue: events larger than a frame can hold were dropped"
            );
        }
        if out.written == 0 {
            count(&out);
            return Ok(out);
        }
        let first = w.next_seq;
        let batch = Frames::new(fits, pieces, first);
        self.write_durably(&mut w, &batch, first)?;
        w.next_seq = first + out.written as u64;
        {
            let mut recent = lock(&self.recent);
            for p in &batch.pieces {
                let seq = first + p.range.start as u64;
                match &p.wire {
                    Some(wire) => {
                        let window = PackedWindow::new(wire.clone(), p.range.len() as u32);
                        let plain: usize = batch.fits[p.range.clone()]
                            .iter()
                            .map(|e| e.bytes.len())
                            .sum();
                        recent.bytes += plain;
                        recent.events.push_back((seq, Kept::Window(window, plain)));
                    }
                    None => {
                        for (i, ev) in batch.fits[p.range.clone()].iter().enumerate() {
                            recent.bytes += ev.bytes.len();
                            recent
                                .events
                                .push_back((seq + i as u64, Kept::Event(ev.bytes.clone())));
                        }
                    }
                }
            }
            while recent.bytes > RECENT_BYTES {
                let Some((_, k)) = recent.events.pop_front() else {
                    break;
                };
                recent.bytes -= k.bytes();
            }
        }
        self.visible.store(w.next_seq, Ordering::Release);
        count(&out);
        drop(w);
        self.notify();
        Ok(out)
    }

    /// Splits a write batch into pieces: windows of up to the output's `bulk_max_size`
    /// packed when they hold at least half of it (docs/disk-queue.md §11), the rest plain.
    /// A window that cannot be packed (its frames would pass a disk frame, the compressor
    /// failed) is written plain: packing is an optimisation, never a reason to refuse.
    fn pieces(&self, fits: &[&Event]) -> Vec<Piece> {
        let Some(pack) = &self.settings.pack else {
            return vec![Piece {
                range: 0..fits.len(),
                wire: None,
            }];
        };
        let max = pack.max_events.clamp(1, format::MAX_PACKED_EVENTS as usize);
        let min = pack.min_events().min(max);
        let mut pieces = Vec::with_capacity(fits.len().div_ceil(max));
        let mut packer = None;
        let mut start = 0;
        while start < fits.len() {
            let range = start..(start + max).min(fits.len());
            start = range.end;
            let wire = if range.len() >= min {
                let packer = packer.get_or_insert_with(|| self.take_packer(pack));
                self.pack_window(packer, &fits[range.clone()])
            } else {
                None
            };
            match (wire, pieces.last_mut()) {
                (
                    None,
                    Some(Piece {
                        range: last,
                        wire: None,
                    }),
                ) => last.end = range.end,
                (wire, _) => pieces.push(Piece { range, wire }),
            }
        }
        if let Some(p) = packer {
            lock(&self.packers).idle.push(p);
            self.packer_free.notify_one();
        }
        pieces
    }

    /// An idle packer, a new one while fewer than [`max_packers`] exist, or else the next
    /// one put back: the compressors' memory stays bounded however many inputs write at
    /// once (a Lumberjack receiver with many clients).
    fn take_packer(&self, pack: &PackSettings) -> Packer {
        let mut pool = lock(&self.packers);
        loop {
            if let Some(p) = pool.idle.pop() {
                return p;
            }
            if pool.made < max_packers() {
                pool.made += 1;
                drop(pool);
                return Packer {
                    compressor: (pack.compressor)(),
                    scratch: Vec::new(),
                    out: Vec::new(),
                };
            }
            pool = self
                .packer_free
                .wait(pool)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// `events` as one window, the bytes `output.logstash` would send for them.
    fn pack_window(&self, packer: &mut Packer, events: &[&Event]) -> Option<Bytes> {
        let content: usize = events
            .iter()
            .map(|e| e.bytes.len() + skidder_protocol::frame::JSON_HEADER_LEN)
            .sum();
        if content > packed::MAX_INFLATED {
            return None;
        }
        let Packer {
            compressor,
            scratch,
            out,
        } = packer;
        out.clear();
        let r = skidder_protocol::packed::encode_window_bytes(
            events.iter().map(|e| &e.bytes[..]),
            events.len() as u32,
            Some(&mut **compressor),
            scratch,
            out,
        );
        match r {
            Ok(())
                if format::packed_frame_len(out.len()) - format::FRAME_HEADER_LEN
                    <= format::MAX_PAYLOAD =>
            {
                Some(Bytes::copy_from_slice(out))
            }
            Ok(()) => None,
            Err(e) => {
                tracing::debug!(error = %e, "disk queue: a window could not be packed; written plain");
                None
            }
        }
    }

    fn write_durably(&self, w: &mut Writer, buf: &Frames<'_>, first: u64) -> Result<(), ()> {
        let mut backoff = self.settings.retry_interval;
        let mut last_error: Option<Instant> = None;
        loop {
            self.wait_for_space(buf.len)?;
            match self.try_write(w, buf, first) {
                Ok(()) => {
                    if last_error.is_some() {
                        tracing::info!(path = %self.dir.display(), "disk queue: writing again");
                    }
                    return Ok(());
                }
                Err((path, e)) => {
                    if last_error.is_none_or(|t| t.elapsed() >= self.settings.max_retry_interval) {
                        tracing::error!(path = %path.display(), error = %e, retry_in = ?backoff, "disk queue: cannot write; inputs wait, nothing queued is lost");
                        last_error = Some(Instant::now());
                    }
                    let until = Instant::now() + backoff;
                    while Instant::now() < until {
                        if self.stop.load(Ordering::Acquire) {
                            return Err(());
                        }
                        let seen = self.wake_seen();
                        self.nap(seen);
                    }
                    backoff = (backoff * 2).min(self.settings.max_retry_interval);
                }
            }
        }
    }

    fn wait_for_space(&self, len: u64) -> Result<(), ()> {
        let max = self.settings.max_size;
        let mut segs = lock(&self.segs);
        let mut logged = false;
        while max > 0 && segs.total + len > max && segs.list.len() > 1 {
            if self.stop.load(Ordering::Acquire) {
                self.metrics.disk_full.store(0, Ordering::Relaxed);
                self.full.store(false, Ordering::Release);
                return Err(());
            }
            if !logged {
                tracing::warn!(path = %self.dir.display(), max_size = max, "disk queue full: inputs wait until the output catches up");
                self.metrics.disk_full.store(1, Ordering::Relaxed);
                self.full.store(true, Ordering::Release);
                self.notify();
                logged = true;
            }
            segs = self
                .space
                .wait_timeout(segs, NAP)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if logged {
            self.metrics.disk_full.store(0, Ordering::Relaxed);
            self.full.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// One attempt; on failure the segment is cut back and closed (the next attempt opens a
    /// new one). The error names the file.
    fn try_write(
        &self,
        w: &mut Writer,
        buf: &Frames<'_>,
        first: u64,
    ) -> Result<(), (PathBuf, std::io::Error)> {
        if w.file.is_none() || w.size >= self.settings.segment_size {
            self.roll(w, first)?;
        }
        let path = lock(&self.segs)
            .list
            .back()
            .map(|s| s.path.clone())
            .unwrap_or_default();
        let sync = match self.settings.sync {
            SyncMode::Batch => true,
            SyncMode::Interval(i) => w.last_sync.elapsed() >= i,
            SyncMode::None => false,
        };
        let Writer {
            file: slot,
            buf: aligned,
            size,
            ..
        } = &mut *w;
        let Some(file) = slot.as_ref() else {
            return Err((path, std::io::Error::other("no open segment")));
        };
        let mut r = buf.write_at(file, aligned, *size);
        if r.as_ref().is_err_and(is_einval) && self.direct.swap(false, Ordering::AcqRel) {
            // O_DIRECT refused later than at the first write (a write cut short to an
            // unaligned length by RLIMIT_FSIZE, say): this segment and the next ones go
            // through the page cache, which reports the real cause if there is one.
            tracing::debug!(file = %path.display(), "disk queue: an O_DIRECT write was refused; segments go through the page cache");
            r = match OpenOptions::new().write(true).open(&path) {
                Ok(f) => {
                    let r = buf.write_at(&f, aligned, *size);
                    *slot = Some(f);
                    r
                }
                Err(e) => Err(e),
            };
        }
        if r.is_ok() && sync {
            if let Some(file) = slot.as_ref() {
                self.metrics.disk_fsyncs.fetch_add(1, Ordering::Relaxed);
                r = file.sync_data();
            }
        }
        if let Err(e) = r {
            // fsyncgate: after a failed write or fdatasync the page cache may have dropped
            // the data; cut back to the last good batch and write it again elsewhere.
            let size = w.size;
            if let Some(f) = w.file.take() {
                let _ = f.set_len(size);
            }
            return Err((path, e));
        }
        if sync {
            w.last_sync = Instant::now();
        }
        w.dirty = !sync;
        w.size += buf.len;
        let mut segs = lock(&self.segs);
        segs.total += buf.len;
        if let Some(s) = segs.list.back_mut() {
            s.size = w.size;
        }
        let total = segs.total;
        drop(segs);
        self.metrics.disk_bytes.store(total, Ordering::Relaxed);
        self.metrics
            .disk_bytes_written
            .fetch_add(buf.len, Ordering::Relaxed);
        let packed: usize = buf
            .pieces
            .iter()
            .filter(|p| p.wire.is_some())
            .map(|p| p.range.len())
            .sum();
        self.metrics
            .disk_events_packed
            .fetch_add(packed as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Closes the current segment (synced) and creates the next, starting at seq `first`.
    fn roll(&self, w: &mut Writer, first: u64) -> Result<(), (PathBuf, std::io::Error)> {
        if let Some(f) = w.file.take() {
            if self.settings.sync != SyncMode::None {
                if let Err(e) = self.sync_data(&f) {
                    let path = lock(&self.segs)
                        .list
                        .back()
                        .map(|s| s.path.clone())
                        .unwrap_or_default();
                    let _ = f.set_len(w.size);
                    return Err((path, e));
                }
            }
        }
        let id = w.next_id;
        w.next_id += 1;
        let path = self.dir.join(seg_name(id));
        let block = &mut w.buf.bytes_mut()[..BLOCK];
        block.fill(0);
        block[..HEADER_LEN].copy_from_slice(&format::encode_header(first));
        let created = self.create_segment(&path, block).and_then(|f| {
            if self.settings.sync != SyncMode::None {
                self.sync_data(&f)?;
            }
            Ok(f)
        });
        let f = match created {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err((path, e));
            }
        };
        self.sync_dir();
        w.file = Some(f);
        w.size = BLOCK as u64;
        let mut segs = lock(&self.segs);
        segs.total += BLOCK as u64;
        segs.list.push_back(SegInfo {
            id,
            first,
            path,
            size: BLOCK as u64,
        });
        Ok(())
    }

    /// Creates the segment file at `path` holding `header` (its first block), with `O_DIRECT`
    /// unless the file system refused it before or refuses it now (`EINVAL` at open or at
    /// this first write); then, and for every later segment, through the page cache.
    fn create_segment(&self, path: &Path, header: &[u8]) -> std::io::Result<File> {
        let create = |direct: bool| {
            let mut o = OpenOptions::new();
            o.write(true).create_new(true).mode(0o600);
            if direct {
                refused_direct("open")?;
                o.custom_flags(libc::O_DIRECT);
            }
            o.open(path)
        };
        let plain = || -> std::io::Result<File> {
            let f = create(false)?;
            f.write_all_at(header, 0)?;
            Ok(f)
        };
        let buffered = |why: &std::io::Error| -> std::io::Result<File> {
            self.direct.store(false, Ordering::Release);
            tracing::debug!(file = %path.display(), error = %why, "disk queue: the file system refuses O_DIRECT; segments go through the page cache");
            // Linux creates the file before it refuses the flag.
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            plain()
        };
        if !self.direct.load(Ordering::Acquire) {
            let f = plain()?;
            tracing::debug!(file = %path.display(), direct = false, "disk queue: segment created");
            return Ok(f);
        }
        let f = match create(true) {
            Ok(f) => f,
            Err(e) if is_einval(&e) => return buffered(&e),
            Err(e) => return Err(e),
        };
        match refused_direct("write").and_then(|()| f.write_all_at(header, 0)) {
            Ok(()) => {
                tracing::debug!(file = %path.display(), direct = true, "disk queue: segment created");
                Ok(f)
            }
            Err(e) if is_einval(&e) => {
                drop(f);
                buffered(&e)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes `acked` to the position record (synced as configured).
    fn record(&self, acked: u64) -> std::io::Result<()> {
        let mut p = lock(&self.position);
        let generation = p.generation + 1;
        let slot = format::encode_slot(Slot { generation, acked });
        let at = (generation % 2) * SLOT_LEN as u64;
        p.file.write_all_at(&slot, at)?;
        p.generation = generation;
        p.dirty = true;
        p.written = acked;
        let sync = match self.settings.sync {
            // Not per window: a process crash keeps the written record (page cache), and a
            // power cut re-sends at most POSITION_SYNC_EVENTS more (docs/disk-queue.md §4).
            SyncMode::Batch => {
                acked - p.synced >= POSITION_SYNC_EVENTS
                    || p.last_sync.elapsed() >= POSITION_SYNC_AFTER
                    || self.full.load(Ordering::Acquire)
            }
            SyncMode::Interval(i) => {
                p.last_sync.elapsed() >= i || self.full.load(Ordering::Acquire)
            }
            SyncMode::None => false,
        };
        if sync {
            self.sync_data(&p.file)?;
            p.last_sync = Instant::now();
            p.dirty = false;
            p.synced = acked;
        }
        Ok(())
    }

    /// The position segment deletion may rely on: with `sync: none` nothing is synced and
    /// nothing is promised on power loss, so the written one; otherwise the synced one, so a
    /// power cut never leaves a record pointing into a deleted segment.
    fn deletable(&self, recorded: u64) -> u64 {
        match self.settings.sync {
            SyncMode::None => recorded,
            _ => lock(&self.position).synced,
        }
    }

    /// Syncs what is due once its interval has passed since its last sync, also when no
    /// further write comes: with `interval` the segment and the position record, with
    /// `batch` the position record (POSITION_SYNC_AFTER).
    fn sync_due(&self) {
        let every = match self.settings.sync {
            SyncMode::Interval(every) => every,
            SyncMode::Batch => POSITION_SYNC_AFTER,
            SyncMode::None => return,
        };
        // With `batch` every segment write is synced already.
        if let Ok(mut w) = self.writer.try_lock() {
            if w.dirty && w.last_sync.elapsed() >= every {
                if let Some(f) = &w.file {
                    if let Err(e) = self.sync_data(f) {
                        // The next write fails the same way and is written again elsewhere.
                        tracing::error!(path = %self.dir.display(), error = %e, "disk queue: fdatasync failed");
                    }
                }
                w.dirty = false;
                w.last_sync = Instant::now();
            }
        }
        let mut p = lock(&self.position);
        if p.dirty && (p.last_sync.elapsed() >= every || self.full.load(Ordering::Acquire)) {
            if self.sync_data(&p.file).is_ok() {
                p.dirty = false;
                p.synced = p.written;
            }
            p.last_sync = Instant::now();
        }
    }

    /// Deletes the segments every event of which is below `acked` (the record is written).
    fn delete_settled(&self, acked: u64) {
        let mut deleted = false;
        loop {
            let mut segs = lock(&self.segs);
            let done = segs.list.len() >= 2 && segs.list[1].first <= acked;
            if !done {
                break;
            }
            let Some(s) = segs.list.pop_front() else {
                break;
            };
            segs.total = segs.total.saturating_sub(s.size);
            drop(segs);
            match std::fs::remove_file(&s.path) {
                Ok(()) => deleted = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Left behind: the next open deletes it (same rule).
                    tracing::warn!(file = %s.path.display(), error = %e, "disk queue: cannot delete an acknowledged segment");
                }
            }
        }
        if deleted {
            self.sync_dir();
            self.update_bytes();
            self.space.notify_all();
        }
    }

    fn acker_loop(&self) {
        let mut failing = false;
        loop {
            let seen = self.wake_seen();
            let settled = self.settled.load(Ordering::Acquire);
            let recorded = self.recorded.load(Ordering::Acquire);
            if settled > recorded {
                match self.record(settled) {
                    Ok(()) => {
                        failing = false;
                        self.recorded.store(settled, Ordering::Release);
                        self.notify();
                        self.delete_settled(self.deletable(settled));
                    }
                    Err(e) => {
                        if !failing {
                            tracing::error!(file = %self.dir.join("position").display(), error = %e, "disk queue: cannot record the acknowledged position; reading pauses (nothing is lost)");
                        }
                        failing = true;
                        self.nap(seen);
                    }
                }
                continue;
            }
            self.sync_due();
            if self.settings.sync != SyncMode::None {
                self.delete_settled(self.deletable(recorded));
            }
            if self.closing.load(Ordering::Acquire) {
                let mut p = lock(&self.position);
                if p.dirty {
                    match self.sync_data(&p.file) {
                        Ok(()) => p.synced = p.written,
                        Err(e) => {
                            tracing::warn!(error = %e, "disk queue: final sync of the position record failed");
                        }
                    }
                    p.dirty = false;
                }
                drop(p);
                // What the final sync proves settled goes now, not at the next start.
                self.delete_settled(self.deletable(recorded));
                return;
            }
            self.nap(seen);
        }
    }

    fn report_lost(&self, file: &Path, offset: u64, lost: u64) {
        if lost == 0 {
            return;
        }
        self.metrics
            .disk_events_lost
            .fetch_add(lost, Ordering::Relaxed);
        tracing::error!(file = %file.display(), offset, events_lost = lost, "disk queue: damaged data skipped; these events are lost");
    }

    fn reader_loop(&self, shared: &Weak<Shared>) {
        let mut next = self.start;
        let mut cur: Option<(SegInfo, SegReader, FrameReader, bool)> = None;
        let pool = Arc::new(ReadPool::default());
        let mut chunk: Vec<Loaded> = Vec::with_capacity(READ_CHUNK);
        loop {
            if self.closing.load(Ordering::Acquire) {
                return;
            }
            let seen = self.wake_seen();
            let limit = self
                .recorded
                .load(Ordering::Acquire)
                .saturating_add(self.window.load(Ordering::Acquire));
            let target = self.visible().min(limit);
            if next >= target {
                self.nap(seen);
                continue;
            }
            let mut stalled = false;
            self.take_recent(&mut chunk, &mut next, target);
            // Read after `target`: a segment holding frames below it is already listed.
            let mut later_of: Option<(u64, Option<u64>)> = None;
            while chunk.len() < READ_CHUNK && next < target && !stalled {
                let later = match &cur {
                    Some((s, ..)) => match later_of {
                        Some((id, l)) if id == s.id => l,
                        _ => {
                            let segs = lock(&self.segs);
                            let l = segs.list.iter().find(|x| x.id > s.id).map(|x| x.first);
                            later_of = Some((s.id, l));
                            l
                        }
                    },
                    None => None,
                };
                let Some((seg, file, fr, at_eof)) = cur.as_mut() else {
                    match self.open_for(next) {
                        Some((seg, file, gap_from)) => {
                            if let Some(from) = gap_from {
                                self.report_lost(&seg.path, 0, seg.first - from);
                                next = seg.first;
                            }
                            let fr = FrameReader::new(seg.first);
                            cur = Some((seg, file, fr, false));
                        }
                        None => stalled = true,
                    }
                    continue;
                };
                let eof = *at_eof && later.is_some();
                match fr.next(eof) {
                    Step::NeedMore => match file.read_into(fr, &pool) {
                        Ok(0) => {
                            if later.is_some() {
                                *at_eof = true;
                            } else {
                                stalled = true;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(file = %seg.path.display(), error = %e, "disk queue: cannot read a segment; trying again");
                            stalled = true;
                        }
                    },
                    Step::Frame { seq, payload, .. } => {
                        if later.is_some_and(|l| seq >= l) {
                            // Bytes a failed write left past the segment's real end.
                            cur = None;
                        } else if seq >= next {
                            chunk.push((seq, payload, None));
                            next = seq + 1;
                        }
                    }
                    Step::Packed {
                        seq, count, wire, ..
                    } => {
                        if later.is_some_and(|l| seq >= l) {
                            cur = None;
                        } else if seq + u64::from(count) > next {
                            // Read because `next` is below `target`: the window's first
                            // event is within the bound, and it goes whole (`take_recent`).
                            let window = PackedWindow::new(wire, count);
                            load_window(&mut chunk, &mut next, seq, window);
                        }
                    }
                    Step::Damaged { offset, .. } => {
                        let resume = fr.expected();
                        if resume > next {
                            self.report_lost(&seg.path, offset, resume - next);
                            next = resume;
                        }
                    }
                    Step::Tail { offset } | Step::End { offset } => {
                        if let Some(l) = later {
                            if l > next {
                                self.report_lost(&seg.path, offset, l - next);
                                next = l;
                            }
                            cur = None;
                        } else {
                            stalled = true;
                        }
                    }
                }
            }
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let caught_up = stalled || next >= target;
            shared.push_from_disk(&mut chunk, next, caught_up);
            drop(shared);
            if stalled {
                self.nap(seen);
            }
        }
    }

    /// Takes events `next..target` from the just-written ones while they are there; what is
    /// not (older, forgotten) is read from the segments.
    /// A packed window is taken whole or not at all.
    fn take_recent(&self, chunk: &mut Vec<Loaded>, next: &mut u64, target: u64) {
        let mut recent = lock(&self.recent);
        while let Some((seq, k)) = recent.events.pop_front() {
            if seq + k.count() <= *next {
                recent.bytes -= k.bytes();
                continue;
            }
            // A window goes once its first event is below `target`, so the rest of it may
            // pass the bound by up to `bulk_max_size − 1` events (docs/disk-queue.md §1):
            // waiting until all of it fits would leave one window in flight where the output
            // pipelines two (`pipelining: 2`, read_ahead 512, bulk_max_size 2048).
            if seq > *next || seq >= target || chunk.len() >= READ_CHUNK {
                recent.events.push_front((seq, k));
                return;
            }
            recent.bytes -= k.bytes();
            match k {
                Kept::Event(b) => {
                    chunk.push((seq, b, None));
                    *next = seq + 1;
                }
                Kept::Window(w, _) => load_window(chunk, next, seq, w),
            }
        }
    }

    /// The segment holding `seq` (or the first after it, with the seq the gap starts at),
    /// opened and positioned after its header.
    fn open_for(&self, seq: u64) -> Option<(SegInfo, SegReader, Option<u64>)> {
        let seg = {
            let segs = lock(&self.segs);
            let holding = segs.list.iter().rev().find(|s| s.first <= seq).cloned();
            holding.or_else(|| segs.list.front().cloned())?
        };
        let file = match SegReader::open(&seg.path, self.direct.load(Ordering::Acquire)) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(file = %seg.path.display(), error = %e, "disk queue: cannot open a segment; trying again");
                return None;
            }
        };
        let gap = (seg.first > seq).then_some(seq);
        Some((seg, file, gap))
    }

    /// Events on disk not yet settled.
    pub(crate) fn unsettled(&self) -> u64 {
        self.visible()
            .saturating_sub(self.settled.load(Ordering::Acquire))
    }

    /// The queue directory.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Asks the threads to end without waiting for them (the queue was dropped).
    pub(crate) fn request_close(&self) {
        self.stop.store(true, Ordering::Release);
        self.closing.store(true, Ordering::Release);
        self.space.notify_all();
        self.notify();
    }

    /// Stops the threads, records the final position and syncs what `sync` left unsynced.
    pub(crate) fn close(&self) {
        self.stop_inputs();
        self.closing.store(true, Ordering::Release);
        self.notify();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
        let w = lock(&self.writer);
        if let Some(f) = &w.file {
            if self.settings.sync != SyncMode::Batch {
                if let Err(e) = self.sync_data(f) {
                    tracing::error!(path = %self.dir.display(), error = %e, "disk queue: final sync failed");
                }
            }
        }
    }
}

/// Lists `<20 digits>.seg` files in `dir` by id, reading each header; a segment whose header
/// is damaged is set aside as `<name>.bad` (reported). Returns the list and the largest id.
/// Hands over the events of a packed window from `next` on (all of them, unless a restart
/// resumes inside the window): each refers to the window, which keeps the stored bytes.
fn load_window(chunk: &mut Vec<Loaded>, next: &mut u64, seq: u64, window: Arc<PackedWindow>) {
    let count = window.count();
    let from = next.saturating_sub(seq).min(u64::from(count)) as u32;
    for index in from..count {
        chunk.push((
            seq + u64::from(index),
            Bytes::new(),
            Some(Packed {
                window: Arc::clone(&window),
                index,
            }),
        ));
    }
    *next = (*next).max(seq + u64::from(count));
}

fn scan_segments(dir: &Path) -> Result<(Segs, u64), DiskError> {
    let mut found: Vec<(u64, PathBuf, u64)> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
    for e in entries {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".seg") else {
            continue;
        };
        let Ok(id) = stem.parse::<u64>() else {
            continue;
        };
        let size = e.metadata().map_err(io_err(&e.path()))?.len();
        found.push((id, e.path(), size));
    }
    found.sort();
    let max_id = found.last().map_or(0, |f| f.0);
    let mut segs = Segs::default();
    let count = found.len();
    for (i, (id, path, size)) in found.into_iter().enumerate() {
        let mut head = [0u8; HEADER_LEN];
        let read = File::open(&path)
            .and_then(|mut f| f.read(&mut head))
            .map_err(io_err(&path))?;
        match format::decode_header(&head[..read]) {
            Ok(first) => {
                segs.total += size;
                segs.list.push_back(SegInfo {
                    id,
                    first,
                    path,
                    size,
                });
            }
            Err(source @ HeaderError::UnknownVersion { .. }) => {
                return Err(DiskError::Version { path, source });
            }
            Err(_) if i + 1 == count && size <= BLOCK as u64 => {
                // A crash while the segment was being created: it holds no frame.
                std::fs::remove_file(&path).map_err(io_err(&path))?;
            }
            Err(_) => {
                let bad = path.with_extension("seg.bad");
                tracing::error!(file = %path.display(), offset = 0, set_aside = %bad.display(), "disk queue: segment header damaged; its events are reported lost when the reader reaches them");
                std::fs::rename(&path, &bad).map_err(io_err(&path))?;
            }
        }
    }
    Ok((segs, max_id))
}

/// Scans the last segment: the seq after its last good frame and where the good bytes end
/// (the last frame's end; the file's size when only padding follows it).
fn scan_last(seg: &SegInfo) -> Result<(u64, u64), DiskError> {
    let mut file = SegReader::open(&seg.path, true).map_err(io_err(&seg.path))?;
    let pool = Arc::new(ReadPool::default());
    let mut fr = FrameReader::new(seg.first);
    let mut eof = false;
    let mut end = (seg.first, HEADER_LEN as u64);
    loop {
        match fr.next(eof) {
            Step::NeedMore => {
                let n = file.read_into(&mut fr, &pool).map_err(io_err(&seg.path))?;
                eof = n == 0;
            }
            Step::Frame { seq, .. } => end = (seq + 1, fr.offset()),
            Step::Packed { seq, count, .. } => {
                end = (seq.saturating_add(u64::from(count)), fr.offset());
            }
            Step::Damaged { .. } => {}
            Step::End { .. } => return Ok((end.0, seg.size)),
            Step::Tail { .. } => return Ok(end),
        }
    }
}

#[cfg(test)]
mod tests;
