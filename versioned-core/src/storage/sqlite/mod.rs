//! The SQLite backend, over sqlx (feature `sqlite`, on by default).
//!
//! File databases run in WAL mode with a busy timeout. A read takes one connection from the pool
//! and runs one statement on it. Autocommit writes go through group commit: those of many tasks
//! that arrive together share one transaction and one commit (one `fsync`), each with its own
//! check and outcome. A failed check reads the stored row on the same connection, to describe the
//! conflict. Transactions begin with `BEGIN IMMEDIATE` (read-only ones `DEFERRED`), waiting for
//! the write lock as the store's [`LockWait`] says (the connection's busy timeout, set for the
//! `BEGIN` alone). Statements are built once per table (`storage::sql`), and sqlx keeps them
//! prepared per connection. The first use of a table checks its declared columns against the
//! struct (`PRAGMA table_info`), so a missing column or one declared with a type that cannot hold
//! its field is refused before anything is read or written.
//!
//! This file holds the storage itself (connecting, reads, the [`Storage`] contract); the rest, one
//! job per file:
//!
//! - `url.rs`: what an SQLite URL asks for, checked before sqlx parses it;
//! - `schema.rs`: what the storage knows of a table, and the check of its declared columns;
//! - `driver.rs`: the sqlx `Driver` of SQLite (binding, decoding,
//!   the meaning of its errors);
//! - `dialect.rs`: SQLite's SQL `Dialect`;
//! - `group_commit.rs`: what SQLite tells the shared group commit (`sql/group_commit.rs`): one
//!   batch at a time, in one `BEGIN IMMEDIATE` transaction;
//! - `transaction.rs`: [`SqliteTransaction`], and beginning one under the store's lock wait.

use crate::storage::Capabilities;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, ConnectOptions as _, SqlSafeStr, Sqlite};

use super::lent::SqlBackend;
use super::select::{Condition, Select};
use super::sql;
use super::sql::driver::Conn;
#[cfg(all(test, feature = "conformance"))]
use super::sql::group_commit::Core;
use super::sql::group_commit::{GroupCommit, Write};
use super::sql::rows::OnConnection;
use super::sql::{Mappings, Statements};
use super::{Lends, RowAccess, Storage, WriteOutcome};
use crate::entity::TableDef;
use crate::error::{Error, Result, StorageError};
use crate::lock::LockWait;
use crate::revisions::HistoryRow;
use crate::store::Store;
use crate::value::{Row, Value};

pub(super) mod dialect;
mod driver;
mod group_commit;
mod schema;
mod transaction;
mod url;

use driver::storage_error;
use schema::{TableState, table_state};
pub use transaction::SqliteTransaction;
use url::{URL_FORMS, inspect_url};

/// SQLite's SQL dialect, for [`migrations`](crate::migrations).
pub(crate) const DIALECT: &dyn super::sql::Dialect = &dialect::SqliteDialect;

/// How long a statement waits for another connection's write lock before SQLite reports busy
/// (a transaction's `BEGIN IMMEDIATE` waits as the store's [`LockWait`] says instead).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How durable a committed write is on an SQLite file: SQLite's `synchronous` setting, in WAL mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = FULL` (the default): a write that returned `Ok` is on disk, and survives a
    /// crash of the process, of the operating system, or a power loss. Each commit waits for one
    /// `fsync` of the WAL; group commit shares it among the writes that arrive together.
    #[default]
    Full,
    /// `synchronous = NORMAL`: a write that returned `Ok` survives a crash of the process, but the
    /// last commits before an operating-system crash or a power loss may be lost (the database is
    /// never corrupted). No `fsync` per commit, only at checkpoints: several times faster per
    /// commit on most disks.
    Normal,
}

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
    mappings: Mappings<TableState>,
    writes: GroupCommit<SqliteStorage>,
    /// The busy timeout of the pool's connections, in milliseconds: [`BUSY_TIMEOUT`] for a pool
    /// this backend built; for one of yours, read from a connection when first needed.
    busy_timeout_ms: Arc<OnceLock<u32>>,
    /// For an in-memory database, a connection outside the pool: the database lives as long as
    /// one connection to it is open, and the pool may close all of its own (idle, cancelled).
    _keep_alive: Option<Arc<tokio::sync::Mutex<SqliteConnection>>>,
    /// For an in-memory database, the write lock of its transactions, taken in this process: its
    /// connections share one cache, where SQLite waits for a lock until it is released whatever
    /// the busy timeout, so the store's lock wait is kept here instead.
    memory_writer: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl SqliteStorage {
    /// Opens the database at `url`: `sqlite://path.db` (add `?mode=rwc` to create the file,
    /// `?mode=ro` to open it read-only) or `sqlite::memory:`.
    ///
    /// A writable file database is switched to WAL mode (readers and the writer do not block each
    /// other); a read-only one is opened as it is. Statements wait up to 5 seconds for another
    /// connection's write lock, except a transaction's `BEGIN IMMEDIATE`, which waits as the
    /// store's [`LockWait`] says ([`Store::with_lock_wait`], 5 seconds by default). An in-memory
    /// database lives exactly as long as this storage (and its clones): the storage keeps a
    /// connection to it open.
    ///
    /// A URL of another database, an empty or malformed one is [`Error::Config`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, Durability::default()).await
    }

    /// [`connect`](Self::connect), with the durability of commits chosen (default:
    /// [`Durability::Full`]).
    pub async fn connect_with(url: &str, durability: Durability) -> Result<Self> {
        Self::connect_with_pool(url, durability, SqlitePoolOptions::new()).await
    }

    /// [`connect_with`](Self::connect_with), with a pool you configured (its size, timeouts).
    /// Connections are not pinged before each use, and an in-memory database's are never closed
    /// for being idle or old (the database would go with the last of them).
    pub async fn connect_with_pool(url: &str, durability: Durability, pool: SqlitePoolOptions) -> Result<Self> {
        let info = inspect_url(url)?;
        let synchronous = match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        };
        let mut options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::config(format!("{url:?}: {e}; {URL_FORMS}")))?
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(synchronous);
        if !info.in_memory && !info.read_only {
            options = options.journal_mode(SqliteJournalMode::Wal);
        }
        let open_error = |e: sqlx::Error| -> Error {
            let hint = if info.in_memory || url.contains("mode=rwc") {
                ""
            } else {
                " (does the file exist? add `?mode=rwc` to the URL to create it)"
            };
            StorageError::new(format!("cannot open the SQLite database {url:?}: {e}{hint}")).into()
        };
        // An embedded database's connections do not go stale the way a server's can: no ping
        // before each use (it would be a third round trip per operation).
        let mut pool = pool.test_before_acquire(false);
        let keep_alive = if info.in_memory {
            pool = pool.idle_timeout(None).max_lifetime(None);
            let conn = options.connect().await.map_err(open_error)?;
            Some(Arc::new(tokio::sync::Mutex::new(conn)))
        } else {
            None
        };
        let pool = pool.connect_with(options).await.map_err(open_error)?;
        Ok(SqliteStorage {
            pool,
            mappings: Mappings::default(),
            writes: GroupCommit::default(),
            busy_timeout_ms: Arc::new(OnceLock::from(BUSY_TIMEOUT.as_millis() as u32)),
            memory_writer: keep_alive.as_ref().map(|_| Arc::default()),
            _keep_alive: keep_alive,
        })
    }

    /// A backend over a pool you configured yourself. (An in-memory database then lives as long
    /// as your pool keeps a connection open.)
    pub fn from_pool(pool: SqlitePool) -> Self {
        SqliteStorage {
            pool,
            mappings: Mappings::default(),
            writes: GroupCommit::default(),
            busy_timeout_ms: Arc::default(),
            _keep_alive: None,
            memory_writer: None,
        }
    }

    /// The underlying pool, for your own queries.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn table(&self, table: &'static TableDef) -> Arc<TableState> {
        table_state(&self.mappings, table)
    }

    /// What the writer of its group commit needs (for its tests).
    #[cfg(all(test, feature = "conformance"))]
    pub(crate) fn core(&self) -> Core<SqliteStorage> {
        Core { pool: self.pool.clone(), mappings: self.mappings.clone() }
    }

    async fn acquire(&self, table: &'static TableDef) -> Result<sqlx::pool::PoolConnection<Sqlite>> {
        self.pool.acquire().await.map_err(|e| storage_error(Some(table), e))
    }

    async fn run<T>(
        &self,
        table: &'static TableDef,
        op: impl AsyncFnOnce(&mut OnConnection<'_, Conn<'_, Sqlite>>) -> Result<T>,
    ) -> Result<T> {
        let state = self.table(table);
        let mut conn = self.acquire(table).await?;
        state.check_schema(&mut conn, table).await?;
        op(&mut OnConnection { conn: &mut Conn(&mut *conn), table, statements: &state.sql }).await
    }
}

impl Store<SqliteStorage> {
    /// A store over the SQLite database at `url`; see [`SqliteStorage::connect`].
    pub async fn sqlite(url: &str) -> Result<Self> {
        Ok(Store::new(SqliteStorage::connect(url).await?))
    }

    /// A store over the SQLite database at `url`, with the durability of commits chosen; see
    /// [`SqliteStorage::connect_with`].
    pub async fn sqlite_with(url: &str, durability: Durability) -> Result<Self> {
        Ok(Store::new(SqliteStorage::connect_with(url, durability).await?))
    }
}

impl RowAccess for SqliteStorage {
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
        self.writes.write(&self.pool, &self.mappings, table, Write::Insert(row)).await?.inserted::<Self>()
    }

    async fn update(&self, table: &'static TableDef, row: Row, expected: u64) -> Result<WriteOutcome> {
        self.writes.write(&self.pool, &self.mappings, table, Write::Update(row, expected)).await?.written::<Self>()
    }

    async fn upsert(&self, table: &'static TableDef, row: Row) -> Result<Option<u64>> {
        self.writes.write(&self.pool, &self.mappings, table, Write::Upsert(row)).await?.upserted::<Self>()
    }

    async fn patch(
        &self,
        table: &'static TableDef,
        key: &Value,
        columns: &[(usize, Value)],
        expected: u64,
    ) -> Result<WriteOutcome> {
        let op = Write::Patch(key.clone(), columns.to_vec(), expected);
        self.writes.write(&self.pool, &self.mappings, table, op).await?.written::<Self>()
    }

    async fn delete(&self, table: &'static TableDef, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        self.writes
            .write(&self.pool, &self.mappings, table, Write::Delete(key.clone(), expected))
            .await?
            .written::<Self>()
    }
}

impl Lends for SqliteStorage {
    type Database = Sqlite;

    fn pool(&self) -> &sqlx::Pool<Sqlite> {
        &self.pool
    }

    fn error(err: sqlx::Error) -> Error {
        storage_error(None, err)
    }
}

impl SqlBackend for SqliteStorage {
    type Table = TableState;

    fn table_state(&self, table: &'static TableDef) -> Arc<TableState> {
        self.table(table)
    }

    async fn check(state: &TableState, conn: &mut sqlx::SqliteConnection, table: &'static TableDef) -> Result<()> {
        state.check_schema(conn, table).await
    }

    fn statements(state: &TableState) -> &Statements {
        &state.sql
    }
}

impl Storage for SqliteStorage {
    type Transaction = SqliteTransaction;

    async fn history(&self, table: &'static TableDef, key: &Value, version: Option<u64>) -> Result<Vec<HistoryRow>> {
        self.run(table, async |c| c.history(key, version).await).await
    }

    /// Begins `IMMEDIATE`, waiting for the write lock up to the connection's busy timeout.
    async fn begin(&self) -> Result<SqliteTransaction> {
        self.begin_as("BEGIN IMMEDIATE", None).await
    }

    /// Begins `IMMEDIATE`, waiting for the write lock as `wait` says: the wait of a store's
    /// transactions, and the only one on SQLite (a `get_for_update` inside has nothing left to
    /// wait for).
    async fn begin_with_lock_wait(&self, wait: LockWait) -> Result<SqliteTransaction> {
        self.begin_as("BEGIN IMMEDIATE", Some(wait)).await
    }

    async fn begin_read_only(&self) -> Result<SqliteTransaction> {
        // A deferred transaction that only reads takes no write lock; in WAL mode its first read
        // fixes the snapshot every later read sees, while writers go on.
        self.begin_as("BEGIN DEFERRED", None).await
    }

    async fn create_table(&self, table: &'static TableDef) -> Result<()> {
        let state = self.table(table);
        let mut conn = self.acquire(table).await?;
        let create = sqlx::query(AssertSqlSafe(Arc::clone(&state.sql.create)).into_sql_str());
        create.execute(&mut *conn).await.map_err(|e| storage_error(Some(table), e))?;
        for index in &state.sql.indexes {
            let create = sqlx::query(AssertSqlSafe(Arc::clone(index)).into_sql_str());
            create.execute(&mut *conn).await.map_err(|e| storage_error(Some(table), e))?;
        }
        if let Some(history) = &state.sql.history {
            // A column the history table has, or a trigger another connection made meanwhile.
            let exists = |err: &sqlx::Error| {
                let message = err.to_string();
                message.contains("duplicate column name") || message.contains("already exists")
            };
            sql::history::create::<Sqlite>(&mut conn, table, history, exists).await?;
        }
        // The table may have existed already, made by a migration: check it fits the struct.
        state.check_schema(&mut conn, table).await
    }

    /// Its transactions hold the whole database from `BEGIN IMMEDIATE`.
    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with_identity(self.mappings.identity()).with_database_locks()
    }
}
