//! `Store::connect_with`: a store opened from a URL with options — the schema, the pool's size,
//! the lock wait, one backend's own settings — on every backend configured here.

use std::time::Duration;

use versioned::{AnyStorage, ConnectOptions, Durability, Error, LockWait, Store};
use versioned_core::conformance::Person;

fn options() -> ConnectOptions {
    ConnectOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(7))
        .lock_wait(LockWait::Timeout(Duration::from_millis(1_500)))
        .durability(Durability::Normal)
}

/// The pool's size and the store's lock wait are the options'.
fn assert_settings(store: &Store<AnyStorage>) {
    assert_eq!(store.lock_wait(), LockWait::Timeout(Duration::from_millis(1_500)));
    let (size, acquire) = match store.backend() {
        AnyStorage::Sqlite(s) => (s.pool().options().get_max_connections(), s.pool().options().get_acquire_timeout()),
        AnyStorage::Postgres(s) => (s.pool().options().get_max_connections(), s.pool().options().get_acquire_timeout()),
        AnyStorage::Mysql(s) => (s.pool().options().get_max_connections(), s.pool().options().get_acquire_timeout()),
        other => panic!("not a SQL backend: {other:?}"),
    };
    assert_eq!((size, acquire), (3, Duration::from_secs(7)));
}

async fn round_trip(store: &Store<AnyStorage>) {
    store.create_table::<Person>().await.expect("create");
    let mut ann = Person { id: 1, name: "Ann".into(), salary: 100, version: 0 };
    store.insert(&mut ann).await.expect("insert");
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(ann));
}

#[tokio::test]
async fn sqlite_takes_the_pool_size_the_lock_wait_and_the_durability() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("connect.db").display());
    let store = Store::connect_with(&url, options()).await.expect("connect");
    assert_settings(&store);
    round_trip(&store).await;
    let AnyStorage::Sqlite(sqlite) = store.backend() else { panic!("SQLite") };
    let synchronous: i64 =
        sqlx::query_scalar("PRAGMA synchronous").fetch_one(sqlite.pool()).await.expect("synchronous");
    assert_eq!(synchronous, 1, "Durability::Normal is synchronous = NORMAL");
}

#[tokio::test]
async fn a_schema_where_there_is_none_is_refused() {
    for url in ["sqlite::memory:", "memory:"] {
        let refused = Store::connect_with(url, ConnectOptions::new().schema("billing")).await;
        assert!(matches!(refused, Err(Error::Config { .. })), "{url}: {refused:?}");
    }
}

#[tokio::test]
async fn postgres_uses_the_schema_it_is_given() {
    let Some(db) = crate::servers::postgres().await else { return };
    let url = std::env::var("VERSIONED_POSTGRES_URL").expect("set, since the scratch schema exists");
    let store = Store::connect_with(&url, options().schema(&db.schema)).await.expect("connect");
    assert_settings(&store);
    round_trip(&store).await;
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {}.people", db.schema)))
        .fetch_one(&db.admin)
        .await
        .expect("the table is in the schema");
    assert_eq!(count, 1);
}

#[tokio::test]
async fn mysql_uses_the_database_it_is_given() {
    let Some(db) = crate::servers::mysql().await else { return };
    let url = std::env::var("VERSIONED_MYSQL_URL").expect("set, since the scratch database exists");
    let store = Store::connect_with(&url, options().schema(&db.database)).await.expect("connect");
    assert_settings(&store);
    round_trip(&store).await;
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {}.people", db.database)))
        .fetch_one(&db.admin)
        .await
        .expect("the table is in the database");
    assert_eq!(count, 1);
}
