use std::sync::OnceLock;

use sluice_api::schema::primitives;
use sluice_api::{ConnectError, Converter, SchemaRef, Value};

use super::json::write_json;

/// Connect's `StringConverter`: UTF-8 text. Non-string values are written as JSON
/// text (Connect writes Java's `toString()`, which no reader can parse back).
pub struct StringConverter;

fn optional_string() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA.get_or_init(primitives::optional_string).clone()
}

impl Converter for StringConverter {
    fn class_name(&self) -> &str {
        "org.apache.kafka.connect.storage.StringConverter"
    }

    fn encode(
        &mut self,
        _topic: &str,
        schema: Option<&SchemaRef>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError> {
        match value {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.as_bytes().to_vec())),
            other => {
                let mut out = Vec::new();
                write_json(&mut out, schema.map(|s| &**s), other, false, false)?;
                Ok(Some(out))
            }
        }
    }

    fn decode(
        &mut self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<SchemaRef>, Value), ConnectError> {
        let Some(bytes) = bytes else {
            return Ok((Some(optional_string()), Value::Null));
        };
        let text = std::str::from_utf8(bytes).map_err(|e| not_utf8(topic, &e))?;
        Ok((Some(optional_string()), Value::String(text.to_owned())))
    }

    fn decode_owned(
        &mut self,
        topic: &str,
        bytes: Option<Vec<u8>>,
    ) -> Result<(Option<SchemaRef>, Value), ConnectError> {
        let Some(bytes) = bytes else {
            return Ok((Some(optional_string()), Value::Null));
        };
        let text = String::from_utf8(bytes).map_err(|e| not_utf8(topic, &e.utf8_error()))?;
        Ok((Some(optional_string()), Value::String(text)))
    }
}

fn not_utf8(topic: &str, e: &std::str::Utf8Error) -> ConnectError {
    ConnectError::data(format!(
        "StringConverter: data in topic '{topic}' is not UTF-8: {e}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_invalid_utf8() {
        let mut c = StringConverter;
        let bytes = c.encode("t", None, &Value::from("héllo")).unwrap();
        assert_eq!(
            c.decode("t", bytes.as_deref()).unwrap().1,
            Value::from("héllo")
        );
        assert_eq!(
            c.encode("t", None, &Value::Int64(5)).unwrap(),
            Some(b"5".to_vec())
        );
        let err = c.decode("t", Some(&[0xff, 0xfe])).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"));
        assert_eq!(c.decode("t", None).unwrap().1, Value::Null);
        assert_eq!(
            c.decode_owned("t", Some("héllo".into())).unwrap().1,
            Value::from("héllo")
        );
        let err = c.decode_owned("t", Some(vec![0xff])).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"));
    }
}
