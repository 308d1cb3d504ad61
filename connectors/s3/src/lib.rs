//! `sluice-s3`: a sink connector that writes Kafka records to S3 (or any S3 API:
//! MinIO, s3s) as Parquet or JSON-lines objects, exactly once. Confluent's S3 sink
//! keys and object names, so a Confluent config needs only its class changed.
//!
//! Exactly once: records are buffered per Kafka partition and cut into files by
//! count (`flush.size`), record time (`rotate.interval.ms`) or a schema change;
//! each file's key is derived from (topic, partition, start offset), and the
//! consumer offsets committed are only those of files already uploaded, so a
//! replay after a crash rewrites the same keys with the same contents.
//!
//! The cut: `config.rs` (keys, defaults, validation); the pure core —
//! `file_set.rs` (which file a record joins, when files are cut, which offset
//! is safe to commit), `partitioner.rs` (object paths and keys), `compat.rs`
//! (schema projection), `format/` (Parquet and JSON-lines encoding),
//! `audit.rs`'s manifests; the I/O shell — `storage.rs` (the S3 client behind
//! the `ObjectStore` trait) and `task.rs` (what the runtime drives).
//!
//! Depends only on `sluice-api` and its client libraries (aws-sdk-s3, arrow,
//! parquet).

pub mod audit;
mod compat;
mod config;
mod file_set;
mod format;
mod partitioner;
pub mod storage;
mod task;
mod tier;

use sluice_api::{
    ConnectError, ConnectorFactory, ConnectorPlugin, SinkConnector, SinkTask, TaskConfig,
};

pub use config::config_def;

pub fn plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class: "s3-sink",
        aliases: &["io.confluent.connect.s3.S3SinkConnector"],
        task_class: "io.confluent.connect.s3.S3SinkTask",
        version: env!("CARGO_PKG_VERSION"),
        config_def,
        factory: ConnectorFactory::Sink(|| Box::new(S3SinkConnector::default())),
    }
}

#[derive(Default)]
struct S3SinkConnector {
    config: TaskConfig,
}

impl SinkConnector for S3SinkConnector {
    fn start(&mut self, config: &TaskConfig) -> Result<(), ConnectError> {
        config::S3SinkConfig::parse(config)?;
        self.config = config.clone();
        Ok(())
    }

    /// Every task gets the same configuration; Kafka spreads partitions among them.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        Ok(vec![self.config.clone(); max_tasks.max(1)])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(task::S3SinkTask::default())
    }
}
