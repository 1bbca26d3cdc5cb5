//! The end-to-end scenarios: one run = one server, one sender, the corpus sent `count`
//! times over, measured by the kernel (CPU, peak RSS), the relay (wire bytes) and the
//! receiving server (events/s between its first and last accepted batch).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::BenchError;
use crate::measure::{spawn, tail, Running, Usage};
use crate::relay::Relay;

/// Everything a run needs: programs, corpus, certificates, scratch space, sizes.
#[derive(Debug, Clone)]
pub struct Env {
    /// The release skidder binary.
    pub skidder: PathBuf,
    /// go-lumber peer (`tests/peers/golumber/bin/golumber`).
    pub golumber: PathBuf,
    /// The harness's null Lumberjack sink (`null-sink`, built beside `skidder-bench`).
    pub null_sink: PathBuf,
    /// ferro-lumberjack peer, or why it is unavailable.
    pub ferro: Result<PathBuf, String>,
    /// The corpus NDJSON file.
    pub corpus: PathBuf,
    /// Directory with ca.crt, server.crt/key, client.crt/key.
    pub certs: PathBuf,
    /// Scratch directory for configs and logs.
    pub work: PathBuf,
    /// Events per run.
    pub count: u64,
    /// OpenSearch base URL, or why there is none.
    pub opensearch: Result<String, String>,
}

/// Who sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// skidder's generator input (replay) → output.logstash.
    Skidder,
    /// go-lumber's async client.
    GoLumber,
    /// ferro-lumberjack's client (one window at a time, no client certificates).
    Ferro,
}

impl Sender {
    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Sender::Skidder => "skidder",
            Sender::GoLumber => "go-lumber client",
            Sender::Ferro => "ferro-lumberjack",
        }
    }
}

/// Lumberjack settings of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knobs {
    /// zlib level 0..=9.
    pub level: u32,
    /// Windows in flight.
    pub pipelining: u32,
    /// Mutual TLS instead of plain TCP.
    pub tls: bool,
    /// Through the counting relay (wire bytes) or straight to the server.
    pub relay: bool,
}

/// One measured run.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Events per second (receiving side, first to last accepted batch).
    pub events_per_s: f64,
    /// Wire bytes sender → server per event (TLS records included); NaN without relay.
    pub bytes_per_event: f64,
    /// CPU seconds (user + sys) of the measured process per million events.
    pub cpu_s_per_m: f64,
    /// Peak RSS of the measured process, KiB.
    pub max_rss_kib: u64,
    /// ACK latency p50, ms (bucket upper bound), if the sender reports it.
    pub ack_p50_ms: Option<f64>,
    /// ACK latency p99, ms.
    pub ack_p99_ms: Option<f64>,
    /// Disk queue: bytes written to segment files per event.
    pub disk_bytes_per_event: Option<f64>,
    /// Disk queue: fdatasync/fsync calls per million events.
    pub fsyncs_per_m: Option<f64>,
    /// Null sink runs: the sink's own CPU seconds per million events.
    pub sink_cpu_s_per_m: Option<f64>,
    /// Null sink runs: CPU time of other processes on the machine while skidder ran, in
    /// cores (machine busy time from `/proc/stat` minus skidder's and the sink's).
    pub other_cores: Option<f64>,
}

/// A scenario the current build or machine cannot run, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

/// Result of one run: a sample, the reason it cannot run here, or an error.
pub type RunResult = Result<Result<Sample, Unavailable>, BenchError>;

pub(crate) fn run_limit(count: u64) -> Duration {
    // Generous: 20k events/s would already be a failure worth reporting, not a hang.
    Duration::from_secs(60 + count / 20_000)
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

pub(crate) fn unique(env: &Env, name: &str) -> Result<PathBuf, BenchError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = env.work.join(format!("{n:03}-{name}"));
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// Which Lumberjack server a run uses (and, in scenario 6, measures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// `skidder receive --out discard`.
    Skidder,
    /// go-lumber's server.
    GoLumber,
}

impl Server {
    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Server::Skidder => "skidder receive",
            Server::GoLumber => "go-lumber server",
        }
    }
}

/// A started server: the process, where it listens, where its JSON stats will be.
pub(crate) type Started = (Running, SocketAddr, PathBuf);

/// Starts `kind` expecting `env.count` events; `Unavailable` if this build has no
/// `skidder receive`.
pub(crate) fn start_server(
    env: &Env,
    dir: &Path,
    kind: Server,
    tls: bool,
) -> Result<Result<Started, Unavailable>, BenchError> {
    let deadline = format!("{}s", run_limit(env.count).as_secs());
    let mut cmd = match kind {
        Server::GoLumber => {
            let mut cmd = Command::new(&env.golumber);
            cmd.args(["server", "--listen", "127.0.0.1:0", "--stats-file"])
                .arg(dir.join("server-stats.json"));
            cmd
        }
        Server::Skidder => {
            let mut cmd = Command::new(&env.skidder);
            cmd.args([
                "receive",
                "--listen",
                "127.0.0.1:0",
                "--out",
                "discard",
                "--stats",
            ])
            .args(["--log-level", "warn"]);
            cmd
        }
    };
    cmd.arg("--expect")
        .arg(env.count.to_string())
        .args(["--deadline", &deadline]);
    if tls {
        cmd.arg("--tls-cert")
            .arg(env.certs.join("server.crt"))
            .arg("--tls-key")
            .arg(env.certs.join("server.key"))
            .arg("--tls-ca")
            .arg(env.certs.join("ca.crt"))
            .arg("--require-client-cert");
    }
    let server = spawn(cmd, dir, "server")?;
    let marker = match kind {
        Server::GoLumber => "READY ",
        Server::Skidder => "listening on ",
    };
    let line = match server.wait_for_line(marker, Duration::from_secs(10)) {
        Ok(line) => line,
        Err(e) => {
            let err = tail(&dir.join("server.err"), 400);
            if kind == Server::Skidder
                && (err.contains("unrecognized subcommand") || err.contains("not available"))
            {
                return Ok(Err(Unavailable(
                    "unavailable: `skidder receive` is not in this build".into(),
                )));
            }
            return Err(e);
        }
    };
    let addr = parse_addr(&line, marker)?;
    let stats = match kind {
        Server::GoLumber => dir.join("server-stats.json"),
        Server::Skidder => dir.join("server.err"),
    };
    Ok(Ok((server, addr, stats)))
}

/// The server's JSON stats: go-lumber's stats file, or the `skidder receive: {...}`
/// line `--stats` prints on stderr.
pub(crate) fn server_stats(kind: Server, path: &Path) -> Result<serde_json::Value, BenchError> {
    let text = std::fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
    let json = match kind {
        Server::GoLumber => text.trim().to_string(),
        // The final summary is the last such line (progress lines have another prefix).
        Server::Skidder => text
            .lines()
            .rev()
            .find_map(|l| {
                l.strip_prefix("skidder receive: {")
                    .map(|r| format!("{{{r}"))
            })
            .unwrap_or_default(),
    };
    serde_json::from_str(&json).map_err(|e| BenchError::RunFailed {
        program: kind.name().into(),
        code: 0,
        detail: format!(
            "no JSON stats in {} ({e}): {}",
            path.display(),
            tail(path, 300)
        ),
    })
}

pub(crate) fn parse_addr(line: &str, after: &str) -> Result<SocketAddr, BenchError> {
    let text = line
        .split(after)
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or("");
    text.parse().map_err(|_| BenchError::RunFailed {
        program: "server".into(),
        code: 0,
        detail: format!("no address in {line:?}"),
    })
}

/// Events/s from a server's JSON stats (go-lumber's stats file or `skidder receive --stats`).
pub(crate) fn server_rate(stats: &serde_json::Value, count: u64) -> Result<f64, String> {
    let events = stats["events"].as_u64().unwrap_or(0);
    if events < count {
        return Err(format!("server accepted {events} of {count} events"));
    }
    let span = stats["first_to_last_s"].as_f64().unwrap_or(0.0);
    let span = if span > 0.0 {
        span
    } else {
        stats["elapsed_s"].as_f64().unwrap_or(0.0)
    };
    if span <= 0.0 {
        return Err("server reported no elapsed time".into());
    }
    Ok(events as f64 / span)
}

fn cert(env: &Env, name: &str) -> String {
    env.certs.join(name).display().to_string()
}

/// skidder's configuration for one sender run (default queue settings).
fn skidder_config(env: &Env, dir: &Path, output: &str) -> String {
    format!(
        "skidder.inputs:\n  - type: generator\n    count: {count}\n    replay: {corpus:?}\n{output}\
         path.home: {home:?}\nlogging.level: info\nlogging.metrics.enabled: false\n",
        count = env.count,
        corpus = env.corpus.display().to_string(),
        home = dir.display().to_string(),
    )
}

fn logstash_output(env: &Env, hosts: &[SocketAddr], k: Knobs) -> String {
    let hosts: Vec<String> = hosts.iter().map(|a| format!("\"{a}\"")).collect();
    let mut out = format!(
        "output.logstash:\n  hosts: [{}]\n  compression_level: {}\n  bulk_max_size: 2048\n  pipelining: {}\n",
        hosts.join(", "),
        k.level,
        k.pipelining
    );
    if k.tls {
        out += &format!(
            "  ssl:\n    certificate_authorities: [{:?}]\n    certificate: {:?}\n    key: {:?}\n",
            cert(env, "ca.crt"),
            cert(env, "client.crt"),
            cert(env, "client.key")
        );
    }
    out
}

/// Runs skidder with `config`; returns its usage and stderr, or why it refused.
pub(crate) fn run_skidder(
    env: &Env,
    dir: &Path,
    config: &str,
) -> Result<Result<(Usage, String), Unavailable>, BenchError> {
    let file = dir.join("skidder.yml");
    std::fs::write(&file, config).map_err(io(format!("writing {}", file.display())))?;
    let mut cmd = Command::new(&env.skidder);
    cmd.arg("-c").arg(&file).arg("-e").current_dir(dir);
    let child = spawn(cmd, dir, "skidder")?;
    let usage = child.wait(run_limit(env.count))?;
    let stderr = std::fs::read_to_string(dir.join("skidder.err")).unwrap_or_default();
    if usage.code != 0 || !stderr.contains("skidder totals:") {
        if let Some(line) = stderr
            .lines()
            .find(|l| l.contains("not available in this build"))
        {
            return Ok(Err(Unavailable(refusal(line))));
        }
        return Err(BenchError::RunFailed {
            program: "skidder".into(),
            code: usage.code,
            detail: tail(&dir.join("skidder.err"), 800),
        });
    }
    Ok(Ok((usage, stderr)))
}

/// The interesting part of a refusal line (after the last "error:" if any).
fn refusal(line: &str) -> String {
    // "skidder: <reason>", "Error: <reason>" or a log line ending in "error: <reason>":
    // the reason starts after the last ": " before "not available".
    let at = line.find("not available").unwrap_or(0);
    let start = line[..at].rfind(": ").map_or(0, |i| i + 2);
    let text = line[start..].trim();
    let text = text.split("; use ").next().unwrap_or(text);
    format!("unavailable: {text}")
}

/// `key=value` from skidder's totals line.
pub(crate) fn totals_field(stderr: &str, key: &str) -> Option<f64> {
    let line = stderr.lines().find(|l| l.contains("skidder totals:"))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// ACK latency quantile from the Logstash output's host summary (`ack_p50_ms<=5`).
fn ack_quantile(stderr: &str, name: &str) -> Option<f64> {
    let prefix = format!("ack_{name}_ms<=");
    // Several hosts or workers: the worst host, which is what a user would notice.
    stderr
        .lines()
        .filter(|l| l.contains("logstash output host totals"))
        .filter_map(|l| {
            l.split(|c: char| c.is_whitespace() || c == '"')
                .find_map(|t| t.strip_prefix(prefix.as_str()))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .reduce(f64::max)
}

fn sample(count: u64, rate: f64, bytes: Option<u64>, usage: &Usage) -> Sample {
    Sample {
        events_per_s: rate,
        bytes_per_event: bytes.map_or(f64::NAN, |b| b as f64 / count as f64),
        cpu_s_per_m: usage.cpu_s * 1e6 / count as f64,
        max_rss_kib: usage.max_rss_kib,
        ack_p50_ms: None,
        ack_p99_ms: None,
        disk_bytes_per_event: None,
        fsyncs_per_m: None,
        sink_cpu_s_per_m: None,
        other_cores: None,
    }
}

/// Busy and total CPU seconds of the whole machine since boot (`/proc/stat`'s `cpu` line;
/// idle and iowait are not busy).
fn machine_cpu() -> Option<(f64, f64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some(((total - idle) / hz, total / hz))
}

/// One sender run against `server`; the sender is the measured process.
///
/// # Errors
/// [`BenchError`] when something broke (not when the build refuses the scenario).
pub fn run_sender(env: &Env, sender: Sender, server_kind: Server, k: Knobs) -> RunResult {
    let ferro = match (sender, &env.ferro) {
        (Sender::Ferro, Err(why)) => return Ok(Err(Unavailable(why.clone()))),
        (Sender::Ferro, Ok(_)) if k.tls => {
            return Ok(Err(Unavailable(
                "unavailable: ferro-lumberjack 1.0 cannot present a client certificate".into(),
            )))
        }
        (Sender::Ferro, Ok(p)) => Some(p.clone()),
        _ => None,
    };
    let dir = unique(env, sender.name().split(' ').next().unwrap_or("run"))?;
    let (server, server_addr, stats) = match start_server(env, &dir, server_kind, k.tls)? {
        Ok(v) => v,
        Err(u) => return Ok(Err(u)),
    };
    let relay = if k.relay {
        Some(Relay::start(server_addr)?)
    } else {
        None
    };
    let addr = relay.as_ref().map_or(server_addr, |r| r.addr);
    let (usage, stderr) = match sender {
        Sender::Skidder => {
            let config = skidder_config(env, &dir, &logstash_output(env, &[addr], k));
            match run_skidder(env, &dir, &config)? {
                Ok(v) => v,
                Err(u) => {
                    server.terminate(Duration::from_secs(5));
                    return Ok(Err(u));
                }
            }
        }
        Sender::GoLumber | Sender::Ferro => {
            let mut cmd = match &ferro {
                Some(p) => Command::new(p),
                None => golumber_client(env, k),
            };
            cmd.arg("--addr")
                .arg(addr.to_string())
                .arg("--compression")
                .arg(k.level.to_string())
                .arg("--file")
                .arg(&env.corpus)
                .arg("--count")
                .arg(env.count.to_string());
            let child = spawn(cmd, &dir, "client")?;
            let usage = child.wait(run_limit(env.count))?;
            if usage.code != 0 {
                return Err(BenchError::RunFailed {
                    program: sender.name().into(),
                    code: usage.code,
                    detail: tail(&dir.join("client.out"), 400)
                        + " "
                        + &tail(&dir.join("client.err"), 400),
                });
            }
            (usage, String::new())
        }
    };
    let server_usage = server.wait(Duration::from_secs(30))?;
    let stats = server_stats(server_kind, &stats)?;
    let rate = server_rate(&stats, env.count).map_err(|detail| BenchError::RunFailed {
        program: server_kind.name().into(),
        code: server_usage.code,
        detail,
    })?;
    let mut s = sample(env.count, rate, relay.as_ref().map(Relay::up_bytes), &usage);
    if sender == Sender::Skidder {
        s.ack_p50_ms = ack_quantile(&stderr, "p50");
        s.ack_p99_ms = ack_quantile(&stderr, "p99");
        if totals_field(&stderr, "acked").map(|a| a as u64) != Some(env.count) {
            return Err(BenchError::RunFailed {
                program: "skidder".into(),
                code: usage.code,
                detail: format!(
                    "not every event was acked: {}",
                    tail(&dir.join("skidder.err"), 400)
                ),
            });
        }
    }
    Ok(Ok(s))
}

/// The queue of a queue-comparison run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// `queue.mem` with its defaults.
    Memory,
    /// `queue.disk` with this `sync` (`batch`, `interval`, `none`), unbounded size.
    Disk(&'static str),
}

impl QueueKind {
    /// Name in the report.
    pub fn name(self) -> String {
        match self {
            QueueKind::Memory => "memory queue".into(),
            QueueKind::Disk(sync) => format!("disk queue, sync: {sync}"),
        }
    }

    fn yaml(self, dir: &Path) -> String {
        match self {
            QueueKind::Memory => String::new(),
            QueueKind::Disk(sync) => format!(
                "queue.disk:\n  path: {:?}\n  max_size: 0\n  sync: {sync}\n",
                dir.join("queue").display().to_string()
            ),
        }
    }
}

/// skidder (generator replay → `queue` → output.logstash) → go-lumber server; skidder is
/// measured, with what the disk queue wrote and synced.
///
/// # Errors
/// [`BenchError`] when something broke.
pub fn run_queue(env: &Env, queue: QueueKind, k: Knobs) -> RunResult {
    let dir = unique(env, "queue")?;
    let (server, server_addr, stats) = match start_server(env, &dir, Server::GoLumber, k.tls)? {
        Ok(v) => v,
        Err(u) => return Ok(Err(u)),
    };
    let output = logstash_output(env, &[server_addr], k) + &queue.yaml(&dir);
    let config = skidder_config(env, &dir, &output);
    let (usage, stderr) = match run_skidder(env, &dir, &config)? {
        Ok(v) => v,
        Err(u) => {
            server.terminate(Duration::from_secs(5));
            return Ok(Err(u));
        }
    };
    let server_usage = server.wait(Duration::from_secs(30))?;
    let stats = server_stats(Server::GoLumber, &stats)?;
    let rate = server_rate(&stats, env.count).map_err(|detail| BenchError::RunFailed {
        program: "go-lumber server".into(),
        code: server_usage.code,
        detail,
    })?;
    let mut s = sample(env.count, rate, None, &usage);
    if let QueueKind::Disk(_) = queue {
        let n = env.count as f64;
        s.disk_bytes_per_event = totals_field(&stderr, "disk_write_bytes").map(|b| b / n);
        s.fsyncs_per_m = totals_field(&stderr, "fsyncs").map(|f| f * 1e6 / n);
        let _ = std::fs::remove_dir_all(dir.join("queue"));
    }
    Ok(Ok(s))
}

/// Peak RSS (KiB) of skidder filling a disk queue with `events` corpus events while the
/// output is down, then of skidder draining that backlog to go-lumber; and the backlog's
/// size on disk in bytes. The queue directory is deleted afterwards.
///
/// # Errors
/// [`BenchError`] when something broke.
pub fn run_backlog(
    env: &Env,
    events: u64,
    lines: &[String],
    packed: bool,
) -> Result<(u64, u64, u64), BenchError> {
    let dir = unique(env, "backlog")?;
    let queue = QueueKind::Disk("batch");
    let qdir = dir.join("queue");
    // Plain frames hold the corpus lines byte for byte, cycled, plus 16 bytes each; write
    // batches are padded to 4 KiB blocks, so the queue reaches this size a little before
    // every event is written: the drain expects what the fill published. Packed windows
    // (docs/disk-queue.md §11) take a size no one can predict: the fill is done when the
    // queue stops growing.
    let want: u64 = (0..events)
        .map(|i| lines[i as usize % lines.len()].len() as u64 + 16)
        .sum();
    // Level 0 sends plain J frames, so the queue does not pack: the bytes of the events.
    let level = if packed { 3 } else { 0 };
    let dead = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("binding a port"))?;
    let dead_addr = dead.local_addr().map_err(io("reading a port"))?;
    drop(dead);
    let fill_env = Env {
        count: events,
        ..env.clone()
    };
    let output = format!(
        "output.logstash:\n  hosts: [\"{dead_addr}\"]\n  compression_level: {level}\n  backoff:\n    init: 1s\n    max: 5s\n"
    ) + &queue.yaml(&dir)
        + "shutdown_timeout: 0s\n";
    let file = dir.join("fill.yml");
    std::fs::write(&file, skidder_config(&fill_env, &dir, &output))
        .map_err(io(format!("writing {}", file.display())))?;
    let mut cmd = Command::new(&env.skidder);
    cmd.arg("-c").arg(&file).arg("-e").current_dir(&dir);
    let child = spawn(cmd, &dir, "fill")?;
    let limit = Instant::now() + run_limit(events);
    let on_disk = |d: &Path| -> u64 {
        std::fs::read_dir(d)
            .map(|r| {
                r.filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    let mut last = (0u64, Instant::now());
    loop {
        let now = on_disk(&qdir);
        if now != last.0 {
            last = (now, Instant::now());
        }
        let done = if packed {
            // The generator writes without pause until it is done.
            now > 0 && last.1.elapsed() >= Duration::from_secs(2)
        } else {
            now >= want
        };
        if done {
            break;
        }
        if Instant::now() > limit {
            child.terminate(Duration::from_secs(5));
            return Err(BenchError::RunFailed {
                program: "skidder (backlog fill)".into(),
                code: -1,
                detail: format!("the queue reached only {} of {want} bytes", on_disk(&qdir)),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let fill = child.terminate(Duration::from_secs(20));
    let bytes = on_disk(&qdir);
    let fill_err = std::fs::read_to_string(dir.join("fill.err")).unwrap_or_default();
    // What the queue holds, not what was published: a batch written durably when the stop
    // came is kept (at least once) although its publish was not counted, so `unacked` can
    // exceed `published` by one batch. Expecting only `published` let the server stop
    // before the drain had sent that batch, and the drain then retried forever.
    let queued = totals_field(&fill_err, "unacked")
        .or_else(|| totals_field(&fill_err, "published"))
        .map_or(events, |p| p as u64);

    // Drain: the backlog plus one fresh event.
    let drain_env = Env {
        count: queued + 1,
        ..env.clone()
    };
    let (server, addr, _stats) = match start_server(&drain_env, &dir, Server::GoLumber, false)? {
        Ok(v) => v,
        Err(Unavailable(why)) => {
            return Err(BenchError::RunFailed {
                program: "go-lumber server".into(),
                code: -1,
                detail: why,
            })
        }
    };
    let one = Env {
        count: 1,
        ..env.clone()
    };
    let k = Knobs {
        level: 3,
        pipelining: 2,
        tls: false,
        relay: false,
    };
    let output = logstash_output(env, &[addr], k) + &queue.yaml(&dir);
    let r = run_skidder(&drain_env, &dir, &skidder_config(&one, &dir, &output))?;
    server.wait(Duration::from_secs(30))?;
    let _ = std::fs::remove_dir_all(&qdir);
    let (drain, _) = r.map_err(|u| BenchError::RunFailed {
        program: "skidder (backlog drain)".into(),
        code: -1,
        detail: u.0,
    })?;
    Ok((fill.max_rss_kib, drain.max_rss_kib, bytes))
}

/// One point of the worker-scaling sweep: `worker` connections per host, over `hosts`
/// null-sink listeners (`loadbalance: true` when there are several).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// `output.logstash.worker`.
    pub workers: usize,
    /// Hosts in `output.logstash.hosts`, each a listener of the one null-sink process.
    pub hosts: usize,
    /// `queue.mem.events`, when written (unset, skidder sizes it for the connections).
    pub queue_events: Option<usize>,
}

impl Scale {
    /// Name in the report.
    pub fn name(self) -> String {
        let lb = if self.hosts > 1 { ", loadbalance" } else { "" };
        let queue = self
            .queue_events
            .map_or_else(String::new, |n| format!(", queue.mem.events: {n}"));
        format!(
            "worker: {}, {} host{}{lb}{queue}",
            self.workers,
            self.hosts,
            if self.hosts == 1 { "" } else { "s" }
        )
    }
}

/// skidder (generator replay → default queue → output.logstash) → the null sink, which
/// skips payloads and ACKs windows: the sender measured alone. The sink's own CPU is
/// recorded too, to show it is negligible.
///
/// # Errors
/// [`BenchError`] when something broke.
pub fn run_scaling(env: &Env, scale: Scale, k: Knobs) -> RunResult {
    let dir = unique(env, "scaling")?;
    let deadline = run_limit(env.count).as_secs().to_string();
    let mut cmd = Command::new(&env.null_sink);
    for _ in 0..scale.hosts {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    cmd.arg("--expect")
        .arg(env.count.to_string())
        .args(["--deadline", &deadline])
        .arg("--stats-file")
        .arg(dir.join("sink-stats.json"));
    if k.tls {
        cmd.arg("--tls-cert")
            .arg(env.certs.join("server.crt"))
            .arg("--tls-key")
            .arg(env.certs.join("server.key"))
            .arg("--tls-ca")
            .arg(env.certs.join("ca.crt"));
    }
    let sink = spawn(cmd, &dir, "sink")?;
    let line = sink.wait_for_line("READY ", Duration::from_secs(10))?;
    let addrs: Vec<SocketAddr> = line
        .split("READY ")
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|a| a.parse().ok())
        .collect();
    if addrs.len() != scale.hosts {
        return Err(BenchError::RunFailed {
            program: "null-sink".into(),
            code: 0,
            detail: format!("expected {} addresses in {line:?}", scale.hosts),
        });
    }
    let mut output = logstash_output(env, &addrs, k);
    output += &format!(
        "  worker: {}\n  loadbalance: {}\n",
        scale.workers,
        scale.hosts > 1
    );
    if let Some(n) = scale.queue_events {
        output += &format!("queue.mem.events: {n}\n");
    }
    let config = skidder_config(env, &dir, &output);
    let before = machine_cpu();
    let (usage, stderr) = match run_skidder(env, &dir, &config)? {
        Ok(v) => v,
        Err(u) => {
            sink.terminate(Duration::from_secs(5));
            return Ok(Err(u));
        }
    };
    let after = machine_cpu();
    let sink_usage = sink.wait(Duration::from_secs(30))?;
    let stats = server_stats(Server::GoLumber, &dir.join("sink-stats.json"))?;
    let rate = server_rate(&stats, env.count).map_err(|detail| BenchError::RunFailed {
        program: "null-sink".into(),
        code: sink_usage.code,
        detail,
    })?;
    if totals_field(&stderr, "acked").map(|a| a as u64) != Some(env.count) {
        return Err(BenchError::RunFailed {
            program: "skidder".into(),
            code: usage.code,
            detail: format!(
                "not every event was acked: {}",
                tail(&dir.join("skidder.err"), 400)
            ),
        });
    }
    let mut s = sample(env.count, rate, None, &usage);
    s.ack_p50_ms = ack_quantile(&stderr, "p50");
    s.ack_p99_ms = ack_quantile(&stderr, "p99");
    s.sink_cpu_s_per_m = Some(sink_usage.cpu_s * 1e6 / env.count as f64);
    // What else ran meanwhile: on a shared machine it takes the cores a second worker needs.
    if let (Some((b0, _)), Some((b1, _))) = (before, after) {
        let other = (b1 - b0) - usage.cpu_s - sink_usage.cpu_s;
        s.other_cores = Some(other.max(0.0) / usage.wall_s.max(1e-9));
    }
    Ok(Ok(s))
}

/// The scaling runs' input alone: the same generator replay → default memory queue →
/// `output.discard`. What the sender's process spends before any output work (the
/// generator's thread, the queue hand-off, the acknowledgements), to be read beside the
/// worker-scaling points, which include it.
///
/// # Errors
/// [`BenchError`] when something broke or not every event was acknowledged.
pub fn run_input_only(env: &Env) -> RunResult {
    let dir = unique(env, "input-only")?;
    let config = skidder_config(env, &dir, "output.discard: {}\n");
    let (usage, stderr) = match run_skidder(env, &dir, &config)? {
        Ok(v) => v,
        Err(u) => return Ok(Err(u)),
    };
    if totals_field(&stderr, "acked").map(|a| a as u64) != Some(env.count) {
        return Err(BenchError::RunFailed {
            program: "skidder (output.discard)".into(),
            code: usage.code,
            detail: format!(
                "not every event was acked: {}",
                tail(&dir.join("skidder.err"), 400)
            ),
        });
    }
    let rate = env.count as f64 / usage.wall_s.max(1e-9);
    let s = sample(env.count, rate, None, &usage);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Ok(s))
}

/// go-lumber's async client with the window and pipelining of `k` (TLS flags included);
/// the caller adds address, level, file and count.
fn golumber_client(env: &Env, k: Knobs) -> Command {
    let mut c = Command::new(&env.golumber);
    c.args(["client", "--mode", "async", "--batch", "2048"])
        .arg("--pipelining")
        .arg(k.pipelining.to_string());
    if k.tls {
        c.arg("--tls-ca")
            .arg(cert(env, "ca.crt"))
            .arg("--tls-cert")
            .arg(cert(env, "client.crt"))
            .arg("--tls-key")
            .arg(cert(env, "client.key"));
    }
    c
}

/// go-lumber's async client → `server_kind`; the server is the measured process.
///
/// # Errors
/// [`BenchError`] when something broke.
pub fn run_receiver(env: &Env, server_kind: Server, k: Knobs) -> RunResult {
    let dir = unique(env, "receive")?;
    let (server, server_addr, stats_file) = match start_server(env, &dir, server_kind, k.tls)? {
        Ok(v) => v,
        Err(u) => return Ok(Err(u)),
    };
    let relay = Relay::start(server_addr)?;
    let mut cmd = golumber_client(env, k);
    cmd.arg("--addr")
        .arg(relay.addr.to_string())
        .arg("--compression")
        .arg(k.level.to_string())
        .arg("--file")
        .arg(&env.corpus)
        .arg("--count")
        .arg(env.count.to_string());
    let client = spawn(cmd, &dir, "client")?;
    let client_usage = client.wait(run_limit(env.count))?;
    let usage = server.wait(Duration::from_secs(30))?;
    if client_usage.code != 0 || usage.code != 0 {
        return Err(BenchError::RunFailed {
            program: format!("go-lumber client -> {}", server_kind.name()),
            code: if usage.code != 0 {
                usage.code
            } else {
                client_usage.code
            },
            detail: tail(&dir.join("client.out"), 300)
                + " | "
                + &tail(&dir.join("server.err"), 400),
        });
    }
    let stats = server_stats(server_kind, &stats_file)?;
    let rate = server_rate(&stats, env.count).map_err(|detail| BenchError::RunFailed {
        program: server_kind.name().into(),
        code: usage.code,
        detail,
    })?;
    Ok(Ok(sample(env.count, rate, Some(relay.up_bytes()), &usage)))
}

/// skidder generator → output.elasticsearch → OpenSearch (through the relay).
///
/// # Errors
/// [`BenchError`] when something broke.
pub fn run_elasticsearch(env: &Env, level: u32) -> RunResult {
    let url = match &env.opensearch {
        Ok(url) => url.clone(),
        Err(why) => return Ok(Err(Unavailable(why.clone()))),
    };
    let dir = unique(env, "es")?;
    let hostport = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let upstream: SocketAddr = match std::net::ToSocketAddrs::to_socket_addrs(&hostport)
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => a,
        None => {
            return Ok(Err(Unavailable(format!(
                "unavailable: cannot resolve OpenSearch at {url}"
            ))))
        }
    };
    let relay = Relay::start(upstream)?;
    let index = format!(
        "skidder-bench-{}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("run")
    );
    let output = format!(
        "output.elasticsearch:\n  hosts: [\"http://{}\"]\n  index: {index:?}\n  compression_level: {level}\n  bulk_max_size: 2048\n",
        relay.addr
    );
    let config = skidder_config(env, &dir, &output);
    let (usage, stderr) = match run_skidder(env, &dir, &config)? {
        Ok(v) => v,
        Err(u) => return Ok(Err(u)),
    };
    if totals_field(&stderr, "acked").map(|a| a as u64) != Some(env.count) {
        return Err(BenchError::RunFailed {
            program: "skidder".into(),
            code: usage.code,
            detail: format!(
                "not every event was acked: {}",
                tail(&dir.join("skidder.err"), 400)
            ),
        });
    }
    let rate = totals_field(&stderr, "events_per_s").unwrap_or(0.0);
    Ok(Ok(sample(env.count, rate, Some(relay.up_bytes()), &usage)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_totals_and_ack_quantiles() {
        let err = "2026-11-28T00:00:01Z INFO skidder::outputs::logstash::worker: logstash output host totals host=127.0.0.1:5044 summary=connections=1 windows=49 ack_p50_ms<=5 ack_p99_ms<=20\n\
                   2026-11-28T00:00:01Z INFO x: logstash output host totals host=b summary=ack_p50_ms<=2 ack_p99_ms<=50\n\
                   skidder totals: published=100 acked=100 unacked=0 events_per_s=12345 cpu_s=0.5 peak_rss_kib=9000\n";
        assert_eq!(totals_field(err, "acked"), Some(100.0));
        assert_eq!(totals_field(err, "events_per_s"), Some(12345.0));
        assert_eq!(totals_field(err, "missing"), None);
        assert_eq!(ack_quantile(err, "p50"), Some(5.0));
        assert_eq!(ack_quantile(err, "p99"), Some(50.0));
        assert_eq!(ack_quantile("ack_p50_ms=n/a", "p50"), None);
    }

    #[test]
    fn refusal_keeps_the_reason_only() {
        assert_eq!(
            refusal(
                "skidder: output.logstash is not available in this build yet; use output.console"
            ),
            "unavailable: output.logstash is not available in this build yet"
        );
        let line = "Error: output.logstash is not available in this build yet; use output.console, output.file or output.discard";
        assert_eq!(
            refusal(line),
            "unavailable: output.logstash is not available in this build yet"
        );
    }

    #[test]
    fn server_rate_needs_every_event() {
        let s = serde_json::json!({"events": 10, "first_to_last_s": 0.5});
        assert_eq!(server_rate(&s, 10), Ok(20.0));
        assert!(server_rate(&s, 11).unwrap_err().contains("10 of 11"));
    }
}
