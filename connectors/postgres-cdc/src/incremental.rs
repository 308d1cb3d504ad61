//! Incremental snapshots, as Debezium runs them (after Netflix's DBLog): a
//! table is read in primary-key chunks while streaming goes on.
//!
//! Each chunk is bracketed by two rows written to the signal table, a
//! window-open and a window-close. Between the two in the stream, a change to a
//! row of the chunk removes that row from the chunk: the change is newer than
//! what the SELECT read. At the window-close the rows left are emitted as reads
//! (`snapshot: "incremental"`), in the close's transaction. So a read never
//! overwrites a newer change, and every row is read or changed at least once.
//!
//! Triggered by a row in `signal.data.collection`:
//! `type = 'execute-snapshot'`, `data = '{"data-collections": ["s.t"]}'`.
//! Progress (the tables left, the one being read, the key its next chunk
//! starts after) rides in every streamed record's offset, so a restart carries
//! on from the last stored chunk. A chunk emitted but not yet stored is read
//! again: its rows may appear twice, as with Debezium.

use std::collections::VecDeque;
use std::sync::Arc;

use sluice_api::{ConnectError, Value};
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::config::CdcConfig;
use crate::database::{self, ident, literal, rows};
use crate::envelope::Table;

pub const OPEN: &str = "snapshot-window-open";
pub const CLOSE: &str = "snapshot-window-close";
pub const EXECUTE: &str = "execute-snapshot";

#[derive(Default)]
pub struct Incremental {
    queue: VecDeque<(String, String)>,
    current: Option<Chunked>,
    chunks: u64,
    /// Restored progress: where the first table of the queue starts.
    resume_after: Option<Vec<String>>,
}

struct Chunked {
    table: Arc<Table>,
    /// The key of the last row read, as text, where the next chunk starts.
    after: Option<Vec<String>>,
    /// The chunk read, waiting for its window to close.
    buffer: Vec<Vec<Value>>,
    next_after: Option<Vec<String>>,
    window: Window,
    /// The transactions the chunk's SELECT saw as running or not yet begun.
    unseen: Option<Unseen>,
}

/// What a snapshot did not see, from `pg_current_snapshot()`
/// (`xmin:xmax:xip,...`): transactions from `xmax` on, and those listed.
///
/// A transaction can commit before the window-open in the log yet still be
/// invisible to the SELECT: it becomes visible a moment after its commit
/// record is written. Its change then arrives before the window opens, and
/// without this check the chunk's older copy would overwrite it.
#[derive(Debug, Clone, PartialEq)]
struct Unseen {
    xmax: u32,
    running: Vec<u32>,
}

impl Unseen {
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let _xmin = parts.next()?;
        // pg_snapshot holds 64-bit xids (epoch and xid); pgoutput sends the
        // 32-bit xid, so compare the low halves.
        let xmax = parts.next()?.parse::<u64>().ok()? as u32;
        let running = parts
            .next()
            .unwrap_or_default()
            .split(',')
            .filter(|x| !x.is_empty())
            .map(|x| x.parse::<u64>().map(|x| x as u32))
            .collect::<Result<_, _>>()
            .ok()?;
        Some(Self { xmax, running })
    }

    /// True when `xid`'s changes were not visible to the snapshot.
    fn missed(&self, xid: u32) -> bool {
        // At or past xmax, modulo 2^32 as PostgreSQL compares xids.
        (xid.wrapping_sub(self.xmax) as i32) >= 0 || self.running.contains(&xid)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Window {
    /// No chunk in flight: the next one may be read.
    Idle,
    /// Signals written, the open not yet seen in the stream.
    Awaiting {
        open: String,
        close: String,
    },
    Open {
        close: String,
    },
}

/// What a signal row did.
pub enum Signalled {
    Nothing,
    /// The window closed: these rows of `table` are to be emitted as reads.
    Close(Arc<Table>, Vec<Vec<Value>>),
}

impl Incremental {
    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.queue.is_empty()
    }

    /// True when the next chunk may be read now (none is in flight).
    pub fn wants_chunk(&self) -> bool {
        match &self.current {
            Some(c) => c.window == Window::Idle,
            None => !self.queue.is_empty(),
        }
    }

    /// What a stored offset keeps of it; `None` when idle.
    pub fn progress(&self) -> Option<serde_json::Value> {
        if self.is_idle() {
            return None;
        }
        let pair = |s: &str, t: &str| serde_json::json!([s, t]);
        Some(serde_json::json!({
            "current": self.current.as_ref().map(|c| pair(&c.table.schema, &c.table.name)),
            "after": self.current.as_ref().and_then(|c| c.after.clone()),
            "queue": self.queue.iter().map(|(s, t)| pair(s, t)).collect::<Vec<_>>(),
        }))
    }

    /// Carries on from what [`Incremental::progress`] stored.
    pub fn restore(&mut self, stored: &serde_json::Value) {
        let pair = |v: &serde_json::Value| {
            Some((
                v.get(0)?.as_str()?.to_owned(),
                v.get(1)?.as_str()?.to_owned(),
            ))
        };
        self.queue = stored["queue"]
            .as_array()
            .map(|q| q.iter().filter_map(pair).collect())
            .unwrap_or_default();
        if let Some(current) = pair(&stored["current"]) {
            self.queue.push_front(current);
            self.resume_after = serde_json::from_value(stored["after"].clone()).ok();
        }
        if !self.queue.is_empty() {
            info!(
                tables = self.queue.len(),
                "incremental snapshot resumed from the stored offset"
            );
        }
    }

    /// `execute-snapshot`: queues the data collections it names.
    pub fn execute(&mut self, data: &str) {
        let parsed: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        let collections = parsed["data-collections"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for c in collections.iter().filter_map(|c| c.as_str()) {
            match c.split_once('.') {
                Some((s, t)) => self.queue.push_back((s.to_owned(), t.to_owned())),
                None => self.queue.push_back(("public".into(), c.to_owned())),
            }
        }
        info!(tables = collections.len(), "incremental snapshot requested");
    }

    /// Takes the next queued table on: true when there is one to read (a
    /// table without a primary key is skipped, with a warning).
    async fn open_next_table(
        &mut self,
        sql: &Client,
        config: &CdcConfig,
    ) -> Result<bool, ConnectError> {
        let Some((schema, name)) = self.queue.front().cloned() else {
            return Ok(false);
        };
        // Taken off the queue only once read: a lost connection retries it.
        let (catalog, table) = database::table_model(sql, config, &schema, &name).await?;
        self.queue.pop_front();
        if catalog.keys.is_empty() {
            self.resume_after = None;
            warn!(table = %format!("{schema}.{name}"), "an incremental snapshot needs a primary key; skipping the table");
            return Ok(false);
        }
        info!(table = %format!("{schema}.{name}"), "incremental snapshot of a table started");
        self.current = Some(Chunked {
            table: Arc::new(table),
            after: self.resume_after.take(),
            buffer: Vec::new(),
            next_after: None,
            window: Window::Idle,
            unseen: None,
        });
        Ok(true)
    }

    /// Reads the next chunk when none is in flight: writes the window-open
    /// signal, selects the chunk, writes the window-close signal.
    pub async fn next_chunk(
        &mut self,
        sql: &Client,
        config: &CdcConfig,
        signal: &(String, String),
    ) -> Result<(), ConnectError> {
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.window != Window::Idle)
        {
            return Ok(());
        }
        if self.current.is_none() && !self.open_next_table(sql, config).await? {
            return Ok(());
        }
        let Some(chunk) = self.current.as_mut() else {
            return Ok(());
        };
        self.chunks += 1;
        let id = format!("sluice-{}-{}", std::process::id(), self.chunks);
        let (open, close) = (format!("{id}-open"), format!("{id}-close"));
        let signal_table = database::qualified(&signal.0, &signal.1);
        let write = |sid: &str, kind: &str| {
            format!(
                "INSERT INTO {signal_table} (id, type, data) VALUES ({}, {}, NULL)",
                literal(sid),
                literal(kind)
            )
        };
        sql.batch_execute(&write(&open, OPEN)).await.map_err(|e| {
            ConnectError::retriable(format!(
                "cannot write to the signal table: {}",
                database::describe(&e)
            ))
        })?;
        let table = chunk.table.clone();
        // The chunk and the snapshot it was read in, in one transaction.
        let postgres = |e: tokio_postgres::Error| {
            ConnectError::retriable(format!("PostgreSQL: {}", database::describe(&e)))
        };
        sql.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(postgres)?;
        let snapshot = rows(sql, "SELECT pg_current_snapshot()::text").await?;
        let read = rows(
            sql,
            &chunk_query(&table, chunk.after.as_deref(), config.chunk_size),
        )
        .await?;
        sql.batch_execute("COMMIT").await.map_err(postgres)?;
        chunk.unseen = snapshot
            .first()
            .and_then(|r| r[0].as_deref())
            .and_then(Unseen::parse);
        let key_positions: Vec<usize> = table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.key)
            .map(|(i, _)| i)
            .collect();
        chunk.next_after = read.last().map(|r| {
            key_positions
                .iter()
                .map(|i| r[*i].clone().unwrap_or_default())
                .collect()
        });
        chunk.buffer = read
            .into_iter()
            .map(|r| table.decode_row(r))
            .collect::<Result<_, _>>()?;
        // Flushed at once even under synchronous_commit=off: the walsender
        // sends only flushed WAL, and the chunk waits for this close.
        sql.batch_execute(&format!(
            "BEGIN; SET LOCAL synchronous_commit = on; {}; COMMIT",
            write(&close, CLOSE)
        ))
        .await
        .map_err(|e| {
            ConnectError::retriable(format!(
                "cannot write to the signal table: {}",
                database::describe(&e)
            ))
        })?;
        chunk.window = Window::Awaiting { open, close };
        Ok(())
    }

    /// A row written to the signal table, as the stream delivers it.
    pub fn signal(&mut self, id: &str, kind: &str, data: &str) -> Signalled {
        match kind {
            EXECUTE => {
                self.execute(data);
                Signalled::Nothing
            }
            OPEN => {
                if let Some(c) = self.current.as_mut() {
                    if let Window::Awaiting { open, close } = &c.window {
                        if open == id {
                            c.window = Window::Open {
                                close: close.clone(),
                            };
                        }
                    }
                }
                Signalled::Nothing
            }
            CLOSE => {
                let Some(c) = self.current.as_mut() else {
                    return Signalled::Nothing;
                };
                if !matches!(&c.window, Window::Open { close } if close == id) {
                    return Signalled::Nothing;
                }
                c.window = Window::Idle;
                let rows = std::mem::take(&mut c.buffer);
                let table = c.table.clone();
                match c.next_after.take() {
                    Some(after) => c.after = Some(after),
                    None => {
                        info!(table = %format!("{}.{}", table.schema, table.name), "incremental snapshot of a table completed");
                        self.current = None;
                    }
                }
                Signalled::Close(table, rows)
            }
            _ => Signalled::Nothing,
        }
    }

    /// A streamed change to `row` of `table` by transaction `xid`: inside an
    /// open window, or before it but unseen by the chunk's SELECT, it is newer
    /// than what the chunk read, so the chunk's copy is dropped. Cheap when no
    /// chunk is in flight: this runs for every streamed change.
    pub fn changed(&mut self, table: &Table, row: &[Value], xid: u32) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        let newer = match &c.window {
            Window::Idle => false,
            Window::Open { .. } => true,
            Window::Awaiting { .. } => c.unseen.as_ref().is_none_or(|u| u.missed(xid)),
        };
        if !newer || c.table.schema != table.schema || c.table.name != table.name {
            return;
        }
        let key = table.key_of(row);
        let t = c.table.clone();
        c.buffer.retain(|r| t.key_of(r) != key);
    }
}

/// The SELECT of one chunk: up to `limit` rows after the key `after` (the
/// last key of the previous chunk), in key order.
fn chunk_query(table: &Table, after: Option<&[String]>, limit: usize) -> String {
    // Qualified, so ORDER BY and the comparison mean the table's columns,
    // not the text columns the select list produces under the same names.
    let key_list = table
        .columns
        .iter()
        .filter(|c| c.key)
        .map(|c| format!("src.{}", ident(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    let filter = match after {
        Some(after) => format!(
            " WHERE ({key_list}) > ({})",
            after
                .iter()
                .map(|v| literal(v))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    };
    format!(
        "SELECT {} FROM {}.{} AS src{filter} ORDER BY {key_list} LIMIT {limit}",
        table.select_text(),
        ident(&table.schema),
        ident(&table.name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_misses_running_and_later_transactions() {
        let u = Unseen::parse("4294967300:4294967310:4294967302,4294967305").unwrap();
        // 4294967300 is xid 4 of epoch 1.
        assert!(!u.missed(4), "committed before the snapshot");
        assert!(u.missed(6), "running at the snapshot");
        assert!(!u.missed(7));
        assert!(u.missed(14), "began after the snapshot");
        assert!(!u.missed(u32::MAX - 1), "long before, across the wrap");
        assert_eq!(Unseen::parse("10:12:").unwrap().running, Vec::<u32>::new());
    }
}
