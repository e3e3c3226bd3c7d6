//! The SQLite backend, over sqlx (feature `sqlite`, on by default).
//!
//! File databases run in WAL mode with a busy timeout. Each operation takes one connection from
//! the pool and runs one statement on it; a failed check reads the stored row on the same
//! connection, to describe the conflict. Transactions begin with `BEGIN IMMEDIATE`. Statements are built once per table
//! (`storage::sql`), and sqlx keeps them prepared per connection.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow,
};
use sqlx::{AssertSqlSafe, Row as _, SqlSafeStr, Sqlite, TypeInfo as _, ValueRef as _};

use super::sql::Statements;
use super::{PatchOutcome, RowAccess, Storage, StorageTransaction, WriteOutcome};
use crate::entity::TableDef;
use crate::error::{Error, Result, StorageError};
use crate::store::Store;
use crate::value::{Row, Value};

/// How long a statement waits for another connection's write lock before SQLite reports busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

/// The SQLite backend: a sqlx pool and the statements of every table it has seen.
///
/// ```no_run
/// # async fn demo() -> versioned_core::Result<()> {
/// use versioned_core::Store;
///
/// let store = Store::sqlite("sqlite://app.db?mode=rwc").await?; // file, created if missing
/// let tests = Store::sqlite("sqlite::memory:").await?; // private in-memory database
/// # let _ = (store, tests);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStorage {
    pool: SqlitePool,
    statements: Arc<RwLock<HashMap<&'static str, Arc<Statements>>>>,
}

impl SqliteStorage {
    /// Opens the database at `url` (`sqlite://path.db?mode=rwc`, `sqlite::memory:`) in WAL mode,
    /// with a busy timeout of 5 seconds.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StorageError::new)?
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new().connect_with(options).await.map_err(StorageError::new)?;
        Ok(Self::from_pool(pool))
    }

    /// A backend over a pool you configured yourself.
    pub fn from_pool(pool: SqlitePool) -> Self {
        SqliteStorage { pool, statements: Arc::default() }
    }

    /// The underlying pool, for your own queries.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn statements(&self, table: &'static TableDef) -> Arc<Statements> {
        // The map only ever gains complete entries, so a poisoned lock still holds valid data.
        if let Some(found) = self.statements.read().unwrap_or_else(PoisonError::into_inner).get(table.name) {
            return Arc::clone(found);
        }
        let mut map = self.statements.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(table.name).or_insert_with(|| Arc::new(Statements::sqlite(table))))
    }

    async fn acquire(&self, table: &'static TableDef) -> Result<sqlx::pool::PoolConnection<Sqlite>> {
        self.pool.acquire().await.map_err(|e| storage_error(Some(table), e))
    }
}

impl Store<SqliteStorage> {
    /// A store over the SQLite database at `url`; see [`SqliteStorage::connect`].
    pub async fn sqlite(url: &str) -> Result<Self> {
        Ok(Store::new(SqliteStorage::connect(url).await?))
    }
}

fn query(sql: &Arc<str>) -> Query<'static> {
    sqlx::query(AssertSqlSafe(Arc::clone(sql)).into_sql_str())
}

fn bind<'q>(q: Query<'q>, value: &Value) -> Query<'q> {
    match value {
        Value::Null => q.bind(None::<i64>),
        Value::Bool(b) => q.bind(*b),
        Value::Int(i) => q.bind(*i),
        Value::Float(x) => q.bind(*x),
        Value::Text(s) => q.bind(s.clone()),
        Value::Bytes(b) => q.bind(b.clone()),
    }
}

fn bind_all<'q, 'v>(q: Query<'q>, values: impl IntoIterator<Item = &'v Value>) -> Query<'q> {
    values.into_iter().fold(q, bind)
}

/// A version as SQLite stores it. Versions never exceed `version_max <= i64::MAX`.
fn version_value(v: u64) -> Value {
    Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Maps a sqlx error: SQLite busy/locked become retryable, a missing column becomes
/// `Error::Decode` naming it.
fn storage_error(table: Option<&'static TableDef>, err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Database(db) => {
            // Reads say "no such column: x", writes "table t has no column named x".
            let message = db.message();
            let missing = message
                .strip_prefix("no such column: ")
                .or_else(|| message.split_once(" has no column named ").map(|(_, name)| name));
            if let (Some(name), Some(table)) = (missing, table) {
                let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
                if let Some(column) = table.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)) {
                    return Error::decode(table, column.name, "the table has no such column");
                }
            }
            // Primary result codes 5 (SQLITE_BUSY) and 6 (SQLITE_LOCKED), in any extended form.
            let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
            if matches!(code & 0xff, 5 | 6) {
                return StorageError::retryable(err).into();
            }
        }
        sqlx::Error::PoolTimedOut => return StorageError::retryable(err).into(),
        _ => {}
    }
    StorageError::new(err).into()
}

/// Reads a result row into a [`Row`], by each value's own storage class, so a value of the wrong
/// type reaches the field's decoder (and becomes `Error::Decode` naming the column).
fn decode_row(table: &'static TableDef, row: &SqliteRow) -> Result<Row> {
    let mut values = Vec::with_capacity(table.columns.len());
    for (i, column) in table.columns.iter().enumerate() {
        let decode_err = |e: sqlx::Error| Error::decode(table, column.name, e.to_string());
        let raw = row.try_get_raw(i).map_err(decode_err)?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            match raw.type_info().name() {
                "INTEGER" | "BOOLEAN" => Value::Int(row.try_get_unchecked(i).map_err(decode_err)?),
                "REAL" => Value::Float(row.try_get_unchecked(i).map_err(decode_err)?),
                "TEXT" => Value::Text(row.try_get_unchecked(i).map_err(decode_err)?),
                "BLOB" => Value::Bytes(row.try_get_unchecked(i).map_err(decode_err)?),
                other => return Err(Error::decode(table, column.name, format!("unsupported SQLite type {other}"))),
            }
        };
        values.push(value);
    }
    Ok(Row::new(values))
}

/// The row operations on one connection: shared by autocommit calls and transactions.
pub(crate) struct OnConnection<'c> {
    pub conn: &'c mut SqliteConnection,
    pub table: &'static TableDef,
    pub statements: &'c Statements,
}

impl OnConnection<'_> {
    pub(crate) async fn fetch(&mut self, key: &Value) -> Result<Option<Row>> {
        let q = bind(query(&self.statements.select), key);
        match q.fetch_optional(&mut *self.conn).await.map_err(|e| storage_error(Some(self.table), e))? {
            Some(row) => decode_row(self.table, &row).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) async fn insert(&mut self, row: &Row) -> Result<bool> {
        let q = bind_all(query(&self.statements.insert), row.values());
        let done = q.execute(&mut *self.conn).await.map_err(|e| storage_error(Some(self.table), e))?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn update(&mut self, row: &Row, expected: u64) -> Result<WriteOutcome> {
        let table = self.table;
        let key = table.key_of(row)?;
        let set = self.statements.update_columns.iter().filter_map(|i| row.get(*i));
        let q = bind(bind(bind_all(query(&self.statements.update), set), key), &version_value(expected));
        let done = q.execute(&mut *self.conn).await.map_err(|e| storage_error(Some(table), e))?;
        self.outcome(done.rows_affected(), key).await
    }

    pub(crate) async fn upsert(&mut self, row: &Row) -> Result<Option<u64>> {
        let table = self.table;
        // A new record starts at version 1; an existing one gets `version + 1` from the statement.
        let first = Value::Int(1);
        let values = row.values().iter().enumerate().map(|(i, v)| if i == table.version { &first } else { v });
        let q = bind(bind_all(query(&self.statements.upsert), values), &version_value(table.version_max));
        let returned = q.fetch_optional(&mut *self.conn).await.map_err(|e| storage_error(Some(table), e))?;
        returned
            .map(|r| {
                let v: i64 =
                    r.try_get(0).map_err(|e| Error::decode(table, table.version_column().name, e.to_string()))?;
                u64::try_from(v).map_err(|_| Error::decode(table, table.version_column().name, "negative version"))
            })
            .transpose()
    }

    pub(crate) async fn patch(
        &mut self,
        key: &Value,
        columns: &[(usize, Value)],
        expected: Option<u64>,
    ) -> Result<PatchOutcome> {
        let table = self.table;
        let sql = self.statements.patch(columns.iter().map(|(i, _)| *i).collect(), expected.is_some());
        let mut q = bind(bind_all(query(&sql), columns.iter().map(|(_, v)| v)), key);
        if let Some(expected) = expected {
            q = bind(q, &version_value(expected));
        }
        let q = bind(q, &version_value(table.version_max));
        match q.fetch_optional(&mut *self.conn).await.map_err(|e| storage_error(Some(table), e))? {
            Some(row) => Ok(PatchOutcome::Applied { row: decode_row(table, &row)? }),
            None => Ok(PatchOutcome::Rejected { current: self.fetch(key).await? }),
        }
    }

    pub(crate) async fn delete(&mut self, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        let table = self.table;
        let q = match expected {
            Some(v) => bind(bind(query(&self.statements.delete_checked), key), &version_value(v)),
            None => bind(query(&self.statements.delete_unchecked), key),
        };
        let done = q.execute(&mut *self.conn).await.map_err(|e| storage_error(Some(table), e))?;
        match expected {
            Some(_) => self.outcome(done.rows_affected(), key).await,
            // Nothing deleted without a check: there was no row to read back.
            None if done.rows_affected() == 0 => Ok(WriteOutcome::Rejected { current: None }),
            None => Ok(WriteOutcome::Applied),
        }
    }

    /// `Applied` when the conditional statement touched the row; otherwise reads the stored row,
    /// on the same connection, to describe the conflict.
    async fn outcome(&mut self, rows_affected: u64, key: &Value) -> Result<WriteOutcome> {
        if rows_affected == 1 {
            Ok(WriteOutcome::Applied)
        } else {
            Ok(WriteOutcome::Rejected { current: self.fetch(key).await? })
        }
    }
}

/// Implements [`RowAccess`] for a type with a `run` method that lends one connection to an
/// operation: the autocommit storage (a pooled connection) and a transaction (its connection).
macro_rules! row_access_via_run {
    ($ty:ty) => {
        impl RowAccess for $ty {
            async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
                self.run(table, async |c| c.fetch(key).await).await
            }

            async fn insert(&self, table: &'static TableDef, row: &Row) -> Result<bool> {
                self.run(table, async |c| c.insert(row).await).await
            }

            async fn update(&self, table: &'static TableDef, row: &Row, expected: u64) -> Result<WriteOutcome> {
                self.run(table, async |c| c.update(row, expected).await).await
            }

            async fn upsert(&self, table: &'static TableDef, row: &Row) -> Result<Option<u64>> {
                self.run(table, async |c| c.upsert(row).await).await
            }

            async fn patch(
                &self,
                table: &'static TableDef,
                key: &Value,
                columns: &[(usize, Value)],
                expected: Option<u64>,
            ) -> Result<PatchOutcome> {
                self.run(table, async |c| c.patch(key, columns, expected).await).await
            }

            async fn delete(
                &self,
                table: &'static TableDef,
                key: &Value,
                expected: Option<u64>,
            ) -> Result<WriteOutcome> {
                self.run(table, async |c| c.delete(key, expected).await).await
            }
        }
    };
}

impl SqliteStorage {
    async fn run<T>(
        &self,
        table: &'static TableDef,
        op: impl AsyncFnOnce(&mut OnConnection<'_>) -> Result<T>,
    ) -> Result<T> {
        let statements = self.statements(table);
        let mut conn = self.acquire(table).await?;
        op(&mut OnConnection { conn: &mut conn, table, statements: &statements }).await
    }
}

row_access_via_run!(SqliteStorage);

/// A transaction of the [`SqliteStorage`]: one connection inside `BEGIN IMMEDIATE`, so it holds
/// SQLite's write lock from its start and other writers wait (up to the busy timeout) until it
/// ends. Dropped without commit, it is rolled back.
#[derive(Debug)]
pub struct SqliteTransaction {
    storage: SqliteStorage,
    tx: tokio::sync::Mutex<sqlx::Transaction<'static, Sqlite>>,
}

impl SqliteTransaction {
    async fn run<T>(
        &self,
        table: &'static TableDef,
        op: impl AsyncFnOnce(&mut OnConnection<'_>) -> Result<T>,
    ) -> Result<T> {
        let statements = self.storage.statements(table);
        let mut tx = self.tx.lock().await;
        op(&mut OnConnection { conn: &mut tx, table, statements: &statements }).await
    }
}

row_access_via_run!(SqliteTransaction);

impl StorageTransaction for SqliteTransaction {
    async fn fetch_for_update(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        // `BEGIN IMMEDIATE` already holds the database's write lock: the row is locked against
        // other writers until the transaction ends.
        self.fetch(table, key).await
    }

    async fn commit(self) -> Result<()> {
        self.tx.into_inner().commit().await.map_err(|e| storage_error(None, e))
    }

    async fn rollback(self) -> Result<()> {
        self.tx.into_inner().rollback().await.map_err(|e| storage_error(None, e))
    }
}

impl Storage for SqliteStorage {
    type Transaction = SqliteTransaction;

    async fn begin(&self) -> Result<SqliteTransaction> {
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(|e| storage_error(None, e))?;
        Ok(SqliteTransaction { storage: self.clone(), tx: tokio::sync::Mutex::new(tx) })
    }

    async fn create_table(&self, table: &'static TableDef) -> Result<()> {
        let statements = self.statements(table);
        query(&statements.create).execute(&self.pool).await.map_err(|e| storage_error(Some(table), e))?;
        Ok(())
    }
}
