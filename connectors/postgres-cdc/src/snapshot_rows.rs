//! Reading the initial snapshot's rows into records, a `FETCH` at a time, and
//! marking them as Debezium does (`source.snapshot`: `first`,
//! `first_in_data_collection`, `true`, `last_in_data_collection`, `last`).
//!
//! The last row read is held back until the next read says whether it ends
//! its table or the whole snapshot: the very last row carries
//! `snapshot_completed` in its offset, which tells a restart the snapshot is
//! done.

use serde_json::json;
use sluice_api::{ConnectError, Record, Value};

use crate::config::SnapshotMode;
use crate::database::{describe, rows};
use crate::envelope::{Op, Origin};
use crate::positions;
use crate::session::Session;

/// The marker of a snapshot row that does not end a table: Debezium marks
/// the snapshot's first row, and each later table's first.
fn row_marker(tables_opened: usize, row: u64, table_row0: u64) -> &'static str {
    let first_in_table = row == table_row0 + 1;
    if first_in_table && tables_opened == 1 {
        "first"
    } else if first_in_table {
        "first_in_data_collection"
    } else {
        "true"
    }
}

/// The marker of the table's last row, which was marked as a plain row:
/// `last_in_data_collection`, except that the snapshot's very first row stays
/// `first`, as in Debezium.
fn table_end_marker(marked: Option<&str>) -> Option<&'static str> {
    (marked != Some("first")).then_some("last_in_data_collection")
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

fn postgres_error(e: &tokio_postgres::Error) -> ConnectError {
    ConnectError::retriable(format!("PostgreSQL: {}", describe(e)))
}

impl Session {
    /// The snapshot's next rows: at least one record unless the snapshot just
    /// ended with nothing held.
    pub async fn snapshot_chunk(&mut self) -> Result<Vec<Record>, ConnectError> {
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
                        out.extend(self.finish_snapshot().await?);
                        return Ok(out);
                    }
                },
            };
            let fetched = rows(
                &self.sql,
                &format!("FETCH {} FROM sluice_snapshot", self.config.fetch_size),
            )
            .await?;
            let ts = sluice_api::now_ms();
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
                let point = snap.consistent_point;
                let origin = Origin {
                    server: &self.config.prefix,
                    db: &self.config.dbname,
                    snapshot: row_marker(snap.opened, snap.row, snap.table_row0),
                    ts_ms: ts,
                    tx_id: None,
                    lsn: Some(point as i64),
                };
                let position = positions::snapshot_row(point, snap.row);
                let offset = snap.offset();
                let mut record = table.event(Op::Read, None, Some(values), &origin, ts);
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
                self.end_table().await?;
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// The current table's cursor is exhausted: its held row is its last (the
    /// snapshot's last table's last becomes `last` once no table is left).
    async fn end_table(&mut self) -> Result<(), ConnectError> {
        if let Some(snap) = self.snapshot.as_mut() {
            let had_rows = snap.row > snap.table_row0;
            if let Some(held) = snap.held.as_mut().filter(|_| had_rows) {
                if let Some(marker) = table_end_marker(snapshot_marker(held)) {
                    set_snapshot_marker(held, marker);
                }
            }
        }
        self.sql
            .batch_execute("CLOSE sluice_snapshot")
            .await
            .map_err(|e| postgres_error(&e))?;
        if let Some(snap) = self.snapshot.as_mut() {
            snap.current = None;
        }
        Ok(())
    }

    /// Every table read: the held row is the snapshot's last, and streaming
    /// takes over from the consistent point.
    async fn finish_snapshot(&mut self) -> Result<Option<Record>, ConnectError> {
        let Some(mut snap) = self.snapshot.take() else {
            return Ok(None);
        };
        // Every row is read: a connection lost now only ends a read-only
        // transaction (streaming reconnects).
        if let Err(e) = self.sql.batch_execute("COMMIT").await {
            if !self.sql.is_closed() {
                return Err(postgres_error(&e));
            }
        }
        let mut last = snap.held.take();
        if let Some(r) = last.as_mut() {
            if let Some(s) = r.source.as_mut() {
                s.offset.insert("snapshot_completed".into(), json!(true));
            }
            set_snapshot_marker(r, "last");
        }
        self.last_end = snap.consistent_point;
        tracing::info!(
            connector = %self.connector,
            task = self.task,
            consistent_point = snap.consistent_point,
            "snapshot completed; streaming"
        );
        if self.config.snapshot == SnapshotMode::InitialOnly {
            self.done = true;
        }
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_marked_first_of_the_snapshot_then_first_of_each_table() {
        assert_eq!(row_marker(1, 1, 0), "first");
        assert_eq!(row_marker(1, 2, 0), "true");
        assert_eq!(row_marker(2, 6, 5), "first_in_data_collection");
        assert_eq!(row_marker(2, 7, 5), "true");
    }

    #[test]
    fn a_tables_last_row_is_marked_unless_it_is_the_snapshots_first() {
        assert_eq!(
            table_end_marker(Some("true")),
            Some("last_in_data_collection")
        );
        assert_eq!(
            table_end_marker(Some("first_in_data_collection")),
            Some("last_in_data_collection")
        );
        assert_eq!(table_end_marker(Some("first")), None);
    }
}
