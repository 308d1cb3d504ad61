//! `InsertField$Value` / `$Key`: adds the record's topic, partition, offset or
//! timestamp, and/or a static value, as fields.

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType};
use sluice_api::schema::{primitives, Field, Schema};
use sluice_api::{ConnectError, Record, SchemaRef, TaskConfig, Transform, TransformPlugin, Value};

use crate::field_path::{not_a_struct, put, take, with_fields, SchemaCache};
use crate::Side;

const KEYS: [&str; 5] = [
    "topic.field",
    "partition.field",
    "offset.field",
    "timestamp.field",
    "static.field",
];

fn config_def() -> ConfigDef {
    let mut def = ConfigDef::new();
    for k in KEYS {
        def = def.define(
            ConfigKey::new(k, ConfigType::String)
                .optional()
                .doc("Name of the field to insert; unset to skip."),
        );
    }
    def.define(
        ConfigKey::new("static.value", ConfigType::String)
            .optional()
            .doc("The value of static.field."),
    )
}

pub fn plugin_value() -> TransformPlugin {
    TransformPlugin {
        name: "InsertField$Value",
        aliases: &["org.apache.kafka.connect.transforms.InsertField$Value"],
        config_def,
        create: |c| Ok(Box::new(InsertField::new(c, Side::Value)?)),
    }
}

pub fn plugin_key() -> TransformPlugin {
    TransformPlugin {
        name: "InsertField$Key",
        aliases: &["org.apache.kafka.connect.transforms.InsertField$Key"],
        config_def,
        create: |c| Ok(Box::new(InsertField::new(c, Side::Key)?)),
    }
}

#[derive(Clone, Copy)]
enum Source {
    Topic,
    Partition,
    Offset,
    Timestamp,
    Static,
}

struct InsertField {
    side: Side,
    fields: Vec<(String, Source)>,
    static_value: Option<String>,
    schemas: SchemaCache,
}

impl InsertField {
    fn new(config: &TaskConfig, side: Side) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        let sources = [
            Source::Topic,
            Source::Partition,
            Source::Offset,
            Source::Timestamp,
            Source::Static,
        ];
        let fields = KEYS
            .iter()
            .zip(sources)
            .filter_map(|(k, s)| {
                c.string(k)
                    .filter(|f| !f.is_empty())
                    .map(|f| (f.to_owned(), s))
            })
            .collect();
        Ok(Self {
            side,
            fields,
            static_value: c.string("static.value").map(str::to_owned),
            schemas: SchemaCache::default(),
        })
    }

    fn value_of(&self, source: Source, record: &Record) -> Value {
        match source {
            Source::Topic => Value::String(record.topic.to_string()),
            Source::Partition => record.partition.map_or(Value::Null, Value::Int32),
            Source::Offset => record.offset.map_or(Value::Null, Value::Int64),
            Source::Timestamp => record.timestamp.map_or(Value::Null, Value::Int64),
            Source::Static => self.static_value.clone().map_or(Value::Null, Value::String),
        }
    }

    fn schema_of(source: Source) -> SchemaRef {
        match source {
            Source::Topic | Source::Static => primitives::optional_string(),
            Source::Partition => Schema::new(sluice_api::SchemaType::Int32)
                .optional()
                .into_ref(),
            Source::Offset => Schema::new(sluice_api::SchemaType::Int64)
                .optional()
                .into_ref(),
            Source::Timestamp => Schema::timestamp().optional().into_ref(),
        }
    }
}

impl Transform for InsertField {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = take(&mut record, self.side);
        let added: Vec<Value> = self
            .fields
            .iter()
            .map(|(_, s)| self.value_of(*s, &record))
            .collect();
        let (schema, value) = match (schema, value) {
            (Some(schema), Value::Struct(mut values)) => {
                let fields = &self.fields;
                let out = self.schemas.get_or_build(&schema, |s| {
                    let mut fs = s.fields().to_vec();
                    fs.extend(fields.iter().map(|(name, src)| Field {
                        name: name.clone(),
                        schema: Self::schema_of(*src),
                    }));
                    Ok(with_fields(s, fs))
                })?;
                values.extend(added);
                (Some(out), Value::Struct(values))
            }
            (None, Value::Map(mut entries)) => {
                for ((name, _), v) in self.fields.iter().zip(added) {
                    entries.retain(|(k, _)| k.as_str() != Some(name));
                    entries.push((Value::String(name.clone()), v));
                }
                (None, Value::Map(entries))
            }
            (_, other) => return Err(not_a_struct("InsertField", &record, &other)),
        };
        put(&mut record, self.side, schema, value);
        Ok(Some(record))
    }
}
