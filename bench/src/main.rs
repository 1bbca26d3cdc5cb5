//! `skidder-bench`: the one command behind every performance claim about skidder.
//!
//! `cargo run --release -p skidder-bench -- --scenario all` builds what it needs, makes
//! the corpus, runs every scenario (pairs alternating A B A B ..., medians), measures the
//! compression backend's single-core rate, and writes BENCHMARKS.md and bench/plots/*.png.
//! `--short` is the CI mode: fewer events and runs, report under target/bench/.

mod filestream;
mod fleet;
mod limit;
mod measure;
mod plot;
mod relay;
mod report;
mod scenarios;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

use crate::report::{Outcome, Report, Row};
use crate::scenarios::{Env, Knobs, RunResult, Sender, Server};
use skidder_bench::{corpus, error, sections};

/// Scenario groups of the issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Everything below.
    All,
    /// skidder vs go-lumber's client → go-lumber server, plain TCP and mutual TLS.
    Lumberjack,
    /// skidder vs the ferro-lumberjack crate's client.
    Ferro,
    /// skidder's compression level and pipelining sweeps.
    Sweep,
    /// skidder → OpenSearch via output.elasticsearch.
    Elasticsearch,
    /// go-lumber client → skidder receive vs → go-lumber server.
    Receiver,
    /// The counting relay's own cost (skidder direct vs through it).
    Relay,
    /// Single-core rate of the compression backend (always measured).
    Limit,
    /// Disk queue (each `sync`) vs memory queue, and memory with a disk backlog.
    Disk,
    /// Filestream input vs Filebeat 7.17.29's, from log files (its own BENCHMARKS.md section).
    Filestream,
    /// skidder alone into the null sink: worker 1 vs 2, one host vs two (loadbalance).
    Scaling,
    /// Load balancing with one slow go-lumber server (its own BENCHMARKS.md section).
    Fleet,
}

#[derive(Debug, Parser)]
#[command(
    name = "skidder-bench",
    about = "End-to-end benchmarks of skidder against its peers"
)]
struct Args {
    /// Scenario groups to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    scenario: Vec<Scenario>,
    /// CI mode: 100k events per run, 3 runs per pair, 1 per sweep point; report under target/bench/.
    #[arg(long)]
    short: bool,
    /// Events per run (default 1,000,000; 100,000 with --short).
    #[arg(long)]
    count: Option<u64>,
    /// Runs per side of each pair (default 5; 3 with --short). At least 3.
    #[arg(long)]
    runs: Option<usize>,
    /// Report file (default BENCHMARKS.md; target/bench/BENCHMARKS.short.md with --short).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Use the existing release binaries and peers instead of building them.
    #[arg(long)]
    no_build: bool,
    /// `--scenario filestream`: only these cases, comma-separated (default: all three).
    /// `default-processors` alone rewrites only its own section of the report.
    #[arg(long, value_enum, value_delimiter = ',')]
    filestream_case: Vec<filestream::Case>,
    /// OpenSearch base URL (default: the running .ci/peers/opensearch.sh peer, if any).
    #[arg(long, env = "SKIDDER_BENCH_ES_URL")]
    opensearch_url: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    step("start");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("bench crate has no parent directory")?
        .to_path_buf();
    let want = |s: Scenario| args.scenario.contains(&Scenario::All) || args.scenario.contains(&s);
    let count = args
        .count
        .unwrap_or(if args.short { 100_000 } else { 1_000_000 });
    let runs = args.runs.unwrap_or(if args.short { 3 } else { 5 });
    if runs < 3 {
        bail!("--runs {runs}: medians need at least 3 runs per side");
    }
    let sweep_runs = if args.short { 1 } else { 3 };
    let out = args.out.clone().unwrap_or_else(|| {
        if args.short {
            root.join("target/bench/BENCHMARKS.short.md")
        } else {
            root.join("BENCHMARKS.md")
        }
    });
    let plots = if args.short {
        root.join("target/bench/plots")
    } else {
        root.join("bench/plots")
    };

    let skidder = root.join("target/release/skidder");
    let golumber = root.join("tests/peers/golumber/bin/golumber");
    let mut ferro = Err("unavailable: not selected".to_string());
    if !args.no_build {
        step("building skidder (release)");
        run_build(
            Command::new("cargo").current_dir(&root).args([
                "build",
                "--release",
                "-p",
                "skidder",
                "--bin",
                "skidder",
            ]),
            "skidder",
        )?;
        step("building the go-lumber peer");
        run_build(
            Command::new("bash").arg(root.join(".ci/peers/build-golumber.sh")),
            "go-lumber peer",
        )?;
    }
    if want(Scenario::Ferro) {
        ferro = ferro_peer(&root, args.no_build);
        if let Err(why) = &ferro {
            step(why);
        }
    }
    for (what, p) in [("skidder", &skidder), ("go-lumber peer", &golumber)] {
        if !p.exists() {
            bail!(
                "{what} binary {} is missing; run without --no-build",
                p.display()
            );
        }
    }

    let work = root.join("target/bench/work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    step("making certificates and the corpus");
    let certs = work.join("certs");
    let status = Command::new("bash")
        .arg("-c")
        .arg("source \"$1\" && make_certs \"$2\"")
        .arg("bash")
        .arg(root.join(".ci/peers/lib.sh"))
        .arg(&certs)
        .status()
        .context("running make_certs from .ci/peers/lib.sh")?;
    if !status.success() {
        bail!("make_certs (.ci/peers/lib.sh) failed: {status}");
    }
    let corpus_path = work.join("corpus.ndjson");
    let mean_event = corpus::write(&corpus_path)?;
    let lines = corpus::generate();

    let mut opensearch_started = false;
    let opensearch = if want(Scenario::Elasticsearch) {
        opensearch_url(
            &root,
            args.opensearch_url.clone(),
            args.short,
            &mut opensearch_started,
        )
    } else {
        Err("unavailable: not selected".into())
    };

    // Built with this harness (same package), so it sits beside it.
    let null_sink = std::env::current_exe()
        .context("locating skidder-bench")?
        .with_file_name("null-sink");
    if want(Scenario::Scaling) && !null_sink.exists() {
        bail!(
            "{} is missing; build it with `cargo build --release -p skidder-bench`",
            null_sink.display()
        );
    }
    let env = Env {
        skidder,
        golumber,
        null_sink,
        ferro,
        corpus: corpus_path,
        certs,
        work: work.clone(),
        count,
        opensearch,
    };
    let mut report = Report::new(&root, args.short, count, runs, mean_event, lines.len());

    step("measuring the compression backend's single-core rate");
    let budget = Duration::from_millis(if args.short { 300 } else { 2000 });
    for backend in [limit::Backend::Default, limit::Backend::Flate2] {
        for level in [0, 1, 3, 6] {
            if level == 0 && backend == limit::Backend::Flate2 {
                continue;
            }
            report
                .limits
                .push(limit::measure(&lines, level, backend, budget)?);
        }
    }
    if want(Scenario::Scaling) {
        // The scaling section's breakdown: what the framing copy adds to compression,
        // measured as an alternated pair (one measurement each would compare two moments of
        // a shared machine).
        step("the level 3 compressor with and without the framing copy (alternating)");
        report.framed_limit = Some(limit::framing_pair(&lines, 3, budget / 2, 5)?);
    }

    let z3 = |tls| Knobs {
        level: 3,
        pipelining: 2,
        tls,
        relay: true,
    };
    if want(Scenario::Lumberjack) {
        for tls in [false, true] {
            let t = if tls { "mTLS" } else { "TCP" };
            step(&format!(
                "scenario 1/2: skidder vs go-lumber client over {t}"
            ));
            let (a, b) = alternate(
                runs,
                || scenarios::run_sender(&env, Sender::Skidder, Server::GoLumber, z3(tls)),
                || scenarios::run_sender(&env, Sender::GoLumber, Server::GoLumber, z3(tls)),
            );
            report.pair(
                &format!("skidder / go-lumber client, {t}"),
                Row::new(
                    &format!("1 {t}"),
                    "skidder → go-lumber server",
                    "z3 p2 b2048",
                    "sender",
                    a,
                ),
                Row::new(
                    &format!("2 {t}"),
                    "go-lumber async client → go-lumber server",
                    "z3 p2 b2048",
                    "sender",
                    b,
                ),
            );
        }
    }
    if want(Scenario::Ferro) {
        step("scenario 3: skidder vs ferro-lumberjack (one window at a time)");
        let k = Knobs {
            pipelining: 0,
            ..z3(false)
        };
        let (a, b) = alternate(
            runs,
            || scenarios::run_sender(&env, Sender::Skidder, Server::Skidder, k),
            || scenarios::run_sender(&env, Sender::Ferro, Server::Skidder, k),
        );
        report.pair(
            "skidder / ferro-lumberjack, TCP, pipelining 0",
            Row::new(
                "3 TCP",
                "skidder → skidder receive",
                "z3 p0 b2048",
                "sender",
                a,
            ),
            Row::new(
                "3 TCP",
                "ferro-lumberjack client → skidder receive",
                "z3 sync b2048",
                "sender",
                b,
            ),
        );
    }
    if want(Scenario::Sweep) {
        for level in [0, 1, 3, 6] {
            step(&format!("scenario 4: compression level {level}"));
            let k = Knobs { level, ..z3(false) };
            let o = repeat(sweep_runs, || {
                scenarios::run_sender(&env, Sender::Skidder, Server::GoLumber, k)
            });
            report.level_sweep.push((level, o.clone()));
            report.rows.push(Row::new(
                "4 level",
                "skidder → go-lumber server",
                &format!("z{level} p2 b2048 TCP"),
                "sender",
                o,
            ));
        }
        for pipelining in [0, 2, 4] {
            step(&format!("scenario 4: pipelining {pipelining}"));
            let k = Knobs {
                pipelining,
                ..z3(false)
            };
            let o = repeat(sweep_runs, || {
                scenarios::run_sender(&env, Sender::Skidder, Server::GoLumber, k)
            });
            report.pipelining_sweep.push((pipelining, o.clone()));
            report.rows.push(Row::new(
                "4 pipelining",
                "skidder → go-lumber server",
                &format!("z3 p{pipelining} b2048 TCP"),
                "sender",
                o,
            ));
        }
    }
    if want(Scenario::Elasticsearch) {
        step("scenario 5: skidder → OpenSearch");
        let o = repeat(sweep_runs, || scenarios::run_elasticsearch(&env, 3));
        report.rows.push(Row::new(
            "5 ES",
            "skidder → OpenSearch (output.elasticsearch)",
            "gzip 3 b2048 HTTP",
            "sender",
            o,
        ));
    }
    if want(Scenario::Receiver) {
        for tls in [false, true] {
            let t = if tls { "mTLS" } else { "TCP" };
            step(&format!(
                "scenario 6: skidder receive vs go-lumber server over {t}"
            ));
            let (a, b) = alternate(
                runs,
                || scenarios::run_receiver(&env, Server::Skidder, z3(tls)),
                || scenarios::run_receiver(&env, Server::GoLumber, z3(tls)),
            );
            report.pair(
                &format!("skidder receive / go-lumber server, {t}"),
                Row::new(
                    &format!("6 {t}"),
                    "go-lumber client → skidder receive",
                    "z3 p2 b2048",
                    "server",
                    a,
                ),
                Row::new(
                    &format!("6 {t}"),
                    "go-lumber client → go-lumber server",
                    "z3 p2 b2048",
                    "server",
                    b,
                ),
            );
        }
    }
    if want(Scenario::Relay) {
        step("relay check: skidder direct vs through the counting relay");
        let (a, b) = alternate(
            runs,
            || {
                scenarios::run_sender(
                    &env,
                    Sender::Skidder,
                    Server::GoLumber,
                    Knobs {
                        relay: false,
                        ..z3(false)
                    },
                )
            },
            || scenarios::run_sender(&env, Sender::Skidder, Server::GoLumber, z3(false)),
        );
        report.pair(
            "direct / through relay",
            Row::new(
                "relay",
                "skidder → go-lumber server, direct",
                "z3 p2 b2048 TCP",
                "sender",
                a,
            ),
            Row::new(
                "relay",
                "skidder → relay → go-lumber server",
                "z3 p2 b2048 TCP",
                "sender",
                b,
            ),
        );
    }
    if want(Scenario::Disk) {
        use scenarios::QueueKind;
        step("disk queue vs memory queue (alternating)");
        let kinds = [
            QueueKind::Memory,
            QueueKind::Disk("batch"),
            QueueKind::Disk("interval"),
            QueueKind::Disk("none"),
        ];
        let mut samples: Vec<(Vec<Sample>, Option<String>)> =
            kinds.iter().map(|_| (Vec::new(), None)).collect();
        for _ in 0..runs {
            for (kind, (got, stop)) in kinds.iter().zip(samples.iter_mut()) {
                if stop.is_none() {
                    record(scenarios::run_queue(&env, *kind, z3(true)), got, stop);
                }
            }
        }
        for (kind, (got, stop)) in kinds.iter().zip(samples) {
            report.queues.push((kind.name(), collect(got, stop)));
        }
        // An almost empty queue (the baseline) and a 5 GB backlog (0.15 GB with --short),
        // each deleted right after it is measured; a size the disk cannot hold twice over
        // (the drain run writes nothing new, but others share this disk) is not attempted.
        let big = if args.short { 150e6 } else { 5e9 };
        // Plain frames for the sizes (a 5 GB backlog of packed windows would be some 200
        // million events); then the big one's events again as packed windows, the default
        // with output.logstash (docs/disk-queue.md §11).
        for (target, packed) in [(1e6f64, false), (big, false), (big, true)] {
            let free = free_bytes(&root);
            if free.is_some_and(|f| (f as f64) < 2.0 * target) {
                report.disk_notes.push(format!(
                    "A {:.2} GB backlog was not measured: {:.1} GB free on the disk.",
                    target / 1e9,
                    free.unwrap_or(0) as f64 / 1e9
                ));
                continue;
            }
            let events = (target / (mean_event + 16.0)) as u64;
            step(&format!("disk queue backlog of {events} events"));
            match scenarios::run_backlog(&env, events, &lines, packed) {
                Ok((fill, drain, bytes)) => {
                    report.backlog.push((bytes, events, packed, fill, drain))
                }
                Err(e) => {
                    step(&format!("backlog run failed: {e}"));
                    // The report says so: a missing row would read as never attempted.
                    report.disk_notes.push(format!(
                        "A {:.2} GB backlog{} was not measured: the run failed ({e}).",
                        target / 1e9,
                        if packed {
                            " (its events as packed windows)"
                        } else {
                            ""
                        }
                    ));
                }
            }
        }
    }
    let filestream_sections = if want(Scenario::Filestream) {
        run_filestream(
            &root,
            &env,
            runs,
            args.no_build,
            args.short,
            &args.filestream_case,
        )?
    } else {
        Vec::new()
    };
    if want(Scenario::Scaling) {
        step("worker scaling into the null sink (alternating)");
        let scale = |workers, hosts| scenarios::Scale {
            workers,
            hosts,
            queue_events: None,
        };
        let points = [
            scale(1, 1),
            scale(2, 1),
            scale(1, 2),
            scale(2, 2),
            // Beats' fixed 3200 (counted until ACKed): one batch per worker, so a worker
            // idles from its ACK until the refill; unset, skidder sizes it to 6400 here.
            scenarios::Scale {
                queue_events: Some(3200),
                ..scale(2, 1)
            },
        ];
        let mut samples: Vec<(Vec<Sample>, Option<String>)> =
            points.iter().map(|_| (Vec::new(), None)).collect();
        // The input alone, in the same loop: its share of the sender's CPU per event.
        let (mut input, mut input_stop) = (Vec::new(), None);
        for _ in 0..runs {
            for (point, (got, stop)) in points.iter().zip(samples.iter_mut()) {
                if stop.is_none() {
                    record(scenarios::run_scaling(&env, *point, z3(true)), got, stop);
                }
            }
            if input_stop.is_none() {
                record(scenarios::run_input_only(&env), &mut input, &mut input_stop);
            }
        }
        for (point, (got, stop)) in points.iter().zip(samples) {
            report.scaling.push((*point, collect(got, stop)));
        }
        report.scaling_input = Some(collect(input, input_stop));
    }
    // A failed fleet run fails the harness, after the other scenarios' results are written:
    // its section keeps the last complete table rather than one made of part of the runs.
    let fleet_section = if want(Scenario::Fleet) {
        step("fleet: go-lumber servers, one slow (alternating A B C)");
        Some(fleet::measure(&env, runs, &|s| step(s)).map(|results| {
            let cmd = format!(
                "skidder-bench --scenario fleet{} --count {} --runs {runs}",
                if args.short { " --short" } else { "" },
                env.count
            );
            let commit = report::command_line(
                "git",
                &[
                    "-C",
                    &root.display().to_string(),
                    "rev-parse",
                    "--short=12",
                    "HEAD",
                ],
            )
            .unwrap_or_else(|| "unknown".into());
            fleet::section(
                &results,
                env.count,
                &cmd,
                &commit,
                &skidder_bench::machine::describe(),
            )
        }))
    } else {
        None
    };
    if opensearch_started {
        let _ = Command::new("bash")
            .arg(root.join(".ci/peers/opensearch.sh"))
            .arg("stop")
            .status();
    }

    report.elapsed = started.elapsed();
    if !report.level_sweep.is_empty()
        || !report.pipelining_sweep.is_empty()
        || !report.scaling.is_empty()
    {
        std::fs::create_dir_all(&plots).with_context(|| format!("creating {}", plots.display()))?;
        report.plot(&plots, &out);
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let old = std::fs::read_to_string(&out).unwrap_or_default();
    // A run of scenarios that each own a marked section (filestream, disk, fleet, scaling) rewrites those
    // sections and nothing else; a wider run keeps the marked sections it did not redo.
    let sections_only = args.scenario.iter().all(|s| {
        matches!(
            s,
            Scenario::Filestream | Scenario::Disk | Scenario::Fleet | Scenario::Scaling
        )
    });
    let mut text = if sections_only {
        old
    } else {
        sections::keep(&old, &report.markdown())
    };
    if sections_only && args.scenario.contains(&Scenario::Disk) {
        text = sections::splice(&text, report::DISK_SECTION, &report.disk_only());
    }
    if sections_only && args.scenario.contains(&Scenario::Scaling) {
        text = sections::splice(&text, report::SCALING_SECTION, &report.scaling_only());
    }
    let text = filestream_sections
        .iter()
        .fold(text, |text, (name, section)| {
            sections::splice_after(&text, name, "filestream", section)
        });
    let (text, fleet_failure) = match fleet_section {
        Some(Ok(section)) => (sections::splice(&text, "fleet", &section), None),
        Some(Err(e)) => (text, Some(e)),
        None => (text, None),
    };
    std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
    println!("{}", report.summary());
    println!(
        "wrote {} in {:.0} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    match fleet_failure {
        Some(e) => Err(e.context("the fleet section was not rewritten")),
        None => Ok(()),
    }
}

/// Bytes free for an unprivileged writer on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data; all-zero is a valid value of it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs writes into `st`, which outlives the call; `c` is NUL-terminated.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

fn step(what: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("skidder-bench [{t:>6.1}s]: {what}");
}

fn run_build(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("starting the build of {what}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let start = err.len().saturating_sub(1500);
        return Err(error::BenchError::Build {
            what: what.into(),
            detail: err[start..].to_string(),
        }
        .into());
    }
    Ok(())
}

/// Builds bench/ferro-peer (its own workspace, so ferro-lumberjack's flate2 features
/// never change skidder's); the reason as an "unavailable" text if it does not build.
fn ferro_peer(root: &Path, no_build: bool) -> Result<PathBuf, String> {
    let target = root.join("target/ferro-peer");
    let bin = target.join("release/ferro-peer");
    if !no_build {
        step("building the ferro-lumberjack peer");
        let out = Command::new("cargo")
            .current_dir(root.join("bench/ferro-peer"))
            .args(["build", "--release", "--target-dir"])
            .arg(&target)
            .output()
            .map_err(|e| format!("unavailable: cannot run cargo for ferro-peer: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| l.starts_with("error"))
                .unwrap_or("build failed");
            return Err(format!(
                "unavailable: ferro-lumberjack does not build here: {last}"
            ));
        }
    }
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!("unavailable: {} is not built", bin.display()))
    }
}

/// The OpenSearch URL: given, already running, or (full mode only) started here.
fn opensearch_url(
    root: &Path,
    given: Option<String>,
    short: bool,
    started: &mut bool,
) -> Result<String, String> {
    if let Some(url) = given {
        return Ok(url);
    }
    let script = root.join(".ci/peers/opensearch.sh");
    let status = Command::new("bash").arg(&script).arg("status").output();
    if let Ok(out) = &status {
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
    }
    if short {
        return Err("unavailable: OpenSearch is not running (start it with .ci/peers/opensearch.sh start or pass --opensearch-url)".into());
    }
    step("starting OpenSearch (.ci/peers/opensearch.sh start)");
    match Command::new("bash").arg(&script).arg("start").output() {
        Ok(out) if out.status.success() => {
            *started = true;
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "unavailable: OpenSearch did not start: {}",
                err.lines().last().unwrap_or("no output")
            ))
        }
        Err(e) => Err(format!("unavailable: cannot run {}: {e}", script.display())),
    }
}

/// Turns the runs of one side into an outcome: samples, or the first reason it stopped.
fn collect(samples: Vec<Sample>, stop: Option<String>) -> Outcome {
    match stop {
        Some(why) if samples.is_empty() => Outcome::Skipped(why),
        Some(why) => Outcome::Partial(samples, why),
        None => Outcome::Samples(samples),
    }
}

use crate::scenarios::Sample;

fn record(result: RunResult, samples: &mut Vec<Sample>, stop: &mut Option<String>) {
    match result {
        Ok(Ok(s)) => samples.push(s),
        Ok(Err(u)) => *stop = Some(u.0),
        Err(e) => {
            step(&format!("run failed: {e}"));
            *stop = Some(format!("failed: {e}"));
        }
    }
}

/// `runs` runs of `f` (stops at the first refusal or failure).
fn repeat(runs: usize, mut f: impl FnMut() -> RunResult) -> Outcome {
    let (mut samples, mut stop) = (Vec::new(), None);
    for _ in 0..runs {
        record(f(), &mut samples, &mut stop);
        if stop.is_some() {
            break;
        }
    }
    collect(samples, stop)
}

/// A B A B ...: both sides see the same machine conditions; a side that is refused or
/// fails stops, the other goes on.
fn alternate(
    runs: usize,
    mut a: impl FnMut() -> RunResult,
    mut b: impl FnMut() -> RunResult,
) -> (Outcome, Outcome) {
    let (mut sa, mut stop_a) = (Vec::new(), None);
    let (mut sb, mut stop_b) = (Vec::new(), None);
    for _ in 0..runs {
        if stop_a.is_none() {
            record(a(), &mut sa, &mut stop_a);
        }
        if stop_b.is_none() {
            record(b(), &mut sb, &mut stop_b);
        }
    }
    (collect(sa, stop_a), collect(sb, stop_b))
}

/// `--scenario filestream`: writes the two files, alternates Filebeat and skidder per case,
/// measures skidder into output.discard, deletes the files, returns the report section.
fn run_filestream(
    root: &Path,
    env: &Env,
    runs: usize,
    no_build: bool,
    short: bool,
    only: &[filestream::Case],
) -> anyhow::Result<Vec<(&'static str, String)>> {
    use filestream::{Case, CaseResult, Shipper};
    if !no_build {
        step("building Filebeat 7.17.29 (.ci/peers/filebeat.sh)");
        run_build(
            Command::new("bash").arg(root.join(".ci/peers/filebeat.sh")),
            "Filebeat peer",
        )?;
    }
    let filebeat = root.join("tests/peers/filebeat/bin/filebeat");
    if !filebeat.exists() {
        bail!(
            "{} is missing: run bash .ci/peers/filebeat.sh",
            filebeat.display()
        );
    }
    step(&format!(
        "filestream: writing {} lines of NDJSON and of plain text",
        env.count
    ));
    let dir = env.work.join("filestream-files");
    let files = filestream::write_files(&dir, env.count)?;
    let mut results = Vec::new();
    let all = [Case::Ndjson, Case::Plain, Case::NdjsonHostMetadata];
    for case in all
        .into_iter()
        .filter(|c| only.is_empty() || only.contains(c))
    {
        let mut r = CaseResult::default();
        for i in 0..runs {
            step(&format!(
                "filestream {}: run {} of {runs}",
                case.name(),
                i + 1
            ));
            for who in [Shipper::Filebeat, Shipper::Skidder] {
                match filestream::run(env, &filebeat, &files, who, case) {
                    Ok(s) => match who {
                        Shipper::Filebeat => r.filebeat.push(s),
                        Shipper::Skidder => r.skidder.push(s),
                    },
                    Err(e) => {
                        step(&format!("filestream {} {who:?} failed: {e}", case.name()));
                        r.failed = Some(e.to_string());
                    }
                }
            }
            if r.failed.is_some() {
                break;
            }
        }
        for _ in 0..runs {
            match filestream::discard(env, &files, case) {
                Ok((mbs, _)) => r.discard.push(mbs),
                Err(e) => step(&format!("filestream discard {} failed: {e}", case.name())),
            }
            if case == Case::NdjsonHostMetadata {
                match filestream::discard(env, &files, Case::Ndjson) {
                    Ok((mbs, _)) => r.discard_without.push(mbs),
                    Err(e) => step(&format!("filestream discard NDJSON failed: {e}")),
                }
            }
        }
        results.push((case, r));
    }
    // The files are ~0.4 GB at a million lines: not left on the shared disk.
    let _ = std::fs::remove_dir_all(&dir);
    let cmd = |cases: &str| {
        format!(
            "skidder-bench --scenario filestream{cases}{} --count {} --runs {runs}",
            if short { " --short" } else { "" },
            env.count
        )
    };
    // The processors case has its own section, so each can be measured without the other.
    let (with, without): (Vec<_>, Vec<_>) = results
        .into_iter()
        .partition(|(c, _)| *c == Case::NdjsonHostMetadata);
    let mut out = Vec::new();
    if !without.is_empty() {
        let cases = if only.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = without.iter().map(|(c, _)| c.flag()).collect();
            format!(" --filestream-case {}", names.join(","))
        };
        out.push((
            "filestream",
            filestream::section(&files, runs, &without, &cmd(&cases)),
        ));
    }
    if let Some((_, r)) = with.first() {
        out.push((
            "filestream-processors",
            filestream::processors_section(
                &files,
                runs,
                r,
                &cmd(" --filestream-case default-processors"),
            ),
        ));
    }
    Ok(out)
}
