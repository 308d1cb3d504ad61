//! End to end on a real broker: datagen → Kafka → file sink. Counts and content
//! are compared event by event against the generator, keyed by (task, sequence).

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

use serde_json::json;
use sluice_datagen::{ApiUsageEvent, EventGenerator};
use support::*;

const SEED: u64 = 7;

fn generator(task: i32) -> EventGenerator {
    EventGenerator {
        seed: SEED,
        generator: task,
        tenants: 200,
        hot_tenants: 2,
        hot_share: 0.3,
        composite_hot_keys: true,
        epoch_ms: sluice_datagen::DEFAULT_EPOCH_MS,
        schema: ApiUsageEvent::schema(),
    }
}

fn datagen_config(name: &str, topic: &str, total: u64, rate: u64) -> serde_json::Value {
    json!({"name": name, "config": {
        "connector.class": "datagen",
        "tasks.max": 2,
        "kafka.topic": topic,
        "max.records": total,
        "records.per.second": rate,
        "batch.size": 500,
        "seed": SEED,
        "tenants": 200,
        "hot.tenants": 2,
        "hot.tenant.share": 0.3,
        "topic.creation.default.partitions": 8
    }})
}

fn file_sink_config(name: &str, topic: &str, file: &std::path::Path) -> serde_json::Value {
    json!({"name": name, "config": {
        "connector.class": "file-sink",
        "topics": topic,
        "file": file.display().to_string(),
        "format": "envelope"
    }})
}

/// The event a record should carry, from its (generator, sequence).
fn expected(value: &serde_json::Value) -> (i32, i64, serde_json::Value) {
    let task = value["generator"].as_i64().unwrap() as i32;
    let seq = value["sequence"].as_i64().unwrap();
    let e = generator(task).event(seq);
    let want = json!({
        "event_id": e.event_id, "generator": e.generator, "sequence": e.sequence,
        "tenant_id": e.tenant_id, "api_key_id": e.api_key_id, "endpoint": e.endpoint,
        "method": e.method, "status": e.status, "latency_ms": e.latency_ms,
        "request_bytes": e.request_bytes, "response_bytes": e.response_bytes,
        "timestamp": e.timestamp,
    });
    (task, seq, want)
}

#[test]
fn datagen_to_kafka_to_file_exactly() {
    let scratch = Scratch::new("pipeline");
    let topic = unique("events");
    // Created ahead, as in production, so the sink never waits for a metadata
    // refresh to see the topic the source would otherwise create.
    create_topic(&scratch, &topic, 8);
    let out = scratch.path("out.jsonl");
    let total = 20_000u64;
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let source = scratch.write_json(
        "datagen.json",
        &datagen_config(&unique("gen"), &topic, total, 0),
    );
    let sink = scratch.write_json(
        "sink.json",
        &file_sink_config(&unique("file"), &topic, &out),
    );
    let mut w = WorkerProcess::start(&scratch, &worker, &[source, sink]);

    wait_for("every event in the file", Duration::from_secs(120), || {
        count_lines(&out) >= total as usize
    });
    let status = w.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "clean exit expected; log:\n{}",
        w.log_text()
    );
    assert!(!w.log_text().contains("panicked"), "{}", w.log_text());

    // Kafka holds every event exactly once, with the right key and content.
    let records = read_topic(&topic);
    assert_eq!(records.len() as u64, total, "records in {topic}");
    let mut seen = BTreeMap::new();
    for r in &records {
        let value: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let (task, seq, want) = expected(&value);
        assert_eq!(value, want, "content of ({task}, {seq})");
        let e = generator(task).event(seq);
        assert_eq!(
            r.key.as_deref(),
            Some(e.key.as_str()),
            "key of ({task}, {seq})"
        );
        assert!(
            r.headers.contains_key("__sluice.source"),
            "source header on ({task}, {seq})"
        );
        assert_eq!(r.headers["__sluice.position"], format!("{seq}/0"));
        assert!(
            seen.insert((task, seq), (r.partition, r.offset)).is_none(),
            "({task}, {seq}) twice in Kafka"
        );
    }
    for task in 0..2 {
        let n = seen.keys().filter(|(t, _)| *t == task).count() as u64;
        assert_eq!(n, total / 2, "task {task} events");
        assert_eq!(
            seen.keys()
                .filter(|(t, _)| *t == task)
                .map(|(_, s)| *s)
                .max(),
            Some((total / 2 - 1) as i64)
        );
    }

    // The file holds each record once, with its Kafka coordinates and headers.
    let lines = read_jsonl(&out);
    assert_eq!(lines.len() as u64, total, "lines in the file");
    let mut in_file = BTreeMap::new();
    for line in &lines {
        let (task, seq, want) = expected(&line["value"]);
        assert_eq!(line["value"], want);
        assert_eq!(line["topic"], json!(topic));
        let coords = (
            line["partition"].as_i64().unwrap() as i32,
            line["offset"].as_i64().unwrap(),
        );
        assert_eq!(
            seen.get(&(task, seq)),
            Some(&coords),
            "file coordinates of ({task}, {seq})"
        );
        let headers: BTreeMap<String, String> = line["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_owned(),
                    h[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            headers["__sluice.position"],
            format!("{seq}/0"),
            "headers preserved"
        );
        assert!(
            headers["__sluice.source"].contains("\"task\":"),
            "{headers:?}"
        );
        assert_eq!(line["key"], json!(generator(task).event(seq).key));
        assert!(
            in_file.insert((task, seq), ()).is_none(),
            "({task}, {seq}) twice in the file"
        );
    }
}

#[test]
fn restart_after_clean_stop_resumes_without_duplicates() {
    let scratch = Scratch::new("restart");
    let topic = unique("events");
    let total = 6_000u64;
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let source = scratch.write_json(
        "datagen.json",
        &datagen_config(&unique("gen"), &topic, total, 1_000),
    );
    let mut w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&source));
    wait_for("some events", Duration::from_secs(60), || {
        topic_count(&topic) >= 1_000
    });
    w.stop_cleanly();
    let first = topic_count(&topic);
    assert!((first as u64) < total, "stopped before the end ({first})");
    let mut w = WorkerProcess::start(&scratch, &worker, &[source]);
    wait_for("all events", Duration::from_secs(60), || {
        topic_count(&topic) >= total as i64
    });
    w.stop_cleanly();
    assert_eq!(topic_count(&topic), total as i64, "no event twice");
}

#[test]
fn file_source_and_transform_chain_with_predicate() {
    let scratch = Scratch::new("transforms");
    let topic = unique("lines");
    create_topic(&scratch, &topic, 3);
    let input = scratch.path("in.jsonl");
    let out = scratch.path("out.jsonl");
    let write_lines = |range: std::ops::Range<i64>| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&input)
            .unwrap();
        for n in range {
            writeln!(f, "{}", json!({"n": n, "secret": "hunter2"})).unwrap();
        }
    };
    write_lines(0..500);
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let source = scratch.write_json(
        "source.json",
        &json!({"name": unique("lines-in"), "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "file": input.display().to_string(), "topic": topic,
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "topic.creation.default.partitions": 3
        }}),
    );
    let sink = scratch.write_json(
        "sink.json",
        &json!({"name": unique("lines-out"), "config": {
            "connector.class": "file-sink", "topics": topic, "file": out.display().to_string(),
            "value.converter": "json", "value.converter.schemas.enable": "false",
            "transforms": "onlyOurs,tag,hide",
            "transforms.onlyOurs.type": "org.apache.kafka.connect.transforms.Filter",
            "transforms.onlyOurs.predicate": "foreign",
            "transforms.tag.type": "org.apache.kafka.connect.transforms.InsertField$Value",
            "transforms.tag.topic.field": "from_topic",
            "transforms.hide.type": "org.apache.kafka.connect.transforms.ReplaceField$Value",
            "transforms.hide.exclude": "secret",
            "predicates": "foreign",
            "predicates.foreign.type": "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
            "predicates.foreign.name": "__sluice.source",
            "transforms.onlyOurs.negate": "true"
        }}),
    );
    let mut w = WorkerProcess::start(&scratch, &worker, &[source, sink]);
    wait_for("the first 500 lines", Duration::from_secs(60), || {
        count_lines(&out) >= 500
    });
    // Records another application writes carry no sluice headers: the predicate
    // sends them to Filter. Lines appended to the input are picked up.
    produce_foreign(
        &topic,
        &(0..10)
            .map(|i| json!({"n": -1 - i}).to_string())
            .collect::<Vec<_>>(),
    );
    write_lines(500..600);
    wait_for("the appended lines", Duration::from_secs(60), || {
        count_lines(&out) >= 600
    });
    w.stop_cleanly();

    let lines = read_jsonl(&out);
    let ns: Vec<i64> = lines.iter().map(|l| l["n"].as_i64().unwrap()).collect();
    let mut sorted = ns.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..600).collect::<Vec<_>>(),
        "every line once, no foreign record"
    );
    for l in &lines {
        assert_eq!(l["from_topic"], json!(topic), "InsertField applied: {l}");
        assert!(l.get("secret").is_none(), "ReplaceField applied: {l}");
    }
    assert_eq!(topic_count(&topic), 610, "the source wrote each line once");
}

#[test]
fn a_sink_picks_up_its_topic_once_created() {
    let scratch = Scratch::new("late-topic");
    let topic = unique("late");
    let out = scratch.path("out.jsonl");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let sink = scratch.write_json(
        "sink.json",
        &file_sink_config(&unique("file"), &topic, &out),
    );
    let mut w = WorkerProcess::start(&scratch, &worker, &[sink]);
    wait_for("the worker to be ready", Duration::from_secs(30), || {
        w.log_text().contains("worker ready")
    });
    create_topic(&scratch, &topic, 2);
    produce_foreign(
        &topic,
        &(0..10)
            .map(|i| json!({"n": i}).to_string())
            .collect::<Vec<_>>(),
    );
    // Within a metadata refresh (10 s) of the topic appearing.
    wait_for("records of the late topic", Duration::from_secs(45), || {
        count_lines(&out) >= 10
    });
    w.stop_cleanly();
}
