//! [`LockWait`]: how long pessimistic locking waits for a record another transaction holds.

use std::time::Duration;

/// How long [`Transaction::get_for_update`](crate::Transaction::get_for_update) waits for a record
/// that another transaction has locked, before failing with
/// [`Error::LockTimeout`](crate::Error::LockTimeout).
///
/// Set it for a store with [`Store::with_lock_wait`](crate::Store::with_lock_wait), or for one
/// call with [`Transaction::get_for_update_with`](crate::Transaction::get_for_update_with).
///
/// ```
/// use std::time::Duration;
/// use versioned_core::{LockWait, Store};
///
/// let store = Store::memory().with_lock_wait(LockWait::Timeout(Duration::from_millis(200)));
/// assert_eq!(LockWait::default(), LockWait::Timeout(Duration::from_secs(5)));
/// # let _ = store;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Wait as long as it takes.
    Forever,
    /// Wait up to this long (PostgreSQL's `lock_timeout`, MySQL's `innodb_lock_wait_timeout`).
    Timeout(Duration),
    /// Do not wait: fail at once if the record is locked (SQL's `NOWAIT`).
    NoWait,
}

impl Default for LockWait {
    /// Up to 5 seconds, as long as SQLite waits for its write lock.
    fn default() -> Self {
        LockWait::Timeout(Duration::from_secs(5))
    }
}
