//! `sluice-bench`: measures sluice pipelines beside the raw limits of the same
//! broker, in the same run, so the ratio means something on a noisy machine.
//!
//! Per run:
//! 1. raw produce: rdkafka with the worker's producer settings, records the
//!    size of datagen's events, into a fresh topic: the source-side limit;
//! 2. datagen → Kafka through `sluice standalone` (one task);
//! 3. raw consume of the topic sluice wrote: the sink-side limit;
//! 4. Kafka → file sink through `sluice standalone`;
//! 5. start-to-ready time and idle RSS of a worker with nothing to do.
//!
//! 6. with `--pg-url`, the Postgres CDC source (narrow and wide rows) beside
//!    pg_recvlogical draining the same WAL (`cdc.rs`).
//!
//! Rates are steady-state: from the first record out to the last, so start-up
//! and the consumer group join (measured apart) do not dilute them.
//! Prints each run and the medians; `bench/run` records them in RESULTS.md.

/// The raw clients run on the allocator sluice runs on, which also serves
/// librdkafka's `malloc` (`override`): with glibc's, the raw consumer ran at
/// two thirds of sluice's string file sink, a limit set by the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use sluice_api::json::JsonView;
use sluice_datagen::{ApiUsageEvent, EventGenerator, DEFAULT_EPOCH_MS};

mod cdc;
mod peer;
mod process;

use process::{rss_mb, SteadyRate};

#[derive(Parser)]
struct Args {
    /// The sluice binary (a release build).
    #[arg(long)]
    sluice: PathBuf,
    #[arg(long)]
    bootstrap: String,
    #[arg(long, default_value_t = 500_000)]
    records: u64,
    #[arg(long, default_value_t = 64)]
    partitions: i32,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The S3-API store (s3s-fs) endpoint; with --s3-data-dir, adds the S3 sink run.
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// The directory s3s-fs serves (one subdirectory per bucket).
    #[arg(long)]
    s3_data_dir: Option<PathBuf>,
    #[arg(long, default_value = "sluice")]
    s3_access_key: String,
    #[arg(long, default_value = "sluice-secret")]
    s3_secret_key: String,
    /// An extra worker setting for the sluice runs, `KEY=VALUE` (repeatable):
    /// for trying a client setting (`consumer.fetch.max.bytes=...`) before
    /// making it a default.
    #[arg(long = "worker", value_name = "KEY=VALUE")]
    worker_settings: Vec<String>,
    /// A PostgreSQL with wal_level=logical (user postgres, trust): adds the CDC runs.
    #[arg(long)]
    pg_url: Option<String>,
    /// Where psql and pg_recvlogical are.
    #[arg(long, default_value = "/usr/lib/postgresql/15/bin")]
    pg_bindir: PathBuf,
    /// Rows changed per CDC run. A million: at 200k a run lasts 2 s and the
    /// producer's ramp-up weighs on the figure.
    #[arg(long, default_value_t = 1_000_000)]
    cdc_rows: u64,
    /// Rows per inserted transaction in the CDC runs: one transaction of
    /// every row (`--cdc-txn-rows 1000000`) shows what a large transaction
    /// costs in memory.
    #[arg(long, default_value_t = 5_000)]
    cdc_txn_rows: u64,
    /// Only the CDC runs (needs --pg-url): for working on the CDC source.
    #[arg(long)]
    only_cdc: bool,
    /// Of the sink runs only the S3 one (with its limit, raw consume): for
    /// working on the S3 sink. The table's file-sink and idle rows then read 0.
    #[arg(long)]
    only_s3: bool,
    /// Where `dev/install connect` put Kafka Connect (with --peer).
    #[arg(long)]
    connect_home: Option<PathBuf>,
    /// Only the side-by-side runs with the real Kafka Connect and Debezium
    /// (needs --connect-home; CDC also needs --pg-url).
    #[arg(long)]
    peer: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Run {
    raw_produce: f64,
    source: f64,
    source_mb: f64,
    raw_consume: f64,
    sink: f64,
    sink_mb: f64,
    sink_passthrough: f64,
    s3: f64,
    s3_peak_rss_mb: f64,
    ready_ms: f64,
    idle_rss_mb: f64,
    source_peak_rss_mb: f64,
    sink_peak_rss_mb: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let scratch = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    if args.peer {
        // Kept on failure: the workers' logs are there.
        peer_runs(&args, &scratch)
            .with_context(|| format!("the workers' logs are in {}", scratch.display()))?;
        std::fs::remove_dir_all(&scratch).ok();
        return Ok(());
    }
    let mut runs = Vec::new();
    for i in 0..if args.only_cdc { 0 } else { args.runs } {
        let r = one_run(&args, &scratch, i).with_context(|| format!("run {i}"))?;
        println!(
            "run {i}: raw produce {:>9.0}/s | sluice source {:>9.0}/s ({:.0}%) | raw consume {:>9.0}/s | sluice sink {:>9.0}/s ({:.0}%), string {:>9.0}/s ({:.0}%) | ready {:.0} ms | idle RSS {:.1} MB",
            r.raw_produce,
            r.source,
            100.0 * r.source / r.raw_produce,
            r.raw_consume,
            r.sink,
            100.0 * r.sink / r.raw_consume,
            r.sink_passthrough,
            100.0 * r.sink_passthrough / r.raw_consume,
            r.ready_ms,
            r.idle_rss_mb
        );
        if args.s3_endpoint.is_some() {
            println!(
                "run {i}: Kafka → S3 Parquet {:>9.0}/s ({:.0}% of raw consume) | peak RSS {:.1} MB",
                r.s3,
                100.0 * r.s3 / r.raw_consume,
                r.s3_peak_rss_mb
            );
        }
        runs.push(r);
    }
    let cdc = match &args.pg_url {
        Some(url) => cdc_runs(&args, url, &scratch)?,
        None => Vec::new(),
    };
    std::fs::remove_dir_all(&scratch).ok();
    if args.only_cdc {
        print_cdc(&args, cdc);
        return Ok(());
    }
    let med = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let (rp, src, rc, snk) = (
        med(|r| r.raw_produce),
        med(|r| r.source),
        med(|r| r.raw_consume),
        med(|r| r.sink),
    );
    println!();
    println!(
        "medians over {} runs of {} records, {} partitions:",
        runs.len(),
        args.records,
        args.partitions
    );
    println!("| measure | value | limit (same run) | ratio |");
    println!("|---|---|---|---|");
    println!("| datagen → Kafka (1 task) | {src:.0} rec/s, {:.1} MB/s | raw produce {rp:.0} rec/s | {:.0} % |", med(|r| r.source_mb), 100.0 * src / rp);
    println!("| Kafka → file sink, json converter (1 task) | {snk:.0} rec/s, {:.1} MB/s | raw consume {rc:.0} rec/s | {:.0} % |", med(|r| r.sink_mb), 100.0 * snk / rc);
    let pt = med(|r| r.sink_passthrough);
    println!("| Kafka → file sink, string converter (1 task) | {pt:.0} rec/s | raw consume {rc:.0} rec/s | {:.0} % |", 100.0 * pt / rc);
    if args.s3_endpoint.is_some() {
        let s3 = med(|r| r.s3);
        println!("| Kafka → S3 Parquet (1 task, s3s-fs) | {s3:.0} rec/s | raw consume {rc:.0} rec/s | {:.0} % |", 100.0 * s3 / rc);
        println!(
            "| peak RSS, S3 run | {:.1} MB | | |",
            med(|r| r.s3_peak_rss_mb)
        );
    }
    println!(
        "| start to ready | {:.0} ms | goal 200 ms | |",
        med(|r| r.ready_ms)
    );
    println!(
        "| idle RSS | {:.1} MB | goal 30 MB | |",
        med(|r| r.idle_rss_mb)
    );
    println!(
        "| peak RSS, source run | {:.1} MB | | |",
        med(|r| r.source_peak_rss_mb)
    );
    println!(
        "| peak RSS, sink run | {:.1} MB | | |",
        med(|r| r.sink_peak_rss_mb)
    );
    print_cdc(&args, cdc);
    Ok(())
}

fn print_cdc(args: &Args, cdc: Vec<CdcMedians>) {
    for m in cdc {
        println!(
            "| Postgres → Kafka, CDC, {} rows ({} rows) | {:.0} rows/s | pg_recvlogical {:.0} rows/s | {:.0} % |",
            m.shape,
            args.cdc_rows,
            m.rate,
            m.raw,
            100.0 * m.rate / m.raw
        );
        println!(
            "| peak RSS, CDC {} run | {:.1} MB ({:.2} CPU-s per million rows) | goal 150 MB | |",
            m.shape, m.peak_rss_mb, m.cpu_s_per_million
        );
    }
}

/// The medians of one CDC shape's runs.
struct CdcMedians {
    shape: &'static str,
    /// sluice's rows/s.
    rate: f64,
    /// pg_recvlogical's rows/s: the limit.
    raw: f64,
    peak_rss_mb: f64,
    cpu_s_per_million: f64,
}

/// The CDC runs, one row of medians per shape.
fn cdc_runs(args: &Args, url: &str, scratch: &Path) -> Result<Vec<CdcMedians>> {
    let launch = peer::Launch {
        sluice: &args.sluice,
        connect: None,
        bootstrap: &args.bootstrap,
        scratch,
        schemas: false,
    };
    let bench = cdc_bench(args, url);
    let mut out = Vec::new();
    for shape in [cdc::Shape::Narrow, cdc::Shape::Wide] {
        let (mut sluice, mut raw, mut rss, mut cpu) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..args.runs {
            let tag = format!("{}-{i}", std::process::id());
            let run = bench
                .run(shape, &tag, &launch, false)
                .with_context(|| format!("CDC {} run {i}", shape.name()))?;
            let (s, r) = (run.sluice.rate, run.raw);
            println!(
                "cdc {} run {i}: sluice {s:>9.0} rows/s | pg_recvlogical {r:>9.0} rows/s ({:.0}%) | peak RSS {:.1} MB | {:.2} CPU-s per million",
                shape.name(),
                100.0 * s / r,
                run.sluice.peak_rss_mb,
                run.sluice.cpu_s_per_million
            );
            sluice.push(s);
            raw.push(r);
            rss.push(run.sluice.peak_rss_mb);
            cpu.push(run.sluice.cpu_s_per_million);
        }
        out.push(CdcMedians {
            shape: shape.name(),
            rate: median(sluice),
            raw: median(raw),
            peak_rss_mb: median(rss),
            cpu_s_per_million: median(cpu),
        });
    }
    Ok(out)
}

fn cdc_bench<'a>(args: &'a Args, url: &'a str) -> cdc::CdcBench<'a> {
    cdc::CdcBench {
        bootstrap: &args.bootstrap,
        pg_url: url,
        pg_bindir: args.pg_bindir.clone(),
        rows: args.cdc_rows,
        txn_rows: args.cdc_txn_rows.max(1),
    }
}

/// One measure of both workers in every run, printed as it comes and as
/// medians with the ratio sluice / Kafka Connect.
#[derive(Default)]
struct Side {
    sluice: Vec<f64>,
    connect: Vec<f64>,
}

/// The side-by-side runs: start-up and idle, Connect's FileStreamSink, and
/// (with PostgreSQL) Debezium, each through both workers.
#[allow(
    clippy::too_many_lines,
    reason = "one measure after another, each beside its peer: a script, long but flat."
)]
fn peer_runs(args: &Args, scratch: &Path) -> Result<()> {
    let home = peer::ConnectHome(
        args.connect_home
            .clone()
            .context("--peer needs --connect-home")?,
    );
    let mut launch = peer::Launch {
        sluice: &args.sluice,
        connect: Some(&home),
        bootstrap: &args.bootstrap,
        scratch,
        schemas: false,
    };
    let mut table: Vec<(String, &'static str, Side)> = Vec::new();
    let mut record = |measure: String, unit: &'static str, run: usize, s: f64, c: f64| {
        println!("run {run}: {measure}: sluice {s:.1} {unit} | Kafka Connect {c:.1} {unit} | ratio {:.2}", s / c);
        match table.iter_mut().find(|(m, _, _)| *m == measure) {
            Some((_, _, side)) => {
                side.sluice.push(s);
                side.connect.push(c);
            }
            None => table.push((
                measure,
                unit,
                Side {
                    sluice: vec![s],
                    connect: vec![c],
                },
            )),
        }
    };
    let kinds = [peer::Kind::Sluice, peer::Kind::Connect];
    for i in 0..args.runs {
        let tag = format!("{}-{i}", std::process::id());
        let idle: Vec<(f64, f64)> = kinds
            .iter()
            .map(|k| peer::idle(*k, &launch, &format!("idle-{k:?}-{tag}")))
            .collect::<Result<_>>()?;
        record("start to REST ready".into(), "ms", i, idle[0].0, idle[1].0);
        record("idle RSS".into(), "MB", i, idle[0].1, idle[1].1);

        let topic = format!("bench-peer-{tag}");
        create_topic(&args.bootstrap, &topic, args.partitions)?;
        raw_produce(args, &topic)?;
        for (converter, label) in [
            ("org.apache.kafka.connect.storage.StringConverter", "string"),
            ("org.apache.kafka.connect.json.JsonConverter", "json"),
        ] {
            let m: Vec<_> = kinds
                .iter()
                .map(|k| {
                    peer::file_sink(
                        *k,
                        &launch,
                        &format!("file-{label}-{k:?}-{tag}"),
                        &topic,
                        args.records,
                        converter,
                    )
                })
                .collect::<Result<_>>()?;
            let what = format!("FileStreamSink, {label} converter");
            record(format!("{what}: rec/s"), "rec/s", i, m[0].rate, m[1].rate);
            record(
                format!("{what}: CPU s per M records"),
                "s",
                i,
                m[0].cpu_s_per_million,
                m[1].cpu_s_per_million,
            );
            record(
                format!("{what}: peak RSS"),
                "MB",
                i,
                m[0].peak_rss_mb,
                m[1].peak_rss_mb,
            );
        }
        delete_topics(&args.bootstrap, &[&topic])?;

        if let Some(url) = &args.pg_url {
            launch.schemas = true;
            for shape in [cdc::Shape::Narrow, cdc::Shape::Wide] {
                let run = cdc_bench(args, url)
                    .run(shape, &tag, &launch, true)
                    .with_context(|| format!("CDC {} run {i}", shape.name()))?;
                let dbz = run.debezium.context("no Debezium figure")?;
                let what = format!("CDC {} rows vs Debezium", shape.name());
                record(
                    format!("{what}: events/s"),
                    "ev/s",
                    i,
                    run.sluice.rate,
                    dbz.rate,
                );
                record(
                    format!("{what}: CPU s per M events"),
                    "s",
                    i,
                    run.sluice.cpu_s_per_million,
                    dbz.cpu_s_per_million,
                );
                record(
                    format!("{what}: peak RSS"),
                    "MB",
                    i,
                    run.sluice.peak_rss_mb,
                    dbz.peak_rss_mb,
                );
                println!(
                    "run {i}: CDC {} rows: pg_recvlogical {:.0} rows/s",
                    shape.name(),
                    run.raw
                );
            }
            launch.schemas = false;
        }
    }
    println!();
    println!(
        "medians over {} runs ({} records per sink run, {} rows per CDC run):",
        args.runs, args.records, args.cdc_rows
    );
    println!("| measure | sluice | Kafka Connect 4.3 | sluice / Connect |");
    println!("|---|---|---|---|");
    for (measure, unit, side) in table {
        let (s, c) = (median(side.sluice), median(side.connect));
        println!(
            "| {measure} | {s:.1} {unit} | {c:.1} {unit} | {:.2} |",
            s / c
        );
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn one_run(args: &Args, scratch: &Path, i: usize) -> Result<Run> {
    let tag = format!("{}-{i}", std::process::id());
    let raw_topic = format!("bench-raw-{tag}");
    let src_topic = format!("bench-src-{tag}");
    create_topic(&args.bootstrap, &raw_topic, args.partitions)?;
    create_topic(&args.bootstrap, &src_topic, args.partitions)?;
    let mut run = Run {
        raw_produce: raw_produce(args, &raw_topic)?,
        ..Run::default()
    };

    let mut worker = json!({
        "bootstrap.servers": args.bootstrap,
        "offset.storage.file.filename": scratch.join(format!("offsets-{i}.json")).display().to_string(),
        "offset.flush.interval.ms": 1000,
        "listeners": "http://127.0.0.1:0",
        "key.converter": "string",
        "value.converter": "json",
        "value.converter.schemas.enable": false,
        "progress.interval.ms": 0
    });
    for setting in &args.worker_settings {
        let (k, v) = setting
            .split_once('=')
            .with_context(|| format!("--worker {setting}: expected KEY=VALUE"))?;
        worker[k] = json!(v);
    }
    let worker = write_json(scratch, &format!("worker-{i}.json"), &worker)?;
    let source = write_json(
        scratch,
        &format!("datagen-{i}.json"),
        &json!({"name": format!("bench-gen-{tag}"), "config": {
            "connector.class": "datagen", "tasks.max": 1, "kafka.topic": src_topic,
            "max.records": args.records, "batch.size": 2000
        }}),
    )?;
    let (mut w, _, _) = start_worker(&args.sluice, &worker, &source)?;
    let mut peak = 0.0f64;
    let mut rate = SteadyRate::default();
    wait_until(Duration::from_secs(600), || {
        peak = peak.max(rss_mb(w.id()).1);
        Ok(rate.observe(
            total_records(&args.bootstrap, &src_topic)? as u64,
            args.records,
        ))
    })?;
    run.source = rate.per_second();
    run.source_mb = topic_bytes_estimate(1) * run.source / 1e6;
    run.source_peak_rss_mb = peak;
    stop(&mut w)?;

    run.raw_consume = raw_consume(args, &src_topic)?;
    if args.only_s3 {
        if let (Some(endpoint), Some(dir)) = (&args.s3_endpoint, &args.s3_data_dir) {
            (run.s3, run.s3_peak_rss_mb) =
                run_s3_sink(args, scratch, &worker, &src_topic, &tag, endpoint, dir)?;
        }
        delete_topics(&args.bootstrap, &[&raw_topic, &src_topic])?;
        return Ok(run);
    }

    let json_sink = run_sink(
        args,
        scratch,
        &worker,
        &src_topic,
        &format!("bench-file-{tag}"),
        None,
    )?;
    (run.sink, run.sink_mb, run.sink_peak_rss_mb) = json_sink;
    let string_sink = run_sink(
        args,
        scratch,
        &worker,
        &src_topic,
        &format!("bench-file-str-{tag}"),
        Some("string"),
    )?;
    run.sink_passthrough = string_sink.0;
    if let (Some(endpoint), Some(dir)) = (&args.s3_endpoint, &args.s3_data_dir) {
        (run.s3, run.s3_peak_rss_mb) =
            run_s3_sink(args, scratch, &worker, &src_topic, &tag, endpoint, dir)?;
    }

    // Idle: a sink on a topic with nothing in it.
    let idle_topic = format!("bench-idle-{tag}");
    create_topic(&args.bootstrap, &idle_topic, 1)?;
    let idle = write_json(
        scratch,
        &format!("idle-{i}.json"),
        &json!({"name": format!("bench-idle-{tag}"), "config": {
            "connector.class": "file-sink", "topics": idle_topic, "file": scratch.join("idle.jsonl").display().to_string()
        }}),
    )?;
    let (mut w, _, ready_ms) = start_worker(&args.sluice, &worker, &idle)?;
    std::thread::sleep(Duration::from_secs(2));
    run.ready_ms = ready_ms;
    run.idle_rss_mb = rss_mb(w.id()).0;
    stop(&mut w)?;
    // The broker keeps topics in memory; dropping them keeps later runs comparable.
    delete_topics(&args.bootstrap, &[&raw_topic, &src_topic, &idle_topic])?;
    Ok(run)
}

/// Runs the S3 sink (Parquet, snappy, flush.size 1000) over `topic` into a fresh
/// bucket of the local s3s-fs; returns (records/s, peak RSS MB). Only whole files
/// are written, so the rate counts the records of the files expected.
fn run_s3_sink(
    args: &Args,
    scratch: &Path,
    worker: &Path,
    topic: &str,
    tag: &str,
    endpoint: &str,
    data_dir: &Path,
) -> Result<(f64, f64)> {
    const FLUSH: u64 = 1000;
    let bucket = format!("bench-{tag}");
    std::fs::create_dir_all(data_dir.join(&bucket))?;
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .create()?;
    let mut expected_files = 0u64;
    for p in 0..args.partitions {
        let (lo, hi) = reader.fetch_watermarks(topic, p, Duration::from_secs(5))?;
        expected_files += (hi - lo) as u64 / FLUSH;
    }
    let sink = write_json(
        scratch,
        &format!("s3-{tag}.json"),
        &json!({"name": format!("bench-s3-{tag}"), "config": {
            "connector.class": "s3-sink", "topics": topic, "s3.bucket.name": bucket, "store.url": endpoint,
            "aws.access.key.id": args.s3_access_key, "aws.secret.access.key": args.s3_secret_key,
            "flush.size": FLUSH, "format.class": "parquet", "parquet.codec": "snappy",
            "consumer.override.max.poll.records": 5000
        }}),
    )?;
    let (mut w, _, _) = start_worker(&args.sluice, worker, &sink)?;
    let mut peak = 0.0f64;
    let mut rate = SteadyRate::default();
    let root = data_dir.join(&bucket);
    wait_until(Duration::from_secs(600), || {
        peak = peak.max(rss_mb(w.id()).1);
        Ok(rate.observe(count_files(&root) * FLUSH, expected_files * FLUSH))
    })?;
    stop(&mut w)?;
    std::fs::remove_dir_all(&root).ok();
    Ok((rate.per_second(), peak))
}

fn count_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p)
            } else {
                u64::from(p.extension().is_some_and(|x| x == "parquet"))
            }
        })
        .sum()
}

/// Runs a file sink over `topic` until it has written every record; returns
/// (records/s, MB/s, peak RSS MB). `converter` overrides the worker's value
/// converter (`string` passes bytes through with no JSON work).
fn run_sink(
    args: &Args,
    scratch: &Path,
    worker: &Path,
    topic: &str,
    name: &str,
    converter: Option<&str>,
) -> Result<(f64, f64, f64)> {
    let out = scratch.join(format!("{name}.jsonl"));
    let mut config = json!({
        "connector.class": "file-sink", "topics": topic, "file": out.display().to_string(),
        "consumer.override.max.poll.records": 5000
    });
    if let Some(c) = converter {
        config["value.converter"] = json!(c);
    }
    let sink = write_json(
        scratch,
        &format!("{name}.json"),
        &json!({"name": name, "config": config}),
    )?;
    let (mut w, _, _) = start_worker(&args.sluice, worker, &sink)?;
    let mut peak = 0.0f64;
    let mut rate = SteadyRate::default();
    let mut lines = LineCounter::new(&out);
    wait_until(Duration::from_secs(600), || {
        peak = peak.max(rss_mb(w.id()).1);
        Ok(rate.observe(lines.count(), args.records))
    })?;
    let per_second = rate.per_second();
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as f64;
    stop(&mut w)?;
    std::fs::remove_file(&out).ok();
    Ok((
        per_second,
        bytes / args.records as f64 * per_second / 1e6,
        peak,
    ))
}

/// A datagen event's JSON value, the payload both the raw producer and sluice send.
fn sample_payloads() -> Vec<(String, Vec<u8>)> {
    let g = EventGenerator {
        seed: 42,
        generator: 0,
        tenants: 1000,
        hot_tenants: 3,
        hot_share: 0.3,
        composite_hot_keys: true,
        epoch_ms: DEFAULT_EPOCH_MS,
        schema: ApiUsageEvent::schema(),
    };
    let schema = ApiUsageEvent::schema();
    (0..1024)
        .map(|s| {
            let e = g.event(s);
            let key = e.key.clone();
            let value = e.to_value();
            (
                key,
                serde_json::to_vec(&JsonView::new(Some(&schema), &value)).unwrap_or_default(),
            )
        })
        .collect()
}

fn topic_bytes_estimate(records: u64) -> f64 {
    let samples = sample_payloads();
    let avg = samples
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>() as f64
        / samples.len() as f64;
    avg * records as f64
}

fn raw_produce(args: &Args, topic: &str) -> Result<f64> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // The worker's default (runtime/src/kafka.rs), so the limit
        // and the pipeline batch alike.
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.kbytes", "65536")
        .create()?;
    let samples = sample_payloads();
    let started = Instant::now();
    for i in 0..args.records {
        let (k, v) = &samples[(i % samples.len() as u64) as usize];
        let mut record = BaseRecord::<str, [u8]>::to(topic)
            .key(k.as_str())
            .payload(v.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
        if i % 1000 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(args.records as f64 / started.elapsed().as_secs_f64())
}

fn raw_consume(args: &Args, topic: &str) -> Result<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("group.id", "sluice-bench-raw")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "500")
        .set("max.partition.fetch.bytes", "1048576")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..args.partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let mut n = 0u64;
    while n < args.records {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("raw consume read only {n} records");
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m?;
            n += 1;
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for result in block_on(admin.create_topics([&t], &AdminOptions::new()))? {
        result.map_err(|(name, code)| anyhow::anyhow!("cannot create {name}: {code}"))?;
    }
    Ok(())
}

fn delete_topics(bootstrap: &str, topics: &[&str]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    block_on(admin.delete_topics(topics, &AdminOptions::new()))?;
    Ok(())
}

/// Drives one admin future to completion without an async runtime: rdkafka's
/// admin futures complete from librdkafka's own threads.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context as TaskContext, Poll, Wake, Waker};
    struct Thread(std::thread::Thread);
    impl Wake for Thread {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Thread(std::thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

fn total_records(bootstrap: &str, topic: &str) -> Result<i64> {
    thread_local! {
        static READER: std::cell::OnceCell<BaseConsumer> = const { std::cell::OnceCell::new() };
    }
    READER.with(|cell| {
        let c = match cell.get() {
            Some(c) => c,
            None => {
                let created: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", bootstrap)
                    .create()?;
                cell.get_or_init(|| created)
            }
        };
        let md = c.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let mut total = 0;
        for p in md
            .topics()
            .first()
            .map(|t| t.partitions())
            .unwrap_or_default()
        {
            let (lo, hi) = c.fetch_watermarks(topic, p.id(), Duration::from_secs(5))?;
            total += hi - lo;
        }
        Ok(total)
    })
}

fn write_json(dir: &Path, name: &str, v: &serde_json::Value) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v)?)?;
    Ok(p)
}

/// Starts a worker; returns it, the instant it said "worker ready", and the
/// milliseconds from spawn to that line.
fn start_worker(sluice: &Path, worker: &Path, connector: &Path) -> Result<(Child, Instant, f64)> {
    let spawned = Instant::now();
    let mut child = Command::new(sluice)
        .arg("standalone")
        .arg(worker)
        .arg(connector)
        .env("SLUICE_LOG", "info,librdkafka=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start sluice")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("worker ready") {
                let _ = tx.send(Instant::now());
            }
            if line.contains("ERROR") {
                eprintln!("worker: {line}");
            }
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(30))
        .context("the worker did not get ready")?;
    Ok((child, ready, (ready - spawned).as_secs_f64() * 1000.0))
}

fn stop(child: &mut Child) -> Result<()> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    child.wait()?;
    Ok(())
}

/// Counts the lines of a file that another process appends to, reading only
/// what was added since the last call: re-reading a growing file of hundreds of
/// megabytes every few milliseconds would take the CPU being measured.
pub(crate) struct LineCounter {
    path: PathBuf,
    file: Option<std::fs::File>,
    lines: u64,
}

impl LineCounter {
    pub(crate) fn new(path: &Path) -> Self {
        LineCounter {
            path: path.to_owned(),
            file: None,
            lines: 0,
        }
    }

    pub(crate) fn count(&mut self) -> u64 {
        use std::io::Read as _;
        if self.file.is_none() {
            self.file = std::fs::File::open(&self.path).ok();
        }
        if let Some(f) = &mut self.file {
            let mut buf = [0u8; 1 << 16];
            while let Ok(n @ 1..) = f.read(&mut buf) {
                self.lines += buf[..n].iter().filter(|c| **c == b'\n').count() as u64;
            }
        }
        self.lines
    }
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !done()? {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
