//! The thin HTTP layer: one bulk request to one host, its reply classified.
//!
//! reqwest (over hyper 1) rather than hyper directly: it brings per-host connection pooling,
//! a whole-request timeout, URL handling and header types, and it accepts our own rustls
//! `ClientConfig` (`use_preconfigured_tls`) for https hosts, so the credential layer stays
//! the only place that decides trust, pins and client certificates. It is built without
//! trust roots of its own (ring is its provider, as ours) and without HTTP/2. Proxies as
//! libbeat: `proxy_url` (an HTTP proxy; https hosts through `CONNECT`, with
//! `proxy_headers`), else the environment's `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`, unless
//! `proxy_disable`.
//!
//! When the TLS files change, [`TlsSource`] hands out a new config; the next request then
//! builds new reqwest clients (and so new connections) with it.
//!
//! `ssl.server_name`: reqwest verifies and sends as SNI the host of the URL, so for an https
//! host the URL carries the configured name, and that host's client resolves the name to
//! the real host instead (a resolver pinned to it). Hence one reqwest client per host.

use crate::config::units::human;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE,
};
use reqwest::Url;
use rustls::ClientConfig;

use super::bulk::EncodedBody;
use super::response::{classify, RequestVerdict, ResponseError};
use super::settings::{ElasticsearchSettings, HostUrl, ProxySettings, Scheme};
use crate::credentials::es_auth::refusal_reason;
use crate::credentials::{Alpn, CredentialError, EsAuth, TlsSource};
use tracing::{debug, error};

/// Why a bulk request produced no per-item verdicts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EsError {
    /// No connection (refused, DNS, TLS handshake).
    #[error("cannot reach Elasticsearch at {host}")]
    Connect {
        /// `host:port`.
        host: String,
        /// reqwest's reason.
        source: reqwest::Error,
    },
    /// No complete reply within `timeout`.
    #[error("bulk request to {host} timed out after {}", human(*.after))]
    Timeout {
        /// `host:port`.
        host: String,
        /// The configured timeout.
        after: Duration,
    },
    /// The request failed after connecting (connection reset, body error).
    #[error("bulk request to {host} failed")]
    Request {
        /// `host:port`.
        host: String,
        /// reqwest's reason.
        source: reqwest::Error,
    },
    /// 401/403: the credential was refused. Nothing is dropped; retry after the backoff.
    #[error(transparent)]
    Credential(CredentialError),
    /// TLS material could not be loaded (e.g. our certificate expired).
    #[error("TLS for Elasticsearch")]
    Tls(#[source] CredentialError),
    /// The whole request failed with this status (429, 5xx or an unexpected 4xx).
    #[error("{host} answered the bulk request with HTTP {status}: {reason}")]
    Status {
        /// `host:port`.
        host: String,
        /// HTTP status.
        status: u16,
        /// The error from the body.
        reason: String,
    },
    /// A 2xx reply that is not a usable bulk response.
    #[error("{host} sent an unusable bulk response")]
    Response {
        /// `host:port`.
        host: String,
        /// What is wrong with it.
        source: ResponseError,
    },
    /// The HTTP client could not be built from the settings.
    #[error("cannot build the HTTP client: {reason}")]
    Client {
        /// Why.
        reason: String,
    },
}

impl EsError {
    /// True when the same request may succeed later without a configuration change:
    /// connection problems, timeouts, 429/5xx and malformed replies (a proxy hiccup).
    pub fn is_retryable(&self) -> bool {
        match self {
            EsError::Connect { .. }
            | EsError::Timeout { .. }
            | EsError::Request { .. }
            | EsError::Response { .. } => true,
            EsError::Status { status, .. } => *status == 429 || *status >= 500,
            EsError::Credential(_) | EsError::Tls(_) | EsError::Client { .. } => false,
        }
    }

    /// True when this host is unreachable or failing and the next one should be tried.
    pub fn is_host_failure(&self) -> bool {
        match self {
            EsError::Connect { .. } | EsError::Timeout { .. } | EsError::Request { .. } => true,
            EsError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// True for a refused credential (401/403).
    pub fn is_credential(&self) -> bool {
        matches!(self, EsError::Credential(_))
    }
}

/// The HTTP method of [`EsClient::request_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
}

/// The reply to one bulk request that the sender can act on item by item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkReply {
    /// One verdict per item, in request order.
    Items(Vec<super::response::ItemVerdict>),
    /// 413: split the batch and send the halves.
    TooLarge,
}

/// The reply to [`EsClient::request`].
#[derive(Debug, Clone)]
pub struct EsReply {
    /// HTTP status (from [`EsClient::request`] never 401/403: those are
    /// [`EsError::Credential`]).
    pub status: u16,
    /// The body as received.
    pub body: bytes::Bytes,
}

#[derive(Debug)]
struct Http {
    tls: Option<Arc<ClientConfig>>,
    /// One per host, in host order.
    clients: Vec<reqwest::Client>,
}

/// Resolves whatever name a URL carries to one configured host (for `ssl.server_name`).
/// The name is looked up at each new connection, as for any host.
#[derive(Debug)]
struct PinnedResolver {
    host: String,
    port: u16,
}

impl reqwest::dns::Resolve for PinnedResolver {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let target = (self.host.clone(), self.port);
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(target).await?.collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An HTTP client for the hosts of one output.
#[derive(Debug)]
pub struct EsClient {
    hosts: Vec<HostUrl>,
    bulk_urls: Vec<Url>,
    auth: EsAuth,
    headers: HeaderMap,
    tls: Option<TlsSource>,
    server_name: Option<String>,
    timeout: Duration,
    pool_per_host: usize,
    proxy: ProxySettings,
    idle_timeout: Option<Duration>,
    http: Mutex<Http>,
}

impl EsClient {
    /// A client for `settings`; reads the TLS material now when a host uses https.
    ///
    /// # Errors
    /// [`EsError::Tls`] for unusable TLS material, [`EsError::Client`] for headers that
    /// HTTP cannot carry or a client reqwest refuses to build.
    pub fn new(settings: &ElasticsearchSettings) -> Result<Self, EsError> {
        let tls = settings
            .tls
            .clone()
            .map(|t| TlsSource::client(t, Alpn::Http11))
            .transpose()
            .map_err(EsError::Tls)?;
        let bulk_urls = settings
            .hosts
            .iter()
            .map(|h| {
                let name = match h.scheme {
                    Scheme::Https => settings.tls_server_name.as_deref(),
                    Scheme::Http => None,
                };
                h.url_as(name, "_bulk", &settings.parameters)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| EsError::Client { reason })?;
        let headers = build_headers(&settings.auth)?;
        let tls_config = tls
            .as_ref()
            .map(TlsSource::client_config)
            .transpose()
            .map_err(EsError::Tls)?;
        let mut client = Self {
            hosts: settings.hosts.clone(),
            bulk_urls,
            auth: settings.auth.clone(),
            headers,
            tls,
            server_name: settings.tls_server_name.clone(),
            timeout: settings.timeout,
            pool_per_host: settings.worker,
            proxy: settings.proxy.clone(),
            idle_timeout: settings.idle_connection_timeout,
            http: Mutex::new(Http {
                tls: None,
                clients: Vec::new(),
            }),
        };
        let clients = client.build_clients(tls_config.as_deref())?;
        client.http = Mutex::new(Http {
            tls: tls_config,
            clients,
        });
        Ok(client)
    }

    fn build_clients(&self, tls: Option<&ClientConfig>) -> Result<Vec<reqwest::Client>, EsError> {
        self.hosts
            .iter()
            .map(|h| {
                let pinned = match (h.scheme, &self.server_name) {
                    (Scheme::Https, Some(_)) => Some(PinnedResolver {
                        host: h.host.clone(),
                        port: h.port,
                    }),
                    _ => None,
                };
                build_client(
                    tls,
                    Pool {
                        timeout: self.timeout,
                        per_host: self.pool_per_host,
                        idle: self.idle_timeout,
                    },
                    &self.proxy,
                    pinned,
                )
            })
            .collect()
    }

    /// The hosts, in configured order; requests name them by index.
    pub fn hosts(&self) -> &[HostUrl] {
        &self.hosts
    }

    /// The reqwest client of `host` to use now: all are rebuilt when the TLS source
    /// produced a new config.
    fn current(&self, host: usize) -> Result<reqwest::Client, EsError> {
        let fresh = self
            .tls
            .as_ref()
            .map(TlsSource::client_config)
            .transpose()
            .map_err(EsError::Tls)?;
        let mut http = self.http.lock().unwrap_or_else(PoisonError::into_inner);
        let same = match (&http.tls, &fresh) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            http.clients = self.build_clients(fresh.as_deref())?;
            http.tls = fresh;
        }
        http.clients
            .get(host)
            .cloned()
            .ok_or_else(|| EsError::Client {
                reason: format!("no client for host number {host}"),
            })
    }

    /// Sends `body` (of `body.items` items) to host `host` and classifies the reply.
    ///
    /// # Errors
    /// [`EsError`]: connection, timeout, refused credential (401/403), a failed whole
    /// request (429, 5xx, other non-2xx), or a 2xx reply that does not match the request.
    /// `host` out of range is [`EsError::Client`].
    pub async fn send_bulk(&self, host: usize, body: &EncodedBody) -> Result<BulkReply, EsError> {
        let (url, host_url) = match (self.bulk_urls.get(host), self.hosts.get(host)) {
            (Some(u), Some(h)) => (u.clone(), h),
            _ => {
                return Err(EsError::Client {
                    reason: format!("no host number {host} (have {})", self.hosts.len()),
                })
            }
        };
        let name = host_url.authority();
        let client = self.current(host)?;
        let generation = self.auth.refresh();
        let mut req = client
            .post(url)
            .headers(self.headers_now()?)
            .header(CONTENT_TYPE, "application/x-ndjson")
            .body(body.bytes.clone());
        if body.gzip {
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(&name, e))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(&name, e))?;
        match classify(status, &bytes, body.items) {
            Ok(RequestVerdict::Items(items)) => Ok(BulkReply::Items(items)),
            Ok(RequestVerdict::Split) => Ok(BulkReply::TooLarge),
            Ok(RequestVerdict::CredentialRefused { status }) => {
                let refused = self.auth.refused(&name, status, refusal_reason(&bytes));
                if self.auth.first_refusal(generation) {
                    // Once per credential: the retries that follow are DEBUG, and a new
                    // credential from its source gets its own ERROR if it is refused too.
                    error!(host = %name, error = %refused, "Elasticsearch refused the credential; events are kept and retried after the backoff, and the credential's source is re-read");
                } else {
                    debug!(host = %name, error = %refused, "credential still refused");
                }
                Err(EsError::Credential(refused))
            }
            Ok(RequestVerdict::RetryAll { status, reason })
            | Ok(RequestVerdict::Failed { status, reason }) => Err(EsError::Status {
                host: name,
                status,
                reason,
            }),
            Err(source) => Err(EsError::Response { host: name, source }),
        }
    }

    /// Sends one authenticated request (`GET` without `body`, `POST` of JSON with it) to
    /// `endpoint` below host `host`'s path, with the output's credentials and headers but
    /// not its bulk parameters. For `skidder test output`.
    ///
    /// # Errors
    /// [`EsError::Credential`] naming the credential for 401/403; connection, timeout and
    /// client errors as [`Self::send_bulk`]. Any other status is returned, not an error.
    pub async fn request(
        &self,
        host: usize,
        endpoint: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<EsReply, EsError> {
        let method = if body.is_some() {
            Method::Post
        } else {
            Method::Get
        };
        self.request_with(host, method, endpoint, body).await
    }

    /// As [`Self::request`] with an explicit method (the security API's `PUT` and
    /// `DELETE`); `body` is sent as JSON when given.
    ///
    /// # Errors
    /// As [`Self::request`].
    pub async fn request_with(
        &self,
        host: usize,
        method: Method,
        endpoint: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<EsReply, EsError> {
        let reply = self.send(host, method, endpoint, body, None).await?;
        if reply.status == 401 || reply.status == 403 {
            let authority = self
                .hosts
                .get(host)
                .map(HostUrl::authority)
                .unwrap_or_default();
            return Err(EsError::Credential(self.auth.refused(
                &authority,
                reply.status,
                refusal_reason(&reply.body),
            )));
        }
        Ok(reply)
    }

    /// As [`Self::request`], but with `authorization` as the `Authorization` header (a
    /// client's own API key, checked for the HTTP intake), and every status returned as it
    /// came: a 401 is the client's key refused, not ours.
    ///
    /// # Errors
    /// Connection, timeout and client errors as [`Self::send_bulk`].
    pub async fn request_as(
        &self,
        host: usize,
        endpoint: &str,
        body: Option<&serde_json::Value>,
        authorization: &crate::credentials::Secret,
    ) -> Result<EsReply, EsError> {
        let method = if body.is_some() {
            Method::Post
        } else {
            Method::Get
        };
        self.send(host, method, endpoint, body, Some(authorization))
            .await
    }

    async fn send(
        &self,
        host: usize,
        method: Method,
        endpoint: &str,
        body: Option<&serde_json::Value>,
        authorization: Option<&crate::credentials::Secret>,
    ) -> Result<EsReply, EsError> {
        let Some(host_url) = self.hosts.get(host) else {
            return Err(EsError::Client {
                reason: format!("no host number {host} (have {})", self.hosts.len()),
            });
        };
        let name = match host_url.scheme {
            Scheme::Https => self.server_name.as_deref(),
            Scheme::Http => None,
        };
        let url = host_url
            .url_as(name, endpoint, &[])
            .map_err(|reason| EsError::Client { reason })?;
        let authority = host_url.authority();
        let client = self.current(host)?;
        let method = match method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut req = client.request(method, url);
        if let Some(json) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(json.to_string());
        }
        let mut headers = self.headers_now()?;
        if let Some(secret) = authorization {
            let mut v = HeaderValue::from_str(secret.expose()).map_err(|_| EsError::Client {
                reason: "header Authorization cannot be sent over HTTP".into(),
            })?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let resp = req
            .headers(headers)
            .send()
            .await
            .map_err(|e| self.transport_error(&authority, e))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(&authority, e))?;
        Ok(EsReply { status, body })
    }

    /// The credential in use (shared by every clone of the output's [`EsAuth`]).
    pub fn auth(&self) -> &EsAuth {
        &self.auth
    }

    /// The custom headers and the `Authorization` of the credential in use now.
    fn headers_now(&self) -> Result<HeaderMap, EsError> {
        let mut map = self.headers.clone();
        if let Some(secret) = self.auth.authorization() {
            let mut v = HeaderValue::from_str(secret.expose()).map_err(|_| EsError::Client {
                reason: "header Authorization cannot be sent over HTTP".to_string(),
            })?;
            // Keeps the value out of hyper's debug output.
            v.set_sensitive(true);
            map.insert(AUTHORIZATION, v);
        }
        Ok(map)
    }

    fn transport_error(&self, host: &str, e: reqwest::Error) -> EsError {
        // reqwest's text quotes the URL, whose query carries `parameters` (secret).
        let e = e.without_url();
        if e.is_timeout() {
            EsError::Timeout {
                host: host.to_string(),
                after: self.timeout,
            }
        } else if e.is_connect() {
            EsError::Connect {
                host: host.to_string(),
                source: e,
            }
        } else {
            EsError::Request {
                host: host.to_string(),
                source: e,
            }
        }
    }
}

fn build_headers(auth: &EsAuth) -> Result<HeaderMap, EsError> {
    let bad = |what: &str| EsError::Client {
        reason: format!("header {what} cannot be sent over HTTP"),
    };
    let mut map = HeaderMap::new();
    for (name, value) in auth.headers() {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad(name))?;
        let v = HeaderValue::from_str(value).map_err(|_| bad(name))?;
        map.append(n, v);
    }
    // Authorization is added per request ([`EsClient::headers_now`]): it can be rotated.
    if let Some(secret) = auth.authorization() {
        HeaderValue::from_str(secret.expose()).map_err(|_| bad("Authorization"))?;
    }
    Ok(map)
}

/// Request timeout and connection pool of one host's client.
struct Pool {
    timeout: Duration,
    per_host: usize,
    /// `idle_connection_timeout`; `None` keeps idle connections.
    idle: Option<Duration>,
}

fn build_client(
    tls: Option<&ClientConfig>,
    pool: Pool,
    proxy: &ProxySettings,
    pinned: Option<PinnedResolver>,
) -> Result<reqwest::Client, EsError> {
    let mut builder = reqwest::Client::builder()
        .timeout(pool.timeout)
        .pool_max_idle_per_host(pool.per_host.max(1))
        .pool_idle_timeout(pool.idle)
        .redirect(reqwest::redirect::Policy::none())
        .http1_only()
        .user_agent(concat!("skidder/", env!("CARGO_PKG_VERSION")));
    if let Some(cfg) = tls {
        builder = builder.use_preconfigured_tls(cfg.clone());
    }
    if let Some(resolver) = pinned {
        builder = builder.dns_resolver(Arc::new(resolver));
    }
    builder = match proxy {
        // reqwest reads the environment's proxies unless told otherwise.
        ProxySettings::Environment => builder,
        ProxySettings::Disabled => builder.no_proxy(),
        ProxySettings::Url { url, headers } => {
            // The URL is not quoted: it may carry a password (validated in settings).
            let bad = |what: &str| EsError::Client {
                reason: format!("output.elasticsearch.proxy_url: {what}"),
            };
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                let n = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| bad(&format!("header {name} cannot be sent over HTTP")))?;
                let mut v = HeaderValue::from_str(value.expose())
                    .map_err(|_| bad(&format!("header {name} cannot be sent over HTTP")))?;
                v.set_sensitive(true);
                map.append(n, v);
            }
            let mut p =
                reqwest::Proxy::all(url.expose()).map_err(|_| bad("not a usable proxy URL"))?;
            if !map.is_empty() {
                p = p.headers(map);
            }
            builder.proxy(p)
        }
    };
    builder.build().map_err(|e| EsError::Client {
        reason: e.to_string(),
    })
}
