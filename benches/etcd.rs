//! versioned on a 3-member etcd cluster on loopback against the same requests written by hand with
//! etcd-client, in the same run: a checked put (one transaction comparing the record's version)
//! and a read-modify-write `update`.
//!
//! `cargo bench --features etcd --bench etcd` starts the cluster itself (Debian's `etcd`), or
//! measures the one `VERSIONED_ETCD_ENDPOINTS` names.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use versioned::etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};
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

fn etcd(c: &mut Criterion) {
    let Some(endpoints) = cluster::shared_endpoints() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let prefix = format!("bench/{}/", uuid::Uuid::new_v4().simple());
    let options = EtcdOptions::from_list(&endpoints.join(",")).expect("endpoints").prefix(&prefix);
    let store = rt.block_on(async {
        let store = Store::new(EtcdStorage::connect(options).await.expect("connect"));
        store.create_table::<Person>().await.expect("create");
        store.insert(&mut Person { id: 1, name: "Ann".into(), salary: 0, version: 0 }).await.expect("insert");
        store.insert(&mut Person { id: 2, name: "Bob".into(), salary: 0, version: 0 }).await.expect("insert");
        store
    });
    let client = store.backend().client().clone();
    // The hand-written side: one key per record, its value the JSON of the struct, and etcd's
    // own per-key version as the version (1 on create, +1 per write).
    let key = format!("{prefix}hand/people/1").into_bytes();
    let counter = format!("{prefix}hand/people/2").into_bytes();
    rt.block_on(async {
        let mut kv = client.kv_client();
        kv.put(key.clone(), r#"{"name":"Ann","salary":0}"#, None).await.expect("put");
        kv.put(counter.clone(), r#"{"name":"Bob","salary":0}"#, None).await.expect("put");
    });

    let mut group = c.benchmark_group("etcd (3 members, loopback): checked put");
    group.measurement_time(Duration::from_secs(10));
    let ann_version = AtomicU64::new(1);
    group.bench_function("versioned", |b| {
        b.to_async(&rt).iter(|| {
            let version = ann_version.fetch_add(1, Ordering::Relaxed);
            let mut ann = Person { id: 1, name: "Ann".into(), salary: version as i64, version };
            let store = &store;
            async move { store.put(&mut ann).await.expect("put") }
        });
    });
    let version = AtomicI64::new(
        rt.block_on(async { client.kv_client().get(key.clone(), None).await.expect("get").kvs()[0].version() }),
    );
    let salary = AtomicU64::new(0);
    group.bench_function("hand-written etcd-client", |b| {
        b.to_async(&rt).iter(|| {
            let expected = version.fetch_add(1, Ordering::Relaxed);
            let value = format!(r#"{{"name":"Ann","salary":{}}}"#, salary.fetch_add(1, Ordering::Relaxed));
            let txn = Txn::new()
                .when([Compare::version(key.clone(), CompareOp::Equal, expected)])
                .and_then([TxnOp::put(key.clone(), value, None)])
                .or_else([TxnOp::get(key.clone(), None)]);
            let mut kv = client.kv_client();
            async move {
                let reply = kv.txn(txn).await.expect("txn");
                assert!(reply.succeeded(), "the hand-written put conflicted");
            }
        });
    });
    group.finish();

    let mut group = c.benchmark_group("etcd (3 members, loopback): update (read, change, checked write)");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("versioned", |b| {
        b.to_async(&rt).iter(|| async {
            store.update::<Person, _>(&2, RetryPolicy::default(), |p| p.salary += 1).await.expect("update");
        });
    });
    group.bench_function("hand-written etcd-client (read, then compare-and-set)", |b| {
        b.to_async(&rt).iter(|| {
            let mut kv = client.kv_client();
            let counter = counter.clone();
            async move {
                loop {
                    let read = kv.get(counter.clone(), Some(GetOptions::new())).await.expect("get");
                    let stored = &read.kvs()[0];
                    let mut record: serde_json::Value = serde_json::from_slice(stored.value()).expect("json");
                    record["salary"] = (record["salary"].as_i64().unwrap_or(0) + 1).into();
                    let txn = Txn::new()
                        .when([Compare::version(counter.clone(), CompareOp::Equal, stored.version())])
                        .and_then([TxnOp::put(counter.clone(), record.to_string(), None)]);
                    if kv.txn(txn).await.expect("txn").succeeded() {
                        break;
                    }
                }
            }
        });
    });
    group.finish();
}

criterion_group!(benches, etcd);
criterion_main!(benches);
