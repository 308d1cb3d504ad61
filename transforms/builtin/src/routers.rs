//! Connect's topic routers: `RegexRouter` (a Java regex over the whole topic,
//! `replaceFirst` with `$1`-style references) and `TimestampRouter`
//! (`${topic}` and `${timestamp}` in `topic.format`, the timestamp formatted
//! with a `SimpleDateFormat` pattern in UTC).

use std::sync::Arc;

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::{ConnectError, Record, Transform, TransformPlugin};

use crate::date_format::DateFormat;
use crate::java_regex::JavaPattern;

pub fn regex_router() -> TransformPlugin {
    fn def() -> ConfigDef {
        ConfigDef::new()
            .define(
                ConfigKey::new("regex", ConfigType::String)
                    .validator(Validator::Custom(|p| {
                        JavaPattern::new(p)
                            .map(|_| ())
                            .map_err(|e| format!("Invalid regex: {e}"))
                    }))
                    .importance(Importance::High)
                    .doc("Regular expression to use for matching."),
            )
            .define(
                ConfigKey::new("replacement", ConfigType::String)
                    .importance(Importance::High)
                    .doc("Replacement string."),
            )
    }
    TransformPlugin {
        name: "RegexRouter",
        aliases: &["org.apache.kafka.connect.transforms.RegexRouter"],
        config_def: def,
        create: |c| {
            let c = def().validate(c)?;
            let regex = JavaPattern::new(c.string("regex").unwrap_or_default())
                .map_err(|e| sluice_api::ConfigErrors::single("regex", e.to_string()))?;
            Ok(Box::new(RegexRouter {
                regex,
                replacement: c.string("replacement").unwrap_or_default().to_owned(),
            }))
        },
    }
}

struct RegexRouter {
    regex: JavaPattern,
    replacement: String,
}

impl Transform for RegexRouter {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        if self.regex.matches(&record.topic) {
            let topic = self
                .regex
                .replace_first(&record.topic, &self.replacement)
                .map_err(ConnectError::data)?;
            record.topic = Arc::from(topic);
        }
        Ok(Some(record))
    }
}

pub fn timestamp_router() -> TransformPlugin {
    fn def() -> ConfigDef {
        ConfigDef::new()
            .define(
                ConfigKey::new("topic.format", ConfigType::String)
                    .default("${topic}-${timestamp}")
                    .importance(Importance::High)
                    .doc(
                        "Format string which can contain ${topic} and ${timestamp} as \
                         placeholders for the topic and timestamp, respectively.",
                    ),
            )
            .define(
                ConfigKey::new("timestamp.format", ConfigType::String)
                    .default("yyyyMMdd")
                    .validator(Validator::Custom(|p| {
                        DateFormat::parse_pattern(p).map(|_| ())
                    }))
                    .importance(Importance::High)
                    .doc(
                        "Format string for the timestamp that is compatible with \
                         java.text.SimpleDateFormat.",
                    ),
            )
    }
    TransformPlugin {
        name: "TimestampRouter",
        aliases: &["org.apache.kafka.connect.transforms.TimestampRouter"],
        config_def: def,
        create: |c| {
            let c = def().validate(c)?;
            let format =
                DateFormat::parse_pattern(c.string("timestamp.format").unwrap_or_default())
                    .map_err(|e| sluice_api::ConfigErrors::single("timestamp.format", e))?;
            Ok(Box::new(TimestampRouter {
                topic_format: c.string("topic.format").unwrap_or_default().to_owned(),
                format,
            }))
        },
    }
}

struct TimestampRouter {
    topic_format: String,
    format: DateFormat,
}

impl Transform for TimestampRouter {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let Some(ts) = record.timestamp else {
            return Err(ConnectError::data(format!(
                "Timestamp missing on record: {}",
                record.coordinates()
            )));
        };
        let topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace("${timestamp}", &self.format.format(ts));
        record.topic = Arc::from(topic);
        Ok(Some(record))
    }
}
