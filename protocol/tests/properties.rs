//! Property tests: encode → decode round trips, client ↔ receiver round trips,
//! arbitrary ACK streams only ever producing documented outcomes, and mutated valid
//! windows (uniform random bytes fail the version byte 254 times in 256, so they
//! rarely reach the decoder; a mutated valid window does).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use skidder_protocol::frame::encode_frame;
use skidder_protocol::{
    ClientConfig, ClientEvent, ClientSession, Compressor, Frame, FrameDecoder, Limits, Payload,
    ProtocolError, ReceiverConfig, ReceiverSession, Version,
};

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V1), Just(Version::V2)]
}

fn json_object() -> impl Strategy<Value = Vec<u8>> {
    ("[ \t\r\n]{0,2}", "[a-zA-Z0-9 éü€\"\\\\]{0,40}")
        .prop_map(|(ws, body)| format!("{ws}{{\"m\":{:?}}}", body).into_bytes())
}

fn frame() -> impl Strategy<Value = Frame> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..20).prop_map(Bytes::from);
    prop_oneof![
        (version(), 0..=10_000u32).prop_map(|(version, count)| Frame::Window { version, count }),
        (version(), any::<u32>()).prop_map(|(version, seq)| Frame::Ack { version, seq }),
        (any::<u32>(), json_object()).prop_map(|(seq, p)| Frame::Json {
            seq,
            payload: p.into()
        }),
        (
            any::<u32>(),
            proptest::collection::vec((bytes(), bytes()), 1..5)
        )
            .prop_map(|(seq, pairs)| Frame::Data { seq, pairs }),
        (version(), bytes()).prop_map(|(version, payload)| Frame::Compressed { version, payload }),
    ]
}

proptest! {
    #[test]
    fn frames_round_trip_at_any_split(frames in proptest::collection::vec(frame(), 1..8), split in any::<prop::sample::Index>()) {
        let mut wire = Vec::new();
        for f in &frames {
            encode_frame(f, &mut wire).unwrap();
        }
        let split = split.index(wire.len() + 1);
        let decoder = FrameDecoder::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for part in [&wire[..split], &wire[split..]] {
            buf.extend_from_slice(part);
            while let Some(f) = decoder.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn client_windows_arrive_intact_at_the_receiver(
        windows in proptest::collection::vec(proptest::collection::vec(json_object(), 1..20), 1..5),
        level in 0u32..=9,
        chunk in 1usize..200,
    ) {
        let t0 = Instant::now();
        let mut client = ClientSession::new(ClientConfig { compression_level: level, ..ClientConfig::default() });
        let mut wire = Vec::new();
        for w in &windows {
            client.send_window(w.clone(), &mut wire, t0).unwrap();
        }
        let mut rx = ReceiverSession::new(ReceiverConfig::default());
        let mut received = Vec::new();
        for piece in wire.chunks(chunk) {
            rx.handle_input(piece, t0).unwrap();
            while let Some(batch) = rx.poll_batch() {
                prop_assert_eq!(batch.highest_seq as usize, batch.events.len());
                received.push(batch.events.iter().map(|e| match &e.payload {
                    Payload::Json(b) => b.to_vec(),
                    Payload::Fields(_) => Vec::new(),
                }).collect::<Vec<_>>());
                rx.ack_batch(batch.id, t0).unwrap();
            }
        }
        prop_assert_eq!(&received, &windows);
        let acks = rx.poll_transmit().unwrap();
        for piece in acks.chunks(chunk) {
            client.handle_input(piece, t0).unwrap();
        }
        let mut back = Vec::new();
        while let Some(ev) = client.poll_event() {
            match ev {
                ClientEvent::WindowAcked { events } => back.push(events),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(back, windows);
        prop_assert_eq!(client.in_flight(), 0);
        prop_assert_eq!(client.poll_timeout(), None);
    }

    /// Whatever the server sends, every event comes back exactly once and in order
    /// (acknowledged through `Progress`/`WindowAcked`, or unacknowledged from
    /// `into_unacked`), and the only errors are the documented ones.
    #[test]
    fn arbitrary_acks_only_produce_documented_outcomes(
        sizes in proptest::collection::vec(1usize..6, 1..4),
        acks in proptest::collection::vec(prop_oneof![0u32..7, any::<u32>()], 0..12),
        garbage in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..8)),
        chunk in 1usize..13,
    ) {
        let t0 = Instant::now();
        let mut next = 0u32;
        let mut sent = Vec::new();
        let mut out = Vec::new();
        let mut wrapped: ClientSession<Handle> = ClientSession::new(ClientConfig { compression_level: 0, ack_timeout: Duration::from_secs(30) });
        for size in &sizes {
            let w: Vec<Handle> = (0..*size).map(|_| { next += 1; sent.push(next); Handle(next) }).collect();
            wrapped.send_window(w, &mut out, t0).unwrap();
        }
        let mut wire = Vec::new();
        for a in &acks {
            wire.extend_from_slice(b"2A");
            wire.extend_from_slice(&a.to_be_bytes());
        }
        if let Some(g) = garbage {
            wire.extend(g);
        }
        let mut handed_back = Vec::new();
        let mut error = None;
        for piece in wire.chunks(chunk) {
            match wrapped.handle_input(piece, t0) {
                Ok(()) => {}
                Err(e) => { error = Some(e); break; }
            }
        }
        if let Some(e) = &error {
            prop_assert!(matches!(e, ProtocolError::UnexpectedAck { .. } | ProtocolError::UnexpectedReply { .. }), "undocumented error {:?}", e);
        }
        let (events, unacked) = wrapped.into_unacked();
        for ev in events {
            match ev {
                ClientEvent::Progress { events, acked, of } => {
                    prop_assert!(acked > 0 && acked < of);
                    handed_back.extend(events.into_iter().map(|h| h.0));
                }
                ClientEvent::WindowAcked { events } => handed_back.extend(events.into_iter().map(|h| h.0)),
            }
        }
        handed_back.extend(unacked.into_iter().map(|h| h.0));
        prop_assert_eq!(handed_back, sent);
    }

    /// Metered inflation changes when bytes are inflated, never what is decoded: any
    /// chunking of the wire and any grant sizes give the unmetered session's windows,
    /// and every granted byte is either charged to a batch or handed back unused.
    #[test]
    fn metered_inflation_decodes_the_same_windows(
        windows in proptest::collection::vec(proptest::collection::vec(json_object(), 1..20), 1..4),
        level in 1u32..=9,
        chunk in 1usize..300,
        extra in proptest::collection::vec(0usize..5000, 1..8),
    ) {
        let t0 = Instant::now();
        let mut client = ClientSession::new(ClientConfig { compression_level: level, ..ClientConfig::default() });
        let mut wire = Vec::new();
        for w in &windows {
            client.send_window(w.clone(), &mut wire, t0).unwrap();
        }
        let mut rx = ReceiverSession::new(ReceiverConfig { metered_inflation: true, ..ReceiverConfig::default() });
        let (mut granted, mut returned, mut charged, mut grants) = (0, 0, 0, 0);
        let mut received = Vec::new();
        for piece in wire.chunks(chunk) {
            rx.handle_input(piece, t0).unwrap();
            while let Some(want) = rx.inflate_request() {
                prop_assert!(want > 0 && want <= 64 * 1024, "asked for {}", want);
                // Sometimes more than asked, as a budget granting in round units would.
                let give = want + extra[grants % extra.len()];
                grants += 1;
                granted += give;
                rx.grant_inflate(give, t0).unwrap();
            }
            returned += rx.take_unused_credit();
            while let Some(batch) = rx.poll_batch() {
                charged += batch.inflated;
                received.push(batch.events.iter().map(|e| match &e.payload {
                    Payload::Json(b) => b.to_vec(),
                    Payload::Fields(_) => Vec::new(),
                }).collect::<Vec<_>>());
                rx.ack_batch(batch.id, t0).unwrap();
            }
        }
        prop_assert_eq!(&received, &windows);
        prop_assert_eq!(granted, charged + returned);
    }

    /// On arbitrary content inside a `C` frame (a window header, then anything), a
    /// metered session ends exactly as an unmetered one: same batches, same error.
    #[test]
    fn metered_and_unmetered_sessions_agree_on_any_compressed_content(
        count in 0u32..4,
        content in proptest::collection::vec(any::<u8>(), 0..400),
        frames in proptest::collection::vec(json_object(), 0..4),
        max in 16usize..2000,
        extra in 0usize..3000,
    ) {
        let t0 = Instant::now();
        let mut inner = Vec::new();
        skidder_protocol::frame::encode_window(Version::V2, count, &mut inner);
        for (seq, f) in frames.iter().enumerate() {
            skidder_protocol::frame::encode_json(seq as u32 + 1, f, &mut inner).unwrap();
        }
        inner.extend(content);
        let mut z = Vec::new();
        skidder_protocol::Flate2Compressor::new(6).compress_zlib(&inner, &mut z).unwrap();
        let mut wire = Vec::new();
        skidder_protocol::frame::encode_compressed(Version::V2, &z, &mut wire).unwrap();
        let limits = Limits { max_decompressed_size: max, ..Limits::default() };
        let run = |metered: bool| {
            let mut rx = ReceiverSession::new(ReceiverConfig { limits, metered_inflation: metered, ..ReceiverConfig::default() });
            let mut result = rx.handle_input(&wire, t0);
            while let (Ok(()), Some(want)) = (&result, rx.inflate_request()) {
                // More than asked changes the inflate steps, not the outcome.
                result = rx.grant_inflate(want + extra, t0);
            }
            let mut batches = Vec::new();
            while let Some(b) = rx.poll_batch() {
                batches.push(b.events);
            }
            (format!("{result:?}"), batches)
        };
        prop_assert_eq!(run(true), run(false));
    }

    #[test]
    fn receiver_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut rx = ReceiverSession::new(ReceiverConfig::default());
        let _ = rx.handle_input(&bytes, Instant::now());
    }
}

/// One window as the encoder writes it: v1 `D` or v2 `J` frames, optionally inside a `C`.
#[derive(Debug, Clone)]
struct WindowSpec {
    version: Version,
    events: Vec<Payload>,
    compress: Option<u32>,
}

fn pairs() -> impl Strategy<Value = Vec<(Bytes, Bytes)>> {
    let text = || "[a-z@]{0,6}".prop_map(|s| Bytes::from(s.into_bytes()));
    proptest::collection::vec((text(), text()), 1..4)
}

fn window_spec() -> impl Strategy<Value = WindowSpec> {
    let compress = proptest::option::of(0u32..=9);
    prop_oneof![
        (
            proptest::collection::vec(json_object().prop_map(|j| Payload::Json(j.into())), 1..6),
            compress.clone()
        )
            .prop_map(|(events, compress)| WindowSpec {
                version: Version::V2,
                events,
                compress
            }),
        (
            proptest::collection::vec(pairs().prop_map(Payload::Fields), 1..6),
            compress
        )
            .prop_map(|(events, compress)| WindowSpec {
                version: Version::V1,
                events,
                compress
            }),
    ]
}

/// Valid client bytes, where each window ends, and the offsets of the top-level u32
/// fields (counts, seqs, lengths) a mutation may rewrite.
struct Wire {
    bytes: Vec<u8>,
    window_ends: Vec<usize>,
    u32_fields: Vec<usize>,
}

fn encode_windows(windows: &[WindowSpec]) -> Wire {
    use skidder_protocol::frame::{encode_compressed, encode_data, encode_json, encode_window};
    let mut out = Vec::new();
    let mut window_ends = Vec::new();
    let mut u32_fields = Vec::new();
    for w in windows {
        u32_fields.push(out.len() + 2);
        encode_window(w.version, w.events.len() as u32, &mut out);
        let mut data = Vec::new();
        for (i, event) in w.events.iter().enumerate() {
            let at = data.len();
            match event {
                Payload::Json(j) => encode_json(i as u32 + 1, j, &mut data).unwrap(),
                Payload::Fields(p) => encode_data(i as u32 + 1, p, &mut data).unwrap(),
            }
            if w.compress.is_none() {
                // seq, then the JSON length or the pair count.
                u32_fields.extend([out.len() + at + 2, out.len() + at + 6]);
            }
        }
        match w.compress {
            Some(level) => {
                let mut z = Vec::new();
                skidder_protocol::Flate2Compressor::new(level)
                    .compress_zlib(&data, &mut z)
                    .unwrap();
                u32_fields.push(out.len() + 2);
                encode_compressed(w.version, &z, &mut out).unwrap();
            }
            None => out.extend(data),
        }
        window_ends.push(out.len());
    }
    Wire {
        bytes: out,
        window_ends,
        u32_fields,
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    Truncate(prop::sample::Index),
    /// A count, seq or length field set to a value near the edges.
    SetU32(prop::sample::Index, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>;
    let edge = prop_oneof![
        Just(0u32),
        Just(1),
        Just(64),
        Just(65),
        Just(1 << 16),
        Just(u32::MAX),
        any::<u32>()
    ];
    prop_oneof![
        (index(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (index(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        index().prop_map(Mutation::Delete),
        index().prop_map(Mutation::Truncate),
        (index(), edge).prop_map(|(i, v)| Mutation::SetU32(i, v)),
    ]
}

/// Applies `m`; returns the first offset whose byte may differ from the original.
fn mutate(wire: &Wire, m: &Mutation) -> (Vec<u8>, usize) {
    let mut bytes = wire.bytes.clone();
    let len = bytes.len();
    let at = match m {
        Mutation::Flip(i, bit) => {
            let at = i.index(len);
            bytes[at] ^= 1 << bit;
            at
        }
        Mutation::Insert(i, b) => {
            let at = i.index(len + 1);
            bytes.insert(at, *b);
            at
        }
        Mutation::Delete(i) => {
            let at = i.index(len);
            bytes.remove(at);
            at
        }
        Mutation::Truncate(i) => {
            let at = i.index(len);
            bytes.truncate(at);
            at
        }
        Mutation::SetU32(i, v) => {
            let at = wire.u32_fields[i.index(wire.u32_fields.len())];
            bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
            at
        }
    };
    (bytes, at)
}

/// Small limits, so edge values of count and length fields hit them.
const MUTATION_LIMITS: Limits = Limits {
    max_window_size: 64,
    max_frame_size: 1 << 16,
    max_decompressed_size: 1 << 18,
};

/// An error a mutated stream may cause: one naming what the peer sent, never one about
/// the caller's use of the session.
fn assert_stream_error(e: &ProtocolError) -> Result<(), TestCaseError> {
    prop_assert!(
        !matches!(
            e,
            ProtocolError::SessionFailed | ProtocolError::UnknownBatch { .. }
        ),
        "a corrupt stream reported as {:?}",
        e
    );
    prop_assert!(!e.to_string().is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A mutated valid stream into the frame decoder, split at a random point: never a
    /// panic, every error names the stream's problem, and every frame that ends before
    /// the first mutated byte decodes as the original.
    #[test]
    fn decoder_survives_mutated_windows(
        windows in proptest::collection::vec(window_spec(), 1..4),
        m in mutation(),
        split in any::<prop::sample::Index>(),
    ) {
        let wire = encode_windows(&windows);
        let decoder = FrameDecoder::new(MUTATION_LIMITS);
        let mut originals = Vec::new();
        let mut buf = BytesMut::from(&wire.bytes[..]);
        let mut ends = Vec::new();
        while let Some(f) = decoder.decode(&mut buf).unwrap() {
            originals.push(f);
            ends.push(wire.bytes.len() - buf.len());
        }
        let (bytes, at) = mutate(&wire, &m);
        let split = split.index(bytes.len() + 1);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        'parts: for part in [&bytes[..split], &bytes[split..]] {
            buf.extend_from_slice(part);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(f)) => got.push(f),
                    Ok(None) => break,
                    Err(e) => {
                        assert_stream_error(&e)?;
                        break 'parts;
                    }
                }
            }
        }
        let intact = ends.iter().filter(|&&end| end <= at).count();
        prop_assert!(got.len() >= intact, "{} frames before the mutation at {}, got {}", intact, at, got.len());
        prop_assert_eq!(&got[..intact], &originals[..intact]);
    }

    /// A mutated valid stream into a receiver session, split at random points: never a
    /// panic, every error names the stream's problem and fails the session, every batch
    /// respects the limits, and every window that ends before the first mutated byte
    /// arrives as sent.
    #[test]
    fn receiver_survives_mutated_windows(
        windows in proptest::collection::vec(window_spec(), 1..4),
        m in mutation(),
        splits in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        metered in any::<bool>(),
    ) {
        let wire = encode_windows(&windows);
        let (bytes, at) = mutate(&wire, &m);
        let mut cuts: Vec<usize> = splits.iter().map(|s| s.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(bytes.len());
        let t0 = Instant::now();
        let mut rx = ReceiverSession::new(ReceiverConfig {
            limits: MUTATION_LIMITS,
            metered_inflation: metered,
            ..ReceiverConfig::default()
        });
        let mut received: Vec<Vec<Payload>> = Vec::new();
        let mut from = 0;
        for cut in cuts {
            let mut result = rx.handle_input(&bytes[from..cut], t0);
            from = cut;
            while let (Ok(()), Some(want)) = (&result, rx.inflate_request()) {
                prop_assert!(want <= MUTATION_LIMITS.max_decompressed_size + 1);
                result = rx.grant_inflate(want, t0);
            }
            // Batches completed before an error stay valid.
            while let Some(batch) = rx.poll_batch() {
                prop_assert!(!batch.events.is_empty());
                prop_assert!(batch.events.len() <= MUTATION_LIMITS.max_window_size as usize);
                received.push(batch.events.into_iter().map(|e| e.payload).collect());
                rx.ack_batch(batch.id, t0).unwrap();
            }
            if let Err(e) = result {
                assert_stream_error(&e)?;
                prop_assert!(rx.is_failed());
                prop_assert!(matches!(rx.handle_input(b"2W", t0), Err(ProtocolError::SessionFailed)));
                break;
            }
        }
        let intact = wire.window_ends.iter().filter(|&&end| end <= at).count();
        prop_assert!(received.len() >= intact, "{} windows before the mutation at {}, got {}", intact, at, received.len());
        for (got, sent) in received.iter().zip(&windows).take(intact) {
            prop_assert_eq!(got, &sent.events);
        }
    }
}

#[derive(Debug, PartialEq)]
struct Handle(u32);

impl AsRef<[u8]> for Handle {
    fn as_ref(&self) -> &[u8] {
        b"{}"
    }
}
