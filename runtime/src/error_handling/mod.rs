//! The connector's error handling, with Kafka Connect's keys and semantics: a
//! record that fails in a converter, a transform or the destination either fails
//! the task (`errors.tolerance=none`) or is counted, optionally logged, and, when
//! a dead-letter queue is configured, written there (original bytes plus
//! `__connect.errors.*` headers) before its offset may be committed.
//! A retriable failure of the source or destination itself (`poll`, `put`, a
//! commit) is retried with exponential backoff and jitter until it succeeds or
//! the task stops, within `task.retry.timeout.ms` when that is set.

mod dlq;
mod originals;
pub mod replay;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_api::{
    Backoff, ConnectError, ErrantRecordReporter, ErrorKind, Headers, Record, TopicPartition,
};

pub use self::dlq::{DeadLetterQueue, ERROR_HEADER_PREFIX};
pub use self::originals::Originals;
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
    pub const ALL: [Stage; 7] = [
        Stage::KeyConverter,
        Stage::ValueConverter,
        Stage::HeaderConverter,
        Stage::Transformation,
        Stage::TaskPut,
        Stage::TaskPoll,
        Stage::KafkaProduce,
    ];

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

    pub fn index(&self) -> usize {
        Stage::ALL.iter().position(|s| s == self).unwrap_or(0)
    }
}

/// A record as it was before the stage that failed: for a sink, the bytes read
/// from Kafka; for a source, the record as its converters would have written it.
#[derive(Debug, Clone)]
pub struct Original {
    pub topic: Arc<str>,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
}

impl Original {
    /// A record known only by its topic (its bytes were not kept).
    pub fn bare(topic: Arc<str>) -> Self {
        Self {
            topic,
            partition: None,
            offset: None,
            timestamp: None,
            key: None,
            value: None,
            headers: Headers::new(),
        }
    }

    pub fn coordinates(&self) -> String {
        match (self.partition, self.offset) {
            (Some(p), Some(o)) => format!("{}-{p}@{o}", self.topic),
            _ => self.topic.to_string(),
        }
    }
}

/// One failed record and why.
#[derive(Debug)]
pub struct Failure {
    pub stage: Stage,
    /// The component that failed: a converter, transform or connector class.
    pub class_name: String,
    pub original: Original,
    pub error: ConnectError,
}

impl Failure {
    /// A record a transform failed on, with its original when still known.
    pub fn transformation(
        failure: crate::transforms::TransformFailure,
        original: Option<Original>,
    ) -> Self {
        Self {
            stage: Stage::Transformation,
            class_name: failure.type_name,
            original: original.unwrap_or_else(|| Original::bare("?".into())),
            error: failure.error,
        }
    }
}

/// Connect's exception class for an error kind, so tools that read
/// `__connect.errors.exception.class.name` see familiar names.
pub fn exception_class(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Retriable => "org.apache.kafka.connect.errors.RetriableException",
        ErrorKind::Data => "org.apache.kafka.connect.errors.DataException",
        ErrorKind::Config => "org.apache.kafka.common.config.ConfigException",
        ErrorKind::Fatal => "org.apache.kafka.connect.errors.ConnectException",
    }
}

/// The wait before the first retry; each failure doubles it.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(300);

#[derive(Clone)]
pub struct ErrorPolicy {
    connector: String,
    task: u32,
    tolerate_all: bool,
    log: bool,
    log_messages: bool,
    task_retry_timeout: Option<Duration>,
    task_retry_delay_max: Duration,
    dlq: Option<Arc<DeadLetterQueue>>,
    metrics: Arc<TaskMetrics>,
}

impl ErrorPolicy {
    pub fn new(
        config: &ConnectorConfig,
        task: u32,
        metrics: Arc<TaskMetrics>,
        dlq: Option<Arc<DeadLetterQueue>>,
    ) -> Self {
        let flag = |k: &str| {
            config
                .get(k)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        let millis = |k: &str, default: i64| {
            config
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(default)
        };
        let task_timeout = millis("task.retry.timeout.ms", -1);
        Self {
            connector: config.name.clone(),
            task,
            tolerate_all: config
                .get("errors.tolerance")
                .is_some_and(|v| v.eq_ignore_ascii_case("all")),
            log: flag("errors.log.enable"),
            log_messages: flag("errors.log.include.messages"),
            task_retry_timeout: (task_timeout >= 0)
                .then(|| Duration::from_millis(task_timeout as u64)),
            task_retry_delay_max: Duration::from_millis(
                millis("task.retry.backoff.max.ms", 10_000).max(1) as u64,
            ),
            dlq,
            metrics,
        }
    }

    /// Whether a record that fails to convert is needed as bytes afterwards: for
    /// the dead-letter queue or the log (`errors.log.include.messages`). It
    /// holds whenever [`ErrorPolicy::keeps_originals`] does.
    pub fn needs_failed_bytes(&self) -> bool {
        self.dlq.is_some() || (self.log && self.log_messages)
    }

    /// Whether failed records should keep their original bytes (to dead-letter them).
    pub fn keeps_originals(&self) -> bool {
        self.tolerate_all && self.dlq.is_some()
    }

    /// A fresh retry budget for a retriable failure of the task's source or
    /// destination (`poll`, `put`, a commit): by default, until it succeeds or
    /// the task is stopped (`task.retry.timeout.ms`), as Connect retries a
    /// `RetriableException` from `poll` or `put`.
    pub fn task_backoff(&self) -> Backoff {
        Backoff::new(FIRST_RETRY_DELAY, self.task_retry_delay_max).within(self.task_retry_timeout)
    }

    /// Deals with one failed record: `Ok` once it is tolerated (counted, logged if
    /// asked, and acknowledged by the dead-letter queue if there is one), or the
    /// error that must fail the task, saying where and which record.
    pub async fn handle(&self, failure: Failure) -> Result<(), ConnectError> {
        let Failure {
            stage,
            class_name,
            original,
            error,
        } = failure;
        let at = original.coordinates();
        if !self.tolerate_all {
            return Err(ConnectError::new(
                error.kind(),
                format!(
                    "{} failed for record {at} ({class_name}): {}",
                    stage.as_str(),
                    error.message()
                ),
            )
            .with_source(error));
        }
        TaskMetrics::add(&self.metrics.failed_by_stage[stage.index()], 1);
        if self.log {
            let record = if self.log_messages {
                preview(&original)
            } else {
                at.clone()
            };
            tracing::error!(
                connector = %self.connector,
                task = self.task,
                stage = stage.as_str(),
                class = %class_name,
                record = %record,
                error = %error.chain(),
                "record failed; tolerated (errors.tolerance=all)"
            );
        }
        if let Some(dlq) = &self.dlq {
            dlq.send(&Failure {
                stage,
                class_name,
                original,
                error,
            })
            .await?;
            TaskMetrics::add(&self.metrics.dlq_by_stage[stage.index()], 1);
        }
        Ok(())
    }
}

/// Coordinates, key and value, shortened, for `errors.log.include.messages`.
fn preview(o: &Original) -> String {
    let text = |b: &Option<Vec<u8>>| match b {
        None => "null".to_owned(),
        Some(b) => {
            let s = String::from_utf8_lossy(b);
            if s.len() > 200 {
                format!("{}…", &s[..s.floor_char_boundary(200)])
            } else {
                s.into_owned()
            }
        }
    };
    format!(
        "{} key={} value={}",
        o.coordinates(),
        text(&o.key),
        text(&o.value)
    )
}

/// A record read from Kafka, by topic, partition and offset.
pub type RecordId = (Arc<str>, i32, i64);

/// The reporter a sink task gets: per-record destination failures (TASK_PUT),
/// matched back to the bytes they were read as.
pub struct SinkReporter {
    pub policy: ErrorPolicy,
    pub class_name: String,
    /// Originals of the records put and not yet settled, by (topic,
    /// partition, offset); filled only when a dead-letter queue needs them.
    pub originals: std::sync::Mutex<Originals>,
}

impl SinkReporter {
    /// Releases the originals of records below committed offsets: settled.
    pub fn release(&self, committed: &[(TopicPartition, i64)]) {
        let mut originals = self.lock_originals();
        for (tp, offset) in committed {
            originals.release(&tp.topic, tp.partition, *offset);
        }
    }

    /// Releases the originals of partitions the task gave up.
    pub fn forget(&self, partitions: &[TopicPartition]) {
        let mut originals = self.lock_originals();
        for tp in partitions {
            originals.forget(&tp.topic, tp.partition);
        }
    }

    fn lock_originals(&self) -> std::sync::MutexGuard<'_, Originals> {
        self.originals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ErrantRecordReporter for SinkReporter {
    async fn report(&self, record: &Record, error: &ConnectError) -> Result<(), ConnectError> {
        let key = (
            record.topic.clone(),
            record.partition.unwrap_or(-1),
            record.offset.unwrap_or(-1),
        );
        let found = self.lock_originals().take(&key);
        let original = found.unwrap_or_else(|| Original {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            key: None,
            value: None,
            headers: record.headers.clone(),
        });
        let error = ConnectError::new(error.kind(), error.chain());
        self.policy
            .handle(Failure {
                stage: Stage::TaskPut,
                class_name: self.class_name.clone(),
                original,
                error,
            })
            .await
    }
}
