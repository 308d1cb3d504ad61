//! The connector's error policy (`errors.tolerance`, `errors.log.*`) applied to a
//! record that failed in a converter, a transform or the destination.

use std::sync::Arc;

use async_trait::async_trait;
use sluice_api::{ConnectError, ErrantRecordReporter, Record};

use crate::config::ConnectorConfig;
use crate::metrics::TaskMetrics;

/// Where in the pipeline a record failed, with Connect's stage names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    KeyConverter,
    ValueConverter,
    HeaderConverter,
    Transformation,
    TaskPut,
    TaskPoll,
    KafkaProduce,
}

impl Stage {
    pub fn as_str(&self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::HeaderConverter => "HEADER_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPut => "TASK_PUT",
            Stage::TaskPoll => "TASK_POLL",
            Stage::KafkaProduce => "KAFKA_PRODUCE",
        }
    }
}

#[derive(Clone)]
pub struct ErrorPolicy {
    connector: String,
    task: u32,
    tolerate_all: bool,
    log: bool,
    log_messages: bool,
    metrics: Arc<TaskMetrics>,
}

impl ErrorPolicy {
    pub fn new(config: &ConnectorConfig, task: u32, metrics: Arc<TaskMetrics>) -> Self {
        let flag = |k: &str| {
            config
                .get(k)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        Self {
            connector: config.name.clone(),
            task,
            tolerate_all: config
                .get("errors.tolerance")
                .is_some_and(|v| v.eq_ignore_ascii_case("all")),
            log: flag("errors.log.enable"),
            log_messages: flag("errors.log.include.messages"),
            metrics,
        }
    }

    /// Deals with one failed record: `Ok` when it is tolerated (counted and, if
    /// asked, logged), or the error that must fail the task, saying where.
    pub fn handle(
        &self,
        stage: Stage,
        coordinates: &str,
        error: ConnectError,
    ) -> Result<(), ConnectError> {
        if !self.tolerate_all {
            return Err(ConnectError::new(
                error.kind(),
                format!(
                    "{} failed for record {coordinates}: {}",
                    stage.as_str(),
                    error.message()
                ),
            )
            .with_source(error));
        }
        TaskMetrics::add(&self.metrics.records_failed, 1);
        if self.log {
            let detail = if self.log_messages {
                coordinates
            } else {
                "(errors.log.include.messages=false)"
            };
            tracing::error!(
                connector = %self.connector,
                task = self.task,
                stage = stage.as_str(),
                record = detail,
                error = %error.chain(),
                "record failed and was skipped (errors.tolerance=all)"
            );
        }
        Ok(())
    }
}

#[async_trait]
impl ErrantRecordReporter for ErrorPolicy {
    async fn report(&self, record: &Record, error: &ConnectError) -> Result<(), ConnectError> {
        self.handle(
            Stage::TaskPut,
            &record.coordinates(),
            ConnectError::new(error.kind(), error.message()),
        )
    }
}
