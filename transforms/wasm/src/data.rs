//! Records across the boundary: sluice's [`Record`]s to the WIT batch and the
//! guest's changes back.
//!
//! Only what the guest reads crosses (`reads` from its `init`): whole parts,
//! with structured values as JSON text (struct fields named from the schema),
//! and single value fields, typed. A value the guest returns unchanged keeps
//! its value and schema exactly; a changed whole value keeps its schema when it
//! still fits it, else becomes schemaless (objects as string-keyed maps,
//! integers as INT64, other numbers FLOAT64); a field the guest sets must fit
//! the field's schema.

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

use crate::bindings::{self, Batch, Changes, Data, Edit, Field, Parts, Reads, Span};

/// What a guest reads, from its `init`.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    pub whole: Parts,
    /// The value fields, as declared (for messages) and split at the dots.
    names: Vec<String>,
    paths: Vec<Vec<String>>,
}

impl Reading {
    pub fn new(reads: Reads) -> Self {
        Self {
            whole: reads.whole,
            paths: reads
                .value_fields
                .iter()
                .map(|p| p.split('.').map(str::to_owned).collect())
                .collect(),
            names: reads.value_fields,
        }
    }

    /// How many value fields each record carries.
    pub fn fields(&self) -> usize {
        self.paths.len()
    }
}

/// A batch for the guest, built record by record.
pub(crate) struct BatchBuilder<'a> {
    reading: &'a Reading,
    batch: Batch,
    /// The previous record's topic: a batch's records mostly share one.
    last_topic: Option<(Arc<str>, u32)>,
}

impl<'a> BatchBuilder<'a> {
    pub fn new(reading: &'a Reading, records: usize) -> Self {
        let whole = |part| {
            if reading.whole.contains(part) {
                records
            } else {
                0
            }
        };
        let values = if reading.fields() > 0 {
            records
        } else {
            whole(Parts::VALUE)
        };
        Self {
            reading,
            batch: Batch {
                topics: Vec::new(),
                topic: Vec::with_capacity(records),
                partition: Vec::with_capacity(records),
                offset: Vec::with_capacity(records),
                timestamp: Vec::with_capacity(records),
                keys: Vec::with_capacity(whole(Parts::KEY)),
                values: Vec::with_capacity(values),
                headers: Vec::with_capacity(whole(Parts::HEADERS)),
                fields: Vec::with_capacity(records * reading.fields()),
                text: Vec::new(),
            },
            last_topic: None,
        }
    }

    /// Adds the guest's view of `record`; a record that cannot be encoded is
    /// not added.
    pub fn push(&mut self, record: &Record) -> Result<(), ConnectError> {
        let reading = self.reading;
        let key = match reading.whole.contains(Parts::KEY) {
            true => Some(to_data(record.key_schema.as_deref(), &record.key)?),
            false => None,
        };
        let structured = matches!(record.value, Value::Struct(_) | Value::Map(_));
        let value = if reading.whole.contains(Parts::VALUE) || (reading.fields() > 0 && !structured)
        {
            Some(to_data(record.value_schema.as_deref(), &record.value)?)
        } else if reading.fields() > 0 {
            Some(Data::Omitted)
        } else {
            None
        };
        let before = (self.batch.fields.len(), self.batch.text.len());
        for path in &reading.paths {
            let field = match at(&record.value, record.value_schema.as_deref(), path) {
                Some((value, schema)) => match to_field(value, schema, &mut self.batch.text) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        self.batch.fields.truncate(before.0);
                        self.batch.text.truncate(before.1);
                        return Err(e);
                    }
                },
                None => None,
            };
            self.batch.fields.push(field);
        }
        let topic = self.topic(&record.topic);
        let b = &mut self.batch;
        b.topic.push(topic);
        b.partition.push(record.partition.unwrap_or(i32::MIN));
        b.offset.push(record.offset.unwrap_or(i64::MIN));
        b.timestamp.push(record.timestamp.unwrap_or(i64::MIN));
        b.keys.extend(key);
        b.values.extend(value);
        if reading.whole.contains(Parts::HEADERS) {
            b.headers.push(
                record
                    .headers
                    .iter()
                    .map(|h| bindings::Header {
                        key: h.key.to_string(),
                        value: h.value.clone(),
                    })
                    .collect(),
            );
        }
        Ok(())
    }

    fn topic(&mut self, topic: &Arc<str>) -> u32 {
        if let Some((last, i)) = &self.last_topic {
            if Arc::ptr_eq(last, topic) || last == topic {
                return *i;
            }
        }
        let i = match self.batch.topics.iter().position(|t| **t == **topic) {
            Some(i) => i,
            None => {
                self.batch.topics.push(topic.to_string());
                self.batch.topics.len() - 1
            }
        };
        // A batch holds at most u32::MAX records, hence as many topics.
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        self.last_topic = Some((topic.clone(), i));
        i
    }

    pub fn finish(self) -> Batch {
        self.batch
    }
}

/// What record `i` of `batch` was given of its parts.
#[derive(Clone, Copy)]
pub(crate) struct Sent<'a> {
    key: Option<&'a Data>,
    value: Option<&'a Data>,
    headers: Option<&'a Vec<bindings::Header>>,
}

impl<'a> Sent<'a> {
    pub fn of(batch: &'a Batch, i: usize) -> Self {
        Self {
            key: batch.keys.get(i),
            value: batch.values.get(i),
            headers: batch.headers.get(i),
        }
    }
}

/// Record `i` of `batch` alone in a batch of its own (to retry it after a
/// trap).
pub(crate) fn single(batch: &Batch, i: usize, reading: &Reading) -> Batch {
    let n = reading.fields();
    let one = |v: Option<&Data>| v.cloned().into_iter().collect();
    Batch {
        topics: batch
            .topic
            .get(i)
            .and_then(|&t| batch.topics.get(t as usize))
            .cloned()
            .into_iter()
            .collect(),
        topic: vec![0],
        partition: batch.partition.get(i).copied().into_iter().collect(),
        offset: batch.offset.get(i).copied().into_iter().collect(),
        timestamp: batch.timestamp.get(i).copied().into_iter().collect(),
        keys: one(batch.keys.get(i)),
        values: one(batch.values.get(i)),
        headers: batch.headers.get(i).cloned().into_iter().collect(),
        fields: batch
            .fields
            .get(i * n..(i + 1) * n)
            .map(<[_]>::to_vec)
            .unwrap_or_default(),
        text: batch.text.clone(),
    }
}

fn to_data(schema: Option<&Schema>, value: &Value) -> Result<Data, ConnectError> {
    Ok(match value {
        Value::Null => Data::Null,
        Value::Bytes(b) => Data::Bytes(b.clone()),
        Value::String(s) => Data::Text(s.clone()),
        _ => Data::Json(to_json(schema, value)?),
    })
}

fn to_json(schema: Option<&Schema>, value: &Value) -> Result<String, ConnectError> {
    serde_json::to_string(&JsonView::new(schema, value))
        .map_err(|e| ConnectError::data(format!("cannot give the guest this value as JSON: {e}")))
}

/// The value at `path` in a struct or map, with its schema.
fn at<'a>(
    mut value: &'a Value,
    mut schema: Option<&'a Schema>,
    path: &[String],
) -> Option<(&'a Value, Option<&'a Schema>)> {
    for name in path {
        (value, schema) = match value {
            Value::Struct(values) => {
                let SchemaType::Struct(fields) = &schema?.schema_type else {
                    return None;
                };
                let i = fields.iter().position(|f| f.name == *name)?;
                (values.get(i)?, Some(&*fields[i].schema))
            }
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::String(s) if s == name))
                .map(|(_, v)| (v, map_values(schema)))?,
            _ => return None,
        };
    }
    Some((value, schema))
}

/// A map schema's value schema.
fn map_values(schema: Option<&Schema>) -> Option<&Schema> {
    match &schema?.schema_type {
        SchemaType::Map(_, values) => Some(values),
        _ => None,
    }
}

/// `value` as a field, its bytes appended to `text`.
fn to_field(
    value: &Value,
    schema: Option<&Schema>,
    text: &mut Vec<u8>,
) -> Result<Field, ConnectError> {
    let mut span = |bytes: &[u8]| -> Result<Span, ConnectError> {
        let start = text.len();
        text.extend_from_slice(bytes);
        let fits = |n: usize| u32::try_from(n).ok();
        match (fits(start), fits(bytes.len()), fits(text.len())) {
            (Some(start), Some(len), Some(_)) => Ok(Span { start, len }),
            _ => Err(ConnectError::data(
                "the batch's fields exceed 4 GiB of text; use smaller batches",
            )),
        }
    };
    Ok(match value {
        Value::Null => Field::Null,
        Value::Boolean(b) => Field::Boolean(*b),
        Value::Int8(n) => Field::Int(i64::from(*n)),
        Value::Int16(n) => Field::Int(i64::from(*n)),
        Value::Int32(n) => Field::Int(i64::from(*n)),
        Value::Int64(n) => Field::Int(*n),
        Value::Float32(n) => Field::Float(f64::from(*n)),
        Value::Float64(n) => Field::Float(*n),
        Value::String(s) => Field::Text(span(s.as_bytes())?),
        Value::Bytes(b) => Field::Bytes(span(b)?),
        Value::Array(_) | Value::Map(_) | Value::Struct(_) | Value::Decimal(_) => {
            Field::Json(span(to_json(schema, value)?.as_bytes())?)
        }
    })
}

/// The bytes of `span` in `text`.
fn slice(text: &[u8], span: Span) -> Result<&[u8], String> {
    (span.start as usize)
        .checked_add(span.len as usize)
        .and_then(|end| text.get(span.start as usize..end))
        .ok_or_else(|| "its bytes lie outside the answer's text".to_owned())
}

fn string(text: &[u8], span: Span) -> Result<String, String> {
    std::str::from_utf8(slice(text, span)?)
        .map(str::to_owned)
        .map_err(|_| "its text is not UTF-8".to_owned())
}

/// Sets the field at `path` of a struct or map to `new`, which must fit the
/// field's schema (a map gains a missing last key).
fn set(
    value: &mut Value,
    schema: Option<&Schema>,
    path: &[String],
    new: Field,
    text: &[u8],
) -> Result<(), String> {
    let Some((name, rest)) = path.split_first() else {
        return Err("an empty path".into());
    };
    let (slot, schema) = match value {
        Value::Struct(values) => {
            let Some(SchemaType::Struct(fields)) = schema.map(|s| &s.schema_type) else {
                return Err("a struct without its schema".into());
            };
            let i = fields
                .iter()
                .position(|f| f.name == *name)
                .ok_or_else(|| format!("the struct has no field '{name}'"))?;
            let slot = values
                .get_mut(i)
                .ok_or("the struct has fewer values than its schema")?;
            (slot, Some(&*fields[i].schema))
        }
        Value::Map(entries) => {
            let values = map_values(schema);
            let i = entries
                .iter()
                .position(|(k, _)| matches!(k, Value::String(s) if s == name));
            let i = match i {
                Some(i) => i,
                None if rest.is_empty() => {
                    entries.push((Value::String(name.clone()), Value::Null));
                    entries.len() - 1
                }
                None => return Err(format!("the map has no key '{name}'")),
            };
            (&mut entries[i].1, values)
        }
        _ => return Err(format!("'{name}' is not in a struct or map")),
    };
    if !rest.is_empty() {
        return set(slot, schema, rest, new, text);
    }
    *slot = typed(new, schema, text)?.ok_or_else(|| match schema {
        Some(s) => format!(
            "the new value does not fit the field's schema ({}{})",
            if s.optional { "optional " } else { "" },
            s.type_name()
        ),
        None => "the new value is not JSON".to_owned(),
    })?;
    Ok(())
}

/// `field` as a value of `schema` (none: schemaless), if it is one.
fn typed(field: Field, schema: Option<&Schema>, text: &[u8]) -> Result<Option<Value>, String> {
    let field = match field {
        Field::Null => Plain::Null,
        Field::Boolean(b) => Plain::Boolean(b),
        Field::Int(n) => Plain::Int(n),
        Field::Float(n) => Plain::Float(n),
        Field::Text(s) => Plain::Text(string(text, s)?),
        Field::Bytes(s) => Plain::Bytes(slice(text, s)?.to_vec()),
        Field::Json(s) => {
            let json = serde_json::from_slice::<Json>(slice(text, s)?).ok();
            return Ok(json.and_then(|j| match schema {
                Some(schema) => fit(schema, &j),
                None => Some(schemaless(j)),
            }));
        }
    };
    let Some(schema) = schema else {
        return Ok(Some(match field {
            Plain::Null => Value::Null,
            Plain::Boolean(b) => Value::Boolean(b),
            Plain::Int(n) => Value::Int64(n),
            Plain::Float(n) => Value::Float64(n),
            Plain::Text(s) => Value::String(s),
            Plain::Bytes(b) => Value::Bytes(b),
        }));
    };
    Ok(fit_plain(field, schema))
}

fn fit_plain(field: Plain, schema: &Schema) -> Option<Value> {
    if matches!(field, Plain::Null) {
        return schema.optional.then_some(Value::Null);
    }
    if let Some(LogicalType::Decimal { .. }) = schema.logical_type() {
        return None;
    }
    Some(match (field, &schema.schema_type) {
        (Plain::Boolean(b), SchemaType::Boolean) => Value::Boolean(b),
        (Plain::Int(n), SchemaType::Int8) => Value::Int8(n.try_into().ok()?),
        (Plain::Int(n), SchemaType::Int16) => Value::Int16(n.try_into().ok()?),
        (Plain::Int(n), SchemaType::Int32) => Value::Int32(n.try_into().ok()?),
        (Plain::Int(n), SchemaType::Int64) => Value::Int64(n),
        (Plain::Int(n), SchemaType::Float32) => Value::Float32(n as f32),
        (Plain::Int(n), SchemaType::Float64) => Value::Float64(n as f64),
        (Plain::Float(n), SchemaType::Float32) => Value::Float32(n as f32),
        (Plain::Float(n), SchemaType::Float64) => Value::Float64(n),
        (Plain::Text(s), SchemaType::String) => Value::String(s),
        (Plain::Bytes(b), SchemaType::Bytes) => Value::Bytes(b),
        _ => return None,
    })
}

/// A field with its bytes out of the answer's text.
enum Plain {
    Null,
    Boolean(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

/// The record the guest kept: `original` with the guest's `changes` (none:
/// its edits alone) and `edits`; `sent` is what the guest was given. An
/// `omitted` key or value is unchanged, and so are the headers of a guest that
/// does not read them.
pub(crate) fn from_guest(
    mut original: Record,
    sent: Sent<'_>,
    changes: Option<Changes>,
    edits: &[Edit],
    text: &[u8],
    reading: &Reading,
) -> Result<Record, ConnectError> {
    if let Some(changes) = changes {
        if let Some(topic) = changes.topic {
            original.topic = Arc::from(topic);
        }
        original.partition = changes.partition;
        original.timestamp = changes.timestamp;
        if changes.key != Data::Omitted && Some(&changes.key) != sent.key {
            let (schema, value) = from_data(original.key_schema.take(), changes.key, "key")?;
            original.key_schema = schema;
            original.key = value;
        }
        if changes.value != Data::Omitted && Some(&changes.value) != sent.value {
            let (schema, value) = from_data(original.value_schema.take(), changes.value, "value")?;
            original.value_schema = schema;
            original.value = value;
        }
        if reading.whole.contains(Parts::HEADERS) {
            if let Some(headers) = changes.headers.filter(|h| Some(h) != sent.headers) {
                original.headers = headers
                    .into_iter()
                    .map(|h| Header {
                        key: Cow::Owned(h.key),
                        value: h.value,
                    })
                    .collect::<Headers>();
            }
        }
    }
    for edit in edits {
        let i = edit.field as usize;
        let Some(path) = reading.paths.get(i) else {
            return Err(ConnectError::data(format!(
                "the guest set value field {i}, but declared {} value fields",
                reading.fields()
            )));
        };
        set(
            &mut original.value,
            original.value_schema.as_deref(),
            path,
            edit.value,
            text,
        )
        .map_err(|why| {
            ConnectError::data(format!(
                "the guest set value field '{}': {why}",
                reading.names[i]
            ))
        })?;
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

    fn reading(whole: Parts, fields: &[&str]) -> Reading {
        Reading::new(Reads {
            whole,
            value_fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        })
    }

    fn send(records: &[&Record], reading: &Reading) -> Batch {
        let mut b = BatchBuilder::new(reading, records.len());
        for r in records {
            b.push(r).unwrap();
        }
        b.finish()
    }

    /// Changes that give back what was sent.
    fn echo(sent: Sent<'_>) -> Changes {
        let given = |d: Option<&Data>| d.cloned().unwrap_or(Data::Omitted);
        Changes {
            topic: None,
            partition: None,
            timestamp: None,
            key: given(sent.key),
            value: given(sent.value),
            headers: sent.headers.cloned(),
        }
    }

    #[test]
    fn a_record_the_guest_returns_unchanged_is_the_same_record() {
        let r = record();
        let all = reading(Parts::all(), &[]);
        let batch = send(&[&r], &all);
        let sent = Sent::of(&batch, 0);
        assert_eq!(batch.topics, ["events"]);
        assert_eq!(batch.topic, [0]);
        assert_eq!(batch.offset, [3]);
        assert_eq!(
            (batch.partition[0], batch.timestamp[0]),
            (i32::MIN, i64::MIN)
        );
        assert_eq!(
            batch.values,
            [Data::Json(
                r#"{"id":7,"email":"a@example.com","note":null}"#.into()
            )]
        );
        assert_eq!(batch.keys, [Data::Text("k".into())]);
        assert_eq!(
            from_guest(r.clone(), sent, Some(echo(sent)), &[], &[], &all).unwrap(),
            r
        );
    }

    #[test]
    fn what_the_guest_does_not_read_neither_crosses_nor_changes() {
        let mut r = record();
        r.headers.push("h", Some(b"v".to_vec()));
        let key_only = reading(Parts::KEY, &[]);
        let batch = send(&[&r], &key_only);
        let sent = Sent::of(&batch, 0);
        assert_eq!(batch.keys, [Data::Text("k".into())]);
        assert!(batch.values.is_empty());
        assert!(batch.headers.is_empty());
        assert!(batch.fields.is_empty());
        // A guest that re-keys, returning the value as omitted and headers it
        // cannot have read: only the key changes.
        let changes = Changes {
            key: Data::Text("k2".into()),
            headers: Some(vec![bindings::Header {
                key: "x".into(),
                value: None,
            }]),
            ..echo(sent)
        };
        let out = from_guest(r.clone(), sent, Some(changes), &[], &[], &key_only).unwrap();
        assert_eq!(out.key, Value::String("k2".into()));
        assert_eq!((out.value, out.value_schema), (r.value, r.value_schema));
        assert_eq!(out.headers, r.headers);
    }

    #[test]
    fn a_changed_value_that_fits_its_schema_keeps_it() {
        let r = record();
        let all = reading(Parts::all(), &[]);
        let batch = send(&[&r], &all);
        let sent = Sent::of(&batch, 0);
        let changes = Changes {
            value: Data::Json(r#"{"id":0,"email":"****"}"#.into()),
            key: Data::Text("k2".into()),
            topic: Some("elsewhere".into()),
            ..echo(sent)
        };
        let out = from_guest(r.clone(), sent, Some(changes), &[], &[], &all).unwrap();
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
        let all = reading(Parts::all(), &[]);
        let batch = send(&[&r], &all);
        let sent = Sent::of(&batch, 0);
        let changes = Changes {
            value: Data::Json(r#"{"id":"seven","extra":[1,2.5]}"#.into()),
            ..echo(sent)
        };
        let out = from_guest(r, sent, Some(changes), &[], &[], &all).unwrap();
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
        let all = reading(Parts::all(), &[]);
        let batch = send(&[&r], &all);
        let sent = Sent::of(&batch, 0);
        let changes = Changes {
            value: Data::Json("{not json".into()),
            ..echo(sent)
        };
        let e = from_guest(r, sent, Some(changes), &[], &[], &all).unwrap_err();
        assert!(e.message().contains("not JSON"), "{e}");
    }

    fn edit(field: u32, value: Field) -> Edit {
        Edit {
            record: 0,
            field,
            value,
        }
    }

    #[test]
    fn value_fields_cross_typed_and_alone() {
        let r = record();
        let mut other = record();
        other.value = Value::String("a line".into());
        let fields = reading(Parts::empty(), &["email", "id", "missing", "note"]);
        let batch = send(&[&r, &other, &r], &fields);
        // One topic for the batch; the struct's fields alone, the text whole.
        assert_eq!(batch.topics, ["events"]);
        assert_eq!(batch.topic, [0, 0, 0]);
        assert_eq!(
            batch.values,
            [Data::Omitted, Data::Text("a line".into()), Data::Omitted]
        );
        let email = |start| Some(Field::Text(Span { start, len: 13 }));
        let rest = [Some(Field::Int(7)), None, Some(Field::Null)];
        assert_eq!(batch.fields[0], email(0));
        assert_eq!(batch.fields[1..4], rest);
        assert_eq!(batch.fields[4..8], [None, None, None, None]);
        assert_eq!(batch.fields[8], email(13));
        assert_eq!(batch.fields[9..], rest);
        assert_eq!(batch.text, b"a@example.coma@example.com");
    }

    #[test]
    fn fields_the_guest_sets_keep_the_schema_or_fail_the_record() {
        let r = record();
        let fields = reading(Parts::empty(), &["email", "id"]);
        let batch = send(&[&r], &fields);
        let sent = Sent::of(&batch, 0);
        let text = b"****seven\xff";
        let masked = [
            edit(0, Field::Text(Span { start: 0, len: 4 })),
            edit(1, Field::Int(0)),
        ];
        let out = from_guest(r.clone(), sent, None, &masked, text, &fields).unwrap();
        assert_eq!(out.value_schema, r.value_schema);
        assert_eq!(
            out.value,
            Value::Struct(vec![
                Value::Int64(0),
                Value::String("****".into()),
                Value::Null
            ])
        );
        let refused = |edit: Edit| {
            from_guest(r.clone(), sent, None, &[edit], text, &fields)
                .unwrap_err()
                .message()
                .to_owned()
        };
        let e = refused(edit(1, Field::Text(Span { start: 4, len: 5 })));
        assert!(
            e.contains("value field 'id': the new value does not fit the field's schema (int64)"),
            "{e}"
        );
        let e = refused(edit(2, Field::Null));
        assert!(e.contains("declared 2 value fields"), "{e}");
        let e = refused(edit(0, Field::Text(Span { start: 9, len: 1 })));
        assert!(
            e.contains("value field 'email': its text is not UTF-8"),
            "{e}"
        );
        let e = refused(edit(0, Field::Text(Span { start: 8, len: 9 })));
        assert!(e.contains("outside the answer's text"), "{e}");
    }

    #[test]
    fn fields_of_a_schemaless_map_are_read_and_set_by_key() {
        let user = Value::Map(vec![(
            Value::String("email".into()),
            Value::String("a@example.com".into()),
        )]);
        let r = Record::new(
            "events",
            Value::Null,
            Value::Map(vec![(Value::String("user".into()), user)]),
        );
        let fields = reading(Parts::empty(), &["user.email", "user.phone"]);
        let batch = send(&[&r], &fields);
        assert_eq!(
            batch.fields,
            [Some(Field::Text(Span { start: 0, len: 13 })), None]
        );
        let edits = [
            edit(0, Field::Text(Span { start: 0, len: 4 })),
            edit(1, Field::Int(0)),
        ];
        let out = from_guest(r, Sent::of(&batch, 0), None, &edits, b"****", &fields).unwrap();
        assert_eq!(
            out.value,
            Value::Map(vec![(
                Value::String("user".into()),
                Value::Map(vec![
                    (Value::String("email".into()), Value::String("****".into())),
                    (Value::String("phone".into()), Value::Int64(0)),
                ])
            )])
        );
    }
}
