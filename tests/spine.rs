//! End-to-end tests of the spine, running the real binary.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{config, run, LineWatch};

fn file_lines(dir: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("out/skidder")).unwrap_or_default();
    text.lines().map(str::to_string).collect()
}

fn seqs(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["seq"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn generator_to_file_delivers_exactly_n_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: generator\n      count: 20000\n      size: 600\noutput:\n  file:\n    path: out\n    rotate_every_kb: 1000000\n",
    );
    let r = run(dir.path(), &["-c", cfg.to_str().unwrap(), "-e"], b"");
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    let t = r.totals();
    assert_eq!(t["published"], "20000");
    assert_eq!(t["acked"], "20000");
    assert_eq!(t["unacked"], "0");
    let lines = file_lines(dir.path());
    assert_eq!(seqs(&lines), (1..=20000).collect::<Vec<u64>>());
    for l in &lines[..10] {
        assert!(
            l.len() >= 590 && l.len() <= 610,
            "about 600 bytes (libbeat's built-in fields included): {}",
            l.len()
        );
    }
}

#[test]
fn generator_threads_deliver_each_seq_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: generator\n      count: 30000\n      threads: 3\noutput:\n  file:\n    path: out\n    rotate_every_kb: 1000000\nqueue:\n  mem:\n    events: 512\n    flush:\n      min_events: 100\n",
    );
    let r = run(dir.path(), &["-c", cfg.to_str().unwrap(), "-e"], b"");
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    let got = seqs(&file_lines(dir.path()));
    assert_eq!(got.len(), 30000, "no loss, no duplicate");
    let unique: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(unique, (1..=30000).collect::<HashSet<u64>>());
}

#[test]
fn stdin_ndjson_round_trips_fields_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: stdin\n      json: true\noutput:\n  file:\n    path: out\n",
    );
    let input = [
        r#"{"message":"héllo €","n":1e3,"f":-0.10,"big":123456789012345678901234567890}"#,
        r#"{"nested":{"z":1,"a":[true,null,"\u00e9\n"]},"s":"<&>"}"#,
        r#"{}"#,
    ];
    let stdin = input.join("\n") + "\n";
    let r = run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "-e"],
        stdin.as_bytes(),
    );
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    let lines = file_lines(dir.path());
    assert_eq!(lines.len(), 3);
    for (out, inp) in lines.iter().zip(input) {
        let meta_end = out.find(r#""version":"#).unwrap();
        let after_meta = &out[out[meta_end..].find('}').unwrap() + meta_end + 1..];
        // What follows @metadata is exactly the input object's members, then the fields
        // every event gets (libbeat's built-in ones, input.type).
        let members = &inp[1..inp.len() - 1];
        let tail = if members.is_empty() {
            after_meta
        } else {
            let own = format!(",{members}");
            assert!(after_meta.starts_with(&own), "event: {out}");
            &after_meta[own.len()..]
        };
        assert!(tail.starts_with(r#","agent":{"#), "event: {out}");
    }
}

#[test]
fn bad_json_line_becomes_an_error_event() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: stdin\n      json: true\noutput:\n  file:\n    path: out\n",
    );
    let r = run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "-e"],
        b"{\"a\":1}\nnot json\n",
    );
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    let lines = file_lines(dir.path());
    assert_eq!(lines.len(), 2);
    let v: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(v["message"], "not json");
    assert_eq!(v["tags"][0], "_jsonparsefailure");
    assert!(v["error"]["message"].as_str().unwrap().contains("JSON"));
}

#[test]
fn bad_json_line_is_a_counted_drop_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: stdin\n      json: true\n      on_json_error: drop\noutput:\n  file:\n    path: out\n",
    );
    let r = run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "-e"],
        b"{\"a\":1}\nnot json\n{\"b\":2}\n",
    );
    assert_eq!(
        r.code(),
        Some(4),
        "a counted drop is exit code 4:\n{}",
        r.stderr
    );
    assert_eq!(file_lines(dir.path()).len(), 2);
    assert_eq!(r.totals()["input_dropped"], "1");
    assert!(
        r.stderr.contains("line=2"),
        "the log names the line:\n{}",
        r.stderr
    );
}

#[test]
fn two_outputs_are_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: stdin\noutput:\n  file:\n    path: out\n  discard: {}\n",
    );
    let r = run(dir.path(), &["-c", cfg.to_str().unwrap()], b"");
    assert_eq!(r.code(), Some(1));
    assert!(
        r.stderr.contains("output.file") && r.stderr.contains("output.discard"),
        "{}",
        r.stderr
    );
    let r = run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "test", "config"],
        b"",
    );
    assert_eq!(r.code(), Some(1));
    assert!(!r.stdout.contains("Config OK"));
}

#[test]
fn missing_config_and_unknown_input_type_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &["-c", "nope.yml"], b"");
    assert_eq!(r.code(), Some(1));
    assert!(r.stderr.contains("nope.yml"), "{}", r.stderr);
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: kafka\noutput:\n  discard: {}\n",
    );
    let r = run(dir.path(), &["-c", cfg.to_str().unwrap()], b"");
    assert_eq!(r.code(), Some(1));
    assert!(r.stderr.contains("kafka"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"));
}

#[test]
fn unwritable_path_data_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("afile"), b"").unwrap();
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: stdin\noutput:\n  discard: {}\n",
    );
    let r = run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "--path.data", "afile/data"],
        b"",
    );
    assert_eq!(r.code(), Some(1));
    assert!(r.stderr.contains("path.data"), "{}", r.stderr);
}

#[test]
fn test_config_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: generator\n      count: 1\noutput:\n  console:\n    pretty: true\n",
    );
    let r = run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "test", "config"],
        b"",
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("Config OK"));
    let r = run(dir.path(), &["version"], b"");
    assert!(r.stdout.contains(env!("CARGO_PKG_VERSION")));
    let r = run(dir.path(), &["--no-such-flag"], b"");
    assert_eq!(r.code(), Some(2));
}

#[test]
fn console_output_writes_events_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: stdin\n      tags: [t]\n      fields: {env: prod}\noutput:\n  console: {}\n",
    );
    let r = run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "-e"],
        b"one\ntwo\n",
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["message"], "two");
    assert_eq!(lines[0]["fields"]["env"], "prod");
    assert_eq!(lines[0]["tags"][0], "t");
}

#[test]
fn backpressure_keeps_memory_bounded_by_the_queue() {
    // 300,000 events of ~1 KB would be ~300 MB if the queue did not hold the generator back.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: generator\n      count: 300000\n      size: 1000\noutput:\n  discard: {}\n",
    );
    let r = run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "-e", "--discard-delay", "10ms"],
        b"",
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let t = r.totals();
    assert_eq!(t["acked"], "300000");
    let peak: u64 = t["peak_rss_kib"].parse().unwrap();
    assert!(peak < 80 * 1024, "peak RSS {peak} KiB is not queue-bounded");
}

#[test]
fn sigterm_drains_the_queue_within_shutdown_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // 200 events/s never reach flush.min_events (1600), so events wait in the queue until
    // the shutdown releases them.
    // No shutdown_timeout: the default drains (Beats' 0s would lose these events).
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: generator\n      eps: 200\noutput:\n  file:\n    path: out\nlogging:\n  metrics:\n    period: 100ms\n",
    );
    let mut child = common::bin()
        .args(["-c", cfg.to_str().unwrap(), "-e"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut watch = LineWatch::new(child.stderr.take().unwrap());
    watch.wait_for("skidder started", Duration::from_secs(20));
    watch.wait_for("pipeline.events.published", Duration::from_secs(20));
    // SAFETY: plain kill(2) of our own child.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = common::wait_exit(&mut child, Duration::from_secs(30));
    let stderr = watch.rest();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("draining the queue to the output for up to shutdown_timeout")
            && stderr.contains("shutdown_timeout=5s")
            && stderr.contains("queue drained: every event settled"),
        "the log says what the stop does and how it ended:\n{stderr}"
    );
    let t = common::totals(&stderr);
    // Not derived counts: nothing dropped, and every published event acknowledged.
    assert_eq!(t["dropped"], "0", "{stderr}");
    assert_eq!(t["acked"], t["published"], "{stderr}");
    assert_eq!(t["unacked"], "0", "{stderr}");
    let acked: usize = t["acked"].parse().unwrap();
    assert!(acked > 0);
    assert_eq!(file_lines(dir.path()).len(), acked);
}

#[test]
fn replay_sends_lines_unchanged_and_count_applies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("replay.ndjson"),
        "{\"a\":1}\n{\"b\": \"x\"}\n\n{\"c\":[1]}\r\n",
    )
    .unwrap();
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: generator\n      count: 7\n      replay: replay.ndjson\noutput:\n  file:\n    path: out\n",
    );
    let r = run(dir.path(), &["-c", cfg.to_str().unwrap(), "-e"], b"");
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(
        file_lines(dir.path()),
        [
            "{\"a\":1}",
            "{\"b\": \"x\"}",
            "{\"c\":[1]}",
            "{\"a\":1}",
            "{\"b\": \"x\"}",
            "{\"c\":[1]}",
            "{\"a\":1}"
        ]
    );
}

#[test]
fn an_output_that_cannot_write_is_a_runtime_failure() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("out"), b"a file, not a directory").unwrap();
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: generator\n      count: 10\noutput:\n  file:\n    path: out\n",
    );
    let r = run(dir.path(), &["-c", cfg.to_str().unwrap(), "-e"], b"");
    assert_eq!(r.code(), Some(3), "{}", r.stderr);
    assert!(r.stderr.contains("output failed"), "{}", r.stderr);
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // A very slow output and a long shutdown_timeout: draining would take minutes.
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: generator\n      size: 100\noutput:\n  discard: {}\nshutdown_timeout: 10m\nlogging:\n  metrics:\n    period: 50ms\n",
    );
    let mut child = common::bin()
        .args(["-c", cfg.to_str().unwrap(), "-e", "--discard-delay", "60s"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut watch = LineWatch::new(child.stderr.take().unwrap());
    watch.wait_for("skidder started", Duration::from_secs(20));
    watch.wait_for("pipeline.queue.filled.events", Duration::from_secs(20));
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    watch.wait_for("signal received", Duration::from_secs(20));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = common::wait_exit(&mut child, Duration::from_secs(20));
    let stderr = watch.rest();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("second signal"), "{stderr}");
}

#[test]
fn zero_shutdown_timeout_does_not_wait_and_reports_unacked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: generator\n      size: 100\noutput:\n  discard: {}\nshutdown_timeout: 0s\nlogging:\n  metrics:\n    period: 50ms\n",
    );
    let mut child = common::bin()
        .args(["-c", cfg.to_str().unwrap(), "-e", "--discard-delay", "60s"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut watch = LineWatch::new(child.stderr.take().unwrap());
    watch.wait_for("skidder started", Duration::from_secs(20));
    watch.wait_for("pipeline.queue.filled.events", Duration::from_secs(20));
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = common::wait_exit(&mut child, Duration::from_secs(20));
    let stderr = watch.rest();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(
            "shutdown_timeout is 0s, so events in the queue and in flight are not waited for"
        ) && !stderr.contains("draining"),
        "the log line says nothing is waited for:\n{stderr}"
    );
    let t = common::totals(&stderr);
    assert_eq!(t["acked"], "0");
    assert_ne!(t["unacked"], "0");
}

#[test]
fn an_enabled_http_section_is_served_and_a_finite_run_still_ends() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "skidder.inputs:\n  - type: generator\n    count: 10\noutput.discard.enabled: true\nhttp.enabled: true\nhttp.port: 0\n",
    );
    let r = run(dir.path(), &["-c", cfg.to_str().unwrap(), "-e"], b"");
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    assert_eq!(r.totals()["acked"], "10");
    assert!(
        r.stderr
            .contains("monitoring endpoint listening on 127.0.0.1:")
            || r.stderr.contains("monitoring endpoint listening on [::1]:"),
        "the monitoring endpoint says where it listens:\n{}",
        r.stderr
    );
}
