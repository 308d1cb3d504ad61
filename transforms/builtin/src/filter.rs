//! `Filter`: drops every record it sees; used with a predicate to drop some.

use sluice_api::config::ConfigDef;
use sluice_api::{ConnectError, Record, Transform, TransformPlugin};

pub fn plugin() -> TransformPlugin {
    TransformPlugin {
        name: "Filter",
        aliases: &["org.apache.kafka.connect.transforms.Filter"],
        config_def: ConfigDef::new,
        create: |_| Ok(Box::new(Filter)),
    }
}

struct Filter;

impl Transform for Filter {
    fn apply(&mut self, _record: Record) -> Result<Option<Record>, ConnectError> {
        Ok(None)
    }
}
