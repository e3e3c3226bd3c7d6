//! The typed operations, written once over any [`RowAccess`](crate::storage::RowAccess): a store
//! or a transaction.
//!
//! Each function turns the entity into a row, asks the backend for one conditional step, and
//! turns the outcome into the typed result. The caller's struct is changed only on success.
//!
//! By what they operate on: one record (`record.rs`), a patch of one record (`patch.rs`), a batch
//! of records, prepared, written and settled (`batch.rs`), and the attempts of
//! [`Store::update`](crate::Store::update) (`read_modify_write.rs`). This file holds what they
//! share: keys and versions as the store counts them, rows as a write stores them, and the errors
//! a refused write reports.

use crate::entity::{ColumnRole, Entity, TableDef};
use crate::error::{Error, Result};
use crate::value::{Field, KeyFor, Row, Value, VersionField};

mod batch;
mod by_filter;
mod history;
mod many;
mod patch;
mod read_modify_write;
mod record;

pub use batch::{
    prepare_deletes, prepare_inserts, prepare_puts, refuse_unstorable_versions, settle_inserts, settle_puts,
    write_deletes, write_inserts, write_puts,
};
pub use by_filter::{delete_where, patch_where, prepare_patch_where};
pub use history::{history, revision};
pub use many::get_many;
pub use patch::{patch, patched};
pub use read_modify_write::lock_modify_write;
pub(crate) use read_modify_write::read_modify_write;
pub use record::{
    delete, delete_unchecked, delete_with_version, get, get_for_update, get_with_version, insert, put, put_unchecked,
    refresh, save, touch,
};

/// The store-managed timestamps of a write, by column index.
pub type Stamps = Vec<(usize, Value)>;

/// The outcome of a write that was applied, for [`Operation::finish`](crate::observe::Operation::finish): one
/// record.
const APPLIED: (&str, u64) = ("applied", 1);
/// The outcome of a read that found its record.
const FOUND: (&str, u64) = ("found", 0);
/// The outcome of an operation that found no record.
const NOT_FOUND: (&str, u64) = ("not found", 0);

/// The outcome of a read that may find nothing.
fn found<T>(t: &Option<T>) -> (&'static str, u64) {
    if t.is_some() { FOUND } else { NOT_FOUND }
}

pub(crate) fn key_value<T: Entity>(key: &(impl KeyFor<T::Key> + ?Sized)) -> Result<Value> {
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
fn stamps(table: &TableDef, creating: bool) -> Result<Stamps> {
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

/// A stored row as `T`, its version checked first: a `NULL`, non-integer or negative stored version
/// is `Error::Decode` naming the version column, whatever the field's type.
pub(crate) fn decode_row<T: Entity>(row: Row) -> Result<T> {
    T::TABLE.version_of(&row)?;
    T::from_row(row)
}

fn conflict<T: Entity>(key: Value, expected: u64, current: Option<Row>) -> Result<Error> {
    let actual = current.as_ref().map(|row| T::TABLE.version_of(row)).transpose()?;
    Ok(Error::ConcurrentModification { table: T::TABLE.name, key, expected, actual, current })
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
