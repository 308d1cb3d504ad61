//! `POST /dlq/{topic}/replay`: the REST face of `sluice dlq replay`. It sends a
//! dead-letter queue's records back to the topics they failed on, without the
//! error headers, and answers with what it moved. Progress is committed per
//! DLQ topic and filter, so a second call moves nothing twice.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use tokio::sync::Mutex;

use super::error::ApiError;
use super::Shared;
use crate::error_handling::replay::{replay, ReplayOptions};
use crate::WorkerError;

pub const ROUTES: [(&str, &str); 1] = [("/dlq/{topic}/replay", "post")];

pub fn routes() -> Router<Shared> {
    Router::new().route("/dlq/{topic}/replay", post(run))
}

/// Two replays of one queue at once would both move the same records.
static REPLAYING: Mutex<()> = Mutex::const_new(());

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// Send every record here instead of its `__connect.errors.topic`.
    to: Option<String>,
    /// Only records whose `__connect.errors.<name>` header equals the value.
    #[serde(default)]
    filter: BTreeMap<String, String>,
}

async fn run(
    State(s): State<Shared>,
    Path(topic): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: an empty one replays everything to where it failed.
    let request: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?
    };
    check_topic_name("topic", &topic)?;
    if let Some(to) = request.to.as_deref().filter(|t| !t.is_empty()) {
        check_topic_name("to", to)?;
    }
    let opts = ReplayOptions {
        dlq_topic: topic,
        to: request.to.filter(|t| !t.is_empty()),
        filters: request.filter.into_iter().collect(),
    };
    let worker = s.herder.worker().config().clone();
    let _one_at_a_time = REPLAYING.lock().await;
    let report = tokio::task::spawn_blocking(move || replay(&worker, &opts))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| match e {
            WorkerError::Other(m) if m.contains("does not exist") => {
                ApiError::new(StatusCode::NOT_FOUND, m)
            }
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })?;
    Ok(Json(report).into_response())
}

/// Kafka's rule for topic names, checked here so a name no broker accepts
/// (a NUL, a newline) is the client's 400, not a failure deep in the client.
fn check_topic_name(what: &str, name: &str) -> Result<(), ApiError> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty()
        || name.len() > 249
        || name == "."
        || name == ".."
        || !name.chars().all(legal)
    {
        return Err(ApiError::bad_request(format!(
            "'{}' is not a valid topic name for '{what}': Kafka allows 1 to 249 of the characters a-z A-Z 0-9 . _ -",
            name.escape_debug()
        )));
    }
    Ok(())
}
