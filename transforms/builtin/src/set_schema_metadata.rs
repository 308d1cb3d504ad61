//! `SetSchemaMetadata$Value` / `$Key`: sets the schema's name and/or version.

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType};
use sluice_api::schema::Schema;
use sluice_api::{ConfigErrors, ConnectError, Record, TaskConfig, Transform, Value};

use crate::requirements::schema_required;
use crate::schema_util::{field_value, replace_null_with_default_key};
use crate::side::{put, side_plugins, take, Side};

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("schema.name", ConfigType::String)
                .optional()
                .doc("Schema name to set."),
        )
        .define(
            ConfigKey::new("schema.version", ConfigType::Int)
                .optional()
                .doc("Schema version to set."),
        )
        .define(replace_null_with_default_key())
}

side_plugins!("SetSchemaMetadata", SetSchemaMetadata);

struct SetSchemaMetadata {
    side: Side,
    name: Option<String>,
    version: Option<i32>,
    with_default: bool,
}

impl SetSchemaMetadata {
    fn new(config: &TaskConfig, side: Side) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        let name = c.string("schema.name").map(str::to_owned);
        let version = c.int("schema.version");
        if name.is_none() && version.is_none() {
            return Err(ConfigErrors::single(
                "schema.name",
                "Neither schema name nor version configured",
            )
            .into());
        }
        Ok(Self {
            side,
            name,
            version,
            with_default: c.boolean("replace.null.with.default").unwrap_or(true),
        })
    }
}

impl Transform for SetSchemaMetadata {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = take(&mut record, self.side);
        let Some(schema) = schema else {
            if value.is_null() {
                put(&mut record, self.side, None, value);
                return Ok(Some(record));
            }
            return Err(schema_required("updating schema metadata"));
        };
        crate::schema_util::list_fields(&schema)?;
        let mut updated: Schema = (*schema).clone();
        if let Some(n) = &self.name {
            updated.name = Some(n.clone());
        }
        if let Some(v) = self.version {
            updated.version = Some(v);
        }
        let value = match value {
            Value::Struct(values) => Value::Struct(
                schema
                    .fields()
                    .iter()
                    .zip(&values)
                    .map(|(f, v)| field_value(f, v, self.with_default))
                    .collect(),
            ),
            other => other,
        };
        put(&mut record, self.side, Some(updated.into_ref()), value);
        Ok(Some(record))
    }
}
