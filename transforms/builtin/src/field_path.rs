//! Connect's `SingleFieldPath`: a field name (`field.syntax.version=V1`) or a
//! dotted path into nested structs and maps with backtick quoting (`V2`).

use sluice_api::config::{ConfigKey, ConfigType, Validator};
use sluice_api::schema::{Field, Schema};
use sluice_api::{ConfigErrors, ConnectError, Value};

use crate::requirements::{map_required, struct_required};
use crate::schema_util::field_value;

pub(crate) const SYNTAX_KEY: &str = "field.syntax.version";

pub(crate) fn syntax_key() -> ConfigKey {
    ConfigKey::new(SYNTAX_KEY, ConfigType::String)
        .default("V1")
        .validator(Validator::OneOf(&["V1", "V2"]))
        .doc(
            "V1: field paths name a root-level field; V2: dotted paths reach nested fields, \
             with backticks around names containing dots.",
        )
}

#[derive(Debug, Clone)]
pub(crate) struct FieldPath {
    steps: Vec<String>,
}

impl FieldPath {
    pub(crate) fn new(path: &str, v2: bool) -> Result<Self, ConfigErrors> {
        if !v2 {
            return Ok(Self {
                steps: vec![path.to_owned()],
            });
        }
        let chars: Vec<char> = path.chars().collect();
        let find = |c: char, from: usize| {
            chars[from.min(chars.len())..]
                .iter()
                .position(|x| *x == c)
                .map(|p| p + from)
        };
        let incomplete = |at: usize| {
            ConfigErrors::single(
                SYNTAX_KEY,
                format!(
                    "Incomplete backtick pair in path: [{path}], consider adding a backslash \
                     before backtick at position {at} to escape it"
                ),
            )
        };
        let mut steps = Vec::new();
        let mut idx = 0;
        while idx < chars.len() {
            if chars[idx] != '`' {
                let start = idx;
                match find('.', idx) {
                    Some(dot) => {
                        steps.push(chars[start..dot].iter().collect());
                        idx = dot + 1;
                    }
                    None => {
                        steps.push(chars[start..].iter().collect());
                        idx = chars.len();
                    }
                }
            } else {
                let backtick_at = idx;
                idx += 1;
                let mut field = String::new();
                let mut start = idx;
                loop {
                    let Some(at) = find('`', idx) else {
                        return Err(incomplete(backtick_at));
                    };
                    idx = at;
                    let escaped = chars[idx - 1] == '\\';
                    if idx >= chars.len() - 1 {
                        if escaped {
                            return Err(incomplete(backtick_at));
                        }
                        field.extend(&chars[start..idx]);
                        steps.push(field);
                        idx += 1;
                        break;
                    }
                    if chars[idx + 1] != '.' {
                        idx += 1;
                        continue;
                    }
                    if escaped {
                        field.extend(&chars[start..idx - 1]);
                        field.push('`');
                        idx += 1;
                        start = idx;
                        continue;
                    }
                    field.extend(&chars[start..idx]);
                    steps.push(field);
                    idx += 2;
                    break;
                }
            }
        }
        if path.ends_with('.') {
            steps.push(String::new());
        }
        Ok(Self { steps })
    }

    fn split(&self) -> (&[String], &str) {
        match self.steps.split_last() {
            Some((last, init)) => (init, last),
            None => (&[], ""),
        }
    }

    /// `fieldFrom(schema)`: the field the path names, if any.
    pub(crate) fn field_from<'a>(
        &self,
        schema: &'a Schema,
    ) -> Result<Option<&'a Field>, ConnectError> {
        let (init, last) = self.split();
        let mut current = schema;
        for step in init {
            match lookup(current, step)? {
                Some(f) => current = &f.schema,
                None => return Ok(None),
            }
        }
        lookup(current, last)
    }

    /// `valueFrom(struct, withDefault)`.
    pub(crate) fn value_from_struct(
        &self,
        schema: &Schema,
        value: &Value,
        with_default: bool,
    ) -> Result<Value, ConnectError> {
        let (init, last) = self.split();
        let (mut schema, mut value) = (schema, value);
        for step in init {
            let Some(i) = schema.field_index(step) else {
                return Ok(Value::Null);
            };
            let f = &schema.fields()[i];
            let Value::Struct(values) = value else {
                return Ok(Value::Null);
            };
            let sub = &values[i];
            match sub {
                Value::Null => return Ok(Value::Null),
                Value::Struct(_) => {
                    schema = &f.schema;
                    value = sub;
                }
                other => {
                    return Err(struct_required(
                        other,
                        Some(&f.schema),
                        "nested field access",
                    ))
                }
            }
        }
        let Value::Struct(values) = value else {
            return Ok(Value::Null);
        };
        Ok(match schema.field_index(last) {
            Some(i) => field_value(&schema.fields()[i], &values[i], with_default),
            None => Value::Null,
        })
    }

    /// `valueFrom(map)`.
    pub(crate) fn value_from_map(&self, value: &Value) -> Result<Value, ConnectError> {
        let (init, last) = self.split();
        let mut current = value;
        for step in init {
            match current.map_get(step) {
                None | Some(Value::Null) => return Ok(Value::Null),
                Some(m @ Value::Map(_)) => current = m,
                Some(other) => return Err(map_required(other, "nested field access")),
            }
        }
        Ok(current.map_get(last).cloned().unwrap_or_default())
    }
}

/// `Schema.field(name)`, which fails on a schema that is not a struct.
pub(crate) fn lookup<'a>(
    schema: &'a Schema,
    name: &str,
) -> Result<Option<&'a Field>, ConnectError> {
    if !matches!(schema.schema_type, sluice_api::SchemaType::Struct(_)) {
        return Err(ConnectError::data(
            "Cannot look up fields on non-struct type",
        ));
    }
    Ok(schema.fields().iter().find(|f| f.name == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_paths_split_on_dots_outside_backticks() {
        let steps = |p: &str| FieldPath::new(p, true).unwrap().steps;
        assert_eq!(steps("a.b"), ["a", "b"]);
        assert_eq!(steps("`foo.bar`.baz"), ["foo.bar", "baz"]);
        assert_eq!(steps("a."), ["a", ""]);
        assert_eq!(FieldPath::new("a.b", false).unwrap().steps, ["a.b"]);
        assert!(FieldPath::new("`a.b", true).is_err());
    }
}
