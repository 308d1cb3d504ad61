//! The dynamic value a record's key and value hold, as in Kafka Connect.

/// A Connect value. Without a schema, JSON objects are [`Value::Map`]s with string
/// keys; a [`Value::Struct`] always has a struct schema beside it, which names its
/// fields (the values are positional, in the schema's field order, so records of
/// one schema share their field names instead of each carrying a copy).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    /// Null (also a missing optional field).
    Null,
    /// A boolean.
    Boolean(bool),
    /// An 8-bit integer.
    Int8(i8),
    /// A 16-bit integer.
    Int16(i16),
    /// A 32-bit integer.
    Int32(i32),
    /// A 64-bit integer.
    Int64(i64),
    /// A 32-bit float.
    Float32(f32),
    /// A 64-bit float.
    Float64(f64),
    /// UTF-8 text.
    String(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A list.
    Array(Vec<Value>),
    /// A map, as entries in order.
    Map(Vec<(Value, Value)>),
    /// A struct's field values, in its schema's field order.
    Struct(Vec<Value>),
    /// A decimal (Connect's `Decimal` logical type).
    Decimal(Decimal),
}

impl Value {
    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a [`Value::String`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Any integer variant widened to i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int8(v) => Some(v.into()),
            Value::Int16(v) => Some(v.into()),
            Value::Int32(v) => Some(v.into()),
            Value::Int64(v) => Some(v),
            _ => None,
        }
    }

    /// Looks a key up in a schemaless map value.
    pub fn map_get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int64(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int32(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

/// An arbitrary-precision decimal in Connect's wire form: the unscaled value as
/// big-endian two's-complement bytes, and the scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    /// The unscaled value, big-endian two's complement.
    pub unscaled: Vec<u8>,
    /// Digits after the point.
    pub scale: i32,
}

impl Decimal {
    /// `unscaled` × 10^-`scale`.
    pub fn from_i128(unscaled: i128, scale: i32) -> Self {
        let bytes = unscaled.to_be_bytes();
        // Keep the shortest form that preserves the sign, as Java's BigInteger does.
        let mut start = 0;
        while start < 15 {
            let (b, next) = (bytes[start], bytes[start + 1]);
            let redundant = (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
            if !redundant {
                break;
            }
            start += 1;
        }
        Self {
            unscaled: bytes[start..].to_vec(),
            scale,
        }
    }

    /// The unscaled value, when it fits in an i128.
    pub fn to_i128(&self) -> Option<i128> {
        if self.unscaled.is_empty() {
            return Some(0);
        }
        if self.unscaled.len() > 16 {
            return None;
        }
        let fill = if self.unscaled[0] & 0x80 != 0 {
            0xff
        } else {
            0x00
        };
        let mut buf = [fill; 16];
        buf[16 - self.unscaled.len()..].copy_from_slice(&self.unscaled);
        Some(i128::from_be_bytes(buf))
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(v) = self.to_i128() else {
            return write!(
                f,
                "<decimal of {} bytes, scale {}>",
                self.unscaled.len(),
                self.scale
            );
        };
        if self.scale <= 0 {
            let zeros = "0".repeat(self.scale.unsigned_abs() as usize);
            return write!(f, "{v}{zeros}");
        }
        let digits = v.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let sign = if v < 0 { "-" } else { "" };
        if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{sign}{int}.{frac}")
        } else {
            write!(f, "{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_round_trips_and_prints() {
        for (v, scale, text) in [
            (12345i128, 2, "123.45"),
            (-5, 3, "-0.005"),
            (0, 0, "0"),
            (-129, 0, "-129"),
        ] {
            let d = Decimal::from_i128(v, scale);
            assert_eq!(d.to_i128(), Some(v));
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(Decimal::from_i128(127, 0).unscaled, vec![0x7f]);
        assert_eq!(Decimal::from_i128(128, 0).unscaled, vec![0x00, 0x80]);
        assert_eq!(Decimal::from_i128(-1, 0).unscaled, vec![0xff]);
    }

    #[test]
    fn map_lookup_by_string_key() {
        let v = Value::Map(vec![("a".into(), Value::Int64(1))]);
        assert_eq!(v.map_get("a"), Some(&Value::Int64(1)));
        assert_eq!(v.map_get("b"), None);
    }
}
