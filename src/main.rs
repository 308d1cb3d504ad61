//! The `sluice` command: a Kafka Connect-style worker and the tools around it.
//! Errors are one line on stderr naming the file and key at fault, with a
//! non-zero exit; never a panic.

mod audit_cmd;
mod dlq_cmd;
mod registry;
mod topics_cmd;

/// Records are allocated on one thread (the consumer's, the connector's) and
/// freed on another; glibc's allocator spends a third of a sink's time on that
/// and fragments its memory. mimalloc handles cross-thread frees cheaply.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sluice_runtime::{ConnectorConfig, Worker, WorkerConfig};
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
    /// Run a standalone worker with connectors from JSON files.
    Standalone {
        /// The worker configuration (configs/standalone.json).
        worker: PathBuf,
        /// Connector configurations, `{"name": ..., "config": {...}}`.
        #[arg(required = true)]
        connectors: Vec<PathBuf>,
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
    /// List the connector plugins this binary ships.
    Plugins,
}

fn main() -> ExitCode {
    let started = Instant::now();
    init_logging();
    let cli = Cli::parse();
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
    match runtime.block_on(run(cli, started)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("SLUICE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,librdkafka=warn,rdkafka=warn"));
    // Colours only for people: logs piped to files and collectors stay plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if std::env::var("SLUICE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli, started: Instant) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Standalone { worker, connectors } => standalone(worker, connectors, started).await,
        Command::Topics { action, target } => topics_cmd::run(action, target)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Dlq { action, target } => dlq_cmd::run(action, target)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Audit { action } => audit_cmd::run(action).await.map(|()| ExitCode::SUCCESS),
        Command::Plugins => {
            for p in registry::builtin().connectors() {
                println!(
                    "{:<12} {:<7} {}  (also: {})",
                    p.class,
                    p.kind().as_str(),
                    p.version,
                    p.aliases.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn standalone(
    worker_path: PathBuf,
    connector_paths: Vec<PathBuf>,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let plugins = registry::builtin();
    let worker_config = WorkerConfig::load(&worker_path, std::env::vars())?;
    let mut connectors = Vec::new();
    for path in &connector_paths {
        let c = ConnectorConfig::load(path, &plugins)?;
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
    let mut worker = Worker::start(worker_config, plugins).await?;
    for c in &connectors {
        worker
            .add_connector(c)
            .with_context(|| format!("cannot start connector '{}'", c.name))?;
    }
    info!(
        connectors = connectors.len(),
        startup_ms = started.elapsed().as_millis() as u64,
        "worker ready"
    );
    let outcomes = worker.run_until(shutdown_signal()).await;
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    info!(tasks = outcomes.len(), failed, "worker stopped");
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
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
