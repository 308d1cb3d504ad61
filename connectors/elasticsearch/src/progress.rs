//! Which records are still owed to the index, and so which offsets are safe
//! to commit. Pure bookkeeping: a record is owed from `put` until the server
//! acknowledged it, reported a version conflict (already newer), or the
//! error policy dealt with it (dead-lettered); a partition's safe offset is
//! its oldest owed record, or everything consumed when none is owed.

use std::collections::{BTreeSet, HashMap};

use sluice_api::{OffsetMap, TopicPartition};

#[derive(Debug, Default)]
pub struct Owed {
    by_partition: HashMap<TopicPartition, BTreeSet<i64>>,
    count: usize,
}

impl Owed {
    pub fn add(&mut self, tp: &TopicPartition, offset: i64) {
        if self
            .by_partition
            .entry(tp.clone())
            .or_default()
            .insert(offset)
        {
            self.count += 1;
        }
    }

    /// The record was acknowledged or dealt with.
    pub fn settle(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(set) = self.by_partition.get_mut(tp) {
            if set.remove(&offset) {
                self.count -= 1;
            }
            if set.is_empty() {
                self.by_partition.remove(tp);
            }
        }
    }

    /// Records still owed, across partitions.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Forgets partitions given up: their next owner reads them again from
    /// the last commit.
    pub fn forget(&mut self, tp: &TopicPartition) {
        if let Some(set) = self.by_partition.remove(tp) {
            self.count -= set.len();
        }
    }

    /// Of the offsets consumed so far, what may be committed.
    pub fn safe(&self, consumed: &OffsetMap) -> OffsetMap {
        consumed
            .iter()
            .map(|(tp, next)| {
                let first_owed = self.by_partition.get(tp).and_then(|s| s.first().copied());
                (tp.clone(), first_owed.map_or(*next, |o| o.min(*next)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settled_prefixes_are_safe() {
        let (a, b) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
        let mut owed = Owed::default();
        for o in 10..15 {
            owed.add(&a, o);
        }
        owed.add(&b, 3);
        let consumed: OffsetMap = [(a.clone(), 15), (b.clone(), 4)].into();
        assert_eq!(owed.safe(&consumed)[&a], 10);
        // Settled out of order (a retried item): the hole at 11 holds it back.
        owed.settle(&a, 10);
        owed.settle(&a, 12);
        assert_eq!(owed.safe(&consumed)[&a], 11);
        for o in [11, 13, 14] {
            owed.settle(&a, o);
        }
        assert_eq!(owed.safe(&consumed)[&a], 15);
        assert_eq!(owed.len(), 1);
        owed.forget(&b);
        assert_eq!(owed.len(), 0);
        assert_eq!(owed.safe(&consumed)[&b], 4);
    }
}
