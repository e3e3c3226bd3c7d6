//! [`Executor`]: what the typed operations run on, a [`Store`](crate::Store) or a
//! [`Transaction`](crate::Transaction). The operations (`ops`) and both front ends depend on it;
//! it depends on neither, so `store` → `transaction` → `ops` point one way.

use std::sync::Arc;

use crate::error::Result;
use crate::storage::RowAccess;

/// Anything the typed operations run on: a [`Store`](crate::Store) or a [`Transaction`](crate::Transaction). The helpers that
/// `#[derive(Versioned)]` generates take any `Executor`, and go through its checks as the
/// executor's own methods do.
pub trait Executor: Sync {
    /// The backend's row operations.
    type Access: RowAccess;

    /// The row operations for a read named `operation`, or the error refusing it here (a store used
    /// inside its own transaction, a transaction handle while a savepoint of it is open).
    fn reader(&self, operation: &'static str) -> Result<&Self::Access>;

    /// The row operations for a write named `operation`, or the error refusing it here (also: a
    /// read-only transaction).
    fn writer(&self, operation: &'static str) -> Result<&Self::Access>;
}

/// A borrowed executor runs the same operations: `p.put(&&store)` and helpers that take
/// `&impl Executor` compose.
impl<E: Executor + ?Sized> Executor for &E {
    type Access = E::Access;

    fn reader(&self, operation: &'static str) -> Result<&Self::Access> {
        (**self).reader(operation)
    }

    fn writer(&self, operation: &'static str) -> Result<&Self::Access> {
        (**self).writer(operation)
    }
}

/// A store shared as `Arc<Store<_>>` runs the operations too (though a `Store` is already a cheap
/// `Clone` handle: cloning it is the simpler way to share it between tasks).
impl<E: Executor + Send + ?Sized> Executor for Arc<E> {
    type Access = E::Access;

    fn reader(&self, operation: &'static str) -> Result<&Self::Access> {
        (**self).reader(operation)
    }

    fn writer(&self, operation: &'static str) -> Result<&Self::Access> {
        (**self).writer(operation)
    }
}
