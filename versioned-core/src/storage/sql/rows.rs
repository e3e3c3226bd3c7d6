//! The row operations of every SQL backend, written once over a [`SqlConnection`].
//!
//! A backend implements [`SqlConnection`] (bind [`Value`]s, run a statement, decode a result row,
//! map its driver's errors) and lends a connection per operation; everything else, the meaning of
//! rows affected and the classification of a refused write, is here.

use std::future::Future;
use std::sync::Arc;

use super::Statements;
use crate::entity::TableDef;
use crate::error::{Error, Result};
use crate::storage::WriteOutcome;
use crate::value::{Row, Value};

/// One connection of an SQL backend, as the row operations need it. `table` is what the
/// statement is about, for errors that name a table or column.
pub(crate) trait SqlConnection: Send {
    /// Runs a statement and returns the number of rows it affected (matched, for an update).
    fn execute<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        values: Vec<&'a Value>,
    ) -> impl Future<Output = Result<u64>> + Send + 'a;

    /// Runs a query returning at most one row of `table`'s columns, in column order.
    fn fetch_row<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        values: Vec<&'a Value>,
    ) -> impl Future<Output = Result<Option<Row>>> + Send + 'a;

    /// Runs a query returning at most one row of one integer.
    fn fetch_int<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        values: Vec<&'a Value>,
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
    pub(crate) async fn fetch(&mut self, key: &Value) -> Result<Option<Row>> {
        self.conn.fetch_row(self.table, &self.statements.select, vec![key]).await
    }

    pub(crate) async fn insert(&mut self, row: &Row) -> Result<bool> {
        let inserted = self.conn.execute(self.table, &self.statements.insert, row.values().iter().collect()).await?;
        Ok(inserted == 1)
    }

    pub(crate) async fn update(&mut self, row: &Row, expected: u64) -> Result<WriteOutcome> {
        let key = self.table.key_of(row)?;
        let expected = version_value(expected);
        let mut values: Vec<&Value> = self.statements.update_columns.iter().filter_map(|i| row.get(*i)).collect();
        values.extend([key, &expected]);
        let matched = self.conn.execute(self.table, &self.statements.update, values).await?;
        self.outcome(matched, key).await
    }

    pub(crate) async fn upsert(&mut self, row: &Row) -> Result<Option<u64>> {
        let table = self.table;
        // A new record starts at version 1; an existing one gets `version + 1` from the statement.
        let first = Value::Int(1);
        let values = row.values().iter().enumerate().map(|(i, v)| if i == table.version { &first } else { v });
        let version = self.conn.fetch_int(table, &self.statements.upsert, values.collect()).await?;
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
        let mut values: Vec<&Value> = columns.iter().map(|(_, v)| v).collect();
        values.extend([&next, key, &expected]);
        let matched = self.conn.execute(self.table, &sql, values).await?;
        self.outcome(matched, key).await
    }

    pub(crate) async fn delete(&mut self, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        let deleted = match expected.map(version_value) {
            Some(v) => self.conn.execute(self.table, &self.statements.delete_checked, vec![key, &v]).await?,
            None => self.conn.execute(self.table, &self.statements.delete_unchecked, vec![key]).await?,
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
    ($ty:ty) => {
        impl $crate::storage::RowAccess for $ty {
            async fn fetch(
                &self,
                table: &'static $crate::TableDef,
                key: &$crate::Value,
            ) -> $crate::Result<Option<$crate::Row>> {
                self.run(table, async |c| c.fetch(key).await).await
            }

            async fn insert(&self, table: &'static $crate::TableDef, row: &$crate::Row) -> $crate::Result<bool> {
                self.run(table, async |c| c.insert(row).await).await
            }

            async fn update(
                &self,
                table: &'static $crate::TableDef,
                row: &$crate::Row,
                expected: u64,
            ) -> $crate::Result<$crate::WriteOutcome> {
                self.run(table, async |c| c.update(row, expected).await).await
            }

            async fn upsert(&self, table: &'static $crate::TableDef, row: &$crate::Row) -> $crate::Result<Option<u64>> {
                self.run(table, async |c| c.upsert(row).await).await
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
