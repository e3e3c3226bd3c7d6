//! A history checker: concurrent clients record every operation's invocation and completion
//! ([`Event`]: ok, definitely failed, or unknown), and [`check`] looks at the whole history, not
//! only the final sums.
//!
//! The workload ([`run`]) is list-append (each [`Log`] record holds a list; each append adds a
//! value no other append uses, through `update`, through a checked `put` of a copy read earlier,
//! or two at once in a transaction) beside transfers between [`Account`]s with snapshot reads of
//! every balance. The checks:
//!
//! - every acknowledged append is present exactly once, in its record;
//! - no append that definitely failed is present, and no value is present twice;
//! - every read of a record is a prefix of the record's final list, and of every read that began
//!   after it ended;
//! - each record's version is 1 + its number of applied appends, in every read and at the end;
//! - every snapshot read of the accounts sums to the total.
//!
//! An [`Anomaly`] carries the smallest slice of history that shows it: the events it is about.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Account, Xorshift, patient};
use crate::error::Error;
use crate::storage::Storage;
use crate::store::Store;

/// A record holding a list that only grows.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "history_logs")]
pub struct Log {
    /// Key.
    #[key]
    pub id: i64,
    /// The values appended, in order.
    #[versioned(json)]
    pub items: Vec<u64>,
    /// Version.
    #[version]
    pub version: u64,
}

/// How an append was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// `store.update`, retried on conflicts.
    Update,
    /// A checked `put` of a copy read earlier (refused if anyone wrote since).
    PutOfEarlierRead,
    /// One of two appends in one transaction.
    Transaction,
}

/// An operation of the workload.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Append `value` to record `key`.
    Append {
        /// The record.
        key: i64,
        /// The value, used by no other append.
        value: u64,
        /// How.
        how: How,
    },
    /// Read record `key`: what was seen (the list and the version), once it completed.
    Read {
        /// The record.
        key: i64,
        /// The list and version read.
        seen: Option<(Vec<u64>, u64)>,
    },
    /// Move `amount` from account `from` to `to`, in a transaction.
    Transfer {
        /// Debited account.
        from: i32,
        /// Credited account.
        to: i32,
        /// Amount.
        amount: i64,
    },
    /// A read-only transaction reading every account: the balances seen.
    Snapshot {
        /// The balances, once it completed.
        balances: Vec<i64>,
    },
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Acknowledged.
    Ok,
    /// Definitely not applied (a conflict, a lock wait refused, a transaction rolled back).
    Failed(String),
    /// Not known: it may or may not have been applied (a storage error, a lost connection).
    Unknown(String),
}

/// One operation of one client: what it was, when it was invoked and completed (since the run
/// began), and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The client.
    pub client: usize,
    /// The operation.
    pub op: Op,
    /// When it was invoked.
    pub invoked: Duration,
    /// When it completed.
    pub completed: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// A property the history breaks, with the events that show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// What is wrong.
    pub what: String,
    /// The smallest slice of history that shows it.
    pub events: Vec<Event>,
}

/// The figures of a run, and its anomalies.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Operations run.
    pub operations: usize,
    /// Acknowledged.
    pub acknowledged: usize,
    /// Definitely failed.
    pub failed: usize,
    /// Unknown.
    pub unknown: usize,
    /// Retries inside `update`s (its function's calls beyond the first).
    pub retries: usize,
    /// Acknowledged operations by the second of the run they completed in: how the workload
    /// went on around faults.
    pub acknowledged_per_second: Vec<usize>,
    /// What [`check`] found.
    pub anomalies: Vec<Anomaly>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} operations: {} acknowledged, {} failed, {} unknown; {} retries; {} anomalies",
            self.operations,
            self.acknowledged,
            self.failed,
            self.unknown,
            self.retries,
            self.anomalies.len()
        )
    }
}

/// How an error leaves an operation: a refusal that wrote nothing, or unknown.
pub fn outcome_of(err: &Error) -> Outcome {
    match err {
        Error::ConcurrentModification { .. }
        | Error::Conflicts { .. }
        | Error::Collisions { .. }
        | Error::LockTimeout { .. }
        | Error::NotFound { .. }
        | Error::AlreadyExists { .. } => Outcome::Failed(err.to_string()),
        Error::RetriesExhausted { last, .. } => outcome_of(last),
        other => Outcome::Unknown(other.to_string()),
    }
}

/// Checks a history against the final state of the records (`finals`: each key's list and
/// version) and the accounts' `total`.
pub fn check(events: &[Event], finals: &BTreeMap<i64, (Vec<u64>, u64)>, total: i64) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let mut found = |what: String, events: Vec<&Event>| {
        anomalies.push(Anomaly { what, events: events.into_iter().cloned().collect() });
    };
    // Where each value is, at the end.
    let mut places: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for (key, (items, version)) in finals {
        for value in items {
            places.entry(*value).or_default().push(*key);
        }
        if *version != 1 + items.len() as u64 {
            found(format!("record {key} ends at version {version} with {} appends applied", items.len()), Vec::new());
        }
    }
    let appends: Vec<&Event> = events.iter().filter(|e| matches!(e.op, Op::Append { .. })).collect();
    for event in &appends {
        let Op::Append { key, value, .. } = event.op else { continue };
        let at = places.get(&value).map(Vec::as_slice).unwrap_or_default();
        match &event.outcome {
            Outcome::Ok if at != [key] => {
                found(format!("acknowledged append of {value} to record {key} is present in {at:?}"), vec![event]);
            }
            Outcome::Failed(_) if !at.is_empty() => {
                found(format!("append of {value} to record {key} failed but is present in {at:?}"), vec![event]);
            }
            Outcome::Unknown(_) if at.len() > 1 || at.iter().any(|k| *k != key) => {
                found(format!("append of {value} to record {key} is present in {at:?}"), vec![event]);
            }
            _ => {}
        }
    }
    for (value, at) in &places {
        let appended = appends.iter().any(|e| matches!(e.op, Op::Append { value: v, .. } if v == *value));
        if !appended {
            found(format!("value {value} in records {at:?} was never appended"), Vec::new());
        }
    }
    let reads: Vec<(&Event, i64, &Vec<u64>, u64)> = events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Read { key, seen: Some((items, version)) } if e.outcome == Outcome::Ok => {
                Some((e, *key, items, *version))
            }
            _ => None,
        })
        .collect();
    for (event, key, items, version) in &reads {
        let fin = finals.get(key).map(|(items, _)| items.as_slice()).unwrap_or_default();
        if !fin.starts_with(items) {
            found(format!("a read of record {key} saw {items:?}, not a prefix of its final list {fin:?}"), vec![event]);
        }
        if *version != 1 + items.len() as u64 {
            found(format!("a read of record {key} saw version {version} with {} appends", items.len()), vec![event]);
        }
    }
    for (earlier, key, items, _) in &reads {
        for (later, other, later_items, _) in &reads {
            if key == other && earlier.completed < later.invoked && !later_items.starts_with(items) {
                found(
                    format!("record {key} was read as {items:?}, then later as {later_items:?}: not a prefix"),
                    vec![earlier, later],
                );
            }
        }
    }
    for event in events {
        if let (Op::Snapshot { balances }, Outcome::Ok) = (&event.op, &event.outcome) {
            let sum: i64 = balances.iter().sum();
            if sum != total {
                found(format!("a snapshot of the accounts sums to {sum}, not {total}"), vec![event]);
            }
        }
    }
    anomalies
}

/// The records and accounts of a run.
const LOGS: i64 = 4;
const ACCOUNTS: i32 = 4;
const BALANCE: i64 = 100;

/// Records the events of one run.
struct Recorder {
    start: Instant,
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn push(&self, client: usize, op: Op, invoked: Duration, outcome: Outcome) {
        let event = Event { client, op, invoked, completed: self.now(), outcome };
        self.events.lock().unwrap_or_else(PoisonError::into_inner).push(event);
    }
}

/// Runs the workload on `store` with `clients` concurrent clients of `operations` operations each
/// (seeded by `seed`), then reads the final state and checks the history.
pub async fn run<S: Storage + Clone>(store: &Store<S>, clients: usize, operations: usize, seed: u64) -> Report {
    run_on(std::slice::from_ref(store), clients, operations, seed).await
}

/// [`run`] with the clients spread over `stores` (client `i` on `stores[i % len]`): stores on
/// different nodes of one cluster, say. The tables are made, and the final state read, through
/// the first.
pub async fn run_on<S: Storage + Clone>(stores: &[Store<S>], clients: usize, operations: usize, seed: u64) -> Report {
    run_until(stores, clients, operations, seed, Arc::default()).await
}

/// [`run_on`], each client stopping after `operations` operations or once `stop` is set,
/// whichever comes first: a run that lasts as long as faults do.
pub async fn run_until<S: Storage + Clone>(
    stores: &[Store<S>],
    clients: usize,
    operations: usize,
    seed: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Report {
    let store = &stores[0];
    store.create_table::<Log>().await.expect("create the logs");
    store.create_table::<Account>().await.expect("create the accounts");
    for id in 0..LOGS {
        store.insert(&mut Log { id, items: Vec::new(), version: 0 }).await.expect("a log");
    }
    for id in 0..ACCOUNTS {
        store.insert(&mut Account { id, balance: BALANCE, version: 0 }).await.expect("an account");
    }
    let recorder = Arc::new(Recorder { start: Instant::now(), events: Mutex::new(Vec::new()) });
    let retries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let store = stores[client % stores.len()].clone();
            let (recorder, retries, stop) = (Arc::clone(&recorder), Arc::clone(&retries), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut rng =
                    Xorshift(seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(client as u64 + 1) | 1);
                let mut held: Option<Log> = None;
                for n in 0..operations {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    // Unique across the run: the client and its operation number.
                    let value = (client * operations + n) as u64 + 1;
                    client_step(&store, &recorder, &retries, client, &mut rng, &mut held, value).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a client");
    }
    let mut finals = BTreeMap::new();
    for id in 0..LOGS {
        let log = store.get::<Log>(&id).await.expect("final read").expect("a log");
        finals.insert(id, (log.items, log.version));
    }
    let events = std::mem::take(&mut *recorder.events.lock().unwrap_or_else(PoisonError::into_inner));
    let anomalies = check(&events, &finals, BALANCE * i64::from(ACCOUNTS));
    let count = |f: fn(&Outcome) -> bool| events.iter().filter(|e| f(&e.outcome)).count();
    let mut acknowledged_per_second = Vec::new();
    for event in events.iter().filter(|e| e.outcome == Outcome::Ok) {
        let second = usize::try_from(event.completed.as_secs()).unwrap_or(usize::MAX);
        if acknowledged_per_second.len() <= second {
            acknowledged_per_second.resize(second + 1, 0);
        }
        acknowledged_per_second[second] += 1;
    }
    Report {
        operations: events.len(),
        acknowledged: count(|o| *o == Outcome::Ok),
        failed: count(|o| matches!(o, Outcome::Failed(_))),
        unknown: count(|o| matches!(o, Outcome::Unknown(_))),
        retries: retries.load(std::sync::atomic::Ordering::Relaxed),
        acknowledged_per_second,
        anomalies,
    }
}

/// One operation of one client, recorded.
async fn client_step<S: Storage>(
    store: &Store<S>,
    recorder: &Recorder,
    retries: &std::sync::atomic::AtomicUsize,
    client: usize,
    rng: &mut Xorshift,
    held: &mut Option<Log>,
    value: u64,
) {
    let key = rng.below(LOGS as u64) as i64;
    let invoked = recorder.now();
    match rng.below(100) {
        0..30 => {
            let mut calls = 0;
            let done = store
                .update::<Log, _>(&key, patient(), |log| {
                    calls += 1;
                    log.items.push(value);
                })
                .await;
            retries.fetch_add(calls.max(1) - 1, std::sync::atomic::Ordering::Relaxed);
            let outcome = done.map_or_else(|e| outcome_of(&e), |()| Outcome::Ok);
            recorder.push(client, Op::Append { key, value, how: How::Update }, invoked, outcome);
        }
        30..50 => match held.take() {
            Some(mut copy) => {
                let key = copy.id;
                copy.items.push(value);
                let outcome = copy.put(store).await.map_or_else(|e| outcome_of(&e), |()| Outcome::Ok);
                recorder.push(client, Op::Append { key, value, how: How::PutOfEarlierRead }, invoked, outcome);
            }
            None => {
                let read = store.get::<Log>(&key).await;
                record_read(recorder, client, key, invoked, &read);
                *held = read.ok().flatten();
            }
        },
        50..65 => {
            let other = (key + 1 + rng.below(LOGS as u64 - 1) as i64) % LOGS;
            // In key order, so that two such transactions never deadlock.
            let (first, second) = (key.min(other), key.max(other));
            let (v1, v2) = (value, value + 1_000_000_000);
            let done = store
                .transaction(move |tx| async move {
                    for (k, v) in [(first, v1), (second, v2)] {
                        let mut log = tx.get::<Log>(&k).await?.ok_or_else(|| Error::not_found::<Log>(&k))?;
                        log.items.push(v);
                        tx.put(&mut log).await?;
                    }
                    Ok(())
                })
                .await;
            let outcome = done.map_or_else(|e| outcome_of(&e), |()| Outcome::Ok);
            for (k, v) in [(first, v1), (second, v2)] {
                recorder.push(client, Op::Append { key: k, value: v, how: How::Transaction }, invoked, outcome.clone());
            }
        }
        65..85 => {
            let read = store.get::<Log>(&key).await;
            record_read(recorder, client, key, invoked, &read);
        }
        85..95 => {
            let (from, to) = rng.two_accounts(ACCOUNTS);
            let (first, second) = (from.min(to), from.max(to));
            let amount = rng.below(20) as i64 + 1;
            let done = store
                .transaction(move |tx| async move {
                    let mut a = tx.get::<Account>(&first).await?.ok_or_else(|| Error::not_found::<Account>(&first))?;
                    let mut b =
                        tx.get::<Account>(&second).await?.ok_or_else(|| Error::not_found::<Account>(&second))?;
                    let delta = if first == from { amount } else { -amount };
                    a.balance -= delta;
                    b.balance += delta;
                    tx.put(&mut a).await?;
                    tx.put(&mut b).await
                })
                .await;
            let outcome = done.map_or_else(|e| outcome_of(&e), |()| Outcome::Ok);
            recorder.push(client, Op::Transfer { from, to, amount }, invoked, outcome);
        }
        _ => {
            let read = store
                .read_transaction(|tx| async move {
                    let mut balances = Vec::new();
                    for id in 0..ACCOUNTS {
                        balances.push(tx.get::<Account>(&id).await?.map_or(0, |a| a.balance));
                    }
                    Ok(balances)
                })
                .await;
            let (balances, outcome) = match read {
                Ok(balances) => (balances, Outcome::Ok),
                Err(e) => (Vec::new(), outcome_of(&e)),
            };
            recorder.push(client, Op::Snapshot { balances }, invoked, outcome);
        }
    }
}

fn record_read(recorder: &Recorder, client: usize, key: i64, invoked: Duration, read: &crate::Result<Option<Log>>) {
    let (seen, outcome) = match read {
        Ok(Some(log)) => (Some((log.items.clone(), log.version)), Outcome::Ok),
        Ok(None) => (None, Outcome::Failed("no such record".into())),
        Err(e) => (None, outcome_of(e)),
    };
    recorder.push(client, Op::Read { key, seen }, invoked, outcome);
}

/// The list-append and transfer workload, 8 clients × 40 operations, checked as a whole history:
/// no anomaly. The figures are printed (`--nocapture` shows them).
pub async fn a_history_of_appends_and_transfers_has_no_anomaly<S: Storage + Clone>(store: &Store<S>) {
    let report = run(store, 8, 40, 7).await;
    let backend = std::any::type_name::<S>().rsplit("::").next().unwrap_or("?");
    println!("history checker on {backend}: {report}");
    assert!(report.acknowledged > 100, "too few operations went through to check anything: {report}");
    assert!(report.anomalies.is_empty(), "{report}\n{:#?}", report.anomalies);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(client: usize, op: Op, invoked: u64, completed: u64, outcome: Outcome) -> Event {
        Event {
            client,
            op,
            invoked: Duration::from_millis(invoked),
            completed: Duration::from_millis(completed),
            outcome,
        }
    }

    fn append(key: i64, value: u64, outcome: Outcome) -> Event {
        event(0, Op::Append { key, value, how: How::Update }, 0, 1, outcome)
    }

    fn read(key: i64, items: Vec<u64>, invoked: u64, completed: u64) -> Event {
        let version = 1 + items.len() as u64;
        event(1, Op::Read { key, seen: Some((items, version)) }, invoked, completed, Outcome::Ok)
    }

    fn finals(items: Vec<u64>) -> BTreeMap<i64, (Vec<u64>, u64)> {
        let version = 1 + items.len() as u64;
        BTreeMap::from([(0, (items, version))])
    }

    #[test]
    fn a_clean_history_has_no_anomaly() {
        let events = [
            append(0, 1, Outcome::Ok),
            append(0, 2, Outcome::Failed("conflict".into())),
            append(0, 3, Outcome::Unknown("lost".into())),
            read(0, vec![1], 2, 3),
            read(0, vec![1, 3], 4, 5),
        ];
        assert_eq!(check(&events, &finals(vec![1, 3]), 0), []);
    }

    #[test]
    fn each_kind_of_anomaly_is_found_with_the_events_that_show_it() {
        let lost = append(0, 1, Outcome::Ok);
        let anomalies = check(std::slice::from_ref(&lost), &finals(vec![]), 0);
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].events, [lost], "the lost append");

        let failed = append(0, 2, Outcome::Failed("conflict".into()));
        assert_eq!(check(std::slice::from_ref(&failed), &finals(vec![2]), 0)[0].events, [failed]);

        let twice = append(0, 3, Outcome::Ok);
        assert!(check(&[twice], &finals(vec![3, 3]), 0)[0].what.contains("present in [0, 0]"));

        let (early, late) = (read(0, vec![4, 5], 0, 1), read(0, vec![4], 2, 3));
        let events = [append(0, 4, Outcome::Ok), append(0, 5, Outcome::Ok), early.clone(), late.clone()];
        let anomalies = check(&events, &finals(vec![4, 5]), 0);
        assert_eq!(anomalies.len(), 1, "{anomalies:?}");
        assert_eq!(anomalies[0].events, [early, late], "a read that went backwards");

        let skipped = event(1, Op::Read { key: 0, seen: Some((vec![6], 3)) }, 0, 1, Outcome::Ok);
        let anomalies = check(&[append(0, 6, Outcome::Ok), skipped.clone()], &finals(vec![6]), 0);
        assert_eq!(anomalies[0].events, [skipped], "a version that grew by more than its appends");

        let torn = event(2, Op::Snapshot { balances: vec![50, 40] }, 0, 1, Outcome::Ok);
        assert_eq!(check(std::slice::from_ref(&torn), &BTreeMap::new(), 100)[0].events, [torn]);

        let phantom = check(&[], &finals(vec![9]), 0);
        assert!(phantom[0].what.contains("never appended"), "{phantom:?}");
    }
}
