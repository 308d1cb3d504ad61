//! Source offsets: what a source connector has stored, and the store behind
//! them (Connect's `OffsetBackingStore`). Standalone keeps them in a file
//! (`offset_file.rs`); distributed mode in the offsets topic.
//!
//! Beside each connector's source offsets the store keeps, per topic it writes,
//! the partition count and the highest Kafka offset of its records that the
//! stored offsets cover. Idempotent resume reads Kafka from just past those marks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_api::{SourceOffset, SourcePartition};

use crate::error::WorkerError;

/// A change to one connector's offsets, applied to the stored value.
pub type OffsetUpdate<'a> = Box<dyn FnOnce(&mut StoredOffsets) + 'a>;

/// Where source offsets live. Both calls block (a file write, or a produce
/// acknowledged by Kafka): call them off the async threads.
pub trait OffsetBackingStore: Send + Sync {
    /// Waits until the view holds every commit acknowledged, on any worker,
    /// before the call. A store only this worker writes is always there.
    fn read_to_end(&self) -> Result<(), WorkerError> {
        Ok(())
    }

    /// One connector's stored offsets and marks (empty when it has none).
    fn connector(&self, name: &str) -> StoredOffsets;

    /// Applies `update` to one connector's entry and returns once the result is
    /// durable; on an error nothing of it is visible to `connector`.
    fn commit(&self, name: &str, update: OffsetUpdate<'_>) -> Result<(), WorkerError>;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StoredOffset {
    pub partition: SourcePartition,
    pub offset: SourceOffset,
}

/// What the idempotent resume needs to know about one topic a task writes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TopicMark {
    /// Partition count when the marks were taken; a change means keys moved.
    pub partitions: i32,
    /// Per Kafka partition, the highest offset of this task's records covered
    /// by its stored source offsets.
    pub acked: BTreeMap<i32, i64>,
}

/// A connector's stored offsets, and per task and topic the marks they cover.
///
/// Marks are per task, not per connector: tasks stop and fail apart (in
/// distributed mode on different workers), and one task's commit covers
/// only its own records. A connector-wide mark raised by task 1 would let
/// task 0, restarted, scan past its own records that no stored offset
/// covers, and send them again. (Files of earlier versions kept one set per
/// connector under `topics`; it is ignored, so their first start scans whole
/// topics once.)
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StoredOffsets {
    pub offsets: Vec<StoredOffset>,
    #[serde(default)]
    pub marks: BTreeMap<u32, BTreeMap<String, TopicMark>>,
}

impl StoredOffsets {
    /// Sets or replaces one source partition's offset.
    pub fn upsert(&mut self, partition: &SourcePartition, offset: SourceOffset) {
        match self.offsets.iter_mut().find(|s| &s.partition == partition) {
            Some(s) => s.offset = offset,
            None => self.offsets.push(StoredOffset {
                partition: partition.clone(),
                offset,
            }),
        }
    }

    /// The marks `task` stored for `topic`.
    pub fn mark(&self, task: u32, topic: &str) -> Option<&TopicMark> {
        self.marks.get(&task)?.get(topic)
    }

    /// Raises the marks of `task` for `topic` to at least `acked`.
    pub fn raise_marks(
        &mut self,
        task: u32,
        topic: &str,
        partitions: i32,
        acked: &BTreeMap<i32, i64>,
    ) {
        let mark = self
            .marks
            .entry(task)
            .or_default()
            .entry(topic.to_owned())
            .or_default();
        mark.partitions = partitions;
        for (p, o) in acked {
            let e = mark.acked.entry(*p).or_insert(*o);
            *e = (*e).max(*o);
        }
    }
}

/// The canonical text of `["<connector>", {partition}]`, Connect's offset key: keys
/// sorted at every level, so equal partitions give equal text whatever order
/// their keys were inserted in.
pub fn partition_key(connector: &str, partition: &SourcePartition) -> String {
    fn canonical(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let sorted: BTreeMap<&String, serde_json::Value> =
                    m.iter().map(|(k, v)| (k, canonical(v))).collect();
                serde_json::Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.iter().map(canonical).collect())
            }
            other => other.clone(),
        }
    }
    let p = canonical(&serde_json::Value::Object(partition.clone()));
    serde_json::json!([connector, p]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn partition_keys_are_canonical() {
        let a = map(json!({"b": 1, "a": {"y": 2, "x": 1}}));
        let mut b = serde_json::Map::new();
        b.insert("a".into(), json!({"x": 1, "y": 2}));
        b.insert("b".into(), json!(1));
        assert_eq!(partition_key("c", &a), partition_key("c", &b));
        assert_eq!(partition_key("c", &a), r#"["c",{"a":{"x":1,"y":2},"b":1}]"#);
    }
}
