//! `skidder demo`: the main job end to end in one process, no file, no outside service.
//!
//! ```text
//!  rcgen (in memory): CA ─┬─ server certificate (localhost, 127.0.0.1)
//!                         └─ client certificate
//!
//!  sender (app::run, its own runtime)                    receiver (thread "demo-receiver")
//!  generator ─▶ queue ─▶ output.logstash ══ mTLS ══▶ lumberjack input ─▶ queue ─▶ output.discard
//!                                 ▲                        │ (client certificate required)
//!                                 └──────── ACK ◀──────────┘ after the discard output settled it
//! ```
//!
//! The receiver is the real lumberjack input bound to `127.0.0.1:0`; its port arrives
//! through [`ReceiverObserver::listening`], and its ACKs, TLS session and counts through the
//! same observer. The certificates never touch the disk (inline PEM in the embedded
//! configuration), so there is nothing to clean up at exit.
//!
//! CPU: the sender's figure is the process's CPU time (`getrusage(RUSAGE_SELF)`) minus the
//! receiver's, which every thread of the receiver's runtime reports as it stops
//! (`RUSAGE_THREAD`). Peak RSS is the whole process's (both sides).
//!
//! `--discard` runs the older, network-free variant: generator → queue → `output.discard`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::sync::Notify;

use crate::app::{self, AppError, RunOptions};
use crate::cli::{EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_RUNTIME};
use crate::config::{
    self, ClientAuthentication, CommonInputConfig, Config, DiscardOutputConfig,
    GeneratorInputConfig, InputConfig, InputKind, LogstashOutputConfig, LumberjackInputConfig,
};
use crate::credentials::{HandshakeReport, Secret};
use crate::inputs::lumberjack::ReceiverObserver;
use crate::inputs::InputPlan;
use crate::outputs::OutputKnobs;
use crate::receive::Tally;
use crate::telemetry::{ResourceUsage, Totals};

/// How long the receiver may take to bind its socket.
const LISTEN_WAIT: Duration = Duration::from_secs(10);
/// How long the receiver's count may lag behind the sender's after the last ACK (the
/// receiver counts a window just after writing its ACK).
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);
/// How long the receiver may take to stop (its `shutdown_timeout` is 5 s).
const STOP_WAIT: Duration = Duration::from_secs(15);

/// `skidder demo` options.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Approximate event size in bytes, libbeat's built-in fields (about 330 bytes)
    /// included.
    #[arg(long, default_value_t = 500)]
    pub size: usize,
    /// Generator threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Skip the network: generator → memory queue → `output.discard` only.
    #[arg(long)]
    pub discard: bool,
}

/// Why the mutual-TLS demo could not run to its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// rcgen could not make the throwaway certificates.
    #[error("cannot generate the demo certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    /// The embedded receiver could not be planned, started or run.
    #[error("receiver: {0}")]
    Receiver(AppError),
    /// The embedded sender could not be planned.
    #[error("sender: {0}")]
    Sender(AppError),
    /// The receiver thread could not be started.
    #[error("cannot start the receiver thread: {0}")]
    Thread(std::io::Error),
    /// The receiver did not bind its socket in time.
    #[error("the receiver did not start listening within {0:?}")]
    NotListening(Duration),
    /// The receiver thread panicked.
    #[error("the receiver thread panicked")]
    ReceiverPanicked,
}

impl DemoError {
    fn exit_code(&self) -> ExitCode {
        match self {
            DemoError::Receiver(e) | DemoError::Sender(e) if e.is_config_error() => {
                ExitCode::from(EXIT_CONFIG)
            }
            _ => ExitCode::from(EXIT_RUNTIME),
        }
    }
}

/// Throwaway PKI of one demo run, all PEM text.
#[derive(Debug, Clone)]
pub struct DemoPki {
    /// The CA both sides trust.
    pub ca_pem: String,
    /// The receiver's certificate, for `localhost` and `127.0.0.1`.
    pub server_cert_pem: String,
    /// Its key (PKCS#8).
    pub server_key_pem: String,
    /// The sender's client certificate.
    pub client_cert_pem: String,
    /// Its key (PKCS#8).
    pub client_key_pem: String,
}

/// Subject CN of the demo's client certificate.
pub const CLIENT_CN: &str = "skidder-demo-client";

impl DemoPki {
    /// A fresh CA (ECDSA P-256) and two leaves valid from an hour ago for 30 days.
    ///
    /// # Errors
    /// [`rcgen::Error`] if key generation or signing fails.
    pub fn generate() -> Result<Self, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(DnType::CommonName, "skidder demo CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let (not_before, not_after) = validity();
        ca.not_before = not_before;
        ca.not_after = not_after;
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |cn: &str, sans: Vec<String>, purpose: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate()?;
            let mut p = CertificateParams::new(sans)?;
            p.distinguished_name.push(DnType::CommonName, cn);
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![purpose];
            p.not_before = not_before;
            p.not_after = not_after;
            let cert = p.signed_by(&key, &issuer)?;
            Ok::<_, rcgen::Error>((cert.pem(), key.serialize_pem()))
        };
        let (server_cert_pem, server_key_pem) = leaf(
            "localhost",
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert_pem, client_key_pem) = leaf(
            CLIENT_CN,
            vec![CLIENT_CN.into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
        })
    }
}

/// An hour ago (clock skew) to 30 days from now: beyond `ssl.expiry_warning` (14 days), so
/// the throwaway certificates draw no expiry warning; the keys die with the process anyway.
fn validity() -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (
        now - time::Duration::hours(1),
        now + time::Duration::days(30),
    )
}

fn generator_input(args: &DemoArgs) -> InputConfig {
    InputConfig {
        common: CommonInputConfig {
            id: Some("demo-generator".into()),
            ..Default::default()
        },
        kind: InputKind::Generator(GeneratorInputConfig {
            count: args.count,
            size: args.size,
            threads: args.threads.max(1),
            ..GeneratorInputConfig::default()
        }),
    }
}

fn quiet_logging(config: &mut Config) {
    config.logging.level = "warn".into();
    config.logging.to_stderr = true;
    config.logging.metrics.enabled = false;
}

/// The `--discard` configuration: generator → memory queue → `output.discard`.
pub fn discard_config(args: &DemoArgs) -> Config {
    let mut config = Config::default();
    config.skidder.inputs = vec![generator_input(args)];
    config.output.discard = Some(DiscardOutputConfig::default());
    quiet_logging(&mut config);
    config
}

/// The receiver: a lumberjack input on `127.0.0.1:0` with TLS that requires a client
/// certificate from the demo CA, into `output.discard`.
pub fn receiver_config(pki: &DemoPki) -> Config {
    let mut config = Config::default();
    let mut input = LumberjackInputConfig {
        host: "127.0.0.1:0".into(),
        ..LumberjackInputConfig::default()
    };
    input.ssl.enabled = Some(true);
    input.ssl.certificate = Some(pki.server_cert_pem.clone());
    input.ssl.key = Some(Secret::new(pki.server_key_pem.clone()));
    input.ssl.certificate_authorities = vec![pki.ca_pem.clone()];
    input.ssl.client_authentication = Some(ClientAuthentication::Required);
    config.skidder.inputs = vec![InputConfig {
        common: CommonInputConfig {
            id: Some("demo-receiver".into()),
            ..Default::default()
        },
        kind: InputKind::Lumberjack(Box::new(input)),
    }];
    config.output.discard = Some(DiscardOutputConfig::default());
    // As `skidder receive`: hand every window to the output at once, so no ACK waits for a
    // flush timer.
    config.queue.mem.events = 16384;
    config.queue.mem.flush.min_events = 0;
    config.queue.mem.flush.timeout = config::Duration::from_millis(0);
    config.shutdown_timeout = config::Duration::from_secs(5);
    quiet_logging(&mut config);
    config
}

/// The sender: generator → memory queue → `output.logstash` to `addr` over mutual TLS,
/// `compression_level: 3`, `pipelining: 2`, `bulk_max_size: 2048`.
pub fn sender_config(args: &DemoArgs, pki: &DemoPki, addr: SocketAddr) -> Config {
    let mut config = Config::default();
    config.skidder.inputs = vec![generator_input(args)];
    let mut out = LogstashOutputConfig {
        hosts: vec![addr.to_string()],
        compression_level: 3,
        pipelining: 2,
        bulk_max_size: 2048,
        ..LogstashOutputConfig::default()
    };
    out.ssl.enabled = Some(true);
    out.ssl.certificate_authorities = vec![pki.ca_pem.clone()];
    out.ssl.certificate = Some(pki.client_cert_pem.clone());
    out.ssl.key = Some(Secret::new(pki.client_key_pem.clone()));
    config.output.logstash = Some(out);
    // Room for two windows in flight and two more ready (as the skidder-bench scenarios).
    config.queue.mem.events = 8192;
    config.queue.mem.flush.min_events = 2048;
    config.queue.mem.flush.timeout = config::Duration::from_millis(10);
    quiet_logging(&mut config);
    config
}

/// What the receiver saw, guarded by one mutex and signalled by one condvar.
#[derive(Debug, Default)]
struct Seen {
    addr: Option<SocketAddr>,
    /// Events whose ACK was written.
    acknowledged: u64,
    tls: Option<HandshakeReport>,
    /// The receiver's run is over (successfully or not).
    ended: bool,
}

/// The receiver's observer: address, ACKed events (also tallied by `seq`), TLS session.
struct DemoObserver {
    seen: Mutex<Seen>,
    changed: Condvar,
    tally: Tally,
}

impl DemoObserver {
    fn new() -> Self {
        Self {
            seen: Mutex::new(Seen::default()),
            changed: Condvar::new(),
            tally: Tally::new(None, Arc::new(Notify::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// Waits up to `limit` while `busy` holds; returns the state at the end.
    fn wait_while(
        &self,
        limit: Duration,
        busy: impl FnMut(&mut Seen) -> bool,
    ) -> MutexGuard<'_, Seen> {
        self.changed
            .wait_timeout_while(self.lock(), limit, busy)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }
}

impl ReceiverObserver for DemoObserver {
    fn listening(&self, addr: SocketAddr) {
        self.update(|s| s.addr = Some(addr));
    }

    fn tls_established(&self, _peer: SocketAddr, report: &HandshakeReport) {
        self.update(|s| s.tls = Some(report.clone()));
    }

    fn acknowledged(&self, events: &[Bytes]) {
        self.tally.acknowledged(events);
        self.update(|s| s.acknowledged += events.len() as u64);
    }
}

/// CPU time of the receiver's threads, each adding its own as it stops.
#[derive(Debug, Default)]
struct ThreadCpu(Mutex<Duration>);

impl ThreadCpu {
    fn add_current_thread(&self) {
        let t = current_thread_cpu();
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) += t;
    }

    fn total(&self) -> Duration {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// User plus system time of the calling thread (`RUSAGE_THREAD`).
#[cfg(target_os = "linux")]
fn current_thread_cpu() -> Duration {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct; RUSAGE_THREAD is valid on Linux.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Per-thread CPU time is Linux-only; elsewhere the receiver's share is not subtracted.
#[cfg(not(target_os = "linux"))]
fn current_thread_cpu() -> Duration {
    Duration::ZERO
}

/// The receiver's result and CPU time.
struct ReceiverEnd {
    result: Result<Totals, AppError>,
    cpu: Duration,
}

/// Plans the receiver and runs it on its own thread and runtime until `stop`.
fn start_receiver(
    pki: &DemoPki,
    observer: &Arc<DemoObserver>,
    stop: &Arc<Notify>,
) -> Result<JoinHandle<ReceiverEnd>, DemoError> {
    let config = receiver_config(pki);
    let mut plan = app::plan(&config, OutputKnobs::default()).map_err(DemoError::Receiver)?;
    for (_, input) in &mut plan.inputs {
        if let InputPlan::Lumberjack(l) = input {
            l.set_observer(Arc::clone(observer) as Arc<dyn ReceiverObserver>);
        }
    }
    let observer = Arc::clone(observer);
    let stop = Arc::clone(stop);
    std::thread::Builder::new()
        .name("demo-receiver".into())
        .spawn(move || {
            let cpu = Arc::new(ThreadCpu::default());
            let on_stop = Arc::clone(&cpu);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("demo-receiver-rt")
                .on_thread_stop(move || on_stop.add_current_thread())
                .enable_all()
                .build();
            let opts = RunOptions {
                progress: false,
                signals: false,
            };
            let result = match runtime {
                Ok(rt) => {
                    let r = app::run_until_on(&rt, &config, plan, opts, stop);
                    // Dropping the runtime joins its threads, so each has added its CPU.
                    drop(rt);
                    r
                }
                Err(e) => Err(AppError::Runtime(e)),
            };
            cpu.add_current_thread();
            observer.update(|s| s.ended = true);
            ReceiverEnd {
                result,
                cpu: cpu.total(),
            }
        })
        .map_err(DemoError::Thread)
}

/// The numbers of one mutual-TLS demo run.
#[derive(Debug)]
pub struct DemoReport {
    /// The sender's totals (`acked` = events the receiver's ACKs covered).
    pub sender: Totals,
    /// Events the receiver acknowledged, by its own count.
    pub received: u64,
    /// Of those, distinct `seq` values.
    pub distinct: u64,
    /// Of those, `seq` values seen before.
    pub duplicates: u64,
    /// CPU of the sender (process minus receiver threads).
    pub sender_cpu: Duration,
    /// CPU of the receiver's threads.
    pub receiver_cpu: Duration,
    /// Peak RSS of the process, KiB.
    pub peak_rss_kib: u64,
    /// The TLS session the receiver saw (the last connection's).
    pub tls: Option<HandshakeReport>,
    /// The receiver's own failure, if it had one.
    pub receiver_error: Option<String>,
}

impl DemoReport {
    /// True when every generated event (`count`, or all published when `count` is 0 =
    /// unlimited and the run was stopped) was acknowledged and counted once by the receiver.
    pub fn complete(&self, count: u64) -> bool {
        let s = &self.sender.snapshot;
        let count = if count == 0 { s.published } else { count };
        s.published == count
            && s.acked == count
            && self.sender.unacked == 0
            && s.dropped == 0
            && self.received == count
            && self.distinct == count
            && self.duplicates == 0
            && self.receiver_error.is_none()
    }

    fn per_million(&self, d: Duration) -> f64 {
        let acked = self.sender.snapshot.acked;
        if acked == 0 {
            return 0.0;
        }
        d.as_secs_f64() * 1e6 / acked as f64
    }

    fn wire_bytes_per_event(&self) -> f64 {
        let s = &self.sender.snapshot;
        if s.acked == 0 {
            return 0.0;
        }
        s.output_bytes as f64 / s.acked as f64
    }

    /// One `key=value` line, stable for scripts and tests.
    pub fn line(&self) -> String {
        let s = &self.sender.snapshot;
        let (version, cipher) = match &self.tls {
            Some(t) => (t.version.clone(), t.cipher_suite.clone()),
            None => ("none".to_string(), "none".to_string()),
        };
        format!(
            "skidder demo totals: published={} acked={} received={} distinct={} duplicates={} unacked={} dropped={} retried={} elapsed_s={:.3} events_per_s={:.0} sender_cpu_s={:.3} sender_cpu_s_per_million={:.3} receiver_cpu_s={:.3} peak_rss_kib={} wire_bytes={} wire_bytes_per_event={:.1} tls_version={} tls_cipher={}",
            s.published,
            s.acked,
            self.received,
            self.distinct,
            self.duplicates,
            self.sender.unacked,
            s.dropped,
            s.retried,
            self.sender.elapsed.as_secs_f64(),
            self.sender.events_per_sec(),
            self.sender_cpu.as_secs_f64(),
            self.per_million(self.sender_cpu),
            self.receiver_cpu.as_secs_f64(),
            self.peak_rss_kib,
            s.output_bytes,
            self.wire_bytes_per_event(),
            version,
            cipher,
        )
    }
}

/// Runs the mutual-TLS demo, printing what it does on stdout.
///
/// # Errors
/// [`DemoError`] when the certificates, the receiver or the sender cannot be set up or the
/// receiver does not come up. A sender that fails while running is reported in
/// [`DemoReport`] as unacknowledged events, not as an error, so the numbers still print.
pub fn run_mtls(args: &DemoArgs) -> Result<DemoReport, DemoError> {
    let pki = DemoPki::generate()?;
    let observer = Arc::new(DemoObserver::new());
    let stop = Arc::new(Notify::new());
    let receiver = start_receiver(&pki, &observer, &stop)?;
    let addr = {
        let seen = observer.wait_while(LISTEN_WAIT, |s| s.addr.is_none() && !s.ended);
        seen.addr
    };
    let Some(addr) = addr else {
        stop.notify_one();
        return Err(match join_receiver(receiver, &observer) {
            Some(ReceiverEnd { result: Err(e), .. }) => DemoError::Receiver(e),
            Some(_) => DemoError::NotListening(LISTEN_WAIT),
            None => DemoError::ReceiverPanicked,
        });
    };
    let config = sender_config(args, &pki, addr);
    let plan = app::plan(&config, OutputKnobs::default()).map_err(DemoError::Sender)?;
    println!("skidder demo: Lumberjack v2 over mutual TLS, sender and receiver in this process");
    println!(
        "  certificates  a throwaway CA, a server certificate (localhost, 127.0.0.1) and a client"
    );
    println!("                certificate, made with rcgen in memory (nothing is written to disk)");
    println!("  receiver      lumberjack input on {addr}, TLS requiring the client certificate,");
    println!("                -> memory queue -> output.discard; a window is ACKed once discarded");
    println!(
        "  sender        generator ({} events of ~{} bytes, {} thread(s)) -> memory queue",
        args.count,
        args.size,
        args.threads.max(1)
    );
    println!("                -> output.logstash (compression_level 3, pipelining 2, bulk_max_size 2048)");
    let opts = RunOptions {
        progress: true,
        signals: true,
    };
    let sender = app::run(&config, plan, opts);
    let sender = match sender {
        Ok(t) => t,
        Err(e) => {
            stop.notify_one();
            let _ = join_receiver(receiver, &observer);
            return Err(DemoError::Sender(e));
        }
    };
    // The receiver counts a window right after writing its ACK: let it catch up.
    let acked = sender.snapshot.acked;
    drop(observer.wait_while(CATCH_UP_WAIT, |s| s.acknowledged < acked && !s.ended));
    stop.notify_one();
    let end = join_receiver(receiver, &observer);
    let (receiver_cpu, receiver_error) = match end {
        Some(ReceiverEnd { result: Ok(_), cpu }) => (cpu, None),
        Some(ReceiverEnd {
            result: Err(e),
            cpu,
        }) => (cpu, Some(e.to_string())),
        None => (
            Duration::ZERO,
            Some(format!("the receiver did not stop within {STOP_WAIT:?}")),
        ),
    };
    let usage = ResourceUsage::now();
    let summary = observer.tally.summary(sender.elapsed);
    let count = |k: &str| summary[k].as_u64().unwrap_or(0);
    let tls = observer.lock().tls.clone();
    Ok(DemoReport {
        received: count("events"),
        distinct: count("distinct"),
        duplicates: count("duplicates"),
        sender_cpu: usage.cpu().saturating_sub(receiver_cpu),
        receiver_cpu,
        peak_rss_kib: usage.peak_rss_kib,
        tls,
        receiver_error,
        sender,
    })
}

/// Waits (bounded) for the receiver thread; `None` when it panicked or did not stop.
fn join_receiver(handle: JoinHandle<ReceiverEnd>, observer: &DemoObserver) -> Option<ReceiverEnd> {
    let ended = observer.wait_while(STOP_WAIT, |s| !s.ended).ended;
    if !ended {
        return None;
    }
    handle.join().ok()
}

fn print_report(args: &DemoArgs, r: &DemoReport) {
    let s = &r.sender.snapshot;
    let verdict = if r.complete(args.count) {
        "every event acknowledged once"
    } else {
        "INCOMPLETE"
    };
    println!(
        "  events        {} shipped, {} acknowledged to the sender; the receiver ACKed {} ({} distinct, {} duplicates): {verdict}",
        s.published, s.acked, r.received, r.distinct, r.duplicates
    );
    if r.sender.unacked > 0 || s.dropped > 0 || s.retried > 0 {
        println!(
            "                {} unacknowledged, {} dropped, {} retried",
            r.sender.unacked, s.dropped, s.retried
        );
    }
    println!(
        "  rate          {:.0} events/s over {:.2} s",
        r.sender.events_per_sec(),
        r.sender.elapsed.as_secs_f64()
    );
    println!(
        "  sender cpu    {:.2} s user+sys ({:.3} s per million events); receiver {:.2} s",
        r.sender_cpu.as_secs_f64(),
        r.per_million(r.sender_cpu),
        r.receiver_cpu.as_secs_f64()
    );
    println!(
        "  peak rss      {:.1} MiB (the whole process: sender and receiver)",
        r.peak_rss_kib as f64 / 1024.0
    );
    println!(
        "  wire          {:.1} bytes/event ({} Lumberjack bytes, compressed, before TLS)",
        r.wire_bytes_per_event(),
        s.output_bytes
    );
    match &r.tls {
        Some(t) => {
            let client = t.chain.first().map_or("none", |c| c.subject.as_str());
            println!(
                "  tls           {} {}; client certificate {client} verified by the receiver",
                t.version, t.cipher_suite
            );
        }
        None => println!("  tls           no TLS session was established"),
    }
    if let Some(e) = &r.receiver_error {
        println!("  receiver      failed: {e}");
    }
}

/// Runs the demo and prints its summary; exit 0 only when every event was acknowledged.
pub fn run(args: &DemoArgs) -> ExitCode {
    let logging = discard_config(args).logging;
    if let Err(e) = crate::telemetry::init_logging(
        &logging,
        &app::logs_dir(&discard_config(args)),
        &crate::credentials::Redactor::default(),
    ) {
        eprintln!("skidder demo: {e}");
    }
    if args.discard {
        return run_discard(args);
    }
    match run_mtls(args) {
        Ok(report) => {
            print_report(args, &report);
            eprintln!("{}", report.line());
            if report.complete(args.count) {
                ExitCode::SUCCESS
            } else if report.sender.interrupted {
                ExitCode::from(EXIT_INTERRUPTED)
            } else {
                ExitCode::from(EXIT_RUNTIME)
            }
        }
        Err(e) => {
            eprintln!("skidder demo: {e}");
            e.exit_code()
        }
    }
}

/// `--discard`: no network, no TLS.
fn run_discard(args: &DemoArgs) -> ExitCode {
    let config = discard_config(args);
    let plan = match app::plan(&config, OutputKnobs::default()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("skidder demo: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    println!(
        "skidder demo --discard: generator ({} events of ~{} bytes, {} thread(s)) -> memory queue -> output.discard (no network)",
        args.count, args.size, args.threads.max(1)
    );
    let opts = RunOptions {
        progress: true,
        signals: true,
    };
    match app::run(&config, plan, opts) {
        Ok(t) => {
            println!(
                "  events     {} acknowledged, {} unacknowledged",
                t.snapshot.acked, t.unacked
            );
            println!(
                "  rate       {:.0} events/s over {:.2} s",
                t.events_per_sec(),
                t.elapsed.as_secs_f64()
            );
            println!(
                "  cpu        {:.2} s user+sys ({:.3} s per million events)",
                t.usage.cpu().as_secs_f64(),
                t.cpu_per_million()
            );
            println!(
                "  peak rss   {:.1} MiB",
                t.usage.peak_rss_kib as f64 / 1024.0
            );
            eprintln!("{}", t.line());
            let expected = if args.count == 0 {
                t.snapshot.published
            } else {
                args.count
            };
            if t.snapshot.acked == expected && t.unacked == 0 {
                ExitCode::SUCCESS
            } else if t.interrupted {
                ExitCode::from(EXIT_INTERRUPTED)
            } else {
                ExitCode::from(EXIT_RUNTIME)
            }
        }
        Err(e) => {
            eprintln!("skidder demo: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> DemoArgs {
        DemoArgs {
            count: 10,
            size: 300,
            threads: 1,
            discard: false,
        }
    }

    #[test]
    fn embedded_configurations_plan() {
        let pki = DemoPki::generate().unwrap();
        app::plan(&receiver_config(&pki), OutputKnobs::default()).unwrap();
        let addr: SocketAddr = "127.0.0.1:5044".parse().unwrap();
        let plan = app::plan(&sender_config(&args(), &pki, addr), OutputKnobs::default()).unwrap();
        assert_eq!(plan.output.key, "output.logstash");
        assert_eq!(plan.output.bulk_max_size, 2048);
        app::plan(&discard_config(&args()), OutputKnobs::default()).unwrap();
    }
}
