//! The in-memory reference backend: exact semantics, no I/O.
//!
//! All tables live behind one mutex; every operation, conditional writes included, runs as one
//! critical section, so a check and its write are a single atomic step. The lock is never held
//! across an `.await`, so it is safe (and fast) to share between tokio tasks.
//!
//! Transactions are optimistic: they buffer their writes, remember the version of every record
//! they looked at, and at commit validate those versions and apply all writes in one critical
//! section. `fetch_for_update` takes a per-record lock that other writers wait for.
//!
//! A read-only transaction reads a copy of each table as it was when the transaction began. The
//! copy is made once per table between two writes and shared by the read-only transactions that
//! begin in that time, so writers never pay for snapshots (no copy-on-write, no shared counts).
//!
//! A checked `put` of a `Clone` struct without timestamps stores the struct itself, not a row,
//! and the next such put overwrites it in place; every other operation reads it as a row.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OwnedMutexGuard;

use super::decisions::{self, Decision, Written, row_access_via_decisions};
use super::{RowAccess, SavepointStep, Storage, StorageTransaction, TypedWrite, WriteOutcome};
use crate::entity::{Entity, TableDef};
use crate::error::{Error, Result, StorageError};
use crate::lock::LockWait;
use crate::value::{Row, Value, VersionField};

/// A key as the memory backend orders it: the subset of [`Value`] that can be a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum KeyRepr {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl KeyRepr {
    #[inline]
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
/// Keys hash with foldhash, seeded per table: SipHash (std's default) would cost more than the
/// rest of a lookup, and foldhash's random seed still keeps chosen keys from colliding at will.
type Table = HashMap<KeyRepr, Stored, foldhash::fast::RandomState>;
/// A table as a read-only transaction sees it.
type Snapshot = Arc<HashMap<KeyRepr, Row, foldhash::fast::RandomState>>;

/// A stored record: a row, as the row operations write them, or the struct itself, as a checked
/// put of a `Clone` struct without audit fields stores it (no conversion to a row, and the next
/// such put overwrites it in place). Either reads back as a row.
enum Stored {
    Row(Row),
    Value(Box<dyn StoredValue>),
}

/// A struct kept as a value: what the backend needs of it without knowing its type.
trait StoredValue: Send + Sync {
    fn to_row(&self) -> Result<Row>;
    fn version(&self) -> Option<u64>;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Entity> StoredValue for T {
    fn to_row(&self) -> Result<Row> {
        Entity::to_row(self)
    }

    fn version(&self) -> Option<u64> {
        Entity::version(self).to_u64()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Stored {
    /// The record as a row: borrowed if it is one.
    fn row(&self) -> Result<Cow<'_, Row>> {
        match self {
            Stored::Row(row) => Ok(Cow::Borrowed(row)),
            Stored::Value(value) => value.to_row().map(Cow::Owned),
        }
    }

    fn to_row(&self) -> Result<Row> {
        self.row().map(Cow::into_owned)
    }

    fn version(&self, table: &'static TableDef) -> Result<u64> {
        match self {
            Stored::Row(row) => table.version_of(row),
            // A stored struct was written at a version the store counted, never negative.
            Stored::Value(value) => value
                .version()
                .ok_or_else(|| Error::decode(table, table.version_column().name, "a version cannot be negative")),
        }
    }
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stored::Row(row) => row.fmt(f),
            Stored::Value(_) => f.write_str("Stored::Value(..)"),
        }
    }
}
type RecordLock = Arc<tokio::sync::Mutex<()>>;

/// One table: its rows, the copy read-only transactions share until the next write, and the
/// locks of the records a transaction has locked with `fetch_for_update` (or once had: entries
/// stay, an unlocked mutex costs nothing but its slot).
#[derive(Debug, Default)]
struct Slot {
    rows: Table,
    snapshot: Option<Snapshot>,
    locks: HashMap<KeyRepr, RecordLock>,
}

/// Every table, behind the storage's one mutex.
#[derive(Debug, Default)]
struct Tables {
    slots: Vec<Slot>,
    by_name: HashMap<&'static str, usize>,
    /// `TableDef` addresses already resolved to their slot: an operation finds its table by
    /// comparing a pointer or two, without hashing the name.
    by_def: Vec<(usize, usize)>,
}

impl Tables {
    #[inline]
    fn slot(&mut self, table: &'static TableDef) -> Result<&mut Slot> {
        let address = std::ptr::from_ref(table) as usize;
        let index = match self.by_def.iter().find(|(a, _)| *a == address) {
            Some((_, index)) => *index,
            None => {
                // Two structs may share a table: the name decides, once per `TableDef`.
                let index = *self.by_name.get(table.name).ok_or_else(|| no_table(table))?;
                self.by_def.push((address, index));
                index
            }
        };
        Ok(&mut self.slots[index])
    }

    fn create(&mut self, table: &'static TableDef) {
        if !self.by_name.contains_key(table.name) {
            self.by_name.insert(table.name, self.slots.len());
            self.slots.push(Slot::default());
        }
    }

    /// Every table's rows as they are now: one `Arc` per table.
    fn snapshot(&mut self) -> Result<HashMap<&'static str, Snapshot>> {
        let mut tables = HashMap::with_capacity(self.by_name.len());
        for (name, index) in &self.by_name {
            tables.insert(*name, self.slots[*index].snapshot()?);
        }
        Ok(tables)
    }
}

impl Slot {
    /// The rows, to change: the shared snapshot no longer matches them.
    #[inline]
    fn rows_mut(&mut self) -> &mut Table {
        self.snapshot = None;
        &mut self.rows
    }

    /// The rows as they are now, copied once between two writes.
    fn snapshot(&mut self) -> Result<Snapshot> {
        if let Some(snapshot) = &self.snapshot {
            return Ok(Arc::clone(snapshot));
        }
        let rows = self.rows.iter().map(|(key, stored)| Ok((key.clone(), stored.to_row()?))).collect::<Result<_>>()?;
        Ok(Arc::clone(self.snapshot.insert(Arc::new(rows))))
    }
}

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
}

/// A panic while this lock is held cannot leave its data half-changed: every mutation is a
/// single map insert or remove after all checks (commit applies a prepared list). So a poisoned
/// lock still guards sound data.
#[inline]
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until no transaction holds the record's lock, and holds it for the caller's write.
    async fn wait_for_record(&self, table: &'static TableDef, key: &KeyRepr) -> Result<Option<OwnedMutexGuard<()>>> {
        let record = lock(&self.tables).slot(table)?.locks.get(key).cloned();
        Ok(match record {
            Some(record) => Some(record.lock_owned().await),
            None => None,
        })
    }
}

fn no_table(table: &TableDef) -> Error {
    StorageError::new(format!("no such table: {} (call create_table first)", table.name)).into()
}

/// Applies `decision` (made from `stored`) to the entry of one record. The entry is the one map
/// search of the write.
fn apply(
    entry: std::collections::hash_map::Entry<'_, KeyRepr, Stored>,
    decide: impl FnOnce(Option<&Row>) -> Result<Decision>,
) -> Result<Written> {
    use std::collections::hash_map::Entry;
    Ok(match entry {
        Entry::Occupied(mut stored) => {
            let row = stored.get().row()?;
            match decide(Some(&row))? {
                None => Written::Refused(Some(row.into_owned())),
                Some(Some(new)) => {
                    stored.insert(Stored::Row(new));
                    Written::Done
                }
                Some(None) => {
                    stored.remove();
                    Written::Done
                }
            }
        }
        Entry::Vacant(vacant) => match decide(None)? {
            Some(Some(row)) => {
                vacant.insert(Stored::Row(row));
                Written::Done
            }
            _ => Written::Refused(None),
        },
    })
}

impl MemoryStorage {
    fn record(&self, table: &'static TableDef, key: &Value) -> Result<KeyRepr> {
        KeyRepr::of(table, key)
    }

    async fn read(&self, table: &'static TableDef, key: KeyRepr) -> Result<Option<Row>> {
        lock(&self.tables).slot(table)?.rows.get(&key).map(Stored::to_row).transpose()
    }

    /// Decides and applies one write in a single critical section, once no transaction holds the
    /// record's lock: one lock of the storage, one search of the table.
    async fn write(
        &self,
        table: &'static TableDef,
        key: KeyRepr,
        decide: impl FnOnce(Option<&Row>) -> Result<Decision>,
    ) -> Result<Written> {
        // The record's lock, once waited for.
        let mut held: Option<OwnedMutexGuard<()>> = None;
        loop {
            let busy = {
                let mut tables = lock(&self.tables);
                let slot = tables.slot(table)?;
                let record = slot.locks.get(&key).filter(|_| held.is_none());
                match record.map(|r| Arc::clone(r).try_lock_owned().map_err(|_| Arc::clone(r))) {
                    Some(Err(busy)) => busy,
                    free => {
                        // Held (if the record has a lock) until the write is applied.
                        let _guard = free.and_then(Result::ok);
                        return apply(slot.rows_mut().entry(key), decide);
                    }
                }
            };
            // A transaction holds the record: wait for it without the storage's lock.
            held = Some(busy.lock_owned().await);
        }
    }
}

row_access_via_decisions!(MemoryStorage;
    fn keeps_values(&self) -> bool {
        true
    }

    // The check and the write in one critical section, the struct stored as it is (overwriting
    // the stored one in place when it is of the same type).
    fn update_value<T: Entity>(
        &self,
        table: &'static TableDef,
        key: &Value,
        copy: T,
        expected: u64,
    ) -> Result<TypedWrite<T>> {
        // Integer keys built in place: through `KeyRepr::of`'s `Result` they cost a stall.
        let key = match key {
            Value::Int(i) => KeyRepr::Int(*i),
            other => KeyRepr::of(table, other)?,
        };
        let mut tables = lock(&self.tables);
        let slot = tables.slot(table)?;
        // Held (if the record has a lock) until the write is applied; a transaction holding it
        // makes the caller take the row path, which waits.
        let _guard = match slot.locks.get(&key).map(|r| Arc::clone(r).try_lock_owned()) {
            Some(Err(_)) => return Ok(TypedWrite::Declined(copy)),
            free => free.and_then(Result::ok),
        };
        let Some(stored) = slot.rows_mut().get_mut(&key) else {
            return Ok(TypedWrite::Decided(WriteOutcome::Rejected { current: None }));
        };
        // The same struct: checked and overwritten in place.
        // A replaced record is freed after the lock is released.
        if let Stored::Value(value) = stored
            && let Some(value) = value.as_any_mut().downcast_mut::<T>()
        {
            if Entity::version(value).to_u64() != Some(expected) {
                return Ok(TypedWrite::Decided(WriteOutcome::Rejected { current: Some(Entity::to_row(value)?) }));
            }
            let replaced = std::mem::replace(value, copy);
            drop(tables);
            drop(replaced);
            return Ok(TypedWrite::Decided(WriteOutcome::Applied));
        }
        if stored.version(table)? != expected {
            return Ok(TypedWrite::Decided(WriteOutcome::Rejected { current: Some(stored.to_row()?) }));
        }
        let replaced = std::mem::replace(stored, Stored::Value(Box::new(copy)));
        drop(tables);
        drop(replaced);
        Ok(TypedWrite::Decided(WriteOutcome::Applied))
    }
);

impl Storage for MemoryStorage {
    type Transaction = MemoryTransaction;

    async fn create_table(&self, table: &'static TableDef) -> Result<()> {
        lock(&self.tables).create(table);
        Ok(())
    }

    async fn begin(&self) -> Result<MemoryTransaction> {
        Ok(MemoryTransaction { store: self.clone(), snapshot: None, state: Mutex::default() })
    }

    async fn begin_read_only(&self) -> Result<MemoryTransaction> {
        let snapshot = lock(&self.tables).snapshot()?;
        Ok(MemoryTransaction { store: self.clone(), snapshot: Some(snapshot), state: Mutex::default() })
    }

    fn identity(&self) -> Option<usize> {
        Some(Arc::as_ptr(&self.tables) as *const () as usize)
    }
}

/// A transaction of the [`MemoryStorage`]: optimistic, validated at commit.
#[derive(Debug)]
pub struct MemoryTransaction {
    store: MemoryStorage,
    /// A read-only transaction's tables, as they were when it began.
    snapshot: Option<HashMap<&'static str, Snapshot>>,
    state: Mutex<TxState>,
}

/// A buffered write: the new row, or `None` for a delete.
type Buffered = HashMap<RecordId, (&'static TableDef, Option<Row>)>;

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
    /// The record as this transaction sees it: its own write if any, else the committed row
    /// (remembering its version, for validation at commit).
    fn seen(&self, state: &mut TxState, table: &'static TableDef, id: &RecordId) -> Result<Option<Row>> {
        if let Some((_, row)) = state.written.get(id) {
            return Ok(row.clone());
        }
        if let Some(snapshot) = &self.snapshot {
            return Ok(snapshot.get(table.name).ok_or_else(|| no_table(table))?.get(&id.1).cloned());
        }
        let committed = lock(&self.store.tables).slot(table)?.rows.get(&id.1).map(Stored::to_row).transpose()?;
        let version = committed.as_ref().map(|r| table.version_of(r)).transpose()?;
        state.read.entry(id.clone()).or_insert((table, version));
        Ok(committed)
    }

    fn record(&self, table: &'static TableDef, key: &Value) -> Result<KeyRepr> {
        KeyRepr::of(table, key)
    }

    async fn read(&self, table: &'static TableDef, key: KeyRepr) -> Result<Option<Row>> {
        self.seen(&mut lock(&self.state), table, &(table.name, key))
    }

    /// Decides one write against what the transaction sees, and buffers it.
    async fn write(
        &self,
        table: &'static TableDef,
        key: KeyRepr,
        decide: impl FnOnce(Option<&Row>) -> Result<Decision>,
    ) -> Result<Written> {
        if self.snapshot.is_some() {
            return Err(Error::ReadOnlyTransaction { operation: "write" });
        }
        let id = (table.name, key);
        let mut state = lock(&self.state);
        let seen = self.seen(&mut state, table, &id)?;
        Ok(match decide(seen.as_ref())? {
            None => Written::Refused(seen),
            Some(row) => {
                state.written.insert(id, (table, row));
                Written::Done
            }
        })
    }
}

row_access_via_decisions!(MemoryTransaction);

impl StorageTransaction for MemoryTransaction {
    async fn fetch_for_update(&self, table: &'static TableDef, key: &Value, wait: LockWait) -> Result<Option<Row>> {
        let id = (table.name, KeyRepr::of(table, key)?);
        let already_held = lock(&self.state).held.contains_key(&id);
        if !already_held {
            let record = Arc::clone(lock(&self.store.tables).slot(table)?.locks.entry(id.1.clone()).or_default());
            let timed_out = || Error::LockTimeout { table: Some(table.name), key: Some(key.clone()) };
            let guard = match wait {
                LockWait::Forever => record.lock_owned().await,
                LockWait::Timeout(limit) => {
                    tokio::time::timeout(limit, record.lock_owned()).await.map_err(|_| timed_out())?
                }
                LockWait::NoWait => record.try_lock_owned().map_err(|_| timed_out())?,
            };
            lock(&self.state).held.insert(id.clone(), guard);
        }
        self.fetch(table, key).await
    }

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

        let mut tables = lock(&store.tables);
        for ((_, key), (table, seen)) in &state.read {
            let slot = tables.slot(table)?;
            let stored = slot.rows.get(key);
            let now = stored.map(|r| r.version(table)).transpose()?;
            if now != *seen {
                // Versions start at 1, so `expected: 0` says the transaction saw no record.
                return Err(Error::ConcurrentModification {
                    table: table.name,
                    key: key.value(),
                    expected: seen.unwrap_or(0),
                    actual: now,
                    current: stored.map(Stored::to_row).transpose()?,
                });
            }
        }
        for ((_, key), (table, row)) in state.written.drain() {
            // Every write went through `seen`, which found its table; tables are never dropped.
            let rows = tables.slot(table)?.rows_mut();
            match row {
                Some(row) => rows.insert(key, Stored::Row(row)),
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
