//! Partial updates (`patch`): only the given columns change, checked or not, and a JSON field's
//! merge loses nothing, even from many tasks at once.

use super::{Contact, ContactPatch, Person, PersonPatch, ann, assert_conflict, jo, setup};
use crate::error::Error;
use crate::patch::Check;
use crate::storage::Storage;
use crate::store::Store;
use crate::value::Value;

/// A partial update changes only the columns it sets, increments the version, and returns the
/// stored record.
pub async fn patch_changes_only_the_given_columns<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut ann()).await.expect("insert");
    let patched =
        store.patch::<Person>(&1, PersonPatch::default().salary(150), Check::Version(1)).await.expect("patch");
    assert_eq!(patched, Person { id: 1, name: "Ann".into(), salary: 150, version: 2 });
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(patched));

    let empty = store.patch::<Person>(&1, PersonPatch::default(), Check::Unchecked).await.expect("empty patch");
    assert_eq!((empty.salary, empty.version), (150, 3), "an empty patch changes nothing but the version");

    let literal = PersonPatch { name: Some("Ann B.".into()), ..PersonPatch::default() };
    let patched = store.patch::<Person>(&1, literal, Check::Version(3)).await.expect("struct-literal patch");
    assert_eq!((patched.name.as_str(), patched.salary, patched.version), ("Ann B.", 150, 4));
}

/// A partial update with a stale expected version is refused and changes nothing.
pub async fn stale_patch_is_refused_and_changes_nothing<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    p.salary = 120;
    p.put(store).await.expect("put"); // version 2
    let err = store
        .patch::<Person>(&1, PersonPatch::default().name("Stale").salary(1), Check::Version(1))
        .await
        .expect_err("stale patch");
    assert_conflict(&err, 1, Some(2));
    assert_eq!(err.current::<Person>().expect("stored").expect("decodes"), p);
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(p), "nothing changed");
}

/// A partial update never creates a record: `NotFound` without a check, a conflict saying the
/// record is gone with one.
pub async fn patch_of_a_missing_record_never_creates_it<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let err = store.patch::<Person>(&5, PersonPatch::default().salary(1), Check::Unchecked).await.expect_err("missing");
    assert!(matches!(err, Error::NotFound { table: "people", key: Value::Int(5) }), "{err:?}");
    let err =
        store.patch::<Person>(&5, PersonPatch::default().salary(1), Check::Version(1)).await.expect_err("missing");
    assert_conflict(&err, 1, None);
    let err = store
        .patch::<Contact>(&5, ContactPatch::default().profile_merge(serde_json::json!({"k": 1})), Check::Unchecked)
        .await
        .expect_err("missing, with a JSON merge");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(store.get::<Person>(&5).await.expect("get"), None);
}

/// Kii's table of update options, all four: full or partial, with or without the overwrite check,
/// each written through a copy made stale by another client's write.
pub async fn stale_full_and_partial_updates_are_refused_checked_and_applied_unchecked<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut base = ann();
    store.insert(&mut base).await.expect("insert");
    let stale = base.clone(); // version 1
    let mut other = base.clone();
    other.name = "Other".into();
    other.put(store).await.expect("another client writes"); // version 2, name "Other"

    // Full update with the check: refused.
    let mut full = Person { salary: 500, ..stale.clone() };
    assert_conflict(&store.put(&mut full).await.expect_err("full, checked"), 1, Some(2));
    // Partial update with the check: refused.
    let err = store.patch::<Person>(&1, PersonPatch::default().salary(500), Check::Version(1)).await;
    assert_conflict(&err.expect_err("partial, checked"), 1, Some(2));
    assert_eq!(store.get::<Person>(&1).await.expect("get").map(|p| (p.name, p.salary)), Some(("Other".into(), 100)));

    // Partial update without the check: merges, keeping the other client's name.
    let merged =
        store.patch::<Person>(&1, PersonPatch::default().salary(300), Check::Unchecked).await.expect("partial");
    assert_eq!((merged.name.as_str(), merged.salary, merged.version), ("Other", 300, 3));
    // Full update without the check: replaces everything, the other client's name included.
    let mut full = Person { salary: 400, ..stale };
    store.put_unchecked(&mut full).await.expect("full, unchecked");
    assert_eq!(
        store.get::<Person>(&1).await.expect("get"),
        Some(Person { id: 1, name: "Ann".into(), salary: 400, version: 4 })
    );
}

/// A JSON field in a patch is merged into the stored document at every level; keys are never
/// deleted (a `null` sets a key to null).
pub async fn json_patch_merges_every_level_and_keeps_keys<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut jo("Amy")).await.expect("insert");
    let doc = serde_json::json!({"nested": {"y": 3, "z": {"deep": true}}, "b": 2, "a": null});
    let patched = store
        .patch::<Contact>(&7, ContactPatch::default().profile_merge(doc).updated_by("Lawrence"), Check::Version(1))
        .await
        .expect("patch");
    let expected = serde_json::json!({"a": null, "b": 2, "nested": {"x": 1, "y": 3, "z": {"deep": true}}});
    assert_eq!(patched.profile, expected);
    assert_eq!((patched.name.as_str(), patched.updated_by.as_str(), patched.version), ("Jo Doe", "Lawrence", 2));
    assert_eq!(store.get::<Contact>(&7).await.expect("get").map(|c| c.profile), Some(expected));

    let err = store
        .patch::<Contact>(&7, ContactPatch::default().profile_merge(serde_json::json!({"c": 3})), Check::Version(1))
        .await
        .expect_err("stale JSON patch");
    assert_conflict(&err, 1, Some(2));
}

/// Unchecked JSON patches from many tasks at once: each merge is written checked against the
/// version it merged into, so none is lost.
pub async fn concurrent_json_patches_lose_no_merge<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut c = jo("Amy");
    c.profile = serde_json::json!({});
    store.insert(&mut c).await.expect("insert");
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let doc = serde_json::json!({ format!("t{task}"): { format!("k{i}"): i } });
                    store.patch::<Contact>(&7, ContactPatch::default().profile_merge(doc), Check::Unchecked).await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("every patch applies");
    }
    let stored = store.get::<Contact>(&7).await.expect("get").expect("present");
    for task in 0..8 {
        for i in 0..10 {
            assert_eq!(stored.profile[format!("t{task}")][format!("k{i}")], i, "merge t{task}.k{i} was lost");
        }
    }
    assert_eq!(stored.version, 81);
}
