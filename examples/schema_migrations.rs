//! Schemas as migrations: the tables a team's structs need, written as migration files by
//! `versioned::migrations` and applied with sqlx's `Migrator`, as a team that reviews its schema
//! changes does: the example never calls `create_table`.
//!
//! The files are committed in `examples/migrations/<database>/`; the example checks they are
//! what the library writes for the structs today (run it with `--write` to write them again), then
//! applies the database's folder to the store's own pool and uses the tables. On the memory and
//! etcd backends, which have no SQL schema, it creates the tables as usual.
//!
//! Run: `cargo run --features postgres,mysql,uuid --example schema_migrations` (SQLite); on
//! PostgreSQL or MariaDB set `VERSIONED_DATABASE_URL`.

mod common;

use std::path::{Path, PathBuf};

use versioned::migrations::{SqlDialect, create_table_sql};
use versioned::{AnyStorage, Store, Versioned};

#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "bugs")]
struct Bug {
    #[key]
    id: i64,
    title: String,
    #[versioned(index)]
    status: String,
    assignee: Option<String>,
    #[version]
    version: u64,
}

#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "comments")]
struct Comment {
    #[key]
    id: uuid::Uuid,
    #[versioned(index)]
    bug_id: i64,
    body: String,
    #[version]
    version: u32,
}

/// The migration files of every database: one per struct, in order.
fn migrations(dialect: SqlDialect) -> Vec<(&'static str, String)> {
    vec![
        ("0001_create_bugs.sql", create_table_sql::<Bug>(dialect)),
        ("0002_create_comments.sql", create_table_sql::<Comment>(dialect)),
    ]
}

const DATABASES: [(&str, SqlDialect); 4] = [
    ("sqlite", SqlDialect::Sqlite),
    ("postgres", SqlDialect::Postgres),
    ("mariadb", SqlDialect::MariaDb),
    ("mysql8", SqlDialect::Mysql8),
];

fn folder(database: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/migrations").join(database)
}

/// Writes every database's files (`--write`), or checks the committed ones are what the library
/// writes now.
fn write_or_check(write: bool) -> Result<(), common::Failure> {
    for (database, dialect) in DATABASES {
        let dir = folder(database);
        for (file, sql) in migrations(dialect) {
            let path = dir.join(file);
            if write {
                std::fs::create_dir_all(&dir)?;
                std::fs::write(&path, &sql)?;
                println!("wrote {}", path.display());
            } else {
                let committed = std::fs::read_to_string(&path).unwrap_or_default();
                common::expect(
                    committed == sql,
                    &format!(
                        "{} is what the library writes (else: cargo run --example schema_migrations -- --write)",
                        path.display()
                    ),
                )?;
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), common::Failure> {
    write_or_check(std::env::args().any(|a| a == "--write"))?;
    let store = common::open("schema_migrations").await?;
    let applied = match store.backend() {
        AnyStorage::Sqlite(s) => Some(migrator("sqlite").await?.run(s.pool()).await?),
        AnyStorage::Postgres(s) => Some(migrator("postgres").await?.run(s.pool()).await?),
        AnyStorage::Mysql(s) => {
            let version: String = sqlx::query_scalar("SELECT VERSION()").fetch_one(s.pool()).await?;
            let database = if version.contains("MariaDB") { "mariadb" } else { "mysql8" };
            Some(migrator(database).await?.run(s.pool()).await?)
        }
        _ => None,
    };
    if applied.is_none() {
        println!("no SQL schema on this backend: the tables are created at run time");
        store.create_table::<Bug>().await?;
        store.create_table::<Comment>().await?;
    } else {
        println!("migrations applied with sqlx's Migrator; no create_table");
    }
    use_the_tables(&store).await
}

async fn migrator(database: &str) -> Result<sqlx::migrate::Migrator, common::Failure> {
    Ok(sqlx::migrate::Migrator::new(folder(database)).await?)
}

/// The tables the migrations made work as `create_table`'s do: checked writes, queries by the
/// indexed fields.
async fn use_the_tables(store: &Store<AnyStorage>) -> Result<(), common::Failure> {
    let mut bug = Bug { id: 1, title: "Crash on save".into(), status: "open".into(), assignee: None, version: 0 };
    store.insert(&mut bug).await?;
    let mut stale = bug.clone();
    bug.assignee = Some("Jim".into());
    store.put(&mut bug).await?;
    stale.status = "closed".into();
    common::expect(store.put(&mut stale).await.is_err_and(|e| e.is_conflict()), "a stale copy is refused")?;
    for body in ["Seen on 1.2", "Fixed in 1.3"] {
        store.insert(&mut Comment { id: uuid::Uuid::new_v4(), bug_id: 1, body: body.into(), version: 0 }).await?;
    }
    let comments = store.find::<Comment>().filter(Comment::BUG_ID.eq(1)).count().await?;
    common::expect(comments == 2, "two comments on bug 1, found through the index")?;
    let open = store.find::<Bug>().filter(Bug::STATUS.eq("open")).all().await?;
    common::expect(open == vec![bug], "bug 1 is open, assigned to Jim, at version 2")?;
    Ok(())
}
