//! Schemaless JSON text straight into Arrow columns, with no Connect value in
//! between: the common shape of event streams (an object of scalars) decoded
//! by one pass of serde_json's parser into one builder per field.
//!
//! It takes a row group only when the result is certain to be what the value
//! path (`parse_schemaless`, then `infer`/`merge` and `columns::build`) makes
//! of it: the file's schema is a flat struct of the types schemaless JSON
//! infers (Int64, Float64, Boolean, String, or a field seen only as null),
//! and every row is an object whose keys are all fields of it, none twice,
//! each value of its field's type (an integer in a Float64 field is widened,
//! as `build` widens it) or null. Anything else (a new field, a type that
//! changes, a nested value, a number in a String field, which the value path
//! writes as JSON text) returns `None`, and the caller parses the rows into
//! values: slower, same file.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use sluice_api::schema::{Schema, SchemaType};

use super::parquet::NULL_MARK;
use crate::file_set::Row;

/// One field's column being built.
enum Column {
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Utf8(StringBuilder),
    /// A field only ever seen as null (inferred as a null-marked string).
    Null(StringBuilder),
}

impl Column {
    /// The column of an inferred field, if the direct path takes it.
    fn of(s: &Schema, rows: usize) -> Option<Self> {
        if !s.optional || s.default.is_some() {
            return None;
        }
        Some(match (&s.schema_type, s.name.as_deref()) {
            (SchemaType::Int64, None) => Column::Int64(Int64Builder::with_capacity(rows)),
            (SchemaType::Float64, None) => Column::Float64(Float64Builder::with_capacity(rows)),
            (SchemaType::Boolean, None) => Column::Boolean(BooleanBuilder::with_capacity(rows)),
            (SchemaType::String, None) => {
                Column::Utf8(StringBuilder::with_capacity(rows, rows * 16))
            }
            (SchemaType::String, Some(NULL_MARK)) => Column::Null(StringBuilder::new()),
            _ => return None,
        })
    }

    fn append_null(&mut self) {
        match self {
            Column::Int64(b) => b.append_null(),
            Column::Float64(b) => b.append_null(),
            Column::Boolean(b) => b.append_null(),
            Column::Utf8(b) | Column::Null(b) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Column::Int64(mut b) => Arc::new(b.finish()),
            Column::Float64(mut b) => Arc::new(b.finish()),
            Column::Boolean(mut b) => Arc::new(b.finish()),
            Column::Utf8(mut b) | Column::Null(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Decodes `rows` into the columns of `schema`, or `None` when the direct
/// path does not take them (see the module's comment).
pub(super) fn decode(schema: &Schema, rows: &[Row]) -> Option<Vec<ArrayRef>> {
    let SchemaType::Struct(fields) = &schema.schema_type else {
        return None;
    };
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    let mut columns = fields
        .iter()
        .map(|f| Column::of(&f.schema, rows.len()))
        .collect::<Option<Vec<_>>>()?;
    let mut seen = vec![false; fields.len()];
    for row in rows {
        let Row::Json { text, .. } = row else {
            return None;
        };
        let mut parser = serde_json::Deserializer::from_slice(text);
        let object = RowSeed {
            names: &names,
            columns: &mut columns,
            seen: &mut seen,
        };
        object.deserialize(&mut parser).ok()?;
        parser.end().ok()?;
        for (column, seen) in columns.iter_mut().zip(seen.iter_mut()) {
            if !std::mem::take(seen) {
                column.append_null();
            }
        }
    }
    Some(columns.into_iter().map(Column::finish).collect())
}

/// Why a row is not taken; never shown (the caller falls back).
fn refuse<E: de::Error>() -> E {
    E::custom("not for the direct path")
}

/// One row: an object whose values go to their fields' columns.
struct RowSeed<'a> {
    names: &'a [&'a str],
    columns: &'a mut [Column],
    seen: &'a mut [bool],
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Fields usually come in the schema's order: look there first.
        let mut next = 0;
        while let Some(i) = map.next_key_seed(KeySeed {
            names: self.names,
            hint: next,
        })? {
            if std::mem::replace(&mut self.seen[i], true) {
                return Err(refuse());
            }
            map.next_value_seed(CellSeed(&mut self.columns[i]))?;
            next = i + 1;
        }
        Ok(())
    }
}

/// A key: the index of its field.
struct KeySeed<'a> {
    names: &'a [&'a str],
    hint: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = usize;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<usize, E> {
        if self.names.get(self.hint) == Some(&key) {
            return Ok(self.hint);
        }
        self.names.iter().position(|n| *n == key).ok_or_else(refuse)
    }
}

/// A value, appended to its field's column if it has the column's type.
struct CellSeed<'a>(&'a mut Column);

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.append_null();
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        match self.0 {
            Column::Boolean(b) => b.append_value(v),
            _ => return Err(refuse()),
        }
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        match self.0 {
            Column::Int64(b) => b.append_value(v),
            Column::Float64(b) => b.append_value(v as f64),
            _ => return Err(refuse()),
        }
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        if let Ok(v) = i64::try_from(v) {
            return self.visit_i64(v);
        }
        // Past i64::MAX the JSON converter reads a double, as Connect does.
        match self.0 {
            Column::Float64(b) => b.append_value(v as f64),
            _ => return Err(refuse()),
        }
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        match self.0 {
            Column::Float64(b) => b.append_value(v),
            _ => return Err(refuse()),
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self.0 {
            Column::Utf8(b) => b.append_value(v),
            _ => return Err(refuse()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(fields: &[(&str, SchemaType)]) -> Schema {
        Schema::struct_of(fields.iter().map(|(n, t)| {
            (
                (*n).to_owned(),
                Schema::new(t.clone()).optional().into_ref(),
            )
        }))
        .optional()
    }

    #[test]
    fn objects_of_scalars_go_straight_into_columns() {
        let schema = flat(&[
            ("id", SchemaType::String),
            ("n", SchemaType::Int64),
            ("x", SchemaType::Float64),
            ("ok", SchemaType::Boolean),
        ]);
        let columns = decode(
            &schema,
            &Row::json_texts(&[
                r#"{"id": "a", "n": 1, "x": 1.5, "ok": true}"#,
                r#"{"ok": null, "x": 2, "n": -3, "id": "b\u00e9"}"#,
                r#"{"id": "c"}"#,
            ]),
        )
        .expect("taken");
        assert_eq!(columns.len(), 4);
        assert!(columns.iter().all(|c| c.len() == 3));
        assert_eq!(columns[2].null_count(), 1);
        assert_eq!(columns[3].null_count(), 2);
    }

    #[test]
    fn anything_the_value_path_reads_differently_is_refused() {
        let schema = flat(&[("a", SchemaType::Int64), ("s", SchemaType::String)]);
        for text in [
            r#"{"a": 1.5}"#,
            r#"{"a": 18446744073709551615}"#,
            r#"{"s": 3}"#,
            r#"{"a": 1, "b": 2}"#,
            r#"{"a": 1, "a": 2}"#,
            r#"{"a": {"x": 1}}"#,
            r#"{"a": [1]}"#,
            "[1]",
            "42",
        ] {
            assert!(
                decode(&schema, &Row::json_texts(&[text])).is_none(),
                "{text}"
            );
        }
        let records = vec![Row::Record(Box::default())];
        assert!(decode(&schema, &records).is_none());
        let nested = Schema::struct_of([("o", flat(&[("a", SchemaType::Int64)]).into_ref())]);
        assert!(decode(&nested, &Row::json_texts(&[r#"{"o": {"a": 1}}"#])).is_none());
    }
}
