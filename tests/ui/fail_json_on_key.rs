use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    #[key]
    #[versioned(json)]
    id: i64,
    #[version]
    version: u64,
}

fn main() {}
