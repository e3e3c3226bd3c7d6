//! SQLite's [`Dialect`]: the statements' declared types, version check and (absent) row locks.

use crate::entity::ColumnDef;
use crate::storage::sql::Dialect;
use crate::storage::sql::history::Triggers;
use crate::value::ColumnType;

/// SQLite: any value in any column, so a version's type is checked too; no row locks (a
/// transaction holds the database's write lock).
pub(crate) struct SqliteDialect;

impl Dialect for SqliteDialect {
    fn column_type(&self, column: &ColumnDef) -> &'static str {
        match column.ty {
            ColumnType::Bool => "BOOLEAN",
            ty if ty.is_integer() => "INTEGER",
            ColumnType::Float32 | ColumnType::Float64 => "REAL",
            ColumnType::Bytes => "BLOB",
            _ => "TEXT",
        }
    }

    fn valid_version(&self, version: &str) -> String {
        format!("typeof({version}) = 'integer' AND {version} >= 0")
    }

    fn for_update(&self, _nowait: bool) -> Option<&'static str> {
        None
    }

    /// A transaction holds the whole database: no row is another's to skip.
    fn skip_locked(&self) -> Option<&'static str> {
        None
    }

    /// The rowid: every new entry's is above every stored one's.
    fn history_id(&self) -> &'static str {
        "INTEGER PRIMARY KEY"
    }

    fn now_micros(&self) -> &'static str {
        "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
    }

    /// No `IF NOT EXISTS`: the backend takes "duplicate column name" for a column that is there.
    fn add_column(&self, table: &str, column: &str, ty: &str) -> String {
        format!("ALTER TABLE {table} ADD COLUMN {column} {ty}")
    }

    /// Each trigger dropped and created again (SQLite replaces none), so that a changed struct or
    /// retention takes effect.
    fn history_triggers(&self, t: &Triggers<'_>) -> Vec<String> {
        let [insert, update, delete, _] = t.names.each_ref().map(|name| self.quote(name));
        let table = t.table;
        vec![
            format!("DROP TRIGGER IF EXISTS {insert}"),
            format!("CREATE TRIGGER {insert} AFTER INSERT ON {table} FOR EACH ROW BEGIN {} END", t.record_new),
            format!("DROP TRIGGER IF EXISTS {update}"),
            format!(
                "CREATE TRIGGER {update} AFTER UPDATE ON {table} FOR EACH ROW WHEN {} BEGIN {} END",
                t.changed, t.record_new
            ),
            format!("DROP TRIGGER IF EXISTS {delete}"),
            format!("CREATE TRIGGER {delete} AFTER DELETE ON {table} FOR EACH ROW BEGIN {} END", t.record_old),
        ]
    }
}
