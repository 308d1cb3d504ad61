//! `sluice topics apply|list|describe`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use sluice_runtime::kafka;
use sluice_runtime::topics::{read_topics_file, watermarks, Topics};
use sluice_runtime::WorkerConfig;

#[derive(Subcommand)]
pub enum TopicsAction {
    /// Create the topics a file declares that are missing; report what differs.
    Apply { file: PathBuf },
    /// List topics with their partition counts.
    List,
    /// Show a topic's partitions, watermarks and settings.
    Describe { topic: String },
}

#[derive(Args)]
pub struct Target {
    /// A worker configuration to take the cluster and security settings from.
    #[arg(long, global = true)]
    worker: Option<PathBuf>,
    /// The cluster, when no worker file is given (default: $SLUICE_BOOTSTRAP_SERVERS or localhost:9092).
    #[arg(long, global = true)]
    bootstrap_server: Option<String>,
}

pub fn worker_config(target: &Target) -> anyhow::Result<WorkerConfig> {
    if let Some(path) = &target.worker {
        let mut w = WorkerConfig::load(path, std::env::vars())?;
        if let Some(b) = &target.bootstrap_server {
            let mut raw = w.raw().clone();
            raw.insert("bootstrap.servers".into(), b.clone());
            w = WorkerConfig::from_raw(raw)?;
        }
        return Ok(w);
    }
    let servers = target
        .bootstrap_server
        .clone()
        .or_else(|| std::env::var("SLUICE_BOOTSTRAP_SERVERS").ok())
        .unwrap_or_else(|| "localhost:9092".into());
    Ok(WorkerConfig::from_raw(BTreeMap::from([(
        "bootstrap.servers".to_owned(),
        servers,
    )]))?)
}

pub async fn run(action: TopicsAction, target: Target) -> anyhow::Result<()> {
    let worker = worker_config(&target)?;
    let w = worker.clone();
    let topics = tokio::task::spawn_blocking(move || Topics::connect(&w)).await??;
    match action {
        TopicsAction::Apply { file } => {
            let specs = read_topics_file(&file)?;
            if let Ok(apis) = kafka::probe_api_versions(
                &worker.bootstrap_servers(),
                std::time::Duration::from_secs(5),
            ) {
                if let Some(missing) = apis.missing_summary() {
                    eprintln!("note: this broker does not implement {missing}");
                }
            }
            for line in topics.apply(&specs).await? {
                println!("{line}");
            }
        }
        TopicsAction::List => {
            let rows = topics
                .list()?
                .into_iter()
                .map(|t| vec![t.name, t.partitions.len().to_string()])
                .collect();
            crate::table::print(&["TOPIC", "PARTITIONS"], rows, &[1]);
        }
        TopicsAction::Describe { topic } => {
            let Some(info) = topics
                .describe(Some(&topic))?
                .into_iter()
                .find(|t| t.name == topic)
            else {
                anyhow::bail!("topic '{topic}' does not exist");
            };
            println!("{}: {} partitions", info.name, info.partitions.len());
            let marks = watermarks(&worker, &info)?;
            let total: i64 = marks.iter().map(|(_, lo, hi)| hi - lo).sum();
            let rows = info
                .partitions
                .iter()
                .zip(&marks)
                .map(|(p, (id, lo, hi))| {
                    [*id as i64, p.leader as i64, p.replicas as i64, *lo, *hi]
                        .map(|n| n.to_string())
                        .to_vec()
                })
                .collect();
            crate::table::print(
                &["PARTITION", "LEADER", "REPLICAS", "LOW", "HIGH"],
                rows,
                &[0, 1, 2, 3, 4],
            );
            println!("records: {total}");
            match topics.configs(&topic).await {
                Some(configs) => {
                    for (k, v) in configs {
                        println!("  {k}={v}");
                    }
                }
                None => println!("  (the broker does not report topic settings)"),
            }
        }
    }
    Ok(())
}
