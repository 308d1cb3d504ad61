//! The sink task: where to resume (the warehouse's stored offsets, not
//! Kafka's), and each put written as transactions of `batch.size` records.
//!
//! One put is written while the runtime reads and converts the next: `put`
//! turns the records into changes, hands them to a writer task and returns;
//! the next `put` (or `pre_commit`, `close`, `stop`) first waits for that
//! writer. So the database works on one batch while the worker decodes the
//! next, and still one transaction at a time, in order. A batch whose
//! transaction failed for a reason that passes (the warehouse is away) is
//! kept and written before anything else; until it is, `put` and
//! `pre_commit` fail as retriable, so the runtime backs off and says so.

use std::sync::Arc;

use async_trait::async_trait;
use sluice_api::{
    ConnectError, ErrantRecordReporter, OffsetMap, Record, SinkTask, SinkTaskContext,
    TopicPartition,
};
use tokio::task::JoinHandle;
use tracing::info;

use crate::change::Extractor;
use crate::config::{PkMode, WarehouseConfig};
use crate::database::Warehouse;
use crate::plan::Batch;

#[derive(Default)]
pub struct WarehouseSinkTask {
    writer: Option<Writer>,
}

/// The started task: its connection, or the put a writer is busy with.
struct Writer {
    connector: String,
    task_id: u32,
    batch_size: usize,
    /// `use.reduction.buffer`.
    reduce: bool,
    /// Only `pk.mode=record_header` reads them.
    reads_headers: bool,
    extractor: Extractor,
    reporter: Arc<dyn ErrantRecordReporter>,
    /// The connection, here while no writer holds it.
    warehouse: Option<Warehouse>,
    /// The put being written.
    writing: Option<JoinHandle<Written>>,
    /// Records of a put whose transaction failed and must be written first.
    failed: Vec<Record>,
}

/// What a writer hands back: the connection, and the records it did not
/// write with why (their transaction rolled back).
struct Written {
    warehouse: Warehouse,
    failure: Option<(ConnectError, Vec<Record>)>,
}

impl WarehouseSinkTask {
    fn writer(&mut self) -> Result<&mut Writer, ConnectError> {
        self.writer
            .as_mut()
            .ok_or_else(|| ConnectError::fatal("the warehouse sink task was not started"))
    }
}

impl Writer {
    /// Waits for the writer, if any, and takes the connection back. A
    /// retriable failure leaves its records in `failed`; any other fails the
    /// task.
    async fn reclaim(&mut self) -> Result<&mut Warehouse, ConnectError> {
        if let Some(writing) = self.writing.take() {
            let written = writing
                .await
                .map_err(|e| ConnectError::fatal(format!("the warehouse writer failed: {e}")))?;
            self.warehouse = Some(written.warehouse);
            if let Some((e, records)) = written.failure {
                if !e.is_retriable() {
                    return Err(e);
                }
                self.failed = records;
            }
        }
        self.warehouse
            .as_mut()
            .ok_or_else(|| ConnectError::fatal("the warehouse connection was lost"))
    }

    /// Everything put so far written: the writer waited for, and a failed
    /// batch written again here.
    async fn settle(&mut self) -> Result<(), ConnectError> {
        self.reclaim().await?;
        if self.failed.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.failed);
        let batches = Batch::split(records, self.batch_size, &mut self.extractor, self.reduce);
        let warehouse = self
            .warehouse
            .as_mut()
            .ok_or_else(|| ConnectError::fatal("the warehouse connection was lost"))?;
        if let Some((e, rest)) = write(warehouse, batches, &*self.reporter).await {
            self.failed = rest;
            return Err(e);
        }
        Ok(())
    }
}

/// Writes `batches`, a transaction each, in order; on a failure, answers it
/// with the records not written.
async fn write(
    warehouse: &mut Warehouse,
    batches: Vec<Batch>,
    reporter: &dyn ErrantRecordReporter,
) -> Option<(ConnectError, Vec<Record>)> {
    let mut batches = batches.into_iter();
    while let Some(batch) = batches.next() {
        if let Err((e, mut records)) = warehouse.write_batch(batch, reporter).await {
            records.extend(batches.flat_map(|b| b.records));
            return Some((e, records));
        }
    }
    None
}

#[async_trait]
impl SinkTask for WarehouseSinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let config = Arc::new(WarehouseConfig::parse(&context.config)?);
        self.writer = Some(Writer {
            batch_size: config.batch_size,
            reduce: config.reduce,
            reads_headers: config.pk_mode == PkMode::RecordHeader,
            warehouse: Some(Warehouse::new(config.clone(), &context.connector)),
            extractor: Extractor::new(config),
            connector: context.connector,
            task_id: context.task_id,
            reporter: context.reporter,
            writing: None,
            failed: Vec::new(),
        });
        Ok(())
    }

    /// The consumer starts each partition where the warehouse says its
    /// rows end, so what Kafka's group committed (possibly behind) is not
    /// read again, and nothing is skipped.
    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<OffsetMap, ConnectError> {
        let writer = self.writer()?;
        let warehouse = writer.reclaim().await?;
        warehouse.connect_with_attempts().await?;
        let offsets = warehouse.stored_offsets(partitions).await?;
        for (tp, offset) in &offsets {
            info!(connector = %writer.connector, task = writer.task_id, topic = %tp.topic, partition = tp.partition, offset, "resuming from the warehouse's stored offset");
        }
        Ok(offsets)
    }

    fn reads_headers(&self) -> bool {
        self.writer.as_ref().is_none_or(|s| s.reads_headers)
    }

    async fn put(&mut self, records: Vec<Record>) -> Result<(), ConnectError> {
        let writer = self.writer()?;
        // Turning records into rows, planning the statements and encoding
        // the rows is done here, on the worker's side, so that the writer's
        // time is the database's.
        let batches = Batch::split(
            records,
            writer.batch_size,
            &mut writer.extractor,
            writer.reduce,
        );
        writer.settle().await?;
        let Some(mut warehouse) = writer.warehouse.take() else {
            return Err(ConnectError::fatal("the warehouse connection was lost"));
        };
        let reporter = writer.reporter.clone();
        writer.writing = Some(tokio::spawn(async move {
            let failure = write(&mut warehouse, batches, &*reporter).await;
            Written { warehouse, failure }
        }));
        Ok(())
    }

    /// Every record put so far is in the warehouse once the writer is done,
    /// so all of `offsets` may be committed (to Kafka, for monitoring: the
    /// task resumes from the warehouse's).
    async fn pre_commit(&mut self, offsets: &OffsetMap) -> Result<OffsetMap, ConnectError> {
        self.writer()?.settle().await?;
        Ok(offsets.clone())
    }

    /// Records of partitions taken away that are still to be written are
    /// dropped: their next owner reads them from the warehouse's offsets.
    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        let writer = self.writer()?;
        writer.reclaim().await?;
        writer.failed.retain(|r| {
            !partitions
                .iter()
                .any(|tp| *tp.topic == *r.topic && Some(tp.partition) == r.partition)
        });
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        if let Some(writer) = self.writer.as_mut() {
            let _ = writer.reclaim().await;
            if let Some(w) = writer.warehouse.as_mut() {
                w.close();
            }
        }
        Ok(())
    }
}
