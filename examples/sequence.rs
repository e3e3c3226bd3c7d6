//! Kii Cloud, "Controlling Simultaneous Updates": unique sequence numbers from one counter.
//!
//! 16 concurrent workers draw numbers from one counter record: read it, add one, write it back
//! with the version check, and start over on a conflict — at most 100 tries, then "Server Busy".
//! Every number 1..N must be handed out exactly once. With a tiny retry limit some callers get
//! "Server Busy" (the retries-exhausted error) instead — never a duplicate.
//!
//! `store.update` is the whole `getSequence` loop in one call. It runs each attempt in a
//! transaction; on SQLite that holds the write lock, so its attempts never even conflict. Kii's
//! loop as written (a read, then a checked write, no transaction) is the second run: there writers
//! do collide, and with a single try the losers get "Server Busy".
//!
//! Run: `cargo run --example sequence`

mod common;

use std::collections::BTreeSet;

use versioned::{AnyStorage, Error, RetryPolicy, Store, Versioned};

#[derive(Versioned, Debug, Clone)]
struct Counter {
    #[key]
    name: String,
    sequence: i64,
    #[version]
    version: u64,
}

const WORKERS: usize = 16;
const DRAWS: usize = 25;

/// How a worker draws the next number.
#[derive(Clone, Copy)]
enum Draw {
    /// `store.update`: read, increment and checked write in one transaction, retried.
    Update,
    /// Kii's loop as written: refresh, increment, checked save, start over on a conflict.
    KiiLoop,
}

/// Kii's `getSequence`: the next number, or "Server Busy" after the policy's attempts.
async fn get_sequence(store: &Store<AnyStorage>, draw: Draw, policy: RetryPolicy) -> versioned::Result<i64> {
    let key = "orders".to_string();
    match draw {
        Draw::Update => {
            store
                .update::<Counter, _>(&key, policy, |c| {
                    c.sequence += 1;
                    c.sequence
                })
                .await
        }
        Draw::KiiLoop => {
            policy
                .retry(|| {
                    let (store, key) = (store.clone(), key.clone());
                    async move {
                        let mut counter =
                            store.get::<Counter>(&key).await?.ok_or_else(|| Error::not_found::<Counter>(&key))?;
                        counter.sequence += 1;
                        counter.put(&store).await?; // OBJECT_VERSION_IS_STALE -> retried
                        Ok(counter.sequence)
                    }
                })
                .await
        }
    }
}

/// Runs the workers; returns the numbers handed out and how many draws got "Server Busy".
async fn run(store: &Store<AnyStorage>, draw: Draw, policy: RetryPolicy) -> Result<(Vec<i64>, usize), common::Failure> {
    store.delete_unchecked::<Counter>(&"orders".to_string()).await?;
    store.insert(&mut Counter { name: "orders".into(), sequence: 0, version: 0 }).await?;
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let (mut numbers, mut busy) = (Vec::new(), 0);
                for _ in 0..DRAWS {
                    match get_sequence(&store, draw, policy).await {
                        Ok(n) => numbers.push(n),
                        Err(Error::RetriesExhausted { .. }) => busy += 1, // "Server Busy"
                        Err(other) => return Err(other),
                    }
                }
                Ok((numbers, busy))
            })
        })
        .collect();
    let (mut all, mut busy) = (Vec::new(), 0);
    for worker in workers {
        let (numbers, b) = worker.await??;
        all.extend(numbers);
        busy += b;
    }
    Ok((all, busy))
}

fn report(store_value: i64, numbers: &[i64], busy: usize) -> Result<(), common::Failure> {
    let unique: BTreeSet<i64> = numbers.iter().copied().collect();
    println!(
        "  handed out {} numbers, {} unique, {busy} \"Server Busy\"; counter = {store_value}",
        numbers.len(),
        unique.len()
    );
    common::expect(unique.len() == numbers.len(), "no number was handed out twice")?;
    let expected: BTreeSet<i64> = (1..=numbers.len() as i64).collect();
    common::expect(unique == expected, "the numbers are exactly 1..N, no gaps")?;
    common::expect(store_value == numbers.len() as i64, "the counter equals the numbers handed out")
}

#[tokio::main]
async fn main() -> Result<(), common::Failure> {
    let store = common::open("sequence").await?;
    store.create_table::<Counter>().await?;
    let counter = async |store: &Store<AnyStorage>| -> Result<i64, common::Failure> {
        Ok(store.get::<Counter>(&"orders".to_string()).await?.ok_or("no counter")?.sequence)
    };

    println!("{WORKERS} workers x {DRAWS} draws with store.update, up to 100 tries each:");
    let (numbers, busy) = run(&store, Draw::Update, RetryPolicy::attempts(100)).await?;
    report(counter(&store).await?, &numbers, busy)?;
    common::expect(busy == 0 && numbers.len() == WORKERS * DRAWS, "every draw got a number")?;

    println!("\nKii's loop as written (read, then checked write), up to 100 tries each:");
    let (numbers, busy) = run(&store, Draw::KiiLoop, RetryPolicy::attempts(100)).await?;
    report(counter(&store).await?, &numbers, busy)?;
    common::expect(busy == 0 && numbers.len() == WORKERS * DRAWS, "every draw got a number")?;

    println!("\nKii's loop with a single try each (no retry):");
    let (numbers, busy) = run(&store, Draw::KiiLoop, RetryPolicy::no_retry()).await?;
    report(counter(&store).await?, &numbers, busy)?;
    common::expect(busy > 0, "some callers got \"Server Busy\" instead of a duplicate")?;
    Ok(())
}
