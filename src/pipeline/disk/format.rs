//! The disk queue's bytes: segment header, frames, packed windows, position slots
//! (docs/disk-queue.md §3, §4, §11).
//!
//! Pure: no files, no clock. [`FrameReader`] decodes a segment's frames from bytes fed to it
//! in pieces of any size, like a tokio-util decoder: `NeedMore` when it needs more bytes, and
//! damage is reported (with the byte offset and the events lost) and skipped, never a panic.
//! Everything read from disk is untrusted; every length is checked before it is used.

use bytes::{Buf, Bytes, BytesMut};
use skidder_protocol::packed::packed_count;

/// Magic bytes opening a segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"SKDQ";
/// Magic bytes opening a position slot.
pub const POSITION_MAGIC: [u8; 4] = *b"SKQP";
/// The segment format version this build writes: version 2 plus packed windows (it also
/// reads [`VERSION_1`] and [`VERSION_2`]).
pub const VERSION: u32 = 3;
/// The first segment format: no header block, no padding. Still read, never written.
pub const VERSION_1: u32 = 1;
/// The header block and block-aligned padded batches, without packed windows. Still read,
/// never written.
pub const VERSION_2: u32 = 2;
/// The position record's format version.
pub const POSITION_VERSION: u32 = 1;
/// Segment header length (the header's own bytes; from version 2 on, the rest of block 0
/// is zeros).
pub const HEADER_LEN: usize = 24;
/// From version 2 on, writes start and end on block boundaries (segment offsets), so they can go
/// through `O_DIRECT`; the header fills block 0 and the first frame starts at `BLOCK`.
pub const BLOCK: usize = 4096;
/// Bytes of a frame before its payload.
pub const FRAME_HEADER_LEN: usize = 16;
/// The largest payload a frame may hold; a larger `len` is damage.
pub const MAX_PAYLOAD: usize = 64 << 20;
/// Bit 31 of a frame's `len`: the payload is a packed window (`count` ++ wire), and the
/// payload length is `len & !PACKED`. It can never be set by a plain frame, whose length
/// is at most [`MAX_PAYLOAD`].
pub const PACKED: u32 = 1 << 31;
/// The most events one packed window may hold; a larger `count` is damage.
pub const MAX_PACKED_EVENTS: u32 = 65_536;
/// Bytes of a packed frame's payload before the wire: its `count`.
const COUNT_LEN: usize = 4;
/// One position slot.
pub const SLOT_LEN: usize = 32;
/// The position file: two slots.
pub const POSITION_LEN: usize = 2 * SLOT_LEN;

/// A frame's CRC: its `len` and `seq` fields, then the payload, given as `lead` (at most 4
/// bytes: a packed frame's `count` when the writer holds it apart from the wire) and `rest`.
/// The fields and `lead` go in as one piece of at most 16 bytes: `crc32fast` takes short
/// pieces a byte table at a time, and two of them per frame showed in the profile.
fn frame_crc(len: &[u8], seq: &[u8], lead: &[u8], rest: &[u8]) -> u32 {
    let mut head = [0u8; 12 + COUNT_LEN];
    head[..4].copy_from_slice(len);
    head[4..12].copy_from_slice(seq);
    head[12..12 + lead.len()].copy_from_slice(lead);
    crc(&[&head[..12 + lead.len()], rest])
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
    #[error("format version {version} (flags {flags:#x}); this build reads segment versions {VERSION_1} to {VERSION}, position version {POSITION_VERSION}")]
    UnknownVersion {
        /// The version found.
        version: u32,
        /// The flags found.
        flags: u32,
    },
}

/// Encodes a segment header for a segment whose first frame has seq `first`. The writer
/// puts it at the start of a zeroed block (versions 2 and 3).
pub fn encode_header(first: u64) -> [u8; HEADER_LEN] {
    encode_header_version(first, VERSION)
}

/// [`encode_header`] of another version: tests write version 1 and 2 segments with it, as
/// an older build left them.
#[doc(hidden)]
pub fn encode_header_version(first: u64, version: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4..8].copy_from_slice(&version.to_le_bytes());
    h[8..16].copy_from_slice(&first.to_le_bytes());
    // 16..20: flags, 0.
    let c = crc(&[&h[0..20]]);
    h[20..24].copy_from_slice(&c.to_le_bytes());
    h
}

/// Decodes a segment header (version 1, 2 or 3): the seq of its first frame. Every version
/// is read by the same [`FrameReader`], fed from [`HEADER_LEN`]: the zeroed rest of block 0
/// (versions 2 and 3) reads as padding, and a packed frame is accepted in any version
/// (docs/disk-queue.md §7).
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
    if !matches!(version, VERSION_1 | VERSION_2 | VERSION) || flags != 0 {
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
    let c = frame_crc(&len, &seq_b, &[], payload);
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

/// Appends one packed frame: the window `wire` (as `output.logstash` sends it) of `count`
/// events, the first of which has seq `seq` (docs/disk-queue.md §3, §11).
///
/// ```text
/// len u32 (= 4 + wire.len(), | PACKED) | crc u32 (of len, seq, count, wire) | seq u64 | count u32 | wire
/// ```
///
/// The caller keeps `count` in 1..=[`MAX_PACKED_EVENTS`], `wire` a window of `count` events
/// and [`packed_frame_len`] within a frame's limit: the reader takes anything else for damage.
pub fn encode_packed_frame(out: &mut Vec<u8>, seq: u64, count: u32, wire: &[u8]) {
    out.extend_from_slice(&packed_head(seq, count, wire));
    out.extend_from_slice(wire);
}

/// The 20 bytes before `wire` in its packed frame (see [`encode_packed_frame`]): the frame
/// header and the `count`.
fn packed_head(seq: u64, count: u32, wire: &[u8]) -> [u8; FRAME_HEADER_LEN + COUNT_LEN] {
    debug_assert!(
        COUNT_LEN + wire.len() <= MAX_PAYLOAD,
        "a packed frame over the limit"
    );
    let len = ((COUNT_LEN + wire.len()) as u32 | PACKED).to_le_bytes();
    let seq_b = seq.to_le_bytes();
    let count_b = count.to_le_bytes();
    let c = frame_crc(&len, &seq_b, &count_b, wire);
    let mut h = [0u8; FRAME_HEADER_LEN + COUNT_LEN];
    h[0..4].copy_from_slice(&len);
    h[4..8].copy_from_slice(&c.to_le_bytes());
    h[8..16].copy_from_slice(&seq_b);
    h[16..20].copy_from_slice(&count_b);
    h
}

/// The bytes a packed frame holding a window of `wire_len` bytes takes.
pub const fn packed_frame_len(wire_len: usize) -> usize {
    FRAME_HEADER_LEN + COUNT_LEN + wire_len
}

/// One frame of a write batch ([`encode_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// One event: a plain frame.
    Event {
        /// The event's seq.
        seq: u64,
        /// The encoded event.
        payload: &'a [u8],
    },
    /// A packed window of `count` events from `seq` (see [`encode_packed_frame`]).
    Packed {
        /// The seq of the window's first event.
        seq: u64,
        /// Events in the window.
        count: u32,
        /// The window as `output.logstash` sends it.
        wire: &'a [u8],
    },
}

/// Zero bytes that follow a write ending at segment offset `end`, up to the next block
/// boundary (0 on one).
pub const fn padding(end: u64) -> usize {
    ((BLOCK as u64 - end % BLOCK as u64) % BLOCK as u64) as usize
}

/// `n` rounded up to whole blocks: the bytes a write batch of `n` frame bytes takes.
pub const fn padded(n: u64) -> u64 {
    n + padding(n) as u64
}

/// Encodes one write batch (versions 2 and 3): the frames of `items` back to back, then
/// zeros up to a block boundary, so the batch written at a block boundary ends on one.
/// The bytes go through `chunk` (a whole number of blocks: an `O_DIRECT` buffer is reused
/// for any batch size), handed to `flush` each time it is full and once at the end (the
/// last piece padded). Each payload (or wire) is copied once, right after its CRC is
/// computed over it, while it is in the cache. Returns the bytes flushed.
///
/// # Errors
/// The first error `flush` returns; the rest of the batch is not encoded.
pub fn encode_batch<'a, E>(
    items: impl IntoIterator<Item = Item<'a>>,
    chunk: &mut [u8],
    mut flush: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, E> {
    debug_assert!(!chunk.is_empty() && chunk.len() % BLOCK == 0);
    let mut fill = 0usize;
    let mut total = 0u64;
    let mut put = |mut data: &[u8], fill: &mut usize, total: &mut u64| -> Result<(), E> {
        while !data.is_empty() {
            let n = (chunk.len() - *fill).min(data.len());
            chunk[*fill..*fill + n].copy_from_slice(&data[..n]);
            *fill += n;
            data = &data[n..];
            if *fill == chunk.len() {
                flush(chunk)?;
                *total += chunk.len() as u64;
                *fill = 0;
            }
        }
        Ok(())
    };
    for item in items {
        match item {
            Item::Event { seq, payload } => {
                put(&frame_head(seq, payload), &mut fill, &mut total)?;
                put(payload, &mut fill, &mut total)?;
            }
            Item::Packed { seq, count, wire } => {
                put(&packed_head(seq, count, wire), &mut fill, &mut total)?;
                put(wire, &mut fill, &mut total)?;
            }
        }
    }
    if fill > 0 {
        let end = fill + padding(fill as u64);
        chunk[fill..end].fill(0);
        flush(&chunk[..end])?;
        total += end as u64;
    }
    Ok(total)
}

/// What starts at `b[0]`.
enum Probe {
    /// A valid frame: seq, the event count of a packed window (`None`: a plain frame) and
    /// the frame's total length.
    Frame(u64, Option<u32>, usize),
    /// Could be a frame, but the bytes end first.
    Short,
    /// Not a valid frame.
    Invalid,
}

fn probe(b: &[u8]) -> Probe {
    if b.len() < FRAME_HEADER_LEN {
        return Probe::Short;
    }
    let raw = u32_at(b, 0);
    let packed = raw & PACKED != 0;
    let len = (raw & !PACKED) as usize;
    if len == 0 || len > MAX_PAYLOAD || (packed && len < COUNT_LEN) {
        return Probe::Invalid;
    }
    let total = FRAME_HEADER_LEN + len;
    if b.len() < total {
        return Probe::Short;
    }
    // A packed frame needs all of its checks (docs/disk-queue.md §3): a matching CRC, a
    // `count` in range, and a wire whose own headers announce that same count, so a frame
    // whose two counts disagree never reaches the output. The cheap header checks go first.
    let count = if packed {
        let count = u32_at(b, FRAME_HEADER_LEN);
        let wire = &b[FRAME_HEADER_LEN + COUNT_LEN..total];
        if !(1..=MAX_PACKED_EVENTS).contains(&count) || packed_count(wire) != Some(count) {
            return Probe::Invalid;
        }
        Some(count)
    } else {
        None
    };
    if frame_crc(&b[0..4], &b[8..16], &[], &b[16..total]) != u32_at(b, 4) {
        return Probe::Invalid;
    }
    Probe::Frame(u64_at(b, 8), count, total)
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
    /// A packed window: `count` events from `seq`, stored as `output.logstash` sends them
    /// (docs/disk-queue.md §11). Its checks have passed: CRC, `count` in range and the
    /// wire's own headers announcing `count`. The next frame's seq is `seq + count`.
    Packed {
        /// The seq of the window's first event.
        seq: u64,
        /// Events in the window, 1..=[`MAX_PACKED_EVENTS`].
        count: u32,
        /// Where the frame starts in the segment.
        offset: u64,
        /// The window's bytes (`'2' 'W'` ...): a slice of the bytes read, not a copy.
        wire: Bytes,
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

/// The bytes `b` must hold before [`probe`] can decide: a frame header, then the whole
/// frame when its `len` (without the packed flag) is in range.
fn frame_need(b: &[u8]) -> usize {
    if b.len() < FRAME_HEADER_LEN {
        return FRAME_HEADER_LEN;
    }
    match (u32_at(b, 0) & !PACKED) as usize {
        len @ 1..=MAX_PAYLOAD => FRAME_HEADER_LEN + len,
        _ => FRAME_HEADER_LEN,
    }
}

/// Decodes the frames of one segment from bytes fed in pieces (see the module docs).
#[derive(Debug)]
pub struct FrameReader {
    /// Bytes not yet decoded that come before `chunk`: a frame cut by the end of a chunk is
    /// completed here from the next one, and [`Self::feed`] appends here.
    carry: BytesMut,
    /// A block of the segment handed over whole ([`Self::feed_bytes`]): frames inside it are
    /// sliced off it without a copy, so it stays allocated until the last event sliced
    /// from it is dropped.
    chunk: Bytes,
    /// Segment offset of the first undecoded byte (`carry[0]`, or `chunk[0]`).
    base: u64,
    /// The seq the next frame should have.
    expected: u64,
    /// Set while skipping damage: where it started.
    damage: Option<u64>,
    /// Set while skipping padding: the block boundary where the next frame starts.
    skip_to: Option<u64>,
    /// Where the padding last skipped began (the end of the last frame), until a frame with
    /// the expected seq proves nothing was lost in it.
    pad_from: Option<u64>,
}

impl FrameReader {
    /// A reader of a segment whose frames start at seq `first`, fed from just after the
    /// header.
    pub fn new(first: u64) -> Self {
        Self {
            carry: BytesMut::new(),
            chunk: Bytes::new(),
            base: HEADER_LEN as u64,
            expected: first,
            damage: None,
            skip_to: None,
            pad_from: None,
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

    /// Appends bytes read from the segment (copied).
    pub fn feed(&mut self, data: &[u8]) {
        self.settle_chunk();
        self.carry.extend_from_slice(data);
    }

    /// Appends bytes read from the segment without copying them: payloads are slices of
    /// `data`.
    pub fn feed_bytes(&mut self, data: Bytes) {
        self.settle_chunk();
        self.chunk = data;
    }

    /// Moves what is left of `chunk` into `carry`, so fed bytes stay in order.
    fn settle_chunk(&mut self) {
        if !self.chunk.is_empty() {
            self.carry.extend_from_slice(&self.chunk);
            self.chunk = Bytes::new();
        }
    }

    /// Bytes held but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.carry.len() + self.chunk.len()
    }

    /// Drops `n` undecoded bytes (at most what is held).
    fn drop_bytes(&mut self, n: usize) {
        let from_carry = n.min(self.carry.len());
        self.carry.advance(from_carry);
        let from_chunk = (n - from_carry).min(self.chunk.len());
        self.chunk.advance(from_chunk);
        self.base += (from_carry + from_chunk) as u64;
    }

    /// Takes the first `n` bytes of the active buffer (which holds them).
    fn take(&mut self, n: usize) -> Bytes {
        self.base += n as u64;
        if self.carry.is_empty() {
            self.chunk.split_to(n)
        } else {
            self.carry.split_to(n).freeze()
        }
    }

    /// The next frame, damage report or end. `eof`: no more bytes will be fed.
    pub fn next(&mut self, eof: bool) -> Step {
        loop {
            if let Some(to) = self.skip_to {
                let need = (to - self.base) as usize;
                let have = self.buffered().min(need);
                self.drop_bytes(have);
                if have < need && !eof {
                    return Step::NeedMore;
                }
                // At the boundary, or the bytes end inside the padding.
                self.skip_to = None;
            }
            // Decode from `carry` while it holds bytes, completing its frame from `chunk`.
            if !self.carry.is_empty() && !self.chunk.is_empty() {
                let need = frame_need(&self.carry);
                if self.carry.len() < need {
                    let n = (need - self.carry.len()).min(self.chunk.len());
                    self.carry.extend_from_slice(&self.chunk[..n]);
                    self.chunk.advance(n);
                    continue;
                }
            }
            let rest: &[u8] = if self.carry.is_empty() {
                &self.chunk
            } else {
                &self.carry
            };
            if rest.is_empty() {
                return match (eof, self.damage.take()) {
                    (false, d) => {
                        self.damage = d;
                        Step::NeedMore
                    }
                    (true, Some(offset)) => Step::Tail { offset },
                    (true, None) => Step::End {
                        offset: self.pad_from.take().unwrap_or(self.base),
                    },
                };
            }
            // Padding: a zero `len` where a frame should start (docs/disk-queue.md §3). Not
            // while skipping damage, where a zero `len` (a seq's high bytes) is just a byte
            // that starts no frame, and a jump could pass over a good frame.
            let zero_len = if rest.len() >= 4 {
                u32_at(rest, 0) == 0
            } else {
                eof && rest.iter().all(|&b| b == 0)
            };
            if self.damage.is_none() && zero_len {
                self.pad_from.get_or_insert(self.base);
                self.skip_to = Some((self.base / BLOCK as u64 + 1) * BLOCK as u64);
                continue;
            }
            match probe(rest) {
                // A frame older than expected is not where we are (a false resync, or bytes
                // a failed write left): damage, like any other invalid frame.
                Probe::Frame(seq, count, total) if seq >= self.expected => {
                    // Damage, or padding followed by a later seq than expected (a zeroed
                    // block inside a batch): the events in between are lost.
                    let gap_from = match self.damage.take() {
                        Some(d) => Some(d),
                        None => self.pad_from.take().filter(|_| seq > self.expected),
                    };
                    self.pad_from = None;
                    if let Some(offset) = gap_from {
                        let lost = seq - self.expected;
                        self.expected = seq;
                        // Return the frame on the next call.
                        return Step::Damaged { offset, lost };
                    }
                    let offset = self.offset();
                    let mut frame = self.take(total);
                    frame.advance(FRAME_HEADER_LEN);
                    let Some(count) = count else {
                        self.expected = seq.saturating_add(1);
                        return Step::Frame {
                            seq,
                            offset,
                            payload: frame,
                        };
                    };
                    frame.advance(COUNT_LEN);
                    self.expected = seq.saturating_add(u64::from(count));
                    return Step::Packed {
                        seq,
                        count,
                        offset,
                        wire: frame,
                    };
                }
                Probe::Short if !eof => {
                    // The rest of the chunk starts a frame the next one completes.
                    self.settle_chunk();
                    return Step::NeedMore;
                }
                Probe::Short if self.damage.is_none() => {
                    // A partial frame at the end of the bytes: a torn tail.
                    return Step::Tail {
                        offset: self.pad_from.take().unwrap_or(self.base),
                    };
                }
                _ => {
                    if self.damage.is_none() {
                        // Padding before it was padding: the damage starts here.
                        self.pad_from = None;
                        self.damage = Some(self.base);
                    }
                    self.drop_bytes(1);
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
    b[4..8].copy_from_slice(&POSITION_VERSION.to_le_bytes());
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
    if version != POSITION_VERSION || flags != 0 {
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

    /// One event per payload, seqs from `first`.
    fn events<'a>(first: u64, payloads: &[&'a [u8]]) -> Vec<Item<'a>> {
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| Item::Event {
                seq: first + i as u64,
                payload: p,
            })
            .collect()
    }

    /// A version 1 segment: the 24-byte header, frames back to back.
    fn segment_v1(first: u64, payloads: &[&[u8]]) -> Vec<u8> {
        segment_items_v1(first, &events(first, payloads))
    }

    /// [`segment_v1`] of any items: an older build never wrote a packed frame in one, but
    /// the reader accepts it there (docs/disk-queue.md §7).
    fn segment_items_v1(first: u64, items: &[Item]) -> Vec<u8> {
        let mut b = encode_header_version(first, VERSION_1).to_vec();
        for item in items {
            match *item {
                Item::Event { seq, payload } => encode_frame(&mut b, seq, payload),
                Item::Packed { seq, count, wire } => encode_packed_frame(&mut b, seq, count, wire),
            }
        }
        b
    }

    /// A version 3 segment as the writer lays it out: the header block, then `payloads` in
    /// write batches of `per_batch` events, each padded to a block boundary.
    fn segment_v3(first: u64, payloads: &[&[u8]], per_batch: usize) -> Vec<u8> {
        segment_items(first, &events(first, payloads), per_batch, VERSION)
    }

    /// A segment of `version` (2 or 3: the same layout) holding `items` in write batches of
    /// `per_batch` items.
    fn segment_items(first: u64, items: &[Item], per_batch: usize, version: u32) -> Vec<u8> {
        let mut b = encode_header_version(first, version).to_vec();
        b.resize(BLOCK, 0);
        let mut chunk = vec![0u8; 2 * BLOCK];
        for batch in items.chunks(per_batch.max(1)) {
            let len = encode_batch(batch.iter().copied(), &mut chunk, |piece| {
                b.extend_from_slice(piece);
                Ok::<(), ()>(())
            })
            .unwrap();
            assert_eq!(len % BLOCK as u64, 0);
        }
        b
    }

    /// Both layouts of the same events.
    fn segments(first: u64, payloads: &[&[u8]]) -> [Vec<u8>; 2] {
        [segment_v1(first, payloads), segment_v3(first, payloads, 3)]
    }

    /// The window `output.logstash` sends for `docs`, compressed at level 1.
    fn window(docs: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        skidder_protocol::packed::encode_window_bytes(
            docs.iter().map(Vec::as_slice),
            docs.len() as u32,
            Some(&mut skidder_protocol::Flate2Compressor::new(1)),
            &mut Vec::new(),
            &mut out,
        )
        .unwrap();
        out
    }

    /// Frames and packed windows read, in order: (seq, count, bytes); a plain frame's count
    /// is `None`.
    fn items_read(steps: &[Step]) -> Vec<(u64, Option<u32>, Vec<u8>)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Frame { seq, payload, .. } => Some((*seq, None, payload.to_vec())),
                Step::Packed {
                    seq, count, wire, ..
                } => Some((*seq, Some(*count), wire.to_vec())),
                _ => None,
            })
            .collect()
    }

    /// The same shape for what was written.
    fn items_written(items: &[Item]) -> Vec<(u64, Option<u32>, Vec<u8>)> {
        items
            .iter()
            .map(|i| match *i {
                Item::Event { seq, payload } => (seq, None, payload.to_vec()),
                Item::Packed { seq, count, wire } => (seq, Some(count), wire.to_vec()),
            })
            .collect()
    }

    /// Every step of reading `bytes` fed in pieces of `piece` bytes, alternately copied
    /// ([`FrameReader::feed`]) and handed over ([`FrameReader::feed_bytes`]), so frames
    /// cut by a piece's end are completed across both kinds.
    fn read_all(bytes: &[u8], piece: usize) -> Vec<Step> {
        let first = decode_header(bytes).unwrap();
        let mut r = FrameReader::new(first);
        let mut out = Vec::new();
        let mut fed = HEADER_LEN;
        let mut pieces = 0;
        loop {
            let eof = fed >= bytes.len();
            match r.next(eof) {
                Step::NeedMore => {
                    let end = (fed + piece.max(1)).min(bytes.len());
                    if pieces % 2 == 0 {
                        r.feed_bytes(Bytes::copy_from_slice(&bytes[fed..end]));
                    } else {
                        r.feed(&bytes[fed..end]);
                    }
                    pieces += 1;
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
        assert_eq!(
            h,
            *b"SKDQ\x03\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xa1\x67\x79\xb3"
        );
        let mut f = Vec::new();
        encode_frame(&mut f, 5, b"ab");
        assert_eq!(
            f,
            b"\x02\x00\x00\x00\xbc\x2c\xa6\x09\x05\x00\x00\x00\x00\x00\x00\x00ab"
        );
        assert_eq!(f.len(), frame_len(2));
        let v1 = encode_header_version(7, VERSION_1);
        assert_eq!(&v1[0..8], b"SKDQ\x01\x00\x00\x00");
        assert_eq!(decode_header(&v1), Ok(7), "version 1 is still read");
        let v2 = encode_header_version(7, VERSION_2);
        assert_eq!(decode_header(&v2), Ok(7), "version 2 is still read");
    }

    /// A window by its headers only (`'2' 'W' 2 | '2' 'C' 3 | "xyz"`): the frame checks
    /// never look inside the zlib stream, and these bytes do not depend on a compressor.
    const TINY_WIRE: &[u8] = b"2W\x00\x00\x00\x022C\x00\x00\x00\x03xyz";

    #[test]
    fn golden_packed_frame_bytes() {
        let mut f = Vec::new();
        encode_packed_frame(&mut f, 6, 2, TINY_WIRE);
        // len 19 with bit 31 | crc of len, seq, count and wire | seq 6 | count 2 | wire.
        assert_eq!(
            f,
            b"\x13\x00\x00\x80\x84\x8d\xf1\x05\x06\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x002W\x00\x00\x00\x022C\x00\x00\x00\x03xyz"
        );
        assert_eq!(f.len(), packed_frame_len(TINY_WIRE.len()));
        // A batch mixing a plain frame and a packed one: both frames as encoded alone, back
        // to back, then zeros up to the block boundary.
        let mut out = Vec::new();
        let mut chunk = vec![0xAAu8; BLOCK];
        let items = [
            Item::Event {
                seq: 5,
                payload: b"ab",
            },
            Item::Packed {
                seq: 6,
                count: 2,
                wire: TINY_WIRE,
            },
        ];
        let len = encode_batch(items, &mut chunk, |p| {
            out.extend_from_slice(p);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(len, BLOCK as u64);
        let mut want =
            b"\x02\x00\x00\x00\xbc\x2c\xa6\x09\x05\x00\x00\x00\x00\x00\x00\x00ab".to_vec();
        want.extend_from_slice(&f);
        assert_eq!(&out[..want.len()], &want[..]);
        assert!(
            out[want.len()..].iter().all(|&b| b == 0),
            "padded with zeros"
        );
        assert_eq!(out.len(), BLOCK);
        // And it reads back: the event, then the window, then the end of the frames.
        let mut seg = encode_header(5).to_vec();
        seg.resize(BLOCK, 0);
        seg.extend_from_slice(&out);
        let steps = read_all(&seg, 5);
        assert_eq!(
            items_read(&steps),
            [(5, None, b"ab".to_vec()), (6, Some(2), TINY_WIRE.to_vec())]
        );
        assert_eq!(
            steps.last(),
            Some(&Step::End {
                offset: (BLOCK + want.len()) as u64
            })
        );
    }

    #[test]
    fn a_packed_frame_whose_count_disagrees_with_its_window_is_damage() {
        let wire = window(&[b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
        assert_eq!(packed_count(&wire), Some(2));
        // Frames 10 | window 11..=13 claiming 3 events for a W(2) | 14, every CRC good: only
        // the count check can catch the middle one.
        let mut bad_range = wire.clone();
        bad_range[2..6].copy_from_slice(&(MAX_PACKED_EVENTS + 1).to_be_bytes());
        for (count, w) in [(3, &wire), (MAX_PACKED_EVENTS + 1, &bad_range)] {
            let next = 11 + u64::from(count);
            let items = [
                Item::Event {
                    seq: 10,
                    payload: b"ten",
                },
                Item::Packed {
                    seq: 11,
                    count,
                    wire: w,
                },
                Item::Event {
                    seq: next,
                    payload: b"next",
                },
            ];
            let packed_at = BLOCK + frame_len(3);
            let v1 = segment_items_v1(10, &items);
            let v1_at = HEADER_LEN + frame_len(3);
            for (b, at) in [
                (segment_items(10, &items, 3, VERSION), packed_at),
                (v1, v1_at),
            ] {
                for piece in [1, 13, 4096] {
                    let steps = read_all(&b, piece);
                    assert_eq!(
                        items_read(&steps),
                        [(10, None, b"ten".to_vec()), (next, None, b"next".to_vec())],
                        "count {count}, piece {piece}"
                    );
                    assert!(
                        steps.contains(&Step::Damaged {
                            offset: at as u64,
                            lost: u64::from(count)
                        }),
                        "count {count}, piece {piece}: {steps:?}"
                    );
                    assert!(matches!(steps.last(), Some(Step::End { .. })));
                }
            }
        }
    }

    #[test]
    fn a_flipped_byte_in_a_window_loses_that_window() {
        let docs: Vec<Vec<u8>> = (0..4)
            .map(|i| format!("{{\"n\":{i}}}").into_bytes())
            .collect();
        let wire = window(&docs);
        let items = [
            Item::Event {
                seq: 10,
                payload: b"ten",
            },
            Item::Packed {
                seq: 11,
                count: 4,
                wire: &wire,
            },
            Item::Event {
                seq: 15,
                payload: b"fifteen",
            },
        ];
        let v3 = segment_items(10, &items, 3, VERSION);
        let v1 = segment_items_v1(10, &items);
        for (mut b, start) in [(v3, BLOCK), (v1, HEADER_LEN)] {
            let at = start + frame_len(3);
            // Inside the zlib stream: only the frame's CRC sees it.
            b[at + packed_frame_len(wire.len()) - 2] ^= 0x01;
            for piece in [1, 7, 4096] {
                let steps = read_all(&b, piece);
                assert_eq!(
                    items_read(&steps),
                    [(10, None, b"ten".to_vec()), (15, None, b"fifteen".to_vec())],
                    "piece {piece}"
                );
                assert!(
                    steps.contains(&Step::Damaged {
                        offset: at as u64,
                        lost: 4
                    }),
                    "piece {piece}: {steps:?}"
                );
                assert!(matches!(steps.last(), Some(Step::End { .. })));
            }
        }
    }

    #[test]
    fn golden_padded_batch_bytes() {
        // Two frames (18 + 19 bytes), then zeros to the block boundary: one block.
        let mut out = Vec::new();
        let mut chunk = vec![0xAAu8; BLOCK];
        let frames = [
            Item::Event {
                seq: 5,
                payload: b"ab",
            },
            Item::Event {
                seq: 6,
                payload: b"cde",
            },
        ];
        let len = encode_batch(frames, &mut chunk, |p| {
            out.extend_from_slice(p);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(len, BLOCK as u64);
        assert_eq!(out.len(), BLOCK);
        let mut want = Vec::new();
        encode_frame(&mut want, 5, b"ab");
        encode_frame(&mut want, 6, b"cde");
        assert_eq!(&out[..37], &want[..]);
        assert!(out[37..].iter().all(|&b| b == 0), "padded with zeros");
        // A batch ending exactly on a boundary gets no padding; a longer one is cut into
        // whole chunks.
        let big = vec![b'z'; BLOCK - FRAME_HEADER_LEN];
        let mut pieces = Vec::new();
        let two = events(0, &[&big, &big]);
        let len = encode_batch(two, &mut chunk, |p| {
            pieces.push(p.to_vec());
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(len, 2 * BLOCK as u64);
        assert_eq!(pieces.len(), 2);
        assert_eq!(
            (padding(0), padding(1), padding(4095), padding(4096)),
            (0, 4095, 1, 0)
        );
    }

    #[test]
    fn padding_is_skipped_to_the_next_block_and_the_segment_ends_cleanly() {
        let p: Vec<Vec<u8>> = (0..7).map(|i| vec![b'a' + i; 50]).collect();
        let refs: Vec<&[u8]> = p.iter().map(Vec::as_slice).collect();
        let b = segment_v3(40, &refs, 3);
        // Header block + 3 batches of one block each.
        assert_eq!(b.len(), 4 * BLOCK);
        for piece in [1, 100, 4096, 10_000] {
            let steps = read_all(&b, piece);
            assert_eq!(seqs(&steps), (40..47).collect::<Vec<_>>(), "piece {piece}");
            let offsets: Vec<u64> = steps
                .iter()
                .filter_map(|s| match s {
                    Step::Frame { offset, .. } => Some(*offset),
                    _ => None,
                })
                .collect();
            assert_eq!(offsets[0], BLOCK as u64, "frames start at block 1");
            assert_eq!(offsets[3], 2 * BLOCK as u64, "each batch at a boundary");
            assert_eq!(
                steps.last(),
                Some(&Step::End {
                    offset: (3 * BLOCK + frame_len(50)) as u64
                }),
                "ends where the last frame ends"
            );
        }
    }

    #[test]
    fn a_zeroed_block_inside_a_batch_reads_as_padding_but_its_events_are_counted() {
        let p = vec![b'x'; 100];
        let refs: Vec<&[u8]> = (0..100).map(|_| p.as_slice()).collect();
        // One batch of 100 frames of 116 bytes: blocks 1..=3.
        let mut b = segment_v3(0, &refs, 100);
        b[2 * BLOCK..3 * BLOCK].fill(0);
        let steps = read_all(&b, 1000);
        let got = seqs(&steps);
        let damaged: Vec<(u64, u64)> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Damaged { offset, lost } => Some((*offset, *lost)),
                _ => None,
            })
            .collect();
        let lost: u64 = damaged.iter().map(|d| d.1).sum();
        assert_eq!(got.len() as u64 + lost, 100, "every event read or counted");
        assert!(
            lost >= (BLOCK / 116) as u64,
            "at least the frames inside the block"
        );
        assert!(
            damaged.iter().all(|d| d.0 <= 2 * BLOCK as u64),
            "reported from where the damage begins: {damaged:?}"
        );
        // A whole zeroed block that starts exactly at a frame: skipped as padding, and the
        // seq gap after it is the loss, reported at the block.
        let q = vec![b'y'; BLOCK - FRAME_HEADER_LEN];
        let refs: Vec<&[u8]> = (0..3).map(|_| q.as_slice()).collect();
        let mut b = segment_v3(10, &refs, 3);
        b[2 * BLOCK..3 * BLOCK].fill(0);
        let steps = read_all(&b, 777);
        assert_eq!(seqs(&steps), [10, 12]);
        assert!(steps.contains(&Step::Damaged {
            offset: 2 * BLOCK as u64,
            lost: 1
        }));
    }

    #[test]
    fn an_unknown_version_with_a_good_checksum_is_refused_not_misread() {
        let mut h = encode_header(1);
        h[4] = 4;
        let c = crc(&[&h[0..20]]);
        h[20..24].copy_from_slice(&c.to_le_bytes());
        assert_eq!(
            decode_header(&h),
            Err(HeaderError::UnknownVersion {
                version: 4,
                flags: 0
            })
        );
        let mut bad = encode_header(1);
        bad[4] = 4; // checksum no longer matches: damage, not a version.
        assert_eq!(decode_header(&bad), Err(HeaderError::Damaged));
    }

    #[test]
    fn a_flipped_byte_in_the_middle_loses_exactly_that_event() {
        let p: Vec<Vec<u8>> = (0..5).map(|i| vec![b'a' + i; 30]).collect();
        let refs: Vec<&[u8]> = p.iter().map(Vec::as_slice).collect();
        for (mut b, start) in segments(100, &refs).into_iter().zip([HEADER_LEN, BLOCK]) {
            let third = start + 2 * frame_len(30);
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
    }

    #[test]
    fn a_zeroed_block_in_a_version_1_segment_is_skipped_and_counted() {
        let p = vec![b'x'; 100];
        let refs: Vec<&[u8]> = (0..100).map(|_| p.as_slice()).collect();
        let mut b = segment_v1(0, &refs);
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
        let b = segment_v1(0, &[b"one", b"two"]);
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
        // Zeros after the last frame (blocks a crash left unwritten) are padding: the
        // segment ends there, cleanly.
        let mut zeros = b.clone();
        zeros.extend_from_slice(&[0; 4096]);
        for piece in [1, 512] {
            let steps = read_all(&zeros, piece);
            assert_eq!(seqs(&steps), [0, 1]);
            assert_eq!(
                steps.last(),
                Some(&Step::End {
                    offset: b.len() as u64
                })
            );
        }
        // Garbage where a frame should start after them is a torn tail.
        let mut garbage = zeros.clone();
        garbage.resize(2 * BLOCK, 0);
        garbage.extend_from_slice(&[7; 10]);
        let steps = read_all(&garbage, 512);
        assert_eq!(seqs(&steps), [0, 1]);
        assert!(matches!(steps.last(), Some(Step::Tail { .. })), "{steps:?}");
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
            // Each entry: an event's payload, or (when `docs` is not empty) a packed window
            // of those documents.
            entries in proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 1..300),
                    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..60), 0..6),
                ),
                0..20,
            ),
            piece in 1usize..600,
            per_batch in 1usize..8,
        ) {
            let wires: Vec<Option<Vec<u8>>> = entries
                .iter()
                .map(|(_, docs)| (!docs.is_empty()).then(|| window(docs)))
                .collect();
            let mut seq = first;
            let items: Vec<Item> = entries
                .iter()
                .zip(&wires)
                .map(|((payload, docs), wire)| {
                    let at = seq;
                    match wire {
                        Some(wire) => {
                            seq += docs.len() as u64;
                            Item::Packed { seq: at, count: docs.len() as u32, wire }
                        }
                        None => {
                            seq += 1;
                            Item::Event { seq: at, payload }
                        }
                    }
                })
                .collect();
            let v1 = segment_items_v1(first, &items);
            let v2 = segment_items(first, &items, per_batch, VERSION_2);
            let v3 = segment_items(first, &items, per_batch, VERSION);
            for b in [&v1, &v2, &v3] {
                let steps = read_all(b, piece);
                prop_assert_eq!(items_read(&steps), items_written(&items));
                prop_assert!(matches!(steps.last(), Some(Step::End { .. })), "{:?}", steps.last());
            }
            let v1_steps = read_all(&v1, piece);
            prop_assert_eq!(v1_steps.last(), Some(&Step::End { offset: v1.len() as u64 }));
            prop_assert_eq!(v3.len() % BLOCK, 0);
        }

        #[test]
        fn any_bytes_never_panic_and_seqs_only_grow(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            piece in 1usize..300,
        ) {
            for version in [VERSION_1, VERSION_2, VERSION] {
                let mut seg = encode_header_version(3, version).to_vec();
                seg.extend_from_slice(&bytes);
                let steps = read_all(&seg, piece);
                // Every frame or window starts at or after the seq the previous one ended.
                let mut next = 3u64;
                for s in &steps {
                    let (seq, count) = match s {
                        Step::Frame { seq, .. } => (*seq, 1),
                        Step::Packed { seq, count, wire, .. } => {
                            prop_assert_eq!(packed_count(wire), Some(*count));
                            (*seq, u64::from(*count))
                        }
                        _ => continue,
                    };
                    prop_assert!(seq >= next, "seq {} before {}", seq, next);
                    next = seq + count;
                }
            }
        }

        #[test]
        fn slots_round_trip(generation in any::<u64>(), acked in any::<u64>()) {
            let s = Slot { generation, acked };
            prop_assert_eq!(decode_slot(&encode_slot(s)), Ok(s));
        }
    }
}
