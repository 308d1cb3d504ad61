//! `sluice connectors list|get|create|pause|resume|stop|restart|delete|status|offsets`:
//! a client for a running worker's REST API. The API is Kafka Connect's, so this
//! also drives a Connect cluster, and existing Connect tooling drives sluice.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::{Method, Url};
use serde_json::{json, Map, Value};

#[derive(Subcommand)]
pub enum ConnectorsAction {
    /// List connectors with their type, state and how many tasks are running.
    List,
    /// Show a connector's configuration and tasks.
    Get { name: String },
    /// Create a connector from a JSON file: either `{"name": .., "config": {..}}`,
    /// as Connect's API takes it, or a flat config that has `name` among its keys.
    Create {
        #[arg(short = 'f', long)]
        file: PathBuf,
    },
    /// Pause a connector; its tasks keep their resources and resume where they were.
    Pause { name: String },
    /// Resume a paused or stopped connector.
    Resume { name: String },
    /// Stop a connector and shut its tasks down, keeping its configuration and
    /// offsets. Offsets can only be changed while a connector is stopped.
    Stop { name: String },
    /// Restart a connector and, optionally, its tasks.
    Restart {
        name: String,
        /// Restart the tasks too, not just the connector instance.
        #[arg(long)]
        include_tasks: bool,
        /// Restart only instances that are FAILED.
        #[arg(long)]
        only_failed: bool,
    },
    /// Delete a connector. Its offsets are kept, so a connector created again
    /// under the same name resumes where this one was.
    Delete { name: String },
    /// Show the state of a connector and each of its tasks.
    Status { name: String },
    /// Show a connector's committed offsets.
    Offsets { name: String },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Args)]
pub struct Client {
    /// The worker's REST endpoint.
    #[arg(
        long,
        env = "SLUICE_URL",
        default_value = "http://127.0.0.1:8083",
        global = true
    )]
    url: String,
    /// `json` prints the worker's responses unchanged, for scripts.
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
    /// User for HTTP basic authentication.
    #[arg(long, env = "SLUICE_USER", global = true)]
    user: Option<String>,
    /// Password for HTTP basic authentication.
    #[arg(long, env = "SLUICE_PASSWORD", hide_env_values = true, global = true)]
    password: Option<String>,
    /// Bearer token, for workers that authenticate with tokens instead of basic auth.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Accept any TLS certificate. Only for test setups with self-signed certificates;
    /// prefer --cacert.
    #[arg(long, global = true)]
    insecure: bool,
    /// A PEM file of CA certificates to trust in addition to the system's.
    #[arg(long, value_name = "PEM", global = true)]
    cacert: Option<PathBuf>,
}

enum Auth {
    None,
    Basic(String, Option<String>),
    Bearer(String),
}

struct Api {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    json_out: bool,
}

impl Api {
    fn new(c: &Client) -> anyhow::Result<Self> {
        let base = Url::parse(&c.url).with_context(|| format!("--url '{}'", c.url))?;
        let auth = match (&c.user, &c.token) {
            (Some(_), Some(_)) => bail!("give either --user or --token, not both"),
            (Some(u), None) => Auth::Basic(u.clone(), c.password.clone()),
            (None, Some(t)) => Auth::Bearer(t.clone()),
            (None, None) if c.password.is_some() => bail!("--password needs --user"),
            (None, None) => Auth::None,
        };
        // Connect's own request timeout is 90s; waiting a little longer lets its
        // timeout error reach the user instead of a bare client-side one.
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(100));
        if c.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(path) = &c.cacert {
            let pem =
                std::fs::read(path).with_context(|| format!("--cacert {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("--cacert {}", path.display()))?;
            if certs.is_empty() {
                bail!("--cacert {}: no PEM certificates in it", path.display());
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().context("cannot set up the HTTP client")?;
        Ok(Self {
            http,
            base,
            auth,
            json_out: c.output == Output::Json,
        })
    }

    /// Sends one request; `Ok(None)` for an empty (202/204) response. Segments are
    /// percent-encoded, so connector names with `/` or spaces are safe.
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> anyhow::Result<Option<Value>> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow!("--url {}: expected e.g. http://127.0.0.1:8083", self.base))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut req = self.http.request(method.clone(), url);
        req = match &self.auth {
            Auth::None => req,
            Auth::Basic(user, password) => req.basic_auth(user, password.as_deref()),
            Auth::Bearer(token) => req.bearer_auth(token),
        };
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| {
            let why = causes(&e);
            if e.is_connect() && why.contains("certificate") {
                anyhow!("TLS with {}: {why} (trust its CA with --cacert)", self.base)
            } else if e.is_connect() {
                anyhow!(
                    "cannot reach the sluice worker at {}: {why} (is it running? set --url)",
                    self.base
                )
            } else {
                anyhow!("{method} {path}: {why}")
            }
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| anyhow!("{method} {path}: reading the response: {}", causes(&e)))?;
        if !status.is_success() {
            // Connect's errors are {"error_code", "message"}; a proxy in between may
            // answer with anything, so fall back to the raw text or the reason phrase.
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .or_else(|| Some(text.trim().to_owned()).filter(|t| !t.is_empty()))
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
            bail!("{method} {path}: HTTP {}: {message}", status.as_u16());
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        let value = serde_json::from_str(&text)
            .with_context(|| format!("{method} {path}: the response is not JSON"))?;
        Ok(Some(value))
    }

    /// Pause, resume, stop (PUT .../{verb}) and delete (no verb) all answer without a body.
    async fn lifecycle(&self, name: &str, verb: Option<&str>, done: &str) -> anyhow::Result<()> {
        let r = match verb {
            Some(v) => {
                self.send(Method::PUT, &["connectors", name, v], &[], None)
                    .await?
            }
            None => {
                self.send(Method::DELETE, &["connectors", name], &[], None)
                    .await?
            }
        };
        self.done(r, format!("connector '{name}' {done}"))
    }

    /// For requests that answer 202/204: silence for scripts, a line for people.
    fn done(&self, body: Option<Value>, line: String) -> anyhow::Result<()> {
        match body {
            Some(v) if self.json_out => print_json(&v),
            _ if self.json_out => Ok(()),
            _ => {
                println!("{line}");
                Ok(())
            }
        }
    }

    async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> anyhow::Result<Value> {
        Ok(self
            .send(Method::GET, segments, query, None)
            .await?
            .unwrap_or(Value::Null))
    }
}

/// reqwest's top-level message ("error sending request") hides the useful part,
/// e.g. "Connection refused", in its sources.
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = s.source();
    }
    out
}

#[allow(
    clippy::too_many_lines,
    reason = "one arm per subcommand: a dispatch table."
)]
pub async fn run(action: ConnectorsAction, client: Client) -> anyhow::Result<()> {
    let api = Api::new(&client)?;
    let json_out = api.json_out;
    match action {
        ConnectorsAction::List => {
            let all = api
                .get(&["connectors"], &[("expand", "status"), ("expand", "info")])
                .await?;
            if json_out {
                return print_json(&all);
            }
            let empty = Map::new();
            let mut rows = Vec::new();
            for (name, c) in all.as_object().unwrap_or(&empty) {
                let tasks = c.pointer("/status/tasks").and_then(Value::as_array);
                let running = tasks.map_or(0, |ts| {
                    ts.iter().filter(|t| t["state"] == "RUNNING").count()
                });
                rows.push(vec![
                    name.clone(),
                    text(
                        c.pointer("/info/type")
                            .or_else(|| c.pointer("/status/type")),
                    ),
                    text(c.pointer("/status/connector/state")),
                    format!("{running}/{}", tasks.map_or(0, Vec::len)),
                    text(c.pointer("/info/config/connector.class")),
                ]);
            }
            crate::table::print(&["NAME", "TYPE", "STATE", "TASKS", "CLASS"], rows, &[]);
        }
        ConnectorsAction::Get { name } => print_json(&api.get(&["connectors", &name], &[]).await?)?,
        ConnectorsAction::Create { file } => {
            let body = create_request(&file)?;
            let created = api
                .send(Method::POST, &["connectors"], &[], Some(&body))
                .await?;
            let name = text(body.get("name"));
            api.done(created, format!("connector '{name}' created"))?;
        }
        ConnectorsAction::Pause { name } => api.lifecycle(&name, Some("pause"), "paused").await?,
        ConnectorsAction::Resume { name } => {
            api.lifecycle(&name, Some("resume"), "resumed").await?
        }
        ConnectorsAction::Stop { name } => api.lifecycle(&name, Some("stop"), "stopped").await?,
        ConnectorsAction::Delete { name } => api.lifecycle(&name, None, "deleted").await?,
        ConnectorsAction::Restart {
            name,
            include_tasks,
            only_failed,
        } => {
            let mut query = Vec::new();
            if include_tasks {
                query.push(("includeTasks", "true"));
            }
            if only_failed {
                query.push(("onlyFailed", "true"));
            }
            let path = ["connectors", name.as_str(), "restart"];
            let r = api.send(Method::POST, &path, &query, None).await?;
            // With either flag the restart is asynchronous (202), the instances RESTARTING.
            let line = match &r {
                Some(_) => format!("connector '{name}' restarting; see `sluice connectors status`"),
                None => format!("connector '{name}' restarted"),
            };
            api.done(r, line)?;
        }
        ConnectorsAction::Status { name } => {
            let status = api.get(&["connectors", &name, "status"], &[]).await?;
            if json_out {
                return print_json(&status);
            }
            let row = |id: String, s: &Value| {
                let trace = s["trace"]
                    .as_str()
                    .and_then(|t| t.lines().next())
                    .unwrap_or("");
                vec![
                    id,
                    text(s.get("state")),
                    text(s.get("worker_id")),
                    trace.to_owned(),
                ]
            };
            let mut rows = vec![row(name.clone(), &status["connector"])];
            for t in status["tasks"].as_array().into_iter().flatten() {
                rows.push(row(format!("{name}-{}", text(t.get("id"))), t));
            }
            crate::table::print(&["ID", "STATE", "WORKER", "TRACE"], rows, &[0]);
        }
        ConnectorsAction::Offsets { name } => {
            let offsets = api.get(&["connectors", &name, "offsets"], &[]).await?;
            if json_out {
                return print_json(&offsets);
            }
            let rows = offsets["offsets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| vec![o["partition"].to_string(), o["offset"].to_string()])
                .collect();
            crate::table::print(&["PARTITION", "OFFSET"], rows, &[1]);
        }
    }
    Ok(())
}

/// `sluice plugins`: what a running worker can run (`GET /connector-plugins`,
/// transforms, predicates and converters included).
pub async fn plugins(client: Client) -> anyhow::Result<()> {
    let api = Api::new(&client)?;
    let all = api
        .get(&["connector-plugins"], &[("connectorsOnly", "false")])
        .await?;
    if api.json_out {
        return print_json(&all);
    }
    let rows = all
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            vec![
                text(p.get("class")),
                text(p.get("type")),
                text(p.get("version")),
            ]
        })
        .collect();
    crate::table::print(&["CLASS", "TYPE", "VERSION"], rows, &[]);
    Ok(())
}

/// Accepts both shapes people keep connector configs in: Connect's create request,
/// and the flat `connector.properties`-as-JSON form with `name` inside. Numbers and
/// booleans become strings, since Connect rejects `"tasks.max": 1` with an unhelpful
/// deserialization error.
fn create_request(file: &Path) -> anyhow::Result<Value> {
    let raw =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let doc: Value =
        serde_json::from_str(&raw).with_context(|| format!("{}: not JSON", file.display()))?;
    let Value::Object(mut doc) = doc else {
        bail!("{}: expected a JSON object", file.display());
    };
    let nested = matches!(doc.get("config"), Some(Value::Object(_)));
    let Some(Value::String(name)) = doc.get("name").cloned() else {
        bail!("{}: no \"name\" string in it", file.display());
    };
    let config = if nested {
        doc.remove("config")
    } else {
        Some(Value::Object(doc.clone()))
    };
    let mut strings = Map::new();
    for (k, v) in config
        .as_ref()
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => v.to_string(),
            _ => bail!(
                "{}: config key '{k}' must be a string, number or boolean",
                file.display()
            ),
        };
        strings.insert(k.clone(), Value::String(s));
    }
    let mut body = json!({ "name": name, "config": strings });
    if nested {
        if let Some(state) = doc.get("initial_state") {
            body["initial_state"] = state.clone();
        }
    }
    Ok(body)
}

/// A JSON string without its quotes; anything else as compact JSON; missing as "".
fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
