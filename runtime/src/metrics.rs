//! Per-task counters: cheap atomics the hot path bumps, read by progress logs
//! and the `/metrics` endpoint; histograms of the task's calls and commits;
//! the sink's partitions with their offsets (for lag); and the series the
//! connector reports itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use sluice_api::TaskMetricsHandle;

#[derive(Debug)]
pub struct TaskMetrics {
    /// Source: records polled from the task. Sink: records read from Kafka.
    pub records_in: AtomicU64,
    /// Source: records acknowledged by Kafka. Sink: records handed to `put`.
    pub records_out: AtomicU64,
    /// Source: replayed records skipped by idempotent resume.
    pub records_skipped: AtomicU64,
    /// Records that failed and were tolerated (`errors.tolerance=all`), by stage
    /// (indexed like `Stage::ALL`).
    pub failed_by_stage: [AtomicU64; 7],
    /// Failed records written to the dead-letter queue, by stage.
    pub dlq_by_stage: [AtomicU64; 7],
    /// Operations retried after a retriable error, by stage (TASK_POLL,
    /// TASK_PUT).
    pub retries_by_stage: [AtomicU64; 7],
    pub bytes_out: AtomicU64,
    /// Offset commits (sinks) and offset stores (sources) that succeeded.
    pub commits: AtomicU64,
    /// Offset commits or stores that failed.
    pub commit_failures: AtomicU64,
    /// How long each offset commit or store took.
    pub commit_seconds: Histogram,
    /// Records in each batch the task handled (sink: put; source: poll).
    pub batch_records: Histogram,
    /// How long each `put` (sink) or `poll` (source) call took.
    pub call_seconds: Histogram,
    /// Sink: the partitions assigned and where each stands, refreshed by
    /// `lag::spawn_sink_lag`.
    pub partitions: Mutex<Vec<PartitionLag>>,
    /// Time spent in each state, as seen at each scrape.
    pub states: Mutex<StateClock>,
    /// The series the connector's task reports itself.
    pub custom: TaskMetricsHandle,
}

impl Default for TaskMetrics {
    fn default() -> Self {
        Self {
            records_in: AtomicU64::default(),
            records_out: AtomicU64::default(),
            records_skipped: AtomicU64::default(),
            failed_by_stage: Default::default(),
            dlq_by_stage: Default::default(),
            retries_by_stage: Default::default(),
            bytes_out: AtomicU64::default(),
            commits: AtomicU64::default(),
            commit_failures: AtomicU64::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.001, 4.0, 8)),
            batch_records: Histogram::new(exponential_buckets(1.0, 4.0, 9)),
            call_seconds: Histogram::new(exponential_buckets(0.0001, 4.0, 10)),
            partitions: Mutex::default(),
            states: Mutex::new(StateClock::default()),
            custom: TaskMetricsHandle::default(),
        }
    }
}

/// Connector and task starts by outcome (Connect's connector-startup-* and
/// task-startup-* worker metrics; attempts are their sum). A start succeeds
/// once the instance or task is built and running, as in Connect.
#[derive(Debug, Default)]
pub struct Startups {
    pub connectors: StartupCount,
    pub tasks: StartupCount,
}

#[derive(Debug, Default)]
pub struct StartupCount {
    success: AtomicU64,
    failure: AtomicU64,
}

impl StartupCount {
    pub fn record(&self, ok: bool) {
        let counter = if ok { &self.success } else { &self.failure };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// (successes, failures).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.success.load(Ordering::Relaxed),
            self.failure.load(Ordering::Relaxed),
        )
    }
}

/// One assigned Kafka partition of a sink task and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The partition's log-end offset (high watermark), when last read.
    pub log_end_offset: i64,
    /// The group's committed offset (the next record to read after a
    /// restart); the log start when nothing is committed yet.
    pub committed_offset: i64,
    /// The next offset the task will be handed.
    pub position: i64,
}

impl PartitionLag {
    /// Records not yet committed: read again after a restart.
    pub fn lag(&self) -> i64 {
        (self.log_end_offset - self.committed_offset).max(0)
    }

    /// Records not yet read by the task.
    pub fn unread(&self) -> i64 {
        (self.log_end_offset - self.position).max(0)
    }

    /// Records read but not yet committed (Connect's sink-record-active-count).
    pub fn active(&self) -> i64 {
        (self.position - self.committed_offset).max(0)
    }
}

/// Seconds a task spent running and paused since it started, advanced each
/// time `/metrics` reads its state (the state seen then counts until the next
/// read): Connect's running-ratio and pause-ratio at the resolution of scrapes.
#[derive(Debug, Clone, Copy)]
pub struct StateClock {
    started: Instant,
    /// The state last seen (running, paused) and when.
    last: Option<(bool, bool, Instant)>,
    running: Duration,
    paused: Duration,
}

impl Default for StateClock {
    fn default() -> Self {
        Self::starting_at(Instant::now())
    }
}

impl StateClock {
    fn starting_at(started: Instant) -> Self {
        Self {
            started,
            last: None,
            running: Duration::ZERO,
            paused: Duration::ZERO,
        }
    }

    /// Counts the time since the last reading to the state seen then, and
    /// notes the state at `now`.
    pub fn observe(&mut self, running: bool, paused: bool, now: Instant) {
        self.settle(now);
        self.last = Some((running, paused, now));
    }

    /// The fractions of the task's life until `now` spent running and paused.
    pub fn ratios(&self, now: Instant) -> (f64, f64) {
        let mut at_now = *self;
        at_now.settle(now);
        let life = now.saturating_duration_since(self.started).as_secs_f64();
        if life <= 0.0 {
            return (0.0, 0.0);
        }
        (
            at_now.running.as_secs_f64() / life,
            at_now.paused.as_secs_f64() / life,
        )
    }

    fn settle(&mut self, now: Instant) {
        if let Some((was_running, was_paused, at)) = self.last {
            let spent = now.saturating_duration_since(at);
            if was_running {
                self.running += spent;
            }
            if was_paused {
                self.paused += spent;
            }
            self.last = Some((was_running, was_paused, now));
        }
    }
}

impl TaskMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn sum(counters: &[AtomicU64]) -> u64 {
        counters.iter().map(Self::get).sum()
    }

    /// The sink's partitions as last refreshed.
    pub fn partitions(&self) -> Vec<PartitionLag> {
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_partitions(&self, now: Vec<PartitionLag>) {
        *self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Notes the task's state as seen now.
    pub fn observe_state(&self, running: bool, paused: bool) {
        self.states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(running, paused, Instant::now());
    }

    /// The fractions of the task's life spent (running, paused).
    pub fn state_ratios(&self) -> (f64, f64) {
        self.states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ratios(Instant::now())
    }

    /// Times one offset commit and counts its outcome.
    pub fn commit_done(&self, started: Instant, ok: bool) {
        self.commit_seconds.observe(started.elapsed().as_secs_f64());
        Self::add(
            if ok {
                &self.commits
            } else {
                &self.commit_failures
            },
            1,
        );
    }
}

/// Logs a task's progress every `interval` until the task's metrics are dropped.
pub fn spawn_progress_log(
    connector: String,
    task: u32,
    metrics: Arc<TaskMetrics>,
    interval: Duration,
) {
    let weak = Arc::downgrade(&metrics);
    drop(metrics);
    tokio::spawn(async move {
        let mut last = (0u64, Instant::now());
        let mut tick = tokio::time::interval(interval);
        // A busy runtime that misses ticks logs once, not a burst of lines.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(m) = weak.upgrade() else { break };
            let out = TaskMetrics::get(&m.records_out);
            let rate = (out - last.0) as f64 / last.1.elapsed().as_secs_f64().max(1e-3);
            last = (out, Instant::now());
            tracing::info!(
                connector = %connector,
                task,
                records_in = TaskMetrics::get(&m.records_in),
                records_out = out,
                skipped = TaskMetrics::get(&m.records_skipped),
                failed = TaskMetrics::sum(&m.failed_by_stage),
                dead_lettered = TaskMetrics::sum(&m.dlq_by_stage),
                retries = TaskMetrics::sum(&m.retries_by_stage),
                commits = TaskMetrics::get(&m.commits),
                rate_per_s = rate.round(),
                "progress"
            );
        }
    });
}

/// The topics a connector has used (Connect's "active topics"): those a source
/// wrote to, those a sink consumed records of. Shared by the connector's tasks;
/// cleared by `PUT /connectors/{name}/topics/reset`.
#[derive(Debug, Clone, Default)]
pub struct ActiveTopics(Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>);

impl ActiveTopics {
    pub fn record(&self, topic: &str) {
        let mut set = self.lock();
        if !set.contains(topic) {
            set.insert(topic.to_owned());
        }
    }

    pub fn list(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<String>> {
        // A set of names cannot be left half-updated.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_clock_splits_a_life_between_running_and_paused() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut clock = StateClock::starting_at(t0);
        clock.observe(true, false, t0 + s(1));
        clock.observe(false, true, t0 + s(4));
        // Running from 1 s to 4 s, paused since: at 10 s, 3/10 and 6/10.
        let (running, paused) = clock.ratios(t0 + s(10));
        assert!((running - 0.3).abs() < 1e-9, "{running}");
        assert!((paused - 0.6).abs() < 1e-9, "{paused}");
        clock.observe(true, false, t0 + s(10));
        let (running, paused) = clock.ratios(t0 + s(20));
        assert!((running - 13.0 / 20.0).abs() < 1e-9, "{running}");
        assert!((paused - 6.0 / 20.0).abs() < 1e-9, "{paused}");
    }

    #[test]
    fn partition_lag_is_counted_from_the_log_end() {
        let p = PartitionLag {
            topic: "t".into(),
            partition: 0,
            log_end_offset: 100,
            committed_offset: 60,
            position: 90,
        };
        assert_eq!((p.lag(), p.unread(), p.active()), (40, 10, 30));
    }
}
