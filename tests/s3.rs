//! The S3 sink against a real S3-API server (s3s-fs, SigV4 enforced): Parquet
//! objects read back with pyarrow and compared record by record, and exactly-once
//! across a kill -9 between upload and commit.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use support::*;

const FLUSH: usize = 100;

/// A scratch directory, a fresh topic of `partitions` partitions and a fresh bucket.
fn setup(tag: &str, partitions: i32) -> (Scratch, String, String) {
    let scratch = Scratch::new(tag);
    let topic = unique("usage");
    let bucket = unique("archive").to_lowercase();
    s3().create_bucket(&bucket);
    create_topic(&scratch, &topic, partitions);
    (scratch, topic, bucket)
}

/// A Connect JSON envelope with a struct schema, including Decimal and Timestamp.
fn event(partition: i32, n: i64) -> Vec<u8> {
    json!({
        "schema": {"type": "struct", "optional": false, "name": "test.Usage", "fields": [
            {"field": "n", "type": "int64", "optional": false},
            {"field": "tenant", "type": "string", "optional": false},
            {"field": "amount", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
             "version": 1, "parameters": {"scale": "2"}},
            {"field": "at", "type": "int64", "optional": false, "name": "org.apache.kafka.connect.data.Timestamp"},
            {"field": "tags", "type": "array", "optional": true, "items": {"type": "string", "optional": false}}
        ]},
        "payload": {
            "n": n, "tenant": format!("tenant_{partition}_{}", n % 7),
            "amount": "MDk=", "at": 1_767_225_600_000i64 + n, "tags": ["a", format!("p{partition}")]
        }
    })
    .to_string()
    .into_bytes()
}

/// 1,000 records in partition 0 and 500 in partition 1: with flush.size 100,
/// exactly 15 files.
fn fill(topic: &str) -> BTreeMap<i32, i64> {
    let counts = BTreeMap::from([(0, 1000i64), (1, 500)]);
    for (p, n) in &counts {
        produce_events(topic, *p, 0..*n);
    }
    counts
}

fn produce_events(topic: &str, partition: i32, ns: std::ops::Range<i64>) {
    let values: Vec<Vec<u8>> = ns.map(|i| event(partition, i)).collect();
    produce_keyed(topic, partition, Some("k"), &values);
}

fn sink_config(name: &str, topic: &str, bucket: &str) -> serde_json::Value {
    let s3 = s3();
    json!({"name": name, "config": {
        "connector.class": "io.confluent.connect.s3.S3SinkConnector",
        "topics": topic,
        "s3.bucket.name": bucket,
        "s3.region": "us-east-1",
        "store.url": s3.endpoint,
        "aws.access.key.id": s3.access_key,
        "aws.secret.access.key": s3.secret_key,
        "format.class": "io.confluent.connect.s3.format.parquet.ParquetFormat",
        "parquet.codec": "snappy",
        "flush.size": FLUSH,
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": true
    }})
}

/// Reads every object back and checks it holds exactly the records its name says.
fn check_objects(bucket: &str, topic: &str, counts: &BTreeMap<i32, i64>) {
    check_objects_in(s3(), bucket, topic, counts)
}

fn check_objects_in(store: &S3, bucket: &str, topic: &str, counts: &BTreeMap<i32, i64>) {
    let objects = store.objects(bucket, &format!("topics/{topic}/"));
    let expected: usize = counts.values().map(|n| *n as usize / FLUSH).sum();
    assert_eq!(
        objects.len(),
        expected,
        "objects: {:?}",
        objects.keys().collect::<Vec<_>>()
    );
    let mut seen: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for (key, path) in &objects {
        // topics/<topic>/partition=<p>/<topic>+<p>+<start>.snappy.parquet
        let file = key.rsplit('/').next().unwrap();
        let rest = file
            .strip_prefix(&format!("{topic}+"))
            .unwrap()
            .strip_suffix(".snappy.parquet")
            .unwrap();
        let (p, start) = rest.split_once('+').unwrap();
        let (p, start): (i32, i64) = (p.parse().unwrap(), start.parse().unwrap());
        assert!(
            key.starts_with(&format!("topics/{topic}/partition={p}/")),
            "{key}"
        );
        assert_eq!(
            start % FLUSH as i64,
            0,
            "{key}: files start at multiples of flush.size"
        );
        assert_eq!(
            rest.split_once('+').unwrap().1.len(),
            10,
            "start offsets are zero-padded to 10: {key}"
        );
        let rows = read_parquet(path);
        let schema = &rows[0]["schema"];
        assert_eq!(schema[2], json!(["amount", "decimal128(38, 2)"]), "{key}");
        assert_eq!(schema[3], json!(["at", "timestamp[ms, tz=UTC]"]), "{key}");
        assert_eq!(rows.len() - 1, FLUSH, "{key}");
        for (i, row) in rows[1..].iter().enumerate() {
            let n = start + i as i64;
            assert_eq!(row["n"], json!(n), "{key} row {i}");
            assert_eq!(row["tenant"], json!(format!("tenant_{p}_{}", n % 7)));
            assert_eq!(row["amount"], json!("123.45"));
            assert_eq!(row["tags"], json!(["a", format!("p{p}")]));
            *seen.entry((p, n)).or_default() += 1;
        }
    }
    for (p, n) in counts {
        for i in 0..*n {
            assert_eq!(
                seen.get(&(*p, i)),
                Some(&1),
                "record {p}@{i} must be in exactly one object"
            );
        }
    }
}

#[test]
fn an_s3_outage_is_retried_without_losing_or_doubling_records() {
    // A store of its own, to kill and start again without disturbing other tests.
    let vars = start_services("s3");
    let stack = std::path::PathBuf::from(&vars["SLUICE_STACK_DIR"]);
    let store = S3 {
        endpoint: vars["SLUICE_S3_ENDPOINT"].clone(),
        access_key: vars["SLUICE_S3_ACCESS_KEY"].clone(),
        secret_key: vars["SLUICE_S3_SECRET_KEY"].clone(),
        data_dir: stack.join("s3/data"),
    };
    let scratch = Scratch::new("s3-outage");
    let (topic, bucket) = (unique("usage"), unique("outage").to_lowercase());
    store.create_bucket(&bucket);
    create_topic(&scratch, &topic, 3);
    produce_events(&topic, 0, 0..500);
    let name = unique("s3");
    let dlq = unique("s3-outage-dlq");
    // Default retry settings: no errors.retry.* or task.retry.* keys.
    let mut config = sink_config(&name, &topic, &bucket);
    let c = config["config"].as_object_mut().unwrap();
    c.insert("store.url".into(), json!(store.endpoint));
    c.insert("errors.tolerance".into(), json!("all"));
    c.insert("errors.deadletterqueue.topic.name".into(), json!(dlq));
    c.insert(
        "errors.deadletterqueue.topic.replication.factor".into(),
        json!(1),
    );
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let sink = scratch.write_json("sink.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[sink]);
    wait_for("the first 5 objects", Duration::from_secs(60), || {
        store.objects(&bucket, "topics/").len() >= 5
    });

    // The store goes away for 30 s while records keep coming; puts fail and
    // are retried, and the task stays RUNNING, saying why in its status.
    let pid = std::fs::read_to_string(stack.join("s3/pid")).unwrap();
    std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    let down = std::time::Instant::now();
    produce_events(&topic, 0, 500..1000);
    produce_events(&topic, 1, 0..500);
    wait_for("a retried put", Duration::from_secs(120), || {
        w.log_text().contains("put failed, retrying")
    });
    // A record no converter can read, fetched among the batches whose puts
    // fail: a failed put is retried by reading its batch again, and this
    // record must reach the dead-letter queue once, not once per retry.
    produce_keyed(&topic, 2, Some("k"), &[b"not json".to_vec()]);
    let status_url = format!("/connectors/{name}/status");
    // Between two failed uploads the sink buffers records it re-read, so the
    // reason shows while a put is failing, not all the time.
    let mut said_retrying = false;
    while down.elapsed() < Duration::from_secs(30) {
        let task = &w.get(&status_url)["tasks"][0];
        assert_eq!(task["state"], "RUNNING", "{task}");
        said_retrying |= task["trace"]
            .as_str()
            .is_some_and(|t| t.contains("retrying"));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(said_retrying, "the status never said the task was retrying");
    // Back on the same port, with the same data.
    let mut restarted = std::process::Command::new("bash")
        .arg(stack.join("s3/run"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let back = std::time::Instant::now();
    wait_for("every offset committed", Duration::from_secs(180), || {
        let c = committed(&format!("connect-{name}"), &topic);
        c.get(&0) == Some(&1000) && c.get(&1) == Some(&500) && c.get(&2) == Some(&1)
    });
    eprintln!(
        "S3 outage: down {:?}; every offset committed {:?} after the store came back",
        back - down,
        back.elapsed()
    );
    assert_eq!(
        w.get(&status_url)["tasks"][0]["trace"],
        serde_json::Value::Null
    );
    let retried =
        format!("sluice_task_retries_total{{connector=\"{name}\",task=\"0\",stage=\"TASK_PUT\"}} ");
    assert!(w.metric(&retried) > 0, "no retry of TASK_PUT counted");
    w.stop_cleanly();
    let dead = read_topic(&dlq);
    assert_eq!(dead.len(), 1, "the poison record, dead-lettered once");
    let log = w.log_text();
    assert!(log.contains("reading the partition again"), "{log}");
    assert!(!log.contains("task FAILED"), "{log}");
    check_objects_in(
        &store,
        &bucket,
        &topic,
        &BTreeMap::from([(0, 1000), (1, 500)]),
    );
    restarted.kill().ok();
    restarted.wait().ok();
}

#[test]
fn parquet_objects_hold_every_record_once_in_confluent_layout() {
    let (scratch, topic, bucket) = setup("s3", 2);
    let counts = fill(&topic);
    let name = unique("s3");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let sink = scratch.write_json("sink.json", &sink_config(&name, &topic, &bucket));
    let mut w = WorkerProcess::start(&scratch, &worker, &[sink]);
    wait_for("15 objects", Duration::from_secs(120), || {
        s3().objects(&bucket, "topics/").len() >= 15
    });
    wait_for("offsets committed", Duration::from_secs(30), || {
        let c = committed(&format!("connect-{name}"), &topic);
        c.get(&0) == Some(&1000) && c.get(&1) == Some(&500)
    });
    // /metrics counts what is in the bucket: its objects and their bytes.
    let objects = s3().objects(&bucket, &format!("topics/{topic}/"));
    let bytes: u64 = objects
        .values()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let series = |family: &str| format!("{family}{{connector=\"{name}\",");
    assert_eq!(
        w.metric(&series("sluice_s3_objects_written_total")),
        objects.len() as u64
    );
    assert_eq!(w.metric(&series("sluice_s3_written_bytes_total")), bytes);
    w.stop_cleanly();
    check_objects(&bucket, &topic, &counts);
}

#[test]
fn kill9_between_upload_and_commit_rewrites_the_same_objects() {
    let (scratch, topic, bucket) = setup("s3-crash", 2);
    let counts = fill(&topic);
    let name = unique("s3");
    // Commits only every 60 s: the kill lands after uploads, before any commit.
    let mut w_config = worker_config(&scratch);
    w_config["offset.flush.interval.ms"] = json!(60_000);
    let worker = scratch.write_json("worker.json", &w_config);
    let sink = scratch.write_json("sink.json", &sink_config(&name, &topic, &bucket));
    let mut w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&sink));
    wait_for("some objects", Duration::from_secs(120), || {
        s3().objects(&bucket, "topics/").len() >= 5
    });
    w.kill9();
    assert!(
        committed(&format!("connect-{name}"), &topic).is_empty(),
        "nothing was committed before the kill"
    );
    let before: BTreeMap<String, Vec<u8>> = s3()
        .objects(&bucket, "topics/")
        .into_iter()
        .map(|(k, p)| (k, std::fs::read(p).unwrap()))
        .collect();

    // Restart with quick commits: the replay cuts the same files under the same keys.
    let mut w_config = worker_config(&scratch);
    w_config["offset.flush.interval.ms"] = json!(500);
    let worker = scratch.write_json("worker.json", &w_config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[sink]);
    wait_for("offsets committed", Duration::from_secs(120), || {
        let c = committed(&format!("connect-{name}"), &topic);
        c.get(&0) == Some(&1000) && c.get(&1) == Some(&500)
    });
    w.stop_cleanly();
    check_objects(&bucket, &topic, &counts);
    for (key, bytes) in before {
        let after = std::fs::read(&s3().objects(&bucket, &key)[&key]).unwrap();
        assert_eq!(after, bytes, "{key} was rewritten with different contents");
    }
}

#[test]
fn bad_s3_settings_fail_with_a_clear_message() {
    let scratch = Scratch::new("s3-bad");
    let topic = unique("usage");
    create_topic(&scratch, &topic, 1);
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let run = |config: serde_json::Value| {
        let sink = scratch.write_json("sink.json", &config);
        let mut w = WorkerProcess::start(&scratch, &worker, &[sink]);
        let status = w.wait_failed(Duration::from_secs(60));
        assert!(!status.success());
        let log = w.log_text();
        assert!(!log.contains("panicked"), "{log}");
        log
    };
    let mut missing = sink_config(&unique("s3"), &topic, "no-such-bucket");
    let log = run(missing.clone());
    assert!(
        log.contains("bucket 'no-such-bucket' does not exist"),
        "{log}"
    );
    missing["config"]["s3.bucket.name"] = json!("sluice-bad-creds");
    s3().create_bucket("sluice-bad-creds");
    missing["config"]["aws.secret.access.key"] = json!("wrong-secret");
    let log = run(missing.clone());
    assert!(log.contains("refused access"), "{log}");
    assert!(!log.contains("wrong-secret"), "secrets never reach the log");
    missing["config"]["parquet.codec"] = json!("lzo");
    let log = run(missing.clone());
    assert!(
        log.contains("'parquet.codec': invalid value 'lzo'"),
        "{log}"
    );
    missing["config"]["parquet.codec"] = json!("snappy");
    missing["config"]["partitioner.class"] =
        json!("io.confluent.connect.storage.partitioner.TimeBasedPartitioner");
    missing["config"]["path.format"] = json!("'year'=YYYY/QQ");
    missing["config"]["partition.duration.ms"] = json!(3_600_000);
    missing["config"]["timezone"] = json!("UTC");
    let log = run(missing);
    assert!(
        log.contains("'path.format'") && log.contains("not a supported pattern letter"),
        "{log}"
    );
}

#[test]
fn time_based_paths_and_rotation_by_record_time() {
    let (scratch, topic, bucket) = setup("s3-time", 1);
    // 2026-01-01T00:00Z, one record every 36 s: 100 records an hour, 3 hours.
    let t0 = 1_767_225_600_000i64;
    let records: Vec<(Vec<u8>, i64)> = (0..300)
        .map(|i| (json!({"n": i}).to_string().into_bytes(), t0 + i * 36_000))
        .collect();
    produce_at(&topic, 0, &records);
    let name = unique("s3");
    let mut config = sink_config(&name, &topic, &bucket);
    let c = config["config"].as_object_mut().unwrap();
    c.insert("value.converter.schemas.enable".into(), json!(false));
    c.insert(
        "partitioner.class".into(),
        json!("io.confluent.connect.storage.partitioner.TimeBasedPartitioner"),
    );
    c.insert("path.format".into(), json!("'dt'=YYYY-MM-dd/'hour'=HH"));
    c.insert("partition.duration.ms".into(), json!(3_600_000));
    c.insert("timezone".into(), json!("UTC"));
    c.insert("locale".into(), json!("en-US"));
    c.insert("timestamp.extractor".into(), json!("Record"));
    c.insert("flush.size".into(), json!(10_000));
    c.insert("rotate.interval.ms".into(), json!(3_600_000));
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let sink = scratch.write_json("sink.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[sink]);
    // Each hour's records are cut when the first record of the next hour arrives;
    // the last hour stays open (no later record), so its offsets stay uncommitted.
    wait_for(
        "offsets of two cut hours committed",
        Duration::from_secs(60),
        || committed(&format!("connect-{name}"), &topic).get(&0) == Some(&200),
    );
    w.stop_cleanly();
    let objects = s3().objects(&bucket, "topics/");
    let keys: Vec<&String> = objects.keys().collect();
    assert_eq!(
        keys,
        [
            &format!("topics/{topic}/dt=2026-01-01/hour=00/{topic}+0+0000000000.snappy.parquet"),
            &format!("topics/{topic}/dt=2026-01-01/hour=01/{topic}+0+0000000100.snappy.parquet"),
        ]
    );
    for (i, path) in objects.values().enumerate() {
        let rows = read_parquet(path);
        let ns: Vec<i64> = rows[1..].iter().map(|r| r["n"].as_i64().unwrap()).collect();
        assert_eq!(
            ns,
            (i as i64 * 100..(i as i64 + 1) * 100).collect::<Vec<_>>()
        );
    }
}

/// 60,000 records of about 120 bytes in one topic partition, and an S3 sink
/// whose single file of them (about 7 MB) goes up as two 5 MB parts.
fn multipart_setup(tag: &str) -> (Scratch, String, String, String, PathBuf, PathBuf) {
    let (scratch, topic, bucket) = setup(tag, 1);
    let pad = "x".repeat(90);
    let values: Vec<Vec<u8>> = (0..60_000)
        .map(|n| json!({"n": n, "pad": pad}).to_string().into_bytes())
        .collect();
    produce_values(&topic, 0, &values);
    let name = unique("s3");
    let mut config = sink_config(&name, &topic, &bucket);
    let c = config["config"].as_object_mut().unwrap();
    c.insert("format.class".into(), json!("json"));
    c.insert("value.converter.schemas.enable".into(), json!(false));
    c.insert("flush.size".into(), json!(60_000));
    c.insert("s3.part.size".into(), json!(5_242_880));
    c.insert("s3.row.group.records".into(), json!(1000));
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let sink = scratch.write_json("sink.json", &config);
    (scratch, topic, bucket, name, worker, sink)
}

/// The one object in `bucket` holds the 60,000 records once, in order.
fn check_the_multipart_object(bucket: &str) {
    let objects = s3().objects(bucket, "topics/");
    assert_eq!(objects.len(), 1, "{:?}", objects.keys());
    let text = std::fs::read_to_string(objects.values().next().unwrap()).unwrap();
    let ns: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        ns,
        (0..60_000).collect::<Vec<_>>(),
        "every record once, in order, across the parts"
    );
}

#[test]
fn large_files_go_up_in_parts_while_they_are_written() {
    let (scratch, topic, bucket, name, worker, sink) = multipart_setup("s3-multipart");
    let mut w = WorkerProcess::start(&scratch, &worker, &[sink]);
    wait_for("the file committed", Duration::from_secs(120), || {
        committed(&format!("connect-{name}"), &topic).get(&0) == Some(&60_000)
    });
    w.stop_cleanly();
    assert!(
        w.log_text().contains("parts=2"),
        "uploaded in two parts:\n{}",
        w.log_text()
    );
    check_the_multipart_object(&bucket);
}

#[test]
fn a_schemaless_field_appearing_mid_file_starts_a_new_file_instead_of_being_dropped() {
    let (scratch, topic, bucket) = setup("s3-misfit", 1);
    // Rows 0..150 have {n}; from 150 on they also carry "extra". With row groups
    // of 100, the second row group no longer fits the file's inferred schema.
    let values: Vec<Vec<u8>> = (0..300)
        .map(|n| {
            if n < 150 {
                json!({"n": n})
            } else {
                json!({"n": n, "extra": format!("e{n}")})
            }
            .to_string()
            .into_bytes()
        })
        .collect();
    produce_values(&topic, 0, &values);
    let name = unique("s3");
    let mut config = sink_config(&name, &topic, &bucket);
    let c = config["config"].as_object_mut().unwrap();
    c.insert("value.converter.schemas.enable".into(), json!(false));
    c.insert("flush.size".into(), json!(300));
    c.insert("s3.row.group.records".into(), json!(100));
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let sink = scratch.write_json("sink.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[sink]);
    wait_for("all committed", Duration::from_secs(60), || {
        committed(&format!("connect-{name}"), &topic).get(&0) == Some(&300)
    });
    w.stop_cleanly();
    let objects = s3().objects(&bucket, "topics/");
    let starts: Vec<&str> = objects
        .keys()
        .map(|k| k.rsplit('+').next().unwrap())
        .collect();
    assert_eq!(
        starts,
        ["0000000000.snappy.parquet", "0000000100.snappy.parquet"],
        "{:?}",
        objects.keys()
    );
    let mut seen = Vec::new();
    for path in objects.values() {
        let rows = read_parquet(path);
        for row in &rows[1..] {
            let n = row["n"].as_i64().unwrap();
            if n >= 150 {
                assert_eq!(
                    row["extra"],
                    json!(format!("e{n}")),
                    "the new field is kept"
                );
            }
            seen.push(n);
        }
    }
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
}

#[test]
fn schema_compatibility_backward_projects_older_records_none_rotates() {
    let v2 = |n: i64| {
        json!({"schema": {"type": "struct", "version": 2, "optional": false, "fields": [
            {"field": "n", "type": "int64", "optional": false},
            {"field": "email", "type": "string", "optional": true, "default": "none"}
        ]}, "payload": {"n": n, "email": format!("u{n}@example.com")}})
    };
    let v1 = |n: i64| {
        json!({"schema": {"type": "struct", "version": 1, "optional": false, "fields": [
            {"field": "n", "type": "int32", "optional": false}
        ]}, "payload": {"n": n}})
    };
    let run = |mode: &str| -> Vec<(String, Vec<serde_json::Value>)> {
        let scratch = Scratch::new("s3-compat");
        let topic = unique("usage");
        let bucket = unique("archive").to_lowercase();
        s3().create_bucket(&bucket);
        create_topic(&scratch, &topic, 1);
        // v2, v2, v1, v1, v2, v1: three schema changes.
        let values: Vec<Vec<u8>> = [v2(0), v2(1), v1(2), v1(3), v2(4), v1(5)]
            .iter()
            .map(|v| v.to_string().into_bytes())
            .collect();
        produce_values(&topic, 0, &values);
        let name = unique("s3");
        let mut config = sink_config(&name, &topic, &bucket);
        config["config"]["schema.compatibility"] = json!(mode);
        config["config"]["flush.size"] = json!(6);
        let worker = scratch.write_json("worker.json", &worker_config(&scratch));
        let sink = scratch.write_json("sink.json", &config);
        let mut w = WorkerProcess::start(&scratch, &worker, &[sink]);
        // NONE leaves the last file (one v1 record) open: 5 records committed.
        let target = if mode == "NONE" { 5 } else { 6 };
        wait_for("records committed", Duration::from_secs(60), || {
            committed(&format!("connect-{name}"), &topic).get(&0) == Some(&target)
        });
        w.stop_cleanly();
        s3().objects(&bucket, "topics/")
            .into_iter()
            .map(|(k, p)| (k, read_parquet(&p)))
            .collect()
    };
    let backward = run("BACKWARD");
    assert_eq!(backward.len(), 1, "one file: older records projected");
    let rows = &backward[0].1;
    assert_eq!(
        rows[0]["schema"],
        json!([["n", "int64"], ["email", "string"]])
    );
    let emails: Vec<&str> = rows[1..]
        .iter()
        .map(|r| r["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        [
            "u0@example.com",
            "u1@example.com",
            "none",
            "none",
            "u4@example.com",
            "none"
        ]
    );
    let none = run("NONE");
    assert_eq!(
        none.len(),
        3,
        "every change cuts a file: {:?}",
        none.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
}

/// A worker killed between two parts of one object's multipart upload: the
/// restart reads the file's records again and uploads the same object whole.
#[test]
fn a_kill_mid_upload_rewrites_the_same_object_whole() {
    let (scratch, topic, bucket, name, worker, sink) = multipart_setup("s3-kill-upload");
    let mut w = WorkerProcess::start_logging(
        &scratch,
        &worker,
        std::slice::from_ref(&sink),
        "info,sluice_s3=debug,librdkafka=warn",
    );
    wait_for("the first part uploaded", Duration::from_secs(120), || {
        w.log_text().contains("part uploaded")
    });
    w.kill9();
    assert!(
        !w.log_text().contains("file uploaded"),
        "the kill came too late"
    );
    assert!(s3().objects(&bucket, "topics/").is_empty());
    // Nothing of the unfinished file may have been committed.
    assert_eq!(
        committed(&format!("connect-{name}"), &topic)
            .get(&0)
            .copied()
            .unwrap_or(0),
        0
    );

    let mut w = WorkerProcess::start(&scratch, &worker, &[sink]);
    wait_for("the file committed", Duration::from_secs(120), || {
        committed(&format!("connect-{name}"), &topic).get(&0) == Some(&60_000)
    });
    w.stop_cleanly();
    check_the_multipart_object(&bucket);
}
