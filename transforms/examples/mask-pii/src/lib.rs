//! Masks configured fields of JSON record values, as Kafka Connect's MaskField
//! does for structs: strings become `replacement`, numbers 0, booleans false.
//!
//! Keys: `fields` (comma-separated dotted paths, required), `replacement`
//! (default `****`). A value that is not a JSON object passes unchanged; one
//! that came as JSON text (a string or bytes) goes back in that form.

use serde_json::Value;
use sluice_transform::{json, list, Config, Outcome, Reads, Record, Transform};

struct MaskPii {
    fields: Vec<String>,
    replacement: String,
}

impl Transform for MaskPii {
    fn init(config: &Config) -> Result<Self, String> {
        let fields = list(config, "fields");
        if fields.is_empty() {
            return Err("'fields' is required: the dotted paths of the fields to mask".into());
        }
        let replacement = config
            .get("replacement")
            .cloned()
            .unwrap_or_else(|| "****".into());
        Ok(MaskPii {
            fields,
            replacement,
        })
    }

    fn reads(&self) -> Reads {
        Reads::VALUE
    }

    fn apply(&mut self, mut record: Record) -> Outcome {
        let Some(mut value) = record.value.to_json().filter(Value::is_object) else {
            return Outcome::Unchanged;
        };
        for path in &self.fields {
            if let Some(field) = json::field_mut(&mut value, path) {
                match field {
                    Value::String(_) => *field = Value::String(self.replacement.clone()),
                    Value::Number(_) => *field = Value::from(0),
                    Value::Bool(_) => *field = Value::Bool(false),
                    _ => {}
                }
            }
        }
        record.value = record.value.replaced_with(&value);
        Outcome::Keep(record)
    }
}

sluice_transform::export!(MaskPii);
