//! The REST control plane against a running worker and a real broker: every
//! endpoint, its status codes and error shapes; pause stops records and resume
//! moves them; a failed task restarts; a stopped sink's offsets are reset and
//! it reprocesses from there; REST changes survive a worker restart; the CLI;
//! TLS and authentication.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::*;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn json_of(r: Response) -> Value {
    let text = r.text().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts Connect's error shape and status; returns the message.
fn error_of(r: Response, status: StatusCode) -> String {
    assert_eq!(r.status(), status);
    let body = json_of(r);
    assert_eq!(body["error_code"], status.as_u16(), "{body}");
    body["message"].as_str().unwrap().to_owned()
}

fn numbers(out: &std::path::Path) -> Vec<i64> {
    read_jsonl(out)
        .iter()
        .map(|v| v["n"].as_i64().unwrap())
        .collect()
}

/// `PUT /connectors/{name}/{verb}` (pause, resume, stop), which Connect
/// accepts with 202, and 204 for stop.
fn set_state(http: &Client, base: &str, name: &str, verb: &str) {
    let r = http
        .put(format!("{base}/connectors/{name}/{verb}"))
        .send()
        .unwrap();
    let accepted = if verb == "stop" {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    };
    assert_eq!(r.status(), accepted, "{verb}");
}

fn task_states(w: &WorkerProcess, name: &str) -> Vec<String> {
    w.get(&format!("/connectors/{name}/status"))["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn connectors_lifecycle_over_rest() {
    let scratch = Scratch::new("rest");
    let mut config = worker_config(&scratch);
    config["config.providers"] = json!("env");
    config["config.providers.env.param.allowlist.pattern"] = json!("HOME");
    let worker = scratch.write_json("worker.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[]);
    let base = w.rest_url();
    let http = client();

    // Server info, health, the empty list.
    let info = w.get("/");
    assert!(info["version"].is_string() && info["commit"].is_string());
    assert!(info.get("kafka_cluster_id").is_some(), "{info}");
    let health = http.get(format!("{base}/health")).send().unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(w.get("/connectors"), json!([]));

    // Create a sink; records flow.
    let topic = unique("rest-in");
    let out = scratch.path("out.jsonl");
    let name = unique("sink");
    create_topic(&scratch, &topic, 1);
    produce_values(&topic, 0, &numbered_values(0, 100));
    let r = http
        .post(format!("{base}/connectors"))
        .json(&json!({"name": name, "config": file_sink(&topic, &out)}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("{base}/connectors/{name}")
    );
    let created = json_of(r);
    assert_eq!(created["name"], name.as_str());
    assert_eq!(created["type"], "sink");
    assert_eq!(created["tasks"], json!([{"connector": name, "task": 0}]));
    wait_for("100 records", Duration::from_secs(60), || {
        count_lines(&out) >= 100
    });
    assert_eq!(task_states(&w, &name), ["RUNNING"]);

    // Conflicts, bad configs, bad bodies, unknown names: Connect's error shapes.
    let again = http
        .post(format!("{base}/connectors"))
        .json(&json!({"name": name, "config": file_sink(&topic, &out)}))
        .send()
        .unwrap();
    error_of(again, StatusCode::CONFLICT);
    let mut bad = file_sink(&topic, &out);
    bad["tasks.max"] = json!("zero");
    let invalid = http
        .post(format!("{base}/connectors"))
        .json(&json!({"name": unique("bad"), "config": bad}))
        .send()
        .unwrap();
    let message = error_of(invalid, StatusCode::BAD_REQUEST);
    assert!(message.contains("tasks.max"), "{message}");
    let not_json = http
        .post(format!("{base}/connectors"))
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .unwrap();
    error_of(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let malformed = http
        .post(format!("{base}/connectors"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .unwrap();
    error_of(malformed, StatusCode::BAD_REQUEST);
    // The server closes a connection whose body it refused: use one of its own.
    let too_big = client()
        .put(format!("{base}/connectors/{name}/config"))
        .header("content-type", "application/json")
        .body(format!("{{\"x\": \"{}\"}}", "a".repeat(2 << 20)))
        .send()
        .unwrap();
    error_of(too_big, StatusCode::PAYLOAD_TOO_LARGE);
    let missing = http.get(format!("{base}/connectors/nope")).send().unwrap();
    assert!(error_of(missing, StatusCode::NOT_FOUND).contains("nope"));
    let no_task = http
        .get(format!("{base}/connectors/{name}/tasks/7/status"))
        .send()
        .unwrap();
    error_of(no_task, StatusCode::NOT_FOUND);
    error_of(
        http.get(format!("{base}/no/such/path")).send().unwrap(),
        StatusCode::NOT_FOUND,
    );

    // Pause: nothing moves. Resume: it does.
    set_state(&http, &base, &name, "pause");
    assert_eq!(
        w.get(&format!("/connectors/{name}/status"))["connector"]["state"],
        "PAUSED"
    );
    // The task reports PAUSED once it has stopped moving records.
    wait_for("the task to pause", Duration::from_secs(30), || {
        task_states(&w, &name) == ["PAUSED"]
    });
    produce_values(&topic, 0, &numbered_values(100, 150));
    // Absence cannot be waited for: give a running sink ample time to move them.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        count_lines(&out),
        100,
        "a paused connector moved records; log:\n{}",
        w.log_text()
    );
    set_state(&http, &base, &name, "resume");
    wait_for("150 records after resume", Duration::from_secs(60), || {
        count_lines(&out) >= 150
    });
    assert_eq!(numbers(&out), (0..150).collect::<Vec<_>>());

    // A plain restart restarts the connector instance: 204, as in Connect.
    let r = http
        .post(format!("{base}/connectors/{name}/restart"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // Reading: list with expansions, config, tasks, topics, plugins, metrics.
    let expanded = w.get("/connectors?expand=status&expand=info");
    assert_eq!(expanded[&name]["status"]["connector"]["state"], "RUNNING");
    assert_eq!(expanded[&name]["info"]["config"]["topics"], topic.as_str());
    assert_eq!(
        w.get(&format!("/connectors/{name}/config"))["topics"],
        topic.as_str()
    );
    let tasks = w.get(&format!("/connectors/{name}/tasks"));
    assert_eq!(tasks[0]["id"], json!({"connector": name, "task": 0}));
    assert_eq!(
        w.get(&format!("/connectors/{name}/tasks/0/status"))["state"],
        "RUNNING"
    );
    assert_eq!(
        w.get(&format!("/connectors/{name}/topics")),
        json!({ &name: {"topics": [&topic]} })
    );
    let r = http
        .put(format!("{base}/connectors/{name}/topics/reset"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        w.get(&format!("/connectors/{name}/topics")),
        json!({ &name: {"topics": []} })
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let line =
        format!("sluice_sink_task_records_sent_total{{connector=\"{name}\",task=\"0\"}} 150");
    assert!(metrics.contains(&line), "{line} missing from:\n{metrics}");

    // Offsets: only a stopped connector's can change; reset, then reprocess.
    let early = http
        .delete(format!("{base}/connectors/{name}/offsets"))
        .send()
        .unwrap();
    error_of(early, StatusCode::BAD_REQUEST);
    set_state(&http, &base, &name, "stop");
    let status = w.get(&format!("/connectors/{name}/status"));
    assert_eq!(status["connector"]["state"], "STOPPED");
    assert_eq!(status["tasks"], json!([]));
    let offsets = w.get(&format!("/connectors/{name}/offsets"));
    assert_eq!(
        offsets,
        json!({"offsets": [{"partition": {"kafka_topic": topic, "kafka_partition": 0}, "offset": {"kafka_offset": 150}}]})
    );
    let r = http
        .patch(format!("{base}/connectors/{name}/offsets"))
        .json(&json!({"offsets": [{"partition": {"kafka_topic": topic, "kafka_partition": 0}, "offset": {"kafka_offset": 120}}]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(json_of(r)["message"].as_str().unwrap().contains("altered"));
    assert_eq!(committed(&format!("connect-{name}"), &topic)[&0], 120);
    set_state(&http, &base, &name, "resume");
    wait_for("records 120..150 again", Duration::from_secs(60), || {
        count_lines(&out) >= 180
    });
    let expected: Vec<i64> = (0..150).chain(120..150).collect();
    assert_eq!(numbers(&out), expected);

    // DELETE forgets the offsets: the sink starts over from the beginning.
    set_state(&http, &base, &name, "stop");
    let r = http
        .delete(format!("{base}/connectors/{name}/offsets"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(json_of(r)["message"].as_str().unwrap().contains("reset"));
    let after = w.get(&format!("/connectors/{name}/offsets"));
    let reset_to = after["offsets"][0]["offset"]["kafka_offset"].as_i64();
    assert!(matches!(reset_to, None | Some(0)), "{after}");
    set_state(&http, &base, &name, "resume");
    wait_for("all 150 records again", Duration::from_secs(60), || {
        count_lines(&out) >= 330
    });
    let expected: Vec<i64> = (0..150).chain(120..150).chain(0..150).collect();
    assert_eq!(numbers(&out), expected);

    // PATCH merges (null removes), PUT replaces and keeps the target state.
    let r = http
        .patch(format!("{base}/connectors/{name}/config"))
        .json(&json!({"errors.log.enable": "true", "format": null}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let patched = json_of(r);
    assert_eq!(patched["config"]["errors.log.enable"], "true");
    assert!(patched["config"].get("format").is_none(), "{patched}");
    let mut replaced = file_sink(&topic, &out);
    replaced["name"] = json!(name);
    let r = http
        .put(format!("{base}/connectors/{name}/config"))
        .json(&replaced)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mismatch = http
        .put(format!("{base}/connectors/{name}/config"))
        .json(
            &json!({"name": "other", "connector.class": "file-sink", "topics": topic, "file": "x"}),
        )
        .send()
        .unwrap();
    error_of(mismatch, StatusCode::BAD_REQUEST);

    // Secrets are masked; provider references come back as written. STOPPED
    // as the initial state runs nothing.
    let secret = unique("secret");
    let mut config = file_sink(&topic, &scratch.path("never.jsonl"));
    config["consumer.override.sasl.password"] = json!("hunter2");
    config["consumer.override.client.rack"] = json!("${env:HOME}");
    let r = http
        .post(format!("{base}/connectors"))
        .json(&json!({"name": secret, "config": config, "initial_state": "STOPPED"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let shown = w.get(&format!("/connectors/{secret}/config"));
    assert_eq!(shown["consumer.override.sasl.password"], "[hidden]");
    assert_eq!(shown["consumer.override.client.rack"], "${env:HOME}");
    assert!(!w.log_text().contains("hunter2"));
    assert_eq!(
        w.get(&format!("/connectors/{secret}/status"))["connector"]["state"],
        "STOPPED"
    );

    // Loggers change at runtime.
    let loggers = w.get("/admin/loggers");
    assert!(loggers["root"]["level"].is_string(), "{loggers}");
    let r = http
        .put(format!("{base}/admin/loggers/sluice_runtime::sink"))
        .json(&json!({"level": "DEBUG"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The logger and those under it that have logged, each once.
    let changed = json_of(r);
    let changed: Vec<&str> = changed
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(changed.contains(&"sluice_runtime::sink"), "{changed:?}");
    assert!(
        changed
            .iter()
            .all(|n| *n == "sluice_runtime::sink" || n.starts_with("sluice_runtime::sink::")),
        "{changed:?}"
    );
    assert_eq!(
        w.get("/admin/loggers/sluice_runtime::sink")["level"],
        "DEBUG"
    );
    assert_eq!(
        w.get("/admin/loggers")["sluice_runtime::sink"]["level"],
        "DEBUG"
    );
    // Set again to the level it has: nothing changes, as in Connect.
    let again = http
        .put(format!("{base}/admin/loggers/sluice_runtime::sink"))
        .json(&json!({"level": "DEBUG"}))
        .send()
        .unwrap();
    assert_eq!(json_of(again), json!([]));
    // A logger nothing has logged through, nor set, is not found.
    let unknown = http
        .get(format!("{base}/admin/loggers/no_such_crate::module"))
        .send()
        .unwrap();
    assert!(error_of(unknown, StatusCode::NOT_FOUND).contains("no_such_crate::module"));
    let bad_level = http
        .put(format!("{base}/admin/loggers/root"))
        .json(&json!({"level": "LOUD"}))
        .send()
        .unwrap();
    error_of(bad_level, StatusCode::BAD_REQUEST);

    // Plugins, their definitions, and validation with every error at once.
    let plugins = w.get("/connector-plugins");
    assert!(plugins.as_array().unwrap().iter().any(|p| p["class"]
        == "org.apache.kafka.connect.file.FileStreamSinkConnector"
        && p["type"] == "sink"));
    assert!(!plugins.to_string().contains("transformation"));
    let all = w.get("/connector-plugins?connectorsOnly=false");
    assert!(all.to_string().contains("\"transformation\""), "{all}");
    let def = w.get("/connector-plugins/file-sink/config");
    assert!(def.as_array().unwrap().iter().any(|k| k["name"] == "file"));
    let r = http
        .put(format!("{base}/connector-plugins/file-sink/config/validate"))
        .json(&json!({"connector.class": "file-sink", "name": "v", "topics": topic, "tasks.max": "-1"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let validated = json_of(r);
    assert!(
        validated["error_count"].as_u64().unwrap() >= 2,
        "{validated}"
    );
    let errors_of = |key: &str| {
        validated["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["definition"]["name"] == key)
            .map(|c| c["value"]["errors"].as_array().unwrap().len())
            .unwrap_or(0)
    };
    assert!(
        errors_of("tasks.max") > 0 && errors_of("file") > 0,
        "{validated}"
    );

    // REST changes survive a restart: both connectors come back, in their state.
    assert!(w.terminate(Duration::from_secs(60)).success());
    let mut w = WorkerProcess::start(&scratch, &worker, &[]);
    let names = w.get("/connectors");
    let mut names: Vec<&str> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    names.sort();
    let mut want = vec![name.as_str(), secret.as_str()];
    want.sort();
    assert_eq!(names, want);
    assert_eq!(
        w.get(&format!("/connectors/{secret}/status"))["connector"]["state"],
        "STOPPED"
    );
    wait_for("the sink running again", Duration::from_secs(60), || {
        task_states(&w, &name) == ["RUNNING"]
    });

    // Delete.
    let base = w.rest_url();
    let r = http
        .delete(format!("{base}/connectors/{secret}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    error_of(
        http.get(format!("{base}/connectors/{secret}"))
            .send()
            .unwrap(),
        StatusCode::NOT_FOUND,
    );
    assert!(w.terminate(Duration::from_secs(60)).success());
}

/// A file sink of 20 records whose output path is a directory, so its task
/// fails until the directory is removed: (output path, connector name, the
/// connector's file).
fn blocked_file_sink(scratch: &Scratch) -> (std::path::PathBuf, String, std::path::PathBuf) {
    let topic = unique("rest-fail");
    create_topic(scratch, &topic, 1);
    produce_values(&topic, 0, &numbered_values(0, 20));
    let out = scratch.path("blocked.jsonl");
    std::fs::create_dir_all(&out).unwrap();
    let name = unique("fails");
    let file = scratch.write_json(
        "sink.json",
        &json!({"name": name, "config": file_sink(&topic, &out)}),
    );
    (out, name, file)
}

#[test]
fn a_failed_task_restarts_and_the_cli_drives_the_worker() {
    let scratch = Scratch::new("rest-restart");
    let mut config = worker_config(&scratch);
    // The task must stay FAILED until the REST restart this test makes.
    config["auto.restart.enable"] = json!(false);
    let worker = scratch.write_json("worker.json", &config);
    let (out, name, file) = blocked_file_sink(&scratch);
    let mut w = WorkerProcess::start(&scratch, &worker, &[]);
    let url = w.rest_url();
    let cli = |args: &[&str]| {
        let o = sluice().args(args).args(["--url", &url]).output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, _, err) = cli(&["connectors", "create", "-f", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    wait_for("the task to fail", Duration::from_secs(60), || {
        task_states(&w, &name) == ["FAILED"]
    });
    let status = w.get(&format!("/connectors/{name}/status"));
    assert!(
        status["tasks"][0]["trace"]
            .as_str()
            .unwrap()
            .contains("blocked.jsonl"),
        "{status}"
    );
    let (ok, table, _) = cli(&["connectors", "status", &name]);
    assert!(ok && table.contains("FAILED"), "{table}");

    // Fix the cause, restart only what failed.
    std::fs::remove_dir(&out).unwrap();
    let r = client()
        .post(format!(
            "{url}/connectors/{name}/restart?includeTasks=true&onlyFailed=true"
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(json_of(r)["tasks"][0]["state"], "RESTARTING");
    wait_for(
        "20 records after the restart",
        Duration::from_secs(60),
        || out.is_file() && count_lines(&out) >= 20,
    );
    assert_eq!(task_states(&w, &name), ["RUNNING"]);

    // The CLI: lists, pauses, shows JSON for scripts, reports errors.
    let (ok, json_out, err) = cli(&["connectors", "list", "--output", "json"]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(listed[&name]["status"]["connector"]["state"], "RUNNING");
    let (ok, _, err) = cli(&["connectors", "pause", &name]);
    assert!(ok, "{err}");
    wait_for("the task to pause", Duration::from_secs(30), || {
        task_states(&w, &name) == ["PAUSED"]
    });
    let (ok, _, err) = cli(&["connectors", "status", "nope"]);
    assert!(!ok && err.contains("404"), "{err}");
    let task_restart = client()
        .post(format!("{url}/connectors/{name}/tasks/0/restart"))
        .send()
        .unwrap();
    assert_eq!(task_restart.status(), StatusCode::NO_CONTENT);
    let (ok, table, err) = cli(&["plugins"]);
    assert!(
        ok && table.contains("FileStreamSinkConnector") && table.contains("transformation"),
        "{table}{err}"
    );
    let (ok, _, err) = cli(&["connectors", "delete", &name]);
    assert!(ok, "{err}");
    assert!(w.terminate(Duration::from_secs(60)).success());
}

#[test]
fn tls_and_authentication() {
    let scratch = Scratch::new("rest-tls");
    // A CA and a server certificate it signed, for 127.0.0.1.
    let (ca, ca_key) = (scratch.path("ca.pem"), scratch.path("ca.key"));
    let (cert, key, csr) = (
        scratch.path("cert.pem"),
        scratch.path("key.pem"),
        scratch.path("cert.csr"),
    );
    let ext = scratch.path("san.ext");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").unwrap();
    let openssl = |args: &[&std::ffi::OsStr]| {
        let made = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
    };
    let s = |v: &'static str| std::ffi::OsStr::new(v);
    openssl(&[
        s("req"),
        s("-x509"),
        s("-newkey"),
        s("rsa:2048"),
        s("-nodes"),
        s("-days"),
        s("1"),
        s("-subj"),
        s("/CN=sluice-test-ca"),
        s("-keyout"),
        ca_key.as_os_str(),
        s("-out"),
        ca.as_os_str(),
    ]);
    openssl(&[
        s("req"),
        s("-newkey"),
        s("rsa:2048"),
        s("-nodes"),
        s("-subj"),
        s("/CN=127.0.0.1"),
        s("-keyout"),
        key.as_os_str(),
        s("-out"),
        csr.as_os_str(),
    ]);
    openssl(&[
        s("x509"),
        s("-req"),
        s("-in"),
        csr.as_os_str(),
        s("-CA"),
        ca.as_os_str(),
        s("-CAkey"),
        ca_key.as_os_str(),
        s("-CAcreateserial"),
        s("-days"),
        s("1"),
        s("-extfile"),
        ext.as_os_str(),
        s("-out"),
        cert.as_os_str(),
    ]);
    let users = scratch.path("users.txt");
    std::fs::write(&users, "# user: password\nadmin: s3cret\n").unwrap();
    let tokens = scratch.path("tokens.txt");
    std::fs::write(&tokens, "tok-123\n").unwrap();
    let mut config = worker_config(&scratch);
    config["listeners"] = json!("https://127.0.0.1:0");
    config["listeners.https.ssl.certificate.location"] = json!(cert.display().to_string());
    config["listeners.https.ssl.key.location"] = json!(key.display().to_string());
    config["rest.auth.basic.credentials.file"] = json!(users.display().to_string());
    config["rest.auth.bearer.tokens.file"] = json!(tokens.display().to_string());
    let worker = scratch.write_json("worker.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[]);
    let url = w.rest_url();
    assert!(url.starts_with("https://"), "{url}");
    let pem = std::fs::read(&ca).unwrap();
    let http = Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    let health = http.get(format!("{url}/health")).send().unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let anonymous = http.get(format!("{url}/connectors")).send().unwrap();
    assert!(anonymous.headers().contains_key("www-authenticate"));
    error_of(anonymous, StatusCode::UNAUTHORIZED);
    let wrong = http
        .get(format!("{url}/connectors"))
        .basic_auth("admin", Some("nope"))
        .send()
        .unwrap();
    error_of(wrong, StatusCode::UNAUTHORIZED);
    let basic = http
        .get(format!("{url}/connectors"))
        .basic_auth("admin", Some("s3cret"))
        .send()
        .unwrap();
    assert_eq!(basic.status(), StatusCode::OK);
    let bearer = http
        .get(format!("{url}/connectors"))
        .bearer_auth("tok-123")
        .send()
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);
    // Plain HTTP to an HTTPS listener gets nothing.
    let plain = client()
        .get(url.replace("https://", "http://") + "/connectors")
        .send();
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    let log = w.log_text();
    assert!(!log.contains("s3cret") && !log.contains("tok-123"));
    assert!(w.terminate(Duration::from_secs(60)).success());
}

#[test]
fn a_bad_listener_is_a_clear_startup_error() {
    let scratch = Scratch::new("rest-bad");
    let mut config = worker_config(&scratch);
    config["listeners"] = json!("ftp://127.0.0.1:0");
    let worker = scratch.write_json("worker.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[]);
    assert!(!w.wait_exit(Duration::from_secs(60)).success());
    let log = w.log_text();
    assert!(
        log.contains("'listeners'") && !log.contains("panicked"),
        "{log}"
    );
}

#[test]
fn a_paused_source_produces_nothing_until_resumed() {
    let scratch = Scratch::new("rest-source");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut w = WorkerProcess::start(&scratch, &worker, &[]);
    let base = w.rest_url();
    let http = client();
    let (name, topic) = (unique("gen"), unique("rest-gen"));
    let r = http
        .post(format!("{base}/connectors"))
        .json(&json!({"name": name, "config": {
            "connector.class": "datagen",
            "kafka.topic": topic,
            "max.records": 1_000_000,
            "records.per.second": 500,
            "batch.size": 50,
            "topic.creation.default.partitions": 2
        }}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    wait_for("records to flow", Duration::from_secs(60), || {
        topic_count(&topic) >= 200
    });
    set_state(&http, &base, &name, "pause");
    wait_for("the task to pause", Duration::from_secs(30), || {
        task_states(&w, &name) == ["PAUSED"]
    });
    let paused_at = topic_count(&topic);
    // Absence cannot be waited for: at 500/s, 2 s would add about 1,000.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(topic_count(&topic), paused_at, "a paused source produced");
    set_state(&http, &base, &name, "resume");
    wait_for("records to flow again", Duration::from_secs(60), || {
        topic_count(&topic) >= paused_at + 200
    });
    assert_eq!(task_states(&w, &name), ["RUNNING"]);

    // A stopped source's offsets: its own partitions; rewinding them replays
    // records that idempotent resume then skips, so nothing is doubled.
    set_state(&http, &base, &name, "stop");
    let offsets = w.get(&format!("/connectors/{name}/offsets"));
    let entry = &offsets["offsets"][0];
    assert_eq!(
        entry["partition"],
        json!({"generator": "datagen", "task": 0})
    );
    let seq = entry["offset"]["seq"].as_i64().unwrap();
    assert_eq!(seq + 1, topic_count(&topic), "{offsets}");
    let r = http
        .patch(format!("{base}/connectors/{name}/offsets"))
        .json(&json!({"offsets": [{"partition": entry["partition"], "offset": {"seq": 99}}]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        w.get(&format!("/connectors/{name}/offsets"))["offsets"][0]["offset"]["seq"],
        99
    );
    set_state(&http, &base, &name, "resume");
    wait_for("records past the rewind", Duration::from_secs(60), || {
        topic_count(&topic) >= seq + 1 + 100
    });
    set_state(&http, &base, &name, "stop");
    let records = read_topic(&topic);
    let mut positions: Vec<&String> = records
        .iter()
        .map(|r| &r.headers["__sluice.position"])
        .collect();
    let total = positions.len();
    positions.sort();
    positions.dedup();
    assert_eq!(positions.len(), total, "a rewound source doubled records");

    // DELETE forgets them.
    let r = http
        .delete(format!("{base}/connectors/{name}/offsets"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        w.get(&format!("/connectors/{name}/offsets")),
        json!({"offsets": []})
    );
    assert!(w.terminate(Duration::from_secs(60)).success());
}

#[test]
fn a_file_connector_is_stored_only_once_changed_over_rest() {
    let scratch = Scratch::new("rest-files");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let topic = unique("rest-file");
    create_topic(&scratch, &topic, 1);
    let name = unique("from-file");
    let file = scratch.write_json(
        "sink.json",
        &json!({"name": name, "config": file_sink(&topic, &scratch.path("out.jsonl"))}),
    );
    let mut w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&file));
    assert_eq!(w.get("/connectors"), json!([&name]));
    assert!(w.terminate(Duration::from_secs(60)).success());
    // Without its file it is gone: the file alone defines it.
    let mut w = WorkerProcess::start(&scratch, &worker, &[]);
    assert_eq!(w.get("/connectors"), json!([]));
    assert!(w.terminate(Duration::from_secs(60)).success());
    // Paused over REST, it is kept, paused, even without its file.
    let mut w = WorkerProcess::start(&scratch, &worker, std::slice::from_ref(&file));
    set_state(&client(), &w.rest_url(), &name, "pause");
    assert!(w.terminate(Duration::from_secs(60)).success());
    let mut w = WorkerProcess::start(&scratch, &worker, &[]);
    assert_eq!(
        w.get(&format!("/connectors/{name}/status"))["connector"]["state"],
        "PAUSED"
    );
    assert!(w.terminate(Duration::from_secs(60)).success());
}

#[test]
fn a_failed_task_restarts_by_itself_once_the_cause_is_gone() {
    let scratch = Scratch::new("rest-heal");
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let (out, name, file) = blocked_file_sink(&scratch);
    let mut w = WorkerProcess::start(&scratch, &worker, &[file]);
    let restarts = format!("sluice_task_auto_restarts{{connector=\"{name}\",task=\"0\"}} ");
    wait_for("two automatic restarts", Duration::from_secs(60), || {
        w.metric(&restarts) >= 2
    });
    assert!(w.log_text().contains("restarting the FAILED task"));
    std::fs::remove_dir(&out).unwrap();
    // No REST call: the next automatic restart finds the cause gone.
    wait_for("20 records", Duration::from_secs(60), || {
        out.is_file() && count_lines(&out) >= 20
    });
    assert_eq!(task_states(&w, &name), ["RUNNING"]);
    assert_eq!(numbers(&out), (0..20).collect::<Vec<i64>>());
    assert!(w.terminate(Duration::from_secs(60)).success());
}

/// Requests a hostile client might send: each is a 4xx naming what is wrong,
/// and the worker goes on serving.
#[test]
fn hostile_requests_are_refused_and_the_worker_goes_on() {
    let scratch = Scratch::new("rest-hostile");
    let mut config = worker_config(&scratch);
    config["worker.tasks.limit"] = json!(300);
    let worker = scratch.write_json("worker.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[]);
    let base = w.rest_url();
    let http = client();
    let topic = unique("hostile");
    create_topic(&scratch, &topic, 1);
    let create = |name: &str, config: Value| {
        http.post(format!("{base}/connectors"))
            .json(&json!({"name": name, "config": config}))
            .send()
            .unwrap()
    };

    // A million tasks: refused before anything is stored or started.
    let mut huge = file_sink(&topic, &scratch.path("huge.jsonl"));
    huge["tasks.max"] = json!(1_000_000);
    let m = error_of(create("huge", huge), StatusCode::BAD_REQUEST);
    assert!(
        m.contains("tasks.max") && m.contains("tasks.max.limit"),
        "{m}"
    );
    // Within the per-connector limit, but past the worker's together.
    let mut many = file_sink(&topic, &scratch.path("many.jsonl"));
    many["tasks.max"] = json!(200);
    assert_eq!(create("many-1", many.clone()).status(), StatusCode::CREATED);
    let m = error_of(create("many-2", many), StatusCode::BAD_REQUEST);
    assert!(m.contains("worker.tasks.limit"), "{m}");
    assert_eq!(w.get("/connectors"), json!(["many-1"]));

    // Names that could forge log lines or break C clients.
    for bad in ["two\nlines", "nul\u{0}byte", "tab\there", "  "] {
        let m = error_of(
            create(bad, file_sink(&topic, &scratch.path("x.jsonl"))),
            StatusCode::BAD_REQUEST,
        );
        assert!(m.contains("Connector name"), "{bad:?}: {m}");
    }
    let r = http
        .put(format!("{base}/connectors/a%0Ab/config"))
        .json(&file_sink(&topic, &scratch.path("x.jsonl")))
        .send()
        .unwrap();
    error_of(r, StatusCode::BAD_REQUEST);
    let r = http
        .post(format!("{base}/dlq/{topic}/replay"))
        .json(&json!({"to": "nul\u{0}topic"}))
        .send()
        .unwrap();
    let m = error_of(r, StatusCode::BAD_REQUEST);
    assert!(m.contains("not a valid topic name"), "{m}");
    let r = http
        .post(format!("{base}/dlq/bad%00topic/replay"))
        .send()
        .unwrap();
    error_of(r, StatusCode::BAD_REQUEST);

    // Config providers the worker did not declare cannot read its files or
    // its environment.
    for (key, reference) in [
        ("topics", "${file:/etc/os-release:ID}"),
        ("file", "${env:HOME}"),
    ] {
        let mut c = file_sink(&topic, &scratch.path("p.jsonl"));
        c[key] = json!(reference);
        let m = error_of(create("provider", c), StatusCode::BAD_REQUEST);
        assert!(
            m.contains(&format!("'{key}'")) && m.contains("not enabled"),
            "{m}"
        );
    }

    // A password that only contains "${" is still a password.
    let name = unique("secret");
    let mut c = file_sink(&topic, &scratch.path("s.jsonl"));
    c["consumer.override.sasl.password"] = json!("abc${x}def");
    assert_eq!(create(&name, c).status(), StatusCode::CREATED);
    let views = [
        w.get(&format!("/connectors/{name}/config")).to_string(),
        w.get(&format!("/connectors/{name}")).to_string(),
        w.get(&format!("/connectors/{name}/tasks")).to_string(),
        w.get("/connectors?expand=info").to_string(),
    ];
    for v in &views {
        assert!(!v.contains("abc${x}def"), "{v}");
    }
    assert!(views[0].contains("[hidden]"), "{}", views[0]);
    let cli = sluice()
        .args(["connectors", "get", &name, "--url", &base])
        .output()
        .unwrap();
    assert!(cli.status.success());
    assert!(!String::from_utf8_lossy(&cli.stdout).contains("abc${x}def"));
    assert!(!w.log_text().contains("abc${x}def"));
    // The stored configs hold it in clear, so only the worker's user reads them.
    let stored = scratch.path("offsets.connectors.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&stored).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    assert_eq!(w.get("/connectors").as_array().unwrap().len(), 2);
    assert!(w.terminate(Duration::from_secs(60)).success());
}

/// A stored connector this worker will not run (here, more tasks than its new
/// limit) leaves the worker serving, shows FAILED with the reason, and can be
/// deleted.
#[test]
fn a_stored_connector_that_cannot_start_can_still_be_deleted() {
    let scratch = Scratch::new("rest-unstartable");
    let topic = unique("unstartable");
    create_topic(&scratch, &topic, 1);
    let worker = scratch.write_json("worker.json", &worker_config(&scratch));
    let mut w = WorkerProcess::start(&scratch, &worker, &[]);
    let name = unique("wide");
    let mut c = file_sink(&topic, &scratch.path("wide.jsonl"));
    c["tasks.max"] = json!(8);
    let r = client()
        .post(format!("{}/connectors", w.rest_url()))
        .json(&json!({"name": name, "config": c}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(w.terminate(Duration::from_secs(60)).success());

    let mut config = worker_config(&scratch);
    config["tasks.max.limit"] = json!(4);
    let worker = scratch.write_json("worker.json", &config);
    let mut w = WorkerProcess::start(&scratch, &worker, &[]);
    let status = w.get(&format!("/connectors/{name}/status"));
    assert_eq!(status["connector"]["state"], "FAILED", "{status}");
    assert!(
        status["connector"]["trace"]
            .as_str()
            .unwrap()
            .contains("tasks.max"),
        "{status}"
    );
    let r = client()
        .delete(format!("{}/connectors/{name}", w.rest_url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(w.get("/connectors"), json!([]));
    assert!(w.terminate(Duration::from_secs(60)).success());
}
