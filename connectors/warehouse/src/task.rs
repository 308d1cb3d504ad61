//! The sink task: where to resume (the warehouse's stored offsets, not
//! Kafka's), and each put written as transactions of `batch.size` records.

use std::sync::Arc;

use async_trait::async_trait;
use sluice_api::{
    ConnectError, ErrantRecordReporter, OffsetMap, Record, SinkTask, SinkTaskContext,
    TopicPartition,
};
use tracing::info;

use crate::change::Extractor;
use crate::config::{PkMode, WarehouseConfig};
use crate::database::Warehouse;

#[derive(Default)]
pub struct WarehouseSinkTask {
    state: Option<State>,
}

struct State {
    connector: String,
    task_id: u32,
    batch_size: usize,
    /// Only `pk.mode=record_header` reads them.
    reads_headers: bool,
    warehouse: Warehouse,
    extractor: Extractor,
    reporter: Arc<dyn ErrantRecordReporter>,
}

impl WarehouseSinkTask {
    fn state(&mut self) -> Result<&mut State, ConnectError> {
        self.state
            .as_mut()
            .ok_or_else(|| ConnectError::fatal("the warehouse sink task was not started"))
    }
}

#[async_trait]
impl SinkTask for WarehouseSinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let config = Arc::new(WarehouseConfig::parse(&context.config)?);
        self.state = Some(State {
            batch_size: config.batch_size,
            reads_headers: config.pk_mode == PkMode::RecordHeader,
            warehouse: Warehouse::new(config.clone(), &context.connector),
            extractor: Extractor::new(config),
            connector: context.connector,
            task_id: context.task_id,
            reporter: context.reporter,
        });
        Ok(())
    }

    /// The consumer starts each partition where the warehouse says its
    /// rows end, so what Kafka's group committed (possibly behind) is not
    /// read again, and nothing is skipped.
    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<OffsetMap, ConnectError> {
        let state = self.state()?;
        state.warehouse.connect_with_attempts().await?;
        let offsets = state.warehouse.stored_offsets(partitions).await?;
        for (tp, offset) in &offsets {
            info!(connector = %state.connector, task = state.task_id, topic = %tp.topic, partition = tp.partition, offset, "resuming from the warehouse's stored offset");
        }
        Ok(offsets)
    }

    fn reads_headers(&self) -> bool {
        self.state.as_ref().is_none_or(|s| s.reads_headers)
    }

    async fn put(&mut self, records: Vec<Record>) -> Result<(), ConnectError> {
        let state = self.state()?;
        let mut records = records.into_iter();
        loop {
            let chunk: Vec<Record> = records.by_ref().take(state.batch_size).collect();
            if chunk.is_empty() {
                return Ok(());
            }
            state
                .warehouse
                .write_batch(chunk, &mut state.extractor, &*state.reporter)
                .await?;
        }
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        if let Some(state) = self.state.as_mut() {
            state.warehouse.close();
        }
        Ok(())
    }
}
