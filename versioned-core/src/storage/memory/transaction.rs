//! The memory backend's transactions: optimistic, validated at commit.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

use super::MemoryStorage;
use super::tables::{KeyRepr, Locked, RecordId, Stored, TableSnapshot, lock, no_table};
use crate::entity::TableDef;
use crate::error::{Error, Result};
use crate::lock::LockWait;
use crate::revisions::{Written, now_micros};
use crate::storage::decisions::{self, DecidedWrites, Decision};
use crate::storage::evaluate::{self, Collector};
use crate::storage::select::{RowLock, Select};
use crate::storage::{LockingRead, RowAccess, SavepointStep, StorageTransaction, WriteOutcome};
use crate::value::{Row, Value};

/// A transaction of the [`MemoryStorage`]: optimistic, validated at commit.
#[derive(Debug)]
pub struct MemoryTransaction {
    store: MemoryStorage,
    /// A read-only transaction's tables, as they were when it began.
    snapshot: Option<HashMap<&'static str, TableSnapshot>>,
    state: Mutex<TxState>,
}

/// The buffered writes: per record the new row, or `None` for a delete; and, in write order,
/// what each write of a table keeping history leaves in it.
#[derive(Debug, Default, Clone)]
struct Buffered {
    rows: HashMap<RecordId, (&'static TableDef, Option<Row>)>,
    history: Vec<(RecordId, &'static TableDef, Written)>,
}

#[derive(Debug, Default)]
struct TxState {
    /// The version of every record the transaction looked at, when it first did (`None`: absent).
    read: HashMap<RecordId, (&'static TableDef, Option<u64>)>,
    /// Buffered writes.
    written: Buffered,
    /// Records locked by `fetch_for_update`, released when the transaction ends.
    held: HashMap<RecordId, OwnedMutexGuard<()>>,
    /// The buffered writes as they were when each open savepoint was set, outermost first.
    savepoints: Vec<Buffered>,
}

impl MemoryTransaction {
    /// A transaction of `store`; read-only over `snapshot` if there is one.
    pub(super) fn new(store: MemoryStorage, snapshot: Option<HashMap<&'static str, TableSnapshot>>) -> Self {
        MemoryTransaction { store, snapshot, state: Mutex::default() }
    }

    /// The record as this transaction sees it, as the table stores it: its own write if any,
    /// else the committed row (remembering its version, for validation at commit).
    fn seen(&self, state: &mut TxState, table: &'static TableDef, id: &RecordId) -> Result<Option<Row>> {
        if let Some((_, row)) = state.written.rows.get(id) {
            return Ok(row.clone());
        }
        if let Some(snapshot) = &self.snapshot {
            return Ok(snapshot.get(table.name).ok_or_else(|| no_table(table))?.get(&id.1).cloned());
        }
        let (shards, layout) = self.store.tables.with_layout(table)?;
        let committed = shards.lock(&id.1).rows.get(&id.1).map(Stored::to_row).transpose()?;
        let version = committed.as_ref().map(|r| layout.stored.version_of(r)).transpose()?;
        state.read.entry(id.clone()).or_insert((table, version));
        Ok(committed)
    }
}

impl MemoryTransaction {
    /// Locks the record until the transaction ends, waiting as `lock` says; `false` when another
    /// transaction holds it and `lock` skips it.
    async fn hold(&self, table: &'static TableDef, key: KeyRepr, how: RowLock) -> Result<bool> {
        let id = (table.name, key);
        if lock(&self.state).held.contains_key(&id) {
            return Ok(true);
        }
        let record = Arc::clone(self.store.tables.get(table)?.lock(&id.1).locks.entry(id.1.clone()).or_default());
        let timed_out = || Error::LockTimeout { table: Some(table.name), key: Some(id.1.value()) };
        let guard = match how {
            RowLock::Wait(LockWait::Forever) => record.lock_owned().await,
            RowLock::Wait(LockWait::Timeout(limit)) => {
                tokio::time::timeout(limit, record.lock_owned()).await.map_err(|_| timed_out())?
            }
            RowLock::Wait(LockWait::NoWait) => record.try_lock_owned().map_err(|_| timed_out())?,
            RowLock::SkipLocked => match record.try_lock_owned() {
                Ok(guard) => guard,
                Err(_) => return Ok(false),
            },
        };
        lock(&self.state).held.insert(id, guard);
        Ok(true)
    }
}

impl DecidedWrites for MemoryTransaction {
    type Record = KeyRepr;

    fn record(&self, table: &'static TableDef, key: &Value) -> Result<KeyRepr> {
        KeyRepr::of(table, key)
    }

    async fn read(&self, table: &'static TableDef, key: KeyRepr) -> Result<Option<Row>> {
        let seen = self.seen(&mut lock(&self.state), table, &(table.name, key))?;
        let (_, layout) = self.store.tables.with_layout(table)?;
        Ok(seen.map(|row| layout.read(row)))
    }

    async fn scan(&self, table: &'static TableDef, select: &Select, remember: bool) -> Result<Vec<Row>> {
        let (shards, layout) = self.store.tables.with_layout(table)?;
        let mut found = Collector::new(select);
        if let Some(snapshot) = &self.snapshot {
            for row in snapshot.get(table.name).ok_or_else(|| no_table(table))?.rows() {
                found.offer(layout.view(Cow::Borrowed(row)));
            }
            return Ok(found.finish());
        }
        let mut state = lock(&self.state);
        let state = &mut *state;
        // The committed records this transaction has not written (only those named, when the
        // condition names keys: `get_many`), then its own writes.
        if let Some(keys) = evaluate::keys_named(table, &select.condition) {
            for key in keys {
                let key = KeyRepr::of(table, key)?;
                let id = (table.name, key.clone());
                if state.written.rows.contains_key(&id) {
                    continue;
                }
                match shards.lock(&key).rows.get(&key) {
                    Some(stored) => _ = found.offer(layout.view(stored.row()?)),
                    // Absent, as `get` remembers it: a record inserted meanwhile fails the commit.
                    None if remember => _ = state.read.entry(id).or_insert((table, None)),
                    None => {}
                }
            }
        } else {
            shards.scan(|key, stored| {
                if !state.written.rows.contains_key(&(table.name, key.clone())) {
                    found.offer(layout.view(stored.row()?));
                }
                Ok(())
            })?;
        }
        for ((name, _), (_, row)) in &state.written.rows {
            if let Some(row) = row.as_ref().filter(|_| *name == table.name) {
                found.offer(layout.view(Cow::Borrowed(row)));
            }
        }
        let found = found.finish();
        if remember {
            // The committed records it returns are read, at the version it returns.
            for row in &found {
                let id = (table.name, KeyRepr::of(table, table.key_of(row)?)?);
                if !state.written.rows.contains_key(&id) {
                    state.read.entry(id).or_insert((table, Some(table.version_of(row)?)));
                }
            }
        }
        Ok(found)
    }

    /// Locks the record, then remembers it as read as it is now: no other transaction can change
    /// it before this one ends.
    async fn lock(&self, table: &'static TableDef, key: KeyRepr, how: RowLock) -> Result<bool> {
        if !self.hold(table, key.clone(), how).await? {
            return Ok(false);
        }
        let (shards, layout) = self.store.tables.with_layout(table)?;
        let committed = shards.lock(&key).rows.get(&key).map(Stored::to_row).transpose()?;
        let version = committed.as_ref().map(|r| layout.stored.version_of(r)).transpose()?;
        let mut state = lock(&self.state);
        let id = (table.name, key);
        if !state.written.rows.contains_key(&id) {
            // What it read before stays what commit checks, as for `get_for_update`.
            state.read.entry(id).or_insert((table, version));
        }
        Ok(true)
    }

    /// Decides one write against what the transaction sees, and buffers it.
    async fn write(
        &self,
        table: &'static TableDef,
        key: KeyRepr,
        decide: impl FnOnce(Option<&Row>) -> Result<Decision> + Send,
    ) -> Result<WriteOutcome> {
        if self.snapshot.is_some() {
            return Err(Error::ReadOnlyTransaction { operation: "write" });
        }
        let (shards, layout) = self.store.tables.with_layout(table)?;
        let id = (table.name, key);
        let mut state = lock(&self.state);
        let seen = self.seen(&mut state, table, &id)?;
        Ok(match layout.decide(seen.as_ref(), decide)?.applied() {
            None => WriteOutcome::Rejected { current: seen.map(|row| layout.read(row)) },
            Some(row) => {
                if shards.history.get().is_some()
                    && let Some(entry) = Written::of(layout.stored, seen.as_ref(), row.as_ref())?
                {
                    state.written.history.push((id.clone(), table, entry));
                }
                state.written.rows.insert(id, (table, row));
                WriteOutcome::Applied
            }
        })
    }
}

impl LockingRead for MemoryTransaction {
    async fn fetch_for_update(&self, table: &'static TableDef, key: &Value, wait: LockWait) -> Result<Option<Row>> {
        self.hold(table, KeyRepr::of(table, key)?, RowLock::Wait(wait)).await?;
        self.fetch(table, key).await
    }
}

impl StorageTransaction for MemoryTransaction {
    async fn savepoint(&self, step: SavepointStep) -> Result<()> {
        let state = &mut *lock(&self.state);
        decisions::savepoint(&mut state.written, &mut state.savepoints, step)
    }

    async fn commit(self) -> Result<()> {
        let MemoryTransaction { store, state, .. } = self;
        let mut state = state.into_inner().unwrap_or_else(PoisonError::into_inner);
        // Records this transaction writes but another transaction has locked: wait for them, in a
        // fixed order so two committers cannot wait for each other.
        let mut to_lock: Vec<(&RecordId, &'static TableDef)> = state
            .written
            .rows
            .iter()
            .filter(|(id, _)| !state.held.contains_key(*id))
            .map(|(id, (table, _))| (id, *table))
            .collect();
        to_lock.sort_by(|a, b| a.0.cmp(b.0));
        let mut waited = Vec::new();
        for (id, table) in to_lock {
            if let Some(guard) = store.wait_for_record(table, &id.1).await? {
                waited.push(guard);
            }
        }

        // Every record read or written, its shard locked until all are checked and applied. Every
        // one of them went through `seen`, which found its table; tables are never dropped.
        let touched = state.read.iter().map(|((_, key), (table, _))| (*table, key));
        let touched = touched.chain(state.written.rows.iter().map(|((_, key), (table, _))| (*table, key)));
        let touched = touched.map(|(table, key)| Ok((store.tables.get(table)?, key.shard())));
        let mut shards = Locked::records(touched.collect::<Result<Vec<_>>>()?.into_iter());
        for ((_, key), (table, seen)) in &state.read {
            let (found, layout) = store.tables.with_layout(table)?;
            let at = shards.find(found, key)?;
            let stored = shards.shard(at).and_then(|shard| shard.rows.get(key));
            let now = stored.map(|r| r.version(layout.stored)).transpose()?;
            if now != *seen {
                // Versions start at 1, so `expected: 0` says the transaction saw no record.
                return Err(Error::ConcurrentModification {
                    table: table.name,
                    key: key.value(),
                    expected: seen.unwrap_or(0),
                    actual: now,
                    current: stored.map(Stored::to_row).transpose()?.map(|row| layout.read(row)),
                });
            }
        }
        // Every write's shard, found before any is written: nothing fails once writing begins.
        let mut writes = Vec::with_capacity(state.written.rows.len());
        for ((_, key), (table, row)) in state.written.rows.drain() {
            writes.push((shards.find(store.tables.get(table)?, &key)?, key, row));
        }
        let mut history = Vec::with_capacity(state.written.history.len());
        for ((_, key), table, entry) in state.written.history.drain(..) {
            let found = store.tables.get(table)?;
            if let Some(&keep) = found.history.get() {
                history.push((shards.find(found, &key)?, key, keep, entry));
            }
        }
        let mut replaced = Vec::with_capacity(writes.len());
        for (at, key, row) in writes {
            // `at` is where `find` found the shard, among those still locked.
            let Some(shard) = shards.shard(at) else { continue };
            let rows = shard.rows_mut();
            replaced.push(match row {
                Some(row) => rows.insert(key, Stored::Row(row)),
                None => rows.remove(&key),
            });
        }
        let now = now_micros();
        for (at, key, keep, entry) in history {
            if let Some(shard) = shards.shard(at) {
                shard.record(keep, &key, entry, now);
            }
        }
        // What the writes replaced is dropped once every lock is released.
        drop(shards);
        drop(replaced);
        drop(waited);
        Ok(())
    }

    async fn rollback(self) -> Result<()> {
        // The buffered writes and held locks go with `self`.
        Ok(())
    }
}
