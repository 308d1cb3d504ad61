//! Load shedding: how many `_bulk` requests may be at the server at once, and
//! how long each may take. Pure: told what happened, it says what to do next.
//!
//! A server slower than `read.timeout.ms` keeps working on a request the
//! sink gave up on; sending it again at once, beside new ones, only adds to
//! what the server has to do, and the sink never catches up. So when the
//! server is busy (a read timeout, or a 429) the window of requests at once
//! is halved, once per episode (requests sent before the cut were part of
//! it), and it grows back by one request per window of answers (AIMD, as
//! TCP). A request that timed out is sent again with twice its timeout, and
//! new requests start from the longer timeout too, until answers come back
//! well within it. Replays are harmless: every keyed action carries an
//! external version, so an item the server had already written when it is
//! sent again is a version conflict (counted, not a second document).

use std::time::{Duration, Instant};

/// However short `read.timeout.ms`, a timeout grows at least to this.
const MAX_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct Pressure {
    /// `max.in.flight.requests`.
    max: usize,
    /// Requests allowed at once, between 1 and `max`.
    window: usize,
    /// Answers since the window last changed: a full window of them grows it
    /// by one.
    answers: usize,
    /// `read.timeout.ms`: the timeout when the server keeps up.
    base_timeout: Duration,
    /// The timeout of a new request.
    timeout: Duration,
    /// When the window was last cut: a request sent before that belongs to
    /// the episode the cut answered.
    last_cut: Option<Instant>,
}

impl Pressure {
    pub fn new(max_in_flight: usize, read_timeout: Duration) -> Self {
        let max = max_in_flight.max(1);
        // A zero timeout could never double into a useful one.
        let base = read_timeout.max(Duration::from_millis(1));
        Self {
            max,
            window: max,
            answers: 0,
            base_timeout: base,
            timeout: base,
            last_cut: None,
        }
    }

    /// How many requests may be at the server now.
    pub fn limit(&self) -> usize {
        self.window
    }

    /// The timeout of a request sent for the first time.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The longest a timeout grows to.
    fn max_timeout(&self) -> Duration {
        self.base_timeout.max(MAX_TIMEOUT)
    }

    /// The timeout of the next attempt of a request whose last attempt, with
    /// `last`, ran out: twice as long, and no shorter than a new request's.
    pub fn retry_timeout(&self, last: Duration) -> Duration {
        last.saturating_mul(2)
            .max(self.timeout)
            .min(self.max_timeout())
    }

    /// A request got an answer after `took`. Returns whether the window grew
    /// back to its full size with it.
    pub fn answered(&mut self, took: Duration) -> bool {
        let was = self.window;
        if self.window < self.max {
            self.answers += 1;
            if self.answers >= self.window {
                self.window += 1;
                self.answers = 0;
            }
        }
        // Answers well within the timeout: the server has caught up, so the
        // timeout comes back down (never below read.timeout.ms, and never
        // below twice what this answer took).
        if took.saturating_mul(4) <= self.timeout {
            self.timeout = (self.timeout / 2).max(self.base_timeout);
        }
        was < self.max && self.window == self.max
    }

    /// A request sent at `sent` with `timeout` got no answer in time. Returns
    /// whether the window was cut (the first signal of an episode).
    pub fn timed_out(&mut self, sent: Instant, timeout: Duration, now: Instant) -> bool {
        self.timeout = self
            .timeout
            .max(timeout.saturating_mul(2))
            .min(self.max_timeout());
        self.cut(sent, now)
    }

    /// The server answered a request sent at `sent` with 429s (it said it is
    /// too busy, within the timeout). Returns whether the window was cut.
    pub fn busy(&mut self, sent: Instant, now: Instant) -> bool {
        self.cut(sent, now)
    }

    fn cut(&mut self, sent: Instant, now: Instant) -> bool {
        if self.last_cut.is_some_and(|c| sent < c) {
            return false;
        }
        self.window = (self.window / 2).max(1);
        self.answers = 0;
        self.last_cut = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_timeout_halves_the_window_once_per_episode_and_answers_grow_it_back() {
        let t0 = Instant::now();
        let mut p = Pressure::new(8, 3 * SEC);
        assert_eq!(p.limit(), 8);
        // Eight requests sent together all time out: one cut, not eight.
        assert!(p.timed_out(t0, 3 * SEC, t0 + 3 * SEC));
        for _ in 0..7 {
            assert!(!p.timed_out(t0, 3 * SEC, t0 + 3 * SEC));
        }
        assert_eq!(p.limit(), 4);
        // A request sent after the cut that times out too: another cut.
        assert!(p.timed_out(t0 + 4 * SEC, 6 * SEC, t0 + 10 * SEC));
        assert_eq!(p.limit(), 2);
        assert!(p.timed_out(t0 + 11 * SEC, 6 * SEC, t0 + 20 * SEC));
        assert!(p.timed_out(t0 + 21 * SEC, 6 * SEC, t0 + 30 * SEC));
        assert_eq!(p.limit(), 1, "never below one request");
        // Back up by about one request per window of answers.
        let mut answers = 0;
        while p.limit() < 8 {
            let full = p.answered(SEC);
            answers += 1;
            assert_eq!(full, p.limit() == 8);
        }
        // One answer at 1, two at 2, ..., seven at 7.
        assert_eq!(answers, 28);
        assert!(!p.answered(SEC), "already full");
        assert_eq!(p.limit(), 8, "never above max.in.flight.requests");
    }

    #[test]
    fn timeouts_grow_per_retry_and_come_back_when_answers_are_fast() {
        let t0 = Instant::now();
        let mut p = Pressure::new(5, 3 * SEC);
        assert_eq!(p.timeout(), 3 * SEC);
        p.timed_out(t0, 3 * SEC, t0 + 3 * SEC);
        // The retry waits twice as long, and so do new requests.
        assert_eq!(p.retry_timeout(3 * SEC), 6 * SEC);
        assert_eq!(p.timeout(), 6 * SEC);
        // A retry of a request sent with a short timeout before the cut gets
        // the new requests' timeout at least.
        p.timed_out(t0, 6 * SEC, t0 + 9 * SEC);
        assert_eq!(p.timeout(), 12 * SEC);
        assert_eq!(p.retry_timeout(3 * SEC), 12 * SEC);
        // Bounded.
        let mut t = p.timeout();
        for _ in 0..10 {
            t = p.retry_timeout(t);
        }
        assert_eq!(t, MAX_TIMEOUT);
        // Slow answers keep the timeout; fast ones bring it down to
        // read.timeout.ms and no lower.
        p.answered(5 * SEC);
        assert_eq!(p.timeout(), 12 * SEC);
        p.answered(3 * SEC);
        assert_eq!(p.timeout(), 6 * SEC);
        p.answered(SEC);
        p.answered(SEC);
        p.answered(Duration::ZERO);
        assert_eq!(p.timeout(), 3 * SEC);
        // A read.timeout.ms beyond the bound is the bound.
        let long = Pressure::new(1, 300 * SEC);
        assert_eq!(long.retry_timeout(300 * SEC), 300 * SEC);
    }

    #[test]
    fn a_429_cuts_the_window_but_not_the_timeout() {
        let t0 = Instant::now();
        let mut p = Pressure::new(4, 3 * SEC);
        assert!(p.busy(t0, t0 + SEC));
        assert!(!p.busy(t0, t0 + SEC));
        assert_eq!((p.limit(), p.timeout()), (2, 3 * SEC));
    }
}
