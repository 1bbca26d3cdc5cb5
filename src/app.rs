//! The application: builds inputs, queue and output from the configuration, runs them, and
//! owns shutdown.
//!
//! A run ends in one of three ways:
//! * finite inputs all finished and every event settled → totals, exit 0;
//! * SIGINT/SIGTERM → inputs stop, the queue drains to the output for up to
//!   `shutdown_timeout`, then the run is cancelled; a second signal exits at once (130);
//! * an output worker fails → the run is cancelled, exit 3.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::agent::Agent;
use crate::config::beats::Notice;
use crate::config::units::human;
use crate::config::{Config, ConfigError, InputKind, Problem, SslConfig, VerificationMode};
use crate::credentials::TlsSettings;
use crate::inputs::{self, InputError, InputPlan};
use crate::outputs::{self, OutputError, OutputKnobs, OutputPlan};
use crate::pipeline::{DiskError, DiskSettings, Metrics, Queue, QueueSettings, SyncMode};
use crate::processors::pipeline::Global;
use crate::telemetry::{self, Progress, ResourceUsage, TelemetryError, Totals};

/// Why the application could not start or finish its run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The keystore exists but cannot be opened.
    #[error(transparent)]
    Keystore(crate::credentials::keystore::KeystoreError),
    /// The output section is not usable.
    #[error(transparent)]
    Output(OutputError),
    /// An input is not usable.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Logging could not be set up.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// `path.data` cannot be created or written.
    #[error("path.data: {} is not a writable directory: {source}", path.display())]
    DataPath {
        /// The resolved directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The output failed while running.
    #[error("output failed: {0}")]
    OutputFailed(OutputError),
    /// The agent identity (`<path.data>/meta.json`) could not be read or written.
    #[error(transparent)]
    Agent(#[from] crate::agent::AgentError),
    /// The async runtime could not be built.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The monitoring endpoint (`http.*`) cannot be used.
    #[error(transparent)]
    Http(crate::http::HttpError),
    /// The disk queue cannot open (in use, unreadable, unknown format version).
    #[error(transparent)]
    Disk(#[from] DiskError),
}

impl AppError {
    /// True for errors in what the user configured (exit code 1), false for failures while
    /// running (exit code 3).
    pub fn is_config_error(&self) -> bool {
        !matches!(self, AppError::OutputFailed(_) | AppError::Runtime(_))
    }
}

/// A validated run: what `skidder test config` checks and `skidder run` starts.
#[derive(Debug)]
pub struct Plan {
    /// The output.
    pub output: OutputPlan,
    /// The inputs, by name.
    pub inputs: Vec<(String, InputPlan)>,
    /// `queue.mem.*`.
    pub queue: QueueSettings,
    /// What every input's events get: the agent identity, top-level fields, tags and
    /// processors.
    pub global: Arc<Global>,
    /// `http.*`, when enabled.
    pub monitoring: Option<crate::http::monitoring::Plan>,
    /// `queue.disk.*`, when the disk queue is configured.
    pub disk: Option<DiskSettings>,
}

/// Validates everything the run needs from `config`.
///
/// # Errors
/// [`AppError`] naming the key at fault.
pub fn plan(config: &Config, knobs: OutputKnobs) -> Result<Plan, AppError> {
    let tls = tls_problems(config);
    if !tls.is_empty() {
        return Err(AppError::Config(config.locator.error(tls, &config.secrets)));
    }
    let mut output = outputs::select(&config.output, knobs).map_err(AppError::Output)?;
    if let Some(index) = config
        .output
        .logstash
        .as_ref()
        .and_then(|l| l.index.clone())
    {
        output.meta.beat = index.to_lowercase();
    }
    let agent = Agent::load(&data_dir(config), config.name.as_deref())?;
    let first_start = agent.first_start();
    let global = Global::new(config, agent).map_err(|errors| {
        let problems = errors
            .into_iter()
            .map(|e| Problem::new(e.path, e.message))
            .collect();
        AppError::Config(config.locator.error(problems, &config.secrets))
    })?;
    let global = Arc::new(global);
    let (inputs_key, input_list) = config.inputs();
    let mut inputs = inputs::plan(
        inputs_key,
        input_list,
        &output.meta,
        &global,
        config.output.elasticsearch.as_ref(),
    )?;
    let monitoring = if config.http.enabled {
        Some(crate::http::monitoring::Plan::new(&config.http).map_err(AppError::Http)?)
    } else {
        None
    };
    for (_, input) in &mut inputs {
        if let InputPlan::Filestream(f) = input {
            f.set_data_dir(data_dir(config));
            if let Some(at) = first_start {
                f.set_first_start(at);
            }
        }
    }
    let mem = &config.queue.mem;
    Ok(Plan {
        output,
        inputs,
        queue: QueueSettings {
            capacity: mem.events.max(1),
            min_events: mem.flush.min_events,
            flush_timeout: mem.flush.timeout.get(),
        },
        global,
        monitoring,
        disk: config.queue.disk.as_ref().map(|d| DiskSettings {
            path: d.path.as_ref().map_or_else(
                || data_dir(config).join("diskqueue"),
                |p| resolve(&config.path.home, p),
            ),
            max_size: d.max_size.bytes(),
            segment_size: d.effective_segment_size(),
            read_ahead: d.read_ahead.max(1),
            write_ahead: d.write_ahead.max(1),
            retry_interval: d.retry_interval.get(),
            max_retry_interval: d.max_retry_interval.get(),
            sync: match d.sync.as_str() {
                "interval" => SyncMode::Interval(d.sync_interval.get()),
                "none" => SyncMode::None,
                _ => SyncMode::Batch,
            },
            pack: None,
        }),
    })
}

/// One `ssl` section the run will use: an enabled TLS output or lumberjack input.
struct TlsSection<'a> {
    /// The key above `ssl`: `output.logstash`, `skidder.inputs.0`.
    key: String,
    ssl: &'a SslConfig,
    /// A listener (the lumberjack input) rather than a client.
    server: bool,
}

/// The `ssl` sections of the enabled Logstash/Elasticsearch outputs (the Elasticsearch one
/// only when a host is reached over https, the only time it is read) and of the enabled
/// lumberjack inputs.
fn tls_sections(config: &Config) -> Vec<TlsSection<'_>> {
    let enabled = config.output.enabled();
    let mut out = Vec::new();
    if let Some(ls) = config.output.logstash.as_ref() {
        if enabled.contains(&"output.logstash") {
            out.push(TlsSection {
                key: "output.logstash".to_string(),
                ssl: &ls.ssl,
                server: false,
            });
        }
    }
    if let Some(es) = config.output.elasticsearch.as_ref() {
        // Settings that do not validate are reported by the output; their `ssl` is checked
        // in case that is where the problem is.
        let uses_tls = outputs::elasticsearch::settings::ElasticsearchSettings::from_config(es)
            .map_or(true, |s| s.tls.is_some());
        if enabled.contains(&"output.elasticsearch") && uses_tls {
            out.push(TlsSection {
                key: "output.elasticsearch".to_string(),
                ssl: &es.ssl,
                server: false,
            });
        }
    }
    let (inputs_key, inputs) = config.inputs();
    for (i, input) in inputs.iter().enumerate() {
        let ssl = match (input.common.enabled, &input.kind) {
            (true, InputKind::Lumberjack(lj)) => &lj.ssl,
            (true, InputKind::HttpEndpoint(h)) => &h.ssl,
            _ => continue,
        };
        out.push(TlsSection {
            key: format!("{inputs_key}.{i}"),
            ssl,
            server: true,
        });
    }
    if config.http.enabled {
        out.push(TlsSection {
            key: "http".to_string(),
            ssl: &config.http.ssl,
            server: true,
        });
    }
    out
}

/// Every problem of every `ssl` section in use (settings and material: unreadable or
/// invalid files, a wrong passphrase, a key that is not the certificate's), each under its
/// full key path so it is reported like any configuration problem, with file and line.
fn tls_problems(config: &Config) -> Vec<Problem> {
    tls_sections(config)
        .into_iter()
        .flat_map(|section| {
            TlsSettings::problems(section.ssl, section.server)
                .into_iter()
                .map(move |p| Problem::new(format!("{}.{}", section.key, p.key), p.message()))
        })
        .collect()
}

/// WARNs, once logging is set up, for every `ssl.verification_mode: none` in use, naming
/// its key: a person should not find out from a packet capture.
fn warn_unverified(config: &Config) {
    for section in tls_sections(config) {
        if section.ssl.verification_mode != VerificationMode::None
            || section.ssl.enabled == Some(false)
        {
            continue;
        }
        let key = format!("{}.ssl.verification_mode", section.key);
        if section.server {
            tracing::warn!(
                key = %key,
                "{key} is none, which a listener ignores: client certificates are checked \
                 as ssl.client_authentication says"
            );
        } else {
            tracing::warn!(
                key = %key,
                "{key} is none: server certificates are NOT verified, so anyone on the path \
                 can read and change the connection; use it only for testing"
            );
        }
    }
}

/// What the run accepts but does not apply as written, one [`Notice`] each: what loading
/// noted (ignored management sections, a `preset`, ...) and, for the `ssl` sections in use,
/// TLSv1.0/1.1 in `supported_protocols` (dropped, by design) and `renegotiation` other
/// than `never` (rustls never renegotiates). `skidder test config` prints them; a run logs
/// them at WARN once logging is set up.
pub fn ignored_notices(config: &Config) -> Vec<Notice> {
    let mut out = config.notices.clone();
    for section in tls_sections(config) {
        if section.ssl.enabled == Some(false) {
            continue;
        }
        let legacy: Vec<&str> = section
            .ssl
            .supported_protocols
            .iter()
            .map(String::as_str)
            .filter(|p| crate::credentials::tls::is_legacy_protocol(p))
            .collect();
        if !legacy.is_empty() {
            out.push(Notice {
                key: format!("{}.ssl.supported_protocols", section.key),
                message: format!(
                    "{} dropped; skidder speaks only TLSv1.2 and TLSv1.3",
                    legacy.join(", ")
                ),
            });
        }
        if let Some(mode) = section
            .ssl
            .renegotiation
            .as_deref()
            .filter(|m| *m != "never")
        {
            out.push(Notice {
                key: format!("{}.ssl.renegotiation", section.key),
                message: format!("{mode} is not applied: rustls never renegotiates"),
            });
        }
    }
    out.extend(ignored_processors(config));
    out
}

/// Every processor that loads but is not applied (`add_cloud_metadata`,
/// `add_docker_metadata`, `add_kubernetes_metadata`, in Filebeat's default filebeat.yml),
/// named by its key.
fn ignored_processors(config: &Config) -> Vec<Notice> {
    let mut out = Vec::new();
    let (key, inputs) = config.inputs();
    let lists = std::iter::once(("processors".to_string(), &config.processors)).chain(
        inputs
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{key}.{i}.processors"), &c.common.processors)),
    );
    for (path, list) in lists {
        // Lists that do not build were refused by validation already.
        let Ok(p) = crate::processors::Processors::build(list, &path) else {
            continue;
        };
        for entry in &p.ignored {
            out.push(Notice {
                key: entry.clone(),
                message: "loaded but not applied: skidder does not read cloud, Docker or \
                          Kubernetes metadata"
                    .to_string(),
            });
        }
    }
    out
}

/// `path.data` resolved against `path.home`.
pub fn data_dir(config: &Config) -> PathBuf {
    resolve(&config.path.home, &config.path.data)
}

/// `path.logs` resolved against `path.home`.
pub fn logs_dir(config: &Config) -> PathBuf {
    resolve(&config.path.home, &config.path.logs)
}

fn resolve(home: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        home.join(p)
    }
}

/// Creates `path.data` if needed and proves it writable.
///
/// # Errors
/// [`AppError::DataPath`] naming the directory.
pub fn check_data_dir(dir: &Path) -> Result<(), AppError> {
    let err = |source| AppError::DataPath {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let probe = dir.join(format!(".skidder-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(err)?;
    std::fs::remove_file(&probe).map_err(err)?;
    Ok(())
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Show the live progress view when stdout is a terminal.
    pub progress: bool,
    /// Handle SIGINT/SIGTERM (off only for embedding in tests).
    pub signals: bool,
}

/// Runs `plan` to its end.
///
/// # Errors
/// [`AppError::OutputFailed`] when the output gives up, [`AppError::Runtime`] when the
/// runtime cannot start, [`AppError::Input`] when an input cannot start.
pub fn run(config: &Config, plan: Plan, opts: RunOptions) -> Result<Totals, AppError> {
    run_until(config, plan, opts, Arc::new(Notify::new()))
}

/// As [`run`], and `stop` ends the run as an orderly stop (not an interruption): inputs
/// stop, the queue drains for up to `shutdown_timeout`. `skidder receive --expect` uses it.
///
/// # Errors
/// As [`run`].
pub fn run_until(
    config: &Config,
    plan: Plan,
    opts: RunOptions,
    stop: Arc<Notify>,
) -> Result<Totals, AppError> {
    // Beats' max_procs caps GOMAXPROCS; here it sizes the async runtime.
    let threads = config.max_procs.filter(|n| *n > 0).unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("skidder-rt")
        .enable_all()
        .build()
        .map_err(AppError::Runtime)?;
    run_until_on(&runtime, config, plan, opts, stop)
}

/// As [`run_until`], on a runtime the caller built (a multi-threaded one with time and I/O
/// enabled). `skidder demo` runs its embedded receiver this way, on threads whose CPU time
/// it accounts separately from the sender's.
///
/// # Errors
/// As [`run`].
pub fn run_until_on(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    plan: Plan,
    opts: RunOptions,
    stop: Arc<Notify>,
) -> Result<Totals, AppError> {
    warn_unverified(config);
    for notice in ignored_notices(config) {
        tracing::warn!(key = %notice.key, "{notice}");
    }
    let shutdown_timeout = config.shutdown_timeout.get();
    let metrics_period = (config.logging.metrics.enabled
        && !config.logging.metrics.period.is_zero())
    .then(|| config.logging.metrics.period.get());
    runtime.block_on(run_async(
        plan,
        opts,
        shutdown_timeout,
        metrics_period,
        stop,
    ))
}

async fn run_async(
    plan: Plan,
    opts: RunOptions,
    shutdown_timeout: Duration,
    metrics_period: Option<Duration>,
    stop: Arc<Notify>,
) -> Result<Totals, AppError> {
    let started = Instant::now();
    let global = Arc::clone(&plan.global);
    let metrics = Arc::new(Metrics::default());
    let queue = match plan.disk {
        Some(d) => {
            let d = DiskSettings {
                pack: plan.output.pack.clone(),
                ..d
            };
            Queue::with_disk(d, Arc::clone(&metrics))?
        }
        None => Queue::new(plan.queue, Arc::clone(&metrics)),
    };
    let mut signals = if opts.signals {
        Some(Signals::new().map_err(AppError::Runtime)?)
    } else {
        None
    };

    if let Some(check) = plan.output.preflight {
        check.await.map_err(AppError::Output)?;
    }
    let mut workers = JoinSet::new();
    let output_key = plan.output.key;
    for worker in plan.output.workers {
        let source = queue.batch_source(plan.output.bulk_max_size);
        workers.spawn(worker.run(source, Arc::clone(&metrics)));
    }
    let meta = plan.output.meta.clone();
    let mut names = Vec::new();
    let mut finishers = Vec::new();
    for (name, input) in plan.inputs {
        let running = inputs::start(name, input, &queue, &meta)?;
        names.push(running.name);
        finishers.extend(running.finisher);
    }
    queue.all_inputs_started();
    if let Some(m) = plan.monitoring {
        m.start(
            Arc::clone(&metrics),
            &plan.global.agent,
            &meta.beat,
            output_key,
            &names,
        )
        .map_err(AppError::Http)?;
    }
    tracing::info!(inputs = ?names, output = output_key, queue_events = plan.queue.capacity, "skidder started");

    let mut background = JoinSet::new();
    if let Some(period) = metrics_period {
        background.spawn(telemetry::report_metrics(Arc::clone(&metrics), period));
    }
    let progress = if opts.progress {
        Progress::for_stdout(plan.output.writes_stdout)
    } else {
        None
    };
    if let Some(p) = progress.clone() {
        background.spawn(p.run(Arc::clone(&metrics)));
    }

    let mut interrupted = false;
    let mut failure = None;
    tokio::select! {
        () = queue.wait_idle() => {}
        () = stop.notified() => {
            queue.stop_inputs();
            drain(&queue, shutdown_timeout, &mut None).await;
        }
        () = recv(&mut signals) => {
            interrupted = true;
            let unsettled = queue.unsettled();
            let timeout = human(shutdown_timeout);
            if shutdown_timeout.is_zero() && unsettled > 0 {
                // Say what happens: nothing is waited for, and only an input that can
                // re-send (none of today's) gets these events back.
                tracing::warn!(unsettled, shutdown_timeout = %timeout, "signal received; shutdown_timeout is 0s, so events in the queue and in flight are not waited for and stay unacknowledged");
            } else {
                tracing::info!(unsettled, shutdown_timeout = %timeout, "signal received; inputs stopped, draining the queue to the output for up to shutdown_timeout (a second signal exits at once)");
            }
            queue.stop_inputs();
            if !shutdown_timeout.is_zero() {
                drain(&queue, shutdown_timeout, &mut signals).await;
            }
        }
        Some(r) = workers.join_next() => {
            failure = worker_result(r);
            if failure.is_none() {
                // A worker ended cleanly: only when the run is over.
                queue.wait_idle().await;
            }
        }
    }
    queue.cancel();
    if interrupted || failure.is_some() {
        // shutdown_timeout is over (or the output failed): batches still in flight are not
        // waited for; their Drop puts them back and they count as unacknowledged.
        workers.abort_all();
    }
    let drain = async {
        while let Some(r) = workers.join_next().await {
            if let Some(e) = worker_result(r) {
                failure.get_or_insert(e);
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        tracing::warn!("output workers did not stop within 5s; abandoning them");
        workers.abort_all();
    }
    // Aborted workers' batches come back from their threads a moment later.
    if tokio::time::timeout(Duration::from_secs(5), queue.wait_returned())
        .await
        .is_err()
    {
        tracing::warn!(
            "batches taken by the output did not come back within 5s; they stay unacknowledged"
        );
    }
    background.abort_all();
    // Every acknowledgement that will come has come: record where the files stand.
    for f in finishers {
        f.run();
    }
    if let Some(p) = &progress {
        p.clear();
    }
    // A disk queue keeps what is unsettled for the next start: those are its unacked.
    let left_on_disk = queue.close();
    let snapshot = metrics.snapshot();
    let totals = Totals {
        unacked: if queue.disk_path().is_some() {
            left_on_disk
        } else {
            snapshot
                .published
                .saturating_sub(snapshot.acked + snapshot.dropped)
        },
        snapshot,
        elapsed: started.elapsed(),
        usage: ResourceUsage::now(),
        interrupted,
    };
    if let Some(e) = failure {
        tracing::error!(error = %e, unacked = totals.unacked, "output failed; run ended");
        return Err(AppError::OutputFailed(e));
    }
    let (failed, filtered) = (global.failures.count(), global.filtered());
    if failed > 0 {
        tracing::warn!(
            processor_failures = failed,
            "processors failed {failed} time(s); those events went on as Beats sends them"
        );
    }
    if filtered > 0 {
        tracing::info!(
            filtered,
            "processors dropped {filtered} event(s) (drop_event)"
        );
    }
    tracing::info!(
        acked = totals.snapshot.acked,
        unacked = totals.unacked,
        "skidder stopped"
    );
    Ok(totals)
}

fn worker_result(
    r: Result<Result<(), OutputError>, tokio::task::JoinError>,
) -> Option<OutputError> {
    match r {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(join) if join.is_cancelled() => None,
        Err(join) => Some(OutputError::Invalid {
            key: "output",
            reason: format!("output worker ended abnormally: {join}"),
        }),
    }
}

/// Waits for the queue to drain for up to `timeout` and says how it ended; a signal on
/// `signals` meanwhile exits at once.
async fn drain(queue: &Queue, timeout: Duration, signals: &mut Option<Signals>) {
    tokio::select! {
        r = tokio::time::timeout(timeout, queue.wait_drained()) => match r {
            Ok(()) => tracing::info!("queue drained: every event settled"),
            Err(_) => tracing::warn!(
                unsettled = queue.unsettled(),
                shutdown_timeout = %human(timeout),
                "shutdown_timeout passed before the queue drained; those events stay unacknowledged"
            ),
        },
        () = recv(signals) => second_signal(queue),
    }
}

fn second_signal(queue: &Queue) -> ! {
    let unsettled = queue.unsettled();
    eprintln!("skidder: second signal; exiting now with {unsettled} event(s) unacknowledged");
    std::process::exit(130);
}

/// SIGINT and SIGTERM as one stream.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }
}

async fn recv(signals: &mut Option<Signals>) {
    match signals {
        Some(s) => {
            tokio::select! {
                _ = s.int.recv() => {}
                _ = s.term.recv() => {}
            }
        }
        None => std::future::pending().await,
    }
}
