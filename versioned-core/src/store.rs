//! [`Store`]: the typed API over any [`Storage`].

use std::future::Future;
use std::sync::Arc;

use tracing::Instrument;

use crate::commit::{finish, reclaim};
use crate::entity::Entity;
use crate::error::Result;
use crate::executor::Executor;
use crate::heat::Heat;
use crate::lock::LockWait;
use crate::observe::{Kind, Operation, UpdateMode, observed};
use crate::ops;
use crate::patch::Check;
use crate::query::{Filter, Find};
use crate::reentrancy::{inside, refuse_inside_own_transaction};
use crate::retry::RetryPolicy;
use crate::revisions::{Revision, WithHistory};
use crate::storage::memory::MemoryStorage;
use crate::storage::{HotUpdates, Storage};
use crate::transaction::Transaction;
use crate::value::KeyFor;

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
    /// How contended each record is, for `update`'s choice: shared by the store's clones.
    heat: Arc<Heat>,
}

impl<S: Storage> Executor for Store<S> {
    type Access = S;

    #[inline]
    fn reader(&self, operation: &'static str) -> Result<&S> {
        refuse_inside_own_transaction(self.backend.capabilities().identity, operation)?;
        Ok(&self.backend)
    }

    #[inline]
    fn writer(&self, operation: &'static str) -> Result<&S> {
        self.reader(operation)
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
        Store { backend, lock_wait: LockWait::default(), heat: Arc::default() }
    }

    /// This store, with `get_for_update` (and [`update`](Self::update)'s locked read) waiting for
    /// locked records as `wait` says (default: up to 5 seconds), then failing with
    /// [`Error::LockTimeout`](crate::Error::LockTimeout). `update` waits for a hot record's turn
    /// as long too (then its attempt locks the record instead, so it can wait twice as long in
    /// all).
    ///
    /// Where a backend waits is its own (see its module's docs): SQLite's transactions hold the
    /// whole database, so there the wait is for the write lock when a transaction begins.
    pub fn with_lock_wait(mut self, wait: LockWait) -> Self {
        self.lock_wait = wait;
        self
    }

    /// How long transactions wait for a record another transaction holds: see
    /// [`with_lock_wait`](Self::with_lock_wait).
    pub fn lock_wait(&self) -> LockWait {
        self.lock_wait
    }

    /// The backend.
    pub fn backend(&self) -> &S {
        &self.backend
    }

    /// The store's operations on `conn`, a connection of yours: `&mut *tx` of your own
    /// `sqlx::Transaction`, so that checked writes commit (or roll back) with your own statements
    /// in it; or a pooled connection. See [`On`](crate::On).
    ///
    /// `conn` must be a connection to the store's database: the store's statements (and its
    /// check of each table's schema, made once) are used on it.
    ///
    /// ```no_run
    /// # use versioned_core as versioned;
    /// # #[derive(versioned_derive::Versioned)]
    /// # #[versioned(crate = versioned_core, table = "bugs")]
    /// # struct Bug { #[key] id: i64, title: String, #[version] version: u64 }
    /// # async fn demo(pool: sqlx::PgPool, mut bug: Bug) -> Result<(), Box<dyn std::error::Error>> {
    /// let store = versioned::Store::new(versioned::PostgresStorage::from_pool(pool.clone()));
    /// let mut tx = pool.begin().await?;
    /// bug.put(&store.on(&mut *tx)).await?; // a conflict: `?` returns, and `tx` rolls back on drop
    /// sqlx::query("INSERT INTO outbox (topic, body) VALUES ('bug.updated', $1)")
    ///     .bind(bug.id)
    ///     .execute(&mut *tx)
    ///     .await?;
    /// tx.commit().await?; // both, or neither
    /// # Ok(()) }
    /// ```
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    pub fn on<'c>(&'c self, conn: &'c mut crate::storage::ConnectionOf<S>) -> crate::On<'c, S>
    where
        S: crate::storage::Lends,
        for<'x> crate::storage::Lent<'x, S>: crate::storage::LockingRead,
    {
        crate::On::new(&self.backend, conn)
    }

    /// Creates `T`'s table if it does not exist.
    pub async fn create_table<T: Entity>(&self) -> Result<()> {
        self.writer("create_table")?;
        self.backend.create_table(T::TABLE).await
    }

    /// Stores a new record with version 1 and sets `t`'s version to 1.
    ///
    /// Fails with [`Error::AlreadyExists`](crate::Error::AlreadyExists) (leaving `t` unchanged)
    /// when a record has the same key.
    pub async fn insert<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::insert(self.writer("insert")?, t).await
    }

    /// The record with this key, if any.
    pub async fn get<T: Entity>(&self, key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<Option<T>> {
        ops::get(self.reader("get")?, key).await
    }

    /// The records with these keys, in the order of the keys: `None` where no record has the key.
    /// One query per 30,000 keys.
    pub async fn get_many<T: Entity, K: KeyFor<T::Key>>(&self, keys: &[K]) -> Result<Vec<Option<T>>> {
        ops::get_many(self.reader("get_many")?, keys).await
    }

    /// A query of the records of `T`, to filter, order and run: see [`Find`].
    ///
    /// ```
    /// # use versioned_core as versioned;
    /// # use versioned::Store;
    /// # #[derive(versioned_derive::Versioned, Debug)]
    /// # #[versioned(crate = versioned_core)]
    /// # struct Bug { #[key] id: i64, status: String, #[version] version: u64 }
    /// # async fn run() -> versioned::Result<()> {
    /// let store = Store::memory();
    /// store.create_table::<Bug>().await?;
    /// let open = store.find::<Bug>().filter(Bug::STATUS.eq("open")).order_by(Bug::ID.desc()).page(20).await?;
    /// # let _ = open; Ok(()) }
    /// ```
    pub fn find<T: Entity>(&self) -> Find<'_, Self, T> {
        Find::new(self)
    }

    /// The record with this key, only if its stored version is `version` (Slim3's
    /// `Datastore.get(class, key, version)`).
    ///
    /// Fails with [`Error::ConcurrentModification`](crate::Error::ConcurrentModification) when the
    /// stored version differs, and [`Error::NotFound`](crate::Error::NotFound) when there is no
    /// record.
    pub async fn get_with_version<T: Entity>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        version: T::Version,
    ) -> Result<T> {
        ops::get_with_version(self.reader("get_with_version")?, key, version).await
    }

    /// Every version of the record with this key that its history keeps, oldest first, its
    /// deletions included (`#[versioned(history)]` on `T`; see [`revisions`](crate::revisions)).
    /// Empty when the key was never written.
    ///
    /// ```
    /// # use versioned_core as versioned;
    /// # #[derive(versioned_derive::Versioned, Debug)]
    /// # #[versioned(crate = versioned_core, history)]
    /// # struct Bug { #[key] id: i64, status: String, #[version] version: u64 }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> versioned::Result<()> {
    /// let store = versioned::Store::memory();
    /// store.create_table::<Bug>().await?;
    /// let mut bug = Bug { id: 1, status: "open".into(), version: 0 };
    /// store.insert(&mut bug).await?;
    /// bug.status = "fixed".into();
    /// store.put(&mut bug).await?;
    ///
    /// let history = store.history::<Bug>(&1).await?;
    /// assert_eq!(history.iter().map(|r| (r.version, r.record.status.as_str())).collect::<Vec<_>>(),
    ///            [(1, "open"), (2, "fixed")]);
    /// assert_eq!(store.revision::<Bug>(&1, 1).await?.unwrap().record.status, "open");
    /// # Ok(()) }
    /// ```
    pub async fn history<T: WithHistory>(&self, key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<Vec<Revision<T>>> {
        ops::history(self.reader("history")?, key).await
    }

    /// The record with this key as it was written at `version`, from its history
    /// (`#[versioned(history)]` on `T`); `None` when the history does not hold that version (never
    /// written, or dropped by the retention).
    pub async fn revision<T: WithHistory>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        version: T::Version,
    ) -> Result<Option<Revision<T>>> {
        ops::revision(self.reader("revision")?, key, version).await
    }

    /// Replaces the stored record with `t`, only if the stored version is still `t`'s version; on
    /// success the version goes up by one, in the store and in `t`.
    ///
    /// The check and the write are one step (`UPDATE … WHERE key = ? AND version = ?`). On a
    /// conflict nothing is written, `t` is unchanged, and the error carries the stored record (or
    /// says it has been deleted: a stale `put` never re-inserts a deleted record).
    pub fn put<T: Entity>(&self, t: &mut T) -> impl Future<Output = Result<()>> + Send {
        ops::put(self, t)
    }

    /// Writes `t` without a version check (OutSystems' "Force Update", Kii's overwrite): inserts it,
    /// or replaces the stored record. The new version is the stored version + 1 (1 for a new
    /// record), never reused, and is set in `t`.
    pub async fn put_unchecked<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::put_unchecked(self.writer("put_unchecked")?, t).await
    }

    /// Stores `t` whether it is new or not, checked either way (Hibernate's `upsert` of a versioned
    /// entity): a copy at version 0 is new and is inserted at version 1; any other copy replaces
    /// the stored record only if its version is still `t`'s, as [`put`](Self::put). On success
    /// the version in `t` is the stored one.
    ///
    /// Fails with [`Error::ConcurrentModification`](crate::Error::ConcurrentModification), writing
    /// nothing and leaving `t` unchanged, when the stored version is not `t`'s: a new copy whose
    /// key is taken (`expected: 0`, with the stored record), a stale copy, or a copy of a record
    /// that was deleted (`actual: None`: `save` never re-inserts a deleted record either).
    pub async fn save<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::save(self.writer("save")?, t).await
    }

    /// A checked [`put`](Self::put) of `mine`, your edit of `base` (the copy you started from),
    /// that resolves a conflict by merging when it can (a three-way merge, field by field: see
    /// [`merge`](crate::merge) for the rules). Refused because another writer saved the record
    /// since `base`, it merges your changes into the stored record; where no field collides it
    /// puts the merged record, checked against the version it merged with (a writer in between
    /// refuses it again, and it merges again, up to 10 times). `mine` becomes the record written.
    ///
    /// Fields both sides changed to different values are [`Error::Collisions`](crate::Error::Collisions),
    /// each with the base, your and the stored value, and nothing is written. A record deleted
    /// since is the put's [`ConcurrentModification`](crate::Error::ConcurrentModification).
    /// Unlike [`update`](Self::update), which reapplies a function to a fresh read, this keeps an
    /// edit made elsewhere (a form, a client) whose intent is only its changed fields.
    pub async fn put_merging<T: Entity>(&self, base: &T, mine: &mut T) -> Result<crate::merge::MergeOutcome> {
        crate::merge::put_merging(self, base, mine).await
    }

    /// [`put_merging`](Self::put_merging) with the base taken from the record's history: `mine`
    /// is your edit of the record as it was at `mine`'s version (the version a form or a client
    /// read, say from its `If-Match`), and the history (`#[versioned(history)]` on `T`) supplies
    /// that version's record. Where the history no longer holds it (its retention dropped it), it
    /// is a plain checked [`put`](Self::put): a stale copy is then a
    /// [`ConcurrentModification`](crate::Error::ConcurrentModification), as without history.
    pub async fn put_merging_from_history<T: WithHistory>(&self, mine: &mut T) -> Result<crate::merge::MergeOutcome> {
        match self.revision::<T>(mine.key(), mine.version()).await? {
            Some(base) if !base.deleted => self.put_merging(&base.record, mine).await,
            _ => {
                self.put(mine).await?;
                Ok(crate::merge::MergeOutcome::default())
            }
        }
    }

    /// A [`patch`](Self::patch) sent with the version it was made against (an HTTP `PATCH` with
    /// `If-Match`), merged like [`put_merging_from_history`](Self::put_merging_from_history): the
    /// patch is applied to the history's record at `version` (JSON documents merged into it), and
    /// that edit is put with [`put_merging`](Self::put_merging), so that fields others changed
    /// since are kept and fields both changed are [`Error::Collisions`](crate::Error::Collisions).
    /// Returns the record written. Where the history no longer holds `version`, it is
    /// `patch(key, patch, Check::Version(version))`.
    pub async fn patch_merging_from_history<T: WithHistory>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        patch: T::Patch,
        version: T::Version,
    ) -> Result<(T, crate::merge::MergeOutcome)> {
        match self.revision::<T>(key, version).await? {
            Some(base) if !base.deleted => {
                let mut mine = ops::patched(&base.record, patch)?;
                let outcome = self.put_merging(&base.record, &mut mine).await?;
                Ok((mine, outcome))
            }
            _ => {
                let written = self.patch(key, patch, Check::Version(version)).await?;
                Ok((written, crate::merge::MergeOutcome::default()))
            }
        }
    }

    /// Replaces every stored record with its copy in `ts`, each only if its stored version is
    /// still the copy's: all of them, or none. On success every copy's version goes up by one.
    ///
    /// The checks are those of [`put`](Self::put), kept for every record (a bulk write that skips
    /// them — JPA's bulk update, Rails' `update_all` — is what this is not), in one transaction
    /// (how many statements each backend sends: its own docs). When any check fails nothing is
    /// written, the copies are unchanged, and the error is
    /// [`Error::Conflicts`](crate::Error::Conflicts) listing *every* refused record with its stored
    /// version (EF Core's `DbUpdateConcurrencyException.Entries`), not only the first. A key may
    /// appear once per batch.
    pub async fn put_all<T: Entity>(&self, ts: &mut [T]) -> Result<()> {
        ops::refuse_unstorable_versions(self.writer("put_all")?, ts).await?;
        let (rows, stamps) = ops::prepare_puts(ts)?;
        self.run_transaction("put_all", false, move |tx| async move {
            ops::write_puts::<T, _>(tx.writer("put_all")?, rows).await
        })
        .await?;
        ops::settle_puts(ts, &stamps)
    }

    /// Applies `patch` to every record `filter` matches, in one statement inside a transaction of
    /// its own (retried as the default [`RetryPolicy`] allows when the backend refuses it
    /// retryably): each record's version goes up by one and its `updated_at` is stamped, so that
    /// every copy read before conflicts afterwards (Rails' `update_all` with `lock_version`).
    /// Returns how many records it changed. Unlike [`put_all`](Self::put_all), which checks each
    /// copy's version, it checks none: it writes whatever the records hold now. A record whose
    /// version is at its maximum is left unchanged and not counted; a patch that merges a JSON
    /// document is refused (`Error::Encode`: each record's document differs).
    pub async fn patch_where<T: Entity>(&self, filter: Filter<T>, patch: T::Patch) -> Result<u64> {
        let columns = ops::prepare_patch_where::<T>(patch)?;
        let mut attempts = RetryPolicy::default().start("patch_where");
        loop {
            let (filter, columns) = (filter.clone(), columns.clone());
            let attempt = self.run_transaction("patch_where", false, move |tx| async move {
                ops::patch_where(tx.writer("patch_where")?, filter, &columns).await
            });
            match attempt.await {
                Ok(changed) => return Ok(changed),
                Err(err) => attempts.failed(err).await?,
            }
        }
    }

    /// Deletes every record `filter` matches, in one statement inside a transaction of its own
    /// (retried as [`patch_where`](Self::patch_where) is); how many it deleted. No version is
    /// checked.
    pub async fn delete_where<T: Entity>(&self, filter: Filter<T>) -> Result<u64> {
        let mut attempts = RetryPolicy::default().start("delete_where");
        loop {
            let filter = filter.clone();
            let attempt = self.run_transaction("delete_where", false, move |tx| async move {
                ops::delete_where(tx.writer("delete_where")?, filter).await
            });
            match attempt.await {
                Ok(deleted) => return Ok(deleted),
                Err(err) => attempts.failed(err).await?,
            }
        }
    }

    /// Stores every copy in `ts` as a new record at version 1: all of them, or none. A key already
    /// taken refuses the whole batch with [`Error::Conflicts`](crate::Error::Conflicts) listing
    /// every taken key ([`Error::AlreadyExists`](crate::Error::AlreadyExists) each); the copies are
    /// then unchanged. One statement per chunk of up to 1,000 records where the database can.
    pub async fn insert_all<T: Entity>(&self, ts: &mut [T]) -> Result<()> {
        let (rows, stamps) = ops::prepare_inserts(ts)?;
        self.run_transaction("insert_all", false, move |tx| async move {
            ops::write_inserts::<T, _>(tx.writer("insert_all")?, rows).await
        })
        .await?;
        ops::settle_inserts(ts, &stamps)
    }

    /// Deletes every record of `ts`, each only if its stored version is still the copy's: all of
    /// them, or none, with every refusal in [`Error::Conflicts`](crate::Error::Conflicts).
    pub async fn delete_all<T: Entity>(&self, ts: &[T]) -> Result<()> {
        ops::refuse_unstorable_versions(self.writer("delete_all")?, ts).await?;
        let keys = ops::prepare_deletes(ts)?;
        self.run_transaction("delete_all", false, move |tx| async move {
            ops::write_deletes::<T, _>(tx.writer("delete_all")?, keys).await
        })
        .await
    }

    /// Replaces `t` with the stored record (its fields and version), so that "the store wins" is
    /// one call after a conflict. Fails with [`Error::NotFound`](crate::Error::NotFound), leaving
    /// `t` unchanged, when the record has been deleted.
    pub async fn refresh<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::refresh(self.reader("refresh")?, t).await
    }

    /// Deletes the record, only if its stored version is still `t`'s version.
    ///
    /// A conflict says `actual: None` when the record was already deleted.
    pub async fn delete<T: Entity>(&self, t: &T) -> Result<()> {
        ops::delete(self.writer("delete")?, t).await
    }

    /// Deletes the record with this key, only if its stored version is `version`: the checked
    /// [`delete`](Self::delete) when what you hold is a key and a version rather than a copy (an
    /// HTTP `DELETE` with `If-Match`, a form that carried the version it was rendered with). The
    /// check is the delete's own (`DELETE … WHERE key = ? AND version = ?`): nothing is read
    /// first.
    ///
    /// Fails with [`Error::ConcurrentModification`](crate::Error::ConcurrentModification), deleting
    /// nothing, when the stored version is another (the error carries the stored record) or there
    /// is no record (`actual: None`).
    ///
    /// ```
    /// # use versioned_core::{Entity, Error, MemoryStorage, Store};
    /// # async fn demo<Person: Entity<Key = i64, Version = u64>>(store: Store<MemoryStorage>) -> Result<(), Error> {
    /// // `DELETE /people/1` with `If-Match` naming version 3:
    /// match store.delete_with_version::<Person>(&1, 3).await {
    ///     Ok(()) => {}                                                       // 204 No Content
    ///     Err(Error::ConcurrentModification { actual: None, .. }) => {}      // 404: already gone
    ///     Err(Error::ConcurrentModification { actual: Some(_), .. }) => {}   // 412: changed since
    ///     Err(other) => return Err(other),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn delete_with_version<T: Entity>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        version: T::Version,
    ) -> Result<()> {
        ops::delete_with_version::<T, _>(self.writer("delete_with_version")?, key, version).await
    }

    /// Deletes the record with this key, whatever its version. Returns whether a record was there.
    pub async fn delete_unchecked<T: Entity>(&self, key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<bool> {
        ops::delete_unchecked::<T, _>(self.writer("delete_unchecked")?, key).await
    }

    /// A partial update (Kii's): only the columns set in `patch` change, the others are kept, and
    /// the version goes up by one. With [`Check::Version`] it is refused, changing nothing, unless
    /// the stored version is that one; with [`Check::Unchecked`] it applies to whatever is stored.
    /// `#[versioned(json)]` fields in the patch are merged into the stored document at every level
    /// (keys are never deleted). Returns the record as stored after the update.
    ///
    /// A missing record is [`Error::NotFound`](crate::Error::NotFound) without a check, and a
    /// conflict saying the record is gone with one: a partial update never creates a record.
    pub async fn patch<T: Entity>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        patch: T::Patch,
        check: Check<T::Version>,
    ) -> Result<T> {
        ops::patch(self.writer("patch")?, key, patch, check).await
    }

    /// Increments the version, only if the stored version is still `t`'s, changing nothing else
    /// (Hibernate's `OPTIMISTIC_FORCE_INCREMENT`). Writers of related records can touch a parent
    /// to make its version the guard of the whole group: two of them racing, one gets the conflict.
    pub async fn touch<T: Entity>(&self, t: &mut T) -> Result<()> {
        ops::touch(self.writer("touch")?, t).await
    }

    /// Runs `f` as one unit of work: all its writes commit together, or none do.
    ///
    /// `f` receives the [`Transaction`] handle and returns a future; if its result is `Ok` the
    /// transaction commits, otherwise every write is rolled back and the error is returned
    /// unchanged, so a conflict in any write (with `?`) undoes the writes before it. Dropped before
    /// the closure returned `Ok`, nothing is written; dropped while committing, the commit runs to
    /// its end on a background task. Inside the closure, use `tx`: the store itself fails at once
    /// with [`Error::StoreUsedInsideTransaction`](crate::Error::StoreUsedInsideTransaction).
    ///
    /// The future must own what it uses (`'static`), so a copy written inside (its version bumped)
    /// comes back only through `Ok`, never from a transaction that rolled back:
    ///
    /// ```
    /// # use versioned_core::{Store, Error, Entity};
    /// # async fn demo<T: Entity + Clone>(store: Store<versioned_core::MemoryStorage>, mut p: T) -> Result<(), Error> {
    /// let mut copy = p.clone(); // or move `p` itself in
    /// p = store.transaction(|tx| async move { tx.put(&mut copy).await?; Ok(copy) }).await?;
    /// # let _ = p; Ok(()) }
    /// ```
    ///
    /// How each backend runs a transaction (isolation, locks) is in its own docs and the README's
    /// Transactions section.
    pub async fn transaction<R, F, Fut>(&self, f: F) -> Result<R>
    where
        F: FnOnce(Transaction<S>) -> Fut,
        Fut: Future<Output = Result<R>> + 'static,
    {
        self.run_transaction("transaction", false, f).await
    }

    /// Runs `f` in a read-only transaction: every read sees one consistent snapshot of the store,
    /// and nothing is locked for writing (how each backend takes its snapshot: its own docs).
    /// Writes through it, and
    /// `get_for_update`, fail with [`Error::ReadOnlyTransaction`](crate::Error::ReadOnlyTransaction)
    /// before reaching the database. Use it for reports and pages that read several records that
    /// must agree with each other.
    pub async fn read_transaction<R, F, Fut>(&self, f: F) -> Result<R>
    where
        F: FnOnce(Transaction<S>) -> Fut,
        Fut: Future<Output = Result<R>> + 'static,
    {
        self.run_transaction("read_transaction", true, f).await
    }

    async fn run_transaction<R, F, Fut>(&self, operation: &'static str, read_only: bool, f: F) -> Result<R>
    where
        F: FnOnce(Transaction<S>) -> Fut,
        Fut: Future<Output = Result<R>> + 'static,
    {
        self.writer(operation)?;
        let transaction = async {
            let tx = Arc::new(if read_only {
                self.backend.begin_read_only().await?
            } else {
                self.backend.begin_with_lock_wait(self.lock_wait).await?
            });
            let (handle, committable) = Transaction::new(Arc::clone(&tx), read_only, self.lock_wait);
            let result = inside(self.backend.capabilities().identity, f(handle)).await;
            let result = result.and_then(|value| committable.check().map(|()| value));
            finish(reclaim(tx)?, result).await
        };
        observed!(Operation::spanning(operation), Kind::Transaction, |_| ("committed", 0), transaction)
    }

    /// [`transaction`](Self::transaction), run again from the start while it fails with a
    /// retryable error (a conflict, a busy database), as `policy` allows. Returns the result of the
    /// attempt that committed, or [`RetriesExhausted`](crate::Error::RetriesExhausted) with the
    /// last error. `f` runs once per attempt, so it must not have effects outside the transaction.
    pub async fn transaction_with_retry<R, F, Fut>(&self, policy: RetryPolicy, mut f: F) -> Result<R>
    where
        F: FnMut(Transaction<S>) -> Fut,
        Fut: Future<Output = Result<R>> + 'static,
    {
        let mut attempts = policy.start("transaction");
        loop {
            match self.transaction(&mut f).instrument(attempts.span()).await {
                Ok(value) => return Ok(value),
                Err(err) => attempts.failed(err).await?,
            }
        }
    }

    /// Reads the record, applies `f` to it, and writes it back with a checked [`put`](Self::put);
    /// on a conflict, starts again from a fresh read, as `policy` allows. Returns what `f`
    /// returned in the attempt that wrote.
    ///
    /// This is Kii's `getSequence` in one call. `f` may run more than once; it must not have
    /// effects outside the record.
    ///
    /// Each attempt chooses how by how contended the record is (MOCC's choice, per record):
    /// - **cold** (the usual case): a plain read and a checked put, without a transaction: two
    ///   statements, and the put is refused if anyone wrote the record since the read;
    /// - **hot** — at least a quarter of the record's recent `update` attempts in this store (and
    ///   at least two) met a conflict (MOCC's temperature, counted per 200 ms window): the
    ///   store's updates of the record are ordered, as the backend's
    ///   [`HotUpdates`](crate::HotUpdates) says:
    ///   - `Queue` (memory, SQLite, PostgreSQL, etcd): each waits its turn in this store, then
    ///     writes as a cold record's does, with a checked put; they no longer conflict with each
    ///     other, and wait without holding a connection. A turn hands on the record as it wrote
    ///     it, so only the first turn of a burst reads it (from the primary, on a store with read
    ///     replicas): `f` gets the record as the turn before wrote it, and the put's check still
    ///     refuses it if anyone else wrote the record since (after which the queue's turns read it
    ///     each time). A field whose column keeps less than it holds (a timestamp's
    ///     nanoseconds) is seen as written, not as stored; a table with `created_at` (which an
    ///     update never writes) is read at every turn;
    ///   - `Lock` (MySQL, MariaDB): each reads the record locked in a transaction of its own
    ///     ([`Transaction::get_for_update`]), and the database queues them, from every process;
    /// - **after a conflict** (a writer the turns did not order: another process, a plain `put`),
    ///   this call's next attempt reads the record locked, whatever its temperature, so that it
    ///   makes progress (on a store with read replicas, it reads the primary).
    ///
    /// A turn, or a lock, is waited for as the store's [`LockWait`] says; a turn not given in
    /// time locks the record instead. A record whose queued or locked attempts find no other
    /// updates of it waiting (two or more) for a whole window cools: the next window tries it
    /// optimistically again. Turns are per store (clones share them) and per record;
    /// temperatures are kept in 1,024 slots that records share by a hash (two records in one
    /// slot warm each other).
    ///
    /// Exactness is the same either way: every attempt's write is checked. A store whose lock
    /// wait is [`LockWait::NoWait`] always locks (an optimistic write cannot bound its wait for a
    /// record another transaction holds), and a backend that says [`HotUpdates::Optimistic`](crate::HotUpdates::Optimistic)
    /// never queues nor locks. On etcd a lock is the record's lock key (a consensus write of its
    /// own), so a hot record's turns save more there. The choice is a debug event (`mode`:
    /// `optimistic`, `queued` or `locked`) and, with the `metrics` feature, the
    /// `versioned_update_attempts_total{table, mode}` counter.
    ///
    /// A missing record is [`Error::NotFound`](crate::Error::NotFound); running out of attempts is
    /// [`Error::RetriesExhausted`](crate::Error::RetriesExhausted).
    pub async fn update<T: Entity, R: Send>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        policy: RetryPolicy,
        mut f: impl FnMut(&mut T) -> R + Send,
    ) -> Result<R> {
        let access = self.writer("update")?;
        let capabilities = self.backend.capabilities();
        let (hot_updates, may_lock) = (capabilities.hot_updates, capabilities.locks_updates());
        let key_value = ops::key_value::<T>(key)?;
        let record = self.heat.record(T::TABLE, &key_value);
        // After a conflict this update's next attempt locks, whatever the record's temperature:
        // it makes progress (on a store with read replicas, it reads the primary).
        let mut conflicted = false;
        let mut attempts = policy.start("update");
        loop {
            let hot = may_lock && record.hot();
            // A hot record's turn, where the backend queues them; a turn not given within the
            // store's lock wait, or a backend that does not queue, locks the record instead.
            let mut turn = match hot_updates {
                HotUpdates::Queue if hot && self.lock_wait != LockWait::NoWait => record.turn(self.lock_wait).await,
                _ => None,
            };
            let queued = turn.is_some();
            let locked = may_lock && (self.lock_wait == LockWait::NoWait || conflicted || (hot && !queued));
            crate::observe::update_attempt(T::TABLE.name, UpdateMode::of(locked, queued));
            let attempt = async {
                if locked {
                    // What the last turn wrote is behind what this attempt writes.
                    if let Some(kept) = turn.as_deref_mut() {
                        kept.discard();
                    }
                    self.update_once(key, &mut f).await
                } else {
                    // A read and a checked put need no transaction around them: the put is
                    // refused if anyone wrote the record since the read.
                    ops::read_modify_write(access, key, turn.as_deref_mut().map(|kept| (kept, &key_value)), &mut f)
                        .await
                }
            };
            // A queued or locked attempt that finds the record's other updaters waiting would
            // most likely have conflicted without its turn or lock: it keeps the record hot.
            let crowded = (locked || queued) && record.crowded();
            let result = attempt.instrument(attempts.span()).await;
            drop(turn);
            conflicted = matches!(&result, Err(err) if err.is_conflict());
            record.attempted(conflicted || crowded);
            match result {
                Ok(value) => return Ok(value),
                Err(err) => attempts.failed(err).await?,
            }
        }
    }

    /// One attempt of [`update`](Self::update), in its own transaction.
    async fn update_once<T: Entity, R>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
        f: &mut impl FnMut(&mut T) -> R,
    ) -> Result<R> {
        let tx = self.backend.begin_with_lock_wait(self.lock_wait).await?;
        let result = ops::lock_modify_write(&tx, key, self.lock_wait, f).await;
        finish(tx, result).await
    }
}
