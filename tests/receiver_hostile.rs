//! Hostile and broken clients against the lumberjack input, over raw sockets: each is
//! refused with one log line naming its address and the cause, memory stays bounded
//! (per connection, and for inflated data across all of them), and a well-behaved
//! go-lumber client connected at the same time keeps being served.

mod common;
#[path = "common/lumberjack_peers.rs"]
mod peers;
#[path = "credentials_pki/mod.rs"]
mod pki;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peers::{golumber_client, run_peer, Receiver};
use skidder_protocol::frame::{encode_compressed, encode_json, encode_window};
use skidder_protocol::Version;

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

/// Content of a hand-made zlib stream: bytes as given, or `n` copies of one byte.
enum Piece<'a> {
    Bytes(&'a [u8]),
    Run(u8, usize),
}

/// A zlib stream (RFC 1950/1951) of `pieces`, written directly: one fixed-Huffman block
/// where a run is one literal and then matches of 258 bytes at distance 1. Compressing
/// hundreds of MiB with flate2 takes close to a minute in a debug build; this takes
/// milliseconds and inflates to the same bytes.
fn zlib_of(pieces: &[Piece<'_>]) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        /// `len` bits of `value`, least significant first (header fields).
        fn lsb(&mut self, value: u64, len: u32) {
            self.acc |= value << self.n;
            self.n += len;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// A Huffman code, most significant bit first.
        fn code(&mut self, code: u64, len: u32) {
            for i in (0..len).rev() {
                self.lsb((code >> i) & 1, 1);
            }
        }
        fn literal(&mut self, b: u8) {
            if b < 144 {
                self.code(0x30 + u64::from(b), 8);
            } else {
                self.code(0x190 + u64::from(b - 144), 9);
            }
        }
    }
    const MOD: u64 = 65521;
    let (mut a, mut b) = (1u64, 0u64);
    let mut bits = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        n: 0,
    };
    bits.lsb(1, 1); // BFINAL
    bits.lsb(1, 2); // BTYPE 01: fixed Huffman
    for piece in pieces {
        match *piece {
            Piece::Bytes(bytes) => {
                for &byte in bytes {
                    bits.literal(byte);
                    a = (a + u64::from(byte)) % MOD;
                    b = (b + a) % MOD;
                }
            }
            Piece::Run(byte, n) => {
                bits.literal(byte);
                let (matches, rest) = ((n - 1) / 258, (n - 1) % 258);
                for _ in 0..matches {
                    bits.code(0xc5, 8); // length 258 (code 285)
                    bits.code(0, 5); // distance 1 (code 0)
                }
                for _ in 0..rest {
                    bits.literal(byte);
                }
                // Adler-32 over the run in closed form.
                let (n, c) = (n as u64, u64::from(byte));
                b = (b + n % MOD * a + c * ((n * (n + 1) / 2) % MOD)) % MOD;
                a = (a + n % MOD * c) % MOD;
            }
        }
    }
    bits.code(0, 7); // end of block (code 256)
    if bits.n > 0 {
        bits.lsb(0, 8 - bits.n); // pad to a byte
    }
    let mut out = bits.out;
    out.extend_from_slice(&(((b << 16) | a) as u32).to_be_bytes());
    out
}

/// 64 MiB of zeros in one `C` frame (about 1 MiB on the wire).
fn zero_bomb() -> Vec<u8> {
    let mut bomb = window(1);
    encode_compressed(Version::V2, &zlib_of(&[Piece::Run(0, 64 << 20)]), &mut bomb).unwrap();
    bomb
}

/// A window of `events` JSON frames of `size` bytes each (`{` then spaces: valid frames
/// whose JSON only turns out unfinished at its end), in one `C` frame.
fn invalid_event_bomb(events: u32, size: usize) -> Vec<u8> {
    let headers: Vec<Vec<u8>> = (1..=events)
        .map(|seq| {
            let mut h = Vec::new();
            encode_json(seq, b"{", &mut h).unwrap();
            // The real length, not the 1 byte given to the encoder.
            h[6..10].copy_from_slice(&(size as u32).to_be_bytes());
            h
        })
        .collect();
    let mut pieces = Vec::new();
    for h in &headers {
        pieces.push(Piece::Bytes(h));
        pieces.push(Piece::Run(b' ', size - 1));
    }
    let mut bomb = window(events);
    encode_compressed(Version::V2, &zlib_of(&pieces), &mut bomb).unwrap();
    bomb
}

#[test]
fn hand_made_zlib_streams_inflate_to_their_content() {
    let pieces = [
        Piece::Bytes(b"2J\0\0\0\x01"),
        Piece::Run(b' ', 1000),
        Piece::Bytes(&[200, 7, 143, 144, 255]),
        Piece::Run(0, 1),
        Piece::Run(250, 258 * 3 + 2),
    ];
    let mut expected = b"2J\0\0\0\x01".to_vec();
    expected.extend(vec![b' '; 1000]);
    expected.extend([200, 7, 143, 144, 255, 0]);
    expected.extend(vec![250; 258 * 3 + 2]);
    let mut out = Vec::new();
    skidder_protocol::Inflater::new()
        .inflate(&zlib_of(&pieces), &mut out, 1 << 20)
        .unwrap();
    assert_eq!(out, expected);
    let z = zlib_of(&[Piece::Run(b' ', 40 << 20)]);
    let mut out = Vec::new();
    skidder_protocol::Inflater::new()
        .inflate(&z, &mut out, 40 << 20)
        .unwrap();
    assert!(out.len() == 40 << 20 && out.iter().all(|&b| b == b' '));
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
    // A zlib bomb: 64 MiB of zeros in ~64 KiB, refused at its first inflated byte.
    refused.push((
        "zlib bomb",
        hostile(&addr, &zero_bomb(), false),
        "unknown protocol version byte 0x00",
    ));
    // A valid frame sequence that inflates past the 16 MiB limit.
    refused.push((
        "inflates past the limit",
        hostile(&addr, &invalid_event_bomb(1, 24 << 20), false),
        "inflates to more than 16777216 bytes",
    ));
    // JSON that is not an object, and an object that is not valid JSON.
    let mut arr = window(1);
    arr.extend(json(1, b"[1,2,3]"));
    refused.push((
        "JSON array",
        hostile(&addr, &arr, false),
        "is not a JSON object: it is a JSON array",
    ));
    let mut string = window(1);
    string.extend(json(1, br#""a string""#));
    refused.push((
        "JSON string",
        hostile(&addr, &string, false),
        "is not a JSON object: it is a JSON string",
    ));
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
        assert!(!lines[0].contains("Some("), "{what}: {}", lines[0]);
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

/// Item "the receiver's memory has a bound": 16 compressed bombs at once against
/// `skidder receive` with its defaults (`max_decompressed_total` 256 MiB). Before the
/// budget each connection could inflate 256 MiB: these bombs alone would take ~3.4 GiB.
#[test]
fn concurrent_zlib_bombs_stay_within_the_decompression_budget() {
    const BUDGET_MIB: u64 = 256;
    const MARGIN_MIB: u64 = 64;
    let rx = Receiver::receive(&["--out", "discard"]);
    let addr = rx.addr.clone();
    let t0 = Instant::now();
    let zeros = Arc::new(zero_bomb());
    // One 60 MiB event: waits its turn for the budget, then fails JSON validation.
    let big = Arc::new(invalid_event_bomb(1, 60 << 20));
    // A 240 MiB window of 40 MiB events: holds budget while it asks for more.
    let wide = Arc::new(invalid_event_bomb(6, 40 << 20));
    eprintln!("bombs built in {:?}", t0.elapsed());
    let mut kinds: Vec<(&str, Arc<Vec<u8>>)> = Vec::new();
    for _ in 0..6 {
        kinds.push(("zeros", Arc::clone(&zeros)));
        kinds.push(("60 MiB event", Arc::clone(&big)));
    }
    for _ in 0..4 {
        kinds.push(("240 MiB window", Arc::clone(&wide)));
    }
    let t1 = Instant::now();
    let bombs: Vec<_> = kinds
        .into_iter()
        .map(|(what, bytes)| {
            let addr = addr.clone();
            (
                what,
                std::thread::spawn(move || hostile(&addr, &bytes, false)),
            )
        })
        .collect();
    // Served while the bombs are being inflated.
    well_behaved(&addr, 1);
    let served_after = t1.elapsed();
    let ports: Vec<(&str, u16)> = bombs
        .into_iter()
        .map(|(what, t)| (what, t.join().expect("bomb thread")))
        .collect();
    eprintln!(
        "well-behaved client served after {served_after:?}; all 16 bombs refused after {:?}",
        t1.elapsed()
    );

    let peak_kib = rx.peak_rss_kib();
    eprintln!("receiver peak RSS: {} MiB", peak_kib / 1024);
    assert!(
        peak_kib < (BUDGET_MIB + MARGIN_MIB) * 1024,
        "peak RSS {peak_kib} KiB: must stay under max_decompressed_total ({BUDGET_MIB} MiB) \
         plus {MARGIN_MIB} MiB"
    );
    rx.terminate();
    let (code, stderr) = rx.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{stderr}");
    for (what, port) in ports {
        let lines = lines_with(&stderr, &format!("peer=127.0.0.1:{port}"));
        assert_eq!(
            lines.len(),
            1,
            "{what}: one log line for port {port}:\n{stderr}"
        );
        let reasons: &[&str] = match what {
            "zeros" => &["unknown protocol version byte 0x00"],
            "60 MiB event" => &["is not a JSON object"],
            _ => &["is not a JSON object", "max_decompressed_total"],
        };
        assert!(
            lines[0].contains("WARN") && reasons.iter().any(|r| lines[0].contains(r)),
            "{what}: expected a WARN with one of {reasons:?}: {}",
            lines[0]
        );
    }
}

/// A TLS 1.0-only ClientHello as such a client writes it: no extensions (so no
/// `supported_versions` and no `signature_algorithms`), two CBC suites.
fn tls10_client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0x2f, // handshake record, 47 bytes
        0x01, 0x00, 0x00, 0x2b, // ClientHello, 43 bytes
    ];
    hello.extend_from_slice(&version); // client_version
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]); // AES128-SHA, AES256-SHA
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    hello
}

/// Item "receiver refusals name the cause": a TLS 1.0 client, plaintext on the TLS port
/// and another handshake failure each get their own words.
#[test]
fn tls_refusals_name_the_cause() {
    let p = pki::MutualTlsFiles::new("refusal-test-ca", "client");
    let rx = Receiver::receive(&[
        "--out",
        "discard",
        "--tls-cert",
        &p.server_cert,
        "--tls-key",
        &p.server_key,
    ]);
    let addr = rx.addr.clone();
    let tls10 = hostile(&addr, &tls10_client_hello([0x03, 0x01]), false);
    let tls11 = hostile(&addr, &tls10_client_hello([0x03, 0x02]), false);
    let mut plain = window(1);
    plain.extend(json(1, br#"{"message":"plaintext"}"#));
    let plaintext = hostile(&addr, &plain, false);
    let http = hostile(&addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false);
    // A TLS 1.2 hello without signature_algorithms: refused for another reason.
    let other = hostile(&addr, &tls10_client_hello([0x03, 0x03]), false);
    rx.terminate();
    let (code, stderr) = rx.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{stderr}");
    let line = |port: u16| {
        let lines = lines_with(&stderr, &format!("peer=127.0.0.1:{port}"));
        assert_eq!(lines.len(), 1, "one log line for port {port}:\n{stderr}");
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
        lines[0].to_string()
    };
    let old = "the client offered only TLSv1.0/TLSv1.1; skidder accepts TLSv1.2 and TLSv1.3";
    for port in [tls10, tls11] {
        let l = line(port);
        assert!(l.contains(old), "{l}");
    }
    for port in [plaintext, http] {
        let l = line(port);
        assert!(l.contains("the client is not speaking TLS"), "{l}");
    }
    let l = line(other);
    assert!(
        l.contains("TLS handshake failed")
            && !l.contains("TLSv1.0/TLSv1.1")
            && !l.contains("not speaking TLS"),
        "{l}"
    );
}
