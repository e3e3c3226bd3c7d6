//! Diagnostics: the spans and events every operation emits, and the counters of the `metrics`
//! feature, captured from a run with a conflict, a retry and retries that run out.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use versioned::{Error, RetryPolicy, Store};
use versioned_core::conformance::Account;

/// A span or event as captured: its name (or message) and fields, and the `attempt` of the
/// retry attempt it ran in, if any.
#[derive(Debug, Clone, Default)]
struct Captured {
    name: String,
    fields: BTreeMap<String, String>,
    attempt: Option<String>,
}

impl Captured {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

impl Visit for Captured {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.fields.insert(field.name().to_owned(), format!("{value:?}").trim_matches('"').to_owned());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Every span (once closed) and event, in order.
#[derive(Clone, Default)]
struct Capture {
    open: Arc<Mutex<HashMap<u64, Captured>>>,
    spans: Arc<Mutex<Vec<Captured>>>,
    events: Arc<Mutex<Vec<Captured>>>,
}

impl Capture {
    /// The attempt of the nearest enclosing `versioned.attempt` span.
    fn attempt_of<S: Subscriber + for<'a> LookupSpan<'a>>(
        &self,
        id: Option<&Id>,
        ctx: &Context<'_, S>,
    ) -> Option<String> {
        let open = self.open.lock().unwrap();
        let span = ctx.span(id?)?;
        span.scope().find_map(|s| open.get(&s.id().into_u64()).and_then(|c| c.field("attempt").map(str::to_owned)))
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut captured = Captured { name: attrs.metadata().name().to_owned(), ..Captured::default() };
        attrs.record(&mut captured);
        captured.attempt = ctx.span(id).and_then(|s| s.parent()).and_then(|p| self.attempt_of(Some(&p.id()), &ctx));
        self.open.lock().unwrap().insert(id.into_u64(), captured);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(captured) = self.open.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(captured);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut captured = Captured::default();
        event.record(&mut captured);
        captured.name = captured.fields.remove("message").unwrap_or_default();
        let parent = event.parent().cloned().or_else(|| ctx.current_span().id().cloned());
        captured.attempt = self.attempt_of(parent.as_ref(), &ctx);
        self.events.lock().unwrap().push(captured);
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(captured) = self.open.lock().unwrap().remove(&id.into_u64()) {
            self.spans.lock().unwrap().push(captured);
        }
    }
}

/// Inserts, puts, a stale put, a missing get, a transaction that conflicts once and is retried,
/// and one whose retries run out; returns what was captured.
async fn a_run_with_conflicts() -> Capture {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _default = crate::events::capture_on_this_thread(subscriber);

    let store = Store::memory();
    store.create_table::<Account>().await.unwrap();
    let mut a = Account { id: 1, balance: 10, version: 0 };
    store.insert(&mut a).await.unwrap();
    let stale = a.clone();
    a.balance = 11;
    store.put(&mut a).await.unwrap();
    assert!(matches!(store.put(&mut stale.clone()).await, Err(Error::ConcurrentModification { .. })));
    assert_eq!(store.get::<Account>(&2).await.unwrap(), None);

    // The first attempt writes from a stale copy and conflicts; the second reads afresh.
    let mut first = Some(stale.clone());
    store
        .transaction_with_retry(RetryPolicy { jitter: false, ..RetryPolicy::default() }, |tx| {
            let copy = first.take();
            async move {
                let mut account = match copy {
                    Some(stale) => stale,
                    None => tx.get::<Account>(&1).await?.expect("present"),
                };
                account.balance += 1;
                tx.put(&mut account).await
            }
        })
        .await
        .unwrap();

    let policy = RetryPolicy { max_attempts: 2, jitter: false, ..RetryPolicy::default() };
    let exhausted = store
        .transaction_with_retry(policy, |tx| {
            let mut stale = stale.clone();
            async move { tx.put(&mut stale).await }
        })
        .await;
    assert!(matches!(exhausted, Err(Error::RetriesExhausted { attempts: 2, .. })), "{exhausted:?}");
    capture
}

#[tokio::test]
async fn every_operation_has_a_span_with_its_outcome() {
    let capture = a_run_with_conflicts().await;
    let spans = capture.spans.lock().unwrap().clone();
    let ops: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "versioned" && s.field("table") == Some("account"))
        .map(|s| (s.field("operation").unwrap(), s.field("key").unwrap_or("-"), s.field("outcome").unwrap()))
        .collect();
    assert_eq!(
        ops,
        [
            ("insert", "1", "applied"),
            ("put", "1", "applied"),
            ("put", "1", "conflict"),
            ("get", "2", "not found"),
            ("put", "1", "conflict"),
            ("get", "1", "found"),
            ("put", "1", "applied"),
            ("put", "1", "conflict"),
            ("put", "1", "conflict"),
        ]
    );

    // Inside retries, each operation knows its attempt.
    let attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "versioned" && s.field("table") == Some("account") && s.attempt.is_some())
        .map(|s| (s.field("operation").unwrap(), s.attempt.as_deref().unwrap()))
        .collect();
    assert_eq!(attempts, [("put", "1"), ("get", "2"), ("put", "2"), ("put", "1"), ("put", "2")]);

    // Transactions and commits have spans of their own.
    let transactions: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "versioned" && s.field("operation") == Some("transaction"))
        .map(|s| s.field("outcome").unwrap())
        .collect();
    assert_eq!(transactions, ["conflict", "committed", "conflict", "conflict"]);
    assert!(spans.iter().any(|s| s.field("operation") == Some("commit") && s.field("outcome") == Some("committed")));
}

#[tokio::test]
async fn conflicts_and_retries_are_events() {
    let capture = a_run_with_conflicts().await;
    let events = capture.events.lock().unwrap().clone();
    let conflicts = events.iter().filter(|e| e.name == "versioned: conflict").count();
    assert_eq!(conflicts, 4, "{events:#?}");
    let retries: Vec<_> = events
        .iter()
        .filter(|e| e.name == "versioned: retrying after a retryable error")
        .map(|e| (e.field("operation").unwrap(), e.field("attempt").unwrap()))
        .collect();
    assert_eq!(retries, [("transaction", "1"), ("transaction", "1")]);
    let exhausted: Vec<_> = events.iter().filter(|e| e.name == "versioned: retries exhausted").collect();
    assert_eq!(exhausted.len(), 1);
    assert_eq!(exhausted[0].field("attempts"), Some("2"));
}

#[cfg(feature = "metrics")]
#[tokio::test]
async fn counters_count_writes_conflicts_and_retries() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    {
        // This test's runtime has one thread, so the thread's recorder sees every operation.
        let _local = metrics::set_default_local_recorder(&recorder);
        a_run_with_conflicts().await;
    }
    let mut counters = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let DebugValue::Counter(n) = value else { continue };
        let labels: Vec<String> = key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        counters.insert(format!("{}{{{}}}", key.key().name(), labels.join(",")), n);
    }
    let expected: BTreeMap<String, u64> = [
        ("versioned_writes_total{operation=insert,table=account}", 1),
        ("versioned_writes_total{operation=put,table=account}", 2),
        ("versioned_conflicts_total{operation=put,table=account}", 4),
        ("versioned_retries_total{operation=transaction}", 2),
        ("versioned_retries_exhausted_total{operation=transaction}", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(counters, expected);
}

/// `update` chooses per attempt: a cold record is read and written optimistically; once its
/// attempts conflict (eight at once: seven lose) it is hot, an update whose attempt conflicted
/// retries locked, and the next eight take turns (SQLite queues a hot record's updates): eight
/// attempts, none conflicting, and fewer reads than turns (a turn takes the record as the turn
/// before wrote it). The choice is an event's `mode` and the
/// `versioned_update_attempts_total{table, mode}` counter.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn update_says_whether_it_queued_or_locked_a_hot_record() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _default = crate::events::capture_on_this_thread(subscriber);
    let modes = || -> Vec<String> {
        let events = capture.events.lock().unwrap();
        let attempts = events.iter().filter(|e| e.name == "versioned: update attempt");
        attempts.map(|e| e.field("mode").unwrap().to_owned()).collect()
    };
    let reads = || -> usize {
        let spans = capture.spans.lock().unwrap();
        spans.iter().filter(|s| s.name == "versioned" && s.field("operation") == Some("get")).count()
    };
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The modes of the first burst's attempts, and of each round's eight turns.
    let (burst, mut rounds): (Vec<String>, Vec<Vec<String>>);
    rounds = Vec::new();
    // The reads of the round that took turns.
    let mut queued_reads = None;
    {
        // One thread: the thread's recorder and subscriber see every task below.
        let _local = metrics::set_default_local_recorder(&recorder);
        // SQLite's operations wait for their connection: the eight below are under way at once
        // (the memory backend's would each finish in their first poll).
        let store = Store::sqlite("sqlite::memory:").await.unwrap();
        store.create_table::<Account>().await.unwrap();
        store.insert(&mut Account { id: 1, balance: 0, version: 0 }).await.unwrap();
        let eight = || {
            let updates = (0..8).map(|_| store.update::<Account, _>(&1, RetryPolicy::default(), |a| a.balance += 1));
            futures_util::future::try_join_all(updates)
        };
        store.update::<Account, _>(&1, RetryPolicy::default(), |a| a.balance += 1).await.unwrap();
        eight().await.unwrap();
        burst = modes();
        assert_eq!(store.get::<Account>(&1).await.unwrap().unwrap().balance, 9, "every update exactly once");
        // The record stays hot for 200 to 400 ms after its conflicts: a machine that stalls that
        // long between the two bursts finds it cold, and the round starts again.
        for round in 1..=3 {
            let (seen, read) = (modes().len(), reads());
            eight().await.unwrap();
            rounds.push(modes().split_off(seen));
            let read = reads() - read;
            assert_eq!(store.get::<Account>(&1).await.unwrap().unwrap().balance, 9 + 8 * round, "exactly once");
            if rounds.last().is_some_and(|round| round == &["queued"; 8]) {
                queued_reads = Some(read);
                break;
            }
        }
    }
    assert_eq!(burst[0], "optimistic", "a cold record: {burst:?}");
    assert!(
        rounds.iter().any(|round| round == &["queued"; 8]),
        "the hot record's next eight updates take turns, none conflicting: {rounds:?}"
    );
    // The first turn reads the record, and hands on what it wrote to the turns waiting. (A turn
    // whose read and put both finish in its first poll ends before the others wait: the next
    // one reads again. So "fewer reads than turns", not "one".)
    assert!(
        queued_reads.is_some_and(|reads| (1..8).contains(&reads)),
        "turns take the record as the turn before wrote it: {queued_reads:?} reads for 8 turns"
    );
    let locked = burst.iter().filter(|m| *m == "locked").count();
    // Nine updates succeeded; every attempt beyond nine followed a conflict, and the attempt
    // after a conflict locks (and a locked attempt does not conflict).
    let conflicts = burst.len() - 9;
    assert!(conflicts >= 1 && locked >= conflicts, "eight at once conflict, then lock: {burst:?}");
    let all = modes();
    let count = |mode: &str| Some(all.iter().filter(|m| *m == mode).count() as u64).filter(|n| *n > 0);
    let mut counters = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let DebugValue::Counter(n) = value else { continue };
        if key.key().name() == "versioned_update_attempts_total" {
            let mode = key.key().labels().find(|l| l.key() == "mode").unwrap().value().to_owned();
            counters.insert(mode, n);
        }
    }
    for mode in ["optimistic", "queued", "locked"] {
        assert_eq!(counters.get(mode).copied(), count(mode), "the counter of {mode} attempts, as the events say");
    }
}
