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

    /// Records a new connector unless the name is taken: `false` when it is.
    /// Of two creates of one name, on any workers, exactly one returns `true`.
    fn create(&self, name: &str, entry: StoredConnector) -> Result<bool, WorkerError>;
}
