//! The cost of versioned's checked operations against the same statements written by hand with
//! sqlx, on an SQLite file (WAL). Run: `cargo bench --bench writes`.

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use versioned::{RetryPolicy, SqliteStorage, Store};
// The conformance suite's `people` table: id, name, salary, version.
use versioned_core::conformance::Person;

fn writes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
    let store: Store<SqliteStorage> = rt.block_on(async {
        let store = Store::sqlite(&url).await.expect("open");
        store.create_table::<Person>().await.expect("create");
        store.insert(&mut Person { id: 1, name: "Ann".into(), salary: 0, version: 0 }).await.expect("insert");
        store
    });
    let pool = store.backend().pool().clone();

    // The stored version, advanced by every checked write of both loops.
    let version = AtomicU64::new(rt.block_on(store.get::<Person>(&1)).expect("get").expect("present").version);

    let mut group = c.benchmark_group("checked put");
    group.bench_function("versioned: put", |b| {
        b.to_async(&rt).iter(|| async {
            let v = version.fetch_add(1, Ordering::Relaxed);
            let mut p = Person { id: 1, name: "Ann".into(), salary: 1, version: v };
            p.put(&store).await.expect("put");
        });
    });
    group.bench_function("hand-written sqlx: UPDATE … WHERE id = ? AND version = ?", |b| {
        b.to_async(&rt).iter(|| async {
            let v = version.fetch_add(1, Ordering::Relaxed) as i64;
            let done = sqlx::query("UPDATE people SET name = ?, salary = ?, version = ? WHERE id = ? AND version = ?")
                .bind("Ann")
                .bind(1)
                .bind(v + 1)
                .bind(1)
                .bind(v)
                .execute(&pool)
                .await
                .expect("update");
            assert_eq!(done.rows_affected(), 1);
        });
    });
    group.finish();

    let mut group = c.benchmark_group("get");
    group.bench_function("versioned: get", |b| {
        b.to_async(&rt).iter(|| async { store.get::<Person>(&1).await.expect("get") });
    });
    group.bench_function("hand-written sqlx: SELECT … WHERE id = ?", |b| {
        b.to_async(&rt).iter(|| async {
            let row: (i64, String, i32, i64) =
                sqlx::query_as("SELECT id, name, salary, version FROM people WHERE id = ?")
                    .bind(1)
                    .fetch_one(&pool)
                    .await
                    .expect("select");
            row
        });
    });
    group.finish();

    let mut group = c.benchmark_group("read-modify-write");
    group.bench_function("versioned: update (one BEGIN IMMEDIATE transaction)", |b| {
        b.to_async(&rt).iter(|| async {
            store.update::<Person, _>(&1, RetryPolicy::default(), |p| p.salary += 1).await.expect("update")
        });
    });
    group.bench_function("versioned: get + put (autocommit, Kii's loop body)", |b| {
        b.to_async(&rt).iter(|| async {
            let mut p = store.get::<Person>(&1).await.expect("get").expect("present");
            p.salary += 1;
            p.put(&store).await.expect("put");
        });
    });
    group.finish();
}

criterion_group!(benches, writes);
criterion_main!(benches);
