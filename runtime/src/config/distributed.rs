//! The keys a distributed worker adds to the worker config, with Connect's
//! names: the cluster (`group.id`), its three internal topics, and the group
//! membership timings. Standalone ignores them; `sluice distributed` requires
//! the group and the topics, as Connect does.

use std::time::Duration;

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::ConfigErrors;

use super::WorkerConfig;

/// Connect's default replication factor of the internal topics; capped at the
/// broker count when the topics are created, so a one-broker development
/// cluster works unchanged.
const DEFAULT_REPLICATION: &str = "3";

/// One internal topic as the worker wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    pub name: String,
    pub partitions: i32,
    /// `-1` asks for the broker's default.
    pub replication_factor: i32,
}

/// A distributed worker's cluster settings.
#[derive(Debug, Clone)]
pub struct DistributedConfig {
    pub group_id: String,
    /// Connector configs, task configs, target states, restarts and offset
    /// resets, in one total order: always one partition.
    pub config_topic: InternalTopic,
    pub offset_topic: InternalTopic,
    pub status_topic: InternalTopic,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub rebalance_timeout: Duration,
    /// How long a departed worker's tasks wait for it to come back before
    /// they move, on top of the session timeout (Connect: five minutes by
    /// default; sluice: none).
    pub scheduled_rebalance_max_delay: Duration,
    /// How long a worker waits to catch up with the config topic before it
    /// gives up its assignment and rejoins.
    pub worker_sync_timeout: Duration,
}

/// The distributed keys, for the worker config's definition.
pub(super) fn define(def: ConfigDef) -> ConfigDef {
    let topic = |def: ConfigDef, key: &str, what: &str, partitions: Option<&str>| {
        let def = def
            .define(
                ConfigKey::new(format!("{key}.storage.topic"), ConfigType::String)
                    .optional()
                    .importance(Importance::High)
                    .doc(format!("Distributed mode: the compacted topic that holds {what}; created if missing.")),
            )
            .define(
                ConfigKey::new(format!("{key}.storage.replication.factor"), ConfigType::Int)
                    .default(DEFAULT_REPLICATION)
                    .validator(Validator::at_least(-1.0))
                    .doc(format!("Distributed mode: replication factor of the {key} topic when the worker creates it (-1: the broker's default; capped at the broker count).")),
            );
        match partitions {
            Some(default) => def.define(
                ConfigKey::new(format!("{key}.storage.partitions"), ConfigType::Int)
                    .default(default)
                    .validator(Validator::at_least(-1.0))
                    .doc(format!("Distributed mode: partitions of the {key} topic when the worker creates it (-1: the broker's default).")),
            ),
            None => def,
        }
    };
    let def = def.define(
        ConfigKey::new("group.id", ConfigType::String)
            .optional()
            .importance(Importance::High)
            .doc("Distributed mode: the cluster this worker belongs to; workers with the same group.id share connectors."),
    );
    let def = topic(
        def,
        "config",
        "connector configs, task configs and target states (one partition)",
        None,
    );
    let def = topic(def, "offset", "source offsets", Some("25"));
    let def = topic(def, "status", "connector and task states", Some("5"));
    let ms = |def: ConfigDef, key: &str, default: &str, doc: &str| {
        def.define(
            ConfigKey::new(key, ConfigType::Int)
                .default(default)
                .validator(Validator::at_least(0.0))
                .doc(doc.to_owned()),
        )
    };
    let def = ms(def, "session.timeout.ms", "10000", "Distributed mode: a worker not heard from for this long leaves the group, and its tasks move.");
    let def = ms(def, "heartbeat.interval.ms", "3000", "Distributed mode: how often a worker tells the group it is alive; well below session.timeout.ms.");
    let def = ms(
        def,
        "rebalance.timeout.ms",
        "60000",
        "Distributed mode: how long a rebalance waits for every worker to rejoin.",
    );
    let def = ms(def, "scheduled.rebalance.max.delay.ms", "0", "Distributed mode: how long a departed worker's tasks wait for it to come back before they move, on top of session.timeout.ms. A worker back within the wait (the same advertised REST host and port) gets its tasks back, none moved; a dead one's tasks run again only after it. Connect waits up to 300000 (five minutes); sluice's default moves them once the session times out.");
    ms(def, "worker.sync.timeout.ms", "3000", "Distributed mode: how long a worker waits to read the config topic to its end before it gives up its assignment and rejoins.")
}

impl DistributedConfig {
    /// The distributed settings of `worker`, every missing or contradictory
    /// key at once.
    pub fn from_worker(worker: &WorkerConfig) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let mut required = |key: &str| match worker.get(key).filter(|v| !v.trim().is_empty()) {
            Some(v) => v.to_owned(),
            None => {
                errors.push(key, "is required in distributed mode");
                String::new()
            }
        };
        let group_id = required("group.id");
        let names = ["config", "offset", "status"].map(|k| required(&format!("{k}.storage.topic")));
        let number = |key: &str, default: i64| {
            worker
                .get(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(default)
        };
        let ms = |key: &str, default: i64| {
            Duration::from_millis(u64::try_from(number(key, default)).unwrap_or(0))
        };
        let topic = |name: &str, key: &str, partitions: i64| InternalTopic {
            name: name.to_owned(),
            partitions: i32::try_from(partitions).unwrap_or(-1),
            replication_factor: i32::try_from(number(
                &format!("{key}.storage.replication.factor"),
                3,
            ))
            .unwrap_or(-1),
        };
        let [config, offset, status] = &names;
        let config = Self {
            config_topic: topic(config, "config", 1),
            offset_topic: topic(offset, "offset", number("offset.storage.partitions", 25)),
            status_topic: topic(status, "status", number("status.storage.partitions", 5)),
            group_id,
            session_timeout: ms("session.timeout.ms", 10_000),
            heartbeat_interval: ms("heartbeat.interval.ms", 3_000),
            rebalance_timeout: ms("rebalance.timeout.ms", 60_000),
            scheduled_rebalance_max_delay: ms("scheduled.rebalance.max.delay.ms", 0),
            worker_sync_timeout: ms("worker.sync.timeout.ms", 3_000),
        };
        let mut seen = std::collections::BTreeSet::new();
        for (key, name) in [
            ("config.storage.topic", config.config_topic.name.as_str()),
            ("offset.storage.topic", config.offset_topic.name.as_str()),
            ("status.storage.topic", config.status_topic.name.as_str()),
        ] {
            if !name.is_empty() && !seen.insert(name) {
                errors.push(
                    key,
                    format!("'{name}' is already another internal topic; each needs its own"),
                );
            }
        }
        if config.heartbeat_interval >= config.session_timeout {
            errors.push(
                "heartbeat.interval.ms",
                "must be below session.timeout.ms, or a live worker is taken for dead",
            );
        }
        if errors.0.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(pairs: &[(&str, &str)]) -> WorkerConfig {
        let mut raw: sluice_api::TaskConfig = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        raw.insert("bootstrap.servers".into(), "localhost:9092".into());
        WorkerConfig::from_raw(raw).unwrap()
    }

    #[test]
    fn connects_keys_with_low_failover_defaults() {
        let c = DistributedConfig::from_worker(&worker(&[
            ("group.id", "g"),
            ("config.storage.topic", "c"),
            ("offset.storage.topic", "o"),
            ("status.storage.topic", "s"),
            ("offset.storage.partitions", "3"),
        ]))
        .unwrap();
        assert_eq!(c.config_topic.partitions, 1);
        assert_eq!(c.offset_topic.partitions, 3);
        assert_eq!(c.status_topic.partitions, 5);
        assert_eq!(c.offset_topic.replication_factor, 3);
        assert_eq!(c.session_timeout, Duration::from_secs(10));
        assert_eq!(c.scheduled_rebalance_max_delay, Duration::ZERO);
    }

    #[test]
    fn missing_and_shared_topics_are_named() {
        let e = DistributedConfig::from_worker(&worker(&[
            ("config.storage.topic", "t"),
            ("offset.storage.topic", "t"),
            ("session.timeout.ms", "3000"),
        ]))
        .unwrap_err()
        .to_string();
        for needle in [
            "group.id",
            "status.storage.topic",
            "'t' is already another internal topic",
            "heartbeat.interval.ms",
        ] {
            assert!(e.contains(needle), "{needle} not in {e}");
        }
    }
}
