//! `GET /ui`: a status page of this worker's connectors and tasks (states,
//! traces, lag per partition, dead-lettered counts, pause/resume/restart). One
//! static HTML file embedded in the binary; its script calls the REST API, so
//! there is nothing to build or serve besides it.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::Shared;

const PAGE: &str = include_str!("../../ui/index.html");

pub const ROUTES: [(&str, &str); 1] = [("/ui", "get")];

pub fn routes() -> Router<Shared> {
    Router::new().route("/ui", get(page))
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}
