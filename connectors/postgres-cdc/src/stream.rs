//! The replication stream: starting it, reading a batch of changes from it,
//! telling PostgreSQL what it may forget, and rebuilding it (and the SQL
//! connection) after PostgreSQL went away, with capped exponential backoff
//! (`backoff.rs`) as often as `errors.max.retries` allows. Meanwhile `poll`
//! returns empty batches, so the task still answers a stop or a pause.

use std::time::{Duration, Instant};

use pg_walstream::{
    CancellationToken, EventType, LogicalReplicationStream, ReplicationError,
    ReplicationStreamConfig, RetryConfig, StreamingMode,
};
use sluice_api::{Backoff, ConnectError, Record};
use tracing::{error, info, warn};

use crate::backoff::reconnect_backoff;
use crate::config::CdcConfig;
use crate::database::{self, config_error, literal, rows};
use crate::session::{Replication, Session};

/// Reconnecting after PostgreSQL went away.
pub struct Outage {
    pub since: Instant,
    pub backoff: Backoff,
    pub retry_at: Instant,
}

impl Outage {
    /// PostgreSQL, or one connection to it, went away (`during`, if not empty,
    /// says in what, with a leading space):
    /// the first reconnect is scheduled, unless `errors.max.retries` is 0,
    /// which fails the task.
    pub fn begin(
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

    /// Waits for the next attempt, at most `poll_interval` (so the task keeps
    /// answering a stop or a pause); true when it is due.
    pub async fn wait(&self, poll_interval: Duration) -> bool {
        let now = Instant::now();
        if now < self.retry_at {
            tokio::time::sleep((self.retry_at - now).min(poll_interval)).await;
        }
        Instant::now() >= self.retry_at
    }

    /// An attempt failed: the next is scheduled, unless `errors.max.retries`
    /// attempts were made, which fails the task.
    pub fn retry_later(
        &mut self,
        connector: &str,
        task: u32,
        why: &str,
    ) -> Result<(), ConnectError> {
        let attempt = self.backoff.attempts();
        let Some(delay) = self.backoff.next_delay() else {
            return Err(ConnectError::fatal(format!(
                "PostgreSQL unreachable for {} s; gave up after {attempt} reconnect attempts (errors.max.retries): {why}",
                self.since.elapsed().as_secs()
            )));
        };
        self.retry_at = Instant::now() + delay;
        warn!(
            connector = %connector,
            task,
            attempt,
            down_ms = self.since.elapsed().as_millis() as u64,
            retry_in_ms = delay.as_millis() as u64,
            reason = %why,
            "cannot reconnect to PostgreSQL yet; retrying"
        );
        Ok(())
    }
}

/// Why a reconnect attempt failed.
pub enum Reconnect {
    /// Worth trying again (PostgreSQL is still down or starting).
    Failed(String),
    /// Trying again cannot help (the slot is gone).
    Fatal(ConnectError),
}

pub fn replication_error(config: &CdcConfig, e: pg_walstream::ReplicationError) -> ConnectError {
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
pub fn stream_config(config: &CdcConfig) -> ReplicationStreamConfig {
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
pub fn is_connection_loss(e: &ReplicationError) -> bool {
    e.is_transient()
}

impl Session {
    pub async fn start_streaming(&mut self) -> Result<(), ConnectError> {
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
    pub fn begin_outage(&mut self, why: String) -> Result<(), ConnectError> {
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
    pub fn replication_lost(&mut self, why: String) -> Result<(), ConnectError> {
        self.replication = Replication::Down;
        self.txn = None;
        self.begin_outage(why)
    }

    /// Rebuilds what went away (the SQL connection, the replication stream)
    /// once the backoff allows; true when both work again. Waits at most a
    /// poll interval, so the task keeps answering a stop or a pause.
    pub async fn reconnect(&mut self) -> Result<bool, ConnectError> {
        let Some(outage) = self.outage.as_ref() else {
            return Ok(true);
        };
        if !outage.wait(self.config.poll_interval).await {
            return Ok(false);
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
        if let Some(outage) = self.outage.as_mut() {
            outage.retry_later(&self.connector, self.task, &why)?;
        }
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
    pub async fn stream_batch(&mut self) -> Result<Vec<Record>, ConnectError> {
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
        self.lag.behind(pending, sluice_api::now_ms());
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
    pub async fn drop_slot(&mut self) {
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
}
