//! SQLite specifics: the schema `create_table` derives, tables made by users' own migrations,
//! rows that do not fit the struct (`Error::Decode` naming the column), and busy refusals. The
//! checks every SQL backend shares run here from `versioned_core::conformance::sql` (`mod sql`).

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use versioned::{Error, SqliteStorage, Store, Versioned};

#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "people")]
struct Person {
    #[key]
    id: i64,
    name: String,
    salary: i32,
    nickname: Option<String>,
    #[versioned(json)]
    skills: Vec<String>,
    #[version]
    version: u64,
}

fn ann() -> Person {
    Person { id: 1, name: "Ann".into(), salary: 100, nickname: None, skills: vec!["rust".into()], version: 0 }
}

struct Db {
    store: Store<SqliteStorage>,
    url: String,
    _dir: tempfile::TempDir,
}

async fn file_db() -> Db {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Store::sqlite(&url).await.expect("open");
    Db { store, url, _dir: dir }
}

async fn exec(db: &Db, sql: &'static str) {
    sqlx::query(sql).execute(db.store.backend().pool()).await.expect(sql);
}

#[path = "../common/raw_sql.rs"]
mod raw_sql;

/// Tables of users' own migrations and rows that do not fit the struct, as on every SQL backend.
mod sql {
    use versioned::SqliteStorage;
    use versioned_core::conformance::sql::{Dialect, SqlFixture};

    impl SqlFixture for super::Db {
        type Storage = SqliteStorage;

        fn store(&self) -> &versioned::Store<SqliteStorage> {
            &self.store
        }

        fn dialect(&self) -> &Dialect {
            &Dialect::SQLITE
        }

        async fn exec(&self, sql: &str) {
            crate::raw_sql::exec(self.store.backend().pool(), sql).await
        }

        async fn text(&self, sql: &str) -> String {
            crate::raw_sql::text(self.store.backend().pool(), sql).await
        }
        fn sql_dialect(&self) -> versioned::migrations::SqlDialect {
            versioned::migrations::SqlDialect::Sqlite
        }
    }

    versioned_core::sql_conformance_tests!(|| async { Some(super::file_db().await) });
}

#[track_caller]
fn assert_decode(err: Error, column: &str) {
    match &err {
        Error::Decode { table: "people", column: c, .. } if *c == column => {}
        other => panic!("expected Decode of people.{column}, got {other:?}"),
    }
    assert!(err.to_string().contains(&format!("people.{column}")), "{err}");
}

#[tokio::test]
async fn create_table_derives_the_schema() {
    let db = file_db().await;
    db.store.create_table::<Person>().await.expect("create");
    db.store.create_table::<Person>().await.expect("create is idempotent");
    let rows: Vec<(String, String, i64, i64)> =
        sqlx::query_as(r#"SELECT name, type, "notnull", pk FROM pragma_table_info('people') ORDER BY cid"#)
            .fetch_all(db.store.backend().pool())
            .await
            .expect("pragma");
    let expected = [
        ("id", "INTEGER", 1, 1),
        ("name", "TEXT", 1, 0),
        ("salary", "INTEGER", 1, 0),
        ("nickname", "TEXT", 0, 0),
        ("skills", "TEXT", 1, 0),
        ("version", "INTEGER", 1, 0),
    ];
    let rows: Vec<_> = rows.iter().map(|(n, t, nn, pk)| (n.as_str(), t.as_str(), *nn, *pk)).collect();
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn busy_database_is_a_retryable_storage_error() {
    let db = file_db().await;
    db.store.create_table::<Person>().await.expect("create");
    db.store.insert(&mut ann()).await.expect("insert");

    // A second pool that gives up at once when the database is locked.
    let impatient = SqliteConnectOptions::new()
        .filename(db.url.trim_start_matches("sqlite://").trim_end_matches("?mode=rwc"))
        .busy_timeout(Duration::from_millis(1));
    let pool = SqlitePoolOptions::new().connect_with(impatient).await.expect("second pool");
    let other = Store::new(SqliteStorage::from_pool(pool));

    // Hold the write lock in an open transaction on the first pool.
    let mut holder = db.store.backend().pool().begin_with("BEGIN IMMEDIATE").await.expect("lock");
    sqlx::query("UPDATE people SET salary = 1").execute(&mut *holder).await.expect("write");

    let mut p = other.get::<Person>(&1).await.expect("WAL readers are not blocked").expect("present");
    p.salary = 5;
    let err = p.put(&other).await.expect_err("the write lock is held");
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    assert!(err.is_retryable() && !err.is_conflict(), "busy must be retryable: {err:?}");
    assert_eq!(p.version, 1);

    holder.rollback().await.expect("release");
    p.put(&other).await.expect("once the lock is released, the same write succeeds");
}

#[tokio::test]
async fn in_memory_url_works_for_tests() {
    let store = Store::sqlite("sqlite::memory:").await.expect("memory db");
    store.create_table::<Person>().await.expect("create");
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(p));
}

/// Audit timestamps of chrono and time types are set by the store like `SystemTime`.
#[cfg(all(feature = "chrono", feature = "time"))]
#[tokio::test]
async fn chrono_and_time_audit_fields() {
    #[derive(Versioned, Debug, Clone, PartialEq)]
    struct Stamped {
        #[key]
        id: i64,
        note: String,
        #[versioned(created_at)]
        created: chrono::DateTime<chrono::Utc>,
        #[versioned(updated_at)]
        updated: Option<time::OffsetDateTime>,
        #[version]
        version: u64,
    }

    let db = file_db().await;
    db.store.create_table::<Stamped>().await.expect("create");
    let before = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    let mut s = Stamped { id: 1, note: "a".into(), created: chrono::DateTime::UNIX_EPOCH, updated: None, version: 0 };
    db.store.insert(&mut s).await.expect("insert");
    assert!(s.created >= before - chrono::Duration::milliseconds(1));
    let updated = s.updated.expect("set by the store");
    assert_eq!(updated.unix_timestamp_nanos() / 1_000, i128::from(s.created.timestamp_micros()));
    s.note = "b".into();
    tokio::time::sleep(Duration::from_millis(2)).await;
    s.put(&db.store).await.expect("put");
    assert!(s.updated.expect("set") > updated);
    assert_eq!(db.store.get::<Stamped>(&1).await.expect("get"), Some(s));
}

/// An in-memory database lives as long as its store, even when the pool closes every
/// connection of its own (idle timeout, lifetime, a connection closed after a cancelled call).
#[tokio::test]
async fn in_memory_database_outlives_the_pools_connections() {
    let store = Store::sqlite("sqlite::memory:").await.expect("memory db");
    store.create_table::<Person>().await.expect("create");
    store.insert(&mut ann()).await.expect("insert");
    let pool = store.backend().pool();
    // A connection may still be on its way back to the pool: close until none is left.
    for _ in 0..50 {
        if pool.size() == 0 {
            break;
        }
        pool.acquire().await.expect("a pooled connection").close().await.expect("close it");
    }
    assert_eq!(pool.size(), 0, "every pooled connection is closed");
    assert_eq!(store.get::<Person>(&1).await.expect("the table is still there").map(|p| p.name), Some("Ann".into()));

    let other = Store::sqlite("sqlite::memory:").await.expect("another memory db");
    other.create_table::<Person>().await.expect("create");
    assert_eq!(other.get::<Person>(&1).await.expect("get"), None, "each store has its own database");
}

#[track_caller]
fn assert_config(result: Result<Store<SqliteStorage>, Error>, says: &str) {
    match result {
        Err(Error::Config { reason }) => assert!(reason.contains(says), "{reason:?} should say {says:?}"),
        Err(other) => panic!("expected Error::Config saying {says:?}, got {other:?}"),
        Ok(_) => panic!("expected Error::Config saying {says:?}, but the store opened"),
    }
}

/// A URL that is not an SQLite URL says what is wrong with it, and what is expected.
#[tokio::test]
async fn urls_that_are_not_sqlite_urls_are_refused_clearly() {
    assert_config(Store::sqlite("").await, "empty");
    assert_config(Store::sqlite("   ").await, "empty");
    assert_config(Store::sqlite("postgres://postgres@127.0.0.1:5432/test").await, "`postgres:` URL");
    assert_config(Store::sqlite("mysql://root@127.0.0.1/test").await, "`mysql:` URL");
    assert_config(Store::sqlite("not a url").await, "not a URL");
    assert_config(Store::sqlite("sqlite://").await, "names no database file");
    assert_config(Store::sqlite("sqlite://x.db?mode=sideways").await, "mode");
    let err = Store::sqlite("sqlite:///nonexistent-dir/x.db").await.expect_err("no such directory");
    assert!(err.to_string().contains("mode=rwc"), "a missing file suggests mode=rwc: {err}");
    let ok = Store::sqlite("sqlite::memory:").await.expect("the in-memory form");
    let _ = ok;
}

/// `?mode=ro` opens a database as it is, in whatever journal mode it is: reads work, writes
/// are refused by SQLite.
#[tokio::test]
async fn read_only_store_opens_a_database_not_in_wal_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ro.db");
    {
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Delete);
        let pool = SqlitePoolOptions::new().connect_with(options).await.expect("writer");
        let writer = Store::new(SqliteStorage::from_pool(pool.clone()));
        writer.create_table::<Person>().await.expect("create");
        writer.insert(&mut ann()).await.expect("insert");
        pool.close().await;
    }
    let store = Store::sqlite(&format!("sqlite://{}?mode=ro", path.display())).await.expect("opens read-only");
    assert_eq!(store.get::<Person>(&1).await.expect("reads").map(|p| p.name), Some("Ann".into()));
    let mut p = store.get::<Person>(&1).await.expect("reads").expect("present");
    p.salary = 1;
    let err = p.put(&store).await.expect_err("a read-only database refuses writes");
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    assert_eq!(p.version, 1);
}

/// A column missing from the table is `Error::Decode` naming it, on an empty table too (SQLite
/// would otherwise read the unknown double-quoted name as a string literal).
#[tokio::test]
async fn a_missing_column_is_named_even_on_an_empty_table() {
    let db = file_db().await;
    exec(&db, "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, nickname TEXT, skills TEXT, version INTEGER)")
        .await;
    let err = db.store.get::<Person>(&1).await.expect_err("no salary column");
    assert_decode(err, "salary");
    let err = db.store.create_table::<Person>().await.expect_err("create_table checks an existing table");
    assert_decode(err, "salary");
}

/// A column declared with a type that cannot hold its field (TEXT for an integer) is refused
/// before anything is written, with a message naming the column, the declared type and the
/// type the field needs.
#[tokio::test]
async fn a_column_declared_with_the_wrong_type_is_refused_before_writing() {
    let db = file_db().await;
    exec(
        &db,
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, salary TEXT, nickname TEXT, skills TEXT, \
         version INTEGER)",
    )
    .await;
    let err = db.store.insert(&mut ann()).await.expect_err("salary is declared TEXT");
    let message = err.to_string();
    assert_decode(err, "salary");
    assert!(message.contains("\"TEXT\"") && message.contains("an integer") && message.contains("INTEGER"), "{message}");
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM people").fetch_one(db.store.backend().pool()).await.unwrap();
    assert_eq!(rows, 0, "nothing was written");

    let db = file_db().await;
    exec(&db, "CREATE TABLE people (id INTEGER PRIMARY KEY, name INTEGER, salary INT, nickname VARCHAR(20), skills JSON, version BIGINT)").await;
    let err = db.store.insert(&mut ann()).await.expect_err("name is declared INTEGER");
    assert_decode(err, "name");
}

/// Error messages never repeat themselves ("NULL NULL") nor leak the driver's internals.
#[tokio::test]
async fn decode_messages_are_plain() {
    let db = file_db().await;
    exec(
        &db,
        "CREATE TABLE people (version, salary INTEGER, skills TEXT, nickname TEXT, name TEXT, id INTEGER PRIMARY KEY)",
    )
    .await;
    exec(&db, r#"INSERT INTO people (id, name, salary, skills, version) VALUES (1, 'Ann', 1, '[]', NULL)"#).await;
    exec(&db, r#"INSERT INTO people (id, name, salary, skills, version) VALUES (2, 'Bo', 1, '[]', 2.5)"#).await;
    for id in [1, 2] {
        for err in [
            db.store.get::<Person>(&id).await.expect_err("bad version"),
            db.store.put_unchecked(&mut Person { id, ..ann() }).await.expect_err("bad version"),
        ] {
            let message = err.to_string();
            assert!(!message.contains("NULL NULL") && !message.contains("mismatched types"), "{message}");
            assert_decode(err, "version");
        }
    }
}

/// The crash test's records: accounts, a ledger of every committed transfer, and its sequence.
mod crash {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use versioned::{Error, RetryPolicy, SqliteStorage, Store, Versioned};

    #[derive(Versioned, Debug, Clone)]
    pub struct Account {
        #[key]
        pub id: i64,
        pub balance: i64,
        #[version]
        pub version: u64,
    }

    /// One committed transfer, written in the same transaction as the two accounts.
    #[derive(Versioned, Debug, Clone)]
    pub struct Ledger {
        #[key]
        pub seq: i64,
        pub from_id: i64,
        pub to_id: i64,
        pub amount: i64,
        #[version]
        pub version: u64,
    }

    #[derive(Versioned, Debug, Clone)]
    pub struct Sequence {
        #[key]
        pub name: String,
        pub last: i64,
        #[version]
        pub version: u64,
    }

    pub const ACCOUNTS: i64 = 8;
    pub const TOTAL: i64 = ACCOUNTS * 1_000;
    const CHILD_ENV: &str = "VERSIONED_CRASH_CHILD_DB";

    async fn open(path: &std::path::Path) -> Store<SqliteStorage> {
        Store::sqlite(&format!("sqlite://{}?mode=rwc", path.display())).await.expect("open the crash database")
    }

    /// One transfer: both accounts, the ledger entry and the sequence, all or nothing.
    async fn transfer(store: &Store<SqliteStorage>, from: i64, to: i64, amount: i64) -> Result<(), Error> {
        store
            .transaction_with_retry(RetryPolicy::attempts(1_000), |tx| async move {
                let mut a = tx.get::<Account>(&from).await?.ok_or_else(|| Error::not_found::<Account>(&from))?;
                let mut b = tx.get::<Account>(&to).await?.ok_or_else(|| Error::not_found::<Account>(&to))?;
                let key = "ledger".to_string();
                let mut seq = tx.get::<Sequence>(&key).await?.ok_or_else(|| Error::not_found::<Sequence>(&key))?;
                a.balance -= amount;
                b.balance += amount;
                seq.last += 1;
                tx.put(&mut a).await?;
                tx.put(&mut b).await?;
                tx.put(&mut seq).await?;
                tx.insert(&mut Ledger { seq: seq.last, from_id: from, to_id: to, amount, version: 0 }).await
            })
            .await
    }

    /// The child process: transfers from four tasks until it is killed (or a minute has passed).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "the child process of kill_9_during_transfers_loses_nothing, which runs it"]
    async fn crash_child() {
        let path = std::env::var_os(CHILD_ENV).expect("run only by kill_9_during_transfers_loses_nothing");
        let store = open(std::path::Path::new(&path)).await;
        let tasks: Vec<_> = (0..4u64)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut x = (std::process::id() as u64) << 8 | task | 1;
                    // Bounded, so that a child whose parent died does not run on.
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while Instant::now() < deadline {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let from = (x % ACCOUNTS as u64) as i64;
                        let to = (from + 1 + (x >> 8) as i64 % (ACCOUNTS - 1)) % ACCOUNTS;
                        transfer(&store, from, to, (x >> 16) as i64 % 50).await.expect("transfer");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("transfer task");
        }
    }

    /// What the database holds after a crash, checked against its invariants; returns the
    /// number of committed transfers.
    async fn check(path: &std::path::Path, kill: usize) -> i64 {
        let store = open(path).await;
        let pool = store.backend().pool().clone();
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&pool).await.expect("check");
        assert_eq!(integrity, "ok", "after kill {kill}: the file is damaged");
        let mut total = 0;
        for id in 0..ACCOUNTS {
            let account = store.get::<Account>(&id).await.expect("read").expect("account");
            total += account.balance;
            let writes: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger WHERE from_id = ? OR to_id = ?")
                .bind(id)
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("count");
            assert_eq!(account.version as i64, 1 + writes, "after kill {kill}: account {id}'s version");
        }
        assert_eq!(total, TOTAL, "after kill {kill}: money appeared or vanished");
        let (entries, last_seq): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), max(seq) FROM ledger").fetch_one(&pool).await.expect("ledger");
        let seq = store.get::<Sequence>(&"ledger".to_string()).await.expect("read").expect("sequence");
        assert_eq!((seq.last, seq.version as i64 - 1), (entries, entries), "after kill {kill}: the sequence");
        assert_eq!(last_seq.unwrap_or(0), entries, "after kill {kill}: ledger numbers are dense");
        pool.close().await;
        entries
    }

    /// A child process runs transfer transactions on an SQLite file and is killed with SIGKILL at
    /// random moments, 32 times. After each kill the file passes `PRAGMA integrity_check`, the
    /// total is unchanged, and every account's version is 1 + the transfers that touched it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_during_transfers_loses_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("crash.db");
        {
            let store = open(&path).await;
            store.create_table::<Account>().await.expect("create");
            store.create_table::<Ledger>().await.expect("create");
            store.create_table::<Sequence>().await.expect("create");
            for id in 0..ACCOUNTS {
                store.insert(&mut Account { id, balance: TOTAL / ACCOUNTS, version: 0 }).await.expect("insert");
            }
            store.insert(&mut Sequence { name: "ledger".into(), last: 0, version: 0 }).await.expect("insert");
            store.backend().pool().close().await;
        }
        let started = Instant::now();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let (mut kills, mut committed) = (0, 0);
        while kills < 32 {
            assert!(started.elapsed() < Duration::from_secs(120), "the crash test is bounded in time");
            let mut child = Command::new(std::env::current_exe().expect("this test binary"))
                .args(["--exact", "crash::crash_child", "--ignored", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, &path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the child");
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            tokio::time::sleep(Duration::from_millis(30 + rng % 250)).await;
            assert!(child.try_wait().expect("child status").is_none(), "the child stopped on its own");
            child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
            child.wait().expect("reap the child");
            kills += 1;
            let now = check(&path, kills).await;
            assert!(now >= committed, "after kill {kills}: committed transfers were lost");
            committed = now;
        }
        println!("crash test: {kills} kills with SIGKILL, {committed} transfers committed, every invariant held");
        assert!(committed > 0, "the child must have committed transfers between kills");
    }
}

/// A read through the store inside a transaction closure fails at once, on a file and on an
/// in-memory database (where SQLite's shared cache would make it wait for the writer's table
/// lock, held by the very transaction that waits for the read).
#[tokio::test]
async fn reads_through_the_store_inside_a_transaction_fail_fast() {
    for url in ["sqlite::memory:", "file"] {
        let db;
        let store = if url == "file" {
            db = file_db().await;
            db.store.clone()
        } else {
            Store::sqlite(url).await.expect("memory db")
        };
        store.create_table::<Person>().await.expect("create");
        store.insert(&mut ann()).await.expect("insert");
        let outside = store.clone();
        let result = tokio::time::timeout(
            Duration::from_secs(3),
            store.transaction(|tx| async move {
                let mut p = tx.get::<Person>(&1).await?.expect("present");
                p.salary = 1;
                tx.put(&mut p).await?;
                outside.get::<Person>(&1).await
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("{url}: a read through the store waited for the transaction"));
        assert!(matches!(result, Err(Error::StoreUsedInsideTransaction { operation: "get" })), "{url}: {result:?}");
        assert_eq!(store.get::<Person>(&1).await.expect("get").map(|p| p.salary), Some(100), "{url}: rolled back");
    }
}

/// A read-only transaction begins `DEFERRED`: it takes no write lock, so a writer commits while
/// it is open (a `BEGIN IMMEDIATE` transaction would make the writer wait for it), and it goes
/// on reading the snapshot of its first read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_transaction_lets_writers_commit_while_it_is_open() {
    let db = file_db().await;
    db.store.create_table::<Person>().await.expect("create");
    db.store.insert(&mut ann()).await.expect("insert");
    let writer = db.store.clone().with_lock_wait(versioned::LockWait::NoWait);
    let seen = db
        .store
        .read_transaction(|tx| async move {
            let before = tx.get::<Person>(&1).await?.expect("ann");
            // Fails at once (busy) if this transaction held the write lock.
            // Another task: on this one the store refuses to be used inside its own transaction.
            let write = tokio::spawn(async move {
                writer.update::<Person, _>(&1, versioned::RetryPolicy::attempts(1), |p| p.salary = 999).await
            });
            tokio::time::timeout(Duration::from_secs(2), write)
                .await
                .expect("the writer does not wait")
                .expect("writer task")?;
            let after = tx.get::<Person>(&1).await?.expect("ann");
            Ok((before.salary, after.salary))
        })
        .await
        .expect("read transaction");
    assert_eq!(seen, (100, 100), "the snapshot of the first read");
    assert_eq!(db.store.get::<Person>(&1).await.expect("get").expect("ann").salary, 999, "the write committed");
}
