//! [`ConnectOptions`]: what [`Store::connect_with`](crate::Store::connect_with) sets when it opens
//! the backend a URL names, beyond what the URL says.

use std::time::Duration;

use crate::lock::LockWait;
#[cfg(feature = "postgres")]
use crate::storage::postgres::Isolation;
#[cfg(feature = "sqlite")]
use crate::storage::sqlite::Durability;

/// Settings for [`Store::connect_with`](crate::Store::connect_with): those every backend shares,
/// and those of one backend, which the others ignore (a program that chooses its database by
/// configuration sets them all once).
///
/// ```no_run
/// # async fn demo() -> versioned_core::Result<()> {
/// use std::time::Duration;
/// use versioned_core::{ConnectOptions, LockWait, Store};
///
/// let options = ConnectOptions::new()
///     .schema("billing") // PostgreSQL's search_path, MySQL's database, etcd's key prefix
///     .max_connections(20)
///     .lock_wait(LockWait::Timeout(Duration::from_secs(2)));
/// let store = Store::connect_with("postgres://postgres@127.0.0.1:5432/test", options).await?;
/// # let _ = store;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    pub(crate) schema: Option<String>,
    pub(crate) max_connections: Option<u32>,
    pub(crate) acquire_timeout: Option<Duration>,
    pub(crate) lock_wait: Option<LockWait>,
    #[cfg(feature = "sqlite")]
    pub(crate) durability: Durability,
    #[cfg(feature = "postgres")]
    pub(crate) isolation: Isolation,
}

impl ConnectOptions {
    /// The defaults: what [`Store::connect`](crate::Store::connect) uses.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the store's tables are: PostgreSQL's schema (the sessions' `search_path`), MySQL's
    /// database (instead of the URL's), etcd's key prefix (`name/`). SQLite and the memory
    /// backend have no schemas: [`Store::connect_with`](crate::Store::connect_with) refuses one
    /// there with [`Error::Config`](crate::Error::Config) rather than ignore it.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = Some(name.into());
        self
    }

    /// The most connections the pool opens (SQL backends; sqlx's default: 10).
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = Some(connections);
        self
    }

    /// How long an operation waits for a pooled connection before it fails, retryably (SQL
    /// backends; sqlx's default: 30 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = Some(timeout);
        self
    }

    /// The store's [`LockWait`] (see [`Store::with_lock_wait`](crate::Store::with_lock_wait)).
    pub fn lock_wait(mut self, wait: LockWait) -> Self {
        self.lock_wait = Some(wait);
        self
    }

    /// SQLite's durability of commits (see [`Durability`]); other backends ignore it.
    #[cfg(feature = "sqlite")]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// PostgreSQL's transaction isolation (see [`Isolation`]); other backends ignore it.
    #[cfg(feature = "postgres")]
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// sqlx's pool options with the size and acquire timeout set here.
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    pub(crate) fn pool<DB: sqlx::Database>(
        &self,
        mut pool: sqlx::pool::PoolOptions<DB>,
    ) -> sqlx::pool::PoolOptions<DB> {
        if let Some(connections) = self.max_connections {
            pool = pool.max_connections(connections);
        }
        if let Some(timeout) = self.acquire_timeout {
            pool = pool.acquire_timeout(timeout);
        }
        pool
    }
}
