//! How Java renders Connect values, where Connect's transforms let that
//! rendering escape into data or error messages: class names
//! (`getClass().getName()`), `Double.toString`, `BigDecimal.toString`, and
//! `Values.convertToString` (what `SimpleHeaderConverter` writes as a header).

use sluice_api::schema::{LogicalType, Schema};
use sluice_api::{Decimal, Value};

use crate::date_format::DateFormat;

/// The Java class Connect holds `value` in (`getClass().getName()`), given the
/// schema it travels with (logical types change the class).
pub(crate) fn class_name(value: &Value, schema: Option<&Schema>) -> &'static str {
    match (schema.and_then(Schema::logical_type), value) {
        (_, Value::Null) => "null",
        (Some(LogicalType::Date | LogicalType::Time | LogicalType::Timestamp), _) => {
            "java.util.Date"
        }
        (_, Value::Decimal(_)) | (Some(LogicalType::Decimal { .. }), _) => "java.math.BigDecimal",
        (_, Value::Boolean(_)) => "java.lang.Boolean",
        (_, Value::Int8(_)) => "java.lang.Byte",
        (_, Value::Int16(_)) => "java.lang.Short",
        (_, Value::Int32(_)) => "java.lang.Integer",
        (_, Value::Int64(_)) => "java.lang.Long",
        (_, Value::Float32(_)) => "java.lang.Float",
        (_, Value::Float64(_)) => "java.lang.Double",
        (_, Value::String(_)) => "java.lang.String",
        (_, Value::Bytes(_)) => "[B",
        (_, Value::Array(_)) => "java.util.ArrayList",
        (_, Value::Map(_)) => "java.util.HashMap",
        (_, Value::Struct(_)) => "org.apache.kafka.connect.data.Struct",
    }
}

/// `Class.toString()`: `class java.lang.String`, as messages built with
/// `"..." + value.getClass()` show it.
pub(crate) fn class_string(value: &Value, schema: Option<&Schema>) -> String {
    format!("class {}", class_name(value, schema))
}

/// Java's `Double.toString`.
pub(crate) fn double_to_string(d: f64) -> String {
    float_to_string_impl(d, format!("{d}"), format!("{d:e}"))
}

/// Java's `Float.toString`.
pub(crate) fn float_to_string(f: f32) -> String {
    float_to_string_impl(f64::from(f), format!("{f}"), format!("{f:e}"))
}

fn float_to_string_impl(d: f64, plain: String, sci: String) -> String {
    if d.is_nan() {
        return "NaN".to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    if (1e-3..1e7).contains(&d.abs()) {
        if plain.contains('.') {
            plain
        } else {
            plain + ".0"
        }
    } else {
        let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_owned()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

/// Java's `BigDecimal.toString`: plain unless the scale is negative or the
/// number is very small, then scientific (`1E+3`, `1.5E-8`).
pub(crate) fn decimal_to_string(d: &Decimal) -> String {
    let Some(unscaled) = d.to_i128() else {
        return d.to_string();
    };
    let digits = unscaled.unsigned_abs().to_string();
    let adjusted = -i64::from(d.scale) + (digits.len() as i64 - 1);
    if d.scale >= 0 && adjusted >= -6 {
        return d.to_string();
    }
    let sign = if unscaled < 0 { "-" } else { "" };
    let (head, tail) = digits.split_at(1);
    let mantissa = if tail.is_empty() {
        head.to_owned()
    } else {
        format!("{head}.{tail}")
    };
    let exp_sign = if adjusted >= 0 { "+" } else { "" };
    format!("{sign}{mantissa}E{exp_sign}{adjusted}")
}

/// `new BigDecimal(text)`: the unscaled value and scale; `None` where Java
/// throws `NumberFormatException` (or the value exceeds 128 bits).
pub(crate) fn parse_big_decimal(text: &str) -> Option<Decimal> {
    let (mantissa, exp) = match text.find(['e', 'E']) {
        // Java allows any int exponent; beyond a few thousand digits the value
        // is no use as a mask or header, and rendering it would be huge.
        Some(i) => (
            &text[..i],
            text[i + 1..]
                .parse::<i32>()
                .ok()
                .filter(|e| e.abs() <= 4096)?,
        ),
        None => (text, 0),
    };
    let (sign, digits) = match mantissa.as_bytes().first()? {
        b'-' => (-1i128, &mantissa[1..]),
        b'+' => (1, &mantissa[1..]),
        _ => (1, mantissa),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut unscaled: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        unscaled = unscaled
            .checked_mul(10)?
            .checked_add(i128::from(b - b'0'))?;
    }
    let scale = i32::try_from(frac.len()).ok()?.checked_sub(exp)?;
    Some(Decimal::from_i128(sign * unscaled, scale))
}

/// `new BigDecimal(text).longValue()`: the integer part, wrapped to 64 bits.
pub(crate) fn big_decimal_long(d: &Decimal) -> i64 {
    let v = d.to_i128().unwrap_or(0);
    let truncated = if d.scale >= 0 {
        v / 10i128
            .checked_pow(d.scale.unsigned_abs())
            .unwrap_or(i128::MAX)
    } else {
        v.wrapping_mul(10i128.checked_pow(d.scale.unsigned_abs()).unwrap_or(0))
    };
    truncated as i64
}

/// `new BigDecimal(text).doubleValue()`.
pub(crate) fn big_decimal_double(d: &Decimal) -> f64 {
    decimal_to_string(d).parse().unwrap_or(0.0)
}

/// Milliseconds of the `java.util.Date` a logical-typed value stands for.
pub(crate) fn logical_millis(value: &Value, logical: LogicalType) -> Option<i64> {
    const MILLIS_PER_DAY: i64 = 24 * 60 * 60 * 1000;
    match (logical, value) {
        (LogicalType::Date, Value::Int32(days)) => Some(i64::from(*days) * MILLIS_PER_DAY),
        (LogicalType::Time, Value::Int32(ms)) => Some(i64::from(*ms)),
        (LogicalType::Timestamp, Value::Int64(ms)) => Some(*ms),
        _ => None,
    }
}

/// `Values.dateFormatFor(date).format(date)`: a time of day, a date, or both,
/// whichever the value holds (UTC, the worker's zone in the reference setup).
pub(crate) fn date_to_string(millis: i64) -> String {
    const MILLIS_PER_DAY: i64 = 24 * 60 * 60 * 1000;
    let pattern = if millis < MILLIS_PER_DAY {
        "HH:mm:ss.SSS'Z'"
    } else if millis % MILLIS_PER_DAY == 0 {
        "yyyy-MM-dd"
    } else {
        "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
    };
    DateFormat::parse_pattern(pattern).map_or_else(|_| millis.to_string(), |f| f.format(millis))
}

/// `Values.convertToString(schema, value)`: the text `SimpleHeaderConverter`
/// stores for a header; `None` for null.
pub(crate) fn convert_to_string(schema: Option<&Schema>, value: &Value) -> Option<String> {
    if value.is_null() {
        return None;
    }
    let mut out = String::new();
    append(&mut out, schema, value, false);
    Some(out)
}

fn append(out: &mut String, schema: Option<&Schema>, value: &Value, embedded: bool) {
    use base64_lite::encode as b64;
    if let Some(logical) = schema.and_then(Schema::logical_type) {
        if let Some(ms) = logical_millis(value, logical) {
            out.push_str(&date_to_string(ms));
            return;
        }
    }
    match value {
        Value::Null => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int8(v) => out.push_str(&v.to_string()),
        Value::Int16(v) => out.push_str(&v.to_string()),
        Value::Int32(v) => out.push_str(&v.to_string()),
        Value::Int64(v) => out.push_str(&v.to_string()),
        Value::Float32(v) => out.push_str(&float_to_string(*v)),
        Value::Float64(v) => out.push_str(&double_to_string(*v)),
        Value::Decimal(d) => out.push_str(&decimal_to_string(d)),
        Value::String(s) if embedded => {
            out.push('"');
            out.push_str(&s.replace('\\', "\\\\").replace('"', "\\\""));
            out.push('"');
        }
        Value::String(s) => out.push_str(s),
        Value::Bytes(b) if embedded => {
            out.push('"');
            out.push_str(&b64(b));
            out.push('"');
        }
        Value::Bytes(b) => out.push_str(&b64(b)),
        Value::Array(items) => {
            let element = schema.and_then(|s| match &s.schema_type {
                sluice_api::SchemaType::Array(e) => Some(e.as_ref()),
                _ => None,
            });
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append(out, element, item, true);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let (ks, vs) = match schema.map(|s| &s.schema_type) {
                Some(sluice_api::SchemaType::Map(k, v)) => (Some(k.as_ref()), Some(v.as_ref())),
                _ => (None, None),
            };
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append(out, ks, k, true);
                out.push(':');
                append(out, vs, v, true);
            }
            out.push('}');
        }
        Value::Struct(values) => {
            let fields = schema.map(Schema::fields).unwrap_or_default();
            out.push('{');
            for (i, (f, v)) in fields.iter().zip(values).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append(out, None, &Value::String(f.name.clone()), true);
                out.push(':');
                append(out, Some(&f.schema), v, true);
            }
            out.push('}');
        }
    }
}

/// Standard base64 with padding, as `java.util.Base64.getEncoder()`; small
/// enough not to pull a crate into a crate that does no I/O.
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub(crate) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
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
}

pub(crate) use base64_lite::encode as base64_encode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java_does() {
        for (d, s) in [
            (1.0, "1.0"),
            (0.001, "0.001"),
            (1e7, "1.0E7"),
            (1.5e-4, "1.5E-4"),
            (-12.25, "-12.25"),
            (123456789.0, "1.23456789E8"),
        ] {
            assert_eq!(double_to_string(d), s);
        }
        assert_eq!(float_to_string(0.1f32), "0.1");
    }

    #[test]
    fn decimals_print_as_big_decimal_does() {
        assert_eq!(decimal_to_string(&Decimal::from_i128(12345, 2)), "123.45");
        assert_eq!(decimal_to_string(&Decimal::from_i128(1, -3)), "1E+3");
        assert_eq!(decimal_to_string(&Decimal::from_i128(15, 9)), "1.5E-8");
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b"abc"), "YWJj");
        assert_eq!(base64_encode(b"a"), "YQ==");
    }
}
