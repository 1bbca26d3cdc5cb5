//! Opening one connection to a Logstash host: resolve (at every connect, so DNS changes
//! are followed), TCP with `TCP_NODELAY`, optional SOCKS5 proxy, optional TLS from the
//! credential layer. Every phase runs through one helper (`phase`), so every failure names
//! the phase, the host and, for a timeout, how long was waited: "TLS handshake with
//! 10.0.0.5:5044 timed out after 30s".

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_socks::tcp::Socks5Stream;

use super::metrics::ErrorKind;
use super::settings::{Endpoint, ProxySettings};
use crate::credentials::{CredentialError, TlsSource};

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
    #[error("{phase} {host} timed out after {timeout:?}")]
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
    /// e.g. `TLSv1_3`, or `none`.
    pub tls_version: String,
}

/// Opens connections to Logstash hosts with the output's proxy and TLS settings.
#[derive(Clone)]
pub struct Connector {
    timeout: Duration,
    proxy: Option<ProxySettings>,
    tls: Option<Arc<TlsSource>>,
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
        let t = self.timeout;
        let tcp = match &self.proxy {
            None => {
                let addrs = resolve(host, t).await?;
                connect_any(host, &addrs, t).await?
            }
            Some(proxy) => {
                let proxy_addrs = resolve(&proxy.endpoint, t).await?;
                // With the local resolver every address of the host is tried in turn (each
                // through a fresh proxy connection); otherwise the proxy resolves the name.
                let targets: Vec<String> = if proxy.local_resolver {
                    resolve(host, t)
                        .await?
                        .iter()
                        .map(|a| a.ip().to_string())
                        .collect()
                } else {
                    vec![host.host.clone()]
                };
                let mut last = None;
                let mut stream = None;
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
                    (Some(tcp), _) => tcp,
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
        let Some(tls) = &self.tls else {
            return Ok(Connected {
                stream: Box::new(tcp),
                peer,
                local_port,
                tls_version: "none".to_string(),
            });
        };
        let tls_err = |source| ConnectError::Tls {
            host: host.to_string(),
            source,
        };
        let config = tls.client_config().map_err(tls_err)?;
        let name = tls.settings().server_name(&host.host).map_err(tls_err)?;
        let stream = phase(
            Phase::TlsHandshake,
            host,
            t,
            TlsConnector::from(config).connect(name, tcp),
        )
        .await?;
        let tls_version = stream
            .get_ref()
            .1
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_else(|| "unknown".to_string());
        Ok(Connected {
            stream: Box::new(stream),
            peer,
            local_port,
            tls_version,
        })
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
        let target = (target, host.port);
        let socks = match &proxy.auth {
            None => {
                phase(
                    Phase::ProxyHandshake,
                    host,
                    t,
                    Socks5Stream::connect_with_socket(tcp, target),
                )
                .await?
            }
            Some((user, pass)) => {
                phase(
                    Phase::ProxyHandshake,
                    host,
                    t,
                    Socks5Stream::connect_with_password_and_socket(
                        tcp,
                        target,
                        user,
                        pass.expose(),
                    ),
                )
                .await?
            }
        };
        Ok(socks.into_inner())
    }
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
