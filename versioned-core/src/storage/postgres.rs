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

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};

use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row as _, SqlSafeStr, TypeInfo as _, ValueRef as _};

use super::sql::rows::{Bind, OnConnection, SqlConnection, row_access_via_run};
use super::sql::{PostgresDialect, Statements};
use super::{Storage, StorageTransaction};
use crate::entity::TableDef;
use crate::error::{Error, Result, StorageError};
use crate::lock::LockWait;
use crate::store::Store;
use crate::value::{ColumnType, Row, Value};

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

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
    tables: Arc<RwLock<HashMap<&'static str, Arc<Statements>>>>,
    isolation: Isolation,
}

const URL_FORMS: &str = "expected `postgres://user[:password]@host[:port]/database`";

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://user@host:port/database`, or
    /// `postgresql://…`). A URL of another database, an empty or malformed one is
    /// [`Error::Config`].
    pub async fn connect(url: &str) -> Result<Self> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("postgres" | "postgresql")) {
            return Err(Error::config(format!("{url:?} is not a PostgreSQL URL; {URL_FORMS}")));
        }
        let options =
            PgConnectOptions::from_str(url).map_err(|e| Error::config(format!("{url:?}: {e}; {URL_FORMS}")))?;
        Self::connect_with(options).await
    }

    /// Connects with options you built (to set a `search_path`, TLS, a pool size through
    /// [`from_pool`](Self::from_pool) instead, …). Sessions run in UTC.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        let options = options.options([("TimeZone", "UTC")]);
        let pool = PgPoolOptions::new()
            .connect_with(options)
            .await
            .map_err(|e| StorageError::new(format!("cannot connect to PostgreSQL: {e}")))?;
        Ok(Self::from_pool(pool))
    }

    /// A backend over a pool you configured yourself.
    pub fn from_pool(pool: PgPool) -> Self {
        PostgresStorage { pool, tables: Arc::default(), isolation: Isolation::default() }
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

    fn statements(&self, table: &'static TableDef) -> Arc<Statements> {
        // The map only ever gains complete entries, so a poisoned lock still holds valid data.
        if let Some(found) = self.tables.read().unwrap_or_else(PoisonError::into_inner).get(table.name) {
            return Arc::clone(found);
        }
        let mut map = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(table.name).or_insert_with(|| Arc::new(Statements::new(&PostgresDialect, table))))
    }

    async fn run<T>(
        &self,
        table: &'static TableDef,
        op: impl AsyncFnOnce(&mut OnConnection<'_, PgConnection>) -> Result<T>,
    ) -> Result<T> {
        let statements = self.statements(table);
        let mut conn = self.pool.acquire().await.map_err(|e| storage_error(Some(table), e))?;
        op(&mut OnConnection { conn: &mut conn, table, statements: &statements }).await
    }
}

impl Store<PostgresStorage> {
    /// A store over the PostgreSQL database at `url`; see [`PostgresStorage::connect`].
    pub async fn postgres(url: &str) -> Result<Self> {
        Ok(Store::new(PostgresStorage::connect(url).await?))
    }
}

fn query(sql: &Arc<str>) -> Query<'static> {
    sqlx::query(AssertSqlSafe(Arc::clone(sql)).into_sql_str())
}

/// Binds a value as its column's type wants it: a typed `NULL`; JSON, UUIDs and timestamps as
/// text and microseconds, converted by the statement. A value of another type is refused: the
/// server would take its bytes for the column's type.
fn bind<'q>(q: Query<'q>, b: Bind<'_>) -> Result<Query<'q>> {
    use ColumnType as T;
    Ok(match (b.value, b.ty()) {
        (Value::Null, T::Bool) => q.bind(None::<bool>),
        (Value::Null, T::Float32 | T::Float64) => q.bind(None::<f64>),
        (Value::Null, T::Bytes) => q.bind(None::<Vec<u8>>),
        (Value::Null, ty) if ty.is_integer() => q.bind(None::<i64>),
        (Value::Null, _) => q.bind(None::<String>),
        (Value::Bool(v), T::Bool) => q.bind(*v),
        // Into a SMALLINT or INTEGER column the server converts on assignment; the field's type
        // already checked the range.
        (Value::Int(v), ty) if ty.is_integer() => q.bind(*v),
        (Value::Float(v), T::Float32 | T::Float64) => q.bind(*v),
        (Value::Text(v), T::Text | T::Json | T::Uuid) => q.bind(v.clone()),
        (Value::Bytes(v), T::Bytes) => q.bind(v.clone()),
        _ => return Err(b.mismatch()),
    })
}

fn bind_all<'q>(q: Query<'q>, binds: Vec<Bind<'_>>) -> Result<Query<'q>> {
    binds.into_iter().try_fold(q, bind)
}

/// Maps a sqlx error: serialization failures and deadlocks become retryable, a missing column
/// becomes `Error::Decode` naming it, a lock wait that expired `Error::LockTimeout`.
fn storage_error(table: Option<&'static TableDef>, err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // serialization_failure, deadlock_detected
            Some("40001" | "40P01") => return StorageError::retryable(err).into(),
            // undefined_column: `column "x" does not exist`, `column "x" of relation "t" …`
            Some("42703") => {
                let name = db.message().split('"').nth(1).unwrap_or_default();
                if let Some(table) = table
                    && let Some(column) = table.columns.iter().find(|c| c.name == name)
                {
                    return Error::decode(table, column.name, "the table has no such column");
                }
            }
            // undefined_table
            Some("42P01") => {
                if let Some(table) = table {
                    return StorageError::new(format!(
                        "no such table: {} (create it with create_table, or with your migrations): {err}",
                        table.name
                    ))
                    .into();
                }
            }
            _ => {}
        },
        sqlx::Error::PoolTimedOut => return StorageError::retryable(err).into(),
        _ => {}
    }
    StorageError::new(err).into()
}

/// Whether `err` is PostgreSQL's `lock_not_available` (`NOWAIT`, `lock_timeout`).
fn is_lock_not_available(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03"))
}

/// Reads a result row into a [`Row`] by each column's PostgreSQL type, so a value of the wrong
/// type reaches the field's decoder (and becomes `Error::Decode` naming the column).
fn decode_row(table: &'static TableDef, row: &PgRow) -> Result<Row> {
    let mut values = Vec::with_capacity(table.columns.len());
    for (i, column) in table.columns.iter().enumerate() {
        let decode_err = |e: sqlx::Error| Error::decode(table, column.name, e.to_string());
        let raw = row.try_get_raw(i).map_err(decode_err)?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            match raw.type_info().name() {
                "INT2" => Value::Int(row.try_get_unchecked::<i16, _>(i).map_err(decode_err)?.into()),
                "INT4" => Value::Int(row.try_get_unchecked::<i32, _>(i).map_err(decode_err)?.into()),
                "INT8" => Value::Int(row.try_get_unchecked(i).map_err(decode_err)?),
                "FLOAT4" => Value::Float(row.try_get_unchecked::<f32, _>(i).map_err(decode_err)?.into()),
                "FLOAT8" => Value::Float(row.try_get_unchecked(i).map_err(decode_err)?),
                "BOOL" => Value::Bool(row.try_get_unchecked(i).map_err(decode_err)?),
                "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Value::Text(row.try_get_unchecked(i).map_err(decode_err)?),
                "BYTEA" => Value::Bytes(row.try_get_unchecked(i).map_err(decode_err)?),
                other => {
                    return Err(Error::decode(
                        table,
                        column.name,
                        format!("the column's PostgreSQL type {other} cannot hold {}", column.ty.describe()),
                    ));
                }
            }
        };
        values.push(value);
    }
    Ok(Row::new(values))
}

impl SqlConnection for PgConnection {
    async fn execute<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        values: Vec<Bind<'a>>,
    ) -> Result<u64> {
        let done = bind_all(query(sql), values)?.execute(self).await.map_err(|e| storage_error(Some(table), e))?;
        Ok(done.rows_affected())
    }

    async fn fetch_row<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        values: Vec<Bind<'a>>,
    ) -> Result<Option<Row>> {
        let row = bind_all(query(sql), values)?.fetch_optional(self).await.map_err(|e| {
            if is_lock_not_available(&e) {
                // Only a locking read waits for locks: the key is its one bound value.
                return Error::LockTimeout { table: Some(table.name), key: None };
            }
            storage_error(Some(table), e)
        })?;
        row.map(|row| decode_row(table, &row)).transpose()
    }

    async fn fetch_int<'a>(
        &'a mut self,
        table: &'static TableDef,
        sql: &'a Arc<str>,
        values: Vec<Bind<'a>>,
    ) -> Result<Option<i64>> {
        let row =
            bind_all(query(sql), values)?.fetch_optional(self).await.map_err(|e| storage_error(Some(table), e))?;
        row.map(|row| {
            row.try_get::<i64, _>(0).map_err(|e| Error::decode(table, table.version_column().name, e.to_string()))
        })
        .transpose()
    }
}

row_access_via_run!(PostgresStorage);

/// A transaction of the [`PostgresStorage`]: one connection inside `BEGIN`, at the storage's
/// [`Isolation`]. Dropped without commit, it is rolled back.
#[derive(Debug)]
pub struct PostgresTransaction {
    storage: PostgresStorage,
    state: tokio::sync::Mutex<TxState>,
}

#[derive(Debug)]
struct TxState {
    tx: sqlx::Transaction<'static, Postgres>,
    /// The `lock_timeout` this transaction last set (`None`: the server's).
    lock_timeout: Option<LockWait>,
}

impl PostgresTransaction {
    async fn run<T>(
        &self,
        table: &'static TableDef,
        op: impl AsyncFnOnce(&mut OnConnection<'_, PgConnection>) -> Result<T>,
    ) -> Result<T> {
        let statements = self.storage.statements(table);
        let mut state = self.state.lock().await;
        op(&mut OnConnection { conn: &mut state.tx, table, statements: &statements }).await
    }
}

row_access_via_run!(PostgresTransaction);

impl StorageTransaction for PostgresTransaction {
    async fn fetch_for_update(&self, table: &'static TableDef, key: &Value, wait: LockWait) -> Result<Option<Row>> {
        let statements = self.storage.statements(table);
        let mut state = self.state.lock().await;
        // `lock_timeout` bounds every lock wait of the rest of the transaction; set it only when
        // it changes. `NOWAIT` needs none.
        let timeout = match wait {
            LockWait::Forever => Some("0".to_owned()),
            LockWait::Timeout(limit) => Some(format!("{}ms", limit.as_millis().max(1))),
            LockWait::NoWait => None,
        };
        if let Some(timeout) = timeout
            && state.lock_timeout != Some(wait)
        {
            sqlx::query("SELECT set_config('lock_timeout', $1, true)")
                .bind(timeout)
                .execute(&mut *state.tx)
                .await
                .map_err(|e| storage_error(Some(table), e))?;
            state.lock_timeout = Some(wait);
        }
        let nowait = wait == LockWait::NoWait;
        let on = &mut OnConnection { conn: &mut *state.tx, table, statements: &statements };
        on.fetch_for_update(key, nowait).await.map_err(|err| match err {
            Error::LockTimeout { table, .. } => Error::LockTimeout { table, key: Some(key.clone()) },
            other => other,
        })
    }

    async fn commit(self) -> Result<()> {
        self.state.into_inner().tx.commit().await.map_err(|e| storage_error(None, e))
    }

    async fn rollback(self) -> Result<()> {
        self.state.into_inner().tx.rollback().await.map_err(|e| storage_error(None, e))
    }
}

impl Storage for PostgresStorage {
    type Transaction = PostgresTransaction;

    async fn begin(&self) -> Result<PostgresTransaction> {
        let tx = self.pool.begin_with(self.isolation.begin()).await.map_err(|e| storage_error(None, e))?;
        Ok(PostgresTransaction {
            storage: self.clone(),
            state: tokio::sync::Mutex::new(TxState { tx, lock_timeout: None }),
        })
    }

    async fn create_table(&self, table: &'static TableDef) -> Result<()> {
        let statements = self.statements(table);
        query(&statements.create).execute(&self.pool).await.map_err(|e| storage_error(Some(table), e))?;
        Ok(())
    }

    fn identity(&self) -> Option<usize> {
        Some(Arc::as_ptr(&self.tables) as *const () as usize)
    }
}
