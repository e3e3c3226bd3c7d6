//! A fault-injecting storage wrapper, and the test that drives every operation through it.
//!
//! [`Faulty`] wraps any backend (and its transactions) and, at each storage call, by a seeded schedule: fails
//! before the call reaches the backend, fails after it ran (a lost acknowledgement), delays it, or
//! asks the caller to drop the operation while the call is in flight. [`FaultPlan::drive`] runs
//! an operation and drops it when asked.

use std::collections::BTreeMap;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use super::{Account, AccountPatch, patient, setup};
use crate::entity::TableDef;
use crate::error::{Result, StorageError};
use crate::lock::LockWait;
use crate::patch::Check;
use crate::storage::select::{Condition, Select};
use crate::storage::{Capabilities, LockingRead, RowAccess, SavepointStep, Storage, StorageTransaction, WriteOutcome};
use crate::store::Store;
use crate::value::{Row, Value};

/// What [`Faulty`] does at one storage call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// The call goes through untouched.
    None,
    /// The call fails before it reaches the backend: nothing happened. The error is retryable,
    /// like a busy database's refusal.
    FailBefore,
    /// The call runs, then fails as if its acknowledgement was lost: it may have taken effect.
    /// The error is not retryable (retrying a write that may have happened could apply it twice).
    FailAfter,
    /// The call is delayed by up to 2 ms.
    Delay,
    /// The caller is asked to drop the operation while this call is in flight (the call itself
    /// carries on, as a statement already sent to a database does).
    Cancel,
}

/// A seeded schedule of faults, and the log of those injected.
#[derive(Debug)]
pub struct FaultPlan {
    state: Mutex<u64>,
    /// Out of 1000 calls, how many get each fault (the rest go through).
    rates: [(Fault, u64); 4],
    enabled: AtomicBool,
    cancel: AtomicBool,
    in_flight: AtomicUsize,
    log: Mutex<Vec<(&'static str, Fault)>>,
}

/// Counts a cancelled call as running until its future is done or dropped.
struct InFlight<'p>(&'p FaultPlan);

impl<'p> InFlight<'p> {
    fn start(plan: &'p FaultPlan) -> Self {
        plan.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(plan)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FaultPlan {
    /// A schedule from `seed`: out of every 1,000 calls, about 80 fail before, 40 fail after, 80
    /// are delayed and 40 ask for cancellation.
    pub fn new(seed: u64) -> Arc<Self> {
        Self::with_rates(
            seed,
            [(Fault::FailBefore, 80), (Fault::FailAfter, 40), (Fault::Delay, 80), (Fault::Cancel, 40)],
        )
    }

    /// A schedule with the given rates (per 1,000 calls) of each fault.
    pub fn with_rates(seed: u64, rates: [(Fault, u64); 4]) -> Arc<Self> {
        Arc::new(FaultPlan {
            state: Mutex::new(seed | 1),
            rates,
            enabled: AtomicBool::new(true),
            cancel: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            log: Mutex::default(),
        })
    }

    /// Turns injection on or off (off: every call goes through).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
    }

    /// Takes the log of the faults injected since the last call: (storage call, fault).
    pub fn take_log(&self) -> Vec<(&'static str, Fault)> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn random(&self, below: u64) -> u64 {
        let mut x = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x % below.max(1)
    }

    fn next(&self, call: &'static str) -> Fault {
        if !self.enabled.load(Ordering::SeqCst) {
            return Fault::None;
        }
        let mut roll = self.random(1000);
        for (fault, rate) in self.rates {
            if roll < rate {
                self.log.lock().unwrap_or_else(PoisonError::into_inner).push((call, fault));
                return fault;
            }
            roll -= rate;
        }
        Fault::None
    }

    /// Runs one storage call under the schedule.
    async fn inject<T>(&self, call: &'static str, op: impl Future<Output = Result<T>>) -> Result<T> {
        match self.next(call) {
            Fault::None => op.await,
            Fault::FailBefore => Err(StorageError::retryable(format!("injected fault before {call}")).into()),
            Fault::FailAfter => {
                let _ = op.await;
                Err(StorageError::new(format!("injected fault after {call} (acknowledgement lost)")).into())
            }
            Fault::Delay => {
                tokio::time::sleep(Duration::from_micros(self.random(2000))).await;
                op.await
            }
            Fault::Cancel => {
                // Dropped either before the call starts, or once it has run but before the
                // caller sees its result.
                self.cancel.store(true, Ordering::SeqCst);
                let _in_flight = InFlight::start(self);
                if self.random(2) == 0 {
                    tokio::task::yield_now().await;
                    op.await
                } else {
                    let out = op.await;
                    tokio::task::yield_now().await;
                    out
                }
            }
        }
    }

    /// Waits (up to 5 s) until no cancelled call is still running, such as a commit that goes on
    /// after its caller was dropped.
    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Runs `operation`, dropping it (`None`) as soon as it is pending after a storage call asked
    /// for cancellation.
    pub async fn drive<F: Future>(&self, operation: F) -> Option<F::Output> {
        self.cancel.store(false, Ordering::SeqCst);
        let mut operation = pin!(operation);
        poll_fn(|cx| match operation.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending if self.cancel.swap(false, Ordering::SeqCst) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await
    }
}

/// Any backend, or one of its transactions, with faults injected at each call by a
/// [`FaultPlan`]. One wrapper serves both: a storage's transaction is the wrapped transaction.
#[derive(Debug, Clone)]
pub struct Faulty<I> {
    inner: I,
    plan: Arc<FaultPlan>,
    calls: &'static Calls,
}

impl<S: Storage> Faulty<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, plan: Arc<FaultPlan>) -> Self {
        Faulty { inner, plan, calls: &AUTOCOMMIT }
    }

    /// Wraps a transaction this storage began.
    fn transaction(&self, inner: S::Transaction) -> Faulty<S::Transaction> {
        Faulty { inner, plan: Arc::clone(&self.plan), calls: &IN_TRANSACTION }
    }
}

/// The names a [`FaultPlan`] logs and schedules the row calls by: a call in a transaction is
/// not a commit, so it has a name of its own.
#[derive(Debug)]
struct Calls {
    fetch: &'static str,
    insert: &'static str,
    update: &'static str,
    upsert: &'static str,
    patch: &'static str,
    delete: &'static str,
}

const AUTOCOMMIT: Calls =
    Calls { fetch: "fetch", insert: "insert", update: "update", upsert: "upsert", patch: "patch", delete: "delete" };

const IN_TRANSACTION: Calls = Calls {
    fetch: "tx.fetch",
    insert: "tx.insert",
    update: "tx.update",
    upsert: "tx.upsert",
    patch: "tx.patch",
    delete: "tx.delete",
};

impl<I: RowAccess> RowAccess for Faulty<I> {
    async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        self.plan.inject(self.calls.fetch, self.inner.fetch(table, key)).await
    }

    async fn select(&self, table: &'static TableDef, select: &Select) -> Result<Vec<Row>> {
        self.plan.inject(self.calls.fetch, self.inner.select(table, select)).await
    }

    async fn count(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        self.plan.inject(self.calls.fetch, self.inner.count(table, condition)).await
    }

    async fn update_where(
        &self,
        table: &'static TableDef,
        condition: &Condition,
        columns: &[(usize, Value)],
    ) -> Result<u64> {
        self.plan.inject(self.calls.update, self.inner.update_where(table, condition, columns)).await
    }

    async fn delete_where(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        self.plan.inject(self.calls.delete, self.inner.delete_where(table, condition)).await
    }

    async fn insert(&self, table: &'static TableDef, row: Row) -> Result<bool> {
        self.plan.inject(self.calls.insert, self.inner.insert(table, row)).await
    }

    async fn update(&self, table: &'static TableDef, row: Row, expected: u64) -> Result<WriteOutcome> {
        self.plan.inject(self.calls.update, self.inner.update(table, row, expected)).await
    }

    async fn upsert(&self, table: &'static TableDef, row: Row) -> Result<Option<u64>> {
        self.plan.inject(self.calls.upsert, self.inner.upsert(table, row)).await
    }

    async fn patch(
        &self,
        table: &'static TableDef,
        key: &Value,
        columns: &[(usize, Value)],
        expected: u64,
    ) -> Result<WriteOutcome> {
        self.plan.inject(self.calls.patch, self.inner.patch(table, key, columns, expected)).await
    }

    async fn delete(&self, table: &'static TableDef, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        self.plan.inject(self.calls.delete, self.inner.delete(table, key, expected)).await
    }
}

impl<S: Storage> Storage for Faulty<S> {
    type Transaction = Faulty<S::Transaction>;

    async fn create_table(&self, table: &'static TableDef) -> Result<()> {
        self.inner.create_table(table).await
    }

    async fn history(
        &self,
        table: &'static TableDef,
        key: &Value,
        version: Option<u64>,
    ) -> Result<Vec<crate::revisions::HistoryRow>> {
        self.plan.inject("history", self.inner.history(table, key, version)).await
    }

    async fn begin(&self) -> Result<Self::Transaction> {
        let inner = self.plan.inject("begin", self.inner.begin()).await?;
        Ok(self.transaction(inner))
    }

    async fn begin_with_lock_wait(&self, wait: LockWait) -> Result<Self::Transaction> {
        let inner = self.plan.inject("begin", self.inner.begin_with_lock_wait(wait)).await?;
        Ok(self.transaction(inner))
    }

    async fn begin_read_only(&self) -> Result<Self::Transaction> {
        let inner = self.plan.inject("begin", self.inner.begin_read_only()).await?;
        Ok(self.transaction(inner))
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

impl<X: LockingRead> LockingRead for Faulty<X> {
    async fn fetch_for_update(&self, table: &'static TableDef, key: &Value, wait: LockWait) -> Result<Option<Row>> {
        self.plan.inject("tx.fetch_for_update", self.inner.fetch_for_update(table, key, wait)).await
    }
}

impl<X: StorageTransaction> StorageTransaction for Faulty<X> {
    async fn savepoint(&self, step: SavepointStep) -> Result<()> {
        self.plan.inject("tx.savepoint", self.inner.savepoint(step)).await
    }

    async fn commit(self) -> Result<()> {
        self.plan.inject("commit", self.inner.commit()).await
    }

    async fn rollback(self) -> Result<()> {
        self.plan.inject("rollback", self.inner.rollback()).await
    }
}

/// The storage calls after which a lost acknowledgement leaves it open whether data was written.
const COMMITTING: [&str; 6] = ["insert", "update", "upsert", "patch", "delete", "commit"];

/// The accounts as stored: id -> (balance, version).
type Accounts = BTreeMap<i32, (i64, u64)>;

/// Every account, read locked in one transaction, so that a commit landing meanwhile is seen
/// whole (at READ COMMITTED each statement has a snapshot of its own).
async fn accounts<S: Storage>(store: &Store<S>) -> Accounts {
    store
        .transaction_with_retry(patient(), |tx| async move {
            let mut all = Accounts::new();
            for id in 1..=4 {
                if let Some(a) = tx.get_for_update::<Account>(&id).await? {
                    all.insert(id, (a.balance, a.version));
                }
            }
            Ok(all)
        })
        .await
        .expect("read without faults")
}

/// One operation of the fault test, and what the store holds after it succeeds.
#[derive(Debug, Clone, Copy)]
enum Op {
    Insert(i32, i64),
    PutFresh(i32, i64),
    PutStale(i32, i64),
    PutUnchecked(i32, i64),
    Patch(i32, i64, bool),
    Touch(i32),
    Delete(i32),
    DeleteUnchecked(i32),
    Update(i32, i64),
    Transfer(i32, i32, i64),
}

impl Op {
    fn random(r: &FaultPlan) -> Op {
        let id = 1 + r.random(4) as i32;
        let other = 1 + (id + r.random(3) as i32) % 4; // never `id`
        let amount = r.random(100) as i64;
        match r.random(10) {
            0 => Op::Insert(id, amount),
            1 => Op::PutFresh(id, amount),
            2 => Op::PutStale(id, amount),
            3 => Op::PutUnchecked(id, amount),
            4 => Op::Patch(id, amount, r.random(2) == 0),
            5 => Op::Touch(id),
            6 => Op::Delete(id),
            7 => Op::DeleteUnchecked(id),
            8 => Op::Update(id, amount),
            _ => Op::Transfer(id, other, amount),
        }
    }

    /// The state after this operation succeeds on `before` (what it changes, if it applies).
    fn apply(self, before: &Accounts) -> Accounts {
        let mut after = before.clone();
        let bump = |after: &mut Accounts, id: i32, balance: i64| {
            if let Some((b, v)) = after.get_mut(&id) {
                *b = balance;
                *v += 1;
            }
        };
        match self {
            Op::Insert(id, amount) => {
                after.entry(id).or_insert((amount, 1));
            }
            Op::PutFresh(id, amount) | Op::Patch(id, amount, _) => bump(&mut after, id, amount),
            Op::PutStale(..) => {}
            Op::PutUnchecked(id, amount) => {
                let version = after.get(&id).map_or(0, |(_, v)| *v);
                after.insert(id, (amount, version + 1));
            }
            Op::Touch(id) => {
                let balance = after.get(&id).map(|(b, _)| *b);
                if let Some(balance) = balance {
                    bump(&mut after, id, balance);
                }
            }
            Op::Delete(id) | Op::DeleteUnchecked(id) => {
                after.remove(&id);
            }
            Op::Update(id, amount) => {
                let balance = after.get(&id).map(|(b, _)| *b + amount);
                if let Some(balance) = balance {
                    bump(&mut after, id, balance);
                }
            }
            Op::Transfer(from, to, amount) => {
                if after.contains_key(&from) && after.contains_key(&to) {
                    let (f, t) = (after[&from].0 - amount, after[&to].0 + amount);
                    bump(&mut after, from, f);
                    bump(&mut after, to, t);
                }
            }
        }
        after
    }

    async fn run<S: Storage>(self, store: &Store<S>, before: &Accounts) -> Result<()> {
        let copy = |id: i32, balance: i64, stale: bool| {
            let version = before.get(&id).map_or(0, |(_, v)| *v);
            Account { id, balance, version: if stale { version.saturating_sub(1) } else { version } }
        };
        match self {
            Op::Insert(id, amount) => store.insert(&mut copy(id, amount, false)).await,
            Op::PutFresh(id, amount) => store.put(&mut copy(id, amount, false)).await,
            Op::PutStale(id, amount) => store.put(&mut copy(id, amount, true)).await,
            Op::PutUnchecked(id, amount) => store.put_unchecked(&mut copy(id, amount, true)).await,
            Op::Patch(id, amount, checked) => {
                let version = before.get(&id).map_or(0, |(_, v)| *v);
                let check = if checked { Check::Version(version) } else { Check::Unchecked };
                store.patch::<Account>(&id, AccountPatch::default().balance(amount), check).await.map(drop)
            }
            Op::Touch(id) => store.touch(&mut copy(id, 0, false)).await,
            Op::Delete(id) => store.delete(&copy(id, 0, false)).await,
            Op::DeleteUnchecked(id) => store.delete_unchecked::<Account>(&id).await.map(drop),
            Op::Update(id, amount) => {
                store.update::<Account, _>(&id, Default::default(), |a| a.balance += amount).await
            }
            Op::Transfer(from, to, amount) => {
                store.transaction(|tx| async move { super::transfer(&tx, from, to, amount).await }).await
            }
        }
    }
}

/// Every operation, run through a [`Faulty`] storage that fails, delays and cancels storage calls
/// by a seeded schedule: an operation that returned `Ok` is applied exactly; one that returned
/// `Err` wrote nothing, unless a committing call lost its acknowledgement (then it is applied
/// whole or not at all); one that was dropped is applied whole or not at all. Each outcome is
/// compared with the model of the semantics table, so every later operation checks the state
/// the earlier ones left.
pub async fn faults_never_leave_half_an_operation<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let plan = FaultPlan::new(0x5eed_f417);
    let faulty = Store::new(Faulty::new(store.backend().clone(), Arc::clone(&plan)));
    let mut model = Accounts::new();
    let mut injected: BTreeMap<Fault, u64> = BTreeMap::new();
    let (mut ok, mut failed, mut dropped, mut ambiguous) = (0, 0, 0, 0);

    for step in 0..600 {
        let op = Op::random(&plan);
        let before = model.clone();
        let applied = op.apply(&before);
        let outcome = plan.drive(op.run(&faulty, &before)).await;
        let log = plan.take_log();
        for (_, fault) in &log {
            *injected.entry(*fault).or_default() += 1;
        }
        let lost_ack = log.iter().any(|(call, fault)| *fault == Fault::FailAfter && COMMITTING.contains(call));
        let allowed: Vec<&Accounts> = match &outcome {
            Some(Ok(())) => {
                ok += 1;
                vec![&applied]
            }
            Some(Err(_)) if lost_ack => {
                ambiguous += 1;
                vec![&before, &applied]
            }
            Some(Err(_)) => {
                failed += 1;
                vec![&before]
            }
            None => {
                dropped += 1;
                vec![&before, &applied]
            }
        };
        // A dropped operation's statement, or a decided commit, may still be finishing: wait
        // for the calls the plan knows of, then give a statement already handed to a database
        // connection time to land, so the next operation starts from a settled state.
        plan.settle().await;
        if outcome.is_none() || lost_ack {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let now = loop {
            let now = accounts(store).await;
            if allowed.contains(&&now) || Instant::now() > deadline {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        assert!(
            allowed.contains(&&now),
            "step {step}: {op:?} ended {outcome:?} with faults {log:?}\nbefore:   {before:?}\nallowed:  {allowed:?}\nstored:   {now:?}"
        );
        model = now;
    }
    plan.set_enabled(false);
    let total: u64 = injected.values().sum();
    println!(
        "fault injection: 600 operations ({ok} ok, {failed} failed cleanly, {ambiguous} with a lost acknowledgement, \
         {dropped} dropped); {total} faults injected: {injected:?}"
    );
    assert!(total > 100 && ok > 100 && failed > 20 && dropped > 5, "the schedule must exercise every outcome");
}
