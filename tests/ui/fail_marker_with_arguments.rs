use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    #[key(auto)]
    id: i64,
    #[version = "1"]
    version: u64,
}

fn main() {}
