//! The herder in distributed mode: it follows the config topic (what every
//! connector should be) and the group's placement (which parts of them this
//! worker runs), and brings what runs here in line with both.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::status::{ConnectorState, ConnectorStatus, State, TaskStatus};
use super::{Connector, Herder, HerderError};
use crate::control::TargetState;
use crate::placement::{Part, Placement, PlacementEvent};
use crate::storage::StatusRecord;

impl Herder {
    /// Reads the config topic to its end and applies it, so a read on this
    /// worker sees every write acknowledged on any worker before it. Nothing
    /// to do in standalone.
    pub async fn catch_up(&self) -> Result<(), HerderError> {
        if self.placement.is_none() {
            return Ok(());
        }
        let store = self.configs.clone();
        tokio::task::spawn_blocking(move || store.read_to_end())
            .await
            .map_err(|e| HerderError::Internal(format!("config store task failed: {e}")))?
            .map_err(|e| HerderError::Internal(e.to_string()))?;
        self.apply_stored().await;
        Ok(())
    }

    /// Brings the connectors known here in line with the config store:
    /// creates, replaces, deletes and changes target states that other
    /// workers wrote.
    pub(super) async fn apply_stored(&self) {
        let mut stored = self.configs.all();
        let mut connectors = self.connectors.lock().await;
        let known: Vec<String> = connectors.keys().cloned().collect();
        for name in known {
            let Some(entry) = stored.remove(&name) else {
                if let Some(mut c) = connectors.remove(&name) {
                    info!(connector = %name, "connector deleted on another worker");
                    self.stop_all(&mut c).await;
                }
                continue;
            };
            let Some(c) = connectors.get_mut(&name) else {
                continue;
            };
            if c.config.written == entry.config {
                if c.target != entry.target_state {
                    self.apply_target(c, entry.target_state).await;
                }
                continue;
            }
            info!(connector = %name, "connector config changed on another worker");
            self.stop_all(c).await;
            let replaced = self.start_stored(&name, entry);
            connectors.insert(name, replaced);
        }
        for (name, entry) in stored {
            info!(connector = %name, "connector created on another worker");
            let c = self.start_stored(&name, entry);
            connectors.insert(name, c);
        }
    }

    /// Carries out the restart requests read from the config topic, on the
    /// parts this worker runs.
    async fn apply_restarts(&self) {
        let requests = self.configs.take_restarts();
        if requests.is_empty() {
            return;
        }
        let mut connectors = self.connectors.lock().await;
        for r in requests {
            let Some(c) = connectors.get_mut(&r.connector) else {
                continue;
            };
            if c.target == TargetState::Stopped {
                continue;
            }
            let tasks: Vec<u32> = match r.task {
                Some(id) => vec![id],
                None if r.include_tasks => c
                    .tasks
                    .iter()
                    .filter(|(_, t)| !r.only_failed || t.health.failure().is_some())
                    .map(|(id, _)| *id)
                    .collect(),
                None => Vec::new(),
            };
            let connector = r.task.is_none()
                && self.owns(&r.connector, Part::Connector)
                && (!r.only_failed || c.failure.is_some());
            if connector || !tasks.is_empty() {
                info!(connector = %r.connector, tasks = ?tasks, restart_connector = connector, "restart requested on the cluster");
                self.restart_local(c, connector, tasks).await;
            }
        }
    }

    /// Brings what runs here in line with the slots this worker holds:
    /// stops the parts it lost, starts the parts it gained.
    async fn apply_placement(&self) {
        // A task that moved here starts from its last owner's offsets.
        let offsets = self.worker.offset_store().clone();
        match tokio::task::spawn_blocking(move || offsets.read_to_end()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("cannot read the offsets topic to its end: {e}"),
            Err(e) => warn!("offsets task failed: {e}"),
        }
        let mut connectors = self.connectors.lock().await;
        for (name, c) in connectors.iter_mut() {
            if c.target == TargetState::Stopped {
                continue;
            }
            let lost: Vec<u32> = c
                .tasks
                .keys()
                .copied()
                .filter(|id| !self.owns(name, Part::Task(*id)))
                .collect();
            if !lost.is_empty() {
                info!(connector = %name, tasks = ?lost, "tasks placed elsewhere now; stopping them");
                let tasks: BTreeMap<_, _> = lost
                    .iter()
                    .filter_map(|id| c.tasks.remove(id).map(|t| (*id, t)))
                    .collect();
                self.stop_tasks(name, tasks).await;
            }
            if !self.owns(name, Part::Connector) {
                if let Some(mut instance) = c.instance.take() {
                    info!(connector = %name, "the connector part is placed elsewhere now; stopping it");
                    instance.stop();
                    c.task_configs.clear();
                    c.failure = None;
                }
            } else if c.instance.is_none() && c.failure.is_none() {
                self.start_instance(c);
            } else {
                // This worker may have just gained the connector part.
                self.publish_connector(c);
            }
            self.spawn_owned_tasks(c);
        }
    }

    /// Brings the tasks run here in line with the task configs published in
    /// the config topic: a task whose config changed, or that is no longer
    /// published, is stopped (and started again with its new config).
    async fn apply_task_configs(&self) {
        let mut connectors = self.connectors.lock().await;
        for (name, c) in connectors.iter_mut() {
            let published = self.runnable_configs(c);
            let stale: BTreeMap<_, _> = c
                .tasks
                .extract_if(.., |id, t| published.get(*id as usize) != Some(&t.config))
                .collect();
            if !stale.is_empty() {
                info!(connector = %name, tasks = ?stale.keys().collect::<Vec<_>>(), "task configs changed; restarting the tasks");
                self.stop_tasks(name, stale).await;
            }
            if c.target != TargetState::Stopped {
                self.spawn_owned_tasks(c);
            }
        }
    }

    /// Reads the status topic to its end, so a status answer includes what
    /// any worker reported before the request.
    pub(super) async fn read_statuses(&self) {
        let store = self.statuses.clone();
        match tokio::task::spawn_blocking(move || store.read_to_end()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("cannot read the status topic to its end: {e}"),
            Err(e) => warn!("status store task failed: {e}"),
        }
    }

    /// `GET /connectors/{name}/status` in a cluster: built only from what
    /// every worker reads alike (the status topic, the published task
    /// configs, and the slots' lease renewals), never from what runs here,
    /// so every worker answers the same. A part is shown as its last record
    /// says only while the worker that wrote it is running its slot; else
    /// it is UNASSIGNED (its worker died, or it waits for its worker to
    /// come back), never RUNNING on a dead worker.
    pub(super) fn cluster_status_of(
        &self,
        placement: &Placement,
        name: &str,
        c: &Connector,
    ) -> ConnectorStatus {
        let version = self
            .worker
            .plugins()
            .connector(&c.config.class)
            .map(|p| p.version.to_owned());
        let live = |part: Part, record: Option<StatusRecord>| -> (State, String, Option<String>) {
            match record {
                Some(r)
                    if placement
                        .runner(self.statuses.as_ref(), name, part)
                        .as_deref()
                        == Some(&r.worker_id) =>
                {
                    (r.state, r.worker_id, r.trace)
                }
                // A record of a part that is no longer running is kept as
                // Connect keeps it: the worker that last ran it.
                Some(r) => (State::Unassigned, r.worker_id, None),
                None => (State::Unassigned, String::new(), None),
            }
        };
        let connector = match &c.invalid {
            // Every worker validates the same stored config alike.
            Some(why) => ConnectorState {
                state: State::Failed,
                worker_id: self
                    .statuses
                    .connector(name)
                    .map(|r| r.worker_id)
                    .unwrap_or_default(),
                version: version.clone(),
                trace: Some(why.clone()),
            },
            None => {
                let (state, worker_id, trace) =
                    live(Part::Connector, self.statuses.connector(name));
                ConnectorState {
                    state,
                    worker_id,
                    version: version.clone(),
                    trace,
                }
            }
        };
        let tasks = if c.target == TargetState::Stopped || c.invalid.is_some() {
            Vec::new()
        } else {
            let mut records = self.statuses.tasks(name);
            (0..self.task_count(c))
                .map(|id| {
                    let (state, worker_id, trace) = live(Part::Task(id), records.remove(&id));
                    TaskStatus {
                        id,
                        state,
                        worker_id,
                        version: version.clone(),
                        trace,
                    }
                })
                .collect()
        };
        ConnectorStatus {
            name: name.to_owned(),
            connector,
            tasks,
            kind: c.config.kind.as_str(),
        }
    }

    /// Follows the config topic's changes and the placement's, for as long as
    /// both are there.
    pub fn spawn_cluster_follower(
        self: &Arc<Self>,
        mut configs: watch::Receiver<u64>,
        mut placement: mpsc::UnboundedReceiver<PlacementEvent>,
    ) {
        let herder = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = configs.changed() => {
                        let Some(h) = herder.upgrade() else { break };
                        if changed.is_err() {
                            break;
                        }
                        h.apply_stored().await;
                        h.apply_task_configs().await;
                        h.apply_restarts().await;
                    }
                    event = placement.recv() => {
                        let Some(h) = herder.upgrade() else { break };
                        match event {
                            None => break,
                            Some(PlacementEvent::Changed) => h.apply_placement().await,
                            Some(PlacementEvent::Revoked(done)) => {
                                h.apply_placement().await;
                                // The rebalance waits for this before the
                                // slots go to another worker.
                                let _ = done.send(());
                            }
                        }
                    }
                }
            }
        });
    }
}
