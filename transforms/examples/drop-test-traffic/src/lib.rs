//! Drops test traffic: records whose value field `field` (a dotted path) holds
//! one of `values`, or that carry header `header` (when set). Other records
//! pass unchanged.
//!
//! Keys: `field` and `values` (comma-separated), `header`; at least one of
//! `field` or `header` is required.

use sluice_transform::{list, Config, Outcome, Parts, Reads, Record, Transform};

struct DropTestTraffic {
    field: Option<String>,
    values: Vec<String>,
    header: Option<String>,
}

impl Transform for DropTestTraffic {
    fn init(config: &Config) -> Result<Self, String> {
        let field = config.get("field").cloned();
        let header = config.get("header").cloned();
        if field.is_none() && header.is_none() {
            return Err("set 'field' (with 'values') or 'header'".into());
        }
        Ok(DropTestTraffic {
            field,
            values: list(config, "values"),
            header,
        })
    }

    fn reads(&self) -> Reads {
        let mut reads = Reads::value_fields(self.field.as_slice());
        if self.header.is_some() {
            reads.whole |= Parts::HEADERS;
        }
        reads
    }

    fn apply(&mut self, record: Record) -> Outcome {
        let flagged = self
            .header
            .as_deref()
            .is_some_and(|h| record.headers.iter().any(|x| x.key == h));
        let matches = || {
            let text = record.field(0)?.to_text()?;
            Some(self.values.contains(&text))
        };
        if flagged || matches().unwrap_or(false) {
            Outcome::Drop
        } else {
            Outcome::Unchanged
        }
    }
}

sluice_transform::export!(DropTestTraffic);
