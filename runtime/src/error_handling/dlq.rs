//! The dead-letter queue: failed records go to one named topic
//! (`errors.deadletterqueue.topic.name`, Connect's) or to a topic per source topic
//! (`errors.deadletterqueue.topic.suffix`, the seed's `.dlq` convention), unchanged,
//! with `__connect.errors.*` context headers when
//! `errors.deadletterqueue.context.headers.enable=true`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_api::ConnectError;

use super::{exception_class, Failure};
use crate::config::{ConnectorConfig, WorkerConfig};
use crate::error::WorkerError;
use crate::kafka;
use crate::topics::{ensure_topic, Topics};

pub const ERROR_HEADER_PREFIX: &str = "__connect.errors.";

const SEND_TIMEOUT: Duration = Duration::from_secs(60);

enum Target {
    Topic(String),
    Suffix(String),
}

pub struct DeadLetterQueue {
    producer: FutureProducer,
    target: Target,
    topics: Arc<Topics>,
    replication_factor: i32,
    context_headers: bool,
    connector: String,
    task: u32,
    ready: Mutex<HashSet<String>>,
}

impl DeadLetterQueue {
    /// The task's dead-letter queue, if the connector configures one.
    pub fn from_config(
        worker: &WorkerConfig,
        config: &ConnectorConfig,
        task: u32,
        topics: Arc<Topics>,
    ) -> Result<Option<Arc<Self>>, WorkerError> {
        let non_empty = |k: &str| {
            config
                .get(k)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let target = match (
            non_empty("errors.deadletterqueue.topic.name"),
            non_empty("errors.deadletterqueue.topic.suffix"),
        ) {
            (Some(name), _) => Target::Topic(name),
            (None, Some(suffix)) => Target::Suffix(suffix),
            (None, None) => return Ok(None),
        };
        let overrides = [(
            "client.id",
            format!("connector-dlq-producer-{}-{task}", config.name),
        )];
        let producer = kafka::future_producer(worker, &overrides)?;
        Ok(Some(Arc::new(Self {
            producer,
            target,
            topics,
            replication_factor: config
                .get("errors.deadletterqueue.topic.replication.factor")
                .and_then(|v| v.parse().ok())
                .unwrap_or(3),
            context_headers: config
                .get("errors.deadletterqueue.context.headers.enable")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            connector: config.name.clone(),
            task,
            ready: Mutex::new(HashSet::new()),
        })))
    }

    pub fn topic_for(&self, original_topic: &str) -> String {
        match &self.target {
            Target::Topic(t) => t.clone(),
            Target::Suffix(s) => format!("{original_topic}{s}"),
        }
    }

    /// Writes one failed record and waits until Kafka has it.
    pub async fn send(&self, failure: &Failure) -> Result<(), ConnectError> {
        let original = &failure.original;
        let topic = self.topic_for(&original.topic);
        self.ensure(&topic).await?;
        let mut headers = OwnedHeaders::new_with_capacity(original.headers.len() + 10);
        for h in original.headers.iter() {
            headers = headers.insert(KafkaHeader {
                key: &h.key,
                value: h.value.as_deref(),
            });
        }
        if self.context_headers {
            let e = &failure.error;
            let context: [(&str, String); 10] = [
                ("topic", original.topic.to_string()),
                (
                    "partition",
                    original
                        .partition
                        .map_or_else(|| "-1".to_owned(), |p| p.to_string()),
                ),
                (
                    "offset",
                    original
                        .offset
                        .map_or_else(|| "-1".to_owned(), |o| o.to_string()),
                ),
                ("connector.name", self.connector.clone()),
                ("task.id", self.task.to_string()),
                ("stage", failure.stage.as_str().to_owned()),
                ("class.name", failure.class_name.clone()),
                ("exception.class.name", exception_class(e.kind()).to_owned()),
                ("exception.message", e.message().to_owned()),
                ("exception.stacktrace", e.chain()),
            ];
            for (name, value) in &context {
                let key = format!("{ERROR_HEADER_PREFIX}{name}");
                headers = headers.insert(KafkaHeader {
                    key: &key,
                    value: Some(value.as_bytes()),
                });
            }
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(&topic).headers(headers);
        if let Some(k) = original.key.as_deref() {
            record = record.key(k);
        }
        if let Some(v) = original.value.as_deref() {
            record = record.payload(v);
        }
        if let Some(ts) = original.timestamp {
            record = record.timestamp(ts);
        }
        self.producer
            .send(record, SEND_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|(e, _)| {
                ConnectError::fatal(format!(
                    "cannot write record {} to the dead-letter queue '{topic}': {e}",
                    original.coordinates()
                ))
            })
    }

    async fn ensure(&self, topic: &str) -> Result<(), ConnectError> {
        if self
            .ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(topic)
        {
            return Ok(());
        }
        // Connect creates its DLQ with one partition: order there is arrival order.
        ensure_topic(&self.topics, topic, Some((1, self.replication_factor)))
            .await
            .map_err(|e| {
                ConnectError::retriable(format!("dead-letter queue topic '{topic}': {e}"))
            })?;
        self.ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(topic.to_owned());
        Ok(())
    }
}
