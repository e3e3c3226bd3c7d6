//! What differs between SQL databases, and nothing else: the [`Dialect`] trait.
//!
//! A [`Dialect`]'s provided methods write standard SQL (double-quoted identifiers, `ON CONFLICT`
//! upserts, `RETURNING`, `FOR UPDATE`); each database's dialect lives beside its backend
//! (`storage/sqlite/dialect.rs`, `storage/postgres/dialect.rs`, `storage/mysql/dialect.rs`) and
//! overrides only what it does differently. The statements themselves are written once, in
//! [`super::Statements`], and their bind order never depends on the dialect.

use super::history::Triggers;
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

    /// How the `index`-th bound value (from 1) of a column of type `ty` enters a statement: its
    /// placeholder, converted where the bound form differs from the column's type.
    fn bind(&self, index: usize, ty: ColumnType) -> String {
        let _ = ty;
        self.placeholder(index)
    }

    /// How a column of type `ty` is read: the expression that yields the value as bound.
    fn read(&self, column: &str, ty: ColumnType) -> String {
        let _ = ty;
        column.to_owned()
    }

    /// What follows `ASC` (`first`) or `DESC` in an `ORDER BY` of a nullable column so that
    /// `NULL` sorts before every value, as `None` does in Rust. Nothing by default: SQLite and
    /// MySQL sort `NULL` first in ascending order and last in descending order already.
    fn nulls_first(&self, first: bool) -> &'static str {
        let _ = first;
        ""
    }

    /// The statement that creates index `name` on `columns` of `table` (all quoted), once: a
    /// second run changes nothing.
    fn create_index(&self, table: &str, name: &str, columns: &[(&str, ColumnType)]) -> String {
        let columns: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
        format!("CREATE INDEX IF NOT EXISTS {name} ON {table} ({})", columns.join(", "))
    }

    /// The declared type of a column.
    fn column_type(&self, column: &ColumnDef) -> &'static str;

    /// The clause that locks the rows a `SELECT` reads until the transaction ends, failing at
    /// once when another transaction holds them (`nowait`); `None` where the database locks no
    /// rows (SQLite's transactions hold the whole database).
    fn for_update(&self, nowait: bool) -> Option<&'static str> {
        Some(if nowait { " FOR UPDATE NOWAIT" } else { " FOR UPDATE" })
    }

    /// The clause that locks the rows a `SELECT` reads that no other transaction holds, leaving
    /// the others out, or `None` where the dialect locks no rows.
    fn skip_locked(&self) -> Option<&'static str> {
        Some(" FOR UPDATE SKIP LOCKED")
    }

    /// The condition that a stored version (a qualified column) is a version: a non-negative
    /// integer. A typed integer column only needs the sign checked.
    fn valid_version(&self, version: &str) -> String {
        format!("{version} >= 0")
    }

    /// An insert that writes nothing when the key exists (affecting no row).
    fn insert_unless_exists(&self, table: &str, columns: &str, values: &str, key: &str) -> String {
        format!("INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT ({key}) DO NOTHING")
    }

    /// Whether a batch is one statement per chunk of rows (`UPDATE … FROM (VALUES …)`,
    /// multi-row `INSERT … ON CONFLICT DO NOTHING`, `DELETE … WHERE (key, version) IN (VALUES …)`,
    /// each `RETURNING` the keys written), rather than a statement per row.
    fn batch_values(&self) -> bool {
        true
    }

    /// Whether the upsert returns the new version itself (`RETURNING`). Where it does not, the
    /// version is read after it, by the same connection in the same transaction.
    fn returning(&self) -> bool {
        true
    }

    /// The upsert of `put_unchecked`, returning the new version (no row when refused) where the
    /// dialect has `RETURNING`.
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

    /// The declared type of a true/false column of ours (a history entry's deletion flag).
    fn boolean(&self) -> &'static str {
        "BOOLEAN"
    }

    /// The condition that `a` and `b` differ, `NULL` counting as a value.
    fn distinct(&self, a: &str, b: &str) -> String {
        format!("{a} IS DISTINCT FROM {b}")
    }

    /// The statement that adds column `column` of type `ty` to `table` (all quoted) where the
    /// table lacks it; where the database has no `IF NOT EXISTS` for it, the backend takes
    /// "duplicate column" for a column that is there.
    fn add_column(&self, table: &str, column: &str, ty: &str) -> String {
        format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {ty}")
    }

    /// The declaration of a history table's key after its name: an integer numbering the
    /// entries in the order they were written.
    fn history_id(&self) -> &'static str;

    /// An expression of the current time in microseconds since the Unix epoch, as an integer.
    fn now_micros(&self) -> &'static str;

    /// The statements that create the triggers filling a history table ([`Triggers`]), each runnable
    /// on its own and again without error (or with the error `create_table` takes for "exists").
    fn history_triggers(&self, triggers: &Triggers<'_>) -> Vec<String>;
}
