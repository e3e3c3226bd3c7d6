//! What the SQLite storage knows of one table ([`TableState`]: its statements, and whether its
//! schema was checked), and the check itself: the table exists, and every column of the struct
//! is declared with a type whose [`Affinity`] holds its field.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::sqlite::SqliteConnection;

use super::dialect::SqliteDialect;
use super::driver::storage_error;
use crate::entity::{ColumnDef, TableDef};
use crate::error::{Error, Result, StorageError};
use crate::storage::sql::{Dialect as _, Mappings, Statements, missing_column};
use crate::value::ColumnType;

/// The state of `table`'s mapping among `mappings`, made the first time it is asked for.
pub(super) fn table_state(mappings: &Mappings<TableState>, table: &'static TableDef) -> Arc<TableState> {
    mappings.get(table, || TableState {
        sql: Statements::new(&SqliteDialect, table),
        schema_checked: AtomicBool::new(false),
        binary_text_keys: AtomicBool::new(false),
    })
}

/// What the storage knows of one table: its statements, and whether its schema was checked.
#[derive(Debug)]
pub(crate) struct TableState {
    pub(super) sql: Statements,
    schema_checked: AtomicBool,
    /// Whether the table declares no collation of its own, so that text keys compare byte for
    /// byte; known once the schema is checked, false until then.
    binary_text_keys: AtomicBool,
}

impl TableState {
    /// Checks, once, that the table exists and that every column of the struct is declared with
    /// a type that can hold its field. Runs on the caller's connection (inside its transaction).
    pub(super) async fn check_schema(&self, conn: &mut SqliteConnection, table: &'static TableDef) -> Result<()> {
        if self.schema_checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let declared: Vec<(String, String)> = sqlx::query_as("SELECT name, type FROM pragma_table_info(?)")
            .bind(table.name)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| storage_error(Some(table), e))?;
        if declared.is_empty() {
            return Err(StorageError::new(format!(
                "no such table: {} (create it with create_table, or with your migrations)",
                table.name
            ))
            .into());
        }
        for column in table.columns {
            // SQLite compares identifiers without regard to ASCII case.
            let Some((_, ty)) = declared.iter().find(|(name, _)| name.eq_ignore_ascii_case(column.name)) else {
                return Err(Error::decode(table, column.name, missing_column(&SqliteDialect, table, column)));
            };
            if !Affinity::of(ty).holds(column.ty) {
                return Err(Error::decode(
                    table,
                    column.name,
                    format!(
                        "the column is declared {ty:?}, which cannot hold field `{}` ({}); declare it {}",
                        column.field,
                        column.ty.describe(),
                        Affinity::suggested(column)
                    ),
                ));
            }
        }
        let definition: Option<String> =
            sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE")
                .bind(table.name)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| storage_error(Some(table), e))?
                .flatten();
        // Any `COLLATE` in the definition, conservatively: `create_table` writes none.
        let collates = definition.is_none_or(|sql| sql.to_ascii_uppercase().contains("COLLATE"));
        self.binary_text_keys.store(!collates, Ordering::Release);
        self.schema_checked.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether text keys of this table compare byte for byte, as [`Value`](crate::Value)s do (see
    /// `binary_text_keys`).
    pub(super) fn binary_text_keys(&self) -> bool {
        self.binary_text_keys.load(Ordering::Acquire)
    }
}

/// SQLite's column affinity, from the declared type (sqlite.org/datatype3.html, 3.1).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

impl Affinity {
    fn of(declared: &str) -> Self {
        let d = declared.to_ascii_uppercase();
        if d.contains("INT") {
            Affinity::Integer
        } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
            Affinity::Text
        } else if d.contains("BLOB") || d.is_empty() {
            Affinity::Blob
        } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }

    /// Whether every value of a field of type `ty` reads back as it was written. A REAL column
    /// turns integers into floats, a TEXT column numbers into text, a numeric column numeric
    /// text into numbers; blobs are never converted.
    fn holds(self, ty: ColumnType) -> bool {
        use Affinity::*;
        match ty {
            ColumnType::Bool => matches!(self, Integer | Numeric | Blob),
            ty if ty.is_integer() => matches!(self, Integer | Numeric | Blob),
            ColumnType::Float32 | ColumnType::Float64 => matches!(self, Integer | Real | Numeric | Blob),
            ColumnType::Text | ColumnType::Uuid => matches!(self, Text | Blob),
            // JSON numbers come back as numbers from a numeric column, and decode the same.
            ColumnType::Json => matches!(self, Text | Blob | Numeric),
            _ => true, // bytes
        }
    }

    /// The type to declare a column of type `ty` with: what `create_table` declares.
    fn suggested(column: &ColumnDef) -> &'static str {
        SqliteDialect.column_type(column)
    }
}
