//! `skidder test output`: connects once to every configured host of `output.logstash` and
//! `output.elasticsearch` (both when `output.failover` is on) and reports each phase with
//! ✓/✗, its duration and what it found: the addresses, the TLS version, cipher suite, the
//! peer's chain and the pin that matched, and for Elasticsearch the cluster, the user or API
//! key the credentials stand for, and whether it may write to the configured index.
//!
//! A finished TLS handshake does not mean the server accepted us: with TLS 1.3 the server
//! checks our client certificate after our side of the handshake is done, and its refusal
//! (a TLS alert, or a close) only shows on the next read. So every Logstash host gets a
//! `session` phase: an empty window (`2W 0`, no event) is sent and the reply read for a
//! bounded time (2 s at least). Logstash answers ACK 0, go-lumber stays silent; both mean
//! accepted. An alert, a close or non-Lumberjack bytes (a TLS record when TLS is off) mean
//! refused, and the line says which. For Elasticsearch `GET /` is that check; a TLS alert,
//! a TLS front's refusal (nginx's HTTP 400 "No required SSL certificate was sent") and
//! plain `http://` to a TLS port are reported as the `session` phase too.
//!
//! Nothing is sent that could index or deliver an event. Every phase runs once: a refused
//! credential is reported and never retried. The phases reuse the outputs' own code (the
//! Logstash [`Connector`], the Elasticsearch [`EsClient`]), so what passes here is what the
//! outputs will do.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::AlertDescription;
use serde_json::Value;
use skidder_protocol::frame::{encode_window, ACK_FRAME_LEN, WINDOW_FRAME_LEN};
use skidder_protocol::{FrameType, Version};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::elasticsearch::roles::{self, Feature};
use super::elasticsearch::settings::{Scheme, WriteNeeds};
use super::elasticsearch::{ElasticsearchSettings, EsClient, EsError, EsReply};
use super::logstash::{Connector, Endpoint, LogstashSettings, Probe, Stream};
use crate::config::units::human;
use crate::config::{OutputsConfig, VerificationMode};
use crate::credentials::expiry::{format_time, Validity};
use crate::credentials::{Alpn, CredentialError, TlsSettings, TlsSource};

/// The shortest time the session check waits for the server's verdict. A refusal comes
/// one round trip after the handshake (the server checks our certificate as soon as our
/// last handshake flight arrives); go-lumber never answers an empty window, so for it the
/// whole wait passes. Longer when connecting took long (`session_wait`).
const SESSION_WAIT: Duration = Duration::from_secs(2);

/// The name of the phase that proves the server accepted the session.
const SESSION: &str = "session";

/// Why the hosts could not be tested at all (a configuration problem).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// `output.logstash` is invalid.
    #[error(transparent)]
    Logstash(Box<super::logstash::SettingsError>),
    /// `output.elasticsearch` is invalid.
    #[error(transparent)]
    Elasticsearch(Box<super::elasticsearch::SettingsError>),
    /// The TLS material of an output cannot be loaded.
    #[error("{key}.ssl: {source}")]
    Tls {
        /// `output.logstash` or `output.elasticsearch`.
        key: &'static str,
        /// Why.
        source: Box<CredentialError>,
    },
    /// The Elasticsearch HTTP client cannot be built.
    #[error("output.elasticsearch: {0}")]
    Client(Box<EsError>),
    /// No async runtime could be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// One phase of one host.
#[derive(Debug, Clone)]
pub struct PhaseLine {
    /// Passed (or was skipped for a reason that is no failure).
    pub ok: bool,
    /// Not run; `detail` says why.
    pub skipped: bool,
    /// e.g. `TLS handshake`, `authenticate`.
    pub name: String,
    /// How long it took, when it completed.
    pub took: Option<Duration>,
    /// What it found, or why it failed.
    pub detail: String,
}

/// Everything learnt about one host.
#[derive(Debug, Clone)]
pub struct HostReport {
    /// `output.logstash` or `output.elasticsearch`.
    pub output: &'static str,
    /// The host as configured (`host:port` or the URL, never with credentials).
    pub host: String,
    /// The phases, in order, up to the first failure.
    pub phases: Vec<PhaseLine>,
    /// Indented detail lines (the TLS handshake report, notes).
    pub details: Vec<String>,
    /// The phase that failed (its line says why).
    pub failure: Option<String>,
}

impl HostReport {
    fn new(output: &'static str, host: String) -> Self {
        Self {
            output,
            host,
            phases: Vec::new(),
            details: Vec::new(),
            failure: None,
        }
    }

    fn pass(&mut self, name: &str, took: Duration, detail: impl Into<String>) {
        self.phases.push(PhaseLine {
            ok: true,
            skipped: false,
            name: name.to_string(),
            took: Some(took),
            detail: detail.into(),
        });
    }

    fn skip(&mut self, name: &str, detail: impl Into<String>) {
        self.phases.push(PhaseLine {
            ok: true,
            skipped: true,
            name: name.to_string(),
            took: None,
            detail: detail.into(),
        });
    }

    fn fail(&mut self, name: &str, took: Option<Duration>, detail: impl Into<String>) {
        let detail = detail.into();
        self.failure = Some(name.to_string());
        self.phases.push(PhaseLine {
            ok: false,
            skipped: false,
            name: name.to_string(),
            took,
            detail,
        });
    }

    /// True when every phase passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// The report of `skidder test output`.
#[derive(Debug, Clone, Default)]
pub struct OutputReport {
    /// One entry per host, Logstash hosts first.
    pub hosts: Vec<HostReport>,
    /// Lines about the configuration as a whole (e.g. an output without hosts).
    pub notes: Vec<String>,
}

impl OutputReport {
    /// True when every host passed (and so the command exits 0).
    pub fn passed(&self) -> bool {
        self.hosts.iter().all(HostReport::passed)
    }
}

impl fmt::Display for OutputReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for note in &self.notes {
            writeln!(f, "{note}")?;
        }
        let width = self
            .hosts
            .iter()
            .flat_map(|h| h.phases.iter().map(|p| p.name.len()))
            .max()
            .unwrap_or(0);
        for host in &self.hosts {
            writeln!(f, "{} {}", host.output, host.host)?;
            for p in &host.phases {
                let mark = match (p.ok, p.skipped) {
                    (_, true) => "-",
                    (true, false) => "✓",
                    (false, false) => "✗",
                };
                let took = p.took.map(|t| format!("{t:.1?}")).unwrap_or_default();
                writeln!(f, "  {mark} {:<width$}  {took:>9}  {}", p.name, p.detail)?;
            }
            for d in &host.details {
                writeln!(f, "      {d}")?;
            }
            match &host.failure {
                None => writeln!(f, "  result: OK")?,
                Some(phase) => writeln!(f, "  result: FAIL ({phase} failed)")?,
            }
            writeln!(f)?;
        }
        let ok = self.hosts.iter().filter(|h| h.passed()).count();
        writeln!(
            f,
            "{} host(s) tested: {ok} OK, {} failed",
            self.hosts.len(),
            self.hosts.len() - ok
        )
    }
}

/// Tests every host of the enabled `output.logstash` and `output.elasticsearch` on a
/// runtime of its own.
///
/// # Errors
/// [`ProbeError`] for a configuration that cannot be used; unreachable or refusing hosts
/// are in the report, not errors.
pub fn run(cfg: &OutputsConfig) -> Result<OutputReport, ProbeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ProbeError::Runtime)?;
    rt.block_on(probe_outputs(cfg))
}

/// As [`run`], on the caller's runtime.
///
/// # Errors
/// As [`run`].
pub async fn probe_outputs(cfg: &OutputsConfig) -> Result<OutputReport, ProbeError> {
    let mut report = OutputReport::default();
    let enabled = cfg.enabled();
    let mut tested = false;
    if let Some(ls) = cfg.logstash.as_ref().filter(|c| c.enabled) {
        tested = true;
        let settings =
            LogstashSettings::from_config(ls).map_err(|e| ProbeError::Logstash(Box::new(e)))?;
        probe_logstash(&settings, &mut report).await?;
    }
    if let Some(es) = cfg.elasticsearch.as_ref().filter(|c| c.enabled) {
        tested = true;
        let settings = ElasticsearchSettings::from_config(es)
            .map_err(|e| ProbeError::Elasticsearch(Box::new(e)))?;
        probe_elasticsearch(&settings, &mut report).await?;
    }
    if !tested {
        report.notes.push(match enabled.first() {
            Some(key) => format!("{key} sends to no network host; nothing to test"),
            None => "no output is enabled; nothing to test".to_string(),
        });
    }
    Ok(report)
}

/// Our client certificate's validity (subject and dates); `None` without TLS or without a
/// client certificate.
fn our_certificate(tls: Option<&TlsSettings>) -> Option<Validity> {
    // Already loaded once successfully (the connector needed it), so a failure here is a
    // file changed in between; the handshake line reports what the connection saw.
    tls?.load_material().ok()?.validity
}

/// Lines about our side of TLS: an unverified server, and our client certificate's
/// subject and expiry.
fn tls_notes(tls: Option<&TlsSettings>, ours: Option<&Validity>) -> Vec<String> {
    let Some(tls) = tls else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    if tls.verification_mode() == VerificationMode::None {
        notes.push(
            "ssl.verification_mode is none: the server certificate was NOT verified".to_string(),
        );
    }
    if let Some(v) = ours {
        let now = OffsetDateTime::now_utc();
        let days = (v.not_after - now).whole_days();
        let mut line = format!(
            "our certificate: subject {}, valid until {} ({days} days left)",
            v.subject,
            format_time(v.not_after)
        );
        if v.expires_within(now, tls.expiry_warning()) {
            line.push_str("; expires within ssl.expiry_warning: renew it");
        }
        notes.push(line);
    }
    notes
}

/// Adds the phases of a transport probe to `host`; the open connection when all passed.
fn record_transport(host: &mut HostReport, probe: Probe) -> Option<Box<dyn Stream>> {
    for step in &probe.steps {
        host.pass(step.phase.name(), step.took, step.detail.clone());
    }
    if let Some(hs) = &probe.handshake {
        host.details
            .extend(hs.to_string().lines().map(str::to_string));
    }
    match probe.failure {
        None => probe.stream,
        Some(e) => {
            host.fail(e.phase().name(), None, e.to_string());
            None
        }
    }
}

async fn probe_logstash(
    settings: &LogstashSettings,
    report: &mut OutputReport,
) -> Result<(), ProbeError> {
    let tls = settings
        .tls
        .clone()
        .map(|t| TlsSource::client(t, Alpn::None).map(Arc::new))
        .transpose()
        .map_err(|source| ProbeError::Tls {
            key: "output.logstash",
            source: Box::new(source),
        })?;
    let connector = Connector::new(settings.timeout, settings.proxy.clone(), tls);
    let ours = our_certificate(settings.tls.as_ref());
    let notes = tls_notes(settings.tls.as_ref(), ours.as_ref());
    let side = Side {
        tls: settings.tls.is_some(),
        our_subject: ours.map(|v| v.subject),
    };
    for endpoint in &settings.hosts {
        let mut host = HostReport::new("output.logstash", endpoint.to_string());
        if settings.tls.is_none() {
            host.details
                .push("TLS is off (no ssl.* set): the connection is plain TCP".to_string());
        }
        host.details.extend(notes.iter().cloned());
        let probe = connector.probe(endpoint).await;
        let wait = session_wait(&probe, settings.timeout);
        if let Some(mut stream) = record_transport(&mut host, probe) {
            let started = Instant::now();
            let reply = empty_window_exchange(&mut stream, wait).await;
            match judge_session(&reply, &side) {
                Ok(detail) => host.pass(SESSION, started.elapsed(), detail),
                Err(why) => host.fail(SESSION, Some(started.elapsed()), why),
            }
        }
        report.hosts.push(host);
    }
    Ok(())
}

/// How long the session check waits: [`SESSION_WAIT`], or four times the slowest phase of
/// connecting when that is longer (a far server's refusal takes a round trip), never more
/// than `output.logstash.timeout`.
fn session_wait(probe: &Probe, timeout: Duration) -> Duration {
    let slowest = probe.steps.iter().map(|s| s.took).max().unwrap_or_default();
    SESSION_WAIT.max(slowest.saturating_mul(4)).min(timeout)
}

/// Our side of a session, for naming the reason of a refusal.
#[derive(Debug, Clone, Default)]
struct Side {
    /// TLS is on.
    tls: bool,
    /// The subject of the client certificate we present, when we present one.
    our_subject: Option<String>,
}

/// What the server did after we sent an empty window.
#[derive(Debug)]
enum SessionReply {
    /// It sent these bytes (the first ones, at most one read's worth).
    Bytes(Vec<u8>),
    /// Nothing arrived within the wait and the connection stayed open.
    Silent(Duration),
    /// It closed the connection (end of stream).
    Closed,
    /// Writing or reading failed (a TLS alert, a reset).
    Failed(std::io::Error),
}

/// Sends one empty window (`2W 0`: no event follows, so nothing can be delivered) and
/// reads what comes back within `wait`.
async fn empty_window_exchange(stream: &mut Box<dyn Stream>, wait: Duration) -> SessionReply {
    let mut window = Vec::with_capacity(WINDOW_FRAME_LEN);
    encode_window(Version::V2, 0, &mut window);
    exchange(stream, &window, wait).await
}

/// Sends `request` and reads the first bytes of the reply (at least an ACK frame's worth
/// when they come) within `wait`.
async fn exchange(stream: &mut Box<dyn Stream>, request: &[u8], wait: Duration) -> SessionReply {
    let deadline = tokio::time::Instant::now() + wait;
    let write = async {
        stream.write_all(request).await?;
        stream.flush().await
    };
    // A failed write is reported only when the read has nothing better: a server that
    // refused us may already have closed, while its alert is still readable.
    let write_error = match tokio::time::timeout_at(deadline, write).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("writing timed out after {}", human(wait)),
        )),
    };
    // Enough for an ACK, a TLS alert record or an HTTP status line.
    let mut buf = [0u8; 64];
    let mut got = 0;
    let reply = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf[got..])).await {
            Ok(Ok(0)) if got == 0 => break SessionReply::Closed,
            Ok(Ok(n)) if n > 0 && got + n < ACK_FRAME_LEN => got += n,
            Ok(Ok(n)) => break SessionReply::Bytes(buf[..got + n].to_vec()),
            Ok(Err(e)) if got == 0 => break SessionReply::Failed(e),
            Err(_) if got == 0 => break SessionReply::Silent(wait),
            Ok(Err(_)) | Err(_) => break SessionReply::Bytes(buf[..got].to_vec()),
        }
    };
    match (reply, write_error) {
        (SessionReply::Silent(_), Some(e)) => SessionReply::Failed(e),
        (reply, _) => reply,
    }
}

/// The verdict on a session from what the server did with an empty window: `Ok` with what
/// showed it was accepted, `Err` with the reason it was refused.
fn judge_session(reply: &SessionReply, side: &Side) -> Result<String, String> {
    match reply {
        SessionReply::Bytes(b) => judge_bytes(b, side),
        SessionReply::Silent(wait) => Ok(format!(
            "accepted: the connection stayed open for {} after an empty window \
             (no reply, as go-lumber; Logstash answers ACK 0)",
            human(*wait)
        )),
        SessionReply::Closed => Err(closed(side, "closed")),
        SessionReply::Failed(e) => {
            if let Some(alert) = tls_alert(e) {
                return Err(refused_by_alert(alert, side));
            }
            use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
            match e.kind() {
                ConnectionReset | ConnectionAborted | BrokenPipe => Err(closed(side, "reset")),
                _ => Err(format!("refused: the session failed: {e}")),
            }
        }
    }
}

/// The reason for a connection the server ended without a word.
fn closed(side: &Side, how: &str) -> String {
    if side.tls {
        format!(
            "refused: the server {how} the connection after the TLS handshake without a \
             reason (a server may do so for a client certificate it does not accept; see its log)"
        )
    } else {
        format!(
            "refused: the server {how} the connection on our first Lumberjack bytes (an empty \
             window): it does not speak plain Lumberjack; if the port expects TLS, set \
             ssl.enabled: true and ssl.certificate_authorities"
        )
    }
}

/// Bytes the server sent in reply to an empty window.
fn judge_bytes(b: &[u8], side: &Side) -> Result<String, String> {
    let version = b.first().and_then(|&v| Version::try_from(v).ok());
    let frame = b.get(1).and_then(|&t| FrameType::try_from(t).ok());
    if version.is_some() && frame == Some(FrameType::Ack) {
        let seq = b
            .get(2..ACK_FRAME_LEN)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_be_bytes);
        return Ok(match seq {
            Some(seq) => format!("accepted: the server answered an empty window with ACK {seq}"),
            None => "accepted: the server answered an empty window with an ACK".to_string(),
        });
    }
    let shown = hex_start(b);
    if let Some(record) = tls_record(b) {
        return Err(if side.tls {
            format!("refused: the server sent a stray TLS {record} record ({shown})")
        } else {
            format!(
                "refused: the server speaks TLS: it answered our plaintext Lumberjack bytes \
                 with a TLS {record} record ({shown}); set ssl.enabled: true and \
                 ssl.certificate_authorities"
            )
        });
    }
    if b.starts_with(b"HTTP/") {
        let line = String::from_utf8_lossy(b);
        let line = line.lines().next().unwrap_or_default();
        return Err(format!(
            "refused: the server speaks HTTP, not Lumberjack: it answered {line:?}"
        ));
    }
    Err(format!(
        "refused: the server is not speaking Lumberjack: it answered an empty window with {shown}"
    ))
}

/// The kind of TLS record `b` starts with: a content type (RFC 8446 §5.1) and major
/// version 3 (every TLS version writes 0x03 0x0N in the record header).
fn tls_record(b: &[u8]) -> Option<&'static str> {
    let kind = match b.first()? {
        0x14 => "change-cipher-spec",
        0x15 => "alert",
        0x16 => "handshake",
        0x17 => "application-data",
        _ => return None,
    };
    (b.get(1) == Some(&0x03)).then_some(kind)
}

/// The first bytes as `0x15 0x03 0x03 …`.
fn hex_start(b: &[u8]) -> String {
    let mut s: Vec<String> = b.iter().take(8).map(|x| format!("0x{x:02x}")).collect();
    if b.len() > 8 {
        s.push("…".to_string());
    }
    s.join(" ")
}

/// The TLS alert the server sent, when `e` (or an error it wraps) is one.
fn tls_alert(e: &(dyn std::error::Error + 'static)) -> Option<AlertDescription> {
    let mut next = Some(e);
    while let Some(err) = next {
        // io::Error's `source()` skips the error it wraps, so look inside it by hand.
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>());
        if let Some(rustls::Error::AlertReceived(alert)) =
            inner.or_else(|| err.downcast_ref::<rustls::Error>())
        {
            return Some(*alert);
        }
        next = err.source();
    }
    None
}

/// True for the alerts a server sends about the client certificate (RFC 8446 §6.2).
fn is_certificate_alert(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
    )
}

/// The reason for a session ended by a TLS alert from the server.
fn refused_by_alert(alert: AlertDescription, side: &Side) -> String {
    if !is_certificate_alert(alert) {
        return format!("refused: the server ended the session with TLS alert {alert:?}");
    }
    refused_certificate(&format!("TLS alert {alert:?}"), side)
}

/// The reason for a refused client certificate; `evidence` is what the server said.
fn refused_certificate(evidence: &str, side: &Side) -> String {
    match &side.our_subject {
        None => format!(
            "refused: the server refused our client certificate: we presented none and it \
             requires one ({evidence}); set ssl.certificate and ssl.key"
        ),
        Some(subject) => format!(
            "refused: the server refused our client certificate {subject} ({evidence}); is it \
             issued by a CA the server trusts, and still valid?"
        ),
    }
}

async fn probe_elasticsearch(
    settings: &ElasticsearchSettings,
    report: &mut OutputReport,
) -> Result<(), ProbeError> {
    let client = EsClient::new(settings).map_err(|e| ProbeError::Client(Box::new(e)))?;
    let tls = settings
        .tls
        .clone()
        .map(|t| TlsSource::client(t, Alpn::Http11).map(Arc::new))
        .transpose()
        .map_err(|source| ProbeError::Tls {
            key: "output.elasticsearch",
            source: Box::new(source),
        })?;
    let plain = Connector::new(settings.timeout, None, None);
    let secure = Connector::new(settings.timeout, None, tls);
    let pattern = roles::index_pattern(settings.index.source());
    let ours = our_certificate(settings.tls.as_ref());
    let notes = tls_notes(settings.tls.as_ref(), ours.as_ref());
    let our_subject = ours.map(|v| v.subject);
    for (i, url) in settings.hosts.iter().enumerate() {
        let mut host = HostReport::new("output.elasticsearch", url.to_string());
        let endpoint = Endpoint {
            host: url.host.clone(),
            port: url.port,
        };
        let (connector, side) = match url.scheme {
            Scheme::Https => {
                host.details.extend(notes.iter().cloned());
                let side = Side {
                    tls: true,
                    our_subject: our_subject.clone(),
                };
                (&secure, side)
            }
            Scheme::Http => (&plain, Side::default()),
        };
        // The connection of the probe is closed: `GET /` (on the client's own connection)
        // is what shows the session is accepted.
        if record_transport(&mut host, connector.probe(&endpoint).await).is_some() {
            let target = Target {
                connector: &plain,
                endpoint: &endpoint,
                wait: SESSION_WAIT.min(settings.timeout),
            };
            probe_http(&client, i, settings, &pattern, &side, &target, &mut host).await;
        }
        report.hosts.push(host);
    }
    Ok(())
}

/// The error text of an Elasticsearch reply: `error.reason`, else an HTML page's title
/// (a proxy's error page), else the body's start.
fn reason(reply: &EsReply) -> String {
    let parsed: Option<Value> = serde_json::from_slice(&reply.body).ok();
    let from_json = parsed.as_ref().and_then(|v| match &v["error"] {
        Value::String(s) => Some(s.clone()),
        e => e["reason"].as_str().map(str::to_string),
    });
    from_json.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&reply.body);
        html_title(&text).unwrap_or_else(|| text.chars().take(200).collect())
    })
}

/// The `<title>` of an HTML page without a leading status code: nginx's
/// `<title>400 No required SSL certificate was sent</title>` gives the sentence.
fn html_title(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower[start..].find("</title>")?;
    let title = text.get(start..end)?.trim();
    let title = match title.split_once(' ') {
        Some((code, rest)) if code.len() == 3 && code.bytes().all(|c| c.is_ascii_digit()) => rest,
        _ => title,
    };
    Some(title.to_string())
}

/// A reply by which a TLS front refuses the session rather than answering for the
/// cluster: nginx answers HTTP 400 with these pages when `ssl_verify_client on` finds no
/// or a bad client certificate (its internal 496/495), or plain HTTP reaches its TLS
/// port (497). `why` is the reply's [`reason`].
fn http_session_refusal(status: u16, why: &str, side: &Side) -> Option<String> {
    if !matches!(status, 400 | 495 | 496 | 497) {
        return None;
    }
    let evidence = format!("HTTP {status} {why:?}");
    let lower = why.to_ascii_lowercase();
    if lower.contains("plain http request was sent to https port") {
        return Some(format!(
            "refused: the server speaks TLS ({evidence}); use https:// in hosts"
        ));
    }
    if lower.contains("no required ssl certificate was sent") {
        // Whatever we configured, the front saw no certificate.
        let none = Side {
            our_subject: None,
            ..side.clone()
        };
        return Some(refused_certificate(&evidence, &none));
    }
    if lower.contains("ssl certificate error") {
        return Some(refused_certificate(&evidence, side));
    }
    None
}

/// A failed request as one sentence; a refused credential says which one.
fn request_failure(e: &EsError) -> String {
    match e {
        EsError::Credential(CredentialError::Refused {
            credential,
            host,
            status,
            reason,
        }) => {
            let why = if reason.is_empty() {
                String::new()
            } else {
                format!(" ({reason})")
            };
            format!(
                "{host} refused {credential} with HTTP {status}{why}; fix that credential \
                 (not retried)"
            )
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// Where a plain `http://` host is reached again to explain a failed request.
struct Target<'a> {
    /// A connector without TLS.
    connector: &'a Connector,
    /// The host.
    endpoint: &'a Endpoint,
    /// How long to wait for its answer.
    wait: Duration,
}

/// Why a plain `http://` request failed below HTTP: a fresh connection gets a bare
/// `GET /` (no credentials) and the first bytes of the answer are looked at. A TLS port
/// answers with an alert record (rustls) or closes (Elasticsearch's Netty). `None` when
/// the server answers HTTP (the request's own error stands) or is gone.
async fn diagnose_plain_http(target: &Target<'_>) -> Option<String> {
    let mut stream = target.connector.connect(target.endpoint).await.ok()?.stream;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        target.endpoint
    );
    let reply = exchange(&mut stream, request.as_bytes(), target.wait).await;
    judge_plain_http(&reply)
}

/// The reason a plain HTTP request was refused, from the raw reply; `None` for HTTP.
fn judge_plain_http(reply: &SessionReply) -> Option<String> {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    let closed = "refused: the server closed the connection on a plain HTTP request; if the \
                  port expects TLS, use https:// in hosts";
    match reply {
        SessionReply::Bytes(b) if b.starts_with(b"HTTP/") => None,
        SessionReply::Bytes(b) => Some(match tls_record(b) {
            Some(record) => format!(
                "refused: the server speaks TLS: it answered a plain HTTP request with a TLS \
                 {record} record ({}); use https:// in hosts",
                hex_start(b)
            ),
            None => format!(
                "refused: the server is not speaking HTTP: it answered {}",
                hex_start(b)
            ),
        }),
        SessionReply::Closed => Some(closed.to_string()),
        SessionReply::Failed(e)
            if matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe) =>
        {
            Some(closed.to_string())
        }
        SessionReply::Silent(_) | SessionReply::Failed(_) => None,
    }
}

async fn probe_http(
    client: &EsClient,
    i: usize,
    settings: &ElasticsearchSettings,
    pattern: &str,
    side: &Side,
    target: &Target<'_>,
    host: &mut HostReport,
) {
    // GET /: the cluster is there and speaks Elasticsearch.
    let started = Instant::now();
    match client.request(i, "", None).await {
        Ok(r) if (200..300).contains(&r.status) => {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let product = match v["version"]["distribution"].as_str() {
                Some("opensearch") => "OpenSearch",
                _ => "Elasticsearch",
            };
            host.pass(
                "GET /",
                started.elapsed(),
                format!(
                    "cluster {}, {product} {}",
                    v["cluster_name"].as_str().unwrap_or("(unnamed)"),
                    v["version"]["number"]
                        .as_str()
                        .unwrap_or("(version unknown)")
                ),
            );
        }
        Ok(r) => {
            let why = reason(&r);
            if let Some(refusal) = http_session_refusal(r.status, &why, side) {
                return host.fail(SESSION, Some(started.elapsed()), refusal);
            }
            let why = format!("HTTP {}: {why}", r.status);
            return host.fail("GET /", Some(started.elapsed()), why);
        }
        Err(EsError::Credential(CredentialError::Refused { status: 403, .. })) => {
            // Authenticated, but `GET /` needs cluster `monitor`, which the least-privilege
            // writer role leaves out: the output never calls it.
            host.pass(
                "GET /",
                started.elapsed(),
                "authenticated; no cluster monitor privilege to read cluster information (shipping does not need it)",
            );
        }
        Err(e) => {
            // A rustls server refuses a TLS 1.3 client certificate with an alert that
            // arrives with the reply.
            if let Some(alert) = tls_alert(&e) {
                return host.fail(
                    SESSION,
                    Some(started.elapsed()),
                    refused_by_alert(alert, side),
                );
            }
            let took = started.elapsed();
            // Only a failure below HTTP needs the look at the raw reply.
            let transport = matches!(e, EsError::Connect { .. } | EsError::Request { .. });
            if transport && !side.tls {
                if let Some(refusal) = diagnose_plain_http(target).await {
                    return host.fail(SESSION, Some(took), refusal);
                }
            }
            return host.fail("GET /", Some(took), request_failure(&e));
        }
    }

    // Who the credentials are.
    let started = Instant::now();
    let security = match client.request(i, "_security/_authenticate", None).await {
        Ok(r) if (200..300).contains(&r.status) => {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            host.pass("authenticate", started.elapsed(), describe_identity(&v));
            true
        }
        Ok(r) if no_security(&r) => {
            host.pass(
                "authenticate",
                started.elapsed(),
                "no security plugin: requests are not authenticated",
            );
            false
        }
        Ok(r) => {
            let why = format!("HTTP {}: {}", r.status, reason(&r));
            return host.fail("authenticate", Some(started.elapsed()), why);
        }
        Err(e) => return host.fail("authenticate", Some(started.elapsed()), request_failure(&e)),
    };

    // May it write to the index?
    if !security {
        host.skip(
            "write permission",
            format!("not checked for {pattern}: without security every request may write"),
        );
        return;
    }
    let started = Instant::now();
    let writer = roles::writer_privileges(settings);
    let manager = roles::role(Feature::ApiKeyManager, "", settings).cluster;
    let body = serde_json::json!({
        "cluster": manager,
        "index": [{ "names": [pattern], "privileges": writer }]
    });
    match client
        .request(i, "_security/user/_has_privileges", Some(&body))
        .await
    {
        Ok(r) if (200..300).contains(&r.status) => {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let (detail, missing) = writer_report(settings, pattern, &v);
            if missing.is_empty() {
                host.pass("write permission", started.elapsed(), detail);
            } else {
                host.fail("write permission", Some(started.elapsed()), detail);
            }
            let own_keys: Vec<String> = manager
                .iter()
                .map(|p| match v["cluster"][*p].as_bool() {
                    Some(true) => format!("{p} yes"),
                    Some(false) => format!("{p} no (missing)"),
                    None => format!("{p} not answered"),
                })
                .collect();
            host.details.push(format!(
                "api_key_manager role (skidder apikey, not needed to ship): {}",
                own_keys.join(", ")
            ));
        }
        Ok(r) => {
            let why = format!("cannot check {pattern}: HTTP {}: {}", r.status, reason(&r));
            host.fail("write permission", Some(started.elapsed()), why);
        }
        Err(e) => host.fail(
            "write permission",
            Some(started.elapsed()),
            request_failure(&e),
        ),
    }
    if !settings.index.is_static() {
        host.details.push(format!(
            "the index format {:?} was checked as the pattern {pattern}",
            settings.index.source()
        ));
    }
}

/// The writer role's line of `test output` from a `_has_privileges` reply: each privilege
/// with yes/no, what needs it, and the privileges missing on `pattern`.
fn writer_report(
    settings: &ElasticsearchSettings,
    pattern: &str,
    reply: &Value,
) -> (String, Vec<&'static str>) {
    let privs = &reply["index"][pattern];
    let needs = WriteNeeds::of(settings.op_type, settings.document_id);
    let mut parts = Vec::new();
    let mut missing = Vec::new();
    for p in roles::writer_privileges(settings) {
        let answer = match privs[p].as_bool() {
            Some(true) => "yes",
            Some(false) => "no",
            None => "not answered",
        };
        if privs[p].as_bool() != Some(true) {
            missing.push(p);
        }
        parts.push(format!("{p} {answer}"));
    }
    let why = match needs.with_metadata_id {
        Some(extra) => format!(
            "op_type {} needs {} ({extra} for events carrying @metadata._id), and auto_configure",
            settings.op_type.as_str(),
            needs.always
        ),
        None => format!(
            "op_type {} with document_id {:?} needs {} and auto_configure",
            settings.op_type.as_str(),
            settings.document_id,
            needs.always
        ),
    };
    let mut detail = format!("writer role on {pattern}: {} ({why})", parts.join(", "));
    if !missing.is_empty() {
        detail.push_str(&format!("; missing {} on {pattern}", missing.join(", ")));
    }
    (detail, missing)
}

/// True when `_authenticate` was answered as by a cluster without a security plugin:
/// OpenSearch without it has no such endpoint (404/400), Elasticsearch with security
/// disabled says so in the error.
fn no_security(reply: &EsReply) -> bool {
    if reply.status == 404 || reply.status == 400 {
        return true;
    }
    let why = reason(reply).to_ascii_lowercase();
    why.contains("security")
        && (why.contains("not enabled")
            || why.contains("disabled")
            || why.contains("must be explicitly enabled"))
}

/// The user or API key from an `_authenticate` reply.
fn describe_identity(v: &Value) -> String {
    let user = v["username"].as_str().unwrap_or("(unknown)");
    let realm = v["authentication_realm"]["name"].as_str().unwrap_or("?");
    let roles: Vec<&str> = v["roles"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let roles = if roles.is_empty() {
        "none".to_string()
    } else {
        roles.join(", ")
    };
    let key = &v["api_key"];
    if v["authentication_type"].as_str() == Some("api_key") || key.is_object() {
        format!(
            "API key {} (id {}) owned by user {user}",
            key["name"].as_str().unwrap_or("(unnamed)"),
            key["id"].as_str().unwrap_or("?")
        )
    } else {
        format!("user {user} (realm {realm}, roles {roles})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::logstash::{Phase, Step};

    #[test]
    fn index_formats_become_patterns() {
        assert_eq!(roles::index_pattern("skidder-%{+yyyy.MM.dd}"), "skidder-*");
        assert_eq!(roles::index_pattern("Logs"), "logs");
        assert_eq!(
            roles::index_pattern("%{[agent.name]}%{[agent.version]}-x"),
            "*-x"
        );
        assert_eq!(roles::index_pattern("a-%{oops"), "a-%{oops");
    }

    #[test]
    fn identities_name_the_user_or_the_key() {
        let user = serde_json::json!({
            "username": "shipper", "roles": ["writer"],
            "authentication_realm": {"name": "native1"}, "authentication_type": "realm"
        });
        assert_eq!(
            describe_identity(&user),
            "user shipper (realm native1, roles writer)"
        );
        let key = serde_json::json!({
            "username": "elastic", "authentication_type": "api_key",
            "api_key": {"id": "k1", "name": "skidder-prod"}
        });
        assert_eq!(
            describe_identity(&key),
            "API key skidder-prod (id k1) owned by user elastic"
        );
    }

    fn tls_side(subject: Option<&str>) -> Side {
        Side {
            tls: true,
            our_subject: subject.map(str::to_string),
        }
    }

    fn alert(a: AlertDescription) -> SessionReply {
        SessionReply::Failed(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(a),
        ))
    }

    #[test]
    fn an_ack_or_silence_accepts_the_session() {
        let plain = Side::default();
        let ack0 = SessionReply::Bytes(b"2A\0\0\0\0".to_vec());
        assert_eq!(
            judge_session(&ack0, &plain).unwrap(),
            "accepted: the server answered an empty window with ACK 0"
        );
        let silent = SessionReply::Silent(Duration::from_secs(2));
        assert!(judge_session(&silent, &tls_side(None))
            .unwrap()
            .starts_with("accepted: the connection stayed open for 2s"));
    }

    #[test]
    fn certificate_alerts_name_our_certificate_or_its_absence() {
        let none = judge_session(
            &alert(AlertDescription::CertificateRequired),
            &tls_side(None),
        )
        .unwrap_err();
        assert!(
            none.starts_with(
                "refused: the server refused our client certificate: we presented none"
            ) && none.contains("TLS alert CertificateRequired")
                && none.contains("set ssl.certificate and ssl.key"),
            "{none}"
        );
        let ours = tls_side(Some("CN=shipper"));
        for a in [
            AlertDescription::BadCertificate,
            AlertDescription::UnknownCA,
            AlertDescription::CertificateExpired,
        ] {
            let why = judge_session(&alert(a), &ours).unwrap_err();
            assert!(
                why.starts_with("refused: the server refused our client certificate CN=shipper")
                    && why.contains(&format!("TLS alert {a:?}")),
                "{why}"
            );
        }
        let other = judge_session(&alert(AlertDescription::ProtocolVersion), &ours).unwrap_err();
        assert_eq!(
            other,
            "refused: the server ended the session with TLS alert ProtocolVersion"
        );
    }

    #[test]
    fn a_close_or_reset_is_refused_with_a_hint_for_each_side() {
        let tls = judge_session(&SessionReply::Closed, &tls_side(None)).unwrap_err();
        assert!(
            tls.contains("closed the connection after the TLS handshake"),
            "{tls}"
        );
        let reset = SessionReply::Failed(std::io::ErrorKind::ConnectionReset.into());
        let plain = judge_session(&reset, &Side::default()).unwrap_err();
        assert!(
            plain.starts_with(
                "refused: the server reset the connection on our first Lumberjack bytes"
            ) && plain.contains("if the port expects TLS, set ssl.enabled"),
            "{plain}"
        );
    }

    #[test]
    fn bytes_that_are_no_ack_are_named() {
        let plain = Side::default();
        let alert_record = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];
        let why = judge_bytes(&alert_record, &plain).unwrap_err();
        assert!(
            why.starts_with("refused: the server speaks TLS")
                && why.contains("TLS alert record (0x15 0x03 0x03 0x00 0x02 0x02 0x32)"),
            "{why}"
        );
        let hello = [0x16, 0x03, 0x01, 0x00, 0x20, 0x01];
        assert!(judge_bytes(&hello, &plain)
            .unwrap_err()
            .contains("TLS handshake record"));
        let http = b"HTTP/1.1 400 Bad Request\r\nServer: x\r\n";
        assert_eq!(
            judge_bytes(http, &plain).unwrap_err(),
            "refused: the server speaks HTTP, not Lumberjack: it answered \"HTTP/1.1 400 Bad Request\""
        );
        let junk = b"SSH-2.0-OpenSSH_9.2p1";
        assert_eq!(
            judge_bytes(junk, &plain).unwrap_err(),
            "refused: the server is not speaking Lumberjack: it answered an empty window with \
             0x53 0x53 0x48 0x2d 0x32 0x2e 0x30 0x2d …"
        );
    }

    #[tokio::test]
    async fn the_exchange_sends_one_empty_window_and_reads_the_reply() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        // A Logstash answering ACK 0.
        let (ours, mut server) = tokio::io::duplex(64);
        let mut stream: Box<dyn Stream> = Box::new(ours);
        let peer = tokio::spawn(async move {
            let mut got = [0u8; WINDOW_FRAME_LEN];
            server.read_exact(&mut got).await.unwrap();
            server.write_all(b"2A\0\0\0\0").await.unwrap();
            (got, server)
        });
        let reply = empty_window_exchange(&mut stream, Duration::from_secs(10)).await;
        let (sent, _server) = peer.await.unwrap();
        assert_eq!(&sent, b"2W\0\0\0\0", "an empty window, nothing else");
        assert!(
            matches!(&reply, SessionReply::Bytes(b) if b == b"2A\0\0\0\0"),
            "{reply:?}"
        );

        // A server that closes at once.
        let (ours, server) = tokio::io::duplex(64);
        drop(server);
        let mut stream: Box<dyn Stream> = Box::new(ours);
        let reply = empty_window_exchange(&mut stream, Duration::from_secs(10)).await;
        assert!(matches!(reply, SessionReply::Closed), "{reply:?}");

        // go-lumber: reads, never answers, keeps the connection.
        let (ours, _server) = tokio::io::duplex(64);
        let mut stream: Box<dyn Stream> = Box::new(ours);
        let wait = Duration::from_millis(50);
        let reply = empty_window_exchange(&mut stream, wait).await;
        assert!(
            matches!(reply, SessionReply::Silent(w) if w == wait),
            "{reply:?}"
        );
    }

    #[test]
    fn nginx_refusal_pages_are_session_refusals() {
        let page = |title: &str| EsReply {
            status: 400,
            body: bytes::Bytes::from(format!(
                "<html>\r\n<head><title>{title}</title></head>\r\n<body></body></html>"
            )),
        };
        let ours = tls_side(Some("CN=shipper"));
        let r = page("400 No required SSL certificate was sent");
        assert_eq!(reason(&r), "No required SSL certificate was sent");
        let why = http_session_refusal(r.status, &reason(&r), &ours).unwrap();
        assert!(
            why.contains("we presented none")
                && why.contains("(HTTP 400 \"No required SSL certificate was sent\")"),
            "{why}"
        );
        let r = page("400 The SSL certificate error");
        let why = http_session_refusal(r.status, &reason(&r), &ours).unwrap();
        assert!(why.contains("our client certificate CN=shipper"), "{why}");
        let r = page("400 The plain HTTP request was sent to HTTPS port");
        let why = http_session_refusal(r.status, &reason(&r), &Side::default()).unwrap();
        assert!(
            why.starts_with("refused: the server speaks TLS")
                && why.ends_with("use https:// in hosts"),
            "{why}"
        );
        let r = page("400 Bad Request");
        assert_eq!(http_session_refusal(r.status, &reason(&r), &ours), None);
        assert_eq!(
            http_session_refusal(401, "No required SSL certificate was sent", &ours),
            None
        );
    }

    #[test]
    fn a_plain_http_request_answered_by_tls_or_a_hang_up_is_refused() {
        let alert_record = SessionReply::Bytes(vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);
        let why = judge_plain_http(&alert_record).unwrap();
        assert!(
            why.starts_with("refused: the server speaks TLS")
                && why.contains("TLS alert record (0x15 0x03 0x03")
                && why.ends_with("use https:// in hosts"),
            "{why}"
        );
        for gone in [
            SessionReply::Closed,
            SessionReply::Failed(std::io::ErrorKind::ConnectionReset.into()),
        ] {
            let why = judge_plain_http(&gone).unwrap();
            assert!(
                why.contains("closed the connection on a plain HTTP request"),
                "{why}"
            );
        }
        let http = SessionReply::Bytes(b"HTTP/1.1 401 Unauthorized\r\n".to_vec());
        assert_eq!(
            judge_plain_http(&http),
            None,
            "HTTP: the request's own error stands"
        );
        assert_eq!(
            judge_plain_http(&SessionReply::Silent(Duration::from_secs(2))),
            None
        );
        let junk = SessionReply::Bytes(b"2A\0\0\0\0".to_vec());
        assert_eq!(
            judge_plain_http(&junk).unwrap(),
            "refused: the server is not speaking HTTP: it answered 0x32 0x41 0x00 0x00 0x00 0x00"
        );
    }

    #[test]
    fn the_session_wait_grows_with_a_slow_connect_up_to_the_timeout() {
        let probe = |took_ms: u64| Probe {
            steps: vec![Step {
                phase: Phase::Connect,
                took: Duration::from_millis(took_ms),
                detail: String::new(),
            }],
            handshake: None,
            failure: None,
            stream: None,
        };
        let t = Duration::from_secs(30);
        assert_eq!(session_wait(&probe(1), t), SESSION_WAIT);
        assert_eq!(session_wait(&probe(1_000), t), Duration::from_secs(4));
        assert_eq!(session_wait(&probe(20_000), t), t);
        assert_eq!(
            session_wait(&probe(1), Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_missing_security_endpoint_means_no_security() {
        let reply = |status, body: &str| EsReply {
            status,
            body: bytes::Bytes::from(body.to_string()),
        };
        assert!(no_security(&reply(404, "")));
        assert!(no_security(&reply(
            500,
            r#"{"error":{"reason":"Security is not enabled but a security rest handler is registered"}}"#
        )));
        assert!(!no_security(&reply(500, r#"{"error":{"reason":"boom"}}"#)));
    }
}
