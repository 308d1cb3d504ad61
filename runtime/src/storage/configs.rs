//! Connector configs and target states, and the store behind them (Connect's
//! `ConfigBackingStore`). Standalone keeps them in a file (`config_file.rs`);
//! distributed mode in the config topic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_api::TaskConfig;

use crate::control::TargetState;
use crate::error::WorkerError;

/// A connector as the store keeps it: its config as written (provider
/// references unresolved) and what the user asked it to be doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredConnector {
    pub config: TaskConfig,
    pub target_state: TargetState,
}

/// A restart asked of every worker, each restarting the parts it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartRequest {
    pub connector: String,
    /// One task (`POST /connectors/{name}/tasks/{id}/restart`), or the
    /// connector with `include_tasks` and `only_failed` as Connect's query.
    pub task: Option<u32>,
    pub include_tasks: bool,
    pub only_failed: bool,
}

/// Where connector configs live. Both calls block (a file write, or a record
/// appended and read back): call them off the async threads.
pub trait ConfigBackingStore: Send + Sync {
    /// Waits until the view holds every write acknowledged, on any worker,
    /// before the call. A store only this worker writes is always there.
    fn read_to_end(&self) -> Result<(), WorkerError> {
        Ok(())
    }

    /// Every stored connector, by name.
    fn all(&self) -> BTreeMap<String, StoredConnector>;

    /// Records a connector (or its removal, with `None`) and returns once it
    /// is durable; on an error the store is as it was.
    fn put(&self, name: &str, entry: Option<StoredConnector>) -> Result<(), WorkerError>;

    /// Asks every worker to restart the parts of a connector it runs, and
    /// returns once the request is durable. `false` when the store has no
    /// other workers to ask (standalone restarts in place).
    fn request_restart(&self, _request: &RestartRequest) -> Result<bool, WorkerError> {
        Ok(false)
    }

    /// The restart requests read since the last call, in log order.
    fn take_restarts(&self) -> Vec<RestartRequest> {
        Vec::new()
    }

    /// The task configs a connector's instance last made, as published for
    /// the workers that do not run it (distributed); `None` when unknown.
    fn task_configs(&self, _connector: &str) -> Option<Vec<TaskConfig>> {
        None
    }

    /// Publishes the task configs a connector's instance made. Nothing to do
    /// where the instance runs beside every task (standalone).
    fn put_task_configs(
        &self,
        _connector: &str,
        _configs: &[TaskConfig],
    ) -> Result<(), WorkerError> {
        Ok(())
    }

    /// Records a new connector unless the name is taken: `false` when it is.
    /// Of two creates of one name, on any workers, exactly one returns `true`.
    fn create(&self, name: &str, entry: StoredConnector) -> Result<bool, WorkerError>;
}
