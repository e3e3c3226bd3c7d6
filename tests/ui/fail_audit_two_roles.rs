use std::time::SystemTime;
use versioned::Versioned;

#[derive(Versioned)]
struct Contact {
    #[key]
    id: i64,
    #[versioned(created_at, updated_at)]
    stamp: SystemTime,
    #[version]
    version: u64,
}

fn main() {}
