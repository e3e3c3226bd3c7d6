//! Dropped futures: a transaction is applied whole or not at all, and whether it is applied is
//! decided by its closure returning `Ok`, not by how far an abandoned future happened to get.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use super::{Account, Xorshift, patient, setup, transfer};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::store::Store;
use crate::transaction::Transaction;

/// Polls `future` until it completes or `polls` polls have been made (yielding to the runtime in
/// between, so its I/O makes progress), then drops it. Returns whether it completed.
pub(crate) async fn poll_then_drop<F: Future>(future: F, polls: u64) -> bool {
    let mut future = pin!(future);
    for _ in 0..polls {
        if poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_ready())).await {
            return true;
        }
        tokio::task::yield_now().await;
    }
    false
}

/// Moves 1 from account 1 to account 2 in `tx`.
async fn transfer_one<S: Storage>(tx: Transaction<S>) -> Result<()> {
    transfer(&tx, 1, 2, 1).await
}

/// How many polls one transfer takes to complete on this backend (yielding in between), after
/// which the accounts are one transfer further.
async fn polls_to_transfer<S: Storage>(store: &Store<S>) -> u64 {
    let transfer = store.transaction(transfer_one);
    let mut transfer = pin!(transfer);
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(done) = poll_fn(|cx| Poll::Ready(transfer.as_mut().poll(cx))).await {
            done.expect("a transfer");
            return polls;
        }
        tokio::task::yield_now().await;
    }
}

/// Both accounts, read locked in one transaction, so that a commit landing meanwhile is seen
/// whole (at READ COMMITTED each statement has a snapshot of its own).
async fn both<S: Storage>(store: &Store<S>) -> (Account, Account) {
    store
        .transaction_with_retry(patient(), |tx| async move {
            let one = tx.get_for_update::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
            let two = tx.get_for_update::<Account>(&2).await?.ok_or_else(|| Error::not_found::<Account>(&2))?;
            Ok((one, two))
        })
        .await
        .expect("read both accounts")
}

/// Thousands of transfer transactions, each polled a random number of times and then dropped.
/// One whose closure had returned `Ok` must be committed (its commit finishes in the background);
/// one whose closure had not must never be; none is ever half applied.
pub async fn cancelled_transactions_commit_whole_or_not_at_all<S: Storage>(store: &Store<S>) {
    const ROUNDS: u64 = 2_000;
    setup(store).await;
    store.insert(&mut Account { id: 1, balance: 1_000_000, version: 0 }).await.expect("insert 1");
    store.insert(&mut Account { id: 2, balance: 0, version: 0 }).await.expect("insert 2");
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    // Drop points from none to past the end: a backend over the network needs more polls than one
    // in memory, so the range is twice what a transfer took here, and at least 160.
    let budget = (2 * polls_to_transfer(store).await).max(160);
    // The accounts' version and account 2's balance before the rounds: inserted, then one transfer.
    let (base_version, base_balance) = (2, 1);
    let (mut committed, mut decided_then_dropped, mut dropped_undecided) = (0u64, 0u64, 0u64);

    for round in 0..ROUNDS {
        // Every third round, another task holds account 2 with `get_for_update` for a moment, so
        // the transfer waits (at commit, on an optimistic backend) and is dropped while waiting.
        let holder = if round % 3 == 0 {
            let (locked, is_locked) = tokio::sync::oneshot::channel();
            let other = store.clone();
            let holder = tokio::spawn(async move {
                other
                    .transaction(|tx| async move {
                        tx.get_for_update::<Account>(&2).await?;
                        let _ = locked.send(());
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        Ok(())
                    })
                    .await
            });
            is_locked.await.expect("the holder locked account 2");
            Some(holder)
        } else {
            None
        };
        let decided = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&decided);
        let transfer = store.transaction(|tx| async move {
            transfer_one(tx).await?;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        let completed = poll_then_drop(transfer, rng.below(budget)).await;
        let decided = decided.load(Ordering::SeqCst);
        if decided {
            committed += 1;
            if !completed {
                decided_then_dropped += 1;
            }
        } else {
            assert!(!completed, "round {round}: a transaction completed without its closure finishing");
            dropped_undecided += 1;
        }

        if let Some(holder) = holder {
            holder.await.expect("holder task").expect("holder transaction");
        }
        // A decided commit may still be finishing in the background: wait for it, boundedly.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (from, to) = both(store).await;
            assert_eq!(from.balance + to.balance, 1_000_000, "round {round}: money appeared or vanished");
            assert_eq!(from.version, to.version, "round {round}: half a transfer was applied");
            if from.version == base_version + committed {
                assert_eq!(to.balance as u64, base_balance + committed, "round {round}: balance and version disagree");
                break;
            }
            assert!(
                from.version < base_version + committed,
                "round {round}: {} transfers applied but only {committed} closures finished",
                from.version - base_version
            );
            assert!(Instant::now() < deadline, "round {round}: a decided commit never finished");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    println!(
        "cancellation: {ROUNDS} transactions polled a random number of times and dropped: {dropped_undecided} \
         dropped before their closure finished (none applied), {committed} applied whole ({decided_then_dropped} \
         of them dropped while committing, and committed in the background)"
    );
    assert!(
        dropped_undecided > 0 && decided_then_dropped > 0,
        "the random polls must cover both sides: {dropped_undecided} dropped undecided, {committed} committed \
         ({decided_then_dropped} of them dropped while committing)"
    );
}

/// A transaction future dropped midway (here by a timeout) leaves nothing behind, and the store
/// takes writes again afterwards.
pub async fn dropped_transaction_future_leaves_nothing_behind<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut Account { id: 1, balance: 5, version: 0 }).await.expect("insert");
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        store.transaction(|tx| async move {
            let mut a = tx.get_for_update::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
            a.balance = 0;
            tx.put(&mut a).await?;
            tx.insert(&mut Account { id: 2, balance: 7, version: 0 }).await?;
            std::future::pending::<()>().await;
            Ok(())
        }),
    )
    .await;
    assert!(abandoned.is_err(), "the transaction never finishes on its own");
    assert_eq!(store.get::<Account>(&1).await.expect("get"), Some(Account { id: 1, balance: 5, version: 1 }));
    assert_eq!(store.get::<Account>(&2).await.expect("get"), None);
    let after = store.update::<Account, _>(&1, patient(), |a| {
        a.balance += 1;
        a.balance
    });
    assert_eq!(after.await.expect("the lock is released"), 6);
}
