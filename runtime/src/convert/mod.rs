//! The built-in converters, Kafka Connect's three: `json` (with or without the
//! `{"schema", "payload"}` envelope), `string` and `bytearray`. Each accepts its
//! Connect class name too, so Connect configs work unchanged.

mod bytearray;
mod json;
mod string;

pub use bytearray::ByteArrayConverter;
pub use json::{parse_json_value, JsonConverter};
pub use string::StringConverter;

use sluice_api::{ConfigErrors, Converter, TaskConfig};

/// The converter names the worker knows, with their Connect aliases.
pub const CONVERTERS: &[(&str, &[&str])] = &[
    ("json", &["org.apache.kafka.connect.json.JsonConverter"]),
    (
        "string",
        &["org.apache.kafka.connect.storage.StringConverter"],
    ),
    (
        "bytearray",
        &["org.apache.kafka.connect.converters.ByteArrayConverter"],
    ),
];

/// Builds a converter by name or Connect class; `config` holds its own keys with
/// the `key.converter.`/`value.converter.` prefix already removed.
pub fn build_converter(
    key: &str,
    class: &str,
    config: &TaskConfig,
    is_key: bool,
) -> Result<Box<dyn Converter>, ConfigErrors> {
    let name = CONVERTERS
        .iter()
        .find(|(name, aliases)| *name == class || aliases.contains(&class))
        .map(|(name, _)| *name);
    match name {
        Some("json") => Ok(Box::new(JsonConverter::configure(key, config, is_key)?)),
        Some("string") => Ok(Box::new(StringConverter)),
        Some("bytearray") => Ok(Box::new(ByteArrayConverter)),
        _ => Err(ConfigErrors::single(
            key,
            format!(
                "unknown converter '{class}'; known: {}",
                CONVERTERS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}
