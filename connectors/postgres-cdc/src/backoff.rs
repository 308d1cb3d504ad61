//! When to try PostgreSQL again after losing it: capped exponential backoff
//! with jitter, and Debezium's limit on how many reconnects may fail.
//!
//! Debezium restarts a task after a retriable error once
//! `retriable.restart.connector.wait.ms` (10 s) has passed, as often as
//! `errors.max.retries` allows (-1, its default: without limit; 0: never).
//! Here that wait caps a backoff starting at half a second instead of being
//! waited every time: a blip costs half a second, and a long outage never
//! waits longer between attempts than Debezium would. The count starts
//! afresh once a reconnect succeeds (Debezium's once records flow again).

use std::time::Duration;

/// The nominal delay before the first attempt; each failure doubles it.
const FIRST_DELAY: Duration = Duration::from_millis(500);

/// However short the configured wait, attempts are never closer than this: a
/// refused connection fails at once, and a zero wait would spin.
const MIN_DELAY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct Backoff {
    cap: Duration,
    /// `errors.max.retries`: `None` is no limit.
    max_attempts: Option<u32>,
    attempts: u32,
    seed: u64,
}

impl Backoff {
    pub fn new(cap: Duration, max_attempts: Option<u32>) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Self {
            cap,
            max_attempts,
            attempts: 0,
            seed,
        }
    }

    /// The delay before the next attempt, or `None` when `errors.max.retries`
    /// allows no more. Called once when the connection is lost and once after
    /// every failed attempt. Delays double from half a second up to the cap,
    /// each drawn between half and all of its nominal value, so that tasks
    /// losing one server together do not come back in step.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.max_attempts.is_some_and(|max| self.attempts >= max) {
            return None;
        }
        let nominal = FIRST_DELAY
            .saturating_mul(1u32 << self.attempts.min(20))
            .min(self.cap);
        self.attempts += 1;
        // xorshift64: jitter needs no cryptographic randomness.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let factor = 0.5 + (self.seed % 1000) as f64 / 2000.0;
        Some(nominal.mul_f64(factor).max(MIN_DELAY))
    }

    /// Attempts allowed so far (the one about to be made included).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter() {
        for _ in 0..50 {
            let cap = Duration::from_secs(10);
            let mut b = Backoff::new(cap, None);
            for attempt in 0..12u32 {
                let nominal = (FIRST_DELAY * 2u32.pow(attempt)).min(cap);
                let d = b.next_delay().unwrap();
                assert!(d <= nominal && d >= nominal / 2, "{attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn max_retries_counts_attempts() {
        // errors.max.retries=0: not one reconnect.
        assert_eq!(
            Backoff::new(Duration::from_secs(1), Some(0)).next_delay(),
            None
        );
        let mut b = Backoff::new(Duration::from_secs(1), Some(3));
        assert!((0..3).all(|_| b.next_delay().is_some()));
        assert_eq!(b.next_delay(), None);
        assert_eq!(b.attempts(), 3);
    }

    #[test]
    fn a_zero_wait_does_not_spin() {
        let mut b = Backoff::new(Duration::ZERO, None);
        assert_eq!(b.next_delay(), Some(MIN_DELAY));
    }
}
