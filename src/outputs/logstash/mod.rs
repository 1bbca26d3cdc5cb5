//! `output.logstash`: Lumberjack v2 to Logstash (or any beats endpoint) over TCP or mutual
//! TLS, load-balanced or failing over, pipelined, at-least-once.
//!
//! ```text
//!  LogstashOutputConfig ──settings──▶ LogstashSettings ──build──▶ workers (host × worker)
//!
//!  BatchSource ──▶ worker ──connect (transport: resolve, TCP, SOCKS5, TLS)──▶ connection
//!                    ▲                                                          │
//!                    │   windows (window.rs size) encoded+compressed on the     │
//!                    │   worker's own thread ─▶ write; ACKs ─▶ ClientSession    │
//!                    └── failure: acked prefix acked, the rest retried/dropped ◀┘
//! ```
//!
//! * Event bytes are sent exactly as the input encoded them (libbeat's document layout).
//! * Hosts: `loadbalance: true` runs `worker` workers per host, all pulling from the
//!   shared queue, each asking the [`fleet`]'s balancer before it takes a batch
//!   ([`balance`]: least expected completion time from measured ACK latency, slow-host
//!   ejection and probing; or Beats' strict `round_robin`); a failing host's workers sit
//!   in backoff and take nothing. With
//!   `loadbalance: false`, `worker` workers start at a random host and move to the next one
//!   on failure.
//! * `dns.expand`: every address of a host is an endpoint of its own, re-resolved every
//!   `dns.refresh_interval`; vanished addresses drain and leave ([`dns`]).
//! * A failed connection (closed, timeout, protocol error) hands back exactly the
//!   unacknowledged events (partial ACKs are kept); `max_retries` counts attempts per batch.
//! * `ttl` is honoured with pipelining: when it passes, no new window is started, the
//!   outstanding ones are awaited, then the connection is replaced.
//! * Every connection runs in a `lumberjack` span with host, peer, local port and TLS
//!   version; per-host counters and an ACK latency histogram are in [`metrics`] and logged
//!   when the output stops.
//! * Compression: ISA-L igzip by default (libdeflate and flate2 as build- or run-time
//!   fallbacks), with `compression_level` mapped by measurement against Beats' wire size
//!   at the same level ([`compress`] has the table and the rule).
//!
//! * Each worker owns a thread with a single-threaded runtime ([`LogstashWorker`]): it
//!   compresses its windows in place, and `worker × hosts` workers compress in parallel.
//!   Windows borrow the held batches' bytes (`ClientSession::send_borrowed`); nothing is
//!   cloned or allocated per event.
//!
//! # Measured
//! `cargo run --release -p skidder-bench -- --scenario lumberjack,limit` (BENCHMARKS.md has
//! the full run): 1M identical ~455-byte events, mTLS, level 3, pipelining 2, go-lumber
//! v0.2.0 server, skidder's default queue, medians of 5 alternating runs on the shared
//! 2-core machine: skidder 0.79 CPU s per million events vs go-lumber's async client 1.72
//! (0.46), 47.0 vs 47.6 wire bytes per event. libdeflate is ~85 % of skidder's CPU; building
//! the J frames (one copy of each event) ~4 %, the rest is TLS, syscalls, thread wake-ups
//! and the input. skidder ships 81 % of what libdeflate alone compresses per core.

pub mod balance;
pub mod compress;
pub mod connection;
pub mod dns;
pub mod fleet;
pub mod metrics;
pub mod settings;
pub mod transport;
pub mod window;
pub mod worker;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::config::LogstashOutputConfig;
use crate::credentials::{Alpn, CredentialError, TlsSource};

pub use settings::{Endpoint, LogstashSettings, SettingsError};
pub use transport::{ConnectError, Connector, Phase, Probe, Step, Stream};
pub use worker::LogstashWorker;

/// Why `output.logstash` could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The TLS material could not be loaded.
    #[error("output.logstash.ssl: {0}")]
    Tls(#[from] CredentialError),
    /// `SKIDDER_DEFLATE_BACKEND` names no backend of this build.
    #[error(transparent)]
    Compression(#[from] compress::BackendError),
}

/// Builds the workers of `output.logstash`: `worker` per host with `loadbalance`,
/// otherwise `worker` in all.
///
/// # Errors
/// [`BuildError`] naming the setting, or the TLS file that could not be used.
pub fn build(
    cfg: &LogstashOutputConfig,
) -> Result<(LogstashSettings, Vec<LogstashWorker>), BuildError> {
    let settings = LogstashSettings::from_config(cfg)?;
    compress::Backend::from_env()?;
    let tls = settings
        .tls
        .clone()
        .map(|t| TlsSource::client(t, Alpn::None).map(Arc::new))
        .transpose()?;
    let connector = Connector::new(settings.timeout, settings.proxy.clone(), tls);
    let hosts = settings
        .hosts
        .iter()
        .map(|h| Arc::new(metrics::HostMetrics::new(h.to_string())))
        .collect::<Vec<_>>();
    let fleet = settings
        .loadbalance
        .then(|| Arc::new(fleet::Fleet::new(settings.loadbalance_strategy, &hosts)));
    let shared = Arc::new(worker::Shared {
        settings: settings.clone(),
        connector,
        fleet,
        hosts,
        running: AtomicUsize::new(0),
        refusing: AtomicUsize::new(0),
    });
    let n = settings.hosts.len();
    let mut workers = Vec::new();
    if settings.dns.expand {
        // One discovery worker per host; it starts `worker` workers per address it finds.
        for host in 0..n {
            let id = workers.len();
            workers.push(LogstashWorker::with_role(
                Arc::clone(&shared),
                vec![host],
                id,
                worker::Role::Discover,
            ));
        }
    } else if settings.loadbalance {
        for host in 0..n {
            for _ in 0..settings.worker {
                let id = workers.len();
                workers.push(LogstashWorker::new(Arc::clone(&shared), vec![host], id));
            }
        }
    } else {
        // Beats picks the failover host at random, so many shippers spread over the list.
        let start = (crate::outputs::backoff::random_jitter() * n as f64) as usize % n;
        let order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
        for id in 0..settings.worker {
            workers.push(LogstashWorker::new(Arc::clone(&shared), order.clone(), id));
        }
    }
    Ok((settings, workers))
}
