//! Units of work: [`Transaction`], and committing or rolling back a backend transaction.

use std::sync::Arc;

use crate::entity::Entity;
use crate::error::{Result, StorageError};
use crate::ops;
use crate::patch::Check;
use crate::storage::{Storage, StorageTransaction};
use crate::store::Executor;

/// The handle of a transaction, given to the closure of
/// [`Store::transaction`](crate::Store::transaction).
///
/// It offers the store's typed operations; they see the transaction's own writes, and none of
/// them is visible to anyone else until the closure returns `Ok` and the transaction commits. If
/// the closure returns an error — a [`ConcurrentModification`](crate::Error::ConcurrentModification)
/// from any operation included — every write is rolled back.
///
/// Do not use the [`Store`](crate::Store) itself for writes inside the closure: those are not part
/// of the transaction (and on SQLite they wait for the transaction's write lock).
pub struct Transaction<S: Storage> {
    inner: Arc<S::Transaction>,
}

impl<S: Storage> std::fmt::Debug for Transaction<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

impl<S: Storage> Executor for Transaction<S> {
    type Access = S::Transaction;

    fn access(&self) -> &S::Transaction {
        &self.inner
    }
}

impl<S: Storage> Transaction<S> {
    pub(crate) fn new(inner: Arc<S::Transaction>) -> Self {
        Transaction { inner }
    }

    /// The record with this key, as this transaction sees it. See [`Store::get`](crate::Store::get).
    pub async fn get<T: Entity>(&self, key: &T::Key) -> Result<Option<T>> {
        ops::get(&*self.inner, key).await
    }

    /// The record with this key, locked against other writers until the transaction ends
    /// (OutSystems' `GetForUpdate`): pessimistic locking, for records many users edit at once.
    pub async fn get_for_update<T: Entity>(&self, key: &T::Key) -> Result<Option<T>> {
        ops::get_for_update(&*self.inner, key).await
    }

    /// See [`Store::get_with_version`](crate::Store::get_with_version).
    pub async fn get_with_version<T: Entity>(&self, key: &T::Key, version: T::Version) -> Result<T> {
        ops::get_with_version(&*self.inner, key, version).await
    }

    /// See [`Store::insert`](crate::Store::insert).
    pub async fn insert<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::insert(&*self.inner, t).await
    }

    /// See [`Store::put`](crate::Store::put). A conflict here fails the transaction: return the
    /// error (with `?`) and nothing of the transaction is written.
    pub async fn put<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::put(&*self.inner, t).await
    }

    /// See [`Store::put_unchecked`](crate::Store::put_unchecked).
    pub async fn put_unchecked<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::put_unchecked(&*self.inner, t).await
    }

    /// See [`Store::patch`](crate::Store::patch).
    pub async fn patch<T: Entity>(&self, key: &T::Key, patch: T::Patch, check: Check<T::Version>) -> Result<T> {
        ops::patch(&*self.inner, key, patch, check).await
    }

    /// See [`Store::touch`](crate::Store::touch).
    pub async fn touch<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::touch(&*self.inner, t).await
    }

    /// See [`Store::delete`](crate::Store::delete).
    pub async fn delete<T: Entity>(&self, t: &T) -> Result<()> {
        ops::delete(&*self.inner, t).await
    }

    /// See [`Store::delete_unchecked`](crate::Store::delete_unchecked).
    pub async fn delete_unchecked<T: Entity>(&self, key: &T::Key) -> Result<bool> {
        ops::delete_unchecked::<T, _>(&*self.inner, key).await
    }
}

/// Takes the backend transaction back from the handle once the closure is done with it.
pub(crate) fn reclaim<X>(tx: Arc<X>) -> Result<X> {
    Arc::try_unwrap(tx).map_err(|_| {
        StorageError::new(
            "the transaction handle is still in use after its closure returned (moved into a task?); \
             nothing was committed",
        )
        .into()
    })
}

/// Commits `tx` if `result` is `Ok`; otherwise rolls it back and returns the error unchanged.
pub(crate) async fn finish<X: StorageTransaction, R>(tx: X, result: Result<R>) -> Result<R> {
    match result {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(err) => {
            if let Err(rollback) = tx.rollback().await {
                // The original error is what the caller needs; a backend whose explicit rollback
                // fails still discards the writes when the connection is dropped.
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(err)
        }
    }
}
