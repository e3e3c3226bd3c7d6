//! The in-memory reference backend: exact semantics, no I/O.
//!
//! All tables live behind one mutex; every operation, conditional writes included, runs as one
//! critical section, so a check and its write are a single atomic step. The lock is never held
//! across an `.await`, so it is safe (and fast) to share between tokio tasks.
//!
//! Transactions are optimistic: they buffer their writes, remember the version of every record
//! they looked at, and at commit validate those versions and apply all writes in one critical
//! section. `fetch_for_update` takes a per-record lock that other writers wait for.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OwnedMutexGuard;

use super::{RowAccess, Storage, StorageTransaction, WriteOutcome};
use crate::entity::TableDef;
use crate::error::{Error, Result, StorageError};
use crate::value::{Row, Value};

/// A key as the memory backend orders it: the subset of [`Value`] that can be a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum KeyRepr {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl KeyRepr {
    fn of(table: &TableDef, key: &Value) -> Result<Self> {
        match key {
            Value::Int(i) => Ok(KeyRepr::Int(*i)),
            Value::Text(s) => Ok(KeyRepr::Text(s.clone())),
            Value::Bytes(b) => Ok(KeyRepr::Bytes(b.clone())),
            other => Err(StorageError::new(format!("{}: a {} cannot be a key", table.name, other.type_name())).into()),
        }
    }

    fn value(&self) -> Value {
        match self {
            KeyRepr::Int(i) => Value::Int(*i),
            KeyRepr::Text(s) => Value::Text(s.clone()),
            KeyRepr::Bytes(b) => Value::Bytes(b.clone()),
        }
    }
}

/// A record's address: table name and key.
type RecordId = (&'static str, KeyRepr);
type Tables = HashMap<&'static str, BTreeMap<KeyRepr, Row>>;
type RecordLock = Arc<tokio::sync::Mutex<()>>;

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
    tables: Arc<Mutex<Tables>>,
    /// Records that a transaction has locked with `fetch_for_update` (or once had: entries stay,
    /// an unlocked mutex costs nothing but its slot).
    locks: Arc<Mutex<HashMap<RecordId, RecordLock>>>,
}

/// A panic while one of these locks is held cannot leave its data half-changed: every mutation
/// is a single map insert or remove after all checks (commit applies a prepared list). So a
/// poisoned lock still guards sound data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lock of a record, if any transaction ever locked it.
    fn record_lock(&self, id: &RecordId) -> Option<RecordLock> {
        lock(&self.locks).get(id).cloned()
    }

    /// Waits until no transaction holds the record's lock, and holds it for the caller's write.
    async fn wait_for_record(&self, id: &RecordId) -> Option<OwnedMutexGuard<()>> {
        match self.record_lock(id) {
            Some(record) => Some(record.lock_owned().await),
            None => None,
        }
    }
}

fn table_ref<'a>(tables: &'a Tables, table: &TableDef) -> Result<&'a BTreeMap<KeyRepr, Row>> {
    tables.get(table.name).ok_or_else(|| no_table(table))
}

fn table_mut<'a>(tables: &'a mut Tables, table: &TableDef) -> Result<&'a mut BTreeMap<KeyRepr, Row>> {
    tables.get_mut(table.name).ok_or_else(|| no_table(table))
}

fn no_table(table: &TableDef) -> Error {
    StorageError::new(format!("no such table: {} (call create_table first)", table.name)).into()
}

fn key_of(table: &TableDef, row: &Row) -> Result<KeyRepr> {
    KeyRepr::of(table, table.key_of(row)?)
}

/// The next version of a record stored as `stored` (`None`: a new record), or `None` at the maximum.
fn next_version(table: &TableDef, stored: Option<&Row>) -> Result<Option<u64>> {
    match stored {
        None => Ok(Some(1)),
        Some(row) => {
            let version = table.version_of(row)?;
            Ok((version < table.version_max).then_some(version + 1))
        }
    }
}

fn with_version(row: &Row, table: &TableDef, version: u64) -> Row {
    let mut row = row.clone();
    // `version` <= version_max <= i64::MAX, so the cast is exact.
    row.set(table.version, Value::Int(version as i64));
    row
}

/// Whether a conditional write expecting `expected` (`None`: unconditional) may replace `stored`.
fn check(table: &TableDef, stored: Option<&Row>, expected: Option<u64>) -> Result<bool> {
    match (stored, expected) {
        (None, _) => Ok(false),
        (Some(_), None) => Ok(true),
        (Some(row), Some(expected)) => Ok(table.version_of(row)? == expected),
    }
}

impl RowAccess for MemoryStorage {
    async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        let key = KeyRepr::of(table, key)?;
        Ok(table_ref(&lock(&self.tables), table)?.get(&key).cloned())
    }

    async fn insert(&self, table: &'static TableDef, row: &Row) -> Result<bool> {
        let key = key_of(table, row)?;
        let _held = self.wait_for_record(&(table.name, key.clone())).await;
        let mut tables = lock(&self.tables);
        let rows = table_mut(&mut tables, table)?;
        if rows.contains_key(&key) {
            return Ok(false);
        }
        rows.insert(key, row.clone());
        Ok(true)
    }

    async fn update(&self, table: &'static TableDef, row: &Row, expected: u64) -> Result<WriteOutcome> {
        let key = key_of(table, row)?;
        let _held = self.wait_for_record(&(table.name, key.clone())).await;
        let mut tables = lock(&self.tables);
        let rows = table_mut(&mut tables, table)?;
        if check(table, rows.get(&key), Some(expected))? {
            rows.insert(key, row.clone());
            Ok(WriteOutcome::Applied)
        } else {
            Ok(WriteOutcome::Rejected { current: rows.get(&key).cloned() })
        }
    }

    async fn upsert(&self, table: &'static TableDef, row: &Row) -> Result<Option<u64>> {
        let key = key_of(table, row)?;
        let _held = self.wait_for_record(&(table.name, key.clone())).await;
        let mut tables = lock(&self.tables);
        let rows = table_mut(&mut tables, table)?;
        let Some(next) = next_version(table, rows.get(&key))? else { return Ok(None) };
        rows.insert(key, with_version(row, table, next));
        Ok(Some(next))
    }

    async fn delete(&self, table: &'static TableDef, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        let key = KeyRepr::of(table, key)?;
        let _held = self.wait_for_record(&(table.name, key.clone())).await;
        let mut tables = lock(&self.tables);
        let rows = table_mut(&mut tables, table)?;
        if check(table, rows.get(&key), expected)? {
            rows.remove(&key);
            Ok(WriteOutcome::Applied)
        } else {
            Ok(WriteOutcome::Rejected { current: rows.get(&key).cloned() })
        }
    }
}

impl Storage for MemoryStorage {
    type Transaction = MemoryTransaction;

    async fn create_table(&self, table: &'static TableDef) -> Result<()> {
        lock(&self.tables).entry(table.name).or_default();
        Ok(())
    }

    async fn begin(&self) -> Result<MemoryTransaction> {
        Ok(MemoryTransaction { store: self.clone(), state: Mutex::default() })
    }
}

/// A transaction of the [`MemoryStorage`]: optimistic, validated at commit.
#[derive(Debug)]
pub struct MemoryTransaction {
    store: MemoryStorage,
    state: Mutex<TxState>,
}

#[derive(Debug, Default)]
struct TxState {
    /// The version of every record the transaction looked at, when it first did (`None`: absent).
    read: HashMap<RecordId, (&'static TableDef, Option<u64>)>,
    /// Buffered writes: the new row, or `None` for a delete.
    written: HashMap<RecordId, (&'static TableDef, Option<Row>)>,
    /// Records locked by `fetch_for_update`, released when the transaction ends.
    held: HashMap<RecordId, OwnedMutexGuard<()>>,
}

impl MemoryTransaction {
    /// The record as this transaction sees it: its own write if any, else the committed row
    /// (remembering its version for validation at commit). Runs `then` on it under the state lock.
    fn with_record<R>(
        &self,
        table: &'static TableDef,
        key: KeyRepr,
        then: impl FnOnce(&mut TxState, RecordId, Option<Row>) -> Result<R>,
    ) -> Result<R> {
        let id = (table.name, key);
        let mut state = lock(&self.state);
        let current = match state.written.get(&id) {
            Some((_, row)) => row.clone(),
            None => {
                let committed = table_ref(&lock(&self.store.tables), table)?.get(&id.1).cloned();
                let version = committed.as_ref().map(|r| table.version_of(r)).transpose()?;
                state.read.entry(id.clone()).or_insert((table, version));
                committed
            }
        };
        then(&mut state, id, current)
    }

    fn write(
        &self,
        table: &'static TableDef,
        key: KeyRepr,
        expected: Option<u64>,
        row: Option<Row>,
    ) -> Result<WriteOutcome> {
        self.with_record(table, key, |state, id, current| {
            if check(table, current.as_ref(), expected)? {
                state.written.insert(id, (table, row));
                Ok(WriteOutcome::Applied)
            } else {
                Ok(WriteOutcome::Rejected { current })
            }
        })
    }
}

impl RowAccess for MemoryTransaction {
    async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        self.with_record(table, KeyRepr::of(table, key)?, |_, _, current| Ok(current))
    }

    async fn insert(&self, table: &'static TableDef, row: &Row) -> Result<bool> {
        self.with_record(table, key_of(table, row)?, |state, id, current| {
            if current.is_some() {
                return Ok(false);
            }
            state.written.insert(id, (table, Some(row.clone())));
            Ok(true)
        })
    }

    async fn update(&self, table: &'static TableDef, row: &Row, expected: u64) -> Result<WriteOutcome> {
        self.write(table, key_of(table, row)?, Some(expected), Some(row.clone()))
    }

    async fn upsert(&self, table: &'static TableDef, row: &Row) -> Result<Option<u64>> {
        self.with_record(table, key_of(table, row)?, |state, id, current| {
            let Some(next) = next_version(table, current.as_ref())? else { return Ok(None) };
            state.written.insert(id, (table, Some(with_version(row, table, next))));
            Ok(Some(next))
        })
    }

    async fn delete(&self, table: &'static TableDef, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        self.write(table, KeyRepr::of(table, key)?, expected, None)
    }
}

impl StorageTransaction for MemoryTransaction {
    async fn fetch_for_update(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        let id = (table.name, KeyRepr::of(table, key)?);
        let already_held = lock(&self.state).held.contains_key(&id);
        if !already_held {
            let record = Arc::clone(lock(&self.store.locks).entry(id.clone()).or_default());
            let guard = record.lock_owned().await;
            lock(&self.state).held.insert(id.clone(), guard);
        }
        self.fetch(table, key).await
    }

    async fn commit(self) -> Result<()> {
        let MemoryTransaction { store, state } = self;
        let mut state = state.into_inner().unwrap_or_else(PoisonError::into_inner);
        // Records this transaction writes but another transaction has locked: wait for them, in a
        // fixed order so two committers cannot wait for each other.
        let mut to_lock: Vec<&RecordId> = state.written.keys().filter(|id| !state.held.contains_key(*id)).collect();
        to_lock.sort();
        let mut waited = Vec::new();
        for id in to_lock {
            if let Some(guard) = store.wait_for_record(id).await {
                waited.push(guard);
            }
        }

        let mut tables = lock(&store.tables);
        for ((_, key), (table, seen)) in &state.read {
            let stored = table_ref(&tables, table)?.get(key);
            let now = stored.map(|r| table.version_of(r)).transpose()?;
            if now != *seen {
                // Versions start at 1, so `expected: 0` says the transaction saw no record.
                return Err(Error::ConcurrentModification {
                    table: table.name,
                    key: key.value(),
                    expected: seen.unwrap_or(0),
                    actual: now,
                    current: stored.cloned(),
                });
            }
        }
        for (table, _) in state.written.values() {
            table_ref(&tables, table)?;
        }
        for ((_, key), (table, row)) in state.written.drain() {
            // Checked just above: every written table exists.
            let Ok(rows) = table_mut(&mut tables, table) else { continue };
            match row {
                Some(row) => rows.insert(key, row),
                None => rows.remove(&key),
            };
        }
        drop(tables);
        drop(waited);
        Ok(())
    }

    async fn rollback(self) -> Result<()> {
        // The buffered writes and held locks go with `self`.
        Ok(())
    }
}
