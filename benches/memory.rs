//! The memory backend's checked put against a hand-written compare-and-set on a
//! `std::sync::Mutex<HashMap>` holding the same struct: one record put over and over, by one task
//! and by 16 (criterion and alternating blocks), and one task's puts of 10,000 records chosen at
//! random, each with a new `String` (alternating blocks only). Run: `cargo bench --bench memory`.
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
/// Records of the random-record shape.
const RECORDS: i64 = 10_000;

/// The random-record shape: one task's checked puts of records chosen at random among
/// [`RECORDS`], each put with a new `String` built for its `name` (both sides build it alike).
struct Spread {
    store: Store<MemoryStorage>,
    cas: CasMap,
    /// The caller's copies, one per record, for each side.
    versioned_copies: Vec<Person>,
    hand_copies: Vec<Person>,
    rng: u64,
}

impl Spread {
    async fn new() -> Self {
        let store = Store::memory();
        store.create_table::<Person>().await.expect("create");
        let cas = CasMap::default();
        let (mut versioned_copies, mut hand_copies) = (Vec::new(), Vec::new());
        for id in 0..RECORDS {
            let mut p = person(id);
            store.insert(&mut p).await.expect("insert");
            cas.0.lock().expect("lock").insert(id, p.clone());
            versioned_copies.push(p.clone());
            hand_copies.push(p);
        }
        Spread { store, cas, versioned_copies, hand_copies, rng: 0x2545_f491_4f6c_dd1d }
    }

    /// The next record (xorshift64), the same sequence for both sides' blocks.
    fn pick(&mut self) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % RECORDS as u64) as usize
    }

    async fn versioned(&mut self, n: u64) -> Duration {
        let start = Instant::now();
        for i in 0..n {
            let at = self.pick();
            let p = &mut self.versioned_copies[at];
            p.name = name(i);
            p.put(&self.store).await.expect("put");
        }
        start.elapsed()
    }

    fn hand(&mut self, n: u64) -> Duration {
        let start = Instant::now();
        for i in 0..n {
            let at = self.pick();
            let p = &mut self.hand_copies[at];
            p.name = name(i);
            self.cas.put(p).expect("cas");
        }
        start.elapsed()
    }
}

/// The new name of the `i`th put: a `String` built per put.
fn name(i: u64) -> String {
    let mut name = String::with_capacity(24);
    name.push_str("person renamed ");
    name.push_str(if i.is_multiple_of(2) { "even" } else { "odd" });
    name
}

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
    // The random-record shape, in alternating blocks too.
    let mut spread = rt.block_on(Spread::new());
    let mut spread_spent = [Duration::ZERO; 2];
    rt.block_on(async {
        for _ in 0..ROUNDS {
            spread_spent[0] += spread.versioned(BLOCK).await;
            spread_spent[1] += spread.hand(BLOCK);
        }
    });
    let mean = |d: Duration| d.as_secs_f64() * 1e9 / (f64::from(ROUNDS) * BLOCK as f64);
    println!("memory, alternating blocks ({} puts each; ratio = hand-written / versioned):", u64::from(ROUNDS) * BLOCK);
    let rows = [
        ("1 task, one record", spent[0], spent[1]),
        ("16 tasks, one record each", spent[2], spent[3]),
        ("1 task, 10,000 records at random, a new String per put", spread_spent[0], spread_spent[1]),
    ];
    for (name, versioned, hand) in rows {
        let (v, h) = (mean(versioned), mean(hand));
        println!("  {name:56} versioned {v:6.1} ns   hand-written {h:6.1} ns   ratio {:.2}", h / v);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = memory
}
criterion_main!(benches);
