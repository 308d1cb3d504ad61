//! Delivery tracking for source batches. Each record sent carries its batch's
//! `Arc<BatchAcks>` as librdkafka's opaque (a reference count, no allocation);
//! the delivery callback counts it off and remembers the highest Kafka offset per
//! partition, which idempotent resume stores beside the source offsets.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use tokio::sync::Notify;

/// Per topic, per partition: the highest offset acknowledged.
pub type KafkaMarks = HashMap<String, BTreeMap<i32, i64>>;

#[derive(Default)]
pub struct BatchAcks {
    /// Records not yet acknowledged, plus one until the batch is sealed.
    pending: AtomicUsize,
    failure: Mutex<Option<String>>,
    marks: Mutex<KafkaMarks>,
    done: Notify,
}

impl BatchAcks {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            pending: AtomicUsize::new(1),
            ..Default::default()
        })
    }

    /// Counts one more record about to be sent.
    pub fn expect_one(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// Un-counts a record whose send was refused outright.
    pub fn cancel_one(&self) {
        self.settle();
    }

    /// Marks the batch complete: every record of it has been handed to the producer.
    pub fn seal(&self) {
        self.settle();
    }

    fn settle(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }

    pub fn is_done(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    pub async fn wait(&self) {
        while !self.is_done() {
            self.done.notified().await;
        }
    }

    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    pub fn take_marks(&self) -> KafkaMarks {
        std::mem::take(&mut *lock(&self.marks))
    }

    fn acked(&self, topic: &str, partition: i32, offset: i64) {
        {
            let mut marks = lock(&self.marks);
            let per_topic = match marks.get_mut(topic) {
                Some(m) => m,
                None => marks.entry(topic.to_owned()).or_default(),
            };
            let e = per_topic.entry(partition).or_insert(offset);
            *e = (*e).max(offset);
        }
        self.settle();
    }

    fn failed(&self, why: String) {
        lock(&self.failure).get_or_insert(why);
        self.settle();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain data updated in single statements.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The producer context that routes delivery reports to their batch.
pub struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Arc<BatchAcks>;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: Arc<BatchAcks>) {
        match result {
            Ok(m) => batch.acked(m.topic(), m.partition(), m.offset()),
            Err((e, m)) => batch.failed(format!(
                "Kafka rejected a record for {}-{}: {e}",
                m.topic(),
                m.partition()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batch_completes_after_seal_and_all_acks() {
        let b = BatchAcks::new();
        b.expect_one();
        b.expect_one();
        b.expect_one();
        b.acked("t", 0, 5);
        b.acked("t", 0, 3);
        assert!(!b.is_done());
        b.seal();
        assert!(!b.is_done());
        b.failed("boom".into());
        b.wait().await;
        assert_eq!(b.failure().as_deref(), Some("boom"));
        assert_eq!(b.take_marks()["t"][&0], 5);
    }
}
