//! Connector and task states, as Kafka Connect names and reports them in
//! `/status`.

use serde::Serialize;

pub use crate::storage::statuses::State;

/// One entry of `tasks` in a status answer.
#[derive(Debug, Clone, Serialize)]
pub struct TaskStatus {
    pub id: u32,
    pub state: State,
    pub worker_id: String,
    /// The plugin's version, as Connect 4 reports the task's.
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// The `connector` part of a status answer.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorState {
    pub state: State,
    pub worker_id: String,
    /// The plugin's version, as Connect 4 reports the connector's.
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// `GET /connectors/{name}/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorStatus {
    pub name: String,
    pub connector: ConnectorState,
    pub tasks: Vec<TaskStatus>,
    #[serde(rename = "type")]
    pub kind: &'static str,
}
