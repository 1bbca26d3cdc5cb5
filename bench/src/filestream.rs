//! `--scenario filestream` (issues 15 and 16): the same log files read from the start by
//! Filebeat 7.17.29's filestream input and by skidder's (`run --once`), each shipping every
//! line to go-lumber's server over mutual TLS (`compression_level: 3`, `pipelining: 2`,
//! `bulk_max_size: 2048`) through the counting relay; then skidder file → `output.discard`.
//!
//! ```text
//!  app.ndjson / app.log ──▶ Filebeat | skidder ──mTLS──▶ relay (counts bytes) ──▶ go-lumber server
//!                                                                               (--expect N, exits)
//! ```
//!
//! Both shippers are measured by the kernel (`wait4`: user + sys CPU, peak RSS): skidder
//! until `--once` exits, Filebeat until it is stopped right after go-lumber's server got
//! the last event (Filebeat has no `--once` for filestream). Events/s are the server's,
//! first to last accepted batch. Cases: NDJSON (parser `ndjson`, `overwrite_keys: true`),
//! plain lines, and NDJSON with Filebeat's default processors on both sides (issue 16:
//! `add_host_metadata` with `when.not.contains.tags: forwarded`, as `filebeat.yml` writes
//! it). The results are the `filestream` section of BENCHMARKS.md and, for the processors
//! case, its own `filestream-processors` section just after it ([`crate::sections`]), so
//! that each can be measured again without the other.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::BenchError;
use crate::measure::{median, spawn, tail};
use crate::relay::Relay;
use crate::scenarios::{
    io, run_limit, server_rate, server_stats, start_server, unique, Env, Server,
};

/// Who reads the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shipper {
    /// Filebeat 7.17.29 (`tests/peers/filebeat/bin/filebeat`).
    Filebeat,
    /// skidder `run --once`.
    Skidder,
}

/// What is read and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Case {
    /// NDJSON lines, parser `ndjson` with `overwrite_keys: true`.
    Ndjson,
    /// Plain text lines.
    Plain,
    /// NDJSON as above, plus Filebeat's default processors ([`DEFAULT_PROCESSORS`]).
    #[value(name = "default-processors")]
    NdjsonHostMetadata,
}

/// The processors of Filebeat 7.17's default `filebeat.yml` that run anywhere:
/// `add_cloud_metadata`, `add_docker_metadata` and `add_kubernetes_metadata` are left out
/// (Filebeat's probe the network and the Docker socket; skidder loads them and does not
/// apply them).
pub const DEFAULT_PROCESSORS: &str =
    "processors:\n  - add_host_metadata:\n      when.not.contains.tags: forwarded\n";

impl Case {
    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Case::Ndjson => "NDJSON",
            Case::Plain => "plain",
            Case::NdjsonHostMetadata => "NDJSON + default processors",
        }
    }

    /// Its `--filestream-case` value.
    pub fn flag(self) -> &'static str {
        match self {
            Case::Ndjson => "ndjson",
            Case::Plain => "plain",
            Case::NdjsonHostMetadata => "default-processors",
        }
    }

    /// Filebeat's CPU per event over skidder's must reach this (issue 15, 16).
    pub fn cpu_target(self) -> f64 {
        match self {
            Case::Plain => 0.2,
            _ => 0.1,
        }
    }
}

/// The two files of the scenario.
#[derive(Debug, Clone)]
pub struct Files {
    /// NDJSON, one Beats-style application event a line.
    pub ndjson: PathBuf,
    /// The same events as plain text lines.
    pub plain: PathBuf,
    /// Lines in each.
    pub lines: u64,
    /// Sizes in bytes (NDJSON, plain).
    pub bytes: (u64, u64),
}

/// A small deterministic generator (xorshift64*), so every run reads the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes `lines` NDJSON and plain lines under `dir` (the old shell script's shapes:
/// ~310 and ~96 bytes a line).
///
/// # Errors
/// [`BenchError::Io`] when a file cannot be written.
pub fn write_files(dir: &Path, lines: u64) -> Result<Files, BenchError> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let ndjson = dir.join("app.ndjson");
    let plain = dir.join("app.log");
    let create = |p: &Path| {
        std::fs::File::create(p)
            .map(|f| std::io::BufWriter::with_capacity(1 << 20, f))
            .map_err(io(format!("creating {}", p.display())))
    };
    let (mut nd, mut pl) = (create(&ndjson)?, create(&plain)?);
    let levels = ["INFO", "WARN", "ERROR", "DEBUG"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..lines {
        let level = levels[rng.below(4) as usize];
        let ms = 1 + rng.below(4999);
        let host = rng.below(40);
        let item = rng.below(100_000);
        let status = 200 + rng.below(4) * 100;
        let trace = (u128::from(rng.next()) << 64) | u128::from(rng.next());
        let (s, milli) = (i % 60, i % 1000);
        writeln!(
            nd,
            "{{\"@timestamp\":\"2024-05-06T07:08:{s:02}.{milli:03}Z\",\"log.level\":\"{level}\",\"message\":\"request {i} served\",\
             \"http\":{{\"request\":{{\"method\":\"GET\"}},\"response\":{{\"status_code\":{status}}}}},\"url\":{{\"path\":\"/api/v1/items/{item}\"}},\
             \"host\":{{\"hostname\":\"web-{host:02}\"}},\"event\":{{\"duration\":{}}},\"trace\":{{\"id\":\"{trace:032x}\"}}}}",
            ms * 1_000_000
        )
        .map_err(io("writing the NDJSON file"))?;
        writeln!(
            pl,
            "2024-05-06T07:08:{s:02}.{milli:03}Z {level} [web-{host:02}] GET /api/v1/items/{item} served request {i} in {ms} ms"
        )
        .map_err(io("writing the plain file"))?;
    }
    nd.flush().map_err(io("writing the NDJSON file"))?;
    pl.flush().map_err(io("writing the plain file"))?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok(Files {
        bytes: (size(&ndjson), size(&plain)),
        ndjson,
        plain,
        lines,
    })
}

/// One measured run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FsSample {
    /// CPU seconds (user + sys) per million events.
    pub cpu_s_per_m: f64,
    /// Events per second at the server.
    pub events_per_s: f64,
    /// Peak RSS, KiB.
    pub max_rss_kib: u64,
    /// Wire bytes shipper → server per event (TLS records included).
    pub bytes_per_event: f64,
}

/// The input section both shippers load (Filebeat's keys; skidder reads them as written).
fn input_yaml(files: &Files, case: Case, key: &str) -> String {
    let (path, parsers) = match case {
        Case::Plain => (&files.plain, ""),
        _ => (
            &files.ndjson,
            "    parsers:\n      - ndjson:\n          overwrite_keys: true\n",
        ),
    };
    let mut y = format!(
        "{key}:\n  - type: filestream\n    id: bench-{}\n    paths: [{:?}]\n{parsers}",
        match case {
            Case::Plain => "plain",
            _ => "ndjson",
        },
        path.display().to_string()
    );
    if case == Case::NdjsonHostMetadata {
        y.push_str(DEFAULT_PROCESSORS);
    }
    y
}

fn output_yaml(env: &Env, host: &str) -> String {
    let cert = |n: &str| env.certs.join(n).display().to_string();
    format!(
        "output.logstash:\n  hosts: [\"{host}\"]\n  compression_level: 3\n  pipelining: 2\n  bulk_max_size: 2048\n\
         \x20 ssl:\n    certificate_authorities: [{:?}]\n    certificate: {:?}\n    key: {:?}\n",
        cert("ca.crt"),
        cert("client.crt"),
        cert("client.key")
    )
}

/// Reads the whole file of `case` with `who` into go-lumber's server (through the relay).
///
/// # Errors
/// [`BenchError`] when a program does not start, fails or runs out of time.
pub fn run(
    env: &Env,
    filebeat: &Path,
    files: &Files,
    who: Shipper,
    case: Case,
) -> Result<FsSample, BenchError> {
    let dir = unique(
        env,
        &format!("filestream-{who:?}-{}", case.name().replace(' ', "")),
    )?;
    let env = Env {
        count: files.lines,
        ..env.clone()
    };
    let (server, server_addr, stats) = match start_server(&env, &dir, Server::GoLumber, true)? {
        Ok(s) => s,
        Err(u) => {
            return Err(BenchError::RunFailed {
                program: "go-lumber server".into(),
                code: 0,
                detail: u.0,
            })
        }
    };
    let relay = Relay::start(server_addr)?;
    let host = relay.addr.to_string();
    let limit = run_limit(files.lines);
    let usage = match who {
        Shipper::Skidder => {
            let yaml = format!(
                "{}{}logging.level: warning\npath.data: {:?}\n",
                input_yaml(files, case, "skidder.inputs"),
                output_yaml(&env, &host),
                dir.join("data").display().to_string()
            );
            let cfg = dir.join("skidder.yml");
            std::fs::write(&cfg, yaml).map_err(io(format!("writing {}", cfg.display())))?;
            let mut cmd = Command::new(&env.skidder);
            cmd.args(["run", "--once", "-e", "-c"])
                .arg(&cfg)
                .current_dir(&dir);
            let usage = spawn(cmd, &dir, "skidder")?.wait(limit)?;
            if usage.code != 0 {
                return Err(BenchError::RunFailed {
                    program: "skidder".into(),
                    code: usage.code,
                    detail: tail(&dir.join("skidder.err"), 800),
                });
            }
            server.wait(Duration::from_secs(30))?;
            usage
        }
        Shipper::Filebeat => {
            let home = dir.join("fbhome");
            std::fs::create_dir_all(&home).map_err(io(format!("creating {}", home.display())))?;
            let yaml = format!(
                "{}{}logging.level: warning\n",
                input_yaml(files, case, "filebeat.inputs"),
                output_yaml(&env, &host)
            );
            let cfg = home.join("filebeat.yml");
            std::fs::write(&cfg, yaml).map_err(io(format!("writing {}", cfg.display())))?;
            let mut cmd = Command::new(filebeat);
            cmd.arg("-c")
                .arg(&cfg)
                .arg("--path.home")
                .arg(&home)
                .arg("--path.data")
                .arg(dir.join("fbdata"))
                .arg("--path.logs")
                .arg(&home)
                .arg("--strict.perms=false")
                .current_dir(&dir);
            let fb = spawn(cmd, &dir, "filebeat")?;
            // go-lumber's server exits once it accepted every line; Filebeat then stops.
            // Filebeat needs several times skidder's time (over 110 s for a million
            // NDJSON lines with add_host_metadata here), so its limit is longer.
            server.wait(limit * 4)?;
            fb.terminate(Duration::from_secs(30))
        }
    };
    let stats = server_stats(Server::GoLumber, &stats)?;
    let rate = server_rate(&stats, files.lines).map_err(|detail| BenchError::RunFailed {
        program: "go-lumber server".into(),
        code: 0,
        detail,
    })?;
    let m = files.lines as f64 / 1e6;
    Ok(FsSample {
        cpu_s_per_m: usage.cpu_s / m,
        events_per_s: rate,
        max_rss_kib: usage.max_rss_kib,
        bytes_per_event: relay.up_bytes() as f64 / files.lines as f64,
    })
}

/// skidder reads the file of `case` into `output.discard`: (MB/s per CPU-second, CPU s).
///
/// # Errors
/// [`BenchError`] when skidder fails or runs out of time.
pub fn discard(env: &Env, files: &Files, case: Case) -> Result<(f64, f64), BenchError> {
    let dir = unique(
        env,
        &format!("filestream-discard-{}", case.name().replace(' ', "")),
    )?;
    let yaml = format!(
        "{}output.discard: {{}}\nlogging.level: warning\npath.data: {:?}\n",
        input_yaml(files, case, "skidder.inputs"),
        dir.join("data").display().to_string()
    );
    let cfg = dir.join("skidder.yml");
    std::fs::write(&cfg, yaml).map_err(io(format!("writing {}", cfg.display())))?;
    let mut cmd = Command::new(&env.skidder);
    cmd.args(["run", "--once", "-e", "-c"])
        .arg(&cfg)
        .current_dir(&dir);
    let usage = spawn(cmd, &dir, "skidder")?.wait(run_limit(files.lines))?;
    if usage.code != 0 {
        return Err(BenchError::RunFailed {
            program: "skidder".into(),
            code: usage.code,
            detail: tail(&dir.join("skidder.err"), 800),
        });
    }
    let bytes = match case {
        Case::Plain => files.bytes.1,
        _ => files.bytes.0,
    };
    Ok((bytes as f64 / 1e6 / usage.cpu_s.max(1e-9), usage.cpu_s))
}

/// The runs of one case, each side's samples (alternated: Filebeat, skidder, ...).
#[derive(Debug, Clone, Default)]
pub struct CaseResult {
    /// Filebeat's runs.
    pub filebeat: Vec<FsSample>,
    /// skidder's runs.
    pub skidder: Vec<FsSample>,
    /// skidder → output.discard: MB/s per core of each run.
    pub discard: Vec<f64>,
    /// The processors case only: skidder → output.discard of the same file without
    /// processors, each run alternated with one of `discard`.
    pub discard_without: Vec<f64>,
    /// Why a side stopped early, if it did.
    pub failed: Option<String>,
}

fn med(s: &[FsSample], f: impl Fn(&FsSample) -> f64) -> f64 {
    median(s.iter().map(f).collect())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// The BENCHMARKS.md section, markers included.
pub fn section(files: &Files, runs: usize, results: &[(Case, CaseResult)], cmd: &str) -> String {
    let mut m = String::new();
    let machine = skidder_bench::machine::detect();
    let machine = format!("{}-core {}", machine.cores, machine.cpu);
    let _ = writeln!(m, "<!-- filestream:begin -->");
    let _ = writeln!(
        m,
        "## Filestream input vs Filebeat 7.17.29 (issues 15, 16)\n"
    );
    let _ = writeln!(
        m,
        "Written by `{cmd}` (the harness; do not edit by hand). Taken on a **shared {machine}** (other work may run at the same time, so absolute numbers are noisy); each ratio compares runs alternated in the same session (Filebeat, skidder, Filebeat, …), medians of {runs}.\n"
    );
    let _ = writeln!(
        m,
        "The same {} -line files read from the start: NDJSON ({:.0} bytes a line, parser `ndjson` with `overwrite_keys: true`) and plain text ({:.0} bytes a line). Each shipper sends every line to go-lumber's server over mutual TLS, `compression_level: 3`, `pipelining: 2`, `bulk_max_size: 2048`, each with its own queue defaults; skidder with `run --once`, Filebeat stopped once the server has every line. CPU (user + sys) and peak RSS from `wait4(2)`; events/s at the server (first to last batch); wire bytes counted by the harness's relay (shipper → server, TLS records included). Events are Filebeat-shaped on both sides (`log.*`, `input.type`, `agent.*`, `ecs.version`, `host.name`).\n",
        files.lines,
        files.bytes.0 as f64 / files.lines as f64,
        files.bytes.1 as f64 / files.lines as f64,
    );
    let _ = writeln!(
        m,
        "| file | shipper | CPU-s per M events | events/s | peak RSS MiB | wire B/event | runs |"
    );
    let _ = writeln!(m, "|---|---|---:|---:|---:|---:|---|");
    for (case, r) in results {
        for (name, s) in [("Filebeat 7.17.29", &r.filebeat), ("skidder", &r.skidder)] {
            if s.is_empty() {
                let _ = writeln!(
                    m,
                    "| {} | {name} | n/a | n/a | n/a | n/a | 0 |",
                    case.name()
                );
                continue;
            }
            let _ = writeln!(
                m,
                "| {} | {name} | {:.2} | {:.0} | {:.0} | {:.1} | {} |",
                case.name(),
                med(s, |x| x.cpu_s_per_m),
                med(s, |x| x.events_per_s),
                med(s, |x| x.max_rss_kib as f64) / 1024.0,
                med(s, |x| x.bytes_per_event),
                s.len()
            );
        }
    }
    let _ = writeln!(m, "\nTargets (skidder / Filebeat, medians):\n");
    let _ = writeln!(
        m,
        "| file | CPU per event (target) | wire bytes per event (≤ 1×) | peak RSS (< 0.25×) |"
    );
    let _ = writeln!(m, "|---|---|---|---|");
    for (case, r) in results {
        if r.filebeat.is_empty() || r.skidder.is_empty() {
            let _ = writeln!(
                m,
                "| {} | not measured: no complete pair | | |",
                case.name()
            );
            continue;
        }
        let ratio = |f: &dyn Fn(&FsSample) -> f64| med(&r.skidder, f) / med(&r.filebeat, f);
        let cpu = ratio(&|x| x.cpu_s_per_m);
        let wire = ratio(&|x| x.bytes_per_event);
        let rss = ratio(&|x| x.max_rss_kib as f64);
        let _ = writeln!(
            m,
            "| {} | {cpu:.3}× (≤ {}×, {}) | {wire:.2}× ({}) | {rss:.2}× ({}) |",
            case.name(),
            case.cpu_target(),
            verdict(cpu <= case.cpu_target()),
            verdict(wire <= 1.0),
            verdict(rss < 0.25),
        );
    }
    let _ = writeln!(m);
    for (case, r) in results {
        if !r.discard.is_empty() {
            let _ = writeln!(
                m,
                "skidder {} file → `output.discard` (`run --once`): **{:.0} MB/s per core** (file bytes / CPU-s, median of {}).\n",
                case.name(),
                median(r.discard.clone()),
                r.discard.len()
            );
        }
        if let Some(why) = &r.failed {
            let _ = writeln!(
                m,
                "{}: a run failed, the rows above hold the runs before it: {why}\n",
                case.name()
            );
        }
    }
    let _ = writeln!(m, "<!-- filestream:end -->");
    m
}

/// The `filestream-processors` section of BENCHMARKS.md: the NDJSON file with
/// Filebeat's default processors on both sides (issue 16), markers included.
pub fn processors_section(files: &Files, runs: usize, r: &CaseResult, cmd: &str) -> String {
    let case = Case::NdjsonHostMetadata;
    let mut m = String::new();
    let machine = skidder_bench::machine::detect();
    let machine = format!("{}-core {}", machine.cores, machine.cpu);
    let _ = writeln!(m, "<!-- filestream-processors:begin -->");
    let _ = writeln!(
        m,
        "## Filestream with Filebeat's default processors vs Filebeat 7.17.29 (issue 16)\n"
    );
    let _ = writeln!(
        m,
        "Written by `{cmd}` (the harness; do not edit by hand). Taken on a **shared {machine}** (other work may run at the same time, so absolute numbers are noisy); runs alternated (Filebeat, skidder, …), medians of {runs}.\n"
    );
    let _ = writeln!(
        m,
        "The NDJSON file of the section above ({} lines, {:.0} bytes a line, parser `ndjson` with `overwrite_keys: true`), shipped the same way, with the processors of Filebeat 7.17's default `filebeat.yml` on both sides: `add_host_metadata` with `when.not.contains.tags: forwarded` (netinfo on, 5 min cache). The default file's `add_cloud_metadata`, `add_docker_metadata` and `add_kubernetes_metadata` are left out on both sides: Filebeat's probe cloud metadata endpoints, the Docker socket and the Kubernetes API (skidder loads them with a WARN and does not apply them). skidder decides the `when` once per input (no line carries `tags`) and ships every line without parsing it into a tree.\n",
        files.lines,
        files.bytes.0 as f64 / files.lines as f64,
    );
    let _ = writeln!(
        m,
        "| shipper | CPU-s per M events | events/s | peak RSS MiB | wire B/event | runs |"
    );
    let _ = writeln!(m, "|---|---:|---:|---:|---:|---|");
    for (name, s) in [("Filebeat 7.17.29", &r.filebeat), ("skidder", &r.skidder)] {
        if s.is_empty() {
            let _ = writeln!(m, "| {name} | n/a | n/a | n/a | n/a | 0 |");
            continue;
        }
        let _ = writeln!(
            m,
            "| {name} | {:.2} | {:.0} | {:.0} | {:.1} | {} |",
            med(s, |x| x.cpu_s_per_m),
            med(s, |x| x.events_per_s),
            med(s, |x| x.max_rss_kib as f64) / 1024.0,
            med(s, |x| x.bytes_per_event),
            s.len()
        );
    }
    let _ = writeln!(m);
    if r.filebeat.is_empty() || r.skidder.is_empty() {
        let _ = writeln!(m, "Target not measured: no complete pair.\n");
    } else {
        let ratio = |f: &dyn Fn(&FsSample) -> f64| med(&r.skidder, f) / med(&r.filebeat, f);
        let cpu = ratio(&|x| x.cpu_s_per_m);
        let _ = writeln!(
            m,
            "skidder / Filebeat (medians): CPU per event **{cpu:.3}×** (target ≤ {}×, {}); wire bytes per event {:.2}×; peak RSS {:.2}×.\n",
            case.cpu_target(),
            verdict(cpu <= case.cpu_target()),
            ratio(&|x| x.bytes_per_event),
            ratio(&|x| x.max_rss_kib as f64),
        );
    }
    if !r.discard.is_empty() && !r.discard_without.is_empty() {
        // CPU-s per million lines from MB/s per core of the file.
        let per_m = |mbs: f64| files.bytes.0 as f64 / 1e6 / mbs / (files.lines as f64 / 1e6);
        let _ = writeln!(
            m,
            "skidder file → `output.discard` (`run --once`), alternated: **{:.2} CPU-s per M lines** with these processors, {:.2} without (medians of {} and {}).\n",
            per_m(median(r.discard.clone())),
            per_m(median(r.discard_without.clone())),
            r.discard.len(),
            r.discard_without.len(),
        );
    }
    if let Some(why) = &r.failed {
        let _ = writeln!(
            m,
            "A run failed, the rows above hold the runs before it: {why}\n"
        );
    }
    let _ = writeln!(m, "<!-- filestream-processors:end -->");
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_deterministic_and_shaped() {
        let a = tempfile_dir("a");
        let b = tempfile_dir("b");
        let fa = write_files(&a, 50).unwrap();
        let fb = write_files(&b, 50).unwrap();
        assert_eq!(
            std::fs::read(&fa.ndjson).unwrap(),
            std::fs::read(&fb.ndjson).unwrap()
        );
        let text = std::fs::read_to_string(&fa.ndjson).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["@timestamp"]
                .as_str()
                .unwrap()
                .starts_with("2024-05-06T07:08:"));
        }
        assert_eq!(
            std::fs::read_to_string(&fa.plain).unwrap().lines().count(),
            50
        );
        let _ = std::fs::remove_dir_all(a);
        let _ = std::fs::remove_dir_all(b);
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("skidder-bench-fs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }
}
