//! The semantics table of `versioned`, run against every backend by one shared test body
//! (`versioned_core::conformance`), and a model-based property test of the same table.

mod connect;
mod json_depth;
mod model;
mod observe;

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

    /// `get_many` remembers the keys it found no record for, as `get` does: a record inserted
    /// under one of them before the commit fails the commit.
    #[tokio::test]
    async fn get_many_remembers_the_keys_it_did_not_find() {
        let store = Store::memory();
        store.create_table::<Account>().await.unwrap();
        store.insert(&mut Account { id: 1, balance: 10, version: 0 }).await.unwrap();
        let other = store.clone();
        let err = store
            .transaction(|tx| async move {
                let found = tx.get_many::<Account, i32>(&[1, 2]).await?;
                assert!(found[1].is_none());
                let writer =
                    tokio::spawn(async move { other.insert(&mut Account { id: 2, balance: 5, version: 0 }).await });
                writer.await.expect("writer task")?;
                tx.insert(&mut Account { id: 3, balance: 0, version: 0 }).await?;
                Ok(())
            })
            .await
            .expect_err("account 2 appeared after the transaction saw it absent");
        assert!(err.is_conflict(), "{err:?}");
        assert_eq!(store.get::<Account>(&3).await.unwrap(), None, "nothing of the transaction was applied");
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

    /// A checked put of a `Clone` struct without timestamps stores the struct itself: every other
    /// path (reads, snapshots, patches, transactions, conflicts, locks) sees it as a row, and a
    /// struct that is not `Clone` is stored as a row.
    #[tokio::test]
    async fn structs_stored_as_values_read_back_everywhere() {
        use std::time::Duration;
        use versioned::{Check, LockWait, Versioned};
        use versioned_core::conformance::AccountPatch;

        let store = Store::memory();
        store.create_table::<Account>().await.unwrap();
        let mut a = Account { id: 1, balance: 10, version: 0 };
        store.insert(&mut a).await.unwrap();
        let stale = a.clone();
        for balance in [11, 12] {
            a.balance = balance;
            store.put(&mut a).await.unwrap();
        }
        assert_eq!(store.get::<Account>(&1).await.unwrap(), Some(a.clone()));

        // A conflict carries the stored struct as its row.
        let err = store.put(&mut stale.clone()).await.unwrap_err();
        let Error::ConcurrentModification { expected: 1, actual: Some(3), current: Some(row), .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(versioned::Entity::from_row(row).ok(), Some(a.clone()));

        // A read-only transaction keeps the struct as it was while a put replaces it.
        let (seen_before, seen_after) = store
            .read_transaction({
                let (store, mut a) = (store.clone(), a.clone());
                move |tx| async move {
                    let before = tx.get::<Account>(&1).await?;
                    a.balance = 13;
                    tokio::spawn(async move { store.put(&mut a).await }).await.expect("writer")?;
                    Ok((before, tx.get::<Account>(&1).await?))
                }
            })
            .await
            .unwrap();
        assert_eq!(seen_before.map(|a| a.balance), Some(12));
        assert_eq!(seen_after.map(|a| a.balance), Some(12));
        a = store.get::<Account>(&1).await.unwrap().unwrap();
        assert_eq!((a.balance, a.version), (13, 4));

        // A patch and a transaction read and write the struct stored as a value.
        store.patch::<Account>(&1, AccountPatch::default().balance(20), Check::Version(4)).await.unwrap();
        store
            .transaction(|tx| async move {
                let mut a = tx.get::<Account>(&1).await?.expect("present");
                a.balance += 1;
                tx.put(&mut a).await
            })
            .await
            .unwrap();
        a = store.get::<Account>(&1).await.unwrap().unwrap();
        assert_eq!((a.balance, a.version), (21, 6));

        // A record locked by a transaction: the put waits for the lock, then writes.
        let (locked, release) = tokio::sync::oneshot::channel();
        let holder = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .transaction(|tx| async move {
                        tx.get_for_update_with::<Account>(&1, LockWait::NoWait).await?;
                        let _ = locked.send(());
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok(())
                    })
                    .await
            }
        });
        release.await.unwrap();
        let started = std::time::Instant::now();
        a.balance = 22;
        store.put(&mut a).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50), "the put waited for the record's lock");
        holder.await.unwrap().unwrap();
        assert_eq!(store.get::<Account>(&1).await.unwrap().map(|a| (a.balance, a.version)), Some((22, 7)));

        // Not `Clone`: stored as a row, same rules.
        #[derive(Versioned, Debug, PartialEq)]
        struct Plain {
            #[key]
            id: i64,
            n: i64,
            #[version]
            version: u64,
        }
        store.create_table::<Plain>().await.unwrap();
        let mut p = Plain { id: 1, n: 0, version: 0 };
        store.insert(&mut p).await.unwrap();
        p.n = 1;
        store.put(&mut p).await.unwrap();
        assert_eq!(store.get::<Plain>(&1).await.unwrap(), Some(Plain { id: 1, n: 1, version: 2 }));
    }

    /// Two structs declaring one table share its records: the second finds the table the first
    /// created, and each reads what the other stored as a value.
    #[tokio::test]
    async fn two_structs_of_one_table_share_its_records() {
        use versioned::Versioned;
        use versioned_core::conformance::Person;

        /// `people` as another part of a program declares it.
        #[derive(Versioned, Debug, Clone, PartialEq)]
        #[versioned(table = "people")]
        struct Staff {
            #[key]
            id: i64,
            name: String,
            salary: i32,
            #[version]
            version: u64,
        }

        let store = Store::memory();
        assert!(Staff::get(&store, &1).await.is_err(), "no table before it is created");
        store.create_table::<Person>().await.unwrap();
        store.create_table::<Staff>().await.unwrap();
        let mut ann = Person { id: 1, name: "Ann".into(), salary: 100, version: 0 };
        store.insert(&mut ann).await.unwrap();
        ann.salary = 110;
        ann.put(&store).await.unwrap();
        let mut staff = Staff::get(&store, &1).await.unwrap().expect("Ann, through the other struct");
        assert_eq!(staff, Staff { id: 1, name: "Ann".into(), salary: 110, version: 2 });
        staff.salary = 120;
        staff.put(&store).await.unwrap();
        assert!(matches!(ann.put(&store).await, Err(Error::ConcurrentModification { actual: Some(3), .. })));
        assert_eq!(store.get::<Person>(&1).await.unwrap().map(|p| (p.salary, p.version)), Some((120, 3)));
    }

    /// A thread's puts alternate between types, and between records whose fields are `Clone` or
    /// not: each stores exactly its own copy, whatever record the thread's last put replaced.
    #[tokio::test(flavor = "current_thread")]
    async fn puts_of_several_types_on_one_thread_store_their_own_copies() {
        use versioned::Versioned;

        /// A field type that is not `Clone`; the struct is, by hand.
        #[derive(Debug, PartialEq)]
        struct Label(String);

        impl versioned::Field for Label {
            const TYPE: versioned::ColumnType = versioned::ColumnType::Text;
            fn to_value(&self) -> Result<versioned::Value, String> {
                Ok(versioned::Value::Text(self.0.clone()))
            }
            fn from_value(value: versioned::Value) -> Result<Self, String> {
                <String as versioned::Field>::from_value(value).map(Label)
            }
        }

        #[derive(Versioned, Debug, PartialEq)]
        struct Tagged {
            #[key]
            id: i64,
            label: Label,
            #[version]
            version: u64,
        }

        impl Clone for Tagged {
            fn clone(&self) -> Self {
                Tagged { id: self.id, label: Label(self.label.0.clone()), version: self.version }
            }
        }

        let store = Store::memory();
        store.create_table::<Account>().await.unwrap();
        store.create_table::<Tagged>().await.unwrap();
        let mut a = Account { id: 1, balance: 0, version: 0 };
        let mut t = Tagged { id: 1, label: Label("first".into()), version: 0 };
        store.insert(&mut a).await.unwrap();
        store.insert(&mut t).await.unwrap();
        for round in 1..=5 {
            a.balance = round;
            store.put(&mut a).await.unwrap();
            t.label = Label(format!("label {round}"));
            store.put(&mut t).await.unwrap();
            a.balance = 10 * round;
            store.put(&mut a).await.unwrap();
        }
        assert_eq!(store.get::<Account>(&1).await.unwrap(), Some(Account { id: 1, balance: 50, version: 11 }));
        assert_eq!(
            store.get::<Tagged>(&1).await.unwrap(),
            Some(Tagged { id: 1, label: Label("label 5".into()), version: 6 })
        );
        // A refused put keeps nothing of its copy in the store.
        let mut stale = Account { id: 1, balance: -1, version: 3 };
        assert!(store.put(&mut stale).await.is_err());
        a.balance = 51;
        store.put(&mut a).await.unwrap();
        assert_eq!(store.get::<Account>(&1).await.unwrap(), Some(Account { id: 1, balance: 51, version: 12 }));
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
    /// An in-memory database's transactions wait for the write lock as the store says too
    /// (its connections share one cache, where SQLite's busy timeout does not apply).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_memory_lock_waits_end_in_lock_timeout() {
        let store = Store::sqlite("sqlite::memory:").await.expect("open");
        versioned_core::conformance::lock_waits_end_in_lock_timeout(&store).await;
    }

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

#[path = "../common/events.rs"]
mod events;

mod postgres {
    versioned_core::conformance_tests!(crate::servers::postgres);
}

mod mysql {
    versioned_core::conformance_tests!(crate::servers::mysql);
}
