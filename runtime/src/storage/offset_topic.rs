//! Source offsets in distributed mode: the offsets topic, in Connect's format,
//! so a Connect user's tooling reads them. A source partition's offset is the
//! record keyed `["<connector>", {partition}]` (keys sorted, see
//! `partition_key`) with the offset as its JSON value; a reset is a
//! tombstone.
//!
//! The resume marks (per task and topic: the partition count and the highest
//! Kafka offset the task's stored offsets cover) are records keyed
//! `["__sluice.marks", "<connector>", <task>, "<topic>"]`. Connect reads only
//! two-element keys and skips these. A commit writes its offsets before its
//! marks (they are in other partitions of the topic, so only waiting orders
//! them): marks may lag the offsets after a crash, which costs a longer scan,
//! but never lead them, which would skip records no offset covers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tracing::debug;

use super::kafka_log::{Entry, KafkaLog, LogRecord};
use super::offset_store::{
    partition_key, OffsetBackingStore, OffsetUpdate, StoredOffsets, TopicMark,
};
use crate::config::WorkerConfig;
use crate::error::WorkerError;

/// The first element of a marks key; no connector has this name (names
/// with `__sluice.` are not special to Connect, but a connector named so would
/// only lose its marks, which costs a scan, never a record).
const MARKS: &str = "__sluice.marks";

type View = Arc<Mutex<BTreeMap<String, StoredOffsets>>>;

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
}

fn lock(view: &View) -> std::sync::MutexGuard<'_, BTreeMap<String, StoredOffsets>> {
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
        [Value::String(m), Value::String(connector), Value::Number(task), Value::String(topic)]
            if m == MARKS =>
        {
            let Some(task) = task.as_u64().and_then(|t| u32::try_from(t).ok()) else {
                return;
            };
            let entry = view.entry(connector.clone()).or_default();
            match value.and_then(|v| serde_json::from_value::<TopicMark>(v).ok()) {
                Some(mark) => {
                    entry
                        .marks
                        .entry(task)
                        .or_default()
                        .insert(topic.clone(), mark);
                }
                None => {
                    if let Some(m) = entry.marks.get_mut(&task) {
                        m.remove(topic);
                        if m.is_empty() {
                            entry.marks.remove(&task);
                        }
                    }
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

fn marks_key(connector: &str, task: u32, topic: &str) -> Vec<u8> {
    serde_json::json!([MARKS, connector, task, topic])
        .to_string()
        .into_bytes()
}

/// The records that take `before` to `after`: the offsets', then the marks'.
fn diff(
    connector: &str,
    before: &StoredOffsets,
    after: &StoredOffsets,
) -> Result<(Vec<Entry>, Vec<Entry>), WorkerError> {
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
    let mut marks = Vec::new();
    for (task, topics) in &after.marks {
        for (topic, mark) in topics {
            if before.mark(*task, topic) != Some(mark) {
                marks.push((marks_key(connector, *task, topic), Some(to_json(mark)?)));
            }
        }
    }
    for (task, topics) in &before.marks {
        for topic in topics.keys() {
            if after.mark(*task, topic).is_none() {
                marks.push((marks_key(connector, *task, topic), None));
            }
        }
    }
    Ok((out, marks))
}

impl OffsetBackingStore for KafkaOffsetStore {
    fn read_to_end(&self) -> Result<(), WorkerError> {
        self.log.read_to_end()
    }

    fn connector(&self, name: &str) -> StoredOffsets {
        lock(&self.view).get(name).cloned().unwrap_or_default()
    }

    fn commit(&self, name: &str, update: OffsetUpdate<'_>) -> Result<(), WorkerError> {
        let before = self.connector(name);
        let mut after = before.clone();
        update(&mut after);
        let (offsets, marks) = diff(name, &before, &after)?;
        if !offsets.is_empty() {
            self.log.append(&offsets)?;
        }
        if !marks.is_empty() {
            self.log.append(&marks)?;
        }
        Ok(())
    }
}
