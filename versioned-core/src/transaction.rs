//! Units of work: [`Transaction`], and committing or rolling back a backend transaction.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::entity::Entity;
use crate::error::{Error, Result, StorageError};
use crate::executor::Executor;
use crate::lock::LockWait;
use crate::ops;
use crate::patch::Check;
use crate::query::{Filter, Find};
use crate::storage::{SavepointStep, Storage, StorageTransaction};
use crate::value::KeyFor;

/// The handle of a transaction, given to the closure of
/// [`Store::transaction`](crate::Store::transaction) (or
/// [`read_transaction`](crate::Store::read_transaction)).
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
    shared: Arc<Shared>,
    /// How many savepoints this handle is inside (0: the transaction itself).
    depth: u32,
    read_only: bool,
    lock_wait: LockWait,
}

/// What every handle of one transaction (its savepoints' included) shares.
#[derive(Debug, Default)]
struct Shared {
    /// The depth of the innermost open savepoint: only the handle of that depth may be used.
    open: AtomicU32,
    /// A savepoint could not be ended (it failed, or its future was dropped midway): its writes
    /// may still be in the transaction, which must therefore not commit.
    broken: AtomicBool,
}

impl<S: Storage> std::fmt::Debug for Transaction<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("depth", &self.depth)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl<S: Storage> Executor for Transaction<S> {
    type Access = S::Transaction;

    fn reader(&self, operation: &'static str) -> Result<&S::Transaction> {
        if self.shared.open.load(Ordering::Acquire) != self.depth {
            return Err(Error::SavepointOpen { operation });
        }
        Ok(&self.inner)
    }

    fn writer(&self, operation: &'static str) -> Result<&S::Transaction> {
        if self.read_only {
            return Err(Error::ReadOnlyTransaction { operation });
        }
        self.reader(operation)
    }
}

impl<S: Storage> Transaction<S> {
    /// The handle of a new transaction, and what tells whether it may commit.
    pub(crate) fn new(inner: Arc<S::Transaction>, read_only: bool, lock_wait: LockWait) -> (Self, Committable) {
        let shared = Arc::<Shared>::default();
        (Transaction { inner, shared: Arc::clone(&shared), depth: 0, read_only, lock_wait }, Committable(shared))
    }

    /// How this transaction's locking reads wait (the store's [`LockWait`]).
    pub(crate) fn lock_wait(&self) -> LockWait {
        self.lock_wait
    }

    /// Whether writes through this handle are refused ([`Store::read_transaction`](crate::Store::read_transaction)).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The records with these keys, as this transaction sees them. See
    /// [`Store::get_many`](crate::Store::get_many).
    pub async fn get_many<T: Entity, K: KeyFor<T::Key>>(&self, keys: &[K]) -> Result<Vec<Option<T>>> {
        ops::get_many(self.reader("get_many")?, keys).await
    }

    /// A query of the records of `T` as this transaction sees them (its own writes included): see
    /// [`Find`].
    pub fn find<T: Entity>(&self) -> Find<'_, Self, T> {
        Find::new(self)
    }

    /// Applies `patch` to every record `filter` matches, in this transaction; how many it changed.
    /// See [`Store::patch_where`](crate::Store::patch_where).
    pub async fn patch_where<T: Entity>(&self, filter: Filter<T>, patch: T::Patch) -> Result<u64> {
        let columns = ops::prepare_patch_where::<T>(patch)?;
        ops::patch_where(self.writer("patch_where")?, filter, &columns).await
    }

    /// Deletes every record `filter` matches, in this transaction; how many it deleted.
    pub async fn delete_where<T: Entity>(&self, filter: Filter<T>) -> Result<u64> {
        ops::delete_where(self.writer("delete_where")?, filter).await
    }

    /// The record with this key, as this transaction sees it. See [`Store::get`](crate::Store::get).
    pub async fn get<T: Entity>(&self, key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<Option<T>> {
        ops::get(self.reader("get")?, key).await
    }

    /// The record with this key, locked against other writers until the transaction ends
    /// (OutSystems' `GetForUpdate`): pessimistic locking, for records many users edit at once.
    ///
    /// When another transaction holds the record, waits as the store's [`LockWait`] says (5
    /// seconds by default), then fails with [`Error::LockTimeout`](crate::Error::LockTimeout).
    /// How the record is locked is the backend's (see its module's docs); SQLite's transactions
    /// hold the whole database from their start, so there the wait happens when the transaction
    /// begins. Refused in a read-only transaction.
    pub async fn get_for_update<T: Entity>(&self, key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<Option<T>> {
        ops::get_for_update(self.writer("get_for_update")?, key, self.lock_wait).await
    }

    /// [`get_for_update`](Self::get_for_update), waiting for the lock as `wait` says.
    ///
    /// On SQLite the transaction already holds the whole database (it waited for it when it
    /// began, as the store's [`LockWait`] says), so there is nothing to wait for and `wait` has
    /// no effect: set the wait with [`Store::with_lock_wait`](crate::Store::with_lock_wait).
    pub async fn get_for_update_with<T: Entity>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        wait: LockWait,
    ) -> Result<Option<T>> {
        ops::get_for_update(self.writer("get_for_update_with")?, key, wait).await
    }

    /// See [`Store::get_with_version`](crate::Store::get_with_version).
    pub async fn get_with_version<T: Entity>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        version: T::Version,
    ) -> Result<T> {
        ops::get_with_version(self.reader("get_with_version")?, key, version).await
    }

    /// See [`Store::refresh`](crate::Store::refresh): `t` becomes the record as this transaction
    /// sees it.
    pub async fn refresh<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::refresh(self.reader("refresh")?, t).await
    }

    /// See [`Store::insert`](crate::Store::insert).
    pub async fn insert<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::insert(self.writer("insert")?, t).await
    }

    /// See [`Store::put`](crate::Store::put). A conflict here fails the transaction: return the
    /// error (with `?`) and nothing of the transaction is written.
    pub fn put<T: Entity>(&self, t: &mut T) -> impl Future<Output = Result<()>> + Send {
        ops::put(self, t)
    }

    /// See [`Store::put_merging`](crate::Store::put_merging): the merge reads the stored record
    /// as this transaction sees it.
    pub async fn put_merging<T: Entity>(&self, base: &T, mine: &mut T) -> Result<crate::merge::MergeOutcome> {
        crate::merge::put_merging(self, base, mine).await
    }

    /// See [`Store::save`](crate::Store::save).
    pub async fn save<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::save(self.writer("save")?, t).await
    }

    /// See [`Store::put_unchecked`](crate::Store::put_unchecked).
    pub async fn put_unchecked<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::put_unchecked(self.writer("put_unchecked")?, t).await
    }

    /// See [`Store::patch`](crate::Store::patch).
    pub async fn patch<T: Entity>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        patch: T::Patch,
        check: Check<T::Version>,
    ) -> Result<T> {
        ops::patch(self.writer("patch")?, key, patch, check).await
    }

    /// See [`Store::touch`](crate::Store::touch).
    pub async fn touch<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::touch(self.writer("touch")?, t).await
    }

    /// See [`Store::delete`](crate::Store::delete).
    pub async fn delete<T: Entity>(&self, t: &T) -> Result<()> {
        ops::delete(self.writer("delete")?, t).await
    }

    /// See [`Store::delete_with_version`](crate::Store::delete_with_version). A conflict here fails
    /// the transaction, as a `put`'s does.
    pub async fn delete_with_version<T: Entity>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        version: T::Version,
    ) -> Result<()> {
        ops::delete_with_version::<T, _>(self.writer("delete_with_version")?, key, version).await
    }

    /// See [`Store::delete_unchecked`](crate::Store::delete_unchecked).
    pub async fn delete_unchecked<T: Entity>(&self, key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<bool> {
        ops::delete_unchecked::<T, _>(self.writer("delete_unchecked")?, key).await
    }

    /// See [`Store::put_all`](crate::Store::put_all): all or none, inside this transaction (in a
    /// savepoint of its own, so a refused batch leaves the rest of the transaction as it was).
    pub async fn put_all<T: Entity>(&self, ts: &mut [T]) -> Result<()> {
        ops::refuse_unstorable_versions(self.writer("put_all")?, ts).await?;
        let (rows, stamps) = ops::prepare_puts(ts)?;
        self.savepoint(move |sp| async move { ops::write_puts::<T, _>(sp.writer("put_all")?, rows).await }).await?;
        ops::settle_puts(ts, &stamps)
    }

    /// See [`Store::insert_all`](crate::Store::insert_all), inside this transaction (in a
    /// savepoint of its own).
    pub async fn insert_all<T: Entity>(&self, ts: &mut [T]) -> Result<()> {
        self.writer("insert_all")?;
        let (rows, stamps) = ops::prepare_inserts(ts)?;
        self.savepoint(move |sp| async move { ops::write_inserts::<T, _>(sp.writer("insert_all")?, rows).await })
            .await?;
        ops::settle_inserts(ts, &stamps)
    }

    /// See [`Store::delete_all`](crate::Store::delete_all), inside this transaction (in a
    /// savepoint of its own).
    pub async fn delete_all<T: Entity>(&self, ts: &[T]) -> Result<()> {
        ops::refuse_unstorable_versions(self.writer("delete_all")?, ts).await?;
        let keys = ops::prepare_deletes(ts)?;
        self.savepoint(move |sp| async move { ops::write_deletes::<T, _>(sp.writer("delete_all")?, keys).await }).await
    }

    /// Runs `f` as a part of this transaction that can fail alone (a nested transaction: SQL's
    /// `SAVEPOINT`, Rails' `requires_new: true`).
    ///
    /// `f` gets a handle to the same transaction. If its future returns `Ok`, its writes stay part
    /// of the transaction (and commit, or roll back, with it); if it returns an error, its writes
    /// are undone, the error is returned, and the transaction goes on — handle the error and
    /// carry on, or return it to roll everything back. Savepoints nest.
    ///
    /// While the savepoint is open, use only its handle: an operation through an outer handle
    /// fails with [`Error::SavepointOpen`](crate::Error::SavepointOpen), as it would silently
    /// become part of the savepoint. Open it when no other operation of the transaction is
    /// running: one already under way (in a `join!` beside the savepoint) is not refused, and the
    /// statements it has left would run inside the savepoint. If the savepoint cannot be ended (its future is dropped
    /// before it completes, or the database refuses), the transaction will not commit: its
    /// closure's `Ok` becomes an error, and everything is rolled back.
    ///
    /// As with [`Store::transaction`](crate::Store::transaction), `f`'s future owns what it
    /// uses, so a copy written in a savepoint that is undone never reaches you with the version it
    /// was given.
    ///
    /// ```
    /// # use versioned_core::{Store, Error};
    /// # use versioned_core::ops as _;
    /// # async fn demo(store: Store<versioned_core::MemoryStorage>) -> Result<(), Error> {
    /// store
    ///     .transaction(|tx| async move {
    ///         // ... writes that must commit ...
    ///         let optional = tx.savepoint(|sp| async move {
    ///             // ... writes that may fail alone ...
    ///             # let _ = sp;
    ///             Ok(())
    ///         });
    ///         if let Err(err) = optional.await {
    ///             eprintln!("skipped: {err}"); // its writes are undone; the rest commits
    ///         }
    ///         Ok(())
    ///     })
    ///     .await
    /// # }
    /// ```
    pub async fn savepoint<R, F, Fut>(&self, f: F) -> Result<R>
    where
        F: FnOnce(Transaction<S>) -> Fut,
        Fut: Future<Output = Result<R>> + 'static,
    {
        let depth = self.depth + 1;
        // Claimed before the first await, so that of two savepoints opened at once from one handle
        // the second is refused.
        if self.shared.open.compare_exchange(self.depth, depth, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Err(Error::SavepointOpen { operation: "savepoint" });
        }
        // Until the savepoint is set, failing or being dropped gives the depth back: nothing was
        // written since, and a savepoint that was set after all just stays open inside the
        // transaction, which commits or rolls back with it.
        let claim = Reopen { shared: &self.shared, depth: self.depth };
        self.inner.savepoint(SavepointStep::Set { depth }).await?;
        std::mem::forget(claim);
        // From here until the savepoint is ended, a drop (or a failed step) breaks the transaction.
        let guard = Unfinished(&self.shared);
        let handle = Transaction { depth, ..self.handle() };
        let result = f(handle).await;
        let step = match &result {
            Ok(_) => SavepointStep::Release { depth },
            Err(_) => SavepointStep::RollBack { depth },
        };
        self.inner.savepoint(step).await?;
        self.shared.open.store(self.depth, Ordering::Release);
        std::mem::forget(guard);
        result
    }

    /// Another handle to this transaction, at this handle's depth.
    fn handle(&self) -> Self {
        Transaction {
            inner: Arc::clone(&self.inner),
            shared: Arc::clone(&self.shared),
            depth: self.depth,
            read_only: self.read_only,
            lock_wait: self.lock_wait,
        }
    }
}

/// Tells, once a transaction's closure is done, whether it may commit.
pub(crate) struct Committable(Arc<Shared>);

impl Committable {
    /// Refuses a transaction with a savepoint left unfinished: the savepoint's writes may be in it.
    pub(crate) fn check(&self) -> Result<()> {
        if self.0.broken.load(Ordering::Acquire) {
            return Err(StorageError::new(
                "a savepoint of this transaction was not ended (its future was dropped, or the database refused \
                 to end it): nothing was committed",
            )
            .into());
        }
        Ok(())
    }
}

/// Gives the open depth back to `depth` when dropped: armed while a savepoint is being set.
struct Reopen<'a> {
    shared: &'a Shared,
    depth: u32,
}

impl Drop for Reopen<'_> {
    fn drop(&mut self) {
        self.shared.open.store(self.depth, Ordering::Release);
    }
}

/// Marks the transaction broken when dropped: armed while a savepoint is open, forgotten once the
/// savepoint has been ended.
struct Unfinished<'a>(&'a Shared);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        self.0.broken.store(true, Ordering::Release);
    }
}
