//! The row operations of every SQL backend, written once over a [`SqlConnection`] (running a
//! statement, reading its rows): the meaning of rows affected, and the classification of a
//! refused write. Its one implementation is `driver::Conn`, over any sqlx driver; a backend
//! lends a connection per operation (or its transaction's).

use std::borrow::Borrow;
use std::future::Future;
use std::sync::Arc;

use super::select::{Lowered, Rendered};
use super::{Batch, Statements};
use crate::entity::{ColumnDef, TableDef};
use crate::error::{Error, Result};
use crate::lock::LockWait;
use crate::revisions::HistoryRow;
use crate::storage::WriteOutcome;
use crate::storage::select::{Condition, RowLock, Select};
use crate::value::{ColumnType, Row, Value};

/// A value to bind, with the column it is for: a database with strict types needs a `NULL` of the
/// column's type, binds some types through a conversion, and must refuse a value of another type.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))] // the server backends' only
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bind<'a> {
    pub value: &'a Value,
    pub table: &'static TableDef,
    pub column: &'static ColumnDef,
}

#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))] // the server backends' only
impl Bind<'_> {
    /// The column's type.
    pub fn ty(&self) -> ColumnType {
        self.column.ty
    }

    /// The error for a value that the column's type cannot hold.
    pub fn mismatch(&self) -> Error {
        Error::Encode {
            table: self.table.name,
            column: self.column.name,
            reason: format!("{} cannot be stored in a column of {}", self.value.describe(), self.ty().describe()),
        }
    }
}

/// One connection of an SQL backend, as the row operations need it. `table` is what the
/// statement is about, for errors that name a table or column.
pub(crate) trait SqlConnection: Send {
    /// Runs a statement and returns the number of rows it affected (matched, for an update).
    fn execute<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        values: Vec<Bind<'a>>,
    ) -> impl Future<Output = Result<u64>> + Send + 'a;

    /// Runs a query returning at most one row of `table`'s columns, in column order.
    fn fetch_row<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        values: Vec<Bind<'a>>,
    ) -> impl Future<Output = Result<Option<Row>>> + Send + 'a;

    /// Runs a query returning any number of rows of `table`'s columns, in column order.
    fn fetch_rows<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        values: Vec<Bind<'a>>,
    ) -> impl Future<Output = Result<Vec<Row>>> + Send + 'a;

    /// Runs a query returning any number of rows whose first column is a key of `table`.
    fn fetch_keys<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        values: Vec<Bind<'a>>,
    ) -> impl Future<Output = Result<Vec<Value>>> + Send + 'a;

    /// Runs a query of a history table: rows of `table`'s columns, then whether the entry is a
    /// deletion and when it was written.
    fn fetch_history<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        values: Vec<Bind<'a>>,
    ) -> impl Future<Output = Result<Vec<HistoryRow>>> + Send + 'a;

    /// Runs a query returning at most one row of one integer.
    fn fetch_int<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        values: Vec<Bind<'a>>,
    ) -> impl Future<Output = Result<Option<i64>>> + Send + 'a;
}

/// Whether a batch statement of `len` writes that returned the keys `returned` wrote `key`'s
/// (every one did when it returned as many keys as it had writes).
pub(crate) fn returned(returned: &[Value], len: usize, key: &Value) -> bool {
    returned.len() == len || returned.contains(key)
}

/// A version as SQL stores it. Versions never exceed `version_max <= i64::MAX`.
fn version_value(v: u64) -> Value {
    Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// The row operations on one connection: shared by autocommit calls and transactions.
pub(crate) struct OnConnection<'c, C: SqlConnection + ?Sized> {
    pub conn: &'c mut C,
    pub table: &'static TableDef,
    pub statements: &'c Statements,
}

impl<C: SqlConnection + ?Sized> OnConnection<'_, C> {
    fn bind<'v>(&self, index: usize, value: &'v Value) -> Bind<'v> {
        Bind { value, table: self.table, column: &self.table.columns[index] }
    }

    fn key<'v>(&self, key: &'v Value) -> Bind<'v> {
        self.bind(self.table.key, key)
    }

    fn version<'v>(&self, version: &'v Value) -> Bind<'v> {
        self.bind(self.table.version, version)
    }

    /// Every column of `values` (one per column, in column order), bound by its column's type.
    fn binds<'v>(&self, values: impl Iterator<Item = &'v Value>) -> Vec<Bind<'v>> {
        values.enumerate().map(|(i, v)| self.bind(i, v)).collect()
    }

    /// The history of the record with `key` (`#[versioned(history)]`), oldest entry first; with
    /// `version`, that version's entries only.
    pub(crate) async fn history(&mut self, key: &Value, version: Option<u64>) -> Result<Vec<HistoryRow>> {
        let Some(history) = &self.statements.history else {
            return Err(crate::error::Error::config(format!(
                "{} keeps no version history: add #[versioned(history)] to it",
                self.table.entity
            )));
        };
        match version {
            None => {
                let binds = vec![self.key(key)];
                self.conn.fetch_history(self.table, &history.select, binds).await
            }
            Some(version) => {
                let version = version_value(version);
                let binds = vec![self.key(key), self.version(&version)];
                self.conn.fetch_history(self.table, &history.select_version, binds).await
            }
        }
    }

    pub(crate) async fn fetch(&mut self, key: &Value) -> Result<Option<Row>> {
        let binds = vec![self.key(key)];
        self.conn.fetch_row(self.table, &self.statements.select, binds).await
    }

    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))] // the server backends' only
    /// The row, locked until the transaction ends, where the dialect locks rows (`FOR UPDATE`,
    /// failing at once with `nowait` when another transaction holds it).
    pub(crate) async fn fetch_for_update(&mut self, key: &Value, nowait: bool) -> Result<Option<Row>> {
        let statements = self.statements;
        let locking = if nowait { &statements.select_for_update_nowait } else { &statements.select_for_update };
        let binds = vec![self.key(key)];
        let sql = locking.as_ref().unwrap_or(&statements.select);
        self.conn.fetch_row(self.table, sql, binds).await.map_err(|err| match err {
            // The driver knows the table of a lock wait that expired; the record is this one.
            Error::LockTimeout { table, key: None } => Error::LockTimeout { table, key: Some(key.clone()) },
            other => other,
        })
    }

    /// See [`RowAccess::select`](crate::storage::RowAccess::select): one statement, locking the
    /// rows it returns (`FOR UPDATE`, `NOWAIT`, `SKIP LOCKED`) as `select.lock` says where the
    /// dialect locks rows. The caller has set the lock wait.
    pub(crate) async fn select(&mut self, select: &Select) -> Result<Vec<Row>> {
        let dialect = self.statements.dialect;
        let lock = match select.lock {
            None => None,
            Some(RowLock::Wait(wait)) => dialect.for_update(wait == LockWait::NoWait),
            Some(RowLock::SkipLocked) => dialect.skip_locked(),
        };
        let condition = Lowered::new(&select.condition);
        let Rendered { sql, binds } = self.statements.select(&condition, select, lock);
        let sql: Arc<str> = sql.into();
        self.conn.fetch_rows(self.table, &sql, binds).await
    }

    /// See [`RowAccess::count`](crate::storage::RowAccess::count).
    pub(crate) async fn count(&mut self, condition: &Condition) -> Result<u64> {
        let condition = Lowered::new(condition);
        let Rendered { sql, binds } = self.statements.count(&condition);
        let sql: Arc<str> = sql.into();
        let count = self.conn.fetch_int(self.table, &sql, binds).await?.unwrap_or(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// See [`RowAccess::update_where`](crate::storage::RowAccess::update_where): one statement.
    pub(crate) async fn update_where(&mut self, condition: &Condition, columns: &[(usize, Value)]) -> Result<u64> {
        let condition = Lowered::new(condition);
        let Rendered { sql, binds } = self.statements.update_where(&condition, columns);
        self.conn.execute(self.table, &sql.into(), binds).await
    }

    /// See [`RowAccess::delete_where`](crate::storage::RowAccess::delete_where): one statement.
    pub(crate) async fn delete_where(&mut self, condition: &Condition) -> Result<u64> {
        let condition = Lowered::new(condition);
        let Rendered { sql, binds } = self.statements.delete_where(&condition);
        self.conn.execute(self.table, &sql.into(), binds).await
    }

    pub(crate) async fn insert(&mut self, row: &Row) -> Result<bool> {
        let binds = self.binds(row.values().iter());
        match self.conn.execute(self.table, &self.statements.insert, binds).await {
            Ok(inserted) => Ok(inserted == 1),
            // A dialect whose insert does not skip an existing key: the driver reports it so.
            Err(Error::AlreadyExists { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    pub(crate) async fn update(&mut self, row: &Row, expected: u64) -> Result<WriteOutcome> {
        let key = self.table.key_of(row)?;
        let expected = version_value(expected);
        let mut binds: Vec<Bind<'_>> =
            self.statements.update_columns.iter().filter_map(|i| row.get(*i).map(|v| self.bind(*i, v))).collect();
        binds.extend([self.key(key), self.version(&expected)]);
        let matched = self.conn.execute(self.table, &self.statements.update, binds).await?;
        self.outcome(matched, key).await
    }

    pub(crate) async fn upsert(&mut self, row: &Row) -> Result<Option<u64>> {
        let table = self.table;
        // A new record starts at version 1; an existing one gets `version + 1` from the statement.
        let first = Value::Int(1);
        let binds =
            self.binds(row.values().iter().enumerate().map(|(i, v)| if i == table.version { &first } else { v }));
        let version = if self.statements.returning {
            self.conn.fetch_int(table, &self.statements.upsert, binds).await?
        } else {
            // MySQL's upsert reports 1 for an insert and 2 for an update (1 too for a refused one,
            // which changed nothing under `CLIENT_FOUND_ROWS`); the version is read back on this
            // connection, in the transaction the backend runs both in. An insert wrote version 1,
            // which a refused row cannot hold: refused means invalid or at the maximum (>= 127).
            let key = table.key_of(row)?;
            let affected = self.conn.execute(table, &self.statements.upsert, binds).await?;
            let after = self.conn.fetch_int(table, &self.statements.select_version, vec![self.key(key)]).await?;
            after.filter(|v| affected == 2 || *v == 1)
        };
        version
            .map(|v| {
                u64::try_from(v).map_err(|_| Error::decode(table, table.version_column().name, "negative version"))
            })
            .transpose()
    }

    pub(crate) async fn patch(
        &mut self,
        key: &Value,
        columns: &[(usize, Value)],
        expected: u64,
    ) -> Result<WriteOutcome> {
        let indexes: Vec<usize> = columns.iter().map(|(i, _)| *i).collect();
        let sql = self.statements.patch(&indexes);
        let (next, expected) = (version_value(expected.saturating_add(1)), version_value(expected));
        let mut binds: Vec<Bind<'_>> = columns.iter().map(|(i, v)| self.bind(*i, v)).collect();
        binds.extend([self.version(&next), self.key(key), self.version(&expected)]);
        let matched = self.conn.execute(self.table, &sql, binds).await?;
        self.outcome(matched, key).await
    }

    pub(crate) async fn delete(&mut self, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        let deleted = match expected.map(version_value) {
            Some(v) => {
                let binds = vec![self.key(key), self.version(&v)];
                self.conn.execute(self.table, &self.statements.delete_checked, binds).await?
            }
            None => {
                let binds = vec![self.key(key)];
                self.conn.execute(self.table, &self.statements.delete_unchecked, binds).await?
            }
        };
        self.outcome(deleted, key).await
    }

    /// See [`RowAccess::update_many`](crate::storage::RowAccess::update_many): one statement per
    /// chunk where the dialect can (`UPDATE … FROM (VALUES …) RETURNING key`), else one per row.
    pub(crate) async fn update_many<R: Borrow<Row> + Sync>(&mut self, rows: &[(R, u64)]) -> Result<Vec<WriteOutcome>> {
        let Some(chunk) = self.statements.chunk(Batch::Update) else {
            let mut outcomes = Vec::with_capacity(rows.len());
            for (row, expected) in rows {
                outcomes.push(self.update(row.borrow(), *expected).await?);
            }
            return Ok(outcomes);
        };
        let mut outcomes = Vec::with_capacity(rows.len());
        for rows in rows.chunks(chunk) {
            let applied = self.update_chunk(rows).await?;
            for (row, _) in rows {
                outcomes.push(self.applied_or_current(&applied, rows.len(), self.table.key_of(row.borrow())?).await?);
            }
        }
        Ok(outcomes)
    }

    /// One batch statement updating `rows` (at most a [`chunk`](Statements::chunk)): the keys of
    /// the rows it wrote.
    pub(crate) async fn update_chunk<R: Borrow<Row> + Sync>(&mut self, rows: &[(R, u64)]) -> Result<Vec<Value>> {
        let table = self.table;
        let expected: Vec<Value> = rows.iter().map(|(_, e)| version_value(*e)).collect();
        let mut binds = Vec::with_capacity(rows.len() * (self.statements.update_columns.len() + 2));
        for ((row, _), expected) in rows.iter().zip(&expected) {
            let row = row.borrow();
            binds.push(self.key(table.key_of(row)?));
            for i in &self.statements.update_columns {
                binds.push(self.bind(*i, row.get(*i).unwrap_or(&Value::Null)));
            }
            binds.push(self.version(expected));
        }
        let sql = self.statements.batch(Batch::Update, rows.len());
        self.conn.fetch_keys(table, &sql, binds).await
    }

    /// See [`RowAccess::insert_many`](crate::storage::RowAccess::insert_many): one multi-row
    /// insert per chunk where the dialect can, else one per row.
    pub(crate) async fn insert_many<R: Borrow<Row> + Sync>(&mut self, rows: &[R]) -> Result<Vec<bool>> {
        let Some(chunk) = self.statements.chunk(Batch::Insert) else {
            let mut inserted = Vec::with_capacity(rows.len());
            for row in rows {
                inserted.push(self.insert(row.borrow()).await?);
            }
            return Ok(inserted);
        };
        let mut inserted = Vec::with_capacity(rows.len());
        for rows in rows.chunks(chunk) {
            let keys = self.insert_chunk(rows).await?;
            for row in rows {
                inserted.push(returned(&keys, rows.len(), self.table.key_of(row.borrow())?));
            }
        }
        Ok(inserted)
    }

    /// One multi-row insert of `rows` (at most a [`chunk`](Statements::chunk)): the keys of the
    /// rows it inserted.
    pub(crate) async fn insert_chunk<R: Borrow<Row> + Sync>(&mut self, rows: &[R]) -> Result<Vec<Value>> {
        let binds = rows.iter().flat_map(|row| self.binds(row.borrow().values().iter())).collect();
        let sql = self.statements.batch(Batch::Insert, rows.len());
        self.conn.fetch_keys(self.table, &sql, binds).await
    }

    /// See [`RowAccess::delete_many`](crate::storage::RowAccess::delete_many): one statement per
    /// chunk where the dialect can (`DELETE … WHERE (key, version) IN (VALUES …) RETURNING key`).
    pub(crate) async fn delete_many<K: Borrow<Value> + Sync>(
        &mut self,
        keys: &[(K, u64)],
    ) -> Result<Vec<WriteOutcome>> {
        let Some(chunk) = self.statements.chunk(Batch::Delete) else {
            let mut outcomes = Vec::with_capacity(keys.len());
            for (key, expected) in keys {
                outcomes.push(self.delete(key.borrow(), Some(*expected)).await?);
            }
            return Ok(outcomes);
        };
        let mut outcomes = Vec::with_capacity(keys.len());
        for keys in keys.chunks(chunk) {
            let deleted = self.delete_chunk(keys).await?;
            for (key, _) in keys {
                outcomes.push(self.applied_or_current(&deleted, keys.len(), key.borrow()).await?);
            }
        }
        Ok(outcomes)
    }

    /// One batch statement deleting `keys` (at most a [`chunk`](Statements::chunk)), each only at
    /// its expected version: the keys of the rows it deleted.
    pub(crate) async fn delete_chunk<K: Borrow<Value> + Sync>(&mut self, keys: &[(K, u64)]) -> Result<Vec<Value>> {
        let expected: Vec<Value> = keys.iter().map(|(_, e)| version_value(*e)).collect();
        let binds = keys
            .iter()
            .zip(&expected)
            .flat_map(|((key, _), expected)| [self.key(key.borrow()), self.version(expected)])
            .collect();
        let sql = self.statements.batch(Batch::Delete, keys.len());
        self.conn.fetch_keys(self.table, &sql, binds).await
    }

    /// `Applied` when the batch statement returned `key` (or every key of its chunk of `len`);
    /// otherwise the stored row, read on the same connection, to describe the refusal.
    pub(crate) async fn applied_or_current(
        &mut self,
        returned: &[Value],
        len: usize,
        key: &Value,
    ) -> Result<WriteOutcome> {
        if self::returned(returned, len, key) {
            Ok(WriteOutcome::Applied)
        } else {
            Ok(WriteOutcome::Rejected { current: self.fetch(key).await? })
        }
    }

    /// `Applied` when the conditional statement touched the row; otherwise reads the stored row,
    /// on the same connection, to describe why.
    async fn outcome(&mut self, rows_affected: u64, key: &Value) -> Result<WriteOutcome> {
        if rows_affected == 1 {
            Ok(WriteOutcome::Applied)
        } else {
            Ok(WriteOutcome::Rejected { current: self.fetch(key).await? })
        }
    }
}
