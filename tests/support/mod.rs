//! Shared helpers for the end-to-end tests: the service stack (started once per
//! test binary by `dev/up`, or reused when `SLUICE_KAFKA_BOOTSTRAP` names one),
//! worker processes, and reading topics back.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// Starts the named services with `dev/up`, torn down when this test binary
/// exits, and returns the variables it printed.
pub fn start_services(services: &str) -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("dev/up"))
        .args([
            "--services",
            services,
            "--owner-pid",
            &std::process::id().to_string(),
        ])
        // A stack of its own, even when the test command shares one.
        .env_remove("SLUICE_STACK_DIR")
        .stderr(Stdio::inherit())
        .output()
        .expect("dev/up runs");
    assert!(out.status.success(), "dev/up --services {services} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_owned(),
                v.trim_matches('\'').trim_matches('"').to_owned(),
            )
        })
        .collect()
}

/// The stack [`connect`] started for this binary, when the test command's
/// has no Connect worker: its broker and PostgreSQL then replace the shared
/// ones, so Debezium and sluice read the same database into the same broker.
static WITH_CONNECT: OnceLock<BTreeMap<String, String>> = OnceLock::new();

/// A variable of the shared stack: from the stack [`connect`] started, else
/// from the environment (the test command started the stack), else from a
/// stack of `service` this binary starts.
fn stack_var(name: &str, service: &str) -> String {
    if let Some(v) = WITH_CONNECT.get().and_then(|vars| vars.get(name)) {
        return v.clone();
    }
    if let Ok(v) = std::env::var(name) {
        return v;
    }
    // One stack per service and binary: the PostgreSQL's URL and its CA must
    // come from the same stack.
    static STARTED: std::sync::Mutex<BTreeMap<String, BTreeMap<String, String>>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    started
        .entry(service.to_owned())
        .or_insert_with(|| start_services(service))
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("dev/up printed no {name}"))
}

/// The Kafka bootstrap address of the shared stack.
pub fn kafka() -> &'static str {
    static BOOTSTRAP: OnceLock<String> = OnceLock::new();
    BOOTSTRAP.get_or_init(|| stack_var("SLUICE_KAFKA_BOOTSTRAP", "kafka"))
}

/// The reference Kafka Connect worker (`dev/up --services kafka,connect`) and
/// the broker it uses.
pub struct ReferenceConnect {
    /// Its REST API's base URL.
    pub url: String,
    /// Its broker: a worker compared with it must use this one, so that both
    /// see the same topics, groups and offsets.
    pub bootstrap: String,
}

/// The reference Connect worker of the shared stack when the test command
/// started one (`SLUICE_CONNECT_URL`, whose broker is the stack's
/// `SLUICE_KAFKA_BOOTSTRAP`), else a broker, PostgreSQL and worker of this
/// binary's own, which [`kafka`] and [`postgres`] name from then on (call this
/// before them): the URL, the broker and the database are always taken
/// together, so Debezium and sluice read one database into one broker.
pub fn connect() -> &'static ReferenceConnect {
    static CONNECT: OnceLock<ReferenceConnect> = OnceLock::new();
    CONNECT.get_or_init(|| {
        let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let (url, bootstrap) = match (env("SLUICE_CONNECT_URL"), env("SLUICE_KAFKA_BOOTSTRAP")) {
            (Some(url), Some(bootstrap)) => (url, bootstrap),
            (Some(_), None) => panic!(
                "SLUICE_CONNECT_URL is set but SLUICE_KAFKA_BOOTSTRAP is not: export the broker \
                 the Connect worker uses too (dev/up prints both)"
            ),
            (None, _) => {
                let vars = WITH_CONNECT.get_or_init(|| start_services("kafka,postgres,connect"));
                let var = |name: &str| {
                    vars.get(name)
                        .cloned()
                        .unwrap_or_else(|| panic!("dev/up printed no {name}"))
                };
                (var("SLUICE_CONNECT_URL"), var("SLUICE_KAFKA_BOOTSTRAP"))
            }
        };
        ReferenceConnect {
            url: url.trim_end_matches('/').to_owned(),
            bootstrap,
        }
    })
}

/// A name unique to this test run, for topics, connectors and directories.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A scratch directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(&format!("sluice-test-{tag}")));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write_json(&self, name: &str, value: &serde_json::Value) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }
}

/// A worker config for tests: short flush and session intervals so restarts and
/// commits happen within a test's patience.
pub fn worker_config(scratch: &Scratch) -> serde_json::Value {
    serde_json::json!({
        "bootstrap.servers": kafka(),
        "offset.storage.file.filename": scratch.path("offsets.json").display().to_string(),
        "offset.flush.interval.ms": 500,
        "key.converter": "string",
        "value.converter": "json",
        "value.converter.schemas.enable": false,
        "progress.interval.ms": 2000,
        "consumer.session.timeout.ms": 6000,
        "consumer.heartbeat.interval.ms": 1000,
        "task.shutdown.graceful.timeout.ms": 20000,
        "listeners": "http://127.0.0.1:0"
    })
}

pub fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// A running `sluice standalone`, killed when dropped.
pub struct WorkerProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl WorkerProcess {
    pub fn start(scratch: &Scratch, worker: &Path, connectors: &[PathBuf]) -> Self {
        Self::start_logging(scratch, worker, connectors, "info,librdkafka=warn")
    }

    /// As `start`, with `SLUICE_LOG` set to `filter`.
    pub fn start_logging(
        scratch: &Scratch,
        worker: &Path,
        connectors: &[PathBuf],
        filter: &str,
    ) -> Self {
        let mut args = vec![std::ffi::OsStr::new("standalone"), worker.as_os_str()];
        args.extend(connectors.iter().map(|c| c.as_os_str()));
        Self::spawn(scratch, &args, filter)
    }

    /// A `sluice distributed` worker.
    pub fn start_distributed(scratch: &Scratch, worker: &Path) -> Self {
        let args = [std::ffi::OsStr::new("distributed"), worker.as_os_str()];
        Self::spawn(scratch, &args, "info,librdkafka=warn")
    }

    fn spawn(scratch: &Scratch, args: &[&std::ffi::OsStr], filter: &str) -> Self {
        static RUN: AtomicU32 = AtomicU32::new(0);
        let log = scratch.path(&format!(
            "worker-{}.log",
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::File::create(&log).unwrap();
        let child = sluice()
            .args(args)
            .env("SLUICE_LOG", filter)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("sluice starts");
        Self { child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }

    /// Waits for the worker to end by itself (e.g. its only task failed) and
    /// returns its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker still running after {within:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The REST API's base URL, from the worker's log.
    pub fn rest_url(&self) -> String {
        let mut url = None;
        wait_for("the REST API to listen", Duration::from_secs(60), || {
            url = self.logged_url();
            url.is_some()
        });
        url.unwrap_or_default()
    }

    fn logged_url(&self) -> Option<String> {
        self.log_text().lines().find_map(|l| {
            let rest = l.split("REST API listening").nth(1)?;
            let u = rest.split("url=").nth(1)?;
            Some(u.split_whitespace().next()?.to_owned())
        })
    }

    /// The sum of the `/metrics` samples whose series starts with `series`
    /// (a name and the first labels, e.g. `name{connector="c",`), 0 if none.
    pub fn metric(&self, series: &str) -> u64 {
        let text = reqwest::blocking::get(format!("{}/metrics", self.rest_url()))
            .and_then(|r| r.text())
            .unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// `GET {path}` on the worker's REST API, as JSON.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.rest_url());
        reqwest::blocking::get(&url)
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// Waits until a connector or task reports FAILED over REST, then stops the
    /// worker and returns its exit status (a failure, since something failed).
    /// A worker that refuses to start (an invalid config) exits by itself.
    pub fn wait_failed(&mut self, within: Duration) -> std::process::ExitStatus {
        self.wait_failed_trace(within).0
    }

    /// As `wait_failed`, also returning the FAILED status's `trace` (empty when
    /// the worker exited by itself).
    pub fn wait_failed_trace(&mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let mut exited = None;
        let mut trace = String::new();
        wait_for("a FAILED connector or task", within, || {
            if let Some(status) = self.child.try_wait().unwrap() {
                exited = Some(status);
                return true;
            }
            let Some(url) = self.logged_url() else {
                return false;
            };
            let Ok(all) = reqwest::blocking::get(format!("{url}/connectors?expand=status"))
                .and_then(|r| r.json::<serde_json::Value>())
            else {
                return false;
            };
            let failed = all.as_object().into_iter().flatten().find_map(|(_, c)| {
                let s = &c["status"];
                std::iter::once(&s["connector"])
                    .chain(s["tasks"].as_array().into_iter().flatten())
                    .find(|x| x["state"] == "FAILED")
                    .map(|x| x["trace"].as_str().unwrap_or_default().to_owned())
            });
            match failed {
                Some(t) => {
                    trace = t;
                    true
                }
                None => false,
            }
        });
        match exited {
            Some(status) => (status, trace),
            None => (self.terminate(Duration::from_secs(30)), trace),
        }
    }

    /// SIGTERM, then wait for the worker to exit.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.wait_exit(within)
    }

    /// SIGTERM, and fail the test (with the worker's log) unless the worker
    /// exits cleanly within 30 s.
    pub fn stop_cleanly(&mut self) {
        let status = self.terminate(Duration::from_secs(30));
        assert!(
            status.success(),
            "worker exited with {status}: {}",
            self.log_text()
        );
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `condition` until it holds, failing with `what` after `within`.
pub fn wait_for(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One record read back from Kafka.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
}

fn reader() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("group.id", "sluice-tests-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// Total records in a topic (sum of high watermarks), 0 if it does not exist.
pub fn topic_count(topic: &str) -> i64 {
    let c = reader();
    let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return 0;
    };
    let Some(t) = md.topics().first() else {
        return 0;
    };
    t.partitions()
        .iter()
        .map(|p| {
            c.fetch_watermarks(topic, p.id(), Duration::from_secs(5))
                .map_or(0, |(lo, hi)| hi - lo)
        })
        .sum()
}

/// Reads every record of a topic.
pub fn read_topic(topic: &str) -> Vec<Consumed> {
    let c = reader();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0i64;
    let mut ends = BTreeMap::new();
    for p in md.topics()[0].partitions() {
        let (lo, hi) = c
            .fetch_watermarks(topic, p.id(), Duration::from_secs(5))
            .unwrap();
        if hi > lo {
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(lo))
                .unwrap();
            remaining += hi - lo;
            ends.insert(p.id(), hi);
        }
    }
    let mut out = Vec::with_capacity(remaining as usize);
    if remaining == 0 {
        return out;
    }
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ends.is_empty() {
        assert!(
            Instant::now() < deadline,
            "reading {topic} timed out with {} records read",
            out.len()
        );
        let Some(m) = c.poll(Duration::from_millis(500)) else {
            continue;
        };
        // librdkafka reports a dropped connection (AllBrokersDown, a
        // transport error) as a poll error and reconnects by itself: only the
        // deadline above fails the read.
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                eprintln!("reading {topic}: {e}; the client reconnects");
                continue;
            }
        };
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Consumed {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        });
        if ends
            .get(&m.partition())
            .is_some_and(|end| m.offset() + 1 >= *end)
        {
            ends.remove(&m.partition());
        }
    }
    out
}

/// The committed offsets of a consumer group, per partition.
pub fn committed(group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("group.id", group)
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition(topic, p.id());
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Lines of a JSON-lines file, parsed; a torn last line (a crash mid-write) is skipped.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn count_lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|c| **c == b'\n').count())
}

/// Produces plain records (no sluice headers), as another application would.
pub fn produce_foreign(topic: &str, values: &[String]) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .create()
        .unwrap();
    for v in values {
        p.send(BaseRecord::<str, str>::to(topic).payload(v.as_str()))
            .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// One record for [`produce`]: key, value bytes, headers.
pub struct Out<'a> {
    pub key: Option<&'a str>,
    pub value: &'a [u8],
    pub headers: &'a [(&'a str, &'a str)],
}

/// Produces records as another application would, into one partition so their
/// order is known.
pub fn produce(topic: &str, partition: i32, records: &[Out<'_>]) {
    produce_on(kafka(), topic, partition, records);
}

/// [`produce`] to the broker at `bootstrap`.
pub fn produce_on(bootstrap: &str, topic: &str, partition: i32, records: &[Out<'_>]) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for r in records {
        let mut headers = OwnedHeaders::new();
        for (k, v) in r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let mut rec = BaseRecord::<str, [u8]>::to(topic)
            .partition(partition)
            .payload(r.value)
            .headers(headers);
        if let Some(k) = r.key {
            rec = rec.key(k);
        }
        p.send(rec).unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// Produces plain values (no key, no headers) into one partition.
/// A `file-sink` config writing `topic`'s values, one per line, to `out`.
pub fn file_sink(topic: &str, out: &Path) -> serde_json::Value {
    serde_json::json!({
        "connector.class": "file-sink",
        "topics": topic,
        "file": out.display().to_string(),
        "format": "value"
    })
}

/// The JSON values `{"n": from}` … `{"n": to - 1}`.
pub fn numbered_values(from: usize, to: usize) -> Vec<Vec<u8>> {
    (from..to)
        .map(|n| serde_json::json!({"n": n}).to_string().into_bytes())
        .collect()
}

pub fn produce_values(topic: &str, partition: i32, values: &[Vec<u8>]) {
    produce_keyed(topic, partition, None, values);
}

/// Produces values under one key (or none), without headers, into one partition.
pub fn produce_keyed(topic: &str, partition: i32, key: Option<&str>, values: &[Vec<u8>]) {
    let out: Vec<Out<'_>> = values
        .iter()
        .map(|v| Out {
            key,
            value: v,
            headers: &[],
        })
        .collect();
    produce(topic, partition, &out);
}

/// Produces keyed records into one partition, `None` as a tombstone (a null
/// value, which [`produce`] cannot send).
pub fn produce_changes(topic: &str, partition: i32, changes: &[(String, Option<Vec<u8>>)]) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .create()
        .unwrap();
    for (k, v) in changes {
        let mut rec = BaseRecord::<str, [u8]>::to(topic)
            .partition(partition)
            .key(k.as_str());
        if let Some(v) = v {
            rec = rec.payload(v.as_slice());
        }
        p.send(rec).unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// Connect's JSON envelope (`schemas.enable=true`): a schema and a payload.
pub fn enveloped(schema: &serde_json::Value, payload: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"schema": schema, "payload": payload})).unwrap()
}

/// Starts `sluice standalone` with the test worker config and these
/// connector configs (each `{"name": ..., "config": {...}}`).
pub fn start_worker(scratch: &Scratch, connectors: &[serde_json::Value]) -> WorkerProcess {
    let worker = scratch.write_json("worker.json", &worker_config(scratch));
    let files: Vec<_> = connectors
        .iter()
        .enumerate()
        .map(|(i, c)| scratch.write_json(&format!("c{i}.json"), c))
        .collect();
    WorkerProcess::start(scratch, &worker, &files)
}

/// Creates a topic through `sluice topics apply`.
pub fn create_topic(scratch: &Scratch, name: &str, partitions: i32) {
    create_topic_on(scratch, kafka(), name, partitions);
}

/// [`create_topic`] on the broker at `bootstrap`.
pub fn create_topic_on(scratch: &Scratch, bootstrap: &str, name: &str, partitions: i32) {
    let file = scratch.write_json(
        &format!("topics-{name}.json"),
        &serde_json::json!({"topics": [{"name": name, "partitions": partitions, "replication.factor": 1}]}),
    );
    let out = sluice()
        .args(["topics", "apply"])
        .arg(file)
        .args(["--bootstrap-server", bootstrap])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The S3-API store of the shared stack (s3s-fs): endpoint, credentials, and the
/// directory it keeps buckets in (one subdirectory per bucket).
pub struct S3 {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub data_dir: PathBuf,
}

impl S3 {
    /// Creates a bucket the way s3s-fs stores one: a directory.
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.data_dir.join(name)).unwrap();
    }

    /// Every object under `prefix` in `bucket`, by key.
    pub fn objects(&self, bucket: &str, prefix: &str) -> BTreeMap<String, PathBuf> {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else if let Ok(rel) = p.strip_prefix(root) {
                    let key = rel.to_string_lossy().replace('\\', "/");
                    // s3s-fs keeps upload state and metadata in dot-files beside objects.
                    if !key.split('/').any(|part| part.starts_with('.')) {
                        out.insert(key, p);
                    }
                }
            }
        }
        let root = self.data_dir.join(bucket);
        let mut out = BTreeMap::new();
        walk(&root, &root, &mut out);
        out.retain(|k, _| k.starts_with(prefix));
        out
    }
}

pub fn s3() -> &'static S3 {
    static S3_STACK: OnceLock<S3> = OnceLock::new();
    S3_STACK.get_or_init(|| {
        let vars: BTreeMap<String, String> = std::env::vars().collect();
        let vars =
            if vars.contains_key("SLUICE_S3_ENDPOINT") && vars.contains_key("SLUICE_STACK_DIR") {
                vars
            } else {
                start_services("s3")
            };
        S3 {
            endpoint: vars["SLUICE_S3_ENDPOINT"].clone(),
            access_key: vars["SLUICE_S3_ACCESS_KEY"].clone(),
            secret_key: vars["SLUICE_S3_SECRET_KEY"].clone(),
            data_dir: PathBuf::from(&vars["SLUICE_STACK_DIR"]).join("s3/data"),
        }
    })
}

/// Reads Parquet files with pyarrow (a reader that is not ours) into JSON rows.
pub fn read_parquet(path: &Path) -> Vec<serde_json::Value> {
    let script = r#"
import json, sys, pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
print(json.dumps({"schema": [[f.name, str(f.type)] for f in table.schema]}))
for row in table.to_pylist():
    print(json.dumps(row, default=str))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pyarrow failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The moto server of the shared stack (S3 with Object Lock and lifecycle).
pub fn moto() -> &'static str {
    static MOTO: OnceLock<String> = OnceLock::new();
    MOTO.get_or_init(|| stack_var("SLUICE_MOTO_ENDPOINT", "moto"))
}

/// Runs a Python snippet with `s3`, a boto3 client for moto, in scope (boto3
/// comes with moto); returns its stdout.
pub fn boto(snippet: &str) -> String {
    let script = format!(
        "import boto3, json, datetime\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\n{snippet}",
        moto()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "boto3 snippet failed: {}\n{snippet}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Produces `(value, timestamp ms)` records into one partition.
pub fn produce_at(topic: &str, partition: i32, records: &[(Vec<u8>, i64)]) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .create()
        .unwrap();
    for (value, ts) in records {
        p.send(
            BaseRecord::<str, [u8]>::to(topic)
                .partition(partition)
                .payload(value)
                .timestamp(*ts),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// The PostgreSQL of the shared stack (wal_level=logical), as a URL.
pub fn postgres() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| stack_var("SLUICE_PG_URL", "postgres"))
}

/// The CA that signed the shared PostgreSQL's certificate (for 127.0.0.1 and
/// localhost).
pub fn postgres_ca() -> &'static str {
    static CA: OnceLock<String> = OnceLock::new();
    CA.get_or_init(|| stack_var("SLUICE_PG_CA", "postgres"))
}

/// The shared PostgreSQL's port (it listens on 127.0.0.1, user `postgres`).
pub fn postgres_port() -> u16 {
    postgres()
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("SLUICE_PG_URL has a port")
}

/// A Debezium PostgreSQL connector's config against the shared PostgreSQL,
/// capturing the tables of `schema` through its own slot and publication
/// (`pub_<schema>`); tests add or override keys.
pub fn cdc_source(prefix: &str, slot: &str, schema: &str) -> serde_json::Value {
    serde_json::json!({
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "127.0.0.1",
        "database.port": postgres_port(),
        "database.user": "postgres",
        "database.password": "",
        "database.dbname": "postgres",
        "topic.prefix": prefix,
        "slot.name": slot,
        "publication.name": format!("pub_{schema}"),
        "publication.autocreate.mode": "filtered",
        "table.include.list": format!("{schema}\\..*"),
    })
}

/// `base` (a JSON object) with `extra`'s keys added or replaced.
pub fn with_keys(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(b), serde_json::Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// Drops a test's replication slot if no one holds it: a slot left behind
/// would pin WAL for every later test.
pub fn drop_slot(slot: &str) {
    let _ = Command::new("psql")
        .args(["-X", "-q", "-d", postgres(), "-c"])
        .arg(format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}' AND NOT active"
        ))
        .output();
}

/// Runs SQL through psql, failing the test on an error; returns the output
/// (unaligned, tuples only).
pub fn psql(sql: &str) -> String {
    psql_at(postgres(), sql)
}

/// [`psql`] against the PostgreSQL at `url`.
pub fn psql_at(url: &str, sql: &str) -> String {
    try_psql_at(url, sql).unwrap_or_else(|e| panic!("psql failed on {sql}: {e}"))
}

/// Runs SQL through psql at `url`; the error is psql's message (the server is
/// down, the statement failed).
pub fn try_psql_at(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-d",
            url,
            "-c",
            sql,
        ])
        // A server that is down refuses at once; one that hangs must not hold
        // a test's writer for long.
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("psql runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A schema of one test's own in the PostgreSQL at `url` (the shared one
/// unless said otherwise), dropped with everything in it at the end.
pub struct PgSchema {
    pub name: String,
    pub url: String,
}

impl PgSchema {
    pub fn new(tag: &str) -> Self {
        Self::new_at(postgres(), tag)
    }

    pub fn new_at(url: &str, tag: &str) -> Self {
        let name = unique(tag).to_lowercase().replace(['-', '.'], "_");
        psql_at(url, &format!("CREATE SCHEMA {name}"));
        Self {
            name,
            url: url.to_owned(),
        }
    }

    /// The rows of `sql` (`{s}` standing for the schema) as text lines; an
    /// error (a table not created yet) as one line, so a wait polls on and
    /// an assertion shows it.
    pub fn query(&self, sql: &str) -> Vec<String> {
        match try_psql_at(&self.url, &sql.replace("{s}", &self.name)) {
            Ok(out) => out.lines().map(str::to_owned).collect(),
            Err(e) => vec![e],
        }
    }

    /// The rows in `table` of this schema; 0 while it does not exist.
    pub fn count(&self, table: &str) -> i64 {
        count_rows(&self.url, &format!("{}.{table}", self.name)).unwrap_or(0)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = try_psql_at(&self.url, &format!("DROP SCHEMA {} CASCADE", self.name));
    }
}

/// `SELECT count(*)` of `table` in the PostgreSQL at `url`; `None` when the
/// query fails (no such table, the server is down).
pub fn count_rows(url: &str, table: &str) -> Option<i64> {
    try_psql_at(url, &format!("SELECT count(*) FROM {table}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// A PostgreSQL of one test's own (started by `dev/up` as the shared one is:
/// wal_level=logical, user `postgres`, loopback), for tests that stop and
/// start it again: doing that to the shared one would break the other tests.
/// `dev/up`'s watchdog stops it when the test binary exits.
pub struct PrivatePostgres {
    pub url: String,
    pub port: u16,
    /// The service's directory in its stack: data, run script, log.
    dir: PathBuf,
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let vars = start_services("postgres");
        let dir = PathBuf::from(&vars["SLUICE_STACK_DIR"]).join("postgres");
        Self {
            url: vars["SLUICE_PG_URL"].clone(),
            port: vars["SLUICE_PG_PORT"].parse().expect("a port"),
            dir,
        }
    }

    pub fn psql(&self, sql: &str) -> String {
        psql_at(&self.url, sql)
    }

    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        try_psql_at(&self.url, sql)
    }

    /// `pg_ctl stop -m <mode>` (smart, fast, immediate), as the user the
    /// server runs as; returns how long PostgreSQL took to stop.
    pub fn stop(&self, mode: &str) -> Duration {
        let bindir = std::fs::read_to_string(self.dir.join("bindir")).expect("dev/up wrote bindir");
        let pg_ctl = Path::new(bindir.trim()).join("pg_ctl");
        let data = self.dir.join("data");
        let mut cmd = match std::fs::read_to_string(self.dir.join("user")) {
            // dev/up runs PostgreSQL as this user when it runs as root.
            Ok(user) => {
                let user = user.trim();
                let gid = Command::new("id")
                    .args(["-g", user])
                    .output()
                    .expect("id runs");
                let gid = String::from_utf8_lossy(&gid.stdout).trim().to_owned();
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={user}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--init-groups")
                    .arg(&pg_ctl);
                c
            }
            Err(_) => Command::new(&pg_ctl),
        };
        let started = Instant::now();
        let out = cmd
            .arg("stop")
            .arg("-D")
            .arg(&data)
            .args(["-m", mode, "-w", "-t", "300"])
            .output()
            .expect("pg_ctl runs");
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "pg_ctl stop -m {mode} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        took
    }

    /// Starts it again on the same port with the same data (through the run
    /// script `dev/up` wrote, detached as `dev/up` does) and waits until it
    /// accepts connections; returns when it did.
    pub fn start_again(&self) -> Instant {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        // --fork: setsid returns at once, leaving the server to dev/down.
        let forked = Command::new("setsid")
            .arg("--fork")
            .arg(self.dir.join("run"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .expect("setsid runs");
        assert!(forked.success(), "setsid --fork failed");
        let mut ready = None;
        wait_for(
            "PostgreSQL to accept connections",
            Duration::from_secs(120),
            || {
                if self.try_psql("SELECT 1").is_ok() {
                    ready = Some(Instant::now());
                }
                ready.is_some()
            },
        );
        ready.unwrap_or_else(Instant::now)
    }
}

/// The Elasticsearch-API server (noida-db) of the shared stack.
pub fn es() -> &'static str {
    static ES: OnceLock<String> = OnceLock::new();
    ES.get_or_init(|| stack_var("SLUICE_ES_URL", "es"))
}
