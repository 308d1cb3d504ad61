//! The PostgreSQL CDC source against a real PostgreSQL (wal_level=logical) and
//! a real broker: snapshot then stream, Debezium's envelope compared event by
//! event, REPLICA IDENTITY FULL, tombstones, TOAST placeholders, schema
//! changes, bad setups, and exactly-once across kill -9.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

/// A schema, slot, publication and topic prefix of the test's own.
struct Db {
    schema: String,
    prefix: String,
    slot: String,
}

impl Db {
    fn new(tag: &str) -> Self {
        let id = unique(tag).to_lowercase().replace(['-', '.'], "_");
        psql(&format!("CREATE SCHEMA {id}"));
        Self {
            schema: id.clone(),
            prefix: format!("cdc_{id}"),
            slot: format!("slot_{id}"),
        }
    }

    fn topic(&self, table: &str) -> String {
        format!("{}.{}.{table}", self.prefix, self.schema)
    }

    fn connector(&self, name: &str) -> Value {
        let config = with_keys(
            cdc_source(&self.prefix, &self.slot, &self.schema),
            json!({
                "key.converter": "json",
                "key.converter.schemas.enable": false,
                "value.converter": "json",
                "value.converter.schemas.enable": false,
                "poll.interval.ms": 100,
                "topic.creation.default.partitions": 1,
                "skipped.operations": "none"
            }),
        );
        json!({"name": name, "config": config})
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        drop_slot(&self.slot);
    }
}

fn events(topic: &str) -> Vec<(Option<Value>, Option<Value>)> {
    read_topic(topic)
        .into_iter()
        .map(|r| {
            let key = r.key.as_deref().map(|k| serde_json::from_str(k).unwrap());
            let value = r
                .value
                .as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| serde_json::from_slice(v).unwrap());
            (key, value)
        })
        .collect()
}

fn wait_events(topic: &str, n: usize) -> Vec<(Option<Value>, Option<Value>)> {
    wait_for(
        &format!("{n} events in {topic}"),
        Duration::from_secs(90),
        || topic_count(topic) >= n as i64,
    );
    events(topic)
}

#[test]
fn snapshot_then_stream_in_debeziums_envelope() {
    let db = Db::new("cdc");
    let s = &db.schema;
    psql(&format!(
        "CREATE TABLE {s}.items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), \
           tags text[], doc jsonb, at timestamptz, born date, flag boolean, big bigint, blob bytea);
         CREATE TABLE {s}.audit (id int PRIMARY KEY, note text);
         CREATE TYPE {s}.mood AS ENUM ('sad', 'ok', 'happy');
         CREATE DOMAIN {s}.positive AS int CHECK (VALUE > 0);
         CREATE TABLE {s}.kinds (id int PRIMARY KEY, m {s}.mood, p {s}.positive, u uuid,
             span interval, t time, r real, d double precision, small smallint,
             code char(3), label varchar(10), nums int[], free numeric);
         ALTER TABLE {s}.audit REPLICA IDENTITY FULL;
         INSERT INTO {s}.items VALUES
           (1, 'one', 1.50, '{{a,b}}', '{{\"k\": 1}}', '2026-01-02 03:04:05.25+00', '2026-01-02', true, 9007199254740993, '\\x00ff'),
           (2, 'two', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
    ));
    let scratch = Scratch::new("cdc");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let name = unique("pg");
    let mut config = db.connector(&name);
    config["config"]["column.exclude.list"] = json!(format!("{s}\\.items\\.blob"));
    let c = scratch.write_json("pg.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);

    // The snapshot: both rows as reads, marked as Debezium marks them.
    let items = db.topic("items");
    let snap = wait_events(&items, 2);
    let (key, value) = (&snap[0].0, snap[0].1.as_ref().unwrap());
    assert_eq!(key, &Some(json!({"id": 1})));
    assert_eq!(value["op"], "r");
    assert_eq!(value["before"], Value::Null);
    assert_eq!(
        value["after"],
        json!({"id": 1, "name": "one", "price": "AJY=", "tags": ["a", "b"], "doc": "{\"k\": 1}",
               "at": "2026-01-02T03:04:05.250000Z", "born": 20455, "flag": true, "big": 9007199254740993i64})
    );
    assert_eq!(value["source"]["connector"], "postgresql");
    assert_eq!(value["source"]["name"], db.prefix.as_str());
    assert_eq!(value["source"]["schema"], s.as_str());
    assert_eq!(value["source"]["table"], "items");
    // Not "first": audit, empty, is the snapshot's first table (as Debezium
    // counts them).
    assert_eq!(value["source"]["snapshot"], "first_in_data_collection");
    assert_eq!(snap[1].1.as_ref().unwrap()["source"]["snapshot"], "last");
    assert_eq!(snap[1].1.as_ref().unwrap()["after"]["price"], Value::Null);

    // The stream: insert, update, delete (and its tombstone), in commit order.
    psql(&format!(
        "INSERT INTO {s}.items (id, name) VALUES (3, 'three');
         UPDATE {s}.items SET name = 'uno' WHERE id = 1;
         DELETE FROM {s}.items WHERE id = 2;
         INSERT INTO {s}.audit VALUES (1, 'first');
         UPDATE {s}.audit SET note = 'changed' WHERE id = 1;
         DELETE FROM {s}.audit WHERE id = 1;"
    ));
    let all = wait_events(&items, 6);
    let ops: Vec<&str> = all
        .iter()
        .map(|(_, v)| {
            v.as_ref()
                .map_or("tombstone", |v| v["op"].as_str().unwrap())
        })
        .collect();
    assert_eq!(ops, ["r", "r", "c", "u", "d", "tombstone"]);
    let created = all[2].1.as_ref().unwrap();
    assert_eq!(created["after"]["name"], "three");
    assert_eq!(created["source"]["snapshot"], "false");
    assert!(created["source"]["txId"].is_i64() && created["source"]["lsn"].is_i64());
    let updated = all[3].1.as_ref().unwrap();
    assert_eq!(
        updated["before"],
        Value::Null,
        "default replica identity: no before"
    );
    assert_eq!(updated["after"]["name"], "uno");
    assert_eq!(
        updated["after"]["doc"], "{\"k\": 1}",
        "unchanged columns come along"
    );
    assert!(
        updated["after"].get("blob").is_none(),
        "column.exclude.list leaves blob out"
    );
    let deleted = all[4].1.as_ref().unwrap();
    assert_eq!(deleted["before"]["id"], 2);
    assert_eq!(deleted["after"], Value::Null);
    assert_eq!(
        all[5].0,
        Some(json!({"id": 2})),
        "the tombstone keeps the key"
    );

    // REPLICA IDENTITY FULL gives the whole before image.
    let audit = wait_events(&db.topic("audit"), 4);
    let update = audit[1].1.as_ref().unwrap();
    assert_eq!(update["op"], "u");
    // The key stays the primary key: REPLICA IDENTITY FULL widens only `before`.
    assert_eq!(audit[1].0, Some(json!({"id": 1})));
    assert_eq!(update["before"], json!({"id": 1, "note": "first"}));
    assert_eq!(update["after"], json!({"id": 1, "note": "changed"}));
    let delete = audit[2].1.as_ref().unwrap();
    assert_eq!(delete["before"], json!({"id": 1, "note": "changed"}));

    // The other common types, streamed: enum, domain, uuid, interval, time,
    // floats, small ints, bounded strings, arrays of ints.
    psql(&format!(
        "INSERT INTO {s}.kinds VALUES (1, 'happy', 7, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
             '1 day 02:00:00', '13:14:15.5', 1.5, 2.25, -3, 'ab', 'label', '{{1,2,NULL}}', -12.345);"
    ));
    let kinds = wait_events(&db.topic("kinds"), 1);
    assert_eq!(
        kinds[0].1.as_ref().unwrap()["after"],
        json!({"id": 1, "m": "happy", "p": 7, "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
               "span": 93_600_000_000i64, "t": 47_655_500_000i64, "r": 1.5, "d": 2.25, "small": -3,
               "code": "ab ", "label": "label", "nums": [1, 2, null],
               "free": {"scale": 3, "value": "z8c="}})
    );

    // A truncate, which Debezium emits when `skipped.operations` lets it.
    psql(&format!("TRUNCATE {s}.audit"));
    let audit = wait_events(&db.topic("audit"), 5);
    assert_eq!(audit[4].0, None, "a truncate has no key");
    assert_eq!(audit[4].1.as_ref().unwrap()["op"], "t");

    // A column added mid-stream shows up without a restart.
    let before = psql("SELECT pg_current_wal_lsn()");
    psql(&format!(
        "ALTER TABLE {s}.items ADD COLUMN color text; UPDATE {s}.items SET color = 'red' WHERE id = 3;"
    ));
    let all = wait_events(&items, 7);
    assert_eq!(all[6].1.as_ref().unwrap()["after"]["color"], "red");

    // Committed offsets let the slot move on.
    wait_for(
        "the slot's confirmed LSN to advance",
        Duration::from_secs(90),
        || {
            let moved = psql(&format!(
            "SELECT confirmed_flush_lsn > '{}' FROM pg_replication_slots WHERE slot_name = '{}'",
            before.trim(),
            db.slot
        ));
            moved.trim() == "t"
        },
    );
    w.stop_cleanly();
}

#[test]
fn a_snapshot_under_concurrent_writes_has_every_row_exactly_once() {
    let db = Db::new("cdc_conc");
    let s = &db.schema;
    psql(&format!(
        "CREATE TABLE {s}.t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO {s}.t SELECT g, 0 FROM generate_series(1, 5000) g;"
    ));
    let scratch = Scratch::new("cdc-conc");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut config = db.connector(&unique("pg"));
    // Small chunks, so the snapshot is still being read while rows change.
    config["config"]["snapshot.fetch.size"] = json!(50);
    let c = scratch.write_json("pg.json", &config);
    let topic = db.topic("t");
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    wait_for("the snapshot to begin", Duration::from_secs(60), || {
        topic_count(&topic) > 0
    });
    for round in 1..=20 {
        let from = 5000 + round * 50;
        psql(&format!(
            "INSERT INTO {s}.t SELECT g, {round} FROM generate_series({}, {from}) g;
             UPDATE {s}.t SET v = {round} WHERE id % 97 = {round};
             DELETE FROM {s}.t WHERE id = {round} * 200;",
            from - 49
        ));
    }
    let want: BTreeMap<i64, i64> = psql(&format!("SELECT id, v FROM {s}.t"))
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(id, v)| (id.parse().unwrap(), v.parse().unwrap()))
        .collect();
    let until = psql(&format!("SELECT count(*) FROM {s}.t"));
    assert_eq!(until.trim().parse::<usize>().unwrap(), want.len());
    // Replaying the events in order rebuilds the table exactly, and no row is
    // both read by the snapshot and inserted by the stream.
    let mut rebuilt: BTreeMap<i64, i64> = BTreeMap::new();
    let mut origin: BTreeMap<i64, String> = BTreeMap::new();
    wait_for("the stream to catch up", Duration::from_secs(120), || {
        rebuilt.clear();
        origin.clear();
        for (_, v) in events(&topic) {
            let Some(v) = v else { continue };
            let op = v["op"].as_str().unwrap().to_owned();
            match op.as_str() {
                "r" | "c" | "u" => {
                    let id = v["after"]["id"].as_i64().unwrap();
                    rebuilt.insert(id, v["after"]["v"].as_i64().unwrap());
                    if op != "u" {
                        assert!(
                            origin.insert(id, op).is_none(),
                            "row {id} was read and inserted"
                        );
                    }
                }
                "d" => {
                    rebuilt.remove(&v["before"]["id"].as_i64().unwrap());
                }
                _ => {}
            }
        }
        rebuilt == want
    });
    w.stop_cleanly();
}

/// Kills the worker with -9 right after it rewrites its offsets file: when
/// the stored offset is ahead of what the slot has been told (PostgreSQL hears
/// of it a moment later), a restart streams again from the slot's older
/// position, and the changes between it and the stored offset must not be
/// emitted again: the runtime's resume scan covers only what lies past the
/// stored marks.
fn kill_right_after_an_offset_store(w: &mut WorkerProcess, offsets: &std::path::Path) {
    let before = std::fs::read(offsets).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read(offsets).unwrap_or_default() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "no offsets stored within a minute"
        );
        // A millisecond, not the usual 100: the window is the slot's
        // feedback delay, which is short.
        std::thread::sleep(Duration::from_millis(1));
    }
    w.kill9();
}

#[test]
fn a_kill_mid_stream_loses_and_doubles_nothing() {
    let db = Db::new("cdc_kill");
    let s = &db.schema;
    psql(&format!(
        "CREATE TABLE {s}.t (id int PRIMARY KEY, v text);
         INSERT INTO {s}.t SELECT g, 'snap' FROM generate_series(1, 2000) g;"
    ));
    let scratch = Scratch::new("cdc-kill");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let offsets = scratch.path("offsets.json");
    let name = unique("pg");
    let c = scratch.write_json("pg.json", &db.connector(&name));
    let topic = db.topic("t");
    let mut w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&c));
    wait_for("the snapshot", Duration::from_secs(90), || {
        topic_count(&topic) >= 2000
    });
    // Small transactions (and a few updates) until the kills are done, so
    // every kill lands while rows are being streamed.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (s, done) = (s.clone(), done.clone());
        std::thread::spawn(move || {
            let mut batches = 0;
            // At least a few after the last kill, so the last restart streams too.
            let mut after_done = 0;
            while after_done < 5 {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    after_done += 1;
                }
                let from = 2001 + batches * 100;
                psql(&format!(
                    "INSERT INTO {s}.t SELECT g, 'stream' FROM generate_series({from}, {}) g;
                     UPDATE {s}.t SET v = 'updated' WHERE id BETWEEN {from} AND {};",
                    from + 99,
                    from + 4
                ));
                batches += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            batches
        })
    };
    // Killed four times, each right after an offset store.
    let mut logs = Vec::new();
    for round in 1..=4 {
        let at = topic_count(&topic) + 300;
        wait_for("more streamed changes", Duration::from_secs(90), || {
            topic_count(&topic) >= at
        });
        kill_right_after_an_offset_store(&mut w, &offsets);
        eprintln!("kill {round} at {} records", topic_count(&topic));
        logs.push(w.log_text());
        w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&c));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = writer.join().unwrap() as i64;
    // 2,000 reads, then per batch 100 inserts and 5 updates.
    let expected = 2000 + batches * 105;
    wait_for("every change", Duration::from_secs(180), || {
        topic_count(&topic) >= expected
    });
    // Settle: anything beyond would be a duplicate arriving late.
    w.stop_cleanly();
    logs.push(w.log_text());
    // The kills hit the window: a restart found the slot behind what it had
    // stored.
    let hit = logs
        .iter()
        .filter(|l| l.contains("the slot is behind the stored offset"))
        .count();
    eprintln!("{hit} of 4 restarts found the slot behind the stored offset");
    assert!(hit > 0, "no restart was behind: {}", logs.join("\n"));
    let records = read_topic(&topic);
    let mut seen: BTreeMap<(i64, String), usize> = BTreeMap::new();
    let mut positions: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        let v: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let id = v["after"]["id"].as_i64().unwrap();
        *seen
            .entry((id, v["op"].as_str().unwrap().to_owned()))
            .or_default() += 1;
        *positions
            .entry(r.headers["__sluice.position"].clone())
            .or_default() += 1;
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        doubled.is_empty(),
        "{} records for {expected} changes; doubled: {doubled:?}",
        records.len()
    );
    assert!(
        positions.values().all(|n| *n == 1),
        "a position appears twice"
    );
    assert_eq!(seen.len() as i64, expected, "a change is missing");
    assert_eq!(records.len() as i64, expected, "exactly once");
}

/// A transaction's records go on to Kafka before its Commit has been read
/// (all but the last), so one large transaction is never held whole in
/// memory. Offsets stored from the middle of it must then resume exactly: a
/// kill while it is being delivered leaves every row once.
#[test]
fn a_large_transaction_killed_midway_leaves_every_row_once() {
    const ROWS: i64 = 40_000;
    let db = Db::new("cdc_bigtxn");
    let s = &db.schema;
    psql(&format!(
        "CREATE TABLE {s}.t (id int PRIMARY KEY, v text);
         INSERT INTO {s}.t SELECT g, 'snap' FROM generate_series(1, 10) g;"
    ));
    let scratch = Scratch::new("cdc-bigtxn");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let offsets = scratch.path("offsets.json");
    let mut config = db.connector(&unique("pg"));
    // Small batches: many offset stores within the one transaction.
    config["config"]["max.batch.size"] = json!(500);
    let c = scratch.write_json("pg.json", &config);
    let topic = db.topic("t");
    let mut w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&c));
    wait_for("the snapshot", Duration::from_secs(90), || {
        topic_count(&topic) >= 10
    });
    psql(&format!(
        "INSERT INTO {s}.t SELECT g, 'big' FROM generate_series(11, {}) g",
        ROWS + 10
    ));
    wait_for("part of the transaction", Duration::from_secs(90), || {
        topic_count(&topic) >= 5_000
    });
    kill_right_after_an_offset_store(&mut w, &offsets);
    let at_kill = topic_count(&topic);
    assert!(
        at_kill < ROWS + 10,
        "the kill came after the whole transaction"
    );
    w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&c));
    wait_for("every row", Duration::from_secs(120), || {
        topic_count(&topic) >= ROWS + 10
    });
    w.stop_cleanly();
    let seen = counts(&topic);
    let expected: BTreeMap<(i64, String), usize> = (1..=ROWS + 10)
        .map(|id| ((id, if id <= 10 { "r" } else { "c" }.to_owned()), 1))
        .collect();
    let wrong: Vec<_> = seen
        .iter()
        .filter(|(k, n)| expected.get(k) != Some(n))
        .take(5)
        .collect();
    assert!(
        wrong.is_empty(),
        "killed at {at_kill}: doubled or unexpected {wrong:?}"
    );
    assert_eq!(seen.len(), expected.len(), "a row is missing");
    assert_eq!(topic_count(&topic), ROWS + 10, "exactly once");
}

/// Each table's events: how often each id appears, per op.
fn counts(topic: &str) -> BTreeMap<(i64, String), usize> {
    let mut seen = BTreeMap::new();
    for (_, v) in events(topic) {
        let v = v.expect("no tombstones here");
        let id = v["after"]["id"].as_i64().unwrap();
        *seen
            .entry((id, v["op"].as_str().unwrap().to_owned()))
            .or_default() += 1;
    }
    seen
}

#[test]
fn a_kill_during_the_snapshot_resumes_it_without_doubling_a_row() {
    let db = Db::new("cdc_snapkill");
    let s = &db.schema;
    psql(&format!(
        "CREATE TABLE {s}.a (id int PRIMARY KEY, v text);
         INSERT INTO {s}.a SELECT g, 'a' FROM generate_series(1, 60000) g;
         CREATE TABLE {s}.b (id int PRIMARY KEY, v text);
         INSERT INTO {s}.b SELECT g, 'b' FROM generate_series(1, 20000) g;"
    ));
    let scratch = Scratch::new("cdc-snapkill");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut config = db.connector(&unique("pg"));
    // Small fetches keep the snapshot running long enough to be killed in;
    // several partitions make what reached Kafka a different prefix in each.
    config["config"]["snapshot.fetch.size"] = json!(100);
    config["config"]["topic.creation.default.partitions"] = json!(4);
    let c = scratch.write_json("pg.json", &config);
    let (a, b) = (db.topic("a"), db.topic("b"));
    let mut w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&c));
    // Killed in the first table, then again in the second, while resuming.
    let mut logs = Vec::new();
    for (topic, at, total) in [(&a, 10_000, 60_000), (&b, 2_000, 20_000)] {
        wait_for("snapshot rows", Duration::from_secs(90), || {
            topic_count(topic) >= at
        });
        w.kill9();
        logs.push(w.log_text());
        let reached = topic_count(topic);
        assert!(
            reached < total,
            "the snapshot of {topic} ended before the kill"
        );
        w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&c));
    }
    wait_for("the whole snapshot", Duration::from_secs(120), || {
        topic_count(&b) >= 20_000
    });
    psql(&format!(
        "INSERT INTO {s}.a SELECT g, 'new' FROM generate_series(60001, 60010) g"
    ));
    wait_for("the streamed inserts", Duration::from_secs(60), || {
        topic_count(&a) >= 60_010
    });
    let log = w.log_text();
    assert!(w.terminate(Duration::from_secs(30)).success(), "{log}");
    // Both restarts carried on from the slot, neither started over (the first
    // kill may come before any offset is stored; the second cannot).
    logs.push(log);
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("dropping the replication slot")),
        "a restart started the snapshot over: {}",
        logs.join("\n")
    );
    assert!(
        logs[2].contains("resuming the interrupted snapshot"),
        "the second restart did not resume from the stored offset: {}",
        logs[2]
    );
    let (seen_a, seen_b) = (counts(&a), counts(&b));
    let want_a: BTreeMap<(i64, String), usize> = (1..=60_000)
        .map(|id| ((id, "r".to_owned()), 1))
        .chain((60_001..=60_010).map(|id| ((id, "c".to_owned()), 1)))
        .collect();
    let want_b: BTreeMap<(i64, String), usize> =
        (1..=20_000).map(|id| ((id, "r".to_owned()), 1)).collect();
    let doubled = |seen: &BTreeMap<(i64, String), usize>| {
        seen.iter()
            .filter(|(_, n)| **n > 1)
            .take(5)
            .map(|(k, n)| format!("{k:?}×{n}"))
            .collect::<Vec<_>>()
    };
    assert!(
        seen_a == want_a,
        "table a: {} events, doubled {:?}",
        seen_a.values().sum::<usize>(),
        doubled(&seen_a)
    );
    assert!(
        seen_b == want_b,
        "table b: {} events, doubled {:?}",
        seen_b.values().sum::<usize>(),
        doubled(&seen_b)
    );
}

#[test]
fn a_snapshot_killed_and_then_changed_starts_over_and_loses_nothing() {
    let db = Db::new("cdc_snapredo");
    let s = &db.schema;
    psql(&format!(
        "CREATE TABLE {s}.t (id int PRIMARY KEY, v text);
         INSERT INTO {s}.t SELECT g, 'old' FROM generate_series(1, 40000) g;"
    ));
    let scratch = Scratch::new("cdc-snapredo");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut config = db.connector(&unique("pg"));
    config["config"]["snapshot.fetch.size"] = json!(100);
    let c = scratch.write_json("pg.json", &config);
    let topic = db.topic("t");
    let mut w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&c));
    wait_for("snapshot rows", Duration::from_secs(90), || {
        topic_count(&topic) >= 5_000
    });
    w.kill9();
    assert!(
        topic_count(&topic) < 40_000,
        "the snapshot ended before the kill"
    );
    // Rows not yet read change while the worker is down: the old snapshot's
    // state is gone, so it cannot be carried on exactly.
    psql(&format!(
        "UPDATE {s}.t SET v = 'new' WHERE id > 39000; DELETE FROM {s}.t WHERE id = 40000;"
    ));
    w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&c));
    wait_for(
        "the new snapshot's last row",
        Duration::from_secs(120),
        || {
            events(&topic).iter().any(|(_, v)| {
                v.as_ref()
                    .is_some_and(|v| v["source"]["snapshot"] == "last")
            })
        },
    );
    let log = w.log_text();
    assert!(w.terminate(Duration::from_secs(30)).success(), "{log}");
    assert!(log.contains("snapshotting again from a new slot"), "{log}");
    // At least once: replayed in order, the events rebuild the table.
    let mut rebuilt: BTreeMap<i64, String> = BTreeMap::new();
    for (_, v) in events(&topic) {
        let v = v.unwrap();
        let id = v["after"]["id"].as_i64().unwrap();
        rebuilt.insert(id, v["after"]["v"].as_str().unwrap().to_owned());
    }
    let want: BTreeMap<i64, String> = (1..40_000)
        .map(|id| (id, if id > 39_000 { "new" } else { "old" }.to_owned()))
        .collect();
    assert!(rebuilt == want, "{} rows rebuilt", rebuilt.len());
}

#[test]
fn bad_setups_fail_with_what_to_do() {
    let db = Db::new("cdc_bad");
    let s = &db.schema;
    psql(&format!("CREATE TABLE {s}.nokey (v text)"));
    let scratch = Scratch::new("cdc-bad");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let run = |config: Value| {
        let c = scratch.write_json("pg.json", &config);
        let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
        let (status, trace) = w.wait_failed_trace(Duration::from_secs(60));
        assert!(!status.success());
        assert!(!w.log_text().contains("panicked"));
        trace
    };
    let trace = run(db.connector(&unique("pg")));
    assert!(
        trace.contains("has no primary key") && trace.contains("REPLICA IDENTITY FULL"),
        "{trace}"
    );
    psql(&format!("DROP TABLE {s}.nokey"));
    let mut wrong = db.connector(&unique("pg"));
    wrong["config"]["database.port"] = json!(1);
    let trace = run(wrong);
    assert!(trace.contains("cannot connect to PostgreSQL"), "{trace}");
    let mut wrong = db.connector(&unique("pg"));
    wrong["config"]["database.dbname"] = json!("no_such_db");
    let trace = run(wrong);
    assert!(trace.contains("database.dbname"), "{trace}");
}

#[test]
fn tls_to_the_database_checks_the_certificate_as_sslmode_says() {
    let db = Db::new("cdc_tls");
    let s = &db.schema;
    psql(&format!(
        "CREATE TABLE {s}.t (id int PRIMARY KEY, v text); INSERT INTO {s}.t VALUES (1, 'snap')"
    ));
    let scratch = Scratch::new("cdc-tls");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut config = db.connector(&unique("pg"));
    config["config"]["database.sslmode"] = json!("verify-full");
    config["config"]["database.sslrootcert"] = json!(postgres_ca());
    let c = scratch.write_json("pg.json", &config);
    let topic = db.topic("t");
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    wait_for("the snapshot row", Duration::from_secs(60), || {
        topic_count(&topic) >= 1
    });
    psql(&format!("INSERT INTO {s}.t VALUES (2, 'stream')"));
    wait_for("the streamed row", Duration::from_secs(60), || {
        topic_count(&topic) >= 2
    });
    let slot_ssl = psql(&format!(
        "SELECT s.ssl FROM pg_replication_slots r JOIN pg_stat_ssl s ON s.pid = r.active_pid WHERE r.slot_name = '{}'",
        db.slot
    ));
    assert_eq!(
        slot_ssl.trim(),
        "t",
        "the replication connection is not encrypted"
    );
    w.stop_cleanly();

    let run = |config: Value| {
        let c = scratch.write_json("pg.json", &config);
        let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
        let (status, trace) = w.wait_failed_trace(Duration::from_secs(60));
        assert!(!status.success());
        trace
    };
    // Signed by a CA that is not the one named: refused, and said so.
    let mut wrong_ca = db.connector(&unique("pg"));
    wrong_ca["config"]["database.sslmode"] = json!("verify-ca");
    wrong_ca["config"]["database.sslrootcert"] =
        json!(postgres_ca().replace("ca.crt", "other-ca.crt"));
    let trace = run(wrong_ca);
    assert!(trace.contains("database.sslrootcert"), "{trace}");
    // verify-full without a CA: the config names the missing key.
    let mut no_ca = db.connector(&unique("pg"));
    no_ca["config"]["database.sslmode"] = json!("verify-full");
    let trace = run(no_ca);
    assert!(
        trace.contains("'database.sslrootcert': is required"),
        "{trace}"
    );
}

#[test]
fn a_primary_key_change_is_a_delete_then_a_create() {
    let db = Db::new("cdc_pk");
    let s = &db.schema;
    psql(&format!(
        "CREATE TABLE {s}.t (id int PRIMARY KEY, v text); INSERT INTO {s}.t VALUES (1, 'a')"
    ));
    let scratch = Scratch::new("cdc-pk");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let c = scratch.write_json("pg.json", &db.connector(&unique("pg")));
    let topic = db.topic("t");
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    wait_events(&topic, 1);
    psql(&format!("UPDATE {s}.t SET id = 2 WHERE id = 1"));
    wait_events(&topic, 4);
    w.stop_cleanly();
    // As Debezium: the old key is deleted (and tombstoned), the new one created,
    // each naming the other in a header.
    let records = read_topic(&topic);
    assert_eq!(records.len(), 4);
    let value =
        |i: usize| -> Value { serde_json::from_slice(records[i].value.as_ref().unwrap()).unwrap() };
    let (delete, create) = (value(1), value(3));
    assert_eq!(delete["op"], "d");
    assert_eq!(delete["before"]["id"], 1);
    assert_eq!(records[1].key.as_deref(), Some(r#"{"id":1}"#));
    assert_eq!(records[1].headers["__debezium.newkey"], r#"{"id":2}"#);
    assert_eq!(records[2].key.as_deref(), Some(r#"{"id":1}"#));
    assert!(
        records[2].value.as_ref().is_none_or(|v| v.is_empty()),
        "a tombstone"
    );
    assert_eq!(create["op"], "c");
    assert_eq!(create["after"], json!({"id": 2, "v": "a"}));
    assert_eq!(records[3].key.as_deref(), Some(r#"{"id":2}"#));
    assert_eq!(records[3].headers["__debezium.oldkey"], r#"{"id":1}"#);
    // Every streamed record names its transaction's commit LSN (the position
    // header's first part) and its own change's LSN; one update, so one commit
    // and one change for all three.
    let commit = |i: usize| -> u64 {
        let position = &records[i].headers["__sluice.position"];
        position.split('/').next().unwrap().parse().unwrap()
    };
    let change = |i: usize| -> u64 { records[i].headers["__sluice.lsn.change"].parse().unwrap() };
    for i in 1..4 {
        assert_eq!(commit(i), commit(1));
        assert_eq!(change(i), change(1));
        assert!(change(i) < commit(i));
    }
    assert!(
        !records[0].headers.contains_key("__sluice.lsn.change"),
        "a snapshot row is no change"
    );
}

#[test]
fn decimal_and_binary_handling_modes_apply_to_snapshot_and_stream() {
    let db = Db::new("cdc_modes");
    let s = &db.schema;
    psql(&format!(
        "CREATE TABLE {s}.t (id int PRIMARY KEY, amount numeric(10, 2), raw bytea);
         INSERT INTO {s}.t VALUES (1, 12.5, '\\x0aff')"
    ));
    let scratch = Scratch::new("cdc-modes");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut config = db.connector(&unique("pg"));
    config["config"]["decimal.handling.mode"] = json!("string");
    config["config"]["binary.handling.mode"] = json!("hex");
    let c = scratch.write_json("pg.json", &config);
    let topic = db.topic("t");
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    wait_events(&topic, 1);
    psql(&format!("INSERT INTO {s}.t VALUES (2, 0.05, '\\x00')"));
    let events = wait_events(&topic, 2);
    w.stop_cleanly();
    let after: Vec<&Value> = events
        .iter()
        .map(|(_, v)| &v.as_ref().unwrap()["after"])
        .collect();
    assert_eq!(
        *after[0],
        json!({"id": 1, "amount": "12.50", "raw": "0aff"})
    );
    assert_eq!(*after[1], json!({"id": 2, "amount": "0.05", "raw": "00"}));
}

#[test]
fn a_partitioned_tables_changes_come_as_the_tables_own() {
    let db = Db::new("cdc_part");
    let s = &db.schema;
    psql(&format!(
        "CREATE TABLE {s}.events (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
         CREATE TABLE {s}.events_jan PARTITION OF {s}.events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
         CREATE TABLE {s}.events_feb PARTITION OF {s}.events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
         INSERT INTO {s}.events VALUES (1, '2026-01-05'), (2, '2026-02-05');"
    ));
    let scratch = Scratch::new("cdc-part");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let c = scratch.write_json("pg.json", &db.connector(&unique("pg")));
    let topic = db.topic("events");
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    wait_events(&topic, 2);
    psql(&format!(
        "INSERT INTO {s}.events VALUES (3, '2026-01-09'), (4, '2026-02-09')"
    ));
    let events = wait_events(&topic, 4);
    w.stop_cleanly();
    let ops: Vec<(i64, String)> = events
        .iter()
        .map(|(_, v)| {
            let v = v.as_ref().unwrap();
            (
                v["after"]["id"].as_i64().unwrap(),
                v["op"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [(1, "r"), (2, "r"), (3, "c"), (4, "c")].map(|(i, o)| (i, o.to_owned()))
    );
    for partition in ["events_jan", "events_feb"] {
        assert_eq!(
            topic_count(&db.topic(partition)),
            0,
            "{partition} has a topic of its own"
        );
    }
}

#[test]
fn heartbeats_move_an_idle_slot_on() {
    let db = Db::new("cdc_hb");
    let s = &db.schema;
    psql(&format!(
        "CREATE TABLE {s}.idle (id int PRIMARY KEY);
         CREATE TABLE {s}.heartbeat (id int PRIMARY KEY, at timestamptz);"
    ));
    let scratch = Scratch::new("cdc-hb");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut config = db.connector(&unique("pg"));
    config["config"]["heartbeat.interval.ms"] = json!(300);
    config["config"]["heartbeat.action.query"] = json!(format!(
        "INSERT INTO {s}.heartbeat VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = now()"
    ));
    let c = scratch.write_json("pg.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    let beats = format!("__debezium-heartbeat.{}", db.prefix);
    wait_for("heartbeat records", Duration::from_secs(60), || {
        topic_count(&beats) >= 2
    });
    let beat = &read_topic(&beats)[0];
    assert_eq!(
        serde_json::from_str::<Value>(beat.key.as_deref().unwrap()).unwrap(),
        json!({"serverName": db.prefix})
    );
    // WAL written elsewhere while the captured tables stay idle.
    psql(&format!(
        "CREATE TABLE {s}_other AS SELECT g FROM generate_series(1, 10000) g"
    ));
    let written = psql("SELECT pg_current_wal_lsn()");
    wait_for("the idle slot to move on", Duration::from_secs(120), || {
        psql(&format!(
            "SELECT confirmed_flush_lsn > '{}' FROM pg_replication_slots WHERE slot_name = '{}'",
            written.trim(),
            db.slot
        ))
        .trim()
            == "t"
    });
    psql(&format!("DROP TABLE {s}_other"));
    w.stop_cleanly();
}

#[test]
fn the_seeds_debezium_config_runs_as_written() {
    // The seed's config, with only where the database is (and a fresh server
    // name, so reruns on one broker do not meet old topics) changed.
    let seed = include_str!("../../shared/seeds/003_ac4c57754fe3eaa3.txt");
    let start = seed.find("\"name\": \"postgres-source\"").unwrap();
    let open = seed[..start].rfind('{').unwrap();
    let close = open + seed[open..].find("\n}\n").unwrap() + 2;
    let mut config: Value = serde_json::from_str(&seed[open..close]).unwrap();
    let server = unique("prod-db");
    let c = config["config"].as_object_mut().unwrap();
    c.insert("database.hostname".into(), json!("127.0.0.1"));
    c.insert("database.port".into(), json!(postgres_port().to_string()));
    c.insert("database.dbname".into(), json!("postgres"));
    c.insert("database.server.name".into(), json!(server));
    psql(
        "DO $$ BEGIN CREATE ROLE debezium SUPERUSER LOGIN PASSWORD 'secret'; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         CREATE TABLE IF NOT EXISTS public.users (id int PRIMARY KEY, email text);
         CREATE TABLE IF NOT EXISTS public.orders (id int PRIMARY KEY, user_id int, total numeric(10,2));
         TRUNCATE public.users, public.orders;
         INSERT INTO public.users VALUES (1, 'a@example.com');
         INSERT INTO public.orders VALUES (10, 1, 99.90);",
    );
    let slot = Db {
        schema: "public".into(),
        prefix: server.clone(),
        slot: "debezium_slot".into(),
    };
    let scratch = Scratch::new("cdc-seed");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let file = scratch.write_json("seed.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[file]);
    let users = format!("{server}.public.users");
    wait_for("the snapshot", Duration::from_secs(90), || {
        topic_count(&users) >= 1 && topic_count(&format!("{server}.public.orders")) >= 1
    });
    psql(
        "INSERT INTO public.users VALUES (2, 'b@example.com');
         DELETE FROM public.users WHERE id = 1;",
    );
    wait_for("the changes", Duration::from_secs(90), || {
        topic_count(&users) >= 3
    });
    // Per key, in order (the topic has the broker's default partitions).
    let mut by_key: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for r in read_topic(&users) {
        let key: Value = serde_json::from_str(r.key.as_deref().unwrap()).unwrap();
        let payload = match r.value.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => serde_json::from_slice::<Value>(v).unwrap()["payload"].clone(),
            None => Value::Null,
        };
        by_key
            .entry(key["payload"]["id"].as_i64().unwrap())
            .or_default()
            .push(payload);
    }
    // ExtractNewRecordState: rows, not envelopes; the delete a null row (its
    // schema kept), its tombstone dropped (Debezium 3.x ignores the seed's
    // drop.tombstones=false).
    assert_eq!(
        by_key,
        BTreeMap::from([
            (
                1,
                vec![json!({"id": 1, "email": "a@example.com"}), Value::Null]
            ),
            (2, vec![json!({"id": 2, "email": "b@example.com"})]),
        ])
    );
    w.stop_cleanly();
    psql("DROP PUBLICATION IF EXISTS debezium_pub");
    drop(slot);
}

#[test]
fn a_lost_slot_is_an_error_unless_snapshot_mode_is_when_needed() {
    let db = Db::new("cdc_lost");
    let s = &db.schema;
    psql(&format!(
        "CREATE TABLE {s}.t (id int PRIMARY KEY); INSERT INTO {s}.t VALUES (1), (2), (3);"
    ));
    let scratch = Scratch::new("cdc-lost");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut config = db.connector(&unique("pg"));
    let c = scratch.write_json("pg.json", &config);
    let topic = db.topic("t");
    let mut w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&c));
    wait_for("the snapshot", Duration::from_secs(60), || {
        topic_count(&topic) >= 3
    });
    assert!(w.terminate(Duration::from_secs(30)).success());
    psql(&format!("SELECT pg_drop_replication_slot('{}')", db.slot));
    // Changes made while the slot was gone cannot be streamed: say so.
    let mut w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&c));
    let (_, trace) = w.wait_failed_trace(Duration::from_secs(60));
    assert!(
        trace.contains("is gone") && trace.contains("offsets"),
        "{trace}"
    );
    // when_needed snapshots again from a new slot.
    config["config"]["snapshot.mode"] = json!("when_needed");
    let c = scratch.write_json("pg.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    wait_for("a second snapshot", Duration::from_secs(60), || {
        topic_count(&topic) >= 6
    });
    assert!(w.terminate(Duration::from_secs(30)).success());
}

/// A table of `rows` rows and a signal table, and a connector that streams
/// without an initial snapshot and reads incremental snapshots in `chunk`-row
/// chunks. Returns the worker config, the connector file and the table's topic.
fn incremental_case(
    db: &Db,
    scratch: &Scratch,
    rows: u32,
    chunk: u32,
) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let s = &db.schema;
    psql(&format!(
        "CREATE TABLE {s}.t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO {s}.t SELECT g, 0 FROM generate_series(1, {rows}) g;
         CREATE TABLE {s}.signal (id text PRIMARY KEY, type text NOT NULL, data text);"
    ));
    let worker = scratch.write_json("worker.json", &worker_config(scratch));
    let mut config = db.connector(&unique("pg"));
    config["config"]["snapshot.mode"] = json!("no_data");
    config["config"]["signal.data.collection"] = json!(format!("{s}.signal"));
    config["config"]["incremental.snapshot.chunk.size"] = json!(chunk);
    config["config"]["table.include.list"] = json!(format!("{s}\\.t"));
    let c = scratch.write_json("pg.json", &config);
    (worker, c, db.topic("t"))
}

#[test]
fn an_incremental_snapshot_carries_on_after_a_kill() {
    let db = Db::new("cdc_inckill");
    let s = &db.schema;
    let scratch = Scratch::new("cdc-inckill");
    let (worker, c, topic) = incremental_case(&db, &scratch, 60_000, 100);
    let mut w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&c));
    wait_for("the slot to stream", Duration::from_secs(60), || {
        w.log_text().contains("streaming changes")
    });
    psql(&format!(
        "INSERT INTO {s}.signal VALUES ('go', 'execute-snapshot', '{{\"data-collections\": [\"{s}.t\"]}}')"
    ));
    wait_for("chunks read", Duration::from_secs(90), || {
        topic_count(&topic) >= 10_000
    });
    wait_for("the progress to be stored", Duration::from_secs(30), || {
        let stored: Value = std::fs::read_to_string(scratch.path("offsets.json"))
            .ok()
            .and_then(|o| serde_json::from_str(&o).ok())
            .unwrap_or_default();
        stored["connectors"]
            .as_object()
            .and_then(|c| c.values().next())
            .is_some_and(|c| c["offsets"][0]["offset"]["incremental_snapshot"]["after"].is_array())
    });
    w.kill9();
    let at_kill = topic_count(&topic) as usize;
    assert!(at_kill < 60_000, "the snapshot ended before the kill");
    w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&c));
    let reads = |topic: &str| {
        let mut n: BTreeMap<i64, usize> = BTreeMap::new();
        for (_, v) in events(topic) {
            *n.entry(v.unwrap()["after"]["id"].as_i64().unwrap())
                .or_default() += 1;
        }
        n
    };
    wait_for("every row read", Duration::from_secs(120), || {
        reads(&topic).len() == 60_000
    });
    let log = w.log_text();
    assert!(w.terminate(Duration::from_secs(30)).success(), "{log}");
    assert!(log.contains("incremental snapshot resumed"), "{log}");
    // Carried on, not started over: the first chunks were read once; only
    // those read after the stored progress were read again.
    let n = reads(&topic);
    assert_eq!(n[&1], 1, "the first row was read again");
    let twice = n.values().filter(|c| **c > 1).count();
    assert!(twice < at_kill, "{twice} of {at_kill} rows read twice");
}

#[test]
fn an_incremental_snapshot_runs_alongside_streaming() {
    let db = Db::new("cdc_inc");
    let s = &db.schema;
    let scratch = Scratch::new("cdc-inc");
    let (worker, c, topic) = incremental_case(&db, &scratch, 1000, 64);
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    // Streaming works before anything is snapshotted.
    wait_for("the slot to stream", Duration::from_secs(60), || {
        w.log_text().contains("streaming changes")
    });
    psql(&format!("UPDATE {s}.t SET v = -1 WHERE id = 1"));
    wait_for("the first streamed change", Duration::from_secs(60), || {
        topic_count(&topic) >= 1
    });
    psql(&format!(
        "INSERT INTO {s}.signal VALUES ('go', 'execute-snapshot', '{{\"data-collections\": [\"{s}.t\"], \"type\": \"incremental\"}}')"
    ));
    // Rows keep changing while the chunks are read.
    for round in 1..=10 {
        psql(&format!(
            "UPDATE {s}.t SET v = {round} WHERE id % 50 = {round};
             INSERT INTO {s}.t VALUES (1000 + {round}, {round});
             DELETE FROM {s}.t WHERE id = {round} * 90;"
        ));
    }
    let want: BTreeMap<i64, i64> = psql(&format!("SELECT id, v FROM {s}.t"))
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(id, v)| (id.parse().unwrap(), v.parse().unwrap()))
        .collect();
    // Applying the events in order rebuilds the table: no read overwrote a
    // newer change, and every row was read or changed.
    let mut rebuilt: BTreeMap<i64, i64> = BTreeMap::new();
    let mut reads = 0;
    wait_for("the incremental snapshot", Duration::from_secs(120), || {
        rebuilt.clear();
        reads = 0;
        for (_, v) in events(&topic) {
            let Some(v) = v else { continue };
            match v["op"].as_str().unwrap() {
                "d" => {
                    rebuilt.remove(&v["before"]["id"].as_i64().unwrap());
                }
                op => {
                    if op == "r" {
                        assert_eq!(v["source"]["snapshot"], "incremental");
                        reads += 1;
                    }
                    rebuilt.insert(
                        v["after"]["id"].as_i64().unwrap(),
                        v["after"]["v"].as_i64().unwrap(),
                    );
                }
            }
        }
        rebuilt == want
    });
    assert!(reads > 900, "the snapshot read the table ({reads} reads)");
    assert_eq!(
        topic_count(&db.topic("signal")),
        0,
        "the signal table's rows are not emitted"
    );
    w.stop_cleanly();
}

#[test]
fn slot_drop_on_stop_leaves_no_slot_behind() {
    let db = Db::new("cdc_dropslot");
    let s = &db.schema;
    psql(&format!("CREATE TABLE {s}.t (id int PRIMARY KEY)"));
    let scratch = Scratch::new("cdc-dropslot");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut config = db.connector(&unique("pg"));
    config["config"]["slot.drop.on.stop"] = json!(true);
    let c = scratch.write_json("pg.json", &config);
    let topic = db.topic("t");
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    wait_for("the slot to stream", Duration::from_secs(60), || {
        w.log_text().contains("streaming changes")
    });
    psql(&format!("INSERT INTO {s}.t VALUES (1)"));
    wait_for("the streamed insert", Duration::from_secs(60), || {
        topic_count(&topic) >= 1
    });
    let slots = || {
        psql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'",
            db.slot
        ))
        .trim()
        .to_owned()
    };
    assert_eq!(slots(), "1");
    let log = w.log_text();
    assert!(w.terminate(Duration::from_secs(30)).success(), "{log}");
    // Gone when the worker has stopped, not some time later.
    assert_eq!(slots(), "0", "the slot outlived the stop: {}", w.log_text());
}
