//! `TimestampConverter$Value` / `$Key`: converts a timestamp (the whole value,
//! or `field`) between a string (`format`, a `SimpleDateFormat` pattern in
//! UTC), a Unix number (`unix.precision`) and Connect's `Date`, `Time` and
//! `Timestamp` logical types.

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::schema::{Field, LogicalType, Schema, SchemaType};
use sluice_api::{ConfigErrors, ConnectError, Record, SchemaRef, TaskConfig, Transform, Value};

use crate::date_format::DateFormat;
use crate::java::{class_string, logical_millis};
use crate::requirements::{map_required, struct_required};
use crate::schema_util::{
    copy_basics, field_value, logical_version, replace_null_with_default_key, SchemaCache,
};
use crate::side::{put, side_plugins, take, Side};
use crate::validate::type_name;

const PURPOSE: &str = "converting timestamp formats";
const MILLIS_PER_DAY: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Kind::String,
            "unix" => Kind::Unix,
            "Date" => Kind::Date,
            "Time" => Kind::Time,
            "Timestamp" => Kind::Timestamp,
            _ => return None,
        })
    }

    fn schema(self, optional: bool) -> SchemaRef {
        let mut s = match self {
            Kind::String => Schema::new(SchemaType::String),
            Kind::Unix => Schema::new(SchemaType::Int64),
            Kind::Date => logical_version(Schema::date()),
            Kind::Time => logical_version(Schema::time()),
            Kind::Timestamp => logical_version(Schema::timestamp()),
        };
        s.optional = optional;
        s.into_ref()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Precision {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("field", ConfigType::String)
                .default("")
                .importance(Importance::High)
                .doc("The field containing the timestamp, or empty if the entire value is a timestamp"),
        )
        .define(
            ConfigKey::new("target.type", ConfigType::String)
                .validator(Validator::Custom(|v| {
                    Kind::parse(v).map(|_| ()).ok_or_else(|| {
                        "String must be one of: string, unix, Date, Time, Timestamp".to_owned()
                    })
                }))
                .importance(Importance::High)
                .doc("The desired timestamp representation: string, unix, Date, Time, or Timestamp"),
        )
        .define(
            ConfigKey::new("format", ConfigType::String)
                .default("")
                .doc(
                    "A SimpleDateFormat-compatible format for the timestamp. Used to generate the \
                     output when type=string or used to parse the input if the input is a string.",
                ),
        )
        .define(
            ConfigKey::new("unix.precision", ConfigType::String)
                .default("milliseconds")
                .validator(Validator::Custom(|v| match v {
                    "nanoseconds" | "microseconds" | "milliseconds" | "seconds" => Ok(()),
                    _ => Err("String must be one of: nanoseconds, microseconds, milliseconds, seconds"
                        .to_owned()),
                }))
                .importance(Importance::Low)
                .doc("The Unix precision: seconds, milliseconds, microseconds, or nanoseconds."),
        )
        .define(replace_null_with_default_key())
}

side_plugins!("TimestampConverter", TimestampConverter);

struct TimestampConverter {
    side: Side,
    field: String,
    target: Kind,
    format: Option<DateFormat>,
    precision: Precision,
    with_default: bool,
    schemas: SchemaCache,
}

impl TimestampConverter {
    fn new(config: &TaskConfig, side: Side) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        let target = Kind::parse(c.string("target.type").unwrap_or_default())
            .ok_or_else(|| ConfigErrors::single("target.type", "unknown type"))?;
        let pattern = c.string("format").unwrap_or_default();
        if target == Kind::String && pattern.trim().is_empty() {
            return Err(ConfigErrors::single(
                "format",
                "TimestampConverter requires format option to be specified when using string timestamps",
            )
            .into());
        }
        let format = if pattern.trim().is_empty() {
            None
        } else {
            Some(DateFormat::parse_pattern(pattern).map_err(|_| {
                ConfigErrors::single(
                    "format",
                    format!(
                        "TimestampConverter requires a SimpleDateFormat-compatible pattern for \
                         string timestamps: {pattern}"
                    ),
                )
            })?)
        };
        let precision = match c.string("unix.precision").unwrap_or("milliseconds") {
            "seconds" => Precision::Seconds,
            "microseconds" => Precision::Micros,
            "nanoseconds" => Precision::Nanos,
            _ => Precision::Millis,
        };
        Ok(Self {
            side,
            field: c.string("field").unwrap_or_default().to_owned(),
            target,
            format,
            precision,
            with_default: c.boolean("replace.null.with.default").unwrap_or(true),
            schemas: SchemaCache::default(),
        })
    }

    /// Reads a timestamp of kind `from` as epoch milliseconds (`toRaw`).
    fn to_raw(&self, value: &Value, from: Kind) -> Result<i64, ConnectError> {
        match from {
            Kind::String => {
                let Value::String(s) = value else {
                    return Err(ConnectError::data(format!(
                        "Expected string timestamp to be a String, but found {}",
                        class_string(value, None)
                    )));
                };
                let Some(format) = &self.format else {
                    return Err(ConnectError::data(
                        "Cannot invoke \"java.text.SimpleDateFormat.parse(String)\" because \"config.format\" is null",
                    ));
                };
                format.parse(s).ok_or_else(|| {
                    ConnectError::data(format!(
                        "Could not parse timestamp: value ({s}) does not match pattern ({})",
                        format.pattern()
                    ))
                })
            }
            Kind::Unix => {
                let Value::Int64(v) = value else {
                    return Err(ConnectError::data(format!(
                        "Expected Unix timestamp to be a Long, but found {}",
                        class_string(value, None)
                    )));
                };
                Ok(match self.precision {
                    Precision::Seconds => v.saturating_mul(1000),
                    Precision::Millis => *v,
                    Precision::Micros => v / 1000,
                    Precision::Nanos => v / 1_000_000,
                })
            }
            Kind::Date | Kind::Time | Kind::Timestamp => {
                let logical = match from {
                    Kind::Date => LogicalType::Date,
                    Kind::Time => LogicalType::Time,
                    _ => LogicalType::Timestamp,
                };
                logical_millis(value, logical).ok_or_else(|| {
                    let name = match from {
                        Kind::Date => "Date",
                        Kind::Time => "Time",
                        _ => "Timestamp",
                    };
                    ConnectError::data(format!(
                        "Expected {name} to be a java.util.Date, but found {}",
                        class_string(value, None)
                    ))
                })
            }
        }
    }

    /// Writes epoch milliseconds as the target kind (`toType`).
    fn to_type(&self, millis: i64) -> Value {
        match self.target {
            Kind::String => Value::String(
                self.format
                    .as_ref()
                    .map_or_else(String::new, |f| f.format(millis)),
            ),
            Kind::Unix => Value::Int64(match self.precision {
                Precision::Seconds => millis / 1000,
                Precision::Millis => millis,
                Precision::Micros => millis.saturating_mul(1000),
                Precision::Nanos => millis.saturating_mul(1_000_000),
            }),
            Kind::Date => Value::Int32(millis.div_euclid(MILLIS_PER_DAY) as i32),
            Kind::Time => Value::Int32(millis.rem_euclid(MILLIS_PER_DAY) as i32),
            Kind::Timestamp => Value::Int64(millis),
        }
    }

    fn convert(&self, value: &Value, from: Option<Kind>) -> Result<Value, ConnectError> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let from = match from {
            Some(k) => k,
            None => match value {
                Value::Int64(_) => Kind::Unix,
                Value::String(_) => Kind::String,
                other => {
                    return Err(ConnectError::data(format!(
                        "TimestampConverter does not support {} objects as timestamps",
                        class_string(other, None)
                    )))
                }
            },
        };
        Ok(self.to_type(self.to_raw(value, from)?))
    }
}

/// `timestampTypeFromSchema`.
fn kind_of(schema: &Schema) -> Result<Kind, ConnectError> {
    Ok(match (schema.logical_type(), &schema.schema_type) {
        (Some(LogicalType::Timestamp), _) => Kind::Timestamp,
        (Some(LogicalType::Date), _) => Kind::Date,
        (Some(LogicalType::Time), _) => Kind::Time,
        (_, SchemaType::String) => Kind::String,
        (_, SchemaType::Int64) => Kind::Unix,
        _ => {
            let shown = match &schema.name {
                Some(n) => format!("Schema{{{n}:{}}}", type_name(schema)),
                None => format!("Schema{{{}}}", type_name(schema)),
            };
            return Err(ConnectError::fatal(format!(
                "Schema {shown} does not correspond to a known timestamp type format"
            )));
        }
    })
}

impl Transform for TimestampConverter {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = take(&mut record, self.side);
        let (schema, value) = match schema {
            None if value.is_null() || self.field.is_empty() => (None, self.convert(&value, None)?),
            None => {
                let Value::Map(mut entries) = value else {
                    return Err(map_required(&value, PURPOSE));
                };
                let current = entries
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(&self.field))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let converted = self.convert(&current, None)?;
                crate::insert_field::set_entry(&mut entries, &self.field, converted);
                (None, Value::Map(entries))
            }
            Some(schema) if self.field.is_empty() => {
                let out = self.target.schema(schema.optional);
                let v = self.convert(&value, Some(kind_of(&schema)?))?;
                (Some(out), v)
            }
            Some(schema) => {
                if !matches!(value, Value::Null | Value::Struct(_)) {
                    return Err(struct_required(&value, Some(&schema), PURPOSE));
                }
                // Taken out so the build can read `self` on a cache miss only.
                let mut cache = std::mem::take(&mut self.schemas);
                let this = &*self;
                let out = cache.get_or_build(&schema, |schema| {
                    let fields = schema
                        .fields()
                        .iter()
                        .map(|f| Field {
                            name: f.name.clone(),
                            schema: if f.name == this.field {
                                this.target.schema(f.schema.optional)
                            } else {
                                f.schema.clone()
                            },
                        })
                        .collect();
                    let mut s = copy_basics(schema, SchemaType::Struct(fields));
                    s.optional = schema.optional;
                    if let Some(d) = &schema.default {
                        s.default = Some(this.convert_struct(schema, d)?);
                    }
                    Ok(s)
                });
                self.schemas = cache;
                let out = out?;
                let v = if value.is_null() {
                    Value::Null
                } else {
                    self.convert_struct(&schema, &value)?
                };
                (Some(out), v)
            }
        };
        put(&mut record, self.side, schema, value);
        Ok(Some(record))
    }
}

impl TimestampConverter {
    /// `applyValueWithSchema`: the struct with `field` converted.
    fn convert_struct(&self, schema: &Schema, value: &Value) -> Result<Value, ConnectError> {
        let Value::Struct(values) = value else {
            return Ok(value.clone());
        };
        let mut out = Vec::with_capacity(values.len());
        for (f, v) in schema.fields().iter().zip(values) {
            let v = field_value(f, v, self.with_default);
            if f.name == self.field {
                let converted = self.convert(&v, Some(kind_of(&f.schema)?))?;
                crate::validate::check(
                    &self.target.schema(f.schema.optional),
                    &converted,
                    Some(&f.name),
                )?;
                out.push(converted);
            } else {
                out.push(v);
            }
        }
        Ok(Value::Struct(out))
    }
}
