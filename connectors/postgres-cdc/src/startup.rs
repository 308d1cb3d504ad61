//! Starting a session: the checks, then the decision whether to snapshot, carry
//! an interrupted snapshot on, or stream, and from where.
//!
//! The decision is pure ([`wants_snapshot`], [`resume`]): it depends only on
//! the stored offset, the slot's state and `snapshot.mode`, and is unit-tested
//! below. [`Session::start`] gathers those inputs from PostgreSQL and carries the
//! decision out.
//!
//! An exported snapshot comes only with a new slot, so snapshotting from
//! scratch drops the slot and creates it again; an interrupted snapshot whose
//! tables did not change carries on from the stored offset in the old slot.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use pg_walstream::{LogicalReplicationStream, ReplicationSlotOptions};
use serde_json::json;
use sluice_api::{ConnectError, Position, SourceOffset, SourcePartition, SourceTaskContext};
use tokio_postgres::Client;
use tracing::info;

use crate::config::{CdcConfig, SnapshotMode};
use crate::database::{self, config_error, describe, ident, literal, rows};
use crate::incremental::Incremental;
use crate::positions::{self, INCREMENTAL_KEY};
use crate::session::{run_id, Replication, Session};
use crate::snapshot::{Interrupted, Snapshot};
use crate::stream::{replication_error, stream_config};

/// Whether a stored offset says the initial snapshot is behind it: an offset
/// from streaming, or the snapshot's last row.
pub fn snapshot_done(stored: Option<&SourceOffset>) -> bool {
    stored.is_some_and(|o| {
        o.get("snapshot") != Some(&json!(true)) || o.get("snapshot_completed") == Some(&json!(true))
    })
}

/// Whether this start reads a snapshot, by `snapshot.mode`. A stored offset
/// whose slot is gone, with no snapshot to make up for it, is an error: the
/// changes made since are lost to the new slot.
pub fn wants_snapshot(
    mode: SnapshotMode,
    stored: Option<&SourceOffset>,
    slot_exists: bool,
    slot: &str,
) -> Result<bool, ConnectError> {
    let done = snapshot_done(stored);
    let wanted = match mode {
        SnapshotMode::NoData => false,
        SnapshotMode::Always => true,
        SnapshotMode::Initial | SnapshotMode::InitialOnly => !done,
        SnapshotMode::WhenNeeded => !done || !slot_exists,
    };
    if stored.is_some() && !slot_exists && !wanted {
        return Err(config_error(format!(
            "replication slot '{slot}' is gone, so changes made since the stored offset are lost to it: reset this connector's offsets (DELETE /connectors/<name>/offsets) to snapshot again, or set snapshot.mode=always"
        )));
    }
    Ok(wanted)
}

/// Where streaming resumes, from the stored offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The end LSN of the last transaction wholly emitted.
    pub last_end: u64,
    /// What PostgreSQL may forget, and where a (re)built stream starts.
    pub stored_lsn: u64,
    /// Transactions committed at or below this had their signals acted on.
    pub handled_through: u64,
    /// A change at or below this position is never emitted again.
    pub emitted: Position,
    /// The slot lags the stored offset (PostgreSQL hears of an offset only
    /// after it is written): streaming starts from the stored LSN.
    pub slot_behind: bool,
}

/// Where a session resumes. A new slot (`fresh_slot`) starts a new history that
/// nothing stored refers to.
pub fn resume(stored: Option<&SourceOffset>, fresh_slot: bool, slot_lsn: u64) -> Resume {
    let last_end = stored.map_or(0, positions::flushed);
    let from_stored = stored.filter(|_| !fresh_slot);
    Resume {
        last_end,
        stored_lsn: if fresh_slot { 0 } else { last_end },
        handled_through: from_stored.map_or(0, positions::handled_through),
        emitted: from_stored.map_or(Position::default(), positions::emitted_through),
        slot_behind: from_stored.is_some() && last_end > slot_lsn,
    }
}

/// The slot's confirmed position, if the slot exists.
async fn confirmed_flush(sql: &Client, slot: &str) -> Result<Option<u64>, ConnectError> {
    let found = rows(
        sql,
        &format!(
            "SELECT (confirmed_flush_lsn - '0/0')::text FROM pg_replication_slots WHERE slot_name = {}",
            literal(slot)
        ),
    )
    .await?;
    Ok(found.first().map(|r| {
        r.first()
            .and_then(Option::as_deref)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    }))
}

/// A table without a primary key must have REPLICA IDENTITY FULL, or its
/// updates and deletes cannot be told apart.
async fn check_replica_identity(
    sql: &Client,
    tables: &[(String, String)],
) -> Result<(), ConnectError> {
    for (schema, table) in tables {
        let catalog = database::catalog(sql, schema, table).await?;
        if !catalog.keys.is_empty() {
            continue;
        }
        let full = rows(
            sql,
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
    Ok(())
}

/// An interrupted snapshot carried on in the existing slot, if it can be;
/// otherwise the slot is dropped, to be created again with a snapshot.
async fn carry_on_or_drop_slot(
    sql: &Client,
    config: &CdcConfig,
    tables: &[(String, String)],
    stored: Option<&SourceOffset>,
) -> Result<Option<Snapshot>, ConnectError> {
    let at = match stored {
        Some(offset) => Interrupted::from_offset(offset),
        None => Interrupted::from_start(tables),
    };
    if let Some(at) = at {
        if let Some(snapshot) = crate::snapshot::resume(sql, config, tables, &at).await? {
            return Ok(Some(snapshot));
        }
    }
    info!(slot = %config.slot, "dropping the replication slot to snapshot consistently from a new one");
    rows(
        sql,
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
    Ok(None)
}

/// Imports the new slot's exported snapshot into the SQL session, which then
/// reads the tables as they were at the slot's consistent point.
async fn begin_snapshot(
    sql: &Client,
    config: &CdcConfig,
    stream: &LogicalReplicationStream,
    tables: Vec<(String, String)>,
) -> Result<Snapshot, ConnectError> {
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
    .map_err(|e| ConnectError::fatal(format!("cannot import the snapshot: {}", describe(&e))))?;
    let consistent_point = confirmed_flush(sql, &config.slot).await?.unwrap_or(0);
    info!(slot = %config.slot, snapshot = %name, consistent_point, tables = tables.len(), "snapshot started");
    Ok(Snapshot::new(consistent_point, tables))
}

impl Session {
    /// Connects, checks, and decides whether to snapshot, carry an interrupted
    /// snapshot on, or stream (see the module's documentation).
    pub async fn start(context: &SourceTaskContext) -> Result<Session, ConnectError> {
        let config = CdcConfig::parse(&context.config)?;
        let sql = database::connect(&config).await?;
        database::check_prerequisites(&sql, &config).await?;
        let tables = database::captured_tables(&sql, &config).await?;
        check_replica_identity(&sql, &tables).await?;
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
        let slot_lsn = confirmed_flush(&sql, &config.slot).await?;
        let snapshot_wanted = wants_snapshot(
            config.snapshot,
            stored.as_ref(),
            slot_lsn.is_some(),
            &config.slot,
        )?;
        let mut snapshot = None;
        if snapshot_wanted && slot_lsn.is_some() {
            snapshot = carry_on_or_drop_slot(&sql, &config, &tables, stored.as_ref()).await?;
        }

        let fresh_slot = snapshot_wanted && snapshot.is_none();
        let mut builder = stream_config(&config);
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
        if fresh_slot {
            snapshot = Some(begin_snapshot(&sql, &config, &stream, tables).await?);
        }
        let mut incremental = Incremental::default();
        if snapshot.is_none() {
            if let Some(p) = stored.as_ref().and_then(|o| o.get(INCREMENTAL_KEY)) {
                incremental.restore(p);
            }
        }
        let resume = resume(stored.as_ref(), fresh_slot, slot_lsn.unwrap_or(0));
        if resume.slot_behind {
            info!(
                connector = %context.connector,
                task = context.task_id,
                slot_lsn = slot_lsn.unwrap_or(0),
                stored_lsn = resume.stored_lsn,
                "the slot is behind the stored offset; streaming from the stored offset"
            );
        }
        Ok(Session {
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
            last_end: resume.last_end,
            last_heartbeat: Instant::now(),
            handled_through: resume.handled_through,
            emitted: resume.emitted,
            stored_lsn: resume.stored_lsn,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(v: serde_json::Value) -> SourceOffset {
        positions::offset_of(v)
    }

    fn streamed() -> SourceOffset {
        offset(json!({"lsn": 500, "lsn_commit": 500, "txId": 7, "seq": 2, "lsn_flushed": 400}))
    }

    fn mid_snapshot() -> SourceOffset {
        offset(json!({"lsn": 300, "snapshot": true, "row": 10, "table": "public.t"}))
    }

    #[test]
    fn a_snapshot_is_done_once_streaming_or_its_last_row_is_stored() {
        assert!(!snapshot_done(None));
        assert!(snapshot_done(Some(&streamed())));
        assert!(!snapshot_done(Some(&mid_snapshot())));
        let mut last = mid_snapshot();
        last.insert("snapshot_completed".into(), json!(true));
        assert!(snapshot_done(Some(&last)));
    }

    #[test]
    fn each_snapshot_mode_decides_as_debezium_does() {
        use SnapshotMode::*;
        let (streamed, mid) = (streamed(), mid_snapshot());
        let s = Some(&streamed);
        let want = |mode, stored, slot| wants_snapshot(mode, stored, slot, "slot").ok();
        assert_eq!(want(Initial, None, false), Some(true));
        assert_eq!(want(Initial, s, true), Some(false));
        assert_eq!(want(Initial, Some(&mid), true), Some(true));
        assert_eq!(want(InitialOnly, None, true), Some(true));
        assert_eq!(want(NoData, None, false), Some(false));
        assert_eq!(want(Always, s, true), Some(true));
        assert_eq!(want(WhenNeeded, s, true), Some(false));
        assert_eq!(want(WhenNeeded, s, false), Some(true));
    }

    #[test]
    fn a_lost_slot_with_a_stored_offset_and_no_snapshot_fails_naming_the_slot() {
        let stored = streamed();
        let err = wants_snapshot(SnapshotMode::Initial, Some(&stored), false, "sluice_slot")
            .expect_err("the slot's changes are lost");
        assert!(err.to_string().contains("'sluice_slot' is gone"), "{err}");
        // Nothing stored: nothing was lost.
        assert_eq!(
            wants_snapshot(SnapshotMode::NoData, None, false, "s").ok(),
            Some(false)
        );
    }

    #[test]
    fn streaming_resumes_after_the_stored_record() {
        let r = resume(Some(&streamed()), false, 450);
        assert_eq!(r.last_end, 400);
        assert_eq!(r.stored_lsn, 400);
        assert_eq!(r.handled_through, 500);
        assert_eq!(r.emitted, Position::new(500, 2));
        assert!(!r.slot_behind);
        assert!(resume(Some(&streamed()), false, 350).slot_behind);
    }

    #[test]
    fn a_new_slot_forgets_what_was_stored_for_the_old_one() {
        let r = resume(Some(&streamed()), true, 0);
        assert_eq!(r.stored_lsn, 0);
        assert_eq!(r.handled_through, 0);
        assert_eq!(r.emitted, Position::default());
        assert!(!r.slot_behind);
        assert_eq!(resume(None, false, 0), resume(None, true, 0));
    }
}
