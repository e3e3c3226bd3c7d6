//! The semantics table of `versioned`, run against every backend by one shared test body
//! (`versioned_core::conformance`), and a model-based property test of the same table.

mod model;

mod memory {
    versioned_core::conformance_tests!(|| async { Some(versioned::Store::memory()) });

    use versioned::{Error, Store};
    use versioned_core::conformance::Account;

    /// The memory backend is optimistic: a transaction that read a record another writer changed
    /// before the commit fails at commit, even though it never wrote that record.
    #[tokio::test]
    async fn commit_validates_what_the_transaction_read() {
        let store = Store::memory();
        store.create_table::<Account>().await.unwrap();
        store.insert(&mut Account { id: 1, balance: 10, version: 0 }).await.unwrap();
        let other = store.clone();
        let err = store
            .transaction(|tx| async move {
                let a = tx.get::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
                // Meanwhile, another writer (another task) changes account 1.
                let writer =
                    tokio::spawn(
                        async move { other.update::<Account, _>(&1, Default::default(), |a| a.balance = 0).await },
                    );
                writer.await.expect("writer task")?;
                // A record derived from what we read: stale the moment we commit.
                tx.insert(&mut Account { id: 2, balance: a.balance, version: 0 }).await?;
                Ok(())
            })
            .await
            .expect_err("the read went stale before commit");
        assert!(
            matches!(err, Error::ConcurrentModification { table: "account", expected: 1, actual: Some(2), .. }),
            "{err:?}"
        );
        assert_eq!(store.get::<Account>(&2).await.unwrap(), None, "nothing of the transaction was applied");
    }
}

mod sqlite {
    use versioned::{SqliteStorage, Store};

    /// A store on a fresh SQLite file; the directory lives as long as the fixture.
    pub struct FileDb {
        store: Store<SqliteStorage>,
        _dir: tempfile::TempDir,
    }

    impl AsRef<Store<SqliteStorage>> for FileDb {
        fn as_ref(&self) -> &Store<SqliteStorage> {
            &self.store
        }
    }

    pub async fn file_db() -> Option<FileDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        let store = Store::sqlite(&url).await.expect("open SQLite file");
        Some(FileDb { store, _dir: dir })
    }

    versioned_core::conformance_tests!(file_db);
}

mod postgres {
    use versioned::{PostgresStorage, Store};

    /// A store on a schema of its own in `$VERSIONED_POSTGRES_URL`, dropped with the fixture.
    pub struct PgDb {
        store: Store<PostgresStorage>,
        schema: String,
        url: String,
    }

    impl AsRef<Store<PostgresStorage>> for PgDb {
        fn as_ref(&self) -> &Store<PostgresStorage> {
            &self.store
        }
    }

    impl Drop for PgDb {
        fn drop(&mut self) {
            // Dropped inside the test's runtime: clean up on a thread with a runtime of its own.
            let (url, schema) = (self.url.clone(), self.schema.clone());
            let cleanup = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(async {
                    let pool = sqlx::PgPool::connect(&url).await.expect("connect to drop the test schema");
                    let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                    sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await.expect("drop the test schema");
                });
            });
            let _ = cleanup.join();
        }
    }

    /// `None` (the test says it was skipped) when `VERSIONED_POSTGRES_URL` is not set; a panic
    /// when it is set and the server cannot be reached.
    pub async fn pg_db() -> Option<PgDb> {
        let Ok(url) = std::env::var("VERSIONED_POSTGRES_URL") else {
            eprintln!("skipped: set VERSIONED_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run it");
            return None;
        };
        let admin = sqlx::PgPool::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("VERSIONED_POSTGRES_URL={url} is set but the server is unreachable: {e}"));
        let schema = format!("vt_{}", uuid::Uuid::new_v4().simple());
        let create = format!("CREATE SCHEMA {schema}");
        sqlx::query(sqlx::AssertSqlSafe(create)).execute(&admin).await.expect("create the test schema");
        admin.close().await;
        let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a PostgreSQL URL");
        let options = options.options([("search_path", schema.as_str())]);
        let storage = PostgresStorage::connect_with(options).await.expect("connect");
        Some(PgDb { store: Store::new(storage), schema, url })
    }

    versioned_core::conformance_tests!(pg_db);
}

mod mysql {
    use versioned::{MysqlStorage, Store};

    /// A store on a database of its own in `$VERSIONED_MYSQL_URL`, dropped with the fixture.
    pub struct MyDb {
        store: Store<MysqlStorage>,
        database: String,
        url: String,
    }

    impl AsRef<Store<MysqlStorage>> for MyDb {
        fn as_ref(&self) -> &Store<MysqlStorage> {
            &self.store
        }
    }

    impl Drop for MyDb {
        fn drop(&mut self) {
            // Dropped inside the test's runtime: clean up on a thread with a runtime of its own.
            let (url, database) = (self.url.clone(), self.database.clone());
            let cleanup = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(async {
                    let pool = sqlx::MySqlPool::connect(&url).await.expect("connect to drop the test database");
                    let drop = format!("DROP DATABASE IF EXISTS {database}");
                    sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await.expect("drop the test database");
                });
            });
            let _ = cleanup.join();
        }
    }

    /// `None` (the test says it was skipped) when `VERSIONED_MYSQL_URL` is not set; a panic when
    /// it is set and the server cannot be reached.
    pub async fn my_db() -> Option<MyDb> {
        let Ok(url) = std::env::var("VERSIONED_MYSQL_URL") else {
            eprintln!("skipped: set VERSIONED_MYSQL_URL (e.g. mysql://root@127.0.0.1:3306/test) to run it");
            return None;
        };
        let admin = sqlx::MySqlPool::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("VERSIONED_MYSQL_URL={url} is set but the server is unreachable: {e}"));
        let database = format!("vt_{}", uuid::Uuid::new_v4().simple());
        let create = format!("CREATE DATABASE {database}");
        sqlx::query(sqlx::AssertSqlSafe(create)).execute(&admin).await.expect("create the test database");
        admin.close().await;
        let options: sqlx::mysql::MySqlConnectOptions = url.parse().expect("a MySQL URL");
        let storage = MysqlStorage::connect_with(options.database(&database)).await.expect("connect");
        Some(MyDb { store: Store::new(storage), database, url })
    }

    versioned_core::conformance_tests!(my_db);
}
