//! One record as one `_bulk` action: its metadata line and, for writes, its
//! source line. Pure: the index, the id, the operation and the external
//! version are functions of the record and the configuration alone, so a
//! replayed record becomes the same action.

use std::io::Write;

use serde_json::json;
use sluice_api::json::JsonView;
use sluice_api::{Record, Value};

use crate::config::{EsConfig, NullValues};

/// Why a record cannot become an action; said with the record's coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

/// What a record asks of the index.
#[derive(Debug, PartialEq, Eq)]
pub enum Built {
    /// NDJSON lines, each ending in a newline.
    Action(Vec<u8>),
    /// A tombstone under `behavior.on.null.values=ignore`.
    Skip,
}

/// The index a record goes to: its topic, lower-cased as Elasticsearch
/// requires (a RegexRouter or TimestampRouter in the chain renames the topic
/// first), or its data stream.
pub fn index_name(config: &EsConfig, topic: &str) -> String {
    match &config.data_stream {
        Some(ds) => format!(
            "{}-{}-{}",
            ds.kind,
            ds.dataset.replace("${topic}", topic),
            ds.namespace.replace("${topic}", topic)
        )
        .to_lowercase(),
        None => topic.to_lowercase(),
    }
}

/// The document id: the key, or topic+partition+offset when the key is ignored.
/// A string or integer key is its text; a struct or map key (a CDC primary
/// key) is its compact JSON, where Confluent rejects it.
pub fn document_id(config: &EsConfig, record: &Record) -> Result<String, Invalid> {
    if config.ignores_key(&record.topic) {
        return Ok(format!(
            "{}+{}+{}",
            record.topic,
            record.partition.unwrap_or(-1),
            record.offset.unwrap_or(-1)
        ));
    }
    let id = match &record.key {
        Value::Null => {
            return Err(Invalid(
                "the record has no key to be the document id (set key.ignore=true to use topic+partition+offset)".into(),
            ))
        }
        Value::String(s) => s.clone(),
        Value::Int8(v) => v.to_string(),
        Value::Int16(v) => v.to_string(),
        Value::Int32(v) => v.to_string(),
        Value::Int64(v) => v.to_string(),
        other => serde_json::to_string(&JsonView::new(record.key_schema.as_deref(), other))
            .map_err(|e| Invalid(format!("the key cannot be rendered as an id: {e}")))?,
    };
    if id.is_empty() || id.len() > 512 {
        return Err(Invalid(format!(
            "a document id must be 1 to 512 bytes; the key gives {}",
            id.len()
        )));
    }
    Ok(id)
}

/// The external version: the value of `external.version.header` when set, else
/// the Kafka offset. The header holds a decimal integer (sluice's
/// `__sluice.lsn.change`) or a `<commit LSN>/<index>` position, packed as
/// `LSN << 20 | index` so it orders as the database committed.
pub fn version(config: &EsConfig, record: &Record) -> Result<i64, Invalid> {
    let Some(name) = &config.version_header else {
        return record
            .offset
            .ok_or_else(|| Invalid("the record has no offset to version by".into()));
    };
    let text = record
        .headers
        .last(name)
        .and_then(|h| h.value.as_deref())
        .ok_or_else(|| Invalid(format!("no '{name}' header (external.version.header)")))?;
    let text = std::str::from_utf8(text)
        .map_err(|_| Invalid(format!("the '{name}' header is not text")))?;
    parse_version(text).ok_or_else(|| {
        Invalid(format!(
            "the '{name}' header '{text}' is neither a non-negative integer nor <lsn>/<index> that fits a version"
        ))
    })
}

fn parse_version(text: &str) -> Option<i64> {
    match text.split_once('/') {
        None => text.trim().parse::<i64>().ok().filter(|v| *v >= 0),
        Some((lsn, index)) => {
            let lsn: i64 = lsn.trim().parse().ok().filter(|v| *v >= 0)?;
            let index: i64 = index
                .trim()
                .parse()
                .ok()
                .filter(|v| (0..1 << 20).contains(v))?;
            lsn.checked_mul(1 << 20)?.checked_add(index)
        }
    }
}

/// The document body: the value as JSON, which must be an object. A string or
/// bytes value is taken as JSON text (StringConverter, ByteArrayConverter);
/// `checked` says the runtime has already parsed it (`put_json`).
fn source(record: &Record, checked: bool) -> Result<Vec<u8>, Invalid> {
    let not_object = || Invalid("the value is not a JSON object".into());
    let text = match &record.value {
        Value::Map(_) | Value::Struct(_) => {
            let bytes = serde_json::to_vec(&JsonView::new(
                record.value_schema.as_deref(),
                &record.value,
            ))
            .map_err(|e| Invalid(format!("the value cannot be rendered as JSON: {e}")))?;
            // serde_json writes one line with nothing before the value; a
            // map with keys that are not strings is an array of entries.
            return if bytes.first() == Some(&b'{') {
                Ok(bytes)
            } else {
                Err(not_object())
            };
        }
        Value::String(s) => s.as_bytes(),
        Value::Bytes(b) => b,
        _ => return Err(Invalid("the value is not an object".into())),
    };
    // Text must be a JSON object (valid JSON whose first token is `{`), and a
    // document is one line of the NDJSON body. Checked without building the value.
    if !checked {
        serde_json::from_slice::<serde::de::IgnoredAny>(text).map_err(|_| not_object())?;
    }
    if text.iter().find(|c| !c.is_ascii_whitespace()) != Some(&b'{') {
        return Err(not_object());
    }
    Ok(sluice_api::json::one_line(text).into_owned())
}

/// What names the record's document across requests, when it has one the
/// task must keep in order: `<index>/<id>` for a keyed record (ids from
/// coordinates are unique; they need no ordering).
pub fn document(config: &EsConfig, record: &Record) -> Option<String> {
    if config.ignores_key(&record.topic) {
        return None;
    }
    let id = document_id(config, record).ok()?;
    Some(format!("{}/{id}", index_name(config, &record.topic)))
}

/// Builds the action for one record.
pub fn build(config: &EsConfig, record: &Record) -> Result<Built, Invalid> {
    build_from(config, record, false)
}

/// Builds the action for one record whose value is JSON text the runtime has
/// checked (`SinkTask::put_json`): written into the body as it came.
pub fn build_json(config: &EsConfig, record: &Record) -> Result<Built, Invalid> {
    build_from(config, record, true)
}

fn build_from(config: &EsConfig, record: &Record, checked: bool) -> Result<Built, Invalid> {
    let index = index_name(config, &record.topic);
    let keyed = !config.ignores_key(&record.topic);
    let mut out = Vec::with_capacity(128);
    // Offsets only ever grow within a partition: `external` (strictly newer)
    // as Confluent. A header position may be shared by a delete and its
    // tombstone: `external_gte`, so the later one still applies.
    let version_type = if config.version_header.is_some() {
        "external_gte"
    } else {
        "external"
    };
    if record.value.is_null() {
        match config.null_values {
            NullValues::Ignore => return Ok(Built::Skip),
            NullValues::Fail => {
                return Err(Invalid(
                    "a null value (tombstone) with behavior.on.null.values=fail".into(),
                ))
            }
            NullValues::Delete => {}
        }
        if config.data_stream.is_some() || !keyed {
            return Err(Invalid(
                "a tombstone names no document here (data streams and key.ignore=true cannot delete)".into(),
            ));
        }
        let id = document_id(config, record)?;
        let versioned = if config.upsert {
            None
        } else {
            Some((version(config, record)?, version_type))
        };
        meta(&mut out, "delete", &index, Some(&id), versioned)?;
        return Ok(Built::Action(out));
    }
    let body = source(record, checked)?;
    if let Some(ds) = &config.data_stream {
        let mut doc: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&body).map_err(|e| Invalid(e.to_string()))?;
        if !doc.contains_key("@timestamp") {
            let from_field = ds.timestamp_fields.iter().find_map(|f| doc.get(f).cloned());
            let ts = match (from_field, record.timestamp) {
                (Some(v), _) => v,
                (None, Some(ms)) => json!(ms),
                (None, None) => return Err(Invalid("no timestamp for @timestamp".into())),
            };
            doc.insert("@timestamp".into(), ts);
        }
        // A replayed record is a conflict on its id, not a second document.
        let id = keyed.then(|| document_id(config, record)).transpose()?;
        meta(&mut out, "create", &index, id.as_deref(), None)?;
        serde_json::to_writer(&mut out, &doc).map_err(|e| Invalid(e.to_string()))?;
        out.push(b'\n');
        return Ok(Built::Action(out));
    }
    let id = document_id(config, record)?;
    if config.upsert {
        meta(&mut out, "update", &index, Some(&id), None)?;
        out.extend_from_slice(b"{\"doc\":");
        out.extend_from_slice(&body);
        out.extend_from_slice(b",\"doc_as_upsert\":true}\n");
        return Ok(Built::Action(out));
    }
    let versioned = if keyed {
        Some((version(config, record)?, version_type))
    } else {
        None
    };
    meta(&mut out, "index", &index, Some(&id), versioned)?;
    out.extend_from_slice(&body);
    out.push(b'\n');
    Ok(Built::Action(out))
}

/// An action's metadata line, written straight into the body:
/// `{"<op>":{"_index":…,"_id":…,"version":…,"version_type":…}}`.
fn meta(
    out: &mut Vec<u8>,
    op: &str,
    index: &str,
    id: Option<&str>,
    versioned: Option<(i64, &str)>,
) -> Result<(), Invalid> {
    let fail = |e: serde_json::Error| Invalid(e.to_string());
    write!(out, "{{\"{op}\":{{\"_index\":").map_err(|e| Invalid(e.to_string()))?;
    serde_json::to_writer(&mut *out, index).map_err(fail)?;
    if let Some(id) = id {
        out.extend_from_slice(b",\"_id\":");
        serde_json::to_writer(&mut *out, id).map_err(fail)?;
    }
    if let Some((version, kind)) = versioned {
        write!(out, ",\"version\":{version},\"version_type\":\"{kind}\"")
            .map_err(|e| Invalid(e.to_string()))?;
    }
    out.extend_from_slice(b"}}\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::TaskConfig;

    fn config(pairs: &[(&str, &str)]) -> EsConfig {
        let mut raw: TaskConfig = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        raw.insert("connection.url".into(), "http://es:9200".into());
        EsConfig::parse(&raw).unwrap()
    }

    fn record(key: Value, value: Value, offset: i64) -> Record {
        let mut r = Record::new("User-Events", key, value);
        r.partition = Some(2);
        r.offset = Some(offset);
        r.timestamp = Some(1_700_000_000_000);
        r
    }

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (Value::String(k.to_string()), v.clone()))
                .collect(),
        )
    }

    fn lines(b: Built) -> Vec<serde_json::Value> {
        let Built::Action(bytes) = b else {
            panic!("skipped")
        };
        assert!(bytes.ends_with(b"\n"));
        bytes
            .split(|c| *c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn insert_is_an_index_action_versioned_by_offset() {
        let c = config(&[]);
        let r = record(
            Value::String("u1".into()),
            map(&[("n", Value::Int32(1))]),
            41,
        );
        let l = lines(build(&c, &r).unwrap());
        assert_eq!(
            l[0],
            json!({"index": {"_index": "user-events", "_id": "u1", "version": 41, "version_type": "external"}})
        );
        assert_eq!(l[1], json!({"n": 1}));
    }

    #[test]
    fn key_ignore_ids_by_coordinates_without_version() {
        let c = config(&[("key.ignore", "true")]);
        let r = record(Value::Null, Value::String("{\"a\":\n1}".into()), 7);
        let l = lines(build(&c, &r).unwrap());
        assert_eq!(
            l[0],
            json!({"index": {"_index": "user-events", "_id": "User-Events+2+7"}})
        );
        assert_eq!(l[1], json!({"a": 1}));
    }

    #[test]
    fn checked_json_text_goes_into_the_body_as_it_came() {
        let c = config(&[("key.ignore", "true")]);
        let text = "{\"n\": 1e3,\n \"s\": \"\\u00e9\"}";
        let r = record(Value::Null, Value::Bytes(text.as_bytes().to_vec()), 7);
        let Built::Action(bytes) = build_json(&c, &r).unwrap() else {
            panic!("skipped")
        };
        let body = bytes.split(|c| *c == b'\n').nth(1).unwrap();
        assert_eq!(body, br#"{"n": 1e3,  "s": "\u00e9"}"#);
        let not_object = record(Value::Null, Value::Bytes(b"[1]".to_vec()), 8);
        assert!(build_json(&c, &not_object).is_err());
    }

    #[test]
    fn struct_keys_are_their_json_and_null_keys_are_invalid() {
        let c = config(&[]);
        let r = record(map(&[("id", Value::Int32(5))]), map(&[]), 1);
        assert_eq!(document_id(&c, &r).unwrap(), "{\"id\":5}");
        let r = record(Value::Null, map(&[]), 1);
        assert!(build(&c, &r).unwrap_err().0.contains("key.ignore"));
    }

    #[test]
    fn header_versions_follow_the_source_position() {
        let c = config(&[("external.version.header", "__sluice.lsn.change")]);
        let mut r = record(Value::Int64(9), map(&[]), 3);
        assert!(build(&c, &r).unwrap_err().0.contains("__sluice.lsn.change"));
        r.headers
            .push("__sluice.lsn.change", Some(b"123456789".to_vec()));
        let l = lines(build(&c, &r).unwrap());
        assert_eq!(l[0]["index"]["version"], json!(123456789));
        assert_eq!(l[0]["index"]["version_type"], json!("external_gte"));
        assert_eq!(parse_version("3/2"), Some(3 * (1 << 20) + 2));
        assert!(parse_version("3/2").unwrap() < parse_version("4/0").unwrap());
        assert_eq!(parse_version("-1"), None);
        assert_eq!(parse_version(&format!("{}/0", i64::MAX)), None);
    }

    #[test]
    fn tombstones_follow_behavior_on_null_values() {
        let r = record(Value::String("u1".into()), Value::Null, 9);
        assert!(build(&config(&[]), &r).unwrap_err().0.contains("fail"));
        assert_eq!(
            build(&config(&[("behavior.on.null.values", "ignore")]), &r).unwrap(),
            Built::Skip
        );
        let l = lines(build(&config(&[("behavior.on.null.values", "delete")]), &r).unwrap());
        assert_eq!(
            l,
            vec![
                json!({"delete": {"_index": "user-events", "_id": "u1", "version": 9, "version_type": "external"}})
            ]
        );
    }

    #[test]
    fn upsert_merges_without_a_version() {
        let c = config(&[("write.method", "upsert")]);
        let r = record(
            Value::String("u1".into()),
            map(&[("n", Value::Int32(1))]),
            4,
        );
        let l = lines(build(&c, &r).unwrap());
        assert_eq!(
            l[0],
            json!({"update": {"_index": "user-events", "_id": "u1"}})
        );
        assert_eq!(l[1], json!({"doc": {"n": 1}, "doc_as_upsert": true}));
    }

    #[test]
    fn data_streams_create_with_a_timestamp() {
        let c = config(&[("data.stream.type", "logs"), ("data.stream.dataset", "app")]);
        let r = record(
            Value::String("u1".into()),
            map(&[("n", Value::Int32(1))]),
            4,
        );
        let l = lines(build(&c, &r).unwrap());
        assert_eq!(
            l[0],
            json!({"create": {"_index": "logs-app-user-events", "_id": "u1"}})
        );
        assert_eq!(l[1], json!({"n": 1, "@timestamp": 1_700_000_000_000i64}));
    }

    #[test]
    fn values_that_are_not_objects_are_invalid() {
        let c = config(&[]);
        for v in [
            Value::Int32(1),
            Value::String("not json".into()),
            Value::String("[1]".into()),
            Value::String(" 1".into()),
            Value::String("{\"a\": 1".into()),
            Value::String("{\"a\": 1} x".into()),
        ] {
            let r = record(Value::String("k".into()), v, 1);
            assert!(build(&c, &r).is_err());
        }
    }
}
