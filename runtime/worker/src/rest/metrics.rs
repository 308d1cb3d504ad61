//! `GET /metrics`: every task's counters and every connector's state in the
//! Prometheus text format, labelled by connector, task and (for failures) stage.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::Shared;
use crate::errors::Stage;
use crate::herder::{State as RunState, TaskMetricsView};
use crate::metrics::TaskMetrics;

/// A counter's name, help text and how to read it from a task's metrics.
type Counter = (&'static str, &'static str, fn(&TaskMetrics) -> u64);
/// The same, per error stage (indexed like `Stage::ALL`).
type StageCounter = (&'static str, &'static str, fn(&TaskMetrics, usize) -> u64);

const STATES: [(RunState, &str); 6] = [
    (RunState::Unassigned, "UNASSIGNED"),
    (RunState::Running, "RUNNING"),
    (RunState::Paused, "PAUSED"),
    (RunState::Stopped, "STOPPED"),
    (RunState::Failed, "FAILED"),
    (RunState::Restarting, "RESTARTING"),
];

pub async fn render(State(s): State<Shared>) -> impl IntoResponse {
    let (connectors, tasks) = s.herder.metrics().await;
    let mut out = String::new();
    header_line(
        &mut out,
        "sluice_connector_state",
        "gauge",
        "1 for the connector's current state",
    );
    for (name, state) in &connectors {
        for (st, label) in STATES {
            let _ = writeln!(
                out,
                "sluice_connector_state{{connector=\"{}\",state=\"{label}\"}} {}",
                escape(name),
                u8::from(*state == st)
            );
        }
    }
    header_line(
        &mut out,
        "sluice_task_state",
        "gauge",
        "1 for the task's current state",
    );
    for t in &tasks {
        for (st, label) in STATES {
            let _ = writeln!(
                out,
                "sluice_task_state{{{},state=\"{label}\"}} {}",
                labels(t),
                u8::from(t.state == st)
            );
        }
    }
    let counters: [Counter; 5] = [
        (
            "sluice_task_records_in_total",
            "Source: records polled from the task. Sink: records read from Kafka.",
            |m| TaskMetrics::get(&m.records_in),
        ),
        (
            "sluice_task_records_out_total",
            "Source: records acknowledged by Kafka. Sink: records handed to put.",
            |m| TaskMetrics::get(&m.records_out),
        ),
        (
            "sluice_task_records_skipped_total",
            "Source: replayed records skipped by idempotent resume.",
            |m| TaskMetrics::get(&m.records_skipped),
        ),
        (
            "sluice_task_commits_total",
            "Offset commits (sinks) and offset stores (sources).",
            |m| TaskMetrics::get(&m.commits),
        ),
        ("sluice_task_bytes_out_total", "Bytes written.", |m| {
            TaskMetrics::get(&m.bytes_out)
        }),
    ];
    for (name, help, read) in counters {
        header_line(&mut out, name, "counter", help);
        for t in &tasks {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(t), read(&t.metrics));
        }
    }
    header_line(
        &mut out,
        "sluice_task_retrying",
        "gauge",
        "1 while the task retries a failure of its source or destination (it stays RUNNING).",
    );
    for t in &tasks {
        let _ = writeln!(
            out,
            "sluice_task_retrying{{{}}} {}",
            labels(t),
            u8::from(t.retrying)
        );
    }
    header_line(
        &mut out,
        "sluice_task_auto_restarts",
        "gauge",
        "Automatic restarts of the task in a row after failures; 0 once it runs well.",
    );
    for t in &tasks {
        let _ = writeln!(
            out,
            "sluice_task_auto_restarts{{{}}} {}",
            labels(t),
            t.restarts
        );
    }
    let by_stage: [StageCounter; 3] = [
        (
            "sluice_task_retries_total",
            "Operations retried after a retriable error, by stage.",
            |m, i| TaskMetrics::get(&m.retries_by_stage[i]),
        ),
        (
            "sluice_task_records_failed_total",
            "Records that failed and were tolerated, by stage.",
            |m, i| TaskMetrics::get(&m.failed_by_stage[i]),
        ),
        (
            "sluice_task_records_dead_lettered_total",
            "Failed records written to the dead-letter queue, by stage.",
            |m, i| TaskMetrics::get(&m.dlq_by_stage[i]),
        ),
    ];
    for (name, help, read) in by_stage {
        header_line(&mut out, name, "counter", help);
        for t in &tasks {
            for (i, stage) in Stage::ALL.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{{},stage=\"{}\"}} {}",
                    labels(t),
                    stage.as_str(),
                    read(&t.metrics, i)
                );
            }
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

fn header_line(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn labels(t: &TaskMetricsView) -> String {
    format!("connector=\"{}\",task=\"{}\"", escape(&t.connector), t.task)
}

/// Prometheus label values escape backslash, quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
