//! output.logstash under server faults (the go-lumber peer's raw server): every event
//! arrives at least once, and duplicates come only from events skidder itself handed back
//! as unacknowledged (`retried`), never from acknowledged windows.

mod common;
#[path = "common/golumber.rs"]
mod golumber;

use std::time::Duration;

use golumber::{assert_all_delivered, Server};

const BULK: u64 = 200;
const PIPELINING: u64 = 2;

fn config(hosts: &[&str], count: u64, eps: u64, extra: &str) -> String {
    let hosts = hosts
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
    // Test defaults, each replaced by a line of `extra` with the same key.
    let defaults = [
        "timeout: 1s".to_string(),
        format!("bulk_max_size: {BULK}"),
        format!("pipelining: {PIPELINING}"),
        "max_retries: -1".to_string(),
        "backoff: {init: 100ms, max: 500ms}".to_string(),
    ];
    let mut lines: Vec<String> = defaults
        .into_iter()
        .filter(|d| {
            let key = d.split(':').next().unwrap_or_default();
            !extra.lines().any(|l| l.starts_with(&format!("{key}:")))
        })
        .collect();
    lines.extend(extra.lines().map(str::to_string));
    let body: String = lines.iter().map(|l| format!("  {l}\n")).collect();
    format!(
        "skidder.inputs:\n  - type: generator\n    count: {count}\n    eps: {eps}\n\
         queue.mem:\n  events: 4096\n  flush:\n    min_events: 100\n    timeout: 20ms\n\
         output.logstash:\n  hosts: [{hosts}]\n{body}"
    )
}

fn run(yaml: &str) -> common::Run {
    let dir = tempfile::tempdir().unwrap();
    let path = common::config(dir.path(), yaml);
    common::run_config(dir.path(), &path)
}

/// Runs `count` events into a server with `server_args`, asserts delivery of every event
/// exactly once and that the events skidder re-sent ≤ what `fired` faults can leave
/// unacknowledged. Returns skidder's stderr and the server's stats.
///
/// Exactly once, not "duplicates ≤ retried" (skidder's own count): the raw server records a
/// window's events only when it ACKs them, so any duplicate it sees is an acknowledged
/// event that skidder sent again.
fn scenario(server_args: &[&str], count: u64, extra: &str) -> (String, serde_json::Value) {
    let server = Server::start(server_args);
    let r = run(&config(&[server.addr.as_str()], count, 0, extra));
    assert_eq!(r.code(), Some(0), "skidder failed:\n{}", r.stderr);
    let seqs = server.seqs();
    let duplicates = assert_all_delivered(&seqs, count);
    let stats = server.stop();
    let retried: u64 = r.totals()["retried"].parse().unwrap();
    assert_eq!(
        duplicates, 0,
        "the server saw {duplicates} acknowledged event(s) again ({} unacknowledged by fault, \
         {retried} re-sent by skidder)\n{}",
        stats["unacked_events"], r.stderr
    );
    let fired = stats["faults_fired"].as_u64().unwrap_or(1).max(1);
    assert!(
        retried <= fired * PIPELINING * BULK,
        "{retried} events re-sent for {fired} fault(s); at most {} can be in flight",
        fired * PIPELINING * BULK
    );
    (r.stderr, stats)
}

#[test]
fn server_restarts_in_the_middle_of_a_window() {
    let (stderr, stats) = scenario(
        &["--fault", "restart-after=1000", "--restart-gap", "300ms"],
        3000,
        "",
    );
    assert_eq!(stats["faults_fired"], 1, "{stats}");
    let failed = stderr
        .lines()
        .position(|l| l.contains("logstash connection failed") || l.contains("cannot connect"))
        .unwrap_or_else(|| panic!("no WARN for the restart:\n{stderr}"));
    // At the default level a person sees delivery start and come back, with host and TLS.
    let connected: Vec<usize> = stderr
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            l.contains("INFO") && l.contains("connected to logstash") && l.contains("tls=none")
        })
        .map(|(i, _)| i)
        .collect();
    assert!(
        connected.first().is_some_and(|&i| i < failed)
            && connected.last().is_some_and(|&i| i > failed),
        "an INFO line at the first connection and one when it came back:\n{stderr}"
    );
}

#[test]
fn while_the_destination_is_down_the_metrics_line_says_so() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let yaml = config(&[dead.as_str()], 10, 0, "backoff: {init: 50ms, max: 100ms}")
        + "logging.metrics.period: 100ms\n";
    let dir = tempfile::tempdir().unwrap();
    let path = common::config(dir.path(), &yaml);
    let (_child, mut lines) = common::spawn_run(dir.path(), &path);
    lines.wait_for_line(
        "with the metrics line naming the output's state and its errors",
        Duration::from_secs(20),
        |l| {
            l.contains("non-zero metrics")
                && l.contains("destination down")
                && l.contains("output.write.errors")
        },
    );
}

#[test]
fn connection_closed_after_some_events() {
    scenario(&["--fault", "close-after-events=700"], 2500, "");
}

#[test]
fn partial_ack_then_close_keeps_the_acknowledged_half() {
    // One window at a time: the server has no unread window when it closes, so its close
    // is a FIN (a RST could discard the partial ACK in flight, which is then correctly
    // re-sent, but makes the exact count below vary).
    let (stderr, stats) = scenario(
        &["--fault", "partial-ack-then-close"],
        2000,
        "pipelining: 0",
    );
    assert_eq!(stats["faults_fired"], 1, "{stats}");
    assert_eq!(
        stats["duplicates"], 0,
        "the partially ACKed half was re-sent: {stats}"
    );
    assert!(stderr.contains("closed the connection"), "{stderr}");
}

/// The README's partial-ACK claim with pipelining: two windows in flight, the first
/// half-ACKed, then the connection dies. Exactly the unacknowledged events of both windows
/// are re-sent (the server counts what it read and did not ACK), and nothing it ACKed
/// arrives twice.
#[test]
fn partial_ack_with_two_windows_in_flight_resends_exactly_the_unacknowledged() {
    let (stderr, stats) = scenario(&["--fault", "partial-ack-pipelined"], 3000, "");
    assert_eq!(stats["faults_fired"], 1, "{stats}");
    let unacked = stats["unacked_events"].as_u64().unwrap();
    let retried: u64 = common::totals(&stderr)["retried"].parse().unwrap();
    assert_eq!(
        retried, unacked,
        "skidder re-sent {retried} events; the server left {unacked} unacknowledged\n{stderr}"
    );
    assert!(
        unacked > BULK / 2,
        "the second window was in flight too: {stats}"
    );
}

/// An ACK past the end of the window is a protocol error, and the window is re-sent rather
/// than counted as delivered (libbeat counts it delivered).
#[test]
fn an_ack_larger_than_the_window_resends_the_window() {
    let (stderr, stats) = scenario(&["--fault", "ack-too-large"], 1000, "");
    assert_eq!(stats["faults_fired"], 1, "{stats}");
    let retried: u64 = common::totals(&stderr)["retried"].parse().unwrap();
    assert!(
        retried >= stats["unacked_events"].as_u64().unwrap(),
        "the refused window's events were re-sent: {stats}\n{stderr}"
    );
    assert!(
        stderr.contains("logstash connection failed") && stderr.contains("for a window of"),
        "the protocol error is logged:\n{stderr}"
    );
}

#[test]
fn keepalives_longer_than_the_timeout_do_not_time_out() {
    // Keep-alives every 200 ms for 2.5 s, against a 1 s ACK timeout.
    let (stderr, stats) = scenario(
        &["--fault", "keepalive-only=2500ms", "--keepalive", "200ms"],
        1000,
        "",
    );
    assert_eq!(stats["faults_fired"], 1, "{stats}");
    assert!(
        !stderr.contains("no ACK from"),
        "timed out despite keep-alives:\n{stderr}"
    );
    assert!(!stderr.contains("connection failed"), "{stderr}");
}

#[test]
fn never_ack_times_out_reconnects_and_resends() {
    let server = Server::start(&["--fault", "never-ack", "--keepalive", "0"]);
    // A 3 s ACK timeout: the windows after the reconnect must never time out as well, even
    // on a loaded two-core machine, for "exactly one timeout" below to hold.
    let r = run(&config(&[server.addr.as_str()], 1000, 0, "timeout: 3s"));
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("no ACK from {} within 3s", server.addr)),
        "{}",
        r.stderr
    );
    let duplicates = assert_all_delivered(&server.seqs(), 1000);
    assert_eq!(
        duplicates, 0,
        "the un-ACKed window was not written by the server"
    );
    assert!(r.stderr.contains("errors_timeout=1"), "{}", r.stderr);
}

#[test]
fn garbage_reply_is_a_clear_protocol_error_then_reconnect() {
    let server = Server::start(&["--fault", "garbage"]);
    let r = run(&config(&[server.addr.as_str()], 1000, 0, ""));
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("protocol error from {}", server.addr)),
        "{}",
        r.stderr
    );
    assert_all_delivered(&server.seqs(), 1000);
    assert!(r.stderr.contains("errors_protocol=1"), "{}", r.stderr);
}

#[test]
fn max_retries_exhausted_drops_with_an_error_naming_the_count() {
    let server = Server::start(&[
        "--fault",
        "never-ack",
        "--keepalive",
        "0",
        "--fault-times",
        "0",
    ]);
    let r = run(&config(
        &[server.addr.as_str()],
        300,
        0,
        "max_retries: 1\ntimeout: 300ms",
    ));
    let t = r.totals();
    assert_eq!(
        r.code(),
        Some(4),
        "drops by policy end with exit code 4:\n{}",
        r.stderr
    );
    assert_eq!(t["dropped"], "300", "{}", r.stderr);
    assert_eq!(t["acked"], "0");
    assert!(
        r.stderr.contains("output dropped events") && r.stderr.contains("max_retries exhausted"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("ERROR"), "{}", r.stderr);
}

#[test]
fn loadbalance_survives_one_host_going_down_for_a_while() {
    // Host A disappears (listener and connections closed) after 800 events and comes back
    // 2 s later; host B stays up. Events keep flowing at 2000/s for 5 s.
    let a = Server::start(&["--fault", "restart-after=800", "--restart-gap", "2s"]);
    let b = Server::start(&[]);
    let count = 10_000;
    let r = run(&config(
        &[a.addr.as_str(), b.addr.as_str()],
        count,
        2000,
        "loadbalance: true",
    ));
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let (sa, sb) = (a.seqs(), b.seqs());
    let mut all = sa.clone();
    for (k, v) in &sb {
        *all.entry(*k).or_insert(0) += v;
    }
    assert_all_delivered(&all, count);
    let stats_a = a.stop();
    assert_eq!(stats_a["faults_fired"], 1, "{stats_a}");
    assert!(
        sa.len() as u64 > 800 + PIPELINING * BULK,
        "host A was taken back into rotation after it returned: it got {} events",
        sa.len()
    );
    assert!(sb.len() > sa.len(), "B carried the load while A was down");
}

#[test]
fn a_slow_host_does_not_hold_back_the_other_when_load_balancing() {
    // A holds every window for 1 s before its ACK (keep-alives flow meanwhile); B is fast.
    let a = Server::start(&["--ack-delay", "1s", "--keepalive", "200ms"]);
    let b = Server::start(&[]);
    let count = 6000;
    let r = run(&config(
        &[a.addr.as_str(), b.addr.as_str()],
        count,
        0,
        "loadbalance: true\ntimeout: 3s",
    ));
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let (sa, sb) = (a.seqs(), b.seqs());
    let mut all = sa.clone();
    for (k, v) in &sb {
        *all.entry(*k).or_insert(0) += v;
    }
    assert_eq!(assert_all_delivered(&all, count), 0);
    // A can hold at most `pipelining` windows per second; B takes everything else.
    assert!(
        sb.len() > 2 * sa.len(),
        "the fast host carried the load: A {} / B {}",
        sa.len(),
        sb.len()
    );
}

#[test]
fn a_signal_with_windows_in_flight_ends_promptly_and_keeps_them_unacknowledged() {
    // The server accepts windows and holds each for a minute before its ACK; the ACK
    // timeout (30 s, reset by keep-alives) is far away.
    let server = Server::start(&["--ack-delay", "60s"]);
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&[server.addr.as_str()], 1000, 0, "timeout: 30s") + "logging.level: debug\n";
    let path = common::config(dir.path(), &yaml);
    let (mut child, mut lines) = common::spawn_run(dir.path(), &path);
    lines.wait_for("connected", Duration::from_secs(20));
    server.wait_accepted(1, Duration::from_secs(20));
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(
        unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let status = common::wait_exit(&mut child.0, Duration::from_secs(20));
    let stderr = lines.rest();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(!stderr.contains("did not stop within"), "{stderr}");
    let totals = common::totals(&stderr);
    assert_eq!(totals["acked"], "0");
    assert_ne!(totals["published"], "0");
    assert_eq!(totals["unacked"], totals["published"], "{stderr}");
}
