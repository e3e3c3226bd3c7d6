//! PostgreSQL specifics: the schema `create_table` derives (native types), values that cannot be
//! stored, and the retryable refusals of a server (serialization failures). Tables made by users'
//! own migrations and rows that do not fit the struct (`Error::Decode` naming the column) are
//! checked as on every SQL backend, by `versioned_core::conformance::sql` (`mod sql`).
//!
//! Run with `VERSIONED_POSTGRES_URL` set (`.ci/run` sets it); without it each test says it was
//! skipped. Each test works in a schema of its own.

use std::time::SystemTime;

use versioned::{Error, Isolation, LockWait, PostgresStorage, RetryPolicy, Store, Versioned};

use versioned_core::conformance::sql::{Person, ann};

// Each binary uses a part of the shared helpers.
#[allow(dead_code)]
#[path = "../common/servers.rs"]
mod servers;

use servers::PgScratch as Db;

async fn db() -> Option<Db> {
    servers::postgres().await
}

#[path = "../common/raw_sql.rs"]
mod raw_sql;

#[path = "../common/events.rs"]
mod events;

#[path = "../common/processes.rs"]
mod processes;

#[path = "../common/pg_cluster.rs"]
mod pg_cluster;

mod replicas;

mod group_commit;

/// Tables of users' own migrations and rows that do not fit the struct, as on every SQL backend.
mod sql {
    use versioned::PostgresStorage;
    use versioned_core::conformance::sql::{Dialect, SqlFixture};

    impl SqlFixture for super::Db {
        type Storage = PostgresStorage;

        fn store(&self) -> &versioned::Store<PostgresStorage> {
            &self.store
        }

        fn dialect(&self) -> &Dialect {
            &Dialect::POSTGRES
        }

        /// On the store's own pool, whose `search_path` is the test's schema.
        async fn exec(&self, sql: &str) {
            crate::raw_sql::exec(self.store.backend().pool(), sql).await
        }

        async fn text(&self, sql: &str) -> String {
            crate::raw_sql::text(self.store.backend().pool(), sql).await
        }
        fn sql_dialect(&self) -> versioned::migrations::SqlDialect {
            versioned::migrations::SqlDialect::Postgres
        }
    }

    versioned_core::sql_conformance_tests!(super::db);
}

#[tokio::test]
async fn create_table_derives_native_types() {
    let Some(db) = db().await else { return };
    db.store.create_table::<Person>().await.expect("create");
    db.store.create_table::<Person>().await.expect("create is idempotent");
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = 'people' ORDER BY ordinal_position",
    )
    .bind(&db.schema)
    .fetch_all(&db.admin)
    .await
    .expect("columns");
    let columns: Vec<(&str, &str, &str)> =
        columns.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
    assert_eq!(
        columns,
        [
            ("id", "bigint", "NO"),
            ("name", "text", "NO"),
            ("salary", "integer", "NO"),
            ("rank", "smallint", "NO"),
            ("ratio", "double precision", "NO"),
            ("score", "real", "NO"),
            ("active", "boolean", "NO"),
            ("photo", "bytea", "NO"),
            ("nickname", "text", "YES"),
            ("skills", "jsonb", "NO"),
            ("updated", "timestamp with time zone", "NO"),
            ("version", "bigint", "NO"),
        ]
    );
    let mut p = ann();
    db.store.insert(&mut p).await.expect("insert");
    assert_eq!(db.store.get::<Person>(&1).await.expect("get"), Some(p.clone()), "every type round-trips");
    let stored: (String, f64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT skills->>0, extract(epoch FROM updated)::float8 FROM {}.people",
        db.schema
    )))
    .fetch_one(&db.admin)
    .await
    .expect("native values");
    assert_eq!(stored.0, "rust", "JSON is stored as JSONB");
    let micros = p.updated.duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_micros() as f64;
    assert!((stored.1 * 1e6 - micros).abs() < 2.0, "the timestamp is stored as TIMESTAMPTZ");
}

/// A `u64` above `i64::MAX` is an error naming the column, never a wrapped negative number.
#[tokio::test]
async fn a_u64_above_i64_max_is_refused() {
    #[derive(Versioned, Debug, Clone)]
    struct Big {
        #[key]
        id: i64,
        n: u64,
        #[version]
        version: u32,
    }
    let Some(db) = db().await else { return };
    db.store.create_table::<Big>().await.expect("create");
    let err = db.store.insert(&mut Big { id: 1, n: u64::MAX, version: 0 }).await.expect_err("too big");
    assert!(matches!(err, Error::Encode { table: "big", column: "n", .. }), "{err:?}");
    db.store.insert(&mut Big { id: 1, n: i64::MAX as u64, version: 0 }).await.expect("i64::MAX fits");
}

/// At REPEATABLE READ, two transactions writing the same row: PostgreSQL refuses the second with
/// a serialization failure (40001), which is retryable, and `transaction_with_retry` absorbs it.
#[tokio::test]
async fn serialization_failures_are_retried() {
    #[derive(Versioned, Debug, Clone)]
    struct Counter {
        #[key]
        id: i32,
        n: i64,
        #[version]
        version: u64,
    }
    let Some(db) = db().await else { return };
    let store = Store::new(db.store.backend().clone().with_isolation(Isolation::RepeatableRead));
    store.create_table::<Counter>().await.expect("create");
    store.insert(&mut Counter { id: 1, n: 0, version: 0 }).await.expect("insert");

    // Provoke one serialization failure by hand.
    let (read, reader_read) = tokio::sync::oneshot::channel();
    let (written, writer_done) = tokio::sync::oneshot::channel::<()>();
    let slow = store.clone();
    let slow = tokio::spawn(async move {
        slow.transaction(|tx| async move {
            let mut c = tx.get::<Counter>(&1).await?.expect("counter");
            let _ = read.send(());
            let _ = writer_done.await;
            c.n += 1;
            tx.put(&mut c).await
        })
        .await
    });
    reader_read.await.expect("the slow transaction read");
    store.update::<Counter, _>(&1, RetryPolicy::default(), |c| c.n += 1).await.expect("the fast writer");
    let _ = written.send(());
    let err = slow.await.expect("task").expect_err("the slow transaction's snapshot is stale");
    assert!(err.is_retryable(), "a serialization failure (or the conflict it hides) is retryable: {err:?}");

    // Many writers at once, each retried: the count is exact.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    store
                        .transaction_with_retry(RetryPolicy::attempts(1_000), |tx| async move {
                            let mut c = tx.get::<Counter>(&1).await?.expect("counter");
                            c.n += 1;
                            tx.put(&mut c).await
                        })
                        .await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("every increment commits");
    }
    let c = store.get::<Counter>(&1).await.expect("get").expect("counter");
    assert_eq!((c.n, c.version), (201, 202), "8 × 25 increments and the one before, exactly");
}

/// Two transactions locking two rows in opposite orders: PostgreSQL breaks the deadlock (`40P01`)
/// by refusing one of them, and that refusal is retryable (so the retry helpers retry it).
#[tokio::test]
async fn deadlocks_are_retryable() {
    #[derive(Versioned, Debug, Clone)]
    struct Slot {
        #[key]
        id: i32,
        n: i64,
        #[version]
        version: u64,
    }
    let Some(db) = db().await else { return };
    let store = db.store.clone().with_lock_wait(versioned::LockWait::Forever);
    store.create_table::<Slot>().await.expect("create");
    for id in [1, 2] {
        store.insert(&mut Slot { id, n: 0, version: 0 }).await.expect("insert");
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let cross = |first: i32, second: i32| {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            let attempt = move |tx: versioned::Transaction<PostgresStorage>| {
                let barrier = barrier.clone();
                async move {
                    let mut a = tx.get_for_update::<Slot>(&first).await?.expect("slot");
                    barrier.wait().await; // both hold their first row
                    let mut b = tx.get_for_update::<Slot>(&second).await?.expect("slot");
                    a.n += 1;
                    b.n += 1;
                    tx.put(&mut a).await?;
                    tx.put(&mut b).await
                }
            };
            store.transaction(attempt).await
        })
    };
    let (one, two) = (cross(1, 2), cross(2, 1));
    let outcomes = [one.await.expect("task"), two.await.expect("task")];
    let refused: Vec<_> = outcomes.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(refused.len(), 1, "exactly one side is chosen as the deadlock victim: {outcomes:?}");
    assert!(matches!(refused[0], Error::Storage(_)) && refused[0].is_retryable(), "{:?}", refused[0]);
}

#[path = "../common/dropped.rs"]
mod dropped;

/// A transaction future dropped at any point (while `BEGIN` is in flight above all) never hands
/// its connection back to the pool inside a transaction: afterwards no session of the pool is
/// "idle in transaction", no row lock remains, and every later put that answered `Ok` is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_dropped_at_any_point_leave_no_connection_inside_a_transaction() {
    let Some(db) = db().await else { return };
    let url = std::env::var("VERSIONED_POSTGRES_URL").expect("set, since db() returned a scratch schema");
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a PostgreSQL URL");
    // A pool of its own, named, so that the server's view of its sessions can be asked for.
    let name = format!("{}_dropped", db.schema);
    let options = options.options([("search_path", db.schema.as_str())]).application_name(&name);
    let store = Store::new(PostgresStorage::connect_with(options).await.expect("connect"));
    dropped::drop_transactions(&store, 3_000).await;

    let inside = || async {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL",
        )
        .bind(&name)
        .fetch_one(&db.admin)
        .await
        .expect("pg_stat_activity");
        count
    };
    dropped::no_session_stays_in_a_transaction(inside).await;

    dropped::later_puts_are_committed(&store, |id| {
        let (admin, schema) = (&db.admin, &db.schema);
        async move {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT version FROM {}.dropped_counters WHERE id = $1",
                schema
            )))
            .bind(id)
            .fetch_one(admin)
            .await
            .expect("committed version")
        }
    })
    .await;
}

/// PostgreSQL aborts a transaction on any error, and answers a later `COMMIT` with a rollback: a
/// closure that ignores a refused lock (outside a savepoint) and returns `Ok` gets a failed commit,
/// never an `Ok` for writes the server discarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_after_an_error_outside_a_savepoint_fails_and_writes_nothing() {
    use dropped::Counter;
    let Some(db) = db().await else { return };
    let store = db.store.clone();
    store.create_table::<Counter>().await.expect("create");
    for id in [1, 2] {
        store.insert(&mut Counter { id, n: 0, version: 0 }).await.expect("insert");
    }
    let (locked, holding) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let holder = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .transaction(|tx| async move {
                    tx.get_for_update::<Counter>(&2).await?;
                    let _ = locked.send(());
                    let _ = released.await;
                    Ok(())
                })
                .await
        })
    };
    holding.await.expect("the holder locked record 2");
    let result = store
        .transaction(|tx| async move {
            let mut one = tx.get::<Counter>(&1).await?.expect("record 1");
            one.n = 5;
            tx.put(&mut one).await?;
            let refused = tx.get_for_update_with::<Counter>(&2, LockWait::NoWait).await;
            assert!(matches!(refused, Err(Error::LockTimeout { .. })), "{refused:?}");
            let after = tx.get::<Counter>(&1).await;
            assert!(after.is_err(), "statements after the abort are refused: {after:?}");
            Ok(())
        })
        .await;
    assert!(result.is_err(), "the commit of an aborted transaction must fail: {result:?}");
    let _ = release.send(());
    holder.await.expect("task").expect("holder");
    let one = store.get::<Counter>(&1).await.expect("get").expect("record 1");
    assert_eq!((one.n, one.version), (0, 1), "nothing of the failed transaction was written");
}

/// A batch inside your transaction after PostgreSQL aborted it: the savepoint is refused, and sqlx
/// (whose nested `begin` rolls back one level when its savepoint fails) rolls your transaction
/// back. The batch says so, rather than leave you committing a transaction that no longer exists.
#[tokio::test]
async fn a_batch_in_an_aborted_transaction_says_your_transaction_is_gone() {
    use sqlx::Connection as _;
    use versioned_core::conformance::sql::Account;
    let Some(db) = db().await else { return };
    let store = &db.store;
    store.create_table::<Account>().await.expect("create_table");
    let mut a = Account { id: 1, owner: "Amy".into(), balance: 1, version: 0 };
    store.insert(&mut a).await.expect("insert");
    let pool = store.backend().pool();
    let mut tx = pool.begin().await.expect("your begin");
    // Any failed statement aborts a PostgreSQL transaction.
    let failed = sqlx::query("SELECT 1/0").execute(&mut *tx).await;
    assert!(failed.is_err());
    match store.on(&mut *tx).put_all(&mut [a.clone()]).await {
        Err(Error::Storage(err)) => {
            assert!(err.to_string().contains("rolled back your transaction"), "{err}");
        }
        other => panic!("expected the batch to report your transaction gone, got {other:?}"),
    }
    assert!(!tx.is_in_transaction(), "sqlx no longer counts it");
    assert_eq!(store.get::<Account>(&1).await.expect("get"), Some(a), "nothing written");
}
