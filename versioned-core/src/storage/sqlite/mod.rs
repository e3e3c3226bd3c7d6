//! The SQLite backend, over sqlx (feature `sqlite`, on by default).
//!
//! File databases run in WAL mode with a busy timeout. A read takes one connection from the pool
//! and runs one statement on it. Autocommit writes go through group commit: those of many tasks
//! that arrive together share one transaction and one commit (one `fsync`), each with its own
//! check and outcome. A failed check reads the stored row on the same connection, to describe the
//! conflict. Transactions begin with `BEGIN IMMEDIATE` (read-only ones `DEFERRED`), waiting for
//! the write lock as the store's [`LockWait`] says (the connection's busy timeout, set for the
//! `BEGIN` alone). Statements are
//! built once per table (`storage::sql`), and sqlx keeps them prepared per connection. The first
//! use of a table checks its declared columns against the struct (`PRAGMA table_info`), so a
//! missing column or one declared with a type that cannot hold its field is refused before
//! anything is read or written.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{
    AssertSqlSafe, ConnectOptions as _, Executor as _, Row as _, SqlSafeStr, Sqlite, TypeInfo as _, ValueRef as _,
};

use super::sql::driver::{self, Conn, Driver, Meaning, Query as DriverQuery};
use super::sql::rows::{Bind, OnConnection, row_access_via_run};
use super::sql::{Dialect as _, Statements, Tables};
use super::{RowAccess, SavepointStep, Storage, StorageTransaction, WriteOutcome};
use crate::entity::{ColumnDef, TableDef};
use crate::error::{Error, Result, StorageError};
use crate::lock::LockWait;
use crate::store::Store;
use crate::value::{ColumnType, Row, Value};

pub(super) mod dialect;
mod group_commit;

use dialect::SqliteDialect;
use group_commit::{Core, Done, GroupCommit, Op};

/// How long a statement waits for another connection's write lock before SQLite reports busy
/// (a transaction's `BEGIN IMMEDIATE` waits as the store's [`LockWait`] says instead).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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
    tables: Tables<TableState>,
    writes: GroupCommit,
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

fn table_state(tables: &Tables<TableState>, table: &'static TableDef) -> Arc<TableState> {
    tables.get(table, || TableState {
        sql: Statements::new(&SqliteDialect, table),
        schema_checked: AtomicBool::new(false),
        binary_text_keys: AtomicBool::new(false),
    })
}

/// What the storage knows of one table: its statements, and whether its schema was checked.
#[derive(Debug)]
struct TableState {
    sql: Statements,
    schema_checked: AtomicBool,
    /// Whether the table declares no collation of its own, so that text keys compare byte for
    /// byte; known once the schema is checked, false until then.
    binary_text_keys: AtomicBool,
}

/// What [`SqliteStorage::connect`] needs to know of a URL before sqlx parses it.
#[derive(Debug, PartialEq)]
struct UrlInfo {
    in_memory: bool,
    read_only: bool,
}

const URL_FORMS: &str = "expected `sqlite://path/to/file.db` (add `?mode=rwc` to create it) or `sqlite::memory:`";

/// Checks that `url` is an SQLite URL, and says what it asks for.
fn inspect_url(url: &str) -> Result<UrlInfo> {
    if url.trim().is_empty() {
        return Err(Error::config(format!("the SQLite URL is empty; {URL_FORMS}")));
    }
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).filter(|scheme| {
        scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    let Some(scheme) = scheme else {
        return Err(Error::config(format!("{url:?} is not a URL; {URL_FORMS}")));
    };
    if !scheme.eq_ignore_ascii_case("sqlite") {
        return Err(Error::config(format!(
            "{url:?} is a `{scheme}:` URL, but this is the SQLite backend; {URL_FORMS}"
        )));
    }
    let rest = url[scheme.len() + 1..].trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(Error::config(format!("{url:?} names no database file; {URL_FORMS}")));
    }
    let params: Vec<(&str, &str)> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    let has = |key: &str, values: &[&str]| params.iter().any(|(k, v)| *k == key && values.contains(v));
    Ok(UrlInfo {
        in_memory: path == ":memory:" || has("mode", &["memory"]),
        read_only: has("mode", &["ro"]) || has("immutable", &["1", "true"]),
    })
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
            tables: Tables::default(),
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
            tables: Tables::default(),
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
        table_state(&self.tables, table)
    }

    /// Runs one autocommit write through the storage's group commit.
    async fn write(&self, table: &'static TableDef, op: Op) -> Result<Done> {
        let core = || Core { pool: self.pool.clone(), tables: self.tables.clone() };
        self.writes.write(core, table, op).await
    }

    async fn acquire(&self, table: &'static TableDef) -> Result<sqlx::pool::PoolConnection<Sqlite>> {
        self.pool.acquire().await.map_err(|e| storage_error(Some(table), e))
    }
}

impl TableState {
    /// Checks, once, that the table exists and that every column of the struct is declared with
    /// a type that can hold its field. Runs on the caller's connection (inside its transaction).
    async fn check_schema(&self, conn: &mut SqliteConnection, table: &'static TableDef) -> Result<()> {
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
                return Err(Error::decode(table, column.name, "the table has no such column"));
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

    /// Whether text keys of this table compare byte for byte, as [`Value`]s do (see
    /// `binary_text_keys`).
    fn binary_text_keys(&self) -> bool {
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

/// Whether `err` is SQLite's busy or locked refusal (primary result codes 5 and 6, in any
/// extended form): another connection holds a lock past the busy timeout.
fn is_busy(err: &sqlx::Error) -> bool {
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
fn storage_error(table: Option<&'static TableDef>, err: sqlx::Error) -> Error {
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

impl SqliteStorage {
    /// Takes a connection from the pool and runs `begin` on it; with `wait`, under the busy
    /// timeout that waits as it says, set for the `BEGIN` alone: the connection has the pool's
    /// busy timeout again before and after, whether the `BEGIN` went through or was refused.
    async fn begin_as(&self, begin: &'static str, wait: Option<LockWait>) -> Result<SqliteTransaction> {
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

impl RowAccess for SqliteStorage {
    async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        self.run(table, async |c| c.fetch(key).await).await
    }

    async fn insert(&self, table: &'static TableDef, row: Row) -> Result<bool> {
        match self.write(table, Op::Insert(row)).await? {
            Done::Inserted(inserted) => Ok(inserted),
            _ => Err(mismatched_answer()),
        }
    }

    async fn update(&self, table: &'static TableDef, row: Row, expected: u64) -> Result<WriteOutcome> {
        written(self.write(table, Op::Update(row, expected)).await?)
    }

    async fn upsert(&self, table: &'static TableDef, row: Row) -> Result<Option<u64>> {
        match self.write(table, Op::Upsert(row)).await? {
            Done::Upserted(version) => Ok(version),
            _ => Err(mismatched_answer()),
        }
    }

    async fn patch(
        &self,
        table: &'static TableDef,
        key: &Value,
        columns: &[(usize, Value)],
        expected: u64,
    ) -> Result<WriteOutcome> {
        written(self.write(table, Op::Patch(key.clone(), columns.to_vec(), expected)).await?)
    }

    async fn delete(&self, table: &'static TableDef, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        written(self.write(table, Op::Delete(key.clone(), expected)).await?)
    }
}

fn written(done: Done) -> Result<WriteOutcome> {
    match done {
        Done::Written(outcome) => Ok(outcome),
        _ => Err(mismatched_answer()),
    }
}

/// The writer answers each operation with its own kind of result; this cannot happen.
fn mismatched_answer() -> Error {
    StorageError::new("the SQLite writer answered a write with another kind of result").into()
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

row_access_via_run!(SqliteTransaction);

impl StorageTransaction for SqliteTransaction {
    async fn fetch_for_update(&self, table: &'static TableDef, key: &Value, _wait: LockWait) -> Result<Option<Row>> {
        // `BEGIN IMMEDIATE` already holds the database's write lock: the row is locked against
        // other writers until the transaction ends, and there is nothing left to wait for (the
        // wait was the store's, when the transaction began).
        self.fetch(table, key).await
    }

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

impl Storage for SqliteStorage {
    type Transaction = SqliteTransaction;

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
        // The table may have existed already, made by a migration: check it fits the struct.
        state.check_schema(&mut conn, table).await
    }

    fn identity(&self) -> Option<usize> {
        Some(self.tables.identity())
    }

    fn locks_records(&self) -> bool {
        false
    }
}
