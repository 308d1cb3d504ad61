//! `/admin/loggers`: log levels changed at runtime. Connect's loggers are Java
//! class names; ours are `tracing` targets (`sluice_runtime::sink`,
//! `librdkafka`, ...). Setting a logger sets its descendants too, and `root`
//! sets everything. As Connect knows the log4j loggers created so far, this
//! knows the targets that have logged so far and the loggers given a level.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::{query_values, ApiError, Body};
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

    /// The targets that have logged (registered a callsite) so far.
    fn targets(&self) -> Vec<String> {
        Vec::new()
    }
}

const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF"];

#[derive(Clone)]
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

    /// The level in force for `name`: its own, or its nearest ancestor's;
    /// and when it was set through this API, if it was (its own setting only,
    /// as Connect reports it).
    fn effective(state: &BTreeMap<String, Level>, name: &str) -> (String, Option<i64>) {
        let own = state.get(name).and_then(|l| l.last_modified);
        let mut candidate = name;
        loop {
            if let Some(l) = state.get(candidate) {
                return (l.level.clone(), own);
            }
            match candidate.rfind("::").or_else(|| candidate.rfind('.')) {
                Some(i) => candidate = &candidate[..i],
                None => break,
            }
        }
        let root = state.get("root");
        (root.map_or_else(|| "INFO".into(), |l| l.level.clone()), own)
    }

    /// Every logger there is: the targets that have logged, and those given a
    /// level (`root` among them).
    fn known(&self, state: &BTreeMap<String, Level>) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = state.keys().cloned().collect();
        if let Some(control) = &self.control {
            all.extend(control.targets());
        }
        all
    }

    /// Sets `name` and every logger under it to `level`; returns the loggers
    /// whose level this changed (a logger not known before counts), as
    /// Connect does.
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
        let now = sluice_api::now_ms();
        let mut state = self.lock();
        let known = self.known(&state);
        let descends = |k: &str| {
            name == "root"
                || k == name
                || k.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with("::") || rest.starts_with('.'))
        };
        let changed: Vec<String> = known
            .iter()
            .filter(|k| descends(k))
            .filter(|k| Self::effective(&state, k).0 != level)
            .cloned()
            .chain((!known.contains(name)).then(|| name.to_owned()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let previous = state.clone();
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
                *state = previous;
                return Err(ApiError::bad_request(format!(
                    "cannot apply log level: {e}"
                )));
            }
        }
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
    let map: serde_json::Map<String, Value> = s
        .loggers
        .known(&state)
        .into_iter()
        .map(|k| {
            let (level, modified) = Loggers::effective(&state, &k);
            (k, level_json(level, modified))
        })
        .collect();
    Json(Value::Object(map))
}

async fn one(State(s): State<Shared>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let state = s.loggers.lock();
    if !s.loggers.known(&state).contains(&name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Logger {name} not found."),
        ));
    }
    let (level, modified) = Loggers::effective(&state, &name);
    Ok(Json(level_json(level, modified)).into_response())
}

#[derive(serde::Deserialize)]
struct SetLevel {
    level: String,
}

/// `?scope=cluster` (any case) asks every worker of the cluster; this one is
/// all of it, so the change is applied here and answered 204 without a
/// body, as Connect answers it. Any other scope is this worker's.
async fn set(
    State(s): State<Shared>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    Body(body): Body<SetLevel>,
) -> Result<Response, ApiError> {
    let changed = s.loggers.set(&name, &body.level)?;
    let cluster = query_values(q.as_deref(), "scope")
        .last()
        .is_some_and(|scope| scope.eq_ignore_ascii_case("cluster"));
    Ok(if cluster {
        StatusCode::NO_CONTENT.into_response()
    } else {
        Json(changed).into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Targets that have "logged", and no filter to change.
    struct Logged(&'static [&'static str]);

    impl LogControl for Logged {
        fn apply(&self, _directives: &str) -> Result<(), String> {
            Ok(())
        }

        fn targets(&self) -> Vec<String> {
            self.0.iter().map(|t| (*t).to_owned()).collect()
        }
    }

    fn loggers() -> Loggers {
        Loggers::new(
            "info",
            Some(Box::new(Logged(&["a::b", "a::b::c", "a::d", "x"]))),
        )
    }

    #[test]
    fn setting_a_level_answers_the_loggers_whose_level_it_changed() {
        let l = loggers();
        assert_eq!(l.set("a::b", "debug").unwrap(), ["a::b", "a::b::c"]);
        // Already at that level: nothing changes, as in Connect.
        assert!(l.set("a::b", "DEBUG").unwrap().is_empty());
        // A logger not known before is created, and counts as changed.
        assert_eq!(l.set("new::one", "info").unwrap(), ["new::one"]);
        assert_eq!(
            l.set("root", "debug").unwrap(),
            ["a::d", "new::one", "root", "x"]
        );
        let state = l.lock();
        for name in ["a::b::c", "a::d", "x", "root"] {
            assert_eq!(Loggers::effective(&state, name).0, "DEBUG", "{name}");
        }
    }

    #[test]
    fn known_loggers_are_those_that_logged_or_were_set() {
        let l = loggers();
        l.set("set::here", "warn").unwrap();
        let state = l.lock();
        let known = l.known(&state);
        for name in ["root", "a::b::c", "x", "set::here"] {
            assert!(known.contains(name), "{name}");
        }
        assert!(!known.contains("a"), "{known:?}");
        assert!(!known.contains("no.such.logger"), "{known:?}");
        // Only a logger's own setting has a time; an inherited level has none.
        assert!(Loggers::effective(&state, "set::here").1.is_some());
        assert_eq!(
            Loggers::effective(&state, "set::here::under"),
            ("WARN".into(), None)
        );
    }
}
