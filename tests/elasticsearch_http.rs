//! The Elasticsearch output's HTTP layer and batch logic against a local hyper server that
//! records each request and answers from a script: headers, auth, gzip, path and
//! parameters, per-item retries, dead-lettering, 413 splitting, host failover, 401, TLS.

mod common;
mod credentials_pki;
#[path = "common/es_server.rs"]
mod es_server;

use std::sync::Arc;

use bytes::Bytes;
use skidder::config::{
    BackoffConfig, Duration as CfgDuration, ElasticsearchOutputConfig, NonIndexablePolicy,
};
use skidder::credentials::{Secret, TlsSettings, TlsSource};
use skidder::outputs::elasticsearch::bulk::BulkBody;
use skidder::outputs::elasticsearch::{
    BulkReply, ElasticsearchSettings, EsClient, EsError, Sender,
};
use skidder::pipeline::{Metrics, Queue, QueueSettings, Snapshot};

use credentials_pki::{client_ssl, server_ssl, Ca, Files, STEP};
use es_server::{Seen, Server};
use tokio::net::TcpListener;

/// A 200 bulk reply giving each item of the request the status from `statuses`.
fn reply(seen: &Seen, statuses: impl Fn(usize, &serde_json::Value) -> u16) -> String {
    let lines = seen.lines();
    let items: Vec<serde_json::Value> = lines
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            let (op, _) = pair[0].as_object().unwrap().iter().next().unwrap();
            let status = statuses(i, &pair[1]);
            let mut item = serde_json::json!({ "status": status });
            if status >= 300 {
                item["error"] = serde_json::json!({
                    "type": if status == 400 { "document_parsing_exception" } else { "es_rejected_execution_exception" },
                    "reason": format!("scripted {status}"),
                });
            }
            serde_json::json!({ op.clone(): item })
        })
        .collect();
    serde_json::json!({ "took": 1, "errors": true, "items": items }).to_string()
}

fn all_ok(seen: &Seen) -> String {
    reply(seen, |_, _| 201)
}

fn config(hosts: Vec<String>) -> ElasticsearchOutputConfig {
    ElasticsearchOutputConfig {
        hosts,
        backoff: BackoffConfig {
            init: CfgDuration::from_millis(5),
            max: CfgDuration::from_millis(20),
        },
        timeout: CfgDuration::from_secs(10),
        ..Default::default()
    }
}

fn events(n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| {
            Bytes::from(format!(
                r#"{{"@timestamp":"2026-05-06T07:08:09Z","@metadata":{{"_id":"ev-{i}"}},"n":{i}}}"#
            ))
        })
        .collect()
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP:?}"))
}

#[tokio::test]
async fn api_key_headers_gzip_path_and_parameters() {
    let server = Server::start(|_, s| (200, all_ok(s))).await;
    let mut cfg = config(vec![format!("{}/proxy/es/", server.host())]);
    cfg.api_key = Some(Secret::new("myid:mykey"));
    cfg.headers.insert("X-Tenant".into(), "blue".into());
    cfg.parameters.insert("refresh".into(), "wait_for".into());
    cfg.parameters.insert("routing".into(), "a b".into());
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let out = bounded("send_batch", sender.send_batch(&events(3))).await;
    assert_eq!((out.indexed, out.acked()), (3, 3), "{out:?}");

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(
        req.path_and_query,
        "/proxy/es/_bulk?refresh=wait_for&routing=a+b"
    );
    assert_eq!(req.headers["authorization"], "ApiKey bXlpZDpteWtleQ==");
    assert_eq!(req.headers["x-tenant"], "blue");
    assert_eq!(req.headers["content-type"], "application/x-ndjson");
    assert!(req.gzip, "compression_level 1 sends gzip");
    // An id skidder sends goes with `create` (op_type unset): create_doc is enough.
    assert_eq!(
        req.lines()[0],
        serde_json::json!({"create": {"_index": "skidder-2026.05.06", "_id": "ev-0"}})
    );
    assert_eq!(
        req.docs()[2],
        serde_json::json!({"@timestamp": "2026-05-06T07:08:09Z", "n": 2})
    );
}

#[tokio::test]
async fn basic_auth_and_plain_body() {
    let server = Server::start(|_, s| (200, all_ok(s))).await;
    let mut cfg = config(vec![server.host()]);
    cfg.username = Some("elastic".into());
    cfg.password = Some(Secret::new("changeme"));
    cfg.compression_level = 0;
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let out = bounded("send_batch", sender.send_batch(&events(2))).await;
    assert_eq!(out.indexed, 2);
    let req = &server.seen()[0];
    assert_eq!(
        req.headers["authorization"],
        "Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="
    );
    assert!(!req.gzip && !req.headers.contains_key("content-encoding"));
    assert_eq!(req.path_and_query, "/_bulk");
}

#[tokio::test]
async fn credential_refusal_is_loud_and_drops_nothing() {
    let server = Server::start(|_, _| {
        (401, r#"{"error":{"type":"security_exception","reason":"unable to authenticate"},"status":401}"#.into())
    })
    .await;
    let mut cfg = config(vec![server.host()]);
    cfg.api_key = Some(Secret::new("myid:wrongkey"));
    cfg.max_retries = 2;
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();

    // The client alone: a credential error naming the credential, never its value.
    let client = EsClient::new(&settings).unwrap();
    let mut body = BulkBody::new(&settings);
    body.add_event(&events(1)[0]).unwrap();
    let err = bounded("send_bulk", client.send_bulk(0, &body.finish().unwrap()))
        .await
        .unwrap_err();
    assert!(err.is_credential() && !err.is_retryable(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("api_key") && msg.contains("401"), "{msg}");
    assert!(
        !msg.contains("wrongkey") && !msg.contains("bXlpZDp3cm9uZ2tleQ"),
        "{msg}"
    );

    // The sender: every event comes back for later, none dropped, after 1 + 2 tries.
    let mut sender = Sender::new(&settings, 0).unwrap();
    let out = bounded("send_batch", sender.send_batch(&events(4))).await;
    assert_eq!(out.retry_later, vec![0, 1, 2, 3]);
    assert_eq!(out.acked(), 0);
    assert!(out.dropped.is_empty());
    assert!(out.last_error.as_ref().is_some_and(EsError::is_credential));
    assert_eq!(server.seen().len(), 1 + 1 + 2);
}

#[tokio::test]
async fn only_failed_items_are_retried_and_refused_ones_dead_lettered() {
    // First request: item 1 is rejected (429), item 2 refused (400). Later: all accepted.
    let server = Server::start(|n, s| {
        (
            200,
            reply(s, |i, _| match (n, i) {
                (0, 1) => 429,
                (0, 2) => 400,
                _ => 201,
            }),
        )
    })
    .await;
    let mut cfg = config(vec![server.host()]);
    cfg.non_indexable_policy = Some(NonIndexablePolicy::DeadLetterIndex {
        index: "skidder-dlq".into(),
    });
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let out = bounded("send_batch", sender.send_batch(&events(4))).await;
    assert_eq!(
        (
            out.indexed,
            out.dead_lettered,
            out.dropped.len(),
            out.retry_later.len()
        ),
        (3, 1, 0, 0),
        "{out:?}"
    );
    let seen = server.seen();
    assert_eq!(
        seen.len(),
        2,
        "one retry round carries both the retry and the dead letter"
    );
    let retry = &seen[1];
    let lines = retry.lines();
    assert_eq!(lines.len(), 4);
    // Pending order: the 429 item, then the dead letter for the 400 item.
    assert_eq!(lines[0]["create"]["_id"], "ev-1");
    assert_eq!(
        lines[2],
        serde_json::json!({"index": {"_index": "skidder-dlq"}})
    );
    assert_eq!(lines[3]["error.type"], 400);
    assert_eq!(
        lines[3]["error.message"],
        "document_parsing_exception: scripted 400"
    );
    assert_eq!(
        lines[3]["message"],
        r#"{"@timestamp":"2026-05-06T07:08:09Z","n":2}"#
    );
}

#[tokio::test]
async fn refused_items_are_dropped_with_reasons_under_drop_policy() {
    let server = Server::start(|_, s| (200, reply(s, |i, _| if i == 0 { 400 } else { 201 }))).await;
    let settings = ElasticsearchSettings::from_config(&config(vec![server.host()])).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let mut batch = events(2);
    batch.push(Bytes::from_static(b"not json"));
    let out = bounded("send_batch", sender.send_batch(&batch)).await;
    assert_eq!(out.indexed, 1);
    assert_eq!(out.acked(), 3);
    assert_eq!(out.dropped.len(), 2, "{out:?}");
    let mut dropped = out.dropped.clone();
    dropped.sort_by_key(|d| d.event);
    assert_eq!((dropped[0].event, dropped[0].status), (0, 400));
    assert_eq!(
        dropped[0].reason,
        "document_parsing_exception: scripted 400"
    );
    assert_eq!((dropped[1].event, dropped[1].status), (2, 0));
    assert!(
        dropped[1].reason.contains("not valid JSON"),
        "{}",
        dropped[1].reason
    );
    assert_eq!(
        server.seen().len(),
        1,
        "the unencodable event never reached the cluster"
    );
}

#[tokio::test]
async fn too_large_requests_are_split() {
    // The "cluster" accepts at most two items per request.
    let server = Server::start(|_, s| {
        if s.lines().len() > 4 {
            (413, String::new())
        } else {
            (200, all_ok(s))
        }
    })
    .await;
    let settings = ElasticsearchSettings::from_config(&config(vec![server.host()])).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let out = bounded("send_batch", sender.send_batch(&events(5))).await;
    assert_eq!(out.indexed, 5, "{out:?}");
    let mut ids: Vec<String> = server
        .seen()
        .iter()
        .filter(|s| s.lines().len() <= 4)
        .flat_map(|s| s.lines().into_iter().step_by(2))
        .map(|l| l["create"]["_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec!["ev-0", "ev-1", "ev-2", "ev-3", "ev-4"],
        "each event indexed once"
    );
}

#[tokio::test]
async fn batches_above_bulk_max_size_go_out_in_order_in_several_requests() {
    let server = Server::start(|_, s| (200, all_ok(s))).await;
    let mut cfg = config(vec![server.host()]);
    cfg.bulk_max_size = 2;
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let out = bounded("send_batch", sender.send_batch(&events(5))).await;
    assert_eq!(out.indexed, 5);
    let sizes: Vec<usize> = server.seen().iter().map(|s| s.lines().len() / 2).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(server.seen()[2].lines()[0]["create"]["_id"], "ev-4");
}

#[tokio::test]
async fn a_single_document_too_large_is_non_indexable() {
    let server = Server::start(|_, _| (413, String::new())).await;
    let settings = ElasticsearchSettings::from_config(&config(vec![server.host()])).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let out = bounded("send_batch", sender.send_batch(&events(2))).await;
    assert_eq!(out.dropped.len(), 2);
    assert!(out.dropped.iter().all(|d| d.status == 413));
    assert_eq!(server.seen().len(), 3, "whole, then each half");
}

#[tokio::test]
async fn connection_failure_moves_to_the_next_host() {
    // A port with nothing listening: bind, note it, close.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let server = Server::start(|_, s| (200, all_ok(s))).await;
    let mut cfg = config(vec![format!("http://{dead}"), server.host()]);
    cfg.loadbalance = false;
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let out = bounded("send_batch", sender.send_batch(&events(3))).await;
    assert_eq!(out.indexed, 3, "{out:?}");
    let err = out.last_error.expect("the dead host's error is reported");
    assert!(err.is_retryable() && err.is_host_failure(), "{err:?}");
    assert!(err.to_string().contains(&dead.to_string()), "{err}");
    // Without loadbalance the sender stays on the host that works.
    let out = bounded("send_batch", sender.send_batch(&events(1))).await;
    assert!(out.last_error.is_none() && out.indexed == 1);
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn whole_request_errors_are_retried_then_returned() {
    let server = Server::start(|n, s| {
        if n < 2 {
            (
                503,
                r#"{"error":{"type":"cluster_block_exception","reason":"blocked"},"status":503}"#
                    .into(),
            )
        } else {
            (200, all_ok(s))
        }
    })
    .await;
    let mut cfg = config(vec![server.host()]);
    cfg.max_retries = 1;
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let out = bounded("send_batch", sender.send_batch(&events(2))).await;
    assert_eq!(
        out.retry_later,
        vec![0, 1],
        "max_retries 1: two tries, then handed back"
    );
    let err = out.last_error.unwrap();
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        err.to_string().contains("cluster_block_exception: blocked"),
        "{err}"
    );
    // The next call (the pipeline's retry) succeeds.
    let out = bounded("send_batch", sender.send_batch(&events(2))).await;
    assert_eq!(out.indexed, 2);
}

#[tokio::test]
async fn timeout_is_a_retryable_host_failure() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c);
        }
    });
    let mut cfg = config(vec![format!("http://{addr}")]);
    cfg.timeout = CfgDuration::from_millis(300);
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let client = EsClient::new(&settings).unwrap();
    let mut body = BulkBody::new(&settings);
    body.add_event(&events(1)[0]).unwrap();
    let err = bounded("send_bulk", client.send_bulk(0, &body.finish().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(err, EsError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable() && err.is_host_failure());
    hold.abort();
}

#[tokio::test]
async fn idle_connection_timeout_closes_idle_connections() {
    let server = Server::start(|_, s: &Seen| (200, all_ok(s))).await;
    let mut cfg = config(vec![server.host()]);
    cfg.idle_connection_timeout = CfgDuration::from_millis(200);
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let client = EsClient::new(&settings).unwrap();
    let mut body = BulkBody::new(&settings);
    body.add_event(&events(1)[0]).unwrap();
    bounded("send_bulk", client.send_bulk(0, &body.finish().unwrap()))
        .await
        .unwrap();
    // The pooled connection is closed by the client once idle for 200ms (reqwest's default
    // keeps it for 90s; Beats 8.12+'s balanced preset uses 3s).
    bounded("the idle connection to close", async {
        while server.open_connections() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    drop(client);
}

#[tokio::test]
async fn https_with_the_credential_layer() {
    let ca = Ca::new("es-test-ca");
    let leaf = ca.leaf("localhost", &["localhost"]);
    let files = Files::new();
    let server_tls =
        TlsSource::server(TlsSettings::from_config(&server_ssl(&files, &leaf, None)).unwrap())
            .unwrap()
            .server_config()
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls);
    let server = Server::start_with(Some(acceptor), Arc::new(|_, s: &Seen| (200, all_ok(s)))).await;
    let mut cfg = config(vec![format!("localhost:{}", server.addr.port())]);
    cfg.ssl = client_ssl(&ca, None);
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    assert_eq!(
        settings.hosts[0].to_string(),
        format!("https://localhost:{}", server.addr.port()),
        "ssl.* makes https the default scheme"
    );
    let client = EsClient::new(&settings).unwrap();
    let mut body = BulkBody::new(&settings);
    body.add_event(&events(1)[0]).unwrap();
    let reply = bounded("send_bulk", client.send_bulk(0, &body.finish().unwrap()))
        .await
        .unwrap();
    assert!(
        matches!(reply, BulkReply::Items(ref v) if v.len() == 1),
        "{reply:?}"
    );

    // A client trusting another CA is refused at the handshake: a connection error.
    let other = Ca::new("other-ca");
    cfg.ssl = client_ssl(&other, None);
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let client = EsClient::new(&settings).unwrap();
    let err = bounded("send_bulk", client.send_bulk(0, &body.finish().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(err, EsError::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn ssl_server_name_is_verified_while_connecting_to_the_host() {
    let ca = Ca::new("es-test-ca");
    let leaf = ca.leaf("es.internal", &["es.internal"]);
    let files = Files::new();
    let server_tls =
        TlsSource::server(TlsSettings::from_config(&server_ssl(&files, &leaf, None)).unwrap())
            .unwrap()
            .server_config()
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls);
    let server = Server::start_with(Some(acceptor), Arc::new(|_, s: &Seen| (200, all_ok(s)))).await;
    let mut cfg = config(vec![format!("https://127.0.0.1:{}", server.addr.port())]);
    cfg.ssl = client_ssl(&ca, None);
    let mut body = BulkBody::new(&ElasticsearchSettings::from_config(&cfg).unwrap());
    body.add_event(&events(1)[0]).unwrap();
    let body = body.finish().unwrap();

    // Without server_name the certificate does not match 127.0.0.1.
    let client = EsClient::new(&ElasticsearchSettings::from_config(&cfg).unwrap()).unwrap();
    let err = bounded("send_bulk", client.send_bulk(0, &body))
        .await
        .unwrap_err();
    assert!(matches!(err, EsError::Connect { .. }), "{err:?}");

    cfg.ssl.server_name = Some("es.internal".into());
    let client = EsClient::new(&ElasticsearchSettings::from_config(&cfg).unwrap()).unwrap();
    let reply = bounded("send_bulk", client.send_bulk(0, &body))
        .await
        .unwrap();
    assert!(
        matches!(reply, BulkReply::Items(ref v) if v.len() == 1),
        "{reply:?}"
    );
    let seen = server.seen();
    assert_eq!(
        seen.last().unwrap().headers["host"],
        format!("es.internal:{}", server.addr.port())
    );

    cfg.ssl.server_name = Some("10.0.0.1".into());
    let err = ElasticsearchSettings::from_config(&cfg)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ssl.server_name") && err.contains("DNS name"),
        "{err}"
    );
}

// ---- The pipeline adapter (output::plan workers over a real queue) ----

/// Publishes `docs` into a queue, runs `cfg`'s workers until every event is settled, and
/// returns the counters.
async fn through_pipeline(cfg: &ElasticsearchOutputConfig, docs: Vec<Bytes>) -> Snapshot {
    let plan = skidder::outputs::elasticsearch::output::plan(cfg).unwrap();
    let metrics = Arc::new(Metrics::default());
    let queue = Queue::new(
        QueueSettings {
            capacity: 1024,
            min_events: 1,
            flush_timeout: std::time::Duration::from_millis(1),
        },
        Arc::clone(&metrics),
    );
    let mut workers = tokio::task::JoinSet::new();
    for w in plan.workers {
        workers.spawn(w.run(queue.batch_source(plan.bulk_max_size), Arc::clone(&metrics)));
    }
    let mut publisher = queue.publisher("test");
    queue.all_inputs_started();
    for d in docs {
        publisher.publish_async(d).await.unwrap();
    }
    publisher.close_async().await.unwrap();
    bounded("the run to settle", queue.wait_idle()).await;
    queue.cancel();
    while let Some(r) = bounded("the workers to end", workers.join_next()).await {
        r.unwrap().unwrap();
    }
    metrics.snapshot()
}

#[tokio::test]
async fn pipeline_acks_retries_and_drops_item_by_item() {
    // First request: item 1 rejected (429), item 2 refused (400). Then all accepted.
    let server = Server::start(|n, s| {
        if n == 0 {
            (
                200,
                reply(s, |i, _| match i {
                    1 => 429,
                    2 => 400,
                    _ => 201,
                }),
            )
        } else {
            (200, all_ok(s))
        }
    })
    .await;
    let cfg = config(vec![server.host()]);
    let snap = through_pipeline(&cfg, events(5)).await;
    assert_eq!(
        (snap.published, snap.acked, snap.dropped, snap.retried),
        (5, 4, 1, 1),
        "{snap:?}"
    );
    assert!(snap.output_bytes > 0, "{snap:?}");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].docs(),
        vec![serde_json::json!({"@timestamp": "2026-05-06T07:08:09Z", "n": 1})]
    );
}

#[tokio::test]
async fn pipeline_dead_letters_count_as_acknowledged() {
    let server = Server::start(|_, s| {
        (
            200,
            reply(s, |_, doc| if doc["n"] == 0 { 400 } else { 201 }),
        )
    })
    .await;
    let mut cfg = config(vec![server.host()]);
    cfg.non_indexable_policy = Some(NonIndexablePolicy::DeadLetterIndex {
        index: "dlq".into(),
    });
    let snap = through_pipeline(&cfg, events(3)).await;
    assert_eq!((snap.acked, snap.dropped), (3, 0), "{snap:?}");
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "the batch, then the dead letter");
    assert_eq!(seen[1].lines()[0]["index"]["_index"], "dlq");
}

#[tokio::test]
async fn pipeline_credential_refusal_backs_off_and_never_spins() {
    const INIT: std::time::Duration = std::time::Duration::from_millis(100);
    let server = Server::start(|n, s| {
        if n < 3 {
            (401, r#"{"error":{"type":"security_exception","reason":"unable to authenticate"},"status":401}"#.into())
        } else {
            (200, all_ok(s))
        }
    })
    .await;
    let mut cfg = config(vec![server.host()]);
    cfg.max_retries = -1;
    cfg.backoff = BackoffConfig {
        init: CfgDuration::from_millis(100),
        max: CfgDuration::from_millis(100),
    };
    let snap = through_pipeline(&cfg, events(4)).await;
    assert_eq!((snap.acked, snap.dropped), (4, 0), "{snap:?}");
    let seen = server.seen();
    assert_eq!(seen.len(), 4, "three refusals, then delivered");
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= INIT,
            "a retry after a 401 came {gap:?} after the refusal"
        );
    }
}

#[tokio::test]
async fn pipeline_gives_up_after_max_retries() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut cfg = config(vec![format!("http://{dead}")]);
    cfg.max_retries = 2;
    let snap = through_pipeline(&cfg, events(3)).await;
    assert_eq!((snap.acked, snap.dropped), (0, 3), "{snap:?}");
    // One try and two retries of the batch.
    assert_eq!(snap.retried, 3 * 2, "{snap:?}");
}

#[tokio::test]
async fn pipeline_loadbalance_spreads_and_fails_over_to_a_live_host() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let a = Server::start(|_, s| (200, all_ok(s))).await;
    let b = Server::start(|_, s| (200, all_ok(s))).await;
    let mut cfg = config(vec![a.host(), format!("http://{dead}"), b.host()]);
    cfg.bulk_max_size = 10;
    cfg.max_retries = -1;
    let docs: Vec<Bytes> = events(200);
    let snap = through_pipeline(&cfg, docs).await;
    assert_eq!((snap.acked, snap.dropped), (200, 0), "{snap:?}");
    let delivered: usize = a
        .seen()
        .iter()
        .chain(b.seen().iter())
        .map(|r| r.docs().len())
        .sum();
    assert_eq!(delivered, 200, "every event delivered exactly once");
}

#[test]
fn binary_reports_events_given_up_on_a_dead_host() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(
        dir.path(),
        &format!(
            "skidder.inputs:\n  - type: stdin\n    json: true\noutput.elasticsearch:\n  hosts: [\"http://{dead}\"]\n  max_retries: 1\n  backoff.init: 10ms\n  backoff.max: 20ms\nlogging.level: info\n"
        ),
    );
    let r = common::run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "-e"],
        b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n",
    );
    let totals = r.totals();
    assert_eq!(
        r.code(),
        Some(4),
        "a run that dropped events by policy does not exit 0:\n{}",
        r.stderr
    );
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("skidder totals:"))
        .unwrap_or_default();
    assert!(
        line.starts_with("skidder totals: 3 event(s) DROPPED by policy"),
        "the totals line says so first: {line}"
    );
    assert_eq!(totals["published"], "3", "{}", r.stderr);
    assert_eq!(totals["acked"], "0", "{}", r.stderr);
    assert_eq!(totals["dropped"], "3", "{}", r.stderr);
    let error = r
        .stderr
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("output dropped events"))
        .unwrap_or_else(|| panic!("no ERROR line for the drop:\n{}", r.stderr));
    assert!(
        error.contains(&dead.to_string()) && error.contains("max_retries 1"),
        "the reason names the host and the limit: {error}"
    );
}

#[test]
fn binary_shutdown_while_retrying_loses_nothing() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(
        dir.path(),
        &format!(
            "skidder.inputs:\n  - type: generator\n    count: 50\noutput.elasticsearch:\n  hosts: [\"http://{dead}\"]\n  max_retries: -1\n  backoff.init: 20ms\n  backoff.max: 1s\nshutdown_timeout: 300ms\n"
        ),
    );
    let mut child = common::bin()
        .args(["-c", cfg.to_str().unwrap(), "-e"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut watch = common::LineWatch::new(child.stderr.take().unwrap());
    for _ in 0..3 {
        watch.wait_for("bulk request failed", STEP);
    }
    // SAFETY: plain kill(2) of our own child.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = common::wait_exit(&mut child, STEP);
    let stderr = watch.rest();
    // Interrupted with events unacknowledged: 130, and every event accounted for.
    assert_eq!(status.code(), Some(130), "{stderr}");
    let t = common::totals(&stderr);
    assert_eq!(
        (
            t["published"].as_str(),
            t["acked"].as_str(),
            t["dropped"].as_str(),
            t["unacked"].as_str()
        ),
        ("50", "0", "0", "50"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("without a verdict") && !stderr.contains("output dropped events"),
        "the batch in flight goes back quietly:\n{stderr}"
    );
}

#[test]
fn binary_document_id_is_checked_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(
        dir.path(),
        "skidder.inputs:\n  - type: stdin\noutput.elasticsearch:\n  hosts: [\"localhost\"]\n  document_id: random\n",
    );
    let r = common::run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "test", "config"],
        b"",
    );
    assert_eq!(r.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("output.elasticsearch.document_id"),
        "the key is named:\n{all}"
    );
    for ok in ["metadata", "hash", "none"] {
        let cfg = common::config(
            dir.path(),
            &format!("skidder.inputs:\n  - type: stdin\noutput.elasticsearch:\n  hosts: [\"localhost\"]\n  document_id: {ok}\n"),
        );
        let r = common::run(
            dir.path(),
            &["-c", cfg.to_str().unwrap(), "test", "config"],
            b"",
        );
        assert_eq!(r.code(), Some(0), "{ok}: {}\n{}", r.stdout, r.stderr);
    }
}

/// A document the cluster refuses (400) under the default `non_indexable_policy: drop` is
/// dropped loudly: an ERROR line with the cluster's status and reason, counted in the
/// totals, and exit code 4.
#[test]
fn binary_non_indexable_drop_is_an_error_line_and_exit_code_4() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let es = runtime.block_on(Server::start(|_, seen| {
        if seen.path_and_query.contains("_bulk") {
            (
                200,
                reply(seen, |_, doc| if doc["a"] == 2 { 400 } else { 201 }),
            )
        } else {
            (200, r#"{"version":{"number":"8.15.0"}}"#.to_string())
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(
        dir.path(),
        &format!(
            "skidder.inputs:\n  - type: stdin\n    json: true\noutput.elasticsearch:\n  hosts: [\"{}\"]\n",
            es.host()
        ),
    );
    let r = common::run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "-e"],
        b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n",
    );
    assert_eq!(r.code(), Some(4), "{}", r.stderr);
    let t = r.totals();
    assert_eq!(
        (t["acked"].as_str(), t["dropped"].as_str()),
        ("2", "1"),
        "{}",
        r.stderr
    );
    let error = r
        .stderr
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("non-indexable"))
        .unwrap_or_else(|| panic!("no ERROR line for the drop:\n{}", r.stderr));
    assert!(
        error.contains("400") && error.contains("scripted 400"),
        "the ERROR line gives the cluster's status and reason: {error}"
    );
}
