//! Queries: filters, orders, limits, keyset pages, streams, counts and `get_many`, each checked
//! against the same question answered by Rust itself over the records inserted (`Vec` filters and
//! `Ord`), so that every backend gives Rust's answer in Rust's order.

use std::cmp::Ordering;

use futures_util::TryStreamExt as _;

use super::fixtures::Xorshift;
use crate::error::Error;
use crate::query::{Cursor, Filter, MAX_QUERY_VALUES};
use crate::storage::Storage;
use crate::store::Store;

/// A ticket of a bug tracker: text that sorts differently by code point and by language rules, an
/// optional assignee, a priority, a flag.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "tickets")]
pub struct Ticket {
    /// Key.
    #[key]
    pub id: i64,
    /// Title.
    pub title: String,
    /// Who works on it, if anyone (indexed: the etcd backend answers an equality through it).
    #[versioned(index)]
    pub assignee: Option<String>,
    /// Priority: 1 (highest) to 4.
    #[versioned(index)]
    pub priority: i32,
    /// Whether it is still open.
    pub open: bool,
    /// Version.
    #[version]
    pub version: u64,
}

/// Titles and assignees whose order by code point differs from a language's, with case, accents,
/// spaces and the characters `LIKE` treats specially.
const WORDS: [&str; 12] = ["apple", "Apple", "b", "B", "äpple", "apple ", "a%b", "a_b", "", "zz", "Zebra", "ab"];

/// The bugs of the tests: `n` of them, from a seeded generator.
fn bugs(n: i64) -> Vec<Ticket> {
    let mut random = Xorshift(0x2545_F491_4F6C_DD1D);
    (1..=n)
        .map(|id| {
            let pick = |r: &mut Xorshift| WORDS[r.below(WORDS.len() as u64) as usize].to_owned();
            let title = pick(&mut random);
            let assignee = if random.below(4) == 0 { None } else { Some(pick(&mut random)) };
            Ticket { id, title, assignee, priority: 1 + random.below(4) as i32, open: random.below(3) > 0, version: 0 }
        })
        .collect()
}

async fn stored_tickets<S: Storage>(store: &Store<S>, n: i64) -> Vec<Ticket> {
    store.create_table::<Ticket>().await.expect("create tickets");
    let mut all = bugs(n);
    store.insert_all(&mut all).await.expect("insert tickets");
    all
}

fn ids(bugs: &[Ticket]) -> Vec<i64> {
    bugs.iter().map(|b| b.id).collect()
}

/// Rust's answer: the bugs meeting `keep`, sorted by `by` then by id, at most `limit`.
fn expected(
    all: &[Ticket],
    keep: impl Fn(&Ticket) -> bool,
    by: impl Fn(&Ticket, &Ticket) -> Ordering,
    limit: usize,
) -> Vec<i64> {
    let mut kept: Vec<&Ticket> = all.iter().filter(|b| keep(b)).collect();
    kept.sort_by(|a, b| by(a, b).then(a.id.cmp(&b.id)));
    kept.into_iter().take(limit).map(|b| b.id).collect()
}

/// Filters of every kind, alone and combined, ordered by text, an `Option` and a number in both
/// directions: the records and their order are Rust's on every backend (text by code point,
/// case-sensitive; `None` before every value; a comparison's `None` as Rust's `Option` orders it).
pub async fn queries_return_what_rust_returns_in_rust_order<S: Storage>(store: &Store<S>) {
    let all = stored_tickets(store, 120).await;
    type Case = (&'static str, Filter<Ticket>, Box<dyn Fn(&Ticket) -> bool>);
    let cases: Vec<Case> = vec![
        ("every bug", Filter::all(), Box::new(|_| true)),
        ("title = apple", Ticket::TITLE.eq("apple"), Box::new(|b| b.title == "apple")),
        ("title != apple", Ticket::TITLE.ne("apple"), Box::new(|b| b.title != "apple")),
        ("title < b", Ticket::TITLE.lt("b"), Box::new(|b| b.title.as_str() < "b")),
        ("title >= B", Ticket::TITLE.ge("B"), Box::new(|b| b.title.as_str() >= "B")),
        ("title starts with a", Ticket::TITLE.starts_with("a"), Box::new(|b| b.title.starts_with('a'))),
        ("title starts with a%", Ticket::TITLE.starts_with("a%"), Box::new(|b| b.title.starts_with("a%"))),
        ("title starts with _", Ticket::TITLE.starts_with("_"), Box::new(|b| b.title.starts_with('_'))),
        ("title starts with ''", Ticket::TITLE.starts_with(""), Box::new(|_| true)),
        ("assignee = b", Ticket::ASSIGNEE.eq("b"), Box::new(|b| b.assignee.as_deref() == Some("b"))),
        ("assignee != b", Ticket::ASSIGNEE.ne("b"), Box::new(|b| b.assignee.as_deref() != Some("b"))),
        ("assignee < b", Ticket::ASSIGNEE.lt("b"), Box::new(|b| b.assignee < Some("b".to_owned()))),
        ("assignee > b", Ticket::ASSIGNEE.gt("b"), Box::new(|b| b.assignee > Some("b".to_owned()))),
        ("assignee is none", Ticket::ASSIGNEE.is_none(), Box::new(|b| b.assignee.is_none())),
        ("assignee is some", Ticket::ASSIGNEE.is_some(), Box::new(|b| b.assignee.is_some())),
        ("assignee = None", Ticket::ASSIGNEE.eq(None::<String>), Box::new(|b| b.assignee.is_none())),
        (
            "assignee starts with A",
            Ticket::ASSIGNEE.starts_with("A"),
            Box::new(|b| b.assignee.as_ref().is_some_and(|a| a.starts_with('A'))),
        ),
        ("priority in 1, 3", Ticket::PRIORITY.in_list([1, 3]), Box::new(|b| [1, 3].contains(&b.priority))),
        ("priority in nothing", Ticket::PRIORITY.in_list(Vec::<i32>::new()), Box::new(|_| false)),
        (
            "assignee in b, None",
            Ticket::ASSIGNEE.in_list([Some("b".to_owned()), None]),
            Box::new(|b| b.assignee.is_none() || b.assignee.as_deref() == Some("b")),
        ),
        ("open", Ticket::OPEN.eq(true), Box::new(|b| b.open)),
        (
            "not open or priority 1",
            Ticket::OPEN.eq(true).not().or(Ticket::PRIORITY.eq(1)),
            Box::new(|b| !b.open || b.priority == 1),
        ),
        ("not (assignee < b)", !Ticket::ASSIGNEE.lt("b"), Box::new(|b| b.assignee >= Some("b".to_owned()))),
        (
            "open and (title starts with a or assignee is none) and priority <= 2",
            Ticket::OPEN.eq(true)
                & (Ticket::TITLE.starts_with("a") | Ticket::ASSIGNEE.is_none())
                & Ticket::PRIORITY.le(2),
            Box::new(|b| b.open && (b.title.starts_with('a') || b.assignee.is_none()) && b.priority <= 2),
        ),
        ("id >= 100 and version = 1", Ticket::ID.ge(100).and(Ticket::VERSION.eq(1u64)), Box::new(|b| b.id >= 100)),
    ];
    for (name, filter, keep) in cases {
        // By title ascending, assignee descending, priority: every kind of key in both directions.
        let found = store
            .find::<Ticket>()
            .filter(filter.clone())
            .order_by(Ticket::TITLE)
            .order_by(Ticket::ASSIGNEE.desc())
            .order_by(Ticket::PRIORITY.asc())
            .all()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let by = |a: &Ticket, b: &Ticket| {
            a.title.cmp(&b.title).then(b.assignee.cmp(&a.assignee)).then(a.priority.cmp(&b.priority))
        };
        assert_eq!(ids(&found), expected(&all, &keep, by, usize::MAX), "{name}, by title, assignee desc, priority");
        // By assignee ascending (None first), limited.
        let found =
            store.find::<Ticket>().filter(filter.clone()).order_by(Ticket::ASSIGNEE).limit(7).all().await.expect(name);
        assert_eq!(ids(&found), expected(&all, &keep, |a, b| a.assignee.cmp(&b.assignee), 7), "{name}, by assignee, 7");
        // By key alone, descending.
        let found = store.find::<Ticket>().filter(filter.clone()).order_by(Ticket::ID.desc()).all().await.expect(name);
        let mut want = expected(&all, &keep, |_, _| Ordering::Equal, usize::MAX);
        want.reverse();
        assert_eq!(ids(&found), want, "{name}, by id desc");
        assert_eq!(
            store.find::<Ticket>().filter(filter.clone()).count().await.expect(name),
            want.len() as u64,
            "{name}: count"
        );
        assert_eq!(
            store.find::<Ticket>().filter(filter).exists().await.expect(name),
            !want.is_empty(),
            "{name}: exists"
        );
    }
    // Every record carries its version: an edit of a found record is a checked write.
    let mut first =
        store.find::<Ticket>().order_by(Ticket::TITLE.desc()).first().await.expect("first").expect("a ticket");
    assert_eq!(first.version, 1);
    first.open = !first.open;
    store.put(&mut first).await.expect("put a found record");
    assert_eq!(store.find::<Ticket>().filter(Ticket::VERSION.eq(2u64)).all().await.expect("find"), vec![first]);
}

/// Pages walked to the end by their cursors, ordered by a nullable text field, while records are
/// inserted and deleted between two pages: every record that was there throughout is returned
/// exactly once, in order; `limit` caps the whole walk.
pub async fn pages_walk_every_record_once_while_others_come_and_go<S: Storage>(store: &Store<S>) {
    let all = stored_tickets(store, 90).await;
    let mut cursor: Option<Cursor> = None;
    let mut seen = Vec::new();
    let mut next_id = 1_000;
    let mut pages = 0;
    loop {
        let page = store
            .find::<Ticket>()
            .order_by(Ticket::ASSIGNEE.desc())
            .after_opt(cursor.take())
            .page(8)
            .await
            .expect("page");
        assert!(page.records.len() <= 8);
        seen.extend(page.records.iter().cloned());
        pages += 1;
        // Between pages: a new record (anywhere in the order), and one deleted that was not
        // seen yet (ids from 1,000 only: the original ones must all be returned).
        let mut new = Ticket {
            id: next_id,
            title: "new".into(),
            assignee: Some(WORDS[pages % WORDS.len()].into()),
            priority: 1,
            open: true,
            version: 0,
        };
        next_id += 1;
        store.insert(&mut new).await.expect("insert between pages");
        if next_id % 2 == 0 {
            store.delete_unchecked::<Ticket>(&(next_id - 2)).await.expect("delete between pages");
        }
        match page.next {
            // The cursor goes through its text form, as a web API's `?after=` does.
            Some(next) => cursor = Some(next.to_string().parse().expect("a cursor parses back")),
            None => break,
        }
    }
    assert!(pages >= 12, "90 records in pages of 8 take at least 12 pages: {pages}");
    let original: Vec<i64> = seen.iter().map(|b| b.id).filter(|id| *id < 1_000).collect();
    let want = expected(&all, |_| true, |a, b| b.assignee.cmp(&a.assignee), usize::MAX);
    assert_eq!(original, want, "every original record once, in order");
    for pair in seen.windows(2) {
        let order = pair[1].assignee.cmp(&pair[0].assignee).then(pair[0].id.cmp(&pair[1].id));
        assert_eq!(order, Ordering::Less, "pages in order: {pair:?}");
    }
    // A limit caps a page and the walk.
    let page = store.find::<Ticket>().limit(5).page(8).await.expect("limited page");
    assert_eq!(page.records.len(), 5);
}

/// A cursor is refused when it belongs to another order or table, or is not a cursor; a page of 0
/// and a query with more values than one carries are refused; `limit(0)` returns nothing.
pub async fn bad_query_input_is_refused_clearly<S: Storage>(store: &Store<S>) {
    stored_tickets(store, 20).await;
    let page = store.find::<Ticket>().order_by(Ticket::TITLE).page(3).await.expect("page");
    let cursor = page.next.expect("more pages");
    let other_order = store.find::<Ticket>().order_by(Ticket::PRIORITY).after(cursor.clone()).page(3).await;
    assert!(
        matches!(&other_order, Err(Error::Query { table: "tickets", reason }) if reason.contains("another")),
        "{other_order:?}"
    );
    let other_table = store.find::<super::Person>().after(cursor.clone()).all().await;
    assert!(matches!(other_table, Err(Error::Query { .. })), "{other_table:?}");
    assert!("not a cursor!".parse::<Cursor>().is_err());
    assert!("".parse::<Cursor>().is_err());
    // A cursor cut short decodes as base64 but not as a cursor.
    let text = cursor.to_string();
    let short: Cursor = text[..text.len() - 4].parse().expect("still base64 of a cursor's first byte");
    let malformed = store.find::<Ticket>().order_by(Ticket::TITLE).after(short).all().await;
    assert!(matches!(malformed, Err(Error::Query { .. })), "{malformed:?}");
    assert!(matches!(store.find::<Ticket>().page(0).await, Err(Error::Query { .. })));
    assert!(store.find::<Ticket>().limit(0).all().await.expect("limit 0").is_empty());
    let too_many = store.find::<Ticket>().filter(Ticket::ID.in_list(0..=MAX_QUERY_VALUES as i64)).all().await;
    assert!(matches!(too_many, Err(Error::Query { .. })), "{too_many:?}");
    // The largest list allowed is answered.
    let listed = store.find::<Ticket>().filter(Ticket::ID.in_list(1..MAX_QUERY_VALUES as i64 / 2)).count().await;
    assert_eq!(listed.expect("a long list"), 20);
}

/// A transaction's queries see its own inserts, updates and deletes, and `get_many` too.
pub async fn transactions_query_their_own_writes<S: Storage>(store: &Store<S>) {
    let all = stored_tickets(store, 10).await;
    store
        .transaction(|tx| async move {
            let mut new = Ticket { id: 50, title: "zz".into(), assignee: None, priority: 1, open: true, version: 0 };
            tx.insert(&mut new).await?;
            let mut changed = tx.get::<Ticket>(&3).await?.expect("ticket 3");
            changed.priority = 9;
            tx.put(&mut changed).await?;
            tx.delete_unchecked::<Ticket>(&4).await?;
            let found = tx
                .find::<Ticket>()
                .filter(Ticket::PRIORITY.ge(9).or(Ticket::ID.ge(4)))
                .order_by(Ticket::ID)
                .all()
                .await?;
            let want: Vec<i64> = (3..=10).filter(|id| *id != 4).chain([50]).collect();
            assert_eq!(ids(&found), want);
            assert_eq!(found[0].priority, 9);
            assert_eq!(tx.find::<Ticket>().count().await?, 10);
            let many = tx.get_many::<Ticket, i64>(&[50, 4, 3]).await?;
            assert_eq!(many.iter().map(|b| b.as_ref().map(|b| b.id)).collect::<Vec<_>>(), [Some(50), None, Some(3)]);
            Ok(())
        })
        .await
        .expect("transaction");
    assert_eq!(store.find::<Ticket>().count().await.expect("count"), all.len() as u64);
}

/// `get_many` returns the records in the order of the keys asked for, `None` where none is, and
/// a record twice when its key is asked twice.
pub async fn get_many_returns_records_in_the_order_of_the_keys<S: Storage>(store: &Store<S>) {
    let all = stored_tickets(store, 10).await;
    let found = store.get_many::<Ticket, i64>(&[7, 99, 1, 7]).await.expect("get_many");
    let want = [Some(&all[6]), None, Some(&all[0]), Some(&all[6])];
    let found: Vec<Option<&Ticket>> = found.iter().map(Option::as_ref).collect();
    assert_eq!(
        found.iter().map(|b| b.map(|b| b.id)).collect::<Vec<_>>(),
        want.iter().map(|b| b.map(|b| b.id)).collect::<Vec<_>>()
    );
    assert!(found.iter().flatten().all(|b| b.version == 1));
    assert!(store.get_many::<Ticket, i64>(&[]).await.expect("no keys").is_empty());
}

/// A stream returns every matching record in order, fetched a chunk at a time, and stops at the
/// limit; a chunk of 0 is refused.
pub async fn streams_return_every_record_in_order<S: Storage>(store: &Store<S>) {
    let all = stored_tickets(store, 57).await;
    let keep = |b: &Ticket| b.priority != 2;
    let streamed: Vec<Ticket> = store
        .find::<Ticket>()
        .filter(Ticket::PRIORITY.ne(2))
        .order_by(Ticket::TITLE.desc())
        .stream(5)
        .try_collect()
        .await
        .expect("stream");
    assert_eq!(ids(&streamed), expected(&all, keep, |a, b| b.title.cmp(&a.title), usize::MAX));
    let limited: Vec<Ticket> = store.find::<Ticket>().limit(12).stream(5).try_collect().await.expect("limited stream");
    assert_eq!(ids(&limited), (1..=12).collect::<Vec<_>>());
    let zero: Result<Vec<Ticket>, Error> = store.find::<Ticket>().stream(0).try_collect().await;
    assert!(matches!(zero, Err(Error::Query { .. })), "{zero:?}");
}

/// `patch_where` changes every matching record in one go, moving each one's version on, so that a
/// copy read before is refused afterwards; `delete_where` deletes every matching record; both
/// count what they changed, and a transaction's own see its writes.
pub async fn patch_where_and_delete_where_move_versions_on<S: Storage>(store: &Store<S>) {
    let all = stored_tickets(store, 40).await;
    let stale = store.get::<Ticket>(&all.iter().find(|t| t.assignee.is_none()).expect("an unassigned ticket").id).await;
    let mut stale = stale.expect("get").expect("stored");
    let unassigned = all.iter().filter(|t| t.assignee.is_none()).count() as u64;
    let changed = store
        .patch_where(Ticket::ASSIGNEE.is_none(), TicketPatch::default().assignee(Some("triage".to_owned())).priority(1))
        .await
        .expect("patch_where");
    assert_eq!(changed, unassigned);
    let triaged = store.find::<Ticket>().filter(Ticket::ASSIGNEE.eq("triage")).all().await.expect("find");
    assert_eq!(triaged.len() as u64, unassigned);
    assert!(triaged.iter().all(|t| t.priority == 1 && t.version == 2), "{triaged:?}");
    // A copy read before the patch is stale now.
    stale.title = "edited meanwhile".into();
    let refused = store.put(&mut stale).await.expect_err("a copy read before patch_where");
    assert!(matches!(refused, Error::ConcurrentModification { expected: 1, actual: Some(2), .. }), "{refused:?}");
    // Nothing matches: nothing changes.
    assert_eq!(store.patch_where(Ticket::ID.gt(1_000), TicketPatch::default().priority(4)).await.expect("none"), 0);
    // In a transaction, with the transaction's own writes.
    let closed = store
        .transaction(|tx| async move {
            let mut new = Ticket { id: 500, title: "zz".into(), assignee: None, priority: 3, open: true, version: 0 };
            tx.insert(&mut new).await?;
            let closed = tx.patch_where(Ticket::TITLE.eq("zz"), TicketPatch::default().open(false)).await?;
            assert_eq!(tx.get::<Ticket>(&500).await?.map(|t| (t.open, t.version)), Some((false, 2)));
            Ok(closed)
        })
        .await
        .expect("transaction");
    let zz = all.iter().filter(|t| t.title == "zz").count() as u64 + 1;
    assert_eq!(closed, zz);
    let deleted = store.delete_where(Ticket::OPEN.eq(false)).await.expect("delete_where");
    let closed_before = all.iter().filter(|t| !t.open || t.title == "zz").count() as u64 + 1;
    assert_eq!(deleted, closed_before);
    assert_eq!(store.find::<Ticket>().filter(Ticket::OPEN.eq(false)).count().await.expect("count"), 0);
    assert_eq!(store.find::<Ticket>().count().await.expect("count"), 41 - deleted);
}

/// Two workers claim the next unassigned ticket at once with `skip_locked`: each gets its own.
/// Where the backend locks records, the second claims while the first still holds its ticket;
/// on SQLite the second transaction begins once the first commits, and finds the next ticket. A
/// `for_update` query locks every record it returns: another transaction cannot lock one.
pub async fn locking_queries_lock_or_skip_what_they_return<S: Storage>(store: &Store<S>) {
    stored_tickets(store, 12).await;
    let locks_records = store.backend().capabilities().locks_records;
    let (claimed_tx, claimed_rx) = tokio::sync::oneshot::channel::<i64>();
    let (second_tx, second_rx) = tokio::sync::oneshot::channel::<i64>();
    let first = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .transaction(|tx| async move {
                    let unassigned = Ticket::ASSIGNEE.is_none();
                    let mut job = tx.find::<Ticket>().filter(unassigned).skip_locked().first().await?.expect("a job");
                    job.assignee = Some("first".into());
                    tx.put(&mut job).await?;
                    let _ = claimed_tx.send(job.id);
                    // Held until the second worker has claimed, where that can happen meanwhile.
                    let second = tokio::time::timeout(std::time::Duration::from_millis(300), second_rx).await;
                    Ok((job.id, second.ok().and_then(Result::ok)))
                })
                .await
        })
    };
    let first_id = claimed_rx.await.expect("the first worker claims");
    let second_id = store
        .transaction(|tx| async move {
            let unassigned = Ticket::ASSIGNEE.is_none();
            let mut job = tx.find::<Ticket>().filter(unassigned).skip_locked().first().await?.expect("a job");
            job.assignee = Some("second".into());
            tx.put(&mut job).await?;
            Ok(job.id)
        })
        .await
        .expect("the second worker claims");
    let _ = second_tx.send(second_id);
    let (first_again, seen_while_held) = first.await.expect("task").expect("the first worker commits");
    assert_eq!(first_again, first_id);
    assert_ne!(first_id, second_id, "two workers claimed the same ticket");
    if locks_records {
        assert_eq!(seen_while_held, Some(second_id), "the second worker claimed while the first held its ticket");
    }
    let claimed = store.find::<Ticket>().filter(Ticket::ASSIGNEE.in_list(["first", "second"])).all().await;
    let mut claimed: Vec<_> = claimed.expect("find").into_iter().map(|t| (t.id, t.assignee, t.version)).collect();
    claimed.sort();
    let mut want = vec![(first_id, Some("first".to_owned()), 2), (second_id, Some("second".to_owned()), 2)];
    want.sort();
    assert_eq!(claimed, want);

    // `for_update` holds every record it returns until the transaction ends.
    if locks_records {
        let store2 = store.clone();
        store
            .transaction(|tx| async move {
                let held = tx.find::<Ticket>().filter(Ticket::PRIORITY.eq(1)).for_update().all().await?;
                assert!(!held.is_empty());
                for t in &held {
                    // Another task: a store used inside its own transaction on one task is refused.
                    let (other, id) = (store2.clone(), t.id);
                    let tried = tokio::spawn(async move {
                        other
                            .transaction(|tx2| async move {
                                tx2.get_for_update_with::<Ticket>(&id, crate::lock::LockWait::NoWait).await
                            })
                            .await
                    });
                    let tried = tried.await.expect("task");
                    assert!(matches!(tried, Err(Error::LockTimeout { .. })), "{tried:?}");
                }
                Ok(())
            })
            .await
            .expect("for_update");
    }
    // Refused in a read-only transaction, like every locking read.
    let read_only = store.read_transaction(|tx| async move { tx.find::<Ticket>().for_update().all().await }).await;
    assert!(matches!(read_only, Err(Error::ReadOnlyTransaction { .. })), "{read_only:?}");
}

/// Inside `read_transaction`, every query sees the snapshot of the first read: a writer that
/// commits meanwhile (or waits for the reader, where the database makes it) is seen by none.
pub async fn queries_in_a_read_transaction_see_one_snapshot<S: Storage>(store: &Store<S>) {
    stored_tickets(store, 30).await;
    let (read_first, first_read) = tokio::sync::oneshot::channel::<()>();
    let (wrote, written) = tokio::sync::oneshot::channel::<()>();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let _ = first_read.await;
            let done = store.patch_where(Ticket::ID.le(15), TicketPatch::default().priority(9)).await;
            let _ = wrote.send(());
            done
        })
    };
    let (count, first, again) = store
        .read_transaction(|tx| async move {
            let count = tx.find::<Ticket>().filter(Ticket::PRIORITY.eq(9)).count().await?;
            let _ = read_first.send(());
            let _ = tokio::time::timeout(std::time::Duration::from_millis(300), written).await;
            let first = tx.find::<Ticket>().order_by(Ticket::PRIORITY.desc()).first().await?;
            let again = tx.find::<Ticket>().filter(Ticket::PRIORITY.eq(9)).all().await?;
            Ok((count, first, again))
        })
        .await
        .expect("read transaction");
    assert_eq!(count, 0);
    assert!(first.is_some_and(|t| t.priority <= 4), "a write after the first read is not seen");
    assert!(again.is_empty());
    assert_eq!(writer.await.expect("task").expect("patch_where"), 15);
    assert_eq!(store.find::<Ticket>().filter(Ticket::PRIORITY.eq(9)).count().await.expect("count"), 15);
}

/// Floats compare and sort as numbers (no NaN: Rust has no order for it, and the library
/// supports none in filters), bytes byte by byte (the shorter first where one starts the other),
/// unsigned integers up to `i64::MAX` as numbers, a text key by code point: the same on every
/// backend as in Rust.
pub async fn floats_bytes_and_wide_integers_order_as_in_rust<S: Storage>(store: &Store<S>) {
    use super::Everything;
    super::setup(store).await;
    let ratios = [-1e300, -2.5, -0.0, 0.0, 1e-300, 0.1, 0.25, 3.0, 1e300, -1e-300, 2.5, 7.75];
    let blobs: [&[u8]; 6] = [&[], &[0], &[0, 1], &[1], &[255], &[0, 255]];
    let bigs = [0, 1, 255, 65_536, u64::from(u32::MAX), i64::MAX as u64];
    let mut all: Vec<Everything> = (0..ratios.len())
        .map(|i| Everything {
            id: ["b", "B", "a", "ä", "A", "a ", "ab", "Z", "z", "0", "é", "e"][i].to_owned(),
            nickname: None,
            rank: None,
            ratio: ratios[i],
            active: i % 2 == 0,
            blob: blobs[i % blobs.len()].to_vec(),
            big: bigs[i % bigs.len()],
            meta: serde_json::json!(null),
            version: 0,
        })
        .collect();
    store.insert_all(&mut all).await.expect("insert");
    let ids = |found: Vec<Everything>| found.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let rust = |keep: &dyn Fn(&Everything) -> bool, by: &dyn Fn(&Everything, &Everything) -> Ordering| {
        let mut kept: Vec<&Everything> = all.iter().filter(|e| keep(e)).collect();
        kept.sort_by(|a, b| by(a, b).then(a.id.cmp(&b.id)));
        kept.into_iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    };
    let by_ratio = |a: &Everything, b: &Everything| a.ratio.partial_cmp(&b.ratio).expect("no NaN");
    let found = store.find::<Everything>().order_by(Everything::RATIO).all().await.expect("by ratio");
    assert_eq!(ids(found), rust(&|_| true, &by_ratio), "floats by value (-0.0 equals 0.0: the key decides)");
    let found =
        store.find::<Everything>().filter(Everything::RATIO.lt(0.1)).order_by(Everything::RATIO.desc()).all().await;
    assert_eq!(ids(found.expect("ratio < 0.1")), rust(&|e| e.ratio < 0.1, &|a, b| by_ratio(b, a)));
    let found = store.find::<Everything>().filter(Everything::RATIO.eq(0.0)).all().await.expect("ratio = 0");
    assert_eq!(ids(found), rust(&|e| e.ratio == 0.0, &|_, _| Ordering::Equal), "-0.0 == 0.0");
    let found = store.find::<Everything>().order_by(Everything::BLOB.desc()).all().await.expect("by blob");
    assert_eq!(ids(found), rust(&|_| true, &|a, b| b.blob.cmp(&a.blob)), "bytes byte by byte");
    let found =
        store.find::<Everything>().filter(Everything::BLOB.ge(vec![0u8, 1])).order_by(Everything::BLOB).all().await;
    assert_eq!(
        ids(found.expect("blob >= [0, 1]")),
        rust(&|e| e.blob.as_slice() >= &[0u8, 1][..], &|a, b| a.blob.cmp(&b.blob))
    );
    let found =
        store.find::<Everything>().filter(Everything::BIG.gt(255u64)).order_by(Everything::BIG.desc()).all().await;
    assert_eq!(ids(found.expect("big > 255")), rust(&|e| e.big > 255, &|a, b| b.big.cmp(&a.big)));
    let found = store.find::<Everything>().filter(Everything::ID.ge("a")).all().await.expect("key >= a");
    assert_eq!(ids(found), rust(&|e| e.id.as_str() >= "a", &|_, _| Ordering::Equal), "a text key by code point");
    // A page through a float order, by cursor, returns each record once, in order.
    let mut cursor = None;
    let mut walked = Vec::new();
    loop {
        let page = store.find::<Everything>().order_by(Everything::RATIO).after_opt(cursor.take()).page(5).await;
        let page = page.expect("page");
        walked.extend(page.records.into_iter().map(|e| e.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(walked, rust(&|_| true, &by_ratio));
}
