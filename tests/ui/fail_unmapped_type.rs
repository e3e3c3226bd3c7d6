use std::collections::HashMap;
use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    #[key]
    id: i64,
    tags: HashMap<String, String>,
    #[version]
    version: u64,
}

fn main() {}
