// Two fields whose types have no column mapping: one error each, on the whole type.
use std::collections::HashMap;
use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    #[key]
    id: i64,
    tags: HashMap<String, String>,
    scores: Option<std::collections::BTreeSet<i64>>,
    #[version]
    version: u64,
}

fn main() {}
