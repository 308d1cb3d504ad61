//! Replaying a dead-letter queue: its records go back to the topic they failed
//! on (from `__connect.errors.topic`, or a given topic), unchanged but for the
//! error headers, once the cause is fixed.
//!
//! Progress is a consumer group per DLQ topic and filter, committed only after
//! every moved record is acknowledged: a second run moves nothing twice, and an
//! interrupted run resumes where its last commit left it (a record may then be
//! moved again, never lost).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{
    BorrowedMessage, Header as KafkaHeader, Headers as _, Message, OwnedHeaders,
};
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::ERROR_HEADER_PREFIX;
use crate::config::WorkerConfig;
use crate::error::WorkerError;
use crate::kafka;

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub dlq_topic: String,
    /// Where to send records; `None` sends each to its `__connect.errors.topic`.
    pub to: Option<String>,
    /// Only records whose `__connect.errors.<name>` header equals the value.
    pub filters: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    pub moved: u64,
    /// Records the filters passed over.
    pub skipped: u64,
    pub by_topic: BTreeMap<String, u64>,
}

impl ReplayOptions {
    /// The consumer group that records this replay's progress.
    pub fn progress_group(&self) -> String {
        let mut g = format!("sluice-dlq-replay.{}", self.dlq_topic);
        for (k, v) in &self.filters {
            g.push_str(&format!(".{k}={v}"));
        }
        g
    }
}

/// Moves every record from the committed progress to the end the DLQ had when
/// the replay started. Blocking.
pub fn replay(worker: &WorkerConfig, opts: &ReplayOptions) -> Result<ReplayReport, WorkerError> {
    replay_with_progress(worker, opts, &|_, _| {})
}

/// As `replay`, telling `progress` the records read so far and the records to
/// read in all, after each record (for the CLI's progress bar).
pub fn replay_with_progress(
    worker: &WorkerConfig,
    opts: &ReplayOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<ReplayReport, WorkerError> {
    let group = opts.progress_group();
    let consumer = kafka::plain_consumer(worker, &group)?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        kafka::producer(worker, DefaultProducerContext, &[])?;
    let (assignment, mut ends, total) = plan(&consumer, &opts.dlq_topic)?;
    let mut report = ReplayReport::default();
    if ends.is_empty() {
        return Ok(report);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| WorkerError::kafka("assign", e))?;
    let mut read = 0u64;
    let mut progress_by_partition = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(WorkerError::Other(
                "replay timed out reading the dead-letter queue".into(),
            ));
        }
        let Some(result) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = result.map_err(|e| WorkerError::kafka("read the dead-letter queue", e))?;
        let (p, offset) = (m.partition(), m.offset());
        read += 1;
        progress(read, total);
        if ends.get(&p).is_some_and(|end| offset + 1 >= *end) {
            ends.remove(&p);
        }
        progress_by_partition.insert(p, offset + 1);
        if !opts
            .filters
            .iter()
            .all(|(k, v)| error_header(&m, k).as_deref() == Some(v.as_str()))
        {
            report.skipped += 1;
            continue;
        }
        let Some(target) = opts.to.clone().or_else(|| error_header(&m, "topic")) else {
            return Err(WorkerError::Other(format!(
                "record {}-{p}@{offset} has no {ERROR_HEADER_PREFIX}topic header (the connector ran without \
                 errors.deadletterqueue.context.headers.enable=true); say where it goes with --to",
                opts.dlq_topic
            )));
        };
        send(&producer, &m, &target)?;
        report.moved += 1;
        *report.by_topic.entry(target).or_default() += 1;
    }
    record_progress(&consumer, &producer, &opts.dlq_topic, progress_by_partition)?;
    Ok(report)
}

/// Where the replay starts (the committed progress, or the log start) and
/// ends (the end when it started) in each partition of the DLQ with records
/// left to move, and how many records that is in all.
fn plan(
    consumer: &BaseConsumer,
    dlq_topic: &str,
) -> Result<(TopicPartitionList, BTreeMap<i32, i64>, u64), WorkerError> {
    let md = consumer
        .fetch_metadata(Some(dlq_topic), TIMEOUT)
        .map_err(|e| WorkerError::kafka(format!("read metadata of '{dlq_topic}'"), e))?;
    let partitions: Vec<i32> = md
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        return Err(WorkerError::Other(format!(
            "topic '{dlq_topic}' does not exist"
        )));
    }
    let mut wanted = TopicPartitionList::new();
    for p in &partitions {
        wanted.add_partition(dlq_topic, *p);
    }
    let committed = consumer
        .committed_offsets(wanted, TIMEOUT)
        .map_err(|e| WorkerError::kafka("read replay progress", e))?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    let mut total = 0u64;
    for p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(dlq_topic, *p, TIMEOUT)
            .map_err(|e| WorkerError::kafka("read watermarks", e))?;
        let start = match committed.find_partition(dlq_topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o.max(low),
            _ => low,
        };
        if start < high {
            assignment
                .add_partition_offset(dlq_topic, *p, Offset::Offset(start))
                .map_err(|e| WorkerError::kafka("assign", e))?;
            ends.insert(*p, high);
            total += (high - start) as u64;
        }
    }
    Ok((assignment, ends, total))
}

/// A `__connect.errors.<name>` header of a DLQ record, as text.
fn error_header(m: &BorrowedMessage<'_>, name: &str) -> Option<String> {
    let key = format!("{ERROR_HEADER_PREFIX}{name}");
    m.headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Sends a DLQ record to `target` as it was, but for the error headers,
/// waiting while the producer's queue is full.
fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    m: &BorrowedMessage<'_>,
    target: &str,
) -> Result<(), WorkerError> {
    let mut headers = OwnedHeaders::new();
    if let Some(hs) = m.headers() {
        for h in hs
            .iter()
            .filter(|h| !h.key.starts_with(ERROR_HEADER_PREFIX))
        {
            headers = headers.insert(KafkaHeader {
                key: h.key,
                value: h.value,
            });
        }
    }
    let mut record = BaseRecord::<[u8], [u8]>::to(target).headers(headers);
    if let Some(k) = m.key() {
        record = record.key(k);
    }
    if let Some(v) = m.payload() {
        record = record.payload(v);
    }
    if let Some(ts) = m.timestamp().to_millis() {
        record = record.timestamp(ts);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(WorkerError::kafka(format!("write to '{target}'"), e)),
        }
    }
}

/// Commits the replay's progress, only once Kafka holds every moved record.
fn record_progress(
    consumer: &BaseConsumer,
    producer: &ThreadedProducer<DefaultProducerContext>,
    dlq_topic: &str,
    progress: BTreeMap<i32, i64>,
) -> Result<(), WorkerError> {
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| WorkerError::kafka("flush replayed records", e))?;
    if producer.in_flight_count() > 0 {
        return Err(WorkerError::Other(
            "some replayed records were not acknowledged; progress not recorded".into(),
        ));
    }
    let mut done = TopicPartitionList::new();
    for (p, next) in progress {
        done.add_partition_offset(dlq_topic, p, Offset::Offset(next))
            .map_err(|e| WorkerError::kafka("commit", e))?;
    }
    consumer
        .commit(&done, CommitMode::Sync)
        .map_err(|e| WorkerError::kafka("record replay progress", e))
}
