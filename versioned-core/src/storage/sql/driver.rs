//! The one [`SqlConnection`] over any sqlx driver: a backend says how its driver binds a value,
//! decodes a value and names its errors ([`Driver`]); running statements, reading rows and the
//! errors every driver shares are written here once.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, Database, Encode, Executor, IntoArguments, SqlSafeStr, Type};

use super::history;
use super::rows::{Bind, SqlConnection};
use crate::entity::TableDef;
use crate::error::{Error, Result, StorageError};
use crate::revisions::HistoryRow;
use crate::storage::SavepointStep;
use crate::value::{Row, Value};

/// A query of driver `DB` with its own arguments.
pub(crate) type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments>;

/// What one sqlx driver adds to the shared SQL layer.
pub(crate) trait Driver: Database {
    /// Binds one value as its column wants it, or refuses a value the column cannot hold.
    fn bind<'q>(query: Query<'q, Self>, bind: Bind<'_>) -> Result<Query<'q, Self>>;

    /// Reads the value at `index` of a result row, by its own database type, as the [`Value`]
    /// it holds; the error says why it cannot.
    fn decode_value(row: &Self::Row, index: usize) -> std::result::Result<Value, String>;

    /// Reads the first column of a result row as an integer: a version the statement returned.
    fn first_int(table: &'static TableDef, row: &Self::Row) -> Result<i64> {
        let column = table.version_column().name;
        match Self::decode_value(row, 0) {
            Ok(Value::Int(version)) => Ok(version),
            Ok(other) => {
                Err(Error::decode(table, column, format!("version must be an integer, found {}", other.describe())))
            }
            Err(reason) => Err(Error::decode(table, column, reason)),
        }
    }

    /// The rows a statement affected (matched, for an update).
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// What a database error of the driver means, where it means more than a plain storage
    /// error: a retryable refusal, or an error of ours (a missing column, a lock timeout).
    fn database_error(table: Option<&'static TableDef>, err: &dyn sqlx::error::DatabaseError) -> Option<Meaning>;
}

/// What a driver's error means.
pub(crate) enum Meaning {
    /// A transient refusal: the storage error is retryable.
    Retryable,
    /// This error of ours.
    Is(Error),
}

/// A driver's error as ours, keeping the driver's error as the source of a storage error. A pool
/// that had no connection to give in time is retryable.
pub(crate) fn error<DB: Driver>(table: Option<&'static TableDef>, err: sqlx::Error) -> Error {
    let meaning = match &err {
        sqlx::Error::Database(db) => DB::database_error(table, db.as_ref()),
        sqlx::Error::PoolTimedOut => Some(Meaning::Retryable),
        _ => None,
    };
    match meaning {
        Some(Meaning::Is(ours)) => ours,
        Some(Meaning::Retryable) => StorageError::retryable(err).into(),
        None => StorageError::new(err).into(),
    }
}

/// Reads a result row of `table`'s columns, in column order, by each value's own database type,
/// so a value of the wrong type reaches the field's decoder (and becomes `Error::Decode` naming
/// the column).
pub(crate) fn decode_row<DB: Driver>(table: &'static TableDef, row: &DB::Row) -> Result<Row> {
    let mut values = Vec::with_capacity(table.columns.len());
    for (i, column) in table.columns.iter().enumerate() {
        values.push(DB::decode_value(row, i).map_err(|reason| Error::decode(table, column.name, reason))?);
    }
    Ok(Row::new(values))
}

/// A statement of the shared SQL layer, with its values bound.
fn prepare<'q, DB: Driver>(sql: &Arc<str>, binds: Vec<Bind<'_>>) -> Result<Query<'q, DB>> {
    binds.into_iter().try_fold(sqlx::query(AssertSqlSafe(Arc::clone(sql)).into_sql_str()), DB::bind)
}

/// One connection of driver `DB`, lent to the row operations.
pub(crate) struct Conn<'c, DB: Database>(pub &'c mut DB::Connection);

impl<DB: Driver> SqlConnection for Conn<'_, DB>
where
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    async fn execute<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        binds: Vec<Bind<'a>>,
    ) -> Result<u64> {
        let done = prepare::<DB>(sql, binds)?.execute(&mut *self.0).await.map_err(|e| error::<DB>(Some(table), e))?;
        Ok(DB::rows_affected(&done))
    }

    async fn fetch_row<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        binds: Vec<Bind<'a>>,
    ) -> Result<Option<Row>> {
        self.optional(table, sql, binds).await?.map(|row| decode_row::<DB>(table, &row)).transpose()
    }

    async fn fetch_rows<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        binds: Vec<Bind<'a>>,
    ) -> Result<Vec<Row>> {
        let rows = prepare::<DB>(sql, binds)?.fetch_all(&mut *self.0).await.map_err(|e| error::<DB>(Some(table), e))?;
        rows.iter().map(|row| decode_row::<DB>(table, row)).collect()
    }

    async fn fetch_keys<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        binds: Vec<Bind<'a>>,
    ) -> Result<Vec<Value>> {
        let rows = prepare::<DB>(sql, binds)?.fetch_all(&mut *self.0).await.map_err(|e| error::<DB>(Some(table), e))?;
        let key = table.key_column().name;
        rows.iter().map(|row| DB::decode_value(row, 0).map_err(|reason| Error::decode(table, key, reason))).collect()
    }

    async fn fetch_history<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        binds: Vec<Bind<'a>>,
    ) -> Result<Vec<HistoryRow>> {
        let rows = prepare::<DB>(sql, binds)?.fetch_all(&mut *self.0).await.map_err(|e| error::<DB>(Some(table), e))?;
        let n = table.columns.len();
        let extra = |row: &DB::Row, i: usize, name: &'static str| {
            DB::decode_value(row, n + i).map_err(|reason| Error::decode(table, name, reason))
        };
        rows.iter()
            .map(|row| {
                let deleted = match extra(row, 0, history::DELETED)? {
                    Value::Bool(deleted) => deleted,
                    Value::Int(flag) => flag != 0,
                    other => {
                        return Err(Error::decode(
                            table,
                            history::DELETED,
                            format!("expected a flag, found {}", other.describe()),
                        ));
                    }
                };
                let recorded_at = match extra(row, 1, history::AT)? {
                    Value::Int(at) => at,
                    other => {
                        return Err(Error::decode(
                            table,
                            history::AT,
                            format!("expected an integer, found {}", other.describe()),
                        ));
                    }
                };
                Ok(HistoryRow { row: decode_row::<DB>(table, row)?, deleted, recorded_at })
            })
            .collect()
    }

    async fn fetch_int<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        binds: Vec<Bind<'a>>,
    ) -> Result<Option<i64>> {
        self.optional(table, sql, binds).await?.map(|row| DB::first_int(table, &row)).transpose()
    }
}

impl<DB: Driver> Conn<'_, DB>
where
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    /// The one result row of a statement, if any.
    async fn optional(
        &mut self,
        table: &'static TableDef,
        sql: &Arc<str>,
        binds: Vec<Bind<'_>>,
    ) -> Result<Option<DB::Row>> {
        prepare::<DB>(sql, binds)?.fetch_optional(&mut *self.0).await.map_err(|e| error::<DB>(Some(table), e))
    }
}

#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))] // the server backends' only
/// Binds a value as a database with strict types wants it: a `NULL` of the column's type, and a
/// value of the column's own type, or refused (the server would take its bytes for the column's
/// type). JSON and UUIDs go as text, timestamps as microseconds: the dialect's `bind` converts.
pub(crate) fn bind_strict<'q, DB>(query: Query<'q, DB>, bind: Bind<'_>) -> Result<Query<'q, DB>>
where
    DB: Database,
    bool: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    f64: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    Vec<u8>: Encode<'q, DB> + Type<DB>,
    Option<bool>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'q, DB> + Type<DB>,
{
    use crate::value::ColumnType as T;
    Ok(match (bind.value, bind.ty()) {
        (Value::Null, T::Bool) => query.bind(None::<bool>),
        (Value::Null, T::Float32 | T::Float64) => query.bind(None::<f64>),
        (Value::Null, T::Bytes) => query.bind(None::<Vec<u8>>),
        (Value::Null, ty) if ty.is_integer() => query.bind(None::<i64>),
        (Value::Null, _) => query.bind(None::<String>),
        (Value::Bool(v), T::Bool) => query.bind(*v),
        // Into a narrower integer column the server converts on assignment; the field's type
        // already checked the range.
        (Value::Int(v), ty) if ty.is_integer() => query.bind(*v),
        (Value::Float(v), T::Float32 | T::Float64) => query.bind(*v),
        (Value::Text(v), T::Text | T::Json | T::Uuid) => query.bind(v.clone()),
        (Value::Bytes(v), T::Bytes) => query.bind(v.clone()),
        _ => return Err(bind.mismatch()),
    })
}

#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))] // the server backends' only
/// `Error::Decode` for a column the table lacks, named `name` in the server's message.
pub(crate) fn missing_column(table: Option<&'static TableDef>, name: Option<&str>) -> Option<Meaning> {
    let (table, name) = (table?, name?);
    let name = name.rsplit('.').next().unwrap_or(name);
    let column = table.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))?;
    Some(Meaning::Is(Error::decode(table, column.name, "the table has no such column")))
}

#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))] // the server backends' only
/// A storage error saying the table does not exist, and how to create it.
pub(crate) fn missing_table(table: Option<&'static TableDef>, message: &str) -> Option<Meaning> {
    let table = table?;
    Some(Meaning::Is(
        StorageError::new(format!(
            "no such table: {} (create it with create_table, or with your migrations): {message}",
            table.name
        ))
        .into(),
    ))
}

/// Runs a savepoint step on a transaction's connection. The statements are the same in SQLite,
/// PostgreSQL and MySQL; names are ours, one per nesting depth.
pub(crate) async fn savepoint<DB: Driver>(conn: &mut DB::Connection, step: SavepointStep) -> Result<()>
where
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
{
    let statements = match step {
        SavepointStep::Set { depth } => vec![format!("SAVEPOINT versioned_{depth}")],
        // `ROLLBACK TO` keeps the savepoint; releasing it ends it, as the step says.
        SavepointStep::RollBack { depth } => {
            vec![format!("ROLLBACK TO SAVEPOINT versioned_{depth}"), format!("RELEASE SAVEPOINT versioned_{depth}")]
        }
        SavepointStep::Release { depth } => vec![format!("RELEASE SAVEPOINT versioned_{depth}")],
    };
    for sql in statements {
        conn.execute(AssertSqlSafe(sql)).await.map_err(|e| error::<DB>(None, e))?;
    }
    Ok(())
}
