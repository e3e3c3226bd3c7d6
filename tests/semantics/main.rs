//! The semantics table of `versioned`, run against every backend by one shared test body
//! (`versioned_core::conformance`).

mod memory {
    versioned_core::conformance_tests!(|| async { versioned::Store::memory() });
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

    pub async fn file_db() -> FileDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        let store = Store::sqlite(&url).await.expect("open SQLite file");
        FileDb { store, _dir: dir }
    }

    versioned_core::conformance_tests!(file_db);
}
