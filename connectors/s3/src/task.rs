//! The sink task: per Kafka partition a set of files filling (one per encoded
//! path), cut together by count, record time, wall-clock schedule or schema
//! change, uploaded, and the offsets safe to commit reported to the runtime.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_s3::types::CompletedPart;
use sluice_api::{
    ConnectError, ErrantRecordReporter, OffsetMap, Record, Rewinds, SinkTask, SinkTaskContext,
    TopicPartition,
};
use tracing::{debug, info, warn};

use crate::audit;
use crate::compat::{project, Compatibility};
use crate::config::{config_def, S3SinkConfig, Tier};
use crate::format::{FileEncoder, Format};
use crate::partitioner::{object_key, Partitioner};
use crate::storage::{Multipart, PutOptions, Storage};

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
    rewinds: Arc<Rewinds>,
    connector: String,
    task: u32,
    sets: HashMap<PartitionKey, FileSet>,
    /// Per Kafka partition, the last offset taken into a file set. A batch the
    /// runtime hands over again after a retriable failure is skipped up to it.
    absorbed: HashMap<PartitionKey, i64>,
    put_options: PutOptions,
    /// Audit tier: per Kafka partition, the start offset and SHA-256 of the last
    /// manifest written.
    chain: HashMap<PartitionKey, (i64, String)>,
    written: Written,
}

/// What the task has written to the bucket, for `/metrics`.
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

/// The files of one Kafka partition being filled, one per encoded path. As in
/// Confluent's sink they are cut together: when the set holds `flush.size`
/// records, when a record is `rotate.interval.ms` of record time past the set's
/// first, or when a value schema changes. Cuts depend only on the records, so a
/// replay cuts the same files.
struct FileSet {
    files: Vec<OpenFile>,
    count: usize,
    first_timestamp: Option<i64>,
    schema: Option<sluice_api::SchemaRef>,
    opened: Instant,
}

/// One file being written. Outside the audit tier its rows are encoded a row
/// group at a time and its bytes go up as multipart parts as they accumulate,
/// so a file never sits whole in memory.
struct OpenFile {
    path: String,
    start: i64,
    end: i64,
    count: usize,
    /// Rows not yet encoded (the audit tier keeps all of them until the cut).
    pending: Vec<Record>,
    encoder: Option<FileEncoder>,
    upload: Option<(Multipart, Vec<CompletedPart>)>,
}

impl OpenFile {
    fn new(path: String, offset: i64) -> Self {
        Self {
            path,
            start: offset,
            end: offset,
            count: 0,
            pending: Vec::new(),
            encoder: None,
            upload: None,
        }
    }
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
            .filter(|f| f.count > 0)
            .map(|f| f.start)
            .min()
    }

    /// Whether `record` can join this set: a new file is needed when it is
    /// `interval` ms of record time past the set's first record, or when its
    /// schema differs and `schema.compatibility` does not project it (then it is
    /// projected onto the set's schema in place).
    fn admit(
        &self,
        record: &mut Record,
        interval: Option<i64>,
        compat: Compatibility,
    ) -> Admission {
        if self.count == 0 {
            return Admission::Join;
        }
        if let (Some(i), Some(t0), Some(t)) = (interval, self.first_timestamp, record.timestamp) {
            if t - t0 >= i {
                return Admission::Rotate;
            }
        }
        match (&self.schema, &record.value_schema) {
            (None, None) => Admission::Join,
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) || a == b => Admission::Join,
            (Some(current), Some(incoming)) if compat.projects(current, incoming) => {
                match project(record.value.clone(), incoming, current) {
                    Some(projected) => {
                        record.value = projected;
                        record.value_schema = Some(current.clone());
                        Admission::Join
                    }
                    None => Admission::Rotate,
                }
            }
            _ => Admission::Rotate,
        }
    }

    /// Adds a record to the current file of its path; returns that file's index.
    fn push(&mut self, path: String, record: Record) -> usize {
        if self.count == 0 {
            self.first_timestamp = record.timestamp;
            self.schema = record.value_schema.clone();
            self.opened = Instant::now();
        }
        self.count += 1;
        let offset = record.offset.unwrap_or(0);
        let index = match self.files.iter().rposition(|f| f.path == path) {
            Some(i) => i,
            None => {
                self.files.push(OpenFile::new(path, offset));
                self.files.len() - 1
            }
        };
        let file = &mut self.files[index];
        if file.count == 0 {
            file.start = offset;
        }
        file.end = offset;
        file.count += 1;
        file.pending.push(record);
        index
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

/// Whether a record joins the open files of its partition.
enum Admission {
    Join,
    Rotate,
}

/// What encoding a row group did.
enum Encoded {
    /// Written into the file's encoder.
    Written(FileEncoder),
    /// The rows do not fit the file's schema: the file (as it was) must be
    /// finished, and the rows start a new file.
    Misfit(FileEncoder, Vec<Record>),
}

impl State {
    fn streaming(&self) -> bool {
        !matches!(self.config.tier, Tier::Audit { .. })
    }

    /// Encodes one row group off the async threads.
    async fn encode_rows(
        format: Format,
        encoder: Option<FileEncoder>,
        rows: Vec<Record>,
    ) -> Result<Encoded, ConnectError> {
        tokio::task::spawn_blocking(move || {
            let mut encoder = match encoder {
                Some(e) if !e.fits(&rows) => return Ok(Encoded::Misfit(e, rows)),
                Some(e) => e,
                None => format.start(&rows)?,
            };
            encoder.write(&rows)?;
            Ok(Encoded::Written(encoder))
        })
        .await
        .map_err(|e| ConnectError::fatal(format!("encoding task failed: {e}")))?
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
        match Self::encode_rows(self.config.format, encoder, rows).await? {
            Encoded::Written(encoder) => {
                let ready = encoder.buffered() >= self.storage.part_size();
                if let Some(file) = self.sets.get_mut(key).and_then(|s| s.files.get_mut(index)) {
                    file.encoder = Some(encoder);
                }
                if ready {
                    self.upload_buffered(key, index).await?;
                }
                Ok(())
            }
            Encoded::Misfit(encoder, rows) => {
                let Some(set) = self.sets.get_mut(key) else {
                    return Ok(());
                };
                let mut old = set.files.remove(index);
                old.encoder = Some(encoder);
                // The old file ends just before the rows that do not fit it.
                let first_new = rows.first().and_then(|r| r.offset).unwrap_or(old.end);
                let mut new = OpenFile::new(old.path.clone(), first_new);
                new.end = old.end;
                new.count = rows.len();
                new.pending = rows;
                old.end = first_new - 1;
                old.count -= new.count;
                set.files.push(new);
                let new_index = set.files.len() - 1;
                self.finish_file(key, old).await?;
                Box::pin(self.encode_pending(key, new_index)).await
            }
        }
    }

    /// Uploads the bytes a file's encoder holds as its next part.
    async fn upload_buffered(
        &mut self,
        key: &PartitionKey,
        index: usize,
    ) -> Result<(), ConnectError> {
        let c = &self.config;
        let Some(file) = self.sets.get_mut(key).and_then(|s| s.files.get_mut(index)) else {
            return Ok(());
        };
        let object = object_name(c, key, &file.path, file.start);
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
        &mut self,
        key: &PartitionKey,
        mut file: OpenFile,
    ) -> Result<(), ConnectError> {
        if file.count == 0 {
            return Ok(());
        }
        let c = &self.config;
        let object = object_name(c, key, &file.path, file.start);
        if !self.streaming() {
            let records = std::mem::take(&mut file.pending);
            let format = c.format;
            let count = records.len();
            let bytes = tokio::task::spawn_blocking(move || format.encode(&records))
                .await
                .map_err(|e| ConnectError::fatal(format!("encoding task failed: {e}")))??;
            let size = bytes.len();
            self.write_audited(key, &object, file.start, file.end, count, bytes)
                .await?;
            self.written.objects.inc_by(1);
            self.written.bytes.inc_by(size as u64);
            info!(connector = %self.connector, task = self.task, topic = %key.0, partition = key.1, object, records = count, bytes = size, "file uploaded");
            return Ok(());
        }
        let mut encoder = file.encoder.take();
        let rows = std::mem::take(&mut file.pending);
        if !rows.is_empty() {
            match Self::encode_rows(self.config.format, encoder, rows).await? {
                Encoded::Written(e) => encoder = Some(e),
                Encoded::Misfit(e, rows) => {
                    // The last rows start their own file, after this one.
                    let first_new = rows.first().and_then(|r| r.offset).unwrap_or(file.end);
                    let mut rest = OpenFile::new(file.path.clone(), first_new);
                    rest.end = file.end;
                    rest.count = rows.len();
                    rest.pending = rows;
                    file.end = first_new - 1;
                    file.count -= rest.count;
                    file.encoder = Some(e);
                    Box::pin(self.finish_file(key, file)).await?;
                    return Box::pin(self.finish_file(key, rest)).await;
                }
            }
        }
        let Some(encoder) = encoder else {
            return Ok(());
        };
        let tail = tokio::task::spawn_blocking(move || encoder.finish())
            .await
            .map_err(|e| ConnectError::fatal(format!("encoding task failed: {e}")))??;
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

    /// Cuts every file of one Kafka partition's set.
    async fn write(&mut self, key: &PartitionKey) -> Result<(), ConnectError> {
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
        self.absorbed.insert(key.clone(), start - 1);
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
        let written = Written::new(&context.metrics, &config.bucket);
        self.state = Some(State {
            config,
            storage,
            reporter: context.reporter.clone(),
            rewinds: context.rewinds.clone(),
            absorbed: HashMap::new(),
            connector: context.connector,
            task: context.task_id,
            sets: HashMap::new(),
            put_options,
            chain: HashMap::new(),
            written,
        });
        Ok(())
    }

    async fn put(&mut self, records: Vec<Record>) -> Result<(), ConnectError> {
        let state = self
            .state
            .as_mut()
            .ok_or_else(|| ConnectError::fatal("put before start"))?;
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
            if state.absorbed.get(&key).is_some_and(|last| offset <= *last) {
                continue;
            }
            let mut record = record;
            let compat = state.config.compatibility;
            if let Some(set) = state.sets.get(&key) {
                if matches!(set.admit(&mut record, interval, compat), Admission::Rotate) {
                    state.write(&key).await?;
                }
            }
            let set = state.sets.entry(key.clone()).or_insert_with(FileSet::new);
            let index = set.push(path, record);
            state.absorbed.insert(key.clone(), offset);
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
            for tp in partitions {
                let key: PartitionKey = (Arc::from(tp.topic.as_str()), tp.partition);
                state.abandon(&key).await;
                state.chain.remove(&key);
                state.absorbed.remove(&key);
            }
        }
        Ok(())
    }

    /// Newly assigned partitions: abort uploads a crashed run left incomplete
    /// for them (their records will be written again, under the same keys).
    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<OffsetMap, ConnectError> {
        let Some(state) = self.state.as_mut() else {
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
        if let Some(mut state) = self.state.take() {
            let keys: Vec<PartitionKey> = state.sets.keys().cloned().collect();
            for key in keys {
                state.abandon(&key).await;
            }
        }
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
