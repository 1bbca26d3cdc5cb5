//! The one HTTP stack of skidder: the monitoring endpoint (`http.*`, [`monitoring`]) and the
//! `http_endpoint` input both run on it.
//!
//! ```text
//!  bind (TCP, or unix:///path mode 0600) ─▶ accept (max_connections) ─▶ TLS handshake (10 s,
//!  the credential layer's ServerConfig) ─▶ hyper HTTP/1.1 connection
//!      head: read_timeout (hyper's header timer), max_header_size (431 beyond)
//!      body: the handler reads it with [`read_body`]: read_timeout, a size limit
//!      idle:  a keep-alive connection with no request for idle_timeout is closed
//! ```
//!
//! No HTTP is written by hand: hyper parses and writes every message. What exposes an
//! endpoint is explicit: [`Exposure::check`] refuses a non-loopback address without TLS and
//! authentication unless the user allowed it.

pub mod auth;
pub mod monitoring;

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::config::units::human;
use crate::credentials::TlsSource;

/// Time a client has to finish its TLS handshake (Logstash's `ssl_handshake_timeout`).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The smallest read buffer hyper accepts; `max_header_size` below it is raised to it.
const MIN_HEADER_BUFFER: usize = 8192;

/// Why an HTTP endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A setting has a value the endpoint cannot use.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The address does not resolve or cannot be bound.
    #[error("{key}: cannot listen on {address}: {reason}")]
    Bind {
        /// The setting naming the address.
        key: String,
        /// The address.
        address: String,
        /// What failed.
        reason: String,
    },
    /// A non-loopback address without TLS and authentication, not allowed.
    #[error("{key}: {address} is reachable from other machines, but the endpoint has {missing}; add them, bind a loopback address, or set {allow} to accept the risk")]
    Insecure {
        /// The setting naming the address.
        key: String,
        /// The address.
        address: String,
        /// "no TLS", "no authentication" or both.
        missing: String,
        /// The `allow_insecure` key to set.
        allow: String,
    },
}

/// Where an endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// A TCP address; port 0 picks a free port.
    Tcp {
        /// Host name or IP.
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix socket, created with mode 0600 (an existing socket file is replaced).
    Unix(PathBuf),
}

impl Bind {
    /// `unix:///path` or a host name, as Beats' `http.host`; `http://host[:port]` takes
    /// the host (and port) from the URL.
    pub fn parse(host: &str, port: u16) -> Self {
        let host = host.trim();
        if let Some(path) = host.strip_prefix("unix://") {
            return Self::Unix(PathBuf::from(path));
        }
        let bare = host.strip_prefix("http://").unwrap_or(host);
        let bare = bare.trim_end_matches('/');
        if let Some((h, p)) = bare.rsplit_once(':') {
            if let (Ok(p), false) = (p.parse::<u16>(), h.contains(':') && !h.ends_with(']')) {
                return Self::Tcp {
                    host: h.trim_matches(['[', ']']).to_string(),
                    port: p,
                };
            }
        }
        Self::Tcp {
            host: bare.trim_matches(['[', ']']).to_string(),
            port,
        }
    }
}

impl std::fmt::Display for Bind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "{host}:{port}"),
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// What protects an endpoint, for [`Exposure::check`].
#[derive(Debug, Clone, Copy)]
pub struct Exposure {
    /// TLS is on.
    pub tls: bool,
    /// Requests must authenticate (a credential, or a required client certificate).
    pub authenticated: bool,
    /// The user set `allow_insecure`.
    pub allow_insecure: bool,
}

impl Exposure {
    /// Refuses (or, when allowed, WARNs about) a non-loopback TCP address that lacks TLS or
    /// authentication. A Unix socket is local by construction.
    ///
    /// # Errors
    /// [`HttpError::Insecure`] naming what is missing and the key that allows it.
    pub fn check(&self, bind: &Bind, key: &str, allow_key: &str) -> Result<(), HttpError> {
        let Bind::Tcp { host, port } = bind else {
            return Ok(());
        };
        let addrs: Vec<SocketAddr> = (host.as_str(), *port)
            .to_socket_addrs()
            .map(|a| a.collect())
            .unwrap_or_default();
        // An address that does not resolve fails at bind, with the resolver's reason.
        let exposed = !addrs.is_empty() && addrs.iter().any(|a| !a.ip().is_loopback());
        let missing = match (self.tls, self.authenticated) {
            (true, true) => return Ok(()),
            (false, false) => "no TLS and no authentication",
            (false, true) => "no TLS (credentials would cross the network in clear text)",
            (true, false) => "no authentication",
        };
        if !exposed {
            return Ok(());
        }
        if self.allow_insecure {
            warn!(key = %key, address = %bind, "{key}: listening on {bind}, reachable from other machines, with {missing} ({allow_key} is true)");
            return Ok(());
        }
        Err(HttpError::Insecure {
            key: key.to_string(),
            address: bind.to_string(),
            missing: missing.to_string(),
            allow: allow_key.to_string(),
        })
    }
}

/// The transport settings of one endpoint.
#[derive(Clone)]
pub struct ServerSettings {
    /// Name in logs (`http` or the input's name).
    pub name: String,
    /// The setting holding the address, for errors.
    pub key: String,
    /// Where to listen.
    pub bind: Bind,
    /// TLS, when on.
    pub tls: Option<Arc<TlsSource>>,
    /// Concurrent connections; 0 = unlimited.
    pub max_connections: usize,
    /// Time to receive a request head (the body is bounded by the handler's [`read_body`]).
    pub read_timeout: Duration,
    /// A keep-alive connection with no request in progress and no bytes for this long is
    /// closed.
    pub idle_timeout: Duration,
    /// Largest request head, bytes.
    pub max_header_size: usize,
}

impl std::fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSettings")
            .field("name", &self.name)
            .field("bind", &self.bind)
            .field("tls", &self.tls.is_some())
            .field("max_connections", &self.max_connections)
            .field("read_timeout", &self.read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_header_size", &self.max_header_size)
            .finish()
    }
}

/// The peer of a request: its address (none on a Unix socket).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The client's address.
    pub addr: Option<SocketAddr>,
}

/// The reply type of every handler.
pub type Reply = Response<Full<Bytes>>;

/// What answers requests. Called concurrently from connection tasks.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: Peer,
    ) -> Pin<Box<dyn Future<Output = Reply> + Send>>;
}

/// A bound listener, before it serves.
#[derive(Debug)]
pub struct Listener {
    inner: Inner,
    /// The bound address in words (`127.0.0.1:5066`, `unix:///run/skidder.sock`).
    pub local: String,
    /// The bound TCP address (none for a Unix socket).
    pub local_addr: Option<SocketAddr>,
}

#[derive(Debug)]
enum Inner {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// Binds `settings.bind`. Must run inside the tokio runtime.
///
/// # Errors
/// [`HttpError::Bind`] naming the setting and the reason.
pub fn bind(settings: &ServerSettings) -> Result<Listener, HttpError> {
    let err = |reason: String| HttpError::Bind {
        key: settings.key.clone(),
        address: settings.bind.to_string(),
        reason,
    };
    match &settings.bind {
        Bind::Tcp { host, port } => {
            let addrs: Vec<SocketAddr> = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| err(format!("cannot resolve {host}: {e}")))?
                .collect();
            let mut last = None;
            for addr in &addrs {
                match std::net::TcpListener::bind(addr) {
                    Ok(l) => {
                        l.set_nonblocking(true).map_err(|e| err(e.to_string()))?;
                        let l =
                            tokio::net::TcpListener::from_std(l).map_err(|e| err(e.to_string()))?;
                        let local_addr = l.local_addr().map_err(|e| err(e.to_string()))?;
                        return Ok(Listener {
                            inner: Inner::Tcp(l),
                            local: local_addr.to_string(),
                            local_addr: Some(local_addr),
                        });
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(err(match last {
                Some(e) => e.to_string(),
                None => format!("{host} resolves to no address"),
            }))
        }
        Bind::Unix(path) => {
            use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
            // As Beats: an existing socket file is replaced; any other file is not touched.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.file_type().is_socket() {
                    std::fs::remove_file(path).map_err(|e| err(e.to_string()))?;
                } else {
                    return Err(err("a file that is not a socket is in the way".into()));
                }
            }
            // The socket is created with the umask's mode; create it inside a private
            // window so no other user can connect before the chmod.
            // SAFETY: umask only swaps the process file-creation mask.
            let old = unsafe { libc::umask(0o177) };
            let bound = tokio::net::UnixListener::bind(path);
            // SAFETY: as above, restoring the previous mask.
            unsafe { libc::umask(old) };
            let l = bound.map_err(|e| err(e.to_string()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| err(format!("cannot set mode 0600: {e}")))?;
            Ok(Listener {
                inner: Inner::Unix(l),
                local: format!("unix://{}", path.display()),
                local_addr: None,
            })
        }
    }
}

/// Serves `listener` with `handler` until the runtime ends.
pub fn serve<H: Handler>(listener: Listener, settings: ServerSettings, handler: Arc<H>) {
    let limit =
        (settings.max_connections > 0).then(|| Arc::new(Semaphore::new(settings.max_connections)));
    let settings = Arc::new(settings);
    tokio::spawn(async move {
        loop {
            let accepted = match &listener.inner {
                Inner::Tcp(l) => l.accept().await.map(|(s, a)| (Stream::Tcp(s), Some(a))),
                Inner::Unix(l) => l.accept().await.map(|(s, _)| (Stream::Unix(s), None)),
            };
            let (stream, addr) = match accepted {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    warn!(endpoint = %settings.name, error = %e, "cannot accept a connection; retrying in 100ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let permit = match &limit {
                Some(sem) => match Arc::clone(sem).try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        warn!(endpoint = %settings.name, peer = ?addr, max_connections = settings.max_connections, "connection refused: max_connections reached");
                        continue;
                    }
                },
                None => None,
            };
            let settings = Arc::clone(&settings);
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let peer = Peer { addr };
                if let Err(reason) = connection(stream, peer, &settings, handler).await {
                    debug!(endpoint = %settings.name, peer = ?addr, reason = %reason, "connection closed");
                }
                drop(permit);
            });
        }
    });
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn connection<H: Handler>(
    stream: Stream,
    peer: Peer,
    settings: &ServerSettings,
    handler: Arc<H>,
) -> Result<(), String> {
    match (stream, &settings.tls) {
        (Stream::Tcp(s), None) => {
            let _ = s.set_nodelay(true);
            http1(s, peer, settings, handler).await
        }
        (Stream::Tcp(s), Some(tls)) => {
            let _ = s.set_nodelay(true);
            let cfg = tls.server_config().map_err(|e| e.to_string())?;
            let accept = TlsAcceptor::from(cfg).accept(s);
            let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accept)
                .await
                .map_err(|_| {
                    format!(
                        "TLS handshake timed out after {}",
                        human(TLS_HANDSHAKE_TIMEOUT)
                    )
                })?
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
            http1(tls, peer, settings, handler).await
        }
        (Stream::Unix(s), _) => http1(s, peer, settings, handler).await,
    }
}

/// The time of the last byte in either direction and the requests in progress of one
/// connection, for the idle check.
#[derive(Debug)]
struct Activity {
    since: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.since.elapsed().saturating_sub(last)
    }
}

/// A stream that records when bytes moved.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Marks a request in progress while it lives.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

async fn http1<S, H>(
    stream: S,
    peer: Peer,
    settings: &ServerSettings,
    handler: Arc<H>,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let activity = Arc::new(Activity {
        since: Instant::now(),
        last_ms: AtomicU64::new(0),
        busy: AtomicUsize::new(0),
    });
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let service_activity = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        service_activity.busy.fetch_add(1, Ordering::Relaxed);
        let busy = Busy(Arc::clone(&service_activity));
        let fut = Arc::clone(&handler).handle(req, peer);
        async move {
            let reply = fut.await;
            drop(busy);
            Ok::<_, Infallible>(reply)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.read_timeout)
        .max_buf_size(settings.max_header_size.max(MIN_HEADER_BUFFER))
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let idle = settings.idle_timeout;
    let mut closing = false;
    loop {
        let wait = idle
            .saturating_sub(activity.quiet_for())
            .max(Duration::from_millis(50));
        tokio::select! {
            r = conn.as_mut() => return r.map_err(|e| e.to_string()),
            () = tokio::time::sleep(wait), if !closing => {
                if activity.busy.load(Ordering::Relaxed) == 0 && activity.quiet_for() >= idle {
                    debug!(endpoint = %settings.name, peer = ?peer.addr, idle = %human(idle), "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// Larger than the limit.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// Not complete within the read timeout.
    #[error("the request body did not arrive within {}", human(*.0))]
    Timeout(Duration),
    /// The connection broke.
    #[error("reading the request body failed: {0}")]
    Io(String),
}

/// Reads a whole body of at most `limit` bytes within `timeout` (counted from `start`, the
/// request's arrival, so a slow head and a slow body share one budget).
///
/// # Errors
/// [`BodyError`]: too large, too slow, or broken.
pub async fn read_body(
    body: Incoming,
    limit: usize,
    timeout: Duration,
    start: Instant,
) -> Result<Bytes, BodyError> {
    let left = timeout.saturating_sub(start.elapsed());
    let collect = Limited::new(body, limit).collect();
    match tokio::time::timeout(left, collect).await {
        Err(_) => Err(BodyError::Timeout(timeout)),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(BodyError::TooLarge { limit })
            } else {
                Err(BodyError::Io(e.to_string()))
            }
        }
    }
}

/// A reply with `status`, a JSON body and the headers every reply carries.
pub fn json_reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        hyper::header::HeaderValue::from_static("nosniff"),
    );
    r
}

/// `{"message": text}` with `status` (Filebeat's error body).
pub fn message_reply(status: StatusCode, text: &str) -> Reply {
    json_reply(status, serde_json::json!({ "message": text }).to_string())
}

/// Logs where an endpoint listens.
pub fn announce(settings: &ServerSettings, listener: &Listener, what: &str) {
    info!(endpoint = %settings.name, address = %listener.local, tls = settings.tls.is_some(), "{what} listening on {}", listener.local);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_forms() {
        assert_eq!(
            Bind::parse("localhost", 5066),
            Bind::Tcp {
                host: "localhost".into(),
                port: 5066
            }
        );
        assert_eq!(
            Bind::parse("unix:///run/s.sock", 5066),
            Bind::Unix("/run/s.sock".into())
        );
        assert_eq!(
            Bind::parse("http://127.0.0.1:6000", 5066),
            Bind::Tcp {
                host: "127.0.0.1".into(),
                port: 6000
            }
        );
        assert_eq!(
            Bind::parse("::1", 5066),
            Bind::Tcp {
                host: "::1".into(),
                port: 5066
            }
        );
        assert_eq!(Bind::parse("::1", 5066).to_string(), "[::1]:5066");
    }

    #[test]
    fn exposure_needs_tls_and_auth_or_an_explicit_allow() {
        let wild = Bind::Tcp {
            host: "0.0.0.0".into(),
            port: 1,
        };
        let local = Bind::Tcp {
            host: "127.0.0.1".into(),
            port: 1,
        };
        let open = Exposure {
            tls: false,
            authenticated: false,
            allow_insecure: false,
        };
        let err = open
            .check(&wild, "http.host", "http.allow_insecure")
            .unwrap_err();
        assert!(
            err.to_string().contains("no TLS and no authentication")
                && err.to_string().contains("http.allow_insecure"),
            "{err}"
        );
        assert!(open.check(&local, "k", "a").is_ok());
        assert!(open.check(&Bind::Unix("/tmp/x".into()), "k", "a").is_ok());
        let allowed = Exposure {
            allow_insecure: true,
            ..open
        };
        assert!(allowed.check(&wild, "k", "a").is_ok());
        let tls_only = Exposure { tls: true, ..open };
        assert!(tls_only
            .check(&wild, "k", "a")
            .unwrap_err()
            .to_string()
            .contains("no authentication"));
        let both = Exposure {
            tls: true,
            authenticated: true,
            allow_insecure: false,
        };
        assert!(both.check(&wild, "k", "a").is_ok());
    }
}
