//! The test vectors of /work/shared/design/lumberjack-protocol.md §6, byte for byte.
//! Compressed frames are compared by their inflated content, since encoders differ.

use std::time::Instant;

use skidder_protocol::{
    ClientConfig, ClientEvent, ClientSession, Inflater, Payload, ProtocolError, ReceiverConfig,
    ReceiverSession, Version,
};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| b.is_ascii_hexdigit())
        .map(|b| (b as char).to_digit(16).unwrap() as u8)
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd hex: {s}");
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

const MSG_A: &[u8] = br#"{"message":"a"}"#;
const MSG_B: &[u8] = br#"{"message":"b"}"#;
const TV5_EVENT: &[u8] = br#"{"@timestamp":"2024-01-02T03:04:05.678Z","@metadata":{"beat":"filebeat","type":"_doc","version":"8.15.0"},"message":"x"}"#;

fn tv1() -> Vec<u8> {
    hex("32 57 00 00 00 01 32 4a 00 00 00 01 00 00 00 13
         7b 22 6d 65 73 73 61 67 65 22 3a 22 68 65 6c 6c 6f 22 7d")
}
fn tv2_inner() -> Vec<u8> {
    hex(
        "32 4a 00 00 00 01 00 00 00 0f 7b 22 6d 65 73 73 61 67 65 22 3a 22 61 22 7d
         32 4a 00 00 00 02 00 00 00 0f 7b 22 6d 65 73 73 61 67 65 22 3a 22 62 22 7d",
    )
}
fn tv2() -> Vec<u8> {
    cat(&[&hex("32 57 00 00 00 02"), &tv2_inner()])
}
fn tv3_stored() -> Vec<u8> {
    cat(&[
        &hex("32 57 00 00 00 02 32 43 00 00 00 3d 78 01 01 32 00 cd ff"),
        &tv2_inner(),
        &hex("f9 a7 0b 1b"),
    ])
}
fn tv3_level6() -> Vec<u8> {
    hex("32 57 00 00 00 02 32 43 00 00 00 28
         78 9c 33 f2 62 60 60 60 04 62 fe 6a a5 dc d4 e2 e2 c4 f4 54 25 2b a5 44 a5 5a 23 90 04
         13 ba 44 92 52 2d 00 f9 a7 0b 1b")
}
fn tv4() -> Vec<u8> {
    hex("32 57 00 00 00 01 32 4a 00 00 00 01 00 00 00 18
         7b 22 6d 65 73 73 61 67 65 22 3a 22 68 c3 a9 6c 6c 6f 20 e2 82 ac 22 7d")
}
fn tv5() -> Vec<u8> {
    cat(&[
        &hex("32 57 00 00 00 01 32 4a 00 00 00 01 00 00 00 78"),
        TV5_EVENT,
    ])
}
fn tv8() -> Vec<u8> {
    cat(&[
        &hex("32 57 00 00 00 01 32 4a 00 00 00 01 00 00 00 0f"),
        MSG_A,
        &hex("32 57 00 00 00 01 32 4a 00 00 00 01 00 00 00 0f"),
        MSG_B,
    ])
}
fn tv9() -> Vec<u8> {
    hex("31 57 00 00 00 01 31 44 00 00 00 01 00 00 00 02
         00 00 00 04 6c 69 6e 65 00 00 00 02 68 69
         00 00 00 04 68 6f 73 74 00 00 00 02 68 31")
}
fn tv10_w_inside_c() -> Vec<u8> {
    cat(&[
        &hex("32 57 00 00 00 01 32 43 00 00 00 2a 78 01 01 1f 00 e0 ff
              32 57 00 00 00 01 32 4a 00 00 00 01 00 00 00 0f"),
        MSG_A,
        &hex("47 d2 06 17"),
    ])
}
fn tv10_window_over_two_c() -> Vec<u8> {
    cat(&[
        &hex("32 57 00 00 00 02 32 43 00 00 00 24 78 01 01 19 00 e6 ff
              32 4a 00 00 00 01 00 00 00 0f"),
        MSG_A,
        &hex("37 72 05 8d 32 43 00 00 00 24 78 01 01 19 00 e6 ff
              32 4a 00 00 00 02 00 00 00 0f"),
        MSG_B,
        &hex("37 89 05 8f"),
    ])
}

/// Every vector a receiver accepts, with the reply Logstash sends once every batch
/// is stored. Used here and to seed the fuzz corpora.
fn accepted_vectors() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    vec![
        ("tv1", tv1(), hex("32 41 00 00 00 01")),
        ("tv2", tv2(), hex("32 41 00 00 00 02")),
        ("tv3-stored", tv3_stored(), hex("32 41 00 00 00 02")),
        ("tv3-level6", tv3_level6(), hex("32 41 00 00 00 02")),
        ("tv4", tv4(), hex("32 41 00 00 00 01")),
        ("tv5", tv5(), hex("32 41 00 00 00 01")),
        ("tv7", hex("32 57 00 00 00 00"), hex("32 41 00 00 00 00")),
        ("tv8", tv8(), hex("32 41 00 00 00 01 32 41 00 00 00 01")),
        ("tv9", tv9(), hex("31 41 00 00 00 01")),
        (
            "tv10-seq-11-12",
            cat(&[
                &hex("32 57 00 00 00 02 32 4a 00 00 00 0b 00 00 00 0f"),
                MSG_A,
                &hex("32 4a 00 00 00 0c 00 00 00 0f"),
                MSG_B,
            ]),
            hex("32 41 00 00 00 0c"),
        ),
        (
            "tv10-w-inside-c",
            tv10_w_inside_c(),
            hex("32 41 00 00 00 01"),
        ),
        (
            "tv10-window-over-two-c",
            tv10_window_over_two_c(),
            hex("32 41 00 00 00 02"),
        ),
    ]
}

/// A stored (level 0) zlib stream of `data`, built by hand so the bytes never depend on
/// the deflate backend: header, one final stored block, Adler-32.
fn stored_zlib(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap();
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    cat(&[
        &[0x78, 0x01, 0x01],
        &len.to_le_bytes(),
        &(!len).to_le_bytes(),
        data,
        &(b << 16 | a).to_be_bytes(),
    ])
}

fn compressed(zlib: &[u8]) -> Vec<u8> {
    cat(&[b"2C", &(zlib.len() as u32).to_be_bytes(), zlib])
}

/// A refused input: its name, its bytes, and whether an error is the expected one.
type Refusal = (&'static str, Vec<u8>, fn(&ProtocolError) -> bool);

/// Inputs a receiver must refuse, each with its error: fuzz seeds that start on the
/// refusal paths (checked by `receiver_refuses_every_refusal_vector`).
fn refused_vectors() -> Vec<Refusal> {
    let j1 = cat(&[&hex("32 4a 00 00 00 01 00 00 00 0f"), MSG_A]);
    vec![
        ("refuse-window-too-large", hex("32 57 00 00 27 11"), |e| {
            matches!(e, ProtocolError::WindowTooLarge { size: 10001, .. })
        }),
        (
            "refuse-c-inside-c",
            cat(&[
                &hex("32 57 00 00 00 01"),
                &compressed(&stored_zlib(&compressed(&stored_zlib(&j1)))),
            ]),
            |e| matches!(e, ProtocolError::NestedCompressed),
        ),
        ("refuse-bad-version", hex("33 57 00 00 00 01"), |e| {
            matches!(e, ProtocolError::UnknownVersion { byte: 0x33 })
        }),
        (
            "refuse-non-object-json",
            cat(&[
                &hex("32 57 00 00 00 01 32 4a 00 00 00 01 00 00 00 03"),
                b"[1]",
            ]),
            |e| matches!(e, ProtocolError::JsonNotObject { seq: 1, .. }),
        ),
        (
            "refuse-empty-json",
            hex("32 57 00 00 00 01 32 4a 00 00 00 01 00 00 00 00"),
            |e| matches!(e, ProtocolError::EmptyJson { seq: 1 }),
        ),
        (
            "refuse-frame-too-large",
            hex("32 57 00 00 00 01 32 4a 00 00 00 01 ff ff ff f0"),
            |e| matches!(e, ProtocolError::FrameTooLarge { .. }),
        ),
        ("refuse-data-outside-window", j1.clone(), |e| {
            matches!(e, ProtocolError::DataOutsideWindow { seq: 1 })
        }),
        ("refuse-ack-from-client", hex("32 41 00 00 00 01"), |e| {
            matches!(e, ProtocolError::UnexpectedFrame { .. })
        }),
        (
            "refuse-v1-data-in-v2-window",
            cat(&[&hex("32 57 00 00 00 01"), &tv9()[6..]]),
            |e| matches!(e, ProtocolError::BatchVersionMismatch { .. }),
        ),
        (
            "refuse-window-before-complete",
            cat(&[&hex("32 57 00 00 00 02"), &j1, &hex("32 57 00 00 00 01")]),
            |e| {
                matches!(
                    e,
                    ProtocolError::WindowIncomplete {
                        received: 1,
                        expected: 2
                    }
                )
            },
        ),
        (
            "refuse-compressed-ends-inside-frame",
            cat(&[
                &hex("32 57 00 00 00 01"),
                &compressed(&stored_zlib(&j1[..12])),
            ]),
            |e| matches!(e, ProtocolError::TruncatedCompressedContent { .. }),
        ),
    ]
}

#[test]
fn receiver_refuses_every_refusal_vector() {
    for (name, input, expected) in refused_vectors() {
        for chunk in [1, 7, input.len()] {
            match receive(&input, chunk) {
                Err(e) => assert!(expected(&e), "{name} (reads of {chunk}): wrong error {e:?}"),
                Ok(r) => panic!("{name} (reads of {chunk}) accepted: {r:?}"),
            }
        }
    }
}

/// Events per window of an accepted vector, oldest first (0 for an empty window).
fn window_sizes(input: &[u8], reply: &[u8]) -> Vec<u8> {
    let now = Instant::now();
    let mut rx = ReceiverSession::new(ReceiverConfig::default());
    rx.handle_input(input, now).unwrap();
    let mut batches = std::iter::from_fn(|| rx.poll_batch());
    reply
        .chunks(6)
        .map(|ack| {
            if ack[2..] == [0, 0, 0, 0] {
                0
            } else {
                u8::try_from(batches.next().unwrap().events.len()).unwrap()
            }
        })
        .collect()
}

/// Feeds `input` in chunks of `chunk` bytes, stores and ACKs every batch, and
/// returns the reply bytes and the batches' payloads.
fn receive(input: &[u8], chunk: usize) -> Result<(Vec<u8>, Vec<Payload>), ProtocolError> {
    let now = Instant::now();
    let mut rx = ReceiverSession::new(ReceiverConfig::default());
    let mut reply = Vec::new();
    let mut payloads = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        rx.handle_input(piece, now)?;
        while let Some(batch) = rx.poll_batch() {
            payloads.extend(batch.events.into_iter().map(|e| e.payload));
            rx.ack_batch(batch.id, now)?;
        }
        while let Some(bytes) = rx.poll_transmit() {
            reply.extend(bytes);
        }
    }
    Ok((reply, payloads))
}

#[test]
fn receiver_answers_every_vector_like_logstash_at_every_split() {
    for (name, input, expected_reply) in accepted_vectors() {
        let (whole, payloads) = receive(&input, input.len()).unwrap();
        assert_eq!(whole, expected_reply, "{name}");
        for split in 1..input.len() {
            let now = Instant::now();
            let mut rx = ReceiverSession::new(ReceiverConfig::default());
            let mut reply = Vec::new();
            let mut got = Vec::new();
            for piece in [&input[..split], &input[split..]] {
                rx.handle_input(piece, now)
                    .unwrap_or_else(|e| panic!("{name} split {split}: {e}"));
                while let Some(batch) = rx.poll_batch() {
                    got.extend(batch.events.into_iter().map(|e| e.payload));
                    rx.ack_batch(batch.id, now).unwrap();
                }
                while let Some(bytes) = rx.poll_transmit() {
                    reply.extend(bytes);
                }
            }
            assert_eq!(reply, expected_reply, "{name} split at {split}");
            assert_eq!(got, payloads, "{name} split at {split}");
        }
        let (bytewise, got) = receive(&input, 1).unwrap();
        assert_eq!(bytewise, expected_reply, "{name} byte by byte");
        assert_eq!(got, payloads, "{name} byte by byte");
    }
}

#[test]
fn receiver_payloads_match_the_vectors() {
    let (_, p) = receive(&tv4(), 7).unwrap();
    assert_eq!(
        p,
        vec![Payload::Json(
            "{\"message\":\"héllo €\"}".as_bytes().to_vec().into()
        )]
    );
    let (_, p) = receive(&tv3_level6(), 3).unwrap();
    assert_eq!(
        p,
        vec![
            Payload::Json(MSG_A.to_vec().into()),
            Payload::Json(MSG_B.to_vec().into())
        ]
    );
    let (_, p) = receive(&tv9(), 100).unwrap();
    assert_eq!(
        p,
        vec![Payload::Fields(vec![
            (b"line".to_vec().into(), b"hi".to_vec().into()),
            (b"host".to_vec().into(), b"h1".to_vec().into()),
        ])]
    );
}

fn encode(level: u32, windows: &[&[&[u8]]]) -> Vec<u8> {
    let mut client = ClientSession::new(ClientConfig {
        compression_level: level,
        ..ClientConfig::default()
    });
    let mut out = Vec::new();
    for w in windows {
        client
            .send_window(w.to_vec(), &mut out, Instant::now())
            .unwrap();
    }
    out
}

#[test]
fn client_encodes_uncompressed_vectors_byte_for_byte() {
    assert_eq!(encode(0, &[&[br#"{"message":"hello"}"#]]), tv1());
    assert_eq!(encode(0, &[&[MSG_A, MSG_B]]), tv2());
    assert_eq!(
        encode(0, &[&["{\"message\":\"héllo €\"}".as_bytes()]]),
        tv4()
    );
    assert_eq!(encode(0, &[&[TV5_EVENT]]), tv5());
    assert_eq!(encode(0, &[&[MSG_A], &[MSG_B]]), tv8());
}

#[test]
fn client_compressed_window_inflates_to_tv2() {
    for level in 1..=9 {
        let out = encode(level, &[&[MSG_A, MSG_B]]);
        assert_eq!(
            out[..8],
            hex("32 57 00 00 00 02 32 43")[..],
            "level {level}"
        );
        let len = u32::from_be_bytes([out[8], out[9], out[10], out[11]]) as usize;
        assert_eq!(out.len(), 12 + len, "C length header, level {level}");
        let mut inflated = Vec::new();
        Inflater::new()
            .inflate(&out[12..], &mut inflated, 1 << 20)
            .unwrap();
        assert_eq!(inflated, tv2_inner(), "level {level}");
    }
}

#[test]
fn client_handles_tv6_keepalives_then_final_ack() {
    let t0 = Instant::now();
    let mut client = ClientSession::new(ClientConfig::default());
    client
        .send_window(vec![MSG_A, MSG_B], &mut Vec::new(), t0)
        .unwrap();
    let reply = hex("32 41 00 00 00 00 32 41 00 00 00 00 32 41 00 00 00 02");
    for (i, b) in reply.iter().enumerate() {
        client.handle_input(&[*b], t0).unwrap();
        if i < 17 {
            assert_eq!(client.in_flight(), 1, "done too early at byte {i}");
        }
    }
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::WindowAcked {
            events: vec![MSG_A, MSG_B]
        })
    );
    assert_eq!(client.poll_event(), None);
}

#[test]
fn client_matches_tv8_acks_in_order() {
    let t0 = Instant::now();
    let mut client = ClientSession::new(ClientConfig::default());
    client
        .send_window(vec![MSG_A], &mut Vec::new(), t0)
        .unwrap();
    client
        .send_window(vec![MSG_B], &mut Vec::new(), t0)
        .unwrap();
    client
        .handle_input(&hex("32 41 00 00 00 01 32 41 00 00 00 01"), t0)
        .unwrap();
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::WindowAcked {
            events: vec![MSG_A]
        })
    );
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::WindowAcked {
            events: vec![MSG_B]
        })
    );
}

#[test]
fn tv10_refusals() {
    let err = receive(&hex("32 57 00 00 00 01 32 4a 00 00 00 01 00 00 00 00"), 100).unwrap_err();
    assert!(
        matches!(err, ProtocolError::EmptyJson { seq: 1 }),
        "{err:?}"
    );
    let err = receive(&hex("32 57 00 00 27 11"), 100).unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::WindowTooLarge {
                size: 10001,
                max: 10000
            }
        ),
        "{err:?}"
    );
}

#[test]
fn tv7_empty_window_keeps_the_version_byte() {
    let (reply, _) = receive(&hex("31 57 00 00 00 00"), 1).unwrap();
    assert_eq!(reply, hex("31 41 00 00 00 00"));
    assert_eq!(u8::from(Version::V1), 0x31);
}

/// What the `client_acks` fuzz target does with a seed: three windows of `head[0..3] % 8`
/// events, level and read size from `head[3]`, then the reply. Returns the windows still
/// in flight, or the first error.
fn client_replay(seed: &[u8]) -> Result<usize, ProtocolError> {
    let (head, reply) = seed.split_at(4);
    let now = Instant::now();
    let mut client = ClientSession::new(ClientConfig {
        compression_level: u32::from(head[3] % 4),
        ..ClientConfig::default()
    });
    for &size in &head[..3] {
        let events = vec![MSG_A; usize::from(size % 8)];
        client.send_window(events, &mut Vec::new(), now).unwrap();
    }
    for piece in reply.chunks(usize::from(head[3] >> 4).max(1)) {
        client.handle_input(piece, now)?;
    }
    Ok(client.in_flight())
}

/// The committed protocol fuzz seeds (`fuzz/corpus/*/seed-*`) are exactly the golden and
/// refusal vectors, so the fuzzers start from every accepted shape of the protocol and
/// from each refusal path. Refresh them after changing a
/// vector with `SKIDDER_WRITE_FUZZ_SEEDS=1 cargo test -p skidder-protocol --test golden`.
#[test]
fn fuzz_seeds_are_the_golden_vectors() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let refresh = std::env::var_os("SKIDDER_WRITE_FUZZ_SEEDS").is_some();
    // In CI the check must check: a refresh there would make it pass whatever the seeds are.
    assert!(
        !(refresh && std::env::var_os("CI").is_some()),
        "SKIDDER_WRITE_FUZZ_SEEDS is refused when CI is set: refresh the seeds locally and commit them"
    );
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        let path = dir.join(format!("seed-{name}"));
        if refresh {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, bytes).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; refresh with SKIDDER_WRITE_FUZZ_SEEDS=1",
                    path.display()
                )
            });
            assert_eq!(
                committed,
                bytes,
                "{} differs from its golden vector; refresh with SKIDDER_WRITE_FUZZ_SEEDS=1",
                path.display()
            );
        }
    };
    // receiver_decode: read size, schedule length, schedule, client bytes. Reads of 7
    // with no schedule store every batch at once; one read with schedule [0] holds every
    // batch and stores them at the end newest first (ACKs must still leave in order).
    // client_acks: three window sizes (the vector's events per window, so the reply
    // completes them: ACK values equal to the counts, as the client numbers 1..N), then
    // a byte holding read size and compression level, then the reply.
    for (name, input, reply) in accepted_vectors() {
        write(
            "receiver_decode",
            &format!("{name}-r7"),
            &cat(&[&[7, 0], &input]),
        );
        write(
            "receiver_decode",
            &format!("{name}-r255-late"),
            &cat(&[&[255, 1, 0], &input]),
        );
        let sizes = window_sizes(&input, &reply);
        let mut head = [0u8, 0, 0, 0x13];
        let mut acks = Vec::new();
        for (slot, size) in head.iter_mut().zip(&sizes) {
            *slot = *size;
            // The client speaks v2 only: a v1 vector's `1A` would refuse the reply at once.
            acks.extend_from_slice(&[b'2', b'A', 0, 0, 0, *size]);
        }
        let seed = cat(&[&head, &acks]);
        assert_eq!(
            client_replay(&seed).map_err(|e| e.to_string()),
            Ok(0),
            "client_acks seed {name} must complete its windows, not start on an error path"
        );
        write("client_acks", name, &seed);
    }
    for (name, input, _) in refused_vectors() {
        write(
            "receiver_decode",
            &format!("{name}-r7"),
            &cat(&[&[7, 0], &input]),
        );
    }
    // Client refusals: an ACK above the window's count, a reply that is not an ACK.
    for (name, seed) in [
        (
            "refuse-ack-over-window",
            hex("02 00 00 13 32 41 00 00 00 03"),
        ),
        ("refuse-not-an-ack", hex("02 00 00 13 32 57 00 00 00 02")),
    ] {
        assert!(client_replay(&seed).is_err(), "{name} is refused");
        write("client_acks", name, &seed);
    }
    write(
        "client_acks",
        "tv6",
        &hex("02 00 00 21 32 41 00 00 00 00 32 41 00 00 00 00 32 41 00 00 00 02"),
    );
    write("inflate", "tv3-stored", &tv3_stored()[12..]);
    write("inflate", "tv3-level6", &tv3_level6()[12..]);
    write("inflate", "tv10-w-inside-c", &tv10_w_inside_c()[12..]);
    write("inflate", "refuse-truncated", &tv3_level6()[12..30]);
}
