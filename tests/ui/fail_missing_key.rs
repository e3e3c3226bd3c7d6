use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    id: i64,
    name: String,
    #[version]
    version: u64,
}

fn main() {}
