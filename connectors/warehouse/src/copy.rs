//! Rows in PostgreSQL's binary COPY form, encoded ahead of their
//! transaction: the bytes each wire type takes, written straight from the
//! cell (no per-type library conversions), one buffer per step with where
//! each row ends, so that any run of rows (a bisection's half) goes out as
//! a whole COPY stream without encoding anything again.

use bytes::{BufMut, Bytes, BytesMut};

use crate::change::Shape;
use crate::types::{Cell, Wire};

/// PostgreSQL's epoch (2000-01-01) from Unix's, in days and microseconds.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The signature, no flags, no header extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// A tuple of -1 fields ends the data.
const TRAILER: &[u8] = &[0xff, 0xff];

/// Encoded rows: each a field count and its fields (length, bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    bytes: Bytes,
    /// Where each row ends in `bytes`.
    ends: Vec<usize>,
}

impl Encoded {
    /// `rows` of `shape`, each cell in its column's wire type.
    pub fn new(shape: &Shape, rows: &[Vec<Cell>]) -> Self {
        let width = rows.first().map_or(0, |r| 6 + 12 * r.len());
        let mut out = BytesMut::with_capacity(width * rows.len());
        let mut ends = Vec::with_capacity(rows.len());
        for row in rows {
            // A row has one cell per column (the extractor builds it from the
            // shape), and a table has at most 1,600 columns.
            out.put_i16(row.len() as i16);
            for (cell, column) in row.iter().zip(&shape.columns) {
                put_field(cell, column.mapping.wire, &mut out);
            }
            ends.push(out.len());
        }
        Self {
            bytes: out.freeze(),
            ends,
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Rows `from..to` as a complete COPY stream: header, rows, trailer.
    /// The rows are a view of the buffer, not a copy.
    pub fn stream(&self, from: usize, to: usize) -> [Bytes; 3] {
        let start = from.checked_sub(1).map_or(0, |i| self.ends[i]);
        let end = to.checked_sub(1).map_or(0, |i| self.ends[i]);
        [
            Bytes::from_static(HEADER),
            self.bytes.slice(start..end.max(start)),
            Bytes::from_static(TRAILER),
        ]
    }
}

/// One field: its length (-1 for NULL) and its bytes (big-endian numbers;
/// dates and timestamps from PostgreSQL's epoch).
fn put_field(cell: &Cell, wire: Wire, out: &mut BytesMut) {
    match cell {
        Cell::Null => out.put_i32(-1),
        Cell::Bool(b) => put_bytes(&[u8::from(*b)], out),
        Cell::I16(n) => put_bytes(&n.to_be_bytes(), out),
        Cell::I32(n) => put_bytes(&n.to_be_bytes(), out),
        Cell::I64(n) => put_bytes(&n.to_be_bytes(), out),
        Cell::F32(f) => put_bytes(&f.to_be_bytes(), out),
        Cell::F64(f) => put_bytes(&f.to_be_bytes(), out),
        Cell::Text(s) => put_bytes(s.as_bytes(), out),
        Cell::Bytes(b) => put_bytes(b, out),
        Cell::Date(d) => put_bytes(&d.saturating_sub(PG_EPOCH_DAYS).to_be_bytes(), out),
        Cell::Micros(us) if wire == Wire::Time => put_bytes(&us.to_be_bytes(), out),
        Cell::Micros(us) => put_bytes(&us.saturating_sub(PG_EPOCH_MICROS).to_be_bytes(), out),
    }
}

/// A field's length and bytes. A field cannot exceed 2 GiB (no Kafka record
/// comes near); the length is capped rather than wrapped negative, so such a
/// stream fails in PostgreSQL instead of reading as NULL.
fn put_bytes(bytes: &[u8], out: &mut BytesMut) {
    out.put_i32(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
    out.put_slice(bytes);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::change::Column;
    use crate::types::map_value;
    use sluice_api::Value;

    fn shape(values: &[Value]) -> Shape {
        Shape {
            columns: values
                .iter()
                .enumerate()
                .map(|(i, v)| Column {
                    name: format!("c{i}"),
                    mapping: map_value(v),
                    optional: true,
                })
                .collect(),
            key: vec![],
        }
    }

    fn field(cell: Cell, wire: Wire) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_field(&cell, wire, &mut out);
        out.to_vec()
    }

    fn with_len(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn binary_forms() {
        assert_eq!(
            field(Cell::Date(PG_EPOCH_DAYS + 1), Wire::Date),
            with_len(&1i32.to_be_bytes())
        );
        assert_eq!(
            field(Cell::Micros(PG_EPOCH_MICROS), Wire::TimestampTz),
            with_len(&0i64.to_be_bytes())
        );
        assert_eq!(
            field(Cell::Micros(5), Wire::Time),
            with_len(&5i64.to_be_bytes())
        );
        assert_eq!(
            field(Cell::Text("é".into()), Wire::Text),
            with_len("é".as_bytes())
        );
        assert_eq!(field(Cell::Null, Wire::I32), (-1i32).to_be_bytes());
    }

    #[test]
    fn any_run_of_rows_is_a_whole_stream() {
        let shape = Arc::new(shape(&[Value::Int64(0), Value::String(String::new())]));
        let rows: Vec<Vec<Cell>> = (0..3)
            .map(|i| vec![Cell::I64(i), Cell::Text(format!("r{i}"))])
            .collect();
        let encoded = Encoded::new(&shape, &rows);
        assert_eq!(encoded.len(), 3);
        let row = |i: i64| {
            let mut out = 2i16.to_be_bytes().to_vec();
            out.extend(with_len(&i.to_be_bytes()));
            out.extend(with_len(format!("r{i}").as_bytes()));
            out
        };
        let concat = |parts: [Bytes; 3]| parts.concat();
        let mut whole = HEADER.to_vec();
        whole.extend(row(0));
        whole.extend(row(1));
        whole.extend(row(2));
        whole.extend(TRAILER);
        assert_eq!(concat(encoded.stream(0, 3)), whole);
        let mut middle = HEADER.to_vec();
        middle.extend(row(1));
        middle.extend(TRAILER);
        assert_eq!(concat(encoded.stream(1, 2)), middle);
        assert_eq!(concat(encoded.stream(2, 2)), [HEADER, TRAILER].concat());
    }
}
