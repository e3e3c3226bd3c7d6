//! The PostgreSQL backend, over sqlx (feature `postgres`).
//!
//! Statements come from the shared SQL layer with the PostgreSQL dialect: `$n` placeholders,
//! native column types (`BIGINT`, `DOUBLE PRECISION`, `BYTEA`, `JSONB`, `UUID`, `TIMESTAMPTZ`, …),
//! `ON CONFLICT` upserts with `RETURNING`. A checked write is one statement; when its check fails,
//! the stored row is read afterwards by a second statement on the same connection (inside the
//! same transaction when there is one), to describe the conflict.
//!
//! Transactions run at `READ COMMITTED` by default (PostgreSQL's own default), which is enough
//! for every checked write: an `UPDATE … WHERE version = ?` that waited for another writer
//! re-checks the version of the row that writer committed. [`Isolation`] chooses another level.
//! `get_for_update` is `SELECT … FOR UPDATE`, locking that row only; its wait is bounded by the
//! store's [`LockWait`] (`lock_timeout`, or `NOWAIT`), and expiry is [`Error::LockTimeout`].
//! Serialization failures (`40001`) and deadlocks (`40P01`) are retryable storage errors.
//!
//! A table is checked on the first use of each struct (one query on `information_schema.columns`,
//! per struct and storage, before anything is read or written): a missing column, or one whose
//! type cannot hold its field, is [`Error::Decode`] naming it, with the `ALTER TABLE` that fixes
//! it.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row as _, SqlSafeStr, TypeInfo as _, ValueRef as _};

use super::lent::SqlBackend;
use super::select::{Condition, RowLock, Select};
use super::sql;
use super::sql::driver::{self, Conn, Driver, Meaning, Query as DriverQuery};
use super::sql::group_commit::{Done, GroupCommit, Write};
use super::sql::rows::{Bind, OnConnection};
use super::sql::schema::{self, Server};
use super::sql::server_transaction::ServerTransaction;
use super::sql::{Mappings, Statements};
use super::{Capabilities, Lends, LockingRead, RowAccess, SavepointStep, Storage, StorageTransaction, WriteOutcome};
use crate::entity::TableDef;
use crate::error::{Error, Result, StorageError};
use crate::lock::LockWait;
use crate::revisions::HistoryRow;
use crate::store::Store;
use crate::value::{Row, Value};

mod dialect;
mod group_commit;
mod replicas;

use dialect::PostgresDialect;
use replicas::{Outcome, Replicas};

/// PostgreSQL's SQL dialect, for [`migrations`](crate::migrations).
pub(crate) const DIALECT: &dyn super::sql::Dialect = &PostgresDialect;

/// The isolation level of a PostgreSQL transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// PostgreSQL's default. Checked writes are safe at this level: the version check of an
    /// `UPDATE` is re-evaluated on the newest committed row.
    #[default]
    ReadCommitted,
    /// Every read of the transaction sees one snapshot; a write to a row changed since then fails
    /// with a serialization error (retryable).
    RepeatableRead,
    /// Transactions behave as if run one at a time; PostgreSQL refuses (retryably) those it
    /// cannot order.
    Serializable,
}

impl Isolation {
    fn begin(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
            Isolation::RepeatableRead => "BEGIN ISOLATION LEVEL REPEATABLE READ",
            Isolation::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        }
    }
}

/// The PostgreSQL backend: a sqlx pool and the statements of every table it has seen.
///
/// ```no_run
/// # async fn demo() -> versioned_core::Result<()> {
/// use versioned_core::Store;
///
/// let store = Store::postgres("postgres://postgres@127.0.0.1:5432/test").await?;
/// # let _ = store;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStorage {
    pool: PgPool,
    mappings: Mappings<PgTable>,
    isolation: Isolation,
    /// The lock wait the pool's sessions were set up with (`None`: unknown, a pool of yours).
    session_lock_wait: Option<LockWait>,
    /// Streaming read replicas, where reads outside transactions go.
    replicas: Option<Arc<Replicas>>,
    /// The writer that merges the checked writes of many tasks; `None`: turned off.
    writes: Option<GroupCommit<PostgresStorage>>,
}

/// The `lock_timeout` setting for `wait`; `None` for `NoWait`, which the statement says itself.
fn session_lock_timeout(wait: LockWait) -> Option<String> {
    match wait {
        LockWait::Forever => Some("0".to_owned()),
        LockWait::Timeout(limit) => Some(format!("{}ms", limit.as_millis().max(1))),
        LockWait::NoWait => None,
    }
}

const URL_FORMS: &str = "expected `postgres://user[:password]@host[:port]/database`";

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://user@host:port/database`, or
    /// `postgresql://…`). A URL of another database, an empty or malformed one is
    /// [`Error::Config`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(Self::url_options(url)?).await
    }

    /// The connect options of a PostgreSQL URL; any other is [`Error::Config`].
    pub(crate) fn url_options(url: &str) -> Result<PgConnectOptions> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("postgres" | "postgresql")) {
            return Err(Error::config(format!("{url:?} is not a PostgreSQL URL; {URL_FORMS}")));
        }
        PgConnectOptions::from_str(url).map_err(|e| Error::config(format!("{url:?}: {e}; {URL_FORMS}")))
    }

    /// Connects with options you built (to set a `search_path`, TLS, …). Sessions run in UTC.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        Self::connect_with_pool(options, PgPoolOptions::new()).await
    }

    /// [`connect_with`](Self::connect_with), with a pool you configured (its size, timeouts).
    pub async fn connect_with_pool(options: PgConnectOptions, pool: PgPoolOptions) -> Result<Self> {
        Self::open(options, pool, LockWait::default()).await
    }

    /// Connects, with the sessions' `lock_timeout` set for `wait` (the store's lock wait), so that
    /// a transaction sets it only for another wait (one round trip saved on every
    /// `get_for_update` and `update`). `NoWait`, which each statement says itself, leaves the
    /// sessions at the default wait.
    pub(crate) async fn open(options: PgConnectOptions, pool: PgPoolOptions, wait: LockWait) -> Result<Self> {
        let wait = if wait == LockWait::NoWait { LockWait::default() } else { wait };
        let session_wait = session_lock_timeout(wait).unwrap_or_default();
        let options = options.options([("TimeZone", "UTC"), ("lock_timeout", session_wait.as_str())]);
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|e| StorageError::new(format!("cannot connect to PostgreSQL: {e}")))?;
        Ok(PostgresStorage { session_lock_wait: Some(wait), ..Self::from_pool(pool) })
    }

    /// A backend over a pool you configured yourself.
    pub fn from_pool(pool: PgPool) -> Self {
        PostgresStorage {
            pool,
            mappings: Mappings::default(),
            isolation: Isolation::default(),
            session_lock_wait: None,
            replicas: None,
            writes: Some(GroupCommit::default()),
        }
    }

    /// This backend with group commit on (the default) or off. On, the checked updates, inserts
    /// and checked deletes that many tasks make at once outside transactions share statements:
    /// those of one table go in one `UPDATE … FROM (VALUES …)` (`INSERT …`, `DELETE …`), each
    /// with its own check and outcome, two statements in flight at a time. A write while no other
    /// runs goes alone, as by hand. Off, every write is its own statement on its own connection.
    ///
    /// A write of a batch waits for the batch: one whose row is locked by a transaction holds
    /// back the writes batched with it until the lock is released or `lock_timeout` expires.
    /// Turn it off where a few slow writes must not delay others.
    pub fn with_group_commit(mut self, on: bool) -> Self {
        self.writes = on.then(GroupCommit::default);
        self
    }

    /// This backend with streaming read replicas of its database (pools of yours: give them a
    /// short `acquire_timeout`, so that a replica that is down is passed over quickly). Reads
    /// outside transactions (`get`, `get_many`, queries without a lock, counts) go to a replica,
    /// in turn; writes, transactions and locking reads go to the primary. A replica that fails is
    /// passed over for a second, then tried again. See [`read_your_writes`](Self::read_your_writes)
    /// for reads that must see the store's own writes, and the README's "Scaling out".
    pub fn with_replicas(mut self, replicas: impl IntoIterator<Item = PgPool>) -> Self {
        let read_your_writes = self.replicas.as_ref().and_then(|r| r.read_your_writes);
        self.replicas = Some(Arc::new(Replicas::new(replicas.into_iter().collect(), read_your_writes)));
        self
    }

    /// [`with_replicas`](Self::with_replicas), connecting to each replica with `options` (in UTC,
    /// as the primary's sessions; a pool of up to 10 connections that gives up on one after a
    /// second). Connections are made when first needed: a replica that is down now is no error.
    pub fn connect_replicas(self, options: impl IntoIterator<Item = PgConnectOptions>) -> Self {
        let pools = options.into_iter().map(|options| {
            PgPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(std::time::Duration::from_secs(1))
                .connect_lazy_with(options.options([("TimeZone", "UTC")]))
        });
        self.with_replicas(pools.collect::<Vec<_>>())
    }

    /// Read-your-writes for a store with replicas: a read waits until the replica has replayed
    /// the store's last write (its own writes and transactions; not those made on a connection you
    /// lend with [`Store::on`](crate::Store::on)), up to `bound`, then reads the primary instead.
    /// It costs one more statement per write (`pg_current_wal_insert_lsn()`) and one per replica read
    /// (`pg_last_wal_replay_lsn()`). Without it, a read may return a version older than one the
    /// store just wrote; the version check of the next write still refuses a stale copy.
    pub fn read_your_writes(mut self, bound: std::time::Duration) -> Self {
        let pools: Vec<PgPool> = self.replicas.as_ref().map(|r| r.pools().cloned().collect()).unwrap_or_default();
        self.replicas = Some(Arc::new(Replicas::new(pools, Some(bound))));
        self
    }

    /// This backend, beginning its transactions at `isolation`.
    pub fn with_isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// The underlying pool, for your own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn table(&self, table: &'static TableDef) -> Arc<PgTable> {
        pg_table(&self.mappings, table)
    }

    /// Runs a checked write through group commit, or on a connection of its own when group
    /// commit is off or read-your-writes must note every write's WAL position.
    async fn write(&self, table: &'static TableDef, op: Write) -> Result<Done> {
        let noting = self.replicas.as_ref().is_some_and(|r| r.read_your_writes.is_some());
        match &self.writes {
            Some(writes) if !noting => writes.write(&self.pool, &self.mappings, table, op).await,
            _ => self.run(table, async |c| op.execute(c).await).await,
        }
    }

    async fn run<T>(
        &self,
        table: &'static TableDef,
        op: impl AsyncFnOnce(&mut OnConnection<'_, Conn<'_, Postgres>>) -> Result<T>,
    ) -> Result<T> {
        let state = self.table(table);
        let mut conn = self.pool.acquire().await.map_err(|e| storage_error(Some(table), e))?;
        state.check(&mut conn, table).await?;
        let result = op(&mut OnConnection { conn: &mut Conn(&mut *conn), table, statements: &state.statements }).await;
        if let Some(replicas) = self.replicas.as_ref().filter(|r| r.read_your_writes.is_some()) {
            note_write(replicas, &mut conn).await;
        }
        result
    }

    /// A read outside a transaction: on a replica when there are any and one answers, else on
    /// the primary.
    async fn read<T>(
        &self,
        table: &'static TableDef,
        op: impl AsyncFnOnce(&mut OnConnection<'_, Conn<'_, Postgres>>) -> Result<T> + Clone,
    ) -> Result<T> {
        let Some(replicas) = &self.replicas else {
            return self.primary(table, op).await;
        };
        match replicas.read(table, &self.table(table), op.clone()).await? {
            Outcome::Read(found) => Ok(found),
            Outcome::Primary => self.primary(table, op).await,
        }
    }

    /// A read on the primary.
    async fn primary<T>(
        &self,
        table: &'static TableDef,
        op: impl AsyncFnOnce(&mut OnConnection<'_, Conn<'_, Postgres>>) -> Result<T>,
    ) -> Result<T> {
        let state = self.table(table);
        let mut conn = self.pool.acquire().await.map_err(|e| storage_error(Some(table), e))?;
        state.check(&mut conn, table).await?;
        op(&mut OnConnection { conn: &mut Conn(&mut *conn), table, statements: &state.statements }).await
    }
}

/// The state of `table`'s mapping among `mappings`, made the first time it is asked for.
fn pg_table(mappings: &Mappings<PgTable>, table: &'static TableDef) -> Arc<PgTable> {
    mappings.get(table, || PgTable {
        statements: Statements::new(&PostgresDialect, table),
        checked: AtomicBool::new(false),
        binary_text_keys: AtomicBool::new(false),
    })
}

/// What the storage knows of one struct mapping: its statements, and whether its table's schema
/// was checked.
#[derive(Debug)]
pub(crate) struct PgTable {
    statements: Statements,
    checked: AtomicBool,
    /// Whether the key column's collation is deterministic (texts equal only when their bytes
    /// are), so that text keys can share a group commit statement; known once the schema is
    /// checked, false until then.
    binary_text_keys: AtomicBool,
}

impl PgTable {
    /// Checks, once, that the table's columns hold the struct ([`schema::check`]): one query of
    /// the catalogue on `conn` (inside its transaction), before the struct's first statement.
    async fn check(&self, conn: &mut sqlx::PgConnection, table: &'static TableDef) -> Result<()> {
        if self.checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let columns = columns(conn, table).await?;
        self.compare(table, columns)
    }

    /// [`check`](Self::check) in a transaction: a catalogue query the server failed aborts it, as
    /// any statement's failure does; a mismatch (found by us, not the server) leaves it usable.
    async fn check_in(&self, tx: &mut ServerTransaction<Postgres>, table: &'static TableDef) -> Result<()> {
        if self.checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let columns = columns(tx.connection(), table).await;
        tx.note(&columns, |_| Some(false));
        self.compare(table, columns?)
    }

    fn compare(&self, table: &'static TableDef, columns: Vec<schema::PostgresColumn>) -> Result<()> {
        let key = table.key_column().name;
        let deterministic = columns.iter().any(|c| c.0 == key && c.5);
        schema::check(Server::Postgres, &PostgresDialect, table, &schema::postgres_declared(columns))?;
        self.binary_text_keys.store(deterministic, Ordering::Release);
        self.checked.store(true, Ordering::Release);
        Ok(())
    }
}

/// The table's columns, as the catalogue declares them.
async fn columns(conn: &mut sqlx::PgConnection, table: &'static TableDef) -> Result<Vec<schema::PostgresColumn>> {
    sqlx::query_as(schema::POSTGRES_COLUMNS)
        .bind(table.name)
        .fetch_all(conn)
        .await
        .map_err(|e| storage_error(Some(table), e))
}

impl Store<PostgresStorage> {
    /// A store over the PostgreSQL database at `url`; see [`PostgresStorage::connect`].
    pub async fn postgres(url: &str) -> Result<Self> {
        Ok(Store::new(PostgresStorage::connect(url).await?))
    }
}

/// PostgreSQL's errors that mean something of their own: serialization failures and deadlocks
/// are retryable, a missing column is `Error::Decode` naming it, a lock wait that expired is
/// `Error::LockTimeout`.
fn database_error(table: Option<&'static TableDef>, db: &dyn sqlx::error::DatabaseError) -> Option<Meaning> {
    match db.code().as_deref() {
        // serialization_failure, deadlock_detected
        Some("40001" | "40P01") => Some(Meaning::Retryable),
        // lock_not_available: `NOWAIT`, or `lock_timeout` expired
        Some("55P03") => Some(Meaning::Is(Error::LockTimeout { table: table.map(|t| t.name), key: None })),
        // undefined_column: `column "x" does not exist`, `column "x" of relation "t" …`
        Some("42703") => driver::missing_column(table, db.message().split('"').nth(1)),
        Some("42P01") => driver::missing_table(table, db.message()),
        _ => None,
    }
}

/// A sqlx error of this backend as ours.
fn storage_error(table: Option<&'static TableDef>, err: sqlx::Error) -> Error {
    driver::error::<Postgres>(table, err)
}

impl Driver for Postgres {
    fn bind<'q>(query: DriverQuery<'q, Self>, bind: Bind<'_>) -> Result<DriverQuery<'q, Self>> {
        driver::bind_strict(query, bind)
    }

    fn decode_value(row: &PgRow, i: usize) -> std::result::Result<Value, String> {
        let get = |e: sqlx::Error| e.to_string();
        let raw = row.try_get_raw(i).map_err(get)?;
        if raw.is_null() {
            return Ok(Value::Null);
        }
        Ok(match raw.type_info().name() {
            "INT2" => Value::Int(row.try_get_unchecked::<i16, _>(i).map_err(get)?.into()),
            "INT4" => Value::Int(row.try_get_unchecked::<i32, _>(i).map_err(get)?.into()),
            "INT8" => Value::Int(row.try_get_unchecked(i).map_err(get)?),
            "FLOAT4" => Value::Float(row.try_get_unchecked::<f32, _>(i).map_err(get)?.into()),
            "FLOAT8" => Value::Float(row.try_get_unchecked(i).map_err(get)?),
            "BOOL" => Value::Bool(row.try_get_unchecked(i).map_err(get)?),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Value::Text(row.try_get_unchecked(i).map_err(get)?),
            "BYTEA" => Value::Bytes(row.try_get_unchecked(i).map_err(get)?),
            other => return Err(format!("the column's PostgreSQL type {other} is not one versioned reads")),
        })
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    fn database_error(table: Option<&'static TableDef>, db: &dyn sqlx::error::DatabaseError) -> Option<Meaning> {
        database_error(table, db)
    }
}

/// Notes the primary's WAL position after a write of the store, for read-your-writes. When it
/// cannot be read, reads go to the primary for a while: slower, never stale.
async fn note_write(replicas: &Replicas, conn: &mut sqlx::PgConnection) {
    // The insert position: past every record written so far, whatever `synchronous_commit` says.
    let lsn: std::result::Result<String, _> =
        sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text").fetch_one(conn).await;
    match lsn {
        Ok(lsn) => replicas.wrote(&lsn),
        Err(err) => {
            tracing::warn!(error = %err, "could not read the primary's WAL position after a write");
            replicas.unknown_write();
        }
    }
}

impl RowAccess for PostgresStorage {
    async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        self.read(table, async |c| c.fetch(key).await).await
    }

    /// On the primary: a replica may lag.
    async fn fetch_current(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        self.primary(table, async |c| c.fetch(key).await).await
    }

    /// A locking query runs on the primary (a replica locks nothing); any other may run on a
    /// replica.
    async fn select(&self, table: &'static TableDef, select: &Select) -> Result<Vec<Row>> {
        match select.lock {
            Some(_) => self.run(table, async |c| c.select(select).await).await,
            None => self.read(table, async |c| c.select(select).await).await,
        }
    }

    async fn count(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        self.read(table, async |c| c.count(condition).await).await
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
        self.write(table, Write::Insert(row)).await?.inserted::<Self>()
    }

    async fn update(&self, table: &'static TableDef, row: Row, expected: u64) -> Result<WriteOutcome> {
        self.write(table, Write::Update(row, expected)).await?.written::<Self>()
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
        self.write(table, Write::Delete(key.clone(), expected)).await?.written::<Self>()
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

/// A transaction of the [`PostgresStorage`]: one connection inside `BEGIN`, at the storage's
/// [`Isolation`]. Dropped without commit (at any point, `BEGIN` included), its connection is
/// closed, which rolls it back.
#[derive(Debug)]
pub struct PostgresTransaction {
    storage: PostgresStorage,
    state: tokio::sync::Mutex<ServerTransaction<Postgres>>,
}

impl PostgresStorage {
    async fn begin_with(&self, begin: &'static str) -> Result<PostgresTransaction> {
        // `lock_timeout` is set with `set_config(…, true)`: it ends with the transaction.
        let state = ServerTransaction::begin(&self.pool, begin, self.session_lock_wait, false).await?;
        Ok(PostgresTransaction { storage: self.clone(), state: tokio::sync::Mutex::new(state) })
    }
}

impl PostgresTransaction {
    async fn run<T>(
        &self,
        table: &'static TableDef,
        op: impl AsyncFnOnce(&mut OnConnection<'_, Conn<'_, Postgres>>) -> Result<T>,
    ) -> Result<T> {
        let table_state = self.storage.table(table);
        let mut state = self.state.lock().await;
        state.usable()?;
        table_state.check_in(&mut state, table).await?;
        let statements = &table_state.statements;
        let on = &mut OnConnection { conn: &mut Conn::<Postgres>(state.connection()), table, statements };
        let result = op(on).await;
        // PostgreSQL aborts the transaction (or its innermost savepoint) on any error.
        state.note(&result, |_| Some(false));
        result
    }
}

impl PostgresTransaction {
    /// Runs `op`, a locking read, once the transaction's lock wait is `wait`: `lock_timeout`
    /// bounds every lock wait of the rest of the transaction, so it is set only when it changes
    /// (`NOWAIT` needs none).
    async fn run_locking<T>(
        &self,
        table: &'static TableDef,
        wait: LockWait,
        op: impl AsyncFnOnce(&mut OnConnection<'_, Conn<'_, Postgres>>) -> Result<T>,
    ) -> Result<T> {
        let table_state = self.storage.table(table);
        let mut state = self.state.lock().await;
        state.usable()?;
        table_state.check_in(&mut state, table).await?;
        let statements = &table_state.statements;
        if let Some(timeout) = session_lock_timeout(wait)
            && state.lock_wait != Some(wait)
        {
            state.lock_wait = None; // unknown until the server answers
            let set = sqlx::query("SELECT set_config('lock_timeout', $1, true)")
                .bind(timeout)
                .execute(state.connection())
                .await
                .map(drop)
                .map_err(|e| storage_error(Some(table), e));
            state.note(&set, |_| Some(false));
            set?;
            state.lock_wait = Some(wait);
        }
        let on = &mut OnConnection { conn: &mut Conn::<Postgres>(state.connection()), table, statements };
        let result = op(on).await;
        state.note(&result, |_| Some(false));
        result
    }
}

impl RowAccess for PostgresTransaction {
    async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        self.run(table, async |c| c.fetch(key).await).await
    }

    async fn select(&self, table: &'static TableDef, select: &Select) -> Result<Vec<Row>> {
        match select.lock {
            Some(RowLock::Wait(wait)) => self.run_locking(table, wait, async |c| c.select(select).await).await,
            _ => self.run(table, async |c| c.select(select).await).await,
        }
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

impl LockingRead for PostgresTransaction {
    async fn fetch_for_update(&self, table: &'static TableDef, key: &Value, wait: LockWait) -> Result<Option<Row>> {
        self.run_locking(table, wait, async |c| c.fetch_for_update(key, wait == LockWait::NoWait).await).await
    }
}

impl StorageTransaction for PostgresTransaction {
    async fn savepoint(&self, step: SavepointStep) -> Result<()> {
        let mut state = self.state.lock().await;
        let done = driver::savepoint::<Postgres>(state.connection(), step).await;
        if matches!(step, SavepointStep::RollBack { .. }) {
            // Rolling back also undoes a `lock_timeout` set since the savepoint.
            state.lock_wait = None;
        }
        match &done {
            Ok(()) => state.stepped(step),
            Err(_) => state.note(&done, |_| Some(false)),
        }
        done
    }

    async fn commit(self) -> Result<()> {
        let PostgresTransaction { storage, state } = self;
        let mut done = state.into_inner().finish_keeping("COMMIT").await?;
        if let Some(replicas) = storage.replicas.as_ref().filter(|r| r.read_your_writes.is_some()) {
            // On the transaction's own connection, after its commit: at or past the commit.
            note_write(replicas, done.connection()).await;
        }
        Ok(())
    }

    async fn rollback(self) -> Result<()> {
        self.state.into_inner().finish("ROLLBACK").await
    }
}

impl Lends for PostgresStorage {
    type Database = Postgres;

    fn pool(&self) -> &sqlx::Pool<Postgres> {
        &self.pool
    }

    fn error(err: sqlx::Error) -> Error {
        storage_error(None, err)
    }
}

impl SqlBackend for PostgresStorage {
    type Table = PgTable;

    fn table_state(&self, table: &'static TableDef) -> Arc<PgTable> {
        self.table(table)
    }

    async fn check(state: &PgTable, conn: &mut sqlx::PgConnection, table: &'static TableDef) -> Result<()> {
        state.check(conn, table).await
    }

    fn statements(state: &PgTable) -> &Statements {
        &state.statements
    }
}

impl Storage for PostgresStorage {
    async fn history(&self, table: &'static TableDef, key: &Value, version: Option<u64>) -> Result<Vec<HistoryRow>> {
        self.read(table, async |c| c.history(key, version).await).await
    }

    type Transaction = PostgresTransaction;

    async fn begin(&self) -> Result<PostgresTransaction> {
        self.begin_with(self.isolation.begin()).await
    }

    async fn begin_read_only(&self) -> Result<PostgresTransaction> {
        // One snapshot for the whole transaction; a read-only one is never refused for it.
        self.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await
    }

    async fn create_table(&self, table: &'static TableDef) -> Result<()> {
        let statements = &self.table(table).statements;
        let create = sqlx::query(AssertSqlSafe(Arc::clone(&statements.create)).into_sql_str());
        create.execute(&self.pool).await.map_err(|e| storage_error(Some(table), e))?;
        for index in &statements.indexes {
            let create = sqlx::query(AssertSqlSafe(Arc::clone(index)).into_sql_str());
            create.execute(&self.pool).await.map_err(|e| storage_error(Some(table), e))?;
        }
        let mut conn = self.pool.acquire().await.map_err(|e| storage_error(Some(table), e))?;
        if let Some(history) = &statements.history {
            sql::history::create::<Postgres>(&mut conn, table, history, |_| false).await?;
        }
        if let Some(replicas) = self.replicas.as_ref().filter(|r| r.read_your_writes.is_some()) {
            // The table is a write too: reads wait for a replica to have it.
            note_write(replicas, &mut conn).await;
        }
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with_identity(self.mappings.identity())
    }
}
