//! The in-memory reference backend: exact semantics, no I/O.
//!
//! Each table's records are spread over shards, each behind its own mutex (module `tables`). Every
//! operation on one record, conditional writes included, runs as one critical section of its
//! shard, so a check and its write are a single atomic step, and tasks working on different
//! records seldom wait for each other. No lock is held across an `.await`, so the backend is safe
//! (and fast) to share between tokio tasks.
//!
//! Transactions are optimistic: they buffer their writes, remember the version of every record
//! they looked at, and at commit validate those versions and apply all writes while holding the
//! shards of all those records. `fetch_for_update` takes a per-record lock that other writers wait
//! for.
//!
//! A read-only transaction reads a copy of each shard as it was when the transaction began, all
//! taken at one moment. The copy is made once per shard between two writes and shared by the
//! read-only transactions that begin in that time, so writers never pay for snapshots (no
//! copy-on-write, no shared counts).
//!
//! A checked `put` of a `Clone` struct without timestamps, whose row always encodes
//! (`Entity::ROW_ALWAYS_ENCODES`, so what is stored can always be read), stores the struct itself,
//! not a row; every other operation reads it as a row. The copy is made into the record the
//! thread's last such put replaced (module `spare`), so that a run of puts with an integer key
//! allocates nothing.

mod spare;
mod tables;
mod transaction;

use crate::storage::Capabilities;
use std::sync::Arc;

use tokio::sync::OwnedMutexGuard;

use self::tables::{KeyRepr, Stored, Tables};
pub use self::transaction::MemoryTransaction;
use super::decisions::{DecidedWrites, Decision};
use super::evaluate::{self, Collector};
use super::select::Select;
use super::{Storage, WriteOutcome};
use crate::entity::{Entity, TableDef};
use crate::error::{Error, Result};
use crate::revisions::{HistoryRow, Written, now_micros};
use crate::value::{Row, Value};

/// The in-memory backend. Cloning it gives another handle to the same data.
///
/// ```
/// use versioned_core::Store;
///
/// let store = Store::memory(); // a `Store<MemoryStorage>`
/// let other_handle = store.clone(); // same data
/// # let _ = other_handle;
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    tables: Arc<Tables>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until no transaction holds the record's lock, and holds it for the caller's write.
    async fn wait_for_record(&self, table: &'static TableDef, key: &KeyRepr) -> Result<Option<OwnedMutexGuard<()>>> {
        let record = self.tables.get(table)?.lock(key).locks.get(key).cloned();
        Ok(match record {
            Some(record) => Some(record.lock_owned().await),
            None => None,
        })
    }
}

/// Applies `decision` (made from `stored`) to the entry of one record, and returns what it
/// replaced (to drop once the lock is released). The entry is the one map search of the write.
fn apply(
    entry: std::collections::hash_map::Entry<'_, KeyRepr, Stored>,
    decide: impl FnOnce(Option<&Row>) -> Result<Decision>,
) -> Result<(WriteOutcome, Option<Stored>)> {
    use std::collections::hash_map::Entry;
    Ok(match entry {
        Entry::Occupied(mut stored) => {
            let row = stored.get().row()?;
            match decide(Some(&row))? {
                Decision::Refuse => (WriteOutcome::Rejected { current: Some(row.into_owned()) }, None),
                Decision::Write(new) => (WriteOutcome::Applied, Some(stored.insert(Stored::Row(new)))),
                Decision::Delete => (WriteOutcome::Applied, Some(stored.remove())),
            }
        }
        Entry::Vacant(vacant) => match decide(None)? {
            Decision::Write(row) => {
                vacant.insert(Stored::Row(row));
                (WriteOutcome::Applied, None)
            }
            _ => (WriteOutcome::Rejected { current: None }, None),
        },
    })
}

// One lock per record write, one search of the shard: every row operation, written once in
// `decisions`, goes through `write`.
impl DecidedWrites for MemoryStorage {
    type Record = KeyRepr;

    fn record(&self, table: &'static TableDef, key: &Value) -> Result<KeyRepr> {
        KeyRepr::of(table, key)
    }

    async fn read(&self, table: &'static TableDef, key: KeyRepr) -> Result<Option<Row>> {
        let (shards, layout) = self.tables.with_layout(table)?;
        let stored = shards.lock(&key).rows.get(&key).map(Stored::to_row).transpose()?;
        Ok(stored.map(|row| layout.read(row)))
    }

    async fn scan(&self, table: &'static TableDef, select: &Select, _remember: bool) -> Result<Vec<Row>> {
        let (shards, layout) = self.tables.with_layout(table)?;
        let mut found = Collector::new(select);
        if let Some(keys) = evaluate::keys_named(table, &select.condition) {
            // Only the records named (`get_many`), each under its shard's lock.
            for key in keys {
                let key = KeyRepr::of(table, key)?;
                if let Some(stored) = shards.lock(&key).rows.get(&key) {
                    found.offer(layout.view(stored.row()?));
                }
            }
            return Ok(found.finish());
        }
        shards.scan(|_, stored| {
            found.offer(layout.view(stored.row()?));
            Ok(())
        })?;
        Ok(found.finish())
    }

    /// Decides and applies one write in a single critical section of the record's shard, once no
    /// transaction holds the record's lock: one lock, one search of the shard.
    async fn write(
        &self,
        table: &'static TableDef,
        key: KeyRepr,
        decide: impl FnOnce(Option<&Row>) -> Result<Decision> + Send,
    ) -> Result<WriteOutcome> {
        let (shards, layout) = self.tables.with_layout(table)?;
        let history = shards.history.get().copied();
        // The record's lock, once waited for.
        let mut held: Option<OwnedMutexGuard<()>> = None;
        loop {
            let busy = {
                let mut shard = shards.lock(&key);
                let record = shard.locks.get(&key).filter(|_| held.is_none());
                match record.map(|r| Arc::clone(r).try_lock_owned().map_err(|_| Arc::clone(r))) {
                    Some(Err(busy)) => busy,
                    free => {
                        // Held (if the record has a lock) until the write is applied.
                        let _guard = free.and_then(Result::ok);
                        // The history entry is made with the decision, before anything is
                        // written: its error writes nothing.
                        let mut entry = None;
                        let recorded = history.map(|keep| (keep, key.clone()));
                        let (written, replaced) = apply(shard.rows.entry(key), |stored| {
                            let decision = layout.decide(stored, decide)?;
                            if recorded.is_some() {
                                let after = match &decision {
                                    Decision::Write(row) => Some(row),
                                    _ => None,
                                };
                                entry = match &decision {
                                    Decision::Refuse => None,
                                    _ => Written::of(layout.stored, stored, after)?,
                                };
                            }
                            Ok(decision)
                        })?;
                        let written = layout.written(written);
                        if matches!(written, WriteOutcome::Applied) {
                            shard.snapshot = None;
                            if let (Some((keep, key)), Some(entry)) = (recorded, entry) {
                                shard.record(keep, &key, entry, now_micros());
                            }
                        }
                        // What the write replaced is dropped once the lock is released.
                        drop(shard);
                        drop(replaced);
                        return Ok(written);
                    }
                }
            };
            // A transaction holds the record: wait for it without the shard's lock.
            held = Some(busy.lock_owned().await);
        }
    }

    fn keeps_values(&self) -> bool {
        true
    }

    // The check and the write in one critical section of the record's shard; the copy is made
    // into the record this thread's last put replaced, and the record replaced now is kept for
    // the next.
    fn update_value<T: Entity>(
        &self,
        table: &'static TableDef,
        key: &Value,
        record: &T,
        next: T::Version,
        expected: u64,
    ) -> Result<Option<WriteOutcome>> {
        let key = KeyRepr::of(table, key)?;
        let (shards, layout) = self.tables.with_layout(table)?;
        // Only a struct laid out as its table is stored as a value (every reader takes the
        // value's row as a stored row); another goes through the row path, as does a struct
        // that is not `Clone`.
        if !layout.is_identity() || shards.history.get().is_some() {
            return Ok(None);
        }
        let Some(source) = spare::source(record) else { return Ok(None) };
        let mut guard = shards.lock(&key);
        let (copy, unused_spare) = spare::copy(source, record, next);
        let Some(copy) = copy else {
            drop(guard);
            drop(unused_spare);
            return Ok(None);
        };
        let shard = &mut *guard;
        // Held (if the record has a lock) until the write is applied; a transaction holding it
        // makes the caller take the row path, which waits.
        let (outcome, unused) = match shard.locks.get(&key).map(|r| Arc::clone(r).try_lock_owned()) {
            Some(Err(_)) => (None, Stored::Value(copy)),
            free => {
                let _guard = free.and_then(Result::ok);
                match shard.rows.get_mut(&key) {
                    None => (Some(WriteOutcome::Rejected { current: None }), Stored::Value(copy)),
                    Some(stored) if stored.version(table)? != expected => {
                        (Some(WriteOutcome::Rejected { current: Some(stored.to_row()?) }), Stored::Value(copy))
                    }
                    Some(stored) => {
                        shard.snapshot = None;
                        (Some(WriteOutcome::Applied), std::mem::replace(stored, Stored::Value(copy)))
                    }
                }
            }
        };
        // Kept for the next put (or freed) once the lock is released.
        drop(guard);
        drop(unused_spare);
        if let Stored::Value(value) = unused {
            spare::keep(value);
        }
        Ok(outcome)
    }
}

/// The error for reading the history of a table that keeps none.
pub(crate) fn no_history(table: &TableDef) -> Error {
    Error::config(format!(
        "{} keeps no version history: add #[versioned(history)] to it (and create its table with create_table)",
        table.entity
    ))
}

impl Storage for MemoryStorage {
    type Transaction = MemoryTransaction;

    async fn history(&self, table: &'static TableDef, key: &Value, version: Option<u64>) -> Result<Vec<HistoryRow>> {
        let (shards, layout) = self.tables.with_layout(table)?;
        if shards.history.get().is_none() {
            return Err(no_history(table));
        }
        let key = KeyRepr::of(table, key)?;
        let entries = shards.lock(&key).history.get(&key).cloned().unwrap_or_default();
        Ok(entries
            .into_iter()
            .filter(|(at, _)| version.is_none_or(|v| v == *at))
            .map(|(_, entry)| HistoryRow { row: layout.read(entry.row), ..entry })
            .collect())
    }

    async fn create_table(&self, table: &'static TableDef) -> Result<()> {
        self.tables.create(table)
    }

    async fn begin(&self) -> Result<MemoryTransaction> {
        Ok(MemoryTransaction::new(self.clone(), None))
    }

    async fn begin_read_only(&self) -> Result<MemoryTransaction> {
        Ok(MemoryTransaction::new(self.clone(), Some(self.tables.snapshot()?)))
    }

    #[inline]
    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with_identity(Arc::as_ptr(&self.tables) as *const () as usize)
    }
}
