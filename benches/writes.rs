//! The cost of versioned's checked operations against the same statements written by hand with
//! sqlx, on an SQLite file (WAL). Run: `cargo bench --bench writes`.
//!
//! The hand-written side uses a pool as sqlx makes it by default (it pings a connection before
//! each use), on the same file, in WAL mode with the same busy timeout and `synchronous` setting.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use versioned::Durability;

mod common;

use common::{TASKS as CONTENDING, UPDATES, contended, own_record_puts, patient, spread};
use versioned_core::conformance::Counter;

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
    let pool = rt.block_on(hand_written_pool(&url, SqliteSynchronous::Full));

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
        b.to_async(&rt).iter(|| hand_written_put(&pool, &version));
    });
    // The same statement on the store's own pool (sqlx's pool as versioned configures it: no
    // ping before each use), so that the difference is versioned's alone.
    let own = store.backend().pool().clone();
    group.bench_function("hand-written sqlx, on the store's pool: UPDATE … WHERE id = ? AND version = ?", |b| {
        b.to_async(&rt).iter(|| hand_written_put(&own, &version));
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

/// The checked put by hand on `pool`: Ann's row, over the version `version` holds (advanced as
/// the versioned side advances it).
async fn hand_written_put(pool: &SqlitePool, version: &AtomicU64) {
    let v = version.fetch_add(1, Ordering::Relaxed) as i64;
    let done = sqlx::query("UPDATE people SET name = ?, salary = ?, version = ? WHERE id = ? AND version = ?")
        .bind("Ann")
        .bind(1)
        .bind(v + 1)
        .bind(1)
        .bind(v)
        .execute(pool)
        .await
        .expect("update");
    assert_eq!(done.rows_affected(), 1);
}

/// sqlx's default pool on the file at `url`, as a hand-written program would open it.
async fn hand_written_pool(url: &str, synchronous: SqliteSynchronous) -> SqlitePool {
    let options = SqliteConnectOptions::from_str(url)
        .expect("url")
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5))
        .synchronous(synchronous);
    SqlitePool::connect_with(options).await.expect("pool")
}

const TASKS: i64 = 16;

/// 16 tasks, each doing checked puts of its own record in autocommit: what group commit is for.
fn concurrent_puts(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    for (durability, synchronous, name) in
        [(Durability::Full, SqliteSynchronous::Full, "FULL"), (Durability::Normal, SqliteSynchronous::Normal, "NORMAL")]
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
        let (store, pool) = rt.block_on(async {
            let store = Store::sqlite_with(&url, durability).await.expect("open");
            store.create_table::<Person>().await.expect("create");
            for id in 0..TASKS {
                store.insert(&mut Person { id, name: "P".into(), salary: 0, version: 0 }).await.expect("insert");
            }
            (store, hand_written_pool(&url, synchronous).await)
        });
        let mut group =
            c.benchmark_group(format!("16 tasks, checked put each on its own record (synchronous = {name})"));
        group.sample_size(10).measurement_time(Duration::from_secs(8));
        group.bench_function("versioned: put (group commit)", |b| {
            b.to_async(&rt).iter_custom(|iters| spread(TASKS, iters, |id, n| own_record_puts(store.clone(), id, n)));
        });
        group.bench_function("hand-written sqlx: UPDATE … WHERE id = ? AND version = ?, per statement", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                spread(TASKS, iters, |id, n| {
                    let pool = pool.clone();
                    async move {
                        let (mut salary, mut version): (i32, i64) =
                            sqlx::query_as("SELECT salary, version FROM people WHERE id = ?")
                                .bind(id)
                                .fetch_one(&pool)
                                .await
                                .expect("select");
                        for _ in 0..n {
                            salary += 1;
                            let done = sqlx::query(
                                "UPDATE people SET name = ?, salary = ?, version = ? WHERE id = ? AND version = ?",
                            )
                            .bind("P")
                            .bind(salary)
                            .bind(version + 1)
                            .bind(id)
                            .bind(version)
                            .execute(&pool)
                            .await
                            .expect("update");
                            assert_eq!(done.rows_affected(), 1);
                            version += 1;
                        }
                    }
                })
            });
        });
        group.finish();
    }
}

/// 16 tasks × 300 increments of one row: exact, against a hand-written `BEGIN IMMEDIATE` loop.
fn contended_updates(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
    let (store, pool) = rt.block_on(async {
        let store = Store::sqlite(&url).await.expect("open");
        store.create_table::<Counter>().await.expect("create");
        (store, hand_written_pool(&url, SqliteSynchronous::Full).await)
    });
    let mut group = c.benchmark_group("16 tasks × 300 increments of one row");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    for (name, versioned) in
        [("versioned: update", true), ("hand-written sqlx: BEGIN IMMEDIATE; SELECT; UPDATE; COMMIT", false)]
    {
        let (store, pool) = (store.clone(), pool.clone());
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (store, pool) = (store.clone(), pool.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        sqlx::query("DELETE FROM counter").execute(&pool).await.expect("reset");
                        store.insert(&mut Counter { name: "c".into(), n: 0, version: 0 }).await.expect("counter");
                        let (store, pool) = (store.clone(), pool.clone());
                        let (elapsed, _) = if versioned {
                            contended(name, move || {
                                let store = store.clone();
                                async move {
                                    let n = store
                                        .update::<Counter, _>(&"c".to_string(), patient(), |c| {
                                            c.n += 1;
                                            c.n
                                        })
                                        .await
                                        .expect("update");
                                    (n, 1)
                                }
                            })
                            .await
                        } else {
                            contended(name, move || {
                                let pool = pool.clone();
                                async move {
                                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
                                    let (n, v): (i64, i64) =
                                        sqlx::query_as("SELECT n, version FROM counter WHERE name = 'c'")
                                            .fetch_one(&mut *tx)
                                            .await
                                            .expect("read");
                                    sqlx::query(
                                        "UPDATE counter SET n = ?, version = ? WHERE name = 'c' AND version = ?",
                                    )
                                    .bind(n + 1)
                                    .bind(v + 1)
                                    .bind(v)
                                    .execute(&mut *tx)
                                    .await
                                    .expect("update");
                                    tx.commit().await.expect("commit");
                                    (n + 1, 1)
                                }
                            })
                            .await
                        };
                        total += elapsed;
                    }
                    eprintln!(
                        "  {name}: {:.0} increments/s",
                        (CONTENDING * UPDATES) as f64 * iters as f64 / total.as_secs_f64()
                    );
                    total
                }
            });
        });
    }
    group.finish();
}

/// 1,000 checked puts in one transaction: `put_all` against 1,000 hand-written UPDATEs.
fn batches(c: &mut Criterion) {
    const RECORDS: i64 = 1_000;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
    let (store, pool, records) = rt.block_on(async {
        let store = Store::sqlite(&url).await.expect("open");
        store.create_table::<Person>().await.expect("create");
        let mut records: Vec<Person> =
            (0..RECORDS).map(|id| Person { id, name: format!("person {id}"), salary: 0, version: 0 }).collect();
        store.insert_all(&mut records).await.expect("insert_all");
        (store, hand_written_pool(&url, SqliteSynchronous::Full).await, records)
    });
    let mut group = c.benchmark_group("1,000 checked puts in one transaction");
    group.sample_size(20);
    let mine = std::sync::Arc::new(tokio::sync::Mutex::new(records));
    group.bench_function("versioned: put_all", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (store, mine) = (store.clone(), std::sync::Arc::clone(&mine));
            async move {
                let mut batch = mine.lock().await;
                let start = Instant::now();
                for _ in 0..iters {
                    for p in batch.iter_mut() {
                        p.salary += 1;
                    }
                    store.put_all(&mut batch).await.expect("put_all");
                }
                start.elapsed()
            }
        });
    });
    group.bench_function("hand-written sqlx: 1,000 UPDATE … WHERE id = ? AND version = ?, one transaction", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let pool = pool.clone();
            async move {
                // The versions as stored now (the other side wrote the same rows), read untimed.
                let mut rows: Vec<(i64, String, i32, i64)> =
                    sqlx::query_as("SELECT id, name, salary, version FROM people")
                        .fetch_all(&pool)
                        .await
                        .expect("select");
                let start = Instant::now();
                for _ in 0..iters {
                    let mut tx = pool.begin().await.expect("begin");
                    for (id, name, salary, version) in &mut rows {
                        let done = sqlx::query(
                            "UPDATE people SET name = ?, salary = ?, version = ? WHERE id = ? AND version = ?",
                        )
                        .bind(name.as_str())
                        .bind(*salary + 1)
                        .bind(*version + 1)
                        .bind(*id)
                        .bind(*version)
                        .execute(&mut *tx)
                        .await
                        .expect("update");
                        assert_eq!(done.rows_affected(), 1);
                        *salary += 1;
                        *version += 1;
                    }
                    tx.commit().await.expect("commit");
                }
                start.elapsed()
            }
        });
    });
    group.finish();
}

criterion_group!(benches, writes, concurrent_puts, contended_updates, batches);
criterion_main!(benches);
