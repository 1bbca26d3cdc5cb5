//! DNS discovery for `output.logstash` (`dns.*`): one endpoint per address of a name, kept
//! up to date while skidder runs.
//!
//! ```text
//!  discovery worker (one per configured host, on the shared runtime)
//!    every refresh_interval: resolve ──▶ diff against the current set
//!        joined address ─▶ Fleet endpoint + `worker` address workers (threads, as any worker)
//!        vanished address ─▶ Fleet::remove_endpoint: it takes no new window; its workers
//!                            leave once their windows are acknowledged (drain)
//! ```
//!
//! * `dns.expand: true` (needs `loadbalance: true`, refused with `proxy_url`): each host is
//!   resolved by skidder's own resolver (hickory-resolver; `dns.nameservers`, or the system's
//!   `/etc/resolv.conf` when empty) and every address becomes an endpoint of its own with
//!   `worker` connections, balanced like separate hosts ([`super::balance`]). TLS still checks
//!   the configured name, not the address.
//! * `dns.srv: true`: each host is an SRV name, `_lumberjack._tcp.` prepended unless it starts
//!   with `_`; every target's addresses with the record's port; TLS checks the target name.
//! * Every `dns.refresh_interval` the names are resolved again. New addresses join. A vanished
//!   address drains: its windows in flight finish (if its connection fails instead, their
//!   events go back to the queue for the other endpoints, as after any failure), then its
//!   workers leave. Nothing is lost either way.
//! * A failed lookup (timeout, SERVFAIL, NXDOMAIN, or no address) keeps the last good set
//!   (WARN, once per failure streak); before the first success the name simply has no
//!   endpoint yet and is tried again at the next refresh. A name is never resolved to nothing.
//! * Caching is hickory's: answers live for their TTL, negative answers for the SOA minimum
//!   of the reply (RFC 2308, clamped to hickory's default bounds), so a refresh shorter than
//!   a TTL sees the cached set until it expires.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

use super::balance::EndpointId;
use super::metrics::HostMetrics;
use super::settings::Endpoint;
use super::worker::{LogstashWorker, Role};
use crate::outputs::{OutputError, WorkerFuture};
use crate::pipeline::{BatchSource, Metrics};

/// Validated `output.logstash.dns.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// `dns.expand`: one endpoint per address.
    pub expand: bool,
    /// `dns.srv`: hosts are SRV names.
    pub srv: bool,
    /// `dns.refresh_interval`.
    pub refresh_interval: Duration,
    /// `dns.nameservers`; empty = the system's resolv.conf.
    pub nameservers: Vec<SocketAddr>,
}

/// One address found for a configured host: where to connect and the name TLS checks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Found {
    /// The name TLS checks (the configured host, or the SRV target).
    pub name: String,
    /// The address and port to connect to.
    pub addr: SocketAddr,
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.addr, self.name)
    }
}

/// What a refresh changes: addresses to add and to drain.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// New addresses.
    pub joined: Vec<Found>,
    /// Addresses no longer in the answer.
    pub left: Vec<Found>,
}

/// Applies a lookup to the `current` set. A failure or an empty answer changes nothing
/// (the last good set is kept); otherwise the set becomes the answer.
pub fn apply(current: &mut BTreeSet<Found>, answer: Option<BTreeSet<Found>>) -> Diff {
    let Some(found) = answer.filter(|f| !f.is_empty()) else {
        return Diff::default();
    };
    let diff = Diff {
        joined: found.difference(current).cloned().collect(),
        left: current.difference(&found).cloned().collect(),
    };
    *current = found;
    diff
}

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The system's resolver configuration could not be read.
    #[error("reading the system resolver configuration: {0}")]
    SystemConfig(String),
    /// The lookup failed (timeout, SERVFAIL, no such name, no address).
    #[error("resolving {name}: {reason}")]
    Lookup {
        /// The name asked for.
        name: String,
        /// hickory's reason.
        reason: String,
    },
}

/// skidder's own resolver for `dns.expand`.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl Resolver {
    /// A resolver asking `nameservers` over UDP, or the system's resolv.conf when empty.
    ///
    /// # Errors
    /// [`DnsError::SystemConfig`] when resolv.conf cannot be read.
    pub fn new(nameservers: &[SocketAddr]) -> Result<Self, DnsError> {
        let provider = TokioConnectionProvider::default();
        let builder = if nameservers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| DnsError::SystemConfig(e.to_string()))?
        } else {
            let mut config = ResolverConfig::new();
            for ns in nameservers {
                config.add_name_server(NameServerConfig::new(*ns, Protocol::Udp));
            }
            TokioResolver::builder_with_config(config, provider)
        };
        let mut opts = ResolverOpts::default();
        // Names are used as written: no search domains appended to a fleet's name.
        opts.ndots = 0;
        let builder = builder.with_options(opts);
        Ok(Self {
            inner: builder.build(),
        })
    }

    /// The addresses of `host` (A and AAAA), or with `srv` of every target of its SRV
    /// records.
    ///
    /// # Errors
    /// [`DnsError::Lookup`] naming the name asked for.
    pub async fn resolve(&self, host: &Endpoint, srv: bool) -> Result<BTreeSet<Found>, DnsError> {
        if let Ok(ip) = host.host.parse::<IpAddr>() {
            return Ok(BTreeSet::from([Found {
                name: host.host.clone(),
                addr: SocketAddr::new(ip, host.port),
            }]));
        }
        let fail = |name: &str, e: &dyn std::fmt::Display| DnsError::Lookup {
            name: name.to_string(),
            reason: e.to_string(),
        };
        let mut out = BTreeSet::new();
        if srv {
            let name = if host.host.starts_with('_') {
                host.host.clone()
            } else {
                format!("_lumberjack._tcp.{}", host.host)
            };
            let answer = self
                .inner
                .srv_lookup(fqdn(&name))
                .await
                .map_err(|e| fail(&name, &e))?;
            for rec in answer.iter() {
                let target = rec.target().to_utf8();
                let target = target.trim_end_matches('.').to_string();
                let ips = self
                    .inner
                    .lookup_ip(fqdn(&target))
                    .await
                    .map_err(|e| fail(&target, &e))?;
                for ip in ips.iter() {
                    out.insert(Found {
                        name: target.clone(),
                        addr: SocketAddr::new(ip, rec.port()),
                    });
                }
            }
        } else {
            let ips = self
                .inner
                .lookup_ip(fqdn(&host.host))
                .await
                .map_err(|e| fail(&host.host, &e))?;
            for ip in ips.iter() {
                out.insert(Found {
                    name: host.host.clone(),
                    addr: SocketAddr::new(ip, host.port),
                });
            }
        }
        if out.is_empty() {
            return Err(fail(&host.host, &"no address in the answer"));
        }
        Ok(out)
    }
}

/// The name with a trailing dot, so no search domain is tried.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// One joined address and the endpoint it got.
struct Member {
    found: Found,
    endpoint: EndpointId,
}

/// Runs the discovery worker of `w` (role [`Role::Discover`]): resolves its host every
/// `refresh_interval`, starts `worker` address workers per joined address and drains vanished
/// ones, until the run ends; then waits for its address workers.
pub(super) fn run_discovery(
    w: LogstashWorker,
    source: BatchSource,
    metrics: Arc<Metrics>,
) -> WorkerFuture {
    Box::pin(async move {
        let shared = Arc::clone(w.shared());
        let s = &shared.settings;
        let Some(fleet) = shared.fleet.clone() else {
            return Err(OutputError::Worker {
                worker: format!("skidder-logstash-dns-{}", w.id()),
                reason: "dns.expand needs loadbalance: true".to_string(),
            });
        };
        let index = w.host_index();
        let host = s.hosts[index].clone();
        let host_metrics = Arc::clone(&shared.hosts[index]);
        let resolver = match Resolver::new(&s.dns.nameservers) {
            Ok(r) => r,
            Err(e) => {
                return Err(OutputError::Worker {
                    worker: format!("skidder-logstash-dns-{}", w.id()),
                    reason: e.to_string(),
                })
            }
        };
        let mut current: BTreeSet<Found> = BTreeSet::new();
        let mut members: Vec<Member> = Vec::new();
        let mut children = tokio::task::JoinSet::new();
        let mut failing = false;
        let mut next_id = w.id() * 1000;
        loop {
            let answer = match tokio::time::timeout(s.timeout, resolver.resolve(&host, s.dns.srv))
                .await
            {
                Ok(Ok(found)) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!(host = %host, "DNS answers again");
                    }
                    Some(found)
                }
                Ok(Err(e)) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(host = %host, error = %e, kept = current.len(), "DNS lookup failed; keeping the last good addresses");
                    }
                    None
                }
                Err(_) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(host = %host, kept = current.len(), "DNS lookup timed out; keeping the last good addresses");
                    }
                    None
                }
            };
            let diff = apply(&mut current, answer);
            for found in diff.left {
                if let Some(pos) = members.iter().position(|m| m.found == found) {
                    let m = members.swap_remove(pos);
                    fleet.remove_endpoint(m.endpoint);
                    host_metrics.dns_changes.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(host = %host, address = %m.found, "address left the DNS answer; draining it");
                }
            }
            for found in diff.joined {
                let m = Arc::new(HostMetrics::new(format!("{found}")));
                metrics.add_logstash_hosts(std::slice::from_ref(&m));
                let endpoint = fleet.add_endpoint(Arc::clone(&m));
                host_metrics.dns_changes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(host = %host, address = %found, "address joined from DNS");
                for _ in 0..s.worker.max(1) {
                    next_id += 1;
                    let child = LogstashWorker::with_role(
                        Arc::clone(&shared),
                        vec![index],
                        next_id,
                        Role::Address {
                            found: found.clone(),
                            endpoint,
                            metrics: Arc::clone(&m),
                        },
                    );
                    let run = crate::outputs::Output::run(
                        Box::new(child),
                        source.fork(),
                        Arc::clone(&metrics),
                    );
                    children.spawn(run);
                }
                members.push(Member { found, endpoint });
            }
            tokio::select! {
                () = tokio::time::sleep(s.dns.refresh_interval) => {}
                () = source.finished() => break,
            }
        }
        let mut outcome = Ok(());
        while let Some(r) = children.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => outcome = Err(e),
                Err(e) => {
                    outcome = Err(OutputError::Worker {
                        worker: format!("skidder-logstash-dns-{}", w.id()),
                        reason: format!("an address worker failed: {e}"),
                    })
                }
            }
        }
        drop(w);
        outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(addr: &str) -> Found {
        Found {
            name: "ls.test".into(),
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn an_answer_replaces_the_set_and_names_the_changes() {
        let mut cur = BTreeSet::new();
        let d = apply(&mut cur, Some(BTreeSet::from([f("127.0.0.1:1")])));
        assert_eq!(d.joined, [f("127.0.0.1:1")]);
        let d = apply(
            &mut cur,
            Some(BTreeSet::from([f("127.0.0.2:1"), f("127.0.0.3:1")])),
        );
        assert_eq!(d.joined, [f("127.0.0.2:1"), f("127.0.0.3:1")]);
        assert_eq!(d.left, [f("127.0.0.1:1")]);
        assert_eq!(cur.len(), 2);
    }

    #[test]
    fn a_failure_or_an_empty_answer_keeps_the_last_good_set() {
        let mut cur = BTreeSet::from([f("127.0.0.1:1")]);
        assert_eq!(apply(&mut cur, None), Diff::default());
        assert_eq!(apply(&mut cur, Some(BTreeSet::new())), Diff::default());
        assert_eq!(cur, BTreeSet::from([f("127.0.0.1:1")]));
    }
}
