//! Per-host counters and an ACK latency histogram, cheap enough to bump per window.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (milliseconds) of the ACK latency buckets; one more bucket holds the rest.
pub const LATENCY_BOUNDS_MS: [u64; 14] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000,
];

/// Why a connection attempt or a connection failed, for the error counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Name resolution, TCP connect or the SOCKS5 handshake.
    Connect,
    /// The TLS handshake (certificates, names, versions).
    Tls,
    /// No ACK within `timeout`.
    Timeout,
    /// The server answered something that is not a valid ACK.
    Protocol,
    /// The connection broke while writing or reading.
    Io,
}

impl ErrorKind {
    /// Every kind, in counter order.
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Connect,
        ErrorKind::Tls,
        ErrorKind::Timeout,
        ErrorKind::Protocol,
        ErrorKind::Io,
    ];

    /// The name used in logs and the summary.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Io => "io",
        }
    }
}

/// Counters of one Logstash host, shared by its workers.
#[derive(Debug)]
pub struct HostMetrics {
    /// `host:port` as configured.
    pub host: String,
    /// Windows written.
    pub windows: AtomicU64,
    /// Batches fully acknowledged.
    pub batches: AtomicU64,
    /// Events acknowledged.
    pub events_acked: AtomicU64,
    /// Events handed back for another attempt after a failure on this host.
    pub retries: AtomicU64,
    /// Connections established.
    pub connections: AtomicU64,
    /// Times the balancer ejected this endpoint for being far slower than the others.
    pub ejections: AtomicU64,
    /// Addresses that joined or left this host's DNS answer (`dns.expand`).
    pub dns_changes: AtomicU64,
    errors: [AtomicU64; 5],
    latency: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
    /// Sum of all recorded latencies, microseconds (a Prometheus histogram's `_sum`).
    latency_sum_us: AtomicU64,
}

impl HostMetrics {
    /// Zeroed counters for `host`.
    pub fn new(host: String) -> Self {
        Self {
            host,
            windows: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            events_acked: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
            dns_changes: AtomicU64::new(0),
            errors: Default::default(),
            latency: Default::default(),
            latency_sum_us: AtomicU64::new(0),
        }
    }

    /// Counts one error of `kind`.
    pub fn error(&self, kind: ErrorKind) {
        self.errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Errors of `kind` so far.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize].load(Ordering::Relaxed)
    }

    /// Records the time from writing a window to its final ACK.
    pub fn ack_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Sum of the recorded latencies.
    pub fn latency_sum(&self) -> Duration {
        Duration::from_micros(self.latency_sum_us.load(Ordering::Relaxed))
    }

    /// Counts per latency bucket (see [`LATENCY_BOUNDS_MS`]; the last is "above").
    pub fn latency_counts(&self) -> Vec<u64> {
        self.latency
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// The upper bound (ms) of the bucket holding quantile `q` of the latencies, `None`
    /// without samples or when it falls into the open last bucket.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<u64> {
        let counts = self.latency_counts();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return LATENCY_BOUNDS_MS.get(i).copied();
            }
        }
        None
    }

    /// One line for the log: counters, errors by kind and latency quantiles.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "connections={} windows={} batches={} events_acked={} retries={} ejections={} dns_changes={}",
            self.connections.load(Ordering::Relaxed),
            self.windows.load(Ordering::Relaxed),
            self.batches.load(Ordering::Relaxed),
            self.events_acked.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
            self.ejections.load(Ordering::Relaxed),
            self.dns_changes.load(Ordering::Relaxed),
        );
        for kind in ErrorKind::ALL {
            let _ = write!(s, " errors_{}={}", kind.name(), self.errors(kind));
        }
        for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
            match self.latency_quantile_ms(q) {
                Some(ms) => {
                    let _ = write!(s, " ack_{name}_ms<={ms}");
                }
                None => {
                    let _ = write!(s, " ack_{name}_ms=n/a");
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_and_quantiles() {
        let m = HostMetrics::new("h:1".into());
        assert_eq!(m.latency_quantile_ms(0.5), None);
        for ms in [0, 1, 3, 3, 40, 999, 1000, 60_000] {
            m.ack_latency(Duration::from_millis(ms));
        }
        let c = m.latency_counts();
        assert_eq!(c[0], 2, "0 and 1 ms");
        assert_eq!(c[2], 2, "3 ms twice in (2, 5]");
        assert_eq!(c[5], 1);
        assert_eq!(c[9], 2, "999 and 1000 in (500, 1000]");
        assert_eq!(c[14], 1, "above 30 s");
        assert_eq!(m.latency_quantile_ms(0.5), Some(5));
        assert_eq!(m.latency_quantile_ms(0.75), Some(1000));
        assert_eq!(m.latency_quantile_ms(1.0), None);
    }

    #[test]
    fn summary_names_every_error_kind() {
        let m = HostMetrics::new("h:1".into());
        m.error(ErrorKind::Timeout);
        m.error(ErrorKind::Timeout);
        m.error(ErrorKind::Tls);
        let s = m.summary();
        assert!(s.contains("errors_timeout=2"), "{s}");
        assert!(s.contains("errors_tls=1 "), "{s}");
        assert!(s.contains("errors_connect=0"), "{s}");
    }
}
