//! The SQL a warehouse speaks (pure): DDL from shapes, the staging table, and
//! the set-based statements that merge it into the target. PostgreSQL is the
//! one implementation; another warehouse is another implementation of
//! [`Dialect`] (and its connection in `database.rs`).

use crate::change::{Column, Shape};
use crate::config::{InsertMode, TableName};

/// A target column as the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetColumn {
    pub name: String,
    /// As the database prints it (`format_type`), usable in a cast.
    pub sql_type: String,
}

pub trait Dialect: Send + Sync {
    fn ident(&self, name: &str) -> String;

    fn table(&self, t: &TableName) -> String {
        match &t.schema {
            Some(s) => format!("{}.{}", self.ident(s), self.ident(&t.table)),
            None => self.ident(&t.table),
        }
    }

    /// CREATE TABLE from a shape, its key as the primary key.
    fn create_table(&self, t: &TableName, shape: &Shape) -> String;
    fn add_column(&self, t: &TableName, c: &Column) -> String;
    /// A session-local staging table with `columns` in their wire types,
    /// named `c0`, `c1`, ...
    fn create_staging(&self, name: &str, columns: &[Column]) -> String;
    /// Merges the staging table into the target. `targets[i]` is the target
    /// column for staging column `i`.
    fn merge(
        &self,
        mode: InsertMode,
        t: &TableName,
        stage: &str,
        targets: &[TargetColumn],
        key: &[usize],
    ) -> String;
    fn delete(&self, t: &TableName, stage: &str, targets: &[TargetColumn]) -> String;
    /// The target of a COPY straight into the table: the table and its columns.
    fn copy_target(&self, t: &TableName, targets: &[TargetColumn]) -> String;
    fn truncate(&self, t: &TableName) -> String;
}

pub struct Postgres {
    pub quote: bool,
    /// A created table's fillfactor, when not PostgreSQL's default.
    pub fillfactor: Option<u8>,
}

impl Postgres {
    fn cast(&self, stage_col: usize, target: &TargetColumn, alias: &str) -> String {
        format!("{alias}c{stage_col}::{}", target.sql_type)
    }
}

impl Dialect for Postgres {
    fn ident(&self, name: &str) -> String {
        if self.quote {
            format!("\"{}\"", name.replace('"', "\"\""))
        } else {
            name.to_owned()
        }
    }

    fn create_table(&self, t: &TableName, shape: &Shape) -> String {
        let mut cols: Vec<String> = shape
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let not_null = if shape.key.contains(&i) || !c.optional {
                    " NOT NULL"
                } else {
                    ""
                };
                format!("{} {}{not_null}", self.ident(&c.name), c.mapping.col.sql())
            })
            .collect();
        if !shape.key.is_empty() {
            let key: Vec<String> = shape.key_names().map(|k| self.ident(k)).collect();
            cols.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        let with = self
            .fillfactor
            .map(|f| format!(" WITH (fillfactor = {f})"))
            .unwrap_or_default();
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}){with}",
            self.table(t),
            cols.join(", ")
        )
    }

    fn add_column(&self, t: &TableName, c: &Column) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}",
            self.table(t),
            self.ident(&c.name),
            c.mapping.col.sql()
        )
    }

    fn create_staging(&self, name: &str, columns: &[Column]) -> String {
        let cols: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("c{i} {}", c.mapping.wire.sql()))
            .collect();
        format!(
            "CREATE TEMP TABLE IF NOT EXISTS {name} ({}) ON COMMIT DROP",
            cols.join(", ")
        )
    }

    fn merge(
        &self,
        mode: InsertMode,
        t: &TableName,
        stage: &str,
        targets: &[TargetColumn],
        key: &[usize],
    ) -> String {
        let table = self.table(t);
        let names: Vec<String> = targets.iter().map(|c| self.ident(&c.name)).collect();
        let values: Vec<String> = targets
            .iter()
            .enumerate()
            .map(|(i, c)| self.cast(i, c, ""))
            .collect();
        let insert = format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {stage}",
            names.join(", "),
            values.join(", ")
        );
        let non_key: Vec<usize> = (0..targets.len()).filter(|i| !key.contains(i)).collect();
        match mode {
            InsertMode::Insert => insert,
            InsertMode::Upsert => {
                let conflict: Vec<&str> = key.iter().map(|&i| names[i].as_str()).collect();
                let action = if non_key.is_empty() {
                    "DO NOTHING".to_owned()
                } else {
                    let sets: Vec<String> = non_key
                        .iter()
                        .map(|&i| format!("{0} = EXCLUDED.{0}", names[i]))
                        .collect();
                    format!("DO UPDATE SET {}", sets.join(", "))
                };
                format!("{insert} ON CONFLICT ({}) {action}", conflict.join(", "))
            }
            InsertMode::Update => {
                let sets: Vec<String> = non_key
                    .iter()
                    .map(|&i| format!("{} = {}", names[i], self.cast(i, &targets[i], "s.")))
                    .collect();
                let on: Vec<String> = key
                    .iter()
                    .map(|&i| format!("t.{} = {}", names[i], self.cast(i, &targets[i], "s.")))
                    .collect();
                if sets.is_empty() {
                    // Nothing to change: an UPDATE of no columns is no statement.
                    return "SELECT 1".to_owned();
                }
                format!(
                    "UPDATE {table} AS t SET {} FROM {stage} AS s WHERE {}",
                    sets.join(", "),
                    on.join(" AND ")
                )
            }
        }
    }

    fn delete(&self, t: &TableName, stage: &str, targets: &[TargetColumn]) -> String {
        let on: Vec<String> = targets
            .iter()
            .enumerate()
            .map(|(i, c)| format!("t.{} = {}", self.ident(&c.name), self.cast(i, c, "s.")))
            .collect();
        format!(
            "DELETE FROM {} AS t USING {stage} AS s WHERE {}",
            self.table(t),
            on.join(" AND ")
        )
    }

    fn copy_target(&self, t: &TableName, targets: &[TargetColumn]) -> String {
        let names: Vec<String> = targets.iter().map(|c| self.ident(&c.name)).collect();
        format!("{} ({})", self.table(t), names.join(", "))
    }

    fn truncate(&self, t: &TableName) -> String {
        format!("TRUNCATE TABLE {}", self.table(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{map_schema, map_value};
    use sluice_api::schema::{Schema, SchemaType};
    use sluice_api::Value;

    fn target(name: &str, t: &str) -> TargetColumn {
        TargetColumn {
            name: name.into(),
            sql_type: t.into(),
        }
    }

    #[test]
    fn statements() {
        let pg = Postgres {
            quote: true,
            fillfactor: None,
        };
        let t = TableName::parse("wh.items");
        let targets = [target("id", "integer"), target("u", "uuid")];
        assert_eq!(
            pg.merge(InsertMode::Upsert, &t, "stage_0", &targets, &[0]),
            r#"INSERT INTO "wh"."items" ("id", "u") SELECT c0::integer, c1::uuid FROM stage_0 ON CONFLICT ("id") DO UPDATE SET "u" = EXCLUDED."u""#
        );
        assert_eq!(
            pg.merge(InsertMode::Update, &t, "stage_0", &targets, &[0]),
            r#"UPDATE "wh"."items" AS t SET "u" = s.c1::uuid FROM stage_0 AS s WHERE t."id" = s.c0::integer"#
        );
        assert_eq!(
            pg.delete(&t, "stage_1", &targets[..1]),
            r#"DELETE FROM "wh"."items" AS t USING stage_1 AS s WHERE t."id" = s.c0::integer"#
        );
        assert_eq!(pg.copy_target(&t, &targets), r#""wh"."items" ("id", "u")"#);
        let bare = Postgres {
            quote: false,
            fillfactor: None,
        };
        assert_eq!(bare.ident("We\"ird"), "We\"ird");
        assert_eq!(pg.ident("We\"ird"), "\"We\"\"ird\"");
    }

    #[test]
    fn ddl() {
        let pg = Postgres {
            quote: true,
            fillfactor: None,
        };
        let shape = Shape {
            columns: vec![
                Column {
                    name: "id".into(),
                    mapping: map_schema(&Schema::new(SchemaType::Int64)),
                    optional: false,
                },
                Column {
                    name: "doc".into(),
                    mapping: map_value(&Value::Map(vec![])),
                    optional: true,
                },
            ],
            key: vec![0],
        };
        let t = TableName::parse("t");
        assert_eq!(
            pg.create_table(&t, &shape),
            r#"CREATE TABLE IF NOT EXISTS "t" ("id" bigint NOT NULL, "doc" jsonb, PRIMARY KEY ("id"))"#
        );
        let roomy = Postgres {
            quote: true,
            fillfactor: Some(50),
        };
        assert_eq!(
            roomy.create_table(&t, &shape),
            r#"CREATE TABLE IF NOT EXISTS "t" ("id" bigint NOT NULL, "doc" jsonb, PRIMARY KEY ("id")) WITH (fillfactor = 50)"#
        );
        assert_eq!(
            pg.create_staging("s0", &shape.columns),
            "CREATE TEMP TABLE IF NOT EXISTS s0 (c0 bigint, c1 text) ON COMMIT DROP"
        );
        assert_eq!(
            pg.add_column(&t, &shape.columns[1]),
            r#"ALTER TABLE "t" ADD COLUMN IF NOT EXISTS "doc" jsonb"#
        );
    }
}
