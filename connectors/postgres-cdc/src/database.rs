//! The plain SQL side: connecting, checking that logical replication can work
//! (saying how to fix it when it cannot), the publication, the catalog, and
//! reading the snapshot.

use std::collections::HashMap;

use sluice_api::{ConnectError, ErrorKind};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage, Socket};

use crate::config::CdcConfig;
use crate::envelope::{Column, Table};
use crate::types::ColumnType;

pub fn config_error(message: impl Into<String>) -> ConnectError {
    ConnectError::new(ErrorKind::Config, message)
}

/// Rows of a simple query, every value as PostgreSQL's text.
pub async fn rows(client: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, ConnectError> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| ConnectError::retriable(format!("PostgreSQL: {}", describe(&e))))?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect())
}

/// A server error's message and SQLSTATE, or the client error.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

pub fn ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// `"schema"."table"`, quoted for SQL.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}

/// Connects the SQL session, failing with what to do about it.
pub async fn connect(config: &CdcConfig) -> Result<Client, ConnectError> {
    let conninfo = config.sql_conninfo();
    let client = match crate::tls::connector(&config.sslmode, config.sslrootcert.as_deref())? {
        None => open(config, &conninfo, NoTls).await?,
        Some(tls) => open(config, &conninfo, tls).await?,
    };
    client
        .batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3")
        .await
        .map_err(|e| ConnectError::retriable(format!("PostgreSQL: {}", describe(&e))))?;
    Ok(client)
}

async fn open<T>(config: &CdcConfig, conninfo: &str, tls: T) -> Result<Client, ConnectError>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = tokio_postgres::connect(conninfo, tls).await.map_err(|e| {
        let why = describe(&e);
        let hint = match e.as_db_error().map(|d| d.code().code()) {
            Some("28P01") => "check database.user and database.password",
            Some("28000") => "pg_hba.conf does not let this user in from here",
            Some("3D000") => "check database.dbname",
            None if why.contains("TLS") => {
                "check database.sslmode, database.sslrootcert (the CA that signed the server's certificate) and database.hostname (a name the certificate holds)"
            }
            _ => "check database.hostname and database.port, and that PostgreSQL runs",
        };
        config_error(format!(
            "cannot connect to PostgreSQL at {}:{} as '{}': {why} ({hint})",
            config.host, config.port, config.user
        ))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("PostgreSQL connection closed: {e}");
        }
    });
    Ok(client)
}

/// `wal_level=logical` and the REPLICATION attribute, checked up front so the
/// error says how to fix them.
pub async fn check_prerequisites(client: &Client, config: &CdcConfig) -> Result<(), ConnectError> {
    let wal = rows(client, "SHOW wal_level").await?;
    let level = wal.first().and_then(|r| r[0].clone()).unwrap_or_default();
    if level != "logical" {
        return Err(config_error(format!(
            "PostgreSQL's wal_level is '{level}', and logical decoding needs 'logical': set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL"
        )));
    }
    let role = rows(
        client,
        "SELECT (rolreplication OR rolsuper)::text FROM pg_roles WHERE rolname = current_user",
    )
    .await?;
    if role.first().and_then(|r| r[0].as_deref()) != Some("true") {
        return Err(config_error(format!(
            "user '{}' lacks the REPLICATION attribute that logical replication needs: ALTER ROLE {} REPLICATION",
            config.user,
            ident(&config.user)
        )));
    }
    Ok(())
}

/// The tables to capture: every ordinary table outside the system schemas
/// whose `schema.table` the include list matches (all, when empty) and the
/// exclude list does not.
pub async fn captured_tables(
    client: &Client,
    config: &CdcConfig,
) -> Result<Vec<(String, String)>, ConnectError> {
    let all = rows(
        client,
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
         ORDER BY 1, 2",
    )
    .await?;
    Ok(all
        .into_iter()
        .filter_map(|r| Some((r[0].clone()?, r[1].clone()?)))
        .filter(|(s, t)| config.captures(s, t))
        .collect())
}

/// Creates or adjusts the publication as `publication.autocreate.mode` says.
pub async fn ensure_publication(
    client: &Client,
    config: &CdcConfig,
    tables: &[(String, String)],
) -> Result<(), ConnectError> {
    let exists = !rows(
        client,
        &format!(
            "SELECT 1 FROM pg_publication WHERE pubname = {}",
            literal(&config.publication)
        ),
    )
    .await?
    .is_empty();
    let list = || {
        tables
            .iter()
            .map(|(s, t)| qualified(s, t))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // A partitioned table's changes then come as the table's own, not as its
    // partitions' (which the snapshot, reading the table, would not match).
    // PostgreSQL 13 and later.
    let version = rows(client, "SHOW server_version_num").await?;
    let via_root = version
        .first()
        .and_then(|r| r[0].as_deref())
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|v| v >= 130_000);
    let with = if via_root {
        " WITH (publish_via_partition_root = true)"
    } else {
        ""
    };
    let sql = match (config.autocreate.as_str(), exists) {
        (_, true) if config.autocreate != "filtered" => return Ok(()),
        ("disabled", false) => {
            return Err(config_error(format!(
                "publication '{}' does not exist and publication.autocreate.mode is disabled: CREATE PUBLICATION {} FOR TABLE ...",
                config.publication,
                ident(&config.publication)
            )))
        }
        ("filtered", _) if tables.is_empty() => {
            return Err(config_error(
                "'table.include.list': no table matches it, so a filtered publication would be empty",
            ))
        }
        ("filtered", true) => {
            let set_root = if via_root {
                format!("; ALTER PUBLICATION {} SET (publish_via_partition_root = true)", ident(&config.publication))
            } else {
                String::new()
            };
            format!("ALTER PUBLICATION {} SET TABLE {}{set_root}", ident(&config.publication), list())
        }
        ("filtered", false) => format!("CREATE PUBLICATION {} FOR TABLE {}{with}", ident(&config.publication), list()),
        _ => format!("CREATE PUBLICATION {} FOR ALL TABLES{with}", ident(&config.publication)),
    };
    client.batch_execute(&sql).await.map_err(|e| {
        config_error(format!(
            "cannot set up publication '{}': {} (the user needs CREATE on the database, or ownership of the tables; or create it yourself and set publication.autocreate.mode=disabled)",
            config.publication,
            describe(&e)
        ))
    })
}

/// What the catalog says of a table's columns, beyond what pgoutput sends:
/// nullability, and the base type of domains and the labels of enums.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub columns: HashMap<String, (bool, ColumnType)>,
    pub keys: Vec<String>,
}

pub async fn catalog(client: &Client, schema: &str, table: &str) -> Result<Catalog, ConnectError> {
    let rel = literal(&qualified(schema, table));
    let columns = rows(
        client,
        &format!(
            "SELECT a.attname, \
                    CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END::text, \
                    CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END::text, \
                    a.attnotnull::text, \
                    (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e \
                     WHERE e.enumtypid = CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE t.oid END), \
                    CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END::text, \
                    COALESCE(b.typname, t.typname), \
                    pg_get_expr(d.adbin, d.adrelid) \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             LEFT JOIN pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype \
             WHERE a.attrelid = {rel}::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        ),
    )
    .await?;
    let keys = rows(
        client,
        &format!(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = {rel}::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)"
        ),
    )
    .await?;
    let mut out = Catalog {
        keys: keys.into_iter().filter_map(|r| r[0].clone()).collect(),
        ..Catalog::default()
    };
    for r in columns {
        let (Some(name), Some(oid), Some(typmod)) =
            (r[0].clone(), r[1].as_deref(), r[2].as_deref())
        else {
            continue;
        };
        let mut ty = ColumnType::new(oid.parse().unwrap_or(0), typmod.parse().unwrap_or(-1));
        if let Some(labels) = &r[4] {
            ty.enum_labels = labels.split(',').map(str::to_owned).collect();
        }
        ty.element = r[5].as_deref().and_then(|e| e.parse().ok()).unwrap_or(0);
        ty.name = r[6].clone().unwrap_or_default();
        ty.default = r[7].clone();
        out.columns
            .insert(name, (r[3].as_deref() == Some("true"), ty));
    }
    Ok(out)
}

/// A table as a snapshot reads it, from the catalog alone: its columns in
/// table order, less those `column.exclude.list` leaves out (keys stay).
pub async fn table_model(
    client: &Client,
    config: &CdcConfig,
    schema: &str,
    name: &str,
) -> Result<(Catalog, Table), ConnectError> {
    let catalog = catalog(client, schema, name).await?;
    let columns = column_order(client, schema, name)
        .await?
        .into_iter()
        .filter_map(|column| {
            let (not_null, ty) = catalog.columns.get(&column)?.clone();
            Some(Column {
                key: catalog.keys.contains(&column),
                optional: !not_null,
                ty,
                name: column,
            })
        })
        .filter(|c| c.key || config.keeps_column(schema, name, &c.name))
        .collect();
    let table = config.table(schema, name, columns);
    Ok((catalog, table))
}

/// Column names in table order.
pub async fn column_order(
    client: &Client,
    schema: &str,
    table: &str,
) -> Result<Vec<String>, ConnectError> {
    let rel = literal(&qualified(schema, table));
    Ok(rows(
        client,
        &format!(
            "SELECT attname FROM pg_attribute WHERE attrelid = {rel}::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        ),
    )
    .await?
    .into_iter()
    .filter_map(|r| r[0].clone())
    .collect())
}
