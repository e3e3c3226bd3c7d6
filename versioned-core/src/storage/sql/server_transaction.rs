//! The connection of a server transaction (PostgreSQL, MySQL), which goes back to the pool only
//! once `COMMIT` or `ROLLBACK` has gone through.
//!
//! sqlx's own transaction guard queues a rollback on drop only once `BEGIN` has returned: a future
//! dropped while `BEGIN` is in flight hands the connection back to the pool with the transaction
//! open, and later autocommit writes on it would answer `Ok` and never commit. So the connection
//! is taken from the pool first, and closed (which ends its transaction on the server) unless the
//! transaction was seen to end.

use sqlx::pool::{Pool, PoolConnection};
use sqlx::{AssertSqlSafe, Database, Executor};

use super::driver::{self, Driver};
use crate::error::Result;
use crate::lock::LockWait;

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
        };
        tx.execute(begin).await?;
        Ok(tx)
    }

    /// Runs a statement of ours on the connection.
    pub(crate) async fn execute(&mut self, sql: &str) -> Result<()> {
        let sql = AssertSqlSafe(sql.to_owned());
        self.conn.execute(sql).await.map(drop).map_err(|e| driver::error::<DB>(None, e))
    }

    /// Ends the transaction with `sql` (`COMMIT` or `ROLLBACK`).
    pub(crate) async fn finish(mut self, sql: &'static str) -> Result<()> {
        self.execute(sql).await?;
        self.finished = true;
        Ok(())
    }

    /// The connection, for the transaction's statements.
    pub(crate) fn connection(&mut self) -> &mut DB::Connection {
        &mut self.conn
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
