//! Metrics a connector task reports about its own work (objects written, items
//! by outcome, rows merged, lag at the source). The runtime exposes them on
//! `/metrics` as `sluice_<name>` (counters with `_total`), labelled with the
//! task's connector and task id plus the labels given here.
//!
//! A handle is cheap to clone and to bump; registering the same name and labels
//! twice returns the same series.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Whether a series only goes up or may go either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
}

#[derive(Debug)]
struct Series {
    name: &'static str,
    help: &'static str,
    kind: MetricKind,
    labels: Vec<(String, String)>,
    /// A counter's count, or a gauge's `f64` bits.
    value: Arc<AtomicU64>,
}

/// One series' current value, for the runtime's exposition.
#[derive(Debug, Clone)]
pub struct MetricSample {
    /// Without the `sluice_` prefix and without a counter's `_total`.
    pub name: &'static str,
    /// What it counts, for `# HELP`.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// Its labels (the runtime adds `connector` and `task`).
    pub labels: Vec<(String, String)>,
    /// Its value now.
    pub value: f64,
}

/// The series of one task. Names use Prometheus's rules: snake case, base
/// units as a suffix (`_bytes`, `_seconds`), no `_total` (the runtime adds it
/// to counters).
#[derive(Debug, Clone, Default)]
pub struct TaskMetricsHandle(Arc<Mutex<Vec<Series>>>);

/// A monotonically increasing count.
#[derive(Debug, Clone)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// The value now.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl TaskMetricsHandle {
    /// The counter `name` with these labels (the same series when asked again).
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Counter {
        Counter(self.series(name, help, MetricKind::Counter, labels))
    }

    /// The gauge `name` with these labels (the same series when asked again).
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Gauge {
        Gauge(self.series(name, help, MetricKind::Gauge, labels))
    }

    /// Every series' current value.
    pub fn samples(&self) -> Vec<MetricSample> {
        self.lock()
            .iter()
            .map(|s| {
                let raw = s.value.load(Ordering::Relaxed);
                MetricSample {
                    name: s.name,
                    help: s.help,
                    kind: s.kind,
                    labels: s.labels.clone(),
                    value: match s.kind {
                        MetricKind::Counter => raw as f64,
                        MetricKind::Gauge => f64::from_bits(raw),
                    },
                }
            })
            .collect()
    }

    fn series(
        &self,
        name: &'static str,
        help: &'static str,
        kind: MetricKind,
        labels: &[(&str, &str)],
    ) -> Arc<AtomicU64> {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut all = self.lock();
        if let Some(s) = all.iter().find(|s| s.name == name && s.labels == labels) {
            return s.value.clone();
        }
        let value = Arc::new(AtomicU64::new(0));
        all.push(Series {
            name,
            help,
            kind,
            labels,
            value: value.clone(),
        });
        value
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Series>> {
        // A list of series cannot be left half-updated.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_name_and_labels_share_one_series() {
        let m = TaskMetricsHandle::default();
        m.counter("objects_written", "h", &[("bucket", "a")])
            .inc_by(2);
        m.counter("objects_written", "h", &[("bucket", "a")])
            .inc_by(3);
        m.counter("objects_written", "h", &[("bucket", "b")])
            .inc_by(1);
        m.gauge("lag_seconds", "h", &[]).set(1.5);
        let s = m.samples();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].value, 5.0);
        assert_eq!(s[1].value, 1.0);
        assert_eq!(s[2].value, 1.5);
        assert_eq!(s[2].kind, MetricKind::Gauge);
    }
}
