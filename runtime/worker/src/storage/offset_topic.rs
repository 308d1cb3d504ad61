//! Source offsets in distributed mode: the offsets topic, in Connect's format,
//! so a Connect user's tooling reads them. A source partition's offset is the
//! record keyed `["<connector>", {partition}]` (keys sorted, see
//! `partition_key`) with the offset as its JSON value; a reset is a
//! tombstone.
//!
//! The resume marks (per topic a connector writes: its partition count and
//! the highest Kafka offset the stored offsets cover) are records keyed
//! `["__sluice.marks", "<connector>", "<topic>"]`. Connect reads only
//! two-element keys and skips these.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tracing::debug;

use super::kafka_log::{Entry, KafkaLog, LogRecord};
use super::offsets::{
    partition_key, ConnectorOffsets, OffsetBackingStore, OffsetUpdate, TopicMark,
};
use crate::config::WorkerConfig;
use crate::error::WorkerError;

/// The first element of a marks key; no connector has this name (names
/// with `__sluice.` are not special to Connect, but a connector named so would
/// only lose its marks, which costs a scan, never a record).
const MARKS: &str = "__sluice.marks";

type View = Arc<Mutex<BTreeMap<String, ConnectorOffsets>>>;

pub struct KafkaOffsetStore {
    log: KafkaLog,
    view: View,
}

impl KafkaOffsetStore {
    /// Reads the offsets topic to its end.
    pub fn open(
        worker: &WorkerConfig,
        topic: &str,
        timeout: Duration,
    ) -> Result<Self, WorkerError> {
        let view: View = Arc::default();
        let v = view.clone();
        let log = KafkaLog::open(worker, topic, timeout, move |r| apply(&v, &r))?;
        Ok(Self { log, view })
    }

    /// Reads what other workers stored before now (a task that moved here
    /// must start from its last owner's offsets).
    pub fn read_to_end(&self) -> Result<(), WorkerError> {
        self.log.read_to_end()
    }
}

fn lock(view: &View) -> std::sync::MutexGuard<'_, BTreeMap<String, ConnectorOffsets>> {
    // Whole entries are replaced under the lock; a poisoned one is consistent.
    view.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn apply(view: &View, record: &LogRecord<'_>) {
    let Some(key) = record
        .key
        .and_then(|k| serde_json::from_slice::<Vec<Value>>(k).ok())
    else {
        debug!(
            partition = record.partition,
            offset = record.offset,
            "skipping an offsets record whose key is not a JSON array"
        );
        return;
    };
    let value: Option<Value> = record.value.and_then(|v| serde_json::from_slice(v).ok());
    let mut view = lock(view);
    match key.as_slice() {
        [Value::String(connector), Value::Object(partition)] => {
            let entry = view.entry(connector.clone()).or_default();
            match value {
                Some(Value::Object(offset)) => entry.upsert(partition, offset),
                _ => entry.offsets.retain(|s| &s.partition != partition),
            }
        }
        [Value::String(m), Value::String(connector), Value::String(topic)] if m == MARKS => {
            let entry = view.entry(connector.clone()).or_default();
            match value.and_then(|v| serde_json::from_value::<TopicMark>(v).ok()) {
                Some(mark) => {
                    entry.topics.insert(topic.clone(), mark);
                }
                None => {
                    entry.topics.remove(topic);
                }
            }
        }
        _ => debug!(
            partition = record.partition,
            offset = record.offset,
            "skipping an offsets record of another shape"
        ),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, WorkerError> {
    serde_json::to_vec(value)
        .map_err(|e| WorkerError::Other(format!("cannot encode a record: {e}")))
}

fn marks_key(connector: &str, topic: &str) -> Vec<u8> {
    serde_json::json!([MARKS, connector, topic])
        .to_string()
        .into_bytes()
}

/// The records that take `before` to `after`.
fn diff(
    connector: &str,
    before: &ConnectorOffsets,
    after: &ConnectorOffsets,
) -> Result<Vec<Entry>, WorkerError> {
    let mut out = Vec::new();
    for s in &after.offsets {
        let old = before.offsets.iter().find(|o| o.partition == s.partition);
        if old.map(|o| &o.offset) != Some(&s.offset) {
            out.push((
                partition_key(connector, &s.partition).into_bytes(),
                Some(to_json(&s.offset)?),
            ));
        }
    }
    for o in &before.offsets {
        if !after.offsets.iter().any(|s| s.partition == o.partition) {
            out.push((partition_key(connector, &o.partition).into_bytes(), None));
        }
    }
    for (topic, mark) in &after.topics {
        if before.topics.get(topic) != Some(mark) {
            out.push((marks_key(connector, topic), Some(to_json(mark)?)));
        }
    }
    for topic in before.topics.keys() {
        if !after.topics.contains_key(topic) {
            out.push((marks_key(connector, topic), None));
        }
    }
    Ok(out)
}

impl OffsetBackingStore for KafkaOffsetStore {
    fn connector(&self, name: &str) -> ConnectorOffsets {
        lock(&self.view).get(name).cloned().unwrap_or_default()
    }

    fn commit(&self, name: &str, update: OffsetUpdate<'_>) -> Result<(), WorkerError> {
        let before = self.connector(name);
        let mut after = before.clone();
        update(&mut after);
        let records = diff(name, &before, &after)?;
        if records.is_empty() {
            return Ok(());
        }
        self.log.append(&records)
    }
}
