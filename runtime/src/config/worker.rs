//! The worker's own configuration (`configs/standalone.json`): Connect's key names,
//! every key overridable by an environment variable `SLUICE_<KEY>` with dots and
//! dashes written as `_` (`SLUICE_BOOTSTRAP_SERVERS`, `SLUICE_PRODUCER_LINGER_MS`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::{TaskConfig, ValidatedConfig};

use super::{object_to_config, read_json_object, ConfigFileError, ConfigProviders, ConnectorRules};

pub const ENV_PREFIX: &str = "SLUICE_";

/// Prefixes of keys handed to librdkafka. Unknown environment variables under
/// these become client settings; other unknown `SLUICE_*` variables are ignored.
const CLIENT_PREFIXES: &[&str] = &[
    "producer.",
    "consumer.",
    "admin.",
    "sasl.",
    "ssl.",
    "security.",
    "client.",
];

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Every key, after environment overrides and provider references.
    raw: TaskConfig,
    validated: ValidatedConfig,
    rules: ConnectorRules,
}

impl WorkerConfig {
    #[allow(
        clippy::too_many_lines,
        reason = "a declarative list of keys: long, but flat."
    )]
    pub fn config_def() -> ConfigDef {
        let def = ConfigDef::new()
            .define(
                ConfigKey::new("bootstrap.servers", ConfigType::List)
                    .importance(Importance::High)
                    .validator(Validator::NonEmpty)
                    .doc("Kafka brokers to bootstrap from, host:port[,host:port].")
            )
            .define(
                ConfigKey::new("offset.storage.file.filename", ConfigType::String)
                    .default("sluice.offsets.json")
                    .importance(Importance::High)
                    .doc("Standalone mode: the file that stores source offsets (written atomically).")
            )
            .define(
                ConfigKey::new("offset.flush.interval.ms", ConfigType::Long)
                    .default("60000")
                    .validator(Validator::at_least(1.0))
                    .doc("How often source offsets are stored and sink offsets committed.")
            )
            .define(
                ConfigKey::new("key.converter", ConfigType::Class)
                    .default("org.apache.kafka.connect.json.JsonConverter")
                    .doc("Default key converter: json, string, bytearray or a Connect class name.")
            )
            .define(
                ConfigKey::new("value.converter", ConfigType::Class)
                    .default("org.apache.kafka.connect.json.JsonConverter")
                    .doc("Default value converter.")
            )
            .define(
                ConfigKey::new("topic.creation.enable", ConfigType::Boolean)
                    .default("true")
                    .doc("Let source connectors create the topics they write to (KIP-158).")
            )
            .define(
                ConfigKey::new("task.shutdown.graceful.timeout.ms", ConfigType::Long)
                    .default("30000")
                    .validator(Validator::at_least(0.0))
                    .doc("How long a shutdown waits for tasks to finish their batches and commit.")
            )
            .define(
                ConfigKey::new("progress.interval.ms", ConfigType::Long)
                    .default("10000")
                    .validator(Validator::at_least(0.0))
                    .doc("How often each task logs its record counts; 0 turns it off.")
            )
            .define(
                ConfigKey::new("metrics.lag.refresh.ms", ConfigType::Long)
                    .default("5000")
                    .validator(Validator::at_least(100.0))
                    .doc("How often each sink task reads its partitions' log-end and committed offsets for the lag metrics and GET /connectors/{name}/lag.")
            )
            .define(
                ConfigKey::new("listeners", ConfigType::List)
                    .default("http://127.0.0.1:8083")
                    .doc("Where the REST API listens: http://host:port or https://host:port (port 0 picks a free one).")
            )
            .define(
                ConfigKey::new("rest.advertised.host.name", ConfigType::String)
                    .optional()
                    .doc("The host statuses report as this worker's id; default: the listener's.")
            )
            .define(
                ConfigKey::new("rest.advertised.port", ConfigType::Int)
                    .optional()
                    .validator(Validator::between(0.0, 65535.0))
                    .doc("The port statuses report as this worker's id; default: the listener's.")
            )
            .define(
                ConfigKey::new("rest.advertised.listener", ConfigType::String)
                    .optional()
                    .doc("Accepted for Connect compatibility; a standalone worker has one listener.")
            )
            .define(
                ConfigKey::new("listeners.https.ssl.certificate.location", ConfigType::String)
                    .optional()
                    .doc("PEM certificate chain of an https listener.")
            )
            .define(
                ConfigKey::new("listeners.https.ssl.key.location", ConfigType::String)
                    .optional()
                    .doc("PEM private key of an https listener.")
            )
            .define(
                ConfigKey::new("rest.auth.basic.credentials.file", ConfigType::String)
                    .optional()
                    .doc("Turns on HTTP basic authentication: a file of 'user: password' lines.")
            )
            .define(
                ConfigKey::new("rest.auth.bearer.tokens.file", ConfigType::String)
                    .optional()
                    .doc("Turns on bearer-token authentication: a file with one token per line.")
            )
            .define(
                ConfigKey::new("config.providers", ConfigType::List)
                    .default("")
                    .doc("Config providers connector configs may reference (env, file), each with config.providers.<alias>.class and .param.* keys, as in Connect. None by default: a connector config cannot read the worker's files or environment unless the operator allows it.")
            )
            .define(
                ConfigKey::new("auto.restart.enable", ConfigType::Boolean)
                    .default("true")
                    .doc("Restart a FAILED task, or a connector that failed to start, by itself, waiting longer after each failure in a row (Connect leaves this to outside tooling).")
            )
            .define(
                ConfigKey::new("auto.restart.backoff.max.ms", ConfigType::Long)
                    .default("60000")
                    .validator(Validator::at_least(1.0))
                    .doc("The longest wait before an automatic restart; waits double from one second up to it.")
            )
            .define(
                ConfigKey::new("tasks.max.limit", ConfigType::Int)
                    .default("256")
                    .validator(Validator::at_least(1.0))
                    .doc("The highest tasks.max a connector may ask for; a config above it is refused.")
            )
            .define(
                ConfigKey::new("worker.tasks.limit", ConfigType::Int)
                    .default("1024")
                    .validator(Validator::at_least(1.0))
                    .doc("The most tasks all connectors of this worker may ask for together; a config that would pass it is refused.")
            );
        super::distributed::define(def)
    }

    /// Loads a worker file, applies environment overrides from `env`, resolves
    /// provider references and validates.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigFileError> {
        let shown = path.display().to_string();
        let object = read_json_object(path)?;
        let mut raw = object_to_config(&object, &shown)?;
        apply_env_overrides(&mut raw, &Self::config_def(), env);
        Self::from_raw(raw).map_err(|errors| ConfigFileError::Invalid {
            path: shown,
            errors,
        })
    }

    pub fn from_raw(raw: TaskConfig) -> Result<Self, sluice_api::ConfigErrors> {
        let raw = ConfigProviders::unrestricted().resolve(&raw)?;
        let validated = Self::config_def().validate(&raw)?;
        let rules = ConnectorRules {
            providers: ConfigProviders::from_worker(&raw)?,
            tasks_max_limit: limit(validated.int("tasks.max.limit"), 256),
            worker_tasks_limit: limit(validated.int("worker.tasks.limit"), 1024),
        };
        Ok(Self {
            raw,
            validated,
            rules,
        })
    }

    pub fn bootstrap_servers(&self) -> String {
        self.validated
            .list("bootstrap.servers")
            .unwrap_or_default()
            .join(",")
    }

    pub fn offset_file(&self) -> PathBuf {
        PathBuf::from(
            self.validated
                .string("offset.storage.file.filename")
                .unwrap_or("sluice.offsets.json"),
        )
    }

    pub fn offset_flush_interval(&self) -> Duration {
        millis(
            self.validated
                .long("offset.flush.interval.ms")
                .unwrap_or(60_000),
        )
    }

    pub fn graceful_timeout(&self) -> Duration {
        millis(
            self.validated
                .long("task.shutdown.graceful.timeout.ms")
                .unwrap_or(30_000),
        )
    }

    pub fn lag_refresh_interval(&self) -> Duration {
        millis(
            self.validated
                .long("metrics.lag.refresh.ms")
                .unwrap_or(5_000),
        )
    }

    pub fn progress_interval(&self) -> Option<Duration> {
        Some(millis(
            self.validated
                .long("progress.interval.ms")
                .unwrap_or(10_000),
        ))
        .filter(|d| !d.is_zero())
    }

    /// The longest wait before restarting a failed task, or `None` when failed
    /// tasks wait for a REST restart (`auto.restart.enable=false`).
    pub fn auto_restart_backoff_max(&self) -> Option<Duration> {
        self.validated
            .boolean("auto.restart.enable")
            .unwrap_or(true)
            .then(|| {
                millis(
                    self.validated
                        .long("auto.restart.backoff.max.ms")
                        .unwrap_or(60_000),
                )
            })
    }

    pub fn topic_creation_enable(&self) -> bool {
        self.validated
            .boolean("topic.creation.enable")
            .unwrap_or(true)
    }

    /// A raw key, such as a converter's default class or one of its settings.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.raw.get(key).map(String::as_str)
    }

    pub fn raw(&self) -> &TaskConfig {
        &self.raw
    }

    /// What connector configs on this worker may use and ask for.
    pub fn connector_rules(&self) -> &ConnectorRules {
        &self.rules
    }

    /// librdkafka settings for one client kind (`producer`, `consumer`, `admin`):
    /// the worker's own security settings, then the client's prefixed keys.
    pub fn client_settings(&self, kind: &str) -> Vec<(String, String)> {
        let prefix = format!("{kind}.");
        let mut out = vec![("bootstrap.servers".to_owned(), self.bootstrap_servers())];
        for (k, v) in &self.raw {
            if k == "security.protocol"
                || k.starts_with("sasl.")
                || k.starts_with("ssl.")
                || k == "client.id"
            {
                out.push((k.clone(), v.clone()));
            }
        }
        for (k, v) in &self.raw {
            if let Some(rest) = k.strip_prefix(&prefix) {
                out.push((rest.to_owned(), v.clone()));
            }
        }
        out
    }
}

fn limit(value: Option<i32>, default: usize) -> usize {
    value
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(default)
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn env_name(key: &str) -> String {
    let mut name = String::with_capacity(ENV_PREFIX.len() + key.len());
    name.push_str(ENV_PREFIX);
    name.extend(key.chars().map(|c| {
        if c == '.' || c == '-' {
            '_'
        } else {
            c.to_ascii_uppercase()
        }
    }));
    name
}

/// Applies `SLUICE_<KEY>` overrides. A variable names a key of the file or of the
/// worker's `ConfigDef` when its spelling matches; otherwise, under a client prefix
/// (`SLUICE_PRODUCER_LINGER_MS`), it becomes the dotted librdkafka key
/// (`producer.linger.ms`). Anything else is not ours and is left alone.
fn apply_env_overrides(
    raw: &mut TaskConfig,
    def: &ConfigDef,
    env: impl IntoIterator<Item = (String, String)>,
) {
    let mut known: Vec<String> = raw.keys().cloned().collect();
    known.extend(def.keys().iter().map(|k| k.name.clone()));
    for (name, value) in env {
        let Some(suffix) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if let Some(key) = known.iter().find(|k| env_name(k) == name) {
            raw.insert(key.clone(), value);
            continue;
        }
        let dotted = suffix.to_ascii_lowercase().replace('_', ".");
        if CLIENT_PREFIXES.iter().any(|p| dotted.starts_with(p)) {
            raw.insert(dotted, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmp(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("sluice-worker-config-{tag}-{}", std::process::id()))
    }

    #[test]
    fn env_overrides_known_and_client_keys() {
        let dir = tmp("env");
        let p = write(
            &dir,
            "w.json",
            r#"{"bootstrap.servers": "a:1", "offset.flush.interval.ms": 5000}"#,
        );
        let env = [
            ("SLUICE_BOOTSTRAP_SERVERS", "b:2,c:3"),
            ("SLUICE_OFFSET_FLUSH_INTERVAL_MS", "250"),
            ("SLUICE_PRODUCER_LINGER_MS", "20"),
            ("SLUICE_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("SLUICE_KAFKA_BOOTSTRAP", "ignored:1"),
            ("OTHER", "x"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let w = WorkerConfig::load(&p, env).unwrap();
        assert_eq!(w.bootstrap_servers(), "b:2,c:3");
        assert_eq!(w.offset_flush_interval(), Duration::from_millis(250));
        let producer = w.client_settings("producer");
        assert!(producer.contains(&("linger.ms".into(), "20".into())));
        assert!(producer.contains(&("sasl.mechanism".into(), "SCRAM-SHA-512".into())));
        assert!(w.get("kafka.bootstrap").is_none());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn bad_files_name_the_file_and_key() {
        let dir = tmp("bad");
        let p = write(&dir, "broken.json", "{\"bootstrap.servers\": ");
        let e = WorkerConfig::load(&p, []).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: not valid JSON", p.display())),
            "{e}"
        );
        let p = write(&dir, "missing.json", "{}");
        let e = WorkerConfig::load(&p, []).unwrap_err().to_string();
        assert!(e.contains("'bootstrap.servers': is required"), "{e}");
        let p = write(
            &dir,
            "type.json",
            r#"{"bootstrap.servers": "a:1", "offset.flush.interval.ms": "soon"}"#,
        );
        let e = WorkerConfig::load(&p, []).unwrap_err().to_string();
        assert!(
            e.contains("'offset.flush.interval.ms': invalid value 'soon'"),
            "{e}"
        );
        let p = write(&dir, "nested.json", r#"{"bootstrap.servers": ["a:1"]}"#);
        let e = WorkerConfig::load(&p, []).unwrap_err().to_string();
        assert!(e.contains("'bootstrap.servers': must be a string"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }
}
