//! `InsertField$Value` / `$Key`: adds the record's topic, partition, offset or
//! timestamp, and/or a static value, as fields. A name ending in `!` makes the
//! field required in the schema, `?` (the default) optional.

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType};
use sluice_api::schema::{Schema, SchemaType};
use sluice_api::{ConfigErrors, ConnectError, Record, SchemaRef, TaskConfig, Transform, Value};

use crate::requirements::{map_required, struct_required};
use crate::schema_util::{
    field_value, push_field, replace_null_with_default_key, struct_like, SchemaCache,
};
use crate::side::{put, side_plugins, take, Side};

const PURPOSE: &str = "field insertion";
const KEYS: [(&str, Source); 5] = [
    ("topic.field", Source::Topic),
    ("partition.field", Source::Partition),
    ("offset.field", Source::Offset),
    ("timestamp.field", Source::Timestamp),
    ("static.field", Source::Static),
];

fn config_def() -> ConfigDef {
    let mut def = ConfigDef::new();
    for (k, _) in KEYS {
        def = def.define(ConfigKey::new(k, ConfigType::String).optional().doc(
            "Field name to insert; suffix with ! to make it a required field, or ? to keep it \
             optional (the default).",
        ));
    }
    def.define(
        ConfigKey::new("static.value", ConfigType::String)
            .optional()
            .doc("Static field value, if field name configured."),
    )
    .define(replace_null_with_default_key())
}

side_plugins!("InsertField", InsertField);

#[derive(Clone, Copy, PartialEq)]
enum Source {
    Topic,
    Partition,
    Offset,
    Timestamp,
    Static,
}

struct Insertion {
    name: String,
    optional: bool,
    source: Source,
}

struct InsertField {
    side: Side,
    fields: Vec<Insertion>,
    static_value: Option<String>,
    with_default: bool,
    schemas: SchemaCache,
}

impl InsertField {
    fn new(config: &TaskConfig, side: Side) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        let fields: Vec<Insertion> = KEYS
            .iter()
            .filter_map(|(k, source)| {
                let spec = c.string(k)?;
                let (name, optional) = if let Some(n) = spec.strip_suffix('?') {
                    (n, true)
                } else if let Some(n) = spec.strip_suffix('!') {
                    (n, false)
                } else {
                    (spec, true)
                };
                Some(Insertion {
                    name: name.to_owned(),
                    optional,
                    source: *source,
                })
            })
            .collect();
        if fields.is_empty() {
            return Err(
                ConfigErrors::single("topic.field", "No field insertion configured").into(),
            );
        }
        let static_value = c.string("static.value").map(str::to_owned);
        if let Some(f) = fields.iter().find(|f| f.source == Source::Static) {
            if static_value.is_none() {
                return Err(ConfigErrors::single(
                    "static.value",
                    format!("No value specified for static field: {}", f.name),
                )
                .into());
            }
        }
        Ok(Self {
            side,
            fields,
            static_value,
            with_default: c.boolean("replace.null.with.default").unwrap_or(true),
            schemas: SchemaCache::default(),
        })
    }

    /// The inserted value; `None` where Connect leaves the field unset.
    fn value_of(&self, source: Source, record: &Record) -> Result<Option<Value>, ConnectError> {
        Ok(match source {
            Source::Topic => Some(Value::String(record.topic.to_string())),
            Source::Partition => record.partition.map(Value::Int32),
            Source::Offset => match record.offset {
                Some(o) => Some(Value::Int64(o)),
                None => {
                    return Err(ConnectError::data(format!(
                        "Only SinkRecord supported for [{PURPOSE}], found: \
                         org.apache.kafka.connect.source.SourceRecord"
                    )))
                }
            },
            Source::Timestamp => record.timestamp.map(Value::Int64),
            Source::Static => self.static_value.clone().map(Value::String),
        })
    }

    fn schema_of(f: &Insertion) -> SchemaRef {
        let mut s = match f.source {
            Source::Topic | Source::Static => Schema::new(SchemaType::String),
            Source::Partition => Schema::new(SchemaType::Int32),
            Source::Offset => Schema::new(SchemaType::Int64),
            Source::Timestamp => crate::schema_util::logical_version(Schema::timestamp()),
        };
        s.optional = f.optional;
        s.into_ref()
    }
}

impl Transform for InsertField {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = take(&mut record, self.side);
        if value.is_null() {
            put(&mut record, self.side, schema, value);
            return Ok(Some(record));
        }
        let mut added = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            added.push(self.value_of(f.source, &record)?);
        }
        let (schema, value) = match schema {
            None => {
                let Value::Map(mut entries) = value else {
                    return Err(map_required(&value, PURPOSE));
                };
                for (f, v) in self.fields.iter().zip(added) {
                    if let Some(v) = v {
                        set_entry(&mut entries, &f.name, v);
                    }
                }
                (None, Value::Map(entries))
            }
            Some(schema) => {
                let Value::Struct(values) = value else {
                    return Err(struct_required(&value, Some(&schema), PURPOSE));
                };
                let fields = &self.fields;
                let out = self.schemas.get_or_build(&schema, |s| {
                    let mut fs = s.fields().to_vec();
                    for f in fields {
                        push_field(&mut fs, &f.name, Self::schema_of(f))?;
                    }
                    Ok(struct_like(s, fs))
                })?;
                let mut values: Vec<Value> = schema
                    .fields()
                    .iter()
                    .zip(&values)
                    .map(|(f, v)| field_value(f, v, self.with_default))
                    .collect();
                values.extend(added.into_iter().map(Option::unwrap_or_default));
                (Some(out), Value::Struct(values))
            }
        };
        put(&mut record, self.side, schema, value);
        Ok(Some(record))
    }
}

/// `Map.put`: replaces the entry under `key`, else appends one.
pub(crate) fn set_entry(entries: &mut Vec<(Value, Value)>, key: &str, value: Value) {
    match entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
        Some(entry) => entry.1 = value,
        None => entries.push((Value::String(key.to_owned()), value)),
    }
}
