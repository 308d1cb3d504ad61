//! Reading and rebuilding the struct or map a transform edits, on either side.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_api::schema::{Field, Schema, SchemaType};
use sluice_api::{ConnectError, Record, SchemaRef, Value};

use crate::Side;

/// The schema and value of one side of a record, taken out for editing.
pub(crate) fn take(record: &mut Record, side: Side) -> (Option<SchemaRef>, Value) {
    match side {
        Side::Key => (record.key_schema.take(), std::mem::take(&mut record.key)),
        Side::Value => (
            record.value_schema.take(),
            std::mem::take(&mut record.value),
        ),
    }
}

pub(crate) fn put(record: &mut Record, side: Side, schema: Option<SchemaRef>, value: Value) {
    match side {
        Side::Key => {
            record.key_schema = schema;
            record.key = value;
        }
        Side::Value => {
            record.value_schema = schema;
            record.value = value;
        }
    }
}

/// A schema-to-schema rewrite, cached by the input schema's identity: records of
/// one source share one schema `Arc`, so the rewrite is computed once.
#[derive(Default)]
pub(crate) struct SchemaCache {
    by_ptr: HashMap<usize, (SchemaRef, SchemaRef)>,
}

impl SchemaCache {
    pub(crate) fn get_or_build(
        &mut self,
        input: &SchemaRef,
        build: impl FnOnce(&Schema) -> Result<Schema, ConnectError>,
    ) -> Result<SchemaRef, ConnectError> {
        let key = Arc::as_ptr(input) as usize;
        if let Some((kept, out)) = self.by_ptr.get(&key) {
            // The kept clone pins the address, so it cannot name another schema.
            if Arc::ptr_eq(kept, input) {
                return Ok(out.clone());
            }
        }
        let out = build(input)?.into_ref();
        if self.by_ptr.len() > 256 {
            self.by_ptr.clear();
        }
        self.by_ptr.insert(key, (input.clone(), out.clone()));
        Ok(out)
    }
}

/// A copy of `schema`'s metadata with new struct fields.
pub(crate) fn with_fields(schema: &Schema, fields: Vec<Field>) -> Schema {
    let mut out = Schema::new(SchemaType::Struct(fields));
    out.optional = schema.optional;
    out.name = schema.name.clone();
    out.version = schema.version;
    out.doc = schema.doc.clone();
    out.parameters = schema.parameters.clone();
    out
}

pub(crate) fn not_a_struct(transform: &str, record: &Record, found: &Value) -> ConnectError {
    let what = match found {
        Value::Null => "null",
        Value::Map(_) => "a map",
        Value::Struct(_) => "a struct without its schema",
        _ => "a primitive",
    };
    ConnectError::data(format!(
        "{transform} needs a struct or a map, found {what} in record {}",
        record.coordinates()
    ))
}
