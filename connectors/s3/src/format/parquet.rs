//! Rows to Parquet through Arrow: one `RecordBatch` per row group, built
//! column by column from the rows' values, or decoded straight from their
//! JSON text (`direct.rs`).
//!
//! The columns come from the value schema (records with schemas: JSON with
//! `schemas.enable`, CDC events) or, for schemaless JSON, from the union of the
//! file's records' fields, a type conflict falling back to JSON text. Connect
//! types map to Parquet's logical types: Decimal → DECIMAL(38, scale), Date →
//! DATE, Time → TIME(ms), Timestamp → TIMESTAMP(ms, UTC), arrays → LIST, structs
//! → nested groups. Maps are written as JSON text for now.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema as ArrowSchema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sluice_api::schema::{Schema, SchemaType};
use sluice_api::{ConnectError, SchemaRef, Value};

use super::columns::{arrow_error, arrow_type, build, field_value};
use super::{decode, direct, Codec, Decoded};
use crate::file_set::Row;

/// A Parquet file written row group by row group; its bytes can be taken out as
/// they accumulate (to upload them as multipart parts) without holding the file.
pub struct ParquetFile {
    schema: SchemaRef,
    arrow_schema: Arc<ArrowSchema>,
    writer: ArrowWriter<Vec<u8>>,
}

impl ParquetFile {
    /// Starts a file whose schema comes from `first_rows` (their value schema,
    /// or the union inferred from schemaless values) and writes them as its
    /// first row group.
    pub fn start(first_rows: &[Row], codec: Codec) -> Result<Self, ConnectError> {
        // Schemaless text whose rows all have the first row's shape goes
        // straight into columns; inferring over every row would give the same
        // schema (each row fits it), so the file is the same either way.
        if let Some(schema) = first_json_schema(first_rows) {
            if let Some(columns) = direct::decode(&schema, first_rows) {
                let mut file = Self::new(schema, codec)?;
                file.write_columns(columns)?;
                return Ok(file);
            }
        }
        let values = decode(first_rows)?;
        let mut file = Self::new(file_schema(&values)?, codec)?;
        file.write_values(&values)?;
        Ok(file)
    }

    fn new(schema: SchemaRef, codec: Codec) -> Result<Self, ConnectError> {
        let arrow_schema = Arc::new(ArrowSchema::new(
            schema
                .fields()
                .iter()
                .map(|f| Field::new(&f.name, arrow_type(&f.schema), true))
                .collect::<Vec<_>>(),
        ));
        let props = WriterProperties::builder()
            .set_compression(compression(codec))
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), arrow_schema.clone(), Some(props))
            .map_err(parquet_error)?;
        Ok(Self {
            schema,
            arrow_schema,
            writer,
        })
    }

    /// Writes `rows` as one row group if they fit this file's schema. Records
    /// with schemas fit when the schema is the same; schemaless ones when
    /// inferring over them adds no field and changes no type. A misfit
    /// (`false`, nothing written) starts a new file: nothing is narrowed.
    pub fn write_if_fits(&mut self, rows: &[Row]) -> Result<bool, ConnectError> {
        if let Some(columns) = direct::decode(&self.schema, rows) {
            self.write_columns(columns)?;
            return Ok(true);
        }
        let values = decode(rows)?;
        if !self.fits(&values) {
            return Ok(false);
        }
        self.write_values(&values)?;
        Ok(true)
    }

    fn fits(&self, rows: &[Decoded<'_>]) -> bool {
        match rows.first().and_then(|r| r.schema) {
            Some(s) if matches!(s.schema_type, SchemaType::Struct(_)) => rows.iter().all(|r| {
                r.schema
                    .is_some_and(|x| Arc::ptr_eq(x, &self.schema) || **x == *self.schema)
            }),
            _ => rows
                .iter()
                .all(|r| merge((*self.schema).clone(), infer(&r.value)) == *self.schema),
        }
    }

    fn write_values(&mut self, rows: &[Decoded<'_>]) -> Result<(), ConnectError> {
        let values: Vec<&Value> = rows.iter().map(|r| &*r.value).collect();
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for (i, f) in self.schema.fields().iter().enumerate() {
            let column: Vec<&Value> = values.iter().map(|v| field_value(v, i, &f.name)).collect();
            columns.push(build(&f.schema, &column)?);
        }
        self.write_columns(columns)
    }

    /// Writes one row group.
    fn write_columns(&mut self, columns: Vec<ArrayRef>) -> Result<(), ConnectError> {
        let batch =
            RecordBatch::try_new(self.arrow_schema.clone(), columns).map_err(arrow_error)?;
        self.writer.write(&batch).map_err(parquet_error)?;
        self.writer.flush().map_err(parquet_error)
    }

    /// Bytes written so far and not yet taken.
    pub fn buffered(&self) -> usize {
        self.writer.inner().len()
    }

    /// Takes the bytes written so far. The writer counts bytes itself, so the
    /// file stays consistent.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.inner_mut())
    }

    /// Writes the footer; returns the bytes not yet taken.
    pub fn finish(self) -> Result<Vec<u8>, ConnectError> {
        self.writer.into_inner().map_err(parquet_error)
    }
}

fn compression(codec: Codec) -> Compression {
    match codec {
        Codec::None => Compression::UNCOMPRESSED,
        Codec::Snappy => Compression::SNAPPY,
        Codec::Gzip => Compression::GZIP(GzipLevel::default()),
        Codec::Zstd => Compression::ZSTD(ZstdLevel::default()),
        Codec::Lz4 => Compression::LZ4_RAW,
        Codec::Brotli => Compression::BROTLI(BrotliLevel::default()),
    }
}

fn parquet_error(e: parquet::errors::ParquetError) -> ConnectError {
    ConnectError::fatal(format!("cannot write Parquet: {e}"))
}

/// The schema of a file: the records' own (the task cuts files at schema
/// changes), or one inferred from schemaless values.
fn file_schema(records: &[Decoded<'_>]) -> Result<SchemaRef, ConnectError> {
    if let Some(s) = records.first().and_then(|r| r.schema) {
        if matches!(s.schema_type, SchemaType::Struct(_)) {
            return Ok(s.clone());
        }
    }
    let mut inferred: Option<Schema> = None;
    for r in records {
        let t = infer(&r.value);
        inferred = Some(match inferred {
            None => t,
            Some(prev) => merge(prev, t),
        });
    }
    match inferred {
        Some(s) if matches!(s.schema_type, SchemaType::Struct(_)) => Ok(s.into_ref()),
        _ => Err(ConnectError::data(
            "Parquet needs struct values or JSON objects; use format.class=json for other values",
        )),
    }
}

fn optional(t: SchemaType) -> Schema {
    Schema::new(t).optional()
}

/// The type of a schemaless value; `None`-like nulls infer as optional strings
/// and give way to any other type when merged.
fn infer(v: &Value) -> Schema {
    match v {
        Value::Boolean(_) => optional(SchemaType::Boolean),
        Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
            optional(SchemaType::Int64)
        }
        Value::Float32(_) | Value::Float64(_) => optional(SchemaType::Float64),
        Value::Bytes(_) => optional(SchemaType::Bytes),
        Value::Array(items) => {
            let item = items
                .iter()
                .map(infer)
                .reduce(merge)
                .unwrap_or_else(null_schema);
            optional(SchemaType::Array(item.into_ref()))
        }
        Value::Map(entries) if entries.iter().all(|(k, _)| k.as_str().is_some()) => {
            Schema::struct_of(entries.iter().map(|(k, v)| {
                (
                    k.as_str().unwrap_or_default().to_owned(),
                    infer(v).into_ref(),
                )
            }))
            .optional()
        }
        Value::Null => null_schema(),
        _ => optional(SchemaType::String),
    }
}

pub(super) const NULL_MARK: &str = "sluice.inferred.null";

fn null_schema() -> Schema {
    optional(SchemaType::String).named(NULL_MARK)
}

fn merge(a: Schema, b: Schema) -> Schema {
    if a.name.as_deref() == Some(NULL_MARK) {
        return b;
    }
    if b.name.as_deref() == Some(NULL_MARK) {
        return a;
    }
    match (a.schema_type, b.schema_type) {
        (SchemaType::Struct(mut fa), SchemaType::Struct(fb)) => {
            for f in fb {
                match fa.iter_mut().find(|x| x.name == f.name) {
                    Some(existing) => {
                        existing.schema =
                            merge((*existing.schema).clone(), (*f.schema).clone()).into_ref();
                    }
                    None => fa.push(f),
                }
            }
            optional(SchemaType::Struct(fa))
        }
        (SchemaType::Array(x), SchemaType::Array(y)) => optional(SchemaType::Array(
            merge((*x).clone(), (*y).clone()).into_ref(),
        )),
        (SchemaType::Int64, SchemaType::Float64) | (SchemaType::Float64, SchemaType::Int64) => {
            optional(SchemaType::Float64)
        }
        (x, y) if x == y => optional(x),
        // Irreconcilable: keep the data, as JSON text.
        _ => optional(SchemaType::String),
    }
}

/// The schema a file of schemaless JSON rows would have if every row had the
/// first one's shape: inferred from the first row alone.
fn first_json_schema(rows: &[Row]) -> Option<SchemaRef> {
    let Some(Row::Json { text, .. }) = rows.first() else {
        return None;
    };
    let value = sluice_api::json::parse_schemaless_slice(text).ok()?;
    let schema = infer(&value);
    matches!(schema.schema_type, SchemaType::Struct(_)).then(|| schema.into_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, TimeUnit};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use sluice_api::schema::primitives;
    use sluice_api::Decimal;
    use sluice_api::Record;

    fn encode(records: &[Record], codec: Codec) -> Result<Vec<u8>, ConnectError> {
        let rows: Vec<Row> = records
            .iter()
            .map(|r| Row::Record(Box::new(r.clone())))
            .collect();
        ParquetFile::start(&rows, codec)?.finish()
    }

    /// The records the JSON converter would have decoded from the same text.
    fn decoded_rows(texts: &[&str]) -> Vec<Row> {
        texts
            .iter()
            .map(|t| {
                Row::Record(Box::new(Record {
                    value: sluice_api::json::parse_schemaless(t).unwrap(),
                    ..Record::default()
                }))
            })
            .collect()
    }

    /// A file of `first` then `second` as row groups: its bytes, and whether
    /// `second` fitted.
    fn two_groups(first: Vec<Row>, second: &[Row]) -> (Vec<u8>, bool) {
        let mut file = ParquetFile::start(&first, Codec::Snappy).unwrap();
        let fitted = file.write_if_fits(second).unwrap();
        (file.finish().unwrap(), fitted)
    }

    #[test]
    fn json_text_makes_the_same_file_as_the_decoded_records() {
        let datagen = r#"{"event_id":"e-1","generator":0,"sequence":7,"tenant_id":"t-42","api_key_id":"k-9","endpoint":"/v1/usage","method":"GET","status":200,"latency_ms":35,"request_bytes":512,"response_bytes":2048,"timestamp":1767225600000}"#;
        let groups: &[(&[&str], &[&str])] = &[
            // The common shape: straight into columns.
            (&[datagen, datagen], &[datagen]),
            (
                &[
                    r#"{"id":"a","n":1,"x":1.5,"ok":true}"#,
                    r#"{"ok":null,"x":2,"n":-3,"id":"b\u00e9\"q"}"#,
                    r#"{"id":"c","x":18446744073709551615}"#,
                ],
                &[r#"{"n":4}"#, r#"{"x":-0.25,"id":null}"#],
            ),
            // Shapes the direct decoder leaves to the values: the union of
            // fields, a null field, widening, nesting, conflicts.
            (&[r#"{"a":1}"#, r#"{"a":2,"b":"x"}"#], &[r#"{"b":"y"}"#]),
            (
                &[r#"{"a":null,"b":1}"#, r#"{"a":5,"b":2}"#],
                &[r#"{"b":3}"#],
            ),
            (&[r#"{"a":1}"#, r#"{"a":2.5}"#], &[r#"{"a":3}"#]),
            (
                &[
                    r#"{"a":"x","o":{"p":1},"l":[1,2]}"#,
                    r#"{"a":3,"o":null,"l":[]}"#,
                ],
                &[r#"{"a":true,"o":{"p":2},"l":[3]}"#],
            ),
            // Row groups that do not fit: a new field, a wider type.
            (&[r#"{"a":1}"#], &[r#"{"a":1,"b":2}"#]),
            (&[r#"{"a":1}"#], &[r#"{"a":1.5}"#]),
            (&[r#"{"a":null}"#], &[r#"{"a":1}"#]),
            // A text field takes any value, as JSON text.
            (
                &[r#"{"a":"x"}"#, r#"{"a":1}"#],
                &[r#"{"a":{"b":[1.0,null]}}"#],
            ),
        ];
        for (first, second) in groups {
            let json = two_groups(Row::json_texts(first), &Row::json_texts(second));
            let values = two_groups(decoded_rows(first), &decoded_rows(second));
            assert_eq!(json.1, values.1, "fit of {second:?} after {first:?}");
            assert!(json.0 == values.0, "bytes of {first:?} then {second:?}");
            let mut all = first.to_vec();
            all.extend_from_slice(second);
            let whole = |rows: Vec<Row>| {
                ParquetFile::start(&rows, Codec::Snappy)
                    .unwrap()
                    .finish()
                    .unwrap()
            };
            assert!(
                whole(Row::json_texts(&all)) == whole(decoded_rows(&all)),
                "one row group of {all:?}"
            );
        }
        assert_eq!(
            read(two_groups(Row::json_texts(&[datagen]), &Row::json_texts(&[datagen])).0)
                .num_rows(),
            2
        );
    }

    fn read(bytes: Vec<u8>) -> RecordBatch {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    #[test]
    fn structs_with_logical_types_round_trip() {
        let schema = Schema::struct_of([
            ("id", primitives::int32()),
            ("amount", Schema::decimal(2).optional().into_ref()),
            ("at", Schema::timestamp().into_ref()),
            (
                "tags",
                Schema::new(SchemaType::Array(primitives::string())).into_ref(),
            ),
            (
                "inner",
                Schema::struct_of([("x", primitives::int64())])
                    .optional()
                    .into_ref(),
            ),
        ])
        .into_ref();
        let records: Vec<Record> = (0..3)
            .map(|i| Record {
                value_schema: Some(schema.clone()),
                value: Value::Struct(vec![
                    Value::Int32(i),
                    if i == 1 {
                        Value::Null
                    } else {
                        Value::Decimal(Decimal::from_i128(1234 + i128::from(i), 2))
                    },
                    Value::Int64(1_700_000_000_000 + i64::from(i)),
                    Value::Array(vec!["a".into(), "b".into()]),
                    Value::Struct(vec![Value::Int64(10 * i64::from(i))]),
                ]),
                ..Record::new("t", Value::Null, Value::Null)
            })
            .collect();
        for codec in [
            Codec::None,
            Codec::Snappy,
            Codec::Gzip,
            Codec::Zstd,
            Codec::Lz4,
            Codec::Brotli,
        ] {
            let batch = read(encode(&records, codec).unwrap());
            assert_eq!(batch.num_rows(), 3, "{codec:?}");
            assert_eq!(
                batch.schema().field(1).data_type(),
                &DataType::Decimal128(38, 2)
            );
            assert!(matches!(
                batch.schema().field(2).data_type(),
                DataType::Timestamp(TimeUnit::Millisecond, _)
            ));
            assert!(batch.column(1).is_null(1));
        }
    }

    #[test]
    fn schemaless_objects_infer_a_union_schema() {
        let rec = |json: &str| Record {
            value: serde_json::from_str::<serde_json::Value>(json)
                .map(to_value)
                .unwrap(),
            ..Record::new("t", Value::Null, Value::Null)
        };
        let records = vec![
            rec(r#"{"a": 1, "b": "x"}"#),
            rec(r#"{"a": 2.5, "c": [1,2]}"#),
            rec(r#"{"b": 3}"#),
        ];
        let batch = read(encode(&records, Codec::Snappy).unwrap());
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(batch.schema().field(0).data_type(), &DataType::Float64);
        assert_eq!(
            batch.schema().field(1).data_type(),
            &DataType::Utf8,
            "string and number conflict: text"
        );
        assert!(encode(&[rec("42")], Codec::Snappy).is_err());
    }

    fn to_value(j: serde_json::Value) -> Value {
        match j {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Boolean(b),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map_or_else(|| Value::Float64(n.as_f64().unwrap_or(0.0)), Value::Int64),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(to_value).collect()),
            serde_json::Value::Object(o) => Value::Map(
                o.into_iter()
                    .map(|(k, v)| (Value::String(k), to_value(v)))
                    .collect(),
            ),
        }
    }
}
