//! The go-lumber test peer (tests/peers/golumber): built on demand, run as a server, and
//! its NDJSON output and stats read back.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn newest_source(dir: &Path) -> SystemTime {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.ends_with(".go") || n == "go.mod" || n == "go.sum"
        })
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The peer binary, built by `.ci/peers/build-golumber.sh` once per test process when it is
/// missing or older than its sources.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = repo().join("tests/peers/golumber");
        let bin = dir.join("bin/golumber");
        let fresh = bin
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= newest_source(&dir));
        if !fresh {
            let out = Command::new("bash")
                .arg(repo().join(".ci/peers/build-golumber.sh"))
                .output()
                .expect("run .ci/peers/build-golumber.sh (needs bash and Go)");
            assert!(
                out.status.success(),
                "building the go-lumber peer failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        bin
    })
}

/// A running `golumber server`.
pub struct Server {
    child: Child,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// Accepted events, one NDJSON line each.
    pub out: PathBuf,
    /// The stats line written at exit.
    pub stats: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server on a free loopback port with `args` added (e.g. `--fault never-ack`).
    pub fn start(args: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", args)
    }

    /// Starts a TLS server presenting `cert`/`key` (PEM paths) that requires client
    /// certificates issued by `client_ca`.
    pub fn start_mutual_tls(cert: &str, key: &str, client_ca: &str) -> Self {
        Self::start(&[
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--tls-ca",
            client_ca,
            "--require-client-cert",
        ])
    }

    /// Starts a server listening on `listen`.
    pub fn start_on(listen: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.ndjson");
        let stats = dir.path().join("stats.json");
        let mut child = Command::new(binary())
            .args(["server", "--listen", listen])
            .arg("--out")
            .arg(&out)
            .arg("--stats-file")
            .arg(&stats)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start golumber server");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        // Keep stderr drained so the peer never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("GOLUMBER_VERBOSE").is_some() {
                    eprintln!("golumber: {line}");
                }
            }
        });
        let addr = ready_addr(stdout, "golumber server");
        Self {
            child,
            addr,
            out,
            stats,
            _dir: dir,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// `seq` → how many times it was accepted.
    pub fn seqs(&self) -> BTreeMap<u64, u32> {
        seqs(&self.out)
    }

    /// Lines (events) accepted so far.
    pub fn accepted(&self) -> usize {
        std::fs::read_to_string(&self.out)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Waits up to `limit` until at least `n` events were accepted.
    pub fn wait_accepted(&self, n: usize, limit: Duration) {
        if crate::common::poll(limit, || (self.accepted() >= n).then_some(())).is_none() {
            panic!(
                "golumber accepted only {} of {n} events within {limit:?}",
                self.accepted()
            );
        }
    }

    /// Stops the server (SIGTERM, bounded wait) and returns its stats line.
    pub fn stop(mut self) -> serde_json::Value {
        // SAFETY: kill(2) on the pid of our own, still unreaped child; no memory is shared.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        crate::common::wait_child_exit("golumber server", &mut self.child, Duration::from_secs(10));
        let text = std::fs::read_to_string(&self.stats).unwrap_or_default();
        serde_json::from_str(text.trim()).unwrap_or(serde_json::Value::Null)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a golumber `--out` file: `seq` → count.
pub fn seqs(path: &Path) -> BTreeMap<u64, u32> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("golumber wrote a bad line {line:?}: {e}"));
        let seq = v["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("event without numeric seq: {line}"));
        *m.entry(seq).or_insert(0) += 1;
    }
    m
}

/// Asserts every seq `1..=n` is present at least once; returns the number of duplicates.
pub fn assert_all_delivered(seqs: &BTreeMap<u64, u32>, n: u64) -> u64 {
    let missing: Vec<u64> = (1..=n).filter(|s| !seqs.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{} of {n} events never arrived; first missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    let extra: Vec<u64> = seqs.keys().copied().filter(|s| *s == 0 || *s > n).collect();
    assert!(extra.is_empty(), "unexpected seqs {extra:?}");
    seqs.values().map(|&c| u64::from(c - 1)).sum()
}

/// The address of a peer's first stdout line, `READY host:port` (within 20 s); the rest
/// of its stdout is drained so it never blocks on a full pipe.
fn ready_addr(stdout: std::process::ChildStdout, what: &str) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what} printed no READY line within 20s"));
    line.strip_prefix("READY ")
        .unwrap_or_else(|| panic!("unexpected first line from {what}: {line:?}"))
        .trim()
        .to_string()
}

/// `golumber socks5`: github.com/armon/go-socks5, a SOCKS5 proxy nobody here wrote. Killed
/// on drop.
pub struct Socks5 {
    child: Child,
    /// `127.0.0.1:port`.
    pub addr: String,
}

impl Socks5 {
    /// Starts the proxy; with `auth`, only that user and password are accepted.
    pub fn start(auth: Option<(&str, &str)>) -> Self {
        let mut cmd = Command::new(binary());
        cmd.args(["socks5", "--listen", "127.0.0.1:0"]);
        if let Some((user, pass)) = auth {
            cmd.args(["--user", user, "--pass", pass]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start golumber socks5");
        let addr = ready_addr(child.stdout.take().unwrap(), "golumber socks5");
        Self { child, addr }
    }
}

impl Drop for Socks5 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
