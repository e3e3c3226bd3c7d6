//! The guard against a store used inside one of its own transactions on the same task: such a
//! call would bypass the transaction and wait for it, while it cannot end before the call does.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

tokio::task_local! {
    /// The storages (their `Capabilities::identity`) whose transaction closures this task is running.
    static OPEN_TRANSACTIONS: Vec<usize>;
}

/// Refuses `operation` through the store of `identity` when this task is inside one of that
/// storage's own transactions: the operation would wait for that transaction, which cannot end
/// before the operation does.
#[inline]
pub(crate) fn refuse_inside_own_transaction(identity: Option<usize>, operation: &'static str) -> Result<()> {
    let Some(id) = identity else { return Ok(()) };
    // No closure running anywhere: no need to look at the task's own list. (A task inside one
    // counted it before its first await; moving between threads synchronizes, so it sees it.)
    if CLOSURES_RUNNING.load(Ordering::Relaxed) == 0 {
        return Ok(());
    }
    refuse_if_open(id, operation)
}

/// [`refuse_inside_own_transaction`] while some closure runs: the task's own list decides.
#[cold]
fn refuse_if_open(id: usize, operation: &'static str) -> Result<()> {
    if OPEN_TRANSACTIONS.try_with(|open| open.contains(&id)).unwrap_or(false) {
        return Err(Error::StoreUsedInsideTransaction { operation });
    }
    Ok(())
}

/// Runs a transaction's closure `future`, marked as inside a transaction of `identity`.
pub(crate) async fn inside<F: Future>(identity: Option<usize>, future: F) -> F::Output {
    let Some(id) = identity else { return future.await };
    let mut open = OPEN_TRANSACTIONS.try_with(Vec::clone).unwrap_or_default();
    open.push(id);
    let _running = Running::start();
    OPEN_TRANSACTIONS.scope(open, future).await
}

/// How many transaction closures are running, in every task: while none is, operations skip the
/// task-local lookup of [`refuse_inside_own_transaction`].
static CLOSURES_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Counts one running closure until dropped (finished or cancelled).
struct Running;

impl Running {
    fn start() -> Self {
        CLOSURES_RUNNING.fetch_add(1, Ordering::Relaxed);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        CLOSURES_RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}
