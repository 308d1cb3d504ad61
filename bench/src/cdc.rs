//! The Postgres CDC benchmark: rows changed per second from one slot into
//! Kafka, beside the rate at which `pg_recvlogical` drains the same WAL in the
//! same run.
//!
//! The rows are inserted first (in 5,000-row transactions unless
//! `--cdc-txn-rows` says otherwise), with the slots
//! already in place: one for pg_recvlogical, one for sluice and, beside its
//! peer, one for Debezium. Each then reads the same WAL in turn, so what is
//! measured is decoding and delivery, not inserting. Both workers get
//! Debezium's own config and JSON converters.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::peer::{Kind, Launch, RestWorker};
use crate::process::{Measured, Meter};
use crate::{delete_topics, total_records, wait_until};

pub struct CdcBench<'a> {
    pub bootstrap: &'a str,
    pub pg_url: &'a str,
    pub pg_bindir: PathBuf,
    pub rows: u64,
    pub txn_rows: u64,
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

    /// One run; with `peer`, Debezium in Kafka Connect reads the same WAL too.
    pub fn run(&self, shape: Shape, tag: &str, launch: &Launch<'_>, peer: bool) -> Result<CdcRun> {
        let schema = format!("bench_{}_{}", shape.name(), tag.replace('-', "_"));
        let slots = Slots {
            raw: format!("{schema}_raw"),
            sluice: format!("{schema}_sluice"),
            debezium: peer.then(|| format!("{schema}_dbz")),
            publication: format!("{schema}_pub"),
        };
        let (defs, exprs) = shape.columns();
        let mut sql = format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.t ({defs});
             CREATE PUBLICATION {} FOR TABLE {schema}.t;",
            slots.publication
        );
        for slot in slots.names() {
            sql.push_str(&format!(
                "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput');"
            ));
        }
        self.psql(&sql)?;
        let result = self.measure(shape, &schema, &exprs, &slots, launch);
        let names: Vec<String> = slots.names().map(|s| format!("'{s}'")).collect();
        let _ = self.psql(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name IN ({}) AND NOT active;
             DROP PUBLICATION IF EXISTS {}; DROP SCHEMA {schema} CASCADE;",
            names.join(", "),
            slots.publication
        ));
        result
    }

    fn measure(
        &self,
        shape: Shape,
        schema: &str,
        exprs: &str,
        slots: &Slots,
        launch: &Launch<'_>,
    ) -> Result<CdcRun> {
        let mut sql = String::new();
        let mut from = 1;
        while from <= self.rows {
            let to = (from + self.txn_rows - 1).min(self.rows);
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
                &slots.raw,
                "--start",
                "--no-loop",
            ])
            .args(["-E", &end, "-f", "/dev/null"])
            .args(["-o", "proto_version=1", "-o"])
            .arg(format!("publication_names={}", slots.publication))
            .output()
            .context("cannot run pg_recvlogical")?;
        if !raw.status.success() {
            bail!("pg_recvlogical: {}", String::from_utf8_lossy(&raw.stderr));
        }
        let raw_rate = self.rows as f64 / started.elapsed().as_secs_f64();

        let sluice = self
            .capture(Kind::Sluice, shape, schema, &slots.sluice, slots, launch)
            .context("sluice")?;
        let debezium = match &slots.debezium {
            Some(slot) => Some(
                self.capture(Kind::Connect, shape, schema, slot, slots, launch)
                    .context("Debezium")?,
            ),
            None => None,
        };
        Ok(CdcRun {
            sluice,
            raw: raw_rate,
            debezium,
        })
    }

    /// One worker reads `slot` into its own topic until every row is there.
    fn capture(
        &self,
        kind: Kind,
        shape: Shape,
        schema: &str,
        slot: &str,
        slots: &Slots,
        launch: &Launch<'_>,
    ) -> Result<Measured> {
        let prefix = slot.replace('_', "-");
        let topic = format!("{prefix}.{schema}.t");
        let (host, port) = host_port(self.pg_url)?;
        let worker = RestWorker::start(kind, launch, &prefix)?;
        // Debezium's own keys and class, which sluice takes as written.
        worker.create(
            &prefix,
            &json!({
                "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                "tasks.max": "1",
                "plugin.name": "pgoutput",
                "database.hostname": host, "database.port": port, "database.user": "postgres",
                "database.password": "", "database.dbname": "postgres",
                "database.sslmode": "disable",
                "topic.prefix": prefix, "slot.name": slot,
                "publication.name": slots.publication, "publication.autocreate.mode": "disabled",
                "table.include.list": format!("{schema}\\.t"), "snapshot.mode": "no_data",
                "topic.creation.default.partitions": "16",
                "topic.creation.default.replication.factor": "1"
            }),
        )?;
        let mut meter = Meter::new(worker.pid());
        let waited = wait_until(Duration::from_secs(900), || {
            Ok(meter.observe(
                total_records(self.bootstrap, &topic).unwrap_or(0) as u64,
                self.rows,
            ))
        });
        worker.stop()?;
        waited.with_context(|| format!("{} rows into {topic}", shape.name()))?;
        // The broker keeps topics in memory, and a million events with their
        // schemas take gigabytes: gone before the next worker runs.
        delete_topics(self.bootstrap, &[&topic])?;
        Ok(meter.result())
    }
}

/// The replication slots of one run, each reading the same WAL.
struct Slots {
    raw: String,
    sluice: String,
    debezium: Option<String>,
    publication: String,
}

impl Slots {
    fn names(&self) -> impl Iterator<Item = &String> {
        [&self.raw, &self.sluice]
            .into_iter()
            .chain(self.debezium.as_ref())
    }
}

/// What one CDC run measured.
pub struct CdcRun {
    pub sluice: Measured,
    /// pg_recvlogical's rows/s: the limit.
    pub raw: f64,
    pub debezium: Option<Measured>,
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
