//! Debezium's `ByLogicalTableRouter`: routes the change events of several
//! physical tables (shards) to one topic, renaming the key, value and envelope
//! schemas after the new topic and adding the physical table's identifier to
//! the key (`key.enforce.uniqueness`).

use std::sync::Arc;

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::schema::{Field, Schema, SchemaType};
use sluice_api::{
    ConfigErrors, ConnectError, Record, SchemaRef, TaskConfig, Transform, TransformPlugin, Value,
};

use crate::java_regex::JavaPattern;
use crate::requirements::struct_required;
use crate::schema_util::{field_value, push_field, SchemaCache};

fn regex_ok(v: &str) -> Result<(), String> {
    JavaPattern::new(v).map(|_| ()).map_err(|e| e.to_string())
}

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("topic.regex", ConfigType::String)
                .validator(Validator::Custom(regex_ok))
                .importance(Importance::Low)
                .doc("The regex used for extracting the name of the logical table from the original topic name."),
        )
        .define(
            ConfigKey::new("topic.replacement", ConfigType::String)
                .importance(Importance::Low)
                .doc("The replacement string used with topic.regex to create the new topic name."),
        )
        .define(
            ConfigKey::new("key.enforce.uniqueness", ConfigType::Boolean)
                .default("true")
                .importance(Importance::Low)
                .doc("Augment each record's key with a field denoting the source topic."),
        )
        .define(
            ConfigKey::new("key.field.regex", ConfigType::String)
                .optional()
                .validator(Validator::Custom(regex_ok))
                .importance(Importance::Low)
                .doc("The regex used for extracting the physical table identifier from the original topic name."),
        )
        .define(
            ConfigKey::new("key.field.name", ConfigType::String)
                .default("__dbz__physicalTableIdentifier")
                .importance(Importance::Low)
                .doc("The key field that identifies the physical table."),
        )
        .define(
            ConfigKey::new("key.field.replacement", ConfigType::String)
                .optional()
                .importance(Importance::Low)
                .doc("The replacement string used with key.field.regex to create the physical table identifier."),
        )
        .define(
            ConfigKey::new("schema.name.adjustment.mode", ConfigType::String)
                .default("none")
                .validator(Validator::OneOf(&["avro", "none", "avro_unicode"]))
                .importance(Importance::Low)
                .doc("How schema names derived from the new topic are adjusted: none (the default) or avro (replace characters Avro names cannot hold with _)."),
        )
        .define(
            ConfigKey::new("logical.table.cache.size", ConfigType::Int)
                .default("16")
                .validator(Validator::at_least(1.0))
                .importance(Importance::Low)
                .doc(
                    "The size of Debezium's schema and topic caches; accepted for \
                     compatibility, sluice's caches are bounded on their own.",
                ),
        )
}

pub fn plugin() -> TransformPlugin {
    TransformPlugin {
        name: "ByLogicalTableRouter",
        aliases: &["io.debezium.transforms.ByLogicalTableRouter"],
        config_def,
        create: |c| Ok(Box::new(ByLogicalTableRouter::new(c)?)),
    }
}

struct ByLogicalTableRouter {
    topic_regex: JavaPattern,
    topic_replacement: String,
    key_regex: Option<(JavaPattern, String)>,
    key_field: String,
    enforce_uniqueness: bool,
    adjust_avro: bool,
    key_schemas: SchemaCache,
    envelope_schemas: SchemaCache,
}

impl ByLogicalTableRouter {
    fn new(config: &TaskConfig) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        let pattern = |k: &str| {
            JavaPattern::new(c.string(k).unwrap_or_default())
                .map_err(|e| ConfigErrors::single(k, e.to_string()))
        };
        let key_regex = match c.string("key.field.regex").map(str::trim) {
            Some(r) if !r.is_empty() => {
                let replacement = c.string("key.field.replacement").unwrap_or_default();
                if replacement.trim().is_empty() {
                    return Err(ConfigErrors::single(
                        "key.field.replacement",
                        "key.field.replacement must be non-empty if key.field.regex is set.",
                    )
                    .into());
                }
                Some((pattern("key.field.regex")?, replacement.to_owned()))
            }
            _ => None,
        };
        Ok(Self {
            topic_regex: pattern("topic.regex")?,
            topic_replacement: c.string("topic.replacement").unwrap_or_default().to_owned(),
            key_regex,
            key_field: c.string("key.field.name").unwrap_or_default().to_owned(),
            enforce_uniqueness: c.boolean("key.enforce.uniqueness").unwrap_or(true),
            adjust_avro: c.string("schema.name.adjustment.mode") != Some("none"),
            key_schemas: SchemaCache::default(),
            envelope_schemas: SchemaCache::default(),
        })
    }

    /// Debezium's `SchemaNameAdjuster` in `avro` mode: characters an Avro name
    /// cannot hold become `_`.
    fn adjust(&self, name: &str) -> String {
        if !self.adjust_avro {
            return name.to_owned();
        }
        let mut out = String::with_capacity(name.len());
        let mut first = true;
        for c in name.chars() {
            let ok = if first {
                c.is_ascii_alphabetic() || c == '_'
            } else {
                c.is_ascii_alphanumeric() || c == '_' || c == '.'
            };
            out.push(if ok { c } else { '_' });
            first = false;
        }
        out
    }

    fn physical_id(&self, old_topic: &str) -> Result<String, ConnectError> {
        match &self.key_regex {
            Some((re, replacement)) if re.matches(old_topic) => re
                .replace_first(old_topic, replacement)
                .map_err(ConnectError::data),
            _ => Ok(old_topic.to_owned()),
        }
    }
}

/// `copySchemaExcludingName`: version, doc, parameters and optionality, and
/// (with `fields`) the fields.
fn copy_excluding_name(source: &Schema, fields: Vec<Field>) -> Schema {
    let mut s = Schema::new(SchemaType::Struct(fields));
    s.version = source.version;
    s.doc = source.doc.clone();
    s.parameters = source.parameters.clone();
    s.optional = source.optional;
    s
}

fn is_envelope(schema: Option<&SchemaRef>) -> bool {
    schema
        .and_then(|s| s.name.as_deref())
        .is_some_and(|n| n.ends_with(".Envelope"))
}

fn copied(schema: &Schema, values: &[Value]) -> Vec<Value> {
    schema
        .fields()
        .iter()
        .zip(values)
        .map(|(f, v)| field_value(f, v, true))
        .collect()
}

impl Transform for ByLogicalTableRouter {
    #[allow(
        clippy::too_many_lines,
        reason = "Debezium's `ByLogicalTableRouter.apply` step by step (key schema, key fields, topic), kept in its order so it reads against Java's."
    )]
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        if !self.topic_regex.matches(&record.topic) {
            return Ok(Some(record));
        }
        let new_topic = self
            .topic_regex
            .replace_first(&record.topic, &self.topic_replacement)
            .map_err(ConnectError::data)?;
        if new_topic.is_empty() {
            // Debezium passes the record on unchanged (and logs a warning).
            return Ok(Some(record));
        }
        let old_topic = record.topic.to_string();
        if !record.key.is_null() {
            let (Some(key_schema), Value::Struct(values)) = (&record.key_schema, &record.key)
            else {
                return Err(struct_required(
                    &record.key,
                    record.key_schema.as_deref(),
                    "Updating schema",
                ));
            };
            let name = self.adjust(&format!("{new_topic}.Key"));
            let (enforce, field) = (self.enforce_uniqueness, self.key_field.clone());
            let new_schema = self.key_schemas.get_or_build(key_schema, |s| {
                let mut fields = s.fields().to_vec();
                if enforce {
                    push_field(
                        &mut fields,
                        &field,
                        sluice_api::schema::primitives::string(),
                    )?;
                }
                let mut out = copy_excluding_name(s, fields);
                out.name = Some(name);
                Ok(out)
            })?;
            let mut key = copied(key_schema, values);
            if self.enforce_uniqueness {
                key.push(Value::String(self.physical_id(&old_topic)?));
            }
            record.key_schema = Some(new_schema);
            record.key = Value::Struct(key);
        } else {
            record.key_schema = None;
        }
        if !record.value.is_null() && is_envelope(record.value_schema.as_ref()) {
            let Some(envelope) = record.value_schema.clone() else {
                return Ok(Some(record));
            };
            let Value::Struct(values) = std::mem::take(&mut record.value) else {
                return Err(struct_required(
                    &record.value,
                    Some(&envelope),
                    "Updating schema",
                ));
            };
            let value_name = self.adjust(&format!("{new_topic}.Value"));
            let envelope_name = self.adjust(&format!("{new_topic}.Envelope"));
            let new_envelope = self.envelope_schemas.get_or_build(&envelope, |s| {
                let before = s
                    .fields()
                    .iter()
                    .find(|f| f.name == "before")
                    .ok_or_else(|| ConnectError::data("Envelope has no before field"))?;
                let mut row = copy_excluding_name(&before.schema, before.schema.fields().to_vec());
                row.name = Some(value_name);
                let row = row.into_ref();
                let fields = s
                    .fields()
                    .iter()
                    .map(|f| Field {
                        name: f.name.clone(),
                        schema: if f.name == "before" || f.name == "after" {
                            row.clone()
                        } else {
                            f.schema.clone()
                        },
                    })
                    .collect();
                let mut out = copy_excluding_name(s, fields);
                out.name = Some(envelope_name);
                Ok(out)
            })?;
            let mut out = Vec::with_capacity(values.len());
            for (f, v) in envelope.fields().iter().zip(values) {
                let v = field_value(f, &v, true);
                let v = match (&*f.name, v) {
                    ("before" | "after", Value::Struct(row)) => {
                        Value::Struct(copied(&f.schema, &row))
                    }
                    ("before" | "after", Value::Null) => Value::Null,
                    ("before" | "after", other) => {
                        return Err(struct_required(&other, Some(&f.schema), "Updating schema"))
                    }
                    (_, other) => other,
                };
                out.push(v);
            }
            record.value_schema = Some(new_envelope);
            record.value = Value::Struct(out);
        }
        record.topic = Arc::from(new_topic);
        Ok(Some(record))
    }
}
