//! The pluggable storage contract, and its implementations.
//!
//! What a backend implements, on one screen:
//!
//! - [`RowAccess`]: the row operations (`fetch`, `insert`, checked `update`, `upsert`, `patch`,
//!   `delete`; batches have defaults), and queries (`select`, `count`, described in [`select`]),
//!   on [`Row`]s described by a [`TableDef`];
//! - [`Storage`]: `create_table`, `begin` (and `begin_with_lock_wait`), `begin_read_only`, and what the backend is
//!   ([`Capabilities`]);
//! - [`LockingRead`]: `fetch_for_update`; [`StorageTransaction`]: `savepoint`, `commit`, `rollback`.
//!
//! Every conditional write is one atomic step of the backend: an SQL statement with the version in
//! its `WHERE` clause, a compare-and-swap under a lock. Never a read followed by a write. A backend
//! never sees user structs; the one exception is outside the contract: the memory backend's fast
//! path for a checked put (`keeps_values`, `update_value`, hidden from the docs), kept on
//! `RowAccess` because the typed layer offers it through the same generic access, and defaulting to
//! "not taken" for every other backend.
//!
//! The [`memory`] backend is the reference: it implements every rule exactly, without I/O.

use std::future::Future;

use crate::entity::{Entity, TableDef};
use crate::error::Result;
use crate::lock::LockWait;
pub use crate::revisions::HistoryRow;
use crate::value::{Row, Value};
use select::{Condition, Select};

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use lent::{ConnectionOf, Lends, Lent};

pub mod any;
pub(crate) mod decisions;
#[cfg(feature = "etcd")]
pub mod etcd;
pub(crate) mod evaluate;
mod layout;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) mod lent;
pub mod memory;
#[cfg(feature = "mysql")]
pub mod mysql;
pub(crate) mod options;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod select;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// The outcome of a conditional write.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    /// The check held and the write was applied.
    Applied,
    /// The check failed; nothing was written. `current` is the stored row, read after the failed
    /// check to describe the conflict, or `None` when no row has the key.
    Rejected {
        /// The stored row, if any.
        current: Option<Row>,
    },
}

/// A step of a savepoint inside a transaction: see [`StorageTransaction::savepoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavepointStep {
    /// Sets savepoint number `depth`.
    Set {
        /// 1 for the outermost savepoint, counting up as they nest.
        depth: u32,
    },
    /// Undoes every write made since savepoint `depth` was set, and ends it.
    RollBack {
        /// The savepoint's number.
        depth: u32,
    },
    /// Ends savepoint `depth`, keeping its writes as part of the transaction.
    Release {
        /// The savepoint's number.
        depth: u32,
    },
}

/// The row operations of a backend, shared by its autocommit handle and its transactions.
///
/// Writes take their row by value: a backend that keeps rows (memory) or hands them to another
/// task (SQLite's group commit) stores it without a copy.
///
/// Rows are in the column order of the `TableDef`; `table.key` and `table.version` index into
/// them. Versions are stored as integers.
pub trait RowAccess: Send + Sync {
    /// The row with this key, if any.
    fn fetch(&self, table: &'static TableDef, key: &Value) -> impl Future<Output = Result<Option<Row>>> + Send;

    /// [`fetch`](Self::fetch) where what is read decides a write (a patch builds its row from it)
    /// or describes a refused one: never from a copy that may lag behind the writes (a read
    /// replica). The default is `fetch`, for backends whose reads are all current.
    fn fetch_current(&self, table: &'static TableDef, key: &Value) -> impl Future<Output = Result<Option<Row>>> + Send {
        self.fetch(table, key)
    }

    /// Inserts `row` (its version column already set to 1). Returns `false`, writing nothing, when
    /// a row with the same key exists.
    fn insert(&self, table: &'static TableDef, row: Row) -> impl Future<Output = Result<bool>> + Send;

    /// Replaces every column of the row whose key is `row`'s key, only if its stored version is
    /// `expected`. `row`'s version column holds the new version (`expected + 1`). A
    /// [`CreatedAt`](crate::ColumnRole::CreatedAt) column keeps its stored value. One atomic step.
    fn update(
        &self,
        table: &'static TableDef,
        row: Row,
        expected: u64,
    ) -> impl Future<Output = Result<WriteOutcome>> + Send;

    /// Writes `row` without a check: inserts it with version 1, or replaces the stored row (except
    /// a `CreatedAt` column) and sets its version to the stored version + 1 (the value in `row`'s
    /// version column is ignored).
    /// Returns the new version, or `None` (writing nothing) when the stored version is already
    /// `table.version_max` or is not a valid version (`NULL`, not an integer, negative): the caller
    /// reads the stored row to say which. One atomic step.
    fn upsert(&self, table: &'static TableDef, row: Row) -> impl Future<Output = Result<Option<u64>>> + Send;

    /// Sets only `columns` (index, value) of the row with this key, and its version to
    /// `expected + 1`, only if the stored version is `expected`. The caller has checked that
    /// `expected + 1` does not pass `table.version_max`, and that the row it will make decodes.
    /// One atomic step.
    fn patch(
        &self,
        table: &'static TableDef,
        key: &Value,
        columns: &[(usize, Value)],
        expected: u64,
    ) -> impl Future<Output = Result<WriteOutcome>> + Send;

    /// The rows meeting `select.condition`, in `select.order`, at most `select.limit` of them, as
    /// [`select`] defines them: Rust's order of the values, a comparison with `NULL` false. A
    /// transaction sees its own writes.
    fn select(&self, table: &'static TableDef, select: &Select) -> impl Future<Output = Result<Vec<Row>>> + Send;

    /// How many rows meet `condition` (see [`select`](Self::select)).
    fn count(&self, table: &'static TableDef, condition: &Condition) -> impl Future<Output = Result<u64>> + Send;

    /// Sets `columns` (index, value) of every row meeting `condition`, and its version to its
    /// stored version + 1; a row whose version is not a valid version or is at
    /// `table.version_max` is left as it is. Returns how many rows it changed. Not atomic by
    /// itself on every backend: the typed layer runs it in a transaction.
    fn update_where(
        &self,
        table: &'static TableDef,
        condition: &Condition,
        columns: &[(usize, Value)],
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Deletes every row meeting `condition`; how many it deleted. Not atomic by itself (see
    /// [`update_where`](Self::update_where)).
    fn delete_where(&self, table: &'static TableDef, condition: &Condition)
    -> impl Future<Output = Result<u64>> + Send;

    #[doc(hidden)]
    /// Whether [`update_value`](Self::update_value) may take records (false by default): the
    /// caller offers them only then.
    fn keeps_values(&self) -> bool {
        false
    }

    #[doc(hidden)]
    /// A checked update of `record` (key `key`) stored as a value rather than as a row, for
    /// backends that keep records in memory: only if the stored version is `expected`, the
    /// backend stores a copy of `record` at version `next` (`expected + 1`, which the caller has
    /// checked is below the version's maximum). Same rule as [`update`](Self::update), in one
    /// atomic step. The caller offers it only for tables without audit columns.
    ///
    /// `Ok(None)`: not taken, and nothing written; the caller writes the row instead. That is the
    /// default, and the answer of a backend that cannot copy the type ([`Entity::copy`] gives no
    /// copy: the struct is not `Clone`) or cannot decide at once (a lock to wait for). A backend
    /// may copy into a record it holds already, with [`Entity::copy_into`].
    fn update_value<T: Entity>(
        &self,
        table: &'static TableDef,
        key: &Value,
        record: &T,
        next: T::Version,
        expected: u64,
    ) -> Result<Option<WriteOutcome>> {
        let _ = (table, key, record, next, expected);
        Ok(None)
    }

    /// Checked updates of many rows, each `(row, expected)` as in [`update`](Self::update); the
    /// outcome of each, in order. The batch is not atomic by itself: callers run it inside a
    /// transaction (or a savepoint) and roll back on any rejection. The default runs the rows one
    /// by one; the SQL backends send one statement per chunk of rows where the database can.
    fn update_many(
        &self,
        table: &'static TableDef,
        rows: Vec<(Row, u64)>,
    ) -> impl Future<Output = Result<Vec<WriteOutcome>>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(rows.len());
            for (row, expected) in rows {
                outcomes.push(self.update(table, row, expected).await?);
            }
            Ok(outcomes)
        }
    }

    /// Inserts of many rows, each as in [`insert`](Self::insert); whether each was inserted, in
    /// order. Not atomic by itself (see [`update_many`](Self::update_many)).
    fn insert_many(&self, table: &'static TableDef, rows: Vec<Row>) -> impl Future<Output = Result<Vec<bool>>> + Send {
        async move {
            let mut inserted = Vec::with_capacity(rows.len());
            for row in rows {
                inserted.push(self.insert(table, row).await?);
            }
            Ok(inserted)
        }
    }

    /// Checked deletes of many rows, each `(key, expected)` as in [`delete`](Self::delete) with
    /// `Some(expected)`; the outcome of each, in order. Not atomic by itself (see
    /// [`update_many`](Self::update_many)).
    fn delete_many(
        &self,
        table: &'static TableDef,
        keys: &[(Value, u64)],
    ) -> impl Future<Output = Result<Vec<WriteOutcome>>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(keys.len());
            for (key, expected) in keys {
                outcomes.push(self.delete(table, key, Some(*expected)).await?);
            }
            Ok(outcomes)
        }
    }

    /// Deletes the row with this key; with `Some(expected)`, only if its stored version is
    /// `expected`; with `None`, only if its stored version is a valid version (a non-negative
    /// integer). `Rejected { current }` carries the stored row, `None` when no row had the key.
    fn delete(
        &self,
        table: &'static TableDef,
        key: &Value,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<WriteOutcome>> + Send;
}

/// What a backend is, as the layers above the contract need to know it: one value, built with
/// [`Capabilities::new`] and its `with_…` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// An address shared by every clone of the storage and by no other storage (`Arc::as_ptr` of
    /// its shared state), or `None` when the backend cannot tell. The [`Store`](crate::Store) uses
    /// it to refuse at once a call through the store inside one of its own transactions on the
    /// same task ([`Error::StoreUsedInsideTransaction`](crate::Error::StoreUsedInsideTransaction)),
    /// which would otherwise wait for that very transaction.
    pub identity: Option<usize>,
    /// Whether [`LockingRead::fetch_for_update`] locks one record (memory, PostgreSQL,
    /// MySQL), rather than the backend's transactions holding the whole database from their
    /// start (SQLite), where the wait for the lock happens when a transaction begins.
    pub locks_records: bool,
    /// How [`Store::update`](crate::Store::update) keeps concurrent updates of one hot record from
    /// conflicting: see [`HotUpdates`].
    pub hot_updates: HotUpdates,
}

impl Capabilities {
    /// No identity; records locked one by one; updates of a hot record queued.
    pub const fn new() -> Self {
        Capabilities { identity: None, locks_records: true, hot_updates: HotUpdates::Queue }
    }

    /// With the storage's identity (see [`identity`](Self::identity)).
    pub const fn with_identity(mut self, address: usize) -> Self {
        self.identity = Some(address);
        self
    }

    /// Transactions hold the whole database from their start (SQLite).
    pub const fn with_database_locks(mut self) -> Self {
        self.locks_records = false;
        self
    }

    /// `update` always reads and writes optimistically, neither queueing nor locking (for a
    /// backend where neither pays).
    pub const fn with_optimistic_updates(mut self) -> Self {
        self.hot_updates = HotUpdates::Optimistic;
        self
    }

    /// `update` locks a hot record in a transaction of its own, and the database queues the
    /// updaters (for a backend whose lock passes to the next waiter before the commit is
    /// durable: MySQL's InnoDB).
    pub const fn with_locked_hot_updates(mut self) -> Self {
        self.hot_updates = HotUpdates::Lock;
        self
    }

    /// Whether `update` may read a record locked: after a conflict, under
    /// [`LockWait::NoWait`], for a hot record's turn not given in time, or (with
    /// [`HotUpdates::Lock`]) while the record is hot.
    pub const fn locks_updates(&self) -> bool {
        !matches!(self.hot_updates, HotUpdates::Optimistic)
    }
}

/// How [`Store::update`](crate::Store::update) writes a hot record: one whose recent updates in
/// the store conflicted (see `Store::update`). Whatever this says, a cold record is read and
/// written optimistically, and an update whose attempt conflicted locks the record next (unless
/// the backend says [`Optimistic`](Self::Optimistic), or the store's lock wait is
/// [`NoWait`](crate::LockWait::NoWait), under which every attempt locks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HotUpdates {
    /// The store's updates of the record take turns, each a checked put without a transaction:
    /// they no longer conflict with each other, wait in the client rather than on a pooled
    /// connection, and their puts still join group commit. A turn hands on the record as it
    /// wrote it, so the next turn need not read it back: only the first turn of a burst reads it
    /// (from the primary, where there are read replicas). A writer outside the store's turns
    /// (another process, a plain `put`) can still conflict: the update that met it locks the
    /// record next, and the queue's later turns read the record each time. The default (memory,
    /// SQLite, PostgreSQL, etcd): a turn is one write, where a lock costs a transaction's round
    /// trips besides the read and the write (PostgreSQL's hot row: 1.18–1.41× a hand-written
    /// `SELECT … FOR UPDATE` loop from one store; from two stores, whose turns conflict with
    /// each other's, 0.64–0.83×).
    Queue,
    /// Each attempt on the record locks it in a transaction of its own
    /// ([`LockingRead::fetch_for_update`]), and the database queues the updaters, from every
    /// process alike: for MySQL and MariaDB, whose InnoDB hands a row lock to the next waiter
    /// before the commit's log is flushed (hot row: 0.95× the hand-written loop from one store,
    /// 0.94× from two, where turns measured 1.02× and 0.64×).
    Lock,
    /// Never locked nor queued: every attempt reads and writes optimistically, retrying as the
    /// [`RetryPolicy`](crate::RetryPolicy) allows.
    Optimistic,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::new()
    }
}

/// A storage backend: what a [`Store`](crate::Store) is built on. Cloning it gives another
/// handle to the same storage (like a connection pool).
pub trait Storage: RowAccess + Clone + 'static {
    /// The backend's transaction.
    type Transaction: StorageTransaction;

    /// Creates the table for `table` if it does not exist yet.
    fn create_table(&self, table: &'static TableDef) -> impl Future<Output = Result<()>> + Send;

    /// Begins a transaction: its writes become visible together at commit, or not at all.
    fn begin(&self) -> impl Future<Output = Result<Self::Transaction>> + Send;

    /// [`begin`](Self::begin), waiting as `wait` says (the store's [`LockWait`]) where the
    /// backend's transactions take a lock when they begin (SQLite's write lock:
    /// [`Capabilities::locks_records`] is false), then failing with
    /// [`Error::LockTimeout`](crate::Error::LockTimeout). The default ignores `wait` and calls
    /// `begin`: backends that lock records wait in [`LockingRead::fetch_for_update`].
    fn begin_with_lock_wait(&self, wait: LockWait) -> impl Future<Output = Result<Self::Transaction>> + Send {
        let _ = wait;
        self.begin()
    }

    /// Begins a read-only transaction: all its reads see one consistent snapshot of the storage,
    /// taken no later than its first read, and it takes no write lock (on SQLite, writers go on
    /// while it is open). [`Transaction`](crate::Transaction) refuses writes through it before they
    /// reach the backend; a backend may refuse them too.
    fn begin_read_only(&self) -> impl Future<Output = Result<Self::Transaction>> + Send;

    /// The history of the record with `key` in `table` (a table of `#[versioned(history)]`),
    /// oldest entry first: every version written, and its deletions (see
    /// [`revisions`](crate::revisions)); with `version`, the entries of that version only (more
    /// than one only when a deleted key was inserted again).
    fn history(
        &self,
        table: &'static TableDef,
        key: &Value,
        version: Option<u64>,
    ) -> impl Future<Output = Result<Vec<HistoryRow>>> + Send;

    /// What this backend is, for the layers above it: see [`Capabilities`]. The default: no
    /// identity, records locked one by one, `update` locked.
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }
}

/// A read that locks the row it reads until the transaction ends: what a backend's transaction
/// offers ([`StorageTransaction`]), and a connection of yours lent to an SQL store inside your
/// own transaction ([`Lent`]).
pub trait LockingRead: RowAccess {
    /// Like [`RowAccess::fetch`], and locks the row against other writers until the transaction
    /// ends (OutSystems' `GetForUpdate`). When another transaction holds the lock, waits as
    /// `wait` says, then fails with [`Error::LockTimeout`](crate::Error::LockTimeout).
    fn fetch_for_update(
        &self,
        table: &'static TableDef,
        key: &Value,
        wait: LockWait,
    ) -> impl Future<Output = Result<Option<Row>>> + Send;
}

/// A backend's transaction: the row operations, seeing its own writes, applied all at once by
/// [`commit`](Self::commit). Dropping it without committing rolls it back.
///
/// A conditional write inside a transaction is checked against the latest committed state (and,
/// where the backend validates at commit, checked again then): a conflict anywhere means the whole
/// transaction must be rolled back.
pub trait StorageTransaction: LockingRead + 'static {
    /// Sets, rolls back to, or releases a savepoint (SQL's `SAVEPOINT`, `ROLLBACK TO SAVEPOINT`,
    /// `RELEASE SAVEPOINT`). Savepoints nest: `depth` is 1 for the outermost, and one step only
    /// ever names the innermost open savepoint. [`SavepointStep::RollBack`] undoes every write
    /// made since the savepoint was set and ends it; the transaction goes on.
    fn savepoint(&self, step: SavepointStep) -> impl Future<Output = Result<()>> + Send;

    /// Makes every write of the transaction visible at once, or fails and writes nothing (a
    /// backend validating at commit reports a conflict as `Error::ConcurrentModification`).
    fn commit(self) -> impl Future<Output = Result<()>> + Send;

    /// Discards every write of the transaction.
    fn rollback(self) -> impl Future<Output = Result<()>> + Send;
}
