//! What every example shares: opening its SQLite file, and failing loudly when a story does not
//! come out as its source document says.

use versioned::{AnyStorage, Store};

/// The examples' error type: anything, printed by `main` with a non-zero exit.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Opens the example's database: `$VERSIONED_DATABASE_URL` if set (any backend compiled in: a
/// PostgreSQL URL needs `--features postgres`, a MySQL one `--features mysql`, an etcd one
/// `--features etcd`), otherwise a fresh
/// SQLite file
/// `versioned-<name>.db` in the system's temporary directory. On a server the example gets a
/// schema (PostgreSQL) or database (MySQL) of its own, emptied first, or a key prefix of its own
/// (etcd), so every run starts clean.
pub async fn open(name: &str) -> Result<Store<AnyStorage>, Failure> {
    let url = match std::env::var("VERSIONED_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => fresh_schema(&url, name).await?,
        Ok(url) if url.starts_with("mysql") || url.starts_with("mariadb") => fresh_database(&url, name).await?,
        // On etcd, a key prefix no earlier run used.
        Ok(url) if url.starts_with("etcd") => {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}prefix=example_{name}/{}/", uuid::Uuid::new_v4().simple())
        }
        Ok(url) => url,
        Err(_) => {
            let path = std::env::temp_dir().join(format!("versioned-{name}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let file = format!("{}{suffix}", path.display());
                // Absent on a first run; anything else will surface when SQLite opens it.
                let _ = std::fs::remove_file(file);
            }
            format!("sqlite://{}?mode=rwc", path.display())
        }
    };
    println!("database: {url}\n");
    Ok(Store::connect(&url).await?)
}

/// Creates (anew) the schema `example_<name>` and returns `url` with it as the search path.
async fn fresh_schema(url: &str, name: &str) -> Result<String, Failure> {
    let schema = format!("example_{name}");
    let admin = sqlx::PgPool::connect(url).await?;
    for sql in [format!("DROP SCHEMA IF EXISTS {schema} CASCADE"), format!("CREATE SCHEMA {schema}")] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&admin).await?;
    }
    admin.close().await;
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{separator}options=-c%20search_path%3D{schema}"))
}

/// Creates (anew) the database `example_<name>` and returns `url` pointing at it.
async fn fresh_database(url: &str, name: &str) -> Result<String, Failure> {
    let database = format!("example_{name}");
    let url = url.replacen("mariadb://", "mysql://", 1);
    let admin = sqlx::MySqlPool::connect(&url).await?;
    for sql in [format!("DROP DATABASE IF EXISTS {database}"), format!("CREATE DATABASE {database}")] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&admin).await?;
    }
    admin.close().await;
    let (server, query) = url.split_once('?').map_or((url.as_str(), None), |(s, q)| (s, Some(q)));
    let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
    Ok(format!("{base}/{database}{}", query.map(|q| format!("?{q}")).unwrap_or_default()))
}

/// Fails the example (exit code 1) unless `holds`.
pub fn expect(holds: bool, what: &str) -> Result<(), Failure> {
    if holds {
        println!("  ok: {what}");
        Ok(())
    } else {
        Err(format!("the story did not come out as its source says: {what}").into())
    }
}
