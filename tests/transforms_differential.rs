//! Differential test of the built-in transforms against Kafka Connect's own.
//!
//! The same transform chains run over the same records twice: through Kafka
//! Connect 4.3's (and Debezium 3.6's) Transformation classes, by a small Java
//! harness (`tests/support/SmtHarness.java`, compiled here against the
//! reference worker's jars), and through sluice's `sluice-transforms` plugins in
//! process. Records go in as the JsonConverter reads them (envelopes with
//! schemas, or plain JSON) with SimpleHeaderConverter headers, and come out
//! written back the same way, so the comparison covers topic, key and value
//! with their schemas, headers and timestamp. A failing record must fail on
//! both sides with the same message; a configuration Connect rejects must be
//! rejected by sluice.
//!
//! Intended differences, where sluice reports something more useful than the
//! Java `toString()` of a record, are listed in [`KNOWN_MESSAGE_DIFFERENCES`]:
//! for those, both sides must fail on the same records, but the messages may
//! differ. Confluent's Filter is not on the reference worker (it is not open
//! source), so it is covered by unit tests only.
//!
//! Needs Java and the reference jars: `dev/install connect`.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::{json, Value as Json};
use sluice_api::{Converter, Headers, Predicate, Record, Transform};
use sluice_runtime::convert::JsonConverter;

/// Records whose transformed output Connect's own JsonConverter then refuses,
/// while sluice writes it: (case, record, the start of Connect's message).
/// - A masked decimal: Connect's MaskField emits `BigDecimal.ZERO` at scale 0,
///   which no longer fits the field's `scale=2` schema; sluice emits zero at
///   the schema's scale.
/// - A Date, Time or Timestamp in data without a schema: Connect holds a
///   `java.util.Date` that its converter cannot write; sluice writes the
///   logical type's number (days, or milliseconds).
/// - A null for a required schema: sluice's JsonConverter writes the null
///   payload where Connect's refuses it (a converter difference, not a
///   transform one).
const KNOWN_CONVERSION_DIFFERENCES: &[(&str, usize, &str)] = &[
    ("mask_types", 0, "Decimal value has mismatching scale"),
    ("mask_types", 1, "Decimal value has mismatching scale"),
    ("mask_types", 6, "Decimal value has mismatching scale"),
    ("mask_types", 7, "Decimal value has mismatching scale"),
    (
        "ts_to_date",
        2,
        "Java class class java.util.Date does not have corresponding schema type.",
    ),
    (
        "ts_to_time",
        2,
        "Java class class java.util.Date does not have corresponding schema type.",
    ),
    (
        "ts_string_to_timestamp",
        2,
        "Java class class java.util.Date does not have corresponding schema type.",
    ),
    (
        "extract_nested_v2",
        1,
        "Conversion error: null value for field that is required",
    ),
];

/// Cases whose error messages embed a Java object's `toString()`; sluice names
/// the record by its coordinates instead.
const KNOWN_MESSAGE_DIFFERENCES: &[&str] = &["timestamp_router_missing_timestamp"];

type Config = BTreeMap<String, String>;

struct Step {
    class: String,
    config: Config,
    /// A predicate gating the step: its class, config and `negate`.
    predicate: Option<(String, Config, bool)>,
}

struct Case {
    name: String,
    chain: Vec<Step>,
    records: Vec<Json>,
}

fn config(pairs: &[(&str, &str)]) -> Config {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A one-step case whose transform is gated by a predicate.
fn gated(
    name: &str,
    (class, transform): (&str, &[(&str, &str)]),
    (predicate, predicate_config, negate): (&str, &[(&str, &str)], bool),
    records: Vec<Json>,
) -> Case {
    let mut c = case(name, &[(class, transform)], records);
    c.chain[0].predicate = Some((
        format!("org.apache.kafka.connect.transforms.predicates.{predicate}"),
        config(predicate_config),
        negate,
    ));
    c
}

fn case(name: &str, chain: &[(&str, &[(&str, &str)])], records: Vec<Json>) -> Case {
    Case {
        name: name.to_owned(),
        chain: chain
            .iter()
            .map(|(class, pairs)| Step {
                class: if class.contains('.') {
                    (*class).to_owned()
                } else {
                    format!("org.apache.kafka.connect.transforms.{class}")
                },
                config: config(pairs),
                predicate: None,
            })
            .collect(),
        records,
    }
}

const TS: i64 = 1_709_528_767_123; // 2024-03-04T05:06:07.123Z

fn order_schema() -> Json {
    json!({"type": "struct", "name": "shop.Order", "version": 2, "optional": false, "fields": [
        {"field": "id", "type": "int32", "optional": false},
        {"field": "ssn", "type": "string", "optional": true},
        {"field": "amount", "type": "double", "optional": false},
        {"field": "ts", "type": "int64", "optional": false, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
        {"field": "nested", "type": "struct", "optional": true, "fields": [
            {"field": "a", "type": "string", "optional": false},
            {"field": "b", "type": "int64", "optional": true, "default": 5}
        ]},
        {"field": "flag", "type": "boolean", "optional": false},
        {"field": "tags", "type": "array", "items": {"type": "string", "optional": false}, "optional": false},
        {"field": "day", "type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Date", "version": 1},
        {"field": "price", "type": "bytes", "optional": false, "name": "org.apache.kafka.connect.data.Decimal", "version": 1, "parameters": {"scale": "2"}},
        {"field": "str_num", "type": "string", "optional": false},
        {"field": "blob", "type": "bytes", "optional": true},
        {"field": "level", "type": "string", "optional": true, "default": "info"}
    ]})
}

fn key_schema() -> Json {
    json!({"type": "struct", "name": "shop.OrderKey", "optional": false, "fields": [
        {"field": "id", "type": "int32", "optional": false}
    ]})
}

/// A record in the harness's input shape.
fn record(
    topic: &str,
    offset: Option<i64>,
    key: Json,
    key_schemas: bool,
    value: Json,
    value_schemas: bool,
) -> Json {
    json!({
        "topic": topic, "partition": 1, "offset": offset, "timestamp": TS,
        "key": key, "key_schemas": key_schemas, "value": value, "value_schemas": value_schemas,
        "headers": [["h1", "v1"], ["h2", "42"], ["h1", "again"]]
    })
}

fn full_order(id: i32) -> Json {
    json!({"schema": order_schema(), "payload": {
        "id": id, "ssn": "123-45-6789", "amount": 12.5, "ts": TS,
        "nested": {"a": "x", "b": 7}, "flag": true, "tags": ["a", "b"], "day": 19786,
        "price": "MDk=", "str_num": "42", "blob": "AQID", "level": "warn"
    }})
}

fn sparse_order() -> Json {
    json!({"schema": order_schema(), "payload": {
        "id": 2, "ssn": null, "amount": -0.25, "ts": 0, "nested": null, "flag": false,
        "tags": [], "day": null, "price": "/w==", "str_num": "x", "blob": null, "level": null
    }})
}

/// Nulls where the schema has defaults, inside a nested struct too.
fn defaults_order() -> Json {
    json!({"schema": order_schema(), "payload": {
        "id": 5, "ssn": "1", "amount": 1e-7, "ts": -86_400_001, "nested": {"a": "z", "b": null},
        "flag": true, "tags": ["c"], "day": -1, "price": "AQAAAAAAAAAA", "str_num": "-0",
        "blob": "", "level": null
    }})
}

fn order_key(id: i32) -> Json {
    json!({"schema": key_schema(), "payload": {"id": id}})
}

/// The records most cases run over: data with a schema (full and sparse),
/// without (full and sparse), a primitive, a tombstone, and a source record
/// (no offset).
fn standard() -> Vec<Json> {
    vec![
        record("orders", Some(10), order_key(1), true, full_order(1), true),
        record("orders", Some(11), order_key(2), true, sparse_order(), true),
        record(
            "events",
            Some(12),
            json!("k1"),
            false,
            json!({"id": 3, "ssn": "987-65-4321", "amount": 3.75, "status": "active",
                   "nested": {"a": "y", "b": {"c": 1}}, "tags": ["x"], "flag": true,
                   "ts_str": "2024-03-04 05:06:07", "ts": TS, "str_num": "17"}),
            false,
        ),
        record(
            "events",
            Some(13),
            json!(null),
            false,
            json!({"status": null, "other": 1}),
            false,
        ),
        record(
            "plain",
            Some(14),
            json!(null),
            false,
            json!({"schema": {"type": "string", "optional": false}, "payload": "hello"}),
            true,
        ),
        record("orders", Some(15), order_key(3), true, json!(null), false),
        record("orders", None, order_key(4), true, full_order(4), true),
        record(
            "orders",
            Some(16),
            order_key(5),
            true,
            defaults_order(),
            true,
        ),
    ]
}

fn envelope(topic: &str, op: &str, before: Json, after: Json) -> Json {
    let row = json!({"type": "struct", "optional": true, "name": format!("{topic}.Value"), "fields": [
        {"field": "id", "type": "int32", "optional": false},
        {"field": "name", "type": "string", "optional": true}
    ]});
    let mut before_field = row.clone();
    before_field["field"] = json!("before");
    let mut after_field = row;
    after_field["field"] = json!("after");
    json!({"schema": {"type": "struct", "optional": false, "name": format!("{topic}.Envelope"), "version": 2, "fields": [
        before_field,
        after_field,
        {"field": "source", "type": "struct", "optional": false, "name": "io.debezium.connector.postgresql.Source", "fields": [
            {"field": "table", "type": "string", "optional": false}
        ]},
        {"field": "op", "type": "string", "optional": false},
        {"field": "ts_ms", "type": "int64", "optional": true}
    ]}, "payload": {"before": before, "after": after, "source": {"table": "orders"}, "op": op, "ts_ms": 5}})
}

fn cdc_records() -> Vec<Json> {
    let key = |topic: &str, id: i32| {
        json!({"schema": {"type": "struct", "optional": false, "name": format!("{topic}.Key"), "fields": [
            {"field": "id", "type": "int32", "optional": false}
        ]}, "payload": {"id": id}})
    };
    vec![
        record(
            "db.shard1.orders",
            Some(1),
            key("db.shard1.orders", 1),
            true,
            envelope(
                "db.shard1.orders",
                "c",
                json!(null),
                json!({"id": 1, "name": "a"}),
            ),
            true,
        ),
        record(
            "db.shard2.orders",
            Some(2),
            key("db.shard2.orders", 1),
            true,
            envelope(
                "db.shard2.orders",
                "u",
                json!({"id": 1, "name": "a"}),
                json!({"id": 1, "name": "b"}),
            ),
            true,
        ),
        record(
            "db.shard2.orders",
            Some(3),
            key("db.shard2.orders", 1),
            true,
            json!(null),
            false,
        ),
        record(
            "db.shard1.orders",
            Some(4),
            json!(null),
            false,
            json!({"schema": {"type": "string", "optional": false}, "payload": "heartbeat"}),
            true,
        ),
        record("other", Some(5), key("other", 9), true, full_order(9), true),
    ]
}

fn cases() -> Vec<Case> {
    let s = standard;
    let mut missing_ts = record("orders", Some(1), order_key(1), true, full_order(1), true);
    missing_ts["timestamp"] = Json::Null;
    vec![
        // Cast
        case("cast_fields", &[("Cast$Value", &[("spec", "id:string,amount:int32,flag:int8,str_num:int64,ts:string,day:int64,price:float64,status:boolean")])], s()),
        case("cast_to_float_and_bool", &[("Cast$Value", &[("spec", "id:float32,amount:boolean,ts:int32,day:string,blob:string")])], s()),
        case("cast_whole_value", &[("Cast$Value", &[("spec", "string")])], s()),
        case("cast_bad_string", &[("Cast$Value", &[("spec", "ssn:int32")])], s()),
        case("cast_struct_field", &[("Cast$Value", &[("spec", "nested:string")])], s()),
        case("cast_key", &[("Cast$Key", &[("spec", "id:int64")])], s()),
        case("cast_bad_spec", &[("Cast$Value", &[("spec", "id:bytes")])], s()),
        case("cast_mixed_spec", &[("Cast$Value", &[("spec", "int8,id:int8")])], s()),
        case("cast_without_default", &[("Cast$Value", &[("spec", "level:string"), ("replace.null.with.default", "false")])], s()),
        // DropHeaders, InsertHeader
        case("drop_headers", &[("DropHeaders", &[("headers", "h1,nope")])], s()),
        case("insert_header", &[("InsertHeader", &[("header", "hx"), ("value.literal", "hello")])], s()),
        case("insert_header_number", &[("InsertHeader", &[("header", "h1"), ("value.literal", "42")])], s()),
        // ExtractField
        case("extract_field", &[("ExtractField$Value", &[("field", "id")])], s()),
        case("extract_struct_field", &[("ExtractField$Value", &[("field", "nested")])], s()),
        case("extract_unknown_field", &[("ExtractField$Value", &[("field", "nope")])], s()),
        case("extract_default_field", &[("ExtractField$Value", &[("field", "level")])], s()),
        case("extract_default_field_raw", &[("ExtractField$Value", &[("field", "level"), ("replace.null.with.default", "false")])], s()),
        case("extract_nested_v2", &[("ExtractField$Value", &[("field", "nested.a"), ("field.syntax.version", "V2")])], s()),
        case("extract_nested_v2_map", &[("ExtractField$Value", &[("field", "nested.b.c"), ("field.syntax.version", "v2")])], s()),
        case("extract_key", &[("ExtractField$Key", &[("field", "id")])], s()),
        // Flatten
        case("flatten", &[("Flatten$Value", &[])], s()),
        case("flatten_delimiter", &[("Flatten$Value", &[("delimiter", "_")])], s()),
        case("flatten_key", &[("Flatten$Key", &[])], s()),
        // HeaderFrom
        case("header_from_copy", &[("HeaderFrom$Value", &[("fields", "id,nested,tags,price,ts,amount"), ("headers", "hid,hnested,htags,hprice,hts,hamount"), ("operation", "copy")])], s()),
        case("header_from_move", &[("HeaderFrom$Value", &[("fields", "ssn,level"), ("headers", "hssn,hlevel"), ("operation", "move")])], s()),
        case("header_from_key", &[("HeaderFrom$Key", &[("fields", "id"), ("headers", "kid"), ("operation", "move")])], s()),
        case("header_from_missing_field", &[("HeaderFrom$Value", &[("fields", "nope"), ("headers", "h"), ("operation", "copy")])], s()),
        case("header_from_mismatch", &[("HeaderFrom$Value", &[("fields", "a,b"), ("headers", "x"), ("operation", "copy")])], s()),
        // HoistField
        case("hoist_value", &[("HoistField$Value", &[("field", "wrapped")])], s()),
        case("hoist_key", &[("HoistField$Key", &[("field", "k")])], s()),
        // InsertField
        case("insert_field_all", &[("InsertField$Value", &[("topic.field", "t!"), ("partition.field", "p"), ("offset.field", "o?"), ("timestamp.field", "ts_ins"), ("static.field", "env"), ("static.value", "prod")])], s()),
        case("insert_field_seed", &[("InsertField$Value", &[("timestamp.field", "processed_at")])], s()),
        case("insert_field_duplicate", &[("InsertField$Value", &[("topic.field", "id")])], s()),
        case("insert_field_none", &[("InsertField$Value", &[])], s()),
        case("insert_field_key", &[("InsertField$Key", &[("topic.field", "t")])], s()),
        // MaskField
        case("mask_seed", &[("MaskField$Value", &[("fields", "ssn,credit_card")])], s()),
        case("mask_types", &[("MaskField$Value", &[("fields", "id,amount,flag,tags,ts,day,price,status,level")])], s()),
        case("mask_replacement_string", &[("MaskField$Value", &[("fields", "ssn,status"), ("replacement", "****")])], s()),
        case("mask_replacement_number", &[("MaskField$Value", &[("fields", "id,amount"), ("replacement", "9.75")])], s()),
        case("mask_replacement_bad_number", &[("MaskField$Value", &[("fields", "id"), ("replacement", "abc")])], s()),
        case("mask_replacement_boolean", &[("MaskField$Value", &[("fields", "flag"), ("replacement", "x")])], s()),
        case("mask_key", &[("MaskField$Key", &[("fields", "id")])], s()),
        case("mask_struct", &[("MaskField$Value", &[("fields", "nested")])], s()),
        case("mask_bytes", &[("MaskField$Value", &[("fields", "blob")])], s()),
        // RegexRouter
        case("regex_router_seed", &[("RegexRouter", &[("regex", ".*"), ("replacement", "prefix-$0")])], s()),
        case("regex_router_groups", &[("RegexRouter", &[("regex", "(or)(.*)"), ("replacement", "$2\\$$1")])], s()),
        case("regex_router_bad_group", &[("RegexRouter", &[("regex", "(o).*"), ("replacement", "x$2")])], s()),
        // ReplaceField
        case("replace_field", &[("ReplaceField$Value", &[("exclude", "ssn"), ("renames", "id:order_id,status:state")])], s()),
        case("replace_field_include", &[("ReplaceField$Value", &[("include", "id,amount,level,status")])], s()),
        case("replace_field_duplicate", &[("ReplaceField$Value", &[("renames", "id:amount")])], s()),
        case("replace_field_bad_rename", &[("ReplaceField$Value", &[("renames", "a:b:c")])], s()),
        case("replace_field_key", &[("ReplaceField$Key", &[("renames", "id:key_id")])], s()),
        // SetSchemaMetadata
        case("set_schema_metadata", &[("SetSchemaMetadata$Value", &[("schema.name", "shop.Renamed"), ("schema.version", "7")])], s()),
        case("set_schema_metadata_key", &[("SetSchemaMetadata$Key", &[("schema.name", "shop.K")])], s()),
        case("set_schema_metadata_none", &[("SetSchemaMetadata$Value", &[])], s()),
        // TimestampConverter
        case("ts_to_string", &[("TimestampConverter$Value", &[("field", "ts"), ("target.type", "string"), ("format", "yyyy-MM-dd'T'HH:mm:ss.SSS EEE")])], s()),
        case("ts_to_date", &[("TimestampConverter$Value", &[("field", "ts"), ("target.type", "Date")])], s()),
        case("ts_to_time", &[("TimestampConverter$Value", &[("field", "ts"), ("target.type", "Time")])], s()),
        case("ts_to_unix_seconds", &[("TimestampConverter$Value", &[("field", "ts"), ("target.type", "unix"), ("unix.precision", "seconds")])], s()),
        case("ts_string_to_timestamp", &[("TimestampConverter$Value", &[("field", "ts_str"), ("target.type", "Timestamp"), ("format", "yyyy-MM-dd HH:mm:ss")])], s()),
        case("ts_to_string_patterns", &[("TimestampConverter$Value", &[("field", "ts"), ("target.type", "string"), ("format", "EEEE, MMMM d, yy h:mm:ss a 'at' D z Z X k K")])], s()),
        case("ts_string_lenient_parse", &[("TimestampConverter$Value", &[("field", "ts_str"), ("target.type", "unix"), ("format", "yyyy-MM-dd")])], s()),
        case("ts_string_mismatch", &[("TimestampConverter$Value", &[("field", "ts_str"), ("target.type", "Date"), ("format", "dd/MM/yyyy")])], s()),
        case("ts_to_unix_micros", &[("TimestampConverter$Value", &[("field", "ts"), ("target.type", "unix"), ("unix.precision", "microseconds")])], s()),
        case("ts_bad_pattern", &[("TimestampConverter$Value", &[("field", "ts"), ("target.type", "string"), ("format", "yyyy-bb")])], s()),
        case("ts_wrong_field_type", &[("TimestampConverter$Value", &[("field", "amount"), ("target.type", "unix")])], s()),
        case("ts_whole_value", &[("TimestampConverter$Value", &[("target.type", "unix"), ("format", "yyyy")])], s()),
        case("ts_string_without_format", &[("TimestampConverter$Value", &[("field", "ts"), ("target.type", "string")])], s()),
        case("ts_key_wrong_type", &[("TimestampConverter$Key", &[("field", "id"), ("target.type", "unix")])], s()),
        case("ts_key_whole", &[("TimestampConverter$Key", &[("target.type", "string"), ("format", "yyyy")])], s()),
        // TimestampRouter
        case("timestamp_router", &[("TimestampRouter", &[])], s()),
        case("timestamp_router_format", &[("TimestampRouter", &[("topic.format", "${topic}_${timestamp}"), ("timestamp.format", "yyyy-MM-dd'T'HH")])], s()),
        case("timestamp_router_missing_timestamp", &[("TimestampRouter", &[])], vec![missing_ts]),
        // ValueToKey
        case("value_to_key", &[("ValueToKey", &[("fields", "id,ssn")])], s()),
        case("value_to_key_missing", &[("ValueToKey", &[("fields", "nope")])], s()),
        // Filter, alone and gated by each predicate
        case("filter", &[("Filter", &[])], s()),
        gated("filter_topic_name_matches", ("Filter", &[]), ("TopicNameMatches", &[("pattern", "ord.*")], false), s()),
        gated("filter_not_topic_name_matches", ("Filter", &[]), ("TopicNameMatches", &[("pattern", "ord")], true), s()),
        gated("filter_has_header_key", ("Filter", &[]), ("HasHeaderKey", &[("name", "h2")], false), s()),
        gated("filter_tombstones", ("Filter", &[]), ("RecordIsTombstone", &[], false), s()),
        gated("mask_unless_tombstone", ("MaskField$Value", &[("fields", "ssn")]), ("RecordIsTombstone", &[], true), s()),
        // InsertHeader literals, parsed by Values.parseString and written back
        case("insert_header_decimal", &[("InsertHeader", &[("header", "hx"), ("value.literal", "1.50")])], s()),
        case("insert_header_true", &[("InsertHeader", &[("header", "hx"), ("value.literal", "true")])], s()),
        case("insert_header_null", &[("InsertHeader", &[("header", "hx"), ("value.literal", "null")])], s()),
        case("insert_header_list", &[("InsertHeader", &[("header", "hx"), ("value.literal", "[1, 2]")])], s()),
        case("insert_header_map", &[("InsertHeader", &[("header", "hx"), ("value.literal", "{\"a\": 1}")])], s()),
        case("insert_header_padded", &[("InsertHeader", &[("header", "hx"), ("value.literal", " padded value ")])], s()),
        case("insert_header_date", &[("InsertHeader", &[("header", "hx"), ("value.literal", "2024-03-04")])], s()),
        case("insert_header_empty", &[("InsertHeader", &[("header", "hx"), ("value.literal", "")])], s()),
        // A cast of a field with a default casts the default
        case("cast_default", &[("Cast$Value", &[("spec", "level:int32")])], s()),
        case("cast_default_to_boolean", &[("Cast$Value", &[("spec", "level:boolean")])], s()),
        // Debezium
        case("by_logical_table_router", &[("io.debezium.transforms.ByLogicalTableRouter", &[("topic.regex", "db\\.shard(\\d+)\\.(.*)"), ("topic.replacement", "db.all_shards.$2")])], cdc_records()),
        case("by_logical_table_router_key_regex", &[("io.debezium.transforms.ByLogicalTableRouter", &[("topic.regex", "db\\.shard(\\d+)\\.(.*)"), ("topic.replacement", "db.all-shards.$2"), ("key.field.regex", "db\\.(shard\\d+)\\..*"), ("key.field.replacement", "$1"), ("key.field.name", "shard")])], cdc_records()),
        case("by_logical_table_router_no_key_field", &[("io.debezium.transforms.ByLogicalTableRouter", &[("topic.regex", "(.*)"), ("topic.replacement", "all"), ("key.enforce.uniqueness", "false")])], cdc_records()),
        // Chains
        case("seed_chain", &[
            ("RegexRouter", &[("regex", ".*"), ("replacement", "prefix-$0")]),
            ("MaskField$Value", &[("fields", "ssn,credit_card")]),
            ("InsertField$Value", &[("timestamp.field", "processed_at")]),
        ], s()),
        case("flatten_then_cast", &[
            ("Flatten$Value", &[("delimiter", "_")]),
            ("Cast$Value", &[("spec", "nested_b:string,id:int16")]),
            ("ReplaceField$Value", &[("exclude", "blob")]),
        ], s()),
        case("hoist_then_extract", &[
            ("HoistField$Value", &[("field", "w")]),
            ("ExtractField$Value", &[("field", "w")]),
            ("ValueToKey", &[("fields", "id")]),
            ("ExtractField$Key", &[("field", "id")]),
        ], s()),
    ]
}

/// The reference worker's home, as `dev/lib.sh` names it.
fn connect_home() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg("-c")
        .arg("source dev/lib.sh >/dev/null && printf %s \"$SLUICE_CONNECT_HOME\"")
        .current_dir(root)
        .output()
        .expect("bash runs");
    let home = PathBuf::from(String::from_utf8_lossy(&out.stdout).into_owned());
    assert!(
        home.join("classpath").exists(),
        "Kafka Connect is not installed in {}: run dev/install connect",
        home.display()
    );
    home
}

/// Compiles the harness and runs every case through Connect's classes.
fn run_connect(cases: &[Case]) -> Vec<Json> {
    let home = connect_home();
    let java = PathBuf::from(std::fs::read_to_string(home.join("java")).unwrap().trim());
    let javac = java.with_file_name("javac");
    let classpath = std::fs::read_to_string(home.join("classpath")).unwrap();
    let classpath = classpath.trim();
    let classes = std::env::temp_dir().join(format!("sluice-smt-harness-{}", std::process::id()));
    std::fs::create_dir_all(&classes).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/SmtHarness.java");
    let status = Command::new(&javac)
        .args(["-nowarn", "-d"])
        .arg(&classes)
        .arg("-cp")
        .arg(classpath)
        .arg(&source)
        .status()
        .expect("javac runs");
    assert!(status.success(), "javac failed on {}", source.display());
    let input: Vec<Json> = cases
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "chain": c.chain.iter().map(|s| {
                    let mut step = json!({"class": s.class, "config": s.config});
                    if let Some((class, config, negate)) = &s.predicate {
                        step["predicate"] = json!({"class": class, "config": config, "negate": negate});
                    }
                    step
                }).collect::<Vec<_>>(),
                "records": c.records,
            })
        })
        .collect();
    let mut child = Command::new(&java)
        .arg("-cp")
        .arg(format!("{}:{classpath}", classes.display()))
        .arg("-Duser.timezone=UTC")
        .arg("-Dlog4j2.level=ERROR")
        .arg("SmtHarness")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("java runs");
    serde_json::to_writer(child.stdin.take().unwrap(), &input).unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&classes);
    assert!(out.status.success(), "the Java harness failed");
    serde_json::from_slice(&out.stdout).expect("the harness prints JSON")
}

fn converter(schemas: bool) -> JsonConverter {
    JsonConverter::new(schemas, false, 100)
}

fn decode(
    doc: &Json,
    schemas: bool,
    topic: &str,
) -> (Option<sluice_api::SchemaRef>, sluice_api::Value) {
    if doc.is_null() {
        return (None, sluice_api::Value::Null);
    }
    let bytes = serde_json::to_vec(doc).unwrap();
    converter(schemas)
        .decode(topic, Some(&bytes))
        .expect("test input decodes")
}

fn input_record(r: &Json) -> Record {
    let topic = r["topic"].as_str().unwrap();
    let (key_schema, key) = decode(
        &r["key"],
        r["key_schemas"].as_bool().unwrap_or(false),
        topic,
    );
    let (value_schema, value) = decode(
        &r["value"],
        r["value_schemas"].as_bool().unwrap_or(false),
        topic,
    );
    let mut headers = Headers::new();
    for h in r["headers"].as_array().into_iter().flatten() {
        headers.push(
            h[0].as_str().unwrap().to_owned(),
            h[1].as_str().map(|s| s.as_bytes().to_vec()),
        );
    }
    Record {
        topic: Arc::from(topic),
        partition: r["partition"].as_i64().map(|p| p as i32),
        offset: r["offset"].as_i64(),
        timestamp: r["timestamp"].as_i64(),
        key_schema,
        key,
        value_schema,
        value,
        headers,
        source: None,
    }
}

fn encode(
    topic: &str,
    schema: Option<&sluice_api::SchemaRef>,
    value: &sluice_api::Value,
) -> Result<Json, String> {
    let bytes = converter(schema.is_some())
        .encode(topic, schema, value)
        .map_err(|e| e.to_string())?;
    Ok(bytes.map_or(Json::Null, |b: Vec<u8>| serde_json::from_slice(&b).unwrap()))
}

fn output(r: &Record) -> Json {
    let key = encode(&r.topic, r.key_schema.as_ref(), &r.key);
    let value = encode(&r.topic, r.value_schema.as_ref(), &r.value);
    match (key, value) {
        (Ok(key), Ok(value)) => json!({
            "topic": &*r.topic,
            "timestamp": r.timestamp,
            "key": key,
            "value": value,
            "headers": r.headers.iter().map(|h| json!([&*h.key, h.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())])).collect::<Vec<_>>(),
        }),
        (Err(e), _) | (_, Err(e)) => json!({"error": "conversion", "message": e}),
    }
}

/// Runs every case through sluice's plugins.
fn run_sluice(cases: &[Case]) -> Vec<Json> {
    let plugins = sluice_transforms::transforms();
    let predicates = sluice_transforms::predicates();
    cases
        .iter()
        .map(|c| {
            type Gate = Option<(Box<dyn Predicate>, bool)>;
            let mut chain: Vec<(Box<dyn Transform>, Gate)> = Vec::new();
            for step in &c.chain {
                let class = step.class.as_str();
                let plugin = plugins
                    .iter()
                    .find(|p| p.name == class || p.aliases.contains(&class))
                    .unwrap_or_else(|| panic!("sluice has no transform {class}"));
                let transform = match (plugin.create)(&step.config) {
                    Ok(t) => t,
                    Err(e) => return json!({"name": c.name, "config_error": e.to_string()}),
                };
                let gate = match &step.predicate {
                    None => None,
                    Some((class, config, negate)) => {
                        let plugin = predicates
                            .iter()
                            .find(|p| p.aliases.contains(&class.as_str()))
                            .unwrap_or_else(|| panic!("sluice has no predicate {class}"));
                        match (plugin.create)(config) {
                            Ok(p) => Some((p, *negate)),
                            Err(e) => return json!({"name": c.name, "config_error": e.to_string()}),
                        }
                    }
                };
                chain.push((transform, gate));
            }
            let results: Vec<Json> = c
                .records
                .iter()
                .map(|r| {
                    let mut rec = Some(input_record(r));
                    for (t, gate) in &mut chain {
                        let Some(current) = rec.take() else { break };
                        if gate
                            .as_ref()
                            .is_some_and(|(p, negate)| p.test(&current) == *negate)
                        {
                            rec = Some(current);
                            continue;
                        }
                        match t.apply(current) {
                            Ok(next) => rec = next,
                            Err(e) => return json!({"error": "sluice", "message": e.message()}),
                        }
                    }
                    match rec {
                        None => json!({"dropped": true}),
                        Some(r) => output(&r),
                    }
                })
                .collect();
            json!({"name": c.name, "results": results})
        })
        .collect()
}

/// Where two documents first differ, as a path and the two values there.
fn first_difference(a: &Json, b: &Json, path: &str) -> String {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Json::Null),
                    y.get(k).unwrap_or(&Json::Null),
                );
                if va != vb {
                    return first_difference(va, vb, &format!("{path}.{k}"));
                }
            }
            String::new()
        }
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find(|(_, (va, vb))| va != vb)
            .map(|(i, (va, vb))| first_difference(va, vb, &format!("{path}[{i}]")))
            .unwrap_or_default(),
        _ => format!("at {path}: connect {a}, sluice {b}"),
    }
}

fn clip(v: &Json) -> String {
    let text = v.to_string();
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

#[test]
fn builtin_transforms_match_kafka_connect() {
    let cases = cases();
    let started = std::time::Instant::now();
    let connect = run_connect(&cases);
    let sluice = run_sluice(&cases);
    assert_eq!(connect.len(), cases.len());
    let mut failures = Vec::new();
    let (mut records, mut errors) = (0, 0);
    for ((c, java), ours) in cases.iter().zip(&connect).zip(&sluice) {
        let lenient = KNOWN_MESSAGE_DIFFERENCES.contains(&c.name.as_str());
        match (java.get("config_error"), ours.get("config_error")) {
            (Some(_), Some(_)) => continue,
            (Some(j), None) => {
                failures.push(format!(
                    "{}: Connect rejects the config ({j}), sluice accepts it",
                    c.name
                ));
                continue;
            }
            (None, Some(s)) => {
                failures.push(format!(
                    "{}: sluice rejects the config ({s}), Connect accepts it",
                    c.name
                ));
                continue;
            }
            (None, None) => {}
        }
        let java_results = java["results"].as_array().unwrap();
        let our_results = ours["results"].as_array().unwrap();
        for (i, (j, s)) in java_results.iter().zip(our_results).enumerate() {
            records += 1;
            let known = KNOWN_CONVERSION_DIFFERENCES
                .iter()
                .find(|(name, record, _)| *name == c.name && *record == i);
            if let Some((_, _, prefix)) = known {
                let connect_refuses = j["message"].as_str().is_some_and(|m| m.starts_with(prefix));
                if !connect_refuses || s.get("error").is_some() {
                    failures.push(format!(
                        "{} record {i}: expected Connect's converter to refuse ({prefix}) and sluice to write it\n  connect: {}\n  sluice:  {}",
                        c.name,
                        clip(j),
                        clip(s)
                    ));
                }
                continue;
            }
            let same = match (j.get("error"), s.get("error")) {
                (Some(_), Some(_)) => {
                    errors += 1;
                    lenient || j["message"] == s["message"]
                }
                (None, None) => j == s,
                _ => false,
            };
            if !same {
                failures.push(format!(
                    "{} record {i}: {}\n  connect: {}\n  sluice:  {}",
                    c.name,
                    first_difference(j, s, "$"),
                    clip(j),
                    clip(s)
                ));
            }
        }
    }
    eprintln!(
        "{} cases, {records} records ({errors} failing on both sides) compared in {:?}",
        cases.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} differences from Kafka Connect:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Intended difference: the seed writes `org.apache.kafka.connect.transforms.Filter`
/// with a JSONPath `condition`. Connect's Filter has no such key, ignores it and
/// drops every record; sluice keeps the records the condition matches (as
/// Confluent's Filter with `filter.type=include`).
#[test]
fn the_seed_filter_condition_is_an_intended_difference() {
    let records = standard();
    let seed = case(
        "seed_filter",
        &[(
            "Filter",
            &[
                ("condition", "$[?(@.status == 'active')]"),
                ("missing.or.null.behavior", "exclude"),
            ],
        )],
        records.clone(),
    );
    let connect = run_connect(std::slice::from_ref(&seed));
    let sluice = run_sluice(std::slice::from_ref(&seed));
    let dropped = |v: &Json| -> Vec<bool> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.get("dropped").is_some())
            .collect()
    };
    assert!(
        dropped(&connect[0]).iter().all(|d| *d),
        "Connect drops every record"
    );
    let kept: Vec<usize> = dropped(&sluice[0])
        .iter()
        .enumerate()
        .filter(|(_, d)| !**d)
        .map(|(i, _)| i)
        .collect();
    // Only the schemaless record with status "active" is kept.
    assert_eq!(kept, [2]);
    assert_eq!(records[2]["value"]["status"], "active");
}
