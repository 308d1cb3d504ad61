//! Statuses in distributed mode: the status topic, in Connect's record format
//! (`status-connector-<name>` and `status-task-<name>-<id>` →
//! `{"state", "trace", "worker_id", "generation"}`), and sluice's own
//! `status-worker-<id>` → `{"slots", "renewed_ms"}`, each worker's last lease
//! renewal (Connect's readers skip keys they do not know). Every worker reads every
//! record and applies the generation rule of `StatusRecord::supersedes` as
//! it reads, so all workers keep the same view and a stale worker's late
//! record changes nobody's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::debug;

use super::kafka_log::{KafkaLog, LogRecord};
use super::statuses::{StatusBackingStore, StatusRecord, WorkerRecord};
use crate::config::WorkerConfig;
use crate::error::WorkerError;

const CONNECTOR: &str = "status-connector-";
const TASK: &str = "status-task-";
const WORKER: &str = "status-worker-";

#[derive(Default)]
struct View {
    connectors: BTreeMap<String, StatusRecord>,
    tasks: BTreeMap<String, BTreeMap<u32, StatusRecord>>,
    workers: BTreeMap<String, WorkerRecord>,
}

type Shared = Arc<Mutex<View>>;

pub struct KafkaStatusStore {
    log: KafkaLog,
    view: Shared,
}

impl KafkaStatusStore {
    /// Reads the status topic to its end.
    pub fn open(
        worker: &WorkerConfig,
        topic: &str,
        timeout: Duration,
    ) -> Result<Self, WorkerError> {
        let view: Shared = Arc::default();
        let v = view.clone();
        let log = KafkaLog::open(worker, topic, timeout, move |r| apply(&v, &r))?;
        Ok(Self { log, view })
    }

    fn write(&self, key: String, status: &StatusRecord) {
        match serde_json::to_vec(status) {
            Ok(value) => self.log.append_later(key.as_bytes(), Some(&value)),
            Err(e) => debug!("cannot encode a status: {e}"),
        }
    }
}

fn lock(view: &Shared) -> std::sync::MutexGuard<'_, View> {
    // Whole records are replaced under the lock; a poisoned one is consistent.
    view.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `<name>-<id>` of a task key; names may hold dashes, ids do not.
fn task_of(rest: &str) -> Option<(&str, u32)> {
    let (name, id) = rest.rsplit_once('-')?;
    Some((name, id.parse().ok()?))
}

fn apply(view: &Shared, record: &LogRecord<'_>) {
    let Some(key) = record.key.and_then(|k| std::str::from_utf8(k).ok()) else {
        return;
    };
    if let Some(worker) = key.strip_prefix(WORKER) {
        let renewal: Option<WorkerRecord> =
            record.value.and_then(|v| serde_json::from_slice(v).ok());
        let mut view = lock(view);
        match renewal {
            Some(r) => view.workers.insert(worker.to_owned(), r),
            None => view.workers.remove(worker),
        };
        return;
    }
    let status: Option<StatusRecord> = record.value.and_then(|v| serde_json::from_slice(v).ok());
    let mut view = lock(view);
    if let Some(name) = key.strip_prefix(CONNECTOR) {
        match status {
            None => {
                view.connectors.remove(name);
            }
            Some(s) => {
                if s.supersedes(view.connectors.get(name)) {
                    view.connectors.insert(name.to_owned(), s);
                }
            }
        }
    } else if let Some((name, id)) = key.strip_prefix(TASK).and_then(task_of) {
        let tasks = view.tasks.entry(name.to_owned()).or_default();
        match status {
            None => {
                tasks.remove(&id);
            }
            Some(s) => {
                if s.supersedes(tasks.get(&id)) {
                    tasks.insert(id, s);
                }
            }
        }
    }
}

impl StatusBackingStore for KafkaStatusStore {
    fn put_connector(&self, name: &str, status: StatusRecord) {
        if status.supersedes(lock(&self.view).connectors.get(name)) {
            self.write(format!("{CONNECTOR}{name}"), &status);
        }
    }

    fn put_task(&self, connector: &str, task: u32, status: StatusRecord) {
        let allowed = status.supersedes(
            lock(&self.view)
                .tasks
                .get(connector)
                .and_then(|t| t.get(&task)),
        );
        if allowed {
            self.write(format!("{TASK}{connector}-{task}"), &status);
        }
    }

    fn connector(&self, name: &str) -> Option<StatusRecord> {
        lock(&self.view).connectors.get(name).cloned()
    }

    fn tasks(&self, connector: &str) -> BTreeMap<u32, StatusRecord> {
        lock(&self.view)
            .tasks
            .get(connector)
            .cloned()
            .unwrap_or_default()
    }

    fn read_to_end(&self) -> Result<(), WorkerError> {
        self.log.read_to_end()
    }

    fn put_worker(&self, worker: &str, renewal: WorkerRecord) {
        match serde_json::to_vec(&renewal) {
            Ok(value) => self
                .log
                .append_later(format!("{WORKER}{worker}").as_bytes(), Some(&value)),
            Err(e) => debug!("cannot encode a lease renewal: {e}"),
        }
    }

    fn workers(&self) -> BTreeMap<String, WorkerRecord> {
        lock(&self.view).workers.clone()
    }

    fn forget(&self, connector: &str) {
        let tasks: Vec<u32> = self.tasks(connector).into_keys().collect();
        self.log
            .append_later(format!("{CONNECTOR}{connector}").as_bytes(), None);
        for id in tasks {
            self.log
                .append_later(format!("{TASK}{connector}-{id}").as_bytes(), None);
        }
    }
}
