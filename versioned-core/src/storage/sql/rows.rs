//! The row operations of every SQL backend, written once over a [`SqlConnection`].
//!
//! A backend implements [`SqlConnection`] (bind [`Value`]s, run a statement, decode a result row,
//! map its driver's errors) and lends a connection per operation; everything else, the meaning of
//! rows affected and the classification of a refused write, is here.

use std::future::Future;
use std::sync::Arc;

use super::Statements;
use crate::entity::{ColumnDef, TableDef};
use crate::error::{Error, Result};
use crate::storage::WriteOutcome;
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

    /// Runs a query returning at most one row of one integer.
    fn fetch_int<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        values: Vec<Bind<'a>>,
    ) -> impl Future<Output = Result<Option<i64>>> + Send + 'a;
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

/// Implements [`RowAccess`](crate::storage::RowAccess) for a type with a `run` method that lends
/// one connection to an operation: a backend's autocommit storage (a pooled connection) and its
/// transaction (its own connection).
macro_rules! row_access_via_run {
    // Every operation is one statement: an upsert is atomic on the lent connection as it is.
    ($ty:ty) => {
        $crate::storage::sql::rows::row_access_via_run!($ty, run);
    };
    // `$upsert` lends the connection for an upsert: `run_atomic` where the dialect's upsert is
    // several statements that must see one state.
    ($ty:ty, $upsert:ident) => {
        impl $crate::storage::RowAccess for $ty {
            async fn fetch(
                &self,
                table: &'static $crate::TableDef,
                key: &$crate::Value,
            ) -> $crate::Result<Option<$crate::Row>> {
                self.run(table, async |c| c.fetch(key).await).await
            }

            async fn insert(&self, table: &'static $crate::TableDef, row: $crate::Row) -> $crate::Result<bool> {
                self.run(table, async |c| c.insert(&row).await).await
            }

            async fn update(
                &self,
                table: &'static $crate::TableDef,
                row: $crate::Row,
                expected: u64,
            ) -> $crate::Result<$crate::WriteOutcome> {
                self.run(table, async |c| c.update(&row, expected).await).await
            }

            async fn upsert(&self, table: &'static $crate::TableDef, row: $crate::Row) -> $crate::Result<Option<u64>> {
                self.$upsert(table, async |c| c.upsert(&row).await).await
            }

            async fn patch(
                &self,
                table: &'static $crate::TableDef,
                key: &$crate::Value,
                columns: &[(usize, $crate::Value)],
                expected: u64,
            ) -> $crate::Result<$crate::WriteOutcome> {
                self.run(table, async |c| c.patch(key, columns, expected).await).await
            }

            async fn delete(
                &self,
                table: &'static $crate::TableDef,
                key: &$crate::Value,
                expected: Option<u64>,
            ) -> $crate::Result<$crate::WriteOutcome> {
                self.run(table, async |c| c.delete(key, expected).await).await
            }
        }
    };
}
pub(crate) use row_access_via_run;
