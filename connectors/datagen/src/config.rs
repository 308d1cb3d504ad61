use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};

pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("kafka.topic", ConfigType::String)
                .default("api-usage-events.v1")
                .importance(Importance::High)
                .validator(Validator::NonEmpty)
                .doc("Topic to write the events to."),
        )
        .define(
            ConfigKey::new("max.records", ConfigType::Long)
                .default("0")
                .validator(Validator::at_least(0.0))
                .doc("Events to generate in all (split between tasks); 0 runs forever."),
        )
        .define(
            ConfigKey::new("records.per.second", ConfigType::Long)
                .default("0")
                .validator(Validator::at_least(0.0))
                .doc("Rate limit per task; 0 generates as fast as Kafka takes them."),
        )
        .define(
            ConfigKey::new("batch.size", ConfigType::Int)
                .default("1000")
                .validator(Validator::between(1.0, 100_000.0))
                .doc("Events per poll."),
        )
        .define(
            ConfigKey::new("seed", ConfigType::Long)
                .default("42")
                .doc("Seed of the generator: the same seed gives the same events."),
        )
        .define(
            ConfigKey::new("tenants", ConfigType::Int)
                .default("1000")
                .validator(Validator::at_least(1.0))
                .doc("Distinct tenants."),
        )
        .define(
            ConfigKey::new("hot.tenants", ConfigType::Int)
                .default("3")
                .validator(Validator::at_least(0.0))
                .doc("How many tenants are hot (seed: more than 10% of traffic each)."),
        )
        .define(
            ConfigKey::new("hot.tenant.share", ConfigType::Double)
                .default("0.3")
                .validator(Validator::between(0.0, 1.0))
                .doc("Share of all events that come from the hot tenants."),
        )
        .define(
            ConfigKey::new("hot.tenant.composite.key", ConfigType::Boolean)
                .default("true")
                .doc("Key hot tenants' events by tenant_id:api_key_id to spread them (seed \"Handling Hot Tenants\")."),
        )
}
