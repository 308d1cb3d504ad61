//! Runs one source task: poll → transforms → converters → idempotent producer,
//! with source offsets stored only once every record before them is acknowledged.
//!
//! Batches are pipelined: the next poll starts while earlier batches are still in
//! flight. Completed batches are reaped strictly in order, so the offsets stored
//! never run ahead of a record Kafka has not acknowledged.

mod acks;
pub mod partitioner;
pub mod resume;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use sluice_api::{
    ConnectError, Converter, Position, Record, SourceOffset, SourcePartition, SourceTask,
    SourceTaskContext,
};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use self::acks::{AckContext, BatchAcks, KafkaMarks};
use self::resume::{ResumeState, POSITION_HEADER, SOURCE_HEADER};
use crate::blocking::blocking;
use crate::control::{until_stopped, Lease, TargetState, TaskHealth};
use crate::error_handling::{ErrorPolicy, Failure, Original, Stage};
use crate::metrics::{ActiveTopics, TaskMetrics};
use crate::storage::{partition_key, OffsetBackingStore};
use crate::topics::{ensure_topic, Topics};
use crate::transforms::TransformChain;

/// Records allowed in flight before the task waits for the oldest batch: as
/// many as the producer's queue holds by default (librdkafka's
/// `queue.buffering.max.messages`), which bounds the memory they take. A
/// window of 16 batches ran dry when batches were small (datagen's 2,000
/// records kept 32k in flight): the task then waited on acknowledgements with
/// the CPU idle, at half the rate it reaches with this window.
const MAX_IN_FLIGHT_RECORDS: u64 = 100_000;
/// ... and batches, so that many tiny batches (one-row transactions) do not
/// pile up their bookkeeping either.
const MAX_IN_FLIGHT_BATCHES: usize = 1024;

/// Everything a source task runner needs, built by the worker.
pub struct SourceRunner {
    pub connector: String,
    pub task_id: u32,
    pub task: Box<dyn SourceTask>,
    pub context: SourceTaskContext,
    pub transforms: TransformChain,
    pub key_converter: Box<dyn Converter>,
    pub value_converter: Box<dyn Converter>,
    pub producer: ThreadedProducer<AckContext>,
    pub store: Arc<dyn OffsetBackingStore>,
    pub topics: Arc<Topics>,
    pub reader: Arc<crate::kafka::Reader>,
    /// Partitions and replication factor for topics this connector creates;
    /// `None` when creation is off.
    pub topic_creation: Option<(i32, i32)>,
    pub flush_interval: Duration,
    pub policy: ErrorPolicy,
    pub metrics: Arc<TaskMetrics>,
    /// The connector's target state: paused stops polling, stopped ends the task.
    pub control: watch::Receiver<TargetState>,
    pub active_topics: ActiveTopics,
    pub health: Arc<TaskHealth>,
    /// Distributed mode: nothing is produced or stored unless it is held.
    pub lease: Option<Arc<Lease>>,
    pub graceful_timeout: Duration,
}

/// The last offset of each source partition in a batch. Offsets advance for
/// every polled record, including those a transform drops. Walking backwards,
/// the first record seen of each source partition is its last: one clone per
/// partition, not per record.
fn last_offsets(batch: &[Record]) -> Vec<(Arc<SourcePartition>, SourceOffset)> {
    let mut offsets: Vec<(Arc<SourcePartition>, SourceOffset)> = Vec::new();
    for s in batch.iter().rev().filter_map(|r| r.source.as_ref()) {
        if !offsets
            .iter()
            .any(|(p, _)| Arc::ptr_eq(p, &s.partition) || **p == *s.partition)
        {
            offsets.push((s.partition.clone(), s.offset.clone()));
        }
    }
    offsets
}

/// A record's headers for Kafka, with the runtime's: which source partition
/// it came from and its position there, which idempotent resume reads back.
fn kafka_headers(record: &Record, source: Option<&(Arc<str>, Option<Position>)>) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 2);
    for h in record.headers.iter() {
        headers = headers.insert(KafkaHeader {
            key: &h.key,
            value: h.value.as_deref(),
        });
    }
    if let Some((k, pos)) = source {
        headers = headers.insert(KafkaHeader {
            key: SOURCE_HEADER,
            value: Some(k.as_bytes()),
        });
        if let Some(pos) = pos {
            let position_text = pos.encode();
            headers = headers.insert(KafkaHeader {
                key: POSITION_HEADER,
                value: Some(position_text.as_bytes()),
            });
        }
    }
    headers
}

pub fn producer_context() -> AckContext {
    AckContext
}

/// The batches handed to the producer and not yet acknowledged, oldest first.
#[derive(Default)]
struct Window {
    batches: VecDeque<InFlight>,
    records: u64,
}

impl Window {
    fn push(&mut self, batch: InFlight) {
        self.records += batch.records;
        self.batches.push_back(batch);
    }

    /// The oldest batch, once every record of it is acknowledged.
    fn pop_done(&mut self) -> Option<InFlight> {
        if !self.batches.front()?.acks.is_done() {
            return None;
        }
        let batch = self.batches.pop_front()?;
        self.records -= batch.records;
        Some(batch)
    }

    fn oldest(&self) -> Option<&InFlight> {
        self.batches.front()
    }

    fn is_full(&self) -> bool {
        self.records >= MAX_IN_FLIGHT_RECORDS || self.batches.len() >= MAX_IN_FLIGHT_BATCHES
    }

    fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

struct InFlight {
    acks: Arc<BatchAcks>,
    /// The last offset of each source partition in the batch.
    offsets: Vec<(Arc<SourcePartition>, SourceOffset)>,
    records: u64,
}

/// Offsets of completed batches, waiting to be stored.
#[derive(Default)]
struct Completed {
    offsets: Vec<(Arc<SourcePartition>, SourceOffset)>,
    marks: KafkaMarks,
}

impl Completed {
    fn absorb(&mut self, batch: InFlight, marks: KafkaMarks) {
        for (p, o) in batch.offsets {
            match self
                .offsets
                .iter_mut()
                .find(|(q, _)| Arc::ptr_eq(q, &p) || **q == *p)
            {
                Some(slot) => slot.1 = o,
                None => self.offsets.push((p, o)),
            }
        }
        for (topic, parts) in marks {
            let t = self.marks.entry(topic).or_default();
            for (p, o) in parts {
                let e = t.entry(p).or_insert(o);
                *e = (*e).max(o);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.offsets.is_empty() && self.marks.is_empty()
    }
}

impl SourceRunner {
    pub async fn run(mut self) -> Result<(), ConnectError> {
        self.task.start(self.context.clone()).await?;
        info!(connector = %self.connector, task = self.task_id, "source task started");
        let result = self.run_loop().await;
        let stopped = self.task.stop().await;
        self.producer.flush(Duration::from_secs(5)).ok();
        result.and(stopped)
    }

    async fn run_loop(&mut self) -> Result<(), ConnectError> {
        let mut in_flight = Window::default();
        let mut completed = Completed::default();
        let mut resume = ResumeState::default();
        let mut ready_topics: HashMap<String, i32> = HashMap::new();
        let mut last_store = Instant::now();
        let mut control = self.control.clone();
        loop {
            self.reap(&mut in_flight, &mut completed, false).await?;
            if last_store.elapsed() >= self.flush_interval {
                self.store(&mut completed, &ready_topics).await?;
                last_store = Instant::now();
            }
            let target = *control.borrow_and_update();
            match target {
                TargetState::Stopped => break,
                // Paused: nothing new is polled, but what is in flight completes
                // and its offsets are stored, so a pause leaves nothing pending.
                TargetState::Paused => {
                    if in_flight.is_empty() {
                        self.store(&mut completed, &ready_topics).await?;
                        if *control.borrow() == TargetState::Paused {
                            self.health.confirm_paused();
                        }
                        if control.changed().await.is_err() {
                            break;
                        }
                    } else {
                        self.reap(&mut in_flight, &mut completed, true).await?;
                    }
                    continue;
                }
                TargetState::Running => {}
            }
            if in_flight.is_full() {
                self.reap(&mut in_flight, &mut completed, true).await?;
                continue;
            }
            // Cancelling a poll at a stop loses only in-memory state: nothing it
            // held is acknowledged upstream, and the restart resumes from the
            // stored offsets. A pause lets the poll finish.
            let batch = tokio::select! {
                batch = self.poll_with_retry() => batch?,
                _ = until_stopped(&mut control) => break,
            };
            if batch.is_empty() {
                continue;
            }
            if !self.lease_held(&mut control).await {
                break;
            }
            let sent = self
                .send_batch(batch, &mut resume, &mut ready_topics)
                .await?;
            in_flight.push(sent);
        }
        let deadline = Instant::now() + self.graceful_timeout;
        while !in_flight.is_empty() && Instant::now() < deadline {
            let wait = tokio::time::timeout_at(
                deadline.into(),
                self.reap(&mut in_flight, &mut completed, true),
            );
            if wait.await.is_err() {
                warn!(connector = %self.connector, task = self.task_id, "in-flight records not acknowledged before the shutdown deadline; they will be resent and deduplicated on restart");
                break;
            }
        }
        self.store(&mut completed, &ready_topics).await
    }

    /// Polls, retrying a retriable error until a poll succeeds (or for
    /// `task.retry.timeout.ms`); the caller cancels it at a stop.
    async fn poll_with_retry(&mut self) -> Result<Vec<Record>, ConnectError> {
        let mut backoff = self.policy.task_backoff();
        loop {
            let started = std::time::Instant::now();
            let polled = self.task.poll().await;
            self.metrics
                .call_seconds
                .observe(started.elapsed().as_secs_f64());
            match polled {
                Ok(batch) => {
                    if !batch.is_empty() {
                        self.metrics.batch_records.observe(batch.len() as f64);
                    }
                    if backoff.attempts() > 0 {
                        info!(connector = %self.connector, task = self.task_id, attempts = backoff.attempts(), "poll succeeded again");
                        self.health.recovered();
                    }
                    return Ok(batch);
                }
                Err(e) if e.is_retriable() => match backoff.next_delay() {
                    Some(delay) => {
                        TaskMetrics::add(
                            &self.metrics.retries_by_stage[Stage::TaskPoll.index()],
                            1,
                        );
                        warn!(connector = %self.connector, task = self.task_id, attempt = backoff.attempts(), delay_ms = delay.as_millis() as u64, "poll failed, retrying: {e}");
                        self.health.retrying(format!(
                            "{} failed, retrying: {e}",
                            Stage::TaskPoll.as_str()
                        ));
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(self.poll_error(e)),
                },
                Err(e) => return Err(self.poll_error(e)),
            }
        }
    }

    fn poll_error(&self, e: ConnectError) -> ConnectError {
        ConnectError::new(
            e.kind(),
            format!("{} failed: {}", Stage::TaskPoll.as_str(), e.message()),
        )
        .with_source(e)
    }

    /// Moves finished batches, oldest first, into `completed`. With `block`, waits
    /// for the oldest batch when it is still in flight.
    async fn reap(
        &mut self,
        in_flight: &mut Window,
        completed: &mut Completed,
        block: bool,
    ) -> Result<(), ConnectError> {
        if block {
            if let Some(oldest) = in_flight.oldest() {
                oldest.acks.wait().await;
            }
        }
        while let Some(batch) = in_flight.pop_done() {
            if let Some(why) = batch.acks.failure() {
                return Err(ConnectError::fatal(format!(
                    "{} failed: {why}",
                    Stage::KafkaProduce.as_str()
                )));
            }
            TaskMetrics::add(&self.metrics.records_out, batch.records);
            let marks = batch.acks.take_marks();
            completed.absorb(batch, marks);
        }
        Ok(())
    }

    /// Distributed mode: waits while this worker's lease has lapsed (the
    /// task may be running on another worker by now); false when the task is
    /// stopped meanwhile, which is how a lapsed worker's tasks end.
    async fn lease_held(&mut self, control: &mut watch::Receiver<TargetState>) -> bool {
        let Some(lease) = &self.lease else {
            return true;
        };
        if lease.is_held() {
            return true;
        }
        warn!(connector = %self.connector, task = self.task_id, "this worker's cluster lease has lapsed; holding the batch until it is renewed or the task is stopped");
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if lease.is_held() {
                        return true;
                    }
                }
                _ = until_stopped(control) => return false,
            }
        }
    }

    /// Stores completed offsets durably, then tells the task they are stored.
    async fn store(
        &mut self,
        completed: &mut Completed,
        partitions: &HashMap<String, i32>,
    ) -> Result<(), ConnectError> {
        if completed.is_empty() {
            return Ok(());
        }
        if self.lease.as_ref().is_some_and(|l| !l.is_held()) {
            // Another worker may own the task now; what it stores wins. Not
            // storing only means a replay, which idempotent resume skips.
            debug!(connector = %self.connector, task = self.task_id, "lease lapsed: not storing offsets");
            return Ok(());
        }
        let done = std::mem::take(completed);
        let stored: Vec<(SourcePartition, SourceOffset)> = done
            .offsets
            .iter()
            .map(|(p, o)| ((**p).clone(), o.clone()))
            .collect();
        let marks: Vec<(String, i32, BTreeMap<i32, i64>)> = done
            .marks
            .into_iter()
            .map(|(t, m)| {
                let n = partitions.get(&t).copied().unwrap_or(0);
                (t, n, m)
            })
            .collect();
        let store = self.store.clone();
        let name = self.connector.clone();
        let task = self.task_id;
        let to_write = stored.clone();
        let started = std::time::Instant::now();
        let written = blocking("offset store task", move || {
            store.commit(
                &name,
                Box::new(|c| {
                    for (p, o) in to_write {
                        c.upsert(&p, o);
                    }
                    for (t, n, m) in &marks {
                        c.raise_marks(task, t, *n, m);
                    }
                }),
            )
        })
        .await?;
        self.metrics.commit_done(started, written.is_ok());
        written.map_err(|e| ConnectError::fatal(e.to_string()))?;
        debug!(connector = %self.connector, task = self.task_id, partitions = stored.len(), "source offsets stored");
        self.task.commit(&stored).await
    }

    /// First write to a topic: make sure it exists, check its partition count
    /// against the stored marks, and learn what is already there.
    async fn prepare_topic(
        &mut self,
        topic: &str,
        resume: &mut ResumeState,
        ready: &mut HashMap<String, i32>,
    ) -> Result<(), ConnectError> {
        let partitions = ensure_topic(&self.topics, topic, self.topic_creation)
            .await
            .map_err(|e| ConnectError::retriable(e.to_string()))?;
        self.active_topics.record(topic);
        let mark = self
            .store
            .connector(&self.connector)
            .mark(self.task_id, topic)
            .cloned();
        if let Some(m) = &mark {
            if m.partitions != 0 && m.partitions != partitions {
                return Err(ConnectError::fatal(format!(
                    "topic '{topic}' had {} partitions when offsets were stored and has {partitions} now: keys \
                     map to other partitions, so records replayed after a restart cannot be deduplicated. \
                     Restore the partition count, or reset this connector's offsets to start over",
                    m.partitions
                )));
            }
        }
        let reader = self.reader.clone();
        let (connector, t) = (self.connector.clone(), topic.to_owned());
        let started = Instant::now();
        let found = blocking("resume scan", move || {
            resume::scan_topic(&reader, &connector, &t, partitions, mark.as_ref())
        })
        .await?
        .map_err(|e| {
            ConnectError::retriable(format!("cannot read topic '{topic}' to resume: {e}"))
        })?;
        info!(
            connector = %self.connector,
            task = self.task_id,
            topic,
            partitions,
            source_partitions_found = found.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "resume scan done"
        );
        resume.merge(found);
        ready.insert(topic.to_owned(), partitions);
        Ok(())
    }

    /// One polled batch: transformed, converted and handed to the producer.
    /// Records the resume scan found in Kafka already are skipped; failures
    /// go to the error policy. The batch's offsets are stored once every
    /// record sent is acknowledged.
    async fn send_batch(
        &mut self,
        batch: Vec<Record>,
        resume: &mut ResumeState,
        ready: &mut HashMap<String, i32>,
    ) -> Result<InFlight, ConnectError> {
        TaskMetrics::add(&self.metrics.records_in, batch.len() as u64);
        let offsets = last_offsets(&batch);
        let records = self.transform(batch).await?;
        let acks = BatchAcks::new();
        let mut sent = 0u64;
        let mut last_key: Option<(Arc<SourcePartition>, Arc<str>)> = None;
        let mut seen_topics: HashSet<Arc<str>> = HashSet::new();
        for record in records {
            if !seen_topics.contains(&record.topic) {
                if !ready.contains_key(&*record.topic) {
                    self.prepare_topic(&record.topic, resume, ready).await?;
                }
                seen_topics.insert(record.topic.clone());
            }
            let Some(key) = self.convert(&record, Stage::KeyConverter).await? else {
                continue;
            };
            // The Kafka partition is decided here, not by the producer: idempotent
            // resume compares positions per partition, so a replayed record must
            // land where it landed the first time.
            let position = record.source.as_ref().and_then(|s| s.position);
            let partitions = ready.get(&*record.topic).copied().unwrap_or(1);
            let partition =
                partitioner::partition_of(record.partition, key.as_deref(), position, partitions);
            let source_key = match &record.source {
                Some(s) => {
                    let key = match &last_key {
                        Some((p, k)) if Arc::ptr_eq(p, &s.partition) => k.clone(),
                        _ => {
                            let k: Arc<str> = partition_key(&self.connector, &s.partition).into();
                            last_key = Some((s.partition.clone(), k.clone()));
                            k
                        }
                    };
                    if let (Some(pos), Some(p)) = (s.position, partition) {
                        if resume.is_replay(&key, p, pos) {
                            TaskMetrics::add(&self.metrics.records_skipped, 1);
                            continue;
                        }
                    }
                    Some((key, s.position))
                }
                None => None,
            };
            let Some(value) = self.convert(&record, Stage::ValueConverter).await? else {
                continue;
            };
            let bytes = key.as_ref().map_or(0, Vec::len) + value.as_ref().map_or(0, Vec::len);
            let headers = kafka_headers(&record, source_key.as_ref());
            if self
                .produce(&record, key, value, partition, headers, &acks)
                .await?
            {
                sent += 1;
                TaskMetrics::add(&self.metrics.bytes_out, bytes as u64);
            }
        }
        acks.seal();
        Ok(InFlight {
            acks,
            offsets,
            records: sent,
        })
    }

    /// Applies the transforms; a record one fails goes to the error policy.
    async fn transform(&mut self, batch: Vec<Record>) -> Result<Vec<Record>, ConnectError> {
        if self.transforms.is_empty() {
            return Ok(batch);
        }
        // A record a transform fails is reported as it was polled; render it
        // only when a dead-letter queue will want its bytes.
        let keep = self.policy.keeps_originals();
        let before: Vec<Original> = batch.iter().map(|r| source_original(r, keep)).collect();
        let (records, failures) = self.transforms.apply(batch);
        for f in failures {
            let original = before.get(f.index).cloned();
            self.policy
                .handle(Failure::transformation(f, original))
                .await?;
        }
        Ok(records)
    }

    /// A record's key or value (by `stage`) in bytes; `None` when the
    /// converter failed and the error policy let the record go.
    async fn convert(
        &mut self,
        record: &Record,
        stage: Stage,
    ) -> Result<Option<Option<Vec<u8>>>, ConnectError> {
        let (converter, schema, value) = match stage {
            Stage::KeyConverter => (&mut self.key_converter, &record.key_schema, &record.key),
            _ => (
                &mut self.value_converter,
                &record.value_schema,
                &record.value,
            ),
        };
        match converter.encode(&record.topic, schema.as_ref(), value) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) => {
                let class_name = converter.class_name().to_owned();
                let original = source_original(record, self.policy.keeps_originals());
                self.policy
                    .handle(Failure {
                        stage,
                        class_name,
                        original,
                        error,
                    })
                    .await?;
                Ok(None)
            }
        }
    }

    /// Sends one converted record; false when the client refused it and the
    /// error policy let it go.
    async fn produce(
        &mut self,
        record: &Record,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        partition: Option<i32>,
        headers: OwnedHeaders,
        acks: &Arc<BatchAcks>,
    ) -> Result<bool, ConnectError> {
        let mut out =
            BaseRecord::<[u8], [u8], Arc<BatchAcks>>::with_opaque_to(&record.topic, acks.clone())
                .headers(headers);
        if let Some(k) = key.as_deref() {
            out = out.key(k);
        }
        if let Some(v) = value.as_deref() {
            out = out.payload(v);
        }
        if let Some(p) = partition {
            out = out.partition(p);
        }
        if let Some(ts) = record.timestamp {
            out = out.timestamp(ts);
        }
        acks.expect_one();
        let Err(error) = self.send(out, acks).await else {
            return Ok(true);
        };
        if error.kind() != sluice_api::ErrorKind::Data {
            return Err(error);
        }
        let original = Original {
            topic: record.topic.clone(),
            partition,
            offset: None,
            timestamp: record.timestamp,
            key,
            value,
            headers: record.headers.clone(),
        };
        let class_name = "org.apache.kafka.clients.producer.KafkaProducer".to_owned();
        self.policy
            .handle(Failure {
                stage: Stage::KafkaProduce,
                class_name,
                original,
                error,
            })
            .await?;
        Ok(false)
    }

    /// Hands one record to the producer, waiting while its queue is full.
    async fn send(
        &mut self,
        mut record: BaseRecord<'_, [u8], [u8], Arc<BatchAcks>>,
        acks: &Arc<BatchAcks>,
    ) -> Result<(), ConnectError> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => {
                    acks.cancel_one();
                    // A record the client refuses on its own (too large, bad
                    // partition) is this record's fault, not the producer's: the
                    // error policy decides. Anything else fails the task.
                    let per_record = matches!(
                        e,
                        KafkaError::MessageProduction(
                            RDKafkaErrorCode::MessageSizeTooLarge
                                | RDKafkaErrorCode::InvalidMessageSize
                                | RDKafkaErrorCode::UnknownPartition
                                | RDKafkaErrorCode::InvalidMessage
                        )
                    );
                    let message = format!("{} failed: {e}", Stage::KafkaProduce.as_str());
                    return Err(if per_record {
                        ConnectError::data(message)
                    } else {
                        ConnectError::fatal(message)
                    });
                }
            }
        }
    }
}

/// A source record as error reports show it: with `render`, key and value as
/// JSON (the failing converter may be the one that would have written them);
/// without, its topic alone.
fn source_original(record: &Record, render: bool) -> Original {
    if !render {
        return Original::bare(record.topic.clone());
    }
    let json = |schema: Option<&sluice_api::SchemaRef>, value: &sluice_api::Value| {
        (!value.is_null()).then(|| {
            serde_json::to_vec(&sluice_api::json::JsonView::new(
                schema.map(|s| &**s),
                value,
            ))
            .unwrap_or_else(|_| format!("{value:?}").into_bytes())
        })
    };
    Original {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: None,
        timestamp: record.timestamp,
        key: json(record.key_schema.as_ref(), &record.key),
        value: json(record.value_schema.as_ref(), &record.value),
        headers: record.headers.clone(),
    }
}
