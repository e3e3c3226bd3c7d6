//! Audit fields the store sets (`created_at`, `updated_at`) and the caller fills (`updated_by`),
//! and `touch`, which increments only the version (Hibernate's force increment).

use std::time::{Duration, SystemTime};

use super::{
    Account, Contact, ContactPatch, Person, PersonPatch, Tiny, TinyPatch, ann, assert_conflict, assert_unchanged, jo,
    setup, tiny_at_maximum,
};
use crate::error::Error;
use crate::patch::Check;
use crate::storage::Storage;
use crate::store::Store;

/// `created_at` is set on insert and never changed; `updated_at` on every write; `updated_by` is
/// stored as the caller filled it. The caller's struct holds what was stored.
pub async fn audit_fields_are_set_by_the_store<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let before = SystemTime::now();
    let mut c = jo("Amy");
    store.insert(&mut c).await.expect("insert");
    assert!(c.created_at >= before - Duration::from_millis(1) && c.created_at <= SystemTime::now(), "created now");
    assert_eq!(c.updated_at, c.created_at);
    assert_eq!(store.get::<Contact>(&7).await.expect("get").as_ref(), Some(&c), "the struct holds what was stored");
    let created = c.created_at;

    tokio::time::sleep(Duration::from_millis(2)).await;
    c.phone = "555-0199".into();
    c.updated_by = "Lawrence".into();
    c.created_at = SystemTime::UNIX_EPOCH; // an update never changes the creation time
    c.put(store).await.expect("put");
    let stored = store.get::<Contact>(&7).await.expect("get").expect("present");
    assert_eq!(stored.created_at, created);
    assert!(stored.updated_at > created);
    assert_eq!(c.updated_at, stored.updated_at);
    assert_eq!(stored.updated_by, "Lawrence");

    tokio::time::sleep(Duration::from_millis(2)).await;
    let mut forced = Contact { created_at: SystemTime::UNIX_EPOCH, ..stored.clone() };
    forced.put_unchecked(store).await.expect("force");
    let after_force = store.get::<Contact>(&7).await.expect("get").expect("present");
    assert_eq!(after_force.created_at, created, "a forced update keeps the creation time too");
    assert!(after_force.updated_at > stored.updated_at);

    tokio::time::sleep(Duration::from_millis(2)).await;
    let patched = store
        .patch::<Contact>(&7, ContactPatch::default().phone("555-0123").updated_by("Amy"), Check::Unchecked)
        .await
        .expect("patch");
    assert_eq!(patched.created_at, created);
    assert!(patched.updated_at > after_force.updated_at);
    assert_eq!(patched.updated_by, "Amy");
}

/// A conflict's stored record says who changed it, and when (OutSystems).
pub async fn conflict_says_who_changed_the_record<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut jo("admin")).await.expect("insert");
    let mut amy = store.get::<Contact>(&7).await.expect("get").expect("present");
    let mut lawrence = amy.clone();
    amy.phone = "555-0199".into();
    amy.updated_by = "Amy Peters".into();
    amy.put(store).await.expect("Amy saves");

    lawrence.name = "Jo Doe-Ricci".into();
    lawrence.updated_by = "Lawrence Ricci".into();
    let err = lawrence.put(store).await.expect_err("Lawrence's save conflicts");
    let current = err.current::<Contact>().expect("stored record").expect("decodes");
    assert_eq!(current.updated_by, "Amy Peters");
    assert_eq!(current.updated_at, amy.updated_at);
    assert_eq!(current.phone, "555-0199");
}

/// `touch` increments the version with a check and changes nothing else, not even `updated_at`.
pub async fn touch_increments_only_the_version<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut c = jo("Amy");
    store.insert(&mut c).await.expect("insert");
    let mut stale = c.clone();
    store.touch(&mut c).await.expect("touch");
    assert_eq!(c.version, 2);
    assert_eq!(store.get::<Contact>(&7).await.expect("get"), Some(c.clone()), "only the version changed");

    let before = stale.clone();
    let err = store.touch(&mut stale).await.expect_err("stale touch");
    assert_conflict(&err, 1, Some(2));
    assert_unchanged(&stale, &before);
}

/// Hibernate's force increment: writers of an order's lines touch the order, so two of them
/// writing different lines at once still conflict on the order's version.
pub async fn touch_guards_a_group_of_records<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut Person { id: 1, name: "order".into(), salary: 0, version: 0 }).await.expect("order");
    store.insert(&mut Account { id: 1, balance: 0, version: 0 }).await.expect("line 1");
    store.insert(&mut Account { id: 2, balance: 0, version: 0 }).await.expect("line 2");
    let order_seen_by_a = store.get::<Person>(&1).await.expect("get").expect("order");
    let order_seen_by_b = order_seen_by_a.clone();

    let add_to_line = |line: i32, mut order: Person| async move {
        store
            .transaction(|tx| async move {
                let mut l = tx.get::<Account>(&line).await?.ok_or_else(|| Error::not_found::<Account>(&line))?;
                l.balance += 10;
                tx.put(&mut l).await?;
                tx.touch(&mut order).await
            })
            .await
    };
    add_to_line(1, order_seen_by_a).await.expect("A changes line 1");
    let err = add_to_line(2, order_seen_by_b).await.expect_err("B's order version is stale");
    assert_conflict(&err, 1, Some(2));
    assert_eq!(store.get::<Account>(&2).await.expect("get").map(|l| l.balance), Some(0), "B's line write rolled back");
    assert_eq!(store.get::<Person>(&1).await.expect("get").map(|o| (o.name, o.version)), Some(("order".into(), 2)));
}

/// `patch` and `touch` take part in transactions: visible inside, rolled back with the rest.
pub async fn patch_and_touch_inside_transactions<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut ann()).await.expect("insert");
    let err = store
        .transaction(|tx| async move {
            let p = tx.patch::<Person>(&1, PersonPatch::default().salary(999), Check::Version(1)).await?;
            assert_eq!(tx.get::<Person>(&1).await?.map(|p| p.salary), Some(999));
            let mut p = p;
            tx.touch(&mut p).await?;
            assert_eq!(p.version, 3);
            tx.patch::<Person>(&1, PersonPatch::default().name("x"), Check::Version(1)).await
        })
        .await
        .expect_err("the last patch is stale");
    assert_conflict(&err, 1, Some(3));
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(Person { version: 1, ..ann() }), "all rolled back");

    let committed = store
        .transaction(
            |tx| async move { tx.patch::<Person>(&1, PersonPatch::default().salary(7), Check::Unchecked).await },
        )
        .await
        .expect("commits");
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(committed));
}

/// At the version's maximum, `patch` and `touch` refuse like `put`.
pub async fn patch_and_touch_refuse_to_overflow<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut t = tiny_at_maximum(store, "n").await;
    let err = store.patch::<Tiny>(&1, TinyPatch::default().note("x"), Check::Unchecked).await.expect_err("patch");
    assert!(matches!(err, Error::VersionOverflow { version: 255, .. }), "{err:?}");
    let err = store.patch::<Tiny>(&1, TinyPatch::default().note("x"), Check::Version(255)).await.expect_err("patch");
    assert!(matches!(err, Error::VersionOverflow { version: 255, .. }), "{err:?}");
    let err = store.touch(&mut t).await.expect_err("touch");
    assert!(matches!(err, Error::VersionOverflow { .. }), "{err:?}");
    assert_eq!(t.version, 255);
    assert_eq!(store.get::<Tiny>(&1).await.expect("get").map(|t| t.note), Some("n".into()));
}
