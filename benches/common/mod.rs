//! What the benchmarks share: the contended-increment harness and its retry policy, and the
//! harness that spreads operations over tasks.

// Each benchmark uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use versioned::{RetryPolicy, Storage, Store};
use versioned_core::conformance::Person;

/// Tasks that increment one row at once.
pub const TASKS: usize = 16;
/// Increments per task.
pub const UPDATES: usize = 300;

/// Patient enough that no increment runs out of attempts under contention.
pub fn patient() -> RetryPolicy {
    RetryPolicy { max_attempts: 100_000, max_backoff: Duration::from_millis(5), ..RetryPolicy::default() }
}

/// Runs `TASKS` tasks of `UPDATES` increments each; checks that the numbers handed out are
/// exactly 1..=N, and returns the time taken and the attempts per success.
pub async fn contended<F, Fut>(name: &str, increment: F) -> (Duration, f64)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (i64, u64)> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let increment = increment.clone();
            tokio::spawn(async move {
                let mut seen = Vec::with_capacity(UPDATES);
                let mut attempts = 0;
                for _ in 0..UPDATES {
                    let (n, tries) = increment().await;
                    seen.push(n);
                    attempts += tries;
                }
                (seen, attempts)
            })
        })
        .collect();
    let (mut all, mut attempts) = (BTreeSet::new(), 0);
    for task in tasks {
        let (seen, tries) = task.await.expect("task");
        attempts += tries;
        for n in seen {
            assert!(all.insert(n), "{name}: number {n} handed out twice");
        }
    }
    let elapsed = started.elapsed();
    let total = (TASKS * UPDATES) as i64;
    assert_eq!(all.len() as i64, total, "{name}: exact count");
    assert_eq!(all.first().copied(), Some(1));
    assert_eq!(all.last().copied(), Some(total));
    (elapsed, attempts as f64 / total as f64 - 1.0)
}

/// Runs `tasks` tasks at once, task `i` doing `task(i, n)` with `n` its share of `iters`
/// operations, and returns the time until the last one is done.
pub async fn spread<F, Fut>(tasks: i64, iters: u64, task: F) -> Duration
where
    F: Fn(i64, u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let share = iters.div_ceil(tasks as u64);
    let running: Vec<_> = (0..tasks).map(|i| tokio::spawn(task(i, share))).collect();
    for one in running {
        one.await.expect("task");
    }
    start.elapsed()
}

/// One task's share of checked puts on its own record `id`: read it, then `n` puts.
pub async fn own_record_puts<S: Storage>(store: Store<S>, id: i64, n: u64) {
    let mut p = store.get::<Person>(&id).await.expect("get").expect("present");
    for _ in 0..n {
        p.salary += 1;
        p.put(&store).await.expect("put");
    }
}
