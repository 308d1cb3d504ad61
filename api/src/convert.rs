//! Converters turn a record's key or value between Connect's [`Value`] and the
//! bytes stored in Kafka, as Connect's `Converter` does.

use crate::error::ConnectError;
use crate::schema::SchemaRef;
use crate::value::Value;

/// One converter instance serves one task's key side or value side, so it may keep
/// caches (e.g. the last serialized schema) without locking.
pub trait Converter: Send {
    /// Serializes a value (Connect's `fromConnectData`); `None` is Kafka's null
    /// (a tombstone, for a value).
    fn encode(
        &mut self,
        topic: &str,
        schema: Option<&SchemaRef>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError>;

    /// Deserializes bytes read from Kafka (Connect's `toConnectData`); `None` is a
    /// null key or value.
    fn decode(
        &mut self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<SchemaRef>, Value), ConnectError>;

    /// As [`Converter::decode`], taking the bytes by value, so a converter that
    /// keeps them (text, bytes) does not copy them. The caller uses it when it
    /// has no further use for the bytes, even if decoding fails.
    fn decode_owned(
        &mut self,
        topic: &str,
        bytes: Option<Vec<u8>>,
    ) -> Result<(Option<SchemaRef>, Value), ConnectError> {
        self.decode(topic, bytes.as_deref())
    }

    /// Whether this converter reads values as schemaless JSON text, which a
    /// sink may decode itself ([`crate::SinkTask::takes_json_values`]): then
    /// [`Converter::check`] says whether a value decodes, without decoding it.
    fn reads_schemaless_json(&self) -> bool {
        false
    }

    /// Whether `bytes` decode, checked without building the value; asked only of
    /// a converter that [reads schemaless JSON](Converter::reads_schemaless_json).
    /// A `false` is followed by [`Converter::decode`], whose error is the record's.
    fn check(&mut self, _bytes: &[u8]) -> bool {
        true
    }

    /// The class name error reports give for this converter (Connect's, where
    /// there is one).
    fn class_name(&self) -> &str {
        std::any::type_name::<Self>()
    }
}
