//! A batch of events handed to an output worker, and the verdicts it can end with.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::queue::{RetryPiece, Shared};
use crate::event::{Event, InputId};

/// The fate of one event of a batch, decided by an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Delivered and acknowledged by the destination.
    Ack,
    /// Not delivered this time; send again.
    Retry,
    /// Given up for good (counted and logged by the pipeline).
    Drop,
}

/// Events an output must deliver. A batch ends with exactly one verdict: [`Batch::ack`],
/// [`Batch::retry`], [`Batch::retry_events`], [`Batch::drop_events`], [`Batch::resolve`]
/// (per event) or [`Batch::cancelled`]. A batch dropped without a verdict is put back at the
/// front of the queue and logged at ERROR: never lost silently.
///
/// Retried events return to the front of the queue, ahead of fresh events and in their
/// original order, and the next worker to ask (often the same one) gets them again; a
/// worker that lost its connection thereby hands its events to another.
#[derive(Debug)]
pub struct Batch {
    shared: Arc<Shared>,
    key: u64,
    events: Vec<Event>,
    /// The memory position of each event when they are not `key, key + 1, ...` (a retry
    /// piece with holes where events in between were settled); see [`RetryPiece`].
    positions: Option<Vec<u64>>,
    retries: u32,
    /// Leading events the destination acknowledged while the rest are awaited.
    acked_head: usize,
    settled: bool,
}

impl Batch {
    pub(crate) fn new(shared: Arc<Shared>, key: u64, piece: RetryPiece) -> Self {
        Self {
            shared,
            key,
            events: piece.events,
            positions: piece.positions,
            retries: piece.retries,
            acked_head: 0,
            settled: false,
        }
    }

    /// The events, in publish order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The stored bytes when the batch is exactly one packed window, whole and in order
    /// (docs/disk-queue.md §11): an output that takes packed windows writes them as they
    /// are. Only a [`BatchSource`](super::BatchSource) that
    /// [accepts packed windows](super::BatchSource::accept_packed) hands out such a batch;
    /// every other batch holds its events' own bytes.
    pub fn packed(&self) -> Option<&Bytes> {
        let first = self.events.first()?.packed.as_ref()?;
        let window = &first.window;
        if self.events.len() != window.count() as usize {
            return None;
        }
        let whole = self.events.iter().enumerate().all(|(i, e)| {
            e.packed
                .as_ref()
                .is_some_and(|p| p.index as usize == i && Arc::ptr_eq(&p.window, window))
        });
        whole.then(|| window.wire())
    }

    /// Whether any event is still part of a packed window.
    pub(crate) fn has_packed(&self) -> bool {
        self.events.iter().any(|e| e.packed.is_some())
    }

    /// Takes the packed windows among the events apart, so each event holds its own bytes.
    /// Events of a window that cannot be taken apart keep their reference; the indexes of
    /// those events come back with the first reason.
    pub(crate) fn unpack(&mut self) -> Option<(Vec<usize>, String)> {
        let mut bad: Option<(Vec<usize>, String)> = None;
        for (i, ev) in self.events.iter_mut().enumerate() {
            let Some(p) = &ev.packed else {
                continue;
            };
            match p.window.event(p.index) {
                Ok(bytes) => {
                    ev.bytes = bytes;
                    ev.packed = None;
                }
                Err(reason) => bad.get_or_insert_with(|| (Vec::new(), reason)).0.push(i),
            }
        }
        bad
    }

    /// Drops the events at `bad` (ascending indexes) as undeliverable, with `reason`, and
    /// puts the others back without counting a failed attempt.
    pub(crate) fn drop_undeliverable(self, bad: &[usize], reason: &str) {
        let mut next = bad.iter().peekable();
        self.finish(
            |i, _| {
                if next.peek() == Some(&&i) {
                    next.next();
                    Fate::Drop
                } else {
                    Fate::Retry
                }
            },
            reason,
            false,
        );
    }

    /// The encoded documents, in publish order.
    pub fn docs(&self) -> impl ExactSizeIterator<Item = &Bytes> + '_ {
        self.events.iter().map(|e| &e.bytes)
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True for a batch without events (never handed out by the queue).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// How many times these events were retried before (for `max_retries`).
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// All events delivered.
    pub fn ack(self) {
        self.resolve(|_, _| Fate::Ack, "");
    }

    /// Nothing delivered: the whole batch goes back to the front, order kept.
    pub fn retry(self) {
        self.resolve(|_, _| Fate::Retry, "");
    }

    /// The first `len - remaining` events were delivered (e.g. a Lumberjack partial ACK);
    /// the last `remaining` go back to the front.
    pub fn retry_events(self, remaining: usize) {
        let acked = self.events.len().saturating_sub(remaining);
        self.resolve(|i, _| if i < acked { Fate::Ack } else { Fate::Retry }, "");
    }

    /// None delivered and none will be: counted as dropped and logged at ERROR with `reason`.
    pub fn drop_events(self, reason: &str) {
        self.resolve(|_, _| Fate::Drop, reason);
    }

    /// Per-event verdicts (e.g. Elasticsearch bulk items): `fate(index, event)`. Dropped
    /// events are logged at ERROR with `reason`.
    pub fn resolve(self, fate: impl FnMut(usize, &Event) -> Fate, reason: &str) {
        self.finish(fate, reason, true);
    }

    /// Notes that the destination acknowledged the first `n` events while the rest are
    /// still awaited (a Lumberjack partial ACK). Nothing settles yet; but if the batch ends
    /// without a verdict ([`Self::cancelled`], or dropped when a stop aborts the output),
    /// those events settle as acknowledged and only the rest go back, so a disk queue does
    /// not send them again at the next start (docs/disk-queue.md §1).
    pub fn acknowledge_head(&mut self, n: usize) {
        self.acked_head = self.acked_head.max(n.min(self.events.len()));
    }

    /// `counted`: retried events count as failed and retried (a delivery attempt failed),
    /// otherwise they only go back.
    fn finish(mut self, mut fate: impl FnMut(usize, &Event) -> Fate, reason: &str, counted: bool) {
        self.settled = true;
        let events = std::mem::take(&mut self.events);
        let positions = self.positions.take();
        let key = self.key;
        let at = |i: usize| positions.as_ref().map_or(key + i as u64, |p| p[i]);
        // Settling needs only per-input (acked, dropped) counts: the events are dropped
        // here, outside the queue's lock, instead of being moved into a second vector.
        let mut tallies: Vec<(InputId, u64, u64)> = Vec::new();
        let mut retry = Vec::new();
        // Positions of the retried events, kept only once they stop being consecutive.
        let mut retry_at: Vec<u64> = Vec::new();
        let mut holes = false;
        let mut dropped = 0usize;
        let mut settled = 0usize;
        let len = events.len();
        for (i, ev) in events.into_iter().enumerate() {
            let f = fate(i, &ev);
            if f == Fate::Retry {
                let pos = at(i);
                holes |= retry_at.last().is_some_and(|&last| pos != last + 1);
                retry_at.push(pos);
                retry.push(ev);
                continue;
            }
            settled += 1;
            let slot = match tallies.iter().position(|t| t.0 == ev.input) {
                Some(slot) => slot,
                None => {
                    tallies.push((ev.input, 0, 0));
                    tallies.len() - 1
                }
            };
            if f == Fate::Ack {
                tallies[slot].1 += 1;
            } else {
                tallies[slot].2 += 1;
                dropped += 1;
            }
        }
        let metrics = &self.shared.metrics;
        if dropped > 0 {
            metrics.failed.fetch_add(dropped as u64, Ordering::Relaxed);
            tracing::error!(
                events = dropped,
                retries = self.retries,
                reason,
                "output dropped events"
            );
        }
        // Everything before the first retried event is settled: the range (and its retry
        // piece) moves there, so the settled prefix is exact per event, not per batch.
        let split = retry_at.first().copied().filter(|&p| p > key);
        let piece = if retry.is_empty() {
            None
        } else {
            if counted {
                metrics
                    .failed
                    .fetch_add(retry.len() as u64, Ordering::Relaxed);
                metrics
                    .retried
                    .fetch_add(retry.len() as u64, Ordering::Relaxed);
            }
            // Consecutive up to the batch's end: positions follow from the new key.
            let tail = !holes && retry_at.last().is_some_and(|&l| l == at(len - 1));
            Some(RetryPiece {
                events: retry,
                positions: (!tail).then_some(retry_at),
                retries: if counted {
                    self.retries.saturating_add(1)
                } else {
                    self.retries
                },
            })
        };
        self.shared
            .settle(self.key, split, &tallies, settled, piece);
    }

    /// The run is ending before a verdict: the events go back unsettled and count as
    /// unacknowledged at exit.
    pub fn cancelled(mut self) {
        self.put_back();
    }

    fn put_back(&mut self) {
        if self.acked_head > 0 {
            // Settle the acknowledged head; the rest goes back without counting a failure.
            let head = self.acked_head;
            let taken = Self {
                shared: Arc::clone(&self.shared),
                key: self.key,
                events: std::mem::take(&mut self.events),
                positions: self.positions.take(),
                retries: self.retries,
                acked_head: 0,
                settled: false,
            };
            self.settled = true;
            taken.finish(
                |i, _| if i < head { Fate::Ack } else { Fate::Retry },
                "",
                false,
            );
            return;
        }
        self.settled = true;
        let events = std::mem::take(&mut self.events);
        self.shared.requeue(
            self.key,
            RetryPiece {
                events,
                positions: self.positions.take(),
                retries: self.retries,
            },
        );
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if !self.settled {
            if !self.shared.is_cancelled() {
                tracing::error!(
                    events = self.events.len(),
                    "output dropped a batch without a verdict; its events go back to the queue"
                );
            }
            self.put_back();
        }
    }
}
