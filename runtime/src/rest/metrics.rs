//! `GET /metrics`: the worker, its connectors and tasks in the Prometheus text
//! format (0.0.4), written by `prometheus-client` so types, units, `_total`
//! suffixes, histograms and label escaping are right by construction.
//!
//! The families carry the content of Kafka Connect's metric groups
//! (connector-metrics, connector-task-metrics, sink-task-metrics,
//! source-task-metrics, task-error-metrics, connect-worker-metrics and
//! connect-worker-rebalance-metrics) under Prometheus names: `sluice_` prefix,
//! base units, labels `connector`, `task`, `topic`, `partition`. Each scrape
//! reads the tasks' counters as they are; nothing is cached between scrapes.

use std::fmt;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::Shared;
use crate::error_handling::Stage;
use crate::herder::{ConnectorMetricsView, State as RunState, TaskMetricsView};
use crate::metrics::TaskMetrics;
use sluice_api::metrics::MetricKind;

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
    let startups = s.herder.startups();
    let scrape = Scrape {
        startups: [startups.connectors.counts(), startups.tasks.counts()],
        worker_id: s.herder.worker_id(),
        rebalance: s.herder.rebalance_state(),
        connectors,
        tasks,
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut text = String::new();
    match prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            text,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "cannot encode the metrics".to_owned(),
        ),
    }
}

/// What one scrape shows, read from the herder.
#[derive(Debug)]
struct Scrape {
    /// (successes, failures) of connector and of task starts.
    startups: [(u64, u64); 2],
    worker_id: String,
    rebalance: Option<(u64, u64, u64)>,
    connectors: Vec<ConnectorMetricsView>,
    tasks: Vec<TaskMetricsView>,
}

type Labels = Vec<(String, String)>;

/// Writes one family: its HELP and TYPE, then a sample per row.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels, M)>,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, unit, kind)?;
    for (labels, metric) in rows {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Counts and flags are whole numbers: written without a decimal point.
fn gauge(v: i64) -> ConstGauge<i64> {
    ConstGauge::new(v)
}

fn fraction(v: f64) -> ConstGauge<f64> {
    ConstGauge::new(v)
}

fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn task_labels(t: &TaskMetricsView) -> Labels {
    labels(&[
        ("connector", t.connector.clone()),
        ("task", t.task.to_string()),
    ])
}

fn with(mut base: Labels, more: &[(&str, String)]) -> Labels {
    base.extend(labels(more));
    base
}

/// A histogram family read from each task through `pick`.
fn histograms(
    enc: &mut DescriptorEncoder,
    tasks: &[&TaskMetricsView],
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    pick: fn(&TaskMetrics) -> &Histogram,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, unit, MetricType::Histogram)?;
    for t in tasks {
        let labels = task_labels(t);
        pick(&t.metrics).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        self.worker(&mut enc)?;
        self.connector_metrics(&mut enc)?;
        self.task_metrics(&mut enc)?;
        self.task_commit_metrics(&mut enc)?;
        self.sink_metrics(&mut enc)?;
        self.sink_lag_metrics(&mut enc)?;
        self.source_metrics(&mut enc)?;
        self.error_metrics(&mut enc)?;
        self.custom_metrics(&mut enc)
    }
}

impl Scrape {
    fn sinks(&self) -> Vec<&TaskMetricsView> {
        self.tasks.iter().filter(|t| t.kind == "sink").collect()
    }

    fn sources(&self) -> Vec<&TaskMetricsView> {
        self.tasks.iter().filter(|t| t.kind == "source").collect()
    }

    /// connect-worker-metrics and connect-worker-rebalance-metrics.
    fn worker(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        family(
            enc,
            "sluice_worker_info",
            "1, labelled with this worker's id (as statuses report it) and version.",
            None,
            MetricType::Gauge,
            [(
                labels(&[
                    ("worker_id", self.worker_id.clone()),
                    ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ]),
                gauge(1),
            )],
        )?;
        family(
            enc,
            "sluice_worker_connectors",
            "Connectors this worker knows (Connect's connector-count).",
            None,
            MetricType::Gauge,
            [(vec![], gauge(self.connectors.len() as i64))],
        )?;
        family(
            enc,
            "sluice_worker_tasks",
            "Tasks this worker runs, by state (Connect's task-count and connector-*-task-count).",
            None,
            MetricType::Gauge,
            STATES.iter().map(|(st, label)| {
                let n = self.tasks.iter().filter(|t| t.state == *st).count();
                (labels(&[("state", (*label).to_owned())]), gauge(n as i64))
            }),
        )?;
        for ((name, help), (success, failure)) in [
            (
                "sluice_worker_connector_startups",
                "Connector starts by outcome (Connect's connector-startup-*-total).",
            ),
            (
                "sluice_worker_task_startups",
                "Task starts by outcome (Connect's task-startup-*-total).",
            ),
        ]
        .into_iter()
        .zip(self.startups)
        {
            family(
                enc,
                name,
                help,
                None,
                MetricType::Counter,
                [("success", success), ("failure", failure)]
                    .map(|(outcome, n)| (labels(&[("outcome", outcome.to_owned())]), counter(n))),
            )?;
        }
        let Some((rebalances, slots, gained_ms)) = self.rebalance else {
            return Ok(());
        };
        family(
            enc,
            "sluice_worker_rebalances",
            "Placement rebalances this worker completed (distributed mode).",
            None,
            MetricType::Counter,
            [(vec![], counter(rebalances))],
        )?;
        family(
            enc,
            "sluice_worker_assigned_slots",
            "Placement slots (connectors and tasks) this worker holds (distributed mode).",
            None,
            MetricType::Gauge,
            [(vec![], gauge(slots as i64))],
        )?;
        family(
            enc,
            "sluice_worker_last_rebalance_timestamp",
            "When this worker last gained slots, in seconds since the epoch (distributed mode).",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            [(vec![], fraction(gained_ms as f64 / 1000.0))],
        )
    }

    /// connector-metrics.
    fn connector_metrics(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        family(
            enc,
            "sluice_connector_state",
            "1 for the connector's current state.",
            None,
            MetricType::Gauge,
            self.connectors.iter().flat_map(|c| {
                STATES.iter().map(move |(st, label)| {
                    (
                        labels(&[
                            ("connector", c.name.clone()),
                            ("state", (*label).to_owned()),
                        ]),
                        gauge(i64::from(c.state == *st)),
                    )
                })
            }),
        )?;
        family(
            enc,
            "sluice_connector_info",
            "1, labelled with the connector's type, class and plugin version (Connect's connector-type, connector-class, connector-version).",
            None,
            MetricType::Gauge,
            self.connectors.iter().map(|c| {
                (
                    labels(&[
                        ("connector", c.name.clone()),
                        ("type", c.kind.to_owned()),
                        ("class", c.class.clone()),
                        ("version", c.version.clone()),
                    ]),
                    gauge(1),
                )
            }),
        )
    }

    /// connector-task-metrics: state and the time spent in each.
    fn task_metrics(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        family(
            enc,
            "sluice_task_state",
            "1 for the task's current state.",
            None,
            MetricType::Gauge,
            self.tasks.iter().flat_map(|t| {
                STATES.iter().map(move |(st, label)| {
                    (
                        with(task_labels(t), &[("state", (*label).to_owned())]),
                        gauge(i64::from(t.state == *st)),
                    )
                })
            }),
        )?;
        let ratios: Vec<(Labels, (f64, f64))> = self
            .tasks
            .iter()
            .map(|t| (task_labels(t), t.metrics.state_ratios()))
            .collect();
        family(
            enc,
            "sluice_task_running_ratio",
            "Fraction of the task's life spent RUNNING (sampled at each scrape).",
            None,
            MetricType::Gauge,
            ratios.iter().map(|(l, r)| (l.clone(), fraction(r.0))),
        )?;
        family(
            enc,
            "sluice_task_pause_ratio",
            "Fraction of the task's life spent PAUSED (sampled at each scrape).",
            None,
            MetricType::Gauge,
            ratios.iter().map(|(l, r)| (l.clone(), fraction(r.1))),
        )
    }

    /// connector-task-metrics: offset commits, batches, retries and restarts.
    fn task_commit_metrics(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let all: Vec<&TaskMetricsView> = self.tasks.iter().collect();
        family(
            enc,
            "sluice_task_offset_commits",
            "Offset commits (sinks) and offset stores (sources), by outcome.",
            None,
            MetricType::Counter,
            self.tasks.iter().flat_map(|t| {
                [
                    ("success", TaskMetrics::get(&t.metrics.commits)),
                    ("failure", TaskMetrics::get(&t.metrics.commit_failures)),
                ]
                .map(|(outcome, n)| {
                    (
                        with(task_labels(t), &[("outcome", outcome.to_owned())]),
                        counter(n),
                    )
                })
            }),
        )?;
        histograms(
            enc,
            &all,
            "sluice_task_offset_commit_duration",
            "How long offset commits (sinks) and offset stores (sources) took.",
            Some(&Unit::Seconds),
            |m| &m.commit_seconds,
        )?;
        histograms(
            enc,
            &all,
            "sluice_task_batch_records",
            "Records per batch: handed to put (sinks), returned by poll (sources).",
            None,
            |m| &m.batch_records,
        )?;
        family(
            enc,
            "sluice_task_retrying",
            "1 while the task retries a failure of its source or destination (it stays RUNNING).",
            None,
            MetricType::Gauge,
            self.tasks
                .iter()
                .map(|t| (task_labels(t), gauge(i64::from(t.retrying)))),
        )?;
        family(
            enc,
            "sluice_task_auto_restarts",
            "Automatic restarts of the task in a row after failures; 0 once it runs well.",
            None,
            MetricType::Gauge,
            self.tasks
                .iter()
                .map(|t| (task_labels(t), gauge(i64::from(t.restarts)))),
        )?;
        family(
            enc,
            "sluice_task_written",
            "Bytes the task wrote (sources: to Kafka).",
            Some(&Unit::Bytes),
            MetricType::Counter,
            self.tasks.iter().map(|t| {
                (
                    task_labels(t),
                    counter(TaskMetrics::get(&t.metrics.bytes_out)),
                )
            }),
        )
    }

    /// sink-task-metrics: records read and sent, and how long `put` took.
    fn sink_metrics(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let sinks = self.sinks();
        let per_task = |read: fn(&TaskMetrics) -> u64| {
            sinks
                .iter()
                .map(move |t| (task_labels(t), counter(read(&t.metrics))))
        };
        family(
            enc,
            "sluice_sink_task_records_read",
            "Records read from Kafka (Connect's sink-record-read-total).",
            None,
            MetricType::Counter,
            per_task(|m| TaskMetrics::get(&m.records_in)),
        )?;
        family(
            enc,
            "sluice_sink_task_records_sent",
            "Records handed to put after transforms (Connect's sink-record-send-total).",
            None,
            MetricType::Counter,
            per_task(|m| TaskMetrics::get(&m.records_out)),
        )?;
        histograms(
            enc,
            &sinks,
            "sluice_sink_task_put_batch_duration",
            "How long each put took (Connect's put-batch-avg/max-time-ms).",
            Some(&Unit::Seconds),
            |m| &m.call_seconds,
        )
    }

    /// sink-task-metrics about partitions: counts, records in flight, and the
    /// consumer lag Connect documents but never computes.
    fn sink_lag_metrics(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let partitions: Vec<(&TaskMetricsView, Vec<crate::metrics::PartitionLag>)> = self
            .sinks()
            .into_iter()
            .map(|t| (t, t.metrics.partitions()))
            .collect();
        family(
            enc,
            "sluice_sink_task_partitions",
            "Partitions assigned to the task (Connect's partition-count).",
            None,
            MetricType::Gauge,
            partitions
                .iter()
                .map(|(t, ps)| (task_labels(t), gauge(ps.len() as i64))),
        )?;
        family(
            enc,
            "sluice_sink_task_active_records",
            "Records read but not yet committed (Connect's sink-record-active-count).",
            None,
            MetricType::Gauge,
            partitions.iter().map(|(t, ps)| {
                let n: i64 = ps.iter().map(crate::metrics::PartitionLag::active).sum();
                (task_labels(t), gauge(n))
            }),
        )?;
        family(
            enc,
            "sluice_sink_task_record_lag_max",
            "The largest lag (log end - committed offset) of the task's partitions (Connect's sink-record-lag-max).",
            None,
            MetricType::Gauge,
            partitions
                .iter()
                .map(|(t, ps)| (task_labels(t), gauge(crate::lag::max_lag(ps)))),
        )?;
        let per_partition = |read: fn(&crate::metrics::PartitionLag) -> i64| {
            partitions.iter().flat_map(move |(t, ps)| {
                ps.iter().map(move |p| {
                    (
                        with(
                            task_labels(t),
                            &[
                                ("topic", p.topic.clone()),
                                ("partition", p.partition.to_string()),
                            ],
                        ),
                        gauge(read(p)),
                    )
                })
            })
        };
        family(
            enc,
            "sluice_sink_partition_lag_records",
            "Records not yet committed: the partition's log-end offset minus the group's committed offset.",
            None,
            MetricType::Gauge,
            per_partition(crate::metrics::PartitionLag::lag),
        )?;
        family(
            enc,
            "sluice_sink_partition_unread_records",
            "Records not yet read: the partition's log-end offset minus the task's position.",
            None,
            MetricType::Gauge,
            per_partition(crate::metrics::PartitionLag::unread),
        )?;
        family(
            enc,
            "sluice_sink_partition_log_end_offset",
            "The partition's log-end offset (high watermark) when last refreshed.",
            None,
            MetricType::Gauge,
            per_partition(|p| p.log_end_offset),
        )?;
        family(
            enc,
            "sluice_sink_partition_committed_offset",
            "The group's committed offset of the partition when last refreshed.",
            None,
            MetricType::Gauge,
            per_partition(|p| p.committed_offset),
        )
    }

    /// source-task-metrics.
    fn source_metrics(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let sources = self.sources();
        let per_task = |read: fn(&TaskMetrics) -> u64| {
            sources
                .iter()
                .map(move |t| (task_labels(t), counter(read(&t.metrics))))
        };
        family(
            enc,
            "sluice_source_task_records_polled",
            "Records returned by poll (Connect's source-record-poll-total).",
            None,
            MetricType::Counter,
            per_task(|m| TaskMetrics::get(&m.records_in)),
        )?;
        family(
            enc,
            "sluice_source_task_records_written",
            "Records acknowledged by Kafka (Connect's source-record-write-total).",
            None,
            MetricType::Counter,
            per_task(|m| TaskMetrics::get(&m.records_out)),
        )?;
        family(
            enc,
            "sluice_source_task_records_skipped",
            "Replayed records skipped by idempotent resume.",
            None,
            MetricType::Counter,
            per_task(|m| TaskMetrics::get(&m.records_skipped)),
        )?;
        histograms(
            enc,
            &sources,
            "sluice_source_task_poll_batch_duration",
            "How long each poll took (Connect's poll-batch-avg/max-time-ms).",
            Some(&Unit::Seconds),
            |m| &m.call_seconds,
        )
    }

    /// task-error-metrics, by error stage.
    fn error_metrics(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        type ByStage = fn(&TaskMetrics, usize) -> u64;
        let families: [(&str, &str, ByStage); 3] = [
            (
                "sluice_task_retries",
                "Operations retried after a retriable error, by stage (Connect's total-retries).",
                |m, i| TaskMetrics::get(&m.retries_by_stage[i]),
            ),
            (
                "sluice_task_records_failed",
                "Records that failed and were tolerated, by stage (Connect's total-record-failures).",
                |m, i| TaskMetrics::get(&m.failed_by_stage[i]),
            ),
            (
                "sluice_task_records_dead_lettered",
                "Failed records written to the dead-letter queue, by stage (Connect's deadletterqueue-produce-requests).",
                |m, i| TaskMetrics::get(&m.dlq_by_stage[i]),
            ),
        ];
        for (name, help, read) in families {
            family(
                enc,
                name,
                help,
                None,
                MetricType::Counter,
                self.tasks.iter().flat_map(|t| {
                    Stage::ALL.iter().enumerate().map(move |(i, stage)| {
                        (
                            with(task_labels(t), &[("stage", stage.as_str().to_owned())]),
                            counter(read(&t.metrics, i)),
                        )
                    })
                }),
            )?;
        }
        Ok(())
    }

    /// The series connectors report themselves, one family per name.
    fn custom_metrics(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        type Family = (&'static str, MetricKind, Vec<(Labels, f64)>);
        let mut by_name: std::collections::BTreeMap<&'static str, Family> = Default::default();
        for t in &self.tasks {
            for s in t.metrics.custom.samples() {
                let entry = by_name
                    .entry(s.name)
                    .or_insert_with(|| (s.help, s.kind, Vec::new()));
                let mut all = task_labels(t);
                all.extend(s.labels);
                entry.2.push((all, s.value));
            }
        }
        for (name, (help, kind, rows)) in by_name {
            let name = format!("sluice_{name}");
            match kind {
                MetricKind::Counter => family(
                    enc,
                    &name,
                    help,
                    None,
                    MetricType::Counter,
                    rows.into_iter().map(|(l, v)| (l, counter(v as u64))),
                )?,
                MetricKind::Gauge => family(
                    enc,
                    &name,
                    help,
                    None,
                    MetricType::Gauge,
                    rows.into_iter().map(|(l, v)| (l, fraction(v))),
                )?,
            }
        }
        Ok(())
    }
}
