//! Observability against real services: consumer lag per partition as the
//! broker counts it (REST `/lag` and `/assignments` and `/metrics` agreeing),
//! the exposition checked by `promtool check metrics` and scraped by a real
//! Prometheus that loads the alert rules of `configs/monitoring`, the CDC
//! source's lag dropping to 0 on an idle stream, and the `/ui` status page
//! driven in headless Chromium (it sees a running connector, pauses it).
//!
//! Prometheus, promtool, Chromium and playwright-core come from `dev/install
//! prometheus browser`, which this test runs (it is idempotent).

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::{json, Value};
use support::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dev_install(component: &str) {
    let status = Command::new(root().join("dev/install"))
        .arg(component)
        .stdout(Stdio::null())
        .status()
        .expect("dev/install runs");
    assert!(status.success(), "dev/install {component} failed");
}

/// A worker with a fast lag refresh and no connectors yet.
fn start_worker(scratch: &Scratch) -> WorkerProcess {
    let mut config = worker_config(scratch);
    config["metrics.lag.refresh.ms"] = json!(300);
    let path = scratch.write_json("worker.json", &config);
    WorkerProcess::start(scratch, &path, &[])
}

fn create(http: &Client, base: &str, name: &str, config: Value) {
    let r = http
        .post(format!("{base}/connectors"))
        .json(&json!({"name": name, "config": config}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
}

fn task_state(w: &WorkerProcess, name: &str) -> String {
    let s = w.get(&format!("/connectors/{name}/status"));
    s["tasks"][0]["state"].as_str().unwrap_or("").to_owned()
}

fn scrape(base: &str) -> String {
    reqwest::blocking::get(format!("{base}/metrics"))
        .unwrap()
        .text()
        .unwrap()
}

/// The value of the sample whose series is exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `lag` of each partition in a `/lag` answer, by partition.
fn lags(view: &Value) -> Vec<(i64, i64, i64)> {
    view["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_i64().unwrap(),
                p["lag"].as_i64().unwrap(),
                p["unread"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Runs a tool, returning its exit success and combined output.
fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("tool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn percent_encoded(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `sluice_...` metric name in `text`.
fn series_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("sluice_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names.sort();
    names.dedup();
    names
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus server, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `target` (host:port) every second, with the repository's alert rules.
    fn start(scratch: &Scratch, target: &str) -> Self {
        let rules = root().join("configs/monitoring/alerts.yml");
        let config = scratch.path("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets: ['{target}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(scratch.path("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                scratch.path("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn api(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encoded(v)))
            .collect();
        Client::new()
            .get(format!("{}{path}?{}", self.url, query.join("&")))
            .send()
            .ok()?
            .json()
            .ok()
    }

    /// The instant query's single value, if it has exactly one series.
    fn value(&self, query: &str) -> Option<f64> {
        let v = self.api("/api/v1/query", &[("query", query)])?;
        let result = v["data"]["result"].as_array()?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }
}

#[test]
fn lag_per_partition_agrees_across_rest_metrics_and_prometheus() {
    dev_install("prometheus");
    let scratch = Scratch::new("obs-lag");
    let topic = unique("obs-lag");
    create_topic(&scratch, &topic, 3);
    for p in 0..3 {
        produce_values(
            &topic,
            p,
            &numbered_values(p as usize * 10, p as usize * 10 + 10),
        );
    }
    let out = scratch.path("out.jsonl");
    let w = start_worker(&scratch);
    let base = w.rest_url();
    let http = Client::new();
    let name = unique("obs-sink");
    create(&http, &base, &name, file_sink(&topic, &out));

    // Everything read and committed: three partitions, ten records each, no lag.
    wait_for("30 records written", Duration::from_secs(60), || {
        count_lines(&out) == 30
    });
    let lag_path = format!("/connectors/{name}/lag");
    wait_for(
        "all three partitions committed",
        Duration::from_secs(30),
        || lags(&w.get(&lag_path)) == vec![(0, 0, 0), (1, 0, 0), (2, 0, 0)],
    );
    let lag = w.get(&lag_path);
    for p in lag["partitions"].as_array().unwrap() {
        assert_eq!(p["log_end_offset"], 10, "{lag}");
        assert_eq!(p["committed_offset"], 10, "{lag}");
    }

    // Paused, the sink reads nothing: seven records on partition 1 are lag there only.
    let r = http
        .put(format!("{base}/connectors/{name}/pause"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    wait_for("the task PAUSED", Duration::from_secs(30), || {
        task_state(&w, &name) == "PAUSED"
    });
    produce_values(&topic, 1, &numbered_values(100, 107));
    wait_for("lag 7 on partition 1", Duration::from_secs(30), || {
        lags(&w.get(&lag_path)) == vec![(0, 0, 0), (1, 7, 7), (2, 0, 0)]
    });
    let lag = w.get(&lag_path);
    assert_eq!(lag["max_lag"], 7, "{lag}");
    assert_eq!(lag["total_lag"], 7, "{lag}");
    let worker_id = w.get(&format!("/connectors/{name}/status"))["tasks"][0]["worker_id"].clone();
    assert_eq!(lag["partitions"][1]["worker_id"], worker_id, "{lag}");

    // Assignments: task 0 on this worker holds the three partitions.
    let assignments = w.get(&format!("/connectors/{name}/assignments"));
    assert_eq!(assignments["tasks"][0]["worker_id"], worker_id);
    assert_eq!(assignments["tasks"][0]["local"], true);
    let held: Vec<i64> = assignments["tasks"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["topic"], topic.as_str());
            p["partition"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(held, vec![0, 1, 2], "{assignments}");

    // /metrics says the same.
    let text = scrape(&base);
    let task = format!("connector=\"{name}\",task=\"0\"");
    for (p, want) in [(0, 0.0), (1, 7.0), (2, 0.0)] {
        let series = format!(
            "sluice_sink_partition_lag_records{{{task},topic=\"{topic}\",partition=\"{p}\"}}"
        );
        assert_eq!(sample(&text, &series), Some(want), "{series} in:\n{text}");
    }
    // One connector and one task started, nothing failed to.
    for (series, want) in [
        (
            "sluice_worker_connector_startups_total{outcome=\"success\"}",
            1.0,
        ),
        (
            "sluice_worker_connector_startups_total{outcome=\"failure\"}",
            0.0,
        ),
        (
            "sluice_worker_task_startups_total{outcome=\"success\"}",
            1.0,
        ),
        (
            "sluice_worker_task_startups_total{outcome=\"failure\"}",
            0.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series}");
    }
    // Connect documents sink-record-lag-max but never computes it.
    assert_eq!(
        sample(&text, &format!("sluice_sink_task_record_lag_max{{{task}}}")),
        Some(7.0)
    );
    assert_eq!(
        sample(&text, &format!("sluice_sink_task_partitions{{{task}}}")),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("sluice_sink_task_records_sent_total{{{task}}}")
        ),
        Some(30.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("sluice_task_state{{{task},state=\"PAUSED\"}}")
        ),
        Some(1.0)
    );
    let info = format!(
        "sluice_connector_info{{connector=\"{name}\",type=\"sink\",class=\"file-sink\",version="
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(&info) && l.ends_with(" 1")),
        "{info} missing:\n{text}"
    );
    // Paused since the scrapes began to see it: the pause ratio grows.
    let pause_ratio = format!("sluice_task_pause_ratio{{{task}}}");
    wait_for("a pause ratio above 0", Duration::from_secs(30), || {
        sample(&scrape(&base), &pause_ratio).is_some_and(|r| r > 0.0 && r < 1.0)
    });
    let commits = sample(
        &text,
        &format!("sluice_task_offset_commits_total{{{task},outcome=\"success\"}}"),
    )
    .unwrap_or(0.0);
    assert!(commits >= 1.0, "no successful commit counted:\n{text}");
    assert!(
        sample(
            &text,
            &format!("sluice_sink_task_put_batch_duration_seconds_count{{{task}}}")
        )
        .unwrap_or(0.0)
            >= 1.0,
        "no put timed:\n{text}"
    );

    // The alert rules and the dashboard name only series the worker exposes
    // (those of other connectors and of distributed mode named here).
    let exposed: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .chain(
            [
                "sluice_cdc_replication_slot_lag_bytes",
                "sluice_cdc_source_lag_seconds",
                "sluice_s3_objects_written_total",
                "sluice_s3_written_bytes_total",
                "sluice_es_items_total",
                "sluice_worker_rebalances_total",
            ]
            .map(str::to_owned),
        )
        .collect();
    for file in ["alerts.yml", "alerts_test.yml", "grafana-dashboard.json"] {
        let body = std::fs::read_to_string(root().join("configs/monitoring").join(file)).unwrap();
        for name in series_names(&body) {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| exposed.iter().any(|e| e == f))
                })
                .unwrap_or(&name);
            assert!(
                exposed.iter().any(|e| e == family),
                "{file} names {name}, which /metrics does not have"
            );
        }
    }

    // promtool accepts the exposition as it is (format and naming lint).
    let scraped = scratch.path("scraped.prom");
    std::fs::write(&scraped, &text).unwrap();
    let (ok, said) = run(Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", scraped.display())));
    assert!(ok, "promtool check metrics:\n{said}");
    assert!(
        said.trim().is_empty(),
        "promtool check metrics complained:\n{said}"
    );
    println!("promtool check metrics: ok, no findings");

    // And the rules of configs/monitoring, with their unit tests.
    let monitoring = root().join("configs/monitoring");
    let (ok, said) = run(Command::new("promtool").current_dir(&monitoring).args([
        "check",
        "rules",
        "alerts.yml",
    ]));
    assert!(
        ok && said.contains("SUCCESS"),
        "promtool check rules:\n{said}"
    );
    println!("{said}");
    let (ok, said) = run(Command::new("promtool").current_dir(&monitoring).args([
        "test",
        "rules",
        "alerts_test.yml",
    ]));
    assert!(ok, "promtool test rules:\n{said}");
    println!("{said}");

    // A real Prometheus scrapes the worker and answers for the lag series.
    let target = base.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&scratch, &target);
    let query =
        format!("sluice_sink_partition_lag_records{{connector=\"{name}\",partition=\"1\"}}");
    wait_for(
        "Prometheus to hold the lag of partition 1",
        Duration::from_secs(60),
        || prometheus.value(&query) == Some(7.0),
    );
    let max = format!("max(sluice_sink_partition_lag_records{{connector=\"{name}\"}})");
    assert_eq!(prometheus.value(&max), Some(7.0));
    let up = prometheus.value("up{job=\"sluice\"}");
    assert_eq!(up, Some(1.0));
    // Prometheus loaded the repository's rules.
    let rules = prometheus.api("/api/v1/rules", &[]).unwrap();
    let loaded: usize = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(loaded, 14, "{rules}");

    // Resumed, the sink catches up and the lag goes back to 0.
    let r = http
        .put(format!("{base}/connectors/{name}/resume"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    wait_for("37 records written", Duration::from_secs(60), || {
        count_lines(&out) == 37
    });
    wait_for("no lag after resume", Duration::from_secs(30), || {
        lags(&w.get(&lag_path)) == vec![(0, 0, 0), (1, 0, 0), (2, 0, 0)]
    });
    wait_for(
        "Prometheus sees the lag gone",
        Duration::from_secs(30),
        || prometheus.value(&max) == Some(0.0),
    );
}

#[test]
fn lag_of_an_unknown_connector_is_404() {
    let scratch = Scratch::new("obs-404");
    let w = start_worker(&scratch);
    let base = w.rest_url();
    for path in ["lag", "assignments"] {
        let r = reqwest::blocking::get(format!("{base}/connectors/nope/{path}")).unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
}

#[test]
fn cdc_lag_is_reported_and_drops_to_zero_on_an_idle_stream() {
    let scratch = Scratch::new("obs-cdc");
    let id = unique("obscdc").to_lowercase().replace(['-', '.'], "_");
    psql(&format!(
        "CREATE SCHEMA {id}; CREATE TABLE {id}.t (id int PRIMARY KEY, v text);"
    ));
    let slot = format!("slot_{id}");
    let prefix = format!("cdc_{id}");
    let w = start_worker(&scratch);
    let base = w.rest_url();
    let name = unique("obs-cdc");
    let config = with_keys(
        cdc_source(&prefix, &slot, &id),
        json!({
            "key.converter": "json",
            "key.converter.schemas.enable": false,
            "value.converter": "json",
            "value.converter.schemas.enable": false,
            "poll.interval.ms": 100,
            "topic.creation.default.partitions": 1
        }),
    );
    create(&Client::new(), &base, &name, config);
    wait_for("the CDC task RUNNING", Duration::from_secs(60), || {
        task_state(&w, &name) == "RUNNING"
    });
    psql(&format!(
        "INSERT INTO {id}.t SELECT g, 'v' || g FROM generate_series(1, 50) g"
    ));
    let topic = format!("{prefix}.{id}.t");
    wait_for("50 change events", Duration::from_secs(60), || {
        topic_count(&topic) >= 50
    });
    let labels = format!("connector=\"{name}\",task=\"0\",slot=\"{slot}\"");
    let behind = format!("sluice_cdc_source_lag_seconds{{{labels}}}");
    let slot_lag = format!("sluice_cdc_replication_slot_lag_bytes{{{labels}}}");
    // Idle and caught up: not behind, whatever the age of the last change.
    // Differs from Debezium on purpose: its MilliSecondsBehindSource is the
    // age of the last event, which keeps growing here.
    wait_for("0 s behind once idle", Duration::from_secs(30), || {
        sample(&scrape(&base), &behind) == Some(0.0)
    });
    // The slot's lag as the server counts it, within what the test wrote.
    let server_side = psql(&format!(
        "SELECT pg_current_wal_lsn() - confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'"
    ));
    let server_side: f64 = server_side.trim().parse().unwrap_or(f64::MAX);
    let text = scrape(&base);
    let reported =
        sample(&text, &slot_lag).unwrap_or_else(|| panic!("{slot_lag} missing:\n{text}"));
    assert!(
        (0.0..1_048_576.0).contains(&reported) && server_side < 1_048_576.0,
        "slot lag reported {reported}, server says {server_side}"
    );
    drop(w);
    drop_slot(&slot);
}

/// Where `dev/install browser` put playwright-core.
fn playwright_modules() -> PathBuf {
    let tools = std::env::var("SLUICE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/sluice/tools")
        });
    tools.join("playwright/node_modules")
}

#[test]
fn the_status_page_shows_a_running_connector_and_pauses_it() {
    dev_install("browser");
    let scratch = Scratch::new("obs-ui");
    let topic = unique("obs-ui");
    create_topic(&scratch, &topic, 2);
    produce_values(&topic, 0, &numbered_values(0, 5));
    produce_values(&topic, 1, &numbered_values(5, 8));
    let out = scratch.path("out.jsonl");
    let w = start_worker(&scratch);
    let base = w.rest_url();
    let name = unique("obs-ui-sink");
    create(&Client::new(), &base, &name, file_sink(&topic, &out));
    wait_for("8 records written", Duration::from_secs(60), || {
        count_lines(&out) == 8
    });
    let page = format!("{base}/ui");
    let html = reqwest::blocking::get(&page).unwrap();
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");

    let (ok, said) = run(Command::new("node")
        .arg(root().join("tests/ui/status_page.cjs"))
        .arg(&page)
        .arg(&name)
        .arg(scratch.path("chromium-profile"))
        .env("NODE_PATH", playwright_modules()));
    assert!(ok, "the browser run failed:\n{said}");
    let seen: Value = serde_json::from_str(said.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("no result line ({e}):\n{said}"));
    println!("the page showed: {seen}");
    assert_eq!(seen["before"], "RUNNING", "{seen}");
    assert_eq!(seen["after"], "PAUSED", "{seen}");
    assert_eq!(seen["task_states"][0], "PAUSED", "{seen}");
    assert_eq!(seen["lag_rows"], 2, "{seen}");
    assert_eq!(seen["lag_bars"], 2, "{seen}");
    assert_eq!(seen["dlq"], "0", "{seen}");
    // The click went through the REST API: the worker has the task paused.
    assert_eq!(task_state(&w, &name), "PAUSED");
}

#[test]
fn json_logs_say_a_missing_subscribed_topic_once_as_a_warning() {
    let scratch = Scratch::new("obs-log");
    let topic = unique("obs-later");
    let out = scratch.path("out.jsonl");
    let mut config = worker_config(&scratch);
    config["metrics.lag.refresh.ms"] = json!(300);
    let worker = scratch.write_json("worker.json", &config);
    let name = unique("obs-log-sink");
    let mut connector = file_sink(&topic, &out);
    connector["name"] = json!(name);
    let connector = scratch.write_json("sink.json", &connector);
    let log = scratch.path("worker.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = sluice()
        .arg("standalone")
        .arg(&worker)
        .arg(&connector)
        .env("SLUICE_LOG_FORMAT", "json")
        .env_remove("SLUICE_LOG")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("sluice starts");
    let w = WorkerProcess { child, log };
    let lines = || -> Vec<Value> {
        w.log_text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    let said = |lines: &[Value], what: &str| -> Vec<Value> {
        lines
            .iter()
            .filter(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(what))
            })
            .cloned()
            .collect()
    };
    wait_for(
        "the missing topic reported",
        Duration::from_secs(60),
        || !said(&lines(), "does not exist yet").is_empty(),
    );
    // Several metadata refreshes later, it is still said once.
    let base = said(&lines(), "REST API listening")[0]["fields"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let scratch_topic = Scratch::new("obs-log-topic");
    create_topic(&scratch_topic, &topic, 1);
    produce_values(&topic, 0, &numbered_values(0, 4));
    wait_for("4 records written", Duration::from_secs(60), || {
        count_lines(&out) == 4
    });
    let all = lines();
    let missing = said(&all, "does not exist yet");
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0]["level"], "WARN");
    assert_eq!(missing[0]["fields"]["topic"], topic.as_str());
    assert_eq!(missing[0]["fields"]["connector"], name.as_str());
    assert_eq!(missing[0]["fields"]["task"], 0);
    let retried = said(&all, "consumer error");
    assert!(
        retried.is_empty(),
        "the missing topic said again: {retried:?}"
    );
    let errors: Vec<&Value> = all.iter().filter(|l| l["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "a healthy run logged errors: {errors:?}");
    // Task lines carry the connector and task as fields.
    let started = said(&all, "sink task started");
    assert_eq!(
        started[0]["fields"]["connector"],
        name.as_str(),
        "{started:?}"
    );
    let status: Value = reqwest::blocking::get(format!("{base}/connectors/{name}/status"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["tasks"][0]["state"], "RUNNING");
}

/// Distributed mode: each worker answers `/assignments` and `/lag` from what
/// it runs and, for tasks elsewhere, from the status topic; `/metrics` has
/// the placement's rebalance figures.
#[test]
fn distributed_workers_agree_on_who_holds_the_partitions() {
    let scratch = Scratch::new("obs-dist");
    let group = unique("obs-cluster");
    let mut config = worker_config(&scratch);
    for (k, v) in json!({
        "group.id": group,
        "config.storage.topic": format!("{group}-configs"),
        "offset.storage.topic": format!("{group}-offsets"),
        "status.storage.topic": format!("{group}-status"),
        "offset.storage.partitions": 5,
        "status.storage.partitions": 3,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "metrics.lag.refresh.ms": 300,
    })
    .as_object()
    .unwrap()
    {
        config[k] = v.clone();
    }
    let config = scratch.write_json("worker-distributed.json", &config);
    let workers: Vec<WorkerProcess> = (0..2)
        .map(|_| WorkerProcess::start_distributed(&scratch, &config))
        .collect();
    let urls: Vec<String> = workers.iter().map(WorkerProcess::rest_url).collect();
    let topic = unique("obs-dist");
    create_topic(&scratch, &topic, 4);
    for p in 0..4 {
        produce_values(&topic, p, &numbered_values(0, 5));
    }
    let name = unique("obs-dist-sink");
    let out = scratch.path("out.jsonl");
    create(&Client::new(), &urls[0], &name, file_sink(&topic, &out));
    wait_for("20 records written", Duration::from_secs(90), || {
        count_lines(&out) == 20
    });
    let answers = || -> Vec<Value> {
        urls.iter()
            .map(|u| {
                reqwest::blocking::get(format!("{u}/connectors/{name}/assignments"))
                    .and_then(|r| r.json())
                    .unwrap_or(Value::Null)
            })
            .collect()
    };
    // Exactly one worker runs the task and knows its four partitions; the
    // other names that worker, from the status topic.
    wait_for("both workers to agree", Duration::from_secs(60), || {
        let a = answers();
        let tasks: Vec<&Value> = a.iter().map(|x| &x["tasks"][0]).collect();
        let local: Vec<&&Value> = tasks.iter().filter(|t| t["local"] == true).collect();
        local.len() == 1
            && local[0]["partitions"].as_array().map(Vec::len) == Some(4)
            && tasks
                .iter()
                .all(|t| t["worker_id"] == local[0]["worker_id"] && t["state"] == "RUNNING")
    });
    let a = answers();
    let owner = a
        .iter()
        .position(|x| x["tasks"][0]["local"] == true)
        .unwrap();
    let other = 1 - owner;
    assert_eq!(
        a[other]["tasks"][0]["partitions"],
        Value::Null,
        "{}",
        a[other]
    );
    assert!(urls[owner].ends_with(a[owner]["tasks"][0]["worker_id"].as_str().unwrap()));
    let lag = workers[other].get(&format!("/connectors/{name}/lag"));
    assert_eq!(lag["partitions"], json!([]), "{lag}");
    assert_eq!(
        lag["tasks_elsewhere"][0]["worker_id"],
        a[owner]["tasks"][0]["worker_id"]
    );
    wait_for(
        "the owner's lag at 0 on 4 partitions",
        Duration::from_secs(30),
        || {
            lags(&workers[owner].get(&format!("/connectors/{name}/lag")))
                == vec![(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0)]
        },
    );
    // The owner's /metrics has the partitions; the other's has none of them.
    let series = format!("sluice_sink_partition_lag_records{{connector=\"{name}\",");
    assert_eq!(scrape(&urls[owner]).matches(&series).count(), 4);
    assert_eq!(scrape(&urls[other]).matches(&series).count(), 0);
    // Between them the workers hold every placement slot, each after a rebalance.
    wait_for("all 64 slots held", Duration::from_secs(30), || {
        let texts: Vec<String> = urls.iter().map(|u| scrape(u)).collect();
        let slots: f64 = texts
            .iter()
            .filter_map(|t| sample(t, "sluice_worker_assigned_slots"))
            .sum();
        let rebalanced = texts
            .iter()
            .all(|t| sample(t, "sluice_worker_rebalances_total").unwrap_or(0.0) >= 1.0);
        slots == 64.0 && rebalanced
    });
}
