//! Bad input gets a one-line error naming the file and the key, and a non-zero
//! exit: never a panic, never a hang.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

/// Runs `sluice standalone` and returns (exit success, stderr), failing on a hang.
fn run(worker: &PathBuf, connectors: &[PathBuf]) -> (bool, String) {
    let started = Instant::now();
    let out = sluice()
        .arg("standalone")
        .arg(worker)
        .args(connectors)
        .env("SLUICE_LOG", "error")
        .output()
        .expect("sluice runs");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    (out.status.success(), stderr)
}

fn error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected, got: {stderr}");
    lines[0]
}

fn datagen(scratch: &Scratch, name: &str, config: serde_json::Value) -> PathBuf {
    scratch.write_json(name, &json!({"name": "gen", "config": config}))
}

#[test]
fn malformed_worker_json_names_the_file() {
    let s = Scratch::new("bad");
    let worker = s.path("worker.json");
    std::fs::write(&worker, "{\"bootstrap.servers\": \"x:1\",,}").unwrap();
    let gen = datagen(&s, "gen.json", json!({"connector.class": "datagen"}));
    let (ok, err) = run(&worker, &[gen]);
    assert!(!ok);
    let line = error_line(&err);
    assert!(
        line.contains(&worker.display().to_string()) && line.contains("not valid JSON"),
        "{line}"
    );
}

#[test]
fn malformed_connector_json_names_the_file() {
    let s = Scratch::new("bad");
    let worker = s.write_json("worker.json", &worker_config(&s));
    let conn = s.path("broken.json");
    std::fs::write(&conn, "{\"name\": \"x\", \"config\": ").unwrap();
    let (ok, err) = run(&worker, std::slice::from_ref(&conn));
    assert!(!ok);
    assert!(
        error_line(&err).contains(&conn.display().to_string()),
        "{err}"
    );
}

#[test]
fn unknown_connector_class_lists_the_known_ones() {
    let s = Scratch::new("bad");
    let worker = s.write_json("worker.json", &worker_config(&s));
    let conn = datagen(&s, "c.json", json!({"connector.class": "com.example.Nope"}));
    let (ok, err) = run(&worker, std::slice::from_ref(&conn));
    assert!(!ok);
    let line = error_line(&err);
    assert!(line.contains(&conn.display().to_string()), "{line}");
    assert!(
        line.contains("'connector.class': unknown connector class 'com.example.Nope'"),
        "{line}"
    );
    assert!(
        line.contains("datagen") && line.contains("file-sink"),
        "{line}"
    );
}

#[test]
fn missing_required_key_and_wrong_types_are_all_reported() {
    let s = Scratch::new("bad");
    let worker = s.write_json("worker.json", &worker_config(&s));
    let conn = s.write_json(
        "sink.json",
        &json!({"name": "sink", "config": {"connector.class": "file-sink", "topics": "t", "tasks.max": "many", "format": "xml"}}),
    );
    let (ok, err) = run(&worker, &[conn]);
    assert!(!ok);
    let line = error_line(&err);
    assert!(line.contains("'file': is required"), "{line}");
    assert!(
        line.contains("'tasks.max': invalid value 'many': expected a 32-bit integer"),
        "{line}"
    );
    assert!(
        line.contains("'format': invalid value 'xml': must be one of value, envelope"),
        "{line}"
    );
}

#[test]
fn sink_without_topics_is_rejected() {
    let s = Scratch::new("bad");
    let worker = s.write_json("worker.json", &worker_config(&s));
    let conn = s.write_json(
        "sink.json",
        &json!({"name": "sink", "config": {"connector.class": "file-sink", "file": "/tmp/x"}}),
    );
    let (ok, err) = run(&worker, &[conn]);
    assert!(!ok);
    assert!(
        error_line(&err).contains("'topics': Must configure one of topics or topics.regex"),
        "{err}"
    );
}

#[test]
fn worker_key_of_wrong_type_is_named() {
    let s = Scratch::new("bad");
    let mut w = worker_config(&s);
    w["offset.flush.interval.ms"] = json!("often");
    let worker = s.write_json("worker.json", &w);
    let gen = datagen(&s, "gen.json", json!({"connector.class": "datagen"}));
    let (ok, err) = run(&worker, &[gen]);
    assert!(!ok);
    let line = error_line(&err);
    assert!(
        line.contains("worker.json")
            && line.contains("'offset.flush.interval.ms': invalid value 'often'"),
        "{line}"
    );
}

#[test]
fn unset_secret_reference_is_named() {
    let s = Scratch::new("bad");
    let mut config = worker_config(&s);
    config["config.providers"] = json!("env");
    let worker = s.write_json("worker.json", &config);
    let conn = datagen(
        &s,
        "gen.json",
        json!({"connector.class": "datagen", "kafka.topic": "${env:SLUICE_TEST_SURELY_UNSET}"}),
    );
    let (ok, err) = run(&worker, &[conn]);
    assert!(!ok);
    assert!(
        error_line(&err)
            .contains("'kafka.topic': environment variable 'SLUICE_TEST_SURELY_UNSET' is not set"),
        "{err}"
    );
}

#[test]
fn unreachable_broker_fails_fast_with_a_clear_message() {
    let s = Scratch::new("bad");
    let mut w = worker_config(&s);
    // A port nothing listens on: bind one, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    w["bootstrap.servers"] = json!(format!("127.0.0.1:{port}"));
    let worker = s.write_json("worker.json", &w);
    let gen = datagen(&s, "gen.json", json!({"connector.class": "datagen"}));
    let (ok, err) = run(&worker, &[gen]);
    assert!(!ok);
    let line = error_line(&err);
    assert!(
        line.contains(&format!("cannot reach Kafka at 127.0.0.1:{port}")),
        "{line}"
    );
}

#[test]
fn environment_overrides_the_worker_file() {
    // The file points nowhere; SLUICE_BOOTSTRAP_SERVERS fixes it, and the worker
    // gets far enough to reject the connector, proving it reached the broker.
    let s = Scratch::new("env");
    let mut w = worker_config(&s);
    w["bootstrap.servers"] = json!("127.0.0.1:1");
    let worker = s.write_json("worker.json", &w);
    let out = sluice()
        .args(["topics", "list", "--worker"])
        .arg(&worker)
        .env("SLUICE_BOOTSTRAP_SERVERS", kafka())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_cli_command_piped_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    // `sluice plugins --local | head -0`: the reader is gone before the
    // command writes, as when `head` has read what it wanted.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = sluice()
        .args(["plugins", "--local"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(13), "ended by SIGPIPE: {stderr}");
}
