//! The initial snapshot: its progress, opening a table's cursor, and picking
//! an interrupted snapshot up where it stopped.
//!
//! Rows are read table by table (in name order) and, within a table, in
//! primary-key order, and numbered from 1 across the whole snapshot. A row's
//! position is (the slot's consistent point, its number), and every offset
//! names the table being read and the number its first row had.
//!
//! **Resuming.** A killed worker takes the exported snapshot with it: PostgreSQL
//! cannot read the state of the consistent point again. But when no change has
//! been committed since then to the table being read or to those after it, a
//! new snapshot shows them exactly as the old one did, so reading them again
//! in the same order gives every row the number it had. The task then reads the
//! current table again from its first row, emits only rows numbered past the
//! stored offset, and the runtime's idempotent resume skips those that were
//! already in Kafka. Streaming starts from the consistent point as before: the
//! slot was not confirmed past it while the snapshot ran.
//!
//! Whether anything changed is read from the slot itself, without consuming it
//! (`pg_logical_slot_peek_binary_changes`). When something did, the snapshot
//! starts over from a new slot, and the rows already sent are sent again.
//! Carrying on exactly then would need to know, per key, which rows reached
//! Kafka in the old state (so the stream's changes since are emitted for them
//! and not for rows read anew); the runtime knows which records it skipped as
//! replays but does not tell the task.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sluice_api::{ConnectError, Record, SourceOffset};
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::config::CdcConfig;
use crate::database::{self, describe, ident, literal, qualified, rows};
use crate::envelope::Table;

/// An initial snapshot in progress, read table by table through a cursor in
/// one repeatable-read transaction.
pub struct Snapshot {
    pub consistent_point: u64,
    pub tables: VecDeque<(String, String)>,
    pub current: Option<Arc<Table>>,
    /// The table being read, `[schema, name]`, for the offsets.
    pub current_name: serde_json::Value,
    /// The number of the row before the current table's first.
    pub table_row0: u64,
    /// The number of the last row read.
    pub row: u64,
    /// Tables opened so far: the first table's first row is the snapshot's
    /// `first`, as Debezium marks it (even when an empty table precedes it
    /// in its list, Debezium's first table is the list's first).
    pub opened: usize,
    /// Rows numbered up to this were sent before an interruption: they are
    /// read again, to number the rows after them, but not emitted.
    pub sent: u64,
    /// The last row read, held back until we know whether it is the very last
    /// (which then carries `snapshot_completed`).
    pub held: Option<Record>,
}

impl Snapshot {
    pub fn new(consistent_point: u64, tables: Vec<(String, String)>) -> Self {
        Self {
            consistent_point,
            tables: tables.into(),
            current: None,
            current_name: serde_json::Value::Null,
            table_row0: 0,
            row: 0,
            opened: 0,
            sent: 0,
            held: None,
        }
    }

    /// Opens the next table's cursor; `None` when every table is read.
    pub async fn open_next(
        &mut self,
        sql: &Client,
        config: &CdcConfig,
    ) -> Result<Option<Arc<Table>>, ConnectError> {
        let Some((schema, name)) = self.tables.pop_front() else {
            return Ok(None);
        };
        let table = open_table(sql, config, &schema, &name).await?;
        self.current = Some(table.clone());
        self.current_name = json!([schema, name]);
        self.table_row0 = self.row;
        self.opened += 1;
        Ok(Some(table))
    }

    /// The offset of the row just numbered.
    pub fn offset(&self) -> SourceOffset {
        crate::positions::offset_of(json!({
            "lsn": self.consistent_point, "snapshot": true, "last_snapshot_record": false,
            "row": self.row, "table": self.current_name, "table_row0": self.table_row0
        }))
    }
}

/// Where a stored offset says a snapshot stopped.
#[derive(Debug, PartialEq)]
pub struct Interrupted {
    /// `None`: no offset was stored, so wherever the slot is.
    consistent_point: Option<u64>,
    table: (String, String),
    table_row0: u64,
    row: u64,
}

impl Interrupted {
    /// No offset stored, but the slot is there: a worker may have died before
    /// storing its first offset, with rows already in Kafka. Reading from the
    /// first table at the slot's position gives them the same numbers. (It is
    /// also simply a snapshot consistent with the slot, whoever made it.)
    pub fn from_start(tables: &[(String, String)]) -> Option<Self> {
        Some(Self {
            consistent_point: None,
            table: tables.first()?.clone(),
            table_row0: 0,
            row: 0,
        })
    }

    /// `None` unless the offset is of a snapshot row and the snapshot did not
    /// complete.
    pub fn from_offset(offset: &SourceOffset) -> Option<Self> {
        if offset.get("snapshot") != Some(&json!(true))
            || offset.get("snapshot_completed") == Some(&json!(true))
        {
            return None;
        }
        let table = offset.get("table")?.as_array()?;
        Some(Self {
            consistent_point: Some(offset.get("lsn")?.as_u64()?),
            table: (
                table.first()?.as_str()?.to_owned(),
                table.get(1)?.as_str()?.to_owned(),
            ),
            table_row0: offset.get("table_row0")?.as_u64()?,
            row: offset.get("row")?.as_u64()?,
        })
    }
}

/// Begins the snapshot transaction and returns the snapshot to carry on with,
/// or `None` (with the transaction rolled back) when it cannot be resumed
/// exactly.
pub async fn resume(
    sql: &Client,
    config: &CdcConfig,
    tables: &[(String, String)],
    at: &Interrupted,
) -> Result<Option<Snapshot>, ConnectError> {
    let slot = rows(
        sql,
        &format!(
            "SELECT (confirmed_flush_lsn - '0/0')::text FROM pg_replication_slots WHERE slot_name = {}",
            literal(&config.slot)
        ),
    )
    .await?;
    let Some(confirmed) = first_u64(&slot) else {
        return Ok(None);
    };
    if at.consistent_point.is_some_and(|p| p != confirmed) {
        warn!(slot = %config.slot, confirmed, consistent_point = ?at.consistent_point,
            "the slot is no longer at the interrupted snapshot's consistent point; snapshotting again");
        return Ok(None);
    }
    let Some(index) = tables.iter().position(|t| *t == at.table) else {
        warn!(table = %format!("{}.{}", at.table.0, at.table.1),
            "the table the snapshot stopped in is no longer captured; snapshotting again");
        return Ok(None);
    };
    let remaining = &tables[index..];
    sql.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| ConnectError::retriable(format!("PostgreSQL: {}", describe(&e))))?;
    // The transaction's snapshot is taken by its first statement, so every
    // commit it sees lies before the insert position read with it.
    let seen_up_to =
        first_u64(&rows(sql, "SELECT (pg_current_wal_insert_lsn() - '0/0')::text").await?)
            .unwrap_or(u64::MAX);
    let remaining_oids = oids(sql, remaining).await?;
    // A table without a primary key is read in physical order, which a
    // VACUUM FULL or CLUSTER may change without any logical change.
    let keyless = rows(
        sql,
        &format!(
            "SELECT count(*)::text FROM pg_class c WHERE c.oid = ANY('{{{}}}'::oid[]) AND c.relkind = 'r' \
             AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)",
            remaining_oids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
        ),
    )
    .await?;
    if first_u64(&keyless) != Some(0) {
        return start_over(sql, config, "a table not yet snapshotted has no primary key, so its rows cannot be numbered as before").await;
    }
    // The signal table too: an incremental snapshot's reads are positioned at
    // its window-close, and must not rank above the rows read now.
    let signal_oids = oids(sql, config.signal.as_slice()).await?;
    let changed = changed_relations(config, seen_up_to).await?;
    let unchanged = !changed.contains(&0)
        && !remaining_oids
            .iter()
            .chain(&signal_oids)
            .any(|o| changed.contains(o));
    if !unchanged {
        return start_over(sql, config, "the slot holds changes to tables not yet snapshotted, so the snapshot cannot carry on from it exactly").await;
    }
    if at.consistent_point.is_some() {
        info!(slot = %config.slot, table = %format!("{}.{}", at.table.0, at.table.1), row = at.row,
            "resuming the interrupted snapshot: its tables are unchanged since its consistent point");
    } else {
        info!(slot = %config.slot, consistent_point = confirmed,
            "snapshot started from the existing slot, which holds no change to the captured tables");
    }
    let mut snapshot = Snapshot::new(confirmed, remaining.to_vec());
    snapshot.row = at.table_row0;
    snapshot.sent = at.row;
    // Tables before this one had rows, so it is not the first; (one whose
    // earlier tables were all empty counts as the first).
    snapshot.opened = usize::from(at.table_row0 > 0);
    Ok(Some(snapshot))
}

/// Gives up carrying the snapshot on: rolls its transaction back and says why.
async fn start_over(
    sql: &Client,
    config: &CdcConfig,
    why: &str,
) -> Result<Option<Snapshot>, ConnectError> {
    sql.batch_execute("ROLLBACK")
        .await
        .map_err(|e| ConnectError::retriable(format!("PostgreSQL: {}", describe(&e))))?;
    warn!(slot = %config.slot,
        "{why}; snapshotting again from a new slot (rows already sent are sent again)");
    Ok(None)
}

/// The oids of the tables that exist among `tables`.
async fn oids(sql: &Client, tables: &[(String, String)]) -> Result<Vec<u64>, ConnectError> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let list = tables
        .iter()
        .map(|(s, t)| format!("(to_regclass({})::oid::bigint)", literal(&qualified(s, t))))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(rows(
        sql,
        &format!("SELECT v::text FROM (VALUES {list}) AS x(v) WHERE v IS NOT NULL"),
    )
    .await?
    .iter()
    .filter_map(|r| r[0].as_deref()?.parse().ok())
    .collect())
}

/// The relations changed in what the slot holds up to `at` at least (0 for a
/// truncate, which may name several), read without consuming the slot.
async fn changed_relations(config: &CdcConfig, at: u64) -> Result<Vec<u64>, ConnectError> {
    let helper = database::connect(config).await?;
    // Decoding reads only flushed WAL; a commit seen by an asynchronous-commit
    // transaction may not be flushed yet.
    for _ in 0..500 {
        let flushed =
            first_u64(&rows(&helper, "SELECT (pg_current_wal_flush_lsn() - '0/0')::text").await?);
        if flushed.is_some_and(|f| f >= at) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // pgoutput messages: Insert 'I' (73), Update 'U' (85), Delete 'D' (68)
    // carry the relation's oid in bytes 1..5; Truncate 'T' (84) is counted as 0.
    let changed = rows(
        &helper,
        &format!(
            "SELECT DISTINCT (CASE WHEN get_byte(data, 0) = 84 THEN 0 \
             ELSE (get_byte(data, 1)::bigint << 24) | (get_byte(data, 2) << 16) | (get_byte(data, 3) << 8) | get_byte(data, 4) END)::text \
             FROM pg_logical_slot_peek_binary_changes({}, NULL, NULL, 'proto_version', '1', 'publication_names', {}) \
             WHERE get_byte(data, 0) IN (68, 73, 84, 85)",
            literal(&config.slot),
            literal(&ident(&config.publication))
        ),
    )
    .await?;
    Ok(changed
        .iter()
        .filter_map(|r| r[0].as_deref()?.parse().ok())
        .collect())
}

fn first_u64(rows: &[Vec<Option<String>>]) -> Option<u64> {
    rows.first()?.first()?.as_deref()?.parse().ok()
}

/// Declares the cursor over a table, in primary-key order.
async fn open_table(
    sql: &Client,
    config: &CdcConfig,
    schema: &str,
    name: &str,
) -> Result<Arc<Table>, ConnectError> {
    let (catalog, table) = database::table_model(sql, config, schema, name).await?;
    let select = table.select_text();
    let order_by = if catalog.keys.is_empty() {
        String::new()
    } else {
        format!(
            " ORDER BY {}",
            catalog
                .keys
                .iter()
                .map(|k| format!("src.{}", ident(k)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    sql.batch_execute(&format!(
        "DECLARE sluice_snapshot NO SCROLL CURSOR FOR SELECT {select} FROM {}.{} AS src{order_by}",
        ident(schema),
        ident(name)
    ))
    .await
    .map_err(|e| {
        ConnectError::retriable(format!(
            "PostgreSQL: cannot read {schema}.{name}: {}",
            describe(&e)
        ))
    })?;
    info!(table = %format!("{schema}.{name}"), "snapshotting table");
    Ok(Arc::new(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(v: serde_json::Value) -> SourceOffset {
        crate::positions::offset_of(v)
    }

    #[test]
    fn an_unfinished_snapshots_offset_says_where_it_stopped() {
        let s = Snapshot {
            consistent_point: 900,
            current_name: json!(["public", "t"]),
            table_row0: 40,
            row: 45,
            ..Snapshot::new(900, Vec::new())
        };
        assert_eq!(
            Interrupted::from_offset(&s.offset()),
            Some(Interrupted {
                consistent_point: Some(900),
                table: ("public".into(), "t".into()),
                table_row0: 40,
                row: 45
            })
        );
        let mut done = s.offset();
        done.insert("snapshot_completed".into(), json!(true));
        assert_eq!(Interrupted::from_offset(&done), None);
        let streamed = offset(json!({"lsn": 1000, "lsn_flushed": 1000}));
        assert_eq!(Interrupted::from_offset(&streamed), None);
    }
}
