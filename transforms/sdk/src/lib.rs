//! The guest SDK for sluice WebAssembly transforms: a transform is one struct
//! implementing [`Transform`], exported with [`export!`], built for
//! `wasm32-wasip2`. It hides the bindings of the `sluice:transform@0.3.0` world
//! (`transforms/wit`).
//!
//! It must not depend on sluice's runtime crates: guests are built for wasm32
//! alone and see nothing of the host but the WIT world. A guest has no
//! filesystem, network, clock or randomness (the host traps every WASI call),
//! so use `BTreeMap` rather than a randomly seeded `HashMap`.
//!
//! A transform says in [`Transform::reads`] what it reads: whole parts of a
//! record ([`Parts`]), or single fields of its value ([`Reads::value_fields`]),
//! which cross typed ([`Field`]) and come back as edits
//! ([`Record::set_field`]) — the cheap way to work on structured values. The
//! SDK reads the same fields out of a value that is JSON text, and writes the
//! edits back into the text, so a transform sees one form.
//!
//! ```ignore
//! use sluice_transform::{Config, Outcome, Reads, Record, Transform};
//!
//! struct Noop;
//!
//! impl Transform for Noop {
//!     fn init(_config: &Config) -> Result<Self, String> {
//!         Ok(Noop)
//!     }
//!     // Reads nothing: the host sends no key, value or headers.
//!     fn reads(&self) -> Reads {
//!         Reads::nothing()
//!     }
//!     fn apply(&mut self, _record: Record) -> Outcome {
//!         Outcome::Unchanged
//!     }
//! }
//!
//! sluice_transform::export!(Noop);
//! ```

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "transform",
        pub_export_macro: true,
        export_macro_name: "export_world",
        default_bindings_module: "sluice_transform::bindings",
    });
}

use bindings::sluice::transform::types as wit;
pub use wit::{Data, Header, Level, Parts};

/// The transform's keys, `transforms.<alias>.` removed; the host's own keys
/// (`module`, `memory.max.bytes`, `timeout.ms`, `type`, `predicate`, `negate`)
/// are left out.
pub type Config = BTreeMap<String, String>;

/// What a transform reads of a record; the host leaves the rest out, which
/// saves encoding and copying it.
#[derive(Debug, Clone)]
pub struct Reads {
    /// Parts read whole: a key or value not read arrives as [`Data::Omitted`],
    /// unread headers as none.
    pub whole: Parts,
    /// Dotted paths of value fields read one by one ([`Record::field`]).
    pub value_fields: Vec<String>,
}

impl Reads {
    /// Key, value and headers, whole.
    pub fn all() -> Self {
        Parts::all().into()
    }

    /// Nothing but the record's coordinates (topic, partition, offset,
    /// timestamp).
    pub fn nothing() -> Self {
        Parts::empty().into()
    }

    /// These fields of the value (dotted paths such as `user.email`), and no
    /// part whole: a structured value crosses as these fields alone, typed.
    pub fn value_fields<S: AsRef<str>>(paths: &[S]) -> Self {
        Reads {
            whole: Parts::empty(),
            value_fields: paths.iter().map(|p| p.as_ref().to_owned()).collect(),
        }
    }
}

impl From<Parts> for Reads {
    fn from(whole: Parts) -> Self {
        Reads {
            whole,
            value_fields: Vec::new(),
        }
    }
}

/// One record as a transform sees it: the parts it reads.
#[derive(Debug, Clone)]
pub struct Record {
    /// Set another to re-route the record.
    pub topic: Rc<str>,
    pub partition: Option<i32>,
    /// The record's Kafka offset on the sink side.
    pub offset: Option<i64>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// The key, or [`Data::Omitted`] when not read whole; setting one re-keys.
    pub key: Data,
    /// The value, or [`Data::Omitted`] when not read whole (its fields may
    /// still be, see [`Record::field`]).
    pub value: Data,
    /// Empty when the headers are not read.
    pub headers: Vec<Header>,
    fields: Vec<Slot>,
    /// A value given as JSON text, parsed, when fields are read (boxed: most
    /// records have none, and a record is moved about).
    parsed: Option<Box<serde_json::Value>>,
}

/// A value field as given, and whether the transform set it.
#[derive(Debug, Clone, Default)]
struct Slot {
    value: Option<Field>,
    set: bool,
}

impl Record {
    /// The value field `i` of [`Reads::value_fields`]; none when the value has
    /// no such field or is neither structured nor JSON text.
    pub fn field(&self, i: usize) -> Option<&Field> {
        self.fields.get(i).and_then(|s| s.value.as_ref())
    }

    /// Sets value field `i` of [`Reads::value_fields`]. On a structured value
    /// the host keeps the schema, so the new value must fit the field's type
    /// ([`Field::Int`] for any integer or float field, [`Field::Float`] for a
    /// float one); a record where it does not fails with a message.
    pub fn set_field(&mut self, i: usize, value: Field) {
        if self.fields.len() <= i {
            self.fields.resize(i + 1, Slot::default());
        }
        self.fields[i] = Slot {
            value: Some(value),
            set: true,
        };
    }

    /// The last value of header `key`, as Kafka Connect's `lastWithName`.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_deref())
    }
}

/// What becomes of one record.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Keep it, with whatever was changed (topic, key, value, fields, headers,
    /// partition, timestamp).
    Keep(Record),
    /// Keep it exactly as it came: the cheapest answer, nothing crosses back.
    Unchanged,
    /// Drop it (a filter).
    Drop,
    /// Reject it: the connector's error policy handles it (the dead-letter
    /// queue's headers carry this message).
    Error(String),
}

/// A transform. The host builds one instance per task (and again after a trap),
/// calls [`Transform::init`] once, then [`Transform::apply_batch`] per batch.
pub trait Transform: Sized + 'static {
    /// Builds the transform from its configuration; an `Err` fails the
    /// connector's start with this message.
    fn init(config: &Config) -> Result<Self, String>;

    /// What the transform reads. Everything whole unless overridden.
    fn reads(&self) -> Reads {
        Reads::all()
    }

    /// Decides one record's fate.
    fn apply(&mut self, record: Record) -> Outcome;

    /// Decides a batch's fate, one outcome per record, in order. Override it to
    /// share work across a batch.
    fn apply_batch(&mut self, records: Vec<Record>) -> Vec<Outcome> {
        records.into_iter().map(|r| self.apply(r)).collect()
    }
}

/// Writes to the worker's log.
pub fn log(level: Level, message: &str) {
    bindings::sluice::transform::host::log(level, message);
}

impl Data {
    /// The data as JSON, whichever form it came in: decoded JSON, or text or
    /// bytes that parse as JSON. `None` for null and for anything else.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        match self {
            Data::Null | Data::Omitted => None,
            Data::Json(text) | Data::Text(text) => serde_json::from_str(text).ok(),
            Data::Bytes(bytes) => serde_json::from_slice(bytes).ok(),
        }
    }

    /// A structured value for the host to decode; the host keeps the record's
    /// schema when the value still fits it.
    pub fn from_json(value: &serde_json::Value) -> Data {
        Data::Json(value.to_string())
    }

    /// `value` in the form this data came in: JSON text read as a string
    /// stays a string, bytes stay bytes, anything else becomes [`Data::Json`].
    pub fn replaced_with(&self, value: &serde_json::Value) -> Data {
        match self {
            Data::Text(_) => Data::Text(value.to_string()),
            Data::Bytes(_) => Data::Bytes(value.to_string().into_bytes()),
            Data::Null | Data::Omitted | Data::Json(_) => Data::from_json(value),
        }
    }

    /// The data's text: a string value, JSON text or UTF-8 bytes.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Data::Null | Data::Omitted => None,
            Data::Json(text) | Data::Text(text) => Some(text),
            Data::Bytes(bytes) => std::str::from_utf8(bytes).ok(),
        }
    }
}

/// One field of a structured value, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Null,
    Boolean(bool),
    /// An INT8, INT16, INT32 or INT64 field.
    Int(i64),
    /// A FLOAT32 or FLOAT64 field.
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// Anything else (a struct, map, array or decimal) as compact JSON, struct
    /// fields named from the schema, bytes and decimals as base64.
    Json(String),
}

impl Field {
    /// A scalar's text: a string as is, a number or boolean as written.
    pub fn to_text(&self) -> Option<String> {
        match self {
            Field::Text(s) => Some(s.clone()),
            Field::Int(n) => Some(n.to_string()),
            Field::Float(n) => Some(n.to_string()),
            Field::Boolean(b) => Some(b.to_string()),
            Field::Null | Field::Bytes(_) | Field::Json(_) => None,
        }
    }

    fn from_json(value: &serde_json::Value) -> Field {
        use serde_json::Value as J;
        match value {
            J::Null => Field::Null,
            J::Bool(b) => Field::Boolean(*b),
            J::Number(n) => n
                .as_i64()
                .map_or_else(|| Field::Float(n.as_f64().unwrap_or(f64::NAN)), Field::Int),
            J::String(s) => Field::Text(s.clone()),
            J::Array(_) | J::Object(_) => Field::Json(value.to_string()),
        }
    }

    fn into_json(self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Field::Null => J::Null,
            Field::Boolean(b) => J::Bool(b),
            Field::Int(n) => J::from(n),
            Field::Float(n) => serde_json::Number::from_f64(n).map_or(J::Null, J::Number),
            Field::Text(s) => J::String(s),
            // As Kafka Connect's JSON converter writes bytes.
            Field::Bytes(b) => J::String(base64(&b)),
            Field::Json(text) => serde_json::from_str(&text).unwrap_or(J::String(text)),
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Dotted paths into JSON values (`identity.api_key_id`), for transforms
/// configured by field name that read a value whole.
pub mod json {
    use serde_json::Value;

    /// The value at `path`, each dot stepping into an object.
    pub fn field<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
        path.split('.').try_fold(value, |v, name| v.get(name))
    }

    /// The value at `path`, to change in place.
    pub fn field_mut<'a>(value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
        path.split('.').try_fold(value, |v, name| v.get_mut(name))
    }

    /// A scalar's text: a string as is, a number or boolean as written.
    pub fn text(value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// A comma-separated configuration list, blanks trimmed, as Kafka Connect's LIST.
pub fn list(config: &Config, key: &str) -> Vec<String> {
    config
        .get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// What [`export!`] expands to; not part of the API.
#[doc(hidden)]
pub mod rt {
    use super::*;

    /// An initialised instance: the transform and what it reads.
    struct Instance {
        transform: Box<dyn Any>,
        reads: Reads,
    }

    thread_local! {
        // A guest instance is single-threaded; the host calls `init` before `apply`.
        static STATE: RefCell<Option<Instance>> = const { RefCell::new(None) };
    }

    pub fn init<T: Transform>(config: Vec<(String, String)>) -> Result<wit::Reads, String> {
        // A panic aborts the instance (a trap); telling the host first puts the
        // panic's message into the records' error instead of a bare trap.
        std::panic::set_hook(Box::new(|info| log(Level::Error, &info.to_string())));
        let config: Config = config.into_iter().collect();
        let transform = T::init(&config)?;
        let reads = transform.reads();
        if let Some(bad) = reads
            .value_fields
            .iter()
            .find(|p| p.split('.').any(str::is_empty))
        {
            return Err(format!("'{bad}' is not a field path"));
        }
        let answer = wit::Reads {
            whole: reads.whole,
            value_fields: reads.value_fields.clone(),
        };
        STATE.with(|s| {
            *s.borrow_mut() = Some(Instance {
                transform: Box::new(transform),
                reads,
            })
        });
        Ok(answer)
    }

    pub fn apply<T: Transform>(mut batch: wit::Batch) -> wit::Answer {
        STATE.with(|s| {
            let mut state = s.borrow_mut();
            let instance = state
                .as_mut()
                .and_then(|i| Some((i.transform.downcast_mut::<T>()?, &i.reads)));
            let Some((transform, reads)) = instance else {
                let n = batch.topic.len();
                return wit::Answer {
                    outcomes: vec![wit::Outcome::Error; n],
                    changes: Vec::new(),
                    edits: Vec::new(),
                    errors: vec!["the transform was not initialised".to_owned(); n],
                    text: Vec::new(),
                };
            };
            let topics: Vec<Rc<str>> = std::mem::take(&mut batch.topics)
                .into_iter()
                .map(Rc::from)
                .collect();
            let records = records(&mut batch, &topics, reads);
            let mut answer = wit::Answer {
                outcomes: Vec::with_capacity(records.len()),
                changes: Vec::new(),
                edits: Vec::new(),
                errors: Vec::new(),
                text: Vec::new(),
            };
            for (i, outcome) in transform.apply_batch(records).into_iter().enumerate() {
                let outcome = match outcome {
                    Outcome::Keep(record) => keep(record, i, &batch, &topics, reads, &mut answer),
                    Outcome::Unchanged => wit::Outcome::Unchanged,
                    Outcome::Drop => wit::Outcome::Drop,
                    Outcome::Error(why) => {
                        answer.errors.push(why);
                        wit::Outcome::Error
                    }
                };
                answer.outcomes.push(outcome);
            }
            answer
        })
    }

    /// The batch's columns as records.
    fn records(batch: &mut wit::Batch, topics: &[Rc<str>], reads: &Reads) -> Vec<Record> {
        let n = reads.value_fields.len();
        let mut keys = std::mem::take(&mut batch.keys).into_iter();
        let mut values = std::mem::take(&mut batch.values).into_iter();
        let mut headers = std::mem::take(&mut batch.headers).into_iter();
        let text = &batch.text;
        let mut fields = batch
            .fields
            .iter()
            .map(|f| f.as_ref().and_then(|f| field(f, text)));
        batch
            .topic
            .iter()
            .enumerate()
            .map(|(i, &topic)| {
                let mut record = Record {
                    topic: topics
                        .get(topic as usize)
                        .cloned()
                        .unwrap_or_else(|| Rc::from("")),
                    partition: batch.partition.get(i).copied().filter(|&p| p != i32::MIN),
                    offset: batch.offset.get(i).copied().filter(|&o| o != i64::MIN),
                    timestamp: batch.timestamp.get(i).copied().filter(|&t| t != i64::MIN),
                    key: keys.next().unwrap_or(Data::Omitted),
                    value: values.next().unwrap_or(Data::Omitted),
                    headers: headers.next().unwrap_or_default(),
                    fields: fields
                        .by_ref()
                        .take(n)
                        .map(|value| Slot { value, set: false })
                        .collect(),
                    parsed: None,
                };
                if n > 0 {
                    read_json_text(&mut record, &reads.value_fields);
                }
                record
            })
            .collect()
    }

    /// A field as the host gave it, its bytes out of the batch's text; none
    /// when a span is out of bounds (not from this host) or text is not UTF-8.
    fn field(field: &wit::Field, text: &[u8]) -> Option<Field> {
        let bytes = |s: &wit::Span| {
            text.get(s.start as usize..(s.start as usize).checked_add(s.len as usize)?)
        };
        let string = |s: &wit::Span| String::from_utf8(bytes(s)?.to_vec()).ok();
        Some(match field {
            wit::Field::Null => Field::Null,
            wit::Field::Boolean(b) => Field::Boolean(*b),
            wit::Field::Int(n) => Field::Int(*n),
            wit::Field::Float(n) => Field::Float(*n),
            wit::Field::Text(s) => Field::Text(string(s)?),
            wit::Field::Bytes(s) => Field::Bytes(bytes(s)?.to_vec()),
            wit::Field::Json(s) => Field::Json(string(s)?),
        })
    }

    /// `field` for the host, its bytes appended to `text`.
    fn to_wit(field: Field, text: &mut Vec<u8>) -> wit::Field {
        let mut span = |bytes: &[u8]| {
            let start = text.len();
            text.extend_from_slice(bytes);
            // The host refuses a span past its answer's text.
            wit::Span {
                start: u32::try_from(start).unwrap_or(u32::MAX),
                len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            }
        };
        match field {
            Field::Null => wit::Field::Null,
            Field::Boolean(b) => wit::Field::Boolean(b),
            Field::Int(n) => wit::Field::Int(n),
            Field::Float(n) => wit::Field::Float(n),
            Field::Text(s) => wit::Field::Text(span(s.as_bytes())),
            Field::Bytes(b) => wit::Field::Bytes(span(&b)),
            Field::Json(s) => wit::Field::Json(span(s.as_bytes())),
        }
    }

    /// A value that is JSON text (a string or bytes) has no fields for the
    /// host: read them here, so a transform sees one form.
    fn read_json_text(record: &mut Record, paths: &[String]) {
        if !matches!(record.value, Data::Text(_) | Data::Bytes(_)) {
            return;
        }
        let Some(parsed) = record.value.to_json().filter(serde_json::Value::is_object) else {
            return;
        };
        record.fields = paths
            .iter()
            .map(|p| Slot {
                value: json::field(&parsed, p).map(Field::from_json),
                set: false,
            })
            .collect();
        record.parsed = Some(Box::new(parsed));
    }

    /// Sets (or adds) the field at `path` of an object.
    fn set_json(root: &mut serde_json::Value, path: &str, value: serde_json::Value) {
        let (parent, name) = match path.rsplit_once('.') {
            Some((parent, name)) => match json::field_mut(root, parent) {
                Some(p) => (p, name),
                None => return,
            },
            None => (root, path),
        };
        if let Some(object) = parent.as_object_mut() {
            object.insert(name.to_owned(), value);
        }
    }

    /// Record `i` kept: its field edits, and its changes unless the fields
    /// are all that can have changed.
    fn keep(
        mut record: Record,
        i: usize,
        batch: &wit::Batch,
        topics: &[Rc<str>],
        reads: &Reads,
        answer: &mut wit::Answer,
    ) -> wit::Outcome {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let set = record.fields.iter().any(|s| s.set);
        match record.parsed.take() {
            // Edits to JSON text go back as the text, in the form it came in.
            Some(mut parsed) if set => {
                for (path, slot) in reads.value_fields.iter().zip(&mut record.fields) {
                    if let Some(value) = slot.value.take().filter(|_| slot.set) {
                        set_json(&mut parsed, path, value.into_json());
                    }
                }
                record.value = record.value.replaced_with(&parsed);
            }
            _ => {
                for (f, slot) in record.fields.iter_mut().enumerate() {
                    if let Some(value) = slot.value.take().filter(|_| slot.set) {
                        answer.edits.push(wit::Edit {
                            record: index,
                            field: u32::try_from(f).unwrap_or(u32::MAX),
                            value: to_wit(value, &mut answer.text),
                        });
                    }
                }
            }
        }
        let given = |column: &[i64]| column.get(i).copied().filter(|&t| t != i64::MIN);
        let same_topic = batch
            .topic
            .get(i)
            .and_then(|&t| topics.get(t as usize))
            .is_some_and(|given| Rc::ptr_eq(&record.topic, given) || record.topic == *given);
        let edited_only = same_topic
            && matches!(record.key, Data::Omitted)
            && matches!(record.value, Data::Omitted)
            && !reads.whole.contains(Parts::HEADERS)
            && record.partition == batch.partition.get(i).copied().filter(|&p| p != i32::MIN)
            && record.timestamp == given(&batch.timestamp);
        if edited_only {
            return wit::Outcome::Edited;
        }
        answer.changes.push(wit::Changes {
            topic: (!same_topic).then(|| record.topic.to_string()),
            partition: record.partition,
            timestamp: record.timestamp,
            key: record.key,
            value: record.value,
            headers: reads
                .whole
                .contains(Parts::HEADERS)
                .then_some(record.headers),
        });
        wit::Outcome::Keep
    }
}

/// Exports a [`Transform`] as the component's `init` and `apply`.
#[macro_export]
macro_rules! export {
    ($transform:ty) => {
        struct __SluiceGuest;

        impl $crate::bindings::Guest for __SluiceGuest {
            fn init(
                config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            ) -> ::std::result::Result<
                $crate::bindings::sluice::transform::types::Reads,
                ::std::string::String,
            > {
                $crate::rt::init::<$transform>(config)
            }

            fn apply(
                batch: $crate::bindings::sluice::transform::types::Batch,
            ) -> $crate::bindings::sluice::transform::types::Answer {
                $crate::rt::apply::<$transform>(batch)
            }
        }

        $crate::bindings::export_world!(__SluiceGuest with_types_in $crate::bindings);
    };
}
