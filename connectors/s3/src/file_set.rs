//! The pure core of the sink: which files a Kafka partition's records go to,
//! when those files are cut, and which offset is safe to commit. No I/O here
//! (the task, `task.rs`, encodes and uploads), so these rules are unit-tested
//! below.
//!
//! **Admit and cut.** The files of one Kafka partition being filled (one per
//! encoded path) form a set. As in Confluent's sink they are cut together:
//! when the set holds `flush.size` records, when a record is
//! `rotate.interval.ms` of record time past the set's first, or when a value
//! schema changes (unless `schema.compatibility` projects it). Cuts depend
//! only on the records, so a replay cuts the same files, and a file's object
//! key comes from (topic, partition, first offset): a replay rewrites the same
//! objects with the same contents.
//!
//! **Safe commit offset.** Only offsets of uploaded files may be committed: for
//! a partition with files still filling, the first offset of the oldest one;
//! otherwise the consumer's position.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_api::{OffsetMap, Record};

use crate::compat::{project, Compatibility};
use crate::format::FileEncoder;
use crate::storage::{Multipart, Part};

/// A Kafka partition: topic and partition number.
pub type PartitionKey = (Arc<str>, i32);

/// One row of a file: a decoded record, or a value still JSON text, which
/// the encoder decodes straight into its columns (`SinkTask::put_json`). Both
/// give the same file: the text reads as the record the converter would
/// have decoded (`sluice_api::json::parse_schemaless`).
pub enum Row {
    Record(Box<Record>),
    Json {
        offset: i64,
        timestamp: Option<i64>,
        text: Vec<u8>,
    },
}

impl Row {
    /// Test rows: JSON texts at offsets 0, 1, … without timestamps.
    #[cfg(test)]
    pub fn json_texts(texts: &[&str]) -> Vec<Row> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Row::Json {
                offset: i as i64,
                timestamp: None,
                text: t.as_bytes().to_vec(),
            })
            .collect()
    }

    pub fn offset(&self) -> Option<i64> {
        match self {
            Row::Record(r) => r.offset,
            Row::Json { offset, .. } => Some(*offset),
        }
    }

    pub fn timestamp(&self) -> Option<i64> {
        match self {
            Row::Record(r) => r.timestamp,
            Row::Json { timestamp, .. } => *timestamp,
        }
    }

    pub fn value_schema(&self) -> Option<&sluice_api::SchemaRef> {
        match self {
            Row::Record(r) => r.value_schema.as_ref(),
            Row::Json { .. } => None,
        }
    }
}

/// The files of one Kafka partition being filled, one per encoded path.
pub struct FileSet {
    pub files: Vec<OpenFile>,
    /// Records in the set.
    pub count: usize,
    first_timestamp: Option<i64>,
    schema: Option<sluice_api::SchemaRef>,
    opened: Instant,
}

/// One file being written. Outside the audit tier its rows are encoded a row
/// group at a time and its bytes go up as multipart parts as they accumulate,
/// so a file never sits whole in memory.
pub struct OpenFile {
    pub path: String,
    /// Its first and last offsets.
    pub start: i64,
    pub end: i64,
    pub count: usize,
    /// Rows not yet encoded (the audit tier keeps all of them until the cut).
    pub pending: Vec<Row>,
    pub encoder: Option<FileEncoder>,
    pub upload: Option<(Multipart, Vec<Part>)>,
}

/// Whether a record joins the open files of its partition.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Join,
    /// The set must be cut first; the record starts a new one.
    Rotate,
}

impl OpenFile {
    pub fn new(path: String, offset: i64) -> Self {
        Self {
            path,
            start: offset,
            end: offset,
            count: 0,
            pending: Vec::new(),
            encoder: None,
            upload: None,
        }
    }

    /// Rows that do not fit this file's encoded schema (a Parquet file holds
    /// one) start a file of their own after it: this file then ends just
    /// before them, and the returned file holds them.
    pub fn split_off(&mut self, rows: Vec<Row>) -> OpenFile {
        let first_new = rows.first().and_then(Row::offset).unwrap_or(self.end);
        let mut rest = OpenFile::new(self.path.clone(), first_new);
        rest.end = self.end;
        rest.count = rows.len();
        rest.pending = rows;
        self.end = first_new - 1;
        self.count -= rest.count;
        rest
    }
}

impl Default for FileSet {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            count: 0,
            first_timestamp: None,
            schema: None,
            opened: Instant::now(),
        }
    }
}

impl FileSet {
    /// The first offset of the set's oldest file, if it holds any record: the
    /// partition's offsets are safe to commit only up to it.
    pub fn start_offset(&self) -> Option<i64> {
        self.files
            .iter()
            .filter(|f| f.count > 0)
            .map(|f| f.start)
            .min()
    }

    /// Whether the set is due for a wall-clock cut (`rotate.schedule.interval.ms`).
    pub fn due(&self, every: Duration) -> bool {
        self.count > 0 && self.opened.elapsed() >= every
    }

    /// Whether `record` can join this set: a new file is needed when it is
    /// `interval` ms of record time past the set's first record, or when its
    /// schema differs and `schema.compatibility` does not project it (then it is
    /// projected onto the set's schema in place).
    pub fn admit(&self, row: &mut Row, interval: Option<i64>, compat: Compatibility) -> Admission {
        if self.count == 0 {
            return Admission::Join;
        }
        if let (Some(i), Some(t0), Some(t)) = (interval, self.first_timestamp, row.timestamp()) {
            if t - t0 >= i {
                return Admission::Rotate;
            }
        }
        let record = match row {
            Row::Record(r) => r,
            // Schemaless text: it joins a schemaless set.
            Row::Json { .. } if self.schema.is_none() => return Admission::Join,
            Row::Json { .. } => return Admission::Rotate,
        };
        match (&self.schema, &record.value_schema) {
            (None, None) => Admission::Join,
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) || a == b => Admission::Join,
            (Some(current), Some(incoming)) if compat.projects(current, incoming) => {
                match project(record.value.clone(), incoming, current) {
                    Some(projected) => {
                        record.value = projected;
                        record.value_schema = Some(current.clone());
                        Admission::Join
                    }
                    None => Admission::Rotate,
                }
            }
            _ => Admission::Rotate,
        }
    }

    /// Adds a record to the current file of its path; returns that file's index.
    pub fn push(&mut self, path: String, record: Row) -> usize {
        if self.count == 0 {
            self.first_timestamp = record.timestamp();
            self.schema = record.value_schema().cloned();
            self.opened = Instant::now();
        }
        self.count += 1;
        let offset = record.offset().unwrap_or(0);
        let index = match self.files.iter().rposition(|f| f.path == path) {
            Some(i) => i,
            None => {
                self.files.push(OpenFile::new(path, offset));
                self.files.len() - 1
            }
        };
        let file = &mut self.files[index];
        if file.count == 0 {
            file.start = offset;
        }
        file.end = offset;
        file.count += 1;
        file.pending.push(record);
        index
    }
}

/// The offsets safe to commit, given the consumer's positions: a partition
/// with files still filling only up to their start.
pub fn safe_offsets(sets: &HashMap<PartitionKey, FileSet>, positions: &OffsetMap) -> OffsetMap {
    positions
        .iter()
        .map(|(tp, next)| {
            let filling = sets
                .get(&(Arc::from(tp.topic.as_str()), tp.partition))
                .and_then(FileSet::start_offset);
            (tp.clone(), filling.unwrap_or(*next))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{Schema, SchemaType, TopicPartition, Value};

    fn versioned(version: i32) -> sluice_api::SchemaRef {
        let mut s = Schema::new(SchemaType::Int64);
        s.version = Some(version);
        Arc::new(s)
    }

    fn record(offset: i64, timestamp: i64) -> Row {
        Row::Record(Box::new(Record {
            topic: Arc::from("t"),
            partition: Some(0),
            offset: Some(offset),
            timestamp: Some(timestamp),
            value: Value::Int64(offset),
            ..Record::default()
        }))
    }

    fn with_schema(mut r: Row, schema: &sluice_api::SchemaRef) -> Row {
        if let Row::Record(r) = &mut r {
            r.value_schema = Some(schema.clone());
        }
        r
    }

    fn json(offset: i64, timestamp: i64) -> Row {
        Row::Json {
            offset,
            timestamp: Some(timestamp),
            text: offset.to_string().into_bytes(),
        }
    }

    #[test]
    fn json_text_joins_schemaless_sets_and_cuts_as_records_do() {
        let mut set = FileSet::default();
        set.push("a".into(), json(1, 1_000));
        assert_eq!(
            set.admit(&mut json(2, 1_200), Some(500), Compatibility::None),
            Admission::Join
        );
        assert_eq!(
            set.admit(&mut json(3, 1_500), Some(500), Compatibility::None),
            Admission::Rotate
        );
        assert_eq!(
            set.admit(&mut record(4, 1_000), None, Compatibility::None),
            Admission::Join
        );
        let v1 = versioned(1);
        let mut with = FileSet::default();
        with.push("a".into(), with_schema(record(1, 0), &v1));
        assert_eq!(
            with.admit(&mut json(2, 0), None, Compatibility::None),
            Admission::Rotate
        );
        set.push("a".into(), json(2, 1_200));
        assert_eq!((set.files[0].start, set.files[0].end), (1, 2));
    }

    #[test]
    fn records_join_until_the_rotate_interval_of_record_time() {
        let mut set = FileSet::default();
        let mut first = record(10, 1_000);
        assert_eq!(
            set.admit(&mut first, Some(500), Compatibility::None),
            Admission::Join
        );
        set.push("a".into(), first);
        assert_eq!(
            set.admit(&mut record(11, 1_499), Some(500), Compatibility::None),
            Admission::Join
        );
        assert_eq!(
            set.admit(&mut record(12, 1_500), Some(500), Compatibility::None),
            Admission::Rotate
        );
        assert_eq!(
            set.admit(&mut record(12, 9_999), None, Compatibility::None),
            Admission::Join
        );
    }

    #[test]
    fn a_schema_change_cuts_unless_projected() {
        let (v1, v2) = (versioned(1), versioned(2));
        let mut set = FileSet::default();
        set.push("a".into(), with_schema(record(1, 0), &v1));
        let same = versioned(1);
        assert_eq!(
            set.admit(
                &mut with_schema(record(2, 0), &same),
                None,
                Compatibility::None
            ),
            Admission::Join
        );
        assert_eq!(
            set.admit(
                &mut with_schema(record(2, 0), &v2),
                None,
                Compatibility::None
            ),
            Admission::Rotate
        );
        assert_eq!(
            set.admit(&mut record(2, 0), None, Compatibility::None),
            Admission::Rotate
        );
    }

    #[test]
    fn files_per_path_track_their_offsets_and_the_set_its_oldest() {
        let mut set = FileSet::default();
        assert_eq!(set.start_offset(), None);
        assert_eq!(set.push("a".into(), record(5, 0)), 0);
        assert_eq!(set.push("b".into(), record(6, 0)), 1);
        assert_eq!(set.push("a".into(), record(7, 0)), 0);
        assert_eq!(set.count, 3);
        assert_eq!((set.files[0].start, set.files[0].end), (5, 7));
        assert_eq!(set.files[0].count, 2);
        assert_eq!((set.files[1].start, set.files[1].end), (6, 6));
        assert_eq!(set.start_offset(), Some(5));
    }

    #[test]
    fn only_offsets_of_uploaded_files_are_safe_to_commit() {
        let mut sets = HashMap::new();
        let mut set = FileSet::default();
        set.push("a".into(), record(40, 0));
        set.push("a".into(), record(41, 0));
        sets.insert((Arc::from("t"), 0), set);
        let mut positions = OffsetMap::new();
        positions.insert(TopicPartition::new("t", 0), 42);
        positions.insert(TopicPartition::new("t", 1), 7);
        let safe = safe_offsets(&sets, &positions);
        assert_eq!(safe[&TopicPartition::new("t", 0)], 40);
        assert_eq!(safe[&TopicPartition::new("t", 1)], 7);
    }

    #[test]
    fn rows_that_do_not_fit_start_a_file_right_after() {
        let mut file = OpenFile::new("a".into(), 100);
        file.end = 104;
        file.count = 5;
        let rest = file.split_off(vec![record(103, 0), record(104, 0)]);
        assert_eq!((file.start, file.end, file.count), (100, 102, 3));
        assert_eq!((rest.start, rest.end, rest.count), (103, 104, 2));
        assert_eq!(rest.path, "a");
        assert_eq!(rest.pending.len(), 2);
    }
}
