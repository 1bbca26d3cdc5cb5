//! The monitoring endpoint (`http.*`, Beats' names): `GET /` (who this is), `/stats`
//! (libbeat's JSON shape, so Metricbeat's `beat` module and existing dashboards read it),
//! `/state`, and `/metrics` (Prometheus text format).
//!
//! It only reads: no route changes skidder's state, and none shows a secret or an event.
//! `?pretty` (any query containing it, as Beats) indents the JSON.
//!
//! `/stats` keys that skidder has no counter for are present with 0 (Metricbeat's schema
//! fails on a missing key); docs/http.md lists which ones and what each counter means here.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::json;

use super::auth::EndpointAuth;
use super::{
    json_reply, message_reply, Bind, Exposure, Handler, HttpError, Peer, Reply, ServerSettings,
};
use crate::agent::Agent;
use crate::config::{ClientAuthentication, HttpConfig};
use crate::credentials::{TlsSettings, TlsSource};
use crate::outputs::logstash::metrics::{ErrorKind, HostMetrics, LATENCY_BOUNDS_MS};
use crate::pipeline::Metrics;
use crate::telemetry::ResourceUsage;
use std::sync::atomic::Ordering;

/// A validated `http.*` section, ready to start.
#[derive(Debug)]
pub struct Plan {
    server: ServerSettings,
    exposure: Exposure,
    auth: EndpointAuth,
}

impl Plan {
    /// Validates `http.*` (TLS material is loaded now).
    ///
    /// # Errors
    /// [`HttpError::Invalid`] naming the key.
    pub fn new(c: &HttpConfig) -> Result<Self, HttpError> {
        let invalid = |key: &str, reason: String| HttpError::Invalid {
            key: key.to_string(),
            reason,
        };
        let auth = EndpointAuth::from_config(&c.auth).map_err(|(k, r)| invalid(k, r))?;
        let settings =
            TlsSettings::from_config(&c.ssl).map_err(|e| invalid("http.ssl", e.to_string()))?;
        let client_certs = settings.is_enabled()
            && settings.client_authentication() == ClientAuthentication::Required;
        let tls = if settings.is_enabled() {
            Some(Arc::new(
                TlsSource::server(settings).map_err(|e| invalid("http.ssl", e.to_string()))?,
            ))
        } else {
            None
        };
        let bind = Bind::parse(&c.host, c.port);
        if matches!(&bind, Bind::Tcp { host, .. } if host.is_empty()) {
            return Err(invalid("http.host", "is empty".into()));
        }
        Ok(Self {
            exposure: Exposure {
                tls: tls.is_some(),
                authenticated: auth.is_required() || client_certs,
                allow_insecure: c.allow_insecure,
            },
            server: ServerSettings {
                name: "http".into(),
                key: "http.host".into(),
                bind,
                tls,
                max_connections: 64,
                read_timeout: std::time::Duration::from_secs(10),
                idle_timeout: std::time::Duration::from_secs(60),
                max_header_size: 64 * 1024,
            },
            auth,
        })
    }

    /// Binds and serves on the current runtime.
    ///
    /// # Errors
    /// [`HttpError`]: an exposed address without TLS and authentication (and no
    /// `http.allow_insecure`), or one that cannot be bound.
    pub fn start(
        self,
        metrics: Arc<Metrics>,
        agent: &Agent,
        beat: &str,
        output: &str,
        inputs: &[String],
    ) -> Result<(), HttpError> {
        self.exposure
            .check(&self.server.bind, "http.host", "http.allow_insecure")?;
        let listener = super::bind(&self.server)?;
        super::announce(&self.server, &listener, "monitoring endpoint");
        let identity = Identity {
            beat: beat.to_string(),
            hostname: agent.hostname.clone(),
            uuid: agent.id.clone(),
            ephemeral_id: agent.ephemeral_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            output: output.to_string(),
            inputs: inputs.to_vec(),
        };
        if let Some(tls) = &self.server.tls {
            metrics.add_certificate("http.ssl", Arc::clone(tls));
        }
        let handler = Arc::new(Monitoring::new(metrics, identity, self.auth));
        super::serve(listener, self.server, handler);
        Ok(())
    }
}

/// What the endpoint says about this process, fixed at start.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The beat name (`skidder`, or the `index` name as `@metadata.beat`).
    pub beat: String,
    /// The host name.
    pub hostname: String,
    /// The agent id: stable across restarts when `path.data` is kept (`crate::agent`).
    pub uuid: String,
    /// New for each run.
    pub ephemeral_id: String,
    /// skidder's version.
    pub version: String,
    /// The enabled output's key (`output.logstash`).
    pub output: String,
    /// The inputs' names.
    pub inputs: Vec<String>,
}

/// The `/`, `/stats`, `/state`, `/metrics` handler.
#[derive(Debug)]
pub struct Monitoring {
    metrics: Arc<Metrics>,
    identity: Identity,
    auth: EndpointAuth,
    started: Instant,
}

impl Monitoring {
    /// A handler over `metrics`.
    pub fn new(metrics: Arc<Metrics>, identity: Identity, auth: EndpointAuth) -> Self {
        Self {
            metrics,
            identity,
            auth,
            started: Instant::now(),
        }
    }

    /// The reply to `method path?query` (with `allowed` saying whether the request
    /// authenticated): pure apart from reading the counters and /proc.
    pub fn answer(&self, method: &Method, path: &str, query: &str, allowed: bool) -> Reply {
        if !allowed {
            let mut r = message_reply(StatusCode::UNAUTHORIZED, "authentication required");
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer, Basic realm=\"skidder\""),
            );
            return r;
        }
        if method != Method::GET && method != Method::HEAD {
            let mut r = message_reply(StatusCode::METHOD_NOT_ALLOWED, "only GET is served");
            r.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static("GET, HEAD"),
            );
            return r;
        }
        let pretty = query.contains("pretty");
        let body = match path {
            "/" => self.root(),
            "/stats" => self.stats(),
            "/state" => self.state(),
            "/metrics" => {
                let mut r = json_reply(StatusCode::OK, self.prometheus());
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(
                        "text/plain; version=0.0.4; charset=utf-8",
                    ),
                );
                return r;
            }
            _ => return message_reply(StatusCode::NOT_FOUND, "not found"),
        };
        let text = if pretty {
            serde_json::to_string_pretty(&body)
        } else {
            serde_json::to_string(&body)
        }
        .unwrap_or_default();
        json_reply(StatusCode::OK, text)
    }

    /// `GET /`: Beats' keys.
    pub fn root(&self) -> serde_json::Value {
        let id = &self.identity;
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        json!({
            "beat": id.beat,
            "binary_arch": std::env::consts::ARCH,
            "build_commit": "unknown",
            "build_time": "unknown",
            "elastic_licensed": false,
            "ephemeral_id": id.ephemeral_id,
            "gid": gid.to_string(),
            "hostname": id.hostname,
            "name": id.hostname,
            "uid": uid.to_string(),
            "username": std::env::var("USER").unwrap_or_default(),
            "uuid": id.uuid,
            "version": id.version,
        })
    }

    /// `GET /state`.
    pub fn state(&self) -> serde_json::Value {
        let id = &self.identity;
        let output = id.output.strip_prefix("output.").unwrap_or(&id.output);
        json!({
            "beat": { "name": id.hostname },
            "host": { "hostname": id.hostname, "architecture": std::env::consts::ARCH, "os": { "platform": std::env::consts::OS } },
            "input": { "count": id.inputs.len(), "names": id.inputs },
            "management": { "enabled": false },
            "module": { "count": 0, "names": [] },
            "output": { "name": output },
            "queue": { "name": "mem" },
            "service": { "id": id.uuid, "name": id.beat, "version": id.version },
        })
    }

    /// `GET /stats`: libbeat's shape and types.
    pub fn stats(&self) -> serde_json::Value {
        let s = self.metrics.snapshot();
        let usage = ResourceUsage::now();
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (user, system) = (ms(usage.user), ms(usage.system));
        let rss = process_rss_bytes();
        let (soft, hard) = open_file_limits();
        let unsettled = s.published.saturating_sub(s.acked + s.dropped);
        let output = self
            .identity
            .output
            .strip_prefix("output.")
            .unwrap_or(&self.identity.output)
            .to_string();
        let load = load_average();
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let norm = |l: f64| (l / cores as f64 * 1000.0).round() / 1000.0;
        json!({
            "beat": {
                "cpu": {
                    "system": { "ticks": system, "time": { "ms": system } },
                    "user": { "ticks": user, "time": { "ms": user } },
                    "total": { "ticks": user + system, "time": { "ms": user + system }, "value": user + system },
                },
                "handles": { "open": open_handles(), "limit": { "hard": hard, "soft": soft } },
                "info": {
                    "ephemeral_id": self.identity.ephemeral_id,
                    "uptime": { "ms": ms(self.started.elapsed()) },
                    "version": self.identity.version,
                },
                "memstats": {
                    "gc_next": 0,
                    "memory_alloc": rss,
                    "memory_sys": rss,
                    "memory_total": rss,
                    "rss": rss,
                },
                "runtime": { "goroutines": thread_count() },
            },
            "libbeat": {
                "config": {
                    "module": { "running": 0, "starts": 0, "stops": 0 },
                    "reloads": 0,
                    "scans": 0,
                },
                "output": {
                    "type": output,
                    "events": {
                        "acked": s.acked,
                        "active": unsettled,
                        "batches": s.batches,
                        "dropped": s.dropped,
                        "duplicates": 0,
                        "failed": s.failed,
                        "toomany": 0,
                        "total": s.acked + s.dropped + s.failed + unsettled,
                    },
                    "read": { "bytes": 0, "errors": 0 },
                    "write": { "bytes": s.output_bytes, "errors": s.output_errors },
                },
                "pipeline": {
                    "clients": s.inputs.len(),
                    "events": {
                        "active": unsettled,
                        "dropped": s.dropped,
                        "failed": s.failed,
                        "filtered": 0,
                        "published": s.published,
                        "retry": s.retried,
                        "total": s.published,
                    },
                    "queue": {
                        "acked": s.acked,
                        "max_events": s.queue_capacity,
                        "filled": {
                            "events": s.queue_filled,
                            "pct": if s.queue_capacity == 0 { 0.0 } else { s.queue_filled as f64 / s.queue_capacity as f64 },
                        },
                    },
                },
            },
            "system": {
                "cpu": { "cores": cores },
                "load": {
                    "1": load[0], "5": load[1], "15": load[2],
                    "norm": { "1": norm(load[0]), "5": norm(load[1]), "15": norm(load[2]) },
                },
            },
            // Beyond libbeat's shape: output.logstash per endpoint (configured host, or
            // address with `dns.expand`).
            "skidder": { "output": { "logstash": { "endpoints": self.logstash_endpoints() } } },
        })
    }

    /// Per `output.logstash` endpoint: counters and ACK latency quantiles (bucket bounds, ms;
    /// `null` without samples or above the last bound).
    fn logstash_endpoints(&self) -> serde_json::Value {
        let all: Vec<serde_json::Value> = self
            .metrics
            .logstash_hosts()
            .iter()
            .map(|h| {
                json!({
                    "host": h.host,
                    "connections": h.connections.load(Ordering::Relaxed),
                    "windows": h.windows.load(Ordering::Relaxed),
                    "events": { "acked": h.events_acked.load(Ordering::Relaxed), "retried": h.retries.load(Ordering::Relaxed) },
                    "ejections": h.ejections.load(Ordering::Relaxed),
                    "dns_changes": h.dns_changes.load(Ordering::Relaxed),
                    "ack_latency_ms": {
                        "p50": h.latency_quantile_ms(0.5),
                        "p90": h.latency_quantile_ms(0.9),
                        "p99": h.latency_quantile_ms(0.99),
                    },
                })
            })
            .collect();
        serde_json::Value::Array(all)
    }

    /// `GET /metrics`: the same counters in Prometheus' text format (0.0.4).
    pub fn prometheus(&self) -> String {
        let s = self.metrics.snapshot();
        let usage = ResourceUsage::now();
        let mut out = String::new();
        let one = |v: u64| vec![(String::new(), v as f64)];
        family(
            &mut out,
            "pipeline_events_published_total",
            "counter",
            "Events accepted into the queue.",
            &one(s.published),
        );
        family(
            &mut out,
            "output_events_acked_total",
            "counter",
            "Events the output delivered.",
            &one(s.acked),
        );
        family(
            &mut out,
            "output_events_dropped_total",
            "counter",
            "Events given up for good by a configured policy.",
            &one(s.dropped),
        );
        family(
            &mut out,
            "output_events_failed_total",
            "counter",
            "Events that failed one delivery attempt.",
            &one(s.failed),
        );
        family(
            &mut out,
            "pipeline_events_retry_total",
            "counter",
            "Events put back for another attempt.",
            &one(s.retried),
        );
        family(
            &mut out,
            "output_batches_total",
            "counter",
            "Batches handed to the output.",
            &one(s.batches),
        );
        family(
            &mut out,
            "output_write_bytes_total",
            "counter",
            "Bytes the output wrote.",
            &one(s.output_bytes),
        );
        family(
            &mut out,
            "output_write_errors_total",
            "counter",
            "Failed connections and requests of the output.",
            &one(s.output_errors),
        );
        family(
            &mut out,
            "queue_filled_events",
            "gauge",
            "Events in the queue or in flight.",
            &one(s.queue_filled),
        );
        family(
            &mut out,
            "queue_max_events",
            "gauge",
            "Queue capacity (queue.mem.events).",
            &one(s.queue_capacity),
        );
        family(
            &mut out,
            "output_failover_switches_total",
            "counter",
            "Switches between the primary and the fallback output.",
            &one(s.output_switches),
        );
        family(
            &mut out,
            "output_workers_backing_off",
            "gauge",
            "Output workers waiting out a backoff after a failure (destination down for them).",
            &one(s.output_backing_off),
        );
        let full = u64::from(s.queue_capacity > 0 && s.queue_filled >= s.queue_capacity);
        family(
            &mut out,
            "queue_full",
            "gauge",
            "1 while the queue is full and inputs are blocked.",
            &one(full),
        );
        let per_input = |f: fn(&(String, u64, u64, u64, u64)) -> u64| -> Vec<(String, f64)> {
            s.inputs
                .iter()
                .map(|i| (format!("{{input=\"{}\"}}", label(&i.0)), f(i) as f64))
                .collect()
        };
        family(
            &mut out,
            "input_events_published_total",
            "counter",
            "Events an input handed to the queue.",
            &per_input(|i| i.1),
        );
        family(
            &mut out,
            "input_events_acked_total",
            "counter",
            "Events of an input the output acknowledged.",
            &per_input(|i| i.2),
        );
        family(
            &mut out,
            "input_events_dropped_total",
            "counter",
            "Events of an input the output dropped by policy.",
            &per_input(|i| i.3),
        );
        family(
            &mut out,
            "input_records_dropped_total",
            "counter",
            "Records an input refused itself.",
            &per_input(|i| i.4),
        );
        let hosts = self.metrics.logstash_hosts();
        let per_host = |f: &dyn Fn(&HostMetrics) -> u64| -> Vec<(String, f64)> {
            hosts
                .iter()
                .map(|h| (format!("{{host=\"{}\"}}", label(&h.host)), f(h) as f64))
                .collect()
        };
        family(
            &mut out,
            "logstash_connections_total",
            "counter",
            "Connections established to a Logstash host.",
            &per_host(&|h| h.connections.load(Ordering::Relaxed)),
        );
        family(
            &mut out,
            "logstash_windows_total",
            "counter",
            "Windows written to a Logstash host.",
            &per_host(&|h| h.windows.load(Ordering::Relaxed)),
        );
        family(
            &mut out,
            "logstash_events_acked_total",
            "counter",
            "Events a Logstash host acknowledged.",
            &per_host(&|h| h.events_acked.load(Ordering::Relaxed)),
        );
        family(
            &mut out,
            "logstash_ejections_total",
            "counter",
            "Times a Logstash endpoint was ejected by the balancer for being far slower than the others.",
            &per_host(&|h| h.ejections.load(Ordering::Relaxed)),
        );
        family(
            &mut out,
            "logstash_dns_changes_total",
            "counter",
            "Addresses that joined or left a Logstash host's DNS answer (dns.expand).",
            &per_host(&|h| h.dns_changes.load(Ordering::Relaxed)),
        );
        family(
            &mut out,
            "logstash_retries_total",
            "counter",
            "Events handed back for another attempt after a failure on a Logstash host.",
            &per_host(&|h| h.retries.load(Ordering::Relaxed)),
        );
        let errors: Vec<(String, f64)> = hosts
            .iter()
            .flat_map(|h| {
                ErrorKind::ALL.iter().map(move |k| {
                    (
                        format!("{{host=\"{}\",kind=\"{}\"}}", label(&h.host), k.name()),
                        h.errors(*k) as f64,
                    )
                })
            })
            .collect();
        family(
            &mut out,
            "logstash_errors_total",
            "counter",
            "Connection and protocol errors by Logstash host and kind.",
            &errors,
        );
        if !hosts.is_empty() {
            let name = "skidder_logstash_ack_latency_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Time from writing a window to its final ACK."
            );
            let _ = writeln!(out, "# TYPE {name} histogram");
            for h in &hosts {
                let host = label(&h.host);
                let counts = h.latency_counts();
                let mut cumulative = 0;
                for (i, c) in counts.iter().enumerate() {
                    cumulative += c;
                    let le = LATENCY_BOUNDS_MS
                        .get(i)
                        .map_or("+Inf".to_string(), |ms| format!("{}", *ms as f64 / 1000.0));
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{host=\"{host}\",le=\"{le}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_sum{{host=\"{host}\"}} {}",
                    h.latency_sum().as_secs_f64()
                );
                let _ = writeln!(out, "{name}_count{{host=\"{host}\"}} {cumulative}");
            }
        }
        let now = time::OffsetDateTime::now_utc();
        let certs: Vec<(String, f64)> = self
            .metrics
            .certificates()
            .iter()
            .filter_map(|(key, source)| {
                let left = (source.not_after()? - now).whole_seconds();
                Some((format!("{{key=\"{}\"}}", label(key)), left as f64))
            })
            .collect();
        family(
            &mut out,
            "certificate_expiry_seconds",
            "gauge",
            "Seconds until our TLS certificate expires (negative: expired).",
            &certs,
        );
        // Read by output.elasticsearch at start, hourly and after each rotation; absent
        // while unknown or when the key never expires.
        let api_key: Vec<(String, f64)> = self
            .metrics
            .api_key_expiry_s_plus_one
            .load(Ordering::Relaxed)
            .checked_sub(1)
            .map(|left| (String::new(), left as f64))
            .into_iter()
            .collect();
        family(
            &mut out,
            "api_key_expiry_seconds",
            "gauge",
            "Seconds until output.elasticsearch's API key expires.",
            &api_key,
        );
        family(
            &mut out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time.",
            &[(String::new(), usage.cpu().as_secs_f64())],
        );
        family(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident set size.",
            &one(process_rss_bytes()),
        );
        let uptime = self.started.elapsed().as_secs_f64();
        family(
            &mut out,
            "uptime_seconds",
            "gauge",
            "Time since the endpoint started.",
            &[(String::new(), uptime)],
        );
        out
    }
}

/// Writes one metric family: HELP, TYPE and its samples (`labels` already in braces).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP skidder_{name} {help}");
    let _ = writeln!(out, "# TYPE skidder_{name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "skidder_{name}{labels} {v}");
    }
}

/// A Prometheus label value, escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Handler for Monitoring {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        _peer: Peer,
    ) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
        let allowed = self.auth.allows(req.headers());
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let method = req.method().clone();
        // The body is never read: nothing here takes input.
        Box::pin(async move { self.answer(&method, &path, &query, allowed) })
    }
}

/// VmRSS of /proc/self/status in bytes (0 where unreadable).
fn process_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn open_handles() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

fn thread_count() -> u64 {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count() as u64)
}

fn open_file_limits() -> (u64, u64) {
    // SAFETY: getrlimit only writes into the struct we pass.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer, valid resource.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return (0, 0);
    }
    (rl.rlim_cur, rl.rlim_max)
}

fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitoring() -> Monitoring {
        let metrics = Arc::new(Metrics::default());
        metrics.add_input("web");
        Monitoring::new(
            metrics,
            Identity {
                beat: "skidder".into(),
                hostname: "h".into(),
                uuid: "8d2ff4b9-3c1e-4f0a-9b6e-1a2b3c4d5e6f".into(),
                ephemeral_id: "0f1e2d3c-4b5a-4968-8776-655443322110".into(),
                version: "0.1.0".into(),
                output: "output.logstash".into(),
                inputs: vec!["web".into()],
            },
            EndpointAuth::default(),
        )
    }

    #[test]
    fn routes_and_methods() {
        let m = monitoring();
        for path in ["/", "/stats", "/state", "/metrics"] {
            assert_eq!(
                m.answer(&Method::GET, path, "", true).status(),
                200,
                "{path}"
            );
        }
        assert_eq!(m.answer(&Method::GET, "/nope", "", true).status(), 404);
        assert_eq!(m.answer(&Method::POST, "/stats", "", true).status(), 405);
        assert_eq!(m.answer(&Method::GET, "/stats", "", false).status(), 401);
    }

    #[test]
    fn logstash_endpoints_show_in_stats_metrics_and_the_periodic_line() {
        let m = monitoring();
        let before = m.metrics.snapshot();
        let h = Arc::new(HostMetrics::new("127.0.0.2:5044 (ls.test)".into()));
        m.metrics.add_logstash_hosts(std::slice::from_ref(&h));
        h.windows.fetch_add(3, Ordering::Relaxed);
        h.events_acked.fetch_add(300, Ordering::Relaxed);
        h.ejections.fetch_add(1, Ordering::Relaxed);
        h.dns_changes.fetch_add(2, Ordering::Relaxed);
        for ms in [3, 4, 900] {
            h.ack_latency(std::time::Duration::from_millis(ms));
        }
        let stats = m.stats();
        let e = &stats["skidder"]["output"]["logstash"]["endpoints"][0];
        assert_eq!(e["host"], "127.0.0.2:5044 (ls.test)");
        assert_eq!(e["windows"], 3);
        assert_eq!(e["events"]["acked"], 300);
        assert_eq!(
            (e["ejections"].clone(), e["dns_changes"].clone()),
            (json!(1), json!(2))
        );
        assert_eq!(e["ack_latency_ms"]["p50"], 5);
        assert_eq!(e["ack_latency_ms"]["p90"], 1000);
        let text = m.prometheus();
        for line in [
            "skidder_logstash_ejections_total{host=\"127.0.0.2:5044 (ls.test)\"} 1",
            "skidder_logstash_dns_changes_total{host=\"127.0.0.2:5044 (ls.test)\"} 2",
            "skidder_logstash_windows_total{host=\"127.0.0.2:5044 (ls.test)\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        let period = m.metrics.snapshot().nonzero_since(&before);
        let key = |k: &str| format!("output.logstash.127.0.0.2:5044 (ls.test).{k}");
        assert_eq!(period[&key("windows")], 3);
        assert_eq!(period[&key("events.acked")], 300);
        assert_eq!(period[&key("ejections")], 1);
        assert_eq!(period[&key("ack_latency.p90_ms")], 1000);
    }

    #[test]
    fn the_api_key_expiry_is_a_gauge_once_known() {
        let m = monitoring();
        assert!(!m.prometheus().contains("\nskidder_api_key_expiry_seconds "));
        m.metrics
            .api_key_expiry_s_plus_one
            .store(3601, Ordering::Relaxed);
        assert!(
            m.prometheus()
                .contains("\nskidder_api_key_expiry_seconds 3600\n"),
            "{}",
            m.prometheus()
        );
    }
}
