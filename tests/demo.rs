//! The real `skidder demo`: generator → output.logstash over mutual TLS → the in-process
//! lumberjack receiver. Every event must be acknowledged, and the summary must say so.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

/// A debug build ships 20,000 events in about a second; this only bounds a hang.
const LIMIT: Duration = Duration::from_secs(90);

fn demo(args: &[&str]) -> common::Run {
    let dir = tempfile::tempdir().unwrap();
    let child = common::bin()
        .current_dir(dir.path())
        .arg("demo")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = common::wait_output(child, LIMIT);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "the demo leaves nothing in its working directory: {left:?}"
    );
    run
}

/// The `skidder demo totals:` line as key → value.
fn demo_totals(stderr: &str) -> HashMap<String, String> {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("skidder demo totals:"))
        .unwrap_or_else(|| panic!("no demo totals line in stderr:\n{stderr}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn demo_ships_every_event_over_mutual_tls_and_the_receiver_acknowledges_each_once() {
    let run = demo(&["--count", "20000"]);
    assert_eq!(
        run.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    let t = demo_totals(&run.stderr);
    for key in ["published", "acked", "received", "distinct"] {
        assert_eq!(t[key], "20000", "{key}: {t:?}");
    }
    for key in ["duplicates", "unacked", "dropped", "retried"] {
        assert_eq!(t[key], "0", "{key}: {t:?}");
    }
    assert_eq!(t["tls_version"], "TLSv1.3", "{t:?}");
    assert!(t["tls_cipher"].starts_with("TLS13_"), "{t:?}");
    let wire: f64 = t["wire_bytes_per_event"].parse().unwrap();
    assert!(wire > 0.0, "compressed frames were counted: {t:?}");
    let sender_cpu: f64 = t["sender_cpu_s"].parse().unwrap();
    let receiver_cpu: f64 = t["receiver_cpu_s"].parse().unwrap();
    assert!(
        sender_cpu > 0.0 && receiver_cpu > 0.0,
        "both sides' CPU is measured: {t:?}"
    );
    assert!(t["peak_rss_kib"].parse::<u64>().unwrap() > 0, "{t:?}");
    // What a person reads.
    assert!(
        run.stdout.contains("TLS requiring the client certificate"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("every event acknowledged once"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("client certificate CN=skidder-demo-client verified by the receiver"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stderr.contains(" WARN ") && !run.stderr.contains(" ERROR "),
        "a clean run logs no warning:\n{}",
        run.stderr
    );
}

#[test]
fn demo_discard_runs_without_network() {
    let run = demo(&["--discard", "--count", "5000"]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("output.discard (no network)"),
        "{}",
        run.stdout
    );
    let t = run.totals();
    assert_eq!(t["acked"], "5000");
    assert_eq!(t["unacked"], "0");
}
