//! The REST control plane: Kafka Connect's REST API (same paths, methods,
//! status codes and JSON shapes), served with axum over HTTP or HTTPS, with
//! optional basic or bearer authentication. Handlers only translate HTTP to
//! herder calls; every decision about connectors is the herder's.

mod assignments;
mod auth;
mod connectors;
mod dlq;
mod error;
mod loggers;
mod metrics;
mod plugins;
mod tls;
mod ui;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::oneshot;
use tracing::{info, warn};

pub use self::auth::Auth;
pub use self::error::ApiError;
pub use self::loggers::{LogControl, Loggers};
use crate::config::WorkerConfig;
use crate::herder::Herder;

/// The OpenAPI document of this API, checked in beside the crate.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Bodies larger than this are refused with 413.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
pub struct AppState {
    pub herder: Arc<Herder>,
    pub loggers: Loggers,
    /// Set once the worker has started its connectors and can serve.
    pub ready: AtomicBool,
    /// Filled in the background, so start-up does not wait for the broker.
    pub kafka_cluster_id: std::sync::OnceLock<String>,
}

pub type Shared = Arc<AppState>;

/// Where and how the REST API listens, from the worker config.
#[derive(Debug, Clone)]
pub struct Listener {
    pub tls: bool,
    pub addr: SocketAddr,
}

impl Listener {
    /// Parses the first of `listeners` (`http://host:port` or `https://...`;
    /// an empty host means every interface, as in Connect).
    pub fn from_config(config: &WorkerConfig) -> Result<Self, String> {
        let raw = config.get("listeners").unwrap_or("http://127.0.0.1:8083");
        let first = raw
            .split(',')
            .map(str::trim)
            .find(|s| !s.is_empty())
            .ok_or("'listeners': must name at least one listener, like http://127.0.0.1:8083")?;
        let (scheme, rest) = first.split_once("://").ok_or_else(|| {
            format!(
                "'listeners': '{first}' has no scheme; write http://host:port or https://host:port"
            )
        })?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            other => {
                return Err(format!(
                    "'listeners': unknown scheme '{other}'; use http or https"
                ))
            }
        };
        let (host, port) = rest
            .trim_end_matches('/')
            .rsplit_once(':')
            .ok_or_else(|| format!("'listeners': '{first}' has no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("'listeners': '{port}' is not a port number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = match host {
            "" | "0.0.0.0" => IpAddr::from([0, 0, 0, 0]),
            "localhost" => IpAddr::from([127, 0, 0, 1]),
            h => h
                .parse()
                .map_err(|_| format!("'listeners': '{h}' is not an IP address (or localhost)"))?,
        };
        Ok(Self {
            tls,
            addr: SocketAddr::new(ip, port),
        })
    }
}

/// A running REST server.
pub struct RestServer {
    pub local_addr: SocketAddr,
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RestServer {
    /// Binds the listener and starts serving. Fails (naming the key) on a bad
    /// listener, TLS files or credentials file, or a port in use.
    pub async fn start(config: &WorkerConfig, state: Shared) -> Result<Self, String> {
        let listener = Listener::from_config(config)?;
        let auth = Auth::from_config(config)?;
        if !listener.addr.ip().is_loopback() && auth.is_none() {
            warn!(addr = %listener.addr, "the REST API listens beyond loopback without authentication: anyone who can reach it can change connectors; set rest.auth.basic.credentials.file or rest.auth.bearer.tokens.file");
        }
        let tcp = tokio::net::TcpListener::bind(listener.addr)
            .await
            .map_err(|e| format!("'listeners': cannot listen on {}: {e}", listener.addr))?;
        let local_addr = tcp
            .local_addr()
            .map_err(|e| format!("'listeners': cannot read the bound address: {e}"))?;
        let scheme = if listener.tls { "https" } else { "http" };
        let url = format!("{scheme}://{local_addr}");
        state
            .herder
            .set_worker_id(advertised_id(config, local_addr));
        let app = axum::ServiceExt::<Request>::into_make_service(ignoring_trailing_slash(router(
            state, auth,
        )));
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = if listener.tls {
            let tls = tls::TlsListener::new(tcp, config)?;
            tokio::spawn(async move {
                let _ = axum::serve(tls, app).with_graceful_shutdown(shutdown).await;
            })
        } else {
            tokio::spawn(async move {
                let _ = axum::serve(tcp, app).with_graceful_shutdown(shutdown).await;
            })
        };
        info!(url = %url, "REST API listening");
        Ok(Self {
            local_addr,
            url,
            stop: Some(stop),
            task,
        })
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task).await;
    }
}

/// `rest.advertised.host.name:rest.advertised.port`, defaulting to the bound
/// address: what statuses report as `worker_id`.
fn advertised_id(config: &WorkerConfig, bound: SocketAddr) -> String {
    let host = config
        .get("rest.advertised.host.name")
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if bound.ip().is_unspecified() {
                std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into())
            } else {
                bound.ip().to_string()
            }
        });
    let port = config
        .get("rest.advertised.port")
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(bound.port());
    format!("{host}:{port}")
}

/// `router`, answering `/connectors/x/` as `/connectors/x`: Connect (Jersey)
/// ignores a trailing slash, and third-party clients rely on it. The path is
/// rewritten before routing, which a layer on the router itself cannot do.
pub fn ignoring_trailing_slash(
    router: Router,
) -> tower::util::MapRequest<Router, fn(Request) -> Request> {
    tower::util::MapRequest::new(router, trim_trailing_slash)
}

fn trim_trailing_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let path_and_query = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        let mut parts = req.uri().clone().into_parts();
        // A path cut short of its slashes is still a valid path.
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

pub fn router(state: Shared, auth: Option<Auth>) -> Router {
    let api = Router::new()
        .route("/", get(server_info))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(openapi))
        .merge(connectors::routes())
        .merge(plugins::routes())
        .merge(loggers::routes())
        .merge(dlq::routes())
        .merge(assignments::routes())
        .merge(ui::routes());
    let api = match auth {
        Some(auth) => api.layer(axum::middleware::from_fn_with_state(
            Arc::new(auth),
            auth::require,
        )),
        None => api,
    };
    // Health stays open: probes carry no credentials, and it reveals nothing.
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn server_info(State(s): State<Shared>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": option_env!("SLUICE_GIT_COMMIT").unwrap_or("unknown"),
        "kafka_cluster_id": s.kafka_cluster_id.get(),
    }))
}

async fn health(State(s): State<Shared>) -> impl IntoResponse {
    if s.ready.load(Ordering::Acquire) {
        (
            StatusCode::OK,
            Json(
                serde_json::json!({"status": "healthy", "message": "Worker has completed startup and is ready to handle requests."}),
            ),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                serde_json::json!({"status": "starting", "message": "Worker is still starting up."}),
            ),
        )
    }
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "HTTP 404 Not Found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTP 405 Method Not Allowed",
    )
}

/// The routes and verbs the router serves, for the OpenAPI consistency test.
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    let mut all = vec![
        ("/", "get"),
        ("/health", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ];
    all.extend(connectors::ROUTES);
    all.extend(plugins::ROUTES);
    all.extend(loggers::ROUTES);
    all.extend(dlq::ROUTES);
    all.extend(assignments::ROUTES);
    all.extend(ui::ROUTES);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_covers_exactly_the_served_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .filter(|m| ["get", "put", "post", "patch", "delete"].contains(&m.as_str()))
                    .map(move |m| (path.clone(), m.clone()))
            })
            .collect();
        let mut served: Vec<(String, String)> = route_table()
            .into_iter()
            .map(|(p, m)| (p.to_owned(), m.to_owned()))
            .collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
    }

    #[test]
    fn a_trailing_slash_is_cut_before_routing() {
        for (sent, routed) in [
            ("/connectors/x/", "/connectors/x"),
            ("/connectors/?expand=status", "/connectors?expand=status"),
            ("/connectors//", "/connectors"),
            ("/connectors", "/connectors"),
            ("/", "/"),
        ] {
            let req = Request::builder()
                .uri(sent)
                .body(axum::body::Body::empty())
                .unwrap();
            assert_eq!(trim_trailing_slash(req).uri().to_string(), routed, "{sent}");
        }
    }

    fn listener(value: &str) -> Result<Listener, String> {
        let raw = [
            ("bootstrap.servers", "localhost:9092"),
            ("listeners", value),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Listener::from_config(&WorkerConfig::from_raw(raw).unwrap())
    }

    #[test]
    fn listeners_parse_as_connect_writes_them() {
        let l = listener("http://:8083").unwrap();
        assert!(!l.tls && l.addr.ip().is_unspecified() && l.addr.port() == 8083);
        let l = listener("https://127.0.0.1:8443, http://127.0.0.1:8083").unwrap();
        assert!(l.tls && l.addr.ip().is_loopback());
        assert!(listener("localhost:8083").unwrap_err().contains("scheme"));
        assert!(listener("http://127.0.0.1").unwrap_err().contains("port"));
        assert!(listener("ftp://127.0.0.1:1")
            .unwrap_err()
            .contains("scheme"));
    }
}
