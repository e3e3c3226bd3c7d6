//! The cost of version history on a checked put: the same put of the same struct shape with and
//! without `#[versioned(history)]`, beside the `UPDATE … WHERE id = ? AND version = ?` written by
//! hand, on the same pool, in the same run; on an SQLite file (WAL), and on PostgreSQL when
//! `VERSIONED_POSTGRES_URL` is set:
//!
//! `VERSIONED_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --features postgres --bench history`

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use versioned::{Storage, Store, Versioned};

/// A record without history.
#[derive(Versioned, Debug, Clone)]
#[versioned(table = "bench_plain")]
struct Plain {
    #[key]
    id: i64,
    name: String,
    salary: i64,
    #[version]
    version: u64,
}

/// The same record, every version kept (the history grows by one entry per put).
#[derive(Versioned, Debug, Clone)]
#[versioned(table = "bench_kept", history)]
struct Kept {
    #[key]
    id: i64,
    name: String,
    salary: i64,
    #[version]
    version: u64,
}

/// The same record, its last 10 versions kept (each put also drops the eleventh).
#[derive(Versioned, Debug, Clone)]
#[versioned(table = "bench_recent", history(keep_versions = 10))]
struct Recent {
    #[key]
    id: i64,
    name: String,
    salary: i64,
    #[version]
    version: u64,
}

async fn tables<S: Storage>(store: &Store<S>) {
    store.create_table::<Plain>().await.expect("create");
    store.create_table::<Kept>().await.expect("create");
    store.create_table::<Recent>().await.expect("create");
    store.insert(&mut Plain { id: 1, name: "Ann".into(), salary: 0, version: 0 }).await.expect("insert");
    // The hand-written statement's own row.
    store.insert(&mut Plain { id: 2, name: "Ann".into(), salary: 0, version: 0 }).await.expect("insert");
    store.insert(&mut Kept { id: 1, name: "Ann".into(), salary: 0, version: 0 }).await.expect("insert");
    store.insert(&mut Recent { id: 1, name: "Ann".into(), salary: 0, version: 0 }).await.expect("insert");
}

/// The three puts and the hand-written statement on `store`'s pool (`update` binds and runs it).
fn puts<S: Storage, F, Fut>(c: &mut Criterion, label: &str, rt: &tokio::runtime::Runtime, store: &Store<S>, update: F)
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let (plain, kept, recent, hand) = (AtomicU64::new(1), AtomicU64::new(1), AtomicU64::new(1), AtomicU64::new(1));
    let mut group = c.benchmark_group(format!("{label}: checked put"));
    group.bench_function("versioned: put, no history", |b| {
        b.to_async(rt).iter(|| async {
            let version = plain.fetch_add(1, Ordering::Relaxed);
            store.put(&mut Plain { id: 1, name: "Ann".into(), salary: 1, version }).await.expect("put");
        });
    });
    group.bench_function("versioned: put, history kept", |b| {
        b.to_async(rt).iter(|| async {
            let version = kept.fetch_add(1, Ordering::Relaxed);
            store.put(&mut Kept { id: 1, name: "Ann".into(), salary: 1, version }).await.expect("put");
        });
    });
    group.bench_function("versioned: put, last 10 versions kept", |b| {
        b.to_async(rt).iter(|| async {
            let version = recent.fetch_add(1, Ordering::Relaxed);
            store.put(&mut Recent { id: 1, name: "Ann".into(), salary: 1, version }).await.expect("put");
        });
    });
    group.bench_function("hand-written sqlx: UPDATE … WHERE id = ? AND version = ?", |b| {
        b.to_async(rt).iter(|| async {
            let version = hand.fetch_add(1, Ordering::Relaxed) as i64;
            assert_eq!(update(version).await, 1);
        });
    });
    group.finish();
}

fn sqlite(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
    let store = rt.block_on(async {
        let store = Store::sqlite(&url).await.expect("open");
        tables(&store).await;
        store
    });
    let pool = store.backend().pool().clone();
    puts(c, "SQLite", &rt, &store, |v| {
        let pool = pool.clone();
        async move {
            let sql = "UPDATE bench_plain SET name = ?, salary = ?, version = ? WHERE id = ? AND version = ?";
            let query = sqlx::query(sql).bind("Ann").bind(2_i64).bind(v + 1).bind(2_i64).bind(v);
            query.execute(&pool).await.expect("update").rows_affected()
        }
    });
}

fn postgres(c: &mut Criterion) {
    let Ok(url) = std::env::var("VERSIONED_POSTGRES_URL") else {
        eprintln!("skipped: set VERSIONED_POSTGRES_URL to run the PostgreSQL benchmarks");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let store = rt.block_on(async {
        let admin =
            sqlx::PgPool::connect(&url).await.expect("VERSIONED_POSTGRES_URL is set but the server is unreachable");
        for sql in ["DROP SCHEMA IF EXISTS versioned_bench_history CASCADE", "CREATE SCHEMA versioned_bench_history"] {
            sqlx::query(sql).execute(&admin).await.expect(sql);
        }
        let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a PostgreSQL URL");
        let options = options.options([("search_path", "versioned_bench_history")]);
        let store = Store::new(versioned::PostgresStorage::connect_with(options).await.expect("connect"));
        tables(&store).await;
        store
    });
    let pool = store.backend().pool().clone();
    puts(c, "PostgreSQL", &rt, &store, |v| {
        let pool = pool.clone();
        async move {
            let sql = "UPDATE bench_plain SET name = $1, salary = $2, version = $3 WHERE id = $4 AND version = $5";
            let query = sqlx::query(sql).bind("Ann").bind(2_i64).bind(v + 1).bind(2_i64).bind(v);
            query.execute(&pool).await.expect("update").rows_affected()
        }
    });
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
