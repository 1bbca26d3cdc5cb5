//! The null Lumberjack sink: a receiver that costs (almost) nothing, so that the harness can
//! measure a sender alone.
//!
//! Every real receiver here (go-lumber's server, `skidder receive`) inflates and decodes what
//! it gets and needs CPU comparable to the sender's; on a 2-core machine it hides whether the
//! sender's second worker helps. The null sink reads each frame header, skips the payloads by
//! their length (a `C` frame is never inflated, a `J` frame never parsed) and ACKs each window
//! with its event count, as go-lumber's server does.
//!
//! ```text
//!  sender ──TLS──▶ [ header ─▶ skip payload by length ] ──window complete──▶ 2A <count>
//! ```
//!
//! Rules ([`Session`], sans-IO: bytes in, ACK bytes out):
//! * `2W n` opens a window of `n` events. `n = 0` is answered with `2A 0` at once (what
//!   `skidder test output` sends to check a session).
//! * `2J seq len` frames count one event each; the window is ACKed after its `n`-th.
//! * `2C len` completes the open window: every Lumberjack v2 sender this harness runs
//!   (skidder, go-lumber, libbeat) puts a whole window in one compressed frame, and not
//!   inflating it is the point. A sender that split a window over several `C` frames would
//!   see its window ACKed early; the sink is a benchmark peer, not a Logstash.
//! * Anything else (v1 frames, `D` frames, a data frame before any `W`, a second `W` inside
//!   an open window) is a [`SinkError`] that ends the connection.
//!
//! The `null-sink` program (`bench/src/bin/null_sink.rs`) runs one listener per `--listen`,
//! one thread per connection with blocking rustls I/O, and writes go-lumber-style stats
//! (`events`, `first_to_last_s`, `elapsed_s`) once `--expect` events were ACKed.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use skidder_protocol::frame::{
    encode_ack, ACK_FRAME_LEN, COMPRESSED_HEADER_LEN, JSON_HEADER_LEN, WINDOW_FRAME_LEN,
};
use skidder_protocol::{FrameType, ProtocolError, Version};

/// Why a connection to the null sink was ended.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A frame the sink does not take (see the module docs).
    #[error("unexpected frame: {0}")]
    Protocol(#[from] ProtocolError),
    /// A frame that is valid Lumberjack but out of place.
    #[error("{0}")]
    OutOfPlace(&'static str),
    /// Reading or writing the connection failed.
    #[error("{op}: {source}")]
    Io {
        /// "reading" or "writing the ACK".
        op: &'static str,
        /// The OS or TLS error.
        #[source]
        source: std::io::Error,
    },
}

/// What the payload being skipped belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skipping {
    Json,
    Compressed,
}

/// One connection's frame skipper and window counter (no I/O).
#[derive(Debug, Default)]
pub struct Session {
    /// Bytes of the current frame header read so far.
    head: [u8; JSON_HEADER_LEN],
    have: usize,
    /// Payload bytes still to skip, and of which frame.
    skip: usize,
    skipping: Option<Skipping>,
    /// The open window's announced size and the events counted in it.
    window: Option<u32>,
    seen: u32,
}

impl Session {
    /// A session waiting for its first window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes `input` (any split of the stream), appends the ACK frames of the windows it
    /// completed to `acks`, and returns the events those ACKs cover.
    ///
    /// # Errors
    /// [`SinkError`] on a frame the sink does not take; the connection should end.
    pub fn handle_input(&mut self, mut input: &[u8], acks: &mut Vec<u8>) -> Result<u64, SinkError> {
        let mut acked = 0u64;
        while !input.is_empty() {
            if let Some(kind) = self.skipping {
                let n = self.skip.min(input.len());
                input = &input[n..];
                self.skip -= n;
                if self.skip == 0 {
                    self.skipping = None;
                    acked += self.payload_done(kind, acks);
                }
                continue;
            }
            // Header bytes: two first, then as many as this frame type's header has.
            let want = if self.have < 2 {
                2
            } else {
                header_len(self.head[1])?
            };
            let n = (want - self.have).min(input.len());
            self.head[self.have..self.have + n].copy_from_slice(&input[..n]);
            self.have += n;
            input = &input[n..];
            if self.have == 2 {
                if Version::try_from(self.head[0])? != Version::V2 {
                    return Err(SinkError::OutOfPlace(
                        "a Lumberjack v1 frame (the null sink takes v2 only)",
                    ));
                }
                header_len(self.head[1])?;
                continue;
            }
            if self.have == want {
                self.have = 0;
                acked += self.header_done(acks)?;
            }
        }
        Ok(acked)
    }

    /// A complete header is in `head`.
    fn header_done(&mut self, acks: &mut Vec<u8>) -> Result<u64, SinkError> {
        let u32_at = |h: &[u8], i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        match FrameType::try_from(self.head[1])? {
            FrameType::Window => {
                if self.window.is_some() {
                    return Err(SinkError::OutOfPlace(
                        "a window frame inside an open window",
                    ));
                }
                let count = u32_at(&self.head, 2);
                if count == 0 {
                    encode_ack(Version::V2, 0, acks);
                } else {
                    self.window = Some(count);
                    self.seen = 0;
                }
                Ok(0)
            }
            kind @ (FrameType::Json | FrameType::Compressed) => {
                if self.window.is_none() {
                    return Err(SinkError::OutOfPlace(
                        "a data frame before any window frame",
                    ));
                }
                let (skipping, len_at) = if kind == FrameType::Json {
                    (Skipping::Json, 6)
                } else {
                    (Skipping::Compressed, 2)
                };
                self.skip = u32_at(&self.head, len_at) as usize;
                if self.skip == 0 {
                    return Ok(self.payload_done(skipping, acks));
                }
                self.skipping = Some(skipping);
                Ok(0)
            }
            FrameType::Data | FrameType::Ack => Err(SinkError::OutOfPlace(
                "a D or A frame (a v2 sender sends W, J and C frames)",
            )),
        }
    }

    /// A payload was skipped: count it, and ACK the window if it is complete.
    fn payload_done(&mut self, kind: Skipping, acks: &mut Vec<u8>) -> u64 {
        let Some(count) = self.window else {
            return 0;
        };
        self.seen = match kind {
            Skipping::Json => self.seen + 1,
            Skipping::Compressed => count,
        };
        if self.seen < count {
            return 0;
        }
        // go-lumber's server ACKs the window's last sequence number: its event count.
        encode_ack(Version::V2, count, acks);
        self.window = None;
        u64::from(count)
    }
}

/// Header length of frame type `byte`.
fn header_len(byte: u8) -> Result<usize, SinkError> {
    Ok(match FrameType::try_from(byte)? {
        FrameType::Window => WINDOW_FRAME_LEN,
        FrameType::Json => JSON_HEADER_LEN,
        FrameType::Compressed => COMPRESSED_HEADER_LEN,
        FrameType::Data | FrameType::Ack => {
            return Err(SinkError::OutOfPlace(
                "a D or A frame (a v2 sender sends W, J and C frames)",
            ))
        }
    })
}

/// Counters every connection of one sink process shares.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    /// Events after which [`Stats::wait_expected`] returns.
    expect: u64,
    reached: (Mutex<bool>, Condvar),
    /// Events ACKed, all connections.
    pub events: AtomicU64,
    /// Windows ACKed.
    pub windows: AtomicU64,
    /// (first window's first byte, last ACK), for events/s between them.
    span: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl Stats {
    /// Counters for a sink that is done after `expect` events.
    pub fn new(expect: u64) -> Self {
        Self {
            started: Instant::now(),
            expect,
            reached: (Mutex::new(false), Condvar::new()),
            events: AtomicU64::new(0),
            windows: AtomicU64::new(0),
            span: Mutex::new((None, None)),
        }
    }

    /// Waits until `expect` events were ACKed (true) or `limit` passed (false).
    pub fn wait_expected(&self, limit: Duration) -> bool {
        let (lock, cv) = &self.reached;
        let done = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (done, _) = cv
            .wait_timeout_while(done, limit, |d| !*d)
            .unwrap_or_else(|p| p.into_inner());
        *done
    }

    fn saw_data(&self, at: Instant) {
        let mut s = self.span.lock().unwrap_or_else(|p| p.into_inner());
        s.0.get_or_insert(at);
    }

    fn acked(&self, events: u64, windows: u64, at: Instant) {
        self.windows.fetch_add(windows, Ordering::Relaxed);
        {
            let mut s = self.span.lock().unwrap_or_else(|p| p.into_inner());
            s.1 = Some(at);
        }
        let before = self.events.fetch_add(events, Ordering::AcqRel);
        if before < self.expect && before + events >= self.expect {
            let (lock, cv) = &self.reached;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cv.notify_all();
        }
    }

    /// The stats as go-lumber's server writes them (`--stats-file`), so the harness reads
    /// both the same way.
    pub fn json(&self) -> serde_json::Value {
        let (first, last) = *self.span.lock().unwrap_or_else(|p| p.into_inner());
        let first_to_last = match (first, last) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        serde_json::json!({
            "events": self.events.load(Ordering::Acquire),
            "windows": self.windows.load(Ordering::Relaxed),
            "first_to_last_s": first_to_last,
            "elapsed_s": self.started.elapsed().as_secs_f64(),
        })
    }
}

/// Serves one connection (plain or TLS, already accepted) until the peer closes it.
/// ACKs are written as soon as the data read completes a window.
///
/// # Errors
/// [`SinkError`] on an I/O error or a frame the sink does not take.
pub fn serve<S: Read + Write>(mut stream: S, stats: &Arc<Stats>) -> Result<(), SinkError> {
    let mut session = Session::new();
    // Large reads: one syscall and one TLS record batch for many frames.
    let mut buf = vec![0u8; 256 * 1024];
    let mut acks = Vec::with_capacity(64);
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A peer that closes without TLS close_notify has still sent everything.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(source) => {
                return Err(SinkError::Io {
                    op: "reading",
                    source,
                })
            }
        };
        stats.saw_data(Instant::now());
        acks.clear();
        let events = session.handle_input(&buf[..n], &mut acks)?;
        if !acks.is_empty() {
            stream
                .write_all(&acks)
                .and_then(|()| stream.flush())
                .map_err(|source| SinkError::Io {
                    op: "writing the ACK",
                    source,
                })?;
            let windows = (acks.len() / ACK_FRAME_LEN) as u64;
            stats.acked(events, windows, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skidder_protocol::frame::{encode_json, encode_window};

    fn ack(n: u32) -> Vec<u8> {
        let mut v = Vec::new();
        encode_ack(Version::V2, n, &mut v);
        v
    }

    /// Two windows: one compressed (its payload is garbage: the sink must not inflate it)
    /// and one of plain J frames.
    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        encode_window(Version::V2, 3, &mut s);
        s.extend_from_slice(b"2C");
        s.extend_from_slice(&5u32.to_be_bytes());
        s.extend_from_slice(b"\xff\x00not");
        encode_window(Version::V2, 2, &mut s);
        encode_json(1, br#"{"a":1}"#, &mut s).unwrap();
        encode_json(2, br#"{}"#, &mut s).unwrap();
        s
    }

    #[test]
    fn acks_each_window_with_its_count_at_every_split() {
        let s = stream();
        for at in 0..=s.len() {
            for step in [1, 3, 7, s.len().max(1)] {
                let mut session = Session::new();
                let mut acks = Vec::new();
                let mut events = session.handle_input(&s[..at], &mut acks).unwrap();
                for chunk in s[at..].chunks(step) {
                    events += session.handle_input(chunk, &mut acks).unwrap();
                }
                assert_eq!(events, 5, "split at {at}, step {step}");
                assert_eq!(
                    acks,
                    [ack(3), ack(2)].concat(),
                    "split at {at}, step {step}"
                );
            }
        }
    }

    #[test]
    fn no_ack_before_the_window_is_complete() {
        let s = stream();
        let mut session = Session::new();
        let mut acks = Vec::new();
        // Everything of the compressed window but its last payload byte.
        assert_eq!(session.handle_input(&s[..16], &mut acks).unwrap(), 0);
        assert!(acks.is_empty());
        assert_eq!(session.handle_input(&s[16..17], &mut acks).unwrap(), 3);
        assert_eq!(acks, ack(3));
    }

    #[test]
    fn an_empty_window_is_acked_with_zero() {
        let mut s = Vec::new();
        encode_window(Version::V2, 0, &mut s);
        let mut acks = Vec::new();
        assert_eq!(Session::new().handle_input(&s, &mut acks).unwrap(), 0);
        assert_eq!(acks, ack(0));
    }

    #[test]
    fn refuses_what_it_does_not_take_with_the_reason() {
        let cases: [(&[u8], &str); 5] = [
            (b"1W\0\0\0\x01", "v1"),
            (b"2X", "unknown"),
            (b"2J\0\0\0\x01\0\0\0\0", "before any window"),
            (b"2W\0\0\0\x02\x32W\0\0\0\x01", "inside an open window"),
            (b"2W\0\0\0\x01\x32D", "d or a frame"),
        ];
        for (bytes, want) in cases {
            let err = Session::new()
                .handle_input(bytes, &mut Vec::new())
                .unwrap_err()
                .to_string();
            assert!(err.to_lowercase().contains(want), "{bytes:?}: {err}");
        }
    }

    #[test]
    fn serve_acks_over_a_stream_and_counts_the_stats() {
        /// Reads `input` in small pieces, records what is written.
        struct Pipe {
            input: std::io::Cursor<Vec<u8>>,
            out: Vec<u8>,
        }
        impl Read for Pipe {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                let n = b.len().min(4);
                self.input.read(&mut b[..n])
            }
        }
        impl Write for Pipe {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.out.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let stats = Arc::new(Stats::new(5));
        let mut pipe = Pipe {
            input: std::io::Cursor::new(stream()),
            out: Vec::new(),
        };
        serve(&mut pipe, &stats).unwrap();
        assert_eq!(pipe.out, [ack(3), ack(2)].concat());
        let j = stats.json();
        assert_eq!(j["events"], 5);
        assert_eq!(j["windows"], 2);
        assert!(
            stats.wait_expected(Duration::ZERO),
            "5 of 5 events were ACKed"
        );
    }
}
