//! Telemetry: the tracing subscriber (text or JSON, to stderr or `path.logs`), the periodic
//! line of non-zero counters, the live progress view for people, and resource usage.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFilesConfig, LoggingConfig};
use crate::credentials::Redactor;
use crate::pipeline::{Metrics, Snapshot};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// `logging.level` is not a level.
    #[error("logging.level: {level:?} is not one of {}", crate::config::LOG_LEVELS)]
    Level {
        /// The value given.
        level: String,
    },
    /// The log file could not be opened.
    #[error("path.logs: cannot open log file {}: {source}", path.display())]
    LogFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Installs the process-wide subscriber. Called once, by `main` (through the CLI). Every
/// line goes through `secrets`: a keystore value that landed in a setting a log line quotes
/// (a host name, a user) is printed as `REDACTED`.
///
/// Where lines go, as Beats decides it: `to_stderr` first, else `to_files` (rotating files
/// under `logging.files.path`, default `logs_dir`), else nowhere.
///
/// # Errors
/// [`TelemetryError`] for a bad level or an unwritable log directory.
pub fn init_logging(
    cfg: &LoggingConfig,
    logs_dir: &Path,
    secrets: &Redactor,
) -> Result<(), TelemetryError> {
    let Some(level) = cfg.tracing_level() else {
        return Err(TelemetryError::Level {
            level: cfg.level.clone(),
        });
    };
    let filter = EnvFilter::new(filter_directives(level, &cfg.selectors));
    let secrets = Arc::new(secrets.clone());
    let (writer, ansi) = if cfg.to_stderr {
        let w = BoxMakeWriter::new(move || Redacting {
            secrets: Arc::clone(&secrets),
            inner: AroundProgress,
        });
        (w, std::io::stderr().is_terminal())
    } else if cfg.to_files {
        let dir = cfg
            .files
            .path
            .clone()
            .unwrap_or_else(|| logs_dir.to_path_buf());
        let file = Arc::new(Mutex::new(RotatingFile::open(&dir, &cfg.files)?));
        let w = BoxMakeWriter::new(move || Redacting {
            secrets: Arc::clone(&secrets),
            inner: SharedFile(Arc::clone(&file)),
        });
        (w, false)
    } else {
        (BoxMakeWriter::new(std::io::sink), false)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let result = if cfg.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A subscriber already installed (tests calling twice) is not an error worth failing on.
    let _ = result;
    Ok(())
}

/// Beats' logger names for `logging.selectors`, and the skidder modules that log that part.
const SELECTORS: &[(&str, &str)] = &[
    ("elasticsearch", "skidder::outputs::elasticsearch"),
    ("logstash", "skidder::outputs::logstash"),
    ("publisher", "skidder::pipeline"),
    ("publish", "skidder::pipeline"),
    ("pipeline", "skidder::pipeline"),
    ("queue", "skidder::pipeline"),
    ("input", "skidder::inputs"),
    ("beats", "skidder::inputs::lumberjack"),
    ("tls", "skidder::credentials"),
    ("transport", "skidder::credentials"),
    ("config", "skidder::config"),
];

/// The tracing target a `logging.selectors` entry names: a Beats logger name from
/// [`SELECTORS`], or a skidder module path (`outputs::logstash`, `skidder::inputs`);
/// `None` when it names nothing skidder logs.
pub fn selector_target(selector: &str) -> Option<String> {
    if let Some((_, target)) = SELECTORS.iter().find(|(name, _)| *name == selector) {
        return Some((*target).to_string());
    }
    let path = selector.strip_prefix("skidder::").unwrap_or(selector);
    const MODULES: &[&str] = &[
        "app",
        "cli",
        "config",
        "credentials",
        "demo",
        "event",
        "inputs",
        "outputs",
        "pipeline",
        "receive",
        "telemetry",
    ];
    let head = path.split("::").next().unwrap_or_default();
    MODULES.contains(&head).then(|| format!("skidder::{path}"))
}

/// The tracing filter: `level` everywhere, except that at `debug` with selectors (Beats:
/// only effective at debug) only the selected parts log at debug and the rest at info.
fn filter_directives(level: &str, selectors: &[String]) -> String {
    let all = selectors.is_empty() || selectors.iter().any(|s| s == "*");
    if level != "debug" || all {
        return format!("{level},skidder={level}");
    }
    let mut out = "info,skidder=info".to_string();
    for target in selectors.iter().filter_map(|s| selector_target(s)) {
        out.push_str(&format!(",{target}=debug"));
    }
    out
}

/// skidder's own log file, rotated as Beats rotates its logs (`libbeat/common/file`): the
/// active file `name`, then `name.1` (newest) to `name.<keepfiles>`, each created with
/// `permissions`. The renames and the pruning are the `file-rotate` crate's; when to rotate
/// is decided here: before a write that would take the file past `rotateeverybytes` (a
/// line is never split), when `interval` passes (counted from the Unix epoch), and at start
/// when `rotateonstartup` finds a non-empty file.
struct RotatingFile {
    file: FileRotate<AppendCount>,
    size: u64,
    max_size: u64,
    interval: Option<u64>,
    period: u64,
}

impl RotatingFile {
    fn open(dir: &Path, cfg: &LogFilesConfig) -> Result<Self, TelemetryError> {
        let path = dir.join(&cfg.name);
        let err = |source| TelemetryError::LogFile {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let mode = u32::from_str_radix(&cfg.permissions, 8).unwrap_or(0o600);
        let mut options = OpenOptions::new();
        options.read(true).create(true).append(true).mode(mode);
        // Opened once here so that an unwritable directory is an error now, not a panic or
        // silence inside the crate later.
        let size = options
            .open(&path)
            .and_then(|f| f.metadata())
            .map_err(err)?
            .len();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
        let mut file = FileRotate::new(
            &path,
            AppendCount::new(cfg.keepfiles as usize),
            ContentLimit::None,
            Compression::None,
            Some(options),
        );
        let mut size = size;
        if cfg.rotateonstartup && size > 0 {
            file.rotate().map_err(err)?;
            size = 0;
        }
        let interval = Some(cfg.interval.get().as_secs()).filter(|s| *s > 0);
        Ok(Self {
            file,
            size,
            max_size: cfg.rotateeverybytes.0.max(1),
            interval,
            period: interval.map_or(0, period_now),
        })
    }
}

fn period_now(interval: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now / interval
}

impl RotatingFile {
    /// Writes `buf` whole, rotating first when it is due; `period` is the current interval
    /// number (`now / interval`), passed in so that tests need no clock.
    fn write_in_period(&mut self, buf: &[u8], period: u64) -> std::io::Result<()> {
        use std::io::Write as _;
        let due = self.interval.is_some() && period != self.period;
        if self.size > 0 && (due || self.size + buf.len() as u64 > self.max_size) {
            self.file.rotate()?;
            self.size = 0;
        }
        self.period = period;
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }
}

impl std::io::Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let period = self.interval.map_or(0, period_now);
        self.write_in_period(buf, period)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A log destination whose lines pass through the keystore values' [`Redactor`] first (one
/// formatted event per `write`, as tracing-subscriber writes them).
struct Redacting<W> {
    secrets: Arc<Redactor>,
    inner: W,
}

impl<W: std::io::Write> std::io::Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.secrets.is_empty() {
            return self.inner.write(buf);
        }
        let text = self.secrets.redact(&String::from_utf8_lossy(buf));
        self.inner.write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The log file, shared by every writer the subscriber makes; each write holds the lock so
/// lines never interleave.
struct SharedFile(Arc<Mutex<RotatingFile>>);

impl std::io::Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).flush()
    }
}

/// The progress bar being drawn right now, if any: log lines to stderr are written around
/// it, so on a terminal a log line and the progress line never share a line.
static ACTIVE_BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

fn active_bar() -> Option<indicatif::ProgressBar> {
    ACTIVE_BAR.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// stderr for the log subscriber: each formatted event arrives in one `write`, which clears
/// the progress line first and redraws it after.
struct AroundProgress;

impl std::io::Write for AroundProgress {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match active_bar() {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Logs the non-zero counters every `period`, as Beats' "Non-zero metrics" line.
pub async fn report_metrics(metrics: Arc<Metrics>, period: Duration) {
    let mut before = metrics.snapshot();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tick.tick().await;
        let now = metrics.snapshot();
        let fields = now.nonzero_since(&before);
        if !fields.is_empty() {
            let text = serde_json::Value::Object(fields).to_string();
            tracing::info!(monitoring = %text, period = %crate::config::units::human(period), "non-zero metrics in the last period");
        }
        before = now;
    }
}

/// The live progress line, drawn on stdout only when it is a terminal.
#[derive(Debug)]
pub struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    /// A progress view, or `None` when stdout is not a terminal or carries events.
    pub fn for_stdout(events_on_stdout: bool) -> Option<Self> {
        if events_on_stdout || !std::io::stdout().is_terminal() {
            return None;
        }
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stdout());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        *ACTIVE_BAR.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar.clone());
        Some(Self { bar })
    }

    /// Refreshes the line every quarter second until the task is dropped.
    pub async fn run(self, metrics: Arc<Metrics>) {
        let mut last = (Instant::now(), 0u64);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let s = metrics.snapshot();
            let cap = metrics
                .queue_capacity
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(1);
            let dt = last.0.elapsed().as_secs_f64().max(1e-3);
            let eps = (s.acked.saturating_sub(last.1)) as f64 / dt;
            last = (Instant::now(), s.acked);
            self.bar.set_message(format!(
                "{:>10.0} events/s | acked {} | in flight {} | queue {}%",
                eps,
                s.acked,
                s.published.saturating_sub(s.acked + s.dropped),
                s.queue_filled * 100 / cap,
            ));
            self.bar.tick();
        }
    }

    /// Removes the line.
    pub fn clear(&self) {
        ACTIVE_BAR.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.bar.finish_and_clear();
    }
}

impl Clone for Progress {
    fn clone(&self) -> Self {
        Self {
            bar: self.bar.clone(),
        }
    }
}

/// `VmHWM` of /proc/self/status: the peak resident set of this program since it started
/// (Linux only; `None` elsewhere or if unreadable).
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// CPU time and peak memory of this process so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResourceUsage {
    /// User CPU time.
    pub user: Duration,
    /// System CPU time.
    pub system: Duration,
    /// Peak resident set size, KiB.
    pub peak_rss_kib: u64,
}

impl ResourceUsage {
    /// Reads `getrusage(RUSAGE_SELF)`.
    pub fn now() -> Self {
        // SAFETY: getrusage only writes into the zeroed struct we pass.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a rusage struct, RUSAGE_SELF is a valid `who`.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        if rc != 0 {
            return Self::default();
        }
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        Self {
            user: tv(ru.ru_utime),
            system: tv(ru.ru_stime),
            // ru_maxrss (KiB on Linux) survives exec, so under `cargo run` it reported
            // cargo's own ~80 MiB; VmHWM is this program's peak alone.
            peak_rss_kib: vm_hwm_kib().unwrap_or(ru.ru_maxrss.max(0) as u64),
        }
    }

    /// User plus system time.
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }
}

/// The end-of-run numbers.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Final counters.
    pub snapshot: Snapshot,
    /// Events published but neither acknowledged nor dropped at exit.
    pub unacked: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// CPU and memory.
    pub usage: ResourceUsage,
    /// The run ended because of a signal.
    pub interrupted: bool,
}

impl Totals {
    /// Acknowledged events per second of wall time.
    pub fn events_per_sec(&self) -> f64 {
        self.snapshot.acked as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// CPU seconds per million acknowledged events.
    pub fn cpu_per_million(&self) -> f64 {
        if self.snapshot.acked == 0 {
            return 0.0;
        }
        self.usage.cpu().as_secs_f64() * 1e6 / self.snapshot.acked as f64
    }

    /// Events given up for good by a policy the configuration allows: the output's drops
    /// (`max_retries`, `non_indexable_policy: drop`) and the inputs' (`on_json_error: drop`).
    pub fn dropped_by_policy(&self) -> u64 {
        self.snapshot.dropped + self.snapshot.inputs.iter().map(|i| i.4).sum::<u64>()
    }

    /// One `key=value` line, stable for scripts and tests. When events were dropped it says
    /// so first, in words; `output_switches=` is appended only when `output.failover`
    /// switched at least once, the disk queue's counters only when it wrote.
    pub fn line(&self) -> String {
        let s = &self.snapshot;
        let dropped = self.dropped_by_policy();
        let warning = if dropped > 0 {
            format!("{dropped} event(s) DROPPED by policy, see the ERROR lines (exit code 4); ")
        } else {
            String::new()
        };
        let mut line = format!(
            "skidder totals: {warning}published={} acked={} dropped={} input_dropped={} unacked={} retried={} elapsed_s={:.3} events_per_s={:.0} cpu_s={:.3} cpu_s_per_million={:.3} peak_rss_kib={}",
            s.published,
            s.acked,
            s.dropped,
            s.inputs.iter().map(|i| i.4).sum::<u64>(),
            self.unacked,
            s.retried,
            self.elapsed.as_secs_f64(),
            self.events_per_sec(),
            self.usage.cpu().as_secs_f64(),
            self.cpu_per_million(),
            self.usage.peak_rss_kib,
        );
        if s.output_switches > 0 {
            line.push_str(&format!(" output_switches={}", s.output_switches));
        }
        if s.credential_reloads > 0 {
            line.push_str(&format!(" credential_reloads={}", s.credential_reloads));
        }
        if s.disk_bytes_written > 0 || s.disk_events_lost > 0 {
            line.push_str(&format!(
                " disk_write_bytes={} fsyncs={} disk_events_lost={} disk_packed_events={}",
                s.disk_bytes_written, s.disk_fsyncs, s.disk_events_lost, s.disk_events_packed
            ));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_map_onto_tracing_targets_only_at_debug() {
        assert_eq!(
            filter_directives("info", &["elasticsearch".into()]),
            "info,skidder=info"
        );
        assert_eq!(
            filter_directives("debug", &["*".into()]),
            "debug,skidder=debug"
        );
        assert_eq!(
            filter_directives(
                "debug",
                &["logstash".into(), "inputs::stdin".into(), "nope".into()]
            ),
            "info,skidder=info,skidder::outputs::logstash=debug,skidder::inputs::stdin=debug"
        );
        assert_eq!(selector_target("nope"), None);
    }

    #[test]
    fn log_files_rotate_by_size_keep_keepfiles_and_have_the_mode() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogFilesConfig {
            rotateeverybytes: crate::config::ByteSize(100),
            keepfiles: 2,
            permissions: "0640".into(),
            ..LogFilesConfig::default()
        };
        let mut f = RotatingFile::open(dir.path(), &cfg).unwrap();
        for i in 0..10 {
            f.write_all(format!("{i:0>59}\n").as_bytes()).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["skidder.log", "skidder.log.1", "skidder.log.2"]);
        for n in &names {
            let meta = std::fs::metadata(dir.path().join(n)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o640, "{n}");
            // One 60-byte line per file: a line is never split across files.
            assert_eq!(meta.len(), 60, "{n}");
        }
        let newest = std::fs::read_to_string(dir.path().join("skidder.log.1")).unwrap();
        assert!(newest.trim_end().ends_with('8'), "{newest}");
        // A restart rotates the non-empty file away.
        drop(f);
        RotatingFile::open(dir.path(), &cfg).unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("skidder.log"))
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn log_files_rotate_when_the_interval_passes() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogFilesConfig {
            interval: crate::config::Duration::from_secs(60),
            ..LogFilesConfig::default()
        };
        let mut f = RotatingFile::open(dir.path(), &cfg).unwrap();
        let p = f.period;
        f.write_in_period(b"a\n", p).unwrap();
        f.write_in_period(b"b\n", p).unwrap();
        assert!(
            !dir.path().join("skidder.log.1").exists(),
            "same interval: no rotation"
        );
        f.write_in_period(b"c\n", p + 1).unwrap();
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
        assert_eq!(
            (read("skidder.log.1").as_str(), read("skidder.log").as_str()),
            ("a\nb\n", "c\n")
        );
    }

    #[test]
    fn peak_rss_comes_from_vm_hwm() {
        let status =
            "Name:\tskidder\nVmPeak:\t  200000 kB\nVmHWM:\t   15872 kB\nVmRSS:\t   15000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(15872));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reports_its_own_peak() {
        assert!(vm_hwm_kib().is_some_and(|k| k > 0));
        assert!(ResourceUsage::now().peak_rss_kib > 0);
    }
}
