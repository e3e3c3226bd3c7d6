//! The batch operations, [`Store::put_all`](crate::Store::put_all),
//! [`insert_all`](crate::Store::insert_all) and [`delete_all`](crate::Store::delete_all), in
//! steps the store and the transaction run around their own savepoint or transaction:
//! `prepare_*` builds the rows (and refuses a batch naming a record twice) without I/O,
//! `write_*` writes them and reports every refused record, `settle_*` brings the caller's copies
//! to what was written.

use super::{Stamps, conflict, first_row, key_value, next_row, settle_insert, settle_put, stamps, version_u64};
use crate::entity::Entity;
use crate::error::{Error, Result};
use crate::observe::{Kind, Operation, observed};
use crate::storage::{RowAccess, WriteOutcome};
use crate::value::{Row, Value};

/// The copies of a batch whose version no storage holds (a `u64` past `i64::MAX`): refused, as
/// conflicts with their stored records in [`Error::Conflicts`], before anything of the batch is
/// written. No I/O when there are none, the usual case.
pub async fn refuse_unstorable_versions<T: Entity, A: RowAccess>(access: &A, ts: &[T]) -> Result<()> {
    let mut conflicts = Vec::new();
    for t in ts {
        let expected = version_u64(t)?;
        if expected > T::TABLE.version_max {
            let key = key_value::<T>(t.key())?;
            let current = access.fetch_current(T::TABLE, &key).await?;
            conflicts.push(conflict::<T>(key, expected, current)?);
        }
    }
    if conflicts.is_empty() { Ok(()) } else { Err(Error::Conflicts { table: T::TABLE.name, conflicts }) }
}

/// The rows of [`Store::put_all`](crate::Store::put_all): each copy as it will be stored (at the
/// next version, stamped), with the version it expects; and the stamps, for the copies once the
/// batch is written. Nothing of the copies changes here.
pub fn prepare_puts<T: Entity>(ts: &[T]) -> Result<(Vec<(Row, u64)>, Stamps)> {
    let stamps = stamps(T::TABLE, false)?;
    let rows = ts.iter().map(|t| next_row(t, &stamps)).collect::<Result<Vec<_>>>()?;
    refuse_duplicates::<T>(rows.iter().map(|(row, _)| row))?;
    Ok((rows, stamps))
}

/// Writes the rows of [`prepare_puts`] with checked updates; every refused record is reported, in
/// [`Error::Conflicts`]. The caller runs it in a transaction or savepoint that a refusal rolls back.
pub async fn write_puts<T: Entity, A: RowAccess>(access: &A, rows: Vec<(Row, u64)>) -> Result<()> {
    let records = rows.len() as u64;
    observed!(
        Operation::start("put_all", T::TABLE, || None),
        Kind::Write,
        |_| ("applied", records),
        write_puts_inner::<T, A>(access, rows)
    )
}

async fn write_puts_inner<T: Entity, A: RowAccess>(access: &A, rows: Vec<(Row, u64)>) -> Result<()> {
    let keys = rows.iter().map(|(row, e)| Ok((T::TABLE.key_of(row)?.clone(), *e))).collect::<Result<Vec<_>>>()?;
    let outcomes = access.update_many(T::TABLE, rows).await?;
    all_applied::<T>(keys.into_iter().zip(outcomes))
}

/// The copies of a written [`prepare_puts`] batch: each at its next version, with the stamps.
pub fn settle_puts<T: Entity>(ts: &mut [T], stamps: &[(usize, Value)]) -> Result<()> {
    ts.iter_mut().try_for_each(|t| settle_put(t, stamps))
}

/// The rows of [`Store::insert_all`](crate::Store::insert_all), at version 1 and stamped; and the
/// stamps.
pub fn prepare_inserts<T: Entity>(ts: &[T]) -> Result<(Vec<Row>, Stamps)> {
    let stamps = stamps(T::TABLE, true)?;
    let rows = ts.iter().map(|t| first_row(t, &stamps)).collect::<Result<Vec<_>>>()?;
    refuse_duplicates::<T>(rows.iter())?;
    Ok((rows, stamps))
}

/// Inserts the rows of [`prepare_inserts`]; every key already taken is reported as
/// [`Error::AlreadyExists`] in [`Error::Conflicts`].
pub async fn write_inserts<T: Entity, A: RowAccess>(access: &A, rows: Vec<Row>) -> Result<()> {
    let records = rows.len() as u64;
    observed!(
        Operation::start("insert_all", T::TABLE, || None),
        Kind::Write,
        |_| ("applied", records),
        write_inserts_inner::<T, A>(access, rows)
    )
}

async fn write_inserts_inner<T: Entity, A: RowAccess>(access: &A, rows: Vec<Row>) -> Result<()> {
    let keys = rows.iter().map(|row| Ok(T::TABLE.key_of(row)?.clone())).collect::<Result<Vec<_>>>()?;
    let inserted = access.insert_many(T::TABLE, rows).await?;
    let taken: Vec<Error> = keys
        .into_iter()
        .zip(inserted)
        .filter(|(_, inserted)| !inserted)
        .map(|(key, _)| Error::AlreadyExists { table: T::TABLE.name, key })
        .collect();
    if taken.is_empty() { Ok(()) } else { Err(Error::Conflicts { table: T::TABLE.name, conflicts: taken }) }
}

/// The copies of a written [`prepare_inserts`] batch: at version 1, with the stamps.
pub fn settle_inserts<T: Entity>(ts: &mut [T], stamps: &[(usize, Value)]) -> Result<()> {
    ts.iter_mut().try_for_each(|t| settle_insert(t, stamps))
}

/// The keys and expected versions of [`Store::delete_all`](crate::Store::delete_all).
pub fn prepare_deletes<T: Entity>(ts: &[T]) -> Result<Vec<(Value, u64)>> {
    let keys = ts.iter().map(|t| Ok((key_value::<T>(t.key())?, version_u64(t)?))).collect::<Result<Vec<_>>>()?;
    refuse_duplicate_keys::<T>(keys.iter().map(|(key, _)| key))?;
    Ok(keys)
}

/// Deletes the records of [`prepare_deletes`], each checked against its expected version; every
/// refused record is reported in [`Error::Conflicts`].
pub async fn write_deletes<T: Entity, A: RowAccess>(access: &A, keys: Vec<(Value, u64)>) -> Result<()> {
    let records = keys.len() as u64;
    observed!(
        Operation::start("delete_all", T::TABLE, || None),
        Kind::Write,
        |_| ("applied", records),
        write_deletes_inner::<T, A>(access, keys)
    )
}

async fn write_deletes_inner<T: Entity, A: RowAccess>(access: &A, keys: Vec<(Value, u64)>) -> Result<()> {
    let outcomes = access.delete_many(T::TABLE, &keys).await?;
    all_applied::<T>(keys.into_iter().zip(outcomes))
}

/// `Ok` when every write was applied; otherwise every refusal, as conflicts.
fn all_applied<T: Entity>(results: impl Iterator<Item = ((Value, u64), WriteOutcome)>) -> Result<()> {
    let mut conflicts = Vec::new();
    for ((key, expected), outcome) in results {
        if let WriteOutcome::Rejected { current } = outcome {
            conflicts.push(conflict::<T>(key, expected, current)?);
        }
    }
    if conflicts.is_empty() { Ok(()) } else { Err(Error::Conflicts { table: T::TABLE.name, conflicts }) }
}

fn refuse_duplicates<'r, T: Entity>(rows: impl Iterator<Item = &'r Row>) -> Result<()> {
    let keys = rows.map(|row| T::TABLE.key_of(row)).collect::<Result<Vec<_>>>()?;
    refuse_duplicate_keys::<T>(keys.into_iter())
}

/// A batch names each record once: two copies of one record in a batch would check against each
/// other's write.
fn refuse_duplicate_keys<'k, T: Entity>(keys: impl Iterator<Item = &'k Value>) -> Result<()> {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Int(_) => 0,
            Value::Text(_) => 1,
            Value::Bytes(_) => 2,
            _ => 3,
        }
    }
    fn order(a: &Value, b: &Value) -> std::cmp::Ordering {
        match (a, b) {
            (Value::Int(x), Value::Int(y)) => x.cmp(y),
            (Value::Text(x), Value::Text(y)) => x.cmp(y),
            (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
            _ => rank(a).cmp(&rank(b)),
        }
    }
    let mut keys: Vec<&Value> = keys.collect();
    keys.sort_unstable_by(|a, b| order(a, b));
    match keys.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(Error::encode(
            T::TABLE,
            T::TABLE.key,
            format!("key {} appears twice in one batch; a batch writes each record once", pair[0].describe()),
        )),
        None => Ok(()),
    }
}
