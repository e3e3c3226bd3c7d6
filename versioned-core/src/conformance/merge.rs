//! Merging a refused put ([`Store::put_merging`]): disjoint edits of one record both land, a
//! field both sides changed is a collision that writes nothing, JSON documents merge key by key,
//! and the merged put is still checked (concurrent writers of separate fields lose nothing).

use std::collections::BTreeMap;

use crate::error::Error;
use crate::retry::RetryPolicy;
use crate::storage::Storage;
use crate::store::Store;

/// A contact card that several people edit at once (OutSystems' contacts).
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "merge_cards")]
pub struct Card {
    /// Key.
    #[key]
    pub id: i64,
    /// Name.
    pub name: String,
    /// Phone.
    pub phone: String,
    /// Free-form attributes.
    #[versioned(json)]
    pub attributes: BTreeMap<String, String>,
    /// Version.
    #[version]
    pub version: u64,
}

async fn amy<S: Storage>(store: &Store<S>) -> Card {
    store.create_table::<Card>().await.expect("create_table");
    let attributes = BTreeMap::from([("city".to_owned(), "Oslo".to_owned()), ("team".to_owned(), "red".to_owned())]);
    let mut amy = Card { id: 1, name: "Amy".into(), phone: "555-0100".into(), attributes, version: 0 };
    store.insert(&mut amy).await.expect("insert");
    amy
}

/// OutSystems' two editors of one contact: Amy changes the phone while Lawrence fixes a typo in
/// the name. Both changes land, the second by a merge checked against the version it merged
/// with; JSON attributes merge key by key.
pub async fn put_merging_merges_edits_of_different_fields<S: Storage>(store: &Store<S>) {
    let base = amy(store).await;
    let mut lawrence = base.clone();
    lawrence.name = "Amy Lee".into();
    lawrence.attributes.insert("team".into(), "blue".into());
    store.put(&mut lawrence).await.expect("Lawrence saves first");
    let mut mine = base.clone();
    mine.phone = "555-0199".into();
    mine.attributes.insert("city".into(), "Bergen".into());
    let outcome = store.put_merging(&base, &mut mine).await.expect("merged");
    assert_eq!(outcome.merged_with, [2]);
    assert_eq!(outcome.theirs, ["name", "attributes"]);
    let stored = store.get::<Card>(&1).await.expect("get").expect("stored");
    assert_eq!(stored, mine, "the copy is the record written");
    assert_eq!((stored.name.as_str(), stored.phone.as_str(), stored.version), ("Amy Lee", "555-0199", 3));
    assert_eq!(stored.attributes["city"], "Bergen");
    assert_eq!(stored.attributes["team"], "blue");
    // Without a conflict it is a plain checked put.
    let base = stored.clone();
    mine.name = "Amy L.".into();
    let outcome = store.put_merging(&base, &mut mine).await.expect("put");
    assert!(outcome.merged_with.is_empty());
    assert_eq!(mine.version, 4);
}

/// A field both changed, to different values, is a collision: nothing is written, and the error
/// holds the base, your and the stored value of each colliding field (a JSON attribute by its
/// pointer).
pub async fn put_merging_refuses_fields_both_changed<S: Storage>(store: &Store<S>) {
    let base = amy(store).await;
    let mut theirs = base.clone();
    theirs.phone = "555-0101".into();
    theirs.attributes.insert("city".into(), "Paris".into());
    store.put(&mut theirs).await.expect("theirs");
    let mut mine = base.clone();
    mine.phone = "555-0199".into();
    mine.name = "Amy Lee".into();
    mine.attributes.insert("city".into(), "Rome".into());
    match store.put_merging(&base, &mut mine).await {
        Err(err @ Error::Collisions { .. }) => {
            assert!(err.is_conflict());
            assert_eq!(err.current::<Card>().expect("a record").expect("decodes"), theirs);
            let Error::Collisions { version, collisions, .. } = err else { unreachable!() };
            assert_eq!(version, 2);
            let fields: Vec<_> = collisions.iter().map(|c| (c.field, c.paths.clone())).collect();
            assert_eq!(fields, [("phone", vec![]), ("attributes", vec!["/city".to_owned()])]);
            assert_eq!(collisions[0].mine, crate::Value::Text("555-0199".into()));
            assert_eq!(collisions[0].theirs, crate::Value::Text("555-0101".into()));
            assert_eq!(collisions[0].base, crate::Value::Text("555-0100".into()));
        }
        other => panic!("expected Collisions, got {other:?}"),
    }
    assert_eq!(mine.version, 1, "your copy is unchanged");
    assert_eq!(store.get::<Card>(&1).await.expect("get"), Some(theirs), "nothing written");
    // A record deleted since is the put's conflict.
    let gone = store.get::<Card>(&1).await.expect("get").expect("stored");
    store.delete(&gone).await.expect("delete");
    let refused = store.put_merging(&base, &mut mine).await;
    assert!(matches!(refused, Err(Error::ConcurrentModification { actual: None, .. })), "{refused:?}");
}

/// Four writers, each editing its own attribute of one record 15 times from a fresh read, all at
/// once: every merged put is checked against the version it merged with, so no edit is lost —
/// each attribute ends at exactly 15, and the version at 1 + 60.
pub async fn put_merging_under_contention_loses_no_edit<S: Storage + Clone>(store: &Store<S>) {
    amy(store).await;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("w{w}");
                for _ in 0..15 {
                    let mut attempts = RetryPolicy::attempts(1000).start("merge test");
                    loop {
                        let base = store.get::<Card>(&1).await?.expect("stored");
                        let mut mine = base.clone();
                        let count: i64 = mine.attributes.get(&key).map_or(0, |n| n.parse().expect("a count"));
                        mine.attributes.insert(key.clone(), (count + 1).to_string());
                        match store.put_merging(&base, &mut mine).await {
                            Ok(_) => break,
                            // Merged ten times and refused each time (etcd under load): from a
                            // fresh read again.
                            Err(Error::RetriesExhausted { last, .. }) => attempts.failed(*last).await?,
                            Err(err) if err.is_retryable() => attempts.failed(err).await?,
                            Err(err) => return Err(err),
                        }
                    }
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("task").expect("writer");
    }
    let stored = store.get::<Card>(&1).await.expect("get").expect("stored");
    for w in 0..4 {
        assert_eq!(stored.attributes[&format!("w{w}")], "15", "{stored:?}");
    }
    assert_eq!(stored.version, 61);
}
