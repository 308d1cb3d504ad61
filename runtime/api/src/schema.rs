//! Kafka Connect's schema model: the optional description that travels with a
//! [`Value`](crate::Value), including Connect's logical types.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::value::Value;

/// Schemas are shared between records; cloning one is a reference-count bump.
pub type SchemaRef = Arc<Schema>;

pub const DECIMAL_NAME: &str = "org.apache.kafka.connect.data.Decimal";
pub const DATE_NAME: &str = "org.apache.kafka.connect.data.Date";
pub const TIME_NAME: &str = "org.apache.kafka.connect.data.Time";
pub const TIMESTAMP_NAME: &str = "org.apache.kafka.connect.data.Timestamp";
/// The schema parameter that carries a Decimal's scale, as Connect names it.
pub const DECIMAL_SCALE_PARAM: &str = "scale";

/// The physical type of a schema.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array(SchemaRef),
    Map(SchemaRef, SchemaRef),
    /// Fields in order; a struct [`Value`] holds one value per field, in this order.
    Struct(Vec<Field>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub schema: SchemaRef,
}

/// Connect's logical types, identified by schema name as Connect does.
///
/// Their values: `Decimal` is [`Value::Decimal`]; `Date` is `Int32` days since the
/// epoch; `Time` is `Int32` milliseconds since midnight; `Timestamp` is `Int64`
/// milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicalType {
    Decimal { scale: i32 },
    Date,
    Time,
    Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub schema_type: SchemaType,
    pub optional: bool,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    pub parameters: BTreeMap<String, String>,
    pub default: Option<Value>,
}

impl Schema {
    pub fn new(schema_type: SchemaType) -> Self {
        Self {
            schema_type,
            optional: false,
            name: None,
            version: None,
            doc: None,
            parameters: BTreeMap::new(),
            default: None,
        }
    }

    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn into_ref(self) -> SchemaRef {
        Arc::new(self)
    }

    pub fn struct_of(fields: impl IntoIterator<Item = (impl Into<String>, SchemaRef)>) -> Self {
        Self::new(SchemaType::Struct(
            fields
                .into_iter()
                .map(|(name, schema)| Field {
                    name: name.into(),
                    schema,
                })
                .collect(),
        ))
    }

    pub fn decimal(scale: i32) -> Self {
        let mut s = Self::new(SchemaType::Bytes).named(DECIMAL_NAME);
        s.parameters
            .insert(DECIMAL_SCALE_PARAM.to_owned(), scale.to_string());
        s
    }

    pub fn date() -> Self {
        Self::new(SchemaType::Int32).named(DATE_NAME)
    }

    pub fn time() -> Self {
        Self::new(SchemaType::Int32).named(TIME_NAME)
    }

    pub fn timestamp() -> Self {
        Self::new(SchemaType::Int64).named(TIMESTAMP_NAME)
    }

    /// The logical type this schema denotes, if any.
    pub fn logical_type(&self) -> Option<LogicalType> {
        match self.name.as_deref()? {
            DECIMAL_NAME => {
                let scale = self
                    .parameters
                    .get(DECIMAL_SCALE_PARAM)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                Some(LogicalType::Decimal { scale })
            }
            DATE_NAME => Some(LogicalType::Date),
            TIME_NAME => Some(LogicalType::Time),
            TIMESTAMP_NAME => Some(LogicalType::Timestamp),
            _ => None,
        }
    }

    /// The fields of a struct schema; empty for any other type.
    pub fn fields(&self) -> &[Field] {
        match &self.schema_type {
            SchemaType::Struct(fields) => fields,
            _ => &[],
        }
    }

    /// Index of the named field in a struct schema.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields().iter().position(|f| f.name == name)
    }

    /// Connect's name for the physical type, as the JSON converter writes it.
    pub fn type_name(&self) -> &'static str {
        match self.schema_type {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float",
            SchemaType::Float64 => "double",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array(_) => "array",
            SchemaType::Map(..) => "map",
            SchemaType::Struct(_) => "struct",
        }
    }
}

/// Shorthands for the primitive schemas used everywhere.
pub mod primitives {
    use super::*;

    pub fn string() -> SchemaRef {
        Schema::new(SchemaType::String).into_ref()
    }
    pub fn optional_string() -> SchemaRef {
        Schema::new(SchemaType::String).optional().into_ref()
    }
    pub fn int32() -> SchemaRef {
        Schema::new(SchemaType::Int32).into_ref()
    }
    pub fn int64() -> SchemaRef {
        Schema::new(SchemaType::Int64).into_ref()
    }
    pub fn float64() -> SchemaRef {
        Schema::new(SchemaType::Float64).into_ref()
    }
    pub fn boolean() -> SchemaRef {
        Schema::new(SchemaType::Boolean).into_ref()
    }
    pub fn bytes() -> SchemaRef {
        Schema::new(SchemaType::Bytes).into_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_types_are_recognised_by_name() {
        assert_eq!(
            Schema::decimal(3).logical_type(),
            Some(LogicalType::Decimal { scale: 3 })
        );
        assert_eq!(Schema::date().logical_type(), Some(LogicalType::Date));
        assert_eq!(
            Schema::timestamp().logical_type(),
            Some(LogicalType::Timestamp)
        );
        assert_eq!(Schema::new(SchemaType::Int64).logical_type(), None);
    }

    #[test]
    fn struct_fields_are_indexed() {
        let s = Schema::struct_of([("a", primitives::int32()), ("b", primitives::string())]);
        assert_eq!(s.field_index("b"), Some(1));
        assert_eq!(s.field_index("c"), None);
        assert_eq!(s.type_name(), "struct");
    }
}
