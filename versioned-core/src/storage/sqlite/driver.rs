//! SQLite's sqlx [`Driver`]: how a [`Value`] is bound (any value in any column), how a column is
//! decoded by its storage class, and what SQLite's errors mean (busy or locked: retryable; a
//! missing column: [`Error::Decode`] naming it).

use sqlx::sqlite::{SqliteQueryResult, SqliteRow};
use sqlx::{Row as _, Sqlite, TypeInfo as _, ValueRef as _};

use crate::entity::TableDef;
use crate::error::{Error, Result};
use crate::storage::sql::driver::{self, Driver, Meaning, Query as DriverQuery};
use crate::storage::sql::rows::Bind;
use crate::value::Value;

/// Whether `err` is SQLite's busy or locked refusal (primary result codes 5 and 6, in any
/// extended form): another connection holds a lock past the busy timeout.
pub(super) fn is_busy(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if is_busy_code(db.as_ref()))
}

fn is_busy_code(db: &dyn sqlx::error::DatabaseError) -> bool {
    let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
    matches!(code & 0xff, 5 | 6)
}

/// SQLite's errors that mean something of their own: busy/locked is retryable, a missing column
/// is `Error::Decode` naming it.
fn database_error(table: Option<&'static TableDef>, db: &dyn sqlx::error::DatabaseError) -> Option<Meaning> {
    // Reads say "no such column: x", writes "table t has no column named x".
    let message = db.message();
    let missing = message
        .strip_prefix("no such column: ")
        .or_else(|| message.split_once(" has no column named ").map(|(_, name)| name));
    if let (Some(name), Some(table)) = (missing, table) {
        let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
        if let Some(column) = table.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)) {
            return Some(Meaning::Is(Error::decode(table, column.name, "the table has no such column")));
        }
    }
    is_busy_code(db).then_some(Meaning::Retryable)
}

/// A sqlx error of this backend as ours.
pub(super) fn storage_error(table: Option<&'static TableDef>, err: sqlx::Error) -> Error {
    driver::error::<Sqlite>(table, err)
}

impl Driver for Sqlite {
    fn bind<'q>(query: DriverQuery<'q, Self>, bind: Bind<'_>) -> Result<DriverQuery<'q, Self>> {
        // SQLite stores any value in any column (the schema check refused columns that would
        // turn them into something else): the column's type does not matter here.
        Ok(match bind.value {
            Value::Null => query.bind(None::<i64>),
            Value::Bool(b) => query.bind(*b),
            Value::Int(i) => query.bind(*i),
            Value::Float(x) => query.bind(*x),
            Value::Text(s) => query.bind(s.clone()),
            Value::Bytes(b) => query.bind(b.clone()),
        })
    }

    fn decode_value(row: &SqliteRow, i: usize) -> std::result::Result<Value, String> {
        let get = |e: sqlx::Error| e.to_string();
        let raw = row.try_get_raw(i).map_err(get)?;
        if raw.is_null() {
            return Ok(Value::Null);
        }
        Ok(match raw.type_info().name() {
            "INTEGER" | "BOOLEAN" => Value::Int(row.try_get_unchecked(i).map_err(get)?),
            "REAL" => Value::Float(row.try_get_unchecked(i).map_err(get)?),
            "TEXT" => Value::Text(row.try_get_unchecked(i).map_err(get)?),
            "BLOB" => Value::Bytes(row.try_get_unchecked(i).map_err(get)?),
            other => return Err(format!("unsupported SQLite type {other}")),
        })
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn database_error(table: Option<&'static TableDef>, db: &dyn sqlx::error::DatabaseError) -> Option<Meaning> {
        database_error(table, db)
    }
}
