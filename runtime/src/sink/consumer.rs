//! The sink's Kafka consumer, polled on its own thread. Batches and rebalance
//! events travel to the async task loop over one channel, in the order they
//! happen; a rebalance callback waits for the loop's answer, so partitions are
//! flushed and committed before they are given up, and a sink that keeps its own
//! offsets can say where to resume before fetching starts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sluice_api::{OffsetMap, Rewinds, TopicPartition};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, warn};

use crate::control::TargetState;

/// A record as read from Kafka, before conversion.
pub struct RawRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: sluice_api::Headers,
}

impl RawRecord {
    pub fn coordinates(&self) -> String {
        format!("{}-{}@{}", self.topic, self.partition, self.offset)
    }
}

pub enum ConsumerEvent {
    Batch(Vec<RawRecord>),
    /// Newly assigned partitions; answer with the offsets to start from, if any.
    Assigned(Vec<TopicPartition>, std_mpsc::SyncSender<OffsetMap>),
    /// Partitions about to be taken away; answer once they are committed.
    Revoked(Vec<TopicPartition>, std_mpsc::SyncSender<()>),
    /// The consumer hit an error it cannot get past.
    Fatal(String),
    /// The consumer's partitions are paused; nothing fetched after this.
    Paused,
    /// The partition was sought back as asked: its records after this come
    /// from the new position, those before it are stale.
    Rewound(TopicPartition),
}

/// The most records a batch is sized for up front; a larger
/// `max.poll.records` grows as records come.
const MAX_RESERVED: usize = 1 << 16;

/// How long a rebalance callback waits for the task loop (a slow flush).
const REBALANCE_ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

pub struct SinkContext {
    events: mpsc::Sender<ConsumerEvent>,
    connector: String,
    task: u32,
    /// Subscribed topics already reported missing, so each is said once.
    missing: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// What librdkafka says of a subscribed topic that does not exist.
const TOPIC_NOT_AVAILABLE: &str = "Subscribed topic not available: ";

impl ClientContext for SinkContext {
    /// A subscribed topic that does not exist yet is a normal moment (a CDC
    /// source creates its topics on its first change, often after the sink
    /// subscribed), which librdkafka reports as an error on every metadata
    /// refresh: say it once per topic, as a warning, in our words. Every
    /// other client error is logged as librdkafka's default does.
    fn error(&self, error: KafkaError, reason: &str) {
        let topic = reason
            .split_once(TOPIC_NOT_AVAILABLE)
            .map(|(_, rest)| rest.split_once(": ").map_or(rest, |(t, _)| t));
        match topic {
            Some(topic) => {
                let first = self
                    .missing
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(topic.to_owned());
                if first {
                    warn!(connector = %self.connector, task = self.task, topic, "subscribed topic does not exist yet; the sink reads it once it is created");
                }
            }
            None => {
                error!(connector = %self.connector, task = self.task, "librdkafka: {error}: {reason}")
            }
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

impl ConsumerContext for SinkContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        // Only the poll thread may wait for the task loop. A rebalance raised
        // elsewhere (the consumer closing on an async thread) must not block it.
        let may_wait = tokio::runtime::Handle::try_current().is_err();
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let (tx, rx) = std_mpsc::sync_channel(1);
                if may_wait
                    && self
                        .events
                        .blocking_send(ConsumerEvent::Assigned(partitions(tpl), tx))
                        .is_ok()
                {
                    if let Ok(seeks) = rx.recv_timeout(REBALANCE_ANSWER_TIMEOUT) {
                        for (tp, offset) in seeks {
                            if let Err(e) = tpl.set_partition_offset(
                                &tp.topic,
                                tp.partition,
                                Offset::Offset(offset),
                            ) {
                                warn!(topic = %tp.topic, partition = tp.partition, "cannot seek on assignment: {e}");
                            }
                        }
                    }
                }
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let (tx, rx) = std_mpsc::sync_channel(1);
                if may_wait
                    && self
                        .events
                        .blocking_send(ConsumerEvent::Revoked(partitions(tpl), tx))
                        .is_ok()
                {
                    let _ = rx.recv_timeout(REBALANCE_ANSWER_TIMEOUT);
                }
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                error!("rebalance error: {other:?}");
                Ok(())
            }
        };
        if let Err(e) = result {
            error!("cannot apply rebalance: {e}");
        }
    }
}

pub type SinkConsumer = BaseConsumer<SinkContext>;

pub fn context(events: mpsc::Sender<ConsumerEvent>, connector: &str, task: u32) -> SinkContext {
    SinkContext {
        events,
        connector: connector.to_owned(),
        task,
        missing: Default::default(),
    }
}

/// Seeks to the offsets the task asked to rewind to, dropping held records of
/// those partitions, and tells the task each partition's outcome. False once
/// the task loop has gone away.
fn rewind(
    consumer: &SinkConsumer,
    seeks: &Rewinds,
    held: &mut Vec<RawRecord>,
    events: &mpsc::Sender<ConsumerEvent>,
) -> bool {
    for (tp, offset) in seeks.take() {
        held.retain(|r| !(r.partition == tp.partition && *r.topic == *tp.topic));
        let sought = consumer.seek(
            &tp.topic,
            tp.partition,
            Offset::Offset(offset),
            Duration::from_secs(10),
        );
        let event = match sought {
            Ok(()) => ConsumerEvent::Rewound(tp),
            // Reading on from the old position would skip records.
            Err(e) => ConsumerEvent::Fatal(format!("cannot rewind {tp} to {offset}: {e}")),
        };
        if events.blocking_send(event).is_err() {
            return false;
        }
    }
    true
}

/// Polls `consumer` until `stop` is set or the task loop goes away, sending
/// batches of at most `max_records`, with the records' headers if `headers`.
///
/// While the connector is paused the consumer stays in its group (polling
/// serves rebalances and keeps it a member) but its partitions are paused, so
/// nothing new is fetched. Records that were already fetched are held back and
/// delivered on resume, unless their partition has been taken away meanwhile.
pub fn poll_loop(
    consumer: Arc<SinkConsumer>,
    events: mpsc::Sender<ConsumerEvent>,
    max_records: usize,
    headers: bool,
    stop: Arc<AtomicBool>,
    control: watch::Receiver<TargetState>,
    seeks: Arc<Rewinds>,
) {
    let mut topics = TopicNames::default();
    let mut held: Vec<RawRecord> = Vec::new();
    let mut was_paused = false;
    while !stop.load(Ordering::Acquire) {
        if !rewind(&consumer, &seeks, &mut held, &events) {
            return;
        }
        let paused = *control.borrow() == TargetState::Paused;
        let assignment = (paused || was_paused)
            .then(|| consumer.assignment().ok())
            .flatten();
        if let Some(assignment) = assignment {
            // Re-pausing every round also covers partitions assigned meanwhile.
            let result = if paused {
                consumer.pause(&assignment)
            } else {
                consumer.resume(&assignment)
            };
            if let Err(e) = result {
                warn!("cannot pause or resume partitions: {e}");
            }
            if paused && !held.is_empty() {
                let owned = partitions(&assignment);
                held.retain(|r| {
                    owned
                        .iter()
                        .any(|tp| tp.partition == r.partition && *tp.topic == *r.topic)
                });
            }
        }
        if paused && !was_paused && events.blocking_send(ConsumerEvent::Paused).is_err() {
            return;
        }
        was_paused = paused;
        let mut batch = if paused {
            Vec::new()
        } else {
            std::mem::take(&mut held)
        };
        let mut wait = Duration::from_millis(100);
        while batch.len() < max_records {
            let Some(result) = consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            match result {
                Ok(m) => {
                    // Grown a record at a time, a batch of thousands was copied
                    // a dozen times over (6 % of a file sink's instructions).
                    if batch.len() == batch.capacity() {
                        let target = max_records.min(MAX_RESERVED);
                        batch.reserve(target.saturating_sub(batch.len()).max(1));
                    }
                    batch.push(topics.raw_record(&m, headers));
                }
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(e) if is_fatal(&e) => {
                    let _ = events.blocking_send(ConsumerEvent::Fatal(e.to_string()));
                    return;
                }
                // A subscribed topic not created yet: the client context
                // says so once; here it would repeat on every poll.
                Err(e)
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition) =>
                {
                    debug!("consumer error (retrying): {e}")
                }
                Err(e) => warn!("consumer error (retrying): {e}"),
            }
        }
        if paused {
            held.append(&mut batch);
            continue;
        }
        if !batch.is_empty() && events.blocking_send(ConsumerEvent::Batch(batch)).is_err() {
            return;
        }
    }
}

/// Topic names as the records share them, one `Arc` per topic.
#[derive(Default)]
struct TopicNames {
    by_name: HashMap<String, Arc<str>>,
    /// Fetches come in runs of one topic: the last is compared before hashing.
    last: Option<Arc<str>>,
}

impl TopicNames {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(last) = self.last.as_ref().filter(|t| ***t == *name) {
            return last.clone();
        }
        let topic = match self.by_name.get(name) {
            Some(t) => t.clone(),
            None => self
                .by_name
                .entry(name.to_owned())
                .or_insert_with(|| name.into())
                .clone(),
        };
        self.last = Some(topic.clone());
        topic
    }

    /// The message as the runner takes it, with its headers if `headers`.
    fn raw_record(&mut self, m: &BorrowedMessage<'_>, headers: bool) -> RawRecord {
        let mut record_headers = sluice_api::Headers::new();
        if let Some(hs) = headers.then(|| m.headers()).flatten() {
            for h in hs.iter() {
                record_headers.push(h.key.to_owned(), h.value.map(<[u8]>::to_vec));
            }
        }
        RawRecord {
            topic: self.get(m.topic()),
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: record_headers,
        }
    }
}

fn is_fatal(e: &KafkaError) -> bool {
    e.rdkafka_error_code().is_some_and(|c| {
        matches!(
            c,
            rdkafka::types::RDKafkaErrorCode::Fatal
                | rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
                | rdkafka::types::RDKafkaErrorCode::GroupAuthorizationFailed
                | rdkafka::types::RDKafkaErrorCode::SaslAuthenticationFailed
        )
    })
}
