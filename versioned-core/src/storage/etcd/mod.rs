//! The etcd backend: checked writes and transactions on a replicated cluster.
//!
//! Each record is a few keys under `<prefix><table>/k/<key>/` (the README's etcd section has the
//! layout and the encoding); its version has a key of its own, and a checked write is ONE etcd
//! transaction comparing that key's value with the version the caller expects: `If(version == expected, no lock) Then(put row,
//! put version + 1) Else(read the record)`. The stored record for the conflict comes back in the
//! same round trip. `insert` compares that no version key exists; `delete` deletes the record's
//! keys under the same comparison.
//!
//! `put_unchecked` and `patch` need the stored record (its version, its other columns): they
//! read it, decide, and write with a comparison of the version key's revision, again one
//! transaction; if another write came between, the `Else` branch brings the new record and they
//! decide again.
//!
//! Transactions are optimistic, as the memory backend's: reads remember the revision they saw,
//! writes are buffered, and commit is one etcd transaction comparing every record read or written
//! and applying every write. `get_for_update` puts a lock key attached to the transaction's lease;
//! every write compares that no other transaction holds it, and waits for it otherwise.
//!
//! Every write carries a marker key, so that a write whose reply was lost (a member died, the
//! leader changed) is known to be applied or not before an error is returned: a retryable error
//! from this backend always means nothing was written.

use crate::storage::Capabilities;
use std::sync::Arc;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, DeleteOptions, PutOptions, Txn, TxnOp};

use super::decisions::{self, Decision};
use super::select::{Condition, Select};
use super::{RowAccess, Storage, StorageTransaction, WriteOutcome, evaluate};
use crate::entity::TableDef;
use crate::error::{Error, Result, StorageError};
use crate::revisions::{HistoryRow, Written, now_micros};
use crate::store::Store;
use crate::value::{Row, Value};

mod cluster;
mod codec;
mod history;
mod settings;
mod transaction;

use cluster::{Cluster, LockWaiter, RecordState, Reply, indexed, put_record, read_record_op, request_error, unlocked};
use codec::RecordKeys;
pub use settings::EtcdOptions;
pub use transaction::EtcdTransaction;

/// The etcd backend. Cloning it gives another handle to the same connection.
///
/// ```no_run
/// # async fn demo() -> versioned_core::Result<()> {
/// use versioned_core::{EtcdOptions, EtcdStorage, Store};
///
/// let options = EtcdOptions::from_list("http://127.0.0.1:2379,http://127.0.0.1:22379,http://127.0.0.1:32379")
///     .expect("endpoints");
/// let store = Store::new(EtcdStorage::connect(options).await?);
/// # let _ = store;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct EtcdStorage {
    cluster: Arc<Cluster>,
}

impl Store<EtcdStorage> {
    /// A store on the etcd cluster at these endpoints (`http://host:port`, one per member), with
    /// the default [`EtcdOptions`].
    pub async fn etcd<E: AsRef<str>>(endpoints: &[E]) -> Result<Self> {
        let mut iter = endpoints.iter().map(AsRef::as_ref);
        let first = iter.next().ok_or_else(|| Error::config("Store::etcd needs at least one endpoint"))?;
        let options = iter.fold(EtcdOptions::new(first), EtcdOptions::endpoint);
        Ok(Store::new(EtcdStorage::connect(options).await?))
    }
}

impl EtcdStorage {
    /// Connects to the cluster. A member that cannot be reached is not an error by itself (the
    /// others serve); the first request fails when none can be.
    pub async fn connect(options: EtcdOptions) -> Result<Self> {
        let connect = ConnectOptions::new()
            .with_timeout(options.request_timeout)
            .with_connect_timeout(options.connect_timeout)
            .with_require_leader(true);
        let client = Client::connect(&options.endpoints, Some(connect)).await.map_err(|e| {
            StorageError::new(format!("cannot connect to etcd at {}: {e}", options.endpoints.join(",")))
        })?;
        Ok(EtcdStorage { cluster: Arc::new(Cluster::new(client, options)) })
    }

    /// The options it was connected with.
    pub fn options(&self) -> &EtcdOptions {
        &self.cluster.options
    }

    /// The underlying etcd client, for what this crate does not do (watching records, say).
    pub fn client(&self) -> &Client {
        &self.cluster.client
    }

    fn keys(&self, table: &TableDef, key: &Value) -> Result<RecordKeys> {
        RecordKeys::new(self.cluster.prefix(), table, key)
    }

    /// A checked write of one record, sent as `If(compares, no lock) Then(then) Else(read)`.
    /// Refused because a transaction holds the record (and `holds` says the write would
    /// otherwise apply), it waits for the lock and tries again.
    async fn checked(
        &self,
        table: &'static TableDef,
        keys: &RecordKeys,
        key: &Value,
        compares: impl Fn() -> Vec<Compare>,
        then: impl Fn() -> Vec<TxnOp>,
        holds: impl Fn(Option<&Row>) -> Result<bool>,
    ) -> Result<(bool, RecordState)> {
        let waiter = LockWaiter::new(self.cluster.options.lock_wait);
        loop {
            let mut when = compares();
            when.push(unlocked(keys));
            match self.cluster.write(when, then(), vec![read_record_op(keys)]).await? {
                Reply::Applied(_) => return Ok((true, RecordState::default())),
                Reply::Refused(reply) => {
                    let stored = RecordState::from_reply(table, keys, &reply)?;
                    if stored.lock.is_some() && holds(stored.row.as_ref())? {
                        let revision = reply.header().map_or(0, |h| h.revision());
                        waiter.wait(&self.cluster, table, keys, key, revision).await?;
                        continue;
                    }
                    return Ok((false, stored));
                }
            }
        }
    }

    /// Reads the record, decides, and writes the decision comparing the version key's revision
    /// (one etcd transaction); when another write came between, decides again on the record the
    /// refusal brought back.
    async fn read_decide_write(
        &self,
        table: &'static TableDef,
        key: &Value,
        mut decide: impl FnMut(Option<&Row>) -> Result<Decision>,
    ) -> Result<WriteOutcome> {
        let keys = self.keys(table, key)?;
        let waiter = LockWaiter::new(self.cluster.options.lock_wait);
        let (mut stored, mut revision) = self.cluster.read(table, &keys, None).await?;
        loop {
            if stored.lock.is_some() {
                waiter.wait(&self.cluster, table, &keys, key, revision).await?;
                (stored, revision) = self.cluster.read(table, &keys, None).await?;
                continue;
            }
            let Some(new) = decide(stored.row.as_ref())?.applied() else {
                return Ok(WriteOutcome::Rejected { current: stored.row });
            };
            let same = match stored.row {
                Some(_) => Compare::mod_revision(keys.version(), CompareOp::Equal, stored.revision),
                None => Compare::version(keys.version(), CompareOp::Equal, 0),
            };
            let mut then = Vec::with_capacity(3);
            match &new {
                Some(row) => _ = put_record(table, &keys, row, &mut then),
                None => then.push(delete_record(&keys)),
            }
            if let Some(def) = table.history
                && let Some(entry) = Written::of(table, stored.row.as_ref(), new.as_ref())?
            {
                history::record(table, &keys, def.keep, &[&entry], now_micros(), &mut then);
            }
            match self.cluster.write(vec![same, unlocked(&keys)], then, vec![read_record_op(&keys)]).await? {
                Reply::Applied(_) => return Ok(WriteOutcome::Applied),
                Reply::Refused(reply) => {
                    revision = reply.header().map_or(0, |h| h.revision());
                    stored = RecordState::from_reply(table, &keys, &reply)?;
                }
            }
        }
    }
}

/// Deletes every key of the record (a lock included: only its holder deletes a locked record).
fn delete_record(keys: &RecordKeys) -> TxnOp {
    TxnOp::delete(keys.prefix.clone(), Some(DeleteOptions::new().with_prefix()))
}

fn version_is(keys: &RecordKeys, version: u64) -> Compare {
    Compare::value(keys.version(), CompareOp::Equal, codec::version_bytes(version))
}

impl EtcdStorage {
    /// The stored rows of `table` that may meet `condition`, read at one revision: those an
    /// index finds, or every one; the query evaluates itself in this process (see the module's
    /// docs).
    async fn rows(&self, table: &'static TableDef, condition: &Condition) -> Result<impl Iterator<Item = Row>> {
        self.cluster.check_layout(table).await?;
        let (records, _) = self.cluster.candidates(table, condition, None).await?;
        Ok(records.into_iter().filter_map(|(_, state)| state.row))
    }

    /// How many keys this connection's queries have read (the tests of indexes count them).
    #[doc(hidden)]
    pub fn keys_read(&self) -> u64 {
        self.cluster.keys_read.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl RowAccess for EtcdStorage {
    async fn fetch(&self, table: &'static TableDef, key: &Value) -> Result<Option<Row>> {
        self.cluster.check_layout(table).await?;
        let keys = self.keys(table, key)?;
        Ok(self.cluster.read(table, &keys, None).await?.0.row)
    }

    async fn select(&self, table: &'static TableDef, select: &Select) -> Result<Vec<Row>> {
        let mut found = evaluate::Collector::new(select);
        for row in self.rows(table, &select.condition).await? {
            found.offer(std::borrow::Cow::Owned(row));
        }
        Ok(found.finish())
    }

    async fn count(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        Ok(self.rows(table, condition).await?.filter(|row| evaluate::matches(condition, row)).count() as u64)
    }

    /// In a transaction of its own: one etcd transaction applies every change, or none.
    async fn update_where(
        &self,
        table: &'static TableDef,
        condition: &Condition,
        columns: &[(usize, Value)],
    ) -> Result<u64> {
        let tx = self.begin().await?;
        let changed = tx.update_where(table, condition, columns).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// In a transaction of its own, as [`update_where`](Self::update_where).
    async fn delete_where(&self, table: &'static TableDef, condition: &Condition) -> Result<u64> {
        let tx = self.begin().await?;
        let deleted = tx.delete_where(table, condition).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn insert(&self, table: &'static TableDef, row: Row) -> Result<bool> {
        self.cluster.check_layout(table).await?;
        if table.history.is_some() {
            // A history entry needs the stored record: read, decide, write.
            let key = table.key_of(&row)?.clone();
            let decide = |stored: Option<&Row>| {
                Ok(if stored.is_none() { Decision::Write(row.clone()) } else { Decision::Refuse })
            };
            return Ok(matches!(self.read_decide_write(table, &key, decide).await?, WriteOutcome::Applied));
        }
        let key = table.key_of(&row)?;
        let keys = self.keys(table, key)?;
        let absent = || vec![Compare::version(keys.version(), CompareOp::Equal, 0)];
        let put = || {
            let mut ops = Vec::with_capacity(3);
            put_record(table, &keys, &row, &mut ops);
            ops
        };
        let (inserted, _) = self.checked(table, &keys, key, absent, put, |stored| Ok(stored.is_none())).await?;
        Ok(inserted)
    }

    async fn update(&self, table: &'static TableDef, row: Row, expected: u64) -> Result<WriteOutcome> {
        self.cluster.check_layout(table).await?;
        if table.history.is_some() {
            let key = table.key_of(&row)?.clone();
            let decide = |stored: Option<&Row>| {
                Ok(match decisions::check(table, stored, Some(expected))? {
                    true => Decision::Write(decisions::keep_created(table, stored, row.clone())),
                    false => Decision::Refuse,
                })
            };
            return self.read_decide_write(table, &key, decide).await;
        }
        let key = table.key_of(&row)?;
        let keys = self.keys(table, key)?;
        let compares = || vec![version_is(&keys, expected)];
        // The creation time is not written: its key keeps the stored one.
        let put = || {
            let mut ops = vec![
                TxnOp::put(keys.row(), codec::row_bytes(table, &row), None),
                TxnOp::put(keys.version(), codec::version_bytes(expected + 1), None),
            ];
            ops.extend(
                indexed(table, &row).map(|(column, value)| TxnOp::put(keys.index_key(column, value), vec![], None)),
            );
            ops
        };
        let holds = |stored: Option<&Row>| decisions::check(table, stored, Some(expected));
        match self.checked(table, &keys, key, compares, put, holds).await? {
            (true, _) => Ok(WriteOutcome::Applied),
            (false, stored) => Ok(WriteOutcome::Rejected { current: stored.row }),
        }
    }

    async fn upsert(&self, table: &'static TableDef, row: Row) -> Result<Option<u64>> {
        self.cluster.check_layout(table).await?;
        let key = table.key_of(&row)?.clone();
        let mut version = None;
        let written = self.read_decide_write(table, &key, |stored| {
            let (decision, next) = decisions::upsert(table, stored, row.clone())?;
            version = next;
            Ok(decision)
        });
        match written.await? {
            WriteOutcome::Applied => Ok(version),
            WriteOutcome::Rejected { .. } => Ok(None),
        }
    }

    async fn patch(
        &self,
        table: &'static TableDef,
        key: &Value,
        columns: &[(usize, Value)],
        expected: u64,
    ) -> Result<WriteOutcome> {
        self.cluster.check_layout(table).await?;
        let written = self.read_decide_write(table, key, |stored| decisions::patch(table, stored, columns, expected));
        written.await
    }

    async fn delete(&self, table: &'static TableDef, key: &Value, expected: Option<u64>) -> Result<WriteOutcome> {
        self.cluster.check_layout(table).await?;
        if table.history.is_some() {
            let decide = |stored: Option<&Row>| {
                Ok(if decisions::check(table, stored, expected)? { Decision::Delete } else { Decision::Refuse })
            };
            return self.read_decide_write(table, key, decide).await;
        }
        let keys = self.keys(table, key)?;
        let compares = || match expected {
            Some(expected) => vec![version_is(&keys, expected)],
            // Any valid version: a stored one that is not (NULL, negative, text) is refused.
            None => vec![
                Compare::value(keys.version(), CompareOp::Greater, codec::VALID_VERSION_ABOVE),
                Compare::value(keys.version(), CompareOp::Less, codec::VALID_VERSION_BELOW),
            ],
        };
        let delete = || vec![delete_record(&keys)];
        let holds = |stored: Option<&Row>| decisions::check(table, stored, expected);
        match self.checked(table, &keys, key, compares, delete, holds).await? {
            (true, _) => Ok(WriteOutcome::Applied),
            (false, stored) => {
                // A stored version that is not valid is a decode error, as for every backend.
                decisions::check(table, stored.row.as_ref(), expected)?;
                Ok(WriteOutcome::Rejected { current: stored.row })
            }
        }
    }
}

impl Storage for EtcdStorage {
    type Transaction = EtcdTransaction;

    async fn history(&self, table: &'static TableDef, key: &Value, version: Option<u64>) -> Result<Vec<HistoryRow>> {
        self.cluster.check_layout(table).await?;
        if table.history.is_none() {
            return Err(crate::storage::memory::no_history(table));
        }
        let mut entries = history::read(&self.cluster, table, &self.keys(table, key)?).await?;
        if let Some(version) = version {
            entries.retain(|entry| table.version_of(&entry.row).is_ok_and(|at| at == version));
        }
        Ok(entries)
    }

    /// Records the table's schema, or checks the one recorded: a struct whose columns differ from
    /// those the table was created for is refused here, rather than its rows decoded wrongly.
    async fn create_table(&self, table: &'static TableDef) -> Result<()> {
        let key = codec::schema_key(self.cluster.prefix(), table);
        let schema = codec::schema(table);
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), schema.clone(), None::<PutOptions>)])
            .or_else([TxnOp::get(key, None)]);
        let reply = self.cluster.client.kv_client().txn(txn).await.map_err(request_error)?;
        if reply.succeeded() {
            return Ok(());
        }
        let recorded = match reply.op_responses().first() {
            Some(etcd_client::TxnOpResponse::Get(range)) => {
                range.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
            }
            _ => None,
        };
        match recorded {
            Some(recorded) if codec::same_schema(table, &recorded) => Ok(()),
            recorded => Err(Error::config(format!(
                "the etcd table {:?} was created for other columns than {}'s: recorded {}, {} has {schema}; \
                 use another table name or prefix, or migrate the records",
                table.name,
                table.entity,
                recorded.as_deref().unwrap_or("nothing readable"),
                table.entity,
            ))),
        }
    }

    async fn begin(&self) -> Result<EtcdTransaction> {
        Ok(EtcdTransaction::new(Arc::clone(&self.cluster), false))
    }

    async fn begin_read_only(&self) -> Result<EtcdTransaction> {
        Ok(EtcdTransaction::new(Arc::clone(&self.cluster), true))
    }

    /// `update` reads and then writes with one checked transaction, retried on a conflict; a hot
    /// record's updates take turns in the store (the default [`HotUpdates::Queue`](crate::HotUpdates::Queue)): its lock key
    /// costs a consensus round of its own, taken only by an update that met a conflict anyway.
    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with_identity(Arc::as_ptr(&self.cluster) as usize)
    }
}
