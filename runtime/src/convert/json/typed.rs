//! A payload read straight into a struct by its schema, in one pass: each
//! field's value lands in the field's slot as it is parsed, where the general
//! way parses a schemaless map (a string allocated per key) and then looks
//! every field up in it to reshape it into a struct. On a struct-heavy topic
//! that reshaping was as much work as the parse.
//!
//! Only the common case is read this way: a JSON object whose keys are all
//! fields of the schema, each once. Anything else (an unknown or repeated
//! key, a value the schema refuses, bad JSON) gives `None`, and the general
//! way reads the payload again: it decides what such a payload means and
//! words the error, so both ways always agree.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use sluice_api::json::Schemaless;
use sluice_api::schema::{Field, Schema, SchemaType};
use sluice_api::Value;

use super::coerce;

/// Structs with more fields than this take the general way (which fields
/// were seen is kept in one word).
const MAX_FIELDS: usize = 64;

/// `payload` as a value of `schema`, when `schema` is a struct and the
/// payload is read without surprises; `None` otherwise.
pub(super) fn decode_struct(payload: &str, schema: &Schema) -> Option<Value> {
    let seed = StructSeed::of(schema)?;
    let mut de = serde_json::Deserializer::from_str(payload);
    let value = seed.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

/// Gives up on the fast way; the message is never shown.
fn give_up<E: de::Error>() -> E {
    E::custom("not read by schema")
}

struct StructSeed<'s> {
    schema: &'s Schema,
    fields: &'s [Field],
}

impl<'s> StructSeed<'s> {
    fn of(schema: &'s Schema) -> Option<Self> {
        match &schema.schema_type {
            SchemaType::Struct(fields)
                if fields.len() <= MAX_FIELDS && schema.logical_type().is_none() =>
            {
                Some(Self { schema, fields })
            }
            _ => None,
        }
    }
}

impl<'de> DeserializeSeed<'de> for StructSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StructSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        coerce(Value::Null, self.schema).map_err(|_| give_up())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(self.fields.len());
        values.resize_with(self.fields.len(), || Value::Null);
        let mut seen = 0u64;
        let mut next = 0;
        while let Some(index) = map.next_key_seed(FieldIndex {
            fields: self.fields,
            next,
        })? {
            let Some(i) = index else {
                return Err(give_up());
            };
            let bit = 1u64 << i;
            if seen & bit != 0 {
                return Err(give_up());
            }
            seen |= bit;
            values[i] = map.next_value_seed(FieldSeed(&self.fields[i].schema))?;
            next = i + 1;
        }
        // A field the object lacks is read as null, as the general way does.
        for (i, (slot, field)) in values.iter_mut().zip(self.fields).enumerate() {
            if seen & (1u64 << i) == 0 {
                *slot = coerce(Value::Null, &field.schema).map_err(|_| give_up())?;
            }
        }
        Ok(Value::Struct(values))
    }
}

/// One field's value: a nested struct read the same way, anything else
/// parsed as schemaless JSON and then shaped to the field's schema.
struct FieldSeed<'s>(&'s Schema);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if let Some(nested) = StructSeed::of(self.0) {
            return nested.deserialize(d);
        }
        let Schemaless(value) = serde::Deserialize::deserialize(d)?;
        coerce(value, self.0).map_err(|_| give_up())
    }
}

/// A key as the index of the field it names (`None`: no such field). Keys
/// mostly come in the schema's order, so the field after the last one is
/// tried first.
struct FieldIndex<'s> {
    fields: &'s [Field],
    next: usize,
}

impl<'de> DeserializeSeed<'de> for FieldIndex<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldIndex<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        if self.fields.get(self.next).is_some_and(|f| f.name == key) {
            return Ok(Some(self.next));
        }
        Ok(self.fields.iter().position(|f| f.name == key))
    }
}

#[cfg(test)]
mod tests {
    use sluice_api::schema::primitives;
    use sluice_api::{Decimal, SchemaRef};

    use super::*;

    fn schema() -> SchemaRef {
        let mut defaulted = Schema::new(SchemaType::Int32).optional();
        defaulted.default = Some(Value::Int32(42));
        let inner = Schema::struct_of([
            ("x", primitives::int64()),
            ("y", primitives::optional_string()),
        ])
        .optional()
        .into_ref();
        Schema::struct_of([
            ("id", primitives::int32()),
            ("name", primitives::optional_string()),
            ("amount", Schema::decimal(2).into_ref()),
            ("blob", primitives::bytes()),
            ("defaulted", defaulted.into_ref()),
            ("inner", inner.clone()),
            (
                "list",
                Schema::new(SchemaType::Array(inner)).optional().into_ref(),
            ),
            ("f", primitives::float64()),
        ])
        .into_ref()
    }

    /// What the general way makes of `payload`: parse, then shape.
    fn general(payload: &str, schema: &Schema) -> Result<Value, String> {
        let value = sluice_api::json::parse_schemaless(payload).map_err(|e| e.to_string())?;
        coerce(value, schema)
    }

    #[test]
    fn reads_what_the_general_way_reads_and_gives_up_where_it_would_differ() {
        let s = schema();
        let read = [
            r#"{"id":1,"name":"a","amount":"MDk=","blob":"AAH/","defaulted":null,"inner":{"x":5,"y":null},"list":[{"x":1}],"f":1.5}"#,
            // Another key order, spaces, a missing optional field, escapes.
            r#" { "f" : 2 , "id" : -3, "amount": 12.5, "blob": "", "inner": null, "n\u0061me": "\"q\"" } "#,
            r#"{"id":7,"amount":1,"blob":"","f":"-Infinity","inner":{"y":"z","x":9}}"#,
        ];
        for payload in read {
            let fast = decode_struct(payload, &s).unwrap_or_else(|| panic!("{payload}"));
            assert_eq!(Ok(fast), general(payload, &s), "{payload}");
        }
        let fast = decode_struct(read[0], &s).unwrap();
        let Value::Struct(fields) = &fast else {
            panic!("{fast:?}")
        };
        assert_eq!(fields[2], Value::Decimal(Decimal::from_i128(12345, 2)));
        assert_eq!(fields[4], Value::Int32(42));
        assert_eq!(fields[5], Value::Struct(vec![Value::Int64(5), Value::Null]));
        let unread = [
            // Unknown and repeated keys: the general way decides.
            r#"{"id":1,"amount":1,"blob":"","f":1,"extra":true}"#,
            r#"{"id":1,"id":2,"amount":1,"blob":"","f":1}"#,
            // Values the schema refuses, and a required field missing.
            r#"{"id":"x","amount":1,"blob":"","f":1}"#,
            r#"{"id":1,"amount":1,"blob":"","f":1,"inner":[1]}"#,
            r#"{"id":1,"amount":1,"blob":"","f":1,"inner":{"y":"no x"}}"#,
            r#"{"amount":1,"blob":"","f":1}"#,
            r#"{"id":3000000000,"amount":1,"blob":"","f":1}"#,
            // Not one object.
            r#"[1]"#,
            r#"{"id":1,"amount":1,"blob":"","f":1} x"#,
            r#"{"id":1,"amount":1,"blob":"","f":1"#,
        ];
        for payload in unread {
            assert_eq!(decode_struct(payload, &s), None, "{payload}");
        }
        // Where the general way reads what the fast way gave up on, it
        // reads it as it always did (the first of repeated keys wins).
        assert!(general(unread[0], &s).is_ok());
        assert!(general(unread[1], &s).is_ok());
        assert!(general(unread[2], &s).is_err());
        // Not a struct schema: never the fast way.
        assert_eq!(decode_struct("1", &primitives::int32()), None);
    }
}
