//! Scratch space on the test servers, shared by the test binaries: a PostgreSQL schema or a MySQL
//! database of its own for each test, dropped when the test ends, so tests run in parallel and
//! re-runs start clean. `None` (the test says it was skipped) when the server's URL is not set;
//! a panic when it is set and the server cannot be reached.

use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::postgres::{PgConnectOptions, PgPool};
use versioned::{MysqlStorage, PostgresStorage, Store};

/// A schema or database that is dropped with its owner.
struct Dropped {
    url: String,
    drop: String,
}

impl Drop for Dropped {
    fn drop(&mut self) {
        // Dropped inside the test's runtime, whose pools cannot serve another runtime: clean up
        // on a thread with a runtime and a connection of its own.
        let (url, drop) = (self.url.clone(), self.drop.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let sql = sqlx::AssertSqlSafe(drop);
                if url.starts_with("postgres") {
                    let admin = PgPool::connect(&url).await.expect("connect to clean up");
                    sqlx::query(sql).execute(&admin).await.expect("drop the test schema");
                } else {
                    let admin = MySqlPool::connect(&url).await.expect("connect to clean up");
                    sqlx::query(sql).execute(&admin).await.expect("drop the test database");
                }
            });
        });
        let _ = cleanup.join();
    }
}

fn url(var: &str, example: &str) -> Option<String> {
    let url = std::env::var(var).ok();
    if url.is_none() {
        eprintln!("skipped: set {var} (e.g. {example}) to run it");
    }
    url
}

fn scratch_name() -> String {
    format!("vt_{}", uuid::Uuid::new_v4().simple())
}

/// A store on a PostgreSQL schema of its own (`search_path`), and a pool outside it.
pub struct PgScratch {
    pub store: Store<PostgresStorage>,
    pub admin: PgPool,
    pub schema: String,
    _dropped: Dropped,
}

impl AsRef<Store<PostgresStorage>> for PgScratch {
    fn as_ref(&self) -> &Store<PostgresStorage> {
        &self.store
    }
}

pub async fn postgres() -> Option<PgScratch> {
    let url = url("VERSIONED_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")?;
    let admin = PgPool::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("VERSIONED_POSTGRES_URL={url} is set but the server is unreachable: {e}"));
    let schema = scratch_name();
    let create = sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"));
    sqlx::query(create).execute(&admin).await.expect("create the test schema");
    let options: PgConnectOptions = url.parse().expect("a PostgreSQL URL");
    let storage =
        PostgresStorage::connect_with(options.options([("search_path", schema.as_str())])).await.expect("connect");
    let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    Some(PgScratch { store: Store::new(storage), admin, schema, _dropped: Dropped { url, drop } })
}

/// A store on a MySQL database of its own, and a pool outside it.
pub struct MyScratch {
    pub store: Store<MysqlStorage>,
    pub admin: MySqlPool,
    pub database: String,
    _dropped: Dropped,
}

impl AsRef<Store<MysqlStorage>> for MyScratch {
    fn as_ref(&self) -> &Store<MysqlStorage> {
        &self.store
    }
}

pub async fn mysql() -> Option<MyScratch> {
    let url = url("VERSIONED_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")?;
    let admin = MySqlPool::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("VERSIONED_MYSQL_URL={url} is set but the server is unreachable: {e}"));
    let database = scratch_name();
    let create = sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}"));
    sqlx::query(create).execute(&admin).await.expect("create the test database");
    let options: MySqlConnectOptions = url.parse().expect("a MySQL URL");
    let storage = MysqlStorage::connect_with(options.database(&database)).await.expect("connect");
    let drop = format!("DROP DATABASE IF EXISTS {database}");
    Some(MyScratch { store: Store::new(storage), admin, database, _dropped: Dropped { url, drop } })
}
