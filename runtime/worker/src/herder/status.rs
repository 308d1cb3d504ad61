//! Connector and task states, as Kafka Connect names and reports them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What the user asked a connector to be doing. Tasks receive it over a watch
/// channel: `Paused` keeps their resources and stops their work, `Stopped` ends
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum TargetState {
    #[default]
    Running,
    Paused,
    Stopped,
}

impl TargetState {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "RUNNING" => Some(Self::Running),
            "PAUSED" => Some(Self::Paused),
            "STOPPED" => Some(Self::Stopped),
            _ => None,
        }
    }
}

/// A connector's or task's state in `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Unassigned,
    Running,
    Paused,
    Stopped,
    Failed,
    Restarting,
}

/// How a running task is doing, shared between the task's supervisor (which
/// records how it ended) and the herder (which reports it).
#[derive(Debug, Default)]
pub struct TaskHealth {
    failure: Mutex<Option<String>>,
    /// Why the task is retrying its source or destination, while it is: it
    /// stays RUNNING, and its status says so.
    retrying: Mutex<Option<String>>,
    /// The task has acted on a pause: it will move no more records until resumed.
    paused: AtomicBool,
}

impl TaskHealth {
    /// Called by the task once a pause has taken effect.
    pub fn confirm_paused(&self) {
        self.paused.store(true, Ordering::Release);
    }

    /// Called by the herder before it changes the target state.
    pub fn clear_paused(&self) {
        self.paused.store(false, Ordering::Release);
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub fn fail(&self, trace: String) {
        *lock(&self.failure) = Some(trace);
    }

    /// The failure trace, when the task has failed.
    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// Called by the task while it retries a retriable failure.
    pub fn retrying(&self, why: String) {
        *lock(&self.retrying) = Some(why);
    }

    /// Called by the task once an operation it retried has succeeded.
    pub fn recovered(&self) {
        lock(&self.retrying).take();
    }

    /// Why the task is retrying, while it is.
    pub fn retry_reason(&self) -> Option<String> {
        lock(&self.retrying).clone()
    }
}

fn lock(m: &Mutex<Option<String>>) -> std::sync::MutexGuard<'_, Option<String>> {
    // Only whole values are ever stored, so a poisoned lock holds a valid one.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
