//! Connect's `Requirements` checks, with its exact messages: transforms fail
//! with the same text as Connect's on the same input.

use sluice_api::schema::Schema;
use sluice_api::{ConnectError, Value};

use crate::java::class_name;

/// `requireMap`: schemaless data must be a map.
pub(crate) fn map_required(value: &Value, purpose: &str) -> ConnectError {
    ConnectError::data(format!(
        "Only Map objects supported in absence of schema for [{purpose}], found: {}",
        class_name(value, None)
    ))
}

/// `requireStruct`: data with a schema must be a struct.
pub(crate) fn struct_required(
    value: &Value,
    schema: Option<&Schema>,
    purpose: &str,
) -> ConnectError {
    ConnectError::data(format!(
        "Only Struct objects supported for [{purpose}], found: {}",
        class_name(value, schema)
    ))
}

/// `requireSchema`.
pub(crate) fn schema_required(purpose: &str) -> ConnectError {
    ConnectError::data(format!("Schema required for [{purpose}]"))
}
