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
    retries: u32,
    settled: bool,
}

impl Batch {
    pub(crate) fn new(shared: Arc<Shared>, key: u64, events: Vec<Event>, retries: u32) -> Self {
        Self {
            shared,
            key,
            events,
            retries,
            settled: false,
        }
    }

    /// The events, in publish order.
    pub fn events(&self) -> &[Event] {
        &self.events
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
    pub fn resolve(mut self, mut fate: impl FnMut(usize, &Event) -> Fate, reason: &str) {
        self.settled = true;
        let events = std::mem::take(&mut self.events);
        // Settling needs only per-input (acked, dropped) counts: the events are dropped
        // here, outside the queue's lock, instead of being moved into a second vector.
        let mut tallies: Vec<(InputId, u64, u64)> = Vec::new();
        let mut retry = Vec::new();
        let mut dropped = 0usize;
        let mut settled = 0usize;
        for (i, ev) in events.into_iter().enumerate() {
            let f = fate(i, &ev);
            if f == Fate::Retry {
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
        let piece = if retry.is_empty() {
            None
        } else {
            metrics
                .failed
                .fetch_add(retry.len() as u64, Ordering::Relaxed);
            metrics
                .retried
                .fetch_add(retry.len() as u64, Ordering::Relaxed);
            Some(RetryPiece {
                events: retry,
                retries: self.retries.saturating_add(1),
            })
        };
        self.shared.settle(self.key, &tallies, settled, piece);
    }

    /// The run is ending before a verdict: the events go back unsettled and count as
    /// unacknowledged at exit.
    pub fn cancelled(mut self) {
        self.put_back();
    }

    fn put_back(&mut self) {
        self.settled = true;
        let events = std::mem::take(&mut self.events);
        self.shared.requeue(
            self.key,
            RetryPiece {
                events,
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
