use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    #[key]
    id: i64,
    #[version]
    version: u64,
    #[version]
    revision: u32,
}

fn main() {}
