//! [`AnyStorage`]: a backend chosen at run time from a URL, like sqlx's `AnyPool`.

#[cfg(feature = "etcd")]
use super::etcd::{EtcdOptions, EtcdStorage, EtcdTransaction};
use super::memory::{MemoryStorage, MemoryTransaction};
#[cfg(feature = "mysql")]
use super::mysql::{MysqlStorage, MysqlTransaction};
use super::options::ConnectOptions;
#[cfg(feature = "postgres")]
use super::postgres::{PostgresStorage, PostgresTransaction};
use super::select::{Condition, Select};
#[cfg(feature = "sqlite")]
use super::sqlite::{SqliteStorage, SqliteTransaction};
use super::{HistoryRow, LockingRead, RowAccess, SavepointStep, Storage, StorageTransaction, WriteOutcome};
use crate::entity::{Entity, TableDef};
use crate::error::{Error, Result};
use crate::lock::LockWait;
use crate::storage::Capabilities;
use crate::store::Store;
use crate::value::{Row, Value};

/// Any of the backends compiled in, chosen by [`Store::connect`]'s URL.
///
/// ```no_run
/// # async fn demo() -> versioned_core::Result<()> {
/// use versioned_core::Store;
///
/// let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
/// let store = Store::connect(&url).await?; // sqlite:…, postgres://…, or memory:
/// # let _ = store;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyStorage {
    /// The in-memory reference backend (`memory:`).
    Memory(MemoryStorage),
    /// SQLite (`sqlite:…`).
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteStorage),
    /// PostgreSQL (`postgres://…`).
    #[cfg(feature = "postgres")]
    Postgres(PostgresStorage),
    /// MySQL or MariaDB (`mysql://…`, `mariadb://…`).
    #[cfg(feature = "mysql")]
    Mysql(MysqlStorage),
    /// An etcd cluster (`etcd://host:port,host:port`).
    #[cfg(feature = "etcd")]
    Etcd(EtcdStorage),
}

/// A transaction of an [`AnyStorage`].
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyTransaction {
    /// Of the memory backend.
    Memory(MemoryTransaction),
    /// Of SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteTransaction),
    /// Of PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(PostgresTransaction),
    /// Of MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    Mysql(MysqlTransaction),
    /// Of etcd.
    #[cfg(feature = "etcd")]
    Etcd(EtcdTransaction),
}

impl Store<AnyStorage> {
    /// A store over the backend `url` names: `sqlite:…` (feature `sqlite`), `postgres://…` or
    /// `postgresql://…` (feature `postgres`), `mysql://…` or `mariadb://…` (feature `mysql`),
    /// `etcd://host:port,host:port?prefix=app/` (feature `etcd`: every member, and optionally the
    /// key prefix), or `memory:`. Any other URL is [`Error::Config`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, ConnectOptions::default()).await
    }

    /// [`connect`](Self::connect), with `options` set: the schema, the pool's size, the lock
    /// wait, and the settings of one backend (SQLite's durability, PostgreSQL's isolation).
    /// A schema for a backend that has none (SQLite, memory) is [`Error::Config`].
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Self> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme.to_ascii_lowercase());
        let no_schema = |backend: &str| match &options.schema {
            Some(schema) => Err(Error::config(format!(
                "{backend} has no schemas, so schema {schema:?} cannot be chosen; name the database in the URL"
            ))),
            None => Ok(()),
        };
        let storage = match scheme.as_deref() {
            Some("memory") => {
                no_schema("the memory backend")?;
                AnyStorage::Memory(MemoryStorage::new())
            }
            #[cfg(feature = "sqlite")]
            Some("sqlite") => {
                no_schema("SQLite")?;
                let pool = options.pool(sqlx::sqlite::SqlitePoolOptions::new());
                AnyStorage::Sqlite(SqliteStorage::connect_with_pool(url, options.durability, pool).await?)
            }
            #[cfg(feature = "postgres")]
            Some("postgres" | "postgresql") => {
                let mut connect = PostgresStorage::url_options(url)?;
                if let Some(schema) = &options.schema {
                    // Quoted: one schema, its name as written (no list, no case folding).
                    let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
                    connect = connect.options([("search_path", quoted.as_str())]);
                }
                let pool = options.pool(sqlx::postgres::PgPoolOptions::new());
                let storage = PostgresStorage::open(connect, pool, options.lock_wait.unwrap_or_default()).await?;
                AnyStorage::Postgres(storage.with_isolation(options.isolation))
            }
            #[cfg(feature = "mysql")]
            Some("mysql" | "mariadb") => {
                let mut connect = MysqlStorage::url_options(url)?;
                if let Some(schema) = &options.schema {
                    connect = connect.database(schema);
                }
                let pool = options.pool(sqlx::mysql::MySqlPoolOptions::new());
                AnyStorage::Mysql(MysqlStorage::open(connect, pool, options.lock_wait.unwrap_or_default()).await?)
            }
            #[cfg(feature = "etcd")]
            Some("etcd") => {
                let mut etcd = etcd_options(url)?;
                if options.schema.is_some() && url.contains("prefix=") {
                    return Err(Error::config(format!(
                        "{url:?} names a key prefix and the options a schema: say where the tables are once"
                    )));
                }
                if let Some(schema) = &options.schema {
                    etcd = etcd.prefix(format!("{}/", schema.trim_end_matches('/')));
                }
                AnyStorage::Etcd(EtcdStorage::connect(etcd).await?)
            }
            _ => {
                return Err(Error::config(format!(
                    "{url:?} names no backend compiled in; expected {}",
                    [
                        "`memory:`",
                        #[cfg(feature = "sqlite")]
                        "`sqlite://path.db` or `sqlite::memory:`",
                        #[cfg(feature = "postgres")]
                        "`postgres://user@host/database`",
                        #[cfg(feature = "mysql")]
                        "`mysql://user@host/database`",
                        #[cfg(feature = "etcd")]
                        "`etcd://host:port,host:port`",
                    ]
                    .join(", ")
                )));
            }
        };
        let store = Store::new(storage);
        Ok(match options.lock_wait {
            Some(wait) => store.with_lock_wait(wait),
            None => store,
        })
    }
}

/// The options an `etcd://host:port,host:port?prefix=p/` URL gives.
#[cfg(feature = "etcd")]
fn etcd_options(url: &str) -> Result<EtcdOptions> {
    let rest = url.get("etcd://".len()..).unwrap_or_default();
    let (members, query) = rest.split_once('?').unwrap_or((rest, ""));
    let endpoints: Vec<String> =
        members.split(',').filter(|m| !m.is_empty()).map(|m| format!("http://{}", m.trim_end_matches('/'))).collect();
    let mut options = EtcdOptions::from_list(&endpoints.join(","))
        .ok_or_else(|| Error::config(format!("{url:?} names no etcd member; expected etcd://host:port,host:port")))?;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("prefix", prefix)) => options = options.prefix(prefix),
            _ => return Err(Error::config(format!("{url:?}: unknown parameter {pair:?}; expected prefix=…"))),
        }
    }
    Ok(options)
}

/// Runs `$call` on whichever backend `$self` holds, as `$s`.
macro_rules! each {
    ($self:expr, $ty:ident, $s:ident => $call:expr) => {
        match $self {
            $ty::Memory($s) => $call,
            #[cfg(feature = "sqlite")]
            $ty::Sqlite($s) => $call,
            #[cfg(feature = "postgres")]
            $ty::Postgres($s) => $call,
            #[cfg(feature = "mysql")]
            $ty::Mysql($s) => $call,
            #[cfg(feature = "etcd")]
            $ty::Etcd($s) => $call,
        }
    };
}

impl RowAccess for AnyStorage {
    async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        each!(self, AnyStorage, s => s.fetch(table, key).await)
    }

    async fn fetch_current(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        each!(self, AnyStorage, s => s.fetch_current(table, key).await)
    }

    async fn select(&self, table: &'static TableDef, select: &Select) -> Result<Vec<Row>> {
        each!(self, AnyStorage, s => s.select(table, select).await)
    }

    async fn count(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        each!(self, AnyStorage, s => s.count(table, condition).await)
    }

    async fn update_where(
        &self,
        table: &'static TableDef,
        condition: &Condition,
        columns: &[(usize, Value)],
    ) -> Result<u64> {
        each!(self, AnyStorage, s => s.update_where(table, condition, columns).await)
    }

    async fn delete_where(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        each!(self, AnyStorage, s => s.delete_where(table, condition).await)
    }

    async fn insert(&self, table: &'static TableDef, row: Row) -> Result<bool> {
        each!(self, AnyStorage, s => s.insert(table, row).await)
    }

    async fn update(&self, table: &'static TableDef, row: Row, expected: u64) -> Result<WriteOutcome> {
        each!(self, AnyStorage, s => s.update(table, row, expected).await)
    }

    fn keeps_values(&self) -> bool {
        each!(self, AnyStorage, s => s.keeps_values())
    }

    fn update_value<T: Entity>(
        &self,
        table: &'static TableDef,
        key: &Value,
        record: &T,
        next: T::Version,
        expected: u64,
    ) -> Result<Option<WriteOutcome>> {
        each!(self, AnyStorage, s => s.update_value(table, key, record, next, expected))
    }

    async fn upsert(&self, table: &'static TableDef, row: Row) -> Result<Option<u64>> {
        each!(self, AnyStorage, s => s.upsert(table, row).await)
    }

    async fn patch(
        &self,
        table: &'static TableDef,
        key: &Value,
        columns: &[(usize, Value)],
        expected: u64,
    ) -> Result<WriteOutcome> {
        each!(self, AnyStorage, s => s.patch(table, key, columns, expected).await)
    }

    async fn delete(&self, table: &'static TableDef, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        each!(self, AnyStorage, s => s.delete(table, key, expected).await)
    }

    async fn update_many(&self, table: &'static TableDef, rows: Vec<(Row, u64)>) -> Result<Vec<WriteOutcome>> {
        each!(self, AnyStorage, s => s.update_many(table, rows).await)
    }

    async fn insert_many(&self, table: &'static TableDef, rows: Vec<Row>) -> Result<Vec<bool>> {
        each!(self, AnyStorage, s => s.insert_many(table, rows).await)
    }

    async fn delete_many(&self, table: &'static TableDef, keys: &[(Value, u64)]) -> Result<Vec<WriteOutcome>> {
        each!(self, AnyStorage, s => s.delete_many(table, keys).await)
    }
}

impl RowAccess for AnyTransaction {
    async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        each!(self, AnyTransaction, s => s.fetch(table, key).await)
    }

    async fn select(&self, table: &'static TableDef, select: &Select) -> Result<Vec<Row>> {
        each!(self, AnyTransaction, s => s.select(table, select).await)
    }

    async fn count(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        each!(self, AnyTransaction, s => s.count(table, condition).await)
    }

    async fn update_where(
        &self,
        table: &'static TableDef,
        condition: &Condition,
        columns: &[(usize, Value)],
    ) -> Result<u64> {
        each!(self, AnyTransaction, s => s.update_where(table, condition, columns).await)
    }

    async fn delete_where(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        each!(self, AnyTransaction, s => s.delete_where(table, condition).await)
    }

    async fn insert(&self, table: &'static TableDef, row: Row) -> Result<bool> {
        each!(self, AnyTransaction, s => s.insert(table, row).await)
    }

    async fn update(&self, table: &'static TableDef, row: Row, expected: u64) -> Result<WriteOutcome> {
        each!(self, AnyTransaction, s => s.update(table, row, expected).await)
    }

    fn keeps_values(&self) -> bool {
        each!(self, AnyTransaction, s => s.keeps_values())
    }

    fn update_value<T: Entity>(
        &self,
        table: &'static TableDef,
        key: &Value,
        record: &T,
        next: T::Version,
        expected: u64,
    ) -> Result<Option<WriteOutcome>> {
        each!(self, AnyTransaction, s => s.update_value(table, key, record, next, expected))
    }

    async fn upsert(&self, table: &'static TableDef, row: Row) -> Result<Option<u64>> {
        each!(self, AnyTransaction, s => s.upsert(table, row).await)
    }

    async fn patch(
        &self,
        table: &'static TableDef,
        key: &Value,
        columns: &[(usize, Value)],
        expected: u64,
    ) -> Result<WriteOutcome> {
        each!(self, AnyTransaction, s => s.patch(table, key, columns, expected).await)
    }

    async fn delete(&self, table: &'static TableDef, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        each!(self, AnyTransaction, s => s.delete(table, key, expected).await)
    }

    async fn update_many(&self, table: &'static TableDef, rows: Vec<(Row, u64)>) -> Result<Vec<WriteOutcome>> {
        each!(self, AnyTransaction, s => s.update_many(table, rows).await)
    }

    async fn insert_many(&self, table: &'static TableDef, rows: Vec<Row>) -> Result<Vec<bool>> {
        each!(self, AnyTransaction, s => s.insert_many(table, rows).await)
    }

    async fn delete_many(&self, table: &'static TableDef, keys: &[(Value, u64)]) -> Result<Vec<WriteOutcome>> {
        each!(self, AnyTransaction, s => s.delete_many(table, keys).await)
    }
}

impl AnyStorage {
    /// Begins a transaction of the backend: read-only, or waiting as `wait` says (if given).
    async fn begin_as(&self, read_only: bool, wait: Option<LockWait>) -> Result<AnyTransaction> {
        async fn begin<S: Storage>(s: &S, read_only: bool, wait: Option<LockWait>) -> Result<S::Transaction> {
            match (read_only, wait) {
                (true, _) => s.begin_read_only().await,
                (false, Some(wait)) => s.begin_with_lock_wait(wait).await,
                (false, None) => s.begin().await,
            }
        }
        Ok(match self {
            AnyStorage::Memory(s) => AnyTransaction::Memory(begin(s, read_only, wait).await?),
            #[cfg(feature = "sqlite")]
            AnyStorage::Sqlite(s) => AnyTransaction::Sqlite(begin(s, read_only, wait).await?),
            #[cfg(feature = "postgres")]
            AnyStorage::Postgres(s) => AnyTransaction::Postgres(begin(s, read_only, wait).await?),
            #[cfg(feature = "mysql")]
            AnyStorage::Mysql(s) => AnyTransaction::Mysql(begin(s, read_only, wait).await?),
            #[cfg(feature = "etcd")]
            AnyStorage::Etcd(s) => AnyTransaction::Etcd(begin(s, read_only, wait).await?),
        })
    }
}

impl Storage for AnyStorage {
    type Transaction = AnyTransaction;

    async fn create_table(&self, table: &'static TableDef) -> Result<()> {
        each!(self, AnyStorage, s => s.create_table(table).await)
    }

    async fn history(&self, table: &'static TableDef, key: &Value, version: Option<u64>) -> Result<Vec<HistoryRow>> {
        each!(self, AnyStorage, s => s.history(table, key, version).await)
    }

    async fn begin(&self) -> Result<AnyTransaction> {
        self.begin_as(false, None).await
    }

    async fn begin_with_lock_wait(&self, wait: LockWait) -> Result<AnyTransaction> {
        self.begin_as(false, Some(wait)).await
    }

    async fn begin_read_only(&self) -> Result<AnyTransaction> {
        self.begin_as(true, None).await
    }

    fn capabilities(&self) -> Capabilities {
        each!(self, AnyStorage, s => s.capabilities())
    }
}

impl LockingRead for AnyTransaction {
    async fn fetch_for_update(&self, table: &'static TableDef, key: &Value, wait: LockWait) -> Result<Option<Row>> {
        each!(self, AnyTransaction, s => s.fetch_for_update(table, key, wait).await)
    }
}

impl StorageTransaction for AnyTransaction {
    async fn savepoint(&self, step: SavepointStep) -> Result<()> {
        each!(self, AnyTransaction, s => s.savepoint(step).await)
    }

    async fn commit(self) -> Result<()> {
        each!(self, AnyTransaction, s => s.commit().await)
    }

    async fn rollback(self) -> Result<()> {
        each!(self, AnyTransaction, s => s.rollback().await)
    }
}
