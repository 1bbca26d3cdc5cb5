//! The disk queue's bytes: segment header, frames, position slots (docs/disk-queue.md §3, §4).
//!
//! Pure: no files, no clock. [`FrameReader`] decodes a segment's frames from bytes fed to it
//! in pieces of any size, like a tokio-util decoder: `NeedMore` when it needs more bytes, and
//! damage is reported (with the byte offset and the events lost) and skipped, never a panic.
//! Everything read from disk is untrusted; every length is checked before it is used.

use bytes::{Buf, Bytes, BytesMut};

/// Magic bytes opening a segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"SKDQ";
/// Magic bytes opening a position slot.
pub const POSITION_MAGIC: [u8; 4] = *b"SKQP";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Segment header length.
pub const HEADER_LEN: usize = 24;
/// Bytes of a frame before its payload.
pub const FRAME_HEADER_LEN: usize = 16;
/// The largest payload a frame may hold; a larger `len` is damage.
pub const MAX_PAYLOAD: usize = 64 << 20;
/// One position slot.
pub const SLOT_LEN: usize = 32;
/// The position file: two slots.
pub const POSITION_LEN: usize = 2 * SLOT_LEN;

/// A frame's CRC: its `len` and `seq` fields, then the payload. The two fields go in as one
/// 12-byte piece: `crc32fast` takes short pieces a byte table at a time, and two of them per
/// frame showed in the profile.
fn frame_crc(len: &[u8], seq: &[u8], payload: &[u8]) -> u32 {
    let mut head = [0u8; 12];
    head[..4].copy_from_slice(len);
    head[4..].copy_from_slice(seq);
    crc(&[&head, payload])
}

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Why a segment header or a position slot was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer bytes than a header.
    #[error("shorter than a header")]
    Short,
    /// Wrong magic or checksum.
    #[error("damaged (bad magic or checksum)")]
    Damaged,
    /// A valid header of a format this build does not know.
    #[error("format version {version} (flags {flags:#x}); this build reads version {VERSION}")]
    UnknownVersion {
        /// The version found.
        version: u32,
        /// The flags found.
        flags: u32,
    },
}

/// Encodes a segment header for a segment whose first frame has seq `first`.
pub fn encode_header(first: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4..8].copy_from_slice(&VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&first.to_le_bytes());
    // 16..20: flags, 0.
    let c = crc(&[&h[0..20]]);
    h[20..24].copy_from_slice(&c.to_le_bytes());
    h
}

/// Decodes a segment header: the seq of its first frame.
///
/// # Errors
/// [`HeaderError`]; `UnknownVersion` only when the checksum matches.
pub fn decode_header(b: &[u8]) -> Result<u64, HeaderError> {
    if b.len() < HEADER_LEN {
        return Err(HeaderError::Short);
    }
    if b[0..4] != SEGMENT_MAGIC || crc(&[&b[0..20]]) != u32_at(b, 20) {
        return Err(HeaderError::Damaged);
    }
    let (version, flags) = (u32_at(b, 4), u32_at(b, 16));
    if version != VERSION || flags != 0 {
        return Err(HeaderError::UnknownVersion { version, flags });
    }
    Ok(u64_at(b, 8))
}

/// Appends one frame holding `payload` as event `seq`.
///
/// ```text
/// len u32 | crc u32 (of len, seq, payload) | seq u64 | payload
/// ```
pub fn encode_frame(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    out.extend_from_slice(&frame_head(seq, payload));
    out.extend_from_slice(payload);
}

/// The 16 bytes before `payload` in its frame (see [`encode_frame`]): the writer sends them
/// and the payload as two pieces of one `writev`, so the payload is never copied.
pub fn frame_head(seq: u64, payload: &[u8]) -> [u8; FRAME_HEADER_LEN] {
    let len = (payload.len() as u32).to_le_bytes();
    let seq_b = seq.to_le_bytes();
    let c = frame_crc(&len, &seq_b, payload);
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[0..4].copy_from_slice(&len);
    h[4..8].copy_from_slice(&c.to_le_bytes());
    h[8..16].copy_from_slice(&seq_b);
    h
}

/// The bytes a frame holding `payload_len` bytes takes.
pub const fn frame_len(payload_len: usize) -> usize {
    FRAME_HEADER_LEN + payload_len
}

/// What starts at `b[0]`.
enum Probe {
    /// A valid frame: seq and total length.
    Frame(u64, usize),
    /// Could be a frame, but the bytes end first.
    Short,
    /// Not a valid frame.
    Invalid,
}

fn probe(b: &[u8]) -> Probe {
    if b.len() < FRAME_HEADER_LEN {
        return Probe::Short;
    }
    let len = u32_at(b, 0) as usize;
    if len == 0 || len > MAX_PAYLOAD {
        return Probe::Invalid;
    }
    let total = FRAME_HEADER_LEN + len;
    if b.len() < total {
        return Probe::Short;
    }
    if frame_crc(&b[0..4], &b[8..16], &b[16..total]) != u32_at(b, 4) {
        return Probe::Invalid;
    }
    Probe::Frame(u64_at(b, 8), total)
}

/// One step of [`FrameReader::next`].
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A frame: its seq, its byte offset in the segment and its payload.
    Frame {
        /// The event's seq.
        seq: u64,
        /// Where the frame starts in the segment.
        offset: u64,
        /// The encoded event: a slice of the bytes read, not a copy.
        payload: Bytes,
    },
    /// Damage from `offset` up to a valid frame, which the next step returns: the frames
    /// in between held `lost` events.
    Damaged {
        /// Where the damage starts in the segment.
        offset: u64,
        /// Events between the last good frame and the next one.
        lost: u64,
    },
    /// The bytes end in damage or in part of a frame at `offset`, with no valid frame after
    /// it: a torn tail in the segment being written, damage elsewhere.
    Tail {
        /// Where the last good frame ends.
        offset: u64,
    },
    /// The bytes end exactly after a frame (or the header).
    End {
        /// The segment's length.
        offset: u64,
    },
    /// Feed more bytes (or call again with `eof`).
    NeedMore,
}

/// Decodes the frames of one segment from bytes fed in pieces (see the module docs).
#[derive(Debug)]
pub struct FrameReader {
    /// Bytes not yet decoded. Payloads are split off it (shared, no copy), so a block read
    /// stays allocated until the last event sliced from it is dropped.
    buf: BytesMut,
    /// Segment offset of `buf[0]`.
    base: u64,
    /// The seq the next frame should have.
    expected: u64,
    /// Set while skipping damage: where it started.
    damage: Option<u64>,
}

impl FrameReader {
    /// A reader of a segment whose frames start at seq `first`, fed from just after the
    /// header.
    pub fn new(first: u64) -> Self {
        Self {
            buf: BytesMut::new(),
            base: HEADER_LEN as u64,
            expected: first,
            damage: None,
        }
    }

    /// The seq the next frame should have (after a frame or a damage report, the next one).
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// The segment offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.base
    }

    /// Appends bytes read from the segment.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Room for up to `max` more bytes at the end of the reader's buffer, not zeroed: the
    /// caller `read(2)`s into it and then calls [`Self::filled`]. Zeroing 256 KiB before every
    /// read was 1.6% of a disk-queue run's CPU (docs/disk-queue.md §8).
    pub fn spare(&mut self, max: usize) -> &mut [std::mem::MaybeUninit<u8>] {
        self.buf.reserve(max);
        let room = self.buf.spare_capacity_mut();
        let n = room.len().min(max);
        &mut room[..n]
    }

    /// Takes `n` bytes written into the last [`Self::spare`] slice as fed.
    ///
    /// # Safety
    /// The first `n` bytes of the slice the last `spare` call returned were written, and
    /// nothing changed the reader in between.
    pub unsafe fn filled(&mut self, n: usize) {
        // SAFETY: the caller wrote these bytes, which lie within the reserved capacity.
        unsafe { self.buf.set_len(self.buf.len() + n) }
    }

    /// Bytes held but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn skip(&mut self, n: usize) -> BytesMut {
        self.base += n as u64;
        self.buf.split_to(n)
    }

    /// The next frame, damage report or end. `eof`: no more bytes will be fed.
    pub fn next(&mut self, eof: bool) -> Step {
        loop {
            let rest = &self.buf[..];
            if rest.is_empty() {
                return match (eof, self.damage.take()) {
                    (false, d) => {
                        self.damage = d;
                        Step::NeedMore
                    }
                    (true, Some(offset)) => Step::Tail { offset },
                    (true, None) => Step::End {
                        offset: self.offset(),
                    },
                };
            }
            match probe(rest) {
                // A frame older than expected is not where we are (a false resync, or bytes
                // a failed write left): damage, like any other invalid frame.
                Probe::Frame(seq, total) if seq >= self.expected => {
                    if let Some(offset) = self.damage.take() {
                        let lost = seq - self.expected;
                        self.expected = seq;
                        // Return the frame on the next call.
                        return Step::Damaged { offset, lost };
                    }
                    let offset = self.offset();
                    let mut frame = self.skip(total);
                    frame.advance(FRAME_HEADER_LEN);
                    let payload = frame.freeze();
                    self.expected = seq.saturating_add(1);
                    return Step::Frame {
                        seq,
                        offset,
                        payload,
                    };
                }
                Probe::Short if !eof => return Step::NeedMore,
                Probe::Short if self.damage.is_none() => {
                    // A partial frame at the end of the bytes: a torn tail.
                    return Step::Tail {
                        offset: self.offset(),
                    };
                }
                _ => {
                    if self.damage.is_none() {
                        self.damage = Some(self.offset());
                    }
                    self.buf.advance(1);
                    self.base += 1;
                }
            }
        }
    }
}

/// One decoded position slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Bumped on every write; the larger wins.
    pub generation: u64,
    /// Every event with a smaller seq is settled.
    pub acked: u64,
}

/// Encodes a position slot.
pub fn encode_slot(slot: Slot) -> [u8; SLOT_LEN] {
    let mut b = [0u8; SLOT_LEN];
    b[0..4].copy_from_slice(&POSITION_MAGIC);
    b[4..8].copy_from_slice(&VERSION.to_le_bytes());
    b[8..16].copy_from_slice(&slot.generation.to_le_bytes());
    b[16..24].copy_from_slice(&slot.acked.to_le_bytes());
    let c = crc(&[&b[0..24]]);
    b[24..28].copy_from_slice(&c.to_le_bytes());
    b
}

/// Decodes a position slot.
///
/// # Errors
/// [`HeaderError`], `UnknownVersion` only when the checksum matches.
pub fn decode_slot(b: &[u8]) -> Result<Slot, HeaderError> {
    if b.len() < SLOT_LEN {
        return Err(HeaderError::Short);
    }
    if b[0..4] != POSITION_MAGIC || crc(&[&b[0..24]]) != u32_at(b, 24) {
        return Err(HeaderError::Damaged);
    }
    let version = u32_at(b, 4);
    let flags = u32_at(b, 28);
    if version != VERSION || flags != 0 {
        return Err(HeaderError::UnknownVersion { version, flags });
    }
    Ok(Slot {
        generation: u64_at(b, 8),
        acked: u64_at(b, 16),
    })
}

/// Decodes the position file: the valid slot with the larger generation, `None` if neither
/// is valid.
///
/// # Errors
/// [`HeaderError::UnknownVersion`] when a slot is valid but of another version.
pub fn decode_position(b: &[u8]) -> Result<Option<Slot>, HeaderError> {
    let mut best: Option<Slot> = None;
    for i in 0..2 {
        let Some(bytes) = b.get(i * SLOT_LEN..(i + 1) * SLOT_LEN) else {
            continue;
        };
        match decode_slot(bytes) {
            Ok(s) if best.is_none_or(|b| s.generation > b.generation) => best = Some(s),
            Ok(_) | Err(HeaderError::Short | HeaderError::Damaged) => {}
            Err(e @ HeaderError::UnknownVersion { .. }) => return Err(e),
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segment(first: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut b = encode_header(first).to_vec();
        for (i, p) in payloads.iter().enumerate() {
            encode_frame(&mut b, first + i as u64, p);
        }
        b
    }

    /// Every step of reading `bytes` fed in pieces of `piece` bytes.
    fn read_all(bytes: &[u8], piece: usize) -> Vec<Step> {
        let first = decode_header(bytes).unwrap();
        let mut r = FrameReader::new(first);
        let mut out = Vec::new();
        let mut fed = HEADER_LEN;
        loop {
            let eof = fed >= bytes.len();
            match r.next(eof) {
                Step::NeedMore => {
                    let end = (fed + piece.max(1)).min(bytes.len());
                    r.feed(&bytes[fed..end]);
                    fed = end;
                }
                s @ (Step::End { .. } | Step::Tail { .. }) => {
                    out.push(s);
                    return out;
                }
                s => out.push(s),
            }
        }
    }

    fn seqs(steps: &[Step]) -> Vec<u64> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Frame { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn golden_header_and_frame_bytes() {
        let h = encode_header(7);
        assert_eq!(&h[0..8], b"SKDQ\x01\x00\x00\x00");
        assert_eq!(&h[8..16], &7u64.to_le_bytes());
        let mut f = Vec::new();
        encode_frame(&mut f, 5, b"ab");
        assert_eq!(&f[0..4], &[2, 0, 0, 0]);
        assert_eq!(&f[8..16], &5u64.to_le_bytes());
        assert_eq!(&f[16..], b"ab");
        assert_eq!(f.len(), frame_len(2));
    }

    #[test]
    fn an_unknown_version_with_a_good_checksum_is_refused_not_misread() {
        let mut h = encode_header(1);
        h[4] = 2;
        let c = crc(&[&h[0..20]]);
        h[20..24].copy_from_slice(&c.to_le_bytes());
        assert_eq!(
            decode_header(&h),
            Err(HeaderError::UnknownVersion {
                version: 2,
                flags: 0
            })
        );
        let mut bad = encode_header(1);
        bad[4] = 2; // checksum no longer matches: damage, not a version.
        assert_eq!(decode_header(&bad), Err(HeaderError::Damaged));
    }

    #[test]
    fn a_flipped_byte_in_the_middle_loses_exactly_that_event() {
        let p: Vec<Vec<u8>> = (0..5).map(|i| vec![b'a' + i; 30]).collect();
        let refs: Vec<&[u8]> = p.iter().map(Vec::as_slice).collect();
        let mut b = segment(100, &refs);
        let third = HEADER_LEN + 2 * frame_len(30);
        b[third + 20] ^= 0x40;
        for piece in [1, 7, 4096] {
            let steps = read_all(&b, piece);
            assert_eq!(seqs(&steps), [100, 101, 103, 104], "piece {piece}");
            assert!(steps.contains(&Step::Damaged {
                offset: third as u64,
                lost: 1
            }));
            assert!(matches!(steps.last(), Some(Step::End { .. })));
        }
    }

    #[test]
    fn a_zeroed_block_is_skipped_and_counted() {
        let p = vec![b'x'; 100];
        let refs: Vec<&[u8]> = (0..100).map(|_| p.as_slice()).collect();
        let mut b = segment(0, &refs);
        b[4096..8192].fill(0);
        let steps = read_all(&b, 1000);
        let got = seqs(&steps);
        let lost: u64 = steps
            .iter()
            .map(|s| match s {
                Step::Damaged { lost, .. } => *lost,
                _ => 0,
            })
            .sum();
        assert_eq!(got.len() as u64 + lost, 100, "every event read or counted");
        assert!(lost >= 4096 / 116, "at least the frames inside the block");
    }

    #[test]
    fn a_torn_tail_ends_at_the_last_good_frame() {
        let b = segment(0, &[b"one", b"two"]);
        let good = HEADER_LEN + frame_len(3);
        for cut in good + 1..b.len() {
            let steps = read_all(&b[..cut], 3);
            assert_eq!(seqs(&steps), [0], "cut at {cut}");
            assert_eq!(
                steps.last(),
                Some(&Step::Tail {
                    offset: good as u64
                })
            );
        }
        let mut zeros = b.clone();
        zeros.extend_from_slice(&[0; 4096]);
        let steps = read_all(&zeros, 512);
        assert_eq!(seqs(&steps), [0, 1]);
        assert_eq!(
            steps.last(),
            Some(&Step::Tail {
                offset: b.len() as u64
            })
        );
    }

    #[test]
    fn position_takes_the_newest_valid_slot() {
        let mut f = [0u8; POSITION_LEN];
        f[..SLOT_LEN].copy_from_slice(&encode_slot(Slot {
            generation: 4,
            acked: 40,
        }));
        f[SLOT_LEN..].copy_from_slice(&encode_slot(Slot {
            generation: 5,
            acked: 50,
        }));
        assert_eq!(decode_position(&f).unwrap().unwrap().acked, 50);
        f[SLOT_LEN + 3] ^= 1; // slot 1 torn
        assert_eq!(decode_position(&f).unwrap().unwrap().acked, 40);
        f[3] ^= 1;
        assert_eq!(decode_position(&f).unwrap(), None);
        assert_eq!(decode_position(&[]).unwrap(), None);
    }

    proptest! {
        #[test]
        fn frames_round_trip_in_any_pieces(
            first in 0u64..u64::MAX / 2,
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..20),
            piece in 1usize..600,
        ) {
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let b = segment(first, &refs);
            let steps = read_all(&b, piece);
            let frames: Vec<(u64, Vec<u8>)> = steps.iter().filter_map(|s| match s {
                Step::Frame { seq, payload, .. } => Some((*seq, payload.to_vec())),
                _ => None,
            }).collect();
            let want: Vec<(u64, Vec<u8>)> = payloads.iter().enumerate().map(|(i, p)| (first + i as u64, p.clone())).collect();
            prop_assert_eq!(frames, want);
            prop_assert_eq!(steps.last(), Some(&Step::End { offset: b.len() as u64 }));
        }

        #[test]
        fn any_bytes_never_panic_and_seqs_only_grow(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            piece in 1usize..300,
        ) {
            let mut seg = encode_header(3).to_vec();
            seg.extend_from_slice(&bytes);
            let steps = read_all(&seg, piece);
            let s = seqs(&steps);
            prop_assert!(s.windows(2).all(|w| w[0] < w[1]));
        }

        #[test]
        fn slots_round_trip(generation in any::<u64>(), acked in any::<u64>()) {
            let s = Slot { generation, acked };
            prop_assert_eq!(decode_slot(&encode_slot(s)), Ok(s));
        }
    }
}
