//! The standalone worker's connector config store: every connector created,
//! changed, paused or stopped over REST, in one JSON file beside the offsets
//! file, so those changes survive a restart. Values are kept as written, with
//! `${env:...}` references unresolved, so secrets written in clear are in it:
//! the file is made readable by the worker's user only (0600).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::configs::{ConfigBackingStore, StoredConnector};
use crate::error::WorkerError;

#[derive(Debug, Default, Serialize, Deserialize)]
struct ConfigFile {
    version: u32,
    connectors: BTreeMap<String, StoredConnector>,
}

pub struct FileConfigStore {
    path: PathBuf,
    state: Mutex<ConfigFile>,
}

impl FileConfigStore {
    /// The store that sits beside `offsets` (`x/offsets.json` → `x/offsets.connectors.json`).
    pub fn beside(offsets: &Path) -> PathBuf {
        let stem = offsets
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sluice".into());
        offsets.with_file_name(format!("{stem}.connectors.json"))
    }

    pub fn open(path: &Path) -> Result<Self, WorkerError> {
        let state = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| WorkerError::ConfigStore {
                path: path.display().to_string(),
                message: format!("corrupt: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigFile {
                version: 1,
                ..Default::default()
            },
            Err(e) => {
                return Err(WorkerError::ConfigStore {
                    path: path.display().to_string(),
                    message: format!("cannot read: {e}"),
                })
            }
        };
        Ok(Self {
            path: path.to_owned(),
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConfigFile> {
        // Whole entries are replaced under the lock; a poisoned one is consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ConfigBackingStore for FileConfigStore {
    fn all(&self) -> BTreeMap<String, StoredConnector> {
        self.lock().connectors.clone()
    }

    fn create(&self, name: &str, entry: StoredConnector) -> Result<bool, WorkerError> {
        let mut state = self.lock();
        if state.connectors.contains_key(name) {
            return Ok(false);
        }
        self.write(&mut state, name, Some(entry)).map(|()| true)
    }

    fn put(&self, name: &str, entry: Option<StoredConnector>) -> Result<(), WorkerError> {
        let mut state = self.lock();
        self.write(&mut state, name, entry)
    }
}

impl FileConfigStore {
    /// Changes one entry and writes the file, or leaves both as they were.
    fn write(
        &self,
        state: &mut ConfigFile,
        name: &str,
        entry: Option<StoredConnector>,
    ) -> Result<(), WorkerError> {
        let previous = match entry {
            Some(e) => state.connectors.insert(name.to_owned(), e),
            None => state.connectors.remove(name),
        };
        let written = serde_json::to_vec_pretty(&*state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::durable::replace_private(&self.path, &bytes));
        if let Err(e) = written {
            // Keep memory equal to disk.
            match previous {
                Some(p) => state.connectors.insert(name.to_owned(), p),
                None => state.connectors.remove(name),
            };
            return Err(WorkerError::ConfigStore {
                path: self.path.display().to_string(),
                message: format!("cannot write: {e}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::control::TargetState;
    use sluice_api::TaskConfig;

    #[test]
    fn the_store_is_readable_by_its_owner_only() {
        let dir = std::env::temp_dir().join(format!("sluice-store-mode-{}", std::process::id()));
        let path = dir.join("offsets.connectors.json");
        std::fs::create_dir_all(&dir).unwrap();
        // A file left world-readable by an older version is replaced by a private one.
        std::fs::write(&path, r#"{"version":1,"connectors":{}}"#).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = FileConfigStore::open(&path).unwrap();
        let config = TaskConfig::from([("database.password".to_owned(), "pw".to_owned())]);
        store
            .put(
                "c",
                Some(StoredConnector {
                    config,
                    target_state: TargetState::Running,
                }),
            )
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(dir).ok();
    }
}
