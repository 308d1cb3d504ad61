//! The warehouse sink against the stack's PostgreSQL (each test in a schema
//! of its own): records in = rows out with their types, upsert/update/delete,
//! auto-create and auto-evolve, Postgres CDC mirrored through Kafka, kill -9
//! mid-batch with exactly-once rows, and a poison row dead-lettered with its
//! SQLSTATE while the rest of its batch commits.

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

/// A sink connector config writing `topic` into `<schema>.<table>`.
fn sink(wh: &PgSchema, name: &str, topic: &str, table: &str, extra: Value) -> Value {
    let config = with_keys(
        json!({
            "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
            "topics": topic,
            "connection.url": format!("jdbc:postgresql://127.0.0.1:{}/postgres", postgres_port()),
            "connection.user": "postgres",
            "connection.password": "",
            "topic2table.map": format!("{topic}:{}.{table}", wh.name),
            "offsets.table.name": format!("{}.sluice_offsets", wh.name),
            "key.converter": "json",
            "key.converter.schemas.enable": true,
            "value.converter": "json",
            "value.converter.schemas.enable": true,
        }),
        extra,
    );
    json!({"name": name, "config": config})
}

fn int_key(id: i64) -> String {
    serde_json::to_string(&json!({
        "schema": {"type": "struct", "fields": [{"field": "id", "type": "int32", "optional": false}]},
        "payload": {"id": id}
    }))
    .unwrap()
}

#[test]
fn records_become_rows_with_their_types_and_tables_are_created_and_evolved() {
    let scratch = Scratch::new("wh-types");
    let wh = PgSchema::new("wh_types");
    let topic = unique("wh-types");
    create_topic(&scratch, &topic, 1);
    // An existing table: string fields land in uuid, jsonb, timestamptz and
    // enum columns (cast in the merge).
    psql(&format!(
        "CREATE TYPE {s}.mood AS ENUM ('ok', 'sad'); CREATE TABLE {s}.typed (id integer PRIMARY KEY, u uuid, j jsonb, at timestamptz, m {s}.mood)",
        s = wh.name
    ));
    let typed_topic = unique("wh-typed");
    create_topic(&scratch, &typed_topic, 1);
    let schema = json!({"type": "struct", "fields": [
        {"field": "id", "type": "int32", "optional": false},
        {"field": "small", "type": "int16", "optional": true},
        {"field": "big", "type": "int64", "optional": true},
        {"field": "name", "type": "string", "optional": true},
        {"field": "ok", "type": "boolean", "optional": true},
        {"field": "ratio", "type": "double", "optional": true},
        {"field": "price", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}},
        {"field": "day", "type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Date"},
        {"field": "at", "type": "int64", "optional": true, "name": "org.apache.kafka.connect.data.Timestamp"},
        {"field": "blob", "type": "bytes", "optional": true},
        {"field": "tags", "type": "array", "items": {"type": "string", "optional": true}, "optional": true},
        {"field": "attrs", "type": "map", "keys": {"type": "string"}, "values": {"type": "int32"}, "optional": true},
        {"field": "uid", "type": "string", "optional": true, "name": "io.debezium.data.Uuid"}
    ]});
    let rows = [
        // 12345 as a two's complement big-endian decimal: 0x3039 → "MDk=".
        json!({"id": 1, "small": 7, "big": 9_000_000_000i64, "name": "caf\u{e9} \"q\"", "ok": true, "ratio": 0.25,
               "price": "MDk=", "day": 19723, "at": 1_700_000_000_123i64, "blob": "AAH/", "tags": ["a", "b,c", null],
               "attrs": {"x": 1}, "uid": "8f14e45f-ceea-467f-a8f2-5b7b1d2c3d4e"}),
        json!({"id": 2, "small": null, "big": null, "name": null, "ok": null, "ratio": null, "price": null, "day": null,
               "at": null, "blob": null, "tags": null, "attrs": null, "uid": null}),
    ];
    let values: Vec<Vec<u8>> = rows.iter().map(|r| enveloped(&schema, r.clone())).collect();
    produce_values(&topic, 0, &values);
    let typed_schema = json!({"type": "struct", "fields": [
        {"field": "id", "type": "int32"}, {"field": "u", "type": "string"}, {"field": "j", "type": "string"},
        {"field": "at", "type": "string"}, {"field": "m", "type": "string"}
    ]});
    produce_values(
        &typed_topic,
        0,
        &[enveloped(
            &typed_schema,
            json!({"id": 1, "u": "8f14e45f-ceea-467f-a8f2-5b7b1d2c3d4e", "j": "{\"a\": [1, 2]}", "at": "2024-01-02T03:04:05.678+02:00", "m": "sad"}),
        )],
    );

    let mut w = start_worker(
        &scratch,
        &[
            sink(
                &wh,
                &unique("wh-types"),
                &topic,
                "all_types",
                json!({"auto.create": true, "auto.evolve": true, "pk.mode": "record_value", "pk.fields": "id"}),
            ),
            sink(&wh, &unique("wh-typed"), &typed_topic, "typed", json!({})),
        ],
    );
    wait_for("two rows", Duration::from_secs(60), || {
        wh.count("all_types") == 2 && wh.count("typed") == 1
    });
    let types = wh.query("SELECT column_name || ' ' || format_type(a.atttypid, a.atttypmod) FROM information_schema.columns c JOIN pg_attribute a ON a.attrelid = '{s}.all_types'::regclass AND a.attname = c.column_name WHERE table_schema = '{s}' AND table_name = 'all_types' ORDER BY ordinal_position");
    assert_eq!(
        types,
        [
            "id integer",
            "small smallint",
            "big bigint",
            "name text",
            "ok boolean",
            "ratio double precision",
            "price numeric",
            "day date",
            "at timestamp with time zone",
            "blob bytea",
            "tags text[]",
            "attrs jsonb",
            "uid uuid",
        ]
    );
    let pk = wh.query("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = '{s}.all_types'::regclass AND i.indisprimary");
    assert_eq!(pk, ["id"]);
    let got = wh.query("SET TimeZone = 'UTC'; SELECT concat_ws('|', id, small, big, name, ok, ratio, price, day, at, encode(blob, 'hex'), tags, attrs, uid) FROM {s}.all_types ORDER BY id");
    assert_eq!(
        got,
        [
            "1|7|9000000000|caf\u{e9} \"q\"|t|0.25|123.45|2024-01-01|2023-11-14 22:13:20.123+00|0001ff|{a,\"b,c\",NULL}|{\"x\": 1}|8f14e45f-ceea-467f-a8f2-5b7b1d2c3d4e",
            "2",
        ]
    );
    let typed =
        wh.query("SET TimeZone = 'UTC'; SELECT concat_ws('|', id, u, j, at, m) FROM {s}.typed");
    assert_eq!(
        typed,
        ["1|8f14e45f-ceea-467f-a8f2-5b7b1d2c3d4e|{\"a\": [1, 2]}|2024-01-02 01:04:05.678+00|sad"]
    );

    // A new field: auto.evolve adds it, nullable; older rows keep null.
    let evolved = json!({"type": "struct", "fields": [
        {"field": "id", "type": "int32", "optional": false},
        {"field": "name", "type": "string", "optional": true},
        {"field": "added", "type": "int64", "optional": true}
    ]});
    produce_values(
        &topic,
        0,
        &[enveloped(
            &evolved,
            json!({"id": 3, "name": "three", "added": 33}),
        )],
    );
    wait_for("the evolved row", Duration::from_secs(30), || {
        wh.count("all_types") == 3
    });
    assert_eq!(
        wh.query("SELECT concat_ws('|', id, name, added) FROM {s}.all_types ORDER BY id"),
        ["1|caf\u{e9} \"q\"", "2", "3|three|33"]
    );
    assert_eq!(wh.query("SELECT is_nullable FROM information_schema.columns WHERE table_schema = '{s}' AND table_name = 'all_types' AND column_name = 'added'"), ["YES"]);

    // An incompatible change fails the task, naming the column.
    let incompatible = json!({"type": "struct", "fields": [
        {"field": "id", "type": "int32", "optional": false}, {"field": "day", "type": "boolean", "optional": true}
    ]});
    produce_values(
        &topic,
        0,
        &[enveloped(&incompatible, json!({"id": 4, "day": true}))],
    );
    let (_, trace) = w.wait_failed_trace(Duration::from_secs(30));
    assert!(
        trace.contains("column 'day'") && trace.contains("incompatible"),
        "{trace}"
    );
    assert_eq!(wh.count("all_types"), 3);
}

#[test]
fn upsert_update_and_delete_by_key() {
    let scratch = Scratch::new("wh-upsert");
    let wh = PgSchema::new("wh_upsert");
    let (upserts, updates) = (unique("wh-ups"), unique("wh-upd"));
    create_topic(&scratch, &upserts, 1);
    create_topic(&scratch, &updates, 1);
    let schema = json!({"type": "struct", "fields": [
        {"field": "id", "type": "int32", "optional": false}, {"field": "v", "type": "string", "optional": true}
    ]});
    let rec = |id: i64, v: Option<&str>| {
        (
            int_key(id),
            v.map(|v| enveloped(&schema, json!({"id": id, "v": v}))),
        )
    };
    // Several changes to one key in one batch collapse to the last; a
    // tombstone deletes; a delete then a re-insert leaves the row.
    let changes = [
        rec(1, Some("a")),
        rec(2, Some("b")),
        rec(1, Some("a2")),
        rec(3, Some("c")),
        rec(2, None),
        rec(4, Some("d")),
        rec(4, None),
        rec(4, Some("d2")),
        rec(5, None),
    ];
    produce_changes(&upserts, 0, &changes);
    psql(&format!(
        "CREATE TABLE {}.upd (id integer PRIMARY KEY, v text)",
        wh.name
    ));
    psql(&format!(
        "INSERT INTO {}.upd VALUES (1, 'old'), (2, 'old')",
        wh.name
    ));
    let upd: Vec<(String, Option<Vec<u8>>)> = vec![rec(1, Some("new")), rec(9, Some("absent"))];
    produce_changes(&updates, 0, &upd);
    let _w = start_worker(
        &scratch,
        &[
            sink(
                &wh,
                &unique("wh-ups"),
                &upserts,
                "ups",
                json!({"insert.mode": "upsert", "pk.mode": "record_key", "delete.enabled": true, "auto.create": true}),
            ),
            sink(
                &wh,
                &unique("wh-upd"),
                &updates,
                "upd",
                json!({"insert.mode": "update", "pk.mode": "record_key"}),
            ),
        ],
    );
    let expect = ["1|a2", "3|c", "4|d2"];
    wait_for("the upserts", Duration::from_secs(60), || {
        wh.query("SELECT concat_ws('|', id, v) FROM {s}.ups ORDER BY id") == expect
            && wh.query("SELECT concat_ws('|', id, v) FROM {s}.upd ORDER BY id")
                == ["1|new", "2|old"]
    });
    // A second round over existing rows: upsert replaces, tombstone deletes.
    let more = [rec(1, Some("a3")), rec(3, None), rec(6, Some("f"))];
    produce_changes(&upserts, 0, &more);
    wait_for("the second round", Duration::from_secs(30), || {
        wh.query("SELECT concat_ws('|', id, v) FROM {s}.ups ORDER BY id") == ["1|a3", "4|d2", "6|f"]
    });
    // The offsets the rows came with are in the warehouse.
    let stored = wh.query("SELECT topic || ':' || kafka_partition || ':' || next_offset FROM {s}.sluice_offsets ORDER BY 1");
    let mut want = vec![format!("{upserts}:0:12"), format!("{updates}:0:2")];
    want.sort();
    assert_eq!(stored, want);
}

#[test]
fn a_poison_row_goes_to_the_dead_letter_queue_and_its_batch_commits() {
    let scratch = Scratch::new("wh-dlq");
    let wh = PgSchema::new("wh_dlq");
    let topic = unique("wh-dlq");
    let dlq = unique("wh-dlq-dead");
    create_topic(&scratch, &topic, 1);
    psql(&format!(
        "CREATE TABLE {}.items (id integer PRIMARY KEY, qty integer NOT NULL CHECK (qty >= 0))",
        wh.name
    ));
    let schema = json!({"type": "struct", "fields": [
        {"field": "id", "type": "int32", "optional": false}, {"field": "qty", "type": "int32", "optional": true}
    ]});
    let values: Vec<Vec<u8>> = (0..50)
        .map(|i| {
            let qty = match i {
                17 => json!(-1),
                33 => Value::Null,
                _ => json!(i),
            };
            enveloped(&schema, json!({"id": i, "qty": qty}))
        })
        .collect();
    produce_values(&topic, 0, &values);
    let _w = start_worker(
        &scratch,
        &[sink(
            &wh,
            &unique("wh-dlq"),
            &topic,
            "items",
            json!({
                "errors.tolerance": "all",
                "errors.deadletterqueue.topic.name": dlq,
                "errors.deadletterqueue.topic.replication.factor": 1,
                "errors.deadletterqueue.context.headers.enable": true
            }),
        )],
    );
    wait_for(
        "48 rows and 2 dead letters",
        Duration::from_secs(60),
        || wh.count("items") == 48 && topic_count(&dlq) == 2,
    );
    let ids = wh.query("SELECT string_agg(id::text, ',' ORDER BY id) FROM {s}.items");
    let want: Vec<String> = (0..50)
        .filter(|i| *i != 17 && *i != 33)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(ids, [want.join(",")]);
    let dead = read_topic(&dlq);
    let mut by_offset: Vec<(String, String)> = dead
        .iter()
        .map(|r| {
            (
                r.headers["__connect.errors.offset"].clone(),
                r.headers["__connect.errors.exception.message"].clone(),
            )
        })
        .collect();
    by_offset.sort();
    assert_eq!(by_offset[0].0, "17");
    assert!(
        by_offset[0].1.contains("SQLSTATE 23514") && by_offset[0].1.contains("check constraint"),
        "{by_offset:?}"
    );
    assert_eq!(by_offset[1].0, "33");
    assert!(by_offset[1].1.contains("SQLSTATE 23502"), "{by_offset:?}");
    // The dead letter is the original record.
    let original: Value = serde_json::from_slice(
        dead.iter()
            .find(|r| r.headers["__connect.errors.offset"] == "17")
            .unwrap()
            .value
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(original["payload"]["qty"], -1);
    // The batch's offsets committed with its rows.
    assert_eq!(
        wh.query("SELECT next_offset FROM {s}.sluice_offsets"),
        ["50"]
    );
}

/// Differs from Confluent's and Debezium's JDBC sinks on purpose: they commit
/// offsets to Kafka after writing, so a kill between the two writes the
/// batch again (duplicate rows under insert.mode=insert). Here the offsets
/// commit with the rows and a restart resumes from the warehouse's.
#[test]
fn kill9_mid_batch_repeatedly_leaves_every_row_exactly_once() {
    let scratch = Scratch::new("wh-crash");
    let wh = PgSchema::new("wh_crash");
    let topic = unique("wh-crash");
    create_topic(&scratch, &topic, 4);
    let total: i64 = 120_000;
    let schema = json!({"type": "struct", "fields": [
        {"field": "id", "type": "int64", "optional": false}, {"field": "v", "type": "string", "optional": false}
    ]});
    for p in 0..4 {
        let values: Vec<Vec<u8>> = (0..total / 4)
            .map(|i| {
                let id = p * (total / 4) + i;
                enveloped(&schema, json!({"id": id, "v": format!("v{id}")}))
            })
            .collect();
        produce_values(&topic, p as i32, &values);
    }
    // insert.mode=insert with no key: only the offsets in the warehouse stand
    // between a replay and a duplicate row.
    let sink = sink(
        &wh,
        &unique("wh-crash"),
        &topic,
        "rows",
        json!({"auto.create": true, "batch.size": 2000, "tasks.max": 2}),
    );
    let mut kills_mid_way = 0;
    for round in 1..=3 {
        let mut w = start_worker(&scratch, std::slice::from_ref(&sink));
        let target = round * total / 8;
        wait_for(
            &format!("{target} rows before kill {round}"),
            Duration::from_secs(60),
            // A restarted worker must have resumed before it is killed again
            // (the rows may already be past the target from the last round).
            || {
                wh.count("rows") >= target
                    && (round == 1
                        || w.log_text()
                            .contains("resuming from the warehouse's stored offset"))
            },
        );
        w.kill9();
        if wh.count("rows") < total {
            kills_mid_way += 1;
        }
        if round > 1 {
            let log = w.log_text();
            assert!(
                log.contains("resuming from the warehouse's stored offset"),
                "{log}"
            );
        }
    }
    assert!(kills_mid_way > 0, "every kill came after the last row");
    let mut w = start_worker(&scratch, std::slice::from_ref(&sink));
    wait_for("every row", Duration::from_secs(90), || {
        wh.count("rows") >= total
    });
    // Let a late duplicate show itself, if there were one.
    wait_for(
        "the offsets to cover every record",
        Duration::from_secs(30),
        || wh.query("SELECT sum(next_offset) FROM {s}.sluice_offsets") == [total.to_string()],
    );
    assert!(
        w.terminate(Duration::from_secs(30)).success(),
        "{}",
        w.log_text()
    );
    let summary = wh.query("SELECT concat_ws('|', count(*), count(DISTINCT id), min(id), max(id), count(*) FILTER (WHERE v <> 'v' || id)) FROM {s}.rows");
    assert_eq!(summary, [format!("{total}|{total}|0|{}|0", total - 1)]);
}

#[test]
fn postgres_cdc_through_kafka_mirrors_the_source_table() {
    let scratch = Scratch::new("wh-cdc");
    let wh = PgSchema::new("wh_cdc");
    let src = unique("src_cdc").to_lowercase().replace(['-', '.'], "_");
    psql(&format!(
        "CREATE SCHEMA {src}; CREATE TABLE {src}.items (id integer PRIMARY KEY, name text, price numeric(10,2), at timestamptz, doc jsonb, u uuid, flag boolean, day date)"
    ));
    let sql = |s: &str| psql(&s.replace("{src}", &src));
    sql("INSERT INTO {src}.items SELECT i, 'item ' || i, i * 1.25, '2024-01-01T00:00:00Z'::timestamptz + i * interval '1 hour', jsonb_build_object('n', i), md5(i::text)::uuid, i % 2 = 0, date '2024-01-01' + i FROM generate_series(1, 20) i");
    let prefix = format!("cdc_{src}");
    let topic = format!("{prefix}.{src}.items");
    let slot = format!("slot_{src}");
    let source = json!({"name": unique("wh-cdc-src"), "config": with_keys(
        cdc_source(&prefix, &slot, &src),
        json!({
            "key.converter": "json",
            "key.converter.schemas.enable": true,
            "value.converter": "json",
            "value.converter.schemas.enable": true,
            "poll.interval.ms": 100,
            "topic.creation.default.partitions": 1,
            "skipped.operations": "none"
        }),
    )});
    let sink = sink(
        &wh,
        &unique("wh-cdc-sink"),
        &topic,
        "items",
        json!({
            "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
            "insert.mode": "upsert", "pk.mode": "record_key", "delete.enabled": true,
            "truncate.enabled": true, "schema.evolution": "basic"
        }),
    );
    let w = start_worker(&scratch, &[source, sink]);
    let cols = "concat_ws('|', id, name, price, at, doc, u, flag, day)";
    let mirror = |what: &str| {
        let want = || {
            psql(&format!(
                "SET TimeZone = 'UTC'; SELECT {cols} FROM {src}.items ORDER BY id"
            ))
        };
        let got = || {
            try_psql_at(
                postgres(),
                &format!(
                    "SET TimeZone = 'UTC'; SELECT {cols} FROM {}.items ORDER BY id",
                    wh.name
                ),
            )
            .unwrap_or_default()
        };
        wait_for(what, Duration::from_secs(60), || got() == want());
        let rows = want().lines().count();
        eprintln!("{what}: {rows} rows equal");
        rows
    };
    assert_eq!(mirror("the snapshot mirrored"), 20);
    sql("INSERT INTO {src}.items VALUES (21, 'new', 9.99, now(), '{\"k\": [1, null]}', gen_random_uuid(), true, NULL)");
    sql("UPDATE {src}.items SET name = 'changed', price = price + 1 WHERE id % 3 = 0");
    sql("UPDATE {src}.items SET doc = NULL, u = NULL WHERE id = 4");
    sql("DELETE FROM {src}.items WHERE id IN (2, 5, 7)");
    // A primary-key change: Debezium's delete of the old key, then a create.
    sql("UPDATE {src}.items SET id = 100 WHERE id = 8");
    // Several changes to one row within one transaction (one batch).
    sql("BEGIN; UPDATE {src}.items SET name = 'x1' WHERE id = 10; UPDATE {src}.items SET name = 'x2' WHERE id = 10; DELETE FROM {src}.items WHERE id = 11; INSERT INTO {src}.items (id, name) VALUES (11, 'back'); COMMIT");
    assert_eq!(mirror("the changes mirrored"), 18);
    sql("TRUNCATE {src}.items");
    sql("INSERT INTO {src}.items (id, name) VALUES (1, 'after truncate'), (2, 'two')");
    assert_eq!(mirror("the truncate mirrored"), 2);
    drop(w);
    // A slot left behind would pin WAL for every later test.
    wait_for("the slot to be released", Duration::from_secs(30), || {
        psql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}' AND active"
        ))
        .trim()
            == "0"
    });
    psql(&format!("SELECT pg_drop_replication_slot('{slot}'); DROP PUBLICATION IF EXISTS pub_{src}; DROP SCHEMA {src} CASCADE"));
}

#[test]
fn a_warehouse_outage_is_ridden_out_with_the_task_running() {
    let scratch = Scratch::new("wh-outage");
    let pg = PrivatePostgres::start();
    let topic = unique("wh-outage");
    create_topic(&scratch, &topic, 1);
    let schema =
        json!({"type": "struct", "fields": [{"field": "id", "type": "int64", "optional": false}]});
    let batch = |from: i64| -> Vec<Vec<u8>> {
        (from..from + 5000)
            .map(|id| enveloped(&schema, json!({"id": id})))
            .collect()
    };
    produce_values(&topic, 0, &batch(0));
    let name = unique("wh-outage");
    let sink = json!({"name": name, "config": {
        "connector.class": "warehouse-sink", "topics": topic,
        "connection.url": format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port),
        "table.name.format": "outage", "auto.create": true,
        "value.converter": "json", "value.converter.schemas.enable": true
    }});
    let count = || count_rows(&pg.url, "outage");
    let w = start_worker(&scratch, &[sink]);
    wait_for("the first rows", Duration::from_secs(60), || {
        count() == Some(5000)
    });
    pg.stop("fast");
    produce_values(&topic, 0, &batch(5000));
    wait_for(
        "the task to say it is retrying",
        Duration::from_secs(60),
        || {
            let status = w.get(&format!("/connectors/{name}/status"));
            status["tasks"][0]["state"] == "RUNNING"
                && w.log_text().contains("put failed, retrying")
        },
    );
    pg.start_again();
    wait_for(
        "every row after the outage",
        Duration::from_secs(60),
        || count() == Some(10_000),
    );
    assert_eq!(
        pg.psql("SELECT count(DISTINCT id) FROM outage").trim(),
        "10000"
    );
    assert_eq!(
        w.get(&format!("/connectors/{name}/status"))["tasks"][0]["state"],
        "RUNNING"
    );
}

/// `connection.url` as Kafka Connect JDBC users write it for TLS (pgjdbc's
/// `ssl=true&sslmode=verify-full&sslrootcert=...`), with a password in it:
/// the rows arrive over an encrypted session, the password shows nowhere
/// (REST answers, the CLI, the log), and a certificate the named CA did not
/// sign fails the task naming the key.
#[test]
fn tls_as_jdbc_urls_ask_for_it_and_a_password_in_the_url_is_never_shown() {
    let scratch = Scratch::new("wh-tls");
    let wh = PgSchema::new("wh_tls");
    let topic = unique("wh-tls");
    create_topic(&scratch, &topic, 1);
    let schema = json!({"type": "struct", "fields": [
        {"field": "id", "type": "int32", "optional": false}, {"field": "v", "type": "string", "optional": true}
    ]});
    let values: Vec<Vec<u8>> = (0..10)
        .map(|i| enveloped(&schema, json!({"id": i, "v": format!("v{i}")})))
        .collect();
    produce_values(&topic, 0, &values);
    // The stack's PostgreSQL trusts loopback, so the passwords are not
    // checked: they are there to be hidden.
    let (secret, url_secret) = (unique("s3cret"), unique("pw"));
    let app = unique("wh_tls_app").replace('-', "_");
    let url = |mode: &str, ca: &str| {
        format!(
            "jdbc:postgresql://localhost:{}/postgres?ssl=true&sslmode={mode}&sslrootcert={ca}&password={secret}&application_name={app}",
            postgres_port()
        )
    };
    let name = unique("wh-tls");
    let config = sink(
        &wh,
        &name,
        &topic,
        "rows",
        json!({"connection.url": url("verify-full", postgres_ca()), "auto.create": true}),
    );
    let mut w = start_worker(&scratch, &[config]);
    wait_for("the rows over TLS", Duration::from_secs(60), || {
        wh.count("rows") == 10
    });
    assert_eq!(
        wh.query("SELECT string_agg(v, ',' ORDER BY id) FROM {s}.rows"),
        ["v0,v1,v2,v3,v4,v5,v6,v7,v8,v9"]
    );
    let encrypted = psql(&format!(
        "SELECT bool_and(s.ssl) || ':' || count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '{app}'"
    ));
    assert_eq!(
        encrypted.trim(),
        "true:1",
        "the sink's session is not encrypted"
    );

    // The same URL with the password as user information, over REST.
    let base = w.rest_url();
    let other = unique("wh-secret");
    let second = sink(
        &wh,
        &other,
        &topic,
        "rows2",
        json!({"auto.create": true, "connection.url": format!(
            "postgres://postgres:{url_secret}@127.0.0.1:{}/postgres?sslmode=require",
            postgres_port()
        )}),
    );
    let created = reqwest::blocking::Client::new()
        .post(format!("{base}/connectors"))
        .json(&second)
        .send()
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let created = created.text().unwrap();
    wait_for("the second sink's rows", Duration::from_secs(60), || {
        wh.count("rows2") == 10
    });
    let validated = reqwest::blocking::Client::new()
        .put(format!(
            "{base}/connector-plugins/warehouse-sink/config/validate"
        ))
        .json(&json!({
            "connector.class": "warehouse-sink", "topics": topic,
            "connection.url": format!("postgres://u:{url_secret}@h/db?sslmode=sometimes&password={secret}")
        }))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(validated.contains("sometimes"), "{validated}");
    let mut views = vec![created, validated];
    for c in [&name, &other] {
        views.push(w.get(&format!("/connectors/{c}/config")).to_string());
        views.push(w.get(&format!("/connectors/{c}")).to_string());
        views.push(w.get(&format!("/connectors/{c}/tasks")).to_string());
    }
    views.push(w.get("/connectors?expand=info").to_string());
    let cli = sluice()
        .args(["connectors", "get", &name, "--url", &base])
        .output()
        .unwrap();
    assert!(cli.status.success());
    views.push(String::from_utf8_lossy(&cli.stdout).into_owned());
    for v in &views {
        assert!(!v.contains(&secret) && !v.contains(&url_secret), "{v}");
    }
    let shown = w.get(&format!("/connectors/{name}/config"));
    assert!(
        shown["connection.url"]
            .as_str()
            .unwrap()
            .contains("password=[hidden]&"),
        "{shown}"
    );
    let shown = w.get(&format!("/connectors/{other}/config"));
    assert!(
        shown["connection.url"]
            .as_str()
            .unwrap()
            .starts_with("postgres://postgres:[hidden]@127.0.0.1:"),
        "{shown}"
    );
    w.stop_cleanly();
    let log = w.log_text();
    assert!(
        !log.contains(&secret) && !log.contains(&url_secret),
        "{log}"
    );

    // A certificate signed by a CA that is not the one named: the task
    // fails, saying which key to look at.
    let wrong = sink(
        &wh,
        &unique("wh-tls-wrong"),
        &topic,
        "rows",
        json!({"connection.url": url("verify-ca", &postgres_ca().replace("ca.crt", "other-ca.crt"))}),
    );
    let mut w = start_worker(&scratch, &[wrong]);
    let (_, trace) = w.wait_failed_trace(Duration::from_secs(60));
    assert!(
        trace.contains("certificate")
            && trace.contains("sslrootcert")
            && trace.contains("connection.url"),
        "{trace}"
    );
    assert!(!trace.contains(&secret), "{trace}");
    // verify-full without a CA: the config names what is missing.
    let no_ca = sink(
        &wh,
        &unique("wh-tls-noca"),
        &topic,
        "rows",
        json!({"connection.url": format!("jdbc:postgresql://localhost:{}/postgres?sslmode=verify-full&password={secret}", postgres_port())}),
    );
    let mut w = start_worker(&scratch, &[no_ca]);
    let (_, trace) = w.wait_failed_trace(Duration::from_secs(60));
    let log = w.log_text();
    assert!((trace + &log).contains("sslrootcert"), "{log}");
    assert!(!log.contains(&secret), "{log}");
}
