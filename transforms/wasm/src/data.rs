//! Records across the boundary: sluice's [`Record`] to the WIT record and the
//! guest's answer back.
//!
//! Structured values cross as JSON text (struct fields named from the schema).
//! Only the parts the guest reads cross at all (`reads` from its `init`).
//! A value the guest returns unchanged keeps its value and schema exactly; a
//! changed one keeps its schema when it still fits it, else becomes schemaless
//! (objects as string-keyed maps, integers as INT64, other numbers FLOAT64).

use std::borrow::Cow;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value as Json;
use sluice_api::json::JsonView;
use sluice_api::{
    ConnectError, Decimal, Header, Headers, LogicalType, Record, Schema, SchemaRef, SchemaType,
    Value,
};

use crate::bindings::{self, Data, Reads};

/// The guest's view of `record`: the parts it reads.
pub(crate) fn to_guest(record: &Record, reads: Reads) -> Result<bindings::Record, ConnectError> {
    Ok(bindings::Record {
        topic: record.topic.to_string(),
        partition: record.partition,
        offset: record.offset,
        timestamp: record.timestamp,
        key: if reads.contains(Reads::KEY) {
            to_data(record.key_schema.as_deref(), &record.key)?
        } else {
            Data::Omitted
        },
        value: if reads.contains(Reads::VALUE) {
            to_data(record.value_schema.as_deref(), &record.value)?
        } else {
            Data::Omitted
        },
        headers: if reads.contains(Reads::HEADERS) {
            record
                .headers
                .iter()
                .map(|h| bindings::Header {
                    key: h.key.to_string(),
                    value: h.value.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
    })
}

fn to_data(schema: Option<&Schema>, value: &Value) -> Result<Data, ConnectError> {
    Ok(match value {
        Value::Null => Data::Null,
        Value::Bytes(b) => Data::Bytes(b.clone()),
        Value::String(s) => Data::Text(s.clone()),
        _ => Data::Json(
            serde_json::to_string(&JsonView::new(schema, value)).map_err(|e| {
                ConnectError::data(format!("cannot give the guest this value as JSON: {e}"))
            })?,
        ),
    })
}

/// The record the guest kept: `original` with what the guest changed; `sent`
/// is what the guest was given. An `omitted` key or value is unchanged, and
/// so are the headers of a guest that does not read them.
pub(crate) fn from_guest(
    mut original: Record,
    sent: &bindings::Record,
    kept: bindings::Record,
    reads: Reads,
) -> Result<Record, ConnectError> {
    if kept.topic != sent.topic {
        original.topic = Arc::from(kept.topic);
    }
    original.partition = kept.partition;
    original.timestamp = kept.timestamp;
    if kept.key != sent.key && kept.key != Data::Omitted {
        let (schema, value) = from_data(original.key_schema.take(), kept.key, "key")?;
        original.key_schema = schema;
        original.key = value;
    }
    if kept.value != sent.value && kept.value != Data::Omitted {
        let (schema, value) = from_data(original.value_schema.take(), kept.value, "value")?;
        original.value_schema = schema;
        original.value = value;
    }
    if reads.contains(Reads::HEADERS) && kept.headers != sent.headers {
        original.headers = kept
            .headers
            .into_iter()
            .map(|h| Header {
                key: Cow::Owned(h.key),
                value: h.value,
            })
            .collect::<Headers>();
    }
    Ok(original)
}

fn from_data(
    schema: Option<SchemaRef>,
    data: Data,
    what: &str,
) -> Result<(Option<SchemaRef>, Value), ConnectError> {
    let keep_if = |fits: fn(&SchemaType) -> bool| schema.clone().filter(|s| fits(&s.schema_type));
    Ok(match data {
        Data::Null => (schema.filter(|s| s.optional), Value::Null),
        Data::Bytes(b) => (keep_if(|t| matches!(t, SchemaType::Bytes)), Value::Bytes(b)),
        Data::Text(s) => (
            keep_if(|t| matches!(t, SchemaType::String)),
            Value::String(s),
        ),
        // `from_guest` keeps an omitted part as it was.
        Data::Omitted => (schema, Value::Null),
        Data::Json(text) => {
            let json: Json = serde_json::from_str(&text).map_err(|e| {
                ConnectError::data(format!("the guest returned a {what} that is not JSON: {e}"))
            })?;
            match schema.as_ref().and_then(|s| fit(s, &json)) {
                Some(value) => (schema, value),
                None => (None, schemaless(json)),
            }
        }
    })
}

/// `json` as a value of `schema`, if it is one.
fn fit(schema: &Schema, json: &Json) -> Option<Value> {
    if json.is_null() {
        return schema.optional.then_some(Value::Null);
    }
    if let Some(LogicalType::Decimal { scale }) = schema.logical_type() {
        let unscaled = BASE64.decode(json.as_str()?).ok()?;
        return Some(Value::Decimal(Decimal { unscaled, scale }));
    }
    Some(match &schema.schema_type {
        SchemaType::Int8 => Value::Int8(json.as_i64()?.try_into().ok()?),
        SchemaType::Int16 => Value::Int16(json.as_i64()?.try_into().ok()?),
        SchemaType::Int32 => Value::Int32(json.as_i64()?.try_into().ok()?),
        SchemaType::Int64 => Value::Int64(json.as_i64()?),
        SchemaType::Float32 => Value::Float32(json.as_f64()? as f32),
        SchemaType::Float64 => Value::Float64(json.as_f64()?),
        SchemaType::Boolean => Value::Boolean(json.as_bool()?),
        SchemaType::String => Value::String(json.as_str()?.to_owned()),
        SchemaType::Bytes => Value::Bytes(BASE64.decode(json.as_str()?).ok()?),
        SchemaType::Array(item) => Value::Array(
            json.as_array()?
                .iter()
                .map(|j| fit(item, j))
                .collect::<Option<_>>()?,
        ),
        SchemaType::Map(key, value) if key.schema_type == SchemaType::String => Value::Map(
            json.as_object()?
                .iter()
                .map(|(k, v)| Some((Value::String(k.clone()), fit(value, v)?)))
                .collect::<Option<_>>()?,
        ),
        SchemaType::Map(key, value) => Value::Map(
            json.as_array()?
                .iter()
                .map(|pair| Some((fit(key, pair.get(0)?)?, fit(value, pair.get(1)?)?)))
                .collect::<Option<_>>()?,
        ),
        SchemaType::Struct(fields) => {
            let object = json.as_object()?;
            // A field the schema does not name means the guest changed the shape.
            if object.keys().any(|k| !fields.iter().any(|f| &f.name == k)) {
                return None;
            }
            Value::Struct(
                fields
                    .iter()
                    .map(|f| match object.get(&f.name) {
                        Some(j) => fit(&f.schema, j),
                        None => f.schema.optional.then_some(Value::Null),
                    })
                    .collect::<Option<_>>()?,
            )
        }
    })
}

fn schemaless(json: Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(b),
        Json::Number(n) => n.as_i64().map_or_else(
            || Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
            Value::Int64,
        ),
        Json::String(s) => Value::String(s),
        Json::Array(items) => Value::Array(items.into_iter().map(schemaless).collect()),
        Json::Object(fields) => Value::Map(
            fields
                .into_iter()
                .map(|(k, v)| (Value::String(k), schemaless(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use sluice_api::schema::primitives;

    use super::*;

    fn event() -> (SchemaRef, Value) {
        let schema = Schema::struct_of([
            ("id", primitives::int64()),
            ("email", primitives::string()),
            ("note", primitives::optional_string()),
        ])
        .into_ref();
        let value = Value::Struct(vec![
            Value::Int64(7),
            Value::String("a@example.com".into()),
            Value::Null,
        ]);
        (schema, value)
    }

    fn record() -> Record {
        let (schema, value) = event();
        let mut r = Record::new("events", Value::String("k".into()), value);
        r.value_schema = Some(schema);
        r.offset = Some(3);
        r
    }

    #[test]
    fn a_record_the_guest_returns_unchanged_is_the_same_record() {
        let r = record();
        let sent = to_guest(&r, Reads::all()).unwrap();
        assert_eq!(
            sent.value,
            Data::Json(r#"{"id":7,"email":"a@example.com","note":null}"#.into())
        );
        assert_eq!(sent.key, Data::Text("k".into()));
        assert_eq!(
            from_guest(r.clone(), &sent, sent.clone(), Reads::all()).unwrap(),
            r
        );
    }

    #[test]
    fn what_the_guest_does_not_read_neither_crosses_nor_changes() {
        let mut r = record();
        r.headers.push("h", Some(b"v".to_vec()));
        let sent = to_guest(&r, Reads::KEY).unwrap();
        assert_eq!(sent.key, Data::Text("k".into()));
        assert_eq!(sent.value, Data::Omitted);
        assert!(sent.headers.is_empty());
        // A guest that re-keys, returning the value as omitted and headers it
        // cannot have read: only the key changes.
        let kept = bindings::Record {
            key: Data::Text("k2".into()),
            headers: vec![bindings::Header {
                key: "x".into(),
                value: None,
            }],
            ..sent.clone()
        };
        let out = from_guest(r.clone(), &sent, kept, Reads::KEY).unwrap();
        assert_eq!(out.key, Value::String("k2".into()));
        assert_eq!((out.value, out.value_schema), (r.value, r.value_schema));
        assert_eq!(out.headers, r.headers);
    }

    #[test]
    fn a_changed_value_that_fits_its_schema_keeps_it() {
        let r = record();
        let sent = to_guest(&r, Reads::all()).unwrap();
        let mut kept = sent.clone();
        kept.value = Data::Json(r#"{"id":0,"email":"****"}"#.into());
        kept.key = Data::Text("k2".into());
        kept.topic = "elsewhere".into();
        let out = from_guest(r.clone(), &sent, kept, Reads::all()).unwrap();
        assert_eq!(out.value_schema, r.value_schema);
        assert_eq!(
            out.value,
            Value::Struct(vec![
                Value::Int64(0),
                Value::String("****".into()),
                Value::Null
            ])
        );
        assert_eq!(out.key, Value::String("k2".into()));
        assert_eq!(&*out.topic, "elsewhere");
        assert_eq!(out.offset, Some(3));
    }

    #[test]
    fn a_changed_value_that_no_longer_fits_becomes_schemaless() {
        let r = record();
        let sent = to_guest(&r, Reads::all()).unwrap();
        let mut kept = sent.clone();
        kept.value = Data::Json(r#"{"id":"seven","extra":[1,2.5]}"#.into());
        let out = from_guest(r, &sent, kept, Reads::all()).unwrap();
        assert_eq!(out.value_schema, None);
        assert_eq!(
            out.value,
            Value::Map(vec![
                (
                    Value::String("extra".into()),
                    Value::Array(vec![Value::Int64(1), Value::Float64(2.5)])
                ),
                (Value::String("id".into()), Value::String("seven".into())),
            ])
        );
    }

    #[test]
    fn a_value_that_is_not_json_is_a_record_error() {
        let r = record();
        let sent = to_guest(&r, Reads::all()).unwrap();
        let mut kept = sent.clone();
        kept.value = Data::Json("{not json".into());
        let e = from_guest(r, &sent, kept, Reads::all()).unwrap_err();
        assert!(e.message().contains("not JSON"), "{e}");
    }
}
