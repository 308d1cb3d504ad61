//! Turning pgoutput messages into Debezium's change events, numbered and
//! given their positions and offsets (`positions.rs`) and queued for `poll`.
//! A transaction's records are handed on as they come, all but its last,
//! which waits for the Commit: only the last may let PostgreSQL forget the
//! transaction, and only the Commit says which is last. So a transaction of a
//! million rows is never held whole (with incremental snapshots it is: see
//! [`Session::release_open`]).
//!
//! **Never twice.** The slot may lag behind the stored offset (PostgreSQL hears
//! of a stored offset a moment after it is written), and the runtime's resume
//! scan covers only what lies past the stored marks. So every streamed change
//! at or below the last position emitted is skipped here: from the stored
//! offset at start, then from what this task emitted itself, which covers a
//! stream rebuilt after PostgreSQL went away.

use std::sync::Arc;

use pg_walstream::{ColumnValue, EventType, RelationColumn, ReplicaIdentity, RowData};
use sluice_api::{ConnectError, Record, Value};
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::config::CdcConfig;
use crate::database;
use crate::envelope::{Column, Op, Origin, Table};
use crate::incremental::Signalled;
use crate::positions::{self, Committed, CHANGE_LSN_HEADER};
use crate::session::{Session, Txn};
use crate::types::ColumnType;

impl Session {
    /// One message of the stream.
    pub async fn handle(&mut self, event: pg_walstream::ChangeEvent) -> Result<(), ConnectError> {
        let lsn = event.lsn.0;
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
            } => self.begin_txn(
                transaction_id,
                final_lsn.0,
                commit_timestamp.timestamp_millis(),
            ),
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
            } => self.on_insert(relation_oid, &data, lsn)?,
            EventType::Update {
                relation_oid,
                old_data,
                new_data,
                replica_identity,
                ..
            } => self.on_update(
                relation_oid,
                old_data.as_ref(),
                &new_data,
                &replica_identity,
                lsn,
            )?,
            EventType::Delete {
                relation_oid,
                old_data,
                replica_identity,
                ..
            } => {
                let table = self.table(relation_oid)?;
                if table.captured {
                    let mut before = self.row(&table, &old_data, None)?;
                    self.incremental.changed(&table, &before, self.xid());
                    fill_required(&table, &mut before, &replica_identity);
                    self.push(&table, Op::Delete, Some(before), None, lsn)?;
                }
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
                    self.push(&table, Op::Truncate, None, None, lsn)?;
                }
            }
            _ => {}
        }
        self.release_open();
        Ok(())
    }

    /// A transaction begins. `final_lsn` is its commit's LSN, the first part
    /// of each of its records' positions.
    fn begin_txn(&mut self, xid: u32, final_lsn: u64, commit_ms: i64) {
        let emitted_to = positions::emitted_to(final_lsn, self.emitted);
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
            xid,
            commit_ms,
            seen_ms: sluice_api::now_ms(),
            replayed: final_lsn <= self.handled_through,
            emitted_to,
            records: Vec::new(),
            released: 0,
            final_lsn,
        });
    }

    fn on_insert(&mut self, relation: u32, data: &RowData, lsn: u64) -> Result<(), ConnectError> {
        let table = self.table(relation)?;
        let after = self.row(&table, data, None)?;
        if self.is_signal(&table) {
            // The slot is confirmed after the offsets are stored, so a
            // restart may receive signals the stored incremental
            // progress already reflects: acting again would queue a
            // finished snapshot anew.
            if self.txn.as_ref().is_some_and(|t| t.replayed) {
                return Ok(());
            }
            return self.on_signal(&table, &after, lsn);
        }
        if !table.captured {
            return Ok(());
        }
        self.incremental.changed(&table, &after, self.xid());
        self.push(&table, Op::Create, None, Some(after), lsn)
    }

    fn on_update(
        &mut self,
        relation: u32,
        old_data: Option<&RowData>,
        new_data: &RowData,
        identity: &ReplicaIdentity,
        lsn: u64,
    ) -> Result<(), ConnectError> {
        let table = self.table(relation)?;
        if !table.captured {
            return Ok(());
        }
        let before = match old_data {
            Some(old) => Some(self.row(&table, old, None)?),
            None => None,
        };
        let after = self.row(&table, new_data, before.as_deref())?;
        self.incremental.changed(&table, &after, self.xid());
        match before {
            Some(mut before)
                if table.key_schema.is_some() && table.key_of(&before) != table.key_of(&after) =>
            {
                self.incremental.changed(&table, &before, self.xid());
                fill_required(&table, &mut before, identity);
                self.push_key_change(&table, before, after, lsn)
            }
            before => self.push(&table, Op::Update, before, Some(after), lsn),
        }
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

    /// The open transaction committed: its records still held get their
    /// positions and offsets (the last one the Commit's end LSN) and are
    /// queued for `poll`.
    fn commit_txn(&mut self, commit_lsn: u64, end_lsn: u64) {
        let Some(mut txn) = self.txn.take() else {
            return;
        };
        self.handled_through = self.handled_through.max(commit_lsn);
        let records = std::mem::take(&mut txn.records);
        let total = txn.released + records.len();
        self.queue(&txn, records, commit_lsn, total, end_lsn);
        if total > 0 {
            self.last_end = self.last_end.max(end_lsn);
        }
    }

    /// Hands the open transaction's records but the last on to `poll`, so a
    /// large transaction is not held whole. Called between messages, never
    /// within one: a key change adds headers to the records it has just
    /// pushed. Not with incremental snapshots: a signal later in the
    /// transaction changes the progress that every offset of it carries, and
    /// a restart from an offset before the signal would skip the signal.
    pub(crate) fn release_open(&mut self) {
        if self.config.signal.is_some() {
            return;
        }
        let Some(mut txn) = self.txn.take() else {
            return;
        };
        if txn.records.len() > 1 {
            let mut records = std::mem::take(&mut txn.records);
            txn.records.extend(records.pop());
            let total = txn.released + records.len() + 1;
            // None of them is the last: `end_lsn` goes unused.
            self.queue(&txn, records, txn.final_lsn, total, self.last_end);
            txn.released = total - 1;
        }
        self.txn = Some(txn);
    }

    /// Queues `records` of `txn` (indices from `txn.released` on, of `total`
    /// so far) with their positions and offsets, skipping those emitted before.
    fn queue(
        &mut self,
        txn: &Txn,
        records: Vec<Record>,
        commit_lsn: u64,
        total: usize,
        end_lsn: u64,
    ) {
        let committed = Committed {
            xid: txn.xid,
            commit_lsn,
            end_lsn,
            records: total,
            emitted_to: txn.emitted_to,
        };
        let progress = self.incremental.progress();
        let from = txn.released;
        let indices = from..from + records.len();
        let mut offsets =
            positions::streamed_offsets(committed, indices, self.last_end, progress.as_ref())
                .peekable();
        for (i, mut record) in records.into_iter().enumerate() {
            let Some((_, position, offset)) = offsets.next_if(|(j, _, _)| *j == from + i) else {
                continue;
            };
            self.attach(&mut record, position, offset);
            self.emitted = position;
            self.ready.push_back(record);
        }
    }
}

/// A delete's or key change's old row: unless the replica identity is FULL,
/// only the key came, and a required column gets its type's empty value rather
/// than a null its schema forbids.
fn fill_required(table: &Table, row: &mut [Value], identity: &ReplicaIdentity) {
    if matches!(identity, ReplicaIdentity::Full) {
        return;
    }
    for (c, v) in table.columns.iter().zip(row.iter_mut()) {
        if !c.key && !c.optional && v.is_null() {
            *v = c.ty.empty();
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
