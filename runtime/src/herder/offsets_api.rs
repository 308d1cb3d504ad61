//! Connect's offsets API for one connector (KIP-875). A source connector's
//! offsets live in the offset store; a sink connector's are its consumer
//! group's committed offsets, `{"kafka_topic", "kafka_partition"}` →
//! `{"kafka_offset"}`.

use std::time::Duration;

use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sluice_api::PluginKind;

use super::HerderError;
use crate::config::{ConnectorConfig, WorkerConfig};
use crate::kafka;
use crate::worker::Worker;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectorOffsets {
    pub offsets: Vec<PartitionOffset>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionOffset {
    pub partition: Map<String, Value>,
    /// `None` (JSON null) in a PATCH resets that partition.
    pub offset: Option<Map<String, Value>>,
}

pub async fn read(
    worker: &Worker,
    config: &ConnectorConfig,
    active_topics: Vec<String>,
) -> Result<ConnectorOffsets, HerderError> {
    match config.kind {
        PluginKind::Source => Ok(ConnectorOffsets {
            offsets: worker
                .offset_store()
                .connector(&config.name)
                .offsets
                .into_iter()
                .map(|s| PartitionOffset {
                    partition: s.partition,
                    offset: Some(s.offset),
                })
                .collect(),
        }),
        PluginKind::Sink => {
            let (w, group, topics) = sink_target(worker, config, active_topics);
            let committed = blocking(move || committed(&w, &group, &topics)).await?;
            Ok(ConnectorOffsets {
                offsets: committed
                    .into_iter()
                    .map(|(topic, partition, offset)| PartitionOffset {
                        partition: sink_partition(&topic, partition),
                        offset: Some(Map::from_iter([("kafka_offset".into(), offset.into())])),
                    })
                    .collect(),
            })
        }
    }
}

/// Alters (`Some`) or resets (`None`) the offsets of a stopped connector.
pub async fn alter(
    worker: &Worker,
    config: &ConnectorConfig,
    active_topics: Vec<String>,
    changes: Option<ConnectorOffsets>,
) -> Result<String, HerderError> {
    match config.kind {
        PluginKind::Source => {
            let store = worker.offset_store().clone();
            let name = config.name.clone();
            let reset = changes.is_none();
            blocking(move || {
                store
                    .commit(
                        &name,
                        Box::new(|c| match changes {
                            None => *c = Default::default(),
                            Some(changes) => {
                                // The marks say "everything up to here is covered
                                // by the stored offsets", so a restart scans only
                                // past them. A rewind breaks that: drop them, and the
                                // next start scans whole topics, learns every
                                // position already written, and skips the replay.
                                c.marks.clear();
                                for change in changes.offsets {
                                    match change.offset {
                                        Some(o) => c.upsert(&change.partition, o),
                                        None => {
                                            c.offsets.retain(|s| s.partition != change.partition)
                                        }
                                    }
                                }
                            }
                        }),
                    )
                    .map_err(|e| HerderError::Internal(e.to_string()))
            })
            .await?;
            let verb = if reset { "reset" } else { "altered" };
            Ok(format!(
                "The Connect framework-managed offsets for this connector have been {verb} successfully. \
                 However, if this connector manages offsets externally, they will need to be manually \
                 {verb} in the system that the connector uses."
            ))
        }
        PluginKind::Sink => {
            let (w, group, topics) = sink_target(worker, config, active_topics);
            match changes {
                None => {
                    reset_group(&w, &group, topics).await?;
                    Ok("The offsets for this connector have been reset successfully".into())
                }
                Some(changes) => {
                    let parsed = changes
                        .offsets
                        .iter()
                        .map(parse_sink_change)
                        .collect::<Result<Vec<_>, _>>()?;
                    blocking(move || commit(&w, &group, &parsed)).await?;
                    Ok("The offsets for this connector have been altered successfully".into())
                }
            }
        }
    }
}

fn sink_target(
    worker: &Worker,
    config: &ConnectorConfig,
    active_topics: Vec<String>,
) -> (WorkerConfig, String, Vec<String>) {
    let mut topics = config.topics();
    topics.retain(|t| !t.is_empty());
    // A `topics.regex` connector's topics are known by what it consumed.
    if topics.is_empty() {
        topics = active_topics;
    }
    (
        worker.config().clone(),
        format!("connect-{}", config.name),
        topics,
    )
}

fn sink_partition(topic: &str, partition: i32) -> Map<String, Value> {
    Map::from_iter([
        ("kafka_topic".into(), Value::from(topic)),
        ("kafka_partition".into(), Value::from(partition)),
    ])
}

/// One PATCH entry of a sink: (topic, partition, offset or `None` to reset).
fn parse_sink_change(p: &PartitionOffset) -> Result<(String, i32, Option<i64>), HerderError> {
    let bad = |why: &str| {
        HerderError::BadRequest(format!("{why}: {}", Value::Object(p.partition.clone())))
    };
    let topic = p
        .partition
        .get("kafka_topic")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a sink partition needs a string 'kafka_topic'"))?;
    let partition = p
        .partition
        .get("kafka_partition")
        .and_then(Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| bad("a sink partition needs a non-negative integer 'kafka_partition'"))?;
    let offset = match &p.offset {
        None => None,
        Some(o) => Some(
            o.get("kafka_offset")
                .and_then(Value::as_i64)
                .filter(|n| *n >= 0)
                .ok_or_else(|| bad("a sink offset needs a non-negative integer 'kafka_offset'"))?,
        ),
    };
    Ok((topic.to_owned(), partition, offset))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HerderError> + Send + 'static,
) -> Result<T, HerderError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HerderError::Internal(format!("offsets task failed: {e}")))?
}

fn kafka_err(action: &str) -> impl Fn(rdkafka::error::KafkaError) -> HerderError + '_ {
    move |e| HerderError::Internal(format!("Kafka: cannot {action}: {e}"))
}

/// Every partition of `topics` with a committed offset in `group`.
fn committed(
    worker: &WorkerConfig,
    group: &str,
    topics: &[String],
) -> Result<Vec<(String, i32, i64)>, HerderError> {
    let consumer =
        kafka::plain_consumer(worker, group).map_err(|e| HerderError::Internal(e.to_string()))?;
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let meta = consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(kafka_err("read topic metadata"))?;
        for t in meta.topics() {
            for p in t.partitions() {
                tpl.add_partition(t.name(), p.id());
            }
        }
    }
    if tpl.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = consumer
        .committed_offsets(tpl, TIMEOUT)
        .map_err(kafka_err("read committed offsets"))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.topic().to_owned(), e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// Commits offsets for `group` from outside it (the connector is stopped, so
/// the group has no members). A `None` offset goes back to the earliest.
fn commit(
    worker: &WorkerConfig,
    group: &str,
    changes: &[(String, i32, Option<i64>)],
) -> Result<(), HerderError> {
    if changes.is_empty() {
        return Ok(());
    }
    let consumer =
        kafka::plain_consumer(worker, group).map_err(|e| HerderError::Internal(e.to_string()))?;
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset) in changes {
        let offset = match offset {
            Some(o) => *o,
            None => {
                consumer
                    .fetch_watermarks(topic, *partition, TIMEOUT)
                    .map_err(kafka_err("read watermarks"))?
                    .0
            }
        };
        tpl.add_partition_offset(topic, *partition, Offset::Offset(offset))
            .map_err(kafka_err("build the offsets to commit"))?;
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .map_err(kafka_err("commit offsets"))
}

/// Forgets the group's offsets: deletes the group where the broker can, else
/// commits the earliest offset of every partition it had.
async fn reset_group(
    worker: &WorkerConfig,
    group: &str,
    topics: Vec<String>,
) -> Result<(), HerderError> {
    let admin = kafka::admin(worker).map_err(|e| HerderError::Internal(e.to_string()))?;
    let deleted = admin
        .delete_groups(
            &[group],
            &AdminOptions::new().request_timeout(Some(TIMEOUT)),
        )
        .await;
    match deleted {
        Ok(results) if results.iter().all(|r| r.is_ok()) => return Ok(()),
        Ok(results) => {
            for r in results.into_iter().filter_map(Result::err) {
                tracing::info!(group = %r.0, "cannot delete the consumer group ({:?}); committing earliest offsets instead", r.1);
            }
        }
        Err(e) => {
            tracing::info!(group = %group, "cannot delete the consumer group ({e}); committing earliest offsets instead")
        }
    }
    let (w, g) = (worker.clone(), group.to_owned());
    blocking(move || {
        let resets: Vec<_> = committed(&w, &g, &topics)?
            .into_iter()
            .map(|(t, p, _)| (t, p, None))
            .collect();
        commit(&w, &g, &resets)
    })
    .await
}
