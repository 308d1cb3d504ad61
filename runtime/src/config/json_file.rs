use std::path::Path;

use sluice_api::TaskConfig;

use super::ConfigFileError;

/// Reads a file that must hold one JSON object.
pub fn read_json_object(
    path: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, ConfigFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: shown.clone(),
        source,
    })?;
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(ConfigFileError::Shape {
            path: shown,
            message: "must hold a JSON object".into(),
        }),
        Err(source) => Err(ConfigFileError::Parse {
            path: shown,
            source,
        }),
    }
}

/// Turns a JSON object into Connect's string map. Numbers and booleans are
/// accepted and written as text, as Connect's REST API does; nested objects and
/// arrays are an error naming the key.
pub fn object_to_config(
    object: &serde_json::Map<String, serde_json::Value>,
    path: &str,
) -> Result<TaskConfig, ConfigFileError> {
    let mut out = TaskConfig::new();
    for (key, value) in object {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => continue,
            _ => {
                return Err(ConfigFileError::Shape {
                    path: path.to_owned(),
                    message: format!("'{key}': must be a string, number or boolean"),
                })
            }
        };
        out.insert(key.clone(), text);
    }
    Ok(out)
}
