//! What differs between SQL databases, and nothing else.
//!
//! A [`Dialect`]'s provided methods write standard SQL (double-quoted identifiers, `ON CONFLICT`
//! upserts, `RETURNING`, `FOR UPDATE`); each database's dialect overrides only what it does
//! differently. The statements themselves are written once, in [`super::Statements`], and their
//! bind order never depends on the dialect.

use crate::entity::ColumnDef;
use crate::value::ColumnType;

/// The parts of an upsert (`put_unchecked`): an insert that, on a duplicate key, replaces the
/// stored columns and increments a valid stored version below the maximum.
pub(crate) struct Upsert<'a> {
    /// The quoted table name.
    pub table: &'a str,
    /// The quoted column list, in column order.
    pub columns: &'a str,
    /// The placeholders of every column, in column order.
    pub values: &'a str,
    /// The quoted key column.
    pub key: &'a str,
    /// The quoted version column.
    pub version: &'a str,
    /// The quoted columns an update replaces (the version column among them).
    pub set: &'a [String],
    /// The largest version the field holds, as an SQL literal.
    pub version_max: u64,
}

/// The differences between SQL databases the statements need.
pub(crate) trait Dialect: Sync + 'static {
    /// Quotes an identifier: `name` -> `"name"`, doubling any embedded quote.
    fn quote(&self, name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    /// The placeholder of the `index`-th bound value (from 1).
    fn placeholder(&self, index: usize) -> String {
        let _ = index;
        "?".to_owned()
    }

    /// The declared type of a column.
    fn column_type(&self, column: &ColumnDef) -> &'static str;

    /// The condition that a stored version (a qualified column) is a version: a non-negative
    /// integer. A typed integer column only needs the sign checked.
    fn valid_version(&self, version: &str) -> String {
        format!("{version} >= 0")
    }

    /// An insert that writes nothing when the key exists (affecting no row).
    fn insert_unless_exists(&self, table: &str, columns: &str, values: &str, key: &str) -> String {
        format!("INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT ({key}) DO NOTHING")
    }

    /// The upsert of `put_unchecked`, returning the new version (no row when refused).
    fn upsert(&self, u: &Upsert<'_>) -> String {
        let (t, v) = (u.table, u.version);
        let set: Vec<String> = u
            .set
            .iter()
            .map(|c| if c == v { format!("{c} = {t}.{c} + 1") } else { format!("{c} = excluded.{c}") })
            .collect();
        format!(
            "INSERT INTO {t} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {} WHERE {} AND {t}.{v} < {} RETURNING {v}",
            u.columns,
            u.values,
            u.key,
            set.join(", "),
            self.valid_version(&format!("{t}.{v}")),
            u.version_max
        )
    }
}

/// SQLite: any value in any column, so a version's type is checked too; no row locks (a
/// transaction holds the database's write lock).
pub(crate) struct SqliteDialect;

impl Dialect for SqliteDialect {
    fn column_type(&self, column: &ColumnDef) -> &'static str {
        match column.ty {
            ColumnType::Bool => "BOOLEAN",
            ColumnType::Int => "INTEGER",
            ColumnType::Float => "REAL",
            ColumnType::Text | ColumnType::Json => "TEXT",
            ColumnType::Bytes => "BLOB",
        }
    }

    fn valid_version(&self, version: &str) -> String {
        format!("typeof({version}) = 'integer' AND {version} >= 0")
    }
}
