//! The filestream registry: where each file's reading resumes, advanced only by in-order
//! acknowledgements. The on-disk format, the atomic write and what a crash leaves are in
//! `docs/registry.md`; this module is its only reader and writer.
//!
//! ```text
//!  reader ──mark(seq, file, offset)──▶ Tracker ◀──settled(n)── queue (publish order)
//!                                         │ offsets of files whose marks ≤ n settled
//!                                         ▼
//!                    <id>.json.new ─fsync─rename─▶ <id>.json ─fsync dir
//! ```

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The only format version this build reads and writes.
pub const VERSION: u32 = 1;

/// Why the registry cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A file or directory of the registry could not be created, read or written.
    #[error("registry {}: {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process (or another input with the same id) holds the lock.
    #[error("registry {} is locked by another skidder process (or another input with the same id)", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The state file does not parse; it is left as it is.
    #[error("registry {} is not a valid registry file ({reason}); move it aside to read every file from the start", path.display())]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
}

/// One remembered file, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The file's identity (`native::<inode>-<device>`, …).
    pub key: String,
    /// The `file_identity` kind that made `key`.
    pub identity: String,
    /// The path the file was last seen at.
    pub source: String,
    /// Where reading resumes: just after the last acknowledged line.
    pub offset: u64,
    /// When `offset` last moved, Unix milliseconds.
    pub updated_ms: u64,
}

/// The stored document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// [`VERSION`].
    pub version: u32,
    /// The input's id.
    pub input_id: String,
    /// The remembered files.
    pub entries: Vec<Entry>,
}

/// Parses a state file's bytes.
///
/// # Errors
/// The reason, when the bytes are not a version-1 registry of `input_id`.
pub fn parse(bytes: &[u8], input_id: &str) -> Result<Vec<Entry>, String> {
    let doc: StateFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if doc.version != VERSION {
        return Err(format!(
            "version {} is not {VERSION}, the one this skidder knows",
            doc.version
        ));
    }
    if doc.input_id != input_id {
        return Err(format!(
            "it belongs to input id {:?}, not {input_id:?}",
            doc.input_id
        ));
    }
    Ok(doc.entries)
}

/// An input id as a file name: bytes outside `[A-Za-z0-9._-]` become `%XX`.
pub fn file_stem(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && !out.is_empty()) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The locked, open registry of one input.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
    input_id: String,
    /// Held for the process's life: the flock goes with the descriptor.
    _lock: File,
}

impl Store {
    /// Opens (creating the directory) and locks the registry of `input_id` under `data`,
    /// and returns it with its stored entries.
    ///
    /// # Errors
    /// [`RegistryError`] when the directory cannot be made, the lock is held, or the state
    /// file cannot be read or does not parse.
    pub fn open(data: &Path, input_id: &str) -> Result<(Self, Vec<Entry>), RegistryError> {
        let dir = data.join("registry").join("filestream");
        let io = |path: &Path, action: &'static str| {
            let path = path.to_path_buf();
            move |source| RegistryError::Io {
                path,
                action,
                source,
            }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir, "cannot create the directory"))?;
        let stem = file_stem(input_id);
        let lock_path = dir.join(format!("{stem}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(&lock_path, "cannot open the lock file"))?;
        // SAFETY: flock on a descriptor we own; no memory is shared with the kernel.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(RegistryError::Locked { path: lock_path });
            }
            return Err(RegistryError::Io {
                path: lock_path,
                action: "cannot lock",
                source: err,
            });
        }
        let path = dir.join(format!("{stem}.json"));
        let tmp = dir.join(format!("{stem}.json.new"));
        // A partial write of a crashed run; the complete state is in `path`.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {
                tracing::info!(file = %tmp.display(), "removed an unfinished registry write of an earlier run")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(RegistryError::Io {
                    path: tmp,
                    action: "cannot remove",
                    source: e,
                })
            }
        }
        let entries = match std::fs::read(&path) {
            Ok(bytes) => parse(&bytes, input_id).map_err(|reason| RegistryError::Corrupt {
                path: path.clone(),
                reason,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(RegistryError::Io {
                    path,
                    action: "cannot read",
                    source: e,
                })
            }
        };
        Ok((
            Self {
                dir,
                path,
                tmp,
                input_id: input_id.to_string(),
                _lock: lock,
            },
            entries,
        ))
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the stored state with `entries`: temp file, fsync, rename, fsync directory.
    ///
    /// # Errors
    /// [`RegistryError::Io`]; the previous state file is then still whole.
    pub fn write(&self, entries: Vec<Entry>) -> Result<(), RegistryError> {
        let doc = StateFile {
            version: VERSION,
            input_id: self.input_id.clone(),
            entries,
        };
        // A struct of strings and integers always serializes.
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        let io = |path: &Path, action: &'static str| {
            let path = path.to_path_buf();
            move |source| RegistryError::Io {
                path,
                action,
                source,
            }
        };
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&self.tmp)
            .map_err(io(&self.tmp, "cannot create"))?;
        f.write_all(&bytes).map_err(io(&self.tmp, "cannot write"))?;
        f.sync_all().map_err(io(&self.tmp, "cannot fsync"))?;
        drop(f);
        std::fs::rename(&self.tmp, &self.path).map_err(io(&self.path, "cannot rename onto"))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir, "cannot fsync the directory"))
    }
}

/// One file the tracker knows: its stored entry and what is pending for it.
#[derive(Debug, Clone)]
struct Tracked {
    entry: Entry,
    /// Bumped by a reset (truncation): marks of an older generation are ignored.
    generation: u32,
    /// Marks not yet settled.
    pending: usize,
    /// Where the last reader of this file stopped (in memory only): a file closed with
    /// events in flight is reopened after them, not at the acknowledged offset, so closing
    /// and reopening (harvester_limit, close.*) sends nothing twice.
    cursor: Option<u64>,
}

/// A published event's place: the input's publish count after it, its file and the offset
/// just after its last line.
#[derive(Debug, Clone, Copy)]
struct Mark {
    seq: u64,
    slot: u32,
    generation: u32,
    offset: u64,
}

/// Offsets per file, advanced only by settled marks, in publish order.
#[derive(Debug, Default)]
pub struct Tracker {
    slots: Vec<Option<Tracked>>,
    by_key: HashMap<String, u32>,
    marks: VecDeque<Mark>,
    /// Events published so far by this input (the seq of the next mark).
    published: u64,
    /// Settled count last applied.
    settled: u64,
    /// Something changed since the last write.
    dirty: bool,
}

/// A handle on a tracked file, for marking its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(u32);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Tracker {
    /// A tracker starting from the stored entries.
    pub fn new(entries: Vec<Entry>) -> Self {
        let mut t = Self::default();
        for e in entries {
            let key = e.key.clone();
            let slot = t.slots.len() as u32;
            t.slots.push(Some(Tracked {
                entry: e,
                generation: 0,
                pending: 0,
                cursor: None,
            }));
            t.by_key.insert(key, slot);
        }
        t
    }

    /// The stored entry of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        let slot = *self.by_key.get(key)?;
        self.slots[slot as usize].as_ref().map(|t| &t.entry)
    }

    /// Every entry (for migration and cleaning decisions).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().flatten().map(|t| &t.entry)
    }

    /// Starts tracking `key` (or returns its slot), recording where it is now seen.
    pub fn track(&mut self, key: &str, identity: &str, source: &str, offset: u64) -> Slot {
        if let Some(&slot) = self.by_key.get(key) {
            if let Some(t) = self.slots[slot as usize].as_mut() {
                if t.entry.source != source {
                    t.entry.source = source.to_string();
                    self.dirty = true;
                }
            }
            return Slot(slot);
        }
        let tracked = Tracked {
            entry: Entry {
                key: key.to_string(),
                identity: identity.to_string(),
                source: source.to_string(),
                offset,
                updated_ms: now_ms(),
            },
            generation: 0,
            pending: 0,
            cursor: None,
        };
        let slot = match self.slots.iter().position(Option::is_none) {
            Some(free) => {
                self.slots[free] = Some(tracked);
                free as u32
            }
            None => {
                self.slots.push(Some(tracked));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_key.insert(key.to_string(), slot);
        self.dirty = true;
        Slot(slot)
    }

    /// The acknowledged offset of a tracked file.
    pub fn offset(&self, slot: Slot) -> u64 {
        self.slots[slot.0 as usize]
            .as_ref()
            .map_or(0, |t| t.entry.offset)
    }

    /// Sets a file's offset at once, without waiting for acknowledgements (truncation → 0,
    /// an ignored file → its size, a copytruncate copy → the original's offset); marks
    /// already pending for it are ignored when they settle.
    pub fn reset(&mut self, slot: Slot, offset: u64) {
        if let Some(t) = self.slots[slot.0 as usize].as_mut() {
            t.generation = t.generation.wrapping_add(1);
            t.cursor = None;
            t.entry.offset = offset;
            t.entry.updated_ms = now_ms();
            self.dirty = true;
        }
    }

    /// Records where the reader of `slot` stopped when it closed the file: every line before
    /// `offset` was published (or filtered).
    pub fn park(&mut self, slot: Slot, offset: u64) {
        if let Some(t) = self.slots[slot.0 as usize].as_mut() {
            t.cursor = Some(offset);
        }
    }

    /// Where reading of `slot` resumes in this process: after what an earlier reader
    /// published, or at the acknowledged offset.
    pub fn resume(&self, slot: Slot) -> u64 {
        self.slots[slot.0 as usize].as_ref().map_or(0, |t| {
            t.cursor.map_or(t.entry.offset, |c| c.max(t.entry.offset))
        })
    }

    /// Records that the next published event ends at `offset` of `slot`.
    pub fn mark(&mut self, slot: Slot, offset: u64) {
        self.published += 1;
        let Some(t) = self.slots[slot.0 as usize].as_mut() else {
            return;
        };
        t.pending += 1;
        self.marks.push_back(Mark {
            seq: self.published,
            slot: slot.0,
            generation: t.generation,
            offset,
        });
    }

    /// Events marked so far.
    pub fn published(&self) -> u64 {
        self.published
    }

    /// Applies the queue's count of settled events of this input: every mark up to it moves
    /// its file's offset. Returns true when an offset moved.
    pub fn settle(&mut self, settled: u64) -> bool {
        // Marks can come in after the count that covers them (the reader hands its marks
        // over in turns, and the end-of-run write may settle first): the same count applied
        // again still moves them.
        let settled = settled.max(self.settled);
        if self.marks.front().is_none_or(|m| m.seq > settled) {
            self.settled = settled;
            return false;
        }
        self.settled = settled;
        let mut moved = false;
        let now = now_ms();
        while self.marks.front().is_some_and(|m| m.seq <= settled) {
            let Some(m) = self.marks.pop_front() else {
                break;
            };
            if let Some(t) = self.slots[m.slot as usize].as_mut() {
                t.pending = t.pending.saturating_sub(1);
                if t.generation == m.generation && m.offset > t.entry.offset {
                    t.entry.offset = m.offset;
                    t.entry.updated_ms = now;
                    moved = true;
                }
            }
        }
        self.dirty |= moved;
        moved
    }

    /// Marks not yet settled, over all files.
    pub fn pending(&self) -> usize {
        self.marks.len()
    }

    /// Forgets `key` unless events of it are still pending; true when it was forgotten.
    pub fn forget(&mut self, key: &str) -> bool {
        let Some(&slot) = self.by_key.get(key) else {
            return true;
        };
        if self.slots[slot as usize]
            .as_ref()
            .is_some_and(|t| t.pending > 0)
        {
            return false;
        }
        self.slots[slot as usize] = None;
        self.by_key.remove(key);
        self.dirty = true;
        true
    }

    /// Asks for the next write (the last one failed).
    pub fn set_dirty(&mut self) {
        self.dirty = true;
    }

    /// True when something changed since [`Self::take_snapshot`].
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The entries to store, clearing the dirty flag.
    pub fn take_snapshot(&mut self) -> Vec<Entry> {
        self.dirty = false;
        let mut out: Vec<Entry> = self.entries().cloned().collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offsets_move_only_when_every_earlier_event_settled() {
        let mut t = Tracker::new(Vec::new());
        let a = t.track("native::1-1", "native", "/a", 0);
        let b = t.track("native::2-1", "native", "/b", 0);
        t.mark(a, 10);
        t.mark(b, 5);
        t.mark(a, 20);
        assert!(!t.settle(0));
        assert!(t.settle(1));
        assert_eq!((t.offset(a), t.offset(b)), (10, 0));
        t.settle(3);
        assert_eq!((t.offset(a), t.offset(b)), (20, 5));
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_reset_ignores_marks_of_the_old_generation() {
        let mut t = Tracker::new(Vec::new());
        let a = t.track("k", "native", "/a", 0);
        t.mark(a, 100);
        t.reset(a, 0);
        t.mark(a, 7);
        t.settle(1);
        assert_eq!(
            t.offset(a),
            0,
            "an ACK of the truncated generation moved the offset"
        );
        t.settle(2);
        assert_eq!(t.offset(a), 7);
    }

    #[test]
    fn marks_handed_over_after_their_settled_count_still_move_the_offset() {
        // The reader hands its marks over in turns: the end-of-run write may apply a count
        // before the marks it covers are in; the next settle with the same count moves them.
        let mut t = Tracker::new(Vec::new());
        let a = t.track("k", "native", "/a", 0);
        t.mark(a, 10);
        assert!(t.settle(2));
        assert_eq!(t.offset(a), 10);
        t.mark(a, 20);
        assert!(
            t.settle(2),
            "the late mark was covered by the count already seen"
        );
        assert_eq!(t.offset(a), 20);
        assert!(!t.settle(1), "a count never goes back");
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_closed_file_resumes_after_what_it_published_until_a_reset() {
        let mut t = Tracker::new(Vec::new());
        let a = t.track("k", "native", "/a", 0);
        t.mark(a, 10);
        t.park(a, 12);
        assert_eq!(
            t.resume(a),
            12,
            "reopened at the ACKed offset: in-flight lines resent"
        );
        assert_eq!(t.offset(a), 0);
        t.settle(1);
        assert_eq!((t.offset(a), t.resume(a)), (10, 12));
        t.reset(a, 0);
        assert_eq!(t.resume(a), 0);
    }

    #[test]
    fn a_file_with_pending_events_is_not_forgotten() {
        let mut t = Tracker::new(Vec::new());
        let a = t.track("k", "native", "/a", 0);
        t.mark(a, 1);
        assert!(!t.forget("k"));
        t.settle(1);
        assert!(t.forget("k"));
        assert!(t.get("k").is_none());
    }

    #[test]
    fn store_round_trips_locks_and_refuses_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let (store, entries) = Store::open(dir.path(), "app/logs").unwrap();
        assert!(entries.is_empty());
        assert!(store
            .path()
            .ends_with("registry/filestream/app%2Flogs.json"));
        let e = Entry {
            key: "native::1-2".into(),
            identity: "native".into(),
            source: "/x".into(),
            offset: 42,
            updated_ms: 7,
        };
        store.write(vec![e.clone()]).unwrap();
        assert!(matches!(
            Store::open(dir.path(), "app/logs"),
            Err(RegistryError::Locked { .. })
        ));
        let path = store.path().to_path_buf();
        drop(store);
        let (_store, entries) = Store::open(dir.path(), "app/logs").unwrap();
        assert_eq!(entries, vec![e]);
        drop(_store);
        std::fs::write(&path, b"{\"version\":1,\"input_id\":\"app/lo").unwrap();
        let err = Store::open(dir.path(), "app/logs").unwrap_err();
        assert!(matches!(err, RegistryError::Corrupt { .. }), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"{\"version\":1,\"input_id\":\"app/lo",
            "a corrupt registry must be left for the user"
        );
    }

    #[test]
    fn a_leftover_partial_write_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), "x").unwrap();
        store.write(Vec::new()).unwrap();
        let tmp = store.path().with_extension("json.new");
        drop(store);
        std::fs::write(&tmp, b"{\"vers").unwrap();
        let (_store, entries) = Store::open(dir.path(), "x").unwrap();
        assert!(entries.is_empty());
        assert!(!tmp.exists());
    }

    proptest! {
        /// The registry reader never panics, and accepts exactly what it wrote.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes, "x");
        }

        #[test]
        fn parse_reads_back_what_was_written(
            offsets in proptest::collection::vec(any::<u64>(), 0..20),
            source in ".{0,40}",
        ) {
            let entries: Vec<Entry> = offsets.iter().enumerate().map(|(i, &o)| Entry {
                key: format!("native::{i}-1"),
                identity: "native".into(),
                source: source.clone(),
                offset: o,
                updated_ms: o / 3,
            }).collect();
            let doc = StateFile { version: VERSION, input_id: "id".into(), entries: entries.clone() };
            let bytes = serde_json::to_vec(&doc).unwrap();
            prop_assert_eq!(parse(&bytes, "id").unwrap(), entries);
            prop_assert!(parse(&bytes, "other").is_err());
        }

        /// However settlements interleave, each file's offset is the largest marked offset
        /// whose mark and every earlier mark settled.
        #[test]
        fn settle_is_in_order(
            events in proptest::collection::vec((0u32..3, 1u64..100), 0..60),
            cut in 0usize..61,
        ) {
            let mut t = Tracker::new(Vec::new());
            let slots: Vec<Slot> = (0..3).map(|i| t.track(&format!("k{i}"), "native", "/p", 0)).collect();
            let mut offs = [0u64; 3];
            let mut expect = [0u64; 3];
            for (n, (f, step)) in events.iter().enumerate() {
                offs[*f as usize] += step;
                t.mark(slots[*f as usize], offs[*f as usize]);
                if n < cut { expect[*f as usize] = offs[*f as usize]; }
            }
            t.settle(cut.min(events.len()) as u64);
            for i in 0..3 { prop_assert_eq!(t.offset(slots[i]), expect[i]); }
        }
    }
}
