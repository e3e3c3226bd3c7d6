//! Requests to the etcd cluster: reads of a record, write transactions that can tell whether a
//! write whose reply was lost was applied, and waits for a record's lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, KeyValue, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
    WatchOptions,
};

use super::codec::{self, RecordKeys};
use super::settings::EtcdOptions;
use crate::entity::{ColumnDef, ColumnRole, TableDef};
use crate::error::{Error, Result, StorageError};
use crate::lock::LockWait;
use crate::storage::evaluate;
use crate::storage::select::{Comparison, Condition};
use crate::value::{Row, Value};

/// A lease for the markers of writes: granted for [`MARKER_TTL`], used for new markers during
/// its first [`MARKER_USE`], so a marker lives at least `MARKER_TTL - MARKER_USE` after its write.
const MARKER_TTL: i64 = 120;
const MARKER_USE: Duration = Duration::from_secs(30);
/// How long a write whose reply was lost keeps asking whether it was applied.
const RESOLVE_FOR: Duration = Duration::from_secs(30);

/// A connection to the cluster, shared by every clone of the storage and its transactions.
pub(super) struct Cluster {
    pub(super) client: Client,
    pub(super) options: EtcdOptions,
    /// Random, per connection: names its markers and its transactions' locks.
    id: u64,
    counter: AtomicU64,
    marker_lease: tokio::sync::Mutex<Option<(i64, Instant)>>,
    /// The lease of this connection's record locks, renewed while the connection lives.
    session: tokio::sync::Mutex<Option<Session>>,
    /// The struct mappings (`TableDef` addresses) found to match their table's recorded schema.
    matched: std::sync::Mutex<std::collections::HashSet<usize>>,
    /// How many keys queries have read: what the tests of indexes count.
    pub(super) keys_read: AtomicU64,
}

/// A lease renewed by a task of its own until dropped, then revoked.
struct Session {
    id: i64,
    renewal: tokio::task::JoinHandle<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let Some(session) = self.session.get_mut().take() else { return };
        session.renewal.abort();
        // Revoking releases every lock at once; without a runtime, they expire with the lease.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let mut leases = self.client.lease_client();
            runtime.spawn(async move {
                let _ = leases.revoke(session.id).await;
            });
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("options", &self.options).finish_non_exhaustive()
    }
}

/// What a record's keys hold.
#[derive(Debug, Default)]
pub(super) struct RecordState {
    /// The row, if the record exists.
    pub(super) row: Option<Row>,
    /// The version key's `mod_revision` (0: no record): what a compare-and-swap compares.
    pub(super) revision: i64,
    /// The lock key's value (the holder's id), if a transaction holds the record.
    pub(super) lock: Option<Vec<u8>>,
}

impl RecordState {
    /// The stored record from the keys a range request over its prefix returned.
    pub(super) fn parse(table: &TableDef, keys: &RecordKeys, kvs: &[KeyValue]) -> Result<Self> {
        let (mut row, mut version, mut created, mut stored) = (None, None, None, RecordState::default());
        for kv in kvs {
            match keys.part_of(kv.key()) {
                Some(b'r') => row = Some(kv.value()),
                Some(b'v') => {
                    version = Some(kv.value());
                    stored.revision = kv.mod_revision();
                }
                Some(b'c') => created = Some(kv.value()),
                Some(b'l') => stored.lock = Some(kv.value().to_vec()),
                _ => {}
            }
        }
        stored.row = match (row, version) {
            (Some(row), Some(version)) => Some(codec::decode_row(table, row, version, created)?),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::decode(table, table.version_column().name, "the record has no version key"));
            }
            (None, Some(_)) => {
                return Err(Error::decode(table, table.key_column().name, "the record has a version but no row key"));
            }
        };
        Ok(stored)
    }

    /// The stored record from a transaction's `Else` branch, whose first response is the range.
    pub(super) fn from_reply(table: &TableDef, keys: &RecordKeys, reply: &TxnResponse) -> Result<Self> {
        match reply.op_responses().first() {
            Some(TxnOpResponse::Get(range)) => Self::parse(table, keys, range.kvs()),
            _ => Err(StorageError::new("etcd answered a refused write without the record it read").into()),
        }
    }
}

/// How a write transaction came out.
pub(super) enum Reply {
    /// Its comparisons held and its operations were applied: the `Then` branch's responses, or
    /// `None` when the reply was lost and the write's marker told that it was applied.
    Applied(Option<TxnResponse>),
    /// A comparison failed; the `Else` branch's responses.
    Refused(TxnResponse),
}

/// A request's error: retryable when the cluster may answer a retry (no leader, a member down, a
/// timeout), not when the request itself is wrong.
pub(super) fn request_error(e: etcd_client::Error) -> Error {
    if possibly_unanswered(&e) { StorageError::retryable(e).into() } else { StorageError::new(e).into() }
}

/// Whether the request may have reached the cluster without its reply reaching us.
fn possibly_unanswered(e: &etcd_client::Error) -> bool {
    use tonic::Code;
    match e {
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::Unknown
                | Code::Internal
                | Code::Cancelled
        ),
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// A range request over `prefix`.
fn prefix_options(revision: Option<i64>) -> GetOptions {
    let options = GetOptions::new().with_prefix();
    match revision {
        Some(revision) => options.with_revision(revision),
        None => options,
    }
}

/// Appends the operations that write a whole record (its row, version and, where the table has
/// one, creation time) from `row`; returns how many bytes of keys and values they carry.
pub(super) fn put_record(table: &'static TableDef, keys: &RecordKeys, row: &Row, ops: &mut Vec<TxnOp>) -> usize {
    let mut parts = vec![
        (keys.row(), codec::row_bytes(table, row)),
        (keys.version(), codec::value_bytes(row.get(table.version).unwrap_or(&Value::Null))),
    ];
    if let Some(index) = table.column_with(ColumnRole::CreatedAt) {
        parts.push((keys.created(), codec::value_bytes(row.get(index).unwrap_or(&Value::Null))));
    }
    for (column, value) in indexed(table, row) {
        parts.push((keys.index_key(column, value), Vec::new()));
    }
    let bytes = parts.iter().map(|(key, value)| key.len() + value.len()).sum();
    ops.extend(parts.into_iter().map(|(key, value)| TxnOp::put(key, value, None)));
    bytes
}

/// The `#[versioned(index)]` columns of `table` (its key aside) and their values in `row`.
pub(super) fn indexed<'r>(
    table: &'static TableDef,
    row: &'r Row,
) -> impl Iterator<Item = (&'static ColumnDef, &'r Value)> {
    table
        .columns
        .iter()
        .enumerate()
        .filter(move |(i, c)| c.indexed && *i != table.key)
        .map(move |(i, c)| (c, row.get(i).unwrap_or(&Value::Null)))
}

/// Reads the record's keys: the `Else` branch of a write, to report what refused it.
pub(super) fn read_record_op(keys: &RecordKeys) -> TxnOp {
    TxnOp::get(keys.prefix.clone(), Some(GetOptions::new().with_prefix()))
}

/// No transaction holds the record's lock.
pub(super) fn unlocked(keys: &RecordKeys) -> Compare {
    Compare::version(keys.lock(), CompareOp::Equal, 0)
}

impl Cluster {
    pub(super) fn new(client: Client, options: EtcdOptions) -> Self {
        // Distinct per connection in one process (the address of a fresh allocation and the time)
        // and across processes (the hasher's random seed).
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        std::process::id().hash(&mut hasher);
        std::time::SystemTime::now().hash(&mut hasher);
        Cluster {
            client,
            options,
            id: hasher.finish(),
            counter: AtomicU64::new(0),
            marker_lease: Default::default(),
            session: Default::default(),
            matched: Default::default(),
            keys_read: AtomicU64::new(0),
        }
    }

    /// Refuses, before anything is read or written, a struct whose columns differ from those its
    /// table's records are laid out by (the schema `create_table`, or the first struct used on
    /// the table, recorded): records are stored by column position, so another struct would read
    /// and write the wrong columns. Asked of etcd once per struct and connection, until it holds.
    pub(super) async fn check_layout(&self, table: &'static TableDef) -> Result<()> {
        let address = std::ptr::from_ref(table) as usize;
        let matched = |set: &std::sync::Mutex<std::collections::HashSet<usize>>| {
            set.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&address)
        };
        if matched(&self.matched) {
            return Ok(());
        }
        // A table no struct has used yet takes this one's layout, as `create_table` would record it.
        let key = codec::schema_key(self.prefix(), table);
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), codec::schema(table), None::<PutOptions>)])
            .or_else([TxnOp::get(key, None)]);
        let reply = self.client.kv_client().txn(txn).await.map_err(request_error)?;
        let recorded = match reply.op_responses().first() {
            Some(TxnOpResponse::Get(range)) => range.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        };
        if let Some(recorded) = recorded {
            let recorded = String::from_utf8_lossy(&recorded);
            if !codec::same_schema(table, &recorded) {
                let column = codec::first_difference(table, &recorded);
                return Err(Error::decode(
                    table,
                    column,
                    format!(
                        "the etcd table keeps its records in the column layout it was created with ({recorded}), \
                         and {} has other columns: on etcd every struct of a table must declare the same \
                         columns in the same order",
                        table.entity
                    ),
                ));
            }
        }
        self.matched.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(address);
        Ok(())
    }

    /// A name no other write or transaction of any connection uses.
    pub(super) fn unique(&self) -> String {
        format!("{:016x}{:016x}", self.id, self.counter.fetch_add(1, Ordering::Relaxed))
    }

    pub(super) fn prefix(&self) -> &[u8] {
        self.options.prefix.as_bytes()
    }

    /// The record's keys and the revision of the read (`revision`: read as of that revision).
    pub(super) async fn read(
        &self,
        table: &TableDef,
        keys: &RecordKeys,
        revision: Option<i64>,
    ) -> Result<(RecordState, i64)> {
        let reply = self.client.kv_client().get(keys.prefix.clone(), Some(prefix_options(revision))).await;
        let reply = reply.map_err(request_error)?;
        let at = reply.header().map_or(0, |h| h.revision());
        Ok((RecordState::parse(table, keys, reply.kvs())?, at))
    }

    /// The records of `table` that may meet `condition` (as of `revision`, if given), and the
    /// revision read at: those its keys name (`get_many`), those an index names when the condition
    /// requires an indexed column to equal one of a few values, every record otherwise. The
    /// caller evaluates the condition.
    pub(super) async fn candidates(
        &self,
        table: &'static TableDef,
        condition: &Condition,
        revision: Option<i64>,
    ) -> Result<(Vec<(RecordKeys, RecordState)>, i64)> {
        let mut at = revision;
        let mut named = if let Some(keys) = evaluate::keys_named(table, condition) {
            keys.into_iter().map(|key| RecordKeys::new(self.prefix(), table, key)).collect::<Result<Vec<_>>>()?
        } else if let Some((column, values)) = indexed_equality(table, condition) {
            self.index_entries(table, column, values, &mut at).await?
        } else {
            return self.scan(table, revision).await;
        };
        named.sort();
        named.dedup();
        // The records named, many to a request, all as of one revision (the entries', if read):
        // one moment, as a scan reads. A transaction's reads may each name a revision.
        let mut records = Vec::with_capacity(named.len());
        for chunk in named.chunks(self.options.max_txn_ops.clamp(1, 64)) {
            let as_of = match at {
                Some(at) => GetOptions::new().with_prefix().with_revision(at),
                None => GetOptions::new().with_prefix(),
            };
            let reads: Vec<TxnOp> =
                chunk.iter().map(|keys| TxnOp::get(keys.prefix.clone(), Some(as_of.clone()))).collect();
            let reply = self.client.kv_client().txn(Txn::new().and_then(reads)).await.map_err(request_error)?;
            at.get_or_insert(reply.header().map_or(0, |h| h.revision()));
            for (keys, response) in chunk.iter().zip(reply.op_responses()) {
                let TxnOpResponse::Get(range) = response else {
                    return Err(StorageError::new("etcd answered a read with something else").into());
                };
                records.push((keys.clone(), RecordState::parse(table, keys, range.kvs())?));
            }
        }
        self.keys_read.fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok((records, at.unwrap_or(0)))
    }

    /// The records the index of `column` names for `values` (as of `at`, set to the revision read
    /// at if unset).
    async fn index_entries(
        &self,
        table: &'static TableDef,
        column: &'static ColumnDef,
        values: Vec<&Value>,
        at: &mut Option<i64>,
    ) -> Result<Vec<RecordKeys>> {
        let mut named = Vec::new();
        for value in values {
            let prefix = codec::index_prefix(self.prefix(), table, column, value);
            let mut options = GetOptions::new().with_prefix().with_keys_only();
            if let Some(at) = *at {
                options = options.with_revision(at);
            }
            let reply = self.client.kv_client().get(prefix.clone(), Some(options)).await.map_err(request_error)?;
            at.get_or_insert(reply.header().map_or(0, |h| h.revision()));
            self.keys_read.fetch_add(reply.kvs().len() as u64, Ordering::Relaxed);
            named.extend(
                reply.kvs().iter().filter_map(|kv| codec::indexed_record(self.prefix(), table, &prefix, kv.key())),
            );
        }
        Ok(named)
    }

    /// Every record of `table` (as of `revision`, if given), read in ranges of a bounded number
    /// of keys, all at the revision of the first; and that revision.
    pub(super) async fn scan(
        &self,
        table: &TableDef,
        revision: Option<i64>,
    ) -> Result<(Vec<(RecordKeys, RecordState)>, i64)> {
        /// Keys per range request: a few hundred records, well below etcd's reply size limit.
        const KEYS_PER_REQUEST: i64 = 1_000;
        let prefix = codec::table_records(self.prefix(), table);
        let end = codec::prefix_end(&prefix);
        let (mut records, mut at, mut from) = (Vec::new(), revision, prefix);
        // The parts of one record come one after another in key order; a request may end
        // inside a record, whose parts the next one continues.
        let mut current: Option<(RecordKeys, Vec<KeyValue>)> = None;
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(KEYS_PER_REQUEST);
            if let Some(at) = at {
                options = options.with_revision(at);
            }
            let reply = self.client.kv_client().get(from.clone(), Some(options)).await.map_err(request_error)?;
            at.get_or_insert(reply.header().map_or(0, |h| h.revision()));
            self.keys_read.fetch_add(reply.kvs().len() as u64, Ordering::Relaxed);
            for kv in reply.kvs() {
                let Some((_, record)) = kv.key().split_last() else { continue };
                if current.as_ref().is_none_or(|(keys, _)| keys.prefix != record) {
                    if let Some((keys, kvs)) = current.take() {
                        let state = RecordState::parse(table, &keys, &kvs)?;
                        records.push((keys, state));
                    }
                    current = Some((RecordKeys { prefix: record.to_vec() }, Vec::new()));
                }
                if let Some((_, kvs)) = current.as_mut() {
                    kvs.push(kv.clone());
                }
            }
            match reply.kvs().last() {
                Some(last) if reply.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        if let Some((keys, kvs)) = current {
            let state = RecordState::parse(table, &keys, &kvs)?;
            records.push((keys, state));
        }
        Ok((records, at.unwrap_or(0)))
    }

    /// The lease of new markers, granted anew when the current one has been used for long enough.
    async fn marker_lease(&self) -> Result<i64> {
        let mut lease = self.marker_lease.lock().await;
        match *lease {
            Some((id, since)) if since.elapsed() < MARKER_USE => Ok(id),
            _ => {
                let granted = self.client.lease_client().grant(MARKER_TTL, None).await.map_err(request_error)?;
                *lease = Some((granted.id(), Instant::now()));
                Ok(granted.id())
            }
        }
    }

    /// The lease of this connection's locks: granted at the first lock and renewed three times per
    /// time to live while the connection lives, so the locks of a client that died expire.
    pub(super) async fn session(&self) -> Result<i64> {
        let mut session = self.session.lock().await;
        if let Some(session) = &*session
            && !session.renewal.is_finished()
        {
            return Ok(session.id);
        }
        let ttl = self.options.lock_ttl;
        let granted = self.client.lease_client().grant(ttl, None).await.map_err(request_error)?;
        let id = granted.id();
        let (mut keeper, mut replies) = self.client.lease_client().keep_alive(id).await.map_err(request_error)?;
        let every = Duration::from_secs(u64::try_from(ttl).unwrap_or(10)) / 3;
        let renewal = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                // A renewal that fails ends the session: the next lock grants a new lease.
                if keeper.keep_alive().await.is_err() || !matches!(replies.message().await, Ok(Some(r)) if r.ttl() > 0)
                {
                    return;
                }
            }
        });
        *session = Some(Session { id, renewal });
        Ok(id)
    }

    /// Ends the lease of this connection's locks: they expire within its time to live, and the
    /// next lock starts a new one. For a lock that could not be released.
    pub(super) async fn end_session(&self) {
        if let Some(session) = self.session.lock().await.take() {
            session.renewal.abort();
        }
    }

    /// Sends `If(compares) Then(then) Else(otherwise)`, checking the operation limit first (a
    /// single record larger than the request limit is refused by etcd itself, and nothing is
    /// written).
    ///
    /// Every write also puts a marker of its own, compared absent: when the reply is lost (the
    /// member died, the leader changed), the marker tells whether the write was applied, and
    /// putting it ourselves first makes sure a write still in flight can no longer apply. So an
    /// error from here means nothing was written, and a retry cannot apply a write twice.
    pub(super) async fn write(
        &self,
        mut compares: Vec<Compare>,
        mut then: Vec<TxnOp>,
        otherwise: Vec<TxnOp>,
    ) -> Result<Reply> {
        let limit = self.options.max_txn_ops;
        if compares.len() + 1 > limit || then.len() + 1 > limit || otherwise.len() > limit {
            return Err(StorageError::new(format!(
                "an etcd transaction of {} comparisons and {} operations (with the write's marker) is more than \
                 the cluster's limit of {limit} each (etcd's --max-txn-ops, EtcdOptions::max_txn_ops): \
                 write fewer records per transaction; nothing was sent",
                compares.len() + 1,
                then.len() + 1
            ))
            .into());
        }
        let marker = [self.prefix(), b"_writes/", self.unique().as_bytes()].concat();
        let lease = self.marker_lease().await?;
        compares.push(Compare::version(marker.clone(), CompareOp::Equal, 0));
        then.push(TxnOp::put(marker.clone(), Vec::new(), Some(PutOptions::new().with_lease(lease))));
        let txn = Txn::new().when(compares).and_then(then).or_else(otherwise);
        match self.client.kv_client().txn(txn).await {
            Ok(reply) if reply.succeeded() => Ok(Reply::Applied(Some(reply))),
            Ok(reply) => Ok(Reply::Refused(reply)),
            Err(e) if possibly_unanswered(&e) => self.resolve(marker, lease, e).await,
            Err(e) => Err(request_error(e)),
        }
    }

    /// Whether the write with this marker was applied, after its reply was lost: the marker is
    /// there (applied), or we put it now, so that the write can never apply (not applied, and
    /// the error is retryable). Our own fence is told from the write's marker by its value
    /// (`void`): a fence whose reply was lost too, and that is found on the next try, means the
    /// write was fenced off, not applied.
    async fn resolve(&self, marker: Vec<u8>, lease: i64, lost: etcd_client::Error) -> Result<Reply> {
        const FENCE: &[u8] = b"void";
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        let not_applied = |lost: etcd_client::Error| -> Result<Reply> {
            tracing::debug!(error = %lost, "an etcd write's reply was lost; it was not applied");
            Err(StorageError::retryable(lost).into())
        };
        loop {
            let fence = Txn::new()
                .when([Compare::version(marker.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(marker.clone(), FENCE.to_vec(), Some(PutOptions::new().with_lease(lease)))])
                .or_else([TxnOp::get(marker.clone(), None)]);
            match self.client.kv_client().txn(fence).await {
                Ok(reply) if reply.succeeded() => return not_applied(lost),
                Ok(reply) => {
                    let fenced = reply.op_responses().iter().any(|op| match op {
                        TxnOpResponse::Get(range) => range.kvs().iter().any(|kv| kv.value() == FENCE),
                        _ => false,
                    });
                    if fenced {
                        // An earlier try of this fence was applied, its reply lost.
                        return not_applied(lost);
                    }
                    tracing::debug!(error = %lost, "an etcd write's reply was lost; it was applied");
                    return Ok(Reply::Applied(None));
                }
                Err(e) if possibly_unanswered(&e) && started.elapsed() < RESOLVE_FOR => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    return Err(StorageError::new(format!(
                        "an etcd write's reply was lost ({lost}) and whether it was applied could not be learnt \
                         within {RESOLVE_FOR:?} ({e}): read the record to find out"
                    ))
                    .into());
                }
            }
        }
    }
}

/// Waits for records' locks as a [`LockWait`] says, across several waits of one operation.
pub(super) struct LockWaiter {
    wait: LockWait,
    deadline: Option<Instant>,
}

impl LockWaiter {
    pub(super) fn new(wait: LockWait) -> Self {
        let deadline = match wait {
            LockWait::Timeout(limit) => Some(Instant::now() + limit),
            _ => None,
        };
        LockWaiter { wait, deadline }
    }

    /// Waits until the lock of record `key` (seen held at `revision`) is released, or fails with
    /// [`Error::LockTimeout`].
    pub(super) async fn wait(
        &self,
        cluster: &Cluster,
        table: &TableDef,
        keys: &RecordKeys,
        key: &Value,
        revision: i64,
    ) -> Result<()> {
        let timed_out = || Error::LockTimeout { table: Some(table.name), key: Some(key.clone()) };
        let released = async {
            let options = WatchOptions::new().with_start_revision(revision + 1);
            let mut stream =
                cluster.client.watch_client().watch(keys.lock(), Some(options)).await.map_err(request_error)?;
            while let Some(reply) = stream.message().await.map_err(request_error)? {
                // A cancelled watch (its revision compacted away) ends the wait: the caller looks again.
                if reply.canceled() || reply.events().iter().any(|e| e.event_type() == EventType::Delete) {
                    break;
                }
            }
            Ok::<_, Error>(())
        };
        match (self.wait, self.deadline) {
            (LockWait::NoWait, _) => Err(timed_out()),
            (_, Some(deadline)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::timeout(left, released).await.map_err(|_| timed_out())?
            }
            (_, None) => released.await,
        }
    }
}

/// The indexed column `condition` requires to equal one of a few values, and those values: a
/// comparison for equality or a list, alone or in an `AND`.
fn indexed_equality<'c>(
    table: &'static TableDef,
    condition: &'c Condition,
) -> Option<(&'static ColumnDef, Vec<&'c Value>)> {
    let indexed = |column: usize| table.columns.get(column).filter(|c| c.indexed && column != table.key);
    match condition {
        Condition::Compare { column, op: Comparison::Eq, value } => Some((indexed(*column)?, vec![value])),
        Condition::In { column, values } if values.len() <= 16 => Some((indexed(*column)?, values.iter().collect())),
        Condition::And(all) => all.iter().find_map(|c| indexed_equality(table, c)),
        _ => None,
    }
}
