use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    #[key]
    id: i64,
    #[version]
    version: Option<u64>,
}

fn main() {}
