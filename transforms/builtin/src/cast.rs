//! `Cast$Value` / `$Key`: casts fields (`spec=f1:int32,f2:string`), or the
//! whole value (`spec=int64`), to another primitive type, rebuilding the schema
//! as Connect does (a cast field loses its logical name; a whole-value cast
//! keeps the schema's name, version, doc and parameters).

use std::collections::HashMap;

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::schema::{Field, LogicalType, Schema, SchemaType};
use sluice_api::{ConfigErrors, ConnectError, Record, TaskConfig, Transform, Value};

use crate::java::{
    base64_encode, class_string, date_to_string, decimal_to_string, double_to_string,
    float_to_string, logical_millis,
};
use crate::requirements::{map_required, struct_required};
use crate::schema_util::{
    copy_basics, field_value, list_fields, replace_null_with_default_key, SchemaCache,
};
use crate::side::{put, side_plugins, take, Side};
use crate::validate::type_name;

const PURPOSE: &str = "cast types";
const INPUTS: &str = "[INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING, BYTES]";
const OUTPUTS: &str = "[INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING]";

/// A cast's target.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
}

impl Target {
    fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_uppercase();
        Ok(match t.as_str() {
            "INT8" => Target::Int8,
            "INT16" => Target::Int16,
            "INT32" => Target::Int32,
            "INT64" => Target::Int64,
            "FLOAT32" => Target::Float32,
            "FLOAT64" => Target::Float64,
            "BOOLEAN" => Target::Boolean,
            "STRING" => Target::String,
            "BYTES" | "ARRAY" | "MAP" | "STRUCT" => {
                return Err(format!(
                    "Cast transformation does not support casting to {t}; supported types are {OUTPUTS}"
                ))
            }
            _ => return Err(format!("Invalid type found in casting spec: {}", text.trim())),
        })
    }

    fn schema_type(self) -> SchemaType {
        match self {
            Target::Int8 => SchemaType::Int8,
            Target::Int16 => SchemaType::Int16,
            Target::Int32 => SchemaType::Int32,
            Target::Int64 => SchemaType::Int64,
            Target::Float32 => SchemaType::Float32,
            Target::Float64 => SchemaType::Float64,
            Target::Boolean => SchemaType::Boolean,
            Target::String => SchemaType::String,
        }
    }
}

/// The parsed `spec`: a whole-value cast, or per-field casts.
#[derive(Debug, Clone)]
enum Spec {
    Whole(Target),
    Fields(HashMap<String, Target>),
}

fn parse_spec(raw: &str) -> Result<Spec, String> {
    let mappings = sluice_api::config::split_list(raw);
    if mappings.is_empty() {
        return Err("Must specify at least one field to cast.".to_owned());
    }
    let mut fields = HashMap::new();
    let mut whole = None;
    for mapping in &mappings {
        let mut parts: Vec<&str> = mapping.split(':').collect();
        while parts.len() > 1 && parts.last() == Some(&"") {
            parts.pop();
        }
        match parts.as_slice() {
            [t] => whole = Some(Target::parse(t)?),
            [f, t] => {
                fields.insert(f.trim().to_owned(), Target::parse(t)?);
            }
            _ => return Err(format!("Invalid rename mapping: {mapping}")),
        }
    }
    match whole {
        Some(_) if mappings.len() > 1 => Err(
            "Cast transformations that specify a type to cast the entire value to may only \
             specify a single cast in their spec"
                .to_owned(),
        ),
        Some(t) => Ok(Spec::Whole(t)),
        None => Ok(Spec::Fields(fields)),
    }
}

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("spec", ConfigType::List)
                .validator(Validator::Custom(|v| parse_spec(v).map(|_| ())))
                .importance(Importance::High)
                .doc(
                    "List of fields and the type to cast them to of the form \
                     field1:type,field2:type to cast fields of Maps or Structs. A single type \
                     to cast the entire value. Valid types are int8, int16, int32, int64, \
                     float32, float64, boolean, and string. Note that binary fields can only be \
                     cast to string.",
                ),
        )
        .define(replace_null_with_default_key())
}

side_plugins!("Cast", Cast);

struct Cast {
    side: Side,
    spec: Spec,
    with_default: bool,
    schemas: SchemaCache,
}

impl Cast {
    fn new(config: &TaskConfig, side: Side) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        let raw = c.list("spec").map(|l| l.join(",")).unwrap_or_default();
        Ok(Self {
            side,
            spec: parse_spec(&raw).map_err(|e| ConfigErrors::single("spec", e))?,
            with_default: c.boolean("replace.null.with.default").unwrap_or(true),
            schemas: SchemaCache::default(),
        })
    }

    fn updated_schema(&self, schema: &Schema) -> Result<Schema, ConnectError> {
        let mut out = match &self.spec {
            Spec::Whole(t) => copy_basics(schema, t.schema_type()),
            Spec::Fields(casts) => {
                let mut fields = Vec::with_capacity(schema.fields().len());
                for f in list_fields(schema)? {
                    let field_schema = match casts.get(&f.name) {
                        Some(t) => {
                            let mut s = Schema::new(t.schema_type());
                            s.optional = f.schema.optional;
                            if let Some(d) = &f.schema.default {
                                s.default = Some(cast(Some(&f.schema), d, *t)?);
                            }
                            s.into_ref()
                        }
                        None => f.schema.clone(),
                    };
                    fields.push(Field {
                        name: f.name.clone(),
                        schema: field_schema,
                    });
                }
                copy_basics(schema, SchemaType::Struct(fields))
            }
        };
        out.optional = schema.optional;
        if let (Some(d), Spec::Whole(t)) = (&schema.default, &self.spec) {
            out.default = Some(cast(Some(schema), d, *t)?);
        } else {
            out.default = schema.default.clone();
        }
        Ok(out)
    }
}

impl Transform for Cast {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = take(&mut record, self.side);
        if value.is_null() {
            put(&mut record, self.side, schema, value);
            return Ok(Some(record));
        }
        let (schema, value) = match schema {
            None => match &self.spec {
                Spec::Whole(t) => (None, cast(None, &value, *t)?),
                Spec::Fields(casts) => {
                    let Value::Map(mut entries) = value else {
                        return Err(map_required(&value, PURPOSE));
                    };
                    for (name, t) in casts {
                        let current = entries
                            .iter()
                            .find(|(k, _)| k.as_str() == Some(name))
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default();
                        let v = cast(None, &current, *t)?;
                        crate::insert_field::set_entry(&mut entries, name, v);
                    }
                    (None, Value::Map(entries))
                }
            },
            Some(schema) => {
                // Taken out so the build can read `self` on a cache miss only.
                let mut cache = std::mem::take(&mut self.schemas);
                let out = cache.get_or_build(&schema, |s| self.updated_schema(s));
                self.schemas = cache;
                let out = out?;
                match self.spec.clone() {
                    Spec::Whole(t) => {
                        let v = cast(Some(&schema), &value, t)?;
                        (Some(out), v)
                    }
                    Spec::Fields(casts) => {
                        let Value::Struct(values) = value else {
                            return Err(struct_required(&value, Some(&schema), PURPOSE));
                        };
                        let mut updated = Vec::with_capacity(values.len());
                        for ((f, v), nf) in schema.fields().iter().zip(&values).zip(out.fields()) {
                            let v = field_value(f, v, self.with_default);
                            let v = match casts.get(&f.name) {
                                Some(t) => cast(Some(&f.schema), &v, *t)?,
                                None => v,
                            };
                            crate::validate::check(&nf.schema, &v, Some(&f.name))?;
                            updated.push(v);
                        }
                        (Some(out), Value::Struct(updated))
                    }
                }
            }
        };
        put(&mut record, self.side, schema, value);
        Ok(Some(record))
    }
}

/// A number as Java's `Number` methods see it.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn long(self) -> i64 {
        match self {
            Num::Int(v) => v,
            Num::Float(v) => v as i64,
        }
    }
    fn int(self) -> i32 {
        match self {
            Num::Int(v) => v as i32,
            Num::Float(v) => v as i32,
        }
    }
    fn double(self) -> f64 {
        match self {
            Num::Int(v) => v as f64,
            Num::Float(v) => v,
        }
    }
}

/// `Cast.castValueToType`.
#[allow(
    clippy::too_many_lines,
    reason = "one arm per (from, to) type pair, as Connect's `Cast.castValueToType`: a table, kept whole so it reads against Java's."
)]
fn cast(schema: Option<&Schema>, value: &Value, target: Target) -> Result<Value, ConnectError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let input = match schema {
        Some(s) => s.schema_type.clone(),
        None => match value {
            Value::Int8(_) => SchemaType::Int8,
            Value::Int16(_) => SchemaType::Int16,
            Value::Int32(_) => SchemaType::Int32,
            Value::Int64(_) => SchemaType::Int64,
            Value::Float32(_) => SchemaType::Float32,
            Value::Float64(_) => SchemaType::Float64,
            Value::Boolean(_) => SchemaType::Boolean,
            Value::String(_) => SchemaType::String,
            Value::Bytes(_) => SchemaType::Bytes,
            Value::Array(_) | Value::Map(_) | Value::Struct(_) => {
                let t = match value {
                    Value::Array(_) => "ARRAY",
                    Value::Map(_) => "MAP",
                    _ => "STRUCT",
                };
                return Err(ConnectError::data(format!(
                    "Cast transformation does not support casting from {t}; supported types are {INPUTS}"
                )));
            }
            other => {
                return Err(ConnectError::data(format!(
                    "Cast transformation was passed a value of type {} which is not supported by \
                     Connect's data API",
                    class_string(other, None)
                )))
            }
        },
    };
    if matches!(
        input,
        SchemaType::Array(_) | SchemaType::Map(..) | SchemaType::Struct(_)
    ) {
        let t = type_name(&Schema::new(input));
        return Err(ConnectError::data(format!(
            "Cast transformation does not support casting from {t}; supported types are {INPUTS}"
        )));
    }
    let logical = schema.and_then(Schema::logical_type);
    let date_millis = match logical {
        Some(l @ (LogicalType::Date | LogicalType::Time | LogicalType::Timestamp)) => {
            logical_millis(value, l)
        }
        _ => None,
    };
    if target == Target::String {
        let text = match (date_millis, value) {
            (Some(ms), _) => date_to_string(ms),
            (None, Value::Bytes(b)) => base64_encode(b),
            (None, Value::String(s)) => s.clone(),
            (None, Value::Boolean(b)) => b.to_string(),
            (None, Value::Float32(f)) => float_to_string(*f),
            (None, Value::Float64(f)) => double_to_string(*f),
            (None, Value::Decimal(d)) => decimal_to_string(d),
            (None, v) => v.as_i64().map(|i| i.to_string()).unwrap_or_default(),
        };
        return Ok(Value::String(text));
    }
    // A logical date, time or timestamp casts as its encoded number.
    let num = match value {
        Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
            Some(Num::Int(value.as_i64().unwrap_or(0)))
        }
        Value::Float32(f) => Some(Num::Float(f64::from(*f))),
        Value::Float64(f) => Some(Num::Float(*f)),
        Value::Decimal(d) => Some(decimal_num(d)),
        _ => None,
    };
    let out_of_range = |text: &str| {
        ConnectError::data(format!(
            "Value ({text}) was out of range for requested data type"
        ))
    };
    if let Some(n) = num {
        return Ok(match target {
            Target::Int8 => Value::Int8(n.int() as i8),
            Target::Int16 => Value::Int16(n.int() as i16),
            Target::Int32 => Value::Int32(n.int()),
            Target::Int64 => Value::Int64(n.long()),
            Target::Float32 => Value::Float32(n.double() as f32),
            Target::Float64 => Value::Float64(n.double()),
            Target::Boolean => Value::Boolean(n.long() != 0),
            Target::String => unreachable!("handled above"),
        });
    }
    match value {
        Value::Boolean(b) => {
            let i = i64::from(*b);
            Ok(match target {
                Target::Int8 => Value::Int8(i as i8),
                Target::Int16 => Value::Int16(i as i16),
                Target::Int32 => Value::Int32(i as i32),
                Target::Int64 => Value::Int64(i),
                Target::Float32 => Value::Float32(i as f32),
                Target::Float64 => Value::Float64(i as f64),
                Target::Boolean => Value::Boolean(*b),
                Target::String => unreachable!("handled above"),
            })
        }
        Value::String(s) => Ok(match target {
            Target::Int8 => Value::Int8(
                parse_java_int(s)
                    .and_then(|v| i8::try_from(v).ok())
                    .ok_or_else(|| out_of_range(s))?,
            ),
            Target::Int16 => Value::Int16(
                parse_java_int(s)
                    .and_then(|v| i16::try_from(v).ok())
                    .ok_or_else(|| out_of_range(s))?,
            ),
            Target::Int32 => Value::Int32(
                parse_java_int(s)
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| out_of_range(s))?,
            ),
            Target::Int64 => Value::Int64(parse_java_int(s).ok_or_else(|| out_of_range(s))?),
            Target::Float32 => {
                Value::Float32(parse_java_float(s).ok_or_else(|| out_of_range(s))? as f32)
            }
            Target::Float64 => Value::Float64(parse_java_float(s).ok_or_else(|| out_of_range(s))?),
            Target::Boolean => Value::Boolean(s.eq_ignore_ascii_case("true")),
            Target::String => unreachable!("handled above"),
        }),
        other => Err(ConnectError::data(format!(
            "Unexpected type in Cast transformation: {}",
            class_string(other, schema)
        ))),
    }
}

/// `BigDecimal.longValue()` / `doubleValue()` for a cast from a decimal.
fn decimal_num(d: &sluice_api::Decimal) -> Num {
    if d.scale <= 0 {
        Num::Int(crate::java::big_decimal_long(d))
    } else {
        Num::Float(crate::java::big_decimal_double(d))
    }
}

/// `Long.parseLong` (and its narrower siblings before the range check).
fn parse_java_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.strip_prefix('+').unwrap_or(s).parse().ok()
}

/// `Double.parseDouble`: surrounding whitespace, a `d`/`f` suffix, `NaN` and
/// `Infinity` allowed.
fn parse_java_float(s: &str) -> Option<f64> {
    let t = s.trim();
    let t = t.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(t);
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    match unsigned {
        "NaN" => return Some(f64::NAN),
        "Infinity" => {
            return Some(if t.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            })
        }
        _ => {}
    }
    if unsigned
        .bytes()
        .any(|b| !(b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')))
    {
        return None;
    }
    t.parse().ok()
}
