//! The sink task, the I/O shell around `file_set.rs`: it places each record
//! in its partition's file set, encodes row groups off the async threads,
//! uploads files (as multipart parts while they fill, outside the audit
//! tier), and reports to the runtime the offsets `file_set.rs` says are safe.
//!
//! A Parquet sink takes values as JSON text (`put_json`) when the runtime can
//! give them so: a row then stays text until its row group is encoded, which
//! decodes it straight into Arrow columns (`format/direct.rs`).
//!
//! Outside the audit tier a cut set is finished in the background (last rows
//! encoded, footer, upload) while `put` takes the next records: on a
//! two-core machine encoding runs beside consuming. At most `MAX_CUTTING`
//! sets are finishing at once (`put` waits for the oldest beyond that), so
//! memory stays bounded; `pre_commit` waits for them all, so a commit covers
//! only uploaded files, as before.
//!
//! A failed upload loses the set's records from memory: the task asks the
//! runtime to rewind the partition to the set's start, and the same records
//! cut the same files again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use sluice_api::{
    ConnectError, ErrantRecordReporter, OffsetMap, Record, Rewinds, SinkTask, SinkTaskContext,
    TopicPartition, Value,
};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::audit;
use crate::config::{S3SinkConfig, Tier};
use crate::file_set::{safe_offsets, Admission, FileSet, OpenFile, PartitionKey, Row};
use crate::format::{blocking, encode_rows, Encoded, FileEncoder, Format};
use crate::partitioner::object_key;
use crate::storage::{ObjectStore, PutOptions, Storage};
use crate::tier::prepare_tier;

#[derive(Default)]
pub struct S3SinkTask {
    writer: Option<Writer>,
}

/// Cut sets finishing in the background at most: one encoding on the second
/// core while the next are queued, each holding at most a row group of rows
/// and a part of bytes.
const MAX_CUTTING: usize = 4;

/// The started task: the file sets being filled and cut, and where each partition stands.
struct Writer {
    config: Arc<S3SinkConfig>,
    storage: Arc<dyn ObjectStore>,
    /// Finishes files; shared with the cuts running in the background.
    up: Arc<Uploader>,
    reporter: Arc<dyn ErrantRecordReporter>,
    rewinds: Arc<Rewinds>,
    connector: String,
    task: u32,
    sets: HashMap<PartitionKey, FileSet>,
    /// Sets cut and finishing in the background, oldest first.
    cutting: VecDeque<Cutting>,
    /// Per Kafka partition, the last offset taken into a file set. A batch the
    /// runtime hands over again after a retriable failure is skipped up to it.
    taken_through: HashMap<PartitionKey, i64>,
    put_options: PutOptions,
    /// Audit tier: the manifest chain of each Kafka partition.
    chain: audit::Chain,
    written: Written,
}

/// A cut set being finished in the background.
struct Cutting {
    key: PartitionKey,
    /// Its first offset: where the partition is read again if it fails.
    start: i64,
    job: JoinHandle<Result<(), ConnectError>>,
}

/// What finishing a file needs (outside the audit tier), shared with the
/// cuts running in the background.
struct Uploader {
    config: Arc<S3SinkConfig>,
    storage: Arc<dyn ObjectStore>,
    put_options: PutOptions,
    written: Written,
    connector: String,
    task: u32,
}

/// What the task has written to the bucket, for `/metrics`.
#[derive(Clone)]
struct Written {
    objects: sluice_api::metrics::Counter,
    bytes: sluice_api::metrics::Counter,
}

impl Written {
    fn new(metrics: &sluice_api::TaskMetricsHandle, bucket: &str) -> Self {
        Self {
            objects: metrics.counter(
                "s3_objects_written",
                "Data objects the S3 sink completed (single puts and multipart uploads).",
                &[("bucket", bucket)],
            ),
            bytes: metrics.counter(
                "s3_written_bytes",
                "Bytes of data objects the S3 sink uploaded (parts included as they go up).",
                &[("bucket", bucket)],
            ),
        }
    }
}

/// The object key of a file of `key`'s partition under `path` starting at `start`.
fn object_name(c: &S3SinkConfig, key: &PartitionKey, path: &str, start: i64) -> String {
    object_key(
        &c.topics_dir,
        &key.0,
        path,
        key.1,
        start,
        c.pad_width,
        &c.format.extension(),
    )
}

impl Writer {
    fn new(
        config: S3SinkConfig,
        storage: Arc<dyn ObjectStore>,
        put_options: PutOptions,
        context: &SinkTaskContext,
    ) -> Self {
        let written = Written::new(&context.metrics, &config.bucket);
        let config = Arc::new(config);
        let up = Arc::new(Uploader {
            config: config.clone(),
            storage: storage.clone(),
            put_options: put_options.clone(),
            written: written.clone(),
            connector: context.connector.clone(),
            task: context.task_id,
        });
        Self {
            config,
            storage,
            up,
            reporter: context.reporter.clone(),
            rewinds: context.rewinds.clone(),
            taken_through: HashMap::new(),
            connector: context.connector.clone(),
            task: context.task_id,
            sets: HashMap::new(),
            cutting: VecDeque::new(),
            put_options,
            chain: audit::Chain::default(),
            written,
        }
    }

    fn streaming(&self) -> bool {
        !matches!(self.config.tier, Tier::Audit { .. })
    }

    /// Encodes a file's pending rows; uploads a part once a part's worth of bytes
    /// is ready. Rows that do not fit the file finish it and start a new one.
    async fn encode_pending(
        &mut self,
        key: &PartitionKey,
        index: usize,
    ) -> Result<(), ConnectError> {
        let Some(file) = self.sets.get_mut(key).and_then(|s| s.files.get_mut(index)) else {
            return Ok(());
        };
        let rows = std::mem::take(&mut file.pending);
        if rows.is_empty() {
            return Ok(());
        }
        let encoder = file.encoder.take();
        match encode_rows(self.config.format, encoder, rows).await? {
            Encoded::Written(encoder) => {
                let ready = encoder.buffered() >= self.storage.part_size();
                let Some(file) = self.sets.get_mut(key).and_then(|s| s.files.get_mut(index)) else {
                    return Ok(());
                };
                file.encoder = Some(encoder);
                if ready {
                    self.up.upload_buffered(key, file).await?;
                }
                Ok(())
            }
            Encoded::Misfit(encoder, rows) => {
                let Some(set) = self.sets.get_mut(key) else {
                    return Ok(());
                };
                let mut old = set.files.remove(index);
                old.encoder = Some(encoder);
                let new = old.split_off(rows);
                set.files.push(new);
                let new_index = set.files.len() - 1;
                self.finish_file(key, old).await?;
                Box::pin(self.encode_pending(key, new_index)).await
            }
        }
    }

    /// Finishes one file: in the audit tier the whole object goes up with its
    /// checksum, then its manifest; elsewhere see [`Uploader::finish_file`].
    async fn finish_file(
        &mut self,
        key: &PartitionKey,
        mut file: OpenFile,
    ) -> Result<(), ConnectError> {
        if self.streaming() {
            return self.up.finish_file(key, file).await;
        }
        if file.count == 0 {
            return Ok(());
        }
        let c = &self.config;
        let object = object_name(c, key, &file.path, file.start);
        let records = std::mem::take(&mut file.pending);
        let format = c.format;
        let count = records.len();
        let bytes = blocking(move || format.encode(&records)).await?;
        let size = bytes.len();
        let written = audit::Written {
            object: &object,
            topic: &key.0,
            partition: key.1,
            start: file.start,
            end: file.end,
            count,
        };
        self.chain
            .write(self.storage.as_ref(), &self.put_options, written, bytes)
            .await?;
        self.written.objects.inc_by(1);
        self.written.bytes.inc_by(size as u64);
        info!(connector = %self.connector, task = self.task, topic = %key.0, partition = key.1, object, records = count, bytes = size, "file uploaded");
        Ok(())
    }

    /// Cuts every file of one Kafka partition's set: in the background
    /// outside the audit tier, once there is room. A cut that failed
    /// meanwhile fails this call, and this set is read again too: a set is
    /// never left to grow past where it is cut.
    async fn write(&mut self, key: &PartitionKey) -> Result<(), ConnectError> {
        if self.streaming() {
            if let Err(e) = self.make_room().await {
                self.recover(key).await;
                return Err(e);
            }
            let Some(set) = self.sets.remove(key) else {
                return Ok(());
            };
            let Some(start) = set.start_offset() else {
                return Ok(());
            };
            let (up, k) = (self.up.clone(), key.clone());
            let job = tokio::spawn(async move { up.finish_set(&k, set.files).await });
            self.cutting.push_back(Cutting {
                key: key.clone(),
                start,
                job,
            });
            return Ok(());
        }
        let Some(set) = self.sets.remove(key) else {
            return Ok(());
        };
        let start = set.start_offset();
        let mut files = set.files.into_iter();
        while let Some(file) = files.next() {
            if let Err(e) = self.finish_file(key, file).await {
                for rest in files {
                    if let Some((upload, _)) = rest.upload {
                        self.storage.abort(&upload).await;
                    }
                }
                if let Some(start) = start {
                    self.rewind(key, start);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Waits for the oldest cuts until fewer than `MAX_CUTTING` are running.
    async fn make_room(&mut self) -> Result<(), ConnectError> {
        self.reap(false).await?;
        while self.cutting.len() >= MAX_CUTTING {
            self.reap_oldest().await?;
        }
        Ok(())
    }

    /// Takes the outcome of the cuts that have finished, oldest first (of all
    /// of them, waiting, with `all`). A failed cut rewinds its partition and
    /// is this call's error.
    async fn reap(&mut self, all: bool) -> Result<(), ConnectError> {
        let mut failed = None;
        while self
            .cutting
            .front()
            .is_some_and(|c| all || c.job.is_finished())
        {
            if let Err(e) = self.reap_oldest().await {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    async fn reap_oldest(&mut self) -> Result<(), ConnectError> {
        let Some(cut) = self.cutting.pop_front() else {
            return Ok(());
        };
        let Err(e) = outcome(cut.job.await) else {
            return Ok(());
        };
        // The partition's later cuts are waited for: their objects, if
        // written, are written again the same by the replay, which starts at
        // the earliest failed cut.
        let mut start = cut.start;
        let mut i = 0;
        while i < self.cutting.len() {
            if self.cutting[i].key != cut.key {
                i += 1;
                continue;
            }
            if let Some(later) = self.cutting.remove(i) {
                if outcome(later.job.await).is_err() {
                    start = start.min(later.start);
                }
            }
        }
        self.abandon(&cut.key).await;
        self.rewind(&cut.key, start);
        Err(e)
    }

    /// Waits for the partition's cuts, whatever their outcome: it is being
    /// given up or the task stops, and what was not committed is read again.
    async fn settle(&mut self, key: Option<&PartitionKey>) {
        let mut rest = VecDeque::new();
        for cut in std::mem::take(&mut self.cutting) {
            if key.is_none_or(|k| *k == cut.key) {
                if let Err(e) = outcome(cut.job.await) {
                    debug!(connector = %self.connector, task = self.task, topic = %cut.key.0, partition = cut.key.1, "a cut given up failed: {e}");
                }
            } else {
                rest.push_back(cut);
            }
        }
        self.cutting = rest;
    }

    /// After a failed upload the set's records are gone from memory: drop what
    /// is left of it and read the partition again from where the set began.
    /// The same records cut the same files, so the retry writes the same
    /// objects; nothing is lost, and no offset past the set was committed.
    async fn recover(&mut self, key: &PartitionKey) {
        let start = self.sets.get(key).and_then(FileSet::start_offset);
        self.abandon(key).await;
        if let Some(start) = start {
            self.rewind(key, start);
        }
    }

    fn rewind(&mut self, key: &PartitionKey, start: i64) {
        warn!(connector = %self.connector, task = self.task, topic = %key.0, partition = key.1, offset = start, "upload failed; reading the partition again from the file set's start");
        self.taken_through.insert(key.clone(), start - 1);
        self.rewinds
            .request(TopicPartition::new(&*key.0, key.1), start);
    }

    /// Aborts the uploads of files that will not be finished.
    async fn abandon(&mut self, key: &PartitionKey) {
        if let Some(set) = self.sets.remove(key) {
            for file in set.files {
                if let Some((upload, _)) = file.upload {
                    self.storage.abort(&upload).await;
                }
            }
        }
    }

    /// Sets open longer than `rotate.schedule.interval.ms` of wall-clock time.
    async fn write_scheduled(&mut self) -> Result<(), ConnectError> {
        let Some(every) = self.config.rotate_schedule else {
            return Ok(());
        };
        let due: Vec<PartitionKey> = self
            .sets
            .iter()
            .filter(|(_, s)| s.due(every))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.write(&key).await?;
        }
        Ok(())
    }
}

/// A background cut's result; a panic in it is a fatal error.
fn outcome(
    joined: Result<Result<(), ConnectError>, tokio::task::JoinError>,
) -> Result<(), ConnectError> {
    joined.map_err(|e| ConnectError::fatal(format!("finishing a file failed: {e}")))?
}

impl Uploader {
    /// Finishes the files of a cut set in turn; after a failure the others'
    /// uploads are aborted.
    async fn finish_set(
        &self,
        key: &PartitionKey,
        files: Vec<OpenFile>,
    ) -> Result<(), ConnectError> {
        let mut files = files.into_iter();
        while let Some(file) = files.next() {
            if let Err(e) = self.finish_file(key, file).await {
                for rest in files {
                    if let Some((upload, _)) = rest.upload {
                        self.storage.abort(&upload).await;
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Uploads the bytes a file's encoder holds as its next part.
    async fn upload_buffered(
        &self,
        key: &PartitionKey,
        file: &mut OpenFile,
    ) -> Result<(), ConnectError> {
        let object = object_name(&self.config, key, &file.path, file.start);
        let bytes = file
            .encoder
            .as_mut()
            .map(FileEncoder::take)
            .unwrap_or_default();
        if file.upload.is_none() {
            file.upload = Some((
                self.storage
                    .start_multipart(&object, &self.put_options)
                    .await?,
                Vec::new(),
            ));
        }
        let Some((upload, parts)) = file.upload.as_mut() else {
            return Ok(());
        };
        let size = bytes.len() as u64;
        match self
            .storage
            .upload_part(upload, parts.len() + 1, bytes)
            .await
        {
            Ok(part) => {
                self.written.bytes.inc_by(size);
                parts.push(part);
                debug!(connector = %self.connector, task = self.task, object, part = parts.len(), "part uploaded");
                Ok(())
            }
            Err(e) => {
                self.storage.abort(upload).await;
                file.upload = None;
                Err(e)
            }
        }
    }

    /// Finishes one file: the last rows encoded, the footer written, and the
    /// object completed (one PUT when it never reached a part's size).
    async fn finish_file(
        &self,
        key: &PartitionKey,
        mut file: OpenFile,
    ) -> Result<(), ConnectError> {
        if file.count == 0 {
            return Ok(());
        }
        let object = object_name(&self.config, key, &file.path, file.start);
        let mut encoder = file.encoder.take();
        let rows = std::mem::take(&mut file.pending);
        if !rows.is_empty() {
            match encode_rows(self.config.format, encoder, rows).await? {
                Encoded::Written(e) => encoder = Some(e),
                Encoded::Misfit(e, rows) => {
                    // The last rows start their own file, after this one.
                    let rest = file.split_off(rows);
                    file.encoder = Some(e);
                    Box::pin(self.finish_file(key, file)).await?;
                    return Box::pin(self.finish_file(key, rest)).await;
                }
            }
        }
        let Some(encoder) = encoder else {
            return Ok(());
        };
        let tail = blocking(move || encoder.finish()).await?;
        let tail_size = tail.len() as u64;
        match file.upload.take() {
            None => {
                let size = tail.len();
                self.storage.put(&object, tail, &self.put_options).await?;
                self.written.objects.inc_by(1);
                self.written.bytes.inc_by(size as u64);
                info!(connector = %self.connector, task = self.task, topic = %key.0, partition = key.1, object, records = file.count, bytes = size, "file uploaded");
            }
            Some((upload, mut parts)) => {
                match self
                    .storage
                    .upload_part(&upload, parts.len() + 1, tail)
                    .await
                {
                    Ok(p) => parts.push(p),
                    Err(e) => {
                        self.storage.abort(&upload).await;
                        return Err(e);
                    }
                }
                let n = parts.len();
                self.storage.complete(&upload, parts).await?;
                self.written.objects.inc_by(1);
                self.written.bytes.inc_by(tail_size);
                info!(connector = %self.connector, task = self.task, topic = %key.0, partition = key.1, object, records = file.count, parts = n, "file uploaded (multipart)");
            }
        }
        Ok(())
    }
}

impl S3SinkTask {
    /// Places each record in its partition's file set; with `json`, values
    /// that are JSON text stay text until their row group is encoded.
    async fn take(&mut self, records: Vec<Record>, json: bool) -> Result<(), ConnectError> {
        let state = self
            .writer
            .as_mut()
            .ok_or_else(|| ConnectError::fatal("put before start"))?;
        // A cut that failed since the last call fails this one, before any
        // record is taken: the runtime hands the batch over again.
        state.reap(false).await?;
        let (flush_size, interval) = (state.config.flush_size, state.config.rotate_interval_ms);
        let row_group = state.config.row_group_records;
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
            let offset = record.offset.unwrap_or(-1);
            if state
                .taken_through
                .get(&key)
                .is_some_and(|last| offset <= *last)
            {
                continue;
            }
            let mut row = to_row(record, json);
            let compat = state.config.compatibility;
            if let Some(set) = state.sets.get(&key) {
                if matches!(set.admit(&mut row, interval, compat), Admission::Rotate) {
                    state.write(&key).await?;
                }
            }
            let set = state.sets.entry(key.clone()).or_default();
            let index = set.push(path, row);
            state.taken_through.insert(key.clone(), offset);
            let (full, row_group_ready) = (
                set.count >= flush_size,
                set.files[index].pending.len() >= row_group,
            );
            if full {
                state.write(&key).await?;
            } else if row_group_ready && state.streaming() {
                if let Err(e) = state.encode_pending(&key, index).await {
                    state.recover(&key).await;
                    return Err(e);
                }
            }
        }
        state.write_scheduled().await
    }
}

/// A record as a row of its file: with `json`, a value that is JSON text
/// stays text (with the coordinates a file needs).
fn to_row(record: Record, json: bool) -> Row {
    match record.value {
        Value::Bytes(text) if json => Row::Json {
            offset: record.offset.unwrap_or(-1),
            timestamp: record.timestamp,
            text,
        },
        _ => Row::Record(Box::new(record)),
    }
}

#[async_trait]
impl SinkTask for S3SinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let config = S3SinkConfig::parse(&context.config)?;
        let storage = Storage::connect(&config, config.part_size).await?;
        let put_options = prepare_tier(&config, &storage, &context.connector).await?;
        let storage: Arc<dyn ObjectStore> = Arc::new(storage);
        self.writer = Some(Writer::new(config, storage, put_options, &context));
        Ok(())
    }

    /// Objects hold keys and values; no format writes headers.
    fn reads_headers(&self) -> bool {
        false
    }

    /// Parquet decodes JSON text itself, unless the partitioner reads values.
    fn takes_json_values(&self) -> bool {
        self.writer.as_ref().is_some_and(|s| {
            matches!(s.config.format, Format::Parquet(_)) && !s.config.partitioner.reads_values()
        })
    }

    async fn put(&mut self, records: Vec<Record>) -> Result<(), ConnectError> {
        self.take(records, false).await
    }

    async fn put_json(&mut self, records: Vec<Record>) -> Result<(), ConnectError> {
        self.take(records, true).await
    }

    /// Only offsets of uploaded files may be committed: for a Kafka partition
    /// with files still filling, that is the first offset of the oldest one.
    async fn pre_commit(&mut self, offsets: &OffsetMap) -> Result<OffsetMap, ConnectError> {
        let Some(state) = self.writer.as_mut() else {
            return Ok(OffsetMap::new());
        };
        state.write_scheduled().await?;
        // Every cut finished first: what it uploaded may then be committed.
        state.reap(true).await?;
        let safe = safe_offsets(&state.sets, offsets);
        debug!(partitions = safe.len(), "pre-commit");
        Ok(safe)
    }

    /// A partition taken away: its unfinished files are dropped; the new owner
    /// reads those records again from the committed offset and cuts the same files.
    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        if let Some(state) = self.writer.as_mut() {
            for tp in partitions {
                let key: PartitionKey = (Arc::from(tp.topic.as_str()), tp.partition);
                state.settle(Some(&key)).await;
                state.abandon(&key).await;
                state.chain.forget(&key);
                state.taken_through.remove(&key);
            }
        }
        Ok(())
    }

    /// Newly assigned partitions: abort uploads a crashed run left incomplete
    /// for them (their records will be written again, under the same keys).
    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<OffsetMap, ConnectError> {
        let Some(state) = self.writer.as_mut() else {
            return Ok(OffsetMap::new());
        };
        for tp in partitions {
            let prefix = format!("{}/{}/", state.config.topics_dir, tp.topic);
            let mine = format!("{}+{}+", tp.topic, tp.partition);
            for upload in state.storage.incomplete_uploads(&prefix).await? {
                if upload
                    .key
                    .rsplit('/')
                    .next()
                    .is_some_and(|file| file.starts_with(&mine))
                {
                    info!(connector = %state.connector, key = %upload.key, "aborting an upload a previous run left incomplete");
                    state.storage.abort(&upload).await;
                }
            }
        }
        Ok(OffsetMap::new())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        // Unfinished files are not uploaded: writing them would cut files where a
        // replay would not, breaking exactly-once. Their records are re-read, and
        // their part uploads aborted so none is left dangling.
        if let Some(mut state) = self.writer.take() {
            state.settle(None).await;
            let keys: Vec<PartitionKey> = state.sets.keys().cloned().collect();
            for key in keys {
                state.abandon(&key).await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
