//! `es-sink`: the Elasticsearch sink's documents/s into the local
//! Elasticsearch-API server, beside the server's raw `_bulk` rate for the same
//! documents from a minimal client, measured in the same run.
//!
//! Both index the same datagen events (JSON, no schema) with the same ids
//! (topic+partition+offset): the raw client sends `_bulk` requests of
//! `--batch` documents, `--in-flight` at a time, straight from memory; sluice
//! reads them from Kafka with its default settings (`key.ignore=true`) but
//! the same `batch.size` and `max.in.flight.requests`.
//!
//! The server slows as its indices grow, so each measurement writes into a
//! fresh index, deleted after it, and the two sides take turns going first.
//! sluice's progress is read from its own `/metrics`, not from the server,
//! so measuring it adds no load to the server the raw client did not have.
//! `bench/run-es` starts the stack and runs it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::json;
use sluice_api::json::JsonView;
use sluice_datagen::{ApiUsageEvent, EventGenerator, DEFAULT_EPOCH_MS};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    sluice: PathBuf,
    #[arg(long)]
    bootstrap: String,
    #[arg(long)]
    es_url: String,
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The raw client's documents per `_bulk` request (Confluent's batch.size).
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// The raw client's concurrent requests (Confluent's max.in.flight.requests).
    #[arg(long, default_value_t = 5)]
    in_flight: usize,
}

fn payloads(n: usize) -> Result<Vec<Vec<u8>>> {
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
    // Struct fields are named from the schema: without it the view cannot
    // write a struct, and an empty document would shift every later line.
    (0..n as i64)
        .map(|i| {
            let v = g.event(i).to_value();
            Ok(serde_json::to_vec(&JsonView::new(Some(&schema), &v))?)
        })
        .collect()
}

fn http() -> Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?)
}

fn delete_index(es: &str, index: &str) -> Result<()> {
    http()?.delete(format!("{es}/{index}")).send()?;
    Ok(())
}

fn count(es: &str, index: &str) -> Result<u64> {
    let c = http()?;
    c.post(format!("{es}/{index}/_refresh")).send()?;
    let v: serde_json::Value = c.get(format!("{es}/{index}/_count")).send()?.json()?;
    Ok(v["count"].as_u64().unwrap_or(0))
}

/// Documents/s of a minimal `_bulk` client over the same documents.
fn raw(args: &Args, docs: &[Vec<u8>], topic: &str, index: &str) -> Result<f64> {
    let bodies: Vec<Vec<u8>> = docs
        .chunks(args.batch)
        .enumerate()
        .map(|(c, chunk)| {
            let mut body = Vec::new();
            for (i, d) in chunk.iter().enumerate() {
                let id = format!("{topic}+0+{}", c * args.batch + i);
                body.extend_from_slice(
                    json!({"index": {"_index": index, "_id": id}})
                        .to_string()
                        .as_bytes(),
                );
                body.push(b'\n');
                body.extend_from_slice(d);
                body.push(b'\n');
            }
            body
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..args.in_flight)
        .map(|_| {
            let (bodies, next, url) = (bodies.clone(), next.clone(), args.es_url.clone());
            std::thread::spawn(move || -> Result<()> {
                let c = http()?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else {
                        return Ok(());
                    };
                    let r: serde_json::Value = c
                        .post(format!("{url}/_bulk"))
                        .header("content-type", "application/x-ndjson")
                        .body(body.clone())
                        .send()?
                        .json()?;
                    if r["errors"] == true {
                        bail!("the raw client's _bulk had errors");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a raw client thread panicked"))??;
    }
    let secs = start.elapsed().as_secs_f64();
    // Every request was answered without errors; the server may take a
    // moment to show all of them to `_count` even after `_refresh`.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = count(&args.es_url, index)?;
    while n != docs.len() as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        n = count(&args.es_url, index)?;
    }
    if n != docs.len() as u64 {
        bail!("the raw client indexed {n} of {}", docs.len());
    }
    Ok(docs.len() as f64 / secs)
}

fn produce(args: &Args, topic: &str, docs: &[Vec<u8>]) -> Result<()> {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("linger.ms", "20")
        .create()?;
    for d in docs {
        let mut rec = BaseRecord::<str, [u8]>::to(topic).partition(0).payload(d);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    p.poll(Duration::from_millis(20));
                    rec = r;
                }
            }
        }
    }
    p.flush(Duration::from_secs(60))?;
    Ok(())
}

/// The sink's documents/s, from its own count of acknowledged items.
fn sluice(args: &Args, topic: &str, scratch: &std::path::Path) -> Result<SinkRun> {
    let worker = scratch.join("worker.json");
    std::fs::write(
        &worker,
        serde_json::to_vec(&json!({
            "bootstrap.servers": args.bootstrap,
            "offset.storage.file.filename": scratch.join("offsets.json"),
            "key.converter": "string",
            "value.converter": "json",
            "value.converter.schemas.enable": false,
            "listeners": "http://127.0.0.1:0"
        }))?,
    )?;
    let connector = scratch.join(format!("{topic}.json"));
    std::fs::write(
        &connector,
        serde_json::to_vec(&json!({"name": topic, "config": {
            "connector.class": "elasticsearch-sink", "topics": topic,
            "connection.url": args.es_url, "key.ignore": "true", "tasks.max": 1,
            "consumer.override.max.poll.records": 5000,
            "batch.size": args.batch,
            "max.in.flight.requests": args.in_flight
        }}))?,
    )?;
    let mut child = Command::new(&args.sluice)
        .arg("standalone")
        .arg(&worker)
        .arg(&connector)
        .env("SLUICE_LOG", "info,librdkafka=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start sluice")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line
                .split("REST API listening")
                .nth(1)
                .and_then(|rest| rest.split("url=").nth(1))
                .and_then(|u| u.split_whitespace().next())
            {
                let _ = tx.send(Logged::Rest(url.to_owned()));
            }
            if line.contains("worker ready") {
                let _ = tx.send(Logged::Ready(Instant::now()));
            }
            if line.contains("ERROR") || line.contains("slower than the request timeout") {
                eprintln!("worker: {line}");
            }
        }
    });
    let result = (|| {
        let (mut rest, mut ready) = (None, None);
        while rest.is_none() || ready.is_none() {
            match rx
                .recv_timeout(Duration::from_secs(30))
                .context("the worker did not get ready")?
            {
                Logged::Rest(url) => rest = Some(url),
                Logged::Ready(at) => ready = Some(at),
            }
        }
        let (rest, ready) = (rest.context("no REST URL")?, ready.context("not ready")?);
        let metrics = http()?;
        let mut first = None;
        loop {
            let (indexed, conflicts) = items(&metrics, &rest)?;
            if indexed > 0 && first.is_none() {
                first = Some(Instant::now());
            }
            if indexed + conflicts >= args.records as u64 {
                let (end, n) = (Instant::now(), args.records as f64);
                let first = first.unwrap_or(ready);
                return Ok(SinkRun {
                    rate: n / (end - ready).as_secs_f64(),
                    steady: n / (end - first).as_secs_f64().max(1e-3),
                    start: first - ready,
                    cpu: None,
                });
            }
            if ready.elapsed() > Duration::from_secs(600) {
                bail!("sluice did not index every document within 10 minutes");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })();
    let cpu = cpu_seconds(child.id());
    stop(&mut child);
    let run = SinkRun { cpu, ..result? };
    // The server acknowledged every item; it shows them all to `_count`.
    check_count(args, &topic.to_lowercase())?;
    Ok(run)
}

/// Waits up to a minute for `_count` to show every document.
fn check_count(args: &Args, index: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = count(&args.es_url, index)?;
    while n != args.records as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        n = count(&args.es_url, index)?;
    }
    if n != args.records as u64 {
        bail!("sluice indexed {n} of {}", args.records);
    }
    Ok(())
}

enum Logged {
    Rest(String),
    Ready(Instant),
}

/// One sink measurement.
struct SinkRun {
    /// Documents/s from "worker ready" to the last acknowledged.
    rate: f64,
    /// Documents/s from the first acknowledged to the last.
    steady: f64,
    /// From "worker ready" to the first acknowledged document.
    start: Duration,
    /// CPU-seconds the worker used, start-up included.
    cpu: Option<f64>,
}

/// CPU-seconds a process has used so far, its threads included (Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name start at the third: utime and
    // stime are the 14th and 15th, in clock ticks (100 a second).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// CPU-seconds used so far by a service of the stack `bench/run-es` started.
fn service_cpu(service: &str) -> Option<f64> {
    let dir = std::env::var("SLUICE_STACK_DIR").ok()?;
    let pid = std::fs::read_to_string(format!("{dir}/{service}/pid")).ok()?;
    cpu_seconds(pid.trim().parse().ok()?)
}

/// CPU-seconds the server and the broker used during `f`.
fn with_cpu<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Option<f64>, Option<f64>)> {
    let (es, kafka) = (service_cpu("es"), service_cpu("kafka"));
    let out = f()?;
    let delta = |before: Option<f64>, now: Option<f64>| Some(now? - before?);
    Ok((
        out,
        delta(es, service_cpu("es")),
        delta(kafka, service_cpu("kafka")),
    ))
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "?".into(), |v| format!("{v:.1}"))
}

/// The sink's bulk items acknowledged as indexed and as version conflicts,
/// from the worker's `/metrics`.
fn items(client: &reqwest::blocking::Client, rest: &str) -> Result<(u64, u64)> {
    let text = client.get(format!("{rest}/metrics")).send()?.text()?;
    let sum = |outcome: &str| -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("sluice_es_items_total{")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    Ok((sum("indexed"), sum("conflict")))
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The machine's load average over the last minute (it is shared).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let docs = payloads(args.records)?;
    let scratch = std::env::temp_dir().join(format!("sluice-es-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let (mut raws, mut sinks, mut steadies, mut ratios) = (vec![], vec![], vec![], vec![]);
    for run in 0..args.runs.max(1) {
        let topic = format!("es-bench-{}-{run}", std::process::id());
        produce(&args, &topic, &docs)?;
        let load_before = load();
        let raw_index = format!("{topic}-raw");
        let measure_raw = || {
            let r = with_cpu(|| raw(&args, &docs, &topic, &raw_index));
            delete_index(&args.es_url, &raw_index)?;
            r
        };
        let measure_sink = || {
            let s = with_cpu(|| sluice(&args, &topic, &scratch));
            delete_index(&args.es_url, &topic.to_lowercase())?;
            s
        };
        // Take turns going first.
        let ((r, raw_es, _), (s, sink_es, sink_kafka)) = if run % 2 == 0 {
            let r = measure_raw()?;
            (r, measure_sink()?)
        } else {
            let s = measure_sink()?;
            (measure_raw()?, s)
        };
        eprintln!(
            "run {run} ({} first, load {load_before} → {}): raw _bulk {r:.0} docs/s, sluice {:.0} docs/s ({:.0} %; {:.0} docs/s after its first {:.1} s, {:.0} %)",
            if run % 2 == 0 { "raw" } else { "sluice" },
            load(),
            s.rate,
            100.0 * s.rate / r,
            s.steady,
            s.start.as_secs_f64(),
            100.0 * s.steady / r
        );
        eprintln!(
            "run {run} CPU-seconds: raw run: server {}; sluice run: server {}, sluice {}, broker {}",
            secs(raw_es),
            secs(sink_es),
            secs(s.cpu),
            secs(sink_kafka)
        );
        ratios.push(s.rate / r);
        raws.push(r);
        sinks.push(s.rate);
        steadies.push(s.steady);
    }
    std::fs::remove_dir_all(&scratch).ok();
    println!(
        "| {} documents, {}×{} | raw `_bulk` | sluice | sluice / raw (median of runs) | sluice after its first document |",
        args.records, args.in_flight, args.batch
    );
    println!("|---|---|---|---|---|");
    println!(
        "| median of {} | {:.0} docs/s | {:.0} docs/s | {:.0} % | {:.0} docs/s |",
        args.runs,
        median(raws),
        median(sinks),
        100.0 * median(ratios),
        median(steadies)
    );
    Ok(())
}
