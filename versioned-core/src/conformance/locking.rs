//! Pessimistic locking: `get_for_update` and how long it waits for a record another transaction
//! holds.

use std::time::{Duration, Instant};

use super::{Account, setup};
use crate::error::Error;
use crate::lock::LockWait;
use crate::retry::RetryPolicy;
use crate::storage::Storage;
use crate::store::Store;
use crate::value::Value;

/// Checks that `result` is a retryable [`Error::LockTimeout`]; `named`: that it names account 1
/// (a record lock; SQLite's wait, for the whole database when a transaction begins, names none).
#[track_caller]
fn assert_lock_timeout<T: std::fmt::Debug>(result: Result<T, Error>, named: bool, what: &str) {
    match result {
        Err(err @ Error::LockTimeout { .. }) => {
            assert!(err.is_retryable() && !err.is_conflict(), "{what}: a lock timeout is retryable, not a conflict");
            if let Error::LockTimeout { table, key } = &err {
                let expected = if named { (Some("account"), Some(Value::Int(1))) } else { (None, None) };
                assert_eq!((*table, key.clone()), expected, "{what}: names the record it waited for");
            }
        }
        other => panic!("{what}: expected Error::LockTimeout, got {other:?}"),
    }
}

/// While another transaction holds a record with `get_for_update`: `NoWait` fails at once with
/// [`Error::LockTimeout`], `Timeout(d)` after about `d`, other records are not blocked, and
/// `Forever` gets the record once the holder ends; as the store says
/// ([`Store::with_lock_wait`]), for its transactions and its `update`, or as one call says
/// (`get_for_update_with`). Where transactions hold the whole database (SQLite), the store's wait
/// is the wait for it when a transaction begins, not the connection's busy timeout (5 s), and the
/// timeout names no record.
pub async fn lock_waits_end_in_lock_timeout<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut Account { id: 1, balance: 1, version: 0 }).await.expect("insert 1");
    store.insert(&mut Account { id: 2, balance: 2, version: 0 }).await.expect("insert 2");
    // Long enough for a one-second wait to expire first (MySQL counts lock waits in seconds).
    let hold = Duration::from_millis(2_500);
    let (locked, is_locked) = tokio::sync::oneshot::channel();
    let other = store.clone();
    let holder = tokio::spawn(async move {
        other
            .transaction(|tx| async move {
                let mut a = tx.get_for_update::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
                let _ = locked.send(Instant::now());
                tokio::time::sleep(hold).await;
                a.balance = 10;
                tx.put(&mut a).await
            })
            .await
    });
    let since = is_locked.await.expect("the holder locked account 1");
    let records = store.backend().capabilities().locks_records;

    // The store's wait, on every backend.
    let nowait = store.clone().with_lock_wait(LockWait::NoWait);
    let started = Instant::now();
    let refused = nowait.transaction(|tx| async move { tx.get_for_update::<Account>(&1).await });
    assert_lock_timeout(refused.await, records, "the store's NoWait");
    assert!(started.elapsed() < Duration::from_millis(300), "the store's NoWait waited {:?}", started.elapsed());
    if store.backend().capabilities().locks_updates() {
        let started = Instant::now();
        let refused = nowait.update::<Account, _>(&1, RetryPolicy::no_retry(), |a| a.balance += 1).await;
        match refused {
            Err(Error::RetriesExhausted { attempts: 1, last }) => {
                assert_lock_timeout(Err::<(), _>(*last), records, "update with the store's NoWait")
            }
            other => panic!("update with the store's NoWait: expected RetriesExhausted, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_millis(300), "update waited {:?}", started.elapsed());
    }

    if records {
        let started = Instant::now();
        let nowait =
            store.transaction(|tx| async move { tx.get_for_update_with::<Account>(&1, LockWait::NoWait).await });
        assert_lock_timeout(nowait.await, true, "NoWait");
        assert!(started.elapsed() < Duration::from_millis(300), "NoWait waited {:?}", started.elapsed());

        let started = Instant::now();
        let limit = LockWait::Timeout(Duration::from_secs(1));
        let timeout = store.transaction(|tx| async move { tx.get_for_update_with::<Account>(&1, limit).await });
        assert_lock_timeout(timeout.await, true, "Timeout(1 s)");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(950) && waited < Duration::from_millis(2_000), "waited {waited:?}");

        let free = store.transaction(|tx| async move { tx.get_for_update_with::<Account>(&2, LockWait::NoWait).await });
        assert_eq!(free.await.expect("another record is not locked").map(|a| a.balance), Some(2));

        let forever =
            store.transaction(|tx| async move { tx.get_for_update_with::<Account>(&1, LockWait::Forever).await });
        let seen = forever.await.expect("Forever waits for the holder").expect("account 1");
        assert!(since.elapsed() >= hold, "the record was handed over only when the holder ended");
        assert_eq!((seen.balance, seen.version), (10, 2), "and shows what the holder committed");
    } else {
        // The transaction waits for the whole database when it begins, as the store says: well
        // under the connection's busy timeout of 5 s.
        let limited = store.clone().with_lock_wait(LockWait::Timeout(Duration::from_secs(1)));
        let started = Instant::now();
        let timeout = limited.transaction(|tx| async move { tx.get_for_update::<Account>(&1).await });
        assert_lock_timeout(timeout.await, false, "the store's Timeout(1 s)");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(3), "waited {waited:?}");

        let forever = store.clone().with_lock_wait(LockWait::Forever);
        let after = forever.transaction(|tx| async move { tx.get_for_update::<Account>(&1).await });
        let seen = after.await.expect("the transaction begins once the holder ends").expect("account 1");
        assert!(since.elapsed() >= hold, "a second transaction waited for the whole database");
        assert_eq!((seen.balance, seen.version), (10, 2));
    }
    holder.await.expect("holder task").expect("holder transaction");
}

/// `get_for_update` locks the record: a second writer waits until the first transaction commits,
/// then sees its write.
pub async fn get_for_update_blocks_a_second_writer_until_commit<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut Account { id: 1, balance: 0, version: 0 }).await.expect("insert");
    let second = store.clone();
    store
        .transaction(|tx| async move {
            let mut locked = tx.get_for_update::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
            let waiter = tokio::spawn(async move {
                second
                    .transaction(|tx2| async move {
                        let mut a =
                            tx2.get_for_update::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
                        let seen = a.balance;
                        a.balance += 1;
                        tx2.put(&mut a).await?;
                        Ok(seen)
                    })
                    .await
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(!waiter.is_finished(), "the second writer must wait for the lock");
            locked.balance = 100;
            tx.put(&mut locked).await?;
            Ok(waiter)
        })
        .await
        .expect("first transaction")
        .await
        .map(|seen| assert_eq!(seen.expect("second transaction"), 100, "the second writer ran after the commit"))
        .expect("task");
    let account = store.get::<Account>(&1).await.expect("get").expect("present");
    assert_eq!((account.balance, account.version), (101, 3));
}
