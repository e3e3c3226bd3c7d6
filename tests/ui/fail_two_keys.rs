use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    #[key]
    id: i64,
    #[key]
    email: String,
    #[version]
    version: u64,
}

fn main() {}
