//! The REST API fuzzed against its own document: schemathesis generates
//! thousands of requests for every operation of `/openapi.json` (valid ones,
//! edge cases and garbage) and checks each answer: no 5xx, a status code and a
//! body the document lists, no hang. Afterwards the worker still serves and its
//! memory stayed bounded.
//!
//! `SLUICE_FUZZ_EXAMPLES` sets the examples per operation (default 300, which
//! with every phase makes well over 5,000 requests).

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::*;

/// The worker's resident memory in kB, from /proc.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let check = Command::new("python3")
        .args(["-m", "schemathesis.cli", "--version"])
        .output()
        .expect("python3 runs");
    assert!(
        check.status.success(),
        "schemathesis is missing: dev/install fuzz installs it"
    );
    let scratch = Scratch::new("api-fuzz");
    let topic = unique("fuzz");
    create_topic(&scratch, &topic, 1);
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    // Something real for the generated requests to find, change and break.
    let sink = scratch.write_json(
        "sink.json",
        &json!({"name": "fuzzed", "config": {
            "connector.class": "file-sink", "topics": topic,
            "file": scratch.path("out.jsonl").display().to_string()
        }}),
    );
    let mut w = WorkerProcess::start(&scratch, &worker, &[sink]);
    let url = w.rest_url();
    let examples = std::env::var("SLUICE_FUZZ_EXAMPLES").unwrap_or_else(|_| "300".into());
    let report = scratch.path("schemathesis.txt");
    let out = Command::new("python3")
        .current_dir(&scratch.0)
        .args([
            "-m",
            "schemathesis.cli",
            "run",
            &format!("{url}/openapi.json"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            &examples,
            "--request-timeout",
            "20",
            "--workers",
            "2",
            "--seed",
            "1",
            "--no-color",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&report, &text).ok();
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    // "N test cases generated" (schemathesis' summary).
    let generated: u64 = text
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.split_once(" test cases generated")
                .or_else(|| l.split_once(" generated"))
                .and_then(|(n, _)| n.rsplit(' ').next()?.replace(',', "").parse().ok())
        })
        .unwrap_or(0);
    eprintln!(
        "schemathesis: {generated} test cases; report in {}",
        report.display()
    );
    assert!(
        generated >= 5000,
        "only {generated} requests generated:\n{text}"
    );

    let health = reqwest::blocking::get(format!("{url}/health")).unwrap();
    assert!(health.status().is_success());
    let rss = rss_kb(w.child.id());
    assert!(rss < 300 * 1024, "worker RSS after fuzzing: {rss} kB");
    assert!(w.terminate(Duration::from_secs(60)).code().is_some());
}
