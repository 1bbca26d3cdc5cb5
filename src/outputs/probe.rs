//! `skidder test output`: connects once to every configured host of `output.logstash` and
//! `output.elasticsearch` (both when `output.failover` is on) and reports each phase with
//! ✓/✗, its duration and what it found: the addresses, the TLS version, cipher suite, the
//! peer's chain and the pin that matched, and for Elasticsearch the cluster, the user or API
//! key the credentials stand for, and whether it may write to the configured index.
//!
//! Nothing is sent that could index or deliver an event. Every phase runs once: a refused
//! credential is reported and never retried. The phases reuse the outputs' own code (the
//! Logstash [`Connector`], the Elasticsearch [`EsClient`]), so what passes here is what the
//! outputs will do.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;

use super::elasticsearch::settings::{OpType, Scheme};
use super::elasticsearch::{ElasticsearchSettings, EsClient, EsError, EsReply};
use super::logstash::{Connector, Endpoint, LogstashSettings, Probe};
use crate::config::{OutputsConfig, VerificationMode};
use crate::credentials::expiry::format_time;
use crate::credentials::{Alpn, CredentialError, TlsSettings, TlsSource};

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

/// Lines about our side of TLS: an unverified server, and our client certificate's
/// subject and expiry.
fn tls_notes(tls: Option<&TlsSettings>) -> Vec<String> {
    let Some(tls) = tls else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    if tls.verification_mode() == VerificationMode::None {
        notes.push(
            "ssl.verification_mode is none: the server certificate was NOT verified".to_string(),
        );
    }
    // Already loaded once successfully (the connector needed it), so a failure here is a
    // file changed in between; the handshake line reports what the connection saw.
    if let Ok(Some(v)) = tls.load_material().map(|m| m.validity) {
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

/// Adds the phases of a transport probe to `host`; true when all passed.
fn record_transport(host: &mut HostReport, probe: Probe) -> bool {
    for step in &probe.steps {
        host.pass(step.phase.name(), step.took, step.detail.clone());
    }
    if let Some(hs) = &probe.handshake {
        host.details
            .extend(hs.to_string().lines().map(str::to_string));
    }
    match probe.failure {
        None => true,
        Some(e) => {
            host.fail(e.phase().name(), None, e.to_string());
            false
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
    let notes = tls_notes(settings.tls.as_ref());
    for endpoint in &settings.hosts {
        let mut host = HostReport::new("output.logstash", endpoint.to_string());
        if settings.tls.is_none() {
            host.details
                .push("TLS is off (no ssl.* set): the connection is plain TCP".to_string());
        }
        host.details.extend(notes.iter().cloned());
        record_transport(&mut host, connector.probe(endpoint).await);
        report.hosts.push(host);
    }
    Ok(())
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
    let pattern = index_pattern(settings.index.source());
    let notes = tls_notes(settings.tls.as_ref());
    for (i, url) in settings.hosts.iter().enumerate() {
        let mut host = HostReport::new("output.elasticsearch", url.to_string());
        let endpoint = Endpoint {
            host: url.host.clone(),
            port: url.port,
        };
        let connector = match url.scheme {
            Scheme::Https => {
                host.details.extend(notes.iter().cloned());
                &secure
            }
            Scheme::Http => &plain,
        };
        if record_transport(&mut host, connector.probe(&endpoint).await) {
            probe_http(&client, i, settings, &pattern, &mut host).await;
        }
        report.hosts.push(host);
    }
    Ok(())
}

/// The error text of an Elasticsearch reply: `error.reason`, else the body's start.
fn reason(reply: &EsReply) -> String {
    let parsed: Option<Value> = serde_json::from_slice(&reply.body).ok();
    let from_json = parsed.as_ref().and_then(|v| match &v["error"] {
        Value::String(s) => Some(s.clone()),
        e => e["reason"].as_str().map(str::to_string),
    });
    from_json.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&reply.body);
        text.chars().take(200).collect()
    })
}

/// A failed request as one sentence; a refused credential says which one.
fn request_failure(e: &EsError) -> String {
    match e {
        EsError::Credential(CredentialError::Refused {
            credential,
            host,
            status,
        }) => format!(
            "{host} refused {credential} with HTTP {status}; fix that credential \
             (not retried)"
        ),
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

async fn probe_http(
    client: &EsClient,
    i: usize,
    settings: &ElasticsearchSettings,
    pattern: &str,
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
            let why = format!("HTTP {}: {}", r.status, reason(&r));
            return host.fail("GET /", Some(started.elapsed()), why);
        }
        Err(e) => return host.fail("GET /", Some(started.elapsed()), request_failure(&e)),
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
    let needed = match settings.op_type {
        OpType::Create => "create_doc",
        OpType::Index => "index",
    };
    let body = serde_json::json!({
        "index": [{ "names": [pattern], "privileges": ["create_doc", "index"] }]
    });
    match client
        .request(i, "_security/user/_has_privileges", Some(&body))
        .await
    {
        Ok(r) if (200..300).contains(&r.status) => {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let privs = &v["index"][pattern];
            let has = |p: &str| privs[p].as_bool();
            let yes_no = |b: Option<bool>| match b {
                Some(true) => "yes",
                Some(false) => "no",
                None => "not answered",
            };
            let detail = format!(
                "{pattern}: create_doc {}, index {} (op_type {} needs {needed})",
                yes_no(has("create_doc")),
                yes_no(has("index")),
                settings.op_type.as_str()
            );
            if has(needed) == Some(true) {
                host.pass("write permission", started.elapsed(), detail);
            } else {
                host.fail("write permission", Some(started.elapsed()), detail);
            }
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

/// The index privileges are checked on: every `%{...}` of the format becomes `*`.
fn index_pattern(format: &str) -> String {
    let mut out = String::with_capacity(format.len());
    let mut rest = format;
    while let Some(start) = rest.find("%{") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                if !out.ends_with('*') {
                    out.push('*');
                }
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_formats_become_patterns() {
        assert_eq!(index_pattern("skidder-%{+yyyy.MM.dd}"), "skidder-*");
        assert_eq!(index_pattern("Logs"), "logs");
        assert_eq!(index_pattern("%{[agent.name]}%{[agent.version]}-x"), "*-x");
        assert_eq!(index_pattern("a-%{oops"), "a-%{oops");
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
