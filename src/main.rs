//! The `sluice` command: a Kafka Connect-style worker and the tools around it.
//! Errors are one line on stderr naming the file and key at fault, with a
//! non-zero exit; never a panic.

mod audit_cmd;
mod connectors_cmd;
mod dlq_cmd;
mod progress;
mod registry;
mod table;
mod topics_cmd;
mod transform_cmd;

/// Records are allocated on one thread (the consumer's, the connector's) and
/// freed on another; glibc's allocator spends a third of a sink's time on that
/// and fragments its memory. mimalloc handles cross-thread frees cheaply. It
/// also serves librdkafka's C allocations (the crate's `override` feature
/// replaces `malloc` process-wide): a message copied into the producer on one
/// thread and freed by its delivery report on another cost glibc a quarter of
/// a source's CPU (bench/RESULTS.md, 2026-12-02).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's own, linked in by the `mimalloc` crate.
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Keeps an idle worker small: mimalloc's default on Linux commits a whole
/// arena at once, which put an idle worker at 33 MB instead of 22. The option
/// is read when the first arena is made, at the first allocation, which can
/// come before `main`: so it is set from an initializer that runs before
/// mimalloc's own (priority 101) and every other.
extern "C" fn commit_memory_on_demand() {
    /// `mi_option_arena_eager_commit` in mimalloc.h (v3).
    const ARENA_EAGER_COMMIT: std::ffi::c_int = 4;
    // SAFETY: setting an option is a plain store into mimalloc's static
    // option table, valid before mimalloc is initialized; one thread runs.
    unsafe { mi_option_set(ARENA_EAGER_COMMIT, 0) }
}

#[used]
#[link_section = ".init_array.00100"]
static COMMIT_MEMORY_ON_DEMAND: extern "C" fn() = commit_memory_on_demand;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use sluice_runtime::config::DistributedConfig;
use sluice_runtime::placement::{Membership, Placement};
use sluice_runtime::rest::{AppState, LogControl, Loggers, RestServer};
use sluice_runtime::storage::{
    internal_topics, FileConfigStore, FileOffsetStore, KafkaConfigStore, KafkaOffsetStore,
    KafkaStatusStore, MemoryStatusStore, StatusBackingStore,
};
use sluice_runtime::topics::Topics;
use sluice_runtime::{ConnectorConfig, Herder, Worker, WorkerConfig};
use tracing::info;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A Kafka Connect-style connector runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a standalone worker with connectors from JSON files, serving the
    /// REST API on `listeners`.
    Standalone {
        /// The worker configuration (configs/standalone.json).
        worker: PathBuf,
        /// Connector configurations, `{"name": ..., "config": {...}}`. More can
        /// be created over REST; those are kept beside the offsets file.
        connectors: Vec<PathBuf>,
    },
    /// Run a worker of a cluster: every worker with the same `group.id` shares
    /// the connectors, kept in the cluster's internal topics; any worker's
    /// REST API manages them all.
    Distributed {
        /// The worker configuration (configs/worker-distributed.json).
        worker: PathBuf,
    },
    /// Manage the connectors of a running worker over its REST API.
    Connectors {
        #[command(subcommand)]
        action: connectors_cmd::ConnectorsAction,
        #[command(flatten)]
        client: connectors_cmd::Client,
    },
    /// Create, list and inspect topics.
    Topics {
        #[command(subcommand)]
        action: topics_cmd::TopicsAction,
        #[command(flatten)]
        target: topics_cmd::Target,
    },
    /// Work with dead-letter queues.
    Dlq {
        #[command(subcommand)]
        action: dlq_cmd::DlqAction,
        #[command(flatten)]
        target: topics_cmd::Target,
    },
    /// Check the S3 audit tier.
    Audit {
        #[command(subcommand)]
        action: audit_cmd::AuditAction,
    },
    /// Start a WebAssembly transform project.
    Transform {
        #[command(subcommand)]
        action: transform_cmd::TransformAction,
    },
    /// List the plugins a running worker offers (with --local: those this
    /// binary ships, without asking a worker).
    Plugins {
        #[arg(long)]
        local: bool,
        #[command(flatten)]
        client: connectors_cmd::Client,
    },
}

fn main() -> ExitCode {
    let started = Instant::now();
    let logging = init_logging();
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Standalone { .. } | Command::Distributed { .. }
    ) {
        // A CLI command piped into `head` ends quietly when the pipe closes,
        // as Unix tools do, instead of panicking in `println!`. A worker keeps
        // Rust's default (SIGPIPE ignored): a client hanging up is an error to
        // handle, not a reason to die.
        // SAFETY: signal() only sets this process's disposition of SIGPIPE to
        // the default; no handler of ours runs.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, started, logging)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The filter the process starts with, and the handle that lets
/// `PUT /admin/loggers` change it.
struct Logging {
    initial: String,
    control: Box<dyn LogControl>,
}

struct ReloadFilter {
    handle: tracing_subscriber::reload::Handle<
        tracing_subscriber::EnvFilter,
        tracing_subscriber::Registry,
    >,
    targets: Targets,
}

impl LogControl for ReloadFilter {
    fn apply(&self, directives: &str) -> Result<(), String> {
        let filter =
            tracing_subscriber::EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().iter().cloned().collect()
    }
}

/// Every `tracing` target with a registered callsite: the loggers
/// `/admin/loggers` knows, as Connect knows the log4j loggers created so far.
/// A callsite registers the first time it is reached at a level the filter
/// may let through, so a target is known once it has logged.
#[derive(Clone, Default)]
struct Targets(std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>);

impl Targets {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<String>> {
        // Only whole names are ever inserted: a poisoned set is still whole.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Targets {
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        let target = metadata.target();
        let mut targets = self.lock();
        if !targets.contains(target) {
            targets.insert(target.to_owned());
        }
        // No opinion: what is enabled stays the filter's to decide.
        tracing::subscriber::Interest::always()
    }
}

fn init_logging() -> Logging {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::EnvFilter;
    let initial = std::env::var("SLUICE_LOG")
        .ok()
        .filter(|f| EnvFilter::try_new(f).is_ok())
        .unwrap_or_else(|| "info,librdkafka=warn,rdkafka=warn,pg_walstream=warn".to_owned());
    let (filter, handle) = tracing_subscriber::reload::Layer::new(EnvFilter::new(&initial));
    // Colours only for people: logs piped to files and collectors stay plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let json = std::env::var("SLUICE_LOG_FORMAT").is_ok_and(|f| f == "json");
    let plain = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
    });
    let structured = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
    });
    let targets = Targets::default();
    tracing_subscriber::registry()
        .with(filter)
        .with(plain)
        .with(structured)
        .with(targets.clone())
        .init();
    Logging {
        initial,
        control: Box::new(ReloadFilter { handle, targets }),
    }
}

async fn run(cli: Cli, started: Instant, logging: Logging) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Standalone { worker, connectors } => {
            standalone(worker, connectors, started, logging).await
        }
        Command::Distributed { worker } => distributed(worker, started, logging).await,
        Command::Connectors { action, client } => connectors_cmd::run(action, client)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Topics { action, target } => topics_cmd::run(action, target)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Dlq { action, target } => dlq_cmd::run(action, target)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Audit { action } => audit_cmd::run(action).await.map(|()| ExitCode::SUCCESS),
        Command::Transform { action } => transform_cmd::run(action).map(|()| ExitCode::SUCCESS),
        Command::Plugins {
            local: false,
            client,
        } => connectors_cmd::plugins(client)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Plugins { local: true, .. } => {
            let plugins = registry::builtin();
            let mut rows: Vec<Vec<String>> = plugins
                .connectors()
                .iter()
                .map(|p| {
                    vec![
                        p.class.to_owned(),
                        p.kind().as_str().to_owned(),
                        p.version.to_owned(),
                        p.aliases.join(", "),
                    ]
                })
                .collect();
            let others = plugins
                .transforms()
                .iter()
                .map(|t| (t.name, "transformation", t.aliases))
                .chain(
                    plugins
                        .predicates()
                        .iter()
                        .map(|p| (p.name, "predicate", p.aliases)),
                );
            for (name, kind, aliases) in others {
                rows.push(vec![
                    name.to_owned(),
                    kind.to_owned(),
                    String::new(),
                    aliases.join(", "),
                ]);
            }
            table::print(&["CLASS", "TYPE", "VERSION", "ALSO"], rows, &[]);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn standalone(
    worker_path: PathBuf,
    connector_paths: Vec<PathBuf>,
    started: Instant,
    logging: Logging,
) -> anyhow::Result<ExitCode> {
    let plugins = registry::builtin();
    let worker_config = WorkerConfig::load(&worker_path, std::env::vars())?;
    let mut connectors = Vec::new();
    for path in &connector_paths {
        let c = ConnectorConfig::load(path, &plugins, worker_config.connector_rules())?;
        if connectors
            .iter()
            .any(|other: &ConnectorConfig| other.name == c.name)
        {
            anyhow::bail!(
                "{}: 'name': connector '{}' is defined twice",
                path.display(),
                c.name
            );
        }
        connectors.push(c);
    }
    let offset_file = worker_config.offset_file();
    let configs = FileConfigStore::open(&FileConfigStore::beside(&offset_file))?;
    let offsets = FileOffsetStore::open(&offset_file)?;
    let worker = Worker::start(worker_config.clone(), plugins, Arc::new(offsets)).await?;
    let herder = Arc::new(Herder::new(
        worker,
        Arc::new(configs),
        Arc::new(MemoryStatusStore::default()),
    ));
    let (state, server) = serve(&herder, &worker_config, &worker_path, logging).await?;
    herder.load(connectors).await?;
    herder.spawn_supervisor();
    state.ready.store(true, Ordering::Release);
    info!(
        connectors = herder.names().await.len(),
        rest = %server.url,
        startup_ms = started.elapsed().as_millis() as u64,
        "worker ready"
    );
    shutdown_signal().await;
    info!("shutting down: finishing in-flight batches and committing");
    Ok(stop(&herder, server).await)
}

async fn distributed(
    worker_path: PathBuf,
    started: Instant,
    logging: Logging,
) -> anyhow::Result<ExitCode> {
    let plugins = registry::builtin();
    let worker_config = WorkerConfig::load(&worker_path, std::env::vars())?;
    let cluster = DistributedConfig::from_worker(&worker_config)
        .map_err(|e| anyhow::anyhow!("{}: {e}", worker_path.display()))?;
    let c = worker_config.clone();
    let topics = tokio::task::spawn_blocking(move || Topics::connect(&c)).await??;
    internal_topics::ensure(&topics, &cluster).await?;
    // Reading a whole internal topic at start may take longer than a sync.
    let timeout = cluster
        .worker_sync_timeout
        .max(std::time::Duration::from_secs(30));
    let (w, cl) = (worker_config.clone(), cluster.clone());
    let (offsets, configs, statuses) = tokio::task::spawn_blocking(move || {
        anyhow::Ok((
            KafkaOffsetStore::open(&w, &cl.offset_topic.name, timeout)?,
            KafkaConfigStore::open(&w, &cl.config_topic.name, timeout)?,
            KafkaStatusStore::open(&w, &cl.status_topic.name, timeout)?,
        ))
    })
    .await??;
    let config_changes = configs.changes();
    let worker = Worker::start(worker_config.clone(), plugins, Arc::new(offsets)).await?;
    let placement = Arc::new(Placement::new(&cluster));
    let statuses: Arc<dyn StatusBackingStore> = Arc::new(statuses);
    let herder = Arc::new(
        Herder::new(worker, Arc::new(configs), statuses.clone()).with_placement(placement.clone()),
    );
    let (state, server) = serve(&herder, &worker_config, &worker_path, logging).await?;
    // Everything known runs nowhere here until the group gives this worker slots.
    herder.load(Vec::new()).await?;
    herder.spawn_supervisor();
    let (events, placement_events) = tokio::sync::mpsc::unbounded_channel();
    herder.spawn_cluster_follower(config_changes, placement_events);
    let membership = Membership::join(
        &worker_config,
        &cluster,
        &herder.worker_id(),
        placement,
        statuses,
        events,
    )?;
    state.ready.store(true, Ordering::Release);
    info!(
        group = %cluster.group_id,
        worker = %herder.worker_id(),
        connectors = herder.names().await.len(),
        rest = %server.url,
        startup_ms = started.elapsed().as_millis() as u64,
        "worker ready"
    );
    shutdown_signal().await;
    info!("shutting down: leaving the group, so the other workers take over now");
    // The revocation on leaving stops our tasks, each finishing its batches
    // and committing, before the others are given them.
    tokio::task::spawn_blocking(move || membership.leave()).await?;
    Ok(stop(&herder, server).await)
}

/// The REST API over `herder`, in either mode; its state says "not ready"
/// until the caller has loaded the connectors.
async fn serve(
    herder: &Arc<Herder>,
    worker_config: &WorkerConfig,
    worker_path: &Path,
    logging: Logging,
) -> anyhow::Result<(Arc<AppState>, RestServer)> {
    let state = Arc::new(AppState {
        herder: herder.clone(),
        loggers: Loggers::new(&logging.initial, Some(logging.control)),
        ready: Default::default(),
        kafka_cluster_id: Default::default(),
    });
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        if let Some(id) = s.herder.worker().topics().cluster_id() {
            let _ = s.kafka_cluster_id.set(id);
        }
    });
    let server = RestServer::start(worker_config, state.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", worker_path.display()))?;
    Ok((state, server))
}

/// Stops every connector (each finishing its batches and committing), then
/// the REST API; fails the process if a task failed to stop cleanly.
async fn stop(herder: &Herder, server: RestServer) -> ExitCode {
    let failed = herder.shutdown().await;
    server.stop().await;
    info!(failed, "worker stopped");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
    }
}
