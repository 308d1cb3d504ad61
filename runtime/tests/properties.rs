//! Property tests of the input a worker takes from outside: connector configs
//! (from any REST client) and the bytes its JSON converter reads from Kafka.
//! Whatever comes in, the answer is a value or an error naming what is wrong,
//! never a panic. Cases per property: `PROPTEST_CASES` (default 256); the
//! test command runs them as a bounded fuzz.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use sluice_api::{Converter, TaskConfig};
use sluice_runtime::config::{ConnectorRules, WorkerConfig};
use sluice_runtime::convert::JsonConverter;
use sluice_runtime::{ConnectorConfig, Plugins};

/// Keys a connector config is made of, and some it should not have.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("name".to_owned()),
        Just("connector.class".to_owned()),
        Just("tasks.max".to_owned()),
        Just("topics".to_owned()),
        Just("topics.regex".to_owned()),
        Just("transforms".to_owned()),
        Just("transforms.a.type".to_owned()),
        Just("transforms.a.predicate".to_owned()),
        Just("predicates".to_owned()),
        Just("errors.tolerance".to_owned()),
        Just("errors.retry.timeout".to_owned()),
        Just("errors.deadletterqueue.topic.name".to_owned()),
        Just("errors.deadletterqueue.topic.suffix".to_owned()),
        Just("task.retry.timeout.ms".to_owned()),
        Just("key.converter".to_owned()),
        "[a-z.]{1,20}",
        any::<String>(),
    ]
}

/// Values, with the shapes that have broken parsers before: provider
/// references, numbers at the edges, control characters.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("${env:HOME}".to_owned()),
        Just("${file:/etc/os-release:ID}".to_owned()),
        Just("abc${x}def".to_owned()),
        Just("${".to_owned()),
        Just("2147483648".to_owned()),
        Just("-1".to_owned()),
        Just("1000000".to_owned()),
        Just("a,b,,c".to_owned()),
        "[ -~]{0,30}",
        any::<String>(),
    ]
}

fn rules() -> ConnectorRules {
    let worker: TaskConfig = [
        ("bootstrap.servers", "127.0.0.1:9"),
        ("config.providers", "env"),
        (
            "config.providers.env.param.allowlist.pattern",
            "SLUICE_PROP_.*",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    WorkerConfig::from_raw(worker)
        .expect("a valid worker config")
        .connector_rules()
        .clone()
}

proptest! {
    #[test]
    fn any_connector_config_is_accepted_or_refused_by_key(
        pairs in proptest::collection::btree_map(key(), value(), 0..12)
    ) {
        let plugins = Plugins::new();
        match ConnectorConfig::from_written(pairs.clone(), &plugins, &rules()) {
            // No plugin is registered, so nothing can be valid.
            Ok(c) => prop_assert!(false, "accepted without a plugin: {}", c.name),
            Err(errors) => {
                prop_assert!(!errors.0.is_empty());
                for e in &errors.0 {
                    prop_assert!(!e.message.is_empty(), "{e:?}");
                    // An error names its key: the empty one only if it was given.
                    prop_assert!(pairs.contains_key(&e.key) || !e.key.is_empty(), "{e:?}");
                }
            }
        }
    }

    #[test]
    fn any_bytes_decode_or_fail_as_data_errors(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        schemas in any::<bool>(),
    ) {
        let mut c = JsonConverter::new(schemas, false, 16);
        let _ = c.decode("t", Some(&bytes));
    }

    #[test]
    fn json_documents_decode_and_encode_back_to_equal_json(doc in json_document(), schemas in any::<bool>()) {
        let text = doc.to_string();
        let mut c = JsonConverter::new(false, false, 16);
        let (schema, value) = c.decode("t", Some(text.as_bytes())).expect("plain JSON decodes");
        let bytes = c.encode("t", schema.as_ref(), &value).expect("a decoded value encodes");
        let back: serde_json::Value = serde_json::from_slice(&bytes.unwrap_or_default())
            .unwrap_or(serde_json::Value::Null);
        prop_assert_eq!(normalize(&back), normalize(&doc));
        // The same document inside an envelope with a made-up schema: a value
        // or an error, never a panic.
        let mut enveloped = JsonConverter::new(schemas, false, 16);
        let wrapped = serde_json::json!({"schema": doc.clone(), "payload": doc});
        let _ = enveloped.decode("t", Some(wrapped.to_string().as_bytes()));
    }
}

fn json_document() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        (-1e9f64..1e9).prop_map(|f| serde_json::json!(f)),
        any::<String>().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Integers and floats compare as numbers: 1.0 written back may read as 1.
fn normalize(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Number(n) => serde_json::json!(n.as_f64()),
        serde_json::Value::Array(a) => a.iter().map(normalize).collect(),
        serde_json::Value::Object(o) => o
            .iter()
            .map(|(k, v)| (k.clone(), normalize(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        other => other.clone(),
    }
}
