//! [`Store`]: the typed API over any [`Storage`].

use std::future::Future;
use std::sync::Arc;

use crate::entity::Entity;
use crate::error::Result;
use crate::lock::LockWait;
use crate::ops;
use crate::patch::Check;
use crate::retry::RetryPolicy;
use crate::storage::memory::MemoryStorage;
use crate::storage::{RowAccess, Storage};
use crate::transaction::{Transaction, finish, inside, reclaim, refuse_inside_own_transaction};

/// Typed, version-checked operations on entities, over a storage backend.
///
/// A `Store` is a cheap handle: clone it to share it between tasks. Every operation's future is
/// `Send`, so it can run inside `tokio::spawn`.
///
/// ```
/// # use versioned_core::{Store, Error};
/// # async fn demo() -> Result<(), Error> {
/// let store = Store::memory();
/// # let _ = store;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Store<S> {
    backend: S,
    lock_wait: LockWait,
}

/// Anything the typed operations run on: a [`Store`] (and a transaction, which offers the same
/// operations). The helpers that `#[derive(Versioned)]` generates take any `Executor`.
pub trait Executor: Sync {
    /// The backend's row operations.
    type Access: RowAccess;

    /// The row operations this executor runs on.
    fn access(&self) -> &Self::Access;
}

impl<S: Storage> Executor for Store<S> {
    type Access = S;

    fn access(&self) -> &S {
        &self.backend
    }
}

impl<S> AsRef<Store<S>> for Store<S> {
    fn as_ref(&self) -> &Store<S> {
        self
    }
}

impl Store<MemoryStorage> {
    /// A store in memory: the reference backend, for tests and examples.
    pub fn memory() -> Self {
        Store::new(MemoryStorage::new())
    }
}

impl<S: Storage> Store<S> {
    /// A store over `backend`.
    pub fn new(backend: S) -> Self {
        Store { backend, lock_wait: LockWait::default() }
    }

    /// This store, with `get_for_update` waiting for locked records as `wait` says (default:
    /// up to 5 seconds).
    pub fn with_lock_wait(mut self, wait: LockWait) -> Self {
        self.lock_wait = wait;
        self
    }

    /// The backend.
    pub fn backend(&self) -> &S {
        &self.backend
    }

    /// Creates `T`'s table if it does not exist.
    pub async fn create_table<T: Entity>(&self) -> Result<()> {
        self.refuse("create_table")?;
        self.backend.create_table(T::TABLE).await
    }

    /// Stores a new record with version 1 and sets `t`'s version to 1.
    ///
    /// Fails with [`Error::AlreadyExists`](crate::Error::AlreadyExists) (leaving `t` unchanged)
    /// when a record has the same key.
    pub async fn insert<T: Entity>(&self, t: &mut T) -> Result<()> {
        self.refuse("insert")?;
        ops::insert(&self.backend, t).await
    }

    /// The record with this key, if any.
    pub async fn get<T: Entity>(&self, key: &T::Key) -> Result<Option<T>> {
        self.refuse("get")?;
        ops::get(&self.backend, key).await
    }

    /// The record with this key, only if its stored version is `version` (Slim3's
    /// `Datastore.get(class, key, version)`).
    ///
    /// Fails with [`Error::ConcurrentModification`](crate::Error::ConcurrentModification) when the
    /// stored version differs, and [`Error::NotFound`](crate::Error::NotFound) when there is no
    /// record.
    pub async fn get_with_version<T: Entity>(&self, key: &T::Key, version: T::Version) -> Result<T> {
        self.refuse("get_with_version")?;
        ops::get_with_version(&self.backend, key, version).await
    }

    /// Replaces the stored record with `t`, only if the stored version is still `t`'s version; on
    /// success the version goes up by one, in the store and in `t`.
    ///
    /// The check and the write are one step (`UPDATE … WHERE key = ? AND version = ?`). On a
    /// conflict nothing is written, `t` is unchanged, and the error carries the stored record (or
    /// says it has been deleted: a stale `put` never re-inserts a deleted record).
    pub async fn put<T: Entity>(&self, t: &mut T) -> Result<()> {
        self.refuse("put")?;
        ops::put(&self.backend, t).await
    }

    /// Writes `t` without a version check (OutSystems' "Force Update", Kii's overwrite): inserts it,
    /// or replaces the stored record. The new version is the stored version + 1 (1 for a new
    /// record), never reused, and is set in `t`.
    pub async fn put_unchecked<T: Entity>(&self, t: &mut T) -> Result<()> {
        self.refuse("put_unchecked")?;
        ops::put_unchecked(&self.backend, t).await
    }

    /// Deletes the record, only if its stored version is still `t`'s version.
    ///
    /// A conflict says `actual: None` when the record was already deleted.
    pub async fn delete<T: Entity>(&self, t: &T) -> Result<()> {
        self.refuse("delete")?;
        ops::delete(&self.backend, t).await
    }

    /// Deletes the record with this key, whatever its version. Returns whether a record was there.
    pub async fn delete_unchecked<T: Entity>(&self, key: &T::Key) -> Result<bool> {
        self.refuse("delete_unchecked")?;
        ops::delete_unchecked::<T, _>(&self.backend, key).await
    }

    /// A partial update (Kii's): only the columns set in `patch` change, the others are kept, and
    /// the version goes up by one. With [`Check::Version`] it is refused, changing nothing, unless
    /// the stored version is that one; with [`Check::Unchecked`] it applies to whatever is stored.
    /// `#[versioned(json)]` fields in the patch are merged into the stored document at every level
    /// (keys are never deleted). Returns the record as stored after the update.
    ///
    /// A missing record is [`Error::NotFound`](crate::Error::NotFound) without a check, and a
    /// conflict saying the record is gone with one: a partial update never creates a record.
    pub async fn patch<T: Entity>(&self, key: &T::Key, patch: T::Patch, check: Check<T::Version>) -> Result<T> {
        self.refuse("patch")?;
        ops::patch(&self.backend, key, patch, check).await
    }

    /// Increments the version, only if the stored version is still `t`'s, changing nothing else
    /// (Hibernate's `OPTIMISTIC_FORCE_INCREMENT`). Writers of related records can touch a parent
    /// to make its version the guard of the whole group: two of them racing, one gets the conflict.
    pub async fn touch<T: Entity>(&self, t: &mut T) -> Result<()> {
        self.refuse("touch")?;
        ops::touch(&self.backend, t).await
    }

    /// Runs `f` as one unit of work: all its writes commit together, or none do.
    ///
    /// `f` receives the [`Transaction`] handle and returns a future; if that future's result is
    /// `Ok`, the transaction commits, otherwise every write is rolled back and the error is returned
    /// unchanged. A [`ConcurrentModification`](crate::Error::ConcurrentModification) in any write
    /// (with `?`) therefore undoes the writes before it: the Kii Balance failure, where Update 1
    /// stays after Update 2 fails, cannot happen.
    ///
    /// # Dropping the future (cancellation, timeouts)
    ///
    /// - Dropped **before the closure's future has returned `Ok`**: nothing of the transaction is
    ///   ever written; the backend rolls it back.
    /// - Dropped **after the closure returned `Ok`** (while committing): the commit still runs to
    ///   its end, on a background task of the current tokio runtime. All the writes are applied
    ///   (or, if the commit itself fails, none); the caller just no longer hears which.
    /// - Completed: the result says what happened.
    ///
    /// Either way a transaction is applied whole or not at all. The one case no library can
    /// settle is a commit whose acknowledgement is lost (a connection dropped during `COMMIT` on a
    /// server): it reports an error although the database may have committed.
    ///
    /// # Using the store inside the closure
    ///
    /// Inside the closure, read and write through `tx`. Any operation through this same store on
    /// the same task (a read, a write, a nested `transaction`) would bypass the transaction, and
    /// could wait for it while it cannot end before the closure does: it fails at once with
    /// [`Error::StoreUsedInsideTransaction`](crate::Error::StoreUsedInsideTransaction). Other
    /// tasks use the store as usual.
    ///
    /// See the crate's README for an example, and the `balance` example for a whole story.
    pub async fn transaction<R, F, Fut>(&self, f: F) -> Result<R>
    where
        F: FnOnce(Transaction<S>) -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        self.refuse("transaction")?;
        let tx = Arc::new(self.backend.begin().await?);
        let result = inside(self.backend.identity(), f(Transaction::new(Arc::clone(&tx), self.lock_wait))).await;
        finish(reclaim(tx)?, result).await
    }

    /// [`transaction`](Self::transaction), run again from the start while it fails with a
    /// retryable error (a conflict, a busy database), as `policy` allows. Returns the result of the
    /// attempt that committed, or [`RetriesExhausted`](crate::Error::RetriesExhausted) with the
    /// last error. `f` runs once per attempt, so it must not have effects outside the transaction.
    pub async fn transaction_with_retry<R, F, Fut>(&self, policy: RetryPolicy, mut f: F) -> Result<R>
    where
        F: FnMut(Transaction<S>) -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        let mut attempts = policy.start();
        loop {
            match self.transaction(&mut f).await {
                Ok(value) => return Ok(value),
                Err(err) => attempts.failed(err).await?,
            }
        }
    }

    /// Reads the record, applies `f` to it, and writes it back with a checked [`put`](Self::put),
    /// all in one transaction; on a conflict, starts again from a fresh read, as `policy` allows.
    /// Returns what `f` returned in the attempt that committed.
    ///
    /// This is Kii's `getSequence` in one call. `f` may run more than once; it must not have
    /// effects outside the record.
    ///
    /// The read locks the record ([`Transaction::get_for_update`], waiting as the store's
    /// [`LockWait`] says), so updates of one hot record from many tasks queue for it instead of
    /// conflicting and retrying; the write is still checked against the version read. A missing record is [`Error::NotFound`](crate::Error::NotFound);
    /// running out of attempts is [`Error::RetriesExhausted`](crate::Error::RetriesExhausted).
    pub async fn update<T: Entity, R: Send>(
        &self,
        key: &T::Key,
        policy: RetryPolicy,
        mut f: impl FnMut(&mut T) -> R + Send,
    ) -> Result<R> {
        self.refuse("update")?;
        let mut attempts = policy.start();
        loop {
            match self.update_once(key, &mut f).await {
                Ok(value) => return Ok(value),
                Err(err) => attempts.failed(err).await?,
            }
        }
    }

    /// Refuses a write through this store inside one of its own transactions on this task.
    fn refuse(&self, operation: &'static str) -> Result<()> {
        refuse_inside_own_transaction(self.backend.identity(), operation)
    }

    /// One attempt of [`update`](Self::update), in its own transaction.
    async fn update_once<T: Entity, R>(&self, key: &T::Key, f: &mut impl FnMut(&mut T) -> R) -> Result<R> {
        let tx = self.backend.begin().await?;
        let result = ops::read_modify_write(&tx, key, self.lock_wait, f).await;
        finish(tx, result).await
    }
}
