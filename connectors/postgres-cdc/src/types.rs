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
    pub const XML: u32 = 142;
    pub const POINT: u32 = 600;
    pub const MONEY: u32 = 790;
    pub const TIMETZ: u32 = 1266;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const TSVECTOR: u32 = 3614;
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

/// Debezium's `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimePrecision {
    /// Milliseconds for `time(p)`/`timestamp(p)` with p ≤ 3, else microseconds.
    #[default]
    Adaptive,
    /// As adaptive, but `time` is always in microseconds.
    AdaptiveTimeMicroseconds,
    /// Connect's own Date, Time and Timestamp: milliseconds, whatever the
    /// declared precision.
    Connect,
}

/// Debezium's `hstore.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HstoreMode {
    /// A JSON object in a string (io.debezium.data.Json).
    #[default]
    Json,
    /// A Connect map of strings to optional strings.
    Map,
}

/// Debezium's `interval.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntervalMode {
    /// Microseconds (MicroDuration).
    #[default]
    Numeric,
    /// An ISO-8601 duration string (Interval).
    String,
}

/// How one column is read: its (base) type and modifier, as the catalog says,
/// and the connector's handling modes.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    pub oid: u32,
    pub typmod: i32,
    /// An enum type's labels, in order (an enum array's: its element's);
    /// empty otherwise.
    pub enum_labels: Vec<String>,
    /// An array's element type, from the catalog (0: not an array, or not
    /// known; then the built-in arrays are still recognized by their oid).
    pub element: u32,
    /// The type's name in the catalog: extensions' types (hstore, ltree,
    /// citext) have no fixed oid.
    pub name: String,
    pub decimal: DecimalMode,
    pub binary: BinaryMode,
    pub time: TimePrecision,
    pub interval: IntervalMode,
    pub hstore: HstoreMode,
    /// The column's default expression, as `pg_get_expr` writes it.
    pub default: Option<String>,
}

/// What a column's values become, the one place types are told apart.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Bytes,
    /// `numeric` with the decimal mode, and its declared scale if any.
    Numeric,
    Money,
    /// `bit(1)`, `varbit(1)`: a boolean in Debezium.
    Bit,
    /// `bit(n)`, `varbit(n)`: Debezium's Bits, `length` n.
    Bits,
    Uuid,
    Json,
    Xml,
    Ltree,
    Tsvector,
    Hstore,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Point,
    Enum,
    Array(Box<ColumnType>),
    Text,
}

/// A `timestamp` of `infinity` or `-infinity` as Debezium writes it, in
/// microseconds (pgjdbc's `DATE_POSITIVE_INFINITY` and
/// `DATE_NEGATIVE_INFINITY`, taken as microseconds); a millisecond column gets
/// a thousandth of it.
const TIMESTAMP_INFINITY: i64 = 9_223_372_036_825_200_000;
const TIMESTAMP_NEG_INFINITY: i64 = -9_223_372_036_832_400_000;

/// A `date` of `infinity` or `-infinity` as Debezium 3.6.3 streams it: days
/// that are no date (its conversion overflows), and other ones in its
/// snapshot, which cannot both be matched; the stream's, in both here.
const DATE_INFINITY: i32 = -2_147_472_692;
const DATE_NEG_INFINITY: i32 = -2_147_472_691;

/// Debezium's `money.fraction.digits` default: money is a Decimal of scale 2.
const MONEY_SCALE: i32 = 2;

/// Debezium's logical types all carry version 1, as Connect's do.
fn logical(schema_type: SchemaType, name: &str) -> Schema {
    let mut s = Schema::new(schema_type).named(name);
    s.version = Some(1);
    s
}

fn decimal(scale: i32) -> Schema {
    let mut s = Schema::decimal(scale);
    s.version = Some(1);
    s
}

impl ColumnType {
    pub fn new(oid: u32, typmod: i32) -> Self {
        Self {
            oid,
            typmod,
            enum_labels: Vec::new(),
            element: 0,
            name: String::new(),
            decimal: DecimalMode::Precise,
            binary: BinaryMode::Bytes,
            time: TimePrecision::Adaptive,
            interval: IntervalMode::Numeric,
            hstore: HstoreMode::Json,
            default: None,
        }
    }

    /// Whether a time or timestamp column is written in milliseconds: its
    /// declared precision is 3 or less (no declaration means 6).
    fn in_millis(&self) -> bool {
        let declared = (0..=3).contains(&self.typmod);
        match (self.oid, self.time) {
            (oid::TIME | oid::TIMESTAMP, TimePrecision::Connect) => true,
            (oid::TIME, TimePrecision::Adaptive) | (oid::TIMESTAMP, _) => declared,
            _ => false,
        }
    }

    /// An array's element type: the same modes, no modifier; an enum array's
    /// labels are its element's.
    fn element_type(&self, oid: u32) -> Self {
        Self {
            decimal: self.decimal,
            binary: self.binary,
            time: self.time,
            interval: self.interval,
            hstore: self.hstore,
            enum_labels: self.enum_labels.clone(),
            ..Self::new(oid, -1)
        }
    }

    /// The scale a `numeric(p, s)` column declares, if it declares one.
    fn numeric_scale(&self) -> Option<i32> {
        (self.typmod >= 4).then(|| (self.typmod - 4) & 0xffff)
    }

    /// The element type of the built-in arrays, for when the catalog did not
    /// say.
    fn builtin_element(&self) -> Option<u32> {
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

    fn kind(&self) -> Kind {
        let element = match self.element {
            0 => self.builtin_element(),
            e => Some(e),
        };
        if let Some(e) = element {
            return Kind::Array(Box::new(self.element_type(e)));
        }
        match self.oid {
            oid::BOOL => Kind::Bool,
            oid::INT2 => Kind::Int16,
            oid::INT4 => Kind::Int32,
            oid::INT8 | oid::OID => Kind::Int64,
            oid::FLOAT4 => Kind::Float32,
            oid::FLOAT8 => Kind::Float64,
            oid::BYTEA => Kind::Bytes,
            oid::NUMERIC => Kind::Numeric,
            oid::MONEY => Kind::Money,
            oid::BIT | oid::VARBIT if self.typmod == 1 => Kind::Bit,
            oid::BIT | oid::VARBIT => Kind::Bits,
            oid::UUID => Kind::Uuid,
            oid::JSON | oid::JSONB => Kind::Json,
            oid::XML => Kind::Xml,
            oid::TSVECTOR => Kind::Tsvector,
            oid::DATE => Kind::Date,
            oid::TIME => Kind::Time,
            oid::TIMETZ => Kind::TimeTz,
            oid::TIMESTAMP => Kind::Timestamp,
            oid::TIMESTAMPTZ => Kind::TimestampTz,
            oid::INTERVAL => Kind::Interval,
            oid::POINT => Kind::Point,
            _ if !self.enum_labels.is_empty() => Kind::Enum,
            _ => match self.name.as_str() {
                "hstore" => Kind::Hstore,
                "ltree" => Kind::Ltree,
                _ => Kind::Text,
            },
        }
    }

    /// The Connect schema Debezium gives this type (with
    /// `time.precision.mode=adaptive`, its default).
    // Long on purpose: one arm per PostgreSQL type family, the twin of `decode`: a table.
    pub fn schema(&self, optional: bool) -> SchemaRef {
        let s = match self.kind() {
            Kind::Numeric | Kind::Money if self.decimal == DecimalMode::Double => {
                Schema::new(SchemaType::Float64)
            }
            Kind::Numeric | Kind::Money if self.decimal == DecimalMode::String => {
                Schema::new(SchemaType::String)
            }
            Kind::Bytes if self.binary != BinaryMode::Bytes => Schema::new(SchemaType::String),
            Kind::Bool | Kind::Bit => Schema::new(SchemaType::Boolean),
            Kind::Int16 => Schema::new(SchemaType::Int16),
            Kind::Int32 => Schema::new(SchemaType::Int32),
            Kind::Int64 => Schema::new(SchemaType::Int64),
            Kind::Float32 => Schema::new(SchemaType::Float32),
            Kind::Float64 => Schema::new(SchemaType::Float64),
            Kind::Bytes => Schema::new(SchemaType::Bytes),
            Kind::Numeric => match self.numeric_scale() {
                Some(scale) => {
                    let mut s = decimal(scale);
                    s.parameters.insert(
                        "connect.decimal.precision".into(),
                        (((self.typmod - 4) >> 16) & 0xffff).to_string(),
                    );
                    s
                }
                None => variable_scale_decimal(),
            },
            Kind::Money => decimal(MONEY_SCALE),
            Kind::Bits => {
                let mut s = logical(SchemaType::Bytes, "io.debezium.data.Bits");
                // An unbounded varbit reports the largest length, as pgjdbc does.
                let length = if self.typmod > 0 {
                    self.typmod
                } else {
                    i32::MAX
                };
                s.parameters.insert("length".into(), length.to_string());
                s
            }
            Kind::Uuid => logical(SchemaType::String, "io.debezium.data.Uuid"),
            Kind::Hstore if self.hstore == HstoreMode::Map => Schema::new(SchemaType::Map(
                Schema::new(SchemaType::String).into_ref(),
                Schema::new(SchemaType::String).optional().into_ref(),
            )),
            Kind::Json | Kind::Hstore => logical(SchemaType::String, "io.debezium.data.Json"),
            Kind::Xml => logical(SchemaType::String, "io.debezium.data.Xml"),
            Kind::Ltree => logical(SchemaType::String, "io.debezium.data.Ltree"),
            Kind::Tsvector => logical(SchemaType::String, "io.debezium.data.Tsvector"),
            Kind::Date if self.time == TimePrecision::Connect => {
                logical(SchemaType::Int32, "org.apache.kafka.connect.data.Date")
            }
            Kind::Time if self.time == TimePrecision::Connect => {
                logical(SchemaType::Int32, "org.apache.kafka.connect.data.Time")
            }
            Kind::Timestamp if self.time == TimePrecision::Connect => {
                logical(SchemaType::Int64, "org.apache.kafka.connect.data.Timestamp")
            }
            Kind::Date => logical(SchemaType::Int32, "io.debezium.time.Date"),
            Kind::Time if self.in_millis() => logical(SchemaType::Int32, "io.debezium.time.Time"),
            Kind::Time => logical(SchemaType::Int64, "io.debezium.time.MicroTime"),
            Kind::TimeTz => logical(SchemaType::String, "io.debezium.time.ZonedTime"),
            Kind::Timestamp if self.in_millis() => {
                logical(SchemaType::Int64, "io.debezium.time.Timestamp")
            }
            Kind::Timestamp => logical(SchemaType::Int64, "io.debezium.time.MicroTimestamp"),
            Kind::TimestampTz => logical(SchemaType::String, "io.debezium.time.ZonedTimestamp"),
            Kind::Interval if self.interval == IntervalMode::String => {
                logical(SchemaType::String, "io.debezium.time.Interval")
            }
            Kind::Interval => logical(SchemaType::Int64, "io.debezium.time.MicroDuration"),
            Kind::Point => {
                let double = || Schema::new(SchemaType::Float64).into_ref();
                let mut s = Schema::struct_of([
                    ("x", double()),
                    ("y", double()),
                    ("wkb", Schema::new(SchemaType::Bytes).optional().into_ref()),
                    ("srid", Schema::new(SchemaType::Int32).optional().into_ref()),
                ])
                .named("io.debezium.data.geometry.Point");
                s.version = Some(1);
                s.doc = Some("Geometry (POINT)".into());
                s
            }
            Kind::Enum => {
                let mut s = logical(SchemaType::String, "io.debezium.data.Enum");
                s.parameters
                    .insert("allowed".into(), self.enum_labels.join(","));
                s
            }
            // Debezium's elements are optional, but an enum's (so an enum
            // array holding a NULL is written as null: see `decode`).
            Kind::Array(e) => {
                let element_optional = e.kind() != Kind::Enum;
                Schema::new(SchemaType::Array(e.schema(element_optional)))
            }
            Kind::Text => Schema::new(SchemaType::String),
        };
        let mut s = if optional { s.optional() } else { s };
        s.default = self.default_value();
        s.into_ref()
    }

    /// The column default as Debezium puts it in the schema: a constant's
    /// value (but a bytea's, which Debezium leaves out); for a time column, a
    /// function of the clock (`now()`) gives the epoch; any other expression
    /// (`nextval(...)`) none.
    fn default_value(&self) -> Option<Value> {
        // Debezium 3.6.3 reads no bytea default.
        if self.kind() == Kind::Bytes {
            return None;
        }
        let expr = self.default.as_deref()?.trim();
        let mut expr = expr;
        while let Some(inner) = expr.strip_prefix('(').and_then(|e| e.strip_suffix(')')) {
            expr = inner.trim();
        }
        let text = if let Some(quoted) = expr.strip_prefix('\'') {
            // 'text'::type, with '' for a quote.
            let mut out = String::new();
            let mut chars = quoted.chars().peekable();
            loop {
                match chars.next()? {
                    '\'' if chars.peek() == Some(&'\'') => {
                        chars.next();
                        out.push('\'');
                    }
                    '\'' => break,
                    c => out.push(c),
                }
            }
            let rest: String = chars.collect();
            if !(rest.is_empty() || rest.starts_with("::")) {
                return None;
            }
            out
        } else if expr.parse::<f64>().is_ok() || matches!(expr, "true" | "false") {
            expr.to_owned()
        } else {
            let clock = [
                "now()",
                "current_timestamp",
                "current_date",
                "current_time",
                "localtimestamp",
                "localtime",
                "transaction_timestamp()",
                "statement_timestamp()",
                "clock_timestamp()",
            ];
            let lower = expr.to_ascii_lowercase();
            if !clock.iter().any(|c| lower.starts_with(c)) {
                return None;
            }
            match self.kind() {
                Kind::Date => "1970-01-01",
                Kind::Time => "00:00:00",
                Kind::TimeTz => "00:00:00+00",
                Kind::Timestamp => "1970-01-01 00:00:00",
                Kind::TimestampTz => "1970-01-01 00:00:00+00",
                _ => return None,
            }
            .to_owned()
        };
        // A numeric(p, s) default has the column's scale, as its values do
        // (it matters to decimal.handling.mode=string).
        let text = match (self.kind(), self.numeric_scale(), parse_decimal(&text)) {
            (Kind::Numeric, Some(declared), Some((unscaled, scale))) => {
                decimal_text(rescale(unscaled, scale, declared)?, declared)
            }
            _ => text,
        };
        self.decode(&text).ok().filter(|v| !v.is_null())
    }

    /// Decodes PostgreSQL's text output of a value of this type.
    #[allow(
        clippy::too_many_lines,
        reason = "one arm per PostgreSQL type family, read as a table; splitting it would scatter the table without making any arm simpler."
    )]
    pub fn decode(&self, text: &str) -> Result<Value, String> {
        let bad = |what: &str| format!("cannot read '{text}' as {what}");
        Ok(match self.kind() {
            Kind::Bool => Value::Boolean(text == "t" || text == "true"),
            // An empty varbit(1) is neither: Debezium writes null.
            Kind::Bit if text.is_empty() => Value::Null,
            Kind::Bit => Value::Boolean(text.contains('1')),
            Kind::Bits => Value::Bytes(bits(text).ok_or_else(|| bad("bits"))?),
            Kind::Int16 => Value::Int16(text.parse().map_err(|_| bad("int2"))?),
            Kind::Int32 => Value::Int32(text.parse().map_err(|_| bad("int4"))?),
            Kind::Int64 => Value::Int64(text.parse().map_err(|_| bad("int8"))?),
            Kind::Float32 => Value::Float32(parse_float(text).ok_or_else(|| bad("float4"))? as f32),
            Kind::Float64 => Value::Float64(parse_float(text).ok_or_else(|| bad("float8"))?),
            Kind::Bytes => {
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
            Kind::Money if self.decimal == DecimalMode::Double => {
                Value::Float64(parse_float(&plain_money(text)).ok_or_else(|| bad("money"))?)
            }
            Kind::Numeric if self.decimal == DecimalMode::Double => {
                Value::Float64(parse_float(text).ok_or_else(|| bad("numeric"))?)
            }
            Kind::Money if self.decimal == DecimalMode::String => {
                let (unscaled, scale) =
                    parse_decimal(&plain_money(text)).ok_or_else(|| bad("money"))?;
                Value::String(decimal_text(
                    rescale(unscaled, scale, MONEY_SCALE).ok_or_else(|| bad("money"))?,
                    MONEY_SCALE,
                ))
            }
            // Debezium's SpecialValueDecimal names the values a BigDecimal
            // cannot hold.
            Kind::Numeric if self.decimal == DecimalMode::String => Value::String(
                match text {
                    "NaN" => "NAN",
                    "Infinity" => "POSITIVE_INFINITY",
                    "-Infinity" => "NEGATIVE_INFINITY",
                    t => t,
                }
                .to_owned(),
            ),
            Kind::Money => {
                let (unscaled, scale) =
                    parse_decimal(&plain_money(text)).ok_or_else(|| bad("money"))?;
                let unscaled = rescale(unscaled, scale, MONEY_SCALE).ok_or_else(|| bad("money"))?;
                Value::Decimal(sluice_api::value::Decimal::from_i128(unscaled, MONEY_SCALE))
            }
            // A Decimal cannot hold NaN or an infinity: Debezium writes null.
            Kind::Numeric if matches!(text, "NaN" | "Infinity" | "-Infinity") => Value::Null,
            Kind::Numeric => {
                let (unscaled, scale) = parse_decimal(text).ok_or_else(|| bad("numeric"))?;
                match self.numeric_scale() {
                    Some(declared) => Value::Decimal(sluice_api::value::Decimal::from_i128(
                        rescale(unscaled, scale, declared).ok_or_else(|| bad("numeric"))?,
                        declared,
                    )),
                    None => {
                        // Debezium strips trailing zeros (1.50 is 15 at scale 1).
                        let (mut unscaled, mut scale) = (unscaled, scale);
                        while scale > 0 && unscaled % 10 == 0 {
                            unscaled /= 10;
                            scale -= 1;
                        }
                        let d = sluice_api::value::Decimal::from_i128(unscaled, scale);
                        Value::Struct(vec![Value::Int32(scale), Value::Bytes(d.unscaled)])
                    }
                }
            }
            Kind::Uuid
            | Kind::Json
            | Kind::Xml
            | Kind::Ltree
            | Kind::Tsvector
            | Kind::Enum
            | Kind::Text => Value::String(text.to_owned()),
            Kind::Hstore => {
                let pairs = hstore_pairs(text).ok_or_else(|| bad("hstore"))?;
                match self.hstore {
                    HstoreMode::Json => {
                        Value::String(hstore_json(&pairs).ok_or_else(|| bad("hstore"))?)
                    }
                    HstoreMode::Map => Value::Map(
                        pairs
                            .into_iter()
                            .map(|(k, v)| (Value::String(k), v.map_or(Value::Null, Value::String)))
                            .collect(),
                    ),
                }
            }
            Kind::Date => Value::Int32(match text {
                "infinity" => DATE_INFINITY,
                "-infinity" => DATE_NEG_INFINITY,
                _ => days(text).ok_or_else(|| bad("date"))?,
            }),
            Kind::Time if self.in_millis() => {
                Value::Int32((micros_of_day(text).ok_or_else(|| bad("time"))? / 1000) as i32)
            }
            Kind::Time => Value::Int64(micros_of_day(text).ok_or_else(|| bad("time"))?),
            Kind::TimeTz => Value::String(zoned_time(text).ok_or_else(|| bad("timetz"))?),
            Kind::Timestamp => {
                let micros = match text {
                    "infinity" => TIMESTAMP_INFINITY,
                    "-infinity" => TIMESTAMP_NEG_INFINITY,
                    _ => timestamp_micros(text).ok_or_else(|| bad("timestamp"))?,
                };
                Value::Int64(if self.in_millis() {
                    micros.div_euclid(1000)
                } else {
                    micros
                })
            }
            Kind::TimestampTz => Value::String(match text {
                "infinity" | "-infinity" => text.to_owned(),
                _ => zoned(text, self.fraction_digits()).ok_or_else(|| bad("timestamptz"))?,
            }),
            Kind::Interval => {
                let parts = IntervalParts::parse(text).ok_or_else(|| bad("interval"))?;
                match self.interval {
                    IntervalMode::Numeric => Value::Int64(parts.micros()),
                    IntervalMode::String => Value::String(parts.iso()),
                }
            }
            Kind::Point => {
                let (x, y) = point(text).ok_or_else(|| bad("point"))?;
                let mut wkb = Vec::with_capacity(21);
                // Well-known binary, little-endian: byte order 1, type 1 (point).
                wkb.push(1u8);
                wkb.extend_from_slice(&1u32.to_le_bytes());
                wkb.extend_from_slice(&x.to_le_bytes());
                wkb.extend_from_slice(&y.to_le_bytes());
                Value::Struct(vec![
                    Value::Float64(x),
                    Value::Float64(y),
                    Value::Bytes(wkb),
                    Value::Null,
                ])
            }
            Kind::Array(element) => {
                let items = parse_array(text).ok_or_else(|| bad("an array"))?;
                // An enum's elements are required in Debezium's schema, so a
                // NULL among them makes the whole array null there.
                if element.kind() == Kind::Enum && items.iter().any(Option::is_none) {
                    return Ok(Value::Null);
                }
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
        })
    }

    /// The digits of a timestamptz's fraction: its declared precision, 6 if
    /// none, as Debezium's ZonedTimestamp pads it.
    fn fraction_digits(&self) -> usize {
        if (0..=6).contains(&self.typmod) {
            self.typmod as usize
        } else {
            6
        }
    }

    /// The value of a required column PostgreSQL did not send (a delete's
    /// non-key columns): its default, as Debezium writes it, else the empty
    /// value of its type.
    pub fn empty(&self) -> Value {
        if let Some(default) = self.default_value() {
            return default;
        }
        let schema = self.schema(false);
        match &schema.schema_type {
            SchemaType::Boolean => Value::Boolean(false),
            SchemaType::Int16 => Value::Int16(0),
            SchemaType::Int32 => Value::Int32(0),
            SchemaType::Int64 => Value::Int64(0),
            SchemaType::Float32 => Value::Float32(0.0),
            SchemaType::Float64 => Value::Float64(0.0),
            SchemaType::Bytes if matches!(self.kind(), Kind::Numeric | Kind::Money) => {
                let scale = match self.kind() {
                    Kind::Money => MONEY_SCALE,
                    _ => self.numeric_scale().unwrap_or(0),
                };
                Value::Decimal(sluice_api::value::Decimal::from_i128(0, scale))
            }
            SchemaType::Bytes => Value::Bytes(Vec::new()),
            SchemaType::Array(_) => Value::Array(Vec::new()),
            SchemaType::Map(..) => Value::Map(Vec::new()),
            SchemaType::Struct(_) if self.kind() == Kind::Point => Value::Struct(vec![
                Value::Float64(0.0),
                Value::Float64(0.0),
                Value::Null,
                Value::Null,
            ]),
            SchemaType::Struct(_) => Value::Struct(vec![Value::Int32(0), Value::Bytes(vec![0])]),
            _ => Value::String(String::new()),
        }
    }

    /// Whether Debezium's placeholder for an unchanged TOAST value fits this
    /// type (it is text, or bytes).
    pub fn takes_placeholder(&self) -> bool {
        match self.kind() {
            Kind::Numeric | Kind::Money => self.decimal == DecimalMode::String,
            Kind::Hstore => self.hstore == HstoreMode::Json,
            Kind::Bytes
            | Kind::Uuid
            | Kind::Json
            | Kind::Xml
            | Kind::Ltree
            | Kind::Tsvector
            | Kind::TimeTz
            | Kind::TimestampTz
            | Kind::Enum
            | Kind::Text => true,
            _ => false,
        }
    }

    pub fn placeholder(&self, text: &str) -> Value {
        if self.oid == oid::BYTEA && self.binary == BinaryMode::Bytes {
            Value::Bytes(text.as_bytes().to_vec())
        } else {
            Value::String(text.to_owned())
        }
    }
}

fn variable_scale_decimal() -> Schema {
    let mut s = Schema::struct_of([
        ("scale", Schema::new(SchemaType::Int32).into_ref()),
        ("value", Schema::new(SchemaType::Bytes).into_ref()),
    ])
    .named("io.debezium.data.VariableScaleDecimal");
    s.version = Some(1);
    s.doc = Some("Variable scaled decimal".into());
    s
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

/// A bit string (`101`, its first character the most significant bit) as
/// Debezium writes Bits: Java's `BitSet.toByteArray`, little-endian and no
/// longer than the highest bit set needs (so all zeros is no bytes).
fn bits(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len().div_ceil(8));
    for (i, c) in text.bytes().rev().enumerate() {
        let byte = i / 8;
        if out.len() <= byte {
            out.push(0u8);
        }
        match c {
            b'1' => out[byte] |= 1 << (i % 8),
            b'0' => {}
            _ => return None,
        }
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Some(out)
}

/// `-123.4500` → (-1234500, 4).
fn parse_decimal(text: &str) -> Option<(i128, i32)> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = format!("{int}{frac}");
    Some((digits.parse().ok()?, frac.len() as i32))
}

/// `unscaled` at `scale` given at scale `to` (rounding half up when that
/// drops digits, as Debezium's `setScale(HALF_UP)`).
fn rescale(unscaled: i128, scale: i32, to: i32) -> Option<i128> {
    if to >= scale {
        unscaled.checked_mul(10i128.checked_pow((to - scale) as u32)?)
    } else {
        let div = 10i128.checked_pow((scale - to) as u32)?;
        let (q, r) = (unscaled / div, unscaled % div);
        Some(if r.abs() * 2 >= div {
            q + unscaled.signum()
        } else {
            q
        })
    }
}

fn decimal_text(unscaled: i128, scale: i32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale.max(0) as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// PostgreSQL's money output (`-$1,234.56`, or `($1,234.56)` in some
/// locales) as a plain number.
fn plain_money(text: &str) -> String {
    let negative = text.starts_with('-') || text.starts_with('(');
    let digits: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if negative {
        format!("-{digits}")
    } else {
        digits
    }
}

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("1970-01-01 is a date"),
};

fn days(text: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    i32::try_from(d.signed_duration_since(EPOCH).num_days()).ok()
}

const DAY_MICROS: i64 = 86_400_000_000;

fn micros_of_day(text: &str) -> Option<i64> {
    // PostgreSQL's time runs to 24:00:00 inclusive; chrono's stops short.
    if text == "24:00:00" {
        return Some(DAY_MICROS);
    }
    let t = NaiveTime::parse_from_str(text, "%H:%M:%S%.f").ok()?;
    Some(i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000))
}

/// `03:04:05.5+02` as Debezium's ZonedTime: the same instant of the day in
/// UTC, `01:04:05.5Z`, the fraction without trailing zeros.
fn zoned_time(text: &str) -> Option<String> {
    let at = text.rfind(['+', '-'])?;
    let (time, offset) = text.split_at(at);
    let local = micros_of_day(time)?;
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset[1..].split(':');
    let mut offset_secs = 0i64;
    for unit in [3600, 60, 1] {
        if let Some(p) = parts.next() {
            offset_secs += unit * p.parse::<i64>().ok()?;
        }
    }
    let utc = local - sign * offset_secs * 1_000_000;
    // 24:00:00 in UTC stays the end of the day rather than wrapping to 0.
    let utc = if utc == DAY_MICROS {
        utc
    } else {
        utc.rem_euclid(DAY_MICROS)
    };
    let secs = utc / 1_000_000;
    let mut out = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    let micros = utc % 1_000_000;
    if micros != 0 {
        out.push('.');
        out.push_str(format!("{micros:06}").trim_end_matches('0'));
    }
    out.push('Z');
    Some(out)
}

fn timestamp_micros(text: &str) -> Option<i64> {
    let t = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some(t.and_utc().timestamp_micros())
}

/// PostgreSQL writes `2026-01-02 03:04:05.123+00` (or `+05:30`); Debezium's
/// ZonedTimestamp is ISO-8601 in UTC with the fraction padded to the column's
/// precision: `2026-01-02T03:04:05.123000Z` for `timestamptz(6)`.
fn zoned(text: &str, digits: usize) -> Option<String> {
    let with_fraction = |base: &str, micros: u32| {
        let mut out = base.to_owned();
        if digits > 0 {
            out.push('.');
            out.push_str(&format!("{micros:06}")[..digits]);
        }
        out.push('Z');
        out
    };
    // The common case, a UTC session: only the separators change. (Formatting
    // through chrono was 4 % of a CDC run's CPU.)
    if let Some(base) = text.strip_suffix("+00") {
        let b = base.as_bytes();
        if b.len() >= 19 && b[4] == b'-' && b[10] == b' ' && b[13] == b':' {
            let (whole, fraction) = base.split_at(19);
            let fraction = fraction.strip_prefix('.').unwrap_or("");
            let micros = format!("{fraction:0<6}").get(..6)?.parse().ok()?;
            return Some(with_fraction(
                &format!("{}T{}", &whole[..10], &whole[11..]),
                micros,
            ));
        }
    }
    let padded = match text.rfind(['+', '-']) {
        // A bare hour offset gets minutes, which chrono's %z needs.
        Some(i) if text.len() - i == 3 => format!("{text}:00"),
        _ => text.to_owned(),
    };
    let t = DateTime::parse_from_str(&padded, "%Y-%m-%d %H:%M:%S%.f%:z").ok()?;
    let utc = t.to_utc();
    Some(with_fraction(
        &utc.format("%Y-%m-%dT%H:%M:%S").to_string(),
        utc.timestamp_subsec_micros(),
    ))
}

/// An interval's fields as pgjdbc's PGInterval reads PostgreSQL's text
/// (`1 year 2 mons 3 days 04:05:06.5`): years and months apart, a negative
/// time negates each of its fields, seconds a double.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct IntervalParts {
    years: i64,
    months: i64,
    days: i64,
    hours: i64,
    minutes: i64,
    seconds: f64,
}

impl IntervalParts {
    fn parse(text: &str) -> Option<Self> {
        let mut out = Self::default();
        let mut parts = text.split_whitespace();
        while let Some(p) = parts.next() {
            if p.contains(':') {
                let negative = p.starts_with('-');
                let t = p.trim_start_matches(['-', '+']);
                let mut f = t.split(':');
                let sign = if negative { -1 } else { 1 };
                out.hours += sign * f.next()?.parse::<i64>().ok()?;
                out.minutes += sign * f.next()?.parse::<i64>().ok()?;
                out.seconds += sign as f64 * f.next().unwrap_or("0").parse::<f64>().ok()?;
                continue;
            }
            let n: i64 = p.parse().ok()?;
            match parts.next()?.trim_end_matches('s') {
                "year" => out.years += n,
                "mon" => out.months += n,
                "day" => out.days += n,
                _ => return None,
            }
        }
        Some(out)
    }

    /// In microseconds, as Debezium's MicroDuration counts it: a month is
    /// 365.25 / 12 days, the sum is a double, and what does not fit an int64
    /// is its largest value.
    fn micros(&self) -> i64 {
        const DAYS_PER_MONTH: f64 = 365.25 / 12.0;
        let months = (self.years * 12 + self.months) as f64;
        let days = months * DAYS_PER_MONTH + self.days as f64;
        let secs =
            ((days * 24.0 + self.hours as f64) * 60.0 + self.minutes as f64) * 60.0 + self.seconds;
        // Saturating, as Java's (long) cast of a double.
        (secs * 1e6) as i64
    }

    /// As Debezium's Interval (`interval.handling.mode=string`):
    /// `P1Y2M3DT4H5M6.5S`, every field written, the seconds their double's
    /// shortest decimal (as Java's `BigDecimal.valueOf`), cut to 9 digits,
    /// without trailing zeros.
    fn iso(&self) -> String {
        let shortest = format!("{}", self.seconds);
        let (whole, fraction) = shortest.split_once('.').unwrap_or((&shortest, ""));
        let fraction = fraction.get(..9).unwrap_or(fraction).trim_end_matches('0');
        let whole = if whole == "-0" && fraction.is_empty() {
            "0"
        } else {
            whole
        };
        let seconds = if fraction.is_empty() {
            whole.to_owned()
        } else {
            format!("{whole}.{fraction}")
        };
        format!(
            "P{}Y{}M{}DT{}H{}M{seconds}S",
            self.years, self.months, self.days, self.hours, self.minutes
        )
    }
}

/// `(1.5,2.5)` → (1.5, 2.5).
fn point(text: &str) -> Option<(f64, f64)> {
    let (x, y) = text.strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
    Some((parse_float(x)?, parse_float(y)?))
}

/// hstore's text (`"a"=>"1", "b"=>NULL`) as its pairs, in the order Java's
/// HashMap iterates them (pgjdbc reads them into one, and Debezium writes
/// them in its order in both hstore modes).
fn hstore_pairs(text: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    let mut chars = text.chars().peekable();
    let quoted = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<String> {
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => s.push(chars.next()?),
                '"' => return Some(s),
                c => s.push(c),
            }
        }
        None
    };
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        if chars.next()? != '"' {
            return None;
        }
        let key = quoted(&mut chars)?;
        for expected in ['=', '>'] {
            if chars.next()? != expected {
                return None;
            }
        }
        let value = match chars.next()? {
            '"' => Some(quoted(&mut chars)?),
            'N' => {
                for expected in ['U', 'L', 'L'] {
                    if chars.next()? != expected {
                        return None;
                    }
                }
                None
            }
            _ => return None,
        };
        pairs.push((key, value));
    }
    let order = java_hashmap_order(pairs.iter().map(|(k, _)| k.as_str()));
    let mut pairs: Vec<Option<(String, Option<String>)>> = pairs.into_iter().map(Some).collect();
    order.into_iter().map(|i| pairs[i].take()).collect()
}

/// hstore's pairs as Debezium's JSON string (`hstore.handling.mode=json`):
/// compact, values strings or null.
fn hstore_json(pairs: &[(String, Option<String>)]) -> Option<String> {
    let mut out = String::from("{");
    for (n, (k, v)) in pairs.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).ok()?);
        out.push(':');
        match v {
            Some(v) => out.push_str(&serde_json::to_string(v).ok()?),
            None => out.push_str("null"),
        }
    }
    out.push('}');
    Some(out)
}

/// The order in which a `java.util.HashMap` filled with these distinct keys
/// (in this order) iterates them: by bucket of the final table, then in
/// insertion order (a resize keeps the relative order within a bucket).
fn java_hashmap_order<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<usize> {
    let hashes: Vec<u32> = keys
        .map(|k| {
            let h = k
                .encode_utf16()
                .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
                as u32;
            h ^ (h >> 16)
        })
        .collect();
    // Capacity 16, doubled whenever the size passes three quarters of it.
    let mut capacity = 16usize;
    while hashes.len() > capacity * 3 / 4 {
        capacity *= 2;
    }
    let mut order: Vec<usize> = (0..hashes.len()).collect();
    order.sort_by_key(|&i| (hashes[i] as usize & (capacity - 1), i));
    order
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
    fn connect_time_precision_writes_connect_logical_types_in_milliseconds() {
        let connect = |oid: u32, typmod: i32| ColumnType {
            time: TimePrecision::Connect,
            ..ColumnType::new(oid, typmod)
        };
        let ts = connect(oid::TIMESTAMP, -1);
        assert_eq!(
            ts.schema(false).name.as_deref(),
            Some("org.apache.kafka.connect.data.Timestamp")
        );
        assert_eq!(
            ts.decode("1970-01-01 00:00:01.123456").unwrap(),
            Value::Int64(1123)
        );
        let t = connect(oid::TIME, 6);
        assert_eq!(t.schema(false).schema_type, SchemaType::Int32);
        assert_eq!(t.decode("00:00:02.5").unwrap(), Value::Int32(2500));
        let d = connect(oid::DATE, -1);
        assert_eq!(
            d.schema(false).name.as_deref(),
            Some("org.apache.kafka.connect.data.Date")
        );
        // Zoned types stay strings.
        assert_eq!(
            connect(oid::TIMESTAMPTZ, -1).schema(false).name.as_deref(),
            Some("io.debezium.time.ZonedTimestamp")
        );
    }

    #[test]
    fn string_intervals_are_iso_durations_as_debezium_writes_them() {
        let iv = ColumnType {
            interval: IntervalMode::String,
            ..ColumnType::new(oid::INTERVAL, -1)
        };
        assert_eq!(
            iv.schema(false).name.as_deref(),
            Some("io.debezium.time.Interval")
        );
        let iso = |text: &str| match iv.decode(text).unwrap() {
            Value::String(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(iso("1 year 2 mons 3 days 04:05:06.5"), "P1Y2M3DT4H5M6.5S");
        assert_eq!(iso("-1 days"), "P0Y0M-1DT0H0M0S");
        assert_eq!(iso("-04:05:06"), "P0Y0M0DT-4H-5M-6S");
        // The seconds' double, as its shortest decimal (Debezium 3.6.3
        // wrote 0.3 here).
        assert_eq!(iso("1 mon 00:00:00.3"), "P0Y1M0DT0H0M0.3S");
        assert_eq!(iso("00:00:06.123456"), "P0Y0M0DT0H0M6.123456S");
    }

    #[test]
    fn column_defaults_become_schema_defaults_as_debezium_reads_them() {
        let with = |oid: u32, typmod: i32, expr: &str| {
            ColumnType {
                default: Some(expr.to_owned()),
                ..ColumnType::new(oid, typmod)
            }
            .schema(true)
            .default
            .clone()
        };
        assert_eq!(with(oid::INT4, -1, "42"), Some(Value::Int32(42)));
        assert_eq!(with(oid::INT4, -1, "'-1'::integer"), Some(Value::Int32(-1)));
        assert_eq!(
            with(oid::TEXT, -1, "'it''s'::text"),
            Some(Value::String("it's".into()))
        );
        assert_eq!(with(oid::BOOL, -1, "true"), Some(Value::Boolean(true)));
        // numeric(6,2) DEFAULT 1.5 is 1.50.
        assert_eq!(
            with(oid::NUMERIC, (6 << 16) + 2 + 4, "1.5"),
            Some(Value::Decimal(sluice_api::value::Decimal::from_i128(
                150, 2
            )))
        );
        // A clock function: the epoch.
        assert_eq!(
            with(oid::TIMESTAMPTZ, -1, "now()"),
            Some(Value::String("1970-01-01T00:00:00.000000Z".into()))
        );
        assert_eq!(
            with(oid::TIMESTAMP, -1, "CURRENT_TIMESTAMP"),
            Some(Value::Int64(0))
        );
        // A required column PostgreSQL did not send takes its default.
        let required = ColumnType {
            default: Some("'dflt'::text".into()),
            ..ColumnType::new(oid::TEXT, -1)
        };
        assert_eq!(required.empty(), Value::String("dflt".into()));
        assert_eq!(
            ColumnType::new(oid::TEXT, -1).empty(),
            Value::String(String::new())
        );
        // Other expressions: none.
        assert_eq!(with(oid::INT8, -1, "nextval('s'::regclass)"), None);
        assert_eq!(with(oid::TEXT, -1, "upper('a'::text)"), None);
        assert_eq!(with(oid::BYTEA, -1, "'\\x0102'::bytea"), None);
    }

    /// The values below are what Debezium 3.6.3 wrote for the same text
    /// (tests/cdc_differential.rs compares the two end to end).
    #[test]
    #[allow(
        clippy::too_many_lines,
        reason = "a table of Debezium's outputs, one line per case"
    )]
    fn types_debezium_maps_beyond_the_basics_decode_as_it_writes_them() {
        let t =
            |oid: u32, typmod: i32, text: &str| ColumnType::new(oid, typmod).decode(text).unwrap();
        // bit(1) is a boolean; wider bit strings little-endian, minimal.
        assert_eq!(t(oid::BIT, 1, "1"), Value::Boolean(true));
        assert_eq!(t(oid::VARBIT, 1, ""), Value::Null);
        assert_eq!(
            t(oid::BIT, 12, "101000000001"),
            Value::Bytes(vec![0x01, 0x0a])
        );
        assert_eq!(t(oid::BIT, 12, "000000000000"), Value::Bytes(vec![]));
        assert_eq!(
            t(oid::VARBIT, 20, "11111111111111111111"),
            Value::Bytes(vec![0xff, 0xff, 0x0f])
        );
        let bits = ColumnType::new(oid::VARBIT, 20).schema(true);
        assert_eq!(bits.name.as_deref(), Some("io.debezium.data.Bits"));
        assert_eq!(
            bits.parameters.get("length").map(String::as_str),
            Some("20")
        );
        // money: a Decimal of scale 2, whatever the locale's symbols.
        let money = |text| match t(oid::MONEY, -1, text) {
            Value::Decimal(d) => (d.to_string(), d.scale),
            other => panic!("{other:?}"),
        };
        assert_eq!(money("$12.34"), ("12.34".to_owned(), 2));
        assert_eq!(
            money("-$92,233,720,368,547,758.08"),
            ("-92233720368547758.08".to_owned(), 2)
        );
        // A numeric NaN cannot be a Decimal: null.
        assert_eq!(t(oid::NUMERIC, (12 << 16 | 4) + 4, "NaN"), Value::Null);
        // VariableScaleDecimal without trailing zeros.
        assert_eq!(
            t(oid::NUMERIC, -1, "2.50"),
            Value::Struct(vec![Value::Int32(1), Value::Bytes(vec![25])])
        );
        // Times: 24:00:00 is the end of the day; timetz in UTC.
        assert_eq!(t(oid::TIME, -1, "24:00:00"), Value::Int64(86_400_000_000));
        assert_eq!(
            t(oid::TIMETZ, -1, "03:04:05.123456+02"),
            Value::String("01:04:05.123456Z".into())
        );
        assert_eq!(
            t(oid::TIMETZ, -1, "00:00:00+00"),
            Value::String("00:00:00Z".into())
        );
        assert_eq!(
            t(oid::TIMETZ, -1, "23:59:59-05:30"),
            Value::String("05:29:59Z".into())
        );
        assert_eq!(
            t(oid::TIMETZ, -1, "12:00:00.5+14"),
            Value::String("22:00:00.5Z".into())
        );
        // timestamptz: the fraction padded to the declared precision.
        assert_eq!(
            t(oid::TIMESTAMPTZ, -1, "2026-01-02 03:04:05.25+00"),
            Value::String("2026-01-02T03:04:05.250000Z".into())
        );
        assert_eq!(
            t(oid::TIMESTAMPTZ, 3, "2026-06-01 12:00:00.123+05:30"),
            Value::String("2026-06-01T06:30:00.123Z".into())
        );
        assert_eq!(
            t(oid::TIMESTAMPTZ, -1, "-infinity"),
            Value::String("-infinity".into())
        );
        assert_eq!(
            t(oid::TIMESTAMP, -1, "infinity"),
            Value::Int64(9_223_372_036_825_200_000)
        );
        assert_eq!(
            t(oid::TIMESTAMP, 3, "-infinity"),
            Value::Int64(-9_223_372_036_832_400)
        );
        assert_eq!(t(oid::DATE, -1, "infinity"), Value::Int32(-2_147_472_692));
        assert_eq!(
            t(oid::TSVECTOR, -1, "'a' 'cat'"),
            Value::String("'a' 'cat'".into())
        );
        // interval: a month is 365.25 / 12 days; too long saturates.
        assert_eq!(
            t(oid::INTERVAL, -1, "1 year 2 mons 3 days 04:05:06.5"),
            Value::Int64(37_091_106_500_000)
        );
        assert_eq!(
            t(oid::INTERVAL, -1, "1 mon"),
            Value::Int64(2_629_800_000_000)
        );
        assert_eq!(
            t(oid::INTERVAL, -1, "-1 days"),
            Value::Int64(-86_400_000_000)
        );
        assert_eq!(
            t(oid::INTERVAL, -1, "178000000 years"),
            Value::Int64(i64::MAX)
        );
        // point: x, y and its well-known binary.
        match t(oid::POINT, -1, "(1.5,2.5)") {
            Value::Struct(v) => {
                assert_eq!(v[0], Value::Float64(1.5));
                assert_eq!(
                    v[2],
                    Value::Bytes(BASE64.decode("AQEAAAAAAAAAAAD4PwAAAAAAAARA").unwrap())
                );
                assert_eq!(v[3], Value::Null);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn extension_types_and_arrays_map_as_debezium_maps_them() {
        let named = |name: &str| ColumnType {
            name: name.into(),
            ..ColumnType::new(16_400, -1)
        };
        let hstore = named("hstore");
        assert_eq!(
            hstore.schema(true).name.as_deref(),
            Some("io.debezium.data.Json")
        );
        assert_eq!(
            hstore.decode(r#""a"=>"1", "b"=>NULL"#).unwrap(),
            Value::String(r#"{"a":"1","b":null}"#.into())
        );
        assert_eq!(hstore.decode("").unwrap(), Value::String("{}".into()));
        // Java's HashMap order, not PostgreSQL's (by length, then bytes).
        assert_eq!(
            hstore.decode(r#""b"=>"2", "aa"=>"1""#).unwrap(),
            Value::String(r#"{"aa":"1","b":"2"}"#.into())
        );
        assert_eq!(java_hashmap_order(["b", "aa"].into_iter()), vec![1, 0]);
        assert_eq!(
            named("ltree").schema(true).name.as_deref(),
            Some("io.debezium.data.Ltree")
        );
        // Arrays of any element type the catalog names.
        let array = |element: u32| ColumnType {
            element,
            ..ColumnType::new(1182, -1)
        };
        assert_eq!(
            array(oid::DATE).decode("{2026-01-02,NULL}").unwrap(),
            Value::Array(vec![Value::Int32(20455), Value::Null])
        );
        // An enum array's elements are required: one NULL makes it null.
        let moods = ColumnType {
            enum_labels: vec!["sad".into(), "ok".into()],
            ..array(16_500)
        };
        match &moods.schema(true).schema_type {
            SchemaType::Array(e) => {
                assert!(!e.optional);
                assert_eq!(
                    e.parameters.get("allowed").map(String::as_str),
                    Some("sad,ok")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(moods.decode("{NULL}").unwrap(), Value::Null);
        assert_eq!(
            moods.decode("{ok}").unwrap(),
            Value::Array(vec![Value::String("ok".into())])
        );
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
            Value::String("2026-01-02T03:04:05.500000Z".into())
        );
        assert_eq!(
            t(oid::TIMESTAMPTZ, "2026-01-02 03:04:05+00"),
            Value::String("2026-01-02T03:04:05.000000Z".into())
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
