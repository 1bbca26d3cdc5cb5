//! Property tests: encode → decode round trips, client ↔ receiver round trips,
//! and arbitrary ACK streams only ever producing documented outcomes.

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

#[derive(Debug, PartialEq)]
struct Handle(u32);

impl AsRef<[u8]> for Handle {
    fn as_ref(&self) -> &[u8] {
        b"{}"
    }
}
