//! The lumberjack input against third-party clients: Elastic's go-lumber (sync/async,
//! compression on/off, mutual TLS), npm `lumberjack-client` (v2) and `lumberjack-protocol`
//! (v1, TLS only) and PyPI pylogbeat (several windows on one connection). Every event
//! must arrive once and be ACKed; `skidder receive --expect` proves the count.

mod common;
#[path = "common/lumberjack_peers.rs"]
mod peers;
#[path = "credentials_pki/mod.rs"]
mod pki;

use std::time::Duration;

use peers::{golumber_client, node_send, pylogbeat_send, receive_stats, run_peer, Receiver};
use pki::MutualTlsFiles as Pki;

const PEER_LIMIT: Duration = Duration::from_secs(60);
const EXIT_LIMIT: Duration = Duration::from_secs(30);

fn assert_peer_ok(name: &str, out: &std::process::Output, json: &serde_json::Value, n: u64) {
    assert!(
        out.status.success(),
        "{name}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json["acked"], n, "{name}: {json}");
}

#[test]
fn golumber_sync_and_async_clients_with_and_without_compression() {
    // seq ranges do not overlap, so distinct = sum and duplicates = 0 prove once-only.
    let cases: [(&str, &str, &str, &str, u64); 4] = [
        ("sync z0", "sync", "0", "500", 3000),
        ("sync z3", "sync", "3", "1000", 4000),
        ("async z3", "async", "3", "2048", 20000),
        ("async z0 pipelining 4", "async", "0", "100", 5000),
    ];
    let total: u64 = cases.iter().map(|c| c.4).sum();
    let expect = total.to_string();
    let rx = Receiver::receive(&["--out", "discard", "--expect", &expect, "--deadline", "90s"]);
    let mut seq_start = 1u64;
    for (name, mode, z, batch, count) in cases {
        let (count_s, start_s) = (count.to_string(), seq_start.to_string());
        let args = [
            "--addr",
            &rx.addr,
            "--mode",
            mode,
            "--compression",
            z,
            "--batch",
            batch,
            "--pipelining",
            "4",
            "--count",
            &count_s,
            "--seq-start",
            &start_s,
        ];
        let (out, json) = run_peer(golumber_client(&args), PEER_LIMIT);
        assert_peer_ok(name, &out, &json, count);
        seq_start += count;
    }
    let (code, stderr) = rx.finish(EXIT_LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
    let stats = receive_stats(&stderr);
    assert_eq!(stats["events"], total, "{stats}");
    assert_eq!(stats["distinct"], total, "{stats}");
    assert_eq!(stats["duplicates"], 0, "{stats}");
    assert!(
        !stderr.contains(" WARN "),
        "no connection may fail:\n{stderr}"
    );
}

fn pki() -> Pki {
    Pki::new("receiver-test-ca", "client")
}

#[test]
fn golumber_mutual_tls_and_a_client_without_certificate_is_refused() {
    let p = pki();
    let mut rx = Receiver::receive(&[
        "--out",
        "discard",
        "--tls-cert",
        &p.server_cert,
        "--tls-key",
        &p.server_key,
        "--tls-ca",
        &p.ca,
        "--require-client-cert",
        "--expect",
        "6000",
        "--deadline",
        "90s",
    ]);
    // Without a client certificate: refused during the handshake, logged once.
    let (out, _) = run_peer(
        golumber_client(&[
            "--addr",
            &rx.addr,
            "--tls-ca",
            &p.ca,
            "--count",
            "10",
            "--timeout",
            "10s",
        ]),
        PEER_LIMIT,
    );
    assert!(
        !out.status.success(),
        "a client without certificate must be refused"
    );
    rx.wait_for("TLS handshake failed", Duration::from_secs(10));
    for (mode, z) in [("async", "3"), ("sync", "0")] {
        let start = if mode == "async" { "1" } else { "3001" };
        let (out, json) = run_peer(
            golumber_client(&[
                "--addr",
                &rx.addr,
                "--mode",
                mode,
                "--compression",
                z,
                "--tls-ca",
                &p.ca,
                "--tls-cert",
                &p.client_cert,
                "--tls-key",
                &p.client_key,
                "--count",
                "3000",
                "--seq-start",
                start,
            ]),
            PEER_LIMIT,
        );
        assert_peer_ok(mode, &out, &json, 3000);
    }
    let (code, stderr) = rx.finish(EXIT_LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
    let stats = receive_stats(&stderr);
    assert_eq!(
        (stats["distinct"].as_u64(), stats["duplicates"].as_u64()),
        (Some(6000), Some(0))
    );
    let refusals = stderr
        .lines()
        .filter(|l| l.contains("TLS handshake failed"))
        .count();
    assert_eq!(
        refusals, 1,
        "one log line for the refused client:\n{stderr}"
    );
    drop(p.files);
}

#[test]
fn events_pass_through_byte_for_byte_into_the_file_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("beats.ndjson");
    // What Beats sends: @metadata, @timestamp, host, agent; odd spacing, escapes, unicode.
    let lines = [
        r#"{"@timestamp":"2024-05-01T10:00:00.123Z","@metadata":{"beat":"filebeat","type":"_doc","version":"8.13.0","pipeline":"p"},"host":{"name":"web-1"},"agent":{"type":"filebeat","id":"a1"},"message":"GET /x?a=1&b=<2> \u2028 é","seq":1}"#,
        r#"{ "seq" : 2 , "message" : "spaces \"quoted\" \\ back", "tags":["a","b"], "n": 1.5e3 }"#,
        r#"{"seq":3,"nested":{"seq":99,"deep":[1,{"x":null}]},"emoji":"🦀"}"#,
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out_path = dir.path().join("received.ndjson");
    let out_s = out_path.display().to_string();
    let rx = Receiver::receive(&["--out", &out_s, "--expect", "3", "--deadline", "60s"]);
    let input_s = input.display().to_string();
    let (out, json) = run_peer(
        golumber_client(&["--addr", &rx.addr, "--file", &input_s, "--count", "3"]),
        PEER_LIMIT,
    );
    assert_peer_ok("golumber --file", &out, &json, 3);
    let (code, stderr) = rx.finish(EXIT_LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
    let written = std::fs::read_to_string(&out_path).unwrap();
    let got: Vec<&str> = written.lines().collect();
    assert_eq!(got, lines, "events must be written exactly as sent");
}

#[test]
fn npm_lumberjack_client_v2_plain_and_mutual_tls() {
    let p = pki();
    let rx = Receiver::receive(&["--out", "discard", "--stats"]);
    let port = rx.addr.rsplit(':').next().unwrap().to_string();
    let (out, json) = run_peer(
        node_send(&["--lib", "client", "--port", &port, "--count", "300"]),
        PEER_LIMIT,
    );
    assert_peer_ok("lumberjack-client per-event", &out, &json, 300);
    let (out, json) = run_peer(
        node_send(&[
            "--lib",
            "client",
            "--port",
            &port,
            "--count",
            "300",
            "--window-mode",
            "queued",
        ]),
        PEER_LIMIT,
    );
    assert_peer_ok("lumberjack-client queued", &out, &json, 300);
    rx.terminate();
    let (code, stderr) = rx.finish(EXIT_LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
    // Both runs number their events 1..300: the second run's are duplicates by seq.
    let stats = receive_stats(&stderr);
    assert_eq!(
        (
            stats["events"].as_u64(),
            stats["distinct"].as_u64(),
            stats["duplicates"].as_u64()
        ),
        (Some(600), Some(300), Some(300)),
        "{stats}"
    );

    let rx = Receiver::receive(&[
        "--out",
        "discard",
        "--tls-cert",
        &p.server_cert,
        "--tls-key",
        &p.server_key,
        "--tls-ca",
        &p.ca,
        "--require-client-cert",
        "--expect",
        "200",
        "--deadline",
        "60s",
    ]);
    let port = rx.addr.rsplit(':').next().unwrap().to_string();
    let (out, json) = run_peer(
        node_send(&[
            "--lib",
            "client",
            "--port",
            &port,
            "--count",
            "200",
            "--ca",
            &p.ca,
            "--cert",
            &p.client_cert,
            "--key",
            &p.client_key,
            "--window-mode",
            "queued",
        ]),
        PEER_LIMIT,
    );
    assert_peer_ok("lumberjack-client mTLS", &out, &json, 200);
    let (code, stderr) = rx.finish(EXIT_LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
}

/// npm `lumberjack-protocol` speaks v1: one `1W` per *connection*, then `1D` frames numbered
/// on. Everything that fits in that first window arrives and is ACKed; data frames after the
/// announced window are refused (the protocol crate accepts data only inside a window),
/// with one log line — the same limit the go-lumber server has. A TLS client closing
/// without close_notify is an ordinary end (no WARN).
#[test]
fn npm_lumberjack_protocol_v1_over_tls() {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("v1.ndjson");
    let out_s = out_path.display().to_string();
    let mut rx = Receiver::receive(&[
        "--out",
        &out_s,
        "--tls-cert",
        &p.server_cert,
        "--tls-key",
        &p.server_key,
        "--stats",
    ]);
    let port = rx.addr.rsplit(':').next().unwrap().to_string();
    let (out, json) = run_peer(
        node_send(&[
            "--lib", "protocol", "--port", &port, "--count", "1000", "--window", "1000", "--ca",
            &p.ca,
        ]),
        PEER_LIMIT,
    );
    assert_peer_ok("lumberjack-protocol v1", &out, &json, 1000);
    // More events than the one window: the client goes on with 1D frames outside a window.
    let (out, _) = run_peer(
        node_send(&[
            "--lib",
            "protocol",
            "--port",
            &port,
            "--count",
            "20",
            "--window",
            "10",
            "--ca",
            &p.ca,
            "--timeout-ms",
            "5000",
        ]),
        PEER_LIMIT,
    );
    assert!(
        !out.status.success(),
        "v1 data after the connection's only window is refused"
    );
    rx.wait_for("outside any window", Duration::from_secs(10));
    rx.terminate();
    let (_, stderr) = rx.finish(EXIT_LIMIT);
    let outside = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("outside any window"))
        .count();
    assert_eq!(outside, 1, "{stderr}");
    assert_eq!(
        stderr.matches(" WARN ").count(),
        1,
        "only the refused connection warns:\n{stderr}"
    );
    let written = std::fs::read_to_string(&out_path).unwrap();
    let events: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // v1 pairs become a JSON object of strings, `line` also as `message`, with @timestamp.
    let first = &events[0];
    assert!(first["@timestamp"].is_string(), "{first}");
    assert_eq!(first["line"], "event 1 from node", "{first}");
    assert_eq!(first["message"], "event 1 from node", "{first}");
    // The first run's 1000 events each once and in order; then at most the ten the second
    // run's window announced (seq 1..=10 again), nothing after the refusal.
    assert!(events.len() >= 1000, "{} events written", events.len());
    for (i, e) in events[..1000].iter().enumerate() {
        assert_eq!(e["seq"], (i + 1).to_string(), "event {i}: {e}");
    }
    let second: Vec<String> = events[1000..]
        .iter()
        .map(|e| e["seq"].as_str().unwrap_or_default().to_string())
        .collect();
    let announced: Vec<String> = (1..=second.len()).map(|n| n.to_string()).collect();
    assert!(
        second.len() <= 10 && second == announced,
        "only the second run's announced window: {second:?}"
    );
    // The --stats line counts what was written.
    let stats = receive_stats(&stderr);
    assert_eq!(stats["events"], events.len(), "{stats}");
}

/// pylogbeat numbers events on across windows of one connection and waits for the highest
/// seq (Logstash's ACK); go-lumber's count-ACK cannot satisfy it, ours must.
#[test]
fn pylogbeat_several_windows_on_one_connection_and_tls() {
    let p = pki();
    let rx = Receiver::receive(&["--out", "discard", "--expect", "3000", "--deadline", "60s"]);
    let port = rx.addr.rsplit(':').next().unwrap().to_string();
    let (out, json) = run_peer(
        pylogbeat_send(&[
            "--port",
            &port,
            "--count",
            "3000",
            "--batch",
            "1000",
            "--timeout",
            "20",
        ]),
        PEER_LIMIT,
    );
    assert_peer_ok("pylogbeat 3 windows, one connection", &out, &json, 3000);
    assert_eq!(json["windows"], 3, "{json}");
    let (code, stderr) = rx.finish(EXIT_LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
    let stats = receive_stats(&stderr);
    assert_eq!(
        (stats["distinct"].as_u64(), stats["duplicates"].as_u64()),
        (Some(3000), Some(0))
    );

    let rx = Receiver::receive(&[
        "--out",
        "discard",
        "--tls-cert",
        &p.server_cert,
        "--tls-key",
        &p.server_key,
        "--tls-ca",
        &p.ca,
        "--require-client-cert",
        "--expect",
        "2000",
        "--deadline",
        "60s",
    ]);
    let port = rx.addr.rsplit(':').next().unwrap().to_string();
    let (out, json) = run_peer(
        pylogbeat_send(&[
            "--port",
            &port,
            "--count",
            "2000",
            "--batch",
            "500",
            "--ca",
            &p.ca,
            "--cert",
            &p.client_cert,
            "--key",
            &p.client_key,
            "--timeout",
            "20",
        ]),
        PEER_LIMIT,
    );
    assert_peer_ok("pylogbeat mTLS", &out, &json, 2000);
    let (code, stderr) = rx.finish(EXIT_LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
}

/// Keep-alives are `2A 0` on every connection, as Logstash writes them (BeatsHandler). npm
/// `lumberjack-protocol` insists on version `1` in every ACK, so it gives up ("Version
/// should be 1, is 2") when a window waits more than ~5 s for the output — against
/// Logstash too. Windows ACKed within 5 s (the test above) work.
#[test]
fn npm_lumberjack_protocol_v1_rejects_logstash_style_keepalives() {
    let p = pki();
    let rx = Receiver::receive(&[
        "--out",
        "discard",
        "--discard-delay",
        "8s",
        "--tls-cert",
        &p.server_cert,
        "--tls-key",
        &p.server_key,
    ]);
    let port = rx.addr.rsplit(':').next().unwrap().to_string();
    let (out, json) = run_peer(
        node_send(&[
            "--lib",
            "protocol",
            "--port",
            &port,
            "--count",
            "10",
            "--window",
            "10",
            "--ca",
            &p.ca,
            "--timeout-ms",
            "20000",
        ]),
        PEER_LIMIT,
    );
    assert!(!out.status.success(), "{json}");
    let error = json["error"].as_str().unwrap_or_default();
    assert!(error.contains("Version should be 1, is 2"), "{json}");
}
