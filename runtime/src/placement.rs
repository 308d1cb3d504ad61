//! Which connectors and tasks this worker runs, in distributed mode, decided
//! by Kafka's group coordinator: every worker of a cluster joins the consumer
//! group `group.id` on the placement topic, whose partitions are placement
//! slots. A connector and each of its tasks map to fixed slots; a worker
//! runs what maps to the slots it holds. Cooperative-sticky assignment moves
//! few slots on a join or a leave, a dead worker's slots move once its
//! session times out, and a slot is held by one member at a time: a worker
//! gives up a revoked slot (its tasks stopped) before the rebalance goes on.
//!
//! No record is ever written to the placement topic; the group is used only
//! for membership and assignment. A worker is a static member (its
//! `group.instance.id` is its worker id), so one that comes back within
//! `session.timeout.ms` + `scheduled.rebalance.max.delay.ms` takes its own
//! place again, slots and all, and nothing moves.
//!
//! Each accepted lease renewal (an offset commit on the slots held) is also
//! recorded in the status topic, with the slots and the time: what every
//! worker reads back of them says who runs each slot now, so a dead worker's
//! parts show UNASSIGNED everywhere once its session would have expired,
//! whoever still holds its slots.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{DistributedConfig, WorkerConfig};
use crate::control::Lease;
use crate::error::WorkerError;
use crate::kafka;
use crate::storage::{StatusBackingStore, WorkerRecord};

/// Placement slots: partitions of the placement topic. More slots than tasks
/// spread tasks evenly; the count is fixed once the topic exists.
pub const SLOTS: i32 = 64;

/// The placement topic of a cluster, beside its config topic.
pub fn topic_of(cluster: &DistributedConfig) -> String {
    format!("{}-placement", cluster.config_topic.name)
}

/// One part of a connector, each in a slot of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The connector instance, which makes task configs and reports the
    /// connector's own state.
    Connector,
    Task(u32),
}

/// The slot of a connector's part: the connector's hash, then its tasks nine
/// slots apart (nine is prime to the slot count, so 64 tasks take 64 slots),
/// so one connector's tasks spread around the slots. How they spread over
/// the workers depends on which slots the assignor gives each: slots are
/// balanced, tasks are not.
pub fn slot_of(connector: &str, part: Part) -> i32 {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in connector.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let offset = match part {
        Part::Connector => 0,
        Part::Task(id) => 1 + 9 * u64::from(id),
    };
    ((u64::from(h) + offset) % SLOTS as u64) as i32
}

/// What the herder is told when the slots held change. A revocation carries
/// a sender the herder answers once the revoked parts are stopped.
pub enum PlacementEvent {
    Changed,
    Revoked(SyncSender<()>),
}

fn now_ms() -> u64 {
    u64::try_from(sluice_api::now_ms()).unwrap_or(0)
}

/// The slots this worker holds now, the generation they were given in, and
/// the lease that lets its source tasks write.
pub struct Placement {
    held: RwLock<BTreeSet<i32>>,
    /// How long a worker's renewal shows it running its slots: a session
    /// timeout, in which a live worker renews several times.
    fresh: Duration,
    lease: Arc<Lease>,
    /// Milliseconds since the epoch when this worker last gained slots: a
    /// later owner of a slot has a higher one (it gains the slot at least a
    /// session timeout after the last owner was last heard of), which
    /// fences the statuses a stale owner writes.
    generation: AtomicU64,
    /// Rebalances this worker took part in (for `/metrics`).
    rebalances: AtomicU64,
    /// Slots held now (for `/metrics`).
    slots: AtomicU64,
}

impl Placement {
    /// Holding nothing yet. The lease lapses a heartbeat before the session
    /// would time out.
    pub fn new(cluster: &DistributedConfig) -> Self {
        let term = cluster
            .session_timeout
            .saturating_sub(cluster.heartbeat_interval);
        Self {
            held: RwLock::default(),
            fresh: cluster.session_timeout,
            lease: Arc::new(Lease::new(term)),
            generation: AtomicU64::new(0),
            rebalances: AtomicU64::new(0),
            slots: AtomicU64::new(0),
        }
    }

    pub fn lease(&self) -> &Arc<Lease> {
        &self.lease
    }

    pub fn owns(&self, connector: &str, part: Part) -> bool {
        self.read().contains(&slot_of(connector, part))
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The worker running `part` of `connector` now, from the renewals
    /// every worker reads in the status topic: the one that last renewed the
    /// part's slot, if it did so within a session timeout. `None` when no
    /// live worker runs it (its worker died, or the slot waits for its worker
    /// to come back), so its status is UNASSIGNED.
    pub fn runner(
        &self,
        statuses: &dyn StatusBackingStore,
        connector: &str,
        part: Part,
    ) -> Option<String> {
        let slot = slot_of(connector, part);
        let oldest = now_ms().saturating_sub(self.fresh.as_millis() as u64);
        statuses
            .workers()
            .into_iter()
            .filter(|(_, r)| r.renewed_ms > oldest && r.slots.contains(&slot))
            .max_by_key(|(_, r)| r.renewed_ms)
            .map(|(id, _)| id)
    }

    /// Completed rebalances and the slots held, for `/metrics`.
    pub fn rebalance_counts(&self) -> (u64, u64) {
        (
            self.rebalances.load(Ordering::Relaxed),
            self.slots.load(Ordering::Relaxed),
        )
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeSet<i32>> {
        // Whole sets are replaced under the lock; a poisoned one is consistent.
        self.held
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn change(&self, slots: &[i32], add: bool) {
        let mut held = self
            .held
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for s in slots {
            if add {
                held.insert(*s);
            } else {
                held.remove(s);
            }
        }
        self.slots.store(held.len() as u64, Ordering::Relaxed);
    }
}

struct PlacementContext {
    placement: Arc<Placement>,
    events: mpsc::UnboundedSender<PlacementEvent>,
    /// The longest a revocation waits for the herder to stop what it runs.
    revoke_wait: Duration,
}

impl ClientContext for PlacementContext {}

fn slots(tpl: &rdkafka::TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl PlacementContext {
    fn revoke(&self, revoked: &[i32], lost: bool) {
        info!(slots = ?revoked, lost, "placement slots revoked; stopping what they hold");
        self.placement.change(revoked, false);
        // The slots go to another worker once this returns: first stop
        // their tasks, so no task runs on two workers at once.
        let (tx, rx) = sync_channel(1);
        if self.events.send(PlacementEvent::Revoked(tx)).is_ok()
            && rx.recv_timeout(self.revoke_wait).is_err()
        {
            warn!(slots = ?revoked, "tasks of revoked slots did not stop within rebalance.timeout.ms");
        }
    }
}

impl ConsumerContext for PlacementContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.revoke(&slots(tpl), consumer.assignment_lost());
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if !matches!(rebalance, Rebalance::Error(_)) {
            self.placement.rebalances.fetch_add(1, Ordering::Relaxed);
        }
        match rebalance {
            Rebalance::Assign(tpl) => {
                let gained = slots(tpl);
                if gained.is_empty() {
                    return;
                }
                self.placement
                    .generation
                    .fetch_max(now_ms(), Ordering::AcqRel);
                info!(slots = ?gained, "placement slots assigned");
                self.placement.change(&gained, true);
                let _ = self.events.send(PlacementEvent::Changed);
            }
            Rebalance::Error(e) => warn!("placement rebalance failed: {e}"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Commits the held slots' (empty) positions: the coordinator accepts a
/// commit only from a member of the current generation, so an accepted one
/// renews the lease from the moment it was sent. An accepted one is also
/// told to the status store, where every worker reads which worker runs
/// which slots now.
fn renew(
    consumer: &BaseConsumer<PlacementContext>,
    lease: &Lease,
    worker_id: &str,
    statuses: &dyn StatusBackingStore,
) {
    let Ok(assigned) = consumer.assignment() else {
        return;
    };
    if assigned.count() == 0 {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for e in assigned.elements() {
        if tpl
            .add_partition_offset(e.topic(), e.partition(), Offset::Offset(0))
            .is_err()
        {
            return;
        }
    }
    let renewal = WorkerRecord {
        slots: slots(&tpl),
        renewed_ms: now_ms(),
    };
    let sent = Instant::now();
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => {
            lease.renew(sent);
            statuses.put_worker(worker_id, renewal);
        }
        // Loud while the lease still holds; quiet once it has lapsed.
        Err(e) if lease.is_held() => {
            warn!("the group did not accept this worker's lease renewal: {e}")
        }
        Err(e) => tracing::debug!("lease renewal refused: {e}"),
    }
}

/// A member librdkafka has given up on (a fatal error: the static member
/// fenced, as when a worker frozen past its session wakes and its rejoin
/// races a renewal) is replaced by a new one. What the old one held is
/// given up first, as a lost assignment; the new one is assigned afresh.
fn rejoin(
    old: BaseConsumer<PlacementContext>,
    member: &impl Fn() -> Result<BaseConsumer<PlacementContext>, WorkerError>,
    why: &str,
) -> BaseConsumer<PlacementContext> {
    warn!("the placement consumer failed ({why}); joining the group again");
    if let Some(held) = old.assignment().ok().filter(|a| a.count() > 0) {
        old.context().revoke(&slots(&held), true);
    }
    drop(old);
    loop {
        match member() {
            Ok(consumer) => return consumer,
            Err(e) => {
                warn!("cannot join the group again, retrying: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// This worker's membership: a thread polling the group, so the coordinator
/// hears from it and its rebalances run.
pub struct Membership {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Membership {
    /// Joins the cluster's group; `placement` follows the slots held, and
    /// each change is sent on `events`.
    pub fn join(
        worker: &WorkerConfig,
        cluster: &DistributedConfig,
        worker_id: &str,
        placement: Arc<Placement>,
        statuses: Arc<dyn StatusBackingStore>,
        events: mpsc::UnboundedSender<PlacementEvent>,
    ) -> Result<Self, WorkerError> {
        let ms = |d: Duration| d.as_millis().to_string();
        // A static member's slots wait for it this long after it was last
        // heard from: the session timeout, and the delay on top. (The lease
        // still lapses within the session timeout, so a cut-off worker stops
        // writing before then either way.)
        let session = cluster.session_timeout + cluster.scheduled_rebalance_max_delay;
        let overrides = [
            ("group.id", cluster.group_id.clone()),
            ("group.instance.id", worker_id.to_owned()),
            ("client.id", format!("sluice-worker-{worker_id}")),
            ("session.timeout.ms", ms(session)),
            ("heartbeat.interval.ms", ms(cluster.heartbeat_interval)),
            // librdkafka's rebalance timeout is its max.poll.interval.ms.
            (
                "max.poll.interval.ms",
                ms(cluster.rebalance_timeout.max(session)),
            ),
            ("partition.assignment.strategy", "cooperative-sticky".into()),
        ];
        let lease = placement.lease().clone();
        // Renewed more often than it lapses, so a healthy worker never waits.
        let renew_every = cluster
            .heartbeat_interval
            .min(
                cluster
                    .session_timeout
                    .saturating_sub(cluster.heartbeat_interval)
                    / 3,
            )
            .max(Duration::from_millis(100));
        let revoke_wait = cluster.rebalance_timeout;
        let topic = topic_of(cluster);
        let worker = worker.clone();
        let member = move || -> Result<BaseConsumer<PlacementContext>, WorkerError> {
            let context = PlacementContext {
                placement: placement.clone(),
                events: events.clone(),
                revoke_wait,
            };
            let consumer: BaseConsumer<PlacementContext> =
                kafka::consumer(&worker, context, &overrides)?;
            consumer
                .subscribe(&[&topic])
                .map_err(|e| WorkerError::kafka(format!("join the group on '{topic}'"), e))?;
            Ok(consumer)
        };
        let mut consumer = member()?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let leave_wait = cluster.rebalance_timeout;
        let worker_id = worker_id.to_owned();
        let thread = std::thread::Builder::new()
            .name("placement".into())
            .spawn(move || {
                let mut renewed = Instant::now();
                while !s.load(Ordering::Acquire) {
                    // Nothing is ever written here; polling keeps the
                    // membership alive and runs the rebalances.
                    let _ = consumer.poll(Duration::from_millis(100));
                    // At once while it is not held: tasks just given wait for it.
                    if renewed.elapsed() >= renew_every || !lease.is_held() {
                        renewed = Instant::now();
                        renew(&consumer, &lease, &worker_id, statuses.as_ref());
                    }
                    if let Some((_, why)) = consumer.client().fatal_error() {
                        consumer = rejoin(consumer, &member, &why);
                    }
                }
                // Leaving: the group rebalances at once, without waiting for
                // a session timeout; the revocation stops our tasks first.
                // Poll until it has run (a rebalance under way may delay it),
                // so the close that follows sends the leave.
                consumer.unsubscribe();
                let deadline = Instant::now() + leave_wait;
                loop {
                    let _ = consumer.poll(Duration::from_millis(100));
                    let empty = consumer.assignment().map_or(true, |a| a.count() == 0);
                    if empty || Instant::now() >= deadline {
                        break;
                    }
                }
                drop(consumer);
            })
            .map_err(|e| WorkerError::Other(format!("cannot start the placement thread: {e}")))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Leaves the group: what this worker runs moves to the others now.
    pub fn leave(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StatusRecord;
    use std::collections::BTreeMap;

    /// Only the renewals matter to `runner`.
    struct Renewals(BTreeMap<String, WorkerRecord>);

    impl StatusBackingStore for Renewals {
        fn put_connector(&self, _: &str, _: StatusRecord) {}
        fn put_task(&self, _: &str, _: u32, _: StatusRecord) {}
        fn connector(&self, _: &str) -> Option<StatusRecord> {
            None
        }
        fn tasks(&self, _: &str) -> BTreeMap<u32, StatusRecord> {
            BTreeMap::new()
        }
        fn forget(&self, _: &str) {}
        fn workers(&self) -> BTreeMap<String, WorkerRecord> {
            self.0.clone()
        }
    }

    #[test]
    fn a_part_runs_on_the_latest_worker_to_renew_its_slot_within_a_session() {
        let raw = [
            ("bootstrap.servers", "127.0.0.1:9"),
            ("group.id", "g"),
            ("config.storage.topic", "c"),
            ("offset.storage.topic", "o"),
            ("status.storage.topic", "s"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let worker = WorkerConfig::from_raw(raw).unwrap();
        let placement = Placement::new(&DistributedConfig::from_worker(&worker).unwrap());
        let slot = slot_of("orders", Part::Task(0));
        let renewal = |slots: Vec<i32>, ago_ms: u64| WorkerRecord {
            slots,
            renewed_ms: now_ms() - ago_ms,
        };
        let runner = |records: Vec<(&str, WorkerRecord)>| {
            let store = Renewals(
                records
                    .into_iter()
                    .map(|(w, r)| (w.to_owned(), r))
                    .collect(),
            );
            placement.runner(&store, "orders", Part::Task(0))
        };
        assert_eq!(
            runner(vec![("a", renewal(vec![slot], 1000))]),
            Some("a".into())
        );
        // Not renewed for a session timeout: nobody runs it.
        assert_eq!(runner(vec![("a", renewal(vec![slot], 11_000))]), None);
        // Just moved: the old owner's last renewal still lists the slot, the
        // new owner's is later.
        assert_eq!(
            runner(vec![
                ("a", renewal(vec![slot], 2000)),
                ("b", renewal(vec![slot], 500))
            ]),
            Some("b".into())
        );
        // Another slot's renewal says nothing of this one.
        assert_eq!(runner(vec![("a", renewal(vec![slot + 1], 0))]), None);
    }

    #[test]
    fn a_connectors_tasks_spread_around_the_slots() {
        let c = slot_of("orders", Part::Connector);
        assert_eq!(slot_of("orders", Part::Task(0)), (c + 1) % SLOTS);
        assert_eq!(slot_of("orders", Part::Task(1)), (c + 10) % SLOTS);
        // As many tasks as slots take every slot once.
        let all: std::collections::BTreeSet<i32> = (0..SLOTS as u32)
            .map(|t| slot_of("orders", Part::Task(t)))
            .collect();
        assert_eq!(all.len(), SLOTS as usize);
        // Stable: every worker, of any build, places a name alike (FNV-1a).
        assert_eq!(c, 44);
        assert!((0..SLOTS).contains(&slot_of("", Part::Task(u32::MAX))));
    }
}
