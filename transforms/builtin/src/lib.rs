//! `sluice-transforms`: Kafka Connect's single-message transforms and
//! predicates (all of Connect 4.x's built-ins), Debezium's
//! `ExtractNewRecordState` and `ByLogicalTableRouter`, and Confluent's JSONPath
//! `Filter`, under their Java class names so existing configs work unchanged.
//! Each behaves as the Java class does, down to its error messages, on data
//! with a schema (structs) and without (maps).
//!
//! Depends only on `sluice-api` (plus `regex` and `serde_json`); performs no
//! I/O and must not depend on the runtime.

mod by_logical_table_router;
mod cast;
mod confluent_filter;
mod date_format;
#[cfg(test)]
mod documented_examples;
mod extract_field;
mod extract_new_record_state;
mod field_path;
mod filter;
mod flatten;
mod headers;
mod hoist_field;
mod insert_field;
mod java;
mod java_regex;
mod json_path;
mod literal;
mod mask_field;
mod predicates;
mod replace_field;
mod requirements;
mod routers;
mod schema_util;
mod set_schema_metadata;
mod side;
mod timestamp_converter;
mod validate;
mod value_to_key;

use sluice_api::{PredicatePlugin, TransformPlugin};

/// Every transform this crate provides.
pub fn transforms() -> Vec<TransformPlugin> {
    let mut all = vec![
        filter::plugin(),
        extract_new_record_state::plugin(),
        value_to_key::plugin(),
        headers::drop_headers(),
        headers::insert_header(),
        routers::regex_router(),
        routers::timestamp_router(),
        by_logical_table_router::plugin(),
    ];
    all.extend(insert_field::plugins());
    all.extend(replace_field::plugins());
    all.extend(cast::plugins());
    all.extend(extract_field::plugins());
    all.extend(flatten::plugins());
    all.extend(headers::plugins());
    all.extend(hoist_field::plugins());
    all.extend(mask_field::plugins());
    all.extend(set_schema_metadata::plugins());
    all.extend(timestamp_converter::plugins());
    all.extend(confluent_filter::plugins());
    all
}

/// Every predicate this crate provides.
pub fn predicates() -> Vec<PredicatePlugin> {
    vec![
        predicates::topic_name_matches(),
        predicates::has_header_key(),
        predicates::record_is_tombstone(),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_api::schema::{primitives, Schema};
    use sluice_api::{Record, Value};

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn make(name: &str, pairs: &[(&str, &str)]) -> Box<dyn sluice_api::Transform> {
        let plugin = transforms().into_iter().find(|t| t.name == name).unwrap();
        (plugin.create)(&config(pairs)).unwrap()
    }

    fn struct_record() -> Record {
        let schema = Schema::struct_of([
            ("id", primitives::int32()),
            ("secret", primitives::string()),
        ])
        .into_ref();
        Record {
            topic: "orders".into(),
            partition: Some(3),
            offset: Some(42),
            value_schema: Some(schema),
            value: Value::Struct(vec![Value::Int32(1), "s3cr3t".into()]),
            ..Record::default()
        }
    }

    #[test]
    fn insert_field_extends_structs_and_maps() {
        let mut t = make(
            "InsertField$Value",
            &[
                ("topic.field", "t"),
                ("offset.field", "o"),
                ("static.field", "env"),
                ("static.value", "prod"),
            ],
        );
        let out = t.apply(struct_record()).unwrap().unwrap();
        let schema = out.value_schema.unwrap();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "secret", "t", "o", "env"]);
        assert_eq!(
            out.value,
            Value::Struct(vec![
                Value::Int32(1),
                "s3cr3t".into(),
                "orders".into(),
                Value::Int64(42),
                "prod".into()
            ])
        );
        let map = Record {
            value: Value::Map(vec![("a".into(), Value::Int64(1))]),
            offset: Some(7),
            ..Record::new("x", Value::Null, Value::Null)
        };
        let out = t.apply(map.clone()).unwrap().unwrap();
        assert_eq!(out.value.map_get("t"), Some(&Value::from("x")));
        assert_eq!(out.value.map_get("o"), Some(&Value::Int64(7)));
        // An offset exists only on a sink record, as in Connect.
        let err = t
            .apply(Record {
                offset: None,
                ..map
            })
            .unwrap_err();
        assert!(
            err.message().starts_with("Only SinkRecord supported"),
            "{err}"
        );
        let err = t
            .apply(Record {
                offset: Some(1),
                ..Record::new("x", Value::Null, Value::Int64(1))
            })
            .unwrap_err();
        assert_eq!(
            err.message(),
            "Only Map objects supported in absence of schema for [field insertion], found: java.lang.Long"
        );
    }

    #[test]
    fn replace_field_drops_and_renames() {
        let mut t = make(
            "ReplaceField$Value",
            &[("exclude", "secret"), ("renames", "id:order_id")],
        );
        let out = t.apply(struct_record()).unwrap().unwrap();
        assert_eq!(out.value_schema.unwrap().fields()[0].name, "order_id");
        assert_eq!(out.value, Value::Struct(vec![Value::Int32(1)]));
        let plugin = transforms()
            .into_iter()
            .find(|t| t.name == "ReplaceField$Value")
            .unwrap();
        assert!((plugin.config_def)()
            .validate(&config(&[("renames", "nocolon")]))
            .is_err());
    }

    /// A Debezium envelope around `{id, name}` rows.
    fn change(op: &str, before: Option<(i32, &str)>, after: Option<(i32, &str)>) -> Record {
        let row = Schema::struct_of([("id", primitives::int32()), ("name", primitives::string())])
            .named("db.s.t.Value")
            .optional()
            .into_ref();
        let source = Schema::struct_of([("table", primitives::string())]).into_ref();
        let envelope = Schema::struct_of([
            ("before", row.clone()),
            ("after", row),
            ("source", source),
            ("op", primitives::string()),
            ("ts_ms", primitives::int64()),
        ])
        .into_ref();
        let row = |r: Option<(i32, &str)>| {
            r.map_or(Value::Null, |(id, n)| {
                Value::Struct(vec![Value::Int32(id), n.into()])
            })
        };
        Record {
            value_schema: Some(envelope),
            value: Value::Struct(vec![
                row(before),
                row(after),
                Value::Struct(vec!["t".into()]),
                op.into(),
                Value::Int64(7),
            ]),
            ..Record::new("db.s.t", Value::Null, Value::Null)
        }
    }

    #[test]
    fn extract_new_record_state_unwraps_debezium_envelopes() {
        let mut t = make("ExtractNewRecordState", &[]);
        let out = t.apply(change("u", None, Some((1, "a")))).unwrap().unwrap();
        assert_eq!(out.value, Value::Struct(vec![Value::Int32(1), "a".into()]));
        assert_eq!(
            out.value_schema.unwrap().name.as_deref(),
            Some("db.s.t.Value")
        );
        assert!(t
            .apply(change("d", Some((1, "a")), None))
            .unwrap()
            .is_none());
        let tombstone = Record::new("db.s.t", Value::Int32(1), Value::Null);
        assert!(t.apply(tombstone.clone()).unwrap().is_none());

        let mut t = make(
            "ExtractNewRecordState",
            &[
                ("delete.handling.mode", "rewrite"),
                ("add.fields", "op,table"),
                ("drop.tombstones", "false"),
            ],
        );
        let out = t.apply(change("d", Some((1, "a")), None)).unwrap().unwrap();
        let names: Vec<_> = out
            .value_schema
            .unwrap()
            .fields()
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(names, ["id", "name", "__op", "__table", "__deleted"]);
        assert_eq!(
            out.value,
            Value::Struct(vec![
                Value::Int32(1),
                "a".into(),
                "d".into(),
                "t".into(),
                "true".into()
            ])
        );
        assert!(t.apply(tombstone).unwrap().is_some());
        // Not a change event: untouched.
        let plain = struct_record();
        assert_eq!(t.apply(plain.clone()).unwrap().unwrap(), plain);
    }

    #[test]
    fn filter_with_predicates() {
        let mut f = make("Filter", &[]);
        assert!(f.apply(struct_record()).unwrap().is_none());
        let p = predicates()
            .into_iter()
            .find(|p| p.name == "TopicNameMatches")
            .unwrap();
        let m = (p.create)(&config(&[("pattern", "ord.*")])).unwrap();
        assert!(m.test(&struct_record()));
        let m = (p.create)(&config(&[("pattern", "ord")])).unwrap();
        assert!(!m.test(&struct_record()), "the whole name must match");
        let tomb = predicates()
            .into_iter()
            .find(|p| p.name == "RecordIsTombstone")
            .unwrap();
        assert!((tomb.create)(&config(&[])).unwrap().test(&Record::new(
            "t",
            Value::Null,
            Value::Null
        )));
    }
}
