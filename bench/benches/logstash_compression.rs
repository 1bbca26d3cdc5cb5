//! Wire size and CPU of one 2048-event window per deflate backend and level, on the
//! first 2048 events of the harness corpus (`skidder_bench::corpus`: ~450-byte
//! libbeat-shaped events, the same bytes every `skidder-bench` scenario ships). This is
//! what the `compression_level` mapping of output.logstash was chosen from.
//!
//! `cargo bench -p skidder-bench --bench logstash_compression` (prints a table; no criterion).

use std::hint::black_box;
use std::time::Instant;

use skidder_protocol::{
    ClientConfig, ClientSession, Compressor, Flate2Compressor, LibdeflateCompressor,
};

const WINDOW: usize = 2048;

fn corpus() -> Vec<Vec<u8>> {
    skidder_bench::corpus::generate()
        .into_iter()
        .take(WINDOW)
        .map(String::into_bytes)
        .collect()
}

/// Encodes the window `iters` times; returns (wire bytes, µs per window).
fn measure<C: Compressor>(events: &[Vec<u8>], compressor: C, iters: u32) -> (usize, f64) {
    let mut session: ClientSession<&[u8], C> =
        ClientSession::with_compressor(ClientConfig::default(), Some(compressor));
    let mut out = Vec::new();
    let window: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    let mut size = 0;
    let start = Instant::now();
    for _ in 0..iters {
        out.clear();
        session
            .send_window(window.clone(), &mut out, Instant::now())
            .map_err(|e| e.error)
            .expect("encodable");
        size = out.len();
        // Complete the window so the session never holds more than one.
        let n = (WINDOW as u32).to_be_bytes();
        session
            .handle_input(&[b'2', b'A', n[0], n[1], n[2], n[3]], Instant::now())
            .expect("ack");
        while session.poll_event().is_some() {}
        black_box(&out);
    }
    (size, start.elapsed().as_secs_f64() * 1e6 / f64::from(iters))
}

fn main() {
    let events = corpus();
    let raw: usize = events.iter().map(Vec::len).sum();
    println!(
        "{} events, {:.0} bytes/event raw; per 2048-event window:",
        events.len(),
        raw as f64 / events.len() as f64
    );
    println!("backend    level  bytes/event  us/window  ns/event");
    // `cargo bench` passes --bench; `cargo test --all-targets` does not and only needs to
    // see that every backend and level encodes (one pass, not a debug-build measurement).
    let iters = if std::env::args().any(|a| a == "--bench") {
        30
    } else {
        1
    };
    for level in 1..=9u32 {
        let (size, us) = measure(&events, Flate2Compressor::new(level), iters);
        println!(
            "flate2     {level:>5}  {:>11.1}  {us:>9.0}  {:>8.0}",
            size as f64 / WINDOW as f64,
            us * 1000.0 / WINDOW as f64
        );
    }
    for level in 1..=9u32 {
        let (size, us) = measure(&events, LibdeflateCompressor::new(level), iters);
        println!(
            "libdeflate {level:>5}  {:>11.1}  {us:>9.0}  {:>8.0}",
            size as f64 / WINDOW as f64,
            us * 1000.0 / WINDOW as f64
        );
    }
}
