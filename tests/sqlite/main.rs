//! SQLite specifics: the schema `create_table` derives, tables made by users' own migrations,
//! rows that do not fit the struct (`Error::Decode` naming the column), and busy refusals.

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

/// A table as a user's migration might write it: other column order, an extra column with a
/// default, no NOT NULL constraints (so bad rows can exist).
async fn user_table(db: &Db) {
    exec(
        db,
        "CREATE TABLE people (version INTEGER, created TEXT DEFAULT 'then', skills TEXT, salary INTEGER, \
         nickname TEXT, name TEXT, id INTEGER PRIMARY KEY)",
    )
    .await;
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
async fn works_on_a_users_own_table_with_other_column_order_and_extra_columns() {
    let db = file_db().await;
    user_table(&db).await;
    let mut p = ann();
    db.store.insert(&mut p).await.expect("insert");
    p.salary = 200;
    p.nickname = Some("A".into());
    p.put(&db.store).await.expect("put");
    let mut stale = Person { version: 1, ..p.clone() };
    assert!(stale.put(&db.store).await.expect_err("stale").is_conflict());
    db.store.put_unchecked(&mut stale).await.expect("force");
    assert_eq!(db.store.get::<Person>(&1).await.expect("get"), Some(Person { version: 3, ..p }));
    let created: String = sqlx::query_scalar("SELECT created FROM people WHERE id = 1")
        .fetch_one(db.store.backend().pool())
        .await
        .unwrap();
    assert_eq!(created, "then", "columns the struct does not know keep their default");
}

#[tokio::test]
async fn null_in_a_non_option_column_is_a_decode_error() {
    let db = file_db().await;
    user_table(&db).await;
    exec(&db, r#"INSERT INTO people (id, name, salary, skills, version) VALUES (1, NULL, 1, '[]', 1)"#).await;
    assert_decode(db.store.get::<Person>(&1).await.expect_err("NULL name"), "name");
}

#[tokio::test]
async fn wrong_column_type_is_a_decode_error() {
    let db = file_db().await;
    user_table(&db).await;
    exec(&db, r#"INSERT INTO people (id, name, salary, skills, version) VALUES (1, 'Ann', 'lots', '[]', 1)"#).await;
    assert_decode(db.store.get::<Person>(&1).await.expect_err("text salary"), "salary");
}

#[tokio::test]
async fn integer_out_of_range_is_a_decode_error() {
    let db = file_db().await;
    user_table(&db).await;
    exec(&db, r#"INSERT INTO people (id, name, salary, skills, version) VALUES (1, 'Ann', 1099511627776, '[]', 1)"#)
        .await;
    assert_decode(db.store.get::<Person>(&1).await.expect_err("salary beyond i32"), "salary");
}

#[tokio::test]
async fn malformed_json_is_a_decode_error() {
    let db = file_db().await;
    user_table(&db).await;
    exec(&db, r#"INSERT INTO people (id, name, salary, skills, version) VALUES (1, 'Ann', 1, '["rust",', 1)"#).await;
    assert_decode(db.store.get::<Person>(&1).await.expect_err("bad JSON"), "skills");
}

#[tokio::test]
async fn a_missing_column_is_a_decode_error() {
    let db = file_db().await;
    exec(&db, "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, nickname TEXT, skills TEXT, version INTEGER)")
        .await;
    exec(&db, r#"INSERT INTO people (id, name, skills, version) VALUES (1, 'Ann', '[]', 1)"#).await;
    assert_decode(db.store.get::<Person>(&1).await.expect_err("no salary column"), "salary");
    assert_decode(db.store.insert(&mut ann()).await.expect_err("no salary column"), "salary");
}

#[tokio::test]
async fn a_negative_stored_version_is_a_decode_error() {
    let db = file_db().await;
    user_table(&db).await;
    exec(&db, r#"INSERT INTO people (id, name, salary, skills, version) VALUES (1, 'Ann', 1, '[]', -4)"#).await;
    assert_decode(db.store.get::<Person>(&1).await.expect_err("negative version"), "version");
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
