//! The worker: starts connectors, splits them into tasks, runs every task until
//! shutdown, and stops them gracefully. Standalone mode drives it from files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_api::{
    ConnectError, ConnectorFactory, Converter, SinkTaskContext, SourceTaskContext, TaskConfig,
};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::{ConnectorConfig, WorkerConfig};
use crate::convert::build_converter;
use crate::error::WorkerError;
use crate::errors::{DeadLetterQueue, ErrorPolicy, SinkReporter};
use crate::kafka;
use crate::metrics::{spawn_progress_log, TaskMetrics};
use crate::offsets::FileOffsetStore;
use crate::plugins::Plugins;
use crate::sink::{self, SinkRunner, Subscription};
use crate::source::{self, SourceRunner};
use crate::topics::Topics;
use crate::transforms::TransformChain;

/// A task's key and value converters.
struct Converters {
    key: Box<dyn Converter>,
    value: Box<dyn Converter>,
}

/// The pieces every task is built from.
struct TaskParts {
    converters: Converters,
    transforms: TransformChain,
    policy: ErrorPolicy,
    metrics: Arc<TaskMetrics>,
}

/// How a task ended.
#[derive(Debug)]
pub struct TaskOutcome {
    pub connector: String,
    pub task: u32,
    pub result: Result<(), ConnectError>,
}

pub struct Worker {
    config: WorkerConfig,
    plugins: Plugins,
    store: Arc<FileOffsetStore>,
    topics: Arc<Topics>,
    shutdown_tx: watch::Sender<bool>,
    tasks: JoinSet<TaskOutcome>,
}

impl Worker {
    /// Connects to Kafka (failing fast when it cannot) and opens the offset store.
    pub async fn start(config: WorkerConfig, plugins: Plugins) -> Result<Self, WorkerError> {
        let c = config.clone();
        let topics = tokio::task::spawn_blocking(move || Topics::connect(&c))
            .await
            .map_err(|e| WorkerError::Other(format!("start-up task failed: {e}")))??;
        if let Ok(apis) =
            kafka::probe_api_versions(&config.bootstrap_servers(), Duration::from_secs(5))
        {
            if let Some(missing) = apis.missing_summary() {
                info!("the broker does not implement: {missing}; sources use idempotent resume, which needs none of these");
            }
            if !apis.supports(kafka::api_keys::INIT_PRODUCER_ID) {
                warn!("the broker does not implement InitProducerId, so the idempotent producer cannot start; set producer.enable.idempotence=false to run at least once");
            }
        }
        let store = Arc::new(FileOffsetStore::open(&config.offset_file())?);
        let (shutdown_tx, _) = watch::channel(false);
        Ok(Self {
            config,
            plugins,
            store,
            topics: Arc::new(topics),
            shutdown_tx,
            tasks: JoinSet::new(),
        })
    }

    /// Starts a connector and all its tasks.
    pub fn add_connector(&mut self, connector: &ConnectorConfig) -> Result<usize, WorkerError> {
        let invalid = |e: ConnectError| WorkerError::Task {
            connector: connector.name.clone(),
            task: 0,
            source: e,
        };
        let plugin = self
            .plugins
            .connector(&connector.class)
            .copied()
            .ok_or_else(|| {
                WorkerError::Other(format!(
                    "connector '{}': unknown class '{}'",
                    connector.name, connector.class
                ))
            })?;
        let tasks = match plugin.factory {
            ConnectorFactory::Source(make) => {
                let mut c = make();
                c.start(&connector.resolved).map_err(invalid)?;
                let configs = c.task_configs(connector.tasks_max).map_err(invalid)?;
                let n = configs.len();
                for (id, config) in configs.into_iter().enumerate() {
                    let task = c.create_task();
                    self.spawn_source(connector, id as u32, task, config)?;
                }
                n
            }
            ConnectorFactory::Sink(make) => {
                let mut c = make();
                c.start(&connector.resolved).map_err(invalid)?;
                let configs = c.task_configs(connector.tasks_max).map_err(invalid)?;
                let n = configs.len();
                for (id, config) in configs.into_iter().enumerate() {
                    let task = c.create_task();
                    self.spawn_sink(connector, id as u32, task, config)?;
                }
                n
            }
        };
        info!(connector = %connector.name, class = %connector.class, kind = plugin.kind().as_str(), tasks, "connector started");
        Ok(tasks)
    }

    fn converters(&self, connector: &ConnectorConfig) -> Result<Converters, WorkerError> {
        let make = |side: &str, is_key: bool| {
            let key = format!("{side}.converter");
            let (class, settings) = match connector.get(&key) {
                Some(class) => (class.to_owned(), connector.with_prefix(&format!("{key}."))),
                None => (
                    self.config.get(&key).unwrap_or("json").to_owned(),
                    crate::config::ConnectorConfig::prefixed_of(
                        self.config.raw(),
                        &format!("{key}."),
                    ),
                ),
            };
            build_converter(&key, &class, &settings, is_key).map_err(|errors| {
                WorkerError::InvalidConnector {
                    connector: connector.name.clone(),
                    errors,
                }
            })
        };
        Ok(Converters {
            key: make("key", true)?,
            value: make("value", false)?,
        })
    }

    /// What every task has, source or sink: converters, transforms, an error
    /// policy and metrics (with their progress log).
    fn task_parts(
        &self,
        connector: &ConnectorConfig,
        task_id: u32,
    ) -> Result<TaskParts, WorkerError> {
        let converters = self.converters(connector)?;
        let transforms =
            TransformChain::build(connector, &self.plugins).map_err(|e| WorkerError::Task {
                connector: connector.name.clone(),
                task: task_id,
                source: e,
            })?;
        let dlq =
            DeadLetterQueue::from_config(&self.config, connector, task_id, self.topics.clone())?;
        let metrics = Arc::new(TaskMetrics::default());
        if let Some(every) = self.config.progress_interval() {
            spawn_progress_log(connector.name.clone(), task_id, metrics.clone(), every);
        }
        Ok(TaskParts {
            converters,
            transforms,
            policy: ErrorPolicy::new(connector, task_id, metrics.clone(), dlq),
            metrics,
        })
    }

    fn spawn_task(
        &mut self,
        connector: &str,
        task: u32,
        run: impl std::future::Future<Output = Result<(), ConnectError>> + Send + 'static,
    ) {
        let connector = connector.to_owned();
        self.tasks.spawn(async move {
            TaskOutcome {
                connector,
                task,
                result: run.await,
            }
        });
    }

    fn spawn_source(
        &mut self,
        connector: &ConnectorConfig,
        task_id: u32,
        task: Box<dyn sluice_api::SourceTask>,
        config: TaskConfig,
    ) -> Result<(), WorkerError> {
        let parts = self.task_parts(connector, task_id)?;
        let stored = self.store.connector(&connector.name);
        let context = SourceTaskContext {
            connector: connector.name.clone(),
            task_id,
            config,
            offsets: stored
                .offsets
                .into_iter()
                .map(|s| (s.partition, s.offset))
                .collect(),
        };
        let overrides = [(
            "client.id",
            format!("connector-producer-{}-{task_id}", connector.name),
        )];
        let producer = kafka::producer(&self.config, source::producer_context(), &overrides)?;
        let creation = self.config.topic_creation_enable().then(|| {
            let n = |k: &str| connector.get(k).and_then(|v| v.parse().ok()).unwrap_or(-1);
            (
                n("topic.creation.default.partitions"),
                n("topic.creation.default.replication.factor"),
            )
        });
        let runner = SourceRunner {
            connector: connector.name.clone(),
            task_id,
            task,
            context,
            transforms: parts.transforms,
            key_converter: parts.converters.key,
            value_converter: parts.converters.value,
            producer,
            store: self.store.clone(),
            topics: self.topics.clone(),
            reader: Arc::new(kafka::reader(&self.config)?),
            topic_creation: creation,
            flush_interval: self.config.offset_flush_interval(),
            policy: parts.policy,
            metrics: parts.metrics,
            shutdown: self.shutdown_tx.subscribe(),
            graceful_timeout: self.config.graceful_timeout(),
        };
        self.spawn_task(&connector.name, task_id, runner.run());
        Ok(())
    }

    fn spawn_sink(
        &mut self,
        connector: &ConnectorConfig,
        task_id: u32,
        task: Box<dyn sluice_api::SinkTask>,
        config: TaskConfig,
    ) -> Result<(), WorkerError> {
        let parts = self.task_parts(connector, task_id)?;
        let subscription = match connector.get("topics.regex").filter(|r| !r.is_empty()) {
            Some(r) => Subscription::Regex(r.to_owned()),
            None => Subscription::Topics(connector.topics()),
        };
        let mut overrides = connector.with_prefix("consumer.override.");
        // Java's max.poll.records sizes the runner's batches; librdkafka has no such key.
        let max_poll_records = overrides
            .remove("max.poll.records")
            .or_else(|| {
                self.config
                    .get("consumer.max.poll.records")
                    .map(str::to_owned)
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(500);
        let overrides: Vec<(&str, String)> = overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let reporter = Arc::new(SinkReporter {
            policy: parts.policy.clone(),
            class_name: connector.class.clone(),
            originals: Default::default(),
        });
        let subscribed = sink::subscribe(
            &self.config,
            &connector.name,
            task_id,
            &subscription,
            &overrides,
        )?;
        let runner = SinkRunner {
            connector: connector.name.clone(),
            task_id,
            task,
            context: SinkTaskContext {
                connector: connector.name.clone(),
                task_id,
                config,
                reporter: reporter.clone(),
            },
            transforms: parts.transforms,
            key_converter: parts.converters.key,
            value_converter: parts.converters.value,
            policy: parts.policy,
            reporter,
            metrics: parts.metrics,
            flush_interval: self.config.offset_flush_interval(),
            max_poll_records,
            shutdown: self.shutdown_tx.subscribe(),
        };
        self.spawn_task(&connector.name, task_id, runner.run(subscribed));
        Ok(())
    }

    /// Runs until `shutdown` resolves, logging tasks that fail on the way (like
    /// Connect, a failed task does not stop the worker). Then asks every task to
    /// finish its batch and commit, and waits up to the graceful timeout.
    pub async fn run_until(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Vec<TaskOutcome> {
        let mut outcomes = Vec::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                done = self.tasks.join_next() => match done {
                    Some(Ok(outcome)) => {
                        log_outcome(&outcome);
                        outcomes.push(outcome);
                    }
                    Some(Err(e)) => error!("a task panicked: {e}"),
                    None => {
                        info!("every task has finished");
                        return outcomes;
                    }
                },
            }
        }
        info!("shutting down: finishing in-flight batches and committing");
        let _ = self.shutdown_tx.send(true);
        let deadline = Instant::now() + self.config.graceful_timeout();
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline.into(), self.tasks.join_next()).await {
                Ok(Some(Ok(outcome))) => {
                    log_outcome(&outcome);
                    outcomes.push(outcome);
                }
                Ok(Some(Err(e))) => error!("a task panicked: {e}"),
                Ok(None) => break,
                Err(_) => {
                    warn!(remaining = self.tasks.len(), "tasks did not stop within task.shutdown.graceful.timeout.ms; abandoning them");
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        outcomes
    }
}

fn log_outcome(outcome: &TaskOutcome) {
    match &outcome.result {
        Ok(()) => info!(connector = %outcome.connector, task = outcome.task, "task stopped"),
        Err(e) => {
            error!(connector = %outcome.connector, task = outcome.task, trace = %e.chain(), "task FAILED")
        }
    }
}
