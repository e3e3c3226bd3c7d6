//! versioned on a 3-member etcd cluster on loopback against the same requests written by hand with
//! etcd-client, in the same run: a checked put (one transaction comparing the record's version)
//! and a read-modify-write `update`.
//!
//! `cargo bench --features etcd --bench etcd` starts the cluster itself (Debian's `etcd`), or
//! measures the one `VERSIONED_ETCD_ENDPOINTS` names. Besides criterion's figures (each side
//! measured for its own 10 s, one after the other), it prints the two sides measured in
//! alternating blocks of operations, so that the cluster's drift over the run (its disk's fsyncs,
//! its files growing) falls on both alike: the ratio to read.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use versioned::etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use versioned::{EtcdOptions, EtcdStorage, RetryPolicy, Store, Versioned};

#[allow(dead_code)]
#[path = "../tests/common/etcd_cluster.rs"]
mod cluster;

#[derive(Versioned, Debug, Clone)]
struct Person {
    #[key]
    id: i64,
    name: String,
    salary: i64,
    #[version]
    version: u64,
}

/// Both sides' records and the four measured operations. The hand-written side keeps one key per
/// record, its value the JSON of the struct, and etcd's own per-key version as the version (1 on
/// create, +1 per write).
struct Sides {
    store: Store<EtcdStorage>,
    client: Client,
    /// Ann (id 1) is written by the puts, Bob (id 2) by the updates; the same on both sides.
    ann: Vec<u8>,
    bob: Vec<u8>,
    ann_version: AtomicU64,
    hand_version: AtomicI64,
    salary: AtomicU64,
}

impl Sides {
    async fn new(endpoints: &[String]) -> Self {
        let prefix = format!("bench/{}/", uuid::Uuid::new_v4().simple());
        let options = EtcdOptions::from_list(&endpoints.join(",")).expect("endpoints").prefix(&prefix);
        let store = Store::new(EtcdStorage::connect(options).await.expect("connect"));
        store.create_table::<Person>().await.expect("create");
        store.insert(&mut Person { id: 1, name: "Ann".into(), salary: 0, version: 0 }).await.expect("insert");
        store.insert(&mut Person { id: 2, name: "Bob".into(), salary: 0, version: 0 }).await.expect("insert");
        let client = store.backend().client().clone();
        let (ann, bob) = (format!("{prefix}hand/people/1").into_bytes(), format!("{prefix}hand/people/2").into_bytes());
        let mut kv = client.kv_client();
        kv.put(ann.clone(), r#"{"name":"Ann","salary":0}"#, None).await.expect("put");
        kv.put(bob.clone(), r#"{"name":"Bob","salary":0}"#, None).await.expect("put");
        Sides {
            store,
            client,
            ann,
            bob,
            ann_version: AtomicU64::new(1),
            hand_version: AtomicI64::new(1),
            salary: AtomicU64::new(0),
        }
    }

    /// A checked put of a copy of Ann at the version last written.
    async fn versioned_put(&self) {
        let version = self.ann_version.fetch_add(1, Ordering::Relaxed);
        let mut ann = Person { id: 1, name: "Ann".into(), salary: version as i64, version };
        self.store.put(&mut ann).await.expect("put");
    }

    /// The same, by hand: one transaction comparing the key's version, reading it back if refused.
    async fn hand_put(&self) {
        let expected = self.hand_version.fetch_add(1, Ordering::Relaxed);
        let value = format!(r#"{{"name":"Ann","salary":{}}}"#, self.salary.fetch_add(1, Ordering::Relaxed));
        let txn = Txn::new()
            .when([Compare::version(self.ann.clone(), CompareOp::Equal, expected)])
            .and_then([TxnOp::put(self.ann.clone(), value, None)])
            .or_else([TxnOp::get(self.ann.clone(), None)]);
        let reply = self.client.kv_client().txn(txn).await.expect("txn");
        assert!(reply.succeeded(), "the hand-written put conflicted");
    }

    async fn versioned_update(&self) {
        self.store.update::<Person, _>(&2, RetryPolicy::default(), |p| p.salary += 1).await.expect("update");
    }

    /// The same, by hand: read, change the JSON, compare-and-set on the version read; again if refused.
    async fn hand_update(&self) {
        let mut kv = self.client.kv_client();
        loop {
            let read = kv.get(self.bob.clone(), Some(GetOptions::new())).await.expect("get");
            let stored = &read.kvs()[0];
            let mut record: serde_json::Value = serde_json::from_slice(stored.value()).expect("json");
            record["salary"] = (record["salary"].as_i64().unwrap_or(0) + 1).into();
            let txn = Txn::new()
                .when([Compare::version(self.bob.clone(), CompareOp::Equal, stored.version())])
                .and_then([TxnOp::put(self.bob.clone(), record.to_string(), None)]);
            if kv.txn(txn).await.expect("txn").succeeded() {
                break;
            }
        }
    }

    /// Runs operation `which` (0 to 3: versioned put, hand put, versioned update, hand update).
    async fn run(&self, which: usize) {
        match which {
            0 => self.versioned_put().await,
            1 => self.hand_put().await,
            2 => self.versioned_update().await,
            _ => self.hand_update().await,
        }
    }
}

fn etcd(c: &mut Criterion) {
    let Some(endpoints) = cluster::shared_endpoints() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let sides = rt.block_on(Sides::new(&endpoints));

    // A cluster just started is still settling (its first elections, its files growing): a few
    // seconds of both sides' updates first, so that neither side measures that.
    rt.block_on(async {
        let warm = Instant::now();
        while warm.elapsed() < Duration::from_secs(3) {
            sides.versioned_update().await;
            sides.hand_update().await;
        }
    });

    let mut group = c.benchmark_group("etcd (3 members, loopback): checked put");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("versioned", |b| b.to_async(&rt).iter(|| sides.versioned_put()));
    group.bench_function("hand-written etcd-client", |b| b.to_async(&rt).iter(|| sides.hand_put()));
    group.finish();

    let mut group = c.benchmark_group("etcd (3 members, loopback): update (read, change, checked write)");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("versioned", |b| b.to_async(&rt).iter(|| sides.versioned_update()));
    group.bench_function("hand-written etcd-client (read, then compare-and-set)", |b| {
        b.to_async(&rt).iter(|| sides.hand_update())
    });
    group.finish();

    // The same four operations in alternating blocks of 25, 40 rounds: each side's mean over the
    // same stretch of the cluster's life.
    const ROUNDS: u32 = 40;
    const BLOCK: u32 = 25;
    let mut spent = [Duration::ZERO; 4];
    rt.block_on(async {
        for _ in 0..ROUNDS {
            for (which, spent) in spent.iter_mut().enumerate() {
                let start = Instant::now();
                for _ in 0..BLOCK {
                    sides.run(which).await;
                }
                *spent += start.elapsed();
            }
        }
    });
    let mean = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(ROUNDS * BLOCK);
    println!("etcd, alternating blocks ({} operations each; ratio = hand-written / versioned):", ROUNDS * BLOCK);
    for (name, versioned, hand) in [("checked put", spent[0], spent[1]), ("update", spent[2], spent[3])] {
        let (v, h) = (mean(versioned), mean(hand));
        println!("  {name:12} versioned {v:7.0} µs   hand-written {h:7.0} µs   ratio {:.2}", h / v);
    }
}

criterion_group!(benches, etcd);
criterion_main!(benches);
