//! skidder's Logstash output against skidder's own receiver (issue 6):
//! * generator → output.logstash (mutual TLS) → `skidder receive --require-client-cert
//!   --expect N --out FILE` in another process: every `seq` exactly once in FILE;
//! * a relay: go-lumber client → skidder (lumberjack input → output.logstash, mutual TLS)
//!   → go-lumber server: every event once, and the client's ACKs are end-to-end (when the
//!   client has its last ACK, the server already holds every event).

mod common;
#[path = "common/golumber.rs"]
mod golumber;
#[path = "common/lumberjack_peers.rs"]
mod peers;
#[path = "credentials_pki/mod.rs"]
mod pki;

use std::process::Stdio;
use std::time::Duration;

use golumber::{assert_all_delivered, Server};
use peers::{golumber_client, receive_stats, run_peer, Receiver};
use pki::MutualTlsFiles as Pki;

const LIMIT: Duration = Duration::from_secs(60);

fn pki() -> Pki {
    Pki::new("logstash-receiver-test-ca", "shipper")
}

/// `output.logstash` to `host` with the test PKI's client certificate.
fn logstash_output(host: &str, p: &Pki) -> String {
    format!(
        "output.logstash:\n  hosts: [\"{host}\"]\n  timeout: 10s\n  max_retries: -1\n\
         \x20 backoff:\n    init: 100ms\n    max: 500ms\n\
         \x20 ssl:\n    certificate_authorities: [\"{}\"]\n    certificate: \"{}\"\n    key: \"{}\"\n",
        p.ca, p.client_cert, p.client_key
    )
}

#[test]
fn generator_to_skidder_receive_over_mutual_tls_delivers_every_seq_once() {
    const N: u64 = 10_000;
    let p = pki();
    let out = p.files.path("received.ndjson");
    let out_s = out.display().to_string();
    let n = N.to_string();
    let rx = Receiver::receive(&[
        "--out",
        &out_s,
        "--tls-cert",
        &p.server_cert,
        "--tls-key",
        &p.server_key,
        "--tls-ca",
        &p.ca,
        "--require-client-cert",
        "--expect",
        &n,
        "--deadline",
        "60s",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "skidder.inputs:\n  - type: generator\n    count: {N}\n    size: 300\n\
         queue.mem:\n  events: 4096\n  flush:\n    min_events: 512\n    timeout: 10ms\n\
         output.logstash.bulk_max_size: 512\n{}",
        logstash_output(&rx.addr, &p)
    );
    let path = common::config(dir.path(), &yaml);
    let child = common::bin()
        .current_dir(dir.path())
        .args(["run", "-e", "-c"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = common::wait_output(child, LIMIT);
    assert_eq!(run.code(), Some(0), "sender:\n{}", run.stderr);
    let t = run.totals();
    assert_eq!(
        (t["acked"].as_str(), t["retried"].as_str()),
        ("10000", "0"),
        "{t:?}"
    );

    let (code, stderr) = rx.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "receiver:\n{stderr}");
    let stats = receive_stats(&stderr);
    assert_eq!(
        (stats["distinct"].as_u64(), stats["duplicates"].as_u64()),
        (Some(N), Some(0)),
        "{stats}"
    );
    let seqs = golumber::seqs(&out);
    assert_eq!(seqs.len() as u64, N, "distinct seqs in {out_s}");
    assert_eq!(assert_all_delivered(&seqs, N), 0, "no seq twice in {out_s}");
    drop(p.files);
}

#[test]
fn relay_golumber_client_through_skidder_to_golumber_server_acks_end_to_end() {
    const N: u64 = 10_000;
    let p = pki();
    let server = Server::start_mutual_tls(&p.server_cert, &p.server_key, &p.ca);
    let dir = tempfile::tempdir().unwrap();
    // A relay ACKs a window only once output.logstash has its ACK; hand windows to the
    // output at once (flush 0) so no ACK waits for a flush timer.
    let yaml = format!(
        "skidder.inputs:\n  - type: lumberjack\n    host: \"127.0.0.1:0\"\n\
         queue.mem:\n  events: 8192\n  flush:\n    min_events: 0\n    timeout: 0s\n{}",
        logstash_output(&server.addr, &p)
    );
    let path = common::config(dir.path(), &yaml);
    let mut cmd = common::bin();
    cmd.current_dir(dir.path())
        .args(["run", "-e", "-c"])
        .arg(&path);
    let relay = Receiver::start(cmd);

    let n = N.to_string();
    let (out, json) = run_peer(
        golumber_client(&[
            "--addr",
            &relay.addr,
            "--mode",
            "async",
            "--compression",
            "3",
            "--batch",
            "500",
            "--pipelining",
            "2",
            "--count",
            &n,
        ]),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "golumber client: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json["acked"], N, "{json}");
    // End-to-end: the client holds every ACK, so the server must already have every event
    // (it writes --out before it ACKs); no waiting here.
    let at_last_ack = server.seqs();
    assert_eq!(
        at_last_ack.len() as u64,
        N,
        "events ACKed to the client but not yet at the server"
    );

    relay.terminate();
    let (code, stderr) = relay.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "relay:\n{stderr}");
    let t = common::totals(&stderr);
    assert_eq!(
        (t["acked"].as_str(), t["unacked"].as_str()),
        ("10000", "0"),
        "{t:?}"
    );
    let seqs = server.seqs();
    assert_eq!(
        assert_all_delivered(&seqs, N),
        0,
        "every event once at the server"
    );
    let stats = server.stop();
    assert_eq!(stats["duplicates"], 0, "{stats}");
    drop(p.files);
}
