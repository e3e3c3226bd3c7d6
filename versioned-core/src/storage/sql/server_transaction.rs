//! The connection of a server transaction (PostgreSQL, MySQL), which goes back to the pool only
//! once `COMMIT` or `ROLLBACK` has gone through.
//!
//! sqlx's own transaction guard queues a rollback on drop only once `BEGIN` has returned: a future
//! dropped while `BEGIN` is in flight hands the connection back to the pool with the transaction
//! open, and later autocommit writes on it would answer `Ok` and never commit. So the connection
//! is taken from the pool first, and closed (which ends its transaction on the server) unless the
//! transaction was seen to end.
//!
//! It also remembers a statement that failed in a way the server answers by abandoning work:
//! PostgreSQL aborts the transaction (or the savepoint) on any error and answers a later `COMMIT`
//! with a rollback; MySQL rolls the whole transaction back on a deadlock and runs later statements
//! in autocommit. Until such a failure is undone by rolling back to a savepoint set before it,
//! the transaction refuses further statements and its commit, rather than report `Ok` for writes
//! the server has discarded (or commit half of them).

use sqlx::pool::{Pool, PoolConnection};
use sqlx::{AssertSqlSafe, Database, Executor};

use super::driver::{self, Driver};
use crate::error::{Error, Result, StorageError};
use crate::lock::LockWait;
use crate::storage::SavepointStep;

/// A pooled connection inside a transaction.
#[derive(Debug)]
pub(crate) struct ServerTransaction<DB: Database> {
    conn: PoolConnection<DB>,
    /// Whether `COMMIT` or `ROLLBACK` went through: only then may the connection be reused.
    finished: bool,
    /// The lock wait in force on the connection (`None`: unknown).
    pub(crate) lock_wait: Option<LockWait>,
    /// The lock wait the pool's sessions are set up with (`None`: unknown, a pool of yours).
    session_lock_wait: Option<LockWait>,
    /// Whether a lock wait set in the transaction outlives it (a MySQL session variable), so a
    /// connection left with another one is not for the next user.
    lock_wait_outlives: bool,
    /// How many savepoints are open.
    depth: u32,
    /// A failure the server answered by abandoning work, not undone yet.
    failed: Option<Failure>,
}

/// A statement's failure that the server answered by abandoning work.
#[derive(Debug, Clone, Copy)]
struct Failure {
    /// The savepoint depth it happened at; 0 when the whole transaction is lost.
    depth: u32,
    retryable: bool,
}

impl<DB: Driver> ServerTransaction<DB>
where
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
{
    /// Takes a connection from `pool` and runs `begin` on it.
    pub(crate) async fn begin(
        pool: &Pool<DB>,
        begin: &'static str,
        session_lock_wait: Option<LockWait>,
        lock_wait_outlives: bool,
    ) -> Result<Self> {
        let conn = pool.acquire().await.map_err(|e| driver::error::<DB>(None, e))?;
        // From here on, a drop (this future's too) closes the connection unless it is finished.
        let mut tx = ServerTransaction {
            conn,
            finished: false,
            lock_wait: session_lock_wait,
            session_lock_wait,
            lock_wait_outlives,
            depth: 0,
            failed: None,
        };
        tx.execute(begin).await?;
        Ok(tx)
    }

    /// Runs a statement of ours on the connection.
    pub(crate) async fn execute(&mut self, sql: &str) -> Result<()> {
        let sql = AssertSqlSafe(sql.to_owned());
        self.conn.execute(sql).await.map(drop).map_err(|e| driver::error::<DB>(None, e))
    }

    /// Ends the transaction with `sql` (`COMMIT` or `ROLLBACK`). A commit after a failure the
    /// server abandoned work for rolls back instead, and says so.
    pub(crate) async fn finish(self, sql: &'static str) -> Result<()> {
        self.finish_keeping(sql).await.map(drop)
    }

    /// [`finish`](Self::finish), keeping the connection for a statement after it (read on the
    /// same connection, after its commit); it goes back to its pool when dropped.
    pub(crate) async fn finish_keeping(mut self, sql: &'static str) -> Result<Self> {
        if let (Some(failure), "COMMIT") = (self.failed, sql) {
            self.execute("ROLLBACK").await?;
            self.finished = true;
            return Err(failure.error());
        }
        self.execute(sql).await?;
        self.finished = true;
        Ok(self)
    }

    /// Refuses a statement while a failure is not undone: the server would refuse it
    /// (PostgreSQL), or run it outside the transaction (MySQL after a deadlock).
    pub(crate) fn usable(&self) -> Result<()> {
        self.failed.map_or(Ok(()), |failure| Err(failure.error()))
    }

    /// Notes the outcome of one of the transaction's statements: `abandons` says whether the
    /// server abandoned work for an error, and how much: `Some(true)` the whole transaction,
    /// `Some(false)` what was done since the innermost savepoint (the whole transaction outside
    /// any), `None` nothing.
    pub(crate) fn note<T>(&mut self, result: &Result<T>, abandons: impl FnOnce(&Error) -> Option<bool>) {
        if let Err(err) = result
            && let Some(whole) = abandons(err)
        {
            let depth = if whole { 0 } else { self.depth };
            let failure = Failure { depth, retryable: err.is_retryable() };
            self.failed = Some(match self.failed {
                Some(earlier) if earlier.depth <= depth => earlier,
                _ => failure,
            });
        }
    }

    /// Follows the savepoints, so that rolling back to one set before a failure undoes it.
    pub(crate) fn stepped(&mut self, step: SavepointStep) {
        match step {
            SavepointStep::Set { depth } => self.depth = depth,
            SavepointStep::RollBack { depth } => {
                self.depth = depth.saturating_sub(1);
                if self.failed.is_some_and(|f| f.depth >= depth) {
                    self.failed = None;
                }
            }
            SavepointStep::Release { depth } => {
                self.depth = depth.saturating_sub(1);
                if let Some(failure) = &mut self.failed {
                    failure.depth = failure.depth.min(self.depth);
                }
            }
        }
    }

    /// The connection, for the transaction's statements.
    pub(crate) fn connection(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl Failure {
    fn error(self) -> Error {
        let message = "an earlier statement of this transaction failed and the database abandoned its work \
                       (PostgreSQL aborts the transaction on any error, MySQL rolls it back on a deadlock): it \
                       can only be rolled back, or rolled back to a savepoint set before the failure";
        if self.retryable { StorageError::retryable(message).into() } else { StorageError::new(message).into() }
    }
}

impl<DB: Database> Drop for ServerTransaction<DB> {
    fn drop(&mut self) {
        // Still inside the transaction (or not known to be out of it), or with a lock wait the
        // pool's sessions do not have: not for the next user. Closing it rolls it back.
        if !self.finished || (self.lock_wait_outlives && self.lock_wait != self.session_lock_wait) {
            self.conn.close_on_drop();
        }
    }
}
