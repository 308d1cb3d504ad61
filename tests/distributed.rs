//! Distributed mode against the real broker. First its foundation: the three
//! internal topics and the stores over them, with two stores on one topic
//! standing for two workers.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::json;
use sluice_runtime::config::DistributedConfig;
use sluice_runtime::control::TargetState;
use sluice_runtime::placement::{slot_of, Part};
use sluice_runtime::storage::{
    internal_topics, ConfigBackingStore, KafkaConfigStore, KafkaOffsetStore, KafkaStatusStore,
    OffsetBackingStore, State, StatusBackingStore, StatusRecord, StoredConnector,
};
use sluice_runtime::topics::Topics;
use sluice_runtime::WorkerConfig;
use support::*;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A distributed worker config of a cluster of its own (its own group and
/// internal topics).
fn cluster_config(tag: &str) -> (WorkerConfig, DistributedConfig) {
    let group = unique(tag);
    let raw = BTreeMap::from([
        ("bootstrap.servers".to_owned(), kafka().to_owned()),
        ("group.id".to_owned(), group.clone()),
        (
            "config.storage.topic".to_owned(),
            format!("{group}-configs"),
        ),
        (
            "offset.storage.topic".to_owned(),
            format!("{group}-offsets"),
        ),
        ("status.storage.topic".to_owned(), format!("{group}-status")),
        ("offset.storage.partitions".to_owned(), "3".to_owned()),
        ("status.storage.partitions".to_owned(), "2".to_owned()),
    ]);
    let worker = WorkerConfig::from_raw(raw).unwrap();
    let cluster = DistributedConfig::from_worker(&worker).unwrap();
    (worker, cluster)
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn ensure(worker: &WorkerConfig, cluster: &DistributedConfig) -> Result<(), String> {
    let topics = Topics::connect(worker).unwrap();
    block_on(internal_topics::ensure(&topics, cluster)).map_err(|e| e.to_string())
}

fn connector(config: &[(&str, &str)], target: TargetState) -> StoredConnector {
    StoredConnector {
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        target_state: target,
    }
}

#[test]
fn the_shipped_distributed_worker_config_is_a_valid_cluster_config() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/worker-distributed.json");
    let worker = WorkerConfig::load(&path, std::iter::empty()).unwrap();
    let cluster = DistributedConfig::from_worker(&worker).unwrap();
    assert_eq!(cluster.group_id, "sluice-cluster");
    assert_eq!(cluster.config_topic.partitions, 1);
    assert_eq!(cluster.session_timeout, Duration::from_secs(10));
    assert_eq!(cluster.scheduled_rebalance_max_delay, Duration::ZERO);
    // Without a group, a distributed worker refuses to start, naming the key.
    let standalone =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/standalone.json");
    let worker = WorkerConfig::load(&standalone, std::iter::empty()).unwrap();
    let e = DistributedConfig::from_worker(&worker)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("group.id") && e.contains("config.storage.topic"),
        "{e}"
    );
}

#[test]
fn internal_topics_are_created_compacted_and_a_wrong_one_is_refused() {
    let (worker, cluster) = cluster_config("topics");
    ensure(&worker, &cluster).unwrap();
    let topics = Topics::connect(&worker).unwrap();
    for (t, partitions) in [
        (&cluster.config_topic, 1),
        (&cluster.offset_topic, 3),
        (&cluster.status_topic, 2),
    ] {
        let info = topics.describe(Some(&t.name)).unwrap();
        assert_eq!(info[0].partitions.len(), partitions, "{}", t.name);
        let configs =
            block_on(topics.configs(&t.name)).expect("the broker describes topic configs");
        assert_eq!(
            configs.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
    }
    // Again: the topics are there and right, so nothing happens.
    ensure(&worker, &cluster).unwrap();

    // A config topic of three partitions would let workers see changes in
    // different orders.
    let (worker, mut cluster) = cluster_config("topics-wrong");
    let scratch = Scratch::new("dist-topics");
    create_topic(&scratch, &cluster.config_topic.name, 3);
    let e = ensure(&worker, &cluster).unwrap_err();
    assert!(
        e.contains(&cluster.config_topic.name)
            && e.contains("config.storage.topic")
            && e.contains("has 3 partitions"),
        "{e}"
    );

    // A topic with retention (the default policy) would lose offsets.
    let plain = unique("plain");
    create_topic(&scratch, &plain, 1);
    cluster.config_topic.name = format!("{}-ok", cluster.config_topic.name);
    cluster.offset_topic.name = plain.clone();
    let e = ensure(&worker, &cluster).unwrap_err();
    assert!(
        e.contains(&plain) && e.contains("offset.storage.topic") && e.contains("is not compacted"),
        "{e}"
    );
}

#[test]
fn every_worker_reads_the_same_configs_and_reads_its_own_writes() {
    let (worker, cluster) = cluster_config("configs");
    ensure(&worker, &cluster).unwrap();
    let topic = &cluster.config_topic.name;
    let w1 = KafkaConfigStore::open(&worker, topic, TIMEOUT).unwrap();
    let w2 = KafkaConfigStore::open(&worker, topic, TIMEOUT).unwrap();

    let a = connector(
        &[("connector.class", "datagen"), ("name", "a")],
        TargetState::Running,
    );
    assert!(w1.create("a", a.clone()).unwrap());
    // Read-your-writes on the writer, without asking.
    assert_eq!(w1.all().get("a"), Some(&a));
    // Another worker sees it once it has read to the end.
    w2.read_to_end().unwrap();
    assert_eq!(w2.all().get("a"), Some(&a));

    // A name taken is refused on any worker.
    assert!(!w2
        .create("a", connector(&[("x", "y")], TargetState::Paused))
        .unwrap());
    w1.read_to_end().unwrap();
    assert_eq!(
        w1.all().get("a"),
        Some(&a),
        "a refused create changes nothing"
    );

    // Pause on w2, seen on w1; then a config change keeps it paused.
    let paused = StoredConnector {
        target_state: TargetState::Stopped,
        ..a.clone()
    };
    w2.put("a", Some(paused.clone())).unwrap();
    w1.read_to_end().unwrap();
    assert_eq!(w1.all().get("a"), Some(&paused));

    // A third worker starting now reads the whole history to the same view.
    let w3 = KafkaConfigStore::open(&worker, topic, TIMEOUT).unwrap();
    assert_eq!(w3.all(), w1.all());

    // Delete through w3.
    w3.put("a", None).unwrap();
    w1.read_to_end().unwrap();
    w2.read_to_end().unwrap();
    assert!(w1.all().is_empty() && w2.all().is_empty());

    // Connect's record format: a Connect worker or tool reads these.
    let records: Vec<_> = read_topic(topic)
        .into_iter()
        .map(|r| {
            (
                r.key.unwrap_or_default(),
                r.value
                    .map(|v| serde_json::from_slice::<serde_json::Value>(&v).unwrap()),
            )
        })
        .collect();
    assert!(
        records.contains(&(
            "target-state-a".to_owned(),
            Some(json!({"state": "PAUSED", "state.v2": "STOPPED"}))
        )),
        "{records:?}"
    );
    assert!(
        records.contains(&("connector-a".to_owned(), None)),
        "{records:?}"
    );
}

#[test]
fn of_two_workers_creating_one_name_at_once_exactly_one_wins() {
    let (worker, cluster) = cluster_config("race");
    ensure(&worker, &cluster).unwrap();
    let topic = cluster.config_topic.name.clone();
    let stores: Vec<Arc<KafkaConfigStore>> = (0..2)
        .map(|_| Arc::new(KafkaConfigStore::open(&worker, &topic, TIMEOUT).unwrap()))
        .collect();
    for round in 0..5 {
        let name = format!("race-{round}");
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (s, barrier, name) = (s.clone(), barrier.clone(), name.clone());
                std::thread::spawn(move || {
                    let c = connector(&[("written.by", &i.to_string())], TargetState::Running);
                    barrier.wait();
                    (i, s.create(&name, c).unwrap())
                })
            })
            .collect();
        let results: Vec<(usize, bool)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<usize> = results.iter().filter(|r| r.1).map(|r| r.0).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        // Both workers hold the winner's config.
        for s in &stores {
            s.read_to_end().unwrap();
            assert_eq!(s.all()[&name].config["written.by"], winners[0].to_string());
        }
    }
}

#[test]
fn source_offsets_are_shared_in_connects_key_format() {
    let (worker, cluster) = cluster_config("offsets");
    ensure(&worker, &cluster).unwrap();
    let topic = &cluster.offset_topic.name;
    let w1 = KafkaOffsetStore::open(&worker, topic, TIMEOUT).unwrap();
    let w2 = KafkaOffsetStore::open(&worker, topic, TIMEOUT).unwrap();
    let map = |v: serde_json::Value| v.as_object().unwrap().clone();
    let (p0, p1) = (
        map(json!({"table": "t", "db": "d"})),
        map(json!({"table": "u"})),
    );
    w1.commit(
        "src",
        Box::new(|c| {
            c.upsert(&p0, map(json!({"lsn": 10})));
            c.upsert(&p1, map(json!({"lsn": 3})));
            c.raise_marks(1, "out", 4, &BTreeMap::from([(0, 7), (3, 2)]));
        }),
    )
    .unwrap();
    w1.commit("src", Box::new(|c| c.upsert(&p0, map(json!({"lsn": 11})))))
        .unwrap();
    // The task moves to w2: it starts from what w1 stored last.
    w2.read_to_end().unwrap();
    // Partitions of the topic are read in no set order across each other.
    let sorted = |mut c: sluice_runtime::storage::StoredOffsets| {
        c.offsets
            .sort_by_key(|s| serde_json::Value::Object(s.partition.clone()).to_string());
        c
    };
    assert_eq!(sorted(w2.connector("src")), sorted(w1.connector("src")));
    let got = w2.connector("src");
    assert_eq!(got.offsets.len(), 2);
    assert_eq!(
        got.offsets
            .iter()
            .find(|s| s.partition == p0)
            .unwrap()
            .offset,
        map(json!({"lsn": 11}))
    );
    let mark = got.mark(1, "out").unwrap();
    assert_eq!(mark.acked, BTreeMap::from([(0, 7), (3, 2)]));
    assert_eq!(mark.partitions, 4);

    // A reset through w2 (tombstones) empties it everywhere.
    w2.commit("src", Box::new(|c| *c = Default::default()))
        .unwrap();
    w1.read_to_end().unwrap();
    assert_eq!(w1.connector("src"), Default::default());

    let keys: Vec<String> = read_topic(topic)
        .into_iter()
        .filter_map(|r| r.key)
        .collect();
    assert!(
        keys.contains(&r#"["src",{"db":"d","table":"t"}]"#.to_owned()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&r#"["__sluice.marks","src",1,"out"]"#.to_owned()),
        "{keys:?}"
    );
}

#[test]
fn a_stale_workers_status_changes_no_workers_view() {
    let (worker, cluster) = cluster_config("status");
    ensure(&worker, &cluster).unwrap();
    let topic = &cluster.status_topic.name;
    let w1 = KafkaStatusStore::open(&worker, topic, TIMEOUT).unwrap();
    let w2 = KafkaStatusStore::open(&worker, topic, TIMEOUT).unwrap();
    let record = |state, worker: &str, generation| StatusRecord {
        state,
        trace: None,
        worker_id: worker.to_owned(),
        generation,
    };
    w1.put_task("c", 0, record(State::Running, "w1", 1));
    wait_for("w2 sees w1's task", TIMEOUT, || {
        w2.read_to_end().unwrap();
        w2.tasks("c").get(&0) == Some(&record(State::Running, "w1", 1))
    });
    // w2 takes the task over in generation 2; then w1, which missed the
    // rebalance, reports from generation 1.
    w2.put_task("c", 0, record(State::Running, "w2", 2));
    wait_for("w1 sees w2's task", TIMEOUT, || {
        w1.read_to_end().unwrap();
        w1.tasks("c")[&0].worker_id == "w2"
    });
    // w1's stale record, as a worker writes it that has not read the topic
    // since it woke up: no reader takes it over the newer generation.
    let stale = serde_json::to_vec(&record(State::Failed, "w1", 1)).unwrap();
    produce_keyed(topic, 0, Some("status-task-c-0"), &[stale]);
    for w in [&w1, &w2] {
        w.read_to_end().unwrap();
        assert_eq!(w.tasks("c")[&0], record(State::Running, "w2", 2));
    }
    // A deleted connector's statuses are forgotten everywhere.
    w2.forget("c");
    wait_for("the tombstones", TIMEOUT, || {
        w1.read_to_end().unwrap();
        w1.connector("c").is_none() && w1.tasks("c").is_empty()
    });
}

// ---- several worker processes on loopback ---------------------------------

/// Kafka's session timeout in the process tests: a killed worker's tasks
/// must run elsewhere within it plus five seconds.
const SESSION_MS: u64 = 6000;

/// The JSON config of a worker of the cluster `group`.
fn cluster_worker_json(scratch: &Scratch, group: &str) -> std::path::PathBuf {
    let mut config = worker_config(scratch);
    let extra = json!({
        "group.id": group,
        "config.storage.topic": format!("{group}-configs"),
        "offset.storage.topic": format!("{group}-offsets"),
        "status.storage.topic": format!("{group}-status"),
        "offset.storage.partitions": 5,
        "status.storage.partitions": 3,
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": 1000,
        "config.providers": "env",
        "config.providers.env.param.allowlist.pattern": "HOME",
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    scratch.write_json("worker-distributed.json", &config)
}

struct Cluster {
    config: std::path::PathBuf,
    workers: Vec<WorkerProcess>,
    urls: Vec<String>,
}

impl Cluster {
    fn start(scratch: &Scratch, n: usize) -> Self {
        let config = cluster_worker_json(scratch, &unique("cluster"));
        let workers: Vec<WorkerProcess> = (0..n)
            .map(|_| WorkerProcess::start_distributed(scratch, &config))
            .collect();
        let urls = workers.iter().map(WorkerProcess::rest_url).collect();
        Self {
            config,
            workers,
            urls,
        }
    }

    /// The index of the worker whose id (`host:port`) is `id`.
    fn index_of(&self, id: &str) -> Option<usize> {
        self.urls
            .iter()
            .position(|u| u.ends_with(&format!("//{id}")))
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn get(url: &str) -> (u16, serde_json::Value) {
    let r = http().get(url).send().unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(serde_json::Value::Null))
}

fn post(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let r = http().post(url).json(body).send().unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(serde_json::Value::Null))
}

fn put(url: &str) -> u16 {
    http().put(url).send().unwrap().status().as_u16()
}

/// (state, worker_id) of the connector and of each task, as one worker says.
/// Waits until `witness` reports `source`'s task 0 RUNNING on a worker other
/// than `owner_id`, and says how long that took since `since`.
fn wait_task0_moved(
    witness: &str,
    source: &str,
    owner_id: &str,
    what: &str,
    since: std::time::Instant,
) {
    wait_for(what, Duration::from_millis(SESSION_MS + 5000), || {
        let s = states(witness, source);
        s.get(1)
            .is_some_and(|(state, w)| state == "RUNNING" && *w != owner_id)
    });
    eprintln!("{what}: after {:?}", since.elapsed());
}

fn states(url: &str, name: &str) -> Vec<(String, String)> {
    let (code, s) = get(&format!("{url}/connectors/{name}/status"));
    if code != 200 {
        return Vec::new();
    }
    std::iter::once(&s["connector"])
        .chain(s["tasks"].as_array().into_iter().flatten())
        .map(|x| {
            (
                x["state"].as_str().unwrap_or_default().to_owned(),
                x["worker_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn datagen(name: &str, topic: &str, total: u64, rate: u64) -> serde_json::Value {
    datagen_tasks(name, topic, total, rate, 2)
}

fn datagen_tasks(name: &str, topic: &str, total: u64, rate: u64, tasks: u32) -> serde_json::Value {
    json!({"name": name, "config": {
        "connector.class": "datagen",
        "tasks.max": tasks,
        "kafka.topic": topic,
        "max.records": total,
        "records.per.second": rate,
        "batch.size": 100,
        "seed": 7,
        "topic.creation.default.partitions": 4
    }})
}

/// (generator, sequence) of every record of `topic`.
fn events_in(topic: &str) -> Vec<(i64, i64)> {
    read_topic(topic)
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            (
                v["generator"].as_i64().unwrap(),
                v["sequence"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_cluster_shares_its_connectors_and_moves_a_killed_workers_tasks() {
    let scratch = Scratch::new("cluster");
    let mut cluster = Cluster::start(&scratch, 3);
    let [w1, w2, w3] = [0, 1, 2].map(|i| cluster.urls[i].clone());
    let topic = unique("events");
    create_topic(&scratch, &topic, 4);
    let total = 6000u64;
    let source = unique("gen");

    // Created through worker 1, readable on worker 2 right after the 201.
    let (code, body) = post(
        &format!("{w1}/connectors"),
        &datagen(&source, &topic, total, 400),
    );
    assert_eq!(code, 201, "{body}");
    let (code, info) = get(&format!("{w2}/connectors/{source}"));
    assert_eq!(code, 200, "{info}");
    assert_eq!(info["config"]["kafka.topic"], json!(topic));

    // Two workers create one name at once: one 201, one 409.
    let out = scratch.path("out.jsonl");
    let sink = unique("file");
    let sink_config = json!({"name": sink, "config": {
        "connector.class": "file-sink", "topics": topic,
        "file": out.display().to_string(), "format": "envelope"
    }});
    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = [w2.clone(), w3.clone()]
        .into_iter()
        .map(|url| {
            let (barrier, body) = (barrier.clone(), sink_config.clone());
            std::thread::spawn(move || {
                barrier.wait();
                post(&format!("{url}/connectors"), &body).0
            })
        })
        .collect();
    let mut codes: Vec<u16> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    codes.sort();
    assert_eq!(codes, vec![201, 409]);

    // Every part runs somewhere, and every worker says the same.
    wait_for(
        "both connectors and their tasks RUNNING",
        Duration::from_secs(60),
        || {
            [&source, &sink].iter().all(|name| {
                let s = states(&w1, name);
                s.len() >= 2 && s.iter().all(|(state, _)| state == "RUNNING")
            })
        },
    );
    wait_for(
        "every worker reporting the same states",
        Duration::from_secs(20),
        || {
            let a = states(&w1, &source);
            a == states(&w2, &source) && a == states(&w3, &source)
        },
    );

    // Each worker lists the same task configs, whether it runs the
    // connector's instance or not.
    let tasks_of = |url: &str| get(&format!("{url}/connectors/{source}/tasks")).1;
    wait_for(
        "the same task configs on every worker",
        Duration::from_secs(20),
        || {
            let a = tasks_of(&w1);
            a.as_array().is_some_and(|t| t.len() == 2) && a == tasks_of(&w2) && a == tasks_of(&w3)
        },
    );

    // Paused through worker 3: paused everywhere, and nothing more is produced.
    assert_eq!(put(&format!("{w3}/connectors/{source}/pause")), 202);
    wait_for(
        "the source PAUSED on every worker",
        Duration::from_secs(30),
        || {
            [&w1, &w2, &w3].iter().all(|url| {
                let s = states(url, &source);
                s.len() == 3 && s.iter().all(|(state, _)| state == "PAUSED")
            })
        },
    );
    let paused_at = topic_count(&topic);
    assert!(
        paused_at < total as i64,
        "the source finished before the pause; slow it down"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        topic_count(&topic),
        paused_at,
        "records produced while paused"
    );
    assert_eq!(put(&format!("{w2}/connectors/{source}/resume")), 202);

    // A restart asked of worker 3 restarts every task, wherever it runs.
    let restarts = |c: &Cluster| -> usize {
        c.workers
            .iter()
            .map(|w| {
                w.log_text()
                    .lines()
                    .filter(|l| l.contains("restarting task") && l.contains(&source))
                    .count()
            })
            .sum()
    };
    let before = restarts(&cluster);
    let (code, body) = post(
        &format!("{w3}/connectors/{source}/restart?includeTasks=true"),
        &json!({}),
    );
    assert_eq!(code, 202, "{body}");
    wait_for(
        "both tasks restarted, wherever they run",
        Duration::from_secs(30),
        || restarts(&cluster) >= before + 2,
    );

    // Kill -9 the worker running the source's task 0: its tasks run elsewhere
    // within the session timeout plus five seconds.
    wait_for("the source RUNNING again", Duration::from_secs(30), || {
        states(&w1, &source)
            .iter()
            .all(|(state, _)| state == "RUNNING")
    });
    let owner_id = states(&w1, &source)[1].1.clone();
    let victim = cluster
        .index_of(&owner_id)
        .expect("task 0 runs on a worker of the cluster");
    let witness = cluster.urls[(victim + 1) % 3].clone();
    let killed_at = std::time::Instant::now();
    cluster.workers[victim].kill9();
    wait_task0_moved(
        &witness,
        &source,
        &owner_id,
        "failover: task 0 RUNNING on another worker after kill -9",
        killed_at,
    );

    // Every event in Kafka exactly once, and in the file at least once.
    let seen = assert_exactly_once(&topic, total);
    for g in 0..2 {
        assert_eq!(
            seen.iter().filter(|(t, _)| *t == g).count() as u64,
            total / 2
        );
    }
    wait_for("every event in the file", Duration::from_secs(120), || {
        let lines = read_jsonl(&out);
        let in_file: std::collections::BTreeSet<(i64, i64)> = lines
            .iter()
            .map(|l| {
                (
                    l["value"]["generator"].as_i64().unwrap(),
                    l["value"]["sequence"].as_i64().unwrap(),
                )
            })
            .collect();
        in_file == seen
    });
    for (i, w) in cluster.workers.iter().enumerate() {
        assert!(
            !w.log_text().contains("panicked"),
            "worker {i}:\n{}",
            w.log_text()
        );
    }
}

/// The placement slots a worker holds, from what its log says it was given
/// and gave up.
fn held_slots(log: &str) -> std::collections::BTreeSet<i32> {
    let mut held = std::collections::BTreeSet::new();
    for line in log.lines() {
        let gained = line.contains("placement slots assigned");
        if !gained && !line.contains("placement slots revoked") {
            continue;
        }
        let Some(list) = line
            .split("slots=[")
            .nth(1)
            .and_then(|r| r.split(']').next())
        else {
            continue;
        };
        for n in list.split(',').filter_map(|n| n.trim().parse::<i32>().ok()) {
            if gained {
                held.insert(n);
            } else {
                held.remove(&n);
            }
        }
    }
    held
}

fn signal(w: &WorkerProcess, sig: &str) {
    let pid = w.child.id().to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// The `group.id` of a worker config file.
fn group_of(config: &std::path::Path) -> String {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    json["group.id"].as_str().unwrap().to_owned()
}

/// Walks the status topic's history of each task of `connector` (one key,
/// so one partition, in the order written) and fails if a worker reported a
/// task RUNNING while another still ran it (had not reported it ended). A
/// worker of `killed` never reports its end: a task of one may be taken over.
/// Returns how many times a task moved to another worker.
fn assert_one_runner_at_a_time(status_topic: &str, connector: &str, killed: &[&str]) -> usize {
    let prefix = format!("status-task-{connector}-");
    let mut running: BTreeMap<String, String> = BTreeMap::new();
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut moves = 0;
    for r in read_topic(status_topic) {
        let Some(key) = r.key.filter(|k| k.starts_with(&prefix)) else {
            continue;
        };
        let Some(value) = r.value else { continue };
        let v: serde_json::Value = serde_json::from_slice(&value).unwrap();
        let worker = v["worker_id"].as_str().unwrap().to_owned();
        match v["state"].as_str().unwrap() {
            "RUNNING" | "PAUSED" => {
                if let Some(other) = running
                    .get(&key)
                    .filter(|w| **w != worker && !killed.contains(&w.as_str()))
                {
                    panic!("{key}: RUNNING on {worker} while {other} still ran it");
                }
                if last.get(&key).is_some_and(|w| *w != worker) {
                    moves += 1;
                }
                running.insert(key.clone(), worker.clone());
                last.insert(key, worker);
            }
            _ => {
                if running.get(&key) == Some(&worker) {
                    running.remove(&key);
                }
            }
        }
    }
    moves
}

fn assert_exactly_once(topic: &str, total: u64) -> std::collections::BTreeSet<(i64, i64)> {
    wait_for("every event in the topic", Duration::from_secs(120), || {
        topic_count(topic) >= total as i64
    });
    let mut seen = std::collections::BTreeSet::new();
    for e in events_in(topic) {
        assert!(seen.insert(e), "{e:?} twice in Kafka");
    }
    assert_eq!(seen.len() as u64, total);
    seen
}

#[test]
fn a_worker_frozen_past_its_session_writes_nothing_when_it_wakes_and_rejoins() {
    let scratch = Scratch::new("frozen");
    let cluster = Cluster::start(&scratch, 2);
    let w1 = cluster.urls[0].clone();
    let topic = unique("events");
    create_topic(&scratch, &topic, 4);
    let total = 6000u64;
    let source = unique("gen");
    let (code, body) = post(
        &format!("{w1}/connectors"),
        &datagen(&source, &topic, total, 400),
    );
    assert_eq!(code, 201, "{body}");
    wait_for(
        "the source's tasks RUNNING",
        Duration::from_secs(60),
        || {
            let s = states(&w1, &source);
            s.len() == 3 && s.iter().all(|(state, _)| state == "RUNNING")
        },
    );
    wait_for("the source writing", Duration::from_secs(30), || {
        topic_count(&topic) > 200
    });

    // Freeze the worker running task 0 past its session timeout: the group
    // expels it and the other worker takes the task over.
    let owner_id = states(&w1, &source)[1].1.clone();
    let frozen = cluster.index_of(&owner_id).unwrap();
    let other = cluster.urls[1 - frozen].clone();
    signal(&cluster.workers[frozen], "-STOP");
    let stopped_at = std::time::Instant::now();
    wait_task0_moved(
        &other,
        &source,
        &owner_id,
        "the frozen worker's task 0 RUNNING on the other worker",
        stopped_at,
    );
    let assigned = |w: &WorkerProcess| w.log_text().matches("placement slots assigned").count();
    let before = assigned(&cluster.workers[frozen]);

    // Woken, it finds its lease lapsed: it holds its batches, its tasks are
    // stopped when it learns it lost its slots, and it joins again.
    signal(&cluster.workers[frozen], "-CONT");
    wait_for(
        "the woken worker to rejoin",
        Duration::from_secs(30),
        || assigned(&cluster.workers[frozen]) > before,
    );
    // What it reports of the tasks it lost, from its old generation, changes
    // nobody's view: both workers agree every part is RUNNING.
    wait_for(
        "every part RUNNING, the same on both workers",
        Duration::from_secs(30),
        || {
            agreed_status(&cluster.urls, &source).is_some_and(|s| {
                let p = parts(&s);
                p.len() == 3 && p.iter().all(|(state, _)| state == "RUNNING")
            })
        },
    );
    let seen = assert_exactly_once(&topic, total);
    for g in 0..2 {
        assert_eq!(
            seen.iter().filter(|(t, _)| *t == g).count() as u64,
            total / 2
        );
    }
    let log = cluster.workers[frozen].log_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_rolling_restart_under_load_loses_nothing_and_doubles_nothing() {
    let scratch = Scratch::new("rolling");
    let mut cluster = Cluster::start(&scratch, 3);
    let w1 = cluster.urls[0].clone();
    let topic = unique("events");
    create_topic(&scratch, &topic, 4);
    let total = 8000u64;
    let source = unique("gen");
    let (code, body) = post(
        &format!("{w1}/connectors"),
        &datagen(&source, &topic, total, 200),
    );
    assert_eq!(code, 201, "{body}");
    let out = scratch.path("out.jsonl");
    let sink = json!({"name": unique("file"), "config": {
        "connector.class": "file-sink", "topics": topic,
        "file": out.display().to_string(), "format": "envelope"
    }});
    assert_eq!(post(&format!("{w1}/connectors"), &sink).0, 201);
    wait_for("the source writing", Duration::from_secs(60), || {
        topic_count(&topic) > 200
    });

    // Each worker in turn: SIGTERM (it leaves the group, its tasks finish and
    // store their offsets, and another worker takes them at once), then a
    // new worker in its place.
    for i in 0..3 {
        let witness = cluster.urls[(i + 1) % 3].clone();
        let leaving = cluster.urls[i].trim_start_matches("http://").to_owned();
        let stopped_at = std::time::Instant::now();
        let status = cluster.workers[i].terminate(Duration::from_secs(60));
        assert!(
            status.success(),
            "worker {i}:\n{}",
            cluster.workers[i].log_text()
        );
        let left = stopped_at.elapsed();
        wait_for(
            "every task RUNNING on the workers left",
            Duration::from_secs(SESSION_MS / 1000 + 5),
            || {
                let s = states(&witness, &source);
                s.len() == 3
                    && s.iter()
                        .all(|(state, w)| state == "RUNNING" && *w != leaving)
            },
        );
        eprintln!(
            "worker {i}: stopped in {left:?}, its tasks RUNNING elsewhere {:?} after SIGTERM",
            stopped_at.elapsed()
        );
        cluster.workers[i] = WorkerProcess::start_distributed(&scratch, &cluster.config);
        cluster.urls[i] = cluster.workers[i].rest_url();
        let joined = &cluster.workers[i];
        wait_for(
            "the new worker to be given slots",
            Duration::from_secs(30),
            || joined.log_text().contains("placement slots assigned"),
        );
    }

    assert!(
        topic_count(&topic) < total as i64,
        "the source finished before the restarts did; slow it down"
    );
    // Each handover: the leaving worker reported its tasks ended before the
    // next worker reported them RUNNING. Every first worker left, so each of
    // the two tasks moved at least once.
    let group = group_of(&cluster.config);
    let moves = assert_one_runner_at_a_time(&format!("{group}-status"), &source, &[]);
    assert!(moves >= 2, "{moves} moves");
    let seen = assert_exactly_once(&topic, total);
    wait_for("every event in the file", Duration::from_secs(120), || {
        let in_file: std::collections::BTreeSet<(i64, i64)> = read_jsonl(&out)
            .iter()
            .map(|l| {
                (
                    l["value"]["generator"].as_i64().unwrap(),
                    l["value"]["sequence"].as_i64().unwrap(),
                )
            })
            .collect();
        in_file == seen
    });
}

#[test]
fn a_joining_worker_runs_its_slots_tasks_and_none_runs_twice() {
    let scratch = Scratch::new("join");
    let mut cluster = Cluster::start(&scratch, 3);
    let w1 = cluster.urls[0].clone();
    let topic = unique("events");
    create_topic(&scratch, &topic, 4);
    let (tasks, total) = (8u32, 16000u64);
    // records.per.second is per task: 800 a second in all, for 20 s.
    let source = unique("gen");
    let config = datagen_tasks(&source, &topic, total, 100, tasks);
    assert_eq!(post(&format!("{w1}/connectors"), &config).0, 201);
    wait_for("every task RUNNING", Duration::from_secs(60), || {
        let s = states(&w1, &source);
        s.len() == tasks as usize + 1 && s.iter().all(|(state, _)| state == "RUNNING")
    });

    let joined_at = std::time::Instant::now();
    cluster
        .workers
        .push(WorkerProcess::start_distributed(&scratch, &cluster.config));
    let url = cluster.workers[3].rest_url();
    let id = url.trim_start_matches("http://").to_owned();
    let joined = &cluster.workers[3];
    wait_for(
        "the new worker to be given slots",
        Duration::from_secs(30),
        || !held_slots(&joined.log_text()).is_empty(),
    );
    // The tasks whose slots it was given run there, and only there. Slots
    // are balanced, not tasks: which slots a joining worker is given is the
    // assignor's choice, so it may hold none of these eight (seen: every
    // third slot up to 39).
    let held = held_slots(&joined.log_text());
    let moved: Vec<u32> = (0..tasks)
        .filter(|t| held.contains(&slot_of(&source, Part::Task(*t))))
        .collect();
    wait_for(
        "the moved tasks RUNNING on the new worker, the rest elsewhere",
        Duration::from_secs(30),
        || {
            let s = states(&url, &source);
            s.len() == tasks as usize + 1
                && s.iter().all(|(state, _)| state == "RUNNING")
                && (0..tasks).all(|t| (s[t as usize + 1].1 == id) == moved.contains(&t))
        },
    );
    eprintln!(
        "join: tasks {moved:?} of {tasks} RUNNING on the new worker {:?} after it started",
        joined_at.elapsed()
    );
    assert!(
        topic_count(&topic) < total as i64,
        "the source finished before the join; slow it down"
    );
    // No task ran on two workers at once: in the status history, a task is
    // reported RUNNING by a worker only after its previous worker reported it
    // ended; and each generator's records are in Kafka exactly once.
    let group = group_of(&cluster.config);
    let moves = assert_one_runner_at_a_time(&format!("{group}-status"), &source, &[]);
    assert!(
        moves >= moved.len(),
        "{moves} moves in the status history, {} tasks moved",
        moved.len()
    );
    let seen = assert_exactly_once(&topic, total);
    for g in 0..tasks as i64 {
        assert_eq!(
            seen.iter().filter(|(t, _)| *t == g).count() as u64,
            total / u64::from(tasks)
        );
    }
}

/// `config` with the REST listener on `port`: the worker's id
/// (`127.0.0.1:<port>`), which it keeps across a restart.
fn on_port(scratch: &Scratch, config: &std::path::Path, port: u16) -> std::path::PathBuf {
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    json["listeners"] = json!(format!("http://127.0.0.1:{port}"));
    scratch.write_json(&format!("worker-{port}.json"), &json)
}

/// The whole status answer of each worker, once they all agree.
fn agreed_status(urls: &[String], name: &str) -> Option<serde_json::Value> {
    // A worker still starting answers nothing: no agreement yet.
    let answers: Vec<serde_json::Value> = urls
        .iter()
        .map(|u| {
            http()
                .get(format!("{u}/connectors/{name}/status"))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
                .and_then(|r| r.json().ok())
        })
        .collect::<Option<_>>()?;
    answers
        .windows(2)
        .all(|w| w[0] == w[1])
        .then(|| answers[0].clone())
}

/// (state, worker_id) of the connector (index 0) and each task.
fn parts(status: &serde_json::Value) -> Vec<(String, String)> {
    std::iter::once(&status["connector"])
        .chain(status["tasks"].as_array().into_iter().flatten())
        .map(|x| {
            (
                x["state"].as_str().unwrap_or_default().to_owned(),
                x["worker_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_dead_workers_parts_show_unassigned_and_wait_the_delay_for_it_to_come_back() {
    // Long enough for a debug build to restart and rejoin on a loaded
    // machine: the first half of the test needs it back within the delay.
    const DELAY_MS: u64 = 15000;
    let scratch = Scratch::new("delay");
    let base = cluster_worker_json(&scratch, &unique("delay"));
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    json["scheduled.rebalance.max.delay.ms"] = json!(DELAY_MS);
    let base = scratch.write_json("worker-delay.json", &json);
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let configs: Vec<_> = ports.iter().map(|p| on_port(&scratch, &base, *p)).collect();
    let mut workers: Vec<WorkerProcess> = configs
        .iter()
        .map(|c| WorkerProcess::start_distributed(&scratch, c))
        .collect();
    let urls: Vec<String> = workers.iter().map(WorkerProcess::rest_url).collect();
    let topic = unique("events");
    create_topic(&scratch, &topic, 4);
    // At 100 records/s a task, the source outlasts both kills and the delay.
    let (tasks, total) = (6u32, 39000u64);
    let source = unique("gen");
    let config = datagen_tasks(&source, &topic, total, 100, tasks);
    assert_eq!(post(&format!("{}/connectors", urls[0]), &config).0, 201);
    let all_running = |s: &serde_json::Value| {
        let p = parts(s);
        p.len() == tasks as usize + 1 && p.iter().all(|(state, _)| state == "RUNNING")
    };
    let mut status = json!(null);
    wait_for(
        "every part RUNNING, the same on every worker",
        Duration::from_secs(60),
        || {
            status = agreed_status(&urls, &source).unwrap_or_default();
            all_running(&status)
        },
    );
    // The worker running task 0, and every part it runs.
    let before = parts(&status);
    let victim_id = before[1].1.clone();
    let victim = urls.iter().position(|u| u.ends_with(&victim_id)).unwrap();
    let its_parts: Vec<usize> = (0..before.len())
        .filter(|i| before[*i].1 == victim_id)
        .collect();
    let others: Vec<String> = (0..3)
        .filter(|i| *i != victim)
        .map(|i| urls[i].clone())
        .collect();
    let assigned = |w: &WorkerProcess| w.log_text().matches("placement slots assigned").count();
    let assigned_before: Vec<usize> = workers.iter().map(assigned).collect();

    // Killed: once its session would have expired, its parts are UNASSIGNED
    // on every worker, not RUNNING on a dead worker; the rest run on.
    workers[victim].kill9();
    let killed_at = std::time::Instant::now();
    wait_for(
        "the dead worker's parts UNASSIGNED on every worker",
        Duration::from_millis(SESSION_MS + 3000),
        || {
            agreed_status(&others, &source).is_some_and(|s| {
                parts(&s).iter().enumerate().all(|(i, (state, w))| {
                    if its_parts.contains(&i) {
                        state == "UNASSIGNED"
                    } else {
                        state == "RUNNING" && *w != victim_id
                    }
                })
            })
        },
    );
    eprintln!(
        "dead worker's parts UNASSIGNED after {:?}",
        killed_at.elapsed()
    );

    // Back on the same host and port within the delay: it takes its own
    // place again, and nothing moved in between.
    workers[victim] = WorkerProcess::start_distributed(&scratch, &configs[victim]);
    wait_for(
        "its parts RUNNING on it again",
        Duration::from_secs(30),
        || agreed_status(&urls, &source).is_some_and(|s| all_running(&s) && parts(&s) == before),
    );
    for i in (0..3).filter(|i| *i != victim) {
        assert_eq!(
            assigned(&workers[i]),
            assigned_before[i],
            "worker {i} was given slots while the dead worker's were held:\n{}",
            workers[i].log_text()
        );
    }

    // Killed again and not back: its parts wait out session + delay (the
    // coordinator last heard from it at most a heartbeat before the kill),
    // then run elsewhere.
    workers[victim].kill9();
    let killed_at = std::time::Instant::now();
    let held_until = Duration::from_millis(SESSION_MS + DELAY_MS - 1000 - 500);
    wait_for(
        "its parts RUNNING on the other workers",
        Duration::from_millis(SESSION_MS + DELAY_MS + 5000),
        || {
            let moved = agreed_status(&others, &source).is_some_and(|s| {
                parts(&s)
                    .iter()
                    .all(|(state, w)| state == "RUNNING" && *w != victim_id)
            });
            assert!(
                !moved || killed_at.elapsed() >= held_until,
                "the dead worker's parts moved after {:?}, within its session and the delay",
                killed_at.elapsed()
            );
            moved
        },
    );
    eprintln!(
        "dead worker's parts RUNNING elsewhere after {:?} (session {SESSION_MS} ms + delay {DELAY_MS} ms)",
        killed_at.elapsed()
    );
    // No task ran on two workers at once: each generator's records once.
    assert!(
        topic_count(&topic) < total as i64,
        "the source finished before the second kill; slow it down"
    );
    let seen = assert_exactly_once(&topic, total);
    for g in 0..i64::from(tasks) {
        assert_eq!(
            seen.iter().filter(|(t, _)| *t == g).count() as u64,
            total / u64::from(tasks)
        );
    }
}

#[test]
fn tasks_run_from_the_task_configs_published_in_the_config_topic() {
    let scratch = Scratch::new("task-configs");
    let cluster = Cluster::start(&scratch, 2);
    let topic = unique("events");
    let moved_to = unique("elsewhere");
    create_topic(&scratch, &topic, 1);
    create_topic(&scratch, &moved_to, 1);
    let source = unique("gen");
    let mut config = datagen_tasks(&source, &topic, 1_000_000, 20, 2);
    // A value from a config provider, which the connector copies into its
    // task configs: published as the reference, resolved where a task starts.
    config["config"]["x.secret"] = json!("${env:HOME}");
    assert_eq!(
        post(&format!("{}/connectors", cluster.urls[0]), &config).0,
        201
    );
    let tasks_of = |url: &str| get(&format!("{url}/connectors/{source}/tasks")).1;
    wait_for(
        "the task configs on both workers",
        Duration::from_secs(60),
        || {
            let a = tasks_of(&cluster.urls[0]);
            a.as_array().is_some_and(|t| t.len() == 2) && a == tasks_of(&cluster.urls[1])
        },
    );
    wait_for("the source writing", Duration::from_secs(60), || {
        topic_count(&topic) > 0
    });
    // Both workers in the group: no rebalance to come would restart the
    // connector instance, which publishes the configs it makes again.
    wait_for(
        "both workers holding slots",
        Duration::from_secs(60),
        || {
            cluster
                .workers
                .iter()
                .all(|w| !held_slots(&w.log_text()).is_empty())
        },
    );
    let url = &cluster.urls[0];
    wait_for("every part RUNNING", Duration::from_secs(60), || {
        let s = states(url, &source);
        s.len() == 3 && s.iter().all(|(state, _)| state == "RUNNING")
    });

    // Task configs are what the config topic says, not what a worker's own
    // connector instance would make: publish a changed one for task 0, as a
    // Connect worker writes it (`task-<name>-<n>` + `commit-<name>`), and
    // the worker running task 0, whichever it is, restarts it with it.
    let worker = WorkerConfig::load(&cluster.config, std::env::vars()).unwrap();
    let group = worker.get("group.id").unwrap().to_owned();
    let home = std::env::var("HOME").unwrap();
    let task_records: Vec<serde_json::Value> = read_topic(&format!("{group}-configs"))
        .into_iter()
        .filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with("task-")))
        .filter_map(|r| serde_json::from_slice(r.value.as_deref()?).ok())
        .collect();
    assert!(!task_records.is_empty());
    for r in &task_records {
        assert_eq!(r["properties"]["x.secret"], json!("${env:HOME}"), "{r}");
        assert!(!r.to_string().contains(&format!("\"{home}\"")), "{r}");
    }
    assert_eq!(
        tasks_of(&cluster.urls[1])[0]["config"]["x.secret"],
        json!("${env:HOME}")
    );
    let store = KafkaConfigStore::open(&worker, &format!("{group}-configs"), TIMEOUT).unwrap();
    let mut published = store.task_configs(&source).unwrap();
    published[0].insert("kafka.topic".into(), moved_to.clone());
    store.put_task_configs(&source, &published).unwrap();
    wait_for(
        "task 0 writing where its published config says",
        Duration::from_secs(30),
        || topic_count(&moved_to) > 0,
    );
    for url in &cluster.urls {
        wait_for(
            "the published configs over REST",
            Duration::from_secs(10),
            || tasks_of(url)[0]["config"]["kafka.topic"] == json!(moved_to),
        );
    }
    // Task 1 kept its config, and ran on.
    let before = topic_count(&topic);
    wait_for("task 1 still writing", Duration::from_secs(30), || {
        topic_count(&topic) > before
    });
}

/// A schema, slot and publication of the test's own, the slot dropped after.
struct PgSource {
    schema: String,
    slot: String,
}

impl PgSource {
    fn new() -> Self {
        let id = unique("dist").to_lowercase().replace(['-', '.'], "_");
        psql(&format!("CREATE SCHEMA {id}"));
        Self {
            slot: format!("slot_{id}"),
            schema: id,
        }
    }

    fn topic(&self) -> String {
        format!("cdc_{0}.{0}.t", self.schema)
    }

    fn connector(&self, name: &str) -> serde_json::Value {
        let prefix = format!("cdc_{}", self.schema);
        let config = with_keys(
            cdc_source(&prefix, &self.slot, &self.schema),
            json!({
                "key.converter": "json",
                "key.converter.schemas.enable": false,
                "value.converter": "json",
                "value.converter.schemas.enable": false,
                "poll.interval.ms": 100,
                "topic.creation.default.partitions": 1
            }),
        );
        json!({"name": name, "config": config})
    }
}

impl Drop for PgSource {
    fn drop(&mut self) {
        drop_slot(&self.slot);
    }
}

#[test]
fn a_cdc_source_and_file_and_s3_sinks_survive_a_kill_and_a_join_with_every_change_once() {
    let pg = PgSource::new();
    let s = pg.schema.clone();
    psql(&format!(
        "CREATE TABLE {s}.t (id int PRIMARY KEY, v text);
         INSERT INTO {s}.t SELECT g, 'snap' FROM generate_series(1, 1000) g;"
    ));
    let scratch = Scratch::new("cdc-cluster");
    let mut cluster = Cluster::start(&scratch, 3);
    let w1 = cluster.urls[0].clone();
    let topic = pg.topic();
    let source = unique("pg");
    let (code, body) = post(&format!("{w1}/connectors"), &pg.connector(&source));
    assert_eq!(code, 201, "{body}");
    let out = scratch.path("out.jsonl");
    let file_sink = unique("file");
    let sink = json!({"name": file_sink, "config": {
        "connector.class": "file-sink", "topics": topic,
        "file": out.display().to_string(), "format": "envelope"
    }});
    assert_eq!(post(&format!("{w1}/connectors"), &sink).0, 201);
    // The S3 sink: deterministic object names (topic, partition, first
    // offset), so a batch written twice would be one object, and a record
    // in two objects would show as a duplicate below.
    let bucket = unique("cdc").to_lowercase();
    s3().create_bucket(&bucket);
    let store = s3();
    let s3_name = unique("s3");
    let s3_sink = json!({"name": s3_name, "config": {
        "connector.class": "io.confluent.connect.s3.S3SinkConnector",
        "topics": topic,
        "s3.bucket.name": bucket,
        "s3.region": "us-east-1",
        "store.url": store.endpoint,
        "aws.access.key.id": store.access_key,
        "aws.secret.access.key": store.secret_key,
        "format.class": "io.confluent.connect.s3.format.json.JsonFormat",
        "flush.size": 50,
        "value.converter": "json",
        "value.converter.schemas.enable": false
    }});
    assert_eq!(post(&format!("{w1}/connectors"), &s3_sink).0, 201);
    wait_for("the snapshot", Duration::from_secs(90), || {
        topic_count(&topic) >= 1000
    });

    // Inserts keep coming while the worker streaming the slot is killed.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (s, done) = (s.clone(), done.clone());
        std::thread::spawn(move || {
            let mut batches = 0i64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let from = 1001 + batches * 50;
                psql(&format!(
                    "INSERT INTO {s}.t SELECT g, 'stream' FROM generate_series({from}, {}) g",
                    from + 49
                ));
                batches += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            batches
        })
    };
    wait_for("streamed changes", Duration::from_secs(60), || {
        topic_count(&topic) >= 1300
    });
    let owner_id = states(&w1, &source)[1].1.clone();
    let victim = cluster.index_of(&owner_id).unwrap();
    let witness = cluster.urls[(victim + 1) % 3].clone();
    let killed_at = std::time::Instant::now();
    cluster.workers[victim].kill9();
    wait_task0_moved(
        &witness,
        &source,
        &owner_id,
        "CDC failover: the CDC task RUNNING on another worker after kill -9",
        killed_at,
    );
    let at = topic_count(&topic) + 300;
    wait_for(
        "streaming on the new owner",
        Duration::from_secs(60),
        || topic_count(&topic) >= at,
    );
    // A new worker joins under load and is given slots: whatever moves to
    // it moves without a change or an object doubled.
    cluster
        .workers
        .push(WorkerProcess::start_distributed(&scratch, &cluster.config));
    let joined = cluster.workers.last().unwrap();
    wait_for(
        "the new worker given slots",
        Duration::from_secs(30),
        || !held_slots(&joined.log_text()).is_empty(),
    );
    let at = topic_count(&topic) + 200;
    wait_for("streaming after the join", Duration::from_secs(60), || {
        topic_count(&topic) >= at
    });
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = writer.join().unwrap();
    let expected = 1000 + batches * 50;
    wait_for("every change", Duration::from_secs(120), || {
        topic_count(&topic) >= expected
    });

    // Every change once in Kafka: one per (id, op), each position once.
    let mut seen = std::collections::BTreeMap::new();
    let mut positions = std::collections::BTreeSet::new();
    for r in read_topic(&topic) {
        let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let key = (
            v["after"]["id"].as_i64().unwrap(),
            v["op"].as_str().unwrap().to_owned(),
        );
        assert!(
            seen.insert(key.clone(), ()).is_none(),
            "{key:?} twice in Kafka"
        );
        assert!(
            positions.insert(r.headers["__sluice.position"].clone()),
            "a position twice"
        );
    }
    assert_eq!(seen.len() as i64, expected);
    // And every change in the file, whichever worker wrote it.
    wait_for("every change in the file", Duration::from_secs(120), || {
        let ids: std::collections::BTreeSet<i64> = read_jsonl(&out)
            .iter()
            .filter_map(|l| l["value"]["after"]["id"].as_i64())
            .collect();
        ids.len() as i64 == expected
    });
    // No part of the three connectors was RUNNING on two live workers at once.
    let group = group_of(&cluster.config);
    for name in [&source, &file_sink, &s3_name] {
        assert_one_runner_at_a_time(&format!("{group}-status"), name, &[&owner_id]);
    }
    // And in S3 exactly once: every change in one object, the objects
    // covering the topic's offsets from 0 in flush.size steps.
    let prefix = format!("topics/{topic}/");
    wait_for("every change in S3", Duration::from_secs(120), || {
        store.objects(&bucket, &prefix).len() as i64 == expected / 50
    });
    let mut in_s3 = std::collections::BTreeSet::new();
    let mut starts = Vec::new();
    for (key, path) in store.objects(&bucket, &prefix) {
        let start: i64 = key
            .rsplit('+')
            .next()
            .and_then(|f| f.strip_suffix(".json"))
            .unwrap()
            .parse()
            .unwrap();
        starts.push(start);
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let change = (
                v["after"]["id"].as_i64().unwrap(),
                v["op"].as_str().unwrap().to_owned(),
            );
            assert!(
                in_s3.insert(change.clone()),
                "{change:?} twice in S3 ({key})"
            );
        }
    }
    starts.sort();
    assert_eq!(
        starts,
        (0..expected / 50).map(|i| i * 50).collect::<Vec<_>>()
    );
    assert_eq!(in_s3.len() as i64, expected);
}

// ---- Benchmark: failover and rebalance-on-join, sluice and Kafka Connect ----
//
// `cargo test --test distributed -- --ignored bench_ --nocapture`; each prints
// one line per run and the medians (bench/RESULTS.md). The same scenario for
// both: two workers, three FileStreamSource connectors (one task each) reading
// files a thread keeps appending to; a third worker joins (→ the first part
// RUNNING on it), then the worker running the first connector's task is
// killed with -9 (→ the first record its new owner writes). Runs:
// SLUICE_BENCH_RUNS (sluice: 5, Connect: 2, which waits out its default
// five-minute scheduled.rebalance.max.delay.ms each time).

/// A worker process of either system, and its REST URL.
struct BenchWorker {
    process: BenchProcess,
    url: String,
}

enum BenchProcess {
    Sluice(WorkerProcess),
    /// Killed on drop.
    Java(std::process::Child),
}

impl BenchWorker {
    fn id(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    fn kill9(&mut self) {
        match &mut self.process {
            BenchProcess::Sluice(w) => w.kill9(),
            BenchProcess::Java(child) => {
                child.kill().ok();
                child.wait().ok();
            }
        }
    }
}

impl Drop for BenchWorker {
    fn drop(&mut self) {
        self.kill9();
    }
}

enum System {
    Sluice {
        config: std::path::PathBuf,
    },
    Connect {
        properties: std::path::PathBuf,
        java: String,
        classpath: String,
    },
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl System {
    /// sluice with its defaults (session 10 s, heartbeat 3 s, no delay).
    fn sluice(scratch: &Scratch) -> Self {
        let config = cluster_worker_json(scratch, &unique("bench"));
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        let keys = json.as_object_mut().unwrap();
        keys.remove("session.timeout.ms");
        keys.remove("heartbeat.interval.ms");
        Self::Sluice {
            config: scratch.write_json("worker-bench.json", &json),
        }
    }

    /// Kafka Connect 4.3's `ConnectDistributed` with its defaults, apart from
    /// what a one-broker cluster needs.
    fn connect(scratch: &Scratch) -> Self {
        let home = std::env::var("SLUICE_CONNECT_HOME").unwrap_or_else(|_| {
            format!(
                "{}/.cache/sluice/tools/connect/3.6.3.0",
                std::env::var("HOME").unwrap()
            )
        });
        let read = |f: &str| {
            std::fs::read_to_string(format!("{home}/{f}"))
                .unwrap_or_else(|e| panic!("{home}/{f}: {e}; run dev/install connect"))
                .trim()
                .to_owned()
        };
        let group = unique("cbench");
        let properties = scratch.path("connect-distributed.properties");
        std::fs::write(
            &properties,
            format!(
                "bootstrap.servers={}\ngroup.id={group}\n\
                 config.storage.topic={group}-configs\noffset.storage.topic={group}-offsets\n\
                 status.storage.topic={group}-status\nconfig.storage.replication.factor=1\n\
                 offset.storage.replication.factor=1\nstatus.storage.replication.factor=1\n\
                 key.converter=org.apache.kafka.connect.storage.StringConverter\n\
                 value.converter=org.apache.kafka.connect.storage.StringConverter\n\
                 plugin.discovery=only_scan\n",
                kafka()
            ),
        )
        .unwrap();
        Self::Connect {
            properties,
            java: read("java"),
            classpath: read("classpath"),
        }
    }

    fn start(&self, scratch: &Scratch) -> BenchWorker {
        match self {
            Self::Sluice { config } => {
                let w = WorkerProcess::start_distributed(scratch, config);
                let url = w.rest_url();
                BenchWorker {
                    process: BenchProcess::Sluice(w),
                    url,
                }
            }
            Self::Connect {
                properties,
                java,
                classpath,
            } => {
                let port = free_port();
                let props = scratch.path(&format!("worker-{port}.properties"));
                let mut text = std::fs::read_to_string(properties).unwrap();
                text.push_str(&format!(
                    "listeners=http://127.0.0.1:{port}\nrest.advertised.host.name=127.0.0.1\nrest.advertised.port={port}\n"
                ));
                std::fs::write(&props, text).unwrap();
                let log =
                    std::fs::File::create(scratch.path(&format!("connect-{port}.log"))).unwrap();
                let child = std::process::Command::new(java)
                    .args(["-Xms64m", "-Xmx512m", "-XX:+UseG1GC", "-cp", classpath])
                    .arg("org.apache.kafka.connect.cli.ConnectDistributed")
                    .arg(&props)
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .expect("java starts");
                let url = format!("http://127.0.0.1:{port}");
                wait_for("Connect's REST API", Duration::from_secs(120), || {
                    http()
                        .get(format!("{url}/connectors"))
                        .send()
                        .is_ok_and(|r| r.status().is_success())
                });
                BenchWorker {
                    process: BenchProcess::Java(child),
                    url,
                }
            }
        }
    }
}

/// (join: worker started → a part RUNNING on it, join: REST up → the same,
/// failover: kill -9 → the first record from the new owner).
fn bench_run(system: &System) -> (Duration, Duration, Duration) {
    let scratch = Scratch::new("bench");
    let mut workers = vec![system.start(&scratch), system.start(&scratch)];
    let names: Vec<String> = (0..3).map(|_| unique("fsrc")).collect();
    let topics: Vec<String> = names.iter().map(|n| format!("{n}-t")).collect();
    let inputs: Vec<std::path::PathBuf> = names
        .iter()
        .map(|n| scratch.path(&format!("{n}.txt")))
        .collect();
    for t in &topics {
        create_topic(&scratch, t, 1);
    }
    for p in &inputs {
        std::fs::write(p, "").unwrap();
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appender = {
        let (inputs, done) = (inputs.clone(), done.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut files: Vec<std::fs::File> = inputs
                .iter()
                .map(|p| std::fs::OpenOptions::new().append(true).open(p).unwrap())
                .collect();
            let mut n = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for f in &mut files {
                    writeln!(f, "line {n}").unwrap();
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    for ((name, topic), input) in names.iter().zip(&topics).zip(&inputs) {
        let body = json!({"name": name, "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1", "file": input.display().to_string(), "topic": topic
        }});
        let (code, answer) = post(&format!("{}/connectors", workers[0].url), &body);
        assert_eq!(code, 201, "{answer}");
    }
    let url = workers[0].url.clone();
    wait_for("every part RUNNING", Duration::from_secs(120), || {
        names.iter().all(|n| {
            let s = states(&url, n);
            s.len() == 2 && s.iter().all(|(state, _)| state == "RUNNING")
        })
    });
    for t in &topics {
        wait_for("records flowing", Duration::from_secs(60), || {
            topic_count(t) > 0
        });
    }

    // A third worker joins.
    let started = std::time::Instant::now();
    workers.push(system.start(&scratch));
    let ready = started.elapsed();
    let id = workers[2].id().to_owned();
    wait_for(
        "a part RUNNING on the new worker",
        Duration::from_secs(300),
        || {
            names.iter().any(|n| {
                states(&url, n)
                    .iter()
                    .any(|(state, w)| state == "RUNNING" && *w == id)
            })
        },
    );
    let joined = started.elapsed();

    // Kill -9 a worker running a connector's task, not the first worker:
    // Connect's group leader, whose successor cannot know the dead leader's
    // assignment and so reassigns it at once, without the delay.
    let url = workers[2].url.clone();
    let mut owner = (0, String::new());
    wait_for(
        "every part RUNNING after the join, a task on a later worker",
        Duration::from_secs(300),
        || {
            let all: Vec<Vec<(String, String)>> = names.iter().map(|n| states(&url, n)).collect();
            let running = all
                .iter()
                .all(|s| s.len() == 2 && s.iter().all(|(state, _)| state == "RUNNING"));
            let later = all
                .iter()
                .position(|s| s[1].1 != workers[0].id())
                .map(|i| (i, all[i][1].1.clone()));
            match later {
                Some(o) if running => {
                    owner = o;
                    true
                }
                _ => false,
            }
        },
    );
    let (measured, owner) = owner;
    let victim = workers.iter().position(|w| w.id() == owner).unwrap();
    let witness = workers[0].url.clone();
    let killed = std::time::Instant::now();
    workers[victim].kill9();
    // What the dead worker had sent is in the topic within this settle.
    std::thread::sleep(Duration::from_millis(300));
    let before = topic_count(&topics[measured]);
    // What `/status` says a minute after the kill, if nothing ran the task
    // again by then.
    let mut said = None;
    wait_for(
        "a record from the new owner",
        Duration::from_secs(600),
        || {
            if said.is_none() && killed.elapsed() >= Duration::from_secs(60) {
                said = Some(states(&witness, &names[measured]));
            }
            topic_count(&topics[measured]) > before
        },
    );
    let failover = killed.elapsed();
    if let Some(said) = said {
        eprintln!("a minute after the kill of {owner}, /status said {said:?}");
    }
    let s = states(&witness, &names[measured]);
    assert!(
        s[1].1 != owner,
        "the task still reported on the killed worker: {s:?}"
    );
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    appender.join().unwrap();
    (joined, joined - ready, failover)
}

fn bench(name: &str, system: impl Fn(&Scratch) -> System, default_runs: usize) {
    let runs: usize = std::env::var("SLUICE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_runs);
    let mut results = Vec::new();
    for run in 0..runs {
        let scratch = Scratch::new("bench-system");
        let r = bench_run(&system(&scratch));
        eprintln!(
            "{name} run {run}: join {:.1} s from start ({:.1} s from REST up), failover {:.1} s",
            r.0.as_secs_f64(),
            r.1.as_secs_f64(),
            r.2.as_secs_f64()
        );
        results.push(r);
    }
    let median = |f: fn(&(Duration, Duration, Duration)) -> Duration| {
        let mut v: Vec<f64> = results.iter().map(|r| f(r).as_secs_f64()).collect();
        v.sort_by(f64::total_cmp);
        let (lo, hi) = (v[0], v[v.len() - 1]);
        let mid = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        format!("median {mid:.1} s (min {lo:.1}, max {hi:.1})")
    };
    eprintln!(
        "{name}, {runs} runs: join from start {}; from REST up {}; failover {}",
        median(|r| r.0),
        median(|r| r.1),
        median(|r| r.2)
    );
}

#[test]
#[ignore = "benchmark: several minutes"]
fn bench_sluice_failover_and_join() {
    bench("sluice", System::sluice, 5);
}

#[test]
#[ignore = "benchmark: Connect waits five minutes per failover"]
fn bench_connect_failover_and_join() {
    bench("Kafka Connect 4.3", System::connect, 2);
}
