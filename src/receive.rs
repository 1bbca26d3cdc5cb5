//! `skidder receive`: a stand-in Logstash from flags — one lumberjack input into
//! `output.console`, `output.file` or `output.discard`, built as an in-memory
//! configuration and run by the normal app.
//!
//! stderr carries `listening on HOST:PORT` once the socket is bound (parse the port when
//! `--listen 127.0.0.1:0`), the logs, and with `--stats` (or `--expect`) one final line
//! `skidder receive: {"events":..,"distinct":..,"duplicates":..,...}`. Counting happens
//! after a window is settled and ACKed, from a fast scan for the top-level `"seq":`
//! field; without `--stats`/`--expect` no event is looked at.
//!
//! Exit codes: 0; 1 when `--expect N` was not reached (deadline or signal); 130 after a
//! signal with events the output had not settled (their windows were not ACKed, so the
//! clients resend them); configuration (1) and runtime (3) errors as `skidder run`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use tokio::sync::Notify;

use crate::app::{self, RunOptions};
use crate::cli::{EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_RUNTIME};
use crate::config::{
    self, ClientAuthentication, Config, ConsoleOutputConfig, DiscardOutputConfig, FileOutputConfig,
    InputConfig, InputKind, LumberjackInputConfig,
};
use crate::credentials::Secret;
use crate::inputs::lumberjack::ReceiverObserver;
use crate::inputs::InputPlan;
use crate::outputs::OutputKnobs;

/// `skidder receive` options.
#[derive(Debug, Clone, Args)]
pub struct ReceiveArgs {
    /// Listen address, host:port (`:0` picks a free port, printed on stderr).
    #[arg(long, default_value = "localhost:5044")]
    pub listen: String,
    /// Server certificate (PEM); turns TLS on.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<String>,
    /// Server private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<String>,
    /// CA that client certificates must chain to; a presented one is checked.
    #[arg(long, requires = "tls_cert")]
    pub tls_ca: Option<String>,
    /// Refuse clients without a certificate signed by `--tls-ca`.
    #[arg(long, requires = "tls_ca")]
    pub require_client_cert: bool,
    /// Where events go: `stdout` (one JSON line each), `discard`, or a file path (NDJSON,
    /// appended, never rotated).
    #[arg(long, default_value = "stdout")]
    pub out: String,
    /// Exit 0 once this many distinct events (by their `seq` field; events without one
    /// each count) have arrived and been acknowledged.
    #[arg(long)]
    pub expect: Option<u64>,
    /// With `--expect`: give up (exit 1) after this long, e.g. `60s`.
    #[arg(long, value_parser = parse_duration)]
    pub deadline: Option<Duration>,
    /// Print the counts (events, distinct, duplicates, events/s) on stderr: every 10 s
    /// while events arrive (`skidder receive progress: {...}`) and once at exit.
    #[arg(long)]
    pub stats: bool,
    /// Close a connection idle this long (`client_inactivity_timeout`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub client_inactivity_timeout: Duration,
    /// Concurrent connections; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    pub max_connections: usize,
    /// Memory queue capacity in events.
    #[arg(long, default_value_t = 16384)]
    pub queue_events: usize,
    /// Log level of stderr logs.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<config::Duration>()
        .map(config::Duration::get)
        .map_err(|e| e.to_string())
}

/// The in-memory configuration `skidder receive` runs.
pub fn receive_config(args: &ReceiveArgs) -> Config {
    let mut config = Config::default();
    let mut input = LumberjackInputConfig {
        host: args.listen.clone(),
        client_inactivity_timeout: config::Duration(args.client_inactivity_timeout),
        max_connections: args.max_connections,
        ..LumberjackInputConfig::default()
    };
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        input.ssl.enabled = Some(true);
        input.ssl.certificate = Some(cert.clone());
        input.ssl.key = Some(Secret::new(key.clone()));
        input.ssl.certificate_authorities = args.tls_ca.iter().cloned().collect();
        input.ssl.client_authentication = Some(match (&args.tls_ca, args.require_client_cert) {
            (_, true) => ClientAuthentication::Required,
            (Some(_), false) => ClientAuthentication::Optional,
            (None, false) => ClientAuthentication::None,
        });
    }
    config.skidder.inputs = vec![InputConfig {
        common: config::CommonInputConfig {
            id: Some("receive".into()),
            ..Default::default()
        },
        kind: InputKind::Lumberjack(Box::new(input)),
    }];
    match args.out.as_str() {
        "stdout" => config.output.console = Some(ConsoleOutputConfig::default()),
        "discard" => config.output.discard = Some(DiscardOutputConfig::default()),
        path => {
            let path = PathBuf::from(path);
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let filename = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| "skidder".into());
            config.output.file = Some(FileOutputConfig {
                path: dir,
                filename,
                // A stand-in writes one file: rotation only at 1 TiB.
                rotate_every_kb: 1 << 30,
                permissions: "0644".into(),
                ..FileOutputConfig::default()
            });
        }
    }
    // Windows are ACKed end-to-end: release whatever is queued at once, so a client's ACK
    // never waits for a flush timer.
    config.queue.mem.events = args.queue_events.max(1);
    config.queue.mem.flush.min_events = 0;
    config.queue.mem.flush.timeout = config::Duration::from_millis(0);
    config.shutdown_timeout = config::Duration::from_secs(5);
    config.logging.level = args.log_level.clone();
    config.logging.to_stderr = true;
    config.logging.metrics.enabled = false;
    config
}

/// Counts what `skidder receive` has acknowledged.
#[derive(Debug)]
pub struct Tally {
    state: Mutex<TallyState>,
    expect: Option<u64>,
    reached: AtomicBool,
    stop: Arc<Notify>,
}

#[derive(Debug, Default)]
struct TallyState {
    events: u64,
    distinct: u64,
    duplicates: u64,
    without_seq: u64,
    /// Seen seqs below [`BITMAP_SEQS`], one bit each.
    bitmap: Vec<u64>,
    /// Seen seqs above it.
    large: HashSet<u64>,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// Seqs tracked in the bitmap (16 MiB at most); larger ones go to a hash set.
const BITMAP_SEQS: u64 = 1 << 27;

impl TallyState {
    /// True when `seq` was not seen before.
    fn insert(&mut self, seq: u64) -> bool {
        if seq < BITMAP_SEQS {
            let word = (seq / 64) as usize;
            if word >= self.bitmap.len() {
                let want = (word + 1).next_power_of_two().max(1024);
                self.bitmap.resize(want.min((BITMAP_SEQS / 64) as usize), 0);
            }
            let bit = 1u64 << (seq % 64);
            let new = self.bitmap[word] & bit == 0;
            self.bitmap[word] |= bit;
            new
        } else {
            self.large.insert(seq)
        }
    }
}

impl Tally {
    /// A tally that notifies `stop` once `expect` distinct events are acknowledged.
    pub fn new(expect: Option<u64>, stop: Arc<Notify>) -> Self {
        Self {
            state: Mutex::new(TallyState::default()),
            expect,
            reached: AtomicBool::new(false),
            stop,
        }
    }

    /// True once `--expect` was reached.
    pub fn reached(&self) -> bool {
        self.reached.load(Ordering::Acquire)
    }

    /// The counts as one JSON object.
    pub fn summary(&self, elapsed: Duration) -> serde_json::Value {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let span = match (st.first, st.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let rate_base = if span > 0.0 {
            span
        } else {
            elapsed.as_secs_f64()
        };
        let eps = if rate_base > 0.0 {
            st.events as f64 / rate_base
        } else {
            0.0
        };
        serde_json::json!({
            "events": st.events,
            "distinct": st.distinct,
            "duplicates": st.duplicates,
            "events_without_seq": st.without_seq,
            "events_per_s": eps.round(),
            "first_to_last_s": span,
            "elapsed_s": elapsed.as_secs_f64(),
            "expect": self.expect,
            "expect_reached": self.reached(),
        })
    }
}

impl ReceiverObserver for Tally {
    fn listening(&self, addr: SocketAddr) {
        eprintln!("listening on {addr}");
    }

    fn acknowledged(&self, events: &[Bytes]) {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.first.get_or_insert(now);
        st.last = Some(now);
        for ev in events {
            st.events += 1;
            match find_seq(ev) {
                Some(seq) => {
                    if st.insert(seq) {
                        st.distinct += 1;
                    } else {
                        st.duplicates += 1;
                    }
                }
                None => {
                    st.without_seq += 1;
                    st.distinct += 1;
                }
            }
        }
        if let Some(n) = self.expect {
            if st.distinct >= n && !self.reached.swap(true, Ordering::AcqRel) {
                self.stop.notify_one();
            }
        }
    }
}

/// The value of the first `"seq":` key: an unsigned integer, bare or quoted (v1 clients
/// send strings), whitespace allowed around the colon.
pub fn find_seq(doc: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(doc, b"\"seq\"")?;
    let mut rest = doc[at + 5..]
        .iter()
        .copied()
        .skip_while(u8::is_ascii_whitespace);
    if rest.next()? != b':' {
        return None;
    }
    let mut rest = rest.skip_while(u8::is_ascii_whitespace).peekable();
    if rest.peek() == Some(&b'"') {
        rest.next();
    }
    let mut value: u64 = 0;
    let mut digits = 0;
    for b in rest {
        if !b.is_ascii_digit() {
            break;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        digits += 1;
    }
    (digits > 0).then_some(value)
}

/// Interval of the `--stats` progress lines.
const STATS_PERIOD: Duration = Duration::from_secs(10);

/// Prints a progress line every `period` in which events were acknowledged.
fn report_progress(tally: &Tally, period: Duration) {
    let mut before = 0u64;
    loop {
        std::thread::sleep(period);
        let (events, distinct, duplicates) = {
            let st = tally.state.lock().unwrap_or_else(PoisonError::into_inner);
            (st.events, st.distinct, st.duplicates)
        };
        if events == before {
            continue;
        }
        let eps = (events - before) as f64 / period.as_secs_f64();
        before = events;
        eprintln!(
            "skidder receive progress: {}",
            serde_json::json!({
                "events": events,
                "distinct": distinct,
                "duplicates": duplicates,
                "events_per_s": eps.round(),
            })
        );
    }
}

/// `receive` is configured by flags, so a problem found in the configuration it builds
/// names the flag that set the value, not the key path nobody wrote.
fn in_flag_names(text: &str) -> String {
    const FLAGS: [(&str, &str); 5] = [
        ("skidder.inputs.0.ssl.certificate_authorities.0", "--tls-ca"),
        ("skidder.inputs.0.ssl.certificate_authorities", "--tls-ca"),
        ("skidder.inputs.0.ssl.certificate", "--tls-cert"),
        ("skidder.inputs.0.ssl.key", "--tls-key"),
        ("skidder.inputs.0.host", "--listen"),
    ];
    let mut out = text.replace(" in the configuration:", ":");
    for (key, flag) in FLAGS {
        out = out.replace(key, flag);
    }
    out
}

/// Runs `skidder receive`.
pub fn run(args: &ReceiveArgs, knobs: OutputKnobs) -> ExitCode {
    let config = receive_config(args);
    let mut plan = match app::plan(&config, knobs) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("skidder receive: {}", in_flag_names(&e.to_string()));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(e) =
        crate::telemetry::init_logging(&config.logging, &app::logs_dir(&config), &config.secrets)
    {
        eprintln!("skidder receive: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let stop = Arc::new(Notify::new());
    let tally = Arc::new(Tally::new(args.expect, Arc::clone(&stop)));
    for (_, input) in &mut plan.inputs {
        if let InputPlan::Lumberjack(l) = input {
            l.set_observer(Arc::clone(&tally) as Arc<dyn ReceiverObserver>);
        }
    }
    if let Some(deadline) = args.deadline {
        let stop = Arc::clone(&stop);
        // A plain timer thread: the runtime belongs to the app.
        let spawned = std::thread::Builder::new()
            .name("receive-deadline".into())
            .spawn(move || {
                std::thread::sleep(deadline);
                stop.notify_one();
            });
        if let Err(e) = spawned {
            eprintln!("skidder receive: cannot start the deadline timer: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    }
    let started = Instant::now();
    if args.stats {
        let tally = Arc::clone(&tally);
        // A plain reporter thread: it only reads the tally; the process exit ends it.
        let spawned = std::thread::Builder::new()
            .name("receive-stats".into())
            .spawn(move || report_progress(&tally, STATS_PERIOD));
        if let Err(e) = spawned {
            eprintln!("skidder receive: cannot start the stats reporter: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    }
    let opts = RunOptions {
        progress: false,
        signals: true,
    };
    let result = app::run_until(&config, plan, opts, stop);
    if args.stats || args.expect.is_some() {
        eprintln!("skidder receive: {}", tally.summary(started.elapsed()));
    }
    match result {
        Ok(totals) => {
            eprintln!("{}", totals.line());
            if args.expect.is_some() && !tally.reached() {
                eprintln!("skidder receive: --expect was not reached");
                ExitCode::from(1)
            } else if totals.interrupted && totals.unacked > 0 {
                ExitCode::from(EXIT_INTERRUPTED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("skidder receive: {e}");
            if e.is_config_error() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_scan() {
        assert_eq!(find_seq(br#"{"seq":42,"m":"x"}"#), Some(42));
        assert_eq!(find_seq(br#"{"seq": 7, "message": "a"}"#), Some(7));
        assert_eq!(find_seq(br#"{"line":"x","seq":"9"}"#), Some(9));
        assert_eq!(find_seq(br#"{"m":"a \"seq\":5"}"#), None);
        assert_eq!(find_seq(br#"{"seq":"x"}"#), None);
        assert_eq!(find_seq(br#"{"message":"x"}"#), None);
    }

    #[test]
    fn tally_counts_distinct_and_duplicates_and_stops_at_expect() {
        let stop = Arc::new(Notify::new());
        let t = Tally::new(Some(3), Arc::clone(&stop));
        let ev = |s: &'static str| Bytes::from_static(s.as_bytes());
        t.acknowledged(&[
            ev(r#"{"seq":1}"#),
            ev(r#"{"seq":1}"#),
            ev(r#"{"seq":200000000}"#),
        ]);
        assert!(!t.reached());
        t.acknowledged(&[ev(r#"{"m":1}"#)]);
        assert!(t.reached());
        let s = t.summary(Duration::from_secs(1));
        assert_eq!(s["events"], 4);
        assert_eq!(s["distinct"], 3);
        assert_eq!(s["duplicates"], 1);
        assert_eq!(s["events_without_seq"], 1);
    }
}
