//! Type mapping (pure): a Connect schema (with Connect's and Debezium's
//! logical types) as a column's PostgreSQL type and the wire form it is
//! copied in, and a value as a cell of that wire form.
//!
//! The wire form is what the staging table holds: PostgreSQL's own binary
//! form where it is cheap to produce (integers, floats, dates, timestamps),
//! text where PostgreSQL must parse anyway (numeric, uuid, arrays, JSON).
//! The merge statement casts each staging column to the target column's
//! actual type, which is what lets a string field land in an existing uuid,
//! jsonb, timestamptz or enum column.

use sluice_api::json::JsonView;
use sluice_api::schema::{Schema, SchemaType, DATE_NAME, DECIMAL_NAME, TIMESTAMP_NAME, TIME_NAME};
use sluice_api::Value;

/// The type a column gets when sluice creates or adds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Bytea,
    Numeric,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Uuid,
    Jsonb,
    Xml,
    Array(Box<ColType>),
}

impl ColType {
    pub fn sql(&self) -> String {
        match self {
            ColType::Bool => "boolean".into(),
            ColType::Int2 => "smallint".into(),
            ColType::Int4 => "integer".into(),
            ColType::Int8 => "bigint".into(),
            ColType::Float4 => "real".into(),
            ColType::Float8 => "double precision".into(),
            ColType::Text => "text".into(),
            ColType::Bytea => "bytea".into(),
            ColType::Numeric => "numeric".into(),
            ColType::Date => "date".into(),
            ColType::Time => "time without time zone".into(),
            ColType::TimeTz => "time with time zone".into(),
            ColType::Timestamp => "timestamp without time zone".into(),
            ColType::TimestampTz => "timestamp with time zone".into(),
            ColType::Uuid => "uuid".into(),
            ColType::Jsonb => "jsonb".into(),
            ColType::Xml => "xml".into(),
            ColType::Array(e) => format!("{}[]", e.sql()),
        }
    }
}

/// How a column's values travel in the binary COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    Text,
    Bytes,
    /// Days since 1970-01-01.
    Date,
    /// Microseconds since midnight.
    Time,
    /// Microseconds since 1970-01-01 (a timestamp without time zone).
    Timestamp,
    /// Microseconds since 1970-01-01 UTC.
    TimestampTz,
}

impl Wire {
    pub fn sql(self) -> &'static str {
        match self {
            Wire::Bool => "boolean",
            Wire::I16 => "smallint",
            Wire::I32 => "integer",
            Wire::I64 => "bigint",
            Wire::F32 => "real",
            Wire::F64 => "double precision",
            Wire::Text => "text",
            Wire::Bytes => "bytea",
            Wire::Date => "date",
            Wire::Time => "time without time zone",
            Wire::Timestamp => "timestamp without time zone",
            Wire::TimestampTz => "timestamp with time zone",
        }
    }
}

/// One value as it is copied.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// Date, Time, Timestamp(Tz) in the units [`Wire`] says.
    Date(i32),
    Micros(i64),
}

/// How one field becomes a column: its type and how its values are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub col: ColType,
    pub wire: Wire,
    pub kind: Kind,
}

/// How a value is turned into a cell of the mapping's wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    /// An integer count of `unit` microseconds (ms: 1000, µs: 1), or of
    /// nanoseconds when `unit` is 0.
    Scaled(i64),
    Decimal,
    VariableDecimal,
    /// Anything rendered as JSON text.
    Json,
    /// An array rendered as a PostgreSQL array literal.
    ArrayLiteral,
}

const NANOS: i64 = 0;

fn m(col: ColType, wire: Wire, kind: Kind) -> Mapping {
    Mapping { col, wire, kind }
}

/// The column a field of this schema becomes.
pub fn map_schema(schema: &Schema) -> Mapping {
    use Kind::*;
    match schema.name.as_deref() {
        Some(DECIMAL_NAME) => return m(ColType::Numeric, Wire::Text, Decimal),
        Some(DATE_NAME) | Some("io.debezium.time.Date") => {
            return m(ColType::Date, Wire::Date, Plain)
        }
        Some(TIME_NAME) | Some("io.debezium.time.Time") => {
            return m(ColType::Time, Wire::Time, Scaled(1000))
        }
        Some("io.debezium.time.MicroTime") => return m(ColType::Time, Wire::Time, Scaled(1)),
        Some("io.debezium.time.NanoTime") => return m(ColType::Time, Wire::Time, Scaled(NANOS)),
        Some(TIMESTAMP_NAME) => return m(ColType::TimestampTz, Wire::TimestampTz, Scaled(1000)),
        Some("io.debezium.time.Timestamp") => {
            return m(ColType::Timestamp, Wire::Timestamp, Scaled(1000))
        }
        Some("io.debezium.time.MicroTimestamp") => {
            return m(ColType::Timestamp, Wire::Timestamp, Scaled(1))
        }
        Some("io.debezium.time.NanoTimestamp") => {
            return m(ColType::Timestamp, Wire::Timestamp, Scaled(NANOS))
        }
        Some("io.debezium.time.ZonedTimestamp") => {
            return m(ColType::TimestampTz, Wire::Text, Plain)
        }
        Some("io.debezium.time.ZonedTime") => return m(ColType::TimeTz, Wire::Text, Plain),
        Some("io.debezium.data.Uuid") => return m(ColType::Uuid, Wire::Text, Plain),
        Some("io.debezium.data.Json") | Some("io.debezium.data.Jsonb") => {
            return m(ColType::Jsonb, Wire::Text, Plain)
        }
        Some("io.debezium.data.Xml") => return m(ColType::Xml, Wire::Text, Plain),
        Some("io.debezium.data.VariableScaleDecimal") => {
            return m(ColType::Numeric, Wire::Text, VariableDecimal)
        }
        _ => {}
    }
    match &schema.schema_type {
        SchemaType::Int8 | SchemaType::Int16 => m(ColType::Int2, Wire::I16, Plain),
        SchemaType::Int32 => m(ColType::Int4, Wire::I32, Plain),
        SchemaType::Int64 => m(ColType::Int8, Wire::I64, Plain),
        SchemaType::Float32 => m(ColType::Float4, Wire::F32, Plain),
        SchemaType::Float64 => m(ColType::Float8, Wire::F64, Plain),
        SchemaType::Boolean => m(ColType::Bool, Wire::Bool, Plain),
        SchemaType::String => m(ColType::Text, Wire::Text, Plain),
        SchemaType::Bytes => m(ColType::Bytea, Wire::Bytes, Plain),
        SchemaType::Array(element) => {
            let e = map_schema(element);
            let scalar = !matches!(e.col, ColType::Array(_) | ColType::Jsonb | ColType::Xml)
                && e.kind != Json;
            if scalar {
                m(ColType::Array(Box::new(e.col)), Wire::Text, ArrayLiteral)
            } else {
                m(ColType::Jsonb, Wire::Text, Json)
            }
        }
        SchemaType::Map(..) | SchemaType::Struct(_) => m(ColType::Jsonb, Wire::Text, Json),
    }
}

/// The column a schemaless value suggests (JSON without schemas).
pub fn map_value(value: &Value) -> Mapping {
    use Kind::*;
    match value {
        Value::Boolean(_) => m(ColType::Bool, Wire::Bool, Plain),
        Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
            m(ColType::Int8, Wire::I64, Plain)
        }
        Value::Float32(_) | Value::Float64(_) => m(ColType::Float8, Wire::F64, Plain),
        Value::Bytes(_) => m(ColType::Bytea, Wire::Bytes, Plain),
        Value::Decimal(_) => m(ColType::Numeric, Wire::Text, Decimal),
        Value::Array(_) | Value::Map(_) | Value::Struct(_) => m(ColType::Jsonb, Wire::Text, Json),
        Value::String(_) | Value::Null => m(ColType::Text, Wire::Text, Plain),
    }
}

/// A value as a cell of `mapping`'s wire form; the error says what did not fit.
pub fn cell(mapping: &Mapping, schema: Option<&Schema>, value: &Value) -> Result<Cell, String> {
    if value.is_null() {
        return Ok(Cell::Null);
    }
    match mapping.kind {
        Kind::Json => {
            return serde_json::to_string(&JsonView::new(schema, value).decimals_as_numbers(true))
                .map(Cell::Text)
                .map_err(|e| format!("cannot render as JSON: {e}"))
        }
        Kind::ArrayLiteral => return array_literal(schema, value).map(Cell::Text),
        Kind::Decimal => {
            return match value {
                Value::Decimal(d) if d.to_i128().is_some() => Ok(Cell::Text(d.to_string())),
                Value::Decimal(_) => Err("a decimal wider than 128 bits".into()),
                other => Ok(Cell::Text(text(other)?)),
            }
        }
        Kind::VariableDecimal => return variable_decimal(value).map(Cell::Text),
        Kind::Scaled(unit) => {
            let n = value.as_i64().ok_or_else(|| mismatch(mapping, value))?;
            let micros = if unit == NANOS {
                n / 1000
            } else {
                n.saturating_mul(unit)
            };
            return Ok(Cell::Micros(micros));
        }
        Kind::Plain => {}
    }
    let out = match (mapping.wire, value) {
        (Wire::Bool, Value::Boolean(b)) => Cell::Bool(*b),
        (Wire::I16, v) => Cell::I16(
            v.as_i64()
                .and_then(|n| i16::try_from(n).ok())
                .ok_or_else(|| mismatch(mapping, v))?,
        ),
        (Wire::I32, v) => Cell::I32(
            v.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| mismatch(mapping, v))?,
        ),
        (Wire::I64, v) => Cell::I64(v.as_i64().ok_or_else(|| mismatch(mapping, v))?),
        (Wire::F32, Value::Float32(f)) => Cell::F32(*f),
        (Wire::F64, Value::Float64(f)) => Cell::F64(*f),
        (Wire::F64, Value::Float32(f)) => Cell::F64(f64::from(*f)),
        (Wire::F64, v) if v.as_i64().is_some() => Cell::F64(v.as_i64().unwrap_or_default() as f64),
        (Wire::Bytes, Value::Bytes(b)) => Cell::Bytes(b.clone()),
        (Wire::Date, v) => Cell::Date(
            v.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| mismatch(mapping, v))?,
        ),
        (Wire::Text, Value::String(s)) => Cell::Text(s.clone()),
        (Wire::Text, v) => Cell::Text(text(v)?),
        (_, v) => return Err(mismatch(mapping, v)),
    };
    Ok(out)
}

fn mismatch(mapping: &Mapping, value: &Value) -> String {
    format!("a {value:?} does not fit a {} column", mapping.col.sql())
}

/// A scalar's text form, as PostgreSQL parses it.
fn text(value: &Value) -> Result<String, String> {
    Ok(match value {
        Value::Boolean(b) => b.to_string(),
        Value::Int8(n) => n.to_string(),
        Value::Int16(n) => n.to_string(),
        Value::Int32(n) => n.to_string(),
        Value::Int64(n) => n.to_string(),
        Value::Float32(f) => f.to_string(),
        Value::Float64(f) => f.to_string(),
        Value::String(s) => s.clone(),
        Value::Decimal(d) => d.to_string(),
        Value::Bytes(b) => {
            let mut s = String::with_capacity(2 + 2 * b.len());
            s.push_str("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        other => return Err(format!("a {other:?} has no text form")),
    })
}

/// Debezium's VariableScaleDecimal: a struct of `scale` and `value` (bytes).
fn variable_decimal(value: &Value) -> Result<String, String> {
    let Value::Struct(fields) = value else {
        return Err(format!("a VariableScaleDecimal is a struct, not {value:?}"));
    };
    match fields.as_slice() {
        [Value::Int32(scale), Value::Bytes(unscaled)] => {
            let d = sluice_api::Decimal {
                unscaled: unscaled.clone(),
                scale: *scale,
            };
            d.to_i128()
                .map(|_| d.to_string())
                .ok_or_else(|| "a decimal wider than 128 bits".into())
        }
        _ => Err("a VariableScaleDecimal needs scale and value".into()),
    }
}

/// `{"a","b",NULL}`: every element quoted, so no element needs the rules
/// about what may stand bare.
fn array_literal(schema: Option<&Schema>, value: &Value) -> Result<String, String> {
    let Value::Array(items) = value else {
        return Err(format!("an array column got {value:?}"));
    };
    let element = match schema.map(|s| &s.schema_type) {
        Some(SchemaType::Array(e)) => Some(&**e),
        _ => None,
    };
    let mapping = element.map(map_schema);
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if item.is_null() {
            out.push_str("NULL");
            continue;
        }
        let t = match &mapping {
            Some(mp) => cell_text(&cell(mp, element, item)?, mp.wire),
            None => text(item)?,
        };
        out.push('"');
        for c in t.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    Ok(out)
}

/// A cell's text form (for array elements).
fn cell_text(cell: &Cell, wire: Wire) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Bool(b) => b.to_string(),
        Cell::I16(n) => n.to_string(),
        Cell::I32(n) => n.to_string(),
        Cell::I64(n) => n.to_string(),
        Cell::F32(f) => f.to_string(),
        Cell::F64(f) => f.to_string(),
        Cell::Text(s) => s.clone(),
        Cell::Bytes(b) => text(&Value::Bytes(b.clone())).unwrap_or_default(),
        Cell::Date(d) => civil(i64::from(*d)),
        Cell::Micros(us) => {
            let (days, in_day) = (us.div_euclid(86_400_000_000), us.rem_euclid(86_400_000_000));
            let s = in_day / 1_000_000;
            let time = format!(
                "{:02}:{:02}:{:02}.{:06}",
                s / 3600,
                s / 60 % 60,
                s % 60,
                in_day % 1_000_000
            );
            match wire {
                Wire::Time => time,
                Wire::TimestampTz => format!("{} {time}+00", civil(days)),
                _ => format!("{} {time}", civil(days)),
            }
        }
    }
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (proleptic Gregorian; H. Hinnant's
/// civil_from_days).
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Whether a value of `wire` can be cast to an existing column of `pg_type`
/// (as `format_type` prints it). Text goes anywhere (PostgreSQL parses it);
/// the rest is held to its family, so a mismatch is named up front instead
/// of failing as a cast error without a column.
pub fn fits(wire: Wire, pg_type: &str) -> bool {
    let t = pg_type.to_ascii_lowercase();
    let texty = t == "text"
        || t.starts_with("character")
        || t.starts_with("varchar")
        || t == "json"
        || t == "jsonb"
        || t == "name"
        || t == "citext";
    if wire == Wire::Text || texty {
        return true;
    }
    let numeric = [
        "smallint",
        "integer",
        "bigint",
        "real",
        "double precision",
        "numeric",
    ]
    .iter()
    .any(|n| t.starts_with(n));
    match wire {
        Wire::I16 | Wire::I32 | Wire::I64 | Wire::F32 | Wire::F64 => numeric,
        Wire::Bool => t == "boolean",
        Wire::Bytes => t == "bytea",
        Wire::Date => t == "date" || t.starts_with("timestamp"),
        Wire::Time => t.starts_with("time ") || t == "time",
        Wire::Timestamp | Wire::TimestampTz => t.starts_with("timestamp") || t == "date",
        Wire::Text => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::schema::primitives;

    #[test]
    fn connect_and_debezium_logical_types() {
        let named = |t: SchemaType, n: &str| Schema::new(t).named(n);
        let cases = [
            (Schema::decimal(2), ColType::Numeric),
            (Schema::date(), ColType::Date),
            (Schema::time(), ColType::Time),
            (Schema::timestamp(), ColType::TimestampTz),
            (
                named(SchemaType::String, "io.debezium.data.Uuid"),
                ColType::Uuid,
            ),
            (
                named(SchemaType::String, "io.debezium.data.Json"),
                ColType::Jsonb,
            ),
            (
                named(SchemaType::String, "io.debezium.time.ZonedTimestamp"),
                ColType::TimestampTz,
            ),
            (
                named(SchemaType::Int64, "io.debezium.time.MicroTimestamp"),
                ColType::Timestamp,
            ),
            (
                named(SchemaType::Int64, "io.debezium.time.MicroTime"),
                ColType::Time,
            ),
            (
                named(SchemaType::Int32, "io.debezium.time.Date"),
                ColType::Date,
            ),
            (
                Schema::new(SchemaType::Array(primitives::int32())),
                ColType::Array(Box::new(ColType::Int4)),
            ),
            (
                Schema::new(SchemaType::Map(primitives::string(), primitives::string())),
                ColType::Jsonb,
            ),
            (Schema::new(SchemaType::Bytes), ColType::Bytea),
            (Schema::new(SchemaType::Int8), ColType::Int2),
        ];
        for (schema, want) in cases {
            assert_eq!(map_schema(&schema).col, want, "{schema:?}");
        }
        assert_eq!(ColType::Array(Box::new(ColType::Text)).sql(), "text[]");
    }

    #[test]
    fn values_become_cells() {
        let ts = map_schema(&Schema::timestamp());
        assert_eq!(
            cell(&ts, None, &Value::Int64(1_500)).unwrap(),
            Cell::Micros(1_500_000)
        );
        let nanos =
            map_schema(&Schema::new(SchemaType::Int64).named("io.debezium.time.NanoTimestamp"));
        assert_eq!(
            cell(&nanos, None, &Value::Int64(7_000)).unwrap(),
            Cell::Micros(7)
        );
        let dec = map_schema(&Schema::decimal(2));
        assert_eq!(
            cell(
                &dec,
                None,
                &Value::Decimal(sluice_api::Decimal::from_i128(-12345, 2))
            )
            .unwrap(),
            Cell::Text("-123.45".into())
        );
        let vsd = map_schema(
            &Schema::new(SchemaType::Struct(vec![])).named("io.debezium.data.VariableScaleDecimal"),
        );
        let v = Value::Struct(vec![Value::Int32(1), Value::Bytes(vec![0x01, 0x00])]);
        assert_eq!(cell(&vsd, None, &v).unwrap(), Cell::Text("25.6".into()));
        let arr_schema = Schema::new(SchemaType::Array(primitives::string()));
        let arr = map_schema(&arr_schema);
        let v = Value::Array(vec!["a\"b".into(), Value::Null, "c,d".into()]);
        assert_eq!(
            cell(&arr, Some(&arr_schema), &v).unwrap(),
            Cell::Text(r#"{"a\"b",NULL,"c,d"}"#.into())
        );
        let int = map_schema(&Schema::new(SchemaType::Int16));
        assert!(cell(&int, None, &Value::Int64(1 << 20))
            .unwrap_err()
            .contains("smallint"));
        assert!(cell(&int, None, &"x".into()).is_err());
        assert_eq!(cell(&int, None, &Value::Null).unwrap(), Cell::Null);
    }

    #[test]
    fn wire_forms_fit_their_families() {
        assert_eq!(civil(0), "1970-01-01");
        assert_eq!(civil(19_723), "2024-01-01");
        assert_eq!(civil(-1), "1969-12-31");
        assert!(fits(Wire::Text, "uuid"));
        assert!(fits(Wire::I64, "numeric(10,2)"));
        assert!(fits(Wire::Bool, "text"));
        assert!(!fits(Wire::I64, "date"));
        assert!(!fits(Wire::Bool, "uuid"));
        assert!(fits(Wire::TimestampTz, "timestamp with time zone"));
        assert!(!fits(Wire::Bytes, "integer"));
    }
}
