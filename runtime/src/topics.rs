//! Topics: the declarative `configs/topics.json` (`sluice topics apply`), looking
//! around (`list`, `describe`), and creating a source's topic on first use.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use serde::Deserialize;

use crate::config::WorkerConfig;
use crate::error::WorkerError;
use crate::kafka;

const TIMEOUT: Duration = Duration::from_secs(15);

/// One topic as `configs/topics.json` declares it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    #[serde(rename = "replication.factor", default = "minus_one")]
    pub replication_factor: i32,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Free text for people reading the file.
    #[serde(default)]
    pub description: Option<String>,
}

fn minus_one() -> i32 {
    -1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicsFile {
    topics: Vec<TopicSpec>,
}

pub fn read_topics_file(path: &Path) -> Result<Vec<TopicSpec>, WorkerError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| WorkerError::Other(format!("{shown}: cannot read: {e}")))?;
    let file: TopicsFile =
        serde_json::from_str(&text).map_err(|e| WorkerError::Other(format!("{shown}: {e}")))?;
    for t in &file.topics {
        if t.name.is_empty() || t.partitions < 1 {
            return Err(WorkerError::Other(format!(
                "{shown}: topic '{}': needs a name and 'partitions' of at least 1",
                t.name
            )));
        }
    }
    Ok(file.topics)
}

/// What a topic looks like on the cluster.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub id: i32,
    pub leader: i32,
    pub replicas: usize,
}

pub struct Topics {
    admin: AdminClient<DefaultClientContext>,
    brokers: usize,
}

impl Topics {
    pub fn connect(worker: &WorkerConfig) -> Result<Self, WorkerError> {
        let admin = kafka::admin(worker)?;
        let md = admin
            .inner()
            .fetch_metadata(None, kafka::REACH_TIMEOUT)
            .map_err(|e| WorkerError::Unreachable {
                servers: worker.bootstrap_servers(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            admin,
            brokers: md.brokers().len().max(1),
        })
    }

    pub fn list(&self) -> Result<Vec<TopicInfo>, WorkerError> {
        self.describe(None)
    }

    /// The cluster id, for `GET /`. Blocking.
    pub fn cluster_id(&self) -> Option<String> {
        self.admin.inner().fetch_cluster_id(TIMEOUT)
    }

    /// One topic (`Some`) or every topic, from cluster metadata.
    pub fn describe(&self, topic: Option<&str>) -> Result<Vec<TopicInfo>, WorkerError> {
        let md = self
            .admin
            .inner()
            .fetch_metadata(topic, TIMEOUT)
            .map_err(|e| WorkerError::kafka("fetch metadata", e))?;
        let mut out: Vec<TopicInfo> = md
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| TopicInfo {
                name: t.name().to_owned(),
                partitions: t
                    .partitions()
                    .iter()
                    .map(|p| PartitionInfo {
                        id: p.id(),
                        leader: p.leader(),
                        replicas: p.replicas().len(),
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Topic configuration as the broker reports it; `None` when the broker does
    /// not implement DescribeConfigs.
    pub async fn configs(&self, topic: &str) -> Option<BTreeMap<String, String>> {
        let opts = AdminOptions::new().request_timeout(Some(TIMEOUT));
        let results = self
            .admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], &opts)
            .await
            .ok()?;
        let resource = results.into_iter().next()?.ok()?;
        Some(
            resource
                .entries
                .into_iter()
                .filter_map(|e| Some((e.name, e.value?)))
                .collect(),
        )
    }

    /// Creates a topic. `Ok(false)` when it already exists.
    pub async fn create(&self, spec: &TopicSpec) -> Result<bool, WorkerError> {
        let rf = self.replication_for(spec.replication_factor);
        let config = self.capped_config(&spec.config);
        let mut topic = NewTopic::new(&spec.name, spec.partitions, TopicReplication::Fixed(rf));
        for (k, v) in &config {
            topic = topic.set(k, v);
        }
        let opts = AdminOptions::new()
            .operation_timeout(Some(TIMEOUT))
            .request_timeout(Some(TIMEOUT));
        let results = self
            .admin
            .create_topics([&topic], &opts)
            .await
            .map_err(|e| WorkerError::kafka("create topics", e))?;
        match results.into_iter().next() {
            Some(Ok(_)) | None => Ok(true),
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
            Some(Err((name, code))) => Err(WorkerError::Other(format!(
                "cannot create topic '{name}': {code}"
            ))),
        }
    }

    /// Replication factors above the broker count cannot be satisfied: a one-broker
    /// development cluster gets what it can hold. `-1` asks for the broker default.
    fn replication_for(&self, wanted: i32) -> i32 {
        if wanted < 1 {
            return -1;
        }
        wanted.min(i32::try_from(self.brokers).unwrap_or(i32::MAX))
    }

    fn capped_config(&self, config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut out = config.clone();
        if let Some(isr) = out.get_mut("min.insync.replicas") {
            if isr.parse::<usize>().is_ok_and(|n| n > self.brokers) {
                *isr = self.brokers.to_string();
            }
        }
        out
    }

    /// Creates what is missing and reports, per topic, what differs. Partition
    /// counts are never changed: raising them moves keys between partitions.
    pub async fn apply(&self, specs: &[TopicSpec]) -> Result<Vec<String>, WorkerError> {
        let existing: BTreeMap<String, TopicInfo> = self
            .list()?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        let mut report = Vec::new();
        for spec in specs {
            let Some(info) = existing.get(&spec.name) else {
                self.create(spec).await?;
                report.push(format!(
                    "created  {} ({} partitions, replication factor {})",
                    spec.name,
                    spec.partitions,
                    match self.replication_for(spec.replication_factor) {
                        -1 => "broker default".to_owned(),
                        n => n.to_string(),
                    }
                ));
                continue;
            };
            let mut diffs = Vec::new();
            if info.partitions.len() != spec.partitions as usize {
                diffs.push(format!(
                    "partitions {} (declared {})",
                    info.partitions.len(),
                    spec.partitions
                ));
            }
            if let Some(actual) = self.configs(&spec.name).await {
                for (k, v) in self.capped_config(&spec.config) {
                    match actual.get(&k) {
                        Some(a) if *a == v => {}
                        Some(a) => diffs.push(format!("{k}={a} (declared {v})")),
                        None => diffs.push(format!("{k} unset (declared {v})")),
                    }
                }
            }
            if diffs.is_empty() {
                report.push(format!("ok       {}", spec.name));
            } else {
                report.push(format!("differs  {}: {}", spec.name, diffs.join(", ")));
            }
        }
        Ok(report)
    }
}

/// Makes sure a source's topic exists (creating it when the worker and the
/// connector allow it) and returns its partition count.
pub async fn ensure_topic(
    topics: &Topics,
    name: &str,
    create: Option<(i32, i32)>,
) -> Result<i32, WorkerError> {
    if let Some(t) = topics
        .describe(Some(name))?
        .into_iter()
        .find(|t| t.name == name)
    {
        return Ok(t.partitions.len() as i32);
    }
    let Some((partitions, replication_factor)) = create else {
        return Err(WorkerError::Other(format!(
            "topic '{name}' does not exist and topic creation is disabled (topic.creation.enable)"
        )));
    };
    let spec = TopicSpec {
        name: name.to_owned(),
        partitions,
        replication_factor,
        config: BTreeMap::new(),
        description: None,
    };
    topics.create(&spec).await?;
    // Metadata can lag creation by a moment; wait for it rather than guess.
    for _ in 0..100 {
        if let Some(t) = topics
            .describe(Some(name))?
            .into_iter()
            .find(|t| t.name == name && !t.partitions.is_empty())
        {
            return Ok(t.partitions.len() as i32);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(WorkerError::Other(format!(
        "topic '{name}' was created but does not appear in metadata"
    )))
}

/// Low and high watermarks of every partition, for `describe`.
pub fn watermarks(
    worker: &WorkerConfig,
    info: &TopicInfo,
) -> Result<Vec<(i32, i64, i64)>, WorkerError> {
    let reader = kafka::reader(worker)?;
    info.partitions
        .iter()
        .map(|p| {
            let (lo, hi) = reader
                .fetch_watermarks(&info.name, p.id, TIMEOUT)
                .map_err(|e| {
                    WorkerError::kafka(format!("read watermarks of {}-{}", info.name, p.id), e)
                })?;
            Ok((p.id, lo, hi))
        })
        .collect()
}
