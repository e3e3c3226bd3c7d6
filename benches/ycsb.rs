//! A YCSB-A-style workload: 16 clients over 10,000 records, each operation half reads and half
//! read-modify-writes (an increment of the record's counter), the record chosen with a Zipfian
//! distribution of skew θ (YCSB's generator: θ = 0.99 is YCSB's default, a few records take most
//! of the traffic; θ = 0.5 is mild). Three ways to write, side by side in one run on each backend:
//!
//! - versioned's `update`, which reads a cold record optimistically, and whose updates of a hot
//!   one take turns in the store (MariaDB: lock it);
//! - a hand-written optimistic loop (read, checked write, again on a conflict);
//! - a hand-written locking loop (`BEGIN; SELECT … FOR UPDATE; UPDATE; COMMIT`; on SQLite
//!   `BEGIN IMMEDIATE`; on etcd its lock service around a read and a write).
//!
//! For each: successful updates per second, retries per success, and the p50 and p99 latency of
//! an update (its retries included). After each run the counters must sum to exactly the updates
//! that succeeded. The table is printed, and a plot of throughput against θ is written to
//! `docs/ycsb.svg` (the README shows it).
//!
//! `VERSIONED_POSTGRES_URL=… VERSIONED_MYSQL_URL=… cargo bench --all-features --bench ycsb`
//! (SQLite always; the servers whose URL is set; etcd on a 3-member cluster it starts from
//! Debian's `etcd`, or the one `VERSIONED_ETCD_ENDPOINTS` names).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{MySqlPool, PgPool, SqlitePool};
use versioned::etcd_client::{Client, Compare, CompareOp, LockOptions, Txn, TxnOp};
use versioned::{EtcdOptions, RetryPolicy, Storage, Store, Versioned};

#[allow(dead_code)]
#[path = "../tests/common/etcd_cluster.rs"]
mod cluster;

/// A YCSB record, reduced to the counter the read-modify-writes increment.
#[derive(Versioned, Debug, Clone)]
#[versioned(table = "usertable")]
struct UserRecord {
    #[key]
    id: i64,
    counter: i64,
    #[version]
    version: u64,
}

const RECORDS: usize = 10_000;
const CLIENTS: usize = 16;
/// How long each (backend, θ, way) runs.
const RUN: Duration = Duration::from_secs(3);
/// The skews measured: the table shows 0.5 and 0.99, the plot all of them.
const THETAS: [f64; 4] = [0.5, 0.8, 0.9, 0.99];

/// YCSB's Zipfian generator (Gray et al., "Quickly generating billion-record synthetic
/// databases", SIGMOD 1994): item 0 is the most popular.
struct Zipfian {
    items: f64,
    theta: f64,
    zetan: f64,
    alpha: f64,
    eta: f64,
}

impl Zipfian {
    fn new(items: usize, theta: f64) -> Self {
        let zeta = |n: usize| (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let (zetan, zeta2) = (zeta(items), zeta(2));
        let items = items as f64;
        let eta = (1.0 - (2.0 / items).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipfian { items, theta, zetan, alpha: 1.0 / (1.0 - theta), eta }
    }

    /// The item for a uniform `u` in [0, 1).
    fn item(&self, u: f64) -> i64 {
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        ((self.items * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as i64).min(self.items as i64 - 1)
    }
}

/// A client's random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The hand-written side on a backend's own connections.
#[derive(Clone)]
enum Hand {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    Mysql(MySqlPool),
    /// `leases`: one per client, for etcd's lock service (a lock is its lease's: two clients
    /// sharing one would both hold it).
    Etcd {
        client: Box<Client>,
        prefix: String,
        leases: Arc<Vec<i64>>,
    },
}

/// Runs `$body` with `$pool` bound to the SQL pool and `$mysql` telling the placeholder style
/// (`?` for SQLite and MySQL); `$etcd` for etcd.
macro_rules! on_sql {
    ($hand:expr, |$pool:ident, $question:ident| $body:expr, $etcd:expr) => {
        match $hand {
            Hand::Sqlite($pool) => {
                let $question = true;
                $body
            }
            Hand::Postgres($pool) => {
                let $question = false;
                $body
            }
            Hand::Mysql($pool) => {
                let $question = true;
                $body
            }
            Hand::Etcd { .. } => $etcd,
        }
    };
}

/// A statement written with `$n` placeholders, as PostgreSQL wants, or `?`.
fn sql(text: &'static str, question: bool) -> sqlx::AssertSqlSafe<String> {
    let mut text = text.to_owned();
    if question {
        for n in (1..=9).rev() {
            text = text.replace(&format!("${n}"), "?");
        }
    }
    sqlx::AssertSqlSafe(text)
}

const READ: &str = "SELECT counter, version FROM usertable WHERE id = $1";
const WRITE: &str = "UPDATE usertable SET counter = $1, version = $2 WHERE id = $3 AND version = $4";

impl Hand {
    fn etcd_key(prefix: &str, id: i64) -> Vec<u8> {
        format!("{prefix}hand/{id:05}").into_bytes()
    }

    /// Sets every counter to 0 (the hand-written side's records on etcd: made here).
    async fn reset(&self) {
        on_sql!(
            self,
            |pool, _q| {
                sqlx::query("UPDATE usertable SET counter = 0").execute(pool).await.expect("reset");
            },
            {
                let Hand::Etcd { client, prefix, .. } = self else { unreachable!() };
                let mut kv = client.kv_client();
                for chunk in (0..RECORDS as i64).collect::<Vec<_>>().chunks(100) {
                    let puts: Vec<TxnOp> = chunk
                        .iter()
                        .map(|&id| TxnOp::put(Self::etcd_key(prefix, id), 0i64.to_le_bytes().to_vec(), None))
                        .collect();
                    kv.txn(Txn::new().and_then(puts)).await.expect("reset");
                }
            }
        )
    }

    /// The sum of the hand-written side's counters (on SQL the same table as versioned's).
    async fn etcd_sum(&self) -> i64 {
        let Hand::Etcd { client, prefix, .. } = self else { return 0 };
        let reply = client
            .kv_client()
            .get(format!("{prefix}hand/"), Some(versioned::etcd_client::GetOptions::new().with_prefix()))
            .await
            .expect("read");
        reply.kvs().iter().map(|kv| decode(kv.value())).sum()
    }

    async fn read(&self, id: i64) {
        on_sql!(
            self,
            |pool, q| {
                let _: (i64, i64) = sqlx::query_as(sql(READ, q)).bind(id).fetch_one(pool).await.expect("read");
            },
            {
                let Hand::Etcd { client, prefix, .. } = self else { unreachable!() };
                client.kv_client().get(Self::etcd_key(prefix, id), None).await.expect("read");
            }
        )
    }

    /// One increment by an optimistic loop: returns the attempts it took.
    async fn optimistic(&self, id: i64) -> u64 {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let done = on_sql!(
                self,
                |pool, q| {
                    let (counter, version): (i64, i64) =
                        sqlx::query_as(sql(READ, q)).bind(id).fetch_one(pool).await.expect("read");
                    let done = sqlx::query(sql(WRITE, q))
                        .bind(counter + 1)
                        .bind(version + 1)
                        .bind(id)
                        .bind(version)
                        .execute(pool)
                        .await;
                    match done {
                        Ok(done) => done.rows_affected() == 1,
                        // SQLite's busy writer, MariaDB's deadlock victim: a conflict to retry.
                        Err(e) if retryable(&e) => false,
                        Err(e) => panic!("write: {e}"),
                    }
                },
                {
                    let Hand::Etcd { client, prefix, .. } = self else { unreachable!() };
                    let key = Self::etcd_key(prefix, id);
                    let mut kv = client.kv_client();
                    let read = kv.get(key.clone(), None).await.expect("read");
                    let stored = read.kvs().first().expect("the record");
                    let (counter, revision) = (decode(stored.value()), stored.mod_revision());
                    let txn = Txn::new()
                        .when([Compare::mod_revision(key.clone(), CompareOp::Equal, revision)])
                        .and_then([TxnOp::put(key, (counter + 1).to_le_bytes().to_vec(), None)]);
                    kv.txn(txn).await.expect("write").succeeded()
                }
            );
            if done {
                return attempts;
            }
        }
    }

    /// One increment under the record's lock: returns the attempts it took (more than one only
    /// when the database chose it as a deadlock victim).
    async fn locking(&self, id: i64, client_no: usize) -> u64 {
        const LOCK: &str = "SELECT counter, version FROM usertable WHERE id = $1 FOR UPDATE";
        let mut attempts = 0;
        loop {
            attempts += 1;
            // SQLite has no `FOR UPDATE`: `BEGIN IMMEDIATE` takes its one write lock instead.
            let sqlite = matches!(self, Hand::Sqlite(_));
            let (begin, lock) = if sqlite { ("BEGIN IMMEDIATE", READ) } else { ("BEGIN", LOCK) };
            let done: Result<(), sqlx::Error> = on_sql!(
                self,
                |pool, q| {
                    async {
                        let mut tx = pool.begin_with(begin).await?;
                        let (counter, version): (i64, i64) =
                            sqlx::query_as(sql(lock, q)).bind(id).fetch_one(&mut *tx).await?;
                        sqlx::query(sql(WRITE, q))
                            .bind(counter + 1)
                            .bind(version + 1)
                            .bind(id)
                            .bind(version)
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await
                    }
                    .await
                },
                {
                    let Hand::Etcd { client: etcd, prefix, leases } = self else { unreachable!() };
                    // etcd's lock service: a lock key of the caller's lease, then the read and a
                    // write that compares the lock key still exists, then the unlock.
                    let key = Self::etcd_key(prefix, id);
                    let mut name = b"locks/".to_vec();
                    name.extend_from_slice(&key);
                    let mut client = Client::clone(etcd);
                    let held = client
                        .lock(name, Some(LockOptions::new().with_lease(leases[client_no % leases.len()])))
                        .await
                        .expect("lock");
                    let owner = held.key().to_vec();
                    let read = client.get(key.clone(), None).await.expect("read");
                    let counter = decode(read.kvs().first().expect("the record").value());
                    let txn = Txn::new()
                        .when([Compare::create_revision(owner.clone(), CompareOp::Greater, 0)])
                        .and_then([TxnOp::put(key, (counter + 1).to_le_bytes().to_vec(), None)]);
                    let written = client.txn(txn).await.expect("write").succeeded();
                    client.unlock(owner).await.expect("unlock");
                    assert!(written, "a write under etcd's lock is never refused");
                    Ok(())
                }
            );
            match done {
                Ok(()) => return attempts,
                Err(e) if retryable(&e) => continue,
                Err(e) => panic!("locked update: {e}"),
            }
        }
    }
}

/// A deadlock victim or a busy SQLite: the database asks for a retry.
fn retryable(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else { return false };
    matches!(db.code().as_deref(), Some("40001" | "40P01" | "5" | "517" | "261"))
        || db.message().contains("database is locked")
}

fn decode(bytes: &[u8]) -> i64 {
    i64::from_le_bytes(bytes.try_into().expect("an 8-byte counter"))
}

/// One way of writing.
#[derive(Clone, Copy, PartialEq)]
enum Way {
    Versioned,
    Optimistic,
    Locking,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Versioned => "versioned update (adaptive)",
            Way::Optimistic => "hand-written optimistic loop",
            Way::Locking => "hand-written locking loop",
        }
    }
}

/// What one run measured.
struct Measured {
    backend: &'static str,
    theta: f64,
    way: Way,
    updates_per_second: f64,
    retries_per_success: f64,
    p50: Duration,
    p99: Duration,
}

/// One run: `CLIENTS` clients for `RUN`, each operation a read or an increment (half each) of a
/// Zipfian-chosen record. Checks that the counters sum to the increments that succeeded.
async fn run<S: Storage + Clone>(
    backend: &'static str,
    store: &Store<S>,
    hand: &Hand,
    theta: f64,
    way: Way,
) -> Measured {
    // On SQL both sides use the same table; on etcd the hand-written side has keys of its own.
    match (hand, way) {
        (Hand::Etcd { .. }, Way::Versioned) => reset_versioned(store).await,
        _ => hand.reset().await,
    }
    let zipf = Arc::new(Zipfian::new(RECORDS, theta));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (store, hand, zipf) = (store.clone(), hand.clone(), Arc::clone(&zipf));
            tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (client as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
                let (mut latencies, mut attempts) = (Vec::new(), 0u64);
                while started.elapsed() < RUN {
                    let id = zipf.item(rng.unit());
                    let read = rng.unit() < 0.5;
                    if read {
                        match way {
                            Way::Versioned => {
                                store.get::<UserRecord>(&id).await.expect("get");
                            }
                            _ => hand.read(id).await,
                        }
                        continue;
                    }
                    let at = Instant::now();
                    attempts += match way {
                        Way::Versioned => {
                            let mut calls = 0;
                            let policy = RetryPolicy { max_attempts: 100_000, ..RetryPolicy::default() };
                            store
                                .update::<UserRecord, _>(&id, policy, |r| {
                                    calls += 1;
                                    r.counter += 1;
                                })
                                .await
                                .expect("update");
                            calls
                        }
                        Way::Optimistic => hand.optimistic(id).await,
                        Way::Locking => hand.locking(id, client).await,
                    };
                    latencies.push(at.elapsed());
                }
                (latencies, attempts)
            })
        })
        .collect();
    let (mut latencies, mut attempts) = (Vec::new(), 0);
    for client in clients {
        let (mine, tries) = client.await.expect("a client");
        latencies.extend(mine);
        attempts += tries;
    }
    let elapsed = started.elapsed();
    let successes = latencies.len();
    let sum = match (hand, way) {
        (Hand::Etcd { .. }, Way::Optimistic | Way::Locking) => hand.etcd_sum().await,
        _ => versioned_sum(store).await,
    };
    assert_eq!(sum, successes as i64, "{backend}, θ = {theta}, {}: every increment exactly once", way.name());
    latencies.sort();
    let at = |q: f64| latencies.get(((successes as f64 * q) as usize).min(successes.saturating_sub(1))).copied();
    Measured {
        backend,
        theta,
        way,
        updates_per_second: successes as f64 / elapsed.as_secs_f64(),
        retries_per_success: attempts as f64 / successes.max(1) as f64 - 1.0,
        p50: at(0.50).unwrap_or_default(),
        p99: at(0.99).unwrap_or_default(),
    }
}

/// The store's records, read 100 at a time (a request each: etcd's limit on a transaction).
async fn versioned_records<S: Storage>(store: &Store<S>) -> Vec<UserRecord> {
    let ids: Vec<i64> = (0..RECORDS as i64).collect();
    let mut records = Vec::with_capacity(RECORDS);
    for chunk in ids.chunks(100) {
        records.extend(store.get_many::<UserRecord, _>(chunk).await.expect("read").into_iter().flatten());
    }
    records
}

/// Sets every counter to 0 through the store (its own writes, so that each backend's layout is
/// kept); the records are made on the first call.
async fn reset_versioned<S: Storage>(store: &Store<S>) {
    let stored = versioned_records(store).await;
    if stored.is_empty() {
        for chunk in (0..RECORDS as i64).collect::<Vec<_>>().chunks(40) {
            let mut records: Vec<UserRecord> =
                chunk.iter().map(|&id| UserRecord { id, counter: 0, version: 0 }).collect();
            store.insert_all(&mut records).await.expect("insert");
        }
        return;
    }
    for chunk in stored.chunks(40) {
        let mut records: Vec<UserRecord> = chunk.iter().map(|r| UserRecord { counter: 0, ..r.clone() }).collect();
        store.put_all(&mut records).await.expect("reset");
    }
}

async fn versioned_sum<S: Storage>(store: &Store<S>) -> i64 {
    versioned_records(store).await.iter().map(|r| r.counter).sum()
}

/// Every θ and way on one backend.
async fn backend<S: Storage + Clone>(name: &'static str, store: Store<S>, hand: Hand, out: &mut Vec<Measured>) {
    store.create_table::<UserRecord>().await.expect("create");
    reset_versioned(&store).await;
    for theta in THETAS {
        for way in [Way::Versioned, Way::Optimistic, Way::Locking] {
            let measured = run(name, &store, &hand, theta, way).await;
            eprintln!(
                "{name:10} θ = {theta:4}  {:30} {:8.0} updates/s  {:6.2} retries/success  p50 {:8.2?}  p99 {:8.2?}",
                way.name(),
                measured.updates_per_second,
                measured.retries_per_success,
                measured.p50,
                measured.p99
            );
            out.push(measured);
        }
    }
}

fn main() {
    // `cargo test --benches` runs a bench binary once with no arguments but `--bench` absent:
    // there, say so and stop, as criterion's benches do.
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!("ycsb: run with `cargo bench --bench ycsb`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut out = Vec::new();
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("ycsb.db").display());
        let store = Store::sqlite(&url).await.expect("open");
        let pool = store.backend().pool().clone();
        backend("SQLite", store, Hand::Sqlite(pool), &mut out).await;
        if let Ok(url) = std::env::var("VERSIONED_POSTGRES_URL") {
            let admin =
                PgPool::connect(&url).await.expect("VERSIONED_POSTGRES_URL is set but the server is unreachable");
            for statement in ["DROP SCHEMA IF EXISTS versioned_ycsb CASCADE", "CREATE SCHEMA versioned_ycsb"] {
                sqlx::query(statement).execute(&admin).await.expect(statement);
            }
            let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a PostgreSQL URL");
            let options = options.options([("search_path", "versioned_ycsb")]);
            let store = Store::new(versioned::PostgresStorage::connect_with(options).await.expect("connect"));
            let pool = store.backend().pool().clone();
            backend("PostgreSQL", store, Hand::Postgres(pool), &mut out).await;
        } else {
            eprintln!("skipped PostgreSQL: set VERSIONED_POSTGRES_URL");
        }
        if let Ok(url) = std::env::var("VERSIONED_MYSQL_URL") {
            let admin =
                MySqlPool::connect(&url).await.expect("VERSIONED_MYSQL_URL is set but the server is unreachable");
            for statement in ["DROP DATABASE IF EXISTS versioned_ycsb", "CREATE DATABASE versioned_ycsb"] {
                sqlx::query(statement).execute(&admin).await.expect(statement);
            }
            let options: sqlx::mysql::MySqlConnectOptions = url.parse().expect("a MySQL URL");
            let store = Store::new(
                versioned::MysqlStorage::connect_with(options.database("versioned_ycsb")).await.expect("connect"),
            );
            let pool = store.backend().pool().clone();
            backend("MariaDB", store, Hand::Mysql(pool), &mut out).await;
        } else {
            eprintln!("skipped MariaDB: set VERSIONED_MYSQL_URL");
        }
        match cluster::shared_endpoints() {
            Some(endpoints) => {
                let prefix = format!("ycsb/{}/", uuid::Uuid::new_v4().simple());
                let options = EtcdOptions::from_list(&endpoints.join(",")).expect("endpoints").prefix(&prefix);
                let store = Store::new(versioned::EtcdStorage::connect(options).await.expect("connect"));
                let client = store.backend().client().clone();
                let mut leases = Vec::new();
                for _ in 0..CLIENTS {
                    leases.push(client.lease_client().grant(600, None).await.expect("a lease").id());
                }
                backend(
                    "etcd",
                    store,
                    Hand::Etcd { client: Box::new(client), prefix, leases: Arc::new(leases) },
                    &mut out,
                )
                .await;
            }
            None => eprintln!("skipped etcd: no etcd here"),
        }
    });
    print_table(&out);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ycsb.svg");
    std::fs::create_dir_all(path.parent().expect("docs")).expect("docs/");
    std::fs::write(&path, plot(&out)).expect("write the plot");
    println!("plot written to {}", path.display());
}

fn print_table(out: &[Measured]) {
    println!("| backend | θ | way | updates/s | retries per success | p50 | p99 |");
    println!("|---|---|---|---|---|---|---|");
    for m in out.iter().filter(|m| m.theta == 0.5 || m.theta == 0.99) {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2?} | {:.2?} |",
            m.backend,
            m.theta,
            m.way.name(),
            m.updates_per_second,
            m.retries_per_success,
            m.p50,
            m.p99
        );
    }
}

/// Throughput against θ, one panel per backend (their scales differ), a line per way.
fn plot(out: &[Measured]) -> String {
    use std::fmt::Write;
    let backends: Vec<&str> = out.iter().fold(Vec::new(), |mut seen, m| {
        if !seen.contains(&m.backend) {
            seen.push(m.backend);
        }
        seen
    });
    let (panel_w, panel_h, margin) = (320.0, 240.0, 50.0);
    let width = backends.len() as f64 * (panel_w + margin) + margin;
    let height = panel_h + 2.0 * margin + 60.0;
    let colors = [(Way::Versioned, "#1f77b4"), (Way::Optimistic, "#d62728"), (Way::Locking, "#2ca02c")];
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let (lo, hi) = (THETAS[0], THETAS[THETAS.len() - 1]);
    for (i, backend) in backends.iter().enumerate() {
        let x0 = margin + i as f64 * (panel_w + margin);
        let y0 = margin;
        let rows: Vec<&Measured> = out.iter().filter(|m| m.backend == *backend).collect();
        let top = rows.iter().map(|m| m.updates_per_second).fold(1.0, f64::max) * 1.1;
        let x = |theta: f64| x0 + (theta - lo) / (hi - lo) * panel_w;
        let y = |v: f64| y0 + panel_h - v / top * panel_h;
        let _ = write!(
            svg,
            r##"<rect x="{x0}" y="{y0}" width="{panel_w}" height="{panel_h}" fill="none" stroke="#888"/><text x="{}" y="{}" text-anchor="middle" font-weight="bold">{backend}</text>"##,
            x0 + panel_w / 2.0,
            y0 - 10.0
        );
        for theta in THETAS {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">{theta}</text>"#,
                x(theta),
                y0 + panel_h + 16.0
            );
        }
        for k in 0..=4 {
            let v = top * f64::from(k) / 4.0;
            let _ = write!(
                svg,
                r##"<text x="{}" y="{}" text-anchor="end">{v:.0}</text><line x1="{x0}" x2="{}" y1="{yy}" y2="{yy}" stroke="#eee"/>"##,
                x0 - 4.0,
                y(v) + 4.0,
                x0 + panel_w,
                yy = y(v)
            );
        }
        for (way, color) in colors {
            let points: Vec<String> = rows
                .iter()
                .filter(|m| m.way == way)
                .map(|m| format!("{:.1},{:.1}", x(m.theta), y(m.updates_per_second)))
                .collect();
            let _ = write!(
                svg,
                r##"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"##,
                points.join(" ")
            );
            for point in points {
                let (px, py) = point.split_once(',').expect("a point");
                let _ = write!(svg, r##"<circle cx="{px}" cy="{py}" r="3" fill="{color}"/>"##);
            }
        }
    }
    let legend_y = margin + panel_h + 40.0;
    let _ = write!(
        svg,
        r#"<text x="{margin}" y="{legend_y}">successful updates per second against the Zipfian skew θ (16 clients, 10,000 records, half reads):</text>"#
    );
    for (k, (way, color)) in colors.iter().enumerate() {
        let lx = margin + k as f64 * 230.0;
        let _ = write!(
            svg,
            r##"<rect x="{lx}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{}">{}</text>"##,
            legend_y + 14.0,
            lx + 20.0,
            legend_y + 20.0,
            way.name()
        );
    }
    svg.push_str("</svg>\n");
    svg
}
