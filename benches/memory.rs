//! The memory backend's checked put against a hand-written compare-and-set on a
//! `std::sync::Mutex<HashMap>` holding the same struct. Run: `cargo bench --bench memory`.
//!
//! After criterion's groups, both sides also run in alternating blocks (the same code), and the
//! means and ratios are printed: criterion measures each side for seconds one after the other,
//! and this machine's speed drifts by ±20% over that time; in alternating blocks the drift falls
//! on both sides alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

mod common;

use common::{own_record_puts, spread};
use versioned::{MemoryStorage, Store};
// The conformance suite's `people` table: id, name, salary, version.
use versioned_core::conformance::Person;

/// The hand-written baseline: the check and the write under one lock.
#[derive(Clone, Default)]
struct CasMap(Arc<Mutex<HashMap<i64, Person>>>);

impl CasMap {
    fn put(&self, p: &mut Person) -> Result<(), &'static str> {
        let mut map = self.0.lock().map_err(|_| "poisoned")?;
        let stored = map.get_mut(&p.id).ok_or("not found")?;
        if stored.version != p.version {
            return Err("conflict");
        }
        *stored = Person { version: p.version + 1, ..p.clone() };
        p.version += 1;
        Ok(())
    }

    /// `n` checked puts of record `id`, as [`own_record_puts`] does through the store.
    async fn own_record_puts(self, id: i64, n: u64) {
        let mut p = self.0.lock().expect("lock")[&id].clone();
        for _ in 0..n {
            p.salary += 1;
            self.put(&mut p).expect("cas");
        }
    }
}

const TASKS: i64 = 16;

fn person(id: i64) -> Person {
    Person { id, name: format!("person {id}"), salary: 0, version: 0 }
}

/// The two sides, each timed over `n` puts on one task, or spread over 16 tasks.
#[derive(Clone)]
struct Sides {
    store: Store<MemoryStorage>,
    cas: CasMap,
}

impl Sides {
    async fn versioned_one_task(&self, n: u64) -> Duration {
        let start = Instant::now();
        own_record_puts(self.store.clone(), 0, n).await;
        start.elapsed()
    }

    async fn hand_one_task(&self, n: u64) -> Duration {
        let start = Instant::now();
        self.cas.clone().own_record_puts(0, n).await;
        start.elapsed()
    }

    async fn versioned_tasks(&self, n: u64) -> Duration {
        spread(TASKS, n, |id, n| own_record_puts(self.store.clone(), id, n)).await
    }

    async fn hand_tasks(&self, n: u64) -> Duration {
        spread(TASKS, n, |id, n| self.cas.clone().own_record_puts(id, n)).await
    }
}

fn memory(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let sides = Sides { store: Store::memory(), cas: CasMap::default() };
    rt.block_on(async {
        sides.store.create_table::<Person>().await.expect("create");
        for id in 0..TASKS {
            let mut p = person(id);
            sides.store.insert(&mut p).await.expect("insert");
            sides.cas.0.lock().expect("lock").insert(id, p);
        }
    });

    let mut group = c.benchmark_group("memory: checked put, 1 task");
    group.bench_function("versioned: put", |b| b.to_async(&rt).iter_custom(|n| sides.versioned_one_task(n)));
    group.bench_function("hand-written: Mutex<HashMap> compare-and-set", |b| {
        b.to_async(&rt).iter_custom(|n| sides.hand_one_task(n))
    });
    group.finish();

    // 16 tasks, each on its own record: `iters` puts in all, spread over the tasks.
    let mut group = c.benchmark_group("memory: checked put, 16 tasks");
    group.bench_function("versioned: put", |b| b.to_async(&rt).iter_custom(|n| sides.versioned_tasks(n)));
    group.bench_function("hand-written: Mutex<HashMap> compare-and-set", |b| {
        b.to_async(&rt).iter_custom(|n| sides.hand_tasks(n))
    });
    group.finish();

    // The same code in alternating blocks of 100,000 puts, 40 rounds; not under a profiler
    // (`--profile-time`), which runs criterion's routines only.
    if std::env::args().any(|arg| arg == "--profile-time") {
        return;
    }
    const ROUNDS: u32 = 40;
    const BLOCK: u64 = 100_000;
    let mut spent = [Duration::ZERO; 4];
    rt.block_on(async {
        for _ in 0..ROUNDS {
            spent[0] += sides.versioned_one_task(BLOCK).await;
            spent[1] += sides.hand_one_task(BLOCK).await;
            spent[2] += sides.versioned_tasks(BLOCK).await;
            spent[3] += sides.hand_tasks(BLOCK).await;
        }
    });
    let mean = |d: Duration| d.as_secs_f64() * 1e9 / (f64::from(ROUNDS) * BLOCK as f64);
    println!("memory, alternating blocks ({} puts each; ratio = hand-written / versioned):", u64::from(ROUNDS) * BLOCK);
    for (name, versioned, hand) in [("1 task", spent[0], spent[1]), ("16 tasks", spent[2], spent[3])] {
        let (v, h) = (mean(versioned), mean(hand));
        println!("  {name:9} versioned {v:6.1} ns   hand-written {h:6.1} ns   ratio {:.2}", h / v);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = memory
}
criterion_main!(benches);
