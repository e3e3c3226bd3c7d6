//! Transactions: their writes commit together or roll back together, they read their own writes
//! and nobody else sees them before commit; copies written by a transaction that rolls back or is
//! retried; read-only transactions.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{Account, Person, Xorshift, abort, ann, assert_conflict, patient, person, setup, transfer};
use crate::error::Error;
use crate::retry::RetryPolicy;
use crate::storage::Storage;
use crate::store::Store;
use crate::value::Value;

/// Kii's balance book, done right: two puts in one transaction, the second stale. The conflict
/// rolls the first back: after the error, the first record is unchanged in the store.
pub async fn a_conflict_in_a_transaction_rolls_back_its_earlier_writes<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut Account { id: 1, balance: 100, version: 0 }).await.expect("insert 1");
    store.insert(&mut Account { id: 2, balance: 100, version: 0 }).await.expect("insert 2");

    // This device read account 2 earlier; another device has updated it since.
    let stale_two = store.get::<Account>(&2).await.expect("get").expect("present");
    let mut other = stale_two.clone();
    other.balance = 500;
    other.put(store).await.expect("the other device's update");

    let err = store
        .transaction(|tx| async move {
            let mut one = tx.get::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
            let mut two = stale_two;
            one.balance -= 10;
            two.balance += 10;
            tx.put(&mut one).await?; // Update B1: succeeds inside the transaction
            tx.put(&mut two).await?; // Update B2: stale, fails
            Ok(())
        })
        .await
        .expect_err("the second put is stale");
    assert_conflict(&err, 1, Some(2));
    assert_eq!(
        store.get::<Account>(&1).await.expect("get"),
        Some(Account { id: 1, balance: 100, version: 1 }),
        "the first write must have been rolled back"
    );
    assert_eq!(store.get::<Account>(&2).await.expect("get").map(|a| a.balance), Some(500));
}

/// A transaction's reads see its own writes; nobody else sees them before commit; after commit
/// all of them are there.
pub async fn transaction_commits_all_writes_at_once_and_reads_its_own<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut Account { id: 1, balance: 10, version: 0 }).await.expect("insert");
    let outside = store.clone();
    let seen_outside = store
        .transaction(|tx| async move {
            let mut one = tx.get::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
            one.balance = 20;
            tx.put(&mut one).await?;
            tx.insert(&mut Account { id: 2, balance: 30, version: 0 }).await?;
            assert_eq!(tx.get::<Account>(&1).await?.map(|a| (a.balance, a.version)), Some((20, 2)));
            assert_eq!(tx.get::<Account>(&2).await?.map(|a| a.balance), Some(30));
            let err = tx.insert(&mut Account { id: 2, balance: 0, version: 0 }).await.expect_err("own insert");
            assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
            tx.delete_unchecked::<Account>(&2).await?;
            assert_eq!(tx.get::<Account>(&2).await?, None);
            tx.insert(&mut Account { id: 3, balance: 40, version: 0 }).await?;
            // Another task, on another connection, sees none of it yet.
            let reader = tokio::spawn(async move {
                Ok::<_, Error>((
                    outside.get::<Account>(&1).await?.map(|a| a.balance),
                    outside.get::<Account>(&3).await?,
                ))
            });
            reader.await.expect("reader task")
        })
        .await
        .expect("transaction");
    assert_eq!(seen_outside, (Some(10), None));
    assert_eq!(store.get::<Account>(&1).await.expect("get").map(|a| (a.balance, a.version)), Some((20, 2)));
    assert_eq!(store.get::<Account>(&2).await.expect("get"), None);
    assert_eq!(store.get::<Account>(&3).await.expect("get").map(|a| a.balance), Some(40));
}

/// Any error from the closure rolls everything back and comes back unchanged.
pub async fn transaction_closure_error_rolls_back_and_is_returned_unchanged<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let err = store
        .transaction(|tx| async move {
            tx.insert(&mut Account { id: 1, balance: 1, version: 0 }).await?;
            tx.get_with_version::<Account>(&99, 1).await?; // NotFound
            Ok(())
        })
        .await
        .expect_err("closure fails");
    assert!(matches!(err, Error::NotFound { table: "account", key: Value::Int(99) }), "{err:?}");
    assert_eq!(store.get::<Account>(&1).await.expect("get"), None);
}

/// The derive's helpers take a transaction as well as a store.
pub async fn derived_helpers_work_inside_a_transaction<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store
        .transaction(|tx| async move {
            let mut p = ann();
            p.insert(&tx).await?;
            let mut p = Person::get_with_version(&tx, &1, 1).await?;
            p.salary = 111;
            p.put(&tx).await?;
            p.put_unchecked(&tx).await?;
            assert_eq!(Person::get(&tx, &1).await?.map(|p| (p.salary, p.version)), Some((111, 3)));
            Ok(())
        })
        .await
        .expect("transaction");
    assert_eq!(store.get::<Person>(&1).await.expect("get").map(|p| p.version), Some(3));
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
