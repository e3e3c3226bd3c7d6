use std::time::SystemTime;
use versioned::Versioned;

#[derive(Versioned)]
struct Contact {
    #[key]
    id: i64,
    #[versioned(updated_at)]
    modified: SystemTime,
    #[versioned(updated_at)]
    changed: SystemTime,
    #[version]
    version: u64,
}

fn main() {}
