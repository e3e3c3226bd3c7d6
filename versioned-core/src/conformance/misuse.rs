//! Misuse fails fast with a message that names it, never a hang.

use std::time::Duration;

use super::{Account, setup};
use crate::error::Error;
use crate::storage::Storage;
use crate::store::Store;

#[track_caller]
fn assert_refused(result: Result<Result<impl std::fmt::Debug, Error>, tokio::time::error::Elapsed>, op: &str) {
    match result {
        Err(_) => panic!("store.{op} inside the store's own transaction hung"),
        Ok(Err(err @ Error::StoreUsedInsideTransaction { operation })) => {
            assert_eq!(operation, op);
            let message = err.to_string();
            assert!(message.contains(&format!("tx.{op}()")), "the message must name the handle to use: {message}");
        }
        Ok(other) => {
            panic!("store.{op} inside its own transaction: expected StoreUsedInsideTransaction, got {other:?}")
        }
    }
}

/// Reading or writing through the store (instead of the transaction handle) inside a
/// transaction closure, or opening a nested transaction on it, fails at once with
/// [`Error::StoreUsedInsideTransaction`] instead of waiting for the open transaction forever
/// (or until a busy timeout). The outer transaction then rolls back as for any error.
pub async fn store_writes_inside_its_own_transaction_fail_fast<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut Account { id: 1, balance: 10, version: 0 }).await.expect("insert");
    let limit = Duration::from_secs(2);

    let inner = store.clone();
    let put = store.transaction(|tx| async move {
        let mut a = tx.get_for_update::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
        a.balance = 0;
        inner.put(&mut a).await
    });
    assert_refused(tokio::time::timeout(limit, put).await, "put");

    let inner = store.clone();
    let nested = store.transaction(|tx| async move {
        tx.get::<Account>(&1).await?;
        inner.transaction(|tx2| async move { tx2.get::<Account>(&1).await }).await
    });
    assert_refused(tokio::time::timeout(limit, nested).await, "transaction");

    let inner = store.clone();
    let update = store
        .transaction(|_tx| async move { inner.update::<Account, _>(&1, Default::default(), |a| a.balance += 1).await });
    assert_refused(tokio::time::timeout(limit, update).await, "update");

    let inner = store.clone();
    let get = store.transaction(|_tx| async move { inner.get::<Account>(&1).await });
    assert_refused(tokio::time::timeout(limit, get).await, "get");

    let inner = store.clone();
    let insert =
        store.transaction(|_tx| async move { inner.insert(&mut Account { id: 2, balance: 1, version: 0 }).await });
    assert_refused(tokio::time::timeout(limit, insert).await, "insert");

    assert_eq!(store.get::<Account>(&1).await.expect("get"), Some(Account { id: 1, balance: 10, version: 1 }));
    assert_eq!(store.get::<Account>(&2).await.expect("get"), None);

    // Another task's writes are another matter: they wait for the transaction, then apply.
    let other = store.clone();
    store
        .transaction(|tx| async move {
            let mut a = tx.get::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
            a.balance += 1;
            tx.put(&mut a).await
        })
        .await
        .expect("a transaction alone");
    let task = tokio::spawn(async move { other.update::<Account, _>(&1, Default::default(), |a| a.balance).await });
    assert_eq!(task.await.expect("task").expect("update from another task"), 11);
}
