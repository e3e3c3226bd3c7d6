// Reading the history of a struct that keeps none does not compile: the message says how to keep it.
use versioned::{Store, Versioned};

#[derive(Versioned)]
struct Bug {
    #[key]
    id: i64,
    #[version]
    version: u64,
}

async fn read(store: Store<versioned::MemoryStorage>) -> versioned::Result<()> {
    let _ = store.history::<Bug>(&1).await?;
    Ok(())
}

fn main() {
    let _ = read;
}
