//! Arbitrary bytes as a disk queue segment file (docs/disk-queue.md §3, versions 1 and 2), fed
//! to the segment reader in pieces whose size comes from the first byte: never a panic, seqs only
//! grow, every payload within the frame limit, and the header and position decoders accept
//! any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skidder::pipeline::disk::format::{
    decode_header, decode_position, FrameReader, Step, HEADER_LEN, MAX_PAYLOAD,
};

fuzz_target!(|data: &[u8]| {
    let Some((&piece, segment)) = data.split_first() else {
        return;
    };
    let _ = decode_position(segment);
    let first = decode_header(segment).unwrap_or(0);
    let body = segment.get(HEADER_LEN..).unwrap_or_default();
    let piece = usize::from(piece).max(1);
    let mut reader = FrameReader::new(first);
    let mut fed = 0;
    let mut last: Option<u64> = None;
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
            Step::Frame { seq, payload, .. } => {
                assert!(payload.len() <= MAX_PAYLOAD);
                assert!(last.is_none_or(|l| seq > l), "seq {seq} after {last:?}");
                assert!(seq >= first);
                last = Some(seq);
            }
            Step::Damaged { offset, .. } => assert!(offset >= HEADER_LEN as u64),
            Step::Tail { offset } | Step::End { offset } => {
                assert!(offset <= (HEADER_LEN + body.len()) as u64);
                break;
            }
        }
    }
});
