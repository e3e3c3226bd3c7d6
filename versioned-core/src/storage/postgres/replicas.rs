//! Streaming read replicas of a PostgreSQL store: where its reads outside transactions go.
//!
//! A read outside a transaction (`get`, `get_many`, a query without a lock, a count) goes to a
//! replica, in turn; every write, every transaction and every locking read goes to the primary.
//! A copy read from a lagging replica is caught by the version check of the write on the
//! primary, as any stale copy is, and [`Store::update`](crate::Store::update)'s next attempt reads
//! the record (hot after that conflict) locked, in a transaction on the primary, which cannot be
//! stale. The reads that decide a write (a patch's) or describe a refused one are made on the
//! primary ([`RowAccess::fetch_current`](crate::storage::RowAccess::fetch_current)).
//!
//! A replica that fails (it cannot be reached, its connection broke, it does not answer within
//! [`Replicas::READ_TIMEOUT`]) is passed over for [`Replicas::RETRY_AFTER`] and the read goes to
//! the next one, or to the primary; it is tried again after that, and serves again once it is
//! back.
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
    /// Until when reads go to the primary: a write's position could not be read.
    primary_until: Mutex<Option<Instant>>,
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

    /// How long a read may take on a replica before the replica counts as hung (paused, cut off
    /// without a reset), is passed over, and the read goes to the next one or the primary.
    pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(10);

    pub(crate) fn new(pools: Vec<PgPool>, read_your_writes: Option<Duration>) -> Self {
        let members = pools.into_iter().map(|pool| Replica { pool, down_until: Mutex::new(None) }).collect();
        Replicas {
            members,
            next: AtomicUsize::new(0),
            read_your_writes,
            last_write: AtomicU64::new(0),
            primary_until: Mutex::new(None),
        }
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

    /// Notes a write whose WAL position could not be read: reads go to the primary for
    /// [`RETRY_AFTER`](Self::RETRY_AFTER) (by then the replicas have most likely replayed it).
    pub(crate) fn unknown_write(&self) {
        *self.primary_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Instant::now() + Self::RETRY_AFTER);
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
        let until = *self.primary_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if until.is_some_and(|until| Instant::now() < until) {
            return Ok(Outcome::Primary);
        }
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
            // Bounded: a replica that hangs (paused, cut off without a reset) is passed over.
            let bound = self.read_your_writes.unwrap_or_default();
            let attempt = tokio::time::timeout(bound + Self::RETRY_AFTER, async {
                if self.read_your_writes.is_some() {
                    match self.caught_up(&mut conn, bound).await {
                        Ok(true) => {}
                        Ok(false) => return None,
                        Err(err) => return Some(Err(Error::from(crate::error::StorageError::new(err)))),
                    }
                }
                state.check(&mut conn, table).await.err().map(Err).or(Some(Ok(())))
            })
            .await;
            let done = match attempt {
                Err(_) => {
                    // Whatever the connection was doing is abandoned with it.
                    conn.close_on_drop();
                    replica.fail(&"no answer in time");
                    continue;
                }
                // Not caught up with the store's last write in time: the next, or the primary.
                Ok(None) => continue,
                Ok(Some(Err(err))) => Err(err),
                Ok(Some(Ok(()))) => {
                    let read = read.clone();
                    let on = &mut OnConnection { conn: &mut Conn(&mut *conn), table, statements: &state.statements };
                    match tokio::time::timeout(Self::READ_TIMEOUT, read(on)).await {
                        Ok(done) => done,
                        Err(_) => {
                            conn.close_on_drop();
                            replica.fail(&"no answer in time");
                            continue;
                        }
                    }
                }
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
