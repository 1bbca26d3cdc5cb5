//! The decompression budget: inflated bytes that all connections of one lumberjack input
//! may hold at once (`max_decompressed_total`).
//!
//! Each connection's session inflates only credit taken from here (metered inflation, see
//! [`ReceiverSession`](skidder_protocol::ReceiverSession)). A connection's bytes are
//! *open* while they belong to a window still being decoded, and *settling* once the
//! window was handed to the output; settling bytes come back when the window is ACKed,
//! open ones when the connection ends.
//!
//! When the budget is short a connection **waits** (its reads stop, so TCP pushes back
//! on that client alone; keep-alives keep flowing for a window it already sent), in
//! arrival order, and is served as soon as other connections give bytes back. Two cases
//! are refused instead, with a WARN naming the setting:
//! - a connection that needs more than the whole budget at once (it could never be
//!   served);
//! - a deadlock: every held byte is open in a connection that is itself waiting for more
//!   (no window can finish, so nothing would ever come back). The waiting connection
//!   that holds the most (a client sending small windows is not the one) gives its bytes
//!   back and the others go on.
//!
//! A client that stops sending in the middle of a window is not waiting for budget, so
//! it keeps its bytes until `client_inactivity_timeout` closes it; others wait meanwhile.
//! What is counted is inflated content; real memory is a little more (allocation slack
//! of at most one 64 KiB inflate step per buffer).
//!
//! Uncompressed frames are not counted here: they are bounded per connection by
//! `max_frame_size` and `max_window_size`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::ConnectionError;

/// Inflated bytes all connections of one input may hold at once.
#[derive(Debug)]
pub(super) struct InflateBudget {
    total: usize,
    state: Mutex<State>,
    /// Signalled whenever bytes come back or a connection starts waiting.
    changed: Notify,
}

#[derive(Debug)]
struct State {
    available: usize,
    /// Open bytes of connections that are waiting for more.
    stuck: usize,
    /// How many waiting connections hold each amount of open bytes.
    stuck_holdings: BTreeMap<usize, usize>,
}

impl State {
    fn largest_stuck(&self) -> usize {
        self.stuck_holdings.keys().next_back().copied().unwrap_or(0)
    }
}

impl InflateBudget {
    /// A budget of `total` bytes.
    pub(super) fn new(total: usize) -> Self {
        Self {
            total,
            state: Mutex::new(State {
                available: total,
                stuck: 0,
                stuck_holdings: BTreeMap::new(),
            }),
            changed: Notify::new(),
        }
    }

    /// Bytes not held by any connection.
    #[cfg(test)]
    pub(super) fn available(&self) -> usize {
        self.lock().available
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Only plain arithmetic runs under the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.lock().available += bytes;
        self.changed.notify_waiters();
    }
}

/// One connection's part of the budget; everything it still holds goes back when it is
/// dropped.
#[derive(Debug)]
pub(super) struct Share<'a> {
    budget: &'a InflateBudget,
    open: AtomicUsize,
    settling: AtomicUsize,
}

/// Takes a waiting connection's open bytes out of the stuck count however the wait ends
/// (served, refused, or the connection's future dropped).
struct Waiting<'a> {
    budget: &'a InflateBudget,
    open: usize,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut st = self.budget.lock();
        st.stuck -= self.open;
        if let Some(n) = st.stuck_holdings.get_mut(&self.open) {
            *n -= 1;
            if *n == 0 {
                st.stuck_holdings.remove(&self.open);
            }
        }
    }
}

impl<'a> Share<'a> {
    /// A connection's share, holding nothing yet.
    pub(super) fn new(budget: &'a InflateBudget) -> Self {
        Self {
            budget,
            open: AtomicUsize::new(0),
            settling: AtomicUsize::new(0),
        }
    }

    /// Takes `bytes` for the window being decoded, waiting while the budget is short.
    ///
    /// # Errors
    /// [`ConnectionError::DecompressionBudget`] when the connection would hold more than
    /// the whole budget, [`ConnectionError::DecompressionDeadlock`] when every held byte
    /// is open in a waiting connection, this one included.
    pub(super) async fn acquire(&self, bytes: usize) -> Result<(), ConnectionError> {
        let open = self.open.load(Ordering::Acquire);
        let held = open + self.settling.load(Ordering::Acquire);
        let total = self.budget.total;
        if held.saturating_add(bytes) > total {
            return Err(ConnectionError::DecompressionBudget {
                needed: held.saturating_add(bytes),
                total,
            });
        }
        let mut waiting: Option<Waiting<'_>> = None;
        loop {
            // Registered before the check, so a change between check and wait wakes us.
            let changed = self.budget.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut st = self.budget.lock();
                if st.available >= bytes {
                    st.available -= bytes;
                    self.open.fetch_add(bytes, Ordering::AcqRel);
                    drop(st);
                    return Ok(());
                }
                if waiting.is_none() {
                    st.stuck += open;
                    *st.stuck_holdings.entry(open).or_default() += 1;
                    drop(st);
                    waiting = Some(Waiting {
                        budget: self.budget,
                        open,
                    });
                    // Others re-check for a deadlock now that we wait too.
                    self.budget.changed.notify_waiters();
                    continue;
                }
                // Deadlock: no held byte can come back. The largest waiting holder leaves;
                // once it has, `stuck` no longer covers everything held and the others
                // wait for its bytes instead of leaving too.
                if open > 0 && st.stuck == total - st.available && open == st.largest_stuck() {
                    drop(st);
                    return Err(ConnectionError::DecompressionDeadlock { total });
                }
            }
            changed.await;
        }
    }

    /// Gives back open bytes the session did not use.
    pub(super) fn release_open(&self, bytes: usize) {
        self.open.fetch_sub(bytes, Ordering::AcqRel);
        self.budget.give_back(bytes);
    }

    /// A window of `bytes` was completed: its bytes no longer wait for this connection's
    /// input, only for the output.
    pub(super) fn settle(&self, bytes: usize) {
        self.open.fetch_sub(bytes, Ordering::AcqRel);
        self.settling.fetch_add(bytes, Ordering::AcqRel);
    }

    /// A window of `bytes` was ACKed: its events are gone.
    pub(super) fn release_settled(&self, bytes: usize) {
        self.settling.fetch_sub(bytes, Ordering::AcqRel);
        self.budget.give_back(bytes);
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        let held = *self.open.get_mut() + *self.settling.get_mut();
        self.budget.give_back(held);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_short_budget_makes_connections_wait_in_turn() {
        let budget = InflateBudget::new(100);
        let a = Share::new(&budget);
        let b = Share::new(&budget);
        a.acquire(80).await.unwrap();
        a.settle(80);
        // b waits until a's window is ACKed.
        {
            let waiting = b.acquire(50);
            tokio::pin!(waiting);
            assert!(
                tokio::time::timeout(Duration::ZERO, waiting.as_mut())
                    .await
                    .is_err(),
                "b must wait while a holds 80 of 100"
            );
            a.release_settled(80);
            tokio::time::timeout(WAIT, waiting)
                .await
                .expect("b served once a gave its bytes back")
                .unwrap();
        }
        assert_eq!(budget.available(), 50);
        drop(b);
        assert_eq!(
            budget.available(),
            100,
            "a dropped share gives everything back"
        );
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_refused_at_once() {
        let budget = InflateBudget::new(100);
        let a = Share::new(&budget);
        a.acquire(60).await.unwrap();
        let err = a.acquire(41).await.unwrap_err();
        assert!(
            matches!(
                err,
                ConnectionError::DecompressionBudget {
                    needed: 101,
                    total: 100
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("max_decompressed_total"), "{err}");
    }

    #[tokio::test]
    async fn a_deadlock_refuses_one_connection_and_the_other_goes_on() {
        let budget: &'static InflateBudget = Box::leak(Box::new(InflateBudget::new(100)));
        let a = Share::new(budget);
        let b = Share::new(budget);
        a.acquire(50).await.unwrap();
        b.acquire(40).await.unwrap();
        // Both hold open bytes of a window and want more than is left: one of them must
        // be refused (and its connection end), then the other is served.
        let wants_more = |share: Share<'static>| async move {
            let r = share.acquire(30).await;
            drop(share);
            r
        };
        let (ra, rb) =
            tokio::time::timeout(WAIT, async { tokio::join!(wants_more(a), wants_more(b)) })
                .await
                .expect("a deadlock must be broken, not waited out");
        // The larger holder leaves; the smaller one (a client with small windows) stays.
        assert!(
            matches!(
                ra,
                Err(ConnectionError::DecompressionDeadlock { total: 100 })
            ),
            "{ra:?}"
        );
        rb.unwrap();
    }

    #[tokio::test]
    async fn a_waiter_holding_nothing_is_not_a_deadlock() {
        let budget = InflateBudget::new(100);
        let a = Share::new(&budget);
        let b = Share::new(&budget);
        a.acquire(100).await.unwrap();
        let waiting = b.acquire(10);
        tokio::pin!(waiting);
        assert!(tokio::time::timeout(Duration::ZERO, waiting.as_mut())
            .await
            .is_err());
        a.release_open(100);
        tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    }
}
