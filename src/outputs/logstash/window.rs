//! libbeat's dynamic window (`slow_start`), pure and exactly tested.
//!
//! Rules (lumberjack-protocol.md §2.9): start at 10 events, never below 1 nor above
//! `bulk_max_size`. After a successful window the size grows by half (rounded up) while it
//! beats the best size that ever succeeded, snapping to the batch size when that lies in
//! between; after a shrink it regrows only up to that best size. Any error halves it.
//! Without `slow_start` every batch is one window of up to `bulk_max_size` events.

/// Where a slow-started window begins (libbeat's `minWindowSize` start).
pub const START: usize = 10;

/// The window size in events for the next windows of one connection worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    size: usize,
    max_ok: usize,
    max: usize,
    slow_start: bool,
}

impl Window {
    /// A window for `bulk_max_size` (at least 1); small at first with `slow_start`.
    pub fn new(slow_start: bool, bulk_max_size: usize) -> Self {
        let max = bulk_max_size.max(1);
        Self {
            size: if slow_start { START.min(max) } else { max },
            max_ok: 0,
            max,
            slow_start,
        }
    }

    /// Events in the next window.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A window of a batch of `batch_size` events was acknowledged.
    pub fn on_success(&mut self, batch_size: usize) {
        if !self.slow_start || self.size > batch_size {
            return;
        }
        let grown = self.size + self.size.div_ceil(2);
        if self.size > self.max_ok {
            self.max_ok = self.size;
            let next = if batch_size < grown {
                batch_size
            } else {
                grown
            };
            self.size = next.min(self.max);
        } else if self.size < self.max_ok {
            self.size = grown.min(self.max_ok);
        }
    }

    /// A window failed (timeout, protocol error, broken connection): halve, at least 1.
    pub fn on_error(&mut self) {
        if self.slow_start {
            self.size = (self.size / 2).max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_slow_start_the_window_is_the_batch_limit_and_never_moves() {
        let mut w = Window::new(false, 2048);
        assert_eq!(w.size(), 2048);
        w.on_error();
        w.on_success(100);
        assert_eq!(w.size(), 2048);
    }

    #[test]
    fn grows_by_half_rounded_up_and_snaps_to_the_batch_size() {
        let mut w = Window::new(true, 2048);
        let mut sizes = vec![w.size()];
        for _ in 0..6 {
            w.on_success(2048);
            sizes.push(w.size());
        }
        assert_eq!(sizes, [10, 15, 23, 35, 53, 80, 120]);
        // The batch size lies in [window, 1.5 window): take it.
        let mut w = Window::new(true, 2048);
        w.on_success(12);
        assert_eq!(w.size(), 12);
        // A batch smaller than the window says nothing about larger windows.
        w.on_success(5);
        assert_eq!(w.size(), 12);
    }

    #[test]
    fn never_above_bulk_max_size() {
        let mut w = Window::new(true, 40);
        for _ in 0..20 {
            w.on_success(40);
        }
        assert_eq!(w.size(), 40);
        assert_eq!(Window::new(true, 4).size(), 4);
    }

    #[test]
    fn shrinks_by_half_to_one_and_regrows_only_to_the_best_size() {
        let mut w = Window::new(true, 2048);
        for _ in 0..3 {
            w.on_success(2048);
        }
        assert_eq!(w.size(), 35); // best so far: 23
        w.on_error();
        assert_eq!(w.size(), 17);
        w.on_success(2048);
        assert_eq!(w.size(), 23, "regrow stops at the best successful size");
        w.on_success(2048);
        assert_eq!(w.size(), 23, "window == best: unchanged");
        for _ in 0..10 {
            w.on_error();
        }
        assert_eq!(w.size(), 1);
    }
}
