//! The PostgreSQL CDC source while its database shuts down or goes away:
//! each test has a PostgreSQL of its own, since stopping the shared one would
//! break the other tests.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

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
    w.terminate(Duration::from_secs(30));
}
