//! The etcd backend on a 3-member cluster: the whole conformance suite, the layout and limits
//! that are etcd's own, and what happens when members die.
//!
//! Without `VERSIONED_ETCD_ENDPOINTS`, the tests start a cluster of their own from Debian's `etcd`
//! (package `etcd-server`) on free loopback ports; without either, they say they were skipped.

#[allow(dead_code)]
#[path = "../common/etcd_cluster.rs"]
mod cluster;

mod conformance {
    versioned_core::conformance_tests!(super::cluster::store);
}

/// Members dying under load: every operation that returned `Ok` is there exactly once, the
/// counts are exact, and the failures during the election were retryable and absorbed.
mod faults {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use versioned::{Error, EtcdOptions, EtcdStorage, RetryPolicy, Store, Versioned};

    use super::cluster::{self, Cluster};

    #[derive(Versioned, Debug, Clone)]
    struct Counter {
        #[key]
        id: i64,
        count: i64,
        #[version]
        version: u64,
    }

    #[derive(Versioned, Debug, Clone)]
    struct Account {
        #[key]
        id: i64,
        balance: i64,
        #[version]
        version: u64,
    }

    const TASKS: i64 = 8;
    const UPDATES: i64 = 200;
    const COUNTERS: i64 = 4;
    const ACCOUNTS: i64 = 6;

    /// Patient enough to ride out an election (about a second) many times over.
    fn patient() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 400,
            initial_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(100),
            jitter: true,
        }
    }

    /// What a run saw.
    #[derive(Debug, Default)]
    struct Tally {
        attempts: AtomicU64,
        transfers: AtomicU64,
    }

    /// A store on `cluster`, whose requests give up after `timeout`.
    async fn connect(cluster: &Cluster, timeout: Duration) -> Store<EtcdStorage> {
        let options = EtcdOptions::from_list(&cluster.endpoints().join(","))
            .expect("endpoints")
            .request_timeout(timeout)
            .connect_timeout(Duration::from_millis(500));
        Store::new(EtcdStorage::connect(options).await.expect("connect"))
    }

    /// Runs 8 tasks × 200 `update`s of 4 shared counters and a stream of transfers while `fault`
    /// hits the cluster, then checks that nothing was lost or applied twice.
    async fn under_fault(what: &str, fault: impl AsyncFnOnce(&mut Cluster)) {
        let Some(binary) = cluster::binary() else {
            eprintln!("skipped: no etcd here (install Debian's etcd-server or set VERSIONED_ETCD_BIN)");
            return;
        };
        let mut cluster = Cluster::start(binary, 3);
        let store = connect(&cluster, Duration::from_secs(2)).await;
        store.create_table::<Counter>().await.expect("create counter");
        store.create_table::<Account>().await.expect("create account");
        for id in 0..COUNTERS {
            store.insert(&mut Counter { id, count: 0, version: 0 }).await.expect("insert counter");
        }
        for id in 0..ACCOUNTS {
            store.insert(&mut Account { id, balance: 1_000, version: 0 }).await.expect("insert account");
        }

        let tally = Arc::new(Tally::default());
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for task in 0..TASKS {
            let (store, tally, done) = (store.clone(), Arc::clone(&tally), Arc::clone(&done));
            workers.push(tokio::spawn(async move {
                for _ in 0..UPDATES {
                    let tally = &tally;
                    store
                        .update::<Counter, _>(&(task % COUNTERS), patient(), |c| {
                            tally.attempts.fetch_add(1, Ordering::Relaxed);
                            c.count += 1;
                        })
                        .await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, Error>(())
            }));
        }
        // Transfers between accounts, each recorded once it returned `Ok`.
        let ledger = {
            let (store, tally, stop) = (store.clone(), Arc::clone(&tally), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut moved: BTreeMap<i64, i64> = BTreeMap::new();
                let mut n: i64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (from, to) = (n % ACCOUNTS, (n * 7 + 1) % ACCOUNTS);
                    n += 1;
                    if from == to {
                        continue;
                    }
                    store
                        .transaction_with_retry(patient(), |tx| async move {
                            let mut a =
                                tx.get::<Account>(&from).await?.ok_or_else(|| Error::not_found::<Account>(&from))?;
                            let mut b =
                                tx.get::<Account>(&to).await?.ok_or_else(|| Error::not_found::<Account>(&to))?;
                            a.balance -= 1;
                            b.balance += 1;
                            tx.put(&mut a).await?;
                            tx.put(&mut b).await
                        })
                        .await?;
                    *moved.entry(from).or_default() -= 1;
                    *moved.entry(to).or_default() += 1;
                    tally.transfers.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, Error>(moved)
            })
        };

        // A third of the way in, the fault; it lasts while the work goes on.
        while done.load(Ordering::Relaxed) < (TASKS * UPDATES / 3) as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        let at = done.load(Ordering::Relaxed);
        fault(&mut cluster).await;
        let after = done.load(Ordering::Relaxed);

        for worker in workers {
            worker.await.expect("worker task").expect("every update succeeds, retries included");
        }
        stop.store(true, Ordering::Relaxed);
        let moved = ledger.await.expect("ledger task").expect("every transfer succeeds, retries included");
        cluster.wait_healthy();

        let mut total = 0;
        for id in 0..COUNTERS {
            let counter = store.get::<Counter>(&id).await.expect("get").expect("counter");
            let tasks = (0..TASKS).filter(|t| t % COUNTERS == id).count() as i64;
            assert_eq!(counter.count, tasks * UPDATES, "counter {id}: every update exactly once");
            assert_eq!(counter.version, 1 + (tasks * UPDATES) as u64, "counter {id}: one version per update");
            total += counter.count;
        }
        assert_eq!(total, TASKS * UPDATES);
        let mut sum = 0;
        for id in 0..ACCOUNTS {
            let account = store.get::<Account>(&id).await.expect("get").expect("account");
            let expected = 1_000 + moved.get(&id).copied().unwrap_or(0);
            assert_eq!(account.balance, expected, "account {id}: exactly the transfers that returned Ok");
            sum += account.balance;
        }
        assert_eq!(sum, 1_000 * ACCOUNTS, "the transfers keep the total");
        let attempts = tally.attempts.load(Ordering::Relaxed);
        println!(
            "{what}: {} updates ({} when the fault came, {} by the time it was over, {:?} later) and {} transfers, \
             all exact; {} update attempts, so {} retried (conflicts and the fault's retryable errors)",
            TASKS * UPDATES,
            at,
            after,
            started.elapsed(),
            tally.transfers.load(Ordering::Relaxed),
            attempts,
            attempts - (TASKS * UPDATES) as u64,
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn killing_the_leader_loses_nothing() {
        under_fault("leader killed", async |cluster: &mut Cluster| {
            let leader = cluster.leader().await;
            let term = cluster.term(leader).await;
            let pid = cluster.pid(leader).expect("the leader runs");
            cluster.kill(leader); // kill -9 <pid>
            let survivor = (leader + 1) % 3;
            let next = cluster.leader().await;
            assert_ne!(next, leader);
            let elected = cluster.term(survivor).await;
            println!("killed leader m{leader} (pid {pid}); m{next} elected, term {term} -> {elected}");
            assert!(elected > term, "an election happened");
            // Work goes on with two members for a while, then the third comes back.
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster.restart(leader);
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn killing_a_follower_loses_nothing() {
        under_fault("follower killed", async |cluster: &mut Cluster| {
            let leader = cluster.leader().await;
            let follower = (leader + 1) % 3;
            cluster.kill(follower);
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(cluster.leader().await, leader, "the leader stays");
            cluster.restart(follower);
        })
        .await;
    }

    /// The history checker's workload (appends through `update`, through checked puts of earlier
    /// reads and in transactions; reads; transfers and snapshots) while a nemesis hits the
    /// cluster: `kill -9` of the leader and its restart, then `SIGSTOP` of a member for longer
    /// than the client's request timeout and `SIGCONT`. The whole history is checked: no anomaly,
    /// whatever the faults made unknown.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_history_has_no_anomaly_through_kills_and_pauses() {
        let Some(binary) = cluster::binary() else {
            eprintln!("skipped: no etcd here (install Debian's etcd-server or set VERSIONED_ETCD_BIN)");
            return;
        };
        let mut cluster = Cluster::start(binary, 3);
        let store = connect(&cluster, Duration::from_secs(1)).await;
        // Until the faults are over and two seconds more, however long the restart takes.
        let stop = Arc::new(AtomicBool::new(false));
        let run = {
            let (store, stop) = (store.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                versioned_core::conformance::run_until(std::slice::from_ref(&store), 8, 100_000, 11, stop).await
            })
        };
        let mut faults = Vec::new();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let leader = cluster.leader().await;
        cluster.kill(leader); // kill -9 <pid>
        faults.push(format!("kill -9 of the leader m{leader}"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.restart(leader);
        cluster.wait_healthy();
        let paused = cluster.leader().await;
        let pid = cluster.pid(paused).expect("the leader runs").to_string();
        let signal = |name: &str| {
            let done = std::process::Command::new("kill").args([name, pid.as_str()]).status().expect("kill");
            assert!(done.success(), "kill {name} {pid}");
        };
        signal("-STOP");
        faults.push(format!("SIGSTOP of the leader m{paused} for 2.5 s"));
        tokio::time::sleep(Duration::from_millis(2_500)).await; // longer than the 1 s request timeout
        assert!(!run.is_finished(), "the faults came while the workload ran");
        signal("-CONT");
        cluster.wait_healthy();
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
        let report = run.await.expect("the workload");
        println!("history checker on EtcdStorage under faults ({}): {report}", faults.join(", "));
        assert!(report.anomalies.is_empty(), "{report}\n{:#?}", report.anomalies);
        // The last whole second, after the faults: a lock a fault left behind would stall every
        // writer of its record until its lease expired (10 s), and the clients with them.
        let after = report.acknowledged_per_second.iter().rev().nth(1).copied().unwrap_or(0);
        assert!(after > 50, "the workload went on at pace after the faults ({after} in its last second): {report}");
    }

    /// A transaction that could not release its lock (its only member was paused when it rolled
    /// back) releases it once the member is back, not when the lock's lease runs out (60 s here):
    /// a writer on the other members gets the record within its 5 s wait.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_lock_that_could_not_be_released_is_released_when_its_member_is_back() {
        let Some(binary) = cluster::binary() else {
            eprintln!("skipped: no etcd here (install Debian's etcd-server or set VERSIONED_ETCD_BIN)");
            return;
        };
        let cluster = Cluster::start(binary, 3);
        let endpoints = cluster.endpoints();
        let lone = EtcdOptions::new(endpoints[0].clone())
            .request_timeout(Duration::from_millis(500))
            .connect_timeout(Duration::from_millis(500))
            .lock_ttl(60);
        let lone = Store::new(EtcdStorage::connect(lone).await.expect("connect to m0"));
        let others = EtcdOptions::new(endpoints[1].clone())
            .endpoint(endpoints[2].clone())
            .request_timeout(Duration::from_secs(1))
            .lock_wait(versioned::LockWait::Timeout(Duration::from_secs(5)));
        let others = Store::new(EtcdStorage::connect(others).await.expect("connect to m1 and m2"));
        lone.create_table::<Counter>().await.expect("create_table");
        lone.insert(&mut Counter { id: 1, count: 0, version: 0 }).await.expect("insert");
        let pid = cluster.pid(0).expect("m0 runs").to_string();
        let signal = move |name: &str| {
            let done = std::process::Command::new("kill").args([name, pid.as_str()]).status().expect("kill");
            assert!(done.success(), "kill {name}");
        };
        let rolled_back = lone
            .transaction(|tx| {
                let signal = signal.clone();
                async move {
                    tx.get_for_update::<Counter>(&1).await?.expect("the counter");
                    signal("-STOP"); // the rollback's release cannot reach m0
                    Err::<(), _>(Error::not_found::<Counter>(&1))
                }
            })
            .await;
        assert!(matches!(rolled_back, Err(Error::NotFound { .. })), "{rolled_back:?}");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        signal("-CONT");
        let counted = others
            .transaction(|tx| async move {
                let mut counter = tx.get_for_update::<Counter>(&1).await?.expect("the counter");
                counter.count += 1;
                tx.put(&mut counter).await?;
                Ok(counter)
            })
            .await;
        let counter = counted.expect("the lock was released once m0 was back, within the 5 s wait");
        assert_eq!((counter.count, counter.version), (1, 2));
    }
}

/// What is etcd's own: the recorded schema, the cluster's limits, and locks that outlive a dead
/// client only as long as its lease.
mod etcd_own {
    use std::time::{Duration, Instant};

    use versioned::{Error, EtcdOptions, EtcdStorage, LockWait, Store, Versioned};

    use super::cluster;

    #[derive(Versioned, Debug, Clone, PartialEq)]
    #[versioned(table = "notes")]
    struct Note {
        #[key]
        id: i64,
        body: String,
        #[version]
        version: u64,
    }

    /// The same table, as another struct declares it: a column more.
    #[derive(Versioned, Debug, Clone)]
    #[versioned(table = "notes")]
    struct NoteWithTitle {
        #[key]
        id: i64,
        title: String,
        body: String,
        #[version]
        version: u64,
    }

    async fn options(prefix: &str) -> Option<EtcdOptions> {
        let endpoints = cluster::shared_endpoints()?;
        Some(EtcdOptions::from_list(&endpoints.join(",")).expect("endpoints").prefix(prefix))
    }

    fn prefix() -> String {
        format!("test/{}/", uuid::Uuid::new_v4().simple())
    }

    #[tokio::test]
    async fn a_struct_with_other_columns_is_refused_by_create_table() {
        let Some(store) = cluster::store().await else { return };
        store.create_table::<Note>().await.expect("create");
        store.create_table::<Note>().await.expect("the same struct again");
        match store.create_table::<NoteWithTitle>().await {
            Err(Error::Config { reason }) => {
                assert!(reason.contains("\"notes\"") && reason.contains("title"), "{reason}")
            }
            other => panic!("expected Error::Config, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_transaction_beyond_the_operation_limit_is_refused_before_anything_is_sent() {
        let prefix = prefix();
        let Some(options) = options(&prefix).await else { return };
        // etcd's default limit, whatever the cluster allows: the store refuses first.
        let store = Store::new(EtcdStorage::connect(options.max_txn_ops(128)).await.expect("connect"));
        store.create_table::<Note>().await.expect("create");
        let result = store
            .transaction(|tx| async move {
                for id in 0..70 {
                    tx.insert(&mut Note { id, body: "x".into(), version: 0 }).await?;
                }
                Ok(())
            })
            .await;
        match result {
            Err(Error::Storage(e)) => {
                let message = e.to_string();
                assert!(
                    !e.is_retryable() && message.contains("--max-txn-ops") && message.contains("nothing was sent"),
                    "{message}"
                );
            }
            other => panic!("expected a storage error naming the limit, got {other:?}"),
        }
        for id in 0..70 {
            assert_eq!(store.get::<Note>(&id).await.expect("get"), None, "nothing was written");
        }
        let result = store
            .transaction(|tx| async move {
                for id in 0..20 {
                    tx.insert(&mut Note { id, body: "x".into(), version: 0 }).await?;
                }
                Ok(())
            })
            .await;
        result.expect("20 records fit in 128 operations");
    }

    #[test]
    fn a_dead_clients_locks_expire_with_its_lease() {
        let prefix = prefix();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let Some(options) = runtime.block_on(options(&prefix)) else { return };
        // A client that locks a record and dies: its runtime stops (no more renewals) and
        // nothing of it is dropped (no release, no revoke).
        let dead = tokio::runtime::Runtime::new().expect("runtime");
        let locked_at = dead.block_on(async {
            let store = Store::new(EtcdStorage::connect(options.clone().lock_ttl(2)).await.expect("connect"));
            store.create_table::<Note>().await.expect("create");
            store.insert(&mut Note { id: 1, body: "x".into(), version: 0 }).await.expect("insert");
            let (tx_sender, tx_receiver) = tokio::sync::oneshot::channel();
            let (keep, hold) = tokio::sync::oneshot::channel::<()>();
            let holder = store.clone();
            tokio::spawn(async move {
                holder
                    .transaction(|tx| async move {
                        tx.get_for_update::<Note>(&1).await?;
                        let _ = tx_sender.send(Instant::now());
                        let _ = hold.await; // never: the runtime dies first
                        Ok(())
                    })
                    .await
            });
            let at = tx_receiver.await.expect("locked");
            std::mem::forget(store);
            std::mem::forget(keep);
            at
        });
        dead.shutdown_background();

        runtime.block_on(async {
            let store = Store::new(EtcdStorage::connect(options.lock_wait(LockWait::Forever)).await.expect("connect"));
            let nowait =
                store.transaction(|tx| async move { tx.get_for_update_with::<Note>(&1, LockWait::NoWait).await });
            assert!(matches!(nowait.await, Err(Error::LockTimeout { .. })), "the dead client still holds the lock");
            let mut note = store.get::<Note>(&1).await.expect("get").expect("note");
            note.body = "after".into();
            store.put(&mut note).await.expect("the put waits for the lease to expire, then writes");
            let waited = locked_at.elapsed();
            assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(15), "released after {waited:?}");
        });
    }

    /// A bug whose status is indexed.
    #[derive(Versioned, Debug, Clone, PartialEq)]
    #[versioned(table = "indexed_bugs")]
    struct IndexedBug {
        #[key]
        id: i64,
        #[versioned(index)]
        status: String,
        #[version]
        version: u64,
    }

    /// An equality filter on an indexed field reads its index entries and their records, not the
    /// whole table; records whose status changed since leave entries behind that the query passes
    /// over (the record is the truth), and a record the index does not name is never missed.
    #[tokio::test]
    async fn an_indexed_equality_reads_the_index_not_the_table() {
        let prefix = prefix();
        let Some(options) = options(&prefix).await else { return };
        let storage = EtcdStorage::connect(options).await.expect("connect");
        let store = Store::new(storage.clone());
        store.create_table::<IndexedBug>().await.expect("create");
        for chunk in (1..=300).collect::<Vec<i64>>().chunks(20) {
            let mut bugs: Vec<IndexedBug> =
                chunk.iter().map(|id| IndexedBug { id: *id, status: format!("s{}", id % 10), version: 0 }).collect();
            store.insert_all(&mut bugs).await.expect("insert");
        }
        // Ten bugs move from s3 to s4: their s3 entries stay behind.
        for id in (3..=93).step_by(10) {
            let mut bug = store.get::<IndexedBug>(&id).await.expect("get").expect("a bug");
            bug.status = "s4".into();
            store.put(&mut bug).await.expect("put");
        }
        let before = storage.keys_read();
        let s3 = store.find::<IndexedBug>().filter(IndexedBug::STATUS.eq("s3")).all().await.expect("find");
        let read = storage.keys_read() - before;
        let want: Vec<i64> = (1..=300).filter(|id| id % 10 == 3 && *id > 93).collect();
        assert_eq!(s3.iter().map(|b| b.id).collect::<Vec<_>>(), want);
        // 30 entries (20 current, 10 left behind) and their 30 records: not the 300 records' keys.
        assert_eq!(read, 60, "keys read through the index");
        let s4 = store.find::<IndexedBug>().filter(IndexedBug::STATUS.eq("s4")).count().await.expect("count");
        assert_eq!(s4, 40);
        // Records named by their keys are read alone.
        let before = storage.keys_read();
        let many = store.get_many::<IndexedBug, i64>(&[5, 999, 6]).await.expect("get_many");
        assert_eq!(many.iter().map(|b| b.as_ref().map(|b| b.id)).collect::<Vec<_>>(), [Some(5), None, Some(6)]);
        assert_eq!(storage.keys_read() - before, 3, "three records read, not the table");
        // A filter on no indexed field reads every record.
        let before = storage.keys_read();
        let all = store.find::<IndexedBug>().filter(IndexedBug::ID.gt(0)).count().await.expect("count");
        assert_eq!(all, 300);
        assert!(storage.keys_read() - before >= 600, "a scan reads every record's keys");
        // In a transaction, through the index too, with the transaction's own writes.
        let found = store
            .transaction(|tx| async move {
                let mut bug = tx.get::<IndexedBug>(&13).await?.expect("bug 13");
                bug.status = "s3".into();
                tx.put(&mut bug).await?;
                tx.find::<IndexedBug>().filter(IndexedBug::STATUS.eq("s3")).count().await
            })
            .await
            .expect("transaction");
        assert_eq!(found, 21);
    }

    /// `get_many` in a transaction remembers the keys it found no record for, as `get` does: a
    /// record inserted under one of them before the commit fails the commit.
    #[tokio::test]
    async fn get_many_in_a_transaction_remembers_the_keys_it_did_not_find() {
        let Some(store) = cluster::store().await else { return };
        store.create_table::<Note>().await.expect("create");
        store.insert(&mut Note { id: 1, body: "one".into(), version: 0 }).await.expect("insert");
        let other = store.clone();
        let result = store
            .transaction(|tx| async move {
                let found = tx.get_many::<Note, i64>(&[1, 2]).await?;
                assert!(found[0].is_some() && found[1].is_none());
                let writer =
                    tokio::spawn(
                        async move { other.insert(&mut Note { id: 2, body: "two".into(), version: 0 }).await },
                    );
                writer.await.expect("writer task")?;
                tx.insert(&mut Note { id: 3, body: "three".into(), version: 0 }).await?;
                Ok(())
            })
            .await;
        assert!(result.as_ref().is_err_and(Error::is_conflict), "{result:?}");
        assert_eq!(store.get::<Note>(&3).await.expect("get"), None, "nothing of the transaction was applied");
    }
}
