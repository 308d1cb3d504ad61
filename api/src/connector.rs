//! Source and sink connectors and their tasks: the lifecycle the runtime drives.
//!
//! A connector is configured once, then splits its work into at most `tasks.max`
//! task configurations; the runtime runs one task per configuration.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::ConnectError;
use crate::record::{Record, SourceOffset, SourcePartition};
use crate::report::ErrantRecordReporter;

/// A connector's or task's configuration: Connect's string-to-string map.
pub type TaskConfig = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
/// A Kafka topic partition.
pub struct TopicPartition {
    /// The topic's name.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// Topic `topic`, partition `partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Kafka offsets by partition. Values are Kafka's commit convention: the offset of
/// the *next* record to read.
pub type OffsetMap = BTreeMap<TopicPartition, i64>;

/// A source connector: configured once, it says how its work splits into tasks.
pub trait SourceConnector: Send {
    /// Receives the connector's configuration (already validated against its
    /// `ConfigDef`, with secrets resolved).
    fn start(&mut self, config: &TaskConfig) -> Result<(), ConnectError>;
    /// Splits the work into at most `max_tasks` task configurations.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError>;
    /// A task instance; the runtime starts it with one of the task configurations.
    fn create_task(&self) -> Box<dyn SourceTask>;
    /// The connector is stopping (after its tasks).
    fn stop(&mut self) {}
}

/// What a source task is given on start.
#[derive(Debug, Clone)]
pub struct SourceTaskContext {
    /// The connector's name.
    pub connector: String,
    /// This task's number, from 0.
    pub task_id: u32,
    /// This task's configuration, as `task_configs` made it.
    pub config: TaskConfig,
    /// The last stored offset of every source partition of this connector.
    pub offsets: Vec<(SourcePartition, SourceOffset)>,
    /// Where the task reports metrics of its own (shown on `/metrics`).
    pub metrics: crate::TaskMetricsHandle,
}

impl SourceTaskContext {
    /// The stored offset of one source partition, as Connect's `OffsetStorageReader`.
    pub fn offset(&self, partition: &SourcePartition) -> Option<&SourceOffset> {
        self.offsets
            .iter()
            .find(|(p, _)| p == partition)
            .map(|(_, o)| o)
    }
}

/// A source task: polls batches of records from the source system.
#[async_trait]
pub trait SourceTask: Send {
    /// Starts the task: connect, and resume from `context.offsets`.
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError>;

    /// Returns the next batch of records. When there is nothing to read it should
    /// wait a little (up to about a second) and return an empty batch, so the
    /// runtime can flush offsets and notice a shutdown between calls.
    async fn poll(&mut self) -> Result<Vec<Record>, ConnectError>;

    /// Called once the offsets below are durably stored: every record up to them is
    /// in Kafka. A source that must acknowledge upstream (Postgres confirming an LSN)
    /// does it here, and only here.
    async fn commit(
        &mut self,
        _stored: &[(SourcePartition, SourceOffset)],
    ) -> Result<(), ConnectError> {
        Ok(())
    }

    /// The task is stopping: release connections. Nothing polled after the
    /// last `commit` is stored; a restart resumes from the stored offsets.
    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

/// A sink connector: configured once, it says how its work splits into tasks.
pub trait SinkConnector: Send {
    /// Receives the connector's configuration (already validated against its
    /// `ConfigDef`, with secrets resolved).
    fn start(&mut self, config: &TaskConfig) -> Result<(), ConnectError>;
    /// Splits the work into at most `max_tasks` task configurations (Kafka
    /// spreads the topics' partitions among them).
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError>;
    /// A task instance; the runtime starts it with one of the task configurations.
    fn create_task(&self) -> Box<dyn SinkTask>;
    /// The connector is stopping (after its tasks).
    fn stop(&mut self) {}
}

/// What a sink task is given on start.
#[derive(Clone)]
pub struct SinkTaskContext {
    /// The connector's name.
    pub connector: String,
    /// This task's number, from 0.
    pub task_id: u32,
    /// This task's configuration, as `task_configs` made it.
    pub config: TaskConfig,
    /// Where to send records the destination rejects; follows the connector's
    /// `errors.*` policy.
    pub reporter: std::sync::Arc<dyn ErrantRecordReporter>,
    /// Where the task asks to read partitions again from.
    pub rewinds: std::sync::Arc<Rewinds>,
    /// Where the task reports metrics of its own (shown on `/metrics`).
    pub metrics: crate::TaskMetricsHandle,
}

/// Offsets a sink task asks to read again from, as Connect's
/// `SinkTaskContext.offset(...)`. A task that has lost records it buffered (an
/// upload failed half-way) rewinds their partitions to where those records
/// began and reports the failure as retriable; the runtime then seeks, and
/// delivers those partitions again from there.
#[derive(Debug, Default)]
pub struct Rewinds(std::sync::Mutex<OffsetMap>);

impl Rewinds {
    /// Asks to read `partition` again from `offset` (the lowest request wins).
    pub fn request(&self, partition: TopicPartition, offset: i64) {
        let mut map = self.lock();
        let entry = map.entry(partition).or_insert(offset);
        *entry = (*entry).min(offset);
    }

    /// The requests made since the last call.
    pub fn take(&self) -> OffsetMap {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OffsetMap> {
        // Whole entries are inserted under the lock; a poisoned map is consistent.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A sink task: takes batches of records read from Kafka and writes them to
/// the destination, saying which offsets are safe to commit.
#[async_trait]
pub trait SinkTask: Send {
    /// Starts the task: connect to the destination.
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError>;

    /// Partitions newly assigned to this task. A sink that stores its own offsets in
    /// the destination (to write rows and offsets in one transaction) returns where
    /// to resume each partition; otherwise the group's committed offsets are used.
    async fn open(
        &mut self,
        _partitions: &[crate::connector::TopicPartition],
    ) -> Result<OffsetMap, ConnectError> {
        Ok(OffsetMap::new())
    }

    /// Whether `put` looks at record headers; asked once, after `start`. A task
    /// that never does (one writing only values) says no, and the runtime
    /// skips decoding them unless a transform or the error policy needs them:
    /// librdkafka builds a list per record when headers are read.
    fn reads_headers(&self) -> bool {
        true
    }

    /// Accepts a batch of records. It may write them now or buffer them until
    /// [`SinkTask::pre_commit`].
    async fn put(&mut self, records: Vec<Record>) -> Result<(), ConnectError>;

    /// Whether [`SinkTask::put_json`] may be given batches whose values are
    /// still JSON text; asked once, after `start`. A columnar sink says yes:
    /// it decodes the text straight into its columns, with no Connect value
    /// in between. The runtime uses it only for batches no transform needs
    /// decoded, read by a converter of schemaless JSON, which has checked that
    /// each value decodes (a value that does not is the converter's failure, as
    /// always, and never reaches the task).
    fn takes_json_values(&self) -> bool {
        false
    }

    /// As [`SinkTask::put`], for a task that [takes JSON values](SinkTask::takes_json_values):
    /// each record's value is `Value::Bytes` holding one schemaless JSON
    /// document (valid: [`crate::json::parse_schemaless`] reads it), or
    /// `Value::Null` for a record with no value; `value_schema` is `None`.
    async fn put_json(&mut self, _records: Vec<Record>) -> Result<(), ConnectError> {
        Err(ConnectError::fatal(
            "this sink task does not take JSON values",
        ))
    }

    /// Given the offsets consumed so far, makes durable what it can and returns the
    /// offsets that are safe to commit (each covering only records that are in the
    /// destination). The default flushes everything and returns all of them.
    async fn pre_commit(&mut self, offsets: &OffsetMap) -> Result<OffsetMap, ConnectError> {
        self.flush(offsets).await?;
        Ok(offsets.clone())
    }

    /// Makes every record put so far durable.
    async fn flush(&mut self, _offsets: &OffsetMap) -> Result<(), ConnectError> {
        Ok(())
    }

    /// Partitions taken away: drop any state kept for them.
    async fn close(&mut self, _partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        Ok(())
    }

    /// The task is stopping, after a last commit: release connections.
    /// Records not yet made durable are read again by the next owner.
    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

/// Splits `items` into at most `groups` contiguous, nearly equal groups, as
/// Connect's `ConnectorUtils.groupPartitions`; no group is empty.
pub fn group_partitions<T: Clone>(items: &[T], groups: usize) -> Vec<Vec<T>> {
    let groups = groups.min(items.len()).max(1);
    let base = items.len() / groups;
    let extra = items.len() % groups;
    let mut out = Vec::with_capacity(groups);
    let mut start = 0;
    for g in 0..groups {
        let len = base + usize::from(g < extra);
        out.push(items[start..start + len].to_vec());
        start += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_balanced_and_complete() {
        let items: Vec<i32> = (0..10).collect();
        let groups = group_partitions(&items, 3);
        assert_eq!(
            groups.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![4, 3, 3]
        );
        assert_eq!(groups.concat(), items);
        assert_eq!(group_partitions(&items[..2], 5).len(), 2);
    }
}
