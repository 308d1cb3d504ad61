//! Source offsets in standalone mode: one JSON file, rewritten atomically (write a
//! temporary file, fsync, rename, fsync the directory), so a crash leaves either
//! the old or the new state, never a torn one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::offset_store::{OffsetBackingStore, OffsetUpdate, StoredOffsets};
use crate::error::WorkerError;

#[derive(Debug, Default, Serialize, Deserialize)]
struct OffsetFile {
    version: u32,
    connectors: BTreeMap<String, StoredOffsets>,
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

impl OffsetBackingStore for FileOffsetStore {
    fn connector(&self, name: &str) -> StoredOffsets {
        self.lock()
            .connectors
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    fn commit(&self, name: &str, update: OffsetUpdate<'_>) -> Result<(), WorkerError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::offset_store::StoredOffset;
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
            .commit(
                "gen",
                Box::new(|c| {
                    c.upsert(&part, map(json!({"seq": 10})));
                    c.raise_marks(0, "t", 4, &BTreeMap::from([(0, 100), (1, 5)]));
                }),
            )
            .unwrap();
        store
            .commit(
                "gen",
                Box::new(|c| {
                    c.upsert(&part, map(json!({"seq": 20})));
                    c.raise_marks(0, "t", 4, &BTreeMap::from([(0, 90), (2, 7)]));
                }),
            )
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
            reopened.marks[&0]["t"].acked,
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
}
