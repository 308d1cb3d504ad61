//! Debezium's change event: key = the primary key columns; value = `before`,
//! `after`, `source`, `op`, `ts_ms`, with schemas named as Debezium names them
//! (`<prefix>.<schema>.<table>.Key`, `.Value`, `.Envelope`), so a Debezium
//! consumer reads them unchanged.

use std::sync::{Arc, OnceLock};

use sluice_api::{Record, Schema, SchemaRef, SchemaType, Value};

use crate::types::ColumnType;

pub const CONNECTOR: &str = "postgresql";
/// The Debezium version whose event shape this follows (its envelope's
/// `ts_us`/`ts_ns`, its source block's fields), and which `source.version`
/// therefore names.
pub const DEBEZIUM_VERSION: &str = "3.6.3.Final";

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub key: bool,
    pub optional: bool,
}

impl Column {
    /// A value in PostgreSQL's text format (`None` is SQL NULL).
    pub fn decode(&self, text: Option<&str>) -> Result<Value, sluice_api::ConnectError> {
        match text {
            None => Ok(Value::Null),
            Some(t) => self.ty.decode(t).map_err(|e| {
                sluice_api::ConnectError::data(format!("column '{}': {e}", self.name))
            }),
        }
    }
}

/// One captured table: its columns in the order PostgreSQL sends them, and the
/// schemas of its events.
#[derive(Debug)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub topic: Arc<str>,
    /// In the table's order, which is also the order pgoutput sends them in.
    pub columns: Vec<Column>,
    pub key_schema: Option<SchemaRef>,
    pub envelope_schema: SchemaRef,
    /// Whether its changes are emitted: a publication for all tables also
    /// streams tables the include/exclude lists leave out.
    pub captured: bool,
}

/// Debezium's operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Create,
    Update,
    Delete,
    Truncate,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
        }
    }
}

/// Where a change came from, for the envelope's `source` block.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    pub server: &'a str,
    pub db: &'a str,
    /// `"first"`, `"true"`, `"last"`, ..., or `"false"`, as Debezium writes it.
    pub snapshot: &'static str,
    pub ts_ms: i64,
    pub tx_id: Option<i64>,
    pub lsn: Option<i64>,
}

impl Table {
    pub fn new(prefix: &str, schema: &str, name: &str, columns: Vec<Column>) -> Self {
        let base = format!("{prefix}.{schema}.{name}");
        let keys: Vec<&Column> = columns.iter().filter(|c| c.key).collect();
        let key_schema = (!keys.is_empty()).then(|| {
            Schema::struct_of(keys.iter().map(|c| (c.name.clone(), c.ty.schema(false))))
                .named(format!("{base}.Key"))
                .into_ref()
        });
        let row_schema = Schema::struct_of(
            columns
                .iter()
                .map(|c| (c.name.clone(), c.ty.schema(c.optional && !c.key))),
        )
        .named(format!("{base}.Value"))
        .optional()
        .into_ref();
        let mut envelope = Schema::struct_of([
            ("before", row_schema.clone()),
            ("after", row_schema.clone()),
            ("source", source_schema()),
            ("transaction", transaction_schema()),
            ("op", Schema::new(SchemaType::String).into_ref()),
            (
                "ts_ms",
                Schema::new(SchemaType::Int64).optional().into_ref(),
            ),
            (
                "ts_us",
                Schema::new(SchemaType::Int64).optional().into_ref(),
            ),
            (
                "ts_ns",
                Schema::new(SchemaType::Int64).optional().into_ref(),
            ),
        ])
        .named(format!("{base}.Envelope"));
        envelope.version = Some(2);
        Self {
            schema: schema.to_owned(),
            name: name.to_owned(),
            topic: Arc::from(base.as_str()),
            columns,
            key_schema,
            envelope_schema: envelope.into_ref(),
            captured: true,
        }
    }

    /// A row read as text (a snapshot's `SELECT` of [`Table::select_text`]).
    pub fn decode_row(
        &self,
        row: Vec<Option<String>>,
    ) -> Result<Vec<Value>, sluice_api::ConnectError> {
        self.columns
            .iter()
            .zip(row)
            .map(|(c, v)| c.decode(v.as_deref()))
            .collect()
    }

    /// The select list reading every column from the table aliased `src`;
    /// the simple query protocol returns each in the type's text output, as
    /// pgoutput sends it. (Not `::text`: that cast differs from the output
    /// for some types: `char(n)` loses its padding, `inet` gains a `/32`.)
    pub fn select_text(&self) -> String {
        self.columns
            .iter()
            .map(|c| format!("src.{}", crate::database::ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The key of a row (its primary key columns), or null for a keyless table.
    pub fn key_of(&self, row: &[Value]) -> Value {
        if self.key_schema.is_none() {
            return Value::Null;
        }
        Value::Struct(
            self.columns
                .iter()
                .zip(row)
                .filter(|(c, _)| c.key)
                .map(|(_, v)| v.clone())
                .collect(),
        )
    }

    /// A change event. `row` is `after` (or, for a delete, `before`).
    pub fn event(
        &self,
        op: Op,
        before: Option<Vec<Value>>,
        after: Option<Vec<Value>>,
        origin: &Origin<'_>,
        now_ms: i64,
    ) -> Record {
        let key = match after.as_deref().or(before.as_deref()) {
            Some(row) => self.key_of(row),
            // A truncate concerns no row, so it has no key.
            None => Value::Null,
        };
        // Debezium's clock has microseconds; ours here has milliseconds,
        // which `ts_us` and `ts_ns` then say in their units.
        let source = Value::Struct(vec![
            Value::String(DEBEZIUM_VERSION.into()),
            Value::String(CONNECTOR.into()),
            Value::String(origin.server.to_owned()),
            Value::Int64(origin.ts_ms),
            Value::String(origin.snapshot.into()),
            Value::String(origin.db.to_owned()),
            Value::Null,
            Value::Int64(origin.ts_ms.saturating_mul(1000)),
            Value::Int64(origin.ts_ms.saturating_mul(1_000_000)),
            Value::String(self.schema.clone()),
            Value::String(self.name.clone()),
            origin.tx_id.map_or(Value::Null, Value::Int64),
            origin.lsn.map_or(Value::Null, Value::Int64),
            Value::Null,
            Value::Null,
            Value::Null,
        ]);
        let value = Value::Struct(vec![
            before.map_or(Value::Null, Value::Struct),
            after.map_or(Value::Null, Value::Struct),
            source,
            Value::Null,
            Value::String(op.code().into()),
            Value::Int64(now_ms),
            Value::Int64(now_ms.saturating_mul(1000)),
            Value::Int64(now_ms.saturating_mul(1_000_000)),
        ]);
        Record {
            topic: self.topic.clone(),
            // A truncate's key is null without a schema, as Debezium's (the
            // JSON converter then writes no key at all).
            key_schema: if op == Op::Truncate {
                None
            } else {
                self.key_schema.clone()
            },
            key,
            value_schema: Some(self.envelope_schema.clone()),
            value,
            timestamp: Some(now_ms),
            ..Record::default()
        }
    }

    /// The tombstone Debezium writes after a delete, so compaction can drop the key.
    pub fn tombstone(&self, before: &[Value], now_ms: i64) -> Record {
        Record {
            topic: self.topic.clone(),
            key_schema: self.key_schema.clone(),
            key: self.key_of(before),
            value_schema: None,
            value: Value::Null,
            timestamp: Some(now_ms),
            ..Record::default()
        }
    }
}

/// Debezium's heartbeat record: key `{serverName}`, value `{ts_ms}`.
pub fn heartbeat(topic: &str, server: &str, now_ms: i64) -> Record {
    static SCHEMAS: OnceLock<(SchemaRef, SchemaRef)> = OnceLock::new();
    let (key, value) = SCHEMAS.get_or_init(|| {
        (
            Schema::struct_of([("serverName", Schema::new(SchemaType::String).into_ref())])
                .named("io.debezium.connector.common.ServerNameKey")
                .into_ref(),
            Schema::struct_of([("ts_ms", Schema::new(SchemaType::Int64).into_ref())])
                .named("io.debezium.connector.common.Heartbeat")
                .into_ref(),
        )
    });
    Record {
        topic: Arc::from(topic),
        key_schema: Some(key.clone()),
        key: Value::Struct(vec![Value::String(server.to_owned())]),
        value_schema: Some(value.clone()),
        value: Value::Struct(vec![Value::Int64(now_ms)]),
        timestamp: Some(now_ms),
        ..Record::default()
    }
}

/// `io.debezium.connector.postgresql.Source`.
fn source_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let string = || Schema::new(SchemaType::String).into_ref();
            let opt_string = || Schema::new(SchemaType::String).optional().into_ref();
            let opt_long = || Schema::new(SchemaType::Int64).optional().into_ref();
            let mut snapshot = Schema::new(SchemaType::String)
                .named("io.debezium.data.Enum")
                .optional();
            snapshot.version = Some(1);
            snapshot.parameters.insert(
                "allowed".into(),
                "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"
                    .into(),
            );
            snapshot.default = Some(Value::String("false".into()));
            let mut source = Schema::struct_of([
                ("version", string()),
                ("connector", string()),
                ("name", string()),
                ("ts_ms", Schema::new(SchemaType::Int64).into_ref()),
                ("snapshot", snapshot.into_ref()),
                ("db", string()),
                ("sequence", opt_string()),
                ("ts_us", opt_long()),
                ("ts_ns", opt_long()),
                ("schema", string()),
                ("table", string()),
                ("txId", opt_long()),
                ("lsn", opt_long()),
                ("xmin", opt_long()),
                // Replication origins: null unless the change was itself
                // replicated in, which pgoutput as used here does not say.
                ("origin", opt_string()),
                ("origin_lsn", opt_long()),
            ])
            .named("io.debezium.connector.postgresql.Source");
            source.version = Some(1);
            source.into_ref()
        })
        .clone()
}

/// Debezium's optional transaction block (`event.block`); left null, as
/// Debezium does without `provide.transaction.metadata`.
fn transaction_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut s = Schema::struct_of([
                ("id", Schema::new(SchemaType::String).into_ref()),
                ("total_order", Schema::new(SchemaType::Int64).into_ref()),
                (
                    "data_collection_order",
                    Schema::new(SchemaType::Int64).into_ref(),
                ),
            ])
            .named("event.block")
            .optional();
            s.version = Some(1);
            s.into_ref()
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{oid, ColumnType};

    fn table() -> Table {
        let column = |name: &str, key| Column {
            name: name.into(),
            ty: ColumnType::new(oid::INT4, -1),
            key,
            optional: !key,
        };
        Table::new("p", "s", "t", vec![column("id", true), column("n", false)])
    }

    fn names(schema: &Schema) -> Vec<&str> {
        schema.fields().iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn the_envelope_and_source_have_debezium_3s_fields() {
        let t = table();
        let envelope = &t.envelope_schema;
        assert_eq!(
            names(envelope),
            [
                "before",
                "after",
                "source",
                "transaction",
                "op",
                "ts_ms",
                "ts_us",
                "ts_ns"
            ]
        );
        let source = &envelope.fields()[2].schema;
        assert_eq!(
            names(source),
            [
                "version",
                "connector",
                "name",
                "ts_ms",
                "snapshot",
                "db",
                "sequence",
                "ts_us",
                "ts_ns",
                "schema",
                "table",
                "txId",
                "lsn",
                "xmin",
                "origin",
                "origin_lsn"
            ]
        );
        assert_eq!(source.version, Some(1));
        let origin = Origin {
            server: "p",
            db: "d",
            snapshot: "false",
            ts_ms: 7,
            tx_id: Some(1),
            lsn: Some(2),
        };
        let r = t.event(
            Op::Create,
            None,
            Some(vec![Value::Int32(1), Value::Null]),
            &origin,
            9,
        );
        let Value::Struct(fields) = &r.value else {
            panic!("{:?}", r.value)
        };
        assert_eq!(fields.len(), names(envelope).len());
        assert_eq!(fields[6..], [Value::Int64(9_000), Value::Int64(9_000_000)]);
        let Value::Struct(src) = &fields[2] else {
            panic!("{:?}", fields[2])
        };
        assert_eq!(src.len(), names(source).len());
        assert_eq!(src[0], Value::String("3.6.3.Final".into()));
    }

    #[test]
    fn a_truncate_has_neither_key_nor_key_schema() {
        let t = table();
        let origin = Origin {
            server: "p",
            db: "d",
            snapshot: "false",
            ts_ms: 7,
            tx_id: None,
            lsn: None,
        };
        let r = t.event(Op::Truncate, None, None, &origin, 9);
        assert_eq!(r.key, Value::Null);
        assert!(r.key_schema.is_none());
        let c = t.event(
            Op::Create,
            None,
            Some(vec![Value::Int32(1), Value::Null]),
            &origin,
            9,
        );
        assert!(c.key_schema.is_some());
    }
}
