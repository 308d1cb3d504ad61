//! The audit tier's manifest chain, and its verification.
//!
//! Beside each data file of a Kafka partition the sink writes a manifest:
//! the file's key, offset range, record count, the SHA-256 of the object, and
//! the SHA-256 of the partition's previous manifest. Manifests hold nothing that
//! changes on a replay (no wall-clock time), so rewriting a file after a crash
//! rewrites an identical manifest and the chain stays whole.
//!
//! `verify` reads only. Per partition it proves that offsets are contiguous (no
//! gap, no overlap), that every object matches its hash, that no data object
//! lacks a manifest, and that every link of the chain holds, naming the first
//! break it finds.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_api::ConnectError;

use crate::file_set::PartitionKey;
use crate::storage::{ObjectStore, PutOptions};

pub const MANIFEST_DIR: &str = "_manifests";
const MANIFEST_SUFFIX: &str = ".manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub object: String,
    pub topic: String,
    pub partition: i32,
    pub start_offset: i64,
    pub end_offset: i64,
    pub record_count: u64,
    pub sha256: String,
    /// `None` for a partition's first file.
    pub previous_manifest_sha256: Option<String>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<dir>/_manifests/<file>.manifest.json` for the data object `<dir>/<file>`.
pub fn manifest_key(object: &str) -> String {
    let (dir, file) = object.rsplit_once('/').unwrap_or(("", object));
    format!("{dir}/{MANIFEST_DIR}/{file}{MANIFEST_SUFFIX}")
}

fn is_manifest(key: &str) -> bool {
    key.ends_with(MANIFEST_SUFFIX) && key.contains(&format!("/{MANIFEST_DIR}/"))
}

/// The start offset encoded in a file name `<topic>+<partition>+<start>.<ext>`.
fn start_offset_of(key: &str) -> Option<i64> {
    let file = key.rsplit('/').next()?;
    let file = file.strip_suffix(MANIFEST_SUFFIX).unwrap_or(file);
    let (_, rest) = file.rsplit_once('+')?;
    rest.split('.').next()?.parse().ok()
}

/// Finds the last manifest of a partition directory before `start`, returning
/// its start offset and SHA-256: the link the next manifest must carry.
pub async fn previous_link(
    storage: &dyn ObjectStore,
    partition_dir: &str,
    start: i64,
) -> Result<Option<(i64, String)>, ConnectError> {
    let prefix = format!("{partition_dir}/{MANIFEST_DIR}/");
    let best = storage
        .list(&prefix)
        .await?
        .into_iter()
        .filter(|k| is_manifest(k))
        .filter_map(|k| start_offset_of(&k).map(|s| (s, k)))
        .filter(|(s, _)| *s < start)
        .max_by_key(|(s, _)| *s);
    let Some((s, key)) = best else {
        return Ok(None);
    };
    let bytes = storage.get(&key).await?.ok_or_else(|| {
        ConnectError::fatal(format!("manifest '{key}' vanished while reading the chain"))
    })?;
    Ok(Some((s, sha256_hex(&bytes))))
}

/// The chain the sink extends: per Kafka partition, the start offset and
/// SHA-256 of the last manifest written.
#[derive(Default)]
pub struct Chain {
    last: HashMap<PartitionKey, (i64, String)>,
}

/// A data file to write with its manifest.
pub struct Written<'a> {
    pub object: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub start: i64,
    pub end: i64,
    pub count: usize,
}

impl Chain {
    /// Writes the object with its checksum and retention, then its manifest,
    /// linked to the partition's previous one (read back from the bucket when
    /// this task has not written it, as after a restart).
    pub async fn write(
        &mut self,
        storage: &dyn ObjectStore,
        options: &PutOptions,
        file: Written<'_>,
        bytes: Vec<u8>,
    ) -> Result<(), ConnectError> {
        let object = file.object;
        let sha256 = sha256_hex(&bytes);
        storage.put(object, bytes, options).await?;
        let key: PartitionKey = (file.topic.into(), file.partition);
        let previous = match self.last.get(&key) {
            Some((s, sha)) if *s < file.start => Some(sha.clone()),
            _ => {
                let dir = object.rsplit_once('/').map_or("", |(d, _)| d);
                previous_link(storage, dir, file.start)
                    .await?
                    .map(|(_, sha)| sha)
            }
        };
        let manifest = Manifest {
            version: 1,
            object: object.to_owned(),
            topic: file.topic.to_owned(),
            partition: file.partition,
            start_offset: file.start,
            end_offset: file.end,
            record_count: file.count as u64,
            sha256,
            previous_manifest_sha256: previous,
        };
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| {
            ConnectError::fatal(format!("cannot write the manifest of '{object}': {e}"))
        })?;
        let manifest_sha = sha256_hex(&manifest_bytes);
        storage
            .put(&manifest_key(object), manifest_bytes, options)
            .await?;
        self.last.insert(key, (file.start, manifest_sha));
        Ok(())
    }

    /// A partition taken away: its next owner reads the chain from the bucket.
    pub fn forget(&mut self, key: &PartitionKey) {
        self.last.remove(key);
    }
}

/// What `verify` found for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReport {
    pub directory: String,
    pub files: usize,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// Verifies every partition under `prefix`. `Ok` lists the verified partitions;
/// `Err` names the first break.
pub async fn verify(
    storage: &dyn ObjectStore,
    prefix: &str,
) -> Result<Vec<PartitionReport>, String> {
    verify_with_progress(storage, prefix, &|_, _| {}).await
}

/// As `verify`, telling `progress` the manifests checked so far and the
/// manifests in all, after each (for the CLI's progress bar).
pub async fn verify_with_progress(
    storage: &dyn ObjectStore,
    prefix: &str,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Vec<PartitionReport>, String> {
    let keys = storage.list(prefix).await.map_err(|e| e.to_string())?;
    // Partition directory → its manifests and its data objects.
    let mut manifests: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut objects: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in keys {
        if is_manifest(&key) {
            let dir = key
                .split(&format!("/{MANIFEST_DIR}/"))
                .next()
                .unwrap_or_default()
                .to_owned();
            manifests.entry(dir).or_default().push(key);
        } else if let Some((dir, _)) = key.rsplit_once('/') {
            objects.entry(dir.to_owned()).or_default().push(key);
        }
    }
    let mut reports = Vec::new();
    let total: u64 = manifests.values().map(|m| m.len() as u64).sum();
    let mut checked = 0u64;
    for (dir, data) in &objects {
        let listed = manifests.get(dir).cloned().unwrap_or_default();
        for object in data {
            if !listed.contains(&manifest_key(object)) {
                return Err(format!(
                    "object '{object}' has no manifest (expected '{}')",
                    manifest_key(object)
                ));
            }
        }
    }
    for (dir, mut keys) in manifests {
        keys.sort_by_key(|k| start_offset_of(k).unwrap_or(i64::MIN));
        let mut previous: Option<(Manifest, String)> = None;
        let mut files = 0;
        let mut first_offset = None;
        for key in &keys {
            let bytes = storage
                .get(key)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("manifest '{key}' is gone"))?;
            let m: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| format!("manifest '{key}' is not valid: {e}"))?;
            let link = previous.as_ref().map(|(_, sha)| sha.clone());
            if m.previous_manifest_sha256 != link {
                return Err(format!(
                    "chain broken at '{key}': it links to {:?}, but the previous manifest hashes to {:?} (a manifest was removed or altered)",
                    m.previous_manifest_sha256, link
                ));
            }
            if let Some((p, _)) = &previous {
                if m.start_offset != p.end_offset + 1 {
                    let what = if m.start_offset > p.end_offset + 1 {
                        "gap"
                    } else {
                        "overlap"
                    };
                    return Err(format!(
                        "{what} at '{key}': the previous file ends at offset {}, this one starts at {}",
                        p.end_offset, m.start_offset
                    ));
                }
            }
            let object = storage
                .get(&m.object)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("object '{}' named by '{key}' is gone", m.object))?;
            let actual = sha256_hex(&object);
            if actual != m.sha256 {
                return Err(format!(
                    "object '{}' does not match its manifest: SHA-256 {actual}, manifest says {}",
                    m.object, m.sha256
                ));
            }
            files += 1;
            checked += 1;
            progress(checked, total);
            first_offset.get_or_insert(m.start_offset);
            previous = Some((m, sha256_hex(&bytes)));
        }
        if let Some((last, _)) = previous {
            reports.push(PartitionReport {
                directory: dir,
                files,
                first_offset: first_offset.unwrap_or(last.start_offset),
                last_offset: last.end_offset,
            });
        }
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_and_offsets() {
        let object = "topics/t/partition=3/t+3+0000000200.snappy.parquet";
        let m = manifest_key(object);
        assert_eq!(
            m,
            "topics/t/partition=3/_manifests/t+3+0000000200.snappy.parquet.manifest.json"
        );
        assert!(is_manifest(&m));
        assert!(!is_manifest(object));
        assert_eq!(start_offset_of(&m), Some(200));
        assert_eq!(start_offset_of(object), Some(200));
        assert_eq!(
            sha256_hex(b"hello"),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }
}
