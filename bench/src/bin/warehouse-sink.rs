//! `warehouse-sink`: the warehouse sink's rows/s into the local PostgreSQL,
//! beside the raw rate of a plain binary COPY of the same rows from a
//! minimal client, measured in the same run.
//!
//! Both write the same rows (id, tenant, endpoint, status, latency, at) into
//! tables of the same shape (what the sink's auto.create makes: NOT NULL
//! columns, keyed by id), over plain TCP (no TLS on either side). The raw
//! client COPYs them (binary, one statement per `--batch` rows) straight
//! from memory into an empty table, then upserts the second generation of
//! rows (new values for the same keys) with the statements the sink's
//! upsert runs (staging table, COPY, INSERT ... ON CONFLICT). sluice reads
//! the same rows from Kafka (JSON with schemas) and writes them with
//! `insert.mode=insert`, then the second generation from a second topic
//! with `insert.mode=upsert`. The raw client is timed from its first
//! statement to its last answer; the sink from its first committed batch
//! until its stored offsets cover every record (the worker's start and the
//! group join left out). The order of the two sides alternates by run.
//! `bench/run-warehouse` starts the stack.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::json;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    sluice: PathBuf,
    #[arg(long)]
    bootstrap: String,
    /// postgres://user@host:port/db
    #[arg(long)]
    pg_url: String,
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Rows per COPY for the raw client, and the sink's batch.size.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    /// Both tables made `WITH (fillfactor = N)` (the raw one by the client,
    /// the sink's by its `table.fillfactor`), so that the upsert's updates
    /// are heap-only (HOT).
    #[arg(long)]
    fillfactor: Option<u8>,
    /// Runs sluice under `perf record` (no call graphs), writing
    /// `<dir>/<mode>-<run>.data`, for `perf report`.
    #[arg(long)]
    perf: Option<PathBuf>,
}

struct Row {
    id: i64,
    tenant: String,
    endpoint: String,
    status: i32,
    latency: f64,
    at_ms: i64,
}

fn rows(n: usize, generation: i64) -> Vec<Row> {
    (0..n as i64)
        .map(|i| Row {
            id: i,
            tenant: format!("tenant-{}", (i * 7919 + generation) % 1000),
            endpoint: format!("/v1/resource/{}", i % 37),
            status: [200, 201, 404, 500][(i % 4) as usize],
            latency: (i % 1000) as f64 / 7.0 + generation as f64,
            at_ms: 1_700_000_000_000 + i * 10 + generation,
        })
        .collect()
}

const SCHEMA: &str = r#"{"type":"struct","fields":[{"field":"id","type":"int64"},{"field":"tenant","type":"string"},{"field":"endpoint","type":"string"},{"field":"status","type":"int32"},{"field":"latency","type":"double"},{"field":"at","type":"int64","name":"org.apache.kafka.connect.data.Timestamp"}]}"#;

fn produce(args: &Args, topic: &str, rows: &[Row]) -> Result<()> {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("linger.ms", "20")
        .create()?;
    for r in rows {
        let payload = format!(
            r#"{{"schema":{SCHEMA},"payload":{}}}"#,
            json!({"id": r.id, "tenant": r.tenant, "endpoint": r.endpoint, "status": r.status, "latency": r.latency, "at": r.at_ms})
        );
        let mut rec = BaseRecord::<str, [u8]>::to(topic)
            .partition(0)
            .payload(payload.as_bytes());
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

/// The URL with TLS off, as the raw client's (`NoTls`): the sink would
/// otherwise encrypt (sslmode=prefer) and pay for it.
fn plain(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}sslmode=disable")
}

async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The table the sink's auto.create makes for these rows (fields not
/// optional: NOT NULL), so both sides write the same shape.
const TABLE: &str = "(id bigint NOT NULL, tenant text NOT NULL, endpoint text NOT NULL, status integer NOT NULL, latency double precision NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (id))";

/// Binary COPY of `rows` into `target`.
async fn copy_rows(c: &Client, target: &str, rows: &[Row]) -> Result<()> {
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::INT4,
        Type::FLOAT8,
        Type::TIMESTAMPTZ,
    ];
    let sink = c
        .copy_in(&format!("COPY {target} FROM STDIN BINARY"))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for r in rows {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(r.at_ms as u64);
        let values: [&(dyn ToSql + Sync); 6] =
            [&r.id, &r.tenant, &r.endpoint, &r.status, &r.latency, &at];
        writer.as_mut().write(&values).await?;
    }
    writer.as_mut().finish().await?;
    Ok(())
}

/// A checkpoint before each measurement, so that none lands inside one
/// side's window because of the rows the side before wrote.
async fn checkpoint(args: &Args) -> Result<()> {
    connect(&args.pg_url)
        .await?
        .batch_execute("CHECKPOINT")
        .await?;
    Ok(())
}

/// Rows/s of a minimal binary COPY of the rows into an empty table, one
/// COPY per `--batch` rows: PostgreSQL's limit for inserting them.
async fn raw_insert(args: &Args, rows: &[Row], table: &str) -> Result<f64> {
    let c = connect(&args.pg_url).await?;
    let with = args
        .fillfactor
        .map(|f| format!(" WITH (fillfactor = {f})"))
        .unwrap_or_default();
    c.batch_execute(&format!("CREATE TABLE {table} {TABLE}{with}"))
        .await?;
    let start = Instant::now();
    for chunk in rows.chunks(args.batch) {
        copy_rows(&c, table, chunk).await?;
    }
    Ok(rows.len() as f64 / start.elapsed().as_secs_f64())
}

/// Rows/s of the statements the sink's upsert runs, from a minimal client,
/// over `table`'s existing keys: per `--batch` rows, a transaction with a
/// temporary staging table, a binary COPY into it and `INSERT ... ON
/// CONFLICT DO UPDATE`. PostgreSQL's limit for that way of upserting.
async fn raw_upsert(args: &Args, rows: &[Row], table: &str) -> Result<f64> {
    let c = connect(&args.pg_url).await?;
    let start = Instant::now();
    for chunk in rows.chunks(args.batch) {
        c.batch_execute("BEGIN; CREATE TEMP TABLE raw_stage (c0 bigint, c1 text, c2 text, c3 integer, c4 double precision, c5 timestamptz) ON COMMIT DROP")
            .await?;
        copy_rows(&c, "raw_stage", chunk).await?;
        c.batch_execute(&format!(
            "INSERT INTO {table} (id, tenant, endpoint, status, latency, at) SELECT c0, c1, c2, c3, c4, c5 FROM raw_stage ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, endpoint = EXCLUDED.endpoint, status = EXCLUDED.status, latency = EXCLUDED.latency, at = EXCLUDED.at; COMMIT"
        ))
        .await?;
    }
    Ok(rows.len() as f64 / start.elapsed().as_secs_f64())
}

/// Rows/s of the sink, from its first committed batch to offsets covering
/// every record.
async fn sluice(
    args: &Args,
    topic: &str,
    table: &str,
    mode: &str,
    scratch: &std::path::Path,
) -> Result<f64> {
    let worker = scratch.join("worker.json");
    std::fs::write(
        &worker,
        serde_json::to_vec(&json!({
            "bootstrap.servers": args.bootstrap,
            "offset.storage.file.filename": scratch.join("offsets.json"),
            "key.converter": "string",
            "value.converter": "json",
            "value.converter.schemas.enable": true,
            "listeners": "http://127.0.0.1:0"
        }))?,
    )?;
    let connector = scratch.join(format!("{topic}.json"));
    let mut config = json!({
        "connector.class": "warehouse-sink", "topics": topic,
        "connection.url": plain(&args.pg_url), "table.name.format": table,
        "insert.mode": mode, "pk.mode": "record_value", "pk.fields": "id",
        "auto.create": true, "batch.size": args.batch, "tasks.max": 1,
        "consumer.override.max.poll.records": args.batch
    });
    if let Some(f) = args.fillfactor {
        config["table.fillfactor"] = json!(f);
    }
    std::fs::write(
        &connector,
        serde_json::to_vec(&json!({"name": topic, "config": config}))?,
    )?;
    let c = connect(&args.pg_url).await?;
    let start = Instant::now();
    let mut command = match &args.perf {
        Some(dir) => {
            let mut c = Command::new("perf");
            c.args(["record", "-F", "999", "-o"])
                .arg(dir.join(format!("{topic}.data")))
                .arg("--")
                .arg(&args.sluice);
            c
        }
        None => Command::new(&args.sluice),
    };
    let mut child = command
        .arg("standalone")
        .arg(&worker)
        .arg(&connector)
        .env("SLUICE_LOG", "warn,librdkafka=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start sluice")?;
    // Timed from the first committed batch to the last, so the worker's
    // start and the consumer group's join (seconds, whatever the sink) are
    // left out; the first batch's rows are left out with them.
    let result = async {
        let mut first: Option<(i64, Instant)> = None;
        loop {
            let stored = c
                .query_opt(
                    "SELECT next_offset FROM sluice_offsets WHERE connector = $1",
                    &[&topic],
                )
                .await
                .ok()
                .flatten()
                .map(|r| r.get::<_, i64>(0))
                .filter(|n| *n > 0);
            if let Some(n) = stored {
                let (n0, t0) = *first.get_or_insert((n, Instant::now()));
                if n >= args.records as i64 {
                    if n0 >= n {
                        bail!("one batch held every record: use more --records than --batch");
                    }
                    return Ok((n - n0) as f64 / t0.elapsed().as_secs_f64());
                }
            }
            if start.elapsed() > Duration::from_secs(600) {
                bail!("sluice did not write every row within 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    .await;
    stop(&mut child);
    result
}

/// SIGTERM to sluice: the child itself, or under perf the child's child
/// (perf then writes its data and exits).
fn stop(child: &mut Child) {
    let pid = child.id().to_string();
    let under_perf = Command::new("pkill")
        .args(["-TERM", "-P", &pid])
        .status()
        .is_ok_and(|s| s.success());
    if !under_perf {
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
    }
    let _ = child.wait();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let first = rows(args.records, 0);
    let second = rows(args.records, 1);
    let scratch = std::env::temp_dir().join(format!("sluice-wh-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let (mut raws, mut inserts, mut raw_ups, mut upserts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..args.runs.max(1) {
        let tag = format!("whb_{}_{run}", std::process::id());
        let (t1, t2) = (format!("{tag}_insert"), format!("{tag}_upsert"));
        let raw_table = format!("{tag}_raw");
        produce(&args, &t1, &first)?;
        produce(&args, &t2, &second)?;
        // The order alternates, so neither side always runs on a machine
        // warmed (or loaded) by the other.
        let raw_first = run % 2 == 0;
        let (mut r, mut ru) = (0.0, 0.0);
        if raw_first {
            checkpoint(&args).await?;
            r = raw_insert(&args, &first, &raw_table).await?;
            checkpoint(&args).await?;
            ru = raw_upsert(&args, &second, &raw_table).await?;
        }
        checkpoint(&args).await?;
        let i = sluice(&args, &t1, &tag, "insert", &scratch).await?;
        // The second topic's rows carry new values for the same keys.
        checkpoint(&args).await?;
        let u = sluice(&args, &t2, &tag, "upsert", &scratch).await?;
        if !raw_first {
            checkpoint(&args).await?;
            r = raw_insert(&args, &first, &raw_table).await?;
            checkpoint(&args).await?;
            ru = raw_upsert(&args, &second, &raw_table).await?;
        }
        let c = connect(&args.pg_url).await?;
        for t in [&tag, &raw_table] {
            let changed: i64 = c
                .query_one(&format!("SELECT count(*) FROM {t} WHERE tenant = 'tenant-' || ((id * 7919 + 1) % 1000)"), &[])
                .await?
                .get(0);
            if changed != args.records as i64 {
                bail!(
                    "the upsert changed {changed} of {} rows in {t}",
                    args.records
                );
            }
        }
        eprintln!(
            "run {run} ({}): raw COPY {r:.0} rows/s, sluice insert {i:.0} rows/s ({:.0} %); raw upsert {ru:.0} rows/s ({:.0} % of raw COPY), sluice upsert {u:.0} rows/s ({:.0} % of raw COPY, {:.0} % of raw upsert)",
            if raw_first { "raw first" } else { "sluice first" },
            100.0 * i / r,
            100.0 * ru / r,
            100.0 * u / r,
            100.0 * u / ru
        );
        c.batch_execute(&format!("DROP TABLE {tag}; DROP TABLE {raw_table}"))
            .await?;
        raws.push(r);
        inserts.push(i);
        raw_ups.push(ru);
        upserts.push(u);
    }
    std::fs::remove_dir_all(&scratch).ok();
    // Ratios are taken within each run (same load), then their median.
    let ratio =
        |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| 100.0 * x / y).collect());
    println!(
        "| {} rows, median of {} | rows/s | / raw COPY | / raw upsert |",
        args.records, args.runs
    );
    println!("|---|---|---|---|");
    println!(
        "| raw binary COPY | {:.0} | 100 % | |",
        median(raws.clone())
    );
    println!(
        "| sluice insert | {:.0} | {:.0} % | |",
        median(inserts.clone()),
        ratio(&inserts, &raws)
    );
    println!(
        "| raw upsert (staging + ON CONFLICT) | {:.0} | {:.0} % | 100 % |",
        median(raw_ups.clone()),
        ratio(&raw_ups, &raws)
    );
    println!(
        "| sluice upsert (existing keys) | {:.0} | {:.0} % | {:.0} % |",
        median(upserts.clone()),
        ratio(&upserts, &raws),
        ratio(&upserts, &raw_ups)
    );
    Ok(())
}
