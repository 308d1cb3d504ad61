//! The sink task: records become actions in `put`, a driver task sends them as
//! `_bulk` requests (up to `max.in.flight.requests` at once), each request
//! settles its items by outcome, and `pre_commit` returns only offsets whose
//! records are all settled.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sluice_api::{
    Backoff, ConnectError, ErrantRecordReporter, OffsetMap, Record, SinkTask, SinkTaskContext,
    TopicPartition,
};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::action::{build, build_json, document, Built, Invalid};
use crate::batch::{Item, Queue};
use crate::client::{EsClient, RequestError};
use crate::config::{EsConfig, Malformed};
use crate::outcome::{classify, Outcome};
use crate::pressure::Pressure;
use crate::progress::Owed;

/// Retry delays grow up to this: the cluster is polled at least this often
/// while it is away.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// How long `put` waits for room before it says why it is waiting.
const ROOM_WAIT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct EsSinkTask {
    running: Option<Running>,
}

struct Running {
    ctx: Arc<Ctx>,
    tx: mpsc::UnboundedSender<Msg>,
    driver: tokio::task::JoinHandle<()>,
    /// The highest offset taken per partition: a batch `put` again after a
    /// retriable failure is not queued twice.
    taken: HashMap<TopicPartition, i64>,
}

/// What the task and its requests share.
struct Ctx {
    config: EsConfig,
    client: EsClient,
    reporter: Arc<dyn ErrantRecordReporter>,
    connector: String,
    task: u32,
    state: Mutex<Flow>,
    changed: Notify,
    /// Bulk items by outcome, for `/metrics`.
    items: ItemCounters,
}

/// `sluice_es_items_total{outcome}`: every bulk item's answer, retries included.
struct ItemCounters([sluice_api::metrics::Counter; 5]);

impl ItemCounters {
    const OUTCOMES: [&str; 5] = ["indexed", "conflict", "retry", "malformed", "failed"];

    fn new(metrics: &sluice_api::TaskMetricsHandle) -> Self {
        Self(Self::OUTCOMES.map(|outcome| {
            metrics.counter(
                "es_items",
                "Elasticsearch bulk items by outcome (indexed, conflict, retry, malformed, failed).",
                &[("outcome", outcome)],
            )
        }))
    }

    fn count(&self, outcome: &Outcome) {
        let i = match outcome {
            Outcome::Done => 0,
            Outcome::Conflict => 1,
            Outcome::Retry(_) | Outcome::Busy(_) => 2,
            Outcome::Malformed(_) => 3,
            Outcome::Failed(_) => 4,
        };
        self.0[i].inc_by(1);
    }
}

/// What the task's requests share: what is owed, in flight and buffered, and how it went.
struct Flow {
    owed: Owed,
    /// How many requests may be at the server, and their timeout.
    pressure: Pressure,
    /// Requests at the server now (attempts, not batches: a batch waiting
    /// to retry is not at the server).
    sending: usize,
    /// Actions queued or in flight (records of forgotten partitions too).
    buffered: usize,
    /// The task must fail with this.
    fatal: Option<String>,
    /// Requests are failing past `max.retries` and being retried: why.
    outage: Option<String>,
    indexed: u64,
    conflicts: u64,
    rejected: u64,
    retried: u64,
}

impl Flow {
    fn new(config: &EsConfig) -> Self {
        Self {
            owed: Owed::default(),
            pressure: Pressure::new(config.max_in_flight, config.read_timeout),
            sending: 0,
            buffered: 0,
            fatal: None,
            outage: None,
            indexed: 0,
            conflicts: 0,
            rejected: 0,
            retried: 0,
        }
    }
}

/// One request at the server: counted in `Flow::sending` until dropped.
struct Sending<'a> {
    ctx: &'a Ctx,
    sent: Instant,
    timeout: Duration,
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.ctx.lock().sending -= 1;
        self.ctx.changed.notify_waiters();
    }
}

enum Msg {
    Items(Vec<Item>),
    /// Send partial batches now.
    Flush,
}

impl Ctx {
    fn lock(&self) -> MutexGuard<'_, Flow> {
        // Every update is a few assignments; a poisoned state is consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn settle(&self, items: &[Item]) {
        if items.is_empty() {
            return;
        }
        let mut s = self.lock();
        for i in items {
            if let (Some(p), Some(o)) = (i.record.partition, i.record.offset) {
                s.owed.settle(&TopicPartition::new(&*i.record.topic, p), o);
            }
        }
        s.buffered = s.buffered.saturating_sub(items.len());
        drop(s);
        self.changed.notify_waiters();
    }

    fn fail(&self, why: String) {
        let mut s = self.lock();
        s.fatal.get_or_insert(why);
        drop(s);
        self.changed.notify_waiters();
    }

    /// Waits until `done` holds of the state, or `limit` passes (`false`).
    async fn wait_until(&self, limit: Duration, done: impl Fn(&Flow) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.lock()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return done(&self.lock());
            }
        }
    }

    fn check_fatal(&self) -> Result<(), ConnectError> {
        match &self.lock().fatal {
            Some(why) => Err(ConnectError::fatal(why.clone())),
            None => Ok(()),
        }
    }

    /// A record the server refused: to the error reporter (the DLQ, with the
    /// server's reason), then per `behavior.on.malformed.documents`.
    async fn rejected(&self, item: &Item, why: &str, malformed: bool) -> Result<(), String> {
        let r = &item.record;
        let error = ConnectError::data(format!(
            "Elasticsearch rejected the document of {}: {why}",
            r.coordinates()
        ));
        self.lock().rejected += 1;
        let reported = self.reporter.report(r, &error).await;
        match (malformed, self.config.malformed, reported) {
            (true, Malformed::Ignore, _) => Ok(()),
            (true, Malformed::Warn, _) => {
                warn!(connector = %self.connector, task = self.task, topic = %r.topic, partition = r.partition, offset = r.offset, "skipping a malformed document: {why}");
                Ok(())
            }
            (_, _, Ok(())) => Ok(()),
            (_, _, Err(e)) => Err(format!(
                "Elasticsearch rejected the document of {}: {why} ({})",
                r.coordinates(),
                e.message()
            )),
        }
    }

    /// Sends one batch until every item is settled: the whole request again
    /// while the cluster is away, then only the items it could not take yet.
    /// Returns the documents it held, now free for the next request.
    async fn send(self: Arc<Self>, items: Vec<Item>) -> Vec<String> {
        let docs = items.iter().filter_map(|i| i.doc.clone()).collect();
        self.send_until_settled(items).await;
        docs
    }

    /// Waits until the window has room for one more request at the server
    /// (the oldest requests and retries do not jump it: see `drive`), then
    /// counts it there. `timeout`: this attempt's, else a new request's.
    async fn start_sending(&self, timeout: Option<Duration>) -> Sending<'_> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if s.sending < s.pressure.limit() {
                    s.sending += 1;
                    let timeout = timeout.unwrap_or_else(|| s.pressure.timeout());
                    return Sending {
                        ctx: self,
                        sent: Instant::now(),
                        timeout,
                    };
                }
            }
            notified.await;
        }
    }

    /// The server took longer than the request's timeout: fewer requests at
    /// once, longer timeouts. Returns the timeout of the request's retry.
    fn timed_out(&self, sent: Instant, timeout: Duration, why: &str) -> Duration {
        let mut s = self.lock();
        let cut = s.pressure.timed_out(sent, timeout, Instant::now());
        let retry = s.pressure.retry_timeout(timeout);
        if cut {
            warn!(connector = %self.connector, task = self.task, requests = s.pressure.limit(), timeout_ms = s.pressure.timeout().as_millis() as u64, "Elasticsearch is slower than the request timeout, sending less at once: {why}");
        }
        retry
    }

    /// An answer: the window may grow back.
    fn answered(&self, sent: Instant, busy: bool) {
        let mut s = self.lock();
        let now = Instant::now();
        let full = s.pressure.answered(now - sent);
        if busy && s.pressure.busy(sent, now) {
            debug!(connector = %self.connector, task = self.task, requests = s.pressure.limit(), "Elasticsearch answered 429, sending less at once");
        } else if full {
            info!(connector = %self.connector, task = self.task, requests = s.pressure.limit(), "Elasticsearch keeps up again: back to max.in.flight.requests");
        }
        drop(s);
        // The window may have grown: a request waiting for room may go.
        self.changed.notify_waiters();
    }

    async fn send_until_settled(&self, items: Vec<Item>) {
        let mut todo = items;
        let mut backoff = Backoff::new(self.config.retry_backoff, MAX_RETRY_DELAY);
        // After a timeout, this request's own (longer) timeout.
        let mut timeout = None;
        loop {
            let mut body = Vec::with_capacity(todo.iter().map(|i| i.bytes.len()).sum());
            for i in &todo {
                body.extend_from_slice(&i.bytes);
            }
            let sending = self.start_sending(timeout).await;
            let result = self.client.bulk(body, sending.timeout).await;
            let (sent, used) = (sending.sent, sending.timeout);
            drop(sending);
            let why = match result {
                Err(RequestError::Permanent(why)) => return self.fail(why),
                Err(RequestError::Transient(why)) => why,
                Err(RequestError::TimedOut(why)) => {
                    timeout = Some(self.timed_out(sent, used, &why));
                    why
                }
                Ok(response) => match classify(&response, todo.len()) {
                    Err(e) => return self.fail(e.0),
                    Ok(outcomes) => {
                        let busy = outcomes.iter().any(|o| matches!(o, Outcome::Busy(_)));
                        self.answered(sent, busy);
                        match self.settle_outcomes(todo, outcomes).await {
                            Err(why) => return self.fail(why),
                            Ok((retry, _)) if retry.is_empty() => {
                                let mut s = self.lock();
                                if s.outage.take().is_some() {
                                    info!(connector = %self.connector, task = self.task, "Elasticsearch takes requests again");
                                }
                                return;
                            }
                            Ok((retry, why)) => {
                                self.lock().retried += retry.len() as u64;
                                todo = retry;
                                why
                            }
                        }
                    }
                },
            };
            let delay = backoff.next_delay().unwrap_or(MAX_RETRY_DELAY);
            if backoff.attempts() > self.config.max_retries {
                let mut s = self.lock();
                if s.outage.is_none() {
                    warn!(connector = %self.connector, task = self.task, attempts = backoff.attempts(), "Elasticsearch keeps failing, retrying until it is back: {why}");
                }
                s.outage = Some(why);
                drop(s);
                self.changed.notify_waiters();
            } else {
                debug!(connector = %self.connector, task = self.task, actions = todo.len(), delay_ms = delay.as_millis() as u64, "retrying: {why}");
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Settles what the outcomes allow; returns the items to send again and why.
    async fn settle_outcomes(
        &self,
        todo: Vec<Item>,
        outcomes: Vec<Outcome>,
    ) -> Result<(Vec<Item>, String), String> {
        let mut retry = Vec::new();
        let mut settled = Vec::with_capacity(todo.len());
        let mut retry_why = String::new();
        let (mut indexed, mut conflicts) = (0, 0);
        for (item, outcome) in todo.into_iter().zip(outcomes) {
            self.items.count(&outcome);
            match outcome {
                Outcome::Done => indexed += 1,
                Outcome::Conflict => conflicts += 1,
                Outcome::Retry(why) | Outcome::Busy(why) => {
                    retry_why = why;
                    retry.push(item);
                    continue;
                }
                Outcome::Malformed(why) => self.rejected(&item, &why, true).await?,
                Outcome::Failed(why) => self.rejected(&item, &why, false).await?,
            }
            settled.push(item);
        }
        {
            let mut s = self.lock();
            s.indexed += indexed;
            s.conflicts += conflicts;
        }
        self.settle(&settled);
        Ok((retry, retry_why))
    }
}

/// Cuts queued actions into requests and keeps up to `max.in.flight.requests`
/// of them going, fewer while the server sheds load (`pressure.rs`): a
/// request retrying holds its place, so retries go before new batches.
async fn drive(ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let c = &ctx.config;
    let limit = || ctx.lock().pressure.limit();
    let mut queue = Queue::new(c.batch_size, c.bulk_bytes, c.linger);
    let mut in_flight = JoinSet::new();
    // Documents with an action in flight.
    let mut busy: HashSet<String> = HashSet::new();
    let mut flushing = false;
    // Everything queued waits on busy documents: nothing to do until a
    // request ends or more arrives.
    let mut waiting = false;
    loop {
        let now = Instant::now();
        while !waiting && in_flight.len() < limit() && queue.ready(now, flushing) {
            let batch = queue.take(now, &busy);
            if batch.is_empty() {
                waiting = true;
                break;
            }
            busy.extend(batch.iter().filter_map(|i| i.doc.clone()));
            in_flight.spawn(ctx.clone().send(batch));
        }
        if queue.is_empty() {
            flushing = false;
        }
        let deadline = queue
            .deadline()
            .filter(|_| !waiting && in_flight.len() < limit())
            .map(tokio::time::Instant::from_std);
        tokio::select! {
            msg = rx.recv() => match msg {
                None => break,
                Some(Msg::Items(items)) => {
                    queue.push(items, Instant::now());
                    waiting = false;
                }
                Some(Msg::Flush) => flushing = true,
            },
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                waiting = false;
                match done {
                    Ok(docs) => for d in docs {
                        busy.remove(&d);
                    },
                    Err(e) => ctx.fail(format!("a _bulk request task ended abnormally: {e}")),
                }
            }
            () = async { if let Some(d) = deadline { tokio::time::sleep_until(d).await } }, if deadline.is_some() => {}
        }
    }
    in_flight.abort_all();
}

impl EsSinkTask {
    fn running(&mut self) -> Result<&mut Running, ConnectError> {
        self.running
            .as_mut()
            .ok_or_else(|| ConnectError::fatal("the Elasticsearch sink task was not started"))
    }

    /// Turns a batch into actions for the driver; with `json`, its values are
    /// checked JSON text (`put_json`).
    async fn take(&mut self, records: Vec<Record>, json: bool) -> Result<(), ConnectError> {
        let run = self.running()?;
        run.ctx.check_fatal()?;
        let mut items = Vec::with_capacity(records.len());
        for record in records {
            let (Some(p), Some(o)) = (record.partition, record.offset) else {
                return Err(ConnectError::fatal(format!(
                    "{} has no partition or offset",
                    record.coordinates()
                )));
            };
            let tp = TopicPartition::new(&*record.topic, p);
            if run.taken.get(&tp).is_some_and(|t| o <= *t) {
                continue;
            }
            run.taken.insert(tp, o);
            let built = if json {
                build_json(&run.ctx.config, &record)
            } else {
                build(&run.ctx.config, &record)
            };
            match built {
                Ok(Built::Action(bytes)) => {
                    let doc = document(&run.ctx.config, &record);
                    items.push(Item { record, bytes, doc });
                }
                Ok(Built::Skip) => {}
                Err(why) => run.invalid(&record, why).await?,
            }
        }
        if !items.is_empty() {
            let mut s = run.ctx.lock();
            for i in &items {
                if let (Some(p), Some(o)) = (i.record.partition, i.record.offset) {
                    s.owed.add(&TopicPartition::new(&*i.record.topic, p), o);
                }
            }
            s.buffered += items.len();
            drop(s);
            run.tx
                .send(Msg::Items(items))
                .map_err(|_| ConnectError::fatal("the Elasticsearch request driver stopped"))?;
        }
        // Backpressure: past max.buffered.records the runner waits here, so the
        // consumer stops fetching instead of the buffer growing.
        let max = run.ctx.config.max_buffered;
        loop {
            if run
                .ctx
                .wait_until(ROOM_WAIT, |s| s.buffered < max || s.fatal.is_some())
                .await
            {
                return run.ctx.check_fatal();
            }
            // Held up by an outage: say so (the runner shows the task as
            // retrying and puts the batch again, which is taken already).
            if let Some(why) = run.ctx.lock().outage.clone() {
                return Err(ConnectError::retriable(format!(
                    "{} records wait for Elasticsearch: {why}",
                    max
                )));
            }
        }
    }
}

impl Running {
    /// A record that cannot become an action: dropped with a warning under
    /// `drop.invalid.message`, else to the error reporter.
    async fn invalid(&self, record: &Record, why: Invalid) -> Result<(), ConnectError> {
        let ctx = &self.ctx;
        if ctx.config.drop_invalid {
            warn!(connector = %ctx.connector, task = ctx.task, topic = %record.topic, partition = record.partition, offset = record.offset, "dropping a record that cannot be a document: {}", why.0);
            return Ok(());
        }
        let error = ConnectError::data(format!(
            "{} cannot be indexed: {}",
            record.coordinates(),
            why.0
        ));
        ctx.reporter.report(record, &error).await
    }
}

#[async_trait]
impl SinkTask for EsSinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let config = EsConfig::parse(&context.config)?;
        let client = EsClient::new(&config).map_err(ConnectError::fatal)?;
        match client.ping().await {
            Ok(()) => {}
            Err(RequestError::Permanent(why)) => return Err(ConnectError::fatal(why)),
            // Down now is an outage like any other: requests retry until it is back.
            Err(RequestError::Transient(why) | RequestError::TimedOut(why)) => {
                warn!(connector = %context.connector, task = context.task_id, "Elasticsearch is not answering yet: {why}");
            }
        }
        let state = Mutex::new(Flow::new(&config));
        let ctx = Arc::new(Ctx {
            config,
            client,
            reporter: context.reporter.clone(),
            connector: context.connector.clone(),
            task: context.task_id,
            state,
            changed: Notify::new(),
            items: ItemCounters::new(&context.metrics),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(ctx.clone(), rx));
        self.running = Some(Running {
            ctx,
            tx,
            driver,
            taken: HashMap::new(),
        });
        Ok(())
    }

    /// Values decoded only to be encoded again: the JSON text goes into the
    /// `_bulk` body as it came.
    fn takes_json_values(&self) -> bool {
        true
    }

    async fn put(&mut self, records: Vec<Record>) -> Result<(), ConnectError> {
        self.take(records, false).await
    }

    async fn put_json(&mut self, records: Vec<Record>) -> Result<(), ConnectError> {
        self.take(records, true).await
    }

    async fn pre_commit(&mut self, consumed: &OffsetMap) -> Result<OffsetMap, ConnectError> {
        let run = self.running()?;
        run.ctx.check_fatal()?;
        // Partial batches go now rather than after their linger.
        let _ = run.tx.send(Msg::Flush);
        let s = run.ctx.lock();
        debug!(connector = %run.ctx.connector, task = run.ctx.task, owed = s.owed.len(), indexed = s.indexed, conflicts = s.conflicts, rejected = s.rejected, retried = s.retried, "pre-commit");
        Ok(s.owed.safe(consumed))
    }

    async fn flush(&mut self, _offsets: &OffsetMap) -> Result<(), ConnectError> {
        let run = self.running()?;
        let _ = run.tx.send(Msg::Flush);
        let limit = run.ctx.config.flush_timeout;
        if !run
            .ctx
            .wait_until(limit, |s| s.buffered == 0 || s.fatal.is_some())
            .await
        {
            let s = run.ctx.lock();
            return Err(ConnectError::retriable(format!(
                "flush.timeout.ms ({} ms) passed with {} records not yet acknowledged{}",
                limit.as_millis(),
                s.buffered,
                s.outage
                    .as_deref()
                    .map(|w| format!(": {w}"))
                    .unwrap_or_default()
            )));
        }
        run.ctx.check_fatal()
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        let run = self.running()?;
        let mut s = run.ctx.lock();
        for tp in partitions {
            s.owed.forget(tp);
            run.taken.remove(tp);
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        if let Some(run) = self.running.take() {
            // Whatever is in flight was not committed: it is read again.
            run.driver.abort();
            let s = run.ctx.lock();
            info!(connector = %run.ctx.connector, task = run.ctx.task, indexed = s.indexed, conflicts = s.conflicts, rejected = s.rejected, retried = s.retried, unsettled = s.owed.len(), "Elasticsearch sink task stopped");
        }
        Ok(())
    }
}
