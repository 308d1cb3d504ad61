//! Optional authentication for the REST API: HTTP basic against a credentials
//! file (`user: password` lines, as Jetty's property file login module reads
//! them for Connect), or bearer tokens from a file (one per line). Secrets are
//! compared in constant time and never logged.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::ApiError;
use crate::config::WorkerConfig;

pub const BASIC_FILE: &str = "rest.auth.basic.credentials.file";
pub const BEARER_FILE: &str = "rest.auth.bearer.tokens.file";

pub struct Auth {
    basic: Vec<(String, String)>,
    tokens: Vec<String>,
}

impl Auth {
    /// `None` when neither file is configured.
    pub fn from_config(config: &WorkerConfig) -> Result<Option<Self>, String> {
        let read = |key: &str| -> Result<Option<Vec<String>>, String> {
            let Some(path) = config.get(key).filter(|p| !p.is_empty()) else {
                return Ok(None);
            };
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("'{key}': cannot read {path}: {e}"))?;
            Ok(Some(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned)
                    .collect(),
            ))
        };
        let basic = read(BASIC_FILE)?;
        let tokens = read(BEARER_FILE)?;
        if basic.is_none() && tokens.is_none() {
            return Ok(None);
        }
        let mut users = Vec::new();
        for (n, line) in basic.unwrap_or_default().iter().enumerate() {
            let (user, rest) = line
                .split_once(':')
                .ok_or_else(|| format!("'{BASIC_FILE}': line {} is not 'user: password'", n + 1))?;
            // Jetty's format allows roles after the password: `pw,role1,role2`.
            let password = rest.trim().split(',').next().unwrap_or("").to_owned();
            users.push((user.trim().to_owned(), password));
        }
        let auth = Self {
            basic: users,
            tokens: tokens.unwrap_or_default(),
        };
        if auth.basic.is_empty() && auth.tokens.is_empty() {
            return Err(format!(
                "'{BASIC_FILE}'/'{BEARER_FILE}': the files name no users or tokens, so nobody could use the API"
            ));
        }
        Ok(Some(auth))
    }

    fn allows(&self, authorization: &str) -> bool {
        if let Some(token) = authorization.strip_prefix("Bearer ") {
            return self
                .tokens
                .iter()
                .any(|t| constant_time_eq(t.as_bytes(), token.trim().as_bytes()));
        }
        let Some(encoded) = authorization.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        self.basic.iter().any(|(u, p)| {
            // Evaluate both comparisons, so timing does not reveal which failed.
            let a = constant_time_eq(u.as_bytes(), user.as_bytes());
            let b = constant_time_eq(p.as_bytes(), password.as_bytes());
            a & b
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn require(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let allowed = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| auth.allows(v));
    if allowed {
        return next.run(request).await;
    }
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "authentication required").into_response();
    let challenge = if auth.basic.is_empty() {
        "Bearer"
    } else {
        "Basic realm=\"sluice\""
    };
    if let Ok(v) = header::HeaderValue::from_str(challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}
