//! Group commit: the autocommit writes of many tasks that arrive together run in one
//! transaction, on one connection, with one commit (one `fsync` of the WAL).
//!
//! Every autocommit write is a [`Request`] with the row it writes, sent to one writer task per
//! storage. The writer takes what has queued up, and every write keeps its own check and its own
//! outcome (a conflict refuses that write only):
//!
//! - a request alone runs in autocommit, exactly as it would without the writer;
//! - consecutive checked updates (inserts, checked deletes) of one table, each to another record,
//!   go in one statement, the batch statement of `put_all` (`UPDATE … FROM (VALUES …) RETURNING
//!   key`): one round trip to SQLite's thread for the lot. A batch that is one such statement
//!   runs as it is, in autocommit: a statement is atomic by itself;
//! - any other batch runs inside `BEGIN IMMEDIATE … COMMIT`. Outcomes are sent back once the
//!   commit is done; if it fails, every write of the batch gets the error and none is applied.
//!
//! A write that fails by itself (an error, not a refused check) takes the batch down with it in
//! SQLite's eyes (some errors roll the whole transaction back), so the batch is rolled back, that
//! write gets its error, and the others run again as a new batch: a write is never reported as
//! failed once applied, nor applied after being reported failed. A statement of several writes
//! that fails does not say which write failed: the batch is rolled back and written again one
//! statement per write, which finds it.
//!
//! A caller that stops waiting (its future dropped) before the writer takes its request is not
//! written at all; once taken, the write is applied whole or not at all, like any autocommit
//! statement whose caller went away.
//!
//! The writer runs on a thread of its own (with a single-threaded tokio runtime), so it never
//! depends on the runtime of whoever wrote first being driven.

use std::sync::{Arc, Mutex, PoisonError};

use sqlx::Sqlite;
use sqlx::pool::PoolConnection;
use tokio::sync::{mpsc, oneshot};

use super::{TableState, storage_error};
use crate::entity::TableDef;
use crate::error::{Error, Result, StorageError};
use crate::storage::WriteOutcome;
use crate::storage::sql::driver::Conn;
use crate::storage::sql::rows::OnConnection;
use crate::storage::sql::{Batch, Tables};
use crate::value::{Row, Value};

/// The most writes one commit carries: enough to amortize the commit, few enough that the first
/// caller of a batch does not wait long for the last.
const MAX_BATCH: usize = 256;

/// One autocommit write.
pub(super) enum Op {
    Insert(Row),
    Update(Row, u64),
    Upsert(Row),
    Patch(Value, Vec<(usize, Value)>, u64),
    Delete(Value, Option<u64>),
}

/// What a write did, by kind.
pub(super) enum Done {
    Inserted(bool),
    Written(WriteOutcome),
    Upserted(Option<u64>),
}

struct Request {
    table: &'static TableDef,
    op: Op,
    reply: oneshot::Sender<Result<Done>>,
}

/// What the writer task needs of the storage (not the storage itself: the task must end when
/// the last handle of the storage is dropped, which closes its queue).
pub(super) struct Core {
    pub(super) pool: sqlx::SqlitePool,
    pub(super) tables: Tables<TableState>,
}

/// The queue to the writer thread, started with the first write (and again if it ended).
#[derive(Debug, Clone, Default)]
pub(super) struct GroupCommit(Arc<Mutex<Option<mpsc::UnboundedSender<Request>>>>);

impl GroupCommit {
    /// Runs `op` through the writer of the storage; `core` makes what a writer needs, only when
    /// one has to be started.
    pub(super) async fn write(&self, core: impl FnOnce() -> Core, table: &'static TableDef, op: Op) -> Result<Done> {
        let (reply, done) = oneshot::channel();
        self.sender(core)?
            .send(Request { table, op, reply })
            .map_err(|_| StorageError::new("the SQLite writer task has stopped"))?;
        done.await.map_err(|_| StorageError::new("the SQLite writer task stopped before answering"))?
    }

    fn sender(&self, core: impl FnOnce() -> Core) -> Result<mpsc::UnboundedSender<Request>> {
        // Only a send and a clone happen under this lock.
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(sender.clone());
        }
        let (sender, queue) = mpsc::unbounded_channel();
        let core = core();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StorageError::new(format!("cannot start the SQLite writer's runtime: {e}")))?;
        std::thread::Builder::new()
            .name("versioned-sqlite-writer".into())
            .spawn(move || runtime.block_on(run(core, queue)))
            .map_err(|e| StorageError::new(format!("cannot start the SQLite writer thread: {e}")))?;
        *slot = Some(sender.clone());
        Ok(sender)
    }
}

/// The writer task: takes what has queued up, writes it, answers; until every storage handle is
/// gone.
async fn run(core: Core, mut queue: mpsc::UnboundedReceiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        // Callers that stopped waiting before their write was taken: not written.
        batch.retain(|r| !r.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        // A connection per batch, back to the pool after it: the pool can close, and readers
        // are never one connection short while no write is running.
        match core.pool.acquire().await {
            Ok(mut conn) => {
                // A connection left in an unknown state is not reused.
                if !write_batch(&core, &mut conn, &mut batch).await {
                    conn.close_on_drop();
                }
            }
            Err(err) => answer_all(&mut batch, &storage_error(None, err)),
        }
    }
}

/// Writes `batch` on `conn` and answers every request. Returns whether the connection is fit for
/// the next batch.
async fn write_batch(core: &Core, conn: &mut PoolConnection<Sqlite>, batch: &mut Vec<Request>) -> bool {
    // Runs of writes of one kind to one table go in one statement each, until one fails.
    let mut merge = true;
    loop {
        if batch.len() == 1 {
            // Alone: autocommit, as without group commit.
            let request = batch.remove(0);
            let done = execute(core, conn, request.table, &request.op).await;
            let _ = request.reply.send(done);
            return true;
        }
        if merge && mergeable(core, batch) == batch.len() {
            // One statement: atomic by itself, so it runs in autocommit, one round trip and one
            // commit for the batch.
            match execute_run(core, conn, batch).await {
                Ok(outcomes) => {
                    for (request, done) in batch.drain(..).zip(outcomes) {
                        let _ = request.reply.send(done);
                    }
                    return true;
                }
                // Nothing written: again one statement per write, which finds the one that failed.
                Err(_) => merge = false,
            }
            continue;
        }
        if let Err(err) = sqlx::query("BEGIN IMMEDIATE").execute(&mut **conn).await {
            let busy = super::is_busy(&err);
            answer_all(batch, &begin_error(err));
            // Any other refusal may mean the connection is already inside a transaction.
            return busy;
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut failed = None;
        let mut merged_failed = false;
        while outcomes.len() < batch.len() {
            let index = outcomes.len();
            let run = if merge { mergeable(core, &batch[index..]) } else { 1 };
            if run > 1 {
                match execute_run(core, conn, &batch[index..index + run]).await {
                    Ok(done) if done.iter().all(Result::is_ok) => outcomes.extend(done),
                    _ => {
                        merged_failed = true;
                        break;
                    }
                }
                continue;
            }
            let request = &batch[index];
            let done = execute(core, conn, request.table, &request.op).await;
            if done.is_err() {
                failed = Some((index, done));
                break;
            }
            outcomes.push(done);
        }
        if merged_failed {
            // Which write failed is not known: roll back, and write the batch again one
            // statement per write, which finds it.
            merge = false;
            if sqlx::query("ROLLBACK").execute(&mut **conn).await.is_err() && !rolled_back(conn).await {
                answer_all(batch, &StorageError::new("the SQLite writer could not roll back a batch").into());
                return false;
            }
            continue;
        }
        if let Some((index, done)) = failed {
            // Some errors roll back the whole transaction; roll back in every case, answer the
            // write that failed, and write the others again without it.
            if sqlx::query("ROLLBACK").execute(&mut **conn).await.is_err() && !rolled_back(conn).await {
                let request = batch.remove(index);
                let _ = request.reply.send(done);
                answer_all(batch, &StorageError::new("the SQLite writer could not roll back a batch").into());
                return false;
            }
            let request = batch.remove(index);
            let _ = request.reply.send(done);
            if batch.is_empty() {
                return true;
            }
            continue;
        }
        return match sqlx::query("COMMIT").execute(&mut **conn).await {
            Ok(_) => {
                for (request, done) in batch.drain(..).zip(outcomes) {
                    let _ = request.reply.send(done);
                }
                true
            }
            Err(err) => {
                let err = storage_error(None, err);
                let fit = sqlx::query("ROLLBACK").execute(&mut **conn).await.is_ok() || rolled_back(conn).await;
                answer_all(batch, &err);
                fit
            }
        };
    }
}

/// Whether `conn` is outside any transaction (a `ROLLBACK` that failed because the transaction
/// was already gone): `BEGIN` succeeds only there, and is undone at once.
async fn rolled_back(conn: &mut PoolConnection<Sqlite>) -> bool {
    sqlx::query("BEGIN").execute(&mut **conn).await.is_ok()
        && sqlx::query("ROLLBACK").execute(&mut **conn).await.is_ok()
}

/// One write on `conn`, checked as the statement of its kind is.
async fn execute(core: &Core, conn: &mut PoolConnection<Sqlite>, table: &'static TableDef, op: &Op) -> Result<Done> {
    let state = super::table_state(&core.tables, table);
    state.check_schema(conn, table).await?;
    let on = &mut OnConnection { conn: &mut Conn::<Sqlite>(&mut **conn), table, statements: &state.sql };
    Ok(match op {
        Op::Insert(row) => Done::Inserted(on.insert(row).await?),
        Op::Update(row, expected) => Done::Written(on.update(row, *expected).await?),
        Op::Upsert(row) => Done::Upserted(on.upsert(row).await?),
        Op::Patch(key, columns, expected) => Done::Written(on.patch(key, columns, *expected).await?),
        Op::Delete(key, expected) => Done::Written(on.delete(key, *expected).await?),
    })
}

/// The batch statement a write can share with others of its kind: checked updates, inserts and
/// checked deletes.
fn batch_kind(op: &Op) -> Option<Batch> {
    match op {
        Op::Update(..) => Some(Batch::Update),
        Op::Insert(_) => Some(Batch::Insert),
        Op::Delete(_, Some(_)) => Some(Batch::Delete),
        _ => None,
    }
}

/// The record a write of [`batch_kind`] is about.
fn key_of<'r>(table: &TableDef, op: &'r Op) -> Option<&'r Value> {
    match op {
        Op::Update(row, _) | Op::Insert(row) => table.key_of(row).ok(),
        Op::Delete(key, _) => Some(key),
        _ => None,
    }
}

/// How many writes from the start of `requests` go in one statement: writes of one
/// [`batch_kind`] to one table, each to another record (a batch statement names a key once), at
/// most a chunk of the dialect's. 0 or 1: none to share a statement with.
fn mergeable(core: &Core, requests: &[Request]) -> usize {
    let Some(first) = requests.first() else { return 0 };
    let Some(kind) = batch_kind(&first.op) else { return 1 };
    let Some(chunk) = super::table_state(&core.tables, first.table).sql.chunk(kind) else { return 1 };
    let mut keys: Vec<&Value> = Vec::new();
    for request in requests.iter().take(chunk) {
        let same = std::ptr::eq(request.table, first.table) && batch_kind(&request.op) == Some(kind);
        match key_of(first.table, &request.op).filter(|key| same && !keys.contains(key)) {
            Some(key) => keys.push(key),
            None => break,
        }
    }
    keys.len().max(1)
}

/// A run of [`mergeable`] writes as one statement. `Err`: the statement failed, and wrote nothing.
/// Otherwise each write's outcome: a refused check reads the stored record to describe it, and
/// that read may fail on its own (its write was not applied).
async fn execute_run(core: &Core, conn: &mut PoolConnection<Sqlite>, run: &[Request]) -> Result<Vec<Result<Done>>> {
    let table = run[0].table;
    let state = super::table_state(&core.tables, table);
    state.check_schema(conn, table).await?;
    let on = &mut OnConnection { conn: &mut Conn::<Sqlite>(&mut **conn), table, statements: &state.sql };
    // `mergeable` put writes of one kind in the run.
    let returned = match &run[0].op {
        Op::Update(..) => {
            let rows: Vec<_> = run
                .iter()
                .filter_map(|r| if let Op::Update(row, e) = &r.op { Some((row, *e)) } else { None })
                .collect();
            on.update_chunk(&rows).await?
        }
        Op::Insert(_) => {
            let rows: Vec<_> =
                run.iter().filter_map(|r| if let Op::Insert(row) = &r.op { Some(row) } else { None }).collect();
            on.insert_chunk(&rows).await?
        }
        _ => {
            let keys: Vec<_> = run
                .iter()
                .filter_map(|r| if let Op::Delete(key, Some(e)) = &r.op { Some((key, *e)) } else { None })
                .collect();
            on.delete_chunk(&keys).await?
        }
    };
    let mut outcomes = Vec::with_capacity(run.len());
    for request in run {
        let key = key_of(table, &request.op).ok_or_else(|| StorageError::new("a merged write without a key"))?;
        outcomes.push(match request.op {
            Op::Insert(_) => Ok(Done::Inserted(returned.len() == run.len() || returned.contains(key))),
            _ => on.applied_or_current(&returned, run.len(), key).await.map(Done::Written),
        });
    }
    Ok(outcomes)
}

/// `BEGIN IMMEDIATE` refused: another connection held the write lock past the busy timeout.
fn begin_error(err: sqlx::Error) -> Error {
    if super::is_busy(&err) { Error::LockTimeout { table: None, key: None } } else { storage_error(None, err) }
}

fn answer_all(batch: &mut Vec<Request>, err: &Error) {
    for request in batch.drain(..) {
        let _ = request.reply.send(Err(copy_of(err)));
    }
}

/// The same failure for another caller of the batch: errors are not `Clone` (they carry the
/// driver's error), so each caller gets one saying the same, retryable as the original.
fn copy_of(err: &Error) -> Error {
    match err {
        Error::LockTimeout { table, key } => Error::LockTimeout { table: *table, key: key.clone() },
        other if other.is_retryable() => StorageError::retryable(other.to_string()).into(),
        other => StorageError::new(other.to_string()).into(),
    }
}

#[cfg(all(test, feature = "conformance"))]
mod tests {
    use super::*;
    use crate::conformance::Person;
    use crate::entity::Entity;
    use crate::storage::sqlite::SqliteStorage;
    use crate::storage::{RowAccess, Storage};

    async fn storage() -> (SqliteStorage, Core) {
        let storage = SqliteStorage::connect("sqlite::memory:").await.expect("open");
        storage.create_table(Person::TABLE).await.expect("create");
        // A write of salary 666 passes its statement but fails at COMMIT: it inserts a row
        // whose deferred foreign key points nowhere.
        for sql in [
            "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
            "CREATE TABLE orphan (parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)",
            "CREATE TRIGGER doomed AFTER UPDATE ON people WHEN NEW.salary = 666 \
             BEGIN INSERT INTO orphan (parent) VALUES (999); END",
            // A write of salary 777 fails its own statement and rolls the whole transaction back.
            "CREATE TRIGGER rollback_all BEFORE UPDATE ON people WHEN NEW.salary = 777 \
             BEGIN SELECT RAISE(ROLLBACK, 'refused by a trigger'); END",
        ] {
            sqlx::query(sql).execute(storage.pool()).await.expect(sql);
        }
        for id in [1, 2, 3] {
            let row = Person { id, name: "P".into(), salary: 0, version: 1 }.to_row().expect("row");
            assert!(storage.insert(Person::TABLE, row).await.expect("insert"));
        }
        let core = Core { pool: storage.pool().clone(), tables: storage.tables.clone() };
        (storage, core)
    }

    fn update(id: i64, salary: i32, expected: u64) -> (Request, oneshot::Receiver<Result<Done>>) {
        let row = Person { id, name: "P".into(), salary, version: expected + 1 }.to_row().expect("row");
        let (reply, answer) = oneshot::channel();
        (Request { table: Person::TABLE, op: Op::Update(row, expected), reply }, answer)
    }

    async fn salary(storage: &SqliteStorage, id: i64) -> i32 {
        let row = storage.fetch(Person::TABLE, &Value::Int(id)).await.expect("fetch").expect("present");
        Person::from_row(row).expect("decode").salary
    }

    /// In one batch, a stale write is refused alone; the others commit.
    #[tokio::test]
    async fn a_conflict_fails_only_its_own_write() {
        let (storage, core) = storage().await;
        let (good, good_answer) = update(1, 10, 1);
        let (stale, stale_answer) = update(2, 20, 7);
        let mut batch = vec![good, stale];
        let mut conn = core.pool.acquire().await.expect("conn");
        assert!(write_batch(&core, &mut conn, &mut batch).await);
        assert!(matches!(good_answer.await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        assert!(matches!(stale_answer.await, Ok(Ok(Done::Written(WriteOutcome::Rejected { current: Some(_) })))));
        assert_eq!((salary(&storage, 1).await, salary(&storage, 2).await), (10, 0));
    }

    /// A batch whose commit fails: every write gets the error, none is applied.
    #[tokio::test]
    async fn a_failed_commit_fails_every_write_of_the_batch() {
        let (storage, core) = storage().await;
        let (good, good_answer) = update(1, 10, 1);
        let (doomed, doomed_answer) = update(2, 666, 1);
        let mut batch = vec![good, doomed];
        let mut conn = core.pool.acquire().await.expect("conn");
        assert!(write_batch(&core, &mut conn, &mut batch).await, "rolled back: the connection is fine");
        for answer in [good_answer, doomed_answer] {
            let answer = answer.await.expect("answered");
            assert!(matches!(answer, Err(Error::Storage(_))), "{}", answer.is_ok());
        }
        assert_eq!((salary(&storage, 1).await, salary(&storage, 2).await), (0, 0), "nothing applied");
        drop(conn);
        // Through the storage, concurrently: the same rule, whichever batches the writes share.
        let (a, b) = tokio::join!(
            storage.update(
                Person::TABLE,
                Person { id: 1, name: "P".into(), salary: 5, version: 2 }.to_row().expect("row"),
                1
            ),
            storage.update(
                Person::TABLE,
                Person { id: 2, name: "P".into(), salary: 6, version: 2 }.to_row().expect("row"),
                1
            ),
        );
        assert!(matches!((a, b), (Ok(WriteOutcome::Applied), Ok(WriteOutcome::Applied))));
        assert_eq!((salary(&storage, 1).await, salary(&storage, 2).await), (5, 6));
    }

    /// A write that fails by itself and rolls the transaction back: it gets its error, the others
    /// of the batch are written all the same (again, in a new batch), and each caller hears the truth.
    #[tokio::test]
    async fn a_write_that_rolls_the_batch_back_fails_alone() {
        let (storage, core) = storage().await;
        let (first, first_answer) = update(1, 10, 1);
        let (failing, failing_answer) = update(2, 777, 1);
        let (last, last_answer) = update(3, 30, 1);
        let mut batch = vec![first, failing, last];
        let mut conn = core.pool.acquire().await.expect("conn");
        assert!(write_batch(&core, &mut conn, &mut batch).await, "the connection is fine");
        assert!(matches!(first_answer.await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        assert!(matches!(failing_answer.await, Ok(Err(_))));
        assert!(matches!(last_answer.await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        drop(conn);
        let salaries = (salary(&storage, 1).await, salary(&storage, 2).await, salary(&storage, 3).await);
        assert_eq!(salaries, (10, 0, 30));
    }

    fn request(op: Op) -> (Request, oneshot::Receiver<Result<Done>>) {
        let (reply, answer) = oneshot::channel();
        (Request { table: Person::TABLE, op, reply }, answer)
    }

    /// Writes of one kind go in one statement, each keeping its own check and outcome; a second
    /// write of the same record starts another statement, and sees the first one's write.
    #[tokio::test]
    async fn merged_writes_keep_their_own_outcomes() {
        let (storage, core) = storage().await;
        let person = |id, salary| Person { id, name: "P".into(), salary, version: 1 }.to_row().expect("row");
        let (one, one_answer) = update(1, 10, 1);
        let (two, two_answer) = update(2, 20, 1);
        // The same record again, expecting the version it had before `one`: stale once `one` is in.
        let (again, again_answer) = update(1, 11, 1);
        let (taken, taken_answer) = request(Op::Insert(person(3, 0)));
        let (new, new_answer) = request(Op::Insert(person(4, 40)));
        let (delete, delete_answer) = request(Op::Delete(Value::Int(4), Some(1)));
        let (stale_delete, stale_delete_answer) = request(Op::Delete(Value::Int(3), Some(9)));
        assert_eq!(mergeable(&core, &[]), 0);
        let mut batch = vec![one, two, again, taken, new, delete, stale_delete];
        assert_eq!(mergeable(&core, &batch), 2, "a record's second write is not in the first statement");
        assert_eq!(mergeable(&core, &batch[3..]), 2);
        assert_eq!(mergeable(&core, &batch[5..]), 2);
        let mut conn = core.pool.acquire().await.expect("conn");
        assert!(write_batch(&core, &mut conn, &mut batch).await);
        assert!(matches!(one_answer.await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        assert!(matches!(two_answer.await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        let Ok(Ok(Done::Written(WriteOutcome::Rejected { current: Some(current) }))) = again_answer.await else {
            panic!("the second write of record 1 is refused")
        };
        assert_eq!(Person::from_row(current).expect("decode").salary, 10, "it saw the first write");
        assert!(matches!(taken_answer.await, Ok(Ok(Done::Inserted(false)))));
        assert!(matches!(new_answer.await, Ok(Ok(Done::Inserted(true)))));
        assert!(matches!(delete_answer.await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        assert!(matches!(
            stale_delete_answer.await,
            Ok(Ok(Done::Written(WriteOutcome::Rejected { current: Some(_) })))
        ));
        drop(conn);
        assert_eq!((salary(&storage, 1).await, salary(&storage, 2).await, salary(&storage, 3).await), (10, 20, 0));
        assert!(storage.fetch(Person::TABLE, &Value::Int(4)).await.expect("fetch").is_none());
    }

    /// A caller that stopped waiting before the writer took its request: not written.
    #[tokio::test]
    async fn a_write_whose_caller_left_before_it_was_taken_is_not_written() {
        let (storage, core) = storage().await;
        let (gone, answer) = update(1, 10, 1);
        drop(answer);
        let (_tx, queue) = {
            let (tx, rx) = mpsc::unbounded_channel();
            tx.send(gone).map_err(|_| ()).expect("queued");
            (tx, rx)
        };
        let writer = tokio::spawn(run(core, queue));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(salary(&storage, 1).await, 0);
        writer.abort();
    }
}
