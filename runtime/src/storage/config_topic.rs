//! Connector configs in distributed mode: the config topic (one partition, so
//! one total order of every change), in Connect's record format:
//! `connector-<name>` → `{"properties": {...}}` and `target-state-<name>` →
//! `{"state": "STARTED"|"PAUSED", "state.v2": "STARTED"|"PAUSED"|"STOPPED"}`,
//! tombstones for a deletion. Every worker reads the whole topic, so all hold
//! the same view, and a write returns only once this worker has read it back.
//!
//! A connector's task configs are Connect's `task-<name>-<id>` →
//! `{"properties": {...}}` records followed by `commit-<name>` →
//! `{"tasks": n}`, written by the worker that runs the connector instance;
//! a set counts only once committed.
//!
//! A restart request is `restart-connector-<name>` →
//! `{"include-tasks", "only-failed"}` (Connect's) or `restart-task-<name>-<id>`
//! → `{}` (sluice's own; Connect forwards a task restart over HTTP instead).
//! Every worker acts on those it reads after it started, on the parts it
//! runs; those in the log before are history, as in Connect.
//!
//! A create carries `"sluice.create": "<nonce>"` and the initial target state
//! beside the properties, and is applied only if the name is free at its
//! place in the log: of two workers racing to create one name, the one whose
//! record comes first wins, and the other learns, when it reads its own
//! record back, that it was not applied. Connect ignores the extra fields.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use sluice_api::TaskConfig;
use tokio::sync::watch;
use tracing::debug;

use super::configs::{ConfigBackingStore, RestartRequest, StoredConnector};
use super::kafka_log::{Entry, KafkaLog, LogRecord};
use crate::config::WorkerConfig;
use crate::control::TargetState;
use crate::error::WorkerError;

const CONNECTOR: &str = "connector-";
const RESTART_CONNECTOR: &str = "restart-connector-";
const RESTART_TASK: &str = "restart-task-";
const TASK: &str = "task-";
const COMMIT: &str = "commit-";
const TARGET: &str = "target-state-";
const CREATE: &str = "sluice.create";
const INITIAL: &str = "sluice.target.state";

#[derive(Default)]
struct View {
    configs: BTreeMap<String, TaskConfig>,
    /// Kept apart from configs: Connect may write a target state first.
    targets: BTreeMap<String, TargetState>,
    /// The nonce of the create that made each connector, to tell a writer
    /// whether its create won.
    created_by: BTreeMap<String, String>,
    /// Committed task configs, and those written but not yet committed.
    tasks: BTreeMap<String, Vec<TaskConfig>>,
    uncommitted: BTreeMap<String, BTreeMap<u32, TaskConfig>>,
    /// Restart requests read once the store was open, not yet taken.
    restarts: Vec<RestartRequest>,
    /// The log was read to its end once: requests from now on are new.
    started: bool,
}

type Shared = Arc<Mutex<View>>;

pub struct KafkaConfigStore {
    log: KafkaLog,
    view: Shared,
    changes: watch::Sender<u64>,
    /// This store's creates: a prefix unique to this store, plus a counter.
    nonce_prefix: String,
    nonces: AtomicU64,
}

impl KafkaConfigStore {
    /// Reads the config topic to its end.
    pub fn open(
        worker: &WorkerConfig,
        topic: &str,
        timeout: Duration,
    ) -> Result<Self, WorkerError> {
        let view: Shared = Arc::default();
        let (changes, _) = watch::channel(0u64);
        let (v, c) = (view.clone(), changes.clone());
        let log = KafkaLog::open(worker, topic, timeout, move |r| {
            apply(&v, &r);
            c.send_modify(|n| *n += 1);
        })?;
        lock(&view).started = true;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(Self {
            log,
            view,
            changes,
            // Unique in the cluster: the host, the process and when it started.
            nonce_prefix: format!("{}/{}/{started}", host_name(), std::process::id()),
            nonces: AtomicU64::new(0),
        })
    }

    /// Bumped whenever a record changes the view, whoever wrote it.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, View> {
        lock(&self.view)
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

fn lock(view: &Shared) -> std::sync::MutexGuard<'_, View> {
    // Whole entries are replaced under the lock; a poisoned one is consistent.
    view.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Connect's names: `STARTED` is running.
fn target_text(t: TargetState) -> &'static str {
    match t {
        TargetState::Running => "STARTED",
        TargetState::Paused => "PAUSED",
        TargetState::Stopped => "STOPPED",
    }
}

fn parse_target(text: &str) -> Option<TargetState> {
    match text {
        "STARTED" => Some(TargetState::Running),
        "PAUSED" => Some(TargetState::Paused),
        "STOPPED" => Some(TargetState::Stopped),
        _ => None,
    }
}

fn properties(value: &Map<String, Value>) -> Option<TaskConfig> {
    let props = value.get("properties")?.as_object()?;
    Some(
        props
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect(),
    )
}

fn apply(view: &Shared, record: &LogRecord<'_>) {
    let Some(key) = record.key.and_then(|k| std::str::from_utf8(k).ok()) else {
        return;
    };
    let value: Option<Map<String, Value>> =
        record.value.and_then(|v| serde_json::from_slice(v).ok());
    let mut view = lock(view);
    if let Some(request) = restart_of(key, value.as_ref()) {
        if view.started {
            view.restarts.push(request);
        }
        return;
    }
    if let Some((name, id)) = key.strip_prefix(TASK).and_then(|r| r.rsplit_once('-')) {
        if let (Ok(id), Some(config)) = (id.parse::<u32>(), value.as_ref().and_then(properties)) {
            view.uncommitted
                .entry(name.to_owned())
                .or_default()
                .insert(id, config);
        }
        return;
    }
    if let Some(name) = key.strip_prefix(COMMIT) {
        let count = value
            .as_ref()
            .and_then(|v| v.get("tasks"))
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32;
        let mut written = view.uncommitted.remove(name).unwrap_or_default();
        let set: Option<Vec<TaskConfig>> = (0..count).map(|id| written.remove(&id)).collect();
        match set {
            Some(set) => {
                view.tasks.insert(name.to_owned(), set);
            }
            None => {
                debug!(connector = %name, "a task config commit without all its task configs; keeping the last set")
            }
        }
        return;
    }
    if let Some(name) = key.strip_prefix(CONNECTOR) {
        let Some(value) = value else {
            view.configs.remove(name);
            view.tasks.remove(name);
            view.targets.remove(name);
            view.created_by.remove(name);
            return;
        };
        let Some(config) = properties(&value) else {
            debug!(connector = %name, offset = record.offset, "skipping a connector record without properties");
            return;
        };
        match value.get(CREATE).and_then(Value::as_str) {
            Some(nonce) => {
                if view.configs.contains_key(name) {
                    return; // Lost a race: the name was taken earlier in the log.
                }
                view.created_by.insert(name.to_owned(), nonce.to_owned());
                if let Some(t) = value
                    .get(INITIAL)
                    .and_then(Value::as_str)
                    .and_then(parse_target)
                {
                    view.targets.insert(name.to_owned(), t);
                }
            }
            None => {
                view.created_by.remove(name);
            }
        }
        view.configs.insert(name.to_owned(), config);
    } else if let Some(name) = key.strip_prefix(TARGET) {
        match value {
            None => {
                view.targets.remove(name);
            }
            Some(v) => {
                // Connect 3.5+ writes `state.v2` (which knows STOPPED) beside `state`.
                let state = v
                    .get("state.v2")
                    .or_else(|| v.get("state"))
                    .and_then(Value::as_str)
                    .and_then(parse_target);
                if let Some(t) = state {
                    view.targets.insert(name.to_owned(), t);
                }
            }
        }
    }
}

fn restart_of(key: &str, value: Option<&Map<String, Value>>) -> Option<RestartRequest> {
    let flag = |k: &str| value.and_then(|v| v.get(k)).and_then(Value::as_bool) == Some(true);
    if let Some(name) = key.strip_prefix(RESTART_CONNECTOR) {
        return Some(RestartRequest {
            connector: name.to_owned(),
            task: None,
            include_tasks: flag("include-tasks"),
            only_failed: flag("only-failed"),
        });
    }
    let (name, id) = key.strip_prefix(RESTART_TASK)?.rsplit_once('-')?;
    Some(RestartRequest {
        connector: name.to_owned(),
        task: Some(id.parse().ok()?),
        include_tasks: false,
        only_failed: false,
    })
}

fn bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn target_record(name: &str, target: TargetState) -> Entry {
    let v1 = match target {
        // Connect's first format has no STOPPED; its readers take PAUSED.
        TargetState::Stopped => "PAUSED",
        t => target_text(t),
    };
    (
        format!("{TARGET}{name}").into_bytes(),
        Some(bytes(
            &json!({"state": v1, "state.v2": target_text(target)}),
        )),
    )
}

impl ConfigBackingStore for KafkaConfigStore {
    fn read_to_end(&self) -> Result<(), WorkerError> {
        self.log.read_to_end()
    }

    fn all(&self) -> BTreeMap<String, StoredConnector> {
        let view = self.lock();
        view.configs
            .iter()
            .map(|(name, config)| {
                let target_state = view.targets.get(name).copied().unwrap_or_default();
                (
                    name.clone(),
                    StoredConnector {
                        config: config.clone(),
                        target_state,
                    },
                )
            })
            .collect()
    }

    fn put(&self, name: &str, entry: Option<StoredConnector>) -> Result<(), WorkerError> {
        let records = match entry {
            Some(e) => vec![
                target_record(name, e.target_state),
                (
                    format!("{CONNECTOR}{name}").into_bytes(),
                    Some(bytes(&json!({ "properties": e.config }))),
                ),
            ],
            None => vec![
                (format!("{TARGET}{name}").into_bytes(), None),
                (format!("{CONNECTOR}{name}").into_bytes(), None),
            ],
        };
        self.log.append(&records)
    }

    fn request_restart(&self, r: &RestartRequest) -> Result<bool, WorkerError> {
        let record = match r.task {
            Some(id) => (format!("{RESTART_TASK}{}-{id}", r.connector), json!({})),
            None => (
                format!("{RESTART_CONNECTOR}{}", r.connector),
                json!({"include-tasks": r.include_tasks, "only-failed": r.only_failed}),
            ),
        };
        self.log
            .append(&[(record.0.into_bytes(), Some(bytes(&record.1)))])?;
        Ok(true)
    }

    fn task_configs(&self, connector: &str) -> Option<Vec<TaskConfig>> {
        self.lock().tasks.get(connector).cloned()
    }

    fn put_task_configs(&self, connector: &str, configs: &[TaskConfig]) -> Result<(), WorkerError> {
        let mut records: Vec<Entry> = configs
            .iter()
            .enumerate()
            .map(|(id, c)| {
                (
                    format!("{TASK}{connector}-{id}").into_bytes(),
                    Some(bytes(&json!({ "properties": c }))),
                )
            })
            .collect();
        records.push((
            format!("{COMMIT}{connector}").into_bytes(),
            Some(bytes(&json!({ "tasks": configs.len() }))),
        ));
        self.log.append(&records)
    }

    fn take_restarts(&self) -> Vec<RestartRequest> {
        std::mem::take(&mut self.lock().restarts)
    }

    fn create(&self, name: &str, entry: StoredConnector) -> Result<bool, WorkerError> {
        let nonce = format!(
            "{}/{}",
            self.nonce_prefix,
            self.nonces.fetch_add(1, Ordering::Relaxed)
        );
        let value = json!({
            "properties": entry.config,
            CREATE: nonce,
            INITIAL: target_text(entry.target_state),
        });
        self.log.append(&[(
            format!("{CONNECTOR}{name}").into_bytes(),
            Some(bytes(&value)),
        )])?;
        // Read back: ours is applied only if it came first.
        Ok(self.lock().created_by.get(name) == Some(&nonce))
    }
}
