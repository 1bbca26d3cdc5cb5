//! Duplicate-safe failover (issue 20) against the OpenSearch node: a Logstash stand-in
//! (skidder's lumberjack receiver relaying to OpenSearch, which indexes with
//! `@metadata._id` as Logstash's `document_id => "%{[@metadata][_id]}"` would) indexes
//! windows whose ACKs never reach the shipper (a relay in between drops every byte the
//! stand-in sends back), then dies (kill -9). The shipper fails over to OpenSearch and
//! re-sends everything unacknowledged. With `output.logstash.event_id: hash` the index holds
//! each event exactly once; without it (the control) the windows the stand-in indexed are
//! there twice.

mod common;
#[path = "common/opensearch.rs"]
mod opensearch;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

const N: u64 = 3_000;
const STEP: Duration = Duration::from_secs(120);

/// Forwards connections on a local port to `target`, client to server only: whatever the
/// server answers (ACKs) is read and dropped. Returns the listening address.
fn ack_eating_relay(target: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(server) = TcpStream::connect(&target) else {
                // The stand-in is gone: the shipper sees the connection closed.
                continue;
            };
            let (Ok(mut to_server), Ok(mut from_server)) = (server.try_clone(), server.try_clone())
            else {
                continue;
            };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = from_server.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            });
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                loop {
                    match client.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if to_server.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = server.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    addr
}

/// One scenario: returns (documents in `index`, distinct `seq` values, the shipper's totals).
fn scenario(
    dir: &Path,
    peer: &opensearch::Peer,
    admin: &opensearch::Admin,
    index: &str,
    event_id: &str,
) -> (u64, u64, std::collections::HashMap<String, String>) {
    let standin_dir = dir.join(index).join("standin");
    let shipper_dir = dir.join(index).join("shipper");
    std::fs::create_dir_all(&standin_dir).unwrap();
    std::fs::create_dir_all(&shipper_dir).unwrap();
    // The stand-in: what Logstash with `document_id => "%{[@metadata][_id]}"` does.
    let standin = common::config(
        &standin_dir,
        &format!(
            "skidder.inputs:\n  - type: lumberjack\n    host: \"127.0.0.1:0\"\n\
             output.elasticsearch:\n  hosts: [\"{}\"]\n  index: {index}\n  bulk_max_size: 500\n",
            peer.url
        ),
    );
    let (mut standin_child, mut standin_log) = common::spawn_run(&standin_dir, &standin);
    standin_log.wait_for("lumberjack input listening on", STEP);
    let line = standin_log.seen.last().cloned().unwrap_or_default();
    let listen = line
        .rsplit("listening on ")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('"')
        .to_string();
    let relay = ack_eating_relay(listen);

    let shipper = common::config(
        &shipper_dir,
        &format!(
            "skidder.inputs:\n  - type: generator\n    count: {N}\n\
             queue.mem.flush.min_events: 200\nqueue.mem.flush.timeout: 100ms\n\
             output.logstash:\n  hosts: [\"{relay}\"]\n  bulk_max_size: 200\n  pipelining: 2\n\
             \x20 timeout: 2s\n  backoff.init: 100ms\n  backoff.max: 500ms\n  event_id: {event_id}\n\
             output.elasticsearch:\n  hosts: [\"{}\"]\n  index: {index}\n  bulk_max_size: 500\n\
             \x20 backoff.init: 50ms\n  backoff.max: 200ms\n\
             output.failover:\n  enabled: true\n  after: 5s\n  failback: false\n",
            peer.url
        ),
    );
    let mut child = common::bin()
        .current_dir(&shipper_dir)
        .args(["run", "-e", "-c"])
        .arg(&shipper)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The stand-in indexed at least a window, and the shipper got no ACK for it: then the
    // stand-in dies.
    let indexed = common::poll(STEP, || {
        let n = admin.count(index);
        (n > 0).then_some(n)
    });
    let Some(indexed) = indexed else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the stand-in indexed nothing; its log:\n{}",
            standin_log.seen.join("\n")
        );
    };
    let _ = standin_child.0.kill();
    let _ = standin_child.0.wait();
    assert!(indexed <= N, "{indexed}");

    let run = common::wait_output(child, STEP);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let totals = run.totals();
    let count = admin.count(index);
    let (status, reply) = admin.call(
        reqwest::Method::POST,
        &format!("{index}/_search"),
        Some(json!({"size": 0, "aggs": {"seqs": {"cardinality": {"field": "seq", "precision_threshold": 40000}}}})),
    );
    assert_eq!(status, 200, "{reply}");
    let distinct = reply["aggregations"]["seqs"]["value"].as_u64().unwrap();
    (count, distinct, totals)
}

#[test]
fn an_event_delivered_through_logstash_and_the_fallback_is_one_document() {
    let Some(peer) = opensearch::peer() else {
        return;
    };
    let admin = opensearch::Admin::new(peer);
    let dir = tempfile::tempdir().unwrap();

    let (count, distinct, totals) = scenario(dir.path(), peer, &admin, "dedupe-hash", "hash");
    assert_eq!(totals["acked"], N.to_string(), "{totals:?}");
    assert_eq!(totals["output_switches"], "1", "{totals:?}");
    assert_eq!(distinct, N, "every seq is there");
    assert_eq!(count, N, "each event exactly once");

    // The control: the same run without stamped ids duplicates what the stand-in indexed.
    let (count, distinct, totals) = scenario(dir.path(), peer, &admin, "dedupe-none", "none");
    assert_eq!(totals["acked"], N.to_string(), "{totals:?}");
    assert_eq!(distinct, N);
    assert!(
        count > N,
        "without event_id the re-sent window is indexed twice: {count}"
    );
}
