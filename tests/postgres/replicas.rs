//! A store on a primary and a streaming replica of its own (`tests/common/pg_cluster.rs`):
//! reads outside transactions go to the replica, a stale copy read there is caught by the write's
//! check and `update` retries locked, on the primary, read-your-writes waits for the replica
//! or reads the primary, a replica that dies is passed over and serves again once back; the
//! conformance suite with read-your-writes, and the history checker while the replica is killed
//! and paused. Run with `VERSIONED_PG_BIN` set (`.ci/run` sets it); without it each test says it
//! was skipped.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use versioned::{PostgresStorage, RetryPolicy, Store};
use versioned_core::conformance::Person;

use crate::pg_cluster::{self, PgCluster};

/// A store on a schema of its own, on `primary` with `replica` (read-your-writes when `ryw`);
/// and pools on the schema of each server, for looking behind the store.
pub struct Scratch {
    pub store: Store<PostgresStorage>,
    pub primary: PgPool,
    pub replica: PgPool,
}

impl AsRef<Store<PostgresStorage>> for Scratch {
    fn as_ref(&self) -> &Store<PostgresStorage> {
        &self.store
    }
}

pub async fn scratch(primary: &str, replica: &str, ryw: Option<Duration>) -> Scratch {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = PgPool::connect(primary).await.expect("the test cluster's primary");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&admin).await.expect("schema");
    let on = |url: &str| {
        let options: PgConnectOptions = url.parse().expect("a PostgreSQL URL");
        options.options([("search_path", schema.as_str())])
    };
    let mut storage =
        PostgresStorage::connect_with(on(primary)).await.expect("connect").connect_replicas([on(replica)]);
    if let Some(bound) = ryw {
        storage = storage.read_your_writes(bound);
    }
    let replica = PgPool::connect_with(on(replica)).await.expect("the test cluster's replica");
    Scratch { store: Store::new(storage), primary: PgPool::connect_with(on(primary)).await.expect("primary"), replica }
}

/// Waits until the replica shows Ann (id 1) at `version`.
async fn replicated(replica: &PgPool, version: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT version FROM people WHERE id = 1").fetch_optional(replica).await.unwrap_or(None);
        if found == Some(version) {
            return;
        }
        assert!(Instant::now() < deadline, "the replica never replayed version {version} (it shows {found:?})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn replay(replica: &PgPool, on: bool) {
    let sql = if on { "SELECT pg_wal_replay_resume()" } else { "SELECT pg_wal_replay_pause()" };
    sqlx::query(sql).execute(replica).await.expect(sql);
}

fn own_cluster() -> Option<PgCluster> {
    let Some(bin) = pg_cluster::bin() else {
        eprintln!("skipped: set VERSIONED_PG_BIN=/usr/lib/postgresql/<version>/bin to run the read-replica tests");
        return None;
    };
    Some(PgCluster::start(bin))
}

/// With replay paused on the replica, a read returns the replica's older version (the read went
/// there); `update` from that stale copy is refused by its check and retried once, locked, on the
/// primary, and counts exactly; with read-your-writes a read waits its bound, then reads the
/// primary; once replay resumes, the replica answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_reads_are_caught_by_the_check_and_read_your_writes_waits() {
    let Some(cluster) = own_cluster() else { return };
    let (primary, replica) = (cluster.url(PgCluster::PRIMARY), cluster.url(PgCluster::REPLICA));
    let db = scratch(&primary, &replica, None).await;
    db.store.create_table::<Person>().await.expect("create_table");
    let mut ann = Person { id: 1, name: "Ann".into(), salary: 100, version: 0 };
    db.store.insert(&mut ann).await.expect("insert");
    replicated(&db.replica, 1).await;
    replay(&db.replica, false).await;

    ann.salary = 200;
    db.store.put(&mut ann).await.expect("put, on the primary");
    let read = db.store.get::<Person>(&1).await.expect("get").expect("stored");
    assert_eq!((read.version, read.salary), (1, 100), "the read went to the replica, which lags");

    let mut calls = 0;
    db.store
        .update::<Person, _>(&1, RetryPolicy::default(), |p| {
            calls += 1;
            p.salary += 1;
        })
        .await
        .expect("update");
    assert_eq!(calls, 2, "one stale attempt from the replica, one locked on the primary");
    let stored: (i64, i64) = sqlx::query_as("SELECT version, salary::int8 FROM people WHERE id = 1")
        .fetch_one(&db.primary)
        .await
        .expect("read the primary");
    assert_eq!(stored, (3, 201), "the increment applied once, over the primary's version");

    // Read-your-writes: the replica has not replayed the store's writes: after the bound, the
    // primary answers.
    let ryw = PostgresStorage::from_pool(db.primary.clone())
        .connect_replicas([db.replica.connect_options().as_ref().clone()])
        .read_your_writes(Duration::from_millis(300));
    let ryw = Store::new(ryw);
    // (Its reads wait only for its own writes: it has made none yet, so a read would be stale.)
    let mut fresh = Person { id: 1, name: "Ann".into(), salary: 300, version: 3 };
    ryw.put(&mut fresh).await.expect("put");
    let started = Instant::now();
    let read = ryw.get::<Person>(&1).await.expect("get").expect("stored");
    assert_eq!((read.version, read.salary), (4, 300), "its own write, read from the primary");
    assert!(started.elapsed() >= Duration::from_millis(250), "it waited for the replica first");

    replay(&db.replica, true).await;
    replicated(&db.replica, 4).await;
    let started = Instant::now();
    let read = ryw.get::<Person>(&1).await.expect("get").expect("stored");
    assert_eq!(read.version, 4);
    assert!(started.elapsed() < Duration::from_millis(250), "the caught-up replica answers at once");
}

/// A replica killed with `kill -9` is passed over (reads go to the primary and are right); once
/// it is back, reads go to it again (shown by pausing its replay: the read lags).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_dies_is_passed_over_and_serves_again_when_back() {
    let Some(mut cluster) = own_cluster() else { return };
    let (primary, replica) = (cluster.url(PgCluster::PRIMARY), cluster.url(PgCluster::REPLICA));
    let db = scratch(&primary, &replica, None).await;
    db.store.create_table::<Person>().await.expect("create_table");
    let mut ann = Person { id: 1, name: "Ann".into(), salary: 100, version: 0 };
    db.store.insert(&mut ann).await.expect("insert");
    replicated(&db.replica, 1).await;
    assert_eq!(db.store.get::<Person>(&1).await.expect("get").expect("stored").version, 1);

    cluster.kill(PgCluster::REPLICA);
    for salary in [110, 120, 130] {
        ann.salary = salary;
        db.store.put(&mut ann).await.expect("put");
        let read = db.store.get::<Person>(&1).await.expect("a read with the replica dead").expect("stored");
        assert_eq!((read.version, read.salary), (ann.version, salary), "read on the primary");
    }

    cluster.restart(PgCluster::REPLICA);
    let replica_pool = PgPool::connect_with(db.replica.connect_options().as_ref().clone()).await.expect("replica");
    replicated(&replica_pool, 4).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await; // past the time a failed replica is passed over
    replay(&replica_pool, false).await;
    ann.salary = 140;
    db.store.put(&mut ann).await.expect("put");
    let read = db.store.get::<Person>(&1).await.expect("get").expect("stored");
    assert_eq!(read.version, 4, "reads go to the replica again (its replay is paused)");
    replay(&replica_pool, true).await;
}

/// The history checker's workload on a store with a replica (read-your-writes) while the replica
/// is killed and restarted, then paused with `SIGSTOP` for longer than a read waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_has_no_anomaly_while_the_replica_dies_and_pauses() {
    let Some(mut cluster) = own_cluster() else { return };
    let (primary, replica) = (cluster.url(PgCluster::PRIMARY), cluster.url(PgCluster::REPLICA));
    let db = scratch(&primary, &replica, Some(Duration::from_millis(500))).await;
    // Until the faults are over (and a second more).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let run = {
        let (stores, stop) = (vec![db.store.clone()], stop.clone());
        tokio::spawn(async move { versioned_core::conformance::run_until(&stores, 8, 100_000, 23, stop).await })
    };
    let mut faults = Vec::new();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill(PgCluster::REPLICA);
    faults.push("kill -9 of the replica");
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart(PgCluster::REPLICA);
    faults.push("its restart");
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.signal(PgCluster::REPLICA, libc::SIGSTOP);
    faults.push("SIGSTOP of the replica for 2.5 s");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(!run.is_finished(), "the faults came while the workload ran");
    cluster.signal(PgCluster::REPLICA, libc::SIGCONT);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let report = run.await.expect("the workload");
    println!("history checker on PostgreSQL with a replica under faults ({}): {report}", faults.join(", "));
    assert!(report.anomalies.is_empty(), "{report}\n{:#?}", report.anomalies);
}

/// The conformance suite on a store with a replica and read-your-writes, on a cluster the tests
/// share.
mod conformance {
    async fn store() -> Option<super::Scratch> {
        let (primary, replica) = crate::pg_cluster::shared()?;
        Some(super::scratch(&primary, &replica, Some(std::time::Duration::from_secs(5))).await)
    }

    versioned_core::conformance_tests!(store);
}
