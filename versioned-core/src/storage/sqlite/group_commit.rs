//! Group commit: the autocommit writes of many tasks that arrive together run in one
//! transaction, on one connection, with one commit (one `fsync` of the WAL).
//!
//! Every autocommit write is a [`Request`] with the row it writes, sent to one writer task per
//! storage. The writer takes what has queued up, and every write keeps its own check and its own
//! outcome (a conflict refuses that write only):
//!
//! - a write while no other autocommit write of the storage runs does not go to the writer at
//!   all: it runs on the caller's task, in autocommit, exactly the statement a caller would run
//!   by hand (a lone writer pays nothing for group commit);
//! - a request alone in the writer's queue runs in autocommit, exactly as it would without it;
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
//! statement per write, which finds it. Each of these ways is an [`Attempt`] of [`write_batch`]
//! (alone, one statement, one transaction, one by one), each taking what the one before left.
//!
//! A caller that stops waiting (its future dropped) before the writer takes its request is not
//! written at all; once taken, the write is applied whole or not at all, like any autocommit
//! statement whose caller went away.
//!
//! The writer runs on a thread of its own (with a single-threaded tokio runtime), so it never
//! depends on the runtime of whoever wrote first being driven.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::Sqlite;
use sqlx::pool::PoolConnection;
use tokio::sync::{mpsc, oneshot};

use super::driver::{is_busy, storage_error};
use super::schema::{TableState, table_state};
use crate::entity::TableDef;
use crate::error::{Error, Result, StorageError};
use crate::storage::WriteOutcome;
use crate::storage::sql::driver::Conn;
use crate::storage::sql::rows::{self, OnConnection};
use crate::storage::sql::{Batch, Mappings};
use crate::value::{Row, Value};

/// The most writes one commit carries: enough to amortize the commit, few enough that the first
/// caller of a batch does not wait long for the last.
const MAX_BATCH: usize = 256;

/// The most writes one statement carries: the batch statements of every size up to this are kept
/// once built (and prepared once per connection).
const MAX_MERGED: usize = 64;

/// One autocommit write.
pub(super) enum Write {
    /// `insert`: the row, written unless its key exists.
    Insert(Row),
    /// `update`: the row, and the version it expects stored.
    Update(Row, u64),
    /// `upsert`: the row, written whatever is stored.
    Upsert(Row),
    /// `patch`: the key, the columns set (by index), and the version it expects stored.
    Patch(Value, Vec<(usize, Value)>, u64),
    /// `delete`: the key, and the version it expects stored (`None`: any).
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
    op: Write,
    reply: oneshot::Sender<Result<Done>>,
}

/// What the writer task needs of the storage (not the storage itself: the task must end when
/// the last handle of the storage is dropped, which closes its queue).
pub(super) struct Core {
    pub(super) pool: sqlx::SqlitePool,
    pub(super) mappings: Mappings<TableState>,
}

/// The queue to the writer thread, started with the first write that meets another (and again if
/// it ended), and how many autocommit writes are running now.
#[derive(Debug, Clone, Default)]
pub(super) struct GroupCommit {
    queue: Arc<Mutex<Option<mpsc::UnboundedSender<Request>>>>,
    running: Arc<AtomicUsize>,
}

/// An autocommit write, counted in [`GroupCommit::running`] until it ends (or its future is
/// dropped).
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl GroupCommit {
    /// Runs `op`: alone, on the caller's task, when no other autocommit write of the storage is
    /// running (exactly the statement a caller would run by hand, without a hop to the writer's
    /// thread); else through the writer, which commits it with the others. `core` makes what a
    /// write needs.
    pub(super) async fn write(&self, core: impl FnOnce() -> Core, table: &'static TableDef, op: Write) -> Result<Done> {
        let alone = self.running.fetch_add(1, Ordering::AcqRel) == 0;
        let _running = Running(&self.running);
        if alone {
            let core = core();
            let mut conn = core.pool.acquire().await.map_err(|e| storage_error(Some(table), e))?;
            return execute(&core, &mut conn, table, &op).await;
        }
        let (reply, done) = oneshot::channel();
        self.sender(core)?
            .send(Request { table, op, reply })
            .map_err(|_| StorageError::new("the SQLite writer task has stopped"))?;
        done.await.map_err(|_| StorageError::new("the SQLite writer task stopped before answering"))?
    }

    fn sender(&self, core: impl FnOnce() -> Core) -> Result<mpsc::UnboundedSender<Request>> {
        // Only a send and a clone happen under this lock.
        let mut slot = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
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

/// How [`write_batch`] tries to write what is left of its batch. An attempt answers every write,
/// or stops at a failure it cannot pin on one write (a statement of several writes failed) or at
/// one write that failed by itself (answered with its error); the next attempt takes the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// One write left: on its own, in autocommit, exactly as without group commit.
    Alone,
    /// Every write in one batch statement ([`mergeable`]), in autocommit: a statement is atomic by
    /// itself, so one round trip and one commit for the lot.
    OneStatement,
    /// Inside `BEGIN IMMEDIATE … COMMIT`: each run of [`mergeable`] writes in one statement, the
    /// other writes one statement each.
    OneTransaction,
    /// Inside `BEGIN IMMEDIATE … COMMIT`, one statement per write: after a statement of several
    /// writes failed, which does not say which of its writes failed.
    OneByOne,
}

impl Attempt {
    /// The first attempt at `batch`, whose writes share statements where they can.
    fn merged(core: &Core, batch: &[Request]) -> Attempt {
        match batch.len() {
            1 => Attempt::Alone,
            n if mergeable(core, batch).len() == n => Attempt::OneStatement,
            _ => Attempt::OneTransaction,
        }
    }

    /// The attempt after a statement of several writes failed: one statement per write, which
    /// finds the write that failed.
    fn one_by_one(batch: &[Request]) -> Attempt {
        if batch.len() == 1 { Attempt::Alone } else { Attempt::OneByOne }
    }

    /// The attempt at what is left of `batch` once a write of this one failed by itself: the same
    /// way of writing.
    fn again(self, core: &Core, batch: &[Request]) -> Attempt {
        match self {
            Attempt::OneByOne => Attempt::one_by_one(batch),
            _ => Attempt::merged(core, batch),
        }
    }
}

/// How the writes of a transaction ([`Attempt::OneTransaction`], [`Attempt::OneByOne`]) ran,
/// before its commit.
enum Ran {
    /// Every write ran: their outcomes, in order, to be sent once the commit is done.
    All(Vec<Result<Done>>),
    /// A statement of several writes failed, or a read describing one of its refusals did: which
    /// write failed is not known.
    StatementFailed,
    /// The write at this index failed by itself, with this answer (an error).
    WriteFailed(usize, Result<Done>),
}

/// Writes `batch` on `conn` and answers every request. Returns whether the connection is fit for
/// the next batch.
async fn write_batch(core: &Core, conn: &mut PoolConnection<Sqlite>, batch: &mut Vec<Request>) -> bool {
    let mut attempt = Attempt::merged(core, batch);
    loop {
        if attempt == Attempt::Alone {
            let request = batch.remove(0);
            let done = execute(core, conn, request.table, &request.op).await;
            let _ = request.reply.send(done);
            return true;
        }
        if attempt == Attempt::OneStatement {
            let keys = mergeable(core, batch);
            match execute_run(core, conn, batch, &keys).await {
                Ok(outcomes) => {
                    for (request, done) in batch.drain(..).zip(outcomes) {
                        let _ = request.reply.send(done);
                    }
                    return true;
                }
                // Nothing written: again one statement per write, which finds the one that failed.
                Err(_) => attempt = Attempt::one_by_one(batch),
            }
            continue;
        }
        if let Err(err) = sqlx::query("BEGIN IMMEDIATE").execute(&mut **conn).await {
            let busy = is_busy(&err);
            answer_all(batch, &begin_error(err));
            // Any other refusal may mean the connection is already inside a transaction.
            return busy;
        }
        match run_in_transaction(core, conn, batch, attempt == Attempt::OneTransaction).await {
            Ran::All(outcomes) => {
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
            Ran::StatementFailed => {
                // Which write failed is not known: roll back, and write the batch again one
                // statement per write, which finds it.
                if sqlx::query("ROLLBACK").execute(&mut **conn).await.is_err() && !rolled_back(conn).await {
                    answer_all(batch, &StorageError::new("the SQLite writer could not roll back a batch").into());
                    return false;
                }
                attempt = Attempt::one_by_one(batch);
            }
            Ran::WriteFailed(index, done) => {
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
                attempt = attempt.again(core, batch);
            }
        }
    }
}

/// Runs every write of `batch` inside the transaction open on `conn`, runs of [`mergeable`] writes
/// in one statement each where `merge` says so, until one fails.
async fn run_in_transaction(core: &Core, conn: &mut PoolConnection<Sqlite>, batch: &[Request], merge: bool) -> Ran {
    let mut outcomes = Vec::with_capacity(batch.len());
    while outcomes.len() < batch.len() {
        let index = outcomes.len();
        let keys = if merge { mergeable(core, &batch[index..]) } else { Vec::new() };
        if keys.len() > 1 {
            let run = &batch[index..index + keys.len()];
            match execute_run(core, conn, run, &keys).await {
                Ok(done) if done.iter().all(Result::is_ok) => outcomes.extend(done),
                _ => return Ran::StatementFailed,
            }
            continue;
        }
        let request = &batch[index];
        let done = execute(core, conn, request.table, &request.op).await;
        if done.is_err() {
            return Ran::WriteFailed(index, done);
        }
        outcomes.push(done);
    }
    Ran::All(outcomes)
}

/// Whether `conn` is outside any transaction (a `ROLLBACK` that failed because the transaction
/// was already gone): `BEGIN` succeeds only there, and is undone at once.
async fn rolled_back(conn: &mut PoolConnection<Sqlite>) -> bool {
    sqlx::query("BEGIN").execute(&mut **conn).await.is_ok()
        && sqlx::query("ROLLBACK").execute(&mut **conn).await.is_ok()
}

/// Runs `op` on `conn` for `table`, whose schema is checked first.
async fn on_table<T>(
    core: &Core,
    conn: &mut PoolConnection<Sqlite>,
    table: &'static TableDef,
    op: impl AsyncFnOnce(&mut OnConnection<'_, Conn<'_, Sqlite>>) -> Result<T>,
) -> Result<T> {
    let state = table_state(&core.mappings, table);
    state.check_schema(conn, table).await?;
    op(&mut OnConnection { conn: &mut Conn::<Sqlite>(&mut **conn), table, statements: &state.sql }).await
}

/// One write on `conn`, checked as the statement of its kind is.
async fn execute(core: &Core, conn: &mut PoolConnection<Sqlite>, table: &'static TableDef, op: &Write) -> Result<Done> {
    on_table(core, conn, table, async |on| {
        Ok(match op {
            Write::Insert(row) => Done::Inserted(on.insert(row).await?),
            Write::Update(row, expected) => Done::Written(on.update(row, *expected).await?),
            Write::Upsert(row) => Done::Upserted(on.upsert(row).await?),
            Write::Patch(key, columns, expected) => Done::Written(on.patch(key, columns, *expected).await?),
            Write::Delete(key, expected) => Done::Written(on.delete(key, *expected).await?),
        })
    })
    .await
}

/// The batch statement a write can share with others of its kind: checked updates, inserts and
/// checked deletes.
fn batch_kind(op: &Write) -> Option<Batch> {
    match op {
        Write::Update(..) => Some(Batch::Update),
        Write::Insert(_) => Some(Batch::Insert),
        Write::Delete(_, Some(_)) => Some(Batch::Delete),
        _ => None,
    }
}

/// The record a write of [`batch_kind`] is about.
fn key_of<'r>(table: &TableDef, op: &'r Write) -> Option<&'r Value> {
    match op {
        Write::Update(row, _) | Write::Insert(row) => table.key_of(row).ok(),
        Write::Delete(key, _) => Some(key),
        _ => None,
    }
}

/// The records of the writes from the start of `requests` that go in one statement: writes of
/// one [`batch_kind`] to one table, each to another record (a batch statement names a key once),
/// at most [`MAX_MERGED`]. Text keys only where the table compares them byte for byte (a key
/// column with a collation of its own could make two of them one record, or the key `RETURNING`
/// gives differ from the one written). Fewer than 2: none to share a statement with.
fn mergeable<'r>(core: &Core, requests: &'r [Request]) -> Vec<&'r Value> {
    let mut keys: Vec<&Value> = Vec::new();
    let Some(first) = requests.first() else { return keys };
    let Some(kind) = batch_kind(&first.op) else { return keys };
    let state = table_state(&core.mappings, first.table);
    let Some(chunk) = state.sql.chunk(kind) else { return keys };
    for request in requests.iter().take(chunk.min(MAX_MERGED)) {
        let same = std::ptr::eq(request.table, first.table) && batch_kind(&request.op) == Some(kind);
        let key = key_of(first.table, &request.op)
            .filter(|key| same && !keys.contains(key))
            .filter(|key| !matches!(key, Value::Text(_)) || state.binary_text_keys());
        match key {
            Some(key) => keys.push(key),
            None => break,
        }
    }
    keys
}

/// A run of [`mergeable`] writes (`keys` their records, in order) as one statement. `Err`: the
/// statement failed, and wrote nothing. Otherwise each write's outcome: a refused check reads the
/// stored record to describe it, and that read may fail on its own (its write was not applied).
///
/// Nothing that can fail runs between the statement and its answer but the decoding of the keys
/// it returns, which cannot fail: a returned key matched one of ours, bound with the key column's
/// type, and SQLite's equality holds only between values of one storage class.
async fn execute_run(
    core: &Core,
    conn: &mut PoolConnection<Sqlite>,
    run: &[Request],
    keys: &[&Value],
) -> Result<Vec<Result<Done>>> {
    let Some(table) = run.first().map(|r| r.table) else { return Ok(Vec::new()) };
    on_table(core, conn, table, async |on| {
        // `mergeable` put writes of one kind in the run.
        let returned = match run.first().map(|r| &r.op) {
            Some(Write::Update(..)) => {
                let rows: Vec<_> = run
                    .iter()
                    .filter_map(|r| if let Write::Update(row, e) = &r.op { Some((row, *e)) } else { None })
                    .collect();
                on.update_chunk(&rows).await?
            }
            Some(Write::Insert(_)) => {
                let rows: Vec<_> =
                    run.iter().filter_map(|r| if let Write::Insert(row) = &r.op { Some(row) } else { None }).collect();
                on.insert_chunk(&rows).await?
            }
            _ => {
                let keys: Vec<_> = run
                    .iter()
                    .filter_map(|r| if let Write::Delete(key, Some(e)) = &r.op { Some((key, *e)) } else { None })
                    .collect();
                on.delete_chunk(&keys).await?
            }
        };
        let mut outcomes = Vec::with_capacity(run.len());
        for (request, key) in run.iter().zip(keys) {
            outcomes.push(match request.op {
                Write::Insert(_) => Ok(Done::Inserted(rows::returned(&returned, run.len(), key))),
                _ => on.applied_or_current(&returned, run.len(), key).await.map(Done::Written),
            });
        }
        Ok(outcomes)
    })
    .await
}

/// `BEGIN IMMEDIATE` refused: another connection held the write lock past the busy timeout.
fn begin_error(err: sqlx::Error) -> Error {
    if is_busy(&err) { Error::LockTimeout { table: None, key: None } } else { storage_error(None, err) }
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
        let core = Core { pool: storage.pool().clone(), mappings: storage.mappings.clone() };
        (storage, core)
    }

    fn update(id: i64, salary: i32, expected: u64) -> (Request, oneshot::Receiver<Result<Done>>) {
        let row = Person { id, name: "P".into(), salary, version: expected + 1 }.to_row().expect("row");
        let (reply, answer) = oneshot::channel();
        (Request { table: Person::TABLE, op: Write::Update(row, expected), reply }, answer)
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

    fn request(op: Write) -> (Request, oneshot::Receiver<Result<Done>>) {
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
        let (taken, taken_answer) = request(Write::Insert(person(3, 0)));
        let (new, new_answer) = request(Write::Insert(person(4, 40)));
        let (delete, delete_answer) = request(Write::Delete(Value::Int(4), Some(1)));
        let (stale_delete, stale_delete_answer) = request(Write::Delete(Value::Int(3), Some(9)));
        assert!(mergeable(&core, &[]).is_empty());
        let mut batch = vec![one, two, again, taken, new, delete, stale_delete];
        assert_eq!(mergeable(&core, &batch).len(), 2, "a record's second write is not in the first statement");
        assert_eq!(mergeable(&core, &batch[3..]).len(), 2);
        assert_eq!(mergeable(&core, &batch[5..]).len(), 2);
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

    /// Text keys of a table with a collation of its own are never merged: `'Ann'` and `'ann'`
    /// would be one record, and `RETURNING` would give the stored spelling. Each write is its own
    /// statement, with its own outcome, as without group commit.
    #[tokio::test]
    async fn text_keys_with_a_collation_are_not_merged() {
        use crate::conformance::HighScore;
        let storage = SqliteStorage::connect("sqlite::memory:").await.expect("open");
        let name = HighScore::TABLE.name;
        let sql =
            format!("CREATE TABLE {name} (board TEXT PRIMARY KEY COLLATE NOCASE, highscore INTEGER, _version INTEGER)");
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(storage.pool()).await.expect("create");
        let row =
            |board: &str, score, version| HighScore { board: board.into(), score, version }.to_row().expect("row");
        assert!(storage.insert(HighScore::TABLE, row("Ann", 0, 1)).await.expect("insert"));
        let core = Core { pool: storage.pool().clone(), mappings: storage.mappings.clone() };
        let request = |op| {
            let (reply, answer) = oneshot::channel();
            (Request { table: HighScore::TABLE, op, reply }, answer)
        };
        let (lower, lower_answer) = request(Write::Update(row("ann", 5, 2), 1));
        let (upper, upper_answer) = request(Write::Update(row("ANN", 7, 2), 1));
        let mut batch = vec![lower, upper];
        assert!(mergeable(&core, &batch).len() < 2, "not merged");
        let mut conn = core.pool.acquire().await.expect("conn");
        assert!(write_batch(&core, &mut conn, &mut batch).await);
        assert!(matches!(lower_answer.await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        assert!(matches!(upper_answer.await, Ok(Ok(Done::Written(WriteOutcome::Rejected { current: Some(_) })))));
        drop(conn);
        let stored =
            storage.fetch(HighScore::TABLE, &Value::Text("ANN".into())).await.expect("fetch").expect("present");
        assert_eq!(HighScore::from_row(stored).expect("decode").score, 5);
        // The same table without a collation merges them (they are then two records).
        let plain = SqliteStorage::connect("sqlite::memory:").await.expect("open");
        plain.create_table(HighScore::TABLE).await.expect("create");
        assert!(plain.insert(HighScore::TABLE, row("Ann", 0, 1)).await.expect("insert"));
        let core = Core { pool: plain.pool().clone(), mappings: plain.mappings.clone() };
        let (a, _a) = request(Write::Update(row("Ann", 5, 2), 1));
        let (b, _b) = request(Write::Update(row("Bob", 7, 2), 1));
        assert_eq!(mergeable(&core, &[a, b]).len(), 2);
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
