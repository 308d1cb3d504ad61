//! Connector and task states as the cluster last heard them, and the store
//! behind them (Connect's `StatusBackingStore`). Standalone keeps them in
//! memory; distributed mode in the status topic, where every worker reads
//! what the others wrote.
//!
//! Every record carries the worker that wrote it and that worker's
//! generation (the herder's placement epoch; always 0 in standalone). A record
//! replaces the stored one only if the same worker wrote both, or if its
//! generation is at least the stored one's: a worker that lost its tasks
//! while it was away cannot overwrite what their new owner reports.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A connector's or task's state, as Connect names it in `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Unassigned,
    Running,
    Paused,
    Stopped,
    Failed,
    Restarting,
}

/// One status record: Connect's `ConnectorStatus`/`TaskStatus` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    pub worker_id: String,
    pub generation: u64,
}

impl StatusRecord {
    /// Whether this record may replace `stored` (Connect's `canWriteSafely`).
    pub fn supersedes(&self, stored: Option<&StatusRecord>) -> bool {
        stored.is_none_or(|s| s.worker_id == self.worker_id || s.generation <= self.generation)
    }
}

/// Distributed mode: a worker's last accepted lease renewal, the placement
/// slots it renewed and when (wall clock, milliseconds since the epoch).
/// Which worker runs a part now is read from these, not from the part's own
/// record, which a dead worker cannot take back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub slots: Vec<i32>,
    pub renewed_ms: u64,
}

/// Where statuses live. Writes never block and keep their order (a
/// distributed store sends them in the background, as Connect's does): a
/// status is a report, and a task must not wait on it.
pub trait StatusBackingStore: Send + Sync {
    /// Records a connector's state, unless a newer generation's is stored.
    fn put_connector(&self, name: &str, status: StatusRecord);

    /// Records a task's state, unless a newer generation's is stored.
    fn put_task(&self, connector: &str, task: u32, status: StatusRecord);

    fn connector(&self, name: &str) -> Option<StatusRecord>;

    fn tasks(&self, connector: &str) -> BTreeMap<u32, StatusRecord>;

    /// Forgets a deleted connector's states.
    fn forget(&self, connector: &str);

    /// Distributed mode: records a worker's accepted lease renewal. Nothing
    /// to record where one worker runs everything.
    fn put_worker(&self, _worker: &str, _renewal: WorkerRecord) {}

    /// Every worker's last renewal, by worker id.
    fn workers(&self) -> BTreeMap<String, WorkerRecord> {
        BTreeMap::new()
    }

    /// Reads what other workers reported before now (nothing to read where
    /// only this worker writes).
    fn read_to_end(&self) -> Result<(), crate::error::WorkerError> {
        Ok(())
    }
}

#[derive(Default)]
struct Statuses {
    connectors: BTreeMap<String, StatusRecord>,
    tasks: BTreeMap<String, BTreeMap<u32, StatusRecord>>,
}

/// The standalone status store: only this worker writes, and nothing needs to
/// outlive it (a restarted worker reports what its tasks do now).
#[derive(Default)]
pub struct MemoryStatusStore {
    state: Mutex<Statuses>,
}

impl MemoryStatusStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Statuses> {
        // Whole records are replaced under the lock; a poisoned one is consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StatusBackingStore for MemoryStatusStore {
    fn put_connector(&self, name: &str, status: StatusRecord) {
        let mut s = self.lock();
        if status.supersedes(s.connectors.get(name)) {
            s.connectors.insert(name.to_owned(), status);
        }
    }

    fn put_task(&self, connector: &str, task: u32, status: StatusRecord) {
        let mut s = self.lock();
        let tasks = s.tasks.entry(connector.to_owned()).or_default();
        if status.supersedes(tasks.get(&task)) {
            tasks.insert(task, status);
        }
    }

    fn connector(&self, name: &str) -> Option<StatusRecord> {
        self.lock().connectors.get(name).cloned()
    }

    fn tasks(&self, connector: &str) -> BTreeMap<u32, StatusRecord> {
        self.lock()
            .tasks
            .get(connector)
            .cloned()
            .unwrap_or_default()
    }

    fn forget(&self, connector: &str) {
        let mut s = self.lock();
        s.connectors.remove(connector);
        s.tasks.remove(connector);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: State, worker: &str, generation: u64) -> StatusRecord {
        StatusRecord {
            state,
            trace: None,
            worker_id: worker.into(),
            generation,
        }
    }

    #[test]
    fn a_stale_worker_cannot_overwrite_the_new_owners_state() {
        let store = MemoryStatusStore::default();
        store.put_task("c", 0, record(State::Running, "a", 1));
        // b took the task over in generation 2.
        store.put_task("c", 0, record(State::Running, "b", 2));
        // a wakes up and reports its task failed, from generation 1.
        store.put_task("c", 0, record(State::Failed, "a", 1));
        assert_eq!(store.tasks("c")[&0], record(State::Running, "b", 2));
        // The owner's own later records always land.
        store.put_task("c", 0, record(State::Paused, "b", 2));
        assert_eq!(store.tasks("c")[&0].state, State::Paused);
        // A newer generation wins whoever wrote before.
        store.put_task("c", 0, record(State::Running, "a", 3));
        assert_eq!(store.tasks("c")[&0], record(State::Running, "a", 3));
    }

    #[test]
    fn forgetting_a_connector_forgets_its_tasks() {
        let store = MemoryStatusStore::default();
        store.put_connector("c", record(State::Running, "a", 0));
        store.put_task("c", 0, record(State::Running, "a", 0));
        store.forget("c");
        assert!(store.connector("c").is_none());
        assert!(store.tasks("c").is_empty());
    }
}
