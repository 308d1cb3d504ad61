//! `HoistField$Value` / `$Key`: wraps the key or value in a struct (with a
//! schema) or a map (without) under one field.

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType};
use sluice_api::schema::Schema;
use sluice_api::{ConnectError, Record, TaskConfig, Transform, Value};

use crate::schema_util::SchemaCache;
use crate::side::{put, side_plugins, take, Side};

fn config_def() -> ConfigDef {
    ConfigDef::new().define(ConfigKey::new("field", ConfigType::String).doc(
        "Field name for the single field that will be created in the resulting Struct or Map.",
    ))
}

side_plugins!("HoistField", HoistField);

struct HoistField {
    side: Side,
    field: String,
    schemas: SchemaCache,
}

impl HoistField {
    fn new(config: &TaskConfig, side: Side) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        Ok(Self {
            side,
            field: c.string("field").unwrap_or_default().to_owned(),
            schemas: SchemaCache::default(),
        })
    }
}

impl Transform for HoistField {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = take(&mut record, self.side);
        let (schema, value) = match schema {
            None => (
                None,
                Value::Map(vec![(Value::String(self.field.clone()), value)]),
            ),
            Some(schema) => {
                let field = &self.field;
                let inner = schema.clone();
                let out = self.schemas.get_or_build(&schema, |_| {
                    let mut fields = Vec::new();
                    crate::schema_util::push_field(&mut fields, field, inner)?;
                    Ok(Schema::new(sluice_api::SchemaType::Struct(fields)))
                })?;
                crate::validate::check(&schema, &value, Some(field))?;
                (Some(out), Value::Struct(vec![value]))
            }
        };
        put(&mut record, self.side, schema, value);
        Ok(Some(record))
    }
}
