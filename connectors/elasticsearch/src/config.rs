//! The connector's configuration, with Confluent's Elasticsearch sink key
//! names and defaults.

use std::time::Duration;

use sluice_api::config::{
    ConfigDef, ConfigKey, ConfigType, Importance, ValidatedConfig, Validator,
};
use sluice_api::{ConfigErrors, TaskConfig};

pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("connection.url", ConfigType::List)
                .importance(Importance::High)
                .validator(Validator::Custom(check_urls))
                .doc("Elasticsearch URLs (http:// or https://), comma-separated; requests go round-robin and fail over to the next."),
        )
        .define(ConfigKey::new("connection.username", ConfigType::String).optional().doc("Basic authentication user."))
        .define(ConfigKey::new("connection.password", ConfigType::Password).optional().doc("Basic authentication password."))
        .define(
            ConfigKey::new("connection.api.key", ConfigType::Password)
                .optional()
                .doc("sluice's own: an Elasticsearch API key (the base64 id:key), sent as 'Authorization: ApiKey'. Instead of a user and password."),
        )
        .define(
            ConfigKey::new("elastic.https.ssl.ca.location", ConfigType::String)
                .optional()
                .doc("sluice's own: a PEM file of CA certificates trusted for https:// URLs, besides the system's (Confluent takes a JKS truststore)."),
        )
        .define(ConfigKey::new("elastic.security.protocol", ConfigType::String).default("PLAINTEXT").validator(Validator::OneOf(&["PLAINTEXT", "SSL"])).doc("Accepted for Confluent compatibility: the URL's scheme decides TLS."))
        .define(ConfigKey::new("type.name", ConfigType::String).optional().doc("Accepted for Confluent compatibility (Elasticsearch 7+ has no mapping types); ignored."))
        .define(ConfigKey::new("key.ignore", ConfigType::Boolean).default("false").doc("true: the document id is topic+partition+offset, not the record key."))
        .define(ConfigKey::new("topic.key.ignore", ConfigType::List).default("").doc("Topics for which key.ignore=true applies."))
        .define(ConfigKey::new("schema.ignore", ConfigType::Boolean).default("false").doc("Accepted; sluice never creates mappings, so the value is indexed as its JSON either way."))
        .define(ConfigKey::new("topic.schema.ignore", ConfigType::List).default(""))
        .define(ConfigKey::new("compact.map.entries", ConfigType::Boolean).default("true").doc("Accepted for Confluent compatibility: maps with string keys are JSON objects."))
        .define(ConfigKey::new("write.method", ConfigType::String).default("insert").validator(Validator::Custom(|v| one_of_ci(v, &["insert", "upsert"]))).doc("insert: index (replace) the document; upsert: merge the value into it (doc_as_upsert)."))
        .define(ConfigKey::new("behavior.on.null.values", ConfigType::String).default("fail").validator(Validator::Custom(|v| one_of_ci(v, &["ignore", "delete", "fail"]))).doc("A tombstone (null value): skip it, delete the document, or fail."))
        .define(ConfigKey::new("behavior.on.malformed.documents", ConfigType::String).default("fail").validator(Validator::Custom(|v| one_of_ci(v, &["ignore", "warn", "fail"]))).doc("A document the server rejects (mapping, parsing): it goes to the error reporter (DLQ) either way; ignore/warn then skip it, fail fails the task unless errors.tolerance=all."))
        .define(ConfigKey::new("drop.invalid.message", ConfigType::Boolean).default("false").doc("Drop (with a warning) records that cannot become a document (a value that is not an object, a key that cannot be an id) instead of reporting them."))
        .define(ConfigKey::new("batch.size", ConfigType::Int).default("2000").validator(Validator::between(1.0, 1_000_000.0)).doc("Actions per _bulk request at most."))
        .define(ConfigKey::new("bulk.size.bytes", ConfigType::Long).default("5242880").validator(Validator::at_least(1.0)).doc("Bytes per _bulk request body at most (uncompressed; one larger action goes alone)."))
        .define(ConfigKey::new("linger.ms", ConfigType::Long).default("1").validator(Validator::between(0.0, 604_800_000.0)).doc("How long a partial batch waits for more records."))
        .define(ConfigKey::new("max.in.flight.requests", ConfigType::Int).default("5").validator(Validator::between(1.0, 1000.0)))
        .define(ConfigKey::new("max.buffered.records", ConfigType::Int).default("20000").validator(Validator::at_least(1.0)).doc("Records held (queued or in flight) at most; beyond it put waits, so the task stops consuming instead of growing."))
        .define(ConfigKey::new("flush.timeout.ms", ConfigType::Long).default("180000").validator(Validator::at_least(1.0)).doc("How long a flush waits for buffered records before it reports a retriable failure."))
        .define(ConfigKey::new("max.retries", ConfigType::Int).default("5").validator(Validator::at_least(0.0)).doc("Retries of a failed request or item before the task reports itself retrying; sluice keeps retrying after that (see README)."))
        .define(ConfigKey::new("retry.backoff.ms", ConfigType::Long).default("100").validator(Validator::at_least(0.0)).doc("First retry delay; later ones double, with jitter, up to 10 s."))
        .define(ConfigKey::new("connection.compression", ConfigType::Boolean).default("false").doc("gzip request bodies."))
        .define(ConfigKey::new("max.connection.idle.time.ms", ConfigType::Int).default("60000").validator(Validator::at_least(-1.0)))
        .define(ConfigKey::new("connection.timeout.ms", ConfigType::Int).default("1000").validator(Validator::at_least(0.0)))
        .define(ConfigKey::new("read.timeout.ms", ConfigType::Int).default("3000").validator(Validator::at_least(0.0)).doc("How long a request may take, end to end; 0 waits for ever."))
        .define(ConfigKey::new("external.version.header", ConfigType::String).default("").doc("A header whose value (a decimal integer, or a '<major>/<minor>' position such as sluice's __sluice.position) is the document's external version instead of the Kafka offset."))
        .define(ConfigKey::new("data.stream.type", ConfigType::String).default("none").validator(Validator::Custom(|v| one_of_ci(v, &["none", "logs", "metrics", "traces", "synthetics"]))).doc("Write to the data stream <type>-<dataset>-<namespace> (create actions) instead of an index named after the topic."))
        .define(ConfigKey::new("data.stream.dataset", ConfigType::String).default("").doc("The data stream's dataset; ${topic} is the record's topic."))
        .define(ConfigKey::new("data.stream.namespace", ConfigType::String).default("${topic}").doc("The data stream's namespace; ${topic} is the record's topic."))
        .define(ConfigKey::new("data.stream.timestamp.field", ConfigType::List).default("").doc("Value fields copied to @timestamp (the first present); empty: the record's timestamp."))
}

fn one_of_ci(value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(value)) {
        Ok(())
    } else {
        Err(format!("must be one of {}", allowed.join(", ")))
    }
}

fn check_urls(value: &str) -> Result<(), String> {
    let urls = sluice_api::config::split_list(value);
    if urls.is_empty() {
        return Err("needs at least one URL".into());
    }
    for u in urls {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(format!("'{u}' is not an http:// or https:// URL"));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullValues {
    Ignore,
    Delete,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    Ignore,
    Warn,
    Fail,
}

/// How the server is told who is calling.
#[derive(Clone)]
pub enum Auth {
    None,
    Basic { user: String, password: String },
    ApiKey(String),
}

impl std::fmt::Debug for Auth {
    /// Secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { user, .. } => write!(f, "Basic({user}, [hidden])"),
            Auth::ApiKey(_) => f.write_str("ApiKey([hidden])"),
        }
    }
}

/// A data stream target: `<type>-<dataset>-<namespace>`.
#[derive(Debug, Clone)]
pub struct DataStream {
    pub kind: String,
    pub dataset: String,
    pub namespace: String,
    pub timestamp_fields: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct EsConfig {
    pub urls: Vec<String>,
    pub auth: Auth,
    pub ca_file: Option<String>,
    pub key_ignore: bool,
    pub topic_key_ignore: Vec<String>,
    pub upsert: bool,
    pub null_values: NullValues,
    pub malformed: Malformed,
    pub drop_invalid: bool,
    pub batch_size: usize,
    pub bulk_bytes: usize,
    pub linger: Duration,
    pub max_in_flight: usize,
    pub max_buffered: usize,
    pub flush_timeout: Duration,
    pub max_retries: u32,
    pub retry_backoff: Duration,
    pub compression: bool,
    pub idle_timeout: Option<Duration>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub version_header: Option<String>,
    pub data_stream: Option<DataStream>,
}

impl EsConfig {
    /// Validates against [`config_def`], which is the one source of defaults:
    /// a key it defaults always has a value here, so the getters' fallbacks
    /// (`unwrap_or_default`) are never used for those.
    pub fn parse(raw: &TaskConfig) -> Result<Self, ConfigErrors> {
        let c = config_def().validate(raw)?;
        let (null_values, malformed) = behaviors(&c);
        Ok(Self {
            urls: c
                .list("connection.url")
                .unwrap_or_default()
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            auth: auth(&c)?,
            ca_file: c
                .string("elastic.https.ssl.ca.location")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            key_ignore: c.boolean("key.ignore").unwrap_or_default(),
            topic_key_ignore: c.list("topic.key.ignore").unwrap_or_default().to_vec(),
            upsert: lower(&c, "write.method") == "upsert",
            null_values,
            malformed,
            drop_invalid: c.boolean("drop.invalid.message").unwrap_or_default(),
            batch_size: count(&c, "batch.size"),
            bulk_bytes: count(&c, "bulk.size.bytes"),
            linger: millis(&c, "linger.ms"),
            max_in_flight: count(&c, "max.in.flight.requests"),
            max_buffered: count(&c, "max.buffered.records"),
            flush_timeout: millis(&c, "flush.timeout.ms"),
            max_retries: c
                .long("max.retries")
                .unwrap_or_default()
                .clamp(0, u32::MAX.into()) as u32,
            retry_backoff: millis(&c, "retry.backoff.ms"),
            compression: c.boolean("connection.compression").unwrap_or_default(),
            // -1: a connection is never closed for being idle.
            idle_timeout: c
                .long("max.connection.idle.time.ms")
                .filter(|v| *v >= 0)
                .map(|v| Duration::from_millis(v as u64)),
            connect_timeout: timeout(&c, "connection.timeout.ms"),
            read_timeout: timeout(&c, "read.timeout.ms"),
            version_header: c
                .string("external.version.header")
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
            data_stream: data_stream(&c)?,
        })
    }

    /// Whether records of `topic` are indexed under topic+partition+offset.
    pub fn ignores_key(&self, topic: &str) -> bool {
        self.key_ignore || self.topic_key_ignore.iter().any(|t| t == topic)
    }
}

/// A key's value, lower-cased (the enumerations are case-insensitive).
fn lower(c: &ValidatedConfig, key: &str) -> String {
    c.string(key).unwrap_or_default().to_ascii_lowercase()
}

/// A duration in milliseconds; a negative value counts as zero.
fn millis(c: &ValidatedConfig, key: &str) -> Duration {
    Duration::from_millis(c.long(key).unwrap_or_default().max(0) as u64)
}

/// How long "for ever" is: far enough to never end, near enough that adding
/// it to a clock reading cannot overflow.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// A timeout key, where 0 means no timeout, as in the Apache HTTP client
/// under Confluent's sink.
fn timeout(c: &ValidatedConfig, key: &str) -> Duration {
    match millis(c, key) {
        Duration::ZERO => FOREVER,
        d => d,
    }
}

/// A count of at least one (the validators already say so).
fn count(c: &ValidatedConfig, key: &str) -> usize {
    c.long(key).unwrap_or_default().max(1) as usize
}

/// Basic authentication or an API key, never both.
fn auth(c: &ValidatedConfig) -> Result<Auth, ConfigErrors> {
    match (
        c.string("connection.username").filter(|u| !u.is_empty()),
        c.password("connection.password"),
        c.password("connection.api.key"),
    ) {
        (Some(_), _, Some(_)) => Err(ConfigErrors::single(
            "connection.api.key",
            "cannot be set with connection.username",
        )),
        (Some(user), Some(p), None) => Ok(Auth::Basic {
            user: user.to_owned(),
            password: p.expose().to_owned(),
        }),
        (Some(_), None, None) => Err(ConfigErrors::single(
            "connection.password",
            "is required with connection.username",
        )),
        (None, _, Some(k)) => Ok(Auth::ApiKey(k.expose().to_owned())),
        (None, _, None) => Ok(Auth::None),
    }
}

/// `behavior.on.null.values` and `behavior.on.malformed.documents`.
fn behaviors(c: &ValidatedConfig) -> (NullValues, Malformed) {
    let null_values = match lower(c, "behavior.on.null.values").as_str() {
        "ignore" => NullValues::Ignore,
        "delete" => NullValues::Delete,
        _ => NullValues::Fail,
    };
    let malformed = match lower(c, "behavior.on.malformed.documents").as_str() {
        "ignore" => Malformed::Ignore,
        "warn" => Malformed::Warn,
        _ => Malformed::Fail,
    };
    (null_values, malformed)
}

/// The data stream named by `data.stream.*`, if `data.stream.type` is set.
fn data_stream(c: &ValidatedConfig) -> Result<Option<DataStream>, ConfigErrors> {
    let kind = lower(c, "data.stream.type");
    if kind == "none" {
        return Ok(None);
    }
    let dataset = c
        .string("data.stream.dataset")
        .unwrap_or_default()
        .to_owned();
    if dataset.is_empty() {
        return Err(ConfigErrors::single(
            "data.stream.dataset",
            "is required when data.stream.type is set",
        ));
    }
    Ok(Some(DataStream {
        kind,
        dataset,
        namespace: c
            .string("data.stream.namespace")
            .unwrap_or_default()
            .to_owned(),
        timestamp_fields: c
            .list("data.stream.timestamp.field")
            .unwrap_or_default()
            .to_vec(),
    }))
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
    fn the_seed_config_parses_with_confluent_defaults() {
        let c = EsConfig::parse(&raw(&[
            ("connection.url", "https://elasticsearch:9200"),
            ("connection.username", "elastic"),
            ("connection.password", "secret"),
            ("type.name", "_doc"),
            ("key.ignore", "false"),
            ("schema.ignore", "true"),
            ("behavior.on.null.values", "delete"),
        ]))
        .unwrap();
        assert_eq!(c.urls, vec!["https://elasticsearch:9200"]);
        assert_eq!(c.null_values, NullValues::Delete);
        assert_eq!(c.malformed, Malformed::Fail);
        assert_eq!((c.batch_size, c.bulk_bytes), (2000, 5 * 1024 * 1024));
        assert_eq!((c.max_in_flight, c.max_buffered), (5, 20000));
        assert_eq!(c.linger, Duration::from_millis(1));
        assert!(!c.upsert && !c.key_ignore && c.version_header.is_none());
        // Every other default comes from the ConfigDef too.
        assert_eq!(
            (c.max_retries, c.retry_backoff),
            (5, Duration::from_millis(100))
        );
        assert_eq!(
            (c.connect_timeout, c.read_timeout, c.flush_timeout),
            (
                Duration::from_millis(1000),
                Duration::from_millis(3000),
                Duration::from_millis(180_000)
            )
        );
        assert_eq!(c.idle_timeout, Some(Duration::from_millis(60_000)));
        assert!(!c.compression && !c.drop_invalid && c.data_stream.is_none());
        assert!(!format!("{:?}", c.auth).contains("secret"));
    }

    #[test]
    fn a_zero_timeout_waits_for_ever_as_confluents_client_does() {
        let c = EsConfig::parse(&raw(&[
            ("connection.url", "http://a:9200"),
            ("read.timeout.ms", "0"),
            ("connection.timeout.ms", "0"),
        ]))
        .unwrap();
        assert_eq!((c.read_timeout, c.connect_timeout), (FOREVER, FOREVER));
    }

    #[test]
    fn bad_values_name_their_keys() {
        let e = EsConfig::parse(&raw(&[
            ("connection.url", "elasticsearch:9200"),
            ("write.method", "merge"),
            ("batch.size", "0"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("'connection.url'"), "{e}");
        assert!(e.contains("'write.method'"), "{e}");
        assert!(e.contains("'batch.size'"), "{e}");
        let e = EsConfig::parse(&raw(&[
            ("connection.url", "http://a:9200"),
            ("data.stream.type", "logs"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("'data.stream.dataset'"), "{e}");
        let e = EsConfig::parse(&raw(&[
            ("connection.url", "http://a:9200"),
            ("connection.username", "elastic"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("'connection.password'"), "{e}");
    }
}
