//! Every plugin this binary ships. A new connector or transform is one line here.

use sluice_runtime::Plugins;

pub fn builtin() -> Plugins {
    let mut plugins = Plugins::new()
        .connector_plugin(sluice_datagen::plugin())
        .connector_plugin(sluice_file::sink_plugin())
        .connector_plugin(sluice_file::source_plugin())
        .connector_plugin(sluice_s3::plugin())
        .connector_plugin(sluice_postgres_cdc::plugin())
        .connector_plugin(sluice_elasticsearch::plugin())
        .connector_plugin(sluice_warehouse::plugin());
    for t in sluice_transforms::transforms() {
        plugins = plugins.transform_plugin(t);
    }
    plugins = plugins.transform_plugin(sluice_wasm::plugin());
    for p in sluice_transforms::predicates() {
        plugins = plugins.predicate_plugin(p);
    }
    plugins
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_api::schema::{primitives, Schema};
    use sluice_api::{Record, Value};
    use sluice_runtime::config::{object_to_config, ConnectorConfig, ConnectorRules};
    use sluice_runtime::transforms::TransformChain;

    use super::builtin;

    /// The seed's "Single Message Transforms" examples, verbatim.
    const SEED_SMTS: [&str; 4] = [
        r#"{
  "transforms": "route",
  "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
  "transforms.route.regex": ".*",
  "transforms.route.replacement": "prefix-$0"
}"#,
        r#"{
  "transforms": "maskPII",
  "transforms.maskPII.type": "org.apache.kafka.connect.transforms.MaskField$Value",
  "transforms.maskPII.fields": "ssn,credit_card"
}"#,
        r#"{
  "transforms": "insertTimestamp",
  "transforms.insertTimestamp.type": "org.apache.kafka.connect.transforms.InsertField$Value",
  "transforms.insertTimestamp.timestamp.field": "processed_at"
}"#,
        r#"{
  "transforms": "filter",
  "transforms.filter.type": "org.apache.kafka.connect.transforms.Filter",
  "transforms.filter.condition": "$[?(@.status == 'active')]"
}"#,
    ];

    /// A sink connector carrying one of the seed's transform configs.
    fn chain(seed: &str) -> TransformChain {
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(seed).unwrap();
        for (k, v) in [
            ("name", "seed-smt"),
            ("connector.class", "FileStreamSink"),
            ("topics", "payments"),
            ("file", "/dev/null"),
        ] {
            object.insert(k.to_owned(), v.into());
        }
        let written = object_to_config(&object, "seed").unwrap();
        let plugins = builtin();
        let config =
            ConnectorConfig::from_written(written, &plugins, &ConnectorRules::default()).unwrap();
        TransformChain::build(&config, &plugins).unwrap()
    }

    fn payment(status: &str) -> Record {
        let schema = Schema::struct_of([
            ("id", primitives::int32()),
            ("ssn", primitives::string()),
            ("credit_card", primitives::string()),
            ("status", primitives::string()),
        ])
        .into_ref();
        Record {
            topic: Arc::from("payments"),
            partition: Some(0),
            offset: Some(7),
            timestamp: Some(1_700_000_000_000),
            value_schema: Some(schema),
            value: Value::Struct(vec![
                Value::Int32(1),
                "123-45-6789".into(),
                "4111111111111111".into(),
                status.into(),
            ]),
            ..Record::default()
        }
    }

    fn field<'a>(r: &'a Record, name: &str) -> &'a Value {
        let schema = r.value_schema.as_ref().unwrap();
        let Value::Struct(values) = &r.value else {
            panic!("not a struct: {:?}", r.value)
        };
        &values[schema.field_index(name).unwrap()]
    }

    #[test]
    fn the_seed_transform_examples_run_as_written() {
        let records = || vec![payment("active"), payment("inactive")];

        let (out, failed) = chain(SEED_SMTS[0]).apply(records());
        assert!(failed.is_empty());
        let topics: Vec<&str> = out.iter().map(|r| &*r.topic).collect();
        assert_eq!(topics, ["prefix-payments", "prefix-payments"]);

        let (out, failed) = chain(SEED_SMTS[1]).apply(records());
        assert!(failed.is_empty());
        for r in &out {
            assert_eq!(field(r, "ssn"), &Value::from(""));
            assert_eq!(field(r, "credit_card"), &Value::from(""));
            assert_eq!(field(r, "id"), &Value::Int32(1));
        }

        let (out, failed) = chain(SEED_SMTS[2]).apply(records());
        assert!(failed.is_empty());
        assert_eq!(out.len(), 2);
        for r in &out {
            assert_eq!(field(r, "processed_at"), &Value::Int64(1_700_000_000_000));
        }

        let (out, failed) = chain(SEED_SMTS[3]).apply(records());
        assert!(failed.is_empty());
        assert_eq!(out.len(), 1, "only the active payment is kept");
        assert_eq!(field(&out[0], "status"), &Value::from("active"));
    }
}
