//! Exponential backoff with jitter, bounded by `errors.retry.timeout`.

use std::time::{Duration, Instant};

const FIRST_DELAY: Duration = Duration::from_millis(300);

pub struct Backoff {
    /// `None` retries forever (`errors.retry.timeout=-1`).
    budget: Option<Duration>,
    max_delay: Duration,
    started: Instant,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    pub fn new(budget: Option<Duration>, max_delay: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Self {
            budget,
            max_delay,
            started: Instant::now(),
            attempt: 0,
            seed,
        }
    }

    /// How long to wait before the next attempt, or `None` once the budget is
    /// spent. Delays double from 300 ms up to the maximum, each drawn between
    /// half and all of its nominal value so retrying tasks spread out.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let elapsed = self.started.elapsed();
        let remaining = match self.budget {
            Some(b) if elapsed >= b => return None,
            Some(b) => b - elapsed,
            None => Duration::MAX,
        };
        let nominal = FIRST_DELAY
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max_delay);
        self.attempt += 1;
        // xorshift64: jitter needs no cryptographic randomness.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let factor = 0.5 + (self.seed % 1000) as f64 / 2000.0;
        Some(nominal.mul_f64(factor).min(remaining))
    }

    /// False when the budget allows no retry at all (`errors.retry.timeout=0`).
    pub fn may_retry(&self) -> bool {
        self.budget != Some(Duration::ZERO)
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_budget_means_no_retry() {
        assert_eq!(
            Backoff::new(Some(Duration::ZERO), Duration::from_secs(60)).next_delay(),
            None
        );
    }

    #[test]
    fn delays_grow_with_jitter_and_cap() {
        for _ in 0..100 {
            let max = Duration::from_secs(2);
            let mut b = Backoff::new(None, max);
            for attempt in 0..8u32 {
                let nominal = FIRST_DELAY.saturating_mul(1 << attempt).min(max);
                let d = b.next_delay().unwrap();
                assert!(
                    d >= nominal / 2 && d <= nominal,
                    "attempt {attempt}: {d:?} not in [{:?}, {nominal:?}]",
                    nominal / 2
                );
            }
            assert_eq!(b.attempts(), 8);
        }
    }

    #[test]
    fn delays_never_exceed_the_budget() {
        let mut b = Backoff::new(Some(Duration::from_millis(100)), Duration::from_secs(60));
        assert!(b.next_delay().unwrap() <= Duration::from_millis(100));
    }
}
