//! A connector's configuration in Kafka Connect's shape, `{"name": ..., "config":
//! {...}}` (a flat object with `name` inside is accepted too), checked against the
//! keys every connector has and the keys its plugin declares.

use std::path::Path;

use sluice_api::config::{split_list, ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::{ConfigErrors, PluginKind, TaskConfig};

use super::{object_to_config, read_json_object, ConfigFileError, ConfigProviders};
use crate::plugins::Plugins;

/// Keys every connector has, as Connect names them.
pub fn connector_config_def(kind: PluginKind) -> ConfigDef {
    let def = ConfigDef::new()
        .define(
            ConfigKey::new("name", ConfigType::String)
                .importance(Importance::High)
                .validator(Validator::Custom(check_connector_name)),
        )
        // A STRING in Connect's definition too: it names a plugin, by class or alias.
        .define(ConfigKey::new("connector.class", ConfigType::String).importance(Importance::High))
        .define(
            ConfigKey::new("tasks.max", ConfigType::Int)
                .default("1")
                .validator(Validator::at_least(1.0))
                .doc("The most tasks this connector may run."),
        )
        .define(
            ConfigKey::new("key.converter", ConfigType::Class)
                .optional()
                .doc("Overrides the worker's key converter."),
        )
        .define(
            ConfigKey::new("value.converter", ConfigType::Class)
                .optional()
                .doc("Overrides the worker's value converter."),
        )
        .define(
            ConfigKey::new("transforms", ConfigType::List)
                .default("")
                .doc("Aliases of the transforms to apply, in order."),
        )
        .define(ConfigKey::new("predicates", ConfigType::List).default(""))
        .define(
            ConfigKey::new("errors.tolerance", ConfigType::String)
                .default("none")
                .validator(Validator::OneOf(&["none", "all"]))
                .group("Error Handling"),
        )
        .define(
            ConfigKey::new("errors.log.enable", ConfigType::Boolean)
                .default("false")
                .group("Error Handling"),
        )
        .define(
            ConfigKey::new("errors.log.include.messages", ConfigType::Boolean)
                .default("false")
                .group("Error Handling"),
        )
        .define(
            ConfigKey::new("errors.retry.timeout", ConfigType::Long)
                .default("0")
                .validator(Validator::at_least(-1.0))
                .group("Error Handling")
                .doc("Connect's retry budget for a record operation (conversion, transformation), in ms; -1 forever, 0 never. Accepted and checked for Connect configs; sluice's converters and transforms fail only with data errors, which no retry mends."),
        )
        .define(
            ConfigKey::new("errors.retry.delay.max.ms", ConfigType::Long)
                .default("60000")
                .validator(Validator::at_least(1.0))
                .group("Error Handling")
                .doc("Connect's longest wait between two retries of a record operation; accepted and checked, as errors.retry.timeout."),
        )
        .define(
            ConfigKey::new("task.retry.timeout.ms", ConfigType::Long)
                .default("-1")
                .validator(Validator::at_least(-1.0))
                .group("Error Handling")
                .doc("sluice: how long a retriable failure of the source or destination (poll, put, flush, commit; a database, S3 or broker outage) is retried before the task fails; -1 (default) until it succeeds or the task is stopped, 0 never."),
        )
        .define(
            ConfigKey::new("task.retry.backoff.max.ms", ConfigType::Long)
                .default("10000")
                .validator(Validator::at_least(1.0))
                .group("Error Handling")
                .doc("sluice: the longest wait between two retries of a failed poll, put or commit, so a task resumes within this long after its service is back."),
        );
    match kind {
        PluginKind::Source => def
            .define(
                ConfigKey::new("topic.creation.default.partitions", ConfigType::Int)
                    .default("-1")
                    .doc("Partitions of topics this connector creates; -1 is the broker's default."),
            )
            .define(
                ConfigKey::new("topic.creation.default.replication.factor", ConfigType::Int)
                    .default("-1")
                    .doc("Replication factor of topics this connector creates; -1 is the broker's default."),
            ),
        PluginKind::Sink => def
            .define(ConfigKey::new("topics", ConfigType::List).default("").doc("Topics to consume."))
            .define(ConfigKey::new("topics.regex", ConfigType::String).default("").doc("A regex of topics to consume."))
            .define(ConfigKey::new("consumer.override.max.poll.records", ConfigType::Int).optional()),
    }
}

/// Connect's rule for names (non-empty, no control characters), and a length
/// that a consumer group id and a log line carry without trouble. A newline
/// could forge log lines; a NUL breaks every C client the name reaches.
pub fn check_connector_name(name: &str) -> Result<(), String> {
    const MAX: usize = 249;
    if name.trim().is_empty() {
        Err("must not be empty".into())
    } else if let Some(c) = name.chars().find(|c| c.is_control()) {
        Err(format!(
            "must not contain control characters (found U+{:04X})",
            u32::from(c)
        ))
    } else if name.len() > MAX {
        Err(format!("must be at most {MAX} bytes long"))
    } else {
        Ok(())
    }
}

/// What a worker admits in connector configs, from its own config.
#[derive(Debug, Clone)]
pub struct ConnectorRules {
    /// The `${...}` references a connector config may resolve.
    pub providers: ConfigProviders,
    /// The highest `tasks.max` one connector may ask for (`tasks.max.limit`).
    pub tasks_max_limit: usize,
    /// The most tasks all connectors may ask for together (`worker.tasks.limit`).
    pub worker_tasks_limit: usize,
}

impl Default for ConnectorRules {
    fn default() -> Self {
        Self {
            providers: ConfigProviders::default(),
            tasks_max_limit: 256,
            worker_tasks_limit: 1024,
        }
    }
}

/// One transform of a connector's `transforms` chain.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformSpec {
    pub alias: String,
    pub type_name: String,
    /// Its own keys, `transforms.<alias>.` removed.
    pub config: TaskConfig,
    pub predicate: Option<String>,
    pub negate: bool,
}

#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub name: String,
    /// The plugin's canonical class (an alias in the file is resolved).
    pub class: String,
    pub kind: PluginKind,
    pub tasks_max: usize,
    /// As written: provider references unresolved, secrets present. Never log it.
    pub written: TaskConfig,
    /// With references resolved: what the connector receives.
    pub resolved: TaskConfig,
    pub transforms: Vec<TransformSpec>,
}

impl ConnectorConfig {
    pub fn load(
        path: &Path,
        plugins: &Plugins,
        rules: &ConnectorRules,
    ) -> Result<Self, ConfigFileError> {
        let shown = path.display().to_string();
        let object = read_json_object(path)?;
        let (name, config_obj) = match object.get("config") {
            Some(serde_json::Value::Object(c)) => (
                object
                    .get("name")
                    .and_then(|n| n.as_str())
                    .map(str::to_owned),
                c.clone(),
            ),
            Some(_) => {
                return Err(ConfigFileError::Shape {
                    path: shown,
                    message: "'config': must be a JSON object".into(),
                })
            }
            None => (None, object),
        };
        let mut written = object_to_config(&config_obj, &shown)?;
        if let Some(name) = name {
            written.entry("name".to_owned()).or_insert(name);
        }
        Self::from_written(written, plugins, rules).map_err(|errors| ConfigFileError::Invalid {
            path: shown,
            errors,
        })
    }

    /// Validates a configuration as written, reporting every error at once.
    pub fn from_written(
        written: TaskConfig,
        plugins: &Plugins,
        rules: &ConnectorRules,
    ) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let resolved = match rules.providers.resolve(&written) {
            Ok(r) => r,
            Err(e) => {
                errors.extend(e);
                written.clone()
            }
        };
        let class = resolved.get("connector.class").cloned().unwrap_or_default();
        let plugin = plugins.connector(&class);
        if class.is_empty() {
            errors.push("connector.class", "is required and has no default value");
        } else if plugin.is_none() {
            errors.push(
                "connector.class",
                format!(
                    "unknown connector class '{class}'; known: {}",
                    plugins.connector_classes().join(", ")
                ),
            );
        }
        let kind = plugin.map_or(PluginKind::Source, |p| p.kind());
        let common = connector_config_def(kind).validate(&resolved);
        if let Err(e) = &common {
            errors.extend(e.clone());
        }
        if let Some(p) = plugin {
            if let Err(e) = (p.config_def)().validate(&resolved) {
                errors.extend(e);
            }
        }
        let transforms = match transform_specs(&resolved, plugins) {
            Ok(t) => t,
            Err(e) => {
                errors.extend(e);
                Vec::new()
            }
        };
        if let Ok(c) = &common {
            let tasks_max = c.int("tasks.max").unwrap_or(1);
            if usize::try_from(tasks_max).is_ok_and(|n| n > rules.tasks_max_limit) {
                errors.push(
                    "tasks.max",
                    format!(
                        "{tasks_max} is above this worker's limit of {} (its tasks.max.limit)",
                        rules.tasks_max_limit
                    ),
                );
            }
            let set = |k: &str| c.string(k).is_some_and(|v| !v.trim().is_empty());
            if set("errors.deadletterqueue.topic.name")
                && set("errors.deadletterqueue.topic.suffix")
            {
                errors.push(
                    "errors.deadletterqueue.topic.suffix",
                    "set either errors.deadletterqueue.topic.name or errors.deadletterqueue.topic.suffix, not both",
                );
            }
        }
        // Checked on the raw values, so that it is reported with every other
        // error (as Connect does), on both keys, in Connect's words.
        if kind == PluginKind::Sink {
            let set = |k: &str| resolved.get(k).is_some_and(|v| !v.trim().is_empty());
            let why = match (set("topics"), set("topics.regex")) {
                (true, true) => Some(
                    "topics and topics.regex are mutually exclusive options, but both are set.",
                ),
                (false, false) => Some("Must configure one of topics or topics.regex"),
                _ => None,
            };
            if let Some(why) = why {
                errors.push("topics", why);
                errors.push("topics.regex", why);
            }
        }
        errors.into_result()?;
        let (Ok(common), Some(plugin)) = (common, plugin) else {
            // Both were checked above; reaching here means an error was pushed.
            return Err(ConfigErrors::single("connector.class", "invalid"));
        };
        Ok(Self {
            name: common.string("name").unwrap_or_default().to_owned(),
            class: plugin.class.to_owned(),
            kind,
            tasks_max: common.int("tasks.max").map_or(1, |n| n.max(1) as usize),
            written,
            resolved,
            transforms,
        })
    }

    /// A config kept as stored although it no longer validates, so the worker
    /// can still show and delete it: it runs nothing (no tasks, nothing resolved).
    pub fn unvalidated(written: TaskConfig, plugins: &Plugins) -> Self {
        let class = written.get("connector.class").cloned().unwrap_or_default();
        let plugin = plugins.connector(&class);
        Self {
            name: written.get("name").cloned().unwrap_or_default(),
            class: plugin.map_or(class, |p| p.class.to_owned()),
            kind: plugin.map_or(PluginKind::Source, |p| p.kind()),
            tasks_max: 0,
            written,
            resolved: TaskConfig::new(),
            transforms: Vec::new(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.resolved.get(key).map(String::as_str)
    }

    /// The sink's topic list (empty when it subscribes by regex).
    pub fn topics(&self) -> Vec<String> {
        self.get("topics").map(split_list).unwrap_or_default()
    }

    /// Keys under `prefix`, with the prefix removed.
    pub fn with_prefix(&self, prefix: &str) -> TaskConfig {
        prefixed(&self.resolved, prefix)
    }

    /// Keys of any config under `prefix`, with the prefix removed.
    pub fn prefixed_of(config: &TaskConfig, prefix: &str) -> TaskConfig {
        prefixed(config, prefix)
    }
}

pub(crate) fn prefixed(config: &TaskConfig, prefix: &str) -> TaskConfig {
    config
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix)
                .map(|rest| (rest.to_owned(), v.clone()))
        })
        .collect()
}

fn transform_specs(
    config: &TaskConfig,
    plugins: &Plugins,
) -> Result<Vec<TransformSpec>, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut specs = Vec::new();
    let predicates = config
        .get("predicates")
        .map(|p| split_list(p))
        .unwrap_or_default();
    for alias in config
        .get("transforms")
        .map(|t| split_list(t))
        .unwrap_or_default()
    {
        let own = prefixed(config, &format!("transforms.{alias}."));
        let type_key = format!("transforms.{alias}.type");
        let Some(type_name) = own.get("type").cloned() else {
            errors.push(type_key, "is required: every transform alias needs a type");
            continue;
        };
        match plugins.transform(&type_name) {
            None => errors.push(
                &type_key,
                format!(
                    "unknown transform type '{type_name}'; known: {}",
                    plugins.transform_names().join(", ")
                ),
            ),
            Some(t) => match (t.config_def)().validate(&own) {
                Err(e) => {
                    for mut err in e.0 {
                        err.key = format!("transforms.{alias}.{}", err.key);
                        errors.0.push(err);
                    }
                }
                // Building it once is the only check of what its keys mean
                // together (a WebAssembly guest's `init` sees all of them), so
                // that validate reports what would fail every task's start.
                Ok(_) => {
                    if let Err(e) = (t.create)(&own) {
                        errors.push(&type_key, format!("cannot be built from its keys: {e}"));
                    }
                }
            },
        }
        let predicate = own.get("predicate").cloned();
        if let Some(p) = &predicate {
            if !predicates.contains(p) {
                errors.push(
                    format!("transforms.{alias}.predicate"),
                    format!("'{p}' is not listed in 'predicates'"),
                );
            }
        }
        let negate = own
            .get("negate")
            .is_some_and(|n| n.eq_ignore_ascii_case("true"));
        specs.push(TransformSpec {
            alias,
            type_name,
            config: own,
            predicate,
            negate,
        });
    }
    errors.into_result()?;
    Ok(specs)
}
