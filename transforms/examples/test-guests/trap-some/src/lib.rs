//! Test guest: panics (a trap) on a record whose value contains `poison`,
//! rejects one containing `reject` with an error outcome, keeps the rest.

use sluice_transform::{Config, Outcome, Record, Transform};

struct TrapSome;

impl Transform for TrapSome {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(TrapSome)
    }

    fn apply(&mut self, record: Record) -> Outcome {
        let text = record.value.as_text().unwrap_or_default();
        if text.contains("poison") {
            panic!("poisoned record: {text}");
        }
        if text.contains("reject") {
            return Outcome::Error(format!("rejected record: {text}"));
        }
        Outcome::Keep(record)
    }
}

sluice_transform::export!(TrapSome);
