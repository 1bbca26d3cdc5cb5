//! `output.elasticsearch` validated into [`ElasticsearchSettings`]: host URLs resolved against
//! `protocol`/`path`/port 9200, index and pipeline formats compiled, modes as enums,
//! credentials and TLS prepared by the credential layer. Every error names its key.

use std::time::Duration;

use reqwest::Url;

use super::index::{FormatError, IndexTemplate};
use crate::config::validate::ELASTICSEARCH_DEFAULT_PORT;
use crate::config::{parse_host_port, ElasticsearchOutputConfig, NonIndexablePolicy};
use crate::credentials::secret::redact_url_password;
use crate::credentials::{CredentialError, EsAuth, Secret, TlsSettings};

/// How requests reach the hosts (`proxy_url`, `proxy_disable`, `proxy_headers`), as
/// libbeat's `httpcommon`: `proxy_disable` wins, then `proxy_url`, else the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySettings {
    /// `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` from the environment.
    Environment,
    /// Straight to the hosts, whatever the environment says.
    Disabled,
    /// Through one HTTP proxy (`CONNECT` for https hosts).
    Url {
        /// `http://[user:pass@]host:port`: secret, it may carry a password.
        url: Secret,
        /// `proxy_headers`, sent to the proxy; secret, they usually carry credentials.
        headers: Vec<(String, Secret)>,
    },
}

/// The default index format, as Beats' `%{[agent.name]}-%{[agent.version]}-%{+yyyy.MM.dd}`
/// with our name.
pub const DEFAULT_INDEX: &str = "skidder-%{+yyyy.MM.dd}";

/// Why `output.elasticsearch` cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A value is out of range or contradicts another.
    #[error("output.elasticsearch.{key}: {reason}")]
    Invalid {
        /// The key below `output.elasticsearch`.
        key: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// An index or pipeline format does not compile.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Credentials or `ssl.*` are unusable.
    #[error("output.elasticsearch: {0}")]
    Credential(#[from] CredentialError),
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS with `ssl.*`.
    Https,
}

/// One entry of `hosts`, resolved: the base URL every request path is appended to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUrl {
    /// Scheme.
    pub scheme: Scheme,
    /// Name or address (IPv6 without brackets).
    pub host: String,
    /// Port, 9200 unless written.
    pub port: u16,
    /// Path prefix without trailing `/` (empty, or starting with `/`).
    pub path: String,
}

impl HostUrl {
    /// `host:port` for messages and logs (never contains credentials).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL of `endpoint` (e.g. `_bulk`) below this host's path, with `parameters`.
    ///
    /// # Errors
    /// The pieces do not make a URL (cannot happen for a validated host; kept as an error
    /// rather than a panic).
    pub fn url(&self, endpoint: &str, parameters: &[(String, String)]) -> Result<Url, String> {
        self.url_as(None, endpoint, parameters)
    }

    /// As [`Self::url`], with `name` in place of the host in the URL (for `ssl.server_name`:
    /// the name is verified and sent as SNI, while the connection goes to this host).
    ///
    /// # Errors
    /// As [`Self::url`].
    pub fn url_as(
        &self,
        name: Option<&str>,
        endpoint: &str,
        parameters: &[(String, String)],
    ) -> Result<Url, String> {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let authority = match name {
            Some(n) => format!("{n}:{}", self.port),
            None => self.authority(),
        };
        let mut url = Url::parse(&format!("{scheme}://{authority}{}/{endpoint}", self.path))
            .map_err(|e| e.to_string())?;
        if !parameters.is_empty() {
            url.query_pairs_mut().extend_pairs(parameters);
        }
        Ok(url)
    }
}

impl std::fmt::Display for HostUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

/// The bulk action of every event (`op_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpType {
    /// `op_type` unset: `create` for an item with an `_id` skidder sends, `index` for one
    /// whose id Elasticsearch generates. Elasticsearch authorizes an index request with a
    /// generated id as a create, so both need only `create_doc` (libbeat also sends
    /// `create` by default).
    Auto,
    /// `index`: create or overwrite.
    Index,
    /// `create`: fail with 409 when the id exists; required by data streams.
    Create,
}

impl OpType {
    /// The configured name (`auto` when unset), for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Auto => "auto",
            OpType::Index => "index",
            OpType::Create => "create",
        }
    }

    /// The bulk action of an item, given whether skidder sends its `_id`.
    pub fn action(self, has_id: bool) -> &'static str {
        match (self, has_id) {
            (OpType::Create, _) | (OpType::Auto, true) => "create",
            (OpType::Index, _) | (OpType::Auto, false) => "index",
        }
    }
}

/// The index privileges the bulk writes of one `op_type`/`document_id` combination need,
/// exactly as Elasticsearch authorizes them (elastic-security.md §3.2): `create_doc` covers
/// `create` actions and `index` actions whose id Elasticsearch generates; an `index` action
/// with an id skidder sends needs `index` (or `create`, `write`, `all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteNeeds {
    /// The privilege every write needs.
    pub always: &'static str,
    /// A further privilege needed only by events carrying `@metadata._id`
    /// (`op_type: index`, `document_id: metadata`).
    pub with_metadata_id: Option<&'static str>,
}

impl WriteNeeds {
    /// What `op_type` and `document_id` need.
    pub fn of(op_type: OpType, document_id: DocumentId) -> Self {
        let (always, with_metadata_id) = match (op_type, document_id) {
            (OpType::Create | OpType::Auto, _) | (OpType::Index, DocumentId::None) => {
                ("create_doc", None)
            }
            (OpType::Index, DocumentId::Hash) => ("index", None),
            (OpType::Index, DocumentId::Metadata) => ("create_doc", Some("index")),
        };
        Self {
            always,
            with_metadata_id,
        }
    }
}

/// What happens to an item refused with a non-retryable 4xx (`non_indexable_policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NonIndexableAction {
    /// Drop it, count it, log the reason (the default).
    Drop,
    /// Index it into this index, wrapped as Beats does (see [`super::bulk`]).
    DeadLetter {
        /// The dead-letter index (a plain name, not a format).
        index: String,
    },
}

/// Where a bulk item's `_id` comes from (`document_id`); the config's enum, re-exported
/// for the bulk builder and its callers.
pub use crate::config::DocumentId;

/// The document id source when `document_id` is not written.
pub const DEFAULT_DOCUMENT_ID: DocumentId = DocumentId::Metadata;

/// `output.elasticsearch` after validation.
#[derive(Debug, Clone)]
pub struct ElasticsearchSettings {
    /// Resolved hosts, in configured order.
    pub hosts: Vec<HostUrl>,
    /// Query parameters of every bulk request, in name order.
    pub parameters: Vec<(String, String)>,
    /// Authorization and custom headers.
    pub auth: EsAuth,
    /// Index name format.
    pub index: IndexTemplate,
    /// Ingest pipeline format.
    pub pipeline: Option<IndexTemplate>,
    /// Bulk action.
    pub op_type: OpType,
    /// Most events per bulk request (default 1600).
    pub bulk_max_size: usize,
    /// gzip level of request bodies; 0 sends them plain (default 1).
    pub compression_level: u32,
    /// Concurrent requests per host (default 1).
    pub worker: usize,
    /// Spread requests over all hosts (default true).
    pub loadbalance: bool,
    /// First backoff wait (default 1 s).
    pub backoff_init: Duration,
    /// Longest backoff wait (default 60 s).
    pub backoff_max: Duration,
    /// Attempts after the first for retryable failures; `None` = forever (`-1`). Default 3.
    pub max_retries: Option<u32>,
    /// Whole-request timeout (default 90 s).
    pub timeout: Duration,
    /// Escape `<`, `>` and `&` in the documents' strings (default false).
    pub escape_html: bool,
    /// What happens to non-indexable items.
    pub non_indexable: NonIndexableAction,
    /// Where `_id` comes from.
    pub document_id: DocumentId,
    /// TLS settings when any host uses https.
    pub tls: Option<TlsSettings>,
    /// `ssl.server_name`: the name https hosts are verified (and sent SNI) as, instead of
    /// the host name connected to.
    pub tls_server_name: Option<String>,
    /// `ssl.expiry_warning` (default 14 days): how long before the API key in use expires
    /// skidder starts to WARN, as for certificates.
    pub expiry_warning: Duration,
    /// The proxy, if any.
    pub proxy: ProxySettings,
    /// `idle_connection_timeout`: close connections idle this long; `None` keeps them.
    pub idle_connection_timeout: Option<Duration>,
}

impl ElasticsearchSettings {
    /// Validates `cfg`.
    ///
    /// # Errors
    /// [`SettingsError`] naming the key: no hosts, a malformed host, an unknown `protocol`
    /// or `op_type`, `compression_level` above 9, `bulk_max_size`/`worker` of 0,
    /// `max_retries` below -1, a zero `timeout`, a bad index/pipeline format or
    /// dead-letter index, contradictory credentials or unusable `ssl.*`.
    pub fn from_config(cfg: &ElasticsearchOutputConfig) -> Result<Self, SettingsError> {
        let invalid = |key: &'static str, reason: String| SettingsError::Invalid { key, reason };
        let tls_settings = TlsSettings::from_config(&cfg.ssl)?;
        let default_scheme = match cfg.protocol.as_deref() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            // As Beats: with TLS configured, hosts without a scheme use https.
            None if tls_settings.is_enabled() => Scheme::Https,
            None => Scheme::Http,
            Some(other) => {
                return Err(invalid(
                    "protocol",
                    format!("{other:?} is neither http nor https"),
                ))
            }
        };
        let default_path = normalize_path(cfg.path.as_deref().unwrap_or(""));
        if cfg.hosts.is_empty() {
            return Err(invalid("hosts", "no hosts; list at least one".to_string()));
        }
        let hosts = cfg
            .hosts
            .iter()
            .map(|h| parse_host(h, default_scheme, &default_path))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| invalid("hosts", reason))?;
        let op_type = match cfg.op_type.as_deref() {
            None => OpType::Auto,
            Some("index") => OpType::Index,
            Some("create") => OpType::Create,
            Some(other) => {
                return Err(invalid(
                    "op_type",
                    format!("{other:?} is neither index nor create"),
                ))
            }
        };
        if cfg.compression_level > 9 {
            return Err(invalid(
                "compression_level",
                format!("{} is not in 0..=9", cfg.compression_level),
            ));
        }
        if cfg.bulk_max_size == 0 {
            return Err(invalid("bulk_max_size", "must be at least 1".to_string()));
        }
        if cfg.worker == 0 {
            return Err(invalid("worker", "must be at least 1".to_string()));
        }
        let max_retries = match cfg.max_retries {
            -1 => None,
            n if n >= 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            n => {
                return Err(invalid(
                    "max_retries",
                    format!("{n} is invalid; use -1 (forever) or a count"),
                ))
            }
        };
        if cfg.timeout.is_zero() {
            return Err(invalid("timeout", "must be above 0s".to_string()));
        }
        if cfg.backoff.init.is_zero() {
            return Err(invalid("backoff.init", "must be above 0s".to_string()));
        }
        let index = IndexTemplate::compile(
            "output.elasticsearch.index",
            cfg.index.as_deref().unwrap_or(DEFAULT_INDEX),
        )?;
        let pipeline = cfg
            .pipeline
            .as_deref()
            .map(|p| IndexTemplate::compile_verbatim("output.elasticsearch.pipeline", p))
            .transpose()?;
        let non_indexable = match &cfg.non_indexable_policy {
            None | Some(NonIndexablePolicy::Drop(_)) => NonIndexableAction::Drop,
            Some(NonIndexablePolicy::DeadLetterIndex { index }) => {
                let t = IndexTemplate::compile(
                    "output.elasticsearch.non_indexable_policy.dead_letter_index.index",
                    index,
                )?;
                if !t.is_static() || index.is_empty() || index != &index.to_lowercase() {
                    return Err(invalid(
                        "non_indexable_policy.dead_letter_index.index",
                        format!("{index:?} must be a plain lowercase index name (no %{{...}})"),
                    ));
                }
                NonIndexableAction::DeadLetter {
                    index: index.clone(),
                }
            }
        };
        let tls_server_name = match cfg.ssl.server_name.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) if name.parse::<std::net::IpAddr>().is_ok() => {
                return Err(invalid(
                    "ssl.server_name",
                    format!("{name:?} is an IP address; for Elasticsearch it must be a DNS name (connect to the IP in hosts instead)"),
                ))
            }
            Some(name) => {
                // Checked as a URL host now, so building request URLs cannot fail later.
                Url::parse(&format!("https://{name}/")).map_err(|e| {
                    invalid("ssl.server_name", format!("{name:?} is not a DNS name: {e}"))
                })?;
                Some(name.to_string())
            }
        };
        let auth = EsAuth::from_config(cfg)?;
        let proxy = proxy_settings(cfg).map_err(|reason| invalid("proxy_url", reason))?;
        let any_https = hosts.iter().any(|h| h.scheme == Scheme::Https);
        Ok(Self {
            hosts,
            parameters: cfg
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            auth,
            index,
            pipeline,
            op_type,
            bulk_max_size: cfg.bulk_max_size,
            compression_level: cfg.compression_level,
            worker: cfg.worker,
            loadbalance: cfg.loadbalance,
            backoff_init: cfg.backoff.init.get(),
            backoff_max: cfg.backoff.max.get(),
            max_retries,
            timeout: cfg.timeout.get(),
            escape_html: cfg.escape_html,
            non_indexable,
            document_id: cfg.document_id,
            tls: any_https.then_some(tls_settings),
            tls_server_name: if any_https { tls_server_name } else { None },
            expiry_warning: cfg.ssl.expiry_warning.get(),
            proxy,
            idle_connection_timeout: Some(cfg.idle_connection_timeout.get())
                .filter(|d| !d.is_zero()),
        })
    }
}

/// `proxy_disable`, `proxy_url` and `proxy_headers` as one choice; errors quote the URL
/// with its password redacted.
fn proxy_settings(cfg: &ElasticsearchOutputConfig) -> Result<ProxySettings, String> {
    if cfg.proxy_disable {
        return Ok(ProxySettings::Disabled);
    }
    let Some(raw) = cfg
        .proxy_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
    else {
        return Ok(ProxySettings::Environment);
    };
    let shown = redact_url_password(raw);
    let url = Url::parse(raw).map_err(|e| format!("{shown:?} is not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "{shown:?}: scheme {:?} is not supported for Elasticsearch; use an http:// proxy \
             (https hosts are tunnelled through it with CONNECT)",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{shown:?} has no host"));
    }
    Ok(ProxySettings::Url {
        url: Secret::new(raw),
        headers: cfg
            .proxy_headers
            .iter()
            .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
            .collect(),
    })
}

fn normalize_path(path: &str) -> String {
    let trimmed = path.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// `[scheme://]host[:port][/path]`; the host's own path wins over `path` (as Beats).
/// Errors quote the entry with any password redacted.
fn parse_host(input: &str, default_scheme: Scheme, default_path: &str) -> Result<HostUrl, String> {
    let text = input.trim();
    let input = redact_url_password(input);
    let (scheme, rest) = match text.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        Some((other, _)) => {
            return Err(format!(
                "{input:?}: scheme {other:?} is neither http nor https"
            ))
        }
        None => (default_scheme, text),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], normalize_path(&rest[i..])),
        None => (rest, String::new()),
    };
    // A password may hold a raw `/`: any `@` after the scheme is taken for userinfo.
    if rest.contains('@') {
        return Err(format!(
            "{input:?}: credentials in a host URL are not accepted; use username/password or api_key"
        ));
    }
    if authority.contains('?') || authority.contains('#') || path.contains(['?', '#']) {
        return Err(format!(
            "{input:?}: query or fragment in a host URL; use parameters"
        ));
    }
    let hp = parse_host_port(authority, ELASTICSEARCH_DEFAULT_PORT)
        .map_err(|e| format!("{input:?}: {}", e.reason))?;
    let url = HostUrl {
        scheme,
        host: hp.host,
        port: hp.port,
        path: if path.is_empty() {
            default_path.to_string()
        } else {
            path
        },
    };
    url.url("_bulk", &[])
        .map_err(|e| format!("{input:?}: not a usable URL: {e}"))?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_needs_are_exact_per_combination() {
        use DocumentId::{Hash, Metadata, None as NoId};
        let need = |op, id| {
            let n = WriteNeeds::of(op, id);
            (n.always, n.with_metadata_id)
        };
        // Every default combination works with the writer role's create_doc.
        for id in [Metadata, Hash, NoId] {
            assert_eq!(need(OpType::Auto, id), ("create_doc", None));
            assert_eq!(need(OpType::Create, id), ("create_doc", None));
        }
        assert_eq!(need(OpType::Index, NoId), ("create_doc", None));
        assert_eq!(need(OpType::Index, Hash), ("index", None));
        assert_eq!(need(OpType::Index, Metadata), ("create_doc", Some("index")));
        assert_eq!(OpType::Auto.action(true), "create");
        assert_eq!(OpType::Auto.action(false), "index");
        assert_eq!(OpType::Index.action(true), "index");
        assert_eq!(OpType::Create.action(false), "create");
        let s = ElasticsearchSettings::from_config(&ElasticsearchOutputConfig {
            hosts: vec!["localhost".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.op_type, OpType::Auto);
    }
    use crate::credentials::Secret;

    fn cfg(hosts: &[&str]) -> ElasticsearchOutputConfig {
        ElasticsearchOutputConfig {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_beats_defaults() {
        let s = ElasticsearchSettings::from_config(&cfg(&["localhost"])).unwrap();
        assert_eq!(s.hosts[0].to_string(), "http://localhost:9200");
        assert_eq!(s.index.source(), DEFAULT_INDEX);
        assert_eq!(s.op_type, OpType::Auto);
        assert_eq!(s.bulk_max_size, 1600);
        assert_eq!(s.compression_level, 1);
        assert_eq!(s.max_retries, None, "retry forever by default");
        assert_eq!(s.timeout, Duration::from_secs(90));
        assert!(s.loadbalance);
        assert_eq!(s.non_indexable, NonIndexableAction::Drop);
        assert_eq!(s.document_id, DocumentId::Metadata);
        assert!(s.tls.is_none());
    }

    #[test]
    fn document_id_comes_from_the_config() {
        for (yaml, want) in [
            ("metadata", DocumentId::Metadata),
            ("hash", DocumentId::Hash),
            ("none", DocumentId::None),
        ] {
            let parsed: DocumentId = serde_json::from_value(serde_json::json!(yaml)).unwrap();
            let mut c = cfg(&["localhost"]);
            c.document_id = parsed;
            let s = ElasticsearchSettings::from_config(&c).unwrap();
            assert_eq!(s.document_id, want, "{yaml}");
        }
        assert!(serde_json::from_value::<DocumentId>(serde_json::json!("random")).is_err());
    }

    #[test]
    fn hosts_resolve_scheme_port_and_path() {
        let mut c = cfg(&[
            "es1",
            "https://es2:9201",
            "es3:80/custom/",
            "[::1]",
            "http://10.0.0.1",
        ]);
        c.path = Some("prefix".into());
        c.parameters.insert("refresh".into(), "true".into());
        let s = ElasticsearchSettings::from_config(&c).unwrap();
        let got: Vec<String> = s.hosts.iter().map(|h| h.to_string()).collect();
        assert_eq!(
            got,
            vec![
                "http://es1:9200/prefix",
                "https://es2:9201/prefix",
                "http://es3:80/custom",
                "http://[::1]:9200/prefix",
                "http://10.0.0.1:9200/prefix",
            ]
        );
        assert_eq!(
            s.hosts[0].url("_bulk", &s.parameters).unwrap().as_str(),
            "http://es1:9200/prefix/_bulk?refresh=true"
        );
        assert!(s.tls.is_some(), "an https host needs TLS settings");

        let mut c = cfg(&["es1"]);
        c.protocol = Some("https".into());
        let s = ElasticsearchSettings::from_config(&c).unwrap();
        assert_eq!(s.hosts[0].scheme, Scheme::Https);
    }

    #[test]
    fn errors_name_the_key() {
        let cases: Vec<(ElasticsearchOutputConfig, &str)> = vec![
            (cfg(&[]), "output.elasticsearch.hosts: no hosts"),
            (
                cfg(&["ftp://x"]),
                "output.elasticsearch.hosts: \"ftp://x\": scheme",
            ),
            (
                cfg(&["x:99999"]),
                "output.elasticsearch.hosts: \"x:99999\": port 99999",
            ),
            (cfg(&["http://u:p@x"]), "credentials in a host URL"),
            (
                ElasticsearchOutputConfig {
                    op_type: Some("upsert".into()),
                    ..cfg(&["x"])
                },
                "output.elasticsearch.op_type",
            ),
            (
                ElasticsearchOutputConfig {
                    compression_level: 10,
                    ..cfg(&["x"])
                },
                "output.elasticsearch.compression_level: 10",
            ),
            (
                ElasticsearchOutputConfig {
                    max_retries: -2,
                    ..cfg(&["x"])
                },
                "output.elasticsearch.max_retries",
            ),
            (
                ElasticsearchOutputConfig {
                    index: Some("x-%{+QQ}".into()),
                    ..cfg(&["x"])
                },
                "output.elasticsearch.index: invalid format",
            ),
            (
                ElasticsearchOutputConfig {
                    non_indexable_policy: Some(NonIndexablePolicy::DeadLetterIndex {
                        index: "DLQ".into(),
                    }),
                    ..cfg(&["x"])
                },
                "dead_letter_index.index",
            ),
            (
                ElasticsearchOutputConfig {
                    api_key: Some(Secret::new("a:b")),
                    username: Some("u".into()),
                    ..cfg(&["x"])
                },
                "api_key",
            ),
        ];
        for (c, needle) in cases {
            let msg = ElasticsearchSettings::from_config(&c)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(needle), "want {needle:?} in {msg:?}");
        }
    }

    #[test]
    fn modes_parse() {
        let s = ElasticsearchSettings::from_config(&ElasticsearchOutputConfig {
            op_type: Some("create".into()),
            max_retries: -1,
            pipeline: Some("Geo-%{[kind]}".into()),
            non_indexable_policy: Some(NonIndexablePolicy::DeadLetterIndex {
                index: "dlq".into(),
            }),
            ..cfg(&["x"])
        })
        .unwrap();
        assert_eq!(s.op_type, OpType::Create);
        assert_eq!(s.max_retries, None);
        assert_eq!(s.pipeline.unwrap().source(), "Geo-%{[kind]}");
        assert_eq!(
            s.non_indexable,
            NonIndexableAction::DeadLetter {
                index: "dlq".into()
            }
        );
    }
}
