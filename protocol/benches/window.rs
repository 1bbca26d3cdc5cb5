//! Encoding and decoding one 2048-event window of realistic ~400-byte log events.
//!
//! `encode/*` is the full client path (W + C(J...) into a reused buffer, then the
//! ACK that hands the events back); `zlib_baseline/*` compresses the very same
//! J-frame bytes with a reused flate2 `Compress` at the same level, so the ratio of
//! the two is what the codec adds on top of compression. `decode/*` runs a
//! receiver session over the encoded window (`decode/3-metered`: with metered
//! inflation, every request granted, as the lumberjack input runs it), and
//! `decode_baseline/3` inflates the `C` frame whole and then decodes it, as the
//! receiver did before it inflated a step at a time. Throughput is in bytes of J frames
//! (uncompressed); events/s = 2048 / time per iteration.
//!
//! `cargo bench -p skidder-protocol --bench window -- --warm-up-time 1 --measurement-time 3`
//! (add `--features libdeflate` for the `encode_libdeflate/*` group).

use std::hint::black_box;
use std::time::Instant;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flate2::{Compress, Compression, FlushCompress, Status};
use skidder_protocol::frame::encode_json;
use skidder_protocol::{
    ClientConfig, ClientEvent, ClientSession, Frame, FrameDecoder, Inflater, ReceiverConfig,
    ReceiverSession,
};

const EVENTS: usize = 2048;
const LEVELS: [u32; 4] = [0, 1, 3, 6];

/// xorshift64*: deterministic, no rand crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Beats-shaped events: nginx access, application and sshd auth lines.
fn corpus() -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let hosts = ["web-01", "web-02", "web-03", "api-07", "auth-02"];
    let paths = [
        "/api/v1/items",
        "/api/v1/orders",
        "/login",
        "/static/app.js",
        "/healthz",
    ];
    let agents = [
        "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
        "curl/8.5.0",
        "Go-http-client/1.1",
    ];
    let levels = ["INFO", "WARN", "ERROR", "DEBUG"];
    let users = ["alice", "bob", "deploy", "root", "svc-backup"];
    let mut events = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        let ms = 1_714_567_000_000u64 + i as u64 * 37 + rng.below(30);
        let (secs, milli) = (ms / 1000 % 86_400, ms % 1000);
        let ts = format!(
            "2024-05-01T{:02}:{:02}:{:02}.{milli:03}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        let host = rng.pick(&hosts);
        let ip = format!(
            "10.{}.{}.{}",
            rng.below(255),
            rng.below(255),
            rng.below(255)
        );
        let (file, message) = match rng.below(3) {
            0 => (
                "/var/log/nginx/access.log",
                format!(
                    "{ip} - - [01/May/2024:{:02}:{:02}:{:02} +0000] \\\"GET {}/{}?page={} HTTP/1.1\\\" {} {} \\\"-\\\" \\\"{}\\\"",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60,
                    rng.pick(&paths),
                    rng.below(100_000),
                    rng.below(20),
                    [200, 200, 200, 304, 404, 500][rng.below(6) as usize],
                    rng.below(60_000),
                    rng.pick(&agents)
                ),
            ),
            1 => (
                "/var/log/app/service.log",
                format!(
                    "{} [worker-{}] order.service - processed order id={} customer={} items={} latency_ms={} trace_id={:016x}",
                    rng.pick(&levels),
                    rng.below(16),
                    rng.below(10_000_000),
                    rng.below(500_000),
                    rng.below(12),
                    rng.below(2000),
                    rng.next()
                ),
            ),
            _ => (
                "/var/log/auth.log",
                format!(
                    "May  1 12:00:00 {host} sshd[{}]: Accepted publickey for {} from {ip} port {} ssh2: ED25519 SHA256:{:016x}{:016x}",
                    rng.below(60_000),
                    rng.pick(&users),
                    rng.below(65_535),
                    rng.next(),
                    rng.next()
                ),
            ),
        };
        let event = format!(
            "{{\"@timestamp\":\"{ts}\",\"@metadata\":{{\"beat\":\"filebeat\",\"type\":\"_doc\",\"version\":\"8.15.0\"}},\"host\":{{\"name\":\"{host}\"}},\"log\":{{\"file\":{{\"path\":\"{file}\"}},\"offset\":{}}},\"input\":{{\"type\":\"filestream\"}},\"message\":\"{message}\"}}",
            rng.below(50_000_000)
        );
        events.push(event.into_bytes());
    }
    events
}

fn json_frames(events: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        encode_json(i as u32 + 1, e, &mut out).expect("small event");
    }
    out
}

fn ack(n: usize) -> [u8; 6] {
    let s = (n as u32).to_be_bytes();
    [b'2', b'A', s[0], s[1], s[2], s[3]]
}

fn benches(c: &mut Criterion) {
    let events = corpus();
    let frames = json_frames(&events);
    let avg = events.iter().map(Vec::len).sum::<usize>() / events.len();
    eprintln!(
        "corpus: {EVENTS} events, avg {avg} bytes, {} bytes of J frames",
        frames.len()
    );
    let now = Instant::now();
    let ack = ack(EVENTS);

    for level in LEVELS {
        let mut client: ClientSession<&[u8]> = ClientSession::new(ClientConfig {
            compression_level: level,
            ..ClientConfig::default()
        });
        let mut out = Vec::new();
        client
            .send_window(events.iter().map(Vec::as_slice).collect(), &mut out, now)
            .expect("encodes");
        eprintln!("level {level}: window of {} bytes on the wire", out.len());
    }

    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Bytes(frames.len() as u64));
    for level in LEVELS {
        group.bench_with_input(BenchmarkId::from_parameter(level), &level, |b, &level| {
            let mut client: ClientSession<&[u8]> = ClientSession::new(ClientConfig {
                compression_level: level,
                ..ClientConfig::default()
            });
            let mut pool: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
            let mut out = Vec::new();
            b.iter(|| {
                out.clear();
                client
                    .send_window(std::mem::take(&mut pool), &mut out, now)
                    .expect("encodes");
                black_box(&out);
                client.handle_input(&ack, now).expect("valid ACK");
                if let Some(ClientEvent::WindowAcked { events }) = client.poll_event() {
                    pool = events;
                }
            });
        });
    }
    group.finish();

    #[cfg(feature = "libdeflate")]
    {
        let mut group = c.benchmark_group("encode_libdeflate");
        group.throughput(Throughput::Bytes(frames.len() as u64));
        for level in LEVELS.into_iter().filter(|l| *l > 0) {
            group.bench_with_input(BenchmarkId::from_parameter(level), &level, |b, &level| {
                let mut client: ClientSession<&[u8], _> = ClientSession::with_compressor(
                    ClientConfig {
                        compression_level: level,
                        ..ClientConfig::default()
                    },
                    Some(skidder_protocol::LibdeflateCompressor::new(level)),
                );
                let mut pool: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
                let mut out = Vec::new();
                b.iter(|| {
                    out.clear();
                    client
                        .send_window(std::mem::take(&mut pool), &mut out, now)
                        .expect("encodes");
                    black_box(&out);
                    client.handle_input(&ack, now).expect("valid ACK");
                    if let Some(ClientEvent::WindowAcked { events }) = client.poll_event() {
                        pool = events;
                    }
                });
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("zlib_baseline");
    group.throughput(Throughput::Bytes(frames.len() as u64));
    for level in LEVELS.into_iter().filter(|l| *l > 0) {
        group.bench_with_input(BenchmarkId::from_parameter(level), &level, |b, &level| {
            let mut compress = Compress::new(Compression::new(level), true);
            let mut out = Vec::with_capacity(frames.len() + 1024);
            b.iter(|| {
                compress.reset();
                out.clear();
                let status = compress
                    .compress_vec(&frames, &mut out, FlushCompress::Finish)
                    .expect("compresses");
                assert_eq!(status, Status::StreamEnd);
                black_box(&out);
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(frames.len() as u64));
    for level in [0, 3] {
        let mut client: ClientSession<&[u8]> = ClientSession::new(ClientConfig {
            compression_level: level,
            ..ClientConfig::default()
        });
        let mut wire = Vec::new();
        client
            .send_window(events.iter().map(Vec::as_slice).collect(), &mut wire, now)
            .expect("encodes");
        group.bench_with_input(BenchmarkId::from_parameter(level), &wire, |b, wire| {
            b.iter(|| {
                let mut rx = ReceiverSession::new(ReceiverConfig::default());
                rx.handle_input(wire, now).expect("decodes");
                let batch = rx.poll_batch().expect("one batch");
                assert_eq!(batch.events.len(), EVENTS);
                rx.ack_batch(batch.id, now).expect("pending");
                black_box(rx.poll_transmit());
            });
        });
        if level == 0 {
            continue;
        }
        let metered = format!("{level}-metered");
        group.bench_with_input(BenchmarkId::from_parameter(metered), &wire, |b, wire| {
            b.iter(|| {
                let mut rx = ReceiverSession::new(ReceiverConfig {
                    metered_inflation: true,
                    ..ReceiverConfig::default()
                });
                rx.handle_input(wire, now).expect("decodes");
                while let Some(want) = rx.inflate_request() {
                    rx.grant_inflate(want, now).expect("decodes");
                }
                let batch = rx.poll_batch().expect("one batch");
                assert_eq!(batch.events.len(), EVENTS);
                rx.ack_batch(batch.id, now).expect("pending");
                black_box(rx.poll_transmit());
            });
        });
    }
    group.finish();

    let mut baseline = c.benchmark_group("decode_baseline");
    baseline.throughput(Throughput::Bytes(frames.len() as u64));
    let level = 3;
    let mut client: ClientSession<&[u8]> = ClientSession::new(ClientConfig {
        compression_level: level,
        ..ClientConfig::default()
    });
    let mut wire = Vec::new();
    client
        .send_window(events.iter().map(Vec::as_slice).collect(), &mut wire, now)
        .expect("encodes");
    baseline.bench_with_input(BenchmarkId::from_parameter(level), &wire, |b, wire| {
        let decoder = FrameDecoder::default();
        b.iter(|| {
            let mut buf = BytesMut::from(&wire[..]);
            let mut events = Vec::with_capacity(EVENTS);
            while let Some(frame) = decoder.decode(&mut buf).expect("decodes") {
                if let Frame::Compressed { payload, .. } = frame {
                    let mut inflated = Vec::new();
                    Inflater::new()
                        .inflate(&payload, &mut inflated, 256 << 20)
                        .expect("inflates");
                    // Zero-copy, as the receiver did.
                    let mut content = BytesMut::from(bytes::Bytes::from(inflated));
                    while let Some(f) = decoder.decode(&mut content).expect("decodes") {
                        events.push(f);
                    }
                }
            }
            assert_eq!(events.len(), EVENTS);
            black_box(events);
        });
    });
    baseline.finish();
}

criterion_group!(window, benches);
criterion_main!(window);
