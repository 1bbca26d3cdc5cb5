//! The monitoring endpoint (`http.*`): `/stats` in libbeat's JSON shape (the keys and types
//! Metricbeat's `beat` module reads), `/metrics` read by a third-party Prometheus text
//! parser, a Unix socket with mode 0600, TLS and authentication with curl, and no secret on
//! any reply or log line.

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "credentials_pki/mod.rs"]
mod pki;

use std::time::Duration;

use http::{client, eventually, get_json, start};

const LIMIT: Duration = Duration::from_secs(30);

/// An intake into `output.file` plus the monitoring endpoint (with `extra` http keys).
fn yaml(dir: &std::path::Path, http_extra: &str, input_extra: &str) -> String {
    format!(
        "skidder.inputs:\n  - type: http_endpoint\n    id: web\n    listen_address: 127.0.0.1\n    listen_port: 0\n{input_extra}\
         queue.mem.flush.timeout: 0s\noutput.file:\n  path: {}\n  filename: out\n\
         http.enabled: true\nhttp.port: 0\n{http_extra}",
        dir.display()
    )
}

async fn post(c: &reqwest::Client, url: &str, n: usize) {
    let body: String = (0..n).map(|i| format!("{{\"i\":{i}}}\n")).collect();
    let r = c
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => "int",
        serde_json::Value::Number(_) => "float",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Object(_) => "object",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Null => "null",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_has_libbeats_keys_and_types_and_counts_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let run = start(
        dir.path(),
        &yaml(dir.path(), "http.host: 127.0.0.1\n", ""),
        &["web", "http"],
    );
    let c = client();
    post(&c, &run.url("web"), 7).await;
    let base = run.url("http");
    let stats = eventually("7 events acknowledged", LIMIT, || async {
        let v = get_json(&c, &format!("{base}/stats")).await;
        (v.pointer("/libbeat/output/events/acked") == Some(&7.into())).then_some(v)
    })
    .await;
    // What Metricbeat's beat module (stats metricset) requires, with libbeat's types
    // (filebeat-reference.md §6); a missing key makes its schema fail.
    let int = "int";
    let required: &[(&str, &str)] = &[
        ("/beat/info/uptime/ms", int),
        ("/beat/info/ephemeral_id", "string"),
        ("/beat/info/version", "string"),
        ("/beat/cpu/system/ticks", int),
        ("/beat/cpu/system/time/ms", int),
        ("/beat/cpu/user/ticks", int),
        ("/beat/cpu/user/time/ms", int),
        ("/beat/cpu/total/ticks", int),
        ("/beat/cpu/total/time/ms", int),
        ("/beat/cpu/total/value", int),
        ("/beat/handles/open", int),
        ("/beat/handles/limit/hard", int),
        ("/beat/handles/limit/soft", int),
        ("/beat/memstats/gc_next", int),
        ("/beat/memstats/memory_alloc", int),
        ("/beat/memstats/memory_sys", int),
        ("/beat/memstats/memory_total", int),
        ("/beat/memstats/rss", int),
        ("/beat/runtime/goroutines", int),
        ("/libbeat/config/module/running", int),
        ("/libbeat/config/module/starts", int),
        ("/libbeat/config/module/stops", int),
        ("/libbeat/config/reloads", int),
        ("/libbeat/output/type", "string"),
        ("/libbeat/output/events/acked", int),
        ("/libbeat/output/events/active", int),
        ("/libbeat/output/events/batches", int),
        ("/libbeat/output/events/dropped", int),
        ("/libbeat/output/events/duplicates", int),
        ("/libbeat/output/events/failed", int),
        ("/libbeat/output/events/toomany", int),
        ("/libbeat/output/events/total", int),
        ("/libbeat/output/read/bytes", int),
        ("/libbeat/output/read/errors", int),
        ("/libbeat/output/write/bytes", int),
        ("/libbeat/output/write/errors", int),
        ("/libbeat/pipeline/clients", int),
        ("/libbeat/pipeline/events/active", int),
        ("/libbeat/pipeline/events/dropped", int),
        ("/libbeat/pipeline/events/failed", int),
        ("/libbeat/pipeline/events/filtered", int),
        ("/libbeat/pipeline/events/published", int),
        ("/libbeat/pipeline/events/retry", int),
        ("/libbeat/pipeline/events/total", int),
        ("/libbeat/pipeline/queue/acked", int),
        ("/libbeat/pipeline/queue/max_events", int),
        ("/system/cpu/cores", int),
        ("/system/load/1", "float"),
        ("/system/load/norm/1", "float"),
    ];
    let wrong: Vec<String> = required
        .iter()
        .filter_map(|(p, want)| {
            let got = stats.pointer(p).map(kind).unwrap_or("missing");
            (got != *want).then(|| format!("{p}: {got}, want {want}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}\n{stats:#}", wrong.join("\n"));
    assert_eq!(stats["libbeat"]["output"]["type"], "file");
    assert_eq!(stats["libbeat"]["pipeline"]["events"]["published"], 7);
    assert_eq!(stats["libbeat"]["pipeline"]["events"]["active"], 0);
    assert_eq!(stats["libbeat"]["pipeline"]["queue"]["max_events"], 3200);
    assert!(
        stats["libbeat"]["output"]["write"]["bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    // `/`, `/state`, `?pretty`, 404 and a refused method.
    let root = get_json(&c, &format!("{base}/")).await;
    for key in [
        "beat",
        "hostname",
        "name",
        "uuid",
        "version",
        "ephemeral_id",
    ] {
        assert!(root[key].is_string(), "/ lacks {key}: {root}");
    }
    let uuid = root["uuid"].as_str().unwrap().to_string();
    let state = get_json(&c, &format!("{base}/state")).await;
    assert_eq!(state["output"]["name"], "file");
    assert_eq!(state["input"]["names"][0], "web");
    assert_eq!(state["management"]["enabled"], false);
    let pretty = c
        .get(format!("{base}/stats?pretty"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(pretty.contains("\n  \"beat\": {"), "{pretty}");
    assert_eq!(
        c.get(format!("{base}/nope")).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        c.post(format!("{base}/stats"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    drop(run);
    // The uuid is kept in path.data across restarts, as Beats' meta.json.
    let run = start(
        dir.path(),
        &yaml(dir.path(), "http.host: 127.0.0.1\n", ""),
        &["web", "http"],
    );
    let again = get_json(&c, &format!("{}/", run.url("http"))).await;
    assert_eq!(again["uuid"], uuid.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_is_prometheus_text_a_third_party_parser_reads() {
    let dir = tempfile::tempdir().unwrap();
    let run = start(
        dir.path(),
        &yaml(dir.path(), "http.host: 127.0.0.1\n", ""),
        &["web", "http"],
    );
    let c = client();
    post(&c, &run.url("web"), 3).await;
    let url = format!("{}/metrics", run.url("http"));
    let scrape = eventually("3 events acknowledged in /metrics", LIMIT, || async {
        let r = c.get(&url).send().await.unwrap();
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        let text = r.text().await.unwrap();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("parses as Prometheus text");
        let acked = scrape
            .samples
            .iter()
            .find(|s| s.metric == "skidder_output_events_acked_total")
            .map(|s| s.value.clone());
        matches!(acked, Some(prometheus_parse::Value::Counter(v)) if v == 3.0).then_some(scrape)
    })
    .await;
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no sample {name} {label:?}"))
    };
    assert_eq!(value("skidder_pipeline_events_published_total", None), 3.0);
    assert_eq!(
        value(
            "skidder_input_events_published_total",
            Some(("input", "web"))
        ),
        3.0
    );
    assert_eq!(value("skidder_queue_max_events", None), 3200.0);
    assert_eq!(value("skidder_queue_full", None), 0.0);
    assert!(value("skidder_process_cpu_seconds_total", None) > 0.0);
    // Every family has HELP and TYPE, and counters end in _total.
    for (name, doc) in &scrape.docs {
        assert!(!doc.is_empty(), "{name} has no HELP");
    }
}

#[test]
fn a_unix_socket_is_private_and_serves_the_same_routes() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("skidder.sock");
    let run = start(
        dir.path(),
        &yaml(
            dir.path(),
            &format!("http.host: unix://{}\n", sock.display()),
            "",
        ),
        &["web", "http"],
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(&sock)
        .arg("http://localhost/stats")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(v["libbeat"]["pipeline"]["events"]["published"].is_u64());
    drop(run);
}

/// TLS and a bearer token from the keystore-free config: curl with the CA reads /stats with
/// the token and is refused without it or with a wrong one; with both, a non-loopback
/// address needs no `allow_insecure`. No reply, and no log line, carries the token.
#[test]
fn tls_and_a_bearer_token_protect_an_exposed_endpoint_and_never_show_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("monitoring CA");
    let leaf = ca.leaf("localhost", &["localhost", "127.0.0.1"]);
    let files = pki::Files::new();
    let cert = files.write("server.crt", &leaf.cert_pem);
    let key = files.write("server.key", &leaf.key_pem);
    let ca_file = files.write("ca.crt", &ca.cert_pem);
    let token = "canary-Zq8vX3-token";
    let intake_token = "canary-Wm2kP7-intake";
    let run = start(
        dir.path(),
        &yaml(
            dir.path(),
            &format!(
                "logging.level: debug\nhttp.host: 0.0.0.0\nhttp.ssl.certificate: {cert}\nhttp.ssl.key: {key}\nhttp.auth.bearer_token: {token}\n"
            ),
            &format!("    auth.secret_token: {intake_token}\n"),
        ),
        &["web", "http"],
    );
    let port = run.addr("http").rsplit(':').next().unwrap().to_string();
    let curl = |auth: Option<&str>, path: &str| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args([
            "-sS",
            "--noproxy",
            "*",
            "--cacert",
            &ca_file,
            "-w",
            "\n%{http_code}",
        ]);
        if let Some(a) = auth {
            cmd.args(["-H", &format!("Authorization: {a}")]);
        }
        let out = cmd
            .arg(format!("https://localhost:{port}{path}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.to_string(), body.to_string())
    };
    let mut replies = String::new();
    for path in ["/", "/stats", "/state", "/metrics"] {
        let (code, body) = curl(Some(&format!("Bearer {token}")), path);
        assert_eq!(code, "200", "{path}: {body}");
        replies.push_str(&body);
    }
    // Our certificate's expiry in /metrics: the leaf is valid for a year.
    let (_, metrics) = curl(Some(&format!("Bearer {token}")), "/metrics");
    let scrape =
        prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_string()))).unwrap();
    let left = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "skidder_certificate_expiry_seconds"
                && s.labels.get("key") == Some("http.ssl")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or_else(|| panic!("no certificate expiry:\n{metrics}"));
    let day = 86_400.0;
    assert!((363.0 * day..=366.0 * day).contains(&left), "{left}");
    let (code, body) = curl(Some("Bearer wrong"), "/stats");
    assert_eq!(code, "401");
    replies.push_str(&body);
    let (code, body) = curl(None, "/stats");
    assert_eq!(code, "401");
    replies.push_str(&body);
    // Plain HTTP to the TLS port is not served.
    let plain = std::process::Command::new("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg(format!("http://127.0.0.1:{port}/stats"))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
    let export = common::run(
        dir.path(),
        &[
            "export",
            "config",
            "-c",
            dir.path().join("skidder.yml").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(export.code(), Some(0), "{}", export.stderr);
    let http::Running { child, lines, .. } = run;
    drop(child);
    let stderr = lines.rest();
    assert!(
        stderr.contains("DEBUG"),
        "logging.level: debug was not applied"
    );
    let log = format!("{replies}\n{}\n{}\n{stderr}", export.stdout, export.stderr);
    for canary in [token, intake_token] {
        assert!(
            !log.contains(canary) && !log.contains(&canary[7..]),
            "a secret was shown"
        );
    }
}
