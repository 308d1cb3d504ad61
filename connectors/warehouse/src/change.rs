//! What a record asks of the warehouse (pure): a row to write, a key to
//! delete, a table to truncate, or nothing. Reads plain records, Debezium's
//! envelope (`op`, `before`, `after`) and its unwrapped form
//! (ExtractNewRecordState, tombstones or `__deleted`), with or without schemas.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use sluice_api::schema::{Schema, SchemaRef, SchemaType};
use sluice_api::{Record, Value};

use crate::config::{PkMode, TableName, WarehouseConfig};
use crate::types::{cell, map_schema, map_value, Cell, Mapping};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub mapping: Mapping,
    /// Whether the field may be null (a new column is added nullable anyway).
    pub optional: bool,
}

/// The columns a change carries, and which of them form the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub columns: Vec<Column>,
    pub key: Vec<usize>,
}

impl Shape {
    pub fn key_names(&self) -> impl Iterator<Item = &str> {
        self.key.iter().map(|&i| self.columns[i].name.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A row to insert, upsert or update, its cells in `shape` order.
    Row {
        table: TableName,
        shape: Arc<Shape>,
        cells: Vec<Cell>,
    },
    /// A row to delete: `shape` holds only the key columns.
    Delete {
        table: TableName,
        shape: Arc<Shape>,
        cells: Vec<Cell>,
    },
    Truncate {
        table: TableName,
    },
    /// A tombstone or delete with delete.enabled off, a truncate with
    /// truncate.enabled off.
    Skip,
}

/// One field of the row: name, schema (if any), value.
type FieldRef<'a> = (&'a str, Option<&'a Schema>, &'a Value);

/// Turns records into changes, remembering the shape of each schema seen.
pub struct Extractor {
    config: Arc<WarehouseConfig>,
    shapes: HashMap<ShapeKey, CachedShape>,
    tables: HashMap<Arc<str>, TableName>,
    /// The last record's table and shape: a batch is mostly one topic and
    /// one schema, so most records need no map lookup (hashing).
    last_table: Option<(Arc<str>, TableName)>,
    last_shape: Option<(ShapeKey, CachedShape)>,
}

/// A topic and the addresses of its value and key schemas. The cache holds
/// the schemas themselves too, so an address is not reused while cached.
type ShapeKey = (Arc<str>, usize, usize);
type CachedShape = (SchemaRef, Option<SchemaRef>, Arc<Shape>);

/// The cache is dropped whole past this size (schemas change rarely).
const MAX_SHAPES: usize = 1024;

static STRING: LazyLock<Schema> = LazyLock::new(|| Schema::new(SchemaType::String));
static INT32: LazyLock<Schema> = LazyLock::new(|| Schema::new(SchemaType::Int32));
static INT64: LazyLock<Schema> = LazyLock::new(|| Schema::new(SchemaType::Int64));

/// A key column: name, schema, value.
struct KeyPart<'a> {
    name: Cow<'a, str>,
    schema: Option<&'a Schema>,
    value: Cow<'a, Value>,
}

impl<'a> KeyPart<'a> {
    fn new(name: Cow<'a, str>, schema: Option<&'a Schema>, value: Cow<'a, Value>) -> Self {
        Self {
            name,
            schema,
            value,
        }
    }
}

impl Extractor {
    pub fn new(config: Arc<WarehouseConfig>) -> Self {
        Self {
            config,
            shapes: HashMap::new(),
            tables: HashMap::new(),
            last_table: None,
            last_shape: None,
        }
    }

    fn table_for(&mut self, topic: &Arc<str>) -> TableName {
        if let Some((t, table)) = &self.last_table {
            if Arc::ptr_eq(t, topic) {
                return table.clone();
            }
        }
        let table = self.lookup_table(topic);
        self.last_table = Some((topic.clone(), table.clone()));
        table
    }

    fn lookup_table(&mut self, topic: &Arc<str>) -> TableName {
        if let Some(t) = self.tables.get(topic) {
            return t.clone();
        }
        if self.tables.len() >= MAX_SHAPES {
            self.tables.clear();
        }
        let t = self.config.table_for(topic);
        self.tables.insert(topic.clone(), t.clone());
        t
    }

    pub fn extract(&mut self, record: &Record) -> Result<Change, String> {
        let table = self.table_for(&record.topic);
        let value_schema = record.value_schema.as_deref();
        let (row_schema, row) = if is_envelope(value_schema, &record.value) {
            let op = field(value_schema, &record.value, "op")
                .and_then(|(_, v)| v.as_str())
                .unwrap_or_default();
            match op {
                "t" => {
                    return Ok(if self.config.truncate_enabled {
                        Change::Truncate { table }
                    } else {
                        Change::Skip
                    })
                }
                "d" => return self.delete(record, table),
                "c" | "r" | "u" => match field(value_schema, &record.value, "after") {
                    Some((schema, v)) if !v.is_null() => (schema, v),
                    _ => return Err(format!("a Debezium '{op}' event without 'after'")),
                },
                other => return Err(format!("an unknown Debezium operation '{other}'")),
            }
        } else if record.value.is_null() {
            return self.delete(record, table);
        } else {
            (value_schema, &record.value)
        };
        if field(row_schema, row, "__deleted").and_then(|(_, v)| v.as_str()) == Some("true") {
            return self.delete(record, table);
        }
        let mut fields: Vec<FieldRef<'_>> = fields_of(row_schema, row)?;
        if !self.config.fields_whitelist.is_empty() {
            fields.retain(|(name, ..)| self.config.fields_whitelist.iter().any(|w| w == name));
        }
        let key = self.key(record, &fields)?;
        let cacheable = row_schema.is_some() && self.config.pk_mode != PkMode::RecordHeader;
        let shape = match &record.value_schema {
            Some(vs) if cacheable => {
                let cache_key = (
                    record.topic.clone(),
                    Arc::as_ptr(vs) as usize,
                    record
                        .key_schema
                        .as_ref()
                        .map_or(0, |k| Arc::as_ptr(k) as usize),
                );
                self.cached_shape(cache_key, vs, record.key_schema.as_ref(), || {
                    shape_of(&fields, &key)
                })
            }
            _ => Arc::new(shape_of(&fields, &key)),
        };
        // A shape lists the key columns, then the other fields in order
        // (`shape_of`), so each column is first looked for where that puts it.
        let mut cells = Vec::with_capacity(shape.columns.len());
        let mut rest = fields.iter().filter(|f| !key.iter().any(|k| k.name == f.0));
        for (i, column) in shape.columns.iter().enumerate() {
            let guess = if i < key.len() {
                Some(&key[i])
                    .filter(|k| k.name == column.name)
                    .map(|k| (k.schema, &*k.value))
            } else {
                rest.next()
                    .filter(|f| f.0 == column.name)
                    .map(|f| (f.1, f.2))
            };
            let (schema, value) = guess.unwrap_or_else(|| source(&key, &fields, &column.name));
            cells.push(
                cell(&column.mapping, schema, value)
                    .map_err(|e| format!("column '{}': {e}", column.name))?,
            );
        }
        Ok(Change::Row {
            table,
            shape,
            cells,
        })
    }

    /// The shape cached for `key` (made by `make` the first time). The last
    /// one is kept apart, with its schemas: looking it up needs no hashing.
    fn cached_shape(
        &mut self,
        key: ShapeKey,
        value_schema: &SchemaRef,
        key_schema: Option<&SchemaRef>,
        make: impl FnOnce() -> Shape,
    ) -> Arc<Shape> {
        if let Some((last, (_, _, shape))) = &self.last_shape {
            if Arc::ptr_eq(&last.0, &key.0) && (last.1, last.2) == (key.1, key.2) {
                return shape.clone();
            }
        }
        let cached = match self.shapes.get(&key) {
            Some(cached) => cached.clone(),
            None => {
                let cached = (value_schema.clone(), key_schema.cloned(), Arc::new(make()));
                if self.shapes.len() >= MAX_SHAPES {
                    self.shapes.clear();
                }
                self.shapes.insert(key.clone(), cached.clone());
                cached
            }
        };
        let shape = cached.2.clone();
        self.last_shape = Some((key, cached));
        shape
    }

    fn delete(&self, record: &Record, table: TableName) -> Result<Change, String> {
        if !self.config.delete_enabled {
            return Ok(Change::Skip);
        }
        let key = self.key(record, &[])?;
        if key.is_empty() {
            return Err("a delete without a key".into());
        }
        let shape = shape_of(&[], &key);
        let cells = shape
            .columns
            .iter()
            .zip(&key)
            .map(|(c, k)| {
                cell(&c.mapping, k.schema, &k.value)
                    .map_err(|e| format!("column '{}': {e}", c.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Change::Delete {
            table,
            shape: Arc::new(shape),
            cells,
        })
    }

    /// The key columns with their schemas and values, per pk.mode.
    fn key<'a>(
        &self,
        record: &'a Record,
        fields: &[FieldRef<'a>],
    ) -> Result<Vec<KeyPart<'a>>, String> {
        let pk = &self.config.pk_fields;
        let wanted = |name: &str| pk.is_empty() || pk.iter().any(|p| p == name);
        match self.config.pk_mode {
            PkMode::None => Ok(Vec::new()),
            PkMode::Kafka => {
                let name = |i: usize| -> Cow<'a, str> {
                    match pk.get(i).filter(|_| pk.len() == 3) {
                        Some(p) => Cow::Owned(p.clone()),
                        None => Cow::Borrowed(
                            ["__connect_topic", "__connect_partition", "__connect_offset"][i],
                        ),
                    }
                };
                Ok(vec![
                    KeyPart::new(
                        name(0),
                        Some(&STRING),
                        Cow::Owned(Value::String(record.topic.to_string())),
                    ),
                    KeyPart::new(
                        name(1),
                        Some(&INT32),
                        Cow::Owned(Value::Int32(record.partition.unwrap_or(-1))),
                    ),
                    KeyPart::new(
                        name(2),
                        Some(&INT64),
                        Cow::Owned(Value::Int64(record.offset.unwrap_or(-1))),
                    ),
                ])
            }
            PkMode::RecordKey => {
                if record.key.is_null() {
                    return Err("pk.mode=record_key, and the record has no key".into());
                }
                let ks = record.key_schema.as_deref();
                let structured = matches!(ks.map(|s| &s.schema_type), Some(SchemaType::Struct(_)))
                    || (ks.is_none() && matches!(record.key, Value::Map(_)));
                if !structured {
                    let name = pk
                        .first()
                        .map_or(Cow::Borrowed("__connect_key"), |p| Cow::Owned(p.clone()));
                    return Ok(vec![KeyPart::new(name, ks, Cow::Borrowed(&record.key))]);
                }
                let parts: Vec<KeyPart<'a>> = fields_of(ks, &record.key)?
                    .into_iter()
                    .filter(|(n, ..)| wanted(n))
                    .map(|(n, s, v)| KeyPart::new(Cow::Borrowed(n), s, Cow::Borrowed(v)))
                    .collect();
                if parts.is_empty() {
                    return Err("the record key has none of the pk.fields".into());
                }
                Ok(parts)
            }
            PkMode::RecordValue => {
                let parts: Vec<KeyPart<'a>> = fields
                    .iter()
                    .filter(|(n, ..)| wanted(n))
                    .map(|&(n, s, v)| KeyPart::new(Cow::Borrowed(n), s, Cow::Borrowed(v)))
                    .collect();
                match pk.iter().find(|p| !parts.iter().any(|k| k.name == **p)) {
                    Some(p) => Err(format!("the record value has no pk.fields field '{p}'")),
                    None => Ok(parts),
                }
            }
            PkMode::RecordHeader => {
                let mut parts: Vec<KeyPart<'a>> = Vec::new();
                for h in record.headers.iter() {
                    if wanted(&h.key) && !parts.iter().any(|k| k.name == h.key) {
                        let text = record
                            .headers
                            .last(&h.key)
                            .and_then(|h| h.value.as_deref())
                            .map(|b| String::from_utf8_lossy(b).into_owned());
                        let value = text.map_or(Value::Null, Value::String);
                        parts.push(KeyPart::new(
                            Cow::Borrowed(&h.key),
                            Some(&STRING),
                            Cow::Owned(value),
                        ));
                    }
                }
                match pk.iter().find(|p| !parts.iter().any(|k| k.name == **p)) {
                    Some(p) => Err(format!("the record has no header '{p}' (pk.fields)")),
                    None => Ok(parts),
                }
            }
        }
    }
}

/// Where a column's value is: a key part, else a field, else nowhere (null).
fn source<'a>(
    key: &'a [KeyPart<'a>],
    fields: &[FieldRef<'a>],
    name: &str,
) -> (Option<&'a Schema>, &'a Value) {
    match key.iter().find(|k| k.name == name) {
        Some(k) => (k.schema, &*k.value),
        None => match fields.iter().find(|f| f.0 == name) {
            Some(f) => (f.1, f.2),
            None => (None, &Value::Null),
        },
    }
}

/// Key columns first (in key order), then the row's other fields.
fn shape_of(fields: &[FieldRef<'_>], key: &[KeyPart<'_>]) -> Shape {
    let mapping = |schema: Option<&Schema>, value: &Value| match schema {
        Some(s) => map_schema(s),
        None => map_value(value),
    };
    let mut columns: Vec<Column> = key
        .iter()
        .map(|k| Column {
            name: k.name.clone().into_owned(),
            mapping: mapping(k.schema, &k.value),
            optional: false,
        })
        .collect();
    let key_len = columns.len();
    for &(name, schema, value) in fields {
        if columns.iter().any(|c| c.name == name) {
            continue;
        }
        columns.push(Column {
            name: name.to_owned(),
            mapping: mapping(schema, value),
            optional: schema.is_none_or(|s| s.optional),
        });
    }
    Shape {
        columns,
        key: (0..key_len).collect(),
    }
}

/// Debezium's change event: a struct (or map) with `op` and `after`/`before`.
fn is_envelope(schema: Option<&Schema>, value: &Value) -> bool {
    let has = |n: &str| field(schema, value, n).is_some();
    has("op") && (has("after") || has("before")) && has("source")
}

fn field<'a>(
    schema: Option<&'a Schema>,
    value: &'a Value,
    name: &str,
) -> Option<(Option<&'a Schema>, &'a Value)> {
    match (schema, value) {
        (Some(s), Value::Struct(values)) => {
            let i = s.field_index(name)?;
            Some((Some(&*s.fields()[i].schema), values.get(i)?))
        }
        (None, Value::Map(_)) => value.map_get(name).map(|v| (None, v)),
        _ => None,
    }
}

/// A struct's (or a schemaless map's) fields.
fn fields_of<'a>(
    schema: Option<&'a Schema>,
    value: &'a Value,
) -> Result<Vec<FieldRef<'a>>, String> {
    match (schema, value) {
        (Some(s), Value::Struct(values)) => Ok(s
            .fields()
            .iter()
            .zip(values)
            .map(|(f, v)| (f.name.as_str(), Some(&*f.schema), v))
            .collect()),
        (None, Value::Map(entries)) => entries
            .iter()
            .map(|(k, v)| match k.as_str() {
                Some(name) => Ok((name, None, v)),
                None => Err(format!("a map key {k:?} is not a column name")),
            })
            .collect(),
        (_, other) => Err(format!(
            "a row must be a struct or a JSON object, not {}",
            describe(other)
        )),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "an array",
        Value::Map(_) => "a map without a schema",
        Value::String(_) => "a string",
        Value::Bytes(_) => "bytes",
        _ => "a scalar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::schema::primitives;
    use sluice_api::TaskConfig;

    fn extractor(pairs: &[(&str, &str)]) -> Extractor {
        let mut raw: TaskConfig = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        raw.insert("connection.url".into(), "postgres://h/db".into());
        Extractor::new(Arc::new(WarehouseConfig::parse(&raw).unwrap()))
    }

    fn row_schema() -> SchemaRef {
        Schema::struct_of([
            ("id", primitives::int32()),
            ("name", primitives::optional_string()),
        ])
        .into_ref()
    }

    fn envelope(op: &str, after: Option<Value>) -> Record {
        let row = row_schema();
        let opt_row = Arc::new(Schema {
            optional: true,
            ..(*row).clone()
        });
        let schema = Schema::struct_of([
            ("before", opt_row.clone()),
            ("after", opt_row),
            (
                "source",
                Schema::struct_of([("table", primitives::string())]).into_ref(),
            ),
            ("op", primitives::string()),
        ])
        .into_ref();
        Record {
            topic: Arc::from("cdc.public.items"),
            partition: Some(0),
            offset: Some(3),
            key_schema: Some(Schema::struct_of([("id", primitives::int32())]).into_ref()),
            key: Value::Struct(vec![Value::Int32(7)]),
            value_schema: Some(schema),
            value: Value::Struct(vec![
                Value::Null,
                after.unwrap_or(Value::Null),
                Value::Struct(vec!["items".into()]),
                op.into(),
            ]),
            ..Record::default()
        }
    }

    #[test]
    fn debezium_envelope_becomes_rows_deletes_and_truncates() {
        let mut x = extractor(&[
            ("pk.mode", "record_key"),
            ("delete.enabled", "true"),
            ("truncate.enabled", "true"),
        ]);
        let after = Value::Struct(vec![Value::Int32(7), "seven".into()]);
        let Change::Row {
            table,
            shape,
            cells,
        } = x.extract(&envelope("u", Some(after))).unwrap()
        else {
            panic!()
        };
        assert_eq!(table.to_string(), "cdc_public_items");
        assert_eq!(shape.key_names().collect::<Vec<_>>(), ["id"]);
        assert_eq!(cells, [Cell::I32(7), Cell::Text("seven".into())]);
        let Change::Delete { shape, cells, .. } = x.extract(&envelope("d", None)).unwrap() else {
            panic!()
        };
        assert_eq!(shape.columns.len(), 1);
        assert_eq!(cells, [Cell::I32(7)]);
        let mut t = envelope("t", None);
        t.key = Value::Null;
        t.key_schema = None;
        assert!(matches!(x.extract(&t).unwrap(), Change::Truncate { .. }));
        // The same schema twice: one shape.
        let mut r = envelope("c", Some(Value::Struct(vec![Value::Int32(1), Value::Null])));
        let a = x.extract(&r).unwrap();
        r.offset = Some(4);
        let b = x.extract(&r).unwrap();
        match (a, b) {
            (Change::Row { shape: s1, .. }, Change::Row { shape: s2, .. }) => {
                assert!(Arc::ptr_eq(&s1, &s2))
            }
            _ => panic!(),
        }
    }

    #[test]
    fn deletes_and_truncates_are_skipped_unless_enabled() {
        let mut x = extractor(&[("pk.mode", "record_key")]);
        assert_eq!(x.extract(&envelope("d", None)).unwrap(), Change::Skip);
        assert_eq!(x.extract(&envelope("t", None)).unwrap(), Change::Skip);
    }

    #[test]
    fn unwrapped_rows_tombstones_and_deleted_markers() {
        let mut x = extractor(&[
            ("pk.mode", "record_key"),
            ("delete.enabled", "true"),
            ("fields.whitelist", "id,name"),
        ]);
        let mut r = envelope("c", None);
        r.value_schema = None;
        r.value = Value::Map(vec![
            ("id".into(), Value::Int64(7)),
            ("name".into(), "x".into()),
            ("extra".into(), Value::Int64(1)),
        ]);
        let Change::Row { shape, cells, .. } = x.extract(&r).unwrap() else {
            panic!()
        };
        // The key's value and schema win for the key column.
        assert_eq!(
            shape
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["id", "name"]
        );
        assert_eq!(cells, [Cell::I32(7), Cell::Text("x".into())]);
        r.value = Value::Map(vec![
            ("id".into(), Value::Int64(7)),
            ("__deleted".into(), "true".into()),
        ]);
        assert!(matches!(x.extract(&r).unwrap(), Change::Delete { .. }));
        r.value = Value::Null;
        assert!(matches!(x.extract(&r).unwrap(), Change::Delete { .. }));
    }

    #[test]
    fn kafka_and_value_keys() {
        let mut x = extractor(&[("pk.mode", "kafka")]);
        let mut r = envelope("c", Some(Value::Struct(vec![Value::Int32(1), Value::Null])));
        r.offset = Some(42);
        let Change::Row { shape, cells, .. } = x.extract(&r).unwrap() else {
            panic!()
        };
        assert_eq!(shape.key.len(), 3);
        assert_eq!(
            cells[..3],
            [
                Cell::Text("cdc.public.items".into()),
                Cell::I32(0),
                Cell::I64(42)
            ]
        );
        let mut x = extractor(&[("pk.mode", "record_value"), ("pk.fields", "nope")]);
        assert!(x.extract(&r).unwrap_err().contains("nope"));
        let mut x = extractor(&[("pk.mode", "record_key")]);
        r.key = Value::Null;
        assert!(x.extract(&r).unwrap_err().contains("no key"));
    }
}
