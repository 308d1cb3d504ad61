//! The broker goes away for 30 s under a running source (datagen) and sink (file
//! sink) with default settings, and comes back on the same port with its data
//! (sqlite storage). Neither task may fail; Kafka holds every generated event
//! exactly once, and the file every record exactly once.
//!
//! This binary runs against a broker of its own, so stopping it disturbs no
//! other test: the shared helpers are pointed at it before their first use.

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

    let pid = std::fs::read_to_string(stack.join("kafka/pid")).unwrap();
    std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    let down = Instant::now();
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
    wait_for("every event in Kafka", Duration::from_secs(240), || {
        topic_count(&topic) >= total
    });
    let records = read_topic(&topic);
    wait_for("every record in the file", Duration::from_secs(180), || {
        let have: BTreeSet<(i64, i64)> = read_jsonl(&out)
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
    eprintln!(
        "broker outage: down {:?}; all {total} events through {:?} after it came back",
        back - down,
        back.elapsed()
    );
    let s = states(&w);
    assert!(s.iter().all(|s| s == "RUNNING"), "after the outage: {s:?}");
    let log = w.log_text();
    assert!(w.terminate(Duration::from_secs(60)).success(), "{log}");
    assert!(!log.contains("task FAILED"), "{log}");

    // Kafka: each (task, sequence) exactly once.
    assert_eq!(records.len() as i64, total, "records in Kafka");
    let mut events = BTreeSet::new();
    for r in &records {
        let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let id = (
            v["generator"].as_i64().unwrap(),
            v["sequence"].as_i64().unwrap(),
        );
        assert!(events.insert(id), "{id:?} twice in Kafka");
    }
    // The file: every record once.
    let mut copies: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for l in read_jsonl(&out) {
        let at = (
            l["partition"].as_i64().unwrap(),
            l["offset"].as_i64().unwrap(),
        );
        *copies.entry(at).or_default() += 1;
    }
    let doubled: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "{} records twice in the file: {:?}",
        doubled.len(),
        &doubled[..doubled.len().min(5)]
    );
    assert_eq!(copies.len(), records.len());
    broker.kill().ok();
    broker.wait().ok();
}
