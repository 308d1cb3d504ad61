//! `ReplaceField$Value` / `$Key`: keeps (`include`), drops (`exclude`, which
//! wins) and renames (`renames`, `old:new,...`) fields.

use std::collections::HashMap;

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Validator};
use sluice_api::schema::Field;
use sluice_api::{ConnectError, Record, TaskConfig, Transform, Value};

use crate::requirements::{map_required, struct_required};
use crate::schema_util::{field_value, replace_null_with_default_key, struct_like, SchemaCache};
use crate::side::{put, side_plugins, take, Side};

const PURPOSE: &str = "field replacement";

/// Connect's `parseRenameMappings`: `String.split(":")` must give two parts
/// (Java drops trailing empty parts, so `a:` is invalid and `:b` is not).
fn parse_renames(raw: &str) -> Result<HashMap<String, String>, String> {
    sluice_api::config::split_list(raw)
        .into_iter()
        .map(|mapping| {
            let mut parts: Vec<&str> = mapping.split(':').collect();
            while parts.len() > 1 && parts.last() == Some(&"") {
                parts.pop();
            }
            match parts.as_slice() {
                [from, to] => Ok(((*from).to_owned(), (*to).to_owned())),
                _ => Err(format!("Invalid rename mapping: {mapping}")),
            }
        })
        .collect()
}

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("exclude", ConfigType::List)
                .default("")
                .doc("Fields to exclude. This takes precedence over the fields to include."),
        )
        .define(
            ConfigKey::new("include", ConfigType::List)
                .default("")
                .doc("Fields to include. If specified, only these fields will be used."),
        )
        .define(
            ConfigKey::new("renames", ConfigType::List)
                .default("")
                .validator(Validator::Custom(|v| parse_renames(v).map(|_| ())))
                .doc("Field rename mappings."),
        )
        .define(replace_null_with_default_key())
}

side_plugins!("ReplaceField", ReplaceField);

struct ReplaceField {
    side: Side,
    rules: Rules,
    with_default: bool,
    schemas: SchemaCache,
}

/// Which fields survive, and under which names.
struct Rules {
    exclude: Vec<String>,
    include: Vec<String>,
    renames: HashMap<String, String>,
}

impl ReplaceField {
    fn new(config: &TaskConfig, side: Side) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        let list = |k: &str| c.list(k).map(<[String]>::to_vec).unwrap_or_default();
        let renames = parse_renames(&list("renames").join(","))
            .map_err(|e| sluice_api::ConfigErrors::single("renames", e))?;
        Ok(Self {
            side,
            rules: Rules {
                exclude: list("exclude"),
                include: list("include"),
                renames,
            },
            with_default: c.boolean("replace.null.with.default").unwrap_or(true),
            schemas: SchemaCache::default(),
        })
    }
}

impl Rules {
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
            (schema, Value::Null) => (schema, Value::Null),
            (None, Value::Map(entries)) => {
                let mut out: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let Some(name) = k.as_str() else {
                        out.push((k, v));
                        continue;
                    };
                    if self.rules.keeps(name) {
                        crate::insert_field::set_entry(&mut out, self.rules.renamed(name), v);
                    }
                }
                (None, Value::Map(out))
            }
            (None, other) => return Err(map_required(&other, PURPOSE)),
            (Some(schema), Value::Struct(values)) => {
                let this = &self.rules;
                let out = self.schemas.get_or_build(&schema, |s| {
                    let mut fields: Vec<Field> = Vec::new();
                    for f in s.fields().iter().filter(|f| this.keeps(&f.name)) {
                        crate::schema_util::push_field(
                            &mut fields,
                            this.renamed(&f.name),
                            f.schema.clone(),
                        )?;
                    }
                    Ok(struct_like(s, fields))
                })?;
                let values = schema
                    .fields()
                    .iter()
                    .zip(values)
                    .filter(|(f, _)| self.rules.keeps(&f.name))
                    .map(|(f, v)| field_value(f, &v, self.with_default))
                    .collect();
                (Some(out), Value::Struct(values))
            }
            (Some(schema), other) => return Err(struct_required(&other, Some(&schema), PURPOSE)),
        };
        put(&mut record, self.side, schema, value);
        Ok(Some(record))
    }
}
