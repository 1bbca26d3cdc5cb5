//! One connection: drives a [`ClientSession`] over a stream, keeps up to `pipelining`
//! windows in flight, reads ACKs, enforces the ACK timeout (reset by keep-alives) and `ttl`.
//!
//! The batches a connection has taken live in [`Held`] records owned by the worker, with
//! how many events were sent and acknowledged. ACKs arrive in window order and windows
//! never span batches, so what is acknowledged is always a prefix of each batch: after a
//! failure the worker re-sends exactly the unacknowledged tail (`Batch::retry_events`).
//!
//! Each output worker runs on a thread of its own with a single-threaded runtime
//! (`LogstashWorker::run`), so a window is encoded and compressed right on that thread:
//! nothing else shares its runtime, and two workers compress on two cores at once. Called
//! on a shared multi-threaded runtime instead (tests, embedding), compression moves off the
//! scheduler with `block_in_place`. Measured (1M events over mTLS at level 3, one
//! connection, go-lumber server): the dedicated thread uses 4 % less CPU than
//! `block_in_place` on the shared runtime, whose hand-off woke a second thread per window.

use crate::config::units::human;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use skidder_protocol::{ClientConfig, ClientEvent, ClientSession, Compressor, ProtocolError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::balance::Decision;
use super::compress::WireCompressor;
use super::fleet::Lease;
use super::metrics::{ErrorKind, HostMetrics};
use super::transport::Connected;
use super::window::Window;
use crate::outputs::elasticsearch::bulk::stamp_content_id;
use crate::pipeline::{Batch, BatchSource, Gate, Metrics};

/// A batch taken by a connection, with its delivery progress.
#[derive(Debug)]
pub struct Held {
    /// The batch.
    pub batch: Batch,
    /// Events written in windows so far (a prefix).
    pub sent: usize,
    /// Events acknowledged so far (a prefix of the sent ones).
    pub acked: usize,
}

/// How a connection ended.
#[derive(Debug)]
pub enum Ended {
    /// The run is over; nothing is held.
    Finished,
    /// `ttl` passed and every window was acknowledged: reconnect now (load rebalances).
    Ttl,
    /// The server closed an idle connection (nothing in flight, nothing lost).
    IdleClosed,
    /// The connection failed; the worker settles what is still held.
    Failed(ConnectionError),
    /// The source's gate closed (`output.failover` switched away) while batches were held:
    /// the connection is given up so they go back to the queue for the other output.
    Recalled,
    /// Its address left the DNS answer and every window was acknowledged (`dns.expand`).
    Drained,
}

/// Why a connection was given up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// No ACK (not even a keep-alive) within `timeout`.
    #[error("no ACK from {host} within {}", human(*.timeout))]
    AckTimeout {
        /// `host:port`.
        host: String,
        /// `output.logstash.timeout`.
        timeout: Duration,
    },
    /// Writing a window took longer than `timeout`.
    #[error("writing a window to {host} timed out after {}", human(*.timeout))]
    WriteTimeout {
        /// `host:port`.
        host: String,
        /// `output.logstash.timeout`.
        timeout: Duration,
    },
    /// The server's reply is not the Lumberjack protocol.
    #[error("protocol error from {host}: {source}")]
    Protocol {
        /// `host:port`.
        host: String,
        /// What was wrong.
        source: ProtocolError,
    },
    /// The server closed the connection while windows were outstanding.
    #[error("{host} closed the connection with {windows} window(s) unacknowledged")]
    Closed {
        /// `host:port`.
        host: String,
        /// Windows in flight.
        windows: usize,
    },
    /// Reading or writing failed.
    #[error("{op} {host} failed: {source}")]
    Io {
        /// "reading from" / "writing to".
        op: &'static str,
        /// `host:port`.
        host: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A window could not be encoded (the encoder task failed or an event is too large).
    #[error("encoding a window for {host} failed: {reason}")]
    Encode {
        /// `host:port`.
        host: String,
        /// The cause.
        reason: String,
    },
}

impl ConnectionError {
    /// The error counter this failure goes to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnectionError::AckTimeout { .. } | ConnectionError::WriteTimeout { .. } => {
                ErrorKind::Timeout
            }
            ConnectionError::Protocol { .. } | ConnectionError::Encode { .. } => {
                ErrorKind::Protocol
            }
            ConnectionError::Closed { .. } | ConnectionError::Io { .. } => ErrorKind::Io,
        }
    }
}

/// What a connection needs from its worker.
pub struct Ctx<'a> {
    /// With `loadbalance`: asked before each batch is taken, told of each window.
    pub balance: Option<&'a Lease>,
    /// `host:port`.
    pub host: &'a str,
    /// The host's counters.
    pub host_metrics: &'a HostMetrics,
    /// The pipeline's counters (`output_bytes`).
    pub metrics: &'a Metrics,
    /// Windows allowed in flight.
    pub windows_in_flight: usize,
    /// ACK and write timeout.
    pub timeout: Duration,
    /// `compression_level`.
    pub compression_level: u32,
    /// `ttl`.
    pub ttl: Option<Duration>,
    /// `event_id: hash`: windows carry each event with `@metadata._id` stamped.
    pub stamp_ids: bool,
}

/// Counts only: the events stay in the held batches until acknowledged.
type Session = ClientSession<(), WireCompressor>;

/// Serves one connection until it fails, the run ends or `ttl` passes. Batches taken are
/// pushed to `held`; fully acknowledged ones are acked and removed. On `Failed`, `held`
/// keeps the rest with their progress for the worker to settle.
pub async fn serve(
    conn: Connected,
    ctx: &Ctx<'_>,
    source: &mut BatchSource,
    held: &mut VecDeque<Held>,
    window: &mut Window,
    out: &mut Vec<u8>,
) -> Ended {
    let (mut rd, mut wr) = tokio::io::split(conn.stream);
    let compressor = WireCompressor::for_level(ctx.compression_level);
    let config = ClientConfig {
        compression_level: compressor.as_ref().map_or(0, |c| c.level()),
        ack_timeout: ctx.timeout,
    };
    let mut session: Session = ClientSession::with_compressor(config, compressor);
    // Where this connection compresses (see the module docs); the runtime does not change.
    let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread;
    let mut sent_at: VecDeque<Instant> = VecDeque::new();
    let ttl_at = ctx.ttl.map(|t| tokio::time::Instant::now() + t);
    let mut buf = [0u8; 512];
    let fail = |e: ConnectionError| Ended::Failed(e);
    // Cloned so that watching it does not borrow `source`, which the select also uses.
    let gate = source.gate().cloned();
    let mut recalls_seen = gate.as_ref().map_or(0, |g| g.recalls());
    let mut stamper = ctx.stamp_ids.then(Stamper::default);
    loop {
        // Fill the pipeline with windows of the batches already taken.
        loop {
            if session.in_flight() >= ctx.windows_in_flight {
                break;
            }
            let Some(h) = held.iter_mut().find(|h| h.sent < h.batch.len()) else {
                break;
            };
            out.clear();
            // A packed window from the disk queue goes as it was stored: no framing, no
            // compression (docs/disk-queue.md §11). The source hands one only to a worker
            // that neither stamps ids nor starts small, so it fits the window.
            let whole = (h.sent == 0 && stamper.is_none() && window.size() >= h.batch.len())
                .then(|| h.batch.packed().cloned())
                .flatten();
            if let Some(wire) = whole {
                let n = h.batch.len();
                let r = session.send_packed(&wire, out, Instant::now());
                h.sent = n;
                if let Err(e) = r {
                    return fail(ConnectionError::Encode {
                        host: ctx.host.to_string(),
                        reason: e.error.to_string(),
                    });
                }
            } else {
                // The source hands out packed events only as a whole window: a window the
                // current one cannot hold is taken apart here (the first event tells).
                let packed = h.batch.events().first().is_some_and(|e| e.packed.is_some());
                if let Some((_, reason)) = packed.then(|| h.batch.unpack()).flatten() {
                    // Sent again after the failure, the source drops what cannot be taken apart.
                    return fail(ConnectionError::Encode {
                        host: ctx.host.to_string(),
                        reason,
                    });
                }
                let n = window.size().min(h.batch.len() - h.sent);
                let events = &h.batch.events()[h.sent..h.sent + n];
                // The batch stays held (its events alive) until the window is acknowledged, so
                // the session only borrows the bytes and counts.
                let stamped = stamper
                    .as_mut()
                    .map(|s| s.stamp(events.iter().map(|e| &e.bytes[..])));
                let frames: Box<dyn ExactSizeIterator<Item = &[u8]> + Send> = match stamped {
                    Some(s) => Box::new(s.spans.iter().map(|r| &s.buf[r.clone()])),
                    None => Box::new(events.iter().map(|e| &e.bytes[..])),
                };
                let r = if multi_thread {
                    // A shared runtime: compress off its scheduler.
                    tokio::task::block_in_place(|| {
                        session.send_borrowed(frames, out, Instant::now())
                    })
                } else {
                    // The worker's own single-threaded runtime (see `LogstashWorker::run`):
                    // nothing else runs on it, so compress right here.
                    session.send_borrowed(frames, out, Instant::now())
                };
                h.sent += n;
                if let Err(e) = r {
                    return fail(ConnectionError::Encode {
                        host: ctx.host.to_string(),
                        reason: e.error.to_string(),
                    });
                }
            }
            let write = async {
                wr.write_all(out).await?;
                wr.flush().await
            };
            match tokio::time::timeout(ctx.timeout, write).await {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    return fail(ConnectionError::Io {
                        op: "writing to",
                        host: ctx.host.to_string(),
                        source,
                    })
                }
                Err(_) => {
                    return fail(ConnectionError::WriteTimeout {
                        host: ctx.host.to_string(),
                        timeout: ctx.timeout,
                    })
                }
            }
            sent_at.push_back(Instant::now());
            if let Some(b) = ctx.balance {
                b.sent();
            }
            ctx.host_metrics.windows.fetch_add(1, Ordering::Relaxed);
            ctx.metrics
                .output_bytes
                .fetch_add(out.len() as u64, Ordering::Relaxed);
        }
        let s = &mut session;
        let ttl_due = ttl_at.is_some_and(|t| tokio::time::Instant::now() >= t);
        if ttl_due && held.is_empty() {
            return Ended::Ttl;
        }
        let all_sent = held.iter().all(|h| h.sent == h.batch.len());
        let want_batch = all_sent && s.in_flight() < ctx.windows_in_flight && !ttl_due;
        // Whether the balancer lets this connection take it (see balance.rs); it is asked
        // again whenever it changes.
        let (take, seen, recheck) = match ctx.balance {
            Some(b) if want_batch => match b.decide() {
                (Decision::Take, v) => (true, Some(v), None),
                (Decision::Wait { recheck }, v) => (false, Some(v), recheck),
                (Decision::Leave, _) if held.is_empty() => return Ended::Drained,
                (Decision::Leave, v) => (false, Some(v), None),
            },
            _ => (want_batch, None, None),
        };
        let deadline = s.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            // Either the next batch, or (while the pipeline is full) the end of the run,
            // which only a cancelled run reaches while batches are held.
            batch = next_or_end(source, take) => match batch {
                Some(batch) => {
                    if let Some(b) = ctx.balance {
                        b.taken();
                    }
                    held.push_back(Held { batch, sent: 0, acked: 0 });
                }
                None => {
                    // The run is over (or cancelled): whatever is still held goes back.
                    for h in held.drain(..) {
                        h.batch.cancelled();
                    }
                    return Ended::Finished;
                }
            },
            read = rd.read(&mut buf) => match read {
                Ok(0) => {
                    if s.in_flight() == 0 && held.is_empty() {
                        return Ended::IdleClosed;
                    }
                    return fail(ConnectionError::Closed {
                        host: ctx.host.to_string(),
                        windows: s.in_flight(),
                    });
                }
                Ok(n) => {
                    if let Err(source) = s.handle_input(&buf[..n], Instant::now()) {
                        drain_acks(s, ctx, held, window, &mut sent_at);
                        return fail(ConnectionError::Protocol {
                            host: ctx.host.to_string(),
                            source,
                        });
                    }
                    drain_acks(s, ctx, held, window, &mut sent_at);
                }
                Err(source) => {
                    return fail(ConnectionError::Io {
                        op: "reading from",
                        host: ctx.host.to_string(),
                        source,
                    })
                }
            },
            () = sleep_until_opt(deadline) => {
                if s.handle_timeout(Instant::now()).is_err() {
                    return fail(ConnectionError::AckTimeout {
                        host: ctx.host.to_string(),
                        timeout: ctx.timeout,
                    });
                }
            },
            () = sleep_until_opt(ttl_at.filter(|_| !ttl_due)) => {}
            () = balance_changed(ctx.balance, seen, recheck) => {}
            () = recalled(gate.as_deref(), recalls_seen) => {
                if !held.is_empty() {
                    return Ended::Recalled;
                }
                recalls_seen = gate.as_ref().map_or(0, |g| g.recalls());
            }
        }
    }
}

/// The next batch when `want` is set; otherwise waits for the end of the run. `None`: the
/// run is over.
async fn next_or_end(source: &mut BatchSource, want: bool) -> Option<Batch> {
    if want {
        source.next_batch().await
    } else {
        source.finished().await;
        None
    }
}

/// Resolves when `gate` has closed more than `seen` times; never without a gate.
async fn recalled(gate: Option<&Gate>, seen: u64) {
    match gate {
        Some(g) => g.recalled_after(seen).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the balancer changed after version `seen`, or at `recheck`; never
/// without a balancer or when nothing was asked of it.
async fn balance_changed(lease: Option<&Lease>, seen: Option<u64>, recheck: Option<Instant>) {
    match (lease, seen) {
        (Some(l), Some(v)) => l.changed(v, recheck).await,
        _ => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Credits acknowledged events to the held batches (oldest first) and acks every batch
/// that is now complete.
fn drain_acks(
    s: &mut Session,
    ctx: &Ctx<'_>,
    held: &mut VecDeque<Held>,
    window: &mut Window,
    sent_at: &mut VecDeque<Instant>,
) {
    while let Some(event) = s.poll_event() {
        let (n, window_done) = match event {
            ClientEvent::Progress { events, .. } => (events.len(), false),
            ClientEvent::WindowAcked { events } => (events.len(), true),
        };
        ctx.host_metrics
            .events_acked
            .fetch_add(n as u64, Ordering::Relaxed);
        // Windows never span batches, so the whole count belongs to the oldest batch with
        // sent-but-unacknowledged events.
        if let Some(h) = held.iter_mut().find(|h| h.acked < h.sent) {
            h.acked = (h.acked + n).min(h.sent);
            // Kept by the batch too: a stop that aborts this task still settles the head.
            h.batch.acknowledge_head(h.acked);
            if window_done {
                window.on_success(h.batch.len());
            }
        }
        if window_done {
            if let Some(t) = sent_at.pop_front() {
                ctx.host_metrics.ack_latency(t.elapsed());
                if let Some(b) = ctx.balance {
                    b.acked();
                }
            }
        }
        while held.front().is_some_and(|h| h.acked == h.batch.len()) {
            if let Some(h) = held.pop_front() {
                h.batch.ack();
                ctx.host_metrics.batches.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `event_id: hash`: copies of a window's events with `@metadata._id` stamped
/// ([`stamp_content_id`]), in one buffer reused from window to window. Stamped when sent,
/// not when queued: the Elasticsearch fallback computes the same id from the unstamped bytes
/// (`document_id: hash`), and only this path pays for the copy.
#[derive(Default)]
struct Stamper {
    scanner: crate::outputs::elasticsearch::event::Scanner,
    buf: Vec<u8>,
    spans: Vec<std::ops::Range<usize>>,
}

impl Stamper {
    fn stamp<'a>(&mut self, events: impl Iterator<Item = &'a [u8]>) -> &Self {
        self.buf.clear();
        self.spans.clear();
        for e in events {
            let start = self.buf.len();
            if stamp_content_id(&mut self.scanner, e, &mut self.buf).is_err() {
                // Not a JSON object: sent as it is (Logstash and Elasticsearch judge it).
                self.buf.truncate(start);
                self.buf.extend_from_slice(e);
            }
            self.spans.push(start..self.buf.len());
        }
        self
    }
}
