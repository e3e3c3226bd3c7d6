//! Savepoints: a failed one undoes only its own writes, they nest, the outer handle waits for them,
//! and a lock refused inside one leaves the transaction usable.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use super::{Account, Person, abort, ann, person, setup};
use crate::error::Error;
use crate::lock::LockWait;
use crate::storage::Storage;
use crate::store::Store;

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
    if !store.backend().capabilities().locks_records {
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
