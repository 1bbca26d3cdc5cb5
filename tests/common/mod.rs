//! Helpers for tests that run the real `skidder` binary.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod reap;

/// The binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_skidder"))
}

/// Writes `yaml` to `dir/skidder.yml` and returns its path.
pub fn config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("skidder.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The result of a finished run.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The `skidder totals:` line as key → value.
    pub fn totals(&self) -> HashMap<String, String> {
        totals(&self.stderr)
    }
}

/// Parses the `skidder totals:` line of `stderr`.
pub fn totals(stderr: &str) -> HashMap<String, String> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("skidder totals:"))
        .unwrap_or_else(|| panic!("no totals line in stderr:\n{stderr}"));
    line["skidder totals:".len()..]
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs skidder with `args` in `dir`, feeding `stdin`, and waits at most 60 s.
pub fn run(dir: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = bin()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = wait_output(child, Duration::from_secs(60));
    writer.join().unwrap();
    out
}

/// Waits for `child` to exit within `limit` (killing it and failing otherwise).
pub fn wait_output(mut child: Child, limit: Duration) -> Run {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let status = wait_exit(&mut child, limit);
    Run {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// How often a bounded wait re-checks its condition: short next to every limit, long
/// enough not to spin on the shared cores.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// The one bounded wait of the test helpers: re-checks `probe` until it yields a value,
/// or returns `None` once `limit` has passed. Callers whose failure message needs the
/// state at the time build it themselves; the others use [`wait_until`].
pub fn poll<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Bounded wait for `cond`, failing with `what`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    if poll(limit, || cond().then_some(())).is_none() {
        panic!("timed out after {limit:?} waiting for {what}");
    }
}

/// Bounded wait for skidder to exit.
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    wait_child_exit("skidder", child, limit)
}

/// Bounded wait for the process `name` to exit; kills it and fails after `limit`.
pub fn wait_child_exit(name: &str, child: &mut Child, limit: Duration) -> ExitStatus {
    match poll(limit, || child.try_wait().unwrap()) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            panic!("{name} did not exit within {limit:?}");
        }
    }
}

/// Streams a child's stderr lines into a channel and keeps a copy of all of them.
pub struct LineWatch {
    rx: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl LineWatch {
    pub fn new(stderr: impl std::io::Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits up to `limit` for a line containing `needle`.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) {
        self.wait_for_line(&format!("containing {needle:?}"), limit, |line| {
            line.contains(needle)
        });
    }

    /// Waits up to `limit` for a line that satisfies `matches` (described by `what` in the
    /// failure message).
    pub fn wait_for_line(&mut self, what: &str, limit: Duration, matches: impl Fn(&str) -> bool) {
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = matches(&line);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no stderr line {what} within {limit:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Everything until the stream closes.
    pub fn rest(mut self) -> String {
        while let Ok(line) = self.rx.recv_timeout(Duration::from_secs(30)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

/// Starts `skidder run -e -c <config>` in `dir` with stderr watched line by line; the child is
/// killed when the returned [`reap::Reap`] drops, also when the test panics.
pub fn spawn_run(dir: &Path, config: &Path) -> (reap::Reap, LineWatch) {
    let mut child = reap::Reap(
        bin()
            .current_dir(dir)
            .args(["run", "-e", "-c"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = LineWatch::new(child.0.stderr.take().unwrap());
    (child, lines)
}

/// Runs `skidder run -e -c <config>` in `dir` to its end (at most 60 s).
pub fn run_config(dir: &Path, config: &Path) -> Run {
    run(dir, &["run", "-e", "-c", config.to_str().unwrap()], b"")
}
