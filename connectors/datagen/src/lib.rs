//! `sluice-datagen`: a source connector that generates the reference scenario's
//! API usage events (seed: `api-usage-events.v1`, keyed by `tenant_id`, with a
//! configurable share of hot tenants whose keys become `tenant_id:api_key_id`).
//!
//! Every event is a pure function of `(seed, task, sequence)`, so a restarted task
//! regenerates exactly the events it had sent, which is what the runtime's
//! idempotent resume deduplicates. Depends only on `sluice-api`.

mod config;
mod event;
mod task;

use sluice_api::{
    ConnectError, ConnectorFactory, ConnectorPlugin, SourceConnector, SourceTask, TaskConfig,
};

pub use config::config_def;
pub use event::{ApiUsageEvent, EventGenerator, DEFAULT_EPOCH_MS};

pub fn plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class: "datagen",
        aliases: &[
            "io.confluent.kafka.connect.datagen.DatagenConnector",
            "sluice.datagen.DatagenConnector",
        ],
        task_class: "io.confluent.kafka.connect.datagen.DatagenTask",
        version: env!("CARGO_PKG_VERSION"),
        config_def,
        factory: ConnectorFactory::Source(|| Box::new(DatagenConnector::default())),
    }
}

#[derive(Default)]
struct DatagenConnector {
    config: TaskConfig,
}

impl SourceConnector for DatagenConnector {
    fn start(&mut self, config: &TaskConfig) -> Result<(), ConnectError> {
        config_def().validate(config)?;
        self.config = config.clone();
        Ok(())
    }

    /// One generator per task; `max.records` is split between them.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        let total: i64 = self
            .config
            .get("max.records")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let tasks = max_tasks.max(1) as i64;
        Ok((0..tasks)
            .map(|t| {
                let mut c = self.config.clone();
                c.insert("task.index".into(), t.to_string());
                c.insert("task.count".into(), tasks.to_string());
                if total > 0 {
                    let share = total / tasks + i64::from(t < total % tasks);
                    c.insert("max.records".into(), share.to_string());
                }
                c
            })
            .collect())
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(task::DatagenTask::default())
    }
}
