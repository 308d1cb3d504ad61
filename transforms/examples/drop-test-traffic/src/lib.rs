//! Drops test traffic: records whose value field `field` (a dotted path) holds
//! one of `values`, or that carry header `header` (when set). Other records
//! pass unchanged.
//!
//! Keys: `field` and `values` (comma-separated), `header`; at least one of
//! `field` or `header` is required.

use sluice_transform::{json, list, Config, Outcome, Reads, Record, Transform};

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
        let mut reads = Reads::empty();
        if self.field.is_some() {
            reads |= Reads::VALUE;
        }
        if self.header.is_some() {
            reads |= Reads::HEADERS;
        }
        reads
    }

    fn apply(&mut self, record: Record) -> Outcome {
        let flagged = self
            .header
            .as_deref()
            .is_some_and(|h| record.headers.iter().any(|x| x.key == h));
        let matches = || {
            let path = self.field.as_deref()?;
            let value = record.value.to_json()?;
            let text = json::field(&value, path).and_then(json::text)?;
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
