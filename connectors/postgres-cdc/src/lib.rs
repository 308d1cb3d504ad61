//! `sluice-postgres-cdc`: a PostgreSQL change data capture source that a
//! Debezium user adopts by changing `connector.class`. It streams pgoutput
//! changes from a logical replication slot (pg_walstream), reads an initial
//! snapshot consistent with the stream (tokio-postgres, inside the slot's
//! exported snapshot), and writes Debezium's envelope to
//! `<topic.prefix>.<schema>.<table>`.
//!
//! Exactly-once into Kafka comes from the runtime's idempotent resume: see
//! `task.rs` for the rule for confirming LSNs and `positions.rs` for the
//! positions and offsets this connector gives each record. Depends only on
//! `sluice-api` and its client libraries.
//!
//! The cut: `config.rs` (keys, defaults, validation); the pure core —
//! `positions.rs` (where each record stands), the start plan in `startup.rs`,
//! `envelope.rs` and `types.rs` (Debezium's event shape and value encodings),
//! `incremental.rs`'s windows; the I/O shell — `database.rs` (SQL),
//! `stream.rs` (the replication stream), `snapshot.rs`/`snapshot_rows.rs`
//! (the initial snapshot), `changes.rs` (pgoutput messages into records),
//! `session.rs` and `task.rs` (what the runtime drives).

mod backoff;
mod changes;
mod config;
mod database;
mod envelope;
mod incremental;
mod lag;
mod positions;
mod session;
mod snapshot;
mod snapshot_rows;
mod startup;
mod stream;
mod task;
mod tls;
mod types;

use sluice_api::{
    ConnectError, ConnectorFactory, ConnectorPlugin, SourceConnector, SourceTask, TaskConfig,
};

pub use config::config_def;

pub fn plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class: "postgres-cdc",
        aliases: &["io.debezium.connector.postgresql.PostgresConnector"],
        task_class: "io.debezium.connector.postgresql.PostgresConnectorTask",
        version: env!("CARGO_PKG_VERSION"),
        config_def,
        factory: ConnectorFactory::Source(|| Box::new(PostgresConnector::default())),
    }
}

#[derive(Default)]
struct PostgresConnector {
    config: TaskConfig,
}

impl SourceConnector for PostgresConnector {
    fn start(&mut self, config: &TaskConfig) -> Result<(), ConnectError> {
        config::CdcConfig::parse(config)?;
        self.config = config.clone();
        Ok(())
    }

    /// One slot is one ordered stream, so one task, whatever `tasks.max` says
    /// (as in Debezium).
    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        Ok(vec![self.config.clone()])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(task::CdcTask::default())
    }
}
