//! Runs one sink task: Kafka consumer (group `connect-<name>`) → converters →
//! transforms → `put`, committing offsets only for what the task has made durable
//! (its `pre_commit` answer), on a timer, before partitions are given up, and at
//! shutdown.

mod consumer;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_api::{
    Backoff, ConnectError, Converter, Headers, OffsetMap, Record, Rewinds, SinkTask,
    SinkTaskContext, TopicPartition, Value,
};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

pub use self::consumer::{ConsumerEvent, RawRecord, SinkConsumer};
use crate::config::WorkerConfig;
use crate::control::{until_stopped, TargetState, TaskHealth};
use crate::error_handling::{ErrorPolicy, Failure, Original, SinkReporter, Stage};
use crate::kafka;
use crate::metrics::{ActiveTopics, TaskMetrics};
use crate::transforms::TransformChain;

pub struct SinkRunner {
    pub connector: String,
    pub task_id: u32,
    pub task: Box<dyn SinkTask>,
    pub context: SinkTaskContext,
    pub transforms: TransformChain,
    pub key_converter: Box<dyn Converter>,
    pub value_converter: Box<dyn Converter>,
    pub policy: ErrorPolicy,
    /// The reporter the task was given; the runner tells it each batch's originals.
    pub reporter: Arc<SinkReporter>,
    pub metrics: Arc<TaskMetrics>,
    pub flush_interval: Duration,
    pub max_poll_records: usize,
    /// The connector's target state: paused pauses the consumer, stopped ends the task.
    pub control: watch::Receiver<TargetState>,
    pub active_topics: ActiveTopics,
    pub health: Arc<TaskHealth>,
    /// Rewinds the runner has asked the consumer thread to make.
    pub seeks: Arc<Rewinds>,
}

/// The subscription: a topic list or Connect's `topics.regex`.
pub enum Subscription {
    Topics(Vec<String>),
    Regex(String),
}

/// One sink task's subscribed consumer and the channel its poll thread feeds.
pub struct Subscribed {
    pub consumer: Arc<SinkConsumer>,
    pub events: mpsc::Receiver<ConsumerEvent>,
    pub events_tx: mpsc::Sender<ConsumerEvent>,
}

/// Creates the consumer for one sink task, subscribed, with its event channel.
pub fn subscribe(
    worker: &WorkerConfig,
    connector: &str,
    task_id: u32,
    subscription: &Subscription,
    overrides: &[(&str, String)],
) -> Result<Subscribed, crate::error::WorkerError> {
    let (tx, rx) = mpsc::channel(4);
    let mut settings = vec![
        ("group.id", format!("connect-{connector}")),
        (
            "client.id",
            format!("connector-consumer-{connector}-{task_id}"),
        ),
    ];
    settings.extend(overrides.iter().map(|(k, v)| (*k, v.clone())));
    let consumer = kafka::consumer(
        worker,
        consumer::context(tx.clone(), connector, task_id),
        &settings,
    )?;
    let result = match subscription {
        Subscription::Topics(topics) => {
            consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())
        }
        // librdkafka treats a topic starting with '^' as a regex.
        Subscription::Regex(r) => consumer.subscribe(&[&format!("^{}", r.trim_start_matches('^'))]),
    };
    result.map_err(|e| crate::error::WorkerError::kafka("subscribe", e))?;
    Ok(Subscribed {
        consumer: Arc::new(consumer),
        events: rx,
        events_tx: tx,
    })
}

impl SinkRunner {
    pub async fn run(mut self, subscribed: Subscribed) -> Result<(), ConnectError> {
        let Subscribed {
            consumer,
            mut events,
            events_tx,
        } = subscribed;
        self.task.start(self.context.clone()).await?;
        info!(connector = %self.connector, task = self.task_id, "sink task started");
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (c, s, max) = (consumer.clone(), stop.clone(), self.max_poll_records);
            let (control, seeks) = (self.control.clone(), self.seeks.clone());
            let headers = self.task.reads_headers()
                || !self.transforms.is_empty()
                || self.policy.needs_failed_bytes();
            std::thread::Builder::new()
                .name(format!("sink-{}-{}", self.connector, self.task_id))
                .spawn(move || consumer::poll_loop(c, events_tx, max, headers, s, control, seeks))
                .map_err(|e| {
                    ConnectError::fatal(format!("cannot start the consumer thread: {e}"))
                })?
        };
        let mut state = SinkState {
            // A columnar sink decodes schemaless JSON itself when nothing
            // before it needs the values decoded.
            json_values: self.task.takes_json_values()
                && self.transforms.is_empty()
                && self.value_converter.reads_schemaless_json(),
            ..SinkState::default()
        };
        if state.json_values {
            info!(connector = %self.connector, task = self.task_id, "values go to the task as JSON text, decoded by the task");
        }
        let result = self.run_loop(&consumer, &mut events, &mut state).await;
        // A failed loop commits nothing more: the task may not have made its last
        // records durable, and whoever reads the partitions next reads them again.
        let final_commit = if result.is_ok() {
            self.commit(&consumer, &mut state).await
        } else {
            Ok(())
        };
        let stopped = self.task.stop().await;
        stop.store(true, Ordering::Release);
        // Unblock a rebalance callback waiting on us, then let the thread go.
        drop(events);
        // Closing the consumer runs its last rebalance; do it off the async threads.
        let _ = tokio::task::spawn_blocking(move || {
            let _ = poller.join();
            drop(consumer);
        })
        .await;
        result.and(final_commit).and(stopped)
    }

    async fn run_loop(
        &mut self,
        consumer: &Arc<SinkConsumer>,
        events: &mut mpsc::Receiver<ConsumerEvent>,
        state: &mut SinkState,
    ) -> Result<(), ConnectError> {
        let mut tick = tokio::time::interval(self.flush_interval);
        tick.tick().await;
        let mut control = self.control.clone();
        loop {
            if *control.borrow_and_update() == TargetState::Stopped {
                return Ok(());
            }
            tokio::select! {
                event = events.recv() => match event {
                    None => return Err(ConnectError::fatal("the consumer thread stopped")),
                    Some(ConsumerEvent::Batch(batch)) => self.process(batch, state).await?,
                    Some(ConsumerEvent::Assigned(parts, answer)) => {
                        info!(connector = %self.connector, task = self.task_id, partitions = parts.len(), "partitions assigned");
                        let seeks = self.task.open(&parts).await?;
                        for tp in &parts {
                            state.assigned.insert(tp.clone());
                        }
                        let _ = answer.send(seeks);
                    }
                    Some(ConsumerEvent::Revoked(parts, answer)) => {
                        info!(connector = %self.connector, task = self.task_id, partitions = parts.len(), "partitions revoked");
                        // A commit that fails here (the broker just came back,
                        // the group moved on) only means the next owner reads
                        // those records again; the task carries on.
                        if let Err(e) = self.commit(consumer, state).await {
                            if !e.is_retriable() {
                                return Err(e);
                            }
                            warn!(connector = %self.connector, task = self.task_id, "commit before giving partitions up failed; their next owner reads from the last commit: {e}");
                        }
                        self.task.close(&parts).await?;
                        for tp in &parts {
                            state.assigned.remove(tp);
                            state.consumed.remove(tp);
                            state.committed.remove(tp);
                            state.rewinding.remove(tp);
                            state.handled.remove(tp);
                        }
                        self.reporter.forget(&parts);
                        let _ = answer.send(());
                    }
                    // Every batch fetched before the pause came before this.
                    Some(ConsumerEvent::Rewound(tp)) => {
                        state.rewinding.remove(&tp);
                    }
                    Some(ConsumerEvent::Paused) => if *control.borrow() == TargetState::Paused {
                        self.health.confirm_paused();
                    },
                    Some(ConsumerEvent::Fatal(why)) => return Err(ConnectError::fatal(format!("Kafka consumer: {why}"))),
                },
                _ = tick.tick() => self.commit_or_retry_later(consumer, state).await?,
                // Pausing is the poll thread's job; here a change only matters
                // when it is a stop, which the top of the loop sees.
                changed = control.changed() => if changed.is_err() { return Ok(()) },
            }
        }
    }

    async fn process(
        &mut self,
        batch: Vec<RawRecord>,
        state: &mut SinkState,
    ) -> Result<(), ConnectError> {
        TaskMetrics::add(&self.metrics.records_in, batch.len() as u64);
        let keep = self.policy.keeps_originals();
        let mut records = Vec::with_capacity(batch.len());
        // How each converted record looked in Kafka: its bytes when a dead-letter
        // queue may need them, else its coordinates.
        let mut originals: Vec<Option<Original>> = Vec::with_capacity(batch.len());
        let mut spans: Vec<Span> = Vec::new();
        // Fetches arrive in runs of one partition: look each run up once.
        let mut current: Option<(Arc<str>, i32, Option<usize>)> = None;
        for raw in batch {
            let slot = match &current {
                Some((t, p, slot)) if Arc::ptr_eq(t, &raw.topic) && *p == raw.partition => *slot,
                _ => {
                    let tp = TopicPartition::new(&*raw.topic, raw.partition);
                    // Records fetched before a rewind are read again after it.
                    let live = state.assigned.contains(&tp) && !state.rewinding.contains(&tp);
                    if live {
                        // A topic is active once a record of it is consumed,
                        // as in Connect; an assignment alone is not use.
                        self.active_topics.record(&raw.topic);
                    }
                    let slot = live.then(|| {
                        spans.iter().position(|s| s.tp == tp).unwrap_or_else(|| {
                            let handled = state.handled.get(&tp).copied();
                            spans.push(Span {
                                tp,
                                first: raw.offset,
                                last: raw.offset,
                                handled,
                            });
                            spans.len() - 1
                        })
                    });
                    current = Some((raw.topic.clone(), raw.partition, slot));
                    slot
                }
            };
            // Records of a partition taken away mid-batch belong to its new owner.
            let Some(slot) = slot else { continue };
            let span = &mut spans[slot];
            span.last = raw.offset;
            let handled = span.handled.is_some_and(|h| raw.offset <= h);
            if let Some((record, original)) =
                self.convert(raw, keep, handled, state.json_values).await?
            {
                records.push(record);
                originals.push(Some(original));
            }
        }
        // Without transforms a record's position is its input's: no indexed
        // copy of the batch (two moves of every record) is made.
        let (records, origins, failures) = if self.transforms.is_empty() {
            (records, None, Vec::new())
        } else {
            let (indexed, failures) = self.transforms.apply_indexed(records);
            let (origins, records): (Vec<usize>, Vec<Record>) = indexed.into_iter().unzip();
            (records, Some(origins), failures)
        };
        for f in failures {
            let original = originals.get_mut(f.index).and_then(Option::take);
            if original
                .as_ref()
                .is_some_and(|o| already_handled(&spans, o))
            {
                continue;
            }
            self.policy
                .handle(Failure::transformation(f, original))
                .await?;
        }
        let n = records.len() as u64;
        if keep {
            let mut map = self
                .reporter
                .originals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (pos, r) in records.iter().enumerate() {
                let i = origins.as_ref().map_or(pos, |o| o[pos]);
                if let Some(o) = originals.get_mut(i).and_then(Option::take) {
                    map.insert(
                        (
                            r.topic.clone(),
                            r.partition.unwrap_or(-1),
                            r.offset.unwrap_or(-1),
                        ),
                        o,
                    );
                }
            }
        }
        if !records.is_empty() && self.put(records, &spans, state).await? != Put::Accepted {
            // Nothing of the batch is the task's yet, so nothing of it may be
            // committed: it is read again (after a failure) or by the next owner.
            return Ok(());
        }
        // Only now is the batch the task's: a commit may cover it.
        for span in spans {
            if !state.rewinding.contains(&span.tp) {
                if span.handled.is_some_and(|h| h <= span.last) {
                    state.handled.remove(&span.tp);
                }
                state.consumed.insert(span.tp, span.last + 1);
            }
        }
        TaskMetrics::add(&self.metrics.records_out, n);
        Ok(())
    }

    /// Acts on the task's rewind requests: nothing past them is committed, the
    /// consumer thread seeks, and until it confirms, those partitions' records
    /// (fetched before the seek) are skipped.
    fn rewind(&mut self, state: &mut SinkState) {
        for (tp, offset) in self.context.rewinds.take() {
            if state.assigned.contains(&tp) {
                info!(connector = %self.connector, task = self.task_id, topic = %tp.topic, partition = tp.partition, offset, "rewinding at the task's request");
                self.rewind_to(state, tp, offset);
            }
        }
    }

    fn rewind_to(&mut self, state: &mut SinkState, tp: TopicPartition, offset: i64) {
        let consumed = state.consumed.entry(tp.clone()).or_insert(offset);
        *consumed = (*consumed).min(offset);
        state.rewinding.insert(tp.clone());
        self.seeks.request(tp, offset);
    }

    /// Hands a batch to the task. A retriable failure is retried, until `put`
    /// succeeds (or for `task.retry.timeout.ms`), by reading the batch again
    /// from Kafka after a backoff, so no copy of it is kept meanwhile: the
    /// batch's partitions are rewound to its first records, and failures the
    /// error policy already handled in it are not reported twice.
    async fn put(
        &mut self,
        records: Vec<Record>,
        spans: &[Span],
        state: &mut SinkState,
    ) -> Result<Put, ConnectError> {
        self.metrics.batch_records.observe(records.len() as f64);
        let started = std::time::Instant::now();
        let result = if state.json_values {
            self.task.put_json(records).await
        } else {
            self.task.put(records).await
        };
        self.metrics
            .call_seconds
            .observe(started.elapsed().as_secs_f64());
        // A task `put` spawned (a sink's writer) sits in this thread's LIFO
        // slot, which tokio's other workers do not steal: without a yield it
        // would start only at this loop's next await, after the next batch
        // is converted, and the sink's I/O and the conversion would take
        // turns instead of overlapping (measured: the warehouse writer
        // started 14-23 ms late on every 5,000-record put).
        tokio::task::yield_now().await;
        self.rewind(state);
        let e = match result {
            Ok(()) => {
                if let Some(backoff) = state.retry.take() {
                    info!(connector = %self.connector, task = self.task_id, attempts = backoff.attempts(), "put succeeded again");
                    self.health.recovered();
                }
                return Ok(Put::Accepted);
            }
            Err(e) => e,
        };
        let backoff = state
            .retry
            .get_or_insert_with(|| self.policy.task_backoff());
        let (true, Some(delay)) = (e.is_retriable(), backoff.next_delay()) else {
            return Err(ConnectError::new(
                e.kind(),
                format!("{} failed: {}", Stage::TaskPut.as_str(), e.message()),
            )
            .with_source(e));
        };
        let attempt = backoff.attempts();
        TaskMetrics::add(&self.metrics.retries_by_stage[Stage::TaskPut.index()], 1);
        warn!(connector = %self.connector, task = self.task_id, attempt, delay_ms = delay.as_millis() as u64, "put failed, retrying: {e}");
        self.health
            .retrying(format!("{} failed, retrying: {e}", Stage::TaskPut.as_str()));
        for span in spans {
            if state.assigned.contains(&span.tp) {
                let handled = state.handled.entry(span.tp.clone()).or_insert(span.last);
                *handled = (*handled).max(span.last);
                self.rewind_to(state, span.tp.clone(), span.first);
            }
        }
        let mut control = self.control.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(Put::Rewound),
            _ = until_stopped(&mut control) => Ok(Put::Stopped),
        }
    }

    /// Decodes one record. A failure goes to the error policy with the record's
    /// original bytes; `Ok(None)` means it was tolerated. With `json`, a value
    /// the converter checks as decodable stays JSON text (`Value::Bytes`) for
    /// the task to decode; one it does not is decoded as always, so its failure
    /// is the converter's, with the same error.
    #[allow(
        clippy::too_many_lines,
        reason = "one record's way through both converters and the error policy reads best whole"
    )]
    async fn convert(
        &mut self,
        raw: RawRecord,
        keep: bool,
        handled: bool,
        json: bool,
    ) -> Result<Option<(Record, Original)>, ConnectError> {
        let RawRecord {
            topic,
            partition,
            offset,
            timestamp,
            key,
            value,
            headers,
        } = raw;
        let checked = json
            && value
                .as_deref()
                .is_some_and(|bytes| self.value_converter.check(bytes));
        let (key_c, value_c) = (&mut self.key_converter, &mut self.value_converter);
        // The bytes outlive decoding only when something needs them after it (a
        // dead-letter queue, the error log); otherwise the converters take them,
        // so text and bytes are not copied.
        let (decoded, key_bytes, value_bytes) = if self.policy.needs_failed_bytes() {
            let decoded = key_c
                .decode(&topic, key.as_deref())
                .map_err(|e| (Stage::KeyConverter, e))
                .and_then(|(ks, k)| {
                    if checked {
                        // A copy: the original bytes are kept for the error policy.
                        let text = value.clone().map_or(Value::Null, Value::Bytes);
                        return Ok((ks, k, None, text));
                    }
                    value_c
                        .decode(&topic, value.as_deref())
                        .map(|(vs, v)| (ks, k, vs, v))
                        .map_err(|e| (Stage::ValueConverter, e))
                });
            (decoded, key, value)
        } else {
            let decoded = key_c
                .decode_owned(&topic, key)
                .map_err(|e| (Stage::KeyConverter, e))
                .and_then(|(ks, k)| {
                    if checked {
                        return Ok((ks, k, None, value.map_or(Value::Null, Value::Bytes)));
                    }
                    value_c
                        .decode_owned(&topic, value)
                        .map(|(vs, v)| (ks, k, vs, v))
                        .map_err(|e| (Stage::ValueConverter, e))
                });
            (decoded, None, None)
        };
        let original = |headers: Headers, key: Option<Vec<u8>>, value: Option<Vec<u8>>| Original {
            topic: topic.clone(),
            partition: Some(partition),
            offset: Some(offset),
            timestamp,
            key,
            value,
            headers,
        };
        match decoded {
            // Read again after a failed put: the policy has dealt with it.
            Err(_) if handled => Ok(None),
            Err((stage, error)) => {
                let class_name = match stage {
                    Stage::KeyConverter => self.key_converter.class_name().to_owned(),
                    _ => self.value_converter.class_name().to_owned(),
                };
                let original = original(headers, key_bytes, value_bytes);
                self.policy
                    .handle(Failure {
                        stage,
                        class_name,
                        original,
                        error,
                    })
                    .await?;
                Ok(None)
            }
            Ok((key_schema, key, value_schema, value)) => {
                let kept = if keep {
                    original(headers.clone(), key_bytes, value_bytes)
                } else {
                    original(Headers::new(), None, None)
                };
                let record = Record {
                    topic: topic.clone(),
                    partition: Some(partition),
                    offset: Some(offset),
                    timestamp,
                    key_schema,
                    key,
                    value_schema,
                    value,
                    headers,
                    source: None,
                };
                Ok(Some((record, kept)))
            }
        }
    }

    /// The periodic commit: a retriable failure (the destination's flush, the
    /// broker's commit) is retried at the next tick, the task staying RUNNING;
    /// nothing is lost, since what is not committed is read again.
    async fn commit_or_retry_later(
        &mut self,
        consumer: &Arc<SinkConsumer>,
        state: &mut SinkState,
    ) -> Result<(), ConnectError> {
        match self.commit(consumer, state).await {
            Ok(()) => {
                if state.commit_failures > 0 {
                    info!(connector = %self.connector, task = self.task_id, "offsets committed again");
                    state.commit_failures = 0;
                    self.health.recovered();
                }
                Ok(())
            }
            Err(e) if e.is_retriable() => {
                state.commit_failures += 1;
                warn!(connector = %self.connector, task = self.task_id, failures = state.commit_failures, "commit failed, retrying at the next interval: {e}");
                self.health
                    .retrying(format!("offset commit failed, retrying: {e}"));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Asks the task what is durable and commits exactly that.
    async fn commit(
        &mut self,
        consumer: &Arc<SinkConsumer>,
        state: &mut SinkState,
    ) -> Result<(), ConnectError> {
        let pending: OffsetMap = state
            .consumed
            .iter()
            .filter(|(tp, o)| state.committed.get(*tp) != Some(*o))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let safe = self.task.pre_commit(&state.consumed).await;
        // A task that lost records while making them durable (an upload
        // finishing in the background failed) asks to read them again: the
        // consumer seeks back now, not at the next batch, which may never come.
        self.rewind(state);
        let safe = safe?;
        let mut tpl = TopicPartitionList::new();
        let mut committing = Vec::new();
        for (tp, offset) in safe {
            if !state.assigned.contains(&tp) || state.committed.get(&tp) == Some(&offset) {
                continue;
            }
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(offset))
                .map_err(|e| ConnectError::fatal(format!("cannot build commit for {tp}: {e}")))?;
            committing.push((tp, offset));
        }
        if committing.is_empty() {
            return Ok(());
        }
        let c = consumer.clone();
        let started = std::time::Instant::now();
        let committed = tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| ConnectError::fatal(format!("commit task failed: {e}")))?;
        self.metrics.commit_done(started, committed.is_ok());
        committed.map_err(|e| ConnectError::retriable(format!("cannot commit offsets: {e}")))?;
        debug!(connector = %self.connector, task = self.task_id, partitions = committing.len(), "offsets committed");
        self.reporter.release(&committing);
        state.committed.extend(committing);
        Ok(())
    }
}

#[derive(Default)]
struct SinkState {
    assigned: HashSet<TopicPartition>,
    /// Next offset to read, per partition, of records handed to `put`.
    consumed: OffsetMap,
    committed: OffsetMap,
    /// Partitions sought back, whose stale records are skipped until the
    /// consumer thread confirms the seek.
    rewinding: HashSet<TopicPartition>,
    /// Periodic commits failed in a row (retriable failures).
    commit_failures: u32,
    /// The retry budget of a failing `put`, from its first failure until a
    /// `put` succeeds.
    retry: Option<Backoff>,
    /// Per partition, the last offset of a batch whose `put` failed: records up
    /// to it come again, and their conversion or transformation failures were
    /// handled the first time.
    handled: OffsetMap,
    /// Values go to the task as checked JSON text (`SinkTask::put_json`).
    json_values: bool,
}

/// One partition's records in a batch.
struct Span {
    tp: TopicPartition,
    first: i64,
    last: i64,
    /// Records up to this offset were read before (see [`SinkState::handled`]).
    handled: Option<i64>,
}

#[derive(Debug, PartialEq, Eq)]
enum Put {
    Accepted,
    /// Failed; the batch's partitions are rewound to read it again.
    Rewound,
    /// Stopped while waiting to retry.
    Stopped,
}

/// Whether a failure of this record was handled when it was first read.
fn already_handled(spans: &[Span], original: &Original) -> bool {
    let (Some(p), Some(o)) = (original.partition, original.offset) else {
        return false;
    };
    spans.iter().any(|s| {
        s.tp.partition == p && *s.tp.topic == *original.topic && s.handled.is_some_and(|h| o <= h)
    })
}
