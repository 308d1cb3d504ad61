//! WebAssembly transforms end to end: the example guests in connectors (a
//! datagen source through a chain of all four, compared record by record with
//! the same events untransformed), and misbehaving guests in sink connectors —
//! a trap, an endless loop, unbounded allocation — whose records go to the
//! dead-letter queue while the worker and its other tasks keep running. Bad
//! modules are refused by `config/validate` and at start.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

#[path = "support/guests.rs"]
mod guests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guests::{guest, target_dir};
use serde_json::{json, Value};
use sluice_api::{Record, Transform};
use sluice_wasm::{Limits, WasmTransform};
use support::*;

const WASM: &str = "io.sluice.transforms.Wasm";
const EVENTS: i64 = 1500;
const HOT: [&str; 2] = ["tenant_00000", "tenant_00001"];
const TEST_TENANT: &str = "tenant_00005";

fn datagen(name: &str, topic: &str, extra: Value) -> Value {
    let mut config = json!({
        "connector.class": "datagen", "kafka.topic": topic, "max.records": EVENTS,
        "seed": 11, "tenants": 20, "hot.tenants": 2, "hot.tenant.share": 0.5,
        "hot.tenant.composite.key": false,
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    json!({"name": name, "config": config})
}

/// A source whose every record spins in its guest until the 3 s time limit.
fn spinner() -> Value {
    datagen(
        &unique("spin"),
        &unique("wasm-spin"),
        json!({
            "max.records": 1_000_000, "batch.size": 1, "errors.tolerance": "all",
            "transforms": "w", "transforms.w.type": WASM,
            "transforms.w.module": module("loop-forever"), "transforms.w.timeout.ms": 3000,
        }),
    )
}

fn module(name: &str) -> String {
    guest(name).display().to_string()
}

/// A file sink from `topic` through one WebAssembly transform, dead-lettering
/// what it rejects into `{topic}.dlq`.
fn guarded_sink(name: &str, topic: &str, file: &Path, guest_name: &str, extra: Value) -> Value {
    let mut config = json!({
        "connector.class": "file-sink", "topics": topic, "file": file.display().to_string(),
        "format": "value",
        "transforms": "w", "transforms.w.type": WASM, "transforms.w.module": module(guest_name),
        "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": format!("{topic}.dlq"),
        "errors.deadletterqueue.topic.replication.factor": 1,
        "errors.deadletterqueue.context.headers.enable": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    json!({"name": name, "config": config})
}

fn produce_strings(topic: &str, texts: &[String]) {
    let values: Vec<Vec<u8>> = texts
        .iter()
        .map(|t| serde_json::to_vec(&json!(t)).unwrap())
        .collect();
    produce_values(topic, 0, &values);
}

/// Asserts `dead` holds exactly `expected` (the original values, in order),
/// each dead-lettered at stage TRANSFORMATION by the Wasm transform with a
/// message containing its `why`.
fn assert_dead_lettered(dead: &[Consumed], expected: &[(String, String)]) {
    let got: Vec<String> = dead
        .iter()
        .map(|d| serde_json::from_slice::<String>(d.value.as_deref().unwrap()).unwrap())
        .collect();
    let want: Vec<String> = expected.iter().map(|(v, _)| v.clone()).collect();
    assert_eq!(got, want);
    for (d, (value, why)) in dead.iter().zip(expected) {
        let h = &d.headers;
        assert_eq!(h["__connect.errors.stage"], "TRANSFORMATION", "{value}");
        assert_eq!(h["__connect.errors.class.name"], WASM, "{value}");
        let message = &h["__connect.errors.exception.message"];
        assert!(message.contains(why), "{value}: {message}");
    }
}

#[test]
fn example_guests_and_misbehaving_guests_in_a_running_worker() {
    let scratch = Scratch::new("wasm");
    let raw = unique("wasm-raw");
    let out = unique("wasm-out");
    let canary = unique("wasm-canary");
    let (traps, loops, hoards) = (
        unique("wasm-trap"),
        unique("wasm-loop"),
        unique("wasm-hoard"),
    );
    for t in [&traps, &loops, &hoards] {
        create_topic(&scratch, t, 1);
    }

    // Poison among good records: a panic (a trap) and an error outcome.
    let mut trap_input = Vec::new();
    let mut trap_dead = Vec::new();
    let mut trap_kept = Vec::new();
    for i in 0..90 {
        let v = match i % 10 {
            3 => format!("poison {i}"),
            7 if i % 20 == 7 => format!("reject {i}"),
            _ => format!("ok {i}"),
        };
        if v.starts_with("poison") {
            trap_dead.push((v.clone(), format!("poisoned record: {v}")));
        } else if v.starts_with("reject") {
            trap_dead.push((
                v.clone(),
                format!("the guest rejected the record: rejected record: {v}"),
            ));
        } else {
            trap_kept.push(v.clone());
        }
        trap_input.push(v);
    }
    produce_strings(&traps, &trap_input);
    let endless: Vec<String> = (0..5).map(|i| format!("loop {i}")).collect();
    produce_strings(&loops, &endless);
    let hoarding: Vec<String> = (0..5).map(|i| format!("hoard {i}")).collect();
    produce_strings(&hoards, &hoarding);

    let chain = json!({
        "transforms": "drop,route,mask,noop",
        "transforms.drop.type": WASM, "transforms.drop.module": module("drop-test-traffic"),
        "transforms.drop.field": "tenant_id", "transforms.drop.values": TEST_TENANT,
        "transforms.route.type": WASM, "transforms.route.module": module("tenant-router"),
        "transforms.route.hot.tenants": HOT.join(","),
        "transforms.mask.type": "Wasm", "transforms.mask.module": module("mask-pii"),
        "transforms.mask.fields": "api_key_id",
        "transforms.noop.type": WASM, "transforms.noop.module": module("noop"),
    });
    let files = |n: &str| scratch.path(n);
    let connectors: Vec<PathBuf> = [
        ("raw.json", datagen(&unique("raw"), &raw, json!({}))),
        ("out.json", datagen(&unique("examples"), &out, chain)),
        (
            "canary.json",
            datagen(
                &unique("canary"),
                &canary,
                json!({"max.records": 1_000_000, "records.per.second": 50}),
            ),
        ),
        // Two sources whose guest spins until its time limit on every record:
        // as many as this machine's scheduler threads, which they must not hold.
        ("spin1.json", spinner()),
        ("spin2.json", spinner()),
        (
            "traps.json",
            guarded_sink(
                &unique("traps"),
                &traps,
                &files("traps.txt"),
                "trap-some",
                json!({}),
            ),
        ),
        (
            "loops.json",
            guarded_sink(
                &unique("loops"),
                &loops,
                &files("loops.txt"),
                "loop-forever",
                json!({"transforms.w.timeout.ms": 200}),
            ),
        ),
        (
            "hoards.json",
            guarded_sink(
                &unique("hoards"),
                &hoards,
                &files("hoards.txt"),
                "allocate-forever",
                json!({"transforms.w.memory.max.bytes": 16_777_216}),
            ),
        ),
    ]
    .into_iter()
    .map(|(file, c)| scratch.write_json(file, &c))
    .collect();
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut w = WorkerProcess::start(&scratch, &worker, &connectors);

    // The examples: every raw event is in the output — unless it is the test
    // tenant's — keyed by the hot-tenant rule, with its API key masked.
    wait_for(
        "the raw and transformed events",
        Duration::from_secs(120),
        || topic_count(&raw) >= EVENTS && topic_count(&out) > 0,
    );
    let raw_events = read_topic(&raw);
    assert_eq!(raw_events.len() as i64, EVENTS);
    let mut expected: BTreeMap<String, (String, Value)> = BTreeMap::new();
    let mut dropped = 0;
    for r in &raw_events {
        let mut v: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let tenant = v["tenant_id"].as_str().unwrap().to_owned();
        assert_eq!(
            r.key.as_deref(),
            Some(tenant.as_str()),
            "datagen keys by tenant"
        );
        if tenant == TEST_TENANT {
            dropped += 1;
            continue;
        }
        let api_key = v["api_key_id"].as_str().unwrap().to_owned();
        let key = if HOT.contains(&tenant.as_str()) {
            format!("{tenant}:{api_key}")
        } else {
            tenant
        };
        v["api_key_id"] = json!("****");
        expected.insert(v["event_id"].as_str().unwrap().to_owned(), (key, v));
    }
    assert!(dropped > 0 && expected.len() > 1000, "{dropped} dropped");
    assert!(
        expected.values().any(|(k, _)| k.contains(':')),
        "some hot tenants"
    );
    wait_for("every transformed event", Duration::from_secs(60), || {
        topic_count(&out) >= expected.len() as i64
    });
    let transformed: BTreeMap<String, (String, Value)> = read_topic(&out)
        .into_iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            (
                v["event_id"].as_str().unwrap().to_owned(),
                (r.key.unwrap(), v),
            )
        })
        .collect();
    assert_eq!(topic_count(&out), expected.len() as i64, "no duplicates");
    assert_eq!(transformed, expected);

    // The misbehaving guests: only the poison is dead-lettered, with the
    // guest's message; a loop and a hoard fail their records, not the worker.
    let traps_dlq = format!("{traps}.dlq");
    wait_for(
        "trapped records dead-lettered",
        Duration::from_secs(60),
        || {
            topic_count(&traps_dlq) >= trap_dead.len() as i64
                && count_lines(&files("traps.txt")) >= trap_kept.len()
        },
    );
    assert_dead_lettered(&read_topic(&traps_dlq), &trap_dead);
    let kept: Vec<String> = std::fs::read_to_string(files("traps.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(kept, trap_kept);

    let loops_dlq = format!("{loops}.dlq");
    let hoards_dlq = format!("{hoards}.dlq");
    wait_for(
        "looping and hoarding records dead-lettered",
        Duration::from_secs(60),
        || topic_count(&loops_dlq) >= 5 && topic_count(&hoards_dlq) >= 5,
    );
    let why: Vec<(String, String)> = endless
        .iter()
        .map(|v| (v.clone(), "longer than its time limit of 200 ms".to_owned()))
        .collect();
    assert_dead_lettered(&read_topic(&loops_dlq), &why);
    let why: Vec<(String, String)> = hoarding
        .iter()
        .map(|v| {
            (
                v.clone(),
                "more than its memory limit of 16777216 bytes".to_owned(),
            )
        })
        .collect();
    assert_dead_lettered(&read_topic(&hoards_dlq), &why);
    assert_eq!(count_lines(&files("loops.txt")), 0);
    assert_eq!(count_lines(&files("hoards.txt")), 0);

    // Everything still runs: the REST API answers promptly, every connector
    // and task runs, and the canary still produces.
    for _ in 0..10 {
        let asked = Instant::now();
        w.get("/connectors");
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "REST took {:?}",
            asked.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let statuses = w.get("/connectors?expand=status");
    for (name, c) in statuses.as_object().unwrap() {
        let s = &c["status"];
        assert_eq!(s["connector"]["state"], "RUNNING", "{name}: {s}");
        for t in s["tasks"].as_array().unwrap() {
            assert_eq!(t["state"], "RUNNING", "{name}: {s}");
        }
    }
    let before = topic_count(&canary);
    wait_for(
        "the canary to keep producing",
        Duration::from_secs(30),
        || topic_count(&canary) > before,
    );

    // Bad modules: validate names the transform's key and why.
    let junk = scratch.path("junk.wasm");
    std::fs::write(&junk, b"\0asm\x01\0\0\0").unwrap();
    let http = reqwest::blocking::Client::new();
    for (module, key, why) in [
        (
            "/nonexistent/t.wasm".to_owned(),
            "transforms.w.module",
            "cannot read WebAssembly module /nonexistent/t.wasm",
        ),
        (
            junk.display().to_string(),
            "transforms.w.module",
            "is not a WebAssembly component",
        ),
        (
            module("trap-in-init"),
            "transforms.w.type",
            "this guest always fails to start",
        ),
    ] {
        let config = json!({
            "connector.class": "file-sink", "name": "v", "topics": "t", "file": "/tmp/x",
            "transforms": "w", "transforms.w.type": WASM, "transforms.w.module": module,
        });
        let r: Value = http
            .put(format!(
                "{}/connector-plugins/file-sink/config/validate",
                w.rest_url()
            ))
            .json(&config)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(r["error_count"], 1, "{r}");
        let errors = r["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["value"]["name"] == key)
            .map(|c| c["value"]["errors"].to_string())
            .unwrap_or_default();
        assert!(errors.contains(why), "{key}: {r}");
    }
    assert!(w.child.try_wait().unwrap().is_none(), "the worker is up");
    assert!(
        w.terminate(Duration::from_secs(30)).success(),
        "{}",
        w.log_text()
    );
}

#[test]
fn a_connector_whose_guest_cannot_start_does_not_start() {
    let scratch = Scratch::new("wasm-bad");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    for (module, why) in [
        ("/nonexistent/t.wasm".to_owned(), "transforms.w.module"),
        (module("trap-in-init"), "this guest always fails to start"),
    ] {
        let conn = scratch.write_json(
            "c.json",
            &datagen("bad", "t", json!({"transforms": "w", "transforms.w.type": WASM, "transforms.w.module": module})),
        );
        let out = sluice()
            .arg("standalone")
            .arg(&worker)
            .arg(&conn)
            .env("SLUICE_LOG", "error")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The guest's own panic message is expected; a panic of the worker is not.
        assert!(!stderr.contains("thread '"), "{stderr}");
        assert!(
            stderr.contains(why) && stderr.contains("transforms.w."),
            "{stderr}"
        );
    }
}

#[test]
fn transform_new_starts_a_project_that_builds_into_a_working_component() {
    let scratch = Scratch::new("wasm-new");
    let new = || {
        sluice()
            .args(["transform", "new", "my-filter", "--dir"])
            .arg(&scratch.0)
            .output()
            .unwrap()
    };
    let out = new();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = new();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = sluice()
        .args(["transform", "new", "Bad Name"])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    // The examples' build has fetched the SDK's dependencies; share their
    // compiled artifacts too.
    guest("noop");
    let project = scratch.path("my-filter");
    let status =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--release", "--offline"])
            .arg("--target-dir")
            .arg(target_dir())
            .current_dir(&project)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .unwrap();
    assert!(status.success());
    let component = target_dir().join("wasm32-wasip2/release/my_filter.wasm");
    let limits = Limits {
        memory_max_bytes: 16 << 20,
        timeout: Duration::from_secs(5),
    };
    let mut t = WasmTransform::new(&component, limits, Vec::new()).unwrap();
    let records: Vec<Record> = (0..3)
        .map(|i| {
            Record::new(
                "t",
                sluice_api::Value::Null,
                sluice_api::Value::String(format!("r{i}")),
            )
        })
        .collect();
    let out: Vec<Record> = t
        .apply_batch(records.clone())
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(out, records);
}
