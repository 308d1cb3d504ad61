//! `ExtractField$Value` / `$Key`: replaces the key or value with one of its
//! fields (a nested one with `field.syntax.version=V2`); null passes through.

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType};
use sluice_api::{ConnectError, Record, TaskConfig, Transform, Value};

use crate::field_path::{syntax_key, FieldPath, SYNTAX_KEY};
use crate::requirements::{map_required, struct_required};
use crate::schema_util::replace_null_with_default_key;
use crate::side::{put, side_plugins, take, Side};

const PURPOSE: &str = "field extraction";

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(ConfigKey::new("field", ConfigType::String).doc("Field name to extract."))
        .define(replace_null_with_default_key())
        .define(syntax_key())
}

side_plugins!("ExtractField", ExtractField);

struct ExtractField {
    side: Side,
    original: String,
    path: FieldPath,
    with_default: bool,
}

impl ExtractField {
    fn new(config: &TaskConfig, side: Side) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        let original = c.string("field").unwrap_or_default().to_owned();
        let v2 = c
            .string(SYNTAX_KEY)
            .is_some_and(|v| v.eq_ignore_ascii_case("V2"));
        Ok(Self {
            side,
            path: FieldPath::new(&original, v2)?,
            original,
            with_default: c.boolean("replace.null.with.default").unwrap_or(true),
        })
    }
}

impl Transform for ExtractField {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = take(&mut record, self.side);
        let (schema, value) = match schema {
            None => match value {
                Value::Null => (None, Value::Null),
                m @ Value::Map(_) => (None, self.path.value_from_map(&m)?),
                other => return Err(map_required(&other, PURPOSE)),
            },
            Some(schema) => {
                if !matches!(value, Value::Null | Value::Struct(_)) {
                    return Err(struct_required(&value, Some(&schema), PURPOSE));
                }
                let Some(field) = self.path.field_from(&schema)? else {
                    return Err(ConnectError::data(format!(
                        "Unknown field: {}",
                        self.original
                    )));
                };
                let out = if value.is_null() {
                    Value::Null
                } else {
                    self.path
                        .value_from_struct(&schema, &value, self.with_default)?
                };
                (Some(field.schema.clone()), out)
            }
        };
        put(&mut record, self.side, schema, value);
        Ok(Some(record))
    }
}
