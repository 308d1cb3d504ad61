//! The I/O shell over PostgreSQL (tokio-postgres): the connection, the
//! tables' columns, and one batch written as one transaction: the stored
//! offsets locked and read, rows already applied dropped, each step copied
//! into a staging table and merged (under a savepoint, bisected on a row
//! the database rejects), and the new offsets stored before COMMIT.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use sluice_api::{
    ConnectError, ErrantRecordReporter, ErrorKind, OffsetMap, Record, TopicPartition,
};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Socket, Statement};
use tracing::{info, warn};

use crate::change::{Extractor, Shape};
use crate::config::{InsertMode, SslMode, TableName, WarehouseConfig};
use crate::copy::Encoded;
use crate::dialect::{Dialect, Postgres, TargetColumn};
use crate::plan::{any_applied, applied, offsets_after, Batch, Step};
use crate::types::fits;

pub struct Warehouse {
    config: Arc<WarehouseConfig>,
    connector: String,
    dialect: Postgres,
    client: Option<Client>,
    /// Columns of each table seen (name → type), dropped after any failure
    /// since a rolled-back transaction may have undone DDL.
    tables: HashMap<TableName, HashMap<String, String>>,
    stages: u64,
    /// The offset statements, prepared on each new connection.
    statements: Option<OffsetStatements>,
}

/// A batch's statements on the offsets table. Prepared once, each runs in
/// one round trip; a batch sends several at once (tokio-postgres pipelines
/// requests polled together), so a transaction costs a few round trips
/// however many statements it runs.
struct OffsetStatements {
    /// A row for every partition, so there is always a row to lock.
    create: Statement,
    lock: Statement,
    store: Statement,
}

/// How a step's rows reach the target.
enum Write {
    /// Straight in: `COPY <table> (<columns>)`.
    Copy(String),
    /// Through a staging table, then this statement (`{stage}` names it).
    Merge(String),
}

/// What a failed statement means for the batch.
enum Failure {
    /// The database rejected a row (data exception, constraint): bisect.
    Row(ConnectError),
    Other(ConnectError),
}

impl Warehouse {
    pub fn new(config: Arc<WarehouseConfig>, connector: &str) -> Self {
        Self {
            dialect: Postgres {
                quote: config.quote,
                fillfactor: config.fillfactor,
            },
            config,
            connector: connector.to_owned(),
            client: None,
            tables: HashMap::new(),
            stages: 0,
            statements: None,
        }
    }

    async fn client(&mut self) -> Result<&Client, ConnectError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let client = connect(&self.config).await?;
            let c = &self.config;
            client
                .batch_execute(&format!(
                    "SET TimeZone = '{}'; CREATE TABLE IF NOT EXISTS {} (connector text NOT NULL, topic text NOT NULL, kafka_partition integer NOT NULL, next_offset bigint NOT NULL, PRIMARY KEY (connector, topic, kafka_partition))",
                    c.timezone.replace('\'', "''"),
                    self.offsets_table()
                ))
                .await
                .map_err(|e| ddl_error("cannot prepare the session", &e))?;
            let table = self.offsets_table();
            let sql = [
                format!("INSERT INTO {table} SELECT $1, t, p, -1 FROM unnest($2::text[], $3::int[]) AS u(t, p) ON CONFLICT DO NOTHING"),
                format!("SELECT o.topic, o.kafka_partition, o.next_offset FROM {table} o JOIN unnest($2::text[], $3::int[]) AS u(t, p) ON o.topic = u.t AND o.kafka_partition = u.p WHERE o.connector = $1 ORDER BY 1, 2 FOR UPDATE OF o"),
                format!("UPDATE {table} o SET next_offset = u.n FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(t, p, n) WHERE o.connector = $1 AND o.topic = u.t AND o.kafka_partition = u.p"),
            ];
            let (create, lock, store) = tokio::join!(
                client.prepare(&sql[0]),
                client.prepare(&sql[1]),
                client.prepare(&sql[2]),
            );
            let prepared = |r: Result<Statement, tokio_postgres::Error>| {
                r.map_err(|e| classify("cannot prepare the offset statements", &e))
            };
            self.statements = Some(OffsetStatements {
                create: prepared(create)?,
                lock: prepared(lock)?,
                store: prepared(store)?,
            });
            info!(connector = %self.connector, "connected to the warehouse");
            self.client = Some(client);
        }
        self.client
            .as_ref()
            .ok_or_else(|| ConnectError::fatal("no warehouse connection"))
    }

    fn offsets_table(&self) -> String {
        self.dialect
            .table(&TableName::parse(&self.config.offsets_table))
    }

    /// Connects, trying `connection.attempts` times.
    pub async fn connect_with_attempts(&mut self) -> Result<(), ConnectError> {
        let mut attempt = 1;
        let attempts = self.config.connection_attempts;
        loop {
            match self.client().await.map(|_| ()) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retriable() && attempt < attempts => {
                    warn!(connector = %self.connector, attempt, "cannot reach the warehouse, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(self.config.connection_backoff_ms))
                        .await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The offsets stored for `partitions` (those with none are left out).
    pub async fn stored_offsets(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<OffsetMap, ConnectError> {
        let sql = format!(
            "SELECT topic, kafka_partition, next_offset FROM {} WHERE connector = $1",
            self.offsets_table()
        );
        let connector = self.connector.clone();
        let rows = self
            .client()
            .await?
            .query(&sql, &[&connector])
            .await
            .map_err(|e| classify("cannot read stored offsets", &e))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    TopicPartition::new(r.get::<_, String>(0), r.get::<_, i32>(1)),
                    r.get::<_, i64>(2),
                )
            })
            .filter(|(tp, next)| *next >= 0 && partitions.contains(tp))
            .collect())
    }

    /// Writes one batch, with its offsets, in one transaction; on a failure,
    /// answers the batch's records (none of them written).
    pub async fn write_batch(
        &mut self,
        batch: Batch,
        reporter: &dyn ErrantRecordReporter,
    ) -> Result<(), (ConnectError, Vec<Record>)> {
        let Batch {
            records,
            unwritable,
            steps,
        } = batch;
        let mut result = self.client().await.map(|_| ());
        if result.is_ok() {
            result = self
                .transaction(&records, unwritable, steps, reporter)
                .await;
        }
        if result.is_err() {
            self.tables.clear();
            if let Some(c) = self.client.as_ref().filter(|c| !c.is_closed()) {
                let _ = c.batch_execute("ROLLBACK").await;
            }
        }
        result.map_err(|e| (e, records))
    }

    async fn transaction(
        &mut self,
        records: &[Record],
        unwritable: Vec<(usize, String)>,
        steps: Vec<Step<Encoded>>,
        reporter: &dyn ErrantRecordReporter,
    ) -> Result<(), ConnectError> {
        let offsets = offsets_after(records);
        let stored = self.begin_and_lock(&offsets).await?;
        // The batch was planned as if none of it were here yet; after a
        // redelivery some is, and the rest is planned again without it (a
        // key's last change may be one of those already written).
        let (unwritable, steps) = if any_applied(records, &stored) {
            let mut extractor = Extractor::new(self.config.clone());
            Batch::plan(records, &mut extractor, self.config.reduce, |r| {
                applied(r, &stored)
            })
        } else {
            (unwritable, steps)
        };
        for (i, why) in unwritable {
            let r = &records[i];
            let e = ConnectError::data(format!(
                "cannot write record {}-{}@{}: {why}",
                r.topic,
                r.partition.unwrap_or(-1),
                r.offset.unwrap_or(-1)
            ));
            reporter.report(r, &e).await?;
        }
        for step in steps {
            self.apply(step, records, reporter).await?;
        }
        let new: OffsetMap = offsets
            .into_iter()
            .filter(|(tp, next)| stored.get(tp).is_none_or(|s| next > s))
            .collect();
        self.store_and_commit(&new).await
    }

    fn session(&self) -> Result<(&Client, &OffsetStatements), ConnectError> {
        match (&self.client, &self.statements) {
            (Some(c), Some(s)) => Ok((c, s)),
            _ => Err(ConnectError::retriable("no connection")),
        }
    }

    /// Begins the transaction, then locks this connector's offset rows for
    /// the batch's partitions and reads them: a second writer of the same
    /// partitions (a task that lost them and has not noticed) waits here,
    /// then sees what the first wrote. One round trip.
    async fn begin_and_lock(&self, partitions: &OffsetMap) -> Result<OffsetMap, ConnectError> {
        let (client, st) = self.session()?;
        let (topics, parts): (Vec<&str>, Vec<i32>) = partitions
            .keys()
            .map(|tp| (tp.topic.as_str(), tp.partition))
            .unzip();
        let params: [&(dyn ToSql + Sync); 3] = [&self.connector, &topics, &parts];
        let (begun, created, locked) = tokio::join!(
            client.batch_execute("BEGIN"),
            client.execute(&st.create, &params),
            client.query(&st.lock, &params),
        );
        begun.map_err(|e| classify("BEGIN", &e))?;
        created.map_err(|e| classify("cannot create offset rows", &e))?;
        let rows = locked.map_err(|e| classify("cannot lock stored offsets", &e))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    TopicPartition::new(r.get::<_, String>(0), r.get::<_, i32>(1)),
                    r.get::<_, i64>(2),
                )
            })
            .filter(|(_, next)| *next >= 0)
            .collect())
    }

    /// Stores the offsets and commits, in one round trip. Should the UPDATE
    /// fail, PostgreSQL answers the COMMIT of the failed transaction with a
    /// rollback, and the UPDATE's error is what this returns.
    async fn store_and_commit(&self, offsets: &OffsetMap) -> Result<(), ConnectError> {
        let (client, st) = self.session()?;
        let commit = |r: Result<(), tokio_postgres::Error>| r.map_err(|e| classify("COMMIT", &e));
        if offsets.is_empty() {
            return commit(client.batch_execute("COMMIT").await);
        }
        let (topics, parts): (Vec<&str>, Vec<i32>) = offsets
            .keys()
            .map(|tp| (tp.topic.as_str(), tp.partition))
            .unzip();
        let nexts: Vec<i64> = offsets.values().copied().collect();
        let params: [&(dyn ToSql + Sync); 4] = [&self.connector, &topics, &parts, &nexts];
        let (stored, committed) = tokio::join!(
            client.execute(&st.store, &params),
            client.batch_execute("COMMIT"),
        );
        stored.map_err(|e| classify("cannot store offsets", &e))?;
        commit(committed)
    }

    async fn apply(
        &mut self,
        step: Step<Encoded>,
        records: &[Record],
        reporter: &dyn ErrantRecordReporter,
    ) -> Result<(), ConnectError> {
        let (table, shape, rows, indices, delete) = match step {
            Step::Truncate { table } => {
                if self.columns(&table).await?.is_empty() {
                    return Ok(());
                }
                let sql = self.dialect.truncate(&table);
                return self.execute(&sql, "truncate").await;
            }
            Step::Write {
                table,
                shape,
                rows,
                records,
            } => (table, shape, rows, records, false),
            Step::Delete {
                table,
                shape,
                rows,
                records,
            } => (table, shape, rows, records, true),
        };
        let Some(targets) = self.prepare_table(&table, &shape, delete).await? else {
            return Ok(());
        };
        // A plain insert whose columns take the wire types as they are needs
        // no staging table: the rows are copied straight into the target.
        let direct = !delete
            && self.config.insert_mode == InsertMode::Insert
            && targets
                .iter()
                .zip(&shape.columns)
                .all(|(t, c)| t.sql_type == c.mapping.wire.sql());
        let write = if direct {
            Write::Copy(self.dialect.copy_target(&table, &targets))
        } else if delete {
            Write::Merge(self.dialect.delete(&table, "{stage}", &targets))
        } else {
            Write::Merge(self.dialect.merge(
                self.config.insert_mode,
                &table,
                "{stage}",
                &targets,
                &shape.key,
            ))
        };
        // Ranges still to try; the first attempt is the whole step.
        let mut pending = vec![(0, rows.len())];
        while let Some((from, to)) = pending.pop() {
            match self.attempt(&shape, rows.stream(from, to), &write).await {
                Ok(()) => {}
                Err(Failure::Row(_)) if to - from > 1 => {
                    let mid = from + (to - from) / 2;
                    pending.push((mid, to));
                    pending.push((from, mid));
                }
                Err(Failure::Row(e)) => {
                    let record = &records[indices[from]];
                    warn!(connector = %self.connector, topic = %record.topic, partition = record.partition.unwrap_or(-1), offset = record.offset.unwrap_or(-1), table = %table, "the warehouse rejected a row: {e}");
                    reporter.report(record, &e).await?;
                }
                Err(Failure::Other(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Copies `rows` into a fresh staging table and merges them, under a
    /// savepoint so that a rejected row undoes only this attempt.
    async fn attempt(
        &mut self,
        shape: &Shape,
        rows: [Bytes; 3],
        write: &Write,
    ) -> Result<(), Failure> {
        self.stages += 1;
        let stage = format!("sluice_stage_{}", self.stages);
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| Failure::Other(ConnectError::retriable("no connection")))?;
        let other = |what: &str, e: &tokio_postgres::Error| Failure::Other(classify(what, e));
        let setup = match write {
            Write::Copy(_) => "SAVEPOINT sluice_rows".to_owned(),
            Write::Merge(_) => format!(
                "SAVEPOINT sluice_rows; {}",
                self.dialect.create_staging(&stage, &shape.columns)
            ),
        };
        // The set-up and the COPY go out together (one round trip less);
        // should the set-up fail, the COPY fails after it, and the set-up's
        // error is the one reported.
        let (set_up, result) = tokio::join!(client.batch_execute(&setup), async {
            match write {
                Write::Copy(target) => copy(client, target, rows).await,
                Write::Merge(sql) => {
                    copy(client, &stage, rows).await?;
                    client
                        .batch_execute(&format!(
                            "{}; RELEASE SAVEPOINT sluice_rows",
                            sql.replace("{stage}", &stage)
                        ))
                        .await
                }
            }
        });
        set_up.map_err(|e| other("cannot create the staging table", &e))?;
        match result {
            Ok(()) if matches!(write, Write::Merge(_)) => Ok(()),
            Ok(()) => client
                .batch_execute("RELEASE SAVEPOINT sluice_rows")
                .await
                .map_err(|e| other("RELEASE SAVEPOINT", &e)),
            Err(e) => {
                let row = e
                    .as_db_error()
                    .is_some_and(|d| is_row_error(d.code().code()));
                if !row {
                    return Err(other("cannot write rows", &e));
                }
                client
                    .batch_execute("ROLLBACK TO SAVEPOINT sluice_rows")
                    .await
                    .map_err(|e| other("ROLLBACK TO SAVEPOINT", &e))?;
                Err(Failure::Row(row_error(&e)))
            }
        }
    }

    async fn execute(&self, sql: &str, what: &str) -> Result<(), ConnectError> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| ConnectError::retriable("no connection"))?;
        client
            .batch_execute(sql)
            .await
            .map_err(|e| classify(what, &e))
    }

    /// The table's columns (empty: no such table).
    async fn columns(
        &mut self,
        table: &TableName,
    ) -> Result<HashMap<String, String>, ConnectError> {
        if let Some(c) = self.tables.get(table) {
            return Ok(c.clone());
        }
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| ConnectError::retriable("no connection"))?;
        let rows = client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                &[&self.dialect.table(table)],
            )
            .await
            .map_err(|e| classify("cannot read the table's columns", &e))?;
        let columns: HashMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        if !columns.is_empty() {
            self.tables.insert(table.clone(), columns.clone());
        }
        Ok(columns)
    }

    /// Creates or evolves the table as configured, and answers the target
    /// column of each shape column; `None` when there is nothing to do (a
    /// delete from a table that does not exist).
    async fn prepare_table(
        &mut self,
        table: &TableName,
        shape: &Shape,
        delete: bool,
    ) -> Result<Option<Vec<TargetColumn>>, ConnectError> {
        let mut columns = self.columns(table).await?;
        if columns.is_empty() {
            if delete {
                return Ok(None);
            }
            if !self.config.auto_create {
                return Err(ConnectError::fatal(format!(
                    "table {table} does not exist (create it, or set auto.create=true)"
                )));
            }
            info!(connector = %self.connector, table = %table, "creating the table");
            self.ddl(&self.dialect.create_table(table, shape)).await?;
            self.tables.remove(table);
            columns = self.columns(table).await?;
        }
        let mut targets = Vec::with_capacity(shape.columns.len());
        for c in &shape.columns {
            let name = if self.config.quote {
                c.name.clone()
            } else {
                c.name.to_lowercase()
            };
            let sql_type = match columns.get(&name) {
                Some(t) => t.clone(),
                None if self.config.auto_evolve && !delete => {
                    info!(connector = %self.connector, table = %table, column = %c.name, "adding a column");
                    self.ddl(&self.dialect.add_column(table, c)).await?;
                    self.tables.remove(table);
                    c.mapping.col.sql()
                }
                None => {
                    return Err(ConnectError::fatal(format!(
                        "table {table} has no column '{}' (add it, or set auto.evolve=true)",
                        c.name
                    )))
                }
            };
            if !fits(c.mapping.wire, &sql_type) {
                return Err(ConnectError::fatal(format!(
                    "column '{}' of table {table} is {sql_type}, and the records bring {} (as {}): an incompatible change",
                    c.name,
                    c.mapping.col.sql(),
                    c.mapping.wire.sql()
                )));
            }
            targets.push(TargetColumn {
                name: c.name.clone(),
                sql_type,
            });
        }
        Ok(Some(targets))
    }

    /// DDL in the batch's transaction: a concurrent task doing the same
    /// (two tasks creating one table) fails one of them, which retries.
    async fn ddl(&self, sql: &str) -> Result<(), ConnectError> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| ConnectError::retriable("no connection"))?;
        client.batch_execute(sql).await.map_err(|e| {
            let c = classify("cannot change the table", &e);
            if c.kind() == ErrorKind::Fatal
                && e.as_db_error()
                    .is_some_and(|d| d.code().code().starts_with("23"))
            {
                ConnectError::retriable(c.message().to_owned())
            } else {
                c
            }
        })
    }

    pub fn close(&mut self) {
        self.client = None;
    }
}

/// The largest CopyData message sent.
const COPY_CHUNK: usize = 64 * 1024;

/// Binary COPY of an encoded stream into `target` (a table, with a column
/// list or not).
async fn copy(
    client: &Client,
    target: &str,
    stream: [Bytes; 3],
) -> Result<(), tokio_postgres::Error> {
    let sink = client
        .copy_in::<_, Bytes>(&format!("COPY {target} FROM STDIN BINARY"))
        .await?;
    let mut sink = std::pin::pin!(sink);
    for mut part in stream {
        // In pieces, so that PostgreSQL parses one while the next arrives.
        while part.len() > COPY_CHUNK {
            sink.feed(part.split_to(COPY_CHUNK)).await?;
        }
        sink.feed(part).await?;
    }
    sink.as_mut().finish().await?;
    Ok(())
}

async fn connect(config: &WarehouseConfig) -> Result<Client, ConnectError> {
    let mut pg: tokio_postgres::Config = config.url.parse().map_err(|e| {
        ConnectError::new(
            ErrorKind::Config,
            format!("connection.url: not a PostgreSQL URL ({e})"),
        )
    })?;
    if let Some(u) = &config.user {
        pg.user(u);
    }
    if let Some(p) = &config.password {
        pg.password(p);
    }
    pg.connect_timeout(Duration::from_secs(10));
    pg.ssl_mode(match config.sslmode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    match crate::tls::connector(config.sslmode, config.sslrootcert.as_deref())? {
        None => open(&pg, NoTls).await,
        Some(tls) => open(&pg, tls).await,
    }
}

async fn open<T>(pg: &tokio_postgres::Config, tls: T) -> Result<Client, ConnectError>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = pg.connect(tls).await.map_err(|e| {
        let code = e.as_db_error().map(|d| d.code().code().to_owned());
        match code.as_deref() {
            Some("28P01") | Some("28000") => ConnectError::new(
                ErrorKind::Config,
                format!("the warehouse refused the login: {} (check connection.user and connection.password)", describe(&e)),
            ),
            Some("3D000") => ConnectError::new(ErrorKind::Config, format!("connection.url: {}", describe(&e))),
            None if crate::tls::is_certificate_error(&e) => ConnectError::new(
                ErrorKind::Config,
                format!("the warehouse's TLS certificate was refused: {} (check connection.url: sslrootcert must name the PEM file of the CA that signed the server's certificate, and with sslmode=verify-full the URL's host must be a name the certificate holds)", describe(&e)),
            ),
            None if pg.get_ssl_mode() == tokio_postgres::config::SslMode::Require && describe(&e).contains("does not support TLS") => ConnectError::new(
                ErrorKind::Config,
                format!("connection.url: the warehouse does not accept TLS, and sslmode asks for it ({})", describe(&e)),
            ),
            _ => ConnectError::retriable(format!("cannot connect to the warehouse: {}", describe(&e))),
        }
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            warn!("warehouse connection closed: {e}");
        }
    });
    Ok(client)
}

/// DDL racing the same DDL in another session (two tasks creating one
/// table) fails one of them with a unique violation in the catalog: the
/// loser retries, and then finds the table.
fn ddl_error(what: &str, e: &tokio_postgres::Error) -> ConnectError {
    let c = classify(what, e);
    let raced = e
        .as_db_error()
        .is_some_and(|d| d.code().code().starts_with("23"));
    if raced {
        ConnectError::retriable(c.message().to_owned())
    } else {
        c
    }
}

/// SQLSTATE classes of a row's own fault: data exceptions and integrity
/// constraint violations.
fn is_row_error(code: &str) -> bool {
    code.starts_with("22") || code.starts_with("23")
}

/// The database's message with its SQLSTATE, for the dead-letter queue.
fn row_error(e: &tokio_postgres::Error) -> ConnectError {
    ConnectError::data(describe(e))
}

/// The database's message, its detail and SQLSTATE; or the client's error.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => {
            let mut s = format!("{} (SQLSTATE {})", d.message(), d.code().code());
            if let Some(detail) = d.detail() {
                s.push_str(&format!(": {detail}"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                s.push_str(&format!(": {c}"));
                cause = c.source();
            }
            s
        }
    }
}

/// A lost connection, a serialization failure or a server going down is
/// retried; anything else (a missing column, a bad cast) fails the task.
fn classify(what: &str, e: &tokio_postgres::Error) -> ConnectError {
    let message = format!("{what}: {}", describe(e));
    let retriable = match e.as_db_error() {
        None => true,
        Some(d) => {
            let c = d.code().code();
            c.starts_with("08")
                || c.starts_with("40")
                || c.starts_with("53")
                || c.starts_with("57")
                || c == "55P03"
        }
    };
    if retriable || e.is_closed() {
        ConnectError::retriable(message)
    } else {
        ConnectError::fatal(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_errors_are_data_and_constraint_classes() {
        assert!(is_row_error("23505"));
        assert!(is_row_error("22P02"));
        assert!(!is_row_error("42703"));
        assert!(!is_row_error("08006"));
    }
}
