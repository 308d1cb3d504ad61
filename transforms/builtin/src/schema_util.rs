//! Rebuilding schemas as Connect's `SchemaUtil` and `SchemaBuilder` do, the
//! per-transform schema cache, and reading struct fields with or without
//! their defaults.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_api::schema::{Field, Schema, SchemaType};
use sluice_api::{ConnectError, SchemaRef, Value};

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

/// `SchemaUtil.copySchemaBasics`: name, version, doc and parameters onto a new
/// schema of `schema_type` — not optionality nor the default.
pub(crate) fn copy_basics(schema: &Schema, schema_type: SchemaType) -> Schema {
    let mut out = Schema::new(schema_type);
    out.name = schema.name.clone();
    out.version = schema.version;
    out.doc = schema.doc.clone();
    out.parameters = schema.parameters.clone();
    out
}

/// A struct schema with `schema`'s basics and these fields.
pub(crate) fn struct_like(schema: &Schema, fields: Vec<Field>) -> Schema {
    copy_basics(schema, SchemaType::Struct(fields))
}

/// `Struct.get(field)` (a null replaced by the field's default) or, with
/// `with_default` false, `Struct.getWithoutDefault`.
pub(crate) fn field_value(field: &Field, value: &Value, with_default: bool) -> Value {
    match (value, &field.schema.default) {
        (Value::Null, Some(default)) if with_default => default.clone(),
        _ => value.clone(),
    }
}

/// The `replace.null.with.default` key several transforms share.
pub(crate) fn replace_null_with_default_key() -> sluice_api::ConfigKey {
    sluice_api::ConfigKey::new("replace.null.with.default", sluice_api::ConfigType::Boolean)
        .default("true")
        .doc(
            "Whether to replace fields that have a default value and that are null to the \
             default value. When set to true, the default value is used, otherwise null is used.",
        )
}

/// `SchemaBuilder.field`: appends a field, refusing a name already present
/// with Connect's `SchemaBuilderException` message.
pub(crate) fn push_field(
    fields: &mut Vec<Field>,
    name: &str,
    schema: SchemaRef,
) -> Result<(), ConnectError> {
    if name.is_empty() {
        return Err(ConnectError::data("fieldName cannot be null."));
    }
    if fields.iter().any(|f| f.name == name) {
        return Err(ConnectError::data(format!(
            "Cannot create field because of field name duplication {name}"
        )));
    }
    fields.push(Field {
        name: name.to_owned(),
        schema,
    });
    Ok(())
}

/// `Schema.fields()`, which Connect refuses on a schema that is not a struct.
pub(crate) fn list_fields(schema: &Schema) -> Result<&[Field], ConnectError> {
    match &schema.schema_type {
        SchemaType::Struct(fields) => Ok(fields),
        _ => Err(ConnectError::data("Cannot list fields on non-struct type")),
    }
}

/// Connect's `Date`, `Time` and `Timestamp` schemas carry version 1.
pub(crate) fn logical_version(mut schema: Schema) -> Schema {
    schema.version = Some(1);
    schema
}
