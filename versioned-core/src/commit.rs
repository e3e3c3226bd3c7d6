//! Ending a backend transaction once its closure is done: committed if the closure returned `Ok`
//! (to its end, even if the caller's future is dropped meanwhile), rolled back otherwise.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::{Result, StorageError};
use crate::observe::{Kind, Operation, observed};
use crate::storage::StorageTransaction;

/// Takes the backend transaction back from the handle once the closure is done with it.
pub(crate) fn reclaim<X>(tx: Arc<X>) -> Result<X> {
    Arc::try_unwrap(tx).map_err(|_| {
        StorageError::new(
            "the transaction handle is still in use after its closure returned (moved into a task?); \
             nothing was committed",
        )
        .into()
    })
}

/// Commits `tx` if `result` is `Ok`; otherwise rolls it back and returns the error unchanged.
///
/// Once the closure has returned `Ok`, the commit runs to its end even if the caller's future is
/// dropped meanwhile (it is finished on a background task): the decision to commit is made when
/// the closure succeeds, never by how far an abandoned future happened to get.
pub(crate) async fn finish<X: StorageTransaction, R>(tx: X, result: Result<R>) -> Result<R> {
    match result {
        Ok(value) => {
            observed!(Operation::spanning("commit"), Kind::Commit, |_| ("committed", 0), Detached::new(tx.commit()))?;
            Ok(value)
        }
        Err(err) => {
            if let Err(rollback) = tx.rollback().await {
                // The original error is what the caller needs; a backend whose explicit rollback
                // fails still discards the writes when the connection is dropped.
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(err)
        }
    }
}

/// A future that, when dropped before it completes, is finished on a background task instead of
/// being abandoned midway.
struct Detached<F: Future<Output = Result<()>> + Send + 'static>(Option<Pin<Box<F>>>);

impl<F: Future<Output = Result<()>> + Send + 'static> Detached<F> {
    fn new(future: F) -> Self {
        Detached(Some(Box::pin(future)))
    }
}

impl<F: Future<Output = Result<()>> + Send + 'static> Future for Detached<F> {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(future) = self.0.as_mut() else {
            return Poll::Ready(Err(StorageError::new("a commit future was polled after it completed").into()));
        };
        let done = future.as_mut().poll(cx);
        if done.is_ready() {
            self.0 = None;
        }
        done
    }
}

impl<F: Future<Output = Result<()>> + Send + 'static> Drop for Detached<F> {
    fn drop(&mut self) {
        let Some(future) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(err) = future.await {
                        tracing::warn!(error = %err, "a commit finished after its caller was dropped failed");
                    }
                });
            }
            // Dropped outside any runtime: nothing can drive the commit, and the backend rolls
            // back what it had not committed.
            Err(_) => tracing::warn!("a commit was abandoned outside a tokio runtime"),
        }
    }
}
