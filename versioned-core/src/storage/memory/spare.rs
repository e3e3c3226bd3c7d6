//! The record a checked put stores as a value, made from the last one this thread's puts replaced
//! (or did not store), so that a steady run of puts of one type copies into memory it already has
//! ([`Entity::copy_into`]: a string's buffer is reused) instead of allocating a record and freeing
//! another. One record is kept per thread, the last one; it is dropped when the next one is kept,
//! or with the thread.

use std::cell::Cell;

use super::tables::StoredValue;
use crate::entity::Entity;

thread_local! {
    static SPARE: Cell<Option<Box<dyn StoredValue>>> = const { Cell::new(None) };
}

/// A copy of `record` at version `next`, or `None` when its type cannot be copied.
#[inline]
pub(super) fn copy_of<T: Entity>(record: &T, next: T::Version) -> Option<Box<dyn StoredValue>> {
    if let Some(mut spare) = SPARE.try_with(Cell::take).ok().flatten()
        && let Some(dst) = spare.as_any_mut().downcast_mut::<T>()
        && record.copy_into(dst)
    {
        dst.set_version(next);
        return Some(spare);
    }
    // No spare, one of another type, or a field that is not `Clone`: made anew.
    let mut copy = record.copy()?;
    copy.set_version(next);
    Some(Box::new(copy))
}

/// Keeps `record` for the next [`copy_of`] on this thread.
#[inline]
pub(super) fn keep(record: Box<dyn StoredValue>) {
    // While the thread's locals are being destroyed, it is simply dropped.
    let _ = SPARE.try_with(|spare| spare.set(Some(record)));
}
