//! The bytes a sink task's records were read as, kept from the batch that
//! read them until the record's fate is known, for the dead-letter queue.
//!
//! A sink that settles records asynchronously (the Elasticsearch sink's bulk
//! responses) reports a failure after later batches were put; the record's
//! bytes must still be here then. A record is settled once its offset is
//! committed (the task's `pre_commit` only lets through what it acknowledged
//! or reported), so a commit releases everything below it, and a revoked
//! partition releases all of its records. Memory is bounded all the same: past
//! [`MAX_BYTES`] the lowest offsets of the partition holding the most go first
//! (for a synchronous sink those are settled already); a record reported after
//! its bytes went is dead-lettered with its coordinates and headers alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{Original, RecordId};

/// The most original bytes (keys, values, headers) a task keeps.
pub const MAX_BYTES: usize = 64 << 20;

/// Originals by the id the task reports them under, and by the Kafka
/// partition and offset they were read at, to release them in order.
#[derive(Debug)]
pub struct Originals {
    by_id: HashMap<RecordId, Original>,
    /// Kafka (topic, partition) → offset → the id the record was put under
    /// (a transform may have changed its topic or partition).
    by_partition: HashMap<(Arc<str>, i32), BTreeMap<i64, RecordId>>,
    bytes: usize,
    max_bytes: usize,
}

impl Default for Originals {
    fn default() -> Self {
        Self::with_limit(MAX_BYTES)
    }
}

impl Originals {
    pub fn with_limit(max_bytes: usize) -> Self {
        Self {
            by_id: HashMap::new(),
            by_partition: HashMap::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Keeps `original` for the record put as `id` until it is reported,
    /// committed or revoked, evicting the oldest past the limit.
    pub fn insert(&mut self, id: RecordId, original: Original) {
        let Some((partition, offset)) = original.partition.zip(original.offset) else {
            return;
        };
        let topic = original.topic.clone();
        self.bytes += size(&original);
        if let Some(old) = self.by_id.insert(id.clone(), original) {
            self.bytes -= size(&old);
        }
        self.by_partition
            .entry((topic, partition))
            .or_default()
            .insert(offset, id);
        while self.bytes > self.max_bytes {
            let Some(fullest) = self
                .by_partition
                .iter()
                .max_by_key(|(_, offsets)| offsets.len())
                .map(|(tp, _)| tp.clone())
            else {
                break;
            };
            let oldest = self
                .by_partition
                .get_mut(&fullest)
                .and_then(BTreeMap::pop_first);
            match oldest {
                Some((_, id)) => self.drop_id(&id),
                None => {
                    self.by_partition.remove(&fullest);
                }
            }
        }
    }

    /// The original of the record put as `id`, if it is still kept.
    pub fn take(&mut self, id: &RecordId) -> Option<Original> {
        let original = self.by_id.remove(id)?;
        self.bytes -= size(&original);
        if let Some((partition, offset)) = original.partition.zip(original.offset) {
            let key = (original.topic.clone(), partition);
            if let Some(offsets) = self.by_partition.get_mut(&key) {
                offsets.remove(&offset);
                if offsets.is_empty() {
                    self.by_partition.remove(&key);
                }
            }
        }
        Some(original)
    }

    /// Forgets the records of Kafka partition `topic`/`partition` below
    /// `offset` (a committed offset: they are settled).
    pub fn release(&mut self, topic: &str, partition: i32, offset: i64) {
        let key: (Arc<str>, i32) = (Arc::from(topic), partition);
        let Some(offsets) = self.by_partition.get_mut(&key) else {
            return;
        };
        let kept = offsets.split_off(&offset);
        let settled = std::mem::replace(offsets, kept);
        if offsets.is_empty() {
            self.by_partition.remove(&key);
        }
        for id in settled.into_values() {
            self.drop_id(&id);
        }
    }

    /// Forgets every record of a partition the task gave up.
    pub fn forget(&mut self, topic: &str, partition: i32) {
        self.release(topic, partition, i64::MAX);
    }

    fn drop_id(&mut self, id: &RecordId) {
        if let Some(o) = self.by_id.remove(id) {
            self.bytes -= size(&o);
        }
    }
}

fn size(o: &Original) -> usize {
    let bytes = |b: &Option<Vec<u8>>| b.as_ref().map_or(0, Vec::len);
    bytes(&o.key)
        + bytes(&o.value)
        + o.headers
            .iter()
            .map(|h| h.key.len() + bytes(&h.value))
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use sluice_api::Headers;

    use super::*;

    fn original(topic: &str, partition: i32, offset: i64, len: usize) -> Original {
        Original {
            topic: Arc::from(topic),
            partition: Some(partition),
            offset: Some(offset),
            timestamp: None,
            key: Some(format!("k{offset}").into_bytes()),
            value: Some(vec![b'v'; len]),
            headers: Headers::new(),
        }
    }

    fn id(topic: &str, partition: i32, offset: i64) -> RecordId {
        (Arc::from(topic), partition, offset)
    }

    #[test]
    fn a_record_stays_until_it_is_reported() {
        let mut o = Originals::default();
        for offset in 0..10 {
            o.insert(id("t", 0, offset), original("t", 0, offset, 10));
        }
        // Later batches come and go; the first record's bytes are still there.
        for offset in 10..1000 {
            o.insert(id("t", 0, offset), original("t", 0, offset, 10));
        }
        let got = o.take(&id("t", 0, 3)).unwrap();
        assert_eq!(got.key.as_deref(), Some(&b"k3"[..]));
        assert_eq!(got.value.as_deref(), Some(&[b'v'; 10][..]));
        assert!(o.take(&id("t", 0, 3)).is_none());
        assert_eq!(o.by_id.len(), 999);
    }

    #[test]
    fn a_commit_releases_what_it_covers_and_a_revocation_the_partition() {
        let mut o = Originals::default();
        for offset in 0..10 {
            o.insert(id("t", 0, offset), original("t", 0, offset, 10));
            o.insert(id("t", 1, offset), original("t", 1, offset, 10));
        }
        o.release("t", 0, 6);
        assert!(o.take(&id("t", 0, 5)).is_none());
        assert!(o.take(&id("t", 0, 6)).is_some());
        assert_eq!(o.by_id.len(), 3 + 10);
        o.forget("t", 1);
        assert_eq!(o.by_id.len(), 3);
        o.forget("t", 0);
        assert!(o.by_id.is_empty());
        assert_eq!(o.bytes, 0);
    }

    #[test]
    fn a_record_renamed_by_a_transform_is_released_by_its_kafka_partition() {
        let mut o = Originals::default();
        o.insert(id("prefix-t", 0, 4), original("t", 0, 4, 10));
        o.release("t", 0, 5);
        assert!(o.by_id.is_empty());
    }

    #[test]
    fn past_the_limit_the_oldest_offsets_of_the_fullest_partition_go() {
        let mut o = Originals::with_limit(1000);
        for offset in 0..20 {
            o.insert(id("t", 0, offset), original("t", 0, offset, 98));
        }
        o.insert(id("t", 1, 0), original("t", 1, 0, 98));
        assert!(o.bytes <= 1000, "{} bytes kept", o.bytes);
        assert!(o.take(&id("t", 0, 0)).is_none());
        assert!(o.take(&id("t", 0, 19)).is_some());
        assert!(o.take(&id("t", 1, 0)).is_some());
    }
}
