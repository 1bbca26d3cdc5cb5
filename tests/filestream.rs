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
        let yaml = format!(
            "skidder.inputs:\n  - type: filestream\n    id: logs\n    paths: [\"{}/{paths}\"]\n\
             \x20   prospector.scanner.check_interval: 100ms\n{extra}\
             queue.mem:\n  events: 512\n  flush:\n    min_events: 64\n    timeout: 10ms\n\
             path.data: {}/data\n\
             output.logstash:\n  hosts: [\"{}\"]\n  bulk_max_size: 128\n  timeout: 10s\n  max_retries: -1\n\
             \x20 backoff:\n    init: 50ms\n    max: 200ms\n\
             \x20 ssl:\n    certificate_authorities: [\"{}\"]\n    certificate: \"{}\"\n    key: \"{}\"\n",
            self.logs().display(),
            self.dir.path().display(),
            self.rx.addr,
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

fn stop(child: &mut Child) -> common::Run {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let stderr = child.stderr.take();
    let status = common::wait_exit(child, LIMIT);
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
    let log = rig.logs().join("app.log");
    append(&log, &lines("a", 0..100));
    let child = Reap(rig.spawn(&cfg, false));
    rig.wait_messages(&lines("a", 0..100), LIMIT);
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
    let e = events.iter().find(|e| e["message"] == "a 000001").unwrap();
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
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &lines("c", 400..500));
    let events = rig.wait_messages(&lines("c", 0..500), LIMIT);
    let n = events.len();
    assert!(
        n < 500 + 400,
        "{n} events for 500 lines: the copy was read again from its start"
    );

    // Truncation in place, with no copy: the next lines are read from offset 0.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &lines("t", 0..3));
    let events = rig.wait_messages(&lines("t", 0..3), LIMIT);
    let t0 = events.iter().find(|e| e["message"] == "t 000000").unwrap();
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
    let log = rig.logs().join("gone.log");
    append(&log, &lines("d", 0..50));
    let child = Reap(rig.spawn(&cfg, false));
    rig.wait_messages(&lines("d", 0..50), LIMIT);
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
    let mut count: HashMap<&str, usize> = HashMap::new();
    for e in &events {
        *count.entry(e["message"].as_str().unwrap()).or_default() += 1;
    }
    assert!(count.values().all(|&c| c == 1), "a line was shipped twice");
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
