//! Output workers: host selection (load balancing or failover), reconnect backoff,
//! `max_retries`, and settling what a failed connection still held.
//!
//! A worker connects **before** it takes a batch, so a host that is down never holds
//! events: with `loadbalance: true` its worker sits in backoff (out of rotation, probed at
//! each reconnect attempt) while the other hosts' workers drain the shared queue. With
//! `loadbalance: false` a worker stays on one host and moves to the next one in the list
//! when a connection attempt or a connection fails.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument as _;

use super::connection::{self, Ctx, Ended, Held};
use super::metrics::HostMetrics;
use super::settings::{Endpoint, LogstashSettings};
use super::transport::Connector;
use super::window::Window;
use crate::config::units::human;
use crate::outputs::backoff::{random_jitter, Backoff};
use crate::outputs::{Output, OutputError, WorkerFuture};
use crate::pipeline::{BatchSource, Fate, Metrics};

/// What every worker of one `output.logstash` shares.
#[derive(Debug)]
pub struct Shared {
    /// The settings.
    pub settings: LogstashSettings,
    /// Opens connections.
    pub connector: Connector,
    /// With `loadbalance`: which connection takes the next window (endpoint = host index).
    pub fleet: Option<Arc<super::fleet::Fleet>>,
    /// One entry per host, in `hosts` order.
    pub hosts: Vec<Arc<HostMetrics>>,
    /// Workers still running; the last one logs the per-host summary.
    pub running: AtomicUsize,
    /// Workers whose latest connection attempt failed (set by a failed attempt, cleared by a
    /// successful one): all of them refusing is `output.failover`'s "all hosts failing".
    pub refusing: AtomicUsize,
}

/// One output worker: one connection at a time to one of `hosts`.
#[derive(Debug)]
pub struct LogstashWorker {
    shared: Arc<Shared>,
    /// Indexes into `shared.settings.hosts` this worker may use, in the order it tries them.
    hosts: Vec<usize>,
    id: usize,
    role: Role,
}

/// What a worker connects to.
#[derive(Debug)]
pub enum Role {
    /// The configured hosts at `hosts`, by name.
    Hosts,
    /// `dns.expand`: resolves its host and runs address workers (see [`super::dns`]).
    Discover,
    /// `dns.expand`: one address of its host, until the address leaves the DNS answer.
    Address {
        /// The address and the name TLS checks.
        found: super::dns::Found,
        /// Its endpoint in the fleet.
        endpoint: super::balance::EndpointId,
        /// Its counters.
        metrics: Arc<HostMetrics>,
    },
}

impl LogstashWorker {
    /// A worker using the hosts at `hosts` (indexes into the settings' host list).
    pub fn new(shared: Arc<Shared>, hosts: Vec<usize>, id: usize) -> Self {
        Self::with_role(shared, hosts, id, Role::Hosts)
    }

    /// A worker of `role` for the host at `host`.
    pub fn with_role(shared: Arc<Shared>, hosts: Vec<usize>, id: usize, role: Role) -> Self {
        shared.running.fetch_add(1, Ordering::Relaxed);
        Self {
            shared,
            hosts,
            id,
            role,
        }
    }

    /// The worker's number (thread names, logs).
    pub fn id(&self) -> usize {
        self.id
    }

    /// The first host this worker uses (index into the settings' host list).
    pub fn host_index(&self) -> usize {
        self.hosts.first().copied().unwrap_or(0)
    }

    /// What this worker shares with the other workers of its output (counters, health).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// Keeps this worker's contribution to [`Shared::refusing`] right, also when it ends.
struct Refusing<'a> {
    count: &'a AtomicUsize,
    on: bool,
}

impl Refusing<'_> {
    fn set(&mut self, on: bool) {
        if on != self.on {
            self.on = on;
            if on {
                self.count.fetch_add(1, Ordering::Relaxed);
            } else {
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Refusing<'_> {
    fn drop(&mut self) {
        self.set(false);
    }
}

impl Output for LogstashWorker {
    /// Runs the worker on a thread of its own with a single-threaded runtime: the worker
    /// compresses each window right there, with nothing else on that runtime to stall, and
    /// its wake-ups (ACKs, new batches) reach one thread instead of a pool. On the shared
    /// multi-threaded runtime every window needed a `block_in_place` hand-off and woke a
    /// second worker thread; measured 1M events over mTLS at level 3, this uses 4 % less
    /// CPU and half the thread switches. Dropping the returned future (an aborted run)
    /// stops the worker, whose held batches then go back to the queue as before.
    fn run(self: Box<Self>, batches: BatchSource, metrics: Arc<Metrics>) -> WorkerFuture {
        if matches!(self.role, Role::Discover) {
            // Resolving and starting address workers needs no thread of its own.
            let shared = Arc::clone(&self.shared);
            let discovery = super::dns::run_discovery(*self, batches, metrics);
            return Box::pin(async move {
                let outcome = discovery.await;
                finish(&shared);
                outcome
            });
        }
        if !matches!(self.role, Role::Address { .. }) {
            metrics.add_logstash_hosts(&self.shared.hosts);
        }
        if let Some(tls) = self.shared.connector.tls() {
            metrics.add_certificate("output.logstash.ssl", tls);
        }
        let name = format!("skidder-logstash-{}", self.id);
        Box::pin(async move {
            let stop = Arc::new(tokio::sync::Notify::new());
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let shared = Arc::clone(&self.shared);
            let worker_stop = Arc::clone(&stop);
            let spawned = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    let result = match runtime {
                        Ok(rt) => {
                            rt.block_on(async {
                                tokio::select! {
                                    () = run_worker(*self, batches, metrics) => {}
                                    () = worker_stop.notified() => {}
                                }
                            });
                            Ok(())
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = done_tx.send(result);
                });
            let outcome = match spawned {
                Err(e) => Err(OutputError::Worker {
                    worker: name,
                    reason: format!("cannot start its thread: {e}"),
                }),
                Ok(_) => {
                    let _stop_on_drop = StopOnDrop(stop);
                    match done_rx.await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(reason)) => Err(OutputError::Worker {
                            worker: name,
                            reason: format!("cannot build its runtime: {reason}"),
                        }),
                        Err(_) => Err(OutputError::Worker {
                            worker: name,
                            reason: "its thread panicked".to_string(),
                        }),
                    }
                }
            };
            finish(&shared);
            outcome
        })
    }
}

/// One worker ended; the last one logs the totals of every host (and DNS address).
fn finish(shared: &Shared) {
    if shared.running.fetch_sub(1, Ordering::AcqRel) == 1 {
        let all = shared
            .fleet
            .as_ref()
            .map_or_else(|| shared.hosts.clone(), |f| f.endpoint_metrics());
        for h in &all {
            tracing::info!(host = %h.host, summary = %h.summary(), "logstash output host totals");
        }
    }
}

/// Stops a worker's thread when the future awaiting it is dropped (an aborted run).
struct StopOnDrop(Arc<tokio::sync::Notify>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // notify_one stores a permit, so a worker that is not waiting yet still stops.
        self.0.notify_one();
    }
}

async fn run_worker(w: LogstashWorker, mut source: BatchSource, metrics: Arc<Metrics>) {
    let s = &w.shared.settings;
    let mut backoff = Backoff::new(s.backoff_init, s.backoff_max);
    let mut window = Window::new(s.slow_start, s.bulk_max_size);
    // Packed windows go as stored only where nothing changes them at send time.
    source.accept_packed(s.packs());
    let mut held: VecDeque<Held> = VecDeque::new();
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut refusing = Refusing {
        count: &w.shared.refusing,
        on: false,
    };
    // True until the first connection and after a failure: the next connection is news.
    let mut down = true;
    loop {
        let index = w.hosts[pos % w.hosts.len()];
        let endpoint: &Endpoint = &s.hosts[index];
        let (host_metrics, fleet_endpoint, address) = match &w.role {
            Role::Address {
                found,
                endpoint: id,
                metrics,
            } => (metrics, *id, Some(found)),
            _ => (&w.shared.hosts[index], index, None),
        };
        if address.is_some()
            && w.shared
                .fleet
                .as_ref()
                .is_some_and(|f| f.is_removed(fleet_endpoint))
        {
            // The address left the DNS answer and nothing of ours is on it any more.
            return;
        }
        let host = address.map_or_else(|| endpoint.to_string(), ToString::to_string);
        let connect = async {
            match address {
                Some(a) => {
                    w.shared
                        .connector
                        .connect_addr(
                            &Endpoint {
                                host: a.name.clone(),
                                port: a.addr.port(),
                            },
                            a.addr,
                        )
                        .await
                }
                None => w.shared.connector.connect(endpoint).await,
            }
        };
        let connected = tokio::select! {
            c = connect => c,
            () = source.finished() => return,
        };
        refusing.set(connected.is_err());
        let conn = match connected {
            Ok(c) => c,
            Err(error) => {
                host_metrics.error(error.kind());
                let delay = backoff.next_delay(random_jitter());
                tracing::warn!(worker = w.id, host = %host, error = %error, retry_in = %human(delay), "cannot connect to logstash; backing off");
                down = true;
                pos += 1;
                let _backing_off = metrics.output_failed();
                if !wait_or_finish(&source, delay).await {
                    return;
                }
                continue;
            }
        };
        host_metrics.connections.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "lumberjack",
            worker = w.id,
            host = %host,
            peer = %conn.peer,
            local_port = conn.local_port,
            tls = %conn.tls_version
        );
        if std::mem::take(&mut down) {
            // Once per worker at start and after every failure: a person sees when delivery
            // (re)starts, not only the WARNs while it is down. TTL reconnects stay at DEBUG.
            span.in_scope(|| tracing::info!("connected to logstash"));
        } else {
            span.in_scope(|| tracing::debug!("connected"));
        }
        let lease = w.shared.fleet.as_ref().map(|f| f.join(fleet_endpoint));
        let ctx = Ctx {
            balance: lease.as_ref(),
            host: &host,
            host_metrics,
            metrics: &metrics,
            windows_in_flight: s.windows_in_flight(),
            timeout: s.timeout,
            compression_level: s.compression_level,
            ttl: s.ttl,
            stamp_ids: s.stamp_ids,
        };
        let acked_before = host_metrics.events_acked.load(Ordering::Relaxed);
        let ended = connection::serve(conn, &ctx, &mut source, &mut held, &mut window, &mut out)
            .instrument(span.clone())
            .await;
        // Out of the balancer before any backoff: a connection that is gone takes nothing.
        drop(lease);
        if host_metrics.events_acked.load(Ordering::Relaxed) > acked_before {
            backoff.reset();
        }
        match ended {
            Ended::Finished | Ended::Drained => return,
            Ended::Ttl => {
                span.in_scope(|| tracing::debug!("ttl reached; reconnecting"));
            }
            Ended::IdleClosed => {
                span.in_scope(|| {
                    tracing::debug!("server closed the idle connection; reconnecting")
                });
                if !wait_or_finish(&source, s.backoff_init).await {
                    return;
                }
            }
            Ended::Recalled => {
                let (resend, _) = settle_failed(&mut held, None, host_metrics, "recalled");
                span.in_scope(|| {
                    tracing::info!(resend, "output failover recalled the unacknowledged events; they go to the other output");
                });
            }
            Ended::Failed(error) => {
                host_metrics.error(error.kind());
                window.on_error();
                let (resend, dropped) =
                    settle_failed(&mut held, s.max_retries, host_metrics, &error.to_string());
                let delay = backoff.next_delay(random_jitter());
                span.in_scope(|| {
                    tracing::warn!(error = %error, resend, dropped, retry_in = %human(delay), "logstash connection failed; unacknowledged events go back to the queue unless max_retries is exhausted");
                });
                down = true;
                if !s.loadbalance {
                    pos += 1;
                }
                let _backing_off = metrics.output_failed();
                if !wait_or_finish(&source, delay).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps `delay` unless the run ends first; false when it ended.
async fn wait_or_finish(source: &BatchSource, delay: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = source.finished() => false,
    }
}

/// Settles the batches of a failed connection: acknowledged prefixes are acked, the rest
/// goes back to the queue, or is dropped (logged at ERROR with the count) once the batch
/// has been retried `max_retries` times. A batch never written goes back without counting
/// as a retry. Returns the number of events handed back for re-sending and dropped.
pub fn settle_failed(
    held: &mut VecDeque<Held>,
    max_retries: Option<u32>,
    host: &HostMetrics,
    reason: &str,
) -> (usize, usize) {
    let (mut resend, mut dropped) = (0, 0);
    for h in held.drain(..) {
        let len = h.batch.len();
        if h.sent == 0 {
            // Never on the wire: not a delivery attempt.
            h.batch.cancelled();
            continue;
        }
        let remaining = len - h.acked;
        let exhausted = max_retries.is_some_and(|m| h.batch.retries() >= m);
        if exhausted {
            dropped += remaining;
            let acked = h.acked;
            let reason = format!("max_retries exhausted; last error: {reason}");
            h.batch.resolve(
                |i, _| if i < acked { Fate::Ack } else { Fate::Drop },
                &reason,
            );
        } else {
            resend += remaining;
            host.retries.fetch_add(remaining as u64, Ordering::Relaxed);
            if h.acked == 0 {
                h.batch.retry();
            } else {
                h.batch.retry_events(remaining);
            }
        }
    }
    (resend, dropped)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use bytes::Bytes;

    use super::*;
    use crate::pipeline::{Queue, QueueSettings};

    fn queue_with(n: u64) -> (Queue, crate::pipeline::Publisher) {
        let q = Queue::new(
            QueueSettings {
                capacity: 100,
                min_events: 1,
                flush_timeout: Duration::from_secs(3600),
            },
            Arc::new(Metrics::default()),
        );
        let mut p = q.publisher("in");
        q.all_inputs_started();
        for i in 0..n {
            p.publish(Bytes::from(i.to_string())).unwrap();
        }
        p.flush().unwrap();
        (q, p)
    }

    fn docs(b: &crate::pipeline::Batch) -> Vec<String> {
        b.docs()
            .map(|d| String::from_utf8(d.to_vec()).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_partial_ack_resends_exactly_the_unacknowledged_tail() {
        let (q, p) = queue_with(10);
        let mut src = q.batch_source(10);
        let batch = src.next_batch().await.unwrap();
        let host = HostMetrics::new("h:1".into());
        let mut held = VecDeque::from([Held {
            batch,
            sent: 10,
            acked: 4,
        }]);
        assert_eq!(settle_failed(&mut held, Some(3), &host, "boom"), (6, 0));
        assert_eq!(q.metrics().acked.load(Ordering::Relaxed), 4);
        assert_eq!(
            p.acked(),
            0,
            "the input hears of its range once all of it is settled"
        );
        assert_eq!(host.retries.load(Ordering::Relaxed), 6);
        let again = src.next_batch().await.unwrap();
        assert_eq!(docs(&again), ["4", "5", "6", "7", "8", "9"]);
        assert_eq!(again.retries(), 1);
        again.ack();
        assert_eq!(p.acked(), 10);
    }

    #[tokio::test]
    async fn exhausted_retries_drop_only_the_unacknowledged_events() {
        let (q, p) = queue_with(5);
        let mut src = q.batch_source(5);
        let mut batch = src.next_batch().await.unwrap();
        for _ in 0..2 {
            batch.retry();
            batch = src.next_batch().await.unwrap();
        }
        assert_eq!(batch.retries(), 2);
        let host = HostMetrics::new("h:1".into());
        let mut held = VecDeque::from([Held {
            batch,
            sent: 5,
            acked: 2,
        }]);
        assert_eq!(settle_failed(&mut held, Some(2), &host, "timeout"), (0, 3));
        assert_eq!(p.settled(), 5);
        assert_eq!(p.acked(), 2);
        assert_eq!(q.metrics().dropped.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_batch_never_written_goes_back_without_counting_a_retry() {
        let (q, _p) = queue_with(3);
        let mut src = q.batch_source(3);
        let batch = src.next_batch().await.unwrap();
        let host = HostMetrics::new("h:1".into());
        let mut held = VecDeque::from([Held {
            batch,
            sent: 0,
            acked: 0,
        }]);
        assert_eq!(settle_failed(&mut held, Some(0), &host, "x"), (0, 0));
        let again = src.next_batch().await.unwrap();
        assert_eq!(again.retries(), 0);
        assert_eq!(docs(&again), ["0", "1", "2"]);
        again.ack();
    }
}
