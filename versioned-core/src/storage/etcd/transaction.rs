//! [`EtcdTransaction`]: optimistic, validated and applied by one etcd transaction at commit.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};

use super::cluster::{Cluster, LockWaiter, RecordState, Reply, put_record, read_record_op, unlocked};
use super::codec::RecordKeys;
use super::delete_record;
use super::history;
use crate::entity::TableDef;
use crate::error::{Error, Result, StorageError};
use crate::lock::LockWait;
use crate::revisions::{Written, now_micros};
use crate::storage::decisions::{self, DecidedWrites, Decision};
use crate::storage::evaluate::{self, Collector};
use crate::storage::select::{RowLock, Select};
use crate::storage::{LockingRead, SavepointStep, StorageTransaction, WriteOutcome};
use crate::value::{Row, Value};

/// A record a transaction touched: its table and key, for errors.
#[derive(Debug, Clone)]
struct Touched {
    table: &'static TableDef,
    key: Value,
}

/// What the transaction saw of a record when it first read it: the version key's revision (0:
/// no record), the version, and the row, which later reads return without asking etcd again
/// (commit fails if the record changed since, whatever was read).
#[derive(Debug, Clone)]
struct Seen {
    revision: i64,
    version: Option<u64>,
    row: Option<Row>,
}

/// Buffered writes: the new row, or `None` for a delete, by record; and, in write order, what
/// each write of a table keeping history leaves in it.
#[derive(Debug, Default, Clone)]
struct Buffered {
    rows: BTreeMap<RecordKeys, (Touched, Option<Row>)>,
    history: Vec<(RecordKeys, Written)>,
}

#[derive(Debug, Default)]
struct TxState {
    /// Every record read (writes read first), by key order: the order commit reports conflicts in.
    read: BTreeMap<RecordKeys, (Touched, Seen)>,
    written: Buffered,
    /// The buffered writes as they were when each open savepoint was set, outermost first.
    savepoints: Vec<Buffered>,
    /// Records locked by `fetch_for_update`.
    held: BTreeSet<RecordKeys>,
    /// A read-only transaction's revision: every read sees the cluster as of it.
    snapshot: Option<i64>,
}

/// A transaction of the [`EtcdStorage`](super::EtcdStorage): optimistic, validated at commit.
#[derive(Debug)]
pub struct EtcdTransaction {
    cluster: Arc<Cluster>,
    read_only: bool,
    /// The value of its lock keys.
    id: Vec<u8>,
    /// Held across each operation's requests, so that the operations of one transaction apply in
    /// the order they were called.
    state: tokio::sync::Mutex<TxState>,
    /// Set when the transaction ends through commit or rollback; a transaction dropped while it
    /// holds locks releases them from a task of its own.
    ended: bool,
}

impl Drop for EtcdTransaction {
    fn drop(&mut self) {
        let held = std::mem::take(&mut self.state.get_mut().held);
        if self.ended || held.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let (cluster, id) = (Arc::clone(&self.cluster), self.id.clone());
                runtime.spawn(async move { release(&cluster, &id, &held).await });
            }
            Err(_) => tracing::warn!(
                locks = held.len(),
                "an etcd transaction holding locks was dropped outside a tokio runtime: its locks stay until the \
                 connection's lease expires"
            ),
        }
    }
}

/// Deletes the lock keys of `held` that are still `id`'s. A lock whose delete fails (the leader
/// is changing, the member asked is down or paused) is tried again from a task of its own, with
/// growing pauses, for as long as a lock outlives a dead client (`lock_ttl`): a lock left behind
/// would block every writer of its record until its lease expired, and the connection renews
/// that lease while it lives. Only if the delete still fails then is the lease let go, so that
/// it expires.
async fn release(cluster: &Arc<Cluster>, id: &[u8], held: &BTreeSet<RecordKeys>) {
    let mut left = Vec::new();
    for keys in held {
        if let Err(e) = release_one(cluster, id, keys).await {
            tracing::debug!(error = %e, "could not release an etcd lock; trying again");
            left.push(keys.clone());
        }
    }
    if left.is_empty() {
        return;
    }
    let (cluster, id) = (Arc::clone(cluster), id.to_vec());
    tokio::spawn(async move {
        let ttl = Duration::from_secs(u64::try_from(cluster.options.lock_ttl).unwrap_or(0));
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        while !left.is_empty() {
            if started.elapsed() >= ttl {
                tracing::warn!(
                    locks = left.len(),
                    "could not release etcd locks; they stay until the connection's lease expires"
                );
                cluster.end_session().await;
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
            let mut still = Vec::new();
            for keys in left {
                if release_one(&cluster, &id, &keys).await.is_err() {
                    still.push(keys);
                }
            }
            left = still;
        }
    });
}

/// Deletes one record's lock key if it is still `id`'s (so a retry never takes another's).
async fn release_one(cluster: &Cluster, id: &[u8], keys: &RecordKeys) -> std::result::Result<(), etcd_client::Error> {
    let mine = Compare::value(keys.lock(), CompareOp::Equal, id.to_vec());
    let txn = Txn::new().when([mine]).and_then([TxnOp::delete(keys.lock(), None)]);
    cluster.client.kv_client().txn(txn).await.map(drop)
}

impl EtcdTransaction {
    pub(super) fn new(cluster: Arc<Cluster>, read_only: bool) -> Self {
        let id = cluster.unique().into_bytes();
        EtcdTransaction { cluster, read_only, id, state: Default::default(), ended: false }
    }

    /// The record as this transaction sees it: its own write if any, else the stored row
    /// (remembering its revision, for validation at commit).
    async fn seen(
        &self,
        state: &mut TxState,
        table: &'static TableDef,
        keys: &RecordKeys,
        key: &Value,
    ) -> Result<Option<Row>> {
        self.cluster.check_layout(table).await?;
        if let Some((_, row)) = state.written.rows.get(keys) {
            return Ok(row.clone());
        }
        if let Some((_, seen)) = state.read.get(keys) {
            return Ok(seen.row.clone());
        }
        let (stored, at) = self.cluster.read(table, keys, state.snapshot).await?;
        if self.read_only {
            state.snapshot.get_or_insert(at);
            return Ok(stored.row);
        }
        let version = stored.row.as_ref().map(|r| table.version_of(r)).transpose()?;
        let touched = Touched { table, key: key.clone() };
        let seen = Seen { revision: stored.revision, version, row: stored.row.clone() };
        state.read.entry(keys.clone()).or_insert((touched, seen));
        Ok(stored.row)
    }

    /// Locks the record for this transaction and reads it, in one etcd transaction: puts its lock
    /// key, attached to the connection's lease, if no one holds it; waits as `wait` says
    /// otherwise. Returns the record and the revision it was read at.
    async fn take_lock(
        &self,
        table: &'static TableDef,
        keys: &RecordKeys,
        key: &Value,
        wait: LockWait,
    ) -> Result<RecordState> {
        let lease = self.cluster.session().await?;
        let waiter = LockWaiter::new(wait);
        loop {
            // Sent as a write, with a marker: a request whose reply is lost (a leader change, a
            // paused member) is then known to have taken the lock or fenced off so that it never
            // can, never a lock put later, after this transaction gave up and released it.
            let put = TxnOp::put(keys.lock(), self.id.clone(), Some(PutOptions::new().with_lease(lease)));
            let reply = self
                .cluster
                .write(vec![unlocked(keys)], vec![put, read_record_op(keys)], vec![read_record_op(keys)])
                .await?;
            let (reply, taken) = match reply {
                Reply::Applied(Some(reply)) => (reply, true),
                Reply::Refused(reply) => (reply, false),
                Reply::Applied(None) => return Ok(self.cluster.read(table, keys, None).await?.0),
            };
            // The record's read, among the lock's and the marker's puts.
            let read = reply.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Get(range) => Some(range),
                _ => None,
            });
            let read = match read {
                Some(range) => RecordState::parse(table, keys, range.kvs())?,
                None => return Err(StorageError::new("etcd answered a lock request without the record").into()),
            };
            if taken || read.lock.as_deref() == Some(self.id.as_slice()) {
                return Ok(read);
            }
            if read.lock.is_some() {
                let revision = reply.header().map_or(0, |h| h.revision());
                waiter.wait(&self.cluster, table, keys, key, revision).await?;
            } // else released between the comparison and the read: try again
        }
    }

    /// The commit's comparisons and operations, and about how many bytes they make.
    fn commit_request(&self, state: &TxState) -> (Vec<Compare>, Vec<TxnOp>, usize) {
        // A little for each comparison and operation besides its key and value.
        const PER_ITEM: usize = 16;
        let mut bytes = 0;
        let mut compares = Vec::with_capacity(state.read.len() + state.written.rows.len());
        for (keys, (_, seen)) in &state.read {
            bytes += keys.prefix.len() + 1 + PER_ITEM;
            compares.push(match seen.version {
                Some(_) => Compare::mod_revision(keys.version(), CompareOp::Equal, seen.revision),
                None => Compare::version(keys.version(), CompareOp::Equal, 0),
            });
        }
        let mut ops = Vec::with_capacity(state.written.rows.len() * 3 + state.held.len());
        for (keys, (touched, row)) in &state.written.rows {
            bytes += 4 * (keys.prefix.len() + 1 + PER_ITEM);
            compares.push(match state.held.contains(keys) {
                true => Compare::value(keys.lock(), CompareOp::Equal, self.id.clone()),
                false => unlocked(keys),
            });
            match row {
                Some(row) => bytes += put_record(touched.table, keys, row, &mut ops),
                None => ops.push(delete_record(keys)),
            }
        }
        // Each record's history entries, in write order, with what its retention drops.
        let at = now_micros();
        let mut entries: BTreeMap<&RecordKeys, Vec<&Written>> = BTreeMap::new();
        for (keys, entry) in &state.written.history {
            entries.entry(keys).or_default().push(entry);
        }
        for (keys, entries) in entries {
            if let Some((touched, _)) = state.written.rows.get(keys)
                && let Some(def) = touched.table.history
            {
                bytes += history::record(touched.table, keys, def.keep, &entries, at, &mut ops);
            }
        }
        // Locks of records not deleted are released in the same step (a delete took its lock).
        for keys in &state.held {
            if !matches!(state.written.rows.get(keys), Some((_, None))) {
                bytes += keys.prefix.len() + 1 + PER_ITEM;
                ops.push(TxnOp::delete(keys.lock(), None));
            }
        }
        (compares, ops, bytes)
    }

    /// Why the commit's comparisons failed, reading each record once: the first record (in key
    /// order) that changed since it was read, as a conflict; else a record written here that
    /// another transaction holds (`Ok(Some)`: wait for it); else this transaction's own lock,
    /// expired. `Ok(None)`: nothing differs now (a lock was released meanwhile): try again.
    async fn refusal(&self, state: &TxState) -> Result<Option<(&'static TableDef, RecordKeys, Value, i64)>> {
        // The first record written here whose lock stands in the way, and whether the lock is
        // another transaction's (to wait for) or was this one's and expired.
        let mut locked: Option<(bool, &'static TableDef, &RecordKeys, &Value, i64)> = None;
        // Every record written was read first, so the read set covers them all.
        for (keys, (touched, seen)) in &state.read {
            let table = touched.table;
            let (stored, at) = self.cluster.read(table, keys, None).await?;
            let changed = match seen.version {
                Some(_) => stored.revision != seen.revision,
                None => stored.row.is_some(),
            };
            if changed {
                return Err(Error::ConcurrentModification {
                    table: table.name,
                    key: touched.key.clone(),
                    // Versions start at 1, so `expected: 0` says the transaction saw no record.
                    expected: seen.version.unwrap_or(0),
                    actual: stored.row.as_ref().and_then(|r| table.version_of(r).ok()),
                    current: stored.row,
                });
            }
            if locked.is_some() || !state.written.rows.contains_key(keys) {
                continue;
            }
            locked = match stored.lock {
                Some(holder) if holder != self.id => Some((true, table, keys, &touched.key, at)),
                None if state.held.contains(keys) => Some((false, table, keys, &touched.key, at)),
                _ => None,
            };
        }
        match locked {
            Some((true, table, keys, key, at)) => Ok(Some((table, keys.clone(), key.clone(), at))),
            Some((false, table, _, key, _)) => Err(StorageError::retryable(format!(
                "{} {key}: this transaction's lock expired before it committed (its client could not renew it \
                 within {} s); nothing was written",
                table.name, self.cluster.options.lock_ttl
            ))
            .into()),
            None => Ok(None),
        }
    }
}

impl DecidedWrites for EtcdTransaction {
    type Record = (RecordKeys, Value);

    fn record(&self, table: &'static TableDef, key: &Value) -> Result<(RecordKeys, Value)> {
        Ok((RecordKeys::new(self.cluster.prefix(), table, key)?, key.clone()))
    }

    async fn read(&self, table: &'static TableDef, (keys, key): (RecordKeys, Value)) -> Result<Option<Row>> {
        let mut state = self.state.lock().await;
        self.seen(&mut state, table, &keys, &key).await
    }

    async fn scan(&self, table: &'static TableDef, select: &Select, remember: bool) -> Result<Vec<Row>> {
        self.cluster.check_layout(table).await?;
        let mut state = self.state.lock().await;
        let (records, at) = self.cluster.candidates(table, &select.condition, state.snapshot).await?;
        if self.read_only {
            state.snapshot.get_or_insert(at);
        }
        let state = &mut *state;
        let mut found = Collector::new(select);
        let mut revisions = std::collections::HashMap::new();
        let mut present = std::collections::HashSet::new();
        for (keys, stored) in records {
            if stored.row.is_some() {
                present.insert(keys.clone());
            }
            if state.written.rows.contains_key(&keys) {
                continue;
            }
            // A record read before: the transaction goes on seeing what it saw (commit checks it).
            if let Some((_, seen)) = state.read.get(&keys) {
                if let Some(row) = &seen.row {
                    found.offer(Cow::Borrowed(row));
                }
                continue;
            }
            if let Some(row) = stored.row
                && found.offer(Cow::Borrowed(&row))
            {
                revisions.insert(keys, stored.revision);
            }
        }
        // Then its own writes.
        for (touched, row) in state.written.rows.values() {
            if let Some(row) = row.as_ref().filter(|_| touched.table.name == table.name) {
                found.offer(Cow::Borrowed(row));
            }
        }
        let found = found.finish();
        if remember && !self.read_only {
            // Keys named and absent, as `get` remembers them: an insert meanwhile fails the commit.
            for key in evaluate::keys_named(table, &select.condition).unwrap_or_default() {
                let keys = RecordKeys::new(self.cluster.prefix(), table, key)?;
                if !state.written.rows.contains_key(&keys) && !present.contains(&keys) {
                    let seen = Seen { revision: 0, version: None, row: None };
                    state.read.entry(keys).or_insert((Touched { table, key: key.clone() }, seen));
                }
            }
            for row in &found {
                let key = table.key_of(row)?;
                let keys = RecordKeys::new(self.cluster.prefix(), table, key)?;
                if let Some(revision) = revisions.get(&keys) {
                    let seen =
                        Seen { revision: *revision, version: Some(table.version_of(row)?), row: Some(row.clone()) };
                    state.read.entry(keys).or_insert((Touched { table, key: key.clone() }, seen));
                }
            }
        }
        Ok(found)
    }

    /// Locks the record (a lock key, as `get_for_update`), then remembers it as read as the lock
    /// request read it.
    async fn lock(&self, table: &'static TableDef, (keys, key): (RecordKeys, Value), how: RowLock) -> Result<bool> {
        self.cluster.check_layout(table).await?;
        let mut state = self.state.lock().await;
        if state.held.contains(&keys) {
            return Ok(true);
        }
        let wait = match how {
            RowLock::Wait(wait) => wait,
            RowLock::SkipLocked => LockWait::NoWait,
        };
        // Counted as held before the request, as in `fetch_for_update`.
        state.held.insert(keys.clone());
        let stored = match self.take_lock(table, &keys, &key, wait).await {
            Ok(stored) => stored,
            Err(e) => {
                if matches!(e, Error::LockTimeout { .. }) {
                    state.held.remove(&keys);
                    if how == RowLock::SkipLocked {
                        return Ok(false);
                    }
                }
                return Err(e);
            }
        };
        if !state.written.rows.contains_key(&keys) {
            let version = stored.row.as_ref().map(|r| table.version_of(r)).transpose()?;
            let seen = Seen { revision: stored.revision, version, row: stored.row };
            // What it read before stays what it sees and what commit checks, as for
            // `get_for_update`.
            state.read.entry(keys).or_insert((Touched { table, key }, seen));
        }
        Ok(true)
    }

    /// Decides one write against what the transaction sees, and buffers it.
    async fn write(
        &self,
        table: &'static TableDef,
        (keys, key): (RecordKeys, Value),
        decide: impl FnOnce(Option<&Row>) -> Result<Decision> + Send,
    ) -> Result<WriteOutcome> {
        if self.read_only {
            return Err(Error::ReadOnlyTransaction { operation: "write" });
        }
        let mut state = self.state.lock().await;
        let seen = self.seen(&mut state, table, &keys, &key).await?;
        Ok(match decide(seen.as_ref())?.applied() {
            None => WriteOutcome::Rejected { current: seen },
            Some(row) => {
                if table.history.is_some()
                    && let Some(entry) = Written::of(table, seen.as_ref(), row.as_ref())?
                {
                    state.written.history.push((keys.clone(), entry));
                }
                state.written.rows.insert(keys, (Touched { table, key }, row));
                WriteOutcome::Applied
            }
        })
    }
}

impl LockingRead for EtcdTransaction {
    async fn fetch_for_update(&self, table: &'static TableDef, key: &Value, wait: LockWait) -> Result<Option<Row>> {
        self.cluster.check_layout(table).await?;
        let (keys, key) = self.record(table, key)?;
        let mut state = self.state.lock().await;
        if state.held.contains(&keys) {
            return self.seen(&mut state, table, &keys, &key).await;
        }
        // Counted as held before the request: a transaction dropped while it waits for the reply
        // releases the lock it may have taken (releasing compares the holder, so it is harmless
        // if it had not).
        state.held.insert(keys.clone());
        let stored = match self.take_lock(table, &keys, &key, wait).await {
            Ok(stored) => stored,
            Err(e) => {
                // Not taken for sure only when the wait gave up; after a lost reply it may have
                // been, and the transaction's end releases it.
                if matches!(e, Error::LockTimeout { .. }) {
                    state.held.remove(&keys);
                }
                return Err(e);
            }
        };
        if let Some((_, row)) = state.written.rows.get(&keys) {
            return Ok(row.clone());
        }
        // Read before it was locked: the transaction goes on seeing that (commit checks it).
        if let Some((_, seen)) = state.read.get(&keys) {
            return Ok(seen.row.clone());
        }
        let version = stored.row.as_ref().map(|r| table.version_of(r)).transpose()?;
        let seen = Seen { revision: stored.revision, version, row: stored.row.clone() };
        state.read.entry(keys).or_insert((Touched { table, key }, seen));
        Ok(stored.row)
    }
}

impl StorageTransaction for EtcdTransaction {
    async fn savepoint(&self, step: SavepointStep) -> Result<()> {
        let state = &mut *self.state.lock().await;
        decisions::savepoint(&mut state.written, &mut state.savepoints, step)
    }

    async fn commit(mut self) -> Result<()> {
        // Dropped before it ends (the future cancelled), the transaction releases its locks on drop.
        let state = self.state.lock().await;
        let result = self.commit_state(&state).await;
        // Applied, the commit released the locks itself.
        if result.is_err() && !state.held.is_empty() {
            release(&self.cluster, &self.id, &state.held).await;
        }
        drop(state);
        self.ended = true;
        result
    }

    async fn rollback(mut self) -> Result<()> {
        // Dropped while releasing, the transaction releases its locks on drop.
        let EtcdTransaction { cluster, id, state, .. } = &mut self;
        release(cluster, id, &state.get_mut().held).await;
        self.ended = true;
        Ok(())
    }
}

impl EtcdTransaction {
    /// Validates and applies every buffered write in one etcd transaction.
    async fn commit_state(&self, state: &TxState) -> Result<()> {
        if state.written.rows.is_empty() && state.read.is_empty() {
            return Ok(());
        }
        let waiter = LockWaiter::new(self.cluster.options.lock_wait);
        // Built once: a commit that waited for a lock sends the same request again.
        let (compares, ops, size) = self.commit_request(state);
        let limit = self.cluster.options.max_request_bytes;
        if size > limit {
            return Err(StorageError::new(format!(
                "committing this transaction would send etcd about {size} bytes, more than the cluster's limit of \
                 {limit} (etcd's --max-request-bytes, EtcdOptions::max_request_bytes): write fewer or smaller \
                 records per transaction; nothing was sent"
            ))
            .into());
        }
        loop {
            match self.cluster.write(compares.clone(), ops.clone(), Vec::new()).await? {
                Reply::Applied(_) => return Ok(()),
                Reply::Refused(_) => {
                    if let Some((table, keys, key, at)) = self.refusal(state).await? {
                        waiter.wait(&self.cluster, table, &keys, &key, at).await?;
                    }
                }
            }
        }
    }
}
