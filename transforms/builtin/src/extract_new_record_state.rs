//! Debezium's `ExtractNewRecordState` ("unwrap"): replaces a change event's
//! envelope with the row it leaves behind (`after`), for sinks that want rows,
//! not changes. Deletes follow `delete.handling.mode` (drop, rewrite with
//! `__deleted`, or none), tombstones `drop.tombstones`, and `add.fields` copies
//! envelope fields (`op`, `ts_ms`, or any `source` field) into the row as
//! `__<name>`. Records that are not change events pass unchanged.

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
        .define(ConfigKey::new("drop.tombstones", ConfigType::Boolean).default("true"))
        .define(
            ConfigKey::new("delete.handling.mode", ConfigType::String)
                .default("drop")
                .validator(Validator::OneOf(&["drop", "rewrite", "none"])),
        )
        .define(ConfigKey::new("add.fields", ConfigType::List).default(""))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deletes {
    Drop,
    Rewrite,
    None,
}

struct Unwrap {
    drop_tombstones: bool,
    deletes: Deletes,
    add_fields: Vec<String>,
    /// The last row schema seen and what it became, so the extended schema
    /// is built once per table version, not per record.
    cache: Option<(SchemaRef, SchemaRef)>,
}

impl Unwrap {
    fn new(config: &TaskConfig) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        Ok(Self {
            drop_tombstones: c.boolean("drop.tombstones").unwrap_or(true),
            deletes: match c.string("delete.handling.mode").unwrap_or("drop") {
                "rewrite" => Deletes::Rewrite,
                "none" => Deletes::None,
                _ => Deletes::Drop,
            },
            add_fields: c
                .list("add.fields")
                .unwrap_or_default()
                .iter()
                .filter(|f| !f.is_empty())
                .cloned()
                .collect(),
            cache: None,
        })
    }

    /// The row schema with `__deleted` and the `add.fields` appended.
    fn extended(&mut self, row: &SchemaRef) -> SchemaRef {
        if let Some((from, to)) = &self.cache {
            if Arc::ptr_eq(from, row) {
                return to.clone();
            }
        }
        let mut fields: Vec<(String, SchemaRef)> = row
            .fields()
            .iter()
            .map(|f| (f.name.clone(), f.schema.clone()))
            .collect();
        let optional_string = || Schema::new(SchemaType::String).optional().into_ref();
        for name in &self.add_fields {
            fields.push((format!("__{}", name.replace('.', "_")), optional_string()));
        }
        if self.deletes == Deletes::Rewrite {
            fields.push(("__deleted".into(), optional_string()));
        }
        let mut s = Schema::struct_of(fields);
        s.name = row.name.clone();
        s.version = row.version;
        let s = s.into_ref();
        self.cache = Some((row.clone(), s.clone()));
        s
    }
}

/// An envelope field's value by name.
fn field<'a>(schema: &Schema, value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Struct(values) => schema.field_index(name).and_then(|i| values.get(i)),
        _ => None,
    }
}

fn text(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::String(s) => Value::String(s.clone()),
        Value::Int64(n) => Value::String(n.to_string()),
        Value::Int32(n) => Value::String(n.to_string()),
        Value::Boolean(b) => Value::String(b.to_string()),
        other => Value::String(format!("{other:?}")),
    }
}

impl Transform for Unwrap {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let Some(schema) = record.value_schema.clone() else {
            // A tombstone (or a schemaless value, which is no envelope).
            if record.value.is_null() && self.drop_tombstones {
                return Ok(None);
            }
            return Ok(Some(record));
        };
        let is_envelope = ["before", "after", "source", "op"]
            .iter()
            .all(|f| schema.field_index(f).is_some());
        if !is_envelope {
            return Ok(Some(record));
        }
        let op = field(&schema, &record.value, "op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let (row, deleted) = match op.as_str() {
            "d" => match self.deletes {
                Deletes::Drop => return Ok(None),
                Deletes::None => {
                    record.value = Value::Null;
                    record.value_schema = None;
                    return Ok(Some(record));
                }
                Deletes::Rewrite => ("before", "true"),
            },
            // A truncate leaves no row to show.
            "t" => return Ok(None),
            _ => ("after", "false"),
        };
        let row_schema = schema
            .fields()
            .iter()
            .find(|f| f.name == row)
            .map(|f| f.schema.clone())
            .ok_or_else(|| ConnectError::data(format!("the envelope has no '{row}'")))?;
        let Some(Value::Struct(mut values)) = field(&schema, &record.value, row).cloned() else {
            return Ok(None);
        };
        if !self.add_fields.is_empty() || self.deletes == Deletes::Rewrite {
            let source_schema = schema
                .fields()
                .iter()
                .find(|f| f.name == "source")
                .map(|f| f.schema.clone());
            let source = field(&schema, &record.value, "source");
            for name in &self.add_fields {
                let v = match name.as_str() {
                    "op" | "ts_ms" => field(&schema, &record.value, name).map(text),
                    n => match (&source_schema, source) {
                        (Some(ss), Some(sv)) => {
                            field(ss, sv, n.trim_start_matches("source.")).map(text)
                        }
                        _ => None,
                    },
                };
                values.push(v.unwrap_or(Value::Null));
            }
            if self.deletes == Deletes::Rewrite {
                values.push(Value::String(deleted.into()));
            }
            record.value_schema = Some(self.extended(&row_schema));
        } else {
            record.value_schema = Some(row_schema);
        }
        record.value = Value::Struct(values);
        Ok(Some(record))
    }
}
