//! `Filter`: drops every record it sees; used with a predicate to drop some.
//!
//! Intended difference: the seed configures it with a JSONPath `condition`
//! (`"transforms.filter.condition": "$[?(@.status == 'active')]"`), which
//! Kafka Connect's Filter ignores (it would drop every record). sluice reads
//! the condition as Confluent's Filter does with `filter.type=include`: records
//! that match are kept, the others dropped; `filter.type` and
//! `missing.or.null.behavior` (default `fail`) may be given too.

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Validator};
use sluice_api::{ConnectError, Record, Transform, TransformPlugin};

use crate::confluent_filter::JsonPathFilter;
use crate::json_path::JsonPath;
use crate::side::Side;

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("condition", ConfigType::String)
                .optional()
                .validator(Validator::Custom(|v| JsonPath::parse(v).map(|_| ())))
                .doc("sluice: a JSONPath the record value must match to be kept."),
        )
        .define(
            ConfigKey::new("filter.type", ConfigType::String)
                .default("include")
                .validator(Validator::OneOf(&["include", "exclude"])),
        )
        .define(
            ConfigKey::new("missing.or.null.behavior", ConfigType::String)
                .default("fail")
                .validator(Validator::OneOf(&["fail", "include", "exclude"])),
        )
}

pub fn plugin() -> TransformPlugin {
    TransformPlugin {
        name: "Filter",
        aliases: &["org.apache.kafka.connect.transforms.Filter"],
        config_def,
        create: |c| {
            let v = config_def().validate(c)?;
            Ok(match v.string("condition") {
                None => Box::new(Filter),
                Some(condition) => Box::new(JsonPathFilter::new(
                    Side::Value,
                    "condition",
                    condition,
                    v.string("filter.type") != Some("exclude"),
                    v.string("missing.or.null.behavior").unwrap_or("fail"),
                )?),
            })
        },
    }
}

struct Filter;

impl Transform for Filter {
    fn apply(&mut self, _record: Record) -> Result<Option<Record>, ConnectError> {
        Ok(None)
    }
}
