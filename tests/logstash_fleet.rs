//! output.logstash against a fleet of go-lumber servers (tests/peers/golumber): balancing by
//! measured capacity (`loadbalance_strategy: capacity`, the default), slow-host ejection,
//! and Beats-style strict round robin kept for comparison.
//!
//! The slow host is a go-lumber server holding every batch 2 s before its ACK
//! (`--ack-delay 2s`), keep-alives flowing meanwhile.

mod common;
#[path = "common/golumber.rs"]
mod golumber;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use golumber::{assert_all_delivered, Server};

const BULK: usize = 200;

/// A generator of `count` events (at `eps`, 0 = unlimited) into output.logstash with
/// `loadbalance: true`; `extra` lines are added under `output.logstash`.
fn config(hosts: &[&str], count: u64, eps: u64, extra: &str) -> String {
    let hosts = hosts
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let extra: String = extra.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "skidder.inputs:\n  - type: generator\n    count: {count}\n    eps: {eps}\n\
         queue.mem:\n  events: 4096\n  flush:\n    min_events: 100\n    timeout: 20ms\n\
         output.logstash:\n  hosts: [{hosts}]\n  loadbalance: true\n  timeout: 5s\n\
         \x20 bulk_max_size: {BULK}\n  max_retries: -1\n\
         \x20 backoff:\n    init: 100ms\n    max: 500ms\n{extra}"
    )
}

/// Runs skidder to its end; returns the run and its wall time.
fn run(yaml: &str) -> (common::Run, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = common::config(dir.path(), yaml);
    let started = Instant::now();
    let r = common::run_config(dir.path(), &path);
    let took = started.elapsed();
    assert_eq!(r.code(), Some(0), "skidder failed:\n{}", r.stderr);
    (r, took)
}

/// Every seq of `servers` merged: seq → times accepted.
fn merged(servers: &[&Server]) -> BTreeMap<u64, u32> {
    let mut all = BTreeMap::new();
    for s in servers {
        for (k, v) in s.seqs() {
            *all.entry(k).or_insert(0) += v;
        }
    }
    all
}

fn slow_server() -> Server {
    Server::start(&["--ack-delay", "2s", "--keepalive", "200ms"])
}

#[test]
fn capacity_gives_a_slow_host_one_window_and_does_not_wait_on_it() {
    // Before this balancing (every connection pulling as fast as it could), the slow host
    // took `pipelining` = 2 windows at once (312 events measured), served one after the
    // other: the run lasted 4.0 s against 0.23 s for the two fast hosts alone.
    let count = 20_000;
    let (a, b, slow) = (Server::start(&[]), Server::start(&[]), slow_server());
    let (_r, took) = run(&config(
        &[a.addr.as_str(), b.addr.as_str(), slow.addr.as_str()],
        count,
        0,
        "",
    ));
    assert_eq!(assert_all_delivered(&merged(&[&a, &b, &slow]), count), 0);
    let shares = (a.accepted(), b.accepted(), slow.accepted());
    // Not measured yet, the slow host gets one window; its 2 s ACK keeps it out after.
    assert!(
        shares.2 <= BULK,
        "the slow host got more than one window: {shares:?}"
    );
    assert!(shares.0 > 5_000 && shares.1 > 5_000, "{shares:?}");
    // One 2 s window, not two in a row (≥ 4 s): completion is bounded by that one window.
    assert!(
        took < Duration::from_millis(3_800),
        "the run waited on more than one slow window: {took:?}, shares {shares:?}"
    );
}

#[test]
fn capacity_ejects_a_slow_host_and_says_so() {
    // 3000 events/s for 3 s: long enough for the ejection rule (over for 1 s) to fire.
    let count = 9_000;
    let (a, b, slow) = (Server::start(&[]), Server::start(&[]), slow_server());
    let (r, _) = run(&config(
        &[a.addr.as_str(), b.addr.as_str(), slow.addr.as_str()],
        count,
        3_000,
        "",
    ));
    assert_eq!(assert_all_delivered(&merged(&[&a, &b, &slow]), count), 0);
    let slow_name = format!("host={}", slow.addr);
    let ejected = r
        .stderr
        .lines()
        .find(|l| l.contains("far slower than the others") && l.contains(&slow_name));
    assert!(
        ejected.is_some(),
        "no ejection WARN for {}:\n{}",
        slow.addr,
        r.stderr
    );
    assert!(
        !r.stderr
            .lines()
            .any(|l| l.contains("far slower") && !l.contains(&slow_name)),
        "a fast host was ejected:\n{}",
        r.stderr
    );
    assert!(
        slow.accepted() <= BULK,
        "slow host share {}",
        slow.accepted()
    );
    // The host totals line counts the ejection.
    assert!(
        r.stderr.lines().any(|l| l.contains("host totals")
            && l.contains(&slow_name)
            && l.contains("ejections=1")),
        "{}",
        r.stderr
    );
}

#[test]
fn round_robin_keeps_beats_lock_step() {
    // Strict turns: the slow host gets a third of the windows and everybody waits for it.
    let count = 2_000;
    let (a, b, slow) = (Server::start(&[]), Server::start(&[]), slow_server());
    let (_r, took) = run(&config(
        &[a.addr.as_str(), b.addr.as_str(), slow.addr.as_str()],
        count,
        0,
        "loadbalance_strategy: round_robin",
    ));
    assert_eq!(assert_all_delivered(&merged(&[&a, &b, &slow]), count), 0);
    let shares = (a.accepted(), b.accepted(), slow.accepted());
    // Batches are up to 200 events (the queue flushes smaller ones too).
    assert!(
        shares.2 >= count as usize / 5,
        "round robin gives every host its turn: {shares:?}"
    );
    // A fifth of 2,000 events in windows of at most 200 is at least two slow windows,
    // served one after the other at 2 s each.
    assert!(took >= Duration::from_secs(4), "{took:?} {shares:?}");
}
