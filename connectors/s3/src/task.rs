//! The sink task: buffers per Kafka partition, cuts files, uploads them, and tells
//! the runtime which offsets are safe to commit.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use sluice_api::{ConnectError, OffsetMap, Record, SinkTask, SinkTaskContext, TopicPartition};
use tracing::{debug, info};

use crate::audit;
use crate::config::{config_def, S3SinkConfig, Tier};
use crate::partitioner::object_key;
use crate::storage::{PutOptions, Storage};

#[derive(Default)]
pub struct S3SinkTask {
    state: Option<State>,
}

struct State {
    config: S3SinkConfig,
    storage: Arc<Storage>,
    connector: String,
    task: u32,
    buffers: HashMap<(Arc<str>, i32), Buffer>,
    put_options: PutOptions,
    /// Audit tier: per partition, the start offset and SHA-256 of the last
    /// manifest written.
    chain: HashMap<(Arc<str>, i32), (i64, String)>,
}

/// The records of the file being filled for one Kafka partition.
#[derive(Default)]
struct Buffer {
    records: Vec<Record>,
}

impl Buffer {
    fn start_offset(&self) -> Option<i64> {
        self.records.first().and_then(|r| r.offset)
    }

    /// A new record starts a new file when its schema differs (Confluent's
    /// `schema.compatibility=NONE`), or when it is `interval` ms of record time
    /// past the file's first record.
    fn must_rotate_before(&self, record: &Record, interval: Option<i64>) -> bool {
        let Some(first) = self.records.first() else {
            return false;
        };
        let schema_changed = match (&first.value_schema, &record.value_schema) {
            (Some(a), Some(b)) => !(Arc::ptr_eq(a, b) || a == b),
            (None, None) => false,
            _ => true,
        };
        let time_up = match (interval, first.timestamp, record.timestamp) {
            (Some(i), Some(t0), Some(t)) => t - t0 >= i,
            _ => false,
        };
        schema_changed || time_up
    }
}

impl State {
    /// The audit tier: the object with its checksum and retention, then its
    /// manifest, linked to the partition's previous one.
    async fn write_audited(
        &mut self,
        key: &(Arc<str>, i32),
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

    /// Encodes and uploads the buffer of one partition as one object.
    async fn write(&mut self, key: &(Arc<str>, i32)) -> Result<(), ConnectError> {
        let Some(buffer) = self.buffers.get_mut(key) else {
            return Ok(());
        };
        let records = std::mem::take(&mut buffer.records);
        let Some(start) = records.first().and_then(|r| r.offset) else {
            return Ok(());
        };
        let c = &self.config;
        let object = object_key(
            &c.topics_dir,
            c.partitioner,
            &key.0,
            key.1,
            start,
            c.pad_width,
            &c.format.extension(),
        );
        let format = c.format;
        let count = records.len();
        let end_offset = records.last().and_then(|r| r.offset).unwrap_or(start);
        let bytes = tokio::task::spawn_blocking(move || format.encode(&records))
            .await
            .map_err(|e| ConnectError::fatal(format!("encoding task failed: {e}")))??;
        let size = bytes.len();
        let end = end_offset;
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
            connector: context.connector,
            task: context.task_id,
            buffers: HashMap::new(),
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
            let key = (record.topic.clone(), record.partition.unwrap_or(0));
            let buffer = state.buffers.entry(key.clone()).or_default();
            if buffer.must_rotate_before(&record, interval) {
                state.write(&key).await?;
            }
            let buffer = state.buffers.entry(key.clone()).or_default();
            buffer.records.push(record);
            if buffer.records.len() >= flush_size {
                state.write(&key).await?;
            }
        }
        Ok(())
    }

    /// Only offsets of uploaded files may be committed: for a partition with a
    /// file still filling, that is the file's first offset.
    async fn pre_commit(&mut self, offsets: &OffsetMap) -> Result<OffsetMap, ConnectError> {
        let Some(state) = self.state.as_ref() else {
            return Ok(OffsetMap::new());
        };
        let mut safe = OffsetMap::new();
        for (tp, next) in offsets {
            let pending = state
                .buffers
                .get(&(Arc::from(tp.topic.as_str()), tp.partition))
                .and_then(Buffer::start_offset);
            safe.insert(tp.clone(), pending.unwrap_or(*next));
        }
        debug!(partitions = safe.len(), "pre-commit");
        Ok(safe)
    }

    /// A partition taken away: its unfinished file is dropped; the new owner
    /// reads those records again from the committed offset and cuts the same file.
    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        if let Some(state) = self.state.as_mut() {
            for tp in partitions {
                state
                    .buffers
                    .remove(&(Arc::from(tp.topic.as_str()), tp.partition));
            }
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
