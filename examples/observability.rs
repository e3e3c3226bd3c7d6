//! Observability: the `tracing` spans and events of a conflict and its retry, then the `metrics`
//! counters of eight tasks incrementing one counter with checked puts.
//!
//! Run: `cargo run --example observability --features metrics` (without the feature, the
//! counters are not collected and only the trace is printed).

mod common;

use std::time::Duration;

use tracing_subscriber::fmt::format::FmtSpan;
use versioned::{Error, RetryPolicy, Versioned};

#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "counters")]
struct Counter {
    #[key]
    name: String,
    value: i64,
    #[version]
    version: u64,
}

const TASKS: i64 = 8;
const INCREMENTS: i64 = 25;

// One thread: the trace subscriber below is set for this thread only.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), common::Failure> {
    #[cfg(feature = "metrics")]
    let snapshotter = {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install()?;
        snapshotter
    };

    let store = common::open("observability").await?;
    store.create_table::<Counter>().await?;
    let mut hits = Counter { name: "hits".into(), value: 0, version: 0 };
    store.insert(&mut hits).await?;

    // A trace of one conflict and its retry: every span as it closes, with its fields.
    println!("-- trace: a stale put, retried from a fresh read");
    {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_span_events(FmtSpan::CLOSE)
            .with_target(false)
            .without_time()
            .finish();
        let _trace = tracing::subscriber::set_default(subscriber);
        let mut stale = Some(hits.clone());
        hits.value = 1;
        store.put(&mut hits).await?;
        RetryPolicy::default()
            .retry(|| {
                let copy = stale.take();
                let store = store.clone();
                async move {
                    let mut counter = match copy {
                        Some(stale) => stale,
                        None => {
                            Counter::get(&store, "hits").await?.ok_or_else(|| Error::not_found::<Counter>("hits"))?
                        }
                    };
                    counter.value += 1;
                    counter.put(&store).await
                }
            })
            .await?;
    }

    // Eight tasks increment one counter with checked puts; conflicts are retried.
    println!("\n-- {TASKS} tasks x {INCREMENTS} increments of one counter");
    let policy = RetryPolicy { max_attempts: 10_000, max_backoff: Duration::from_millis(2), ..RetryPolicy::default() };
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    policy
                        .retry(|| async {
                            let mut counter = Counter::get(&store, "hits")
                                .await?
                                .ok_or_else(|| Error::not_found::<Counter>("hits"))?;
                            counter.value += 1;
                            counter.put(&store).await
                        })
                        .await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let counter = Counter::get(&store, "hits").await?.ok_or("the counter is gone")?;
    println!("counter: {} at version {}", counter.value, counter.version);
    common::expect(counter.value == 2 + TASKS * INCREMENTS, "every increment counted exactly once")?;

    #[cfg(feature = "metrics")]
    {
        use metrics_util::debugging::DebugValue;
        println!("\n-- counters");
        let mut counters = std::collections::BTreeMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            if let DebugValue::Counter(n) = value {
                let labels: Vec<String> = key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
                counters.insert(format!("{}{{{}}}", key.key().name(), labels.join(",")), n);
            }
        }
        for (name, n) in &counters {
            println!("{name:<70} {n}");
        }
        let count = |name: &str| counters.get(name).copied().unwrap_or(0);
        let conflicts = count("versioned_conflicts_total{operation=put,table=counters}");
        let retries = count("versioned_retries_total{operation=retry}");
        common::expect(
            count("versioned_writes_total{operation=put,table=counters}") == (2 + TASKS * INCREMENTS) as u64,
            "one applied put per increment",
        )?;
        println!("{conflicts} conflicts, {retries} retries");
        common::expect(retries == conflicts, "every conflict was retried, and counted")?;
    }
    #[cfg(not(feature = "metrics"))]
    println!("\n(counters: run with `--features metrics`)");
    Ok(())
}
