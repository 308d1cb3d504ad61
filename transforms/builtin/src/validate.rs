//! `ConnectSchema.validateValue`, which `Struct.put` runs on every field a
//! transform sets: a null for a required field, or a value of another type,
//! fails with Connect's message.

use sluice_api::schema::{LogicalType, Schema, SchemaType};
use sluice_api::{ConnectError, Value};

use crate::java::class_string;

/// Connect's upper-case `Schema.Type` name.
pub(crate) fn type_name(schema: &Schema) -> &'static str {
    match schema.schema_type {
        SchemaType::Int8 => "INT8",
        SchemaType::Int16 => "INT16",
        SchemaType::Int32 => "INT32",
        SchemaType::Int64 => "INT64",
        SchemaType::Float32 => "FLOAT32",
        SchemaType::Float64 => "FLOAT64",
        SchemaType::Boolean => "BOOLEAN",
        SchemaType::String => "STRING",
        SchemaType::Bytes => "BYTES",
        SchemaType::Array(_) => "ARRAY",
        SchemaType::Map(..) => "MAP",
        SchemaType::Struct(_) => "STRUCT",
    }
}

/// Checks `value` against the schema of field `field` (`None`: the whole value).
pub(crate) fn check(
    schema: &Schema,
    value: &Value,
    field: Option<&str>,
) -> Result<(), ConnectError> {
    let location = field.map_or_else(|| "value".to_owned(), |f| format!("field: \"{f}\""));
    if value.is_null() {
        if schema.optional {
            return Ok(());
        }
        return Err(ConnectError::data(format!(
            "Invalid value: null used for required {location}, schema type: {}",
            type_name(schema)
        )));
    }
    let matches = match (&schema.schema_type, value) {
        (SchemaType::Bytes, Value::Decimal(_)) => {
            matches!(schema.logical_type(), Some(LogicalType::Decimal { .. }))
        }
        (SchemaType::Int8, Value::Int8(_))
        | (SchemaType::Int16, Value::Int16(_))
        | (SchemaType::Int32, Value::Int32(_))
        | (SchemaType::Int64, Value::Int64(_))
        | (SchemaType::Float32, Value::Float32(_))
        | (SchemaType::Float64, Value::Float64(_))
        | (SchemaType::Boolean, Value::Boolean(_))
        | (SchemaType::String, Value::String(_))
        | (SchemaType::Array(_), Value::Array(_))
        | (SchemaType::Map(..), Value::Map(_))
        | (SchemaType::Struct(_), Value::Struct(_)) => true,
        (SchemaType::Bytes, Value::Bytes(_)) => {
            !matches!(schema.logical_type(), Some(LogicalType::Decimal { .. }))
        }
        _ => false,
    };
    if matches {
        return Ok(());
    }
    let name = schema
        .name
        .as_ref()
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default();
    Err(ConnectError::data(format!(
        "Invalid Java object for schema{name} with type {}: {} for {location}",
        type_name(schema),
        class_string(value, None)
    )))
}
