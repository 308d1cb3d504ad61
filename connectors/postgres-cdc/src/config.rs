//! Debezium's PostgreSQL connector keys, so a Debezium config runs with only
//! `connector.class` changed.

use crate::envelope::{Column, Table};
use crate::types::{BinaryMode, DecimalMode, HstoreMode, IntervalMode, TimePrecision};
use sluice_api::config::{
    ConfigDef, ConfigKey, ConfigType, Importance, ValidatedConfig, Validator,
};
use sluice_api::{ConnectError, ErrorKind, TaskConfig};

pub fn config_def() -> ConfigDef {
    let conn = "Connection";
    ConfigDef::new()
        .define(ConfigKey::new("database.hostname", ConfigType::String).importance(Importance::High).group(conn).doc("The PostgreSQL server's host."))
        .define(ConfigKey::new("database.port", ConfigType::Int).default("5432").validator(Validator::between(1.0, 65535.0)).group(conn))
        .define(ConfigKey::new("database.user", ConfigType::String).importance(Importance::High).group(conn).doc("A user with the REPLICATION attribute and SELECT on the captured tables."))
        .define(ConfigKey::new("database.password", ConfigType::Password).default("").group(conn))
        .define(ConfigKey::new("database.dbname", ConfigType::String).importance(Importance::High).group(conn))
        .define(ConfigKey::new("database.sslmode", ConfigType::String).default("prefer").validator(Validator::OneOf(&["disable", "prefer", "require", "verify-ca", "verify-full"])).group(conn).doc("As libpq's sslmode: prefer and require encrypt without checking the certificate; verify-ca checks it against database.sslrootcert; verify-full also checks that it names database.hostname."))
        .define(ConfigKey::new("database.sslrootcert", ConfigType::String).optional().group(conn).doc("The PEM file of the CA that signed the server's certificate (verify-ca, verify-full)."))
        .define(ConfigKey::new("topic.prefix", ConfigType::String).optional().importance(Importance::High).doc("Topics are named <topic.prefix>.<schema>.<table>; also the source partition's name."))
        .define(ConfigKey::new("database.server.name", ConfigType::String).optional().doc("Debezium 1.x's name for topic.prefix, used when topic.prefix is not set."))
        .define(ConfigKey::new("plugin.name", ConfigType::String).default("pgoutput").validator(Validator::OneOf(&["pgoutput"])).doc("Only pgoutput, the plugin built into PostgreSQL 10 and later."))
        .define(ConfigKey::new("slot.name", ConfigType::String).default("debezium").validator(Validator::NonEmpty))
        .define(ConfigKey::new("slot.drop.on.stop", ConfigType::Boolean).default("false").doc("Drop the slot when the task stops (for tests; the next start snapshots again)."))
        .define(ConfigKey::new("publication.name", ConfigType::String).default("dbz_publication").validator(Validator::NonEmpty))
        .define(ConfigKey::new("publication.autocreate.mode", ConfigType::String).default("all_tables").validator(Validator::OneOf(&["all_tables", "filtered", "disabled"])))
        .define(ConfigKey::new("table.include.list", ConfigType::List).default("").doc("Regexes of schema.table to capture; empty: all."))
        .define(ConfigKey::new("table.exclude.list", ConfigType::List).default(""))
        .define(ConfigKey::new("column.include.list", ConfigType::List).default("").doc("Regexes of schema.table.column to capture; empty: all. Key columns are always kept."))
        .define(ConfigKey::new("column.exclude.list", ConfigType::List).default(""))
        .define(ConfigKey::new("snapshot.mode", ConfigType::String).default("initial").validator(Validator::OneOf(&["initial", "no_data", "never", "initial_only", "always", "when_needed"])))
        .define(ConfigKey::new("snapshot.fetch.size", ConfigType::Int).default("10240").validator(Validator::at_least(1.0)).doc("Rows read per chunk of a snapshot: its memory bound."))
        .define(ConfigKey::new("signal.data.collection", ConfigType::String).default("").doc("The signal table, schema.table with columns (id text PRIMARY KEY, type text, data text): an 'execute-snapshot' row starts an incremental snapshot."))
        .define(ConfigKey::new("incremental.snapshot.chunk.size", ConfigType::Int).default("1024").validator(Validator::at_least(1.0)))
        .define(ConfigKey::new("time.precision.mode", ConfigType::String).default("adaptive").validator(Validator::OneOf(&["adaptive", "adaptive_time_microseconds", "connect"])).doc("adaptive: time/timestamp columns declared with precision 3 or less in milliseconds, others in microseconds; adaptive_time_microseconds: time always in microseconds; connect: Connect's Date, Time and Timestamp, in milliseconds."))
        .define(ConfigKey::new("decimal.handling.mode", ConfigType::String).default("precise").validator(Validator::OneOf(&["precise", "double", "string"])).doc("numeric columns: precise (Connect Decimal), double, or string."))
        .define(ConfigKey::new("interval.handling.mode", ConfigType::String).default("numeric").validator(Validator::OneOf(&["numeric", "string"])).doc("interval columns: numeric (MicroDuration, microseconds with a month of 30.4375 days) or string (ISO-8601, P1Y2M3DT4H5M6.5S)."))
        .define(ConfigKey::new("hstore.handling.mode", ConfigType::String).default("json").validator(Validator::OneOf(&["json", "map"])).doc("hstore columns: json (a JSON object in a string) or map (a map of strings to optional strings)."))
        .define(ConfigKey::new("binary.handling.mode", ConfigType::String).default("bytes").validator(Validator::OneOf(&["bytes", "base64", "base64-url-safe", "hex"])).doc("bytea columns: bytes, or a base64 / base64-url-safe / hex string."))
        .define(ConfigKey::new("extended.headers.enabled", ConfigType::Boolean).default("true").doc("Add Debezium's context headers to every event: __debezium.context.connectorLogicalName (topic.prefix), connectorName (postgresql), taskId, runId (new at every start)."))
        .define(ConfigKey::new("tombstones.on.delete", ConfigType::Boolean).default("true"))
        .define(ConfigKey::new("skipped.operations", ConfigType::List).default("t").doc("Operations not to emit: c, u, d, t (truncate), or none."))
        .define(ConfigKey::new("unavailable.value.placeholder", ConfigType::String).default("__debezium_unavailable_value"))
        .define(ConfigKey::new("heartbeat.interval.ms", ConfigType::Long).default("0").validator(Validator::at_least(0.0)).doc("How often to emit a heartbeat record (and run heartbeat.action.query); 0 turns heartbeats off."))
        .define(ConfigKey::new("heartbeat.action.query", ConfigType::String).default("").doc("SQL run at every heartbeat, e.g. an upsert into a captured heartbeat table, so an idle captured table does not pin WAL."))
        .define(ConfigKey::new("topic.heartbeat.prefix", ConfigType::String).default("__debezium-heartbeat"))
        .define(ConfigKey::new("max.batch.size", ConfigType::Int).default("2048").validator(Validator::at_least(1.0)))
        .define(ConfigKey::new("poll.interval.ms", ConfigType::Long).default("500").validator(Validator::at_least(1.0)))
        .define(ConfigKey::new("errors.max.retries", ConfigType::Int).default("-1").validator(Validator::at_least(-1.0)).doc("How many times to try reconnecting after PostgreSQL went away before the task fails: -1 without limit, 0 fails at once. The count starts afresh after a successful reconnect."))
        .define(ConfigKey::new("retriable.restart.connector.wait.ms", ConfigType::Long).default("10000").validator(Validator::at_least(0.0)).doc("The longest wait between two reconnect attempts: the backoff starts at half a second and doubles up to it."))
}

/// When to read the tables whole before streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// When there is no stored offset (Debezium's default).
    Initial,
    /// Never: stream from the slot's position.
    NoData,
    /// Snapshot, then stop streaming.
    InitialOnly,
    /// On every start.
    Always,
    /// When there is no stored offset, or the slot is gone.
    WhenNeeded,
}

#[derive(Debug, Clone)]
pub struct CdcConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
    pub sslmode: String,
    pub decimal: DecimalMode,
    pub binary: BinaryMode,
    pub time: TimePrecision,
    pub interval: IntervalMode,
    pub hstore: HstoreMode,
    pub sslrootcert: Option<String>,
    pub prefix: String,
    pub slot: String,
    pub drop_slot_on_stop: bool,
    pub publication: String,
    pub autocreate: String,
    include: Vec<regex::Regex>,
    exclude: Vec<regex::Regex>,
    column_include: Vec<regex::Regex>,
    column_exclude: Vec<regex::Regex>,
    pub snapshot: SnapshotMode,
    pub fetch_size: usize,
    pub tombstones: bool,
    /// `extended.headers.enabled`: Debezium's context headers.
    pub extended_headers: bool,
    /// `signal.data.collection`, as (schema, table).
    pub signal: Option<(String, String)>,
    pub chunk_size: usize,
    /// Debezium op codes not emitted (`skipped.operations`).
    pub skipped: Vec<String>,
    pub placeholder: String,
    pub max_batch: usize,
    pub heartbeat: Option<std::time::Duration>,
    pub heartbeat_query: String,
    pub heartbeat_topic: String,
    pub poll_interval: std::time::Duration,
    /// `errors.max.retries`: reconnect attempts allowed, `None` without limit.
    pub max_retries: Option<u32>,
    /// `retriable.restart.connector.wait.ms`: the reconnect backoff's cap.
    pub retry_wait: std::time::Duration,
}

/// Debezium keys this connector does not implement, with the values that mean
/// what it does anyway. Any other value would change the events, so it is
/// refused rather than ignored.
const NOT_IMPLEMENTED: &[(&str, &[&str])] = &[
    ("provide.transaction.metadata", &["false"]),
    ("message.key.columns", &[""]),
    ("snapshot.select.statement.overrides", &[""]),
    ("column.propagate.source.type", &[""]),
    ("datatype.propagate.source.type", &[""]),
    ("converters", &[""]),
    // Prefixes (Debezium puts a hash name or a length in the key).
    ("column.mask.hash.", &[""]),
    ("column.mask.with.", &[""]),
    ("column.truncate.to.", &[""]),
];

fn refuse_unimplemented(raw: &TaskConfig) -> Result<(), ConnectError> {
    for (key, fine) in NOT_IMPLEMENTED {
        let set = raw
            .iter()
            .filter(|(k, _)| *k == key || (key.ends_with('.') && k.starts_with(key)));
        for (k, v) in set {
            if !fine.contains(&v.trim()) {
                return Err(ConnectError::new(
                    sluice_api::ErrorKind::Config,
                    format!(
                        "'{k}': sluice's postgres-cdc does not implement this Debezium option (value '{v}'); remove it{}",
                        match fine.first() {
                            Some(d) if !d.is_empty() => format!(" or set it to '{d}'"),
                            _ => String::new(),
                        }
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl CdcConfig {
    /// Validates against [`config_def`], which is the one source of defaults:
    /// a key it defaults always has a value here, so the getters' fallbacks
    /// (`unwrap_or_default`) are never used.
    #[allow(
        clippy::too_many_lines,
        reason = "one statement per key, in `config_def`'s order: long, but flat."
    )]
    pub fn parse(raw: &TaskConfig) -> Result<Self, ConnectError> {
        refuse_unimplemented(raw)?;
        let c: ValidatedConfig = config_def().validate(raw)?;
        let s = |k: &str| c.string(k).unwrap_or_default().to_owned();
        let list = |k: &str| -> Vec<String> {
            c.list(k)
                .unwrap_or_default()
                .iter()
                .filter(|t| !t.is_empty())
                .cloned()
                .collect()
        };
        let snapshot = match c.string("snapshot.mode").unwrap_or_default() {
            "no_data" | "never" => SnapshotMode::NoData,
            "initial_only" => SnapshotMode::InitialOnly,
            "always" => SnapshotMode::Always,
            "when_needed" => SnapshotMode::WhenNeeded,
            _ => SnapshotMode::Initial,
        };
        let password = c
            .password("database.password")
            .map(|p| p.expose().to_owned())
            .unwrap_or_default();
        let sslmode = s("database.sslmode");
        if sslmode.starts_with("verify-") && s("database.sslrootcert").is_empty() {
            return Err(ConnectError::new(
                sluice_api::ErrorKind::Config,
                format!("'database.sslrootcert': is required with sslmode={sslmode}: name the PEM file of the CA that signed the server's certificate"),
            ));
        }
        let prefix = [s("topic.prefix"), s("database.server.name")]
                .into_iter()
                .find(|p| !p.is_empty())
                .ok_or_else(|| {
                    ConnectError::new(
                        ErrorKind::Config,
                        "'topic.prefix': is required (or Debezium 1.x's 'database.server.name'): topics are named <topic.prefix>.<schema>.<table>",
                    )
                })?;
        let config = Self {
            host: s("database.hostname"),
            port: c.int("database.port").unwrap_or_default() as u16,
            user: s("database.user"),
            password,
            dbname: s("database.dbname"),
            sslmode: s("database.sslmode"),
            decimal: match s("decimal.handling.mode").as_str() {
                "double" => DecimalMode::Double,
                "string" => DecimalMode::String,
                _ => DecimalMode::Precise,
            },
            time: match s("time.precision.mode").as_str() {
                "adaptive_time_microseconds" => TimePrecision::AdaptiveTimeMicroseconds,
                "connect" => TimePrecision::Connect,
                _ => TimePrecision::Adaptive,
            },
            hstore: match s("hstore.handling.mode").as_str() {
                "map" => HstoreMode::Map,
                _ => HstoreMode::Json,
            },
            interval: match s("interval.handling.mode").as_str() {
                "string" => IntervalMode::String,
                _ => IntervalMode::Numeric,
            },
            binary: match s("binary.handling.mode").as_str() {
                "base64" => BinaryMode::Base64,
                "base64-url-safe" => BinaryMode::Base64UrlSafe,
                "hex" => BinaryMode::Hex,
                _ => BinaryMode::Bytes,
            },
            sslrootcert: Some(s("database.sslrootcert")).filter(|v| !v.is_empty()),
            prefix: prefix.clone(),
            slot: s("slot.name"),
            drop_slot_on_stop: c.boolean("slot.drop.on.stop").unwrap_or_default(),
            publication: s("publication.name"),
            autocreate: s("publication.autocreate.mode"),
            include: patterns(&list("table.include.list"), "table.include.list")?,
            exclude: patterns(&list("table.exclude.list"), "table.exclude.list")?,
            column_include: patterns(&list("column.include.list"), "column.include.list")?,
            column_exclude: patterns(&list("column.exclude.list"), "column.exclude.list")?,
            snapshot,
            fetch_size: c.int("snapshot.fetch.size").unwrap_or_default().max(1) as usize,
            tombstones: c.boolean("tombstones.on.delete").unwrap_or_default(),
            extended_headers: c.boolean("extended.headers.enabled").unwrap_or_default(),
            signal: c
                .string("signal.data.collection")
                .filter(|s| !s.is_empty())
                .map(|s| match s.split_once('.') {
                    Some((schema, table)) => (schema.to_owned(), table.to_owned()),
                    None => ("public".to_owned(), s.to_owned()),
                }),
            chunk_size: c
                .int("incremental.snapshot.chunk.size")
                .unwrap_or_default()
                .max(1) as usize,
            skipped: list("skipped.operations")
                .into_iter()
                .filter(|o| o != "none")
                .collect(),
            placeholder: s("unavailable.value.placeholder"),
            max_batch: c.int("max.batch.size").unwrap_or_default().max(1) as usize,
            heartbeat: c
                .long("heartbeat.interval.ms")
                .filter(|ms| *ms > 0)
                .map(|ms| std::time::Duration::from_millis(ms as u64)),
            heartbeat_query: s("heartbeat.action.query"),
            heartbeat_topic: format!("{}.{prefix}", s("topic.heartbeat.prefix")),
            poll_interval: std::time::Duration::from_millis(
                c.long("poll.interval.ms").unwrap_or_default().max(1) as u64,
            ),
            max_retries: u32::try_from(c.int("errors.max.retries").unwrap_or_default()).ok(),
            retry_wait: std::time::Duration::from_millis(
                c.long("retriable.restart.connector.wait.ms")
                    .unwrap_or_default()
                    .max(0) as u64,
            ),
        };
        if !config
            .slot
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        {
            return Err(ConnectError::new(
                ErrorKind::Config,
                format!(
                    "'slot.name': '{}' may hold only lower-case letters, digits and '_' (PostgreSQL's rule for slot names)",
                    config.slot
                ),
            ));
        }
        Ok(config)
    }

    /// Whether `table.include.list` / `table.exclude.list` capture a table.
    pub fn captures(&self, schema: &str, table: &str) -> bool {
        let name = format!("{schema}.{table}");
        (self.include.is_empty() || self.include.iter().any(|p| p.is_match(&name)))
            && !self.exclude.iter().any(|p| p.is_match(&name))
    }

    /// Whether `column.include.list` / `column.exclude.list` keep a column.
    pub fn keeps_column(&self, schema: &str, table: &str, column: &str) -> bool {
        let name = format!("{schema}.{table}.{column}");
        (self.column_include.is_empty() || self.column_include.iter().any(|p| p.is_match(&name)))
            && !self.column_exclude.iter().any(|p| p.is_match(&name))
    }

    /// A table's model with this connector's handling modes applied to its
    /// column types.
    pub fn table(&self, schema: &str, name: &str, mut columns: Vec<Column>) -> Table {
        for c in &mut columns {
            c.ty.decimal = self.decimal;
            c.ty.binary = self.binary;
            c.ty.time = self.time;
            c.ty.interval = self.interval;
            c.ty.hstore = self.hstore;
        }
        Table::new(&self.prefix, schema, name, columns)
    }

    /// The libpq-style settings both connections share. Values are quoted, so
    /// a password with spaces or quotes survives.
    fn conninfo(&self) -> String {
        let mut out = format!(
            "host={} port={} user={} dbname={}",
            quote(&self.host),
            self.port,
            quote(&self.user),
            quote(&self.dbname)
        );
        if !self.password.is_empty() {
            out.push_str(&format!(" password={}", quote(&self.password)));
        }
        out
    }

    /// For tokio-postgres, which knows only disable/prefer/require: the
    /// verify modes are `require` here and checked by `tls::connector`.
    pub fn sql_conninfo(&self) -> String {
        let mode = match self.sslmode.as_str() {
            "verify-ca" | "verify-full" => "require",
            m => m,
        };
        format!("{} sslmode={mode} connect_timeout=10", self.conninfo())
    }

    /// For the replication connection.
    pub fn replication_conninfo(&self) -> String {
        let mut out = format!(
            "{} replication=database sslmode={} connect_timeout=10",
            self.conninfo(),
            self.sslmode
        );
        if let Some(ca) = &self.sslrootcert {
            out.push_str(&format!(" sslrootcert={}", quote(ca)));
        }
        out
    }
}

/// Debezium's lists hold regexes that must match a whole name.
pub fn patterns(list: &[String], key: &str) -> Result<Vec<regex::Regex>, ConnectError> {
    list.iter()
        .map(|p| {
            regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                ConnectError::new(
                    ErrorKind::Config,
                    format!("'{key}': '{p}' is not a valid regex: {e}"),
                )
            })
        })
        .collect()
}

/// A conninfo value, quoted so spaces and quotes survive.
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[(&str, &str)]) -> TaskConfig {
        [
            ("database.hostname", "localhost"),
            ("database.user", "u"),
            ("database.dbname", "d"),
            ("topic.prefix", "p"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[test]
    fn debezium_options_not_implemented_are_refused_unless_harmless() {
        assert!(CdcConfig::parse(&config(&[("time.precision.mode", "adaptive")])).is_ok());
        assert!(CdcConfig::parse(&config(&[("provide.transaction.metadata", "false")])).is_ok());
        let refused = |k: &str, v: &str| {
            CdcConfig::parse(&config(&[(k, v)]))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(CdcConfig::parse(&config(&[("interval.handling.mode", "string")])).is_ok());
        assert!(CdcConfig::parse(&config(&[("time.precision.mode", "connect")])).is_ok());
        assert!(CdcConfig::parse(&config(&[("hstore.handling.mode", "map")])).is_ok());
        assert!(refused("hstore.handling.mode", "jsonb").contains("hstore.handling.mode"));
        let e = refused("column.mask.hash.SHA-256.with.salt.x", "s.t.c");
        assert!(e.contains("'column.mask.hash.SHA-256.with.salt.x'"), "{e}");
        assert!(refused("message.key.columns", "s.t:c").contains("message.key.columns"));
    }
}
