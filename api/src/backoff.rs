//! When to try again after a retriable failure: delays that double from a
//! first one up to a cap, each drawn between half and all of its nominal value
//! so that tasks failing together do not retry in step, and never closer than
//! 100 ms, so a refused connection (which fails at once) does not spin. A
//! retry may be bounded by time (Connect's `errors.retry.timeout`) and by
//! count (Debezium's `errors.max.retries`).
//!
//! The runtime retries `poll`, `put` and record operations with it; a
//! connector may use it for its own reconnects.

use std::time::{Duration, Instant};

/// However short the cap, attempts are never closer than this.
const MIN_DELAY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
/// Delays between retries: doubling from a first delay up to a cap, with jitter,
/// bounded by a time budget or an attempt count.
pub struct Backoff {
    first: Duration,
    cap: Duration,
    /// `None` retries for as long as it takes.
    budget: Option<Duration>,
    /// `None` retries as often as it takes.
    max_attempts: Option<u32>,
    started: Instant,
    attempts: u32,
    seed: u64,
}

impl Backoff {
    /// Unbounded retries, the first after about `first`, none more than `cap` apart.
    pub fn new(first: Duration, cap: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Self {
            first,
            cap,
            budget: None,
            max_attempts: None,
            started: Instant::now(),
            attempts: 0,
            seed,
        }
    }

    /// Retries only within `budget` of now (`None`: no time limit).
    pub fn within(mut self, budget: Option<Duration>) -> Self {
        self.budget = budget;
        self
    }

    /// At most `max` retries (`None`: no limit).
    pub fn at_most(mut self, max: Option<u32>) -> Self {
        self.max_attempts = max;
        self
    }

    /// How long to wait before the next attempt, or `None` once the budget
    /// or the count is spent.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if !self.may_retry() || self.max_attempts.is_some_and(|m| self.attempts >= m) {
            return None;
        }
        let remaining = match self.budget {
            Some(b) => b.checked_sub(self.started.elapsed())?,
            None => Duration::MAX,
        };
        let nominal = self
            .first
            .saturating_mul(1u32 << self.attempts.min(20))
            .min(self.cap);
        self.attempts += 1;
        // xorshift64: jitter needs no cryptographic randomness.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let factor = 0.5 + (self.seed % 1000) as f64 / 2000.0;
        Some(nominal.mul_f64(factor).max(MIN_DELAY).min(remaining))
    }

    /// False when no retry is allowed at all (a zero budget or count).
    pub fn may_retry(&self) -> bool {
        self.budget != Some(Duration::ZERO) && self.max_attempts != Some(0)
    }

    /// Retries allowed so far (the one about to be made included).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_millis(300);

    #[test]
    fn delays_double_up_to_the_cap_with_jitter() {
        for _ in 0..100 {
            let cap = Duration::from_secs(2);
            let mut b = Backoff::new(FIRST, cap);
            for attempt in 0..8u32 {
                let nominal = FIRST.saturating_mul(1 << attempt).min(cap);
                let d = b.next_delay().unwrap();
                assert!(d >= nominal / 2 && d <= nominal, "{attempt}: {d:?}");
            }
            assert_eq!(b.attempts(), 8);
        }
    }

    #[test]
    fn a_zero_budget_or_count_means_no_retry() {
        let mut b = Backoff::new(FIRST, Duration::from_secs(60)).within(Some(Duration::ZERO));
        assert!(!b.may_retry());
        assert_eq!(b.next_delay(), None);
        let mut b = Backoff::new(FIRST, Duration::from_secs(60)).at_most(Some(0));
        assert!(!b.may_retry());
        assert_eq!(b.next_delay(), None);
    }

    #[test]
    fn delays_never_exceed_the_budget() {
        let mut b =
            Backoff::new(FIRST, Duration::from_secs(60)).within(Some(Duration::from_millis(100)));
        assert!(b.next_delay().unwrap() <= Duration::from_millis(100));
    }

    #[test]
    fn a_count_limits_the_retries() {
        let mut b = Backoff::new(FIRST, Duration::from_secs(1)).at_most(Some(3));
        assert!((0..3).all(|_| b.next_delay().is_some()));
        assert_eq!(b.next_delay(), None);
        assert_eq!(b.attempts(), 3);
    }

    #[test]
    fn a_zero_cap_does_not_spin() {
        let mut b = Backoff::new(FIRST, Duration::ZERO);
        assert_eq!(b.next_delay(), Some(MIN_DELAY));
    }
}
