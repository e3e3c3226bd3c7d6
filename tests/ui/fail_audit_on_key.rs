use std::time::SystemTime;
use versioned::Versioned;

#[derive(Versioned)]
struct Event {
    #[key]
    #[versioned(created_at)]
    at: SystemTime,
    #[version]
    version: u64,
}

fn main() {}
