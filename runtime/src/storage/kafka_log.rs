//! A topic read from its beginning into memory and appended to (Connect's
//! `KafkaBasedLog`): the one mechanism under the config, offset and status
//! topics. A background thread reads every partition and hands each record to
//! the store's `apply`, in log order; the store keeps its view from those
//! records alone, so every worker reading the same log builds the same view.
//!
//! A writer that must see its own write waits until the reader has passed
//! the record's offset (`append`), and a worker that must see everything
//! written so far waits until the reader has reached the end offsets it
//! asked the broker for (`read_to_end`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, error};

use crate::config::WorkerConfig;
use crate::error::WorkerError;
use crate::kafka;

/// How long one poll of the reader waits before it checks whether to stop.
const POLL: Duration = Duration::from_millis(100);

/// One record as the reader hands it to a store.
pub struct LogRecord<'a> {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    /// `None` is a tombstone: the key is deleted.
    pub value: Option<&'a [u8]>,
}

/// A record to append: its key and value (`None`, a tombstone).
pub type Entry = (Vec<u8>, Option<Vec<u8>>);

/// Where the reader is: per partition, the next offset it will read.
#[derive(Default)]
struct Progress {
    next: Mutex<BTreeMap<i32, i64>>,
    moved: Condvar,
}

impl Progress {
    fn advance(&self, partition: i32, next: i64) {
        let mut n = lock(&self.next);
        let e = n.entry(partition).or_insert(next);
        *e = (*e).max(next);
        self.moved.notify_all();
    }

    /// Waits until every `(partition, offset)` of `targets` is read, i.e. the
    /// reader's next offset is past it.
    fn wait_past(&self, targets: &BTreeMap<i32, i64>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut n = lock(&self.next);
        loop {
            let done = targets
                .iter()
                .all(|(p, o)| n.get(p).is_some_and(|next| next > o));
            if done {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            n = self
                .moved
                .wait_timeout(n, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Only whole values are stored under these locks; a poisoned one is consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a send is told when its record is acknowledged: (partition, offset).
type Delivered = SyncSender<Result<(i32, i64), String>>;

/// Hands each acknowledgement to the sender waiting for it, if any.
struct Deliveries {
    topic: String,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Option<Delivered>>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiting: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => {
                error!(topic = %self.topic, "cannot write to the internal topic: {e}");
                Err(e.to_string())
            }
        };
        if let Some(tx) = *waiting {
            // The sender may have given up waiting; then nobody needs this.
            let _ = tx.send(outcome);
        }
    }
}

pub struct KafkaLog {
    topic: String,
    producer: ThreadedProducer<Deliveries>,
    /// Asks the broker for end offsets; the reader thread owns its own consumer.
    offsets: kafka::Reader,
    partitions: Vec<i32>,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    timeout: Duration,
}

impl KafkaLog {
    /// Starts reading `topic` from its beginning, handing every record to
    /// `apply`, and returns once everything already in it has been read.
    /// `timeout` bounds every wait for the broker.
    pub fn open(
        worker: &WorkerConfig,
        topic: &str,
        timeout: Duration,
        mut apply: impl FnMut(LogRecord<'_>) + Send + 'static,
    ) -> Result<Self, WorkerError> {
        let offsets = kafka::reader(worker)?;
        let md = offsets
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| WorkerError::kafka(format!("read the metadata of '{topic}'"), e))?;
        let partitions: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(WorkerError::Other(format!(
                "internal topic '{topic}' has no partitions"
            )));
        }
        let consumer = kafka::reader(worker)?;
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .map_err(|e| WorkerError::kafka("assign partitions", e))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| WorkerError::kafka(format!("read '{topic}'"), e))?;
        let progress = Arc::new(Progress::default());
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (progress, stop, name) = (progress.clone(), stop.clone(), topic.to_owned());
            std::thread::Builder::new()
                .name(format!("log-{topic}"))
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        match consumer.poll(POLL) {
                            Some(Ok(m)) => {
                                apply(LogRecord {
                                    partition: m.partition(),
                                    offset: m.offset(),
                                    key: m.key(),
                                    value: m.payload(),
                                });
                                progress.advance(m.partition(), m.offset() + 1);
                            }
                            Some(Err(KafkaError::PartitionEOF(p))) => {
                                // At the end: the next offset is the position,
                                // even when compaction left a gap before it.
                                if let Ok(pos) = consumer.position() {
                                    if let Some(Offset::Offset(o)) =
                                        pos.find_partition(&name, p).map(|e| e.offset())
                                    {
                                        progress.advance(p, o);
                                    }
                                }
                            }
                            Some(Err(e)) => {
                                debug!(topic = %name, "reading the internal topic: {e}")
                            }
                            None => {}
                        }
                    }
                })
                .map_err(|e| {
                    WorkerError::Other(format!("cannot start the reader of '{topic}': {e}"))
                })?
        };
        let overrides = [("partitioner", "murmur2_random".to_owned())];
        let config = kafka::producer_config(worker, &overrides);
        let producer = ThreadedProducer::from_config_and_context(
            &config,
            Deliveries {
                topic: topic.to_owned(),
            },
        )
        .map_err(|e| WorkerError::kafka("create a producer", e))?;
        let log = Self {
            topic: topic.to_owned(),
            producer,
            offsets,
            partitions,
            progress,
            stop,
            reader: Some(reader),
            timeout,
        };
        log.read_to_end()?;
        Ok(log)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Waits until the reader has read everything written before the call.
    pub fn read_to_end(&self) -> Result<(), WorkerError> {
        let mut ends = BTreeMap::new();
        for p in &self.partitions {
            let (low, high) = self
                .offsets
                .fetch_watermarks(&self.topic, *p, self.timeout)
                .map_err(|e| {
                    WorkerError::kafka(format!("read the end of {}-{p}", self.topic), e)
                })?;
            if high > low {
                // Read past the last offset: high - 1.
                ends.insert(*p, high - 1);
            }
        }
        if self.progress.wait_past(&ends, self.timeout) {
            Ok(())
        } else {
            Err(WorkerError::Other(format!(
                "could not read internal topic '{}' to its end within {} ms",
                self.topic,
                self.timeout.as_millis()
            )))
        }
    }

    /// Writes records and returns once each is acknowledged and read back, so
    /// the store's view holds them (and everything before them).
    pub fn append(&self, records: &[Entry]) -> Result<(), WorkerError> {
        let (tx, rx) = sync_channel(records.len().max(1));
        for (key, value) in records {
            self.send(key, value.as_deref(), Some(tx.clone()))?;
        }
        drop(tx);
        let mut written: BTreeMap<i32, i64> = BTreeMap::new();
        let deadline = Instant::now() + self.timeout;
        for _ in records {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ok((p, o))) => {
                    let e = written.entry(p).or_insert(o);
                    *e = (*e).max(o);
                }
                Ok(Err(e)) => {
                    return Err(WorkerError::Other(format!(
                        "cannot write to internal topic '{}': {e}",
                        self.topic
                    )))
                }
                Err(_) => {
                    return Err(WorkerError::Other(format!(
                        "internal topic '{}' did not acknowledge a write within {} ms",
                        self.topic,
                        self.timeout.as_millis()
                    )))
                }
            }
        }
        if self.progress.wait_past(&written, self.timeout) {
            Ok(())
        } else {
            Err(WorkerError::Other(format!(
                "wrote to internal topic '{}' but could not read it back within {} ms",
                self.topic,
                self.timeout.as_millis()
            )))
        }
    }

    /// Writes a record without waiting: it is ordered after every earlier
    /// write of this log, and a failure is logged.
    pub fn append_later(&self, key: &[u8], value: Option<&[u8]>) {
        if let Err(e) = self.send(key, value, None) {
            error!(topic = %self.topic, "cannot write to the internal topic: {e}");
        }
    }

    fn send(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        waiting: Option<Delivered>,
    ) -> Result<(), WorkerError> {
        let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new(waiting)).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        self.producer
            .send(record)
            .map_err(|(e, _)| WorkerError::kafka(format!("write to '{}'", self.topic), e))
    }
}

impl Drop for KafkaLog {
    fn drop(&mut self) {
        // What was written without waiting still goes out before the log closes.
        let _ = self.producer.flush(self.timeout);
        self.stop.store(true, Ordering::Release);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
