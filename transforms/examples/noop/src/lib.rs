//! Keeps every record unchanged: what the WebAssembly boundary alone costs.

use sluice_transform::{Config, Outcome, Record, Transform};

struct Noop;

impl Transform for Noop {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Noop)
    }

    fn apply(&mut self, record: Record) -> Outcome {
        Outcome::Keep(record)
    }
}

sluice_transform::export!(Noop);
