//! sluice beside its peer: the same work through a sluice worker and through
//! the real Kafka Connect 4.3 worker (with Debezium 3.6.3 for CDC), in one run,
//! on the same broker and PostgreSQL, one after the other so neither takes CPU
//! from the other.
//!
//! Both workers run with their defaults as a user starts them (Connect with
//! `connect-standalone.sh`'s JVM flags), get the same connector config over
//! REST, and are measured the same way: the steady-state rate, the CPU seconds
//! of the worker process per million records over that window, its peak RSS,
//! the time from spawn to its REST API answering, and its RSS while idle.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::process::{rss_mb, Measured, Meter};
use crate::{stop, wait_until, write_json, LineCounter};

/// Where `dev/install connect` put Kafka Connect: a `java` file naming the JDK
/// and a `classpath` file.
#[derive(Clone)]
pub struct ConnectHome(pub PathBuf);

impl ConnectHome {
    fn read(&self, name: &str) -> Result<String> {
        let path = self.0.join(name);
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("{}: run dev/install connect", path.display()))?
            .trim()
            .to_owned())
    }
}

/// Both workers commit (and sluice's file sink flushes its buffer and fsyncs)
/// every second rather than every minute, their default: otherwise the last
/// records of a sink run sit in sluice's buffer until the minute is up, and the
/// run measures the interval rather than the sink.
const OFFSET_FLUSH_MS: u32 = 1000;

/// Which worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sluice,
    Connect,
}

/// A worker process serving the REST API, started with no connectors.
pub struct RestWorker {
    child: Child,
    url: String,
    /// Milliseconds from spawn to `GET /connectors` answering 200.
    pub ready_ms: f64,
}

/// What a worker needs to start.
pub struct Launch<'a> {
    pub sluice: &'a Path,
    /// Needed only to start Kafka Connect.
    pub connect: Option<&'a ConnectHome>,
    pub bootstrap: &'a str,
    pub scratch: &'a Path,
    /// JSON with schemas (`true`) or without, for keys and values.
    pub schemas: bool,
}

impl RestWorker {
    #[allow(
        clippy::too_many_lines,
        reason = "the reference worker's set-up, step by step: a script, long but flat."
    )]
    pub fn start(kind: Kind, launch: &Launch<'_>, tag: &str) -> Result<RestWorker> {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let offsets = launch.scratch.join(format!("offsets-{tag}"));
        let command = match kind {
            Kind::Sluice => {
                let worker = write_json(
                    launch.scratch,
                    &format!("worker-{tag}.json"),
                    &json!({
                        "bootstrap.servers": launch.bootstrap,
                        "offset.storage.file.filename": offsets.display().to_string(),
                        "offset.flush.interval.ms": OFFSET_FLUSH_MS,
                        "listeners": url,
                        "key.converter": "json",
                        "key.converter.schemas.enable": launch.schemas,
                        "value.converter": "json",
                        "value.converter.schemas.enable": launch.schemas,
                    }),
                )?;
                let mut c = Command::new(launch.sluice);
                c.arg("standalone")
                    .arg(worker)
                    .env("SLUICE_LOG", "info,librdkafka=warn");
                c
            }
            Kind::Connect => {
                let properties = launch.scratch.join(format!("worker-{tag}.properties"));
                std::fs::write(
                    &properties,
                    format!(
                        "bootstrap.servers={}\nlisteners={url}\noffset.storage.file.filename={}\n\
                         offset.flush.interval.ms={OFFSET_FLUSH_MS}\n\
                         key.converter=org.apache.kafka.connect.json.JsonConverter\n\
                         value.converter=org.apache.kafka.connect.json.JsonConverter\n\
                         key.converter.schemas.enable={schemas}\nvalue.converter.schemas.enable={schemas}\n\
                         plugin.discovery=only_scan\n",
                        launch.bootstrap,
                        offsets.display(),
                        schemas = launch.schemas,
                    ),
                )?;
                let log4j = launch.scratch.join("log4j2.properties");
                std::fs::write(
                    &log4j,
                    "rootLogger.level = INFO\nrootLogger.appenderRef.stdout.ref = STDOUT\n\
                     appender.stdout.type = Console\nappender.stdout.name = STDOUT\n\
                     appender.stdout.layout.type = PatternLayout\n\
                     appender.stdout.layout.pattern = [%d] %p %m (%c)%n\n",
                )?;
                let home = launch
                    .connect
                    .context("--connect-home is needed to run Kafka Connect")?;
                let mut c = Command::new(home.read("java")?);
                // connect-standalone.sh's heap and kafka-run-class.sh's JVM flags.
                c.args([
                    "-Xms256M",
                    "-Xmx2G",
                    "-server",
                    "-XX:+UseG1GC",
                    "-XX:MaxGCPauseMillis=20",
                    "-XX:InitiatingHeapOccupancyPercent=35",
                    "-XX:+ExplicitGCInvokesConcurrent",
                    "-XX:MaxInlineLevel=15",
                    "-Djava.awt.headless=true",
                ])
                .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
                .arg("-cp")
                .arg(home.read("classpath")?)
                .arg("org.apache.kafka.connect.cli.ConnectStandalone")
                .arg(properties);
                c
            }
        };
        let log = std::fs::File::create(launch.scratch.join(format!("{tag}.log")))?;
        let spawned = Instant::now();
        let child = {
            let mut command = command;
            command
                .stdout(log.try_clone()?)
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start the {kind:?} worker"))?
        };
        let mut worker = RestWorker {
            child,
            url,
            ready_ms: 0.0,
        };
        wait_until(Duration::from_secs(120), || {
            if let Some(status) = worker.child.try_wait()? {
                bail!(
                    "the {kind:?} worker exited with {status} (log: {tag}.log in the scratch dir)"
                );
            }
            Ok(matches!(
                http(&worker.url, "GET", "/connectors", None),
                Ok((200, _))
            ))
        })?;
        worker.ready_ms = spawned.elapsed().as_secs_f64() * 1000.0;
        Ok(worker)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Creates a connector; both workers take Kafka Connect's config shape.
    pub fn create(&self, name: &str, config: &Value) -> Result<()> {
        let (status, body) = http(
            &self.url,
            "PUT",
            &format!("/connectors/{name}/config"),
            Some(&config.to_string()),
        )?;
        if status != 201 && status != 200 {
            bail!("creating {name}: HTTP {status}: {body}");
        }
        Ok(())
    }

    pub fn stop(mut self) -> Result<()> {
        stop(&mut self.child)
    }
}

impl Drop for RestWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start-up and idle cost: (ms from spawn to REST ready, RSS MB 5 s later).
pub fn idle(kind: Kind, launch: &Launch<'_>, tag: &str) -> Result<(f64, f64)> {
    let w = RestWorker::start(kind, launch, tag)?;
    std::thread::sleep(Duration::from_secs(5));
    let rss = rss_mb(w.pid()).0;
    let ready = w.ready_ms;
    w.stop()?;
    Ok((ready, rss))
}

/// Connect's own `FileStreamSinkConnector` config, which both workers run:
/// `topic` into a fresh file, values through `converter`.
pub fn file_sink(
    kind: Kind,
    launch: &Launch<'_>,
    tag: &str,
    topic: &str,
    records: u64,
    converter: &str,
) -> Result<Measured> {
    let out = launch.scratch.join(format!("{tag}.out"));
    let w = RestWorker::start(kind, launch, tag)?;
    w.create(
        tag,
        &json!({
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1",
            "topics": topic,
            "file": out.display().to_string(),
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": converter,
            "value.converter.schemas.enable": "false",
        }),
    )?;
    let mut meter = Meter::new(w.pid());
    let mut lines = LineCounter::new(&out);
    wait_until(Duration::from_secs(900), || {
        Ok(meter.observe(lines.count(), records))
    })
    .with_context(|| format!("{kind:?} file sink of {topic}"))?;
    w.stop()?;
    std::fs::remove_file(&out).ok();
    Ok(meter.result())
}

/// A loopback port nothing listens on (yet).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One HTTP/1.1 request with `Connection: close`: (status, body). Enough for a
/// benchmark's few REST calls, without an HTTP client's build time.
fn http(base: &str, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    let authority = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status line")?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}
