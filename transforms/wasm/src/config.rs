//! The `Wasm` transform's keys and its plugin entry.

use std::path::Path;
use std::time::Duration;

use sluice_api::{
    ConfigDef, ConfigKey, ConfigType, ConnectError, Importance, TaskConfig, TransformPlugin,
    Validator,
};

use crate::guest::{Limits, Module};
use crate::transform::WasmTransform;

const MODULE: &str = "module";
const MEMORY_MAX_BYTES: &str = "memory.max.bytes";
const TIMEOUT_MS: &str = "timeout.ms";
const DEFAULT_MEMORY_MAX_BYTES: u64 = 64 << 20;
const DEFAULT_TIMEOUT_MS: u64 = 5_000;

/// Keys the host reads or the runtime owns; the guest's `init` gets the rest.
const HOST_KEYS: &[&str] = &[
    MODULE,
    MEMORY_MAX_BYTES,
    TIMEOUT_MS,
    "type",
    "predicate",
    "negate",
];

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_max_bytes: DEFAULT_MEMORY_MAX_BYTES as usize,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
        }
    }
}

/// `transforms.<alias>.type=io.sluice.transforms.Wasm` (or `Wasm`).
pub fn plugin() -> TransformPlugin {
    TransformPlugin {
        name: "Wasm",
        aliases: &["io.sluice.transforms.Wasm"],
        config_def,
        create: |c| Ok(Box::new(create(c)?)),
    }
}

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new(MODULE, ConfigType::String)
                .importance(Importance::High)
                .validator(Validator::Custom(check_module))
                .doc("Path of the WebAssembly component (a wasm32-wasip2 build of the sluice:transform@0.3.0 world)."),
        )
        .define(
            ConfigKey::new(MEMORY_MAX_BYTES, ConfigType::Long)
                .default(DEFAULT_MEMORY_MAX_BYTES.to_string())
                .validator(Validator::between(65_536.0, 4_294_967_296.0))
                .doc("Most linear memory one instance may grow to; a batch that needs more fails its records."),
        )
        .define(
            ConfigKey::new(TIMEOUT_MS, ConfigType::Long)
                .default(DEFAULT_TIMEOUT_MS.to_string())
                .validator(Validator::at_least(1.0))
                .doc("Longest one call into the guest (one batch) may run; a batch that runs longer fails its records."),
        )
}

/// Validation's check: the file exists and holds a component of this world.
/// (Its `init` runs when the transform is built, with all its keys.)
fn check_module(path: &str) -> Result<(), String> {
    Module::load(Path::new(path.trim()), Limits::default(), Vec::new())
        .map(drop)
        .map_err(|e| e.to_string())
}

fn create(config: &TaskConfig) -> Result<WasmTransform, ConnectError> {
    let validated = config_def().validate(config)?;
    let path = validated.string(MODULE).unwrap_or_default();
    let limits = Limits {
        memory_max_bytes: validated
            .long(MEMORY_MAX_BYTES)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(DEFAULT_MEMORY_MAX_BYTES as usize),
        timeout: Duration::from_millis(
            validated
                .long(TIMEOUT_MS)
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(DEFAULT_TIMEOUT_MS),
        ),
    };
    let guest_config = config
        .iter()
        .filter(|(k, _)| !HOST_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    WasmTransform::new(Path::new(path), limits, guest_config)
        .map_err(|e| ConnectError::new(sluice_api::ErrorKind::Config, e.to_string()))
}
