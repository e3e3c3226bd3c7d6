//! MySQL / MariaDB specifics: the schema `create_table` derives, values that cannot be stored,
//! found rows, deadlocks, and text keys compared exactly (a binary no-pad collation; a user's
//! table whose key compares otherwise is refused). Tables made by users' own migrations and rows
//! that do not fit the struct (`Error::Decode` naming the column) are checked as on every SQL
//! backend, by `versioned_core::conformance::sql` (`mod sql`).
//!
//! Run with `VERSIONED_MYSQL_URL` set (`.ci/run` sets it); without it each test says it was
//! skipped. Each test works in a database of its own.

use std::time::SystemTime;

use versioned::{Error, MysqlStorage, Store, Versioned};

#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "people")]
struct Person {
    #[key]
    id: String,
    name: String,
    salary: i32,
    rank: i16,
    ratio: f64,
    score: f32,
    active: bool,
    photo: Vec<u8>,
    nickname: Option<String>,
    #[versioned(json)]
    skills: Vec<String>,
    #[versioned(updated_at)]
    updated: SystemTime,
    #[version]
    version: u64,
}

fn ann() -> Person {
    Person {
        id: "ann".into(),
        name: "Ann".into(),
        salary: 100,
        rank: -3,
        ratio: 0.25,
        score: 1.5,
        active: true,
        photo: vec![0, 255],
        nickname: None,
        skills: vec!["rust".into()],
        updated: SystemTime::UNIX_EPOCH,
        version: 0,
    }
}

// Each binary uses a part of the shared helpers.
#[allow(dead_code)]
#[path = "../common/servers.rs"]
mod servers;

use servers::MyScratch as Db;

async fn db() -> Option<Db> {
    servers::mysql().await
}

#[path = "../common/raw_sql.rs"]
mod raw_sql;

#[path = "../common/processes.rs"]
mod processes;

#[path = "../common/galera.rs"]
mod galera;

#[path = "galera.rs"]
mod galera_tests;

/// Tables of users' own migrations and rows that do not fit the struct, as on every SQL backend.
mod sql {
    use versioned::MysqlStorage;
    use versioned_core::conformance::sql::{Dialect, SqlFixture};

    impl SqlFixture for super::Db {
        type Storage = MysqlStorage;

        fn store(&self) -> &versioned::Store<MysqlStorage> {
            &self.store
        }

        fn dialect(&self) -> &Dialect {
            &Dialect::MYSQL
        }

        /// On the store's own pool, whose database is the test's.
        async fn exec(&self, sql: &str) {
            crate::raw_sql::exec(self.store.backend().pool(), sql).await
        }

        async fn text(&self, sql: &str) -> String {
            crate::raw_sql::text(self.store.backend().pool(), sql).await
        }
        fn sql_dialect(&self) -> versioned::migrations::SqlDialect {
            versioned::migrations::SqlDialect::MariaDb
        }
    }

    versioned_core::sql_conformance_tests!(super::db);
}

impl Db {
    async fn exec(&self, sql: &str) {
        let sql = sql.replace("people", &format!("{}.people", self.database));
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&self.admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[tokio::test]
async fn create_table_derives_the_schema() {
    let Some(db) = db().await else { return };
    db.store.create_table::<Person>().await.expect("create");
    db.store.create_table::<Person>().await.expect("create is idempotent");
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT CAST(column_name AS CHAR), CAST(column_type AS CHAR), CAST(is_nullable AS CHAR) \
         FROM information_schema.columns WHERE table_schema = ? AND table_name = 'people' ORDER BY ordinal_position",
    )
    .bind(&db.database)
    .fetch_all(&db.admin)
    .await
    .expect("columns");
    let columns: Vec<(&str, &str, &str)> =
        columns.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
    let json = if columns.iter().any(|c| c.0 == "skills" && c.1 == "json") { "json" } else { "longtext" };
    assert_eq!(
        columns,
        [
            ("id", "varchar(255)", "NO"),
            ("name", "longtext", "NO"),
            ("salary", "int(11)", "NO"),
            ("rank", "smallint(6)", "NO"),
            ("ratio", "double", "NO"),
            ("score", "float", "NO"),
            ("active", "tinyint(1)", "NO"),
            ("photo", "longblob", "NO"),
            ("nickname", "longtext", "YES"),
            ("skills", json, "NO"),
            ("updated", "datetime(6)", "NO"),
            ("version", "bigint(20)", "NO"),
        ]
    );
    let mut p = ann();
    db.store.insert(&mut p).await.expect("insert");
    assert_eq!(
        db.store.get::<Person>(&"ann".to_string()).await.expect("get"),
        Some(p.clone()),
        "every type round-trips"
    );
    let micros: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', updated) FROM {}.people",
        db.database
    )))
    .fetch_one(&db.admin)
    .await
    .expect("the stored timestamp");
    let expected = p.updated.duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_micros() as i64;
    assert_eq!(micros, expected, "DATETIME(6) holds the UTC time to the microsecond");
}

/// A checked write is judged by the rows it *found*: the connection reports a row rewritten with
/// the values it already had as affected (`CLIENT_FOUND_ROWS`).
#[tokio::test]
async fn rows_found_not_rows_changed_are_counted() {
    let Some(db) = db().await else { return };
    db.store.create_table::<Person>().await.expect("create");
    db.store.insert(&mut ann()).await.expect("insert");
    let same = sqlx::query("UPDATE people SET name = 'Ann' WHERE id = 'ann'")
        .execute(db.store.backend().pool())
        .await
        .expect("update");
    assert_eq!(same.rows_affected(), 1, "an unchanged row still counts as found");
}

/// A `u64` above `i64::MAX` is an error naming the column, never a wrapped number.
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

/// A row another transaction can lock.
#[derive(Versioned, Debug, Clone)]
struct Slot {
    #[key]
    id: i32,
    n: i64,
    #[version]
    version: u64,
}

/// The test's store, waiting up to 20 s for locks (a deadlock is found long before), with slots
/// 1 to `count` at zero.
async fn slots(db: &Db, count: i32) -> Store<MysqlStorage> {
    let store = db.store.clone().with_lock_wait(versioned::LockWait::Timeout(std::time::Duration::from_secs(20)));
    store.create_table::<Slot>().await.expect("create");
    for id in 1..=count {
        store.insert(&mut Slot { id, n: 0, version: 0 }).await.expect("insert");
    }
    store
}

/// Two transactions locking two rows in opposite orders: InnoDB breaks the deadlock (1213) by
/// refusing one of them, and that refusal is retryable (so the retry helpers retry it).
#[tokio::test]
async fn deadlocks_are_retryable() {
    let Some(db) = db().await else { return };
    let store = slots(&db, 2).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let cross = |first: i32, second: i32| {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            store
                .transaction(|tx| async move {
                    let mut a = tx.get_for_update::<Slot>(&first).await?.expect("slot");
                    barrier.wait().await; // both hold their first row
                    let mut b = tx.get_for_update::<Slot>(&second).await?.expect("slot");
                    a.n += 1;
                    b.n += 1;
                    tx.put(&mut a).await?;
                    tx.put(&mut b).await
                })
                .await
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

/// A transaction future dropped at any point (`START TRANSACTION` included) never hands its
/// connection back to the pool inside a transaction: afterwards no session of the pool has an
/// open InnoDB transaction, no row lock remains, and every later put that answered `Ok` is
/// committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_dropped_at_any_point_leave_no_connection_inside_a_transaction() {
    let Some(db) = db().await else { return };
    dropped::drop_transactions(&db.store, 3_000).await;

    let inside = || async {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.INNODB_TRX t \
             JOIN information_schema.PROCESSLIST p ON t.trx_mysql_thread_id = p.ID WHERE p.DB = ?",
        )
        .bind(&db.database)
        .fetch_one(&db.admin)
        .await
        .expect("INNODB_TRX");
        count
    };
    dropped::no_session_stays_in_a_transaction(inside).await;

    dropped::later_puts_are_committed(&db.store, |id| {
        let (admin, database) = (&db.admin, &db.database);
        async move {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT version FROM {}.dropped_counters WHERE id = ?",
                database
            )))
            .bind(id)
            .fetch_one(admin)
            .await
            .expect("committed version")
        }
    })
    .await;
}

/// A struct with a text key and nothing else to get in the way.
#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "tags")]
struct Tag {
    #[key]
    id: String,
    n: i64,
    #[version]
    version: u64,
}

fn tag(id: &str, n: i64) -> Tag {
    Tag { id: id.into(), n, version: 0 }
}

impl Db {
    /// The binary, no-pad collation this server has for `utf8mb4`, as `create_table` chooses it
    /// (MariaDB's `utf8mb4_nopad_bin`, MySQL 8's `utf8mb4_0900_bin`).
    async fn exact_collation(&self) -> String {
        sqlx::query_scalar(
            "SELECT CAST(COLLATION_NAME AS CHAR) FROM information_schema.COLLATIONS \
             WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin') ORDER BY COLLATION_NAME DESC LIMIT 1",
        )
        .fetch_one(&self.admin)
        .await
        .expect("a binary no-pad collation")
    }

    async fn tags(&self) -> Vec<(String, i64)> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(id AS BINARY), n FROM {}.tags ORDER BY CAST(id AS BINARY)",
            self.database
        )))
        .fetch_all(&self.admin)
        .await
        .map(|rows: Vec<(Vec<u8>, i64)>| {
            rows.into_iter().map(|(id, n)| (String::from_utf8(id).expect("UTF-8"), n)).collect()
        })
        .expect("tags")
    }
}

/// Keys differing only by case, by trailing spaces or by accents are distinct records, as on
/// every other backend: `create_table` declares the key with a binary collation that pads no
/// spaces.
#[tokio::test]
async fn text_keys_made_by_create_table_are_compared_exactly() {
    let Some(db) = db().await else { return };
    db.store.create_table::<Tag>().await.expect("create");
    let keys = ["ann", "Ann", "ann ", "e", "é"];
    for (n, key) in keys.iter().enumerate() {
        db.store.insert(&mut tag(key, n as i64)).await.unwrap_or_else(|e| panic!("insert {key:?}: {e}"));
    }
    for (n, key) in keys.iter().enumerate() {
        let found = db.store.get::<Tag>(*key).await.expect("get").unwrap_or_else(|| panic!("{key:?} is missing"));
        assert_eq!((found.id.as_str(), found.n), (*key, n as i64), "get({key:?}) finds its own record");
    }
    let mut stored = db.tags().await;
    stored.sort();
    let mut expected: Vec<(String, i64)> = keys.iter().enumerate().map(|(n, k)| (k.to_string(), n as i64)).collect();
    expected.sort();
    assert_eq!(stored, expected, "five records, none overwritten");
    let collation: String = sqlx::query_scalar(
        "SELECT CAST(COLLATION_NAME AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'tags' AND COLUMN_NAME = 'id'",
    )
    .bind(&db.database)
    .fetch_one(&db.admin)
    .await
    .expect("the key's collation");
    assert_eq!(collation, db.exact_collation().await);
}

#[tokio::test]
async fn a_text_key_finds_only_its_own_record() {
    let Some(db) = db().await else { return };
    db.store.create_table::<Tag>().await.expect("create");
    db.store.insert(&mut tag("ann", 1)).await.expect("insert");
    for other in ["Ann", "ANN", "ann ", "án"] {
        assert_eq!(db.store.get::<Tag>(other).await.expect("get"), None, "get({other:?})");
        let err = db.store.put(&mut tag(other, 2)).await.expect_err("no such record");
        let no_record = matches!(err, Error::ConcurrentModification { actual: None, current: None, .. });
        assert!(no_record, "put({other:?}) finds no record: {err:?}");
        db.store.delete_unchecked::<Tag>(other).await.expect("delete_unchecked");
    }
    assert_eq!(db.tags().await, [("ann".to_string(), 1)], "nothing else was written or deleted");
}

/// A user's table whose key column compares without regard to case or trailing spaces is refused
/// on the struct's first operation, naming the collation and how to change it, before anything
/// is written; one whose key is binary and pads no spaces is used.
#[tokio::test]
async fn a_users_table_whose_key_is_not_compared_exactly_is_refused() {
    let Some(db) = db().await else { return };
    for collation in ["utf8mb4_general_ci", "utf8mb4_unicode_ci", "utf8mb4_bin"] {
        db.exec(&format!("DROP TABLE IF EXISTS {}.tags", db.database)).await;
        db.exec(&format!(
            "CREATE TABLE {}.tags (id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE {collation} PRIMARY KEY, n BIGINT, \
             version BIGINT)",
            db.database
        ))
        .await;
        let check = |result: Result<(), Error>, op: &str| match result {
            Err(Error::Decode { table: "tags", column: "id", reason }) => {
                assert!(reason.contains(collation), "{op} on {collation}: {reason}");
                assert!(reason.contains("ALTER TABLE"), "{op} on {collation} says how to fix it: {reason}");
            }
            other => panic!("{op} on {collation}: expected Decode of tags.id, got {other:?}"),
        };
        check(db.store.insert(&mut tag("ann", 1)).await, "insert");
        check(db.store.put_unchecked(&mut tag("Ann", 1)).await, "put_unchecked");
        check(db.store.get::<Tag>("ann").await.map(drop), "get");
        check(db.store.create_table::<Tag>().await, "create_table");
        let in_tx = db.store.transaction(|tx| async move { tx.insert(&mut tag("ann", 1)).await }).await;
        check(in_tx, "insert in a transaction");
        assert_eq!(db.tags().await, [], "nothing was written on {collation}");
    }
    let exact = db.exact_collation().await;
    db.exec(&format!("DROP TABLE {}.tags", db.database)).await;
    db.exec(&format!(
        "CREATE TABLE {}.tags (id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE {exact} PRIMARY KEY, n BIGINT, \
         version BIGINT)",
        db.database
    ))
    .await;
    db.store.insert(&mut tag("ann", 1)).await.expect("a binary no-pad key is used");
    db.store.insert(&mut tag("Ann", 2)).await.expect("another record");
}

/// Text columns of a binary collation (the key `create_table` declares, a column of yours
/// declared `COLLATE utf8mb4_bin`) are read as text, not as bytes: the server flags them binary.
#[tokio::test]
async fn text_columns_of_a_binary_collation_are_read_as_text() {
    #[derive(Versioned, Debug, Clone, PartialEq)]
    #[versioned(table = "notes")]
    struct Note {
        #[key]
        id: String,
        body: String,
        title: Option<String>,
        #[version]
        version: u64,
    }
    let Some(db) = db().await else { return };
    db.exec(&format!(
        "CREATE TABLE {}.notes (id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE {} PRIMARY KEY, \
         body LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
         title VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, version BIGINT NOT NULL)",
        db.database,
        db.exact_collation().await
    ))
    .await;
    let mut note = Note { id: "Zoë".into(), body: "é ".into(), title: Some("T".into()), version: 0 };
    db.store.insert(&mut note).await.expect("insert");
    assert_eq!(db.store.get::<Note>("Zoë").await.expect("get"), Some(note));
}

/// MySQL rolls a deadlock victim's whole transaction back, and would run its later statements in
/// autocommit: a closure that ignores the (retryable) error and writes on gets its later
/// statements refused, and its commit fails; nothing of it is written, half or whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_victim_that_goes_on_commits_nothing() {
    let Some(db) = db().await else { return };
    let store = slots(&db, 4).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let cross = |first: i32, second: i32, own: i32| {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            store
                .transaction(|tx| async move {
                    let mut a = tx.get_for_update::<Slot>(&first).await?.expect("slot");
                    a.n += 1;
                    tx.put(&mut a).await?;
                    barrier.wait().await; // both hold their first row
                    let crossed = tx.get_for_update::<Slot>(&second).await;
                    // The victim ignores its deadlock and writes on.
                    let mut mine = Slot { id: own, n: 7, version: 1 };
                    let wrote = tx.put(&mut mine).await;
                    Ok((crossed.is_err(), wrote.is_err()))
                })
                .await
        })
    };
    let (one, two) = (cross(1, 2, 3), cross(2, 1, 4));
    let outcomes = [one.await.expect("task"), two.await.expect("task")];
    let failed: Vec<_> = outcomes.iter().filter(|r| r.is_err()).collect();
    assert_eq!(failed.len(), 1, "the victim's commit fails, the other's succeeds: {outcomes:?}");
    assert!(failed[0].as_ref().unwrap_err().is_retryable(), "{outcomes:?}");
    let winner = outcomes.iter().find_map(|r| r.as_ref().ok()).expect("a winner");
    assert_eq!(*winner, (false, false), "the winner's statements all succeeded");
    let n = |id: i32| {
        let store = store.clone();
        async move { store.get::<Slot>(&id).await.expect("get").expect("slot").n }
    };
    let (n3, n4) = (n(3).await, n(4).await);
    assert_eq!(n3 + n4, 7, "only the winner's own record was written: {n3}, {n4}");
    assert_eq!(n(1).await + n(2).await, 1, "only the winner's first write was kept");
}
