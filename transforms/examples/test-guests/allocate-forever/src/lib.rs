//! Test guest: `apply` allocates without bound, so only the host's memory
//! limit ends it.

use sluice_transform::{Config, Outcome, Record, Transform};

struct AllocateForever {
    hoard: Vec<Vec<u8>>,
}

impl Transform for AllocateForever {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(AllocateForever { hoard: Vec::new() })
    }

    fn apply(&mut self, _record: Record) -> Outcome {
        loop {
            self.hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}

sluice_transform::export!(AllocateForever);
