//! A checked delete by key and version ([`Store::delete_with_version`]), with no copy of the
//! record at hand: what an HTTP `DELETE` with `If-Match` asks for.

use super::{HighScore, Person, ann, assert_conflict, setup};
use crate::error::Error;
use crate::storage::Storage;
use crate::store::Store;

/// `delete_with_version` deletes only at the stored version, without reading first: a stale
/// version is a conflict carrying the stored record, a missing record one with `actual: None`
/// (as `delete(&t)`); the generated helper, `&str` keys and transactions work alike.
pub async fn delete_with_version_is_checked<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    p.salary = 120;
    p.put(store).await.expect("put"); // version 2

    let err = store.delete_with_version::<Person>(&1, 1).await.expect_err("stale version");
    assert_conflict(&err, 1, Some(2));
    assert!(matches!(err, Error::ConcurrentModification { table: "people", .. }), "{err:?}");
    assert_eq!(err.current::<Person>().expect("the stored record").expect("decodes"), p);
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(p.clone()), "a refused delete deletes nothing");

    Person::delete_with_version(store, &1, 2).await.expect("the stored version");
    assert_eq!(store.get::<Person>(&1).await.expect("get"), None);
    let err = store.delete_with_version::<Person>(&1, 2).await.expect_err("already deleted");
    assert_conflict(&err, 2, None);
    assert!(err.current::<Person>().is_none(), "no stored record to carry: {err:?}");
    let err = store.delete_with_version::<Person>(&9, 1).await.expect_err("never stored");
    assert_conflict(&err, 1, None);

    // A text key, taken as `&str`, and a `u32` version.
    let mut score = HighScore { board: "kii".into(), score: 87, version: 0 };
    store.insert(&mut score).await.expect("insert");
    assert_conflict(&store.delete_with_version::<HighScore>("kii", 2).await.expect_err("stale"), 2, Some(1));
    store.delete_with_version::<HighScore>("kii", 1).await.expect("delete by &str key");
    assert_eq!(store.get::<HighScore>("kii").await.expect("get"), None);

    // Inside a transaction: undone with it, and a conflict fails it.
    store.insert(&mut Person { id: 2, ..ann() }).await.expect("insert");
    let failed = store
        .transaction(|tx| async move {
            tx.delete_with_version::<Person>(&2, 1).await?;
            assert_eq!(tx.get::<Person>(&2).await?, None, "the transaction sees its own delete");
            Err::<(), _>(Error::not_found::<Person>(&0)) // give up: the delete is rolled back
        })
        .await;
    assert!(matches!(failed, Err(Error::NotFound { .. })), "{failed:?}");
    assert!(store.get::<Person>(&2).await.expect("get").is_some(), "rolled back with the transaction");
    let stale = store.transaction(|tx| async move { tx.delete_with_version::<Person>(&2, 5).await }).await;
    assert_conflict(&stale.expect_err("stale inside a transaction"), 5, Some(1));
    store
        .transaction(|tx| async move { Person::delete_with_version(&tx, &2, 1).await })
        .await
        .expect("delete inside a transaction");
    assert_eq!(store.get::<Person>(&2).await.expect("get"), None);
}
