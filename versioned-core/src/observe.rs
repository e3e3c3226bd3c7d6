//! Diagnostics of every operation: a `tracing` span, an event for each conflict and retry, and
//! counters through the `metrics` facade (feature `metrics`).
//!
//! Spans are at the `DEBUG` level, named `versioned`, with the fields `operation`, `table`, `key`
//! and `outcome`; retries run each attempt inside a `versioned.attempt` span carrying `operation`
//! and `attempt` (1, 2, …), so an operation's span says which attempt it belonged to. When nothing
//! listens (tracing's maximum level is below `DEBUG` and the `metrics` feature is off), no span is
//! built and the key is never formatted: the operation runs as it is, after one check.
//!
//! The counters (all `u64`, labelled with `operation` and, where there is one, `table`):
//!
//! | counter | counts |
//! |---|---|
//! | `versioned_writes_total` | writes applied (a batch counts once per record) |
//! | `versioned_conflicts_total` | writes or reads refused by a version check (a conflict, a key already taken) |
//! | `versioned_retries_total` | attempts started again after a retryable error |
//! | `versioned_retries_exhausted_total` | retry loops that gave up ([`Error::RetriesExhausted`]) |

use tracing::field::{Empty, display};
use tracing::{Level, Span};

use crate::entity::TableDef;
use crate::error::{Error, Result};
use crate::value::Value;

/// One operation under way: its span, and what the counters label it with.
pub(crate) struct Operation {
    operation: &'static str,
    /// `None` for what spans tables (a transaction, a commit).
    table: Option<&'static str>,
    span: Span,
}

/// What an operation does, for the counters: only writes count as writes, and a transaction
/// counts nothing itself (its operations and its commit do).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Reads records; counts its conflicts (a version that moved under `get_with_version`).
    Read,
    /// Writes records; counts what it wrote and its conflicts.
    Write,
    /// Commits a transaction; counts its conflicts (its writes were counted as they were made).
    Commit,
    /// A whole transaction; counts nothing itself.
    Transaction,
}

impl Operation {
    /// Starts operation `operation` on `table`; `key` is called only if a subscriber records it.
    #[inline]
    pub(crate) fn start(
        operation: &'static str,
        table: &'static TableDef,
        key: impl FnOnce() -> Option<Value>,
    ) -> Operation {
        let span = if tracing::level_enabled!(Level::DEBUG) {
            let span = tracing::debug_span!("versioned", operation, table = table.name, key = Empty, outcome = Empty);
            if !span.is_disabled()
                && let Some(key) = key()
            {
                span.record("key", display(key));
            }
            span
        } else {
            // Not `debug_span!`: with `tracing`'s `log` feature (which other crates turn on), even
            // a disabled span is carried and asked about `log` at every poll.
            Span::none()
        };
        Operation { operation, table: Some(table.name), span }
    }

    /// Starts `operation` over the tables it touches: a transaction, a commit.
    pub(crate) fn spanning(operation: &'static str) -> Operation {
        let span = if tracing::level_enabled!(Level::DEBUG) {
            tracing::debug_span!("versioned", operation, table = Empty, key = Empty, outcome = Empty)
        } else {
            Span::none()
        };
        Operation { operation, table: None, span }
    }

    /// Whether a subscriber records this operation's span.
    #[inline]
    pub(crate) fn traced(&self) -> bool {
        !self.span.is_none()
    }

    /// The operation's span, to run its future in.
    pub(crate) fn span(&self) -> Span {
        self.span.clone()
    }

    /// Records the outcome of the operation: `ok` makes the function that names a success
    /// (`"applied"`, `"found"`, `"not found"`) and how many records it wrote; an error is named by
    /// [`error_outcome`]. (`ok` makes it rather than being it so that [`observed!`] can evaluate the
    /// caller's expression in a closure and still have its argument's type inferred.)
    #[inline]
    pub(crate) fn finish<R, F>(self, kind: Kind, result: &Result<R>, ok: impl FnOnce() -> F)
    where
        F: FnOnce(&R) -> (&'static str, u64),
    {
        if !self.traced() && !cfg!(feature = "metrics") {
            return;
        }
        let (outcome, records) = match result {
            Ok(value) => ok()(value),
            Err(err) => (error_outcome(err), 0),
        };
        if self.traced() {
            self.span.record("outcome", outcome);
            // A transaction's conflict was already reported by the operation that met it.
            if let Err(err) = result
                && outcome == CONFLICT
                && kind != Kind::Transaction
            {
                tracing::debug!(parent: &self.span, error = %err, "versioned: conflict");
            }
        }
        if kind != Kind::Transaction {
            let table = self.table.or_else(|| result.as_ref().err().and_then(error_table)).unwrap_or("");
            counters::outcome(self.operation, table, kind, outcome, records);
        }
    }
}

/// Awaits `$future` as the operation `$op` starts (an [`Operation`]): inside its span when one is
/// recorded, then records the outcome, as [`Operation::finish`] with `$kind` and `$ok`. When nothing
/// listens (no `DEBUG` subscriber, no `metrics` feature), `$op` is not even evaluated and the
/// future is awaited as it is.
///
/// `$future` is always a future, awaited whether or not anything listens, so a `?` or `return`
/// in it means the same either way; `$op`, `$kind` and `$ok`, evaluated only when something
/// listens, are evaluated in closures, where a `?` does not compile and a `return` cannot leave
/// the caller.
///
/// A macro rather than a function taking the future: the operation's future is awaited where it
/// is made, never moved into another future or returned by value (measured: both cost a copy of
/// the whole future on every call).
macro_rules! observed {
    ($op:expr, $kind:expr, $ok:expr, $future:expr $(,)?) => {{ if $crate::observe::listening() { $crate::observe::observing!($op, $kind, $ok, $future) } else { $future.await } }};
}
pub(crate) use observed;

/// [`observed!`] once [`listening`] has said yes: for an operation that runs code of its own when
/// nothing listens rather than a future ([`ops::put`](crate::ops::put), whose put of a value then
/// awaits nothing). The same rules: `$future` is a future, the rest is evaluated in closures.
macro_rules! observing {
    ($op:expr, $kind:expr, $ok:expr, $future:expr $(,)?) => {{
        let (op, kind): ($crate::observe::Operation, $crate::observe::Kind) =
            $crate::observe::evaluate(|| ($op, $kind));
        let result =
            if op.traced() { ::tracing::Instrument::instrument($future, op.span()).await } else { $future.await };
        op.finish(kind, &result, || $ok);
        result
    }};
}
pub(crate) use observing;

/// Calls `f`: how [`observed!`] evaluates its caller's expressions in a closure (a closure called
/// where it is written is what clippy's `redundant_closure_call` flags).
#[inline(always)]
pub(crate) fn evaluate<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Whether anything records operations: a subscriber at `DEBUG` (one atomic load), or counters.
#[inline]
pub(crate) fn listening() -> bool {
    cfg!(feature = "metrics") || tracing::level_enabled!(Level::DEBUG)
}

/// The outcome of a check that refused: a version that moved, a key already taken.
pub(crate) const CONFLICT: &str = "conflict";

/// How an error is reported as an outcome.
fn error_outcome(err: &Error) -> &'static str {
    match err {
        Error::ConcurrentModification { .. } | Error::AlreadyExists { .. } | Error::Conflicts { .. } => CONFLICT,
        Error::NotFound { .. } => "not found",
        Error::LockTimeout { .. } => "lock timeout",
        _ => "error",
    }
}

/// The table an error names, when it is about one.
fn error_table(err: &Error) -> Option<&'static str> {
    match err {
        Error::ConcurrentModification { table, .. }
        | Error::AlreadyExists { table, .. }
        | Error::Conflicts { table, .. }
        | Error::NotFound { table, .. } => Some(table),
        _ => None,
    }
}

/// The span of attempt `attempt` (from 1) of a retried operation.
pub(crate) fn attempt_span(operation: &'static str, attempt: u32) -> Span {
    if tracing::level_enabled!(Level::DEBUG) {
        tracing::debug_span!("versioned.attempt", operation, attempt)
    } else {
        Span::none()
    }
}

/// A retry of `operation`, about to start attempt `attempt + 1` after `err`.
pub(crate) fn retrying(operation: &'static str, attempt: u32, err: &Error) {
    tracing::debug!(operation, attempt, error = %err, "versioned: retrying after a retryable error");
    counters::retry(operation);
}

/// An attempt of `update` on `table`, optimistic, queued or locked ([`UpdateMode`]): a debug event
/// and the `versioned_update_attempts_total{table, mode}` counter.
pub(crate) fn update_attempt(table: &'static str, mode: UpdateMode) {
    let mode = mode.label();
    tracing::debug!(table, mode, "versioned: update attempt");
    counters::update_attempt(table, mode);
}

/// How an attempt of `Store::update` reads and writes its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpdateMode {
    /// A read and a checked put, at once.
    Optimistic,
    /// A checked put once the store's other attempts on the hot record are done, of the record
    /// as the turn before wrote it (or read, for a burst's first turn).
    Queued,
    /// A locked read and a checked put, in a transaction.
    Locked,
}

impl UpdateMode {
    /// The attempt's mode: a locked attempt is `Locked`, even in its turn.
    pub(crate) fn of(locked: bool, queued: bool) -> Self {
        match (locked, queued) {
            (true, _) => UpdateMode::Locked,
            (false, true) => UpdateMode::Queued,
            (false, false) => UpdateMode::Optimistic,
        }
    }

    fn label(self) -> &'static str {
        match self {
            UpdateMode::Optimistic => "optimistic",
            UpdateMode::Queued => "queued",
            UpdateMode::Locked => "locked",
        }
    }
}

/// A write on `table` that group commit wrote with others: `statement` writes shared its
/// statement, `commit` its commit (a debug event; none for a write alone).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn group_commit(table: &'static str, statement: usize, commit: usize) {
    if statement > 1 || commit > 1 {
        tracing::debug!(table, statement, commit, "versioned: written with other writes (group commit)");
    }
}

/// `operation` gave up after `attempts` attempts.
pub(crate) fn exhausted(operation: &'static str, attempts: u32, err: &Error) {
    tracing::warn!(operation, attempts, error = %err, "versioned: retries exhausted");
    counters::exhausted(operation);
}

#[cfg(feature = "metrics")]
mod counters {
    use std::cell::RefCell;

    use metrics::{Key, Label, Level, Metadata};

    use super::{CONFLICT, Kind};

    pub(super) fn outcome(operation: &'static str, table: &'static str, kind: Kind, outcome: &str, records: u64) {
        if kind == Kind::Write && records > 0 {
            increment("versioned_writes_total", [("operation", operation), ("table", table)], records);
        }
        if outcome == CONFLICT {
            increment("versioned_conflicts_total", [("operation", operation), ("table", table)], 1);
        }
    }

    pub(super) fn retry(operation: &'static str) {
        increment("versioned_retries_total", [("operation", operation)], 1);
    }

    pub(super) fn exhausted(operation: &'static str) {
        increment("versioned_retries_exhausted_total", [("operation", operation)], 1);
    }

    pub(super) fn update_attempt(table: &'static str, mode: &'static str) {
        increment("versioned_update_attempts_total", [("table", table), ("mode", mode)], 1);
    }

    /// What the counters are registered with: what `metrics::counter!` here would give.
    static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

    /// How many keys a thread keeps.
    const KEPT: usize = 16;

    /// A counter's name and labels: which [`Key`] it is.
    type Identity = (&'static str, [(&'static str, &'static str); 2]);

    thread_local! {
        /// The keys this thread counted most recently. Building a labelled key allocates its
        /// labels and hashes them, which cost more than a memory put (measured: 86 ns a put with
        /// it, 40 ns without), and a thread counts the same few keys write after write. A key, unlike a
        /// counter's handle, does not depend on the recorder, so keeping it is right whichever
        /// recorder is installed, or later installed.
        static KEYS: RefCell<Vec<(Identity, Key)>> = const { RefCell::new(Vec::new()) };
    }

    /// Whether two identities are the same strings, by address: the names and labels are the
    /// crate's own constants and tables' names, so a string seen twice is at one address (were it
    /// at two, its key would be kept twice, and count the same).
    fn same((name, labels): &Identity, (other, others): &Identity) -> bool {
        std::ptr::eq(*name, *other)
            && labels.iter().zip(others).all(|(a, b)| std::ptr::eq(a.0, b.0) && std::ptr::eq(a.1, b.1))
    }

    /// Adds `by` to counter `name` with `labels`, through whichever recorder is installed.
    fn increment<const N: usize>(name: &'static str, labels: [(&'static str, &'static str); N], by: u64) {
        const { assert!(N <= 2, "an identity holds two labels") };
        let mut identity = (name, [("", ""); 2]);
        identity.1[..N].copy_from_slice(&labels);
        let count =
            |key: &Key| metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA)).increment(by);
        let build =
            || Key::from_parts(name, labels.map(|(label, value)| Label::from_static_parts(label, value)).to_vec());
        // A recorder that counts its own writes through this store meets the borrow taken, and
        // builds its key.
        let kept = KEYS.try_with(|keys| {
            let Ok(mut keys) = keys.try_borrow_mut() else { return false };
            // The most recently counted last: a key found moves there, and the first goes.
            match keys.iter().rposition(|(kept, _)| same(kept, &identity)) {
                Some(at) => keys[at..].rotate_left(1),
                None => {
                    if keys.len() == KEPT {
                        keys.remove(0);
                    }
                    keys.push((identity, build()));
                }
            }
            if let Some((_, key)) = keys.last() {
                count(key);
            }
            true
        });
        if kept != Ok(true) {
            count(&build());
        }
    }

    #[cfg(test)]
    mod tests {
        use std::collections::BTreeMap;

        use metrics_util::debugging::{DebugValue, DebuggingRecorder};

        use super::{KEPT, KEYS, increment};

        /// As many keys as a thread keeps, counted over and over (each found, and moved last),
        /// then twice as many in turn (each pushing out the one counted longest ago): each count
        /// lands on its own key, whether its key was kept or built again.
        #[test]
        fn counts_land_on_their_keys_past_what_a_thread_keeps() {
            let tables: Vec<&'static str> =
                (0..2 * KEPT).map(|i| &*Box::leak(format!("table{i}").into_boxed_str())).collect();
            let kept = || -> Vec<&str> { KEYS.with(|keys| keys.borrow().iter().map(|(id, _)| id.1[1].1).collect()) };
            let recorder = DebuggingRecorder::new();
            let snapshotter = recorder.snapshotter();
            metrics::with_local_recorder(&recorder, || {
                for _ in 0..3 {
                    for (n, table) in (1..).zip(&tables[..KEPT]) {
                        increment("versioned_writes_total", [("operation", "put"), ("table", *table)], n);
                    }
                }
                increment("versioned_writes_total", [("operation", "put"), ("table", tables[0])], 1);
                let mut recent = tables[1..KEPT].to_vec();
                recent.push(tables[0]);
                assert_eq!(kept(), recent, "kept, the most recently counted last");
                for _ in 0..2 {
                    for (n, table) in (1..).zip(&tables) {
                        increment("versioned_writes_total", [("operation", "put"), ("table", *table)], n);
                        increment("versioned_retries_total", [("operation", "put")], 1);
                    }
                }
            });
            let mut counted = BTreeMap::new();
            for (key, _, _, value) in snapshotter.snapshot().into_vec() {
                let DebugValue::Counter(n) = value else { continue };
                let labels: Vec<String> = key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
                counted.insert(format!("{}{{{}}}", key.key().name(), labels.join(",")), n);
            }
            let mut expected: BTreeMap<String, u64> = (1..)
                .zip(&tables)
                .map(|(n, table)| {
                    let first_rounds = if n as usize <= KEPT { 3 * n } else { 0 };
                    (format!("versioned_writes_total{{operation=put,table={table}}}"), first_rounds + 2 * n)
                })
                .collect();
            *expected.get_mut("versioned_writes_total{operation=put,table=table0}").unwrap() += 1;
            expected.insert("versioned_retries_total{operation=put}".to_owned(), 2 * tables.len() as u64);
            assert_eq!(counted, expected);
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod counters {
    use super::Kind;

    pub(super) fn outcome(_: &'static str, _: &'static str, _: Kind, _: &str, _: u64) {}
    pub(super) fn retry(_: &'static str) {}
    pub(super) fn exhausted(_: &'static str) {}
    pub(super) fn update_attempt(_: &'static str, _: &'static str) {}
}
