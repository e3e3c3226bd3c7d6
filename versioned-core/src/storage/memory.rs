//! The in-memory reference backend: exact semantics, no I/O.
//!
//! All tables live behind one mutex; every operation, conditional writes included, runs as one
//! critical section, so a check and its write are a single atomic step. The lock is never held
//! across an `.await`, so it is safe (and fast) to share between tokio tasks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{RowAccess, Storage, WriteOutcome};
use crate::entity::TableDef;
use crate::error::{Result, StorageError};
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
}

type Tables = HashMap<&'static str, BTreeMap<KeyRepr, Row>>;

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

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // A panic while the lock is held cannot leave a table half-written: every mutation below
        // is a single map insert or remove after all checks. So a poisoned lock is still sound.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn table_mut<'a>(tables: &'a mut Tables, table: &TableDef) -> Result<&'a mut BTreeMap<KeyRepr, Row>> {
    tables.get_mut(table.name).ok_or_else(|| no_table(table))
}

fn no_table(table: &TableDef) -> crate::Error {
    StorageError::new(format!("no such table: {} (call create_table first)", table.name)).into()
}

fn key_of(table: &TableDef, row: &Row) -> Result<KeyRepr> {
    KeyRepr::of(table, table.key_of(row)?)
}

impl RowAccess for MemoryStorage {
    async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        let key = KeyRepr::of(table, key)?;
        let tables = self.lock();
        let rows = tables.get(table.name).ok_or_else(|| no_table(table))?;
        Ok(rows.get(&key).cloned())
    }

    async fn insert(&self, table: &'static TableDef, row: &Row) -> Result<bool> {
        let key = key_of(table, row)?;
        let mut tables = self.lock();
        let rows = table_mut(&mut tables, table)?;
        if rows.contains_key(&key) {
            return Ok(false);
        }
        rows.insert(key, row.clone());
        Ok(true)
    }

    async fn update(&self, table: &'static TableDef, row: &Row, expected: u64) -> Result<WriteOutcome> {
        let key = key_of(table, row)?;
        let mut tables = self.lock();
        let rows = table_mut(&mut tables, table)?;
        match rows.get_mut(&key) {
            Some(stored) if table.version_of(stored)? == expected => {
                *stored = row.clone();
                Ok(WriteOutcome::Applied)
            }
            stored => Ok(WriteOutcome::Rejected { current: stored.cloned() }),
        }
    }

    async fn upsert(&self, table: &'static TableDef, row: &Row) -> Result<Option<u64>> {
        let key = key_of(table, row)?;
        let mut tables = self.lock();
        let rows = table_mut(&mut tables, table)?;
        let next = match rows.get(&key) {
            None => 1,
            Some(stored) => {
                let version = table.version_of(stored)?;
                if version >= table.version_max {
                    return Ok(None);
                }
                version + 1
            }
        };
        let mut row = row.clone();
        // `next` <= version_max <= i64::MAX, so the cast is exact.
        row.set(table.version, Value::Int(next as i64));
        rows.insert(key, row);
        Ok(Some(next))
    }

    async fn delete(&self, table: &'static TableDef, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        let key = KeyRepr::of(table, key)?;
        let mut tables = self.lock();
        let rows = table_mut(&mut tables, table)?;
        let matches = match (rows.get(&key), expected) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(stored), Some(expected)) => table.version_of(stored)? == expected,
        };
        if matches {
            rows.remove(&key);
            Ok(WriteOutcome::Applied)
        } else {
            Ok(WriteOutcome::Rejected { current: rows.get(&key).cloned() })
        }
    }
}

impl Storage for MemoryStorage {
    async fn create_table(&self, table: &'static TableDef) -> Result<()> {
        self.lock().entry(table.name).or_default();
        Ok(())
    }
}
