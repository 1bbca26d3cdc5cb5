//! The bulk semantics that need node-wide settings, against a real OpenSearch 2.19 node of
//! this test binary's own (the shared node of `elasticsearch_opensearch.rs` serves tests
//! that send larger requests):
//! - `http.max_content_length: 8kb`: a larger request is answered 413; skidder splits the
//!   batch until each request fits, and a single document over the limit is non-indexable;
//! - `indexing_pressure.memory.limit: 10kb`: a request whose items take more than that in
//!   the node's memory (about the body plus ~90 bytes per item) is refused as a whole with
//!   429 `rejected_execution_exception`; skidder keeps its events for a retry;
//! - `cluster.blocks.read_only` (a cluster setting, set by one test): every bulk request is
//!   refused as a whole with 403 `cluster_block_exception`; skidder keeps the events.
//!
//! Requests the 413 test sends after splitting stay under the indexing-pressure limit: its
//! events are ~1 KB, so at most 8 fit in 8 KB (8 KB + 8 × ~90 bytes of overhead < 10 KB).
//!
//! The tests run one at a time ([`serial`]): the cluster-wide block and the node-wide
//! rejection counter must not see another test's requests. Not provable here: 401 (the
//! peer runs without the security plugin, so every request is anonymous and allowed) and a
//! whole-request 5xx (no node setting produces one for a bulk request that reaches it).

mod common;
#[path = "common/opensearch.rs"]
mod opensearch;

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use skidder::config::{BackoffConfig, Duration as CfgDuration, ElasticsearchOutputConfig};
use skidder::outputs::elasticsearch::{ElasticsearchSettings, EsError, Sender};

use opensearch::{Admin, Peer};

/// `http.max_content_length` of the node.
const MAX_CONTENT: usize = 8 * 1024;

/// Bound on one `send_batch`.
const STEP: Duration = Duration::from_secs(60);

/// This binary's node, with the limits above and a small heap.
fn peer() -> Option<&'static Peer> {
    static PEER: OnceLock<Option<Peer>> = OnceLock::new();
    PEER.get_or_init(|| {
        opensearch::start(
            "limits",
            &["-Xms256m", "-Xmx256m"],
            &[
                "http.max_content_length=8kb",
                "indexing_pressure.memory.limit=10kb",
            ],
        )
    })
    .as_ref()
}

/// One test at a time (see the module docs); a failed test does not poison the others.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn config(peer: &Peer, index: &str) -> ElasticsearchOutputConfig {
    ElasticsearchOutputConfig {
        hosts: vec![peer.url.clone()],
        index: Some(index.to_string()),
        backoff: BackoffConfig {
            init: CfgDuration::from_millis(50),
            max: CfgDuration::from_millis(200),
        },
        ..Default::default()
    }
}

fn send(
    rt: &tokio::runtime::Runtime,
    sender: &mut Sender,
    batch: &[Bytes],
) -> skidder::outputs::elasticsearch::BatchOutcome {
    rt.block_on(async {
        tokio::time::timeout(STEP, sender.send_batch(batch))
            .await
            .unwrap_or_else(|_| panic!("send_batch did not finish within {STEP:?}"))
    })
}

/// The node's count of bulk requests refused for indexing pressure.
fn coordinating_rejections(admin: &Admin) -> u64 {
    let (status, reply) = admin.call(reqwest::Method::GET, "_nodes/stats/indexing_pressure", None);
    assert_eq!(status, 200, "{reply}");
    let nodes = reply["nodes"].as_object().unwrap();
    assert_eq!(nodes.len(), 1, "{reply}");
    let node = nodes.values().next().unwrap();
    node["indexing_pressure"]["memory"]["total"]["coordinating_rejections"]
        .as_u64()
        .unwrap_or_else(|| panic!("no coordinating_rejections in {reply}"))
}

/// A batch of 40 events of ~1 KB (40 KB in all) is answered 413 as one request; skidder
/// splits it until every request fits and indexes each event exactly once. A single event
/// larger than the limit cannot fit however it is split: it alone is dropped as
/// non-indexable with status 413.
#[test]
fn a_batch_over_http_max_content_length_is_split_and_indexed_once() {
    let _serial = serial();
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    let rt = runtime();
    const N: usize = 40;
    let pad = "x".repeat(1000);
    let mut batch: Vec<Bytes> = (0..N)
        .map(|i| Bytes::from(format!(r#"{{"n":{i},"pad":"{pad}"}}"#)))
        .collect();
    let huge = "y".repeat(MAX_CONTENT + 1024);
    batch.insert(20, Bytes::from(format!(r#"{{"n":999,"pad":"{huge}"}}"#)));

    // The node refuses the events in one request (it is configured as this test assumes).
    let whole: String = batch[..N]
        .iter()
        .map(|e| {
            format!(
                "{{\"index\":{{\"_index\":\"skidder-l1-raw\"}}}}\n{}\n",
                String::from_utf8_lossy(e)
            )
        })
        .collect();
    assert!(whole.len() > 4 * MAX_CONTENT);
    let (status, reply) = admin.bulk_raw(whole);
    assert_eq!(status, 413, "{reply}");

    let mut cfg = config(peer, "skidder-l1");
    // All of it in one request; gzip on (the default level 1): the node's limit applies
    // to the inflated body, so compression does not let it through.
    cfg.bulk_max_size = 1000;
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let out = send(&rt, &mut sender, &batch);
    assert_eq!((out.indexed, out.retry_later.len()), (N, 0), "{out:?}");
    let dropped: Vec<(usize, u16)> = out.dropped.iter().map(|d| (d.event, d.status)).collect();
    assert_eq!(dropped, [(20, 413)], "{out:?}");
    assert!(
        out.dropped[0].reason.contains("http.max_content_length"),
        "{out:?}"
    );
    // No document ids: an event sent twice would be two documents.
    assert_eq!(admin.count("skidder-l1"), N as u64);
    let mut seen = admin.field_values("skidder-l1", "n");
    seen.sort_unstable();
    assert_eq!(seen, (0..N as u64).collect::<Vec<_>>());
}

/// 150 small events fit in one request (~7.5 KB) but take more than the node's indexing
/// pressure limit in its memory: the whole request is answered 429 every time. skidder
/// keeps every event for a retry and drops none: with `max_retries: 2` the node counts
/// exactly three refused requests, and the events come back in `retry_later`. Sent in
/// smaller requests, the same events are then all indexed, once.
#[test]
fn a_whole_request_429_is_retried_and_nothing_is_dropped() {
    let _serial = serial();
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    let rt = runtime();
    const N: usize = 150;
    let batch: Vec<Bytes> = (0..N)
        .map(|i| Bytes::from(format!(r#"{{"n":{i}}}"#)))
        .collect();
    let mut cfg = config(peer, "skidder-l2");
    cfg.bulk_max_size = 1000;
    cfg.max_retries = 2;
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let before = coordinating_rejections(&admin);
    let out = send(&rt, &mut sender, &batch);
    let after = coordinating_rejections(&admin);
    assert_eq!(after - before, 3, "one try and two retries: {out:?}");
    assert_eq!(
        (out.indexed, out.dropped.len(), out.retry_later.len()),
        (0, 0, N),
        "{out:?}"
    );
    match &out.last_error {
        Some(EsError::Status { status, reason, .. }) => {
            assert_eq!(*status, 429, "{out:?}");
            assert!(
                reason.contains("rejected execution of coordinating operation"),
                "{reason}"
            );
        }
        other => panic!("expected the node's 429, got {other:?}"),
    }
    assert_eq!(admin.count("skidder-l2"), 0);

    cfg.bulk_max_size = 30;
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();
    let again: Vec<Bytes> = out.retry_later.iter().map(|&i| batch[i].clone()).collect();
    let out = send(&rt, &mut sender, &again);
    assert_eq!(
        (out.indexed, out.dropped.len(), out.retry_later.len()),
        (N, 0, 0),
        "{out:?}"
    );
    assert_eq!(coordinating_rejections(&admin), after, "no request refused");
    assert_eq!(admin.count("skidder-l2"), N as u64);
}

/// Lifts the cluster-wide read-only block when dropped, so a failed assertion cannot leave
/// it set for the next test.
struct ReadOnly<'a>(&'a Admin);

impl ReadOnly<'_> {
    fn set(admin: &Admin, on: bool) {
        let value = if on { json!(true) } else { Value::Null };
        let (status, reply) = admin.call(
            reqwest::Method::PUT,
            "_cluster/settings",
            Some(json!({"persistent": {"cluster.blocks.read_only": value}})),
        );
        assert_eq!(status, 200, "{reply}");
    }
}

impl Drop for ReadOnly<'_> {
    fn drop(&mut self) {
        Self::set(self.0, false);
    }
}

/// A read-only cluster refuses the whole bulk request with 403 `cluster_block_exception`:
/// no event is dropped, all come back for a retry, and once the block is lifted they are
/// indexed, once.
#[test]
fn a_whole_request_403_cluster_block_keeps_every_event() {
    let _serial = serial();
    let Some(peer) = peer() else { return };
    let admin = Admin::new(peer);
    let rt = runtime();
    const N: usize = 5;
    let batch: Vec<Bytes> = (0..N)
        .map(|i| Bytes::from(format!(r#"{{"n":{i}}}"#)))
        .collect();
    let mut cfg = config(peer, "skidder-l3");
    cfg.max_retries = 1;
    let settings = ElasticsearchSettings::from_config(&cfg).unwrap();
    let mut sender = Sender::new(&settings, 0).unwrap();

    let block = ReadOnly(&admin);
    ReadOnly::set(&admin, true);
    // What the node answers (so the test proves what it claims).
    let (status, reply) =
        admin.bulk_raw("{\"index\":{\"_index\":\"skidder-l3\"}}\n{\"n\":0}\n".into());
    assert_eq!(status, 403, "{reply}");
    assert_eq!(reply["error"]["type"], "cluster_block_exception", "{reply}");

    let out = send(&rt, &mut sender, &batch);
    assert_eq!(
        (out.indexed, out.dropped.len(), out.retry_later.len()),
        (0, 0, N),
        "{out:?}"
    );
    let err = out.last_error.as_ref().expect("the refusal is reported");
    // The cluster's reason, not "refused the credential".
    assert!(
        err.to_string().contains("403") && err.to_string().contains("cluster_block_exception"),
        "{err}"
    );
    assert!(
        !err.is_credential(),
        "a cluster block is not a credential refusal: {err}"
    );
    drop(block);

    let again: Vec<Bytes> = out.retry_later.iter().map(|&i| batch[i].clone()).collect();
    let out = send(&rt, &mut sender, &again);
    assert_eq!(
        (out.indexed, out.dropped.len(), out.retry_later.len()),
        (N, 0, 0),
        "{out:?}"
    );
    assert_eq!(admin.count("skidder-l3"), N as u64);
}
