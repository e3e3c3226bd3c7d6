//! SQLite transactions: [`SqliteTransaction`], one pooled connection inside `BEGIN IMMEDIATE`
//! (read-only: `BEGIN DEFERRED`), and beginning one under the store's [`LockWait`] (the busy
//! timeout, set for the `BEGIN` alone; an in-memory database's write lock, kept in this process).

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Executor as _, Sqlite};

use super::SqliteStorage;
use super::driver::{is_busy, storage_error};
use crate::entity::TableDef;
use crate::error::{Error, Result};
use crate::lock::LockWait;
use crate::storage::select::{Condition, Select};
use crate::storage::sql::driver::{self, Conn};
use crate::storage::sql::rows::OnConnection;
use crate::storage::{LockingRead, RowAccess, SavepointStep, StorageTransaction, WriteOutcome};
use crate::value::{Row, Value};

/// The longest busy timeout SQLite takes (`i32::MAX` ms, about 25 days): [`LockWait::Forever`].
const FOREVER_MS: u32 = i32::MAX as u32;

/// The busy timeout, in milliseconds, that makes a statement wait for a lock as `wait` says.
fn busy_timeout_ms(wait: LockWait) -> u32 {
    match wait {
        LockWait::NoWait => 0,
        // Rounded up: a wait shorter than a millisecond still waits.
        LockWait::Timeout(d) => {
            u32::try_from(d.as_nanos().div_ceil(1_000_000)).map_or(FOREVER_MS, |ms| ms.min(FOREVER_MS))
        }
        LockWait::Forever => FOREVER_MS,
    }
}

impl SqliteStorage {
    /// Takes a connection from the pool and runs `begin` on it; with `wait`, under the busy
    /// timeout that waits as it says, set for the `BEGIN` alone: the connection has the pool's
    /// busy timeout again before and after, whether the `BEGIN` went through or was refused.
    pub(super) async fn begin_as(&self, begin: &'static str, wait: Option<LockWait>) -> Result<SqliteTransaction> {
        // An in-memory database's write lock, waited for here (see `memory_writer`), before a
        // connection is taken.
        let writer = match (&self.memory_writer, wait) {
            (Some(lock), Some(wait)) => {
                let timed_out = || Error::LockTimeout { table: None, key: None };
                Some(match wait {
                    LockWait::Forever => Arc::clone(lock).lock_owned().await,
                    LockWait::Timeout(limit) => {
                        tokio::time::timeout(limit, Arc::clone(lock).lock_owned()).await.map_err(|_| timed_out())?
                    }
                    LockWait::NoWait => Arc::clone(lock).try_lock_owned().map_err(|_| timed_out())?,
                })
            }
            _ => None,
        };
        let mut conn = self.pool.acquire().await.map_err(|e| storage_error(None, e))?;
        let busy = match wait {
            Some(wait) => {
                let pool = self.pool_busy_timeout_ms(&mut conn).await?;
                Some((busy_timeout_ms(wait), pool)).filter(|(wanted, pool)| wanted != pool)
            }
            None => None,
        };
        // From here on, a drop (this future's too) closes the connection unless it is known to be
        // out of any transaction, with the pool's busy timeout.
        let mut held = Held { conn, reusable: false };
        let begun = match busy {
            // One round trip: a refused `BEGIN` stops the statements after it. Not kept prepared
            // (a statement per wait would crowd out the tables' statements).
            Some((wanted, pool)) => {
                let sql = format!("PRAGMA busy_timeout = {wanted}; {begin}; PRAGMA busy_timeout = {pool}");
                sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *held.conn).await
            }
            None => held.conn.execute(begin).await,
        };
        match begun {
            Ok(_) => {
                Ok(SqliteTransaction { storage: self.clone(), held: tokio::sync::Mutex::new(held), _writer: writer })
            }
            // Another transaction held the write lock past the wait: the lock wait expired. The
            // `BEGIN` was refused, so no transaction is open.
            Err(e) if is_busy(&e) => {
                if let Some((_, pool)) = busy {
                    set_busy_timeout(&mut held.conn, pool).await?;
                }
                held.reusable = true;
                Err(Error::LockTimeout { table: None, key: None })
            }
            Err(e) => Err(storage_error(None, e)),
        }
    }

    /// The busy timeout of the pool's connections (ms), read from `conn` the first time for a pool
    /// of yours.
    async fn pool_busy_timeout_ms(&self, conn: &mut SqliteConnection) -> Result<u32> {
        if let Some(&ms) = self.busy_timeout_ms.get() {
            return Ok(ms);
        }
        let ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| storage_error(None, e))?;
        let ms = u32::try_from(ms.max(0)).unwrap_or(FOREVER_MS);
        Ok(*self.busy_timeout_ms.get_or_init(|| ms))
    }
}

/// Sets `conn`'s busy timeout.
async fn set_busy_timeout(conn: &mut SqliteConnection, ms: u32) -> Result<()> {
    let sql = format!("PRAGMA busy_timeout = {ms}");
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await.map(drop).map_err(|e| storage_error(None, e))
}

/// A pooled connection inside a transaction, which goes back to the pool only once `COMMIT` or
/// `ROLLBACK` (or a refused `BEGIN`) has left it out of any transaction, with the pool's busy
/// timeout. Otherwise dropping it closes the connection, which rolls its transaction back: a
/// future dropped while `BEGIN` is in flight never hands the pool a connection inside a
/// transaction, or one that would wait for locks as this transaction did.
#[derive(Debug)]
struct Held {
    conn: PoolConnection<Sqlite>,
    reusable: bool,
}

impl Held {
    /// Ends the transaction with `sql` (`COMMIT` or `ROLLBACK`).
    async fn finish(mut self, sql: &'static str) -> Result<()> {
        self.conn.execute(sql).await.map_err(|e| storage_error(None, e))?;
        self.reusable = true;
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.reusable {
            self.conn.close_on_drop();
        }
    }
}

/// A transaction of the [`SqliteStorage`]: one connection inside `BEGIN IMMEDIATE`, so it holds
/// SQLite's write lock from its start, and other writers wait until it ends (other transactions
/// as their store's [`LockWait`] says, autocommit writes up to the 5 s busy timeout). Dropped
/// without commit, it is rolled back.
#[derive(Debug)]
pub struct SqliteTransaction {
    storage: SqliteStorage,
    held: tokio::sync::Mutex<Held>,
    /// An in-memory database's write lock, held until the transaction ends.
    _writer: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl SqliteTransaction {
    async fn run<T>(
        &self,
        table: &'static TableDef,
        op: impl AsyncFnOnce(&mut OnConnection<'_, Conn<'_, Sqlite>>) -> Result<T>,
    ) -> Result<T> {
        let state = self.storage.table(table);
        let mut held = self.held.lock().await;
        state.check_schema(&mut held.conn, table).await?;
        op(&mut OnConnection { conn: &mut Conn(&mut *held.conn), table, statements: &state.sql }).await
    }
}

impl RowAccess for SqliteTransaction {
    async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        self.run(table, async |c| c.fetch(key).await).await
    }

    async fn select(&self, table: &'static TableDef, select: &Select) -> Result<Vec<Row>> {
        self.run(table, async |c| c.select(select).await).await
    }

    async fn count(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        self.run(table, async |c| c.count(condition).await).await
    }

    async fn update_where(
        &self,
        table: &'static TableDef,
        condition: &Condition,
        columns: &[(usize, Value)],
    ) -> Result<u64> {
        self.run(table, async |c| c.update_where(condition, columns).await).await
    }

    async fn delete_where(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        self.run(table, async |c| c.delete_where(condition).await).await
    }

    async fn insert(&self, table: &'static TableDef, row: Row) -> Result<bool> {
        self.run(table, async |c| c.insert(&row).await).await
    }

    async fn update(&self, table: &'static TableDef, row: Row, expected: u64) -> Result<WriteOutcome> {
        self.run(table, async |c| c.update(&row, expected).await).await
    }

    async fn upsert(&self, table: &'static TableDef, row: Row) -> Result<Option<u64>> {
        self.run(table, async |c| c.upsert(&row).await).await
    }

    async fn patch(
        &self,
        table: &'static TableDef,
        key: &Value,
        columns: &[(usize, Value)],
        expected: u64,
    ) -> Result<WriteOutcome> {
        self.run(table, async |c| c.patch(key, columns, expected).await).await
    }

    async fn delete(&self, table: &'static TableDef, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        self.run(table, async |c| c.delete(key, expected).await).await
    }

    async fn update_many(&self, table: &'static TableDef, rows: Vec<(Row, u64)>) -> Result<Vec<WriteOutcome>> {
        self.run(table, async |c| c.update_many(&rows).await).await
    }

    async fn insert_many(&self, table: &'static TableDef, rows: Vec<Row>) -> Result<Vec<bool>> {
        self.run(table, async |c| c.insert_many(&rows).await).await
    }

    async fn delete_many(&self, table: &'static TableDef, keys: &[(Value, u64)]) -> Result<Vec<WriteOutcome>> {
        self.run(table, async |c| c.delete_many(keys).await).await
    }
}

impl LockingRead for SqliteTransaction {
    async fn fetch_for_update(&self, table: &'static TableDef, key: &Value, _wait: LockWait) -> Result<Option<Row>> {
        // `BEGIN IMMEDIATE` already holds the database's write lock: the row is locked against
        // other writers until the transaction ends, and there is nothing left to wait for (the
        // wait was the store's, when the transaction began).
        self.fetch(table, key).await
    }
}

impl StorageTransaction for SqliteTransaction {
    async fn savepoint(&self, step: SavepointStep) -> Result<()> {
        let mut held = self.held.lock().await;
        driver::savepoint::<Sqlite>(&mut held.conn, step).await
    }

    async fn commit(self) -> Result<()> {
        self.held.into_inner().finish("COMMIT").await
    }

    async fn rollback(self) -> Result<()> {
        self.held.into_inner().finish("ROLLBACK").await
    }
}
