//! BENCHMARKS.md: written by the harness from the measured samples, never by hand.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::limit::Limit;
use crate::plot::{panels, series_panels, Panel, SeriesPanel};
use crate::scenarios::{Sample, Scale};

/// What the runs of one row produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Every run succeeded.
    Samples(Vec<Sample>),
    /// Some runs succeeded, then one failed (the reason).
    Partial(Vec<Sample>, String),
    /// Nothing ran (unavailable here, or the first run failed).
    Skipped(String),
}

impl Outcome {
    fn samples(&self) -> &[Sample] {
        match self {
            Outcome::Samples(s) | Outcome::Partial(s, _) => s,
            Outcome::Skipped(_) => &[],
        }
    }

    /// Median of `f` over the runs; None without runs.
    pub fn median(&self, f: impl Fn(&Sample) -> f64) -> Option<f64> {
        let mut v: Vec<f64> = self
            .samples()
            .iter()
            .map(f)
            .filter(|x| x.is_finite())
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    }
}

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario number of the issue and transport.
    pub id: String,
    /// Sender → receiver.
    pub what: String,
    /// zN = zlib level, pN = pipelining, bN = window.
    pub settings: String,
    /// Which process CPU and RSS belong to.
    pub measured: String,
    /// The runs.
    pub outcome: Outcome,
}

impl Row {
    /// A row.
    pub fn new(id: &str, what: &str, settings: &str, measured: &str, outcome: Outcome) -> Self {
        Self {
            id: id.into(),
            what: what.into(),
            settings: settings.into(),
            measured: measured.into(),
            outcome,
        }
    }
}

/// A target on a pair ratio: what, which metric, the test, the target as text.
type Check<'a> = (
    &'a str,
    &'a dyn Fn(&Sample) -> f64,
    fn(f64) -> bool,
    &'a str,
);

/// Everything measured in one harness run.
#[derive(Debug)]
pub struct Report {
    root: PathBuf,
    short: bool,
    count: u64,
    runs: usize,
    mean_event: f64,
    corpus_lines: usize,
    /// Results table.
    pub rows: Vec<Row>,
    /// (name, row index of skidder, row index of the peer).
    pub pairs: Vec<(String, usize, usize)>,
    /// Compression backend single-core rates.
    pub limits: Vec<Limit>,
    /// skidder by compression level.
    pub level_sweep: Vec<(u32, Outcome)>,
    /// skidder by pipelining.
    pub pipelining_sweep: Vec<(u32, Outcome)>,
    /// Queue comparison rows (memory first), by name.
    pub queues: Vec<(String, Outcome)>,
    /// Disk queue backlog: (bytes on disk, events, stored as packed windows, peak RSS KiB
    /// filling it, peak RSS KiB draining it).
    pub backlog: Vec<(u64, u64, bool, u64, u64)>,
    /// Lines under the disk tables (a backlog size that could not be measured, and why).
    pub disk_notes: Vec<String>,
    /// Worker scaling into the null sink, worker 1 on 1 host first.
    pub scaling: Vec<(Scale, Outcome)>,
    /// The scaling runs' input alone (generator → memory queue → `output.discard`),
    /// alternated with the scaling points.
    pub scaling_input: Option<Outcome>,
    /// The compressor at `compression_level: 3` without and with the framing copy in its
    /// loop ([`crate::limit::framing_pair`]), measured for the scaling section.
    pub framed_limit: Option<(Limit, Limit)>,
    /// Total harness time.
    pub elapsed: Duration,
    plots: Vec<(String, Result<PathBuf, String>)>,
}

/// The name of the disk queue's marked section ([`crate::sections`]), so `--scenario disk`
/// can replace it alone.
pub const DISK_SECTION: &str = "disk_queue";
const DISK_BEGIN: &str = "<!-- disk_queue:begin -->";
const DISK_END: &str = "<!-- disk_queue:end -->";
/// The name of the worker-scaling section, so `--scenario scaling` can replace it alone.
pub const SCALING_SECTION: &str = "scaling";
const SCALING_BEGIN: &str = "<!-- scaling:begin -->";
const SCALING_END: &str = "<!-- scaling:end -->";

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".to_string(), |x| format!("{x:.digits$}"))
}

fn thousands(v: Option<f64>) -> String {
    let Some(v) = v else {
        return "—".into();
    };
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

pub(crate) fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Report {
    /// An empty report for a harness run.
    pub fn new(
        root: &Path,
        short: bool,
        count: u64,
        runs: usize,
        mean_event: f64,
        corpus_lines: usize,
    ) -> Self {
        Self {
            root: root.to_path_buf(),
            short,
            count,
            runs,
            mean_event,
            corpus_lines,
            rows: Vec::new(),
            pairs: Vec::new(),
            queues: Vec::new(),
            backlog: Vec::new(),
            disk_notes: Vec::new(),
            scaling: Vec::new(),
            scaling_input: None,
            framed_limit: None,
            limits: Vec::new(),
            level_sweep: Vec::new(),
            pipelining_sweep: Vec::new(),
            elapsed: Duration::ZERO,
            plots: Vec::new(),
        }
    }

    /// Adds skidder's row and the peer's row as a compared pair.
    pub fn pair(&mut self, name: &str, ours: Row, peer: Row) {
        self.rows.push(ours);
        self.rows.push(peer);
        let n = self.rows.len();
        self.pairs.push((name.into(), n - 2, n - 1));
    }

    /// Draws the sweep plots next to the report (relative links from `out`).
    pub fn plot(&mut self, dir: &Path, out: &Path) {
        let base = out.parent().unwrap_or(Path::new(".")).to_path_buf();
        let rel = |p: &Path| -> PathBuf {
            p.strip_prefix(&base)
                .map_or_else(|_| p.to_path_buf(), Path::to_path_buf)
        };
        let sweeps = [
            (
                "Compression level sweep",
                "compression-levels.png",
                "skidder → go-lumber server by compression_level (TCP, pipelining 2, window 2048)",
                "compression_level",
                &self.level_sweep,
            ),
            (
                "Pipelining sweep",
                "pipelining.png",
                "skidder → go-lumber server by pipelining (TCP, zlib 3, window 2048)",
                "pipelining",
                &self.pipelining_sweep,
            ),
        ];
        let mut drawn = Vec::new();
        for (name, file, title, x_label, sweep) in sweeps {
            if sweep.is_empty() {
                continue;
            }
            let series = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
                sweep
                    .iter()
                    .filter_map(|(x, o)| Some((f64::from(*x), o.median(f)?)))
                    .collect()
            };
            let figure = [
                Panel {
                    y_label: "thousand events/s".into(),
                    points: series(&|s| s.events_per_s / 1000.0),
                },
                Panel {
                    y_label: "sender CPU µs per event".into(),
                    points: series(&|s| s.cpu_s_per_m),
                },
                Panel {
                    y_label: "wire bytes per event".into(),
                    points: series(&|s| s.bytes_per_event),
                },
            ];
            let path = dir.join(file);
            let r = panels(&path, title, x_label, &figure);
            drawn.push((
                name.to_string(),
                r.map(|()| rel(&path)).map_err(|e| e.to_string()),
            ));
        }
        if !self.scaling.is_empty() {
            let path = dir.join("worker-scaling.png");
            let r = self.scaling_plot(&path);
            drawn.push((
                "Worker scaling into the null sink".to_string(),
                r.map(|()| rel(&path)).map_err(|e| e.to_string()),
            ));
        }
        self.plots.extend(drawn);
    }

    /// events/s, CPU per event and peak RSS by `worker`, one line per host count.
    fn scaling_plot(&self, path: &Path) -> Result<(), crate::error::BenchError> {
        let series = |f: &dyn Fn(&Sample) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
            // The default queue only; other queue sizes are rows of the table.
            let mut hosts: Vec<usize> = self.scaling.iter().map(|(p, _)| p.hosts).collect();
            hosts.sort_unstable();
            hosts.dedup();
            hosts
                .into_iter()
                .map(|h| {
                    let points = self
                        .scaling
                        .iter()
                        .filter(|(p, _)| p.hosts == h && p.queue_events.is_none())
                        .filter_map(|(p, o)| Some((p.workers as f64, o.median(f)?)))
                        .collect();
                    let name = if h == 1 {
                        "1 host".to_string()
                    } else {
                        format!("{h} hosts, loadbalance")
                    };
                    (name, points)
                })
                .collect()
        };
        let figure = [
            SeriesPanel {
                y_label: "thousand events/s".into(),
                series: series(&|s| s.events_per_s / 1000.0),
            },
            SeriesPanel {
                y_label: "sender CPU µs per event".into(),
                series: series(&|s| s.cpu_s_per_m),
            },
            SeriesPanel {
                y_label: "sender peak RSS MiB".into(),
                series: series(&|s| mib(s.max_rss_kib as f64)),
            },
        ];
        series_panels(
            path,
            "skidder alone into the null sink by worker (mTLS, compression_level 3, pipelining 2)",
            "worker (connections per host)",
            &figure,
        )
    }

    fn row(&self, i: usize) -> &Row {
        &self.rows[i]
    }

    fn limit(&self, level: u32) -> Option<&Limit> {
        self.limits.iter().find(|l| l.level == level)
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let cmd = if self.short {
            "cargo run --release -p skidder-bench -- --scenario all --short"
        } else {
            "cargo run --release -p skidder-bench -- --scenario all"
        };
        let root = self.root.display().to_string();
        let commit = command_line("git", &["-C", &root, "rev-parse", "--short=12", "HEAD"])
            .unwrap_or_else(|| "unknown".into());
        // The report and plots are outputs of this run, not changes to what was measured.
        let dirty = command_line(
            "git",
            &[
                "-C",
                &root,
                "status",
                "--porcelain",
                "--",
                ".",
                ":!BENCHMARKS.md",
                ":!bench/plots",
            ],
        )
        .is_some_and(|s| !s.is_empty());
        let machine = skidder_bench::machine::detect();
        let (cpu, cores) = (machine.cpu.clone(), machine.cores);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
        let _ = writeln!(m, "# skidder benchmarks\n");
        let _ = writeln!(
            m,
            "Generated by `{cmd}` — written by the harness (bench/), never edited by hand.\n"
        );
        let _ = writeln!(
            m,
            "- Commit: `{commit}`{}\n- Machine: {cpu}, {cores} cores available to processes, Linux {}\n- SIMD: {} (ISA-L igzip dispatches to its {} code)\n- Date: {date}; the whole run took {:.0} s\n- Mode: {}; {} events per run; pairs run alternately (A B A B …), {} runs per side, medians quoted\n- Corpus: {} NDJSON lines of Beats-shaped nginx access, application and sshd auth events (fixed seed, mean {:.0} bytes), cycled; every sender sends exactly these bytes (skidder: generator `replay`, go-lumber client: `--file`, ferro peer: the same file)\n",
            if dirty { " (with uncommitted changes)" } else { "" },
            kernel.trim(),
            machine.features_text(),
            machine.igzip_path(),
            self.elapsed.as_secs_f64(),
            if self.short { "short (CI)" } else { "full" },
            thousands(Some(self.count as f64)),
            self.runs,
            self.corpus_lines,
            self.mean_event,
        );

        let _ = writeln!(m, "## Results\n");
        let _ = writeln!(
            m,
            "| # | sender → receiver | settings | measured | events/s | wire MB/s | wire B/event | CPU s per M events | peak RSS MiB | ACK p50 / p99 ms | runs |"
        );
        let _ = writeln!(m, "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|");
        for r in &self.rows {
            let o = &r.outcome;
            let runs = match o {
                Outcome::Samples(s) => s.len().to_string(),
                Outcome::Partial(s, why) => format!("{} ({why})", s.len()),
                Outcome::Skipped(why) => why.clone(),
            };
            let eps = o.median(|s| s.events_per_s);
            let bpe = o.median(|s| s.bytes_per_event);
            let mbps = match (eps, bpe) {
                (Some(e), Some(b)) => Some(e * b / 1e6),
                _ => None,
            };
            let ack = match (
                o.median(|s| s.ack_p50_ms.unwrap_or(f64::NAN)),
                o.median(|s| s.ack_p99_ms.unwrap_or(f64::NAN)),
            ) {
                (Some(a), Some(b)) => format!("≤{a:.0} / ≤{b:.0}"),
                _ => "n/a".into(),
            };
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.id,
                r.what,
                r.settings,
                r.measured,
                thousands(eps),
                cell(mbps, 1),
                cell(bpe, 1),
                cell(o.median(|s| s.cpu_s_per_m), 2),
                cell(o.median(|s| mib(s.max_rss_kib as f64)), 1),
                ack,
                runs
            );
        }

        let _ = writeln!(m, "\n## Pairs (ratio first / second, from the same run)\n");
        let _ = writeln!(
            m,
            "| pair | events/s | CPU per event | wire bytes per event | peak RSS |"
        );
        let _ = writeln!(m, "|---|---:|---:|---:|---:|");
        for (name, a, b) in &self.pairs {
            let (a, b) = (&self.row(*a).outcome, &self.row(*b).outcome);
            let r = |f: &dyn Fn(&Sample) -> f64| cell(ratio(a.median(f), b.median(f)), 2);
            let _ = writeln!(
                m,
                "| {name} | {} | {} | {} | {} |",
                r(&|s| s.events_per_s),
                r(&|s| s.cpu_s_per_m),
                r(&|s| s.bytes_per_event),
                r(&|s| s.max_rss_kib as f64)
            );
        }
        let _ = writeln!(m);
        self.disk_section(&mut m);
        self.scaling_section(&mut m);

        let _ = writeln!(m, "\n## The machine's limit: single-core compression\n");
        let _ = writeln!(
            m,
            "The compressor output.logstash uses for each `compression_level` (`WireCompressor::for_level`: its default backend and level mapping; the flate2 fallback below it) compressing the corpus's J-frame windows of 2048 events in-process on one thread, timed by that thread's CPU clock. Level 0 is the framing copy only. The first row per level is the limit the targets use.\n"
        );
        let _ = writeln!(
            m,
            "| compression_level | backend | MB/s (uncompressed) | events/s per core | wire B/event |"
        );
        let _ = writeln!(m, "|---:|---|---:|---:|---:|");
        for l in &self.limits {
            let _ = writeln!(
                m,
                "| {} | {} | {:.0} | {} | {:.1} |",
                l.level,
                l.backend,
                l.mb_per_s,
                thousands(Some(l.events_per_s)),
                l.bytes_per_event
            );
        }

        let _ = writeln!(
            m,
            "\nThe compressor each `compression_level` uses in this build (`WireCompressor::for_level`; `SKIDDER_DEFLATE_BACKEND` {}):\n",
            skidder::outputs::logstash::compress::Backend::forced()
                .map_or("unset".to_string(), |b| format!("forces {b}"))
        );
        let _ = writeln!(m, "| compression_level | backend and its level |");
        let _ = writeln!(m, "|---:|---|");
        for (level, backend) in crate::limit::mapping() {
            let _ = writeln!(m, "| {level} | {backend} |");
        }

        let _ = writeln!(m, "\n## Targets on {cpu}\n");
        let _ = writeln!(
            m,
            "Evaluated on this machine only ({cpu}; SIMD: {}): another CPU needs its own run.\n",
            machine.features_text()
        );
        for line in self.targets() {
            let _ = writeln!(m, "- {line}");
        }

        if !self.plots.is_empty() {
            let _ = writeln!(m, "\n## Sweeps\n");
            for (title, p) in &self.plots {
                match p {
                    Ok(path) => {
                        let _ = writeln!(m, "{title}:\n\n![{title}]({})\n", path.display());
                    }
                    Err(e) => {
                        let _ = writeln!(
                            m,
                            "{title}: no plot ({e}); the numbers are in the table above.\n"
                        );
                    }
                }
            }
        }

        let _ = writeln!(m, "## How it is measured\n");
        for line in [
            "events/s: counted by the receiving server between its first and last accepted batch (go-lumber's `--stats-file`, `skidder receive --stats`); for OpenSearch, skidder's own `events_per_s`.",
            "CPU s per M events and peak RSS: user + system time and `ru_maxrss` of the measured process (the sender, or the server in scenario 6) from `wait4(2)` — the kernel's numbers, whole process life including start-up and the TLS handshake.",
            "wire bytes: counted by a loopback relay in the harness between sender and server (sender → server direction, TLS records included). The `relay` pair shows what the relay costs; all other rows go through it.",
            "ACK latency: skidder's per-host histogram (bucket upper bounds, worst host) from the Logstash output's exit summary; go-lumber's and ferro-lumberjack's clients expose none (n/a).",
            "Settings: zN = `compression_level` N (output.logstash maps it onto its compressor, see the limit table; go-lumber and ferro-lumberjack use zlib level N), pN = pipelining N, bN / b2048 = window of N events. Defaults unless stated: compression_level 3, window 2048, pipelining 2, one connection, skidder's default queue (`queue.mem.events: 3200`, `flush.min_events: 1600`), so skidder's windows may be smaller than 2048 when the queue holds less.",
            "ferro-lumberjack 1.0's client sends one window at a time, cannot present a client certificate, and continues `seq` across windows expecting Logstash-style ACKs (the last seq); go-lumber's server ACKs the window's event count, so ferro-lumberjack fails on its second window there. Scenario 3 therefore sends both ferro-lumberjack and skidder (pipelining 0, plain TCP) to `skidder receive`, which ACKs like Logstash.",
            "Sender, server and relay share the same cores: compare rows of one report, not across machines. go-lumber's server needs several times skidder's CPU per event (scenario 6), so in scenarios 1–4 it bounds events/s; the sender's CPU per event and wire bytes are its own.",
        ] {
            let _ = writeln!(m, "- {line}");
        }
        m
    }

    /// Lines of the Targets section: each target, the measured value and whether it is met.
    fn targets(&self) -> Vec<String> {
        let mut out = Vec::new();
        let find = |name: &str| self.pairs.iter().find(|(n, _, _)| n == name);
        let verdict = |ok: bool| if ok { "**met**" } else { "**not met**" };
        if let Some((_, a, b)) = find("skidder / go-lumber client, mTLS") {
            let (a, b) = (&self.row(*a).outcome, &self.row(*b).outcome);
            let checks: [Check; 3] = [
                (
                    "sender CPU per event",
                    &|s| s.cpu_s_per_m,
                    |r| r <= 0.45,
                    "≤ 0.45",
                ),
                // The mapping may trade up to 2 % more bytes for ≥ 20 % less CPU
                // (outputs::logstash::compress).
                (
                    "wire bytes per event",
                    &|s| s.bytes_per_event,
                    |r| r <= 1.02,
                    "≤ 1.02",
                ),
                ("events/s", &|s| s.events_per_s, |r| r >= 1.0, "≥ 1.00"),
            ];
            for (what, f, ok, want) in checks {
                match ratio(a.median(f), b.median(f)) {
                    Some(r) => out.push(format!(
                        "skidder / go-lumber client over mTLS, z3, {what}: {r:.2} (target {want}) — {}",
                        verdict(ok(r))
                    )),
                    None => out.push(format!("skidder / go-lumber client over mTLS, {what}: not measured in this run")),
                }
            }
        } else {
            out.push("skidder / go-lumber client over mTLS: not run (scenario lumberjack)".into());
        }
        let skidder_rss = self
            .rows
            .iter()
            .filter(|r| r.measured == "sender" && r.what.starts_with("skidder"))
            .flat_map(|r| r.outcome.samples().iter().map(|s| s.max_rss_kib))
            .chain(
                self.scaling
                    .iter()
                    .flat_map(|(_, o)| o.samples().iter().map(|s| s.max_rss_kib)),
            )
            .max();
        match skidder_rss {
            Some(kib) => {
                let mb = kib as f64 * 1024.0 / 1e6;
                out.push(format!(
                    "skidder peak RSS under full load, default queue: {mb:.1} MB (largest of all skidder sender runs, the worker-scaling sweep included; target < 25 MB) — {}",
                    verdict(mb < 25.0)
                ));
            }
            None => out.push("skidder peak RSS: no skidder sender run in this report".into()),
        }
        let mtls = find("skidder / go-lumber client, mTLS").map(|(_, a, _)| &self.row(*a).outcome);
        match (
            mtls.and_then(|o| o.median(|s| s.cpu_s_per_m)),
            self.limit(3),
        ) {
            (Some(cpu_per_m), Some(l)) if cpu_per_m > 0.0 => {
                let per_cpu_s = 1e6 / cpu_per_m;
                let pct = per_cpu_s / l.events_per_s * 100.0;
                out.push(format!(
                    "machine limit: skidder over mTLS at compression_level 3 ships {} events per CPU-second; its compressor alone ({}) does {} events/s on one core: {pct:.0}% of the limit per core used (target ≥ 85%) — {}",
                    thousands(Some(per_cpu_s)),
                    l.backend,
                    thousands(Some(l.events_per_s)),
                    verdict(pct >= 85.0)
                ));
            }
            _ => out.push(
                "machine limit: needs the mTLS pair and the level 3 baseline in the same run"
                    .into(),
            ),
        }
        out.extend(self.scaling_targets());
        out
    }

    /// The disk queue section alone, between its markers, with the run's provenance: what
    /// `--scenario disk` splices into an existing report.
    pub fn disk_only(&self) -> String {
        let root = self.root.display().to_string();
        let commit = command_line("git", &["-C", &root, "rev-parse", "--short=12", "HEAD"])
            .unwrap_or_else(|| "unknown".into());
        let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
        let mut m = String::new();
        self.disk_section_with(
            &mut m,
            &format!(
                "From `cargo run --release -p skidder-bench -- --scenario disk --runs {}` ({} events per run; commit `{commit}`; {date}; the whole run took {:.0} s): only this section was regenerated, the rest of the report is from its own run.\n",
                self.runs,
                thousands(Some(self.count as f64)),
                self.elapsed.as_secs_f64()
            ),
        );
        m
    }

    /// The scaling point `workers` × `hosts`, if it was run.
    fn scale(&self, workers: usize, hosts: usize) -> Option<&Outcome> {
        self.scaling
            .iter()
            .find(|(p, _)| p.workers == workers && p.hosts == hosts && p.queue_events.is_none())
            .map(|(_, o)| o)
    }

    /// Two connections against one, into the null sink: events/s ≥ 1.7×, CPU per event
    /// ≤ 1.1×; and the sender's best events per CPU-second beside the compressor's ceiling.
    fn scaling_targets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.scaling.is_empty() {
            return out;
        }
        let verdict = |ok: bool| if ok { "**met**" } else { "**not met**" };
        let base = self.scale(1, 1);
        for (workers, hosts, what) in [(2, 1, "worker: 2"), (1, 2, "loadbalance over 2 hosts")] {
            let Some(o) = self.scale(workers, hosts) else {
                continue;
            };
            let eps = ratio(
                o.median(|s| s.events_per_s),
                base.and_then(|b| b.median(|s| s.events_per_s)),
            );
            let cpu = ratio(
                o.median(|s| s.cpu_s_per_m),
                base.and_then(|b| b.median(|s| s.cpu_s_per_m)),
            );
            match (eps, cpu) {
                (Some(e), Some(c)) => out.push(format!(
                    "two cores, {what} vs worker: 1 into the null sink: events/s {e:.2}× (target ≥ 1.70×), CPU per event {c:.2}× (target ≤ 1.10×) — {}",
                    verdict(e >= 1.7 && c <= 1.1)
                )),
                _ => out.push(format!("two cores, {what}: not measured in this run")),
            }
        }
        for (p, o) in self
            .scaling
            .iter()
            .filter(|(p, _)| p.queue_events.is_some())
        {
            let eps = ratio(
                o.median(|s| s.events_per_s),
                base.and_then(|b| b.median(|s| s.events_per_s)),
            );
            let cpu = ratio(
                o.median(|s| s.cpu_s_per_m),
                base.and_then(|b| b.median(|s| s.cpu_s_per_m)),
            );
            if let (Some(e), Some(c)) = (eps, cpu) {
                out.push(format!(
                    "for comparison, {} vs worker: 1: events/s {e:.2}×, CPU per event {c:.2}×",
                    p.name()
                ));
            }
        }
        let best = self
            .scaling
            .iter()
            .filter_map(|(p, o)| Some((p, o.median(|s| s.cpu_s_per_m)?)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let (Some((p, cpu)), Some(l)) = (best, self.limit(3)) {
            let per_core = 1e6 / cpu;
            out.push(format!(
                "sender alone: at most {} events per CPU-second into the null sink ({}), beside its compressor's single-core ceiling of {} ({}): {:.0}%",
                thousands(Some(per_core)),
                p.name(),
                thousands(Some(l.events_per_s)),
                l.backend,
                per_core / l.events_per_s * 100.0
            ));
        }
        out.extend(self.ceiling_breakdown());
        out
    }

    /// Where worker: 1's CPU per event goes, beside the ceiling: the input's share
    /// (measured alone) and the ceiling with the framing copy in it.
    fn ceiling_breakdown(&self) -> Vec<String> {
        let mut out = Vec::new();
        let (Some(l), Some(base)) = (
            self.limit(3),
            self.scale(1, 1).and_then(|o| o.median(|s| s.cpu_s_per_m)),
        ) else {
            return out;
        };
        if base <= 0.0 || l.events_per_s <= 0.0 {
            return out;
        }
        // µs per event: the ceiling's, worker: 1's.
        let ceiling = 1e6 / l.events_per_s;
        if let Some(input) = self
            .scaling_input
            .as_ref()
            .and_then(|o| o.median(|s| s.cpu_s_per_m))
        {
            let rest = base - input;
            out.push(format!(
                "the input alone (the same generator replay → memory queue → `output.discard`, alternated with the points above): {input:.3} CPU-s per M events, {:.0}% of worker: 1's {base:.3}; worker: 1 without it: {} events per CPU-second, {:.0}% of the ceiling (the target counts the whole process)",
                input / base * 100.0,
                thousands((rest > 0.0).then(|| 1e6 / rest)),
                if rest > 0.0 { ceiling / rest * 100.0 } else { f64::NAN },
            ));
        }
        if let Some((p, f)) = self
            .framed_limit
            .as_ref()
            .filter(|(p, f)| p.events_per_s > 0.0 && f.events_per_s > 0.0)
        {
            let (plain, framed) = (1e6 / p.events_per_s, 1e6 / f.events_per_s);
            out.push(format!(
                "the ceiling with the framing copy (each event copied into its J frame in a reused buffer, then the window compressed: the one copy the issue calls the floor), alternated with compression alone: {} events/s against {} ({framed:.3} against {plain:.3} µs per event, the copy {:.3}); worker: 1 reaches {:.0}% of it",
                thousands(Some(f.events_per_s)),
                thousands(Some(p.events_per_s)),
                framed - plain,
                framed / base * 100.0,
            ));
        }
        out
    }

    /// The worker-scaling section alone, between its markers, with the run's provenance,
    /// the machine and the compressor ceiling measured in the same run: what
    /// `--scenario scaling` splices into an existing report.
    pub fn scaling_only(&self) -> String {
        let root = self.root.display().to_string();
        let commit = command_line("git", &["-C", &root, "rev-parse", "--short=12", "HEAD"])
            .unwrap_or_else(|| "unknown".into());
        let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
        let machine = skidder_bench::machine::detect();
        let ceiling = self.limit(3).map_or_else(String::new, |l| {
            format!(
                " The compressor's single-core ceiling measured in this run (`compression_level: 3`): {} events/s ({}).",
                thousands(Some(l.events_per_s)),
                l.backend
            )
        });
        let mut m = String::new();
        self.scaling_section_with(
            &mut m,
            &format!(
                "From `skidder-bench --scenario scaling --runs {}` ({} events per run; commit `{commit}`; {date}; the whole run took {:.0} s; {}, {} cores, SIMD: {}): only this section was regenerated, the rest of the report is from its own run.{ceiling}\n",
                self.runs,
                thousands(Some(self.count as f64)),
                self.elapsed.as_secs_f64(),
                machine.cpu,
                machine.cores,
                machine.features_text(),
            ),
        );
        m
    }

    /// The worker-scaling section: skidder alone into the null sink.
    fn scaling_section(&self, m: &mut String) {
        self.scaling_section_with(m, "");
    }

    fn scaling_section_with(&self, m: &mut String, provenance: &str) {
        if self.scaling.is_empty() {
            return;
        }
        let _ = writeln!(m, "{SCALING_BEGIN}");
        let _ = writeln!(
            m,
            "## Worker scaling: skidder alone into the null sink
"
        );
        if !provenance.is_empty() {
            let _ = writeln!(m, "{provenance}");
        }
        let _ = writeln!(
            m,
            "skidder (generator replay → memory queue, `queue.mem.events` not set, so sized for the connections: 3200 for one, 6400 for two, 12800 for four → output.logstash, compression_level 3, pipelining 2, bulk_max_size 2048, mutual TLS) → the harness's null sink (`null-sink`: reads each frame header, skips the `C` payload by its length without inflating, ACKs each window with its event count), one listener per host. Every real receiver needs CPU comparable to the sender's and shares the cores with it; the null sink does not, so this measures the sender alone. The points alternate in one loop (1 worker, 2 workers, 2 hosts × 1, 2 hosts × 2, 2 workers with `queue.mem.events: 3200` written, Beats' fixed default and skidder's before it sized the queue, then again), medians; the machine is the one named at the top and may be shared with other work, so read the ratios. Sender CPU and peak RSS: skidder's whole process from `wait4`; sink CPU likewise for the null-sink process; events/s between the sink's first read and its last ACK. \"other processes\" is the machine's busy CPU (`/proc/stat`) while skidder ran, minus skidder's and the sink's, in cores: a second worker can only use a core nothing else takes. \"sender cores busy\" is events/s × CPU per event (skidder's CPU is over its whole life, so this slightly overstates the send phase).\n"
        );
        let _ = writeln!(
            m,
            "| configuration | events/s | events/s vs worker 1 | sender CPU s per M events | CPU/event vs worker 1 | events per sender CPU-second | null-sink CPU s per M events | sink CPU / sender CPU | sender cores busy | other processes, cores | peak RSS MiB | ACK p50 / p99 ms | runs |"
        );
        let _ = writeln!(
            m,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        let base = self.scale(1, 1);
        let base_eps = base.and_then(|b| b.median(|s| s.events_per_s));
        let base_cpu = base.and_then(|b| b.median(|s| s.cpu_s_per_m));
        for (p, o) in &self.scaling {
            let eps = o.median(|s| s.events_per_s);
            let cpu = o.median(|s| s.cpu_s_per_m);
            let sink = o.median(|s| s.sink_cpu_s_per_m.unwrap_or(f64::NAN));
            let ack = match (
                o.median(|s| s.ack_p50_ms.unwrap_or(f64::NAN)),
                o.median(|s| s.ack_p99_ms.unwrap_or(f64::NAN)),
            ) {
                (Some(a), Some(b)) => format!("≤{a:.0} / ≤{b:.0}"),
                _ => "n/a".into(),
            };
            let runs = match o {
                Outcome::Skipped(why) => why.clone(),
                Outcome::Partial(s, why) => format!("{} ({why})", s.len()),
                Outcome::Samples(s) => s.len().to_string(),
            };
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {ack} | {runs} |",
                p.name(),
                thousands(eps),
                cell(ratio(eps, base_eps), 2),
                cell(cpu, 2),
                cell(ratio(cpu, base_cpu), 2),
                thousands(cpu.filter(|c| *c > 0.0).map(|c| 1e6 / c)),
                cell(sink, 3),
                cell(ratio(sink, cpu).map(|r| r * 100.0), 1).to_string() + " %",
                cell(o.median(|s| s.events_per_s * s.cpu_s_per_m / 1e6), 2),
                cell(o.median(|s| s.other_cores.unwrap_or(f64::NAN)), 2),
                cell(o.median(|s| mib(s.max_rss_kib as f64)), 1),
            );
        }
        let _ = writeln!(m);
        for line in self.scaling_targets() {
            let _ = writeln!(m, "- {line}");
        }
        // Alone (`--scenario scaling`) there is no "Sweeps" section to carry the plot.
        if !provenance.is_empty() {
            for (title, p) in self.plots.iter().filter(|(t, _)| t.starts_with("Worker")) {
                if let Ok(path) = p {
                    let _ = writeln!(m, "\n![{title}]({})", path.display());
                }
            }
        }
        let _ = writeln!(m, "{SCALING_END}");
    }

    /// The disk queue section: queue comparison and backlog memory.
    fn disk_section(&self, m: &mut String) {
        self.disk_section_with(m, "");
    }

    fn disk_section_with(&self, m: &mut String, provenance: &str) {
        if self.queues.is_empty() && self.backlog.is_empty() {
            return;
        }
        let _ = writeln!(m, "{DISK_BEGIN}");
        let _ = writeln!(m, "## Disk queue vs memory queue\n");
        if !provenance.is_empty() {
            let _ = writeln!(m, "{provenance}");
        }
        let _ = writeln!(
            m,
            "skidder (generator replay → queue → output.logstash, z3 p2 b2048, mutual TLS) → go-lumber server; skidder measured. The queue settings alternate in one loop (memory, disk batch, disk interval, disk none, memory, …), so each ratio compares runs taken under the same load. Taken on a shared 2-core AMD EPYC where other work runs at the same time: absolute numbers are noisy, ratios within a run are what to read. Bytes written and fsyncs come from skidder's own counters (totals line).\n"
        );
        let _ = writeln!(
            m,
            "| queue | events/s | CPU s per M events | disk B written per event | fsyncs per M events | peak RSS MiB | events/s vs memory | CPU/event vs memory | runs |"
        );
        let _ = writeln!(m, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
        let base = self.queues.first().map(|(_, o)| o);
        for (name, o) in &self.queues {
            let eps = o.median(|s| s.events_per_s);
            let cpu = o.median(|s| s.cpu_s_per_m);
            let ratio = |f: fn(&Sample) -> f64, v: Option<f64>| {
                let b = base.and_then(|b| b.median(f));
                cell(v.zip(b).map(|(v, b)| v / b), 2)
            };
            let runs = match o {
                Outcome::Skipped(why) => why.clone(),
                Outcome::Partial(s, why) => format!("{} ({why})", s.len()),
                Outcome::Samples(s) => s.len().to_string(),
            };
            let _ = writeln!(
                m,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {runs} |",
                thousands(eps),
                cell(cpu, 2),
                cell(o.median(|s| s.disk_bytes_per_event.unwrap_or(f64::NAN)), 1),
                thousands(o.median(|s| s.fsyncs_per_m.unwrap_or(f64::NAN))),
                cell(o.median(|s| mib(s.max_rss_kib as f64)), 1),
                ratio(|s| s.events_per_s, eps),
                ratio(|s| s.cpu_s_per_m, cpu),
            );
        }
        if !self.backlog.is_empty() {
            let _ = writeln!(
                m,
                "\nMemory with a backlog: skidder fills a disk queue while the output is down (then SIGTERM), and a second skidder drains it to go-lumber; peak RSS of each (`wait4`). The smallest row is the empty-queue baseline; the largest backlog (5 GB unless the disk lacked the space, then the row says so) is measured, not extrapolated, and deleted right after. Those two are plain frames (the fill runs at `compression_level: 0`, which does not pack); the last row holds the 5 GB backlog's events again as packed windows, as with the default `compression_level` (docs/disk-queue.md §11).\n"
            );
            let _ = writeln!(
                m,
                "| backlog on disk | events | stored as | peak RSS filling, MiB | peak RSS draining, MiB |"
            );
            let _ = writeln!(m, "|---:|---:|---|---:|---:|");
            for &(bytes, events, packed, fill, drain) in &self.backlog {
                let _ = writeln!(
                    m,
                    "| {:.2} GB | {} | {} | {:.1} | {:.1} |",
                    bytes as f64 / 1e9,
                    thousands(Some(events as f64)),
                    if packed {
                        "packed windows"
                    } else {
                        "plain frames"
                    },
                    mib(fill as f64),
                    mib(drain as f64)
                );
            }
        }
        for note in &self.disk_notes {
            let _ = writeln!(m, "\n{note}");
        }
        let _ = writeln!(m, "{DISK_END}");
        let _ = writeln!(m);
    }

    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<14} {:<48} {:<20} {:>10} ev/s {:>8} CPU s/M {:>8} B/ev",
                r.id,
                r.what,
                r.settings,
                thousands(r.outcome.median(|x| x.events_per_s)),
                cell(r.outcome.median(|x| x.cpu_s_per_m), 2),
                cell(r.outcome.median(|x| x.bytes_per_event), 1),
            );
            if let Outcome::Skipped(why) | Outcome::Partial(_, why) = &r.outcome {
                let _ = writeln!(s, "{:<14} {why}", "");
            }
        }
        for t in self.targets() {
            let _ = writeln!(s, "{t}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(eps: f64) -> Sample {
        Sample {
            events_per_s: eps,
            bytes_per_event: 100.0,
            cpu_s_per_m: 1.0,
            max_rss_kib: 10_240,
            ack_p50_ms: None,
            ack_p99_ms: None,
            disk_bytes_per_event: None,
            fsyncs_per_m: None,
            sink_cpu_s_per_m: None,
            other_cores: None,
        }
    }

    #[test]
    fn medians_and_formatting() {
        let o = Outcome::Samples(vec![s(3.0), s(1.0), s(2.0)]);
        assert_eq!(o.median(|x| x.events_per_s), Some(2.0));
        let o = Outcome::Samples(vec![s(4.0), s(1.0), s(2.0), s(3.0)]);
        assert_eq!(o.median(|x| x.events_per_s), Some(2.5));
        assert_eq!(
            Outcome::Skipped("x".into()).median(|x| x.events_per_s),
            None
        );
        assert_eq!(thousands(Some(1234567.4)), "1,234,567");
        assert_eq!(thousands(Some(999.0)), "999");
        assert_eq!(thousands(None), "—");
    }

    #[test]
    fn report_names_the_machine_and_the_compressor_per_level() {
        let md = Report::new(Path::new("/nonexistent"), true, 1000, 3, 450.0, 10).markdown();
        let machine = skidder_bench::machine::detect();
        assert!(
            md.contains(&format!("- SIMD: {}", machine.features_text())),
            "{md}"
        );
        assert!(
            md.contains(&format!("## Targets on {}", machine.cpu)),
            "{md}"
        );
        for (level, backend) in crate::limit::mapping() {
            assert!(!backend.is_empty());
            assert!(md.contains(&format!("| {level} | {backend} |")), "{md}");
        }
        // The default build maps every level to a real backend level, by name.
        let three = &crate::limit::mapping()[2].1;
        assert!(
            ["isal level", "libdeflate level", "flate2 level"]
                .iter()
                .any(|b| three.starts_with(b)),
            "{three}"
        );
    }

    #[test]
    fn report_names_unavailable_rows_and_ratios() {
        let mut r = Report::new(Path::new("/nonexistent"), true, 1000, 3, 450.0, 10);
        r.pair(
            "skidder / go-lumber client, mTLS",
            Row::new(
                "1 mTLS",
                "skidder → go-lumber server",
                "z3",
                "sender",
                Outcome::Skipped(
                    "unavailable: output.logstash is not available in this build yet".into(),
                ),
            ),
            Row::new(
                "2 mTLS",
                "go-lumber async client → go-lumber server",
                "z3",
                "sender",
                Outcome::Samples(vec![s(10.0)]),
            ),
        );
        let md = r.markdown();
        assert!(
            md.contains("unavailable: output.logstash is not available in this build yet"),
            "{md}"
        );
        assert!(
            md.contains("| skidder / go-lumber client, mTLS | — |"),
            "{md}"
        );
        assert!(md.contains("not measured in this run"), "{md}");
    }

    #[test]
    fn scaling_section_judges_two_connections_against_one() {
        let point = |eps: f64, cpu: f64, sink: f64| Sample {
            cpu_s_per_m: cpu,
            sink_cpu_s_per_m: Some(sink),
            ..s(eps)
        };
        let mut r = Report::new(Path::new("/nonexistent"), true, 1000, 3, 450.0, 10);
        r.limits.push(Limit {
            level: 3,
            backend: "libdeflate level 1".into(),
            mb_per_s: 700.0,
            events_per_s: 1_500_000.0,
            bytes_per_event: 47.0,
        });
        r.scaling = vec![
            (
                Scale {
                    workers: 1,
                    hosts: 1,
                    queue_events: None,
                },
                Outcome::Samples(vec![point(1_000_000.0, 0.80, 0.02)]),
            ),
            (
                Scale {
                    workers: 2,
                    hosts: 1,
                    queue_events: None,
                },
                Outcome::Samples(vec![point(1_800_000.0, 0.84, 0.02)]),
            ),
            (
                Scale {
                    workers: 1,
                    hosts: 2,
                    queue_events: None,
                },
                Outcome::Samples(vec![point(1_500_000.0, 0.84, 0.02)]),
            ),
        ];
        let md = r.markdown();
        assert!(
            md.contains("## Worker scaling: skidder alone into the null sink"),
            "{md}"
        );
        assert!(
            md.contains("worker: 2 vs worker: 1 into the null sink: events/s 1.80× (target ≥ 1.70×), CPU per event 1.05× (target ≤ 1.10×) — **met**"),
            "{md}"
        );
        assert!(
            md.contains("loadbalance over 2 hosts vs worker: 1 into the null sink: events/s 1.50×")
                && md.contains("— **not met**"),
            "{md}"
        );
        assert!(
            md.contains("at most 1,250,000 events per CPU-second into the null sink (worker: 1, 1 host), beside its compressor's single-core ceiling of 1,500,000 (libdeflate level 1): 83%"),
            "{md}"
        );
        // The sink's share of the sender's CPU: 0.02 / 0.80.
        assert!(md.contains("| 2.5 % |"), "{md}");
        assert!(md.contains("target < 25 MB"), "{md}");
        assert!(
            !md.contains("the input alone") && !md.contains("with the framing copy"),
            "no breakdown without its measurements: {md}"
        );

        // The breakdown: worker: 1 costs 0.80 µs per event, its input alone 0.10, so
        // 0.70 without it; the ceiling is 1/1.5 = 0.667 µs; the alternated pair 0.70
        // without and 0.75 with the framing copy.
        r.scaling_input = Some(Outcome::Samples(vec![
            Sample {
                cpu_s_per_m: 0.10,
                ..s(9e6)
            },
            Sample {
                cpu_s_per_m: 0.12,
                ..s(9e6)
            },
            Sample {
                cpu_s_per_m: 0.08,
                ..s(9e6)
            },
        ]));
        let limit = |events_per_s| Limit {
            level: 3,
            backend: "libdeflate level 1".into(),
            mb_per_s: 600.0,
            events_per_s,
            bytes_per_event: 47.0,
        };
        r.framed_limit = Some((limit(1e6 / 0.7), limit(1e6 / 0.75)));
        let md = r.markdown();
        assert!(
            md.contains("0.100 CPU-s per M events, 12% of worker: 1's 0.800; worker: 1 without it: 1,428,571 events per CPU-second, 95% of the ceiling"),
            "{md}"
        );
        assert!(
            md.contains("1,333,333 events/s against 1,428,571 (0.750 against 0.700 µs per event, the copy 0.050); worker: 1 reaches 94% of it"),
            "{md}"
        );
        assert!(
            md.contains("sender alone: at most 1,250,000 events per CPU-second"),
            "the target's own line is unchanged: {md}"
        );
    }
}
