//! Writes of every record a filter matches, in one statement: each record's version moves on, so
//! every copy read before conflicts afterwards.

use super::patch::check_changes;
use super::stamps;
use crate::entity::{Entity, TableDef};
use crate::error::{Error, Result};
use crate::observe::{Kind, Operation, observed};
use crate::patch::{ChangeValue, Patch};
use crate::query::Filter;
use crate::query::find::check_size;
use crate::storage::RowAccess;
use crate::value::Value;

/// The columns a `patch_where` sets: the patch's values and the `updated_at` stamp, sorted.
/// Prepared before the transaction, so that a bad patch fails before anything begins.
pub fn prepare_patch_where<T: Entity>(patch: T::Patch) -> Result<Vec<(usize, Value)>> {
    let table = T::TABLE;
    let changes = patch.into_changes()?;
    check_changes(table, &changes)?;
    let mut columns = stamps(table, false)?;
    for change in changes {
        match change.value {
            ChangeValue::Set(value) => columns.push((change.column, value)),
            ChangeValue::Merge(_) => return Err(merge_refused(table, change.column)),
        }
    }
    columns.sort_by_key(|(i, _)| *i);
    Ok(columns)
}

fn merge_refused(table: &'static TableDef, column: usize) -> Error {
    Error::encode(
        table,
        column,
        "patch_where sets values; a JSON merge needs each record's own document: patch the records one by one",
    )
}

/// See [`Store::patch_where`](crate::Store::patch_where): on `access`, in its transaction.
pub async fn patch_where<T: Entity, A: RowAccess>(
    access: &A,
    filter: Filter<T>,
    columns: &[(usize, Value)],
) -> Result<u64> {
    observed!(Operation::start("patch_where", T::TABLE, || None), Kind::Write, |n: &u64| ("applied", *n), async {
        let condition = filter.into_condition()?;
        check_size(T::TABLE, &condition)?;
        access.update_where(T::TABLE, &condition, columns).await
    })
}

/// See [`Store::delete_where`](crate::Store::delete_where): on `access`, in its transaction.
pub async fn delete_where<T: Entity, A: RowAccess>(access: &A, filter: Filter<T>) -> Result<u64> {
    observed!(Operation::start("delete_where", T::TABLE, || None), Kind::Write, |n: &u64| ("applied", *n), async {
        let condition = filter.into_condition()?;
        check_size(T::TABLE, &condition)?;
        access.delete_where(T::TABLE, &condition).await
    })
}
