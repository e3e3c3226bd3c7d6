//! Units of work: [`Transaction`], and committing or rolling back a backend transaction.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::entity::Entity;
use crate::error::{Error, Result, StorageError};
use crate::lock::LockWait;
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
/// Do not use the [`Store`](crate::Store) itself for writes inside the closure: they would not be
/// part of the transaction, and would wait for it; they fail at once with
/// [`Error::StoreUsedInsideTransaction`](crate::Error::StoreUsedInsideTransaction).
pub struct Transaction<S: Storage> {
    inner: Arc<S::Transaction>,
    lock_wait: LockWait,
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
    pub(crate) fn new(inner: Arc<S::Transaction>, lock_wait: LockWait) -> Self {
        Transaction { inner, lock_wait }
    }

    /// The record with this key, as this transaction sees it. See [`Store::get`](crate::Store::get).
    pub async fn get<T: Entity>(&self, key: &T::Key) -> Result<Option<T>> {
        ops::get(&*self.inner, key).await
    }

    /// The record with this key, locked against other writers until the transaction ends
    /// (OutSystems' `GetForUpdate`): pessimistic locking, for records many users edit at once.
    ///
    /// When another transaction holds the record, waits as the store's [`LockWait`] says (5
    /// seconds by default), then fails with [`Error::LockTimeout`](crate::Error::LockTimeout).
    /// PostgreSQL locks the row (`SELECT … FOR UPDATE`); SQLite's transactions hold the whole
    /// database from their start, so there the wait happens when the transaction begins (its
    /// busy timeout); the memory backend locks the record.
    pub async fn get_for_update<T: Entity>(&self, key: &T::Key) -> Result<Option<T>> {
        ops::get_for_update(&*self.inner, key, self.lock_wait).await
    }

    /// [`get_for_update`](Self::get_for_update), waiting for the lock as `wait` says.
    pub async fn get_for_update_with<T: Entity>(&self, key: &T::Key, wait: LockWait) -> Result<Option<T>> {
        ops::get_for_update(&*self.inner, key, wait).await
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
///
/// Once the closure has returned `Ok`, the commit runs to its end even if the caller's future is
/// dropped meanwhile (it is finished on a background task): the decision to commit is made when
/// the closure succeeds, never by how far an abandoned future happened to get.
pub(crate) async fn finish<X: StorageTransaction, R>(tx: X, result: Result<R>) -> Result<R> {
    match result {
        Ok(value) => {
            Detached::new(tx.commit()).await?;
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

/// A future that, when dropped before it completes, is finished on a background task instead of
/// being abandoned midway.
struct Detached<F: Future<Output = Result<()>> + Send + 'static>(Option<Pin<Box<F>>>);

impl<F: Future<Output = Result<()>> + Send + 'static> Detached<F> {
    fn new(future: F) -> Self {
        Detached(Some(Box::pin(future)))
    }
}

impl<F: Future<Output = Result<()>> + Send + 'static> Future for Detached<F> {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(future) = self.0.as_mut() else {
            return Poll::Ready(Err(StorageError::new("a commit future was polled after it completed").into()));
        };
        let done = future.as_mut().poll(cx);
        if done.is_ready() {
            self.0 = None;
        }
        done
    }
}

impl<F: Future<Output = Result<()>> + Send + 'static> Drop for Detached<F> {
    fn drop(&mut self) {
        let Some(future) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(err) = future.await {
                        tracing::warn!(error = %err, "a commit finished after its caller was dropped failed");
                    }
                });
            }
            // Dropped outside any runtime: nothing can drive the commit, and the backend rolls
            // back what it had not committed.
            Err(_) => tracing::warn!("a commit was abandoned outside a tokio runtime"),
        }
    }
}

tokio::task_local! {
    /// The storages (their [`Storage::identity`]) whose transaction closures this task is running.
    static OPEN_TRANSACTIONS: Vec<usize>;
}

/// Refuses `operation` through the store of `identity` when this task is inside one of that
/// storage's own transactions: the operation would wait for that transaction, which cannot end
/// before the operation does.
pub(crate) fn refuse_inside_own_transaction(identity: Option<usize>, operation: &'static str) -> Result<()> {
    let Some(id) = identity else { return Ok(()) };
    if OPEN_TRANSACTIONS.try_with(|open| open.contains(&id)).unwrap_or(false) {
        return Err(Error::StoreUsedInsideTransaction { operation });
    }
    Ok(())
}

/// Runs a transaction's closure `future`, marked as inside a transaction of `identity`.
pub(crate) async fn inside<F: Future>(identity: Option<usize>, future: F) -> F::Output {
    let Some(id) = identity else { return future.await };
    let mut open = OPEN_TRANSACTIONS.try_with(Vec::clone).unwrap_or_default();
    open.push(id);
    OPEN_TRANSACTIONS.scope(open, future).await
}
