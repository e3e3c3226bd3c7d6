//! The one [`Error`] type of every operation.

use std::fmt;

use crate::entity::{Entity, TableDef};
use crate::value::{KeyFor, Row, Value};

/// A boxed error from a backend's driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result of every operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, one variant per cause a caller may want to handle.
///
/// ```
/// # use versioned_core::Error;
/// fn explain(err: &Error) -> &'static str {
///     match err {
///         Error::ConcurrentModification { .. } => "someone else saved first: reload and retry",
///         Error::NotFound { .. } => "no such record",
///         e if e.is_retryable() => "busy: try again",
///         _ => "failed",
///     }
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stored record's version is not the one the caller read: another writer got there
    /// first (Slim3's `ConcurrentModificationException`, Kii's `OBJECT_VERSION_IS_STALE`).
    #[error("concurrent modification of {table} {key}: expected version {expected}, {}", Actual(*.actual))]
    ConcurrentModification {
        /// The table.
        table: &'static str,
        /// The record's key.
        key: Value,
        /// The version the caller held.
        expected: u64,
        /// The stored version; `None` when the record has been deleted.
        actual: Option<u64>,
        /// The stored record, to show the user what changed or to merge; decode it with
        /// [`Error::current`]. `None` when the record has been deleted.
        current: Option<Row>,
    },
    /// No record has this key.
    #[error("{table} {key} not found")]
    NotFound {
        /// The table.
        table: &'static str,
        /// The key looked for.
        key: Value,
    },
    /// An insert found a record with the same key.
    #[error("{table} {key} already exists")]
    AlreadyExists {
        /// The table.
        table: &'static str,
        /// The key.
        key: Value,
    },
    /// A stored value does not fit the struct: NULL in a non-`Option` field, a wrong type, an
    /// out-of-range integer, malformed JSON, a missing column.
    #[error("cannot decode {table}.{column}: {reason}")]
    Decode {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// What does not fit.
        reason: String,
    },
    /// A field's value cannot be stored (a `u64` above `i64::MAX`, a value serde refuses).
    #[error("cannot store {table}.{column}: {reason}")]
    Encode {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// Why.
        reason: String,
    },
    /// The version is at its type's maximum: one more write would wrap it.
    #[error("version of {table} {key} is at its maximum {version}; it cannot be incremented")]
    VersionOverflow {
        /// The table.
        table: &'static str,
        /// The record's key.
        key: Value,
        /// The version that cannot be incremented.
        version: u64,
    },
    /// `get_for_update` waited for a record another transaction has locked longer than its
    /// [`LockWait`](crate::LockWait) allows (PostgreSQL `55P03`, MySQL `1205`). Nothing was read
    /// or written by the call. Retryable: the lock may be free on the next attempt.
    #[error("{} is locked by another transaction; gave up waiting for it", Locked(*.table, .key.as_ref()))]
    LockTimeout {
        /// The table; `None` when the lock is the whole database's (SQLite's write lock, waited
        /// for when a transaction begins).
        table: Option<&'static str>,
        /// The record's key, where the lock is a record's.
        key: Option<Value>,
    },
    /// A retried operation still failed after its last attempt (Kii's "Server Busy").
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// How many attempts were made.
        attempts: u32,
        /// The error of the last attempt.
        last: Box<Error>,
    },
    /// The store was given a configuration it cannot use: a URL of another database, an empty or
    /// malformed URL. Nothing was opened.
    #[error("invalid configuration: {reason}")]
    Config {
        /// What is wrong, and what is expected instead.
        reason: String,
    },
    /// An operation went through the [`Store`](crate::Store) inside a transaction closure of the
    /// same store, on the same task. It would bypass the transaction, and could wait for it
    /// (a write for its lock, a nested transaction, a read of SQLite's shared in-memory cache)
    /// while the transaction cannot end before the closure returns: a deadlock. Use the handle
    /// the closure was given (`tx.put(…)`), or run the operation after the transaction.
    #[error(
        "store.{operation}() was called inside a transaction of the same store, on the same task: it would \
         bypass the transaction and could wait for it forever; use the transaction handle (tx.{operation}()) \
         inside the closure"
    )]
    StoreUsedInsideTransaction {
        /// The store's operation that was refused (`put`, `transaction`, …).
        operation: &'static str,
    },
    /// A write (or `get_for_update`) inside a read-only transaction
    /// ([`Store::read_transaction`](crate::Store::read_transaction)). Nothing was written.
    #[error("tx.{operation}() in a read-only transaction: it only reads; use store.transaction to write")]
    ReadOnlyTransaction {
        /// The refused operation.
        operation: &'static str,
    },
    /// A merging put ([`Store::put_merging`](crate::Store::put_merging)) found fields that both
    /// you and another writer changed, to different values, since the copy you started from.
    /// Nothing was written; each [`Collision`](crate::merge::Collision) holds the base, your and
    /// the stored value, for someone to choose.
    #[error(
        "{table} {key}: {} field(s) changed both by you and by another writer since your copy (stored version \
         {version}): {}; nothing written",
        .collisions.len(),
        .collisions.iter().map(|c| c.field).collect::<Vec<_>>().join(", ")
    )]
    Collisions {
        /// The table.
        table: &'static str,
        /// The record's key.
        key: Value,
        /// The stored version merged with.
        version: u64,
        /// The colliding fields, in column order.
        collisions: Vec<crate::merge::Collision>,
        /// The stored record.
        current: Row,
    },
    /// A read that locks rows (`get_for_update`, a query's `for_update`) on a connection of yours
    /// that is not inside a transaction ([`Store::on`](crate::Store::on)): its locks would end with
    /// the statement. Begin a transaction (`pool.begin()`, `conn.begin()`) and lend `&mut *tx`.
    /// Nothing was read.
    #[error(
        "on.{operation}() locks rows until the transaction ends, but the connection is not in a transaction: \
         begin one with sqlx (pool.begin(), conn.begin()) and pass &mut *tx"
    )]
    NoTransaction {
        /// The refused operation.
        operation: &'static str,
    },
    /// An operation through a transaction handle while a savepoint of it is open
    /// ([`Transaction::savepoint`](crate::Transaction::savepoint)). It would silently become part of
    /// the savepoint; use the handle the savepoint's closure was given. Nothing was done.
    #[error("tx.{operation}() while a savepoint of this transaction is open: use the savepoint's handle")]
    SavepointOpen {
        /// The refused operation.
        operation: &'static str,
    },
    /// A batch write (`put_all`, `insert_all`, `delete_all`) refused: every record whose check
    /// failed, each as its own error ([`Error::ConcurrentModification`] with the stored record,
    /// or [`Error::AlreadyExists`]), in the order of the batch. Nothing of the batch was written.
    #[error("{} of {table}'s records refused, nothing written; first: {}", .conflicts.len(), First(.conflicts))]
    Conflicts {
        /// The table.
        table: &'static str,
        /// Every refused record's error.
        conflicts: Vec<Error>,
    },
    /// A query refused before anything was read: a cursor of another query or table, or not a
    /// cursor at all; a page of 0 records; more values than one query carries
    /// ([`MAX_QUERY_VALUES`](crate::query::MAX_QUERY_VALUES)).
    #[error("query of {table} refused: {reason}")]
    Query {
        /// The table queried.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The backend failed (I/O, SQL, a busy database).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

struct Locked<'a>(Option<&'static str>, Option<&'a Value>);

impl fmt::Display for Locked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Locked(Some(table), Some(key)) => write!(f, "{table} {key}"),
            Locked(Some(table), None) => write!(f, "table {table}"),
            Locked(None, _) => f.write_str("the database"),
        }
    }
}

struct Actual(Option<u64>);

impl fmt::Display for Actual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "stored version is {v}"),
            None => f.write_str("the record has been deleted"),
        }
    }
}

struct First<'a>(&'a [Error]);

impl fmt::Display for First<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.first() {
            Some(first) => first.fmt(f),
            None => f.write_str("none"),
        }
    }
}

impl Error {
    /// `NotFound` for `key` of entity `T`: handy with `Option::ok_or_else`.
    pub fn not_found<T: Entity>(key: &(impl KeyFor<T::Key> + ?Sized)) -> Self {
        Error::NotFound {
            table: T::TABLE.name,
            // A key that cannot be encoded cannot have been looked up either; show it as NULL.
            key: key.key_value().unwrap_or(Value::Null),
        }
    }

    /// True for a version conflict ([`Error::ConcurrentModification`]), and for a batch refused
    /// for conflicts only.
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::ConcurrentModification { .. } | Error::Collisions { .. } => true,
            Error::Conflicts { conflicts, .. } => conflicts.iter().all(Error::is_conflict),
            _ => false,
        }
    }

    /// True when trying again from a fresh read may succeed: version conflicts, lock waits that
    /// expired, and the database's own transient refusals (SQLite busy or locked, PostgreSQL
    /// serialization failures and deadlocks).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::ConcurrentModification { .. } | Error::Collisions { .. } | Error::LockTimeout { .. } => true,
            Error::Conflicts { conflicts, .. } => conflicts.iter().all(Error::is_retryable),
            Error::Storage(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// The stored record of a conflict, decoded as `T`: what the other writer saved.
    ///
    /// `None` when this is not a conflict or the record has been deleted. The record is laid out
    /// as the struct of the operation that was refused (for a conflict found when a memory or
    /// etcd transaction commits, the struct through which the transaction first read it): decode
    /// it as that struct where several structs share a table.
    pub fn current<T: Entity>(&self) -> Option<Result<T>> {
        match self {
            Error::ConcurrentModification { current: Some(row), table, .. }
            | Error::Collisions { current: row, table, .. }
                if *table == T::TABLE.name =>
            {
                if row.len() != T::TABLE.columns.len() {
                    // Read through another struct of the table: its columns are not `T`'s.
                    return Some(Err(Error::decode(
                        T::TABLE,
                        T::TABLE.key_column().name,
                        format!(
                            "the stored record was read as a struct of {} columns, {} has {}: decode it as that struct",
                            row.len(),
                            T::TABLE.entity,
                            T::TABLE.columns.len()
                        ),
                    )));
                }
                Some(T::from_row(row.clone()))
            }
            _ => None,
        }
    }

    pub(crate) fn decode(table: &TableDef, column: &'static str, reason: impl Into<String>) -> Self {
        Error::Decode { table: table.name, column, reason: reason.into() }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Error::Config { reason: reason.into() }
    }

    pub(crate) fn encode(table: &TableDef, index: usize, reason: impl Into<String>) -> Self {
        let column = table.columns.get(index).map_or("?", |c| c.name);
        Error::Encode { table: table.name, column, reason: reason.into() }
    }
}

/// A backend's failure, with the driver's error as its source.
#[derive(Debug, thiserror::Error)]
#[error("storage error: {source}")]
pub struct StorageError {
    retryable: bool,
    #[source]
    source: BoxError,
}

impl StorageError {
    /// A failure that will not go away by trying again.
    pub fn new(source: impl Into<BoxError>) -> Self {
        StorageError { retryable: false, source: source.into() }
    }

    /// A transient refusal (busy, locked, serialization failure): trying again may succeed.
    pub fn retryable(source: impl Into<BoxError>) -> Self {
        StorageError { retryable: true, source: source.into() }
    }

    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The driver's error, to inspect its code (for example as a `sqlx::Error`).
    pub fn driver_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }
}
