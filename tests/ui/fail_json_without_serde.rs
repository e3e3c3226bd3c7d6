// `#[versioned(json)]` on a type serde cannot (de)serialize: one error, saying what it needs.
use versioned::Versioned;

struct Address {
    city: String,
}

#[derive(Versioned)]
struct Person {
    #[key]
    id: i64,
    #[versioned(json)]
    address: Address,
    #[version]
    version: u64,
}

fn main() {
    let _ = |a: Address| a.city;
}
