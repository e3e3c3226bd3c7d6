//! versioned on PostgreSQL and on MySQL/MariaDB against the same statements written by hand with
//! sqlx, on the same pool, in the same run; and 16 tasks × 300 `update`s of one row against a
//! hand-written `SELECT … FOR UPDATE` loop and a hand-written optimistic compare-and-set loop.
//! Each server is measured when its URL is set:
//!
//! `VERSIONED_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test VERSIONED_MYSQL_URL=mysql://root@127.0.0.1:3306/test cargo bench --features postgres,mysql --bench servers`

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::{MySqlPool, PgPool};
use versioned::{MysqlStorage, PostgresStorage, RetryPolicy, Store};
// The conformance suite's `people` (id, name, salary, version) and `counter` (name, n, version).
use versioned_core::conformance::{Counter, Person};

mod common;

use common::{TASKS, UPDATES, contended, patient};

/// Tables `people` (with Ann, id 1) and `counter`, as versioned creates them.
async fn tables<S: versioned::Storage>(store: &Store<S>) {
    store.create_table::<Person>().await.expect("create");
    store.create_table::<Counter>().await.expect("create");
    store.insert(&mut Person { id: 1, name: "Ann".into(), salary: 0, version: 0 }).await.expect("insert");
}

async fn open_postgres(url: &str) -> (Store<PostgresStorage>, PgPool) {
    let admin = PgPool::connect(url).await.expect("VERSIONED_POSTGRES_URL is set but the server is unreachable");
    for sql in ["DROP SCHEMA IF EXISTS versioned_bench CASCADE", "CREATE SCHEMA versioned_bench"] {
        sqlx::query(sql).execute(&admin).await.expect(sql);
    }
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a PostgreSQL URL");
    let storage =
        PostgresStorage::connect_with(options.options([("search_path", "versioned_bench")])).await.expect("connect");
    let store = Store::new(storage);
    tables(&store).await;
    let pool = store.backend().pool().clone();
    (store, pool)
}

async fn open_mysql(url: &str) -> (Store<MysqlStorage>, MySqlPool) {
    let admin = MySqlPool::connect(url).await.expect("VERSIONED_MYSQL_URL is set but the server is unreachable");
    for sql in ["DROP DATABASE IF EXISTS versioned_bench", "CREATE DATABASE versioned_bench"] {
        sqlx::query(sql).execute(&admin).await.expect(sql);
    }
    let options: sqlx::mysql::MySqlConnectOptions = url.parse().expect("a MySQL URL");
    let storage = MysqlStorage::connect_with(options.database("versioned_bench")).await.expect("connect");
    let store = Store::new(storage);
    tables(&store).await;
    let pool = store.backend().pool().clone();
    (store, pool)
}

/// A hand-written statement in the server's placeholder style: `$n` as written, `?` for MySQL.
fn sql(postgres: &'static str, mysql: bool) -> sqlx::AssertSqlSafe<String> {
    let mut text = postgres.to_owned();
    if mysql {
        for n in (1..=9).rev() {
            text = text.replace(&format!("${n}"), "?");
        }
    }
    sqlx::AssertSqlSafe(text)
}

/// The benchmarks of one server, whose hand-written statements are written in PostgreSQL's
/// placeholder style and converted for MySQL.
macro_rules! server_benches {
    ($fn:ident, $label:literal, $var:literal, $open:ident, $maintain:literal, $insert:literal, $mysql:literal) => {
        fn $fn(c: &mut Criterion) {
            let Ok(url) = std::env::var($var) else {
                eprintln!(concat!("skipped: set ", $var, " to run the ", $label, " benchmarks"));
                return;
            };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (store, pool) = rt.block_on($open(&url));
    let version = AtomicU64::new(1);

    let mut group = c.benchmark_group(format!("{}: ", $label) + "checked put");
    rt.block_on(sqlx::query($maintain).execute(&pool)).expect("maintain");
    group.bench_function("versioned: put", |b| {
        b.to_async(&rt).iter(|| async {
            let v = version.fetch_add(1, Ordering::Relaxed);
            let mut p = Person { id: 1, name: "Ann".into(), salary: 1, version: v };
            p.put(&store).await.expect("put");
        });
    });
    rt.block_on(sqlx::query($maintain).execute(&pool)).expect("maintain");
    group.bench_function("hand-written sqlx: UPDATE … WHERE id = $4 AND version = $5", |b| {
        b.to_async(&rt).iter(|| async {
            let v = version.fetch_add(1, Ordering::Relaxed) as i64;
            let done =
                sqlx::query(sql("UPDATE people SET name = $1, salary = $2, version = $3 WHERE id = $4 AND version = $5", $mysql))
                    .bind("Ann")
                    .bind(1)
                    .bind(v + 1)
                    .bind(1i64)
                    .bind(v)
                    .execute(&pool)
                    .await
                    .expect("update");
            assert_eq!(done.rows_affected(), 1);
        });
    });
    group.finish();

    let mut group = c.benchmark_group(format!("{}: ", $label) + "get");
    group.bench_function("versioned: get", |b| {
        b.to_async(&rt).iter(|| async { store.get::<Person>(&1).await.expect("get") });
    });
    group.bench_function("hand-written sqlx: SELECT … WHERE id = $1", |b| {
        b.to_async(&rt).iter(|| async {
            let row: (i64, String, i32, i64) =
                sqlx::query_as(sql("SELECT id, name, salary, version FROM people WHERE id = $1", $mysql))
                    .bind(1i64)
                    .fetch_one(&pool)
                    .await
                    .expect("select");
            row
        });
    });
    group.finish();

    let next_id = AtomicI64::new(1_000);
    let mut group = c.benchmark_group(format!("{}: ", $label) + "insert");
    group.bench_function("versioned: insert", |b| {
        b.to_async(&rt).iter(|| async {
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            store.insert(&mut Person { id, name: "New".into(), salary: 1, version: 0 }).await.expect("insert");
        });
    });
    group.bench_function(concat!("hand-written sqlx: ", $insert), |b| {
        b.to_async(&rt).iter(|| async {
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let done = sqlx::query(sql($insert, $mysql))
            .bind(id)
            .bind("New")
            .bind(1)
            .bind(1i64)
            .execute(&pool)
            .await
            .expect("insert");
            assert_eq!(done.rows_affected(), 1);
        });
    });
    group.finish();

    let mut group = c.benchmark_group(format!("{}: ", $label) + "read-modify-write");
    rt.block_on(sqlx::query($maintain).execute(&pool)).expect("maintain");
    group.bench_function("versioned: update (a cold record: read, checked put)", |b| {
        b.to_async(&rt).iter(|| async {
            store.update::<Person, _>(&1, RetryPolicy::default(), |p| p.salary += 1).await.expect("update")
        });
    });
    rt.block_on(sqlx::query($maintain).execute(&pool)).expect("maintain");
    group.bench_function("hand-written sqlx: BEGIN; SELECT … FOR UPDATE; UPDATE … AND version = $5; COMMIT", |b| {
        b.to_async(&rt).iter(|| async {
            let mut tx = pool.begin().await.expect("begin");
            let (salary, v): (i32, i64) = sqlx::query_as(sql("SELECT salary, version FROM people WHERE id = $1 FOR UPDATE", $mysql))
                .bind(1i64)
                .fetch_one(&mut *tx)
                .await
                .expect("select");
            let done =
                sqlx::query(sql("UPDATE people SET name = $1, salary = $2, version = $3 WHERE id = $4 AND version = $5", $mysql))
                    .bind("Ann")
                    .bind(salary + 1)
                    .bind(v + 1)
                    .bind(1i64)
                    .bind(v)
                    .execute(&mut *tx)
                    .await
                    .expect("update");
            assert_eq!(done.rows_affected(), 1);
            tx.commit().await.expect("commit");
        });
    });
    rt.block_on(sqlx::query($maintain).execute(&pool)).expect("maintain");
    group.bench_function("hand-written sqlx: SELECT; UPDATE … AND version = $5 (autocommit)", |b| {
        b.to_async(&rt).iter(|| async {
            let (salary, v): (i32, i64) = sqlx::query_as(sql("SELECT salary, version FROM people WHERE id = $1", $mysql))
                .bind(1i64)
                .fetch_one(&pool)
                .await
                .expect("select");
            let done =
                sqlx::query(sql("UPDATE people SET name = $1, salary = $2, version = $3 WHERE id = $4 AND version = $5", $mysql))
                    .bind("Ann")
                    .bind(salary + 1)
                    .bind(v + 1)
                    .bind(1i64)
                    .bind(v)
                    .execute(&pool)
                    .await
                    .expect("update");
            assert_eq!(done.rows_affected(), 1);
        });
    });
    group.finish();

    // Contention: every variant hands out exactly 1..=4800, checked on each run.
    let mut group = c.benchmark_group(format!("{}: ", $label) + "16 tasks × 300 increments of one row");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    let report = Arc::new(std::sync::Mutex::new(Vec::new()));
    let runs: [(&str, u8); 3] = [
        ("versioned: update", 0),
        ("hand-written sqlx: SELECT … FOR UPDATE; UPDATE (one transaction)", 1),
        ("hand-written sqlx: optimistic CAS loop (autocommit)", 2),
    ];
    for (name, variant) in runs {
        let (store, pool, report) = (store.clone(), pool.clone(), Arc::clone(&report));
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (store, pool, report) = (store.clone(), pool.clone(), Arc::clone(&report));
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        sqlx::query("DELETE FROM counter").execute(&pool).await.expect("reset");
                        store.insert(&mut Counter { name: "c".into(), n: 0, version: 0 }).await.expect("counter");
                        let (elapsed, retries) = match variant {
                            0 => {
                                let store = store.clone();
                                contended(name, move || {
                                    let store = store.clone();
                                    async move {
                                        let mut calls = 0;
                                        let n = store
                                            .update::<Counter, _>(&"c".to_string(), patient(), |c| {
                                                calls += 1;
                                                c.n += 1;
                                                c.n
                                            })
                                            .await
                                            .expect("update");
                                        (n, calls)
                                    }
                                })
                                .await
                            }
                            1 => {
                                let pool = pool.clone();
                                contended(name, move || {
                                    let pool = pool.clone();
                                    async move {
                                        let mut tx = pool.begin().await.expect("begin");
                                        let (n,): (i64,) =
                                            sqlx::query_as(sql("SELECT n FROM counter WHERE name = 'c' FOR UPDATE", $mysql))
                                                .fetch_one(&mut *tx)
                                                .await
                                                .expect("lock");
                                        sqlx::query(sql("UPDATE counter SET n = $1, version = version + 1 WHERE name = 'c'", $mysql))
                                            .bind(n + 1)
                                            .execute(&mut *tx)
                                            .await
                                            .expect("update");
                                        tx.commit().await.expect("commit");
                                        (n + 1, 1)
                                    }
                                })
                                .await
                            }
                            _ => {
                                let pool = pool.clone();
                                contended(name, move || {
                                    let pool = pool.clone();
                                    async move {
                                        let mut tries = 0;
                                        loop {
                                            tries += 1;
                                            let (n, v): (i64, i64) =
                                                sqlx::query_as(sql("SELECT n, version FROM counter WHERE name = 'c'", $mysql))
                                                    .fetch_one(&pool)
                                                    .await
                                                    .expect("read");
                                            let done = sqlx::query(
                                                sql("UPDATE counter SET n = $1, version = $2 WHERE name = 'c' AND version = $3", $mysql),
                                            )
                                            .bind(n + 1)
                                            .bind(v + 1)
                                            .bind(v)
                                            .execute(&pool)
                                            .await
                                            .expect("cas");
                                            if done.rows_affected() == 1 {
                                                return (n + 1, tries);
                                            }
                                        }
                                    }
                                })
                                .await
                            }
                        };
                        report.lock().expect("report").push((name, elapsed, retries));
                        total += elapsed;
                    }
                    total
                }
            });
        });
    }
    group.finish();
    for (name, variant) in runs {
        let _ = variant;
        let rows: Vec<_> = report.lock().expect("report").iter().filter(|r| r.0 == name).map(|r| (r.1, r.2)).collect();
        if rows.is_empty() {
            continue;
        }
        let secs: f64 = rows.iter().map(|r| r.0.as_secs_f64()).sum::<f64>() / rows.len() as f64;
        let retries: f64 = rows.iter().map(|r| r.1).sum::<f64>() / rows.len() as f64;
        println!(
            "{name}: {:.0} increments/s, {retries:.2} retries per success ({} runs, every count exact)",
            (TASKS * UPDATES) as f64 / secs,
            rows.len()
        );
    }

        }
    };
}

server_benches!(
    postgres,
    "postgres",
    "VERSIONED_POSTGRES_URL",
    open_postgres,
    "VACUUM ANALYZE people",
    "INSERT INTO people (id, name, salary, version) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
    false
);
server_benches!(
    mysql,
    "mariadb",
    "VERSIONED_MYSQL_URL",
    open_mysql,
    "ANALYZE TABLE people",
    "INSERT INTO people (id, name, salary, version) VALUES ($1, $2, $3, $4)",
    true
);

criterion_group!(benches, postgres, mysql);
criterion_main!(benches);
