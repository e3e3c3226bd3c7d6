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

    /// A `String` key is looked up with a `&str`, a `&&str` or a `&String`, as `HashMap::get`.
    #[tokio::test]
    async fn string_keys_accept_borrowed_forms() {
        use versioned_core::conformance::HighScore;
        let store = Store::memory();
        store.create_table::<HighScore>().await.unwrap();
        store.insert(&mut HighScore { board: "978-1".into(), score: 1, version: 0 }).await.unwrap();
        let owned = String::from("978-1");
        for found in [
            HighScore::get(&store, &"978-1").await.unwrap(),
            HighScore::get(&store, "978-1").await.unwrap(),
            HighScore::get(&store, &owned).await.unwrap(),
            store.get::<HighScore>("978-1").await.unwrap(),
            store.get::<HighScore>(&owned).await.unwrap(),
        ] {
            assert_eq!(found.map(|h| h.score), Some(1));
        }
        assert!(store.delete_unchecked::<HighScore>("978-1").await.unwrap());
        assert!(matches!(HighScore::get_with_version(&store, "978-1", 1).await, Err(Error::NotFound { .. })));
    }

    /// The derive's helpers take a store behind `Arc` or a reference as they take the store.
    #[tokio::test]
    async fn helpers_take_a_shared_or_borrowed_store() {
        let shared = std::sync::Arc::new(Store::memory());
        shared.create_table::<Account>().await.unwrap();
        let mut a = Account { id: 1, balance: 10, version: 0 };
        a.insert(&shared).await.unwrap();
        a.balance = 11;
        a.put(&&*shared).await.unwrap();
        assert_eq!(Account::get(&shared, &1).await.unwrap(), Some(a));
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

// Each binary uses a part of the shared helpers.
#[allow(dead_code)]
#[path = "../common/servers.rs"]
mod servers;

mod postgres {
    versioned_core::conformance_tests!(crate::servers::postgres);
}

mod mysql {
    versioned_core::conformance_tests!(crate::servers::mysql);
}
