//! Checked batch writes: `put_all`, `insert_all`, `delete_all` — every check kept, all or none,
//! every refusal reported.

use std::time::SystemTime;

use super::{Contact, Everything, Person, everything, jo, setup};
use crate::error::Error;
use crate::storage::Storage;
use crate::store::Store;

/// More than one chunk of a batch statement (1,000 rows), so chunking is exercised.
const MANY: i64 = 1_234;

fn people(ids: impl Iterator<Item = i64>) -> Vec<Person> {
    ids.map(|id| Person { id, name: format!("person {id}"), salary: id as i32, version: 0 }).collect()
}

async fn stored<S: Storage>(store: &Store<S>, id: i64) -> Option<Person> {
    store.get::<Person>(&id).await.expect("get")
}

/// The keys of the records a batch error refused, in batch order.
#[track_caller]
fn refused_keys(err: &Error) -> Vec<crate::Value> {
    match err {
        Error::Conflicts { conflicts, .. } => conflicts
            .iter()
            .map(|c| match c {
                Error::ConcurrentModification { key, .. } | Error::AlreadyExists { key, .. } => key.clone(),
                other => panic!("a batch refusal is a conflict or AlreadyExists, got {other:?}"),
            })
            .collect(),
        other => panic!("expected Error::Conflicts, got {other:?}"),
    }
}

/// `insert_all` stores every record at version 1, over several chunks; a batch with taken keys
/// stores none and names every taken key.
pub async fn insert_all_is_all_or_nothing<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut all = people(1..=MANY);
    store.insert_all(&mut all).await.expect("insert_all");
    assert!(all.iter().all(|p| p.version == 1));
    assert_eq!(stored(store, MANY).await, all.last().cloned());

    let mut clashing = people([MANY + 1, 3, MANY + 2, 7].into_iter());
    let before = clashing.clone();
    let err = store.insert_all(&mut clashing).await.expect_err("two keys are taken");
    assert_eq!(refused_keys(&err), [crate::Value::Int(3), crate::Value::Int(7)], "every taken key, in batch order");
    assert!(!err.is_conflict() && !err.is_retryable(), "a taken key is not a version conflict");
    assert_eq!(clashing, before, "the copies are unchanged");
    assert_eq!(stored(store, MANY + 1).await, None, "nothing of the batch was inserted");
}

/// `put_all` checks every record: with all versions current every record is written and every
/// copy moves on; with some stale, nothing is written, the copies are unchanged, and every stale
/// record is reported with its stored version.
pub async fn put_all_checks_every_record_and_reports_every_conflict<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut all = people(1..=MANY);
    store.insert_all(&mut all).await.expect("insert_all");
    for p in &mut all {
        p.salary += 1_000;
    }
    store.put_all(&mut all).await.expect("put_all");
    assert!(all.iter().all(|p| p.version == 2));
    assert_eq!(stored(store, 600).await, Some(all[599].clone()));

    // Two records change under the batch.
    for id in [10, 900] {
        let mut theirs = stored(store, id).await.expect("present");
        theirs.name = "theirs".into();
        store.put(&mut theirs).await.expect("their write");
    }
    for p in &mut all {
        p.salary += 1;
    }
    let before = all.clone();
    let err = store.put_all(&mut all).await.expect_err("two records are stale");
    assert_eq!(refused_keys(&err), [crate::Value::Int(10), crate::Value::Int(900)], "every conflict, not the first");
    assert!(err.is_conflict() && err.is_retryable());
    if let Error::Conflicts { conflicts, .. } = &err {
        assert!(conflicts.iter().all(|c| matches!(
            c,
            Error::ConcurrentModification { expected: 2, actual: Some(3), current: Some(_), .. }
        )));
    }
    assert_eq!(all, before, "the copies are unchanged");
    assert_eq!(stored(store, 11).await.map(|p| (p.salary, p.version)), Some((1_011, 2)), "nothing was written");

    // A deleted record is a conflict too, and a key may appear once.
    store.delete_unchecked::<Person>(&5).await.expect("delete");
    let err = store.put_all(&mut all[..20]).await.expect_err("stale and deleted");
    assert!(refused_keys(&err).contains(&crate::Value::Int(5)));
    let mut twice = vec![all[0].clone(), all[0].clone()];
    assert!(matches!(store.put_all(&mut twice).await, Err(Error::Encode { .. })), "a key twice in one batch");
}

/// `delete_all` deletes every record or none.
pub async fn delete_all_is_checked_and_all_or_nothing<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut all = people(1..=MANY);
    store.insert_all(&mut all).await.expect("insert_all");
    let mut moved_on = stored(store, 42).await.expect("present");
    store.put(&mut moved_on).await.expect("their write");
    let err = store.delete_all(&all).await.expect_err("42 is stale");
    assert_eq!(refused_keys(&err), [crate::Value::Int(42)]);
    assert!(stored(store, 1).await.is_some(), "nothing was deleted");
    all[41] = moved_on;
    store.delete_all(&all).await.expect("delete_all");
    assert_eq!(stored(store, MANY).await, None);
    assert_eq!(stored(store, 1).await, None);
}

/// Inside a transaction, a refused batch is undone alone (it runs in a savepoint): the rest of the
/// transaction goes on and commits.
pub async fn a_refused_batch_inside_a_transaction_is_undone_alone<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut first = people(1..=3);
    store.insert_all(&mut first).await.expect("insert_all");
    let committed = store
        .transaction(|tx| async move {
            let mut fresh = people(10..=12);
            tx.insert_all(&mut fresh).await?;
            let mut stale = first;
            stale[1].version = 7;
            let refused = tx.put_all(&mut stale).await;
            assert!(matches!(refused, Err(Error::Conflicts { .. })), "{refused:?}");
            assert_eq!(stale[0].version, 1, "the copies are unchanged");
            Ok(fresh)
        })
        .await
        .expect("the transaction commits");
    assert!(committed.iter().all(|p| p.version == 1));
    assert!(stored(store, 12).await.is_some());
    assert_eq!(stored(store, 1).await.map(|p| p.version), Some(1), "the refused batch wrote nothing");
}

/// Batches carry every field type as single writes do: `NULL`s, floats, bytes, JSON, text keys,
/// and the audit timestamps (kept `created_at`, new `updated_at`).
pub async fn batches_carry_every_field_type<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut records = everything().to_vec();
    store.insert_all(&mut records).await.expect("insert_all");
    records[0].nickname = None;
    records[1].meta = serde_json::json!({"now": 1});
    store.put_all(&mut records).await.expect("put_all");
    for r in &records {
        assert_eq!(store.get::<Everything>(&r.id).await.expect("get").as_ref(), Some(r));
    }

    let mut contacts = vec![Contact { id: 1, ..jo("amy") }, Contact { id: 2, ..jo("amy") }];
    store.insert_all(&mut contacts).await.expect("insert_all contacts");
    let created = contacts[0].created_at;
    assert!(created > SystemTime::UNIX_EPOCH, "stamped on insert");
    std::thread::sleep(std::time::Duration::from_millis(2));
    contacts[0].updated_by = "bo".into();
    store.put_all(&mut contacts).await.expect("put_all contacts");
    let stored = store.get::<Contact>(&1).await.expect("get").expect("present");
    assert_eq!(stored, contacts[0]);
    assert_eq!(stored.created_at, created, "created_at kept");
    assert!(stored.updated_at > created, "updated_at stamped");
    store.delete_all(&contacts).await.expect("delete_all contacts");
}
