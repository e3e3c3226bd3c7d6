//! A copy carrying a version no storage can hold (a `u64` field past `i64::MAX`) is a conflict
//! with the stored record, as for any other version the record does not have.

use super::{Person, setup};
use crate::error::Error;
use crate::storage::Storage;
use crate::store::Store;

/// `put`, `save`, `touch`, `delete` and `delete_with_version` of a copy at version 2^63 (a `u64`
/// version above what the store holds) are `ConcurrentModification` with the stored record at
/// version 1, never a `VersionOverflow` nor a write to a record stored at `i64::MAX`; in
/// `put_all` and `delete_all` they are the batch's `Conflicts`; nothing is written.
pub async fn a_version_above_what_storage_holds_is_a_conflict<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut ann = Person { id: 1, name: "Ann".into(), salary: 100, version: 0 };
    store.insert(&mut ann).await.expect("insert");
    let far = Person { version: i64::MAX as u64 + 1, salary: 1, ..ann.clone() };
    let conflict = |result: Result<(), Error>, op: &str| match result {
        Err(Error::ConcurrentModification { expected, actual: Some(1), current: Some(_), .. })
            if expected == i64::MAX as u64 + 1 => {}
        other => panic!("{op} of a copy at version 2^63: expected a conflict with version 1, got {other:?}"),
    };
    conflict(store.put(&mut far.clone()).await, "put");
    conflict(store.save(&mut far.clone()).await, "save");
    conflict(store.touch(&mut far.clone()).await, "touch");
    conflict(store.delete(&far).await, "delete");
    conflict(store.delete_with_version::<Person>(&1, far.version).await, "delete_with_version");
    let mut bob = Person { id: 2, name: "Bob".into(), salary: 1, version: 0 };
    store.insert(&mut bob).await.expect("insert");
    let batch = |result: Result<(), Error>, op: &str| match result {
        Err(Error::Conflicts { conflicts, .. }) => {
            assert_eq!(conflicts.len(), 1, "{op}: {conflicts:?}");
            conflict(Err(conflicts.into_iter().next().expect("one")), op);
        }
        other => panic!("{op} with a copy at version 2^63: expected Conflicts, got {other:?}"),
    };
    batch(store.put_all(&mut [bob.clone(), far.clone()]).await, "put_all");
    batch(store.delete_all(&[bob.clone(), far.clone()]).await, "delete_all");
    let stored = store.get::<Person>(&1).await.expect("get").expect("record");
    assert_eq!(stored, ann, "nothing was written");
    assert_eq!(store.get::<Person>(&2).await.expect("get"), Some(bob), "nothing of the batches was written");
}

/// A struct whose only field storage cannot always hold is a `u64` (no JSON, no timestamps: the
/// kind a memory store keeps as a value).
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate)]
pub struct Tally {
    /// Key.
    #[key]
    pub id: i64,
    /// A count; values above `i64::MAX` cannot be stored.
    pub count: u64,
    /// Version.
    #[version]
    pub version: u64,
}

/// A checked `put` or `save` of a value that cannot be stored (a `u64` above `i64::MAX`) is
/// `Error::Encode` naming the column, and writes nothing, on every backend: no backend keeps a
/// record it could not read back.
pub async fn a_put_of_a_value_storage_cannot_hold_writes_nothing<S: Storage>(store: &Store<S>) {
    store.create_table::<Tally>().await.expect("create");
    let mut tally = Tally { id: 1, count: 1, version: 0 };
    store.insert(&mut tally).await.expect("insert");
    let too_big = Tally { count: u64::MAX, ..tally.clone() };
    let refused = |result: Result<(), Error>, op: &str| match result {
        Err(Error::Encode { column: "count", .. }) => {}
        other => panic!("{op} of u64::MAX: expected Encode of count, got {other:?}"),
    };
    refused(store.put(&mut too_big.clone()).await, "put");
    refused(store.save(&mut too_big.clone()).await, "save");
    assert_eq!(store.get::<Tally>(&1).await.expect("readable"), Some(tally), "nothing was written");
}
