//! The task's shell over a store in memory: what `put` writes, and what
//! `pre_commit` lets the runtime commit, without S3.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sluice_api::{ConnectError, Record, Value};

use super::*;
use crate::storage::{Multipart, Part};

/// Objects and multipart uploads in memory; `fail_puts` makes every upload fail.
#[derive(Default)]
struct MemoryStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    uploads: Mutex<BTreeMap<String, Vec<Vec<u8>>>>,
    fail_puts: std::sync::atomic::AtomicBool,
}

impl MemoryStore {
    fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }

    fn check(&self) -> Result<(), ConnectError> {
        if self.fail_puts.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ConnectError::retriable("the store is away"));
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn put(&self, key: &str, bytes: Vec<u8>, _: &PutOptions) -> Result<(), ConnectError> {
        self.check()?;
        self.objects.lock().unwrap().insert(key.to_owned(), bytes);
        Ok(())
    }
    fn part_size(&self) -> usize {
        5 * 1024 * 1024
    }
    async fn start_multipart(&self, key: &str, _: &PutOptions) -> Result<Multipart, ConnectError> {
        self.check()?;
        self.uploads
            .lock()
            .unwrap()
            .insert(key.to_owned(), Vec::new());
        Ok(Multipart {
            key: key.to_owned(),
            id: key.to_owned(),
        })
    }
    async fn upload_part(
        &self,
        upload: &Multipart,
        number: usize,
        bytes: Vec<u8>,
    ) -> Result<Part, ConnectError> {
        self.check()?;
        let mut uploads = self.uploads.lock().unwrap();
        let parts = uploads.get_mut(&upload.id).expect("an upload in progress");
        parts.push(bytes);
        Ok(Part {
            number: number as i32,
            etag: None,
        })
    }
    async fn complete(&self, upload: &Multipart, _: Vec<Part>) -> Result<(), ConnectError> {
        self.check()?;
        let parts = self.uploads.lock().unwrap().remove(&upload.id).unwrap();
        self.objects
            .lock()
            .unwrap()
            .insert(upload.key.clone(), parts.concat());
        Ok(())
    }
    async fn abort(&self, upload: &Multipart) {
        self.uploads.lock().unwrap().remove(&upload.id);
    }
    async fn incomplete_uploads(&self, _: &str) -> Result<Vec<Multipart>, ConnectError> {
        Ok(Vec::new())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ConnectError> {
        Ok(self.objects.lock().unwrap().get(key).cloned())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, ConnectError> {
        Ok(self
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(prefix))
            .collect())
    }
}

struct FailOnReport;

#[async_trait]
impl ErrantRecordReporter for FailOnReport {
    async fn report(&self, _: &Record, error: &ConnectError) -> Result<(), ConnectError> {
        Err(ConnectError::fatal(format!("unexpected report: {error}")))
    }
}

fn task(store: Arc<MemoryStore>, flush_size: usize) -> (S3SinkTask, Arc<Rewinds>) {
    task_with(store, flush_size, "json")
}

fn task_with(
    store: Arc<MemoryStore>,
    flush_size: usize,
    format: &str,
) -> (S3SinkTask, Arc<Rewinds>) {
    let raw: sluice_api::TaskConfig = [
        ("s3.bucket.name", "b"),
        ("flush.size", &flush_size.to_string()),
        ("format.class", format),
        ("s3.row.group.records", "10"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let rewinds = Arc::new(Rewinds::default());
    let context = SinkTaskContext {
        connector: "s3".into(),
        task_id: 0,
        config: raw.clone(),
        reporter: Arc::new(FailOnReport),
        rewinds: rewinds.clone(),
        metrics: sluice_api::TaskMetricsHandle::default(),
    };
    let config = S3SinkConfig::parse(&raw).expect("a valid config");
    let state = Writer::new(config, store, PutOptions::default(), &context);
    (
        S3SinkTask {
            writer: Some(state),
        },
        rewinds,
    )
}

fn records(partition: i32, offsets: std::ops::Range<i64>) -> Vec<Record> {
    offsets
        .map(|o| Record {
            topic: Arc::from("events"),
            partition: Some(partition),
            offset: Some(o),
            value: Value::String(format!("p{partition}-{o}")),
            ..Record::default()
        })
        .collect()
}

fn positions(partition: i32, next: i64) -> OffsetMap {
    OffsetMap::from([(TopicPartition::new("events", partition), next)])
}

/// Waits for the cuts finishing in the background, as a commit does.
async fn settle(task: &mut S3SinkTask) {
    task.pre_commit(&OffsetMap::new()).await.unwrap();
}

#[tokio::test]
async fn full_sets_are_written_under_their_first_offset_and_only_they_are_committed() {
    let store = Arc::new(MemoryStore::default());
    let (mut task, _) = task(store.clone(), 100);
    task.put(records(0, 0..250)).await.unwrap();
    settle(&mut task).await;
    assert_eq!(
        store.keys(),
        [
            "topics/events/partition=0/events+0+0000000000.json",
            "topics/events/partition=0/events+0+0000000100.json",
        ]
    );
    let first = store.get(&store.keys()[0]).await.unwrap().unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&first).unwrap().lines().collect();
    assert_eq!(lines.len(), 100);
    assert_eq!(lines[0], "\"p0-0\"");
    assert_eq!(lines[99], "\"p0-99\"");
    // Offsets 200..250 are still filling: the commit stops at 200.
    let safe = task.pre_commit(&positions(0, 250)).await.unwrap();
    assert_eq!(safe, positions(0, 200));
    // A partition with nothing filling commits where the consumer is.
    task.put(records(0, 250..300)).await.unwrap();
    let safe = task.pre_commit(&positions(0, 300)).await.unwrap();
    assert_eq!(safe, positions(0, 300));
    assert_eq!(store.keys().len(), 3);
}

#[tokio::test]
async fn a_batch_handed_over_again_is_not_written_twice() {
    let store = Arc::new(MemoryStore::default());
    let (mut task, _) = task(store.clone(), 100);
    task.put(records(1, 0..60)).await.unwrap();
    // The runtime retries a batch after a retriable failure: the records the
    // set already holds are skipped.
    task.put(records(1, 30..140)).await.unwrap();
    settle(&mut task).await;
    assert_eq!(
        store.keys(),
        ["topics/events/partition=1/events+1+0000000000.json"]
    );
    let object = store.get(&store.keys()[0]).await.unwrap().unwrap();
    assert_eq!(std::str::from_utf8(&object).unwrap().lines().count(), 100);
    let safe = task.pre_commit(&positions(1, 140)).await.unwrap();
    assert_eq!(safe, positions(1, 100));
}

#[tokio::test]
async fn a_failed_upload_rewinds_to_the_sets_first_offset_and_the_retry_writes_the_same_object() {
    let store = Arc::new(MemoryStore::default());
    let (mut task, rewinds) = task(store.clone(), 100);
    task.put(records(0, 0..100)).await.unwrap();
    task.put(records(0, 100..150)).await.unwrap();
    settle(&mut task).await;
    store
        .fail_puts
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // The full set is cut in the background; its failure surfaces at the
    // commit, which commits nothing and asks for the set again.
    task.put(records(0, 150..200)).await.unwrap();
    let err = task.pre_commit(&positions(0, 200)).await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
    assert_eq!(rewinds.take(), positions(0, 100));
    store
        .fail_puts
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // The runtime reads the partition again from the rewound offset.
    task.put(records(0, 100..200)).await.unwrap();
    settle(&mut task).await;
    assert_eq!(
        store.keys(),
        [
            "topics/events/partition=0/events+0+0000000000.json",
            "topics/events/partition=0/events+0+0000000100.json",
        ]
    );
}

#[tokio::test]
async fn a_cut_that_failed_in_the_background_fails_the_next_put_before_it_takes_anything() {
    let store = Arc::new(MemoryStore::default());
    let (mut task, rewinds) = task(store.clone(), 100);
    store
        .fail_puts
        .store(true, std::sync::atomic::Ordering::SeqCst);
    task.put(records(0, 0..130)).await.unwrap();
    // Other partitions' records wait until the failed cut is seen.
    let err = loop {
        match task.put(Vec::new()).await {
            Err(e) => break e,
            Ok(()) => tokio::task::yield_now().await,
        }
    };
    assert!(err.is_retriable(), "{err}");
    // The set filling after the failed one is dropped too: its records come
    // again after the failed cut's.
    assert_eq!(rewinds.take(), positions(0, 0));
    store
        .fail_puts
        .store(false, std::sync::atomic::Ordering::SeqCst);
    task.put(records(0, 0..130)).await.unwrap();
    settle(&mut task).await;
    assert_eq!(
        store.keys(),
        ["topics/events/partition=0/events+0+0000000000.json"]
    );
    let safe = task.pre_commit(&positions(0, 130)).await.unwrap();
    assert_eq!(safe, positions(0, 100));
}

/// Datagen-shaped JSON, as the runtime hands it to `put_json`.
fn json_records(partition: i32, offsets: std::ops::Range<i64>) -> Vec<Record> {
    offsets
        .map(|o| Record {
            topic: Arc::from("events"),
            partition: Some(partition),
            offset: Some(o),
            timestamp: Some(1_767_225_600_000 + o),
            value: Value::Bytes(
                format!(
                    r#"{{"event_id":"e-{o}","sequence":{o},"tenant_id":"t-{}","status":200,"latency_ms":{},"ok":{}}}"#,
                    o % 7,
                    o * 3 % 1000,
                    o % 2 == 0
                )
                .into_bytes(),
            ),
            ..Record::default()
        })
        .collect()
}

#[tokio::test]
async fn json_values_make_the_same_objects_as_decoded_records() {
    let (json_store, record_store) = (
        Arc::new(MemoryStore::default()),
        Arc::new(MemoryStore::default()),
    );
    let (mut json_task, _) = task_with(json_store.clone(), 25, "parquet");
    let (mut record_task, _) = task_with(record_store.clone(), 25, "parquet");
    assert!(json_task.takes_json_values());
    let input = json_records(3, 0..60);
    let decoded: Vec<Record> = input
        .iter()
        .cloned()
        .map(|mut r| {
            if let Value::Bytes(text) = &r.value {
                r.value = sluice_api::json::parse_schemaless_slice(text).unwrap();
            }
            r
        })
        .collect();
    json_task.put_json(input).await.unwrap();
    record_task.put(decoded).await.unwrap();
    let json_safe = json_task.pre_commit(&positions(3, 60)).await.unwrap();
    let record_safe = record_task.pre_commit(&positions(3, 60)).await.unwrap();
    assert_eq!(json_safe, positions(3, 50));
    assert_eq!(json_safe, record_safe);
    let keys = json_store.keys();
    assert_eq!(keys, record_store.keys());
    assert_eq!(keys.len(), 2);
    for key in keys {
        assert!(
            json_store.get(&key).await.unwrap() == record_store.get(&key).await.unwrap(),
            "{key}"
        );
    }
}

#[tokio::test]
async fn only_parquet_without_value_paths_takes_json() {
    let store = Arc::new(MemoryStore::default());
    assert!(!task_with(store.clone(), 10, "json").0.takes_json_values());
    assert!(task_with(store, 10, "parquet").0.takes_json_values());
}
