//! The examples in Kafka Connect's, Debezium's and Confluent's documentation
//! of each transform, run through sluice's implementation. The differential
//! test (`tests/transforms_differential.rs`) compares the same transforms with
//! the Java classes on many more inputs.

use std::collections::BTreeMap;

use sluice_api::schema::{primitives, Schema};
use sluice_api::{Record, SchemaRef, Transform, Value};

fn make(name: &str, pairs: &[(&str, &str)]) -> Box<dyn Transform> {
    let plugin = crate::transforms()
        .into_iter()
        .find(|t| t.name == name || t.aliases.contains(&name))
        .unwrap_or_else(|| panic!("no transform {name}"));
    let config: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    (plugin.create)(&config).unwrap()
}

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| (Value::from(*k), v.clone()))
            .collect(),
    )
}

fn with_value(schema: Option<SchemaRef>, value: Value) -> Record {
    Record {
        partition: Some(0),
        offset: Some(42),
        timestamp: Some(1_512_086_400_000), // 2017-12-01T00:00:00Z
        value_schema: schema,
        value,
        ..Record::new("orders", Value::Null, Value::Null)
    }
}

fn run(t: &mut Box<dyn Transform>, r: Record) -> Record {
    t.apply(r).unwrap().expect("kept")
}

fn names(s: &SchemaRef) -> Vec<String> {
    s.fields().iter().map(|f| f.name.clone()).collect()
}

#[test]
fn file_source_example_hoists_lines_and_inserts_a_static_field() {
    // Kafka's user guide: MakeMap (HoistField) then InsertSource (InsertField).
    let mut hoist = make("HoistField$Value", &[("field", "line")]);
    let mut insert = make(
        "InsertField$Value",
        &[
            ("static.field", "data_source"),
            ("static.value", "test-file-source"),
        ],
    );
    let r = run(
        &mut hoist,
        with_value(Some(primitives::string()), "foo".into()),
    );
    let r = run(&mut insert, r);
    assert_eq!(
        names(r.value_schema.as_ref().unwrap()),
        ["line", "data_source"]
    );
    assert_eq!(
        r.value,
        Value::Struct(vec!["foo".into(), "test-file-source".into()])
    );
}

#[test]
fn cast_example() {
    let schema = Schema::struct_of([
        ("field1", primitives::int64()),
        ("field2", primitives::int32()),
    ])
    .into_ref();
    let mut t = make("Cast$Value", &[("spec", "field1:int32,field2:string")]);
    let r = run(
        &mut t,
        with_value(
            Some(schema),
            Value::Struct(vec![Value::Int64(7), Value::Int32(8)]),
        ),
    );
    assert_eq!(r.value, Value::Struct(vec![Value::Int32(7), "8".into()]));
    let mut whole = make("Cast$Value", &[("spec", "string")]);
    let r = run(&mut whole, with_value(None, Value::Float64(1.5)));
    assert_eq!(r.value, Value::from("1.5"));
}

#[test]
fn extract_field_example() {
    let mut t = make("ExtractField$Key", &[("field", "id")]);
    let r = Record {
        key: map(&[("id", Value::Int64(42)), ("name", "x".into())]),
        ..Record::new("t", Value::Null, Value::Null)
    };
    assert_eq!(run(&mut t, r).key, Value::Int64(42));
}

#[test]
fn flatten_example() {
    let name = map(&[
        ("first", "David".into()),
        ("middle", Value::Null),
        ("last", "Wong".into()),
    ]);
    let content = map(&[("id", Value::Int64(42)), ("name", name)]);
    let mut t = make("Flatten$Value", &[]);
    let r = run(&mut t, with_value(None, map(&[("content", content)])));
    assert_eq!(
        r.value,
        map(&[
            ("content.id", Value::Int64(42)),
            ("content.name.first", "David".into()),
            ("content.name.middle", Value::Null),
            ("content.name.last", "Wong".into()),
        ])
    );
    let inner = Schema::struct_of([("id", primitives::int32())])
        .optional()
        .into_ref();
    let outer = Schema::struct_of([("content", inner)]).into_ref();
    let mut t = make("Flatten$Value", &[("delimiter", "_")]);
    let r = run(
        &mut t,
        with_value(
            Some(outer),
            Value::Struct(vec![Value::Struct(vec![Value::Int32(1)])]),
        ),
    );
    let schema = r.value_schema.unwrap();
    assert_eq!(names(&schema), ["content_id"]);
    assert!(
        schema.fields()[0].schema.optional,
        "optional through its parent"
    );
}

#[test]
fn header_transforms_examples() {
    let schema =
        Schema::struct_of([("id", primitives::int32()), ("ts", primitives::int64())]).into_ref();
    let value = Value::Struct(vec![Value::Int32(1), Value::Int64(99)]);
    let mut t = make(
        "HeaderFrom$Value",
        &[
            ("fields", "id,ts"),
            ("headers", "myId,myTs"),
            ("operation", "move"),
        ],
    );
    let r = run(&mut t, with_value(Some(schema), value));
    assert_eq!(r.value, Value::Struct(vec![]));
    assert_eq!(
        r.headers.last("myId").unwrap().value.as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        r.headers.last("myTs").unwrap().value.as_deref(),
        Some(&b"99"[..])
    );
    let mut t = make(
        "InsertHeader",
        &[("header", "app.id"), ("value.literal", "best-app")],
    );
    let r = run(&mut t, r);
    assert_eq!(
        r.headers.last("app.id").unwrap().value.as_deref(),
        Some(&b"best-app"[..])
    );
    let mut t = make("DropHeaders", &[("headers", "app.id,myTs")]);
    let r = run(&mut t, r);
    assert!(r.headers.last("app.id").is_none() && r.headers.last("myTs").is_none());
    assert!(r.headers.last("myId").is_some());
}

#[test]
fn mask_field_example() {
    let mut t = make("MaskField$Value", &[("fields", "string_field,int_field")]);
    let r = run(
        &mut t,
        with_value(
            None,
            map(&[
                ("string_field", "secret".into()),
                ("int_field", Value::Int64(5)),
            ]),
        ),
    );
    assert_eq!(
        r.value,
        map(&[("string_field", "".into()), ("int_field", Value::Int64(0))])
    );
    let mut t = make(
        "MaskField$Value",
        &[("fields", "ssn"), ("replacement", "***-***-****")],
    );
    let r = run(
        &mut t,
        with_value(None, map(&[("ssn", "123-45-6789".into())])),
    );
    assert_eq!(r.value, map(&[("ssn", "***-***-****".into())]));
}

#[test]
fn routers_examples() {
    let mut t = make(
        "RegexRouter",
        &[
            ("regex", "([^.]+)\\.([^.]+)\\.([^.]+)"),
            ("replacement", "$3"),
        ],
    );
    let r = run(
        &mut t,
        Record::new("hostname.db.table", Value::Null, Value::Null),
    );
    assert_eq!(&*r.topic, "table");
    let mut t = make(
        "TimestampRouter",
        &[
            ("topic.format", "foo-${topic}-${timestamp}"),
            ("timestamp.format", "YYYYMM"),
        ],
    );
    let r = run(&mut t, with_value(None, Value::Null));
    assert_eq!(&*r.topic, "foo-orders-201712");
    let mut t = make(
        "io.debezium.transforms.ByLogicalTableRouter",
        &[
            ("topic.regex", "(.*)customers_shard(.*)"),
            ("topic.replacement", "$1customers_all_shards"),
        ],
    );
    let key = Schema::struct_of([("id", primitives::int32())])
        .named("myserver.mydb.customers_shard1.Key")
        .into_ref();
    let r = Record {
        key_schema: Some(key),
        key: Value::Struct(vec![Value::Int32(1)]),
        ..Record::new("myserver.mydb.customers_shard1", Value::Null, Value::Null)
    };
    let r = run(&mut t, r);
    assert_eq!(&*r.topic, "myserver.mydb.customers_all_shards");
    let key = r.key_schema.unwrap();
    assert_eq!(
        key.name.as_deref(),
        Some("myserver.mydb.customers_all_shards.Key")
    );
    assert_eq!(names(&key), ["id", "__dbz__physicalTableIdentifier"]);
    assert_eq!(
        r.key,
        Value::Struct(vec![
            Value::Int32(1),
            "myserver.mydb.customers_shard1".into()
        ])
    );
}

#[test]
fn replace_field_example() {
    let schema = Schema::struct_of([
        ("foo", primitives::string()),
        ("bar", primitives::int32()),
        ("baz", primitives::boolean()),
    ])
    .into_ref();
    let value = Value::Struct(vec!["a".into(), Value::Int32(1), Value::Boolean(true)]);
    let mut t = make(
        "ReplaceField$Value",
        &[("exclude", "baz"), ("renames", "foo:c1,bar:c2")],
    );
    let r = run(&mut t, with_value(Some(schema), value));
    assert_eq!(names(r.value_schema.as_ref().unwrap()), ["c1", "c2"]);
    assert_eq!(r.value, Value::Struct(vec!["a".into(), Value::Int32(1)]));
}

#[test]
fn set_schema_metadata_example() {
    let mut t = make(
        "SetSchemaMetadata$Value",
        &[("schema.name", "order-value"), ("schema.version", "2")],
    );
    let schema = Schema::struct_of([("id", primitives::int32())]).into_ref();
    let r = run(
        &mut t,
        with_value(Some(schema), Value::Struct(vec![Value::Int32(1)])),
    );
    let s = r.value_schema.unwrap();
    assert_eq!(
        (s.name.as_deref(), s.version),
        (Some("order-value"), Some(2))
    );
}

#[test]
fn timestamp_converter_example() {
    let schema = Schema::struct_of([("ts", Schema::timestamp().into_ref())]).into_ref();
    let mut t = make(
        "TimestampConverter$Value",
        &[
            ("field", "ts"),
            ("format", "yyyy-MM-dd"),
            ("target.type", "string"),
        ],
    );
    let r = run(
        &mut t,
        with_value(
            Some(schema),
            Value::Struct(vec![Value::Int64(1_512_086_400_000)]),
        ),
    );
    assert_eq!(r.value, Value::Struct(vec!["2017-12-01".into()]));
    let mut t = make(
        "TimestampConverter$Value",
        &[("target.type", "Timestamp"), ("format", "yyyy-MM-dd")],
    );
    let r = run(
        &mut t,
        with_value(Some(primitives::string()), "2017-12-01".into()),
    );
    assert_eq!(r.value, Value::Int64(1_512_086_400_000));
    assert_eq!(
        r.value_schema.unwrap().name.as_deref(),
        Some(sluice_api::schema::TIMESTAMP_NAME)
    );
}

#[test]
fn value_to_key_example() {
    let schema = Schema::struct_of([
        ("userId", primitives::int32()),
        ("city", primitives::string()),
        ("state", primitives::string()),
        ("other", primitives::string()),
    ])
    .into_ref();
    let mut t = make("ValueToKey", &[("fields", "userId,city,state")]);
    let r = run(
        &mut t,
        with_value(
            Some(schema),
            Value::Struct(vec![Value::Int32(1), "Oslo".into(), "O".into(), "x".into()]),
        ),
    );
    assert_eq!(
        names(r.key_schema.as_ref().unwrap()),
        ["userId", "city", "state"]
    );
    assert_eq!(
        r.key,
        Value::Struct(vec![Value::Int32(1), "Oslo".into(), "O".into()])
    );
}

#[test]
fn confluent_filter_example() {
    let mut keep = make(
        "io.confluent.connect.transforms.Filter$Value",
        &[
            ("filter.condition", "$[?(@.status == 'active')]"),
            ("filter.type", "include"),
            ("missing.or.null.behavior", "exclude"),
        ],
    );
    let rec = |status: Option<&str>| {
        let mut entries = vec![("id", Value::Int64(1))];
        if let Some(s) = status {
            entries.push(("status", s.into()));
        }
        with_value(None, map(&entries))
    };
    assert!(keep.apply(rec(Some("active"))).unwrap().is_some());
    assert!(keep.apply(rec(Some("closed"))).unwrap().is_none());
    assert!(keep.apply(rec(None)).unwrap().is_none());
    let mut drop = make(
        "io.confluent.connect.transforms.Filter$Value",
        &[
            ("filter.condition", "$[?(@.status == 'active')]"),
            ("filter.type", "exclude"),
        ],
    );
    assert!(drop.apply(rec(Some("active"))).unwrap().is_none());
    assert!(drop.apply(rec(Some("closed"))).unwrap().is_some());
    // A field missing inside the filter does not match: not excluded.
    assert!(drop.apply(rec(None)).unwrap().is_some());
    // Confluent's documented example: a nested field; a record without the
    // path's `key` field fails (missing.or.null.behavior defaults to fail).
    let mut nested = make(
        "io.confluent.connect.transforms.Filter$Value",
        &[
            (
                "filter.condition",
                "$.key[?(@.nestedKey == \"value1\" || @.nestedKey == \"value2\")]",
            ),
            ("filter.type", "include"),
        ],
    );
    let with_key = |v: &str| with_value(None, map(&[("key", map(&[("nestedKey", v.into())]))]));
    assert!(nested.apply(with_key("value2")).unwrap().is_some());
    assert!(nested.apply(with_key("value3")).unwrap().is_none());
    assert!(nested.apply(rec(Some("active"))).is_err());
    // With a schema, struct fields are named from it.
    let schema = Schema::struct_of([("status", primitives::string())]).into_ref();
    let r = with_value(Some(schema), Value::Struct(vec!["active".into()]));
    assert!(keep.apply(r).unwrap().is_some());
}

/// The seed's "Filter Records" example exactly as written (Connect's class
/// name, a JSONPath `condition`, no other key): records whose status is
/// active are kept, the others dropped, on schemaless and schemaful values
/// alike.
#[test]
fn the_seed_filter_example_runs_as_written() {
    let mut filter = make(
        "org.apache.kafka.connect.transforms.Filter",
        &[("condition", "$[?(@.status == 'active')]")],
    );
    let schemaless = |status: &str| with_value(None, map(&[("status", status.into())]));
    assert!(filter.apply(schemaless("active")).unwrap().is_some());
    assert!(filter.apply(schemaless("inactive")).unwrap().is_none());
    let schema = Schema::struct_of([
        ("id", primitives::int64()),
        ("status", primitives::optional_string()),
    ])
    .into_ref();
    let schemaful = |status: Value| {
        with_value(
            Some(schema.clone()),
            Value::Struct(vec![Value::Int64(1), status]),
        )
    };
    let kept = filter.apply(schemaful("active".into())).unwrap();
    assert_eq!(kept, Some(schemaful("active".into())));
    assert!(filter.apply(schemaful("closed".into())).unwrap().is_none());
}
