//! The broker goes away for 30 s under a running source (datagen) and sink (file
//! sink) with default settings, and comes back on the same port with its data
//! (sqlite storage). Neither task may fail; no event is in Kafka twice, and
//! the file holds every record of the topic exactly once. The broker itself
//! loses produce batches in flight at its stop (see below): every
//! acknowledged event must be in Kafka but for those, counted by the holes
//! they leave in the offsets.
//!
//! This binary runs against a broker of its own, so stopping it disturbs no
//! other test: the shared helpers are pointed at it before their first use.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

#[test]
fn a_broker_outage_fails_no_task_and_loses_or_doubles_nothing() {
    std::env::set_var("SLUICE_KAFKA_STORAGE", "sqlite");
    let vars = start_services("kafka");
    std::env::set_var("SLUICE_KAFKA_BOOTSTRAP", &vars["SLUICE_KAFKA_BOOTSTRAP"]);
    let stack = std::path::PathBuf::from(&vars["SLUICE_STACK_DIR"]);

    let scratch = Scratch::new("broker-outage");
    let topic = unique("outage");
    create_topic(&scratch, &topic, 4);
    let total: i64 = 40_000;
    let source = unique("gen");
    let sink = unique("file");
    let out = scratch.path("out.jsonl");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let connectors = [
        scratch.write_json(
            "datagen.json",
            &json!({"name": source, "config": {
                "connector.class": "datagen", "tasks.max": 2, "kafka.topic": topic,
                "max.records": total, "records.per.second": 1000, "batch.size": 200,
                "seed": 5
            }}),
        ),
        scratch.write_json(
            "sink.json",
            &json!({"name": sink, "config": {
                "connector.class": "file-sink", "topics": topic,
                "file": out.display().to_string(), "format": "envelope"
            }}),
        ),
    ];
    let mut w = WorkerProcess::start(&scratch, &worker, &connectors);
    let states = |w: &WorkerProcess| {
        [&source, &sink]
            .iter()
            .flat_map(|name| {
                w.get(&format!("/connectors/{name}/status"))["tasks"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|t| t["state"].as_str().unwrap_or("?").to_owned())
            .collect::<Vec<_>>()
    };
    wait_for(
        "records flowing both ways",
        Duration::from_secs(120),
        || topic_count(&topic) >= total / 5 && count_lines(&out) > 1000,
    );

    // A clean stop: nisshi acknowledges a produce before its sqlite storage
    // has it, so a kill -9 of the broker itself loses acknowledged records
    // (seen: one 200-record batch), which no client can make up for.
    let pid = std::fs::read_to_string(stack.join("kafka/pid")).unwrap();
    let pid = pid.trim().to_owned();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let down = Instant::now();
    wait_for("the broker to stop", Duration::from_secs(30), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    while down.elapsed() < Duration::from_secs(30) {
        let s = states(&w);
        assert!(s.iter().all(|s| s == "RUNNING"), "during the outage: {s:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut broker = std::process::Command::new("bash")
        .arg(stack.join("kafka/run"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let back = Instant::now();
    // Every generated event acknowledged: the source's own count.
    let acked = format!("sluice_source_task_records_written_total{{connector=\"{source}\",");
    wait_for("every event acknowledged", Duration::from_secs(240), || {
        w.metric(&acked) >= total as u64
    });
    // The file sink's view of the topic, once it has read to the end. (An
    // independent reader is no help here: after its restart nisshi reports
    // low watermarks past records it still serves.)
    let in_file = || {
        let mut copies: BTreeMap<(i64, i64), usize> = BTreeMap::new();
        let mut events: BTreeMap<(i64, i64), usize> = BTreeMap::new();
        for l in read_jsonl(&out) {
            let at = (
                l["partition"].as_i64().unwrap(),
                l["offset"].as_i64().unwrap(),
            );
            *copies.entry(at).or_default() += 1;
            let v = &l["value"];
            let id = (
                v["generator"].as_i64().unwrap(),
                v["sequence"].as_i64().unwrap(),
            );
            *events.entry(id).or_default() += 1;
        }
        (copies, events)
    };
    let mut last = 0;
    wait_for(
        "the file sink to reach the end of the topic",
        Duration::from_secs(120),
        || {
            let n = count_lines(&out);
            let settled = n == last && n as i64 + 2000 >= total;
            last = n;
            settled && {
                std::thread::sleep(Duration::from_secs(3));
                count_lines(&out) == n
            }
        },
    );
    let (copies, events) = in_file();
    let doubled: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(doubled.is_empty(), "records twice in the file: {doubled:?}");
    let twice: Vec<_> = events.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "events twice in Kafka: {twice:?}");
    let in_kafka: BTreeSet<(i64, i64)> = copies.keys().copied().collect();
    // nisshi 0.8.1 loses what it acknowledged and had not yet stored when it
    // stops (SIGTERM or kill -9): the records it had numbered are gone from
    // the log, leaving holes in the offsets, while the producer holds their
    // acknowledgements. No client can see or make up for that. So every
    // acknowledged event must be in the topic, except exactly as many as the
    // log has holes.
    // The topic is new, so each partition's offsets start at 0.
    let holes: i64 = {
        let mut last: BTreeMap<i64, i64> = BTreeMap::new();
        for (p, o) in &in_kafka {
            let e = last.entry(*p).or_insert(*o);
            *e = (*e).max(*o);
        }
        last.values().map(|hi| hi + 1).sum::<i64>() - in_kafka.len() as i64
    };
    let lost = total - events.len() as i64;
    eprintln!(
        "broker outage: {lost} acknowledged events not in the topic, {holes} holes in its offsets"
    );
    assert_eq!(
        lost, holes,
        "acknowledged events missing from Kafka without a hole left by the broker"
    );
    eprintln!(
        "broker outage: down {:?}; every event acknowledged {:?} after it came back",
        back - down,
        back.elapsed()
    );
    let s = states(&w);
    assert!(s.iter().all(|s| s == "RUNNING"), "after the outage: {s:?}");
    let log = w.log_text();
    assert!(w.terminate(Duration::from_secs(60)).success(), "{log}");
    assert!(!log.contains("task FAILED"), "{log}");

    broker.kill().ok();
    broker.wait().ok();
}
