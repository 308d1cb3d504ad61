//! The CDC task: sets up the slot, reads the initial snapshot inside the
//! slot's exported snapshot, then streams pgoutput changes. This file is the
//! `SourceTask` the runtime drives; a [`Session`] (`session.rs`) is one start of it.
//!
//! **Exactly-once without broker transactions.** Each record carries a
//! position that rises in the order records are emitted and is the same when
//! a replay after a crash emits the record again (`positions.rs`), so the
//! runtime's idempotent resume skips what Kafka already holds. A transaction
//! is emitted only once its Commit has arrived, and PostgreSQL is told an LSN
//! is flushed only from `commit`, i.e. once the runtime has stored the offsets
//! of every record up to it. A restart therefore resumes at a transaction
//! boundary the slot still holds. What the slot replays from before the
//! stored offset is skipped by the task itself (`changes.rs`).
//!
//! **Idle.** A stream with nothing of ours to send confirms the WAL the server
//! has passed, so the server can recycle it and a shutdown does not wait for
//! this client (`stream.rs`).
//!
//! **Outages.** A lost connection (either one) is rebuilt inside `poll`
//! (`stream.rs`). PostgreSQL going away mid-snapshot takes the snapshot's
//! transaction along: the task then starts a new session in-process, carrying the
//! snapshot on as after a crash (here).

use async_trait::async_trait;
use serde_json::json;
use sluice_api::{
    ConnectError, Position, Record, SourceOffset, SourcePartition, SourceTask, SourceTaskContext,
};
use tracing::{info, warn};

use crate::config::CdcConfig;
use crate::database;
use crate::positions;
use crate::session::{Replication, Session};
use crate::stream::Outage;

#[derive(Default)]
pub struct CdcTask {
    session: Option<Session>,
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
    /// Carried over from the session that was lost: what it returned, and
    /// whether that is stored.
    returned: Option<Position>,
    unstored: Option<SourceOffset>,
}

impl CdcTask {
    /// PostgreSQL went away mid-snapshot: the session is dropped, to start again
    /// once the backoff allows.
    fn begin_restart(&mut self, why: String) -> Result<(), ConnectError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let outage = Outage::begin(
            &session.config,
            &session.connector,
            session.task,
            &why,
            " during the snapshot",
        )?;
        self.restart = Some(Restart {
            outage,
            returned: session.returned,
            unstored: session.unstored.clone(),
        });
        Ok(())
    }

    /// Starts the task again once the backoff allows and PostgreSQL answers;
    /// true when it did. The snapshot carries on from the stored offset (or
    /// starts over when its tables changed, as after a crash), and rows the
    /// lost session returned are not returned again.
    async fn try_restart(&mut self) -> Result<bool, ConnectError> {
        let (Some(restart), Some(context)) = (self.restart.as_mut(), self.context.as_ref()) else {
            return Ok(true);
        };
        let config = CdcConfig::parse(&context.config)?;
        if !restart.outage.wait(config.poll_interval).await {
            return Ok(false);
        }
        let mut context = context.clone();
        if let Some(stored) = &self.stored {
            let mut partition = SourcePartition::new();
            partition.insert("server".into(), json!(config.prefix));
            context.offsets = vec![(partition, stored.clone())];
        }
        let why = match Session::start(&context).await {
            Ok(mut session) => {
                if let Some(snap) = session.snapshot.as_mut() {
                    if let Some(sent) =
                        positions::snapshot_rows_returned(snap.consistent_point, restart.returned)
                    {
                        snap.sent = snap.sent.max(sent);
                    }
                }
                session.unstored = restart.unstored.take();
                session.returned = restart.returned;
                info!(
                    connector = %session.connector,
                    task = session.task,
                    down_ms = restart.outage.since.elapsed().as_millis() as u64,
                    attempts = restart.outage.backoff.attempts(),
                    "reconnected to PostgreSQL; the task started again"
                );
                self.session = Some(session);
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
        restart
            .outage
            .retry_later(&context.connector, context.task_id, &why)?;
        Ok(false)
    }
}

#[async_trait]
impl SourceTask for CdcTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        self.session = Some(Session::start(&context).await?);
        self.context = Some(context);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<Record>, ConnectError> {
        if self.restart.is_some() && !self.try_restart().await? {
            return Ok(Vec::new());
        }
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| ConnectError::fatal("poll before start"))?;
        let mut batch = match session.poll().await {
            Ok(batch) => batch,
            // The snapshot's transaction went with the connection.
            Err(e) if session.snapshot.is_some() && session.sql.is_closed() => {
                self.begin_restart(e.to_string())?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        if let Some(s) = batch.last().and_then(|r| r.source.as_ref()) {
            session.unstored = Some(s.offset.clone());
            session.returned = s.position;
        }
        session.add_context_headers(&mut batch);
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
        let Some(session) = self.session.as_mut() else {
            if let (Some(r), Some(o)) = (self.restart.as_mut(), &self.stored) {
                if r.unstored.as_ref() == Some(o) {
                    r.unstored = None;
                }
            }
            return Ok(());
        };
        for (partition, offset) in stored {
            if *partition != *session.partition {
                continue;
            }
            if session.unstored.as_ref() == Some(offset) {
                session.unstored = None;
            }
            if let Some(lsn) = offset
                .get("lsn_flushed")
                .and_then(serde_json::Value::as_u64)
            {
                session.stored_lsn = session.stored_lsn.max(lsn);
            }
        }
        // Sent with the next feedback (after the next batch at the latest).
        if let Some(stream) = session.stream() {
            stream
                .shared_lsn_feedback
                .update_applied_lsn(session.stored_lsn);
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        if let Some(mut session) = self.session.take() {
            match std::mem::replace(&mut session.replication, Replication::Down) {
                Replication::Streaming(mut s) => {
                    // A last feedback; dropping it closes the connection.
                    if let Err(e) = s.stop().await {
                        warn!(connector = %session.connector, task = session.task, "final replication feedback failed: {e}");
                    }
                }
                Replication::Idle(_) | Replication::Down => {}
            }
            if session.config.drop_slot_on_stop {
                session.drop_slot().await;
            }
        }
        Ok(())
    }
}
