//! Nothing half-done: a stored row the struct cannot read, a version that is not a version, a
//! patch that would store what cannot be read back. Each is refused before anything is written.

use std::collections::BTreeMap;

use super::{Person, PersonPatch, Tally, TallyPatch, setup};
use crate::entity::Entity;
use crate::error::Error;
use crate::patch::Check;
use crate::storage::Storage;
use crate::store::Store;
use crate::value::{Row, Value};

#[track_caller]
fn assert_decode(result: Result<impl std::fmt::Debug, Error>, table: &str, column: &str, what: &str) {
    match result {
        Err(Error::Decode { table: t, column: c, reason }) if t == table && c == column => {
            assert!(!reason.contains("NULL NULL"), "{what}: the message repeats itself: {reason}");
        }
        other => panic!("{what}: expected Error::Decode naming {table}.{column}, got {other:?}"),
    }
}

/// A row written past the typed API, as a migration or another program might have left it.
async fn raw_insert<S: Storage>(store: &Store<S>, table: &'static crate::TableDef, values: Vec<Value>) -> bool {
    store.backend().insert(table, Row::new(values)).await.is_ok()
}

async fn raw_fetch<S: Storage>(store: &Store<S>, table: &'static crate::TableDef, key: i64) -> Option<Row> {
    store.backend().fetch(table, &Value::Int(key)).await.expect("raw fetch")
}

/// A stored version that is `NULL`, not an integer or negative is `Error::Decode` naming the
/// version column, for every operation, and nothing is written. (A backend whose schema cannot
/// hold such a version, refusing it on the raw insert, skips that case.)
pub async fn corrupt_stored_versions_are_refused_by_every_operation<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let corrupt = [Value::Null, Value::Text("two".into()), Value::Float(2.5), Value::Int(-1)];
    let mut tried = 0;
    for (i, version) in corrupt.into_iter().enumerate() {
        let id = 100 + i as i64;
        let stored = vec![Value::Int(id), Value::Text("Ann".into()), Value::Int(100), version.clone()];
        if !raw_insert(store, Person::TABLE, stored).await {
            continue; // the backend's schema refuses such a version: it cannot be stored
        }
        tried += 1;
        let before = raw_fetch(store, Person::TABLE, id).await.expect("the raw row");
        let copy = Person { id, name: "Bob".into(), salary: 1, version: 1 };
        let what = |op: &str| format!("{op} on a stored version of {}", version.describe());

        assert_decode(store.get::<Person>(&id).await, "people", "version", &what("get"));
        assert_decode(store.get_with_version::<Person>(&id, 1).await, "people", "version", &what("get_with_version"));
        assert_decode(store.put(&mut copy.clone()).await, "people", "version", &what("put"));
        assert_decode(store.put_unchecked(&mut copy.clone()).await, "people", "version", &what("put_unchecked"));
        let patch = || PersonPatch::default().salary(5);
        assert_decode(store.patch::<Person>(&id, patch(), Check::Unchecked).await, "people", "version", &what("patch"));
        assert_decode(
            store.patch::<Person>(&id, patch(), Check::Version(1)).await,
            "people",
            "version",
            &what("patch"),
        );
        assert_decode(store.touch(&mut copy.clone()).await, "people", "version", &what("touch"));
        assert_decode(store.delete(&copy).await, "people", "version", &what("delete"));
        let delete = store.delete_with_version::<Person>(&id, 1).await;
        assert_decode(delete, "people", "version", &what("delete_with_version"));
        assert_decode(store.delete_unchecked::<Person>(&id).await, "people", "version", &what("delete_unchecked"));
        let update = store.update::<Person, _>(&id, Default::default(), |p| p.salary += 1).await;
        assert_decode(update, "people", "version", &what("update"));
        let in_tx = store.transaction(|tx| async move { tx.get_for_update::<Person>(&id).await }).await;
        assert_decode(in_tx, "people", "version", &what("tx.get_for_update"));
        let in_tx = store
            .transaction(|tx| async move {
                tx.patch::<Person>(&id, PersonPatch::default().name("x"), Check::Unchecked).await
            })
            .await;
        assert_decode(in_tx, "people", "version", &what("tx.patch"));

        assert_eq!(raw_fetch(store, Person::TABLE, id).await, Some(before), "{}: nothing may be written", what("any"));
    }
    assert!(tried >= 1, "the backend stored none of the corrupt versions: a negative one at least fits any integer");
}

/// A JSON merge whose result does not decode into the field's type is refused, and nothing is
/// written: the record still reads back, at its old version.
pub async fn a_patch_that_could_not_be_read_back_writes_nothing<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut tally = Tally { id: 1, counts: BTreeMap::from([("a".into(), 1)]), version: 0 };
    store.insert(&mut tally).await.expect("insert");

    for check in [Check::Unchecked, Check::Version(1)] {
        let bad = TallyPatch::default().counts_merge(serde_json::json!({"a": "oops"}));
        let err = store.patch::<Tally>(&1, bad, check).await;
        assert_decode(err, "tally", "counts", "a merge of text into a map of integers");
        let bad = TallyPatch::default().counts_merge(serde_json::json!(["not", "a", "map"]));
        assert_decode(store.patch::<Tally>(&1, bad, check).await, "tally", "counts", "a merge replacing the map");
    }
    assert_eq!(store.get::<Tally>(&1).await.expect("still readable"), Some(tally.clone()), "nothing was written");

    let good = TallyPatch::default().counts_merge(serde_json::json!({"b": 2}));
    let merged = store.patch::<Tally>(&1, good, Check::Version(1)).await.expect("a merge that fits");
    assert_eq!(merged.counts, BTreeMap::from([("a".into(), 1), ("b".into(), 2)]));
    assert_eq!(merged.version, 2);
}

/// A stored row with a column the struct cannot read is never patched: the patch is refused with
/// `Error::Decode` naming that column, and the version does not move.
pub async fn a_row_that_no_longer_decodes_is_never_patched<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let row = vec![Value::Int(1), Value::Text("Ann".into()), Value::Text("lots".into()), Value::Int(1)];
    if !raw_insert(store, Person::TABLE, row).await {
        return; // the backend's schema cannot hold text in an integer column: nothing to refuse
    }
    let before = raw_fetch(store, Person::TABLE, 1).await;
    for check in [Check::Unchecked, Check::Version(1)] {
        let result = store.patch::<Person>(&1, PersonPatch::default().name("Bo"), check).await;
        assert_decode(result, "people", "salary", "patch of a row whose salary is text");
    }
    let result = store.transaction(|tx| async move {
        tx.patch::<Person>(&1, PersonPatch::default().name("Bo"), Check::Unchecked).await
    });
    assert_decode(result.await, "people", "salary", "patch inside a transaction");
    assert_eq!(raw_fetch(store, Person::TABLE, 1).await, before, "the row and its version are untouched");
}
