//! The Elasticsearch output against a real OpenSearch 2.19 node (tests/peers/opensearch):
//! exact counts, deterministic ids surviving a resend, a mapping conflict landing in the
//! dead-letter index, data streams with `op_type: create`.
//!
//! The `pipeline_*` tests run the real binary (inputs → queue → this output) against the
//! node: exact counts without duplicates, dead-lettering visible in the run's totals, and
//! retrying without loss while the cluster is unreachable.
//!
//! The `item_*` and `pipeline_*_4xx`/`429` tests put the bulk semantics to the real node:
//! per-item 403 (write block) and 400 (closed index) are non-indexable, per-item 429
//! (read-only-allow-delete block) and 503 (inactive primary) are retried. The 413 split and
//! whole-request 429/403 need node-wide settings: `elasticsearch_opensearch_limits.rs`.
//!
//! The node is started once per test binary by spawning its Java main directly with a piped
//! stdin: it stops when that pipe closes, i.e. when this process exits, however it exits.
//! Without `java` or `mvn` the tests fail, unless `SKIDDER_SKIP_OPENSEARCH=1` skips them.

mod common;
#[path = "common/opensearch.rs"]
mod opensearch;

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use skidder::config::{
    BackoffConfig, Duration as CfgDuration, ElasticsearchOutputConfig, NonIndexablePolicy,
};
use skidder::outputs::elasticsearch::bulk::content_id;
use skidder::outputs::elasticsearch::settings::DocumentId;
use skidder::outputs::elasticsearch::{ElasticsearchSettings, Sender};

use opensearch::{peer, Peer};

/// Bound on one test's requests.
const STEP: Duration = Duration::from_secs(60);

/// A small admin client for setup and checks (not the code under test).
struct Admin {
    url: String,
    http: reqwest::Client,
}

impl Admin {
    fn new(peer: &Peer) -> Self {
        Self {
            url: peer.url.clone(),
            http: reqwest::Client::builder().timeout(STEP).build().unwrap(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}/{path}", self.url));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn put(&self, path: &str, body: Value) {
        let (status, reply) = self.call(reqwest::Method::PUT, path, Some(body)).await;
        assert!((200..300).contains(&status), "PUT {path}: {status} {reply}");
    }

    /// Refreshes `index` and returns its document count.
    async fn count(&self, index: &str) -> u64 {
        let (status, reply) = self
            .call(reqwest::Method::POST, &format!("{index}/_refresh"), None)
            .await;
        assert_eq!(status, 200, "refresh {index}: {reply}");
        let (status, reply) = self
            .call(reqwest::Method::GET, &format!("{index}/_count"), None)
            .await;
        assert_eq!(status, 200, "count {index}: {reply}");
        reply["count"].as_u64().unwrap()
    }

    async fn search(&self, index: &str) -> Vec<Value> {
        let (status, reply) = self
            .call(
                reqwest::Method::POST,
                &format!("{index}/_search"),
                Some(json!({"size": 100, "sort": [{"_doc": "asc"}]})),
            )
            .await;
        assert_eq!(status, 200, "search {index}: {reply}");
        reply["hits"]["hits"].as_array().unwrap().clone()
    }
}

fn config(peer: &Peer, index: &str) -> ElasticsearchOutputConfig {
    ElasticsearchOutputConfig {
        hosts: vec![peer.url.clone()],
        index: Some(index.to_string()),
        backoff: BackoffConfig {
            init: CfgDuration::from_millis(50),
            max: CfgDuration::from_millis(500),
        },
        ..Default::default()
    }
}

fn event(i: usize, extra: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"@timestamp":"2026-07-0{}T10:00:00.000Z","message":"line {i}","n":{i}{extra}}}"#,
        1 + i % 2
    ))
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP:?}"))
}

#[tokio::test]
async fn exact_counts_and_no_duplicates_after_a_resend() {
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    let settings =
        ElasticsearchSettings::from_config(&config(peer, "skidder-t1-%{+yyyy.MM.dd}")).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let batch: Vec<Bytes> = (0..50)
        .map(|i| {
            event(
                i,
                &format!(r#","@metadata":{{"_id":"t1-{i}","beat":"skidder"}}"#),
            )
        })
        .collect();
    let out = bounded("first send", sender.send_batch(&batch)).await;
    assert_eq!((out.indexed, out.acked()), (50, 50), "{out:?}");
    // Events alternate between 1 and 2 July: two daily indices.
    assert_eq!(admin.count("skidder-t1-2026.07.01").await, 25);
    assert_eq!(admin.count("skidder-t1-2026.07.02").await, 25);

    // The same batch again (a replay after a failover): an id skidder sends goes with
    // `create` (op_type unset), so each item is a 409, already there, not duplicated.
    let out = bounded("resend", sender.send_batch(&batch)).await;
    assert_eq!((out.duplicates, out.acked()), (50, 50), "{out:?}");
    assert_eq!(admin.count("skidder-t1-*").await, 50);
    let hits = admin.search("skidder-t1-2026.07.01").await;
    let hit = hits
        .iter()
        .find(|h| h["_id"] == "t1-0")
        .expect("t1-0 indexed under its id");
    assert_eq!(
        hit["_source"],
        json!({"@timestamp": "2026-07-01T10:00:00.000Z", "message": "line 0", "n": 0})
    );
    assert!(
        hit["_source"].get("@metadata").is_none(),
        "@metadata is not indexed"
    );

    // Hash ids: events without @metadata._id are also idempotent.
    let mut settings =
        ElasticsearchSettings::from_config(&config(peer, "skidder-t1-hash")).unwrap();
    settings.document_id = DocumentId::Hash;
    let mut sender = Sender::new(&settings, 0).unwrap();
    let batch: Vec<Bytes> = (0..20).map(|i| event(i, "")).collect();
    for round in 0..2 {
        let out = bounded("hash send", sender.send_batch(&batch)).await;
        assert_eq!(out.acked(), 20, "round {round}: {out:?}");
        // Round 1 finds every document there (409 on create).
        assert_eq!(out.duplicates, if round == 0 { 0 } else { 20 }, "{out:?}");
    }
    assert_eq!(admin.count("skidder-t1-hash").await, 20);
    let hits = admin.search("skidder-t1-hash").await;
    let want = content_id(&batch[0]).unwrap();
    assert!(
        hits.iter().any(|h| h["_id"] == want.as_str()),
        "id {want} in {hits:?}"
    );
}

#[tokio::test]
async fn mapping_conflict_lands_in_the_dead_letter_index() {
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    admin
        .put(
            "skidder-t2",
            json!({"mappings": {"properties": {"n": {"type": "long"}}}}),
        )
        .await;
    let mut cfg = config(peer, "skidder-t2");
    cfg.non_indexable_policy = Some(NonIndexablePolicy::DeadLetterIndex {
        index: "skidder-t2-dlq".into(),
    });
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let bad = Bytes::from_static(
        br#"{"@timestamp":"2026-07-01T10:00:00Z","message":"bad","n":"not a number"}"#,
    );
    let batch = vec![event(1, ""), bad, event(2, "")];
    let out = bounded("send", sender.send_batch(&batch)).await;
    assert_eq!(
        (out.indexed, out.dead_lettered, out.dropped.len()),
        (2, 1, 0),
        "{out:?}"
    );
    assert_eq!(admin.count("skidder-t2").await, 2);
    assert_eq!(admin.count("skidder-t2-dlq").await, 1);
    let dead = &admin.search("skidder-t2-dlq").await[0]["_source"];
    assert_eq!(dead["@timestamp"], "2026-07-01T10:00:00Z");
    assert_eq!(
        dead["message"],
        r#"{"@timestamp":"2026-07-01T10:00:00Z","message":"bad","n":"not a number"}"#
    );
    // _source keeps the dotted keys as sent (only the mapping expands them).
    assert_eq!(dead["error.type"], 400);
    let reason = dead["error.message"].as_str().unwrap();
    assert!(reason.starts_with("mapper_parsing_exception"), "{reason}");

    // With drop, the same event is counted and dropped with the cluster's reason.
    let settings = ElasticsearchSettings::from_config(&config(peer, "skidder-t2")).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let out = bounded("send", sender.send_batch(&batch[1..2])).await;
    assert_eq!(out.dropped.len(), 1, "{out:?}");
    assert_eq!(out.dropped[0].status, 400);
    assert!(out.dropped[0].reason.contains("mapper_parsing_exception"));
    assert_eq!(admin.count("skidder-t2").await, 2);
}

#[tokio::test]
async fn data_stream_with_create() {
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    admin
        .put(
            "_index_template/skidder-t3",
            json!({"index_patterns": ["logs-skidder-t3*"], "data_stream": {}, "priority": 200}),
        )
        .await;
    let mut cfg = config(peer, "logs-skidder-t3");
    cfg.op_type = Some("create".into());
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let batch: Vec<Bytes> = (0..10)
        .map(|i| event(i, &format!(r#","@metadata":{{"_id":"t3-{i}"}}"#)))
        .collect();
    let out = bounded("send", sender.send_batch(&batch)).await;
    assert_eq!(out.indexed, 10, "{out:?}");
    // Resent: every item is a 409 on create, which counts as already indexed.
    let out = bounded("resend", sender.send_batch(&batch)).await;
    assert_eq!(
        (out.indexed, out.duplicates, out.acked()),
        (0, 10, 10),
        "{out:?}"
    );
    assert_eq!(admin.count("logs-skidder-t3").await, 10);
    let (status, reply) = admin
        .call(reqwest::Method::GET, "_data_stream/logs-skidder-t3", None)
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["data_streams"][0]["name"], "logs-skidder-t3");
}

// ---- The real binary: inputs → queue → output.elasticsearch → the node ----

/// Bound on one skidder run.
const RUN: Duration = Duration::from_secs(120);

fn skidder_config(dir: &std::path::Path, inputs: &str, output: &str) -> String {
    common::config(
        dir,
        &format!("skidder:\n  inputs:\n{inputs}output.elasticsearch:\n{output}"),
    )
    .to_str()
    .unwrap()
    .to_string()
}

impl Admin {
    /// Aggregations over `index` (after a refresh).
    async fn aggs(&self, index: &str, aggs: Value) -> Value {
        self.count(index).await;
        let (status, reply) = self
            .call(
                reqwest::Method::POST,
                &format!("{index}/_search"),
                Some(json!({"size": 0, "aggs": aggs})),
            )
            .await;
        assert_eq!(status, 200, "aggs {index}: {reply}");
        reply["aggregations"].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_generator_delivers_exactly_n_without_duplicates() {
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let cfg = skidder_config(
        dir.path(),
        &format!("    - type: generator\n      count: {N}\n      threads: 2\n"),
        &format!(
            "  hosts: [\"{}\"]\n  index: skidder-p1\n  bulk_max_size: 500\n  worker: 2\n",
            peer.url
        ),
    );
    let dir_path = dir.path().to_path_buf();
    let r = tokio::task::spawn_blocking(move || common::run(&dir_path, &["-c", &cfg, "-e"], b""))
        .await
        .unwrap();
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let t = r.totals();
    assert_eq!(
        (
            t["published"].as_str(),
            t["acked"].as_str(),
            t["dropped"].as_str()
        ),
        (N.to_string().as_str(), N.to_string().as_str(), "0"),
        "{}",
        r.stderr
    );
    assert_eq!(admin.count("skidder-p1").await, N);
    let aggs = admin
        .aggs(
            "skidder-p1",
            json!({
                "min": {"min": {"field": "seq"}},
                "max": {"max": {"field": "seq"}},
                "dups": {"terms": {"field": "seq", "min_doc_count": 2, "size": 10}},
            }),
        )
        .await;
    // N documents, seq within 1..=N and none twice: exactly the seqs 1..=N.
    assert_eq!(aggs["min"]["value"], json!(1.0), "{aggs}");
    assert_eq!(aggs["max"]["value"], json!(N as f64), "{aggs}");
    assert_eq!(
        aggs["dups"]["buckets"],
        json!([]),
        "duplicated seqs: {aggs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_mapping_conflict_goes_to_the_dead_letter_index() {
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    admin
        .put(
            "skidder-p2",
            json!({"mappings": {"properties": {"n": {"type": "long"}}}}),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = skidder_config(
        dir.path(),
        "    - type: stdin\n      json: true\n",
        &format!(
            "  hosts: [\"{}\"]\n  index: skidder-p2\n  non_indexable_policy:\n    dead_letter_index:\n      index: skidder-p2-dlq\n",
            peer.url
        ),
    );
    let input =
        b"{\"n\":1,\"m\":\"a\"}\n{\"n\":\"not a number\",\"m\":\"b\"}\n{\"n\":2,\"m\":\"c\"}\n";
    let dir_path = dir.path().to_path_buf();
    let r = tokio::task::spawn_blocking(move || common::run(&dir_path, &["-c", &cfg, "-e"], input))
        .await
        .unwrap();
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let t = r.totals();
    assert_eq!(
        (
            t["published"].as_str(),
            t["acked"].as_str(),
            t["dropped"].as_str()
        ),
        ("3", "3", "0"),
        "dead-lettered events count as delivered: {}",
        r.stderr
    );
    assert!(
        r.stderr.lines().any(|l| l.contains("WARN")
            && l.contains("dead-letter index")
            && l.contains("skidder-p2-dlq")),
        "the run says where the event went:\n{}",
        r.stderr
    );
    assert_eq!(admin.count("skidder-p2").await, 2);
    assert_eq!(admin.count("skidder-p2-dlq").await, 1);
    let dead = &admin.search("skidder-p2-dlq").await[0]["_source"];
    let original: Value = serde_json::from_str(dead["message"].as_str().unwrap()).unwrap();
    assert_eq!(original["n"], "not a number", "{dead}");
    assert_eq!(original["m"], "b", "{dead}");
    assert_eq!(dead["error.type"], 400, "{dead}");
    let reason = dead["error.message"].as_str().unwrap();
    assert!(reason.starts_with("mapper_parsing_exception"), "{reason}");
}

/// Forwards every connection accepted on `listener` to `target`.
async fn forward(listener: tokio::net::TcpListener, target: std::net::SocketAddr) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_waits_out_an_unreachable_cluster_without_loss() {
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    const N: u64 = 3_000;
    // The cluster's address as skidder sees it: nothing listens there until the proxy
    // to the node is started.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = skidder_config(
        dir.path(),
        &format!("    - type: generator\n      count: {N}\n"),
        &format!(
            "  hosts: [\"http://127.0.0.1:{port}\"]\n  index: skidder-p3\n  max_retries: -1\n  backoff.init: 50ms\n  backoff.max: 200ms\n"
        ),
    );
    let mut child = common::bin()
        .args(["-c", &cfg, "-e"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (mut child, watch) = tokio::task::spawn_blocking(move || {
        let mut watch = common::LineWatch::new(stderr);
        // Several failed attempts: it keeps retrying instead of exiting or dropping.
        for _ in 0..4 {
            watch.wait_for("bulk request failed", STEP);
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "skidder exited while the cluster was unreachable:\n{}",
            watch.seen.join("\n")
        );
        (child, watch)
    })
    .await
    .unwrap();
    assert!(
        !watch.seen.iter().any(|l| l.contains("dropped")),
        "nothing may be dropped with max_retries -1:\n{}",
        watch.seen.join("\n")
    );

    // The cluster becomes reachable.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("port {port} was taken meanwhile: {e}"));
    let target: std::net::SocketAddr = peer.url.trim_start_matches("http://").parse().unwrap();
    let proxy = tokio::spawn(forward(listener, target));

    let (status, rest) = tokio::task::spawn_blocking(move || {
        let status = common::wait_exit(&mut child, RUN);
        (status, watch.rest())
    })
    .await
    .unwrap();
    proxy.abort();
    assert_eq!(status.code(), Some(0), "{rest}");
    let t = common::totals(&rest);
    assert_eq!(
        (
            t["acked"].as_str(),
            t["dropped"].as_str(),
            t["unacked"].as_str()
        ),
        (N.to_string().as_str(), "0", "0"),
        "{rest}"
    );
    assert!(t["retried"].parse::<u64>().unwrap() > 0, "{rest}");
    assert_eq!(admin.count("skidder-p3").await, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_hash_ids_collapse_identical_documents() {
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    let dir = tempfile::tempdir().unwrap();
    // A replayed line is sent byte for byte (the stdin input would stamp each line with its
    // own @timestamp), so the fourth event, the first line again, is the identical document.
    let line = |m: &str| format!("{{\"@timestamp\":\"2026-07-01T10:00:00.000Z\",\"m\":\"{m}\"}}\n");
    let corpus = dir.path().join("corpus.ndjson");
    std::fs::write(&corpus, [line("a"), line("b"), line("c")].concat()).unwrap();
    let cfg = skidder_config(
        dir.path(),
        &format!(
            "    - type: generator\n      count: 4\n      replay: {}\n",
            corpus.display()
        ),
        &format!(
            "  hosts: [\"{}\"]\n  index: skidder-p4\n  document_id: hash\n",
            peer.url
        ),
    );
    let dir_path = dir.path().to_path_buf();
    let r = tokio::task::spawn_blocking(move || common::run(&dir_path, &["-c", &cfg, "-e"], b""))
        .await
        .unwrap();
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(r.totals()["acked"], "4", "{}", r.stderr);
    assert_eq!(
        admin.count("skidder-p4").await,
        3,
        "the repeated document is one"
    );
}

// ---- Bulk item refusals as the real node writes them ----
//
// Measured on this node (OpenSearch 2.19, bulk answered 200 with per-item errors):
// - `index.blocks.write: true`: 403 `cluster_block_exception` "index [..] blocked by:
//   [FORBIDDEN/8/index write (api)];" for `index` and `create` alike;
// - a closed index: 400 `index_closed_exception` "closed";
// - `index.blocks.read_only_allow_delete: true` (what the disk flood-stage watermark sets):
//   429 `cluster_block_exception` "[TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage
//   watermark ...]";
// - a primary that cannot be allocated, with the bulk `timeout` parameter: 503
//   `unavailable_shards_exception` "primary shard is not active Timeout: [..]".
// libbeat judges these items as skidder does (`bulkCollectPublishFails`): < 500 and not 429
// is non-indexable (dropped or dead-lettered), 429 and 5xx are retried.

impl Admin {
    async fn post(&self, path: &str, body: Option<Value>) {
        let (status, reply) = self.call(reqwest::Method::POST, path, body).await;
        assert!(
            (200..300).contains(&status),
            "POST {path}: {status} {reply}"
        );
    }

    /// Waits (bounded by the node) until `index` is at least yellow: its primary is active.
    async fn wait_active(&self, index: &str) {
        let (status, reply) = self
            .call(
                reqwest::Method::GET,
                &format!("_cluster/health/{index}?wait_for_status=yellow&timeout=50s"),
                None,
            )
            .await;
        assert_eq!(status, 200, "health of {index}: {reply}");
        assert_eq!(
            reply["timed_out"], false,
            "{index} did not become active: {reply}"
        );
    }
}

/// An event for the index format `...-%{[t]}`: `t` names the target index.
fn targeted(i: usize, t: &str) -> Bytes {
    Bytes::from(format!(r#"{{"t":"{t}","n":{i}}}"#))
}

/// A write-blocked index answers each item 403, a closed one 400: both are non-indexable.
/// With the default policy they are dropped, counted with the cluster's status and reason,
/// and nothing is retried; with `dead_letter_index` they land there, one document each.
#[tokio::test]
async fn item_403_write_block_and_400_closed_index_are_non_indexable() {
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    admin.put("skidder-b1-blocked", json!({})).await;
    admin
        .put(
            "skidder-b1-blocked/_settings",
            json!({"index.blocks.write": true}),
        )
        .await;
    admin.put("skidder-b1-closed", json!({})).await;
    admin.post("skidder-b1-closed/_close", None).await;

    let settings = ElasticsearchSettings::from_config(&config(peer, "skidder-b1-%{[t]}")).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let targets = ["open", "blocked", "closed", "open", "blocked", "closed"];
    let batch: Vec<Bytes> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| targeted(i, t))
        .collect();
    let out = bounded("send", sender.send_batch(&batch)).await;
    assert_eq!(
        (out.indexed, out.dead_lettered, out.retry_later.len()),
        (2, 0, 0),
        "{out:?}"
    );
    assert!(out.last_error.is_none(), "{out:?}");
    let dropped: Vec<(usize, u16)> = out.dropped.iter().map(|d| (d.event, d.status)).collect();
    assert_eq!(dropped, [(1, 403), (2, 400), (4, 403), (5, 400)], "{out:?}");
    for d in &out.dropped {
        let want = if d.status == 403 {
            "cluster_block_exception: index [skidder-b1-blocked] blocked by: [FORBIDDEN/8/index write (api)];"
        } else {
            "index_closed_exception: closed"
        };
        assert_eq!(d.reason, want, "the cluster's reason is kept: {out:?}");
    }
    assert_eq!(admin.count("skidder-b1-open").await, 2);
    assert_eq!(admin.count("skidder-b1-blocked").await, 0);

    // The same refusals under dead_letter_index: one dead-letter document per event, with
    // the status each got.
    let mut cfg = config(peer, "skidder-b1-%{[t]}");
    cfg.non_indexable_policy = Some(NonIndexablePolicy::DeadLetterIndex {
        index: "skidder-b1-dlq".into(),
    });
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let refused: Vec<Bytes> = [1, 2, 4, 5].iter().map(|&i| batch[i].clone()).collect();
    let out = bounded("send", sender.send_batch(&refused)).await;
    assert_eq!(
        (
            out.indexed,
            out.dead_lettered,
            out.dropped.len(),
            out.retry_later.len()
        ),
        (0, 4, 0, 0),
        "{out:?}"
    );
    assert_eq!(admin.count("skidder-b1-dlq").await, 4);
    let mut statuses: Vec<(u64, String)> = admin
        .search("skidder-b1-dlq")
        .await
        .iter()
        .map(|h| {
            let original: Value =
                serde_json::from_str(h["_source"]["message"].as_str().unwrap()).unwrap();
            (
                original["n"].as_u64().unwrap(),
                format!("{} {}", h["_source"]["error.type"], original["t"]),
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            (1, r#"403 "blocked""#.to_string()),
            (2, r#"400 "closed""#.to_string()),
            (4, r#"403 "blocked""#.to_string()),
            (5, r#"400 "closed""#.to_string()),
        ]
    );
    // Nothing reached the refusing indices: reopened, the closed one is empty too.
    assert_eq!(admin.count("skidder-b1-blocked").await, 0);
    admin.post("skidder-b1-closed/_open", None).await;
    admin.wait_active("skidder-b1-closed").await;
    assert_eq!(admin.count("skidder-b1-closed").await, 0);
}

/// Items answered 429 (a read-only-allow-delete block, as the flood-stage watermark sets)
/// and 503 (a primary that is not active) are neither indexed nor dropped: they come back
/// for a retry, and once the cluster allows it the retry indexes each exactly once.
#[tokio::test]
async fn item_429_and_503_are_kept_for_a_retry_and_then_indexed_once() {
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    // Every index exists with its mapping before the first write: with the short bulk
    // `timeout` below, creating an index or a dynamic mapping update inside the bulk
    // request may not finish in time on a busy machine, and is answered 503 as well.
    let mappings = json!({"properties": {"t": {"type": "keyword"}, "n": {"type": "long"}}});
    admin
        .put("skidder-b2-open", json!({"mappings": mappings}))
        .await;
    admin.wait_active("skidder-b2-open").await;
    admin
        .put(
            "skidder-b2-ro",
            json!({"mappings": mappings,
                   "settings": {"index.blocks.read_only_allow_delete": true}}),
        )
        .await;
    // A primary that can be allocated to no node: the index exists but cannot take writes.
    admin
        .put(
            "skidder-b2-red?wait_for_active_shards=0",
            json!({"mappings": mappings,
                   "settings": {"number_of_replicas": 0,
                                "index.routing.allocation.require._name": "no-such-node"}}),
        )
        .await;

    let mut cfg = config(peer, "skidder-b2-%{[t]}");
    // One round per call, as the pipeline adapter runs its sender; and a short wait for
    // the inactive primary (default 1m).
    cfg.max_retries = 0;
    cfg.parameters
        .insert("timeout".to_string(), "500ms".to_string());
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let targets = ["open", "ro", "red", "open", "ro", "red"];
    // No document ids: a second indexing of any event would show as an extra document.
    let batch: Vec<Bytes> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| targeted(i, t))
        .collect();
    let out = bounded("send", sender.send_batch(&batch)).await;
    assert_eq!(
        (out.indexed, out.dead_lettered, out.dropped.len()),
        (2, 0, 0),
        "{out:?}"
    );
    assert_eq!(out.retry_later, [1, 2, 4, 5], "{out:?}");
    assert!(
        out.last_error.is_none(),
        "item refusals, not a failed request: {out:?}"
    );
    assert_eq!(admin.count("skidder-b2-ro").await, 0);

    // The cluster recovers: the block is lifted and the primary may be allocated.
    admin
        .put(
            "skidder-b2-ro/_settings",
            json!({"index.blocks.read_only_allow_delete": null}),
        )
        .await;
    admin
        .put(
            "skidder-b2-red/_settings",
            json!({"index.routing.allocation.require._name": null}),
        )
        .await;
    admin.wait_active("skidder-b2-red").await;
    let again: Vec<Bytes> = out.retry_later.iter().map(|&i| batch[i].clone()).collect();
    let out = bounded("retry", sender.send_batch(&again)).await;
    assert_eq!(
        (out.indexed, out.dropped.len(), out.retry_later.len()),
        (4, 0, 0),
        "{out:?}"
    );
    for index in ["skidder-b2-open", "skidder-b2-ro", "skidder-b2-red"] {
        assert_eq!(admin.count(index).await, 2, "{index}");
    }
}

/// The real binary with the default `max_retries: -1`: items the node answers 429 are
/// retried (a WARN line says so) until the block is lifted, then all are delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_retries_429_items_until_the_block_is_lifted() {
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    const N: u64 = 40;
    admin.put("skidder-b3", json!({})).await;
    admin
        .put(
            "skidder-b3/_settings",
            json!({"index.blocks.read_only_allow_delete": true}),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = skidder_config(
        dir.path(),
        &format!("    - type: generator\n      count: {N}\n"),
        &format!(
            "  hosts: [\"{}\"]\n  index: skidder-b3\n  backoff.init: 50ms\n  backoff.max: 200ms\n",
            peer.url
        ),
    );
    let mut child = common::bin()
        .args(["-c", &cfg, "-e"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (mut child, watch) = tokio::task::spawn_blocking(move || {
        let mut watch = common::LineWatch::new(stderr);
        // Two rounds refused: it keeps the events and tries again.
        for _ in 0..2 {
            watch.wait_for("Elasticsearch rejected items for now", STEP);
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "skidder exited while the index was blocked:\n{}",
            watch.seen.join("\n")
        );
        (child, watch)
    })
    .await
    .unwrap();
    assert_eq!(admin.count("skidder-b3").await, 0);
    admin
        .put(
            "skidder-b3/_settings",
            json!({"index.blocks.read_only_allow_delete": null}),
        )
        .await;
    let (status, rest) = tokio::task::spawn_blocking(move || {
        let status = common::wait_exit(&mut child, RUN);
        (status, watch.rest())
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    let t = common::totals(&rest);
    assert_eq!(
        (
            t["acked"].as_str(),
            t["dropped"].as_str(),
            t["unacked"].as_str()
        ),
        (N.to_string().as_str(), "0", "0"),
        "{rest}"
    );
    assert!(t["retried"].parse::<u64>().unwrap() > 0, "{rest}");
    // Generator events carry no id: a double delivery would show here.
    assert_eq!(admin.count("skidder-b3").await, N);
}

/// The real binary with the default policy: events a write-blocked index refuses (403)
/// are dropped loudly: an ERROR line with the cluster's status and reason, the totals, and
/// exit code 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_drops_403_items_with_an_error_line_and_exit_code_4() {
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    admin.put("skidder-b4-blocked", json!({})).await;
    admin
        .put(
            "skidder-b4-blocked/_settings",
            json!({"index.blocks.write": true}),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = skidder_config(
        dir.path(),
        "    - type: stdin\n      json: true\n",
        &format!(
            "  hosts: [\"{}\"]\n  index: \"skidder-b4-%{{[t]}}\"\n",
            peer.url
        ),
    );
    let input = b"{\"t\":\"open\",\"n\":1}\n{\"t\":\"blocked\",\"n\":2}\n{\"t\":\"blocked\",\"n\":3}\n{\"t\":\"open\",\"n\":4}\n";
    let dir_path = dir.path().to_path_buf();
    let r = tokio::task::spawn_blocking(move || common::run(&dir_path, &["-c", &cfg, "-e"], input))
        .await
        .unwrap();
    assert_eq!(r.code(), Some(4), "{}", r.stderr);
    let t = r.totals();
    assert_eq!(
        (
            t["published"].as_str(),
            t["acked"].as_str(),
            t["dropped"].as_str()
        ),
        ("4", "2", "2"),
        "{}",
        r.stderr
    );
    let error = r
        .stderr
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("non-indexable"))
        .unwrap_or_else(|| panic!("no ERROR line for the drop:\n{}", r.stderr));
    assert!(
        error.contains("HTTP 403")
            && error.contains("cluster_block_exception")
            && error.contains("FORBIDDEN/8/index write (api)"),
        "the ERROR line gives the cluster's status and reason: {error}"
    );
    assert_eq!(admin.count("skidder-b4-open").await, 2);
    assert_eq!(admin.count("skidder-b4-blocked").await, 0);
}
