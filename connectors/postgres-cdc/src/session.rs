//! A session of the task (one start): what it holds between polls, and `poll` itself, which
//! reads the snapshot's next rows or the stream's next changes. The pieces
//! live beside it: `startup.rs` builds a session, `snapshot_rows.rs` reads the
//! snapshot, `stream.rs` keeps the replication stream (and rebuilds it),
//! `changes.rs` turns pgoutput messages into records, `positions.rs` says
//! where each record stands.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use pg_walstream::LogicalReplicationStream;
use sluice_api::{ConnectError, Position, Record, SourceOffset, SourcePartition, SourceRef};
use tokio_postgres::Client;
use tracing::warn;

use crate::config::CdcConfig;
use crate::database::describe;
use crate::envelope::Table;
use crate::incremental::Incremental;
use crate::positions;
use crate::snapshot::Snapshot;
use crate::stream::Outage;

/// One start of the task: its connections, where it stands, and what it
/// holds to emit. Rebuilt whole when PostgreSQL goes away mid-snapshot.
pub struct Session {
    pub config: CdcConfig,
    /// For the logs.
    pub connector: String,
    pub task: u32,
    /// This start's id, in Debezium's `__debezium.context.runId` header.
    pub run_id: String,
    pub sql: Client,
    pub partition: Arc<SourcePartition>,
    pub replication: Replication,
    pub snapshot: Option<Snapshot>,
    /// Streamed tables by relation id, from Relation messages.
    pub relations: HashMap<u32, Arc<Table>>,
    /// The transaction being received.
    pub txn: Option<Txn>,
    /// Records of committed transactions, waiting to be returned by `poll`.
    pub ready: VecDeque<Record>,
    /// The end LSN of the last transaction wholly emitted.
    pub last_end: u64,
    pub last_heartbeat: Instant,
    /// Transactions committed at or below this were handled (their signals
    /// acted on): before the stored offset was written (from its
    /// `lsn_commit`), or by this task before its stream was rebuilt.
    pub handled_through: u64,
    /// The position of the last streamed record emitted (stored, at start): a
    /// change at or below it is never emitted again, whatever the slot replays.
    pub emitted: Position,
    /// The highest `lsn_flushed` stored: where a rebuilt stream starts, and
    /// what PostgreSQL may forget.
    pub stored_lsn: u64,
    /// Transactions sent again that were emitted before, since the last
    /// report of them.
    pub replays_skipped: u64,
    /// The offset of the last record `poll` returned, until `commit` says it
    /// is stored. While it is not, the WAL passed cannot be confirmed.
    pub unstored: Option<SourceOffset>,
    /// The position of the last record `poll` returned.
    pub returned: Option<Position>,
    /// The WAL position last confirmed while idle.
    pub confirmed_idle: u64,
    /// The commit time of the transaction last handed on (ms since the epoch).
    pub last_commit_ms: Option<i64>,
    pub lag: crate::lag::SourceLag,
    /// PostgreSQL (or one connection to it) went away.
    pub outage: Option<Outage>,
    pub incremental: Incremental,
    pub done: bool,
}

pub enum Replication {
    /// Created, not streaming yet: a snapshot is being read in its exported
    /// snapshot.
    Idle(Box<LogicalReplicationStream>),
    Streaming(Box<LogicalReplicationStream>),
    /// Lost: `outage` says when to build it again.
    Down,
}

/// A transaction being received: its records wait for its Commit.
pub struct Txn {
    pub xid: u32,
    /// Its commit's LSN, which Begin announces.
    pub final_lsn: u64,
    pub commit_ms: i64,
    /// When its Begin arrived: the events' `ts_ms`, read once per transaction
    /// rather than once per row (the clock showed in profiles).
    pub seen_ms: i64,
    /// Received again after a restart, its signals already acted on.
    pub replayed: bool,
    /// Its records numbered up to this were emitted before (a stream resumed
    /// from behind the last emitted position); `u64::MAX`: all of them, so its
    /// changes are not even decoded.
    pub emitted_to: u64,
    /// Its records not yet handed on to `poll`.
    pub records: Vec<Record>,
    /// How many of its records were handed on before its Commit: the index
    /// in the transaction of `records[0]`.
    pub released: usize,
}

impl Session {
    /// Debezium's context headers (`extended.headers.enabled`), on every
    /// change event and tombstone.
    pub fn add_context_headers(&self, batch: &mut [Record]) {
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

    pub fn attach(&self, record: &mut Record, position: Position, offset: SourceOffset) {
        record.source = Some(SourceRef {
            partition: self.partition.clone(),
            offset,
            position: Some(position),
        });
    }

    /// One `poll`: the snapshot's next rows, or the stream's next changes,
    /// reconnecting first when PostgreSQL went away.
    pub async fn poll(&mut self) -> Result<Vec<Record>, ConnectError> {
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
    pub fn stream(&self) -> Option<&LogicalReplicationStream> {
        match &self.replication {
            Replication::Idle(s) | Replication::Streaming(s) => Some(s),
            Replication::Down => None,
        }
    }

    /// Up to a batch of the records ready.
    pub fn take_ready(&mut self) -> Vec<Record> {
        let n = self.ready.len().min(self.config.max_batch);
        self.ready.drain(..n).collect()
    }

    /// Every `heartbeat.interval.ms`: runs `heartbeat.action.query` (whose
    /// change to a captured table moves the slot on when the other captured
    /// tables are idle) and emits a heartbeat record. Its offset confirms what
    /// was emitted before it.
    pub async fn maybe_heartbeat(&mut self) -> Result<(), ConnectError> {
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
        let mut record = crate::envelope::heartbeat(
            &self.config.heartbeat_topic,
            &self.config.prefix,
            sluice_api::now_ms(),
        );
        let (position, offset) = positions::heartbeat(self.last_end, self.incremental.progress());
        self.attach(&mut record, position, offset);
        self.emitted = self.emitted.max(position);
        self.ready.push_back(record);
        Ok(())
    }
}

/// A random id in a UUID's form, new for each start (std's hasher keys are
/// random per process and differ per instance).
pub fn run_id() -> String {
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
