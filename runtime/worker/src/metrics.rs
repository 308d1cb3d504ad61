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
    /// Time spent in each state, as seen by whoever reads the state.
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
/// time its state is read (every scrape and status call): Connect's
/// running-ratio and pause-ratio at the resolution of those reads.
#[derive(Debug)]
pub struct StateClock {
    started: Instant,
    last: Option<(bool, bool, Instant)>,
    pub running: Duration,
    pub paused: Duration,
}

impl Default for StateClock {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            last: None,
            running: Duration::ZERO,
            paused: Duration::ZERO,
        }
    }
}

impl StateClock {
    /// Counts the time since the last reading to the state seen then, and
    /// notes the state now.
    pub fn observe(&mut self, running: bool, paused: bool) {
        let now = Instant::now();
        if let Some((was_running, was_paused, at)) = self.last {
            let spent = now - at;
            if was_running {
                self.running += spent;
            }
            if was_paused {
                self.paused += spent;
            }
        }
        self.last = Some((running, paused, now));
    }

    /// The fraction of the task's life spent running and paused.
    pub fn ratios(&self) -> (f64, f64) {
        let life = self.started.elapsed().as_secs_f64().max(1e-9);
        (
            self.running.as_secs_f64() / life,
            self.paused.as_secs_f64() / life,
        )
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

    /// Notes the task's state and returns its (running, paused) ratios.
    pub fn observe_state(&self, running: bool, paused: bool) -> (f64, f64) {
        let mut clock = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        clock.observe(running, paused);
        clock.ratios()
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
