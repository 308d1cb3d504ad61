//! The REST API beside Kafka Connect's own: one scripted sequence of calls
//! (create, conflicts, status, tasks, topics, pause/resume/stop, restarts,
//! offsets while running and while stopped, config changes, validation,
//! plugins, loggers, unknown names, bad bodies, delete) goes to the reference
//! Kafka Connect 4.3 worker and to a sluice worker, both running Connect's own
//! `FileStreamSinkConnector` config on the same broker. Per call: the status
//! codes are equal, the JSON shapes are equal (same keys, recursively, same
//! JSON types), values are equal where they are deterministic (names, states,
//! task ids, config values; not worker ids, traces or versions), and errors are
//! `{"error_code", "message"}` on both sides.
//!
//! Where sluice answers differently on purpose, `INTENDED` says how and why;
//! such a call must differ exactly as written there, so a difference that
//! disappears or changes fails the test as surely as a new one.

// A test binary: a panic is a failed test (clippy.toml allows these in
// #[test] functions; this covers the helpers beside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test is one scenario, read top to bottom"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};
use support::*;

/// A difference sluice makes on purpose: the call (its label in the script),
/// how the answers differ, and why sluice's answer is the better one.
struct Intended {
    call: &'static str,
    differs: Differs,
    why: &'static str,
}

enum Differs {
    /// The status codes, Connect's and sluice's; sluice's body is an error
    /// of Connect's form.
    Status(u16, u16),
    /// The statuses are equal, and this is the one difference found.
    Only(&'static str),
}

const FILE_REQUIRED: &str = "sluice's file sink needs `file`: it writes only to a file, which it repairs after a crash and syncs at each commit; Connect's FileStreamSink falls back to the worker's stdout";

/// Kept in step with the README's REST section.
const INTENDED: &[Intended] = &[
    Intended {
        call: "POST /connectors, malformed JSON",
        differs: Differs::Status(500, 400),
        why: "a body that is not valid JSON is the client's mistake, not a server failure",
    },
    Intended {
        call: "POST /connectors, a JSON array",
        differs: Differs::Status(500, 400),
        why: "a body of the wrong JSON type is the client's mistake",
    },
    Intended {
        call: "POST /connectors, no config",
        differs: Differs::Status(500, 400),
        why: "Connect fails on a null config (NullPointerException); sluice says 'config' is missing",
    },
    Intended {
        call: "POST /connectors, unknown field",
        differs: Differs::Status(500, 400),
        why: "an unknown field (a misspelt initial_state) is refused as Connect refuses it, as the client's mistake",
    },
    Intended {
        call: "PUT config, a JSON array",
        differs: Differs::Status(500, 400),
        why: "a config that is not a JSON object is the client's mistake",
    },
    Intended {
        call: "PATCH config, not JSON",
        differs: Differs::Status(500, 400),
        why: "a body that is not valid JSON is the client's mistake",
    },
    Intended {
        call: "PUT validate, unknown plugin",
        differs: Differs::Status(500, 404),
        why: "Connect wraps its own BadRequestException in a 500; sluice answers 404 as Connect's GET of the same plugin's config does",
    },
    Intended {
        call: "PUT validate",
        differs: Differs::Only("file/definition/required: Connect false, sluice true"),
        why: FILE_REQUIRED,
    },
    Intended {
        call: "PUT validate, with errors",
        differs: Differs::Only("file/definition/required: Connect false, sluice true"),
        why: FILE_REQUIRED,
    },
    Intended {
        call: "GET plugin config",
        differs: Differs::Only("file/required: Connect false, sluice true"),
        why: FILE_REQUIRED,
    },
    Intended {
        call: "PUT logger, unknown level",
        differs: Differs::Status(404, 400),
        why: "the logger exists; what is wrong is the level the body asks for",
    },
    Intended {
        call: "POST restart, unknown connector",
        differs: Differs::Status(500, 404),
        why: "Connect fails on the missing config (NullPointerException); sluice says the connector is not found, as every other call on it does",
    },
    Intended {
        call: "GET tasks/9/status after restarting it",
        differs: Differs::Status(200, 404),
        why: "Connect's restart of a task that does not exist records it as FAILED (a NullPointerException) and lists it in the connector's status from then on; sluice's restart changes nothing",
    },
];

/// Keys whose values differ between two correct workers (who runs it, which
/// version, a stack trace, a clock): compared by JSON type only.
const VOLATILE: [&str; 6] = [
    "worker_id",
    "trace",
    "version",
    "commit",
    "last_modified",
    "documentation",
];

/// How much of two successful answers must agree, beyond the status code.
#[derive(Clone, Copy)]
enum Check {
    /// Shapes, and every value but the volatile ones.
    Equal,
    /// Shapes only (the answer lists things each worker has its own of).
    Shape,
    /// Shapes, and what the function checks of the two normalized bodies
    /// (Connect's first).
    With(fn(&Value, &Value) -> Result<(), String>),
    /// Only what the function checks: the answer's keys are each worker's own
    /// (connector names, logger names), so its shape is not compared whole.
    Own(fn(&Value, &Value) -> Result<(), String>),
}

enum Body {
    None,
    Json(Value),
    /// A content type and a text sent as it is.
    Raw(&'static str, &'static str),
}

struct Call {
    label: &'static str,
    method: Method,
    /// `{name}`, `{logger}` are each worker's own.
    path: &'static str,
    body: Body,
    check: Check,
}

/// A condition to wait for on both workers before the next call, so that
/// both have got as far (a task RUNNING, records written, offsets committed).
struct Settle {
    what: &'static str,
    done: Box<dyn Fn(&Side) -> bool>,
}

enum Step {
    Call(Call),
    Settle(Settle),
}

fn call(label: &'static str, method: Method, path: &'static str, check: Check) -> Step {
    Step::Call(Call {
        label,
        method,
        path,
        body: Body::None,
        check,
    })
}

fn call_json(
    label: &'static str,
    method: Method,
    path: &'static str,
    body: Value,
    check: Check,
) -> Step {
    Step::Call(Call {
        label,
        method,
        path,
        body: Body::Json(body),
        check,
    })
}

fn call_raw(
    label: &'static str,
    method: Method,
    path: &'static str,
    content_type: &'static str,
    text: &'static str,
) -> Step {
    Step::Call(Call {
        label,
        method,
        path,
        body: Body::Raw(content_type, text),
        check: Check::Equal,
    })
}

fn settle(what: &'static str, done: impl Fn(&Side) -> bool + 'static) -> Step {
    Step::Settle(Settle {
        what,
        done: Box::new(done),
    })
}

/// One of the two workers, with what is its own in the script.
struct Side {
    label: &'static str,
    base: String,
    http: Client,
    name: String,
    file: std::path::PathBuf,
    /// A logger this worker has, with nothing under it: a Java class for
    /// Connect, a `tracing` target (a module without submodules) for sluice.
    logger: &'static str,
}

/// An answer, normalized: this worker's own names read as `{name}`, `{file}`,
/// `{logger}` and `{base}`.
#[derive(Debug)]
struct Answer {
    status: u16,
    json_content: bool,
    location: Option<String>,
    /// `Null` for an empty body; a body that is not JSON is kept as a string.
    body: Value,
    parsed: bool,
}

impl Side {
    fn substitutions(&self) -> [(String, &'static str); 4] {
        [
            (self.base.clone(), "{base}"),
            (self.file.display().to_string(), "{file}"),
            (self.name.clone(), "{name}"),
            (self.logger.to_owned(), "{logger}"),
        ]
    }

    fn fill(&self, text: &str) -> String {
        text.replace("{name}", &self.name)
            .replace("{file}", &self.file.display().to_string())
            .replace("{logger}", self.logger)
    }

    fn fill_json(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.fill(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.fill_json(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| (self.fill(k), self.fill_json(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn normalize_text(&self, text: &str) -> String {
        self.substitutions()
            .iter()
            .fold(text.to_owned(), |t, (own, placeholder)| {
                t.replace(own.as_str(), placeholder)
            })
    }

    fn normalize(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.normalize_text(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.normalize(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| (self.normalize_text(k), self.normalize(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn send(&self, method: Method, path: &str, body: &Body) -> Answer {
        let url = format!("{}{}", self.base, self.fill(path));
        let mut request = self.http.request(method.clone(), &url);
        request = match body {
            Body::None => request,
            Body::Json(v) => request.json(&self.fill_json(v)),
            Body::Raw(content_type, text) => request
                .header("content-type", *content_type)
                .body(self.fill(text)),
        };
        let response = request
            .send()
            .unwrap_or_else(|e| panic!("{} {method} {url}: {e}", self.label));
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        };
        let json_content = header("content-type").is_some_and(|c| c.contains("json"));
        let location = header("location").map(|l| self.normalize_text(&l));
        let text = response.text().unwrap_or_default();
        let (body, parsed) = if text.is_empty() {
            (Value::Null, true)
        } else {
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => (self.normalize(&v), true),
                Err(_) => (Value::String(text), false),
            }
        };
        Answer {
            status,
            json_content,
            location,
            body,
            parsed,
        }
    }

    /// `GET path` as JSON, or `Null` when it cannot be had (yet).
    fn get(&self, path: &str) -> Value {
        let answer = self.send(Method::GET, path, &Body::None);
        if answer.status == 200 {
            answer.body
        } else {
            Value::Null
        }
    }

    fn task_states(&self) -> Vec<String> {
        self.get("/connectors/{name}/status")["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["state"].as_str().map(str::to_owned))
            .collect()
    }

    fn connector_state(&self) -> String {
        self.get("/connectors/{name}/status")["connector"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Where two JSON values differ in shape (keys and JSON types) or, with
/// `values`, in value; volatile keys only by type. Null stands for any type in
/// a shape (Connect's nullable fields), an empty array for any array.
fn differences(path: &str, connect: &Value, sluice: &Value, values: bool, out: &mut Vec<String>) {
    match (connect, sluice) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: BTreeSet<&String> = a.keys().collect();
            let kb: BTreeSet<&String> = b.keys().collect();
            for k in ka.difference(&kb) {
                out.push(format!("{path}/{k}: only Connect has it ({})", a[*k]));
            }
            for k in kb.difference(&ka) {
                out.push(format!("{path}/{k}: only sluice has it ({})", b[*k]));
            }
            for k in ka.intersection(&kb) {
                let volatile = VOLATILE.contains(&k.as_str());
                differences(
                    &format!("{path}/{k}"),
                    &a[*k],
                    &b[*k],
                    values && !volatile,
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if values => {
            if a.len() != b.len() {
                out.push(format!(
                    "{path}: {} elements in Connect's, {} in sluice's",
                    a.len(),
                    b.len()
                ));
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(&format!("{path}/{i}"), x, y, true, out);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            // Every element of each has the shape of some element of the other.
            let fits = |x: &Value, others: &[Value]| {
                others.is_empty()
                    || others.iter().any(|y| {
                        let mut d = Vec::new();
                        differences("", x, y, false, &mut d);
                        d.is_empty()
                    })
            };
            // The first element without a like is enough to show the shapes.
            if let Some(x) = a.iter().find(|x| !fits(x, b)) {
                out.push(format!(
                    "{path}/*: Connect's element {x} has no like in sluice's"
                ));
                differences(&format!("{path}/*"), x, &b[0], false, out);
            } else if let Some(y) = b.iter().find(|y| !fits(y, a)) {
                out.push(format!(
                    "{path}/*: sluice's element {y} has no like in Connect's"
                ));
                differences(&format!("{path}/*"), &a[0], y, false, out);
            }
        }
        (Value::Null, _) | (_, Value::Null) if !values => {}
        (a, b) if values => {
            if a != b {
                out.push(format!("{path}: Connect {a}, sluice {b}"));
            }
        }
        (a, b) => {
            if std::mem::discriminant(a) != std::mem::discriminant(b) {
                out.push(format!(
                    "{path}: Connect {a}, sluice {b} (another JSON type)"
                ));
            }
        }
    }
}

/// Connect's error form: exactly `error_code` (the status) and `message`.
fn error_form(answer: &Answer) -> Result<(), String> {
    let ok = answer.body.as_object().is_some_and(|o| {
        o.len() == 2
            && o.get("error_code").and_then(Value::as_u64) == Some(u64::from(answer.status))
            && o.get("message").is_some_and(Value::is_string)
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "not Connect's error form {{\"error_code\": {}, \"message\": ...}}: {}",
            answer.status, answer.body
        ))
    }
}

/// Every difference between the two answers to one call.
fn compare(check: Check, connect: &Answer, sluice: &Answer) -> Vec<String> {
    let mut out = Vec::new();
    if connect.status != sluice.status {
        out.push(format!(
            "status: Connect {} {}, sluice {} {}",
            connect.status, connect.body, sluice.status, sluice.body
        ));
        return out;
    }
    if !sluice.parsed {
        out.push(format!("sluice's body is not JSON: {}", sluice.body));
    }
    if connect.status >= 400 {
        for (who, a) in [("Connect", connect), ("sluice", sluice)] {
            if let Err(e) = error_form(a) {
                out.push(format!("{who}: {e}"));
            }
        }
        return out;
    }
    if connect.json_content && !sluice.json_content {
        out.push("sluice's answer is not application/json".into());
    }
    if connect.location != sluice.location {
        out.push(format!(
            "Location: Connect {:?}, sluice {:?}",
            connect.location, sluice.location
        ));
    }
    match check {
        Check::Equal => differences("", &connect.body, &sluice.body, true, &mut out),
        Check::Shape => differences("", &connect.body, &sluice.body, false, &mut out),
        Check::With(f) => {
            differences("", &connect.body, &sluice.body, false, &mut out);
            out.extend(f(&connect.body, &sluice.body).err());
        }
        Check::Own(f) => out.extend(f(&connect.body, &sluice.body).err()),
    }
    out
}

/// How the answers to a call stray from its intended difference; nothing
/// when they differ exactly as intended.
fn unlike_intended(
    differs: &Differs,
    connect: &Answer,
    sluice: &Answer,
    diffs: &[String],
) -> Vec<String> {
    let mut wrong = Vec::new();
    match differs {
        Differs::Status(c, s) => {
            if (connect.status, sluice.status) != (*c, *s) {
                wrong.push(format!(
                    "intended: Connect {c} and sluice {s}, but Connect answered {} {} and sluice {} {}",
                    connect.status, connect.body, sluice.status, sluice.body
                ));
            }
            if let Err(e) = error_form(sluice) {
                wrong.push(format!("sluice: {e}"));
            }
        }
        Differs::Only(expected) => {
            if diffs != [expected.to_string()] {
                wrong.push(format!(
                    "intended only '{expected}', but found: {}",
                    if diffs.is_empty() {
                        "no difference".to_owned()
                    } else {
                        diffs.join("; ")
                    }
                ));
            }
        }
    }
    wrong
}

/// Both bodies' `key` compared as values (after the shapes of the whole).
fn same_at(connect: &Value, sluice: &Value, pointer: &str) -> Result<(), String> {
    let (a, b) = (connect.pointer(pointer), sluice.pointer(pointer));
    let (Some(a), Some(b)) = (a, b) else {
        return Err(format!("{pointer}: Connect has {a:?}, sluice has {b:?}"));
    };
    let mut d = Vec::new();
    differences(pointer, a, b, true, &mut d);
    if d.is_empty() {
        Ok(())
    } else {
        Err(d.join("; "))
    }
}

fn lists_our_connector(connect: &Value, sluice: &Value) -> Result<(), String> {
    for (who, v) in [("Connect", connect), ("sluice", sluice)] {
        if !v.as_array().is_some_and(|a| a.contains(&json!("{name}"))) {
            return Err(format!("{who}'s list lacks the connector: {v}"));
        }
    }
    Ok(())
}

/// `?expand=...`: the entry of our connector is the same (others are each
/// worker's own).
fn our_expanded_entry(connect: &Value, sluice: &Value) -> Result<(), String> {
    same_at(connect, sluice, "/{name}")
}

/// Each logger's entry has one shape, `{"level", "last_modified"}`.
fn logger_entries(v: &Value) -> Result<(), String> {
    let entries = v.as_object().ok_or_else(|| format!("not an object: {v}"))?;
    for (name, entry) in entries {
        let ok = entry.as_object().is_some_and(|e| {
            e.len() == 2
                && e.get("level").is_some_and(Value::is_string)
                && e.get("last_modified")
                    .is_some_and(|m| m.is_null() || m.is_i64())
        });
        if !ok {
            return Err(format!(
                "logger {name}: {entry} is not {{\"level\", \"last_modified\"}}"
            ));
        }
    }
    Ok(())
}

/// The list of plugins has Connect's FileStreamSinkConnector as Connect lists it.
fn has_file_sink(connect: &Value, sluice: &Value) -> Result<(), String> {
    let file_sink = |v: &Value| {
        v.as_array().into_iter().flatten().any(|p| {
            p["class"] == "org.apache.kafka.connect.file.FileStreamSinkConnector"
                && p["type"] == "sink"
        })
    };
    for (who, v) in [("Connect", connect), ("sluice", sluice)] {
        if !file_sink(v) {
            return Err(format!("{who} lists no FileStreamSinkConnector sink: {v}"));
        }
    }
    Ok(())
}

/// `connectorsOnly=false`: both list every kind of plugin Connect has, and
/// the converters by Connect's class names.
fn every_plugin_type(connect: &Value, sluice: &Value) -> Result<(), String> {
    has_file_sink(connect, sluice)?;
    let types = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["type"].as_str().map(str::to_owned))
            .collect()
    };
    if types(connect) != types(sluice) {
        return Err(format!(
            "plugin types: Connect {:?}, sluice {:?}",
            types(connect),
            types(sluice)
        ));
    }
    let json_converter = |v: &Value| {
        v.as_array().into_iter().flatten().any(|p| {
            p["class"] == "org.apache.kafka.connect.json.JsonConverter" && p["type"] == "converter"
        })
    };
    if !json_converter(sluice) {
        return Err("sluice lists no org.apache.kafka.connect.json.JsonConverter converter".into());
    }
    Ok(())
}

/// A config definition: the connector's `file` key is defined alike.
fn defines_file(connect: &Value, sluice: &Value) -> Result<(), String> {
    let file = |v: &Value| {
        v.as_array()
            .into_iter()
            .flatten()
            .find(|k| k["name"] == "file")
            .cloned()
    };
    let (Some(a), Some(b)) = (file(connect), file(sluice)) else {
        return Err("a definition lacks 'file'".into());
    };
    let mut d = Vec::new();
    differences("file", &a, &b, false, &mut d);
    for key in ["type", "required"] {
        if a[key] != b[key] {
            d.push(format!("file/{key}: Connect {}, sluice {}", a[key], b[key]));
        }
    }
    if d.is_empty() {
        Ok(())
    } else {
        Err(d.join("; "))
    }
}

/// Validation: the same plugin, and errors on the same keys.
fn validated_alike(connect: &Value, sluice: &Value) -> Result<(), String> {
    same_at(connect, sluice, "/name")?;
    let with_errors = |v: &Value| -> BTreeSet<String> {
        v["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c["value"]["errors"]
                    .as_array()
                    .is_some_and(|e| !e.is_empty())
            })
            .filter_map(|c| c["value"]["name"].as_str().map(str::to_owned))
            .collect()
    };
    let (a, b) = (with_errors(connect), with_errors(sluice));
    if a != b {
        return Err(format!("keys with errors: Connect {a:?}, sluice {b:?}"));
    }
    let count = |v: &Value| v["error_count"].as_u64().unwrap_or(0);
    if (count(connect) == 0) != (count(sluice) == 0) {
        return Err(format!(
            "error_count: Connect {}, sluice {}",
            count(connect),
            count(sluice)
        ));
    }
    // Keys both define are defined and valued alike.
    let by_name = |v: &Value| -> BTreeMap<String, Value> {
        v["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| Some((c["definition"]["name"].as_str()?.to_owned(), c.clone())))
            .collect()
    };
    let (a, b) = (by_name(connect), by_name(sluice));
    let mut unlike = Vec::new();
    for (key, x) in &a {
        if let Some(y) = b.get(key) {
            for pointer in ["/definition/type", "/definition/required", "/value/name"] {
                if let Err(e) = same_at(x, y, pointer) {
                    unlike.push(format!("{key}{e}"));
                }
            }
        }
    }
    if unlike.is_empty() {
        Ok(())
    } else {
        Err(unlike.join("; "))
    }
}

/// `/admin/loggers`: keys are each worker's loggers; both have `root` and
/// the logger just set, alike.
fn loggers_alike(connect: &Value, sluice: &Value) -> Result<(), String> {
    logger_entries(connect)?;
    logger_entries(sluice)?;
    for key in ["/root/level", "/{logger}/level"] {
        same_at(connect, sluice, key)?;
    }
    Ok(())
}

/// The task list: the same ids, and every key of the connector's config in
/// each task's (Connect adds `task.class`, a Java class).
fn tasks_alike(connect: &Value, sluice: &Value) -> Result<(), String> {
    let ids = |v: &Value| -> Vec<Value> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|t| t["id"].clone())
            .collect()
    };
    if ids(connect) != ids(sluice) {
        return Err(format!(
            "task ids: Connect {:?}, sluice {:?}",
            ids(connect),
            ids(sluice)
        ));
    }
    for (a, b) in connect
        .as_array()
        .into_iter()
        .flatten()
        .zip(sluice.as_array().into_iter().flatten())
    {
        let (Some(a), Some(b)) = (a["config"].as_object(), b["config"].as_object()) else {
            return Err("a task has no config object".into());
        };
        for (k, v) in a.iter().filter(|(k, _)| *k != "task.class") {
            if b.get(k) != Some(v) {
                return Err(format!(
                    "task config {k}: Connect {v}, sluice {:?}",
                    b.get(k)
                ));
            }
        }
    }
    Ok(())
}

/// Connect's own FileStreamSinkConnector config, the same on both workers.
fn sink_config(topic: &str) -> Value {
    json!({
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "tasks.max": "1",
        "topics": topic,
        "file": "{file}",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false"
    })
}

const RECORDS: usize = 3;

fn script(topic: &str) -> Vec<Step> {
    use Check::{Equal, Own, Shape, With};
    let config = sink_config(topic);
    let mut replaced = config.clone();
    replaced["errors.log.enable"] = json!("true");
    let mut misnamed = config.clone();
    misnamed["name"] = json!("another-name");
    let mut invalid = config.clone();
    invalid["tasks.max"] = json!("zero");
    let mut validate_ok = config.clone();
    validate_ok["name"] = json!("{name}");
    let mut validate_bad = validate_ok.clone();
    validate_bad["tasks.max"] = json!("zero");
    validate_bad.as_object_mut().map(|o| o.remove("topics"));
    let offset = |n: u64| {
        json!({"offsets": [{"partition": {"kafka_topic": topic, "kafka_partition": 0},
                             "offset": {"kafka_offset": n}}]})
    };
    vec![
        call("GET /", Method::GET, "/", Equal),
        call("GET /connectors", Method::GET, "/connectors", Shape),
        call_json(
            "POST /connectors",
            Method::POST,
            "/connectors",
            json!({"name": "{name}", "config": config}),
            Equal,
        ),
        call_json(
            "POST /connectors, a duplicate",
            Method::POST,
            "/connectors",
            json!({"name": "{name}", "config": config}),
            Equal,
        ),
        settle("the task to run and write every record", |s| {
            s.task_states() == ["RUNNING"] && count_lines(&s.file) >= RECORDS
        }),
        call("GET connector", Method::GET, "/connectors/{name}", Equal),
        call("GET connector/", Method::GET, "/connectors/{name}/", Equal),
        call(
            "GET /connectors/",
            Method::GET,
            "/connectors/",
            With(lists_our_connector),
        ),
        call(
            "GET /connectors?expand=status",
            Method::GET,
            "/connectors?expand=status",
            Own(our_expanded_entry),
        ),
        call(
            "GET /connectors?expand=info&expand=status",
            Method::GET,
            "/connectors?expand=info&expand=status",
            Own(our_expanded_entry),
        ),
        call(
            "GET config",
            Method::GET,
            "/connectors/{name}/config",
            Equal,
        ),
        call(
            "GET status",
            Method::GET,
            "/connectors/{name}/status",
            Equal,
        ),
        call(
            "GET tasks",
            Method::GET,
            "/connectors/{name}/tasks",
            With(tasks_alike),
        ),
        call(
            "GET tasks/0/status",
            Method::GET,
            "/connectors/{name}/tasks/0/status",
            Equal,
        ),
        call(
            "GET topics",
            Method::GET,
            "/connectors/{name}/topics",
            Equal,
        ),
        settle("the records' offsets to be committed", move |s| {
            s.get("/connectors/{name}/offsets")["offsets"][0]["offset"]["kafka_offset"]
                == json!(RECORDS)
        }),
        call(
            "GET offsets, running",
            Method::GET,
            "/connectors/{name}/offsets",
            Equal,
        ),
        call_json(
            "PATCH offsets, running",
            Method::PATCH,
            "/connectors/{name}/offsets",
            offset(1),
            Equal,
        ),
        call(
            "DELETE offsets, running",
            Method::DELETE,
            "/connectors/{name}/offsets",
            Equal,
        ),
        call("PUT pause", Method::PUT, "/connectors/{name}/pause", Equal),
        settle("the task to pause", |s| s.task_states() == ["PAUSED"]),
        call(
            "GET status, paused",
            Method::GET,
            "/connectors/{name}/status",
            Equal,
        ),
        call(
            "PUT resume",
            Method::PUT,
            "/connectors/{name}/resume",
            Equal,
        ),
        settle("the task to run again", |s| {
            s.connector_state() == "RUNNING" && s.task_states() == ["RUNNING"]
        }),
        call(
            "POST restart",
            Method::POST,
            "/connectors/{name}/restart",
            Equal,
        ),
        settle("the connector to run again", |s| {
            s.connector_state() == "RUNNING"
        }),
        call(
            "POST restart?includeTasks=true",
            Method::POST,
            "/connectors/{name}/restart?includeTasks=true",
            Equal,
        ),
        settle("the connector and task to run again", |s| {
            s.connector_state() == "RUNNING" && s.task_states() == ["RUNNING"]
        }),
        call(
            "POST restart?includeTasks=true&onlyFailed=true",
            Method::POST,
            "/connectors/{name}/restart?includeTasks=true&onlyFailed=true",
            Equal,
        ),
        call(
            "POST tasks/0/restart",
            Method::POST,
            "/connectors/{name}/tasks/0/restart",
            Equal,
        ),
        settle("the task to run again", |s| s.task_states() == ["RUNNING"]),
        call(
            "GET tasks/9/status",
            Method::GET,
            "/connectors/{name}/tasks/9/status",
            Equal,
        ),
        call(
            "GET tasks/x/status",
            Method::GET,
            "/connectors/{name}/tasks/x/status",
            Equal,
        ),
        call(
            "PUT topics/reset",
            Method::PUT,
            "/connectors/{name}/topics/reset",
            Equal,
        ),
        call(
            "GET topics, reset",
            Method::GET,
            "/connectors/{name}/topics",
            Equal,
        ),
        call("PUT stop", Method::PUT, "/connectors/{name}/stop", Equal),
        settle("the connector to stop", |s| {
            s.connector_state() == "STOPPED" && s.task_states().is_empty()
        }),
        call(
            "GET status, stopped",
            Method::GET,
            "/connectors/{name}/status",
            Equal,
        ),
        call(
            "GET tasks, stopped",
            Method::GET,
            "/connectors/{name}/tasks",
            Equal,
        ),
        call(
            "POST restart?includeTasks=true, stopped",
            Method::POST,
            "/connectors/{name}/restart?includeTasks=true",
            Equal,
        ),
        call(
            "GET offsets, stopped",
            Method::GET,
            "/connectors/{name}/offsets",
            Equal,
        ),
        call_json(
            "PATCH offsets, stopped",
            Method::PATCH,
            "/connectors/{name}/offsets",
            offset(1),
            Equal,
        ),
        call(
            "GET offsets, altered",
            Method::GET,
            "/connectors/{name}/offsets",
            Equal,
        ),
        call(
            "DELETE offsets, stopped",
            Method::DELETE,
            "/connectors/{name}/offsets",
            Equal,
        ),
        call(
            "GET offsets, reset",
            Method::GET,
            "/connectors/{name}/offsets",
            Equal,
        ),
        call(
            "PUT resume, stopped",
            Method::PUT,
            "/connectors/{name}/resume",
            Equal,
        ),
        settle("the connector to run after the stop", |s| {
            s.connector_state() == "RUNNING" && s.task_states() == ["RUNNING"]
        }),
        call_json(
            "PATCH config",
            Method::PATCH,
            "/connectors/{name}/config",
            json!({"errors.log.enable": "true"}),
            Equal,
        ),
        call_json(
            "PATCH config, a null removes",
            Method::PATCH,
            "/connectors/{name}/config",
            json!({"errors.log.enable": null}),
            Equal,
        ),
        call_json(
            "PUT config",
            Method::PUT,
            "/connectors/{name}/config",
            replaced,
            Equal,
        ),
        call_json(
            "PUT config, another name",
            Method::PUT,
            "/connectors/{name}/config",
            misnamed,
            Equal,
        ),
        call_json(
            "PUT config, a new connector",
            Method::PUT,
            "/connectors/{name}-put/config",
            config.clone(),
            Equal,
        ),
        call(
            "DELETE the new connector",
            Method::DELETE,
            "/connectors/{name}-put",
            Equal,
        ),
        call_json(
            "POST /connectors, initial_state STOPPED",
            Method::POST,
            "/connectors",
            json!({"name": "{name}-stopped", "config": config, "initial_state": "STOPPED"}),
            Equal,
        ),
        call(
            "GET status, created stopped",
            Method::GET,
            "/connectors/{name}-stopped/status",
            Equal,
        ),
        call(
            "DELETE the stopped connector",
            Method::DELETE,
            "/connectors/{name}-stopped",
            Equal,
        ),
        call_json(
            "PATCH config, unknown connector",
            Method::PATCH,
            "/connectors/{name}-nope/config",
            json!({"file": "x"}),
            Equal,
        ),
        call_json(
            "PUT validate",
            Method::PUT,
            "/connector-plugins/FileStreamSinkConnector/config/validate",
            validate_ok,
            With(validated_alike),
        ),
        call_json(
            "PUT validate, with errors",
            Method::PUT,
            "/connector-plugins/FileStreamSinkConnector/config/validate",
            validate_bad,
            With(validated_alike),
        ),
        call_json(
            "PUT validate, unknown plugin",
            Method::PUT,
            "/connector-plugins/NoSuchConnector/config/validate",
            json!({"connector.class": "NoSuchConnector"}),
            Equal,
        ),
        call(
            "GET /connector-plugins",
            Method::GET,
            "/connector-plugins",
            With(has_file_sink),
        ),
        call(
            "GET /connector-plugins?connectorsOnly=false",
            Method::GET,
            "/connector-plugins?connectorsOnly=false",
            With(every_plugin_type),
        ),
        call(
            "GET plugin config",
            Method::GET,
            "/connector-plugins/FileStreamSinkConnector/config",
            With(defines_file),
        ),
        call(
            "GET plugin config, unknown plugin",
            Method::GET,
            "/connector-plugins/NoSuchConnector/config",
            Equal,
        ),
        call_json(
            "PUT logger",
            Method::PUT,
            "/admin/loggers/{logger}",
            json!({"level": "DEBUG"}),
            Equal,
        ),
        call("GET logger", Method::GET, "/admin/loggers/{logger}", Equal),
        call(
            "GET /admin/loggers",
            Method::GET,
            "/admin/loggers",
            Own(loggers_alike),
        ),
        call("GET logger root", Method::GET, "/admin/loggers/root", Shape),
        call_json(
            "PUT logger, unknown level",
            Method::PUT,
            "/admin/loggers/{logger}",
            json!({"level": "LOUD"}),
            Equal,
        ),
        call_json(
            "PUT logger, no level",
            Method::PUT,
            "/admin/loggers/{logger}",
            json!({}),
            Equal,
        ),
        call_json(
            "PUT logger?scope=cluster",
            Method::PUT,
            "/admin/loggers/{logger}?scope=cluster",
            json!({"level": "INFO"}),
            Equal,
        ),
        call_json(
            "PUT logger back",
            Method::PUT,
            "/admin/loggers/{logger}",
            json!({"level": "INFO"}),
            Equal,
        ),
        call(
            "GET logger, unknown",
            Method::GET,
            "/admin/loggers/no.such.logger",
            Equal,
        ),
        call(
            "GET unknown connector",
            Method::GET,
            "/connectors/{name}-nope",
            Equal,
        ),
        call(
            "GET status, unknown connector",
            Method::GET,
            "/connectors/{name}-nope/status",
            Equal,
        ),
        call(
            "PUT pause, unknown connector",
            Method::PUT,
            "/connectors/{name}-nope/pause",
            Equal,
        ),
        call(
            "POST restart, unknown connector",
            Method::POST,
            "/connectors/{name}-nope/restart",
            Equal,
        ),
        call(
            "DELETE unknown connector",
            Method::DELETE,
            "/connectors/{name}-nope",
            Equal,
        ),
        call_raw(
            "POST /connectors, malformed JSON",
            Method::POST,
            "/connectors",
            "application/json",
            "{\"name\": ",
        ),
        call_raw(
            "POST /connectors, a JSON array",
            Method::POST,
            "/connectors",
            "application/json",
            "[1]",
        ),
        call_raw(
            "POST /connectors, not JSON",
            Method::POST,
            "/connectors",
            "text/plain",
            "name=x",
        ),
        call_json(
            "POST /connectors, no config",
            Method::POST,
            "/connectors",
            json!({"name": "{name}-bad"}),
            Equal,
        ),
        call_json(
            "POST /connectors, unknown field",
            Method::POST,
            "/connectors",
            json!({"name": "{name}-bad", "config": config, "initial_stat": "PAUSED"}),
            Equal,
        ),
        call_json(
            "POST /connectors, invalid config",
            Method::POST,
            "/connectors",
            json!({"name": "{name}-bad", "config": invalid}),
            Equal,
        ),
        call_raw(
            "PUT config, a JSON array",
            Method::PUT,
            "/connectors/{name}/config",
            "application/json",
            "[]",
        ),
        call_raw(
            "PATCH config, not JSON",
            Method::PATCH,
            "/connectors/{name}/config",
            "application/json",
            "xx",
        ),
        call_raw(
            "PUT config, text/plain",
            Method::PUT,
            "/connectors/{name}/config",
            "text/plain",
            "xx",
        ),
        call("DELETE /connectors", Method::DELETE, "/connectors", Equal),
        call("GET pause", Method::GET, "/connectors/{name}/pause", Equal),
        call("GET unknown path", Method::GET, "/no/such/path", Equal),
        call(
            "POST tasks/9/restart",
            Method::POST,
            "/connectors/{name}/tasks/9/restart",
            Equal,
        ),
        // After the restart above: Connect now reports a task 9 (see INTENDED),
        // so no status of this connector is compared after it.
        call(
            "GET tasks/9/status after restarting it",
            Method::GET,
            "/connectors/{name}/tasks/9/status",
            Equal,
        ),
        call(
            "DELETE connector/",
            Method::DELETE,
            "/connectors/{name}/",
            Equal,
        ),
        call(
            "GET connector, deleted",
            Method::GET,
            "/connectors/{name}",
            Equal,
        ),
    ]
}

/// Deletes connectors when dropped; those that are not there answer 404.
struct DeleteOnDrop {
    http: Client,
    urls: [String; 4],
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        for url in &self.urls {
            self.http.delete(url).send().ok();
        }
    }
}

#[test]
fn sluice_answers_as_kafka_connect_does() {
    let started = Instant::now();
    let reference = connect();
    let http = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    // Connect must be up and serving before anything is compared with it.
    wait_for(
        "the reference Connect worker",
        Duration::from_secs(120),
        || {
            http.get(format!("{}/connectors", reference.url))
                .send()
                .is_ok_and(|r| r.status().is_success())
        },
    );

    let scratch = Scratch::new("rest-diff");
    let topic = unique("diff-in");
    create_topic_on(&scratch, &reference.bootstrap, &topic, 1);
    let values: Vec<Vec<u8>> = (0..RECORDS)
        .map(|n| json!({"n": n}).to_string().into_bytes())
        .collect();
    let out: Vec<Out<'_>> = values
        .iter()
        .map(|v| Out {
            key: None,
            value: v,
            headers: &[],
        })
        .collect();
    produce_on(&reference.bootstrap, &topic, 0, &out);

    let mut config = worker_config(&scratch);
    config["bootstrap.servers"] = json!(reference.bootstrap);
    let worker = scratch.write_json("worker.json", &config);
    let w = WorkerProcess::start(&scratch, &worker, &[]);
    let sluice_url = w.rest_url();
    let ready = started.elapsed();

    // Each worker's connectors have their own names: a sink's consumer group
    // is `connect-<name>`, and one group shared by both workers on one broker
    // would split the topic's partitions between them and refuse offset
    // changes while the other is a member.
    let name = unique("diff");
    let sides = [
        Side {
            label: "Connect",
            base: reference.url.clone(),
            http: http.clone(),
            name: format!("{name}-connect"),
            file: scratch.path("connect.out"),
            logger: "org.apache.kafka.connect.runtime.Worker",
        },
        Side {
            label: "sluice",
            base: sluice_url,
            http: http.clone(),
            name: format!("{name}-sluice"),
            file: scratch.path("sluice.out"),
            logger: "sluice_runtime::worker",
        },
    ];

    // The reference worker may outlive this test (a shared stack): whatever
    // the script created there goes, even when the test fails half-way.
    let _cleanup = DeleteOnDrop {
        http: http.clone(),
        urls: ["", "-put", "-stopped", "-bad"]
            .map(|suffix| format!("{}/connectors/{}{suffix}", sides[0].base, sides[0].name)),
    };

    // The script sets this logger and puts it back; a run that failed between
    // the two left it set on a worker that outlives runs.
    let reset = sides[0].send(
        Method::PUT,
        "/admin/loggers/{logger}",
        &Body::Json(json!({"level": "INFO"})),
    );
    assert_eq!(reset.status, 200, "{:?}", reset.body);

    let mut report = Vec::new();
    let mut failures = Vec::new();
    let mut labels = BTreeSet::new();
    let mut calls = 0;
    for step in script(&topic) {
        match step {
            Step::Settle(s) => {
                for side in &sides {
                    wait_for(
                        &format!("{} on {}", s.what, side.label),
                        Duration::from_secs(90),
                        || (s.done)(side),
                    );
                }
            }
            Step::Call(c) => {
                calls += 1;
                assert!(labels.insert(c.label), "two calls are labelled {}", c.label);
                let [a, b] =
                    [&sides[0], &sides[1]].map(|s| s.send(c.method.clone(), c.path, &c.body));
                let diffs = compare(c.check, &a, &b);
                let intended = INTENDED.iter().find(|i| i.call == c.label);
                let verdict = match intended {
                    Some(i) => {
                        let wrong = unlike_intended(&i.differs, &a, &b, &diffs);
                        if wrong.is_empty() {
                            "intended"
                        } else {
                            failures.push(format!("{}: {}", c.label, wrong.join("; ")));
                            "INTENDED DIFFERENCE CHANGED"
                        }
                    }
                    None if diffs.is_empty() => "same",
                    None => {
                        failures.push(format!("{}:\n    {}", c.label, diffs.join("\n    ")));
                        "DIFFERENT"
                    }
                };
                let why = intended.map_or(String::new(), |i| format!(": {}", i.why));
                report.push(format!(
                    "{:<48} {:>3} {:>3}  {verdict}{why}",
                    c.label, a.status, b.status
                ));
            }
        }
    }
    for i in INTENDED {
        assert!(
            labels.contains(i.call),
            "INTENDED names '{}', which the script no longer calls",
            i.call
        );
    }
    eprintln!(
        "{calls} calls against Connect ({}) and sluice, {} intended differences; \
         workers ready after {:.1?}, everything in {:.1?}\n{:<48} {:>3} {:>3}\n{}",
        reference.url,
        INTENDED.len(),
        ready,
        started.elapsed(),
        "call",
        "C",
        "S",
        report.join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} of {calls} calls answered differently from Kafka Connect:\n{}\nsluice's log:\n{}",
        failures.len(),
        failures.join("\n"),
        w.log_text()
    );
}
