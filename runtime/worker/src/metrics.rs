//! Per-task counters: cheap atomics the hot path bumps, read by progress logs
//! and the `/metrics` endpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
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
    pub commits: AtomicU64,
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
