//! Confluent's `io.confluent.connect.transforms.Filter$Value` / `$Key`: keeps
//! (`filter.type=include`) or drops (`exclude`) the records whose key or value
//! matches the JSONPath `filter.condition`; a record in which the condition's
//! path (outside its `[?(...)]` filters) names a missing or null field follows
//! `missing.or.null.behavior`. Inside a filter such a field simply does not
//! match, as Confluent documents.
//!
//! The seed's `org.apache.kafka.connect.transforms.Filter` with a `condition`
//! key runs through this too (see [`crate::filter`]).

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::json::JsonView;
use sluice_api::{ConfigErrors, ConnectError, Record, TaskConfig, Transform, TransformPlugin};

use crate::json_path::JsonPath;
use crate::side::{peek, Side};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Missing {
    Fail,
    Include,
    Exclude,
}

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("filter.condition", ConfigType::String)
                .validator(Validator::Custom(|v| JsonPath::parse(v).map(|_| ())))
                .importance(Importance::High)
                .doc("The JSONPath predicate records are tested against."),
        )
        .define(
            ConfigKey::new("filter.type", ConfigType::String)
                .validator(Validator::OneOf(&["include", "exclude"]))
                .importance(Importance::High)
                .doc("include: keep matching records, drop the rest; exclude: the reverse."),
        )
        .define(
            ConfigKey::new("missing.or.null.behavior", ConfigType::String)
                .default("fail")
                .validator(Validator::OneOf(&["fail", "include", "exclude"]))
                .doc("What to do with a record whose condition names a missing or null field."),
        )
}

pub fn plugins() -> [TransformPlugin; 2] {
    [
        TransformPlugin {
            name: "ConfluentFilter$Key",
            aliases: &["io.confluent.connect.transforms.Filter$Key"],
            config_def,
            create: |c| Ok(Box::new(JsonPathFilter::from_config(c, Side::Key)?)),
        },
        TransformPlugin {
            name: "ConfluentFilter$Value",
            aliases: &["io.confluent.connect.transforms.Filter$Value"],
            config_def,
            create: |c| Ok(Box::new(JsonPathFilter::from_config(c, Side::Value)?)),
        },
    ]
}

pub(crate) struct JsonPathFilter {
    side: Side,
    text: String,
    condition: JsonPath,
    include: bool,
    missing: Missing,
}

impl JsonPathFilter {
    fn from_config(config: &TaskConfig, side: Side) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        Self::new(
            side,
            "filter.condition",
            c.string("filter.condition").unwrap_or_default(),
            c.string("filter.type") != Some("exclude"),
            c.string("missing.or.null.behavior").unwrap_or("fail"),
        )
    }

    pub(crate) fn new(
        side: Side,
        key: &str,
        condition: &str,
        include: bool,
        missing: &str,
    ) -> Result<Self, ConnectError> {
        let path = JsonPath::parse(condition).map_err(|e| ConfigErrors::single(key, e))?;
        Ok(Self {
            side,
            text: condition.to_owned(),
            condition: path,
            include,
            missing: match missing.to_ascii_lowercase().as_str() {
                "include" => Missing::Include,
                "exclude" => Missing::Exclude,
                _ => Missing::Fail,
            },
        })
    }
}

impl Transform for JsonPathFilter {
    fn apply(&mut self, record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = peek(&record, self.side);
        // Through text: the JSON writer accepts the keys `JsonView` writes for
        // structs, which `serde_json::to_value` refuses.
        let doc: serde_json::Value = serde_json::to_vec(
            &JsonView::new(schema.map(|s| &**s), value).decimals_as_numbers(true),
        )
        .and_then(|bytes| serde_json::from_slice(&bytes))
        .map_err(|e| {
            ConnectError::data(format!(
                "cannot evaluate filter.condition on record {}: {e}",
                record.coordinates()
            ))
        })?;
        let outcome = self.condition.evaluate(&doc);
        let keep = if outcome.missing_or_null && !outcome.matched {
            match self.missing {
                Missing::Include => true,
                Missing::Exclude => false,
                Missing::Fail => {
                    return Err(ConnectError::data(format!(
                        "filter.condition {} names a field that is missing or null in record {}",
                        self.text,
                        record.coordinates()
                    )))
                }
            }
        } else {
            outcome.matched == self.include
        };
        Ok(keep.then_some(record))
    }
}
