//! Third-party Lumberjack clients (tests/peers) and a running `skidder` receiver, for the
//! receiver tests. Include with `#[path = "common/lumberjack_peers.rs"] mod peers;` next to
//! `mod common;`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::{bin, wait_exit, LineWatch};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds/installs the peers once per test process (`.ci/peers/setup.sh`, fast when done).
pub fn setup() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = DONE.get_or_init(|| {
        let out = Command::new("bash")
            .arg(root().join(".ci/peers/setup.sh"))
            .output()
            .map_err(|e| format!("cannot run .ci/peers/setup.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                ".ci/peers/setup.sh failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// `golumber client` with `args` (after `setup`).
pub fn golumber_client(args: &[&str]) -> Command {
    setup();
    let mut c = Command::new(root().join("tests/peers/golumber/bin/golumber"));
    c.arg("client").args(args);
    c
}

/// `node tests/peers/node-lumberjack/send.js` with `args`.
pub fn node_send(args: &[&str]) -> Command {
    setup();
    let mut c = Command::new("node");
    c.arg(root().join("tests/peers/node-lumberjack/send.js"))
        .args(args);
    c
}

/// `pylogbeat/send.py` in the peers' venv with `args`.
pub fn pylogbeat_send(args: &[&str]) -> Command {
    setup();
    let mut c = Command::new(root().join("tests/peers/.venv/bin/python"));
    c.arg(root().join("tests/peers/pylogbeat/send.py"))
        .args(args);
    c
}

/// Runs a peer command to its end within `limit`; returns its output and the parsed
/// JSON result line (the last stdout line that parses).
pub fn run_peer(mut cmd: Command, limit: Duration) -> (Output, serde_json::Value) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let out = wait_with_output(child, limit);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(serde_json::Value::Null);
    (out, json)
}

fn wait_with_output(mut child: Child, limit: Duration) -> Output {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut v);
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut v);
        v
    });
    let status = wait_exit(&mut child, limit);
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

/// A running skidder with a lumberjack input, stderr watched.
pub struct Receiver {
    pub child: Child,
    pub watch: LineWatch,
    pub addr: String,
}

impl Receiver {
    /// `skidder receive --listen 127.0.0.1:0 ARGS`, waiting for `listening on`.
    pub fn receive(args: &[&str]) -> Self {
        let mut cmd = bin();
        cmd.args(["receive", "--listen", "127.0.0.1:0"]).args(args);
        Self::start(cmd)
    }

    /// Any skidder command whose lumberjack input logs `listening on HOST:PORT`.
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut watch = LineWatch::new(child.stderr.take().unwrap());
        watch.wait_for("listening on", Duration::from_secs(20));
        let line = watch.seen.last().unwrap().clone();
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Self { child, watch, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the receiver (VmHWM), KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGTERM);
        }
    }

    /// Waits for the exit (at most `limit`); returns the exit code and all stderr.
    pub fn finish(mut self, limit: Duration) -> (Option<i32>, String) {
        let status = wait_exit(&mut self.child, limit);
        let watch = std::mem::replace(&mut self.watch, LineWatch::new(std::io::empty()));
        (status.code(), watch.rest())
    }

    /// Waits until stderr has a line containing `needle`.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) {
        self.watch.wait_for(needle, limit);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON of the `skidder receive: {...}` stats line.
pub fn receive_stats(stderr: &str) -> serde_json::Value {
    let line = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("skidder receive: {")
                .map(|r| format!("{{{r}"))
        })
        .unwrap_or_else(|| panic!("no stats line in stderr:\n{stderr}"));
    serde_json::from_str(&line).unwrap()
}
