//! The shipper side: encode windows, match ACKs, hand back unacknowledged events.
//!
//! See the crate docs for the call order. ACK handling follows libbeat/go-lumber
//! with one improvement: partial-ACK progress is kept, so after a broken
//! connection only events that were never acknowledged are handed back.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::compress::{Compressor, Flate2Compressor};
use crate::error::ProtocolError;
use crate::frame::ACK_FRAME_LEN;
use crate::packed::{encode_window_bytes, packed_count};

/// Settings of a [`ClientSession`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// zlib level 0..=9; 0 sends plain `J` frames without a `C` frame, as libbeat
    /// does. Default: 3 (libbeat's `compression_level` default).
    pub compression_level: u32,
    /// How long to wait for each ACK (keep-alives and partial ACKs count) while a
    /// window is outstanding. Default: 30 s (libbeat's `timeout`).
    pub ack_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            compression_level: 3,
            ack_timeout: Duration::from_secs(30),
        }
    }
}

/// What a [`ClientSession`] reports after ACK bytes were handled.
///
/// Every event given to [`ClientSession::send_window`] comes back exactly once:
/// in a `Progress` or `WindowAcked`, or from [`ClientSession::into_unacked`].
#[derive(Debug, PartialEq, Eq)]
pub enum ClientEvent<E> {
    /// A partial ACK: events `acked - events.len() + 1 ..= acked` of the oldest window
    /// are safe (the server accepted them); more of the window is still outstanding.
    Progress {
        /// The newly acknowledged events, in order.
        events: Vec<E>,
        /// The ACK value (absolute, within the window).
        acked: u32,
        /// Size of the window.
        of: u32,
    },
    /// The oldest window is fully acknowledged; these are its events not already
    /// returned by a `Progress`.
    WindowAcked {
        /// The acknowledged events, in order.
        events: Vec<E>,
    },
}

/// An error from [`ClientSession::send_window`] that hands the events back, so a
/// refused window loses nothing.
#[derive(Debug, thiserror::Error)]
#[error("window not sent")]
pub struct SendError<E> {
    /// The events of the refused window, untouched.
    pub events: Vec<E>,
    /// Why it was refused.
    #[source]
    pub error: ProtocolError,
}

struct InFlight<E> {
    /// Events not yet handed back, i.e. seq `acked+1..=size`.
    events: Vec<E>,
    size: u32,
    acked: u32,
}

/// Client (shipper) side of one Lumberjack v2 connection.
///
/// Generic over the caller's event handle `E`, which only needs to expose the
/// pre-encoded JSON bytes, so the caller gets its own handles back on ACK or
/// disconnect. A caller that keeps its events itself uses `E = ()` and
/// [`send_borrowed`](ClientSession::send_borrowed): the session then tracks only
/// counts (a `Vec<()>` never allocates) and the caller learns from each
/// [`ClientEvent`]'s `events.len()` how many of its events were acknowledged.
/// Generic over the [`Compressor`] so a faster deflate can be used.
pub struct ClientSession<E, C = Flate2Compressor> {
    config: ClientConfig,
    compressor: Option<C>,
    windows: VecDeque<InFlight<E>>,
    /// Reused buffer the J frames are written to before one compression call.
    scratch: Vec<u8>,
    ack_buf: [u8; ACK_FRAME_LEN],
    ack_len: usize,
    deadline: Option<Instant>,
    events: VecDeque<ClientEvent<E>>,
    failed: bool,
}

impl<E, C> std::fmt::Debug for ClientSession<E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("config", &self.config)
            .field("in_flight", &self.windows.len())
            .field("deadline", &self.deadline)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<E> ClientSession<E, Flate2Compressor> {
    /// A session compressing with flate2 at `config.compression_level`.
    pub fn new(config: ClientConfig) -> Self {
        let compressor =
            (config.compression_level > 0).then(|| Flate2Compressor::new(config.compression_level));
        Self::with_compressor(config, compressor)
    }
}

impl<E, C: Compressor> ClientSession<E, C> {
    /// A session using `compressor` for `C` frames, or plain `J` frames if `None`
    /// (`config.compression_level` is then only informational).
    pub fn with_compressor(config: ClientConfig, compressor: Option<C>) -> Self {
        Self {
            config,
            compressor,
            windows: VecDeque::new(),
            scratch: Vec::new(),
            ack_buf: [0; ACK_FRAME_LEN],
            ack_len: 0,
            deadline: None,
            events: VecDeque::new(),
            failed: false,
        }
    }

    /// Whether a window of `n` events may be sent: its size, or `None` for an empty
    /// window (acknowledged locally, as libbeat does).
    fn admit(&self, n: usize) -> Result<Option<u32>, ProtocolError> {
        if self.failed {
            return Err(ProtocolError::SessionFailed);
        }
        if n == 0 {
            return Ok(None);
        }
        u32::try_from(n)
            .map(Some)
            .map_err(|_| ProtocolError::TooManyEvents { count: n })
    }

    /// Records an encoded window as outstanding; the ACK deadline starts if no other
    /// window was.
    fn commit(&mut self, handles: Vec<E>, size: u32, now: Instant) {
        if self.windows.is_empty() {
            self.deadline = Some(now + self.config.ack_timeout);
        }
        self.windows.push_back(InFlight {
            events: handles,
            size,
            acked: 0,
        });
    }

    fn encode<'a>(
        &mut self,
        frames: impl Iterator<Item = &'a [u8]>,
        size: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), ProtocolError> {
        encode_window_bytes(
            frames,
            size,
            self.compressor.as_mut(),
            &mut self.scratch,
            out,
        )
    }

    /// Consumes bytes read from the server (ACK frames, split at any byte).
    ///
    /// Each complete ACK resets the read deadline. ACK 0 is a keep-alive (also
    /// harmless when nothing is outstanding); `0 < k < N` records progress and
    /// yields [`ClientEvent::Progress`]; `k == N` completes the oldest window
    /// ([`ClientEvent::WindowAcked`]); a value not above the progress already recorded
    /// changes nothing. ACKs are matched to windows in order.
    ///
    /// # Errors
    /// [`ProtocolError::UnexpectedReply`] if a reply does not start with `'2' 'A'`,
    /// [`ProtocolError::UnexpectedAck`] if `k > N` (or `k > 0` with nothing outstanding).
    /// The session is then failed: close the connection and call
    /// [`into_unacked`](Self::into_unacked). Unlike libbeat, a window answered with
    /// `k > N` is **not** counted as delivered: its unacknowledged events come back
    /// for resending (at-least-once).
    pub fn handle_input(&mut self, mut bytes: &[u8], now: Instant) -> Result<(), ProtocolError> {
        if self.failed {
            return Err(ProtocolError::SessionFailed);
        }
        while !bytes.is_empty() {
            let take = (ACK_FRAME_LEN - self.ack_len).min(bytes.len());
            self.ack_buf[self.ack_len..self.ack_len + take].copy_from_slice(&bytes[..take]);
            self.ack_len += take;
            bytes = &bytes[take..];
            // Check the header as soon as it is here, as libbeat does.
            if self.ack_len >= 2 && self.ack_buf[..2] != [b'2', b'A'] {
                self.failed = true;
                return Err(ProtocolError::UnexpectedReply {
                    bytes: [self.ack_buf[0], self.ack_buf[1]],
                });
            }
            if self.ack_len == ACK_FRAME_LEN {
                self.ack_len = 0;
                let seq = u32::from_be_bytes([
                    self.ack_buf[2],
                    self.ack_buf[3],
                    self.ack_buf[4],
                    self.ack_buf[5],
                ]);
                if let Err(err) = self.handle_ack(seq, now) {
                    self.failed = true;
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    fn handle_ack(&mut self, seq: u32, now: Instant) -> Result<(), ProtocolError> {
        let Some(window) = self.windows.front_mut() else {
            if seq == 0 {
                // A keep-alive racing the final ACK.
                return Ok(());
            }
            return Err(ProtocolError::UnexpectedAck { seq, window: 0 });
        };
        if seq > window.size {
            return Err(ProtocolError::UnexpectedAck {
                seq,
                window: window.size,
            });
        }
        self.deadline = Some(now + self.config.ack_timeout);
        if seq <= window.acked {
            return Ok(());
        }
        if seq < window.size {
            let newly = (seq - window.acked) as usize;
            let events = window.events.drain(..newly).collect();
            window.acked = seq;
            self.events.push_back(ClientEvent::Progress {
                events,
                acked: seq,
                of: window.size,
            });
            return Ok(());
        }
        if let Some(done) = self.windows.pop_front() {
            self.events.push_back(ClientEvent::WindowAcked {
                events: done.events,
            });
        }
        if self.windows.is_empty() {
            self.deadline = None;
        }
        Ok(())
    }

    /// The next outcome of handled ACKs, oldest first.
    pub fn poll_event(&mut self) -> Option<ClientEvent<E>> {
        self.events.pop_front()
    }

    /// When the caller must call [`handle_timeout`](Self::handle_timeout) if no ACK
    /// arrived by then; `None` while no window is outstanding.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        self.deadline
    }

    /// Checks the ACK deadline.
    ///
    /// # Errors
    /// [`ProtocolError::AckTimeout`] if a window is outstanding and `now` is at or
    /// past the deadline; the session is then failed (close the connection and call
    /// [`into_unacked`](Self::into_unacked)).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ProtocolError> {
        match self.deadline {
            Some(deadline) if !self.failed && now >= deadline => {
                self.failed = true;
                Err(ProtocolError::AckTimeout {
                    timeout: self.config.ack_timeout,
                })
            }
            _ => Ok(()),
        }
    }

    /// Number of windows sent and not yet fully acknowledged (the transport's
    /// pipelining limit compares against this).
    pub fn in_flight(&self) -> usize {
        self.windows.len()
    }

    /// Number of events sent and not yet acknowledged.
    pub fn unacked_events(&self) -> usize {
        self.windows.iter().map(|w| w.events.len()).sum()
    }

    /// True once an error ended the session.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The connection is gone: takes every event not yet acknowledged, oldest
    /// window first, in order (partial-ACK progress is kept: acknowledged events
    /// are not returned). The session is empty and failed afterwards. Outcomes not
    /// yet taken with [`poll_event`](Self::poll_event) stay available.
    pub fn on_disconnect(&mut self) -> Vec<E> {
        self.failed = true;
        self.deadline = None;
        let mut unacked = Vec::with_capacity(self.unacked_events());
        for window in self.windows.drain(..) {
            unacked.extend(window.events);
        }
        unacked
    }

    /// Consumes the session and returns the events not yet acknowledged (see
    /// [`on_disconnect`](Self::on_disconnect)); outcomes not yet polled are returned
    /// first so that nothing is lost.
    pub fn into_unacked(mut self) -> (Vec<ClientEvent<E>>, Vec<E>) {
        let unacked = self.on_disconnect();
        (self.events.into_iter().collect(), unacked)
    }
}

impl<E: AsRef<[u8]>, C: Compressor> ClientSession<E, C> {
    /// Encodes `events` as one window and appends the bytes to `out` (a buffer the
    /// caller reuses), exactly as libbeat does: `W(N)` then one `C` frame holding
    /// `J` frames numbered 1..N (plain `J` frames at compression level 0).
    ///
    /// The window counts as outstanding from now on; the ACK deadline starts if no
    /// other window was outstanding. An empty window is acknowledged locally (as
    /// libbeat does) and writes nothing.
    ///
    /// # Errors
    /// The events come back inside [`SendError`], with `out` unchanged, if the window
    /// cannot be encoded (too many events, an event larger than a u32 length, a
    /// compressor failure) or the session already failed.
    pub fn send_window(
        &mut self,
        events: Vec<E>,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<(), SendError<E>> {
        let size = match self.admit(events.len()) {
            Ok(Some(size)) => size,
            Ok(None) => {
                self.events.push_back(ClientEvent::WindowAcked { events });
                return Ok(());
            }
            Err(error) => return Err(SendError { events, error }),
        };
        let start = out.len();
        if let Err(error) = self.encode(events.iter().map(AsRef::as_ref), size, out) {
            out.truncate(start);
            return Err(SendError { events, error });
        }
        self.commit(events, size, now);
        Ok(())
    }
}

impl<C: Compressor> ClientSession<(), C> {
    /// As [`send_window`](Self::send_window) for a caller that keeps its events
    /// itself (for as long as they are unacknowledged): the bytes are only borrowed
    /// while the window is encoded, and the session tracks counts, not handles. Every
    /// [`ClientEvent`] then carries `()`s; their number is how many of the oldest
    /// unacknowledged events were acknowledged. Nothing is allocated or
    /// reference-counted per event.
    ///
    /// # Errors
    /// As [`send_window`](Self::send_window); the [`SendError`] carries one `()` per event.
    pub fn send_borrowed<'a, I>(
        &mut self,
        events: I,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<(), SendError<()>>
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: ExactSizeIterator,
    {
        let events = events.into_iter();
        let n = events.len();
        let size = match self.admit(n) {
            Ok(Some(size)) => size,
            Ok(None) => {
                self.events
                    .push_back(ClientEvent::WindowAcked { events: Vec::new() });
                return Ok(());
            }
            Err(error) => {
                return Err(SendError {
                    events: vec![(); n],
                    error,
                })
            }
        };
        let start = out.len();
        if let Err(error) = self.encode(events, size, out) {
            out.truncate(start);
            return Err(SendError {
                events: vec![(); n],
                error,
            });
        }
        self.commit(vec![(); n], size, now);
        Ok(())
    }
}

impl<C: Compressor> ClientSession<(), C> {
    /// Sends a window encoded earlier ([`crate::packed`]): `wire` is written to `out` as it
    /// is, and the window counts as outstanding as with
    /// [`send_borrowed`](Self::send_borrowed). Whatever compressor this session has, the
    /// bytes are the ones stored; a receiver inflates any zlib level alike.
    ///
    /// # Errors
    /// [`ProtocolError::UnexpectedFrame`] (in a [`SendError`] holding one `()` per announced
    /// event, or none) when `wire` is not a packed window by its headers
    /// ([`packed_count`]), and the errors of [`send_borrowed`](Self::send_borrowed).
    pub fn send_packed(
        &mut self,
        wire: &[u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<(), SendError<()>> {
        let Some(size) = packed_count(wire) else {
            return Err(SendError {
                events: Vec::new(),
                error: ProtocolError::UnexpectedFrame {
                    frame_type: crate::frame::FrameType::Compressed,
                    reason: "not a packed window",
                },
            });
        };
        let n = size as usize;
        if let Err(error) = self.admit(n) {
            return Err(SendError {
                events: vec![(); n],
                error,
            });
        }
        out.extend_from_slice(wire);
        self.commit(vec![(); n], size, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    fn session() -> ClientSession<&'static str> {
        ClientSession::new(ClientConfig {
            compression_level: 0,
            ack_timeout: TIMEOUT,
        })
    }

    #[test]
    fn a_packed_window_is_sent_as_the_same_bytes_and_acknowledged_like_any_window() {
        let config = ClientConfig {
            compression_level: 3,
            ack_timeout: TIMEOUT,
        };
        let events: [&[u8]; 2] = [b"{\"a\":1}", b"{\"b\":2}"];
        let mut direct = ClientSession::<()>::new(config);
        let mut sent = Vec::new();
        direct
            .send_borrowed(events.iter().copied(), &mut sent, Instant::now())
            .unwrap();
        let mut wire = Vec::new();
        crate::packed::encode_window_bytes(
            events.iter().copied(),
            2,
            Some(&mut Flate2Compressor::new(3)),
            &mut Vec::new(),
            &mut wire,
        )
        .unwrap();
        let mut packed = ClientSession::<()>::new(config);
        let mut out = Vec::new();
        packed.send_packed(&wire, &mut out, Instant::now()).unwrap();
        assert_eq!(
            out, sent,
            "the stored window is the window the session would send"
        );
        assert_eq!(packed.unacked_events(), 2);
        packed.handle_input(&ack(2), Instant::now()).unwrap();
        assert_eq!(
            packed.poll_event(),
            Some(ClientEvent::WindowAcked {
                events: vec![(); 2]
            })
        );
        let err = packed
            .send_packed(&wire[..wire.len() - 1], &mut out, Instant::now())
            .unwrap_err();
        assert!(matches!(err.error, ProtocolError::UnexpectedFrame { .. }));
    }

    fn ack(seq: u32) -> [u8; 6] {
        let s = seq.to_be_bytes();
        [b'2', b'A', s[0], s[1], s[2], s[3]]
    }

    fn events(n: usize) -> Vec<&'static str> {
        [
            "{\"a\":1}",
            "{\"a\":2}",
            "{\"a\":3}",
            "{\"a\":4}",
            "{\"a\":5}",
        ][..n]
            .to_vec()
    }

    #[test]
    fn partial_acks_are_kept_across_a_disconnect() {
        let t0 = Instant::now();
        let mut c = session();
        c.send_window(events(5), &mut Vec::new(), t0).unwrap();
        c.handle_input(&ack(2), t0).unwrap();
        assert_eq!(
            c.poll_event(),
            Some(ClientEvent::Progress {
                events: events(2),
                acked: 2,
                of: 5
            })
        );
        // A lower or repeated value changes nothing.
        c.handle_input(&ack(1), t0).unwrap();
        c.handle_input(&ack(2), t0).unwrap();
        assert_eq!(c.poll_event(), None);
        assert_eq!(c.unacked_events(), 3);
        let (pending, unacked) = c.into_unacked();
        assert!(pending.is_empty());
        assert_eq!(unacked, events(5)[2..].to_vec());
    }

    #[test]
    fn ack_beyond_the_window_is_an_error_naming_both_numbers() {
        let t0 = Instant::now();
        let mut c = session();
        c.send_window(events(2), &mut Vec::new(), t0).unwrap();
        let err = c.handle_input(&ack(3), t0).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::UnexpectedAck { seq: 3, window: 2 }
        ));
        assert_eq!(err.to_string(), "ACK 3 for a window of 2 events");
        assert!(c.is_failed());
        assert!(matches!(
            c.handle_input(&ack(0), t0),
            Err(ProtocolError::SessionFailed)
        ));
        // Not counted as delivered: both events come back.
        assert_eq!(c.into_unacked().1, events(2));
    }

    #[test]
    fn keepalive_with_nothing_outstanding_is_harmless_but_a_real_ack_is_not() {
        let t0 = Instant::now();
        let mut c = session();
        c.handle_input(&ack(0), t0).unwrap();
        assert_eq!(c.poll_timeout(), None);
        assert!(matches!(
            c.handle_input(&ack(1), t0),
            Err(ProtocolError::UnexpectedAck { seq: 1, window: 0 })
        ));
    }

    #[test]
    fn replies_that_are_not_2a_are_refused_after_two_bytes() {
        for bad in [&b"1A"[..], b"2W", b"xx"] {
            let mut c = session();
            c.send_window(events(1), &mut Vec::new(), Instant::now())
                .unwrap();
            let err = c.handle_input(bad, Instant::now()).unwrap_err();
            assert!(
                matches!(err, ProtocolError::UnexpectedReply { bytes } if bytes == [bad[0], bad[1]]),
                "{err:?}"
            );
        }
    }

    #[test]
    fn every_ack_resets_the_deadline_and_expiry_fails_the_session() {
        let t0 = Instant::now();
        let mut c = session();
        assert_eq!(c.poll_timeout(), None);
        c.send_window(events(2), &mut Vec::new(), t0).unwrap();
        assert_eq!(c.poll_timeout(), Some(t0 + TIMEOUT));
        // A second window does not move the deadline: the ACK stream is what is timed.
        c.send_window(events(1), &mut Vec::new(), t0 + Duration::from_secs(5))
            .unwrap();
        assert_eq!(c.poll_timeout(), Some(t0 + TIMEOUT));
        let t1 = t0 + Duration::from_secs(10);
        c.handle_input(&ack(0), t1).unwrap();
        assert_eq!(c.poll_timeout(), Some(t1 + TIMEOUT));
        c.handle_timeout(t1 + TIMEOUT - Duration::from_millis(1))
            .unwrap();
        let err = c.handle_timeout(t1 + TIMEOUT).unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.into_unacked().1, ["{\"a\":1}", "{\"a\":2}", "{\"a\":1}"]);
    }

    #[test]
    fn pipelined_acks_never_complete_the_next_window() {
        let t0 = Instant::now();
        let mut c = session();
        c.send_window(events(2), &mut Vec::new(), t0).unwrap();
        c.send_window(events(1), &mut Vec::new(), t0).unwrap();
        assert_eq!(c.in_flight(), 2);
        // ACK 1 belongs to the first window (size 2): progress, not completion of #2.
        c.handle_input(&ack(1), t0).unwrap();
        assert_eq!(c.in_flight(), 2);
        assert!(matches!(
            c.poll_event(),
            Some(ClientEvent::Progress {
                acked: 1,
                of: 2,
                ..
            })
        ));
        c.handle_input(&ack(2), t0).unwrap();
        c.handle_input(&ack(1), t0).unwrap();
        assert!(
            matches!(c.poll_event(), Some(ClientEvent::WindowAcked { events }) if events == ["{\"a\":2}"])
        );
        assert!(
            matches!(c.poll_event(), Some(ClientEvent::WindowAcked { events }) if events == ["{\"a\":1}"])
        );
        assert_eq!(c.in_flight(), 0);
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn ack_bytes_split_at_every_boundary() {
        let wire: Vec<u8> = [ack(0), ack(1), ack(2), ack(1)].concat();
        for split in 0..=wire.len() {
            let t0 = Instant::now();
            let mut c = session();
            c.send_window(events(2), &mut Vec::new(), t0).unwrap();
            c.send_window(events(1), &mut Vec::new(), t0).unwrap();
            c.handle_input(&wire[..split], t0).unwrap();
            c.handle_input(&wire[split..], t0).unwrap();
            assert_eq!(c.in_flight(), 0, "split {split}");
        }
    }

    #[test]
    fn empty_window_is_acked_locally_and_writes_nothing() {
        let mut c = session();
        let mut out = Vec::new();
        c.send_window(Vec::new(), &mut out, Instant::now()).unwrap();
        assert!(out.is_empty());
        assert_eq!(c.in_flight(), 0);
        assert_eq!(
            c.poll_event(),
            Some(ClientEvent::WindowAcked { events: vec![] })
        );
    }

    #[test]
    fn compressed_encoding_reuses_buffers() {
        let mut c: ClientSession<&str> = ClientSession::new(ClientConfig::default());
        let mut out = Vec::new();
        let t0 = Instant::now();
        c.send_window(events(5), &mut out, t0).unwrap();
        let first = out.clone();
        c.handle_input(&ack(5), t0).unwrap();
        let scratch_cap = c.scratch.capacity();
        out.clear();
        let out_cap = out.capacity();
        c.send_window(events(5), &mut out, t0).unwrap();
        assert_eq!(out, first, "deterministic across windows");
        assert_eq!(c.scratch.capacity(), scratch_cap);
        assert_eq!(out.capacity(), out_cap);
    }

    #[test]
    fn borrowed_windows_are_byte_identical_and_acks_come_back_as_counts() {
        let t0 = Instant::now();
        for level in [0, 3] {
            let config = ClientConfig {
                compression_level: level,
                ack_timeout: TIMEOUT,
            };
            let mut owned: ClientSession<&str> = ClientSession::new(config);
            let mut counted: ClientSession<()> = ClientSession::new(config);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            owned.send_window(events(5), &mut a, t0).unwrap();
            counted
                .send_borrowed(events(5).iter().map(|e| e.as_bytes()), &mut b, t0)
                .unwrap();
            assert_eq!(a, b, "level {level}: same bytes on the wire");
            counted.handle_input(&ack(2), t0).unwrap();
            counted.handle_input(&ack(5), t0).unwrap();
            assert_eq!(
                counted.poll_event(),
                Some(ClientEvent::Progress {
                    events: vec![(); 2],
                    acked: 2,
                    of: 5
                })
            );
            assert_eq!(
                counted.poll_event(),
                Some(ClientEvent::WindowAcked {
                    events: vec![(); 3]
                })
            );
            assert_eq!(counted.in_flight(), 0);
        }
    }

    /// An iterator whose `len` promises more items than it yields.
    struct Lying<'a>(std::slice::Iter<'a, &'static str>);

    impl<'a> Iterator for Lying<'a> {
        type Item = &'a [u8];
        fn next(&mut self) -> Option<Self::Item> {
            self.0.next().map(|s| s.as_bytes())
        }
    }

    impl ExactSizeIterator for Lying<'_> {
        fn len(&self) -> usize {
            self.0.len() + 1
        }
    }

    #[test]
    fn a_borrowed_window_shorter_than_announced_is_refused_and_writes_nothing() {
        let mut c: ClientSession<()> = ClientSession::new(ClientConfig::default());
        let mut out = b"kept".to_vec();
        let evs = events(3);
        let err = c
            .send_borrowed(Lying(evs.iter()), &mut out, Instant::now())
            .unwrap_err();
        assert!(matches!(
            err.error,
            ProtocolError::EventCountMismatch {
                announced: 4,
                given: 3
            }
        ));
        assert_eq!(err.events.len(), 4);
        assert_eq!(out, b"kept");
        assert_eq!(c.in_flight(), 0);
    }
}
