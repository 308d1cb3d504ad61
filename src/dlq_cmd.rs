//! `sluice dlq replay`: sends dead-lettered records back where they failed.

use clap::{Args, Subcommand};
use sluice_runtime::error_handling::replay::{replay_with_progress, ReplayOptions};

use crate::topics_cmd::{worker_config, Target};

#[derive(Subcommand)]
pub enum DlqAction {
    /// Re-produce a dead-letter queue's records to their original topic, without
    /// the error headers. Safe to run twice: progress is recorded per DLQ topic
    /// and filter.
    Replay(ReplayArgs),
}

#[derive(Args)]
pub struct ReplayArgs {
    /// The dead-letter queue topic.
    #[arg(long)]
    topic: String,
    /// Send every record here instead of its `__connect.errors.topic`.
    #[arg(long)]
    to: Option<String>,
    /// Only records whose `__connect.errors.<NAME>` header is VALUE, e.g. stage=VALUE_CONVERTER.
    #[arg(long, value_name = "NAME=VALUE")]
    filter: Vec<String>,
}

pub async fn run(action: DlqAction, target: Target) -> anyhow::Result<()> {
    let DlqAction::Replay(args) = action;
    let worker = worker_config(&target)?;
    let filters = args
        .filter
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--filter '{f}': expected NAME=VALUE, e.g. stage=VALUE_CONVERTER"
                    )
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = ReplayOptions {
        dlq_topic: args.topic,
        to: args.to,
        filters,
    };
    let bar = crate::progress::bar("replaying");
    let shown = bar.clone();
    let report = tokio::task::spawn_blocking(move || {
        replay_with_progress(&worker, &opts, &|read, total| shown.show(read, total))
    })
    .await??;
    bar.finish();
    for (topic, n) in &report.by_topic {
        println!("moved {n} to {topic}");
    }
    println!(
        "moved {}, skipped {} (filtered out)",
        report.moved, report.skipped
    );
    Ok(())
}
