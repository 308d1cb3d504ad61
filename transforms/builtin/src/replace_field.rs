//! `ReplaceField$Value` / `$Key`: keeps (`include`), drops (`exclude`) and renames
//! (`renames`, `old:new,...`) fields.

use std::collections::HashMap;

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Validator};
use sluice_api::schema::Field;
use sluice_api::{ConnectError, Record, TaskConfig, Transform, TransformPlugin, Value};

use crate::field_path::{not_a_struct, put, take, with_fields, SchemaCache};
use crate::Side;

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("exclude", ConfigType::List)
                .default("")
                .doc("Fields to drop."),
        )
        .define(
            ConfigKey::new("include", ConfigType::List)
                .default("")
                .doc("Fields to keep; empty keeps all."),
        )
        .define(
            ConfigKey::new("renames", ConfigType::List)
                .default("")
                .validator(Validator::Custom(|v| {
                    if v.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .all(|p| p.split_once(':').is_some())
                    {
                        Ok(())
                    } else {
                        Err("expected old:new pairs, comma-separated".to_owned())
                    }
                }))
                .doc("Field renames as old:new pairs."),
        )
}

pub fn plugin_value() -> TransformPlugin {
    TransformPlugin {
        name: "ReplaceField$Value",
        aliases: &["org.apache.kafka.connect.transforms.ReplaceField$Value"],
        config_def,
        create: |c| Ok(Box::new(ReplaceField::new(c, Side::Value)?)),
    }
}

pub fn plugin_key() -> TransformPlugin {
    TransformPlugin {
        name: "ReplaceField$Key",
        aliases: &["org.apache.kafka.connect.transforms.ReplaceField$Key"],
        config_def,
        create: |c| Ok(Box::new(ReplaceField::new(c, Side::Key)?)),
    }
}

struct ReplaceField {
    side: Side,
    exclude: Vec<String>,
    include: Vec<String>,
    renames: HashMap<String, String>,
    schemas: SchemaCache,
}

impl ReplaceField {
    fn new(config: &TaskConfig, side: Side) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        let list = |k: &str| c.list(k).map(<[String]>::to_vec).unwrap_or_default();
        let renames = list("renames")
            .iter()
            .filter_map(|p| {
                p.split_once(':')
                    .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
            })
            .collect();
        Ok(Self {
            side,
            exclude: list("exclude"),
            include: list("include"),
            renames,
            schemas: SchemaCache::default(),
        })
    }

    fn keeps(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name)
            && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }

    fn renamed<'a>(&'a self, name: &'a str) -> &'a str {
        self.renames.get(name).map_or(name, String::as_str)
    }
}

impl Transform for ReplaceField {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = take(&mut record, self.side);
        let (schema, value) = match (schema, value) {
            (Some(schema), Value::Struct(values)) => {
                let kept: Vec<bool> = schema
                    .fields()
                    .iter()
                    .map(|f| self.keeps(&f.name))
                    .collect();
                let this = &*self;
                let out = {
                    let fields: Vec<Field> = schema
                        .fields()
                        .iter()
                        .zip(&kept)
                        .filter(|(_, k)| **k)
                        .map(|(f, _)| Field {
                            name: this.renamed(&f.name).to_owned(),
                            schema: f.schema.clone(),
                        })
                        .collect();
                    self.schemas
                        .get_or_build(&schema, |s| Ok(with_fields(s, fields)))?
                };
                let values = values
                    .into_iter()
                    .zip(kept)
                    .filter(|(_, k)| *k)
                    .map(|(v, _)| v)
                    .collect();
                (Some(out), Value::Struct(values))
            }
            (None, Value::Map(entries)) => {
                let entries = entries
                    .into_iter()
                    .filter(|(k, _)| k.as_str().is_none_or(|n| self.keeps(n)))
                    .map(|(k, v)| match k {
                        Value::String(n) => (Value::String(self.renamed(&n).to_owned()), v),
                        other => (other, v),
                    })
                    .collect();
                (None, Value::Map(entries))
            }
            (_, other) => return Err(not_a_struct("ReplaceField", &record, &other)),
        };
        put(&mut record, self.side, schema, value);
        Ok(Some(record))
    }
}
