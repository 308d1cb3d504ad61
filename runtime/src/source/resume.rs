//! Idempotent resume: exactly-once from a source into Kafka without transactions.
//!
//! Every source record is produced with two headers naming where it came from:
//! `__sluice.source` (the canonical `["<connector>", {partition}]`) and
//! `__sluice.position` (its [`Position`]). After a crash the task restarts from
//! its last stored offset and emits again the records it had sent since. Before
//! the first write to a topic, the task reads that topic from just past the
//! offsets covered by the stored source offsets to its end, learns the highest
//! position already there for each of its source partitions, and skips every
//! record at or below it. Records of other writers in the same partitions are
//! passed over by their `__sluice.source` header.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers as _, Message};
use rdkafka::{Offset, TopicPartitionList};
use sluice_api::Position;

use crate::storage::TopicMark;

pub const SOURCE_HEADER: &str = "__sluice.source";
pub const POSITION_HEADER: &str = "__sluice.position";

const SCAN_TIMEOUT: Duration = Duration::from_secs(120);

/// Highest position already in Kafka per source-partition key and Kafka
/// partition, for the topics scanned so far.
///
/// Per Kafka partition, because the idempotent producer keeps order only within
/// one: at a crash, a later record may be in partition 3 while an earlier one,
/// bound for partition 5, never arrived. Within one partition, what is there is
/// always a prefix of what was sent.
#[derive(Debug, Default)]
pub struct ResumeState {
    written: HashMap<(String, i32), Position>,
}

impl ResumeState {
    /// True when a record at `position` of `partition_key` is already in Kafka.
    /// Positions only grow, so once one record passes, the key is forgotten.
    pub fn is_replay(
        &mut self,
        partition_key: &str,
        kafka_partition: i32,
        position: Position,
    ) -> bool {
        if self.written.is_empty() {
            return false;
        }
        // Looking up by (&str, i32) needs an owned key; build it only when the
        // map is not empty, i.e. just after a restart.
        let key = (partition_key.to_owned(), kafka_partition);
        match self.written.get(&key) {
            Some(max) if position <= *max => true,
            Some(_) => {
                self.written.remove(&key);
                false
            }
            None => false,
        }
    }

    pub fn merge(&mut self, found: HashMap<(String, i32), Position>) {
        for (k, p) in found {
            let e = self.written.entry(k).or_insert(p);
            *e = (*e).max(p);
        }
    }
}

/// The highest position per (source-partition key, Kafka partition).
type Found = HashMap<(String, i32), Position>;

/// How long a restarted task waits for writes of its dead predecessor that
/// were still on their way to the broker, before trusting what it scanned.
const SETTLE: Duration = Duration::from_secs(1);

/// Reads `topic` past `mark` to its end and returns the highest position per
/// source-partition key of `connector`. Blocking.
///
/// A killed predecessor may have had batches in flight that the broker appends
/// only after this scan has read to the end; replaying those records would
/// double them. So when there was a predecessor (stored marks, or its records
/// found), the scan waits [`SETTLE`] and reads on from where it stopped. Until
/// this task writes, any record of its source partitions found there can only
/// be the predecessor's. (Other tasks of the connector may be writing already;
/// their positions are of other source partitions and change nothing.)
pub fn scan_topic(
    reader: &crate::kafka::Reader,
    connector: &str,
    topic: &str,
    partitions: i32,
    mark: Option<&TopicMark>,
) -> Result<HashMap<(String, i32), Position>, KafkaError> {
    let prefix = format!("[{}", serde_json::Value::from(connector));
    let starts: BTreeMap<i32, i64> = (0..partitions)
        .map(|p| (p, mark.and_then(|m| m.acked.get(&p)).map_or(0, |o| o + 1)))
        .collect();
    let (mut found, ends) = scan_range(reader, &prefix, topic, &starts)?;
    // No marks and nothing found: no predecessor ever wrote here.
    if found.is_empty() && mark.is_none() {
        return Ok(found);
    }
    std::thread::sleep(SETTLE);
    let (late, _) = scan_range(reader, &prefix, topic, &ends)?;
    if !late.is_empty() {
        tracing::debug!(
            topic,
            keys = late.len(),
            "records found after the settle pause"
        );
    }
    for (k, p) in late {
        let e = found.entry(k).or_insert(p);
        *e = (*e).max(p);
    }
    Ok(found)
}

/// Reads each partition from `starts` to its current end; returns the highest
/// position per source-partition key found, and where each partition ended.
fn scan_range(
    reader: &crate::kafka::Reader,
    prefix: &str,
    topic: &str,
    starts: &BTreeMap<i32, i64>,
) -> Result<(Found, BTreeMap<i32, i64>), KafkaError> {
    let mut ends = BTreeMap::new();
    let mut reached = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for (&p, &start) in starts {
        let (low, high) = reader.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        let start = start.max(low);
        reached.insert(p, start.max(high));
        if start < high {
            tpl.add_partition_offset(topic, p, Offset::Offset(start))?;
            ends.insert(p, high);
        }
    }
    let mut found = HashMap::new();
    if ends.is_empty() {
        return Ok((found, reached));
    }
    reader.assign(&tpl)?;
    let deadline = Instant::now() + SCAN_TIMEOUT;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            reader.unassign()?;
            return Err(KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        let Some(result) = reader.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = match result {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(p)) => {
                ends.remove(&p);
                continue;
            }
            Err(e) => {
                reader.unassign()?;
                return Err(e);
            }
        };
        if let Some(headers) = msg.headers() {
            let mut source = None;
            let mut position = None;
            for h in headers.iter() {
                match h.key {
                    SOURCE_HEADER => source = h.value.and_then(|v| std::str::from_utf8(v).ok()),
                    POSITION_HEADER => {
                        position = h
                            .value
                            .and_then(|v| std::str::from_utf8(v).ok())
                            .and_then(Position::decode)
                    }
                    _ => {}
                }
            }
            if let (Some(s), Some(p)) = (source, position) {
                if s.starts_with(prefix) {
                    let e = found.entry((s.to_owned(), msg.partition())).or_insert(p);
                    *e = (*e).max(p);
                }
            }
        }
        if ends
            .get(&msg.partition())
            .is_some_and(|end| msg.offset() + 1 >= *end)
        {
            ends.remove(&msg.partition());
        }
    }
    reader.unassign()?;
    Ok((found, reached))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_skipped_per_kafka_partition_until_passed() {
        let mut s = ResumeState::default();
        s.merge(HashMap::from([
            (("k".to_owned(), 3), Position::new(100, 0)),
            (("k".to_owned(), 5), Position::new(98, 0)),
        ]));
        assert!(s.is_replay("k", 3, Position::new(100, 0)));
        // 99 was bound for partition 5 and never arrived: it must be sent.
        assert!(!s.is_replay("k", 5, Position::new(99, 0)));
        assert!(s.is_replay("k", 3, Position::new(90, 0)));
        assert!(!s.is_replay("k", 3, Position::new(101, 0)));
        assert!(
            !s.is_replay("k", 3, Position::new(3, 0)),
            "forgotten once passed"
        );
        assert!(!s.is_replay("other", 3, Position::new(0, 0)));
    }
}
