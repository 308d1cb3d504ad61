//! Cutting queued actions into `_bulk` requests: by count (`batch.size`),
//! bytes (`bulk.size.bytes`) and time (`linger.ms`). Pure.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use sluice_api::Record;

/// One action waiting to be sent, with its record (for the error reporter).
#[derive(Debug, Clone)]
pub struct Item {
    pub record: Record,
    pub bytes: Vec<u8>,
    /// The document it writes, when its order against other actions on the
    /// same document matters (see `action::document`).
    pub doc: Option<String>,
}

/// Actions not yet sent, oldest first.
#[derive(Debug)]
pub struct Queue {
    items: VecDeque<Item>,
    bytes: usize,
    /// When the oldest queued action arrived.
    since: Option<Instant>,
    batch_size: usize,
    bulk_bytes: usize,
    linger: Duration,
}

impl Queue {
    pub fn new(batch_size: usize, bulk_bytes: usize, linger: Duration) -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
            since: None,
            batch_size: batch_size.max(1),
            bulk_bytes: bulk_bytes.max(1),
            linger,
        }
    }

    pub fn push(&mut self, items: Vec<Item>, now: Instant) {
        if items.is_empty() {
            return;
        }
        self.since.get_or_insert(now);
        self.bytes += items.iter().map(|i| i.bytes.len()).sum::<usize>();
        self.items.extend(items);
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// When a partial batch is due, if anything is queued.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|s| s + self.linger)
    }

    /// Whether a request should go now: a full batch by count or bytes, or a
    /// partial one that has waited `linger.ms` (or `now_anyway`: a flush).
    pub fn ready(&self, now: Instant, now_anyway: bool) -> bool {
        !self.items.is_empty()
            && (self.items.len() >= self.batch_size
                || self.bytes >= self.bulk_bytes
                || now_anyway
                || self.deadline().is_some_and(|d| d <= now))
    }

    /// The next request's actions: up to `batch.size` of them and
    /// `bulk.size.bytes`, but at least one (a larger action goes alone).
    ///
    /// Actions on a document in `busy` (in flight in another request) stay
    /// queued, and so do later actions on the same document: a document's
    /// actions reach the server one request at a time, in order, so the
    /// index never depends on which of two concurrent requests lands first.
    /// Empty when every queued action waits on a busy document.
    pub fn take(&mut self, now: Instant, busy: &HashSet<String>) -> Vec<Item> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut held: VecDeque<Item> = VecDeque::new();
        let mut blocked: HashSet<String> = HashSet::new();
        while let Some(next) = self.items.pop_front() {
            let len = next.bytes.len();
            if !out.is_empty() && (out.len() >= self.batch_size || bytes + len > self.bulk_bytes) {
                self.items.push_front(next);
                break;
            }
            if let Some(doc) = &next.doc {
                if busy.contains(doc) || blocked.contains(doc) {
                    blocked.insert(doc.clone());
                    held.push_back(next);
                    continue;
                }
            }
            bytes += len;
            out.push(next);
        }
        held.append(&mut self.items);
        self.items = held;
        self.bytes -= bytes;
        // What is left starts its own linger: it was not ready alone.
        self.since = (!self.items.is_empty()).then_some(now);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize, size: usize) -> Vec<Item> {
        (0..n)
            .map(|i| {
                let record = Record {
                    offset: Some(i as i64),
                    ..Record::default()
                };
                Item {
                    record,
                    bytes: vec![b'x'; size],
                    doc: None,
                }
            })
            .collect()
    }

    fn none() -> HashSet<String> {
        HashSet::new()
    }

    #[test]
    fn a_busy_documents_actions_wait_in_order() {
        let t0 = Instant::now();
        let mut q = Queue::new(10, 1 << 20, Duration::ZERO);
        let mut all = items(4, 10);
        for (i, doc) in ["a", "b", "a", "c"].iter().enumerate() {
            all[i].doc = Some(doc.to_string());
        }
        q.push(all, t0);
        let busy: HashSet<String> = ["a".to_string()].into();
        let first = q.take(t0, &busy);
        assert_eq!(
            first.iter().map(|i| i.record.offset).collect::<Vec<_>>(),
            vec![Some(1), Some(3)]
        );
        // Both of a's actions are still queued, in order, and go together
        // once a is no longer in flight.
        assert!(q.take(t0, &busy).is_empty());
        let second = q.take(t0, &none());
        assert_eq!(
            second.iter().map(|i| i.record.offset).collect::<Vec<_>>(),
            vec![Some(0), Some(2)]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn batches_cut_by_count() {
        let t0 = Instant::now();
        let mut q = Queue::new(3, 1 << 20, Duration::from_secs(60));
        q.push(items(2, 10), t0);
        assert!(!q.ready(t0, false));
        q.push(items(5, 10), t0);
        assert!(q.ready(t0, false));
        assert_eq!(q.take(t0, &none()).len(), 3);
        assert_eq!(q.take(t0, &none()).len(), 3);
        assert!(!q.ready(t0, false), "one left, lingering");
        assert!(q.ready(t0, true), "a flush sends it anyway");
        assert_eq!(q.take(t0, &none()).len(), 1);
        assert!(q.is_empty() && q.deadline().is_none());
    }

    #[test]
    fn batches_cut_by_bytes_and_a_large_action_goes_alone() {
        let t0 = Instant::now();
        let mut q = Queue::new(100, 250, Duration::from_secs(60));
        q.push(items(5, 100), t0);
        assert!(q.ready(t0, false));
        assert_eq!(q.take(t0, &none()).len(), 2);
        let mut big = Queue::new(100, 50, Duration::from_secs(60));
        big.push(items(2, 100), t0);
        assert_eq!(big.take(t0, &none()).len(), 1);
        assert_eq!(big.take(t0, &none()).len(), 1);
    }

    #[test]
    fn a_partial_batch_goes_after_linger() {
        let t0 = Instant::now();
        let mut q = Queue::new(100, 1 << 20, Duration::from_millis(50));
        q.push(items(1, 10), t0);
        q.push(items(1, 10), t0 + Duration::from_millis(40));
        assert_eq!(q.deadline(), Some(t0 + Duration::from_millis(50)));
        assert!(!q.ready(t0 + Duration::from_millis(49), false));
        assert!(q.ready(t0 + Duration::from_millis(50), false));
        let batch = q.take(t0 + Duration::from_millis(50), &none());
        assert_eq!(
            batch.iter().map(|i| i.record.offset).collect::<Vec<_>>(),
            vec![Some(0), Some(0)]
        );
    }
}
