//! Transactions dropped at random points, `BEGIN` included, on a server backend: afterwards no
//! connection of the pool may still be inside a transaction, and every write that answered `Ok`
//! is committed. Shared by the PostgreSQL and MySQL binaries; each asserts the server's own view
//! of its sessions.

use versioned::{Error, LockWait, Storage, Store, Versioned};

#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "dropped_counters")]
pub struct Counter {
    #[key]
    pub id: i64,
    pub n: i64,
    #[version]
    pub version: u64,
}

/// How many records the transactions write.
pub const RECORDS: i64 = 4;

/// A small deterministic generator: the drop points differ from round to round, the same on
/// every run.
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Creates the records, then runs `rounds` transactions (a locked read and a put), each polled a
/// random number of times, with the runtime let run between two polls, then dropped: while the
/// pool hands out a connection, while `BEGIN` is in flight, between statements, during `COMMIT`.
pub async fn drop_transactions<S: Storage>(store: &Store<S>, rounds: u64) {
    store.create_table::<Counter>().await.expect("create");
    for id in 1..=RECORDS {
        store.insert(&mut Counter { id, n: 0, version: 0 }).await.expect("insert");
    }
    let increment = |id: i64| {
        store.transaction(move |tx| async move {
            let mut c = tx.get_for_update::<Counter>(&id).await?.ok_or_else(|| Error::not_found::<Counter>(&id))?;
            c.n += 1;
            tx.put(&mut c).await
        })
    };
    // The drop points are drawn from twice the polls a whole transaction takes on this server and
    // machine, so that about half the transactions are dropped midway however fast the server
    // answers: first the median of 21 run to their end, then, every 100 rounds, the median of
    // those of the last 100 that finished (a drop closes a connection, and the next transaction
    // pays for a new one); no finished one in 100 rounds doubles it.
    let mut finished = Vec::new();
    for round in 0..21 {
        finished.push(polls_to_finish(increment(1 + round % RECORDS)).await);
    }
    let mut span = 2 * median(&mut finished);
    finished.clear();
    let mut random = Xorshift(0x9E37_79B9_7F4A_7C15);
    let mut dropped = 0;
    for round in 0..rounds {
        let id = 1 + (round % RECORDS as u64) as i64;
        match poll_then_drop(increment(id), 1 + random.below(span)).await {
            Some(polls) => finished.push(polls),
            None => dropped += 1,
        }
        if round % 100 == 99 {
            span = if finished.is_empty() { 2 * span } else { 2 * median(&mut finished) };
            finished.clear();
        }
    }
    eprintln!("dropped {dropped} of {rounds} (drop points last drawn up to {span} polls)");
    assert!(dropped > rounds / 4, "too few transactions were dropped midway: {dropped} of {rounds}");
}

/// How many polls `future` takes to complete, yielding to the runtime between two polls.
async fn polls_to_finish<F: std::future::Future<Output = versioned::Result<()>>>(future: F) -> u64 {
    let mut future = std::pin::pin!(future);
    let mut polls = 1;
    loop {
        if let std::task::Poll::Ready(done) =
            std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx))).await
        {
            done.expect("a transaction polled to its end");
            return polls;
        }
        polls += 1;
        tokio::task::yield_now().await;
    }
}

/// Polls `future` up to `polls` times, yielding to the runtime between two polls (so its I/O
/// goes on), and drops it if it has not completed by then: the polls it took if it completed.
async fn poll_then_drop<F: std::future::Future>(future: F, polls: u64) -> Option<u64> {
    let mut future = std::pin::pin!(future);
    for poll in 1..=polls {
        if std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx).is_ready())).await {
            return Some(poll);
        }
        tokio::task::yield_now().await;
    }
    None
}

/// The median of `values` (not empty), which it sorts.
fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

/// After the drops: every record can be locked at once without waiting (no transaction left holds
/// one), and `writes` puts per record through the pool (so through every connection it kept)
/// answer `Ok`. Returns the versions the puts reached, to compare with what a connection outside
/// the pool reads.
pub async fn write_after_drops<S: Storage>(store: &Store<S>, writes: usize) -> Vec<(i64, u64)> {
    store
        .transaction(|tx| async move {
            for id in 1..=RECORDS {
                tx.get_for_update_with::<Counter>(&id, LockWait::NoWait).await?.expect("record");
            }
            Ok(())
        })
        .await
        .expect("no row lock remains after the dropped transactions");
    let tasks: Vec<_> = (1..=RECORDS)
        .map(|id| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut last = 0;
                for _ in 0..writes {
                    let mut c = store.get::<Counter>(&id).await?.expect("record");
                    c.n += 1;
                    store.put(&mut c).await?;
                    last = c.version;
                }
                Ok::<_, Error>((id, last))
            })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.expect("task").expect("puts after the drops"));
    }
    versions
}

/// Waits (up to 5 s: a dropped transaction's connection is closed in the background, which ends
/// its transaction) until `inside`, the server's count of the pool's sessions inside a
/// transaction, says none, and asserts it.
pub async fn no_session_stays_in_a_transaction<F: std::future::Future<Output = i64>>(inside: impl Fn() -> F) {
    let mut left = inside().await;
    for _ in 0..50 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = inside().await;
    }
    assert_eq!(left, 0, "sessions of the pool still inside a transaction");
}

/// After the drops, every put through the pool that answered `Ok` is committed: `committed`
/// reads a record's version from outside the pool.
pub async fn later_puts_are_committed<S: Storage, F: std::future::Future<Output = i64>>(
    store: &Store<S>,
    committed: impl Fn(i64) -> F,
) {
    for (id, version) in write_after_drops(store, 25).await {
        assert_eq!(committed(id).await as u64, version, "record {id}: the put answered Ok at {version}");
    }
}
