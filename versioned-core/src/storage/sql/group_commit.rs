//! Group commit, written once for the SQL backends: the autocommit writes of many tasks that
//! arrive together share statements (and, on SQLite, one transaction with one commit).
//!
//! Every autocommit write is a [`Request`] with the row it writes, sent to one writer per
//! storage. The writer takes what has queued up, and every write keeps its own check and its own
//! outcome (a conflict refuses that write only):
//!
//! - a write while no other autocommit write of the storage runs does not go to the writer at
//!   all: it runs on the caller's task, in autocommit, exactly the statement a caller would run
//!   by hand (a lone writer pays nothing for group commit);
//! - a request alone in its batch runs in autocommit, exactly as it would without it;
//! - consecutive checked updates (inserts, checked deletes) of one table, each to another record,
//!   go in one statement, the batch statement of `put_all` (`UPDATE … FROM (VALUES …) RETURNING
//!   key`): one round trip for the lot. A batch that is one such statement runs as it is, in
//!   autocommit: a statement is atomic by itself;
//! - on a backend with a [`Committer::BEGIN`] (SQLite), any other batch runs inside one
//!   transaction; outcomes are sent back once the commit is done, and if it fails, every write of
//!   the batch gets the error and none is applied. A backend without one (PostgreSQL) sends the
//!   writer only the writes that can share a statement ([`Committer::queues`]); the others run
//!   on the caller's task, concurrently, as by hand.
//!
//! The writer of a server keeps up to [`Committer::IN_FLIGHT`] statements in flight, each on a
//! connection of its own, and a record (by table name and key) is never in two of them: two
//! statements that both touched two records could wait for each other's row locks. It keeps its
//! connections between batches, and gives them back to the pool after a pause, after
//! [`KEEP_AT_MOST`], or closes them after an error (the connection may be broken).
//!
//! A batch is sent as soon as a statement can go, but on a server, when fewer writes are waiting
//! than the last batch carried (its writers are about to write again), the writer waits a moment,
//! at most [`Committer::FILL_WAIT`], for them: without it, batches alternate between a few writes
//! and the rest, and carry half as many writes each. SQLite does not wait: its batches cost less
//! than the wait, and a workload whose writers do not all come back (reads, locked updates in
//! between) was slower for it.
//!
//! A write that fails by itself (an error, not a refused check) takes the batch down with it in
//! SQLite's eyes (some errors roll the whole transaction back), so the batch is rolled back, that
//! write gets its error, and the others run again as a new batch: a write is never reported as
//! failed once applied, nor applied after being reported failed. A statement of several writes
//! that fails does not say which write failed: the batch is written again one statement per
//! write, which finds it. Each of these ways is an [`Attempt`] of [`write_batch`] (alone, one
//! statement, one transaction, one by one), each taking what the one before left.
//!
//! A caller that stops waiting (its future dropped) before the writer takes its request is not
//! written at all; once taken, the write is applied whole or not at all, like any autocommit
//! statement whose caller went away.
//!
//! The writer runs on a thread of its own (with a single-threaded tokio runtime), so it never
//! depends on the runtime of whoever wrote first being driven.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Executor, IntoArguments};
use tokio::sync::{mpsc, oneshot};

use super::driver::Conn;
use super::rows::{self, OnConnection, SqlConnection};
use super::{Batch, Mappings};
use crate::entity::TableDef;
use crate::error::{Error, Result, StorageError};
use crate::storage::WriteOutcome;
use crate::storage::lent::SqlBackend;
use crate::value::{Row, Value};

/// The most writes one SQLite commit carries: enough to amortize the commit, few enough that the
/// first caller of a batch does not wait long for the last.
const MAX_BATCH: usize = 256;

/// The most writes one statement carries: the batch statements of every size up to this are kept
/// once built (and prepared once per connection).
const MAX_MERGED: usize = 64;

/// How long the writer keeps its connections once it has nothing to write: long enough to
/// write again without asking the pool (whose check of a connection is a round trip).
const RELEASE_AFTER: Duration = Duration::from_millis(50);

/// The longest the writer keeps one connection, busy or not, before giving it back to the pool
/// (which checks it, and closes it at the end of its lifetime).
const KEEP_AT_MOST: Duration = Duration::from_secs(10);

/// What a backend tells its group commit, beside what it tells the statements it runs on a lent
/// connection ([`SqlBackend`]: its database, table state, schema check and statements).
pub(crate) trait Committer: SqlBackend + 'static {
    /// The database's name, for the writer thread and its errors.
    const NAME: &'static str;
    /// How many batches may be in flight at once; one where there is a [`BEGIN`](Self::BEGIN)
    /// (a batch's transaction holds its rows' locks across statements, and its writes are not
    /// kept apart from another batch's).
    const IN_FLIGHT: usize;
    /// The statement that begins a batch that is not one statement, or `None`: the writer then
    /// only takes writes that can share a statement ([`Committer::queues`]).
    const BEGIN: Option<&'static str>;
    /// The longest the writer waits for the writers of its last batch to write again before it
    /// sends what it has; never more than half the time the last batch took (waiting pays where a
    /// batch costs a network round trip and a flush, not where it costs less than the wait).
    const FILL_WAIT: Duration;

    /// The state of `table`'s mapping among `mappings`, made the first time (the writer holds
    /// the mappings, not the storage).
    fn table(mappings: &Mappings<Self::Table>, table: &'static TableDef) -> Arc<Self::Table>;

    /// Whether two text keys of the table are one record only when their bytes are equal (no
    /// collation that folds case, say), so that text keys can share a statement.
    fn binary_text_keys(state: &Self::Table) -> bool;

    /// A driver's error as the backend reports it.
    fn storage_error(table: Option<&'static TableDef>, err: sqlx::Error) -> Error;

    /// [`BEGIN`](Self::BEGIN) refused: the error each write of the batch gets, and whether the
    /// connection is still fit for the next batch.
    fn begin_error(err: sqlx::Error) -> (Error, bool) {
        (Self::storage_error(None, err), false)
    }

    /// Whether `op` goes to the writer when others are writing: every write where a batch can
    /// be one transaction, else only those that can share a statement.
    fn queues(op: &Write) -> bool {
        Self::BEGIN.is_some() || batch_kind(op).is_some()
    }
}

/// One autocommit write.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // upserts and patches: SQLite's writer only
pub(crate) enum Write {
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
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // upserts: SQLite's writer only
pub(crate) enum Done {
    Inserted(bool),
    Written(WriteOutcome),
    Upserted(Option<u64>),
}

impl Done {
    /// The answer of an `insert`.
    pub(crate) fn inserted<B: Committer>(self) -> Result<bool> {
        match self {
            Done::Inserted(inserted) => Ok(inserted),
            _ => Err(mismatched_answer::<B>()),
        }
    }

    /// The answer of an `update`, `patch` or `delete`.
    pub(crate) fn written<B: Committer>(self) -> Result<WriteOutcome> {
        match self {
            Done::Written(outcome) => Ok(outcome),
            _ => Err(mismatched_answer::<B>()),
        }
    }

    /// The answer of an `upsert`.
    #[cfg(feature = "sqlite")]
    pub(crate) fn upserted<B: Committer>(self) -> Result<Option<u64>> {
        match self {
            Done::Upserted(version) => Ok(version),
            _ => Err(mismatched_answer::<B>()),
        }
    }
}

/// The writer answers each operation with its own kind of result; this cannot happen.
fn mismatched_answer<B: Committer>() -> Error {
    StorageError::new(format!("the {} writer answered a write with another kind of result", B::NAME)).into()
}

struct Request {
    table: &'static TableDef,
    op: Write,
    reply: oneshot::Sender<Answer>,
}

/// A write's answer, and how many writes shared its statement and its commit (1: none other).
struct Answer {
    done: Result<Done>,
    statement: usize,
    commit: usize,
}

impl Request {
    /// Answers the caller (who may have stopped waiting).
    fn answer(self, done: Result<Done>, statement: usize, commit: usize) {
        let _ = self.reply.send(Answer { done, statement, commit });
    }
}

/// What the writer needs of the storage (not the storage itself: the writer must end when the
/// last handle of the storage is dropped, which closes its queue).
pub(crate) struct Core<B: Committer> {
    pub(crate) pool: sqlx::Pool<B::Database>,
    pub(crate) mappings: Mappings<B::Table>,
}

impl<B: Committer> Clone for Core<B> {
    fn clone(&self) -> Self {
        Core { pool: self.pool.clone(), mappings: self.mappings.clone() }
    }
}

/// The queue to the writer thread, started with the first write that meets another (and again if
/// it ended), and how many autocommit writes are running now.
pub(crate) struct GroupCommit<B: Committer> {
    queue: Arc<Mutex<Option<mpsc::UnboundedSender<Request>>>>,
    running: Arc<AtomicUsize>,
    backend: std::marker::PhantomData<fn() -> B>,
}

impl<B: Committer> Default for GroupCommit<B> {
    fn default() -> Self {
        GroupCommit { queue: Arc::default(), running: Arc::default(), backend: std::marker::PhantomData }
    }
}

impl<B: Committer> Clone for GroupCommit<B> {
    fn clone(&self) -> Self {
        GroupCommit { queue: Arc::clone(&self.queue), running: Arc::clone(&self.running), backend: self.backend }
    }
}

impl<B: Committer> std::fmt::Debug for GroupCommit<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("running", &self.running.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

/// An autocommit write, counted in [`GroupCommit::running`] until it ends (or its future is
/// dropped).
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<B: Committer> GroupCommit<B>
where
    for<'e> &'e mut <B::Database as Database>::Connection: Executor<'e, Database = B::Database>,
    <B::Database as Database>::Arguments: IntoArguments<B::Database>,
{
    /// Runs `op`: alone, on the caller's task, when no other autocommit write of the storage is
    /// running, or when it is a write the writer does not take ([`Committer::queues`]): exactly
    /// the statement a caller would run by hand, without a hop to the writer's thread; else
    /// through the writer, which writes it with the others. `pool` and `mappings` are the
    /// storage's, cloned for the writer only when it starts.
    pub(crate) async fn write(
        &self,
        pool: &sqlx::Pool<B::Database>,
        mappings: &Mappings<B::Table>,
        table: &'static TableDef,
        op: Write,
    ) -> Result<Done> {
        if !B::queues(&op) {
            return execute_alone::<B>(pool, mappings, table, &op).await;
        }
        let alone = self.running.fetch_add(1, Ordering::AcqRel) == 0;
        let _running = Running(&self.running);
        if alone {
            return execute_alone::<B>(pool, mappings, table, &op).await;
        }
        let (reply, done) = oneshot::channel();
        self.sender(|| Core { pool: pool.clone(), mappings: mappings.clone() })?
            .send(Request { table, op, reply })
            .map_err(|_| StorageError::new(format!("the {} writer task has stopped", B::NAME)))?;
        let answer = done
            .await
            .map_err(|_| StorageError::new(format!("the {} writer task stopped before answering", B::NAME)))?;
        crate::observe::group_commit(table.name, answer.statement, answer.commit);
        answer.done
    }

    fn sender(&self, core: impl FnOnce() -> Core<B>) -> Result<mpsc::UnboundedSender<Request>> {
        // Held while a writer is started (rarely): two callers must not start two.
        let mut slot = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(sender.clone());
        }
        let (sender, queue) = mpsc::unbounded_channel();
        let core = core();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StorageError::new(format!("cannot start the {} writer's runtime: {e}", B::NAME)))?;
        std::thread::Builder::new()
            .name(format!("versioned-{}-writer", B::NAME.to_lowercase()))
            .spawn(move || runtime.block_on(run(core, queue)))
            .map_err(|e| StorageError::new(format!("cannot start the {} writer thread: {e}", B::NAME)))?;
        *slot = Some(sender.clone());
        Ok(sender)
    }
}

/// Runs one write on a connection of its own, in autocommit.
async fn execute_alone<B: Committer>(
    pool: &sqlx::Pool<B::Database>,
    mappings: &Mappings<B::Table>,
    table: &'static TableDef,
    op: &Write,
) -> Result<Done>
where
    for<'e> &'e mut <B::Database as Database>::Connection: Executor<'e, Database = B::Database>,
    <B::Database as Database>::Arguments: IntoArguments<B::Database>,
{
    let mut conn = pool.acquire().await.map_err(|e| B::storage_error(Some(table), e))?;
    execute::<B>(mappings, &mut conn, table, op).await
}

/// The writer: takes what has queued up, writes it, answers; until every storage handle is gone.
async fn run<B: Committer>(core: Core<B>, mut queue: mpsc::UnboundedReceiver<Request>)
where
    for<'e> &'e mut <B::Database as Database>::Connection: Executor<'e, Database = B::Database>,
    <B::Database as Database>::Arguments: IntoArguments<B::Database>,
{
    const { assert!(B::BEGIN.is_none() || B::IN_FLIGHT == 1, "a batch that is a transaction flies alone") };
    let mut pending: VecDeque<Request> = VecDeque::new();
    let mut flying = FuturesUnordered::new();
    // The records of the statements in flight (by table name and key: two structs may map one
    // table).
    let mut busy: Vec<(&'static str, Value)> = Vec::new();
    // Connections between batches, given back to the pool when the writer has nothing to do.
    let mut idle: Vec<Kept<B::Database>> = Vec::new();
    let mut open = true;
    // How many writes the last batch written answered, less those taken since: their callers
    // are about to write again.
    let mut expected: usize = 0;
    // How long the last batch took to write.
    let mut took = Duration::ZERO;
    loop {
        while let Ok(request) = queue.try_recv() {
            pending.push_back(request);
        }
        if flying.len() < B::IN_FLIGHT && pending.iter().any(|r| !is_busy(r, &busy)) {
            fill(&mut queue, &mut pending, expected, B::FILL_WAIT.min(took / 2));
        }
        // Callers that stopped waiting before their write was taken: not written.
        pending.retain(|r| !r.reply.is_closed());
        if flying.len() < B::IN_FLIGHT && !pending.is_empty() {
            let batch = take::<B>(&core, &mut pending, &busy);
            if !batch.is_empty() {
                expected = expected.saturating_sub(batch.len());
                let held: Vec<(&'static str, Value)> = if B::IN_FLIGHT > 1 {
                    batch.iter().filter_map(|r| Some((r.table.name, key_of(r.table, &r.op)?.clone()))).collect()
                } else {
                    Vec::new()
                };
                busy.extend(held.iter().cloned());
                // A connection kept for long goes back to the pool, which checks it, and may close
                // it at the end of its lifetime.
                let kept = idle.pop().filter(|kept| kept.since.elapsed() < KEEP_AT_MOST);
                flying.push(fly(core.clone(), kept, batch, held));
                continue;
            }
        }
        let quiet = flying.is_empty() && pending.is_empty();
        if quiet && !open {
            return;
        }
        tokio::select! {
            request = queue.recv(), if open => match request {
                Some(request) => pending.push_back(request),
                None => open = false,
            },
            Some(landed) = flying.next(), if !flying.is_empty() => {
                let Landed { held, carried, conn, took: time } = landed;
                took = time;
                busy.retain(|record| !held.contains(record));
                // Overwritten, not added to: a count too low only makes a batch smaller, one too
                // high would make batches wait for writers that are not coming.
                expected = carried;
                idle.extend(conn);
            },
            // Nothing for a while: the connections go back to the pool, so that it can close,
            // and readers are not one short while no write is running.
            () = tokio::time::sleep(RELEASE_AFTER), if quiet && !idle.is_empty() => {
                idle.clear();
                expected = 0;
            },
            else => return,
        }
    }
}

/// Whether `request`'s record is in a statement in flight.
fn is_busy(request: &Request, busy: &[(&'static str, Value)]) -> bool {
    key_of(request.table, &request.op).is_some_and(|key| busy.iter().any(|(t, k)| *t == request.table.name && k == key))
}

/// A batch written: the records it held, how many writes it carried, its connection if it is fit
/// for another batch, and how long it took.
struct Landed<DB: Database> {
    held: Vec<(&'static str, Value)>,
    carried: usize,
    conn: Option<Kept<DB>>,
    took: Duration,
}

/// A connection the writer keeps between batches, and since when.
struct Kept<DB: Database> {
    conn: PoolConnection<DB>,
    since: Instant,
}

/// Writes `batch` on `conn`, or on a connection of the pool.
async fn fly<B: Committer>(
    core: Core<B>,
    kept: Option<Kept<B::Database>>,
    mut batch: Vec<Request>,
    held: Vec<(&'static str, Value)>,
) -> Landed<B::Database>
where
    for<'e> &'e mut <B::Database as Database>::Connection: Executor<'e, Database = B::Database>,
    <B::Database as Database>::Arguments: IntoArguments<B::Database>,
{
    let carried = batch.len();
    let start = Instant::now();
    let kept = match kept {
        Some(kept) => Ok(kept),
        None => core.pool.acquire().await.map(|conn| Kept { conn, since: Instant::now() }),
    };
    let conn = match kept {
        Ok(Kept { mut conn, since }) => {
            if write_batch::<B>(&core, &mut conn, &mut batch).await {
                Some(Kept { conn, since })
            } else {
                // A connection left in an unknown state is closed, not given back to the pool.
                conn.close_on_drop();
                None
            }
        }
        Err(err) => {
            answer_all(&mut batch, &B::storage_error(None, err));
            None
        }
    };
    Landed { held, carried, conn, took: start.elapsed() }
}

/// Waits, at most `wait`, until `last` writes are pending (none when `last` are already). The
/// writer's thread runs nothing else meanwhile: the writes come from the callers' threads.
fn fill(queue: &mut mpsc::UnboundedReceiver<Request>, pending: &mut VecDeque<Request>, last: usize, wait: Duration) {
    let until = Instant::now() + wait;
    while pending.len() < last && Instant::now() < until {
        match queue.try_recv() {
            Ok(request) => pending.push_back(request),
            Err(mpsc::error::TryRecvError::Empty) => std::thread::yield_now(),
            Err(mpsc::error::TryRecvError::Disconnected) => return,
        }
    }
}

/// The next batch from `pending`. With a [`Committer::BEGIN`]: every pending write, in order, up
/// to [`MAX_BATCH`] (nothing else is in flight). Without: the first write whose record is not
/// `busy`, and the writes after it that can share its statement ([`mergeable`]'s rule), each
/// record's writes kept in their order.
fn take<B: Committer>(core: &Core<B>, pending: &mut VecDeque<Request>, busy: &[(&'static str, Value)]) -> Vec<Request> {
    if B::BEGIN.is_some() {
        let n = pending.len().min(MAX_BATCH);
        return pending.drain(..n).collect();
    }
    let mut taken = Vec::new();
    // Records passed over: a later write of one of them must not overtake it.
    let mut passed: Vec<(&'static str, Value)> = Vec::new();
    let mut limit = MAX_MERGED;
    let mut index = 0;
    while index < pending.len() && taken.len() < limit {
        let request = &pending[index];
        let Some(key) = key_of(request.table, &request.op) else {
            // A write no statement shares (the writer takes none of these without a `BEGIN`):
            // alone, in its turn.
            if taken.is_empty() {
                taken.extend(pending.remove(index));
            }
            break;
        };
        let record = (request.table.name, key.clone());
        let first: Option<&Request> = taken.first();
        let fits = match first {
            None => true,
            Some(first) => {
                std::ptr::eq(first.table, request.table)
                    && batch_kind(&first.op) == batch_kind(&request.op)
                    && shareable::<B>(core, request.table, key)
            }
        };
        let free = !busy.contains(&record) && !passed.contains(&record);
        let again =
            taken.iter().any(|r: &Request| std::ptr::eq(r.table, request.table) && key_of(r.table, &r.op) == Some(key));
        if fits && free && !again {
            if taken.is_empty() {
                let state = B::table(&core.mappings, request.table);
                let chunk = batch_kind(&request.op).and_then(|kind| B::statements(&state).chunk(kind));
                limit = chunk.unwrap_or(1).min(MAX_MERGED);
                if !shareable::<B>(core, request.table, key) {
                    limit = 1;
                }
            }
            if let Some(request) = pending.remove(index) {
                taken.push(request);
            }
        } else {
            passed.push(record);
            index += 1;
        }
    }
    taken
}

/// Whether `key` can share a statement with other records of `table`: not a text key where the
/// table may compare text otherwise than byte for byte.
fn shareable<B: Committer>(core: &Core<B>, table: &'static TableDef, key: &Value) -> bool {
    !matches!(key, Value::Text(_)) || B::binary_text_keys(&B::table(&core.mappings, table))
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
    /// Inside [`Committer::BEGIN`] … `COMMIT`: each run of [`mergeable`] writes in one statement,
    /// the other writes one statement each.
    OneTransaction,
    /// One statement per write, inside [`Committer::BEGIN`] … `COMMIT` where there is one, else
    /// each in autocommit: after a statement of several writes failed, which does not say which
    /// of its writes failed.
    OneByOne,
}

impl Attempt {
    /// The first attempt at `batch`, whose writes share statements where they can.
    fn merged<B: Committer>(core: &Core<B>, batch: &[Request]) -> Attempt {
        match batch.len() {
            1 => Attempt::Alone,
            n if mergeable(core, batch).len() == n => Attempt::OneStatement,
            _ if B::BEGIN.is_some() => Attempt::OneTransaction,
            _ => Attempt::OneByOne,
        }
    }

    /// The attempt after a statement of several writes failed: one statement per write, which
    /// finds the write that failed.
    fn one_by_one(batch: &[Request]) -> Attempt {
        if batch.len() == 1 { Attempt::Alone } else { Attempt::OneByOne }
    }

    /// The attempt at what is left of `batch` once a write of this one failed by itself: the same
    /// way of writing.
    fn again<B: Committer>(self, core: &Core<B>, batch: &[Request]) -> Attempt {
        match self {
            Attempt::OneByOne => Attempt::one_by_one(batch),
            _ => Attempt::merged(core, batch),
        }
    }
}

/// How the writes of a transaction ([`Attempt::OneTransaction`], [`Attempt::OneByOne`]) ran,
/// before its commit.
enum Ran {
    /// Every write ran: their outcomes, in order, each with the number of writes of its
    /// statement, to be sent once the commit is done.
    All(Vec<(Result<Done>, usize)>),
    /// A statement of several writes failed, or a read describing one of its refusals did: which
    /// write failed is not known.
    StatementFailed,
    /// The write at this index failed by itself, with this answer (an error).
    WriteFailed(usize, Result<Done>),
}

/// Writes `batch` on `conn` and answers every request. Returns whether the connection is fit for
/// the next batch.
async fn write_batch<B: Committer>(
    core: &Core<B>,
    conn: &mut PoolConnection<B::Database>,
    batch: &mut Vec<Request>,
) -> bool
where
    for<'e> &'e mut <B::Database as Database>::Connection: Executor<'e, Database = B::Database>,
    <B::Database as Database>::Arguments: IntoArguments<B::Database>,
{
    let mut attempt = Attempt::merged(core, batch);
    loop {
        if attempt == Attempt::Alone {
            let request = batch.remove(0);
            let done = execute::<B>(&core.mappings, conn, request.table, &request.op).await;
            // After an error the connection may be broken (the server restarted, the network
            // dropped): it is not reused.
            let fit = done.is_ok();
            request.answer(done, 1, 1);
            return fit;
        }
        if attempt == Attempt::OneStatement {
            let keys = mergeable(core, batch);
            match execute_run(core, conn, batch, &keys).await {
                Ok(outcomes) => {
                    let n = outcomes.len();
                    let fit = outcomes.iter().all(Result::is_ok);
                    for (request, done) in batch.drain(..).zip(outcomes) {
                        request.answer(done, n, n);
                    }
                    return fit;
                }
                // Nothing written: again one statement per write, which finds the one that failed.
                Err(_) => attempt = Attempt::one_by_one(batch),
            }
            continue;
        }
        let Some(begin) = B::BEGIN else {
            // No transaction to share: each write in autocommit, with its own outcome.
            let mut fit = true;
            for request in batch.drain(..) {
                let done = execute::<B>(&core.mappings, conn, request.table, &request.op).await;
                fit &= done.is_ok();
                request.answer(done, 1, 1);
            }
            return fit;
        };
        if let Err(err) = sqlx::query(begin).execute(&mut **conn).await {
            let (err, fit) = B::begin_error(err);
            answer_all(batch, &err);
            // Any other refusal may mean the connection is already inside a transaction.
            return fit;
        }
        match run_in_transaction(core, conn, batch, attempt == Attempt::OneTransaction).await {
            Ran::All(outcomes) => {
                return match sqlx::query("COMMIT").execute(&mut **conn).await {
                    Ok(_) => {
                        let commit = outcomes.len();
                        for (request, (done, statement)) in batch.drain(..).zip(outcomes) {
                            request.answer(done, statement, commit);
                        }
                        true
                    }
                    Err(err) => {
                        let err = B::storage_error(None, err);
                        let fit = sqlx::query("ROLLBACK").execute(&mut **conn).await.is_ok() || rolled_back(conn).await;
                        answer_all(batch, &err);
                        fit
                    }
                };
            }
            Ran::StatementFailed => {
                // Which write failed is not known: roll back, and write the batch again one
                // statement per write, which finds it.
                if !roll_back(conn).await {
                    answer_all(batch, &could_not_roll_back::<B>());
                    return false;
                }
                attempt = Attempt::one_by_one(batch);
            }
            Ran::WriteFailed(index, done) => {
                // Some errors roll back the whole transaction; roll back in every case, answer the
                // write that failed, and write the others again without it.
                let fit = roll_back(conn).await;
                batch.remove(index).answer(done, 1, 1);
                if !fit {
                    answer_all(batch, &could_not_roll_back::<B>());
                    return false;
                }
                if batch.is_empty() {
                    return true;
                }
                attempt = attempt.again(core, batch);
            }
        }
    }
}

fn could_not_roll_back<B: Committer>() -> Error {
    StorageError::new(format!("the {} writer could not roll back a batch", B::NAME)).into()
}

/// Runs every write of `batch` inside the transaction open on `conn`, runs of [`mergeable`] writes
/// in one statement each where `merge` says so, until one fails.
async fn run_in_transaction<B: Committer>(
    core: &Core<B>,
    conn: &mut PoolConnection<B::Database>,
    batch: &[Request],
    merge: bool,
) -> Ran
where
    for<'e> &'e mut <B::Database as Database>::Connection: Executor<'e, Database = B::Database>,
    <B::Database as Database>::Arguments: IntoArguments<B::Database>,
{
    let mut outcomes = Vec::with_capacity(batch.len());
    while outcomes.len() < batch.len() {
        let index = outcomes.len();
        let keys = if merge { mergeable(core, &batch[index..]) } else { Vec::new() };
        if keys.len() > 1 {
            let run = &batch[index..index + keys.len()];
            match execute_run(core, conn, run, &keys).await {
                Ok(done) if done.iter().all(Result::is_ok) => outcomes.extend(done.into_iter().map(|d| (d, run.len()))),
                _ => return Ran::StatementFailed,
            }
            continue;
        }
        let request = &batch[index];
        let done = execute::<B>(&core.mappings, conn, request.table, &request.op).await;
        if done.is_err() {
            return Ran::WriteFailed(index, done);
        }
        outcomes.push((done, 1));
    }
    Ran::All(outcomes)
}

/// Rolls back the transaction open on `conn`; whether the connection is outside any transaction
/// afterwards.
async fn roll_back<DB: Database>(conn: &mut PoolConnection<DB>) -> bool
where
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    sqlx::query("ROLLBACK").execute(&mut **conn).await.is_ok() || rolled_back(conn).await
}

/// Whether `conn` is outside any transaction (a `ROLLBACK` that failed because the transaction
/// was already gone): `BEGIN` succeeds only there, and is undone at once.
async fn rolled_back<DB: Database>(conn: &mut PoolConnection<DB>) -> bool
where
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    sqlx::query("BEGIN").execute(&mut **conn).await.is_ok()
        && sqlx::query("ROLLBACK").execute(&mut **conn).await.is_ok()
}

/// Runs `op` on `conn` for `table`, whose schema is checked first.
async fn on_table<B: Committer, T>(
    mappings: &Mappings<B::Table>,
    conn: &mut PoolConnection<B::Database>,
    table: &'static TableDef,
    op: impl AsyncFnOnce(&mut OnConnection<'_, Conn<'_, B::Database>>) -> Result<T>,
) -> Result<T>
where
    for<'e> &'e mut <B::Database as Database>::Connection: Executor<'e, Database = B::Database>,
    <B::Database as Database>::Arguments: IntoArguments<B::Database>,
{
    let state = B::table(mappings, table);
    B::check(&state, conn, table).await?;
    op(&mut OnConnection { conn: &mut Conn::<B::Database>(&mut **conn), table, statements: B::statements(&state) })
        .await
}

/// One write on `conn`, checked as the statement of its kind is.
async fn execute<B: Committer>(
    mappings: &Mappings<B::Table>,
    conn: &mut PoolConnection<B::Database>,
    table: &'static TableDef,
    op: &Write,
) -> Result<Done>
where
    for<'e> &'e mut <B::Database as Database>::Connection: Executor<'e, Database = B::Database>,
    <B::Database as Database>::Arguments: IntoArguments<B::Database>,
{
    on_table::<B, _>(mappings, conn, table, async |on| op.execute(on).await).await
}

impl Write {
    /// This write as its own statement on `on`, checked as the statement of its kind is.
    pub(crate) async fn execute<C: SqlConnection + ?Sized>(&self, on: &mut OnConnection<'_, C>) -> Result<Done> {
        Ok(match self {
            Write::Insert(row) => Done::Inserted(on.insert(row).await?),
            Write::Update(row, expected) => Done::Written(on.update(row, *expected).await?),
            Write::Upsert(row) => Done::Upserted(on.upsert(row).await?),
            Write::Patch(key, columns, expected) => Done::Written(on.patch(key, columns, *expected).await?),
            Write::Delete(key, expected) => Done::Written(on.delete(key, *expected).await?),
        })
    }
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
fn mergeable<'r, B: Committer>(core: &Core<B>, requests: &'r [Request]) -> Vec<&'r Value> {
    let mut keys: Vec<&Value> = Vec::new();
    let Some(first) = requests.first() else { return keys };
    let Some(kind) = batch_kind(&first.op) else { return keys };
    let state = B::table(&core.mappings, first.table);
    let Some(chunk) = B::statements(&state).chunk(kind) else { return keys };
    for request in requests.iter().take(chunk.min(MAX_MERGED)) {
        let same = std::ptr::eq(request.table, first.table) && batch_kind(&request.op) == Some(kind);
        let key = key_of(first.table, &request.op)
            .filter(|key| same && !keys.contains(key))
            .filter(|key| !matches!(key, Value::Text(_)) || B::binary_text_keys(&state));
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
/// type.
async fn execute_run<B: Committer>(
    core: &Core<B>,
    conn: &mut PoolConnection<B::Database>,
    run: &[Request],
    keys: &[&Value],
) -> Result<Vec<Result<Done>>>
where
    for<'e> &'e mut <B::Database as Database>::Connection: Executor<'e, Database = B::Database>,
    <B::Database as Database>::Arguments: IntoArguments<B::Database>,
{
    let Some(table) = run.first().map(|r| r.table) else { return Ok(Vec::new()) };
    on_table::<B, _>(&core.mappings, conn, table, async |on| {
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

fn answer_all(batch: &mut Vec<Request>, err: &Error) {
    for request in batch.drain(..) {
        request.answer(Err(copy_of(err)), 1, 1);
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

#[cfg(all(test, feature = "conformance", feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::conformance::Person;
    use crate::entity::Entity;
    use crate::storage::sqlite::SqliteStorage;
    use crate::storage::{RowAccess, Storage};

    type Core = super::Core<SqliteStorage>;

    /// What the writer answered, without the sharing counts.
    async fn done_of(
        answer: oneshot::Receiver<Answer>,
    ) -> std::result::Result<Result<Done>, oneshot::error::RecvError> {
        answer.await.map(|a| a.done)
    }

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
        let core = storage.core();
        (storage, core)
    }

    fn update(id: i64, salary: i32, expected: u64) -> (Request, oneshot::Receiver<Answer>) {
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
        assert!(matches!(done_of(good_answer).await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        assert!(matches!(
            done_of(stale_answer).await,
            Ok(Ok(Done::Written(WriteOutcome::Rejected { current: Some(_) })))
        ));
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
            let answer = done_of(answer).await.expect("answered");
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
        assert!(matches!(done_of(first_answer).await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        assert!(matches!(done_of(failing_answer).await, Ok(Err(_))));
        assert!(matches!(done_of(last_answer).await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        drop(conn);
        let salaries = (salary(&storage, 1).await, salary(&storage, 2).await, salary(&storage, 3).await);
        assert_eq!(salaries, (10, 0, 30));
    }

    fn request(op: Write) -> (Request, oneshot::Receiver<Answer>) {
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
        assert!(matches!(done_of(one_answer).await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        assert!(matches!(done_of(two_answer).await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        let Ok(Ok(Done::Written(WriteOutcome::Rejected { current: Some(current) }))) = done_of(again_answer).await
        else {
            panic!("the second write of record 1 is refused")
        };
        assert_eq!(Person::from_row(current).expect("decode").salary, 10, "it saw the first write");
        assert!(matches!(done_of(taken_answer).await, Ok(Ok(Done::Inserted(false)))));
        assert!(matches!(done_of(new_answer).await, Ok(Ok(Done::Inserted(true)))));
        assert!(matches!(done_of(delete_answer).await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        assert!(matches!(
            done_of(stale_delete_answer).await,
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
        let core = storage.core();
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
        assert!(matches!(done_of(lower_answer).await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        assert!(matches!(
            done_of(upper_answer).await,
            Ok(Ok(Done::Written(WriteOutcome::Rejected { current: Some(_) })))
        ));
        drop(conn);
        let stored =
            storage.fetch(HighScore::TABLE, &Value::Text("ANN".into())).await.expect("fetch").expect("present");
        assert_eq!(HighScore::from_row(stored).expect("decode").score, 5);
        // The same table without a collation merges them (they are then two records).
        let plain = SqliteStorage::connect("sqlite::memory:").await.expect("open");
        plain.create_table(HighScore::TABLE).await.expect("create");
        assert!(plain.insert(HighScore::TABLE, row("Ann", 0, 1)).await.expect("insert"));
        let core = plain.core();
        let (a, _a) = request(Write::Update(row("Ann", 5, 2), 1));
        let (b, _b) = request(Write::Update(row("Bob", 7, 2), 1));
        assert_eq!(mergeable(&core, &[a, b]).len(), 2);
    }

    /// A connection is kept for the next batch after refusals, and closed after an error (it may
    /// be broken: a server restarted, a network dropped), never given back as it is.
    #[tokio::test]
    async fn a_connection_is_kept_after_refusals_and_closed_after_an_error() {
        let (_storage, core) = storage().await;
        let (good, good_answer) = update(1, 10, 1);
        let (stale, stale_answer) = update(3, 30, 9);
        let landed = fly(core.clone(), None, vec![good, stale], Vec::new()).await;
        assert!(matches!(done_of(good_answer).await, Ok(Ok(Done::Written(WriteOutcome::Applied)))));
        assert!(matches!(done_of(stale_answer).await, Ok(Ok(Done::Written(WriteOutcome::Rejected { .. })))));
        assert!(landed.conn.is_some(), "kept");
        // A write refused by a trigger that rolls back, alone: an error, not a refusal.
        let (failing, failing_answer) = update(2, 777, 1);
        let landed = fly(core, landed.conn, vec![failing], Vec::new()).await;
        assert!(matches!(done_of(failing_answer).await, Ok(Err(_))));
        assert!(landed.conn.is_none(), "closed");
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
        let writer = tokio::spawn(run::<SqliteStorage>(core, queue));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(salary(&storage, 1).await, 0);
        writer.abort();
    }
}
