//! The sink task: buffers per Kafka partition, cuts files, uploads them, and tells
//! the runtime which offsets are safe to commit.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use sluice_api::{ConnectError, OffsetMap, Record, SinkTask, SinkTaskContext, TopicPartition};
use tracing::{debug, info};

use crate::config::{config_def, S3SinkConfig};
use crate::partitioner::object_key;
use crate::storage::Storage;

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
        let bytes = tokio::task::spawn_blocking(move || format.encode(&records))
            .await
            .map_err(|e| ConnectError::fatal(format!("encoding task failed: {e}")))??;
        let size = bytes.len();
        self.storage.put(&object, bytes).await?;
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
        self.state = Some(State {
            config,
            storage,
            connector: context.connector,
            task: context.task_id,
            buffers: HashMap::new(),
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
