//! The differential CDC test: Debezium's PostgreSQL connector, run by the
//! reference Kafka Connect worker, and sluice's postgres-cdc capture the same
//! table and the same changes, each into its own topic with the JSON converter
//! and `schemas.enable=true`. Every event must be equal: key and value
//! schemas (names, types, optionality, logical names, `parameters`, column
//! defaults) and payloads, field by field, the set of `source` fields, and the
//! headers. Only timestamps and positions are not compared (their fields must
//! still be there), nor Debezium's run id header, and the topic prefix, which
//! the two must not share, is written as `PREFIX`.
//!
//! It runs once per [`VARIANTS`] entry, all at once, each with its own table,
//! slots and connectors: Debezium's defaults, the other decimal, time,
//! binary, interval and hstore handling modes, `REPLICA IDENTITY FULL`, and
//! Debezium's `ExtractNewRecordState` (as the seed configures it, and with
//! rewritten deletes, added fields and headers) against sluice's own.
//!
//! The table has a column for every type whose events are equal; what still
//! differs is in [`KNOWN_DIFFERENCES`] with the reason.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

/// One column of the compared table: its SQL type and the values of the four
/// snapshot rows that are not all NULL (typical, low, high, special); the
/// streamed inserts repeat them.
struct Col {
    name: &'static str,
    ty: &'static str,
    values: [&'static str; 4],
}

const fn col(name: &'static str, ty: &'static str, values: [&'static str; 4]) -> Col {
    Col { name, ty, values }
}

/// Every column compared (besides the key, `id int`). `{s}` is the test's
/// schema (for its enum and domain). All are nullable.
const COLUMNS: &[Col] = &[
    col("c_int2", "smallint", ["1", "-32768", "32767", "0"]),
    col("c_int4", "integer", ["2", "-2147483648", "2147483647", "0"]),
    col(
        "c_int8",
        "bigint",
        ["3", "-9223372036854775808", "9223372036854775807", "0"],
    ),
    col(
        "c_float4",
        "real",
        ["1.5", "-3.4e38", "'Infinity'", "'NaN'"],
    ),
    col(
        "c_float8",
        "double precision",
        ["2.25", "'-Infinity'", "1.7976931348623157e308", "'NaN'"],
    ),
    col(
        "c_numeric",
        "numeric(12,4)",
        ["12.5", "-99999999.9999", "99999999.9999", "0"],
    ),
    col("c_numeric_nan", "numeric(12,4)", ["1", "-1", "1", "'NaN'"]),
    // Only an unconstrained numeric holds the infinities.
    col(
        "c_numeric_inf",
        "numeric",
        ["'Infinity'", "'-Infinity'", "1", "'NaN'"],
    ),
    col(
        "c_numeric_free",
        "numeric",
        [
            "3.14159",
            "-1e-20",
            "123456789012345678901234567890",
            "2.50",
        ],
    ),
    col(
        "c_money",
        "money",
        [
            "12.34",
            "-92233720368547758.08",
            "92233720368547758.07",
            "0",
        ],
    ),
    col("c_bool", "boolean", ["true", "false", "true", "false"]),
    col("c_bit1", "bit(1)", ["B'1'", "B'0'", "B'1'", "B'0'"]),
    col(
        "c_bit",
        "bit(12)",
        [
            "B'101000000001'",
            "B'000000000000'",
            "B'111111111111'",
            "B'000000000001'",
        ],
    ),
    col(
        "c_varbit",
        "varbit(20)",
        ["B'101'", "B''", "B'11111111111111111111'", "B'1'"],
    ),
    col("c_char", "char(5)", ["'ab'", "''", "'abcde'", "' a'"]),
    col(
        "c_varchar",
        "varchar(20)",
        ["'héllo'", "''", "'x'", "'with \"quote'"],
    ),
    col(
        "c_text",
        "text",
        ["'text'", "''", "E'line1\\nline2'", "E'back\\\\slash'"],
    ),
    col("c_citext", "citext", ["'MiXeD'", "''", "'x'", "'y'"]),
    col(
        "c_bytea",
        "bytea",
        ["'\\x00ff'", "''", "'\\xdeadbeef'", "'\\x20'"],
    ),
    col(
        "c_date",
        "date",
        [
            "'2026-01-02'",
            "'0001-01-01'",
            "'9999-12-31'",
            "'1969-12-31'",
        ],
    ),
    col(
        "c_time",
        "time",
        [
            "'03:04:05.123456'",
            "'00:00:00'",
            "'23:59:59.999999'",
            "'24:00:00'",
        ],
    ),
    col(
        "c_time3",
        "time(3)",
        [
            "'03:04:05.123'",
            "'00:00:00'",
            "'23:59:59.999'",
            "'12:00:00.5'",
        ],
    ),
    col(
        "c_time0",
        "time(0)",
        ["'03:04:05'", "'00:00:00'", "'23:59:59'", "'12:00:00'"],
    ),
    col(
        "c_timetz",
        "timetz",
        [
            "'03:04:05.123456+02'",
            "'00:00:00+00'",
            "'23:59:59-05:30'",
            "'12:00:00.5+14'",
        ],
    ),
    col(
        "c_ts",
        "timestamp",
        [
            "'2026-01-02 03:04:05.123456'",
            "'1900-01-01 00:00:00'",
            "'9999-12-31 23:59:59.999999'",
            "'1969-12-31 23:59:59.5'",
        ],
    ),
    col(
        "c_ts3",
        "timestamp(3)",
        [
            "'2026-01-02 03:04:05.123'",
            "'1960-06-15 12:00:00'",
            "'9999-12-31 23:59:59.999'",
            "'1969-12-31 23:59:59.999'",
        ],
    ),
    col(
        "c_ts_inf",
        "timestamp",
        [
            "'2026-01-02 03:04:05'",
            "'-infinity'",
            "'infinity'",
            "'epoch'",
        ],
    ),
    col(
        "c_tstz",
        "timestamptz",
        [
            "'2026-01-02 03:04:05.25+00'",
            "'1900-01-01 00:00:00+00'",
            "'2026-06-01 12:00:00+05:30'",
            "'1969-12-31 23:59:59.999999+00'",
        ],
    ),
    col(
        "c_tstz3",
        "timestamptz(3)",
        [
            "'2026-01-02 03:04:05.2+00'",
            "'1900-01-01 00:00:00+00'",
            "'2026-06-01 12:00:00.123+05:30'",
            "'1969-12-31 23:59:59.999+00'",
        ],
    ),
    col(
        "c_tstz_inf",
        "timestamptz",
        [
            "'2026-01-02 03:04:05+00'",
            "'-infinity'",
            "'infinity'",
            "'epoch'",
        ],
    ),
    col(
        "c_interval",
        "interval",
        [
            "'1 year 2 mons 3 days 04:05:06.5'",
            "'-1 days'",
            "'178000000 years'",
            // Seconds whose double is just below 0.3.
            "'1 mon 00:00:00.3'",
        ],
    ),
    col(
        "c_uuid",
        "uuid",
        [
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            "'00000000-0000-0000-0000-000000000000'",
            "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
            "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
        ],
    ),
    col(
        "c_json",
        "json",
        ["'{\"k\": 1}'", "'{}'", "'[1, 2.50, \"x\"]'", "'null'"],
    ),
    col(
        "c_jsonb",
        "jsonb",
        ["'{\"k\": 1}'", "'{}'", "'[1, 2.50, \"x\"]'", "'null'"],
    ),
    col(
        "c_xml",
        "xml",
        ["'<a>1</a>'", "'<b/>'", "'<c x=\"1\">t</c>'", "''"],
    ),
    col(
        "c_inet",
        "inet",
        ["'192.168.0.1/24'", "'::1'", "'10.0.0.1'", "'2001:db8::/32'"],
    ),
    col(
        "c_cidr",
        "cidr",
        [
            "'10.0.0.0/8'",
            "'::/0'",
            "'192.168.1.0/24'",
            "'2001:db8::/32'",
        ],
    ),
    col(
        "c_macaddr",
        "macaddr",
        [
            "'08:00:2b:01:02:03'",
            "'00:00:00:00:00:00'",
            "'ff:ff:ff:ff:ff:ff'",
            "'08-00-2B-01-02-03'",
        ],
    ),
    col(
        "c_macaddr8",
        "macaddr8",
        [
            "'08:00:2b:01:02:03:04:05'",
            "'00:00:00:00:00:00:00:00'",
            "'ff:ff:ff:ff:ff:ff:ff:ff'",
            "'08:00:2b:01:02:03'",
        ],
    ),
    col(
        "c_int_arr",
        "int[]",
        ["'{1,2,3}'", "'{}'", "'{NULL,2147483647}'", "'{0}'"],
    ),
    col(
        "c_int8_arr",
        "bigint[]",
        ["'{1,2,3}'", "'{}'", "'{NULL,9223372036854775807}'", "'{0}'"],
    ),
    col(
        "c_int2_arr",
        "smallint[]",
        ["'{1,2,3}'", "'{}'", "'{NULL,32767}'", "'{0}'"],
    ),
    col(
        "c_text_arr",
        "text[]",
        [
            "'{a,\"b c\"}'",
            "'{}'",
            "'{\"\",NULL}'",
            "'{\"x,y\",\"q\\\"uote\"}'",
        ],
    ),
    col(
        "c_varchar_arr",
        "varchar(10)[]",
        ["'{a,b}'", "'{}'", "'{\"\",NULL}'", "'{NULL}'"],
    ),
    col(
        "c_bool_arr",
        "boolean[]",
        ["'{t,f}'", "'{}'", "'{NULL}'", "'{t}'"],
    ),
    col(
        "c_float8_arr",
        "double precision[]",
        ["'{1.5,2.25}'", "'{}'", "'{NaN,Infinity}'", "'{-0}'"],
    ),
    col(
        "c_uuid_arr",
        "uuid[]",
        [
            "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'",
            "'{}'",
            "'{NULL}'",
            "'{00000000-0000-0000-0000-000000000000}'",
        ],
    ),
    col(
        "c_date_arr",
        "date[]",
        [
            "'{2026-01-02,1969-12-31}'",
            "'{}'",
            "'{NULL}'",
            "'{0001-01-01}'",
        ],
    ),
    col(
        "c_numeric_arr",
        "numeric[]",
        ["'{1.5,2}'", "'{}'", "'{NULL}'", "'{0,1.50}'"],
    ),
    col("c_enum", "{s}.mood", ["'ok'", "'sad'", "'happy'", "'ok'"]),
    col(
        "c_enum_arr",
        "{s}.mood[]",
        ["'{ok,sad}'", "'{}'", "'{NULL}'", "'{happy}'"],
    ),
    col("c_domain", "{s}.positive", ["1", "1", "2147483647", "7"]),
    col("c_domain_text", "{s}.label", ["'a'", "''", "'zz'", "'b'"]),
    col(
        "c_point",
        "point",
        [
            "'(1.5,2.5)'",
            "'(0,0)'",
            "'(-1e300,1e300)'",
            "'(-0.5,0.25)'",
        ],
    ),
    col(
        "c_int4range",
        "int4range",
        ["'[1,10)'", "'empty'", "'(,)'", "'[0,1]'"],
    ),
    col(
        "c_int8range",
        "int8range",
        ["'[1,10)'", "'empty'", "'(,)'", "'[0,1]'"],
    ),
    col(
        "c_numrange",
        "numrange",
        ["'[1.5,2.5)'", "'empty'", "'(,)'", "'(0,1]'"],
    ),
    col(
        "c_tsrange",
        "tsrange",
        [
            "'[2026-01-02 03:04:05,2026-01-03 00:00:00)'",
            "'empty'",
            "'(,)'",
            "'[1969-12-31 23:59:59.5,)'",
        ],
    ),
    col(
        "c_tstzrange",
        "tstzrange",
        [
            "'[2026-01-02 03:04:05+00,2026-01-03 00:00:00+00)'",
            "'empty'",
            "'(,)'",
            "'[1969-12-31 23:59:59.5+00,)'",
        ],
    ),
    col(
        "c_daterange",
        "daterange",
        [
            "'[2026-01-02,2026-01-03)'",
            "'empty'",
            "'(,)'",
            "'[1969-12-31,1970-01-02]'",
        ],
    ),
    col(
        "c_hstore",
        "hstore",
        [
            "'a=>1, b=>NULL'",
            "''",
            "'\"k y\"=>\"v,w\", b=>2, aa=>1, ccc=>NULL'",
            "'x=>\"\"'",
        ],
    ),
    col("c_ltree", "ltree", ["'a.b.c'", "''", "'top'", "'x.y'"]),
    col("c_oid", "oid", ["1", "0", "4294967295", "16384"]),
    col("c_varbit_free", "varbit", ["B'101'", "B''", "B'1'", "B'0'"]),
    col("c_varbit1", "varbit(1)", ["B'1'", "B''", "B'0'", "B'1'"]),
    col(
        "c_ts3_inf",
        "timestamp(3)",
        [
            "'2026-01-02 03:04:05'",
            "'-infinity'",
            "'infinity'",
            "'epoch'",
        ],
    ),
    col(
        "c_tstz0",
        "timestamptz(0)",
        [
            "'2026-01-02 03:04:05+00'",
            "'1900-01-01 00:00:00+00'",
            "'2026-06-01 12:00:00+05:30'",
            "'1969-12-31 23:59:59+00'",
        ],
    ),
    col("c_numeric0", "numeric(5,0)", ["12", "-99999", "99999", "0"]),
    col(
        "c_float4_arr",
        "real[]",
        ["'{1.5}'", "'{}'", "'{NaN,-Infinity}'", "'{NULL}'"],
    ),
    col(
        "c_jsonb_arr",
        "jsonb[]",
        ["'{\"{\\\"k\\\": 1}\"}'", "'{}'", "'{NULL}'", "'{null}'"],
    ),
    col(
        "c_tstz_arr",
        "timestamptz[]",
        [
            "'{\"2026-01-02 03:04:05+00\"}'",
            "'{}'",
            "'{NULL}'",
            "'{\"1969-12-31 23:59:59.5+00\"}'",
        ],
    ),
    col(
        "c_bytea_arr",
        "bytea[]",
        ["'{\"\\\\x00ff\"}'", "'{}'", "'{NULL}'", "'{\"\\\\x\"}'"],
    ),
    col("c_char1", "\"char\"", ["'a'", "''", "'z'", "'1'"]),
    col(
        "c_tsvector",
        "tsvector",
        ["'a fat cat'", "''", "'x'", "'y:1'"],
    ),
    // Column defaults, which Debezium puts in the schema when they are
    // constants; row 99 takes them.
    col(
        "c_def_int",
        "integer DEFAULT 42",
        ["1", "-1", "2147483647", "0"],
    ),
    col(
        "c_def_text",
        "varchar(10) DEFAULT 'none'",
        ["'a'", "''", "'zz'", "'b'"],
    ),
    col(
        "c_def_num",
        "numeric(6,2) DEFAULT 1.5",
        ["1", "-1", "9999.99", "0"],
    ),
    col(
        "c_def_ts",
        "timestamp DEFAULT '2020-01-02 03:04:05'",
        [
            "'2026-01-02 03:04:05'",
            "'1900-01-01 00:00:00'",
            "'9999-12-31 23:59:59'",
            "'epoch'",
        ],
    ),
    col(
        "c_def_bool",
        "boolean DEFAULT true",
        ["true", "false", "true", "false"],
    ),
    col(
        "c_def_now",
        "timestamptz DEFAULT now()",
        [
            "'2026-01-02 03:04:05+00'",
            "'1900-01-01 00:00:00+00'",
            "'2026-06-01 12:00:00+05:30'",
            "'epoch'",
        ],
    ),
    col(
        "c_def_enum",
        "{s}.mood DEFAULT 'happy'",
        ["'ok'", "'sad'", "'happy'", "'ok'"],
    ),
    col(
        "c_def_date",
        "date DEFAULT CURRENT_DATE",
        [
            "'2026-01-02'",
            "'0001-01-01'",
            "'9999-12-31'",
            "'1969-12-31'",
        ],
    ),
    col(
        "c_def_bytea",
        "bytea DEFAULT '\\x0102'",
        ["'\\x00'", "''", "'\\xff'", "'\\x20'"],
    ),
    col(
        "c_def_interval",
        "interval DEFAULT '1 day 02:00:00'",
        ["'1 mon'", "'-1 days'", "'00:00:01'", "'1 year'"],
    ),
    col(
        "c_def_jsonb",
        "jsonb DEFAULT '{\"a\": 1}'",
        ["'{}'", "'[]'", "'1'", "'null'"],
    ),
    col("c_def_neg", "bigint DEFAULT -5", ["1", "-1", "0", "2"]),
    // Required columns (their row of NULLs takes the default instead): a
    // delete's before image without REPLICA IDENTITY FULL lacks them.
    col(
        "c_req_int",
        "integer NOT NULL DEFAULT 7",
        ["1", "-1", "2147483647", "0"],
    ),
    col(
        "c_req_text",
        "text NOT NULL DEFAULT 'dflt'",
        ["'a'", "''", "'zz'", "'b'"],
    ),
    col(
        "c_req_tstz",
        "timestamptz NOT NULL DEFAULT now()",
        [
            "'2026-01-02 03:04:05+00'",
            "'1900-01-01 00:00:00+00'",
            "'2026-06-01 12:00:00+05:30'",
            "'epoch'",
        ],
    ),
    col(
        "c_req_num",
        "numeric(8,3) NOT NULL DEFAULT 0",
        ["1.5", "-1", "99999.999", "0"],
    ),
    // Out of line (TOAST) in the typical row, so an update that leaves it
    // alone does not send it.
    col(
        "c_big",
        "text",
        [
            "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 2000) i)",
            "''",
            "'x'",
            "'y'",
        ],
    ),
];

/// What Debezium and sluice still write differently, with why: types left
/// out of [`COLUMNS`], and headers left out of the comparison.
pub const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "__sluice.* headers",
        "sluice's runtime adds its own headers (__sluice.source, __sluice.position, __sluice.lsn.change) that locate each record for exactly-once restarts; Debezium has none, so they are not compared",
    ),
    (
        "name",
        "Debezium 3.6.3 streams a `name` column's value as null (schema string); sluice keeps the value rather than lose it",
    ),
    (
        "interval[]",
        "Debezium 3.6.3 has no mapping for it and leaves the column out of the schema and the row; sluice writes an array of MicroDuration",
    ),
    (
        "date 'infinity' / '-infinity'",
        "Debezium 3.6.3 writes days that are no date, and different ones in the snapshot (-622191234 / -625821272) and the stream (-2147472692 / -2147472691); sluice writes the stream's in both",
    ),
];

/// One run of the comparison: options both connectors get (Debezium keys and
/// transforms) and SQL that alters the table before the snapshot. Each
/// variant has its own schema, table, slots and connectors, and all run at
/// once. Options that change disjoint columns share a variant.
struct Variant {
    name: &'static str,
    options: &'static [(&'static str, &'static str)],
    /// Run once the table is filled; `{table}` is the table.
    table_sql: &'static str,
}

const UNWRAP: (&str, &str) = (
    "transforms.unwrap.type",
    "io.debezium.transforms.ExtractNewRecordState",
);

const VARIANTS: &[Variant] = &[
    Variant {
        name: "defaults",
        options: &[],
        table_sql: "",
    },
    Variant {
        name: "strings",
        options: &[
            ("decimal.handling.mode", "string"),
            ("time.precision.mode", "connect"),
            ("binary.handling.mode", "base64"),
            ("interval.handling.mode", "string"),
            ("hstore.handling.mode", "json"),
        ],
        table_sql: "",
    },
    // With the before images of every column on update and delete.
    Variant {
        name: "doubles",
        options: &[
            ("decimal.handling.mode", "double"),
            ("time.precision.mode", "adaptive_time_microseconds"),
            ("binary.handling.mode", "hex"),
            ("hstore.handling.mode", "map"),
        ],
        table_sql: "ALTER TABLE {table} REPLICA IDENTITY FULL",
    },
    // As the seed configures it.
    Variant {
        name: "unwrap",
        options: &[
            ("transforms", "unwrap"),
            UNWRAP,
            ("transforms.unwrap.drop.tombstones", "false"),
        ],
        table_sql: "",
    },
    Variant {
        name: "unwrap_rewrite",
        options: &[
            ("transforms", "unwrap"),
            UNWRAP,
            (
                "transforms.unwrap.delete.tombstone.handling.mode",
                "rewrite",
            ),
            ("transforms.unwrap.add.fields", "op,table,lsn,source.ts_ms"),
            ("transforms.unwrap.add.headers", "db,op"),
        ],
        table_sql: "ALTER TABLE {table} REPLICA IDENTITY FULL",
    },
    // Deletes as real tombstones; renamed and qualified added fields.
    Variant {
        name: "unwrap_to_tombstone",
        options: &[
            ("binary.handling.mode", "base64-url-safe"),
            ("transforms", "unwrap"),
            UNWRAP,
            (
                "transforms.unwrap.delete.tombstone.handling.mode",
                "delete-to-tombstone",
            ),
            (
                "transforms.unwrap.add.fields",
                "op:operation,source.schema,db",
            ),
            ("transforms.unwrap.add.headers", "op,source.table:tbl"),
        ],
        table_sql: "",
    },
    // Tombstones kept (with the op header); no context headers.
    Variant {
        name: "unwrap_with_tombstone",
        options: &[
            ("extended.headers.enabled", "false"),
            ("transforms", "unwrap"),
            UNWRAP,
            (
                "transforms.unwrap.delete.tombstone.handling.mode",
                "rewrite-with-tombstone",
            ),
            ("transforms.unwrap.add.headers", "op"),
        ],
        table_sql: "",
    },
];

/// The slot, publication and topic prefix of one capture of one variant's
/// table; the prefix is also the connector's name.
struct Capture {
    prefix: String,
    slot: String,
    publication: String,
}

impl Capture {
    fn new(schema: &str, who: &str) -> Self {
        Self {
            prefix: format!("{who}_{schema}"),
            slot: format!("slot_{who}_{schema}"),
            publication: format!("pub_{who}_{schema}"),
        }
    }

    fn topic(&self, schema: &str) -> String {
        format!("{}.{schema}.everything", self.prefix)
    }

    /// The same Debezium config for both, but for the converters' class names.
    fn config(
        &self,
        schema: &str,
        variant: &Variant,
        converter: &str,
    ) -> serde_json::Map<String, Value> {
        let mut c = json!({
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "plugin.name": "pgoutput",
            "database.hostname": "127.0.0.1",
            "database.port": postgres_port().to_string(),
            "database.user": "postgres",
            "database.password": "",
            "database.dbname": "postgres",
            "topic.prefix": self.prefix,
            "slot.name": self.slot,
            "publication.name": self.publication,
            "publication.autocreate.mode": "filtered",
            "table.include.list": format!("{schema}\\.everything"),
            "skipped.operations": "none",
            "poll.interval.ms": "100",
            "tasks.max": "1",
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        for side in ["key", "value"] {
            c.insert(format!("{side}.converter"), json!(converter));
            c.insert(format!("{side}.converter.schemas.enable"), json!("true"));
        }
        for (k, v) in variant.options {
            c.insert((*k).to_owned(), json!(v));
        }
        c
    }
}

/// One variant's table and its two captures.
struct Run {
    variant: &'static Variant,
    schema: String,
    dbz: Capture,
    slc: Capture,
}

impl Run {
    fn new(id: &str, variant: &'static Variant) -> Self {
        let schema = format!("{id}_{}", variant.name);
        Self {
            variant,
            dbz: Capture::new(&schema, "dbz"),
            slc: Capture::new(&schema, "slc"),
            schema,
        }
    }

    /// SQL with the schema put in for `{s}` and the table for `{table}`.
    fn sql(&self, sql: &str) -> String {
        sql.replace("{table}", &format!("{}.everything", self.schema))
            .replace("{s}", &self.schema)
    }

    /// The schema with its enum and domains, and the table with its snapshot
    /// rows.
    fn create_table(&self) {
        let columns: Vec<String> = COLUMNS
            .iter()
            .map(|c| format!("{} {}", c.name, c.ty))
            .collect();
        let rows: Vec<String> = [
            row_sql(1, Some(0)),
            row_sql(2, None),
            row_sql(3, Some(1)),
            row_sql(4, Some(2)),
            row_sql(5, Some(3)),
        ]
        .into();
        psql(&self.sql(&format!(
            "CREATE SCHEMA {{s}};
             CREATE TYPE {{s}}.mood AS ENUM ('sad', 'ok', 'happy');
             CREATE DOMAIN {{s}}.positive AS int CHECK (VALUE > 0);
             CREATE DOMAIN {{s}}.label AS varchar(8);
             CREATE TABLE {{table}} (id int PRIMARY KEY, {});
             INSERT INTO {{table}} VALUES {};
             {};",
            columns.join(", "),
            rows.join(", "),
            self.variant.table_sql,
        )));
    }

    /// Debezium's connector, through the reference worker.
    fn start_debezium(&self, connect_url: &str) {
        let config = self.dbz.config(
            &self.schema,
            self.variant,
            "org.apache.kafka.connect.json.JsonConverter",
        );
        let (status, body) = rest(
            reqwest::Method::PUT,
            &format!("{connect_url}/connectors/{}/config", self.dbz.prefix),
            Some(&Value::Object(config)),
        );
        assert!(
            status < 300,
            "creating Debezium's connector for {}: {status} {body}",
            self.variant.name
        );
    }

    /// sluice's connector file.
    fn sluice_file(&self, scratch: &Scratch) -> std::path::PathBuf {
        let config = self.slc.config(&self.schema, self.variant, "json");
        scratch.write_json(
            &format!("{}.json", self.slc.prefix),
            &json!({"name": self.slc.prefix, "config": Value::Object(config)}),
        )
    }

    fn wait_for_both(&self, id: i64, sluice: &mut WorkerProcess) {
        for c in [&self.dbz, &self.slc] {
            wait_for_key(&c.topic(&self.schema), &c.prefix, id, sluice);
        }
    }

    /// Every difference between the two topics, each line named with the
    /// variant and the event.
    fn compare(&self) -> Vec<String> {
        let theirs = events(&self.dbz.topic(&self.schema), &self.dbz.prefix);
        let ours = events(&self.slc.topic(&self.schema), &self.slc.prefix);
        if let Ok(dir) = std::env::var("CDC_DIFF_DUMP") {
            let dump = |who: &str, evs: &[Event]| {
                let lines: Vec<String> = evs.iter().map(|e| e.to_string()).collect();
                let file = format!("{dir}/{}-{who}.jsonl", self.variant.name);
                std::fs::write(&file, lines.join("\n")).unwrap_or_else(|e| panic!("{file}: {e}"));
            };
            dump("debezium", &theirs);
            dump("sluice", &ours);
        }
        let name = self.variant.name;
        let mut report = Vec::new();
        if theirs.len() != ours.len() {
            report.push(format!(
                "{name}: Debezium wrote {} events, sluice {}",
                theirs.len(),
                ours.len()
            ));
        }
        for (i, (a, b)) in theirs.iter().zip(&ours).enumerate() {
            let payload = &a["value"]["payload"];
            let op = match (payload["op"].as_str(), payload["__op"].as_str()) {
                (Some(op), _) | (None, Some(op)) => op,
                _ if a["value"].is_null() => "tombstone",
                _ if payload.is_null() => "null row",
                _ => "row",
            };
            let mut d = Vec::new();
            differences("", a, b, &mut d);
            report.extend(
                d.into_iter()
                    .map(|line| format!("{name}: event {i} ({op}){line}")),
            );
        }
        report
    }

    /// Removes both connectors' slots (sluice's worker and Debezium's
    /// connector are gone by then).
    fn drop_slots(&self) {
        for c in [&self.dbz, &self.slc] {
            drop_slot(&c.slot);
        }
    }
}

/// The values of one row, as SQL, `id` first: `row` is 0..4 for the four
/// value rows, `None` for the row of NULLs (defaults where NULL is refused).
fn row_sql(id: i32, row: Option<usize>) -> String {
    let values: Vec<&str> = COLUMNS
        .iter()
        .map(|c| match row {
            Some(r) => c.values[r],
            None if c.ty.contains("NOT NULL") => "DEFAULT",
            None => "NULL",
        })
        .collect();
    format!("({id}, {})", values.join(", "))
}

/// A value of a JSON event with what is not compared replaced: positions and
/// times (their fields stay, so the set of fields is still compared) and the
/// topic prefix (which is also the connector's name).
fn normalize(v: &Value, prefix: &str) -> Value {
    fn walk(v: &Value, prefix: &str, path: &[&str]) -> Value {
        match v {
            Value::String(s) => Value::String(s.replace(prefix, "PREFIX")),
            Value::Array(a) => Value::Array(a.iter().map(|x| walk(x, prefix, path)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| {
                        let ignored = match path {
                            // The envelope's times; an unwrapped row's
                            // copies of envelope and source fields.
                            ["payload"] => matches!(
                                k.as_str(),
                                "ts_ms"
                                    | "ts_us"
                                    | "ts_ns"
                                    | "__ts_ms"
                                    | "__lsn"
                                    | "__source_ts_ms"
                            ),
                            // The source block's times and positions.
                            ["payload", "source"] => matches!(
                                k.as_str(),
                                "ts_ms" | "ts_us" | "ts_ns" | "lsn" | "txId" | "sequence" | "xmin"
                            ),
                            _ => false,
                        };
                        let x = if ignored {
                            Value::String("(not compared)".into())
                        } else {
                            let mut p = path.to_vec();
                            p.push(k);
                            walk(x, prefix, &p)
                        };
                        (k.clone(), x)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    walk(v, prefix, &[])
}

/// Every difference between two JSON values, as `path: debezium ≠ sluice`.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => differences(&format!("{path}.{k}"), va, vb, out),
                    None => out.push(format!("{path}.{k}: only Debezium has it: {va}")),
                }
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    out.push(format!("{path}.{k}: only sluice has it: {vb}"));
                }
            }
        }
        // A struct schema's fields: matched by name, so a field only one
        // side has is named rather than shifting every field after it.
        (Value::Array(x), Value::Array(y)) if is_fields(x) && is_fields(y) => {
            let by_name = |v: &[Value]| -> Vec<(String, Value)> {
                v.iter()
                    .map(|f| {
                        (
                            f["field"].as_str().unwrap_or_default().to_owned(),
                            f.clone(),
                        )
                    })
                    .collect()
            };
            let (x, y) = (by_name(x), by_name(y));
            let names =
                |v: &[(String, Value)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
            for (k, va) in &x {
                match y.iter().find(|(n, _)| n == k) {
                    Some((_, vb)) => differences(&format!("{path}[{k}]"), va, vb, out),
                    None => out.push(format!("{path}[{k}]: only Debezium has this field")),
                }
            }
            for (k, _) in &y {
                if !x.iter().any(|(n, _)| n == k) {
                    out.push(format!("{path}[{k}]: only sluice has this field"));
                }
            }
            let common = |a: &[(String, Value)], b: &[(String, Value)]| {
                names(a)
                    .into_iter()
                    .filter(|n| b.iter().any(|(m, _)| m == n))
                    .collect::<Vec<_>>()
            };
            if common(&x, &y) != common(&y, &x) {
                out.push(format!("{path}: the fields are in another order"));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                // A struct schema's fields are named: say which.
                let label = va
                    .get("field")
                    .and_then(Value::as_str)
                    .map_or(i.to_string(), str::to_owned);
                differences(&format!("{path}[{label}]"), va, vb, out);
            }
        }
        _ if a != b => out.push(format!("{path}: Debezium {a} ≠ sluice {b}")),
        _ => {}
    }
}

/// Whether a JSON array is a struct schema's fields.
fn is_fields(v: &[Value]) -> bool {
    !v.is_empty()
        && v.iter()
            .all(|f| f.get("field").is_some_and(Value::is_string))
}

/// The headers compared: sluice's own (`__sluice.*`, its positions) are
/// left out, Debezium's run id is not compared.
fn normalize_headers(headers: serde_json::Map<String, Value>, prefix: &str) -> Value {
    let kept = headers
        .into_iter()
        .filter(|(k, _)| !k.starts_with("__sluice."))
        .map(|(k, v)| {
            let v = if k == "__debezium.context.runId" {
                Value::String("(not compared)".into())
            } else {
                v
            };
            (k, v)
        })
        .collect();
    normalize(&Value::Object(kept), prefix)
}

/// One event as `{"key", "value", "headers"}`, normalized.
type Event = Value;

/// The events of a topic, normalized.
fn events(topic: &str, prefix: &str) -> Vec<Event> {
    let parse = |bytes: Option<&[u8]>| match bytes {
        None | Some([]) => Value::Null,
        Some(b) => serde_json::from_slice(b).unwrap_or_else(|e| panic!("{topic}: {e}")),
    };
    read_topic(topic)
        .iter()
        .map(|r| {
            let headers: serde_json::Map<String, Value> = r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            json!({
                "key": normalize(&parse(r.key.as_deref().map(str::as_bytes)), prefix),
                "value": normalize(&parse(r.value.as_deref()), prefix),
                "headers": normalize_headers(headers, prefix),
            })
        })
        .collect()
}

/// Waits until `topic` holds an event keyed `id`: the last change made.
/// sluice's task failing (a value it cannot read) or its worker exiting (a
/// config it refuses) fails the test at once.
fn wait_for_key(topic: &str, prefix: &str, id: i64, sluice: &mut WorkerProcess) {
    wait_for(
        &format!("the event of id {id} in {topic}"),
        Duration::from_secs(180),
        || {
            if let Ok(Some(status)) = sluice.child.try_wait() {
                panic!("sluice exited ({status}):\n{}", sluice.log_text());
            }
            let log = sluice.log_text();
            if let Some(failed) = log.lines().find(|l| l.contains("task FAILED")) {
                panic!("sluice's task failed: {failed}");
            }
            topic_count(topic) > 0
                && events(topic, prefix)
                    .iter()
                    .any(|e| e["key"]["payload"]["id"] == json!(id))
        },
    );
}

fn rest(method: reqwest::Method, url: &str, body: Option<&Value>) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut req = client.request(method, url).timeout(Duration::from_secs(60));
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn debezium_and_sluice_write_the_same_events() {
    // First: it may start the stack this binary shares with Debezium.
    let connect_url = connect().url.as_str();
    let id = unique("diff").to_lowercase().replace(['-', '.'], "_");
    let runs: Vec<Run> = VARIANTS.iter().map(|v| Run::new(&id, v)).collect();
    let scratch = Scratch::new("cdcdiff");
    psql("CREATE EXTENSION IF NOT EXISTS hstore; CREATE EXTENSION IF NOT EXISTS ltree; CREATE EXTENSION IF NOT EXISTS citext;");
    for run in &runs {
        run.create_table();
        for c in [&run.dbz, &run.slc] {
            create_topic(&scratch, &c.topic(&run.schema), 1);
        }
        run.start_debezium(connect_url);
    }
    let files: Vec<_> = runs.iter().map(|r| r.sluice_file(&scratch)).collect();
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut sluice = WorkerProcess::start(&scratch, &worker, &files);

    // Every snapshot is read before anything changes.
    for run in &runs {
        run.wait_for_both(5, &mut sluice);
    }

    let stream =
        [
            format!("INSERT INTO {{table}} VALUES {}", row_sql(11, Some(0))),
            format!("INSERT INTO {{table}} VALUES {}", row_sql(12, None)),
            format!(
                "INSERT INTO {{table}} VALUES {}, {}",
                row_sql(13, Some(1)),
                row_sql(14, Some(2))
            ),
            format!("INSERT INTO {{table}} VALUES {}", row_sql(15, Some(3))),
            // Every column changes, to values of another row.
            format!(
            "UPDATE {{table}} SET ({}) = (SELECT {} FROM {{table}} WHERE id = 14) WHERE id = 11",
            COLUMNS.iter().map(|c| c.name).collect::<Vec<_>>().join(", "),
            COLUMNS.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
        ),
            // c_big is out of line and unchanged: not sent (but for REPLICA
            // IDENTITY FULL's before image).
            "UPDATE {table} SET c_int4 = 7 WHERE id = 1".to_owned(),
            "DELETE FROM {table} WHERE id = 2".to_owned(),
            "UPDATE {table} SET id = 30 WHERE id = 3".to_owned(),
            "TRUNCATE {table}".to_owned(),
            // The last change: once both have it, both have everything.
            "INSERT INTO {table} (id) VALUES (99)".to_owned(),
        ];
    for sql in &stream {
        for run in &runs {
            psql(&run.sql(sql));
        }
    }
    for run in &runs {
        run.wait_for_both(99, &mut sluice);
    }

    let report: Vec<String> = runs.iter().flat_map(Run::compare).collect();
    for run in &runs {
        rest(
            reqwest::Method::DELETE,
            &format!("{connect_url}/connectors/{}", run.dbz.prefix),
            None,
        );
    }
    drop(sluice);
    for run in &runs {
        run.drop_slots();
    }
    assert!(
        report.is_empty(),
        "{} differences between Debezium's and sluice's events:\n{}",
        report.len(),
        report.join("\n")
    );
}
