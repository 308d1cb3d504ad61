//! The herder: which connectors this worker runs, and in what state. Every
//! change — from the config files at start-up or from the REST API — goes
//! through it, one at a time, and is persisted before it takes effect.
//!
//! Each task gets a watch channel carrying the connector's target state:
//! running, paused (resources kept, no work) or stopped (the task ends). A task
//! that ends with an error is FAILED, with its error chain as the trace, until
//! it is restarted.

mod cluster;
mod offsets_api;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_api::{ConfigErrors, TaskConfig};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

pub use self::offsets_api::{ConnectorOffsets, PartitionOffset};
pub use self::status::{ConnectorState, ConnectorStatus, State, TaskStatus};
use crate::blocking::blocking;
use crate::config::{
    check_connector_name, connector_config_def, is_whole_reference, ConnectorConfig,
};
use crate::control::{Report, TargetState, TaskHealth};
use crate::metrics::{ActiveTopics, TaskMetrics};
use crate::placement::{Part, Placement};
use crate::storage::{
    ConfigBackingStore, RestartRequest, StatusBackingStore, StatusRecord, StoredConnector,
};
use crate::worker::{ConnectorInstance, TaskWiring, Worker};

/// What a password-typed value reads as over REST.
const HIDDEN: &str = "[hidden]";

/// How often the supervisor looks for failed tasks to restart.
const SUPERVISOR_TICK: Duration = Duration::from_millis(500);
/// A task that ran this long before failing starts its restart waits afresh.
const RESTARTS_FORGOTTEN_AFTER: Duration = Duration::from_secs(300);

/// The wait before the automatic restart after `restarts` earlier ones in a
/// row: one second, doubling, up to `max`.
fn restart_delay(restarts: u32, max: Duration) -> Duration {
    Duration::from_secs(1)
        .saturating_mul(1u32 << restarts.min(20))
        .min(max)
}

#[derive(Debug, thiserror::Error)]
pub enum HerderError {
    #[error("Connector {0} not found")]
    NotFound(String),
    #[error("Task {1} of connector {0} not found")]
    TaskNotFound(String, u32),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("Connector configuration is invalid and contains the following {} error(s):\n{}", .0.0.len(), .0)]
    Invalid(ConfigErrors),
    #[error("{0}")]
    Internal(String),
}

/// A connector looked up by name: absent is [`HerderError::NotFound`].
trait OrNotFound<T> {
    fn or_not_found(self, name: &str) -> Result<T, HerderError>;
}

impl<T> OrNotFound<T> for Option<T> {
    fn or_not_found(self, name: &str) -> Result<T, HerderError> {
        self.ok_or_else(|| HerderError::NotFound(name.to_owned()))
    }
}

/// `GET /connectors/{name}`: the config (secrets masked), its tasks and type.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectorInfo {
    pub name: String,
    pub config: TaskConfig,
    pub tasks: Vec<TaskId>,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskId {
    pub connector: String,
    pub task: u32,
}

/// A connector's state and identity, for `/metrics` (Connect's connector-metrics).
#[derive(Debug)]
pub struct ConnectorMetricsView {
    pub name: String,
    pub state: State,
    /// `source` or `sink`.
    pub kind: &'static str,
    pub class: String,
    pub version: String,
}

/// A task's counters, for `/metrics`.
#[derive(Debug)]
pub struct TaskMetricsView {
    pub connector: String,
    pub task: u32,
    /// `source` or `sink`.
    pub kind: &'static str,
    pub state: State,
    /// The task is retrying a failure of its source or destination.
    pub retrying: bool,
    /// Automatic restarts in a row after failures.
    pub restarts: u32,
    pub metrics: Arc<TaskMetrics>,
}

/// One task of `GET /connectors/{name}/assignments` and `/lag`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskAssignment {
    pub task: u32,
    pub state: State,
    pub worker_id: String,
    /// Whether this worker runs the task (and so knows its partitions).
    pub local: bool,
    /// Sink tasks: the partitions assigned, with their offsets.
    pub partitions: Option<Vec<crate::metrics::PartitionLag>>,
}

struct Task {
    /// The config it was started with: in a cluster, a task whose published
    /// config changes is restarted with the new one.
    config: TaskConfig,
    control: watch::Sender<TargetState>,
    /// `None` when the task could not even be built (its failure says why).
    handle: Option<JoinHandle<()>>,
    health: Arc<TaskHealth>,
    metrics: Option<Arc<TaskMetrics>>,
    started: Instant,
    /// Automatic restarts in a row, and when the next one is due.
    restarts: u32,
    next_restart: Option<Instant>,
}

struct Connector {
    config: ConnectorConfig,
    target: TargetState,
    instance: Option<ConnectorInstance>,
    /// Why the connector itself failed to start, if it did.
    failure: Option<String>,
    /// Why its stored config no longer validates: it stays FAILED, but known,
    /// so it can be read, replaced or deleted over REST.
    invalid: Option<String>,
    /// Automatic restarts of the failed instance in a row, and when the next is due.
    restarts: u32,
    next_restart: Option<Instant>,
    task_configs: Vec<TaskConfig>,
    tasks: BTreeMap<u32, Task>,
    active_topics: ActiveTopics,
}

impl Connector {
    fn new(config: ConnectorConfig, target: TargetState) -> Self {
        Self {
            config,
            target,
            instance: None,
            failure: None,
            invalid: None,
            restarts: 0,
            next_restart: None,
            task_configs: Vec::new(),
            tasks: BTreeMap::new(),
            active_topics: ActiveTopics::default(),
        }
    }
}

pub struct Herder {
    worker: Arc<Worker>,
    configs: Arc<dyn ConfigBackingStore>,
    statuses: Arc<dyn StatusBackingStore>,
    /// Distributed mode: the slots this worker holds. `None` in standalone,
    /// where this worker runs everything.
    placement: Option<Arc<Placement>>,
    worker_id: std::sync::RwLock<String>,
    connectors: Mutex<BTreeMap<String, Connector>>,
    startups: crate::metrics::Startups,
}

impl Herder {
    pub fn new(
        worker: Worker,
        configs: Arc<dyn ConfigBackingStore>,
        statuses: Arc<dyn StatusBackingStore>,
    ) -> Self {
        Self {
            worker: Arc::new(worker),
            configs,
            statuses,
            placement: None,
            worker_id: std::sync::RwLock::new("standalone".into()),
            connectors: Mutex::new(BTreeMap::new()),
            startups: crate::metrics::Startups::default(),
        }
    }

    /// Distributed mode: run only what `placement` gives this worker.
    pub fn with_placement(mut self, placement: Arc<Placement>) -> Self {
        self.placement = Some(placement);
        self
    }

    /// Whether this worker runs `part` of `connector`.
    fn owns(&self, connector: &str, part: Part) -> bool {
        self.placement
            .as_ref()
            .is_none_or(|p| p.owns(connector, part))
    }

    /// The task configs tasks are started from: standalone, what this
    /// worker's instance made; in a cluster, what the connector part's worker
    /// published in the config topic (Connect's `task-`/`commit-` records),
    /// the same on every worker.
    fn runnable_configs(&self, c: &Connector) -> Vec<TaskConfig> {
        match &self.placement {
            None => c.task_configs.clone(),
            Some(_) if c.target == TargetState::Stopped || c.invalid.is_some() => Vec::new(),
            Some(_) => self
                .configs
                .task_configs(&c.config.name)
                .unwrap_or_default(),
        }
    }

    /// Starts the tasks this worker owns and does not run yet.
    fn spawn_owned_tasks(&self, c: &mut Connector) {
        for (id, config) in self.runnable_configs(c).into_iter().enumerate() {
            let id = id as u32;
            if self.owns(&c.config.name, Part::Task(id)) && !c.tasks.contains_key(&id) {
                self.spawn_task(c, id, config);
            }
        }
    }

    /// Distributed mode: completed rebalances, slots held, and when slots were
    /// last gained (ms since the epoch); `None` in standalone.
    pub fn rebalance_state(&self) -> Option<(u64, u64, u64)> {
        self.placement.as_ref().map(|p| {
            let (rebalances, slots) = p.rebalance_counts();
            (rebalances, slots, p.generation())
        })
    }

    /// Connector and task starts by outcome, for `/metrics`.
    pub fn startups(&self) -> &crate::metrics::Startups {
        &self.startups
    }

    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// The id statuses report (`host:port` of the REST listener, as Connect does).
    pub fn set_worker_id(&self, id: String) {
        if let Ok(mut w) = self.worker_id.write() {
            *w = id;
        }
    }

    /// `host:port` of the REST listener, as statuses report it.
    pub fn worker_id(&self) -> String {
        self.worker_id.read().map(|w| w.clone()).unwrap_or_default()
    }

    /// Starts the connectors of `files` and those created over REST. Only what
    /// was created or changed over REST is in the store: a connector that comes
    /// from a file alone runs only while its file is given. A file's config
    /// replaces a stored one of the same name; a pause or stop made over REST
    /// is kept.
    pub async fn load(&self, files: Vec<ConnectorConfig>) -> Result<(), HerderError> {
        let mut stored = self.configs.all();
        let mut connectors = self.connectors.lock().await;
        for c in files {
            let target = match stored.remove(&c.name) {
                Some(s) => {
                    if s.config != c.written {
                        info!(connector = %c.name, "the config file replaces the config stored over REST");
                    }
                    s.target_state
                }
                None => TargetState::Running,
            };
            let name = c.name.clone();
            let started = self.start(c, target);
            connectors.insert(name, started);
        }
        for (name, entry) in stored {
            let c = self.start_stored(&name, entry);
            connectors.insert(name, c);
        }
        Ok(())
    }

    /// Starts a connector from its stored entry; one whose config no longer
    /// validates stays known, FAILED, so it can be replaced or deleted.
    fn start_stored(&self, name: &str, entry: StoredConnector) -> Connector {
        let rules = self.worker.config().connector_rules();
        match ConnectorConfig::from_written(entry.config.clone(), self.worker.plugins(), rules) {
            Ok(config) => self.start(config, entry.target_state),
            Err(errors) => {
                let why = format!("the stored config is not valid on this worker: {errors}");
                error!(connector = %name, "not starting the connector: {why}");
                let config = ConnectorConfig::unvalidated(entry.config, self.worker.plugins());
                let mut c = Connector::new(config, entry.target_state);
                c.invalid = Some(why.clone());
                c.failure = Some(why);
                c
            }
        }
    }

    pub async fn names(&self) -> Vec<String> {
        if let Err(e) = self.catch_up().await {
            warn!("listing the connectors known so far: {e}");
        }
        self.connectors.lock().await.keys().cloned().collect()
    }

    /// `POST /connectors`.
    pub async fn create(
        &self,
        name: &str,
        mut written: TaskConfig,
        initial: TargetState,
    ) -> Result<ConnectorInfo, HerderError> {
        check_name(name, &mut written)?;
        let config = self.validate(written)?;
        let mut connectors = self.connectors.lock().await;
        if connectors.contains_key(name) {
            return Err(HerderError::Conflict(format!(
                "Connector {name} already exists"
            )));
        }
        self.check_worker_tasks(&connectors, &config)?;
        let entry = StoredConnector {
            config: config.written.clone(),
            target_state: initial,
        };
        let store = self.configs.clone();
        let owned = name.to_owned();
        let created = blocking("the config store", move || store.create(&owned, entry))
            .await?
            .map_err(|e| HerderError::Internal(e.to_string()))?;
        if !created {
            // Another worker's create of this name came first.
            return Err(HerderError::Conflict(format!(
                "Connector {name} already exists"
            )));
        }
        let c = self.start(config, initial);
        let info = self.info_of(&c);
        connectors.insert(name.to_owned(), c);
        Ok(info)
    }

    /// `PUT /connectors/{name}/config`: creates or replaces; `true` if created.
    pub async fn put_config(
        &self,
        name: &str,
        mut written: TaskConfig,
    ) -> Result<(bool, ConnectorInfo), HerderError> {
        self.catch_up().await?;
        check_name(name, &mut written)?;
        let config = self.validate(written)?;
        let mut connectors = self.connectors.lock().await;
        self.check_worker_tasks(&connectors, &config)?;
        let target = connectors
            .get(name)
            .map_or(TargetState::Running, |c| c.target);
        self.persist(
            name,
            Some(StoredConnector {
                config: config.written.clone(),
                target_state: target,
            }),
        )
        .await?;
        let created = match connectors.remove(name) {
            Some(mut old) => {
                self.stop_all(&mut old).await;
                false
            }
            None => true,
        };
        info!(connector = %name, created, "connector config set");
        let c = self.start(config, target);
        let info = self.info_of(&c);
        connectors.insert(name.to_owned(), c);
        Ok((created, info))
    }

    /// `PATCH /connectors/{name}/config`: merges; a `None` value removes the key.
    pub async fn patch_config(
        &self,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConnectorInfo, HerderError> {
        self.catch_up().await?;
        let mut written = {
            let connectors = self.connectors.lock().await;
            let c = connectors.get(name).or_not_found(name)?;
            c.config.written.clone()
        };
        for (k, v) in patch {
            match v {
                Some(v) => written.insert(k, v),
                None => written.remove(&k),
            };
        }
        self.put_config(name, written).await.map(|(_, info)| info)
    }

    pub async fn delete(&self, name: &str) -> Result<(), HerderError> {
        self.catch_up().await?;
        let mut connectors = self.connectors.lock().await;
        let mut c = connectors.remove(name).or_not_found(name)?;
        if let Err(e) = self.persist(name, None).await {
            connectors.insert(name.to_owned(), c);
            return Err(e);
        }
        self.stop_all(&mut c).await;
        self.statuses.forget(name);
        info!(connector = %name, "connector deleted");
        Ok(())
    }

    /// Pause, resume or stop.
    pub async fn set_target(&self, name: &str, target: TargetState) -> Result<(), HerderError> {
        self.catch_up().await?;
        let mut connectors = self.connectors.lock().await;
        let c = connectors.get_mut(name).or_not_found(name)?;
        if c.target == target {
            return Ok(());
        }
        self.persist(
            name,
            Some(StoredConnector {
                config: c.config.written.clone(),
                target_state: target,
            }),
        )
        .await?;
        self.apply_target(c, target).await;
        Ok(())
    }

    /// Moves a connector's running parts to `target` (already stored).
    async fn apply_target(&self, c: &mut Connector, target: TargetState) {
        let was = std::mem::replace(&mut c.target, target);
        info!(connector = %c.config.name, from = ?was, to = ?target, "connector target state changed");
        match target {
            TargetState::Stopped => {
                self.stop_all(c).await;
                self.publish_connector(c);
            }
            TargetState::Running | TargetState::Paused if was == TargetState::Stopped => {
                // stop_all left the connector known but empty; start it as new.
                if self.owns(&c.config.name, Part::Connector) {
                    self.start_instance(c);
                }
                self.spawn_owned_tasks(c);
            }
            _ => {
                for (id, t) in &c.tasks {
                    t.health.clear_paused();
                    t.control.send_replace(target);
                    if target == TargetState::Running && t.health.failure().is_none() {
                        // A pause is reported by the task once it took effect;
                        // a resume at once, as Connect does.
                        let running = self.status_record(State::Running, None);
                        self.statuses.put_task(&c.config.name, *id, running);
                    }
                }
                self.publish_connector(c);
            }
        }
    }

    /// `POST /connectors/{name}/restart`. Returns the status as it was when the
    /// restart began (restarted parts RESTARTING) when tasks were included.
    pub async fn restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<ConnectorStatus, HerderError> {
        self.catch_up().await?;
        if self.placement.is_some() {
            self.read_statuses().await;
        }
        let mut connectors = self.connectors.lock().await;
        let c = connectors.get_mut(name).or_not_found(name)?;
        // In a cluster, the status every worker would answer.
        let mut status = match &self.placement {
            Some(placement) => self.cluster_status_of(placement, name, c),
            None => self.status_of(name, c),
        };
        let restart_connector = !only_failed || status.connector.state == State::Failed;
        let tasks: Vec<u32> = if include_tasks {
            status
                .tasks
                .iter()
                .filter(|t| !only_failed || t.state == State::Failed)
                .map(|t| t.id)
                .collect()
        } else {
            Vec::new()
        };
        if restart_connector {
            status.connector.state = State::Restarting;
            status.connector.trace = None;
        }
        for t in status.tasks.iter_mut().filter(|t| tasks.contains(&t.id)) {
            t.state = State::Restarting;
            t.trace = None;
        }
        if c.target == TargetState::Stopped {
            // Connect restarts a stopped connector into its target state,
            // which is stopped: the answer says RESTARTING, nothing runs.
            return Ok(status);
        }
        let request = RestartRequest {
            connector: name.to_owned(),
            task: None,
            include_tasks,
            only_failed,
        };
        // Distributed: every worker restarts what it runs, this one included,
        // when it reads the request back.
        if self.request_restart(request).await? {
            return Ok(status);
        }
        self.restart_local(c, restart_connector, tasks).await;
        Ok(status)
    }

    /// Restarts the connector instance (when `connector`) and those of
    /// `tasks` this worker runs.
    async fn restart_local(&self, c: &mut Connector, connector: bool, tasks: Vec<u32>) {
        let respawned = connector && self.restart_connector(c).await;
        // Tasks the connector's restart already started afresh start once.
        if !respawned {
            for id in tasks {
                if self.owns(&c.config.name, Part::Task(id)) {
                    self.restart_task_locked(c, id).await;
                }
            }
        }
    }

    /// Hands a restart to every worker through the config store; `false`
    /// when the store has no others (standalone).
    async fn request_restart(&self, request: RestartRequest) -> Result<bool, HerderError> {
        let store = self.configs.clone();
        blocking("the config store", move || store.request_restart(&request))
            .await?
            .map_err(|e| HerderError::Internal(e.to_string()))
    }

    /// `POST /connectors/{name}/tasks/{id}/restart`.
    pub async fn restart_task(&self, name: &str, id: u32) -> Result<(), HerderError> {
        self.catch_up().await?;
        let mut connectors = self.connectors.lock().await;
        let c = connectors.get_mut(name).or_not_found(name)?;
        if id >= self.task_count(c) {
            return Err(HerderError::TaskNotFound(name.to_owned(), id));
        }
        let request = RestartRequest {
            connector: name.to_owned(),
            task: Some(id),
            include_tasks: false,
            only_failed: false,
        };
        if !self.request_restart(request).await? {
            self.restart_task_locked(c, id).await;
        }
        Ok(())
    }

    pub async fn status(&self, name: &str) -> Result<ConnectorStatus, HerderError> {
        self.catch_up().await?;
        if let Some(placement) = &self.placement {
            self.read_statuses().await;
            let connectors = self.connectors.lock().await;
            let c = connectors.get(name).or_not_found(name)?;
            return Ok(self.cluster_status_of(placement, name, c));
        }
        let connectors = self.connectors.lock().await;
        let c = connectors.get(name).or_not_found(name)?;
        Ok(self.status_of(name, c))
    }

    pub async fn task_status(&self, name: &str, id: u32) -> Result<TaskStatus, HerderError> {
        self.status(name)
            .await?
            .tasks
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| HerderError::TaskNotFound(name.to_owned(), id))
    }

    pub async fn info(&self, name: &str) -> Result<ConnectorInfo, HerderError> {
        self.catch_up().await?;
        let connectors = self.connectors.lock().await;
        let c = connectors.get(name).or_not_found(name)?;
        Ok(self.info_of(c))
    }

    /// `GET /connectors/{name}/tasks`: each task's id and config (masked),
    /// with the `task.class` Connect's worker adds to every task config.
    pub async fn task_configs(&self, name: &str) -> Result<Vec<(TaskId, TaskConfig)>, HerderError> {
        self.catch_up().await?;
        let connectors = self.connectors.lock().await;
        let c = connectors.get(name).or_not_found(name)?;
        let task_class = self
            .worker
            .plugins()
            .connector(&c.config.class)
            .map_or(c.config.class.as_str(), |p| p.task_class);
        let configs = self.runnable_configs(c);
        Ok(configs
            .iter()
            .enumerate()
            .map(|(i, cfg)| {
                let mut config = self.masked(&c.config, cfg);
                config.insert("task.class".into(), task_class.to_owned());
                (
                    TaskId {
                        connector: name.to_owned(),
                        task: i as u32,
                    },
                    config,
                )
            })
            .collect())
    }

    pub async fn active_topics(&self, name: &str) -> Result<Vec<String>, HerderError> {
        let connectors = self.connectors.lock().await;
        let c = connectors.get(name).or_not_found(name)?;
        Ok(c.active_topics.list())
    }

    pub async fn reset_active_topics(&self, name: &str) -> Result<(), HerderError> {
        let connectors = self.connectors.lock().await;
        let c = connectors.get(name).or_not_found(name)?;
        c.active_topics.clear();
        Ok(())
    }

    /// `GET /connectors/{name}/offsets`.
    pub async fn offsets(&self, name: &str) -> Result<ConnectorOffsets, HerderError> {
        self.catch_up().await?;
        let (config, topics) = {
            let connectors = self.connectors.lock().await;
            let c = connectors.get(name).or_not_found(name)?;
            (c.config.clone(), c.active_topics.list())
        };
        offsets_api::read(&self.worker, &config, topics).await
    }

    /// `PATCH` (`Some`) or `DELETE` (`None`) `/connectors/{name}/offsets`; only
    /// for a stopped connector, as in Connect.
    pub async fn alter_offsets(
        &self,
        name: &str,
        changes: Option<ConnectorOffsets>,
    ) -> Result<String, HerderError> {
        self.catch_up().await?;
        let connectors = self.connectors.lock().await;
        let c = connectors.get(name).or_not_found(name)?;
        if c.target != TargetState::Stopped {
            return Err(HerderError::BadRequest(format!(
                "Connectors must be in the STOPPED state before their offsets can be modified. \
                 This can be done for the specified connector by issuing a 'PUT' request to the \
                 '/connectors/{name}/stop' endpoint"
            )));
        }
        let topics = c.active_topics.list();
        offsets_api::alter(&self.worker, &c.config, topics, changes).await
    }

    /// Every connector's and task's state, and the tasks' counters, for `/metrics`.
    pub async fn metrics(&self) -> (Vec<ConnectorMetricsView>, Vec<TaskMetricsView>) {
        let connectors = self.connectors.lock().await;
        let mut states = Vec::new();
        let mut tasks = Vec::new();
        for (name, c) in connectors.iter() {
            let status = self.status_of(name, c);
            states.push(ConnectorMetricsView {
                name: name.clone(),
                state: status.connector.state,
                kind: status.kind,
                class: c.config.class.clone(),
                version: status.connector.version.clone().unwrap_or_default(),
            });
            for t in status.tasks {
                let Some(task) = c.tasks.get(&t.id) else {
                    continue;
                };
                if let Some(m) = task.metrics.clone() {
                    m.observe_state(t.state == State::Running, t.state == State::Paused);
                    tasks.push(TaskMetricsView {
                        connector: name.clone(),
                        task: t.id,
                        kind: status.kind,
                        state: t.state,
                        retrying: task.health.retry_reason().is_some(),
                        restarts: task.restarts,
                        metrics: m,
                    });
                }
            }
        }
        (states, tasks)
    }

    /// Which worker and task holds which partition of `name`'s topics: this
    /// worker's tasks with their partitions as last refreshed (see `lag`);
    /// tasks another worker runs (distributed mode) with the worker its status
    /// names and no partitions, which only that worker knows.
    pub async fn assignments(&self, name: &str) -> Result<Vec<TaskAssignment>, HerderError> {
        let connectors = self.connectors.lock().await;
        let c = connectors.get(name).or_not_found(name)?;
        let status = self.status_of(name, c);
        Ok(status
            .tasks
            .into_iter()
            .map(|t| {
                let local = c.tasks.get(&t.id).and_then(|task| task.metrics.as_ref());
                TaskAssignment {
                    task: t.id,
                    state: t.state,
                    worker_id: t.worker_id,
                    local: local.is_some(),
                    partitions: local.map(|m| m.partitions()),
                }
            })
            .collect())
    }

    /// Stops every connector for shutdown (without persisting anything) and
    /// returns how many connectors and tasks were FAILED.
    pub async fn shutdown(&self) -> usize {
        let mut connectors = self.connectors.lock().await;
        let failed = connectors
            .iter()
            .map(|(name, c)| {
                let status = self.status_of(name, c);
                usize::from(status.connector.state == State::Failed)
                    + status
                        .tasks
                        .iter()
                        .filter(|t| t.state == State::Failed)
                        .count()
            })
            .sum();
        let all = std::mem::take(&mut *connectors);
        // Signal every task first, so they wind down together.
        for c in all.values() {
            for t in c.tasks.values() {
                t.control.send_replace(TargetState::Stopped);
            }
        }
        for (_, mut c) in all {
            self.stop_all(&mut c).await;
        }
        failed
    }

    /// Restarts failed tasks, and connectors whose start failed, each after a
    /// wait that doubles with every failure in a row (`auto.restart.*`), for
    /// as long as the herder lives. Connect leaves this to outside tooling.
    pub fn spawn_supervisor(self: &Arc<Self>) {
        let Some(max) = self.worker.config().auto_restart_backoff_max() else {
            return;
        };
        let herder = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SUPERVISOR_TICK);
            loop {
                tick.tick().await;
                let Some(h) = herder.upgrade() else { break };
                h.restart_failed(max).await;
            }
        });
    }

    async fn restart_failed(&self, max: Duration) {
        let now = Instant::now();
        let mut connectors = self.connectors.lock().await;
        for (name, c) in connectors.iter_mut() {
            if c.target == TargetState::Stopped || c.invalid.is_some() {
                continue;
            }
            if c.failure.is_some() {
                let due = *c
                    .next_restart
                    .get_or_insert_with(|| now + restart_delay(c.restarts, max));
                if now >= due {
                    c.restarts += 1;
                    c.next_restart = None;
                    warn!(connector = %name, restarts = c.restarts, "restarting the FAILED connector");
                    self.restart_connector(c).await;
                }
                continue;
            }
            c.restarts = 0;
            let mut due = Vec::new();
            for (id, t) in c.tasks.iter_mut() {
                if t.health.failure().is_none() {
                    continue;
                }
                if t.next_restart.is_none() && t.started.elapsed() >= RESTARTS_FORGOTTEN_AFTER {
                    // It ran well for a long while: this failure is a first one.
                    t.restarts = 0;
                }
                let at = *t
                    .next_restart
                    .get_or_insert_with(|| now + restart_delay(t.restarts, max));
                if now >= at {
                    due.push((*id, t.restarts + 1));
                }
            }
            for (id, restarts) in due {
                warn!(connector = %name, task = id, restarts, "restarting the FAILED task");
                self.restart_task_locked(c, id).await;
                if let Some(t) = c.tasks.get_mut(&id) {
                    t.restarts = restarts;
                }
            }
        }
    }

    fn validate(&self, written: TaskConfig) -> Result<ConnectorConfig, HerderError> {
        ConnectorConfig::from_written(
            written,
            self.worker.plugins(),
            self.worker.config().connector_rules(),
        )
        .map_err(HerderError::Invalid)
    }

    /// Refuses a config whose `tasks.max` would take the worker's connectors
    /// together past `worker.tasks.limit`, before anything is stored.
    fn check_worker_tasks(
        &self,
        connectors: &BTreeMap<String, Connector>,
        config: &ConnectorConfig,
    ) -> Result<(), HerderError> {
        let limit = self.worker.config().connector_rules().worker_tasks_limit;
        let others: usize = connectors
            .iter()
            .filter(|(name, _)| **name != config.name)
            .map(|(_, c)| c.config.tasks_max)
            .sum();
        if others + config.tasks_max > limit {
            return Err(HerderError::Invalid(ConfigErrors::single(
                "tasks.max",
                format!(
                    "{} more tasks would take this worker past its limit of {limit} (worker.tasks.limit); {others} are already configured",
                    config.tasks_max
                ),
            )));
        }
        Ok(())
    }

    async fn persist(&self, name: &str, entry: Option<StoredConnector>) -> Result<(), HerderError> {
        let store = self.configs.clone();
        let name = name.to_owned();
        blocking("the config store", move || store.put(&name, entry))
            .await?
            .map_err(|e| HerderError::Internal(e.to_string()))
    }

    /// Starts a connector and, unless it is to stay stopped, its tasks.
    fn start(&self, config: ConnectorConfig, target: TargetState) -> Connector {
        let mut c = Connector::new(config, target);
        if target != TargetState::Stopped {
            if self.owns(&c.config.name, Part::Connector) {
                self.start_instance(&mut c);
            }
            self.spawn_owned_tasks(&mut c);
        }
        c
    }

    fn start_instance(&self, c: &mut Connector) {
        if let Some(why) = &c.invalid {
            c.failure = Some(why.clone());
            return;
        }
        let started = self.worker.start_connector(&c.config);
        self.startups.connectors.record(started.is_ok());
        match started {
            Ok((instance, configs)) => {
                c.instance = Some(instance);
                self.publish_task_configs(&c.config, &configs);
                c.task_configs = configs;
                c.failure = None;
            }
            Err(e) => {
                error!(connector = %c.config.name, trace = %e.chain(), "connector FAILED");
                c.failure = Some(e.chain());
                c.task_configs.clear();
            }
        }
        self.publish_connector(c);
    }

    /// Distributed: the worker running the connector part publishes the task
    /// configs its instance made, for every worker to start its tasks from.
    /// A value the connector copied from a provider reference is published as
    /// the reference, as Connect stores it, so no secret a provider supplies
    /// is written to the config topic; each worker resolves it when it starts
    /// the task. In the background: a config topic write waits to be read back.
    fn publish_task_configs(&self, config: &ConnectorConfig, configs: &[TaskConfig]) {
        let name = &config.name;
        if self.placement.is_none() || !self.owns(name, Part::Connector) {
            return;
        }
        let configs = unresolved(config, configs);
        if self.configs.task_configs(name).as_ref() == Some(&configs) {
            return;
        }
        let (store, name) = (self.configs.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.put_task_configs(&name, &configs) {
                warn!(connector = %name, "cannot publish the task configs: {e}");
            }
        });
    }

    /// Tells the status store what the connector is doing now.
    fn publish_connector(&self, c: &Connector) {
        if !self.owns(&c.config.name, Part::Connector) {
            return; // The connector part's owner reports it.
        }
        let record = match &c.failure {
            Some(trace) => self.status_record(State::Failed, Some(trace.clone())),
            None => self.status_record(reported(c.target), None),
        };
        self.statuses.put_connector(&c.config.name, record);
    }

    /// A status record written by this worker in its current generation
    /// (standalone has one, 0: only it writes).
    fn status_record(&self, state: State, trace: Option<String>) -> StatusRecord {
        StatusRecord {
            state,
            trace,
            worker_id: self.worker_id(),
            generation: self.placement.as_ref().map_or(0, |p| p.generation()),
        }
    }

    fn spawn_task(&self, c: &mut Connector, id: u32, config: TaskConfig) {
        let (control, rx) = watch::channel(c.target);
        let health = {
            let (statuses, name) = (self.statuses.clone(), c.config.name.clone());
            let paused = self.status_record(State::Paused, None);
            Arc::new(TaskHealth::reporting(move |report| {
                let record = match report {
                    Report::Paused => paused.clone(),
                    // A task riding out an outage is RUNNING; its trace says
                    // why nothing moves, on every worker.
                    Report::Retrying(why) => StatusRecord {
                        state: State::Running,
                        trace: why,
                        ..paused.clone()
                    },
                };
                statuses.put_task(&name, id, record)
            }))
        };
        let wiring = TaskWiring {
            control: rx,
            active_topics: c.active_topics.clone(),
            health: health.clone(),
            lease: self.placement.as_ref().map(|p| p.lease().clone()),
        };
        let name = c.config.name.clone();
        let task = match (&c.instance, &self.placement) {
            // A cluster's tasks run from the published configs, whether or
            // not the connector part runs here, their references resolved here.
            (_, Some(_)) => self
                .worker
                .config()
                .connector_rules()
                .providers
                .resolve(&config)
                .map_err(|e| format!("the published task config does not resolve: {e}"))
                .and_then(|resolved| {
                    self.worker
                        .task_of_class(&c.config, id, resolved, wiring)
                        .map_err(|e| e.to_string())
                }),
            (Some(instance), None) => self
                .worker
                .task(&c.config, instance, id, config.clone(), wiring)
                .map_err(|e| e.to_string()),
            (None, None) => Err("the connector is not running".to_owned()),
        };
        self.startups.tasks.record(task.is_ok());
        let (handle, metrics) = match task {
            Ok(run) => {
                self.statuses
                    .put_task(&name, id, self.status_record(State::Running, None));
                let h = health.clone();
                let statuses = self.statuses.clone();
                let ended = self.status_record(State::Unassigned, None);
                let handle = tokio::spawn(async move {
                    match run.run.await {
                        Ok(()) => {
                            info!(connector = %name, task = id, "task stopped");
                            statuses.put_task(&name, id, ended);
                        }
                        Err(e) => {
                            error!(connector = %name, task = id, trace = %e.chain(), "task FAILED");
                            h.fail(e.chain());
                            let failed = StatusRecord {
                                state: State::Failed,
                                trace: Some(e.chain()),
                                ..ended
                            };
                            statuses.put_task(&name, id, failed);
                        }
                    }
                });
                (Some(handle), Some(run.metrics))
            }
            Err(why) => {
                error!(connector = %name, task = id, trace = %why, "task FAILED");
                self.statuses.put_task(
                    &name,
                    id,
                    self.status_record(State::Failed, Some(why.clone())),
                );
                health.fail(why);
                (None, None)
            }
        };
        c.tasks.insert(
            id,
            Task {
                config,
                control,
                handle,
                health,
                metrics,
                started: Instant::now(),
                restarts: 0,
                next_restart: None,
            },
        );
    }

    /// Ends every task and the connector instance; the connector stays known.
    async fn stop_all(&self, c: &mut Connector) {
        let tasks = std::mem::take(&mut c.tasks);
        self.stop_tasks(&c.config.name, tasks).await;
        if let Some(mut instance) = c.instance.take() {
            instance.stop();
        }
        c.task_configs.clear();
        c.failure = None;
    }

    /// Stops `tasks` together: all are told first, then each is awaited
    /// within one graceful timeout, and abandoned past it.
    async fn stop_tasks(&self, connector: &str, tasks: BTreeMap<u32, Task>) {
        for t in tasks.values() {
            t.control.send_replace(TargetState::Stopped);
        }
        let deadline = Instant::now() + self.worker.config().graceful_timeout();
        for (id, t) in tasks {
            let Some(mut handle) = t.handle else { continue };
            if tokio::time::timeout_at(deadline.into(), &mut handle)
                .await
                .is_err()
            {
                warn!(connector = %connector, task = id, "task did not stop within task.shutdown.graceful.timeout.ms; abandoning it");
                handle.abort();
            }
        }
    }

    /// Restarts the connector instance; its tasks are restarted only if their
    /// configs changed, as in Connect. True when the tasks were started afresh.
    async fn restart_connector(&self, c: &mut Connector) -> bool {
        if let Some(mut instance) = c.instance.take() {
            instance.stop();
        }
        let before = std::mem::take(&mut c.task_configs);
        self.start_instance(c);
        if c.task_configs != before || c.tasks.is_empty() {
            let tasks = std::mem::take(&mut c.tasks);
            self.stop_tasks(&c.config.name, tasks).await;
            self.spawn_owned_tasks(c);
            return true;
        }
        false
    }

    async fn restart_task_locked(&self, c: &mut Connector, id: u32) {
        if let Some(t) = c.tasks.remove(&id) {
            self.stop_tasks(&c.config.name, BTreeMap::from([(id, t)]))
                .await;
        }
        info!(connector = %c.config.name, task = id, "restarting task");
        if let Some(config) = self.runnable_configs(c).into_iter().nth(id as usize) {
            self.spawn_task(c, id, config);
        }
    }

    fn status_of(&self, name: &str, c: &Connector) -> ConnectorStatus {
        let worker_id = self.worker_id();
        let version = self
            .worker
            .plugins()
            .connector(&c.config.class)
            .map(|p| p.version.to_owned());
        let remote = self.statuses.connector(name);
        let connector = match (&c.failure, c.target) {
            // Another worker runs the connector part: what it reported.
            _ if !self.owns(name, Part::Connector) => match remote {
                Some(r) => ConnectorState {
                    state: r.state,
                    worker_id: r.worker_id,
                    version: version.clone(),
                    trace: r.trace,
                },
                None => ConnectorState {
                    state: State::Unassigned,
                    worker_id: String::new(),
                    version: version.clone(),
                    trace: None,
                },
            },
            (Some(trace), _) => ConnectorState {
                state: State::Failed,
                worker_id: worker_id.clone(),
                version: version.clone(),
                trace: Some(trace.clone()),
            },
            (None, target) => ConnectorState {
                state: reported(target),
                worker_id: worker_id.clone(),
                version: version.clone(),
                trace: None,
            },
        };
        let mut tasks: BTreeMap<u32, TaskStatus> = c
            .tasks
            .iter()
            .map(|(id, t)| {
                let failure = t.health.failure();
                let state = if failure.is_some() {
                    State::Failed
                } else if t.handle.as_ref().is_none_or(|h| h.is_finished()) {
                    State::Unassigned
                } else if c.target == TargetState::Paused && t.health.is_paused() {
                    // PAUSED once the task has stopped moving records; until
                    // then it is still RUNNING, as in Connect.
                    State::Paused
                } else {
                    State::Running
                };
                // A task riding out an outage is RUNNING; its trace says why
                // nothing moves.
                let trace = failure.or_else(|| {
                    (state == State::Running)
                        .then(|| t.health.retry_reason())
                        .flatten()
                });
                let status = TaskStatus {
                    id: *id,
                    state,
                    worker_id: worker_id.clone(),
                    version: version.clone(),
                    trace,
                };
                (*id, status)
            })
            .collect();
        // Distributed: the tasks other workers run, as they reported them.
        if self.placement.is_some() && c.target != TargetState::Stopped {
            let count = self.task_count(c);
            for (id, r) in self.statuses.tasks(name) {
                if id < count && !tasks.contains_key(&id) {
                    let status = TaskStatus {
                        id,
                        state: r.state,
                        worker_id: r.worker_id,
                        version: version.clone(),
                        trace: r.trace,
                    };
                    tasks.insert(id, status);
                }
            }
        }
        ConnectorStatus {
            name: name.to_owned(),
            connector,
            tasks: tasks.into_values().collect(),
            kind: c.config.kind.as_str(),
        }
    }

    /// How many tasks the connector has: known from its instance where this
    /// worker runs it, else from the tasks other workers reported.
    fn task_count(&self, c: &Connector) -> u32 {
        if self.placement.is_none() {
            return c.task_configs.len() as u32;
        }
        if c.target == TargetState::Stopped {
            return 0;
        }
        // In a cluster, what the connector part's worker published: the
        // same on every worker.
        if let Some(published) = self.configs.task_configs(&c.config.name) {
            return published.len() as u32;
        }
        if c.instance.is_some() {
            return c.task_configs.len() as u32;
        }
        let max = c.config.tasks_max as u32;
        self.statuses
            .tasks(&c.config.name)
            .into_keys()
            .filter(|id| *id < max)
            .map(|id| id + 1)
            .max()
            .unwrap_or(0)
    }

    fn info_of(&self, c: &Connector) -> ConnectorInfo {
        ConnectorInfo {
            name: c.config.name.clone(),
            config: self.masked(&c.config, &c.config.written),
            tasks: (0..self.task_count(c))
                .map(|task| TaskId {
                    connector: c.config.name.clone(),
                    task,
                })
                .collect(),
            kind: c.config.kind.as_str(),
        }
    }

    /// `values` as a REST answer may show them (see `shown`).
    fn masked(&self, config: &ConnectorConfig, values: &TaskConfig) -> TaskConfig {
        let plugin_def = self
            .worker
            .plugins()
            .connector(&config.class)
            .map(|p| (p.config_def)());
        let common = connector_config_def(config.kind);
        values
            .iter()
            .map(|(k, v)| (k.clone(), shown(k, v, &common, plugin_def.as_ref())))
            .collect()
    }
}

/// `configs`, made from `config`'s resolved values, with each value that is
/// exactly what a provider reference of `config` resolved to put back as
/// that reference.
fn unresolved(config: &ConnectorConfig, configs: &[TaskConfig]) -> Vec<TaskConfig> {
    configs
        .iter()
        .map(|task| {
            task.iter()
                .map(|(k, v)| {
                    let written = config
                        .written
                        .get(k)
                        .filter(|w| *w != v && config.resolved.get(k) == Some(v));
                    (k.clone(), written.unwrap_or(v).clone())
                })
                .collect()
        })
        .collect()
}

/// A healthy connector's state: what it was asked to be doing.
fn reported(target: TargetState) -> State {
    match target {
        TargetState::Running => State::Running,
        TargetState::Paused => State::Paused,
        TargetState::Stopped => State::Stopped,
    }
}

/// `value` of `key` as a REST answer may show it: `[hidden]` for a secret,
/// unless the value is wholly one `${provider:...}` reference, which names
/// where the secret is, not the secret (`pw${x}` may hold the secret). Any
/// other value shows with the secrets written inside it hidden (a password in
/// a connection URL).
pub fn shown(
    key: &str,
    value: &str,
    common: &sluice_api::config::ConfigDef,
    plugin: Option<&sluice_api::config::ConfigDef>,
) -> String {
    if is_secret(key, common, plugin) && !is_whole_reference(value) {
        HIDDEN.to_owned()
    } else {
        sluice_api::config::hide_embedded_secrets(value).into_owned()
    }
}

/// Whether a key holds a secret: password-typed in a definition, or named like
/// one (pass-through client settings such as `consumer.override.sasl.jaas.config`
/// are in no definition).
fn is_secret(
    key: &str,
    common: &sluice_api::config::ConfigDef,
    plugin: Option<&sluice_api::config::ConfigDef>,
) -> bool {
    use sluice_api::config::ConfigType;
    let typed = [Some(common), plugin]
        .into_iter()
        .flatten()
        .filter_map(|d| d.key(key))
        .any(|k| k.config_type == ConfigType::Password);
    let lower = key.to_ascii_lowercase();
    typed
        || lower.contains("password")
        || lower.contains("secret")
        || lower.ends_with("jaas.config")
        || lower.ends_with(".token")
}

/// The `name` inside a config must match the one in the URL (Connect's rule);
/// when absent it is filled in.
fn check_name(name: &str, written: &mut TaskConfig) -> Result<(), HerderError> {
    check_connector_name(name)
        .map_err(|why| HerderError::BadRequest(format!("Connector name {why}")))?;
    match written.get("name") {
        Some(n) if n != name => Err(HerderError::BadRequest(format!(
            "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
        ))),
        Some(_) => Ok(()),
        None => {
            written.insert("name".into(), name.to_owned());
            Ok(())
        }
    }
}
