//! Opening one connection to a Logstash host: resolve (at every connect, so DNS changes
//! are followed), TCP with `TCP_NODELAY`, optional SOCKS5 proxy, optional TLS from the
//! credential layer. Every phase runs through one helper (`phase`), so every failure names
//! the phase, the host and, for a timeout, how long was waited: "TLS handshake with
//! 10.0.0.5:5044 timed out after 30s".

use crate::config::units::human;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_socks::tcp::Socks5Stream;

use super::metrics::ErrorKind;
use super::settings::{Endpoint, ProxySettings};
use crate::credentials::{describe_handshake, CredentialError, HandshakeReport, TlsSource};

/// A byte stream to a Logstash host (plain TCP or TLS over TCP).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One step of opening a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Name resolution of the host (or of the proxy).
    Resolve,
    /// TCP connect to the host.
    Connect,
    /// TCP connect to the SOCKS5 proxy.
    ProxyConnect,
    /// The SOCKS5 handshake asking the proxy for the host.
    ProxyHandshake,
    /// The TLS handshake.
    TlsHandshake,
}

impl Phase {
    /// The phase as a noun, for reports: `resolve`, `TCP connect`, `TLS handshake`, ...
    pub fn name(self) -> &'static str {
        match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "TCP connect",
            Phase::ProxyConnect => "SOCKS5 proxy connect",
            Phase::ProxyHandshake => "SOCKS5 handshake",
            Phase::TlsHandshake => "TLS handshake",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Resolve => "resolving",
            Phase::Connect => "TCP connect to",
            Phase::ProxyConnect => "TCP connect to the SOCKS5 proxy for",
            Phase::ProxyHandshake => "SOCKS5 handshake for",
            Phase::TlsHandshake => "TLS handshake with",
        })
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// A phase took longer than `timeout`.
    #[error("{phase} {host} timed out after {}", human(*.timeout))]
    Timeout {
        /// The phase.
        phase: Phase,
        /// `host:port` as configured.
        host: String,
        /// The limit (`output.logstash.timeout`).
        timeout: Duration,
    },
    /// A phase failed.
    #[error("{phase} {host} failed: {reason}")]
    Failed {
        /// The phase.
        phase: Phase,
        /// `host:port` as configured.
        host: String,
        /// The cause, as the OS, proxy or TLS library tells it.
        reason: String,
    },
    /// The TLS configuration could not be used (e.g. our certificate expired).
    #[error("TLS for {host}: {source}")]
    Tls {
        /// `host:port` as configured.
        host: String,
        /// The cause.
        source: CredentialError,
    },
}

impl ConnectError {
    /// The phase that failed; loading the TLS material counts as the TLS handshake.
    pub fn phase(&self) -> Phase {
        match self {
            ConnectError::Timeout { phase, .. } | ConnectError::Failed { phase, .. } => *phase,
            ConnectError::Tls { .. } => Phase::TlsHandshake,
        }
    }

    /// The error counter this failure goes to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnectError::Timeout { phase, .. } | ConnectError::Failed { phase, .. }
                if *phase == Phase::TlsHandshake =>
            {
                ErrorKind::Tls
            }
            ConnectError::Tls { .. } => ErrorKind::Tls,
            _ => ErrorKind::Connect,
        }
    }
}

/// Runs one phase with the timeout, naming phase and host in any error.
async fn phase<T, E: fmt::Display>(
    phase: Phase,
    host: &Endpoint,
    timeout: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, ConnectError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ConnectError::Failed {
            phase,
            host: host.to_string(),
            reason: e.to_string(),
        }),
        Err(_) => Err(ConnectError::Timeout {
            phase,
            host: host.to_string(),
            timeout,
        }),
    }
}

/// An open connection and what its tracing span records.
pub struct Connected {
    /// The stream.
    pub stream: Box<dyn Stream>,
    /// The address actually connected to (the proxy's when proxied).
    pub peer: SocketAddr,
    /// Our local port.
    pub local_port: u16,
    /// e.g. `TLSv1.3`, or `none`.
    pub tls_version: String,
}

/// Opens connections to Logstash hosts with the output's proxy and TLS settings.
#[derive(Clone)]
pub struct Connector {
    timeout: Duration,
    proxy: Option<ProxySettings>,
    tls: Option<Arc<TlsSource>>,
}

impl Connector {
    /// The TLS material connections use, when TLS is on.
    pub fn tls(&self) -> Option<Arc<TlsSource>> {
        self.tls.clone()
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("timeout", &self.timeout)
            .field(
                "proxy",
                &self.proxy.as_ref().map(|p| p.endpoint.to_string()),
            )
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Connector {
    /// A connector; every phase is limited by `timeout`.
    pub fn new(
        timeout: Duration,
        proxy: Option<ProxySettings>,
        tls: Option<Arc<TlsSource>>,
    ) -> Self {
        Self {
            timeout,
            proxy,
            tls,
        }
    }

    /// Opens a connection to `host`.
    ///
    /// # Errors
    /// [`ConnectError`] naming the phase that failed, the host, and the reason or timeout.
    /// Nothing is ever written before the TLS handshake (when TLS is on) has succeeded.
    pub async fn connect(&self, host: &Endpoint) -> Result<Connected, ConnectError> {
        let (tcp, peer, local_port) = self.open_tcp(host, &mut Vec::new()).await?;
        let Some(tls) = &self.tls else {
            return Ok(Connected {
                stream: Box::new(tcp),
                peer,
                local_port,
                tls_version: "none".to_string(),
            });
        };
        let stream = self.handshake(tls, host, tcp).await?;
        let tls_version = stream.get_ref().1.protocol_version().map_or_else(
            || "unknown".to_string(),
            crate::credentials::tls_version_name,
        );
        Ok(Connected {
            stream: Box::new(stream),
            peer,
            local_port,
            tls_version,
        })
    }

    /// Opens a connection to `addr` (an address `dns.expand` found for `host`): no name
    /// resolution; TLS checks `host`'s name as usual.
    ///
    /// # Errors
    /// [`ConnectError`] naming the phase that failed, the host, and the reason or timeout.
    pub async fn connect_addr(
        &self,
        host: &Endpoint,
        addr: SocketAddr,
    ) -> Result<Connected, ConnectError> {
        let tcp = connect_any(host, &[addr], self.timeout).await?;
        let local_port = tcp.local_addr().map(|a| a.port()).unwrap_or(0);
        let Some(tls) = &self.tls else {
            return Ok(Connected {
                stream: Box::new(tcp),
                peer: addr,
                local_port,
                tls_version: "none".to_string(),
            });
        };
        let stream = self.handshake(tls, host, tcp).await?;
        let tls_version = stream.get_ref().1.protocol_version().map_or_else(
            || "unknown".to_string(),
            crate::credentials::tls_version_name,
        );
        Ok(Connected {
            stream: Box::new(stream),
            peer: addr,
            local_port,
            tls_version,
        })
    }

    /// Walks the phases of [`Self::connect`] once for `skidder test output`, recording each
    /// completed phase with its duration and, on TLS, what the handshake negotiated and
    /// showed. Nothing is written after the handshake: the open connection is handed back
    /// in [`Probe::stream`], so the caller can check that the server accepts the session.
    pub async fn probe(&self, host: &Endpoint) -> Probe {
        let mut steps = Vec::new();
        let (tcp, _, _) = match self.open_tcp(host, &mut steps).await {
            Ok(opened) => opened,
            Err(e) => {
                return Probe {
                    steps,
                    handshake: None,
                    failure: Some(e),
                    stream: None,
                }
            }
        };
        let Some(tls) = &self.tls else {
            return Probe {
                steps,
                handshake: None,
                failure: None,
                stream: Some(Box::new(tcp)),
            };
        };
        let started = Instant::now();
        match self.handshake(tls, host, tcp).await {
            Ok(stream) => {
                let report = describe_handshake(stream.get_ref().1, tls.settings().pins());
                steps.push(Step {
                    phase: Phase::TlsHandshake,
                    took: started.elapsed(),
                    detail: format!("{} {}", report.version, report.cipher_suite),
                });
                Probe {
                    steps,
                    handshake: Some(report),
                    failure: None,
                    stream: Some(Box::new(stream)),
                }
            }
            Err(e) => Probe {
                steps,
                handshake: None,
                failure: Some(e),
                stream: None,
            },
        }
    }

    /// Resolve and TCP (directly or through the proxy), recording each completed phase.
    async fn open_tcp(
        &self,
        host: &Endpoint,
        steps: &mut Vec<Step>,
    ) -> Result<(TcpStream, SocketAddr, u16), ConnectError> {
        let t = self.timeout;
        let tcp = match &self.proxy {
            None => {
                let started = Instant::now();
                let addrs = resolve(host, t).await?;
                steps.push(Step::resolved(started, &addrs));
                let started = Instant::now();
                let tcp = connect_any(host, &addrs, t).await?;
                steps.push(Step::connected(Phase::Connect, started, &tcp));
                tcp
            }
            Some(proxy) => {
                let started = Instant::now();
                let proxy_addrs = resolve(&proxy.endpoint, t).await?;
                steps.push(Step::resolved(started, &proxy_addrs));
                // With the local resolver every address of the host is tried in turn (each
                // through a fresh proxy connection); otherwise the proxy resolves the name.
                let targets: Vec<String> = if proxy.local_resolver {
                    let started = Instant::now();
                    let addrs = resolve(host, t).await?;
                    steps.push(Step::resolved(started, &addrs));
                    addrs.iter().map(|a| a.ip().to_string()).collect()
                } else {
                    vec![host.host.clone()]
                };
                let mut last = None;
                let mut stream = None;
                let started = Instant::now();
                for target in &targets {
                    match self.via_proxy(proxy, &proxy_addrs, host, target).await {
                        Ok(tcp) => {
                            stream = Some(tcp);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                match (stream, last) {
                    (Some(tcp), _) => {
                        steps.push(Step {
                            phase: Phase::ProxyHandshake,
                            took: started.elapsed(),
                            detail: format!("{host} through the proxy at {}", proxy.endpoint),
                        });
                        tcp
                    }
                    (None, Some(e)) => return Err(e),
                    (None, None) => {
                        return Err(ConnectError::Failed {
                            phase: Phase::Resolve,
                            host: host.to_string(),
                            reason: "no address found".to_string(),
                        })
                    }
                }
            }
        };
        let peer = tcp.peer_addr().map_err(|e| ConnectError::Failed {
            phase: Phase::Connect,
            host: host.to_string(),
            reason: e.to_string(),
        })?;
        let local_port = tcp.local_addr().map(|a| a.port()).unwrap_or(0);
        Ok((tcp, peer, local_port))
    }

    /// The TLS handshake over `tcp`, with the current client config.
    async fn handshake(
        &self,
        tls: &TlsSource,
        host: &Endpoint,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, ConnectError> {
        let tls_err = |source| ConnectError::Tls {
            host: host.to_string(),
            source,
        };
        let config = tls.client_config().map_err(tls_err)?;
        let name = tls.settings().server_name(&host.host).map_err(tls_err)?;
        phase(
            Phase::TlsHandshake,
            host,
            self.timeout,
            TlsConnector::from(config).connect(name, tcp),
        )
        .await
    }
}

/// One completed phase of a [`Connector::probe`].
#[derive(Debug, Clone)]
pub struct Step {
    /// Which phase.
    pub phase: Phase,
    /// How long it took.
    pub took: Duration,
    /// What it produced: the addresses found, the address connected to, the TLS version
    /// and cipher suite.
    pub detail: String,
}

impl Step {
    fn resolved(started: Instant, addrs: &[SocketAddr]) -> Self {
        Self {
            phase: Phase::Resolve,
            took: started.elapsed(),
            detail: addrs
                .iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    fn connected(phase: Phase, started: Instant, tcp: &TcpStream) -> Self {
        let detail = match (tcp.peer_addr(), tcp.local_addr()) {
            (Ok(peer), Ok(local)) => format!("{peer} (local port {})", local.port()),
            (Ok(peer), Err(_)) => peer.to_string(),
            (Err(e), _) => format!("(peer address unknown: {e})"),
        };
        Self {
            phase,
            took: started.elapsed(),
            detail,
        }
    }
}

/// What [`Connector::probe`] found: the phases that completed, in order, then the failure
/// of the next one, if any.
pub struct Probe {
    /// Completed phases.
    pub steps: Vec<Step>,
    /// The handshake's description when TLS is on and it succeeded.
    pub handshake: Option<HandshakeReport>,
    /// Why the next phase failed; `None` when every phase passed.
    pub failure: Option<ConnectError>,
    /// The connection when every phase passed, nothing written on it yet. A completed TLS 1.3
    /// handshake does not mean the server accepted us: it checks our certificate after our
    /// side of the handshake is done, and its verdict only arrives on the next read.
    pub stream: Option<Box<dyn Stream>>,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("steps", &self.steps)
            .field("handshake", &self.handshake)
            .field("failure", &self.failure)
            .field("stream", &self.stream.is_some())
            .finish()
    }
}

impl Connector {
    /// One attempt through the SOCKS5 proxy to `target` (a name or an address) on
    /// `host.port`.
    async fn via_proxy(
        &self,
        proxy: &ProxySettings,
        proxy_addrs: &[SocketAddr],
        host: &Endpoint,
        target: &str,
    ) -> Result<TcpStream, ConnectError> {
        let t = self.timeout;
        let tcp = connect_any_phase(Phase::ProxyConnect, host, proxy_addrs, t).await?;
        let auth = proxy
            .auth
            .as_ref()
            .map(|(user, pass)| (user.as_str(), pass.expose()));
        phase(
            Phase::ProxyHandshake,
            host,
            t,
            socks5_handshake(tcp, (target, host.port), auth),
        )
        .await
    }
}

/// The SOCKS5 handshake on an open connection to the proxy, asking it to connect to
/// `target`, with user/password authentication when `auth` is given; returns the stream,
/// now a tunnel to `target`. Generic over the stream so the proxy's replies, which are
/// untrusted input, can be fuzzed over an in-memory stream (`fuzz/fuzz_targets/socks5_reply.rs`).
///
/// # Errors
/// The proxy's refusal, a reply that is not SOCKS5, or a connection that ends early, as
/// tokio-socks reports them.
pub async fn socks5_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    target: (&str, u16),
    auth: Option<(&str, &str)>,
) -> Result<S, tokio_socks::Error> {
    let socks = match auth {
        None => Socks5Stream::connect_with_socket(stream, target).await?,
        Some((user, pass)) => {
            Socks5Stream::connect_with_password_and_socket(stream, target, user, pass).await?
        }
    };
    Ok(socks.into_inner())
}

/// Resolves `host` now (never cached, so a changed DNS record is used at the next connect).
async fn resolve(host: &Endpoint, timeout: Duration) -> Result<Vec<SocketAddr>, ConnectError> {
    let addrs: Vec<SocketAddr> = phase(
        Phase::Resolve,
        host,
        timeout,
        tokio::net::lookup_host((host.host.as_str(), host.port)),
    )
    .await?
    .collect();
    if addrs.is_empty() {
        return Err(ConnectError::Failed {
            phase: Phase::Resolve,
            host: host.to_string(),
            reason: "no address found".to_string(),
        });
    }
    Ok(addrs)
}

async fn connect_any(
    host: &Endpoint,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    connect_any_phase(Phase::Connect, host, addrs, timeout).await
}

/// Tries each address in turn; the last error is reported.
async fn connect_any_phase(
    which: Phase,
    host: &Endpoint,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for addr in addrs {
        match phase(which, host, timeout, TcpStream::connect(addr)).await {
            Ok(tcp) => {
                // Windows and ACKs are small writes whose latency matters (Nagle off).
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(host = %host, error = %e, "cannot set TCP_NODELAY");
                }
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ConnectError::Failed {
        phase: which,
        host: host.to_string(),
        reason: "no address to connect to".to_string(),
    }))
}
