//! `/connectors/...`: create, configure, inspect, pause, resume, stop,
//! restart and delete connectors, their tasks, topics and offsets.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Map, Value};
use sluice_api::TaskConfig;

use super::error::{query_flag, query_values, ApiError, Body};
use super::{Listener, Shared};
use crate::control::TargetState;
use crate::herder::ConnectorOffsets;

pub const ROUTES: [(&str, &str); 20] = [
    ("/connectors", "get"),
    ("/connectors", "post"),
    ("/connectors/{name}", "get"),
    ("/connectors/{name}", "delete"),
    ("/connectors/{name}/config", "get"),
    ("/connectors/{name}/config", "put"),
    ("/connectors/{name}/config", "patch"),
    ("/connectors/{name}/status", "get"),
    ("/connectors/{name}/tasks", "get"),
    ("/connectors/{name}/tasks/{id}/status", "get"),
    ("/connectors/{name}/tasks/{id}/restart", "post"),
    ("/connectors/{name}/pause", "put"),
    ("/connectors/{name}/resume", "put"),
    ("/connectors/{name}/stop", "put"),
    ("/connectors/{name}/restart", "post"),
    ("/connectors/{name}/topics", "get"),
    ("/connectors/{name}/topics/reset", "put"),
    ("/connectors/{name}/offsets", "get"),
    ("/connectors/{name}/offsets", "patch"),
    ("/connectors/{name}/offsets", "delete"),
];

/// The fields of Connect's `CreateConnectorRequest`.
const CREATE_FIELDS: [&str; 3] = ["name", "config", "initial_state"];

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/connectors", get(list).post(create))
        .route("/connectors/{name}", get(info).delete(delete))
        .route(
            "/connectors/{name}/config",
            get(config).put(put_config).patch(patch_config),
        )
        .route("/connectors/{name}/status", get(status))
        .route("/connectors/{name}/tasks", get(tasks))
        .route("/connectors/{name}/tasks/{id}/status", get(task_status))
        .route("/connectors/{name}/tasks/{id}/restart", post(restart_task))
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/restart", post(restart))
        .route("/connectors/{name}/topics", get(topics))
        .route("/connectors/{name}/topics/reset", put(reset_topics))
        .route(
            "/connectors/{name}/offsets",
            get(offsets).patch(alter_offsets).delete(reset_offsets),
        )
}

async fn list(State(s): State<Shared>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let expand = query_values(q.as_deref(), "expand");
    let names = s.herder.names().await;
    if expand.is_empty() {
        return Ok(Json(names).into_response());
    }
    let mut out = Map::new();
    for name in names {
        let mut entry = Map::new();
        // A connector deleted between the listing and here is left out.
        if expand.iter().any(|e| e == "status") {
            if let Ok(st) = s.herder.status(&name).await {
                entry.insert("status".into(), to_value(&st)?);
            }
        }
        if expand.iter().any(|e| e == "info") {
            if let Ok(info) = s.herder.info(&name).await {
                entry.insert("info".into(), to_value(&info)?);
            }
        }
        out.insert(name, Value::Object(entry));
    }
    Ok(Json(Value::Object(out)).into_response())
}

async fn create(
    State(s): State<Shared>,
    headers: HeaderMap,
    Body(body): Body<Value>,
) -> Result<Response, ApiError> {
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object: {\"name\": ..., \"config\": {...}}",
        ));
    };
    // Connect refuses unknown fields too: a misspelt `initial_state` must not
    // start a connector the client meant to create paused.
    if let Some(unknown) = body.keys().find(|k| !CREATE_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Unrecognized field \"{unknown}\"; a create request has only \"name\", \"config\" and \"initial_state\""
        )));
    }
    let config = match body.get("config") {
        Some(Value::Object(c)) => config_map(c)?,
        Some(_) => return Err(ApiError::bad_request("'config' must be a JSON object")),
        None => {
            return Err(ApiError::bad_request(
                "Connector config must be provided in 'config'",
            ))
        }
    };
    let name = match body.get("name") {
        Some(Value::String(n)) => n.clone(),
        Some(_) => return Err(ApiError::bad_request("'name' must be a string")),
        None => config
            .get("name")
            .cloned()
            .ok_or_else(|| ApiError::bad_request("Connector name must be provided in 'name'"))?,
    };
    let initial = match body.get("initial_state") {
        None | Some(Value::Null) => TargetState::Running,
        Some(Value::String(t)) => TargetState::parse(&t.to_ascii_uppercase()).ok_or_else(|| {
            ApiError::bad_request(format!(
                "'initial_state': '{t}' is not one of RUNNING, PAUSED, STOPPED"
            ))
        })?,
        Some(_) => return Err(ApiError::bad_request("'initial_state' must be a string")),
    };
    let info = s.herder.create(&name, config, initial).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location(&s, &headers, &name))],
        Json(info),
    )
        .into_response())
}

async fn info(State(s): State<Shared>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(s.herder.info(&name).await?).into_response())
}

async fn delete(State(s): State<Shared>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    s.herder.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn config(State(s): State<Shared>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(s.herder.info(&name).await?.config).into_response())
}

async fn put_config(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Body(body): Body<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let (created, info) = s.herder.put_config(&name, config_map(&body)?).await?;
    Ok(if created {
        (
            StatusCode::CREATED,
            [(header::LOCATION, location(&s, &headers, &name))],
            Json(info),
        )
            .into_response()
    } else {
        Json(info).into_response()
    })
}

async fn patch_config(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let mut patch = BTreeMap::new();
    for (k, v) in body {
        let v = match v {
            Value::Null => None,
            other => Some(scalar(&k, other)?),
        };
        patch.insert(k, v);
    }
    Ok(Json(s.herder.patch_config(&name, patch).await?).into_response())
}

async fn status(State(s): State<Shared>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(s.herder.status(&name).await?).into_response())
}

async fn tasks(State(s): State<Shared>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let tasks: Vec<Value> = s
        .herder
        .task_configs(&name)
        .await?
        .into_iter()
        .map(|(id, config)| serde_json::json!({"id": id, "config": config}))
        .collect();
    Ok(Json(tasks).into_response())
}

fn task_id(name: &str, id: &str) -> Result<u32, ApiError> {
    id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Task {id} of connector {name} not found"),
        )
    })
}

async fn task_status(
    State(s): State<Shared>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = task_id(&name, &id)?;
    Ok(Json(s.herder.task_status(&name, id).await?).into_response())
}

async fn restart_task(
    State(s): State<Shared>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = task_id(&name, &id)?;
    s.herder.restart_task(&name, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(State(s): State<Shared>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    s.herder.set_target(&name, TargetState::Paused).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn resume(State(s): State<Shared>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    s.herder.set_target(&name, TargetState::Running).await?;
    Ok(StatusCode::ACCEPTED)
}

/// 204, where pause and resume answer 202: Connect's answers.
async fn stop(State(s): State<Shared>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    s.herder.set_target(&name, TargetState::Stopped).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Connect's answer: 204 for a plain connector restart, 202 with the status
/// when tasks are involved.
async fn restart(
    State(s): State<Shared>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let include_tasks = query_flag(q.as_deref(), "includeTasks");
    let only_failed = query_flag(q.as_deref(), "onlyFailed");
    let status = s.herder.restart(&name, include_tasks, only_failed).await?;
    Ok(if !include_tasks && !only_failed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::ACCEPTED, Json(status)).into_response()
    })
}

async fn topics(State(s): State<Shared>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let topics = s.herder.active_topics(&name).await?;
    Ok(Json(serde_json::json!({ name: {"topics": topics} })).into_response())
}

async fn reset_topics(
    State(s): State<Shared>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.herder.reset_active_topics(&name).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn offsets(State(s): State<Shared>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(s.herder.offsets(&name).await?).into_response())
}

async fn alter_offsets(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Body(body): Body<ConnectorOffsets>,
) -> Result<Response, ApiError> {
    let message = s.herder.alter_offsets(&name, Some(body)).await?;
    Ok(Json(serde_json::json!({ "message": message })).into_response())
}

async fn reset_offsets(
    State(s): State<Shared>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let message = s.herder.alter_offsets(&name, None).await?;
    Ok(Json(serde_json::json!({ "message": message })).into_response())
}

/// A config object as Connect takes it: string values, with numbers and
/// booleans accepted as their text.
pub fn config_map(object: &Map<String, Value>) -> Result<TaskConfig, ApiError> {
    object
        .iter()
        .map(|(k, v)| Ok((k.clone(), scalar(k, v.clone())?)))
        .collect()
}

fn scalar(key: &str, v: Value) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err(ApiError::bad_request(format!(
            "'{key}': null is not a value; leave the key out instead"
        ))),
        _ => Err(ApiError::bad_request(format!(
            "'{key}': must be a string, number or boolean"
        ))),
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `/connectors/<name>`, percent-encoding what a header or path cannot hold.
/// The new connector's absolute URL, as Connect answers it: the scheme this
/// worker serves and the host the client asked for.
fn location(s: &Shared, headers: &HeaderMap, name: &str) -> String {
    let https = Listener::from_config(s.herder.worker().config()).is_ok_and(|l| l.tls);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .map_or_else(|| s.herder.worker_id(), str::to_owned);
    let mut out = format!(
        "{}://{host}/connectors/",
        if https { "https" } else { "http" }
    );
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
