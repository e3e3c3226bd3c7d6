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
    let mut random = Xorshift(0x9E37_79B9_7F4A_7C15);
    let mut dropped = 0;
    for round in 0..rounds {
        let id = 1 + (round % RECORDS as u64) as i64;
        let transaction = store.transaction(move |tx| async move {
            let mut c = tx.get_for_update::<Counter>(&id).await?.ok_or_else(|| Error::not_found::<Counter>(&id))?;
            c.n += 1;
            tx.put(&mut c).await
        });
        let finished = poll_then_drop(transaction, 1 + random.below(2_000)).await;
        dropped += u64::from(!finished);
    }
    eprintln!("dropped {dropped} of {rounds}");
    assert!(dropped > rounds / 4, "too few transactions were dropped midway: {dropped} of {rounds}");
}

/// Polls `future` up to `polls` times, yielding to the runtime between two polls (so its I/O
/// goes on), and drops it if it has not completed by then; whether it completed.
async fn poll_then_drop<F: std::future::Future>(future: F, polls: u64) -> bool {
    let mut future = std::pin::pin!(future);
    for _ in 0..polls {
        if std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx).is_ready())).await {
            return true;
        }
        tokio::task::yield_now().await;
    }
    false
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
