//! Connect values into Arrow columns: one builder per Connect type, a
//! logical type (Decimal, Date, Time, Timestamp) before its physical one,
//! lists and structs recursively. A value that does not fit its column's type
//! is this record's error (`ConnectError::data`), never a panic.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder, ListArray,
    StringBuilder, StructArray, Time32MillisecondBuilder, TimestampMillisecondBuilder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use sluice_api::json::JsonView;
use sluice_api::schema::{LogicalType, Schema, SchemaType};
use sluice_api::{ConnectError, Value};

pub(super) fn arrow_error(e: arrow::error::ArrowError) -> ConnectError {
    ConnectError::data(format!("cannot build the Parquet columns: {e}"))
}

pub(super) fn field_value<'a>(v: &'a Value, i: usize, name: &str) -> &'a Value {
    const NULL: &Value = &Value::Null;
    match v {
        Value::Struct(values) => values.get(i).unwrap_or(NULL),
        Value::Map(_) => v.map_get(name).unwrap_or(NULL),
        _ => NULL,
    }
}

pub(super) fn arrow_type(s: &Schema) -> DataType {
    match s.logical_type() {
        Some(LogicalType::Decimal { scale }) => {
            return DataType::Decimal128(38, scale.clamp(0, 38) as i8)
        }
        Some(LogicalType::Date) => return DataType::Date32,
        Some(LogicalType::Time) => return DataType::Time32(TimeUnit::Millisecond),
        Some(LogicalType::Timestamp) => {
            return DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        }
        None => {}
    }
    match &s.schema_type {
        SchemaType::Int8 => DataType::Int8,
        SchemaType::Int16 => DataType::Int16,
        SchemaType::Int32 => DataType::Int32,
        SchemaType::Int64 => DataType::Int64,
        SchemaType::Float32 => DataType::Float32,
        SchemaType::Float64 => DataType::Float64,
        SchemaType::Boolean => DataType::Boolean,
        SchemaType::String | SchemaType::Map(..) => DataType::Utf8,
        SchemaType::Bytes => DataType::Binary,
        SchemaType::Array(item) => {
            DataType::List(Arc::new(Field::new("item", arrow_type(item), true)))
        }
        SchemaType::Struct(fields) => DataType::Struct(struct_fields(fields)),
    }
}

fn struct_fields(fields: &[sluice_api::Field]) -> Fields {
    fields
        .iter()
        .map(|f| Field::new(&f.name, arrow_type(&f.schema), true))
        .collect()
}

fn mismatch(s: &Schema, v: &Value) -> ConnectError {
    ConnectError::data(format!(
        "a value does not match its {} schema: {v:?}",
        s.type_name()
    ))
}

/// Builds an Arrow column with `$builder`, appending what `$pat` binds as
/// `$out`; a null is a null, any other value a mismatch with `$s`.
macro_rules! primitive {
    ($s:expr, $values:expr, $builder:ty, $pat:pat => $out:expr) => {{
        let mut b = <$builder>::with_capacity($values.len());
        for v in $values {
            match v {
                Value::Null => b.append_null(),
                $pat => b.append_value($out),
                other => return Err(mismatch($s, other)),
            }
        }
        Ok(Arc::new(b.finish()) as ArrayRef)
    }};
}

/// Builds one column from the values of one field across the file's records:
/// by its logical type when it has one, else by its physical type.
pub(super) fn build(s: &Schema, values: &[&Value]) -> Result<ArrayRef, ConnectError> {
    match s.logical_type() {
        Some(LogicalType::Decimal { scale }) => build_decimal(s, scale, values),
        Some(LogicalType::Date) => primitive!(s, values, Date32Builder, Value::Int32(d) => *d),
        Some(LogicalType::Time) => {
            primitive!(s, values, Time32MillisecondBuilder, Value::Int32(t) => *t)
        }
        Some(LogicalType::Timestamp) => {
            let mut b =
                TimestampMillisecondBuilder::with_capacity(values.len()).with_timezone("UTC");
            for v in values {
                match v.as_i64() {
                    Some(ms) => b.append_value(ms),
                    None if v.is_null() => b.append_null(),
                    None => return Err(mismatch(s, v)),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        None => build_physical(s, values),
    }
}

fn build_decimal(s: &Schema, scale: i32, values: &[&Value]) -> Result<ArrayRef, ConnectError> {
    let mut b = Decimal128Builder::with_capacity(values.len());
    for v in values {
        match v {
            Value::Null => b.append_null(),
            Value::Decimal(d) => b.append_value(d.to_i128().ok_or_else(|| {
                ConnectError::data(format!("decimal {d} does not fit Parquet's 38 digits"))
            })?),
            other => return Err(mismatch(s, other)),
        }
    }
    let array = b
        .finish()
        .with_precision_and_scale(38, scale.clamp(0, 38) as i8)
        .map_err(arrow_error)?;
    Ok(Arc::new(array))
}

fn build_physical(s: &Schema, values: &[&Value]) -> Result<ArrayRef, ConnectError> {
    match &s.schema_type {
        SchemaType::Int8 => primitive!(s, values, Int8Builder, Value::Int8(x) => *x),
        SchemaType::Int16 => primitive!(s, values, Int16Builder, Value::Int16(x) => *x),
        SchemaType::Int32 => primitive!(s, values, Int32Builder, Value::Int32(x) => *x),
        SchemaType::Int64 => {
            let mut b = Int64Builder::with_capacity(values.len());
            for v in values {
                match v.as_i64() {
                    Some(x) => b.append_value(x),
                    None if v.is_null() => b.append_null(),
                    None => return Err(mismatch(s, v)),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        SchemaType::Float32 => primitive!(s, values, Float32Builder, Value::Float32(x) => *x),
        SchemaType::Float64 => {
            let mut b = Float64Builder::with_capacity(values.len());
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::Float64(x) => b.append_value(*x),
                    Value::Float32(x) => b.append_value(f64::from(*x)),
                    other => match other.as_i64() {
                        Some(i) => b.append_value(i as f64),
                        None => return Err(mismatch(s, other)),
                    },
                }
            }
            Ok(Arc::new(b.finish()))
        }
        SchemaType::Boolean => primitive!(s, values, BooleanBuilder, Value::Boolean(x) => *x),
        SchemaType::Bytes => {
            let mut b = BinaryBuilder::with_capacity(values.len(), values.len() * 32);
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::Bytes(x) => b.append_value(x),
                    other => return Err(mismatch(s, other)),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        SchemaType::String | SchemaType::Map(..) => build_text(s, values),
        SchemaType::Array(item) => build_list(s, item, values),
        SchemaType::Struct(fields) => build_struct(fields, values),
    }
}

/// Strings; maps, and fields whose types conflicted, as JSON text.
fn build_text(s: &Schema, values: &[&Value]) -> Result<ArrayRef, ConnectError> {
    let mut b = StringBuilder::with_capacity(values.len(), values.len() * 16);
    let schema = matches!(s.schema_type, SchemaType::Map(..)).then_some(s);
    for v in values {
        match v {
            Value::Null => b.append_null(),
            Value::String(x) => b.append_value(x),
            other => {
                let text = serde_json::to_string(&JsonView::new(schema, other)).map_err(|e| {
                    ConnectError::data(format!("cannot render a value as JSON: {e}"))
                })?;
                b.append_value(text);
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

fn build_list(s: &Schema, item: &Schema, values: &[&Value]) -> Result<ArrayRef, ConnectError> {
    let mut offsets = Vec::with_capacity(values.len() + 1);
    offsets.push(0i32);
    let mut children: Vec<&Value> = Vec::new();
    let mut valid = Vec::with_capacity(values.len());
    for v in values {
        match v {
            Value::Array(items) => {
                children.extend(items.iter());
                valid.push(true);
            }
            Value::Null => valid.push(false),
            other => return Err(mismatch(s, other)),
        }
        offsets
            .push(i32::try_from(children.len()).map_err(|_| ConnectError::data("list too long"))?);
    }
    let child = build(item, &children)?;
    let field = Arc::new(Field::new("item", arrow_type(item), true));
    let array = ListArray::try_new(
        field,
        OffsetBuffer::new(offsets.into()),
        child,
        Some(NullBuffer::from(valid)),
    )
    .map_err(arrow_error)?;
    Ok(Arc::new(array))
}

fn build_struct(fields: &[sluice_api::Field], values: &[&Value]) -> Result<ArrayRef, ConnectError> {
    let mut columns = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let column: Vec<&Value> = values.iter().map(|v| field_value(v, i, &f.name)).collect();
        columns.push(build(&f.schema, &column)?);
    }
    let valid: Vec<bool> = values.iter().map(|v| !v.is_null()).collect();
    let array = StructArray::try_new(
        struct_fields(fields),
        columns,
        Some(NullBuffer::from(valid)),
    )
    .map_err(arrow_error)?;
    Ok(Arc::new(array))
}
