//! The servers a MySQL store talks to: one, or the nodes of a MariaDB Galera cluster, of which it
//! uses one at a time and moves to the next when that one fails.
//!
//! On Galera every node takes writes; two transactions that change one row on two nodes are
//! settled at commit by certification, and the loser gets a deadlock error (1213), which is a
//! retryable conflict here as on one server. A node that cannot be reached, whose connection
//! broke, or that is not ready for clients (1047, while it joins or has lost its cluster) makes
//! the store move to the next node: the operation that met it fails (retryably where nothing was
//! sent, as an unknown outcome where a statement was), and the next one runs on the next node.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::MySqlPool;

use crate::error::Error;

/// The servers of a store, and the one in use.
#[derive(Debug)]
pub(crate) struct Nodes {
    pools: Vec<MySqlPool>,
    current: AtomicUsize,
}

impl Nodes {
    pub(crate) fn one(pool: MySqlPool) -> Self {
        Nodes { pools: vec![pool], current: AtomicUsize::new(0) }
    }

    pub(crate) fn many(pools: Vec<MySqlPool>) -> Self {
        Nodes { pools, current: AtomicUsize::new(0) }
    }

    /// The node in use, and its index.
    pub(crate) fn current(&self) -> (usize, &MySqlPool) {
        let at = self.current.load(Ordering::Acquire) % self.pools.len();
        (at, &self.pools[at])
    }

    /// Notes how an operation on node `at` ended: a failure of the node itself moves the store
    /// to the next node (once, however many operations met it).
    pub(crate) fn note<T>(&self, at: usize, result: &Result<T, Error>) {
        if self.pools.len() > 1
            && let Err(err) = result
            && node_failed(err)
        {
            let next = (at + 1) % self.pools.len();
            if self.current.compare_exchange(at, next, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                tracing::warn!(error = %err, node = at, next, "a Galera node failed; the store moves to the next");
            }
        }
    }
}

/// Whether `err` says the node failed (unreachable, its connection broken, not ready for
/// clients), rather than refusing one operation.
fn node_failed(err: &Error) -> bool {
    let Error::Storage(storage) = err else { return false };
    let Some(sqlx) = std::error::Error::source(storage).and_then(|source| source.downcast_ref::<sqlx::Error>()) else {
        return false;
    };
    match sqlx {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // ER_UNKNOWN_COM_ERROR: Galera's "WSREP has not yet prepared node for application use";
        // ER_SERVER_SHUTDOWN.
        sqlx::Error::Database(db) => {
            matches!(db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|e| e.number()), Some(1047 | 1053))
        }
        _ => false,
    }
}
