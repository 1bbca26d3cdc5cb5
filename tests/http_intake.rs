//! The `http_endpoint` input, driven over loopback by a real HTTP client (reqwest, keep-alive)
//! and curl, shipping to go-lumber's server: body forms, every auth mode, limits, backpressure,
//! slow clients, exposure rules. API keys are checked against a stand-in Elasticsearch
//! security API (`common/es_security.rs`; the OpenSearch node has no security plugin).

mod common;
#[path = "common/es_security.rs"]
mod es_security;
#[path = "common/es_server.rs"]
mod es_server;
#[path = "common/golumber.rs"]
mod golumber;
#[path = "common/http.rs"]
mod http;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use base64::Engine as _;
use http::{client, eventually, start, stat, JsonValue as _};

const LIMIT: Duration = Duration::from_secs(30);

fn ndjson(from: u64, n: u64) -> String {
    (from..from + n)
        .map(|i| format!("{{\"seq\":{i},\"msg\":\"event {i}\"}}\n"))
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An intake whose events go to go-lumber's server, acknowledged end to end, plus the
/// monitoring endpoint for the counters.
fn intake_to_golumber(
    dir: &std::path::Path,
    server: &golumber::Server,
    extra: &str,
) -> http::Running {
    let yaml = format!(
        "skidder.inputs:\n  - type: http_endpoint\n    id: web\n    listen_address: 127.0.0.1\n    listen_port: 0\n    prefix: \".\"\n{extra}\
         queue.mem.flush.timeout: 0s\n\
         output.logstash:\n  hosts: [\"{}\"]\n  timeout: 5s\n  backoff.init: 50ms\n  backoff.max: 200ms\n\
         http.enabled: true\nhttp.host: 127.0.0.1\nhttp.port: 0\n",
        server.addr
    );
    start(dir, &yaml, &["web", "http"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_body_form_reaches_golumber_end_to_end_and_the_reply_waits_for_its_ack() {
    let server = golumber::Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let run = intake_to_golumber(dir.path(), &server, "    ack: end_to_end\n");
    let c = client();
    let url = run.url("web");
    let mut sent = 0u64;
    // One object.
    let r = c
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"seq\":1,\"msg\":\"one\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json_value().await,
        serde_json::json!({"message": "success"})
    );
    sent += 1;
    // end_to_end: by the time the reply came, go-lumber had acknowledged the event.
    assert_eq!(
        server.accepted() as u64,
        sent,
        "replied before the output's ACK"
    );
    // An array of objects.
    let array: Vec<serde_json::Value> = (2..=11).map(|i| serde_json::json!({"seq": i})).collect();
    let r = c
        .post(&url)
        .header("content-type", "application/json")
        .body(serde_json::to_string(&array).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sent += 10;
    assert_eq!(server.accepted() as u64, sent);
    // NDJSON batches of 100 on one keep-alive connection, plain and gzip.
    for batch in 0..4u64 {
        let body = ndjson(sent + 1, 100);
        let req = c.post(&url).header("content-type", "application/json");
        let req = if batch % 2 == 0 {
            req.body(body)
        } else {
            req.header("content-encoding", "gzip")
                .body(gzip(body.as_bytes()))
        };
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        sent += 100;
        assert_eq!(server.accepted() as u64, sent);
    }
    // curl, deflate (zlib) body from a file.
    let body = ndjson(sent + 1, 5);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(body.as_bytes()).unwrap();
    let file = dir.path().join("body.z");
    std::fs::write(&file, z.finish().unwrap()).unwrap();
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/json",
            "-H",
            "Content-Encoding: deflate",
            "--data-binary",
        ])
        .arg(format!("@{}", file.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sent += 5;
    assert_eq!(server.accepted() as u64, sent);
    let seqs = server.seqs();
    assert_eq!(golumber::assert_all_delivered(&seqs, sent), 0, "duplicates");
    // The root prefix kept the objects' keys at the top level, stamped.
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&server.out)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["msg"], "one");
    assert!(first["@timestamp"].is_string());
    let mon = run.url("http");
    assert_eq!(
        stat(&c, &mon, "/libbeat/pipeline/events/published").await,
        sent
    );
    // Per-host Logstash counters and the ACK latency histogram in /metrics.
    let text = c
        .get(format!("{mon}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let host = |s: &&prometheus_parse::Sample| s.labels.get("host") == Some(server.addr.as_str());
    let acked = scrape
        .samples
        .iter()
        .filter(host)
        .find(|s| s.metric == "skidder_logstash_events_acked_total")
        .unwrap_or_else(|| panic!("no per-host counter:\n{text}"));
    assert!(
        matches!(acked.value, prometheus_parse::Value::Counter(v) if v == sent as f64),
        "{text}"
    );
    let hist = scrape
        .samples
        .iter()
        .filter(host)
        .find(|s| s.metric == "skidder_logstash_ack_latency_seconds")
        .unwrap_or_else(|| panic!("no latency histogram:\n{text}"));
    match &hist.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let total = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
            assert!(total >= 7.0, "{text}");
        }
        other => panic!("{other:?}"),
    }
    drop(run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_wrong_type_and_malformed_json_are_refused_and_nothing_is_queued() {
    let server = golumber::Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let run = intake_to_golumber(dir.path(), &server, "    max_message_size: 4KiB\n");
    let c = client();
    let url = run.url("web");
    let post =
        |body: Vec<u8>, ctype: &str| c.post(&url).header("content-type", ctype).body(body).send();
    let r = post(ndjson(1, 200).into_bytes(), "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A small gzip body that inflates beyond the limit is refused as well.
    let r = c
        .post(&url)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(ndjson(1, 200).as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = post(b"{\"seq\":1}".to_vec(), "text/plain").await.unwrap();
    assert_eq!(r.status(), 415);
    let r = c
        .post(&url)
        .header("content-type", "application/json")
        .header("content-encoding", "br")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Lines 1 and 2 are fine, line 3 is not: 400 naming line 3, and lines 1-2 not queued.
    let r = post(
        b"{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3,}\n".to_vec(),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.json_value().await["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("line 3"), "{text}");
    let r = post(b"{\"seq\":1}\n[1]\n".to_vec(), "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("line 2"));
    let r = post(b"   ".to_vec(), "application/json").await.unwrap();
    assert_eq!(r.status(), 406);
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = c
        .post(format!("{url}/other"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let mon = run.url("http");
    assert_eq!(
        stat(&c, &mon, "/libbeat/pipeline/events/published").await,
        0
    );
    // And a good one still goes through on the same keep-alive client.
    let r = post(b"{\"seq\":1}".to_vec(), "application/json; charset=utf-8")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.wait_accepted(1, LIMIT);
    assert_eq!(server.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after_and_keeps_what_it_took() {
    // The server never acknowledges: the queue fills and stays full.
    let server = golumber::Server::start(&["--fault", "never-ack"]);
    let dir = tempfile::tempdir().unwrap();
    let run = intake_to_golumber(
        dir.path(),
        &server,
        "    retry_after: 7s\nqueue.mem.events: 20\n",
    );
    let c = client();
    let url = run.url("web");
    let r = c
        .post(&url)
        .header("content-type", "application/json")
        .body(ndjson(1, 20))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "queued");
    let r = c
        .post(&url)
        .header("content-type", "application/json")
        .body(ndjson(21, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    // More events than the whole queue can ever hold: not "later", but "smaller".
    let r = c
        .post(&url)
        .header("content-type", "application/json")
        .body(ndjson(22, 21))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let mon = run.url("http");
    assert_eq!(
        stat(&c, &mon, "/libbeat/pipeline/events/published").await,
        20
    );
    assert_eq!(
        stat(&c, &mon, "/libbeat/pipeline/queue/filled/events").await,
        20
    );
}

/// One skidder with an input per Filebeat/APM auth mode; each accepts its good credential
/// and refuses a bad and a missing one with 401, and a refused request queues nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_mode_accepts_good_and_refuses_bad_and_missing_credentials() {
    let server = golumber::Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let input = |id: &str, extra: &str| {
        format!("  - type: http_endpoint\n    id: {id}\n    listen_address: 127.0.0.1\n    listen_port: 0\n    prefix: \".\"\n{extra}")
    };
    let yaml = format!(
        "skidder.inputs:\n{}{}{}{}queue.mem.flush.timeout: 0s\noutput.logstash.hosts: [\"{}\"]\nhttp.enabled: true\nhttp.host: 127.0.0.1\nhttp.port: 0\n",
        input("basic", "    basic_auth: true\n    username: app\n    password: \"pa:ss\"\n"),
        input("secret", "    secret.header: X-Secret\n    secret.value: s3cret\n"),
        input("hmac", "    hmac.header: X-Hub-Signature-256\n    hmac.key: hkey\n    hmac.type: sha256\n    hmac.prefix: \"sha256=\"\n"),
        input("token", "    auth.secret_token: tok3n\n"),
        server.addr
    );
    let run = start(
        dir.path(),
        &yaml,
        &["basic", "secret", "hmac", "token", "http"],
    );
    let c = client();
    let body = "{\"seq\":1}";
    let sign = |key: &[u8], body: &str| {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        let tag = ring::hmac::sign(&k, body.as_bytes());
        tag.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    type Case = (&'static str, Option<(&'static str, String)>, u16);
    let cases: Vec<Case> = vec![
        (
            "basic",
            Some(("authorization", format!("Basic {}", b64("app:pa:ss")))),
            200,
        ),
        (
            "basic",
            Some(("authorization", format!("Basic {}", b64("app:wrong")))),
            401,
        ),
        ("basic", None, 401),
        ("secret", Some(("x-secret", "s3cret".into())), 200),
        ("secret", Some(("x-secret", "s3cre".into())), 401),
        ("secret", None, 401),
        (
            "hmac",
            Some((
                "x-hub-signature-256",
                format!("sha256={}", sign(b"hkey", body)),
            )),
            200,
        ),
        (
            "hmac",
            Some((
                "x-hub-signature-256",
                format!("sha256={}", sign(b"other", body)),
            )),
            401,
        ),
        ("hmac", None, 401),
        ("token", Some(("authorization", "Bearer tok3n".into())), 200),
        ("token", Some(("authorization", "Bearer tok3m".into())), 401),
        ("token", Some(("authorization", "Digest x".into())), 401),
        ("token", None, 401),
    ];
    let mut good = 0;
    for (input, header, want) in cases {
        let mut req = c
            .post(run.url(input))
            .header("content-type", "application/json")
            .body(body);
        if let Some((name, value)) = &header {
            req = req.header(*name, value.as_str());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(
            status,
            want,
            "{input} with {:?}: {text}",
            header.as_ref().map(|h| h.0)
        );
        if want == 200 {
            good += 1;
        } else {
            assert!(text.contains("message"), "{text}");
        }
    }
    // An unauthenticated request with a wrong method is 401, not 405 (Filebeat's order).
    let r = c.get(run.url("token")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    server.wait_accepted(good, LIMIT);
    let mon = run.url("http");
    assert_eq!(
        stat(&c, &mon, "/libbeat/pipeline/events/published").await,
        good as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_verified_with_has_privileges_cached_and_limited() {
    let security = es_security::Security::new();
    let es = security.start().await;
    let verifications = || es_security::verifications(&es);
    let key = |privilege: &str| {
        let k = security.create_application_key("skidder", &[privilege]);
        (k.id.clone(), k.encoded())
    };
    let (good_id, good) = key("event:write");
    let (_, reader) = key("config:read");
    let (expiring_id, expiring) = key("event:write");
    let server = golumber::Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "skidder.inputs:\n  - type: http_endpoint\n    id: apm\n    listen_address: 127.0.0.1\n    listen_port: 0\n\
         \x20   auth.api_key:\n      enabled: true\n      limit: 6\n      cache.expiry: 500ms\n      elasticsearch.hosts: [\"{}\"]\n\
         queue.mem.flush.timeout: 0s\noutput.logstash.hosts: [\"{}\"]\n",
        es.host(),
        server.addr
    );
    let run = start(dir.path(), &yaml, &["apm"]);
    let c = client();
    let url = run.url("apm");
    let post = |auth: Option<String>| {
        let mut r = c
            .post(&url)
            .header("content-type", "application/json")
            .body("{\"a\":1}");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let mut accepted = 0;
    let r = post(Some(format!("ApiKey {good}"))).await.unwrap();
    assert_eq!(r.status(), 200);
    accepted += 1;
    // The verification carried the client's key, nothing else, and asked for the privilege.
    let v = verifications();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].headers["authorization"], format!("ApiKey {good}"));
    let asked: serde_json::Value = serde_json::from_str(&v[0].body).unwrap();
    assert_eq!(asked["application"][0]["privileges"][0], "event:write");
    // Cached: a second request does not ask again.
    assert_eq!(
        post(Some(format!("ApiKey {good}"))).await.unwrap().status(),
        200
    );
    accepted += 1;
    assert_eq!(verifications().len(), 1);
    // Authenticated, without the privilege: 403 saying which privilege.
    let r = post(Some(format!("ApiKey {reader}"))).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("event:write"));
    // Unknown key, garbage, missing header: 401.
    let unknown = base64::engine::general_purpose::STANDARD.encode("nokey:secret");
    let r = post(Some(format!("ApiKey {unknown}"))).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("unknown API key"));
    assert_eq!(post(Some("ApiKey !!!".into())).await.unwrap().status(), 401);
    let r = post(None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("ApiKey base64"));
    // Expired and invalidated keys are refused once the cache entry expired, saying which.
    assert_eq!(
        post(Some(format!("ApiKey {expiring}")))
            .await
            .unwrap()
            .status(),
        200
    );
    accepted += 1;
    security.expire(&expiring_id);
    security.invalidate(&good_id);
    for (key, why) in [
        (&expiring, "API key expired"),
        (&good, "API key invalidated"),
    ] {
        // Until the cached verdict expires (cache.expiry, 500ms) the key still works: the
        // documented lag. Those requests are accepted and counted.
        let lag = std::sync::atomic::AtomicUsize::new(0);
        let text = eventually(why, Duration::from_secs(10), || {
            let r = post(Some(format!("ApiKey {key}")));
            let lag = &lag;
            async move {
                let r = r.await.unwrap();
                if r.status() == 200 {
                    lag.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return None;
                }
                assert_eq!(r.status(), 401);
                Some(r.text().await.unwrap())
            }
        })
        .await;
        accepted += lag.into_inner();
        assert!(text.contains(why), "{text}");
    }
    // The limit: 6 verifications per minute are used up; a new key gets 503 + Retry-After,
    // not a refusal.
    let (_, fresh) = key("event:write");
    let before = verifications().len();
    let mut last = 0;
    for _ in 0..3 {
        let r = post(Some(format!("ApiKey {fresh}"))).await.unwrap();
        last = r.status().as_u16();
        if last == 503 {
            assert!(r.headers().contains_key("retry-after"));
            assert!(r.text().await.unwrap().contains("auth.api_key.limit"));
            break;
        }
    }
    assert_eq!(
        last, 503,
        "the limit of 6 verifications per minute was not enforced"
    );
    assert!(verifications().len() <= 6, "{before}");
    // Nothing of the refused requests was queued.
    server.wait_accepted(accepted, LIMIT);
    let lines = std::fs::read_to_string(&server.out).unwrap();
    assert_eq!(server.accepted(), accepted, "{lines}");
    // No key material in the log.
    let log = run.lines.seen.join("\n");
    for k in [&good, &reader, &expiring, &fresh] {
        assert!(!log.contains(k.as_str()), "a key reached the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_clients_are_dropped_after_read_timeout_while_others_are_served() {
    let server = golumber::Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let run = intake_to_golumber(dir.path(), &server, "    read_timeout: 1s\n");
    let addr = run.addr("web").to_string();
    // Head never finished.
    let mut head = std::net::TcpStream::connect(&addr).unwrap();
    head.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: app")
        .unwrap();
    // Head complete, body never finished.
    let mut body = std::net::TcpStream::connect(&addr).unwrap();
    body.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"seq\":").unwrap();
    // Meanwhile others are served.
    let c = client();
    let started = std::time::Instant::now();
    for i in 1..=5u64 {
        let r = c
            .post(run.url("web"))
            .header("content-type", "application/json")
            .body(ndjson(i, 1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // Both slow connections end within a bound after read_timeout.
    for (name, mut s) in [("head", head), ("body", body)] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let r = s.read_to_end(&mut got);
        assert!(
            r.is_ok(),
            "{name}: the connection was not closed within 10s: {r:?}"
        );
        let text = String::from_utf8_lossy(&got);
        if name == "body" {
            assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        }
    }
    server.wait_accepted(5, LIMIT);
    assert_eq!(server.accepted(), 5);
}

#[test]
fn an_exposed_address_without_tls_and_auth_refuses_to_start_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let base = "skidder.inputs:\n  - type: http_endpoint\n    listen_address: 0.0.0.0\n    listen_port: 0\noutput.discard: {}\n";
    let cfg = common::config(dir.path(), base);
    let run = common::run_config(dir.path(), &cfg);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("no TLS and no authentication")
            && run.stderr.contains("allow_insecure"),
        "{}",
        run.stderr
    );
    let cfg = common::config(dir.path(), "skidder.inputs:\n  - type: http_endpoint\n    listen_address: 127.0.0.1\n    listen_port: 0\noutput.discard: {}\nhttp.enabled: true\nhttp.host: 0.0.0.0\nhttp.port: 0\n");
    let run = common::run_config(dir.path(), &cfg);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("http.allow_insecure"), "{}", run.stderr);
    // Allowed: it starts, and says so at WARN.
    let allowed = base.replace(
        "listen_port: 0\n",
        "listen_port: 0\n    allow_insecure: true\n",
    );
    let running = start(dir.path(), &allowed, &["http_endpoint-0"]);
    assert!(
        running
            .lines
            .seen
            .iter()
            .any(|l| l.contains("WARN") && l.contains("reachable from other machines")),
        "{:?}",
        running.lines.seen
    );
}
