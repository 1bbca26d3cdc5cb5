//! A whole v2 window as bytes: encoded once, kept, and written to a connection later as
//! they are.
//!
//! skidder's disk queue stores the windows `output.logstash` will send (its
//! docs/disk-queue.md §11), so each event is compressed once, when it is queued, and the
//! connection writes the stored bytes with [`ClientSession::send_packed`]. The bytes are
//! exactly those [`ClientSession::send_window`] writes for the same events and compressor:
//!
//! ```text
//! '2' 'W' count (u32 BE) | '2' 'C' len (u32 BE) | len bytes of zlib holding 'J' frames 1..=count
//! ```
//!
//! [`packed_count`] checks the two headers without inflating; [`unpack`] takes a window
//! apart again (for a destination that needs the events one by one). Both treat their input
//! as untrusted: every length is checked before it is used, nothing panics.
//!
//! [`ClientSession::send_packed`]: crate::ClientSession::send_packed
//! [`ClientSession::send_window`]: crate::ClientSession::send_window

use std::ops::Range;

use crate::compress::{Compressor, Inflater};
use crate::error::ProtocolError;
use crate::frame::{
    encode_json, encode_window, FrameType, Version, COMPRESSED_HEADER_LEN, JSON_HEADER_LEN,
    WINDOW_FRAME_LEN,
};

/// Bytes before the zlib stream of a packed window: the `W` frame and the `C` header.
pub const PACKED_HEADER_LEN: usize = WINDOW_FRAME_LEN + COMPRESSED_HEADER_LEN;

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Appends the window of `frames` (exactly `size` events) to `out`: `W(size)`, then `J`
/// frames 1..=`size`, compressed into one `C` frame when there is a `compressor`.
/// `scratch` is reused for the uncompressed frames. This is the one place a v2 window is
/// encoded; the client session and the disk queue both call it.
///
/// # Errors
/// [`ProtocolError::EventCountMismatch`] if `frames` holds fewer than `size` events,
/// [`ProtocolError::FrameTooLarge`] for an event or a compressed frame whose length does
/// not fit a u32, and the compressor's error. `out` may then hold part of the window: the
/// caller truncates it.
pub fn encode_window_bytes<'a, C: Compressor + ?Sized>(
    frames: impl Iterator<Item = &'a [u8]>,
    size: u32,
    compressor: Option<&mut C>,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    encode_window(Version::V2, size, out);
    let Some(compressor) = compressor else {
        return encode_frames(frames, size, out);
    };
    scratch.clear();
    encode_frames(frames, size, scratch)?;
    // '2' 'C' <len>: the length is only known after compressing, so write a placeholder
    // and patch it.
    out.extend_from_slice(&[Version::V2.into(), FrameType::Compressed.into(), 0, 0, 0, 0]);
    let body = out.len();
    compressor.compress_zlib(scratch, out)?;
    let len = u32::try_from(out.len() - body).map_err(|_| ProtocolError::FrameTooLarge {
        size: (out.len() - body) as u64,
        max: u64::from(u32::MAX),
    })?;
    out[body - 4..body].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Appends `J` frames 1..=`size` for `frames`, which must hold at least `size` events
/// (extra ones are not encoded).
pub(crate) fn encode_frames<'a>(
    frames: impl Iterator<Item = &'a [u8]>,
    size: u32,
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    let mut given = 0;
    for (seq, event) in (1..=size).zip(frames) {
        encode_json(seq, event, out)?;
        given = seq;
    }
    if given == size {
        Ok(())
    } else {
        Err(ProtocolError::EventCountMismatch {
            announced: size,
            given,
        })
    }
}

/// The event count of a packed window, if `wire` is one by its headers: a v2 `W` frame
/// announcing at least one event, then one `C` frame that ends exactly where `wire` does.
/// The zlib stream is not looked at.
pub fn packed_count(wire: &[u8]) -> Option<u32> {
    if wire.len() < PACKED_HEADER_LEN {
        return None;
    }
    let v2: u8 = Version::V2.into();
    let w: u8 = FrameType::Window.into();
    let c: u8 = FrameType::Compressed.into();
    if wire[0] != v2 || wire[1] != w || wire[6] != v2 || wire[7] != c {
        return None;
    }
    let count = be_u32(wire, 2);
    let len = be_u32(wire, 8) as usize;
    (count > 0 && len == wire.len() - PACKED_HEADER_LEN).then_some(count)
}

/// Takes a packed window apart: inflates its `C` frame into `out` (appending, at most
/// `max_inflated` bytes) and pushes the range of `out` holding each event's JSON to
/// `events`, in order. The content must be exactly `J` frames numbered 1..=count, each
/// with a non-empty payload.
///
/// # Errors
/// [`ProtocolError::UnexpectedFrame`] when the headers are not a packed window's (see
/// [`packed_count`]) or the content is not the `J` frames it announces; the inflater's
/// errors for a bad zlib stream (also past `max_inflated`). `out` and `events` may then hold
/// part of the window.
pub fn unpack(
    wire: &[u8],
    inflater: &mut Inflater,
    max_inflated: usize,
    out: &mut Vec<u8>,
    events: &mut Vec<Range<usize>>,
) -> Result<(), ProtocolError> {
    let Some(count) = packed_count(wire) else {
        return Err(bad("the bytes do not start with a W frame and one C frame"));
    };
    let start = out.len();
    inflater.inflate(&wire[PACKED_HEADER_LEN..], out, max_inflated)?;
    let mut at = start;
    let json: u8 = FrameType::Json.into();
    let v2: u8 = Version::V2.into();
    for seq in 1..=count {
        let rest = &out[at..];
        if rest.len() < JSON_HEADER_LEN || rest[0] != v2 || rest[1] != json {
            return Err(bad("the content is not the J frames the window announces"));
        }
        if be_u32(rest, 2) != seq {
            return Err(bad("a J frame's seq is out of order"));
        }
        let len = be_u32(rest, 6) as usize;
        if len == 0 {
            return Err(ProtocolError::EmptyJson { seq });
        }
        let body = at + JSON_HEADER_LEN;
        let end = body.checked_add(len).filter(|&e| e <= out.len()).ok_or(
            ProtocolError::TruncatedCompressedContent {
                remaining: out.len() - at,
            },
        )?;
        events.push(body..end);
        at = end;
    }
    if at != out.len() {
        return Err(bad("bytes follow the last J frame the window announces"));
    }
    Ok(())
}

fn bad(reason: &'static str) -> ProtocolError {
    ProtocolError::UnexpectedFrame {
        frame_type: FrameType::Compressed,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Flate2Compressor;

    fn pack(events: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_window_bytes(
            events.iter().copied(),
            events.len() as u32,
            Some(&mut Flate2Compressor::new(3)),
            &mut Vec::new(),
            &mut out,
        )
        .unwrap();
        out
    }

    fn unpacked(wire: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
        let (mut out, mut spans) = (Vec::new(), Vec::new());
        unpack(wire, &mut Inflater::new(), 1 << 20, &mut out, &mut spans)?;
        Ok(spans.into_iter().map(|r| out[r].to_vec()).collect())
    }

    #[test]
    fn a_packed_window_unpacks_to_its_events_in_order() {
        let events: [&[u8]; 3] = [b"{\"a\":1}", b"{\"b\":\"two\"}", b"{}"];
        let wire = pack(&events);
        assert_eq!(packed_count(&wire), Some(3));
        assert_eq!(unpacked(&wire).unwrap(), events.map(<[u8]>::to_vec));
    }

    #[test]
    fn headers_that_disagree_with_the_bytes_are_not_a_packed_window() {
        let wire = pack(&[b"{\"a\":1}"]);
        assert_eq!(
            packed_count(&wire[..wire.len() - 1]),
            None,
            "C frame cut short"
        );
        let mut longer = wire.clone();
        longer.push(0);
        assert_eq!(packed_count(&longer), None, "bytes after the C frame");
        let mut zero = wire.clone();
        zero[2..6].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(packed_count(&zero), None, "an empty window");
        let mut plain = Vec::new();
        encode_window_bytes::<Flate2Compressor>(
            [&b"{}"[..]].into_iter(),
            1,
            None,
            &mut Vec::new(),
            &mut plain,
        )
        .unwrap();
        assert_eq!(packed_count(&plain), None, "J frames without a C frame");
    }

    #[test]
    fn a_window_announcing_more_events_than_it_holds_is_refused() {
        let mut wire = pack(&[b"{\"a\":1}", b"{\"b\":2}"]);
        wire[2..6].copy_from_slice(&3u32.to_be_bytes());
        assert!(matches!(
            unpacked(&wire),
            Err(ProtocolError::UnexpectedFrame { .. })
        ));
        wire[2..6].copy_from_slice(&1u32.to_be_bytes());
        assert!(matches!(
            unpacked(&wire),
            Err(ProtocolError::UnexpectedFrame { .. })
        ));
    }

    #[test]
    fn a_corrupt_zlib_stream_is_an_error_not_a_panic() {
        let mut wire = pack(&[b"{\"a\":1}", b"{\"b\":2}"]);
        let mid = PACKED_HEADER_LEN + 4;
        wire[mid] ^= 0xff;
        assert!(unpacked(&wire).is_err());
    }

    #[test]
    fn the_inflated_size_is_capped() {
        let big = vec![b'x'; 4096];
        let mut doc = b"{\"m\":\"".to_vec();
        doc.extend_from_slice(&big);
        doc.extend_from_slice(b"\"}");
        let wire = pack(&[&doc]);
        let (mut out, mut spans) = (Vec::new(), Vec::new());
        assert!(matches!(
            unpack(&wire, &mut Inflater::new(), 1024, &mut out, &mut spans),
            Err(ProtocolError::DecompressedTooLarge { .. })
        ));
    }
}
