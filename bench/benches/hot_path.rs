//! Hot-path micro-benchmarks, so a regression shows here before the end-to-end numbers
//! move: event encoding (`EventEncoder`, as the stdin and generator inputs build events)
//! and ACK handling (`ClientSession::handle_input` for two pipelined 2048-event
//! windows). Window encoding itself is in protocol/benches/window.rs.
//!
//! `cargo bench -p skidder-bench --bench hot_path -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use skidder::event::{EventEncoder, EventMeta};
use skidder_protocol::{ClientConfig, ClientEvent, ClientSession};

const WINDOW: u32 = 2048;

/// Message texts of corpus-like length; the encoder's cost scales with escaping work.
const MESSAGES: [&str; 3] = [
    r#"10.2.33.7 - - [27/Nov/2026:08:00:01 +0000] "GET /api/v1/items HTTP/1.1" 200 5123 "-" "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0""#,
    "2026-11-27T08:00:01.234Z [WARN] com.shop.search.QueryPlanner pool-2-thread-7 - trace_id=4f1c2a9be0d37a61 slow query: 412 ms on index products, falling back to cached facets",
    "Accepted publickey for deploy from 198.51.100.23 port 50022 ssh2: ED25519 SHA256:9c1f0e7a4b2d6e83a1b2c3d4",
];

fn event_encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_encode");
    group.throughput(Throughput::Elements(1));
    let meta = EventMeta::default();
    let fields = br#","fields":{"env":"prod"},"tags":["web"]"#;
    group.bench_function("message_seq_fields", |b| {
        let mut enc = EventEncoder::new(&meta);
        let now = SystemTime::now();
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            let mut w = enc.begin(now);
            w.str_field("message", MESSAGES[(seq % 3) as usize]);
            w.u64_field("seq", seq);
            w.raw_pairs(fields);
            black_box(w.finish())
        });
    });
    group.bench_function("padded_512", |b| {
        let mut enc = EventEncoder::new(&meta);
        let now = SystemTime::now();
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            let mut w = enc.begin(now);
            w.str_field("message", "event from web-01: request served in 12 ms");
            w.u64_field("seq", seq);
            let pad = 512usize.saturating_sub(w.len() + 10);
            w.pad_field("pad", pad);
            black_box(w.finish())
        });
    });
    group.finish();
}

/// A session with two windows in flight (pipelining 2), built outside the timed part.
fn session_with_two_windows(events: &[Bytes]) -> ClientSession<Bytes> {
    let mut s = ClientSession::new(ClientConfig {
        compression_level: 0,
        ..ClientConfig::default()
    });
    let mut out = Vec::new();
    let now = Instant::now();
    for _ in 0..2 {
        s.send_window(events.to_vec(), &mut out, now)
            .unwrap_or_else(|e| panic!("send_window: {}", e.error));
        out.clear();
    }
    s
}

fn ack_frame(seq: u32) -> [u8; 6] {
    let b = seq.to_be_bytes();
    [b'2', b'A', b[0], b[1], b[2], b[3]]
}

fn ack_handling(c: &mut Criterion) {
    let events: Vec<Bytes> = (0..WINDOW)
        .map(|i| Bytes::from(MESSAGES[i as usize % 3].as_bytes().to_vec()))
        .collect();
    let mut group = c.benchmark_group("ack_handling");
    group.throughput(Throughput::Elements(u64::from(2 * WINDOW)));
    // Two full ACKs in one read, as a Logstash answering both windows at once.
    let mut two_acks = Vec::new();
    two_acks.extend_from_slice(&ack_frame(WINDOW));
    two_acks.extend_from_slice(&ack_frame(WINDOW));
    group.bench_function("two_windows_full_acks", |b| {
        b.iter_batched(
            || session_with_two_windows(&events),
            |mut s| {
                s.handle_input(black_box(&two_acks), Instant::now())
                    .unwrap_or_else(|e| panic!("handle_input: {e}"));
                let mut acked = 0;
                while let Some(ev) = s.poll_event() {
                    if let ClientEvent::WindowAcked { events } = ev {
                        acked += events.len();
                    }
                }
                assert_eq!(acked, 2 * WINDOW as usize);
                s
            },
            BatchSize::SmallInput,
        );
    });
    // Keep-alives and partial ACKs split at odd byte boundaries: the slow path.
    let mut partial = Vec::new();
    for k in [0, 512, 0, 1024, 1536, WINDOW] {
        partial.extend_from_slice(&ack_frame(k));
    }
    partial.extend_from_slice(&ack_frame(WINDOW));
    group.bench_function("partial_acks_split_reads", |b| {
        b.iter_batched(
            || session_with_two_windows(&events),
            |mut s| {
                for chunk in partial.chunks(5) {
                    s.handle_input(black_box(chunk), Instant::now())
                        .unwrap_or_else(|e| panic!("handle_input: {e}"));
                }
                let mut acked = 0;
                while let Some(ev) = s.poll_event() {
                    match ev {
                        ClientEvent::WindowAcked { events }
                        | ClientEvent::Progress { events, .. } => acked += events.len(),
                    }
                }
                assert_eq!(acked, 2 * WINDOW as usize);
                s
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // This crate enables plotters' ab_glyph feature for its PNGs, and cargo unifies that
    // into criterion's plotters, whose charts then find no font: numbers only here.
    config = Criterion::default().without_plots();
    targets = event_encoding, ack_handling
}
criterion_main!(benches);
