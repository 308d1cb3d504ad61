//! The distributed worker's internal topics: the three stores' (compacted;
//! the config topic with one partition) and the placement topic, created
//! when missing and checked when they exist, so a wrong topic stops the worker at start with the reason rather
//! than losing configs or offsets to retention later.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::{info, warn};

use crate::config::{DistributedConfig, InternalTopic};
use crate::error::WorkerError;
use crate::placement;
use crate::topics::{TopicSpec, Topics};

/// Creates or checks every internal topic of `cluster`.
pub async fn ensure(topics: &Topics, cluster: &DistributedConfig) -> Result<(), WorkerError> {
    for (key, topic, one_partition) in [
        ("config.storage.topic", &cluster.config_topic, true),
        ("offset.storage.topic", &cluster.offset_topic, false),
        ("status.storage.topic", &cluster.status_topic, false),
    ] {
        ensure_one(topics, key, topic, one_partition).await?;
    }
    ensure_placement(topics, cluster).await
}

/// The placement topic: no records, one partition per slot.
async fn ensure_placement(topics: &Topics, cluster: &DistributedConfig) -> Result<(), WorkerError> {
    let name = placement::topic_of(cluster);
    let existing = topics
        .describe(Some(&name))?
        .into_iter()
        .find(|t| t.name == name);
    match existing {
        Some(t) if t.partitions.len() == placement::SLOTS as usize => Ok(()),
        Some(t) => Err(WorkerError::Other(format!(
            "placement topic '{name}' has {} partitions; it must have {}, one per placement slot. Delete it (it holds no data) and start the worker again",
            t.partitions.len(),
            placement::SLOTS
        ))),
        None => {
            let spec = TopicSpec {
                name: name.clone(),
                partitions: placement::SLOTS,
                replication_factor: cluster.config_topic.replication_factor,
                config: BTreeMap::new(),
                description: None,
            };
            topics.create(&spec).await?;
            wait_for_metadata(topics, &name).await
        }
    }
}

async fn ensure_one(
    topics: &Topics,
    key: &str,
    topic: &InternalTopic,
    one_partition: bool,
) -> Result<(), WorkerError> {
    let wrong =
        |why: String| WorkerError::Other(format!("internal topic '{}' ({key}) {why}", topic.name));
    let existing = topics
        .describe(Some(&topic.name))?
        .into_iter()
        .find(|t| t.name == topic.name);
    let Some(existing) = existing else {
        let spec = TopicSpec {
            name: topic.name.clone(),
            partitions: topic.partitions,
            replication_factor: topic.replication_factor,
            config: BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]),
            description: None,
        };
        if topics.create(&spec).await? {
            info!(topic = %topic.name, partitions = topic.partitions, "created the internal topic");
        }
        return wait_for_metadata(topics, &topic.name).await;
    };
    if one_partition && existing.partitions.len() != 1 {
        return Err(wrong(format!(
            "has {} partitions; it must have exactly one, so every worker reads config changes in one order. Choose another topic name or recreate it",
            existing.partitions.len()
        )));
    }
    match topics.configs(&topic.name).await {
        Some(config) => {
            let policy = config
                .get("cleanup.policy")
                .map_or("delete", String::as_str);
            if !policy.split(',').any(|p| p.trim() == "compact") {
                return Err(wrong(format!(
                    "is not compacted (cleanup.policy={policy}): retention would delete connector configs or offsets. Set cleanup.policy=compact on it or choose another topic"
                )));
            }
        }
        None => {
            warn!(topic = %topic.name, "the broker does not describe topic configs; cannot check that the internal topic is compacted")
        }
    }
    Ok(())
}

/// Metadata can lag a creation by a moment; the stores need the partitions.
async fn wait_for_metadata(topics: &Topics, name: &str) -> Result<(), WorkerError> {
    for _ in 0..100 {
        let ready = topics
            .describe(Some(name))?
            .iter()
            .any(|t| t.name == name && !t.partitions.is_empty());
        if ready {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(WorkerError::Other(format!(
        "internal topic '{name}' was created but does not appear in metadata"
    )))
}
