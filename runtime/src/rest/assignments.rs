//! `GET /connectors/{name}/lag` and `/connectors/{name}/assignments`: which
//! worker and task holds which partition, and how far each partition's
//! committed offset and the task's position are behind its log end. Both read
//! the figures `/metrics` shows (refreshed every `metrics.lag.refresh.ms`).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::Shared;
use crate::herder::TaskAssignment;

pub const ROUTES: [(&str, &str); 2] = [
    ("/connectors/{name}/lag", "get"),
    ("/connectors/{name}/assignments", "get"),
];

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/connectors/{name}/lag", get(lag))
        .route("/connectors/{name}/assignments", get(assignments))
}

async fn assignments(
    State(s): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tasks = s.herder.assignments(&name).await?;
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|t| {
            json!({
                "task": t.task,
                "state": t.state,
                "worker_id": t.worker_id,
                "local": t.local,
                "partitions": t.partitions.as_ref().map(|ps| ps
                    .iter()
                    .map(|p| json!({"topic": p.topic, "partition": p.partition}))
                    .collect::<Vec<_>>()),
            })
        })
        .collect();
    Ok(Json(json!({"connector": name, "tasks": tasks})))
}

async fn lag(State(s): State<Shared>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let tasks = s.herder.assignments(&name).await?;
    Ok(Json(lag_view(&name, &tasks)))
}

/// Every partition this worker knows of, its lag (log end − committed),
/// unread records (log end − position), and their maximum and total.
fn lag_view(name: &str, tasks: &[TaskAssignment]) -> Value {
    let mut partitions = Vec::new();
    let (mut max, mut total) = (0i64, 0i64);
    for t in tasks {
        for p in t.partitions.iter().flatten() {
            max = max.max(p.lag());
            total += p.lag();
            partitions.push(json!({
                "topic": p.topic,
                "partition": p.partition,
                "task": t.task,
                "worker_id": t.worker_id,
                "log_end_offset": p.log_end_offset,
                "committed_offset": p.committed_offset,
                "position": p.position,
                "lag": p.lag(),
                "unread": p.unread(),
            }));
        }
    }
    let remote: Vec<Value> = tasks
        .iter()
        .filter(|t| !t.local)
        .map(|t| json!({"task": t.task, "worker_id": t.worker_id}))
        .collect();
    json!({
        "connector": name,
        "max_lag": max,
        "total_lag": total,
        "partitions": partitions,
        "tasks_elsewhere": remote,
    })
}
