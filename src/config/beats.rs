//! Beats configuration that is not a skidder setting of its own, applied to the merged tree
//! before keys are checked: several `-c` files layered, `cloud.id`/`cloud.auth` decoded
//! into `output.elasticsearch`, an `output.elasticsearch.preset` written over the keys it
//! sets, and the sections of Elastic's management plane (`setup.*`, `monitoring.*`, ...)
//! taken out with one [`Notice`] each.
//!
//! Nothing that changes where or how events are delivered is dropped silently: what is
//! ignored or overridden becomes a [`Notice`], which `skidder test config` prints and a run
//! logs at WARN. Typos of these section names still get "did you mean" (see
//! [`IGNORED_SECTIONS`], offered as candidates by the key check).

use std::path::Path;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::check::Problem;

/// Something loading accepted but does not apply as written, for a WARN line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The key or section concerned, e.g. `setup.kibana`.
    pub key: String,
    /// What happens instead, and why.
    pub message: String,
}

impl Notice {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Top-level sections that only concern Elastic's management plane (bootstrapping
/// Elasticsearch and Kibana, shipping the Beat's own metrics, central management), with
/// why skidder can ignore them: none changes where or how events are delivered.
pub const IGNORED_SECTIONS: &[(&str, &str)] = &[
    (
        "setup",
        "ignored: index templates, ILM policies, dashboards and Kibana set-up are Elastic \
         stack bootstrapping, which skidder does not do (set them up with Filebeat's \
         `setup` command or in Kibana)",
    ),
    (
        "monitoring",
        "ignored: skidder does not ship its own metrics to a monitoring cluster; its \
         counters are in the logging.metrics line",
    ),
    (
        "migration",
        "ignored: Beats' 6.x-to-7.x field aliases concern Elasticsearch templates, which \
         skidder does not install",
    ),
    (
        "instrumentation",
        "ignored: APM tracing of the shipper itself is not built in",
    ),
    ("seccomp", "ignored: skidder installs no seccomp filter"),
    (
        "management",
        "ignored: central management (Fleet, Elastic Agent) does not manage skidder",
    ),
    (
        "keystore",
        "ignored: skidder's keystore is <path.data>/skidder.keystore (see `skidder keystore`)",
    ),
    (
        "xpack",
        "ignored: X-Pack monitoring of the shipper itself is not built in",
    ),
];

/// The top-level keys [`apply`] takes out before keys are checked, so that a near miss
/// (`setpu`) still gets "did you mean".
pub fn top_level_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = IGNORED_SECTIONS.iter().map(|(k, _)| *k).collect();
    keys.push("cloud");
    keys
}

/// The values `output.elasticsearch.preset` accepts.
pub const PRESET_NAMES: &[&str] = &["balanced", "throughput", "scale", "latency", "custom"];

/// One preset's values, Beats 8.12+ (`libbeat/outputs/elasticsearch/config_presets.go`).
struct Preset {
    bulk_max_size: u64,
    worker: u64,
    compression_level: u64,
    idle_connection_timeout: &'static str,
    queue_events: u64,
    flush_min_events: u64,
    flush_timeout: &'static str,
}

fn preset(name: &str) -> Option<Preset> {
    let p = |b, w, c, idle, q, min, t| Preset {
        bulk_max_size: b,
        worker: w,
        compression_level: c,
        idle_connection_timeout: idle,
        queue_events: q,
        flush_min_events: min,
        flush_timeout: t,
    };
    match name {
        "balanced" => Some(p(1600, 1, 1, "3s", 3200, 1600, "10s")),
        "throughput" => Some(p(1600, 4, 1, "15s", 12800, 1600, "5s")),
        "scale" => Some(p(1600, 1, 1, "1s", 3200, 1600, "20s")),
        "latency" => Some(p(50, 1, 1, "60s", 4100, 2050, "1s")),
        _ => None,
    }
}

/// Merges `over` into `base` as Beats merges several `-c` files (go-ucfg): mappings key by
/// key, lists element by element by index (file 2's `hosts[0]` replaces file 1's
/// `hosts[0]`; a longer list adds its tail), anything else replaced.
pub fn merge_layer(base: &mut Value, over: Value) {
    // An empty file (or `key:` with nothing) adds nothing.
    if over.is_null() {
        return;
    }
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_layer(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(o)) => {
            for (i, v) in o.into_iter().enumerate() {
                match b.get_mut(i) {
                    Some(slot) => merge_layer(slot, v),
                    None => b.push(v),
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Applies the Beats-only parts of the merged configuration `root` (see the module docs).
/// `config_dir` is `path.config`, where `filebeat.config.modules` looks for module files.
pub fn apply(root: &mut Value, config_dir: &Path, problems: &mut Vec<Problem>) -> Vec<Notice> {
    let mut notices = Vec::new();
    let Value::Object(top) = root else {
        return notices;
    };
    for (name, why) in IGNORED_SECTIONS {
        if let Some(v) = top.remove(*name) {
            if !v.is_null() {
                notices.push(Notice::new(*name, *why));
            }
        }
    }
    modules(top, config_dir, problems, &mut notices);
    cloud(top, problems);
    apply_preset(top, &mut notices);
    notices
}

/// `filebeat.config.modules`: loads with a notice while no module file is enabled (the
/// shipped filebeat.yml has the section, with every module in `modules.d/*.yml.disabled`);
/// an enabled module file is refused, since its inputs would not run.
fn modules(
    top: &mut Map<String, Value>,
    config_dir: &Path,
    out: &mut Vec<Problem>,
    notes: &mut Vec<Notice>,
) {
    let Some(Value::Object(fb)) = top.get_mut("filebeat") else {
        return;
    };
    let Some(Value::Object(config)) = fb.get_mut("config") else {
        return;
    };
    let Some(section) = config.remove("modules") else {
        return;
    };
    if config.is_empty() {
        fb.remove("config");
    }
    if fb.is_empty() {
        top.remove("filebeat");
    }
    let key = "filebeat.config.modules";
    let pattern = section.get("path").and_then(Value::as_str).map_or_else(
        || config_dir.join("modules.d/*.yml"),
        |p| config_dir.join(p),
    );
    let found = glob_files(&pattern);
    if found.is_empty() {
        notes.push(Notice::new(
            key,
            format!(
                "ignored: no module file matches {} (skidder runs no Filebeat modules)",
                pattern.display()
            ),
        ));
    } else {
        out.push(Problem::new(
            key,
            format!(
                "{} enabled module file(s) ({}): skidder runs no Filebeat modules; configure \
                 the inputs directly, or rename the files to *.disabled",
                found.len(),
                found.join(", ")
            ),
        ));
    }
}

/// Files matching `pattern`, where only the file name may hold `*` wildcards (as in
/// `modules.d/*.yml`).
fn glob_files(pattern: &Path) -> Vec<String> {
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| wildcard(&name, f))
        .collect();
    found.sort();
    found
}

fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| wildcard(rest, &tail[i..]))
        }
    }
}

/// Elastic Cloud's `cloud.id` decoded as Beats does (`libbeat/cloudid`): the text after
/// the last `:` is standard base64 of `host$es-id$kibana-id`, each part with an optional
/// `:port` (default 443; a port on the host is the default of the others).
///
/// # Errors
/// What is wrong with the id, without the decoded text.
pub fn decode_cloud_id(id: &str) -> Result<String, String> {
    let encoded = id.rsplit(':').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("base64 decoding of the text after the last ':' failed: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "the decoded id is not UTF-8".to_string())?;
    let words: Vec<&str> = text.split('$').collect();
    if words.len() < 3 {
        return Err(format!(
            "expected at least 3 parts separated by $ in the decoded id, found {}",
            words.len()
        ));
    }
    let split = |word: &str, default: &str| -> (String, String) {
        match word.rsplit_once(':') {
            Some((id, port)) => (id.to_string(), port.to_string()),
            None => (word.to_string(), default.to_string()),
        }
    };
    let (host, port) = split(words[0], "443");
    let (es, es_port) = split(words[1], &port);
    if host.is_empty() || es.is_empty() {
        return Err("the decoded id has an empty host or Elasticsearch id".to_string());
    }
    Ok(format!("https://{es}.{host}:{es_port}"))
}

/// `cloud.id`/`cloud.auth` → `output.elasticsearch.hosts`, `username`, `password`, as
/// Beats' `cloudid.OverwriteSettings`: refused when another output is enabled, or when only
/// `cloud.auth` is given. The password is never quoted.
fn cloud(top: &mut Map<String, Value>, out: &mut Vec<Problem>) {
    let Some(section) = top.remove("cloud") else {
        return;
    };
    let text = |k: &str| {
        section
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (id, auth) = (text("id"), text("auth"));
    if let Value::Object(map) = &section {
        for k in map.keys().filter(|k| *k != "id" && *k != "auth") {
            out.push(Problem::new(
                format!("cloud.{k}"),
                "unknown key; cloud takes id and auth",
            ));
        }
    }
    let id = match (id, &auth) {
        (None, None) => return,
        (None, Some(_)) => {
            out.push(Problem::new(
                "cloud.auth",
                "cloud.auth is set but cloud.id is empty; set both (as Beats)",
            ));
            return;
        }
        (Some(id), _) => id,
    };
    let url = match decode_cloud_id(&id) {
        Ok(u) => u,
        Err(e) => {
            out.push(Problem::new("cloud.id", format!("invalid cloud id: {e}")));
            return;
        }
    };
    let outputs = top
        .entry("output")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(outputs) = outputs else {
        return;
    };
    let failover = outputs
        .get("failover")
        .and_then(|f| f.get("enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let enabled = |v: &Value| v.get("enabled").and_then(Value::as_bool) != Some(false);
    let others: Vec<String> = outputs
        .iter()
        .filter(|(k, v)| *k != "elasticsearch" && *k != "failover" && enabled(v))
        .map(|(k, _)| format!("output.{k}"))
        .collect();
    if !others.is_empty() && !failover {
        out.push(Problem::new(
            "cloud.id",
            format!(
                "cloud.id sets output.elasticsearch, but {} is enabled (as Beats, refused; \
                 remove cloud.id or that output)",
                others.join(", ")
            ),
        ));
        return;
    }
    let es = outputs
        .entry("elasticsearch")
        .or_insert_with(|| Value::Object(Map::new()));
    if es.is_null() {
        *es = Value::Object(Map::new());
    }
    let Value::Object(es) = es else {
        return;
    };
    es.insert("hosts".to_string(), Value::Array(vec![Value::String(url)]));
    if let Some(auth) = auth {
        match auth.split_once(':') {
            Some((user, pass)) => {
                es.insert("username".to_string(), Value::String(user.to_string()));
                es.insert("password".to_string(), Value::String(pass.to_string()));
            }
            None => out.push(Problem::new(
                "cloud.auth",
                "cloud.auth has no ':' between the user name and the password",
            )),
        }
    }
}

/// `output.elasticsearch.preset`: its values are written over the user's (each difference
/// noted), and every `queue.*` setting is replaced by the preset's memory queue, as Beats
/// 8.12+ does.
fn apply_preset(top: &mut Map<String, Value>, notes: &mut Vec<Notice>) {
    let Some(es) = top
        .get_mut("output")
        .and_then(|o| o.get_mut("elasticsearch"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if es.get("enabled").and_then(Value::as_bool) == Some(false) {
        return;
    }
    let Some(name) = es.get("preset").and_then(Value::as_str).map(str::to_string) else {
        return;
    };
    let Some(p) = preset(&name) else {
        return;
    };
    let key = "output.elasticsearch.preset";
    let sets: [(&str, Value); 4] = [
        ("bulk_max_size", p.bulk_max_size.into()),
        ("worker", p.worker.into()),
        ("compression_level", p.compression_level.into()),
        ("idle_connection_timeout", p.idle_connection_timeout.into()),
    ];
    for (k, v) in sets {
        if let Some(old) = es.insert(k.to_string(), v.clone()) {
            if !same(&old, &v) {
                notes.push(Notice::new(
                    key,
                    format!(
                        "{name} sets output.elasticsearch.{k} to {v} over the configured {old}"
                    ),
                ));
            }
        }
    }
    let queue = serde_json::json!({"mem": {
        "events": p.queue_events,
        "flush": {"min_events": p.flush_min_events, "timeout": p.flush_timeout},
    }});
    if let Some(old) = top.insert("queue".to_string(), queue) {
        if !old.is_null() && old.as_object().is_none_or(|m| !m.is_empty()) {
            notes.push(Notice::new(
                key,
                format!(
                    "{name} replaces every queue.* setting with queue.mem.events: {}, \
                     flush.min_events: {}, flush.timeout: {} (as Beats 8.12+); set preset: \
                     custom to keep your queue settings",
                    p.queue_events, p.flush_min_events, p.flush_timeout
                ),
            ));
        }
    }
}

/// Notices about typed settings skidder accepts as Beats writes them but serves otherwise
/// or not at all: syslog/eventlog/ECS logging, selectors that name nothing skidder logs,
/// `allow_older_versions: false`, `proxy_headers` without `proxy_url`,
/// `ssl.restart_on_cert_change`.
pub fn setting_notices(cfg: &super::Config) -> Vec<Notice> {
    let mut out = Vec::new();
    let log = &cfg.logging;
    let dest = if log.to_stderr {
        "standard error"
    } else if log.to_files {
        "the log files"
    } else {
        "nowhere (to_stderr and to_files are off)"
    };
    for (on, key, what) in [
        (
            log.to_syslog,
            "logging.to_syslog",
            "skidder does not log to syslog",
        ),
        (
            log.to_eventlog,
            "logging.to_eventlog",
            "the Windows event log does not exist here",
        ),
        (
            log.ecs,
            "logging.ecs",
            "skidder has no ECS log layout (logging.json gives JSON lines)",
        ),
        (
            log.files.redirect_stderr,
            "logging.files.redirect_stderr",
            "skidder does not copy its standard error into the log file",
        ),
    ] {
        if on {
            out.push(Notice::new(
                key,
                format!("ignored: {what}; logs go to {dest}"),
            ));
        }
    }
    for s in &log.selectors {
        if s != "*" && crate::telemetry::selector_target(s).is_none() {
            out.push(Notice::new(
                "logging.selectors",
                format!(
                    "{s:?} names no part of skidder and selects nothing; use elasticsearch, \
                     logstash, publisher, input, tls, config or a module path such as \
                     outputs::logstash"
                ),
            ));
        }
    }
    if !log.selectors.is_empty() && log.tracing_level() != Some("debug") {
        out.push(Notice::new(
            "logging.selectors",
            "ignored: selectors apply only with logging.level: debug (as Beats)",
        ));
    }
    for ns in log.metrics.namespaces.iter().filter(|n| *n != "stats") {
        out.push(Notice::new(
            "logging.metrics.namespaces",
            format!("{ns:?} ignored: skidder has one metrics namespace, stats"),
        ));
    }
    if let Some(es) = cfg.output.elasticsearch.as_ref().filter(|e| e.enabled) {
        if !es.allow_older_versions {
            out.push(Notice::new(
                "output.elasticsearch.allow_older_versions",
                "false is not applied: skidder does not compare its version with the \
                 cluster's (Beats refuses a cluster older than itself)",
            ));
        }
        if !es.proxy_headers.is_empty() && (es.proxy_url.is_none() || es.proxy_disable) {
            out.push(Notice::new(
                "output.elasticsearch.proxy_headers",
                "ignored: they are sent only to a proxy set by proxy_url",
            ));
        }
    }
    let mut ssl: Vec<(String, &super::SslConfig)> = Vec::new();
    if let Some(ls) = &cfg.output.logstash {
        ssl.push(("output.logstash.ssl".into(), &ls.ssl));
    }
    if let Some(es) = &cfg.output.elasticsearch {
        ssl.push(("output.elasticsearch.ssl".into(), &es.ssl));
    }
    for (key, ssl) in ssl {
        if ssl.restart_on_cert_change.enabled {
            out.push(Notice::new(
                format!("{key}.restart_on_cert_change.enabled"),
                "served by reloading instead of exiting: skidder re-reads changed \
                 certificate and key files for each new connection, so no restart is needed",
            ));
        }
    }
    out
}

/// Equal as a person wrote them: `4` and `"4"`, `3s` and `"3s"`.
fn same(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text(a) == text(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cloud_ids_decode_as_in_beats_tests() {
        // libbeat/cloudid/cloudid_test.go's TestDecode vectors.
        for (id, want) in [
            ("staging:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==",
             "https://cec6f261a74bf24ce33bb8811b84294f.us-east-1.aws.found.io:443"),
            (":dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==",
             "https://cec6f261a74bf24ce33bb8811b84294f.us-east-1.aws.found.io:443"),
            ("custom-port:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvOjkyNDMkYWMzMWViYjkwMjQxNzczMTU3MDQzYzM0ZmQyNmZkNDYkYTRjMDYyMzBlNDhjOGZjZTdiZTg4YTA3NGEzYmIzZTA=",
             "https://ac31ebb90241773157043c34fd26fd46.us-central1.gcp.cloud.es.io:9243"),
            ("different-es-kb-port:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJGFjMzFlYmI5MDI0MTc3MzE1NzA0M2MzNGZkMjZmZDQ2OjkyNDMkYTRjMDYyMzBlNDhjOGZjZTdiZTg4YTA3NGEzYmIzZTA6OTI0NA==",
             "https://ac31ebb90241773157043c34fd26fd46.us-central1.gcp.cloud.es.io:9243"),
        ] {
            assert_eq!(decode_cloud_id(id).unwrap(), want, "{id}");
        }
        assert!(decode_cloud_id("staging:garbagedXMtZWFzdC0x")
            .unwrap_err()
            .contains("base64"));
        let two = decode_cloud_id(
            "dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJDhhMDI4M2FmMDQxZjE5NWY3NzI5YmMwNGM2NmEwZg==",
        );
        assert!(two.unwrap_err().contains("at least 3 parts"));
    }

    #[test]
    fn cloud_sets_the_elasticsearch_output_and_never_quotes_the_password() {
        let id = "x:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==";
        let mut v = json!({"cloud": {"id": id, "auth": "elastic:s3cr:et"}});
        let mut p = Vec::new();
        apply(&mut v, Path::new("."), &mut p);
        assert!(p.is_empty(), "{p:?}");
        let es = &v["output"]["elasticsearch"];
        assert_eq!(
            es["hosts"][0],
            "https://cec6f261a74bf24ce33bb8811b84294f.us-east-1.aws.found.io:443"
        );
        assert_eq!(
            (es["username"].as_str(), es["password"].as_str()),
            (Some("elastic"), Some("s3cr:et"))
        );
        assert!(v.get("cloud").is_none());

        let mut v = json!({"cloud": {"id": id, "auth": "nocolon-secret"}, "output": {"logstash": {"hosts": ["a"]}}});
        let mut p = Vec::new();
        apply(&mut v, Path::new("."), &mut p);
        let text = format!("{p:?}");
        assert!(text.contains("output.logstash is enabled"), "{text}");
        assert!(!text.contains("nocolon-secret"), "{text}");

        let mut p = Vec::new();
        apply(
            &mut json!({"cloud": {"auth": "a:b"}}),
            Path::new("."),
            &mut p,
        );
        assert_eq!(p[0].path, "cloud.auth");
    }

    #[test]
    fn presets_override_with_a_notice_and_replace_the_queue() {
        let mut v = json!({
            "output": {"elasticsearch": {"hosts": ["h"], "preset": "throughput", "worker": 2, "bulk_max_size": 1600}},
            "queue": {"mem": {"events": 100}},
        });
        let notes = apply(&mut v, Path::new("."), &mut Vec::new());
        let es = &v["output"]["elasticsearch"];
        assert_eq!(
            (
                es["worker"].as_u64(),
                es["idle_connection_timeout"].as_str()
            ),
            (Some(4), Some("15s"))
        );
        assert_eq!(
            v["queue"],
            json!({"mem": {"events": 12800, "flush": {"min_events": 1600, "timeout": "5s"}}})
        );
        let text: Vec<String> = notes.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0]
                .contains("throughput sets output.elasticsearch.worker to 4 over the configured 2"),
            "{text:?}"
        );
        assert!(
            text[1].contains("replaces every queue.* setting"),
            "{text:?}"
        );
        // `custom` and a disabled output change nothing.
        for es in [
            json!({"preset": "custom", "worker": 2}),
            json!({"preset": "latency", "enabled": false, "worker": 2}),
        ] {
            let mut v = json!({"output": {"elasticsearch": es.clone()}});
            assert!(apply(&mut v, Path::new("."), &mut Vec::new()).is_empty());
            assert_eq!(v["output"]["elasticsearch"], es);
        }
    }

    #[test]
    fn management_sections_are_removed_with_one_notice_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = json!({
            "setup": {"kibana": {"host": "k"}, "template": {"settings": {}}},
            "monitoring": {"enabled": false},
            "filebeat": {"config": {"modules": {"path": "modules.d/*.yml", "reload.enabled": false}}},
        });
        let notes = apply(&mut v, dir.path(), &mut Vec::new());
        let keys: Vec<&str> = notes.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(keys, ["setup", "monitoring", "filebeat.config.modules"]);
        assert_eq!(v, json!({}));
        // An enabled module file is refused; a .disabled one is not.
        std::fs::create_dir(dir.path().join("modules.d")).unwrap();
        std::fs::write(dir.path().join("modules.d/nginx.yml.disabled"), "").unwrap();
        let mut p = Vec::new();
        apply(
            &mut json!({"filebeat": {"config": {"modules": {"path": "modules.d/*.yml"}}}}),
            dir.path(),
            &mut p,
        );
        assert!(p.is_empty(), "{p:?}");
        std::fs::write(dir.path().join("modules.d/system.yml"), "").unwrap();
        apply(
            &mut json!({"filebeat": {"config": {"modules": {"path": "modules.d/*.yml"}}}}),
            dir.path(),
            &mut p,
        );
        assert!(p[0].message.contains("system.yml"), "{p:?}");
    }

    #[test]
    fn layers_merge_lists_by_index_as_go_ucfg() {
        let mut a = json!({"output": {"logstash": {"hosts": ["a", "b"], "worker": 1}}, "x": [{"k": 1, "j": 2}]});
        merge_layer(
            &mut a,
            json!({"output": {"logstash": {"hosts": ["c"]}}, "x": [{"k": 3}, {"k": 4}]}),
        );
        assert_eq!(
            a,
            json!({"output": {"logstash": {"hosts": ["c", "b"], "worker": 1}}, "x": [{"k": 3, "j": 2}, {"k": 4}]})
        );
    }
}
