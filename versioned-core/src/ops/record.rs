//! The operations on one record: insert, read, put, save, delete, touch, by key or by copy.

use super::{
    APPLIED, FOUND, NOT_FOUND, conflict, decode_row, expected_version, first_row, found, key_value, next_row, rejected,
    settle_insert, settle_put, stamp_entity, stamp_row, stamps, to_field, version_u64,
};
use crate::entity::{ColumnRole, Entity};
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::lock::LockWait;
use crate::observe::{self, Kind, Operation, observed, observing};
use crate::storage::{LockingRead, RowAccess, WriteOutcome};
use crate::value::{KeyFor, VersionField};

/// See [`Store::insert`](crate::Store::insert).
pub async fn insert<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    observed!(
        Operation::start("insert", T::TABLE, || key_value::<T>(t.key()).ok()),
        Kind::Write,
        |_| APPLIED,
        insert_inner::<T, _>(access, t)
    )
}

async fn insert_inner<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    let table = T::TABLE;
    let stamps = stamps(table, true)?;
    if access.insert(table, first_row(t, &stamps)?).await? {
        settle_insert(t, &stamps)
    } else {
        Err(Error::AlreadyExists { table: table.name, key: key_value::<T>(t.key())? })
    }
}

/// See [`Store::get`](crate::Store::get).
pub async fn get<T: Entity, A: RowAccess>(access: &A, key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<Option<T>> {
    read(access, key, false).await
}

/// [`get`], never from a copy that may lag behind the writes (a read replica): what the last
/// write left ([`RowAccess::fetch_current`]).
pub(crate) async fn get_current<T: Entity, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
) -> Result<Option<T>> {
    read(access, key, true).await
}

/// A `get`, observed as one: from the current record with `current` ([`get_current`]).
#[inline]
async fn read<T: Entity, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
    current: bool,
) -> Result<Option<T>> {
    observed!(Operation::start("get", T::TABLE, || key_value::<T>(key).ok()), Kind::Read, found, async {
        let key = key_value::<T>(key)?;
        let row =
            if current { access.fetch_current(T::TABLE, &key).await? } else { access.fetch(T::TABLE, &key).await? };
        row.map(decode_row).transpose()
    })
}

/// See [`Store::get_with_version`](crate::Store::get_with_version).
pub async fn get_with_version<T: Entity, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
    version: T::Version,
) -> Result<T> {
    observed!(
        Operation::start("get_with_version", T::TABLE, || key_value::<T>(key).ok()),
        Kind::Read,
        |_| FOUND,
        get_with_version_inner::<T, _>(access, key, version)
    )
}

async fn get_with_version_inner<T: Entity, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
    version: T::Version,
) -> Result<T> {
    let key = key_value::<T>(key)?;
    let Some(row) = access.fetch(T::TABLE, &key).await? else {
        return Err(Error::NotFound { table: T::TABLE.name, key });
    };
    let stored = T::TABLE.version_of(&row)?;
    match version.to_u64() {
        Some(expected) if expected == stored => decode_row(row),
        // A negative expected version matches nothing; report it as the stored record's conflict.
        expected => Err(conflict::<T>(key, expected.unwrap_or(0), Some(row))?),
    }
}

/// See [`Store::put`](crate::Store::put). Takes the executor, whose check it makes, so that the
/// store's, the transaction's and the generated `put` are this one future: on a backend that keeps
/// values, a put is done in its first poll, with no future inside it.
pub async fn put<E: Executor + ?Sized, T: Entity>(on: &E, t: &mut T) -> Result<()> {
    let access = on.writer("put")?;
    if !observe::listening() {
        // Run here, not in `put_checked`'s future: measured, a future of its own costs about 25
        // instructions more per put on the memory backend (of about 440).
        return if put_value(access, t)? { Ok(()) } else { put_row(access, t).await };
    }
    observing!(
        Operation::start("put", T::TABLE, || key_value::<T>(t.key()).ok()),
        Kind::Write,
        |_| APPLIED,
        put_checked(access, t)
    )
}

/// A checked put of `t`: as a value when the backend takes it ([`put_value`]), else as a row.
async fn put_checked<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    if put_value(access, t)? { Ok(()) } else { put_row(access, t).await }
}

async fn put_row<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    let table = T::TABLE;
    beyond_storable::<T, A>(access, t).await?;
    let stamps = stamps(table, false)?;
    let (row, expected) = next_row(t, &stamps)?;
    match access.update(table, row, expected).await? {
        WriteOutcome::Applied => settle_put(t, &stamps),
        WriteOutcome::Rejected { current } => Err(conflict::<T>(key_value::<T>(t.key())?, expected, current)?),
    }
}

/// [`put`] offered to the backend to store as a value, without an await, when it keeps values and
/// the record has no timestamps to stamp. `Ok(true)`: written, and `t` is at its new version;
/// `Ok(false)`: not taken, nothing was written, and [`put_row`] writes `t`.
#[inline]
fn put_value<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<bool> {
    if const { T::TABLE.has_timestamps() || !T::ROW_ALWAYS_ENCODES } || !access.keeps_values() {
        return Ok(false);
    }
    let table = T::TABLE;
    let expected = version_u64(t)?;
    if expected > table.version_max {
        // No stored record has it: the row path reports the conflict.
        return Ok(false);
    }
    if expected == table.version_max {
        return Err(Error::VersionOverflow { table: table.name, key: key_value::<T>(t.key())?, version: expected });
    }
    let next = to_field::<T>(expected + 1)?;
    let key = key_value::<T>(t.key())?;
    match access.update_value(table, &key, t, next, expected)? {
        None => Ok(false),
        Some(WriteOutcome::Applied) => {
            t.set_version(next);
            Ok(true)
        }
        Some(WriteOutcome::Rejected { current }) => Err(conflict::<T>(key, expected, current)?),
    }
}

/// A copy whose version is above the largest one the storage holds (a `u64` field past
/// `i64::MAX`) cannot match the stored record: a conflict, reported with the stored record (read
/// to describe it, as after any refused write), never a version overflow of a record that is
/// far from its maximum.
async fn beyond_storable<T: Entity, A: RowAccess>(access: &A, t: &T) -> Result<()> {
    let expected = version_u64(t)?;
    if expected <= T::TABLE.version_max {
        return Ok(());
    }
    let key = key_value::<T>(t.key())?;
    let current = access.fetch_current(T::TABLE, &key).await?;
    Err(conflict::<T>(key, expected, current)?)
}

/// See [`Store::save`](crate::Store::save).
///
/// A copy at version 0 is new and is inserted; any other copy is a checked [`put`]. Either way the
/// check is the write's own: an insert that finds the key taken is the conflict (the stored record
/// is read only to describe it).
pub async fn save<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    observed!(
        Operation::start("save", T::TABLE, || key_value::<T>(t.key()).ok()),
        Kind::Write,
        |_| APPLIED,
        save_inner::<T, _>(access, t)
    )
}

async fn save_inner<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    if version_u64(t)? != 0 {
        return put_checked(access, t).await;
    }
    match insert_inner::<T, _>(access, t).await {
        Err(Error::AlreadyExists { key, .. }) => {
            let current = access.fetch_current(T::TABLE, &key).await?;
            Err(conflict::<T>(key, 0, current)?)
        }
        done => done,
    }
}

/// See [`Store::refresh`](crate::Store::refresh).
pub async fn refresh<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    observed!(
        Operation::start("refresh", T::TABLE, || key_value::<T>(t.key()).ok()),
        Kind::Read,
        |_| FOUND,
        refresh_inner::<T, _>(access, t)
    )
}

async fn refresh_inner<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    let key = key_value::<T>(t.key())?;
    match access.fetch(T::TABLE, &key).await? {
        Some(row) => {
            *t = decode_row(row)?;
            Ok(())
        }
        None => Err(Error::NotFound { table: T::TABLE.name, key }),
    }
}

/// See [`Store::put_unchecked`](crate::Store::put_unchecked).
pub async fn put_unchecked<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    observed!(
        Operation::start("put_unchecked", T::TABLE, || key_value::<T>(t.key()).ok()),
        Kind::Write,
        |_| APPLIED,
        put_unchecked_inner::<T, _>(access, t)
    )
}

async fn put_unchecked_inner<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    let table = T::TABLE;
    let mut row = t.to_row()?;
    // The creation time is used only if the record is new: an update keeps the stored one.
    let stamps = stamps(table, true)?;
    stamp_row(&mut row, &stamps);
    match access.upsert(table, row).await? {
        Some(version) => {
            t.set_version(to_field::<T>(version)?);
            let created = table.column_with(ColumnRole::CreatedAt).filter(|_| version > 1);
            stamp_entity(t, stamps.into_iter().filter(|(i, _)| Some(*i) != created).collect())
        }
        // Refused: the stored version is at its maximum, or is not a version at all (`Decode`).
        None => {
            let key = key_value::<T>(t.key())?;
            Err(match access.fetch_current(table, &key).await? {
                Some(stored) => rejected::<T>(Some(stored), key, None)?,
                None => Error::VersionOverflow { table: table.name, key, version: table.version_max },
            })
        }
    }
}

/// See [`Store::delete`](crate::Store::delete).
pub async fn delete<T: Entity, A: RowAccess>(access: &A, t: &T) -> Result<()> {
    observed!(
        Operation::start("delete", T::TABLE, || key_value::<T>(t.key()).ok()),
        Kind::Write,
        |_| APPLIED,
        delete_inner::<T, _>(access, t)
    )
}

async fn delete_inner<T: Entity, A: RowAccess>(access: &A, t: &T) -> Result<()> {
    delete_with_version_inner::<T, A>(access, t.key(), t.version()).await
}

/// See [`Store::delete_with_version`](crate::Store::delete_with_version): [`delete`] of the
/// record with this key, expecting this version, with no copy of it at hand.
pub async fn delete_with_version<T: Entity, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
    version: T::Version,
) -> Result<()> {
    observed!(
        Operation::start("delete_with_version", T::TABLE, || key_value::<T>(key).ok()),
        Kind::Write,
        |_| APPLIED,
        delete_with_version_inner::<T, _>(access, key, version)
    )
}

async fn delete_with_version_inner<T: Entity, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
    version: T::Version,
) -> Result<()> {
    let expected = expected_version::<T>(version)?;
    let key = key_value::<T>(key)?;
    if expected > T::TABLE.version_max {
        // No stored record has it (and a backend cannot even be asked for it).
        let current = access.fetch_current(T::TABLE, &key).await?;
        return Err(conflict::<T>(key, expected, current)?);
    }
    match access.delete(T::TABLE, &key, Some(expected)).await? {
        WriteOutcome::Applied => Ok(()),
        WriteOutcome::Rejected { current } => Err(conflict::<T>(key, expected, current)?),
    }
}

/// See [`Store::delete_unchecked`](crate::Store::delete_unchecked).
pub async fn delete_unchecked<T: Entity, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
) -> Result<bool> {
    observed!(
        Operation::start("delete_unchecked", T::TABLE, || key_value::<T>(key).ok()),
        Kind::Write,
        |deleted| if *deleted { APPLIED } else { NOT_FOUND },
        delete_unchecked_inner::<T, _>(access, key)
    )
}

async fn delete_unchecked_inner<T: Entity, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
) -> Result<bool> {
    let key = key_value::<T>(key)?;
    match access.delete(T::TABLE, &key, None).await? {
        WriteOutcome::Applied => Ok(true),
        WriteOutcome::Rejected { current: None } => Ok(false),
        // Refused although a row is there: its version is not a version (`Decode`).
        WriteOutcome::Rejected { current: Some(row) } => {
            let version = T::TABLE.version_of(&row)?;
            Err(conflict::<T>(key, version, Some(row))?)
        }
    }
}

/// See [`Store::touch`](crate::Store::touch).
pub async fn touch<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    observed!(
        Operation::start("touch", T::TABLE, || key_value::<T>(t.key()).ok()),
        Kind::Write,
        |_| APPLIED,
        touch_inner::<T, _>(access, t)
    )
}

async fn touch_inner<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    let table = T::TABLE;
    beyond_storable::<T, A>(access, t).await?;
    let expected = version_u64(t)?;
    let key = key_value::<T>(t.key())?;
    if expected >= table.version_max {
        return Err(Error::VersionOverflow { table: table.name, key, version: expected });
    }
    let next = to_field::<T>(expected + 1)?;
    match access.patch(table, &key, &[], expected).await? {
        WriteOutcome::Applied => {
            t.set_version(next);
            Ok(())
        }
        WriteOutcome::Rejected { current } => Err(conflict::<T>(key, expected, current)?),
    }
}

/// See [`Transaction::get_for_update`](crate::Transaction::get_for_update).
pub async fn get_for_update<T: Entity, X: LockingRead>(
    tx: &X,
    key: &(impl KeyFor<T::Key> + ?Sized),
    wait: LockWait,
) -> Result<Option<T>> {
    observed!(
        Operation::start("get_for_update", T::TABLE, || key_value::<T>(key).ok()),
        Kind::Read,
        found,
        get_for_update_inner::<T, _>(tx, key, wait)
    )
}

async fn get_for_update_inner<T: Entity, X: LockingRead>(
    tx: &X,
    key: &(impl KeyFor<T::Key> + ?Sized),
    wait: LockWait,
) -> Result<Option<T>> {
    let key = key_value::<T>(key)?;
    tx.fetch_for_update(T::TABLE, &key, wait).await?.map(decode_row).transpose()
}
