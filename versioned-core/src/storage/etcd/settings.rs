//! [`EtcdOptions`]: where records live in etcd, and the cluster's limits.

use std::time::Duration;

use crate::lock::LockWait;

/// How an [`EtcdStorage`](super::EtcdStorage) connects and lays out its records.
///
/// ```
/// use std::time::Duration;
/// use versioned_core::EtcdOptions;
///
/// let options = EtcdOptions::new("http://127.0.0.1:2379")
///     .endpoint("http://127.0.0.1:22379")
///     .prefix("shop/")
///     .request_timeout(Duration::from_secs(2));
/// assert_eq!(options.endpoints().len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    pub(super) endpoints: Vec<String>,
    pub(super) prefix: String,
    pub(super) request_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) lock_wait: LockWait,
    pub(super) lock_ttl: i64,
    pub(super) max_txn_ops: usize,
    pub(super) max_request_bytes: usize,
}

impl EtcdOptions {
    /// Options for a cluster reached at `endpoint` (`http://host:port`); add the other members
    /// with [`endpoint`](Self::endpoint) so that requests go on when one is down.
    pub fn new(endpoint: impl Into<String>) -> Self {
        EtcdOptions {
            endpoints: vec![endpoint.into()],
            prefix: "versioned/".into(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            lock_wait: LockWait::default(),
            lock_ttl: 10,
            max_txn_ops: 128,
            max_request_bytes: 1_572_864,
        }
    }

    /// Options for every endpoint of a comma-separated list (`http://a:2379,http://b:2379`).
    /// `None` when the list has no endpoint.
    pub fn from_list(list: &str) -> Option<Self> {
        let mut endpoints = list.split(',').map(str::trim).filter(|e| !e.is_empty());
        let first = endpoints.next()?;
        Some(endpoints.fold(Self::new(first), Self::endpoint))
    }

    /// Another member of the cluster.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoints.push(endpoint.into());
        self
    }

    /// The endpoints, in the order given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The prefix of every key the storage writes (default `versioned/`): stores with different
    /// prefixes share a cluster without seeing each other's records.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one request may take before it fails with a retryable error (default 5 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long connecting to a member may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a write outside a transaction waits for a record that a transaction has locked
    /// with `get_for_update` (default: [`LockWait::default`], 5 s), as PostgreSQL's
    /// `lock_timeout` bounds an `UPDATE`.
    pub fn lock_wait(mut self, wait: LockWait) -> Self {
        self.lock_wait = wait;
        self
    }

    /// The time to live, in seconds, of a transaction's locks if its client stops renewing them
    /// (it died, or lost the cluster): default 10. While the client runs it renews them. A lock
    /// whose release fails (a leader change, a paused member) is released again and again in the
    /// background for this long before its lease is let go.
    pub fn lock_ttl(mut self, seconds: i64) -> Self {
        self.lock_ttl = seconds.max(2);
        self
    }

    /// The cluster's `--max-txn-ops` (default 128): a transaction needing more comparisons or
    /// operations than this is refused before anything is sent.
    pub fn max_txn_ops(mut self, ops: usize) -> Self {
        self.max_txn_ops = ops;
        self
    }

    /// The cluster's `--max-request-bytes` (default 1.5 MiB): a larger request is refused before
    /// anything is sent.
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }
}
