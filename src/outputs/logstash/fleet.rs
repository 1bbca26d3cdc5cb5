//! The [`balance::Balancer`] shared by the workers of one `output.logstash` with
//! `loadbalance: true`: a lock around the pure state, a version counter that wakes waiting
//! connections when anything changes, and the log lines and counters for ejections.
//!
//! A connection holds a [`Lease`] for as long as it lives; dropping it leaves the balancer.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::watch;

use super::balance::{Balancer, Change, ConnId, Decision, EndpointId, Rules};
use super::metrics::HostMetrics;
use crate::config::units::human;
use crate::config::LoadbalanceStrategy;

/// One balancer and the counters of its endpoints.
#[derive(Debug)]
pub struct Fleet {
    state: Mutex<Balancer>,
    version: watch::Sender<u64>,
    /// Counters per endpoint, by [`EndpointId`].
    endpoints: Mutex<Vec<Arc<HostMetrics>>>,
}

impl Fleet {
    /// A fleet of `strategy` with one endpoint per entry of `hosts`, in order.
    pub fn new(strategy: LoadbalanceStrategy, hosts: &[Arc<HostMetrics>]) -> Self {
        let mut b = Balancer::new(strategy, Rules::default());
        for _ in hosts {
            b.add_endpoint();
        }
        Self {
            state: Mutex::new(b),
            version: watch::Sender::new(0),
            endpoints: Mutex::new(hosts.to_vec()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Balancer> {
        // The state stays consistent even if a holder panicked: every method finishes its
        // changes before returning.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Logs and counts what the balancer reported.
    fn report(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        for change in changes {
            match change {
                Change::Ejected {
                    endpoint,
                    latency,
                    reference,
                    period,
                } => {
                    let Some(m) = endpoints.get(endpoint) else {
                        continue;
                    };
                    m.ejections.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(host = %m.host, ack_latency = %human(latency), others_median = %human(reference), ejected_for = %human(period), "logstash host is far slower than the others; it takes no new window until probed");
                }
                Change::Probing { endpoint } => {
                    if let Some(m) = endpoints.get(endpoint) {
                        tracing::info!(host = %m.host, "ejection period over; probing the logstash host with one window");
                    }
                }
                Change::Readmitted { endpoint, latency } => {
                    if let Some(m) = endpoints.get(endpoint) {
                        tracing::info!(host = %m.host, ack_latency = %human(latency), "logstash host answered the probe in time; it takes windows again");
                    }
                }
            }
        }
    }

    /// Adds an endpoint (an address from DNS) counted in `metrics`.
    pub fn add_endpoint(&self, metrics: Arc<HostMetrics>) -> EndpointId {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        let id = self.lock().add_endpoint();
        endpoints.push(metrics);
        drop(endpoints);
        self.bump();
        id
    }

    /// Drains `endpoint` (gone from DNS): no new window; its connections leave once
    /// answered.
    pub fn remove_endpoint(&self, endpoint: EndpointId) {
        self.lock().remove_endpoint(endpoint);
        self.bump();
    }

    /// Whether `endpoint` was removed.
    pub fn is_removed(&self, endpoint: EndpointId) -> bool {
        self.lock().health(endpoint) == Some(super::balance::Health::Removed)
    }

    /// The counters of every endpoint, configured hosts first, then addresses from DNS.
    pub fn endpoint_metrics(&self) -> Vec<Arc<HostMetrics>> {
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A connection to `endpoint` joins.
    pub fn join(self: &Arc<Self>, endpoint: EndpointId) -> Lease {
        let conn = self.lock().join(endpoint);
        self.bump();
        Lease {
            fleet: Arc::clone(self),
            conn,
        }
    }
}

/// A connection's place in its [`Fleet`]; leaves it when dropped.
#[derive(Debug)]
pub struct Lease {
    fleet: Arc<Fleet>,
    conn: ConnId,
}

impl Lease {
    /// May this connection take the next batch now? With the version seen, for
    /// [`Self::changed`].
    pub fn decide(&self) -> (Decision, u64) {
        let version = *self.fleet.version.borrow();
        let (decision, changes) = self.fleet.lock().decide(self.conn, Instant::now());
        if !changes.is_empty() {
            self.fleet.report(changes);
            self.fleet.bump();
        }
        (decision, version)
    }

    /// Resolves once the balancer changed after `version` was seen, or at `recheck`.
    pub async fn changed(&self, version: u64, recheck: Option<Instant>) {
        let mut rx = self.fleet.version.subscribe();
        let changed = rx.wait_for(|v| *v != version);
        match recheck {
            Some(at) => {
                let _ = tokio::time::timeout_at(at.into(), changed).await;
            }
            None => {
                let _ = changed.await;
            }
        }
    }

    /// A batch was taken.
    pub fn taken(&self) {
        self.fleet.lock().taken(self.conn);
        self.fleet.bump();
    }

    /// A window was written.
    pub fn sent(&self) {
        self.fleet.lock().sent(self.conn, Instant::now());
        self.fleet.bump();
    }

    /// The oldest outstanding window was acknowledged.
    pub fn acked(&self) {
        let (_, changes) = self.fleet.lock().acked(self.conn, Instant::now());
        self.fleet.report(changes);
        self.fleet.bump();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.fleet.lock().leave(self.conn);
        self.fleet.bump();
    }
}
