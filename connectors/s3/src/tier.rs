//! What `s3.tier` asks of the bucket before the first object: the archive
//! tier's lifecycle rule, the audit tier's checksums and Object Lock retention.

use sluice_api::ConnectError;
use tracing::info;

use crate::config::{S3SinkConfig, Tier};
use crate::storage::{PutOptions, Storage};

/// Sets the bucket up for `s3.tier` and says how every object is written:
/// the archive tier's lifecycle rule; the audit tier's checksums and Object
/// Lock retention (refusing to start without Object Lock unless told not to).
pub(crate) async fn prepare_tier(
    config: &S3SinkConfig,
    storage: &Storage,
    connector: &str,
) -> Result<PutOptions, ConnectError> {
    let mut put_options = PutOptions {
        storage_class: config.storage_class.clone(),
        ..PutOptions::default()
    };
    match config.tier {
        Tier::Plain => {}
        Tier::Archive { days } => {
            let rule = format!("sluice-archive-{}", config.topics_dir);
            storage
                .ensure_lifecycle(&rule, &format!("{}/", config.topics_dir), days)
                .await?;
            info!(connector = %connector, bucket = %config.bucket, days, "archive lifecycle rule set");
        }
        Tier::Audit {
            days,
            lock_required,
        } => {
            put_options.sha256 = true;
            if storage.object_lock_enabled().await? {
                let now = sluice_api::now_ms() / 1000;
                put_options.retain_until = Some(now + i64::from(days) * 86_400);
            } else if lock_required {
                return Err(ConnectError::fatal(format!(
                    "s3.tier=audit: bucket '{}' has no Object Lock, so objects could be deleted or overwritten. \
                     Create the bucket with Object Lock enabled, or set s3.object.lock.required=false to write \
                     checksums and manifests without retention",
                    config.bucket
                )));
            }
        }
    }
    Ok(put_options)
}
