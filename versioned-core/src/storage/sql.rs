//! The SQL statements of one table, built once from its [`TableDef`] and reused.
//!
//! Identifiers are always quoted, values always bound. Each conditional write is one statement
//! carrying the version check in its `WHERE` clause. The bind order of every statement is fixed
//! here and documented on its field, so backends bind without re-deriving it.

use std::fmt::Write;
use std::sync::Arc;

use crate::entity::TableDef;
use crate::value::ColumnType;

/// Quotes an identifier: `name` -> `"name"`, doubling any embedded quote.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statements of one table (SQLite dialect: `?` placeholders, `ON CONFLICT`, `RETURNING`).
#[derive(Debug)]
pub(crate) struct Statements {
    /// `SELECT <all columns> FROM t WHERE key = ?` — binds: key.
    pub select: Arc<str>,
    /// `INSERT … ON CONFLICT (key) DO NOTHING` — binds: every column in order.
    pub insert: Arc<str>,
    /// `UPDATE t SET <non-key columns> WHERE key = ? AND version = ?` — binds: every non-key
    /// column in order (the version column holding the new version), then key, expected version.
    pub update: Arc<str>,
    /// `INSERT … ON CONFLICT (key) DO UPDATE SET …, version = version + 1 WHERE version < ?
    /// RETURNING version` — binds: every column in order (version bound as 1), then version_max.
    pub upsert: Arc<str>,
    /// `DELETE FROM t WHERE key = ? AND version = ?` — binds: key, expected version.
    pub delete_checked: Arc<str>,
    /// `DELETE FROM t WHERE key = ?` — binds: key.
    pub delete_unchecked: Arc<str>,
    /// `CREATE TABLE IF NOT EXISTS …`.
    pub create: Arc<str>,
}

impl Statements {
    pub(crate) fn sqlite(table: &TableDef) -> Self {
        let t = quote(table.name);
        let key = quote(table.key_column().name);
        let version = quote(table.version_column().name);
        let all: Vec<String> = table.columns.iter().map(|c| quote(c.name)).collect();
        let all_list = all.join(", ");
        let placeholders = vec!["?"; all.len()].join(", ");
        let non_key = || all.iter().enumerate().filter(move |(i, _)| *i != table.key).map(|(_, c)| c);

        let set_bound: Vec<String> = non_key().map(|c| format!("{c} = ?")).collect();
        let set_excluded: Vec<String> = non_key()
            .map(|c| if *c == version { format!("{c} = {t}.{c} + 1") } else { format!("{c} = excluded.{c}") })
            .collect();

        let mut create = format!("CREATE TABLE IF NOT EXISTS {t} (");
        for (i, c) in table.columns.iter().enumerate() {
            let ty = match c.ty {
                ColumnType::Bool => "BOOLEAN",
                ColumnType::Int => "INTEGER",
                ColumnType::Float => "REAL",
                ColumnType::Text | ColumnType::Json => "TEXT",
                ColumnType::Bytes => "BLOB",
            };
            let sep = if i == 0 { "" } else { ", " };
            let null = if c.nullable { "" } else { " NOT NULL" };
            let pk = if i == table.key { " PRIMARY KEY" } else { "" };
            // Writing to a String cannot fail.
            let _ = write!(create, "{sep}{} {ty}{null}{pk}", all[i]);
        }
        create.push(')');

        Statements {
            select: format!("SELECT {all_list} FROM {t} WHERE {key} = ?").into(),
            insert: format!("INSERT INTO {t} ({all_list}) VALUES ({placeholders}) ON CONFLICT ({key}) DO NOTHING")
                .into(),
            update: format!("UPDATE {t} SET {} WHERE {key} = ? AND {version} = ?", set_bound.join(", ")).into(),
            upsert: format!(
                "INSERT INTO {t} ({all_list}) VALUES ({placeholders}) ON CONFLICT ({key}) DO UPDATE SET {} \
                 WHERE {t}.{version} < ? RETURNING {version}",
                set_excluded.join(", ")
            )
            .into(),
            delete_checked: format!("DELETE FROM {t} WHERE {key} = ? AND {version} = ?").into(),
            delete_unchecked: format!("DELETE FROM {t} WHERE {key} = ?").into(),
            create: create.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::ColumnDef;

    static PEOPLE: TableDef = TableDef {
        name: "people",
        entity: "Person",
        columns: &[
            ColumnDef { name: "id", field: "id", ty: ColumnType::Int, nullable: false },
            ColumnDef { name: "name", field: "name", ty: ColumnType::Text, nullable: true },
            ColumnDef { name: "version", field: "version", ty: ColumnType::Int, nullable: false },
        ],
        key: 0,
        version: 2,
        version_max: 100,
    };

    #[test]
    fn checked_writes_carry_the_version_in_their_where_clause() {
        let s = Statements::sqlite(&PEOPLE);
        assert_eq!(&*s.update, r#"UPDATE "people" SET "name" = ?, "version" = ? WHERE "id" = ? AND "version" = ?"#);
        assert_eq!(&*s.delete_checked, r#"DELETE FROM "people" WHERE "id" = ? AND "version" = ?"#);
        assert_eq!(
            &*s.upsert,
            r#"INSERT INTO "people" ("id", "name", "version") VALUES (?, ?, ?) ON CONFLICT ("id") DO UPDATE SET "name" = excluded."name", "version" = "people"."version" + 1 WHERE "people"."version" < ? RETURNING "version""#
        );
        assert_eq!(
            &*s.create,
            r#"CREATE TABLE IF NOT EXISTS "people" ("id" INTEGER NOT NULL PRIMARY KEY, "name" TEXT, "version" INTEGER NOT NULL)"#
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote(r#"we"ird"#), r#""we""ird""#);
    }
}
