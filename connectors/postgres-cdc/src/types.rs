//! PostgreSQL types as Debezium maps them to Connect schemas, and the decoding
//! of PostgreSQL's text format (what pgoutput sends and what a snapshot reads)
//! into Connect values. Both paths share this module, so a row reads the same
//! from a snapshot and from the stream.

use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE as BASE64_URL};
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use sluice_api::{Schema, SchemaRef, SchemaType, Value};

/// Type OIDs of the built-in types we map; anything else is read as text.
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const BOOL_ARRAY: u32 = 1000;
    pub const INT2_ARRAY: u32 = 1005;
    pub const INT4_ARRAY: u32 = 1007;
    pub const TEXT_ARRAY: u32 = 1009;
    pub const VARCHAR_ARRAY: u32 = 1015;
    pub const INT8_ARRAY: u32 = 1016;
    pub const FLOAT8_ARRAY: u32 = 1022;
    pub const UUID_ARRAY: u32 = 2951;
}

/// Debezium's `decimal.handling.mode`: how `numeric` columns are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecimalMode {
    /// Connect's Decimal (or Debezium's VariableScaleDecimal without a scale).
    #[default]
    Precise,
    Double,
    String,
}

/// Debezium's `binary.handling.mode`: how `bytea` columns are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinaryMode {
    #[default]
    Bytes,
    Base64,
    Base64UrlSafe,
    Hex,
}

/// Debezium's `time.precision.mode` (its `connect` mode is not implemented).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimePrecision {
    /// Milliseconds for `time(p)`/`timestamp(p)` with p ≤ 3, else microseconds.
    #[default]
    Adaptive,
    /// As adaptive, but `time` is always in microseconds.
    AdaptiveTimeMicroseconds,
}

/// How one column is read: its (base) type and modifier, as the catalog says,
/// and the connector's handling modes.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    pub oid: u32,
    pub typmod: i32,
    /// An enum type's labels, in order; empty otherwise.
    pub enum_labels: Vec<String>,
    pub decimal: DecimalMode,
    pub binary: BinaryMode,
    pub time: TimePrecision,
}

impl ColumnType {
    pub fn new(oid: u32, typmod: i32) -> Self {
        Self {
            oid,
            typmod,
            enum_labels: Vec::new(),
            decimal: DecimalMode::Precise,
            binary: BinaryMode::Bytes,
            time: TimePrecision::Adaptive,
        }
    }

    /// Whether a time or timestamp column is written in milliseconds: its
    /// declared precision is 3 or less (no declaration means 6).
    fn in_millis(&self) -> bool {
        let declared = (0..=3).contains(&self.typmod);
        match self.oid {
            oid::TIME => declared && self.time == TimePrecision::Adaptive,
            oid::TIMESTAMP => declared,
            _ => false,
        }
    }

    /// An array's element type: the same modes, no modifier.
    fn element_type(&self, oid: u32) -> Self {
        Self {
            decimal: self.decimal,
            binary: self.binary,
            time: self.time,
            ..Self::new(oid, -1)
        }
    }

    /// The scale a `numeric(p, s)` column declares, if it declares one.
    fn numeric_scale(&self) -> Option<i32> {
        (self.typmod >= 4).then(|| (self.typmod - 4) & 0xffff)
    }

    fn element(&self) -> Option<u32> {
        Some(match self.oid {
            oid::BOOL_ARRAY => oid::BOOL,
            oid::INT2_ARRAY => oid::INT2,
            oid::INT4_ARRAY => oid::INT4,
            oid::INT8_ARRAY => oid::INT8,
            oid::TEXT_ARRAY | oid::VARCHAR_ARRAY => oid::TEXT,
            oid::FLOAT8_ARRAY => oid::FLOAT8,
            oid::UUID_ARRAY => oid::UUID,
            _ => return None,
        })
    }

    /// The Connect schema Debezium gives this type (with
    /// `time.precision.mode=adaptive`, its default).
    pub fn schema(&self, optional: bool) -> SchemaRef {
        let s = match self.oid {
            oid::NUMERIC if self.decimal == DecimalMode::Double => Schema::new(SchemaType::Float64),
            oid::NUMERIC if self.decimal == DecimalMode::String => Schema::new(SchemaType::String),
            oid::BYTEA if self.binary != BinaryMode::Bytes => Schema::new(SchemaType::String),
            oid::BOOL => Schema::new(SchemaType::Boolean),
            oid::INT2 => Schema::new(SchemaType::Int16),
            oid::INT4 => Schema::new(SchemaType::Int32),
            oid::INT8 | oid::OID => Schema::new(SchemaType::Int64),
            oid::FLOAT4 => Schema::new(SchemaType::Float32),
            oid::FLOAT8 => Schema::new(SchemaType::Float64),
            oid::BYTEA => Schema::new(SchemaType::Bytes),
            oid::NUMERIC => match self.numeric_scale() {
                Some(scale) => {
                    let mut s = Schema::decimal(scale);
                    s.parameters.insert(
                        "connect.decimal.precision".into(),
                        (((self.typmod - 4) >> 16) & 0xffff).to_string(),
                    );
                    s
                }
                None => Schema::struct_of([
                    ("scale", Schema::new(SchemaType::Int32).into_ref()),
                    ("value", Schema::new(SchemaType::Bytes).into_ref()),
                ])
                .named("io.debezium.data.VariableScaleDecimal"),
            },
            oid::UUID => Schema::new(SchemaType::String).named("io.debezium.data.Uuid"),
            oid::JSON | oid::JSONB => {
                Schema::new(SchemaType::String).named("io.debezium.data.Json")
            }
            oid::DATE => Schema::new(SchemaType::Int32).named("io.debezium.time.Date"),
            oid::TIME if self.in_millis() => {
                Schema::new(SchemaType::Int32).named("io.debezium.time.Time")
            }
            oid::TIMESTAMP if self.in_millis() => {
                Schema::new(SchemaType::Int64).named("io.debezium.time.Timestamp")
            }
            oid::TIME => Schema::new(SchemaType::Int64).named("io.debezium.time.MicroTime"),
            oid::TIMESTAMP => {
                Schema::new(SchemaType::Int64).named("io.debezium.time.MicroTimestamp")
            }
            oid::TIMESTAMPTZ => {
                Schema::new(SchemaType::String).named("io.debezium.time.ZonedTimestamp")
            }
            oid::INTERVAL => Schema::new(SchemaType::Int64).named("io.debezium.time.MicroDuration"),
            _ if !self.enum_labels.is_empty() => {
                let mut s = Schema::new(SchemaType::String).named("io.debezium.data.Enum");
                s.parameters
                    .insert("allowed".into(), self.enum_labels.join(","));
                s
            }
            _ => match self.element() {
                Some(e) => Schema::new(SchemaType::Array(self.element_type(e).schema(true))),
                None => Schema::new(SchemaType::String),
            },
        };
        let s = if optional { s.optional() } else { s };
        s.into_ref()
    }

    /// Decodes PostgreSQL's text output of a value of this type.
    pub fn decode(&self, text: &str) -> Result<Value, String> {
        let bad = |what: &str| format!("cannot read '{text}' as {what}");
        Ok(match self.oid {
            oid::BOOL => Value::Boolean(text == "t" || text == "true"),
            oid::INT2 => Value::Int16(text.parse().map_err(|_| bad("int2"))?),
            oid::INT4 => Value::Int32(text.parse().map_err(|_| bad("int4"))?),
            oid::INT8 | oid::OID => Value::Int64(text.parse().map_err(|_| bad("int8"))?),
            oid::FLOAT4 => Value::Float32(parse_float(text).ok_or_else(|| bad("float4"))? as f32),
            oid::FLOAT8 => Value::Float64(parse_float(text).ok_or_else(|| bad("float8"))?),
            oid::BYTEA => {
                let bytes = decode_bytea(text).ok_or_else(|| bad("bytea"))?;
                match self.binary {
                    BinaryMode::Bytes => Value::Bytes(bytes),
                    BinaryMode::Base64 => Value::String(BASE64.encode(bytes)),
                    BinaryMode::Base64UrlSafe => Value::String(BASE64_URL.encode(bytes)),
                    BinaryMode::Hex => {
                        Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect())
                    }
                }
            }
            oid::NUMERIC if self.decimal == DecimalMode::Double => {
                Value::Float64(parse_float(text).ok_or_else(|| bad("numeric"))?)
            }
            oid::NUMERIC if self.decimal == DecimalMode::String => Value::String(text.to_owned()),
            oid::NUMERIC => {
                let (unscaled, scale) = parse_decimal(text).ok_or_else(|| bad("numeric"))?;
                match self.numeric_scale() {
                    Some(declared) => {
                        let rescaled = unscaled
                            .checked_mul(10i128.pow((declared - scale).max(0) as u32))
                            .ok_or_else(|| bad("numeric"))?;
                        Value::Decimal(sluice_api::value::Decimal::from_i128(rescaled, declared))
                    }
                    None => {
                        let d = sluice_api::value::Decimal::from_i128(unscaled, scale);
                        Value::Struct(vec![Value::Int32(scale), Value::Bytes(d.unscaled)])
                    }
                }
            }
            oid::DATE => Value::Int32(days(text).ok_or_else(|| bad("date"))?),
            oid::TIME if self.in_millis() => {
                Value::Int32((micros_of_day(text).ok_or_else(|| bad("time"))? / 1000) as i32)
            }
            oid::TIMESTAMP if self.in_millis() => Value::Int64(
                timestamp_micros(text)
                    .ok_or_else(|| bad("timestamp"))?
                    .div_euclid(1000),
            ),
            oid::TIME => Value::Int64(micros_of_day(text).ok_or_else(|| bad("time"))?),
            oid::TIMESTAMP => Value::Int64(timestamp_micros(text).ok_or_else(|| bad("timestamp"))?),
            oid::TIMESTAMPTZ => Value::String(zoned(text).ok_or_else(|| bad("timestamptz"))?),
            oid::INTERVAL => Value::Int64(interval_micros(text).ok_or_else(|| bad("interval"))?),
            _ => match self.element() {
                Some(e) => {
                    let element = self.element_type(e);
                    let items = parse_array(text).ok_or_else(|| bad("an array"))?;
                    Value::Array(
                        items
                            .into_iter()
                            .map(|i| match i {
                                None => Ok(Value::Null),
                                Some(t) => element.decode(&t),
                            })
                            .collect::<Result<_, _>>()?,
                    )
                }
                None => Value::String(text.to_owned()),
            },
        })
    }

    /// The empty value of this type, for a required column whose value
    /// PostgreSQL did not send (a delete's non-key columns).
    pub fn empty(&self) -> Value {
        match self.schema(false).schema_type {
            SchemaType::Boolean => Value::Boolean(false),
            SchemaType::Int16 => Value::Int16(0),
            SchemaType::Int32 => Value::Int32(0),
            SchemaType::Int64 => Value::Int64(0),
            SchemaType::Float32 => Value::Float32(0.0),
            SchemaType::Float64 => Value::Float64(0.0),
            SchemaType::Bytes if self.oid == oid::NUMERIC => Value::Decimal(
                sluice_api::value::Decimal::from_i128(0, self.numeric_scale().unwrap_or(0)),
            ),
            SchemaType::Bytes => Value::Bytes(Vec::new()),
            SchemaType::Array(_) => Value::Array(Vec::new()),
            SchemaType::Struct(_) => Value::Struct(vec![Value::Int32(0), Value::Bytes(vec![0])]),
            _ => Value::String(String::new()),
        }
    }

    /// Whether Debezium's placeholder for an unchanged TOAST value fits this
    /// type (it is text, or bytes).
    pub fn takes_placeholder(&self) -> bool {
        let textual = match self.oid {
            oid::BOOL
            | oid::INT2
            | oid::INT4
            | oid::INT8
            | oid::OID
            | oid::FLOAT4
            | oid::FLOAT8
            | oid::DATE
            | oid::TIME
            | oid::TIMESTAMP
            | oid::INTERVAL => false,
            oid::NUMERIC => self.decimal == DecimalMode::String,
            _ => true,
        };
        textual && self.element().is_none()
    }

    pub fn placeholder(&self, text: &str) -> Value {
        if self.oid == oid::BYTEA && self.binary == BinaryMode::Bytes {
            Value::Bytes(text.as_bytes().to_vec())
        } else {
            Value::String(text.to_owned())
        }
    }
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

fn decode_bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `-123.4500` → (-1234500, 4).
fn parse_decimal(text: &str) -> Option<(i128, i32)> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = format!("{int}{frac}");
    Some((digits.parse().ok()?, frac.len() as i32))
}

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("1970-01-01 is a date"),
};

fn days(text: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    i32::try_from(d.signed_duration_since(EPOCH).num_days()).ok()
}

fn micros_of_day(text: &str) -> Option<i64> {
    let t = NaiveTime::parse_from_str(text, "%H:%M:%S%.f").ok()?;
    Some(i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000))
}

fn timestamp_micros(text: &str) -> Option<i64> {
    let t = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some(t.and_utc().timestamp_micros())
}

/// PostgreSQL writes `2026-01-02 03:04:05.123456+00` (or `+05:30`); Debezium's
/// ZonedTimestamp is ISO-8601 in UTC: `2026-01-02T03:04:05.123456Z`.
fn zoned(text: &str) -> Option<String> {
    // The common case, a UTC session: only the separators change. PostgreSQL
    // already writes the fraction without trailing zeros. (Formatting through
    // chrono was 4 % of a CDC run's CPU.)
    if let Some(base) = text.strip_suffix("+00") {
        let b = base.as_bytes();
        if b.len() >= 19 && b[4] == b'-' && b[10] == b' ' && b[13] == b':' {
            return Some(format!("{}T{}Z", &base[..10], &base[11..]));
        }
    }
    let padded = match text.rfind(['+', '-']) {
        // A bare hour offset gets minutes, which chrono's %z needs.
        Some(i) if text.len() - i == 3 => format!("{text}:00"),
        _ => text.to_owned(),
    };
    let t = DateTime::parse_from_str(&padded, "%Y-%m-%d %H:%M:%S%.f%:z").ok()?;
    let utc = t.to_utc();
    let mut out = utc.format("%Y-%m-%dT%H:%M:%S").to_string();
    let micros = utc.timestamp_subsec_micros();
    if micros != 0 {
        out.push('.');
        out.push_str(format!("{micros:06}").trim_end_matches('0'));
    }
    out.push('Z');
    Some(out)
}

/// `1 year 2 mons 3 days 04:05:06.5` in microseconds, a month being 30 days
/// as Debezium's MicroDuration counts it.
fn interval_micros(text: &str) -> Option<i64> {
    const DAY: i64 = 86_400_000_000;
    let mut total: i64 = 0;
    let mut parts = text.split_whitespace().peekable();
    while let Some(p) = parts.next() {
        if p.contains(':') {
            let negative = p.starts_with('-');
            let t = p.trim_start_matches(['-', '+']);
            let mut f = t.split(':');
            let h: i64 = f.next()?.parse().ok()?;
            let m: i64 = f.next()?.parse().ok()?;
            let s: f64 = f.next().unwrap_or("0").parse().ok()?;
            let micros = (h * 3600 + m * 60) * 1_000_000 + (s * 1e6).round() as i64;
            total += if negative { -micros } else { micros };
            continue;
        }
        let n: i64 = p.parse().ok()?;
        let unit = parts.next()?;
        total += n * match unit.trim_end_matches('s') {
            "year" => 365 * DAY + DAY / 4,
            "mon" => 30 * DAY,
            "day" => DAY,
            _ => return None,
        };
    }
    Some(total)
}

/// A one-dimensional array literal, `{a,"b c",NULL}`.
fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
        }
        out.push((quoted || item != "NULL").then_some(item));
        match chars.next() {
            Some(',') => continue,
            None => return Some(out),
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_declared_to_milliseconds_are_in_milliseconds_as_adaptive_says() {
        let ts3 = ColumnType::new(oid::TIMESTAMP, 3);
        assert_eq!(
            ts3.schema(false).name.as_deref(),
            Some("io.debezium.time.Timestamp")
        );
        assert_eq!(
            ts3.decode("1970-01-01 00:00:01.25").unwrap(),
            Value::Int64(1250)
        );
        assert_eq!(
            ts3.decode("1969-12-31 23:59:59.999").unwrap(),
            Value::Int64(-1)
        );
        let ts = ColumnType::new(oid::TIMESTAMP, -1);
        assert_eq!(
            ts.schema(false).name.as_deref(),
            Some("io.debezium.time.MicroTimestamp")
        );
        let t0 = ColumnType::new(oid::TIME, 0);
        assert_eq!(t0.schema(false).schema_type, SchemaType::Int32);
        assert_eq!(t0.decode("00:00:02").unwrap(), Value::Int32(2000));
        let micros = ColumnType {
            time: TimePrecision::AdaptiveTimeMicroseconds,
            ..ColumnType::new(oid::TIME, 0)
        };
        assert_eq!(micros.decode("00:00:02").unwrap(), Value::Int64(2_000_000));
    }

    #[test]
    fn handling_modes_change_numeric_and_bytea_as_debezium_does() {
        let numeric = |mode| ColumnType {
            decimal: mode,
            ..ColumnType::new(oid::NUMERIC, (10 << 16 | 2) + 4)
        };
        let double = numeric(DecimalMode::Double);
        assert_eq!(double.schema(false).schema_type, SchemaType::Float64);
        assert_eq!(double.decode("12.50").unwrap(), Value::Float64(12.5));
        let string = numeric(DecimalMode::String);
        assert_eq!(string.schema(false).schema_type, SchemaType::String);
        assert_eq!(
            string.decode("12.50").unwrap(),
            Value::String("12.50".into())
        );
        let bytea = |mode| ColumnType {
            binary: mode,
            ..ColumnType::new(oid::BYTEA, -1)
        };
        assert_eq!(
            bytea(BinaryMode::Hex).decode("\\x0aff").unwrap(),
            Value::String("0aff".into())
        );
        assert_eq!(
            bytea(BinaryMode::Base64).decode("\\x0aff").unwrap(),
            Value::String("Cv8=".into())
        );
        assert_eq!(
            bytea(BinaryMode::Base64UrlSafe).decode("\\xfbff").unwrap(),
            Value::String("-_8=".into())
        );
        assert_eq!(
            bytea(BinaryMode::Hex).schema(false).schema_type,
            SchemaType::String
        );
    }

    #[test]
    fn text_values_decode_as_debezium_encodes_them() {
        let t = |oid: u32, text: &str| ColumnType::new(oid, -1).decode(text).unwrap();
        assert_eq!(t(oid::BOOL, "t"), Value::Boolean(true));
        assert_eq!(t(oid::INT8, "-42"), Value::Int64(-42));
        assert_eq!(t(oid::BYTEA, "\\x0aff"), Value::Bytes(vec![10, 255]));
        assert_eq!(t(oid::DATE, "1970-01-02"), Value::Int32(1));
        assert_eq!(t(oid::TIME, "00:00:01.5"), Value::Int64(1_500_000));
        assert_eq!(
            t(oid::TIMESTAMP, "1970-01-01 00:00:01.000002"),
            Value::Int64(1_000_002)
        );
        assert_eq!(
            t(oid::TIMESTAMPTZ, "2026-01-02 05:04:05.5+02"),
            Value::String("2026-01-02T03:04:05.5Z".into())
        );
        assert_eq!(
            t(oid::TIMESTAMPTZ, "2026-01-02 03:04:05+00"),
            Value::String("2026-01-02T03:04:05Z".into())
        );
        assert_eq!(
            t(oid::INTERVAL, "1 day 01:00:00"),
            Value::Int64(90_000_000_000)
        );
        assert_eq!(
            t(oid::TEXT_ARRAY, "{a,\"b,c\",NULL}"),
            Value::Array(vec![
                Value::String("a".into()),
                Value::String("b,c".into()),
                Value::Null
            ])
        );
        let scaled = ColumnType::new(oid::NUMERIC, (10 << 16 | 2) + 4);
        assert_eq!(
            scaled.decode("12.5").unwrap(),
            Value::Decimal(sluice_api::value::Decimal::from_i128(1250, 2))
        );
        match t(oid::NUMERIC, "-1.25") {
            Value::Struct(v) => assert_eq!(v[0], Value::Int32(2)),
            other => panic!("{other:?}"),
        }
    }
}
