//! `MaskField$Value` / `$Key`: replaces fields with their type's "empty" value
//! (0, false, "", an empty list or map, the epoch), or with `replacement`
//! converted to the field's type (numbers and strings only).

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::schema::{LogicalType, Schema};
use sluice_api::{ConnectError, Decimal, Record, TaskConfig, Transform, Value};

use crate::java::{big_decimal_double, big_decimal_long, class_string, parse_big_decimal};
use crate::requirements::{map_required, struct_required};
use crate::schema_util::{field_value, replace_null_with_default_key};
use crate::side::{put, side_plugins, take, Side};

const PURPOSE: &str = "mask fields";

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("fields", ConfigType::List)
                .validator(Validator::NonEmpty)
                .importance(Importance::High)
                .doc("Names of fields to mask."),
        )
        .define(
            ConfigKey::new("replacement", ConfigType::String)
                .optional()
                .validator(Validator::NonEmpty)
                .importance(Importance::Low)
                .doc(
                    "Custom value replacement, that will be applied to all 'fields' values \
                     (numeric or non-empty string values only).",
                ),
        )
        .define(replace_null_with_default_key())
}

side_plugins!("MaskField", MaskField);

pub(crate) struct MaskField {
    side: Side,
    fields: Vec<String>,
    replacement: Option<String>,
    with_default: bool,
}

impl MaskField {
    fn new(config: &TaskConfig, side: Side) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        Ok(Self {
            side,
            fields: c.list("fields").map(<[String]>::to_vec).unwrap_or_default(),
            replacement: c.string("replacement").map(str::to_owned),
            with_default: c.boolean("replace.null.with.default").unwrap_or(true),
        })
    }

    fn masks(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f == name)
    }

    fn masked(&self, value: &Value, schema: Option<&Schema>) -> Result<Value, ConnectError> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        match &self.replacement {
            None => empty_of(value, schema),
            Some(r) => replaced(value, schema, r),
        }
    }
}

/// The masked value with no replacement configured.
fn empty_of(value: &Value, schema: Option<&Schema>) -> Result<Value, ConnectError> {
    if let Some(LogicalType::Date | LogicalType::Time | LogicalType::Timestamp) =
        schema.and_then(Schema::logical_type)
    {
        // `new Date(0)`.
        return Ok(match value {
            Value::Int32(_) => Value::Int32(0),
            _ => Value::Int64(0),
        });
    }
    Ok(match value {
        Value::Boolean(_) => Value::Boolean(false),
        Value::Int8(_) => Value::Int8(0),
        Value::Int16(_) => Value::Int16(0),
        Value::Int32(_) => Value::Int32(0),
        Value::Int64(_) => Value::Int64(0),
        Value::Float32(_) => Value::Float32(0.0),
        Value::Float64(_) => Value::Float64(0.0),
        // Connect emits `BigDecimal.ZERO` (scale 0), which its JSON converter then
        // rejects for a schema of another scale; sluice keeps the schema's scale.
        Value::Decimal(_) => {
            let scale = match schema.and_then(Schema::logical_type) {
                Some(LogicalType::Decimal { scale }) => scale,
                _ => 0,
            };
            Value::Decimal(Decimal::from_i128(0, scale))
        }
        Value::String(_) => Value::String(String::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        Value::Map(_) => Value::Map(Vec::new()),
        other => {
            return Err(ConnectError::data(format!(
                "Cannot mask value of type: {}",
                class_string(other, schema)
            )))
        }
    })
}

/// The configured replacement, converted to the value's type.
fn replaced(
    value: &Value,
    schema: Option<&Schema>,
    replacement: &str,
) -> Result<Value, ConnectError> {
    let logical_date = matches!(
        schema.and_then(Schema::logical_type),
        Some(LogicalType::Date | LogicalType::Time | LogicalType::Timestamp)
    );
    let unsupported = || {
        ConnectError::data(format!(
            "Cannot mask value of type {} with custom replacement.",
            class_string(value, schema)
        ))
    };
    if logical_date {
        return Err(unsupported());
    }
    let number = || {
        parse_big_decimal(replacement).ok_or_else(|| {
            ConnectError::data(format!(
                "Unable to convert {replacement} (class java.lang.String) to a number"
            ))
        })
    };
    Ok(match value {
        Value::String(_) => Value::String(replacement.to_owned()),
        Value::Int8(_) => Value::Int8(big_decimal_long(&number()?) as i8),
        Value::Int16(_) => Value::Int16(big_decimal_long(&number()?) as i16),
        Value::Int32(_) => Value::Int32(big_decimal_long(&number()?) as i32),
        Value::Int64(_) => Value::Int64(big_decimal_long(&number()?)),
        Value::Float32(_) => Value::Float32(big_decimal_double(&number()?) as f32),
        Value::Float64(_) => Value::Float64(big_decimal_double(&number()?)),
        Value::Decimal(_) => Value::Decimal(parse_big_decimal(replacement).ok_or_else(|| {
            ConnectError::data(format!(
                "Unable to convert {replacement} (class java.lang.String) to number"
            ))
        })?),
        _ => return Err(unsupported()),
    })
}

impl Transform for MaskField {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = take(&mut record, self.side);
        let value = match &schema {
            None => {
                let Value::Map(mut entries) = value else {
                    return Err(map_required(&value, PURPOSE));
                };
                for name in &self.fields {
                    let current = entries
                        .iter()
                        .find(|(k, _)| k.as_str() == Some(name))
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    let masked = self.masked(&current, None)?;
                    crate::insert_field::set_entry(&mut entries, name, masked);
                }
                Value::Map(entries)
            }
            Some(s) => {
                let Value::Struct(values) = value else {
                    return Err(struct_required(&value, Some(s), PURPOSE));
                };
                let mut out = Vec::with_capacity(values.len());
                for (f, v) in s.fields().iter().zip(&values) {
                    let v = field_value(f, v, self.with_default);
                    let v = if self.masks(&f.name) {
                        let m = self.masked(&v, Some(&f.schema))?;
                        crate::validate::check(&f.schema, &m, Some(&f.name))?;
                        m
                    } else {
                        v
                    };
                    out.push(v);
                }
                Value::Struct(out)
            }
        };
        put(&mut record, self.side, schema, value);
        Ok(Some(record))
    }
}
