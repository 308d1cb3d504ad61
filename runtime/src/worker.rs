//! The worker: what a process needs to run connectors (its config, plugins,
//! Kafka clients and offset store, whichever the mode uses), and the assembly of connectors and tasks from
//! them. Which connectors run, and in what state, is the herder's business.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sluice_api::{
    ConnectError, ConnectorFactory, Converter, SinkConnector, SinkTaskContext, SourceConnector,
    SourceTaskContext, TaskConfig,
};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::blocking::blocking;
use crate::config::{ConnectorConfig, WorkerConfig};
use crate::control::{Lease, TargetState, TaskHealth};
use crate::convert::build_converter;
use crate::error::WorkerError;
use crate::error_handling::{DeadLetterQueue, ErrorPolicy, SinkReporter};
use crate::kafka;
use crate::metrics::{spawn_progress_log, ActiveTopics, TaskMetrics};
use crate::plugins::Plugins;
use crate::sink::{self, SinkRunner, Subscription};
use crate::source::{self, SourceRunner};
use crate::storage::OffsetBackingStore;
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

/// A started connector instance, which makes its tasks.
pub enum ConnectorInstance {
    Source(Box<dyn SourceConnector>),
    Sink(Box<dyn SinkConnector>),
}

impl ConnectorInstance {
    pub fn stop(&mut self) {
        match self {
            Self::Source(c) => c.stop(),
            Self::Sink(c) => c.stop(),
        }
    }
}

/// A task ready to run: its future, and the counters it updates.
pub struct TaskRun {
    pub run: Pin<Box<dyn Future<Output = Result<(), ConnectError>> + Send>>,
    pub metrics: Arc<TaskMetrics>,
}

/// What a task is given besides its config: the connector's target state and
/// the set of topics the connector has used.
pub struct TaskWiring {
    pub control: watch::Receiver<TargetState>,
    pub active_topics: ActiveTopics,
    /// Where the task confirms a pause.
    pub health: Arc<TaskHealth>,
    /// Distributed mode: what a source task checks before it writes.
    pub lease: Option<Arc<Lease>>,
}

pub struct Worker {
    config: WorkerConfig,
    plugins: Plugins,
    offsets: Arc<dyn OffsetBackingStore>,
    topics: Arc<Topics>,
}

impl Worker {
    /// Connects to Kafka, failing fast when it cannot. Source offsets go to
    /// `offsets`, whichever store the mode uses.
    pub async fn start(
        config: WorkerConfig,
        plugins: Plugins,
        offsets: Arc<dyn OffsetBackingStore>,
    ) -> Result<Self, WorkerError> {
        let c = config.clone();
        let topics = blocking("start-up task", move || Topics::connect(&c)).await??;
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
        Ok(Self {
            config,
            plugins,
            offsets,
            topics: Arc::new(topics),
        })
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    pub fn plugins(&self) -> &Plugins {
        &self.plugins
    }

    pub fn offset_store(&self) -> &Arc<dyn OffsetBackingStore> {
        &self.offsets
    }

    pub fn topics(&self) -> &Arc<Topics> {
        &self.topics
    }

    /// Creates and starts a connector, and asks it for its task configs.
    pub fn start_connector(
        &self,
        connector: &ConnectorConfig,
    ) -> Result<(ConnectorInstance, Vec<TaskConfig>), ConnectError> {
        let plugin = self
            .plugins
            .connector(&connector.class)
            .copied()
            .ok_or_else(|| {
                ConnectError::new(
                    sluice_api::ErrorKind::Config,
                    format!("unknown connector class '{}'", connector.class),
                )
            })?;
        let (instance, configs) = match plugin.factory {
            ConnectorFactory::Source(make) => {
                let mut c = make();
                c.start(&connector.resolved)?;
                let configs = c.task_configs(connector.tasks_max)?;
                (ConnectorInstance::Source(c), configs)
            }
            ConnectorFactory::Sink(make) => {
                let mut c = make();
                c.start(&connector.resolved)?;
                let configs = c.task_configs(connector.tasks_max)?;
                (ConnectorInstance::Sink(c), configs)
            }
        };
        info!(connector = %connector.name, class = %connector.class, kind = plugin.kind().as_str(), tasks = configs.len(), "connector started");
        Ok((instance, configs))
    }

    /// Builds one task of a started connector, ready to spawn.
    pub fn task(
        &self,
        connector: &ConnectorConfig,
        instance: &ConnectorInstance,
        task_id: u32,
        config: TaskConfig,
        wiring: TaskWiring,
    ) -> Result<TaskRun, WorkerError> {
        match instance {
            ConnectorInstance::Source(c) => {
                self.source_task(connector, task_id, c.create_task(), config, wiring)
            }
            ConnectorInstance::Sink(c) => {
                self.sink_task(connector, task_id, c.create_task(), config, wiring)
            }
        }
    }

    /// A task of `connector`'s class from a task config made elsewhere (in a
    /// cluster, by the worker running the connector part): a task needs its
    /// connector's class, not a started instance of it.
    pub fn task_of_class(
        &self,
        connector: &ConnectorConfig,
        task_id: u32,
        config: TaskConfig,
        wiring: TaskWiring,
    ) -> Result<TaskRun, WorkerError> {
        let plugin = self
            .plugins
            .connector(&connector.class)
            .copied()
            .ok_or_else(|| {
                WorkerError::Other(format!("unknown connector class '{}'", connector.class))
            })?;
        match plugin.factory {
            ConnectorFactory::Source(make) => {
                self.source_task(connector, task_id, make().create_task(), config, wiring)
            }
            ConnectorFactory::Sink(make) => {
                self.sink_task(connector, task_id, make().create_task(), config, wiring)
            }
        }
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

    fn source_task(
        &self,
        connector: &ConnectorConfig,
        task_id: u32,
        task: Box<dyn sluice_api::SourceTask>,
        config: TaskConfig,
        wiring: TaskWiring,
    ) -> Result<TaskRun, WorkerError> {
        let parts = self.task_parts(connector, task_id)?;
        let stored = self.offsets.connector(&connector.name);
        let context = SourceTaskContext {
            connector: connector.name.clone(),
            task_id,
            config,
            offsets: stored
                .offsets
                .into_iter()
                .map(|s| (s.partition, s.offset))
                .collect(),
            metrics: parts.metrics.custom.clone(),
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
            store: self.offsets.clone(),
            topics: self.topics.clone(),
            reader: Arc::new(kafka::reader(&self.config)?),
            topic_creation: creation,
            flush_interval: self.config.offset_flush_interval(),
            policy: parts.policy,
            metrics: parts.metrics.clone(),
            control: wiring.control,
            active_topics: wiring.active_topics,
            health: wiring.health,
            lease: wiring.lease,
            graceful_timeout: self.config.graceful_timeout(),
        };
        Ok(TaskRun {
            run: Box::pin(runner.run()),
            metrics: parts.metrics,
        })
    }

    fn sink_task(
        &self,
        connector: &ConnectorConfig,
        task_id: u32,
        task: Box<dyn sluice_api::SinkTask>,
        config: TaskConfig,
        wiring: TaskWiring,
    ) -> Result<TaskRun, WorkerError> {
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
        crate::lag::spawn_sink_lag(
            &connector.name,
            task_id,
            &subscribed.consumer,
            &parts.metrics,
            self.config.lag_refresh_interval(),
        );
        let runner = SinkRunner {
            connector: connector.name.clone(),
            task_id,
            task,
            context: SinkTaskContext {
                connector: connector.name.clone(),
                task_id,
                config,
                reporter: reporter.clone(),
                rewinds: Default::default(),
                metrics: parts.metrics.custom.clone(),
            },
            transforms: parts.transforms,
            key_converter: parts.converters.key,
            value_converter: parts.converters.value,
            policy: parts.policy,
            reporter,
            metrics: parts.metrics.clone(),
            flush_interval: self.config.offset_flush_interval(),
            max_poll_records,
            control: wiring.control,
            active_topics: wiring.active_topics,
            health: wiring.health,
            seeks: Default::default(),
        };
        Ok(TaskRun {
            run: Box::pin(runner.run(subscribed)),
            metrics: parts.metrics,
        })
    }
}
