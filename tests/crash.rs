//! Kill -9 of the standalone worker mid-run, several times, then let it finish:
//! the topic holds every generated event exactly once (idempotent resume), and
//! the file sink holds every record, repeated only past the offsets its group had
//! committed when the worker died.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use support::*;

#[test]
fn kill9_repeatedly_loses_nothing_and_duplicates_nothing_in_kafka() {
    let scratch = Scratch::new("crash");
    let topic = unique("events");
    create_topic(&scratch, &topic, 8);
    let sink_name = unique("file");
    let out = scratch.path("out.jsonl");
    let total: i64 = 60_000;
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let source = scratch.write_json(
        "datagen.json",
        &json!({"name": unique("gen"), "config": {
            "connector.class": "datagen", "tasks.max": 2, "kafka.topic": topic,
            "max.records": total, "records.per.second": 3000, "batch.size": 500,
            "seed": 11, "topic.creation.default.partitions": 8
        }}),
    );
    let sink = scratch.write_json(
        "sink.json",
        &json!({"name": sink_name, "config": {
            "connector.class": "file-sink", "topics": topic,
            "file": out.display().to_string(), "format": "envelope"
        }}),
    );
    let connectors = [source, sink];

    // Committed offsets of the sink's group at each kill: replays start there.
    let mut committed_at_kill: Vec<BTreeMap<i32, i64>> = Vec::new();
    for round in 1..=3 {
        let mut w = WorkerProcess::start(&scratch, &worker, &connectors);
        let target = round * total / 5;
        wait_for(
            &format!("{target} events before kill {round}"),
            Duration::from_secs(120),
            || topic_count(&topic) >= target,
        );
        // Let the sink get going too, so the kill lands mid-write.
        let lines = count_lines(&out);
        wait_for("the sink to move", Duration::from_secs(60), || {
            count_lines(&out) > lines
        });
        w.kill9();
        committed_at_kill.push(committed(&format!("connect-{sink_name}"), &topic));
    }
    let mut w = WorkerProcess::start(&scratch, &worker, &connectors);
    wait_for("every event in Kafka", Duration::from_secs(180), || {
        topic_count(&topic) >= total
    });
    // Every event reached Kafka; now every record must reach the file.
    let records = read_topic(&topic);
    wait_for("every record in the file", Duration::from_secs(120), || {
        let lines = read_jsonl(&out);
        let have: BTreeSet<(i64, i64)> = lines
            .iter()
            .map(|l| {
                (
                    l["partition"].as_i64().unwrap(),
                    l["offset"].as_i64().unwrap(),
                )
            })
            .collect();
        have.len() == records.len()
    });
    w.stop_cleanly();

    // Kafka: each (task, sequence) exactly once, none missing.
    assert_eq!(
        records.len() as i64,
        total,
        "records in Kafka after 3 kills"
    );
    let mut events = BTreeSet::new();
    for r in &records {
        let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let id = (
            v["generator"].as_i64().unwrap(),
            v["sequence"].as_i64().unwrap(),
        );
        assert!(events.insert(id), "{id:?} twice in Kafka");
    }
    for task in 0..2 {
        let seqs: Vec<i64> = events
            .iter()
            .filter(|(t, _)| *t == task)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(
            seqs,
            (0..total / 2).collect::<Vec<_>>(),
            "task {task}: a gap or a duplicate"
        );
    }

    // File: every record, and repeats only where a replay could start.
    let text = std::fs::read_to_string(&out).unwrap();
    let mut copies: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for line in text.lines() {
        let l: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
        let at = (
            l["partition"].as_i64().unwrap() as i32,
            l["offset"].as_i64().unwrap(),
        );
        *copies.entry(at).or_default() += 1;
    }
    assert_eq!(
        copies.len(),
        records.len(),
        "every Kafka record is in the file"
    );
    let mut repeated = 0;
    for ((p, o), n) in &copies {
        let replays = committed_at_kill
            .iter()
            .filter(|c| c.get(p).copied().unwrap_or(0) <= *o)
            .count();
        assert!(
            *n <= 1 + replays,
            "record {p}@{o} is in the file {n} times, but only {replays} replays could cover it"
        );
        repeated += n - 1;
    }
    eprintln!(
        "file: {} records, {repeated} repeats after 3 kills",
        copies.len()
    );
}
