//! What a task is told and what it tells back, shared by the herder (which
//! decides) and the task runners (which act): the connector's target state,
//! sent over a watch channel, and the task's health, which the runner writes
//! and the herder reports. The runners know the herder only through this.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What the user asked a connector to be doing. Tasks receive it over a watch
/// channel: `Paused` keeps their resources and stops their work, `Stopped` ends
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum TargetState {
    #[default]
    Running,
    Paused,
    Stopped,
}

impl TargetState {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "RUNNING" => Some(Self::Running),
            "PAUSED" => Some(Self::Paused),
            "STOPPED" => Some(Self::Stopped),
            _ => None,
        }
    }
}

/// What a task's health tells the status store as it changes.
pub enum Report {
    /// A pause has taken effect.
    Paused,
    /// The task began retrying (with why), or recovered (`None`).
    Retrying(Option<String>),
}

/// How a running task is doing, shared between the task's supervisor (which
/// records how it ended) and the herder (which reports it).
#[derive(Default)]
pub struct TaskHealth {
    failure: Mutex<Option<String>>,
    /// Why the task is retrying its source or destination, while it is: it
    /// stays RUNNING, and its status says so.
    retrying: Mutex<Option<String>>,
    /// The task has acted on a pause: it will move no more records until resumed.
    paused: AtomicBool,
    /// Told once a pause has taken effect, and when the retry reason
    /// changes, so the status store hears of it.
    on_report: Option<Box<dyn Fn(Report) + Send + Sync>>,
}

impl TaskHealth {
    /// A task's health whose confirmed pauses and changes of retry reason
    /// are also reported to `on_report`.
    pub fn reporting(on_report: impl Fn(Report) + Send + Sync + 'static) -> Self {
        Self {
            on_report: Some(Box::new(on_report)),
            ..Self::default()
        }
    }

    /// Called by the task once a pause has taken effect.
    pub fn confirm_paused(&self) {
        let was = self.paused.swap(true, Ordering::AcqRel);
        if let (false, Some(report)) = (was, &self.on_report) {
            report(Report::Paused);
        }
    }

    /// Called by the herder before it changes the target state.
    pub fn clear_paused(&self) {
        self.paused.store(false, Ordering::Release);
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub fn fail(&self, trace: String) {
        *lock(&self.failure) = Some(trace);
    }

    /// The failure trace, when the task has failed.
    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// Called by the task while it retries a retriable failure.
    pub fn retrying(&self, why: String) {
        let mut reason = lock(&self.retrying);
        if reason.as_deref() != Some(why.as_str()) {
            *reason = Some(why.clone());
            if let Some(report) = &self.on_report {
                report(Report::Retrying(Some(why)));
            }
        }
    }

    /// Called by the task once an operation it retried has succeeded.
    pub fn recovered(&self) {
        if lock(&self.retrying).take().is_some() {
            if let Some(report) = &self.on_report {
                report(Report::Retrying(None));
            }
        }
    }

    /// Why the task is retrying, while it is.
    pub fn retry_reason(&self) -> Option<String> {
        lock(&self.retrying).clone()
    }
}

fn lock(m: &Mutex<Option<String>>) -> std::sync::MutexGuard<'_, Option<String>> {
    // Only whole values are ever stored, so a poisoned lock holds a valid one.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Resolves once `control` says stopped (or its sender is gone).
pub async fn until_stopped(control: &mut watch::Receiver<TargetState>) {
    loop {
        if *control.borrow_and_update() == TargetState::Stopped {
            return;
        }
        if control.changed().await.is_err() {
            return;
        }
    }
}

/// Distributed mode: this worker's proof that it still belongs to the
/// cluster's current generation, which a source task checks before it
/// produces or stores offsets. The placement thread renews it with every
/// offset commit the group coordinator accepts (the coordinator refuses one
/// from an expelled member). It lapses `term` after the last accepted
/// commit was sent, and `term` is shorter than the session timeout, so a
/// worker cut off from the coordinator (stopped, partitioned) stops writing
/// before the coordinator expels it and gives its tasks to another worker.
#[derive(Debug)]
pub struct Lease {
    origin: Instant,
    /// Milliseconds after `origin` when the last accepted renewal was sent;
    /// 0 before the first.
    renewed: AtomicU64,
    term: Duration,
}

impl Lease {
    pub fn new(term: Duration) -> Self {
        Self {
            origin: Instant::now(),
            renewed: AtomicU64::new(0),
            term,
        }
    }

    /// Records that a renewal sent at `sent` was accepted.
    pub fn renew(&self, sent: Instant) {
        let ms = sent.saturating_duration_since(self.origin).as_millis() as u64;
        // 0 means never renewed; a renewal in the first millisecond counts too.
        self.renewed.fetch_max(ms.max(1), Ordering::AcqRel);
    }

    /// Whether this worker may still write for the tasks it was given.
    pub fn is_held(&self) -> bool {
        let ms = self.renewed.load(Ordering::Acquire);
        ms > 0 && self.origin.elapsed() < Duration::from_millis(ms) + self.term
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_held_from_an_accepted_renewal_for_its_term() {
        let lease = Lease::new(Duration::from_millis(200));
        assert!(!lease.is_held(), "never renewed");
        lease.renew(Instant::now());
        assert!(lease.is_held());
        // A renewal sent long ago proves nothing now.
        let lease = Lease::new(Duration::from_millis(50));
        let sent = Instant::now();
        std::thread::sleep(Duration::from_millis(80));
        lease.renew(sent);
        assert!(!lease.is_held());
    }
}
