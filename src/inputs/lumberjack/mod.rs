//! `type: lumberjack` (alias `beats`): a Logstash-compatible Lumberjack endpoint.
//!
//! Beats, go-lumber, pylogbeat and the npm clients connect here exactly as they would to
//! Logstash's beats input. Each connection runs one task built on the protocol crate's
//! [`ReceiverSession`](skidder_protocol::ReceiverSession):
//!
//! ```text
//!  accept (max_connections) ─▶ TLS handshake (10 s) ─▶ connection task
//!                                                        reader:  read ─▶ session.handle_input
//!                                                                 ─▶ poll_batch ─▶ check JSON ─▶ publish
//!                                                                 ─▶ (batch id, watermark) ─▶ bounded channel
//!                                                        writer:  wait_settled(watermark) ─▶ ack_batch
//!                                                                 ─▶ write ACK; ACK 0 every 5 s meanwhile
//! ```
//!
//! # Acknowledgement
//! A window is ACKed (with its highest sequence number, as Logstash) only when every one
//! of its events is *settled* by skidder's output: end-to-end, stronger than Logstash,
//! which ACKs once events are in its queue. "Settled" includes events an output dropped
//! by policy (e.g. an Elasticsearch document rejected as non-indexable, logged at ERROR
//! or dead-lettered there): the client is not asked to resend something that can never
//! succeed, which is what Logstash does too.
//!
//! All connections publish through clones of one input [`Publisher`].
//! After a batch is pushed, the input's `published` counter is its *watermark*: the queue
//! reports an input's settled events in publish order, so once `settled() >= watermark`
//! every event of the batch is settled. Waiting on the input's counter instead of a
//! per-connection one costs nothing (the queue reports ranges strictly in order anyway)
//! and does not register a metrics entry per connection, which would grow without bound
//! on a long-running relay.
//!
//! # Events
//! v2 `J` payloads are passed through byte-for-byte (Beats' `@metadata`, `@timestamp`,
//! `host`, `agent`, ... unchanged); each is checked to be one valid JSON object (a
//! validating scan, no tree is built). Line breaks between JSON tokens (pretty-printed
//! events) become spaces so every event stays one line in `output.file`/`console`.
//! v1 `D` frames become a JSON object once, see [`v1`].
//!
//! `fields`, `fields_under_root` and `tags` are refused for this input with a clear
//! error: a relay, like Logstash's beats input, does not rewrite what Beats sent, and
//! merging keys into raw JSON would risk duplicate keys (`tags` is usually present).
//!
//! # Flow control and isolation
//! Every connection has at most [`MAX_PENDING_BATCHES`] windows waiting for the output;
//! beyond that it stops reading, so TCP pushes back on that client only. A decode error,
//! a bad event, a TLS failure or an idle client ends that connection alone, logged once
//! with the peer address and the reason. Memory per connection is bounded by the limits:
//! the read buffer (4 KiB idle, 128 KiB busy) and one frame (`max_frame_size`). Inflated
//! content is bounded for the whole input: `C` frames are inflated a step at a time with
//! credit from one [`budget`] of `max_decompressed_total` bytes shared by all connections
//! (each step's frames are decoded at once, so a zlib bomb stops at its first byte that is
//! not a frame); a connection that finds it used up waits, see [`budget`] for when it is
//! refused instead. A relay's ACK latency includes the queue's
//! `queue.mem.flush.timeout` for windows smaller than `flush.min_events`; keep it short
//! (`skidder receive` uses 0) when clients send small windows synchronously.

pub mod budget;
mod connection;
mod hello;
pub mod v1;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use skidder_protocol::{Limits, ReceiverConfig};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::{InputError, InputIndex};
use crate::config::{
    parse_host_port, CommonInputConfig, HostPortError, LumberjackInputConfig, LOGSTASH_DEFAULT_PORT,
};
use crate::credentials::{HandshakeReport, TlsSettings, TlsSource};
use crate::pipeline::Publisher;

pub use connection::ConnectionError;

/// Windows of one connection that may wait for the output before it stops reading.
pub const MAX_PENDING_BATCHES: usize = 4;

/// Logstash's `ssl_handshake_timeout` default.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Something that wants to know what the receiver does (`skidder receive` counts with it).
///
/// Called from connection tasks: keep the methods cheap and non-blocking.
pub trait ReceiverObserver: Send + Sync + 'static {
    /// The listener is bound (the port is known even for `:0`).
    fn listening(&self, _addr: SocketAddr) {}
    /// A client finished its TLS handshake: what was negotiated and the certificates it
    /// presented (already verified when client authentication is on).
    fn tls_established(&self, _peer: SocketAddr, _report: &HandshakeReport) {}
    /// A window's events were settled by the output and its ACK written to the client.
    fn acknowledged(&self, _events: &[Bytes]) {}
}

/// A validated `type: lumberjack` input, ready to start.
pub struct LumberjackInput {
    index: InputIndex,
    /// Host and port (0 = any free port).
    host: (String, u16),
    tls: Option<Arc<TlsSource>>,
    inactivity: Duration,
    max_connections: usize,
    session: ReceiverConfig,
    /// `max_decompressed_total`, bytes.
    decompressed_total: usize,
    /// The TLS versions the listener accepts, for refusals ("TLSv1.2 and TLSv1.3").
    accepted_tls: String,
    observer: Option<Arc<dyn ReceiverObserver>>,
}

impl std::fmt::Debug for LumberjackInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LumberjackInput")
            .field("host", &self.host)
            .field("tls", &self.tls.is_some())
            .field("inactivity", &self.inactivity)
            .field("max_connections", &self.max_connections)
            .field("session", &self.session)
            .field("decompressed_total", &self.decompressed_total)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl LumberjackInput {
    /// Validates the settings of input `index`; with TLS the certificate and key are read
    /// now, so `skidder test config` finds a bad file.
    ///
    /// # Errors
    /// [`InputError::Invalid`] naming the key: `fields`/`tags` set, an empty `host`, a zero
    /// limit or timeout, unusable `ssl.*` settings or files.
    pub fn new(
        index: InputIndex,
        common: &CommonInputConfig,
        c: &LumberjackInputConfig,
    ) -> Result<Self, InputError> {
        let invalid =
            |key: &'static str, reason: String| InputError::Invalid { index, key, reason };
        if !common.fields.is_empty() || common.fields_under_root {
            return Err(invalid(
                "fields",
                "the lumberjack input passes events through unchanged, as Logstash's beats input; \
                 add fields in the sending Beat instead"
                    .into(),
            ));
        }
        if !common.tags.is_empty() {
            return Err(invalid(
                "tags",
                "the lumberjack input passes events through unchanged, as Logstash's beats input; \
                 add tags in the sending Beat instead"
                    .into(),
            ));
        }
        if !common.processors.is_empty() {
            return Err(invalid(
                "processors",
                "the lumberjack input passes events through unchanged, as Logstash's beats input; \
                 run processors in the sending Beat instead"
                    .into(),
            ));
        }
        let host = listen_address(&c.host).map_err(|e| invalid("host", e.to_string()))?;
        if c.client_inactivity_timeout.is_zero() {
            return Err(invalid(
                "client_inactivity_timeout",
                "must be greater than 0s".into(),
            ));
        }
        if c.max_window_size == 0 {
            return Err(invalid("max_window_size", "must be at least 1".into()));
        }
        let max_frame_size = u32::try_from(c.max_frame_size.0)
            .ok()
            .filter(|&n| n >= 64)
            .ok_or_else(|| {
                invalid(
                    "max_frame_size",
                    format!(
                        "{} bytes is outside 64 bytes ..= 4GiB-1 (a frame length is a u32)",
                        c.max_frame_size.0
                    ),
                )
            })?;
        let max_decompressed_size = usize::try_from(c.max_decompressed_size.0)
            .ok()
            .filter(|&n| n >= 64)
            .ok_or_else(|| {
                invalid(
                    "max_decompressed_size",
                    format!("{} bytes is below 64 bytes", c.max_decompressed_size.0),
                )
            })?;
        let decompressed_total = usize::try_from(c.max_decompressed_total.0)
            .ok()
            .filter(|&n| n >= 64)
            .ok_or_else(|| {
                invalid(
                    "max_decompressed_total",
                    format!("{} bytes is below 64 bytes", c.max_decompressed_total.0),
                )
            })?;
        let settings =
            TlsSettings::from_config(&c.ssl).map_err(|e| invalid("ssl", e.to_string()))?;
        let tls = if settings.is_enabled() {
            let source = TlsSource::server(settings).map_err(|e| invalid("ssl", e.to_string()))?;
            Some(Arc::new(source))
        } else {
            None
        };
        Ok(Self {
            index,
            host,
            tls,
            inactivity: c.client_inactivity_timeout.get(),
            max_connections: c.max_connections,
            session: ReceiverConfig {
                limits: Limits {
                    max_window_size: c.max_window_size,
                    max_frame_size,
                    max_decompressed_size,
                },
                metered_inflation: true,
                ..ReceiverConfig::default()
            },
            decompressed_total,
            accepted_tls: accepted_tls(&c.ssl.supported_protocols),
            observer: None,
        })
    }

    /// Installs an observer (before [`Self::start`]).
    pub fn set_observer(&mut self, observer: Arc<dyn ReceiverObserver>) {
        self.observer = Some(observer);
    }

    /// Binds the listener and spawns the accept loop on the current tokio runtime. Must be
    /// called from inside the runtime (the app starts inputs there). The loop runs until the
    /// runtime ends; on shutdown publishing fails and connections close without ACK, so
    /// clients resend what was not settled.
    ///
    /// # Errors
    /// [`InputError::Invalid`] for `host` when it does not resolve or cannot be bound.
    pub fn start(self, name: &str, publisher: Publisher) -> Result<(), InputError> {
        let listener = self.bind()?;
        let local = listener.local_addr().map_err(|e| InputError::Invalid {
            index: self.index,
            key: "host",
            reason: format!("cannot read the bound address: {e}"),
        })?;
        if !local.ip().is_loopback() {
            warn!(input = name, address = %local, "listening on a non-loopback address; clients on other machines can connect");
        }
        info!(input = name, address = %local, tls = self.tls.is_some(), "lumberjack input listening on {local}");
        if let Some(o) = &self.observer {
            o.listening(local);
        }
        let shared = Arc::new(connection::Shared {
            input: name.to_string(),
            session: self.session,
            inactivity: self.inactivity,
            waiter: publisher.clone(),
            observer: self.observer.clone(),
            budget: budget::InflateBudget::new(self.decompressed_total),
            accepted_tls: self.accepted_tls.clone(),
        });
        let limit =
            (self.max_connections > 0).then(|| Arc::new(Semaphore::new(self.max_connections)));
        tokio::spawn(accept_loop(
            listener,
            shared,
            publisher,
            self.tls,
            limit,
            self.max_connections,
        ));
        Ok(())
    }

    fn bind(&self) -> Result<tokio::net::TcpListener, InputError> {
        let invalid = |reason: String| InputError::Invalid {
            index: self.index,
            key: "host",
            reason,
        };
        let (host, port) = (self.host.0.as_str(), self.host.1);
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| invalid(format!("cannot resolve {host}: {e}")))?
            .collect();
        let mut last = None;
        for addr in &addrs {
            match std::net::TcpListener::bind(addr) {
                Ok(l) => {
                    l.set_nonblocking(true)
                        .map_err(|e| invalid(format!("cannot configure the socket: {e}")))?;
                    return tokio::net::TcpListener::from_std(l)
                        .map_err(|e| invalid(format!("cannot register the socket: {e}")));
                }
                Err(e) => last = Some((addr, e)),
            }
        }
        Err(match last {
            Some((addr, e)) => invalid(format!("cannot listen on {addr}: {e}")),
            None => invalid(format!("{host} resolves to no address")),
        })
    }
}

/// The accepted TLS versions in words, from `ssl.supported_protocols` (validated
/// elsewhere; empty means rustls' defaults, TLSv1.2 and TLSv1.3).
fn accepted_tls(supported: &[String]) -> String {
    if supported.is_empty() {
        return "TLSv1.2 and TLSv1.3".into();
    }
    let names: Vec<&str> = supported.iter().map(|s| s.trim()).collect();
    names.join(" and ")
}

/// `host[:port]` of the listener: Beats' parsing, default port 5044, and port 0 allowed
/// (any free port).
fn listen_address(text: &str) -> Result<(String, u16), HostPortError> {
    let text = text.trim();
    if let Some(host) = text.strip_suffix(":0") {
        return parse_host_port(host, LOGSTASH_DEFAULT_PORT).map(|h| (h.host, 0));
    }
    parse_host_port(text, LOGSTASH_DEFAULT_PORT).map(|h| (h.host, h.port))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<connection::Shared>,
    publisher: Publisher,
    tls: Option<Arc<TlsSource>>,
    limit: Option<Arc<Semaphore>>,
    max_connections: usize,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                warn!(input = %shared.input, error = %e, "cannot accept a connection; retrying in 100ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if publisher.is_stopping() {
            debug!(peer = %peer, "shutting down; connection refused");
            continue;
        }
        let permit = match &limit {
            Some(sem) => match Arc::clone(sem).try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    warn!(input = %shared.input, peer = %peer, max_connections, "connection refused: max_connections reached");
                    continue;
                }
            },
            None => None,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = match &tls {
            Some(source) => match source.server_config() {
                Ok(cfg) => Some(TlsAcceptor::from(cfg)),
                Err(e) => {
                    warn!(input = %shared.input, peer = %peer, error = %e, "connection refused: no usable TLS configuration");
                    continue;
                }
            },
            None => None,
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let result = connection::serve(stream, peer, acceptor, &shared).await;
            drop(permit);
            match result {
                Ok(()) => {
                    debug!(input = %shared.input, peer = %peer, "connection closed by the client")
                }
                Err(e) if e.is_quiet() => {
                    info!(input = %shared.input, peer = %peer, reason = %e, "connection closed")
                }
                Err(e) => {
                    warn!(input = %shared.input, peer = %peer, error = %e, "connection closed")
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            listen_address("localhost").unwrap(),
            ("localhost".into(), 5044)
        );
        assert_eq!(
            listen_address("127.0.0.1:0").unwrap(),
            ("127.0.0.1".into(), 0)
        );
        assert_eq!(listen_address("[::1]:6000").unwrap(), ("::1".into(), 6000));
        assert!(listen_address(":5044").is_err());
        assert!(listen_address("a:70000").is_err());
    }

    fn new(
        common: CommonInputConfig,
        c: LumberjackInputConfig,
    ) -> Result<LumberjackInput, InputError> {
        LumberjackInput::new(
            crate::inputs::InputIndex::new("skidder.inputs", 3),
            &common,
            &c,
        )
    }

    #[test]
    fn fields_and_tags_are_refused_rather_than_ignored() {
        let with_fields = CommonInputConfig {
            fields: [("env".to_string(), serde_json::json!("prod"))].into(),
            ..CommonInputConfig::default()
        };
        let err = new(with_fields, LumberjackInputConfig::default()).unwrap_err();
        assert!(
            err.to_string().starts_with("skidder.inputs[3].fields: "),
            "{err}"
        );
        let with_tags = CommonInputConfig {
            tags: vec!["relay".into()],
            ..CommonInputConfig::default()
        };
        let err = new(with_tags, LumberjackInputConfig::default()).unwrap_err();
        assert!(err.to_string().contains("inputs[3].tags"), "{err}");
    }

    #[test]
    fn limits_and_timeouts_are_checked() {
        let ok = new(
            CommonInputConfig::default(),
            LumberjackInputConfig::default(),
        )
        .unwrap();
        assert_eq!(ok.session.limits, Limits::default());
        assert_eq!(ok.host, ("localhost".to_string(), 5044));
        assert!(ok.tls.is_none());
        let cases: [(&str, LumberjackInputConfig); 5] = [
            (
                "max_decompressed_total",
                LumberjackInputConfig {
                    max_decompressed_total: crate::config::ByteSize(63),
                    ..Default::default()
                },
            ),
            (
                "max_window_size",
                LumberjackInputConfig {
                    max_window_size: 0,
                    ..Default::default()
                },
            ),
            (
                "max_frame_size",
                LumberjackInputConfig {
                    max_frame_size: crate::config::ByteSize(1 << 32),
                    ..Default::default()
                },
            ),
            (
                "client_inactivity_timeout",
                LumberjackInputConfig {
                    client_inactivity_timeout: crate::config::Duration::from_secs(0),
                    ..Default::default()
                },
            ),
            (
                "host",
                LumberjackInputConfig {
                    host: ":5044".into(),
                    ..Default::default()
                },
            ),
        ];
        for (key, c) in cases {
            let err = new(CommonInputConfig::default(), c).unwrap_err();
            assert!(
                err.to_string().contains(&format!("inputs[3].{key}: ")),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn tls_without_a_certificate_is_a_config_error() {
        let mut c = LumberjackInputConfig::default();
        c.ssl.enabled = Some(true);
        let err = new(CommonInputConfig::default(), c).unwrap_err();
        assert!(err.to_string().contains("inputs[3].ssl: "), "{err}");
    }
}
