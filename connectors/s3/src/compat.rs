//! `schema.compatibility`, as Confluent's storage connectors apply it when a
//! record's value schema differs from the open file's:
//! - NONE: every change starts a new file;
//! - BACKWARD / FULL: a newer version starts a new file; a record of an older
//!   version is projected onto the file's (newer) schema;
//! - FORWARD: an older version starts a new file; a newer record is projected
//!   onto the file's (older) schema.
//!
//! Projection is by field name: fields the target lacks are dropped, fields the
//! record lacks take the target's default, or null when optional. When that is
//! impossible, or the schemas carry no versions, the file is cut instead.

use sluice_api::schema::{Schema, SchemaType};
use sluice_api::{SchemaRef, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    None,
    Backward,
    Forward,
    Full,
}

impl Compatibility {
    pub fn parse(name: &str) -> Self {
        match name.to_ascii_uppercase().as_str() {
            "BACKWARD" => Compatibility::Backward,
            "FORWARD" => Compatibility::Forward,
            "FULL" => Compatibility::Full,
            _ => Compatibility::None,
        }
    }

    /// Whether a record of schema `incoming` should be projected onto the open
    /// file's `current` schema (rather than start a new file).
    pub fn projects(&self, current: &Schema, incoming: &Schema) -> bool {
        let (Some(cur), Some(inc)) = (current.version, incoming.version) else {
            return false;
        };
        match self {
            Compatibility::None => false,
            Compatibility::Backward | Compatibility::Full => inc < cur,
            Compatibility::Forward => inc > cur,
        }
    }
}

/// Projects a value of schema `from` onto schema `to`; `None` when it cannot be.
pub fn project(value: Value, from: &Schema, to: &SchemaRef) -> Option<Value> {
    match (&to.schema_type, &from.schema_type, value) {
        (SchemaType::Struct(target), SchemaType::Struct(_), Value::Struct(mut values)) => {
            let mut out = Vec::with_capacity(target.len());
            for f in target {
                let v = match from.field_index(&f.name) {
                    Some(i) => {
                        let v = std::mem::take(values.get_mut(i)?);
                        let source = &from.fields().get(i)?.schema;
                        project(v, source, &f.schema)?
                    }
                    None => match &f.schema.default {
                        Some(d) => d.clone(),
                        None if f.schema.optional => Value::Null,
                        None => return None,
                    },
                };
                out.push(v);
            }
            Some(Value::Struct(out))
        }
        (_, _, Value::Null) if to.optional => Some(Value::Null),
        (t, f, v) if t == f => Some(v),
        // Widening, as Avro-style evolution allows.
        (SchemaType::Int64, SchemaType::Int32 | SchemaType::Int16 | SchemaType::Int8, v) => {
            v.as_i64().map(Value::Int64)
        }
        (SchemaType::Float64, SchemaType::Float32, Value::Float32(x)) => {
            Some(Value::Float64(f64::from(x)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::schema::primitives;

    fn v(version: i32, fields: Vec<(&str, SchemaRef)>) -> SchemaRef {
        let mut s = Schema::struct_of(fields);
        s.version = Some(version);
        s.into_ref()
    }

    #[test]
    fn backward_projects_older_records_onto_the_newer_schema() {
        let old = v(1, vec![("id", primitives::int32())]);
        let mut email = Schema::new(SchemaType::String).optional();
        email.default = Some(Value::from("none"));
        let new = v(
            2,
            vec![("id", primitives::int64()), ("email", email.into_ref())],
        );
        assert!(Compatibility::Backward.projects(&new, &old));
        assert!(
            !Compatibility::Backward.projects(&old, &new),
            "a newer version starts a new file"
        );
        assert!(!Compatibility::None.projects(&new, &old));
        let projected = project(Value::Struct(vec![Value::Int32(7)]), &old, &new).unwrap();
        assert_eq!(
            projected,
            Value::Struct(vec![Value::Int64(7), Value::from("none")])
        );
    }

    #[test]
    fn forward_drops_added_fields_and_refuses_missing_required_ones() {
        let old = v(
            1,
            vec![("id", primitives::int32()), ("name", primitives::string())],
        );
        let new = v(
            2,
            vec![
                ("id", primitives::int32()),
                ("name", primitives::string()),
                ("extra", primitives::string()),
            ],
        );
        assert!(Compatibility::Forward.projects(&old, &new));
        let p = project(
            Value::Struct(vec![Value::Int32(1), "a".into(), "x".into()]),
            &new,
            &old,
        )
        .unwrap();
        assert_eq!(p, Value::Struct(vec![Value::Int32(1), "a".into()]));
        let only_id = v(0, vec![("id", primitives::int32())]);
        assert!(
            project(Value::Struct(vec![Value::Int32(1)]), &only_id, &old).is_none(),
            "name is required"
        );
        let unversioned = Schema::struct_of([("id", primitives::int32())]).into_ref();
        assert!(!Compatibility::Full.projects(&old, &unversioned));
    }
}
