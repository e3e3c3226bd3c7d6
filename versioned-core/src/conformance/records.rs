//! One record at a time: `insert`, `get`, `get_with_version`, `put`, `put_unchecked`, `save`,
//! `refresh`, `delete` and `delete_unchecked`, each checked against the stored version; versions
//! that run out; every field type.

use super::{
    Everything, HighScore, Person, Tiny, abort, ann, assert_conflict, assert_unchanged, everything, person, setup,
    tiny_at_maximum,
};
use crate::error::Error;
use crate::storage::Storage;
use crate::store::Store;
use crate::value::Value;

/// `insert` stores the record with version 1, in the store and in the struct.
pub async fn insert_sets_version_one<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = Person { version: 42, ..ann() };
    store.insert(&mut p).await.expect("insert");
    assert_eq!(p.version, 1);
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(Person { version: 1, ..ann() }));
}

/// Inserting an existing key is `AlreadyExists`, not a conflict, and changes nothing.
pub async fn insert_existing_key_is_already_exists<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut ann()).await.expect("first insert");
    let mut again = Person { name: "Impostor".into(), ..ann() };
    let before = again.clone();
    let err = store.insert(&mut again).await.expect_err("second insert must fail");
    assert!(matches!(&err, Error::AlreadyExists { table: "people", key: Value::Int(1) }), "{err:?}");
    assert!(!err.is_conflict() && !err.is_retryable());
    assert_unchanged(&again, &before);
    assert_eq!(store.get::<Person>(&1).await.expect("get").map(|p| p.name), Some("Ann".into()));
}

/// `get` gives the stored record, or `None`.
pub async fn get_returns_stored_record_or_none<S: Storage>(store: &Store<S>) {
    setup(store).await;
    assert_eq!(store.get::<Person>(&1).await.expect("get"), None);
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(p));
    assert_eq!(store.get::<Person>(&2).await.expect("get"), None);
}

/// `get_with_version` (Slim3): the record when versions match; a conflict with both versions when
/// they differ; `NotFound` when there is no record.
pub async fn get_with_version_checks_the_version<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    assert_eq!(Person::get_with_version(store, &1, 1).await.expect("matching version"), p);

    let err = Person::get_with_version(store, &1, 7).await.expect_err("wrong version");
    assert_conflict(&err, 7, Some(1));
    assert!(err.is_retryable());

    let err = Person::get_with_version(store, &99, 1).await.expect_err("missing");
    assert!(matches!(err, Error::NotFound { table: "people", key: Value::Int(99) }), "{err:?}");
}

/// A checked `put` replaces every column and increments the version in store and struct.
pub async fn put_replaces_all_columns_and_increments<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    p.insert(store).await.expect("insert");
    p.name = "Ann B.".into();
    p.salary = 120;
    p.put(store).await.expect("put");
    assert_eq!(p.version, 2);
    p.salary = 130;
    p.put(store).await.expect("second put");
    assert_eq!(p.version, 3);
    let stored = Person::get(store, &1).await.expect("get").expect("present");
    assert_eq!(stored, Person { id: 1, name: "Ann B.".into(), salary: 130, version: 3 });
}

/// A `put` through a stale copy is refused with both versions, writes nothing, and leaves the
/// caller's struct exactly as it was.
pub async fn stale_put_is_refused_and_leaves_caller_unchanged<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut ann()).await.expect("insert");
    let mut fresh = store.get::<Person>(&1).await.expect("get").expect("present");
    let mut stale = fresh.clone();
    fresh.salary = 200;
    fresh.put(store).await.expect("fresh put");

    stale.salary = 1;
    stale.name = "Stale".into();
    let before = stale.clone();
    let err = stale.put(store).await.expect_err("stale put");
    assert_conflict(&err, 1, Some(2));
    assert_unchanged(&stale, &before);
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(fresh));
}

/// Slim3's `updateSalary(key, version, newSalary)`: a stale `get_with_version` and a stale `put`
/// are both `ConcurrentModification` with the right versions.
pub async fn stale_get_with_version_and_stale_put_are_both_conflicts<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut ann()).await.expect("insert");

    // Two requests render the record at version 1.
    let shown_to_a = 1;
    let shown_to_b = 1;

    let mut p = Person::get_with_version(store, &1, shown_to_a).await.expect("A reads");
    p.salary = 150;
    p.put(store).await.expect("A updates the salary");

    // B's request carries the version B saw: the read already fails.
    let err = Person::get_with_version(store, &1, shown_to_b).await.expect_err("B's read is stale");
    assert_conflict(&err, 1, Some(2));

    // And had B read before A's write, B's put fails.
    let mut b = Person { salary: 90, version: shown_to_b, ..ann() };
    let err = b.put(store).await.expect_err("B's put is stale");
    assert_conflict(&err, 1, Some(2));
    assert_eq!(store.get::<Person>(&1).await.expect("get").map(|p| p.salary), Some(150));
}

/// A stale `put` of a record deleted meanwhile is a conflict saying it is gone, and never
/// re-inserts it.
pub async fn stale_put_never_reinserts_deleted_record<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    let mut stale = p.clone();
    store.delete(&p).await.expect("delete");

    stale.salary = 999;
    let err = store.put(&mut stale).await.expect_err("put of deleted record");
    assert_conflict(&err, 1, None);
    assert!(matches!(&err, Error::ConcurrentModification { current: None, .. }));
    assert_eq!(stale.version, 1);
    assert_eq!(store.get::<Person>(&1).await.expect("get"), None, "a stale put must not re-insert");
}

/// `put_unchecked` (force): inserts a new record at version 1; overwrites an existing one whatever
/// the caller's version, at stored version + 1, never reusing a version.
pub async fn put_unchecked_overwrites_and_never_reuses_a_version<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = Person { version: 17, ..ann() };
    store.put_unchecked(&mut p).await.expect("force insert");
    assert_eq!(p.version, 1);

    let mut other = store.get::<Person>(&1).await.expect("get").expect("present");
    other.salary = 300;
    other.put(store).await.expect("checked put");
    assert_eq!(other.version, 2);

    // `p` is stale (version 1); forcing it wins, at version 3.
    p.name = "Forced".into();
    store.put_unchecked(&mut p).await.expect("force update");
    assert_eq!(p.version, 3);
    assert_eq!(
        store.get::<Person>(&1).await.expect("get"),
        Some(Person { id: 1, name: "Forced".into(), salary: 100, version: 3 })
    );
}

/// Kii's high-score race: A and B both read 60; A writes 87; B's 76 is refused by the check and a
/// retry from a fresh read keeps 87. Without the check B's 76 wins and A's update is lost.
pub async fn checked_puts_prevent_the_lost_update_unchecked_puts_allow<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let board = "global".to_string();
    store.insert(&mut HighScore { board: board.clone(), score: 60, version: 0 }).await.expect("insert");

    // With the overwrite check.
    let mut a = store.get::<HighScore>(&board).await.expect("A gets").expect("present");
    let mut b = store.get::<HighScore>(&board).await.expect("B gets").expect("present");
    a.score = a.score.max(87);
    b.score = b.score.max(76);
    a.put(store).await.expect("A updates");
    let err = b.put(store).await.expect_err("B's update must be refused");
    assert_conflict(&err, 1, Some(2));
    // B repeats from step 2: a fresh read, and 76 is not a new high score.
    let mut b = store.get::<HighScore>(&board).await.expect("B gets again").expect("present");
    if 76 > b.score {
        b.score = 76;
        b.put(store).await.expect("B updates");
    }
    assert_eq!(store.get::<HighScore>(&board).await.expect("get").map(|h| h.score), Some(87));

    // Without the overwrite check: the same race loses A's update.
    let reset = &mut store.get::<HighScore>(&board).await.expect("get").expect("present");
    reset.score = 60;
    reset.put(store).await.expect("reset to 60");
    let mut a = store.get::<HighScore>(&board).await.expect("A gets").expect("present");
    let mut b = store.get::<HighScore>(&board).await.expect("B gets").expect("present");
    a.score = 87;
    b.score = 76;
    a.put_unchecked(store).await.expect("A forces");
    b.put_unchecked(store).await.expect("B forces");
    assert_eq!(
        store.get::<HighScore>(&board).await.expect("get").map(|h| h.score),
        Some(76),
        "without the check, the last writer wins and A's 87 is lost"
    );
}

/// A checked `delete` removes the record only at the stored version; a stale one is a conflict
/// that leaves the record in place.
pub async fn delete_is_checked<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    let stale = p.clone();
    p.salary = 1;
    p.put(store).await.expect("put");

    let err = store.delete(&stale).await.expect_err("stale delete");
    assert_conflict(&err, 1, Some(2));
    assert!(store.get::<Person>(&1).await.expect("get").is_some());

    p.delete(store).await.expect("delete at current version");
    assert_eq!(store.get::<Person>(&1).await.expect("get"), None);
}

/// Deleting through a stale copy after the record was already deleted is a conflict that says the
/// record is gone (`actual: None`).
pub async fn delete_through_stale_copy_of_deleted_record_says_gone<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    store.delete(&p).await.expect("first delete");
    let err = store.delete(&p).await.expect_err("second delete");
    assert_conflict(&err, 1, None);
    assert!(err.current::<Person>().is_none());
}

/// `delete_unchecked` removes the record whatever its version and says whether one was there.
pub async fn delete_unchecked_removes_whatever_the_version<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    p.put(store).await.expect("put");
    assert!(store.delete_unchecked::<Person>(&1).await.expect("delete"));
    assert!(!store.delete_unchecked::<Person>(&1).await.expect("delete again"));
    assert_eq!(store.get::<Person>(&1).await.expect("get"), None);
}

/// A version at its type's maximum refuses to increment, checked or forced, and nothing changes.
pub async fn version_at_maximum_refuses_to_increment<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut t = tiny_at_maximum(store, "start").await;
    assert_eq!(t.version, u8::MAX);

    t.note = "one too many".into();
    let before = t.clone();
    let err = t.put(store).await.expect_err("put at the maximum");
    assert!(matches!(err, Error::VersionOverflow { version: 255, .. }), "{err:?}");
    assert_unchanged(&t, &before);

    let err = t.put_unchecked(store).await.expect_err("forced put at the maximum");
    assert!(matches!(err, Error::VersionOverflow { .. }), "{err:?}");
    assert_unchanged(&t, &before);

    let stored = store.get::<Tiny>(&1).await.expect("get").expect("present");
    assert_eq!((stored.note.as_str(), stored.version), ("start", u8::MAX));
}

/// A conflict carries the stored record, and `current::<T>()` decodes it.
pub async fn conflict_current_decodes_to_stored_struct<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut ann()).await.expect("insert");
    let mut mine = store.get::<Person>(&1).await.expect("get").expect("present");
    let mut theirs = mine.clone();
    theirs.name = "Ann (theirs)".into();
    theirs.put(store).await.expect("their put");

    mine.salary = 5;
    let err = mine.put(store).await.expect_err("my put");
    let current = err.current::<Person>().expect("a stored record").expect("decodes");
    assert_eq!(current, theirs);
    assert!(err.current::<Tiny>().is_none(), "a record of another table is not decoded");
    assert!(err.to_string().contains("expected version 1"), "{err}");
}

/// Every supported field type, `NULL`s and JSON round-trip unchanged.
pub async fn every_field_type_round_trips<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let [mut full, mut empty] = everything();
    store.insert(&mut full).await.expect("insert full");
    store.insert(&mut empty).await.expect("insert empty");
    assert_eq!(store.get::<Everything>(&"full".to_string()).await.expect("get"), Some(full));
    assert_eq!(store.get::<Everything>(&"empty".to_string()).await.expect("get"), Some(empty));
}

/// A value that cannot be stored (a `u64` above `i64::MAX`) is an `Encode` error naming the column,
/// and nothing is written.
pub async fn unstorable_value_is_refused_and_nothing_stored<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut e = Everything {
        id: "big".into(),
        nickname: None,
        rank: None,
        ratio: 0.0,
        active: false,
        blob: vec![],
        big: u64::MAX,
        meta: serde_json::json!({}),
        version: 0,
    };
    let err = store.insert(&mut e).await.expect_err("u64::MAX cannot be stored");
    assert!(matches!(err, Error::Encode { table: "everything", column: "big", .. }), "{err:?}");
    assert_eq!(e.version, 0);
    assert_eq!(store.get::<Everything>(&"big".to_string()).await.expect("get"), None);
}

/// `save`: a copy at version 0 is inserted at version 1; a copy whose version is the stored one
/// replaces it; a new copy whose key is taken, a stale copy, and a copy of a deleted record are
/// conflicts that write nothing and leave the copy unchanged.
pub async fn save_inserts_new_copies_and_checks_the_others<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.save(&mut p).await.expect("a new copy is inserted");
    assert_eq!(p.version, 1);
    assert_eq!(person(store, 1).await, Some(p.clone()));

    p.salary = 150;
    p.save(store).await.expect("the stored version: an update");
    assert_eq!(p.version, 2);
    assert_eq!(person(store, 1).await, Some(p.clone()));

    let mut twin = Person { name: "Twin".into(), ..ann() };
    let before = twin.clone();
    let err = store.save(&mut twin).await.expect_err("a new copy whose key is taken");
    assert_conflict(&err, 0, Some(2));
    assert_eq!(err.current::<Person>().map(|c| c.expect("decodes")), Some(p.clone()), "carries the stored record");
    assert_unchanged(&twin, &before);

    let mut stale = Person { version: 1, ..p.clone() };
    let before = stale.clone();
    assert_conflict(&store.save(&mut stale).await.expect_err("stale"), 1, Some(2));
    assert_unchanged(&stale, &before);

    store.delete(&p).await.expect("delete");
    let before = p.clone();
    assert_conflict(&store.save(&mut p).await.expect_err("deleted"), 2, None);
    assert_unchanged(&p, &before);
    assert_eq!(person(store, 1).await, None, "save never re-inserts a deleted record");

    // Inside a transaction, and rolled back with it.
    let failed = store
        .transaction(|tx| async move {
            tx.save(&mut Person { id: 5, ..ann() }).await?;
            Err::<(), _>(abort())
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(person(store, 5).await, None);
}

/// `refresh` replaces a copy with the stored record; a deleted record is `NotFound` and leaves the
/// copy as it was. A `put` of a copy that changed nothing still writes and increments the version.
pub async fn refresh_reloads_and_unchanged_puts_still_count<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut mine = ann();
    store.insert(&mut mine).await.expect("insert");
    let mut theirs = mine.clone();
    theirs.salary = 500;
    theirs.put(store).await.expect("their write");

    mine.salary = 1;
    assert!(store.put(&mut mine).await.expect_err("stale").is_conflict());
    store.refresh(&mut mine).await.expect("refresh");
    assert_eq!(mine, theirs, "the store wins: the copy is the stored record");

    let unchanged = mine.clone();
    mine.put(store).await.expect("an unchanged copy still writes");
    assert_eq!(mine.version, unchanged.version + 1, "and its version goes up");
    let mut other = unchanged.clone();
    assert!(other.put(store).await.expect_err("a copy of the previous version").is_conflict());

    let refreshed = store.transaction(|tx| async move {
        let mut copy = unchanged;
        tx.refresh(&mut copy).await?;
        Ok(copy)
    });
    assert_eq!(refreshed.await.expect("refresh in a transaction"), mine);

    store.delete(&mine).await.expect("delete");
    let before = mine.clone();
    assert!(matches!(mine.refresh(store).await, Err(Error::NotFound { .. })), "deleted: NotFound");
    assert_unchanged(&mine, &before);
}
