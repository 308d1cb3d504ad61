//! Statement planning (pure): a batch of changes as the set-based steps that
//! apply it, and the offsets its transaction stores.
//!
//! Per table, changes gather in a segment: one row shape, one key shape. With
//! the reduction buffer several changes to one key collapse to the last (a
//! delete then a write of the same key leaves the write; a write then a
//! delete leaves the delete). A segment closes when the shape changes, when
//! a truncate comes, or (without reduction) when a key repeats, since one
//! set-based statement may touch a row once. Steps of one table keep their
//! order; tables are independent.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sluice_api::{OffsetMap, Record, TopicPartition};

use crate::change::{Change, Extractor, Shape};
use crate::config::TableName;
use crate::copy::Encoded;
use crate::types::Cell;

/// One set-based statement's worth of work: its rows as cells when
/// planned, then encoded for COPY.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<R = Vec<Vec<Cell>>> {
    /// Rows to insert, upsert or update, with the index of the record each
    /// came from (for the error reporter).
    Write {
        table: TableName,
        shape: Arc<Shape>,
        rows: R,
        records: Vec<usize>,
    },
    /// Keys to delete (the shape holds only key columns).
    Delete {
        table: TableName,
        shape: Arc<Shape>,
        rows: R,
        records: Vec<usize>,
    },
    Truncate {
        table: TableName,
    },
}

impl Step {
    /// The step with its rows in COPY's binary form (the cells dropped).
    pub fn encode(self) -> Step<Encoded> {
        match self {
            Step::Write {
                table,
                shape,
                rows,
                records,
            } => Step::Write {
                rows: Encoded::new(&shape, &rows),
                table,
                shape,
                records,
            },
            Step::Delete {
                table,
                shape,
                rows,
                records,
            } => Step::Delete {
                rows: Encoded::new(&shape, &rows),
                table,
                shape,
                records,
            },
            Step::Truncate { table } => Step::Truncate { table },
        }
    }
}

enum Pending {
    Write(Vec<Cell>),
    Delete(Vec<Cell>),
}

#[derive(Default)]
struct Segment {
    row_shape: Option<Arc<Shape>>,
    key_shape: Option<Arc<Shape>>,
    /// In arrival order of each key's first change (its last change wins).
    slots: Vec<(usize, Pending)>,
    /// foldhash, not SipHash: hashing every row's key was 3 % of an insert's
    /// work, and the map lives for one batch.
    by_key: HashMap<Vec<u8>, usize, foldhash::fast::RandomState>,
}

impl Segment {
    fn with_capacity(rows: usize) -> Self {
        Self {
            slots: Vec::with_capacity(rows),
            by_key: HashMap::with_capacity_and_hasher(rows, Default::default()),
            ..Self::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn close(&mut self, table: &TableName, out: &mut Vec<Step>) {
        let segment = std::mem::take(self);
        let n = segment.slots.len();
        let (mut writes, mut write_records) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut deletes, mut delete_records) = (Vec::new(), Vec::new());
        for (record, p) in segment.slots {
            match p {
                Pending::Write(cells) => {
                    writes.push(cells);
                    write_records.push(record);
                }
                Pending::Delete(cells) => {
                    deletes.push(cells);
                    delete_records.push(record);
                }
            }
        }
        // A key has one final change, so deletes and writes touch different
        // rows and may run in either order.
        if let (Some(shape), false) = (segment.key_shape, deletes.is_empty()) {
            out.push(Step::Delete {
                table: table.clone(),
                shape,
                rows: deletes,
                records: delete_records,
            });
        }
        if let (Some(shape), false) = (segment.row_shape, writes.is_empty()) {
            out.push(Step::Write {
                table: table.clone(),
                shape,
                rows: writes,
                records: write_records,
            });
        }
    }
}

fn same(a: &Option<Arc<Shape>>, b: &Arc<Shape>) -> bool {
    a.as_ref().is_none_or(|a| Arc::ptr_eq(a, b) || **a == **b)
}

/// The identity of a row's key: its key cells, each as a tag and its bytes
/// (text and bytes length-prefixed, so no two keys write the same).
fn key_of(shape: &Shape, cells: &[Cell]) -> Option<Vec<u8>> {
    if shape.key.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(16 * shape.key.len());
    for &i in &shape.key {
        match &cells[i] {
            Cell::Null => out.push(0),
            Cell::Bool(b) => out.extend([1, u8::from(*b)]),
            Cell::I16(n) => tagged(&mut out, 2, &n.to_be_bytes()),
            Cell::I32(n) => tagged(&mut out, 3, &n.to_be_bytes()),
            Cell::I64(n) => tagged(&mut out, 4, &n.to_be_bytes()),
            Cell::F32(f) => tagged(&mut out, 5, &f.to_bits().to_be_bytes()),
            Cell::F64(f) => tagged(&mut out, 6, &f.to_bits().to_be_bytes()),
            Cell::Date(d) => tagged(&mut out, 7, &d.to_be_bytes()),
            Cell::Micros(us) => tagged(&mut out, 8, &us.to_be_bytes()),
            Cell::Text(t) => {
                tagged(&mut out, 9, &(t.len() as u64).to_be_bytes());
                out.extend_from_slice(t.as_bytes());
            }
            Cell::Bytes(b) => {
                tagged(&mut out, 10, &(b.len() as u64).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    Some(out)
}

fn tagged(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    out.extend_from_slice(bytes);
}

/// The steps for `changes` (each with its record's index), in order.
pub fn plan(changes: Vec<(usize, Change)>, reduce: bool) -> Vec<Step> {
    let rows = changes.len();
    let mut out = Vec::new();
    let mut segments: BTreeMap<TableName, Segment> = BTreeMap::new();
    for (record, change) in changes {
        let (table, shape, cells, delete) = match change {
            Change::Skip => continue,
            Change::Truncate { table } => {
                if let Some(seg) = segments.get_mut(&table) {
                    seg.close(&table, &mut out);
                }
                out.push(Step::Truncate { table });
                continue;
            }
            Change::Row {
                table,
                shape,
                cells,
            } => (table, shape, cells, false),
            Change::Delete {
                table,
                shape,
                cells,
            } => (table, shape, cells, true),
        };
        let key = key_of(&shape, &cells);
        // Sized for the whole batch at once: grown row by row, the key map
        // was rehashed a dozen times per batch.
        let seg = segments
            .entry(table.clone())
            .or_insert_with(|| Segment::with_capacity(rows));
        let fits = if delete {
            same(&seg.key_shape, &shape)
        } else {
            same(&seg.row_shape, &shape)
        };
        let repeat = key.as_ref().is_some_and(|k| seg.by_key.contains_key(k));
        if !fits || (repeat && !reduce) {
            seg.close(&table, &mut out);
        }
        if delete {
            seg.key_shape.get_or_insert(shape);
        } else {
            seg.row_shape.get_or_insert(shape);
        }
        let pending = if delete {
            Pending::Delete(cells)
        } else {
            Pending::Write(cells)
        };
        match key.and_then(|k| match seg.by_key.get(&k) {
            Some(&slot) => Some(slot),
            None => {
                seg.by_key.insert(k, seg.slots.len());
                None
            }
        }) {
            Some(slot) => seg.slots[slot] = (record, pending),
            None => seg.slots.push((record, pending)),
        }
    }
    for (table, mut seg) in segments {
        if !seg.is_empty() {
            seg.close(&table, &mut out);
        }
    }
    out
}

/// What the batch's transaction stores: per partition, the offset after its
/// last record (dead-lettered and skipped records included, since they are
/// dealt with).
pub fn offsets_after(records: &[Record]) -> OffsetMap {
    runs(records)
        .into_iter()
        .map(|(topic, p, _, last)| (TopicPartition::new(topic, p), last + 1))
        .collect()
}

/// Whether any record of the batch is already in the warehouse: whether a
/// partition's lowest offset in it is below the stored one.
pub fn any_applied(records: &[Record], stored: &OffsetMap) -> bool {
    !stored.is_empty()
        && runs(records).into_iter().any(|(topic, p, first, _)| {
            stored
                .get(&TopicPartition::new(topic, p))
                .is_some_and(|&next| first < next)
        })
}

/// Each partition's lowest and highest offset in the batch, found without a
/// lookup per record (records come in runs of one partition).
fn runs(records: &[Record]) -> Vec<(&str, i32, i64, i64)> {
    let mut out: Vec<(&str, i32, i64, i64)> = Vec::new();
    let mut current: Option<usize> = None;
    for r in records {
        let (Some(p), Some(o)) = (r.partition, r.offset) else {
            continue;
        };
        let same = |e: &(&str, i32, i64, i64)| e.1 == p && e.0 == &*r.topic;
        let i = match current.filter(|&i| same(&out[i])) {
            Some(i) => i,
            None => match out.iter().position(same) {
                Some(i) => i,
                None => {
                    out.push((&r.topic, p, o, o));
                    out.len() - 1
                }
            },
        };
        let e = &mut out[i];
        e.2 = e.2.min(o);
        e.3 = e.3.max(o);
        current = Some(i);
    }
    out
}

/// Whether a record is already in the warehouse (below its stored offset for
/// its partition): a redelivery after a lost commit answer, or a replay from
/// Kafka's older committed offset, which is dropped.
pub fn applied(record: &Record, stored: &OffsetMap) -> bool {
    let (Some(p), Some(o)) = (record.partition, record.offset) else {
        return false;
    };
    stored
        .get(&TopicPartition::new(&*record.topic, p))
        .is_some_and(|&next| o < next)
}

/// One transaction's records, planned and encoded ahead of it (on the
/// worker's side, while the writer is busy with the one before), as if
/// none of them were in the warehouse yet. After a redelivery some are: the
/// writer then plans the rest again ([`Batch::plan`]).
pub struct Batch {
    pub records: Vec<Record>,
    /// Records that cannot become rows, with why.
    pub unwritable: Vec<(usize, String)>,
    pub steps: Vec<Step<Encoded>>,
}

impl Batch {
    /// `records` in batches of at most `size`, each planned.
    pub fn split(
        mut records: Vec<Record>,
        size: usize,
        extractor: &mut Extractor,
        reduce: bool,
    ) -> Vec<Batch> {
        let mut out = Vec::with_capacity(records.len().div_ceil(size.max(1)));
        while !records.is_empty() {
            let rest = records.split_off(size.max(1).min(records.len()));
            let batch = std::mem::replace(&mut records, rest);
            let (unwritable, steps) = Self::plan(&batch, extractor, reduce, |_| false);
            out.push(Batch {
                records: batch,
                unwritable,
                steps,
            });
        }
        out
    }

    /// The steps for `records` but those `skip` says are written already,
    /// and the records that cannot become rows.
    pub fn plan(
        records: &[Record],
        extractor: &mut Extractor,
        reduce: bool,
        skip: impl Fn(&Record) -> bool,
    ) -> (Vec<(usize, String)>, Vec<Step<Encoded>>) {
        let mut unwritable = Vec::new();
        let mut todo = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            if skip(r) {
                continue;
            }
            match extractor.extract(r) {
                Ok(change) => todo.push((i, change)),
                Err(why) => unwritable.push((i, why)),
            }
        }
        let steps = plan(todo, reduce).into_iter().map(Step::encode).collect();
        (unwritable, steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Column;
    use crate::types::map_value;
    use sluice_api::Value;

    fn shape(cols: &[&str], key: usize) -> Arc<Shape> {
        Arc::new(Shape {
            columns: cols
                .iter()
                .map(|c| Column {
                    name: (*c).to_owned(),
                    mapping: map_value(&Value::Int64(0)),
                    optional: true,
                })
                .collect(),
            key: (0..key).collect(),
        })
    }

    fn t() -> TableName {
        TableName::parse("t")
    }

    fn row(s: &Arc<Shape>, id: i64, v: i64) -> Change {
        Change::Row {
            table: t(),
            shape: s.clone(),
            cells: vec![Cell::I64(id), Cell::I64(v)],
        }
    }

    fn del(k: &Arc<Shape>, id: i64) -> Change {
        Change::Delete {
            table: t(),
            shape: k.clone(),
            cells: vec![Cell::I64(id)],
        }
    }

    #[test]
    fn reduction_keeps_each_keys_last_change() {
        let (s, k) = (shape(&["id", "v"], 1), shape(&["id"], 1));
        let changes = vec![
            row(&s, 1, 10),
            row(&s, 2, 20),
            row(&s, 1, 11),
            del(&k, 2),
            del(&k, 3),
            row(&s, 3, 30),
        ];
        let steps = plan(changes.into_iter().enumerate().collect(), true);
        assert_eq!(steps.len(), 2, "{steps:?}");
        let Step::Delete { rows, records, .. } = &steps[0] else {
            panic!("{steps:?}")
        };
        assert_eq!(
            (rows.clone(), records.clone()),
            (vec![vec![Cell::I64(2)]], vec![3])
        );
        let Step::Write { rows, records, .. } = &steps[1] else {
            panic!()
        };
        assert_eq!(
            rows,
            &vec![
                vec![Cell::I64(1), Cell::I64(11)],
                vec![Cell::I64(3), Cell::I64(30)]
            ]
        );
        assert_eq!(records, &vec![2, 5]);
    }

    #[test]
    fn without_reduction_a_repeated_key_starts_a_new_statement() {
        let s = shape(&["id", "v"], 1);
        let steps = plan(
            vec![
                (0, row(&s, 1, 10)),
                (1, row(&s, 2, 20)),
                (2, row(&s, 1, 11)),
            ],
            false,
        );
        assert_eq!(steps.len(), 2);
        // No key: nothing collapses, one statement.
        let nokey = shape(&["id", "v"], 0);
        let steps = plan(vec![(0, row(&nokey, 1, 1)), (1, row(&nokey, 1, 1))], true);
        let [Step::Write { rows, .. }] = steps.as_slice() else {
            panic!()
        };
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn truncates_and_shape_changes_cut_segments_in_order() {
        let (s, s2) = (shape(&["id", "v"], 1), shape(&["id", "w"], 1));
        let changes = vec![
            (0, row(&s, 1, 1)),
            (1, Change::Truncate { table: t() }),
            (2, row(&s, 2, 2)),
            (3, Change::Skip),
        ];
        let steps = plan(changes, true);
        assert!(
            matches!(
                &steps[..],
                [
                    Step::Write { .. },
                    Step::Truncate { .. },
                    Step::Write { .. }
                ]
            ),
            "{steps:?}"
        );
        let steps = plan(
            vec![
                (0, row(&s, 1, 1)),
                (
                    1,
                    Change::Row {
                        table: t(),
                        shape: s2.clone(),
                        cells: vec![Cell::I64(1), Cell::I64(2)],
                    },
                ),
            ],
            true,
        );
        assert_eq!(steps.len(), 2);
    }

    #[test]
    fn offsets_cover_every_record_and_replays_are_dropped() {
        let rec = |p: i32, o: i64| Record {
            topic: Arc::from("a"),
            partition: Some(p),
            offset: Some(o),
            ..Record::default()
        };
        let batch = vec![rec(0, 5), rec(1, 9), rec(0, 7)];
        let offs = offsets_after(&batch);
        assert_eq!(offs.get(&TopicPartition::new("a", 0)), Some(&8));
        assert_eq!(offs.get(&TopicPartition::new("a", 1)), Some(&10));
        let stored: OffsetMap = [(TopicPartition::new("a", 0), 6)].into();
        let kept: Vec<i64> = batch
            .iter()
            .filter(|r| !applied(r, &stored))
            .filter_map(|r| r.offset)
            .collect();
        assert_eq!(kept, [9, 7]);
        assert!(any_applied(&batch, &stored));
        let caught_up: OffsetMap = [(TopicPartition::new("a", 0), 5)].into();
        assert!(!any_applied(&batch, &caught_up));
        assert!(!any_applied(&batch, &OffsetMap::new()));
    }

    /// Records of `{id, v}` structs, keyed by `id` (pk.mode=record_value).
    fn records(rows: &[(i64, i64)]) -> Vec<Record> {
        use sluice_api::schema::{primitives, Schema};
        let schema =
            Schema::struct_of([("id", primitives::int64()), ("v", primitives::int64())]).into_ref();
        rows.iter()
            .enumerate()
            .map(|(o, &(id, v))| Record {
                topic: Arc::from("t"),
                partition: Some(0),
                offset: Some(o as i64),
                value_schema: Some(schema.clone()),
                value: Value::Struct(vec![Value::Int64(id), Value::Int64(v)]),
                ..Record::default()
            })
            .collect()
    }

    fn extractor() -> Extractor {
        let raw: sluice_api::TaskConfig = [
            ("connection.url", "postgres://h/db"),
            ("pk.mode", "record_value"),
            ("pk.fields", "id"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        Extractor::new(Arc::new(
            crate::config::WarehouseConfig::parse(&raw).unwrap(),
        ))
    }

    #[test]
    fn batches_are_planned_and_encoded_ahead_and_planned_again_without_what_is_written() {
        let mut x = extractor();
        let mut recs = records(&[(1, 10), (2, 20), (1, 11), (3, 30), (4, 40)]);
        // Not a struct: cannot become a row.
        recs[3].value = Value::Int64(0);
        let batches = Batch::split(recs.clone(), 3, &mut x, true);
        assert_eq!(
            batches.iter().map(|b| b.records.len()).collect::<Vec<_>>(),
            [3, 2]
        );
        let [Step::Write { rows, records, .. }] = batches[0].steps.as_slice() else {
            panic!()
        };
        // Key 1's last change wins; rows keep each key's first position.
        assert_eq!((rows.len(), records.as_slice()), (2, [2, 1].as_slice()));
        assert_eq!(batches[1].unwritable.len(), 1);
        assert_eq!(batches[1].unwritable[0].0, 0);

        // Record 2 (key 1's last change) is in the warehouse already: the
        // batch planned again writes key 1 from record 0, not nothing.
        let (unwritable, steps) = Batch::plan(&recs[..3], &mut x, true, |r| r.offset == Some(2));
        assert!(unwritable.is_empty());
        let [Step::Write { rows, records, .. }] = steps.as_slice() else {
            panic!()
        };
        assert_eq!((rows.len(), records.as_slice()), (2, [0, 1].as_slice()));
    }
}
