// A copy borrowed into a transaction would keep the version a rolled-back write gave it: the
// transaction's future must own its copies (move them in, get them back from `Ok`).
use versioned::{MemoryStorage, Store, Versioned};

#[derive(Versioned, Clone)]
struct Person {
    #[key]
    id: i64,
    name: String,
    #[version]
    version: u64,
}

async fn rename(store: Store<MemoryStorage>, mut p: Person) -> Person {
    let p_ref = &mut p;
    let _ = store.transaction(|tx| async move { tx.put(p_ref).await }).await;
    p
}

fn main() {
    let _ = rename;
}
