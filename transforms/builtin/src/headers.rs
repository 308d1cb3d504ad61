//! The header transforms: `DropHeaders`, `InsertHeader`, and `HeaderFrom$Key` /
//! `$Value` (fields copied or moved into headers). Header values are stored as
//! Connect's default `SimpleHeaderConverter` writes them.

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::schema::Field;
use sluice_api::{
    ConfigErrors, ConnectError, Record, TaskConfig, Transform, TransformPlugin, Value,
};

use crate::java::convert_to_string;
use crate::requirements::{map_required, struct_required};
use crate::schema_util::{field_value, replace_null_with_default_key, struct_like, SchemaCache};
use crate::side::{put, side_plugins, take, Side};

pub fn drop_headers() -> TransformPlugin {
    fn def() -> ConfigDef {
        ConfigDef::new().define(
            ConfigKey::new("headers", ConfigType::List)
                .validator(Validator::NonEmpty)
                .importance(Importance::High)
                .doc("The name of the headers to be removed."),
        )
    }
    TransformPlugin {
        name: "DropHeaders",
        aliases: &["org.apache.kafka.connect.transforms.DropHeaders"],
        config_def: def,
        create: |c| {
            let c = def().validate(c)?;
            Ok(Box::new(DropHeaders(
                c.list("headers")
                    .map(<[String]>::to_vec)
                    .unwrap_or_default(),
            )))
        },
    }
}

struct DropHeaders(Vec<String>);

impl Transform for DropHeaders {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        for name in &self.0 {
            record.headers.remove(name);
        }
        Ok(Some(record))
    }
}

pub fn insert_header() -> TransformPlugin {
    fn def() -> ConfigDef {
        ConfigDef::new()
            .define(
                ConfigKey::new("header", ConfigType::String)
                    .importance(Importance::High)
                    .doc("The name of the header."),
            )
            .define(
                ConfigKey::new("value.literal", ConfigType::String)
                    .importance(Importance::High)
                    .doc("The literal value that is to be set as the header value on all records."),
            )
    }
    TransformPlugin {
        name: "InsertHeader",
        aliases: &["org.apache.kafka.connect.transforms.InsertHeader"],
        config_def: def,
        create: |c| {
            let c = def().validate(c)?;
            Ok(Box::new(InsertHeader {
                header: c.string("header").unwrap_or_default().to_owned(),
                value: crate::literal::header_text(c.string("value.literal").unwrap_or_default())
                    .map(String::into_bytes),
            }))
        },
    }
}

struct InsertHeader {
    header: String,
    /// The literal as Connect's header converter would store it.
    value: Option<Vec<u8>>,
}

impl Transform for InsertHeader {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        record.headers.push(self.header.clone(), self.value.clone());
        Ok(Some(record))
    }
}

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("fields", ConfigType::List)
                .validator(Validator::NonEmpty)
                .importance(Importance::High)
                .doc(
                    "Field names in the record whose values are to be copied or moved to headers.",
                ),
        )
        .define(
            ConfigKey::new("headers", ConfigType::List)
                .validator(Validator::NonEmpty)
                .importance(Importance::High)
                .doc(
                    "Header names, in the same order as the field names listed in the fields \
                     configuration property.",
                ),
        )
        .define(
            ConfigKey::new("operation", ConfigType::String)
                .validator(Validator::Custom(|v| match v {
                    "move" | "copy" => Ok(()),
                    _ => Err("String must be one of: move, copy".to_owned()),
                }))
                .importance(Importance::High)
                .doc("move (the fields are removed from the key/value) or copy (retained)."),
        )
        .define(replace_null_with_default_key())
}

side_plugins!("HeaderFrom", HeaderFrom);

struct HeaderFrom {
    side: Side,
    fields: Vec<String>,
    headers: Vec<String>,
    moves: bool,
    with_default: bool,
    schemas: SchemaCache,
}

impl HeaderFrom {
    fn new(config: &TaskConfig, side: Side) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        let list = |k: &str| c.list(k).map(<[String]>::to_vec).unwrap_or_default();
        let (fields, headers) = (list("fields"), list("headers"));
        if fields.len() != headers.len() {
            return Err(ConfigErrors::single(
                "headers",
                "'fields' config must have the same number of elements as 'headers' config.",
            )
            .into());
        }
        Ok(Self {
            side,
            fields,
            headers,
            moves: c.string("operation") == Some("move"),
            with_default: c.boolean("replace.null.with.default").unwrap_or(true),
            schemas: SchemaCache::default(),
        })
    }

    fn purpose(&self) -> &'static str {
        if self.moves {
            "header move"
        } else {
            "header copy"
        }
    }
}

impl Transform for HeaderFrom {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = take(&mut record, self.side);
        let mut added: Vec<Option<Vec<u8>>> = Vec::with_capacity(self.fields.len());
        let (schema, value) = match schema {
            None => {
                let Value::Map(mut entries) = value else {
                    return Err(map_required(&value, self.purpose()));
                };
                for name in &self.fields {
                    let v = entries
                        .iter()
                        .find(|(k, _)| k.as_str() == Some(name))
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    added.push(convert_to_string(None, &v).map(String::into_bytes));
                }
                if self.moves {
                    entries.retain(|(k, _)| {
                        !k.as_str()
                            .is_some_and(|k| self.fields.iter().any(|f| f == k))
                    });
                }
                (None, Value::Map(entries))
            }
            Some(schema) => {
                let Value::Struct(values) = value else {
                    return Err(struct_required(&value, Some(&schema), self.purpose()));
                };
                for name in &self.fields {
                    let Some(i) = schema.field_index(name) else {
                        // Connect dereferences the missing field: a NullPointerException.
                        return Err(ConnectError::data(
                            "Cannot invoke \"org.apache.kafka.connect.data.Field.schema()\" because \
                             the return value of \"org.apache.kafka.connect.data.Schema.field(String)\" \
                             is null",
                        ));
                    };
                    let f = &schema.fields()[i];
                    let v = field_value(f, &values[i], self.with_default);
                    added.push(convert_to_string(Some(&f.schema), &v).map(String::into_bytes));
                }
                if self.moves {
                    let fields = &self.fields;
                    let out = self.schemas.get_or_build(&schema, |s| {
                        let kept: Vec<Field> = s
                            .fields()
                            .iter()
                            .filter(|f| !fields.contains(&f.name))
                            .cloned()
                            .collect();
                        Ok(struct_like(s, kept))
                    })?;
                    let kept = schema
                        .fields()
                        .iter()
                        .zip(&values)
                        .filter(|(f, _)| !self.fields.contains(&f.name))
                        .map(|(f, v)| field_value(f, v, self.with_default))
                        .collect();
                    (Some(out), Value::Struct(kept))
                } else {
                    (Some(schema), Value::Struct(values))
                }
            }
        };
        for (h, v) in self.headers.iter().zip(added) {
            record.headers.push(h.clone(), v);
        }
        put(&mut record, self.side, schema, value);
        Ok(Some(record))
    }
}
