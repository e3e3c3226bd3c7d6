//! Several structs on one table: a wider one, a narrower projection and one with the columns in
//! another order, each reading and writing its own columns, whichever is used first; and a struct
//! with a column the table lacks, refused before anything is written.

use crate::entity::Entity;
use crate::error::Error;
use crate::patch::Check;
use crate::storage::Storage;
use crate::store::Store;

/// The structs of one table, declared for each order of first use (statements and schema checks
/// are kept per struct, so each order starts from a store that has seen neither).
macro_rules! mapping_structs {
    ($module:ident, $table:literal) => {
        /// The structs of table
        #[doc = $table]
        pub mod $module {
            /// The widest: every column of the table (`create_table` makes it from this one).
            #[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
            #[versioned(crate = crate, table = $table)]
            pub struct Wide {
                /// Key.
                #[key]
                pub id: i64,
                /// Title.
                pub title: String,
                /// Status.
                pub status: String,
                /// Votes, which the narrower structs do not know.
                pub votes: Option<i64>,
                /// A note, which the narrower structs do not know.
                pub note: Option<String>,
                /// Version.
                #[version]
                pub version: u64,
            }

            /// A narrower projection.
            #[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
            #[versioned(crate = crate, table = $table)]
            pub struct Narrow {
                /// Key.
                #[key]
                pub id: i64,
                /// Title.
                pub title: String,
                /// Status.
                pub status: String,
                /// Version.
                #[version]
                pub version: u64,
            }

            /// The columns of `Wide`, in another order.
            #[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
            #[versioned(crate = crate, table = $table)]
            pub struct Reordered {
                /// Version.
                #[version]
                pub version: u64,
                /// A note.
                pub note: Option<String>,
                /// Status.
                pub status: String,
                /// Votes.
                pub votes: Option<i64>,
                /// Key.
                #[key]
                pub id: i64,
                /// Title.
                pub title: String,
            }

            /// `Narrow` with an `Option` title, over the table's `NOT NULL` column.
            #[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
            #[versioned(crate = crate, table = $table)]
            pub struct Loose {
                /// Key.
                #[key]
                pub id: i64,
                /// Title, optional here only.
                pub title: Option<String>,
                /// Status.
                pub status: String,
                /// Version.
                #[version]
                pub version: u64,
            }

            /// A column the table does not have.
            #[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
            #[versioned(crate = crate, table = $table)]
            pub struct Unknown {
                /// Key.
                #[key]
                pub id: i64,
                /// Title.
                pub title: String,
                /// Not a column of the table.
                pub priority: i64,
                /// Version.
                #[version]
                pub version: u64,
            }
        }
    };
}

mapping_structs!(narrow_first, "mapped_a");
mapping_structs!(wide_first, "mapped_b");

/// Whether `err` is the refusal of a backend that keeps one column layout per table (etcd, whose
/// records are stored by column position): the struct's first operation is refused, naming a
/// column, before anything is read or written.
fn one_layout_per_table(err: &Error) -> bool {
    matches!(err, Error::Decode { reason, .. } if reason.contains("in the column layout it was created with"))
}

/// A narrower struct, then a wider and a reordered one on the same table: each reads its own
/// columns; a write through the narrower one keeps the columns it does not have; a stale copy of
/// any of them conflicts with a write through any other.
pub async fn a_narrower_struct_used_first_keeps_the_columns_it_lacks<S: Storage>(store: &Store<S>) {
    use narrow_first::{Narrow, Reordered, Wide};
    store.create_table::<Wide>().await.expect("create the wide table");
    let mut narrow = Narrow { id: 1, title: "Crash".into(), status: "open".into(), version: 0 };
    match store.insert(&mut narrow).await {
        Err(err) if one_layout_per_table(&err) => {
            assert_eq!(store.get::<Wide>(&1).await.expect("get"), None, "refused before anything was written");
            return;
        }
        inserted => inserted.expect("insert through the narrower struct"),
    }
    assert_eq!(
        store.get::<Wide>(&1).await.expect("get wide"),
        Some(Wide { id: 1, title: "Crash".into(), status: "open".into(), votes: None, note: None, version: 1 }),
        "the columns the narrower struct lacks are empty in a record it created"
    );
    let mut wide = store.get::<Wide>(&1).await.expect("get").expect("record");
    wide.votes = Some(3);
    wide.note = Some("seen twice".into());
    store.put(&mut wide).await.expect("put wide");
    let mut narrow = store.get::<Narrow>(&1).await.expect("get narrow").expect("record");
    assert_eq!(narrow, Narrow { id: 1, title: "Crash".into(), status: "open".into(), version: 2 });
    narrow.status = "closed".into();
    store.put(&mut narrow).await.expect("put narrow");
    let stored = store.get::<Wide>(&1).await.expect("get").expect("record");
    assert_eq!(
        (stored.status.as_str(), stored.votes, stored.note.as_deref(), stored.version),
        ("closed", Some(3), Some("seen twice"), 3),
        "a write through the narrower struct keeps the columns it does not have"
    );
    let reordered = store.get::<Reordered>(&1).await.expect("get reordered").expect("record");
    assert_eq!(
        reordered,
        Reordered {
            version: 3,
            note: Some("seen twice".into()),
            status: "closed".into(),
            votes: Some(3),
            id: 1,
            title: "Crash".into()
        }
    );
    let err = store.put(&mut wide).await.expect_err("the wide copy is stale");
    assert!(matches!(err, Error::ConcurrentModification { expected: 2, actual: Some(3), .. }), "{err:?}");
    let theirs: Wide = err.current().expect("the stored record").expect("decodes as the wide struct");
    assert_eq!(theirs.status, "closed");
    let mut forced = Narrow { id: 1, title: "Crash!".into(), status: "reopened".into(), version: 0 };
    store.put_unchecked(&mut forced).await.expect("forced through the narrower struct");
    let stored = store.get::<Wide>(&1).await.expect("get").expect("record");
    assert_eq!((stored.title.as_str(), stored.votes, stored.version), ("Crash!", Some(3), 4));
    // In a transaction: each struct sees the transaction's own writes through the others.
    let reordered = store
        .transaction(|tx| async move {
            let mut narrow = tx.get::<Narrow>(&1).await?.expect("record");
            narrow.status = "in a transaction".into();
            tx.put(&mut narrow).await?;
            let seen = tx.get::<Wide>(&1).await?.expect("record");
            assert_eq!((seen.status.as_str(), seen.votes, seen.version), ("in a transaction", Some(3), 5));
            Ok(tx.get::<Reordered>(&1).await?.expect("record"))
        })
        .await
        .expect("a transaction through three structs");
    assert_eq!((reordered.status.as_str(), reordered.note.as_deref()), ("in a transaction", Some("seen twice")));
    let snapshot = store
        .read_transaction(|tx| async move { tx.get::<Narrow>(&1).await })
        .await
        .expect("a read-only transaction")
        .expect("record");
    assert_eq!((snapshot.status.as_str(), snapshot.version), ("in a transaction", 5));
    mappings_tail::<S, Narrow, Reordered, Wide>(store).await;
}

/// A wider struct, then a narrower and a reordered one: the same rules in the other order of
/// first use.
pub async fn a_wider_struct_used_first_leaves_a_narrower_one_its_columns<S: Storage>(store: &Store<S>) {
    use wide_first::{Narrow, Reordered, Wide};
    store.create_table::<Wide>().await.expect("create");
    let mut wide = Wide {
        id: 1,
        title: "Crash".into(),
        status: "open".into(),
        votes: Some(1),
        note: Some("first".into()),
        version: 0,
    };
    store.insert(&mut wide).await.expect("insert wide");
    let mut reordered = match store.get::<Reordered>(&1).await {
        Err(err) if one_layout_per_table(&err) => return,
        found => found.expect("get reordered").expect("record"),
    };
    assert_eq!((reordered.title.as_str(), reordered.votes, reordered.version), ("Crash", Some(1), 1));
    reordered.votes = Some(2);
    store.put(&mut reordered).await.expect("put reordered");
    let mut narrow = store.get::<Narrow>(&1).await.expect("get narrow").expect("record");
    assert_eq!(narrow, Narrow { id: 1, title: "Crash".into(), status: "open".into(), version: 2 });
    narrow.title = "Crash on start".into();
    store.put(&mut narrow).await.expect("put narrow");
    let stored = store.get::<Wide>(&1).await.expect("get").expect("record");
    assert_eq!(
        stored,
        Wide {
            id: 1,
            title: "Crash on start".into(),
            status: "open".into(),
            votes: Some(2),
            note: Some("first".into()),
            version: 3
        }
    );
    let err = store.put(&mut reordered).await.expect_err("the reordered copy is stale");
    let theirs: Reordered = err.current().expect("the stored record").expect("decodes as the reordered struct");
    assert_eq!((theirs.title.as_str(), theirs.version), ("Crash on start", 3));
    mappings_tail::<S, Narrow, Reordered, Wide>(store).await;
}

/// What both orders check once the structs have met: patches and batches through the narrower
/// struct, and the struct with a column the table lacks.
async fn mappings_tail<S: Storage, N, R, W>(store: &Store<S>)
where
    N: MappingNarrow,
    W: Entity<Key = i64>,
    R: Entity<Key = i64>,
{
    let before = store.get::<W>(&1).await.expect("get").expect("record");
    let version = store.get::<N::Entity>(&1).await.expect("get").expect("record").version();
    let patched = store
        .patch::<N::Entity>(&1, N::status_patch("triaged"), Check::Version(version))
        .await
        .expect("patch through the narrower struct");
    assert_eq!(N::status(&patched), "triaged");
    let mut copies = vec![store.get::<N::Entity>(&1).await.expect("get").expect("record")];
    let mut second = N::new(2, "Slow");
    store.insert(&mut second).await.expect("insert a second record");
    copies.push(second);
    store.put_all(&mut copies).await.expect("a batch through the narrower struct");
    let after = store.get::<W>(&1).await.expect("get").expect("record");
    let (before, after) = (before.to_row().expect("row"), after.to_row().expect("row"));
    for (index, column) in W::TABLE.columns.iter().enumerate() {
        if N::Entity::TABLE.columns.iter().all(|c| c.name != column.name) {
            assert_eq!(before.get(index), after.get(index), "{} is kept by the narrower struct's writes", column.name);
        }
    }
    let made = store.get::<R>(&2).await.expect("the reordered struct reads a record the narrower one made");
    assert!(made.is_some());
    N::unknown_is_refused(store).await;
}

/// What [`mappings_tail`] needs of a module's structs.
trait MappingNarrow: Sized {
    type Entity: Entity<Key = i64> + Clone;
    fn new(id: i64, title: &str) -> Self::Entity;
    fn status(record: &Self::Entity) -> &str;
    fn status_patch(status: &str) -> <Self::Entity as Entity>::Patch;
    async fn unknown_is_refused<S: Storage>(store: &Store<S>);
}

/// The struct with a column the table lacks is refused naming it, and writes nothing.
async fn refuse_unknown<S: Storage, U: Entity<Key = i64> + std::fmt::Debug>(store: &Store<S>, mut unknown: U) {
    let refused = |err: &Error| matches!(err, Error::Decode { column: "priority", .. });
    let err = store.insert(&mut unknown).await.expect_err("a column the table lacks");
    assert!(refused(&err), "{err:?}");
    let err = store.get::<U>(&1).await.expect_err("a column the table lacks");
    assert!(refused(&err), "{err:?}");
}

macro_rules! mapping_narrow {
    ($module:ident) => {
        impl MappingNarrow for $module::Narrow {
            type Entity = $module::Narrow;
            fn new(id: i64, title: &str) -> Self {
                $module::Narrow { id, title: title.into(), status: "new".into(), version: 0 }
            }
            fn status(record: &Self) -> &str {
                &record.status
            }
            fn status_patch(status: &str) -> $module::NarrowPatch {
                $module::NarrowPatch::default().status(status)
            }
            async fn unknown_is_refused<S: Storage>(store: &Store<S>) {
                let unknown = $module::Unknown { id: 99, title: "?".into(), priority: 1, version: 0 };
                refuse_unknown(store, unknown).await;
                let missing = store.get::<$module::Wide>(&99).await.expect("get");
                assert_eq!(missing, None, "nothing was written");
                // NULL into a column the table's own struct requires: refused, the record readable.
                let before = store.get::<$module::Wide>(&1).await.expect("get").expect("record");
                let mut loose = store.get::<$module::Loose>(&1).await.expect("get").expect("record");
                loose.title = None;
                store.put(&mut loose).await.expect_err("a NULL the table's struct cannot read");
                let after = store.get::<$module::Wide>(&1).await.expect("still readable").expect("record");
                assert_eq!(after, before, "nothing was written");
            }
        }
    };
}

mapping_narrow!(narrow_first);
mapping_narrow!(wide_first);
