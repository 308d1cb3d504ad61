//! `sluice-warehouse`: a sink connector that writes Kafka records into a SQL
//! warehouse (PostgreSQL over its wire protocol) with the keys JDBC sink
//! users know, so a Confluent or Debezium JDBC sink config for a
//! `jdbc:postgresql:` URL runs with its class name unchanged.
//!
//! Writes are set-based: a batch is copied (binary COPY) into a staging
//! table and merged with one statement per table and shape. Rows and the
//! consumed offsets commit in one transaction, and a task resumes from the
//! offsets in the warehouse: exactly once, whatever the insert mode. A row
//! the database rejects is isolated by bisection and sent to the error
//! reporter with its SQLSTATE; the rest of its batch commits.
//!
//! Pure core: `config.rs`, `types.rs` (type mapping), `change.rs` (records
//! as changes, Debezium's envelope), `plan.rs` (reduction, steps, offsets),
//! `dialect.rs` (SQL), `copy.rs` (binary cells). I/O shell: `database.rs`,
//! `tls.rs` (libpq's `sslmode` over rustls), `task.rs`.
//!
//! Depends only on `sluice-api` and its database client (tokio-postgres);
//! never on the runtime.

mod change;
mod config;
mod copy;
mod database;
mod dialect;
mod plan;
mod task;
mod tls;
mod types;

use sluice_api::{
    ConnectError, ConnectorFactory, ConnectorPlugin, SinkConnector, SinkTask, TaskConfig,
};

pub use config::config_def;

pub fn plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class: "warehouse-sink",
        aliases: &[
            "io.confluent.connect.jdbc.JdbcSinkConnector",
            "io.debezium.connector.jdbc.JdbcSinkConnector",
        ],
        task_class: "io.confluent.connect.jdbc.sink.JdbcSinkTask",
        version: env!("CARGO_PKG_VERSION"),
        config_def,
        factory: ConnectorFactory::Sink(|| Box::new(WarehouseSinkConnector::default())),
    }
}

#[derive(Default)]
struct WarehouseSinkConnector {
    config: TaskConfig,
}

impl SinkConnector for WarehouseSinkConnector {
    fn start(&mut self, config: &TaskConfig) -> Result<(), ConnectError> {
        config::WarehouseConfig::parse(config)?;
        self.config = config.clone();
        Ok(())
    }

    /// Every task gets the same configuration; Kafka spreads partitions among them.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        Ok(vec![self.config.clone(); max_tasks.max(1)])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(task::WarehouseSinkTask::default())
    }
}
