//! The record a checked put stores as a value, made from the last one this thread's puts replaced
//! (or did not store), so that a steady run of puts of one type copies into memory it already has
//! ([`Entity::copy_into`]: a string's buffer is reused) instead of allocating a record and freeing
//! another.
//!
//! One record is kept per thread (tokio's blocking threads included), the last one, whatever its
//! store: it is dropped when the next one is kept, or with the thread. Its buffers keep the
//! largest size they held (`clone_from` does not shrink them). The first copy on a thread is the
//! type's `Clone`; the next ones are field by field, each field's `clone_from`.

use std::any::Any;
use std::cell::Cell;

use super::tables::StoredValue;
use crate::entity::Entity;

/// A record kept as a value.
type Record = Box<dyn StoredValue>;

thread_local! {
    static SPARE: Cell<Option<Record>> = const { Cell::new(None) };
}

/// A record taken from the thread that a put did not use: dropped once the lock is released.
pub(super) type Unused = Box<dyn Any + Send>;

/// A copy of `record` at version `next` (`None` when the type cannot be copied), made into the
/// thread's spare when it is of `record`'s type, else made anew; and the spare, when it was not
/// used.
///
/// Called under the shard's lock, so that the copy's stores drain with the unlock instead of
/// stalling the lock (measured: 4% of a put). The copy is private until stored: one that panics
/// leaves the stored record as it was.
#[inline]
pub(super) fn copy<T: Entity>(record: &T, next: T::Version) -> (Option<Box<T>>, Option<Unused>) {
    let (copy, unused) = match SPARE.try_with(Cell::take).ok().flatten().map(|spare| spare.into_any().downcast::<T>()) {
        Some(Ok(mut spare)) => {
            if record.copy_into(&mut spare) {
                (Some(spare), None)
            } else {
                // A field that is not `Clone` (the struct is, by hand): copied whole.
                (record.copy().map(Box::new), Some(spare as Unused))
            }
        }
        // A spare of another type, or none: copied whole.
        other => (record.copy().map(Box::new), other.and_then(Result::err)),
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
