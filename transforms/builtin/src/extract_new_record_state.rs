//! Debezium's `ExtractNewRecordState` ("unwrap"), as Debezium 3.6.3 runs it:
//! replaces a change event's envelope with the row it leaves behind
//! (`after`), for sinks that want rows, not changes. Deletes and tombstones
//! follow `delete.tombstone.handling.mode`; `add.fields` copies envelope,
//! `source` or `transaction` fields into the row as `__<name>` (with their
//! types), `add.headers` into headers; `route.by.field` names the topic by a
//! row field. A truncate leaves no row and is dropped. Records that are not
//! change events pass unchanged.
//!
//! Debezium 3.x removed `drop.tombstones` and `delete.handling.mode`; it
//! ignores them, and so does this transform, so a config written for an
//! older Debezium writes what Debezium 3.6.3 writes.

use std::sync::Arc;

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Validator};
use sluice_api::{
    ConnectError, Record, Schema, SchemaRef, SchemaType, TaskConfig, Transform, TransformPlugin,
    Value,
};

pub fn plugin() -> TransformPlugin {
    TransformPlugin {
        name: "ExtractNewRecordState",
        aliases: &["io.debezium.transforms.ExtractNewRecordState"],
        config_def,
        create: |c| Ok(Box::new(Unwrap::new(c)?)),
    }
}

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("delete.tombstone.handling.mode", ConfigType::String)
                .default("tombstone")
                .validator(Validator::OneOf(&[
                    "drop",
                    "tombstone",
                    "rewrite",
                    "rewrite-with-tombstone",
                    "delete-to-tombstone",
                ]))
                .doc("drop: no record for a delete, nor its tombstone; tombstone: a delete becomes a record with the row's schema and a null value, its tombstone is dropped; rewrite: a delete becomes its before image with __deleted=true (every row gets __deleted), its tombstone is dropped; rewrite-with-tombstone: as rewrite, the tombstone kept; delete-to-tombstone: a delete becomes a tombstone (no schema), the original tombstone is dropped."),
        )
        .define(ConfigKey::new("add.fields", ConfigType::List).default("").doc("Envelope (op, ts_ms), source or transaction fields to add to the row, as [struct.]field[:new_name]; named <add.fields.prefix><field>, or <prefix><struct>_<field> when the struct is given."))
        .define(ConfigKey::new("add.fields.prefix", ConfigType::String).default("__"))
        .define(ConfigKey::new("add.headers", ConfigType::List).default("").doc("As add.fields, added as headers."))
        .define(ConfigKey::new("add.headers.prefix", ConfigType::String).default("__"))
        .define(ConfigKey::new("route.by.field", ConfigType::String).default("").doc("A row field whose value, when not null, is the record's topic."))
        .define(ConfigKey::new("replace.null.with.default", ConfigType::Boolean).default("true"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deletes {
    Drop,
    Tombstone,
    Rewrite,
    RewriteWithTombstone,
    DeleteToTombstone,
}

impl Deletes {
    fn rewrites(self) -> bool {
        matches!(self, Self::Rewrite | Self::RewriteWithTombstone)
    }
}

/// One `add.fields` / `add.headers` entry: where the field is and what it is
/// called once added.
#[derive(Debug, Clone)]
struct FieldRef {
    /// `source`, `transaction`, or `None` for the envelope's own (`op`,
    /// `ts_ms`).
    parent: Option<String>,
    field: String,
    name: String,
}

impl FieldRef {
    fn parse(prefix: &str, spec: &str) -> Result<Self, String> {
        let (path, renamed) = match spec.split(':').collect::<Vec<_>>()[..] {
            [path] => (path, None),
            [path, new] => (path, Some(new)),
            _ => return Err(format!("'{spec}' is not [struct.]field[:new_name]")),
        };
        let (parent, field, qualified) = match path.split_once('.') {
            Some((parent, field)) => (Some(parent.to_owned()), field.to_owned(), true),
            None => {
                let parent = match path {
                    "op" | "ts_ms" => None,
                    "id" | "total_order" | "data_collection_order" => Some("transaction".into()),
                    _ => Some("source".into()),
                };
                (parent, path.to_owned(), false)
            }
        };
        let name = match (renamed, &parent) {
            (Some(new), _) => format!("{prefix}{new}"),
            (None, Some(p)) if qualified => format!("{prefix}{p}_{field}"),
            (None, _) => format!("{prefix}{field}"),
        };
        Ok(Self {
            parent,
            field,
            name,
        })
    }

    /// The field's schema (made optional, as Debezium copies it) and value in
    /// an envelope; `None` when the envelope has no such field.
    fn lookup(&self, schema: &Schema, value: &Value) -> Option<(SchemaRef, Value)> {
        let (schema, value) = match &self.parent {
            Some(p) => {
                let i = schema.field_index(p)?;
                let parent = schema.fields()[i].schema.clone();
                let v = struct_value(value, i).cloned().unwrap_or(Value::Null);
                let j = parent.field_index(&self.field)?;
                let field = parent.fields()[j].schema.clone();
                (field, struct_value(&v, j).cloned().unwrap_or(Value::Null))
            }
            None => {
                let i = schema.field_index(&self.field)?;
                (
                    schema.fields()[i].schema.clone(),
                    struct_value(value, i).cloned().unwrap_or(Value::Null),
                )
            }
        };
        Some((basics(&schema).optional().into_ref(), value))
    }
}

fn struct_value(value: &Value, i: usize) -> Option<&Value> {
    match value {
        Value::Struct(values) => values.get(i),
        _ => None,
    }
}

/// Connect's `SchemaUtil.copySchemaBasics`: type, name, version, doc and
/// parameters, required and without a default.
fn basics(schema: &Schema) -> Schema {
    Schema {
        optional: false,
        default: None,
        ..schema.clone()
    }
}

struct Unwrap {
    deletes: Deletes,
    add_fields: Vec<FieldRef>,
    add_headers: Vec<FieldRef>,
    route_by: Option<String>,
    /// `replace.null.with.default`: when the row is rebuilt with
    /// `__deleted`, a null field with a default takes the default (as
    /// Connect's InsertField, which Debezium rewrites with, does).
    null_defaults: bool,
    /// The last (row schema, envelope schema) seen and the row schema they
    /// make, so it is built once per table version, not per record.
    cache: Option<(SchemaRef, SchemaRef, SchemaRef)>,
}

impl Unwrap {
    fn new(config: &TaskConfig) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        let refs = |key: &str, prefix: &str| -> Result<Vec<FieldRef>, ConnectError> {
            c.list(key)
                .unwrap_or_default()
                .iter()
                .map(|f| f.trim())
                .filter(|f| !f.is_empty())
                .map(|f| FieldRef::parse(prefix, f))
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    ConnectError::new(sluice_api::ErrorKind::Config, format!("'{key}': {e}"))
                })
        };
        Ok(Self {
            deletes: match c
                .string("delete.tombstone.handling.mode")
                .unwrap_or("tombstone")
            {
                "drop" => Deletes::Drop,
                "rewrite" => Deletes::Rewrite,
                "rewrite-with-tombstone" => Deletes::RewriteWithTombstone,
                "delete-to-tombstone" => Deletes::DeleteToTombstone,
                _ => Deletes::Tombstone,
            },
            add_fields: refs("add.fields", c.string("add.fields.prefix").unwrap_or("__"))?,
            add_headers: refs(
                "add.headers",
                c.string("add.headers.prefix").unwrap_or("__"),
            )?,
            route_by: c
                .string("route.by.field")
                .filter(|f| !f.is_empty())
                .map(str::to_owned),
            null_defaults: c.boolean("replace.null.with.default").unwrap_or(true),
            cache: None,
        })
    }

    /// The row schema as Debezium rebuilds it: required, with `__deleted`
    /// (rewrite modes) and then the `add.fields`.
    fn extended(&mut self, row: &SchemaRef, envelope: &SchemaRef, value: &Value) -> SchemaRef {
        if let Some((r, e, to)) = &self.cache {
            if Arc::ptr_eq(r, row) && Arc::ptr_eq(e, envelope) {
                return to.clone();
            }
        }
        let mut fields: Vec<(String, SchemaRef)> = row
            .fields()
            .iter()
            .map(|f| (f.name.clone(), f.schema.clone()))
            .collect();
        if self.deletes.rewrites() {
            fields.push((
                "__deleted".into(),
                Schema::new(SchemaType::String).optional().into_ref(),
            ));
        }
        for f in &self.add_fields {
            if let Some((schema, _)) = f.lookup(envelope, value) {
                fields.push((f.name.clone(), schema));
            }
        }
        let s = Schema {
            schema_type: Schema::struct_of(fields).schema_type,
            ..basics(row)
        }
        .into_ref();
        self.cache = Some((row.clone(), envelope.clone(), s.clone()));
        s
    }
}

/// A header's bytes as Connect's SimpleHeaderConverter writes a value.
fn header_text(v: &Value) -> Option<Vec<u8>> {
    let text = match v {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Boolean(b) => b.to_string(),
        Value::Int8(n) => n.to_string(),
        Value::Int16(n) => n.to_string(),
        Value::Int32(n) => n.to_string(),
        Value::Int64(n) => n.to_string(),
        Value::Float32(n) => n.to_string(),
        Value::Float64(n) => n.to_string(),
        other => format!("{other:?}"),
    };
    Some(text.into_bytes())
}

impl Transform for Unwrap {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let Some(schema) = record.value_schema.clone() else {
            // A tombstone (or a schemaless value, which is no envelope).
            if !record.value.is_null() {
                return Ok(Some(record));
            }
            if self.deletes != Deletes::RewriteWithTombstone {
                return Ok(None);
            }
            for h in &self.add_headers {
                if h.parent.is_none() && h.field == "op" {
                    record.headers.push(h.name.clone(), Some(b"d".to_vec()));
                }
            }
            return Ok(Some(record));
        };
        let is_envelope = schema
            .name
            .as_deref()
            .is_some_and(|n| n.ends_with(".Envelope"))
            && ["before", "after", "source", "op"]
                .iter()
                .all(|f| schema.field_index(f).is_some());
        if !is_envelope {
            return Ok(Some(record));
        }
        for h in &self.add_headers {
            if let Some((_, v)) = h.lookup(&schema, &record.value) {
                record.headers.push(h.name.clone(), header_text(&v));
            }
        }
        let side = |name: &str| -> Result<(SchemaRef, Value), ConnectError> {
            let i = schema
                .field_index(name)
                .ok_or_else(|| ConnectError::data(format!("the envelope has no '{name}'")))?;
            Ok((
                schema.fields()[i].schema.clone(),
                struct_value(&record.value, i)
                    .cloned()
                    .unwrap_or(Value::Null),
            ))
        };
        let (after_schema, after) = side("after")?;
        let (before_schema, before) = side("before")?;
        let (row_schema, row, deleted) = match (after, before) {
            // A truncate leaves no row to show.
            (Value::Null, Value::Null) => return Ok(None),
            (Value::Null, before) => match self.deletes {
                Deletes::Drop => return Ok(None),
                Deletes::Tombstone => {
                    record.value_schema = Some(after_schema);
                    record.value = Value::Null;
                    return Ok(Some(record));
                }
                Deletes::DeleteToTombstone => {
                    record.value_schema = None;
                    record.value = Value::Null;
                    return Ok(Some(record));
                }
                Deletes::Rewrite | Deletes::RewriteWithTombstone => (before_schema, before, "true"),
            },
            (after, _) => (after_schema, after, "false"),
        };
        let Value::Struct(mut values) = row else {
            return Ok(Some(record));
        };
        let row_values = values.clone();
        if self.deletes.rewrites() {
            if self.null_defaults {
                for (v, f) in values.iter_mut().zip(row_schema.fields()) {
                    if let (Value::Null, Some(default)) = (&v, &f.schema.default) {
                        *v = default.clone();
                    }
                }
            }
            values.push(Value::String(deleted.into()));
        }
        for f in &self.add_fields {
            if let Some((_, v)) = f.lookup(&schema, &record.value) {
                values.push(v);
            }
        }
        let extended = self.extended(&row_schema, &schema, &record.value);
        if let Some(field) = &self.route_by {
            if let Some(Value::String(topic)) = row_schema
                .field_index(field)
                .and_then(|i| row_values.get(i))
            {
                record.topic = topic.as_str().into();
            }
        }
        record.value_schema = Some(extended);
        record.value = Value::Struct(values);
        Ok(Some(record))
    }
}
