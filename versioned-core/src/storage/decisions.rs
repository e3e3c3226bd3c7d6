//! Writes decided from the stored row alone, for backends that read a record and then apply a
//! decision atomically (the memory backend under its lock, transactions that buffer writes and
//! validate at commit, etcd's compare-and-swap on a revision): the rules are written once here.

use std::future::Future;

use crate::entity::{ColumnRole, Entity, TableDef};
use crate::error::{Result, StorageError};
use crate::storage::select::{Condition, RowLock, Select};
use crate::storage::{RowAccess, SavepointStep, WriteOutcome, evaluate};
use crate::value::{Row, Value};

/// A write decided from the stored row alone. Autocommit calls and transactions apply the same
/// decisions.
#[derive(Debug)]
pub enum Decision {
    /// Refuse: nothing is written.
    Refuse,
    /// Store this row.
    Write(Row),
    /// Delete the record.
    Delete,
}

impl Decision {
    /// What the decision leaves stored: `None` when it refuses, `Some(None)` for a delete (a
    /// transaction's buffer of writes holds this).
    pub fn applied(self) -> Option<Option<Row>> {
        match self {
            Decision::Refuse => None,
            Decision::Write(row) => Some(Some(row)),
            Decision::Delete => Some(None),
        }
    }
}

/// The next version of a record stored as `stored` (`None`: a new record), or `None` at the maximum.
pub(crate) fn next_version(table: &TableDef, stored: Option<&Row>) -> Result<Option<u64>> {
    match stored {
        None => Ok(Some(1)),
        Some(row) => {
            let version = table.version_of(row)?;
            Ok((version < table.version_max).then_some(version + 1))
        }
    }
}

pub(crate) fn with_version(mut row: Row, table: &TableDef, version: u64) -> Row {
    // `version` <= version_max <= i64::MAX, so the cast is exact.
    row.set(table.version, Value::Int(version as i64));
    row
}

/// Whether a conditional write expecting `expected` (`None`: unconditional) may replace `stored`.
pub(crate) fn check(table: &TableDef, stored: Option<&Row>, expected: Option<u64>) -> Result<bool> {
    match (stored, expected) {
        (None, _) => Ok(false),
        (Some(row), None) => table.version_of(row).map(|_| true),
        (Some(row), Some(expected)) => Ok(table.version_of(row)? == expected),
    }
}

/// `row`, with the stored record's creation time: an update never changes it.
pub(crate) fn keep_created(table: &TableDef, stored: Option<&Row>, mut row: Row) -> Row {
    if let (Some(index), Some(stored)) = (table.column_with(ColumnRole::CreatedAt), stored)
        && let Some(created) = stored.get(index)
    {
        row.set(index, created.clone());
    }
    row
}

/// [`RowAccess::upsert`](super::RowAccess::upsert) as a decision, and the version it writes.
pub(crate) fn upsert(table: &TableDef, stored: Option<&Row>, row: Row) -> Result<(Decision, Option<u64>)> {
    let version = next_version(table, stored)?;
    let decision = match version {
        Some(next) => Decision::Write(with_version(keep_created(table, stored, row), table, next)),
        None => Decision::Refuse,
    };
    Ok((decision, version))
}

/// [`RowAccess::patch`](super::RowAccess::patch) as a decision.
pub(crate) fn patch(
    table: &TableDef,
    stored: Option<&Row>,
    columns: &[(usize, Value)],
    expected: u64,
) -> Result<Decision> {
    let Some(stored) = stored else { return Ok(Decision::Refuse) };
    if table.version_of(stored)? != expected {
        return Ok(Decision::Refuse);
    }
    let mut row = with_version(stored.clone(), table, expected + 1);
    for (index, value) in columns {
        row.set(*index, value.clone());
    }
    Ok(Decision::Write(row))
}

/// A savepoint step of a transaction that buffers its writes: `written` is the buffer,
/// `savepoints` the copies of it taken when each open savepoint was set, outermost first. Reads
/// and locks stay: what was read inside a savepoint is still checked at commit.
pub(crate) fn savepoint<B: Clone>(written: &mut B, savepoints: &mut Vec<B>, step: SavepointStep) -> Result<()> {
    match step {
        SavepointStep::Set { depth } => {
            savepoints.truncate(depth.saturating_sub(1) as usize);
            savepoints.push(written.clone());
        }
        SavepointStep::RollBack { depth } => {
            let index = depth.saturating_sub(1) as usize;
            let Some(set) = savepoints.drain(index..).next() else {
                return Err(StorageError::new(format!("no savepoint {depth} is open")).into());
            };
            *written = set;
        }
        SavepointStep::Release { depth } => savepoints.truncate(depth.saturating_sub(1) as usize),
    }
    Ok(())
}

/// A backend whose writes are decided from the stored row alone and applied in one atomic step
/// (the memory backend under its shard's lock; the optimistic transactions of memory and etcd,
/// which buffer the decision and validate at commit). Such a backend says how it names a record,
/// reads one, and applies a decision; every row operation is then written once, here, in the
/// `RowAccess` implementation for every `DecidedWrites`.
pub trait DecidedWrites: Send + Sync {
    /// How the backend names a record.
    type Record: Send;

    /// The record with `key` in `table`.
    fn record(&self, table: &'static TableDef, key: &Value) -> Result<Self::Record>;

    /// The stored row of `record`, if any.
    fn read(&self, table: &'static TableDef, record: Self::Record) -> impl Future<Output = Result<Option<Row>>> + Send;

    /// Decides a write from the stored row (`decide`), and applies it atomically.
    fn write(
        &self,
        table: &'static TableDef,
        record: Self::Record,
        decide: impl FnOnce(Option<&Row>) -> Result<Decision> + Send,
    ) -> impl Future<Output = Result<WriteOutcome>> + Send;

    /// The answer to `select` (its condition, order and limit; not its lock) as this handle sees
    /// the table (a transaction: with its own writes), collected with an
    /// [`evaluate::Collector`]. With `remember`, a transaction remembers each row it returns as
    /// read, as [`read`](Self::read) does (a locking query remembers only the rows it locks).
    fn scan(
        &self,
        table: &'static TableDef,
        select: &Select,
        remember: bool,
    ) -> impl Future<Output = Result<Vec<Row>>> + Send;

    /// Locks `record` for this transaction as `lock` says, and remembers it as read as it is now
    /// unless the transaction read it before (commit checks what it read first);
    /// `false` when it is held by another transaction and `lock` skips it. An autocommit handle
    /// locks nothing (`true`): the typed layer asks only transactions.
    fn lock(
        &self,
        table: &'static TableDef,
        record: Self::Record,
        lock: RowLock,
    ) -> impl Future<Output = Result<bool>> + Send {
        let _ = (table, record, lock);
        async { Ok(true) }
    }

    /// See [`RowAccess::keeps_values`].
    fn keeps_values(&self) -> bool {
        false
    }

    /// See [`RowAccess::update_value`].
    fn update_value<T: Entity>(
        &self,
        table: &'static TableDef,
        key: &Value,
        record: &T,
        next: T::Version,
        expected: u64,
    ) -> Result<Option<WriteOutcome>> {
        let _ = (table, key, record, next, expected);
        Ok(None)
    }
}

/// Every row meeting `condition`, in no particular order.
fn every(condition: &Condition) -> Select {
    Select { condition: condition.clone(), order: Vec::new(), limit: None, lock: None }
}

/// The row operations, each as one decision.
impl<B: DecidedWrites> RowAccess for B {
    async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        self.read(table, self.record(table, key)?).await
    }

    async fn insert(&self, table: &'static TableDef, row: Row) -> Result<bool> {
        let record = self.record(table, table.key_of(&row)?)?;
        let written = self
            .write(table, record, |stored| Ok(if stored.is_none() { Decision::Write(row) } else { Decision::Refuse }));
        Ok(matches!(written.await?, WriteOutcome::Applied))
    }

    async fn update(&self, table: &'static TableDef, row: Row, expected: u64) -> Result<WriteOutcome> {
        let record = self.record(table, table.key_of(&row)?)?;
        let written = self.write(table, record, |stored| {
            Ok(match check(table, stored, Some(expected))? {
                true => Decision::Write(keep_created(table, stored, row)),
                false => Decision::Refuse,
            })
        });
        written.await
    }

    async fn upsert(&self, table: &'static TableDef, row: Row) -> Result<Option<u64>> {
        let record = self.record(table, table.key_of(&row)?)?;
        let mut version = None;
        let written = self.write(table, record, |stored| {
            let (decision, next) = upsert(table, stored, row)?;
            version = next;
            Ok(decision)
        });
        match written.await? {
            WriteOutcome::Applied => Ok(version),
            WriteOutcome::Rejected { .. } => Ok(None),
        }
    }

    async fn patch(
        &self,
        table: &'static TableDef,
        key: &Value,
        columns: &[(usize, Value)],
        expected: u64,
    ) -> Result<WriteOutcome> {
        let written = self.write(table, self.record(table, key)?, |stored| patch(table, stored, columns, expected));
        written.await
    }

    async fn delete(&self, table: &'static TableDef, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        let written = self.write(table, self.record(table, key)?, |stored| {
            Ok(if check(table, stored, expected)? { Decision::Delete } else { Decision::Refuse })
        });
        written.await
    }

    async fn select(&self, table: &'static TableDef, select: &Select) -> Result<Vec<Row>> {
        let Some(lock) = select.lock else {
            return self.scan(table, select, true).await;
        };
        // Every candidate in order, each locked (or skipped) and read again once locked: it must
        // still match, and what the transaction remembers is what it locked.
        let candidates = self.scan(table, &Select { limit: None, ..select.clone() }, false).await?;
        let limit = select.limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        let mut locked = Vec::new();
        for row in candidates {
            if locked.len() >= limit {
                break;
            }
            let key = table.key_of(&row)?;
            if !self.lock(table, self.record(table, key)?, lock).await? {
                continue;
            }
            if let Some(row) = self.read(table, self.record(table, key)?).await?
                && evaluate::matches(&select.condition, &row)
            {
                locked.push(row);
            }
        }
        Ok(evaluate::order_and_limit(&Select { limit: None, ..select.clone() }, locked))
    }

    async fn count(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        Ok(self.scan(table, &every(condition), true).await?.len() as u64)
    }

    async fn update_where(
        &self,
        table: &'static TableDef,
        condition: &Condition,
        columns: &[(usize, Value)],
    ) -> Result<u64> {
        let mut changed = 0;
        for row in self.scan(table, &every(condition), true).await? {
            let record = self.record(table, table.key_of(&row)?)?;
            // Decided again on the row as stored at the write: it must still match.
            let written = self.write(table, record, |stored| {
                let Some(stored) = stored.filter(|row| evaluate::matches(condition, row)) else {
                    return Ok(Decision::Refuse);
                };
                match table.version_of(stored) {
                    Ok(version) if version < table.version_max => {
                        let mut row = stored.clone();
                        for (index, value) in columns {
                            row.set(*index, value.clone());
                        }
                        // `version` < version_max <= i64::MAX: the increment is exact.
                        Ok(Decision::Write(with_version(row, table, version + 1)))
                    }
                    _ => Ok(Decision::Refuse),
                }
            });
            changed += u64::from(matches!(written.await?, WriteOutcome::Applied));
        }
        Ok(changed)
    }

    async fn delete_where(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        let mut deleted = 0;
        for row in self.scan(table, &every(condition), true).await? {
            let record = self.record(table, table.key_of(&row)?)?;
            let written = self.write(table, record, |stored| {
                Ok(match stored {
                    Some(row) if evaluate::matches(condition, row) => Decision::Delete,
                    _ => Decision::Refuse,
                })
            });
            deleted += u64::from(matches!(written.await?, WriteOutcome::Applied));
        }
        Ok(deleted)
    }

    fn keeps_values(&self) -> bool {
        DecidedWrites::keeps_values(self)
    }

    fn update_value<T: Entity>(
        &self,
        table: &'static TableDef,
        key: &Value,
        record: &T,
        next: T::Version,
        expected: u64,
    ) -> Result<Option<WriteOutcome>> {
        DecidedWrites::update_value(self, table, key, record, next, expected)
    }
}
