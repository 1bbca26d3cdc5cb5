//! Hostile and broken clients against the lumberjack input, over raw sockets: each is
//! refused with one log line naming its address, memory stays bounded, and a well-behaved
//! go-lumber client connected at the same time keeps being served.

mod common;
#[path = "common/lumberjack_peers.rs"]
mod peers;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use peers::{golumber_client, run_peer, Receiver};
use skidder_protocol::frame::{encode_compressed, encode_json, encode_window};
use skidder_protocol::{Compressor, Flate2Compressor, Version};

const IDLE: usize = 500;

fn well_behaved(addr: &str, seq_start: u64) {
    let start = seq_start.to_string();
    let (out, json) = run_peer(
        golumber_client(&[
            "--addr",
            addr,
            "--mode",
            "async",
            "--count",
            "20000",
            "--seq-start",
            &start,
            "--timeout",
            "20s",
        ]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success() && json["acked"] == 20000,
        "well-behaved client: {json} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `bytes`, then reads until the server closes; returns our local port.
fn hostile(addr: &str, bytes: &[u8], half_close: bool) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    let port = s.local_addr().unwrap().port();
    s.write_all(bytes).unwrap();
    if half_close {
        s.shutdown(Shutdown::Write).unwrap();
    }
    expect_closed(&mut s, &format!("hostile connection from port {port}"));
    port
}

/// Bounded wait for the server to close `s` (EOF or reset), ignoring ACK bytes.
fn expect_closed(s: &mut TcpStream, what: &str) {
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("{what}: not closed by the receiver within 15s: {e}"),
        }
    }
}

fn window(n: u32) -> Vec<u8> {
    let mut w = Vec::new();
    encode_window(Version::V2, n, &mut w);
    w
}

fn json(seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_json(seq, payload, &mut out).unwrap();
    out
}

fn lines_with<'a>(stderr: &'a str, needle: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn hostile_clients_are_refused_alone_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(
        dir.path(),
        "skidder:\n  inputs:\n    - type: lumberjack\n      host: \"127.0.0.1:0\"\n      \
         client_inactivity_timeout: 3s\n      max_decompressed_size: 16MiB\n\
         queue:\n  mem:\n    events: 8192\n    flush:\n      min_events: 0\n      timeout: 0s\n\
         output:\n  discard: {}\n\
         logging:\n  level: info\n  metrics:\n    enabled: false\n",
    );
    let mut cmd = common::bin();
    cmd.current_dir(dir.path())
        .args(["-c", cfg.to_str().unwrap(), "-e"]);
    let rx = Receiver::start(cmd);
    let addr = rx.addr.clone();

    // 500 connections opened and left idle, and one that sends half a window and stalls.
    let mut idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let idle_ports: Vec<u16> = idle
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect();
    let mut stalled = TcpStream::connect(&addr).unwrap();
    let stalled_port = stalled.local_addr().unwrap().port();
    let mut half = window(10);
    half.extend(json(1, br#"{"seq":1}"#));
    stalled.write_all(&half).unwrap();

    // Served while all of those are open.
    well_behaved(&addr, 1);

    let mut refused = Vec::new();
    // Truncated: the second frame is cut off, then the client closes.
    let mut bytes = window(2);
    bytes.extend(json(1, br#"{"seq":1}"#));
    let second = json(2, br#"{"seq":2,"message":"cut here"}"#);
    bytes.extend(&second[..second.len() - 8]);
    refused.push((
        "truncated frame",
        hostile(&addr, &bytes, true),
        "middle of a window",
    ));
    // A window of 4 billion events.
    refused.push((
        "window of 4e9",
        hostile(&addr, &window(4_000_000_000), false),
        "exceeds the limit",
    ));
    // A zlib bomb: 64 MiB of zeros in ~64 KiB, refused at the 16 MiB inflate limit.
    let mut z = Vec::new();
    Flate2Compressor::new(9)
        .compress_zlib(&vec![0u8; 64 << 20], &mut z)
        .unwrap();
    let mut bomb = window(1);
    encode_compressed(Version::V2, &z, &mut bomb).unwrap();
    refused.push((
        "zlib bomb",
        hostile(&addr, &bomb, false),
        "inflates to more than",
    ));
    // JSON that is not an object, and an object that is not valid JSON.
    let mut arr = window(1);
    arr.extend(json(1, b"[1,2,3]"));
    refused.push(("JSON array", hostile(&addr, &arr, false), "not an object"));
    let mut broken = window(2);
    broken.extend(json(1, br#"{"seq":1}"#));
    broken.extend(json(2, br#"{"seq":2,"message":}"#));
    refused.push((
        "invalid JSON",
        hostile(&addr, &broken, false),
        "is not a JSON object",
    ));
    // Not Lumberjack at all.
    refused.push((
        "HTTP request",
        hostile(&addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false),
        "unknown protocol version",
    ));

    // Still served after all of that.
    well_behaved(&addr, 20001);

    // The idle and the stalled connections end by client_inactivity_timeout.
    for s in &mut idle {
        expect_closed(s, "idle connection");
    }
    expect_closed(&mut stalled, "stalled connection");

    let peak_kib = rx.peak_rss_kib();
    eprintln!("receiver peak RSS: {peak_kib} KiB ({IDLE} idle connections, 16 MiB inflate limit)");
    assert!(
        peak_kib < 160 * 1024,
        "peak RSS {peak_kib} KiB: memory must stay bounded by the limits"
    );

    rx.terminate();
    let (code, stderr) = rx.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{stderr}");
    for (what, port, reason) in &refused {
        let peer = format!("peer=127.0.0.1:{port}");
        let lines = lines_with(&stderr, &peer);
        assert_eq!(lines.len(), 1, "{what}: one log line for {peer}:\n{stderr}");
        assert!(
            lines[0].contains("WARN") && lines[0].contains(reason),
            "{what}: expected a WARN with {reason:?}: {}",
            lines[0]
        );
    }
    for port in idle_ports.iter().chain([&stalled_port]) {
        let lines = lines_with(&stderr, &format!("peer=127.0.0.1:{port}"));
        assert_eq!(lines.len(), 1, "idle port {port}:\n{lines:?}");
        assert!(
            lines[0].contains("client_inactivity_timeout"),
            "{}",
            lines[0]
        );
    }
}

#[test]
fn max_connections_refuses_the_extra_client_and_frees_slots() {
    let mut rx = Receiver::receive(&[
        "--out",
        "discard",
        "--max-connections",
        "2",
        "--log-level",
        "debug",
    ]);
    let addr = rx.addr.clone();
    let a = TcpStream::connect(&addr).unwrap();
    let b = TcpStream::connect(&addr).unwrap();
    let mut third = TcpStream::connect(&addr).unwrap();
    expect_closed(&mut third, "connection over max_connections");
    rx.wait_for("max_connections reached", Duration::from_secs(10));
    drop((a, b));
    rx.wait_for("connection closed by the client", Duration::from_secs(10));
    rx.wait_for("connection closed by the client", Duration::from_secs(10));
    well_behaved(&addr, 1);
    rx.terminate();
    let (code, stderr) = rx.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        lines_with(&stderr, "max_connections reached").len(),
        1,
        "{stderr}"
    );
}
