//! The filestream input (issue 15) end to end: files → skidder → output.logstash (mutual
//! TLS) → `skidder receive --out FILE` in another process, which writes each event before
//! it ACKs it. Every check reads what the receiver wrote:
//! * lines written while skidder reads arrive in order; rotation by rename loses nothing;
//! * copytruncate rotation mid-stream loses nothing; truncation in place restarts at 0;
//! * a deleted file's descriptor is closed within a bounded time;
//! * `--once` twice ships only what was appended in between;
//! * kill -9 at random points over 20 restarts while a writer appends and rotates: every
//!   line at least once, in order per file, duplicates within the in-flight bound.

mod common;
#[path = "common/lumberjack_peers.rs"]
mod peers;
#[path = "credentials_pki/mod.rs"]
mod pki;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::reap::Reap;
use peers::Receiver;
use pki::MutualTlsFiles as Pki;

const LIMIT: Duration = Duration::from_secs(60);

/// A receiver writing to a file, and a directory for logs, data and configuration.
struct Rig {
    p: Pki,
    rx: Receiver,
    out: PathBuf,
    dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Self {
        let p = Pki::new("filestream-test-ca", "shipper");
        let out = p.files.path("received.ndjson");
        let out_s = out.display().to_string();
        let mut args = vec!["--out", out_s.as_str()];
        args.extend(p.receive_args());
        let rx = Receiver::receive(&args);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        Self { p, rx, out, dir }
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// A configuration: one filestream input with `extra` input keys (each line indented
    /// by four spaces), a fast queue, output.logstash to the receiver.
    fn config(&self, paths: &str, extra: &str) -> PathBuf {
        self.config_to(&self.rx.addr, "100ms", paths, extra)
    }

    /// [`Rig::config`] shipping to `host`, scanning every `check_interval`.
    fn config_to(&self, host: &str, check_interval: &str, paths: &str, extra: &str) -> PathBuf {
        let yaml = format!(
            "skidder.inputs:\n  - type: filestream\n    id: logs\n    paths: [\"{}/{paths}\"]\n\
             \x20   prospector.scanner.check_interval: {check_interval}\n{extra}\
             queue.mem:\n  events: 512\n  flush:\n    min_events: 64\n    timeout: 10ms\n\
             path.data: {}/data\n\
             output.logstash:\n  hosts: [\"{}\"]\n  bulk_max_size: 128\n  timeout: 10s\n  max_retries: -1\n\
             \x20 backoff:\n    init: 50ms\n    max: 200ms\n\
             \x20 ssl:\n    certificate_authorities: [\"{}\"]\n    certificate: \"{}\"\n    key: \"{}\"\n",
            self.logs().display(),
            self.dir.path().display(),
            host,
            self.p.ca,
            self.p.client_cert,
            self.p.client_key
        );
        common::config(self.dir.path(), &yaml)
    }

    fn spawn(&self, cfg: &Path, once: bool) -> Child {
        let mut cmd = common::bin();
        cmd.current_dir(self.dir.path())
            .args(["run", "-e", "-c"])
            .arg(cfg);
        if once {
            cmd.arg("--once");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Writes `first` to `logs/name`, starts skidder with `cfg` and waits until every line
    /// arrived: skidder running and caught up with the file. Returns the file's path.
    fn caught_up(&self, cfg: &Path, name: &str, first: &[String]) -> (PathBuf, Reap) {
        let log = self.logs().join(name);
        append(&log, first);
        let child = Reap(self.spawn(cfg, false));
        self.wait_messages(first, LIMIT);
        (log, child)
    }

    /// Every complete event the receiver wrote so far.
    fn received(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until every message of `want` was received at least once.
    fn wait_messages(&self, want: &[String], limit: Duration) -> Vec<serde_json::Value> {
        let mut last = Vec::new();
        let got = common::poll(limit, || {
            last = self.received();
            let have: std::collections::HashSet<&str> =
                last.iter().filter_map(|e| e["message"].as_str()).collect();
            want.iter()
                .all(|m| have.contains(m.as_str()))
                .then(|| last.clone())
        });
        got.unwrap_or_else(|| {
            let have: std::collections::HashSet<&str> =
                last.iter().filter_map(|e| e["message"].as_str()).collect();
            let missing: Vec<&String> =
                want.iter().filter(|m| !have.contains(m.as_str())).collect();
            panic!(
                "after {limit:?}, {} of {} lines never arrived, first: {:?}",
                missing.len(),
                want.len(),
                missing.iter().take(5).collect::<Vec<_>>()
            )
        })
    }
}

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut buf = String::new();
    for l in lines {
        buf.push_str(l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

fn lines(prefix: &str, range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|i| format!("{prefix} {i:06}")).collect()
}

/// Cuts `path` to length 0 in place, as a truncating logger or copytruncate does.
fn truncate(path: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// Sets `path`'s modification time, as an old file or a `touch` would have it.
fn set_mtime(path: &Path, at: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

/// The event carrying `message`; fails naming it when none does.
fn event<'a>(events: &'a [serde_json::Value], message: &str) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["message"] == message)
        .unwrap_or_else(|| panic!("no event with message {message:?}"))
}

/// Checks `check` every 50 ms over an observation window of `window` (the window is what
/// is observed; nothing waits on it to happen).
fn throughout(window: Duration, mut check: impl FnMut()) {
    let start = std::time::Instant::now();
    while start.elapsed() < window {
        check();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The numbers of `prefix` lines in the order they first arrived.
fn first_arrivals(events: &[serde_json::Value], prefix: &str) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter_map(|m| m.strip_prefix(prefix)?.trim().parse::<u64>().ok())
        .filter(|n| seen.insert(*n))
        .collect()
}

/// Asks skidder to stop (SIGTERM) and [`finish`]es it.
fn stop(child: &mut Child) -> common::Run {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    finish(child, LIMIT)
}

/// Waits (bounded) for skidder to exit; its status and stderr.
fn finish(child: &mut Child, limit: Duration) -> common::Run {
    let stderr = child.stderr.take();
    let status = common::wait_exit(child, limit);
    let mut s = String::new();
    if let Some(mut e) = stderr {
        let _ = std::io::Read::read_to_string(&mut e, &mut s);
    }
    common::Run {
        status,
        stdout: String::new(),
        stderr: s,
    }
}

#[test]
fn lines_written_while_reading_arrive_in_order_across_rename_rotation() {
    let rig = Rig::new();
    let cfg = rig.config("*.log", "");
    let (log, child) = rig.caught_up(&cfg, "app.log", &lines("a", 0..100));
    // Written while skidder reads, then rotated by rename out of the glob with lines it has
    // not read yet, and a new file at the same path.
    append(&log, &lines("a", 100..300));
    std::fs::rename(&log, rig.logs().join("app.log.1")).unwrap();
    append(&log, &lines("a", 300..400));
    let all = lines("a", 0..400);
    let events = rig.wait_messages(&all, LIMIT);
    assert_eq!(
        first_arrivals(&events, "a"),
        (0..400).collect::<Vec<_>>(),
        "lines arrived out of order"
    );
    let e = event(&events, "a 000001");
    assert_eq!(e["log"]["offset"], 9, "{e}");
    assert_eq!(e["log"]["file"]["path"], log.display().to_string(), "{e}");
    let mut child = child;
    let run = stop(&mut child.0);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
}

#[test]
fn copytruncate_mid_stream_loses_no_line_and_truncation_restarts_at_zero() {
    let rig = Rig::new();
    let cfg = rig.config(
        "app.log*",
        "    rotation.external.strategy.copytruncate.suffix_regex: '\\.\\d+$'\n",
    );
    let log = rig.logs().join("app.log");
    append(&log, &lines("c", 0..200));
    let child = Reap(rig.spawn(&cfg, false));
    // Mid-stream: whatever skidder has read so far, copy and truncate now.
    append(&log, &lines("c", 200..400));
    std::fs::copy(&log, rig.logs().join("app.log.1")).unwrap();
    truncate(&log);
    append(&log, &lines("c", 400..500));
    let events = rig.wait_messages(&lines("c", 0..500), LIMIT);
    let n = events.len();
    assert!(
        n < 500 + 400,
        "{n} events for 500 lines: the copy was read again from its start"
    );

    // Truncation in place, with no copy: the next lines are read from offset 0.
    truncate(&log);
    append(&log, &lines("t", 0..3));
    let events = rig.wait_messages(&lines("t", 0..3), LIMIT);
    let t0 = event(&events, "t 000000");
    assert_eq!(t0["log"]["offset"], 0, "{t0}");
    let mut child = child;
    let run = stop(&mut child.0);
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);
}

/// Descriptors of `pid` that point at a deleted file.
fn deleted_fds(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.ends_with("(deleted)") && p.contains("gone.log"))
        .collect()
}

#[test]
fn a_deleted_file_is_finished_and_its_descriptor_closed() {
    let rig = Rig::new();
    let cfg = rig.config("*.log", "");
    let (log, child) = rig.caught_up(&cfg, "gone.log", &lines("d", 0..50));
    // The last line has no newline: the file is gone for good, so it is shipped at close.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"d 000050\nd 000051").unwrap();
    drop(f);
    std::fs::remove_file(&log).unwrap();
    rig.wait_messages(&lines("d", 0..52), LIMIT);
    let pid = child.0.id();
    let open = common::poll(Duration::from_secs(10), || {
        deleted_fds(pid).is_empty().then_some(())
    });
    assert!(
        open.is_some(),
        "the deleted file is still open after 10s: {:?}",
        deleted_fds(pid)
    );
}

#[test]
fn once_twice_ships_only_what_was_appended_in_between() {
    let rig = Rig::new();
    let cfg = rig.config("*.log", "");
    let a = rig.logs().join("a.log");
    let b = rig.logs().join("b.log");
    append(&a, &lines("x", 0..300));
    append(&b, &lines("y", 0..5));
    let first = common::wait_output(rig.spawn(&cfg, true), LIMIT);
    assert_eq!(first.code(), Some(0), "{}", first.stderr);
    assert_eq!(first.totals()["acked"], "305", "{}", first.stderr);
    append(&a, &lines("x", 300..320));
    let second = common::wait_output(rig.spawn(&cfg, true), LIMIT);
    assert_eq!(second.code(), Some(0), "{}", second.stderr);
    assert_eq!(second.totals()["acked"], "20", "{}", second.stderr);
    let events = rig.received();
    assert_eq!(events.len(), 325);
    assert_once(&events);
    let third = common::wait_output(rig.spawn(&cfg, true), LIMIT);
    assert_eq!(third.totals()["acked"], "0", "{}", third.stderr);
}

#[test]
fn kill_9_at_random_points_loses_no_line_and_bounds_duplicates() {
    const RESTARTS: usize = 20;
    let rig = Rig::new();
    let cfg = rig.config("app.log*", "");
    let log = rig.logs().join("app.log");
    let stop_writer = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = std::sync::Arc::clone(&stop_writer);
        let logs = rig.logs();
        let log = log.clone();
        std::thread::spawn(move || {
            // About 4,000 lines/s in batches, rotated by rename (inside the glob) every
            // 3,000 lines.
            let mut n = 0u64;
            let mut rotation = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                append(&log, &lines("k", n..n + 40));
                n += 40;
                if n % 3000 == 0 {
                    rotation += 1;
                    std::fs::rename(&log, logs.join(format!("app.log.{rotation}"))).unwrap();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        })
    };
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..RESTARTS {
        let mut child = rig.spawn(&cfg, false);
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        // The kill point, not a synchronisation: anywhere from start-up to well into
        // reading.
        std::thread::sleep(Duration::from_millis(50 + rng_state % 600));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    stop_writer.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    let child = Reap(rig.spawn(&cfg, false));
    let events = rig.wait_messages(&lines("k", 0..written), Duration::from_secs(90));
    drop(child);
    // In order per file: by each event's file, the first arrival of each line follows the
    // line order (a re-send after a restart repeats a range that arrived before).
    let mut per_file: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for e in &events {
        let path = e["log"]["file"]["path"].as_str().unwrap_or("").to_string();
        per_file.entry(path).or_default().push(e.clone());
    }
    for (path, evs) in &per_file {
        let order = first_arrivals(evs, "k");
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "{path}: lines first arrived out of order"
        );
        let offsets: Vec<u64> = evs
            .iter()
            .filter_map(|e| e["log"]["offset"].as_u64())
            .collect();
        assert_eq!(offsets.len(), evs.len());
    }
    let duplicates = events.len() as u64 - written;
    // Per kill: at most the queue (512) plus what was acknowledged in the last registry
    // interval (250 ms of a ≤ 4,000 lines/s writer) and one output batch in flight.
    let bound = RESTARTS as u64 * (512 + 1000 + 128);
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates over {RESTARTS} kills (bound {bound}) for {written} lines"
    );
    eprintln!("kill -9 x{RESTARTS}: {written} lines, {duplicates} duplicates");
}

// ---- Scale, harvester_limit, backpressure, cleaning, identities ----

/// What `/proc/PID` says about a running skidder.
#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    /// Open descriptors, all kinds.
    fds: usize,
    /// Open descriptors on files under the logs directory.
    log_fds: usize,
    /// Threads.
    threads: usize,
    /// Resident memory, KiB.
    rss_kib: u64,
}

fn sample(pid: u32, logs: &Path) -> Option<Sample> {
    // Files under it, not the directory a scan reads.
    let logs = format!("{}/", logs.display());
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some(Sample {
        fds: fds.len(),
        log_fds: fds.iter().filter(|p| p.starts_with(&logs)).count(),
        threads,
        rss_kib,
    })
}

/// Samples `pid` every few milliseconds in a thread until stopped; keeps the maxima.
struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(Sample, usize)>,
}

impl Sampler {
    fn start(pid: u32, logs: PathBuf) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut max = Sample::default();
            let mut n = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(s) = sample(pid, &logs) {
                    max.fds = max.fds.max(s.fds);
                    max.log_fds = max.log_fds.max(s.log_fds);
                    max.threads = max.threads.max(s.threads);
                    max.rss_kib = max.rss_kib.max(s.rss_kib);
                    n += 1;
                }
                // The sampling period of an observer, not a synchronisation.
                std::thread::sleep(Duration::from_millis(2));
            }
            (max, n)
        });
        Self { stop, handle }
    }

    /// The maxima and the number of samples taken.
    fn finish(self) -> (Sample, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// The input's stored registry entries (`docs/registry.md`), empty when none was written.
fn registry_entries(rig: &Rig) -> Vec<serde_json::Value> {
    let path = rig.dir.path().join("data/registry/filestream/logs.json");
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["entries"].as_array().cloned())
        .unwrap_or_default()
}

/// `field` of every registry entry that has it.
fn registry_field<T>(
    rig: &Rig,
    field: &str,
    get: impl Fn(&serde_json::Value) -> Option<T>,
) -> Vec<T> {
    registry_entries(rig)
        .iter()
        .filter_map(|e| get(&e[field]))
        .collect()
}

/// Waits until the (first) registry entry records `offset`: everything up to there was
/// acknowledged and written.
fn wait_offset(rig: &Rig, offset: u64) {
    common::wait_until(
        &format!("the registry entry's offset to reach {offset}"),
        LIMIT,
        || {
            registry_entries(rig)
                .first()
                .is_some_and(|e| e["offset"] == offset)
        },
    );
}

/// Waits until the receiver wrote at least `n` events (counting lines, not parsing them:
/// the 10,000-file test would otherwise parse megabytes at every poll).
fn wait_count(rig: &Rig, n: usize, limit: Duration) {
    let count = || {
        std::fs::read(&rig.out)
            .map(|b| b.iter().filter(|c| **c == b'\n').count())
            .unwrap_or(0)
    };
    if common::poll(limit, || (count() >= n).then_some(())).is_none() {
        panic!("only {} of {n} events arrived within {limit:?}", count());
    }
}

/// Each message of `events` exactly once.
fn assert_once(events: &[serde_json::Value]) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for e in events {
        *count
            .entry(e["message"].as_str().unwrap_or(""))
            .or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(twice.is_empty(), "lines shipped more than once: {twice:?}");
}

#[test]
fn ten_thousand_files_under_one_glob_with_bounded_descriptors_and_threads() {
    const FILES: usize = 10_000;
    const LIMIT_K: usize = 64;
    let rig = Rig::new();
    for i in 0..FILES {
        std::fs::write(
            rig.logs().join(format!("f{i:05}.log")),
            format!("file {i:05}\n"),
        )
        .unwrap();
    }
    let cfg = rig.config_to(
        &rig.rx.addr,
        "1s",
        "*.log",
        &format!("    harvester_limit: {LIMIT_K}\n"),
    );
    let child = Reap(rig.spawn(&cfg, false));
    let sampler = Sampler::start(child.0.id(), rig.logs());
    wait_count(&rig, FILES, Duration::from_secs(60));
    let (max, samples) = sampler.finish();
    let events = rig.received();
    assert_eq!(events.len(), FILES, "every file's line once, no duplicate");
    let files: std::collections::HashSet<&str> = events
        .iter()
        .filter_map(|e| e["log"]["file"]["path"].as_str())
        .collect();
    assert_eq!(files.len(), FILES);
    assert!(samples > 10, "only {samples} samples of /proc were taken");
    // Beside the log files: stdio, the runtime's poll and wake descriptors, the
    // connection, the registry lock and a registry write.
    assert!(
        max.log_fds <= LIMIT_K && max.fds <= LIMIT_K + 32,
        "open descriptors went over harvester_limit {LIMIT_K}: {max:?}"
    );
    assert!(max.threads <= 32, "threads grew with the files: {max:?}");
    eprintln!("10,000 files: peak {max:?} over {samples} samples");
}

#[test]
fn harvester_limit_bounds_open_files_and_every_file_finishes_twice() {
    const FILES: u64 = 12;
    const LIMIT_K: usize = 3;
    let rig = Rig::new();
    let path = |i: u64| rig.logs().join(format!("h{i:02}.log"));
    for i in 0..FILES {
        append(&path(i), &lines(&format!("h{i:02}"), 0..500));
    }
    let cfg = rig.config("*.log", &format!("    harvester_limit: {LIMIT_K}\n"));
    let child = Reap(rig.spawn(&cfg, false));
    let sampler = Sampler::start(child.0.id(), rig.logs());
    let mut want: Vec<String> = (0..FILES)
        .flat_map(|i| lines(&format!("h{i:02}"), 0..500))
        .collect();
    rig.wait_messages(&want, LIMIT);
    // Every file grows again: the files closed to free their slot are reopened after
    // what they already shipped.
    for i in 0..FILES {
        append(&path(i), &lines(&format!("h{i:02}"), 500..600));
    }
    want.extend((0..FILES).flat_map(|i| lines(&format!("h{i:02}"), 500..600)));
    let events = rig.wait_messages(&want, LIMIT);
    let (max, _) = sampler.finish();
    assert!(
        max.log_fds <= LIMIT_K,
        "{} log files open at once, harvester_limit is {LIMIT_K}",
        max.log_fds
    );
    assert_once(&events);
    assert_eq!(events.len(), want.len());
}

#[test]
fn a_dead_output_pauses_reading_with_bounded_memory_and_loses_nothing() {
    const LINE: usize = 1000;
    const LINES: usize = 100_000; // 100 MB
    let rig = Rig::new();
    let log = rig.logs().join("big.log");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
        let pad = "x".repeat(LINE - 16);
        for i in 0..LINES {
            writeln!(f, "b {i:08} {pad}").unwrap();
        }
        f.flush().unwrap();
    }
    let size = std::fs::metadata(&log).unwrap().len();
    // A port nothing listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let cfg = rig.config_to(&host, "100ms", "*.log", "");
    let mut child = Reap(rig.spawn(&cfg, true));
    let pid = child.0.id();
    // The reader's position in the file, from the kernel's view of its descriptor.
    let position = || -> Option<u64> {
        let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        dir.flatten().find_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            if target != log {
                return None;
            }
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                e.file_name().to_string_lossy()
            ))
            .ok()?;
            info.lines()
                .find_map(|l| l.strip_prefix("pos:"))
                .and_then(|v| v.trim().parse().ok())
        })
    };
    common::wait_until("skidder to start reading", LIMIT, || {
        position().is_some_and(|p| p > 0)
    });
    // An observation window: with the output down for all of it, reading stays paused
    // at what the queue and one read turn hold, and memory does not follow the file.
    let window = std::time::Instant::now();
    let mut peak = Sample::default();
    let mut furthest = 0;
    while window.elapsed() < Duration::from_secs(3) {
        let s = sample(pid, &rig.logs()).expect("skidder is running");
        peak.rss_kib = peak.rss_kib.max(s.rss_kib);
        peak.fds = peak.fds.max(s.fds);
        furthest = furthest.max(position().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        furthest < 8 << 20,
        "read {furthest} of {size} bytes with no output: reading did not pause"
    );
    assert!(
        peak.rss_kib < 64 * 1024,
        "RSS reached {} KiB with the output down",
        peak.rss_kib
    );
    assert!(peak.fds < 40, "{} descriptors open", peak.fds);
    let offsets = registry_field(&rig, "offset", serde_json::Value::as_u64);
    assert!(
        offsets.iter().all(|o| *o == 0),
        "offsets moved with nothing acknowledged: {offsets:?}"
    );
    // The server comes back on that port: everything arrives and --once ends.
    let mut cmd = common::bin();
    let mut args = vec![
        "receive",
        "--listen",
        host.as_str(),
        "--out",
        "discard",
        "--stats",
    ];
    args.extend(rig.p.receive_args());
    cmd.args(&args);
    let rx = Receiver::start(cmd);
    let run = finish(&mut child.0, Duration::from_secs(180));
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.totals()["acked"], LINES.to_string(), "{}", run.stderr);
    let offsets = registry_field(&rig, "offset", serde_json::Value::as_u64);
    assert_eq!(offsets, vec![size]);
    rx.terminate();
    let (_, rx_err) = rx.finish(LIMIT);
    let stats = peers::receive_stats(&rx_err);
    assert!(stats["events"].as_u64().unwrap() >= LINES as u64, "{stats}");
    eprintln!(
        "dead output: paused at {furthest} of {size} bytes, peak RSS {} KiB",
        peak.rss_kib
    );
}

#[test]
fn clean_inactive_forgets_a_finished_file_which_is_not_read_again() {
    let rig = Rig::new();
    // Filebeat's rule: clean_inactive > ignore_older + check_interval.
    let cfg = rig.config(
        "*.log",
        "    ignore_older: 1s\n    clean_inactive: 2s\n\
         \x20   close.on_state_change.inactive: 200ms\n    close.on_state_change.check_interval: 100ms\n",
    );
    let (log, child) = rig.caught_up(&cfg, "old.log", &lines("o", 0..20));
    common::wait_until("the registry to hold old.log", LIMIT, || {
        registry_entries(&rig).len() == 1
    });
    common::wait_until("clean_inactive to remove old.log's entry", LIMIT, || {
        registry_entries(&rig).is_empty()
    });
    // An observation window of many scans: the unchanged file is neither re-read nor
    // tracked again.
    throughout(Duration::from_millis(1500), || {
        assert!(registry_entries(&rig).is_empty(), "old.log tracked again");
    });
    assert_eq!(rig.received().len(), 20, "old.log was read again");
    // It grows: only the new line is shipped, from where the file was finished.
    append(&log, &lines("o", 20..21));
    let events = rig.wait_messages(&lines("o", 0..21), LIMIT);
    assert_once(&events);
    let e = event(&events, "o 000020");
    assert_eq!(e["log"]["offset"], 20 * 9, "{e}");
    drop(child);
}

#[test]
fn clean_inactive_without_ignore_older_is_refused() {
    let rig = Rig::new();
    let cfg = rig.config("*.log", "    clean_inactive: 1m\n");
    let run = common::wait_output(rig.spawn(&cfg, true), LIMIT);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("clean_inactive"), "{}", run.stderr);
    assert!(run.stderr.contains("ignore_older"), "{}", run.stderr);
}

#[test]
fn clean_removed_forgets_a_deleted_file_and_keeps_it_when_false() {
    for clean in [true, false] {
        let rig = Rig::new();
        let cfg = rig.config(
            "*.log",
            &format!(
                "    clean_removed: {clean}\n    close.on_state_change.check_interval: 100ms\n"
            ),
        );
        let (log, child) = rig.caught_up(&cfg, "gone.log", &lines("r", 0..10));
        wait_offset(&rig, 90);
        std::fs::remove_file(&log).unwrap();
        let pid = child.0.id();
        common::wait_until("the deleted file to be closed", LIMIT, || {
            deleted_fds(pid).is_empty()
        });
        if clean {
            common::wait_until("clean_removed to remove the entry", LIMIT, || {
                registry_entries(&rig).is_empty()
            });
        } else {
            // An observation window of several scans after the close: the entry stays
            // throughout.
            throughout(Duration::from_millis(800), || {
                assert_eq!(
                    registry_entries(&rig).len(),
                    1,
                    "clean_removed: false forgot"
                );
            });
        }
    }
}

/// Rotation by rename inside the glob keeps a file's identity (nothing read twice) and the
/// new file at the old path is read from 0; so is a file replaced in place.
fn identity_end_to_end(extra: &str, rig: &Rig) {
    // 70-byte lines: the first line alone covers a 64-byte fingerprint.
    let long = |prefix: &str, r: std::ops::Range<u64>| -> Vec<String> {
        r.map(|i| format!("{prefix} {i:06} {}", "y".repeat(60)))
            .collect()
    };
    let cfg = rig.config("app.log*", extra);
    let (log, child) = rig.caught_up(&cfg, "app.log", &long("first", 0..50));
    std::fs::rename(&log, rig.logs().join("app.log.1")).unwrap();
    append(&rig.logs().join("app.log.1"), &long("first", 50..60));
    append(&log, &long("second", 0..30));
    let mut want = long("first", 0..60);
    want.extend(long("second", 0..30));
    let events = rig.wait_messages(&want, LIMIT);
    let e = event(&events, &long("second", 0..1)[0]);
    assert_eq!(e["log"]["offset"], 0, "{e}");
    // Replaced in place (a new file under the same name, while the rotated one stays).
    let tmp = rig.dir.path().join("new.log");
    append(&tmp, &long("third", 0..5));
    std::fs::rename(&tmp, &log).unwrap();
    want.extend(long("third", 0..5));
    let events = rig.wait_messages(&want, LIMIT);
    let e = event(&events, &long("third", 0..1)[0]);
    assert_eq!(e["log"]["offset"], 0, "{e}");
    assert_once(&events);
    drop(child);
}

#[test]
fn inode_marker_identity_follows_renames_and_reads_new_files_from_zero() {
    let rig = Rig::new();
    let marker = rig.dir.path().join("marker");
    std::fs::write(&marker, "disk-a").unwrap();
    identity_end_to_end(
        &format!(
            "    file_identity.inode_marker.path: {}\n",
            marker.display()
        ),
        &rig,
    );
    let keys = registry_field(&rig, "key", |v| v.as_str().map(str::to_string));
    assert!(
        !keys.is_empty()
            && keys
                .iter()
                .all(|k| k.starts_with("inode_marker::") && k.ends_with("-disk-a")),
        "{keys:?}"
    );
}

#[test]
fn fingerprint_identity_follows_renames_and_reads_new_files_from_zero() {
    let rig = Rig::new();
    identity_end_to_end(
        "    prospector.scanner.fingerprint.enabled: true\n    prospector.scanner.fingerprint.length: 64\n\
         \x20   file_identity.fingerprint: ~\n",
        &rig,
    );
    let keys = registry_field(&rig, "key", |v| v.as_str().map(str::to_string));
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with("fingerprint::")),
        "{keys:?}"
    );
}

#[test]
fn ignore_inactive_since_last_start_skips_files_untouched_since_the_start() {
    let rig = Rig::new();
    let old = rig.logs().join("old.log");
    append(&old, &lines("s", 0..10));
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    set_mtime(&old, hour_ago);
    let cfg = rig.config("*.log", "    ignore_inactive: since_last_start\n");
    let child = Reap(rig.spawn(&cfg, false));
    wait_offset(&rig, 90);
    append(&rig.logs().join("new.log"), &lines("n", 0..3));
    append(&old, &lines("s", 10..11));
    let mut want = lines("n", 0..3);
    want.extend(lines("s", 10..11));
    let events = rig.wait_messages(&want, LIMIT);
    assert!(
        !events.iter().any(|e| e["message"] == "s 000000"),
        "a file untouched since the start was read"
    );
    let e = event(&events, "s 000010");
    assert_eq!(e["log"]["offset"], 90, "{e}");
    drop(child);
}

/// The messages of every event received so far, sorted.
fn received_messages(rig: &Rig) -> Vec<String> {
    let mut m: Vec<String> = rig
        .received()
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect();
    m.sort();
    m
}

#[test]
fn ignore_inactive_since_first_start_reads_files_changed_since_the_first_run_only() {
    // The first run writes meta.json's first_start; a file changed after it but before the
    // second run is read by since_first_start, and skipped by since_last_start (the
    // contrast below, with the same first_start), while one untouched since before the
    // first run is skipped by both.
    let rig = Rig::new();
    let cfg = rig.config("*.log", "    ignore_inactive: since_first_start\n");
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let old = rig.logs().join("old.log");
    append(&old, &lines("o", 0..10));
    set_mtime(&old, hour_ago);
    let first = common::wait_output(rig.spawn(&cfg, true), LIMIT);
    assert_eq!(first.code(), Some(0), "{}", first.stderr);
    assert_eq!(first.totals()["acked"], "0", "{}", first.stderr);
    let meta = rig.dir.path().join("data/meta.json");
    assert!(meta.exists(), "the first run wrote no meta.json");
    // Written after the first start, before the second one.
    let since = rig.logs().join("since.log");
    append(&since, &lines("s", 0..5));
    let second = common::wait_output(rig.spawn(&cfg, true), LIMIT);
    assert_eq!(second.code(), Some(0), "{}", second.stderr);
    assert_eq!(second.totals()["acked"], "5", "{}", second.stderr);
    assert_eq!(received_messages(&rig), lines("s", 0..5));
    let e = rig.received()[0].clone();
    assert_eq!(e["log"]["offset"], 0, "{e}");
    assert_eq!(e["log"]["file"]["path"], since.display().to_string(), "{e}");

    // Contrast: the same files and first_start, since_last_start: both files predate this
    // start, so nothing is read.
    let last = Rig::new();
    std::fs::create_dir_all(last.dir.path().join("data")).unwrap();
    std::fs::copy(&meta, last.dir.path().join("data/meta.json")).unwrap();
    for (path, text) in [(&old, "o"), (&since, "s")] {
        let copy = last.logs().join(path.file_name().unwrap());
        append(&copy, &lines(text, 0..if text == "o" { 10 } else { 5 }));
        set_mtime(&copy, std::fs::metadata(path).unwrap().modified().unwrap());
    }
    let cfg = last.config("*.log", "    ignore_inactive: since_last_start\n");
    let run = common::wait_output(last.spawn(&cfg, true), LIMIT);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.totals()["acked"], "0", "{}", run.stderr);
    assert!(last.received().is_empty(), "{:?}", received_messages(&last));
}

#[test]
fn recursive_glob_false_matches_double_star_as_one_level_like_filebeat() {
    // Filebeat 7.17.29 (filestream/fswatch.go): without recursive_glob the pattern goes to
    // Go's filepath.Glob as written, where `**` is two `*`: one path element. With it,
    // `**` expands to zero to eight levels.
    let rig = Rig::new();
    let top = rig.logs().join("top.log");
    let one = rig.logs().join("x/one.log");
    let two = rig.logs().join("x/y/two.log");
    std::fs::create_dir_all(rig.logs().join("x/y")).unwrap();
    append(&top, &lines("t", 0..3));
    append(&one, &lines("o", 0..3));
    append(&two, &lines("w", 0..3));
    let cfg = rig.config("**/*.log", "    prospector.scanner.recursive_glob: false\n");
    let run = common::wait_output(rig.spawn(&cfg, true), LIMIT);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(received_messages(&rig), lines("o", 0..3));
    let e = rig.received()[0].clone();
    assert_eq!(e["log"]["file"]["path"], one.display().to_string(), "{e}");
    // The default (true), same registry: the other two levels are read, one.log not again.
    let cfg = rig.config("**/*.log", "");
    let run = common::wait_output(rig.spawn(&cfg, true), LIMIT);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.totals()["acked"], "6", "{}", run.stderr);
    let mut want = lines("o", 0..3);
    want.extend(lines("t", 0..3));
    want.extend(lines("w", 0..3));
    want.sort();
    assert_eq!(received_messages(&rig), want);
}

#[test]
fn resend_on_touch_reads_a_touched_file_again_from_its_start() {
    let rig = Rig::new();
    let cfg = rig.config("*.log", "    prospector.scanner.resend_on_touch: true\n");
    let (log, child) = rig.caught_up(&cfg, "t.log", &lines("t", 0..5));
    wait_offset(&rig, 45);
    set_mtime(&log, std::time::SystemTime::now() + Duration::from_secs(60));
    common::wait_until("every line a second time", LIMIT, || {
        rig.received().len() == 10
    });
    let events = rig.received();
    assert_eq!(events[5]["message"], "t 000000");
    assert_eq!(events[5]["log"]["offset"], 0);
    drop(child);
}

#[test]
fn backoff_settings_pace_the_reader_at_end_of_file() {
    let rig = Rig::new();
    // Scans are 30 s apart: what picks up appended lines is the reader's own backoff.
    let cfg = rig.config_to(
        &rig.rx.addr,
        "30s",
        "*.log",
        "    backoff.init: 20ms\n    backoff.max: 100ms\n",
    );
    let (log, child) = rig.caught_up(&cfg, "b.log", &lines("b", 0..3));
    append(&log, &lines("b", 3..6));
    rig.wait_messages(&lines("b", 0..6), Duration::from_secs(10));
    drop(child);
}

#[test]
fn bad_reader_settings_are_refused_naming_the_key() {
    for (extra, key) in [
        ("    backoff.init: 0s\n", "backoff.init"),
        ("    backoff.max: 0s\n", "backoff.max"),
        (
            "    close.on_state_change.check_interval: 0s\n",
            "close.on_state_change.check_interval",
        ),
        ("    ignore_inactive: yesterday\n", "ignore_inactive"),
        (
            "    ignore_older: 10m\n    clean_inactive: 10m\n",
            "clean_inactive",
        ),
    ] {
        let rig = Rig::new();
        let cfg = rig.config("*.log", extra);
        let run = common::wait_output(rig.spawn(&cfg, true), LIMIT);
        assert_eq!(run.code(), Some(1), "{extra}: {}", run.stderr);
        assert!(run.stderr.contains(key), "{extra}: {}", run.stderr);
    }
}
