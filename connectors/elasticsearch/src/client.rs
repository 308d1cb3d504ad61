//! The HTTP side: `_bulk` requests over reqwest, round-robin over
//! `connection.url` with failover to the next URL, authentication, a CA file,
//! gzip bodies. Decides only whether a failed request is worth sending again,
//! and whether it failed because the server is slower than its timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};

use crate::config::{Auth, EsConfig};

/// Why a request got no `_bulk` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Unreachable, 429 or 5xx: the same request may succeed later.
    Transient(String),
    /// No answer within the request's timeout: the server may still be
    /// working on it (so it is not sent to another URL of the same cluster).
    TimedOut(String),
    /// Refused in a way a retry cannot change (credentials, a too-large body).
    Permanent(String),
}

pub struct EsClient {
    http: reqwest::Client,
    urls: Vec<String>,
    next: AtomicUsize,
    authorization: Option<HeaderValue>,
    gzip: bool,
}

impl EsClient {
    pub fn new(config: &EsConfig) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.read_timeout.max(Duration::from_millis(1)))
            .pool_max_idle_per_host(config.max_in_flight);
        if let Some(idle) = config.idle_timeout {
            builder = builder.pool_idle_timeout(idle);
        }
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("elastic.https.ssl.ca.location: cannot read '{path}': {e}"))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                format!("elastic.https.ssl.ca.location: '{path}' is not PEM certificates: {e}")
            })? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let authorization = match &config.auth {
            Auth::None => None,
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Auth::ApiKey(key) => Some(format!("ApiKey {key}")),
        }
        .map(|v| {
            let mut v = HeaderValue::from_str(&v).map_err(|_| {
                "connection.password or connection.api.key: not a valid header value".to_owned()
            })?;
            v.set_sensitive(true);
            Ok::<_, String>(v)
        })
        .transpose()?;
        Ok(Self {
            http: builder
                .build()
                .map_err(|e| format!("connection.url: cannot build the HTTP client: {e}"))?,
            urls: config.urls.clone(),
            next: AtomicUsize::new(0),
            authorization,
            gzip: config.compression,
        })
    }

    /// Checks the cluster answers and takes the credentials; a cluster that is
    /// merely down is `Transient`.
    pub async fn ping(&self) -> Result<(), RequestError> {
        self.send(|url| self.http.get(format!("{url}/")))
            .await
            .map(|_| ())
    }

    /// Sends one `_bulk` body (NDJSON), to be answered within `timeout`, and
    /// returns the response body.
    pub async fn bulk(&self, body: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, RequestError> {
        let (body, encoding) = if self.gzip {
            (gzip(&body)?, Some(HeaderValue::from_static("gzip")))
        } else {
            (body, None)
        };
        let body = bytes::Bytes::from(body);
        self.send(|url| {
            let mut r = self
                .http
                .post(format!("{url}/_bulk"))
                .header(CONTENT_TYPE, "application/x-ndjson")
                .timeout(timeout.max(Duration::from_millis(1)))
                .body(body.clone());
            if let Some(e) = &encoding {
                r = r.header(CONTENT_ENCODING, e.clone());
            }
            r
        })
        .await
    }

    /// Tries each URL once, starting with the next in turn, until one answers.
    async fn send(
        &self,
        request: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, RequestError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.urls.len() {
            let url = &self.urls[(start + i) % self.urls.len()];
            let mut r = request(url);
            if let Some(a) = &self.authorization {
                r = r.header(AUTHORIZATION, a.clone());
            }
            let response = match r.send().await {
                Ok(r) => r,
                Err(e) if e.is_timeout() => {
                    return Err(RequestError::TimedOut(format!(
                        "{url}: {}",
                        error_chain(&e)
                    )));
                }
                Err(e) => {
                    let chain = error_chain(&e);
                    // rustls' words for a certificate it cannot verify: another
                    // try meets the same certificate, so say what to change.
                    if chain.contains("invalid peer certificate") {
                        return Err(RequestError::Permanent(format!(
                            "{url}: the server's TLS certificate is not trusted ({chain}): set elastic.https.ssl.ca.location to the CA that signed it"
                        )));
                    }
                    last = format!("{url}: {chain}");
                    continue;
                }
            };
            let status = response.status();
            let body = match response.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) if e.is_timeout() => {
                    return Err(RequestError::TimedOut(format!(
                        "{url}: reading the response: {}",
                        error_chain(&e)
                    )));
                }
                Err(e) => {
                    last = format!("{url}: reading the response: {}", error_chain(&e));
                    continue;
                }
            };
            return match status.as_u16() {
                200..=299 => Ok(body),
                401 | 403 => Err(RequestError::Permanent(format!(
                    "{url} refused the credentials (HTTP {status}): check connection.username/connection.password or connection.api.key"
                ))),
                413 => Err(RequestError::Permanent(format!(
                    "{url} refused a _bulk body as too large (HTTP 413): lower bulk.size.bytes"
                ))),
                429 | 500..=599 => {
                    last = format!("{url}: HTTP {status}: {}", snippet(&body));
                    continue;
                }
                _ => Err(RequestError::Permanent(format!(
                    "{url}: HTTP {status}: {}",
                    snippet(&body)
                ))),
            };
        }
        Err(RequestError::Transient(format!(
            "no Elasticsearch URL answered (connection.url); last: {last}"
        )))
    }
}

fn gzip(body: &[u8]) -> Result<Vec<u8>, RequestError> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body)
        .and_then(|()| enc.finish())
        .map_err(|e| RequestError::Permanent(format!("cannot gzip a _bulk body: {e}")))
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(300).collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
