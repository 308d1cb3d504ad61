//! Keeps every record unchanged and reads none of it: what the WebAssembly
//! boundary alone costs.

use sluice_transform::{Config, Outcome, Reads, Record, Transform};

struct Noop;

impl Transform for Noop {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Noop)
    }

    fn reads(&self) -> Reads {
        Reads::nothing()
    }

    fn apply(&mut self, _record: Record) -> Outcome {
        Outcome::Unchanged
    }
}

sluice_transform::export!(Noop);
