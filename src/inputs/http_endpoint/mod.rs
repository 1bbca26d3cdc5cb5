//! `type: http_endpoint`: applications POST events over HTTP (Filebeat's `http_endpoint`
//! names), authenticated as Filebeat does (`basic_auth`, `secret.*`, `hmac.*`) or as APM
//! Server does (`auth.secret_token`, `auth.api_key`), on the one HTTP stack ([`crate::http`]).
//!
//! ```text
//!  request ─▶ url? (404) ─▶ credentials (401/403; 503 when an API key cannot be checked now)
//!          ─▶ method (405) ─▶ Content-Type (415) ─▶ Content-Encoding (415)
//!          ─▶ in-flight budget (429 + Retry-After) ─▶ body within read_timeout (408) and
//!             max_message_size (413) ─▶ hmac (401) ─▶ gzip/deflate (413, 400)
//!          ─▶ JSON: object, array of objects, NDJSON (400 with line and column)
//!          ─▶ all events into the queue at once, or none (429 + Retry-After when full,
//!             503 while shutting down)
//!          ─▶ ack: queued → reply now; end_to_end → reply once the output settled them
//! ```
//!
//! A request is all or nothing: a bad object anywhere refuses the whole request before
//! anything is queued, and a full queue takes none of its events, so a client that retries
//! a refused request never creates duplicates. Accepted, it is answered with
//! `response_code` and `response_body`; with `ack: end_to_end` only once every event is
//! settled by the output (acknowledged, or dropped by a policy the configuration allows).

pub mod api_key;
pub mod body;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use tracing::{debug, warn};

use super::{CommonFields, InputError, InputIndex};
use crate::config::{
    ClientAuthentication, CommonInputConfig, ElasticsearchOutputConfig, HttpEndpointInputConfig,
    IntakeAck,
};
use crate::credentials::{Secret, TlsSettings, TlsSource};
use crate::event::{EventEncoder, EventMeta};
use crate::http::auth::{basic_matches, presented, same_secret, Presented};
use crate::http::{self, Bind, BodyError, Exposure, Handler, Peer, Reply, ServerSettings};
use crate::pipeline::{Publisher, TryPublishError};
use api_key::{Verdict, Verifier};
use body::{BodyProblem, Encoding, Shape};

/// `hmac.type`.
#[derive(Debug, Clone, Copy)]
enum HmacKind {
    Sha256,
    Sha1,
}

#[derive(Debug)]
struct Hmac {
    header: String,
    key: ring::hmac::Key,
    prefix: String,
}

/// The credentials a request must present (any one of the configured).
#[derive(Debug, Default)]
struct Credentials {
    basic: Option<(String, Secret)>,
    secret: Option<(String, Secret)>,
    hmac: Option<Hmac>,
    token: Option<Secret>,
    api_key: Option<Arc<Verifier>>,
}

impl Credentials {
    fn any(&self) -> bool {
        self.basic.is_some()
            || self.secret.is_some()
            || self.hmac.is_some()
            || self.token.is_some()
            || self.api_key.is_some()
    }
}

/// A validated `type: http_endpoint` input, ready to start.
#[derive(Debug)]
pub struct HttpEndpointInput {
    index: InputIndex,
    server: ServerSettings,
    exposure: Exposure,
    url: String,
    content_type: Option<String>,
    include_headers: Vec<String>,
    response_code: StatusCode,
    response_body: Bytes,
    credentials: Credentials,
    max_message_size: usize,
    max_in_flight: usize,
    ack: IntakeAck,
    retry_after: Duration,
    shape: Shape,
    meta: EventMeta,
}

impl HttpEndpointInput {
    /// Validates the settings of input `index` (TLS material and the API-key client are
    /// loaded now, so `skidder test config` finds a bad file).
    ///
    /// # Errors
    /// [`InputError::Invalid`] naming the key.
    pub fn new(
        index: InputIndex,
        _common: &CommonInputConfig,
        c: &HttpEndpointInputConfig,
        fields: CommonFields,
        meta: &EventMeta,
        output_es: Option<&ElasticsearchOutputConfig>,
    ) -> Result<Self, InputError> {
        let invalid =
            |key: &'static str, reason: String| InputError::Invalid { index, key, reason };
        if c.listen_address.trim().is_empty() {
            return Err(invalid("listen_address", "is empty".into()));
        }
        if !c.url.starts_with('/') {
            return Err(invalid("url", format!("{:?} does not start with /", c.url)));
        }
        let response_code = StatusCode::from_u16(c.response_code)
            .ok()
            .filter(|s| s.is_success())
            .ok_or_else(|| {
                invalid(
                    "response_code",
                    format!("{} is not a 2xx status", c.response_code),
                )
            })?;
        serde_json::from_str::<serde::de::IgnoredAny>(&c.response_body)
            .map_err(|e| invalid("response_body", format!("is not valid JSON: {e}")))?;
        let prefix = match c.prefix.trim() {
            "" => {
                return Err(invalid(
                    "prefix",
                    "is empty; use . for the event's root".into(),
                ))
            }
            "." => None,
            p if p.starts_with('@') => {
                return Err(invalid("prefix", format!("{p:?} is a key skidder owns")))
            }
            p => Some(p.to_string()),
        };
        let size = |key: &'static str, v: u64, min: u64| {
            usize::try_from(v)
                .ok()
                .filter(|&n| n as u64 >= min)
                .ok_or_else(|| invalid(key, format!("{v} bytes is below {min} bytes")))
        };
        let max_message_size = size("max_message_size", c.max_message_size.0, 64)?;
        let max_in_flight = size("max_in_flight_bytes", c.max_in_flight_bytes.0, 64)?;
        if max_in_flight < max_message_size {
            return Err(invalid(
                "max_in_flight_bytes",
                "is below max_message_size: no request of the largest size could be read".into(),
            ));
        }
        let max_header_size = size("max_header_size", c.max_header_size.0, 1024)?;
        for (key, d) in [
            ("read_timeout", c.read_timeout),
            ("idle_timeout", c.idle_timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(key, "must be greater than 0s".into()));
            }
        }
        let mut creds = Credentials::default();
        if c.basic_auth {
            match (&c.username, &c.password) {
                (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => {
                    creds.basic = Some((u.clone(), p.clone()))
                }
                _ => {
                    return Err(invalid(
                        "basic_auth",
                        "needs both username and password".into(),
                    ))
                }
            }
        }
        match (&c.secret.header, &c.secret.value) {
            (Some(h), Some(v)) if !h.is_empty() && !v.is_empty() => {
                hyper::header::HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| invalid("secret.header", format!("{h:?} is not a header name")))?;
                creds.secret = Some((h.clone(), v.clone()));
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "secret.header",
                    "secret.header and secret.value go together".into(),
                ))
            }
        }
        match (&c.hmac.header, &c.hmac.key) {
            (Some(h), Some(k)) if !h.is_empty() && !k.is_empty() => {
                let kind = match c.hmac.kind.as_str() {
                    "sha256" => HmacKind::Sha256,
                    "sha1" => HmacKind::Sha1,
                    other => {
                        return Err(invalid(
                            "hmac.type",
                            format!("{other:?} is neither sha256 nor sha1"),
                        ))
                    }
                };
                let alg = match kind {
                    HmacKind::Sha256 => ring::hmac::HMAC_SHA256,
                    // GitHub-style webhooks still sign with SHA-1; it is what they send.
                    HmacKind::Sha1 => ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                };
                creds.hmac = Some(Hmac {
                    header: h.clone(),
                    key: ring::hmac::Key::new(alg, k.expose().as_bytes()),
                    prefix: c.hmac.prefix.clone().unwrap_or_default(),
                });
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "hmac.header",
                    "hmac.header and hmac.key go together".into(),
                ))
            }
        }
        if let Some(t) = &c.auth.secret_token {
            if t.expose().trim().is_empty() {
                return Err(invalid("auth.secret_token", "is empty".into()));
            }
            creds.token = Some(t.clone());
        }
        if c.auth.api_key.enabled {
            creds.api_key = Some(Arc::new(verifier(index, c, output_es)?));
        }
        if creds.basic.is_some() && (creds.token.is_some() || creds.api_key.is_some()) {
            return Err(invalid(
                "basic_auth",
                "basic_auth and auth.secret_token/auth.api_key all use the Authorization header; choose one"
                    .into(),
            ));
        }
        let settings =
            TlsSettings::from_config(&c.ssl).map_err(|e| invalid("ssl", e.to_string()))?;
        let client_certs = settings.is_enabled()
            && settings.client_authentication() == ClientAuthentication::Required;
        let tls = if settings.is_enabled() {
            Some(Arc::new(
                TlsSource::server(settings).map_err(|e| invalid("ssl", e.to_string()))?,
            ))
        } else {
            None
        };
        let exposure = Exposure {
            tls: tls.is_some(),
            authenticated: creds.any() || client_certs,
            allow_insecure: c.allow_insecure,
        };
        Ok(Self {
            index,
            server: ServerSettings {
                name: String::new(),
                key: format!("{index}.listen_address"),
                bind: Bind::Tcp {
                    host: c.listen_address.trim().to_string(),
                    port: c.listen_port,
                },
                tls,
                max_connections: c.max_connections,
                read_timeout: c.read_timeout.get(),
                idle_timeout: c.idle_timeout.get(),
                max_header_size,
            },
            exposure,
            url: c.url.clone(),
            content_type: c
                .content_type
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_ascii_lowercase),
            include_headers: c.include_headers.clone(),
            response_code,
            response_body: Bytes::from(c.response_body.clone()),
            credentials: creds,
            max_message_size,
            max_in_flight,
            ack: c.ack,
            retry_after: c.retry_after.get().max(Duration::from_secs(1)),
            shape: Shape {
                prefix,
                common: fields,
                escape_html: meta.escape_html,
            },
            meta: meta.clone(),
        })
    }

    /// Binds the listener and serves on the current tokio runtime until it ends.
    ///
    /// # Errors
    /// [`InputError::Invalid`] for `listen_address`: exposed without TLS and
    /// authentication (and no `allow_insecure`), unresolvable or not bindable.
    pub fn start(
        mut self,
        name: &str,
        publisher: Publisher,
    ) -> Result<Option<std::net::SocketAddr>, InputError> {
        let index = self.index;
        let invalid = |reason: String| InputError::Invalid {
            index,
            key: "listen_address",
            reason,
        };
        let allow_key = format!("{index}.allow_insecure");
        self.exposure
            .check(&self.server.bind, &self.server.key, &allow_key)
            .map_err(|e| invalid(e.to_string()))?;
        self.server.name = name.to_string();
        let listener = http::bind(&self.server).map_err(|e| invalid(e.to_string()))?;
        http::announce(&self.server, &listener, "http_endpoint input");
        let local = listener.local_addr;
        let handler = Arc::new(Intake {
            name: name.to_string(),
            waiter: publisher.clone(),
            publisher: Mutex::new(publisher),
            in_flight: AtomicUsize::new(0),
            encoder: Mutex::new(EventEncoder::new(&self.meta)),
            settings: self,
        });
        let server = handler.settings.server.clone();
        http::serve(listener, server, handler);
        Ok(local)
    }
}

fn verifier(
    index: InputIndex,
    c: &HttpEndpointInputConfig,
    output_es: Option<&ElasticsearchOutputConfig>,
) -> Result<Verifier, InputError> {
    let invalid = |key: &'static str, reason: String| InputError::Invalid { index, key, reason };
    let a = &c.auth.api_key;
    let mut es = match (&a.elasticsearch, output_es) {
        (Some(own), _) => ElasticsearchOutputConfig {
            hosts: own.hosts.clone(),
            protocol: own.protocol.clone(),
            path: own.path.clone(),
            timeout: own.timeout,
            ssl: own.ssl.clone(),
            ..ElasticsearchOutputConfig::default()
        },
        (None, Some(out)) => {
            tracing::info!(input = %index, "auth.api_key: no auth.api_key.elasticsearch; asking the hosts of output.elasticsearch, without its credentials");
            out.clone()
        }
        (None, None) => {
            return Err(invalid(
                "auth.api_key.elasticsearch",
                "auth.api_key needs an Elasticsearch to verify keys with: set auth.api_key.elasticsearch.hosts or configure output.elasticsearch".into(),
            ))
        }
    };
    // As APM Server: only the client's key is ever sent.
    es.username = None;
    es.password = None;
    es.api_key = None;
    es.enabled = true;
    let settings = crate::outputs::elasticsearch::settings::ElasticsearchSettings::from_config(&es)
        .map_err(|e| invalid("auth.api_key.elasticsearch", e.to_string()))?;
    let client = crate::outputs::elasticsearch::EsClient::new(&settings)
        .map_err(|e| invalid("auth.api_key.elasticsearch", e.to_string()))?;
    if a.limit == 0 {
        return Err(invalid("auth.api_key.limit", "must be at least 1".into()));
    }
    if a.privilege.trim().is_empty() {
        return Err(invalid("auth.api_key.privilege", "is empty".into()));
    }
    let privilege = match &a.index {
        Some(index) if !index.trim().is_empty() => api_key::Privilege::Index {
            index: index.clone(),
            privilege: a.privilege.clone(),
        },
        _ => api_key::Privilege::Application {
            application: a.application.clone(),
            privilege: a.privilege.clone(),
            resource: a.resource.clone(),
        },
    };
    Ok(Verifier::new(
        client,
        privilege,
        a.cache.size,
        a.cache.expiry.get(),
        a.limit,
    ))
}

/// The running intake.
struct Intake {
    name: String,
    settings: HttpEndpointInput,
    /// Publishes whole requests ([`Publisher::try_publish_all`] never waits).
    publisher: Mutex<Publisher>,
    /// Never publishes: its counters tell when a request's events are settled.
    waiter: Publisher,
    /// Bytes of bodies being read or processed now.
    in_flight: AtomicUsize,
    encoder: Mutex<EventEncoder>,
}

/// A refused request: status and message (and whether to say when to retry).
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    text: String,
    retry: bool,
}

impl Refusal {
    fn new(status: StatusCode, text: &str) -> Self {
        Self {
            status,
            text: text.to_string(),
            retry: false,
        }
    }
}

/// Gives back a request's share of the in-flight budget.
struct InFlight<'a>(&'a AtomicUsize, usize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

const AUTH_HELP: &str = "authentication failed: missing or improperly formatted Authorization header: expected 'Authorization: Bearer secret_token' or 'Authorization: ApiKey base64(API key ID:API key)'";

impl Intake {
    fn retry_reply(&self, status: StatusCode, text: &str) -> Reply {
        let mut r = http::message_reply(status, text);
        let secs = self.settings.retry_after.as_secs().to_string();
        if let Ok(v) = HeaderValue::from_str(&secs) {
            r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
        }
        r
    }

    fn refusal_reply(&self, r: Refusal) -> Reply {
        if r.retry {
            self.retry_reply(r.status, &r.text)
        } else {
            http::message_reply(r.status, &r.text)
        }
    }

    /// The credential checks that need only the head.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let c = &self.settings.credentials;
        let unauthorized = |text: &str| Err(Refusal::new(StatusCode::UNAUTHORIZED, text));
        let p = presented(headers);
        if let Some((user, password)) = &c.basic {
            if !basic_matches(p.as_ref(), user, password) {
                return unauthorized("incorrect username or password");
            }
        }
        if let Some((name, value)) = &c.secret {
            let got = headers
                .get(name.as_str())
                .map(HeaderValue::as_bytes)
                .unwrap_or(b"");
            if !same_secret(got, value.expose().as_bytes()) {
                return unauthorized("incorrect header or header secret");
            }
        }
        if c.token.is_none() && c.api_key.is_none() {
            return Ok(());
        }
        match p {
            Some(Presented::Bearer(t)) => match &c.token {
                Some(token) if same_secret(t.as_bytes(), token.expose().as_bytes()) => Ok(()),
                _ => unauthorized("authentication failed"),
            },
            Some(Presented::ApiKey(k)) => {
                let Some(verifier) = &c.api_key else {
                    return unauthorized("authentication failed: API keys are not enabled");
                };
                match verifier.verify(&k).await {
                    Ok(Verdict::Allowed) => Ok(()),
                    Ok(Verdict::Refused(why)) => unauthorized(&format!("authentication failed: {why}")),
                    Ok(Verdict::Forbidden(why)) => Err(Refusal::new(
                        StatusCode::FORBIDDEN,
                        &format!("forbidden request: {why}"),
                    )),
                    Err(e) => {
                        warn!(input = %self.name, reason = %e, "an API key could not be verified");
                        Err(Refusal {
                            retry: true,
                            ..Refusal::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                &format!("service unavailable: {e}"),
                            )
                        })
                    }
                }
            }
            Some(Presented::Other(kind)) => unauthorized(&format!(
                "authentication failed: unknown Authentication header {kind}: expected 'Authorization: Bearer secret_token' or 'Authorization: ApiKey base64(API key ID:API key)'"
            )),
            Some(Presented::Basic { .. }) | Some(Presented::Malformed) | None => unauthorized(AUTH_HELP),
        }
    }

    fn check_hmac(&self, headers: &HeaderMap, raw: &[u8]) -> Result<(), Refusal> {
        let Some(h) = &self.settings.credentials.hmac else {
            return Ok(());
        };
        let unauthorized = |text: &str| Err(Refusal::new(StatusCode::UNAUTHORIZED, text));
        let Some(value) = headers.get(h.header.as_str()).and_then(|v| v.to_str().ok()) else {
            return unauthorized("missing HMAC header");
        };
        let sig = value.trim();
        let sig = sig.strip_prefix(h.prefix.as_str()).unwrap_or(sig);
        use base64::Engine as _;
        let decoded =
            decode_hex(sig).or_else(|| base64::engine::general_purpose::STANDARD.decode(sig).ok());
        match decoded {
            Some(tag) if ring::hmac::verify(&h.key, raw, &tag).is_ok() => Ok(()),
            _ => unauthorized("invalid HMAC signature"),
        }
    }

    fn headers_json(&self, headers: &HeaderMap) -> Option<Vec<u8>> {
        if self.settings.include_headers.is_empty() {
            return None;
        }
        let mut map = serde_json::Map::new();
        for name in &self.settings.include_headers {
            let values: Vec<serde_json::Value> = headers
                .get_all(name.as_str())
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
                .collect();
            if !values.is_empty() {
                map.insert(canonical_header(name), values.into());
            }
        }
        let mut b = bytes::BytesMut::new();
        let _ = crate::event::write_json(
            &mut b,
            &serde_json::Value::Object(map),
            self.settings.shape.escape_html,
        );
        Some(b.to_vec())
    }

    async fn serve(self: Arc<Self>, req: Request<Incoming>) -> Reply {
        let start = Instant::now();
        let s = &self.settings;
        if req.uri().path() != s.url {
            return http::message_reply(StatusCode::NOT_FOUND, "not found");
        }
        if let Err(r) = self.authenticate(req.headers()).await {
            return self.refusal_reply(r);
        }
        if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
            let mut r = http::message_reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "only POST, PUT and PATCH are accepted",
            );
            r.headers_mut().insert(
                hyper::header::ALLOW,
                HeaderValue::from_static("POST, PUT, PATCH"),
            );
            return r;
        }
        if let Some(want) = &s.content_type {
            let got = req
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(|v| v.trim().to_ascii_lowercase())
                .unwrap_or_default();
            if &got != want {
                return http::message_reply(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    &format!("wrong Content-Type header, expecting {want}"),
                );
            }
        }
        let Some(encoding) = Encoding::parse(
            req.headers()
                .get(CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok()),
        ) else {
            return http::message_reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported Content-Encoding; gzip and deflate are accepted",
            );
        };
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > s.max_message_size) {
            return too_large(s.max_message_size);
        }
        // The budget is taken before reading, for the most the body may be.
        let want = declared.unwrap_or(s.max_message_size);
        let taken = self.in_flight.fetch_add(want, Ordering::AcqRel);
        let _budget = InFlight(&self.in_flight, want);
        if taken + want > s.max_in_flight {
            return self.retry_reply(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests: max_in_flight_bytes of request bodies are being processed",
            );
        }
        let headers = req.headers().clone();
        let raw = match http::read_body(
            req.into_body(),
            s.max_message_size,
            s.server.read_timeout,
            start,
        )
        .await
        {
            Ok(b) => b,
            Err(BodyError::TooLarge { limit }) => return too_large(limit),
            Err(e @ BodyError::Timeout(_)) => {
                debug!(input = %self.name, reason = %e, "request abandoned");
                let mut r = http::message_reply(StatusCode::REQUEST_TIMEOUT, &e.to_string());
                r.headers_mut()
                    .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                return r;
            }
            Err(e) => return http::message_reply(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        if let Err(r) = self.check_hmac(&headers, &raw) {
            return self.refusal_reply(r);
        }
        let body = match body::decode(raw, encoding, s.max_message_size) {
            Ok(b) => b,
            Err(BodyProblem::TooLarge { limit }) => return too_large(limit),
            Err(e) => return http::message_reply(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        let events = {
            let objects = match body::objects(&body) {
                Ok(o) => o,
                Err(BodyProblem::Empty) => {
                    return http::message_reply(StatusCode::NOT_ACCEPTABLE, "body cannot be empty")
                }
                Err(e) => {
                    return http::message_reply(
                        StatusCode::BAD_REQUEST,
                        &format!("malformed JSON body: {e}"),
                    )
                }
            };
            let headers_json = self.headers_json(&headers);
            let mut enc = self.encoder.lock().unwrap_or_else(|p| p.into_inner());
            match body::events(
                &body,
                &objects,
                &s.shape,
                headers_json.as_deref(),
                &mut enc,
                SystemTime::now(),
            ) {
                Ok(e) => e,
                Err(e) => {
                    return http::message_reply(
                        StatusCode::BAD_REQUEST,
                        &format!("malformed JSON body: {e}"),
                    )
                }
            }
        };
        let n = events.len();
        let published = self
            .publisher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_publish_all(events);
        let watermark = match published {
            Ok(w) => w,
            Err(TryPublishError::Full { capacity, .. }) if n > capacity => {
                return http::message_reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the request holds {n} events, more than the whole queue (queue.mem.events: {capacity}); send smaller requests"),
                )
            }
            Err(TryPublishError::Full { .. }) => {
                return self.retry_reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests: the queue is full; retry after the delay given",
                )
            }
            Err(TryPublishError::Stopped) => {
                return self.retry_reply(StatusCode::SERVICE_UNAVAILABLE, "service unavailable: skidder is shutting down")
            }
        };
        if s.ack == IntakeAck::EndToEnd {
            self.waiter.wait_settled(watermark).await;
            if self.waiter.settled() < watermark {
                return self.retry_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service unavailable: skidder stopped before the output acknowledged the events",
                );
            }
        }
        http::json_reply(s.response_code, s.response_body.clone())
    }
}

fn too_large(limit: usize) -> Reply {
    http::message_reply(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the request body is larger than max_message_size ({limit} bytes)"),
    )
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// `x-request-id` → `X-Request-Id`, as Go's `CanonicalHeaderKey` (Filebeat's names).
fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

impl Handler for Intake {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        _peer: Peer,
    ) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
        Box::pin(self.serve(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical_header("x-request-id"), "X-Request-Id");
        assert_eq!(canonical_header("USER-AGENT"), "User-Agent");
    }

    #[test]
    fn hex_signatures() {
        assert_eq!(decode_hex("0aff"), Some(vec![10, 255]));
        assert_eq!(decode_hex("0af"), None);
        assert_eq!(decode_hex("zz"), None);
    }

    fn new(c: HttpEndpointInputConfig) -> Result<HttpEndpointInput, InputError> {
        HttpEndpointInput::new(
            crate::inputs::InputIndex::new("skidder.inputs", 2),
            &CommonInputConfig::default(),
            &c,
            CommonFields::default(),
            &EventMeta::default(),
            None,
        )
    }

    #[test]
    fn settings_that_go_together_are_checked() {
        assert!(new(HttpEndpointInputConfig::default()).is_ok());
        let mut c = HttpEndpointInputConfig {
            basic_auth: true,
            ..Default::default()
        };
        assert!(new(c.clone())
            .unwrap_err()
            .to_string()
            .contains("inputs[2].basic_auth"));
        c.username = Some("u".into());
        c.password = Some(Secret::new("p"));
        assert!(new(c.clone()).is_ok());
        c.auth.secret_token = Some(Secret::new("t"));
        assert!(new(c)
            .unwrap_err()
            .to_string()
            .contains("Authorization header"));
        let c = HttpEndpointInputConfig {
            response_code: 404,
            ..Default::default()
        };
        assert!(new(c).unwrap_err().to_string().contains("response_code"));
        let mut c = HttpEndpointInputConfig::default();
        c.auth.api_key.enabled = true;
        assert!(new(c)
            .unwrap_err()
            .to_string()
            .contains("auth.api_key.elasticsearch"));
        let mut c = HttpEndpointInputConfig::default();
        c.hmac.header = Some("X-Sig".into());
        assert!(new(c).unwrap_err().to_string().contains("hmac"));
    }
}
