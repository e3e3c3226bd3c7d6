//! The memory backend's tables: records in shards, each shard behind its own mutex, and the
//! tables found by their `TableDef` without a lock.
//!
//! A record lives in one of a table's [`SHARDS`] shards, chosen from its key. An operation on one
//! record locks its shard only, so tasks working on different records rarely wait for each other
//! or share a cache line. What spans records locks every shard it touches, always in one global
//! order (table by creation, then shard), so two of them cannot wait for each other: a commit
//! locks the shards of the records it read or wrote, a read-only snapshot locks them all.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::entity::{Entity, TableDef};
use crate::error::{Error, Result, StorageError};
use crate::revisions::{HistoryRow, Retention, Written};
use crate::storage::layout::Layout;
use crate::value::{Row, Value, VersionField};

/// How many shards a table has: enough that 2 × the cores of a large machine rarely meet on one.
pub(super) const SHARDS: usize = 64;

/// A panic while a shard's lock is held cannot leave its data half-changed: every mutation is a
/// single map insert, replace or remove after all checks, and what a write replaces is dropped
/// after the locks are released (a commit finds every shard it writes before writing any). So a
/// poisoned lock still guards sound data.
#[inline]
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A key as the memory backend orders it: the subset of [`Value`] that can be a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyRepr {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// The key's value alone: a table's keys are all of one kind, so the kind need not be hashed.
impl Hash for KeyRepr {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            KeyRepr::Int(i) => state.write_i64(*i),
            KeyRepr::Text(s) => s.hash(state),
            KeyRepr::Bytes(b) => b.hash(state),
        }
    }
}

impl KeyRepr {
    #[inline]
    pub(super) fn of(table: &TableDef, key: &Value) -> Result<Self> {
        match key {
            // Built in place: through the `Result` of a call an integer key costs a stall.
            Value::Int(i) => Ok(KeyRepr::Int(*i)),
            other => Self::of_other(table, other),
        }
    }

    /// [`of`](Self::of) for a key that is not an integer.
    fn of_other(table: &TableDef, key: &Value) -> Result<Self> {
        match key {
            Value::Text(s) => Ok(KeyRepr::Text(s.clone())),
            Value::Bytes(b) => Ok(KeyRepr::Bytes(b.clone())),
            other => Err(StorageError::new(format!("{}: a {} cannot be a key", table.name, other.type_name())).into()),
        }
    }

    pub(super) fn value(&self) -> Value {
        match self {
            KeyRepr::Int(i) => Value::Int(*i),
            KeyRepr::Text(s) => Value::Text(s.clone()),
            KeyRepr::Bytes(b) => Value::Bytes(b.clone()),
        }
    }

    /// The shard of the record with this key. Integers are spread by a multiplication (keys
    /// 1, 2, 3… land on different shards); text and bytes by a hash with a fixed seed. A shard is
    /// only where a record is locked: the rows inside it are hashed with a random seed.
    #[inline]
    pub(super) fn shard(&self) -> usize {
        let hash = match self {
            KeyRepr::Int(i) => (*i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            KeyRepr::Text(s) => foldhash::fast::FixedState::default().hash_one(s),
            KeyRepr::Bytes(b) => foldhash::fast::FixedState::default().hash_one(b),
        };
        // The top bits: the best mixed of a multiplication. `SHARDS` is a power of two.
        (hash >> (u64::BITS - SHARDS.trailing_zeros())) as usize
    }
}

/// A record's address: table name and key.
pub(super) type RecordId = (&'static str, KeyRepr);

/// Keys hash with foldhash, seeded per map: SipHash (std's default) would cost more than the rest
/// of a lookup, and foldhash's random seed still keeps chosen keys from colliding at will.
type Seeded = foldhash::fast::RandomState;

/// A shard's records, as a read-only transaction sees them: copied once between two writes.
pub(super) type ShardRows = Arc<HashMap<KeyRepr, Row, Seeded>>;

/// A stored record: a row, as the row operations write them, or the struct itself, as a checked
/// put of a `Clone` struct without audit fields stores it (no conversion to a row; the next such
/// put replaces it). Either reads back as a row.
pub(super) enum Stored {
    Row(Row),
    Value(Box<dyn StoredValue>),
}

/// A struct kept as a value: what the backend needs of it without knowing its type.
pub(super) trait StoredValue: Send + Sync {
    fn to_row(&self) -> Result<Row>;
    fn version(&self) -> Option<u64>;
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<T: Entity> StoredValue for T {
    fn to_row(&self) -> Result<Row> {
        Entity::to_row(self)
    }

    fn version(&self) -> Option<u64> {
        Entity::version(self).to_u64()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

impl Stored {
    /// The record as a row: borrowed if it is one.
    pub(super) fn row(&self) -> Result<Cow<'_, Row>> {
        match self {
            Stored::Row(row) => Ok(Cow::Borrowed(row)),
            Stored::Value(value) => value.to_row().map(Cow::Owned),
        }
    }

    pub(super) fn to_row(&self) -> Result<Row> {
        self.row().map(Cow::into_owned)
    }

    #[inline]
    pub(super) fn version(&self, table: &'static TableDef) -> Result<u64> {
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

/// The lock `fetch_for_update` takes on one record until its transaction ends.
pub(super) type RecordLock = Arc<tokio::sync::Mutex<()>>;

/// One shard of a table: its records, the copy read-only transactions share until the next write,
/// and the locks of the records a transaction has locked with `fetch_for_update` (or once had:
/// entries stay, an unlocked mutex costs nothing but its slot).
#[derive(Debug, Default)]
pub(super) struct Shard {
    pub(super) rows: HashMap<KeyRepr, Stored, Seeded>,
    pub(super) snapshot: Option<ShardRows>,
    pub(super) locks: HashMap<KeyRepr, RecordLock>,
    /// The version history of its records (`#[versioned(history)]`), oldest entry first: rows
    /// laid out as the table's, kept beside the records so that a write and its entry are one
    /// critical section.
    pub(super) history: HashMap<KeyRepr, Vec<(u64, HistoryRow)>>,
}

impl Shard {
    /// Appends `written` to the history of the record with `key` at `now` (microseconds), and
    /// drops what `keep` no longer keeps of that record's history.
    /// Each entry is kept with its version, so that this cannot fail once a write is applied.
    pub(super) fn record(&mut self, keep: Retention, key: &KeyRepr, written: Written, now: i64) {
        let newest = written.version;
        let entries = self.history.entry(key.clone()).or_default();
        entries.push((newest, HistoryRow { row: written.row, deleted: written.deleted, recorded_at: now }));
        if keep != Retention::All {
            entries.retain(|(version, entry)| keep.keeps(*version, entry.recorded_at, newest, now));
        }
    }

    /// The records, to change: the shared copy no longer matches them.
    #[inline]
    pub(super) fn rows_mut(&mut self) -> &mut HashMap<KeyRepr, Stored, Seeded> {
        self.snapshot = None;
        &mut self.rows
    }

    /// The records as they are now, copied once between two writes.
    fn snapshot(&mut self) -> Result<ShardRows> {
        if let Some(snapshot) = &self.snapshot {
            return Ok(Arc::clone(snapshot));
        }
        let rows = self.rows.iter().map(|(key, stored)| Ok((key.clone(), stored.to_row()?))).collect::<Result<_>>()?;
        Ok(Arc::clone(self.snapshot.insert(Arc::new(rows))))
    }
}

/// A shard's mutex on cache lines of its own, so that two cores locking neighbouring shards do
/// not take a line from each other.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// One table: its shards, and its place in the order in which shards are locked together.
#[derive(Debug)]
pub(super) struct Table {
    name: &'static str,
    /// How much history the table keeps, once `create_table` was called by a struct of
    /// `#[versioned(history)]`.
    pub(super) history: OnceLock<Retention>,
    /// The definition the table was created by: its rows are laid out by it.
    def: &'static TableDef,
    order: usize,
    shards: Box<[Padded; SHARDS]>,
}

impl Table {
    fn new(def: &'static TableDef, order: usize) -> Self {
        Table {
            name: def.name,
            def,
            history: OnceLock::new(),
            order,
            shards: Box::new(std::array::from_fn(|_| Padded::default())),
        }
    }

    /// The shard holding the record with this key, locked.
    #[inline]
    pub(super) fn lock(&self, key: &KeyRepr) -> MutexGuard<'_, Shard> {
        self.lock_shard(key.shard())
    }

    /// Calls `visit` with every record, one shard locked at a time: each record as it was at some
    /// moment of the scan (a query outside a transaction makes no snapshot of the whole table).
    pub(super) fn scan(&self, mut visit: impl FnMut(&KeyRepr, &Stored) -> Result<()>) -> Result<()> {
        for index in 0..SHARDS {
            let shard = self.lock_shard(index);
            for (key, stored) in &shard.rows {
                visit(key, stored)?;
            }
        }
        Ok(())
    }

    #[inline]
    fn lock_shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        // `index` comes from `KeyRepr::shard`, below `SHARDS`; the mask only spares a check.
        lock(&self.shards[index & (SHARDS - 1)].0)
    }
}

/// Shards locked together, in the global order: a commit's, for the records it read or wrote.
pub(super) struct Locked<'a> {
    guards: Vec<((usize, usize), MutexGuard<'a, Shard>)>,
}

impl<'a> Locked<'a> {
    /// Locks the shards of `records` (each a table and a shard), each once, in the global order.
    pub(super) fn records(records: impl Iterator<Item = (&'a Table, usize)>) -> Self {
        let mut shards: Vec<_> = records.map(|(table, shard)| ((table.order, shard), table)).collect();
        shards.sort_by_key(|(place, _)| *place);
        shards.dedup_by_key(|(place, _)| *place);
        Locked { guards: shards.into_iter().map(|(place, table)| (place, table.lock_shard(place.1))).collect() }
    }

    /// Where the shard of the record with `key` in `table` is among those locked.
    pub(super) fn find(&self, table: &Table, key: &KeyRepr) -> Result<usize> {
        let place = (table.order, key.shard());
        self.guards
            .binary_search_by_key(&place, |(place, _)| *place)
            .map_err(|_| StorageError::new(format!("{}: a record's shard was not locked", table.name)).into())
    }

    /// The shard at `index`, as [`find`](Self::find) gave it.
    pub(super) fn shard(&mut self, index: usize) -> Option<&mut Shard> {
        self.guards.get_mut(index).map(|(_, guard)| &mut **guard)
    }
}

/// A table as a read-only transaction sees it: each shard's records when the transaction began.
#[derive(Debug)]
pub(super) struct TableSnapshot(Vec<ShardRows>);

impl TableSnapshot {
    pub(super) fn get(&self, key: &KeyRepr) -> Option<&Row> {
        self.0.get(key.shard()).and_then(|rows| rows.get(key))
    }

    /// Every row of the table, as the snapshot holds them.
    pub(super) fn rows(&self) -> impl Iterator<Item = &Row> {
        self.0.iter().flat_map(|rows| rows.values())
    }
}

/// Every table. Found by the address of its `TableDef` in a list that only grows, read without a
/// lock (an atomic load per entry passed); entries are added under `creating`, one at a time.
#[derive(Debug, Default)]
pub(super) struct Tables {
    first: OnceLock<Box<Entry>>,
    /// Held while an entry is added; counts the tables created.
    creating: Mutex<usize>,
}

/// A `TableDef`'s table. Two structs may share a table: their entries share it, found by name,
/// each with its layout in the table's rows.
#[derive(Debug)]
struct Entry {
    def: usize,
    table: Arc<Table>,
    layout: Layout,
    next: OnceLock<Box<Entry>>,
}

impl Tables {
    fn entries(&self) -> impl Iterator<Item = &Entry> {
        std::iter::successors(self.first.get(), |entry| entry.next.get()).map(|entry| &**entry)
    }

    /// The table of `def`; "no such table" if none of its name was created.
    #[inline]
    pub(super) fn get(&self, def: &'static TableDef) -> Result<&Table> {
        self.entry(def).map(|entry| &*entry.table)
    }

    /// The table of `def`, and where `def`'s columns are in its rows.
    #[inline]
    pub(super) fn with_layout(&self, def: &'static TableDef) -> Result<(&Table, &Layout)> {
        self.entry(def).map(|entry| (&*entry.table, &entry.layout))
    }

    #[inline]
    fn entry(&self, def: &'static TableDef) -> Result<&Entry> {
        let address = std::ptr::from_ref(def) as usize;
        match self.entries().find(|entry| entry.def == address) {
            Some(entry) => Ok(entry),
            None => self.register(def, false),
        }
    }

    /// Creates the table of `def` unless one of its name exists.
    pub(super) fn create(&self, def: &'static TableDef) -> Result<()> {
        let entry = self.register(def, true)?;
        if let Some(history) = def.history {
            // The first struct of the table's name to ask for history sets what it keeps.
            let _ = entry.table.history.set(history.keep);
        }
        Ok(())
    }

    /// Adds an entry for `def`, with the table of its name (created if `create`). A struct whose
    /// columns the table does not have is refused here, before anything is read or written.
    #[cold]
    fn register(&self, def: &'static TableDef, create: bool) -> Result<&Entry> {
        let mut created = lock(&self.creating);
        let address = std::ptr::from_ref(def) as usize;
        if let Some(entry) = self.entries().find(|entry| entry.def == address) {
            return Ok(entry);
        }
        let table = match self.entries().find(|entry| entry.table.name == def.name) {
            Some(entry) => Arc::clone(&entry.table),
            None if create => {
                *created += 1;
                Arc::new(Table::new(def, *created))
            }
            None => return Err(no_table(def)),
        };
        let layout = Layout::new(table.def, def)?;
        // Adding under `creating` is the only way entries are added: the slot found empty is set.
        let mut slot = &self.first;
        while let Some(entry) = slot.get() {
            slot = &entry.next;
        }
        Ok(slot.get_or_init(|| Box::new(Entry { def: address, table, layout, next: OnceLock::new() })))
    }

    /// Every table's records as they are now, one consistent cut: every shard is locked (in the
    /// global order) until all are copied.
    pub(super) fn snapshot(&self) -> Result<HashMap<&'static str, TableSnapshot>> {
        let mut tables: Vec<&Table> = Vec::new();
        for entry in self.entries() {
            if !tables.iter().any(|table| table.order == entry.table.order) {
                tables.push(&entry.table);
            }
        }
        tables.sort_by_key(|table| table.order);
        let mut guards: Vec<_> =
            tables.iter().flat_map(|table| (0..SHARDS).map(|shard| table.lock_shard(shard))).collect();
        let mut guards = guards.iter_mut();
        let mut snapshot = HashMap::with_capacity(tables.len());
        for table in tables {
            let shards = guards.by_ref().take(SHARDS).map(|shard| shard.snapshot()).collect::<Result<_>>()?;
            snapshot.insert(table.name, TableSnapshot(shards));
        }
        Ok(snapshot)
    }
}

pub(super) fn no_table(table: &TableDef) -> Error {
    StorageError::new(format!("no such table: {} (call create_table first)", table.name)).into()
}
