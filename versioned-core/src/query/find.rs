//! [`Find`]: a query of one struct's records on a store or in a transaction, and what it returns.

use futures_util::stream::Stream;

use super::column::compare;
use super::cursor::Cursor;
use super::filter::Filter;
use super::order::OrderBy;
use super::stream::Chunks;
use crate::entity::{Entity, TableDef};
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::observe::{Kind, Operation, observed};
use crate::storage::RowAccess;
use crate::storage::Storage;
use crate::storage::select::{Comparison, Condition, Order, RowLock, Select};
use crate::transaction::Transaction;
use crate::value::{ColumnType, Row, Value};

/// The most values one query may carry (its filter's, and its cursor's): below what every SQL
/// database binds in one statement (SQLite: 32,766), so a query runs, or is refused, the same on
/// every backend.
pub const MAX_QUERY_VALUES: usize = 30_000;

/// A query of the records of `T`: made by [`Store::find`](crate::Store::find),
/// [`Transaction::find`](crate::Transaction::find) or the derive's `T::find(&store)`; narrowed by
/// [`filter`](Self::filter), ordered by [`order_by`](Self::order_by), cut by
/// [`limit`](Self::limit); run by [`all`](Self::all), [`first`](Self::first),
/// [`page`](Self::page), [`count`](Self::count), [`exists`](Self::exists) or
/// [`stream`](Self::stream).
///
/// The order is always total: the key is the last tie-breaker. It is Rust's order of the field
/// values on every backend (see [`Column`](super::Column)). Every record comes with its version, so
/// it can be edited and written back with a checked `put`.
#[must_use = "a query does nothing until it is run (all, first, page, count, exists, stream)"]
pub struct Find<'e, E, T> {
    on: &'e E,
    lock: Option<RowLock>,
    filter: Filter<T>,
    order: Vec<Order>,
    limit: Option<u64>,
    after: Option<Cursor>,
}

/// One page of a query: its records, and the cursor of the next page (`None` on the last).
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The records, in the query's order.
    pub records: Vec<T>,
    /// Where the next page starts; `None` when no record follows.
    pub next: Option<Cursor>,
}

impl<'e, E: Executor, T: Entity> Find<'e, E, T> {
    /// A query of every record of `T` on `on`, in key order.
    pub fn new(on: &'e E) -> Self {
        Find { on, lock: None, filter: Filter::all(), order: Vec::new(), limit: None, after: None }
    }

    /// Only the records meeting `filter` (and every filter given before).
    pub fn filter(mut self, filter: Filter<T>) -> Self {
        self.filter = std::mem::take(&mut self.filter).and(filter);
        self
    }

    /// Orders by `by` (a field, ascending, or `Bug::FIELD.desc()`), after the orders given
    /// before; the key breaks the remaining ties.
    pub fn order_by(mut self, by: impl Into<OrderBy<T>>) -> Self {
        self.order.push(by.into().order);
        self
    }

    /// At most `n` records (`0`: none).
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Starts after the record `cursor` points at (a [`Page::next`]): for [`page`](Self::page),
    /// and for the other terminal operations too.
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// [`after`](Self::after) if `cursor` is given: the first page otherwise.
    pub fn after_opt(self, cursor: Option<Cursor>) -> Self {
        match cursor {
            Some(cursor) => self.after(cursor),
            None => self,
        }
    }

    /// Every matching record (at most the limit), in order.
    pub async fn all(self) -> Result<Vec<T>> {
        let limit = self.limit;
        let (access, query) = self.prepare("find")?;
        observed!(
            Operation::start("find", T::TABLE, || None),
            Kind::Read,
            |r: &Vec<T>| ("found", r.len() as u64),
            query.run::<T, _>(access, limit)
        )
    }

    /// The first matching record in order, if any (none under `limit(0)`).
    pub async fn first(self) -> Result<Option<T>> {
        let limit = self.limit.map_or(1, |limit| limit.min(1));
        Ok(self.limit(limit).all().await?.pop())
    }

    /// Whether any record matches.
    pub async fn exists(self) -> Result<bool> {
        let (access, query) = self.limit(1).prepare("exists")?;
        Ok(!access.select(T::TABLE, &query.select(Some(1))).await?.is_empty())
    }

    /// How many records match (the limit and the order aside; a cursor given with
    /// [`after`](Self::after) counts only those after it).
    pub async fn count(self) -> Result<u64> {
        let (access, query) = self.prepare("count")?;
        observed!(
            Operation::start("count", T::TABLE, || None),
            Kind::Read,
            |_| ("counted", 0),
            access.count(T::TABLE, &query.condition)
        )
    }

    /// The next `size` records (from the start, or after the cursor given with
    /// [`after`](Self::after)), and the cursor of the page after them. `size` must be at least 1.
    pub async fn page(self, size: u64) -> Result<Page<T>> {
        if size == 0 {
            return Err(Error::Query { table: T::TABLE.name, reason: "a page of 0 records never advances".into() });
        }
        let (access, query) = self.prepare("page")?;
        observed!(
            Operation::start("page", T::TABLE, || None),
            Kind::Read,
            |p: &Page<T>| ("found", p.records.len() as u64),
            query.page::<T, _>(access, size)
        )
    }

    /// Every matching record (at most the limit), in order, fetched `chunk` at a time by keyset:
    /// memory does not grow with the number of records. A record written meanwhile is seen or not
    /// depending on where the stream is, never twice. `chunk` must be at least 1.
    pub fn stream(self, chunk: u64) -> impl Stream<Item = Result<T>> + Send + 'e
    where
        E: Sync,
        E::Access: 'e,
        T: 'e,
    {
        let limit = self.limit;
        let prepared = self.prepare("stream").and_then(|prepared| match chunk {
            0 => Err(Error::Query {
                table: T::TABLE.name,
                reason: "a stream in chunks of 0 records never advances".into(),
            }),
            _ => Ok(prepared),
        });
        Chunks::new(prepared, chunk, limit)
    }

    /// The backend access for `operation`, and the query with its order made total and its
    /// cursor turned into a condition.
    fn prepare(self, operation: &'static str) -> Result<(&'e E::Access, Query)> {
        // A locking read is refused where writes are (a read-only transaction).
        let access = if self.lock.is_some() { self.on.writer(operation)? } else { self.on.reader(operation)? };
        let table = T::TABLE;
        let order = total_order(table, self.order);
        let mut condition = self.filter.into_condition()?;
        let base = condition.clone();
        if let Some(cursor) = &self.after {
            condition = condition.and(after(table, &order, cursor.values(table, &order)?));
        }
        check_size(table, &condition)?;
        Ok((access, Query { table, lock: self.lock, base, condition, order, limit: self.limit }))
    }
}

impl<'e, E: Executor, T: Entity> Find<'e, E, T> {
    /// This query, locking what it returns as `lock` says (the front end's `for_update`).
    pub(crate) fn locking(mut self, lock: RowLock) -> Self {
        self.lock = Some(lock);
        self
    }
}

impl<'e, S: Storage, T: Entity> Find<'e, Transaction<S>, T> {
    /// Locks every record returned until the transaction ends (`SELECT … FOR UPDATE`), waiting
    /// for one another transaction holds as the store's [`LockWait`](crate::LockWait) says,
    /// then failing with [`Error::LockTimeout`]. How each backend locks: as for
    /// [`Transaction::get_for_update`].
    pub fn for_update(self) -> Self {
        let wait = self.on.lock_wait();
        self.locking(RowLock::Wait(wait))
    }

    /// Locks every record returned that no other transaction holds, and leaves out those it
    /// holds (`FOR UPDATE SKIP LOCKED`): with `first()` or `limit(n)`, a job queue's "claim the
    /// next job" for many workers at once. On SQLite a transaction holds the whole database, so
    /// nothing is ever skipped.
    pub fn skip_locked(self) -> Self {
        self.locking(RowLock::SkipLocked)
    }
}

/// A query ready to run: `condition` is `base` (the filter) and, once a page was read, the keyset
/// condition of the record after which the next starts.
pub(super) struct Query {
    table: &'static TableDef,
    lock: Option<RowLock>,
    base: Condition,
    condition: Condition,
    order: Vec<Order>,
    limit: Option<u64>,
}

impl Query {
    pub(super) fn select(&self, limit: Option<u64>) -> Select {
        Select { condition: self.condition.clone(), order: self.order.clone(), limit, lock: self.lock }
    }

    async fn run<T: Entity, A: RowAccess>(self, access: &A, limit: Option<u64>) -> Result<Vec<T>> {
        access.select(T::TABLE, &self.select(limit)).await?.into_iter().map(T::from_row).collect()
    }

    async fn page<T: Entity, A: RowAccess>(self, access: &A, size: u64) -> Result<Page<T>> {
        let size = self.limit.map_or(size, |limit| limit.min(size));
        // One more than the page: whether a next page exists, without a second query.
        let mut rows = access.select(T::TABLE, &self.select(Some(size.saturating_add(1)))).await?;
        let more = rows.len() as u64 > size;
        rows.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        let next = match rows.last() {
            Some(last) if more => Some(Cursor::new(self.table, &self.order, &self.order_values(last))),
            _ => None,
        };
        Ok(Page { records: rows.into_iter().map(T::from_row).collect::<Result<_>>()?, next })
    }

    /// The next chunk starts after the record whose order values are `values`.
    pub(super) fn continue_after(&mut self, values: Vec<Value>) {
        self.condition = self.base.clone().and(after(self.table, &self.order, values));
    }

    /// The values of the order's columns in `row` (see [`order_values`]).
    pub(super) fn order_values(&self, row: &Row) -> Vec<Value> {
        order_values(self.table, &self.order, row)
    }

    /// The query's table and order, for [`order_values`].
    pub(super) fn ordering(&self) -> (&'static TableDef, Vec<Order>) {
        (self.table, self.order.clone())
    }
}

/// The values of `order`'s columns in `row`, as the column's type holds them (SQLite reads a
/// bool as the integer it stores): where a page or chunk after `row` starts.
pub(super) fn order_values(table: &TableDef, order: &[Order], row: &Row) -> Vec<Value> {
    order
        .iter()
        .map(|o| match (row.get(o.column).cloned().unwrap_or(Value::Null), table.columns[o.column].ty) {
            (Value::Int(i), ColumnType::Bool) => Value::Bool(i != 0),
            (value, _) => value,
        })
        .collect()
}

/// `order`, then the key, ascending, unless the key is in it already (what follows the key can
/// never break a tie, and is dropped).
fn total_order(table: &TableDef, mut order: Vec<Order>) -> Vec<Order> {
    match order.iter().position(|o| o.column == table.key) {
        Some(key) => order.truncate(key + 1),
        None => order.push(Order { column: table.key, descending: false }),
    }
    order
}

/// The records after the one whose order values are `values`, in `order` (keyset): for the first
/// key that differs, after its value; every key before it equal. Written with a leading bound on
/// the first key (`a >= v` for ascending) that an index on it can serve.
fn after(table: &TableDef, order: &[Order], values: Vec<Value>) -> Condition {
    let nullable = |o: &Order| table.columns[o.column].nullable;
    let mut alternatives = Vec::with_capacity(order.len());
    for (i, key) in order.iter().enumerate() {
        let mut all = Vec::with_capacity(i + 1);
        for (before, value) in order[..i].iter().zip(&values) {
            all.push(compare(before.column, nullable(before), Comparison::Eq, value.clone()));
        }
        let op = if key.descending { Comparison::Lt } else { Comparison::Gt };
        all.push(compare(key.column, nullable(key), op, values[i].clone()));
        alternatives.push(Condition::And(all));
    }
    let first = &order[0];
    let bound = compare(
        first.column,
        nullable(first),
        if first.descending { Comparison::Le } else { Comparison::Ge },
        values[0].clone(),
    );
    bound.and(Condition::Or(alternatives))
}

/// Refuses a condition carrying more than [`MAX_QUERY_VALUES`] values.
pub(crate) fn check_size(table: &TableDef, condition: &Condition) -> Result<()> {
    fn count(c: &Condition) -> usize {
        match c {
            Condition::Compare { .. } | Condition::StartsWith { .. } => 2,
            Condition::In { values, .. } => values.len(),
            Condition::IsNull { .. } => 0,
            Condition::And(all) | Condition::Or(all) => all.iter().map(count).sum(),
            Condition::Not(c) => count(c),
        }
    }
    let n = count(condition);
    if n > MAX_QUERY_VALUES {
        return Err(Error::Query {
            table: table.name,
            reason: format!("{n} values in one query; at most {MAX_QUERY_VALUES} (split the list)"),
        });
    }
    Ok(())
}
