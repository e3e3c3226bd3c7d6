//! Many tasks at once: every operation runs inside `tokio::spawn`, retried updates and transfers
//! lose nothing and count nothing twice, and retries that run out say what refused the last one.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{Account, Counter, Person, Xorshift, ann, assert_conflict, patient, setup, transfer};
use crate::error::Error;
use crate::retry::RetryPolicy;
use crate::storage::Storage;
use crate::store::Store;

/// Every operation's future is `Send`: it runs inside `tokio::spawn`.
pub async fn operations_run_inside_tokio_spawn<S: Storage + Clone>(store: &Store<S>) {
    setup(store).await;
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut p = Person { id: i, name: format!("P{i}"), salary: 10, version: 0 };
                store.insert(&mut p).await?;
                let mut p = Person::get_with_version(&store, &i, 1).await?;
                p.salary += 1;
                p.put(&store).await?;
                store.put_unchecked(&mut p).await?;
                let found = store.get::<Person>(&i).await?;
                store.delete(&p).await?;
                store.delete_unchecked::<Person>(&i).await?;
                Ok::<_, Error>(found.map(|p| (p.salary, p.version)))
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.await.expect("task").expect("operations"), Some((11, 3)));
    }
}

/// 16 tasks x 200 increments of one counter through `update`: exactly 3,200, every number unique.
pub async fn concurrent_update_counts_exactly<S: Storage>(store: &Store<S>) {
    const TASKS: usize = 16;
    const EACH: usize = 200;
    setup(store).await;
    let key = "orders".to_string();
    store.insert(&mut Counter { name: key.clone(), n: 0, version: 0 }).await.expect("insert");
    let tasks: Vec<_> = (0..TASKS).map(|_| increments(store.clone(), key.clone(), EACH)).collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task").expect("every update commits"));
    }
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), TASKS * EACH);
    assert_eq!(unique, (1..=(TASKS * EACH) as i64).collect(), "every number 1..=3200 exactly once");
    let counter = store.get::<Counter>(&key).await.expect("get").expect("present");
    assert_eq!((counter.n, counter.version), (3200, 3201));
}

/// A task making `n` increments of counter `key` through `update`: the numbers it drew.
fn increments<S: Storage>(store: Store<S>, key: String, n: usize) -> tokio::task::JoinHandle<Result<Vec<i64>, Error>> {
    tokio::spawn(async move {
        let mut drawn = Vec::with_capacity(n);
        for _ in 0..n {
            let increment = |c: &mut Counter| {
                c.n += 1;
                c.n
            };
            drawn.push(store.update::<Counter, _>(&key, patient(), increment).await?);
        }
        Ok(drawn)
    })
}

/// Two stores over one backend, as two processes would be, 8 tasks each × 50 increments of one
/// counter through `update`: exactly 800, every number unique. A store orders only its own
/// updates of a hot record (turns, or locks); the other store's writes still conflict with them,
/// and the update that meets such a conflict locks the record next.
pub async fn updates_from_two_stores_count_exactly<S: Storage + Clone>(store: &Store<S>) {
    const TASKS: usize = 8;
    const EACH: usize = 50;
    setup(store).await;
    let key = "orders".to_string();
    store.insert(&mut Counter { name: key.clone(), n: 0, version: 0 }).await.expect("insert");
    let other = Store::new(store.backend().clone());
    let tasks: Vec<_> = (0..2 * TASKS)
        .map(|i| increments(if i % 2 == 0 { store.clone() } else { other.clone() }, key.clone(), EACH))
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task").expect("every update commits"));
    }
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(unique, (1..=(2 * TASKS * EACH) as i64).collect(), "every number 1..=800 exactly once");
    let counter = store.get::<Counter>(&key).await.expect("get").expect("present");
    assert_eq!((counter.n, counter.version), (800, 801));
}

/// Checked writes of many tasks at once, as group commit merges them (each round sends them all
/// together): puts of their own records apply, stale puts are refused with the stored record,
/// of two puts of one record at one version exactly one applies and the other sees it, an insert
/// of a taken key is refused, checked deletes delete, a stale one is refused. Every write gets
/// its own outcome, whatever it shared a statement with.
pub async fn concurrent_writes_keep_their_own_outcomes<S: Storage + Clone>(store: &Store<S>) {
    setup(store).await;
    for round in 0..6i64 {
        let base = round * 1_000;
        for id in base..base + 36 {
            store.insert(&mut Person { id, name: format!("P{id}"), salary: 0, version: 0 }).await.expect("insert");
        }
        // What each task does, and what it must get.
        #[derive(Clone, Copy, Debug)]
        enum Op {
            Put(i64, i32, u64),
            Insert(i64),
            Delete(i64, u64),
        }
        let mut ops = Vec::new();
        ops.extend((base..base + 16).map(|id| Op::Put(id, 100, 1)));
        ops.extend((base + 16..base + 20).map(|id| Op::Put(id, 100, 7)));
        ops.extend((base + 20..base + 24).flat_map(|id| [Op::Put(id, 1, 1), Op::Put(id, 2, 1)]));
        ops.extend((base + 500..base + 504).map(Op::Insert));
        ops.extend((base + 16..base + 18).map(Op::Insert));
        ops.extend((base + 24..base + 32).map(|id| Op::Delete(id, 1)));
        ops.extend((base + 32..base + 36).map(|id| Op::Delete(id, 9)));
        let tasks: Vec<_> = ops
            .iter()
            .map(|op| {
                let (store, op) = (store.clone(), *op);
                tokio::spawn(async move {
                    match op {
                        Op::Put(id, salary, version) => {
                            let mut p = Person { id, name: format!("P{id}"), salary, version };
                            p.put(&store).await.map(|()| p.version)
                        }
                        Op::Insert(id) => {
                            let mut p = Person { id, name: "New".into(), salary: 5, version: 0 };
                            store.insert(&mut p).await.map(|()| p.version)
                        }
                        Op::Delete(id, version) => {
                            let p = Person { id, name: format!("P{id}"), salary: 0, version };
                            store.delete(&p).await.map(|()| 0)
                        }
                    }
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("task"));
        }
        let mut twice = std::collections::BTreeMap::new();
        for (op, outcome) in ops.iter().zip(outcomes) {
            match *op {
                Op::Put(id, _, 1) if id < base + 16 => assert_eq!(outcome.expect("put"), 2, "{op:?}"),
                Op::Put(id, salary, 1) => twice.entry(id).or_insert_with(Vec::new).push((salary, outcome)),
                Op::Put(..) => {
                    let err = outcome.expect_err("a stale put is refused");
                    assert_conflict(&err, 7, Some(1));
                    let current = err.current::<Person>().expect("the stored record").expect("decodes");
                    assert_eq!((current.salary, current.version), (0, 1), "{op:?}");
                }
                Op::Insert(id) if id >= base + 500 => assert_eq!(outcome.expect("insert"), 1, "{op:?}"),
                Op::Insert(_) => assert!(matches!(outcome, Err(Error::AlreadyExists { .. })), "{op:?}: {outcome:?}"),
                Op::Delete(_, 1) => assert_eq!(outcome.expect("delete"), 0),
                Op::Delete(..) => assert_conflict(&outcome.expect_err("a stale delete is refused"), 9, Some(1)),
            }
        }
        for (id, pair) in twice {
            let applied: Vec<i32> = pair.iter().filter(|(_, o)| o.is_ok()).map(|(salary, _)| *salary).collect();
            assert_eq!(applied.len(), 1, "record {id}: exactly one of two puts at version 1 applies");
            let refused = pair.iter().find_map(|(_, o)| o.as_ref().err()).expect("the other is refused");
            assert_conflict(refused, 1, Some(2));
            let seen = refused.current::<Person>().expect("the stored record").expect("decodes");
            assert_eq!(seen.salary, applied[0], "record {id}: the refused put sees the one applied");
        }
        for id in base..base + 36 {
            let stored = store.get::<Person>(&id).await.expect("get");
            let expected = match id - base {
                0..16 => Some((100, 2)),
                16..20 => Some((0, 1)),
                20..24 => stored.as_ref().map(|p| (p.salary, 2)),
                24..32 => None,
                _ => Some((0, 1)),
            };
            assert_eq!(stored.map(|p| (p.salary, p.version)), expected, "record {id}");
        }
        for id in base + 500..base + 504 {
            let stored = store.get::<Person>(&id).await.expect("get").expect("inserted");
            assert_eq!((stored.name.as_str(), stored.version), ("New", 1));
        }
    }
}

/// 8 tasks x 200 random transfers among 10 accounts through `transaction_with_retry`: the sum of
/// the balances never changes, and every committed transfer is reflected exactly once.
pub async fn concurrent_transfers_keep_the_sum<S: Storage>(store: &Store<S>) {
    const ACCOUNTS: i32 = 10;
    const TASKS: u64 = 8;
    const EACH: usize = 200;
    setup(store).await;
    for id in 0..ACCOUNTS {
        store.insert(&mut Account { id, balance: 1_000, version: 0 }).await.expect("insert");
    }
    let tasks: Vec<_> = (0..TASKS)
        .map(|seed| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15 ^ (seed + 1));
                let mut committed = Vec::with_capacity(EACH);
                for _ in 0..EACH {
                    let (from, to) = rng.two_accounts(ACCOUNTS);
                    let amount = 1 + rng.below(50) as i64;
                    store
                        .transaction_with_retry(patient(), |tx| async move { transfer(&tx, from, to, amount).await })
                        .await?;
                    committed.push((from, to, amount));
                }
                Ok::<_, Error>(committed)
            })
        })
        .collect();
    let mut expected = vec![1_000i64; ACCOUNTS as usize];
    let mut writes = 0;
    for task in tasks {
        for (from, to, amount) in task.await.expect("task").expect("every transfer commits") {
            expected[from as usize] -= amount;
            expected[to as usize] += amount;
            writes += 2;
        }
    }
    let mut total = 0;
    let mut versions = 0;
    for id in 0..ACCOUNTS {
        let account = store.get::<Account>(&id).await.expect("get").expect("present");
        assert_eq!(account.balance, expected[id as usize], "account {id}: each committed transfer once");
        total += account.balance;
        versions += account.version - 1;
    }
    assert_eq!(total, 1_000 * i64::from(ACCOUNTS), "the sum never changes");
    assert_eq!(versions, writes, "one version step per committed write, none lost or doubled");
}

/// When attempts run out, `RetriesExhausted` says how many and carries the last conflict.
pub async fn retries_exhausted_carries_the_last_conflict<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    p.put(store).await.expect("put"); // stored version 2
    let calls = Arc::new(AtomicU32::new(0));
    let policy = RetryPolicy { max_attempts: 3, initial_backoff: Duration::from_millis(1), ..RetryPolicy::default() };
    let err = store
        .transaction_with_retry(policy, |tx| {
            let calls = Arc::clone(&calls);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let mut stale = Person { version: 1, ..ann() };
                tx.put(&mut stale).await
            }
        })
        .await
        .expect_err("always stale");
    match &err {
        Error::RetriesExhausted { attempts: 3, last } => assert_conflict(last, 1, Some(2)),
        other => panic!("expected RetriesExhausted after 3 attempts, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(!err.is_retryable());

    let err = store.update::<Person, _>(&404, RetryPolicy::default(), |p| p.salary += 1).await.expect_err("missing");
    assert!(matches!(err, Error::NotFound { .. }), "not retryable, so returned at once: {err:?}");
}
