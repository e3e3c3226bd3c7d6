//! A connection of yours lent to an SQL store: [`Lent`], the row operations behind
//! [`Store::on`](crate::Store::on).
//!
//! The statements are the store's own (built once per struct, the table's schema checked once),
//! run on your connection: inside your transaction when it is in one. Nothing here begins,
//! commits or rolls back your transaction; a batch runs in a nested transaction of its own (a
//! savepoint inside yours, `BEGIN` … `COMMIT` outside one), begun and ended through sqlx's own
//! transaction manager, so that sqlx's count of nested transactions stays right for your
//! `commit`.

use std::sync::Arc;

use sqlx::{Connection, Database, IntoArguments};

use super::select::{Condition, Select};
use super::sql::Statements;
use super::sql::driver::{Conn, Driver};
use super::sql::rows::OnConnection;
use super::{LockingRead, RowAccess, Storage, WriteOutcome};
use crate::entity::TableDef;
use crate::error::{Error, Result, StorageError};
use crate::lock::LockWait;
use crate::value::{Row, Value};

/// A storage whose statements run on a connection of yours: the SQL backends
/// ([`Store::on`](crate::Store::on)). Sealed: implemented by `SqliteStorage`, `PostgresStorage`
/// and `MysqlStorage`.
pub trait Lends: Storage + sealed::Sealed {
    /// The sqlx database (`Postgres`, `MySql`, `Sqlite`), whose connection (`PgConnection`,
    /// `MySqlConnection`, `SqliteConnection`) is lent: `&mut *tx` of a `sqlx::Transaction`, or a
    /// pooled connection.
    type Database: Database;

    /// The pool the storage takes its own connections from.
    fn pool(&self) -> &sqlx::Pool<Self::Database>;

    #[doc(hidden)]
    /// A driver's error as the backend reports it (retryable where it is).
    fn error(err: sqlx::Error) -> Error;
}

mod sealed {
    /// Only the SQL storages of this crate lend connections.
    pub trait Sealed {}
}

#[cfg(feature = "sqlite")]
impl sealed::Sealed for super::sqlite::SqliteStorage {}
#[cfg(feature = "postgres")]
impl sealed::Sealed for super::postgres::PostgresStorage {}
#[cfg(feature = "mysql")]
impl sealed::Sealed for super::mysql::MysqlStorage {}

/// The connection type of `S`'s database.
pub type ConnectionOf<S> = <<S as Lends>::Database as Database>::Connection;

/// How an SQL backend runs its statements on a connection it was lent.
pub(crate) trait SqlBackend: Lends<Database: Driver> {
    /// What the backend keeps per struct mapping: its statements, whether its schema was checked.
    type Table: Send + Sync + 'static;

    /// The state of `table`'s mapping, made the first time.
    fn table_state(&self, table: &'static TableDef) -> Arc<Self::Table>;

    /// Checks the table's schema on `conn`, once per mapping (as the backend does on its own
    /// connections).
    fn check(
        state: &Self::Table,
        conn: &mut ConnectionOf<Self>,
        table: &'static TableDef,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The mapping's statements.
    fn statements(state: &Self::Table) -> &Statements;
}

/// A connection of yours, lent to a store's statements for the life of an
/// [`On`](crate::On): the row operations of the typed calls made through it.
pub struct Lent<'c, S: Lends> {
    storage: &'c S,
    conn: tokio::sync::Mutex<&'c mut ConnectionOf<S>>,
}

impl<S: Lends> std::fmt::Debug for Lent<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lent").finish_non_exhaustive()
    }
}

impl<'c, S: Lends> Lent<'c, S> {
    pub(crate) fn new(storage: &'c S, conn: &'c mut ConnectionOf<S>) -> Self {
        Lent { storage, conn: tokio::sync::Mutex::new(conn) }
    }

    /// Whether the connection is inside a transaction begun through sqlx (`pool.begin()`,
    /// `conn.begin()`).
    pub(crate) async fn in_transaction(&self) -> bool {
        self.conn.lock().await.is_in_transaction()
    }
}

/// Runs `f` in a nested transaction, on a connection lent to it alone: a savepoint inside your
/// transaction, a transaction of its own outside one (sqlx's `begin`, which counts them, so that
/// your `commit` stays right). It commits (releases) when `f` returns `Ok`, and rolls back when
/// `f` fails, leaving your transaction as it was before, and `f`'s error is returned. Dropped
/// once begun, sqlx rolls it back before the connection's next statement.
pub(crate) async fn nested<S: Lends, R>(
    lent: &Lent<'_, S>,
    f: impl AsyncFnOnce(&Lent<'_, S>) -> Result<R>,
) -> Result<R> {
    let error = S::error;
    let mut conn = lent.conn.lock().await;
    let inside = conn.is_in_transaction();
    let refused = match conn.begin().await {
        Ok(mut nested) => {
            let result = f(&Lent::new(lent.storage, &mut nested)).await;
            return match result {
                Ok(value) => nested.commit().await.map(|()| value).map_err(error),
                Err(err) => {
                    // `f`'s error is what you need (a deadlock that rolled back everything:
                    // retryable); a rollback that fails too is queued again by sqlx for the
                    // connection's next statement.
                    let _ = nested.rollback().await;
                    Err(err)
                }
            };
        }
        Err(refused) => refused,
    };
    if inside && !conn.is_in_transaction() {
        // sqlx rolls back one level when a `SAVEPOINT` fails (its guard is armed before the
        // savepoint exists): your transaction is gone, and it must be said.
        return Err(StorageError::new(format!(
            "the database refused the savepoint of a batch ({refused}), and sqlx rolled back your transaction \
             with it: it no longer exists (statements on this connection now commit one by one)"
        ))
        .into());
    }
    Err(error(refused))
}

/// Runs `op` on the lent connection with the statements of `table`, its schema checked. (Free
/// functions, not methods: a crate-private bound on a public type's inherent impl is a lint.)
async fn run<S: SqlBackend, T>(
    lent: &Lent<'_, S>,
    table: &'static TableDef,
    op: impl AsyncFnOnce(&mut OnConnection<'_, Conn<'_, S::Database>>) -> Result<T>,
) -> Result<T>
where
    for<'e> &'e mut ConnectionOf<S>: sqlx::Executor<'e, Database = S::Database>,
    <S::Database as Database>::Arguments: IntoArguments<S::Database>,
{
    let state = lent.storage.table_state(table);
    let mut conn = lent.conn.lock().await;
    S::check(&state, &mut conn, table).await?;
    op(&mut OnConnection { conn: &mut Conn(&mut **conn), table, statements: S::statements(&state) }).await
}

/// A read that locks rows: only inside a transaction, which holds the locks until it ends.
async fn refuse_outside_transaction<S: Lends>(lent: &Lent<'_, S>, operation: &'static str) -> Result<()> {
    if lent.in_transaction().await { Ok(()) } else { Err(Error::NoTransaction { operation }) }
}

impl<S: SqlBackend> RowAccess for Lent<'_, S>
where
    for<'e> &'e mut ConnectionOf<S>: sqlx::Executor<'e, Database = S::Database>,
    <S::Database as Database>::Arguments: IntoArguments<S::Database>,
{
    async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        run(self, table, async |c| c.fetch(key).await).await
    }

    async fn select(&self, table: &'static TableDef, select: &Select) -> Result<Vec<Row>> {
        if select.lock.is_some() {
            refuse_outside_transaction(self, "find … for_update").await?;
        }
        run(self, table, async |c| c.select(select).await).await
    }

    async fn count(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        run(self, table, async |c| c.count(condition).await).await
    }

    async fn update_where(
        &self,
        table: &'static TableDef,
        condition: &Condition,
        columns: &[(usize, Value)],
    ) -> Result<u64> {
        run(self, table, async |c| c.update_where(condition, columns).await).await
    }

    async fn delete_where(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        run(self, table, async |c| c.delete_where(condition).await).await
    }

    async fn insert(&self, table: &'static TableDef, row: Row) -> Result<bool> {
        run(self, table, async |c| c.insert(&row).await).await
    }

    async fn update(&self, table: &'static TableDef, row: Row, expected: u64) -> Result<WriteOutcome> {
        run(self, table, async |c| c.update(&row, expected).await).await
    }

    async fn upsert(&self, table: &'static TableDef, row: Row) -> Result<Option<u64>> {
        if S::statements(&self.storage.table_state(table)).returning {
            run(self, table, async |c| c.upsert(&row).await).await
        } else {
            // Two statements (MySQL: the upsert, then its version read back): atomic together.
            nested(self, async |lent| run(lent, table, async |c| c.upsert(&row).await).await).await
        }
    }

    async fn patch(
        &self,
        table: &'static TableDef,
        key: &Value,
        columns: &[(usize, Value)],
        expected: u64,
    ) -> Result<WriteOutcome> {
        run(self, table, async |c| c.patch(key, columns, expected).await).await
    }

    async fn delete(&self, table: &'static TableDef, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        run(self, table, async |c| c.delete(key, expected).await).await
    }

    async fn update_many(&self, table: &'static TableDef, rows: Vec<(Row, u64)>) -> Result<Vec<WriteOutcome>> {
        run(self, table, async |c| c.update_many(&rows).await).await
    }

    async fn insert_many(&self, table: &'static TableDef, rows: Vec<Row>) -> Result<Vec<bool>> {
        run(self, table, async |c| c.insert_many(&rows).await).await
    }

    async fn delete_many(&self, table: &'static TableDef, keys: &[(Value, u64)]) -> Result<Vec<WriteOutcome>> {
        run(self, table, async |c| c.delete_many(keys).await).await
    }
}

/// A lock waits as your session says (`lock_timeout` on PostgreSQL, `innodb_lock_wait_timeout`
/// on MySQL): the library changes no setting of your connection. [`LockWait::NoWait`] is the
/// statement's own `NOWAIT`. SQLite has no row locks: a transaction holds the database once it
/// writes, or from its start if you begin it with `BEGIN IMMEDIATE`.
impl<S: SqlBackend> LockingRead for Lent<'_, S>
where
    for<'e> &'e mut ConnectionOf<S>: sqlx::Executor<'e, Database = S::Database>,
    <S::Database as Database>::Arguments: IntoArguments<S::Database>,
{
    async fn fetch_for_update(&self, table: &'static TableDef, key: &Value, wait: LockWait) -> Result<Option<Row>> {
        refuse_outside_transaction(self, "get_for_update").await?;
        run(self, table, async |c| c.fetch_for_update(key, wait == LockWait::NoWait).await).await
    }
}
