//! The same checked writes on a replicated etcd cluster: a stock counter that 8 shop servers
//! decrement at once, a stale write refused with the record that beat it, and a transfer between
//! two warehouses committed whole.
//!
//! Start a local 3-member cluster (README, "etcd"), then:
//!
//! ```text
//! VERSIONED_DATABASE_URL=etcd://127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 \
//!     cargo run --example cluster --features etcd
//! ```
//!
//! Without `VERSIONED_DATABASE_URL` it runs on SQLite, to show that nothing in it is etcd's own.

mod common;

use common::{Failure, expect};
use versioned::{Error, RetryPolicy, Versioned};

#[derive(Versioned, Debug, Clone)]
struct Stock {
    #[key]
    item: String,
    warehouse_a: i64,
    warehouse_b: i64,
    #[version]
    version: u64,
}

const SERVERS: i64 = 8;
const SALES: i64 = 25;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let store = common::open("cluster").await?;
    store.create_table::<Stock>().await?;
    let mut lamp = Stock { item: "lamp".into(), warehouse_a: 500, warehouse_b: 0, version: 0 };
    store.insert(&mut lamp).await?;

    println!("{SERVERS} servers sell {SALES} lamps each from warehouse A, at the same time");
    let mut servers = Vec::new();
    for _ in 0..SERVERS {
        let store = store.clone();
        servers.push(tokio::spawn(async move {
            for _ in 0..SALES {
                store.update::<Stock, _>("lamp", RetryPolicy::attempts(100), |s| s.warehouse_a -= 1).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for server in servers {
        server.await??;
    }
    let now = store.get::<Stock>("lamp").await?.ok_or("the lamp is gone")?;
    println!("  warehouse A holds {} at version {}", now.warehouse_a, now.version);
    expect(now.warehouse_a == 500 - SERVERS * SALES, "every sale counted exactly once")?;
    expect(now.version == 1 + (SERVERS * SALES) as u64, "one version per sale")?;

    println!("a server that read the lamp before those sales writes it back");
    lamp.warehouse_b = 10;
    match store.put(&mut lamp).await {
        Err(err @ Error::ConcurrentModification { .. }) => {
            let current = err.current::<Stock>().ok_or("the conflict carries the record")??;
            println!("  refused: {err}");
            expect(current.warehouse_a == now.warehouse_a, "the refusal carries the record that beat it")?;
        }
        other => return Err(format!("a stale write must be refused, got {other:?}").into()),
    }

    println!("move 40 lamps from A to B in one transaction");
    store
        .transaction(|tx| async move {
            let mut stock =
                tx.get_for_update::<Stock>("lamp").await?.ok_or_else(|| Error::not_found::<Stock>("lamp"))?;
            stock.warehouse_a -= 40;
            stock.warehouse_b += 40;
            tx.put(&mut stock).await
        })
        .await?;
    let moved = store.get::<Stock>("lamp").await?.ok_or("the lamp is gone")?;
    println!("  A {} and B {}", moved.warehouse_a, moved.warehouse_b);
    expect(moved.warehouse_a + moved.warehouse_b == now.warehouse_a, "no lamp appeared or vanished")?;
    Ok(())
}
