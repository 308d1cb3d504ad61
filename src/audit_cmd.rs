//! `sluice audit verify`: proves an audit-tier prefix is whole, reading only.

use clap::{Args, Subcommand};
use sluice_s3::audit::verify_with_progress;
use sluice_s3::storage::{Storage, Store};

#[derive(Subcommand)]
pub enum AuditAction {
    /// Check, per partition, that offsets are contiguous, every object matches
    /// its SHA-256 and the manifest chain is unbroken; exit non-zero naming the
    /// first break.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    #[arg(long)]
    bucket: String,
    /// Key prefix to verify (e.g. topics/api-usage-events.v1.audit/).
    #[arg(long, default_value = "topics/")]
    prefix: String,
    /// A custom S3 endpoint (MinIO, s3s, moto).
    #[arg(long)]
    store_url: Option<String>,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// With --secret-access-key; without both, the AWS default credential chain.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    access_key_id: Option<String>,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_access_key: Option<String>,
}

pub async fn run(action: AuditAction) -> anyhow::Result<()> {
    let AuditAction::Verify(args) = action;
    let store = Store {
        bucket: args.bucket.clone(),
        region: args.region,
        path_style: args.store_url.is_some(),
        endpoint: args.store_url,
        credentials: args.access_key_id.zip(args.secret_access_key),
    };
    let storage = Storage::open(&store, 5 * 1024 * 1024).await?;
    let bar = crate::progress::bar("verifying");
    let verified = verify_with_progress(&storage, &args.prefix, &|checked, total| {
        bar.show(checked, total)
    })
    .await;
    bar.finish();
    match verified {
        Ok(partitions) if partitions.is_empty() => {
            anyhow::bail!("no manifests under s3://{}/{}", args.bucket, args.prefix)
        }
        Ok(partitions) => {
            for p in &partitions {
                println!(
                    "ok  {}: {} files, offsets {}..={}",
                    p.directory, p.files, p.first_offset, p.last_offset
                );
            }
            println!(
                "verified {} partitions under s3://{}/{}",
                partitions.len(),
                args.bucket,
                args.prefix
            );
            Ok(())
        }
        Err(first_break) => anyhow::bail!("s3://{}/{}: {first_break}", args.bucket, args.prefix),
    }
}
