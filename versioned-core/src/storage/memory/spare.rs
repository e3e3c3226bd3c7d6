//! The record a checked put stores as a value, made from the last one this thread's puts replaced
//! (or did not store), so that a steady run of puts of one type copies into memory it already has
//! ([`Entity::copy_into`]: a string's buffer is reused) instead of allocating a record and freeing
//! another.
//!
//! One record is kept per thread (tokio's blocking threads included), the last one, whatever its
//! store: it is dropped when the next one is kept, or with the thread. Its buffers keep the
//! largest size they held (`clone_from` does not shrink them). The first copy on a thread is the
//! type's `Clone`; the next ones are field by field, each field's `clone_from`.

use std::cell::Cell;

use super::tables::StoredValue;
use crate::entity::Entity;

/// A record kept as a value.
type Record = Box<dyn StoredValue>;

thread_local! {
    static SPARE: Cell<Option<Record>> = const { Cell::new(None) };
}

/// Where the copy of a record comes from, chosen before its shard is locked.
pub(super) enum Source<T> {
    /// The thread's spare, a record of the same type: copied into under the lock.
    Spare(Box<T>),
    /// A copy made already: there was no spare of this type.
    Made(Box<T>),
}

/// The source of a copy of `record`: the thread's spare if it is of `record`'s type, else a copy
/// made now; `None` when the type cannot be copied (then no lock is taken for it). Nothing here
/// runs under a lock: a spare of another type is dropped here, the type's `Clone` runs here.
#[inline]
pub(super) fn source<T: Entity>(record: &T) -> Option<Source<T>> {
    if let Some(spare) = SPARE.try_with(Cell::take).ok().flatten()
        && let Ok(spare) = spare.into_any().downcast::<T>()
    {
        return Some(Source::Spare(spare));
    }
    record.copy().map(|copy| Source::Made(Box::new(copy)))
}

/// The copy of `record` at version `next`, from `source`, and the spare when it could not be
/// used (to drop once the lock is released). `None`: the type cannot be copied.
///
/// Called under the shard's lock, so that the copy's stores drain with the unlock instead of
/// stalling the lock (measured: 4% of a put). The copy is private until stored: one that panics
/// leaves the stored record as it was.
#[inline]
pub(super) fn copy<T: Entity>(source: Source<T>, record: &T, next: T::Version) -> (Option<Box<T>>, Option<Box<T>>) {
    let (copy, unused) = match source {
        Source::Made(copy) => (Some(copy), None),
        Source::Spare(mut spare) => {
            if record.copy_into(&mut spare) {
                (Some(spare), None)
            } else {
                // A field that is not `Clone` (the struct is, by hand): copied whole.
                (record.copy().map(Box::new), Some(spare))
            }
        }
    };
    (
        copy.map(|mut copy| {
            copy.set_version(next);
            copy
        }),
        unused,
    )
}

/// Keeps `record` for the next [`copy`] on this thread.
#[inline]
pub(super) fn keep(record: Record) {
    // While the thread's locals are being destroyed, it is simply dropped.
    let _ = SPARE.try_with(|spare| spare.set(Some(record)));
}
