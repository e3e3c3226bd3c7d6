//! The SQL statements of one table, built once from its [`TableDef`] and reused.
//!
//! Identifiers are always quoted, values always bound. Each conditional write is one statement
//! carrying the version check in its `WHERE` clause. The bind order of every statement is fixed
//! here and documented on its field, so backends bind without re-deriving it.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, PoisonError, RwLock};

use crate::entity::{ColumnRole, TableDef};
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
    /// `UPDATE t SET <update_columns> WHERE key = ? AND version = ?` — binds: the values of
    /// `update_columns` in order (the version column holding the new version), then key, expected
    /// version.
    pub update: Arc<str>,
    /// The columns an update sets: all but the key and a `CreatedAt` column.
    pub update_columns: Vec<usize>,
    /// `INSERT … ON CONFLICT (key) DO UPDATE SET …, version = version + 1 WHERE <version is
    /// valid> AND version < ? RETURNING version` — binds: every column in order (version bound as
    /// 1), then version_max. A stored version that is not a non-negative integer is never
    /// incremented: the statement returns no row.
    pub upsert: Arc<str>,
    /// `DELETE FROM t WHERE key = ? AND version = ?` — binds: key, expected version.
    pub delete_checked: Arc<str>,
    /// `DELETE FROM t WHERE key = ? AND <version is valid>` — binds: key.
    pub delete_unchecked: Arc<str>,
    /// `CREATE TABLE IF NOT EXISTS …`.
    pub create: Arc<str>,
    /// What [`Statements::patch`] needs, and the patch statements built so far, by column set.
    table_name: String,
    key: String,
    version: String,
    quoted: Vec<String>,
    patches: RwLock<HashMap<Vec<usize>, Arc<str>>>,
}

impl Statements {
    pub(crate) fn sqlite(table: &TableDef) -> Self {
        let t = quote(table.name);
        let key = quote(table.key_column().name);
        let version = quote(table.version_column().name);
        let all: Vec<String> = table.columns.iter().map(|c| quote(c.name)).collect();
        let all_list = all.join(", ");
        let placeholders = vec!["?"; all.len()].join(", ");
        // What an update (checked or forced) rewrites: all but the key and the creation time.
        let created = table.column_with(ColumnRole::CreatedAt);
        let update_columns: Vec<usize> = (0..all.len()).filter(|i| *i != table.key && Some(*i) != created).collect();
        let set_bound: Vec<String> = update_columns.iter().map(|i| format!("{} = ?", all[*i])).collect();
        // SQLite stores any value in any column: only an integer >= 0 is a version.
        let valid_version = format!("typeof({t}.{version}) = 'integer' AND {t}.{version} >= 0");
        let set_excluded: Vec<String> = update_columns
            .iter()
            .map(|&i| {
                let c = &all[i];
                if i == table.version { format!("{c} = {t}.{c} + 1") } else { format!("{c} = excluded.{c}") }
            })
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
                 WHERE {valid_version} AND {t}.{version} < ? RETURNING {version}",
                set_excluded.join(", ")
            )
            .into(),
            delete_checked: format!("DELETE FROM {t} WHERE {key} = ? AND {version} = ?").into(),
            delete_unchecked: format!("DELETE FROM {t} WHERE {key} = ? AND {valid_version}").into(),
            create: create.into(),
            update_columns,
            table_name: t,
            key,
            version,
            quoted: all,
            patches: RwLock::default(),
        }
    }

    /// `UPDATE t SET <columns>, version = ? WHERE key = ? AND version = ?` — binds: the values of
    /// `columns` in order, the new version, key, expected version. Built once per column set.
    pub(crate) fn patch(&self, columns: Vec<usize>) -> Arc<str> {
        // The map only ever gains complete entries, so a poisoned lock still holds valid data.
        if let Some(sql) = self.patches.read().unwrap_or_else(PoisonError::into_inner).get(&columns) {
            return Arc::clone(sql);
        }
        let (t, key, version) = (&self.table_name, &self.key, &self.version);
        let mut set: Vec<String> = columns.iter().map(|i| format!("{} = ?", self.quoted[*i])).collect();
        set.push(format!("{version} = ?"));
        let sql: Arc<str> = format!("UPDATE {t} SET {} WHERE {key} = ? AND {version} = ?", set.join(", ")).into();
        let mut patches = self.patches.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(patches.entry(columns).or_insert(sql))
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
            ColumnDef { name: "id", field: "id", ty: ColumnType::Int, nullable: false, role: ColumnRole::Key },
            ColumnDef { name: "name", field: "name", ty: ColumnType::Text, nullable: true, role: ColumnRole::Data },
            ColumnDef {
                name: "created",
                field: "created",
                ty: ColumnType::Int,
                nullable: false,
                role: ColumnRole::CreatedAt,
            },
            ColumnDef {
                name: "version",
                field: "version",
                ty: ColumnType::Int,
                nullable: false,
                role: ColumnRole::Version,
            },
        ],
        key: 0,
        version: 3,
        version_max: 100,
    };

    #[test]
    fn checked_writes_carry_the_version_in_their_where_clause() {
        let s = Statements::sqlite(&PEOPLE);
        assert_eq!(&*s.update, r#"UPDATE "people" SET "name" = ?, "version" = ? WHERE "id" = ? AND "version" = ?"#);
        assert_eq!(s.update_columns, [1, 3], "an update never sets the key or the creation time");
        assert_eq!(&*s.delete_checked, r#"DELETE FROM "people" WHERE "id" = ? AND "version" = ?"#);
        assert_eq!(
            &*s.upsert,
            r#"INSERT INTO "people" ("id", "name", "created", "version") VALUES (?, ?, ?, ?) ON CONFLICT ("id") DO UPDATE SET "name" = excluded."name", "version" = "people"."version" + 1 WHERE typeof("people"."version") = 'integer' AND "people"."version" >= 0 AND "people"."version" < ? RETURNING "version""#
        );
        assert_eq!(
            &*s.delete_unchecked,
            r#"DELETE FROM "people" WHERE "id" = ? AND typeof("people"."version") = 'integer' AND "people"."version" >= 0"#
        );
        assert_eq!(
            &*s.create,
            r#"CREATE TABLE IF NOT EXISTS "people" ("id" INTEGER NOT NULL PRIMARY KEY, "name" TEXT, "created" INTEGER NOT NULL, "version" INTEGER NOT NULL)"#
        );
        assert_eq!(
            &*s.patch(vec![1]),
            r#"UPDATE "people" SET "name" = ?, "version" = ? WHERE "id" = ? AND "version" = ?"#
        );
        assert_eq!(&*s.patch(vec![]), r#"UPDATE "people" SET "version" = ? WHERE "id" = ? AND "version" = ?"#);
        assert!(Arc::ptr_eq(&s.patch(vec![1]), &s.patch(vec![1])), "built once per column set");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote(r#"we"ird"#), r#""we""ird""#);
    }
}
