//! Which half of a record a transform works on (Connect's `$Key` / `$Value`
//! variants), and taking that half out of a record and putting it back.

use sluice_api::{Record, SchemaRef, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Key,
    Value,
}

/// The schema and value of one side of a record, taken out for editing.
pub(crate) fn take(record: &mut Record, side: Side) -> (Option<SchemaRef>, Value) {
    match side {
        Side::Key => (record.key_schema.take(), std::mem::take(&mut record.key)),
        Side::Value => (
            record.value_schema.take(),
            std::mem::take(&mut record.value),
        ),
    }
}

pub(crate) fn put(record: &mut Record, side: Side, schema: Option<SchemaRef>, value: Value) {
    match side {
        Side::Key => {
            record.key_schema = schema;
            record.key = value;
        }
        Side::Value => {
            record.value_schema = schema;
            record.value = value;
        }
    }
}

/// The schema and value of one side, borrowed.
pub(crate) fn peek(record: &Record, side: Side) -> (Option<&SchemaRef>, &Value) {
    match side {
        Side::Key => (record.key_schema.as_ref(), &record.key),
        Side::Value => (record.value_schema.as_ref(), &record.value),
    }
}

/// Declares a transform's `$Key` and `$Value` plugins under Connect's class
/// names; `$ty::new(config, side)` builds either.
macro_rules! side_plugins {
    ($simple:literal, $ty:ident) => {
        pub fn plugins() -> [sluice_api::TransformPlugin; 2] {
            [
                sluice_api::TransformPlugin {
                    name: concat!($simple, "$Key"),
                    aliases: &[concat!(
                        "org.apache.kafka.connect.transforms.",
                        $simple,
                        "$Key"
                    )],
                    config_def,
                    create: |c| Ok(Box::new($ty::new(c, $crate::side::Side::Key)?)),
                },
                sluice_api::TransformPlugin {
                    name: concat!($simple, "$Value"),
                    aliases: &[concat!(
                        "org.apache.kafka.connect.transforms.",
                        $simple,
                        "$Value"
                    )],
                    config_def,
                    create: |c| Ok(Box::new($ty::new(c, $crate::side::Side::Value)?)),
                },
            ]
        }
    };
}

pub(crate) use side_plugins;
