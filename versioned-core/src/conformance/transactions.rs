//! The transaction model beyond commit-or-roll-back: copies written by a transaction that rolls
//! back, savepoints, read-only transactions, and the record-level `save` and `refresh`.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use super::{Account, Person, Xorshift, ann, assert_conflict, assert_unchanged, patient, setup, transfer};
use crate::error::{Error, StorageError};
use crate::lock::LockWait;
use crate::retry::RetryPolicy;
use crate::storage::Storage;
use crate::store::Store;

/// The closure's own failure, to roll a transaction back on purpose.
fn abort() -> Error {
    StorageError::new("aborted by the test").into()
}

async fn person<S: Storage>(store: &Store<S>, id: i64) -> Option<Person> {
    store.get::<Person>(&id).await.expect("get person")
}

/// A copy moved into a transaction that rolls back is dropped with it; the copy kept outside was
/// never touched and writes as if the transaction had not happened. A transaction that commits
/// hands its copies back, at their new versions.
pub async fn copies_of_a_rolled_back_transaction_stay_usable<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut kept = ann();
    store.insert(&mut kept).await.expect("insert");

    let mut moved = Person { salary: 200, ..kept.clone() };
    let failed = store
        .transaction(move |tx| async move {
            tx.put(&mut moved).await?;
            assert_eq!(moved.version, 2, "inside, the copy carries the version it was written at");
            Err::<Person, _>(abort())
        })
        .await;
    assert!(failed.is_err(), "the closure's error is returned");
    assert_eq!(person(store, 1).await.map(|p| p.version), Some(1), "rolled back: still version 1");
    assert_eq!(kept.version, 1, "the copy kept outside was never bumped");
    kept.salary = 300;
    kept.put(store).await.expect("the kept copy writes as if the transaction had not happened");
    assert_eq!(kept.version, 2);

    let mut moved = Person { salary: 400, ..kept.clone() };
    let committed = store
        .transaction(move |tx| async move {
            tx.put(&mut moved).await?;
            Ok(moved)
        })
        .await
        .expect("commit");
    assert_eq!(committed.version, 3, "a committed transaction hands back its copies, at their new versions");
    assert_eq!(person(store, 1).await, Some(committed));
}

/// Every attempt of `transaction_with_retry` starts from the caller's copies as they were: an
/// attempt that failed after writing a copy leaves no bumped version for the next one.
pub async fn retried_attempts_start_from_untouched_copies<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut a = Account { id: 1, balance: 100, version: 0 };
    let mut b = Account { id: 2, balance: 0, version: 0 };
    store.insert(&mut a).await.expect("insert a");
    store.insert(&mut b).await.expect("insert b");
    let stale_b = b.clone();
    store.update::<Account, _>(&2, RetryPolicy::default(), |b| b.balance += 1).await.expect("someone else");

    let seen = Arc::new(Mutex::new(Vec::new()));
    let (done_a, done_b) = store
        .transaction_with_retry(RetryPolicy::attempts(3), |tx| {
            let (mut a, seen) = (a.clone(), Arc::clone(&seen));
            let first = seen.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
            // The first attempt writes `b` from a stale copy; later ones from a fresh read.
            let stale_b = first.then(|| stale_b.clone());
            async move {
                seen.lock().unwrap_or_else(PoisonError::into_inner).push(a.version);
                a.balance -= 10;
                tx.put(&mut a).await?; // applied inside, then undone when `b` conflicts
                let mut b = match stale_b {
                    Some(stale) => stale,
                    None => tx.get::<Account>(&2).await?.ok_or_else(|| Error::not_found::<Account>(&2))?,
                };
                b.balance += 10;
                tx.put(&mut b).await?;
                Ok((a, b))
            }
        })
        .await
        .expect("the second attempt commits");
    assert_eq!(*seen.lock().unwrap_or_else(PoisonError::into_inner), [1, 1], "both attempts started at version 1");
    assert_eq!((done_a.balance, done_a.version), (90, 2));
    assert_eq!((done_b.balance, done_b.version), (11, 3));
    assert_eq!(a.version, 1, "the caller's copy is untouched");
}

/// A savepoint that fails undoes its own writes only: the transaction goes on and commits the
/// rest. One that succeeds keeps its writes, which then commit or roll back with the transaction.
pub async fn a_failed_savepoint_undoes_only_its_own_writes<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let committed = store
        .transaction(|tx| async move {
            let mut p = ann();
            tx.insert(&mut p).await?;
            let mut copy = p.clone();
            let undone = tx
                .savepoint(|sp| async move {
                    sp.insert(&mut Person { id: 2, name: "Bo".into(), ..ann() }).await?;
                    copy.salary = 999;
                    sp.put(&mut copy).await?;
                    assert_eq!(sp.get::<Person>(&2).await?.map(|p| p.id), Some(2), "reads see the savepoint's writes");
                    Err::<(), _>(abort())
                })
                .await;
            assert!(undone.is_err(), "the savepoint's error is returned");
            assert_eq!(tx.get::<Person>(&2).await?, None, "the savepoint's insert is undone");
            assert_eq!(tx.get::<Person>(&1).await?, Some(p.clone()), "and its put");
            tx.put(&mut p).await?; // `p`, untouched by the savepoint, still writes
            let kept = tx
                .savepoint(|sp| async move {
                    let mut c = Person { id: 3, name: "Cy".into(), ..ann() };
                    sp.insert(&mut c).await?;
                    Ok(c)
                })
                .await?;
            Ok((p, kept))
        })
        .await
        .expect("the transaction commits");
    assert_eq!(person(store, 1).await, Some(committed.0));
    assert_eq!(person(store, 2).await, None);
    assert_eq!(person(store, 3).await, Some(committed.1));

    // A released savepoint's writes roll back with their transaction.
    let failed = store
        .transaction(|tx| async move {
            tx.savepoint(|sp| async move { sp.insert(&mut Person { id: 4, name: "Di".into(), ..ann() }).await })
                .await?;
            Err::<(), _>(abort())
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(person(store, 4).await, None, "rolled back with the transaction");
}

/// Savepoints nest: an inner one fails alone inside an outer one that succeeds.
pub async fn savepoints_nest<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store
        .transaction(|tx| async move {
            tx.savepoint(|outer| async move {
                outer.insert(&mut Person { id: 1, ..ann() }).await?;
                let inner = outer
                    .savepoint(|inner| async move {
                        inner.insert(&mut Person { id: 2, ..ann() }).await?;
                        Err::<(), _>(abort())
                    })
                    .await;
                assert!(inner.is_err());
                outer.insert(&mut Person { id: 3, ..ann() }).await
            })
            .await
        })
        .await
        .expect("commit");
    assert!(person(store, 1).await.is_some() && person(store, 3).await.is_some(), "the outer savepoint's writes");
    assert_eq!(person(store, 2).await, None, "the inner savepoint's write is undone");
}

/// While a savepoint is open, the outer handle is refused (its writes would silently join the
/// savepoint); and a savepoint whose future is dropped midway leaves a transaction that refuses
/// to commit, so its half-done writes are never committed.
pub async fn savepoints_cannot_be_misused<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let result = store
        .transaction(|tx| async move {
            let (opened, is_open) = tokio::sync::oneshot::channel::<()>();
            let (finish, finished) = tokio::sync::oneshot::channel::<()>();
            let savepoint = tx.savepoint(|sp| async move {
                sp.insert(&mut Person { id: 1, ..ann() }).await?;
                let _ = opened.send(());
                let _ = finished.await;
                Ok(())
            });
            let outer = async {
                let _ = is_open.await;
                let refused = tx.insert(&mut Person { id: 2, ..ann() }).await;
                let _ = finish.send(());
                refused
            };
            let (savepoint, refused) = tokio::join!(savepoint, outer);
            savepoint?;
            match refused {
                Err(Error::SavepointOpen { operation: "insert" }) => {}
                other => panic!("expected SavepointOpen from the outer handle, got {other:?}"),
            }
            tx.insert(&mut Person { id: 3, ..ann() }).await?; // the savepoint is over: usable again
            // Two savepoints opened at once from one handle: the second is refused.
            let (go, wait) = tokio::sync::oneshot::channel::<()>();
            let first = tx.savepoint(|sp| async move {
                let _ = wait.await;
                sp.insert(&mut Person { id: 4, ..ann() }).await
            });
            let second = async {
                let refused = tx.savepoint(|sp| async move { sp.insert(&mut Person { id: 5, ..ann() }).await }).await;
                let _ = go.send(());
                refused
            };
            let (first, second) = tokio::join!(first, second);
            first?;
            assert!(matches!(second, Err(Error::SavepointOpen { .. })), "the sibling is refused: {second:?}");
            Ok(())
        })
        .await;
    result.expect("the transaction commits");
    assert!(person(store, 1).await.is_some() && person(store, 3).await.is_some() && person(store, 4).await.is_some());
    assert_eq!((person(store, 2).await, person(store, 5).await), (None, None));

    let dropped = store
        .transaction(|tx| async move {
            tx.insert(&mut Person { id: 10, ..ann() }).await?;
            let mut savepoint = pin!(tx.savepoint(|sp| async move {
                sp.insert(&mut Person { id: 11, ..ann() }).await?;
                std::future::pending::<crate::Result<()>>().await
            }));
            // Poll it until its insert is done, then drop it midway.
            let stuck = tokio::time::timeout(
                Duration::from_millis(200),
                poll_fn(|cx| match savepoint.as_mut().poll(cx) {
                    Poll::Ready(done) => Poll::Ready(done),
                    Poll::Pending => Poll::Pending,
                }),
            )
            .await;
            assert!(stuck.is_err(), "the savepoint never finishes");
            Ok(())
        })
        .await;
    assert!(matches!(dropped, Err(Error::Storage(_))), "refused to commit: {dropped:?}");
    assert_eq!((person(store, 10).await, person(store, 11).await), (None, None), "nothing committed");
}

/// A lock refused inside a savepoint leaves the transaction usable (PostgreSQL aborts a
/// transaction on any error, unless it is rolled back to a savepoint).
pub async fn a_savepoint_recovers_from_a_lock_refused_inside_it<S: Storage>(store: &Store<S>) {
    setup(store).await;
    if !store.backend().locks_records() {
        return; // transactions hold the whole database: no record lock to be refused
    }
    store.insert(&mut Account { id: 1, balance: 1, version: 0 }).await.expect("insert");
    let (locked, is_locked) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let other = store.clone();
    let holder = tokio::spawn(async move {
        other
            .transaction(|tx| async move {
                tx.get_for_update::<Account>(&1).await?;
                let _ = locked.send(());
                let _ = released.await;
                Ok(())
            })
            .await
    });
    is_locked.await.expect("locked");
    let result = store
        .transaction(|tx| async move {
            let refused =
                tx.savepoint(|sp| async move { sp.get_for_update_with::<Account>(&1, LockWait::NoWait).await });
            assert!(matches!(refused.await, Err(Error::LockTimeout { .. })), "the lock is refused");
            tx.insert(&mut Account { id: 2, balance: 2, version: 0 }).await
        })
        .await;
    let _ = release.send(());
    holder.await.expect("holder task").expect("holder commits");
    result.expect("the transaction goes on after the savepoint and commits");
    assert!(store.get::<Account>(&2).await.expect("get").is_some());
}

/// Read-only transactions running beside transfers between many records (spread over the
/// backend's shards, pages or keys) always see the same total: every snapshot is one moment, never
/// a transfer's debit without its credit.
pub async fn read_transactions_never_see_half_a_transfer<S: Storage>(store: &Store<S>) {
    const ACCOUNTS: i32 = 16;
    const WRITERS: u64 = 4;
    const TRANSFERS: usize = 40;
    setup(store).await;
    for id in 0..ACCOUNTS {
        store.insert(&mut Account { id, balance: 100, version: 0 }).await.expect("insert");
    }
    let writers: Vec<_> = (0..WRITERS)
        .map(|seed| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut rng = Xorshift(0x2545_F491_4F6C_DD1D ^ (seed + 1));
                for _ in 0..TRANSFERS {
                    let (from, to) = rng.two_accounts(ACCOUNTS);
                    store
                        .transaction_with_retry(patient(), |tx| async move { transfer(&tx, from, to, 1).await })
                        .await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    let mut snapshots = 0;
    loop {
        let done = writers.iter().all(|writer| writer.is_finished());
        let total = store
            .read_transaction(|tx| async move {
                let mut total = 0;
                for id in 0..ACCOUNTS {
                    total += tx.get::<Account>(&id).await?.ok_or_else(|| Error::not_found::<Account>(&id))?.balance;
                }
                Ok(total)
            })
            .await
            .expect("a read-only transaction");
        assert_eq!(total, 100 * i64::from(ACCOUNTS), "snapshot {snapshots} saw half a transfer");
        snapshots += 1;
        if done {
            break;
        }
    }
    for writer in writers {
        writer.await.expect("writer task").expect("every transfer commits");
    }
    assert!(snapshots > 1, "the snapshots ran beside the transfers");
}

/// A read-only transaction sees one snapshot: what another task commits meanwhile is not seen
/// until it ends. Writes through it are refused before they reach the database.
pub async fn read_transactions_see_one_snapshot_and_refuse_writes<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut Account { id: 1, balance: 10, version: 0 }).await.expect("insert 1");
    store.insert(&mut Account { id: 2, balance: 20, version: 0 }).await.expect("insert 2");

    let (read_first, first_read) = tokio::sync::oneshot::channel::<()>();
    let (wrote, written) = tokio::sync::oneshot::channel::<()>();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let _ = first_read.await;
            let done = store
                .transaction(|tx| async move {
                    for id in [1, 2] {
                        let mut a = tx.get::<Account>(&id).await?.ok_or_else(|| Error::not_found::<Account>(&id))?;
                        a.balance += 1;
                        tx.put(&mut a).await?;
                    }
                    Ok(())
                })
                .await;
            let _ = wrote.send(());
            done
        })
    };
    let seen = store
        .read_transaction(|tx| async move {
            let one = tx.get::<Account>(&1).await?;
            let _ = read_first.send(());
            // Give the writer its chance (where it must wait for this transaction, it times out
            // here and finishes afterwards: either way, nothing of it may be seen).
            let _ = tokio::time::timeout(Duration::from_millis(300), written).await;
            let two = tx.get::<Account>(&2).await?;
            let one_again = tx.get::<Account>(&1).await?;
            let mut copy = one.clone().ok_or_else(|| Error::not_found::<Account>(&1))?;
            for refused in [
                tx.put(&mut copy).await,
                tx.insert(&mut Account { id: 3, balance: 0, version: 0 }).await,
                copy.put(&tx).await,
                tx.get_for_update::<Account>(&1).await.map(drop),
            ] {
                assert!(matches!(refused, Err(Error::ReadOnlyTransaction { .. })), "refused: {refused:?}");
            }
            Ok((one, two, one_again))
        })
        .await
        .expect("the read-only transaction ends");
    let balances = |(a, b, c): &(Option<Account>, Option<Account>, Option<Account>)| {
        [a, b, c].map(|x| x.as_ref().map(|x| x.balance))
    };
    assert_eq!(balances(&seen), [Some(10), Some(20), Some(10)], "one snapshot, from the first read");
    writer.await.expect("writer task").expect("the writer commits");
    assert_eq!(store.get::<Account>(&1).await.expect("get").map(|a| a.balance), Some(11));
    assert_eq!(store.get::<Account>(&2).await.expect("get").map(|a| a.balance), Some(21));
    assert_eq!(store.get::<Account>(&3).await.expect("get"), None, "nothing written through it");
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
