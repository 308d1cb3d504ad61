//! The Postgres CDC benchmark: rows changed per second from one slot into
//! Kafka, beside the rate at which `pg_recvlogical` drains the same WAL in the
//! same run.
//!
//! The rows are inserted first (in 5,000-row transactions), with two slots
//! already in place: one for pg_recvlogical, one for sluice. Both then read
//! the same WAL, so what is measured is decoding and delivery, not inserting.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::{start_worker, stop, total_records, wait_until, write_json, SteadyRate};

pub struct CdcBench<'a> {
    pub sluice: &'a Path,
    pub bootstrap: &'a str,
    pub pg_url: &'a str,
    pub pg_bindir: PathBuf,
    pub rows: u64,
    pub scratch: &'a Path,
}

#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// 5 columns.
    Narrow,
    /// 30 columns.
    Wide,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Narrow => "narrow",
            Shape::Wide => "wide",
        }
    }

    /// (column definitions, the SELECT list generating a row from `g`).
    fn columns(self) -> (String, String) {
        let mut defs = vec!["id bigint PRIMARY KEY".to_owned()];
        let mut exprs = vec!["g".to_owned()];
        let extra = match self {
            Shape::Narrow => 4,
            Shape::Wide => 29,
        };
        let kinds = [
            ("text", "'tenant_' || (g % 1000)"),
            ("numeric(10,2)", "(g % 100000) / 100.0"),
            ("int", "(g % 7)::int"),
            (
                "timestamptz",
                "'2026-01-01'::timestamptz + g * interval '1 second'",
            ),
            ("boolean", "g % 2 = 0"),
            ("bigint", "g * 31"),
        ];
        for c in 0..extra {
            let (ty, expr) = kinds[c % kinds.len()];
            defs.push(format!("c{c} {ty}"));
            exprs.push(expr.to_owned());
        }
        (defs.join(", "), exprs.join(", "))
    }
}

impl CdcBench<'_> {
    fn psql(&self, sql: &str) -> Result<String> {
        let mut child = Command::new(self.pg_bindir.join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-d",
                self.pg_url,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run psql")?;
        use std::io::Write as _;
        child
            .stdin
            .take()
            .context("psql has no stdin")?
            .write_all(sql.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// One run: (sluice rows/s, pg_recvlogical rows/s).
    pub fn run(&self, shape: Shape, tag: &str) -> Result<(f64, f64)> {
        let schema = format!("bench_{}_{}", shape.name(), tag.replace('-', "_"));
        let (slot_raw, slot_sluice, publication) = (
            format!("{schema}_raw"),
            format!("{schema}_sluice"),
            format!("{schema}_pub"),
        );
        let (defs, exprs) = shape.columns();
        self.psql(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.t ({defs});
             CREATE PUBLICATION {publication} FOR TABLE {schema}.t;
             SELECT pg_create_logical_replication_slot('{slot_raw}', 'pgoutput');
             SELECT pg_create_logical_replication_slot('{slot_sluice}', 'pgoutput');"
        ))?;
        let result = self.measure(
            shape,
            &schema,
            &exprs,
            &slot_raw,
            &slot_sluice,
            &publication,
        );
        let _ = self.psql(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name IN ('{slot_raw}', '{slot_sluice}') AND NOT active;
             DROP PUBLICATION IF EXISTS {publication}; DROP SCHEMA {schema} CASCADE;"
        ));
        result
    }

    fn measure(
        &self,
        shape: Shape,
        schema: &str,
        exprs: &str,
        slot_raw: &str,
        slot_sluice: &str,
        publication: &str,
    ) -> Result<(f64, f64)> {
        const TXN_ROWS: u64 = 5000;
        let mut sql = String::new();
        let mut from = 1;
        while from <= self.rows {
            let to = (from + TXN_ROWS - 1).min(self.rows);
            sql.push_str(&format!(
                "INSERT INTO {schema}.t SELECT {exprs} FROM generate_series({from}, {to}) g;\n"
            ));
            from = to + 1;
        }
        self.psql(&sql)?;
        let end = self.psql("SELECT pg_current_wal_lsn()")?;

        // The limit: pg_recvlogical draining the slot to the end of the inserts.
        let started = Instant::now();
        let raw = Command::new(self.pg_bindir.join("pg_recvlogical"))
            .args([
                "-d",
                &plain(self.pg_url),
                "-S",
                slot_raw,
                "--start",
                "--no-loop",
            ])
            .args(["-E", &end, "-f", "/dev/null"])
            .args(["-o", "proto_version=1", "-o"])
            .arg(format!("publication_names={publication}"))
            .output()
            .context("cannot run pg_recvlogical")?;
        if !raw.status.success() {
            bail!("pg_recvlogical: {}", String::from_utf8_lossy(&raw.stderr));
        }
        let raw_rate = self.rows as f64 / started.elapsed().as_secs_f64();

        let prefix = schema.replace('_', "-");
        let topic = format!("{prefix}.{schema}.t");
        let worker = write_json(
            self.scratch,
            &format!("cdc-worker-{schema}.json"),
            &json!({
                "bootstrap.servers": self.bootstrap,
                "offset.storage.file.filename": self.scratch.join(format!("cdc-offsets-{schema}.json")).display().to_string(),
                "offset.flush.interval.ms": 1000,
                "listeners": "http://127.0.0.1:0",
                "key.converter": "json",
                "key.converter.schemas.enable": false,
                "value.converter": "json",
                "value.converter.schemas.enable": false,
                "progress.interval.ms": 0
            }),
        )?;
        let (host, port) = host_port(self.pg_url)?;
        let connector = write_json(
            self.scratch,
            &format!("cdc-{schema}.json"),
            &json!({"name": format!("bench-cdc-{schema}"), "config": {
                "connector.class": "postgres-cdc",
                "database.hostname": host, "database.port": port, "database.user": "postgres",
                "database.dbname": "postgres", "topic.prefix": prefix, "slot.name": slot_sluice,
                "publication.name": publication, "publication.autocreate.mode": "disabled",
                "table.include.list": format!("{schema}\\.t"), "snapshot.mode": "no_data",
                "database.sslmode": "disable",
                "max.batch.size": 4096, "topic.creation.default.partitions": 16
            }}),
        )?;
        let (mut w, _, _) = start_worker(self.sluice, &worker, &connector)?;
        let mut rate = SteadyRate::default();
        let waited = wait_until(Duration::from_secs(900), || {
            Ok(rate.observe(
                total_records(self.bootstrap, &topic).unwrap_or(0) as u64,
                self.rows,
            ))
        });
        stop(&mut w)?;
        waited.with_context(|| format!("{} rows into {topic}", shape.name()))?;
        Ok((rate.per_second(), raw_rate))
    }
}

/// The URL without TLS. The dev stack's PostgreSQL offers TLS, and both
/// sides would otherwise use it: the figures measure decoding and delivery.
fn plain(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}sslmode=disable")
}

/// Host and port of `postgres://user@host:port/db`.
fn host_port(url: &str) -> Result<(String, String)> {
    let rest = url.split('@').next_back().context("no host in the URL")?;
    let hostport = rest.split('/').next().context("no host in the URL")?;
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    Ok((host.to_owned(), port.to_owned()))
}
