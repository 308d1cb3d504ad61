//! Error handling end to end on a real broker: poison records at each stage,
//! tolerance all with a dead-letter queue, tolerance none, and replay.

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
use support::*;

const GOOD: i64 = 300;

type Headers = Vec<(&'static str, &'static str)>;
const POISON_EACH: usize = 5;

/// Writes good JSON objects with three kinds of poison spread among them:
/// undecodable JSON (VALUE_CONVERTER), a number the gated InsertField cannot
/// extend (TRANSFORMATION), and a string with a line break the file sink cannot
/// hold in `value` format (TASK_PUT).
fn write_stream(topic: &str) {
    let mut n = 0;
    let mut poison = 0;
    let mut batch: Vec<(Vec<u8>, Headers)> = Vec::new();
    while n < GOOD {
        batch.push((json!({"n": n}).to_string().into_bytes(), vec![]));
        n += 1;
        if n % 20 == 0 && poison < POISON_EACH {
            batch.push((b"{not json".to_vec(), vec![]));
            batch.push((b"42".to_vec(), vec![("needs-tag", "yes")]));
            batch.push((br#""line one\nline two""#.to_vec(), vec![]));
            poison += 1;
        }
    }
    let out: Vec<Out<'_>> = batch
        .iter()
        .map(|(v, h)| Out {
            key: Some("k"),
            value: v,
            headers: h,
        })
        .collect();
    produce(topic, 0, &out);
}

fn sink_config(
    name: &str,
    topic: &str,
    file: &std::path::Path,
    tolerance: &str,
    format: &str,
) -> serde_json::Value {
    json!({"name": name, "config": {
        "connector.class": "file-sink", "topics": topic, "file": file.display().to_string(), "format": format,
        "value.converter": "json", "value.converter.schemas.enable": false,
        "transforms": "tag",
        "transforms.tag.type": "org.apache.kafka.connect.transforms.InsertField$Value",
        "transforms.tag.static.field": "tagged", "transforms.tag.static.value": "yes",
        "transforms.tag.predicate": "needsTag",
        "predicates": "needsTag",
        "predicates.needsTag.type": "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
        "predicates.needsTag.name": "needs-tag",
        "errors.tolerance": tolerance,
        "errors.log.enable": true,
        "errors.deadletterqueue.topic.suffix": ".dlq",
        "errors.deadletterqueue.topic.replication.factor": 1,
        "errors.deadletterqueue.context.headers.enable": true
    }})
}

#[test]
fn tolerance_all_routes_each_poison_record_to_the_dlq_once_and_replay_brings_it_back() {
    let scratch = Scratch::new("dlq");
    let topic = unique("usage");
    let dlq = format!("{topic}.dlq");
    let out = scratch.path("out.jsonl");
    let name = unique("sink");
    create_topic(&scratch, &topic, 1);
    write_stream(&topic);
    let originals: BTreeMap<i64, Consumed> = read_topic(&topic)
        .into_iter()
        .map(|r| (r.offset, r))
        .collect();
    let total = originals.len() as i64;
    assert_eq!(total, GOOD + 3 * POISON_EACH as i64);

    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let sink = scratch.write_json(
        "sink.json",
        &sink_config(&name, &topic, &out, "all", "value"),
    );
    let mut w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&sink));
    wait_for("good records in the file", Duration::from_secs(60), || {
        count_lines(&out) >= GOOD as usize
    });
    wait_for("poison records in the DLQ", Duration::from_secs(60), || {
        topic_count(&dlq) >= 3 * POISON_EACH as i64
    });
    wait_for("everything committed", Duration::from_secs(30), || {
        committed(&format!("connect-{name}"), &topic).get(&0) == Some(&total)
    });
    w.stop_cleanly();
    assert!(
        w.log_text().contains("record failed; tolerated"),
        "errors.log.enable logs failures"
    );

    // Every good record reached the file exactly once, and nothing else did.
    let lines = read_jsonl(&out);
    let ns: Vec<i64> = lines.iter().map(|l| l["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, (0..GOOD).collect::<Vec<_>>());

    // Every poison record is in the DLQ exactly once: original bytes, original
    // headers, and Connect's context headers.
    let dead = read_topic(&dlq);
    assert_eq!(dead.len(), 3 * POISON_EACH);
    let mut by_stage: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen_offsets = std::collections::BTreeSet::new();
    for d in &dead {
        let h = &d.headers;
        let offset: i64 = h["__connect.errors.offset"].parse().unwrap();
        assert!(
            seen_offsets.insert(offset),
            "offset {offset} dead-lettered twice"
        );
        let original = &originals[&offset];
        assert_eq!(d.value, original.value, "original bytes kept");
        assert_eq!(d.key.as_deref(), Some("k"));
        assert_eq!(h["__connect.errors.topic"], topic);
        assert_eq!(h["__connect.errors.partition"], "0");
        assert_eq!(h["__connect.errors.connector.name"], name);
        assert_eq!(h["__connect.errors.task.id"], "0");
        let stage = h["__connect.errors.stage"].clone();
        let (class, exception) = match stage.as_str() {
            "VALUE_CONVERTER" => (
                "org.apache.kafka.connect.json.JsonConverter",
                "DataException",
            ),
            "TRANSFORMATION" => (
                "org.apache.kafka.connect.transforms.InsertField$Value",
                "DataException",
            ),
            "TASK_PUT" => ("file-sink", "DataException"),
            other => panic!("unexpected stage {other}"),
        };
        assert_eq!(h["__connect.errors.class.name"], class, "{stage}");
        assert!(
            h["__connect.errors.exception.class.name"].ends_with(exception),
            "{h:?}"
        );
        assert!(!h["__connect.errors.exception.message"].is_empty());
        assert!(h.contains_key("__connect.errors.exception.stacktrace"));
        if stage == "TRANSFORMATION" {
            assert_eq!(h["needs-tag"], "yes", "original headers kept");
        }
        *by_stage.entry(stage).or_default() += 1;
    }
    assert_eq!(
        by_stage.values().copied().collect::<Vec<_>>(),
        vec![POISON_EACH; 3],
        "{by_stage:?}"
    );
    assert_eq!(
        lines.len() + dead.len(),
        total as usize,
        "every record is in the file or the DLQ"
    );

    // Replay the destination rejections once the sink can take them.
    let replay = |filter: &str| {
        let o = sluice()
            .args([
                "dlq",
                "replay",
                "--topic",
                &dlq,
                "--filter",
                filter,
                "--bootstrap-server",
                kafka(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let first = replay("stage=TASK_PUT");
    assert!(
        first.contains(&format!("moved {POISON_EACH}, skipped {}", 2 * POISON_EACH)),
        "{first}"
    );
    assert_eq!(topic_count(&topic), total + POISON_EACH as i64);
    let replayed = read_topic(&topic)
        .into_iter()
        .filter(|r| r.offset >= total)
        .collect::<Vec<_>>();
    assert!(replayed
        .iter()
        .all(|r| !r.headers.keys().any(|k| k.starts_with("__connect.errors."))));

    // The fix: envelope format holds line breaks. The sink resumes past what it
    // committed and writes just the replayed records.
    let fixed = scratch.write_json(
        "fixed.json",
        &sink_config(&name, &topic, &out, "all", "envelope"),
    );
    let mut w = WorkerProcess::start(&scratch, &worker, &[fixed]);
    // The same replay over REST moves nothing twice.
    let http = reqwest::blocking::Client::new();
    let url = format!("{}/dlq/{dlq}/replay", w.rest_url());
    let second: serde_json::Value = http
        .post(&url)
        .json(&json!({"filter": {"stage": "TASK_PUT"}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(second["moved"], 0, "a second run moves nothing: {second}");
    assert_eq!(second["skipped"], 0, "{second}");
    let missing = http
        .post(format!("{}/dlq/no-such-dlq/replay", w.rest_url()))
        .send()
        .unwrap();
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
    wait_for(
        "replayed records in the file",
        Duration::from_secs(60),
        || count_lines(&out) >= GOOD as usize + POISON_EACH,
    );
    w.stop_cleanly();
    let lines = read_jsonl(&out);
    assert_eq!(lines.len(), GOOD as usize + POISON_EACH);
    for l in &lines[GOOD as usize..] {
        assert_eq!(l["value"], json!("line one\nline two"));
    }
    assert_eq!(
        topic_count(&dlq),
        3 * POISON_EACH as i64,
        "nothing new dead-lettered"
    );
}

#[test]
fn tolerance_none_fails_the_task_and_commits_nothing_past_the_poison() {
    let scratch = Scratch::new("none");
    let topic = unique("strict");
    let out = scratch.path("out.jsonl");
    let name = unique("sink");
    create_topic(&scratch, &topic, 1);
    let mut values: Vec<Vec<u8>> = (0..50)
        .map(|n| json!({"n": n}).to_string().into_bytes())
        .collect();
    values.push(b"{not json".to_vec());
    values.extend((50..100).map(|n| json!({"n": n}).to_string().into_bytes()));
    produce_values(&topic, 0, &values);

    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let sink = scratch.write_json(
        "sink.json",
        &sink_config(&name, &topic, &out, "none", "value"),
    );
    let mut w = WorkerProcess::start(&scratch, &worker, &[sink]);
    // Its only task fails; the worker reports it and, when stopped, exits with
    // a failure status.
    let (status, trace) = w.wait_failed_trace(Duration::from_secs(60));
    assert!(!status.success());
    assert!(
        trace.contains(&format!("VALUE_CONVERTER failed for record {topic}-0@50")),
        "the status trace says what failed: {trace}"
    );
    let log = w.log_text();
    assert!(log.contains("task FAILED"), "{log}");
    assert!(
        log.contains(&format!("VALUE_CONVERTER failed for record {topic}-0@50")),
        "{log}"
    );
    let committed = committed(&format!("connect-{name}"), &topic);
    assert!(
        committed.get(&0).copied().unwrap_or(0) <= 50,
        "committed past the poison record: {committed:?}"
    );
    let ns: Vec<i64> = read_jsonl(&out)
        .iter()
        .map(|l| l["n"].as_i64().unwrap())
        .collect();
    assert!(
        ns.iter().all(|n| *n < 50),
        "nothing after the poison record reached the file: {ns:?}"
    );
    assert_eq!(
        topic_count(&format!("{topic}.dlq")),
        0,
        "tolerance none writes no dead letters"
    );
}

#[test]
fn source_records_that_fail_conversion_go_to_the_dlq_and_offsets_still_advance() {
    let scratch = Scratch::new("source-dlq");
    let topic = unique("lines");
    let dlq = unique("lines-dlq");
    let input = scratch.path("in.txt");
    std::fs::write(
        &input,
        (0..40).map(|i| format!("line {i}\n")).collect::<String>(),
    )
    .unwrap();
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    // ByteArrayConverter takes bytes only; the file source emits strings.
    let source = scratch.write_json(
        "source.json",
        &json!({"name": unique("lines-in"), "config": {
            "connector.class": "file-source", "file": input.display().to_string(), "topic": topic,
            "value.converter": "bytearray",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": dlq,
            "errors.deadletterqueue.topic.replication.factor": 1,
            "errors.deadletterqueue.context.headers.enable": true
        }}),
    );
    let mut w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&source));
    wait_for("every line dead-lettered", Duration::from_secs(60), || {
        topic_count(&dlq) >= 40
    });
    // A clean stop stores the offsets of every handled line, failed ones included.
    w.stop_cleanly();
    let dead = read_topic(&dlq);
    assert_eq!(dead.len(), 40);
    let mut values: Vec<String> = dead
        .iter()
        .map(|d| String::from_utf8(d.value.clone().unwrap()).unwrap())
        .collect();
    values.sort_by_key(|v| {
        v.trim_matches('"')
            .trim_start_matches("line ")
            .parse::<i32>()
            .unwrap_or(-1)
    });
    assert_eq!(
        values[0], "\"line 0\"",
        "the record as JSON, since its converter failed"
    );
    for d in &dead {
        assert_eq!(d.headers["__connect.errors.stage"], "VALUE_CONVERTER");
        assert_eq!(d.headers["__connect.errors.topic"], topic);
        assert_eq!(
            d.headers["__connect.errors.class.name"],
            "org.apache.kafka.connect.converters.ByteArrayConverter"
        );
    }
    // The failed lines count as handled: after a restart only a new line arrives.
    let mut w = WorkerProcess::start(&scratch, &worker, &[source]);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&input)
            .unwrap();
        writeln!(f, "line 40").unwrap();
    }
    wait_for(
        "the new line dead-lettered",
        Duration::from_secs(60),
        || topic_count(&dlq) >= 41,
    );
    w.stop_cleanly();
    assert_eq!(topic_count(&dlq), 41, "no line dead-lettered twice");
    assert_eq!(topic_count(&topic), 0);
}

#[test]
fn a_record_too_large_for_kafka_follows_the_error_policy() {
    let scratch = Scratch::new("too-large");
    let input = scratch.path("in.txt");
    // librdkafka refuses messages over message.max.bytes (1 MB) before sending.
    let big = "x".repeat(1_100_000);
    std::fs::write(&input, format!("small 0\n{big}\nsmall 1\n")).unwrap();
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let source = |tolerance: &str, topic: &str| {
        json!({"name": unique("lines-in"), "config": {
            "connector.class": "file-source", "file": input.display().to_string(), "topic": topic,
            "value.converter": "string", "errors.tolerance": tolerance, "errors.log.enable": true
        }})
    };

    let topic = unique("lines");
    let c = scratch.write_json("all.json", &source("all", &topic));
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    wait_for("the two small lines", Duration::from_secs(60), || {
        topic_count(&topic) >= 2
    });
    w.stop_cleanly();
    let values: Vec<String> = read_topic(&topic)
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(values, ["small 0", "small 1"]);
    let log = w.log_text();
    assert!(
        log.contains("record failed; tolerated") && log.contains("KAFKA_PRODUCE"),
        "logged as a KAFKA_PRODUCE failure:\n{log}"
    );

    let strict = unique("lines");
    let c = scratch.write_json("none.json", &source("none", &strict));
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    assert!(!w.wait_failed(Duration::from_secs(60)).success());
    assert!(
        w.log_text().contains("KAFKA_PRODUCE failed"),
        "{}",
        w.log_text()
    );
}
