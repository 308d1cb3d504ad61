//! The host against real guests (built from transforms/examples), without
//! services: limits, traps, isolation, bad modules, and the examples' work.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../tests/support/guests.rs"]
mod guests;

use std::path::Path;
use std::time::{Duration, Instant};

use guests::guest;
use sluice_api::schema::primitives;
use sluice_api::{ConnectError, Record, Schema, SchemaRef, TaskConfig, Transform, Value};
use sluice_wasm::{Limits, WasmTransform};

fn limits() -> Limits {
    Limits {
        memory_max_bytes: 32 << 20,
        timeout: Duration::from_millis(300),
    }
}

fn start(name: &str, config: &[(&str, &str)]) -> WasmTransform {
    WasmTransform::new(&guest(name), limits(), pairs(config)).expect("the guest starts")
}

fn pairs(config: &[(&str, &str)]) -> Vec<(String, String)> {
    config
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn text(topic: &str, value: &str) -> Record {
    Record::new(topic, Value::Null, Value::String(value.to_owned()))
}

fn event_schema() -> SchemaRef {
    Schema::struct_of([
        ("tenant_id", primitives::string()),
        ("api_key_id", primitives::string()),
        ("email", primitives::string()),
        ("latency_ms", primitives::int32()),
    ])
    .into_ref()
}

fn event(tenant: &str, key: &str, email: &str) -> Record {
    let mut r = Record::new(
        "events",
        Value::String(tenant.to_owned()),
        Value::Struct(vec![
            Value::String(tenant.to_owned()),
            Value::String(key.to_owned()),
            Value::String(email.to_owned()),
            Value::Int32(12),
        ]),
    );
    r.value_schema = Some(event_schema());
    r
}

fn messages(results: &[Result<Option<Record>, ConnectError>]) -> Vec<Option<String>> {
    results
        .iter()
        .map(|r| r.as_ref().err().map(|e| e.message().to_owned()))
        .collect()
}

#[test]
fn noop_keeps_every_record_exactly() {
    let mut t = start("noop", &[]);
    let mut records: Vec<Record> = (0..500)
        .map(|i| event(&format!("t{i}"), "k", "e"))
        .collect();
    records.push(text("lines", "plain text"));
    let mut bytes = Record::new("raw", Value::Bytes(vec![0, 159, 146, 150]), Value::Null);
    bytes.headers.push("h", Some(b"v".to_vec()));
    bytes.timestamp = Some(1_700_000_000_000);
    records.push(bytes);
    let out = t.apply_batch(records.clone());
    let out: Vec<Record> = out.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(out, records);
}

#[test]
fn mask_pii_masks_the_configured_fields_and_keeps_the_schema() {
    let mut t = start("mask-pii", &[("fields", "email,latency_ms")]);
    let out = t.apply_batch(vec![event("t1", "k1", "a@example.com")]);
    let r = out.into_iter().next().unwrap().unwrap().unwrap();
    assert_eq!(r.value_schema, Some(event_schema()));
    assert_eq!(
        r.value,
        Value::Struct(vec![
            Value::String("t1".into()),
            Value::String("k1".into()),
            Value::String("****".into()),
            Value::Int32(0),
        ])
    );
}

#[test]
fn mask_pii_keeps_json_text_as_text() {
    let mut t = start("mask-pii", &[("fields", "user.email")]);
    let line = r#"{"user":{"email":"a@example.com","id":4},"n":1}"#;
    let out = t.apply_batch(vec![text("lines", line), text("lines", "not json")]);
    let values: Vec<Value> = out.into_iter().map(|r| r.unwrap().unwrap().value).collect();
    assert_eq!(
        values,
        [r#"{"n":1,"user":{"email":"****","id":4}}"#, "not json"].map(|v| Value::String(v.into()))
    );
}

#[test]
fn tenant_router_rekeys_only_hot_tenants() {
    let mut t = start(
        "tenant-router",
        &[("hot.tenants", "tenant_00000, tenant_00001")],
    );
    let out = t.apply_batch(vec![
        event("tenant_00000", "key_a", "e"),
        event("tenant_00002", "key_b", "e"),
        event("tenant_00001", "key_c", "e"),
        text("lines", "{}"),
    ]);
    let keys: Vec<_> = out
        .iter()
        .take(3)
        .map(|r| r.as_ref().unwrap().as_ref().unwrap().key.clone())
        .collect();
    assert_eq!(
        keys,
        ["tenant_00000:key_a", "tenant_00002", "tenant_00001:key_c"]
            .map(|k| Value::String(k.into()))
    );
    let e = out[3].as_ref().unwrap_err();
    assert!(e.message().contains("has no 'tenant_id'"), "{e}");
}

#[test]
fn drop_test_traffic_drops_matching_records() {
    let mut t = start(
        "drop-test-traffic",
        &[("field", "tenant_id"), ("values", "test_tenant,qa")],
    );
    let out = t.apply_batch(vec![
        event("test_tenant", "k", "e"),
        event("real", "k", "e"),
        event("qa", "k", "e"),
    ]);
    let kept: Vec<bool> = out.iter().map(|r| r.as_ref().unwrap().is_some()).collect();
    assert_eq!(kept, [false, true, false]);
}

#[test]
fn a_guest_that_loops_forever_fails_its_batch_in_time_and_the_next_batch_runs() {
    let mut t = start("loop-forever", &[]);
    let began = Instant::now();
    let out = t.apply_batch(vec![text("t", "a"), text("t", "b")]);
    let took = began.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    for m in messages(&out) {
        assert!(m.unwrap().contains("longer than its time limit of 300 ms"));
    }
    // A fresh instance for the next batch, bounded the same way.
    let out = t.apply_batch(vec![text("t", "c")]);
    assert!(out[0].is_err());
}

#[test]
fn a_guest_that_allocates_without_bound_hits_its_memory_limit() {
    let mut t = start("allocate-forever", &[]);
    let out = t.apply_batch(vec![text("t", "a"), text("t", "b")]);
    for m in messages(&out) {
        let m = m.unwrap();
        assert!(m.contains("memory limit of 33554432 bytes"), "{m}");
    }
}

#[test]
fn a_trap_fails_only_the_records_that_trap() {
    let mut t = start("trap-some", &[]);
    let values = ["ok 1", "poison 2", "ok 3", "reject 4", "ok 5", "poison 6"];
    let out = t.apply_batch(values.iter().map(|v| text("t", v)).collect());
    let m = messages(&out);
    assert_eq!(m[0], None);
    assert_eq!(m[2], None);
    assert_eq!(m[4], None);
    for i in [1, 5] {
        let msg = m[i].as_deref().unwrap();
        assert!(msg.contains("the guest trapped"), "{msg}");
        assert!(
            msg.contains(&format!("poisoned record: {}", values[i])),
            "{msg}"
        );
    }
    let rejected = m[3].as_deref().unwrap();
    assert!(
        rejected.contains("the guest rejected the record: rejected record: reject 4"),
        "{rejected}"
    );
    let kept: Vec<Value> = out
        .into_iter()
        .filter_map(|r| r.ok().flatten())
        .map(|r| r.value)
        .collect();
    assert_eq!(
        kept,
        ["ok 1", "ok 3", "ok 5"].map(|v| Value::String(v.into()))
    );
    // The instance is healthy again afterwards.
    let out = t.apply_batch(vec![text("t", "ok 7")]);
    assert!(out[0].as_ref().unwrap().is_some());
}

#[test]
fn a_guest_that_traps_in_init_does_not_start() {
    let e = WasmTransform::new(&guest("trap-in-init"), limits(), Vec::new())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("init failed"), "{e}");
    assert!(e.contains("this guest always fails to start"), "{e}");
}

#[test]
fn a_guest_init_error_names_the_key() {
    let e = WasmTransform::new(&guest("mask-pii"), limits(), Vec::new())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("'fields' is required"), "{e}");
}

#[test]
fn a_missing_module_or_one_that_is_not_a_component_of_the_world_is_refused() {
    let e = WasmTransform::new(Path::new("/nonexistent/x.wasm"), limits(), Vec::new())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("cannot read WebAssembly module /nonexistent/x.wasm"),
        "{e}"
    );

    let dir = std::env::temp_dir().join(format!("sluice-wasm-host-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    let e = WasmTransform::new(&junk, limits(), Vec::new())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is not a WebAssembly component"), "{e}");

    // A core module (the smallest valid one) is wasm, but not a component.
    let core = dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let e = WasmTransform::new(&core, limits(), Vec::new())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is not a WebAssembly component"), "{e}");

    // A component of another world: an empty component exports neither init nor apply.
    let empty = dir.join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x0d\0\x01\0").unwrap();
    let e = WasmTransform::new(&empty, limits(), Vec::new())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("is not a component of the sluice:transform@0.3.0 world"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_plugin_validates_its_module_key() {
    let plugin = sluice_wasm::plugin();
    let mut config = TaskConfig::new();
    config.insert("module".into(), "/nonexistent/y.wasm".into());
    let errors = (plugin.config_def)().validate(&config).unwrap_err();
    let text = errors.to_string();
    assert!(text.contains("module"), "{text}");
    assert!(text.contains("cannot read WebAssembly module"), "{text}");
    config.insert("module".into(), guest("noop").display().to_string());
    assert!((plugin.config_def)().validate(&config).is_ok());
    config.insert("timeout.ms".into(), "0".into());
    let text = (plugin.config_def)()
        .validate(&config)
        .unwrap_err()
        .to_string();
    assert!(text.contains("timeout.ms"), "{text}");
}

#[test]
fn a_compiled_module_is_cached_on_disk_by_its_content() {
    use sha2::{Digest, Sha256};
    // The noop guest with a custom section that makes its content new to the
    // cache, so the artifact found below is this run's.
    let mut bytes = std::fs::read(guest("noop")).unwrap();
    let stamp = format!("{}-{:?}", std::process::id(), Instant::now());
    let name = b"sluice-test";
    let size = 1 + name.len() + stamp.len();
    assert!(size < 128, "one-byte LEB sizes");
    bytes.push(0);
    bytes.push(size as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(stamp.as_bytes());
    let dir = std::env::temp_dir().join(format!("sluice-wasm-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("stamped.wasm");
    std::fs::write(&module, &bytes).unwrap();

    let mut t = WasmTransform::new(&module, limits(), Vec::new()).unwrap();
    assert!(t.apply_batch(vec![text("t", "x")])[0].is_ok());

    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cache = std::env::var_os("SLUICE_WASM_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/sluice/wasm")
        });
    let cached: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&hex))
        .collect();
    assert_eq!(
        cached.len(),
        1,
        "one artifact for {hex} in {}",
        cache.display()
    );
    assert!(cached[0].file_name().to_string_lossy().ends_with(".cwasm"));
    std::fs::remove_file(cached[0].path()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_guest_that_loses_count_of_its_records_fails_the_whole_batch() {
    let mut t = start("wrong-count", &[]);
    let out = t.apply_batch(vec![text("t", "a"), text("t", "b"), text("t", "c")]);
    assert_eq!(out.len(), 3);
    for m in messages(&out) {
        let m = m.unwrap();
        assert!(
            m.contains("the guest returned 0 outcomes for 3 records"),
            "{m}"
        );
    }
}
