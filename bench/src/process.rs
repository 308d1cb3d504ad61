//! What a worker process costs, read from /proc: its CPU time and resident
//! memory, and the steady-state rate it reaches with the CPU spent on it.

use std::time::Instant;

/// Throughput from the first record seen to the last: steady state, without
/// start-up and group join (measured apart as start-to-ready).
#[derive(Default)]
pub(crate) struct SteadyRate {
    first: Option<(Instant, u64)>,
    last: Option<(Instant, u64)>,
}

impl SteadyRate {
    /// Records a count; true once it reaches `target`.
    pub(crate) fn observe(&mut self, count: u64, target: u64) -> bool {
        let now = Instant::now();
        if count > 0 && self.first.is_none() {
            self.first = Some((now, count));
        }
        self.last = Some((now, count));
        count >= target
    }

    pub(crate) fn per_second(&self) -> f64 {
        match (self.first, self.last) {
            (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => {
                (c1 - c0) as f64 / (t1 - t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// Records counted in the window.
    fn counted(&self) -> u64 {
        match (self.first, self.last) {
            (Some((_, c0)), Some((_, c1))) => c1 - c0,
            _ => 0,
        }
    }

    fn started(&self) -> bool {
        self.first.is_some()
    }
}

/// What one worker did over one measured stretch.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Measured {
    /// Records per second, steady state.
    pub rate: f64,
    /// CPU seconds (user + system) the worker spent per million records, over
    /// the same window as the rate.
    pub cpu_s_per_million: f64,
    /// The process's peak resident set (VmHWM), MB.
    pub peak_rss_mb: f64,
}

/// A [`SteadyRate`] that also samples one process's CPU time at the window's
/// edges and its peak RSS, so a rate comes with what it cost.
pub(crate) struct Meter {
    pid: u32,
    rate: SteadyRate,
    cpu_first: Option<f64>,
    cpu_last: f64,
    peak_rss_mb: f64,
}

impl Meter {
    pub(crate) fn new(pid: u32) -> Self {
        Meter {
            pid,
            rate: SteadyRate::default(),
            cpu_first: None,
            cpu_last: 0.0,
            peak_rss_mb: 0.0,
        }
    }

    /// Records a count; true once it reaches `target`.
    pub(crate) fn observe(&mut self, count: u64, target: u64) -> bool {
        let done = self.rate.observe(count, target);
        let cpu = cpu_seconds(self.pid);
        if self.rate.started() && self.cpu_first.is_none() {
            self.cpu_first = Some(cpu);
        }
        self.cpu_last = cpu;
        self.peak_rss_mb = self.peak_rss_mb.max(rss_mb(self.pid).1);
        done
    }

    pub(crate) fn result(&self) -> Measured {
        let counted = self.rate.counted().max(1) as f64;
        Measured {
            rate: self.rate.per_second(),
            cpu_s_per_million: (self.cpu_last - self.cpu_first.unwrap_or(self.cpu_last)) / counted
                * 1e6,
            peak_rss_mb: self.peak_rss_mb,
        }
    }
}

/// (current RSS, peak RSS) in MB, from /proc.
pub(crate) fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User plus system CPU seconds the process has used so far. Linux reports
/// them in USER_HZ ticks, which is 100 per second on every mainstream kernel
/// build and in every container.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after it don't.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); the first after the name is field 3.
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / USER_HZ
}
