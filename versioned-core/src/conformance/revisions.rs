//! Version history (`#[versioned(history)]`, [`Store::history`], [`Store::revision`]): every kind
//! of write keeps the record as written at its version, a deletion keeps the history and adds a
//! tombstone, a refused or rolled-back write keeps nothing, and the retention drops what it says.

use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::patch::Check;
use crate::storage::Storage;
use crate::store::Store;

/// An issue whose every version is kept.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "history_tickets", history)]
pub struct Issue {
    /// Key.
    #[key]
    pub id: i64,
    /// Title.
    pub title: String,
    /// Status.
    #[versioned(index)]
    pub status: String,
    /// Who wrote this version.
    #[versioned(updated_by)]
    pub editor: String,
    /// When.
    #[versioned(updated_at)]
    pub updated: SystemTime,
    /// Version.
    #[version]
    pub version: u64,
}

/// An issue whose last three versions are kept.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "history_recent", history(keep_versions = 3))]
pub struct Recent {
    /// Key.
    #[key]
    pub id: i64,
    /// Counter.
    pub n: i64,
    /// Version.
    #[version]
    pub version: u64,
}

/// An issue whose versions are kept one second.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "history_brief", history(keep_seconds = 1))]
pub struct Brief {
    /// Key.
    #[key]
    pub id: i64,
    /// Counter.
    pub n: i64,
    /// Version.
    #[version]
    pub version: u64,
}

fn issue(id: i64, title: &str, editor: &str) -> Issue {
    Issue {
        id,
        title: title.into(),
        status: "open".into(),
        editor: editor.into(),
        updated: SystemTime::UNIX_EPOCH,
        version: 0,
    }
}

/// `(version, title, status, editor, deleted)` of each entry of issue `id`'s history.
async fn entries<S: Storage>(store: &Store<S>, id: i64) -> Vec<(u64, String, String, String, bool)> {
    let history = store.history::<Issue>(&id).await.expect("history");
    for revision in &history {
        assert_eq!(revision.version, revision.record.version, "an entry's version is its record's");
        assert!(revision.recorded_at > SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000), "recorded now");
    }
    history.into_iter().map(|r| (r.version, r.record.title, r.record.status, r.record.editor, r.deleted)).collect()
}

fn entry(version: u64, title: &str, status: &str, editor: &str, deleted: bool) -> (u64, String, String, String, bool) {
    (version, title.into(), status.into(), editor.into(), deleted)
}

/// Every kind of write keeps the record as written, at its version, with its audit fields: insert,
/// put, patch, touch, put_unchecked, save, patch_where, a batch, two writes in one transaction, and
/// the deletion (a tombstone at the next version). The history outlives the record.
pub async fn history_keeps_every_write_of_a_record<S: Storage>(store: &Store<S>) {
    store.create_table::<Issue>().await.expect("create_table");
    let mut t = issue(1, "Crash on save", "amy");
    store.insert(&mut t).await.expect("insert");
    t.title = "Crash on save (Windows)".into();
    t.editor = "lawrence".into();
    store.put(&mut t).await.expect("put");
    let patched =
        store.patch::<Issue>(&1, IssuePatch::default().status("triaged"), Check::Version(2)).await.expect("patch");
    let mut t = patched;
    store.touch(&mut t).await.expect("touch");
    let mut forced = issue(1, "Crash on save", "admin");
    store.put_unchecked(&mut forced).await.expect("put_unchecked");
    assert_eq!(forced.version, 5);
    forced.status = "fixed".into();
    store.save(&mut forced).await.expect("save");
    let changed =
        store.patch_where(Issue::STATUS.eq("fixed"), IssuePatch::default().status("closed")).await.expect("where");
    assert_eq!(changed, 1);
    let mut batch = [store.get::<Issue>(&1).await.expect("get").expect("stored")];
    batch[0].editor = "batch".into();
    store.put_all(&mut batch).await.expect("put_all");
    let mut copy = batch[0].clone();
    store
        .transaction(|tx| async move {
            copy.title = "first".into();
            tx.put(&mut copy).await?;
            copy.title = "second".into();
            tx.put(&mut copy).await
        })
        .await
        .expect("transaction");

    let before_delete = vec![
        entry(1, "Crash on save", "open", "amy", false),
        entry(2, "Crash on save (Windows)", "open", "lawrence", false),
        entry(3, "Crash on save (Windows)", "triaged", "lawrence", false),
        entry(4, "Crash on save (Windows)", "triaged", "lawrence", false),
        entry(5, "Crash on save", "open", "admin", false),
        entry(6, "Crash on save", "fixed", "admin", false),
        entry(7, "Crash on save", "closed", "admin", false),
        entry(8, "Crash on save", "closed", "batch", false),
        entry(9, "first", "closed", "batch", false),
        entry(10, "second", "closed", "batch", false),
    ];
    assert_eq!(entries(store, 1).await, before_delete);

    store.delete_with_version::<Issue>(&1, 10).await.expect("delete");
    assert_eq!(store.get::<Issue>(&1).await.expect("get"), None);
    let mut after = before_delete;
    after.push(entry(10, "second", "closed", "batch", true));
    assert_eq!(entries(store, 1).await, after, "the deletion is a tombstone at its last version; the history stays");
    let last = store.revision::<Issue>(&1, 10).await.expect("revision").expect("kept");
    assert!(!last.deleted, "a version's record as written, not its deletion");

    // One version, as written then, audit fields included.
    let second = store.revision::<Issue>(&1, 2).await.expect("revision").expect("kept");
    assert_eq!((second.record.title.as_str(), second.record.editor.as_str()), ("Crash on save (Windows)", "lawrence"));
    assert!(second.record.updated > SystemTime::UNIX_EPOCH, "its updated_at as stamped");
    assert!(!second.deleted);
    assert_eq!(store.revision::<Issue>(&1, 11).await.expect("revision"), None);
    assert!(store.history::<Issue>(&2).await.expect("history").is_empty(), "a key never written has none");
}

/// A write refused by its check, a refused insert and a transaction rolled back keep nothing;
/// another record's history is its own.
pub async fn a_refused_write_keeps_no_history<S: Storage>(store: &Store<S>) {
    store.create_table::<Issue>().await.expect("create_table");
    let mut t = issue(1, "Slow search", "amy");
    store.insert(&mut t).await.expect("insert");
    let mut stale = t.clone();
    t.title = "Slow search on mobile".into();
    store.put(&mut t).await.expect("put");
    stale.title = "stale".into();
    assert!(matches!(store.put(&mut stale).await, Err(Error::ConcurrentModification { .. })));
    assert!(matches!(store.insert(&mut issue(1, "again", "bob")).await, Err(Error::AlreadyExists { .. })));
    let mut copy = t.clone();
    let rolled_back = store
        .transaction(|tx| async move {
            copy.title = "never".into();
            tx.put(&mut copy).await?;
            Err::<(), _>(Error::config("changed my mind"))
        })
        .await;
    assert!(rolled_back.is_err());
    let mut other = issue(2, "Typo", "bob");
    store.insert(&mut other).await.expect("insert other");
    assert_eq!(
        entries(store, 1).await,
        [entry(1, "Slow search", "open", "amy", false), entry(2, "Slow search on mobile", "open", "amy", false)]
    );
    assert_eq!(entries(store, 2).await, [entry(1, "Typo", "open", "bob", false)]);
}

/// A record deleted and inserted again in one transaction: its deletion and its new life follow
/// its old one, in the order written, and the retention applies write by write (the new life's
/// version 1 is not dropped by the old life's higher versions).
pub async fn a_record_deleted_and_inserted_again_continues_its_history<S: Storage>(store: &Store<S>) {
    store.create_table::<Recent>().await.expect("create_table");
    let mut r = Recent { id: 1, n: 0, version: 0 };
    store.insert(&mut r).await.expect("insert");
    for n in 1..6 {
        r.n = n;
        store.put(&mut r).await.expect("put");
    }
    let old = r.clone();
    store
        .transaction(|tx| async move {
            tx.delete(&old).await?;
            let mut again = Recent { id: 1, n: 100, version: 0 };
            tx.insert(&mut again).await?;
            again.n = 101;
            tx.put(&mut again).await
        })
        .await
        .expect("transaction");
    let kept: Vec<(u64, i64, bool)> = store
        .history::<Recent>(&1)
        .await
        .expect("history")
        .into_iter()
        .map(|r| (r.version, r.record.n, r.deleted))
        .collect();
    assert_eq!(kept, [(4, 3, false), (5, 4, false), (6, 5, false), (6, 5, true), (1, 100, false), (2, 101, false)]);
    let revision = store.revision::<Recent>(&1, 2).await.expect("revision").expect("kept");
    assert_eq!(revision.record.n, 101, "a version's latest life");
}

/// `keep_versions = 3` keeps the versions within three of the newest; `keep_seconds = 1` drops an
/// entry once a write comes more than a second after it. Each record keeps its own.
pub async fn history_keeps_what_its_retention_says<S: Storage>(store: &Store<S>) {
    store.create_table::<Recent>().await.expect("create_table");
    let mut r = Recent { id: 1, n: 0, version: 0 };
    store.insert(&mut r).await.expect("insert");
    for n in 1..6 {
        r.n = n;
        store.put(&mut r).await.expect("put");
    }
    let mut other = Recent { id: 2, n: 0, version: 0 };
    store.insert(&mut other).await.expect("insert other");
    let kept: Vec<(u64, i64)> =
        store.history::<Recent>(&1).await.expect("history").into_iter().map(|r| (r.version, r.record.n)).collect();
    assert_eq!(kept, [(4, 3), (5, 4), (6, 5)]);
    assert_eq!(store.history::<Recent>(&2).await.expect("history").len(), 1);
    assert_eq!(store.revision::<Recent>(&1, 3).await.expect("revision"), None, "dropped");

    store.create_table::<Brief>().await.expect("create_table");
    let mut b = Brief { id: 1, n: 0, version: 0 };
    store.insert(&mut b).await.expect("insert");
    b.n = 1;
    store.put(&mut b).await.expect("put");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    b.n = 2;
    store.put(&mut b).await.expect("put");
    let kept: Vec<u64> = store.history::<Brief>(&1).await.expect("history").into_iter().map(|r| r.version).collect();
    assert_eq!(kept, [3], "the entries older than a second went with the write after them");
}

/// A copy at an old version merges against that version's record from the history: an edit of
/// other fields is merged and written, an edit of a field changed since is `Collisions` writing
/// nothing, and a version the retention dropped is a plain checked put (a conflict).
pub async fn put_merging_from_history_takes_the_base_from_the_history<S: Storage>(store: &Store<S>) {
    store.create_table::<Issue>().await.expect("create_table");
    let mut first = issue(1, "Login fails", "amy");
    store.insert(&mut first).await.expect("insert");
    // Bob triages it; Amy, who read version 1, retitles it: merged, Bob's status kept.
    store
        .patch::<Issue>(&1, IssuePatch::default().status("triaged").editor("bob"), Check::Version(1))
        .await
        .expect("bob");
    let mut amy = Issue { title: "Login fails on Safari".into(), ..first.clone() };
    let outcome = store.put_merging_from_history(&mut amy).await.expect("merged");
    assert_eq!(outcome.merged_with, [2]);
    let stored = store.get::<Issue>(&1).await.expect("get").expect("stored");
    assert_eq!(
        (stored.title.as_str(), stored.status.as_str(), stored.version),
        ("Login fails on Safari", "triaged", 3)
    );
    // Carol, who also read version 1, changes the title too: a collision, nothing written.
    let mut carol = Issue { title: "Login broken".into(), ..first.clone() };
    match store.put_merging_from_history(&mut carol).await {
        Err(Error::Collisions { collisions, version, .. }) => {
            assert_eq!(version, 3);
            let fields: Vec<_> = collisions.iter().map(|c| c.field).collect();
            assert_eq!(fields, ["title"], "exactly the field both changed");
        }
        other => panic!("expected collisions, got {other:?}"),
    }
    assert_eq!(store.get::<Issue>(&1).await.expect("get").expect("stored").version, 3);

    store.create_table::<Recent>().await.expect("create_table");
    let mut r = Recent { id: 1, n: 0, version: 0 };
    store.insert(&mut r).await.expect("insert");
    let old = r.clone();
    for n in 1..5 {
        r.n = n;
        store.put(&mut r).await.expect("put");
    }
    let mut stale = Recent { n: 100, ..old };
    assert!(matches!(
        store.put_merging_from_history(&mut stale).await,
        Err(Error::ConcurrentModification { expected: 1, actual: Some(5), .. })
    ));
}

/// A patch sent with the version it was made against merges like a put: a field nobody else
/// changed is patched over others' changes; a field both changed is `Collisions`; a version the
/// history no longer holds is a plain checked patch (a conflict).
pub async fn patch_merging_from_history_merges_a_stale_patch<S: Storage>(store: &Store<S>) {
    store.create_table::<Issue>().await.expect("create_table");
    let mut first = issue(1, "Export is slow", "amy");
    store.insert(&mut first).await.expect("insert");
    let mut bob = Issue { title: "Export is slow for large files".into(), editor: "bob".into(), ..first.clone() };
    store.put(&mut bob).await.expect("bob");
    // Carol's page, at version 1, sends only the status.
    let patch = IssuePatch::default().status("triaged").editor("carol");
    let (written, outcome) = store.patch_merging_from_history::<Issue>(&1, patch, 1).await.expect("merged");
    assert_eq!(outcome.merged_with, [2]);
    assert_eq!(
        (written.title.as_str(), written.status.as_str(), written.editor.as_str(), written.version),
        ("Export is slow for large files", "triaged", "carol", 3)
    );
    assert_eq!(store.get::<Issue>(&1).await.expect("get").expect("stored"), written);
    // Dave, also at version 1, retitles: Bob retitled it too.
    let patch = IssuePatch::default().title("Export hangs");
    match store.patch_merging_from_history::<Issue>(&1, patch, 1).await {
        Err(Error::Collisions { collisions, .. }) => assert_eq!(collisions[0].field, "title"),
        other => panic!("expected collisions, got {other:?}"),
    }
    assert_eq!(store.get::<Issue>(&1).await.expect("get").expect("stored").version, 3);
    // A version never written is the plain patch's conflict.
    let stale = store.patch_merging_from_history::<Issue>(&1, IssuePatch::default().status("x"), 9).await;
    assert!(matches!(stale, Err(Error::ConcurrentModification { expected: 9, actual: Some(3), .. })));
}

/// The history of a table keeps up with its struct: after a field is added (the record table
/// altered by the user, `create_table` run again), the history table gains the column and the
/// triggers record it. An update by your own SQL that moves the version is a version of the
/// history; one that does not is not.
pub async fn the_history_follows_the_struct_and_your_own_sql<F: crate::conformance::sql::SqlFixture>(db: &F) {
    let store = db.store();
    store.create_table::<Narrow>().await.expect("create_table");
    let mut n = Narrow { id: 1, name: "Ann".into(), version: 0 };
    store.insert(&mut n).await.expect("insert");
    let q = db.dialect().quote;
    // Declared as the dialect declares a `String` (`name`'s type).
    let text = db.dialect().columns.iter().find(|(column, _)| *column == "name").map_or("TEXT", |(_, ty)| ty);
    db.exec(&format!("ALTER TABLE {q}evolving{q} ADD COLUMN {q}phone{q} {text}")).await;
    store.create_table::<Wide>().await.expect("create_table again, with the new field");
    let mut w = store.get::<Wide>(&1).await.expect("get").expect("stored");
    w.phone = Some("555-0100".into());
    store.put(&mut w).await.expect("put");
    db.exec(&format!(
        "UPDATE {q}evolving{q} SET {q}name{q} = 'Ann B.', {q}version{q} = {q}version{q} + 1 WHERE {q}id{q} = 1"
    ))
    .await;
    db.exec(&format!("UPDATE {q}evolving{q} SET {q}name{q} = 'not a version' WHERE {q}id{q} = 1")).await;
    let history: Vec<(u64, String, Option<String>)> = store
        .history::<Wide>(&1)
        .await
        .expect("history")
        .into_iter()
        .map(|r| (r.version, r.record.name, r.record.phone))
        .collect();
    assert_eq!(
        history,
        [
            (1, "Ann".to_owned(), None),
            (2, "Ann".to_owned(), Some("555-0100".to_owned())),
            (3, "Ann B.".to_owned(), Some("555-0100".to_owned())),
        ]
    );
}

/// A narrow struct of the table `the_history_follows_the_struct_and_your_own_sql` alters.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "evolving", history)]
pub struct Narrow {
    /// Key.
    #[key]
    pub id: i64,
    /// Name.
    pub name: String,
    /// Version.
    #[version]
    pub version: u64,
}

/// [`Narrow`] with a field added.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "evolving", history)]
pub struct Wide {
    /// Key.
    #[key]
    pub id: i64,
    /// Name.
    pub name: String,
    /// Phone, added later.
    pub phone: Option<String>,
    /// Version.
    #[version]
    pub version: u64,
}
