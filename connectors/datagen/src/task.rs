use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sluice_api::schema::primitives;
use sluice_api::{
    ConnectError, Position, Record, SchemaRef, SourceOffset, SourcePartition, SourceRef,
    SourceTask, SourceTaskContext, Value,
};
use tokio::time::Instant;

use crate::config::config_def;
use crate::event::{ApiUsageEvent, EventGenerator, DEFAULT_EPOCH_MS};

#[derive(Default)]
pub struct DatagenTask {
    share: Option<Share>,
}

/// This task's share of the events, once started: where it stands and how fast it goes.
struct Share {
    generator: EventGenerator,
    topic: Arc<str>,
    partition: Arc<SourcePartition>,
    key_schema: SchemaRef,
    next: i64,
    /// Exclusive end of this task's share; `None` runs forever.
    end: Option<i64>,
    batch_size: i64,
    rate: Option<f64>,
    started: Instant,
    first: i64,
}

#[async_trait]
impl SourceTask for DatagenTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        let c = config_def().validate(&context.config)?;
        let index: i32 = context
            .config
            .get("task.index")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut partition = SourcePartition::new();
        partition.insert("generator".into(), json!("datagen"));
        partition.insert("task".into(), json!(index));
        // The stored offset is the last sequence Kafka acknowledged.
        let next = context
            .offset(&partition)
            .and_then(|o| o.get("seq"))
            .and_then(serde_json::Value::as_i64)
            .map_or(0, |s| s + 1);
        let max = c.long("max.records").unwrap_or(0);
        let rate = c.long("records.per.second").unwrap_or(0);
        self.share = Some(Share {
            generator: EventGenerator {
                seed: c.long("seed").unwrap_or(42) as u64,
                generator: index,
                tenants: c.int("tenants").unwrap_or(1000).max(1) as u32,
                hot_tenants: c.int("hot.tenants").unwrap_or(3).max(0) as u32,
                hot_share: c.double("hot.tenant.share").unwrap_or(0.3),
                composite_hot_keys: c.boolean("hot.tenant.composite.key").unwrap_or(true),
                epoch_ms: DEFAULT_EPOCH_MS,
                schema: ApiUsageEvent::schema(),
            },
            topic: c
                .string("kafka.topic")
                .unwrap_or("api-usage-events.v1")
                .into(),
            partition: Arc::new(partition),
            key_schema: primitives::string(),
            next,
            end: (max > 0).then_some(max),
            batch_size: i64::from(c.int("batch.size").unwrap_or(1000)),
            rate: (rate > 0).then_some(rate as f64),
            started: Instant::now(),
            first: next,
        });
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<Record>, ConnectError> {
        let s = self
            .share
            .as_mut()
            .ok_or_else(|| ConnectError::fatal("poll before start"))?;
        let mut n = s.batch_size;
        if let Some(end) = s.end {
            n = n.min(end - s.next);
            if n <= 0 {
                // Done: idle politely so the runtime can flush and shut down.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Ok(Vec::new());
            }
        }
        if let Some(rate) = s.rate {
            // Schedule by count since start, so the rate holds over time.
            n = n.min((rate / 10.0).ceil().max(1.0) as i64);
            let due = s.started + Duration::from_secs_f64((s.next - s.first) as f64 / rate);
            tokio::time::sleep_until(due).await;
        }
        let mut records = Vec::with_capacity(n as usize);
        for seq in s.next..s.next + n {
            let event = s.generator.event(seq);
            let mut offset = SourceOffset::new();
            offset.insert("seq".into(), json!(seq));
            records.push(Record {
                topic: s.topic.clone(),
                timestamp: Some(event.timestamp),
                key_schema: Some(s.key_schema.clone()),
                key: Value::String(event.key.clone()),
                value_schema: Some(s.generator.schema.clone()),
                value: event.to_value(),
                source: Some(SourceRef {
                    partition: s.partition.clone(),
                    offset,
                    position: Some(Position::new(seq as u64, 0)),
                }),
                ..Record::default()
            });
        }
        s.next += n;
        Ok(records)
    }
}
