//! The SQL backends' own checks: a table made by a user's migration (its columns in another order,
//! an extra column, no `NOT NULL`) is used as it is, and a row in it that does not fit the struct
//! is `Error::Decode` naming the table and the column, never a panic or a wrong value.
//!
//! The tests write their tables and rows with raw SQL through a [`SqlFixture`], spelled as its
//! [`Dialect`] says. [`sql_conformance_tests!`](crate::sql_conformance_tests) turns them into
//! `#[tokio::test]`s for a backend, given a function that makes a fixture on an empty database,
//! wrapped in `Some` (`None` skips the test):
//!
//! ```ignore
//! versioned_core::sql_conformance_tests!(|| async { Some(my_fixture().await) });
//! ```

use std::future::Future;
use std::time::SystemTime;

use crate::error::Error;
use crate::storage::Storage;
use crate::store::Store;

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use super::lent::*;
pub use super::revisions::the_history_follows_the_struct_and_your_own_sql;

/// A store on an empty database, and a way around it: statements run on the same database,
/// outside the store.
pub trait SqlFixture {
    /// The store's backend.
    type Storage: Storage;

    /// The store the tests check.
    fn store(&self) -> &Store<Self::Storage>;

    /// How this database spells types, literals and identifiers.
    fn dialect(&self) -> &Dialect;

    /// Runs one statement on the store's database (its schema), panicking with the statement and
    /// the error when it fails.
    fn exec(&self, sql: &str) -> impl Future<Output = ()>;

    /// The first column, as text, of the one row `sql` selects.
    fn text(&self, sql: &str) -> impl Future<Output = String>;

    /// The dialect [`migrations`](crate::migrations) and
    /// [`sql_columns`](crate::FromSqlRow::sql_columns) write for this database.
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    fn sql_dialect(&self) -> crate::migrations::SqlDialect;
}

/// How one SQL database spells what the tests write.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// The character an identifier is quoted with (`rank` is a reserved word in MySQL).
    pub quote: char,
    /// Each column of [`Person`], in the struct's order, with the type a migration declares it
    /// with.
    pub columns: [(&'static str, &'static str); 12],
    /// The type of the column `created`, which no field reads: it keeps its default, `'then'`.
    pub extra: &'static str,
    /// A type for `salary` under which a value that is not an integer can be stored.
    pub text_salary: &'static str,
    /// A type for `salary` that holds integers beyond `i32`.
    pub wide_salary: &'static str,
    /// The literal `true`.
    pub true_literal: &'static str,
    /// An empty byte string.
    pub no_bytes: &'static str,
    /// The current time, for a timestamp column.
    pub now: &'static str,
    /// A JSON column's text that does not decode as a list of strings: malformed where the
    /// column keeps any text, a document of another shape where it refuses malformed JSON.
    pub bad_json: &'static str,
    /// A version no `u64` version field reads: negative, or above `i64::MAX` in an unsigned
    /// column.
    pub bad_version: &'static str,
    /// A query of the number of indexes of table `{table}` besides its primary key.
    pub secondary_indexes: &'static str,
    /// The type a `CAST` to text names (`TEXT`; MySQL's `CHAR`).
    pub text: &'static str,
}

impl Dialect {
    /// SQLite: any value in any column, so bad rows are easy to store.
    pub const SQLITE: Dialect = Dialect {
        quote: '"',
        columns: [
            ("id", "INTEGER"),
            ("name", "TEXT"),
            ("salary", "INTEGER"),
            ("rank", "INTEGER"),
            ("ratio", "REAL"),
            ("score", "REAL"),
            ("active", "BOOLEAN"),
            ("photo", "BLOB"),
            ("nickname", "TEXT"),
            ("skills", "TEXT"),
            ("updated", "INTEGER"),
            ("version", "INTEGER"),
        ],
        extra: "TEXT",
        // An INTEGER column keeps text that does not read as a number as text.
        text_salary: "INTEGER",
        wide_salary: "INTEGER",
        true_literal: "1",
        no_bytes: "x''",
        now: "0",
        bad_json: r#"'["rust",'"#,
        bad_version: "-4",
        secondary_indexes: "SELECT CAST(COUNT(*) AS TEXT) FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table}' \
                            AND sql IS NOT NULL",
        text: "TEXT",
    };

    /// PostgreSQL: native types.
    pub const POSTGRES: Dialect = Dialect {
        quote: '"',
        columns: [
            ("id", "BIGINT"),
            ("name", "TEXT"),
            ("salary", "INTEGER"),
            ("rank", "SMALLINT"),
            ("ratio", "DOUBLE PRECISION"),
            ("score", "REAL"),
            ("active", "BOOLEAN"),
            ("photo", "BYTEA"),
            ("nickname", "TEXT"),
            ("skills", "JSONB"),
            ("updated", "TIMESTAMPTZ"),
            ("version", "BIGINT"),
        ],
        extra: "TEXT",
        text_salary: "TEXT",
        wide_salary: "BIGINT",
        true_literal: "true",
        no_bytes: "''",
        now: "now()",
        // JSONB refuses malformed text; a document of the wrong shape is what can be stored.
        bad_json: r#"'{"not": "a list"}'"#,
        bad_version: "-4",
        secondary_indexes: "SELECT CAST(COUNT(*) AS TEXT) FROM pg_indexes WHERE schemaname = current_schema() \
                            AND tablename = '{table}' AND indexname <> '{table}_pkey'",
        text: "TEXT",
    };

    /// MySQL and MariaDB.
    pub const MYSQL: Dialect = Dialect {
        quote: '`',
        columns: [
            ("id", "BIGINT"),
            ("name", "TEXT"),
            ("salary", "INT"),
            ("rank", "SMALLINT"),
            ("ratio", "DOUBLE"),
            ("score", "FLOAT"),
            ("active", "TINYINT(1)"),
            ("photo", "LONGBLOB"),
            ("nickname", "TEXT"),
            ("skills", "JSON"),
            ("updated", "DATETIME(6)"),
            ("version", "BIGINT UNSIGNED"),
        ],
        extra: "VARCHAR(10)",
        text_salary: "TEXT",
        wide_salary: "BIGINT",
        true_literal: "1",
        no_bytes: "''",
        now: "NOW(6)",
        // A JSON column refuses malformed text; a document of the wrong shape is what can be stored.
        bad_json: r#"'{"not": "a list"}'"#,
        bad_version: "18446744073709551615",
        secondary_indexes: "SELECT CAST(COUNT(DISTINCT index_name) AS CHAR) FROM information_schema.statistics \
                            WHERE table_schema = DATABASE() AND table_name = '{table}' AND index_name <> 'PRIMARY'",
        text: "CHAR",
    };

    /// `name`, quoted.
    pub fn quoted(&self, name: &str) -> String {
        format!("{q}{name}{q}", q = self.quote)
    }
}

/// The `people` table of a user's own migrations, read through a struct of every field type.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "people")]
pub struct Person {
    /// Key.
    #[key]
    pub id: i64,
    /// Name.
    pub name: String,
    /// Salary.
    pub salary: i32,
    /// A small integer.
    pub rank: i16,
    /// A double.
    pub ratio: f64,
    /// A float.
    pub score: f32,
    /// A bool.
    pub active: bool,
    /// Bytes.
    pub photo: Vec<u8>,
    /// A nullable column.
    pub nickname: Option<String>,
    /// A JSON list.
    #[versioned(json)]
    pub skills: Vec<String>,
    /// Set by the store on every write.
    #[versioned(updated_at)]
    pub updated: SystemTime,
    /// Version.
    #[version]
    pub version: u64,
}

/// Ann, every field set (the version 0 of a copy not yet stored).
pub fn ann() -> Person {
    Person {
        id: 1,
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

/// `people` as a user's migration might declare it: its columns in another order, an extra column
/// with a default, no `NOT NULL` (so bad rows can exist), and `salary` of the type given.
async fn user_table<F: SqlFixture>(db: &F, salary: &str) {
    let d = db.dialect();
    let mut columns: Vec<String> = d
        .columns
        .iter()
        .rev()
        .map(|(name, ty)| {
            let ty = if *name == "salary" { salary } else { ty };
            let key = if *name == "id" { " PRIMARY KEY" } else { "" };
            format!("{} {ty}{key}", d.quoted(name))
        })
        .collect();
    columns.insert(1, format!("created {} DEFAULT 'then'", d.extra));
    db.exec(&format!("CREATE TABLE people ({})", columns.join(", "))).await;
}

/// The type `salary` has in the dialect's own table.
fn salary_type(d: &Dialect) -> &'static str {
    d.columns.iter().find(|(name, _)| *name == "salary").map(|(_, ty)| *ty).expect("a salary column")
}

/// Inserts Ann's row, as one statement of raw SQL, with the values `set` gives instead of hers
/// (every column but `nickname`, which stays `NULL`).
async fn insert_row<F: SqlFixture>(db: &F, set: &[(&str, &str)]) {
    let d = db.dialect();
    let values = [
        ("id", "1"),
        ("name", "'Ann'"),
        ("salary", "1"),
        ("rank", "1"),
        ("ratio", "1"),
        ("score", "1"),
        ("active", d.true_literal),
        ("photo", d.no_bytes),
        ("skills", "'[]'"),
        ("updated", d.now),
        ("version", "1"),
    ];
    let value = |name: &str, own: &'static str| set.iter().find(|(n, _)| *n == name).map_or(own, |(_, v)| *v);
    let names: Vec<String> = values.iter().map(|(name, _)| d.quoted(name)).collect();
    let values: Vec<&str> = values.iter().map(|(name, own)| value(name, own)).collect();
    db.exec(&format!("INSERT INTO people ({}) VALUES ({})", names.join(", "), values.join(", "))).await;
}

/// Checks that `result` is `Error::Decode` of `people.<column>`, whose message names it and
/// nothing of the driver's internals.
#[track_caller]
fn assert_decode<T: std::fmt::Debug>(result: Result<T, Error>, column: &str) {
    match &result {
        Err(err @ Error::Decode { table: "people", column: c, .. }) if *c == column => {
            let message = err.to_string();
            assert!(message.contains(&format!("people.{column}")), "{message}");
            assert!(!message.contains("mismatched types"), "no driver internals in the message: {message}");
        }
        other => panic!("expected Decode of people.{column}, got {other:?}"),
    }
}

/// A table of the user's own, with its columns in another order and one the struct does not know:
/// every operation works on it, and the unknown column keeps its default.
pub async fn works_on_a_users_own_table_with_other_column_order_and_extra_columns<F: SqlFixture>(db: &F) {
    user_table(db, salary_type(db.dialect())).await;
    let store = db.store();
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    let err = store.insert(&mut ann()).await.expect_err("the key exists");
    assert!(matches!(err, Error::AlreadyExists { table: "people", .. }), "{err:?}");
    p.salary = 200;
    p.nickname = Some("A".into());
    p.put(store).await.expect("put");
    let mut stale = Person { version: 1, ..p.clone() };
    assert!(stale.put(store).await.expect_err("stale").is_conflict());
    store.put_unchecked(&mut stale).await.expect("force");
    assert_eq!(stale.version, 3, "the upsert's version is read back");
    let stored = store.get::<Person>(&1).await.expect("get").expect("present");
    assert_eq!((stored.salary, stored.nickname.as_deref(), stored.version), (200, Some("A"), 3));
    // Every field as it was put (the forced write set `updated`).
    assert_eq!(stored, Person { version: 3, updated: stale.updated, ..p });
    let created = db.text("SELECT created FROM people WHERE id = 1").await;
    assert_eq!(created, "then", "columns the struct does not know keep their default");
}

/// `NULL` in a column whose field is not an `Option` is `Error::Decode` naming it.
pub async fn null_in_a_non_option_column_is_a_decode_error<F: SqlFixture>(db: &F) {
    user_table(db, salary_type(db.dialect())).await;
    insert_row(db, &[("name", "NULL")]).await;
    assert_decode(db.store().get::<Person>(&1).await, "name");
}

/// Text where the field is an integer is `Error::Decode` naming the column.
pub async fn wrong_column_type_is_a_decode_error<F: SqlFixture>(db: &F) {
    user_table(db, db.dialect().text_salary).await;
    insert_row(db, &[("salary", "'lots'")]).await;
    assert_decode(db.store().get::<Person>(&1).await, "salary");
}

/// A stored integer beyond the field's type (`i32`) is `Error::Decode` naming the column, never a
/// truncated number.
pub async fn integer_out_of_range_is_a_decode_error<F: SqlFixture>(db: &F) {
    user_table(db, db.dialect().wide_salary).await;
    insert_row(db, &[("salary", "1099511627776")]).await;
    assert_decode(db.store().get::<Person>(&1).await, "salary");
}

/// JSON that does not decode as the field's type (malformed text, or where the column refuses
/// that, a document of another shape) is `Error::Decode` naming the column.
pub async fn malformed_json_is_a_decode_error<F: SqlFixture>(db: &F) {
    user_table(db, salary_type(db.dialect())).await;
    insert_row(db, &[("skills", db.dialect().bad_json)]).await;
    assert_decode(db.store().get::<Person>(&1).await, "skills");
}

/// A column of the struct that the table lacks is `Error::Decode` naming it, for a read and for a
/// write.
pub async fn a_missing_column_is_a_decode_error<F: SqlFixture>(db: &F) {
    let d = db.dialect();
    let columns: Vec<String> = d
        .columns
        .iter()
        .filter(|(name, _)| *name != "salary")
        .map(|(name, ty)| format!("{} {ty}{}", d.quoted(name), if *name == "id" { " PRIMARY KEY" } else { "" }))
        .collect();
    db.exec(&format!("CREATE TABLE people ({})", columns.join(", "))).await;
    assert_decode(db.store().get::<Person>(&1).await, "salary");
    assert_decode(db.store().insert(&mut ann()).await, "salary");
}

/// A stored version no version field can hold (negative, or above `i64::MAX` in an unsigned
/// column) is `Error::Decode` naming the column, for a read and for a forced write.
pub async fn a_stored_version_out_of_range_is_a_decode_error<F: SqlFixture>(db: &F) {
    user_table(db, salary_type(db.dialect())).await;
    insert_row(db, &[("version", db.dialect().bad_version)]).await;
    assert_decode(db.store().get::<Person>(&1).await, "version");
    assert_decode(db.store().put_unchecked(&mut ann()).await, "version");
}

/// Every test of this module as a `#[tokio::test]` for one SQL backend: see
/// [the module](crate::conformance::sql).
///
/// The list is kept by hand; `listed.rs`'s unit tests fail when a public test of the module is
/// missing from it.
#[macro_export]
macro_rules! sql_conformance_tests {
    ($make:expr) => {
        $crate::sql_conformance_tests!(@each $make;
            works_on_a_users_own_table_with_other_column_order_and_extra_columns,
            null_in_a_non_option_column_is_a_decode_error,
            wrong_column_type_is_a_decode_error,
            integer_out_of_range_is_a_decode_error,
            malformed_json_is_a_decode_error,
            a_missing_column_is_a_decode_error,
            a_stored_version_out_of_range_is_a_decode_error,
            indexed_fields_get_an_index_created_once,
            // lent.rs
            a_checked_put_and_your_own_insert_commit_together,
            a_conflict_leaves_your_transaction_usable_and_your_rollback_leaves_neither,
            what_a_conflict_leaves_in_your_transaction,
            after_a_conflict_your_commit_keeps_what_succeeded,
            a_refused_batch_rolls_back_only_its_own_savepoint,
            a_batch_on_a_connection_outside_a_transaction_is_atomic,
            locking_reads_need_your_transaction,
            every_typed_operation_runs_on_your_connection,
            rows_of_your_own_queries_decode_with_the_librarys_mapping,
            a_row_missing_or_mistyping_a_column_is_a_decode_error_naming_it,
            a_table_without_a_version_column_is_refused_with_the_statement_that_adds_it,
            a_table_that_does_not_fit_the_struct_is_refused_naming_the_column,
            // revisions.rs
            the_history_follows_the_struct_and_your_own_sql
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {$(
        #[::tokio::test]
        async fn $name() {
            // `None`: the backend is not configured here (a server test without its URL).
            let Some(fixture) = ($make)().await else { return };
            $crate::conformance::sql::$name(&fixture).await;
        }
    )*};
}

/// A struct with two indexed fields.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "indexed_bugs")]
pub struct IndexedBug {
    /// Key.
    #[key]
    pub id: i64,
    /// Indexed text.
    #[versioned(index)]
    pub status: String,
    /// Indexed, nullable.
    #[versioned(index)]
    pub assignee: Option<String>,
    /// Not indexed.
    pub title: String,
    /// Version.
    #[version]
    pub version: u64,
}

/// `#[versioned(index)]` makes `create_table` index the field (with the key, the order a query by
/// the field takes); a second `create_table` changes nothing; the indexed fields still filter.
pub async fn indexed_fields_get_an_index_created_once<F: SqlFixture>(db: &F) {
    let store = db.store();
    store.create_table::<IndexedBug>().await.expect("create");
    store.create_table::<IndexedBug>().await.expect("create again");
    let count = db.dialect().secondary_indexes.replace("{table}", "indexed_bugs");
    assert_eq!(db.text(&count).await, "2");
    let mut bug = IndexedBug { id: 1, status: "open".into(), assignee: None, title: "t".into(), version: 0 };
    store.insert(&mut bug).await.expect("insert");
    let found = store.find::<IndexedBug>().filter(IndexedBug::STATUS.eq("open")).all().await.expect("find");
    assert_eq!(found, vec![bug]);
}
