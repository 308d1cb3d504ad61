//! `Flatten$Value` / `$Key`: nested structs (with a schema) or maps (without)
//! become top-level fields named by joining the path with `delimiter`.

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType};
use sluice_api::schema::{Field, Schema, SchemaType};
use sluice_api::{ConnectError, Record, TaskConfig, Transform, Value};

use crate::java::class_string;
use crate::requirements::{map_required, struct_required};
use crate::schema_util::{copy_basics, SchemaCache};
use crate::side::{put, side_plugins, take, Side};
use crate::validate::type_name;

const PURPOSE: &str = "flattening";

fn config_def() -> ConfigDef {
    ConfigDef::new().define(
        ConfigKey::new("delimiter", ConfigType::String)
            .default(".")
            .doc(
                "Delimiter to insert between field names from the input record when generating \
                 field names for the output record",
            ),
    )
}

side_plugins!("Flatten", Flatten);

struct Flatten {
    side: Side,
    delimiter: String,
    schemas: SchemaCache,
}

impl Flatten {
    fn new(config: &TaskConfig, side: Side) -> Result<Self, ConnectError> {
        let c = config_def().validate(config)?;
        Ok(Self {
            side,
            delimiter: c.string("delimiter").unwrap_or(".").to_owned(),
            schemas: SchemaCache::default(),
        })
    }

    fn name(&self, prefix: &str, field: &str) -> String {
        if prefix.is_empty() {
            field.to_owned()
        } else {
            format!("{prefix}{}{field}", self.delimiter)
        }
    }

    fn flatten_map(
        &self,
        entries: Vec<(Value, Value)>,
        prefix: &str,
        out: &mut Vec<(Value, Value)>,
    ) -> Result<(), ConnectError> {
        for (k, v) in entries {
            let key = match &k {
                Value::String(s) => s.clone(),
                other => crate::java::convert_to_string(None, other).unwrap_or_default(),
            };
            let name = self.name(prefix, &key);
            match v {
                Value::Map(inner) => self.flatten_map(inner, &name, out)?,
                Value::Struct(_) => {
                    return Err(ConnectError::data(format!(
                        "Flatten transformation does not support {} for record without schemas \
                         (for field {name}).",
                        class_string(&v, None)
                    )))
                }
                Value::Decimal(_) => {
                    return Err(ConnectError::data(format!(
                        "Flatten transformation was passed a value of type {} which is not \
                         supported by Connect's data API",
                        class_string(&v, None)
                    )))
                }
                other => crate::insert_field::set_entry(out, &name, other),
            }
        }
        Ok(())
    }

    fn flatten_schema(
        &self,
        schema: &Schema,
        prefix: &str,
        optional: bool,
        parent_default: Option<&Value>,
        out: &mut Vec<Field>,
    ) -> Result<(), ConnectError> {
        for (i, f) in schema.fields().iter().enumerate() {
            let name = self.name(prefix, &f.name);
            let field_optional = optional || f.schema.optional;
            let default = f.schema.default.clone().or_else(|| match parent_default {
                Some(Value::Struct(values)) => values.get(i).cloned().filter(|v| !v.is_null()),
                _ => None,
            });
            match &f.schema.schema_type {
                SchemaType::Struct(_) => {
                    self.flatten_schema(&f.schema, &name, field_optional, default.as_ref(), out)?
                }
                SchemaType::Map(..) => {
                    return Err(ConnectError::data(format!(
                        "Flatten transformation does not support {} for record with schemas \
                         (for field {name}).",
                        type_name(&f.schema)
                    )))
                }
                _ => {
                    let mut s = copy_basics(&f.schema, f.schema.schema_type.clone());
                    s.optional = field_optional;
                    s.default = default;
                    crate::schema_util::push_field(out, &name, s.into_ref())?;
                }
            }
        }
        Ok(())
    }
}

/// The leaf values of a struct in schema order, nested structs inlined; a
/// null nested struct leaves its fields unset (null).
fn flatten_values(schema: &Schema, value: &Value, out: &mut Vec<Value>) {
    let values = match value {
        Value::Struct(values) => Some(values),
        _ => None,
    };
    for (i, f) in schema.fields().iter().enumerate() {
        let v = values.and_then(|vs| vs.get(i)).unwrap_or(&Value::Null);
        match &f.schema.schema_type {
            SchemaType::Struct(_) => flatten_values(&f.schema, v, out),
            _ => out.push(match (v, &f.schema.default) {
                (Value::Null, Some(d)) => d.clone(),
                _ => v.clone(),
            }),
        }
    }
}

impl Transform for Flatten {
    fn apply(&mut self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = take(&mut record, self.side);
        if value.is_null() {
            put(&mut record, self.side, schema, value);
            return Ok(Some(record));
        }
        let (schema, value) = match schema {
            None => {
                let Value::Map(entries) = value else {
                    return Err(map_required(&value, PURPOSE));
                };
                let mut out = Vec::with_capacity(entries.len());
                self.flatten_map(entries, "", &mut out)?;
                (None, Value::Map(out))
            }
            Some(schema) => {
                if !matches!(value, Value::Struct(_)) {
                    return Err(struct_required(&value, Some(&schema), PURPOSE));
                }
                // Taken out so the build can read `self` on a cache miss only.
                let mut cache = std::mem::take(&mut self.schemas);
                let out = cache.get_or_build(&schema, |s| {
                    let mut fields = Vec::new();
                    self.flatten_schema(s, "", s.optional, s.default.as_ref(), &mut fields)?;
                    Ok(copy_basics(s, SchemaType::Struct(fields)))
                });
                self.schemas = cache;
                let out = out?;
                let mut values = Vec::with_capacity(out.fields().len());
                flatten_values(&schema, &value, &mut values);
                for (f, v) in out.fields().iter().zip(&values) {
                    crate::validate::check(&f.schema, v, Some(&f.name))?;
                }
                (Some(out), Value::Struct(values))
            }
        };
        put(&mut record, self.side, schema, value);
        Ok(Some(record))
    }
}
