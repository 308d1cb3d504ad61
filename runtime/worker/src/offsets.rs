//! Source offsets in standalone mode: one JSON file, rewritten atomically (write a
//! temporary file, fsync, rename, fsync the directory), so a crash leaves either
//! the old or the new state, never a torn one.
//!
//! Beside each connector's source offsets the file keeps, per topic it writes, the
//! partition count and the highest Kafka offset of its records that the stored
//! offsets cover. Idempotent resume reads Kafka from just past those marks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sluice_api::{SourceOffset, SourcePartition};

use crate::error::WorkerError;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StoredOffset {
    pub partition: SourcePartition,
    pub offset: SourceOffset,
}

/// What the idempotent resume needs to know about one topic a connector writes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TopicMark {
    /// Partition count when the marks were taken; a change means keys moved.
    pub partitions: i32,
    /// Per Kafka partition, the highest offset of this connector's records covered
    /// by the stored source offsets.
    pub acked: BTreeMap<i32, i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ConnectorOffsets {
    pub offsets: Vec<StoredOffset>,
    pub topics: BTreeMap<String, TopicMark>,
}

impl ConnectorOffsets {
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

    /// Raises the marks of `topic` to at least `acked`.
    pub fn raise_marks(&mut self, topic: &str, partitions: i32, acked: &BTreeMap<i32, i64>) {
        let mark = self.topics.entry(topic.to_owned()).or_default();
        mark.partitions = partitions;
        for (p, o) in acked {
            let e = mark.acked.entry(*p).or_insert(*o);
            *e = (*e).max(*o);
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OffsetFile {
    version: u32,
    connectors: BTreeMap<String, ConnectorOffsets>,
}

pub struct FileOffsetStore {
    path: PathBuf,
    state: Mutex<OffsetFile>,
}

impl FileOffsetStore {
    /// Opens the store, creating nothing until the first commit.
    pub fn open(path: &Path) -> Result<Self, WorkerError> {
        let err = |message: String| WorkerError::OffsetStore {
            path: path.display().to_string(),
            message,
        };
        let state = match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| err(format!("corrupt: {e}")))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => OffsetFile {
                version: 1,
                ..Default::default()
            },
            Err(e) => return Err(err(format!("cannot read: {e}"))),
        };
        Ok(Self {
            path: path.to_owned(),
            state: Mutex::new(state),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn connector(&self, name: &str) -> ConnectorOffsets {
        self.lock()
            .connectors
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Applies `update` to one connector's entry and writes the file durably
    /// before returning. Blocking: call it off the async threads.
    pub fn commit(
        &self,
        name: &str,
        update: impl FnOnce(&mut ConnectorOffsets),
    ) -> Result<(), WorkerError> {
        let mut state = self.lock();
        let mut next = state.connectors.get(name).cloned().unwrap_or_default();
        update(&mut next);
        if state.connectors.get(name) == Some(&next) {
            return Ok(());
        }
        let previous = state.connectors.insert(name.to_owned(), next);
        if let Err(e) = self.write(&state) {
            // Keep memory equal to disk, so a retry writes the whole update again.
            match previous {
                Some(p) => state.connectors.insert(name.to_owned(), p),
                None => state.connectors.remove(name),
            };
            return Err(e);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OffsetFile> {
        // A panic while holding the lock cannot leave the state half-updated (we
        // replace whole entries), so a poisoned lock is still safe to use.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self, state: &OffsetFile) -> Result<(), WorkerError> {
        let err = |message: String| WorkerError::OffsetStore {
            path: self.path.display().to_string(),
            message,
        };
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| err(e.to_string()))?;
        crate::durable::replace(&self.path, &bytes).map_err(|e| err(format!("cannot write: {e}")))
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
    fn commits_survive_reopen_and_marks_only_rise() {
        let dir = std::env::temp_dir().join(format!("sluice-offsets-{}", std::process::id()));
        let path = dir.join("nested/offsets.json");
        let store = FileOffsetStore::open(&path).unwrap();
        let part = map(json!({"task": 0}));
        store
            .commit("gen", |c| {
                c.upsert(&part, map(json!({"seq": 10})));
                c.raise_marks("t", 4, &BTreeMap::from([(0, 100), (1, 5)]));
            })
            .unwrap();
        store
            .commit("gen", |c| {
                c.upsert(&part, map(json!({"seq": 20})));
                c.raise_marks("t", 4, &BTreeMap::from([(0, 90), (2, 7)]));
            })
            .unwrap();
        let reopened = FileOffsetStore::open(&path).unwrap().connector("gen");
        assert_eq!(
            reopened.offsets,
            vec![StoredOffset {
                partition: part,
                offset: map(json!({"seq": 20}))
            }]
        );
        assert_eq!(
            reopened.topics["t"].acked,
            BTreeMap::from([(0, 100), (1, 5), (2, 7)])
        );
        assert!(!path.with_extension("tmp").exists());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("sluice-offsets-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("o.json");
        std::fs::write(&path, "{oops").unwrap();
        let e = FileOffsetStore::open(&path).err().unwrap().to_string();
        assert!(e.contains("corrupt"), "{e}");
        std::fs::remove_dir_all(dir).ok();
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
