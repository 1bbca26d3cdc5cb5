//! Exponential backoff with jitter, shared by the outputs (Elasticsearch now, Logstash later).
//!
//! Pure: no clock and no random source inside. The caller passes a jitter fraction in
//! `[0, 1)` (from any random source) and sleeps for the returned duration itself, so the
//! sequence is exactly testable.
//!
//! The wait after the `n`-th consecutive failure (counting from 0) is drawn uniformly from
//! `[init, min(max, init · 2ⁿ)]`: "full jitter" over the window, but never below `init`, so a
//! down cluster is not hammered by near-zero waits when the draw is small. Many workers
//! failing at the same moment therefore spread out instead of retrying in lock-step.

use std::time::Duration;

/// Backoff state of one worker or connection: `init` and `max` from `backoff.*`, and how many
/// failures happened in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    init: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff from `backoff.init` and `backoff.max`. A `max` below `init` is raised to
    /// `init` (the window can never be empty).
    pub fn new(init: Duration, max: Duration) -> Self {
        Self {
            init,
            max: max.max(init),
            failures: 0,
        }
    }

    /// The upper bound of the next wait, before jitter: `min(max, init · 2^failures)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.init.saturating_mul(factor).min(self.max)
    }

    /// Records a failure and returns how long to wait before the next attempt. `jitter` is a
    /// fraction in `[0, 1)`; values outside are clamped.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let span = ceiling.saturating_sub(self.init);
        self.init + span.mul_f64(jitter)
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure waits from `init` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A jitter fraction in `[0, 1)` from the operating system's random source, for callers that
/// sleep for real. Falls back to the middle of the window when no randomness is available
/// (the wait is then still bounded and correct, only less spread).
pub fn random_jitter() -> f64 {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    match ring::rand::SystemRandom::new().fill(&mut bytes) {
        // 53 random bits make an evenly spread f64 in [0, 1).
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn window_doubles_up_to_max() {
        let mut b = Backoff::new(S, 10 * S);
        let mut ceilings = Vec::new();
        for _ in 0..6 {
            let ceiling = b.ceiling();
            let d = b.next_delay(0.999);
            assert!(d >= S && d <= ceiling, "{d:?} outside [1s, {ceiling:?}]");
            ceilings.push(ceiling.as_secs());
        }
        assert_eq!(ceilings, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(b.failures(), 6);
        // The top of the window is reached with the largest jitter.
        assert_eq!(b.next_delay(1.0), 10 * S);
    }

    #[test]
    fn jitter_zero_waits_init_and_reset_restarts() {
        let mut b = Backoff::new(S, 60 * S);
        for _ in 0..10 {
            assert_eq!(b.next_delay(0.0), S);
        }
        assert_eq!(b.ceiling(), 60 * S);
        b.reset();
        assert_eq!(b.ceiling(), S);
        assert_eq!(b.next_delay(0.5), S);
        assert_eq!(b.next_delay(0.5), S + S / 2);
    }

    #[test]
    fn odd_inputs_stay_in_the_window() {
        let mut b = Backoff::new(2 * S, S);
        assert_eq!(b.next_delay(7.0), 2 * S);
        assert_eq!(b.next_delay(f64::NAN), 2 * S);
        let mut b = Backoff::new(S, Duration::MAX);
        for _ in 0..100 {
            b.next_delay(1.0);
        }
        assert!(b.ceiling() >= S);
        let j = random_jitter();
        assert!((0.0..1.0).contains(&j), "{j}");
    }
}
