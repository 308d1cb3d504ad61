//! `/admin/loggers`: log levels changed at runtime. Connect's loggers are Java
//! class names; ours are `tracing` targets (`sluice_runtime::sink`,
//! `librdkafka`, ...). Setting a logger sets its descendants too, and `root`
//! sets everything.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::{ApiError, Body};
use super::Shared;

pub const ROUTES: [(&str, &str); 3] = [
    ("/admin/loggers", "get"),
    ("/admin/loggers/{logger}", "get"),
    ("/admin/loggers/{logger}", "put"),
];

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/admin/loggers", get(list))
        .route("/admin/loggers/{logger}", get(one).put(set))
}

/// Installs a new filter (`tracing_subscriber::EnvFilter` syntax) in the
/// process's subscriber. The binary owns the subscriber, so it provides this.
pub trait LogControl: Send + Sync {
    fn apply(&self, directives: &str) -> Result<(), String>;
}

const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF"];

struct Level {
    level: String,
    last_modified: Option<i64>,
}

pub struct Loggers {
    control: Option<Box<dyn LogControl>>,
    state: Mutex<BTreeMap<String, Level>>,
}

impl Loggers {
    /// Starts from the filter the process was started with, like `info,librdkafka=warn`.
    pub fn new(initial: &str, control: Option<Box<dyn LogControl>>) -> Self {
        let mut state = BTreeMap::new();
        state.insert(
            "root".to_owned(),
            Level {
                level: "INFO".into(),
                last_modified: None,
            },
        );
        for directive in initial.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let (name, level) = match directive.split_once('=') {
                Some((t, l)) => (t.to_owned(), l),
                None => ("root".to_owned(), directive),
            };
            let level = level.to_ascii_uppercase();
            if LEVELS.contains(&level.as_str()) {
                state.insert(
                    name,
                    Level {
                        level,
                        last_modified: None,
                    },
                );
            }
        }
        Self {
            control,
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Level>> {
        // Entries are replaced whole; a poisoned map is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The level in force for `name`: its own, or its nearest ancestor's.
    fn effective(state: &BTreeMap<String, Level>, name: &str) -> (String, Option<i64>) {
        let mut candidate = name;
        loop {
            if let Some(l) = state.get(candidate) {
                return (l.level.clone(), l.last_modified);
            }
            match candidate.rfind("::").or_else(|| candidate.rfind('.')) {
                Some(i) => candidate = &candidate[..i],
                None => break,
            }
        }
        let root = state.get("root");
        (
            root.map_or_else(|| "INFO".into(), |l| l.level.clone()),
            None,
        )
    }

    fn set(&self, name: &str, level: &str) -> Result<Vec<String>, ApiError> {
        let level = level.trim().to_ascii_uppercase();
        let level = if level == "FATAL" {
            "ERROR".into()
        } else {
            level
        };
        if !LEVELS.contains(&level.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Invalid log level '{level}'; use one of {}",
                LEVELS.join(", ")
            )));
        }
        if name.is_empty() || name.contains([',', '=', ' ']) {
            return Err(ApiError::bad_request(format!(
                "'{name}' is not a logger name"
            )));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut state = self.lock();
        let previous: Vec<(String, String)> = state
            .iter()
            .map(|(k, v)| (k.clone(), v.level.clone()))
            .collect();
        let descends = |k: &str| {
            name == "root"
                || k == name
                || k.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with("::") || rest.starts_with('.'))
        };
        let mut changed: Vec<String> = state.keys().filter(|k| descends(k)).cloned().collect();
        if !changed.iter().any(|k| k == name) {
            changed.push(name.to_owned());
        }
        for k in &changed {
            state.insert(
                k.clone(),
                Level {
                    level: level.clone(),
                    last_modified: Some(now),
                },
            );
        }
        if let Some(control) = &self.control {
            if let Err(e) = control.apply(&directives(&state)) {
                // Put back what was there, so the listing matches what is in force.
                state.clear();
                for (k, l) in previous {
                    state.insert(
                        k,
                        Level {
                            level: l,
                            last_modified: None,
                        },
                    );
                }
                return Err(ApiError::bad_request(format!(
                    "cannot apply log level: {e}"
                )));
            }
        }
        changed.sort();
        Ok(changed)
    }
}

fn directives(state: &BTreeMap<String, Level>) -> String {
    let root = state.get("root").map_or("info", |l| l.level.as_str());
    let mut out = vec![root.to_ascii_lowercase()];
    for (k, l) in state.iter().filter(|(k, _)| *k != "root") {
        out.push(format!("{k}={}", l.level.to_ascii_lowercase()));
    }
    out.join(",")
}

fn level_json(level: String, last_modified: Option<i64>) -> Value {
    json!({"level": level, "last_modified": last_modified})
}

async fn list(State(s): State<Shared>) -> Json<Value> {
    let state = s.loggers.lock();
    let map: serde_json::Map<String, Value> = state
        .iter()
        .map(|(k, l)| (k.clone(), level_json(l.level.clone(), l.last_modified)))
        .collect();
    Json(Value::Object(map))
}

async fn one(State(s): State<Shared>, Path(name): Path<String>) -> Json<Value> {
    let state = s.loggers.lock();
    let (level, modified) = Loggers::effective(&state, &name);
    Json(level_json(level, modified))
}

#[derive(serde::Deserialize)]
struct SetLevel {
    level: String,
}

async fn set(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Body(body): Body<SetLevel>,
) -> Result<Response, ApiError> {
    Ok(Json(s.loggers.set(&name, &body.level)?).into_response())
}
