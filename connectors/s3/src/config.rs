//! The connector's configuration, with Confluent's S3 sink key names.

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::{ConfigErrors, TaskConfig};

use crate::format::{Codec, Format};

#[allow(
    clippy::too_many_lines,
    reason = "a declarative list of keys: long, but flat."
)]
pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("s3.bucket.name", ConfigType::String)
                .importance(Importance::High)
                .validator(Validator::NonEmpty)
                .doc("The bucket to write to; it must exist."),
        )
        .define(ConfigKey::new("s3.region", ConfigType::String).default("us-east-1").importance(Importance::Medium))
        .define(
            ConfigKey::new("store.url", ConfigType::String)
                .optional()
                .doc("A custom S3 endpoint (MinIO, s3s, ...); path-style addressing is used with it."),
        )
        .define(
            ConfigKey::new("s3.path.style.access.enabled", ConfigType::Boolean)
                .optional()
                .doc("Path-style bucket addressing; defaults to true when store.url is set."),
        )
        .define(ConfigKey::new("aws.access.key.id", ConfigType::String).optional())
        .define(
            ConfigKey::new("aws.secret.access.key", ConfigType::Password)
                .optional()
                .doc("With aws.access.key.id; without both, the AWS default credential chain is used."),
        )
        .define(ConfigKey::new("topics.dir", ConfigType::String).default("topics").doc("Top-level prefix of every object."))
        .define(
            ConfigKey::new("flush.size", ConfigType::Int)
                .importance(Importance::High)
                .validator(Validator::at_least(1.0))
                .doc("Records per file: a file is written once it holds this many."),
        )
        .define(
            ConfigKey::new("rotate.interval.ms", ConfigType::Long)
                .default("-1")
                .validator(Validator::at_least(-1.0))
                .doc("Cut a file when a record's timestamp is this far past the file's first record (record time, so replays cut the same files); -1 is off."),
        )
        .define(
            ConfigKey::new("s3.part.size", ConfigType::Int)
                .default("26214400")
                .validator(Validator::at_least(MIN_PART_SIZE as f64))
                .doc("Multipart upload part size in bytes."),
        )
        .define(
            ConfigKey::new("s3.row.group.records", ConfigType::Int)
                .default("1000")
                .validator(Validator::at_least(1.0))
                .doc("Records encoded at a time (one Parquet row group). With s3.part.size it bounds the memory of each open file: files go up in parts while they are written."),
        )
        .define(
            ConfigKey::new("format.class", ConfigType::Class)
                .default("parquet")
                .validator(Validator::Custom(|v| Format::from_class(v).map(|_| ())))
                .doc("parquet or json (Confluent's ParquetFormat / JsonFormat class names work too)."),
        )
        .define(
            ConfigKey::new("parquet.codec", ConfigType::String)
                .default("snappy")
                .validator(Validator::OneOf(&["none", "snappy", "gzip", "zstd", "lz4", "brotli"])),
        )
        .define(
            ConfigKey::new("partitioner.class", ConfigType::Class)
                .default(crate::partitioner::DEFAULT_CLASS)
                .validator(Validator::Custom(crate::partitioner::Partitioner::check_class)),
        )
        .define(ConfigKey::new("partition.field.name", ConfigType::List).default("").doc("FieldPartitioner: the value fields that name the path."))
        .define(ConfigKey::new("path.format", ConfigType::String).optional().doc("TimeBasedPartitioner: a Joda-style pattern, e.g. 'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH."))
        .define(ConfigKey::new("partition.duration.ms", ConfigType::Long).optional().doc("TimeBasedPartitioner: the time bucket of one path."))
        .define(ConfigKey::new("timezone", ConfigType::String).optional().doc("TimeBasedPartitioner: UTC, a fixed offset such as +02:00, or an IANA zone such as Europe/Paris."))
        .define(ConfigKey::new("locale", ConfigType::String).optional().doc("Accepted for Confluent compatibility; paths use numbers only, so it changes nothing."))
        .define(
            ConfigKey::new("timestamp.extractor", ConfigType::String)
                .default("Record")
                .validator(Validator::OneOf(&["Record", "RecordField", "Wallclock"])),
        )
        .define(ConfigKey::new("timestamp.field", ConfigType::String).optional().doc("timestamp.extractor=RecordField: the epoch-millisecond field."))
        .define(
            ConfigKey::new("rotate.schedule.interval.ms", ConfigType::Long)
                .default("-1")
                .validator(Validator::at_least(-1.0))
                .doc("Cut a file after this much wall-clock time, even when idle; -1 is off. Not exactly-once: a replay may cut elsewhere."),
        )
        .define(
            ConfigKey::new("schema.compatibility", ConfigType::String)
                .default("NONE")
                .validator(Validator::OneOf(&["NONE", "BACKWARD", "FORWARD", "FULL"]))
                .doc("What a value schema change does: NONE starts a new file; BACKWARD/FULL project older-version records onto the file's newer schema; FORWARD projects newer ones onto the older (see compat.rs)."),
        )
        .define(
            ConfigKey::new("filename.offset.zero.pad.width", ConfigType::Int)
                .default("10")
                .validator(Validator::between(1.0, 19.0)),
        )
        .define(
            ConfigKey::new("s3.tier", ConfigType::String)
                .default("none")
                .validator(Validator::OneOf(&["none", "archive", "audit"]))
                .doc("archive: a lifecycle rule expires the prefix after s3.retention.days. audit: Object Lock (COMPLIANCE) retention, a SHA-256 checksum on every put, and a manifest chain per partition."),
        )
        .define(
            ConfigKey::new("s3.retention.days", ConfigType::Int)
                .optional()
                .validator(Validator::at_least(1.0))
                .doc(format!("Days to keep objects: default {ARCHIVE_DAYS} for archive, {AUDIT_DAYS} (about 7 years) for audit.")),
        )
        .define(
            ConfigKey::new("s3.object.lock.required", ConfigType::Boolean)
                .default("true")
                .doc("audit tier: refuse to start when the bucket has no Object Lock; false writes checksums and manifests without retention."),
        )
        .define(ConfigKey::new("s3.storage.class", ConfigType::String).optional().doc("Storage class of every object (e.g. STANDARD_IA)."))
}

/// The parsed configuration.
#[derive(Debug, Clone)]
pub struct S3SinkConfig {
    pub bucket: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub credentials: Option<(String, String)>,
    pub topics_dir: String,
    pub flush_size: usize,
    pub rotate_interval_ms: Option<i64>,
    pub rotate_schedule: Option<std::time::Duration>,
    pub row_group_records: usize,
    /// Multipart part size in bytes (S3's minimum at least).
    pub part_size: usize,
    pub compatibility: crate::compat::Compatibility,
    pub format: Format,
    pub pad_width: usize,
    pub partitioner: crate::partitioner::Partitioner,
    pub tier: Tier,
    pub storage_class: Option<String>,
}

/// The retention tier the connector writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Plain,
    /// A lifecycle rule expires the prefix after `days`.
    Archive {
        days: i32,
    },
    /// Object Lock retention for `days` (when `lock_required` or available),
    /// checksums and a manifest chain.
    Audit {
        days: i32,
        lock_required: bool,
    },
}

/// S3's smallest part (but the last) of a multipart upload.
const MIN_PART_SIZE: i32 = 5_242_880;
/// `s3.retention.days` when unset: its default depends on the tier.
const ARCHIVE_DAYS: i32 = 90;
const AUDIT_DAYS: i32 = 2555;

impl S3SinkConfig {
    /// Validates against [`config_def`], which is the one source of defaults:
    /// a key it defaults always has a value here, so the getters' fallbacks
    /// (`unwrap_or_default`) are never used.
    pub fn parse(raw: &TaskConfig) -> Result<Self, ConfigErrors> {
        let c = config_def().validate(raw)?;
        let endpoint = c
            .string("store.url")
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        let credentials = match (
            c.string("aws.access.key.id"),
            c.password("aws.secret.access.key"),
        ) {
            (Some(k), Some(s)) if !k.is_empty() => Some((k.to_owned(), s.expose().to_owned())),
            (Some(k), None) if !k.is_empty() => {
                return Err(ConfigErrors::single(
                    "aws.secret.access.key",
                    "is required with aws.access.key.id",
                ))
            }
            _ => None,
        };
        let format = match Format::from_class(c.string("format.class").unwrap_or_default()) {
            Ok(Format::Parquet(_)) => {
                Format::Parquet(Codec::parse(c.string("parquet.codec").unwrap_or_default()))
            }
            Ok(f) => f,
            Err(e) => return Err(ConfigErrors::single("format.class", e)),
        };
        let partitioner =
            crate::partitioner::Partitioner::build(&crate::partitioner::PartitionerSettings {
                class: c.string("partitioner.class").unwrap_or_default(),
                field_names: c.list("partition.field.name").unwrap_or_default(),
                path_format: c.string("path.format"),
                duration_ms: c.long("partition.duration.ms"),
                timezone: c.string("timezone"),
                extractor: c.string("timestamp.extractor").unwrap_or_default(),
                timestamp_field: c.string("timestamp.field"),
            })
            .map_err(|(key, why)| ConfigErrors::single(key, why))?;
        let parsed = Self {
            bucket: c.string("s3.bucket.name").unwrap_or_default().to_owned(),
            region: c.string("s3.region").unwrap_or_default().to_owned(),
            path_style: c
                .boolean("s3.path.style.access.enabled")
                .unwrap_or(endpoint.is_some()),
            endpoint,
            credentials,
            topics_dir: c
                .string("topics.dir")
                .unwrap_or_default()
                .trim_matches('/')
                .to_owned(),
            flush_size: c.int("flush.size").unwrap_or_default().max(1) as usize,
            rotate_interval_ms: c.long("rotate.interval.ms").filter(|v| *v > 0),
            part_size: c.int("s3.part.size").unwrap_or_default().max(MIN_PART_SIZE) as usize,
            row_group_records: c.int("s3.row.group.records").unwrap_or_default().max(1) as usize,
            compatibility: crate::compat::Compatibility::parse(
                c.string("schema.compatibility").unwrap_or_default(),
            ),
            rotate_schedule: c
                .long("rotate.schedule.interval.ms")
                .filter(|v| *v > 0)
                .map(|v| std::time::Duration::from_millis(v as u64)),
            format,
            pad_width: c.int("filename.offset.zero.pad.width").unwrap_or_default() as usize,
            partitioner,
            tier: match c.string("s3.tier").unwrap_or_default() {
                "archive" => Tier::Archive {
                    days: c.int("s3.retention.days").unwrap_or(ARCHIVE_DAYS),
                },
                "audit" => Tier::Audit {
                    days: c.int("s3.retention.days").unwrap_or(AUDIT_DAYS),
                    lock_required: c.boolean("s3.object.lock.required").unwrap_or_default(),
                },
                _ => Tier::Plain,
            },
            storage_class: c
                .string("s3.storage.class")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        };
        check_tier(&parsed).map_err(|why| ConfigErrors::single("s3.tier", why))?;
        Ok(parsed)
    }
}

/// The audit tier proves contiguity per partition: that needs one directory
/// per Kafka partition.
fn check_tier(config: &S3SinkConfig) -> Result<(), String> {
    if matches!(config.tier, Tier::Audit { .. })
        && config.partitioner != crate::partitioner::Partitioner::Default
    {
        return Err("s3.tier=audit needs the DefaultPartitioner, so each partition's files form one contiguous chain".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> TaskConfig {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn confluent_config_parses() {
        let c = S3SinkConfig::parse(&raw(&[
            ("s3.bucket.name", "archive"),
            ("store.url", "http://127.0.0.1:9000"),
            ("flush.size", "1000"),
            (
                "format.class",
                "io.confluent.connect.s3.format.parquet.ParquetFormat",
            ),
            ("parquet.codec", "zstd"),
            ("aws.access.key.id", "a"),
            ("aws.secret.access.key", "s"),
        ]))
        .unwrap();
        assert!(c.path_style);
        assert_eq!(c.format.extension(), "zstd.parquet");
        assert_eq!(c.topics_dir, "topics");
    }

    #[test]
    fn bad_values_name_their_keys() {
        let e = S3SinkConfig::parse(&raw(&[
            ("s3.bucket.name", "b"),
            ("flush.size", "10"),
            ("parquet.codec", "lzo"),
            (
                "partitioner.class",
                "io.confluent.connect.storage.partitioner.NoSuchPartitioner",
            ),
            ("s3.tier", "cold"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("'parquet.codec': invalid value 'lzo'"), "{e}");
        assert!(e.contains("'partitioner.class'"), "{e}");
        assert!(e.contains("'s3.tier'"), "{e}");
        let e = S3SinkConfig::parse(&raw(&[("s3.bucket.name", "b")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'flush.size': is required"), "{e}");
    }
}
