//! Filebeat 7.17.29 as a peer (tests/peers/filebeat): built by `.ci/peers/filebeat.sh` on
//! first use, run with its home, data and config in a test's directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Filebeat binary; the build script is a no-op while its sources are unchanged.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join(".ci/peers/filebeat.sh"))
            .output()
            .expect("run .ci/peers/filebeat.sh (needs bash and Go)");
        assert!(
            out.status.success(),
            "building the Filebeat peer failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        repo().join("tests/peers/filebeat/bin/filebeat")
    })
}

/// Beats' module source (`filebeat/filebeat.yml`, `filebeat/filebeat.reference.yml`, …),
/// present once [`binary`] has built.
pub fn beats_source() -> PathBuf {
    binary();
    let out = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .expect("go env GOMODCACHE");
    let cache = String::from_utf8_lossy(&out.stdout).trim().to_string();
    PathBuf::from(cache).join("github.com/elastic/beats/v7@v7.17.29")
}

/// `filebeat -e -c DIR/filebeat.yml` with `yaml` written there, and home and data in `dir`.
/// Its log goes to stderr; stdout carries `output.console` events (and one stray
/// go-sysinfo line on cgroup-v2 machines: read only lines that parse as JSON).
pub fn command(dir: &Path, yaml: &str) -> Command {
    let config = dir.join("filebeat.yml");
    std::fs::write(&config, yaml).unwrap();
    let mut cmd = Command::new(binary());
    cmd.arg("-e")
        .arg("-c")
        .arg(&config)
        .arg("--path.home")
        .arg(dir)
        .arg("--path.data")
        .arg(dir.join("filebeat-data"))
        .arg("--path.logs")
        .arg(dir.join("filebeat-logs"))
        .arg("--strict.perms=false");
    cmd
}

/// The JSON objects among `text`'s lines (console output; other lines are skipped).
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(serde_json::Value::is_object)
        .collect()
}

/// Numbers compared as numbers (Go writes 1.50 as 1.5, an integer as an integer).
pub fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

/// `skidder run --once` on `yaml` (written into `dir`, which ends with `output.console`):
/// its events and its stdout, once it exited 0 within `limit`.
pub fn skidder_once(
    dir: &Path,
    yaml: &str,
    limit: std::time::Duration,
) -> (Vec<serde_json::Value>, String) {
    let cfg = crate::common::config(dir, yaml);
    let child = crate::common::bin()
        .current_dir(dir)
        .args(["run", "--once", "-e", "-c"])
        .arg(&cfg)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let run = crate::common::wait_output(child, limit);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    (json_lines(&run.stdout), run.stdout)
}

/// Filebeat on `yaml` (with `output.console`) until it has printed at least `want` events
/// (bounded by `limit`); the events, and the running Filebeat (stopped when dropped).
pub fn events_at_least(
    dir: &Path,
    yaml: &str,
    want: usize,
    limit: std::time::Duration,
) -> (Vec<serde_json::Value>, crate::common::reap::Reap) {
    let out = dir.join("filebeat.stdout");
    let child = command(dir, yaml)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = crate::common::reap::Reap(child);
    let read = || json_lines(&std::fs::read_to_string(&out).unwrap_or_default());
    let events = crate::common::poll(limit, || {
        let t = read();
        (t.len() >= want).then_some(t)
    })
    .unwrap_or_else(|| {
        let t = read();
        panic!(
            "Filebeat shipped {} events, skidder {want}:\n{t:#?}",
            t.len()
        )
    });
    (events, running)
}

/// Writes `files` (name, bytes) into a new `logs` directory under `dir`, returned.
pub fn write_logs(dir: &Path, files: impl IntoIterator<Item = (&'static str, Vec<u8>)>) -> PathBuf {
    let logs = dir.join("logs");
    std::fs::create_dir(&logs).unwrap();
    for (name, bytes) in files {
        std::fs::write(logs.join(name), bytes).unwrap();
    }
    logs
}
