//! Group commit: the autocommit writes of many tasks that arrive together run in one
//! transaction, on one connection, with one commit (one `fsync` of the WAL).
//!
//! Every autocommit write is a [`Request`] with the row it writes, sent to one writer task per
//! storage. The writer takes what has queued up: a request alone runs in autocommit, exactly as
//! it would without the writer; several run inside `BEGIN IMMEDIATE … COMMIT`, each statement
//! with its own check and its own outcome (a conflict refuses that write only). Outcomes are
//! sent back once the commit is done; if it fails, every write of the batch gets the error and
//! none is applied.
//!
//! A caller that stops waiting (its future dropped) before the writer takes its request is not
//! written at all; once taken, the write is applied whole or not at all, like any autocommit
//! statement whose caller went away.

use std::sync::{Arc, Mutex, PoisonError};

use sqlx::Sqlite;
use sqlx::pool::PoolConnection;
use tokio::sync::{mpsc, oneshot};

use super::{TableState, storage_error};
use crate::entity::TableDef;
use crate::error::{Error, Result, StorageError};
use crate::storage::WriteOutcome;
use crate::storage::sql::Tables;
use crate::storage::sql::driver::Conn;
use crate::storage::sql::rows::OnConnection;
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
#[derive(Clone)]
pub(super) struct Core {
    pub(super) pool: sqlx::SqlitePool,
    pub(super) tables: Tables<TableState>,
}

/// The queue to the writer task, started with the first write (and again if its runtime ended).
#[derive(Debug, Clone, Default)]
pub(super) struct GroupCommit(Arc<Mutex<Option<mpsc::UnboundedSender<Request>>>>);

impl GroupCommit {
    /// Runs `op` through the writer task of `core`'s storage.
    pub(super) async fn write(&self, core: &Core, table: &'static TableDef, op: Op) -> Result<Done> {
        let (reply, done) = oneshot::channel();
        self.sender(core)?
            .send(Request { table, op, reply })
            .map_err(|_| StorageError::new("the SQLite writer task has stopped"))?;
        done.await.map_err(|_| StorageError::new("the SQLite writer task stopped before answering"))?
    }

    fn sender(&self, core: &Core) -> Result<mpsc::UnboundedSender<Request>> {
        // Only a send and a clone happen under this lock.
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(sender.clone());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| StorageError::new("SQLite writes need a tokio runtime"))?;
        let (sender, queue) = mpsc::unbounded_channel();
        runtime.spawn(run(core.clone(), queue));
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
    if batch.len() == 1 {
        // Alone: autocommit, as without group commit.
        let request = batch.remove(0);
        let done = execute(core, conn, request.table, request.op).await;
        let _ = request.reply.send(done);
        return true;
    }
    if let Err(err) = sqlx::query("BEGIN IMMEDIATE").execute(&mut **conn).await {
        let err = begin_error(err);
        answer_all(batch, &err);
        return true;
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    for request in batch.iter_mut() {
        let op = std::mem::replace(&mut request.op, Op::Delete(Value::Null, None));
        outcomes.push(execute(core, conn, request.table, op).await);
    }
    match sqlx::query("COMMIT").execute(&mut **conn).await {
        Ok(_) => {
            for (request, done) in batch.drain(..).zip(outcomes) {
                let _ = request.reply.send(done);
            }
            true
        }
        Err(err) => {
            let err = storage_error(None, err);
            let rolled_back = sqlx::query("ROLLBACK").execute(&mut **conn).await.is_ok();
            for (request, done) in batch.drain(..).zip(outcomes) {
                // A write that failed by itself keeps its own error; the others were not applied.
                let _ = request.reply.send(done.and_then(|_| Err(copy_of(&err))));
            }
            rolled_back
        }
    }
}

/// One write on `conn`, checked as the statement of its kind is.
async fn execute(core: &Core, conn: &mut PoolConnection<Sqlite>, table: &'static TableDef, op: Op) -> Result<Done> {
    let state = super::table_state(&core.tables, table);
    state.check_schema(conn, table).await?;
    let on = &mut OnConnection { conn: &mut Conn::<Sqlite>(&mut **conn), table, statements: &state.sql };
    Ok(match op {
        Op::Insert(row) => Done::Inserted(on.insert(&row).await?),
        Op::Update(row, expected) => Done::Written(on.update(&row, expected).await?),
        Op::Upsert(row) => Done::Upserted(on.upsert(&row).await?),
        Op::Patch(key, columns, expected) => Done::Written(on.patch(&key, &columns, expected).await?),
        Op::Delete(key, expected) => Done::Written(on.delete(&key, expected).await?),
    })
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
        ] {
            sqlx::query(sql).execute(storage.pool()).await.expect(sql);
        }
        for id in [1, 2] {
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
