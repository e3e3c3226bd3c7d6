//! The typed operations on a connection of yours ([`Store::on`](crate::Store::on)), inside your
//! own sqlx transaction or not: what commits with your statements, what a conflict leaves behind,
//! and a refused batch undoing only itself. Run on every SQL backend by
//! [`sql_conformance_tests!`](crate::sql_conformance_tests).

use sqlx::{AssertSqlSafe, Connection as _, Database, IntoArguments};

use super::sql::{IndexedBug, Person, SqlFixture, ann};
use crate::error::Error;
use crate::query::Filter;
use crate::sql_rows::{FromSqlRow, SqlRow};
use crate::storage::{ConnectionOf, Lends, Lent, LockingRead, Storage};
use crate::store::Store;

/// An account, the record of the tests here.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "lent_accounts")]
pub struct Account {
    /// Key.
    #[key]
    pub id: i64,
    /// Who owns it.
    pub owner: String,
    /// The balance.
    pub balance: i64,
    /// Version.
    #[version]
    pub version: u64,
}

fn account(id: i64, balance: i64) -> Account {
    Account { id, owner: format!("owner {id}"), balance, version: 0 }
}

/// The table your own statements write beside the checked writes: an outbox of messages.
const OUTBOX: &str = "CREATE TABLE lent_outbox (record BIGINT NOT NULL, topic VARCHAR(64) NOT NULL)";

/// Runs one statement of yours on `conn` (inside your transaction, when it is in one).
async fn exec<S: Lends>(conn: &mut ConnectionOf<S>, sql: &str)
where
    for<'e> &'e mut ConnectionOf<S>: sqlx::Executor<'e, Database = S::Database>,
{
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The rows of the outbox, as seen outside any transaction.
async fn outbox<F: SqlFixture>(db: &F) -> u64 {
    let text = db.dialect().text;
    let count = db.text(&format!("SELECT CAST(COUNT(*) AS {text}) FROM lent_outbox")).await;
    count.parse().unwrap_or_else(|e| panic!("a count, not {count:?}: {e}"))
}

/// Makes the tables, and stores accounts 1 to `n` with balance 100 each (version 1).
async fn accounts<S: Storage, F: SqlFixture<Storage = S>>(db: &F, n: i64) -> Vec<Account> {
    let store: &Store<S> = db.store();
    store.create_table::<Account>().await.expect("create_table");
    db.exec(OUTBOX).await;
    let mut all = Vec::new();
    for id in 1..=n {
        let mut a = account(id, 100);
        store.insert(&mut a).await.expect("insert");
        all.push(a);
    }
    all
}

/// Someone else writes account `id` (through the store, on another connection): copies read
/// before are stale.
async fn written_by_someone_else<S: Storage>(store: &Store<S>, id: i64) -> Account {
    let mut other = store.get::<Account>(&id).await.expect("get").expect("stored");
    other.balance += 1;
    store.put(&mut other).await.expect("someone else's put");
    other
}

/// The outbox pattern: a checked put and a row of yours, in your one sqlx transaction, commit
/// together; neither is visible before your commit.
pub async fn a_checked_put_and_your_own_insert_commit_together<F>(db: &F)
where
    F: SqlFixture<Storage: Lends>,
    for<'x> Lent<'x, F::Storage>: LockingRead,
    for<'e> &'e mut ConnectionOf<F::Storage>: sqlx::Executor<'e, Database = <F::Storage as Lends>::Database>,
{
    let store = db.store();
    accounts(db, 1).await;
    let mut tx = store.backend().pool().begin().await.expect("your begin");
    let mut a = Account::get(&store.on(&mut *tx), &1).await.expect("get").expect("stored");
    a.balance -= 30;
    a.put(&store.on(&mut *tx)).await.expect("checked put in your transaction");
    assert_eq!(a.version, 2);
    exec::<F::Storage>(&mut tx, "INSERT INTO lent_outbox (record, topic) VALUES (1, 'account.debited')").await;
    assert_eq!(store.get::<Account>(&1).await.expect("get").expect("stored").version, 1, "not visible before commit");
    assert_eq!(outbox(db).await, 0, "not visible before commit");
    tx.commit().await.expect("your commit");
    assert_eq!(store.get::<Account>(&1).await.expect("get"), Some(a), "the put committed with your transaction");
    assert_eq!(outbox(db).await, 1, "your row committed with it");
}

/// A conflict inside your transaction is an error with the stored record, and leaves the
/// transaction usable (on PostgreSQL, reading the stored record aborts nothing): your next
/// statement runs. Your rollback then leaves neither your row nor the write.
pub async fn a_conflict_leaves_your_transaction_usable_and_your_rollback_leaves_neither<F>(db: &F)
where
    F: SqlFixture<Storage: Lends>,
    for<'x> Lent<'x, F::Storage>: LockingRead,
    for<'e> &'e mut ConnectionOf<F::Storage>: sqlx::Executor<'e, Database = <F::Storage as Lends>::Database>,
{
    let store = db.store();
    let mut stale = accounts(db, 1).await.remove(0);
    let theirs = written_by_someone_else(store, 1).await;
    let mut tx = store.backend().pool().begin().await.expect("your begin");
    exec::<F::Storage>(&mut tx, "INSERT INTO lent_outbox (record, topic) VALUES (1, 'account.debited')").await;
    stale.balance -= 30;
    match stale.put(&store.on(&mut *tx)).await {
        Err(Error::ConcurrentModification { expected: 1, actual: Some(2), current: Some(_), .. }) => {}
        other => panic!("expected a conflict with the stored record, got {other:?}"),
    }
    assert_eq!(stale.version, 1, "the refused copy is unchanged");
    // The transaction goes on: a statement of yours, and a read through the store's operations.
    exec::<F::Storage>(&mut tx, "INSERT INTO lent_outbox (record, topic) VALUES (1, 'account.retried')").await;
    assert_eq!(Account::get(&store.on(&mut *tx), &1).await.expect("get in your transaction"), Some(theirs.clone()));
    tx.rollback().await.expect("your rollback");
    assert_eq!(outbox(db).await, 0, "your rollback left none of your rows");
    assert_eq!(store.get::<Account>(&1).await.expect("get"), Some(theirs), "the stored record is the other writer's");
}

/// What a refused write leaves in your transaction besides the error, on each database: nothing
/// written, and the locks of an `UPDATE` that found the row. PostgreSQL locks only the rows an
/// `UPDATE` changes: the record stays free for other transactions. InnoDB (MySQL, MariaDB) at
/// `REPEATABLE READ` keeps the lock on every row an `UPDATE` examined, so the record stays locked
/// until your transaction ends. SQLite's transaction holds the database's write lock from its
/// first write, a refused one included.
pub async fn what_a_conflict_leaves_in_your_transaction<F>(db: &F)
where
    F: SqlFixture<Storage: Lends>,
    for<'x> Lent<'x, F::Storage>: LockingRead,
    for<'e> &'e mut ConnectionOf<F::Storage>: sqlx::Executor<'e, Database = <F::Storage as Lends>::Database>,
{
    use crate::migrations::SqlDialect;
    let store = db.store();
    let mut stale = accounts(db, 1).await.remove(0);
    written_by_someone_else(store, 1).await;
    let pool = store.backend().pool();
    let mut tx = pool.begin().await.expect("your begin");
    stale.balance = 0;
    assert!(matches!(stale.put(&store.on(&mut *tx)).await, Err(Error::ConcurrentModification { .. })));
    let mut other = pool.acquire().await.expect("another connection");
    match db.sql_dialect() {
        #[cfg(feature = "sqlite")]
        SqlDialect::Sqlite => {
            exec::<F::Storage>(&mut other, "PRAGMA busy_timeout = 0").await;
            let write = sqlx::raw_sql(AssertSqlSafe("UPDATE lent_outbox SET topic = topic".to_owned()));
            let refused = write.execute(&mut *other).await;
            assert!(refused.is_err(), "your transaction holds the write lock after a refused write");
            exec::<F::Storage>(&mut other, "PRAGMA busy_timeout = 5000").await;
        }
        #[cfg(feature = "postgres")]
        SqlDialect::Postgres => {
            let mut theirs = other.begin().await.expect("their begin");
            let free = store.on(&mut *theirs).get_for_update_nowait::<Account>(&1).await;
            assert!(matches!(free, Ok(Some(_))), "the record is not locked: {free:?}");
            theirs.rollback().await.expect("their rollback");
        }
        #[cfg(feature = "mysql")]
        SqlDialect::MariaDb | SqlDialect::Mysql8 => {
            let mut theirs = other.begin().await.expect("their begin");
            let locked = store.on(&mut *theirs).get_for_update_nowait::<Account>(&1).await;
            assert!(matches!(locked, Err(Error::LockTimeout { .. })), "the record stays locked: {locked:?}");
            theirs.rollback().await.expect("their rollback");
        }
    }
    drop(other);
    tx.rollback().await.expect("your rollback");
    let mut fresh = store.get::<Account>(&1).await.expect("get").expect("stored");
    fresh.balance = 1;
    store.put(&mut fresh).await.expect("free again once your transaction ended");
}

/// After a conflict you may still commit: what succeeded before and after it commits, and the
/// refused write is not there.
pub async fn after_a_conflict_your_commit_keeps_what_succeeded<F>(db: &F)
where
    F: SqlFixture<Storage: Lends>,
    for<'x> Lent<'x, F::Storage>: LockingRead,
    for<'e> &'e mut ConnectionOf<F::Storage>: sqlx::Executor<'e, Database = <F::Storage as Lends>::Database>,
{
    let store = db.store();
    let mut all = accounts(db, 2).await;
    let mut stale = all.remove(1);
    let mut fresh = all.remove(0);
    let theirs = written_by_someone_else(store, 2).await;
    let mut tx = store.backend().pool().begin().await.expect("your begin");
    fresh.balance = 1;
    fresh.put(&store.on(&mut *tx)).await.expect("a fresh copy's put");
    stale.balance = 2;
    let refused = stale.put(&store.on(&mut *tx)).await;
    assert!(matches!(refused, Err(Error::ConcurrentModification { .. })), "{refused:?}");
    exec::<F::Storage>(&mut tx, "INSERT INTO lent_outbox (record, topic) VALUES (1, 'account.updated')").await;
    tx.commit().await.expect("your commit after a conflict");
    assert_eq!(store.get::<Account>(&1).await.expect("get"), Some(fresh));
    assert_eq!(store.get::<Account>(&2).await.expect("get"), Some(theirs));
    assert_eq!(outbox(db).await, 1);
}

/// A batch inside your transaction runs in a savepoint of its own: refused, it undoes only itself,
/// and the rest of your transaction (a write before it) commits.
pub async fn a_refused_batch_rolls_back_only_its_own_savepoint<F>(db: &F)
where
    F: SqlFixture<Storage: Lends>,
    for<'x> Lent<'x, F::Storage>: LockingRead,
    for<'e> &'e mut ConnectionOf<F::Storage>: sqlx::Executor<'e, Database = <F::Storage as Lends>::Database>,
{
    let store = db.store();
    let mut all = accounts(db, 3).await;
    written_by_someone_else(store, 3).await;
    let mut tx = store.backend().pool().begin().await.expect("your begin");
    all[0].balance = 7;
    all[0].put(&store.on(&mut *tx)).await.expect("a put before the batch");
    let mut batch = all[1..].to_vec();
    for a in &mut batch {
        a.balance = 0;
    }
    match store.on(&mut *tx).put_all(&mut batch).await {
        Err(Error::Conflicts { conflicts, .. }) => assert_eq!(conflicts.len(), 1, "{conflicts:?}"),
        other => panic!("expected the batch refused, got {other:?}"),
    }
    assert_eq!(batch[0].version, 1, "a refused batch leaves its copies unchanged");
    let on = store.on(&mut *tx);
    assert_eq!(Account::get(&on, &2).await.expect("get").expect("stored").balance, 100, "the batch undid itself");
    assert_eq!(Account::get(&on, &1).await.expect("get").expect("stored").balance, 7, "the write before it stays");
    // A batch that passes is part of your transaction.
    let mut second = vec![all[1].clone()];
    second[0].balance = 5;
    on.put_all(&mut second).await.expect("a batch that passes");
    tx.commit().await.expect("your commit");
    assert_eq!(store.get::<Account>(&1).await.expect("get").expect("stored").balance, 7);
    assert_eq!(store.get::<Account>(&2).await.expect("get"), Some(second[0].clone()));
    assert_eq!(store.get::<Account>(&3).await.expect("get").expect("stored").balance, 101, "the other writer's");
}

/// On a pooled connection outside any transaction, a batch is a transaction of its own: all or
/// none, and the connection is left outside any transaction.
pub async fn a_batch_on_a_connection_outside_a_transaction_is_atomic<F>(db: &F)
where
    F: SqlFixture<Storage: Lends>,
    for<'x> Lent<'x, F::Storage>: LockingRead,
    for<'e> &'e mut ConnectionOf<F::Storage>: sqlx::Executor<'e, Database = <F::Storage as Lends>::Database>,
{
    let store = db.store();
    let mut all = accounts(db, 2).await;
    written_by_someone_else(store, 2).await;
    let mut conn = store.backend().pool().acquire().await.expect("a connection");
    for a in &mut all {
        a.balance = 0;
    }
    let refused = store.on(&mut *conn).put_all(&mut all).await;
    assert!(matches!(refused, Err(Error::Conflicts { .. })), "{refused:?}");
    assert_eq!(store.get::<Account>(&1).await.expect("get").expect("stored").balance, 100, "none of the batch");
    assert!(!conn.is_in_transaction(), "the connection is left outside any transaction");
    let mut fresh = vec![store.get::<Account>(&1).await.expect("get").expect("stored")];
    fresh[0].balance = 9;
    store.on(&mut *conn).put_all(&mut fresh).await.expect("a batch that passes commits at once");
    assert!(!conn.is_in_transaction());
    assert_eq!(store.get::<Account>(&1).await.expect("get"), Some(fresh[0].clone()), "seen on another connection");
}

/// A locking read is refused outside a transaction, where its lock would end with the
/// statement; inside yours it locks until your transaction ends (where the backend locks rows).
pub async fn locking_reads_need_your_transaction<F>(db: &F)
where
    F: SqlFixture<Storage: Lends>,
    for<'x> Lent<'x, F::Storage>: LockingRead,
    for<'e> &'e mut ConnectionOf<F::Storage>: sqlx::Executor<'e, Database = <F::Storage as Lends>::Database>,
{
    let store = db.store();
    accounts(db, 1).await;
    let pool = store.backend().pool();
    let mut conn = pool.acquire().await.expect("a connection");
    let on = store.on(&mut *conn);
    let refused = on.get_for_update::<Account>(&1).await;
    assert!(matches!(refused, Err(Error::NoTransaction { operation: "get_for_update" })), "{refused:?}");
    let refused = Account::find(&on).for_update().all().await;
    assert!(matches!(refused, Err(Error::NoTransaction { .. })), "{refused:?}");
    // Back to the pool: a small pool has connections for two transactions.
    drop(conn);
    let mut tx = pool.begin().await.expect("your begin");
    let locked = store.on(&mut *tx).get_for_update::<Account>(&1).await.expect("get_for_update in your transaction");
    assert_eq!(locked.map(|a| a.version), Some(1));
    let found = Account::find(&store.on(&mut *tx)).for_update().all().await.expect("find for_update");
    assert_eq!(found.len(), 1);
    if store.backend().capabilities().locks_records {
        let mut other = pool.begin().await.expect("another transaction");
        let waited = store.on(&mut *other).get_for_update_nowait::<Account>(&1).await;
        assert!(matches!(waited, Err(Error::LockTimeout { .. })), "the record is locked: {waited:?}");
        // Ended, not dropped: MySQL keeps a table's metadata lock until the transaction ends.
        other.rollback().await.expect("the other rollback");
    }
    tx.rollback().await.expect("your rollback");
}

/// Every typed operation runs on your connection, sees your transaction's own writes, and is
/// undone with it.
pub async fn every_typed_operation_runs_on_your_connection<F>(db: &F)
where
    F: SqlFixture<Storage: Lends>,
    for<'x> Lent<'x, F::Storage>: LockingRead,
    for<'e> &'e mut ConnectionOf<F::Storage>: sqlx::Executor<'e, Database = <F::Storage as Lends>::Database>,
{
    let store = db.store();
    accounts(db, 1).await;
    let mut tx = store.backend().pool().begin().await.expect("your begin");
    let on = store.on(&mut *tx);
    let mut new = account(10, 5);
    new.insert(&on).await.expect("insert");
    assert_eq!(new.version, 1);
    assert_eq!(Account::get(&on, &10).await.expect("get"), Some(new.clone()), "your transaction sees its write");
    let mut saved = account(11, 6);
    saved.save(&on).await.expect("save of a new copy");
    saved.balance = 60;
    saved.save(&on).await.expect("save of a stored copy");
    assert_eq!(saved.version, 2);
    let patched =
        on.patch::<Account>(&10, AccountPatch { balance: Some(50), ..Default::default() }, crate::Check::Version(1));
    assert_eq!(patched.await.expect("patch").balance, 50);
    let mut unchecked = account(1, 0);
    on.put_unchecked(&mut unchecked).await.expect("put_unchecked");
    assert_eq!(unchecked.version, 2);
    assert_eq!(Account::get_with_version(&on, &1, 2).await.expect("get_with_version").balance, 0);
    let listed = Account::find(&on).order_by(Account::ID.asc()).all().await.expect("find");
    assert_eq!(listed.iter().map(|a| a.id).collect::<Vec<_>>(), [1, 10, 11], "queries see your writes");
    let counted = Account::find(&on).filter(Account::BALANCE.ge(50)).count().await.expect("count");
    assert_eq!(counted, 2);
    let changed =
        on.patch_where(Account::BALANCE.ge(50), AccountPatch { owner: Some("x".into()), ..Default::default() });
    assert_eq!(changed.await.expect("patch_where"), 2);
    assert_eq!(on.get_many::<Account, _>(&[10, 12]).await.expect("get_many")[1], None);
    let copy = Account::get(&on, &11).await.expect("get").expect("stored");
    copy.delete(&on).await.expect("delete");
    let mut batch = vec![account(20, 1), account(21, 2)];
    on.insert_all(&mut batch).await.expect("insert_all");
    assert_eq!(batch.iter().map(|a| a.version).collect::<Vec<_>>(), [1, 1]);
    on.touch(&mut batch[0]).await.expect("touch");
    assert_eq!(batch[0].version, 2);
    let mut behind = batch[0].clone();
    behind.balance = 99;
    on.refresh(&mut behind).await.expect("refresh");
    assert_eq!((behind.balance, behind.version), (1, 2), "refresh reads your transaction's copy");
    on.delete_all(&batch).await.expect("delete_all");
    assert_eq!(on.get::<Account>(&20).await.expect("get"), None);
    let mut gone = account(22, 3);
    gone.insert(&on).await.expect("insert");
    on.delete_with_version::<Account>(&22, 1).await.expect("delete_with_version");
    assert!(!on.delete_unchecked::<Account>(&22).await.expect("delete_unchecked of a deleted record"));
    assert_eq!(on.delete_where(Filter::<Account>::all()).await.expect("delete_where"), 2);
    assert_eq!(store.get::<Account>(&1).await.expect("get").expect("stored").balance, 100, "not committed yet");
    tx.rollback().await.expect("your rollback");
    assert_eq!(store.find::<Account>().count().await.expect("count"), 1, "your rollback undid every write");
    assert_eq!(store.get::<Account>(&1).await.expect("get").expect("stored").version, 1);
}

/// The rows of `sql`, a query of yours, run as an application runs its own (prepared, on a
/// pooled connection).
async fn your_rows<S: Lends>(store: &Store<S>, sql: String) -> Vec<<S::Database as Database>::Row>
where
    for<'e> &'e mut ConnectionOf<S>: sqlx::Executor<'e, Database = S::Database>,
    <S::Database as Database>::Arguments: IntoArguments<S::Database>,
{
    let mut conn = store.backend().pool().acquire().await.expect("a connection");
    let query = sqlx::query(AssertSqlSafe(sql.clone()));
    query.fetch_all(&mut *conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A row of your own `SELECT … JOIN …` decodes into the struct with the library's mapping — JSON,
/// timestamps, floats, bytes and `Option`s as each backend stores them — when it selects the
/// struct's columns as `sql_columns` writes them, beside columns of its own.
pub async fn rows_of_your_own_queries_decode_with_the_librarys_mapping<F>(db: &F)
where
    F: SqlFixture<Storage: Lends>,
    <<F::Storage as Lends>::Database as Database>::Row: SqlRow,
    for<'e> &'e mut ConnectionOf<F::Storage>: sqlx::Executor<'e, Database = <F::Storage as Lends>::Database>,
    <<F::Storage as Lends>::Database as Database>::Arguments: IntoArguments<<F::Storage as Lends>::Database>,
{
    let store = db.store();
    store.create_table::<Person>().await.expect("create_table");
    db.exec(OUTBOX).await;
    let mut stored = ann();
    store.insert(&mut stored).await.expect("insert");
    db.exec("INSERT INTO lent_outbox (record, topic) VALUES (1, 'person.hired')").await;
    let sql = format!(
        "SELECT {}, o.topic FROM people p JOIN lent_outbox o ON o.record = p.id",
        Person::sql_columns(db.sql_dialect(), "p")
    );
    let rows = your_rows(store, sql).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(Person::from_sql_row(&rows[0]).expect("decode your row"), stored, "every field as the store reads it");
    // Without an alias, and in another column order.
    let sql = format!("SELECT 'extra' AS extra, {} FROM people", Person::sql_columns(db.sql_dialect(), ""));
    let rows = your_rows(store, sql).await;
    assert_eq!(Person::from_sql_row(&rows[0]).expect("decode"), stored);
}

/// A row that lacks one of the struct's columns, or holds a value its field cannot, is
/// `Error::Decode` naming the table and that column.
pub async fn a_row_missing_or_mistyping_a_column_is_a_decode_error_naming_it<F>(db: &F)
where
    F: SqlFixture<Storage: Lends>,
    <<F::Storage as Lends>::Database as Database>::Row: SqlRow,
    for<'e> &'e mut ConnectionOf<F::Storage>: sqlx::Executor<'e, Database = <F::Storage as Lends>::Database>,
    <<F::Storage as Lends>::Database as Database>::Arguments: IntoArguments<<F::Storage as Lends>::Database>,
{
    let store = db.store();
    accounts(db, 1).await;
    let q = |name: &str| db.dialect().quoted(name);
    let sql = format!("SELECT {}, {} FROM lent_accounts", q("id"), q("owner"));
    match Account::from_sql_row(&your_rows(store, sql).await[0]) {
        Err(Error::Decode { table: "lent_accounts", column: "balance", reason }) => {
            assert!(reason.contains("sql_columns"), "says how to select it: {reason}");
        }
        other => panic!("expected Decode of lent_accounts.balance, got {other:?}"),
    }
    let sql =
        format!("SELECT {}, {}, 'many' AS {}, {} FROM lent_accounts", q("id"), q("owner"), q("balance"), q("version"));
    match Account::from_sql_row(&your_rows(store, sql).await[0]) {
        Err(Error::Decode { table: "lent_accounts", column: "balance", .. }) => {}
        other => panic!("expected Decode of lent_accounts.balance, got {other:?}"),
    }
}

/// Putting a table of yours under versioning: a table without the version column is refused
/// before anything is read or written, with the statement that adds it; once it has run, every
/// existing row is at version 1 and checked writes work.
pub async fn a_table_without_a_version_column_is_refused_with_the_statement_that_adds_it<F: SqlFixture>(db: &F) {
    let store = db.store();
    db.exec("CREATE TABLE lent_accounts (id BIGINT NOT NULL PRIMARY KEY, owner VARCHAR(255) NOT NULL, balance BIGINT NOT NULL)")
        .await;
    db.exec("INSERT INTO lent_accounts (id, owner, balance) VALUES (1, 'Amy', 100)").await;
    let reason = match store.get::<Account>(&1).await {
        Err(Error::Decode { table: "lent_accounts", column: "version", reason }) => reason,
        other => panic!("expected Decode of lent_accounts.version, got {other:?}"),
    };
    let at = reason.find("ALTER TABLE").unwrap_or_else(|| panic!("no statement in {reason:?}"));
    let statement = &reason[at..];
    assert!(statement.ends_with("NOT NULL DEFAULT 1"), "{statement}");
    db.exec(statement).await;
    let mut amy = store.get::<Account>(&1).await.expect("get").expect("stored");
    assert_eq!((amy.owner.as_str(), amy.balance, amy.version), ("Amy", 100, 1), "existing rows start at version 1");
    let mut stale = amy.clone();
    amy.balance = 90;
    store.put(&mut amy).await.expect("a checked put");
    stale.balance = 80;
    assert!(matches!(store.put(&mut stale).await, Err(Error::ConcurrentModification { .. })));
}

/// A table that lacks a field's column is refused naming it, with the statement that adds it;
/// a column declared with a type the field cannot hold is refused naming the declared type and
/// what the field needs.
pub async fn a_table_that_does_not_fit_the_struct_is_refused_naming_the_column<F>(db: &F)
where
    F: SqlFixture<Storage: Lends>,
    for<'x> Lent<'x, F::Storage>: LockingRead,
{
    let store = db.store();
    db.exec("CREATE TABLE lent_accounts (id BIGINT NOT NULL PRIMARY KEY, owner VARCHAR(255) NOT NULL, version BIGINT NOT NULL)")
        .await;
    // Checked on your connection too, before anything is read.
    let mut conn = store.backend().pool().acquire().await.expect("a connection");
    match Account::get(&store.on(&mut *conn), &1).await {
        Err(Error::Decode { table: "lent_accounts", column: "balance", reason }) => {
            assert!(reason.contains("ADD COLUMN"), "{reason}");
        }
        other => panic!("expected Decode of lent_accounts.balance on your connection, got {other:?}"),
    }
    drop(conn);
    // A mismatch found in a transaction of the store leaves it usable (the server failed nothing).
    store.create_table::<IndexedBug>().await.expect("create_table");
    let read = store
        .transaction(|tx| async move {
            let refused = tx.get::<Account>(&1).await;
            assert!(matches!(refused, Err(Error::Decode { column: "balance", .. })), "{refused:?}");
            tx.get::<IndexedBug>(&1).await
        })
        .await;
    assert!(matches!(read, Ok(None)), "the transaction goes on after the mismatch: {read:?}");
    match store.get::<Account>(&1).await {
        Err(Error::Decode { table: "lent_accounts", column: "balance", reason }) => {
            assert!(reason.contains("ADD COLUMN") && reason.contains("balance"), "{reason}");
        }
        other => panic!("expected Decode of lent_accounts.balance, got {other:?}"),
    }
    db.exec("DROP TABLE lent_accounts").await;
    db.exec(
        "CREATE TABLE lent_accounts (id BIGINT NOT NULL PRIMARY KEY, owner VARCHAR(255) NOT NULL, balance TEXT, \
         version BIGINT NOT NULL)",
    )
    .await;
    let mut amy = account(1, 5);
    match store.insert(&mut amy).await {
        Err(Error::Decode { table: "lent_accounts", column: "balance", reason }) => {
            assert!(reason.to_ascii_lowercase().contains("text") && reason.contains("declare it"), "{reason}");
        }
        other => panic!("expected Decode of lent_accounts.balance, got {other:?}"),
    }
    assert_eq!(db.text(&format!("SELECT CAST(COUNT(*) AS {}) FROM lent_accounts", db.dialect().text)).await, "0");
}
