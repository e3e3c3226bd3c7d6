//! Quickstart: insert a record, read it with its version, update it, and watch a stale update be
//! refused and then resolved from a fresh read.
//!
//! Run: `cargo run --example quickstart`

mod common;

use versioned::{Error, Versioned};

#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "people")]
struct Person {
    #[key]
    id: i64,
    name: String,
    salary: i32,
    #[version]
    version: u64,
}

#[tokio::main]
async fn main() -> Result<(), common::Failure> {
    let store = common::open("quickstart").await?;
    store.create_table::<Person>().await?;

    let mut ann = Person { id: 1, name: "Ann".into(), salary: 100, version: 0 };
    store.insert(&mut ann).await?;
    println!("inserted      {ann:?}");

    // Two editors open Ann's record at version 1.
    let mut editor_a = Person::get_with_version(&store, &1, 1).await?;
    let mut editor_b = Person::get_with_version(&store, &1, 1).await?;

    editor_a.salary = 120;
    editor_a.put(&store).await?;
    println!("A saved       {editor_a:?}");

    editor_b.salary = 90;
    match editor_b.put(&store).await {
        Err(err @ Error::ConcurrentModification { .. }) => {
            println!("B refused     {err}");
            // Resolve: start again from what is stored now, and re-apply B's intent.
            let stored = err.current::<Person>().ok_or("a conflict carries the stored record")??;
            println!("B sees        {stored:?}");
            editor_b = stored;
            editor_b.salary -= 10; // B meant "cut 10", now applied to the fresh record
            editor_b.put(&store).await?;
            println!("B saved       {editor_b:?}");
        }
        Err(other) => return Err(other.into()),
        Ok(()) => return Err("B's stale update was accepted: A's raise would have been lost".into()),
    }

    let final_record = store.get::<Person>(&1).await?.ok_or("Ann is gone")?;
    println!("stored        {final_record:?}\n");
    common::expect(
        final_record == Person { id: 1, name: "Ann".into(), salary: 110, version: 3 },
        "A's raise and B's cut are both in the record, at version 3",
    )
}
