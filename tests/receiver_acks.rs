//! ACK behaviour of the lumberjack input as Logstash's beats input: highest seq of a
//! window, in window order, version byte of the window, ACK 0 for an empty window, and
//! keep-alive ACK 0 about every 5 s while the output has not settled a window.

mod common;
#[path = "common/lumberjack_peers.rs"]
mod peers;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use peers::Receiver;
use skidder_protocol::frame::{encode_data, encode_json, encode_window};
use skidder_protocol::Version;

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn read_ack(s: &mut TcpStream) -> [u8; 6] {
    let mut ack = [0u8; 6];
    s.read_exact(&mut ack).expect("an ACK frame within 20s");
    ack
}

/// The next ACK that is not a keep-alive.
fn read_real_ack(s: &mut TcpStream) -> [u8; 6] {
    loop {
        let ack = read_ack(s);
        if ack != *b"2A\0\0\0\0" {
            return ack;
        }
    }
}

fn window(version: Version, seqs: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_window(version, seqs.len() as u32, &mut out);
    for &seq in seqs {
        match version {
            Version::V2 => {
                encode_json(seq, format!("{{\"seq\":{seq}}}").as_bytes(), &mut out).unwrap()
            }
            Version::V1 => {
                encode_data(seq, &[("line", "x"), ("seq", &seq.to_string())], &mut out).unwrap()
            }
        }
    }
    out
}

#[test]
fn acks_carry_the_highest_seq_in_window_order_with_the_windows_version() {
    let rx = Receiver::receive(&["--out", "discard"]);
    let mut s = connect(&rx.addr);
    // Three windows back to back (pipelined), seqs continuing as pylogbeat numbers them.
    let mut bytes = window(Version::V2, &[5, 6, 7]);
    bytes.extend(window(Version::V1, &[1, 2]));
    encode_window(Version::V2, 0, &mut bytes);
    bytes.extend(window(Version::V2, &[8, 9]));
    s.write_all(&bytes).unwrap();
    assert_eq!(&read_real_ack(&mut s), b"2A\0\0\0\x07");
    assert_eq!(&read_real_ack(&mut s), b"1A\0\0\0\x02");
    // The empty window is answered with ACK 0 (Logstash >= 6.7), in its place.
    assert_eq!(&read_ack(&mut s), b"2A\0\0\0\0");
    assert_eq!(&read_real_ack(&mut s), b"2A\0\0\0\x09");
}

#[test]
fn keepalives_flow_while_the_output_holds_a_window() {
    // The discard output holds every batch 8 s: well past the 5 s keep-alive interval, so
    // a slow moment on a loaded machine cannot let the real ACK come first.
    let rx = Receiver::receive(&["--out", "discard", "--discard-delay", "8s"]);
    let mut s = connect(&rx.addr);
    let sent = Instant::now();
    s.write_all(&window(Version::V2, &[1, 2])).unwrap();
    let first = read_ack(&mut s);
    let keepalive_after = sent.elapsed();
    assert_eq!(
        &first, b"2A\0\0\0\0",
        "a keep-alive comes before the real ACK"
    );
    assert!(
        keepalive_after >= Duration::from_secs(4),
        "keep-alives are spaced about 5 s: {keepalive_after:?}"
    );
    assert_eq!(&read_real_ack(&mut s), b"2A\0\0\0\x02");
}

#[test]
fn stdout_output_prints_each_event_once() {
    let rx = Receiver::receive(&["--out", "stdout", "--expect", "3", "--deadline", "30s"]);
    let mut s = connect(&rx.addr);
    s.write_all(&window(Version::V2, &[1, 2, 3])).unwrap();
    assert_eq!(&read_real_ack(&mut s), b"2A\0\0\0\x03");
    let mut child = rx;
    let mut stdout = child.child.stdout.take().unwrap();
    let (code, stderr) = child.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{stderr}");
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, [r#"{"seq":1}"#, r#"{"seq":2}"#, r#"{"seq":3}"#]);
}

#[test]
fn expect_not_reached_by_the_deadline_exits_1() {
    let rx = Receiver::receive(&["--out", "discard", "--expect", "5", "--deadline", "1s"]);
    let mut s = connect(&rx.addr);
    s.write_all(&window(Version::V2, &[1, 2])).unwrap();
    assert_eq!(&read_real_ack(&mut s), b"2A\0\0\0\x02");
    let (code, stderr) = rx.finish(Duration::from_secs(30));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--expect was not reached"), "{stderr}");
    assert_eq!(peers::receive_stats(&stderr)["distinct"], 2);
}

/// On SIGTERM a window the output has not settled within shutdown_timeout (5 s for
/// `receive`) is not ACKed: the connection closes and the client resends it elsewhere.
#[test]
fn shutdown_never_acks_an_unsettled_window() {
    let mut rx = Receiver::receive(&[
        "--out",
        "discard",
        "--discard-delay",
        "30s",
        "--log-level",
        "debug",
    ]);
    let mut s = connect(&rx.addr);
    s.write_all(&window(Version::V2, &[1, 2, 3])).unwrap();
    // Published (the queue holds it) before the signal.
    rx.wait_for("window published", Duration::from_secs(10));
    let mut ack = [0u8; 6];
    rx.terminate();
    loop {
        match s.read(&mut ack[..]) {
            Ok(0) => break,
            Ok(n) => assert_eq!(
                &ack[..n],
                &b"2A\0\0\0\0"[..n],
                "only keep-alives, never an ACK"
            ),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("connection not closed after shutdown: {e}"),
        }
    }
    let (code, stderr) = rx.finish(Duration::from_secs(30));
    assert_eq!(code, Some(130), "{stderr}");
}

/// An empty window on an idle connection is answered with ACK 0 at once, as Logstash does
/// (`skidder test output` uses it to prove a session without delivering an event).
#[test]
fn a_lone_empty_window_is_answered_with_ack_0() {
    let rx = Receiver::receive(&["--out", "discard"]);
    let mut s = connect(&rx.addr);
    let mut bytes = Vec::new();
    encode_window(Version::V2, 0, &mut bytes);
    s.write_all(&bytes).unwrap();
    // Nothing is pending, so no keep-alive would ever come: only the answer itself.
    assert_eq!(&read_ack(&mut s), b"2A\0\0\0\0");
}
