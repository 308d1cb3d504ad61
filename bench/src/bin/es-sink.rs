//! `es-sink`: the Elasticsearch sink's documents/s into the local
//! Elasticsearch-API server, beside the server's raw `_bulk` rate for the same
//! documents from a minimal client, measured in the same run.
//!
//! Both index the same datagen events (JSON, no schema) with the same ids
//! (topic+partition+offset): the raw client sends `_bulk` requests of
//! `--batch` documents, `--in-flight` at a time, straight from memory; sluice
//! reads them from Kafka with its default settings (`key.ignore=true`).
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

/// Documents/s of the sink: from the worker's "ready" to the last document.
fn sluice(args: &Args, topic: &str, scratch: &std::path::Path) -> Result<f64> {
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
            // The raw client's per-request timeout: the local server takes
            // longer than Confluent's 3 s per `_bulk` once its index is large,
            // and a sink that times out retries into a busier server.
            "read.timeout.ms": 120000
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
            if line.contains("worker ready") {
                let _ = tx.send(Instant::now());
            }
            if line.contains("ERROR") {
                eprintln!("worker: {line}");
            }
        }
    });
    let result = (|| {
        let ready = rx
            .recv_timeout(Duration::from_secs(30))
            .context("the worker did not get ready")?;
        let index = topic.to_lowercase();
        loop {
            if count(&args.es_url, &index)? >= args.records as u64 {
                return Ok(args.records as f64 / ready.elapsed().as_secs_f64());
            }
            if ready.elapsed() > Duration::from_secs(600) {
                bail!("sluice did not index every document within 10 minutes");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })();
    stop(&mut child);
    result
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

fn main() -> Result<()> {
    let args = Args::parse();
    let docs = payloads(args.records)?;
    let scratch = std::env::temp_dir().join(format!("sluice-es-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let (mut raws, mut sinks) = (Vec::new(), Vec::new());
    for run in 0..args.runs.max(1) {
        let topic = format!("es-bench-{}-{run}", std::process::id());
        produce(&args, &topic, &docs)?;
        let r = raw(&args, &docs, &topic, &format!("{topic}-raw"))?;
        let s = sluice(&args, &topic, &scratch)?;
        eprintln!(
            "run {run}: raw _bulk {r:.0} docs/s, sluice {s:.0} docs/s ({:.0} %)",
            100.0 * s / r
        );
        raws.push(r);
        sinks.push(s);
    }
    std::fs::remove_dir_all(&scratch).ok();
    let (r, s) = (median(raws), median(sinks));
    println!(
        "| {} documents | raw `_bulk` ({}×{}) | sluice (read.timeout.ms=120000) | sluice / raw |",
        args.records, args.in_flight, args.batch
    );
    println!("|---|---|---|---|");
    println!(
        "| median of {} | {r:.0} docs/s | {s:.0} docs/s | {:.0} % |",
        args.runs,
        100.0 * s / r
    );
    Ok(())
}
