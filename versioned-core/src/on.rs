//! [`On`]: the store's typed operations on a connection of yours, inside your own sqlx
//! transaction or not ([`Store::on`](crate::Store::on)).

use std::future::Future;

use crate::entity::Entity;
use crate::error::Result;
use crate::executor::Executor;
use crate::lock::LockWait;
use crate::ops;
use crate::patch::Check;
use crate::query::{Filter, Find};
use crate::storage::lent::nested;
use crate::storage::select::RowLock;
use crate::storage::{ConnectionOf, Lends, Lent, LockingRead};
use crate::value::KeyFor;

/// The typed operations of a [`Store`](crate::Store), run on a connection of yours: made by
/// [`Store::on`](crate::Store::on). The generated helpers (`Bug::get(&on, …)`, `bug.put(&on)`,
/// `Bug::find(&on)`) take it as they take a store.
///
/// Everything runs on that connection, so inside your transaction when it is in one: your own
/// statements and the checked writes commit together, or roll back together, and the library
/// never begins, commits or rolls back your transaction. A conflict is an error like any other
/// ([`Error::ConcurrentModification`](crate::Error::ConcurrentModification), with the stored
/// record) and, at the databases' default isolation levels, leaves your transaction usable: the
/// refused write matched no row, and the stored record is read with a plain `SELECT`. You decide
/// whether to commit or roll back. At PostgreSQL's `REPEATABLE READ` or `SERIALIZABLE` a write
/// to a row changed since your snapshot is refused by the server instead (retryable; your
/// transaction is aborted); at InnoDB's `REPEATABLE READ` (its default) the stored record is read
/// in your snapshot, so retry the whole transaction rather than the write inside it.
///
/// A batch (`put_all`, `insert_all`, `delete_all`, `patch_where`, `delete_where`; on MySQL also
/// `put_unchecked`, two statements) runs in a nested transaction of its own — a savepoint inside
/// yours, a transaction of its own outside one — so a refused batch undoes only itself. Begin
/// your transaction with sqlx (`pool.begin()`, `conn.begin()`), which counts the nesting: a
/// `BEGIN` you send as text is not counted, so a batch would send `BEGIN` (which on MySQL commits
/// what you wrote before) and then `COMMIT`. A batch's future dropped after its savepoint is set
/// is rolled back before the connection's next statement; one dropped (or refused) while sqlx
/// sets the savepoint makes sqlx roll back a level of yours, which the batch reports.
///
/// An error the database raises (not a conflict: a lock wait that expired, a value the column
/// refuses) is the database's: PostgreSQL then aborts your transaction, which can only be rolled
/// back, and MySQL rolls it back on a deadlock.
///
/// The store's own operations (`store.put`, not through `on`) run on the store's other
/// connections, outside your transaction: while your transaction holds a row (or SQLite's write
/// lock), they wait for it as the store's lock wait says.
///
/// Each table's schema is checked once per struct and store, on the first connection that uses
/// it: with one schema per tenant (`SET search_path`, `USE`), use one store per schema.
pub struct On<'c, S: Lends> {
    access: Lent<'c, S>,
}

impl<S: Lends> std::fmt::Debug for On<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("On").finish_non_exhaustive()
    }
}

impl<'c, S: Lends> Executor for On<'c, S>
where
    for<'x> Lent<'x, S>: LockingRead,
{
    type Access = Lent<'c, S>;

    fn reader(&self, _operation: &'static str) -> Result<&Lent<'c, S>> {
        Ok(&self.access)
    }

    fn writer(&self, _operation: &'static str) -> Result<&Lent<'c, S>> {
        Ok(&self.access)
    }
}

impl<'c, S: Lends> On<'c, S>
where
    for<'x> Lent<'x, S>: LockingRead,
{
    pub(crate) fn new(storage: &'c S, conn: &'c mut ConnectionOf<S>) -> Self {
        On { access: Lent::new(storage, conn) }
    }

    /// See [`Store::get`](crate::Store::get).
    pub async fn get<T: Entity>(&self, key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<Option<T>> {
        ops::get(&self.access, key).await
    }

    /// See [`Store::get_many`](crate::Store::get_many).
    pub async fn get_many<T: Entity, K: KeyFor<T::Key>>(&self, keys: &[K]) -> Result<Vec<Option<T>>> {
        ops::get_many(&self.access, keys).await
    }

    /// A query of the records of `T` on this connection: see [`Find`]. Inside a transaction,
    /// [`Find::for_update`] and [`Find::skip_locked`] lock what it returns.
    pub fn find<T: Entity>(&self) -> Find<'_, Self, T> {
        Find::new(self)
    }

    /// See [`Store::get_with_version`](crate::Store::get_with_version).
    pub async fn get_with_version<T: Entity>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        version: T::Version,
    ) -> Result<T> {
        ops::get_with_version(&self.access, key, version).await
    }

    /// The record with this key, locked until your transaction ends (`SELECT … FOR UPDATE`),
    /// waiting for a lock another transaction holds as your session says (`lock_timeout`,
    /// `innodb_lock_wait_timeout`: the library changes no setting of your connection), then
    /// [`Error::LockTimeout`](crate::Error::LockTimeout). Outside a transaction it is refused
    /// ([`Error::NoTransaction`](crate::Error::NoTransaction)): the lock would end with the
    /// statement. SQLite locks no rows: your transaction holds the database once it writes, or
    /// from its start if you begin it with `BEGIN IMMEDIATE` (`conn.begin_with("BEGIN IMMEDIATE")`).
    pub async fn get_for_update<T: Entity>(&self, key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<Option<T>> {
        ops::get_for_update(&self.access, key, LockWait::Forever).await
    }

    /// [`get_for_update`](Self::get_for_update) with `NOWAIT`: fails at once with
    /// [`Error::LockTimeout`](crate::Error::LockTimeout) when another transaction holds the record.
    pub async fn get_for_update_nowait<T: Entity>(&self, key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<Option<T>> {
        ops::get_for_update(&self.access, key, LockWait::NoWait).await
    }

    /// See [`Store::refresh`](crate::Store::refresh).
    pub async fn refresh<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::refresh(&self.access, t).await
    }

    /// See [`Store::insert`](crate::Store::insert).
    pub async fn insert<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::insert(&self.access, t).await
    }

    /// See [`Store::put`](crate::Store::put). A conflict leaves your transaction usable.
    pub fn put<T: Entity>(&self, t: &mut T) -> impl Future<Output = Result<()>> + Send {
        ops::put(self, t)
    }

    /// See [`Store::put_merging`](crate::Store::put_merging).
    pub async fn put_merging<T: Entity>(&self, base: &T, mine: &mut T) -> Result<crate::merge::MergeOutcome> {
        crate::merge::put_merging(self, base, mine).await
    }

    /// See [`Store::save`](crate::Store::save).
    pub async fn save<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::save(&self.access, t).await
    }

    /// See [`Store::put_unchecked`](crate::Store::put_unchecked).
    pub async fn put_unchecked<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::put_unchecked(&self.access, t).await
    }

    /// See [`Store::patch`](crate::Store::patch).
    pub async fn patch<T: Entity>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        patch: T::Patch,
        check: Check<T::Version>,
    ) -> Result<T> {
        ops::patch(&self.access, key, patch, check).await
    }

    /// See [`Store::touch`](crate::Store::touch).
    pub async fn touch<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::touch(&self.access, t).await
    }

    /// See [`Store::delete`](crate::Store::delete).
    pub async fn delete<T: Entity>(&self, t: &T) -> Result<()> {
        ops::delete(&self.access, t).await
    }

    /// See [`Store::delete_with_version`](crate::Store::delete_with_version).
    pub async fn delete_with_version<T: Entity>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        version: T::Version,
    ) -> Result<()> {
        ops::delete_with_version::<T, _>(&self.access, key, version).await
    }

    /// See [`Store::delete_unchecked`](crate::Store::delete_unchecked).
    pub async fn delete_unchecked<T: Entity>(&self, key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<bool> {
        ops::delete_unchecked::<T, _>(&self.access, key).await
    }

    /// See [`Store::put_all`](crate::Store::put_all): all or none, in a nested transaction of its
    /// own, so a refused batch leaves the rest of your transaction as it was.
    pub async fn put_all<T: Entity>(&self, ts: &mut [T]) -> Result<()> {
        ops::refuse_unstorable_versions(&self.access, ts).await?;
        let (rows, stamps) = ops::prepare_puts(ts)?;
        nested(&self.access, async |lent| ops::write_puts::<T, _>(lent, rows).await).await?;
        ops::settle_puts(ts, &stamps)
    }

    /// See [`Store::insert_all`](crate::Store::insert_all), in a nested transaction of its own.
    pub async fn insert_all<T: Entity>(&self, ts: &mut [T]) -> Result<()> {
        let (rows, stamps) = ops::prepare_inserts(ts)?;
        nested(&self.access, async |lent| ops::write_inserts::<T, _>(lent, rows).await).await?;
        ops::settle_inserts(ts, &stamps)
    }

    /// See [`Store::delete_all`](crate::Store::delete_all), in a nested transaction of its own.
    pub async fn delete_all<T: Entity>(&self, ts: &[T]) -> Result<()> {
        ops::refuse_unstorable_versions(&self.access, ts).await?;
        let keys = ops::prepare_deletes(ts)?;
        nested(&self.access, async |lent| ops::write_deletes::<T, _>(lent, keys).await).await
    }

    /// See [`Store::patch_where`](crate::Store::patch_where), in a nested transaction of its own
    /// (not retried: a retryable refusal is yours to handle, with your transaction).
    pub async fn patch_where<T: Entity>(&self, filter: Filter<T>, patch: T::Patch) -> Result<u64> {
        let columns = ops::prepare_patch_where::<T>(patch)?;
        nested(&self.access, async |lent| ops::patch_where(lent, filter, &columns).await).await
    }

    /// See [`Store::delete_where`](crate::Store::delete_where), in a nested transaction of its
    /// own (not retried).
    pub async fn delete_where<T: Entity>(&self, filter: Filter<T>) -> Result<u64> {
        nested(&self.access, async |lent| ops::delete_where(lent, filter).await).await
    }
}

impl<'e, 'c, S: Lends, T: Entity> Find<'e, On<'c, S>, T>
where
    for<'x> Lent<'x, S>: LockingRead,
{
    /// Locks every record returned until your transaction ends (`SELECT … FOR UPDATE`), waiting
    /// as your session says; refused outside a transaction. See [`On::get_for_update`].
    pub fn for_update(self) -> Self {
        self.locking(RowLock::Wait(LockWait::Forever))
    }

    /// Locks every record returned that no other transaction holds, and leaves out those it
    /// holds (`FOR UPDATE SKIP LOCKED`); refused outside a transaction.
    pub fn skip_locked(self) -> Self {
        self.locking(RowLock::SkipLocked)
    }
}
