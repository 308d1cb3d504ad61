//! Test guest: `apply` never returns, so only the host's time limit ends it.

use sluice_transform::{Config, Outcome, Record, Transform};

struct LoopForever;

impl Transform for LoopForever {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(LoopForever)
    }

    fn apply(&mut self, _record: Record) -> Outcome {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

sluice_transform::export!(LoopForever);
