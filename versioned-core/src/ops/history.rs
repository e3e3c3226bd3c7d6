//! Reading a record's version history (`#[versioned(history)]`).

use super::{FOUND, found, key_value};
use crate::error::Result;
use crate::observe::{Kind, Operation, observed};
use crate::revisions::{Revision, WithHistory};
use crate::storage::Storage;
use crate::value::{KeyFor, VersionField};

/// See [`Store::history`](crate::Store::history).
pub async fn history<T: WithHistory, S: Storage>(
    storage: &S,
    key: &(impl KeyFor<T::Key> + ?Sized),
) -> Result<Vec<Revision<T>>> {
    observed!(Operation::start("history", T::TABLE, || key_value::<T>(key).ok()), Kind::Read, |_| FOUND, async {
        let key = key_value::<T>(key)?;
        storage.history(T::TABLE, &key, None).await?.into_iter().map(Revision::decode).collect()
    })
}

/// See [`Store::revision`](crate::Store::revision).
pub async fn revision<T: WithHistory, S: Storage>(
    storage: &S,
    key: &(impl KeyFor<T::Key> + ?Sized),
    version: T::Version,
) -> Result<Option<Revision<T>>> {
    observed!(Operation::start("revision", T::TABLE, || key_value::<T>(key).ok()), Kind::Read, found, async {
        let key = key_value::<T>(key)?;
        // A negative version has no entry.
        let Some(version) = version.to_u64() else { return Ok(None) };
        // The last of that version's entries (the record's latest life, where a deleted key was
        // inserted again), the record as written rather than its deletion, which holds it too.
        let mut entries = storage.history(T::TABLE, &key, Some(version)).await?;
        let last = entries.iter().rposition(|entry| !entry.deleted).or(entries.len().checked_sub(1));
        last.map(|at| Revision::decode(entries.swap_remove(at))).transpose()
    })
}
