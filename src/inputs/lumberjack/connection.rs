//! One client connection: a reader half that decodes and publishes, a writer half that
//! waits for the output and writes ACKs and keep-alives, sharing one `ReceiverSession`.
//!
//! Both halves run in the connection's task (joined), so a failure of either ends both
//! and the connection is logged once by the accept loop.

use crate::config::units::human;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use skidder_protocol::{
    Batch, BatchId, Payload, ProtocolError, ReceivedEvent, ReceiverConfig, ReceiverSession,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio_rustls::TlsAcceptor;

use super::budget::{InflateBudget, Share};
use super::hello::{self, Offered};
use super::{v1, ReceiverObserver, MAX_PENDING_BATCHES, TLS_HANDSHAKE_TIMEOUT};
use crate::config::ByteSize;
use crate::credentials::describe_handshake;
use crate::pipeline::{Publisher, Stopped};

/// First read buffer of a connection: small, so hundreds of idle connections cost little.
const FIRST_READ: usize = 4 * 1024;
/// A connection that fills its buffer gets this much (fewer, larger reads under load).
const BUSY_READ: usize = 128 * 1024;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The TLS handshake failed (e.g. no client certificate when one is required).
    #[error("TLS handshake failed: {0}")]
    TlsHandshake(#[source] std::io::Error),
    /// The client offered only TLS versions older than 1.2.
    #[error(
        "TLS handshake failed: the client offered only TLSv1.0/TLSv1.1; skidder accepts {accepted}"
    )]
    TlsVersionTooOld {
        /// The versions the listener accepts, in words.
        accepted: String,
    },
    /// The client's first bytes were not a TLS handshake (plaintext Lumberjack, HTTP, ...).
    #[error("TLS handshake failed: the client is not speaking TLS (plaintext to a TLS port?)")]
    NotTls,
    /// The TLS handshake did not finish in time.
    #[error("TLS handshake timed out after {}", human(*.0))]
    TlsHandshakeTimeout(Duration),
    /// The client sent something that is not valid Lumberjack.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// An event of a window is not one JSON object; the window is refused whole.
    #[error("event seq {seq} is not a JSON object: {reason}")]
    BadEvent {
        /// The event's sequence number.
        seq: u32,
        /// What the JSON parser said.
        reason: String,
    },
    /// The connection would hold more inflated bytes at once than the input's whole
    /// decompression budget.
    #[error("the client's compressed data needs {} of inflated content at once, more than max_decompressed_total ({})", ByteSize(*.needed as u64), ByteSize(*.total as u64))]
    DecompressionBudget {
        /// Bytes the connection would hold.
        needed: usize,
        /// `max_decompressed_total`.
        total: usize,
    },
    /// Every byte of the decompression budget is held by half-decoded windows whose
    /// connections all wait for more; this one gives its bytes back so others can finish.
    #[error("max_decompressed_total ({}) is held by half-decoded windows that all wait for more; refused so the others can finish", ByteSize(*.total as u64))]
    DecompressionDeadlock {
        /// `max_decompressed_total`.
        total: usize,
    },
    /// The client closed the connection in the middle of a window.
    #[error(
        "the client closed the connection in the middle of a window; its events were not published"
    )]
    Truncated,
    /// Reading from the client failed.
    #[error("read failed: {0}")]
    Read(#[source] std::io::Error),
    /// Writing an ACK failed.
    #[error("writing an ACK failed: {0}")]
    Write(#[source] std::io::Error),
    /// The client did not take our ACK for this long.
    #[error("the client did not read ACKs for {}", human(*.0))]
    WriteTimeout(Duration),
    /// No bytes from the client for `client_inactivity_timeout` while nothing was waiting
    /// for the output.
    #[error("no data from the client for {} (client_inactivity_timeout)", human(*.0))]
    Idle(Duration),
    /// skidder is shutting down; the window was not published and not ACKed.
    #[error("skidder is shutting down; {} event(s) of the open window were not published and will be resent by the client", .0.unpublished)]
    Stopped(Stopped),
    /// The run was cancelled before the output settled a window; it was not ACKed.
    #[error(
        "skidder stopped before the output settled a window; it was not ACKed and will be resent"
    )]
    Cancelled,
}

impl ConnectionError {
    /// True for ordinary ends (idle client, shutdown) that are logged at INFO, not WARN.
    pub fn is_quiet(&self) -> bool {
        matches!(self, Self::Idle(_) | Self::Stopped(_) | Self::Cancelled)
    }
}

/// What every connection of one input shares.
pub(super) struct Shared {
    /// The input's name, for logs.
    pub(super) input: String,
    /// Limits and keep-alive interval of each session.
    pub(super) session: ReceiverConfig,
    /// `client_inactivity_timeout`.
    pub(super) inactivity: Duration,
    /// A publisher that never publishes: its counters tell when a watermark is settled.
    pub(super) waiter: Publisher,
    /// Optional counting hook.
    pub(super) observer: Option<Arc<dyn ReceiverObserver>>,
    /// `max_decompressed_total`, shared by every connection of the input.
    pub(super) budget: InflateBudget,
    /// The TLS versions the listener accepts, for refusals.
    pub(super) accepted_tls: String,
}

/// A published window waiting for the output.
struct Handed {
    id: BatchId,
    /// The input's `published` count right after the window was pushed.
    watermark: u64,
    /// The events, kept only for an observer.
    events: Vec<Bytes>,
    /// Decompression budget the window holds until it is ACKed.
    inflated: usize,
}

/// Runs one connection to its end.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    shared: &Shared,
) -> Result<(), ConnectionError> {
    match acceptor {
        None => run(stream, shared).await,
        Some(acceptor) => {
            let recorded = Recorded {
                inner: stream,
                first: Some(Vec::new()),
            };
            let accept = acceptor.accept(recorded).into_fallible();
            let mut tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accept)
                .await
                .map_err(|_| ConnectionError::TlsHandshakeTimeout(TLS_HANDSHAKE_TIMEOUT))?
                .map_err(|(e, io)| handshake_error(e, io.first.as_deref(), shared))?;
            // Established: the bytes were only needed to explain a failure.
            tls.get_mut().0.first = None;
            if let Some(o) = &shared.observer {
                // Only with an observer: describing the chain parses the certificates.
                o.tls_established(peer, &describe_handshake(tls.get_ref().1, &[]));
            }
            run(tls, shared).await
        }
    }
}

/// Names the cause of a failed handshake a person can act on, from what the client sent.
fn handshake_error(err: std::io::Error, first: Option<&[u8]>, shared: &Shared) -> ConnectionError {
    match first.map(hello::classify) {
        Some(Offered::NotTls) => ConnectionError::NotTls,
        Some(Offered::OnlyOldTls) => ConnectionError::TlsVersionTooOld {
            accepted: shared.accepted_tls.clone(),
        },
        _ => ConnectionError::TlsHandshake(err),
    }
}

/// A TCP stream that keeps the first bytes the client sends until the TLS handshake is
/// over, so a failed handshake can say what the client offered.
struct Recorded<S> {
    inner: S,
    /// Up to [`hello::KEPT`] bytes while the handshake runs; `None` afterwards.
    first: Option<Vec<u8>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(first)) = (&result, this.first.as_mut()) {
            let new = &buf.filled()[before..];
            let room = hello::KEPT.saturating_sub(first.len());
            first.extend_from_slice(&new[..new.len().min(room)]);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn lock(session: &Mutex<ReceiverSession>) -> MutexGuard<'_, ReceiverSession> {
    // The session is only touched by short synchronous calls; a panic in one of them is
    // a bug that ends this connection's task anyway.
    session.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn run<S>(stream: S, shared: &Shared) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let session = Mutex::new(ReceiverSession::new(shared.session));
    let kick = Notify::new();
    let (tx, rx) = mpsc::channel(MAX_PENDING_BATCHES);
    let mut publisher: Option<Publisher> = None;
    // Declared before the loops that borrow it; whatever it still holds when the
    // connection ends goes back to the input's budget.
    let share = Share::new(&shared.budget);
    let result = tokio::try_join!(
        read_loop(&mut rd, &session, &kick, tx, shared, &share, &mut publisher),
        write_loop(&mut wr, &session, &kick, rx, shared, &share),
    );
    // Nothing is buffered in the publisher here (every window is flushed whole or
    // abandoned on shutdown); closing it keeps the input's publisher count right.
    if let Some(p) = publisher {
        let _ = p.close_async().await;
    }
    result.map(|_| ())
}

async fn read_loop<R: AsyncRead + Unpin>(
    rd: &mut R,
    session: &Mutex<ReceiverSession>,
    kick: &Notify,
    tx: mpsc::Sender<Handed>,
    shared: &Shared,
    share: &Share<'_>,
    publisher: &mut Option<Publisher>,
) -> Result<(), ConnectionError> {
    let mut buf = vec![0u8; FIRST_READ];
    let mut batches: Vec<Batch> = Vec::new();
    let mut docs: Vec<Bytes> = Vec::new();
    loop {
        let n = match tokio::time::timeout(shared.inactivity, rd.read(&mut buf)).await {
            Err(_) => {
                // Waiting for our own output is not the client's inactivity: keep-alives
                // flow meanwhile, as in Logstash.
                if lock(session).pending_batches() > 0 {
                    continue;
                }
                return Err(ConnectionError::Idle(shared.inactivity));
            }
            // A TLS client closing without close_notify (npm, pylogbeat do) is an ordinary
            // end: Lumberjack frames are self-delimiting, and a cut window is caught below.
            Ok(Ok(0)) => return end_of_stream(session),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return end_of_stream(session)
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(ConnectionError::Read(e)),
        };
        {
            let mut s = lock(session);
            let had_deadline = s.poll_keepalive_deadline().is_some();
            s.handle_input(&buf[..n], Instant::now())?;
            take_batches(&mut s, share, &mut batches);
            // The writer sleeps until an ACK, a keep-alive or this kick: wake it for a new
            // deadline, and for an ACK the input itself made due (ACK 0 of an empty window).
            if (!had_deadline && s.poll_keepalive_deadline().is_some()) || s.has_transmit() {
                kick.notify_one();
            }
        }
        if n == buf.len() && buf.len() < BUSY_READ {
            buf.resize(BUSY_READ, 0);
        }
        // Complete windows go to the output before more budget is asked for: their
        // bytes then come back without waiting for this client.
        loop {
            for batch in batches.drain(..) {
                // Made on the first window: an idle connection costs no publisher buffer.
                let p = publisher.get_or_insert_with(|| shared.waiter.clone());
                let handed = publish_batch(batch, p, shared, &mut docs).await?;
                if tx.send(handed).await.is_err() {
                    // The writer ended; its error is the one reported.
                    return Ok(());
                }
            }
            let Some(want) = lock(session).inflate_request() else {
                break;
            };
            // Reads stop meanwhile: TCP pushes back on this client alone.
            share.acquire(want).await?;
            let mut s = lock(session);
            s.grant_inflate(want, Instant::now())?;
            take_batches(&mut s, share, &mut batches);
        }
        share.release_open(lock(session).take_unused_credit());
    }
}

/// Moves complete windows out of the session; their inflated bytes now wait only for
/// the output.
fn take_batches(s: &mut ReceiverSession, share: &Share<'_>, batches: &mut Vec<Batch>) {
    while let Some(b) = s.poll_batch() {
        share.settle(b.inflated);
        batches.push(b);
    }
}

/// The client closed its side: fine unless it stopped in the middle of a window.
fn end_of_stream(session: &Mutex<ReceiverSession>) -> Result<(), ConnectionError> {
    let s = lock(session);
    // Busy with nothing handed to the output: a window (or frame) was cut off.
    if s.poll_keepalive_deadline().is_some() && s.pending_batches() == 0 {
        return Err(ConnectionError::Truncated);
    }
    Ok(())
}

/// Checks every event of a window, then publishes them all: a bad event refuses the
/// window before any of it reaches the queue.
async fn publish_batch(
    batch: Batch,
    publisher: &mut Publisher,
    shared: &Shared,
    docs: &mut Vec<Bytes>,
) -> Result<Handed, ConnectionError> {
    docs.clear();
    let now = std::time::SystemTime::now();
    for ev in batch.events {
        docs.push(event_bytes(ev, now)?);
    }
    let events = if shared.observer.is_some() {
        docs.clone()
    } else {
        Vec::new()
    };
    for doc in docs.drain(..) {
        publisher
            .publish_async(doc)
            .await
            .map_err(ConnectionError::Stopped)?;
    }
    publisher
        .flush_async()
        .await
        .map_err(ConnectionError::Stopped)?;
    let watermark = publisher.metrics().published.load(Ordering::Acquire);
    tracing::debug!(input = %shared.input, batch = batch.id.0, watermark, "window published; waiting for the output");
    Ok(Handed {
        id: batch.id,
        watermark,
        events,
        inflated: batch.inflated,
    })
}

/// The document bytes of one received event.
fn event_bytes(ev: ReceivedEvent, now: std::time::SystemTime) -> Result<Bytes, ConnectionError> {
    match ev.payload {
        Payload::Json(json) => {
            // A validating scan: no tree, no allocation for ordinary events. The protocol
            // crate already checked that the first token is `{`.
            serde_json::from_slice::<serde::de::IgnoredAny>(&json).map_err(|e| {
                ConnectionError::BadEvent {
                    seq: ev.seq,
                    reason: e.to_string(),
                }
            })?;
            Ok(one_line(json))
        }
        Payload::Fields(pairs) => Ok(v1::to_json(&pairs, now)),
    }
}

/// Valid JSON holds raw line breaks only between tokens; turning them into spaces keeps
/// the document one line (NDJSON outputs) without changing its meaning.
fn one_line(json: Bytes) -> Bytes {
    if !json.iter().any(|&b| b == b'\n' || b == b'\r') {
        return json;
    }
    let fixed: Vec<u8> = json
        .iter()
        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
        .collect();
    Bytes::from(fixed)
}

async fn write_loop<W: AsyncWrite + Unpin>(
    wr: &mut W,
    session: &Mutex<ReceiverSession>,
    kick: &Notify,
    mut rx: mpsc::Receiver<Handed>,
    shared: &Shared,
    share: &Share<'_>,
) -> Result<(), ConnectionError> {
    let mut current: Option<Handed> = None;
    let mut open = true;
    let mut acked: Vec<Handed> = Vec::new();
    loop {
        if current.is_none() && !open {
            return Ok(());
        }
        let deadline = lock(session).poll_keepalive_deadline();
        let watermark = current.as_ref().map_or(0, |h| h.watermark);
        let far = Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            h = rx.recv(), if current.is_none() => match h {
                Some(h) => current = Some(h),
                None => open = false,
            },
            () = shared.waiter.wait_settled(watermark), if current.is_some() => {
                // Every window already settled is ACKed with one write.
                let mut next = current.take();
                while let Some(h) = next.take() {
                    if shared.waiter.settled() < h.watermark {
                        if acked.is_empty() {
                            return Err(ConnectionError::Cancelled);
                        }
                        current = Some(h);
                        break;
                    }
                    lock(session).ack_batch(h.id, Instant::now())?;
                    // Settled: the output no longer holds its events.
                    share.release_settled(h.inflated);
                    acked.push(h);
                    next = rx.try_recv().ok();
                }
                write_transmit(wr, session, shared.inactivity).await?;
                if let Some(o) = &shared.observer {
                    for h in &acked {
                        o.acknowledged(&h.events);
                    }
                }
                acked.clear();
            }
            () = tokio::time::sleep_until(deadline.unwrap_or(far).into()), if deadline.is_some() => {
                lock(session).handle_timeout(Instant::now());
                write_transmit(wr, session, shared.inactivity).await?;
            }
            () = kick.notified() => {
                write_transmit(wr, session, shared.inactivity).await?;
            }
        }
    }
}

async fn write_transmit<W: AsyncWrite + Unpin>(
    wr: &mut W,
    session: &Mutex<ReceiverSession>,
    limit: Duration,
) -> Result<(), ConnectionError> {
    let Some(bytes) = lock(session).poll_transmit() else {
        return Ok(());
    };
    let write = async {
        wr.write_all(&bytes).await?;
        wr.flush().await
    };
    tokio::time::timeout(limit, write)
        .await
        .map_err(|_| ConnectionError::WriteTimeout(limit))?
        .map_err(ConnectionError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_between_tokens_become_spaces() {
        let pretty = Bytes::from_static(b"{\n  \"a\": 1,\r\n  \"b\": \"x\"\n}");
        assert_eq!(&one_line(pretty)[..], b"{   \"a\": 1,    \"b\": \"x\" }");
        let compact = Bytes::from_static(b"{\"a\":1}");
        assert_eq!(one_line(compact.clone()).as_ptr(), compact.as_ptr());
    }

    #[test]
    fn events_must_be_one_valid_json_object() {
        let now = std::time::SystemTime::now();
        let ev = |s: &'static [u8]| ReceivedEvent {
            seq: 7,
            payload: Payload::Json(Bytes::from_static(s)),
        };
        assert_eq!(
            &event_bytes(ev(b"{\"m\":1}"), now).unwrap()[..],
            b"{\"m\":1}"
        );
        for bad in [&b"{\"m\":"[..], b"{\"m\":1} {}", b"{\"m\":1}x", b"{m:1}"] {
            let bad: &'static [u8] = bad;
            let err = event_bytes(ev(bad), now).unwrap_err();
            assert!(
                matches!(err, ConnectionError::BadEvent { seq: 7, .. }),
                "{bad:?}: {err:?}"
            );
        }
    }
}
