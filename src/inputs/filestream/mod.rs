//! `type: filestream`: tails log files like Filebeat's filestream input, with a registry
//! advanced only by in-order acknowledgements (`docs/registry.md`).
//!
//! ```text
//!  scanner (every check_interval) ──found files──▶ reader thread (one per input)
//!                                                    │ per open file: read → split lines
//!                                                    │ → parsers → include/exclude → event
//!                                                    ▼
//!            Tracker.mark(file, offset) ◀── publish ──▶ queue ──▶ output
//!            Tracker.settle(n) ◀──────── settled count, publish order ◀──┘
//!            registry write (≤ every 250 ms, and at the end of the run)
//! ```
//!
//! One thread reads every file of an input, in turns of at most [`TURN_BYTES`]: the order
//! events are published in is then the order the queue acknowledges them in, which is what
//! lets a single counter move every file's offset (see [`registry::Tracker`]). Descriptors
//! are open only for files with unread bytes, at most `harvester_limit` at once; a file is
//! closed when it is inactive, removed, renamed (if asked) or out of the globs, after it was
//! read to its end. A slow output blocks `publish`, so reading pauses and memory stays
//! bounded by the queue.
//!
//! # Where the CPU goes (issue 15's NDJSON target)
//! `perf record -g` of `run --once` over 1,000,000 NDJSON lines (the bench file) into
//! `output.discard`: the reader thread takes 98 % of the samples, and into go-lumber over
//! mTLS 86 % (compression and TLS the rest). Before this layout, allocation was ~19 % of
//! the samples (an owned copy of every line, then of its text, the ndjson text again, a
//! `String` per key, a `Vec` per parser step, the offset as a `String`), the lossy UTF-8
//! check 7 %, serde's scan of the line ~20 %, the merge of a line's own `host` with the
//! built-in one ~10 %, key escaping 4 %, and one registry lock per event. Now lines are
//! slices of the read buffer (`Spans`), a message's text, decoding and key strings are
//! recycled by its [`Chain`] once shipped, valid UTF-8 is checked by the fast validator,
//! and the registry marks are taken under one lock per read turn. What is left is mostly
//! serde's scan, the `host` merge (`CommonFields::merge_own`) and encoding.

pub mod parsers;
pub mod reader;
pub mod registry;
pub mod scanner;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use regex::Regex;

use super::{CommonFields, InputError, InputIndex};
use crate::config::filestream::{FilestreamInputConfig, IgnoreInactive, ParserConfig};
use crate::event::{write_json, EventEncoder, EventMeta};
use crate::pipeline::{InputMetrics, Publisher};
use parsers::{deep_merge, Chain, Decoded, Msg};
use reader::{decode, encoding_for, LineSplitter, RawLine};
use registry::{Slot, Store, Tracker};
use scanner::{Found, Identity, Scanner};

/// Bytes read from one file before the reader turns to the next.
pub const TURN_BYTES: usize = 1 << 20;
/// Shortest time between two registry writes while running.
pub const REGISTRY_FLUSH: Duration = Duration::from_millis(250);

/// A validated filestream input.
#[derive(Debug)]
pub struct FilestreamInput {
    id: String,
    cfg: FilestreamInputConfig,
    encoding: &'static encoding_rs::Encoding,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    copytruncate: Option<Regex>,
    scanner: Scanner,
    common: CommonFields,
    data_dir: Option<PathBuf>,
    once: bool,
    /// `first_start` of `meta.json` (`ignore_inactive: since_first_start`).
    first_start: Option<SystemTime>,
    /// When this input was built: this process's start (`since_last_start`).
    started: SystemTime,
    /// `type: log`'s `tail_files`: at the first scan, files without a stored offset start at
    /// their end.
    tail_files: bool,
    /// `type: log` with `json.*`: the log input's JSON layout.
    log_json: Option<super::log::LogJson>,
}

/// Checks a filestream configuration; every problem as `(key, reason)`.
pub fn check(id: Option<&str>, c: &FilestreamInputConfig) -> Vec<(String, String)> {
    match build(id, c, CommonFields::default()) {
        Ok(_) => Vec::new(),
        Err(p) => p,
    }
}

fn regexes(key: &str, list: &[String], out: &mut Vec<(String, String)>) -> Vec<Regex> {
    let mut res = Vec::new();
    for (i, r) in list.iter().enumerate() {
        match Regex::new(r) {
            Ok(r) => res.push(r),
            Err(e) => out.push((format!("{key}.{i}"), format!("not a valid regexp: {e}"))),
        }
    }
    res
}

fn build(
    id: Option<&str>,
    c: &FilestreamInputConfig,
    common: CommonFields,
) -> Result<FilestreamInput, Vec<(String, String)>> {
    let mut p = Vec::new();
    let id = match id {
        Some(id) if !id.is_empty() && id != ".global" => id.to_string(),
        _ => {
            // Filebeat tolerates an empty id and then mixes inputs' states; the registry
            // is per input here, so an id is required.
            p.push((
                "id".to_string(),
                "required for filestream: a unique name that keys its registry".to_string(),
            ));
            String::new()
        }
    };
    if c.paths.is_empty() {
        p.push(("paths".into(), "no path is configured".into()));
    }
    for (i, g) in c.paths.iter().enumerate() {
        if let Err(e) = glob::Pattern::new(g) {
            p.push((format!("paths.{i}"), format!("not a valid glob: {e}")));
        }
    }
    if c.message_max_bytes == 0 {
        p.push(("message_max_bytes".into(), "must be at least 1".into()));
    }
    if c.buffer_size == 0 {
        p.push(("buffer_size".into(), "must be at least 1".into()));
    }
    if c.prospector.scanner.check_interval.get().is_zero() {
        p.push((
            "prospector.scanner.check_interval".into(),
            "must be longer than 0s".into(),
        ));
    }
    for (key, d) in [
        ("backoff.init", c.backoff.init.get()),
        ("backoff.max", c.backoff.max.get()),
        (
            "close.on_state_change.check_interval",
            c.close.on_state_change.check_interval.get(),
        ),
    ] {
        if d.is_zero() {
            p.push((key.into(), "must be longer than 0s".into()));
        }
    }
    let clean = c.clean_inactive.get();
    if !clean.is_zero() {
        // Filebeat's rule (log input): an entry is forgotten only once its file is one
        // `ignore_older` skips, or the next scan would read the whole file again.
        let older = c.ignore_older.get();
        let interval = c.prospector.scanner.check_interval.get();
        if older.is_zero() {
            p.push((
                "clean_inactive".into(),
                "needs ignore_older: a forgotten file that is not ignored is read again from its start".into(),
            ));
        } else if clean <= older + interval {
            p.push((
                "clean_inactive".into(),
                format!(
                    "must be longer than ignore_older + prospector.scanner.check_interval ({})",
                    crate::config::units::Duration::from(older + interval)
                ),
            ));
        }
    }
    let encoding = match encoding_for(&c.encoding) {
        Some(e) => e,
        None => {
            p.push((
                "encoding".into(),
                format!("unknown encoding {:?} (utf-8, utf-16le, utf-16be, latin1, shift_jis, gbk, windows-1252, …)", c.encoding),
            ));
            encoding_rs::UTF_8
        }
    };
    let include = regexes("include_lines", &c.include_lines, &mut p);
    let exclude = regexes("exclude_lines", &c.exclude_lines, &mut p);
    let inc_files = regexes(
        "prospector.scanner.include_files",
        &c.prospector.scanner.include_files,
        &mut p,
    );
    let exc_files = regexes(
        "prospector.scanner.exclude_files",
        &c.prospector.scanner.exclude_files,
        &mut p,
    );
    let fi = &c.file_identity;
    let given = [
        fi.native.is_some(),
        fi.path.is_some(),
        fi.inode_marker.is_some(),
        fi.fingerprint.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        p.push((
            "file_identity".into(),
            "give one of native, path, inode_marker, fingerprint".into(),
        ));
    }
    let fp = &c.prospector.scanner.fingerprint;
    let identity = if let Some(m) = &fi.inode_marker {
        if m.path.is_empty() {
            p.push((
                "file_identity.inode_marker.path".into(),
                "required: the marker file".into(),
            ));
        }
        Identity::InodeMarker {
            marker: PathBuf::from(&m.path),
        }
    } else if fi.fingerprint.is_some() {
        if !fp.enabled {
            p.push((
                "file_identity.fingerprint".into(),
                "needs prospector.scanner.fingerprint.enabled: true".into(),
            ));
        }
        Identity::Fingerprint {
            offset: fp.offset,
            length: fp.length,
        }
    } else if fi.path.is_some() {
        Identity::Path
    } else {
        Identity::Native
    };
    if fp.enabled && fp.length < 64 {
        p.push((
            "prospector.scanner.fingerprint.length".into(),
            "must be at least 64".into(),
        ));
    }
    let copytruncate = match &c.rotation.external.strategy.copytruncate {
        None => None,
        Some(ct) if ct.suffix_regex.is_empty() => {
            p.push((
                "rotation.external.strategy.copytruncate.suffix_regex".into(),
                "required, e.g. \\.\\d$".into(),
            ));
            None
        }
        Some(ct) => match Regex::new(&ct.suffix_regex) {
            Ok(r) => Some(r),
            Err(e) => {
                p.push((
                    "rotation.external.strategy.copytruncate.suffix_regex".into(),
                    format!("not a valid regexp: {e}"),
                ));
                None
            }
        },
    };
    if let Err((i, e)) = Chain::new(&c.parsers, c.message_max_bytes.max(1)) {
        let name = match c.parsers.get(i) {
            Some(ParserConfig::Multiline(_)) => "multiline",
            _ => "ndjson",
        };
        p.push((format!("parsers.{i}.{name}"), e));
    }
    if !p.is_empty() {
        return Err(p);
    }
    let globs: Vec<String> = if c.prospector.scanner.recursive_glob {
        c.paths.clone()
    } else {
        c.paths.iter().map(|g| g.replace("**", "*")).collect()
    };
    let scanner = Scanner::new(
        &globs,
        inc_files,
        exc_files,
        c.prospector.scanner.symlinks,
        identity,
    );
    Ok(FilestreamInput {
        id,
        cfg: c.clone(),
        encoding,
        include,
        exclude,
        copytruncate,
        scanner,
        common,
        data_dir: None,
        once: false,
        first_start: None,
        started: SystemTime::now(),
        tail_files: false,
        log_json: None,
    })
}

/// Writes the registry once more at the end of the run, after the last acknowledgement.
pub struct Finisher(Box<dyn FnOnce() + Send>);

impl Finisher {
    /// Runs it.
    pub fn run(self) {
        (self.0)();
    }
}

impl std::fmt::Debug for Finisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Finisher")
    }
}

/// What the reader shares with the end-of-run write.
struct Shared {
    store: Store,
    tracker: Tracker,
    last_write: Instant,
    write_failed: bool,
}

impl Shared {
    fn write(&mut self, name: &str) {
        if !self.tracker.is_dirty() {
            return;
        }
        let snapshot = self.tracker.take_snapshot();
        self.last_write = Instant::now();
        match self.store.write(snapshot) {
            Ok(()) => self.write_failed = false,
            Err(e) => {
                // The old state is still whole; the next write tries again. Logged once per
                // failure streak: a full disk would otherwise flood the log.
                if !self.write_failed {
                    tracing::error!(input = name, error = %e, "cannot write the registry; offsets stay at the last written state until a write succeeds");
                }
                self.write_failed = true;
                self.tracker.set_dirty();
            }
        }
    }
}

impl FilestreamInput {
    /// Validates the settings.
    ///
    /// # Errors
    /// [`InputError::Invalid`] naming the first bad key.
    pub fn new(
        index: InputIndex,
        id: Option<&str>,
        c: &FilestreamInputConfig,
        common: CommonFields,
    ) -> Result<Self, InputError> {
        build(id, c, common).map_err(|mut p| {
            let (key, reason) = p.remove(0);
            InputError::Invalid {
                index,
                key: "filestream",
                reason: format!("{key}: {reason}"),
            }
        })
    }

    /// Where the registry lives (`path.data`).
    pub fn set_data_dir(&mut self, dir: PathBuf) {
        self.data_dir = Some(dir);
    }

    /// When skidder first ran on this `path.data` (`meta.json`'s `first_start`), for
    /// `ignore_inactive: since_first_start`.
    pub fn set_first_start(&mut self, at: SystemTime) {
        self.first_start = Some(at);
    }

    /// Files last modified before this are skipped like `ignore_older` skips them.
    fn ignore_before(&self) -> Option<SystemTime> {
        match self.cfg.ignore_inactive? {
            IgnoreInactive::SinceFirstStart => Some(self.first_start.unwrap_or(self.started)),
            IgnoreInactive::SinceLastStart => Some(self.started),
        }
    }

    /// `tail_files` (`type: log`): the first scan starts new files at their end.
    pub fn set_tail_files(&mut self, tail: bool) {
        self.tail_files = tail;
    }

    /// `type: log` with `json.*`: events get the log input's JSON layout.
    pub fn set_log_json(&mut self, rules: super::log::LogJson) {
        self.log_json = Some(rules);
    }

    /// `--once`: read every file to its end, then finish.
    pub fn set_once(&mut self, once: bool) {
        self.once = once;
    }

    /// Opens and locks the registry and starts the reader thread.
    ///
    /// # Errors
    /// [`InputError::Registry`] when the registry cannot be opened or is locked;
    /// [`InputError::Spawn`] when the thread cannot start.
    pub fn start(
        self,
        name: &str,
        publisher: Publisher,
        meta: &EventMeta,
    ) -> Result<(Vec<JoinHandle<()>>, Finisher), InputError> {
        let data = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("data"));
        let (store, entries) = Store::open(&data, &self.id).map_err(|e| InputError::Registry {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        let shared = Arc::new(Mutex::new(Shared {
            store,
            tracker: Tracker::new(entries),
            // The first acknowledgements are written at once.
            last_write: Instant::now() - REGISTRY_FLUSH,
            write_failed: false,
        }));
        let metrics = Arc::clone(publisher.metrics());
        let enc = EventEncoder::new(meta);
        let thread_name = name.to_string();
        let worker = Arc::clone(&shared);
        let escape_html = meta.escape_html;
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                Reader::new(self, worker, publisher, enc, escape_html, thread_name).run();
            })
            .map_err(|source| InputError::Spawn {
                name: name.to_string(),
                source,
            })?;
        let end_name = name.to_string();
        let finisher = Finisher(Box::new(move || {
            let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
            let settled = settled_of(&metrics);
            s.tracker.settle(settled);
            s.write(&end_name);
            let pending = s.tracker.pending();
            if pending > 0 {
                tracing::info!(input = %end_name, unacknowledged = pending, "filestream stopped with events not acknowledged; they are read again on the next start");
            }
        }));
        Ok((vec![handle], finisher))
    }
}

/// The shared state, with the marks published since the last lock recorded first: whatever
/// the tracker is asked next (settle, park, reset) sees every event published before it.
fn locked<'a>(
    shared: &'a Mutex<Shared>,
    marks: &mut Vec<(Slot, u64)>,
) -> std::sync::MutexGuard<'a, Shared> {
    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
    for (slot, end) in marks.drain(..) {
        s.tracker.mark(slot, end);
    }
    s
}

fn settled_of(m: &InputMetrics) -> u64 {
    use std::sync::atomic::Ordering;
    m.acked.load(Ordering::Acquire) + m.dropped.load(Ordering::Acquire)
}

/// One open file.
struct Harvester {
    key: String,
    slot: Slot,
    /// `,"file":{"path":...}` pre-encoded for this file's events.
    path_json: Vec<u8>,
    path: PathBuf,
    file: File,
    /// Bytes read from the file so far (absolute).
    read_pos: u64,
    splitter: LineSplitter,
    chain: Chain,
    opened: Instant,
    last_read: Instant,
    /// Last look at `close.on_state_change` (every `check_interval`).
    last_check: Instant,
    at_eof: bool,
    /// No longer matched by a scan (removed, or renamed out of the globs).
    gone: bool,
    /// Seen under another path.
    renamed: bool,
}

struct Reader {
    input: FilestreamInput,
    shared: Arc<Mutex<Shared>>,
    publisher: Publisher,
    enc: EventEncoder,
    escape_html: bool,
    name: String,
    open: Vec<Harvester>,
    /// Last scan's files by key.
    known: HashMap<String, Found>,
    buf: Vec<u8>,
    /// The lines of the current read (reused).
    spans: Spans,
    /// Events published since the tracker was last locked: (file, end offset), in order.
    marks: Vec<(Slot, u64)>,
    msgs: Vec<Msg>,
    stopped: bool,
    /// Files with unread bytes that `harvester_limit` keeps closed, in scan order: each
    /// gets the next free slot, and a file at its end yields its slot to them.
    waiting: VecDeque<(Found, Slot)>,
    /// Files whose entry `clean_inactive` removed, with their size then: while they stay
    /// that size they are not tracked again (the registry stays clean); bytes appended
    /// later are read from there.
    cleaned: HashMap<String, u64>,
    /// Acknowledged offsets of files found truncated, by path: a copytruncate copy that
    /// appears later continues from there.
    truncated_at: HashMap<PathBuf, u64>,
    first_scan: bool,
}

impl Reader {
    fn new(
        input: FilestreamInput,
        shared: Arc<Mutex<Shared>>,
        publisher: Publisher,
        enc: EventEncoder,
        escape_html: bool,
        name: String,
    ) -> Self {
        let buf = vec![0u8; input.cfg.buffer_size.max(4096)];
        Self {
            input,
            shared,
            publisher,
            enc,
            escape_html,
            name,
            open: Vec::new(),
            known: HashMap::new(),
            buf,
            spans: Spans::default(),
            marks: Vec::new(),
            msgs: Vec::new(),
            stopped: false,
            waiting: VecDeque::new(),
            cleaned: HashMap::new(),
            truncated_at: HashMap::new(),
            first_scan: true,
        }
    }

    fn lock(&mut self) -> std::sync::MutexGuard<'_, Shared> {
        locked(&self.shared, &mut self.marks)
    }

    fn run(mut self) {
        let interval = self.input.cfg.prospector.scanner.check_interval.get();
        let init = self.input.cfg.backoff.init.get();
        let max = self.input.cfg.backoff.max.get().max(init);
        let mut next_scan = Instant::now();
        let mut backoff = init;
        loop {
            if self.publisher.is_stopping() {
                break;
            }
            let now = Instant::now();
            if now >= next_scan {
                self.scan();
                next_scan = now + interval;
            }
            let progressed = self.read_turn();
            if self.stopped {
                break;
            }
            self.fill();
            self.flush_timeouts();
            if self.publisher.flush().is_err() {
                break;
            }
            self.checkpoint(false);
            if self.input.once && self.open.is_empty() && self.waiting.is_empty() {
                // Every file the scans found was read to its end.
                break;
            }
            if progressed {
                backoff = init;
                continue;
            }
            let mut wait = backoff.min(next_scan.saturating_duration_since(Instant::now()));
            if self.lock().tracker.pending() > 0 {
                // Acknowledgements are on their way: look at them at least every registry
                // interval, or the offsets lag behind what was delivered.
                wait = wait.min(REGISTRY_FLUSH / 4);
            }
            if let Some(d) = self.open.iter().filter_map(|h| h.chain.deadline()).min() {
                wait = wait.min(d.saturating_duration_since(Instant::now()));
            }
            std::thread::sleep(wait.max(Duration::from_millis(1)));
            backoff = (backoff * 2).min(max);
        }
        if !self.stopped {
            for i in (0..self.open.len()).rev() {
                self.finish_at(i);
            }
        }
        self.open.clear();
        let _ = self.publisher.flush();
        self.checkpoint(true);
        let Reader {
            publisher, name, ..
        } = self;
        if let Err(e) = publisher.close() {
            tracing::info!(input = %name, unpublished = e.unpublished, "filestream input stopped by shutdown; the unpublished lines are read again on the next start");
        }
    }

    fn checkpoint(&mut self, force: bool) {
        let settled = settled_of(self.publisher.metrics());
        let name = self.name.clone();
        let mut s = self.lock();
        s.tracker.settle(settled);
        if force || s.last_write.elapsed() >= REGISTRY_FLUSH {
            s.write(&name);
        }
    }

    /// Looks at the globs: opens files with unread bytes, notices removed, renamed and
    /// touched ones, forgets what `clean_removed` and `clean_inactive` say to.
    fn scan(&mut self) {
        let first = std::mem::replace(&mut self.first_scan, false);
        let found = self.input.scanner.scan();
        let cfg = &self.input.cfg;
        let identity = self.input.scanner.identity().name();
        let resend_on_touch = cfg.prospector.scanner.resend_on_touch;
        let mut now_known: HashMap<String, Found> = HashMap::with_capacity(found.len());
        for f in &found {
            now_known.insert(f.key.clone(), f.clone());
        }
        let touched = |f: &Found, known: &HashMap<String, Found>| {
            resend_on_touch
                && known
                    .get(&f.key)
                    .is_some_and(|p| p.size == f.size && p.mtime != f.mtime)
        };
        let mut shared = locked(&self.shared, &mut self.marks);
        // Open harvesters: still there? renamed? touched?
        for h in &mut self.open {
            match now_known.get(&h.key) {
                Some(f) => {
                    if f.path != h.path && !h.renamed {
                        tracing::info!(input = %self.name, from = %h.path.display(), to = %f.path.display(), "file renamed; reading on");
                        h.renamed = true;
                    }
                    if f.size > h.read_pos {
                        h.at_eof = false;
                    }
                    if touched(f, &self.known) && h.read_pos == f.size {
                        tracing::info!(input = %self.name, file = %h.path.display(), "file touched at the same size (resend_on_touch): reading it again from the start");
                        shared.tracker.reset(h.slot, 0);
                        h.splitter.reset();
                        h.read_pos = 0;
                        h.at_eof = false;
                        if h.file.seek(SeekFrom::Start(0)).is_err() {
                            h.gone = true;
                        }
                    }
                }
                None => h.gone = true,
            }
        }
        if first {
            // Entries of another identity kind: take over the offset of the file now at
            // their path (the configuration's file_identity changed).
            let migrate: Vec<(String, String, u64)> = shared
                .tracker
                .entries()
                .filter(|e| e.identity != identity)
                .map(|e| (e.key.clone(), e.source.clone(), e.offset))
                .collect();
            for (old, source, offset) in migrate {
                if let Some(f) = found.iter().find(|f| f.path.to_string_lossy() == source) {
                    if shared.tracker.get(&f.key).is_none() {
                        let slot = shared.tracker.track(&f.key, identity, &source, offset);
                        shared.tracker.reset(slot, offset);
                    }
                }
                shared.tracker.forget(&old);
            }
        }
        let open_keys: std::collections::HashSet<String> =
            self.open.iter().map(|h| h.key.clone()).collect();
        let ignore_before = self.input.ignore_before();
        self.cleaned.retain(|k, _| now_known.contains_key(k));
        let mut to_open = VecDeque::new();
        for f in &found {
            if open_keys.contains(&f.key) {
                continue;
            }
            let path = f.path.to_string_lossy().into_owned();
            let stored = shared.tracker.get(&f.key).is_some();
            let cleaned_at = if stored {
                None
            } else {
                match self.cleaned.get(&f.key) {
                    // Forgotten by clean_inactive and unchanged: stays out of the registry.
                    Some(&size) if f.size == size => continue,
                    Some(&size) => {
                        self.cleaned.remove(&f.key);
                        Some(size)
                    }
                    None => None,
                }
            };
            let slot;
            let mut offset = if stored {
                slot = shared.tracker.track(&f.key, identity, &path, 0);
                if touched(f, &self.known) && shared.tracker.resume(slot) == f.size {
                    tracing::info!(input = %self.name, file = %path, "file touched at the same size (resend_on_touch): reading it again from the start");
                    shared.tracker.reset(slot, 0);
                }
                shared.tracker.resume(slot)
            } else if let Some(at) = cleaned_at {
                slot = shared.tracker.track(&f.key, identity, &path, at);
                at
            } else {
                // A copytruncate copy of a file being read continues where the original
                // was acknowledged up to; the original then restarts at 0.
                let orig = self.input.copytruncate.as_ref().and_then(|re| {
                    let m = re.find(&path)?;
                    Some(PathBuf::from(&path[..m.start()]))
                });
                let inherited = orig.and_then(|orig| {
                    if let Some(o) = self.truncated_at.remove(&orig) {
                        return Some(o);
                    }
                    let key = self.known.values().find(|k| k.path == orig)?.key.clone();
                    shared.tracker.get(&key).map(|e| e.offset)
                });
                // tail_files is Filebeat's "ignore_older = 1ns on the first scan".
                let ignored = (first && self.input.tail_files)
                    || (!cfg.ignore_older.get().is_zero()
                        && f.mtime.elapsed().unwrap_or_default() > cfg.ignore_older.get())
                    || ignore_before.is_some_and(|t| f.mtime <= t);
                let start = if ignored {
                    f.size
                } else {
                    inherited.unwrap_or(0)
                };
                slot = shared.tracker.track(&f.key, identity, &path, start);
                if ignored || inherited.is_some() {
                    shared.tracker.reset(slot, start);
                }
                if let Some(o) = inherited {
                    tracing::info!(input = %self.name, file = %path, offset = o, "copytruncate copy continues from the original's acknowledged offset");
                }
                start
            };
            if offset > f.size {
                tracing::info!(input = %self.name, file = %path, offset, size = f.size, "file is shorter than its stored offset (truncated): reading it from the start");
                shared.tracker.reset(slot, 0);
                offset = 0;
            }
            if f.size > offset {
                to_open.push_back((f.clone(), slot));
            }
        }
        // Files gone from the globs and not open: forget (clean_removed) or keep.
        if cfg.clean_removed {
            let stale: Vec<String> = shared
                .tracker
                .entries()
                .filter(|e| !now_known.contains_key(&e.key) && !open_keys.contains(&e.key))
                .map(|e| e.key.clone())
                .collect();
            for k in stale {
                shared.tracker.forget(&k);
            }
        }
        if !cfg.clean_inactive.get().is_zero() {
            let ttl = u64::try_from(cfg.clean_inactive.get().as_millis()).unwrap_or(u64::MAX);
            let now_ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0);
            // Only files read to their end (or gone): the validated ttl is longer than
            // ignore_older + check_interval, so such a file is one the scan ignores.
            let stale: Vec<(String, u64)> = shared
                .tracker
                .entries()
                .filter(|e| {
                    !open_keys.contains(&e.key)
                        && now_ms.saturating_sub(e.updated_ms) > ttl
                        && now_known.get(&e.key).is_none_or(|f| e.offset >= f.size)
                })
                .map(|e| (e.key.clone(), e.offset))
                .collect();
            for (k, offset) in stale {
                if shared.tracker.forget(&k) {
                    tracing::debug!(input = %self.name, key = %k, "clean_inactive: offset forgotten");
                    if let Some(f) = now_known.get(&k) {
                        self.cleaned.insert(k, f.size.max(offset));
                    }
                }
            }
        }
        drop(shared);
        self.waiting = to_open;
        self.known = now_known;
        self.fill();
    }

    /// Opens waiting files while `harvester_limit` allows.
    fn fill(&mut self) {
        let limit = match self.input.cfg.harvester_limit {
            0 => usize::MAX,
            n => n,
        };
        while self.open.len() < limit {
            let Some((f, slot)) = self.waiting.pop_front() else {
                break;
            };
            let offset = self.lock().tracker.resume(slot);
            self.open_file(&f, slot, offset);
        }
    }

    fn open_file(&mut self, f: &Found, slot: Slot, offset: u64) {
        let mut file = match File::open(&f.path) {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(input = %self.name, file = %f.path.display(), error = %e, "cannot open file; trying again at the next scan");
                return;
            }
        };
        if let Err(e) = file.seek(SeekFrom::Start(offset)) {
            tracing::warn!(input = %self.name, file = %f.path.display(), error = %e, "cannot seek in file; trying again at the next scan");
            return;
        }
        let mut path_json = BytesMut::new();
        path_json.extend_from_slice(b",\"file\":{\"path\":");
        let _ = write_json(&mut path_json, &*f.path.to_string_lossy(), self.escape_html);
        path_json.extend_from_slice(b"}");
        let cfg = &self.input.cfg;
        // Checked when the input was built.
        let chain = Chain::new(&cfg.parsers, cfg.message_max_bytes).unwrap_or_default();
        tracing::debug!(input = %self.name, file = %f.path.display(), offset, "harvesting");
        let now = Instant::now();
        self.open.push(Harvester {
            key: f.key.clone(),
            slot,
            path_json: path_json.to_vec(),
            path: f.path.clone(),
            file,
            read_pos: offset,
            splitter: LineSplitter::new(
                cfg.line_terminator,
                self.input.encoding,
                cfg.message_max_bytes,
            ),
            chain,
            opened: now,
            last_read: now,
            last_check: now,
            at_eof: false,
            gone: false,
            renamed: false,
        });
    }

    /// Reads a turn from every open file; true when any bytes came.
    fn read_turn(&mut self) -> bool {
        let mut progressed = false;
        let mut i = 0;
        while i < self.open.len() {
            let (got, close) = self.read_file(i);
            if self.stopped {
                return progressed;
            }
            progressed |= got;
            if close {
                self.finish_at(i);
                let h = self.open.swap_remove(i);
                // A partial last line still held is read again when the file is reopened.
                let stopped_at = h.read_pos - h.splitter.buffered();
                self.lock().tracker.park(h.slot, stopped_at);
                tracing::debug!(input = %self.name, file = %h.path.display(), "closed");
                continue;
            }
            i += 1;
        }
        progressed
    }

    /// Reads up to a turn from file `i`; returns (bytes read, close it now).
    fn read_file(&mut self, i: usize) -> (bool, bool) {
        // The read buffer and the line list are lent out for the turn, so lines can be
        // handed on as slices of the buffer while `self` is borrowed for each of them.
        let mut buf = std::mem::take(&mut self.buf);
        let mut spans = std::mem::take(&mut self.spans);
        let r = self.read_file_with(i, &mut buf, &mut spans);
        self.buf = buf;
        self.spans = spans;
        r
    }

    fn read_file_with(&mut self, i: usize, buf: &mut [u8], spans: &mut Spans) -> (bool, bool) {
        let mut total = 0usize;
        let now = Instant::now();
        loop {
            let h = &mut self.open[i];
            let n = match h.file.read(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(input = %self.name, file = %h.path.display(), error = %e, "cannot read file; closing it (it is opened again at the next scan)");
                    return (total > 0, true);
                }
            };
            if n == 0 {
                h.at_eof = true;
                break;
            }
            h.at_eof = false;
            h.last_read = now;
            let start = h.read_pos;
            h.read_pos += n as u64;
            let data = &buf[..n];
            spans.clear();
            let mut pos = start - h.splitter.buffered();
            h.splitter.feed(data, &mut |l: RawLine<'_>| {
                spans.push(data, &l, pos);
                pos += l.raw_len;
            });
            let wall = SystemTime::now();
            for k in 0..spans.lines.len() {
                let s = spans.lines[k];
                let bytes = match s.at {
                    At::Chunk(a, b) => &buf[a..b],
                    At::Held(a, b) => &spans.held[a..b],
                };
                self.line(i, bytes, s.offset, s.end, s.truncated, now, wall);
                if self.stopped {
                    return (true, false);
                }
            }
            total += n;
            if total >= TURN_BYTES {
                return (true, false);
            }
        }
        let close = self.check_close(i, now);
        (total > 0, close)
    }

    /// Whether file `i`, at its end, is to be closed now.
    fn check_close(&mut self, i: usize, now: Instant) -> bool {
        let cfg = &self.input.cfg;
        let h = &mut self.open[i];
        let meta = match h.file.metadata() {
            Ok(m) => m,
            Err(_) => return true,
        };
        if meta.len() < h.read_pos {
            tracing::info!(input = %self.name, file = %h.path.display(), size = meta.len(), read = h.read_pos, "file was truncated: reading it from the start");
            let mut s = locked(&self.shared, &mut self.marks);
            self.truncated_at
                .insert(h.path.clone(), s.tracker.offset(h.slot));
            s.tracker.reset(h.slot, 0);
            drop(s);
            h.splitter.reset();
            h.read_pos = 0;
            h.at_eof = false;
            if h.file.seek(SeekFrom::Start(0)).is_err() {
                return true;
            }
            return false;
        }
        if meta.len() > h.read_pos {
            h.at_eof = false;
            return false;
        }
        let after = cfg.close.reader.after_interval.get();
        if h.gone
            || self.input.once
            || cfg.close.reader.on_eof
            || (!after.is_zero() && now.duration_since(h.opened) >= after)
            // Files wait for a slot: one at its end gives its slot up (it is opened again
            // when a scan sees it grow), so every file is read, not only the first ones.
            || !self.waiting.is_empty()
        {
            return true;
        }
        let s = &cfg.close.on_state_change;
        if now.duration_since(h.last_check) < s.check_interval.get() {
            return false;
        }
        h.last_check = now;
        let removed = meta.nlink() == 0;
        (removed && s.removed)
            || (h.renamed && s.renamed)
            || (!s.inactive.get().is_zero() && now.duration_since(h.last_read) >= s.inactive.get())
    }

    /// Before file `i` is closed: its multiline group is shipped, and its partial last line
    /// too when the file is gone for good (removed, or renamed away and read to its end).
    fn finish_at(&mut self, i: usize) {
        let h = &mut self.open[i];
        let gone_for_good = h.gone
            || h.file.metadata().map(|m| m.nlink() == 0).unwrap_or(true)
            || (h.renamed && self.input.cfg.close.on_state_change.renamed);
        let now = Instant::now();
        let mut held = Vec::new();
        if gone_for_good {
            let mut pos = h.read_pos - h.splitter.buffered();
            h.splitter.flush(&mut |l: RawLine<'_>| {
                held.push((l.bytes.into_owned(), pos, pos + l.raw_len, l.truncated));
                pos += l.raw_len;
            });
        }
        let wall = SystemTime::now();
        for (bytes, off, end, truncated) in held {
            self.line(i, &bytes, off, end, truncated, now, wall);
        }
        let mut out = std::mem::take(&mut self.msgs);
        self.open[i].chain.flush(now, true, &mut out);
        for m in out.drain(..) {
            self.emit(i, m);
        }
        self.msgs = out;
    }

    fn flush_timeouts(&mut self) {
        let now = Instant::now();
        for i in 0..self.open.len() {
            if self.open[i].chain.deadline().is_none_or(|d| d > now) {
                continue;
            }
            let mut out = std::mem::take(&mut self.msgs);
            self.open[i].chain.flush(now, false, &mut out);
            for m in out.drain(..) {
                self.emit(i, m);
            }
            self.msgs = out;
        }
    }

    /// One complete line of file `i`, read at `wall`.
    #[allow(clippy::too_many_arguments)]
    fn line(
        &mut self,
        i: usize,
        bytes: &[u8],
        offset: u64,
        end: u64,
        truncated: bool,
        now: Instant,
        wall: SystemTime,
    ) {
        let text = decode(bytes, self.input.encoding);
        let m = self.open[i].chain.msg(&text, offset, end, truncated, wall);
        let mut out = std::mem::take(&mut self.msgs);
        self.open[i].chain.push_from(0, m, now, &mut out);
        for m in out.drain(..) {
            self.emit(i, m);
        }
        self.msgs = out;
    }

    /// Filters, encodes and publishes one message of file `i`.
    fn emit(&mut self, i: usize, mut m: Msg) {
        if self.stopped {
            return;
        }
        let shipped = !(m.text.is_empty()
            && m.decoded
                .as_ref()
                .is_none_or(|d| d.pairs.is_empty() && d.error.is_none()))
            && (self.input.include.is_empty()
                || self.input.include.iter().any(|r| r.is_match(&m.text)))
            && !self.input.exclude.iter().any(|r| r.is_match(&m.text));
        if !shipped {
            // Its bytes are covered by the next shipped line's mark.
            self.open[i].chain.recycle(m);
            return;
        }
        if let Some(rules) = &self.input.log_json {
            rules.apply(&mut m);
        }
        let overwrite = self.open[i].chain.overwrite_keys();
        let own = m
            .decoded
            .iter()
            .flat_map(|d| d.pairs.iter().map(|(k, _)| k.as_str()));
        let common = self.input.common.current_for(own);
        let bytes = encode(
            &mut self.enc,
            &common,
            &self.open[i].path_json,
            &m,
            overwrite,
            self.escape_html,
        );
        let end = m.end;
        self.open[i].chain.recycle(m);
        // A processor's drop_event: filtered, not lost; its bytes are covered by the next
        // shipped line's mark, as an excluded line's are.
        let Some(bytes) = common.finish(bytes, true) else {
            return;
        };
        if self.publisher.publish(bytes).is_err() {
            self.stopped = true;
            return;
        }
        // Marked under the registry's lock once per read turn, not once per event: they
        // only have to be in the tracker before it is next asked about them.
        self.marks.push((self.open[i].slot, end));
    }
}

/// Encodes one event: `log` (`offset`, `file.path`, `flags`), `message`, the ndjson keys, the
/// input's `fields` and `tags`.
pub fn encode(
    enc: &mut EventEncoder,
    common: &CommonFields,
    path_json: &[u8],
    m: &Msg,
    overwrite: bool,
    escape_html: bool,
) -> Bytes {
    let d: Option<&Decoded> = m.decoded.as_deref();
    let time = d.and_then(|d| d.timestamp).unwrap_or(m.read_at);
    let mut extra = BytesMut::new();
    if let Some(d) = d {
        for (k, v) in &d.metadata {
            if matches!(k.as_str(), "beat" | "type" | "version") {
                continue;
            }
            extra.extend_from_slice(b",");
            let _ = write_json(&mut extra, k.as_str(), escape_html);
            extra.extend_from_slice(b":");
            extra.extend_from_slice(&d.json(v));
        }
        if let Some(id) = &d.id {
            extra.extend_from_slice(b",\"_id\":");
            let _ = write_json(&mut extra, id.as_str(), escape_html);
        }
    }
    let mut w = enc.begin_with_metadata(time, &extra);
    let flags: &[u8] = match (m.multiline, m.truncated) {
        (true, true) => b",\"flags\":[\"multiline\",\"truncated\"]",
        (true, false) => b",\"flags\":[\"multiline\"]",
        (false, true) => b",\"flags\":[\"truncated\"]",
        (false, false) => b"",
    };
    let their_log = d.and_then(|d| d.pairs.iter().find(|(k, _)| k == "log"));
    let mut tmp = [0u8; 20];
    match (d, their_log) {
        (Some(d), Some((_, v))) => {
            let mut ours = BytesMut::new();
            ours.extend_from_slice(b"{\"offset\":");
            ours.extend_from_slice(digits(m.offset, &mut tmp));
            ours.extend_from_slice(path_json);
            ours.extend_from_slice(flags);
            ours.extend_from_slice(b"}");
            let mut base: serde_json::Value =
                serde_json::from_slice(&ours).unwrap_or(serde_json::Value::Null);
            deep_merge(&mut base, d.value(v), overwrite);
            let _ = w.value_field("log", &base);
        }
        _ => {
            w.key("log");
            w.raw_pairs(b"{\"offset\":");
            w.raw_pairs(digits(m.offset, &mut tmp));
            w.raw_pairs(path_json);
            w.raw_pairs(flags);
            w.raw_pairs(b"}");
        }
    }
    if !m.text.is_empty() {
        w.str_field("message", &m.text);
    }
    match d {
        Some(d) => {
            let skip = |k: &str| k == "log" || (k == "message" && !m.text.is_empty());
            parsers::write_decoded(&mut w, d, common, &skip, escape_html);
        }
        None => {
            w.raw_pairs(&common.fields_json);
            w.raw_pairs(&common.tags_json);
        }
    }
    w.finish()
}

/// `v` in decimal, written into `tmp` (no allocation per event).
fn digits(mut v: u64, tmp: &mut [u8; 20]) -> &[u8] {
    let mut at = tmp.len();
    loop {
        at -= 1;
        tmp[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &tmp[at..];
        }
    }
}

/// Where a line of a read lies: in the read buffer, or copied into [`Spans::held`] (a
/// line that began in an earlier read).
#[derive(Debug, Clone, Copy)]
enum At {
    Chunk(usize, usize),
    Held(usize, usize),
}

/// One line of a read.
#[derive(Debug, Clone, Copy)]
struct Span {
    at: At,
    offset: u64,
    end: u64,
    truncated: bool,
}

/// The lines one read completed, kept from read to read (no allocation per line).
#[derive(Debug, Default)]
struct Spans {
    lines: Vec<Span>,
    held: Vec<u8>,
}

impl Spans {
    fn clear(&mut self) {
        self.lines.clear();
        self.held.clear();
    }

    /// Records `l`, a line starting at file offset `pos`, read from `data`.
    fn push(&mut self, data: &[u8], l: &RawLine<'_>, pos: u64) {
        let bytes: &[u8] = &l.bytes;
        let within = data.as_ptr_range();
        let start = bytes.as_ptr();
        let at = if matches!(l.bytes, std::borrow::Cow::Borrowed(_))
            && !bytes.is_empty()
            && within.contains(&start)
        {
            // A borrowed line is a slice of `data` (or of a re-scanned copy, which fails
            // the range check and is copied below).
            let a = start as usize - data.as_ptr() as usize;
            At::Chunk(a, a + bytes.len())
        } else {
            let a = self.held.len();
            self.held.extend_from_slice(bytes);
            At::Held(a, self.held.len())
        };
        self.lines.push(Span {
            at,
            offset: pos,
            end: pos + l.raw_len,
            truncated: l.truncated,
        });
    }
}
