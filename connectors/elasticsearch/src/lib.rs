//! `sluice-elasticsearch`: a sink connector that indexes Kafka records into
//! Elasticsearch (or any server speaking its `_bulk` API) with Confluent's
//! keys, so a Confluent config runs with its class name unchanged.
//!
//! A document is never rewound: writes carry an external version (the Kafka
//! offset, or a source position from `external.version.header`), so a replay
//! or an out-of-order retry loses to what is already indexed. Each `_bulk`
//! item is classified on its own: written and conflicting items are settled,
//! 429/5xx items are sent again with backoff, rejected documents go to the
//! error reporter with the server's reason. Offsets are committed only for
//! settled records.
//!
//! Depends only on `sluice-api` and its HTTP client (reqwest); never on the
//! runtime.

mod action;
mod batch;
mod client;
mod config;
mod outcome;
mod pressure;
mod progress;
mod task;

use sluice_api::{
    ConnectError, ConnectorFactory, ConnectorPlugin, SinkConnector, SinkTask, TaskConfig,
};

pub use config::config_def;

pub fn plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class: "elasticsearch-sink",
        aliases: &["io.confluent.connect.elasticsearch.ElasticsearchSinkConnector"],
        task_class: "io.confluent.connect.elasticsearch.ElasticsearchSinkTask",
        version: env!("CARGO_PKG_VERSION"),
        config_def,
        factory: ConnectorFactory::Sink(|| Box::new(EsSinkConnector::default())),
    }
}

#[derive(Default)]
struct EsSinkConnector {
    config: TaskConfig,
}

impl SinkConnector for EsSinkConnector {
    fn start(&mut self, config: &TaskConfig) -> Result<(), ConnectError> {
        config::EsConfig::parse(config)?;
        self.config = config.clone();
        Ok(())
    }

    /// Every task gets the same configuration; Kafka spreads partitions among them.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        Ok(vec![self.config.clone(); max_tasks.max(1)])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(task::EsSinkTask::default())
    }
}
