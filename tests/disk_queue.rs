//! The disk queue (`queue.disk`, docs/disk-queue.md) through the real binary: SIGKILL at
//! random points with go-lumber as the destination, a full disk (RLIMIT_FSIZE), damage
//! reported with file, offset and events lost, the lock, the receiver's ACK on durability,
//! and the configuration rules.

mod common;
#[path = "common/diskq.rs"]
mod diskq;
#[path = "common/golumber.rs"]
mod golumber;
#[path = "common/lumberjack_peers.rs"]
mod peers;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use diskq::{delivered, on_disk, packed_windows, segments};
use golumber::Server;
use skidder::pipeline::disk::format::BLOCK;

const BULK: u64 = 256;
const READ_AHEAD: u64 = 512;

/// A generator tagged `run: <run>` (top level) into go-lumber through a disk queue in `queue`.
fn config(queue: &Path, server: &str, run: u64, count: u64, eps: u64, extra: &str) -> String {
    format!(
        "skidder.inputs:\n  - type: generator\n    count: {count}\n    eps: {eps}\n\
         \x20   fields: {{run: {run}}}\n    fields_under_root: true\n\
         queue.disk:\n  path: {queue}\n  max_size: 20MB\n  segment_size: 1MB\n  read_ahead: {READ_AHEAD}\n\
         \x20 write_ahead: 256\n\
         \x20 retry_interval: 50ms\n  max_retry_interval: 200ms\n{extra}\
         output.logstash:\n  hosts: [\"{server}\"]\n  timeout: 5s\n  bulk_max_size: {BULK}\n\
         \x20 backoff:\n    init: 50ms\n    max: 200ms\n\
         shutdown_timeout: 0s\n",
        queue = queue.display()
    )
}

/// xorshift64*: random kill points without a dependency; the seed is printed so a failing
/// schedule can be replayed with DISK_CRASH_SEED.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[test]
fn sigkill_at_random_points_loses_nothing_and_duplicates_stay_within_the_window() {
    const KILLS: u64 = 22;
    let seed = std::env::var("DISK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("DISK_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("q");
    // Per run: the largest seq known to have been accepted by the queue.
    let mut accepted: BTreeMap<u64, u64> = BTreeMap::new();
    // Packed windows seen on disk at the kills: the crashes cover them too.
    let mut packed = 0;
    for run in 0..KILLS {
        let cfg = common::config(
            dir.path(),
            &config(&queue, &server.addr, run, 0, 40_000, ""),
        );
        let (mut child, mut lines) = common::spawn_run(dir.path(), &cfg);
        lines.wait_for("skidder started", Duration::from_secs(20));
        let before = server.accepted();
        // Kill points: after a random number of newly delivered events (during windows in
        // flight, segment deletion and writes alike), or a random time after the start.
        if run % 2 == 0 {
            let want = before + 500 + rng.below(8000) as usize;
            let _ = common::poll(Duration::from_secs(10), || {
                (server.accepted() >= want).then_some(())
            });
        } else {
            let until = Instant::now() + Duration::from_millis(rng.below(400));
            while Instant::now() < until {
                std::thread::yield_now();
            }
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        packed += packed_windows(&queue);
        for (r, seq) in on_disk(&queue) {
            let e = accepted.entry(r).or_insert(0);
            *e = seq.max(*e);
        }
        for (&(r, seq), _) in delivered(&server.out).iter() {
            let e = accepted.entry(r).or_insert(0);
            *e = seq.max(*e);
        }
    }
    // A last run without a kill delivers the backlog and ends on its own.
    let cfg = common::config(dir.path(), &config(&queue, &server.addr, KILLS, 100, 0, ""));
    let r = common::run_config(dir.path(), &cfg);
    assert_eq!(r.code(), Some(0), "final run:\n{}", r.stderr);
    assert_eq!(r.totals()["unacked"], "0", "{}", r.stderr);
    accepted.insert(KILLS, 100);

    assert!(packed > 0, "no packed window was on disk at any kill");
    let got = delivered(&server.out);
    let mut duplicates = 0u64;
    for (&run, &max) in &accepted {
        for seq in 1..=max {
            match got.get(&(run, seq)) {
                Some(&n) => duplicates += u64::from(n - 1),
                None => panic!("run {run}: seq {seq} (of 1..={max} accepted) never delivered"),
            }
        }
    }
    // docs/disk-queue.md §1: at most `window` (read_ahead + bulk_max_size) per crash, plus
    // the rest of a packed window whose first event was within it (§11).
    let bound = KILLS * (READ_AHEAD + 2 * BULK - 1);
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates after {KILLS} kills, bound {bound}"
    );
    let total: u64 = accepted.values().sum();
    eprintln!(
        "{KILLS} kills, {total} events, {duplicates} duplicates, {:?}",
        started.elapsed()
    );
    assert!(total > KILLS * 500, "the kills landed while events flowed");
    assert!(
        segments(&queue).len() <= 1,
        "acknowledged segments are deleted"
    );
}

#[test]
fn a_full_disk_is_an_error_naming_the_file_and_loses_nothing() {
    // Packed windows take about a tenth of the bytes: enough events to pass the limit.
    const N: u64 = 40_000;
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("q");
    let cfg = common::config(dir.path(), &config(&queue, &server.addr, 1, N, 0, ""));
    let mut cmd = common::bin();
    cmd.current_dir(dir.path())
        .args(["run", "-e", "-c"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, signal).
    unsafe {
        cmd.pre_exec(|| {
            // Files may grow to 300 KB: each 1 MB segment hits EFBIG, as on a full disk.
            let lim = libc::rlimit {
                rlim_cur: 300_000,
                rlim_max: 300_000,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let r = common::wait_output(cmd.spawn().unwrap(), Duration::from_secs(60));
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("cannot write"))
        .unwrap_or_else(|| panic!("no write ERROR:\n{}", r.stderr));
    assert!(line.contains(".seg"), "names the segment file: {line}");
    assert!(line.contains("File too large"), "says why: {line}");
    let got = delivered(&server.out);
    for seq in 1..=N {
        assert!(got.contains_key(&(1, seq)), "seq {seq} lost");
    }
}

/// Leaves `n` events of run 1 on disk: the output never answers, and a stop with
/// `shutdown_timeout: 0s` keeps them queued.
fn backlog(dir: &Path, queue: &Path, n: u64) {
    let silent = Server::start(&["--fault", "never-ack"]);
    let cfg = common::config(dir, &config(queue, &silent.addr, 1, n, 0, ""));
    let (mut child, mut lines) = common::spawn_run(dir, &cfg);
    lines.wait_for("skidder started", Duration::from_secs(20));
    common::wait_until("every event written", Duration::from_secs(30), || {
        on_disk(queue).get(&1) == Some(&n)
    });
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.0.id() as i32, libc::SIGTERM);
    }
    common::wait_exit(&mut child.0, Duration::from_secs(20));
    let rest = lines.rest();
    assert!(
        rest.contains("events remain in the disk queue"),
        "the stop says what stays queued:\n{rest}"
    );
}

#[test]
fn damaged_segments_are_reported_with_file_offset_and_count_and_the_rest_delivered() {
    // Packed windows take about a tenth of the bytes: enough events for three segments.
    const N: u64 = 120_000;
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("q");
    backlog(dir.path(), &queue, N);
    let segs = segments(&queue);
    assert!(segs.len() >= 3, "{segs:?}");
    // Flip one byte inside the first frame's payload of the second segment: a packed
    // window of BULK events (the generator writes full batches), lost whole
    // (docs/disk-queue.md §11).
    let mut b = std::fs::read(&segs[1]).unwrap();
    b[BLOCK + 40] ^= 0x01;
    std::fs::write(&segs[1], &b).unwrap();

    let server = Server::start(&[]);
    let cfg = common::config(dir.path(), &config(&queue, &server.addr, 2, 1, 0, ""));
    let r = common::run_config(dir.path(), &cfg);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("disk queue"))
        .collect();
    assert_eq!(errors.len(), 1, "exactly one ERROR:\n{}", r.stderr);
    let name = segs[1].file_name().unwrap().to_str().unwrap();
    assert!(errors[0].contains(name), "{}", errors[0]);
    assert!(
        errors[0].contains(&format!("offset={BLOCK}")),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains(&format!("events_lost={BULK}")),
        "{}",
        errors[0]
    );
    let got = delivered(&server.out);
    let run1: Vec<u64> = (1..=N).filter(|s| !got.contains_key(&(1, *s))).collect();
    assert_eq!(run1.len() as u64, BULK, "exactly one window lost: {run1:?}");
    assert!(
        run1.windows(2).all(|w| w[1] == w[0] + 1),
        "the lost events are one window: {run1:?}"
    );
    assert!(got.contains_key(&(2, 1)));
}

#[test]
fn a_second_process_on_the_same_queue_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("q");
    let silent = Server::start(&["--fault", "never-ack"]);
    let cfg = common::config(dir.path(), &config(&queue, &silent.addr, 1, 0, 10, ""));
    let (_first, mut lines) = common::spawn_run(dir.path(), &cfg);
    lines.wait_for("skidder started", Duration::from_secs(20));
    let r = common::run_config(dir.path(), &cfg);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("is in use by another skidder process")
            && r.stderr.contains("skidder.lock"),
        "{}",
        r.stderr
    );
}

#[test]
fn queue_mem_and_queue_disk_together_are_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "queue.mem.events: 100\nqueue.disk.max_size: 1GB\noutput.discard: {}\n\
                skidder.inputs:\n  - type: generator\n    count: 1\n";
    let cfg = common::config(dir.path(), yaml);
    let r = common::run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "test", "config"],
        b"",
    );
    assert_eq!(r.code(), Some(1), "{}{}", r.stdout, r.stderr);
    let text = format!("{}{}", r.stdout, r.stderr);
    assert!(
        text.contains("queue.mem and queue.disk are exclusive"),
        "{text}"
    );
}

/// The next ACK frame that is not a keep-alive (ACK 0).
fn read_real_ack(s: &mut TcpStream) -> [u8; 6] {
    loop {
        let mut ack = [0u8; 6];
        s.read_exact(&mut ack).expect("an ACK within 20s");
        if ack != *b"2A\0\0\0\0" {
            return ack;
        }
    }
}

#[test]
fn the_receiver_acks_once_events_are_on_disk_and_they_are_sent_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("q");
    // The destination is down: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let receiver = |out: &str| {
        format!(
            "skidder.inputs:\n  - type: lumberjack\n    host: \"127.0.0.1:0\"\n\
             queue.disk:\n  path: {}\n\
             output.logstash:\n  hosts: [\"{out}\"]\n  timeout: 2s\n  backoff:\n    init: 50ms\n    max: 200ms\n\
             shutdown_timeout: 0s\n",
            queue.display()
        )
    };
    let cfg = common::config(dir.path(), &receiver(&dead_addr));
    let mut cmd = common::bin();
    cmd.current_dir(dir.path())
        .args(["run", "-e", "-c"])
        .arg(&cfg);
    let relay = peers::Receiver::start(cmd);
    let mut s = TcpStream::connect(&relay.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut window = Vec::new();
    skidder_protocol::frame::encode_window(skidder_protocol::Version::V2, 2, &mut window);
    for seq in 1..=2u32 {
        let doc = format!("{{\"run\":7,\"seq\":{seq}}}");
        skidder_protocol::frame::encode_json(seq, doc.as_bytes(), &mut window).unwrap();
    }
    s.write_all(&window).unwrap();
    // With the memory queue this ACK waits for the (dead) output; here the queue owns them.
    assert_eq!(&read_real_ack(&mut s), b"2A\0\0\0\x02");
    drop(s);
    relay.terminate();
    let (code, stderr) = relay.finish(Duration::from_secs(20));
    assert_eq!(
        code,
        Some(130),
        "interrupted with 2 events left queued:\n{stderr}"
    );
    assert!(stderr.contains("queued=2"), "{stderr}");

    let server = Server::start(&[]);
    let cfg = common::config(dir.path(), &receiver(&server.addr));
    let mut cmd = common::bin();
    cmd.current_dir(dir.path())
        .args(["run", "-e", "-c"])
        .arg(&cfg);
    let relay = peers::Receiver::start(cmd);
    server.wait_accepted(2, Duration::from_secs(20));
    let got = delivered(&server.out);
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), [(7, 1), (7, 2)]);
    drop(relay);
}

/// `logstash_events_acked_total` summed over hosts, from `/metrics` at `addr` (plain HTTP).
fn lumberjack_acked(addr: &str) -> Option<u64> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let sum = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("logstash_events_acked_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum();
    Some(sum)
}

#[test]
fn a_window_partly_acknowledged_at_a_clean_stop_is_not_sent_again_after_the_restart() {
    const N: u64 = 1000;
    const HALF: u64 = BULK / 2;
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("q");
    // ACKs half of the first window, then neither ACKs nor closes.
    let holding = Server::start(&["--fault", "partial-ack-then-hold"]);
    let yaml = config(&queue, &holding.addr, 1, N, 0, "").replace("timeout: 5s", "timeout: 60s")
        + "http.enabled: true\nhttp.host: 127.0.0.1\nhttp.port: 0\n";
    let cfg = common::config(dir.path(), &yaml);
    let (mut child, mut lines) = common::spawn_run(dir.path(), &cfg);
    lines.wait_for_line("the monitoring endpoint", Duration::from_secs(20), |l| {
        l.contains(" listening on ") && l.contains("endpoint=http")
    });
    let line = lines.seen.last().unwrap().clone();
    let http = line
        .split(" listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    common::wait_until("every event written", Duration::from_secs(30), || {
        on_disk(&queue).get(&1) == Some(&N)
    });
    // skidder has read the partial ACK (not only sent the window) before it is stopped.
    common::wait_until(
        "skidder counted the partial ACK",
        Duration::from_secs(30),
        || lumberjack_acked(&http) == Some(HALF),
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.0.id() as i32, libc::SIGTERM);
    }
    common::wait_exit(&mut child.0, Duration::from_secs(20));
    let rest = lines.rest();
    assert!(
        rest.contains(&format!("queued={}", N - HALF)),
        "the acknowledged half is recorded, the rest stays queued:\n{rest}"
    );

    let server = Server::start(&[]);
    let cfg = common::config(dir.path(), &config(&queue, &server.addr, 2, 1, 0, ""));
    let r = common::run_config(dir.path(), &cfg);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let first = delivered(&holding.out);
    let second = delivered(&server.out);
    for seq in 1..=N {
        let n = first.get(&(1, seq)).unwrap_or(&0) + second.get(&(1, seq)).unwrap_or(&0);
        assert_eq!(n, 1, "seq {seq} delivered {n} times");
    }
    assert_eq!(first.len() as u64, HALF);
    assert!(second.contains_key(&(2, 1)));
}
