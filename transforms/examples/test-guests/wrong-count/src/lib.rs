//! Test guest: answers every batch with no outcomes at all, breaking the
//! one-outcome-per-record rule.

use sluice_transform::{Config, Outcome, Record, Transform};

struct WrongCount;

impl Transform for WrongCount {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(WrongCount)
    }

    fn apply(&mut self, record: Record) -> Outcome {
        Outcome::Keep(record)
    }

    fn apply_batch(&mut self, _records: Vec<Record>) -> Vec<Outcome> {
        Vec::new()
    }
}

sluice_transform::export!(WrongCount);
