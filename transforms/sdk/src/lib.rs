//! The guest SDK for sluice WebAssembly transforms: a transform is one struct
//! implementing [`Transform`], exported with [`export!`], built for
//! `wasm32-wasip2`. It hides the bindings of the `sluice:transform@0.2.0` world
//! (`transforms/wit`).
//!
//! It must not depend on sluice's runtime crates: guests are built for wasm32
//! alone and see nothing of the host but the WIT world. A guest has no
//! filesystem, network, clock or randomness (the host traps every WASI call),
//! so use `BTreeMap` rather than a randomly seeded `HashMap`.
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
//!         Reads::empty()
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

pub use bindings::sluice::transform::types::{Data, Header, Level, Outcome, Reads, Record};

/// The transform's keys, `transforms.<alias>.` removed; the host's own keys
/// (`module`, `memory.max.bytes`, `timeout.ms`, `type`, `predicate`, `negate`)
/// are left out.
pub type Config = BTreeMap<String, String>;

/// A transform. The host builds one instance per task (and again after a trap),
/// calls [`Transform::init`] once, then [`Transform::apply_batch`] per batch.
pub trait Transform: Sized + 'static {
    /// Builds the transform from its configuration; an `Err` fails the
    /// connector's start with this message.
    fn init(config: &Config) -> Result<Self, String>;

    /// The parts of a record the transform reads; the host leaves the others
    /// out ([`Data::Omitted`], no headers), which saves encoding and copying
    /// them. All of them unless overridden.
    fn reads(&self) -> Reads {
        Reads::all()
    }

    /// Decides one record's fate. Return [`Outcome::Unchanged`] rather than
    /// `Keep` of the same record: nothing then crosses back to the host.
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

impl Record {
    /// The last value of header `key`, as Kafka Connect's `lastWithName`.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_deref())
    }
}

/// Dotted paths into JSON values (`identity.api_key_id`), for transforms
/// configured by field name.
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

    thread_local! {
        // A guest instance is single-threaded; the host calls `init` before `apply`.
        static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    pub fn init<T: Transform>(config: Vec<(String, String)>) -> Result<Reads, String> {
        // A panic aborts the instance (a trap); telling the host first puts the
        // panic's message into the records' error instead of a bare trap.
        std::panic::set_hook(Box::new(|info| log(Level::Error, &info.to_string())));
        let config: Config = config.into_iter().collect();
        let transform = T::init(&config)?;
        let reads = transform.reads();
        STATE.with(|s| *s.borrow_mut() = Some(Box::new(transform)));
        Ok(reads)
    }

    pub fn apply<T: Transform>(records: Vec<Record>) -> Vec<Outcome> {
        STATE.with(|s| {
            let mut state = s.borrow_mut();
            match state.as_mut().and_then(|t| t.downcast_mut::<T>()) {
                Some(transform) => transform.apply_batch(records),
                None => records
                    .iter()
                    .map(|_| Outcome::Error("the transform was not initialised".to_owned()))
                    .collect(),
            }
        })
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
            ) -> ::std::result::Result<$crate::Reads, ::std::string::String> {
                $crate::rt::init::<$transform>(config)
            }

            fn apply(
                records: ::std::vec::Vec<$crate::Record>,
            ) -> ::std::vec::Vec<$crate::Outcome> {
                $crate::rt::apply::<$transform>(records)
            }
        }

        $crate::bindings::export_world!(__SluiceGuest with_types_in $crate::bindings);
    };
}
