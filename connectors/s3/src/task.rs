//! The sink task: per Kafka partition a set of files filling (one per encoded
//! path), cut together by count, record time, wall-clock schedule or schema
//! change, uploaded, and the offsets safe to commit reported to the runtime.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use sluice_api::{
    ConnectError, ErrantRecordReporter, OffsetMap, Record, SinkTask, SinkTaskContext,
    TopicPartition,
};
use tracing::{debug, info};

use crate::audit;
use crate::config::{config_def, S3SinkConfig, Tier};
use crate::partitioner::{object_key, Partitioner};
use crate::storage::{PutOptions, Storage};

/// A Kafka partition: topic and partition number.
type PartitionKey = (Arc<str>, i32);

#[derive(Default)]
pub struct S3SinkTask {
    state: Option<State>,
}

struct State {
    config: S3SinkConfig,
    storage: Arc<Storage>,
    reporter: Arc<dyn ErrantRecordReporter>,
    connector: String,
    task: u32,
    sets: HashMap<PartitionKey, FileSet>,
    put_options: PutOptions,
    /// Audit tier: per Kafka partition, the start offset and SHA-256 of the last
    /// manifest written.
    chain: HashMap<PartitionKey, (i64, String)>,
}

/// The files of one Kafka partition being filled, one per encoded path. As in
/// Confluent's sink they are cut together: when the set holds `flush.size`
/// records, when a record is `rotate.interval.ms` of record time past the set's
/// first, or when a value schema changes. Cuts depend only on the records, so a
/// replay cuts the same files.
struct FileSet {
    files: Vec<(String, Vec<Record>)>,
    count: usize,
    first_timestamp: Option<i64>,
    schema: Option<sluice_api::SchemaRef>,
    opened: Instant,
}

impl FileSet {
    fn new() -> Self {
        Self {
            files: Vec::new(),
            count: 0,
            first_timestamp: None,
            schema: None,
            opened: Instant::now(),
        }
    }

    fn start_offset(&self) -> Option<i64> {
        self.files
            .iter()
            .filter_map(|(_, records)| records.first().and_then(|r| r.offset))
            .min()
    }

    fn must_rotate_before(&self, record: &Record, interval: Option<i64>) -> bool {
        if self.count == 0 {
            return false;
        }
        let schema_changed = match (&self.schema, &record.value_schema) {
            (Some(a), Some(b)) => !(Arc::ptr_eq(a, b) || a == b),
            (None, None) => false,
            _ => true,
        };
        let time_up = match (interval, self.first_timestamp, record.timestamp) {
            (Some(i), Some(t0), Some(t)) => t - t0 >= i,
            _ => false,
        };
        schema_changed || time_up
    }

    fn push(&mut self, path: String, record: Record) {
        if self.count == 0 {
            self.first_timestamp = record.timestamp;
            self.schema = record.value_schema.clone();
            self.opened = Instant::now();
        }
        self.count += 1;
        match self.files.iter_mut().find(|(p, _)| *p == path) {
            Some((_, records)) => records.push(record),
            None => self.files.push((path, vec![record])),
        }
    }
}

impl State {
    /// Encodes and uploads every file of one Kafka partition's set.
    async fn write(&mut self, key: &PartitionKey) -> Result<(), ConnectError> {
        let Some(set) = self.sets.remove(key) else {
            return Ok(());
        };
        for (path, records) in set.files {
            self.write_file(key, &path, records).await?;
        }
        Ok(())
    }

    async fn write_file(
        &mut self,
        key: &PartitionKey,
        path: &str,
        records: Vec<Record>,
    ) -> Result<(), ConnectError> {
        let (Some(start), Some(end)) = (
            records.first().and_then(|r| r.offset),
            records.last().and_then(|r| r.offset),
        ) else {
            return Ok(());
        };
        let c = &self.config;
        let object = object_key(
            &c.topics_dir,
            &key.0,
            path,
            key.1,
            start,
            c.pad_width,
            &c.format.extension(),
        );
        let format = c.format;
        let count = records.len();
        let bytes = tokio::task::spawn_blocking(move || format.encode(&records))
            .await
            .map_err(|e| ConnectError::fatal(format!("encoding task failed: {e}")))??;
        let size = bytes.len();
        match c.tier {
            Tier::Audit { .. } => {
                self.write_audited(key, &object, start, end, count, bytes)
                    .await?
            }
            _ => self.storage.put(&object, bytes, &self.put_options).await?,
        }
        info!(connector = %self.connector, task = self.task, topic = %key.0, partition = key.1, object, records = count, bytes = size, "file uploaded");
        Ok(())
    }

    /// The audit tier: the object with its checksum and retention, then its
    /// manifest, linked to the partition's previous one.
    async fn write_audited(
        &mut self,
        key: &PartitionKey,
        object: &str,
        start: i64,
        end: i64,
        count: usize,
        bytes: Vec<u8>,
    ) -> Result<(), ConnectError> {
        let sha256 = audit::sha256_hex(&bytes);
        self.storage.put(object, bytes, &self.put_options).await?;
        let previous = match self.chain.get(key) {
            Some((s, sha)) if *s < start => Some(sha.clone()),
            _ => {
                let dir = object.rsplit_once('/').map_or("", |(d, _)| d);
                audit::previous_link(&self.storage, dir, start)
                    .await?
                    .map(|(_, sha)| sha)
            }
        };
        let manifest = audit::Manifest {
            version: 1,
            object: object.to_owned(),
            topic: key.0.to_string(),
            partition: key.1,
            start_offset: start,
            end_offset: end,
            record_count: count as u64,
            sha256,
            previous_manifest_sha256: previous,
        };
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| {
            ConnectError::fatal(format!("cannot write the manifest of '{object}': {e}"))
        })?;
        let manifest_sha = audit::sha256_hex(&manifest_bytes);
        self.storage
            .put(
                &audit::manifest_key(object),
                manifest_bytes,
                &self.put_options,
            )
            .await?;
        self.chain.insert(key.clone(), (start, manifest_sha));
        Ok(())
    }

    /// Sets open longer than `rotate.schedule.interval.ms` of wall-clock time.
    async fn write_scheduled(&mut self) -> Result<(), ConnectError> {
        let Some(every) = self.config.rotate_schedule else {
            return Ok(());
        };
        let due: Vec<PartitionKey> = self
            .sets
            .iter()
            .filter(|(_, s)| s.count > 0 && s.opened.elapsed() >= every)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.write(&key).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl SinkTask for S3SinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let config = S3SinkConfig::parse(&context.config)?;
        let part_size = config_def()
            .validate(&context.config)?
            .int("s3.part.size")
            .unwrap_or(26_214_400)
            .max(5_242_880) as usize;
        let storage = Arc::new(Storage::connect(&config, part_size).await?);
        let mut put_options = PutOptions {
            storage_class: config.storage_class.clone(),
            ..PutOptions::default()
        };
        match config.tier {
            Tier::Plain => {}
            Tier::Archive { days } => {
                let rule = format!("sluice-archive-{}", config.topics_dir);
                storage
                    .ensure_lifecycle(&rule, &format!("{}/", config.topics_dir), days)
                    .await?;
                info!(connector = %context.connector, bucket = %config.bucket, days, "archive lifecycle rule set");
            }
            Tier::Audit {
                days,
                lock_required,
            } => {
                put_options.sha256 = true;
                if storage.object_lock_enabled().await? {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64);
                    put_options.retain_until = Some(now + i64::from(days) * 86_400);
                } else if lock_required {
                    return Err(ConnectError::fatal(format!(
                        "s3.tier=audit: bucket '{}' has no Object Lock, so objects could be deleted or overwritten. \
                         Create the bucket with Object Lock enabled, or set s3.object.lock.required=false to write \
                         checksums and manifests without retention",
                        config.bucket
                    )));
                }
            }
        }
        self.state = Some(State {
            config,
            storage,
            reporter: context.reporter.clone(),
            connector: context.connector,
            task: context.task_id,
            sets: HashMap::new(),
            put_options,
            chain: HashMap::new(),
        });
        Ok(())
    }

    async fn put(&mut self, records: Vec<Record>) -> Result<(), ConnectError> {
        let state = self
            .state
            .as_mut()
            .ok_or_else(|| ConnectError::fatal("put before start"))?;
        let (flush_size, interval) = (state.config.flush_size, state.config.rotate_interval_ms);
        for record in records {
            let path = match state.config.partitioner.encode(&record) {
                Ok(p) => p,
                Err(why) => {
                    // The record cannot be placed: the error policy decides.
                    state
                        .reporter
                        .report(&record, &ConnectError::data(why))
                        .await?;
                    continue;
                }
            };
            let key: PartitionKey = (record.topic.clone(), record.partition.unwrap_or(0));
            if state
                .sets
                .get(&key)
                .is_some_and(|s| s.must_rotate_before(&record, interval))
            {
                state.write(&key).await?;
            }
            let set = state.sets.entry(key.clone()).or_insert_with(FileSet::new);
            set.push(path, record);
            if set.count >= flush_size {
                state.write(&key).await?;
            }
        }
        state.write_scheduled().await
    }

    /// Only offsets of uploaded files may be committed: for a Kafka partition
    /// with files still filling, that is the first offset of the oldest one.
    async fn pre_commit(&mut self, offsets: &OffsetMap) -> Result<OffsetMap, ConnectError> {
        let Some(state) = self.state.as_mut() else {
            return Ok(OffsetMap::new());
        };
        state.write_scheduled().await?;
        let mut safe = OffsetMap::new();
        for (tp, next) in offsets {
            let pending = state
                .sets
                .get(&(Arc::from(tp.topic.as_str()), tp.partition))
                .and_then(FileSet::start_offset);
            safe.insert(tp.clone(), pending.unwrap_or(*next));
        }
        debug!(partitions = safe.len(), "pre-commit");
        Ok(safe)
    }

    /// A partition taken away: its unfinished files are dropped; the new owner
    /// reads those records again from the committed offset and cuts the same files.
    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        if let Some(state) = self.state.as_mut() {
            state.sets.retain(|(t, p), _| {
                !partitions
                    .iter()
                    .any(|tp| **t == *tp.topic && *p == tp.partition)
            });
            state.chain.retain(|(t, p), _| {
                !partitions
                    .iter()
                    .any(|tp| **t == *tp.topic && *p == tp.partition)
            });
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        // Unfinished files are not uploaded: writing them would cut files where a
        // replay would not, breaking exactly-once. Their records are re-read.
        self.state = None;
        Ok(())
    }
}

/// The audit tier proves contiguity per partition: that needs one directory
/// per Kafka partition.
pub fn check_tier(config: &S3SinkConfig) -> Result<(), String> {
    if matches!(config.tier, Tier::Audit { .. }) && config.partitioner != Partitioner::Default {
        return Err("s3.tier=audit needs the DefaultPartitioner, so each partition's files form one contiguous chain".into());
    }
    Ok(())
}
