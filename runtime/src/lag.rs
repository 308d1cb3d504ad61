//! Sink consumer lag: every `metrics.lag.refresh.ms`, each sink task's
//! assigned partitions with their log-end offset (asked of the broker), the
//! group's committed offset (asked of the group coordinator) and the consumer's
//! position (what the task has been handed). Kafka Connect documents
//! `sink-record-lag-max` but never computes it; this is what fills it, the lag
//! metrics and `GET /connectors/{name}/lag`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tracing::debug;

use crate::metrics::{PartitionLag, TaskMetrics};
use crate::sink::SinkConsumer;

/// How long one broker request of a refresh may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Refreshes `metrics.partitions` from `consumer` every `interval` until the
/// consumer or the metrics are dropped (the task ended).
pub fn spawn_sink_lag(
    connector: &str,
    task: u32,
    consumer: &Arc<SinkConsumer>,
    metrics: &Arc<TaskMetrics>,
    interval: Duration,
) {
    let connector = connector.to_owned();
    let (consumer, metrics): (Weak<SinkConsumer>, Weak<TaskMetrics>) =
        (Arc::downgrade(consumer), Arc::downgrade(metrics));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (Some(c), Some(m)) = (consumer.upgrade(), metrics.upgrade()) else {
                break;
            };
            // Held only for the read (milliseconds): should the task end
            // meanwhile, the consumer closes on this blocking thread instead
            // of the runner's, just as off the async threads.
            let read = tokio::task::spawn_blocking(move || {
                let now = read_partitions(&c);
                (now, m)
            })
            .await;
            match read {
                Ok((Ok(now), m)) => m.set_partitions(now),
                // The broker being away shows as stale figures, not a failure:
                // the task reports the outage itself.
                Ok((Err(e), _)) => {
                    debug!(connector = %connector, task, "cannot refresh consumer lag: {e}")
                }
                Err(_) => break,
            }
        }
    });
}

/// The consumer's assignment with its offsets, read from the broker.
pub fn read_partitions(
    consumer: &SinkConsumer,
) -> Result<Vec<PartitionLag>, rdkafka::error::KafkaError> {
    let assignment = consumer.assignment()?;
    if assignment.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = consumer.committed_offsets(assignment.clone(), REQUEST_TIMEOUT)?;
    let position = consumer.position()?;
    let offset_of = |tpl: &TopicPartitionList, topic: &str, partition: i32| match tpl
        .find_partition(topic, partition)
        .map(|e| e.offset())
    {
        Some(Offset::Offset(o)) => Some(o),
        _ => None,
    };
    let mut out = Vec::with_capacity(assignment.count());
    for e in assignment.elements() {
        let (topic, partition) = (e.topic(), e.partition());
        let (low, high) = consumer.fetch_watermarks(topic, partition, REQUEST_TIMEOUT)?;
        // Nothing committed yet: a restart reads from the log start (Connect's
        // auto.offset.reset=earliest), so all of it counts as lag.
        let committed = offset_of(&committed, topic, partition).unwrap_or(low);
        let position = offset_of(&position, topic, partition).unwrap_or(committed);
        out.push(PartitionLag {
            topic: topic.to_owned(),
            partition,
            log_end_offset: high,
            committed_offset: committed,
            position,
        });
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

/// The largest lag of `partitions`, Connect's `sink-record-lag-max`.
pub fn max_lag(partitions: &[PartitionLag]) -> i64 {
    partitions.iter().map(PartitionLag::lag).max().unwrap_or(0)
}
