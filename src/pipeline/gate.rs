//! A gate on a [`super::BatchSource`]: lets a router decide which of several outputs may
//! take batches from the one shared queue (the failover policy opens one side and closes the
//! other).
//!
//! Gating happens where batches are handed out, not by moving batches between queues, so
//! every invariant of the queue still holds: a batch a closed side gives back (a retry, a
//! failed connection) returns to the shared queue and the open side takes it next.

use std::sync::Mutex;

use tokio::sync::Notify;

/// Whether a gated source may take a batch now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// The gate is open.
    Open,
    /// The gate is closed but one batch was allowed through (a probe); the permit is used.
    Permit,
    /// Closed.
    Shut,
}

#[derive(Debug, Default)]
struct State {
    open: bool,
    /// Batches that may pass while closed; at most one (a probe) is ever granted.
    permits: u32,
    /// Times the gate went from open to closed: a worker holding batches taken before a
    /// close gives them back (see [`Gate::recalled_after`]).
    recalls: u64,
}

/// Opens and closes the batch sources it is attached to.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<State>,
    pub(crate) changed: Notify,
}

impl Gate {
    /// A gate, initially open or closed.
    pub fn new(open: bool) -> Self {
        Self {
            state: Mutex::new(State {
                open,
                permits: 0,
                recalls: 0,
            }),
            changed: Notify::new(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // The state is two plain fields; a panic elsewhere cannot leave it inconsistent.
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut st)
    }

    /// Lets every attached source take batches.
    pub fn open(&self) {
        self.with(|s| {
            s.open = true;
            s.permits = 0;
        });
        self.changed.notify_waiters();
    }

    /// Stops attached sources from taking new batches, and recalls the batches they hold:
    /// a worker that watches [`Gate::recalled_after`] hands them back to the queue, so the
    /// other side delivers them instead of waiting for this one.
    pub fn close(&self) {
        self.with(|s| {
            if s.open {
                s.recalls += 1;
            }
            s.open = false;
            s.permits = 0;
        });
        self.changed.notify_waiters();
    }

    /// How many times the gate closed so far.
    pub fn recalls(&self) -> u64 {
        self.with(|s| s.recalls)
    }

    /// Waits until the gate has closed more than `seen` times (see [`Gate::recalls`]).
    pub async fn recalled_after(&self, seen: u64) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.recalls() > seen {
                return;
            }
            changed.await;
        }
    }

    /// While closed, lets exactly one batch through to whichever attached source asks first.
    /// A permit not yet used is not doubled.
    pub fn allow_one(&self) {
        self.with(|s| {
            if !s.open {
                s.permits = 1;
            }
        });
        self.changed.notify_waiters();
    }

    /// True when open.
    pub fn is_open(&self) -> bool {
        self.with(|s| s.open)
    }

    /// True while a granted permit has not been used.
    pub fn has_permit(&self) -> bool {
        self.with(|s| s.permits > 0)
    }

    pub(crate) fn admit(&self) -> Admit {
        self.with(|s| {
            if s.open {
                Admit::Open
            } else if s.permits > 0 {
                s.permits -= 1;
                Admit::Permit
            } else {
                Admit::Shut
            }
        })
    }

    /// Gives back a permit that found no batch to take.
    pub(crate) fn return_permit(&self) {
        let returned = self.with(|s| {
            if s.open {
                false
            } else {
                s.permits = 1;
                true
            }
        });
        if returned {
            self.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use bytes::Bytes;

    use super::Gate;
    use crate::pipeline::{Metrics, Queue, QueueSettings};

    /// Polls `f` once: whether it is ready right now, without waiting for anything.
    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    fn queue(events: u64) -> (Queue, crate::pipeline::Publisher) {
        let q = Queue::new(
            QueueSettings {
                capacity: 100,
                min_events: 1,
                flush_timeout: Duration::from_secs(3600),
            },
            Arc::new(Metrics::default()),
        );
        let mut p = q.publisher("in");
        q.all_inputs_started();
        for i in 0..events {
            p.publish(Bytes::from(i.to_string())).unwrap();
        }
        p.flush().unwrap();
        (q, p)
    }

    #[tokio::test]
    async fn a_closed_gate_holds_batches_back_until_opened() {
        let (q, _p) = queue(10);
        let gate = Arc::new(Gate::new(false));
        let mut src = q.batch_source(10).gated(Arc::clone(&gate), 4);
        {
            let next = src.next_batch();
            tokio::pin!(next);
            assert!(poll_once(next.as_mut()).is_pending(), "closed: no batch");
            gate.open();
            let batch = next.await.expect("a batch once the gate opens");
            assert_eq!(batch.len(), 4, "the gated source's own bulk_max_size");
            batch.ack();
        }
        gate.close();
        let next = src.next_batch();
        tokio::pin!(next);
        assert!(poll_once(next.as_mut()).is_pending());
    }

    #[tokio::test]
    async fn a_probe_lets_exactly_one_batch_through() {
        let (q, _p) = queue(10);
        let gate = Arc::new(Gate::new(false));
        let mut a = q.batch_source(10).gated(Arc::clone(&gate), 3);
        gate.allow_one();
        gate.allow_one();
        let probe = a.next_batch().await.expect("the probe batch");
        assert_eq!(probe.len(), 3);
        assert!(!gate.has_permit(), "one probe, not two");
        let next = a.next_batch();
        tokio::pin!(next);
        assert!(poll_once(next.as_mut()).is_pending());
        // The probe fails: its events go back and the open side gets them first.
        probe.retry();
        let mut other = q.batch_source(10);
        let again = other.next_batch().await.unwrap();
        assert_eq!(again.docs().next().map(|d| &d[..]), Some(&b"0"[..]));
        again.ack();
    }

    #[tokio::test]
    async fn only_closing_an_open_gate_recalls() {
        let gate = Gate::new(true);
        assert_eq!(gate.recalls(), 0);
        let waiting = gate.recalled_after(0);
        tokio::pin!(waiting);
        assert!(poll_once(waiting.as_mut()).is_pending());
        gate.close();
        gate.close();
        assert_eq!(
            gate.recalls(),
            1,
            "closing a closed gate recalls nothing more"
        );
        assert!(poll_once(waiting.as_mut()).is_ready());
        gate.allow_one();
        gate.open();
        gate.close();
        assert_eq!(gate.recalls(), 2);
    }

    #[tokio::test]
    async fn a_closed_source_ends_with_the_run() {
        let (q, p) = queue(2);
        let gate = Arc::new(Gate::new(false));
        let mut closed = q.batch_source(10).gated(Arc::clone(&gate), 10);
        let mut open = q.batch_source(10);
        p.close().unwrap();
        open.next_batch().await.unwrap().ack();
        assert!(open.next_batch().await.is_none());
        assert!(closed.next_batch().await.is_none(), "no batch and no hang");
        assert_eq!(closed.outstanding(), 0);
    }
}
