//! The Elasticsearch sink against the stack's Elasticsearch-API server
//! (noida-db): documents read back with `_refresh`, `_count` and `_mget` and
//! compared record by record; external versions across a kill -9 and across
//! partitions; rejected documents to the DLQ with the server's reason; item
//! level 429s (injected by a small proxy, which a real server cannot be made
//! to send on demand) retried; the server down for 30 s under load; wrong
//! credentials.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value as Json};
use support::*;

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn es_json(method: reqwest::Method, url: &str, body: Option<Json>) -> Json {
    let mut r = http().request(method, url);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().unwrap_or_else(|e| panic!("{url}: {e}"));
    resp.json().unwrap_or(Json::Null)
}

/// Refreshes `index` and counts its documents (0 when it does not exist).
fn count(base: &str, index: &str) -> u64 {
    es_json(
        reqwest::Method::POST,
        &format!("{base}/{index}/_refresh"),
        None,
    );
    es_json(
        reqwest::Method::GET,
        &format!("{base}/{index}/_count"),
        None,
    )["count"]
        .as_u64()
        .unwrap_or(0)
}

/// The documents of `ids` in `index`: id → (version, source); absent ids left out.
fn mget(base: &str, index: &str, ids: &[String]) -> BTreeMap<String, (i64, Json)> {
    let docs: Vec<Json> = ids
        .iter()
        .map(|id| json!({"_index": index, "_id": id}))
        .collect();
    let got = es_json(
        reqwest::Method::POST,
        &format!("{base}/_mget"),
        Some(json!({ "docs": docs })),
    );
    got["docs"]
        .as_array()
        .unwrap_or_else(|| panic!("_mget answered {got}"))
        .iter()
        .filter(|d| d["found"] == true)
        .map(|d| {
            (
                d["_id"].as_str().unwrap().to_owned(),
                (d["_version"].as_i64().unwrap(), d["_source"].clone()),
            )
        })
        .collect()
}

fn wait_count(base: &str, index: &str, n: u64, within: Duration) {
    let last = std::cell::Cell::new(0);
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(&format!("{n} documents in {index}"), within, || {
            last.set(count(base, index));
            last.get() == n
        })
    }));
    assert!(
        polled.is_ok(),
        "{index} holds {} documents, not {n}",
        last.get()
    );
}

fn sink(name: &str, topic: &str, url: &str, extra: Json) -> Json {
    let mut config = json!({
        "connector.class": "io.confluent.connect.elasticsearch.ElasticsearchSinkConnector",
        "topics": topic,
        "connection.url": url,
        "key.ignore": "false",
        "schema.ignore": "true",
        "tasks.max": "2"
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    json!({"name": name, "config": config})
}

fn start(scratch: &Scratch, connector: &Json) -> WorkerProcess {
    let worker = scratch.write_json("worker.json", &worker_config(scratch));
    let c = scratch.write_json("es.json", connector);
    WorkerProcess::start(scratch, &worker, &[c])
}

/// The connector's task states over REST.
fn task_states(w: &WorkerProcess, name: &str) -> Vec<String> {
    let s = w.get(&format!("/connectors/{name}/status"));
    s["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A test's topic (created with its partitions), its connector's name and
/// the worker's scratch directory: what almost every test starts with.
struct Case {
    scratch: Scratch,
    topic: String,
    name: String,
}

impl Case {
    fn new(tag: &str, partitions: i32) -> Self {
        let scratch = Scratch::new(&format!("es-{tag}"));
        let topic = unique(tag);
        create_topic(&scratch, &topic, partitions);
        Self {
            name: unique(&format!("es-{tag}")),
            scratch,
            topic,
        }
    }

    /// A worker running the sink of this topic into `url`, `extra` added to
    /// its config.
    fn start(&self, url: &str, extra: Json) -> WorkerProcess {
        start(&self.scratch, &sink(&self.name, &self.topic, url, extra))
    }

    /// Waits until the connector committed `n` offsets of the topic.
    fn settled(&self, n: i64) {
        settled(&self.name, &self.topic, n, Duration::from_secs(60));
    }

    /// `sluice_es_items_total` of the connector's task 0 for `outcome`.
    fn items(&self, w: &WorkerProcess, outcome: &str) -> u64 {
        w.metric(&format!(
            "sluice_es_items_total{{connector=\"{}\",task=\"0\",outcome=\"{outcome}\"}}",
            self.name
        ))
    }
}

/// Waits until connector `name` committed offsets of `topic` that add up to
/// `n`: every record before them indexed, a version conflict or dealt with
/// by the error policy.
fn settled(name: &str, topic: &str, n: i64, within: Duration) {
    let group = format!("connect-{name}");
    wait_for(&format!("{n} records of {topic} settled"), within, || {
        committed(&group, topic).values().sum::<i64>() == n
    });
}

/// `errors.tolerance=all` into the dead-letter queue `dlq`, with Connect's
/// context headers; `extra` keys added.
fn dead_letters(dlq: &str, extra: Json) -> Json {
    with_keys(
        json!({
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": dlq,
            "errors.deadletterqueue.topic.replication.factor": 1,
            "errors.deadletterqueue.context.headers.enable": true
        }),
        extra,
    )
}

/// Creates `index` with a strict mapping: one field `n`, a long.
fn strict_index(index: &str) {
    let created = es_json(
        reqwest::Method::PUT,
        &format!("{}/{index}", es()),
        Some(json!({"mappings": {"dynamic": "strict", "properties": {"n": {"type": "long"}}}})),
    );
    assert_eq!(created["acknowledged"], true, "{created}");
}

/// The seed's connector as written (alias class, InsertField, tombstones
/// delete, tasks.max 2): N records over two partitions, updates and deletes
/// among them, become exactly the documents they say, each versioned by its
/// offset; a kill -9 and replay changes neither counts nor versions.
#[test]
fn the_seed_config_indexes_updates_and_deletes_and_survives_a_replay() {
    let case = Case::new("User-Events", 2);
    let (topic, name) = (&case.topic, &case.name);
    let index = topic.to_lowercase();
    // 300 keys per partition, written twice (the second write wins), then
    // every tenth key deleted.
    let mut expected: BTreeMap<String, Json> = BTreeMap::new();
    for p in 0..2 {
        let mut out: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        for round in 0..2 {
            for i in 0..300 {
                let key = format!("u{p}-{i}");
                let v = json!({"user": key, "round": round, "n": i});
                expected.insert(key.clone(), v.clone());
                out.push((key, Some(v.to_string().into_bytes())));
            }
        }
        for i in (0..300).step_by(10) {
            let key = format!("u{p}-{i}");
            expected.remove(&key);
            out.push((key, None));
        }
        produce_optional(topic, p, &out);
    }
    let mut w = case.start(
        es(),
        json!({
            "connection.username": "elastic",
            "connection.password": "secret",
            "type.name": "_doc",
            "behavior.on.null.values": "delete",
            "transforms": "addTimestamp",
            "transforms.addTimestamp.type": "org.apache.kafka.connect.transforms.InsertField$Value",
            "transforms.addTimestamp.timestamp.field": "ingestion_time"
        }),
    );
    wait_count(es(), &index, expected.len() as u64, Duration::from_secs(60));
    let ids: Vec<String> = (0..2)
        .flat_map(|p| (0..300).map(move |i| format!("u{p}-{i}")))
        .collect();
    let check = |phase: &str| {
        let got = mget(es(), &index, &ids);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{phase}: the ids indexed"
        );
        for (id, (version, source)) in &got {
            let mut source = source.clone();
            assert!(
                source["ingestion_time"].is_i64() || source["ingestion_time"].is_string(),
                "{phase}: InsertField's timestamp in {source}"
            );
            source.as_object_mut().unwrap().remove("ingestion_time");
            assert_eq!(&source, &expected[id], "{phase}: the source of {id}");
            // The second write of key i is at offset 300 + i of its partition.
            let i: i64 = id.rsplit('-').next().unwrap().parse().unwrap();
            assert_eq!(
                *version,
                300 + i,
                "{phase}: {id} is versioned by its offset"
            );
        }
        got
    };
    let before = check("first run");
    // Offsets are committed once every record is settled.
    settled(name, topic, 2 * 630, Duration::from_secs(30));
    assert!(task_states(&w, name).iter().all(|s| s == "RUNNING"));
    // kill -9, then replay everything from the start: nothing changes.
    w.kill9();
    let reset = sink(
        name,
        topic,
        es(),
        json!({
            "behavior.on.null.values": "delete",
            "transforms": "addTimestamp",
            "transforms.addTimestamp.type": "org.apache.kafka.connect.transforms.InsertField$Value",
            "transforms.addTimestamp.timestamp.field": "ingestion_time"
        }),
    );
    let mut replay = reset.clone();
    replay["name"] = json!(unique("es-replay"));
    let scratch2 = Scratch::new("es-seed-replay");
    let w2 = start(&scratch2, &replay);
    settled(
        replay["name"].as_str().unwrap(),
        topic,
        2 * 630,
        Duration::from_secs(60),
    );
    assert_eq!(count(es(), &index), expected.len() as u64);
    let after = check("after the replay");
    for (id, (v, _)) in &before {
        assert_eq!(after[id].0, *v, "the version of {id} is unchanged");
    }
    drop(w2);
}

/// Produces keyed records, a `None` value being a tombstone, into one partition.
fn produce_optional(topic: &str, partition: i32, records: &[(String, Option<Vec<u8>>)]) {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .create()
        .unwrap();
    for (key, value) in records {
        let mut rec = BaseRecord::<str, [u8]>::to(topic)
            .partition(partition)
            .key(key.as_str());
        if let Some(v) = value {
            rec = rec.payload(v.as_slice());
        }
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    p.poll(Duration::from_millis(50));
                    rec = r;
                }
            }
        }
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// CDC: the version is the source position from `__sluice.lsn.change`, so an
/// older change of a key arriving later on another partition loses to the
/// newer one already indexed, and a delete applies by the same order.
#[test]
fn header_versions_keep_the_newest_change_across_partitions() {
    let case = Case::new("cdc", 2);
    let topic = &case.topic;
    let _w = case.start(
        es(),
        json!({
            "external.version.header": "__sluice.lsn.change",
            "behavior.on.null.values": "delete",
            "tasks.max": "1"
        }),
    );
    let change = |p: i32, key: &str, value: Option<Json>, lsn: &str| {
        let v = value.map(|v| v.to_string().into_bytes());
        produce_with_header(topic, p, key, v.as_deref(), "__sluice.lsn.change", lsn);
    };
    let settled = |n: i64| case.settled(n);
    // The newest change of k1 lands first, on partition 0.
    change(
        0,
        "k1",
        Some(json!({"id": "k1", "state": "newest"})),
        "3000",
    );
    settled(1);
    // An older change of k1, on partition 1, arrives after it.
    change(1, "k1", Some(json!({"id": "k1", "state": "older"})), "2000");
    change(1, "k2", Some(json!({"id": "k2", "state": "only"})), "2500");
    settled(3);
    let ids = ["k1".to_owned(), "k2".to_owned()];
    let got = mget(es(), topic, &ids);
    assert_eq!(got["k1"], (3000, json!({"id": "k1", "state": "newest"})));
    assert_eq!(got["k2"], (2500, json!({"id": "k2", "state": "only"})));
    // A delete older than the indexed row is a conflict, a newer one deletes.
    change(1, "k1", None, "2999");
    settled(4);
    assert!(mget(es(), topic, &ids).contains_key("k1"));
    change(1, "k1", None, "3001");
    settled(5);
    let got = mget(es(), topic, &ids);
    assert!(!got.contains_key("k1"), "{got:?}");
    assert_eq!(count(es(), topic), 1);
}

fn produce_with_header(
    topic: &str,
    partition: i32,
    key: &str,
    value: Option<&[u8]>,
    header: &str,
    header_value: &str,
) {
    use rdkafka::config::ClientConfig;
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .create()
        .unwrap();
    let mut rec = BaseRecord::<str, [u8]>::to(topic)
        .partition(partition)
        .key(key)
        .headers(OwnedHeaders::new().insert(Header {
            key: header,
            value: Some(header_value),
        }));
    if let Some(v) = value {
        rec = rec.payload(v);
    }
    p.send(rec).map_err(|(e, _)| e).unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
}

/// write.method=upsert merges partial documents (doc_as_upsert); with
/// topic.key.ignore the ids are topic+partition+offset; bodies are gzipped.
#[test]
fn upsert_merges_and_ignored_keys_id_by_coordinates() {
    let case = Case::new("merged", 1);
    let (merged, plain, name) = (&case.topic, unique("plain"), &case.name);
    create_topic(&case.scratch, &plain, 1);
    let _w = start(
        &case.scratch,
        &sink(
            name,
            &format!("{merged},{plain}"),
            es(),
            json!({
                "write.method": "upsert",
                "topic.key.ignore": plain,
                "connection.compression": "true",
                // Upserts carry no version: one request at a time keeps them in order.
                "max.in.flight.requests": "1",
                "tasks.max": "1"
            }),
        ),
    );
    produce_keyed(
        merged,
        0,
        Some("u1"),
        &[
            br#"{"name":"ada"}"#.to_vec(),
            br#"{"city":"paris"}"#.to_vec(),
            br#"{"name":"ada l."}"#.to_vec(),
        ],
    );
    let values: Vec<Vec<u8>> = (0..50)
        .map(|i| json!({"n": i}).to_string().into_bytes())
        .collect();
    produce_keyed(&plain, 0, Some("same-key"), &values);
    case.settled(3);
    settled(name, &plain, 50, Duration::from_secs(60));
    let got = mget(es(), merged, &["u1".to_owned()]);
    assert_eq!(got["u1"].1, json!({"name": "ada l.", "city": "paris"}));
    assert_eq!(count(es(), &plain), 50);
    let ids: Vec<String> = (0..50).map(|i| format!("{plain}+0+{i}")).collect();
    let got = mget(es(), &plain, &ids);
    assert_eq!(got.len(), 50);
    for i in 0..50 {
        assert_eq!(got[&ids[i]].1, json!({"n": i}));
    }
}

/// Documents the mapping rejects go to the DLQ with Connect's headers and the
/// server's reason; the rest are indexed and every offset is committed.
#[test]
fn rejected_documents_go_to_the_dlq_with_the_servers_reason() {
    let case = Case::new("strict", 1);
    let topic = &case.topic;
    let dlq = format!("{topic}.dlq");
    strict_index(topic);
    let mut values = Vec::new();
    let mut bad = BTreeMap::new();
    for i in 0..100i64 {
        let v = match i % 10 {
            3 => {
                bad.insert(i, "document_parsing_exception");
                json!({"n": format!("not-a-number-{i}")})
            }
            7 => {
                bad.insert(i, "strict_dynamic_mapping_exception");
                json!({"n": i, "extra": true})
            }
            _ => json!({"n": i}),
        };
        values.push(v.to_string().into_bytes());
    }
    let keys: Vec<(String, Option<Vec<u8>>)> = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("d{i}"), Some(v)))
        .collect();
    produce_optional(topic, 0, &keys);
    let w = case.start(es(), dead_letters(&dlq, json!({"tasks.max": "1"})));
    case.settled(100);
    assert_eq!(count(es(), topic), 100 - bad.len() as u64);
    let dead = read_topic(&dlq);
    let got: BTreeMap<i64, String> = dead
        .iter()
        .map(|d| {
            assert_eq!(&d.headers["__connect.errors.topic"], topic);
            assert_eq!(d.headers["__connect.errors.partition"], "0");
            assert_eq!(d.headers["__connect.errors.stage"], "TASK_PUT");
            let offset: i64 = d.headers["__connect.errors.offset"].parse().unwrap();
            assert_eq!(d.key.as_deref(), Some(format!("d{offset}").as_str()));
            (
                offset,
                d.headers["__connect.errors.exception.message"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        bad.keys().collect::<Vec<_>>()
    );
    for (offset, kind) in &bad {
        assert!(
            got[offset].contains(kind),
            "offset {offset}: {}",
            got[offset]
        );
    }
    // /metrics counts the items by outcome: the 80 indexed, the 20 refused.
    let items = |outcome: &str| case.items(&w, outcome);
    assert_eq!(items("indexed"), 100 - bad.len() as u64);
    assert_eq!(items("malformed") + items("failed"), bad.len() as u64);
    assert_eq!(items("conflict"), 0);
}

/// A proxy in front of the server that answers some `_bulk` actions with an
/// item-level 429 instead of forwarding them (a real server sends those only
/// under pressure), delays every request so several are in flight at once,
/// and measures how many requests and actions are outstanding at most.
struct RejectingProxy {
    url: String,
    injected: Arc<AtomicUsize>,
    max_requests: Arc<AtomicUsize>,
    max_actions: Arc<AtomicUsize>,
}

impl RejectingProxy {
    /// Rejects every third action of the first `reject_requests` bulk requests.
    fn start(upstream: &str, reject_requests: usize) -> Self {
        let shared = Arc::new(ProxyState {
            upstream: upstream.to_owned(),
            client: http(),
            reject_requests,
            bulk_seen: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            actions: AtomicUsize::new(0),
            injected: Arc::default(),
            max_requests: Arc::default(),
            max_actions: Arc::default(),
        });
        let state = shared.clone();
        let url = serve(
            None,
            Arc::new(move |r: Request| {
                if r.path.ends_with("/_bulk") {
                    Some((200, state.bulk(&r.body)))
                } else {
                    forward_request(&state.client, &state.upstream, r)
                }
            }),
        );
        Self {
            url,
            injected: shared.injected.clone(),
            max_requests: shared.max_requests.clone(),
            max_actions: shared.max_actions.clone(),
        }
    }
}

struct ProxyState {
    upstream: String,
    client: reqwest::blocking::Client,
    reject_requests: usize,
    bulk_seen: AtomicUsize,
    requests: AtomicUsize,
    actions: AtomicUsize,
    injected: Arc<AtomicUsize>,
    max_requests: Arc<AtomicUsize>,
    max_actions: Arc<AtomicUsize>,
}

impl ProxyState {
    fn bulk(&self, body: &[u8]) -> Vec<u8> {
        let client = &self.client;
        // Split the body into actions: a metadata line, and a source line
        // unless it is a delete.
        let lines: Vec<&[u8]> = body
            .split(|c| *c == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let mut actions: Vec<(Json, Vec<u8>)> = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let meta: Json = serde_json::from_slice(lines[i]).unwrap();
            let mut raw = lines[i].to_vec();
            raw.push(b'\n');
            i += 1;
            if meta.get("delete").is_none() {
                raw.extend_from_slice(lines[i]);
                raw.push(b'\n');
                i += 1;
            }
            actions.push((meta, raw));
        }
        let requests = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let outstanding = self.actions.fetch_add(actions.len(), Ordering::SeqCst) + actions.len();
        self.max_requests.fetch_max(requests, Ordering::SeqCst);
        self.max_actions.fetch_max(outstanding, Ordering::SeqCst);
        let reject = self.bulk_seen.fetch_add(1, Ordering::SeqCst) < self.reject_requests;
        let rejected: Vec<bool> = (0..actions.len()).map(|n| reject && n % 3 == 1).collect();
        let forward: Vec<u8> = actions
            .iter()
            .zip(&rejected)
            .filter(|(_, r)| !**r)
            .flat_map(|((_, raw), _)| raw.clone())
            .collect();
        let mut answered = if forward.is_empty() {
            Vec::new()
        } else {
            let r: Json = client
                .post(format!("{}/_bulk", self.upstream))
                .header("content-type", "application/x-ndjson")
                .body(forward)
                .send()
                .unwrap()
                .json()
                .unwrap();
            r["items"].as_array().unwrap().clone()
        }
        .into_iter();
        let items: Vec<Json> = actions
            .iter()
            .zip(&rejected)
            .map(|((meta, _), r)| {
                if *r {
                    self.injected.fetch_add(1, Ordering::SeqCst);
                    let (op, m) = meta.as_object().unwrap().iter().next().unwrap();
                    json!({ op: {"_index": m["_index"], "_id": m["_id"], "status": 429,
                        "error": {"type": "es_rejected_execution_exception", "reason": "injected by the test proxy"}}})
                } else {
                    answered.next().unwrap()
                }
            })
            .collect();
        // Slow enough that requests overlap.
        std::thread::sleep(Duration::from_millis(150));
        self.requests.fetch_sub(1, Ordering::SeqCst);
        self.actions.fetch_sub(actions.len(), Ordering::SeqCst);
        json!({"errors": true, "took": 1, "items": items})
            .to_string()
            .into_bytes()
    }
}

/// Item-level 429s are sent again on their own, with backoff, and nothing is
/// lost; requests overlap up to max.in.flight.requests and the actions
/// outstanding stay within max.buffered.records.
#[test]
fn item_level_429s_are_retried_and_requests_overlap_within_the_buffer() {
    let case = Case::new("busy", 1);
    let (topic, name) = (&case.topic, &case.name);
    produce_numbered(topic, 0, 0..2000);
    let proxy = RejectingProxy::start(es(), 10);
    let w = case.start(
        &proxy.url,
        json!({
            "tasks.max": "1",
            "batch.size": "50",
            "max.in.flight.requests": "3",
            "max.buffered.records": "200"
        }),
    );
    assert_numbered(es(), topic, 2000);
    settled(name, topic, 2000, Duration::from_secs(30));
    let injected = proxy.injected.load(Ordering::SeqCst);
    assert!(injected >= 20, "only {injected} 429s injected");
    let (requests, actions) = (
        proxy.max_requests.load(Ordering::SeqCst),
        proxy.max_actions.load(Ordering::SeqCst),
    );
    assert!(
        (2..=3).contains(&requests),
        "{requests} requests in flight at most"
    );
    assert!(actions <= 200, "{actions} actions outstanding at most");
    assert!(task_states(&w, name).iter().all(|s| s == "RUNNING"));
}

/// A server slower than `read.timeout.ms` (10 ms here: the stack's server
/// takes longer than that for a `_bulk` of a few hundred documents): the
/// sink sends fewer requests at once and gives each more time instead of
/// piling retries onto a server still working on the first ones, and it
/// catches up. Requests the server finished after the sink gave up on them
/// come back as version conflicts, so every document is indexed once, at its
/// offset's version.
#[test]
fn a_server_slower_than_the_read_timeout_gets_fewer_requests_and_more_time() {
    const N: usize = 20_000;
    let case = Case::new("slow", 1);
    produce_numbered(&case.topic, 0, 0..N);
    let w = case.start(es(), json!({"tasks.max": "1", "read.timeout.ms": "10"}));
    case.settled(N as i64);
    assert_numbered(es(), &case.topic, N);
    let ids: Vec<String> = (0..N).map(|i| format!("k{i}")).collect();
    let got = mget(es(), &case.topic, &ids);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(got[id].0, i as i64, "{id} is versioned by its offset");
    }
    assert!(
        w.log_text()
            .contains("slower than the request timeout, sending less at once"),
        "the sink never shed load"
    );
    let (indexed, conflicts) = (case.items(&w, "indexed"), case.items(&w, "conflict"));
    assert!(
        indexed <= N as u64 && indexed + conflicts >= N as u64,
        "{indexed} indexed, {conflicts} conflicts"
    );
    assert!(task_states(&w, &case.name).iter().all(|s| s == "RUNNING"));
}

/// A `put` that fails is retried by reading its batch again from Kafka; a
/// record of that batch the error policy already dead-lettered (here, one
/// that is not JSON) must not be dead-lettered again. The server is away (a
/// proxy hangs up on every request) and the sink may buffer one record, so
/// every `put` fails and the batch is read again several times; once the
/// server is back, the DLQ holds the bad record once and every other record
/// is indexed once.
#[test]
fn a_bad_record_in_a_batch_read_again_after_failed_puts_is_dead_lettered_once() {
    let case = Case::new("reread", 1);
    let (topic, name) = (&case.topic, &case.name);
    let dlq = format!("{topic}.dlq");
    let proxy = Proxy::start(es(), None, false);
    proxy.set_down(true);
    // One produce call, so one fetch and one batch: the bad record among
    // good ones.
    let bad = b"{not json".to_vec();
    let records: Vec<(String, Option<Vec<u8>>)> = (0..20)
        .map(|i| {
            let v = match i {
                10 => bad.clone(),
                _ => json!({"n": i}).to_string().into_bytes(),
            };
            (format!("k{i}"), Some(v))
        })
        .collect();
    produce_optional(topic, 0, &records);
    let w = case.start(
        &proxy.url,
        dead_letters(
            &dlq,
            json!({
                "tasks.max": "1",
                "batch.size": "5",
                "max.buffered.records": "1",
                "max.retries": "0"
            }),
        ),
    );
    let put_retries = || w.metric(&format!("sluice_task_retries_total{{connector=\"{name}\""));
    wait_for("puts failing and retried", Duration::from_secs(60), || {
        put_retries() >= 3
    });
    assert!(task_states(&w, name).iter().all(|s| s == "RUNNING"));
    proxy.set_down(false);
    case.settled(20);
    let ids: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let got = mget(es(), topic, &ids);
    assert_eq!(count(es(), topic), 19);
    for (i, id) in ids.iter().enumerate() {
        if i == 10 {
            assert!(!got.contains_key(id), "the bad record was indexed");
        } else {
            assert_eq!(got[id], (i as i64, json!({"n": i})), "{id}");
        }
    }
    let dead = read_topic(&dlq);
    let offsets: Vec<&str> = dead
        .iter()
        .map(|d| d.headers["__connect.errors.offset"].as_str())
        .collect();
    assert_eq!(offsets, ["10"], "dead letters by offset");
    assert_eq!(dead[0].value.as_deref(), Some(&bad[..]));
    assert_eq!(dead[0].headers["__connect.errors.stage"], "VALUE_CONVERTER");
}

/// With default settings, the server stopped for 30 s while records keep
/// arriving: the task stays RUNNING and every record ends up indexed.
#[test]
fn a_30s_server_outage_under_load_is_ridden_out() {
    let vars = start_services("es");
    let (url, stack) = (
        vars["SLUICE_ES_URL"].clone(),
        std::path::PathBuf::from(&vars["SLUICE_STACK_DIR"]).join("es"),
    );
    let case = Case::new("outage", 2);
    let (topic, name) = (&case.topic, &case.name);
    let w = case.start(&url, json!({}));
    const TOTAL: usize = 20_000;
    let producer = {
        let topic = topic.clone();
        std::thread::spawn(move || {
            // About 40 s of load: 40 rounds of 500 records, a second apart.
            for round in 0..40 {
                produce_numbered(
                    &topic,
                    round % 2,
                    round as usize * 500..(round as usize + 1) * 500,
                );
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    wait_for("some documents indexed", Duration::from_secs(60), || {
        count(&url, topic) > 0
    });
    // SIGTERM, not SIGKILL: noida-db loses writes it acknowledged when killed
    // with -9 (it keeps no translog), which would be the server's loss, not
    // the sink's.
    let pid = std::fs::read_to_string(stack.join("pid")).unwrap();
    let pid = pid.trim().to_owned();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    wait_for("the server to exit", Duration::from_secs(30), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    let down = std::time::Instant::now();
    while down.elapsed() < Duration::from_secs(30) {
        let states = task_states(&w, name);
        assert!(
            states.iter().all(|s| s == "RUNNING"),
            "tasks during the outage: {states:?}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    // The server runs on until the stack's watchdog stops it with the rest.
    let mut server = std::process::Command::new("bash")
        .arg(stack.join("run"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::spawn(move || server.wait());
    producer.join().unwrap();
    wait_count(&url, topic, TOTAL as u64, Duration::from_secs(120));
    case.settled(TOTAL as i64);
    assert!(task_states(&w, name).iter().all(|s| s == "RUNNING"));
}

/// data.stream.type: create actions into logs-<dataset>-<topic>, each
/// document with an @timestamp (the record's timestamp).
#[test]
fn data_streams_get_create_actions_with_timestamps() {
    let case = Case::new("ds", 1);
    produce_numbered(&case.topic, 0, 0..100);
    let _w = case.start(
        es(),
        json!({"data.stream.type": "logs", "data.stream.dataset": "sluice", "tasks.max": "1"}),
    );
    let stream = format!("logs-sluice-{}", case.topic);
    wait_count(es(), &stream, 100, Duration::from_secs(60));
    let ids: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let got = mget(es(), &stream, &ids);
    assert_eq!(got.len(), 100);
    for (i, id) in ids.iter().enumerate() {
        let src = &got[id].1;
        assert_eq!(src["n"], json!(i));
        assert!(
            src["@timestamp"].as_i64().unwrap() > 1_600_000_000_000,
            "{src}"
        );
    }
}

/// Wrong credentials fail the task with an error naming the keys to fix,
/// and nothing is committed. (noida-db does not check credentials, so a
/// listener that answers 401 to everything stands in for a secured cluster.)
#[test]
fn wrong_credentials_fail_the_task_naming_the_keys() {
    let url = serve(
        None,
        Arc::new(|_| {
            let answer = r#"{"error":{"type":"security_exception","reason":"unable to authenticate user [elastic]"},"status":401}"#;
            Some((401, answer.as_bytes().to_vec()))
        }),
    );
    let case = Case::new("secured", 1);
    produce_keyed(&case.topic, 0, Some("k"), &[br#"{"n":1}"#.to_vec()]);
    let mut w = case.start(
        &url,
        json!({"connection.username": "elastic", "connection.password": "wrong", "tasks.max": "1"}),
    );
    let (_, trace) = w.wait_failed_trace(Duration::from_secs(60));
    assert!(
        trace.contains("HTTP 401") && trace.contains("connection.username"),
        "{trace}"
    );
    assert!(
        !trace.contains("wrong"),
        "the password is in the trace: {trace}"
    );
    assert!(committed(&format!("connect-{}", case.name), &case.topic)
        .values()
        .all(|o| *o <= 0));
}

/// The real CDC source into the sink, versioned by the position sluice puts
/// in `__sluice.position` (commit LSN and index; the snapshot's rows below
/// every streamed change): after a snapshot, updates and deletes the index
/// equals the table, and a replay of the whole topic (another connector,
/// from the start) changes no document and no version. (`__sluice.lsn.change`
/// would not do: snapshot rows do not carry it.)
#[test]
fn cdc_changes_index_as_the_table_by_lsn_and_a_replay_rewinds_nothing() {
    let id = unique("es_cdc").to_lowercase().replace(['-', '.'], "_");
    psql(&format!(
        "CREATE SCHEMA {id}; CREATE TABLE {id}.users (id int PRIMARY KEY, name text NOT NULL, n int NOT NULL);
         INSERT INTO {id}.users SELECT g, 'user ' || g, 0 FROM generate_series(1, 40) g;"
    ));
    let prefix = format!("cdc_{id}");
    let topic = format!("{prefix}.{id}.users");
    let scratch = Scratch::new("es-cdc-pg");
    let source = scratch.write_json(
        "pg.json",
        &json!({"name": unique("pg"), "config": {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": "127.0.0.1",
            "database.port": postgres_port(),
            "database.user": "postgres",
            "database.password": "",
            "database.dbname": "postgres",
            "topic.prefix": prefix,
            "slot.name": format!("slot_{id}"),
            "publication.name": format!("pub_{id}"),
            "publication.autocreate.mode": "filtered",
            "table.include.list": format!("{id}\\..*"),
            "key.converter": "json",
            "key.converter.schemas.enable": false,
            "value.converter": "json",
            "value.converter.schemas.enable": false,
            "poll.interval.ms": 100,
            "topic.creation.default.partitions": 1,
            "transforms": "unwrap",
            "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
            "transforms.unwrap.drop.tombstones": "false"
        }}),
    );
    let sink_for = |name: &str| {
        sink(
            name,
            &topic,
            es(),
            json!({
                "external.version.header": "__sluice.position",
                "behavior.on.null.values": "delete",
                "key.converter": "json",
                "key.converter.schemas.enable": false,
                "tasks.max": "1"
            }),
        )
    };
    let name = unique("es-cdc-pg");
    let sink_file = scratch.write_json("es.json", &sink_for(&name));
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut w = WorkerProcess::start(&scratch, &worker, &[source.clone(), sink_file]);
    // The snapshot first, then changes while streaming.
    wait_for("the snapshot in Kafka", Duration::from_secs(90), || {
        topic_count(&topic) >= 40
    });
    for round in 1..=3 {
        psql(&format!(
            "UPDATE {id}.users SET n = {round}, name = 'user ' || id || ' v{round}' WHERE id % 2 = 0;"
        ));
    }
    psql(&format!(
        "DELETE FROM {id}.users WHERE id % 5 = 0; INSERT INTO {id}.users VALUES (41, 'late', 9);"
    ));
    let rows: BTreeMap<String, Json> =
        psql(&format!("SELECT id, name, n FROM {id}.users ORDER BY id"))
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                let id: i64 = f[0].parse().unwrap();
                (
                    json!({ "id": id }).to_string(),
                    json!({"id": id, "name": f[1], "n": f[2].parse::<i64>().unwrap()}),
                )
            })
            .collect();
    // Every change is in Kafka: 40 snapshot rows, 60 updates, 8 deletes (as
    // tombstones: the unwrap drops delete events), 1 insert.
    const CHANGES: i64 = 40 + 60 + 8 + 1;
    wait_for("every change in Kafka", Duration::from_secs(90), || {
        topic_count(&topic) >= CHANGES
    });
    let end = topic_count(&topic);
    settled(&name, &topic, end, Duration::from_secs(60));
    let ids: Vec<String> = (1..=41).map(|i| json!({ "id": i }).to_string()).collect();
    let got = mget(es(), &topic, &ids);
    let sources: BTreeMap<String, Json> = got
        .iter()
        .map(|(k, (_, s))| (k.clone(), s.clone()))
        .collect();
    assert_eq!(sources, rows);
    assert_eq!(count(es(), &topic), rows.len() as u64);
    w.kill9();
    // Replay everything with a connector of its own: conflicts only.
    let replay = unique("es-cdc-replay");
    let scratch2 = Scratch::new("es-cdc-pg-replay");
    let replay_file = scratch2.write_json("es.json", &sink_for(&replay));
    let worker2 = scratch2.write_json("worker.json", &worker_config(&scratch2));
    let _w2 = WorkerProcess::start(&scratch2, &worker2, &[replay_file]);
    settled(&replay, &topic, end, Duration::from_secs(60));
    let again = mget(es(), &topic, &ids);
    assert_eq!(again, got, "a replay changed documents or versions");
    psql(&format!(
        "SELECT pg_drop_replication_slot('slot_{id}') FROM pg_replication_slots WHERE slot_name = 'slot_{id}' AND NOT active"
    ));
}

/// One HTTP/1.1 request read off a connection: method, path, headers
/// (lower-cased names) and body; `None` once the client hangs up.
struct Request {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// What a test server answers to a request: a status and a JSON body, or
/// `None` to hang up without answering.
type Handler = Arc<dyn Fn(Request) -> Option<(u16, Vec<u8>)> + Send + Sync>;

/// An HTTP/1.1 server on a free port (over TLS when given a configuration),
/// each request on a connection answered in turn by `handler`; its URL.
fn serve(tls: Option<Arc<rustls::ServerConfig>>, handler: Handler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The test CA's certificate names localhost.
    let url = match tls {
        Some(_) => format!("https://localhost:{port}"),
        None => format!("http://127.0.0.1:{port}"),
    };
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (handler, tls) = (handler.clone(), tls.clone());
            std::thread::spawn(move || match tls {
                Some(config) => {
                    let Ok(server) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    answer(
                        BufReader::new(rustls::StreamOwned::new(server, conn)),
                        &handler,
                    );
                }
                None => answer(BufReader::new(conn), &handler),
            });
        }
    });
    url
}

fn answer<S: Read + Write>(mut reader: BufReader<S>, handler: &Handler) {
    while let Some(r) = read_request(&mut reader) {
        let Some((status, body)) = handler(r) else {
            return;
        };
        let w = reader.get_mut();
        if write!(
            w,
            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Unknown"),
            body.len()
        )
        .and_then(|()| w.write_all(&body))
        .and_then(|()| w.flush())
        .is_err()
        {
            return;
        }
    }
}

/// Sends `r` on to `upstream` as it came; its answer, or `None` (hang up)
/// when the upstream gave none.
fn forward_request(
    client: &reqwest::blocking::Client,
    upstream: &str,
    r: Request,
) -> Option<(u16, Vec<u8>)> {
    let mut request = client
        .request(
            reqwest::Method::from_bytes(r.method.as_bytes()).ok()?,
            format!("{upstream}{}", r.path),
        )
        .body(r.body);
    if let Some(t) = r.headers.get("content-type") {
        request = request.header("content-type", t);
    }
    let answer = request.send().ok()?;
    let status = answer.status().as_u16();
    Some((status, answer.bytes().ok()?.to_vec()))
}

/// What a [`Proxy`] saw: each request's path and `Authorization` header.
type Seen = Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

/// A proxy in front of the server that forwards every request as it is,
/// over plain HTTP or TLS, and records what it saw; it may hold the answer
/// to the first `_bulk` request until a second one arrived, and may be
/// taken down (it hangs up on every request, as a server that crashed).
struct Proxy {
    url: String,
    seen: Seen,
    down: Arc<AtomicBool>,
}

impl Proxy {
    fn start(
        upstream: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
        hold_first_bulk: bool,
    ) -> Self {
        let (seen, down) = (Seen::default(), Arc::new(AtomicBool::new(false)));
        let (upstream, client) = (upstream.to_owned(), http());
        let (recorded, is_down) = (seen.clone(), down.clone());
        let url = serve(
            tls,
            Arc::new(move |r: Request| {
                let first_bulk = {
                    let mut s = recorded.lock().unwrap();
                    s.push((r.path.clone(), r.headers.get("authorization").cloned()));
                    r.path.ends_with("/_bulk")
                        && s.iter().filter(|(p, _)| p.ends_with("/_bulk")).count() == 1
                };
                if is_down.load(Ordering::SeqCst) {
                    return None;
                }
                let answer = forward_request(&client, &upstream, r)?;
                if hold_first_bulk && first_bulk {
                    // The server has indexed (or rejected) it; the sink learns
                    // so only once a later batch reached the proxy too.
                    wait_for("a second _bulk request", Duration::from_secs(60), || {
                        bulks(&recorded) >= 2
                    });
                }
                Some(answer)
            }),
        );
        Self { url, seen, down }
    }

    fn bulks(&self) -> usize {
        bulks(&self.seen)
    }

    fn authorizations(&self) -> Vec<Option<String>> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// Down: every request is hung up on; up: forwarded again.
    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

fn bulks(seen: &Seen) -> usize {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.ends_with("/_bulk"))
        .count()
}

/// A CA and a certificate it signed for localhost and 127.0.0.1, made with
/// the openssl CLI into `scratch`; returns the CA's path and the server's
/// TLS configuration.
fn tls_server(scratch: &Scratch) -> (String, Arc<rustls::ServerConfig>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = scratch.path("tls");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for args in [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=sluice-test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    ] {
        let out = std::process::Command::new("openssl")
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.crt"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    (dir.join("ca.crt").display().to_string(), Arc::new(config))
}

/// Values `{"n": i}` keyed `k<i>`, into one partition.
fn produce_numbered(topic: &str, partition: i32, range: std::ops::Range<usize>) {
    let records: Vec<(String, Option<Vec<u8>>)> = range
        .map(|i| {
            (
                format!("k{i}"),
                Some(json!({"n": i}).to_string().into_bytes()),
            )
        })
        .collect();
    produce_optional(topic, partition, &records);
}

/// Waits for `n` documents in `index`, then checks they are `produce_numbered`'s.
fn assert_numbered(base: &str, index: &str, n: usize) {
    wait_count(base, index, n as u64, Duration::from_secs(90));
    let ids: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let got = mget(base, index, &ids);
    assert_eq!(got.len(), n);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(got[id].1, json!({"n": i}), "{id}");
    }
}

/// HTTPS through a TLS-terminating proxy whose certificate a generated CA
/// signed: with `elastic.https.ssl.ca.location` naming that CA every record
/// is indexed and every request carries the API key as `Authorization:
/// ApiKey …`; without the CA file the task fails saying which key to set.
#[test]
fn tls_with_a_ca_file_and_an_api_key() {
    let case = Case::new("tls", 1);
    let (topic, name) = (&case.topic, &case.name);
    let (ca, tls) = tls_server(&case.scratch);
    let proxy = Proxy::start(es(), Some(tls), false);
    produce_numbered(topic, 0, 0..300);
    let api_key = "c2x1aWNlLXRlc3Q6bm90LWEtcmVhbC1zZWNyZXQ=";
    let w = case.start(
        &proxy.url,
        json!({
            "tasks.max": "1",
            "batch.size": "100",
            "elastic.security.protocol": "SSL",
            "elastic.https.ssl.ca.location": ca,
            "connection.api.key": api_key
        }),
    );
    assert_numbered(es(), topic, 300);
    assert!(proxy.bulks() >= 3, "{} _bulk requests", proxy.bulks());
    let auth = proxy.authorizations();
    assert!(
        auth.iter()
            .all(|a| a.as_deref() == Some(&format!("ApiKey {api_key}"))),
        "{auth:?}"
    );
    let config = w.get(&format!("/connectors/{name}/config"));
    assert_ne!(
        config["connection.api.key"], api_key,
        "the API key is in a REST response"
    );
    assert!(!w.log_text().contains(api_key), "the API key is in the log");
    drop(w);

    let scratch = Scratch::new("es-tls-untrusted");
    let name = unique("es-tls-untrusted");
    let mut w = start(
        &scratch,
        &sink(
            &name,
            topic,
            &proxy.url,
            json!({"tasks.max": "1", "connection.api.key": api_key}),
        ),
    );
    let (_, trace) = w.wait_failed_trace(Duration::from_secs(60));
    assert!(
        trace.contains("certificate") && trace.contains("elastic.https.ssl.ca.location"),
        "{trace}"
    );
}

/// Several `connection.url`s: requests go round-robin over the live ones,
/// and a dead one in the list (nothing listening) costs nothing.
#[test]
fn several_urls_round_robin_and_fail_over_past_a_dead_one() {
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (a, b) = (
        Proxy::start(es(), None, false),
        Proxy::start(es(), None, false),
    );
    let case = Case::new("urls", 1);
    produce_numbered(&case.topic, 0, 0..2000);
    let w = case.start(
        &format!("{dead},{},{}", a.url, b.url),
        json!({"tasks.max": "1", "batch.size": "100"}),
    );
    assert_numbered(es(), &case.topic, 2000);
    let (na, nb) = (a.bulks(), b.bulks());
    assert!(na + nb >= 20, "{na} + {nb} _bulk requests");
    // Round-robin over three with the first dead: its turns fall to the URL
    // after it, so `a` takes about two thirds and `b` one third.
    assert!(na >= nb && nb * 4 >= na, "not round-robin: {na} and {nb}");
    settled(&case.name, &case.topic, 2000, Duration::from_secs(30));
    assert!(task_states(&w, &case.name).iter().all(|s| s == "RUNNING"));
}

/// A document the server rejects, whose rejection the sink learns only after
/// it put a later batch (the proxy holds the answer until then), still goes
/// to the DLQ with the key and value it was read as: the runtime keeps a
/// record's original bytes until its fate is known, not until the next batch.
#[test]
fn a_document_rejected_after_later_batches_is_dead_lettered_with_its_bytes() {
    let case = Case::new("late", 1);
    let topic = &case.topic;
    let dlq = format!("{topic}.dlq");
    strict_index(topic);
    let bad = br#"{"n":"not-a-number"}"#.to_vec();
    produce_optional(topic, 0, &[("bad".to_owned(), Some(bad.clone()))]);
    let proxy = Proxy::start(es(), None, true);
    let _w = case.start(&proxy.url, dead_letters(&dlq, json!({"tasks.max": "1"})));
    wait_for("the first _bulk request", Duration::from_secs(60), || {
        proxy.bulks() >= 1
    });
    // A later batch, put while the first one's answer is held.
    let good: Vec<(String, Option<Vec<u8>>)> = (1..=10)
        .map(|i| {
            (
                format!("g{i}"),
                Some(json!({"n": i}).to_string().into_bytes()),
            )
        })
        .collect();
    produce_optional(topic, 0, &good);
    case.settled(11);
    assert!(proxy.bulks() >= 2);
    assert_eq!(count(es(), topic), 10);
    let dead = read_topic(&dlq);
    assert_eq!(dead.len(), 1, "{} dead letters", dead.len());
    let d = &dead[0];
    assert_eq!(d.headers["__connect.errors.offset"], "0");
    assert!(
        d.headers["__connect.errors.exception.message"].contains("document_parsing_exception"),
        "{:?}",
        d.headers
    );
    assert_eq!(d.key.as_deref(), Some("bad"));
    assert_eq!(
        d.value.as_deref(),
        Some(&bad[..]),
        "the DLQ record lost its value"
    );
}
