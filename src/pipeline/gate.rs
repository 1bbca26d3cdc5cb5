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
            state: Mutex::new(State { open, permits: 0 }),
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

    /// Stops attached sources from taking new batches (the ones they hold are unaffected).
    pub fn close(&self) {
        self.with(|s| {
            s.open = false;
            s.permits = 0;
        });
        self.changed.notify_waiters();
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
