//! How far the task is behind PostgreSQL, for `/metrics`: the replication
//! slot's lag in WAL bytes (the server's current LSN − the slot's confirmed
//! flush LSN, asked every few seconds) and the seconds behind the source.
//!
//! Debezium's `MilliSecondsBehindSource` is the age of the last event seen, so
//! it grows without bound on an idle table. Here it is 0 whenever nothing is
//! pending (no open transaction, nothing ready or unstored): an idle but
//! healthy stream is not behind.

use std::time::{Duration, Instant};

use sluice_api::metrics::Gauge;
use sluice_api::TaskMetricsHandle;

/// How often the slot's lag is asked of the server.
const PROBE_EVERY: Duration = Duration::from_secs(5);

pub struct SourceLag {
    slot_bytes: Gauge,
    behind_seconds: Gauge,
    last_probe: Option<Instant>,
}

impl SourceLag {
    pub fn new(metrics: &TaskMetricsHandle, slot: &str) -> Self {
        Self {
            slot_bytes: metrics.gauge(
                "cdc_replication_slot_lag_bytes",
                "WAL the replication slot retains: pg_current_wal_lsn() - confirmed_flush_lsn.",
                &[("slot", slot)],
            ),
            behind_seconds: metrics.gauge(
                "cdc_source_lag_seconds",
                "Seconds between the commit of the oldest change not yet handed on and now; 0 when nothing is pending.",
                &[("slot", slot)],
            ),
            last_probe: None,
        }
    }

    /// `pending_commit_ms`: the commit time of the oldest change not yet
    /// handed on, or `None` when nothing is pending.
    pub fn behind(&self, pending_commit_ms: Option<i64>, now_ms: i64) {
        let secs = pending_commit_ms.map_or(0.0, |c| (now_ms - c).max(0) as f64 / 1000.0);
        self.behind_seconds.set(secs);
    }

    /// Whether it is time to ask the server for the slot's lag again.
    pub fn probe_due(&mut self) -> bool {
        if self.last_probe.is_some_and(|t| t.elapsed() < PROBE_EVERY) {
            return false;
        }
        self.last_probe = Some(Instant::now());
        true
    }

    pub fn slot_lag(&self, bytes: f64) {
        self.slot_bytes.set(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behind_is_the_age_of_the_pending_change_and_zero_when_nothing_is_pending() {
        let metrics = TaskMetricsHandle::default();
        let lag = SourceLag::new(&metrics, "s");
        let seconds = || {
            metrics
                .samples()
                .into_iter()
                .find(|s| s.name == "cdc_source_lag_seconds")
                .map(|s| s.value)
        };
        lag.behind(Some(1_000), 4_500);
        assert_eq!(seconds(), Some(3.5));
        // Idle and caught up: however old the last change, not behind.
        lag.behind(None, 900_000);
        assert_eq!(seconds(), Some(0.0));
    }
}
