//! Where in the bucket a file goes: Confluent's partitioners and object names,
//! `<topics.dir>/<topic>/<encoded partition>/<topic>+<kafkaPartition>+<startOffset>.<ext>`.
//!
//! - Default: `partition=<kafka partition>`.
//! - Field (`partition.field.name`): `<field>=<value>[/<field>=<value>...]`.
//! - TimeBased (`path.format`, `partition.duration.ms`, `timezone`,
//!   `timestamp.extractor`): the record's time, floored to the duration and
//!   written with a Joda-style pattern such as `'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH`.

use sluice_api::{Record, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioner {
    Default,
    Field {
        fields: Vec<String>,
    },
    Time {
        path_format: Vec<Token>,
        duration_ms: i64,
        zone: Zone,
        extractor: Extractor,
    },
}

/// The time zone paths are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// A fixed offset from UTC, in milliseconds.
    Fixed(i64),
    /// An IANA zone, daylight saving included (e.g. `America/Los_Angeles`).
    Named(chrono_tz::Tz),
}

impl Zone {
    /// The zone's offset from UTC at the instant `utc_ms`, in milliseconds.
    fn offset_at(&self, utc_ms: i64) -> i64 {
        use chrono::{Offset, TimeZone};
        match self {
            Zone::Fixed(ms) => *ms,
            Zone::Named(tz) => chrono::DateTime::from_timestamp_millis(utc_ms).map_or(0, |t| {
                i64::from(
                    tz.offset_from_utc_datetime(&t.naive_utc())
                        .fix()
                        .local_minus_utc(),
                ) * 1000
            }),
        }
    }
}

/// Where a record's time comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extractor {
    /// The Kafka record timestamp (deterministic: replays cut the same paths).
    Record,
    /// A field of the value: epoch milliseconds.
    RecordField(String),
    /// The worker's clock; not exactly-once, since a replay may land elsewhere.
    Wallclock,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Literal(String),
    Year(usize),
    Month,
    Day,
    Hour,
    Minute,
}

pub const DEFAULT_CLASS: &str = "io.confluent.connect.storage.partitioner.DefaultPartitioner";

/// The settings a partitioner may need, from the connector config.
pub struct PartitionerSettings<'a> {
    pub class: &'a str,
    pub field_names: &'a [String],
    pub path_format: Option<&'a str>,
    pub duration_ms: Option<i64>,
    pub timezone: Option<&'a str>,
    pub extractor: &'a str,
    pub timestamp_field: Option<&'a str>,
}

impl Partitioner {
    /// Checks a class name alone (for config validation).
    pub fn check_class(class: &str) -> Result<(), String> {
        match short_class(class) {
            Some(_) => Ok(()),
            None => Err(format!(
                "unknown partitioner '{class}'; use DefaultPartitioner, FieldPartitioner, TimeBasedPartitioner, HourlyPartitioner or DailyPartitioner"
            )),
        }
    }

    /// Builds a partitioner; the error names the key at fault.
    pub fn build(s: &PartitionerSettings<'_>) -> Result<Self, (&'static str, String)> {
        let class = short_class(s.class).ok_or((
            "partitioner.class",
            format!("unknown partitioner '{}'", s.class),
        ))?;
        let (default_format, default_duration) = match class {
            "Default" => return Ok(Partitioner::Default),
            "Field" => {
                if s.field_names.is_empty() {
                    return Err((
                        "partition.field.name",
                        "FieldPartitioner needs at least one field".into(),
                    ));
                }
                return Ok(Partitioner::Field {
                    fields: s.field_names.to_vec(),
                });
            }
            "Hourly" => (
                Some("'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH"),
                Some(3_600_000),
            ),
            "Daily" => (Some("'year'=YYYY/'month'=MM/'day'=dd"), Some(86_400_000)),
            _ => (None, None),
        };
        let format = s
            .path_format
            .filter(|f| !f.is_empty())
            .or(default_format)
            .ok_or((
                "path.format",
                "TimeBasedPartitioner needs path.format".to_owned(),
            ))?;
        let duration_ms = s
            .duration_ms
            .filter(|d| *d > 0)
            .or(default_duration)
            .ok_or((
                "partition.duration.ms",
                "TimeBasedPartitioner needs a positive partition.duration.ms".to_owned(),
            ))?;
        let timezone = s.timezone.filter(|t| !t.is_empty()).ok_or((
            "timezone",
            "TimeBasedPartitioner needs a timezone (e.g. UTC)".to_owned(),
        ))?;
        let extractor = match s.extractor {
            "Record" => Extractor::Record,
            "Wallclock" => Extractor::Wallclock,
            "RecordField" => Extractor::RecordField(
                s.timestamp_field
                    .filter(|f| !f.is_empty())
                    .ok_or((
                        "timestamp.field",
                        "timestamp.extractor=RecordField needs timestamp.field".to_owned(),
                    ))?
                    .to_owned(),
            ),
            other => {
                return Err((
                    "timestamp.extractor",
                    format!("'{other}': use Record, RecordField or Wallclock"),
                ))
            }
        };
        Ok(Partitioner::Time {
            path_format: parse_format(format).map_err(|e| ("path.format", e))?,
            duration_ms,
            zone: parse_timezone(timezone).map_err(|e| ("timezone", e))?,
            extractor,
        })
    }

    /// Whether paths depend on the records' values (not only on their
    /// partition and timestamp).
    pub fn reads_values(&self) -> bool {
        match self {
            Partitioner::Default => false,
            Partitioner::Field { .. } => true,
            Partitioner::Time { extractor, .. } => matches!(extractor, Extractor::RecordField(_)),
        }
    }

    /// The encoded partition of a record, e.g. `partition=3` or
    /// `year=2026/month=01/day=01/hour=00`.
    pub fn encode(&self, record: &Record) -> Result<String, String> {
        match self {
            Partitioner::Default => Ok(format!("partition={}", record.partition.unwrap_or(0))),
            Partitioner::Field { fields } => {
                let parts: Result<Vec<String>, String> = fields
                    .iter()
                    .map(|f| {
                        let v = field(record, f).ok_or_else(|| {
                            format!("record {} has no field '{f}'", record.coordinates())
                        })?;
                        Ok(format!("{f}={}", text(v)))
                    })
                    .collect();
                Ok(parts?.join("/"))
            }
            Partitioner::Time {
                path_format,
                duration_ms,
                zone,
                extractor,
            } => {
                let ts = match extractor {
                    Extractor::Record => record.timestamp.ok_or_else(|| {
                        format!("record {} has no timestamp", record.coordinates())
                    })?,
                    Extractor::Wallclock => sluice_api::now_ms(),
                    Extractor::RecordField(f) => {
                        field(record, f).and_then(Value::as_i64).ok_or_else(|| {
                            format!(
                                "record {} has no epoch-millisecond field '{f}'",
                                record.coordinates()
                            )
                        })?
                    }
                };
                // Floor in local time, so daily buckets start at local midnight.
                let local = ts + zone.offset_at(ts);
                let floored = local.div_euclid(*duration_ms) * duration_ms;
                Ok(format_time(path_format, floored))
            }
        }
    }
}

fn short_class(class: &str) -> Option<&'static str> {
    let name = class.rsplit('.').next().unwrap_or(class);
    match name {
        "DefaultPartitioner" | "default" => Some("Default"),
        "FieldPartitioner" | "field" => Some("Field"),
        "TimeBasedPartitioner" | "time" => Some("Time"),
        "HourlyPartitioner" => Some("Hourly"),
        "DailyPartitioner" => Some("Daily"),
        _ => None,
    }
}

fn field<'a>(record: &'a Record, name: &str) -> Option<&'a Value> {
    match &record.value {
        Value::Struct(values) => record
            .value_schema
            .as_ref()?
            .field_index(name)
            .and_then(|i| values.get(i)),
        Value::Map(_) => record.value.map_get(name),
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Boolean(b) => b.to_string(),
        Value::Float32(f) => f.to_string(),
        Value::Float64(f) => f.to_string(),
        Value::Null => "null".to_owned(),
        other => other
            .as_i64()
            .map_or_else(|| format!("{other:?}"), |i| i.to_string()),
    }
}

/// Parses a Joda-style pattern: `'literal'` text, `YYYY`/`yyyy`, `MM`, `dd`,
/// `HH`, `mm`; other characters are literal.
pub fn parse_format(pattern: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    let flush = |literal: &mut String, tokens: &mut Vec<Token>| {
        if !literal.is_empty() {
            tokens.push(Token::Literal(std::mem::take(literal)));
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|c| *c == '\'')
                .ok_or(format!("unclosed quote in '{pattern}'"))?;
            literal.extend(&chars[i + 1..i + 1 + end]);
            i += end + 2;
            continue;
        }
        let run = chars[i..].iter().take_while(|x| **x == c).count();
        let token = match (c, run) {
            ('Y' | 'y', n) => Some(Token::Year(n)),
            ('M', 2) => Some(Token::Month),
            ('d', 2) => Some(Token::Day),
            ('H', 2) => Some(Token::Hour),
            ('m', 2) => Some(Token::Minute),
            ('M' | 'd' | 'H' | 'm', n) => {
                return Err(format!(
                    "'{}' in '{pattern}': use two letters",
                    c.to_string().repeat(n)
                ))
            }
            _ if c.is_ascii_alphabetic() => {
                return Err(format!(
                    "'{c}' in '{pattern}' is not a supported pattern letter; quote literal text"
                ))
            }
            _ => None,
        };
        match token {
            Some(t) => {
                flush(&mut literal, &mut tokens);
                tokens.push(t);
            }
            None => literal.extend(&chars[i..i + run]),
        }
        i += run;
    }
    flush(&mut literal, &mut tokens);
    Ok(tokens)
}

/// `UTC`, a fixed offset (`+02:00`, `UTC-05:30`), or an IANA zone name
/// (`Europe/Paris`), as Joda accepts them.
pub fn parse_timezone(tz: &str) -> Result<Zone, String> {
    let t = tz.trim();
    if matches!(t, "UTC" | "GMT" | "Z" | "Etc/UTC") {
        return Ok(Zone::Fixed(0));
    }
    if let Ok(named) = t.parse::<chrono_tz::Tz>() {
        return Ok(Zone::Named(named));
    }
    let offset = t
        .strip_prefix("UTC")
        .or_else(|| t.strip_prefix("GMT"))
        .unwrap_or(t);
    let (sign, rest) = match offset.chars().next() {
        Some('+') => (1, &offset[1..]),
        Some('-') => (-1, &offset[1..]),
        _ => return Err(format!("'{tz}' is not a time zone: use UTC, an offset such as +02:00, or an IANA name such as Europe/Paris")),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (h, m): (i64, i64) = (
        h.parse().map_err(|_| format!("bad offset '{tz}'"))?,
        m.parse().map_err(|_| format!("bad offset '{tz}'"))?,
    );
    if h > 18 || m > 59 {
        return Err(format!("offset '{tz}' out of range"));
    }
    Ok(Zone::Fixed(sign * (h * 3_600_000 + m * 60_000)))
}

/// Formats local epoch milliseconds with parsed tokens.
pub fn format_time(tokens: &[Token], local_ms: i64) -> String {
    let days = local_ms.div_euclid(86_400_000);
    let ms_of_day = local_ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let mut out = String::new();
    for t in tokens {
        match t {
            Token::Literal(s) => out.push_str(s),
            Token::Year(n) => out.push_str(&format!("{y:0n$}", n = *n)),
            Token::Month => out.push_str(&format!("{m:02}")),
            Token::Day => out.push_str(&format!("{d:02}")),
            Token::Hour => out.push_str(&format!("{:02}", ms_of_day / 3_600_000)),
            Token::Minute => out.push_str(&format!("{:02}", ms_of_day / 60_000 % 60)),
        }
    }
    out
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The object key of a file starting at `start_offset`.
pub fn object_key(
    topics_dir: &str,
    topic: &str,
    encoded: &str,
    partition: i32,
    start_offset: i64,
    pad_width: usize,
    extension: &str,
) -> String {
    let file = format!("{topic}+{partition}+{start_offset:0pad_width$}.{extension}");
    if topics_dir.is_empty() {
        format!("{topic}/{encoded}/{file}")
    } else {
        format!("{topics_dir}/{topic}/{encoded}/{file}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::schema::{primitives, Schema};

    fn settings<'a>(class: &'a str, fields: &'a [String]) -> PartitionerSettings<'a> {
        PartitionerSettings {
            class,
            field_names: fields,
            path_format: None,
            duration_ms: None,
            timezone: Some("UTC"),
            extractor: "Record",
            timestamp_field: None,
        }
    }

    #[test]
    fn keys_follow_confluent_naming() {
        let k = object_key(
            "topics",
            "api-usage-events.v1",
            "partition=7",
            7,
            4200,
            10,
            "snappy.parquet",
        );
        assert_eq!(k, "topics/api-usage-events.v1/partition=7/api-usage-events.v1+7+0000004200.snappy.parquet");
    }

    #[test]
    fn time_based_paths() {
        let p = Partitioner::build(&PartitionerSettings {
            path_format: Some("'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH"),
            duration_ms: Some(3_600_000),
            ..settings(
                "io.confluent.connect.storage.partitioner.TimeBasedPartitioner",
                &[],
            )
        })
        .unwrap();
        let mut r = Record::new("t", Value::Null, Value::Null);
        r.timestamp = Some(1_767_225_600_000 + 5 * 3_600_000 + 59 * 60_000); // 2026-01-01T05:59Z
        assert_eq!(p.encode(&r).unwrap(), "year=2026/month=01/day=01/hour=05");
        r.timestamp = Some(951_782_400_000); // 2000-02-29T00:00Z
        assert_eq!(p.encode(&r).unwrap(), "year=2000/month=02/day=29/hour=00");
        let daily = Partitioner::build(&PartitionerSettings {
            timezone: Some("-05:00"),
            ..settings(
                "io.confluent.connect.storage.partitioner.DailyPartitioner",
                &[],
            )
        })
        .unwrap();
        r.timestamp = Some(1_767_225_600_000 + 3_600_000); // 2026-01-01T01:00Z = 2025-12-31T20:00-05:00
        assert_eq!(daily.encode(&r).unwrap(), "year=2025/month=12/day=31");
    }

    #[test]
    fn named_zones_follow_daylight_saving() {
        let p = Partitioner::build(&PartitionerSettings {
            timezone: Some("America/New_York"),
            ..settings(
                "io.confluent.connect.storage.partitioner.HourlyPartitioner",
                &[],
            )
        })
        .unwrap();
        let mut r = Record::new("t", Value::Null, Value::Null);
        r.timestamp = Some(1_767_225_600_000); // 2026-01-01T00:00Z: EST, UTC-5
        assert_eq!(p.encode(&r).unwrap(), "year=2025/month=12/day=31/hour=19");
        r.timestamp = Some(1_783_036_800_000); // 2026-07-03T00:00Z: EDT, UTC-4
        assert_eq!(p.encode(&r).unwrap(), "year=2026/month=07/day=02/hour=20");
    }

    #[test]
    fn field_paths_and_bad_settings() {
        let fields = vec!["tenant".to_owned()];
        let p = Partitioner::build(&settings(
            "io.confluent.connect.storage.partitioner.FieldPartitioner",
            &fields,
        ))
        .unwrap();
        let schema = Schema::struct_of([("tenant", primitives::string())]).into_ref();
        let r = Record {
            value_schema: Some(schema),
            value: Value::Struct(vec!["acme".into()]),
            ..Record::default()
        };
        assert_eq!(p.encode(&r).unwrap(), "tenant=acme");
        let bad = Partitioner::build(&PartitionerSettings {
            path_format: Some("'year'=YYYY/QQ"),
            duration_ms: Some(1000),
            ..settings("TimeBasedPartitioner", &[])
        });
        assert_eq!(bad.unwrap_err().0, "path.format");
        assert!(parse_timezone("Mars/Olympus").unwrap_err().contains("IANA"));
        assert_eq!(parse_timezone("UTC+02:30"), Ok(Zone::Fixed(9_000_000)));
        assert!(Partitioner::check_class("com.example.Nope").is_err());
    }
}
