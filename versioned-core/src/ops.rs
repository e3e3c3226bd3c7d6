//! The typed operations, written once over any [`RowAccess`]: a store or a transaction.
//!
//! Each function turns the entity into a row, asks the backend for one conditional step, and
//! turns the outcome into the typed result. The caller's struct is changed only on success.

use crate::entity::Entity;
use crate::error::{Error, Result};
use crate::storage::{RowAccess, StorageTransaction, WriteOutcome};
use crate::value::{Field, Row, Value, VersionField};

fn key_value<T: Entity>(key: &T::Key) -> Result<Value> {
    key.to_value().map_err(|reason| Error::encode(T::TABLE, T::TABLE.key, reason))
}

fn version_u64<T: Entity>(t: &T) -> Result<u64> {
    t.version().to_u64().ok_or_else(|| Error::encode(T::TABLE, T::TABLE.version, "a version cannot be negative"))
}

/// The version `v` as the entity's field type. Callers only pass versions that came from the
/// store or were checked against `version_max`, which is the field type's maximum.
fn to_field<T: Entity>(v: u64) -> Result<T::Version> {
    T::Version::from_u64(v).ok_or_else(|| {
        Error::decode(T::TABLE, T::TABLE.version_column().name, format!("version {v} does not fit the field"))
    })
}

fn conflict<T: Entity>(key: Value, expected: u64, current: Option<Row>) -> Result<Error> {
    let actual = current.as_ref().map(|row| T::TABLE.version_of(row)).transpose()?;
    Ok(Error::ConcurrentModification { table: T::TABLE.name, key, expected, actual, current })
}

/// See [`Store::insert`](crate::Store::insert).
pub async fn insert<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    let table = T::TABLE;
    let first = to_field::<T>(1)?;
    let mut row = t.to_row()?;
    row.set(table.version, Value::Int(1));
    if access.insert(table, &row).await? {
        t.set_version(first);
        Ok(())
    } else {
        Err(Error::AlreadyExists { table: table.name, key: table.key_of(&row)?.clone() })
    }
}

/// See [`Store::get`](crate::Store::get).
pub async fn get<T: Entity, A: RowAccess>(access: &A, key: &T::Key) -> Result<Option<T>> {
    let key = key_value::<T>(key)?;
    access.fetch(T::TABLE, &key).await?.map(T::from_row).transpose()
}

/// See [`Store::get_with_version`](crate::Store::get_with_version).
pub async fn get_with_version<T: Entity, A: RowAccess>(access: &A, key: &T::Key, version: T::Version) -> Result<T> {
    let key = key_value::<T>(key)?;
    let Some(row) = access.fetch(T::TABLE, &key).await? else {
        return Err(Error::NotFound { table: T::TABLE.name, key });
    };
    let stored = T::TABLE.version_of(&row)?;
    match version.to_u64() {
        Some(expected) if expected == stored => T::from_row(row),
        // A negative expected version matches nothing; report it as the stored record's conflict.
        expected => Err(conflict::<T>(key, expected.unwrap_or(0), Some(row))?),
    }
}

/// See [`Store::put`](crate::Store::put).
pub async fn put<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    let table = T::TABLE;
    let expected = version_u64(t)?;
    let mut row = t.to_row()?;
    let key = table.key_of(&row)?.clone();
    if expected >= table.version_max {
        return Err(Error::VersionOverflow { table: table.name, key, version: expected });
    }
    let next = expected + 1;
    let next_field = to_field::<T>(next)?;
    // `next` <= version_max <= i64::MAX, so the cast is exact.
    row.set(table.version, Value::Int(next as i64));
    match access.update(table, &row, expected).await? {
        WriteOutcome::Applied => {
            t.set_version(next_field);
            Ok(())
        }
        WriteOutcome::Rejected { current } => Err(conflict::<T>(key, expected, current)?),
    }
}

/// See [`Store::put_unchecked`](crate::Store::put_unchecked).
pub async fn put_unchecked<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    let table = T::TABLE;
    let row = t.to_row()?;
    match access.upsert(table, &row).await? {
        Some(version) => {
            t.set_version(to_field::<T>(version)?);
            Ok(())
        }
        None => Err(Error::VersionOverflow {
            table: table.name,
            key: table.key_of(&row)?.clone(),
            version: table.version_max,
        }),
    }
}

/// See [`Store::delete`](crate::Store::delete).
pub async fn delete<T: Entity, A: RowAccess>(access: &A, t: &T) -> Result<()> {
    let expected = version_u64(t)?;
    let key = key_value::<T>(t.key())?;
    match access.delete(T::TABLE, &key, Some(expected)).await? {
        WriteOutcome::Applied => Ok(()),
        WriteOutcome::Rejected { current } => Err(conflict::<T>(key, expected, current)?),
    }
}

/// See [`Store::delete_unchecked`](crate::Store::delete_unchecked).
pub async fn delete_unchecked<T: Entity, A: RowAccess>(access: &A, key: &T::Key) -> Result<bool> {
    let key = key_value::<T>(key)?;
    Ok(access.delete(T::TABLE, &key, None).await? == WriteOutcome::Applied)
}

/// See [`Transaction::get_for_update`](crate::Transaction::get_for_update).
pub async fn get_for_update<T: Entity, X: StorageTransaction>(tx: &X, key: &T::Key) -> Result<Option<T>> {
    let key = key_value::<T>(key)?;
    tx.fetch_for_update(T::TABLE, &key).await?.map(T::from_row).transpose()
}

/// One attempt of [`Store::update`](crate::Store::update): read, apply `f`, checked write.
pub async fn read_modify_write<T: Entity, R, A: RowAccess>(
    access: &A,
    key: &T::Key,
    f: &mut impl FnMut(&mut T) -> R,
) -> Result<R> {
    let mut t = get::<T, A>(access, key).await?.ok_or_else(|| Error::not_found::<T>(key))?;
    let result = f(&mut t);
    put(access, &mut t).await?;
    Ok(result)
}
