//! `output.logstash.*` → [`LogstashSettings`]: everything checked once, errors naming keys.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use crate::config::{parse_host_port, HostPort, LogstashOutputConfig, LOGSTASH_DEFAULT_PORT};
use crate::credentials::{CredentialError, Secret, TlsSettings};
use crate::pipeline::PackSettings;
use skidder_protocol::{Compressor, Flate2Compressor};

use super::compress::WireCompressor;

/// A `host:port` to connect to, kept as written (names are resolved at each connect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Name or address, without IPv6 brackets.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl From<HostPort> for Endpoint {
    fn from(hp: HostPort) -> Self {
        Self {
            host: hp.host,
            port: hp.port,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `proxy_url` (SOCKS5 only, as Beats' Logstash output).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// The proxy itself.
    pub endpoint: Endpoint,
    /// User name and password from the URL, if any.
    pub auth: Option<(String, Secret)>,
    /// `proxy_use_local_resolver`: resolve the Logstash host here and hand the proxy an
    /// address; otherwise the proxy resolves the name.
    pub local_resolver: bool,
}

/// Validated `output.logstash` settings.
#[derive(Debug, Clone)]
pub struct LogstashSettings {
    /// `hosts`, in order.
    pub hosts: Vec<Endpoint>,
    /// `loadbalance`.
    pub loadbalance: bool,
    /// `loadbalance_strategy`.
    pub loadbalance_strategy: crate::config::LoadbalanceStrategy,
    /// `worker`: connections per host (at least 1).
    pub worker: usize,
    /// `pipelining`: windows in flight per connection; 0 means 1 (wait for each ACK).
    pub pipelining: usize,
    /// `compression_level` 0..=9.
    pub compression_level: u32,
    /// `bulk_max_size`.
    pub bulk_max_size: usize,
    /// `slow_start`.
    pub slow_start: bool,
    /// `timeout`: connect, handshake, write, and the wait for each ACK.
    pub timeout: Duration,
    /// `backoff.init`.
    pub backoff_init: Duration,
    /// `backoff.max`.
    pub backoff_max: Duration,
    /// `max_retries`; `None` = retry forever (`-1`).
    pub max_retries: Option<u32>,
    /// `event_id: hash`: stamp `@metadata._id` on every event sent.
    pub stamp_ids: bool,
    /// `ttl`; `None` = connections live until they fail.
    pub ttl: Option<Duration>,
    /// `escape_html`.
    pub escape_html: bool,
    /// `index`, lower-cased: `@metadata.beat`.
    pub index: String,
    /// `proxy_url`.
    pub proxy: Option<ProxySettings>,
    /// `ssl.*` when TLS is on.
    pub tls: Option<TlsSettings>,
    /// `dns.*`.
    pub dns: super::dns::DnsSettings,
}

/// A setting of `output.logstash` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A value is out of range or malformed.
    #[error("output.logstash.{key}: {reason}")]
    Invalid {
        /// The key below `output.logstash`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `ssl.*` is invalid.
    #[error("output.logstash.{0}")]
    Tls(#[from] CredentialError),
}

fn invalid(key: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl LogstashSettings {
    /// Checks `cfg`.
    ///
    /// # Errors
    /// [`SettingsError`] naming the key: no hosts or a malformed one, a level outside 0..=9,
    /// zero `worker` or `bulk_max_size`, `max_retries` below -1, a zero `timeout`, a
    /// `proxy_url` that is not `socks5://host:port`, or invalid `ssl.*`.
    pub fn from_config(cfg: &LogstashOutputConfig) -> Result<Self, SettingsError> {
        if cfg.hosts.is_empty() {
            return Err(invalid("hosts", "at least one host:port is needed"));
        }
        let hosts = cfg
            .hosts
            .iter()
            .map(|h| {
                parse_host_port(h, LOGSTASH_DEFAULT_PORT)
                    .map(Endpoint::from)
                    .map_err(|e| invalid("hosts", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if cfg.compression_level > 9 {
            return Err(invalid(
                "compression_level",
                format!("{} is outside 0..=9", cfg.compression_level),
            ));
        }
        if cfg.worker == 0 {
            return Err(invalid("worker", "must be at least 1"));
        }
        if cfg.bulk_max_size == 0 {
            return Err(invalid("bulk_max_size", "must be at least 1"));
        }
        let max_retries = match cfg.max_retries {
            -1 => None,
            n => Some(u32::try_from(n).map_err(|_| {
                invalid(
                    "max_retries",
                    format!("{n} is not -1 (forever) or 0 and above"),
                )
            })?),
        };
        if cfg.timeout.is_zero() {
            return Err(invalid("timeout", "must be above 0s"));
        }
        let proxy = cfg
            .proxy_url
            .as_deref()
            .map(|u| parse_proxy(u, cfg.proxy_use_local_resolver))
            .transpose()?;
        let tls = TlsSettings::from_config(&cfg.ssl)?;
        let dns = dns_settings(cfg, proxy.is_some())?;
        Ok(Self {
            hosts,
            loadbalance: cfg.loadbalance,
            loadbalance_strategy: cfg.loadbalance_strategy,
            worker: cfg.worker,
            pipelining: cfg.pipelining,
            compression_level: cfg.compression_level,
            bulk_max_size: cfg.bulk_max_size,
            slow_start: cfg.slow_start,
            timeout: cfg.timeout.get(),
            backoff_init: cfg.backoff.init.get(),
            backoff_max: cfg.backoff.max.get(),
            max_retries,
            ttl: (!cfg.ttl.is_zero()).then(|| cfg.ttl.get()),
            stamp_ids: cfg.event_id == crate::config::EventIdMode::Hash,
            escape_html: cfg.escape_html,
            index: cfg.index.as_deref().unwrap_or("skidder").to_lowercase(),
            proxy,
            tls: tls.is_enabled().then_some(tls),
            dns,
        })
    }

    /// Windows allowed in flight on one connection.
    pub fn windows_in_flight(&self) -> usize {
        self.pipelining.max(1)
    }

    /// Whether a disk queue in front may store this output's windows ready to send
    /// (docs/disk-queue.md §11): only when every window is compressed, full size from the
    /// start, and sent without stamping ids into its events.
    pub fn packs(&self) -> bool {
        self.compression_level > 0 && !self.slow_start && !self.stamp_ids
    }

    /// How a disk queue packs windows for this output, when it [packs](Self::packs).
    pub fn pack_settings(&self) -> Option<PackSettings> {
        let level = self.compression_level;
        self.packs().then(|| PackSettings {
            max_events: self.bulk_max_size.max(1),
            compressor: Arc::new(move || match WireCompressor::for_level(level) {
                Some(c) => Box::new(c) as Box<dyn Compressor + Send>,
                // `packs` says the level is above 0, where there is always a compressor.
                None => Box::new(Flate2Compressor::new(level)),
            }),
        })
    }
}

/// `dns.*`: `expand` needs `loadbalance` and no proxy; nameservers are `ip[:port]`.
fn dns_settings(
    cfg: &LogstashOutputConfig,
    proxied: bool,
) -> Result<super::dns::DnsSettings, SettingsError> {
    let d = &cfg.dns;
    if d.expand && !cfg.loadbalance {
        return Err(invalid(
            "dns.expand",
            "needs loadbalance: true (every address is an endpoint to balance over)",
        ));
    }
    if d.expand && proxied {
        return Err(invalid(
            "dns.expand",
            "cannot be used with proxy_url (the proxy resolves names)",
        ));
    }
    if d.srv && !d.expand {
        return Err(invalid("dns.srv", "needs dns.expand: true"));
    }
    if d.refresh_interval.is_zero() {
        return Err(invalid("dns.refresh_interval", "must be above 0s"));
    }
    let nameservers = d
        .nameservers
        .iter()
        .map(|n| {
            n.parse::<std::net::SocketAddr>()
                .or_else(|_| {
                    n.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .map(|ip| std::net::SocketAddr::new(ip, 53))
                })
                .map_err(|_| {
                    invalid(
                        "dns.nameservers",
                        format!("{n:?} is not an ip or ip:port (names cannot be used here)"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(super::dns::DnsSettings {
        expand: d.expand,
        srv: d.srv,
        refresh_interval: d.refresh_interval.get(),
        nameservers,
    })
}

fn parse_proxy(text: &str, local_resolver: bool) -> Result<ProxySettings, SettingsError> {
    let url = url::Url::parse(text).map_err(|e| invalid("proxy_url", format!("{e}")))?;
    if url.scheme() != "socks5" {
        return Err(invalid(
            "proxy_url",
            format!("scheme {:?} is not supported; use socks5://", url.scheme()),
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid("proxy_url", "no proxy host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url
        .port()
        .ok_or_else(|| invalid("proxy_url", "no proxy port (socks5://host:port)"))?;
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let auth = if url.username().is_empty() {
        None
    } else {
        let password = url.password().map(decode).unwrap_or_default();
        Some((decode(url.username()), Secret::new(password)))
    };
    Ok(ProxySettings {
        endpoint: Endpoint { host, port },
        auth,
        local_resolver,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(hosts: &[&str]) -> LogstashOutputConfig {
        LogstashOutputConfig {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..LogstashOutputConfig::default()
        }
    }

    #[test]
    fn beats_defaults() {
        let s = LogstashSettings::from_config(&cfg(&["ls1", "10.0.0.5:5045", "[::1]"])).unwrap();
        assert_eq!(
            s.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            ["ls1:5044", "10.0.0.5:5045", "[::1]:5044"]
        );
        assert!(!s.loadbalance);
        assert_eq!((s.worker, s.pipelining, s.windows_in_flight()), (1, 2, 2));
        assert_eq!((s.compression_level, s.bulk_max_size), (3, 2048));
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(
            (s.backoff_init, s.backoff_max),
            (Duration::from_secs(1), Duration::from_secs(60))
        );
        assert_eq!(s.max_retries, None, "retry forever by default");
        assert_eq!(s.ttl, None);
        assert_eq!(s.index, "skidder");
        assert!(s.proxy.is_none() && s.tls.is_none());
    }

    #[test]
    fn errors_name_the_key() {
        let mut c = cfg(&[]);
        assert_eq!(
            LogstashSettings::from_config(&c).unwrap_err().to_string(),
            "output.logstash.hosts: at least one host:port is needed"
        );
        c = cfg(&["a:99999"]);
        assert!(LogstashSettings::from_config(&c)
            .unwrap_err()
            .to_string()
            .starts_with("output.logstash.hosts: invalid host \"a:99999\""));
        c = cfg(&["a"]);
        c.max_retries = -2;
        assert!(LogstashSettings::from_config(&c)
            .unwrap_err()
            .to_string()
            .starts_with("output.logstash.max_retries: -2"));
        c.max_retries = -1;
        assert_eq!(LogstashSettings::from_config(&c).unwrap().max_retries, None);
        c.compression_level = 10;
        assert!(LogstashSettings::from_config(&c)
            .unwrap_err()
            .to_string()
            .starts_with("output.logstash.compression_level"));
        c.compression_level = 1;
        c.proxy_url = Some("http://p:8080".into());
        assert!(LogstashSettings::from_config(&c)
            .unwrap_err()
            .to_string()
            .contains("use socks5://"));
        c.proxy_url = Some("socks5://p".into());
        assert!(LogstashSettings::from_config(&c)
            .unwrap_err()
            .to_string()
            .contains("no proxy port"));
    }

    #[test]
    fn dns_settings_are_checked() {
        let mut c = cfg(&["ls.test"]);
        c.dns.expand = true;
        assert_eq!(
            LogstashSettings::from_config(&c).unwrap_err().to_string(),
            "output.logstash.dns.expand: needs loadbalance: true (every address is an endpoint to balance over)"
        );
        c.loadbalance = true;
        c.dns.nameservers = vec!["127.0.0.1:5353".into(), "::1".into()];
        let s = LogstashSettings::from_config(&c).unwrap();
        assert_eq!(
            s.dns.nameservers,
            [
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        c.dns.nameservers = vec!["dns.local".into()];
        assert!(LogstashSettings::from_config(&c)
            .unwrap_err()
            .to_string()
            .starts_with("output.logstash.dns.nameservers: \"dns.local\" is not an ip"));
    }

    #[test]
    fn proxy_url_with_credentials() {
        let mut c = cfg(&["a"]);
        c.proxy_url = Some("socks5://us%40er:p%3Ass@proxy.local:1080".into());
        c.proxy_use_local_resolver = true;
        let p = LogstashSettings::from_config(&c).unwrap().proxy.unwrap();
        assert_eq!(p.endpoint.to_string(), "proxy.local:1080");
        let (user, pass) = p.auth.unwrap();
        assert_eq!(user, "us@er");
        assert_eq!(pass.expose(), "p:ss");
        assert!(p.local_resolver);
        assert!(!format!("{:?}", LogstashSettings::from_config(&c).unwrap()).contains("p:ss"));
    }
}
