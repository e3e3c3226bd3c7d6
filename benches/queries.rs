//! Queries against the same work written by hand, in the same run:
//!
//! - a page of 20 of 100,000 records, filtered on an indexed field (10,000 match) and ordered by a
//!   timestamp (microseconds in an integer column), against the same `SELECT` written with sqlx
//!   and decoded into the same struct, on SQLite (a file, WAL), PostgreSQL and MariaDB;
//! - all 100,000 records streamed, against sqlx's `fetch` of one `SELECT … ORDER BY id` decoded
//!   the same way; the peak of the memory allocated while streaming 10,000 and 100,000 records is
//!   printed for both;
//! - the memory backend's page against the same filter, sort and cut over a `Vec`.
//!
//! `VERSIONED_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test VERSIONED_MYSQL_URL=mysql://root@127.0.0.1:3306/test cargo bench --features postgres,mysql --bench queries`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::{StreamExt as _, TryStreamExt as _};
use versioned::{Storage, Store, Versioned};

/// Counts the bytes allocated now and at the peak, so that a stream's memory can be reported.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: a pointer this allocator gave, with its layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bytes allocated at the peak of `f`, above what was allocated when it started.
async fn peak_of<F: std::future::Future>(f: F) -> (F::Output, usize) {
    let base = NOW.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f.await;
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "bench_bugs")]
struct Bug {
    #[key]
    id: i64,
    title: String,
    #[versioned(index)]
    status: String,
    /// When it was opened, in microseconds.
    opened: i64,
    #[version]
    version: u64,
}

const RECORDS: i64 = 100_000;
const STATUSES: i64 = 10;
const PAGE: u64 = 20;

fn bug(id: i64) -> Bug {
    // Opened times spread over the ids out of their order, so the order is not the key's.
    let opened = (id * 7_919) % RECORDS * 1_000;
    Bug { id, title: format!("bug {id}"), status: format!("s{}", id % STATUSES), opened, version: 1 }
}

/// The page versioned answers.
async fn versioned_page<S: Storage>(store: &Store<S>) -> Vec<Bug> {
    let page = store.find::<Bug>().filter(Bug::STATUS.eq("s3")).order_by(Bug::OPENED.desc()).page(PAGE).await;
    page.expect("page").records
}

/// What the hand-written side decodes a row into: the same struct.
fn decode<R: sqlx::Row>(row: &R) -> Bug
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let version: i64 = row.get("version");
    Bug {
        id: row.get("id"),
        title: row.get("title"),
        status: row.get("status"),
        opened: row.get("opened"),
        version: u64::try_from(version).expect("a version"),
    }
}

/// One backend's benchmarks: `$store` and `$pool` over 100,000 bugs; `$page` and `$all` the
/// hand-written statements in the database's placeholder style.
macro_rules! sql_benches {
    ($c:expr, $rt:expr, $label:literal, $store:expr, $pool:expr, $page:literal, $all:literal, $chunk:literal) => {{
        let (store, pool) = ($store, $pool);
        let mut group =
            $c.benchmark_group(concat!($label, ": a page of 20 of 100,000, filtered on an index, by a timestamp"));
        group.bench_function("versioned: find().filter(STATUS.eq).order_by(OPENED.desc()).page(20)", |b| {
            b.to_async(&$rt).iter(|| versioned_page(&store))
        });
        group.bench_function(concat!("hand-written sqlx: ", $page), |b| {
            b.to_async(&$rt).iter(|| async {
                let rows = sqlx::query($page).bind("s3").bind(PAGE as i64 + 1).fetch_all(&pool).await.expect("page");
                rows.iter().take(PAGE as usize).map(decode).collect::<Vec<Bug>>()
            })
        });
        group.finish();
        $rt.block_on(async {
            let mut want = versioned_page(&store).await;
            let rows = sqlx::query($page).bind("s3").bind(PAGE as i64 + 1).fetch_all(&pool).await.expect("page");
            let mut got: Vec<Bug> = rows.iter().take(PAGE as usize).map(decode).collect();
            assert_eq!(want.len(), 20);
            want.sort_by_key(|b| b.id);
            got.sort_by_key(|b| b.id);
            assert_eq!(want, got, "both sides read the same page");
        });

        let mut group = $c.benchmark_group(concat!($label, ": all 100,000 records, streamed"));
        group.sample_size(10);
        group.bench_function("versioned: find().stream(1_000)", |b| {
            b.to_async(&$rt).iter(|| async {
                store.find::<Bug>().stream(1_000).try_fold(0u64, |n, _| async move { Ok(n + 1) }).await.expect("stream")
            })
        });
        group.bench_function("versioned: find().stream(10_000)", |b| {
            b.to_async(&$rt).iter(|| async {
                store
                    .find::<Bug>()
                    .stream(10_000)
                    .try_fold(0u64, |n, _| async move { Ok(n + 1) })
                    .await
                    .expect("stream")
            })
        });
        // The bound of any stream in chunks by keyset: the same chunks written by hand.
        group.bench_function(concat!("hand-written sqlx: chunks of 1,000 by keyset, fetch_all(", $chunk, ")"), |b| {
            b.to_async(&$rt).iter(|| async {
                let (mut after, mut n) = (0_i64, 0_u64);
                loop {
                    let rows = sqlx::query($chunk).bind(after).fetch_all(&pool).await.expect("chunk");
                    let bugs: Vec<Bug> = rows.iter().map(decode).collect();
                    n += bugs.len() as u64;
                    match bugs.last() {
                        Some(last) if bugs.len() == 1_000 => after = last.id,
                        _ => break n,
                    }
                }
            })
        });
        group.bench_function(concat!("hand-written sqlx: fetch(", $all, ")"), |b| {
            b.to_async(&$rt).iter(|| async {
                sqlx::query($all)
                    .fetch(&pool)
                    .map(|row| decode(&row.expect("row")))
                    .fold(0u64, |n, _| async move { n + 1 })
                    .await
            })
        });
        group.finish();
        $rt.block_on(async {
            for n in [10_000i64, RECORDS] {
                let (count, versioned) = peak_of(
                    store
                        .find::<Bug>()
                        .filter(Bug::ID.le(n))
                        .stream(1_000)
                        .try_fold(0u64, |n, _| async move { Ok(n + 1) }),
                )
                .await;
                assert_eq!(count.expect("stream"), n as u64);
                let (count, hand) = peak_of(
                    sqlx::query($all)
                        .fetch(&pool)
                        .take(n as usize)
                        .map(|row| decode(&row.expect("row")))
                        .fold(0u64, |n, _| async move { n + 1 }),
                )
                .await;
                assert_eq!(count, n as u64);
                println!(
                    "{}: peak memory streaming {n} records: versioned {} KiB, hand-written {} KiB",
                    $label,
                    versioned / 1024,
                    hand / 1024
                );
            }
        });
    }};
}

/// Loads the 100,000 bugs with multi-row inserts written by hand (`$values`: a row's placeholders).
macro_rules! load {
    ($pool:expr, $row:expr) => {{
        let pool = $pool;
        let mut tx = pool.begin().await.expect("begin");
        for chunk in (1..=RECORDS).collect::<Vec<_>>().chunks(1_000) {
            let rows: Vec<String> = chunk.iter().enumerate().map(|(i, _)| $row(i)).collect();
            let sql = format!("INSERT INTO bench_bugs (id, title, status, opened, version) VALUES {}", rows.join(", "));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                let b = bug(*id);
                query = query.bind(b.id).bind(b.title).bind(b.status).bind(b.opened).bind(1_i64);
            }
            query.execute(&mut *tx).await.expect("insert");
        }
        tx.commit().await.expect("commit");
    }};
}

fn queries(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");

    // The memory backend against a `Vec`.
    let (store, vec) = rt.block_on(async {
        let store = Store::memory();
        store.create_table::<Bug>().await.expect("create");
        let mut all: Vec<Bug> = (1..=RECORDS).map(bug).collect();
        for chunk in all.chunks_mut(10_000) {
            for b in chunk.iter_mut() {
                b.version = 0;
            }
            store.insert_all(chunk).await.expect("insert");
        }
        (store, all)
    });
    let mut group = c.benchmark_group("memory: a page of 20 of 100,000, filtered, by a timestamp");
    group.bench_function("versioned: find().filter(STATUS.eq).order_by(OPENED.desc()).page(20)", |b| {
        b.to_async(&rt).iter(|| versioned_page(&store))
    });
    group.bench_function("hand-written: Vec filter, sort, first 20 cloned", |b| {
        b.iter(|| {
            let mut found: Vec<&Bug> = vec.iter().filter(|b| b.status == "s3").collect();
            found.sort_unstable_by(|a, b| b.opened.cmp(&a.opened).then(a.id.cmp(&b.id)));
            found.into_iter().take(PAGE as usize).cloned().collect::<Vec<Bug>>()
        })
    });
    group.finish();
    drop((store, vec));

    // SQLite: a file, WAL.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("queries.db").display());
    let (store, pool) = rt.block_on(async {
        let store = Store::sqlite(&url).await.expect("open");
        store.create_table::<Bug>().await.expect("create");
        let pool = store.backend().pool().clone();
        load!(&pool, |_| "(?, ?, ?, ?, ?)".to_owned());
        sqlx::query("ANALYZE").execute(&pool).await.expect("analyze");
        (store, pool)
    });
    sql_benches!(
        c,
        rt,
        "sqlite",
        store,
        pool,
        "SELECT id, title, status, opened, version FROM bench_bugs WHERE status = ? ORDER BY opened DESC, id LIMIT ?",
        "SELECT id, title, status, opened, version FROM bench_bugs ORDER BY id",
        "SELECT id, title, status, opened, version FROM bench_bugs WHERE id > ? ORDER BY id LIMIT 1000"
    );

    if let Ok(url) = std::env::var("VERSIONED_POSTGRES_URL") {
        let (store, pool) = rt.block_on(async {
            let admin = sqlx::PgPool::connect(&url).await.expect("VERSIONED_POSTGRES_URL is set but unreachable");
            for sql in
                ["DROP SCHEMA IF EXISTS versioned_bench_queries CASCADE", "CREATE SCHEMA versioned_bench_queries"]
            {
                sqlx::query(sql).execute(&admin).await.expect(sql);
            }
            let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a PostgreSQL URL");
            let options = options.options([("search_path", "versioned_bench_queries")]);
            let store = Store::new(versioned::PostgresStorage::connect_with(options).await.expect("connect"));
            store.create_table::<Bug>().await.expect("create");
            let pool = store.backend().pool().clone();
            load!(&pool, |i: usize| {
                let n = i * 5;
                format!("(${}, ${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4, n + 5)
            });
            sqlx::query("VACUUM ANALYZE bench_bugs").execute(&pool).await.expect("analyze");
            (store, pool)
        });
        sql_benches!(
            c,
            rt,
            "postgres",
            store,
            pool,
            "SELECT id, title, status, opened, version FROM bench_bugs WHERE status = $1 ORDER BY opened DESC, id LIMIT $2",
            "SELECT id, title, status, opened, version FROM bench_bugs ORDER BY id",
            "SELECT id, title, status, opened, version FROM bench_bugs WHERE id > $1 ORDER BY id LIMIT 1000"
        );
    } else {
        eprintln!("skipped: set VERSIONED_POSTGRES_URL to run the PostgreSQL benchmarks");
    }

    if let Ok(url) = std::env::var("VERSIONED_MYSQL_URL") {
        let (store, pool) = rt.block_on(async {
            let admin = sqlx::MySqlPool::connect(&url).await.expect("VERSIONED_MYSQL_URL is set but unreachable");
            for sql in ["DROP DATABASE IF EXISTS versioned_bench_queries", "CREATE DATABASE versioned_bench_queries"] {
                sqlx::query(sql).execute(&admin).await.expect(sql);
            }
            let options: sqlx::mysql::MySqlConnectOptions = url.parse().expect("a MySQL URL");
            let store = Store::new(
                versioned::MysqlStorage::connect_with(options.database("versioned_bench_queries"))
                    .await
                    .expect("connect"),
            );
            store.create_table::<Bug>().await.expect("create");
            let pool = store.backend().pool().clone();
            load!(&pool, |_| "(?, ?, ?, ?, ?)".to_owned());
            sqlx::query("ANALYZE TABLE bench_bugs").execute(&pool).await.expect("analyze");
            (store, pool)
        });
        sql_benches!(
            c,
            rt,
            "mariadb",
            store,
            pool,
            "SELECT id, title, status, opened, version FROM bench_bugs WHERE status = ? ORDER BY opened DESC, id LIMIT ?",
            "SELECT id, title, status, opened, version FROM bench_bugs ORDER BY id",
            "SELECT id, title, status, opened, version FROM bench_bugs WHERE id > ? ORDER BY id LIMIT 1000"
        );
    } else {
        eprintln!("skipped: set VERSIONED_MYSQL_URL to run the MariaDB benchmarks");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(4));
    targets = queries
}
criterion_main!(benches);
