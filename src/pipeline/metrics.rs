//! The one registry of flow counters: atomics bumped per chunk or per batch, read by the
//! periodic metrics line, the progress view and the final totals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::credentials::TlsSource;
use crate::outputs::logstash::metrics::HostMetrics;

/// Counters of the whole pipeline and its output.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events accepted into the queue.
    pub published: AtomicU64,
    /// Events the output reported as delivered.
    pub acked: AtomicU64,
    /// Events given up for good (an output's explicit drop, or a bad input line dropped by
    /// `on_json_error: drop`).
    pub dropped: AtomicU64,
    /// Events an output failed to deliver in one attempt (each is then retried or dropped).
    pub failed: AtomicU64,
    /// Events put back for another attempt.
    pub retried: AtomicU64,
    /// Batches handed to the output.
    pub batches: AtomicU64,
    /// Bytes the output wrote (its own measure: file bytes, wire bytes).
    pub output_bytes: AtomicU64,
    /// Events in the queue or in flight right now (a gauge kept by the queue).
    pub queue_filled: AtomicU64,
    /// Queue capacity in events.
    pub queue_capacity: AtomicU64,
    /// Switches between a primary and a fallback output (`output.failover`), both ways.
    pub output_switches: AtomicU64,
    /// Failed connection attempts, broken connections and failed requests of the output
    /// (Beats' `libbeat.output.write.errors`).
    pub output_errors: AtomicU64,
    /// Output workers waiting out a backoff after a failure right now (a gauge): while it is
    /// above zero the destination is down for them, which the metrics line says.
    pub output_backing_off: AtomicU64,
    /// Seconds until the Elasticsearch API key in use expires, plus one (a gauge): 0 when
    /// unknown or the key never expires, so the metrics line shows it only when it matters.
    pub api_key_expiry_s_plus_one: AtomicU64,
    /// Disk queue: bytes of segment files on disk (a gauge).
    pub disk_bytes: AtomicU64,
    /// Disk queue: 1 while inputs wait because `queue.disk.max_size` is reached (a gauge).
    pub disk_full: AtomicU64,
    /// Disk queue: events lost to damaged data (counted when skipped).
    pub disk_events_lost: AtomicU64,
    /// Disk queue: `fdatasync`/`fsync` calls.
    pub disk_fsyncs: AtomicU64,
    /// Disk queue: bytes written to segment files.
    pub disk_bytes_written: AtomicU64,
    /// Disk queue: events written inside packed windows (docs/disk-queue.md §11).
    pub disk_events_packed: AtomicU64,
    inputs: Mutex<Vec<Arc<InputMetrics>>>,
    /// Per-host counters of `output.logstash`, for the monitoring endpoint.
    logstash_hosts: Mutex<Vec<Arc<HostMetrics>>>,
    /// TLS material in use, by the key of its `ssl` section, for certificate expiry.
    certificates: Mutex<Vec<(String, Arc<TlsSource>)>>,
}

/// Counts one output worker in [`Metrics::output_backing_off`] while it lives, so a worker
/// whose wait is cut short (a cancelled run) never leaves the gauge high.
#[derive(Debug)]
pub struct BackingOff<'a>(&'a Metrics);

impl Drop for BackingOff<'_> {
    fn drop(&mut self) {
        self.0.output_backing_off.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counters of one input.
#[derive(Debug, Default)]
pub struct InputMetrics {
    /// The input's id (`id:` or type and position).
    pub name: String,
    /// Events the input handed to the queue.
    pub published: AtomicU64,
    /// Of those, acknowledged by the output (in publish order).
    pub acked: AtomicU64,
    /// Of those, dropped by the output.
    pub dropped: AtomicU64,
    /// Lines or records the input itself refused (e.g. bad JSON with `on_json_error: drop`).
    pub input_dropped: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Metrics::published`].
    pub published: u64,
    /// See [`Metrics::acked`].
    pub acked: u64,
    /// See [`Metrics::dropped`].
    pub dropped: u64,
    /// See [`Metrics::failed`].
    pub failed: u64,
    /// See [`Metrics::retried`].
    pub retried: u64,
    /// See [`Metrics::batches`].
    pub batches: u64,
    /// See [`Metrics::output_bytes`].
    pub output_bytes: u64,
    /// See [`Metrics::queue_filled`].
    pub queue_filled: u64,
    /// See [`Metrics::output_switches`].
    pub output_switches: u64,
    /// See [`Metrics::queue_capacity`].
    pub queue_capacity: u64,
    /// See [`Metrics::output_errors`].
    pub output_errors: u64,
    /// See [`Metrics::output_backing_off`].
    pub output_backing_off: u64,
    /// Credentials (certificates and keys, Elasticsearch API keys and passwords) reloaded
    /// without a restart ([`crate::credentials::reload::reloads`]).
    pub credential_reloads: u64,
    /// Seconds until the API key expires, if it does (from
    /// [`Metrics::api_key_expiry_s_plus_one`]).
    pub api_key_expires_in_s: Option<u64>,
    /// See [`Metrics::disk_bytes`].
    pub disk_bytes: u64,
    /// See [`Metrics::disk_full`].
    pub disk_full: u64,
    /// See [`Metrics::disk_events_lost`].
    pub disk_events_lost: u64,
    /// See [`Metrics::disk_fsyncs`].
    pub disk_fsyncs: u64,
    /// See [`Metrics::disk_bytes_written`].
    pub disk_bytes_written: u64,
    /// See [`Metrics::disk_events_packed`].
    pub disk_events_packed: u64,
    /// Per input: name, published, acked, dropped by output, dropped by input.
    pub inputs: Vec<(String, u64, u64, u64, u64)>,
    /// Per `output.logstash` endpoint: name, windows, events acked, ejections, ACK latency
    /// p90 in ms (0 without samples).
    pub logstash: Vec<(String, u64, u64, u64, u64)>,
}

impl Metrics {
    /// Registers an input's counters.
    pub fn add_input(&self, name: &str) -> Arc<InputMetrics> {
        let m = Arc::new(InputMetrics {
            name: name.to_string(),
            ..InputMetrics::default()
        });
        self.inputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&m));
        m
    }

    /// Registers the per-host counters of `output.logstash` (once per run, by its first
    /// worker).
    pub fn add_logstash_hosts(&self, hosts: &[Arc<HostMetrics>]) {
        let mut all = self
            .logstash_hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for h in hosts {
            if !all.iter().any(|a| Arc::ptr_eq(a, h)) {
                all.push(Arc::clone(h));
            }
        }
    }

    /// The registered per-host counters of `output.logstash`.
    pub fn logstash_hosts(&self) -> Vec<Arc<HostMetrics>> {
        self.logstash_hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Registers TLS material in use under `key` (e.g. `output.logstash.ssl`).
    pub fn add_certificate(&self, key: &str, source: Arc<TlsSource>) {
        let mut all = self.certificates.lock().unwrap_or_else(|p| p.into_inner());
        if !all.iter().any(|(k, _)| k == key) {
            all.push((key.to_string(), source));
        }
    }

    /// The registered TLS material.
    pub fn certificates(&self) -> Vec<(String, Arc<TlsSource>)> {
        self.certificates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a failure of the output and counts the caller as backing off until the
    /// returned guard drops (wrap the wait in it).
    pub fn output_failed(&self) -> BackingOff<'_> {
        self.output_errors.fetch_add(1, Ordering::Relaxed);
        self.output_backing_off.fetch_add(1, Ordering::Relaxed);
        BackingOff(self)
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> Snapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let inputs = self
            .inputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|i| {
                (
                    i.name.clone(),
                    r(&i.published),
                    r(&i.acked),
                    r(&i.dropped),
                    r(&i.input_dropped),
                )
            })
            .collect();
        Snapshot {
            published: r(&self.published),
            acked: r(&self.acked),
            dropped: r(&self.dropped),
            failed: r(&self.failed),
            retried: r(&self.retried),
            batches: r(&self.batches),
            output_bytes: r(&self.output_bytes),
            queue_filled: r(&self.queue_filled),
            output_switches: r(&self.output_switches),
            queue_capacity: r(&self.queue_capacity),
            output_errors: r(&self.output_errors),
            output_backing_off: r(&self.output_backing_off),
            credential_reloads: crate::credentials::reload::reloads(),
            api_key_expires_in_s: r(&self.api_key_expiry_s_plus_one).checked_sub(1),
            disk_bytes: r(&self.disk_bytes),
            disk_full: r(&self.disk_full),
            disk_events_lost: r(&self.disk_events_lost),
            disk_fsyncs: r(&self.disk_fsyncs),
            disk_bytes_written: r(&self.disk_bytes_written),
            disk_events_packed: r(&self.disk_events_packed),
            inputs,
            logstash: self
                .logstash_hosts()
                .iter()
                .map(|h| {
                    (
                        h.host.clone(),
                        r(&h.windows),
                        r(&h.events_acked),
                        r(&h.ejections),
                        h.latency_quantile_ms(0.9).unwrap_or(0),
                    )
                })
                .collect(),
        }
    }
}

impl Snapshot {
    /// What a person needs to know when delivery is not flowing: the output backing off
    /// after failures, and whether the queue is full (inputs are then blocked). `None` while
    /// all is well.
    pub fn output_state(&self) -> Option<String> {
        let full = self.queue_capacity > 0 && self.queue_filled >= self.queue_capacity;
        let mut parts = Vec::new();
        if self.output_backing_off > 0 {
            parts.push(format!(
                "destination down: {} worker(s) backing off after failures",
                self.output_backing_off
            ));
        }
        if full {
            parts.push("queue full: inputs are blocked".to_string());
        }
        if self.disk_full > 0 {
            parts.push("disk queue full (queue.disk.max_size): inputs are blocked".to_string());
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// The non-zero counters as a JSON object, counters as the change since `before` and
    /// the queue gauge as its current value — the periodic line Beats logs.
    pub fn nonzero_since(&self, before: &Snapshot) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        let mut put = |key: String, v: u64| {
            if v != 0 {
                out.insert(key, v.into());
            }
        };
        put(
            "pipeline.events.published".into(),
            self.published - before.published.min(self.published),
        );
        put(
            "pipeline.events.acked".into(),
            self.acked.saturating_sub(before.acked),
        );
        put(
            "pipeline.events.dropped".into(),
            self.dropped.saturating_sub(before.dropped),
        );
        put(
            "pipeline.events.failed".into(),
            self.failed.saturating_sub(before.failed),
        );
        put(
            "pipeline.events.retry".into(),
            self.retried.saturating_sub(before.retried),
        );
        put("pipeline.queue.filled.events".into(), self.queue_filled);
        put(
            "output.credentials.reloads".into(),
            self.credential_reloads
                .saturating_sub(before.credential_reloads),
        );
        // A gauge worth showing even when no other counter moved.
        put(
            "output.credentials.api_key_expires_in_s".into(),
            self.api_key_expires_in_s.map_or(0, |left| left.max(1)),
        );
        put(
            "output.batches".into(),
            self.batches.saturating_sub(before.batches),
        );
        put(
            "output.failover.switches".into(),
            self.output_switches.saturating_sub(before.output_switches),
        );
        put(
            "output.write.bytes".into(),
            self.output_bytes.saturating_sub(before.output_bytes),
        );
        put(
            "output.write.errors".into(),
            self.output_errors.saturating_sub(before.output_errors),
        );
        put("output.workers.backing_off".into(), self.output_backing_off);
        // Per Logstash endpoint: what it carried in the period, and its p90 ACK latency
        // (a bucket bound) while it carried anything.
        for (host, windows, events, ejections, p90) in &self.logstash {
            let old = before.logstash.iter().find(|b| &b.0 == host);
            let moved = windows.saturating_sub(old.map_or(0, |b| b.1));
            put(format!("output.logstash.{host}.windows"), moved);
            put(
                format!("output.logstash.{host}.events.acked"),
                events.saturating_sub(old.map_or(0, |b| b.2)),
            );
            put(
                format!("output.logstash.{host}.ejections"),
                ejections.saturating_sub(old.map_or(0, |b| b.3)),
            );
            if moved > 0 {
                put(format!("output.logstash.{host}.ack_latency.p90_ms"), *p90);
            }
        }
        put("queue.disk.bytes".into(), self.disk_bytes);
        put("queue.disk.full".into(), self.disk_full);
        put(
            "queue.disk.events_lost".into(),
            self.disk_events_lost
                .saturating_sub(before.disk_events_lost),
        );
        put(
            "queue.disk.fsyncs".into(),
            self.disk_fsyncs.saturating_sub(before.disk_fsyncs),
        );
        put(
            "queue.disk.write.bytes".into(),
            self.disk_bytes_written
                .saturating_sub(before.disk_bytes_written),
        );
        put(
            "queue.disk.write.packed_events".into(),
            self.disk_events_packed
                .saturating_sub(before.disk_events_packed),
        );

        for (i, (name, published, acked, dropped, input_dropped)) in self.inputs.iter().enumerate()
        {
            let prev = before.inputs.get(i).cloned().unwrap_or_default();
            put(
                format!("input.{name}.events.published"),
                published.saturating_sub(prev.1),
            );
            put(
                format!("input.{name}.events.acked"),
                acked.saturating_sub(prev.2),
            );
            put(
                format!("input.{name}.events.dropped"),
                dropped.saturating_sub(prev.3),
            );
            put(
                format!("input.{name}.lines.dropped"),
                input_dropped.saturating_sub(prev.4),
            );
        }
        if let Some(state) = self.output_state() {
            out.insert("output.state".into(), state.into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_reloads_and_the_key_expiry_gauge_reach_the_metrics_line() {
        let m = Metrics::default();
        let before = m.snapshot();
        crate::credentials::reload::count_reload();
        crate::credentials::reload::count_reload();
        // 3600 s left, stored plus one so that 0 means "no expiry known".
        m.api_key_expiry_s_plus_one.store(3601, Ordering::Relaxed);
        let now = m.snapshot();
        assert_eq!(now.api_key_expires_in_s, Some(3600));
        let fields = now.nonzero_since(&before);
        // Other tests of this process may reload too: at least these two.
        assert!(fields["output.credentials.reloads"].as_u64() >= Some(2));
        assert_eq!(fields["output.credentials.api_key_expires_in_s"], 3600);
        // A gauge, shown while it holds, unlike the counter.
        let later = m.snapshot().nonzero_since(&now);
        assert_eq!(later["output.credentials.api_key_expires_in_s"], 3600);
    }
}
