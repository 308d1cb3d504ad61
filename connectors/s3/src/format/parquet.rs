//! Records to Parquet through Arrow: one `RecordBatch` per file, built column by
//! column from the records' values.
//!
//! The columns come from the value schema (records with schemas: JSON with
//! `schemas.enable`, CDC events) or, for schemaless JSON, from the union of the
//! file's records' fields, a type conflict falling back to JSON text. Connect
//! types map to Parquet's logical types: Decimal → DECIMAL(38, scale), Date →
//! DATE, Time → TIME(ms), Timestamp → TIMESTAMP(ms, UTC), arrays → LIST, structs
//! → nested groups. Maps are written as JSON text for now.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema as ArrowSchema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sluice_api::schema::{Schema, SchemaType};
use sluice_api::{ConnectError, Record, SchemaRef, Value};

use super::columns::{arrow_error, arrow_type, build, field_value};
use super::Codec;

/// Encodes a whole file at once.
pub fn encode(records: &[Record], codec: Codec) -> Result<Vec<u8>, ConnectError> {
    let mut writer = ParquetFile::new(records, codec)?;
    writer.write(records)?;
    writer.finish()
}

/// A Parquet file written row group by row group; its bytes can be taken out as
/// they accumulate (to upload them as multipart parts) without holding the file.
pub struct ParquetFile {
    schema: SchemaRef,
    arrow_schema: Arc<ArrowSchema>,
    writer: ArrowWriter<Vec<u8>>,
}

impl ParquetFile {
    /// Starts a file whose schema comes from `first_rows`: their value schema, or
    /// the union inferred from schemaless values.
    pub fn new(first_rows: &[Record], codec: Codec) -> Result<Self, ConnectError> {
        let schema = file_schema(first_rows)?;
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

    /// Whether `rows` fit this file's schema. Records with schemas fit when the
    /// schema is the same; schemaless ones when inferring over them adds no field
    /// and changes no type. A misfit starts a new file: nothing is narrowed.
    pub fn fits(&self, rows: &[Record]) -> bool {
        match rows.first().and_then(|r| r.value_schema.clone()) {
            Some(s) if matches!(s.schema_type, SchemaType::Struct(_)) => rows.iter().all(|r| {
                r.value_schema
                    .as_ref()
                    .is_some_and(|x| Arc::ptr_eq(x, &self.schema) || **x == *self.schema)
            }),
            _ => rows
                .iter()
                .all(|r| merge((*self.schema).clone(), infer(&r.value)) == *self.schema),
        }
    }

    /// Writes `rows` as one row group.
    pub fn write(&mut self, rows: &[Record]) -> Result<(), ConnectError> {
        let values: Vec<&Value> = rows.iter().map(|r| &r.value).collect();
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for (i, f) in self.schema.fields().iter().enumerate() {
            let column: Vec<&Value> = values.iter().map(|v| field_value(v, i, &f.name)).collect();
            columns.push(build(&f.schema, &column)?);
        }
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
fn file_schema(records: &[Record]) -> Result<SchemaRef, ConnectError> {
    if let Some(s) = records.first().and_then(|r| r.value_schema.clone()) {
        if matches!(s.schema_type, SchemaType::Struct(_)) {
            return Ok(s);
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

const NULL_MARK: &str = "sluice.inferred.null";

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

/// The `i`-th field of a struct value, or the field `name` of a JSON object.
#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, TimeUnit};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use sluice_api::schema::primitives;
    use sluice_api::Decimal;

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
