use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    #[key]
    id: i64,
    #[version]
    version: String,
}

fn main() {}
