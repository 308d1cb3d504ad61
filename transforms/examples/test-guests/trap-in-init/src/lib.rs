//! Test guest: panics in `init`, so the connector cannot start.

use sluice_transform::{Config, Outcome, Record, Transform};

struct TrapInInit;

impl Transform for TrapInInit {
    fn init(_config: &Config) -> Result<Self, String> {
        panic!("this guest always fails to start")
    }

    fn apply(&mut self, record: Record) -> Outcome {
        Outcome::Keep(record)
    }
}

sluice_transform::export!(TrapInInit);
