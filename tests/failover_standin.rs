//! `output.failover` without Java: the go-lumber peer as Logstash and the in-process
//! Elasticsearch stand-in (tests/common/es_server.rs) as the fallback, so the gate, recall
//! and re-send path is proven on every machine, not only where the OpenSearch peer runs.
//! Logstash up → events go there; stopped → they go to the stand-in; back on the same port
//! → traffic returns. Every event arrives, and the duplicates across both destinations are
//! bounded by what Logstash can have received without acknowledging it.

mod common;
#[path = "common/es_server.rs"]
mod es_server;
#[path = "common/golumber.rs"]
mod golumber;

use std::collections::BTreeMap;
use std::time::Duration;

use golumber::{assert_all_delivered, Server};

const N: u64 = 8_000;
/// `bulk_max_size` and `pipelining` of the Logstash output: together the most events that can
/// be in flight to Logstash, unacknowledged, when it goes away.
const BULK: u64 = 200;
const PIPELINING: u64 = 2;
const STEP: Duration = Duration::from_secs(30);

#[test]
fn logstash_down_fails_over_to_the_standin_and_traffic_returns() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let es = runtime.block_on(es_server::Server::start(|_, seen| {
        if seen.path_and_query.contains("_bulk") {
            (200, es_server::all_indexed(seen))
        } else {
            (200, r#"{"version":{"number":"8.15.0"}}"#.to_string())
        }
    }));
    let first = Server::start(&[]);
    let addr = first.addr.clone();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "skidder.inputs:
  - type: generator
    count: {N}
    eps: 2000
queue.mem.flush.min_events: 200
queue.mem.flush.timeout: 100ms
output.logstash:
  hosts: [\"{addr}\"]
  bulk_max_size: {BULK}
  pipelining: {PIPELINING}
  timeout: 2s
  backoff.init: 100ms
  backoff.max: 500ms
output.elasticsearch:
  hosts: [\"{}\"]
  bulk_max_size: 500
  backoff.init: 50ms
  backoff.max: 200ms
output.failover:
  enabled: true
  after: 3s
  probe_interval: 500ms
",
        es.host()
    );
    let path = common::config(dir.path(), &yaml);
    let (mut child, mut lines) = common::spawn_run(dir.path(), &path);

    first.wait_accepted(1_000, STEP);
    assert!(
        es.seen().is_empty(),
        "nothing to the fallback while Logstash accepts"
    );
    let first_out = dir.path().join("first.ndjson");
    std::fs::hard_link(&first.out, &first_out).unwrap();
    first.stop();

    lines.wait_for("switching to Elasticsearch", STEP);
    let reached = common::poll(STEP, || {
        es.seen()
            .iter()
            .any(|s| s.path_and_query.contains("_bulk"))
            .then_some(())
    });
    assert!(reached.is_some(), "no bulk request reached the stand-in");

    let second = Server::start_on(&addr, &[]);
    lines.wait_for("switching back to Logstash", STEP);
    let status = common::wait_exit(&mut child.0, Duration::from_secs(60));
    let stderr = lines.rest();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let totals = common::totals(&stderr);
    let n = N.to_string();
    assert_eq!(
        (
            totals["acked"].as_str(),
            totals["dropped"].as_str(),
            totals["unacked"].as_str()
        ),
        (n.as_str(), "0", "0"),
        "{stderr}"
    );

    let mut standin: BTreeMap<u64, u32> = BTreeMap::new();
    for request in es
        .seen()
        .iter()
        .filter(|s| s.path_and_query.contains("_bulk"))
    {
        for doc in request.docs() {
            let seq = doc["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("no seq: {doc}"));
            *standin.entry(seq).or_insert(0) += 1;
        }
    }
    let twice: Vec<u64> = standin
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(s, _)| *s)
        .collect();
    assert!(
        twice.is_empty(),
        "the stand-in indexed seqs twice: {twice:?}"
    );
    let mut union = golumber::seqs(&first_out);
    for (seq, c) in second.seqs().iter().chain(standin.iter()) {
        *union.entry(*seq).or_insert(0) += c;
    }
    assert!(!second.seqs().is_empty(), "traffic returned to Logstash");
    let duplicates = assert_all_delivered(&union, N);
    assert!(
        duplicates <= BULK * PIPELINING,
        "{duplicates} events arrived twice; at most {} could have reached Logstash without an \
         ACK when it went away\n{stderr}",
        BULK * PIPELINING
    );
}
