//! [`patch`]: a change of some columns of one record, built and checked against the stored row
//! before it is written.

use super::{APPLIED, expected_version, key_value, rejected, stamps};
use crate::entity::{ColumnRole, Entity, TableDef, decode_json, encode_json};
use crate::error::{Error, Result};
use crate::observe::{Kind, Operation, observed};
use crate::patch::{Change, ChangeValue, Check, Patch, merge_json};
use crate::retry::RetryPolicy;
use crate::storage::{RowAccess, WriteOutcome};
use crate::value::{KeyFor, Row, Value};

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
        Operation::start("patch", T::TABLE, || key_value::<T>(key).ok()),
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
        let Some(stored) = access.fetch_current(table, &key).await? else {
            return Err(rejected::<T>(None, key, expected)?);
        };
        let version = table.version_of(&stored)?;
        if expected.is_some_and(|e| e != version) || version >= table.version_max {
            return Err(rejected::<T>(Some(stored), key, expected)?);
        }
        let mut columns = stamps(table, false)?;
        for change in &changes {
            columns.push((change.column, changed_value(table, &stored, change)?));
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

/// What `change` makes of its column of `row`: the value it sets, or the row's JSON document with
/// the change's document merged into it.
fn changed_value(table: &'static TableDef, row: &Row, change: &Change) -> Result<Value> {
    Ok(match &change.value {
        ChangeValue::Set(value) => value.clone(),
        ChangeValue::Merge(doc) => {
            let stored_doc = row.get(change.column).cloned().unwrap_or(Value::Null);
            let mut document: serde_json::Value = decode_json(table, change.column, stored_doc)?;
            merge_json(&mut document, doc.clone());
            encode_json(table, change.column, &document)?
        }
    })
}

/// `record` with `patch` applied in this process, as [`patch`] would apply it to the stored row
/// (JSON documents merged), version and timestamps unchanged: the edit a patch makes of a copy.
pub fn patched<T: Entity>(record: &T, patch: T::Patch) -> Result<T> {
    let table = T::TABLE;
    let changes = patch.into_changes()?;
    check_changes(table, &changes)?;
    let mut row = record.to_row()?;
    for change in &changes {
        let value = changed_value(table, &row, change)?;
        row.set(change.column, value);
    }
    T::from_row(row)
}

/// Refuses, before anything is read or written, a patch (a hand-written [`Patch`](crate::Patch)
/// can say anything) that names a column the table does not have, names one twice, or changes
/// what a patch never changes: the key, the version, the timestamps the store sets.
pub(super) fn check_changes(table: &'static TableDef, changes: &[Change]) -> Result<()> {
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
