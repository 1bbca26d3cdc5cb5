//! Range and cross-field rules of a typed [`Config`]: what serde cannot express.

use super::check::Problem;
use super::schema::*;
use crate::credentials::secret::redact_url_password;

/// The default Logstash port, used for hosts written without one.
pub const LOGSTASH_DEFAULT_PORT: u16 = 5044;
/// The default Elasticsearch port.
pub const ELASTICSEARCH_DEFAULT_PORT: u16 = 9200;

/// A `host:port` that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Name or address, without IPv6 brackets.
    pub host: String,
    /// Port, 1..=65535.
    pub port: u16,
}

/// Why a `host[:port]` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host {input:?}: {reason}")]
pub struct HostPortError {
    /// The entry as written.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses `host`, `host:port`, `[v6]` or `[v6]:port`; a missing port is `default_port`.
///
/// # Errors
/// [`HostPortError`] for an empty host, a port outside 1..=65535 or a non-numeric port.
pub fn parse_host_port(input: &str, default_port: u16) -> Result<HostPort, HostPortError> {
    let err = |reason: &str| HostPortError {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let text = input.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| err("missing ] after an IPv6 address"))?;
        match after {
            "" => (h, None),
            p => (
                h,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| err("expected :port after ]"))?,
                ),
            ),
        }
    } else if text.matches(':').count() > 1 {
        // A bare IPv6 address: no port can be told apart.
        (text, None)
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(err("empty host name"));
    }
    let port = match port {
        None => default_port,
        Some(p) => {
            let n: u64 = p
                .parse()
                .map_err(|_| err("the port must be a number in 1..=65535"))?;
            if !(1..=65535).contains(&n) {
                return Err(err(&format!("port {n} is out of range 1..=65535")));
            }
            n as u16
        }
    };
    Ok(HostPort {
        host: host.to_string(),
        port,
    })
}

/// Parses an Elasticsearch host `[scheme://]host[:port][/path]`, checking the port and
/// refusing credentials. Errors quote the entry with any password redacted.
fn check_es_host(input: &str) -> Result<(), HostPortError> {
    let shown = redact_url_password(input);
    let input = shown.as_str();
    let rest = match input.split_once("://") {
        Some((scheme, rest)) => {
            if scheme != "http" && scheme != "https" {
                return Err(HostPortError {
                    input: input.to_string(),
                    reason: format!("scheme {scheme:?} is not http or https"),
                });
            }
            rest
        }
        None => input,
    };
    // A password may hold a raw `/`: any `@` after the scheme is taken for userinfo.
    if rest.contains('@') {
        return Err(HostPortError {
            input: input.to_string(),
            reason: "credentials in a host URL are not accepted; use username/password or api_key"
                .to_string(),
        });
    }
    let authority = rest.split('/').next().unwrap_or_default();
    parse_host_port(authority, ELASTICSEARCH_DEFAULT_PORT)
        .map(|_| ())
        .map_err(|e| HostPortError {
            input: input.to_string(),
            reason: e.reason,
        })
}

fn check_range(out: &mut Vec<Problem>, path: &str, value: i128, min: i128, max: i128) {
    if !(min..=max).contains(&value) {
        out.push(Problem::new(
            path,
            format!("{value} is out of range {min}..={max}"),
        ));
    }
}

fn check_ssl(out: &mut Vec<Problem>, path: &str, ssl: &SslConfig) {
    match (&ssl.certificate, &ssl.key) {
        (Some(_), None) => out.push(Problem::new(
            format!("{path}.certificate"),
            format!("{path}.certificate is set but {path}.key is not; both are required"),
        )),
        (None, Some(_)) => out.push(Problem::new(
            format!("{path}.key"),
            format!("{path}.key is set but {path}.certificate is not; both are required"),
        )),
        _ => {}
    }
    let legacy = crate::credentials::tls::is_legacy_protocol;
    for (i, p) in ssl.supported_protocols.iter().enumerate() {
        if p != "TLSv1.2" && p != "TLSv1.3" && !legacy(p) {
            out.push(Problem::new(
                format!("{path}.supported_protocols.{i}"),
                format!("{p:?} is not a protocol; use TLSv1.2 or TLSv1.3"),
            ));
        }
    }
    if !ssl.supported_protocols.is_empty() && ssl.supported_protocols.iter().all(|p| legacy(p)) {
        out.push(Problem::new(
            format!("{path}.supported_protocols"),
            format!(
                "{} only: not supported (insecure); use TLSv1.2 and/or TLSv1.3",
                ssl.supported_protocols.join(", ")
            ),
        ));
    }
    // Beats' certReloadConfig.Validate: a period under 1s is refused.
    if let Some(period) = ssl.restart_on_cert_change.period {
        if period.get() < std::time::Duration::from_secs(1) {
            out.push(Problem::new(
                format!("{path}.restart_on_cert_change.period"),
                format!("{period} is under 1s (as Beats, refused)"),
            ));
        }
    }
    if ssl.key_passphrase.is_some() && ssl.key_passphrase_path.is_some() {
        out.push(Problem::new(
            format!("{path}.key_passphrase"),
            "set key_passphrase or key_passphrase_path, not both",
        ));
    }
}

fn check_backoff(out: &mut Vec<Problem>, path: &str, b: &BackoffConfig) {
    if b.init > b.max {
        out.push(Problem::new(
            format!("{path}.init"),
            format!(
                "backoff.init ({}) is longer than backoff.max ({})",
                b.init, b.max
            ),
        ));
    }
}

fn check_hosts(out: &mut Vec<Problem>, path: &str, hosts: &[String], es: bool) {
    if hosts.is_empty() {
        out.push(Problem::new(
            path,
            "the host list is empty; give at least one host",
        ));
    }
    for (i, h) in hosts.iter().enumerate() {
        let result = if es {
            check_es_host(h)
        } else {
            parse_host_port(h, LOGSTASH_DEFAULT_PORT).map(|_| ())
        };
        if let Err(e) = result {
            out.push(Problem::new(format!("{path}.{i}"), e.to_string()));
        }
    }
}

/// `queue.disk.*`: Beats' limits (segments ≥ 1 MB, `max_size` ≥ 10 MB and two segments).
fn check_disk_queue(out: &mut Vec<Problem>, d: &super::schema::DiskQueueConfig) {
    const MB: u64 = 1_000_000;
    let max = d.max_size.bytes();
    if max != 0 && max < 10 * MB {
        out.push(Problem::new(
            "queue.disk.max_size",
            "must be at least 10MB (or 0 for unbounded)",
        ));
    }
    let segment = d.effective_segment_size();
    if segment < MB {
        out.push(Problem::new(
            "queue.disk.segment_size",
            "must be at least 1MB",
        ));
    } else if max != 0 && max >= 10 * MB && max < 2 * segment {
        out.push(Problem::new(
            "queue.disk.max_size",
            format!("must hold at least two segments (segment_size is {segment} bytes)"),
        ));
    }
    if d.read_ahead == 0 {
        out.push(Problem::new("queue.disk.read_ahead", "must be at least 1"));
    }
    if d.retry_interval.is_zero() {
        out.push(Problem::new(
            "queue.disk.retry_interval",
            "must be more than 0s",
        ));
    } else if d.max_retry_interval.get() < d.retry_interval.get() {
        out.push(Problem::new(
            "queue.disk.max_retry_interval",
            "must be at least queue.disk.retry_interval",
        ));
    }
    if !["batch", "interval", "none"].contains(&d.sync.as_str()) {
        out.push(Problem::new(
            "queue.disk.sync",
            format!("{:?} is not one of batch, interval, none", d.sync),
        ));
    } else if d.sync == "interval" && d.sync_interval.is_zero() {
        out.push(Problem::new(
            "queue.disk.sync_interval",
            "must be more than 0s with sync: interval",
        ));
    }
}

impl Config {
    /// Range and cross-field rules, every problem collected: exactly one output enabled (or
    /// a failover pair), host lists and ports, compression levels, certificate/key pairs.
    ///
    /// # Errors
    /// Every problem found, each with its key path.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut out = Vec::new();
        self.validate_outputs(&mut out);
        self.validate_inputs(&mut out);
        if self.queue.mem.events == 0 {
            out.push(Problem::new("queue.mem.events", "must be at least 1"));
        }
        if let Some(disk) = &self.queue.disk {
            check_disk_queue(&mut out, disk);
        }
        if self.logging.tracing_level().is_none() {
            out.push(Problem::new(
                "logging.level",
                format!(
                    "{:?} is not one of {}",
                    self.logging.level,
                    super::LOG_LEVELS
                ),
            ));
        }
        validate_log_files(&self.logging.files, &mut out);
        if out.is_empty() {
            Ok(())
        } else {
            Err(out)
        }
    }

    /// The enabled outputs' keys (`output.logstash`, ...); see [`OutputsConfig::enabled`].
    pub fn enabled_outputs(&self) -> Vec<&'static str> {
        self.output.enabled()
    }

    fn validate_outputs(&self, out: &mut Vec<Problem>) {
        let enabled = self.enabled_outputs();
        let failover = self.output.failover.as_ref().is_some_and(|f| f.enabled);
        if failover {
            if enabled != ["output.logstash", "output.elasticsearch"] {
                out.push(Problem::new(
                    "output.failover",
                    format!(
                        "failover needs exactly output.logstash and output.elasticsearch enabled; enabled: [{}]",
                        enabled.join(", ")
                    ),
                ));
            }
        } else if enabled.is_empty() {
            out.push(Problem::new(
                "output",
                "no output is enabled; enable exactly one of output.console, output.file, output.discard, output.logstash, output.elasticsearch",
            ));
        } else if enabled.len() > 1 {
            out.push(Problem::new(
                "output",
                format!(
                    "only one output may be enabled, found {}: {} (set `enabled: false` on the others); for Logstash with Elasticsearch fallback set output.failover.enabled: true",
                    enabled.len(),
                    enabled.join(", ")
                ),
            ));
        }
        if let Some(ls) = self.output.logstash.as_ref().filter(|c| c.enabled) {
            let p = "output.logstash";
            check_hosts(out, &format!("{p}.hosts"), &ls.hosts, false);
            check_range(
                out,
                &format!("{p}.compression_level"),
                ls.compression_level.into(),
                0,
                9,
            );
            check_range(out, &format!("{p}.worker"), ls.worker as i128, 1, 1024);
            check_range(
                out,
                &format!("{p}.bulk_max_size"),
                ls.bulk_max_size as i128,
                1,
                1 << 24,
            );
            check_range(
                out,
                &format!("{p}.max_retries"),
                ls.max_retries.into(),
                -1,
                i64::MAX.into(),
            );
            check_backoff(out, &format!("{p}.backoff"), &ls.backoff);
            check_ssl(out, &format!("{p}.ssl"), &ls.ssl);
            if let Some(url) = &ls.proxy_url {
                if !url.starts_with("socks5://") {
                    out.push(Problem::new(
                        format!("{p}.proxy_url"),
                        format!("{:?} is not a socks5:// URL", redact_url_password(url)),
                    ));
                }
            }
        }
        if let Some(es) = self.output.elasticsearch.as_ref().filter(|c| c.enabled) {
            let p = "output.elasticsearch";
            check_hosts(out, &format!("{p}.hosts"), &es.hosts, true);
            check_range(
                out,
                &format!("{p}.compression_level"),
                es.compression_level.into(),
                0,
                9,
            );
            check_range(out, &format!("{p}.worker"), es.worker as i128, 1, 1024);
            check_range(
                out,
                &format!("{p}.bulk_max_size"),
                es.bulk_max_size as i128,
                1,
                1 << 24,
            );
            check_range(
                out,
                &format!("{p}.max_retries"),
                es.max_retries.into(),
                -1,
                i64::MAX.into(),
            );
            check_backoff(out, &format!("{p}.backoff"), &es.backoff);
            check_ssl(out, &format!("{p}.ssl"), &es.ssl);
            if let Some(proto) = &es.protocol {
                if proto != "http" && proto != "https" {
                    out.push(Problem::new(
                        format!("{p}.protocol"),
                        format!("{proto:?} is not http or https"),
                    ));
                }
            }
            if let Some(op) = &es.op_type {
                if op != "index" && op != "create" {
                    out.push(Problem::new(
                        format!("{p}.op_type"),
                        format!("{op:?} is not index or create"),
                    ));
                }
            }
            if es.username.is_some() != es.password.is_some() {
                out.push(Problem::new(
                    format!("{p}.username"),
                    "username and password go together; set both or neither",
                ));
            }
        }
        if let Some(f) = self.output.file.as_ref().filter(|c| c.enabled) {
            let p = "output.file";
            if f.path.as_os_str().is_empty() {
                out.push(Problem::new(
                    format!("{p}.path"),
                    "required: the directory of the files",
                ));
            }
            check_range(
                out,
                &format!("{p}.number_of_files"),
                f.number_of_files.into(),
                2,
                1024,
            );
            if f.rotate_every_kb == 0 {
                out.push(Problem::new(
                    format!("{p}.rotate_every_kb"),
                    "must be at least 1",
                ));
            }
            if u32::from_str_radix(&f.permissions, 8).map_or(true, |m| m > 0o7777) {
                out.push(Problem::new(
                    format!("{p}.permissions"),
                    format!("{:?} is not an octal file mode such as 0600", f.permissions),
                ));
            }
        }
        if let Some(fo) = self.output.failover.as_ref().filter(|f| f.enabled) {
            if fo.after.is_zero() {
                out.push(Problem::new(
                    "output.failover.after",
                    "must be longer than 0s",
                ));
            }
            if fo.probe_interval.is_zero() {
                out.push(Problem::new(
                    "output.failover.probe_interval",
                    "must be longer than 0s",
                ));
            }
        }
    }

    /// The input list and its key: `filebeat.inputs` when that lists inputs, else
    /// `skidder.inputs` (validation refuses both at once).
    pub fn inputs(&self) -> (&'static str, &[InputConfig]) {
        if self.filebeat.inputs.is_empty() {
            ("skidder.inputs", &self.skidder.inputs)
        } else {
            ("filebeat.inputs", &self.filebeat.inputs)
        }
    }

    fn validate_processors(list: &[serde_json::Value], key: &str, out: &mut Vec<Problem>) {
        if let Err(errors) = crate::processors::Processors::build(list, key) {
            out.extend(errors.into_iter().map(|e| Problem::new(e.path, e.message)));
        }
    }

    fn validate_inputs(&self, out: &mut Vec<Problem>) {
        if !self.skidder.inputs.is_empty() && !self.filebeat.inputs.is_empty() {
            out.push(Problem::new(
                "filebeat.inputs",
                "skidder.inputs lists inputs too; list them under one of the two",
            ));
        }
        Self::validate_processors(&self.processors, "processors", out);
        let lists = [
            ("skidder.inputs", &self.skidder.inputs),
            ("filebeat.inputs", &self.filebeat.inputs),
        ];
        for (i, input, key) in lists
            .iter()
            .flat_map(|(key, list)| list.iter().enumerate().map(move |(i, c)| (i, c, *key)))
        {
            let p = format!("{key}.{i}");
            Self::validate_processors(&input.common.processors, &format!("{p}.processors"), out);
            match &input.kind {
                InputKind::Stdin(_) => {}
                InputKind::Generator(g) => {
                    if g.threads == 0 {
                        out.push(Problem::new(format!("{p}.threads"), "must be at least 1"));
                    }
                }
                InputKind::Lumberjack(lj) => {
                    // A listener may ask for any free port (`:0`): tests, `skidder receive`.
                    let host = lj.host.trim();
                    let host = host.strip_suffix(":0").unwrap_or(host);
                    if let Err(e) = parse_host_port(host, LOGSTASH_DEFAULT_PORT) {
                        out.push(Problem::new(format!("{p}.host"), e.to_string()));
                    }
                    if lj.max_window_size == 0 {
                        out.push(Problem::new(
                            format!("{p}.max_window_size"),
                            "must be at least 1",
                        ));
                    }
                    check_ssl(out, &format!("{p}.ssl"), &lj.ssl);
                }
                InputKind::HttpEndpoint(h) => check_ssl(out, &format!("{p}.ssl"), &h.ssl),
                InputKind::Filestream(f) => {
                    let id = input.common.id.as_deref();
                    for (key, reason) in crate::inputs::filestream::check(id, f) {
                        out.push(Problem::new(format!("{p}.{key}"), reason));
                    }
                }
                InputKind::Log(l) => {
                    let id = input.common.id.as_deref();
                    for (key, reason) in super::log_input::check(id, l) {
                        out.push(Problem::new(format!("{p}.{key}"), reason));
                    }
                }
            }
        }
    }
}

/// `logging.files.*`: Beats' limits (`libbeat/logp/config.go`, `libbeat/common/file`).
fn validate_log_files(f: &LogFilesConfig, out: &mut Vec<Problem>) {
    let p = "logging.files";
    if f.name.is_empty() || f.name.contains('/') {
        out.push(Problem::new(
            format!("{p}.name"),
            format!("{:?} is not a file name (no directory, not empty)", f.name),
        ));
    }
    if f.rotateeverybytes.0 == 0 {
        out.push(Problem::new(
            format!("{p}.rotateeverybytes"),
            "must be at least 1",
        ));
    }
    check_range(out, &format!("{p}.keepfiles"), f.keepfiles.into(), 0, 1024);
    if u32::from_str_radix(&f.permissions, 8).map_or(true, |m| m > 0o777) {
        out.push(Problem::new(
            format!("{p}.permissions"),
            format!("{:?} is not an octal file mode such as 0600", f.permissions),
        ));
    }
    if !f.interval.is_zero() && f.interval.get() < std::time::Duration::from_secs(1) {
        out.push(Problem::new(
            format!("{p}.interval"),
            "must be 0 (off) or at least 1s",
        ));
    }
}

impl OutputsConfig {
    /// The keys of the enabled outputs, in schema order: an output is enabled when its
    /// section is present and `enabled` is true (Beats' rule).
    pub fn enabled(&self) -> Vec<&'static str> {
        [
            ("output.console", self.console.as_ref().map(|c| c.enabled)),
            ("output.file", self.file.as_ref().map(|c| c.enabled)),
            ("output.discard", self.discard.as_ref().map(|c| c.enabled)),
            ("output.logstash", self.logstash.as_ref().map(|c| c.enabled)),
            (
                "output.elasticsearch",
                self.elasticsearch.as_ref().map(|c| c.enabled),
            ),
        ]
        .into_iter()
        .filter_map(|(key, on)| (on == Some(true)).then_some(key))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logstash(hosts: &[&str]) -> Config {
        let mut c = Config::default();
        c.output.logstash = Some(LogstashOutputConfig {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..Default::default()
        });
        c
    }

    #[test]
    fn host_ports() {
        assert_eq!(parse_host_port("a", 5044).unwrap().port, 5044);
        assert_eq!(parse_host_port("a:6000", 5044).unwrap().port, 6000);
        assert_eq!(parse_host_port("[::1]:7", 5044).unwrap().host, "::1");
        assert!(parse_host_port("a:0", 5044)
            .unwrap_err()
            .reason
            .contains("1..=65535"));
        assert!(parse_host_port("a:70000", 5044).is_err());
        assert!(parse_host_port(":5044", 5044).is_err());
    }

    #[test]
    fn exactly_one_output_unless_failover() {
        assert!(logstash(&["a:5044"]).validate().is_ok());
        let none = Config::default().validate().unwrap_err();
        assert!(none[0].message.contains("no output"), "{none:?}");
        let mut two = logstash(&["a"]);
        two.output.discard = Some(DiscardOutputConfig::default());
        let p = two.validate().unwrap_err();
        assert!(
            p[0].message.contains("output.discard, output.logstash"),
            "{p:?}"
        );
        let mut pair = logstash(&["a"]);
        pair.output.elasticsearch = Some(ElasticsearchOutputConfig {
            hosts: vec!["https://es:9200".into()],
            ..Default::default()
        });
        pair.output.failover = Some(FailoverConfig {
            enabled: true,
            ..Default::default()
        });
        assert!(pair.validate().is_ok(), "{:?}", pair.validate());
    }

    #[test]
    fn ranges_and_pairs_are_all_reported() {
        let mut c = logstash(&[]);
        if let Some(ls) = c.output.logstash.as_mut() {
            ls.compression_level = 12;
            ls.ssl.certificate = Some("cert.pem".into());
        }
        let p = c.validate().unwrap_err();
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "output.logstash.hosts",
                "output.logstash.compression_level",
                "output.logstash.ssl.certificate"
            ]
        );
        assert!(p[1].message.contains("0..=9"));
    }
}
