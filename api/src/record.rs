//! The record that flows through both pipelines.

use std::borrow::Cow;
use std::sync::Arc;

use crate::schema::SchemaRef;
use crate::value::Value;

/// Where a source record came from, in the source system's own terms, as in
/// Connect's `sourcePartition` (e.g. `{"slot": "orders"}`) …
pub type SourcePartition = serde_json::Map<String, serde_json::Value>;
/// … and how far along that partition it is (e.g. `{"lsn": 12345}`). The runtime
/// stores the offset of the last acknowledged record per source partition and hands
/// it back to the task on start.
pub type SourceOffset = serde_json::Map<String, serde_json::Value>;

/// A totally ordered position within one source partition, strictly increasing in
/// the order a task emits records. The runtime's exactly-once "idempotent resume"
/// compares positions to skip records that a restarted task emits again: for
/// Postgres `(commit LSN, index in the transaction)`, for a generator
/// `(sequence, 0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// The coarse part, compared first (for Postgres, the commit LSN).
    pub major: u64,
    /// The fine part (for Postgres, the index in the transaction).
    pub minor: u64,
}

/// Two `u64`s in decimal and the slash between them.
const POSITION_TEXT_MAX: usize = 41;

/// A position's header text, made without allocating: a source writes one
/// per record.
pub struct PositionText {
    buf: [u8; POSITION_TEXT_MAX],
    len: usize,
}

impl PositionText {
    fn push(&mut self, part: &[u8]) {
        self.buf[self.len..self.len + part.len()].copy_from_slice(part);
        self.len += part.len();
    }

    /// The text's bytes, as the header carries them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Digits and a slash: ASCII, so always UTF-8.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl Position {
    /// Position (`major`, `minor`).
    pub const fn new(major: u64, minor: u64) -> Self {
        Self { major, minor }
    }

    /// The text form carried in the `__sluice.position` header: `major/minor`.
    pub fn encode(&self) -> PositionText {
        let mut text = PositionText {
            buf: [0; POSITION_TEXT_MAX],
            len: 0,
        };
        let mut digits = itoa::Buffer::new();
        text.push(digits.format(self.major).as_bytes());
        text.push(b"/");
        text.push(digits.format(self.minor).as_bytes());
        text
    }

    /// Reads the header's `major/minor` form back.
    pub fn decode(text: &str) -> Option<Self> {
        let (major, minor) = text.split_once('/')?;
        Some(Self {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

/// The source bookkeeping a source task attaches to each record it emits.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRef {
    /// Shared by every record of one partition, so attaching it costs no allocation.
    pub partition: Arc<SourcePartition>,
    /// How far along its partition the source is with this record: stored once
    /// the record is in Kafka, and handed back to the task on start.
    pub offset: SourceOffset,
    /// `None` opts the record out of idempotent resume (it is then delivered at least once).
    pub position: Option<Position>,
}

/// One Kafka header: a name and raw bytes, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name.
    pub key: Cow<'static, str>,
    /// Its bytes; `None` is a null header.
    pub value: Option<Vec<u8>>,
}

/// A record's headers, in order; a key may repeat, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds a header after the others.
    pub fn push(&mut self, key: impl Into<Cow<'static, str>>, value: Option<Vec<u8>>) {
        self.0.push(Header {
            key: key.into(),
            value,
        });
    }

    /// The last value under `key`, as Connect's `lastWithName`.
    pub fn last(&self, key: &str) -> Option<&Header> {
        self.0.iter().rev().find(|h| h.key == key)
    }

    /// Removes every header named `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|h| h.key != key);
    }

    /// The headers, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Header> for Headers {
    fn from_iter<I: IntoIterator<Item = Header>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// A record on either pipeline.
///
/// Source tasks fill `topic`, key, value, headers, optionally `partition` and
/// `timestamp`, and `source`. Sink tasks receive records read from Kafka, with
/// `partition` and `offset` set and `source` empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    /// The Kafka topic.
    pub topic: Arc<str>,
    /// The Kafka partition (chosen by the runtime when a source leaves it out).
    pub partition: Option<i32>,
    /// The Kafka offset (set on records read from Kafka).
    pub offset: Option<i64>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// The key's schema, if any.
    pub key_schema: Option<SchemaRef>,
    /// The key.
    pub key: Value,
    /// The value's schema, if any.
    pub value_schema: Option<SchemaRef>,
    /// The value.
    pub value: Value,
    /// The headers.
    pub headers: Headers,
    /// A source record's partition, offset and position (`None` on records read from Kafka).
    pub source: Option<SourceRef>,
}

impl Record {
    /// A record for `topic` with `key` and `value`, no schemas.
    pub fn new(topic: impl Into<Arc<str>>, key: Value, value: Value) -> Self {
        Self {
            topic: topic.into(),
            key,
            value,
            ..Self::default()
        }
    }

    /// `topic-partition@offset`, for log lines and error messages.
    pub fn coordinates(&self) -> String {
        match (self.partition, self.offset) {
            (Some(p), Some(o)) => format!("{}-{p}@{o}", self.topic),
            _ => self.topic.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_and_round_trip() {
        let a = Position::new(10, 2);
        let b = Position::new(11, 0);
        assert!(a < b);
        assert_eq!(a.encode().as_str(), "10/2");
        assert_eq!(Position::decode(a.encode().as_str()), Some(a));
        let widest = Position::new(u64::MAX, u64::MAX);
        assert_eq!(Position::decode(widest.encode().as_str()), Some(widest));
        assert_eq!(Position::decode("x/1"), None);
    }

    #[test]
    fn headers_last_wins() {
        let mut h = Headers::new();
        h.push("k", Some(b"1".to_vec()));
        h.push("k", Some(b"2".to_vec()));
        assert_eq!(
            h.last("k").and_then(|h| h.value.clone()),
            Some(b"2".to_vec())
        );
        h.remove("k");
        assert!(h.is_empty());
    }
}
