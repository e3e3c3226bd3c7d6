//! A copy carrying a version no storage can hold (a `u64` field past `i64::MAX`) is a conflict
//! with the stored record, as for any other version the record does not have.

use super::{Person, setup};
use crate::error::Error;
use crate::storage::Storage;
use crate::store::Store;

/// `put`, `save` and `touch` of a copy at version 2^63 (a `u64` version above what the store
/// holds) are `ConcurrentModification` with the stored record at version 1, never a
/// `VersionOverflow`; nothing is written.
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
    let stored = store.get::<Person>(&1).await.expect("get").expect("record");
    assert_eq!(stored, ann, "nothing was written");
}
