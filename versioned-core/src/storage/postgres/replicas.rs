//! Streaming read replicas of a PostgreSQL store: where its reads outside transactions go.
//!
//! A read outside a transaction (`get`, `get_many`, a query without a lock, a count) goes to a
//! replica, in turn; every write, every transaction and every locking read goes to the primary.
//! A copy read from a lagging replica is caught by the version check of the write on the
//! primary, as any stale copy is, and [`Store::update`](crate::Store::update) retries from the
//! stored record that refusal read on the primary, which cannot be stale.
//!
//! A replica that fails (it cannot be reached, its connection broke) is passed over for
//! [`Replicas::RETRY_AFTER`] and the read goes to the next one, or to the primary; it is tried
//! again after that, and serves again once it is back.
//!
//! With read-your-writes, the store keeps the primary's WAL position after each of its writes
//! and commits (one more statement per write), and a replica read first waits until the replica
//! has replayed that far, up to a bound, then goes to the primary instead.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::{PgPool, Postgres};

use super::PgTable;
use crate::entity::TableDef;
use crate::error::{Error, Result};
use crate::storage::sql::driver::Conn;
use crate::storage::sql::rows::OnConnection;

/// The replicas of a store, and what it knows of them.
#[derive(Debug)]
pub(crate) struct Replicas {
    members: Vec<Replica>,
    /// The next replica to ask, modulo their number.
    next: AtomicUsize,
    /// Read-your-writes: how long a read waits for a replica to replay the store's last write.
    pub(crate) read_your_writes: Option<Duration>,
    /// The primary's WAL position after the store's last write (0: none yet), with
    /// read-your-writes.
    last_write: AtomicU64,
}

#[derive(Debug)]
struct Replica {
    pool: PgPool,
    /// Until when it is passed over, after a failure.
    down_until: Mutex<Option<Instant>>,
}

/// How a replica read went.
pub(crate) enum Outcome<T> {
    /// Answered by a replica.
    Read(T),
    /// No replica could answer now (all down, or none caught up in time): read the primary.
    Primary,
}

impl Replicas {
    /// How long a replica that failed is passed over before it is tried again.
    pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

    pub(crate) fn new(pools: Vec<PgPool>, read_your_writes: Option<Duration>) -> Self {
        let members = pools.into_iter().map(|pool| Replica { pool, down_until: Mutex::new(None) }).collect();
        Replicas { members, next: AtomicUsize::new(0), read_your_writes, last_write: AtomicU64::new(0) }
    }

    /// The replicas' pools.
    pub(crate) fn pools(&self) -> impl Iterator<Item = &PgPool> {
        self.members.iter().map(|m| &m.pool)
    }

    /// Notes the primary's WAL position `lsn` (as PostgreSQL writes it, `16/B374D848`) after a
    /// write of the store.
    pub(crate) fn wrote(&self, lsn: &str) {
        if let Some(lsn) = parse_lsn(lsn) {
            self.last_write.fetch_max(lsn, Ordering::AcqRel);
        }
    }

    /// `read` on a replica: each replica that is up, in turn, until one answers. A replica whose
    /// connection fails is passed over for a while; a replica that has not replayed the store's
    /// last write within the read-your-writes bound is passed over for this read.
    pub(crate) async fn read<T>(
        &self,
        table: &'static TableDef,
        state: &PgTable,
        read: impl AsyncFnOnce(&mut OnConnection<'_, Conn<'_, Postgres>>) -> Result<T> + Clone,
    ) -> Result<Outcome<T>> {
        let count = self.members.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for at in 0..count {
            let replica = &self.members[(first + at) % count];
            if !replica.up() {
                continue;
            }
            let mut conn = match replica.pool.acquire().await {
                Ok(conn) => conn,
                Err(err) => {
                    replica.fail(&err);
                    continue;
                }
            };
            if let Some(bound) = self.read_your_writes {
                match self.caught_up(&mut conn, bound).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(err) => {
                        replica.fail(&err);
                        continue;
                    }
                }
            }
            let read = read.clone();
            let done = match state.check(&mut conn, table).await {
                Ok(()) => {
                    read(&mut OnConnection { conn: &mut Conn(&mut *conn), table, statements: &state.statements }).await
                }
                Err(err) => Err(err),
            };
            match done {
                // The server or the connection failed, not the read: the primary answers.
                Err(Error::Storage(err)) => {
                    replica.fail(&err);
                    continue;
                }
                done => return done.map(Outcome::Read),
            }
        }
        Ok(Outcome::Primary)
    }

    /// Whether the replica on `conn` has replayed the store's last write, waiting up to `bound`.
    async fn caught_up(
        &self,
        conn: &mut sqlx::PgConnection,
        bound: Duration,
    ) -> std::result::Result<bool, sqlx::Error> {
        let wanted = self.last_write.load(Ordering::Acquire);
        if wanted == 0 {
            return Ok(true);
        }
        let deadline = Instant::now() + bound;
        let mut pause = Duration::from_micros(500);
        loop {
            let replayed: Option<String> =
                sqlx::query_scalar("SELECT pg_last_wal_replay_lsn()::text").fetch_one(&mut *conn).await?;
            // No replay position: not a standby (a primary given as a replica), which is current.
            match replayed.as_deref().map(parse_lsn) {
                None => return Ok(true),
                Some(Some(at)) if at >= wanted => return Ok(true),
                _ => {}
            }
            if Instant::now() + pause > deadline {
                return Ok(false);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

impl Replica {
    fn up(&self) -> bool {
        let mut down = self.down_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match *down {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                *down = None;
                true
            }
            None => true,
        }
    }

    fn fail(&self, err: &dyn std::fmt::Display) {
        tracing::warn!(error = %err, "a PostgreSQL read replica failed; reads go elsewhere for a while");
        *self.down_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Instant::now() + Replicas::RETRY_AFTER);
    }
}

/// A WAL position as a number: `16/B374D848` is `0x16_B374D848`.
fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::parse_lsn;

    #[test]
    fn wal_positions_compare_as_numbers() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert!(parse_lsn("1/0") > parse_lsn("0/FFFFFFFF"));
        assert_eq!(parse_lsn("nonsense"), None);
    }
}
