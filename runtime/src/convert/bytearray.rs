use std::sync::OnceLock;

use sluice_api::schema::{Schema, SchemaType};
use sluice_api::{ConnectError, Converter, SchemaRef, Value};

/// Connect's `ByteArrayConverter`: bytes pass through untouched.
pub struct ByteArrayConverter;

fn optional_bytes() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| Schema::new(SchemaType::Bytes).optional().into_ref())
        .clone()
}

impl Converter for ByteArrayConverter {
    fn class_name(&self) -> &str {
        "org.apache.kafka.connect.converters.ByteArrayConverter"
    }

    fn encode(
        &mut self,
        topic: &str,
        _schema: Option<&SchemaRef>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError> {
        match value {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            other => Err(ConnectError::data(format!(
                "ByteArrayConverter (topic '{topic}') accepts only bytes, got {}",
                variant_name(other)
            ))),
        }
    }

    fn decode(
        &mut self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<SchemaRef>, Value), ConnectError> {
        Ok((
            Some(optional_bytes()),
            bytes.map_or(Value::Null, |b| Value::Bytes(b.to_vec())),
        ))
    }

    fn decode_owned(
        &mut self,
        _topic: &str,
        bytes: Option<Vec<u8>>,
    ) -> Result<(Option<SchemaRef>, Value), ConnectError> {
        Ok((
            Some(optional_bytes()),
            bytes.map_or(Value::Null, Value::Bytes),
        ))
    }
}

pub(crate) fn variant_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int8(_) => "int8",
        Value::Int16(_) => "int16",
        Value::Int32(_) => "int32",
        Value::Int64(_) => "int64",
        Value::Float32(_) => "float",
        Value::Float64(_) => "double",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Struct(_) => "struct",
        Value::Decimal(_) => "decimal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_bytes_and_rejects_others() {
        let mut c = ByteArrayConverter;
        assert_eq!(
            c.encode("t", None, &Value::Bytes(vec![1, 2])).unwrap(),
            Some(vec![1, 2])
        );
        assert!(c.encode("t", None, &Value::from("x")).is_err());
        assert_eq!(c.decode("t", Some(&[9])).unwrap().1, Value::Bytes(vec![9]));
    }
}
