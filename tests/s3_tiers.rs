//! The S3 sink's archive and audit tiers against moto, which implements the
//! lifecycle and Object Lock APIs that s3s-fs lacks; and `sluice audit verify`.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

fn fill(topic: &str, partitions: &[(i32, i64)]) {
    for (p, n) in partitions {
        let values: Vec<Vec<u8>> = (0..*n)
            .map(|i| json!({"n": i, "p": p}).to_string().into_bytes())
            .collect();
        produce_keyed(topic, *p, Some("k"), &values);
    }
}

fn sink(name: &str, topic: &str, bucket: &str, endpoint: &str, tier: &str) -> serde_json::Value {
    json!({"name": name, "config": {
        "connector.class": "s3-sink", "topics": topic, "s3.bucket.name": bucket, "store.url": endpoint,
        "aws.access.key.id": "test", "aws.secret.access.key": "test",
        "flush.size": 100, "format.class": "parquet",
        "value.converter": "json", "value.converter.schemas.enable": false,
        "s3.tier": tier
    }})
}

fn wait_failed(w: &mut WorkerProcess) -> (bool, String) {
    let status = w.wait_failed(Duration::from_secs(60));
    (status.success(), w.log_text())
}

fn verify(bucket: &str, prefix: &str) -> (bool, String) {
    let out = sluice()
        .args([
            "audit",
            "verify",
            "--bucket",
            bucket,
            "--prefix",
            prefix,
            "--store-url",
            moto(),
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn archive_tier_sets_its_lifecycle_rule() {
    let scratch = Scratch::new("archive");
    let topic = unique("usage");
    let bucket = unique("archive").to_lowercase();
    boto(&format!("s3.create_bucket(Bucket='{bucket}')"));
    create_topic(&scratch, &topic, 1);
    fill(&topic, &[(0, 200)]);
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut config = sink(&unique("s3"), &topic, &bucket, moto(), "archive");
    config["config"]["s3.retention.days"] = json!(90);
    let c = scratch.write_json("sink.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    wait_for("two objects", Duration::from_secs(60), || {
        boto(&format!(
            "print(s3.list_objects_v2(Bucket='{bucket}', Prefix='topics/').get('KeyCount', 0))"
        ))
        .trim()
            == "2"
    });
    w.stop_cleanly();
    let rules = boto(&format!(
        "print(json.dumps(s3.get_bucket_lifecycle_configuration(Bucket='{bucket}')['Rules']))"
    ));
    let rules: serde_json::Value = serde_json::from_str(&rules).unwrap();
    assert_eq!(rules[0]["ID"], "sluice-archive-topics");
    assert_eq!(rules[0]["Filter"]["Prefix"], "topics/");
    assert_eq!(rules[0]["Expiration"]["Days"], 90);
    assert_eq!(rules[0]["Status"], "Enabled");

    // s3s-fs has no lifecycle API: the archive tier says so instead of pretending.
    let plain = unique("nolifecycle").to_lowercase();
    s3().create_bucket(&plain);
    let mut config = sink(&unique("s3"), &topic, &plain, &s3().endpoint, "archive");
    config["config"]["aws.access.key.id"] = json!(s3().access_key);
    config["config"]["aws.secret.access.key"] = json!(s3().secret_key);
    let c = scratch.write_json("sink2.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    let (ok, log) = wait_failed(&mut w);
    assert!(!ok);
    assert!(log.contains("lifecycle"), "{log}");
}

#[test]
fn audit_tier_locks_objects_chains_manifests_and_verify_finds_tampering() {
    let scratch = Scratch::new("audit");
    let topic = unique("usage");
    let bucket = unique("audit").to_lowercase();
    boto(&format!(
        "s3.create_bucket(Bucket='{bucket}', ObjectLockEnabledForBucket=True)"
    ));
    create_topic(&scratch, &topic, 2);
    fill(&topic, &[(0, 500), (1, 300)]);
    let name = unique("s3");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let c = scratch.write_json("sink.json", &sink(&name, &topic, &bucket, moto(), "audit"));
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    let prefix = format!("topics/{topic}/");
    let count = || -> usize {
        boto(&format!(
            "print(s3.list_objects_v2(Bucket='{bucket}', Prefix='{prefix}').get('KeyCount', 0))"
        ))
        .trim()
        .parse()
        .unwrap()
    };
    wait_for("8 objects and 8 manifests", Duration::from_secs(90), || {
        count() >= 16
    });
    wait_for("offsets committed", Duration::from_secs(30), || {
        let c = committed(&format!("connect-{name}"), &topic);
        c.get(&0) == Some(&500) && c.get(&1) == Some(&300)
    });
    w.stop_cleanly();

    let data_key = format!("{prefix}partition=0/{topic}+0+0000000200.snappy.parquet");
    let head = boto(&format!(
        "h = s3.head_object(Bucket='{bucket}', Key='{data_key}', ChecksumMode='ENABLED')\nprint(h['ObjectLockMode'], h['ObjectLockRetainUntilDate'].year - datetime.date.today().year, bool(h.get('ChecksumSHA256')))"
    ));
    assert_eq!(
        head.trim(),
        "COMPLIANCE 7 True",
        "retention of about 2555 days, with a checksum"
    );

    let (ok, out) = verify(&bucket, &prefix);
    assert!(ok, "{out}");
    assert!(
        out.contains("partition=0: 5 files, offsets 0..=499"),
        "{out}"
    );
    assert!(
        out.contains("partition=1: 3 files, offsets 0..=299"),
        "{out}"
    );

    // Tamper with an object: a new version becomes the current one.
    let version = boto(&format!(
        "print(s3.put_object(Bucket='{bucket}', Key='{data_key}', Body=b'forged')['VersionId'])"
    ));
    let (ok, out) = verify(&bucket, &prefix);
    assert!(!ok);
    assert!(
        out.contains(&format!("object '{data_key}' does not match its manifest")),
        "{out}"
    );
    // Remove the forgery (it is not locked); the locked original is current again.
    boto(&format!(
        "s3.delete_object(Bucket='{bucket}', Key='{data_key}', VersionId='{}')",
        version.trim()
    ));
    assert!(
        verify(&bucket, &prefix).0,
        "verifies again once the forgery is gone"
    );

    // Delete a manifest (a delete marker: the locked version stays, but is hidden).
    let manifest =
        format!("{prefix}partition=1/_manifests/{topic}+1+0000000100.snappy.parquet.manifest.json");
    boto(&format!(
        "s3.delete_object(Bucket='{bucket}', Key='{manifest}')"
    ));
    let (ok, out) = verify(&bucket, &prefix);
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "{topic}+1+0000000100.snappy.parquet' has no manifest"
        )),
        "{out}"
    );
}

#[test]
fn audit_tier_refuses_a_bucket_without_object_lock() {
    let scratch = Scratch::new("audit-nolock");
    let topic = unique("usage");
    let bucket = unique("nolock").to_lowercase();
    boto(&format!("s3.create_bucket(Bucket='{bucket}')"));
    create_topic(&scratch, &topic, 1);
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let c = scratch.write_json(
        "sink.json",
        &sink(&unique("s3"), &topic, &bucket, moto(), "audit"),
    );
    let mut w = WorkerProcess::start(&scratch, &worker, &[c]);
    let (ok, log) = wait_failed(&mut w);
    assert!(!ok);
    assert!(
        log.contains(&format!("bucket '{bucket}' has no Object Lock")),
        "{log}"
    );
}
