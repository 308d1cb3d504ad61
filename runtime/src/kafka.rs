//! Kafka clients as the worker builds them: the settings the seed scenario asks
//! for by default, the user's pass-through settings on top, and a reachability
//! check that fails fast with a clear message instead of hanging.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, FromClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::producer::{FutureProducer, ProducerContext, ThreadedProducer};

use crate::config::WorkerConfig;
use crate::error::WorkerError;

/// Producer defaults: durable, ordered, idempotent, batched and compressed
/// (seed "Producer Configuration"). librdkafka's names for Java's keys.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("max.in.flight.requests.per.connection", "5"),
    ("retries", "2147483647"),
    ("linger.ms", "5"),
    // librdkafka's own default, not the seed's 65536 (a Java-client figure):
    // with 64 KB batches to one partition, the five requests in flight fill
    // at once and librdkafka's broker thread spins on poll() until one is
    // answered. A CDC source into a one-partition topic spent 10.4 CPU-s per
    // 100k events with 65536 and 2.2 with this (bench/RESULTS.md).
    ("batch.size", "1000000"),
    ("queue.buffering.max.kbytes", "65536"),
    ("compression.type", "lz4"),
];

/// Consumer defaults: manual commits after the sink has flushed, cooperative-sticky
/// assignment (seed "Consumer Configuration").
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("auto.offset.reset", "earliest"),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("partition.assignment.strategy", "cooperative-sticky"),
    ("max.poll.interval.ms", "300000"),
    ("session.timeout.ms", "45000"),
    ("heartbeat.interval.ms", "15000"),
    ("fetch.min.bytes", "1"),
    ("fetch.wait.max.ms", "500"),
    ("max.partition.fetch.bytes", "1048576"),
    // A full fetch queue postpones a partition's next fetch by this long;
    // librdkafka's 1000 ms starved a sink that drains the queue faster than
    // that (every sink at 300k+ records/s stalled for a second at a time:
    // bench/RESULTS.md, 2026-12-02). Rechecking every 10 ms costs nothing.
    ("fetch.queue.backoff.ms", "10"),
    // librdkafka prefetches up to 64 MB (and sizes its fetches to match),
    // which with its per-message bookkeeping was 90 MB of an S3 sink's
    // 280 MB peak; 4 MB (26 ms at 600k records/s of 260 bytes) moved as
    // many records per second (bench/RESULTS.md, 2026-12-02). `fetch.max.bytes`
    // follows it unless set.
    ("queued.max.messages.kbytes", "4096"),
    // A sink subscribed to a topic that does not exist yet notices it at the next
    // metadata refresh: every 10 s rather than librdkafka's 5 minutes.
    ("topic.metadata.refresh.interval.ms", "10000"),
];

/// Keys users carry over from Java clients that mean something to the runtime
/// (`max.poll.records` sizes a sink's batches) but not to librdkafka.
const JAVA_ONLY_KEYS: &[&str] = &["max.poll.records"];

/// How long start-up waits for the cluster before giving up.
pub const REACH_TIMEOUT: Duration = Duration::from_secs(10);

fn client_config(
    worker: &WorkerConfig,
    kind: &str,
    defaults: &[(&str, &str)],
    overrides: &[(&str, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (k, v) in defaults {
        config.set(*k, *v);
    }
    for (k, v) in worker.client_settings(kind) {
        // Java-client keys that librdkafka would reject; the runtime honours them itself.
        if !JAVA_ONLY_KEYS.contains(&k.as_str()) {
            config.set(k, v);
        }
    }
    for (k, v) in overrides {
        config.set(*k, v.clone());
    }
    config
}

pub fn producer<C: ProducerContext + 'static>(
    worker: &WorkerConfig,
    context: C,
    overrides: &[(&str, String)],
) -> Result<ThreadedProducer<C>, WorkerError> {
    let config = client_config(worker, "producer", PRODUCER_DEFAULTS, overrides);
    ThreadedProducer::from_config_and_context(&config, context)
        .map_err(|e| WorkerError::kafka("create a producer", e))
}

/// A producer's settings, for a producer with a context of its own making.
pub fn producer_config(worker: &WorkerConfig, overrides: &[(&str, String)]) -> ClientConfig {
    client_config(worker, "producer", PRODUCER_DEFAULTS, overrides)
}

/// A producer whose sends are awaited one by one, for rare writes such as the
/// dead-letter queue.
pub fn future_producer(
    worker: &WorkerConfig,
    overrides: &[(&str, String)],
) -> Result<FutureProducer, WorkerError> {
    let config = client_config(worker, "producer", PRODUCER_DEFAULTS, overrides);
    FutureProducer::from_config(&config).map_err(|e| WorkerError::kafka("create a producer", e))
}

pub fn consumer<C: ConsumerContext + 'static>(
    worker: &WorkerConfig,
    context: C,
    overrides: &[(&str, String)],
) -> Result<BaseConsumer<C>, WorkerError> {
    let config = client_config(worker, "consumer", CONSUMER_DEFAULTS, overrides);
    BaseConsumer::from_config_and_context(&config, context)
        .map_err(|e| WorkerError::kafka("create a consumer", e))
}

pub fn admin(worker: &WorkerConfig) -> Result<AdminClient<DefaultClientContext>, WorkerError> {
    // Looking a topic up must never create it behind the user's back.
    let config = client_config(
        worker,
        "admin",
        &[("allow.auto.create.topics", "false")],
        &[],
    );
    AdminClient::from_config(&config).map_err(|e| WorkerError::kafka("create an admin client", e))
}

/// A consumer that assigns partitions itself and uses `group` only to store its
/// progress (it never joins the group).
pub fn plain_consumer(worker: &WorkerConfig, group: &str) -> Result<BaseConsumer, WorkerError> {
    let config = client_config(
        worker,
        "consumer",
        CONSUMER_DEFAULTS,
        &[("group.id", group.to_owned())],
    );
    BaseConsumer::from_config(&config).map_err(|e| WorkerError::kafka("create a consumer", e))
}

/// A consumer outside any group, for reading partitions by assignment.
pub fn reader(worker: &WorkerConfig) -> Result<Reader, WorkerError> {
    let overrides = [
        ("group.id", "sluice-reader".to_owned()),
        ("enable.partition.eof", "true".to_owned()),
    ];
    let config = client_config(worker, "consumer", CONSUMER_DEFAULTS, &overrides);
    BaseConsumer::from_config_and_context(&config, ReaderContext)
        .map_err(|e| WorkerError::kafka("create a reader", e))
}

pub type Reader = BaseConsumer<ReaderContext>;

/// A reader asks for end-of-partition events to know when it is done; they are
/// not errors, so they are not logged as such.
pub struct ReaderContext;

impl rdkafka::ClientContext for ReaderContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let eof = matches!(error, rdkafka::error::KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF);
        if eof {
            return;
        }
        tracing::error!("librdkafka: {error}: {reason}");
    }
}

impl ConsumerContext for ReaderContext {}

/// Kafka API keys the worker cares about, by number.
pub mod api_keys {
    pub const CREATE_TOPICS: i16 = 19;
    pub const INIT_PRODUCER_ID: i16 = 22;
    pub const ADD_PARTITIONS_TO_TXN: i16 = 24;
    pub const END_TXN: i16 = 26;
    pub const DESCRIBE_CONFIGS: i16 = 32;
    pub const CREATE_PARTITIONS: i16 = 37;
}

/// The APIs a broker says it implements: `(api key, min version, max version)`.
#[derive(Debug, Clone, Default)]
pub struct BrokerApis(pub Vec<(i16, i16, i16)>);

impl BrokerApis {
    pub fn supports(&self, key: i16) -> bool {
        self.0.iter().any(|(k, _, _)| *k == key)
    }

    /// Transactions need all of InitProducerId, AddPartitionsToTxn and EndTxn.
    pub fn supports_transactions(&self) -> bool {
        [
            api_keys::INIT_PRODUCER_ID,
            api_keys::ADD_PARTITIONS_TO_TXN,
            api_keys::END_TXN,
        ]
        .iter()
        .all(|k| self.supports(*k))
    }

    /// One line for people: what this broker lacks that a connector might want.
    pub fn missing_summary(&self) -> Option<String> {
        let mut missing = Vec::new();
        if !self.supports_transactions() {
            missing.push("transactions (InitProducerId/AddPartitionsToTxn/EndTxn)");
        }
        if !self.supports(api_keys::CREATE_PARTITIONS) {
            missing.push("CreatePartitions (partition counts cannot be raised)");
        }
        if !self.supports(api_keys::DESCRIBE_CONFIGS) {
            missing.push("DescribeConfigs (topic settings cannot be read)");
        }
        (!missing.is_empty()).then(|| missing.join(", "))
    }
}

/// Asks one plaintext broker which APIs it implements (Kafka's ApiVersions, v0),
/// so the worker can say what a broker lacks instead of waiting on a request it
/// will never answer. librdkafka does this internally but does not expose it.
pub fn probe_api_versions(bootstrap: &str, timeout: Duration) -> std::io::Result<BrokerApis> {
    let first = bootstrap.split(',').next().unwrap_or_default().trim();
    let first = first.rsplit_once("://").map_or(first, |(_, addr)| addr);
    let addr = first
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("cannot resolve '{first}'")))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let client_id = b"sluice";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // version 0
    body.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut request = (body.len() as i32).to_be_bytes().to_vec();
    request.extend_from_slice(&body);
    stream.write_all(&request)?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = usize::try_from(i32::from_be_bytes(len)).map_err(std::io::Error::other)?;
    if len > 1 << 20 {
        return Err(std::io::Error::other("ApiVersions response too large"));
    }
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf)?;
    parse_api_versions(&buf).ok_or_else(|| std::io::Error::other("malformed ApiVersions response"))
}

fn parse_api_versions(buf: &[u8]) -> Option<BrokerApis> {
    let i16_at = |at: usize| Some(i16::from_be_bytes(buf.get(at..at + 2)?.try_into().ok()?));
    let error = i16_at(4)?;
    if error != 0 {
        return None;
    }
    let count = i32::from_be_bytes(buf.get(6..10)?.try_into().ok()?);
    let mut apis = Vec::new();
    for i in 0..usize::try_from(count).ok()? {
        let at = 10 + i * 6;
        apis.push((i16_at(at)?, i16_at(at + 2)?, i16_at(at + 4)?));
    }
    Some(BrokerApis(apis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_api_versions_v0() {
        let mut buf = 1i32.to_be_bytes().to_vec();
        buf.extend_from_slice(&0i16.to_be_bytes());
        buf.extend_from_slice(&2i32.to_be_bytes());
        for (k, min, max) in [(22i16, 0i16, 4i16), (37, 0, 3)] {
            buf.extend_from_slice(&k.to_be_bytes());
            buf.extend_from_slice(&min.to_be_bytes());
            buf.extend_from_slice(&max.to_be_bytes());
        }
        let apis = parse_api_versions(&buf).unwrap();
        assert!(apis.supports(api_keys::INIT_PRODUCER_ID));
        assert!(!apis.supports_transactions());
        assert!(apis.missing_summary().unwrap().contains("transactions"));
        assert!(parse_api_versions(&buf[..7]).is_none());
    }
}
