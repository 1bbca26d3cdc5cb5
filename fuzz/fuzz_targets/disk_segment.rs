//! Arbitrary bytes as a disk queue segment file (docs/disk-queue.md §3, versions 1 to 3), fed
//! to the segment reader in pieces whose size comes from the first byte: never a panic, seqs
//! only grow, offsets only grow, every payload within the frame limit, every packed window
//! passing its checks, and the header and position decoders accept any bytes.
//!
//! The same bytes are then read a second way, as a recipe for a segment the writer encodes
//! (every CRC good, packed windows whose counts may disagree with their wire) and then
//! damages: random bytes almost never carry a matching CRC, so without it the packed checks
//! behind the CRC would go unexercised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skidder::pipeline::disk::format::{
    decode_header, decode_position, encode_batch, encode_frame, encode_header_version,
    encode_packed_frame, FrameReader, Item, Step, BLOCK, HEADER_LEN, MAX_PACKED_EVENTS,
    MAX_PAYLOAD, VERSION, VERSION_1, VERSION_2,
};
use skidder_protocol::packed::packed_count;

/// Frames and windows read, or written: (seq, count, bytes); a plain frame's count is `None`.
type Items = Vec<(u64, Option<u32>, Vec<u8>)>;

/// Reads `segment` (a header, then frames) in pieces of `piece` bytes and checks the
/// invariants every read keeps, whatever the bytes.
fn read(segment: &[u8], piece: usize) -> Items {
    let _ = decode_position(segment);
    let first = decode_header(segment).unwrap_or(0);
    let body = segment.get(HEADER_LEN..).unwrap_or_default();
    let piece = piece.max(1);
    let mut reader = FrameReader::new(first);
    let mut fed = 0;
    let mut next = first;
    let mut at = HEADER_LEN as u64;
    let mut got = Vec::new();
    loop {
        match reader.next(fed >= body.len()) {
            Step::NeedMore => {
                let end = (fed + piece).min(body.len());
                // Copied and handed-over pieces alternate, as the queue's reader mixes them.
                if (fed / piece) % 2 == 0 {
                    reader.feed_bytes(bytes::Bytes::copy_from_slice(&body[fed..end]));
                } else {
                    reader.feed(&body[fed..end]);
                }
                fed = end;
            }
            Step::Frame {
                seq,
                offset,
                payload,
            } => {
                assert!(payload.len() <= MAX_PAYLOAD);
                assert!(seq >= next, "seq {seq} before {next}");
                assert!(offset >= at, "offset {offset} before {at}");
                next = seq + 1;
                at = offset + 1;
                got.push((seq, None, payload.to_vec()));
            }
            Step::Packed {
                seq,
                count,
                offset,
                wire,
            } => {
                assert!((1..=MAX_PACKED_EVENTS).contains(&count), "count {count}");
                assert_eq!(
                    packed_count(&wire),
                    Some(count),
                    "a window's two counts differ"
                );
                assert!(wire.len() < MAX_PAYLOAD);
                assert!(seq >= next, "seq {seq} before {next}");
                assert!(offset >= at, "offset {offset} before {at}");
                next = seq + u64::from(count);
                at = offset + 1;
                got.push((seq, Some(count), wire.to_vec()));
            }
            Step::Damaged { offset, .. } => {
                assert!(offset >= HEADER_LEN as u64);
                assert!(
                    offset >= at.saturating_sub(1),
                    "damage at {offset} before {at}"
                );
                next = reader.expected();
            }
            Step::Tail { offset } | Step::End { offset } => {
                assert!(offset <= (HEADER_LEN + body.len()) as u64);
                return got;
            }
        }
    }
}

/// Builds a segment from `data`: `[piece, layout, items..., 0xFF, (pos u16 LE, xor u8)...]`,
/// each item `[tag, len, len bytes]`. Tag bit 0 clear: an event. Set: a packed window whose
/// wire is the bytes (bit 1 clear: count `tag >> 2`, which may disagree with them) or, with
/// bit 1 set, the bytes behind headers announcing `(tag >> 2) + 1` events (valid by its
/// headers). Returns the segment, its piece size, the items, and whether any byte was
/// damaged.
fn build(data: &[u8]) -> Option<(Vec<u8>, usize, Items, bool)> {
    let (&piece, rest) = data.split_first()?;
    let (&layout, mut rest) = rest.split_first()?;
    let version = [VERSION_1, VERSION_2, VERSION][usize::from(layout % 3)];
    let per_batch = usize::from(layout >> 2) % 8 + 1;
    let first = 5u64;
    let mut items = Vec::new();
    let mut seq = first;
    while let [tag, len, more @ ..] = rest {
        if *tag == 0xFF {
            break;
        }
        let n = usize::from(*len).min(more.len());
        let body = &more[..n];
        rest = &more[n..];
        if tag & 1 == 0 {
            if body.is_empty() {
                continue;
            }
            items.push((seq, None, body.to_vec()));
            seq += 1;
        } else if tag & 2 == 0 {
            let count = u32::from(tag >> 2);
            items.push((seq, Some(count), body.to_vec()));
            seq += u64::from(count.max(1));
        } else {
            let count = u32::from(tag >> 2) + 1;
            let mut wire = b"2W".to_vec();
            wire.extend_from_slice(&count.to_be_bytes());
            wire.extend_from_slice(b"2C");
            wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
            wire.extend_from_slice(body);
            items.push((seq, Some(count), wire));
            seq += u64::from(count);
        }
    }
    let mut seg = encode_header_version(first, version).to_vec();
    if version == VERSION_1 {
        for it in items.iter().map(as_item) {
            match it {
                Item::Event { seq, payload } => encode_frame(&mut seg, seq, payload),
                Item::Packed { seq, count, wire } => {
                    encode_packed_frame(&mut seg, seq, count, wire)
                }
            }
        }
    } else {
        seg.resize(BLOCK, 0);
        let mut chunk = vec![0u8; BLOCK];
        for batch in items.chunks(per_batch) {
            encode_batch(batch.iter().map(as_item), &mut chunk, |p| {
                seg.extend_from_slice(p);
                Ok::<(), ()>(())
            })
            .ok()?;
        }
    }
    let mut damaged = false;
    if let [0xFF, flips @ ..] = rest {
        for f in flips.chunks_exact(3) {
            let span = seg.len() - HEADER_LEN;
            if span == 0 || f[2] == 0 {
                continue;
            }
            let pos = HEADER_LEN + usize::from(u16::from_le_bytes([f[0], f[1]])) % span;
            seg[pos] ^= f[2];
            damaged = true;
        }
    }
    Some((seg, usize::from(piece), items, damaged))
}

/// The writer's item for one entry of [`Items`].
fn as_item((seq, count, bytes): &(u64, Option<u32>, Vec<u8>)) -> Item<'_> {
    match count {
        None => Item::Event {
            seq: *seq,
            payload: bytes,
        },
        Some(count) => Item::Packed {
            seq: *seq,
            count: *count,
            wire: bytes,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&piece, segment)) = data.split_first() else {
        return;
    };
    read(segment, usize::from(piece));

    let Some((seg, piece, items, damaged)) = build(data) else {
        return;
    };
    let got = read(&seg, piece);
    let valid = |(_, count, bytes): &(u64, Option<u32>, Vec<u8>)| match count {
        None => true,
        Some(c) => (1..=MAX_PACKED_EVENTS).contains(c) && packed_count(bytes) == Some(*c),
    };
    if !damaged && items.iter().all(valid) {
        // Undamaged and every window consistent: exactly what was written comes back.
        assert_eq!(got, items, "a clean segment did not read back");
    }
});
