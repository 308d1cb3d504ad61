//! The CDC task: sets up the slot, reads the initial snapshot inside the
//! slot's exported snapshot, then streams pgoutput changes.
//!
//! **Exactly-once without broker transactions.** Each record's position is
//! (commit LSN, index in the transaction) for streamed changes and (the slot's
//! consistent point, row number) for snapshot rows, so positions rise in the
//! order records are emitted, and a replay after a crash carries the same
//! positions: the runtime's idempotent resume skips what Kafka already holds.
//! A transaction is emitted only once its Commit has arrived, and PostgreSQL is
//! told an LSN is flushed only from `commit`, i.e. once the runtime has stored
//! the offsets of every record up to it. A restart therefore resumes at a
//! transaction boundary the slot still holds.
//!
//! **Never twice.** The slot may lag behind the stored offset (PostgreSQL hears
//! of a stored offset a moment after it is written), and the runtime's resume
//! scan covers only what lies past the stored marks. So the task itself skips
//! every streamed change at or below the last position it emitted: from the
//! stored offset at start, then from what it emitted itself, which covers a
//! stream rebuilt after PostgreSQL went away. Streaming also starts from the
//! stored LSN when it is ahead of the slot.
//!
//! **Idle.** A stream with nothing of ours to send confirms the WAL the server
//! has passed, so the server can recycle it and a shutdown does not wait for
//! this client.
//!
//! **Outages.** A lost connection (either one) is rebuilt inside `poll`, with
//! capped exponential backoff (`backoff.rs`), as often as `errors.max.retries`
//! allows; meanwhile `poll` returns empty batches, so the task still answers a
//! stop or a pause. PostgreSQL going away mid-snapshot takes the snapshot's
//! transaction along: the task then starts again in-process, carrying the
//! snapshot on as after a crash.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pg_walstream::{
    CancellationToken, ColumnValue, EventType, LogicalReplicationStream, RelationColumn,
    ReplicationError, ReplicationSlotOptions, ReplicationStreamConfig, RetryConfig, RowData,
    StreamingMode,
};
use serde_json::json;
use sluice_api::{
    Backoff, ConnectError, Position, Record, SourceOffset, SourcePartition, SourceRef, SourceTask,
    SourceTaskContext, Value,
};
use tokio_postgres::Client;

use crate::backoff::reconnect_backoff;
use tracing::{error, info, warn};

use crate::config::{CdcConfig, SnapshotMode};
use crate::database::{self, config_error, describe, ident, literal, rows};
use crate::envelope::{Column, Op, Origin, Table};
use crate::incremental::{Incremental, Signalled};
use crate::snapshot::{Interrupted, Snapshot};
use crate::types::ColumnType;

#[derive(Default)]
pub struct CdcTask {
    run: Option<Run>,
    /// What `start` was given: PostgreSQL going away mid-snapshot takes the
    /// snapshot's transaction with it, and the task starts again from here
    /// (with the offset stored since).
    context: Option<SourceTaskContext>,
    /// The last offset stored, from `commit`.
    stored: Option<SourceOffset>,
    /// Waiting to start again.
    restart: Option<Restart>,
}

/// Starting again after PostgreSQL went away mid-snapshot.
struct Restart {
    outage: Outage,
    /// Carried over from the run that was lost: what it returned, and
    /// whether that is stored.
    returned: Option<Position>,
    unstored: Option<SourceOffset>,
}

struct Run {
    config: CdcConfig,
    /// For the logs.
    connector: String,
    task: u32,
    /// This start's id, in Debezium's `__debezium.context.runId` header.
    run_id: String,
    sql: Client,
    partition: Arc<SourcePartition>,
    replication: Replication,
    snapshot: Option<Snapshot>,
    /// Streamed tables by relation id, from Relation messages.
    relations: HashMap<u32, Arc<Table>>,
    /// The transaction being received.
    txn: Option<Txn>,
    /// Records of committed transactions, waiting to be returned by `poll`.
    ready: VecDeque<Record>,
    /// The end LSN of the last transaction wholly emitted.
    last_end: u64,
    last_heartbeat: Instant,
    /// Transactions committed at or below this were handled (their signals
    /// acted on): before the stored offset was written (from its
    /// `lsn_commit`), or by this task before its stream was rebuilt.
    handled_through: u64,
    /// The position of the last streamed record emitted (stored, at start): a
    /// change at or below it is never emitted again, whatever the slot replays.
    emitted: Position,
    /// The highest `lsn_flushed` stored: where a rebuilt stream starts, and
    /// what PostgreSQL may forget.
    stored_lsn: u64,
    /// Transactions sent again that were emitted before, since the last
    /// report of them.
    replays_skipped: u64,
    /// The offset of the last record `poll` returned, until `commit` says it
    /// is stored. While it is not, the WAL passed cannot be confirmed.
    unstored: Option<SourceOffset>,
    /// The position of the last record `poll` returned.
    returned: Option<Position>,
    /// The WAL position last confirmed while idle.
    confirmed_idle: u64,
    /// The commit time of the transaction last handed on (ms since the epoch).
    last_commit_ms: Option<i64>,
    lag: crate::lag::SourceLag,
    /// PostgreSQL (or one connection to it) went away.
    outage: Option<Outage>,
    incremental: Incremental,
    done: bool,
}

enum Replication {
    /// Created, not streaming yet: a snapshot is being read in its exported
    /// snapshot.
    Idle(Box<LogicalReplicationStream>),
    Streaming(Box<LogicalReplicationStream>),
    /// Lost: `outage` says when to build it again.
    Down,
}

/// Reconnecting after PostgreSQL went away.
struct Outage {
    since: Instant,
    backoff: Backoff,
    retry_at: Instant,
}

impl Outage {
    /// PostgreSQL, or one connection to it, went away (`during`, if not empty,
    /// says in what, with a leading space):
    /// the first reconnect is scheduled, unless `errors.max.retries` is 0,
    /// which fails the task.
    fn begin(
        config: &CdcConfig,
        connector: &str,
        task: u32,
        why: &str,
        during: &str,
    ) -> Result<Self, ConnectError> {
        let mut backoff = reconnect_backoff(config);
        let Some(delay) = backoff.next_delay() else {
            return Err(ConnectError::fatal(format!(
                "lost PostgreSQL{during} and errors.max.retries=0 allows no reconnect: {why}"
            )));
        };
        warn!(
            connector = %connector,
            task,
            reason = %why,
            retry_in_ms = delay.as_millis() as u64,
            "lost the connection to PostgreSQL{during}; reconnecting"
        );
        let now = Instant::now();
        Ok(Self {
            since: now,
            backoff,
            retry_at: now + delay,
        })
    }
}

/// Why a reconnect attempt failed.
enum Reconnect {
    /// Worth trying again (PostgreSQL is still down or starting).
    Failed(String),
    /// Trying again cannot help (the slot is gone).
    Fatal(ConnectError),
}

struct Txn {
    xid: u32,
    commit_ms: i64,
    /// When its Begin arrived: the events' `ts_ms`, read once per transaction
    /// rather than once per row (the clock showed in profiles).
    seen_ms: i64,
    /// Received again after a restart, its signals already acted on.
    replayed: bool,
    /// Its records numbered up to this were emitted before (a stream resumed
    /// from behind the last emitted position); `u64::MAX`: all of them, so its
    /// changes are not even decoded.
    emitted_to: u64,
    records: Vec<Record>,
}

/// A delete's or key change's old row: unless the replica identity is FULL,
/// only the key came, and a required column gets its type's empty value rather
/// than a null its schema forbids.
fn fill_required(table: &Table, row: &mut [Value], identity: &pg_walstream::ReplicaIdentity) {
    if matches!(identity, pg_walstream::ReplicaIdentity::Full) {
        return;
    }
    for (c, v) in table.columns.iter().zip(row.iter_mut()) {
        if !c.key && !c.optional && v.is_null() {
            *v = c.ty.empty();
        }
    }
}

/// The commit LSN up to which a stored offset's transactions were handled:
/// that of its record's transaction, or, for a heartbeat, anything before the
/// end of the last transaction it had seen.
fn handled_through(offset: &SourceOffset) -> u64 {
    let lsn = |k: &str| offset.get(k).and_then(serde_json::Value::as_u64);
    match (lsn("lsn_commit"), offset.get("heartbeat")) {
        (Some(commit), _) => commit,
        (None, Some(_)) => lsn("lsn").unwrap_or(0).saturating_sub(1),
        (None, None) => 0,
    }
}

/// The position of the last streamed record a stored offset covers: its own,
/// or for a heartbeat, just below anything committed after what it had seen.
fn emitted_through(offset: &SourceOffset) -> Position {
    let lsn = |k: &str| offset.get(k).and_then(serde_json::Value::as_u64);
    match (lsn("lsn_commit"), offset.get("heartbeat")) {
        (Some(commit), _) => Position::new(commit, lsn("seq").unwrap_or(0)),
        (None, Some(_)) => Position::new(lsn("lsn").unwrap_or(0), 0),
        (None, None) => Position::default(),
    }
}

/// The header with a streamed record's change LSN (decimal). Its commit LSN
/// is already in the runtime's `__sluice.position` header (`<commit LSN>/<index
/// in the transaction>`), which idempotent resume uses: the index, unlike the
/// change LSN, tells a delete from its tombstone. (A second header for the
/// commit LSN cost about 7 % of the narrow-row rate.)
const CHANGE_LSN_HEADER: &str = "__sluice.lsn.change";

/// The offset key holding an incremental snapshot's progress.
const INCREMENTAL_KEY: &str = "incremental_snapshot";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn replication_error(config: &CdcConfig, e: pg_walstream::ReplicationError) -> ConnectError {
    let text = e.to_string();
    let hint = if text.contains("55006") {
        format!(
            " (replication slot '{}' is active for another reader: stop it, or give this connector its own slot.name)",
            config.slot
        )
    } else if text.contains("42501") {
        format!(" (user '{}' needs the REPLICATION attribute)", config.user)
    } else if text.contains("28P01") {
        " (check database.user and database.password)".to_owned()
    } else {
        String::new()
    };
    let message = format!("logical replication: {text}{hint}");
    if e.is_permanent() {
        config_error(message)
    } else {
        ConnectError::retriable(message)
    }
}

/// The replication stream's settings. pg_walstream's own retries are off:
/// the task reconnects itself, with the backoff and limit its config sets.
fn stream_config(config: &CdcConfig) -> ReplicationStreamConfig {
    ReplicationStreamConfig::builder(&config.slot, &config.publication)
        .with_protocol_version(1)
        .with_streaming_mode(StreamingMode::Off)
        // What `commit` confirms reaches PostgreSQL within a second or so
        // (the default, 10 s, held WAL and lengthened replays after a restart).
        .with_feedback_interval(Duration::from_secs(1))
        .with_connection_timeout(Duration::from_secs(10))
        .with_retry_config(RetryConfig {
            max_attempts: 1,
            ..RetryConfig::default()
        })
}

/// A connection-level failure (PostgreSQL went away, restarts, or dropped
/// this client): reconnecting may help. Anything else (a slot gone bad, a
/// message that does not decode) would fail again the same way.
fn is_connection_loss(e: &ReplicationError) -> bool {
    e.is_transient()
}

impl CdcTask {
    /// Connects, checks, and decides whether to snapshot, carry an interrupted
    /// snapshot on, or stream (see the module's documentation).
    async fn start_run(context: &SourceTaskContext) -> Result<Run, ConnectError> {
        let config = CdcConfig::parse(&context.config)?;
        let sql = database::connect(&config).await?;
        database::check_prerequisites(&sql, &config).await?;
        let tables = database::captured_tables(&sql, &config).await?;
        for (schema, table) in &tables {
            let catalog = database::catalog(&sql, schema, table).await?;
            if catalog.keys.is_empty() {
                let full = rows(
                    &sql,
                    &format!(
                        "SELECT relreplident::text FROM pg_class WHERE oid = {}::regclass",
                        literal(&database::qualified(schema, table))
                    ),
                )
                .await?;
                if full.first().and_then(|r| r[0].as_deref()) != Some("f") {
                    return Err(config_error(format!(
                        "table {schema}.{table} has no primary key, so its updates and deletes cannot be told apart: add one, or ALTER TABLE {}.{} REPLICA IDENTITY FULL, or leave it out with table.exclude.list",
                        ident(schema),
                        ident(table)
                    )));
                }
            }
        }
        let mut published = tables.clone();
        if let Some(signal) = &config.signal {
            if !published.contains(signal) {
                published.push(signal.clone());
            }
        }
        database::ensure_publication(&sql, &config, &published).await?;

        let mut partition = SourcePartition::new();
        partition.insert("server".into(), json!(config.prefix));
        let stored = context.offset(&partition).cloned();
        let snapshot_done = stored.as_ref().is_some_and(|o| {
            o.get("snapshot") != Some(&json!(true))
                || o.get("snapshot_completed") == Some(&json!(true))
        });
        let slot = rows(
            &sql,
            &format!(
                "SELECT (confirmed_flush_lsn - '0/0')::text FROM pg_replication_slots WHERE slot_name = {}",
                literal(&config.slot)
            ),
        )
        .await?;
        let slot_exists = !slot.is_empty();
        let slot_lsn: u64 = slot
            .first()
            .and_then(|r| r[0].as_deref())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let snapshot_wanted = match config.snapshot {
            SnapshotMode::NoData => false,
            SnapshotMode::Always => true,
            SnapshotMode::Initial | SnapshotMode::InitialOnly => !snapshot_done,
            SnapshotMode::WhenNeeded => !snapshot_done || !slot_exists,
        };
        if stored.is_some() && !slot_exists && !snapshot_wanted {
            return Err(config_error(format!(
                "replication slot '{}' is gone, so changes made since the stored offset are lost to it: reset this connector's offsets (DELETE /connectors/<name>/offsets) to snapshot again, or set snapshot.mode=always",
                config.slot
            )));
        }
        let mut resumed = None;
        if snapshot_wanted && slot_exists {
            let at = match &stored {
                Some(offset) => Interrupted::from_offset(offset),
                None => Interrupted::from_start(&tables),
            };
            if let Some(at) = at {
                resumed = crate::snapshot::resume(&sql, &config, &tables, &at).await?;
            }
        }
        if snapshot_wanted && slot_exists && resumed.is_none() {
            // An exported snapshot comes only with a new slot.
            info!(slot = %config.slot, "dropping the replication slot to snapshot consistently from a new one");
            rows(
                &sql,
                &format!("SELECT pg_drop_replication_slot({})", literal(&config.slot)),
            )
            .await
            .map_err(|e| {
                config_error(format!(
                    "cannot drop replication slot '{}' ({}); is another reader using it?",
                    config.slot,
                    e.message()
                ))
            })?;
        }

        let mut builder = stream_config(&config);
        let fresh_slot = snapshot_wanted && resumed.is_none();
        if fresh_slot {
            builder = builder.with_slot_options(ReplicationSlotOptions {
                snapshot: Some("export".into()),
                ..Default::default()
            });
        }
        let mut stream = LogicalReplicationStream::new(&config.replication_conninfo(), builder)
            .await
            .map_err(|e| replication_error(&config, e))?;
        stream
            .ensure_replication_slot()
            .await
            .map_err(|e| replication_error(&config, e))?;
        let mut snapshot = resumed;
        if snapshot_wanted && snapshot.is_none() {
            let name = stream
                .exported_snapshot_name()
                .map(str::to_owned)
                .ok_or_else(|| ConnectError::fatal("the new slot exported no snapshot"))?;
            // The exported snapshot lives only until the replication connection's
            // next command: import it before streaming starts.
            sql.batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                literal(&name)
            ))
            .await
            .map_err(|e| {
                ConnectError::fatal(format!("cannot import the snapshot: {}", describe(&e)))
            })?;
            let point = rows(
                &sql,
                &format!(
                    "SELECT (confirmed_flush_lsn - '0/0')::text FROM pg_replication_slots WHERE slot_name = {}",
                    literal(&config.slot)
                ),
            )
            .await?;
            let consistent_point = point
                .first()
                .and_then(|r| r[0].as_deref())
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            info!(slot = %config.slot, snapshot = %name, consistent_point, tables = tables.len(), "snapshot started");
            snapshot = Some(Snapshot::new(consistent_point, tables));
        }
        let mut incremental = Incremental::default();
        if snapshot.is_none() {
            if let Some(p) = stored.as_ref().and_then(|o| o.get(INCREMENTAL_KEY)) {
                incremental.restore(p);
            }
        }
        let lsn_flushed = stored
            .as_ref()
            .and_then(|o| o.get("lsn_flushed"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        // A new slot starts a new history: nothing stored refers to it.
        let from_stored = stored.as_ref().filter(|_| !fresh_slot);
        if from_stored.is_some() && lsn_flushed > slot_lsn {
            // PostgreSQL hears of a stored offset only after it is written.
            info!(
                connector = %context.connector,
                task = context.task_id,
                slot_lsn,
                stored_lsn = lsn_flushed,
                "the slot is behind the stored offset; streaming from the stored offset"
            );
        }
        Ok(Run {
            connector: context.connector.clone(),
            task: context.task_id,
            run_id: run_id(),
            sql,
            partition: Arc::new(partition),
            replication: Replication::Idle(Box::new(stream)),
            snapshot,
            relations: HashMap::new(),
            txn: None,
            ready: VecDeque::new(),
            last_end: lsn_flushed,
            last_heartbeat: Instant::now(),
            handled_through: from_stored.map_or(0, handled_through),
            emitted: from_stored.map_or(Position::default(), emitted_through),
            stored_lsn: if fresh_slot { 0 } else { lsn_flushed },
            replays_skipped: 0,
            unstored: None,
            returned: None,
            confirmed_idle: 0,
            last_commit_ms: None,
            lag: crate::lag::SourceLag::new(&context.metrics, &config.slot),
            outage: None,
            incremental,
            done: false,
            config,
        })
    }

    /// PostgreSQL went away mid-snapshot: the run is dropped, to start again
    /// once the backoff allows.
    fn begin_restart(&mut self, why: String) -> Result<(), ConnectError> {
        let Some(run) = self.run.take() else {
            return Ok(());
        };
        let outage = Outage::begin(
            &run.config,
            &run.connector,
            run.task,
            &why,
            " during the snapshot",
        )?;
        self.restart = Some(Restart {
            outage,
            returned: run.returned,
            unstored: run.unstored.clone(),
        });
        Ok(())
    }

    /// Starts the task again once the backoff allows and PostgreSQL answers;
    /// true when it did. The snapshot carries on from the stored offset (or
    /// starts over when its tables changed, as after a crash), and rows the
    /// lost run returned are not returned again.
    async fn try_restart(&mut self) -> Result<bool, ConnectError> {
        let (Some(restart), Some(context)) = (self.restart.as_mut(), self.context.as_ref()) else {
            return Ok(true);
        };
        let config = CdcConfig::parse(&context.config)?;
        let now = Instant::now();
        if now < restart.outage.retry_at {
            tokio::time::sleep((restart.outage.retry_at - now).min(config.poll_interval)).await;
            if Instant::now() < restart.outage.retry_at {
                return Ok(false);
            }
        }
        let mut context = context.clone();
        if let Some(stored) = &self.stored {
            let mut partition = SourcePartition::new();
            partition.insert("server".into(), json!(config.prefix));
            context.offsets = vec![(partition, stored.clone())];
        }
        let why = match Self::start_run(&context).await {
            Ok(mut run) => {
                if let Some(snap) = run.snapshot.as_mut() {
                    if let Some(p) = restart.returned {
                        // The same snapshot (same consistent point) numbers
                        // its rows as before.
                        if p.major == snap.consistent_point.saturating_sub(1) {
                            snap.sent = snap.sent.max(p.minor);
                        }
                    }
                }
                run.unstored = restart.unstored.take();
                run.returned = restart.returned;
                info!(
                    connector = %run.connector,
                    task = run.task,
                    down_ms = restart.outage.since.elapsed().as_millis() as u64,
                    attempts = restart.outage.backoff.attempts(),
                    "reconnected to PostgreSQL; the task started again"
                );
                self.run = Some(run);
                self.restart = None;
                return Ok(true);
            }
            // Only an unreachable PostgreSQL is worth waiting for; any other
            // failure to start is the task's to report.
            Err(e) => match database::connect(&config).await {
                Ok(_) => return Err(e),
                Err(_) => e.to_string(),
            },
        };
        let attempt = restart.outage.backoff.attempts();
        let Some(delay) = restart.outage.backoff.next_delay() else {
            return Err(ConnectError::fatal(format!(
                "PostgreSQL unreachable for {} s; gave up after {attempt} reconnect attempts (errors.max.retries): {why}",
                restart.outage.since.elapsed().as_secs()
            )));
        };
        restart.outage.retry_at = Instant::now() + delay;
        warn!(
            connector = %context.connector,
            task = context.task_id,
            attempt,
            down_ms = restart.outage.since.elapsed().as_millis() as u64,
            retry_in_ms = delay.as_millis() as u64,
            reason = %why,
            "cannot reconnect to PostgreSQL yet; retrying"
        );
        Ok(false)
    }
}

#[async_trait]
impl SourceTask for CdcTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        self.run = Some(Self::start_run(&context).await?);
        self.context = Some(context);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<Record>, ConnectError> {
        if self.restart.is_some() && !self.try_restart().await? {
            return Ok(Vec::new());
        }
        let run = self
            .run
            .as_mut()
            .ok_or_else(|| ConnectError::fatal("poll before start"))?;
        let mut batch = match run.poll().await {
            Ok(batch) => batch,
            // The snapshot's transaction went with the connection.
            Err(e) if run.snapshot.is_some() && run.sql.is_closed() => {
                self.begin_restart(e.to_string())?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        if let Some(s) = batch.last().and_then(|r| r.source.as_ref()) {
            run.unstored = Some(s.offset.clone());
            run.returned = s.position;
        }
        run.add_context_headers(&mut batch);
        Ok(batch)
    }

    /// Offsets are stored: PostgreSQL may now forget what they cover.
    async fn commit(
        &mut self,
        stored: &[(SourcePartition, SourceOffset)],
    ) -> Result<(), ConnectError> {
        let ours = |p: &SourcePartition| p.get("server").is_some() && p.len() == 1;
        if let Some((_, o)) = stored.iter().rev().find(|(p, _)| ours(p)) {
            self.stored = Some(o.clone());
        }
        let Some(run) = self.run.as_mut() else {
            if let (Some(r), Some(o)) = (self.restart.as_mut(), &self.stored) {
                if r.unstored.as_ref() == Some(o) {
                    r.unstored = None;
                }
            }
            return Ok(());
        };
        for (partition, offset) in stored {
            if *partition != *run.partition {
                continue;
            }
            if run.unstored.as_ref() == Some(offset) {
                run.unstored = None;
            }
            if let Some(lsn) = offset
                .get("lsn_flushed")
                .and_then(serde_json::Value::as_u64)
            {
                run.stored_lsn = run.stored_lsn.max(lsn);
            }
        }
        // Sent with the next feedback (after the next batch at the latest).
        if let Some(stream) = run.stream() {
            stream
                .shared_lsn_feedback
                .update_applied_lsn(run.stored_lsn);
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        if let Some(mut run) = self.run.take() {
            match std::mem::replace(&mut run.replication, Replication::Down) {
                Replication::Streaming(mut s) => {
                    // A last feedback; dropping it closes the connection.
                    if let Err(e) = s.stop().await {
                        warn!(connector = %run.connector, task = run.task, "final replication feedback failed: {e}");
                    }
                }
                Replication::Idle(_) | Replication::Down => {}
            }
            if run.config.drop_slot_on_stop {
                run.drop_slot().await;
            }
        }
        Ok(())
    }
}

impl Run {
    /// Debezium's context headers (`extended.headers.enabled`), on every
    /// change event and tombstone.
    fn add_context_headers(&self, batch: &mut [Record]) {
        if !self.config.extended_headers {
            return;
        }
        let text = |v: &str| Some(v.as_bytes().to_vec());
        let task = self.task.to_string();
        for r in batch
            .iter_mut()
            .filter(|r| *r.topic != *self.config.heartbeat_topic)
        {
            r.headers.push(
                "__debezium.context.connectorLogicalName",
                text(&self.config.prefix),
            );
            r.headers.push("__debezium.context.taskId", text(&task));
            r.headers.push(
                "__debezium.context.connectorName",
                text(crate::envelope::CONNECTOR),
            );
            r.headers
                .push("__debezium.context.runId", text(&self.run_id));
        }
    }

    fn offset(&self, fields: serde_json::Value) -> SourceOffset {
        match fields {
            serde_json::Value::Object(m) => m,
            _ => SourceOffset::new(),
        }
    }

    fn attach(&self, record: &mut Record, position: Position, offset: SourceOffset) {
        record.source = Some(SourceRef {
            partition: self.partition.clone(),
            offset,
            position: Some(position),
        });
    }

    async fn snapshot_chunk(&mut self) -> Result<Vec<Record>, ConnectError> {
        let mut out = Vec::new();
        loop {
            let Some(snap) = self.snapshot.as_mut() else {
                return Ok(out);
            };
            let table = match &snap.current {
                Some(t) => t.clone(),
                None => match snap.open_next(&self.sql, &self.config).await? {
                    Some(table) => table,
                    None => {
                        // Every table read: the held row is the last one.
                        let mut last = snap.held.take();
                        let point = snap.consistent_point;
                        self.snapshot = None;
                        // Every row is read: a connection lost now only ends
                        // a read-only transaction (streaming reconnects).
                        if let Err(e) = self.sql.batch_execute("COMMIT").await {
                            if !self.sql.is_closed() {
                                return Err(ConnectError::retriable(format!(
                                    "PostgreSQL: {}",
                                    describe(&e)
                                )));
                            }
                        }
                        if let Some(r) = last.as_mut() {
                            if let Some(s) = r.source.as_mut() {
                                s.offset.insert("snapshot_completed".into(), json!(true));
                            }
                            set_snapshot_marker(r, "last");
                            out.push(last.take().unwrap_or_default());
                        }
                        self.last_end = point;
                        info!(consistent_point = point, "snapshot completed; streaming");
                        if self.config.snapshot == SnapshotMode::InitialOnly {
                            self.done = true;
                        }
                        return Ok(out);
                    }
                },
            };
            let fetched = rows(
                &self.sql,
                &format!("FETCH {} FROM sluice_snapshot", self.config.fetch_size),
            )
            .await?;
            let ts = now_ms();
            let n = fetched.len();
            for row in fetched {
                let snap = self
                    .snapshot
                    .as_mut()
                    .ok_or_else(|| ConnectError::fatal("snapshot vanished"))?;
                snap.row += 1;
                if snap.row <= snap.sent {
                    continue;
                }
                let values = table.decode_row(row)?;
                // Debezium marks the snapshot's first row, and each later
                // table's first; the last rows are marked once known.
                let marker = if snap.opened == 1 && snap.row == snap.table_row0 + 1 {
                    "first"
                } else if snap.row == snap.table_row0 + 1 {
                    "first_in_data_collection"
                } else {
                    "true"
                };
                let origin = Origin {
                    server: &self.config.prefix,
                    db: &self.config.dbname,
                    snapshot: marker,
                    ts_ms: ts,
                    tx_id: None,
                    lsn: Some(snap.consistent_point as i64),
                };
                let mut record = table.event(Op::Read, None, Some(values), &origin, ts);
                // Just below the consistent point: the first streamed
                // transaction may commit exactly at it, and its positions must
                // rank above every snapshot row's.
                let position = Position::new(snap.consistent_point.saturating_sub(1), snap.row);
                let offset = snap.offset();
                self.attach(&mut record, position, offset);
                let snap = self
                    .snapshot
                    .as_mut()
                    .ok_or_else(|| ConnectError::fatal("snapshot vanished"))?;
                if let Some(previous) = snap.held.replace(record) {
                    out.push(previous);
                }
            }
            if n < self.config.fetch_size {
                // The held row is this table's last (the snapshot's last
                // table's last becomes "last" once no table is left). As in
                // Debezium, the snapshot's very first row stays "first".
                if let Some(snap) = self.snapshot.as_mut() {
                    let had_rows = snap.row > snap.table_row0;
                    if let Some(held) = snap.held.as_mut().filter(|_| had_rows) {
                        if snapshot_marker(held) != Some("first") {
                            set_snapshot_marker(held, "last_in_data_collection");
                        }
                    }
                }
                self.sql
                    .batch_execute("CLOSE sluice_snapshot")
                    .await
                    .map_err(|e| {
                        ConnectError::retriable(format!("PostgreSQL: {}", describe(&e)))
                    })?;
                if let Some(snap) = self.snapshot.as_mut() {
                    snap.current = None;
                }
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// One `poll`: the snapshot's next rows, or the stream's next changes,
    /// reconnecting first when PostgreSQL went away.
    async fn poll(&mut self) -> Result<Vec<Record>, ConnectError> {
        if self.snapshot.is_some() {
            return self.snapshot_chunk().await;
        }
        if self.done {
            tokio::time::sleep(self.config.poll_interval).await;
            return Ok(Vec::new());
        }
        if self.sql.is_closed() && self.outage.is_none() {
            // PostgreSQL is going away (a shutdown ends sessions before its
            // walsenders): let go of the stream too, rather than leave a
            // walsender waiting for a client that no longer reads.
            self.replication_lost("the SQL connection closed".to_owned())?;
        }
        if self.outage.is_some() && !self.reconnect().await? {
            return Ok(self.take_ready());
        }
        if matches!(self.replication, Replication::Idle(_)) {
            self.start_streaming().await?;
            if self.outage.is_some() {
                return Ok(self.take_ready());
            }
        }
        self.stream_batch().await
    }

    /// The replication stream, whether streaming yet or not.
    fn stream(&self) -> Option<&LogicalReplicationStream> {
        match &self.replication {
            Replication::Idle(s) | Replication::Streaming(s) => Some(s),
            Replication::Down => None,
        }
    }

    /// Up to a batch of the records ready.
    fn take_ready(&mut self) -> Vec<Record> {
        let n = self.ready.len().min(self.config.max_batch);
        self.ready.drain(..n).collect()
    }

    async fn start_streaming(&mut self) -> Result<(), ConnectError> {
        let Replication::Idle(mut stream) =
            std::mem::replace(&mut self.replication, Replication::Down)
        else {
            return Ok(());
        };
        // From the stored LSN when it is ahead of the slot (the server starts
        // from the slot's position when that is further on).
        let from = (self.stored_lsn > 0).then_some(self.stored_lsn);
        match stream.start(from).await {
            Ok(()) => {
                self.replication = Replication::Streaming(stream);
                info!(connector = %self.connector, task = self.task, slot = %self.config.slot, publication = %self.config.publication, "streaming changes");
                Ok(())
            }
            Err(e) if is_connection_loss(&e) => {
                self.begin_outage(format!("starting logical replication: {e}"))
            }
            Err(e) => Err(replication_error(&self.config, e)),
        }
    }

    /// PostgreSQL, or one connection to it, went away: the first reconnect is
    /// scheduled (unless `errors.max.retries` is 0, which fails the task).
    fn begin_outage(&mut self, why: String) -> Result<(), ConnectError> {
        if self.outage.is_some() {
            return Ok(());
        }
        self.outage = Some(Outage::begin(
            &self.config,
            &self.connector,
            self.task,
            &why,
            "",
        )?);
        Ok(())
    }

    /// The replication stream broke. Its open transaction is dropped: the new
    /// stream sends it again, whole.
    fn replication_lost(&mut self, why: String) -> Result<(), ConnectError> {
        self.replication = Replication::Down;
        self.txn = None;
        self.begin_outage(why)
    }

    /// Rebuilds what went away (the SQL connection, the replication stream)
    /// once the backoff allows; true when both work again. Waits at most a
    /// poll interval, so the task keeps answering a stop or a pause.
    async fn reconnect(&mut self) -> Result<bool, ConnectError> {
        let Some(retry_at) = self.outage.as_ref().map(|o| o.retry_at) else {
            return Ok(true);
        };
        let now = Instant::now();
        if now < retry_at {
            tokio::time::sleep((retry_at - now).min(self.config.poll_interval)).await;
            if Instant::now() < retry_at {
                return Ok(false);
            }
        }
        let why = match self.try_reconnect().await {
            Ok(()) => {
                if let Some(o) = self.outage.take() {
                    info!(
                        connector = %self.connector,
                        task = self.task,
                        down_ms = o.since.elapsed().as_millis() as u64,
                        attempts = o.backoff.attempts(),
                        "reconnected to PostgreSQL"
                    );
                }
                return Ok(true);
            }
            Err(Reconnect::Fatal(e)) => return Err(e),
            Err(Reconnect::Failed(why)) => why,
        };
        let Some(outage) = self.outage.as_mut() else {
            return Ok(false);
        };
        let attempt = outage.backoff.attempts();
        let Some(delay) = outage.backoff.next_delay() else {
            return Err(ConnectError::fatal(format!(
                "PostgreSQL unreachable for {} s; gave up after {attempt} reconnect attempts (errors.max.retries): {why}",
                outage.since.elapsed().as_secs()
            )));
        };
        outage.retry_at = Instant::now() + delay;
        warn!(
            connector = %self.connector,
            task = self.task,
            attempt,
            down_ms = outage.since.elapsed().as_millis() as u64,
            retry_in_ms = delay.as_millis() as u64,
            reason = %why,
            "cannot reconnect to PostgreSQL yet; retrying"
        );
        Ok(false)
    }

    async fn try_reconnect(&mut self) -> Result<(), Reconnect> {
        if self.sql.is_closed() {
            self.sql = database::connect(&self.config)
                .await
                .map_err(|e| Reconnect::Failed(e.to_string()))?;
        }
        if !matches!(self.replication, Replication::Down) {
            return Ok(());
        }
        // Streaming from a slot that is not there would create one at the end
        // of WAL, silently losing what lies between.
        let slot = rows(
            &self.sql,
            &format!(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = {}",
                literal(&self.config.slot)
            ),
        )
        .await
        .map_err(|e| Reconnect::Failed(e.to_string()))?;
        if slot.is_empty() {
            return Err(Reconnect::Fatal(config_error(format!(
                "replication slot '{}' is gone, so changes made since the stored offset are lost to it: reset this connector's offsets (DELETE /connectors/<name>/offsets) to snapshot again, or set snapshot.mode=when_needed",
                self.config.slot
            ))));
        }
        let failed = |e: ReplicationError| match e {
            // A slot gone bad (invalidated, wal_level lowered) stays bad.
            ReplicationError::ReplicationSlot(_) => {
                Reconnect::Fatal(replication_error(&self.config, e))
            }
            e => Reconnect::Failed(format!("logical replication: {e}")),
        };
        let mut stream = LogicalReplicationStream::new(
            &self.config.replication_conninfo(),
            stream_config(&self.config),
        )
        .await
        .map_err(failed)?;
        // From what is stored, never from what was only emitted: the start
        // position is also what PostgreSQL is told it may forget.
        let from = (self.stored_lsn > 0).then_some(self.stored_lsn);
        stream.start(from).await.map_err(failed)?;
        self.replication = Replication::Streaming(Box::new(stream));
        info!(connector = %self.connector, task = self.task, slot = %self.config.slot, from_lsn = self.stored_lsn, "streaming changes again");
        Ok(())
    }

    /// Receives until a batch is full or `poll.interval.ms` passes, and
    /// returns the records of the transactions that committed meanwhile.
    async fn stream_batch(&mut self) -> Result<Vec<Record>, ConnectError> {
        self.maybe_heartbeat().await?;
        if let Some(signal) = &self.config.signal {
            if !self.incremental.is_idle() && self.outage.is_none() {
                if let Err(e) = self
                    .incremental
                    .next_chunk(&self.sql, &self.config, signal)
                    .await
                {
                    if !self.sql.is_closed() {
                        return Err(e);
                    }
                    self.replication_lost(format!("reading an incremental snapshot chunk: {e}"))?;
                }
            }
        }
        if self.outage.is_some() {
            return Ok(self.take_ready());
        }
        // One timer for the whole batch: a timeout per event cost a timer
        // registration and a clock read per row.
        let deadline = tokio::time::sleep(self.config.poll_interval);
        tokio::pin!(deadline);
        // Cancelled at the deadline: the read then returns what it already
        // holds, or nothing. Dropping it instead could cut a feedback message
        // it is writing in half.
        let token = CancellationToken::new();
        while self.ready.len() < self.config.max_batch {
            let Replication::Streaming(stream) = &mut self.replication else {
                break;
            };
            let result = {
                let next = stream.next_event(&token);
                tokio::pin!(next);
                tokio::select! {
                    biased;
                    r = &mut next => r,
                    () = &mut deadline => {
                        token.cancel();
                        next.await
                    }
                }
            };
            let event = match result {
                Ok(e) => e,
                Err(e) if e.is_cancelled() => break,
                Err(e) if is_connection_loss(&e) => {
                    self.replication_lost(format!("logical replication: {e}"))?;
                    break;
                }
                Err(e) => return Err(replication_error(&self.config, e)),
            };
            let commit = matches!(event.event_type, EventType::Commit { .. });
            if let Err(e) = self.handle(event).await {
                if !self.sql.is_closed() {
                    return Err(e);
                }
                // A Relation message's catalog read: the new session sends
                // the Relation again.
                self.replication_lost(e.to_string())?;
                break;
            }
            // A chunk's window just closed: return, so the next poll reads
            // the next chunk instead of idling out the poll interval.
            if token.is_cancelled() || (commit && self.incremental.wants_chunk()) {
                break;
            }
        }
        self.confirm_progress().await;
        Ok(self.take_ready())
    }

    /// Tells PostgreSQL what it may forget: what `commit` stored and, while no
    /// transaction of ours is open and everything emitted is stored, all the
    /// WAL the server has sent (its keepalives say how far that is). An idle
    /// connector whose tables see no changes then still lets the server
    /// recycle WAL, and a shutdown (whose walsender waits until its client
    /// confirms the end of WAL) is not held up by it.
    async fn confirm_progress(&mut self) {
        let idle = self.txn.is_none() && self.ready.is_empty() && self.unstored.is_none();
        self.report_lag(idle).await;
        let Replication::Streaming(stream) = &mut self.replication else {
            return;
        };
        let passed = stream.current_lsn();
        if idle && passed > self.confirmed_idle.max(self.stored_lsn) {
            stream.shared_lsn_feedback.update_applied_lsn(passed);
            self.confirmed_idle = passed;
            // At once rather than throttled: a shutting-down server waits on it.
            if let Err(e) = stream.send_feedback().await {
                // The next read reports the connection's loss.
                tracing::debug!(connector = %self.connector, task = self.task, "feedback failed: {e}");
            }
            return;
        }
        stream.maybe_send_feedback().await;
    }

    /// The lag metrics: seconds behind (0 when `idle`), and every few seconds
    /// the slot's retained WAL as the server counts it.
    async fn report_lag(&mut self, idle: bool) {
        let pending = match &self.txn {
            Some(t) => Some(t.commit_ms),
            None if idle => None,
            None => self.last_commit_ms,
        };
        self.lag.behind(pending, now_ms());
        if !self.lag.probe_due() || self.sql.is_closed() {
            return;
        }
        let query = format!(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::text FROM pg_replication_slots WHERE slot_name = {}",
            literal(&self.config.slot)
        );
        match rows(&self.sql, &query).await {
            Ok(r) => {
                if let Some(bytes) = r
                    .first()
                    .and_then(|row| row.first())
                    .and_then(|v| v.as_deref())
                    .and_then(|v| v.parse::<f64>().ok())
                {
                    self.lag.slot_lag(bytes);
                }
            }
            // A standby has no current WAL position; the gauge stays as it was.
            Err(e) => {
                tracing::debug!(connector = %self.connector, task = self.task, "cannot read the slot's lag: {e}")
            }
        }
    }

    /// slot.drop.on.stop: the server lets go of the slot only once its
    /// walsender has noticed the connection closed, so wait (a while) for that.
    async fn drop_slot(&mut self) {
        let slot = self.config.slot.clone();
        if self.sql.is_closed() {
            match database::connect(&self.config).await {
                Ok(c) => self.sql = c,
                Err(e) => {
                    error!(connector = %self.connector, task = self.task, slot = %slot, "cannot drop the replication slot (slot.drop.on.stop): {e}");
                    return;
                }
            }
        }
        let active = format!(
            "SELECT active::text FROM pg_replication_slots WHERE slot_name = {}",
            literal(&slot)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match rows(&self.sql, &active).await {
                Ok(r) if r.is_empty() => return,
                Ok(r) if r[0][0].as_deref() == Some("false") => break,
                Ok(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(_) => {
                    error!(connector = %self.connector, task = self.task, slot = %slot, "cannot drop the replication slot (slot.drop.on.stop): still in use 10 s after the stream closed");
                    return;
                }
                Err(e) => {
                    error!(connector = %self.connector, task = self.task, slot = %slot, "cannot drop the replication slot (slot.drop.on.stop): {e}");
                    return;
                }
            }
        }
        match rows(
            &self.sql,
            &format!("SELECT pg_drop_replication_slot({})", literal(&slot)),
        )
        .await
        {
            Ok(_) => {
                info!(connector = %self.connector, task = self.task, slot = %slot, "replication slot dropped (slot.drop.on.stop)")
            }
            Err(e) => {
                error!(connector = %self.connector, task = self.task, slot = %slot, "cannot drop the replication slot (slot.drop.on.stop): {e}")
            }
        }
    }

    /// Every `heartbeat.interval.ms`: runs `heartbeat.action.query` (whose
    /// change to a captured table moves the slot on when the other captured
    /// tables are idle) and emits a heartbeat record. Its offset confirms what
    /// was emitted before it.
    async fn maybe_heartbeat(&mut self) -> Result<(), ConnectError> {
        let Some(every) = self.config.heartbeat else {
            return Ok(());
        };
        if self.last_heartbeat.elapsed() < every {
            return Ok(());
        }
        self.last_heartbeat = Instant::now();
        if !self.config.heartbeat_query.is_empty() {
            if let Err(e) = self.sql.batch_execute(&self.config.heartbeat_query).await {
                if self.sql.is_closed() {
                    return self
                        .replication_lost(format!("heartbeat.action.query: {}", describe(&e)));
                }
                warn!(connector = %self.connector, task = self.task, "heartbeat.action.query failed: {}", describe(&e));
            }
        }
        if self.txn.is_some() || !self.ready.is_empty() {
            return Ok(());
        }
        let mut record =
            crate::envelope::heartbeat(&self.config.heartbeat_topic, &self.config.prefix, now_ms());
        let mut offset = self.offset(json!({
            "lsn": self.last_end, "lsn_flushed": self.last_end, "heartbeat": true
        }));
        if let Some(p) = self.incremental.progress() {
            offset.insert(INCREMENTAL_KEY.into(), p);
        }
        let position = Position::new(self.last_end, 0);
        self.attach(&mut record, position, offset);
        self.emitted = self.emitted.max(position);
        self.ready.push_back(record);
        Ok(())
    }

    async fn handle(&mut self, event: pg_walstream::ChangeEvent) -> Result<(), ConnectError> {
        match event.event_type {
            EventType::Relation {
                relation_id,
                namespace,
                relation_name,
                columns,
                ..
            } => {
                let table = relation_table(
                    &self.sql,
                    &self.config,
                    &namespace,
                    &relation_name,
                    &columns,
                )
                .await?;
                self.relations.insert(relation_id, Arc::new(table));
            }
            EventType::Begin {
                transaction_id,
                final_lsn,
                commit_timestamp,
            } => {
                // `final_lsn` is the commit's LSN, the first part of each of
                // its records' positions.
                let emitted_to = match final_lsn.0.cmp(&self.emitted.major) {
                    std::cmp::Ordering::Less => u64::MAX,
                    std::cmp::Ordering::Equal => self.emitted.minor,
                    std::cmp::Ordering::Greater => 0,
                };
                if emitted_to > 0 {
                    self.replays_skipped += 1;
                } else if self.replays_skipped > 0 {
                    info!(
                        connector = %self.connector,
                        task = self.task,
                        transactions = self.replays_skipped,
                        "skipped transactions sent again that were already emitted"
                    );
                    self.replays_skipped = 0;
                }
                // A Begin while one is open means the stream reconnected and
                // replays the transaction whole: drop the partial one.
                self.txn = Some(Txn {
                    xid: transaction_id,
                    commit_ms: commit_timestamp.timestamp_millis(),
                    seen_ms: now_ms(),
                    replayed: final_lsn.0 <= self.handled_through,
                    emitted_to,
                    records: Vec::new(),
                });
            }
            EventType::Commit {
                commit_lsn,
                end_lsn,
                ..
            } => {
                if let Some(t) = &self.txn {
                    self.last_commit_ms = Some(t.commit_ms);
                }
                self.commit_txn(commit_lsn.0, end_lsn.0)
            }
            // Emitted whole before (the stream resumed from behind the last
            // emitted position): nothing to decode.
            _ if self.txn.as_ref().is_some_and(|t| t.emitted_to == u64::MAX) => {}
            EventType::Insert {
                relation_oid, data, ..
            } => {
                let table = self.table(relation_oid)?;
                let after = self.row(&table, &data, None)?;
                if self.is_signal(&table) {
                    // The slot is confirmed after the offsets are stored, so a
                    // restart may receive signals the stored incremental
                    // progress already reflects: acting again would queue a
                    // finished snapshot anew.
                    if self.txn.as_ref().is_some_and(|t| t.replayed) {
                        return Ok(());
                    }
                    return self.on_signal(&table, &after, event.lsn.0);
                }
                if !table.captured {
                    return Ok(());
                }
                self.incremental.changed(&table, &after, self.xid());
                self.push(&table, Op::Create, None, Some(after), event.lsn.0)?;
            }
            EventType::Update {
                relation_oid,
                old_data,
                new_data,
                replica_identity,
                ..
            } => {
                let table = self.table(relation_oid)?;
                if !table.captured {
                    return Ok(());
                }
                let before = match &old_data {
                    Some(old) => Some(self.row(&table, old, None)?),
                    None => None,
                };
                let after = self.row(&table, &new_data, before.as_deref())?;
                self.incremental.changed(&table, &after, self.xid());
                match before {
                    Some(mut before)
                        if table.key_schema.is_some()
                            && table.key_of(&before) != table.key_of(&after) =>
                    {
                        self.incremental.changed(&table, &before, self.xid());
                        fill_required(&table, &mut before, &replica_identity);
                        self.push_key_change(&table, before, after, event.lsn.0)?;
                    }
                    before => self.push(&table, Op::Update, before, Some(after), event.lsn.0)?,
                }
            }
            EventType::Delete {
                relation_oid,
                old_data,
                replica_identity,
                ..
            } => {
                let table = self.table(relation_oid)?;
                if !table.captured {
                    return Ok(());
                }
                let mut before = self.row(&table, &old_data, None)?;
                self.incremental.changed(&table, &before, self.xid());
                fill_required(&table, &mut before, &replica_identity);
                self.push(&table, Op::Delete, Some(before), None, event.lsn.0)?;
            }
            EventType::Truncate { tables, .. } => {
                let truncated: Vec<Arc<Table>> = self
                    .relations
                    .values()
                    .filter(|t| {
                        t.captured
                            && tables
                                .iter()
                                .any(|n| **n == *format!("{}.{}", t.schema, t.name))
                    })
                    .cloned()
                    .collect();
                for table in truncated {
                    self.push(&table, Op::Truncate, None, None, event.lsn.0)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn is_signal(&self, table: &Table) -> bool {
        self.config
            .signal
            .as_ref()
            .is_some_and(|(s, t)| *s == table.schema && *t == table.name)
    }

    /// A row inserted into the signal table; a window's close emits the rows
    /// of its chunk, in the close's transaction.
    fn on_signal(&mut self, table: &Table, row: &[Value], lsn: u64) -> Result<(), ConnectError> {
        let text = |name: &str| {
            table
                .columns
                .iter()
                .position(|c| c.name == name)
                .and_then(|i| row.get(i))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        if let Signalled::Close(chunk, rows) =
            self.incremental
                .signal(&text("id"), &text("type"), &text("data"))
        {
            for r in rows {
                self.push(&chunk, Op::Read, None, Some(r), lsn)?;
            }
        }
        Ok(())
    }

    fn table(&self, relation: u32) -> Result<Arc<Table>, ConnectError> {
        self.relations.get(&relation).cloned().ok_or_else(|| {
            ConnectError::fatal(format!(
                "a change to relation {relation} arrived before its Relation message"
            ))
        })
    }

    /// A tuple as Connect values. A column pgoutput left out is an unchanged
    /// TOAST value: the old row's value when known, else Debezium's placeholder.
    fn row(
        &self,
        table: &Table,
        data: &RowData,
        old: Option<&[Value]>,
    ) -> Result<Vec<Value>, ConnectError> {
        // Both the tuple and the model list columns in the table's order, each
        // leaving some out (unchanged TOAST values; excluded columns), so one
        // walk matches them, usually at the first comparison. (A map by name
        // cost a hash of every column name of every row.)
        let mut slots: Vec<Option<&ColumnValue>> = vec![None; table.columns.len()];
        let mut next = 0;
        for (name, value) in data.iter() {
            let rest = table.columns.get(next..).unwrap_or_default();
            if let Some(k) = rest.iter().position(|c| *c.name == **name) {
                slots[next + k] = Some(value);
                next += k + 1;
            }
        }
        table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| match slots[i] {
                Some(ColumnValue::Null) => Ok(Value::Null),
                Some(v) => c.decode(std::str::from_utf8(v.as_bytes()).ok()),
                None => Ok(match old.and_then(|o| o.get(i)) {
                    Some(v) if !v.is_null() => v.clone(),
                    _ if c.ty.takes_placeholder() => c.ty.placeholder(&self.config.placeholder),
                    _ => Value::Null,
                }),
            })
            .collect()
    }

    fn push(
        &mut self,
        table: &Table,
        op: Op,
        before: Option<Vec<Value>>,
        after: Option<Vec<Value>>,
        lsn: u64,
    ) -> Result<(), ConnectError> {
        if self.config.skipped.iter().any(|s| s == op.code()) {
            return Ok(());
        }
        let Some(txn) = self.txn.as_mut() else {
            return Err(ConnectError::fatal(
                "a change arrived outside a transaction",
            ));
        };
        let origin = Origin {
            server: &self.config.prefix,
            db: &self.config.dbname,
            // Reads amid the stream are an incremental snapshot's.
            snapshot: if op == Op::Read {
                "incremental"
            } else {
                "false"
            },
            ts_ms: txn.commit_ms,
            tx_id: Some(i64::from(txn.xid)),
            lsn: Some(lsn as i64),
        };
        let ts = txn.seen_ms;
        let tombstone = (op == Op::Delete && self.config.tombstones)
            .then(|| before.as_deref().map(|b| table.tombstone(b, ts)))
            .flatten();
        let mut event = table.event(op, before, after, &origin, ts);
        event
            .headers
            .push(CHANGE_LSN_HEADER, Some(lsn.to_string().into_bytes()));
        txn.records.push(event);
        if let Some(mut t) = tombstone {
            t.headers
                .push(CHANGE_LSN_HEADER, Some(lsn.to_string().into_bytes()));
            txn.records.push(t);
        }
        Ok(())
    }

    /// An update that changed the primary key, as Debezium emits it: a delete
    /// of the old key and its tombstone, both carrying header `__debezium.newkey`,
    /// then a create of the new key carrying `__debezium.oldkey`. A consumer
    /// keyed by the primary key then forgets the old row.
    fn push_key_change(
        &mut self,
        table: &Table,
        before: Vec<Value>,
        after: Vec<Value>,
        lsn: u64,
    ) -> Result<(), ConnectError> {
        let key_json = |row: &[Value]| {
            let key = table.key_of(row);
            serde_json::to_vec(&sluice_api::json::JsonView::new(
                table.key_schema.as_deref(),
                &key,
            ))
            .ok()
        };
        let (old_key, new_key) = (key_json(&before), key_json(&after));
        let at = self.pending();
        self.push(table, Op::Delete, Some(before), None, lsn)?;
        // The delete's tombstone carries it too, as Debezium's does.
        for i in at..self.pending() {
            self.add_header(i, "__debezium.newkey", new_key.clone());
        }
        let at = self.pending();
        self.push(table, Op::Create, None, Some(after), lsn)?;
        self.add_header(at, "__debezium.oldkey", old_key);
        Ok(())
    }

    /// The transaction being received (0 outside one, which pgoutput never
    /// sends a change in).
    fn xid(&self) -> u32 {
        self.txn.as_ref().map_or(0, |t| t.xid)
    }

    /// How many records the open transaction holds: the index of the next.
    fn pending(&self) -> usize {
        self.txn.as_ref().map_or(0, |t| t.records.len())
    }

    /// Adds a header to the open transaction's record at `index`, if `push`
    /// emitted one there (a skipped operation emits none).
    fn add_header(&mut self, index: usize, name: &'static str, value: Option<Vec<u8>>) {
        if let Some(r) = self.txn.as_mut().and_then(|t| t.records.get_mut(index)) {
            r.headers.push(name, value);
        }
    }

    fn commit_txn(&mut self, commit_lsn: u64, end_lsn: u64) {
        let Some(txn) = self.txn.take() else {
            return;
        };
        self.handled_through = self.handled_through.max(commit_lsn);
        let n = txn.records.len();
        let previous = self.last_end;
        let progress = self.incremental.progress();
        for (i, mut record) in txn.records.into_iter().enumerate() {
            let seq = i as u64 + 1;
            // Emitted before this stream began (stored, or sent before a
            // reconnect): the runtime's resume scan may not see it.
            if seq <= txn.emitted_to {
                continue;
            }
            let last = i + 1 == n;
            // Only the last record of a transaction lets PostgreSQL forget it.
            let flushed = if last { end_lsn } else { previous };
            let mut offset = self.offset(json!({
                "lsn": commit_lsn, "lsn_commit": commit_lsn, "txId": txn.xid,
                "seq": seq, "lsn_flushed": flushed
            }));
            if let Some(p) = &progress {
                offset.insert(INCREMENTAL_KEY.into(), p.clone());
            }
            let position = Position::new(commit_lsn, seq);
            self.attach(&mut record, position, offset);
            self.emitted = position;
            self.ready.push_back(record);
        }
        if n > 0 {
            self.last_end = self.last_end.max(end_lsn);
        }
    }
}

fn snapshot_marker(record: &Record) -> Option<&str> {
    match &record.value {
        Value::Struct(fields) => match fields.get(2) {
            Some(Value::Struct(source)) => source.get(4).and_then(Value::as_str),
            _ => None,
        },
        _ => None,
    }
}

fn set_snapshot_marker(record: &mut Record, marker: &'static str) {
    if let Value::Struct(fields) = &mut record.value {
        if let Some(Value::Struct(source)) = fields.get_mut(2) {
            if let Some(slot) = source.get_mut(4) {
                *slot = Value::String(marker.into());
            }
        }
    }
}

/// A streamed table's model: columns and types as the Relation message says,
/// nullability, domains, enums and the primary key from the catalog.
async fn relation_table(
    sql: &Client,
    config: &CdcConfig,
    schema: &str,
    name: &str,
    columns: &[RelationColumn],
) -> Result<Table, ConnectError> {
    let catalog = match database::catalog(sql, schema, name).await {
        Ok(c) => c,
        // PostgreSQL went away: the caller reconnects, and the new stream
        // sends the Relation again.
        Err(e) if sql.is_closed() => return Err(e),
        Err(e) => {
            warn!(table = %format!("{schema}.{name}"), "cannot read the catalog ({e}); columns are typed from the Relation message alone");
            database::Catalog::default()
        }
    };
    // The key is the primary key, as in the snapshot. The Relation message
    // flags the replica identity instead, which under REPLICA IDENTITY FULL is
    // every column; it is used only when the catalog could not be read.
    let read = !catalog.columns.is_empty();
    let is_key = |c: &RelationColumn| {
        if read {
            catalog.keys.iter().any(|k| *k == *c.name)
        } else {
            c.is_key
        }
    };
    let columns = columns
        .iter()
        .filter(|c| is_key(c) || config.keeps_column(schema, name, &c.name))
        .map(|c| {
            let known = catalog.columns.get(&*c.name);
            let ty = match known {
                Some((_, t)) if t.oid == c.type_id || !t.enum_labels.is_empty() => t.clone(),
                Some((_, t)) if c.type_id >= 16384 => t.clone(),
                _ => ColumnType::new(c.type_id, c.type_modifier),
            };
            Column {
                name: c.name.to_string(),
                ty,
                key: is_key(c),
                optional: !known.is_some_and(|(not_null, _)| *not_null),
            }
        })
        .collect();
    let mut table = config.table(schema, name, columns);
    table.captured = config.captures(schema, name);
    Ok(table)
}

/// A random id in a UUID's form, new for each start (std's hasher keys are
/// random per process and differ per instance).
fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    };
    let hex = format!("{:016x}{:016x}", half(), half());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
