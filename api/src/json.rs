//! Schema-aware JSON rendering of a [`Value`]: struct fields are named from their
//! schema, bytes and decimals become base64 (Connect's JSON forms). Shared by the
//! JSON converter and by sinks that write JSON documents, so both agree.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::ser::{Error as _, SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

use crate::schema::{Field, Schema, SchemaType};
use crate::value::Value;

/// A [`Value`] seen through its optional schema; serialize it with any serde
/// serializer (`serde_json::to_writer(out, &JsonView::new(schema, value))`).
pub struct JsonView<'a> {
    schema: Option<&'a Schema>,
    value: &'a Value,
    decimal_numeric: bool,
    null_defaults: bool,
}

impl<'a> JsonView<'a> {
    /// `value` seen through `schema` (none: schemaless).
    pub fn new(schema: Option<&'a Schema>, value: &'a Value) -> Self {
        Self {
            schema,
            value,
            decimal_numeric: false,
            null_defaults: false,
        }
    }

    /// Writes decimals as JSON numbers (Connect's `decimal.format=NUMERIC`).
    pub fn decimals_as_numbers(mut self, yes: bool) -> Self {
        self.decimal_numeric = yes;
        self
    }

    /// Writes a null whose schema has a default as the default (Connect's
    /// JsonConverter `replace.null.with.default`).
    pub fn null_defaults(mut self, yes: bool) -> Self {
        self.null_defaults = yes;
        self
    }

    fn child<'b>(&self, schema: Option<&'b Schema>, value: &'b Value) -> JsonView<'b> {
        JsonView {
            schema,
            value,
            decimal_numeric: self.decimal_numeric,
            null_defaults: self.null_defaults,
        }
    }
}

impl Serialize for JsonView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Null => match self.schema.and_then(|sc| sc.default.as_ref()) {
                Some(default) if self.null_defaults && !default.is_null() => {
                    self.child(self.schema, default).serialize(s)
                }
                _ => s.serialize_unit(),
            },
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::Int8(v) => s.serialize_i8(*v),
            Value::Int16(v) => s.serialize_i16(*v),
            Value::Int32(v) => s.serialize_i32(*v),
            Value::Int64(v) => s.serialize_i64(*v),
            // JSON has no NaN or infinities; Jackson, and so Connect's
            // JsonConverter, writes them as strings (serde_json would write
            // null, losing the value).
            Value::Float32(v) if !v.is_finite() => s.serialize_str(non_finite(f64::from(*v))),
            Value::Float64(v) if !v.is_finite() => s.serialize_str(non_finite(*v)),
            Value::Float32(v) => s.serialize_f32(*v),
            Value::Float64(v) => s.serialize_f64(*v),
            Value::String(v) => s.serialize_str(v),
            Value::Bytes(b) => s.serialize_str(&BASE64.encode(b)),
            Value::Decimal(d) if self.decimal_numeric => {
                let raw = serde_json::value::RawValue::from_string(d.to_string())
                    .map_err(S::Error::custom)?;
                raw.serialize(s)
            }
            Value::Decimal(d) => s.serialize_str(&BASE64.encode(&d.unscaled)),
            Value::Array(items) => {
                let item_schema = match self.schema.map(|s| &s.schema_type) {
                    Some(SchemaType::Array(i)) => Some(&**i),
                    _ => None,
                };
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&self.child(item_schema, item))?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let (ks, vs) = match self.schema.map(|s| &s.schema_type) {
                    Some(SchemaType::Map(k, v)) => (Some(&**k), Some(&**v)),
                    _ => (None, None),
                };
                // String keys make an object; any other key type, Connect's
                // array of [key, value] pairs.
                if entries.iter().all(|(k, _)| matches!(k, Value::String(_))) {
                    let mut map = s.serialize_map(Some(entries.len()))?;
                    for (k, v) in entries {
                        map.serialize_entry(&k.as_str(), &self.child(vs, v))?;
                    }
                    map.end()
                } else {
                    let mut seq = s.serialize_seq(Some(entries.len()))?;
                    for (k, v) in entries {
                        seq.serialize_element(&(self.child(ks, k), self.child(vs, v)))?;
                    }
                    seq.end()
                }
            }
            Value::Struct(values) => {
                let fields: &[Field] = self.schema.map(Schema::fields).unwrap_or(&[]);
                if fields.len() != values.len() {
                    return Err(S::Error::custom(format!(
                        "a struct of {} values needs a struct schema with as many fields (has {})",
                        values.len(),
                        fields.len()
                    )));
                }
                let mut map = s.serialize_map(Some(values.len()))?;
                for (f, v) in fields.iter().zip(values) {
                    map.serialize_entry(&f.name, &self.child(Some(&f.schema), v))?;
                }
                map.end()
            }
        }
    }
}

/// How Jackson writes a float that is not a number: `"NaN"`, `"Infinity"`,
/// `"-Infinity"`.
fn non_finite(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// A float Jackson wrote as a string (see `non_finite`), read back.
pub fn parse_non_finite(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Parses schemaless JSON as Connect's `JsonConverter` does without schemas:
/// objects become string-keyed maps (in document order), integers `Int64`
/// (past `i64::MAX` a `Float64`, as Connect falls back to a double), other
/// numbers `Float64`. Shared by the JSON converter and by sinks that decode
/// JSON text themselves, so both read a document alike.
pub fn parse_schemaless(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<Schemaless>(text).map(|s| s.0)
}

/// As [`parse_schemaless`], from bytes (checked as UTF-8 while parsing).
pub fn parse_schemaless_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Schemaless>(bytes).map(|s| s.0)
}

/// Valid JSON text as one line, for line-per-document outputs (a file, an
/// NDJSON `_bulk` body). In valid JSON a line break can only be whitespace
/// between tokens (a string cannot hold a raw one), so each becomes a space:
/// the same document, without decoding it. Borrowed when there is none.
pub fn one_line(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memchr2(b'\n', b'\r', text).is_none() {
        return std::borrow::Cow::Borrowed(text);
    }
    let spaced = text
        .iter()
        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
        .collect();
    std::borrow::Cow::Owned(spaced)
}

/// Whether `text` parses as [`parse_schemaless`] would parse it, checked
/// without building the value (same parser, same limits, nothing allocated).
pub fn check_schemaless(text: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<Checked>(text).map(|_| ())
}

struct Checked;

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckVisitor).map(|()| Checked)
    }
}

/// Accepts what [`SchemalessVisitor`] accepts, keeping nothing.
struct CheckVisitor;

impl<'de> serde::de::Visitor<'de> for CheckVisitor {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, Checked>()?
            .is_some()
        {}
        Ok(())
    }
}

/// A value read as [`parse_schemaless`] reads it, for a deserializer that
/// reads some parts of a document itself and hands the rest to this.
pub struct Schemaless(pub Value);

impl<'de> serde::Deserialize<'de> for Schemaless {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SchemalessVisitor).map(Schemaless)
    }
}

struct SchemalessVisitor;

impl<'de> serde::de::Visitor<'de> for SchemalessVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Boolean(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float64(v as f64), Value::Int64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Schemaless(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((k, Schemaless(v))) = map.next_entry::<String, Schemaless>()? {
            entries.push((Value::String(k), v));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::primitives;

    #[test]
    fn the_check_accepts_exactly_what_the_parser_accepts() {
        for text in [
            r#"{"a": 1, "b": [true, null, 2.5, "x\u00e9"], "c": {"d": 18446744073709551615}}"#,
            "42",
            r#"{"a": 1e400}"#,
            r#"{"a": 1,}"#,
            r#"{"a": "\ud800"}"#,
            "[1, 2",
            "{} x",
            &format!("{}{}", "[".repeat(200), "]".repeat(200)),
        ] {
            assert_eq!(
                check_schemaless(text).is_ok(),
                parse_schemaless(text).is_ok(),
                "{text}"
            );
        }
        let v = parse_schemaless(r#"{"n": 18446744073709551615, "i": -3}"#).unwrap();
        assert_eq!(
            v.map_get("n"),
            Some(&Value::Float64(18_446_744_073_709_551_615.0))
        );
        assert_eq!(v.map_get("i"), Some(&Value::Int64(-3)));
    }

    #[test]
    fn one_line_keeps_the_document_and_borrows_when_it_can() {
        let flat = br#"{"a": "x y"}"#;
        assert!(matches!(one_line(flat), std::borrow::Cow::Borrowed(_)));
        let pretty = "{\r\n  \"a\": \"l\\nm\",\n  \"b\": [1,\n 2]\n}";
        let flat = one_line(pretty.as_bytes());
        assert!(!flat.contains(&b'\n') && !flat.contains(&b'\r'));
        assert_eq!(
            parse_schemaless_slice(&flat).unwrap(),
            parse_schemaless(pretty).unwrap()
        );
    }

    #[test]
    fn structs_take_field_names_from_schema() {
        let schema = Schema::struct_of([("a", primitives::int32()), ("b", primitives::bytes())]);
        let v = Value::Struct(vec![Value::Int32(1), Value::Bytes(vec![255])]);
        let text = serde_json::to_string(&JsonView::new(Some(&schema), &v)).unwrap();
        assert_eq!(text, r#"{"a":1,"b":"/w=="}"#);
        assert!(serde_json::to_string(&JsonView::new(None, &v)).is_err());
    }

    #[test]
    fn floats_that_are_not_numbers_are_written_as_jackson_writes_them() {
        let schema = Schema::struct_of([
            ("nan", primitives::float64()),
            ("inf", Schema::new(SchemaType::Float32).into_ref()),
            ("neg", primitives::float64()),
            ("one", primitives::float64()),
        ]);
        let v = Value::Struct(vec![
            Value::Float64(f64::NAN),
            Value::Float32(f32::INFINITY),
            Value::Float64(f64::NEG_INFINITY),
            Value::Float64(1.5),
        ]);
        assert_eq!(
            serde_json::to_string(&JsonView::new(Some(&schema), &v)).unwrap(),
            r#"{"nan":"NaN","inf":"Infinity","neg":"-Infinity","one":1.5}"#
        );
        assert!(parse_non_finite("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_non_finite("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_non_finite("1.5"), None);
    }

    #[test]
    fn non_string_map_keys_become_pairs() {
        let v = Value::Map(vec![(Value::Int32(1), Value::from("x"))]);
        assert_eq!(
            serde_json::to_string(&JsonView::new(None, &v)).unwrap(),
            r#"[[1,"x"]]"#
        );
    }
}
