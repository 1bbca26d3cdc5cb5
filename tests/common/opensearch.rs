//! The OpenSearch test peer (tests/peers/opensearch): started once per test binary with a
//! piped stdin, so it stops when this process exits, however it exits.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};

/// Bound on starting the node (a cold JVM on a busy 2-core machine).
pub const READY_WAIT: Duration = Duration::from_secs(240);

/// The running node.
pub struct Peer {
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// Held so the node's stdin stays open for the life of the process.
    _child: Mutex<Child>,
}

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// False (after printing why) only when Java or Maven is missing and
/// `SKIDDER_SKIP_OPENSEARCH=1` asks for the skip; panics when they are missing otherwise.
fn java_available() -> bool {
    if on_path("java") && on_path("mvn") {
        return true;
    }
    // CI installs both (.ci/peers/java.sh): a missing peer is a failure, never a silent
    // pass, unless the skip is asked for by name.
    if std::env::var("SKIDDER_SKIP_OPENSEARCH").as_deref() == Ok("1") {
        eprintln!("SKIPPED: java or mvn is missing and SKIDDER_SKIP_OPENSEARCH=1");
        return false;
    }
    panic!(
        "the OpenSearch peer needs java (17+) and mvn on PATH: run `bash .ci/peers/java.sh` \
         (Debian's default-jdk-headless and maven), or set SKIDDER_SKIP_OPENSEARCH=1 to \
         skip these tests explicitly"
    );
}

/// The shared node; `None` (after printing why) only when Java or Maven is missing and
/// `SKIDDER_SKIP_OPENSEARCH=1` asks for the skip. Panics otherwise when they are missing.
pub fn peer() -> Option<&'static Peer> {
    static PEER: OnceLock<Option<Peer>> = OnceLock::new();
    PEER.get_or_init(|| start("shared", &["-Xms256m", "-Xmx512m"], &[]))
        .as_ref()
}

/// Starts a node of its own with the JVM options `java_opts` and the node settings
/// `settings` (`KEY=VALUE`, passed as the peer's `--setting=`), for tests whose settings
/// would change what the shared node's other tests see. `name` tells the log files apart.
/// `None` as for [`peer`]. The node stops when this process exits.
pub fn start(name: &str, java_opts: &[&str], settings: &[&str]) -> Option<Peer> {
    if !java_available() {
        return None;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // Builds the jar only when its sources are newer.
    let build = Command::new("bash")
        .arg(root.join(".ci/peers/opensearch.sh"))
        .arg("build")
        .status()
        .expect("run .ci/peers/opensearch.sh build");
    assert!(build.success(), "building the OpenSearch peer failed");
    let jar = root.join("tests/peers/opensearch/target/opensearch-peer.jar");
    let log = std::env::temp_dir().join(format!(
        "skidder-opensearch-{name}-{}.log",
        std::process::id()
    ));
    let mut child = Command::new("java")
        .args(java_opts)
        .arg("-jar")
        .arg(&jar)
        .arg(format!("--ready-timeout-seconds={}", READY_WAIT.as_secs()))
        .args(settings.iter().map(|s| format!("--setting={s}")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("create the node's log file"))
        .spawn()
        .expect("spawn the OpenSearch peer");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("READY ") {
                let _ = tx.send(url.to_string());
                break;
            }
        }
    });
    let url = rx
        .recv_timeout(READY_WAIT + Duration::from_secs(10))
        .unwrap_or_else(|_| {
            let _ = child.kill();
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            panic!(
                "the OpenSearch peer ({name}) did not print READY within {READY_WAIT:?}; last log lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        });
    eprintln!(
        "OpenSearch peer ({name}) ready at {url} (log: {})",
        log.display()
    );
    Some(Peer {
        url,
        _child: Mutex::new(child),
    })
}

/// A small blocking admin client for checks (not the code under test): plain HTTP/1.1 over
/// loopback through reqwest's async client on a private runtime.
pub struct Admin {
    url: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Admin {
    /// A client for `peer`.
    pub fn new(peer: &Peer) -> Self {
        Self {
            url: peer.url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// `method path` with an optional JSON body: (status, JSON reply).
    pub fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}/{path}", self.url));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        self.rt.block_on(async {
            let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    /// POSTs `ndjson` to `_bulk` as it is: (status, JSON reply or the body as a string).
    pub fn bulk_raw(&self, ndjson: String) -> (u16, Value) {
        let req = self
            .http
            .post(format!("{}/_bulk", self.url))
            .header("content-type", "application/x-ndjson")
            .body(ndjson);
        self.rt.block_on(async {
            let resp = req.send().await.unwrap_or_else(|e| panic!("_bulk: {e}"));
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    /// Refreshes `index` and returns its document count (0 when it does not exist yet).
    pub fn count(&self, index: &str) -> u64 {
        let (status, _) = self.call(reqwest::Method::POST, &format!("{index}/_refresh"), None);
        if status == 404 {
            return 0;
        }
        let (status, reply) = self.call(reqwest::Method::GET, &format!("{index}/_count"), None);
        assert_eq!(status, 200, "count {index}: {reply}");
        reply["count"].as_u64().unwrap()
    }

    /// The numeric `field` of every document of `index` (at most 10 000 documents).
    pub fn field_values(&self, index: &str, field: &str) -> Vec<u64> {
        self.count(index);
        let (status, reply) = self.call(
            reqwest::Method::POST,
            &format!("{index}/_search"),
            Some(json!({"size": 10_000, "_source": [field]})),
        );
        assert_eq!(status, 200, "search {index}: {reply}");
        reply["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                h["_source"][field]
                    .as_u64()
                    .unwrap_or_else(|| panic!("document without numeric {field}: {h}"))
            })
            .collect()
    }
}
