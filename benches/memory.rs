//! The memory backend's checked put against a hand-written compare-and-set on a
//! `std::sync::Mutex<HashMap>` holding the same struct. Run: `cargo bench --bench memory`.

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
}

const TASKS: i64 = 16;

fn person(id: i64) -> Person {
    Person { id, name: format!("person {id}"), salary: 0, version: 0 }
}

fn memory(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let store: Store<MemoryStorage> = Store::memory();
    let cas = CasMap::default();
    rt.block_on(async {
        store.create_table::<Person>().await.expect("create");
        for id in 0..TASKS {
            let mut p = person(id);
            store.insert(&mut p).await.expect("insert");
            cas.0.lock().expect("lock").insert(id, p);
        }
    });

    let mut group = c.benchmark_group("memory: checked put, 1 task");
    group.bench_function("versioned: put", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let store = store.clone();
            async move {
                let mut p = store.get::<Person>(&0).await.expect("get").expect("present");
                let start = Instant::now();
                for _ in 0..iters {
                    p.salary += 1;
                    p.put(&store).await.expect("put");
                }
                start.elapsed()
            }
        });
    });
    group.bench_function("hand-written: Mutex<HashMap> compare-and-set", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let cas = cas.clone();
            async move {
                let mut p = cas.0.lock().expect("lock")[&0].clone();
                let start = Instant::now();
                for _ in 0..iters {
                    p.salary += 1;
                    cas.put(&mut p).expect("cas");
                }
                start.elapsed()
            }
        });
    });
    group.finish();

    // 16 tasks, each on its own record: `iters` puts in all, spread over the tasks.
    let mut group = c.benchmark_group("memory: checked put, 16 tasks");
    group.bench_function("versioned: put", |b| {
        b.to_async(&rt).iter_custom(|iters| spread(TASKS, iters, |id, n| own_record_puts(store.clone(), id, n)));
    });
    group.bench_function("hand-written: Mutex<HashMap> compare-and-set", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            spread(TASKS, iters, |id, n| {
                let cas = cas.clone();
                async move {
                    let mut p = cas.0.lock().expect("lock")[&id].clone();
                    for _ in 0..n {
                        p.salary += 1;
                        cas.put(&mut p).expect("cas");
                    }
                }
            })
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = memory
}
criterion_main!(benches);
