//! The PostgreSQL CDC source while its database goes away and comes back:
//! each test has a PostgreSQL of its own, since stopping the shared one would
//! break the other tests. Outages are ridden out (never a FAILED task under
//! default settings), every committed row reaches Kafka exactly once, an idle
//! connector confirms the WAL it has passed (so a fast shutdown is prompt),
//! and the SQL side is rebuilt along with the replication stream.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

/// How long each outage lasts: longer than what failed the task before
/// (about 34 s, pg_walstream's own retries) and than libpq's connect timeout.
const OUTAGE: Duration = Duration::from_secs(35);

fn connector(pg: &PrivatePostgres, name: &str, prefix: &str, slot: &str) -> Value {
    json!({"name": name, "config": {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "127.0.0.1",
        "database.port": pg.port,
        "database.user": "postgres",
        "database.dbname": "postgres",
        "topic.prefix": prefix,
        "slot.name": slot,
        "publication.name": format!("pub_{slot}"),
        "publication.autocreate.mode": "filtered",
        "table.include.list": "public\\.t",
        "key.converter": "json",
        "key.converter.schemas.enable": false,
        "value.converter": "json",
        "value.converter.schemas.enable": false,
        "poll.interval.ms": 100,
        "topic.creation.default.partitions": 2
    }})
}

fn names(tag: &str) -> (String, String, String) {
    let id = unique(tag).to_lowercase().replace(['-', '.'], "_");
    (unique("pg"), format!("cdc_{id}"), format!("slot_{id}"))
}

fn slot_column(pg: &PrivatePostgres, slot: &str, column: &str) -> String {
    pg.psql(&format!(
        "SELECT {column} FROM pg_replication_slots WHERE slot_name = '{slot}'"
    ))
    .trim()
    .to_owned()
}

/// Polls the connector's status over REST until stopped, keeping every state
/// its connector and tasks reported, and the trace of any failure.
struct StatusWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeMap<String, usize>>>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StatusWatch {
    fn start(url: String, name: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let path = format!("{url}/connectors/{name}/status");
        let thread = {
            let (stop, seen, failures) = (stop.clone(), seen.clone(), failures.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(status) = client.get(&path).send().and_then(|r| r.json::<Value>()) {
                        let states = std::iter::once(&status["connector"])
                            .chain(status["tasks"].as_array().into_iter().flatten());
                        for s in states {
                            let state = s["state"].as_str().unwrap_or("?").to_owned();
                            if state == "FAILED" {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(s["trace"].as_str().unwrap_or_default().to_owned());
                            }
                            *seen.lock().unwrap().entry(state).or_default() += 1;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Self {
            stop,
            seen,
            failures,
            thread: Some(thread),
        }
    }

    fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }

    fn finish(mut self) -> (BTreeMap<String, usize>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (self.seen.lock().unwrap().clone(), self.failures())
    }
}

/// Inserts rows `t(id)` ten at a time until stopped, whether or not the
/// server is up: what committed is read back from the table afterwards (an
/// insert cut off by the shutdown may or may not have committed).
struct Inserter {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicI64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Inserter {
    fn start(url: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicI64::new(0));
        let thread = {
            let (stop, ok) = (stop.clone(), ok.clone());
            std::thread::spawn(move || {
                let mut next = 1;
                while !stop.load(Ordering::Relaxed) {
                    let sql = format!(
                        "INSERT INTO t SELECT g, 'v' || g FROM generate_series({next}, {}) g",
                        next + 9
                    );
                    if try_psql_at(&url, &sql).is_ok() {
                        ok.fetch_add(10, Ordering::Relaxed);
                    }
                    next += 10;
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        Self {
            stop,
            ok,
            thread: Some(thread),
        }
    }

    fn committed(&self) -> i64 {
        self.ok.load(Ordering::Relaxed)
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// Every row of `t` in the topic exactly once (by key, and no position twice),
/// and nothing else.
fn assert_exactly_once(pg: &PrivatePostgres, topic: &str) {
    let want: BTreeSet<i64> = pg
        .psql("SELECT id FROM t")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    let records = read_topic(topic);
    let mut by_id: BTreeMap<i64, usize> = BTreeMap::new();
    let mut by_position: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        let v: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        assert_eq!(v["op"], "c", "only inserts were made: {v}");
        *by_id.entry(v["after"]["id"].as_i64().unwrap()).or_default() += 1;
        *by_position
            .entry(r.headers["__sluice.position"].clone())
            .or_default() += 1;
    }
    let doubled: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let missing: Vec<_> = want
        .iter()
        .filter(|id| !by_id.contains_key(id))
        .take(5)
        .collect();
    eprintln!(
        "{} rows committed, {} records in Kafka, {} distinct ids",
        want.len(),
        records.len(),
        by_id.len()
    );
    assert!(doubled.is_empty(), "doubled (id×n): {doubled:?}");
    assert!(missing.is_empty(), "missing ids: {missing:?}");
    assert!(
        by_position.values().all(|n| *n == 1),
        "a __sluice.position appears twice"
    );
    assert_eq!(by_id.keys().copied().collect::<BTreeSet<_>>(), want);
    assert_eq!(records.len(), want.len());
}

#[test]
fn a_postgres_outage_is_ridden_out_and_loses_and_doubles_nothing() {
    let pg = PrivatePostgres::start();
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text)");
    let (name, prefix, slot) = names("cdc_outage");
    let scratch = Scratch::new("cdc-outage");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    // Default error settings: retrying is what a connector does by default.
    let c = scratch.write_json("pg.json", &connector(&pg, &name, &prefix, &slot));
    let topic = format!("{prefix}.public.t");
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    let watch = StatusWatch::start(w.rest_url(), &name);
    wait_for("the slot to stream", Duration::from_secs(60), || {
        w.log_text().contains("streaming changes")
    });
    let inserter = Inserter::start(pg.url.clone());
    wait_for("streamed rows", Duration::from_secs(60), || {
        topic_count(&topic) >= 200
    });

    let mut recoveries = Vec::new();
    for mode in ["fast", "immediate"] {
        let took = pg.stop(mode);
        eprintln!("PostgreSQL stopped (-m {mode}) in {took:?}");
        // A busy connector does not hold a shutdown up either.
        assert!(took < Duration::from_secs(10), "-m {mode} took {took:?}");
        // Down for a while: the length of the outage is what is tested.
        std::thread::sleep(OUTAGE);
        assert!(watch.failures().is_empty(), "{:?}", watch.failures());
        let ready = pg.start_again();
        let at_ready = topic_count(&topic);
        wait_for(
            "an event after the restart",
            Duration::from_secs(120),
            || topic_count(&topic) > at_ready,
        );
        let recovery = ready.elapsed();
        eprintln!(
            "-m {mode}: the next event reached Kafka {recovery:?} after PostgreSQL was ready"
        );
        recoveries.push(recovery);
        let at = topic_count(&topic) + 200;
        wait_for("streaming to go on", Duration::from_secs(60), || {
            topic_count(&topic) >= at
        });
    }
    let committed = inserter.committed();
    inserter.finish();
    let rows: i64 = pg.psql("SELECT count(*) FROM t").trim().parse().unwrap();
    eprintln!("{committed} rows reported committed to the inserter, {rows} in the table");
    wait_for("every row", Duration::from_secs(120), || {
        topic_count(&topic) >= rows
    });
    let log = w.log_text();
    assert!(w.terminate(Duration::from_secs(30)).success(), "{log}");
    let (states, failures) = watch.finish();
    eprintln!("states seen: {states:?}");
    assert!(failures.is_empty(), "the task failed: {failures:?}");
    assert!(states.contains_key("RUNNING"), "{states:?}");
    assert!(log.contains("reconnected to PostgreSQL"), "{log}");
    for r in &recoveries {
        // retriable.restart.connector.wait.ms (10 s by default) caps the
        // backoff; a connection attempt takes well under the rest.
        assert!(*r < Duration::from_secs(30), "recovery took {r:?}");
    }
    assert_exactly_once(&pg, &topic);
}

#[test]
fn an_idle_connector_confirms_the_wal_it_passed_so_postgres_stops_at_once() {
    let pg = PrivatePostgres::start();
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE other (id int, pad text)");
    let (name, prefix, slot) = names("cdc_idle");
    let scratch = Scratch::new("cdc-idle");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let c = scratch.write_json("pg.json", &connector(&pg, &name, &prefix, &slot));
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    wait_for("the slot to stream", Duration::from_secs(60), || {
        w.log_text().contains("streaming changes")
    });
    // Lots of WAL, none of it the connector's.
    pg.psql("INSERT INTO other SELECT g, repeat('x', 200) FROM generate_series(1, 50000) g");
    let written = pg.psql("SELECT pg_current_wal_lsn()").trim().to_owned();
    wait_for(
        "the idle slot to confirm the WAL it passed",
        Duration::from_secs(60),
        || {
            // More WAL elsewhere keeps the server's sent position moving.
            pg.psql("INSERT INTO other VALUES (0, 'x')");
            pg.psql(&format!(
                "SELECT confirmed_flush_lsn >= '{written}' FROM pg_replication_slots WHERE slot_name = '{slot}'"
            ))
            .trim()
                == "t"
        },
    );
    assert_eq!(slot_column(&pg, &slot, "active::text"), "true");
    // While the connector is connected, a fast shutdown does not wait for it.
    let took = pg.stop("fast");
    eprintln!("fast shutdown with an idle connector connected: {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "PostgreSQL took {took:?} to stop"
    );
    w.stop_cleanly();
}

#[test]
fn the_sql_connection_is_rebuilt_after_a_postgres_restart() {
    let pg = PrivatePostgres::start();
    pg.psql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' FROM generate_series(1, 500) g;
         CREATE TABLE heartbeat (id int PRIMARY KEY, at timestamptz);
         CREATE TABLE signal (id text PRIMARY KEY, type text NOT NULL, data text);",
    );
    let (name, prefix, slot) = names("cdc_sql");
    let scratch = Scratch::new("cdc-sql");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut config = connector(&pg, &name, &prefix, &slot);
    let c = config["config"].as_object_mut().unwrap();
    c.insert("snapshot.mode".into(), json!("no_data"));
    c.insert("table.include.list".into(), json!("public\\.(t|heartbeat)"));
    c.insert("heartbeat.interval.ms".into(), json!(300));
    c.insert(
        "heartbeat.action.query".into(),
        json!("INSERT INTO heartbeat VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = now()"),
    );
    c.insert("signal.data.collection".into(), json!("public.signal"));
    c.insert("incremental.snapshot.chunk.size".into(), json!(100));
    let c = scratch.write_json("pg.json", &config);
    let (topic, beats) = (
        format!("{prefix}.public.t"),
        format!("{prefix}.public.heartbeat"),
    );
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    let watch = StatusWatch::start(w.rest_url(), &name);
    wait_for("heartbeat queries", Duration::from_secs(60), || {
        topic_count(&beats) >= 2
    });
    pg.stop("fast");
    pg.start_again();
    // The heartbeat query runs again: its upserts stream again.
    let at = topic_count(&beats);
    wait_for(
        "heartbeat queries after the restart",
        Duration::from_secs(60),
        || topic_count(&beats) >= at + 2,
    );
    // An incremental snapshot signalled after the restart reads the table
    // (catalog reads and chunk queries go through the rebuilt connection).
    pg.psql(
        "INSERT INTO signal VALUES ('go', 'execute-snapshot', '{\"data-collections\": [\"public.t\"]}')",
    );
    let reads = || {
        read_topic(&topic)
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(r.value.as_deref()?).ok())
            .filter(|v| v["op"] == "r")
            .map(|v| v["after"]["id"].as_i64().unwrap())
            .collect::<BTreeSet<i64>>()
    };
    wait_for("the incremental snapshot", Duration::from_secs(90), || {
        reads().len() == 500
    });
    let log = w.log_text();
    assert!(w.terminate(Duration::from_secs(30)).success(), "{log}");
    let (_, failures) = watch.finish();
    assert!(failures.is_empty(), "the task failed: {failures:?}");
    assert!(!log.contains("heartbeat.action.query failed"), "{log}");
}

#[test]
fn with_no_retries_an_outage_fails_the_task_and_its_restart_doubles_nothing() {
    let pg = PrivatePostgres::start();
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text)");
    let (name, prefix, slot) = names("cdc_noretry");
    let scratch = Scratch::new("cdc-noretry");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut config = connector(&pg, &name, &prefix, &slot);
    config["config"]["errors.max.retries"] = json!(0);
    let c = scratch.write_json("pg.json", &config);
    let topic = format!("{prefix}.public.t");
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    let url = w.rest_url();
    wait_for("the slot to stream", Duration::from_secs(60), || {
        w.log_text().contains("streaming changes")
    });
    let inserter = Inserter::start(pg.url.clone());
    wait_for("streamed rows", Duration::from_secs(60), || {
        topic_count(&topic) >= 300
    });
    let state = || {
        reqwest::blocking::get(format!("{url}/connectors/{name}/status"))
            .and_then(|r| r.json::<Value>())
            .map(|s| s["tasks"][0].clone())
            .unwrap_or_default()
    };
    pg.stop("fast");
    // errors.max.retries=0: the first lost connection fails the task.
    let stopped = Instant::now();
    wait_for("the task to fail", Duration::from_secs(60), || {
        state()["state"] == "FAILED"
    });
    eprintln!("FAILED {:?} after the shutdown", stopped.elapsed());
    let trace = state()["trace"].as_str().unwrap_or_default().to_owned();
    assert!(trace.contains("errors.max.retries"), "{trace}");
    // The outage outlasts the slot's last feedback; then the task is restarted.
    std::thread::sleep(Duration::from_secs(5));
    pg.start_again();
    let restarted = reqwest::blocking::Client::new()
        .post(format!("{url}/connectors/{name}/tasks/0/restart"))
        .send()
        .unwrap();
    assert!(restarted.status().is_success(), "{:?}", restarted.text());
    wait_for("the task to run again", Duration::from_secs(60), || {
        state()["state"] == "RUNNING"
    });
    let at = topic_count(&topic) + 300;
    wait_for("streaming to go on", Duration::from_secs(90), || {
        topic_count(&topic) >= at
    });
    inserter.finish();
    let rows: i64 = pg.psql("SELECT count(*) FROM t").trim().parse().unwrap();
    wait_for("every row", Duration::from_secs(120), || {
        topic_count(&topic) >= rows
    });
    w.stop_cleanly();
    assert_exactly_once(&pg, &topic);
}

#[test]
fn an_outage_during_the_snapshot_carries_it_on_without_doubling_a_row() {
    let pg = PrivatePostgres::start();
    pg.psql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' FROM generate_series(1, 60000) g;",
    );
    let (name, prefix, slot) = names("cdc_snapout");
    let scratch = Scratch::new("cdc-snapout");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut config = connector(&pg, &name, &prefix, &slot);
    // Small fetches keep the snapshot running long enough to be cut.
    config["config"]["snapshot.fetch.size"] = json!(100);
    let c = scratch.write_json("pg.json", &config);
    let topic = format!("{prefix}.public.t");
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    let watch = StatusWatch::start(w.rest_url(), &name);
    wait_for("snapshot rows", Duration::from_secs(90), || {
        topic_count(&topic) >= 10_000
    });
    pg.stop("fast");
    let at_stop = topic_count(&topic);
    assert!(at_stop < 60_000, "the snapshot ended before the outage");
    std::thread::sleep(Duration::from_secs(5));
    pg.start_again();
    wait_for("the whole snapshot", Duration::from_secs(180), || {
        topic_count(&topic) >= 60_000
    });
    pg.psql("INSERT INTO t VALUES (60001, 'streamed')");
    wait_for("the streamed insert", Duration::from_secs(60), || {
        topic_count(&topic) >= 60_001
    });
    let log = w.log_text();
    assert!(w.terminate(Duration::from_secs(30)).success(), "{log}");
    let (_, failures) = watch.finish();
    assert!(failures.is_empty(), "the task failed: {failures:?}");
    assert!(log.contains("the task started again"), "{log}");
    assert!(
        !log.contains("dropping the replication slot to snapshot consistently from a new one"),
        "the snapshot started over: {log}"
    );
    let mut by_id: BTreeMap<i64, usize> = BTreeMap::new();
    for r in read_topic(&topic) {
        let v: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        *by_id.entry(v["after"]["id"].as_i64().unwrap()).or_default() += 1;
    }
    let doubled: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(doubled.is_empty(), "doubled (id×n): {doubled:?}");
    assert_eq!(by_id.len(), 60_001);
}
