//! The worker's error type.

use sluice_api::ConnectError;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigFileError),
    #[error("connector '{connector}': {errors}")]
    InvalidConnector {
        connector: String,
        errors: sluice_api::ConfigErrors,
    },
    #[error("cannot reach Kafka at {servers}: {reason} (check bootstrap.servers, the network and the security settings)")]
    Unreachable { servers: String, reason: String },
    #[error("Kafka: cannot {action}: {source}")]
    Kafka {
        action: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("offset store {path}: {message}")]
    OffsetStore { path: String, message: String },
    #[error("connector config store {path}: {message}")]
    ConfigStore { path: String, message: String },
    #[error("connector '{connector}' task {task}: {source}")]
    Task {
        connector: String,
        task: u32,
        source: ConnectError,
    },
    #[error("{0}")]
    Other(String),
}

impl WorkerError {
    pub fn kafka(action: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        Self::Kafka {
            action: action.into(),
            source,
        }
    }
}
