//! The receiving side: decode windows into batches, produce ACKs as Logstash does.
//!
//! Accepts what logstash-input-beats accepts: v1 and v2 windows on one connection,
//! a `W` inside a `C`, one window spread over several `C` frames, plain data frames
//! mixed with `C` frames, and an empty window (answered with ACK 0 carrying the
//! `W`'s version byte). Deliberately stricter than Logstash, with a clear error:
//! a `C` nested in a `C`, data frames outside a window, a new `W` after some but
//! not all events of the previous window (a `W` right after a `W` replaces it), and data frames whose version differs from their
//! window's are refused (Logstash would silently reshape batches in those cases).
//!
//! `J` payloads are checked cheaply (non-empty, first non-whitespace byte `{`);
//! full JSON validation is the receiving input's job. v1 `D` frames are handed over
//! as key/value byte pairs in wire order ([`Payload::Fields`]); turning them into
//! an event (Logstash: `message`, else `line`, is the log line) is the input's job.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::compress::{Inflater, INFLATE_STEP};
use crate::decoder::{Decoded, FrameDecoder};
use crate::error::ProtocolError;
use crate::frame::{encode_ack, Frame, FrameType, Version};
use crate::limits::Limits;

/// Settings of a [`ReceiverSession`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Size limits checked before buffering.
    pub limits: Limits,
    /// Interval of `'2' 'A' 0` keep-alives while a batch is pending. Default: 5 s
    /// (Logstash's writer-idle interval).
    pub keepalive_interval: Duration,
    /// Inflate only with credit the caller grants (see "Metered inflation" on
    /// [`ReceiverSession`]), so a budget shared by many sessions bounds their memory.
    /// Default: false (inflate freely up to [`Limits::max_decompressed_size`]).
    pub metered_inflation: bool,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            keepalive_interval: Duration::from_secs(5),
            metered_inflation: false,
        }
    }
}

/// Identifies a batch for [`ReceiverSession::ack_batch`]; increases per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(pub u64);

/// The content of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// v2 `J`: raw JSON bytes, starting with `{` after optional whitespace.
    Json(Bytes),
    /// v1 `D`: key/value pairs as sent, in wire order (later duplicates win).
    Fields(Vec<(Bytes, Bytes)>),
}

/// One received event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedEvent {
    /// Sequence number the client gave it.
    pub seq: u32,
    /// The event's content.
    pub payload: Payload,
}

/// One complete window, ready to be stored by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Pass to [`ReceiverSession::ack_batch`] once the events are safely stored.
    pub id: BatchId,
    /// Protocol version of the window (also the version byte of its ACK).
    pub version: Version,
    /// The events in wire order.
    pub events: Vec<ReceivedEvent>,
    /// Highest sequence number in the batch: the ACK value, as Logstash sends it.
    pub highest_seq: u32,
    /// Inflated bytes charged to this batch: everything inflated since the previous
    /// batch was completed. With metered inflation the caller returns this much to its
    /// budget once the batch's events are gone (stored and dropped).
    pub inflated: usize,
}

struct OpenWindow {
    version: Version,
    expected: u32,
    events: Vec<ReceivedEvent>,
    highest_seq: u32,
}

/// A `C` frame being inflated and decoded a step at a time.
struct Inflating {
    /// The frame's zlib stream.
    zlib: Bytes,
    /// Inflated bytes not yet decoded into frames.
    content: BytesMut,
    /// Bytes inflated from this frame so far, checked against `max_decompressed_size`.
    inflated: usize,
    /// The zlib stream has ended; what is left in `content` is all there is.
    finished: bool,
}

struct Pending {
    id: BatchId,
    version: Version,
    ack: u32,
    stored: bool,
}

/// Receiver side of one Lumberjack connection (for the receiver input and tests).
///
/// # Inflating `C` frames
/// A `C` frame's zlib stream is inflated a step at a time (64 KiB, or the exact rest
/// of a larger frame whose header is already inflated) and its frames are decoded as
/// soon as they are complete, so inflation stops at the first byte that is not a
/// valid frame sequence (a zlib bomb of zeros costs one step, not
/// [`Limits::max_decompressed_size`]), and a frame whose header claims more than the
/// limit allows stops it before its body is inflated.
///
/// # Metered inflation
/// With [`ReceiverConfig::metered_inflation`] the session inflates only bytes it was
/// granted, so a caller can share one budget among many connections:
///
/// 1. After [`handle_input`](Self::handle_input), [`inflate_request`](Self::inflate_request)
///    says how many bytes of credit decoding waits for (`None`: not waiting).
/// 2. Take them from the budget (or wait for them) and call
///    [`grant_inflate`](Self::grant_inflate), which resumes decoding; repeat.
/// 3. [`take_unused_credit`](Self::take_unused_credit) hands back what a finished `C`
///    frame did not use.
/// 4. Each [`Batch::inflated`] is what that batch holds; return it to the budget once
///    the batch's events are gone. Whatever the session was granted and did not hand
///    back this way is still held when the connection ends.
pub struct ReceiverSession {
    config: ReceiverConfig,
    decoder: FrameDecoder,
    buf: BytesMut,
    inflater: Inflater,
    inflating: Option<Inflating>,
    /// Bytes the session may still inflate (metered inflation only).
    credit: usize,
    /// Credit asked for and not yet granted: decoding is paused until it is.
    wanted: Option<usize>,
    /// Bytes inflated since the last batch was completed.
    charged: usize,
    open: Option<OpenWindow>,
    ready: VecDeque<Batch>,
    /// Batches handed out (or empty windows) whose ACK is not written yet, in order.
    pending: VecDeque<Pending>,
    transmit: Vec<u8>,
    next_id: u64,
    keepalive_at: Option<Instant>,
    failed: bool,
}

impl std::fmt::Debug for ReceiverSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverSession")
            .field("config", &self.config)
            .field("buffered", &self.buf.len())
            .field("ready", &self.ready.len())
            .field("pending", &self.pending.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl ReceiverSession {
    /// A session for one new connection.
    pub fn new(config: ReceiverConfig) -> Self {
        Self {
            config,
            decoder: FrameDecoder::new(config.limits),
            buf: BytesMut::new(),
            inflater: Inflater::new(),
            inflating: None,
            credit: 0,
            wanted: None,
            charged: 0,
            open: None,
            ready: VecDeque::new(),
            pending: VecDeque::new(),
            transmit: Vec::new(),
            next_id: 0,
            keepalive_at: None,
            failed: false,
        }
    }

    /// Consumes bytes read from the client, split at any byte boundary.
    ///
    /// Complete windows become batches for [`poll_batch`](Self::poll_batch). Only the
    /// bytes of the frame being assembled are buffered, and every length is checked
    /// against the limits first.
    ///
    /// # Errors
    /// Any decoding error (see [`FrameDecoder::decode`]), a limit exceeded, a `C`
    /// inside a `C`, truncated compressed content, an `A` frame from the client, data
    /// outside a window, a `W` before the open window is complete. The session is
    /// then failed: close the connection. Batches already handed out stay valid but
    /// their ACKs can no longer be sent.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), ProtocolError> {
        if self.failed {
            return Err(ProtocolError::SessionFailed);
        }
        self.buf.extend_from_slice(bytes);
        let result = self.drain_frames();
        if result.is_err() {
            self.failed = true;
        }
        // Logstash marks the connection busy whenever bytes arrive.
        if !bytes.is_empty() && self.keepalive_at.is_none() && self.busy() {
            self.keepalive_at = Some(now + self.config.keepalive_interval);
        }
        result
    }

    fn drain_frames(&mut self) -> Result<(), ProtocolError> {
        loop {
            if self.inflating.is_some() && !self.drain_compressed()? {
                // Paused until the caller grants credit.
                return Ok(());
            }
            match self.decoder.decode(&mut self.buf)? {
                Some(frame) => self.handle_frame(frame, false)?,
                None => return Ok(()),
            }
        }
    }

    /// Decodes frames from the open `C` frame's content, inflating more only when the
    /// frame at the front needs it, so inflation stops at the first byte that is not
    /// a valid frame sequence. Returns false when it paused for credit.
    fn drain_compressed(&mut self) -> Result<bool, ProtocolError> {
        let max = self.config.limits.max_decompressed_size;
        loop {
            let Some(inf) = self.inflating.as_mut() else {
                return Ok(true);
            };
            let need = match self.decoder.decode_step(&mut inf.content, false)? {
                Decoded::Frame(frame) => {
                    self.handle_frame(frame, true)?;
                    continue;
                }
                Decoded::Need(need) => need,
            };
            if inf.finished {
                if inf.content.is_empty() {
                    self.inflating = None;
                    return Ok(true);
                }
                return Err(ProtocolError::TruncatedCompressedContent {
                    remaining: inf.content.len(),
                });
            }
            let missing = need.saturating_sub(inf.content.len()).max(1);
            // The frame at the front already claims more than the limit allows: no
            // valid content can follow, so nothing more is inflated.
            if inf.inflated.saturating_add(missing) > max {
                return Err(ProtocolError::DecompressedTooLarge { max: max as u64 });
            }
            // A large frame is inflated in one step into room of its exact size; small
            // frames share steps. One byte past the limit tells "ends exactly at the
            // limit" from "goes beyond it".
            let mut step = missing.max(INFLATE_STEP).min(max - inf.inflated + 1);
            if self.config.metered_inflation {
                if self.credit < missing {
                    self.wanted = Some(step - self.credit);
                    return Ok(false);
                }
                step = step.min(self.credit);
            }
            let at = inf.content.len();
            if inf.content.capacity() - at < step {
                // A fresh buffer of exactly the size needed (the partial frame moves
                // along): `reserve` could double a large one, and the old buffer lives
                // on in the events cut from it anyway.
                let mut fresh = BytesMut::with_capacity(at + step);
                fresh.extend_from_slice(&inf.content);
                inf.content = fresh;
            }
            inf.content.resize(at + step, 0);
            let result = self
                .inflater
                .inflate_into(&inf.zlib, &mut inf.content[at..]);
            let written = result.as_ref().map_or(0, |r| r.written);
            inf.content.truncate(at + written);
            inf.inflated += written;
            self.charged += written;
            if self.config.metered_inflation {
                self.credit -= written;
            }
            inf.finished = result?.finished;
            if inf.inflated > max {
                return Err(ProtocolError::DecompressedTooLarge { max: max as u64 });
            }
        }
    }

    /// Bytes of credit the session waits for before it inflates more (metered
    /// inflation only); `None` while it is not paused.
    pub fn inflate_request(&self) -> Option<usize> {
        if self.failed {
            return None;
        }
        self.wanted
    }

    /// Adds `bytes` of credit (metered inflation) and resumes decoding where it paused.
    ///
    /// # Errors
    /// As [`handle_input`](Self::handle_input).
    pub fn grant_inflate(&mut self, bytes: usize, now: Instant) -> Result<(), ProtocolError> {
        self.credit = self.credit.saturating_add(bytes);
        self.wanted = None;
        self.handle_input(&[], now)
    }

    /// Takes back the credit a session that is not paused does not need; the caller
    /// returns it to its budget. While paused the session keeps its credit, since it
    /// asked only for the difference.
    pub fn take_unused_credit(&mut self) -> usize {
        if self.wanted.is_some() && !self.failed {
            return 0;
        }
        std::mem::take(&mut self.credit)
    }

    fn handle_frame(&mut self, frame: Frame, in_compressed: bool) -> Result<(), ProtocolError> {
        match frame {
            Frame::Window { version, count } => {
                // A `W` repeated before any event of the open window (libbeat's `W`
                // outside a `C` that itself starts with a `W`, which Logstash
                // accepts) simply replaces the announcement: nothing is lost.
                if let Some(open) = self.open.as_ref().filter(|o| !o.events.is_empty()) {
                    return Err(ProtocolError::WindowIncomplete {
                        received: open.events.len() as u32,
                        expected: open.expected,
                    });
                }
                if count == 0 {
                    self.open = None;
                    // Logstash >= 6.7.0 answers an empty window with ACK 0.
                    let id = self.alloc_id();
                    self.pending.push_back(Pending {
                        id,
                        version,
                        ack: 0,
                        stored: true,
                    });
                    self.flush_acks();
                } else {
                    self.open = Some(OpenWindow {
                        version,
                        expected: count,
                        // Capped: a 6-byte `W` must not pin memory for
                        // events that may never arrive.
                        events: Vec::with_capacity((count as usize).min(1024)),
                        highest_seq: 0,
                    });
                }
                Ok(())
            }
            Frame::Json { seq, payload } => {
                self.push_event(Version::V2, seq, Payload::Json(payload))
            }
            Frame::Data { seq, pairs } => self.push_event(Version::V1, seq, Payload::Fields(pairs)),
            Frame::Compressed { payload, .. } => {
                if in_compressed {
                    return Err(ProtocolError::NestedCompressed);
                }
                self.inflater.begin();
                self.inflating = Some(Inflating {
                    zlib: payload,
                    content: BytesMut::new(),
                    inflated: 0,
                    finished: false,
                });
                Ok(())
            }
            Frame::Ack { .. } => Err(ProtocolError::UnexpectedFrame {
                frame_type: FrameType::Ack,
                reason: "ACK frames only travel from server to client",
            }),
        }
    }

    fn push_event(
        &mut self,
        version: Version,
        seq: u32,
        payload: Payload,
    ) -> Result<(), ProtocolError> {
        let Some(open) = self.open.as_mut() else {
            return Err(ProtocolError::DataOutsideWindow { seq });
        };
        if open.version != version {
            return Err(ProtocolError::BatchVersionMismatch {
                window: open.version,
                frame: version,
            });
        }
        open.highest_seq = open.highest_seq.max(seq);
        open.events.push(ReceivedEvent { seq, payload });
        if open.events.len() == open.expected as usize {
            if let Some(done) = self.open.take() {
                let id = self.alloc_id();
                self.pending.push_back(Pending {
                    id,
                    version: done.version,
                    ack: done.highest_seq,
                    stored: false,
                });
                self.ready.push_back(Batch {
                    id,
                    version: done.version,
                    events: done.events,
                    highest_seq: done.highest_seq,
                    inflated: std::mem::take(&mut self.charged),
                });
            }
        }
        Ok(())
    }

    fn alloc_id(&mut self) -> BatchId {
        let id = BatchId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Writes the ACKs of stored batches at the front of the queue, in order.
    fn flush_acks(&mut self) {
        while let Some(front) = self.pending.front() {
            if !front.stored {
                break;
            }
            encode_ack(front.version, front.ack, &mut self.transmit);
            self.pending.pop_front();
        }
    }

    fn busy(&self) -> bool {
        !self.pending.is_empty()
            || self.open.is_some()
            || !self.ready.is_empty()
            || self.inflating.is_some()
    }

    /// The next complete batch, oldest first.
    pub fn poll_batch(&mut self) -> Option<Batch> {
        self.ready.pop_front()
    }

    /// The caller has safely stored batch `id`: its ACK (the batch's highest seq,
    /// with the batch's version byte) is queued once every earlier batch is ACKed
    /// too, so ACKs leave strictly in order.
    ///
    /// # Errors
    /// [`ProtocolError::UnknownBatch`] if `id` was never handed out or is already
    /// acknowledged.
    pub fn ack_batch(&mut self, id: BatchId, now: Instant) -> Result<(), ProtocolError> {
        let Some(entry) = self.pending.iter_mut().find(|p| p.id == id && !p.stored) else {
            return Err(ProtocolError::UnknownBatch { id: id.0 });
        };
        entry.stored = true;
        let before = self.transmit.len();
        self.flush_acks();
        if self.transmit.len() > before {
            // Writing counts as activity for Logstash's writer-idle timer.
            self.keepalive_at = self.busy().then(|| now + self.config.keepalive_interval);
        }
        Ok(())
    }

    /// Bytes to send to the client (ACKs and keep-alives), if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.transmit.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.transmit))
    }

    /// True when [`poll_transmit`](Self::poll_transmit) has bytes: an ACK may become due
    /// while reading (an empty window is answered with ACK 0 at once when nothing is
    /// pending before it), so a driver checks this after
    /// [`handle_input`](Self::handle_input) too, not only after acks and timeouts.
    pub fn has_transmit(&self) -> bool {
        !self.transmit.is_empty()
    }

    /// When the next keep-alive is due; `None` while no batch is pending.
    pub fn poll_keepalive_deadline(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        self.keepalive_at
    }

    /// Call at (or after) [`poll_keepalive_deadline`](Self::poll_keepalive_deadline):
    /// while a batch is pending this queues `'2' 'A' 0` (always version 2, as
    /// Logstash does) and schedules the next one.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(at) = self.keepalive_at else {
            return;
        };
        if self.failed || now < at {
            return;
        }
        if self.busy() {
            encode_ack(Version::V2, 0, &mut self.transmit);
            self.keepalive_at = Some(now + self.config.keepalive_interval);
        } else {
            self.keepalive_at = None;
        }
    }

    /// Number of batches handed out (or ready) whose ACK has not been queued.
    pub fn pending_batches(&self) -> usize {
        self.pending.len()
    }

    /// True once an error ended the session.
    pub fn is_failed(&self) -> bool {
        self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{Compressor, Flate2Compressor};
    use crate::frame::{encode_compressed, encode_data, encode_json, encode_window};

    fn rx() -> ReceiverSession {
        ReceiverSession::new(ReceiverConfig {
            limits: Limits {
                max_window_size: 100,
                max_frame_size: 1 << 20,
                max_decompressed_size: 1 << 16,
            },
            keepalive_interval: Duration::from_secs(5),
            metered_inflation: false,
        })
    }

    fn zlib(content: &[u8]) -> Vec<u8> {
        let mut z = Vec::new();
        Flate2Compressor::new(6)
            .compress_zlib(content, &mut z)
            .unwrap();
        z
    }

    fn json_frames(seqs: std::ops::RangeInclusive<u32>) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in seqs {
            encode_json(seq, format!("{{\"n\":{seq}}}").as_bytes(), &mut out).unwrap();
        }
        out
    }

    #[test]
    fn v1_and_v2_windows_on_one_connection() {
        let t0 = Instant::now();
        let mut wire = Vec::new();
        encode_window(Version::V1, 1, &mut wire);
        let mut inner = Vec::new();
        encode_data(1, &[("message", "x")], &mut inner).unwrap();
        encode_compressed(Version::V1, &zlib(&inner), &mut wire).unwrap();
        encode_window(Version::V2, 2, &mut wire);
        wire.extend(json_frames(1..=2));
        let mut s = rx();
        s.handle_input(&wire, t0).unwrap();
        let b1 = s.poll_batch().unwrap();
        let b2 = s.poll_batch().unwrap();
        assert_eq!((b1.version, b1.highest_seq), (Version::V1, 1));
        assert_eq!((b2.version, b2.highest_seq), (Version::V2, 2));
        // ACKs leave in batch order even when stored out of order.
        s.ack_batch(b2.id, t0).unwrap();
        assert_eq!(s.poll_transmit(), None);
        s.ack_batch(b1.id, t0).unwrap();
        assert_eq!(s.poll_transmit().unwrap(), b"1A\0\0\0\x012A\0\0\0\x02");
        assert!(matches!(
            s.ack_batch(b1.id, t0),
            Err(ProtocolError::UnknownBatch { id: 0 })
        ));
    }

    #[test]
    fn nested_compressed_frames_are_refused() {
        let mut inner = Vec::new();
        encode_window(Version::V2, 1, &mut inner);
        let mut nested = Vec::new();
        encode_compressed(Version::V2, &zlib(&json_frames(1..=1)), &mut nested).unwrap();
        inner.extend(nested);
        let mut wire = Vec::new();
        encode_compressed(Version::V2, &zlib(&inner), &mut wire).unwrap();
        let mut s = rx();
        assert!(matches!(
            s.handle_input(&wire, Instant::now()),
            Err(ProtocolError::NestedCompressed)
        ));
        assert!(s.is_failed());
    }

    #[test]
    fn compressed_content_ending_inside_a_frame_is_refused() {
        let mut inner = Vec::new();
        encode_window(Version::V2, 1, &mut inner);
        inner.extend(json_frames(1..=1));
        inner.truncate(inner.len() - 3);
        let mut wire = Vec::new();
        encode_compressed(Version::V2, &zlib(&inner), &mut wire).unwrap();
        let err = rx().handle_input(&wire, Instant::now()).unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::TruncatedCompressedContent { remaining: 14 }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn truncated_zlib_payload_is_refused() {
        let z = zlib(&json_frames(1..=3));
        let mut wire = Vec::new();
        encode_window(Version::V2, 3, &mut wire);
        encode_compressed(Version::V2, &z[..z.len() - 5], &mut wire).unwrap();
        let err = rx().handle_input(&wire, Instant::now()).unwrap_err();
        assert!(
            matches!(err, ProtocolError::TruncatedZlib { .. }),
            "{err:?}"
        );
    }

    /// A metered session whose every request is granted; returns the session, the
    /// error if any, and the total credit granted.
    fn metered_run(
        max_decompressed_size: usize,
        wire: &[u8],
    ) -> (ReceiverSession, Result<(), ProtocolError>, usize) {
        let t0 = Instant::now();
        let mut s = ReceiverSession::new(ReceiverConfig {
            limits: Limits {
                max_window_size: 100,
                max_frame_size: 1 << 30,
                max_decompressed_size,
            },
            metered_inflation: true,
            ..ReceiverConfig::default()
        });
        let mut granted = 0;
        let mut result = s.handle_input(wire, t0);
        while let (Ok(()), Some(n)) = (&result, s.inflate_request()) {
            granted += n;
            result = s.grant_inflate(n, t0);
        }
        (s, result, granted)
    }

    #[test]
    fn zlib_bomb_stops_at_the_first_byte_that_is_no_frame() {
        // 64 MiB of spaces: refused after one inflate step, not at the limit.
        let mut wire = Vec::new();
        encode_compressed(Version::V2, &zlib(&vec![b' '; 64 << 20]), &mut wire).unwrap();
        let (_, result, granted) = metered_run(1 << 30, &wire);
        assert!(
            matches!(result, Err(ProtocolError::UnknownVersion { byte: b' ' })),
            "{result:?}"
        );
        assert!(granted <= INFLATE_STEP, "inflated {granted} bytes");
    }

    #[test]
    fn a_frame_claiming_more_than_the_limit_stops_inflation_at_its_header() {
        // A J frame announcing 1 MiB inside a C frame limited to 64 KiB: refused once
        // its 10-byte header is inflated, before the body.
        let mut inner = Vec::new();
        encode_window(Version::V2, 1, &mut inner);
        encode_json(
            1,
            format!("{{\"m\":\"{}\"}}", "a".repeat(1 << 20)).as_bytes(),
            &mut inner,
        )
        .unwrap();
        let mut wire = Vec::new();
        encode_compressed(Version::V2, &zlib(&inner), &mut wire).unwrap();
        let (_, result, granted) = metered_run(1 << 16, &wire);
        assert!(
            matches!(
                result,
                Err(ProtocolError::DecompressedTooLarge { max: 65536 })
            ),
            "{result:?}"
        );
        assert!(granted <= INFLATE_STEP, "inflated {granted} bytes");
        // A valid frame sequence that goes on past the limit stops at the limit.
        let err = rx()
            .handle_input(
                &{
                    let mut w = Vec::new();
                    let mut inner = Vec::new();
                    encode_window(Version::V2, 100, &mut inner);
                    for seq in 1..=100 {
                        encode_json(
                            seq,
                            format!("{{\"m\":\"{}\"}}", "b".repeat(1000)).as_bytes(),
                            &mut inner,
                        )
                        .unwrap();
                    }
                    encode_compressed(Version::V2, &zlib(&inner), &mut w).unwrap();
                    w
                },
                Instant::now(),
            )
            .unwrap_err();
        assert!(
            matches!(err, ProtocolError::DecompressedTooLarge { max: 65536 }),
            "{err:?}"
        );
    }

    #[test]
    fn metered_inflation_pauses_for_credit_and_charges_batches() {
        let t0 = Instant::now();
        // Two windows in one C frame: 300 small events, then one event of 200 KiB.
        let mut inner = Vec::new();
        encode_window(Version::V2, 300, &mut inner);
        inner.extend(json_frames(1..=300));
        encode_window(Version::V2, 1, &mut inner);
        let big = format!("{{\"m\":\"{}\"}}", "c".repeat(200 << 10));
        encode_json(1, big.as_bytes(), &mut inner).unwrap();
        let mut wire = Vec::new();
        encode_compressed(Version::V2, &zlib(&inner), &mut wire).unwrap();
        let mut s = ReceiverSession::new(ReceiverConfig {
            metered_inflation: true,
            ..ReceiverConfig::default()
        });
        s.handle_input(&wire, t0).unwrap();
        assert!(s.poll_batch().is_none(), "nothing inflated without credit");
        assert_eq!(s.inflate_request(), Some(INFLATE_STEP));
        assert_eq!(s.take_unused_credit(), 0);
        // Granted a step at a time, as the budget allows.
        let mut granted = 0;
        let mut requests = Vec::new();
        while let Some(n) = s.inflate_request() {
            requests.push(n);
            granted += n;
            s.grant_inflate(n, t0).unwrap();
        }
        let first = s.poll_batch().unwrap();
        let second = s.poll_batch().unwrap();
        assert_eq!((first.events.len(), second.events.len()), (300, 1));
        // One step held the small events and the start of the big frame; the rest of
        // the big frame was asked for in one piece of exactly its size.
        assert_eq!(requests, [INFLATE_STEP, inner.len() - INFLATE_STEP]);
        let unused = s.take_unused_credit();
        assert_eq!(first.inflated + second.inflated, inner.len());
        assert_eq!(
            granted,
            inner.len() + unused,
            "every granted byte is accounted for"
        );
        assert_eq!(s.take_unused_credit(), 0);
    }

    #[test]
    fn structural_errors() {
        let t0 = Instant::now();
        let mut wire = json_frames(1..=1);
        assert!(matches!(
            rx().handle_input(&wire, t0),
            Err(ProtocolError::DataOutsideWindow { seq: 1 })
        ));
        wire.clear();
        encode_window(Version::V2, 2, &mut wire);
        wire.extend(json_frames(1..=1));
        encode_window(Version::V2, 1, &mut wire);
        assert!(matches!(
            rx().handle_input(&wire, t0),
            Err(ProtocolError::WindowIncomplete {
                received: 1,
                expected: 2
            })
        ));
        wire.clear();
        encode_window(Version::V2, 1, &mut wire);
        encode_data(1, &[("a", "b")], &mut wire).unwrap();
        assert!(matches!(
            rx().handle_input(&wire, t0),
            Err(ProtocolError::BatchVersionMismatch {
                window: Version::V2,
                frame: Version::V1
            })
        ));
        assert!(matches!(
            rx().handle_input(b"2A\0\0\0\x01", t0),
            Err(ProtocolError::UnexpectedFrame {
                frame_type: FrameType::Ack,
                ..
            })
        ));
        let mut s = rx();
        assert!(s.handle_input(b"9", t0).is_err());
        assert!(matches!(
            s.handle_input(b"2W", t0),
            Err(ProtocolError::SessionFailed)
        ));
    }

    #[test]
    fn keepalives_while_pending_on_the_callers_schedule() {
        let t0 = Instant::now();
        let five = Duration::from_secs(5);
        let mut s = rx();
        assert_eq!(s.poll_keepalive_deadline(), None);
        let mut wire = Vec::new();
        encode_window(Version::V1, 2, &mut wire);
        // Half a window already makes the connection busy, as in Logstash.
        s.handle_input(&wire, t0).unwrap();
        assert_eq!(s.poll_keepalive_deadline(), Some(t0 + five));
        wire.clear();
        encode_data(1, &[("line", "a")], &mut wire).unwrap();
        encode_data(2, &[("line", "b")], &mut wire).unwrap();
        s.handle_input(&wire, t0 + Duration::from_secs(1)).unwrap();
        let batch = s.poll_batch().unwrap();
        s.handle_timeout(t0 + Duration::from_secs(4));
        assert_eq!(s.poll_transmit(), None, "not due yet");
        s.handle_timeout(t0 + five);
        // Keep-alives are always version 2, even on a v1 connection.
        assert_eq!(s.poll_transmit().unwrap(), b"2A\0\0\0\0");
        assert_eq!(s.poll_keepalive_deadline(), Some(t0 + 2 * five));
        s.handle_timeout(t0 + 2 * five);
        assert_eq!(s.poll_transmit().unwrap(), b"2A\0\0\0\0");
        s.ack_batch(batch.id, t0 + Duration::from_secs(11)).unwrap();
        assert_eq!(s.poll_transmit().unwrap(), b"1A\0\0\0\x02");
        assert_eq!(s.poll_keepalive_deadline(), None);
        s.handle_timeout(t0 + 10 * five);
        assert_eq!(s.poll_transmit(), None);
    }

    #[test]
    fn empty_window_is_acked_in_order_behind_pending_batches() {
        let t0 = Instant::now();
        let mut wire = Vec::new();
        encode_window(Version::V2, 1, &mut wire);
        wire.extend(json_frames(1..=1));
        encode_window(Version::V1, 0, &mut wire);
        let mut s = rx();
        s.handle_input(&wire, t0).unwrap();
        assert_eq!(s.poll_transmit(), None, "ACK 0 must wait for batch 1");
        let b = s.poll_batch().unwrap();
        assert!(s.poll_batch().is_none(), "an empty window is not a batch");
        s.ack_batch(b.id, t0).unwrap();
        assert_eq!(s.poll_transmit().unwrap(), b"2A\0\0\0\x011A\0\0\0\0");
    }
}
