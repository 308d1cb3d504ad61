//! The connector's configuration: the keys JDBC sink users type (Confluent's
//! and Debezium's), with their defaults declared once, here.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::{ConfigErrors, TaskConfig};

pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("connection.url", ConfigType::String)
                .importance(Importance::High)
                .validator(Validator::Custom(check_url))
                .doc("The warehouse: jdbc:postgresql://host:port/db or postgres://host:port/db, with libpq's and pgjdbc's TLS parameters: sslmode (disable, allow, prefer (the default), require, verify-ca, verify-full), ssl=true (verify-full unless sslmode says otherwise) and sslrootcert (the PEM file of the CA, for verify-ca and verify-full). A password in it is hidden in REST answers and logs."),
        )
        .define(ConfigKey::new("connection.user", ConfigType::String).optional().doc("The database user (else the URL's)."))
        .define(ConfigKey::new("connection.password", ConfigType::Password).optional().doc("The database password (else the URL's)."))
        .define(ConfigKey::new("connection.attempts", ConfigType::Int).default("3").validator(Validator::at_least(1.0)).doc("Connection attempts when partitions are assigned, before the task fails; once running, a lost connection is retried without limit (task.retry.timeout.ms)."))
        .define(ConfigKey::new("connection.backoff.ms", ConfigType::Long).default("10000").validator(Validator::at_least(0.0)).doc("Wait between those attempts."))
        .define(ConfigKey::new("insert.mode", ConfigType::String).default("insert").validator(Validator::Custom(|v| one_of_ci(v, &["insert", "upsert", "update"]))).doc("insert: INSERT; upsert: INSERT ... ON CONFLICT DO UPDATE; update: UPDATE ... FROM."))
        .define(ConfigKey::new("pk.mode", ConfigType::String).default("none").validator(Validator::Custom(|v| one_of_ci(v, &["none", "kafka", "record_key", "record_value", "record_header"]))).doc("Where the primary key comes from."))
        .define(ConfigKey::new("pk.fields", ConfigType::List).default("").doc("The key's columns: for kafka the three coordinate column names (default __connect_topic,__connect_partition,__connect_offset); for record_key a primitive key's column name (default __connect_key) or the struct fields to use (default all); for record_value and record_header the fields (default all)."))
        .define(ConfigKey::new("auto.create", ConfigType::Boolean).default("false").doc("CREATE TABLE from the record's schema, with the primary key."))
        .define(ConfigKey::new("auto.evolve", ConfigType::Boolean).default("false").doc("ALTER TABLE ADD COLUMN (nullable) for fields the table lacks."))
        .define(ConfigKey::new("schema.evolution", ConfigType::String).default("none").validator(Validator::Custom(|v| one_of_ci(v, &["none", "basic"]))).doc("Debezium's name: basic is auto.create plus auto.evolve."))
        .define(ConfigKey::new("table.name.format", ConfigType::String).default("${topic}").doc("The table; ${topic} is the topic with dots made underscores, and a dot in the format itself separates schema and table."))
        .define(ConfigKey::new("topic2table.map", ConfigType::List).default("").doc("Snowflake's topic:table pairs, taking precedence over table.name.format."))
        .define(ConfigKey::new("fields.whitelist", ConfigType::List).default("").doc("Value fields to write (empty: all)."))
        .define(ConfigKey::new("batch.size", ConfigType::Int).default("3000").validator(Validator::between(1.0, 1_000_000.0)).doc("Records per transaction at most; a larger put is written in several."))
        .define(ConfigKey::new("delete.enabled", ConfigType::Boolean).default("false").doc("A tombstone or a Debezium delete deletes the row by key (needs pk.mode=record_key)."))
        .define(ConfigKey::new("truncate.enabled", ConfigType::Boolean).default("false").doc("A Debezium truncate event truncates the table."))
        .define(ConfigKey::new("db.timezone", ConfigType::String).default("UTC").doc("The session's TimeZone."))
        .define(ConfigKey::new("quote.sql.identifiers", ConfigType::String).default("always").validator(Validator::Custom(|v| one_of_ci(v, &["always", "never"]))).doc("never: identifiers are written bare, so PostgreSQL folds them to lower case."))
        .define(ConfigKey::new("use.reduction.buffer", ConfigType::Boolean).default("true").doc("Within a batch, several changes to one key collapse to the last (needs a key)."))
        .define(ConfigKey::new("table.fillfactor", ConfigType::Int).optional().validator(Validator::between(10.0, 100.0)).doc("sluice's own: auto.create makes the table WITH (fillfactor = N). Below 100 each page keeps room, so an update that changes no key column is a heap-only (HOT) update: no new index entry, about three times cheaper in PostgreSQL. For upsert and CDC tables that take many updates; unset: PostgreSQL's default (100)."))
        .define(ConfigKey::new("offsets.table.name", ConfigType::String).default("sluice_offsets").doc("sluice's own: where consumed offsets are stored, in the same transaction as the rows."))
}

fn one_of_ci(value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(value)) {
        Ok(())
    } else {
        Err(format!("must be one of {}", allowed.join(", ")))
    }
}

/// Never echoes the URL: it may hold a password.
fn check_url(value: &str) -> Result<(), String> {
    if value.starts_with("jdbc:postgresql://")
        || value.starts_with("postgres://")
        || value.starts_with("postgresql://")
    {
        split_url(value.strip_prefix("jdbc:").unwrap_or(value)).map(|_| ())
    } else {
        Err("must start with jdbc:postgresql://, postgres:// or postgresql://".into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertMode {
    Insert,
    Upsert,
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkMode {
    None,
    Kafka,
    RecordKey,
    RecordValue,
    RecordHeader,
}

/// How the connection is encrypted, as libpq's `sslmode`: `Prefer` and
/// `Require` encrypt without checking the certificate (as libpq without a
/// root certificate); `VerifyCa` checks its chain; `VerifyFull` its chain and
/// that it names the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

#[derive(Clone)]
pub struct WarehouseConfig {
    /// The URL in libpq's form (a JDBC URL without its `jdbc:`), without the
    /// TLS parameters, which are below.
    pub url: String,
    pub sslmode: SslMode,
    /// The CA's PEM file (`sslrootcert`), for `VerifyCa` and `VerifyFull`.
    pub sslrootcert: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub connection_attempts: u32,
    pub connection_backoff_ms: u64,
    pub insert_mode: InsertMode,
    pub pk_mode: PkMode,
    pub pk_fields: Vec<String>,
    pub auto_create: bool,
    pub auto_evolve: bool,
    pub table_format: String,
    pub topic_tables: BTreeMap<String, String>,
    pub fields_whitelist: Vec<String>,
    pub batch_size: usize,
    pub delete_enabled: bool,
    pub truncate_enabled: bool,
    pub timezone: String,
    pub quote: bool,
    /// `table.fillfactor`, for `auto.create`.
    pub fillfactor: Option<u8>,
    pub reduce: bool,
    pub offsets_table: String,
}

impl std::fmt::Debug for WarehouseConfig {
    /// The password and the URL (which may hold one) never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarehouseConfig")
            .field("user", &self.user)
            .field("insert_mode", &self.insert_mode)
            .field("pk_mode", &self.pk_mode)
            .finish_non_exhaustive()
    }
}

impl WarehouseConfig {
    pub fn parse(raw: &TaskConfig) -> Result<Self, ConfigErrors> {
        let c = config_def().validate(raw)?;
        let lower = |k: &str| c.string(k).unwrap_or_default().to_ascii_lowercase();
        let list = |k: &str| c.list(k).unwrap_or_default().to_vec();
        let flag = |k: &str| c.boolean(k).unwrap_or_default();
        let url = c.string("connection.url").unwrap_or_default();
        let mut errors = ConfigErrors::default();
        // The validator has checked it splits; this takes the parts.
        let Connection {
            url,
            sslmode,
            sslrootcert,
        } = split_url(url.strip_prefix("jdbc:").unwrap_or(url))
            .map_err(|why| ConfigErrors::single("connection.url", why))?;
        let insert_mode = match lower("insert.mode").as_str() {
            "upsert" => InsertMode::Upsert,
            "update" => InsertMode::Update,
            _ => InsertMode::Insert,
        };
        let pk_mode = match lower("pk.mode").as_str() {
            "kafka" => PkMode::Kafka,
            "record_key" => PkMode::RecordKey,
            "record_value" => PkMode::RecordValue,
            "record_header" => PkMode::RecordHeader,
            _ => PkMode::None,
        };
        if insert_mode != InsertMode::Insert && pk_mode == PkMode::None {
            errors.push(
                "pk.mode",
                format!(
                    "insert.mode={} needs a key: set pk.mode",
                    lower("insert.mode")
                ),
            );
        }
        let delete_enabled = flag("delete.enabled");
        if delete_enabled && pk_mode != PkMode::RecordKey {
            errors.push("delete.enabled", "needs pk.mode=record_key");
        }
        let pk_fields = list("pk.fields");
        if pk_mode == PkMode::Kafka && !(pk_fields.is_empty() || pk_fields.len() == 3) {
            errors.push(
                "pk.fields",
                "with pk.mode=kafka names the three columns topic,partition,offset",
            );
        }
        let mut topic_tables = BTreeMap::new();
        for pair in list("topic2table.map") {
            match pair.split_once(':') {
                Some((t, table)) if !t.trim().is_empty() && !table.trim().is_empty() => {
                    topic_tables.insert(t.trim().to_owned(), table.trim().to_owned());
                }
                _ => errors.push(
                    "topic2table.map",
                    format!("'{pair}' is not a topic:table pair"),
                ),
            }
        }
        errors.into_result()?;
        let basic = lower("schema.evolution") == "basic";
        Ok(Self {
            url,
            sslmode,
            sslrootcert,
            user: c
                .string("connection.user")
                .filter(|u| !u.is_empty())
                .map(str::to_owned),
            password: c
                .password("connection.password")
                .map(|p| p.expose().to_owned()),
            connection_attempts: c.int("connection.attempts").unwrap_or(1).max(1) as u32,
            connection_backoff_ms: c.long("connection.backoff.ms").unwrap_or_default().max(0)
                as u64,
            insert_mode,
            pk_mode,
            pk_fields,
            auto_create: flag("auto.create") || basic,
            auto_evolve: flag("auto.evolve") || basic,
            table_format: c.string("table.name.format").unwrap_or_default().to_owned(),
            topic_tables,
            fields_whitelist: list("fields.whitelist"),
            batch_size: c.int("batch.size").unwrap_or(1).max(1) as usize,
            delete_enabled,
            truncate_enabled: flag("truncate.enabled"),
            timezone: c.string("db.timezone").unwrap_or_default().to_owned(),
            quote: lower("quote.sql.identifiers") != "never",
            // The validator keeps it within 10..=100.
            fillfactor: c.int("table.fillfactor").map(|f| f.clamp(10, 100) as u8),
            reduce: flag("use.reduction.buffer"),
            offsets_table: c
                .string("offsets.table.name")
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// The table a topic's records go to: `(schema, table)`.
    pub fn table_for(&self, topic: &str) -> TableName {
        let name = match self.topic_tables.get(topic) {
            Some(t) => t.clone(),
            None => self
                .table_format
                .replace("${topic}", &topic.replace('.', "_")),
        };
        TableName::parse(&name)
    }
}

/// `connection.url` split: what tokio-postgres reads, and the TLS settings it
/// cannot (it knows no `verify-ca`/`verify-full`, `ssl` or `sslrootcert`).
struct Connection {
    url: String,
    sslmode: SslMode,
    sslrootcert: Option<String>,
}

/// Splits the TLS parameters out of a libpq URL (`postgres://...`), checks
/// the rest parses, and resolves `sslmode` as pgjdbc does: `ssl=true` alone
/// means verify-full. The error never echoes the URL: it may hold a password.
fn split_url(url: &str) -> Result<Connection, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut mode, mut ssl, mut rootcert) = (None, None, None);
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => mode = Some(percent_decode(v)?),
            "ssl" => ssl = Some(!v.eq_ignore_ascii_case("false")),
            "sslrootcert" => rootcert = Some(percent_decode(v)?),
            _ => kept.push(pair),
        }
    }
    let sslmode = match (mode.as_deref(), ssl) {
        (Some("disable"), _) => SslMode::Disable,
        (Some("allow" | "prefer"), _) => SslMode::Prefer,
        (Some("require"), _) => SslMode::Require,
        (Some("verify-ca"), _) => SslMode::VerifyCa,
        (Some("verify-full"), _) => SslMode::VerifyFull,
        (Some(other), _) => {
            return Err(format!(
                "sslmode '{other}' is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ))
        }
        (None, Some(true)) => SslMode::VerifyFull,
        (None, Some(false)) => SslMode::Disable,
        (None, None) => SslMode::Prefer,
    };
    if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && rootcert.is_none() {
        return Err(format!(
            "sslmode={} checks the server's certificate against a CA: add sslrootcert=<the PEM file of the CA that signed it>",
            if sslmode == SslMode::VerifyCa { "verify-ca" } else { "verify-full" }
        ));
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    url.parse::<tokio_postgres::Config>()
        .map_err(|e| format!("not a PostgreSQL URL ({e})"))?;
    Ok(Connection {
        url,
        sslmode,
        sslrootcert: rootcert,
    })
}

/// `%xx` escapes, as in a URL's query.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a '%' not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a %-escape that is not UTF-8".into())
}

/// A table, optionally schema-qualified. Every change carries one, so a
/// clone is two reference counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub schema: Option<Arc<str>>,
    pub table: Arc<str>,
}

impl TableName {
    pub fn parse(name: &str) -> Self {
        match name.split_once('.') {
            Some((s, t)) => Self {
                schema: Some(Arc::from(s)),
                table: Arc::from(t),
            },
            None => Self {
                schema: None,
                table: Arc::from(name),
            },
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<WarehouseConfig, ConfigErrors> {
        let mut raw: TaskConfig = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        raw.entry("connection.url".into())
            .or_insert_with(|| "jdbc:postgresql://127.0.0.1:5432/wh".into());
        WarehouseConfig::parse(&raw)
    }

    #[test]
    fn defaults_and_jdbc_url() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.url, "postgresql://127.0.0.1:5432/wh");
        assert_eq!(c.insert_mode, InsertMode::Insert);
        assert_eq!(c.pk_mode, PkMode::None);
        assert_eq!(c.batch_size, 3000);
        assert!(c.reduce && c.quote && !c.auto_create);
        assert_eq!(c.offsets_table, "sluice_offsets");
    }

    #[test]
    fn bad_combinations_name_the_key() {
        let e = parse(&[("insert.mode", "upsert")]).unwrap_err().to_string();
        assert!(e.contains("pk.mode"), "{e}");
        let e = parse(&[("delete.enabled", "true"), ("pk.mode", "record_value")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("delete.enabled"), "{e}");
        let e = parse(&[("connection.url", "mysql://h/db")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("connection.url") && e.contains("jdbc:postgresql://"),
            "{e}"
        );
        let e = parse(&[("topic2table.map", "a")]).unwrap_err().to_string();
        assert!(e.contains("topic2table.map"), "{e}");
        let e = parse(&[("table.fillfactor", "5")]).unwrap_err().to_string();
        assert!(e.contains("table.fillfactor"), "{e}");
        assert_eq!(parse(&[]).unwrap().fillfactor, None);
        assert_eq!(
            parse(&[("table.fillfactor", "70")]).unwrap().fillfactor,
            Some(70)
        );
    }

    #[test]
    fn tls_parameters_as_libpq_and_pgjdbc_write_them() {
        let c = parse(&[]).unwrap();
        assert_eq!((c.sslmode, c.sslrootcert), (SslMode::Prefer, None));
        let c = parse(&[(
            "connection.url",
            "jdbc:postgresql://h:5432/db?ssl=true&sslmode=verify-ca&sslrootcert=/etc/ca%20x.pem&application_name=wh",
        )])
        .unwrap();
        assert_eq!(c.sslmode, SslMode::VerifyCa);
        assert_eq!(c.sslrootcert.as_deref(), Some("/etc/ca x.pem"));
        assert_eq!(c.url, "postgresql://h:5432/db?application_name=wh");
        // pgjdbc: ssl=true alone checks the certificate and the host name.
        let c = parse(&[(
            "connection.url",
            "jdbc:postgresql://h/db?ssl=true&sslrootcert=/ca.pem",
        )])
        .unwrap();
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        let c = parse(&[("connection.url", "postgres://h/db?sslmode=require")]).unwrap();
        assert_eq!(
            (c.sslmode, c.url.as_str()),
            (SslMode::Require, "postgres://h/db")
        );
        let e = parse(&[(
            "connection.url",
            "jdbc:postgresql://h/db?password=hunter2&sslmode=verify-full",
        )])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("connection.url") && e.contains("sslrootcert"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse(&[(
            "connection.url",
            "postgres://u:hunter2@h/db?sslmode=sometimes",
        )])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("connection.url") && e.contains("sometimes"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse(&[("connection.url", "postgres://u:hunter2@h/db?nosuch=1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("connection.url") && e.contains("nosuch"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn the_password_is_a_secret() {
        let def = config_def();
        let key = def.key("connection.password").unwrap();
        assert_eq!(key.config_type, ConfigType::Password);
        let c = parse(&[("connection.password", "hunter2")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn table_names() {
        let c = parse(&[
            ("table.name.format", "wh.${topic}"),
            ("topic2table.map", "orders:sales.orders_v2"),
        ])
        .unwrap();
        assert_eq!(
            c.table_for("cdc.public.items").to_string(),
            "wh.cdc_public_items"
        );
        assert_eq!(c.table_for("orders").to_string(), "sales.orders_v2");
        let c = parse(&[("schema.evolution", "basic")]).unwrap();
        assert!(c.auto_create && c.auto_evolve);
        assert_eq!(c.table_for("t").schema, None);
    }
}
