//! Connect's predicates: `TopicNameMatches`, `HasHeaderKey`, `RecordIsTombstone`.

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Validator};
use sluice_api::{ConfigErrors, Predicate, PredicatePlugin, Record};

pub fn topic_name_matches() -> PredicatePlugin {
    fn def() -> ConfigDef {
        ConfigDef::new().define(
            ConfigKey::new("pattern", ConfigType::String)
                .validator(Validator::Custom(|p| {
                    regex::Regex::new(p).map(|_| ()).map_err(|e| e.to_string())
                }))
                .doc("A regular expression the whole topic name must match."),
        )
    }
    PredicatePlugin {
        name: "TopicNameMatches",
        aliases: &["org.apache.kafka.connect.transforms.predicates.TopicNameMatches"],
        config_def: def,
        create: |c| {
            let v = def().validate(c)?;
            let pattern = format!("^(?:{})$", v.string("pattern").unwrap_or_default());
            let re = regex::Regex::new(&pattern)
                .map_err(|e| ConfigErrors::single("pattern", e.to_string()))?;
            Ok(Box::new(TopicNameMatches(re)))
        },
    }
}

struct TopicNameMatches(regex::Regex);

impl Predicate for TopicNameMatches {
    fn test(&self, record: &Record) -> bool {
        self.0.is_match(&record.topic)
    }
}

pub fn has_header_key() -> PredicatePlugin {
    fn def() -> ConfigDef {
        ConfigDef::new()
            .define(ConfigKey::new("name", ConfigType::String).validator(Validator::NonEmpty))
    }
    PredicatePlugin {
        name: "HasHeaderKey",
        aliases: &["org.apache.kafka.connect.transforms.predicates.HasHeaderKey"],
        config_def: def,
        create: |c| {
            let v = def().validate(c)?;
            Ok(Box::new(HasHeaderKey(
                v.string("name").unwrap_or_default().to_owned(),
            )))
        },
    }
}

struct HasHeaderKey(String);

impl Predicate for HasHeaderKey {
    fn test(&self, record: &Record) -> bool {
        record.headers.last(&self.0).is_some()
    }
}

pub fn record_is_tombstone() -> PredicatePlugin {
    PredicatePlugin {
        name: "RecordIsTombstone",
        aliases: &["org.apache.kafka.connect.transforms.predicates.RecordIsTombstone"],
        config_def: ConfigDef::new,
        create: |_| Ok(Box::new(RecordIsTombstone)),
    }
}

struct RecordIsTombstone;

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &Record) -> bool {
        record.value.is_null()
    }
}
