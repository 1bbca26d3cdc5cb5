//! The null sink against a real Lumberjack v2 client: go-lumber's async client (the peer
//! libbeat's output is built on) over mutual TLS, compressed and plain windows. Every window
//! must be ACKed with its count, or the client would time out or fail.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Bound on each step: a hang fails with a message instead of blocking the suite.
const STEP: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// go-lumber's test peer, built by the same script the harness and CI use (a no-op when
/// Go's build cache is warm).
fn golumber() -> PathBuf {
    let out = Command::new("bash")
        .arg(root().join(".ci/peers/build-golumber.sh"))
        .output()
        .expect("run .ci/peers/build-golumber.sh (needs bash and Go)");
    assert!(
        out.status.success(),
        "building the go-lumber peer failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    root().join("tests/peers/golumber/bin/golumber")
}

/// A CA, server and client certificate (the harness's `make_certs`).
fn certs(dir: &Path) {
    let status = Command::new("bash")
        .arg("-c")
        .arg("source \"$1\" && make_certs \"$2\"")
        .arg("bash")
        .arg(root().join(".ci/peers/lib.sh"))
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "make_certs failed: {status}");
}

/// Waits for `child` to exit within `limit`; kills it and fails otherwise.
fn wait(mut child: Child, what: &str, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

fn ship_through_null_sink(compression: &str, count: u64) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certs(d);
    let p = |name: &str| d.join(name).display().to_string();
    let corpus = d.join("events.ndjson");
    let lines: String = (0..300)
        .map(|i| {
            format!(
                "{{\"message\":\"event {i} {}\",\"n\":{i}}}\n",
                "x".repeat(i % 97)
            )
        })
        .collect();
    std::fs::write(&corpus, lines).unwrap();
    let stats = d.join("stats.json");
    let mut sink = Command::new(env!("CARGO_BIN_EXE_null-sink"))
        .args(["--listen", "127.0.0.1:0", "--expect", &count.to_string()])
        .args(["--deadline", "60", "--tls-cert", &p("server.crt")])
        .args(["--tls-key", &p("server.key"), "--tls-ca", &p("ca.crt")])
        .arg("--stats-file")
        .arg(&stats)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = sink.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("null-sink printed no READY line within 10 s");
    let addr = ready
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("not a READY line: {ready:?}"))
        .trim()
        .to_string();
    let client = Command::new(golumber())
        .args([
            "client",
            "--mode",
            "async",
            "--batch",
            "2048",
            "--pipelining",
            "2",
        ])
        .args(["--addr", &addr, "--compression", compression])
        .args(["--tls-ca", &p("ca.crt"), "--tls-cert", &p("client.crt")])
        .args(["--tls-key", &p("client.key"), "--timeout", "10s"])
        .arg("--file")
        .arg(&corpus)
        .args(["--count", &count.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let status = wait(client, "go-lumber's client", STEP);
    assert!(status.success(), "go-lumber's client failed: {status}");
    let status = wait(sink, "null-sink", STEP);
    assert!(
        status.success(),
        "null-sink did not reach --expect: {status}"
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(s["events"], count, "{s}");
    assert_eq!(s["windows"], count.div_ceil(2048), "{s}");
    assert!(s["first_to_last_s"].as_f64().unwrap() > 0.0, "{s}");
}

#[test]
fn go_lumber_compressed_windows_are_acked_with_their_count_over_mutual_tls() {
    ship_through_null_sink("3", 20_000);
}

#[test]
fn go_lumber_plain_json_frames_are_counted_one_by_one() {
    ship_through_null_sink("0", 5_000);
}
