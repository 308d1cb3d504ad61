//! Worker and connector configuration: loading the JSON files, environment
//! overrides, config providers for secrets, and validation.

mod connector;
mod distributed;
mod json_file;
mod providers;
mod worker;

pub use connector::{
    check_connector_name, connector_config_def, ConnectorConfig, ConnectorRules, TransformSpec,
};
pub use distributed::{DistributedConfig, InternalTopic};
pub use json_file::{object_to_config, read_json_object};
pub use providers::{is_whole_reference, ConfigProviders};
pub use worker::{WorkerConfig, ENV_PREFIX};

/// A configuration problem, with the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Shape { path: String, message: String },
    #[error("{path}: {errors}")]
    Invalid {
        path: String,
        errors: sluice_api::ConfigErrors,
    },
}
