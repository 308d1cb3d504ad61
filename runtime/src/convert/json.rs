//! Connect's `JsonConverter`, wire-compatible with it: with `schemas.enable=true`
//! every message is `{"schema": {...}, "payload": ...}` in Connect's schema
//! notation; without, plain JSON. Bytes and decimals travel as base64 (or, for
//! decimals with `decimal.format=NUMERIC`, as JSON numbers).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de;
use serde::Deserialize;
use serde_json::value::RawValue;
use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Validator};
use sluice_api::json::JsonView;
use sluice_api::schema::{Field, LogicalType, Schema, SchemaType};
use sluice_api::{ConfigErrors, ConnectError, Converter, Decimal, SchemaRef, TaskConfig, Value};

use super::bytearray::variant_name;

mod typed;

/// How many distinct schemas a converter remembers (Connect's `schemas.cache.size`).
const DEFAULT_CACHE_SIZE: i64 = 1000;

pub struct JsonConverter {
    schemas_enable: bool,
    decimal_numeric: bool,
    /// `replace.null.with.default`: a null field with a default is written
    /// as the default.
    null_defaults: bool,
    cache_size: usize,
    /// Last schema serialized, by pointer: records of one source share one `Arc`.
    last_written: Option<(SchemaRef, Arc<str>)>,
    /// Schemas parsed from incoming envelopes, by their JSON text.
    parsed: HashMap<Box<str>, SchemaRef>,
    /// The last schema read, with its text: a topic's records mostly share
    /// one, which `decode_with_last_schema` then reads without scanning it.
    last_read: Option<(Box<str>, SchemaRef)>,
    /// The size of the last message written: the next one's buffer is made
    /// that large at once, not grown (and copied) on the way.
    last_size: usize,
}

impl JsonConverter {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define(
                ConfigKey::new("schemas.enable", ConfigType::Boolean)
                    .default("true")
                    .doc("Wrap each message in Connect's {\"schema\", \"payload\"} envelope."),
            )
            .define(
                ConfigKey::new("schemas.cache.size", ConfigType::Long)
                    .default(DEFAULT_CACHE_SIZE.to_string())
                    .validator(Validator::at_least(1.0)),
            )
            .define(
                ConfigKey::new("decimal.format", ConfigType::String)
                    .default("BASE64")
                    .validator(Validator::OneOf(&["BASE64", "NUMERIC"])),
            )
            .define(
                ConfigKey::new("replace.null.with.default", ConfigType::Boolean)
                    .default("true")
                    .doc("Write a null field whose schema has a default as the default, as Connect does."),
            )
    }

    /// `prefix` names the converter's key in error messages (e.g. `value.converter`).
    pub fn configure(
        prefix: &str,
        config: &TaskConfig,
        _is_key: bool,
    ) -> Result<Self, ConfigErrors> {
        let c = Self::config_def().validate(config).map_err(|errs| {
            ConfigErrors(
                errs.0
                    .into_iter()
                    .map(|mut e| {
                        e.key = format!("{prefix}.{}", e.key);
                        e
                    })
                    .collect(),
            )
        })?;
        Ok(Self::new(
            c.boolean("schemas.enable").unwrap_or(true),
            c.string("decimal.format")
                .is_some_and(|f| f.eq_ignore_ascii_case("NUMERIC")),
            c.long("schemas.cache.size").unwrap_or(DEFAULT_CACHE_SIZE) as usize,
        )
        .with_null_defaults(c.boolean("replace.null.with.default").unwrap_or(true)))
    }

    pub fn with_null_defaults(mut self, yes: bool) -> Self {
        self.null_defaults = yes;
        self
    }

    pub fn new(schemas_enable: bool, decimal_numeric: bool, cache_size: usize) -> Self {
        Self {
            schemas_enable,
            decimal_numeric,
            null_defaults: true,
            cache_size,
            last_written: None,
            parsed: HashMap::new(),
            last_read: None,
            last_size: 0,
        }
    }

    /// The common envelope, read without scanning its schema: written as
    /// Connect and sluice write it, `{"schema":<the last schema's text>,
    /// "payload":<payload>}` with no whitespace between the parts. Scanning
    /// the schema text and hashing it to find it in the cache were a tenth of
    /// a warehouse sink's work. `None` for anything else (another schema,
    /// other spacing, another field), which the full parse reads as before.
    fn decode_with_last_schema(
        &self,
        text: &str,
    ) -> Option<Result<(Option<SchemaRef>, Value), String>> {
        let (schema_text, schema) = self.last_read.as_ref()?;
        let payload = text
            .strip_prefix(r#"{"schema":"#)?
            .strip_prefix(&**schema_text)?
            .strip_prefix(r#","payload":"#)?
            .trim_end()
            .strip_suffix('}')?;
        if let Some(value) = typed::decode_struct(payload, schema) {
            return Some(Ok((Some(schema.clone()), value)));
        }
        // Not one JSON value (a field after the payload, bad JSON): the full
        // parse says what is wrong.
        let value = parse_json_str(payload).ok()?;
        Some(coerce(value, schema).map(|v| (Some(schema.clone()), v)))
    }

    fn schema_text(&mut self, schema: &SchemaRef) -> Arc<str> {
        if let Some((s, text)) = &self.last_written {
            if Arc::ptr_eq(s, schema) {
                return text.clone();
            }
        }
        let text: Arc<str> = schema_to_json(schema).to_string().into();
        self.last_written = Some((schema.clone(), text.clone()));
        text
    }

    fn parse_schema(&mut self, raw: &RawValue) -> Result<SchemaRef, ConnectError> {
        let schema = self.cached_schema(raw)?;
        if self
            .last_read
            .as_ref()
            .is_none_or(|(text, _)| **text != *raw.get())
        {
            self.last_read = Some((raw.get().into(), schema.clone()));
        }
        Ok(schema)
    }

    fn cached_schema(&mut self, raw: &RawValue) -> Result<SchemaRef, ConnectError> {
        if let Some(s) = self.parsed.get(raw.get()) {
            return Ok(s.clone());
        }
        let json: serde_json::Value = serde_json::from_str(raw.get())
            .map_err(|e| ConnectError::data(format!("invalid schema in JSON envelope: {e}")))?;
        let schema = schema_from_json(&json)
            .map_err(ConnectError::data)?
            .into_ref();
        if self.parsed.len() >= self.cache_size {
            self.parsed.clear();
        }
        self.parsed.insert(raw.get().into(), schema.clone());
        Ok(schema)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

const ENVELOPE_REQUIRED: &str = "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration.";

impl Converter for JsonConverter {
    fn class_name(&self) -> &str {
        "org.apache.kafka.connect.json.JsonConverter"
    }

    fn encode(
        &mut self,
        topic: &str,
        schema: Option<&SchemaRef>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError> {
        if value.is_null() && (schema.is_none() || !self.schemas_enable) {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(self.last_size + self.last_size / 8 + 64);
        if self.schemas_enable {
            out.extend_from_slice(b"{\"schema\":");
            match schema {
                Some(s) => out.extend_from_slice(self.schema_text(s).as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"payload\":");
        }
        write_json(
            &mut out,
            schema.map(|s| &**s),
            value,
            self.decimal_numeric,
            self.null_defaults,
        )
        .map_err(|e| ConnectError::data(format!("JsonConverter (topic '{topic}'): {e}")))?;
        if self.schemas_enable {
            out.push(b'}');
        }
        self.last_size = out.len();
        Ok(Some(out))
    }

    fn reads_schemaless_json(&self) -> bool {
        !self.schemas_enable
    }

    fn check(&mut self, bytes: &[u8]) -> bool {
        utf8(bytes).is_ok_and(|text| sluice_api::json::check_schemaless(text).is_ok())
    }

    fn decode(
        &mut self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<SchemaRef>, Value), ConnectError> {
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        let context = |e: &dyn fmt::Display| {
            ConnectError::data(format!("JsonConverter (topic '{topic}'): {e}"))
        };
        let text = utf8(bytes).map_err(|e| context(&e))?;
        if !self.schemas_enable {
            return parse_json_str(text)
                .map(|v| (None, v))
                .map_err(|e| context(&e));
        }
        if let Some(decoded) = self.decode_with_last_schema(text) {
            return decoded.map_err(|e| context(&e));
        }
        let envelope: Envelope<'_> = match serde_json::from_str(text) {
            Ok(e) => e,
            Err(e) if e.is_syntax() || e.is_eof() => return Err(context(&e)),
            Err(_) => return Err(context(&ENVELOPE_REQUIRED)),
        };
        let schema = match envelope.schema {
            Some(raw) if raw.get() != "null" => Some(self.parse_schema(raw)?),
            _ => None,
        };
        let payload = match envelope.payload {
            Some(p) => {
                if let Some(value) = schema
                    .as_ref()
                    .and_then(|s| typed::decode_struct(p.get(), s))
                {
                    return Ok((schema, value));
                }
                parse_json_str(p.get()).map_err(|e| context(&e))?
            }
            None => Value::Null,
        };
        match schema {
            Some(schema) => {
                let value = coerce(payload, &schema).map_err(|e| context(&e))?;
                Ok((Some(schema), value))
            }
            None => Ok((None, payload)),
        }
    }
}

/// Parses JSON without a schema: objects become string-keyed maps, integers
/// `Int64`, other numbers `Float64`, as Connect's schemaless JSON does.
pub fn parse_json_value(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    parse_json_str(utf8(bytes)?)
}

fn parse_json_str(text: &str) -> Result<Value, serde_json::Error> {
    sluice_api::json::parse_schemaless(text)
}

/// JSON text is UTF-8. Checking the whole input at once (SIMD) spares the
/// parser checking each string, which was a tenth of a JSON sink's work.
fn utf8(bytes: &[u8]) -> Result<&str, serde_json::Error> {
    simdutf8::basic::from_utf8(bytes).map_err(|_| {
        // The slower check says where, for the message.
        let why = std::str::from_utf8(bytes).err().map_or_else(
            || "invalid UTF-8".to_owned(),
            |e| format!("invalid UTF-8: {e}"),
        );
        de::Error::custom(why)
    })
}

/// Shapes a schemaless JSON value to a schema: narrows integers, decodes base64
/// bytes and decimals, turns objects into structs.
fn coerce(value: Value, schema: &Schema) -> Result<Value, String> {
    if value.is_null() {
        if schema.optional || schema.default.is_some() {
            return Ok(schema.default.clone().unwrap_or(Value::Null));
        }
        return Err(format!(
            "null value for a required {} field",
            schema.type_name()
        ));
    }
    let mismatch =
        |v: &Value| format!("expected {}, found {}", schema.type_name(), variant_name(v));
    if let Some(LogicalType::Decimal { scale }) = schema.logical_type() {
        return coerce_decimal(value, scale, mismatch);
    }
    let int = |v: &Value| v.as_i64().ok_or_else(|| mismatch(v));
    Ok(match &schema.schema_type {
        SchemaType::Int8 => Value::Int8(i8::try_from(int(&value)?).map_err(|e| e.to_string())?),
        SchemaType::Int16 => Value::Int16(i16::try_from(int(&value)?).map_err(|e| e.to_string())?),
        SchemaType::Int32 => Value::Int32(i32::try_from(int(&value)?).map_err(|e| e.to_string())?),
        SchemaType::Int64 => Value::Int64(int(&value)?),
        SchemaType::Float32 | SchemaType::Float64 => {
            let f = match value {
                Value::Float64(f) => f,
                Value::Int64(i) => i as f64,
                // NaN and the infinities, as the converter writes them.
                Value::String(ref t) => {
                    sluice_api::json::parse_non_finite(t).ok_or_else(|| mismatch(&value))?
                }
                other => return Err(mismatch(&other)),
            };
            if schema.schema_type == SchemaType::Float32 {
                Value::Float32(f as f32)
            } else {
                Value::Float64(f)
            }
        }
        SchemaType::Boolean | SchemaType::String => match (&schema.schema_type, &value) {
            (SchemaType::Boolean, Value::Boolean(_)) | (SchemaType::String, Value::String(_)) => {
                value
            }
            _ => return Err(mismatch(&value)),
        },
        SchemaType::Bytes => match value {
            Value::String(s) => Value::Bytes(
                BASE64
                    .decode(s.as_bytes())
                    .map_err(|e| format!("invalid base64: {e}"))?,
            ),
            other => return Err(mismatch(&other)),
        },
        SchemaType::Array(items) => match value {
            Value::Array(vs) => Value::Array(
                vs.into_iter()
                    .map(|v| coerce(v, items))
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(mismatch(&other)),
        },
        SchemaType::Map(ks, vs) => coerce_map(value, ks, vs, mismatch)?,
        SchemaType::Struct(fields) => match value {
            Value::Map(entries) => coerce_struct(entries, fields)?,
            other => return Err(mismatch(&other)),
        },
    })
}

/// A decimal travels as its base64 unscaled bytes, or as a plain number when
/// written by hand.
fn coerce_decimal(
    value: Value,
    scale: i32,
    mismatch: impl Fn(&Value) -> String,
) -> Result<Value, String> {
    match value {
        Value::String(s) => BASE64
            .decode(s.as_bytes())
            .map(|unscaled| Value::Decimal(Decimal { unscaled, scale }))
            .map_err(|e| format!("invalid base64 decimal: {e}")),
        Value::Int64(n) => Ok(Value::Decimal(Decimal::from_i128(
            i128::from(n) * 10i128.pow(scale.max(0) as u32),
            scale,
        ))),
        Value::Float64(f) => Ok(Value::Decimal(Decimal::from_i128(
            (f * 10f64.powi(scale)).round() as i128,
            scale,
        ))),
        other => Err(mismatch(&other)),
    }
}

/// String keys travel as an object; other keys as an array of [key, value] pairs.
fn coerce_map(
    value: Value,
    ks: &Schema,
    vs: &Schema,
    mismatch: impl Fn(&Value) -> String,
) -> Result<Value, String> {
    Ok(match value {
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let k = if ks.schema_type == SchemaType::String {
                        k
                    } else {
                        parse_key(k)?
                    };
                    Ok((coerce(k, ks)?, coerce(v, vs)?))
                })
                .collect::<Result<_, String>>()?,
        ),
        Value::Array(pairs) => Value::Map(
            pairs
                .into_iter()
                .map(|pair| match pair {
                    Value::Array(mut kv) if kv.len() == 2 => {
                        let v = kv.pop().unwrap_or_default();
                        let k = kv.pop().unwrap_or_default();
                        Ok((coerce(k, ks)?, coerce(v, vs)?))
                    }
                    other => Err(format!(
                        "expected a [key, value] pair, found {}",
                        variant_name(&other)
                    )),
                })
                .collect::<Result<_, String>>()?,
        ),
        other => return Err(mismatch(&other)),
    })
}

/// An object becomes a struct in the schema's field order; a field it lacks is
/// null (or the field's default).
fn coerce_struct(mut entries: Vec<(Value, Value)>, fields: &[Field]) -> Result<Value, String> {
    let mut values = Vec::with_capacity(fields.len());
    for f in fields {
        let v = entries
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(f.name.as_str()))
            .map(|(_, v)| std::mem::take(v))
            .unwrap_or(Value::Null);
        values.push(coerce(v, &f.schema).map_err(|e| format!("field '{}': {e}", f.name))?);
    }
    Ok(Value::Struct(values))
}

fn parse_key(k: Value) -> Result<Value, String> {
    match k {
        Value::String(s) => {
            parse_json_value(s.as_bytes()).map_err(|e| format!("invalid map key '{s}': {e}"))
        }
        other => Ok(other),
    }
}

/// Writes `value` as JSON, naming struct fields from `schema`.
pub(crate) fn write_json(
    out: &mut Vec<u8>,
    schema: Option<&Schema>,
    value: &Value,
    decimal_numeric: bool,
    null_defaults: bool,
) -> Result<(), ConnectError> {
    serde_json::to_writer(
        out,
        &JsonView::new(schema, value)
            .decimals_as_numbers(decimal_numeric)
            .null_defaults(null_defaults),
    )
    .map_err(|e| ConnectError::data(e.to_string()))
}

/// Connect's JSON notation for a schema.
pub fn schema_to_json(schema: &Schema) -> serde_json::Value {
    use serde_json::{json, Map};
    let mut m = Map::new();
    m.insert("type".into(), json!(schema.type_name()));
    match &schema.schema_type {
        SchemaType::Struct(fields) => {
            let fs: Vec<_> = fields
                .iter()
                .map(|f| {
                    let mut fj = schema_to_json(&f.schema);
                    if let Some(o) = fj.as_object_mut() {
                        o.insert("field".into(), json!(f.name));
                    }
                    fj
                })
                .collect();
            m.insert("fields".into(), json!(fs));
        }
        SchemaType::Array(items) => {
            m.insert("items".into(), schema_to_json(items));
        }
        SchemaType::Map(k, v) => {
            m.insert("keys".into(), schema_to_json(k));
            m.insert("values".into(), schema_to_json(v));
        }
        _ => {}
    }
    m.insert("optional".into(), json!(schema.optional));
    if let Some(name) = &schema.name {
        m.insert("name".into(), json!(name));
    }
    if let Some(v) = schema.version {
        m.insert("version".into(), json!(v));
    }
    if let Some(doc) = &schema.doc {
        m.insert("doc".into(), json!(doc));
    }
    if !schema.parameters.is_empty() {
        m.insert("parameters".into(), json!(schema.parameters));
    }
    if let Some(default) = &schema.default {
        let mut buf = Vec::new();
        if write_json(&mut buf, Some(schema), default, false, false).is_ok() {
            if let Ok(v) = serde_json::from_slice(&buf) {
                m.insert("default".into(), v);
            }
        }
    }
    serde_json::Value::Object(m)
}

/// Parses Connect's JSON notation for a schema.
pub fn schema_from_json(json: &serde_json::Value) -> Result<Schema, String> {
    let obj = json.as_object().ok_or("a schema must be a JSON object")?;
    let type_name = obj
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or("a schema needs a string \"type\"")?;
    let sub = |key: &str| -> Result<SchemaRef, String> {
        let j = obj
            .get(key)
            .ok_or_else(|| format!("a {type_name} schema needs \"{key}\""))?;
        Ok(schema_from_json(j)?.into_ref())
    };
    let schema_type = match type_name {
        "int8" => SchemaType::Int8,
        "int16" => SchemaType::Int16,
        "int32" => SchemaType::Int32,
        "int64" => SchemaType::Int64,
        "float" => SchemaType::Float32,
        "double" => SchemaType::Float64,
        "boolean" => SchemaType::Boolean,
        "string" => SchemaType::String,
        "bytes" => SchemaType::Bytes,
        "array" => SchemaType::Array(sub("items")?),
        "map" => SchemaType::Map(sub("keys")?, sub("values")?),
        "struct" => {
            let fields = obj
                .get("fields")
                .and_then(|f| f.as_array())
                .ok_or("a struct schema needs \"fields\"")?;
            SchemaType::Struct(
                fields
                    .iter()
                    .map(|f| {
                        let name = f
                            .get("field")
                            .and_then(|n| n.as_str())
                            .ok_or("a struct field needs \"field\"")?;
                        Ok(Field {
                            name: name.to_owned(),
                            schema: schema_from_json(f)?.into_ref(),
                        })
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
        other => return Err(format!("unknown schema type '{other}'")),
    };
    let mut schema = Schema::new(schema_type);
    schema.optional = obj
        .get("optional")
        .and_then(|o| o.as_bool())
        .unwrap_or(false);
    schema.name = obj.get("name").and_then(|n| n.as_str()).map(str::to_owned);
    schema.version = obj
        .get("version")
        .and_then(|v| v.as_i64())
        .and_then(|v| i32::try_from(v).ok());
    schema.doc = obj.get("doc").and_then(|d| d.as_str()).map(str::to_owned);
    if let Some(params) = obj.get("parameters").and_then(|p| p.as_object()) {
        schema.parameters = params
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect::<BTreeMap<_, _>>();
    }
    if let Some(default) = obj.get("default") {
        let raw = default.to_string();
        let parsed = parse_json_value(raw.as_bytes()).map_err(|e| e.to_string())?;
        schema.default = Some(coerce(parsed, &schema)?);
    }
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::schema::primitives;

    fn event_schema() -> SchemaRef {
        Schema::struct_of([
            ("id", primitives::int32()),
            ("name", primitives::optional_string()),
            ("amount", Schema::decimal(2).into_ref()),
            ("at", Schema::timestamp().into_ref()),
            (
                "tags",
                Schema::new(SchemaType::Array(primitives::string())).into_ref(),
            ),
            ("blob", primitives::bytes()),
        ])
        .named("shop.Event")
        .into_ref()
    }

    fn event() -> Value {
        Value::Struct(vec![
            Value::Int32(7),
            Value::Null,
            Value::Decimal(Decimal::from_i128(12345, 2)),
            Value::Int64(1_700_000_000_000),
            Value::Array(vec!["a".into(), "b".into()]),
            Value::Bytes(vec![0, 1, 255]),
        ])
    }

    #[test]
    fn the_last_schema_is_read_without_scanning_it_and_anything_else_as_before() {
        let schema = event_schema();
        let bytes = JsonConverter::new(true, false, 10)
            .encode("t", Some(&schema), &event())
            .unwrap()
            .unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        let mut c = JsonConverter::new(true, false, 10);
        let first = c.decode("t", Some(&bytes)).unwrap();
        assert!(c.decode_with_last_schema(text).is_some());
        assert_eq!(c.decode("t", Some(&bytes)).unwrap(), first);
        // Spaced out: the full parse, the same record.
        let spaced = text.replacen(",\"payload\":", ", \"payload\": ", 1);
        assert!(c.decode_with_last_schema(&spaced).is_none());
        assert_eq!(c.decode("t", Some(spaced.as_bytes())).unwrap(), first);
        // A field after the payload: the full parse's error.
        let extra = format!("{},\"extra\":1}}", &text[..text.len() - 1]);
        assert!(c.decode_with_last_schema(&extra).is_none());
        let e = c.decode("t", Some(extra.as_bytes())).unwrap_err();
        assert!(e.message().contains("additional fields"), "{e}");
        // A payload the schema refuses: the error a fresh converter gives.
        let bad = text.replacen("\"id\":7", "\"id\":\"x\"", 1);
        assert_ne!(bad, text);
        let fresh = JsonConverter::new(true, false, 10)
            .decode("t", Some(bad.as_bytes()))
            .unwrap_err();
        let e = c.decode("t", Some(bad.as_bytes())).unwrap_err();
        assert_eq!(e.message(), fresh.message());
    }

    #[test]
    fn envelope_round_trip_matches_connect_shape() {
        let mut c = JsonConverter::new(true, false, 10);
        let schema = event_schema();
        let bytes = c.encode("t", Some(&schema), &event()).unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["schema"]["type"], "struct");
        assert_eq!(json["schema"]["name"], "shop.Event");
        assert_eq!(
            json["schema"]["fields"][2]["name"],
            "org.apache.kafka.connect.data.Decimal"
        );
        assert_eq!(json["schema"]["fields"][2]["parameters"]["scale"], "2");
        assert_eq!(json["payload"]["id"], 7);
        assert_eq!(json["payload"]["amount"], "MDk=");
        assert_eq!(json["payload"]["blob"], "AAH/");
        let (back_schema, back) = c.decode("t", Some(&bytes)).unwrap();
        assert_eq!(back, event());
        assert_eq!(back_schema.unwrap().fields().len(), 6);
    }

    #[test]
    fn floats_that_are_not_numbers_round_trip_as_connects_strings() {
        let mut c = JsonConverter::new(true, false, 10);
        let schema = Schema::struct_of([
            ("d", primitives::float64()),
            ("f", Schema::new(SchemaType::Float32).into_ref()),
        ])
        .into_ref();
        let v = Value::Struct(vec![
            Value::Float64(f64::NEG_INFINITY),
            Value::Float32(f32::NAN),
        ]);
        let bytes = c.encode("t", Some(&schema), &v).unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            json["payload"],
            serde_json::json!({"d": "-Infinity", "f": "NaN"})
        );
        let (_, back) = c.decode("t", Some(&bytes)).unwrap();
        match back {
            Value::Struct(f) => {
                assert_eq!(f[0], Value::Float64(f64::NEG_INFINITY));
                assert!(matches!(f[1], Value::Float32(x) if x.is_nan()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn schemaless_round_trip() {
        let mut c = JsonConverter::new(false, false, 10);
        let text = br#"{"a":1,"b":[true,null,2.5],"c":{"d":"x"}}"#;
        let (schema, v) = c.decode("t", Some(text)).unwrap();
        assert!(schema.is_none());
        assert_eq!(v.map_get("a"), Some(&Value::Int64(1)));
        let out = c.encode("t", None, &v).unwrap().unwrap();
        assert_eq!(out, text.to_vec());
    }

    #[test]
    fn numeric_decimals_and_nulls() {
        let mut c = JsonConverter::new(false, true, 10);
        let schema = Schema::decimal(3).into_ref();
        let out = c
            .encode(
                "t",
                Some(&schema),
                &Value::Decimal(Decimal::from_i128(-1500, 3)),
            )
            .unwrap();
        assert_eq!(out, Some(b"-1.500".to_vec()));
        assert_eq!(c.encode("t", None, &Value::Null).unwrap(), None);
    }

    #[test]
    fn a_null_field_with_a_default_is_written_as_the_default_unless_turned_off() {
        let mut with_default = Schema::new(SchemaType::Int32).optional();
        with_default.default = Some(Value::Int32(42));
        let schema = Schema::struct_of([("n", with_default.into_ref())]).into_ref();
        let row = Value::Struct(vec![Value::Null]);
        let mut c = JsonConverter::new(false, false, 10);
        assert_eq!(
            c.encode("t", Some(&schema), &row).unwrap(),
            Some(br#"{"n":42}"#.to_vec())
        );
        let mut c = JsonConverter::new(false, false, 10).with_null_defaults(false);
        assert_eq!(
            c.encode("t", Some(&schema), &row).unwrap(),
            Some(br#"{"n":null}"#.to_vec())
        );
    }

    #[test]
    fn bad_input_is_a_data_error_never_a_panic() {
        let mut with = JsonConverter::new(true, false, 10);
        let err = with.decode("orders", Some(br#"{"a":1}"#)).unwrap_err();
        assert!(err.to_string().contains("schemas.enable=false"), "{err}");
        let err = with.decode("orders", Some(b"{not json")).unwrap_err();
        assert!(err.to_string().contains("topic 'orders'"), "{err}");
        let err = with
            .decode(
                "orders",
                Some(br#"{"schema":{"type":"int8"},"payload":1000}"#),
            )
            .unwrap_err();
        assert_eq!(err.kind(), sluice_api::ErrorKind::Data);
        let mut without = JsonConverter::new(false, false, 10);
        assert!(without.decode("t", Some(b"\xff")).is_err());
        let bad_struct = without.encode("t", None, &Value::Struct(vec![Value::Int32(1)]));
        assert!(bad_struct.is_err());
    }

    #[test]
    fn schema_notation_round_trips() {
        let map =
            Schema::new(SchemaType::Map(primitives::int32(), primitives::string())).optional();
        let json = schema_to_json(&map);
        assert_eq!(schema_from_json(&json).unwrap(), map);
        let s = event_schema();
        assert_eq!(schema_from_json(&schema_to_json(&s)).unwrap(), *s);
    }
}
