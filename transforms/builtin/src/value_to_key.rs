//! `ValueToKey`: replaces the key with a struct (or map) of some of the
//! value's fields.

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Validator};
use sluice_api::schema::{Schema, SchemaType};
use sluice_api::{ConnectError, Record, TaskConfig, Transform, TransformPlugin, Value};

use crate::requirements::{map_required, struct_required};
use crate::schema_util::{field_value, push_field, replace_null_with_default_key, SchemaCache};

const PURPOSE: &str = "copying fields from value to key";

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("fields", ConfigType::List)
                .validator(Validator::NonEmpty)
                .doc("Field names on the record value to extract as the record key."),
        )
        .define(replace_null_with_default_key())
}

pub fn plugin() -> TransformPlugin {
    TransformPlugin {
        name: "ValueToKey",
        aliases: &["org.apache.kafka.connect.transforms.ValueToKey"],
        config_def,
        create: |c| Ok(Box::new(ValueToKey::new(c)?)),
    }
}

struct ValueToKey {
    fields: Vec<String>,
    with_default: bool,
    schemas: SchemaCache,
}

impl ValueToKey {
    fn new(config: &TaskConfig) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        Ok(Self {
            fields: c.list("fields").map(<[String]>::to_vec).unwrap_or_default(),
            with_default: c.boolean("replace.null.with.default").unwrap_or(true),
            schemas: SchemaCache::default(),
        })
    }
}

impl Transform for ValueToKey {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        match &record.value_schema {
            None => {
                if !matches!(record.value, Value::Map(_)) {
                    return Err(map_required(&record.value, PURPOSE));
                }
                let key = self
                    .fields
                    .iter()
                    .map(|f| {
                        let v = record.value.map_get(f).cloned().unwrap_or_default();
                        (Value::String(f.clone()), v)
                    })
                    .collect();
                record.key_schema = None;
                record.key = Value::Map(key);
            }
            Some(schema) => {
                let Value::Struct(values) = &record.value else {
                    return Err(struct_required(&record.value, Some(schema), PURPOSE));
                };
                let fields = &self.fields;
                let key_schema = self.schemas.get_or_build(schema, |s| {
                    let mut out = Vec::new();
                    for name in fields {
                        let Some(f) = s.fields().iter().find(|f| &f.name == name) else {
                            return Err(ConnectError::data(format!(
                                "Field does not exist: {name}"
                            )));
                        };
                        push_field(&mut out, name, f.schema.clone())?;
                    }
                    Ok(Schema::new(SchemaType::Struct(out)))
                })?;
                let key = self
                    .fields
                    .iter()
                    .filter_map(|name| schema.field_index(name))
                    .map(|i| field_value(&schema.fields()[i], &values[i], self.with_default))
                    .collect();
                record.key_schema = Some(key_schema);
                record.key = Value::Struct(key);
            }
        }
        Ok(Some(record))
    }
}
