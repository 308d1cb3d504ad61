//! Masks configured value fields, as Kafka Connect's MaskField does: strings
//! become `replacement`, numbers 0, booleans false; other fields (structs,
//! arrays, bytes, nulls) stay.
//!
//! Keys: `fields` (comma-separated dotted paths, required), `replacement`
//! (default `****`). It reads only those fields: of a structured value the host
//! sends them alone, typed, and takes the masked ones back as edits (the
//! record keeps its schema); a value that is JSON text (a string or bytes) is
//! masked in the text. A value with none of the fields passes unchanged.

use sluice_transform::{list, Config, Field, Outcome, Reads, Record, Transform};

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
        Reads::value_fields(&self.fields)
    }

    fn apply(&mut self, mut record: Record) -> Outcome {
        let mut masked_any = false;
        for i in 0..self.fields.len() {
            let masked = match record.field(i) {
                Some(Field::Text(_)) => Field::Text(self.replacement.clone()),
                Some(Field::Int(_)) => Field::Int(0),
                Some(Field::Float(_)) => Field::Float(0.0),
                Some(Field::Boolean(_)) => Field::Boolean(false),
                _ => continue,
            };
            record.set_field(i, masked);
            masked_any = true;
        }
        if masked_any {
            Outcome::Keep(record)
        } else {
            Outcome::Unchanged
        }
    }
}

sluice_transform::export!(MaskPii);
