//! `output.failover` end to end: the go-lumber peer as Logstash, the OpenSearch peer as the
//! fallback. Logstash up → events go there; stopped → they land in OpenSearch; restarted on
//! the same port → traffic returns. Every event is in the union at least once, and exactly
//! once within OpenSearch (`document_id: hash` collapses re-sends).
//!
//! With `queue.disk`, the same pair survives a SIGKILL while events are in flight to the
//! fallback: every accepted `(run, seq)` reaches one of the two at least once.
//!
//! Skipped (with a message) only when `java` or `mvn` is missing for the OpenSearch peer.

mod common;
#[path = "common/diskq.rs"]
mod diskq;
#[path = "common/golumber.rs"]
mod golumber;
#[path = "common/opensearch.rs"]
mod opensearch;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use golumber::{assert_all_delivered, Server};

const N: u64 = 12_000;
const INDEX: &str = "skidder-failover";
/// `output.failover.after` of the run: long enough that a slow ACK next to a JVM on two
/// cores is not taken for an outage.
const AFTER: Duration = Duration::from_secs(3);
/// Bound on each step of the scenario.
const STEP: Duration = Duration::from_secs(30);

fn yaml(logstash: &str, elasticsearch: &str) -> String {
    format!(
        "skidder:
  inputs:
    - type: generator
      count: {N}
      eps: 2000
queue.mem.flush.min_events: 200
queue.mem.flush.timeout: 100ms
output.logstash:
  hosts: [\"{logstash}\"]
  bulk_max_size: 200
  timeout: 2s
  backoff.init: 100ms
  backoff.max: 500ms
output.elasticsearch:
  hosts: [\"{elasticsearch}\"]
  index: {INDEX}
  bulk_max_size: 500
  document_id: hash
  backoff.init: 50ms
  backoff.max: 200ms
output.failover:
  enabled: true
  after: {}ms
  probe_interval: 500ms
",
        AFTER.as_millis()
    )
}

#[test]
fn logstash_down_fails_over_to_opensearch_and_traffic_returns() {
    let Some(peer) = opensearch::peer() else {
        return;
    };
    let admin = opensearch::Admin::new(peer);
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(&[]);
    let addr = first.addr.clone();
    let path = common::config(dir.path(), &yaml(&addr, &peer.url));
    let started = Instant::now();
    let (mut child, mut lines) = common::spawn_run(dir.path(), &path);

    // Logstash up: events go there.
    first.wait_accepted(1_000, STEP);
    assert_eq!(
        admin.count(INDEX),
        0,
        "nothing in OpenSearch while Logstash accepts"
    );
    // Keep what the first server accepted (its files go with it when it stops).
    let first_out = dir.path().join("first.ndjson");
    std::fs::hard_link(&first.out, &first_out).unwrap();
    first.stop();
    let stopped = Instant::now();

    // Logstash down: a WARN switch, and events land in OpenSearch.
    lines.wait_for("switching to Elasticsearch", STEP);
    // The outage lasts longer than `after`, and until OpenSearch has received events.
    let drained = common::poll(STEP, || {
        (admin.count(INDEX) > 0 && stopped.elapsed() >= AFTER + AFTER / 5).then_some(())
    });
    assert!(
        drained.is_some(),
        "no event reached OpenSearch within {STEP:?} of the failover"
    );

    // Logstash back on the same port: traffic returns.
    let second = Server::start_on(&addr, &[]);
    lines.wait_for("switching back to Logstash", STEP);
    let at_failback = admin.count(INDEX);
    let status = common::wait_exit(&mut child.0, Duration::from_secs(60));
    let stderr = lines.rest();
    let wall = started.elapsed();
    assert_eq!(status.code(), Some(0), "{stderr}");

    let totals = common::totals(&stderr);
    let n = N.to_string();
    assert_eq!(
        (
            totals["published"].as_str(),
            totals["acked"].as_str(),
            totals["dropped"].as_str(),
            totals["unacked"].as_str()
        ),
        (n.as_str(), n.as_str(), "0", "0"),
        "{stderr}"
    );
    let switches: u64 = totals
        .get("output_switches")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        switches >= 2,
        "over and back: {switches} switches\n{stderr}"
    );
    for needle in ["switching to Elasticsearch", "switching back to Logstash"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("WARN") && l.contains(needle) && l.contains("reason")),
            "a WARN line with the reason for {needle:?}:\n{stderr}"
        );
    }

    for line in stderr.lines().filter(|l| l.contains("output failover")) {
        println!("{line}");
    }
    let ls_first = golumber::seqs(&first_out);
    let ls_second = second.seqs();
    let es_docs = admin.field_values(INDEX, "seq");
    let mut es: BTreeMap<u64, u32> = BTreeMap::new();
    for seq in &es_docs {
        *es.entry(*seq).or_insert(0) += 1;
    }
    let es_dups: Vec<u64> = es
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(s, _)| *s)
        .collect();
    let mut union = ls_first.clone();
    for (seq, c) in ls_second.iter().chain(es.iter()) {
        *union.entry(*seq).or_insert(0) += c;
    }
    let both = es
        .keys()
        .filter(|s| ls_first.contains_key(s) || ls_second.contains_key(s))
        .count();
    println!(
        "failover counts: logstash before={} after={} opensearch={} (at failback {at_failback}) \
         in both={both} union distinct={} switches={switches} wall={:.1}s",
        ls_first.values().sum::<u32>(),
        ls_second.values().sum::<u32>(),
        es_docs.len(),
        union.len(),
        wall.as_secs_f64()
    );
    assert!(!ls_second.is_empty(), "traffic returned to Logstash");
    assert!(!es.is_empty(), "events landed in OpenSearch");
    assert!(es_dups.is_empty(), "seqs twice in OpenSearch: {es_dups:?}");
    let dups = assert_all_delivered(&union, N);
    println!("failover counts: duplicates across the union={dups}");
}

#[test]
fn a_stalled_logstash_is_recalled_after_the_stall_and_failback_off_stays() {
    let Some(peer) = opensearch::peer() else {
        return;
    };
    let admin = opensearch::Admin::new(peer);
    const M: u64 = 2_000;
    let index = "skidder-failover-stall";
    let dir = tempfile::tempdir().unwrap();
    // Accepts windows and never acknowledges them; the ACK timeout (30 s) is far away, so
    // only the failover's stall detection and recall can move the events.
    let server = Server::start(&["--raw", "--fault", "never-ack"]);
    let yaml = yaml(&server.addr, &peer.url)
        .replace(&format!("count: {N}"), &format!("count: {M}"))
        .replace("eps: 2000", "eps: 0")
        .replace("timeout: 2s", "timeout: 30s")
        .replace(&format!("index: {INDEX}"), &format!("index: {index}"))
        + "  failback: false\n";
    let path = common::config(dir.path(), &yaml);
    let (mut child, lines) = common::spawn_run(dir.path(), &path);
    let status = common::wait_exit(&mut child.0, Duration::from_secs(60));
    let stderr = lines.rest();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let totals = common::totals(&stderr);
    assert_eq!(
        (totals["acked"].as_str(), totals["dropped"].as_str()),
        (M.to_string().as_str(), "0"),
        "{stderr}"
    );
    assert_eq!(totals["output_switches"], "1", "no failback: {stderr}");
    assert!(
        stderr.lines().any(|l| l.contains("WARN")
            && l.contains("switching to Elasticsearch")
            && l.contains("no Logstash host acknowledged a batch")),
        "the stall is the reason:\n{stderr}"
    );
    assert!(stderr.contains("failback is off"), "{stderr}");
    assert!(
        !stderr.contains("no ACK from"),
        "recalled, not timed out:\n{stderr}"
    );
    let seqs = admin.field_values(index, "seq");
    let mut m: BTreeMap<u64, u32> = BTreeMap::new();
    for s in seqs {
        *m.entry(s).or_insert(0) += 1;
    }
    println!(
        "stall counts: opensearch={} distinct={}",
        m.values().sum::<u32>(),
        m.len()
    );
    assert_eq!(assert_all_delivered(&m, M), 0, "exactly once in OpenSearch");
}

/// The disk-queue variant's index.
const DISK_INDEX: &str = "skidder-failover-disk";
/// `output.logstash.bulk_max_size` and `output.elasticsearch.bulk_max_size` of that run.
const LS_BULK: u64 = 200;
const ES_BULK: u64 = 500;
/// `queue.disk.read_ahead` (its default).
const READ_AHEAD: u64 = 512;

/// A generator tagged `run: <run>` into the failover pair through a disk queue in `queue`.
fn disk_yaml(
    queue: &Path,
    logstash: &str,
    elasticsearch: &str,
    run: u64,
    count: u64,
    eps: u64,
) -> String {
    format!(
        "skidder:
  inputs:
    - type: generator
      count: {count}
      eps: {eps}
      fields: {{run: {run}}}
      fields_under_root: true
queue.disk:
  path: {queue}
  segment_size: 1MB
  read_ahead: {READ_AHEAD}
  write_ahead: 256
output.logstash:
  hosts: [\"{logstash}\"]
  bulk_max_size: {LS_BULK}
  timeout: 2s
  backoff.init: 100ms
  backoff.max: 500ms
output.elasticsearch:
  hosts: [\"{elasticsearch}\"]
  index: {DISK_INDEX}
  bulk_max_size: {ES_BULK}
  backoff.init: 50ms
  backoff.max: 200ms
output.failover:
  enabled: true
  after: {}ms
  probe_interval: 500ms
",
        AFTER.as_millis(),
        queue = queue.display()
    )
}

/// `(run, seq)` → documents in `index` (at most 10 000 documents).
fn es_delivered(admin: &opensearch::Admin, index: &str) -> BTreeMap<(u64, u64), u32> {
    admin.count(index);
    let (status, reply) = admin.call(
        reqwest::Method::POST,
        &format!("{index}/_search"),
        Some(serde_json::json!({"size": 10_000, "_source": ["run", "seq"]})),
    );
    assert_eq!(status, 200, "search {index}: {reply}");
    let mut m = BTreeMap::new();
    for h in reply["hits"]["hits"].as_array().unwrap() {
        let key = (
            h["_source"]["run"].as_u64().unwrap(),
            h["_source"]["seq"].as_u64().unwrap(),
        );
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

/// The largest `seq` of `run` in `m`.
fn max_seq(m: &BTreeMap<(u64, u64), u32>, run: u64) -> u64 {
    m.keys()
        .filter(|k| k.0 == run)
        .map(|k| k.1)
        .max()
        .unwrap_or(0)
}

#[test]
fn with_the_disk_queue_a_sigkill_during_failover_loses_nothing() {
    let Some(peer) = opensearch::peer() else {
        return;
    };
    let admin = opensearch::Admin::new(peer);
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("q");
    let started = Instant::now();

    // Run 0: Logstash up, then down; killed while batches go to OpenSearch.
    let first = Server::start(&[]);
    let addr = first.addr.clone();
    let path = common::config(dir.path(), &disk_yaml(&queue, &addr, &peer.url, 0, 0, 1000));
    let (mut child, mut lines) = common::spawn_run(dir.path(), &path);
    first.wait_accepted(500, STEP);
    let first_out = dir.path().join("first.ndjson");
    std::fs::hard_link(&first.out, &first_out).unwrap();
    first.stop();
    lines.wait_for("switching to Elasticsearch", STEP);
    let es_before = common::poll(STEP, || {
        let n = admin.count(DISK_INDEX);
        (n >= 300).then_some(n)
    })
    .unwrap_or_else(|| {
        panic!("fewer than 300 documents in OpenSearch within {STEP:?} of the failover")
    });
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let switches_0 = lines
        .seen
        .iter()
        .filter(|l| l.contains("switching to Elasticsearch"))
        .count() as u64;
    // What run 0 got the queue to accept: delivered before the kill, or in its segments.
    let es_at_kill = es_delivered(&admin, DISK_INDEX);
    let ls_first = diskq::delivered(&first_out);
    let accepted_0 = max_seq(&ls_first, 0)
        .max(max_seq(&es_at_kill, 0))
        .max(diskq::on_disk(&queue).get(&0).copied().unwrap_or(0));
    assert!(
        accepted_0 > max_seq(&ls_first, 0),
        "the kill came after the failover, with events past Logstash's"
    );

    // Run 1 on the same queue, Logstash still down: the backlog and new events fail over
    // again; Logstash returns on the same port and traffic goes back.
    const COUNT_1: u64 = 4000;
    let path = common::config(
        dir.path(),
        &disk_yaml(&queue, &addr, &peer.url, 1, COUNT_1, 500),
    );
    let (mut child, mut lines) = common::spawn_run(dir.path(), &path);
    lines.wait_for("switching to Elasticsearch", STEP);
    let second = Server::start_on(&addr, &[]);
    lines.wait_for("switching back to Logstash", STEP);
    let status = common::wait_exit(&mut child.0, Duration::from_secs(60));
    let stderr = lines.rest();
    let wall = started.elapsed();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let totals = common::totals(&stderr);
    assert_eq!(totals["unacked"], "0", "{stderr}");
    let switches_1: u64 = totals["output_switches"].parse().unwrap();

    let ls_second = diskq::delivered(&second.out);
    let es = es_delivered(&admin, DISK_INDEX);
    let mut union = ls_first.clone();
    for (k, c) in ls_second.iter().chain(es.iter()) {
        *union.entry(*k).or_insert(0) += c;
    }
    let mut duplicates = 0u64;
    for (run, max) in [(0, accepted_0), (1, COUNT_1)] {
        for seq in 1..=max {
            match union.get(&(run, seq)) {
                Some(&n) => duplicates += u64::from(n - 1),
                None => panic!("run {run}: seq {seq} (of 1..={max} accepted) never arrived"),
            }
        }
    }
    // docs/disk-queue.md §1: a crash re-sends at most `window` events; a switch re-sends at
    // most what the left output had out, which the same window bounds.
    // Plus the rest of a packed window whose first event was within it (disk-queue.md §11).
    let window = READ_AHEAD + ES_BULK.max(LS_BULK) + LS_BULK - 1;
    let bound = (1 + switches_0 + switches_1) * window;
    println!(
        "failover with disk queue: run 0 accepted {accepted_0} (logstash {}, opensearch {} at the kill, \
         {es_before} when it was decided); run 1 {COUNT_1}; logstash after {}; opensearch {}; \
         switches {switches_0}+{switches_1}; duplicates {duplicates} (bound {bound}); wall {:.1}s",
        ls_first.values().sum::<u32>(),
        es_at_kill.values().sum::<u32>(),
        ls_second.values().sum::<u32>(),
        es.values().sum::<u32>(),
        wall.as_secs_f64()
    );
    assert!(!ls_second.is_empty(), "traffic returned to Logstash");
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, bound {bound} (1 kill, {} switches)",
        switches_0 + switches_1
    );
    assert!(
        diskq::segments(&queue).len() <= 1,
        "acknowledged segments are deleted"
    );
}
