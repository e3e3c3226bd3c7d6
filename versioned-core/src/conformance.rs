//! The backend conformance suite: the semantics table of `versioned`, as tests any backend runs.
//!
//! Each public `async fn` here checks one rule on a fresh [`Store`] and panics (it is test code)
//! when the backend breaks it. [`conformance_tests!`](crate::conformance_tests) turns the whole
//! suite into `#[tokio::test]`s for a backend, given a function that makes an empty store (or a
//! fixture that is `AsRef<Store<_>>`, to keep a temporary directory alive):
//!
//! ```ignore
//! versioned::conformance_tests!(|| async { versioned::Store::memory() });
//! ```
//!
//! The stories of the source documents are here too: Slim3's salary update, Kii's high-score race.

use std::fmt::Debug;

use crate::error::Error;
use crate::storage::Storage;
use crate::store::Store;
use crate::value::Value;

/// Slim3's `Person`, with a `salary`.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "people")]
pub struct Person {
    /// Key.
    #[key]
    pub id: i64,
    /// Name.
    pub name: String,
    /// Salary.
    pub salary: i32,
    /// Version.
    #[version]
    pub version: u64,
}

/// Kii's high-score record: a text key and a `u32` version.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate)]
pub struct HighScore {
    /// Key.
    #[key]
    pub board: String,
    /// The high score.
    #[versioned(column = "highscore")]
    pub score: i64,
    /// Version.
    #[version]
    #[versioned(column = "_version")]
    pub version: u32,
}

/// A record whose `u8` version runs out quickly.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate)]
pub struct Tiny {
    /// Key.
    #[key]
    pub id: i32,
    /// Some data.
    pub note: String,
    /// Version.
    #[version]
    pub version: u8,
}

/// Every kind of field: options, floats, bytes, bools, unsigned integers and JSON.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate)]
pub struct Everything {
    /// Key.
    #[key]
    pub id: String,
    /// A nullable column.
    pub nickname: Option<String>,
    /// Another nullable column.
    pub rank: Option<i16>,
    /// A float.
    pub ratio: f64,
    /// A bool.
    pub active: bool,
    /// Bytes.
    pub blob: Vec<u8>,
    /// An unsigned 64-bit integer: values above `i64::MAX` cannot be stored.
    pub big: u64,
    /// A JSON document.
    #[versioned(json)]
    pub meta: serde_json::Value,
    /// Version.
    #[version]
    pub version: i64,
}

/// The names of every test of the suite, for [`conformance_tests!`](crate::conformance_tests).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            insert_sets_version_one,
            insert_existing_key_is_already_exists,
            get_returns_stored_record_or_none,
            get_with_version_checks_the_version,
            put_replaces_all_columns_and_increments,
            stale_put_is_refused_and_leaves_caller_unchanged,
            slim3_salary_story,
            stale_put_never_reinserts_deleted_record,
            put_unchecked_overwrites_and_never_reuses_a_version,
            kii_high_score_race,
            delete_is_checked,
            delete_through_stale_copy_of_deleted_record_says_gone,
            delete_unchecked_removes_whatever_the_version,
            version_at_maximum_refuses_to_increment,
            conflict_current_decodes_to_stored_struct,
            every_field_type_round_trips,
            unstorable_value_is_refused_and_nothing_stored,
            operations_run_inside_tokio_spawn
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let fixture = ($make)().await;
            $crate::conformance::$name(::core::convert::AsRef::as_ref(&fixture)).await;
        }
    )*};
}

async fn setup<S: Storage>(store: &Store<S>) {
    store.create_table::<Person>().await.expect("create people");
    store.create_table::<HighScore>().await.expect("create high_score");
    store.create_table::<Tiny>().await.expect("create tiny");
    store.create_table::<Everything>().await.expect("create everything");
}

fn ann() -> Person {
    Person { id: 1, name: "Ann".into(), salary: 100, version: 0 }
}

#[track_caller]
fn assert_conflict(err: &Error, expected: u64, actual: Option<u64>) {
    match err {
        Error::ConcurrentModification { expected: e, actual: a, .. } => {
            assert_eq!((*e, *a), (expected, actual), "conflict versions (expected, actual)");
        }
        other => panic!("expected ConcurrentModification, got {other:?}"),
    }
}

#[track_caller]
fn assert_unchanged<T: PartialEq + Debug>(after: &T, before: &T) {
    assert_eq!(after, before, "a failed write must leave the caller's struct exactly as it was");
}

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
pub async fn slim3_salary_story<S: Storage>(store: &Store<S>) {
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
pub async fn kii_high_score_race<S: Storage>(store: &Store<S>) {
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
    let mut t = Tiny { id: 1, note: "start".into(), version: 0 };
    store.insert(&mut t).await.expect("insert");
    for _ in 1..u8::MAX {
        t.put(store).await.expect("put below the maximum");
    }
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
    let mut full = Everything {
        id: "full".into(),
        nickname: Some("Nick".into()),
        rank: Some(-3),
        ratio: 0.25,
        active: true,
        blob: vec![0, 1, 254, 255],
        big: i64::MAX as u64,
        meta: serde_json::json!({"tags": ["a", "b"], "nested": {"level": 2}}),
        version: 0,
    };
    let mut empty = Everything {
        id: "empty".into(),
        nickname: None,
        rank: None,
        ratio: -1.5,
        active: false,
        blob: vec![],
        big: 0,
        meta: serde_json::Value::Null,
        version: 0,
    };
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

/// Every operation's future is `Send`: it runs inside `tokio::spawn`.
pub async fn operations_run_inside_tokio_spawn<S: Storage + Clone>(store: &Store<S>) {
    setup(store).await;
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut p = Person { id: i, name: format!("P{i}"), salary: 10, version: 0 };
                store.insert(&mut p).await?;
                let mut p = Person::get_with_version(&store, &i, 1).await?;
                p.salary += 1;
                p.put(&store).await?;
                store.put_unchecked(&mut p).await?;
                let found = store.get::<Person>(&i).await?;
                store.delete(&p).await?;
                store.delete_unchecked::<Person>(&i).await?;
                Ok::<_, Error>(found.map(|p| (p.salary, p.version)))
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.await.expect("task").expect("operations"), Some((11, 3)));
    }
}
