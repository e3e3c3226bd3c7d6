//! The typed operations, written once over any [`RowAccess`]: a store or a transaction.
//!
//! Each function turns the entity into a row, asks the backend for one conditional step, and
//! turns the outcome into the typed result. The caller's struct is changed only on success.

use crate::entity::{ColumnRole, Entity, TableDef, decode_json, encode_json};
use crate::error::{Error, Result};
use crate::lock::LockWait;
use crate::observe::{Kind, Op, observed};
use crate::patch::{Change, ChangeValue, Check, Patch, merge_json};
use crate::retry::RetryPolicy;
use crate::storage::{RowAccess, StorageTransaction, WriteOutcome};
use crate::store::Executor;
use crate::value::{Field, KeyFor, Row, Value, VersionField};

/// The outcome of a write that was applied, for [`Op::run`]: one record.
const APPLIED: (&str, u64) = ("applied", 1);
/// The outcome of a read that found its record.
const FOUND: (&str, u64) = ("found", 0);
/// The outcome of an operation that found no record.
const NOT_FOUND: (&str, u64) = ("not found", 0);

/// The outcome of a read that may find nothing.
fn found<T>(t: &Option<T>) -> (&'static str, u64) {
    if t.is_some() { FOUND } else { NOT_FOUND }
}

fn key_value<T: Entity>(key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<Value> {
    key.key_value().map_err(|reason| Error::encode(T::TABLE, T::TABLE.key, reason))
}

/// A version the caller holds, as the store counts it.
fn expected_version<T: Entity>(version: T::Version) -> Result<u64> {
    version.to_u64().ok_or_else(|| Error::encode(T::TABLE, T::TABLE.version, "a version cannot be negative"))
}

fn version_u64<T: Entity>(t: &T) -> Result<u64> {
    expected_version::<T>(t.version())
}

/// The version `v` as the entity's field type. Callers only pass versions that came from the
/// store or were checked against `version_max`, which is the field type's maximum.
fn to_field<T: Entity>(v: u64) -> Result<T::Version> {
    T::Version::from_u64(v).ok_or_else(|| {
        Error::decode(T::TABLE, T::TABLE.version_column().name, format!("version {v} does not fit the field"))
    })
}

/// The store-managed timestamps of a write: "now" for `UpdatedAt`, and for `CreatedAt` when the
/// write creates the record. Empty for a table without them, so no clock is read.
fn stamps(table: &TableDef, creating: bool) -> Result<Vec<(usize, Value)>> {
    let updated = table.column_with(ColumnRole::UpdatedAt);
    let created = table.column_with(ColumnRole::CreatedAt).filter(|_| creating);
    if updated.is_none() && created.is_none() {
        return Ok(Vec::new());
    }
    let now = std::time::SystemTime::now()
        .to_value()
        .map_err(|reason| Error::encode(table, updated.or(created).unwrap_or(0), reason))?;
    Ok(updated.into_iter().chain(created).map(|i| (i, now.clone())).collect())
}

fn stamp_row(row: &mut Row, stamps: &[(usize, Value)]) {
    for (index, value) in stamps {
        row.set(*index, value.clone());
    }
}

/// Copies the stamps into `t` after a successful write. Decoding a timestamp the store just made
/// from the clock cannot fail for a timestamp field.
fn stamp_entity<T: Entity>(t: &mut T, stamps: Vec<(usize, Value)>) -> Result<()> {
    for (index, value) in stamps {
        t.set_column(index, value)?;
    }
    Ok(())
}

/// A stored row as `T`, its version checked first: a `NULL`, non-integer or negative stored version
/// is `Error::Decode` naming the version column, whatever the field's type.
fn decode_row<T: Entity>(row: Row) -> Result<T> {
    T::TABLE.version_of(&row)?;
    T::from_row(row)
}

fn conflict<T: Entity>(key: Value, expected: u64, current: Option<Row>) -> Result<Error> {
    let actual = current.as_ref().map(|row| T::TABLE.version_of(row)).transpose()?;
    Ok(Error::ConcurrentModification { table: T::TABLE.name, key, expected, actual, current })
}

/// See [`Store::insert`](crate::Store::insert).
pub async fn insert<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    observed!(
        Op::start("insert", T::TABLE, || key_value::<T>(t.key()).ok()),
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
    observed!(
        Op::start("get", T::TABLE, || key_value::<T>(key).ok()),
        Kind::Read,
        found,
        get_inner::<T, _>(access, key)
    )
}

async fn get_inner<T: Entity, A: RowAccess>(access: &A, key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<Option<T>> {
    let key = key_value::<T>(key)?;
    access.fetch(T::TABLE, &key).await?.map(decode_row).transpose()
}

/// See [`Store::get_with_version`](crate::Store::get_with_version).
pub async fn get_with_version<T: Entity, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
    version: T::Version,
) -> Result<T> {
    observed!(
        Op::start("get_with_version", T::TABLE, || key_value::<T>(key).ok()),
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
    observed!(Op::start("put", T::TABLE, || key_value::<T>(t.key()).ok()), Kind::Write, |_| APPLIED, async {
        if put_value(access, t)? {
            return Ok(());
        }
        put_row(access, t).await
    })
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
    let current = access.fetch(T::TABLE, &key).await?;
    Err(conflict::<T>(key, expected, current)?)
}

/// The copies of a batch whose version no storage holds (a `u64` past `i64::MAX`): refused, as
/// conflicts with their stored records in [`Error::Conflicts`], before anything of the batch is
/// written. No I/O when there are none, the usual case.
pub async fn refuse_unstorable_versions<T: Entity, A: RowAccess>(access: &A, ts: &[T]) -> Result<()> {
    let mut conflicts = Vec::new();
    for t in ts {
        let expected = version_u64(t)?;
        if expected > T::TABLE.version_max {
            let key = key_value::<T>(t.key())?;
            let current = access.fetch(T::TABLE, &key).await?;
            conflicts.push(conflict::<T>(key, expected, current)?);
        }
    }
    if conflicts.is_empty() { Ok(()) } else { Err(Error::Conflicts { table: T::TABLE.name, conflicts }) }
}

/// `t` as a checked write stores it: at the next version, stamped; with the version it expects.
/// Refused at the version's maximum.
fn next_row<T: Entity>(t: &T, stamps: &[(usize, Value)]) -> Result<(Row, u64)> {
    let table = T::TABLE;
    let expected = version_u64(t)?;
    if expected >= table.version_max {
        return Err(Error::VersionOverflow { table: table.name, key: key_value::<T>(t.key())?, version: expected });
    }
    let mut row = t.to_row()?;
    // `expected` < version_max <= i64::MAX, so the increment and the cast are exact.
    row.set(table.version, Value::Int(expected as i64 + 1));
    stamp_row(&mut row, stamps);
    Ok((row, expected))
}

/// `t` once its [`next_row`] is stored: at the next version, with the stamps.
fn settle_put<T: Entity>(t: &mut T, stamps: &[(usize, Value)]) -> Result<()> {
    t.set_version(to_field::<T>(version_u64(t)? + 1)?);
    stamp_entity(t, stamps.to_vec())
}

/// `t` as a new record's row: at version 1, stamped.
fn first_row<T: Entity>(t: &T, stamps: &[(usize, Value)]) -> Result<Row> {
    let mut row = t.to_row()?;
    row.set(T::TABLE.version, Value::Int(1));
    stamp_row(&mut row, stamps);
    Ok(row)
}

/// `t` once its [`first_row`] is stored: at version 1, with the stamps.
fn settle_insert<T: Entity>(t: &mut T, stamps: &[(usize, Value)]) -> Result<()> {
    t.set_version(to_field::<T>(1)?);
    stamp_entity(t, stamps.to_vec())
}

/// See [`Store::save`](crate::Store::save).
///
/// A copy at version 0 is new and is inserted; any other copy is a checked [`put`]. Either way the
/// check is the write's own: an insert that finds the key taken is the conflict (the stored record
/// is read only to describe it).
pub async fn save<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    observed!(
        Op::start("save", T::TABLE, || key_value::<T>(t.key()).ok()),
        Kind::Write,
        |_| APPLIED,
        save_inner::<T, _>(access, t)
    )
}

async fn save_inner<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    if version_u64(t)? != 0 {
        return if put_value(access, t)? { Ok(()) } else { put_row(access, t).await };
    }
    match insert_inner::<T, _>(access, t).await {
        Err(Error::AlreadyExists { key, .. }) => {
            let current = access.fetch(T::TABLE, &key).await?;
            Err(conflict::<T>(key, 0, current)?)
        }
        done => done,
    }
}

/// See [`Store::refresh`](crate::Store::refresh).
pub async fn refresh<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    observed!(
        Op::start("refresh", T::TABLE, || key_value::<T>(t.key()).ok()),
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
        Op::start("put_unchecked", T::TABLE, || key_value::<T>(t.key()).ok()),
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
            Err(match access.fetch(table, &key).await? {
                Some(stored) => rejected::<T>(Some(stored), key, None)?,
                None => Error::VersionOverflow { table: table.name, key, version: table.version_max },
            })
        }
    }
}

/// See [`Store::delete`](crate::Store::delete).
pub async fn delete<T: Entity, A: RowAccess>(access: &A, t: &T) -> Result<()> {
    observed!(
        Op::start("delete", T::TABLE, || key_value::<T>(t.key()).ok()),
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
        Op::start("delete_with_version", T::TABLE, || key_value::<T>(key).ok()),
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
        let current = access.fetch(T::TABLE, &key).await?;
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
        Op::start("delete_unchecked", T::TABLE, || key_value::<T>(key).ok()),
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

/// See [`Store::patch`](crate::Store::patch).
///
/// Every patch reads the stored row, builds the row the write will make (merging JSON documents),
/// and decodes it as `T` *before* writing: a patch that would store something `T` cannot read back
/// (a merged document of the wrong shape, a stored column that no longer decodes) is refused and
/// writes nothing. The write itself is checked against the version read, in its own statement;
/// without a check of the caller's own, losing that race just means patching the newer record.
pub async fn patch<T: Entity, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
    patch: T::Patch,
    check: Check<T::Version>,
) -> Result<T> {
    observed!(
        Op::start("patch", T::TABLE, || key_value::<T>(key).ok()),
        Kind::Write,
        |_| APPLIED,
        patch_inner::<T, _>(access, key, patch, check)
    )
}

async fn patch_inner<T: Entity, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
    patch: T::Patch,
    check: Check<T::Version>,
) -> Result<T> {
    let table = T::TABLE;
    let key = key_value::<T>(key)?;
    let expected = match check {
        Check::Version(v) => Some(expected_version::<T>(v)?),
        Check::Unchecked => None,
    };
    let changes = patch.into_changes()?;
    check_changes(table, &changes)?;
    let mut attempts = RetryPolicy::attempts(100).start("patch");
    loop {
        let Some(stored) = access.fetch(table, &key).await? else {
            return Err(rejected::<T>(None, key, expected)?);
        };
        let version = table.version_of(&stored)?;
        if expected.is_some_and(|e| e != version) || version >= table.version_max {
            return Err(rejected::<T>(Some(stored), key, expected)?);
        }
        let mut columns = stamps(table, false)?;
        for change in &changes {
            let value = match &change.value {
                ChangeValue::Set(value) => value.clone(),
                ChangeValue::Merge(doc) => {
                    let stored_doc = stored.get(change.column).cloned().unwrap_or(Value::Null);
                    let mut document: serde_json::Value = decode_json(table, change.column, stored_doc)?;
                    merge_json(&mut document, doc.clone());
                    encode_json(table, change.column, &document)?
                }
            };
            columns.push((change.column, value));
        }
        columns.sort_by_key(|(i, _)| *i); // one cached statement per column set

        let mut row = stored;
        for (index, value) in &columns {
            row.set(*index, value.clone());
        }
        // `version` < version_max <= i64::MAX, so the increment and the cast are exact.
        row.set(table.version, Value::Int(version as i64 + 1));
        let patched = T::from_row(row)?;

        match access.patch(table, &key, &columns, version).await? {
            WriteOutcome::Applied => return Ok(patched),
            WriteOutcome::Rejected { current: Some(current) } if expected.is_none() => {
                attempts.failed(rejected::<T>(Some(current), key.clone(), Some(version))?).await?;
            }
            WriteOutcome::Rejected { current } => return Err(rejected::<T>(current, key, expected)?),
        }
    }
}

/// Refuses, before anything is read or written, a patch (a hand-written [`Patch`](crate::Patch)
/// can say anything) that names a column the table does not have, names one twice, or changes
/// what a patch never changes: the key, the version, the timestamps the store sets.
fn check_changes(table: &'static TableDef, changes: &[Change]) -> Result<()> {
    let refuse = |column: &'static str, reason: String| Err(Error::Encode { table: table.name, column, reason });
    for (at, change) in changes.iter().enumerate() {
        let Some(column) = table.columns.get(change.column) else {
            return refuse(
                "?",
                format!(
                    "the patch names column #{} but {} has {} columns (a Patch out of step with its struct)",
                    change.column,
                    table.entity,
                    table.columns.len()
                ),
            );
        };
        let never = match column.role {
            ColumnRole::Key => Some("the key"),
            ColumnRole::Version => Some("the version (the store sets it)"),
            ColumnRole::CreatedAt | ColumnRole::UpdatedAt => Some("a timestamp the store sets"),
            _ => None,
        };
        if let Some(what) = never {
            return refuse(column.name, format!("a patch cannot change {what}"));
        }
        if changes[..at].iter().any(|earlier| earlier.column == change.column) {
            return refuse(column.name, "the patch changes this column twice".to_owned());
        }
    }
    Ok(())
}

/// Why a conditional write expecting `expected` (`None`: unchecked) was refused, given the stored
/// row: no record, a version at its maximum, or a conflict.
fn rejected<T: Entity>(current: Option<Row>, key: Value, expected: Option<u64>) -> Result<Error> {
    let table = T::TABLE;
    let Some(row) = current else {
        return match expected {
            None => Ok(Error::NotFound { table: table.name, key }),
            Some(expected) => conflict::<T>(key, expected, None),
        };
    };
    let version = table.version_of(&row)?;
    if version >= table.version_max && expected.is_none_or(|e| e == version) {
        Ok(Error::VersionOverflow { table: table.name, key, version })
    } else {
        conflict::<T>(key, expected.unwrap_or(version), Some(row))
    }
}

/// See [`Store::touch`](crate::Store::touch).
pub async fn touch<T: Entity, A: RowAccess>(access: &A, t: &mut T) -> Result<()> {
    observed!(
        Op::start("touch", T::TABLE, || key_value::<T>(t.key()).ok()),
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
pub async fn get_for_update<T: Entity, X: StorageTransaction>(
    tx: &X,
    key: &(impl KeyFor<T::Key> + ?Sized),
    wait: LockWait,
) -> Result<Option<T>> {
    observed!(
        Op::start("get_for_update", T::TABLE, || key_value::<T>(key).ok()),
        Kind::Read,
        found,
        get_for_update_inner::<T, _>(tx, key, wait)
    )
}

async fn get_for_update_inner<T: Entity, X: StorageTransaction>(
    tx: &X,
    key: &(impl KeyFor<T::Key> + ?Sized),
    wait: LockWait,
) -> Result<Option<T>> {
    let key = key_value::<T>(key)?;
    tx.fetch_for_update(T::TABLE, &key, wait).await?.map(decode_row).transpose()
}

/// One attempt of [`Store::update`](crate::Store::update), inside transaction `tx`: read the
/// record locked (waiting as `wait` says), apply `f`, checked write.
pub async fn read_modify_write<T: Entity, R, X: StorageTransaction>(
    tx: &X,
    key: &(impl KeyFor<T::Key> + ?Sized),
    wait: LockWait,
    f: &mut impl FnMut(&mut T) -> R,
) -> Result<R> {
    let read = get_for_update::<T, X>(tx, key, wait).await?;
    modify_and_put(tx, key, read, f).await
}

/// One attempt of an optimistic [`Store::update`](crate::Store::update), without a transaction:
/// read the record, apply `f`, and write it with a checked [`put`], which refuses it if anyone
/// wrote it since the read.
pub async fn modify_write<T: Entity, R, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
    f: &mut impl FnMut(&mut T) -> R,
) -> Result<R> {
    let read = get::<T, A>(access, key).await?;
    modify_and_put(access, key, read, f).await
}

/// The rest of an `update` attempt once the record is `read`: `f` applied, then a checked [`put`].
async fn modify_and_put<T: Entity, R, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
    read: Option<T>,
    f: &mut impl FnMut(&mut T) -> R,
) -> Result<R> {
    let mut t = read.ok_or_else(|| Error::not_found::<T>(key))?;
    let result = f(&mut t);
    put(&Checked(access), &mut t).await?;
    Ok(result)
}

/// Row operations already handed out by an executor's check, as an executor again (for [`put`]).
struct Checked<'a, A>(&'a A);

impl<A: RowAccess> Executor for Checked<'_, A> {
    type Access = A;

    fn reader(&self, _: &'static str) -> Result<&A> {
        Ok(self.0)
    }

    fn writer(&self, _: &'static str) -> Result<&A> {
        Ok(self.0)
    }
}

/// The store-managed timestamps of a write, by column index.
pub type Stamps = Vec<(usize, Value)>;

/// The rows of [`Store::put_all`](crate::Store::put_all): each copy as it will be stored (at the
/// next version, stamped), with the version it expects; and the stamps, for the copies once the
/// batch is written. Nothing of the copies changes here.
pub fn put_rows<T: Entity>(ts: &[T]) -> Result<(Vec<(Row, u64)>, Stamps)> {
    let stamps = stamps(T::TABLE, false)?;
    let rows = ts.iter().map(|t| next_row(t, &stamps)).collect::<Result<Vec<_>>>()?;
    refuse_duplicates::<T>(rows.iter().map(|(row, _)| row))?;
    Ok((rows, stamps))
}

/// Writes the rows of [`put_rows`] with checked updates; every refused record is reported, in
/// [`Error::Conflicts`]. The caller runs it in a transaction or savepoint that a refusal rolls back.
pub async fn update_rows<T: Entity, A: RowAccess>(access: &A, rows: Vec<(Row, u64)>) -> Result<()> {
    let records = rows.len() as u64;
    observed!(
        Op::start("put_all", T::TABLE, || None),
        Kind::Write,
        |_| ("applied", records),
        update_rows_inner::<T, A>(access, rows)
    )
}

async fn update_rows_inner<T: Entity, A: RowAccess>(access: &A, rows: Vec<(Row, u64)>) -> Result<()> {
    let keys = rows.iter().map(|(row, e)| Ok((T::TABLE.key_of(row)?.clone(), *e))).collect::<Result<Vec<_>>>()?;
    let outcomes = access.update_many(T::TABLE, rows).await?;
    all_applied::<T>(keys.into_iter().zip(outcomes))
}

/// The copies of a written [`put_rows`] batch: each at its next version, with the stamps.
pub fn settle_puts<T: Entity>(ts: &mut [T], stamps: &[(usize, Value)]) -> Result<()> {
    ts.iter_mut().try_for_each(|t| settle_put(t, stamps))
}

/// The rows of [`Store::insert_all`](crate::Store::insert_all), at version 1 and stamped; and the
/// stamps.
pub fn insert_rows<T: Entity>(ts: &[T]) -> Result<(Vec<Row>, Stamps)> {
    let stamps = stamps(T::TABLE, true)?;
    let rows = ts.iter().map(|t| first_row(t, &stamps)).collect::<Result<Vec<_>>>()?;
    refuse_duplicates::<T>(rows.iter())?;
    Ok((rows, stamps))
}

/// Inserts the rows of [`insert_rows`]; every key already taken is reported as
/// [`Error::AlreadyExists`] in [`Error::Conflicts`].
pub async fn insert_new_rows<T: Entity, A: RowAccess>(access: &A, rows: Vec<Row>) -> Result<()> {
    let records = rows.len() as u64;
    observed!(
        Op::start("insert_all", T::TABLE, || None),
        Kind::Write,
        |_| ("applied", records),
        insert_new_rows_inner::<T, A>(access, rows)
    )
}

async fn insert_new_rows_inner<T: Entity, A: RowAccess>(access: &A, rows: Vec<Row>) -> Result<()> {
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

/// The copies of a written [`insert_rows`] batch: at version 1, with the stamps.
pub fn settle_inserts<T: Entity>(ts: &mut [T], stamps: &[(usize, Value)]) -> Result<()> {
    ts.iter_mut().try_for_each(|t| settle_insert(t, stamps))
}

/// The keys and expected versions of [`Store::delete_all`](crate::Store::delete_all).
pub fn delete_keys<T: Entity>(ts: &[T]) -> Result<Vec<(Value, u64)>> {
    let keys = ts.iter().map(|t| Ok((key_value::<T>(t.key())?, version_u64(t)?))).collect::<Result<Vec<_>>>()?;
    refuse_duplicate_keys::<T>(keys.iter().map(|(key, _)| key))?;
    Ok(keys)
}

/// Deletes with a check each; every refused record is reported in [`Error::Conflicts`].
pub async fn delete_rows<T: Entity, A: RowAccess>(access: &A, keys: Vec<(Value, u64)>) -> Result<()> {
    let records = keys.len() as u64;
    observed!(
        Op::start("delete_all", T::TABLE, || None),
        Kind::Write,
        |_| ("applied", records),
        delete_rows_inner::<T, A>(access, keys)
    )
}

async fn delete_rows_inner<T: Entity, A: RowAccess>(access: &A, keys: Vec<(Value, u64)>) -> Result<()> {
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
