//! Kafka Connect's schema model: the optional description that travels with a
//! [`Value`], including Connect's logical types.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::value::Value;

/// Schemas are shared between records; cloning one is a reference-count bump.
pub type SchemaRef = Arc<Schema>;

/// Connect's `Decimal` logical type (bytes and a scale).
pub const DECIMAL_NAME: &str = "org.apache.kafka.connect.data.Decimal";
/// Connect's `Date` logical type (`Int32` days since the epoch).
pub const DATE_NAME: &str = "org.apache.kafka.connect.data.Date";
/// Connect's `Time` logical type (`Int32` milliseconds since midnight).
pub const TIME_NAME: &str = "org.apache.kafka.connect.data.Time";
/// Connect's `Timestamp` logical type (`Int64` milliseconds since the epoch).
pub const TIMESTAMP_NAME: &str = "org.apache.kafka.connect.data.Timestamp";
/// The schema parameter that carries a Decimal's scale, as Connect names it.
pub const DECIMAL_SCALE_PARAM: &str = "scale";

/// The physical type of a schema.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaType {
    /// An 8-bit integer.
    Int8,
    /// A 16-bit integer.
    Int16,
    /// A 32-bit integer.
    Int32,
    /// A 64-bit integer.
    Int64,
    /// A 32-bit float.
    Float32,
    /// A 64-bit float.
    Float64,
    /// A boolean.
    Boolean,
    /// UTF-8 text.
    String,
    /// Raw bytes.
    Bytes,
    /// A list of values of the item schema.
    Array(SchemaRef),
    /// A map from the key schema to the value schema.
    Map(SchemaRef, SchemaRef),
    /// Fields in order; a struct [`Value`] holds one value per field, in this order.
    Struct(Vec<Field>),
}

#[derive(Debug, Clone, PartialEq)]
/// A field of a struct schema.
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its schema.
    pub schema: SchemaRef,
}

/// Connect's logical types, identified by schema name as Connect does.
///
/// Their values: `Decimal` is [`Value::Decimal`]; `Date` is `Int32` days since the
/// epoch; `Time` is `Int32` milliseconds since midnight; `Timestamp` is `Int64`
/// milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicalType {
    /// An arbitrary-precision decimal, as [`Value::Decimal`].
    Decimal {
        /// Digits after the decimal point.
        scale: i32,
    },
    /// Days since the epoch.
    Date,
    /// Milliseconds since midnight.
    Time,
    /// Milliseconds since the epoch.
    Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
/// A Connect schema.
pub struct Schema {
    /// The physical type.
    pub schema_type: SchemaType,
    /// Whether the value may be null.
    pub optional: bool,
    /// The schema's name (a logical type's, e.g. [`DECIMAL_NAME`]).
    pub name: Option<String>,
    /// The schema's version.
    pub version: Option<i32>,
    /// Its documentation.
    pub doc: Option<String>,
    /// Extra parameters (a Decimal's scale).
    pub parameters: BTreeMap<String, String>,
    /// The value a missing field takes.
    pub default: Option<Value>,
}

impl Schema {
    /// A required schema of this type, with nothing else set.
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

    /// Makes the value optional.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Names the schema.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Shares the schema.
    pub fn into_ref(self) -> SchemaRef {
        Arc::new(self)
    }

    /// A struct schema of these fields, in order.
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

    /// Connect's `Decimal` with `scale` digits after the point.
    pub fn decimal(scale: i32) -> Self {
        let mut s = Self::new(SchemaType::Bytes).named(DECIMAL_NAME);
        s.parameters
            .insert(DECIMAL_SCALE_PARAM.to_owned(), scale.to_string());
        s
    }

    /// Connect's `Date`.
    pub fn date() -> Self {
        Self::new(SchemaType::Int32).named(DATE_NAME)
    }

    /// Connect's `Time`.
    pub fn time() -> Self {
        Self::new(SchemaType::Int32).named(TIME_NAME)
    }

    /// Connect's `Timestamp`.
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

    /// A required string.
    pub fn string() -> SchemaRef {
        Schema::new(SchemaType::String).into_ref()
    }
    /// An optional string.
    pub fn optional_string() -> SchemaRef {
        Schema::new(SchemaType::String).optional().into_ref()
    }
    /// A required 32-bit integer.
    pub fn int32() -> SchemaRef {
        Schema::new(SchemaType::Int32).into_ref()
    }
    /// A required 64-bit integer.
    pub fn int64() -> SchemaRef {
        Schema::new(SchemaType::Int64).into_ref()
    }
    /// A required 64-bit float.
    pub fn float64() -> SchemaRef {
        Schema::new(SchemaType::Float64).into_ref()
    }
    /// A required boolean.
    pub fn boolean() -> SchemaRef {
        Schema::new(SchemaType::Boolean).into_ref()
    }
    /// Required bytes.
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
